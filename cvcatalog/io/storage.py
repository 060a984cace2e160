"""Where a catalog's Parquet lake lives: the local catalog directory, or s3://bucket/prefix.

One switch (`storage:` in the config, or CVCATALOG_STORAGE) chooses it when a catalog is
created; the choice is recorded in the catalog database (`catalog_settings.lake_url`, cvcatalog.state.settings), so every
later reader (views, `cvcatalog query`, Dask, verify) finds the files without being told again.
The database, staging, locks and the access log always stay in the local catalog directory.

Files keep the same catalog-relative path either way (`lake/source=.../part-*.parquet`,
`quarantine/...`): on S3 the key is `<prefix>/<path>`. An S3 PUT is atomic (the object appears
whole or not at all), is sent with its SHA-256 (S3 rejects a body that does not match) and is
verified with a HEAD afterwards; until the catalog transaction commits, no view names it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cvcatalog.config import DownloadConfig, download_config
from cvcatalog.exceptions import CatalogError, ConfigError, CvCatalogError, S3Error
from cvcatalog.io.duckdb_ext import endpoint_url
from cvcatalog.io.layout import (
    CatalogPaths,
    can_sync_at_once,
    move_file,
    place_file,
    prune_empty_dirs,
    publish_file,
    safe_rel,
    sha256_file,
    sync_file_systems,
)
from cvcatalog.io.s3 import (
    ErrorKind,
    Retrier,
    RetryPolicy,
    TokenBucket,
    classify_error,
    make_client,
)

#: Top-level directories of the catalog that hold data files (local or on S3).
DATA_DIRS = ("lake", "quarantine")
#: the object at an S3 lake's root that names the last write committed to it (S3Store.claim):
#: outside DATA_DIRS, so no listing of the lake's files (orphans, verify, publish) sees it
LINEAGE_OBJECT = "cvcatalog-lineage.json"
#: seconds a lineage check stands for the deletes after it (S3Store.guard)
OWNER_RECHECK_S = 5.0
#: files LakeStore.put_all places at once: each waits on the network (an S3 PUT) or on two
#: fsyncs (a local move of a few files), so a batch of a thousand tiny days' files placed one
#: at a time spends seconds waiting (5 ms a file here, 0.5 ms eight at once)
PUT_WORKERS = 8
#: a local batch of at least this many files is moved first and made durable after, by one
#: sync of each file system (LocalStore.put_all): 2,000 fsyncs of a thousand tiny days' files
#: and folders cost ~0.6 CPU-s of placing threads and 0.3-1.0 s of system time; the 10 s
#: ingest took 0-0.9 s less, the more the busier the disk's journal was (interleaved runs).
#: A smaller batch (a few big days) syncs its own files: a file-system sync also writes out
#: any other dirty data there, such as staged raw copies about to be deleted.
SYNC_ONCE_MIN_FILES = 16


@dataclass(frozen=True)
class Placement:
    """A finished local file to put at a catalog-relative path (src is consumed)."""

    src: Path
    rel: str
    size: int
    sha256: str


def normalise_storage(value: str | None) -> str | None:
    """None / "" / "local" -> None (the catalog directory); s3://... -> its canonical URL."""
    if value is None or value.strip() in ("", "local"):
        return None
    if not is_remote(value):
        raise ConfigError(f"storage must be 'local' or an s3://bucket/prefix URL, got {value!r}")
    return S3Location.parse(value).url


_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,254}$")


def is_remote(path: object) -> bool:
    """True for an s3:// URL (a published catalog), False for a local directory."""
    return isinstance(path, str) and path.strip().lower().startswith("s3://")


@dataclass(frozen=True)
class S3Location:
    """s3://bucket/prefix, normalised (no trailing slash)."""

    bucket: str
    prefix: str  # "" or "a/b" (no leading or trailing slash)

    @classmethod
    def parse(cls, url: str) -> S3Location:
        if not isinstance(url, str):  # (None was "'NoneType' object has no attribute 'strip'")
            raise ConfigError(f"{url!r} is not an s3:// URL (expected s3://bucket/prefix)")
        text = url.strip()
        if not text.lower().startswith("s3://"):
            raise ConfigError(f"{url!r} is not an s3:// URL (expected s3://bucket/prefix)")
        rest = text[5:]
        bucket, _, prefix = rest.partition("/")
        prefix = prefix.strip("/")
        if not _BUCKET_RE.match(bucket):
            raise ConfigError(f"{url!r} does not name a valid S3 bucket (s3://bucket/prefix)")
        parts = prefix.split("/") if prefix else []
        if any(p in ("", ".", "..") for p in parts):
            raise ConfigError(f"{url!r}: the prefix may not contain empty, '.' or '..' parts")
        return cls(bucket, prefix)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def __str__(self) -> str:
        return self.url


# -- stores --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Lineage:
    """What an S3 lake's lineage object says: the token of the last write committed to the
    lake and the catalog that made it (`by`: host and directory), and a write begun and not
    yet settled (`pending`, `pending_by`): a write in progress, or one that ended (committed
    or not) before it could settle."""

    token: str | None
    by: str | None = None
    pending: str | None = None
    pending_by: str | None = None


def lineage_refusal(found: Lineage | None, local: str | None, me: str) -> str | None:
    """Why the catalog `me`, whose last write to the lake was `local`, may not write to it
    now (None: it may). A copy of a catalog directory shares its S3 lake: once one of the
    two writes, the other's state no longer knows the lake's files, and its writes (orphans
    deleted, eviction, cleanup) would delete the first's. The lake follows one line of
    writes; a catalog whose last write is not the lake's last is a copy left behind."""
    if found is None:  # a lake no write of this release has claimed yet
        return None
    if found.pending is not None:
        if found.pending == local:  # ours, committed, not settled: ours is the last
            return None
        if found.pending_by != me:
            return f"a write by {found.pending_by or 'another catalog'} is in progress there"
    if found.token == local:
        return None
    return f"it was last written by {found.by or 'another catalog'}"


class LakeStore(ABC):
    """Put, hash, list and delete the data files of one catalog by catalog-relative path."""

    url: str | None  # None: the local catalog directory

    @abstractmethod
    def location(self, rel: str) -> str:
        """What DuckDB and pyarrow open: a local absolute path or an s3:// URL."""

    @abstractmethod
    def relative(self, location: str) -> str | None:
        """The catalog-relative path of a location (location's inverse); None for one that is
        not under the catalog."""

    @abstractmethod
    def put(self, src: Path, rel: str, size: int, sha256: str) -> None:
        """Place a finished local file at rel (src is consumed)."""

    def put_all(self, files: Sequence[Placement], placed: list[str]) -> None:
        """Put every file, up to PUT_WORKERS at once; each destination is appended to placed
        as soon as it is there (what to discard if a later one fails). Raises the first
        error once the others have finished."""
        lock = threading.Lock()

        def put(f: Placement) -> None:
            self.put(f.src, f.rel, f.size, f.sha256)
            with lock:
                placed.append(f.rel)

        if len(files) <= 1:
            for f in files:
                put(f)
            return
        with ThreadPoolExecutor(min(PUT_WORKERS, len(files)), "place") as pool:
            futures = [pool.submit(put, f) for f in files]
            errors = [e for e in (fut.exception() for fut in futures) if e is not None]
        if errors:
            raise errors[0]

    @abstractmethod
    def delete(self, rel: str) -> None:
        """Remove rel; a missing file is not an error."""

    @abstractmethod
    def sha256(self, rel: str) -> str | None:
        """The SHA-256 of the stored bytes (re-read, not trusted metadata); None if missing."""

    @abstractmethod
    def size(self, rel: str) -> int | None:
        """The stored file's size in bytes; None if missing (files whose hash nobody recorded,
        e.g. the lake's delete files, are checked by size)."""

    @abstractmethod
    def list_files(self, under: str | None = None) -> list[str]:
        """Catalog-relative paths of every stored file under `under` (default: lake and
        quarantine)."""

    @abstractmethod
    def local_copy(self, rel: str, scratch: Path) -> Path:
        """A local file with rel's bytes: the file itself, or a download to scratch."""

    @property
    def is_local(self) -> bool:
        return self.url is None

    def duplicate(self, src: str, dest: str, scratch: Path) -> None:
        """Give the file src a second name dest (same bytes): a copy through scratch."""
        local = self.local_copy(src, scratch / Path(dest).name)
        self.put(local, dest, local.stat().st_size, sha256_file(local))

    @abstractmethod
    def deleted(self, rels: Iterable[str]) -> None:
        """Files deleted by something else (DuckLake's cleanup): the folders they emptied go,
        as delete's do."""

    def freed_bytes(self, held: Iterable[tuple[str, int]], shown: Iterable[str]) -> int:
        """Bytes deleting the files held ((rel, size the lake recorded)) would free, the files
        shown staying: a store without shared bytes frees each file's size."""
        return sum(size for _, size in held)

    def discard(self, rels: Iterable[str]) -> None:
        """Best-effort delete of files the catalog no longer names (or never named): one that
        survives is an orphan the next run of its partition, or `cache verify`, removes."""
        for rel in rels:
            with contextlib.suppress(CvCatalogError, OSError):
                self.delete(rel)


class LocalStore(LakeStore):
    url = None

    def __init__(self, paths: CatalogPaths) -> None:
        self.paths = paths
        #: rel -> location: every commit locates every current file (tables.sync_all), and
        #: resolving a path costs a system call per component
        self._located: dict[str, str] = {}

    def location(self, rel: str) -> str:
        where = self._located.get(rel)
        if where is None:
            where = self._located[rel] = str(self.paths.absolute(rel))
        return where

    def relative(self, location: str) -> str | None:
        return _under(location, os.path.join(self.paths.root, ""))  # (the root, a "/" after)

    def put(self, src: Path, rel: str, size: int, sha256: str) -> None:
        publish_file(src, self.paths.absolute(rel))

    def put_all(self, files: Sequence[Placement], placed: list[str]) -> None:
        """A batch of SYNC_ONCE_MIN_FILES or more: every file moved into place, then all made
        durable by one sync of each file system they are on (layout.sync_file_systems). No
        reader can see a file before the commit that names it, and the commit starts only
        after this returns, so a file need not be durable before its rename. A file on
        another file system than its staging is copied and synced on its own (move_file)."""
        if len(files) < SYNC_ONCE_MIN_FILES or not can_sync_at_once():
            super().put_all(files, placed)
            return
        folders: dict[Path, None] = {}
        for f in files:
            dest = self.paths.absolute(f.rel)
            move_file(f.src, dest)
            placed.append(f.rel)
            folders[dest.parent] = None
        sync_file_systems(folders)

    def delete(self, rel: str) -> None:
        p = self.paths.absolute(rel)
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
        prune_empty_dirs(p.parent, self.paths.root)

    def deleted(self, rels: Iterable[str]) -> None:
        for parent in sorted({self.paths.absolute(r).parent for r in rels}, reverse=True):
            prune_empty_dirs(parent, self.paths.root)

    def sha256(self, rel: str) -> str | None:
        p = self.paths.absolute(rel)
        return sha256_file(p) if p.is_file() else None

    def size(self, rel: str) -> int | None:
        p = self.paths.absolute(rel)
        return p.stat().st_size if p.is_file() else None

    def local_copy(self, rel: str, scratch: Path) -> Path:
        return self.paths.absolute(rel)

    def freed_bytes(self, held: Iterable[tuple[str, int]], shown: Iterable[str]) -> int:
        """Counted on disk: a file gone frees nothing, and one whose bytes a shown file shares
        (a hard link duplicate() made: a rebuilt table's files) frees nothing either."""
        sizes: dict[tuple[int, int], int] = {}
        linked = False
        for rel, _ in held:
            try:
                st = self.paths.absolute(rel).stat()
            except OSError:
                continue
            sizes[(st.st_dev, st.st_ino)] = st.st_size
            linked = linked or st.st_nlink > 1
        for rel in shown if linked else ():
            with contextlib.suppress(OSError):
                st = self.paths.absolute(rel).stat()
                sizes.pop((st.st_dev, st.st_ino), None)
        return sum(sizes.values())

    def duplicate(self, src: str, dest: str, scratch: Path) -> None:
        """A hard link: no bytes copied (a copy when the two are on different file systems:
        a folder of the catalog linked to another disk)."""
        source, target = self.paths.absolute(src), self.paths.absolute(dest)
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        place_file(source, target, lambda: os.link(source, target))

    def list_files(self, under: str | None = None) -> list[str]:
        tops = [self.paths.absolute(under)] if under else [self.paths.root / d for d in DATA_DIRS]
        out: list[str] = []
        for top in tops:  # os.walk passes over a directory another writer removes meanwhile
            for here, _, names in os.walk(top):  # (paths under root as given: lexical)
                folder = Path(here).relative_to(self.paths.root).as_posix()
                out += [f"{folder}/{n}" for n in names if os.path.isfile(os.path.join(here, n))]
        return sorted(out)


def b64(hexdigest: str) -> str:
    return base64.b64encode(bytes.fromhex(hexdigest)).decode()


class Uploader:
    """HEAD, PUT (with SHA-256), GET, LIST and DELETE under one S3 location, with retries."""

    def __init__(self, client: Any, location: S3Location, cfg: DownloadConfig) -> None:
        self.client = client
        self.location = location
        self.cfg = cfg
        self.limiter = TokenBucket(cfg.rate_limit, capacity=max(1.0, cfg.max_workers))
        self._lock = threading.Lock()
        self.requests = 0

    def call(self, operation: str, key: str, fn: Callable[[], Any]) -> Any:
        def counted() -> Any:
            with self._lock:
                self.requests += 1
            return fn()

        retrier = Retrier.from_config(self.cfg, limiter=self.limiter)
        return retrier.call(operation, f"s3://{self.location.bucket}/{key}", counted)

    def head(self, rel: str, checksums: bool = False) -> dict[str, Any] | None:
        key = self.location.key(rel)
        kwargs: dict[str, Any] = {"Bucket": self.location.bucket, "Key": key}
        if checksums:
            kwargs["ChecksumMode"] = "ENABLED"
        try:
            result: dict[str, Any] = self.call(
                "head", key, lambda: self.client.head_object(**kwargs)
            )
            return result
        except CvCatalogError as e:
            if _is_not_found(e):
                return None
            raise

    @staticmethod
    def matches(head: dict[str, Any] | None, size: int, sha256: str) -> bool:
        if head is None:
            return False
        return (
            int(head.get("ContentLength", -1)) == size
            and (head.get("Metadata") or {}).get("sha256") == sha256
        )

    def put(self, rel: str, path: Path, size: int, sha256: str, content_type: str) -> None:
        key = self.location.key(rel)

        def send() -> Any:
            with open(path, "rb") as body:
                return self.client.put_object(
                    Bucket=self.location.bucket,
                    Key=key,
                    Body=body,
                    ContentLength=size,
                    ContentType=content_type,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=b64(sha256),
                    Metadata={"sha256": sha256},
                )

        self.call("upload", key, send)

    def verify(self, rel: str, size: int, sha256: str) -> tuple[bool, str, str | None]:
        """(verified, checksum kind, reason) from a HEAD of the uploaded object."""
        return self.check(self.head(rel, checksums=True), size, sha256, "not found after upload")

    @staticmethod
    def check(
        head: dict[str, Any] | None, size: int, sha256: str, absent: str = "not found"
    ) -> tuple[bool, str, str | None]:
        """Size, x-amz-meta-sha256 and (when the store keeps one) S3's SHA-256 checksum."""
        if head is None:
            return False, "", absent
        got = int(head.get("ContentLength", -1))
        if got != size:
            return False, "", f"size is {got} on S3, {size} locally"
        meta = (head.get("Metadata") or {}).get("sha256")
        if meta != sha256:
            return False, "", f"x-amz-meta-sha256 is {meta!r}, expected {sha256}"
        stored = head.get("ChecksumSHA256")
        if stored is None:
            return True, "metadata", None
        if stored.split("-")[0] != b64(sha256):
            return False, "", f"S3's SHA-256 checksum {stored} does not match {b64(sha256)}"
        return True, "sha256", None

    def delete(self, rel: str) -> None:
        key = self.location.key(rel)
        self.call(
            "delete",
            key,
            lambda: self.client.delete_object(Bucket=self.location.bucket, Key=key),
        )

    def sha256(self, rel: str) -> str | None:
        """Stream the object and hash it (a retried GET restarts the hash)."""
        key = self.location.key(rel)

        def fetch() -> str:
            body = self.client.get_object(Bucket=self.location.bucket, Key=key)["Body"]
            h = hashlib.sha256()
            try:
                for chunk in body.iter_chunks(1 << 20):
                    h.update(chunk)
            finally:
                body.close()
            return h.hexdigest()

        try:
            digest: str = self.call("get", key, fetch)
            return digest
        except CvCatalogError as e:
            if _is_not_found(e):
                return None
            raise

    def _list_page(self, prefix: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        page: dict[str, Any] = self.call(
            "list", prefix, lambda: self.client.list_objects_v2(**kwargs)
        )
        return page

    def list_keys(self, rel_prefix: str, limit: int | None = None) -> list[str]:
        """Catalog-relative paths of every object under rel_prefix/ (the first `limit`)."""
        prefix = self.location.key(rel_prefix.rstrip("/") + "/")
        out: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.location.bucket, "Prefix": prefix}
            if limit is not None:
                kwargs["MaxKeys"] = limit - len(out)
            if token:
                kwargs["ContinuationToken"] = token
            page = self._list_page(prefix, kwargs)
            strip = len(self.location.prefix) + 1 if self.location.prefix else 0
            out += [o["Key"][strip:] for o in page.get("Contents", [])]
            if not page.get("IsTruncated") or (limit is not None and len(out) >= limit):
                return out[:limit]
            token = page.get("NextContinuationToken")


def _is_not_found(e: CvCatalogError) -> bool:
    """A 404 from S3 behind one of Retrier's errors."""
    return _is_status(e, 404)


def _is_status(e: CvCatalogError, status: int) -> bool:
    """An S3 answer of this HTTP status, final (not retried), behind one of Retrier's errors."""
    info = classify_error(e.__cause__) if e.__cause__ is not None else None
    return info is not None and info.kind is ErrorKind.FATAL and info.status == status


def content_type(rel: str) -> str:
    if rel.endswith(".parquet"):
        return "application/vnd.apache.parquet"
    if rel.endswith(".ndjson"):
        return "application/x-ndjson"
    if rel.endswith(".json"):
        return "application/json"
    return "application/octet-stream"


class S3Store(LakeStore):
    def __init__(self, url: str, cfg: DownloadConfig | None = None, client: Any = None) -> None:
        self.s3loc = S3Location.parse(url)
        self.url = self.s3loc.url
        # Your own bucket: signed requests, no rate limit; profile and endpoint as for ingest.
        base = cfg or download_config()
        self.cfg = base.model_copy(update={"no_sign_request": False, "rate_limit": 0.0})
        self._client = client
        self._up: Uploader | None = None
        self._owner_check: Callable[[], None] | None = None
        self._owned_at: float | None = None
        self._owner_lock = threading.Lock()  # (put_all's threads check once, not each)
        self._unconditional = False  # the endpoint has no conditional PUT (_put_lineage)

    def guard(self, check: Callable[[], None]) -> None:
        """check: raises when this catalog may not change the lake (lineage_refusal), run
        before the first put and again before a delete (at most every OWNER_RECHECK_S: a
        repair deletes its orphans one by one): a put adds a file under a new name, a delete
        may take one that another copy of the catalog shows."""
        self._owner_check, self._owned_at = check, None

    def check_owner(self) -> None:
        """The guard's check now (unless one ran in the last OWNER_RECHECK_S): the ingest's
        before it starts, which its first put then need not repeat."""
        self._own(again=True)

    def _own(self, again: bool) -> None:
        if self._owner_check is None:
            return
        with self._owner_lock:
            now = time.monotonic()
            last = self._owned_at
            if last is None or (again and now - last > OWNER_RECHECK_S):
                self._owner_check()
                self._owned_at = now

    @property
    def uploader(self) -> Uploader:
        if self._up is None:
            client = self._client if self._client is not None else make_client(self.cfg)
            self._up = Uploader(client, self.s3loc, self.cfg)
        return self._up

    def location_of(self, rel: str) -> str:
        return f"{self.url}/{safe_rel(rel)}"

    def location(self, rel: str) -> str:
        return self.location_of(rel)

    def relative(self, location: str) -> str | None:
        return _under(location, f"{self.url}/")

    def put(self, src: Path, rel: str, size: int, sha256: str) -> None:
        rel = safe_rel(rel)
        self._own(again=False)
        self.uploader.put(rel, src, size, sha256, content_type(rel))
        ok, _, reason = self.uploader.verify(rel, size, sha256)
        if not ok:
            with contextlib.suppress(CvCatalogError):
                self.uploader.delete(rel)
            raise S3Error(f"upload of {self.location_of(rel)} did not verify: {reason}")
        src.unlink()

    def deleted(self, rels: Iterable[str]) -> None:
        """An object store has no folders to prune."""

    def delete(self, rel: str) -> None:
        self._own(again=True)
        self.uploader.delete(safe_rel(rel))

    def sha256(self, rel: str) -> str | None:
        return self.uploader.sha256(safe_rel(rel))

    def size(self, rel: str) -> int | None:
        head = self.uploader.head(safe_rel(rel))
        return None if head is None else int(head.get("ContentLength", -1))

    def local_copy(self, rel: str, scratch: Path) -> Path:
        up, key = self.uploader, self.s3loc.key(safe_rel(rel))
        scratch.parent.mkdir(parents=True, exist_ok=True)
        up.call("get", key, lambda: up.client.download_file(self.s3loc.bucket, key, str(scratch)))
        return scratch

    def list_files(self, under: str | None = None) -> list[str]:
        tops = [safe_rel(under)] if under else list(DATA_DIRS)
        out: list[str] = []
        for top in tops:
            out += self.uploader.list_keys(top)
        return sorted(out)

    def check_unclaimed(self) -> None:
        """Before a catalog records this location as its lake: one line when it holds files
        already (one LIST of one key a folder), another catalog's: each of two catalogs
        writing one lake takes the other's files for its own orphans, which `cache verify
        --repair` and a re-run of a day delete, and `cache clear` deletes only its own."""
        lists = (self.uploader.list_keys(top, limit=1) for top in DATA_DIRS)
        found = next((keys[0] for keys in lists if keys), None)
        if found is None and self.lineage()[0] is not None:  # (one that wrote no file yet)
            found = LINEAGE_OBJECT
        if found is not None:
            raise ConfigError(
                f"{self.url} already holds another catalog's files ({self.url}/{found}); "
                "give this catalog a location of its own (two catalogs writing one lake "
                "delete each other's files as orphans)"
            )

    # -- the lake's line of writes (copies of a catalog directory share its S3 lake) --------
    def lineage(self) -> tuple[Lineage | None, str | None]:
        """The lake's lineage object and its ETag ((None, None): there is none yet)."""
        up, key = self.uploader, self.s3loc.key(LINEAGE_OBJECT)
        try:
            got = up.call(
                "get", key, lambda: up.client.get_object(Bucket=self.s3loc.bucket, Key=key)
            )
        except CvCatalogError as e:
            if _is_not_found(e):
                return None, None
            raise
        body = got["Body"].read()
        try:
            raw = json.loads(body)
            found = Lineage(**{k: raw.get(k) for k in ("token", "by", "pending", "pending_by")})
        except (ValueError, TypeError, AttributeError):
            raise CatalogError(
                f"{self.url}/{LINEAGE_OBJECT} is not cvcatalog's lineage object; "
                "this catalog's lake holds a file it did not write"
            ) from None
        return found, got.get("ETag")

    def _put_lineage(self, lineage: Lineage, etag: str | None) -> str | None:
        """Replace the lineage object if it is still the one read (ETag etag; None: if there
        is none): S3's conditional PUT, so of two copies writing at once one wins. Returns
        the new ETag, or None when the object changed since it was read."""
        up, key = self.uploader, self.s3loc.key(LINEAGE_OBJECT)
        body = json.dumps(lineage.__dict__).encode()

        def put(cond: dict[str, str]) -> Any:
            return up.call(
                "upload", key,
                lambda: up.client.put_object(
                    Bucket=self.s3loc.bucket, Key=key, Body=body,
                    ContentType="application/json", **cond,
                ),
            )  # fmt: skip

        cond = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
        try:
            done = put({} if self._unconditional else cond)
        except CvCatalogError as e:
            if _is_status(e, 412) or _is_status(e, 409):  # (409: a PUT racing this one)
                return None
            if self._unconditional or not _is_status(e, 501):
                raise
            # an endpoint without conditional writes (AWS S3 has them): the lineage still
            # refuses a copy left behind, not two copies writing at the same moment
            self._unconditional = True
            done = put({})
        etag_now: str | None = done.get("ETag")
        return etag_now

    def refusal_line(self, reason: str) -> str:
        """The one line of a write lineage_refusal gives a reason against."""
        return (
            f"{self.url} is not this catalog's to write: {reason}. A copy of a catalog "
            "directory shares its S3 lake, and a write from a copy the lake has moved past "
            "would delete files the other shows; write through the catalog that wrote last"
        )

    def refusal(self, local: str | None, me: str) -> str | None:
        """Why this catalog (me, whose last write was local) may not change the lake now
        (lineage_refusal of the lineage object as it is)."""
        return lineage_refusal(self.lineage()[0], local, me)

    def claim(self, local: str | None, new: str, me: str) -> str | None:
        """Begin a write whose token is new: the lineage object marks it pending, by me.
        Returns the ETag settle() expects."""
        for _ in range(2):  # once more if another writer replaced the object meanwhile
            found, etag = self.lineage()
            reason = lineage_refusal(found, local, me)
            if reason is not None:
                raise CatalogError(self.refusal_line(reason))
            # the lake's last write is local's now: settled, or committed and not settled
            by = me if found is None or found.pending == local else found.by
            mark = Lineage(local, by, new, me)
            put = self._put_lineage(mark, etag)
            if put is not None:
                return put
        raise CatalogError(self.refusal_line("another catalog writes there at the same time"))

    def settle(self, new: str, me: str, etag: str | None) -> None:
        """The write `new` is committed: the lake's last write. Left pending when this
        fails, claim() still knows the write as this catalog's."""
        with contextlib.suppress(CvCatalogError):
            self._put_lineage(Lineage(new, me), etag)

    def fs_options(self) -> dict[str, Any]:
        """s3fs keyword arguments for readers in other processes (Dask workers)."""
        return s3fs_options(
            self.cfg.profile, self.cfg.endpoint_url, RetryPolicy.from_config(self.cfg).attempts
        )


def store_for(
    paths: CatalogPaths, lake_url: str | None, cfg: DownloadConfig | None = None
) -> LakeStore:
    return LocalStore(paths) if lake_url is None else S3Store(lake_url, cfg)


# -- readers in other processes ------------------------------------------------------------
def s3fs_options(
    profile: str | None = None, endpoint: str | None = None, attempts: int | None = None
) -> dict[str, Any]:
    """What s3fs needs to reach the same store as boto3: profile and endpoint (the
    AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL variables when not given), and the attempts of the
    one retry policy (RetryPolicy.attempts): s3fs repeated botocore's own retries 5 times, so
    a read from an endpoint that refused every connection took ~12 s to fail."""
    opts: dict[str, Any] = {}
    if attempts is not None:
        opts["config_kwargs"] = {"retries": {"total_max_attempts": attempts, "mode": "standard"}}
    if profile:
        opts["profile"] = profile
    ep = endpoint_url(endpoint)
    if ep:
        opts["endpoint_url"] = ep
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        opts["client_kwargs"] = {"region_name": region}
    return opts


@dataclass(frozen=True)
class S3Access:
    """Picklable s3fs settings, so a Dask worker builds its own filesystem."""

    options: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, opts: dict[str, Any]) -> S3Access:
        return cls(tuple(sorted((k, _freeze(v)) for k, v in opts.items())))

    def filesystem(self) -> Any:
        return _s3fs(self.options)


def _freeze(v: Any) -> Any:
    return tuple(sorted((k, _freeze(x)) for k, x in v.items())) if isinstance(v, dict) else v


@lru_cache(maxsize=4)
def _s3fs(options: tuple[tuple[str, Any], ...]) -> Any:
    import s3fs

    kwargs = {k: _thaw(v) if k in ("client_kwargs", "config_kwargs") else v for k, v in options}
    fs = s3fs.S3FileSystem(**kwargs)
    if "config_kwargs" in kwargs:  # botocore retries as the policy says; s3fs not again
        fs.retries = 1
    return fs


def _thaw(v: Any) -> Any:
    return {k: _thaw(x) for k, x in v} if isinstance(v, tuple) else v


def _under(location: str, prefix: str) -> str | None:
    """What follows prefix in location, if location starts with it."""
    if location.startswith(prefix) and len(location) > len(prefix):
        return location[len(prefix) :]
    return None
