"""Opening a catalog published on S3 (`cvcatalog publish`): read-only, nothing ingested.

`Catalog("s3://bucket/prefix")` returns a :class:`RemoteCatalog`. Its catalog database is the
portable copy `s3://bucket/prefix/catalog.ducklake`, whose views read
`s3://bucket/prefix/lake/...` Parquet files. The database is downloaded to a local cache
(`$XDG_CACHE_HOME/cvcatalog/remote/<hash of the URL>/`, default `~/.cache/...`) once per ETag
and opened read-only (the copies of catalogs not read for STALE_DAYS go when another is
fetched); every connection LOADs httpfs from the pinned package and gets a
temporary S3 secret from the boto3 credential chain and endpoint (as for ingest: --profile,
--no-sign-request, AWS_ENDPOINT_URL_S3). Writes (ingest, compact, cache clear/evict/verify,
discover/plan, which record listings) fail with one clear line.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb

from cvcatalog.config import DownloadConfig
from cvcatalog.exceptions import CatalogError, CvCatalogError
from cvcatalog.io import lake
from cvcatalog.io.duckdb_ext import load_extension, s3_connection
from cvcatalog.io.layout import (
    DB_NAME,
    LEGACY_DB_NAME,
    CatalogPaths,
    replacing,
    user_cache_dir,
)
from cvcatalog.io.readlog import OnRead, ReadLog, watched
from cvcatalog.io.s3 import ErrorKind, Retrier, classify_error, make_client
from cvcatalog.io.storage import S3Location
from cvcatalog.state import tables, trips
from cvcatalog.state.db import STATE_DB, CatalogDB, Notify, use_search_path

#: The publish manifest next to the database.
PUBLISH_JSON = "publish.json"
#: A reader re-checks the database's ETag at most this often.
REFRESH_SECONDS = 30.0
#: A published catalog's cached database not read for this long goes when another is fetched.
STALE_DAYS = 30.0


def cache_home() -> Path:
    return user_cache_dir() / "remote"


def cache_dir_for(location: S3Location, endpoint: str | None = None) -> Path:
    """One directory per (endpoint, URL): the same bucket name on two endpoints never mixes."""
    digest = hashlib.sha256(f"{endpoint or 'aws'}|{location.url}".encode()).hexdigest()[:16]
    return cache_home() / digest


def sweep_stale(keep: Path | None = None, now: float | None = None) -> list[Path]:
    """Remove the cached databases of published catalogs not read for STALE_DAYS (a reader
    touches its copy at each ETag check), but keep's; returns the directories removed. Run
    when a database is fetched: the cache holds one copy per catalog read, and a catalog
    read once would otherwise stay for good."""
    now = time.time() if now is None else now
    gone: list[Path] = []
    with contextlib.suppress(OSError):
        for d in cache_home().iterdir():
            if d == keep or not d.is_dir():
                continue
            with contextlib.suppress(OSError):
                used = max((f.stat().st_mtime for f in d.iterdir()), default=d.stat().st_mtime)
                if now - used > STALE_DAYS * 86400:
                    shutil.rmtree(d)
                    gone.append(d)
    return gone


def read_only_error(location: S3Location | str, what: str) -> CatalogError:
    return CatalogError(
        f"{location} is a published catalog on S3 and is read-only: cannot {what}; "
        "ingest into a local catalog and `cvcatalog publish` it again"
    )


class RemoteCatalogDB(CatalogDB):
    """The portable catalog database of a published catalog, cached locally per ETag."""

    OLDER_SNAPSHOTS = (
        "older ones were not published (`publish --snapshot` leaves them out) or had expired "
        "in the catalog it was published from"
    )
    BETWEEN_SNAPSHOTS = (
        "had expired in the catalog it was published from (a pin keeps only its own snapshot)"
    )

    def __init__(
        self,
        location: S3Location,
        cfg: DownloadConfig,
        cache_dir: Path,
        lock_timeout: float = 60.0,
        notify: Notify | None = None,
    ) -> None:
        super().__init__(CatalogPaths.at(cache_dir), lock_timeout, notify or (lambda _m: None))
        self.location = location
        self.cfg = cfg
        self._client: Any = None
        self._current: Path | None = None
        self._checked = 0.0
        #: the files each local copy's lake lists (_lake_files), by copy
        self._files: dict[Path, list[str]] = {}

    # -- S3 ------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(self.cfg)
        return self._client

    def _call(self, operation: str, key: str, fn: Any) -> Any:
        """fn() through the usual retries; a missing bucket or object becomes one clear line."""
        target = f"s3://{self.location.bucket}/{key}"
        try:
            return Retrier.from_config(self.cfg).call(operation, target, fn)
        except CvCatalogError as e:
            info = classify_error(e.__cause__) if e.__cause__ is not None else None
            if info is not None and info.code == "NoSuchBucket":
                raise CatalogError(
                    f"no published catalog at {self.location}: bucket "
                    f"{self.location.bucket!r} does not exist at this endpoint"
                ) from None
            if info is not None and info.kind is ErrorKind.FATAL and info.status == 404:
                raise CatalogError(
                    f"no published catalog at {self.location}: {target} not found "
                    "(wrong bucket or prefix, or not published yet: `cvcatalog publish --to ...`)"
                ) from None
            raise

    def database_file(self) -> Path:
        """The local copy of the current published database (downloaded when its ETag changed)."""
        now = time.monotonic()
        fresh = now - self._checked < REFRESH_SECONDS
        if self._current is not None and fresh and self._current.exists():
            return self._current
        key = self.location.key(DB_NAME)
        try:
            head = self._call(
                "head",
                key,
                lambda: self.client.head_object(Bucket=self.location.bucket, Key=key),
            )
        except CatalogError:
            self._refuse_legacy()
            raise
        etag = str(head.get("ETag") or "").strip('"')
        name = hashlib.sha256(f"{etag}|{head.get('ContentLength')}".encode()).hexdigest()[:16]
        path = self.paths.root / f"catalog-{name}.ducklake"
        if not path.exists():
            self._download(key, path, head)
            self._remove_old_copies(keep=path)
            sweep_stale(keep=self.paths.root)
        else:
            with contextlib.suppress(OSError):  # read now: the sweep's clock (sweep_stale)
                os.utime(path)
        self._current, self._checked = path, now
        return path

    def _refuse_legacy(self) -> None:
        """No catalog.ducklake: a catalog cvcatalog 0.1 published (catalog.duckdb) is one
        clear line, not 'not found'."""
        key = self.location.key(LEGACY_DB_NAME)
        try:
            self._call(
                "head", key, lambda: self.client.head_object(Bucket=self.location.bucket, Key=key)
            )
        except CvCatalogError:
            return
        raise CatalogError(
            f"{self.location} was published by cvcatalog 0.1 ({LEGACY_DB_NAME}), which this "
            f"cvcatalog does not read: its publisher publishes it again with this one "
            f"(`cvcatalog migrate`, then `cvcatalog publish --to {self.location}`)"
        )

    def _download(self, key: str, dest: Path, head: dict[str, Any]) -> None:
        try:
            self.paths.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CatalogError(
                f"cannot create the remote catalog cache {self.paths.root}: {e.strerror or e}"
            ) from None
        expected = (head.get("Metadata") or {}).get("sha256")
        size = int(head.get("ContentLength") or 0)
        self.notify(f"fetching the catalog database of {self.location} ({size / 1e6:,.1f} MB)")
        with replacing(dest) as tmp:

            def fetch() -> str:
                resp = self.client.get_object(
                    Bucket=self.location.bucket, Key=key, IfMatch=head.get("ETag") or "*"
                )
                h = hashlib.sha256()
                with open(tmp, "wb") as f:
                    for chunk in resp["Body"].iter_chunks(1 << 20):
                        h.update(chunk)
                        f.write(chunk)
                return h.hexdigest()

            digest = self._call("download", key, fetch)
            got = tmp.stat().st_size
            if got != size or (expected and digest != expected):
                raise CatalogError(
                    f"the catalog database at {self.location} did not match its size/SHA-256 "
                    "after download (being re-published right now?); try again"
                )

    def _remove_old_copies(self, keep: Path) -> None:
        for old in [
            *self.paths.root.glob("catalog-*.ducklake"),
            *self.paths.root.glob("catalog-*.duckdb"),
        ]:
            if old != keep:
                with contextlib.suppress(OSError):
                    old.unlink()

    # -- CatalogDB -----------------------------------------------------------------------
    def exists(self) -> bool:
        return True

    def initialise(self) -> None:
        raise read_only_error(self.location, "create or migrate its database")

    def connect(
        self, *, scratch: bool = False, at: lake.AsOf | None = None
    ) -> duckdb.DuckDBPyConnection:
        """A read-only session on the published DuckLake: its metadata from the local copy,
        its files read from the catalog's URL through httpfs.

        A published catalog is data, not code: whoever can write its prefix can change any
        SQL stored in it (its views, and any of its tables turned into a view, DuckLake's own
        metadata included). So the session shuts external access off, except for the
        catalog's own prefix and local copy, before it attaches the file (_lock_down): no
        stored SQL, whenever DuckLake or cvcatalog reads it, can read a local file or another
        location. It then defines cvcatalog's views itself (temporary views from this
        cvcatalog's templates, found before the stored ones)."""
        path = self.database_file()
        files = self._lake_files(path)
        con = self._open(
            path, read_only=True, prepare=lambda c: self._lock_down(c, files)
        )
        try:
            if at is not None:
                at = self.check_kept(con, at)
            # its files under the catalog's own URL, whatever data path the file records
            lake.attach(con, STATE_DB, read_only=True, at=at, data=self._data_path)
            use_search_path(con, scratch)
            gap = trips.recorded_gap(con)
            for sql in tables.view_statements(temporary=True, max_gap_s=gap).values():
                try:
                    con.execute(sql)
                except duckdb.CatalogException:
                    if at is None:
                        raise
                    # the lake as of `at` has none of the view's tables yet (snapshot 0 has
                    # no table): no view then either, and a query naming it is told so
                    # (lake.not_yet_shown)
            tables.spatial_session(con, temporary=True)  # its own cv_* macros, as its views
            return con
        except duckdb.Error as e:
            con.close()
            raise self._cannot_open(e) from None
        except BaseException:
            con.close()
            raise

    @property
    def _data_path(self) -> str:
        """Where the published lake's files are: under the catalog's own URL."""
        return lake.data_path(self.location.url)

    @property
    def lake_url(self) -> str:
        """The published catalog's URL: its lake's files are there, whatever lake the catalog
        it was published from recorded (a local one: lineage read the reader's cache
        directory, and the bytes only older snapshots show counted nothing)."""
        return self.location.url

    def _lake_files(self, path: Path) -> list[str]:
        """The URLs of every file the published lake lists (data and delete files of every
        kept snapshot) under its own data path: the only S3 objects its sessions may read.
        Read in a session that reaches nothing but the local copy. A metadata table that is a
        view, or a file path that is absolute or climbs out of the data path ('..'), is a
        tampered catalog: refused in one line. DuckDB allows a directory by its name's prefix
        and S3 resolves '..' after that check, so a prefix allowed whole let stored SQL read
        `s3://bucket/prefix/../elsewhere`: the sessions allow these exact files instead."""
        known = self._files.get(path)
        if known is not None:
            return known
        con = self._open(path, read_only=True, prepare=self._no_access)
        try:
            views = con.execute(
                "SELECT view_name FROM duckdb_views() WHERE database_name = ? "
                "AND starts_with(view_name, 'ducklake')",
                [STATE_DB],
            ).fetchall()
            if views:
                raise self._tampered(f"its lake metadata {views[0][0]} is a view")
            base = self._data_path
            entries = lake.data_files(con, base) + lake.delete_file_entries(con, base)
        except duckdb.Error as e:
            raise self._cannot_open(e) from None
        finally:
            con.close()
        files = sorted({e.location for e in entries})
        for url in files:
            inside = url.removeprefix(base)
            if url == inside or ".." in inside.split("/") or "\\" in inside:
                raise self._tampered(f"it lists a file outside {base}: {url}")
        self._files = {path: files}  # one copy is current at a time
        return files

    def _cannot_open(self, e: duckdb.Error) -> CatalogError:
        return CatalogError(
            f"cannot open the published catalog {self.location}: "
            f"{str(e).strip().splitlines()[0]}"
        )

    def _tampered(self, why: str) -> CatalogError:
        return CatalogError(
            f"refusing to read the published catalog {self.location}: {why} (its publisher's "
            "file was changed; publish it again)"
        )

    def _no_access(self, con: duckdb.DuckDBPyConnection) -> None:
        """Nothing outside the local copy's directory (and the allowed_paths set before): no
        other S3 object, no other file."""
        con.execute("SET allowed_directories = ?", [[str(self.paths.root) + "/"]])
        con.execute("SET enable_external_access = false")

    def _lock_down(self, con: duckdb.DuckDBPyConnection, files: Sequence[str]) -> None:
        """Before the published file is attached: S3 access, every extension the session
        uses (none can be loaded later), then external access off but for the local copy's
        directory and the exact files the lake lists (_lake_files)."""
        s3_connection(
            con,
            profile=self.cfg.profile,
            no_sign_request=self.cfg.no_sign_request,
            endpoint=self.cfg.endpoint_url,
        )
        lake.load(con)
        load_extension(con, "spatial")
        con.execute("SET allowed_paths = ?", [list(files)])
        self._no_access(con)

    @contextlib.contextmanager
    def _session(
        self, *, with_lake: bool = True, on_read: OnRead | None = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """Every session of a published catalog is connect()'s, its lake attached (with_lake
        is read_state()'s, which it serves too), an instance of its own."""
        con = self.connect()
        try:
            with watched(con, on_read, ReadLog()):
                yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def write(
        self,
        *,
        run_id: str | None = None,
        message: str = "write",
        rebuild: Sequence[str] = (),
        blank: bool = False,
        state_only: bool = False,
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        raise read_only_error(self.location, "write to it")
        yield  # pragma: no cover
