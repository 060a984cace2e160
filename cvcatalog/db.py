"""The catalog database: migrations, read connections and copy-on-write transactions.

Writers never modify the live catalog.duckdb in place. A write copies it, applies one
transaction to the copy, checkpoints, and renames the copy over the original. So:
  * a crash at any point leaves the previous, consistent catalog;
  * a user with a DuckDB shell open on the catalog (even read-write) never blocks an ingest:
    the shell keeps reading the snapshot it opened, and sees new data when reopened;
  * cvcatalog processes serialise their writes with one inter-process file lock.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import filelock

from cvcatalog.config import DownloadConfig
from cvcatalog.exceptions import CatalogError, CatalogLockedError
from cvcatalog.layout import CatalogPaths, fsync_dir
from cvcatalog.sqlutil import load_sql
from cvcatalog.storage import (
    LakeStore,
    normalise_storage,
    read_lake_url,
    record_lake_url,
    store_for,
)

MIGRATIONS: list[tuple[int, str]] = [
    (1, "001_catalog.sql"),
    (2, "002_listing_cache.sql"),
    (3, "003_datasets.sql"),
    (4, "004_quality.sql"),
    (5, "005_runs.sql"),
    (6, "006_catalog_settings.sql"),
]
SCHEMA_VERSION = max(v for v, _ in MIGRATIONS)

Notify = Callable[[str], None]

LAKE_SECRET = "cvcatalog_lake"
_LAKE_SECRET_LOCK = threading.Lock()


def _quiet(_: str) -> None:
    pass


def now_utc() -> datetime:
    return datetime.now(UTC)


def _is_lock_conflict(err: duckdb.Error) -> bool:
    text = str(err)
    return "Could not set lock" in text or "Conflicting lock" in text


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply the migrations this database has not seen; returns the resulting version."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
    )
    # set-based, not "above the highest applied": migrations developed in parallel (003, 004,
    # 005) may be merged in any order, and each is applied once whenever it arrives
    applied = {int(r[0]) for r in con.execute("SELECT version FROM schema_migrations").fetchall()}
    current = max(applied, default=0)
    if current > SCHEMA_VERSION:
        raise CatalogError(
            f"the catalog was written by a newer cvcatalog (schema {current}, this one knows "
            f"{SCHEMA_VERSION}); upgrade cvcatalog"
        )
    for version, name in sorted(MIGRATIONS):
        if version in applied:
            continue
        con.execute(load_sql("migrations", name))
        con.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", [version, name, now_utc()])
        applied.add(version)
    return max(applied, default=0)


def ensure_views(con: duckdb.DuckDBPyConnection, paths: CatalogPaths) -> None:
    """Create the views of any (source, type) this catalog has none for yet (new catalogs,
    or a cvcatalog that learned a new message type)."""
    # imported here: schemas and views build on this module's helpers
    from cvcatalog.schemas import SCHEMAS
    from cvcatalog.views import refresh_union_views, refresh_views

    have = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    # pairs with partitions written under another canonical schema: their views must drop them
    stale = {
        (src, mt)
        for src, mt, version in con.execute(
            "SELECT DISTINCT source, message_type, canonical_version FROM partitions "
            "WHERE status = 'complete'"
        ).fetchall()
        if (src, mt) in SCHEMAS and version != SCHEMAS[(src, mt)].canonical_version
    }
    for (source, message_type), schema in SCHEMAS.items():
        missing = schema.view_name not in have or schema.socrata_view_name not in have
        if missing or (source, message_type) in stale:
            refresh_views(con, paths, source, message_type)
    refresh_union_views(con, if_changed=True)  # follows any change in the set of schemas
    from cvcatalog.datasets.views import ensure_dataset_views

    ensure_dataset_views(con, paths)  # ngsim_trajectories, trajectories (cvcatalog.datasets)


class CatalogDB:
    """Connections to one catalog database with bounded waits and atomic publishing."""

    def __init__(
        self,
        paths: CatalogPaths,
        lock_timeout: float = 60.0,
        notify: Notify = _quiet,
        *,
        storage: str | None = None,
        s3: DownloadConfig | None = None,
    ) -> None:
        """storage: the lake location asked for ('local' or s3://...; None: whatever the
        catalog records). s3: profile/endpoint settings for an S3 lake."""
        self.paths = paths
        self.lock_timeout = lock_timeout
        self.notify = notify
        self.requested_storage = storage
        self.s3 = s3
        self._lake_url: str | None = None
        self._lake_known = False
        self._store: LakeStore | None = None
        #: views counted after this instance last ensured them (None: not yet)
        self._views_seen: int | None = None

    # -- locking -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _writer_lock(self) -> Iterator[None]:
        self.paths.ensure()
        lock = filelock.FileLock(str(self.paths.db_lock))
        try:
            lock.acquire(timeout=min(0.5, self.lock_timeout))
        except filelock.Timeout:
            self.notify(
                "waiting for another cvcatalog process to finish writing the catalog "
                f"(up to {self.lock_timeout:.0f}s)"
            )
            try:
                lock.acquire(timeout=self.lock_timeout)
            except filelock.Timeout:
                raise CatalogLockedError(
                    f"the catalog at {self.paths.root} stayed locked by another cvcatalog "
                    f"process for {self.lock_timeout:.0f}s; try again when it has finished"
                ) from None
        try:
            yield
        finally:
            lock.release()

    def _connect(self, path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
        """Open with retries while another process (e.g. a read-write shell) holds the file."""
        deadline = time.monotonic() + self.lock_timeout
        told = False
        while True:
            try:
                return duckdb.connect(str(path), read_only=read_only)
            except duckdb.IOException as e:
                if not _is_lock_conflict(e):
                    if "Permission denied" in str(e):
                        raise CatalogError(f"permission denied opening {path}") from None
                    raise CatalogError(f"cannot open the catalog database {path}: {e}") from None
                if time.monotonic() >= deadline:
                    raise CatalogLockedError(
                        f"{path.name} is held open read-write by another process for more than "
                        f"{self.lock_timeout:.0f}s; close that DuckDB session or open it with "
                        "-readonly"
                    ) from None
                if not told:
                    self.notify(f"{path.name} is locked by another process; waiting")
                    told = True
                time.sleep(0.2)

    # -- public --------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.paths.db.exists()

    def initialise(self) -> None:
        """Create (or migrate) the catalog database."""
        with self.write():
            pass

    @contextlib.contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection to the current snapshot."""
        if not self.exists():
            self.initialise()
        con = self._connect(self.paths.db, read_only=True)
        try:
            self._attach_lake(con, read_lake_url(con))
            yield con
        finally:
            con.close()

    # -- the lake ------------------------------------------------------------------------
    def _attach_lake(self, con: duckdb.DuckDBPyConnection, url: str | None) -> None:
        """Views of an S3 lake read through httpfs: load it and create the session's secret."""
        self._lake_url, self._lake_known = url, True
        if url is None:
            return
        from cvcatalog.duckdb_ext import load_httpfs, s3_connection

        # Connections to one file in one process share a DuckDB instance and its temporary
        # secrets: create the secret once, never concurrently (a write-write conflict).
        with _LAKE_SECRET_LOCK:
            have = con.execute(
                "SELECT count(*) FROM duckdb_secrets() WHERE name = ?", [LAKE_SECRET]
            ).fetchone()
            if have and have[0]:
                load_httpfs(con)
                return
            cfg = self.s3
            s3_connection(
                con,
                profile=cfg.profile if cfg else None,
                endpoint=cfg.endpoint_url if cfg else None,
                name=LAKE_SECRET,
            )

    def attach_lake(self, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        """Make a scratch connection able to read this catalog's lake (httpfs for S3)."""
        self._attach_lake(con, self.lake_url)
        return con

    @property
    def lake_url(self) -> str | None:
        """Where the Parquet lake lives: None for the catalog directory, else s3://..."""
        if not self._lake_known:
            if self.exists():
                with self.read():
                    pass
            else:
                self._lake_known = True
                self._lake_url = normalise_storage(self.requested_storage)
        return self._lake_url

    @property
    def store(self) -> LakeStore:
        url = self.lake_url
        if self._store is None or self._store.url != url:
            self._store = store_for(self.paths, url, self.s3)
        return self._store

    @contextlib.contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction on a private copy, published by an atomic rename on success."""
        with self._writer_lock():
            self._remove_stale_copies()
            tmp = self.paths.db.with_name(f".{self.paths.db.name}.{uuid.uuid4().hex}.tmp")
            try:
                with self._file_errors("copy"):
                    if self.exists():
                        shutil.copyfile(self.paths.db, tmp)
                con = self._connect(tmp, read_only=False)
                try:
                    con.execute("BEGIN TRANSACTION")
                    migrate(con)
                    url = read_lake_url(con)
                    if self.requested_storage is not None:
                        url = record_lake_url(con, normalise_storage(self.requested_storage))
                    self._attach_lake(con, url)
                    self._ensure_views(con)
                    yield con
                    with self._full_disk("commit"):
                        con.execute("COMMIT")
                        con.execute("CHECKPOINT")
                except BaseException:
                    with contextlib.suppress(duckdb.Error):
                        con.execute("ROLLBACK")
                    raise
                finally:
                    con.close()
                with self._file_errors("publish"):
                    with open(tmp, "rb") as f:
                        os.fsync(f.fileno())
                    os.replace(tmp, self.paths.db)
                    fsync_dir(self.paths.root)
            finally:
                for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
                    with contextlib.suppress(FileNotFoundError):
                        leftover.unlink()

    def _ensure_views(self, con: duckdb.DuckDBPyConnection) -> None:
        """ensure_views on this instance's first transaction; later ones only if views went
        missing (it reads information_schema: tens of ms on every one of a load's commits)."""
        count = "SELECT count(*) FROM duckdb_views() WHERE NOT internal"
        if self._views_seen is not None:
            row = con.execute(count).fetchone()
            if row is not None and row[0] >= self._views_seen:
                return
        ensure_views(con, self.paths)
        row = con.execute(count).fetchone()
        self._views_seen = row[0] if row is not None else None

    def _remove_stale_copies(self) -> None:
        """Private copies left by a writer killed mid-transaction (only the lock holder writes
        copies, so under the lock every copy is stale)."""
        for stale in self.paths.root.glob(f".{self.paths.db.name}.*.tmp*"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

    def _no_space(self, step: str) -> CatalogError:
        return CatalogError(
            f"no space left on device while writing the catalog database in "
            f"{self.paths.root} ({step}); free some space or lower cache.max_size_gb"
        )

    @contextlib.contextmanager
    def _full_disk(self, step: str) -> Iterator[None]:
        """DuckDB reports a full disk as an IO or even a FATAL error: one clear line."""
        try:
            yield
        except duckdb.Error as e:
            if "No space left on device" in str(e):
                raise self._no_space(step) from None
            raise

    @contextlib.contextmanager
    def _file_errors(self, step: str) -> Iterator[None]:
        """Disk full, permissions: one clear line instead of an OSError from deep inside."""
        try:
            yield
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise self._no_space(step) from None
            raise CatalogError(
                f"cannot {step} the catalog database in {self.paths.root}: {e.strerror or e}"
            ) from None
