"""`cvcatalog publish`: upload a built catalog to S3 so that others query it with no ingest.

Layout under s3://bucket/prefix/ (the local catalog's, minus staging, locks and logs):

    lake/main/<table>/.../*.parquet       every file a kept snapshot shows, same path
    quarantine/source=.../*.ndjson        (with its SHA-256 as x-amz-meta-sha256)
    publish.json                          when, which cvcatalog, files with SHA-256, views
    catalog.ducklake                      the DuckLake (and state) with its data path at
                                          s3://bucket/prefix/lake/: readers attach it read-only

Each file is sent with its SHA-256 (ChecksumSHA256, so S3 rejects a body that does not match,
and x-amz-meta-sha256) and verified afterwards with a HEAD (size, metadata and S3's stored
checksum). Publishing is resumable: an object already there with the same size and SHA-256 is
skipped. The database is built from a copy of catalog.ducklake with its snapshots (all the
catalog keeps, or those from `snapshot` on: older ones are expired in the copy and their
files are not uploaded), so `query --catalog s3://... --snapshot ID` travels in time remotely.
It is uploaded last, and only if every file made it, so a reader never sees a database that
names a missing file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from cvcatalog import __version__
from cvcatalog.config import DownloadConfig, download_config
from cvcatalog.exceptions import CatalogError, CvCatalogError, S3Error
from cvcatalog.io import lake
from cvcatalog.io.duckdb_ext import load_httpfs, open_instance
from cvcatalog.io.layout import DB_NAME, sha256_file
from cvcatalog.io.s3 import classify_error, make_client
from cvcatalog.io.storage import S3Location, S3Store, Uploader, is_remote
from cvcatalog.ops.remote import PUBLISH_JSON
from cvcatalog.sqlutil import quote_ident, quote_literal
from cvcatalog.state import pins
from cvcatalog.state.datasets import dataset_files
from cvcatalog.state.db import SCHEMA_VERSION, STATE_DB
from cvcatalog.state.manifest import FileRecord

if TYPE_CHECKING:
    from cvcatalog.catalog import Catalog

#: One PUT holds at most 5 GiB; cvcatalog's Parquet files are far smaller.
MAX_SINGLE_PUT = 5 * 1024**3
#: Publishing writes to your own bucket: no rate limit unless asked for.
DEFAULT_RATE_LIMIT = 0.0

RESULT_COLUMNS = ["path", "kind", "bytes", "status", "verified", "checksum", "reason"]


@dataclass
class ObjectResult:
    """What happened to one object of the publish."""

    path: str  # catalog-relative (the key is prefix/path)
    kind: str  # data | quarantine | manifest | database
    bytes: int
    status: str  # uploaded | copied (server-side, from an S3 lake) | skipped | failed
    verified: bool = False
    checksum: str = ""  # sha256: S3's stored checksum matched; metadata: size + x-amz-meta only
    reason: str | None = None


@dataclass
class PublishSummary:
    url: str
    results: list[ObjectResult] = field(default_factory=list)
    database: str = "not uploaded"  # uploaded | up to date | not uploaded (...)
    views: list[str] = field(default_factory=list)
    seconds: float = 0.0
    requests: int = 0
    #: files only older snapshots show that are gone from this catalog (a repair could not
    #: mend them): not published, so time travel to those snapshots fails there too
    gone: list[str] = field(default_factory=list)
    gone_snapshots: list[int] = field(default_factory=list)

    @property
    def failed(self) -> list[ObjectResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed and self.database in ("uploaded", "up to date")

    def count(self, status: str, kinds: tuple[str, ...] = ("data", "quarantine")) -> int:
        return sum(1 for r in self.results if r.status == status and r.kind in kinds)

    def bytes_uploaded(self) -> int:
        """Bytes sent from this machine."""
        return sum(r.bytes for r in self.results if r.status == "uploaded")

    def bytes_copied(self) -> int:
        """Bytes S3 copied from the lake's own objects (CopyObject): none sent from here."""
        return sum(r.bytes for r in self.results if r.status == "copied")

    def rows(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.results]

    def totals(self) -> list[dict[str, Any]]:
        """One row per (kind, status): objects and bytes."""
        n: Counter[tuple[str, str]] = Counter()
        b: Counter[tuple[str, str]] = Counter()
        for r in self.results:
            n[(r.kind, r.status)] += 1
            b[(r.kind, r.status)] += r.bytes
        order = {"data": 0, "quarantine": 1, "manifest": 2, "database": 3}
        return [
            {"kind": k, "status": s, "objects": n[(k, s)], "bytes": b[(k, s)]}
            for k, s in sorted(n, key=lambda ks: (order.get(ks[0], 9), ks[1]))
        ]

    def summary(self) -> str:
        copied = self.count("copied")
        files = self.count("uploaded") + copied + self.count("skipped") + self.count("failed")
        verified = sum(1 for r in self.results if r.verified and r.kind in ("data", "quarantine"))
        on_server = f"{copied} copied on the server, " if copied else ""
        copied_mb = f", {self.bytes_copied() / 1e6:,.1f} MB copied on the server" if copied else ""
        return (
            f"{self.url}: {files} files: {self.count('uploaded')} uploaded, {on_server}"
            f"{self.count('skipped')} already there, {self.count('failed')} failed; "
            f"{verified} of {files} verified; {self.bytes_uploaded() / 1e6:,.1f} MB sent"
            f"{copied_mb} in {self.requests} requests; database {self.database}; "
            f"{self.seconds:.1f}s{self.gone_line()}"
        )

    def gone_line(self) -> str:
        """What the published catalog cannot show: '' when nothing is gone."""
        if not self.gone:
            return ""
        # none: only delete files are gone; the kept ones only (not expired ones between)
        span = f" {lake.snapshot_runs(self.gone_snapshots)}" if self.gone_snapshots else ""
        return (
            f"; {len(self.gone)} file(s) only older snapshots{span} show are gone from the "
            "catalog (`cvcatalog cache verify` names them): time travel to those snapshots "
            "fails in the published catalog too"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ok": self.ok,
            "uploaded": self.count("uploaded"),
            "copied": self.count("copied"),
            "skipped": self.count("skipped"),
            "failed": self.count("failed"),
            "bytes_uploaded": self.bytes_uploaded(),
            "bytes_copied": self.bytes_copied(),
            "database": self.database,
            "views": len(self.views),
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "gone": len(self.gone),
        }


def content_digest(
    files: list[FileRecord], snapshots: list[int] | None = None, state: str = ""
) -> str:
    """What the published database depends on: the files, the snapshots it keeps (a publish
    with another --snapshot keeps other ones, often of the same files), the state tables'
    rows (state_digest: a run that recorded only no_data or failed days changes no file) and
    this cvcatalog's views."""
    h = hashlib.sha256(f"{__version__}|{SCHEMA_VERSION}\n".encode())
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}|{f.sha256}|{f.bytes}\n".encode())
    if snapshots is not None:
        h.update(f"snapshots|{','.join(map(str, sorted(snapshots)))}\n".encode())
    if state:
        h.update(f"state|{state}\n".encode())
    return h.hexdigest()


def state_digest(snap: Path) -> str:
    """A digest of the rows of every state table of the catalog file (not the lake's metadata,
    which the files and snapshots stand for, nor the listing cache, which readers do not
    read): re-publishing after a run that changed only them uploads the database again (the
    remote `runs` and `cache status` stayed as they were)."""
    con = open_instance(str(snap), read_only=True)
    try:
        names = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                "AND NOT starts_with(table_name, 'ducklake_') AND table_name <> 'listing_cache' "
                "ORDER BY table_name"
            ).fetchall()
        ]
        h = hashlib.sha256()
        for name in names:
            row = con.execute(
                f"SELECT count(*), coalesce(bit_xor(hash(t)), 0) FROM {quote_ident(name)} AS t"
            ).fetchone()
            h.update(f"{name}|{row}\n".encode())
        return h.hexdigest()
    finally:
        con.close()


def _content_type(kind: str) -> str:
    return {
        "data": "application/vnd.apache.parquet",
        "quarantine": "application/x-ndjson",
        "manifest": "application/json",
    }.get(kind, "application/octet-stream")


def _publish_one(
    up: Uploader, local: Path, rel: str, kind: str, size: int, sha: str
) -> ObjectResult:
    """Skip if already there; else check the local file, upload, verify."""
    res = ObjectResult(rel, kind, size, "failed")
    try:
        there, checksum, _ = Uploader.check(up.head(rel, checksums=True), size, sha)
        if there:
            res.status, res.verified, res.checksum = "skipped", True, checksum
            return res
        if not local.exists():
            res.reason = "missing locally (run `cvcatalog cache verify --repair`)"
            return res
        if local.stat().st_size != size or sha256_file(local) != sha:
            res.reason = (
                "the local file differs from the manifest's SHA-256 (run `cvcatalog cache verify`)"
            )
            return res
        if size > MAX_SINGLE_PUT:
            res.reason = f"larger than {MAX_SINGLE_PUT / 1024**3:.0f} GiB (compact it first)"
            return res
        up.put(rel, local, size, sha, _content_type(kind))
        ok, checksum, reason = up.verify(rel, size, sha)
        res.status = "uploaded" if ok else "failed"
        res.verified, res.checksum, res.reason = ok, checksum, reason
    except CvCatalogError as e:
        res.reason = str(e)
    except OSError as e:
        res.reason = f"cannot read {local}: {e.strerror or e}"
    return res


def _copy_one(up: Uploader, src: S3Store, f: FileRecord) -> ObjectResult:
    """A lake already on S3: server-side copy (its x-amz-meta-sha256 travels with it)."""
    res = ObjectResult(f.path, f.kind, f.bytes, "failed")
    try:
        there, checksum, _ = Uploader.check(up.head(f.path, checksums=True), f.bytes, f.sha256)
        if there:  # includes publishing to the lake's own location
            res.status, res.verified, res.checksum = "skipped", True, checksum
            return res
        key = up.location.key(f.path)
        source = {"Bucket": src.s3loc.bucket, "Key": src.s3loc.key(f.path)}
        up.call(
            "copy",
            key,
            lambda: up.client.copy_object(
                Bucket=up.location.bucket, Key=key, CopySource=source, MetadataDirective="COPY"
            ),
        )
        ok, checksum, reason = up.verify(f.path, f.bytes, f.sha256)
        res.status = "copied" if ok else "failed"
        res.verified, res.checksum, res.reason = ok, checksum, reason
    except CvCatalogError as e:
        res.reason = str(e)
    return res


def _publish_file(cat: Catalog, up: Uploader, f: FileRecord) -> ObjectResult:
    store = cat.db.store
    if isinstance(store, S3Store):
        return _copy_one(up, store, f)
    try:
        local = cat.paths.absolute(f.path)
    except CvCatalogError as e:
        return ObjectResult(f.path, f.kind, f.bytes, "failed", reason=str(e))
    return _publish_one(up, local, f.path, f.kind, f.bytes, f.sha256)


@contextlib.contextmanager
def _snapshot(cat: Catalog) -> Iterator[Path]:
    """A private copy of the current catalog database (writers replace it atomically)."""
    tmp = Path(tempfile.mkdtemp(prefix="cvcatalog-publish-"))
    try:
        snap = tmp / DB_NAME
        with cat.db.read():  # bounded wait if a foreign session holds the file read-write
            shutil.copyfile(cat.paths.db, snap)
        yield snap
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _complete_files(snap: Path) -> list[FileRecord]:
    """Files of complete partitions and of the published version of every dataset input
    (NGSIM, ...: partition_key '<dataset>/<partition>')."""
    con = open_instance(str(snap), read_only=True)
    try:
        cur = con.execute(
            "SELECT f.path, f.partition_key, f.kind, f.rows, f.bytes, f.sha256 "
            "FROM partition_files f JOIN partitions p USING (partition_key) "
            "WHERE p.status = 'complete' ORDER BY f.path"
        )
        files = [FileRecord(*r) for r in cur.fetchall()]
        files += [
            FileRecord(d.path, d.partition_key, d.kind, d.rows, d.bytes, d.sha256)
            for d in dataset_files(con, published_only=True)
        ]
        return sorted(files, key=lambda f: f.path)
    finally:
        con.close()


def _kept_snapshots(snap: Path, since: int | None) -> list[int]:
    """The ids of the snapshots the published catalog keeps: every one the copy keeps, or
    those from `since` on."""
    con = open_instance(str(snap), read_only=True)
    try:
        kept = [s.snapshot_id for s in lake.snapshots(con)]
    finally:
        con.close()
    return [k for k in kept if since is None or k >= since]


def _history_files(
    cat: Catalog, snap: Path, kept: list[int], summary: PublishSummary
) -> list[FileRecord]:
    """Data files that only older snapshots show (replaced, evicted, compacted), for the
    snapshots the published catalog keeps, and the lake's delete files; their SHA-256 is read
    from the stored bytes (the state records current files only). One gone from the store
    (a repair could not mend it) is named in summary.gone with the snapshots that show it."""
    con = open_instance(str(snap), read_only=True)
    try:
        base = lake.data_location(con)
        old = [
            (f.location, f.rows, f.size, [k for k in kept if f.shown_at(k)])
            for f in lake.data_files(con)
            if not f.current and f.location.startswith(base) and any(f.shown_at(k) for k in kept)
        ]
        # the delete files of rows deleted by --check-changes (the lake's own files)
        old += [(w, 0, n, []) for w, n in lake.delete_files(con).items() if w.startswith(base)]
    finally:
        con.close()
    out = []
    for location, rows, size, shown in old:
        rel = f"{lake.DATA_DIR}/{location[len(base) :].lstrip('/')}"
        sha = cat.db.store.sha256(rel)
        if sha is not None:
            out.append(FileRecord(rel, "", "data", rows, size, sha))
        else:
            summary.gone.append(rel)
            summary.gone_snapshots += shown
    return out


def build_portable_database(
    cat: Catalog,
    snap: Path,
    location: S3Location,
    cfg: DownloadConfig,
    since: int | None = None,
) -> list[str]:
    """Point the copy's DuckLake at s3://bucket/prefix/lake/ (every file path in it is
    relative to that data path) and keep its snapshots from `since` on (None: all it keeps);
    returns the names of its tables and views."""
    con = open_instance(":memory:")
    try:
        con.execute(f"ATTACH {quote_literal(str(snap))} AS {STATE_DB}")
        con.execute(f"USE {STATE_DB}")
        load_httpfs(con)  # an S3 lake's data path needs it even to expire snapshots
        lake.attach(con, STATE_DB)
        if since is not None:
            spare = {k.snapshot_id for k in lake.snapshots(con) if k.snapshot_id >= since}
            lake.expire_snapshots(con, datetime.now(UTC), keep=spare)
            pins.drop_before(con, since)  # their snapshots are not published: no pin there
        names = sorted(set(lake.table_columns(con)) | lake.view_names(con))
        con.execute("USE memory")
        con.execute(f"DETACH {lake.LAKE}")  # the lake caches its metadata: edit it detached
        con.execute(f"ATTACH IF NOT EXISTS {quote_literal(str(snap))} AS {STATE_DB}")
        con.execute(f"USE {STATE_DB}")
        absolute = con.execute(
            "SELECT (SELECT count(*) FROM ducklake_data_file WHERE NOT path_is_relative) "
            "+ (SELECT count(*) FROM ducklake_table WHERE NOT path_is_relative) "
            "+ (SELECT count(*) FROM ducklake_schema WHERE NOT path_is_relative)"
        ).fetchone()
        if absolute and absolute[0]:
            raise CatalogError(
                "the lake names files outside its data path; not publishing (run "
                "`cvcatalog cache verify`)"
            )
        con.execute(
            "UPDATE ducklake_metadata SET value = ? WHERE key = 'data_path'",
            [lake.data_path(location.url)],
        )
        con.execute("CHECKPOINT")
        return names
    except duckdb.Error as e:
        raise CatalogError(
            f"cannot build the published catalog database: {str(e).strip().splitlines()[0]}"
        ) from None
    finally:
        con.close()


def _remote_json(up: Uploader, rel: str) -> dict[str, Any] | None:
    key = up.location.key(rel)
    if up.head(rel) is None:
        return None
    try:
        resp = up.call("get", key, lambda: up.client.get_object(Bucket=up.location.bucket, Key=key))
        data: dict[str, Any] = json.loads(resp["Body"].read())
        return data
    except (ValueError, CvCatalogError):
        return None


def publish(
    cat: Catalog,
    url: str,
    *,
    client: Any = None,
    notify: Callable[[str], None] | None = None,
    snapshot: int | None = None,
    **download: Any,
) -> PublishSummary:
    """Upload cat to url (s3://bucket/prefix); see the module docstring. snapshot: the
    oldest snapshot the published catalog keeps (default: every snapshot the catalog keeps).

    Keyword arguments override `download:` settings (profile, no_sign_request, endpoint_url,
    max_workers, rate_limit -- 0, unlimited, by default --, retry_attempts, ...). client: a
    boto3 S3 client to use instead of one made from those settings.
    """
    say = notify or (lambda _m: None)
    if is_remote(str(getattr(cat, "url", ""))):
        raise CatalogError(f"{cat} is itself a published catalog; publish a local catalog")
    if not cat.db.exists():
        raise CatalogError(f"there is no catalog at {cat.paths.root} to publish")
    location = S3Location.parse(url)
    # CVCATALOG_DOWNLOAD__* as every reader takes them (a publish made its own settings: an
    # endpoint that never answered held it ~20 minutes whatever timeout_seconds said), over
    # publish's own default rate limit
    cfg = download_config({"rate_limit": DEFAULT_RATE_LIMIT}, **download)
    up = Uploader(client if client is not None else make_client(cfg), location, cfg)
    summary = PublishSummary(location.url)
    t0 = time.monotonic()

    _check_bucket(up)
    with _snapshot(cat) as snap:
        if snapshot is not None:
            with open_instance(str(snap), read_only=True) as con:
                cat.db.check_kept(con, lake.AsOf(snapshot=snapshot))
        kept = _kept_snapshots(snap, snapshot)
        files = _complete_files(snap) + _history_files(cat, snap, kept, summary)
        say(f"publishing {len(files)} files to {location}")
        with ThreadPoolExecutor(max_workers=cfg.max_workers) as pool:
            summary.results = list(pool.map(lambda f: _publish_file(cat, up, f), files))
        if summary.failed:
            summary.database = f"not uploaded ({len(summary.failed)} file(s) failed)"
        else:
            _publish_database(cat, snap, files, kept, up, summary, say, snapshot)
    summary.requests = up.requests
    summary.seconds = time.monotonic() - t0
    return summary


def _check_bucket(up: Uploader) -> None:
    bucket = up.location.bucket
    try:
        up.call("head-bucket", "", lambda: up.client.head_bucket(Bucket=bucket))
    except CvCatalogError as e:
        info = classify_error(e.__cause__) if e.__cause__ is not None else None
        if info is not None and (info.code == "NoSuchBucket" or info.status == 404):
            raise S3Error(
                f"cannot publish to {up.location}: bucket {bucket!r} does not exist at this "
                "endpoint (create it first)"
            ) from None
        raise


def _publish_database(
    cat: Catalog,
    snap: Path,
    files: list[FileRecord],
    kept: list[int],
    up: Uploader,
    summary: PublishSummary,
    say: Callable[[str], None],
    since: int | None = None,
) -> None:
    digest = content_digest(files, kept, state_digest(snap))
    remote = _remote_json(up, PUBLISH_JSON)
    if remote is not None and remote.get("content_sha256") == digest:
        db = remote.get("database") or {}
        if Uploader.matches(up.head(DB_NAME), int(db.get("bytes", -1)), str(db.get("sha256"))):
            summary.database = "up to date"
            summary.views = list(remote.get("views") or [])
            return
    say("building the published catalog database")
    summary.views = build_portable_database(cat, snap, up.location, up.cfg, since)
    db_sha, db_size = sha256_file(snap), snap.stat().st_size
    doc = {
        "format": 1,
        "url": up.location.url,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cvcatalog_version": __version__,
        "schema_version": SCHEMA_VERSION,
        "content_sha256": digest,
        "database": {"path": DB_NAME, "bytes": db_size, "sha256": db_sha},
        "views": summary.views,
        "files": [
            {"path": f.path, "kind": f.kind, "bytes": f.bytes, "sha256": f.sha256, "rows": f.rows}
            for f in files
        ],
    }
    manifest_path = snap.with_name(PUBLISH_JSON)
    manifest_path.write_text(json.dumps(doc, indent=1) + "\n")
    m_sha, m_size = sha256_file(manifest_path), manifest_path.stat().st_size
    # publish.json first, the database last: readers open only the database
    for local, rel, kind, size, sha in (
        (manifest_path, PUBLISH_JSON, "manifest", m_size, m_sha),
        (snap, DB_NAME, "database", db_size, db_sha),
    ):
        res = _publish_one(up, local, rel, kind, size, sha)
        summary.results.append(res)
        if res.status == "failed":
            summary.database = f"not uploaded ({kind}: {res.reason})"
            return
    summary.database = "uploaded"
