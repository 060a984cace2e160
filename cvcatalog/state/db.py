"""The catalog database: migrations, read connections and copy-on-write transactions.

catalog.ducklake is one DuckDB file holding the state tables and the DuckLake's metadata
(cvcatalog.io.lake). Writers never modify the live file in place. A write copies it, applies one
transaction to the copy (state changes, then the lake made to show exactly the files the state
calls current: one DuckLake snapshot), checkpoints, and renames the copy over the original. So:
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
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import filelock

from cvcatalog.clock import now_utc
from cvcatalog.config import DownloadConfig, IngestConfig, download_config
from cvcatalog.exceptions import CatalogError, CatalogLockedError
from cvcatalog.io import lake
from cvcatalog.io.duckdb_ext import load_httpfs, open_instance, s3_connection
from cvcatalog.io.layout import CatalogPaths, fsync_dir
from cvcatalog.io.readlog import OnRead, ReadLog, watched
from cvcatalog.io.storage import LakeStore, S3Store, normalise_storage, store_for
from cvcatalog.sqlutil import load_sql, quote_literal
from cvcatalog.state import blanks, checksums, deletes, legacy, pins, settings, tables, trips
from cvcatalog.state.settings import read_lake_url, record_lake_url

MIGRATIONS: list[tuple[int, str]] = [
    (1, "001_catalog.sql"),
    (2, "002_listing_cache.sql"),
    (3, "003_datasets.sql"),
    (4, "004_quality.sql"),
    (5, "005_runs.sql"),
    (6, "006_catalog_settings.sql"),
    (7, "007_ducklake.sql"),
    (8, "008_experiment_pins.sql"),
    (9, "009_file_deletes.sql"),
    (10, "010_file_checksums.sql"),
    (11, "011_runs_recovered.sql"),
    (12, "012_dataset_content.sql"),
]
SCHEMA_VERSION = max(v for v, _ in MIGRATIONS)

Notify = Callable[[str], None]

LAKE_SECRET = "cvcatalog_lake"
#: the block size of a new catalog file (DuckDB's default, 256 KiB, suits data, not metadata)
BLOCK_SIZE = 16384
#: the name the catalog file (state tables, DuckLake metadata) is attached as
STATE_DB = "cvcatalog"
#: unqualified names: the lake's tables and views first, then the state tables
SEARCH_PATH = f"{lake.LAKE}.{lake.SCHEMA},{STATE_DB}.main"
#: a session on the state tables alone (read_state): the lake is not attached
STATE_SEARCH_PATH = f"{STATE_DB}.main"
_LAKE_SECRET_LOCK = threading.Lock()
_WRITER_LOCKS: dict[str, threading.Lock] = {}
_WRITER_LOCKS_LOCK = threading.Lock()


def no_catalog(root: Path) -> CatalogError:
    """The one error of a read where there is no catalog (the API's and the CLI's alike): a
    mistyped path, not a new catalog; only the writers that fill one (ingest, discover, plan)
    create it."""
    if root.exists() and not root.is_dir():
        return CatalogError(f"{root} is a file, not a catalog directory")
    return CatalogError(
        f"no catalog at {root} (check --catalog / CVCATALOG_HOME; `cvcatalog ingest` creates one)"
    )


def _local_writer_lock(path: Path) -> threading.Lock:
    """The in-process writer lock of one catalog (every CatalogDB of it in this process)."""
    key = os.path.abspath(path)
    with _WRITER_LOCKS_LOCK:
        return _WRITER_LOCKS.setdefault(key, threading.Lock())


def _moment(t: datetime) -> str:
    """A time in check_kept's lines: UTC, to the second (as given when UTC cannot hold it:
    0001-01-01T00:00+14:00 was an unexpected OverflowError)."""
    try:
        return f"{t.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    except OverflowError:
        return t.isoformat()


def _quiet(_: str) -> None:
    pass


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


def use_search_path(
    con: duckdb.DuckDBPyConnection, scratch: bool = False, *, with_lake: bool = True
) -> None:
    """Unqualified names find the lake's tables and views, then the state tables; a scratch
    session creates its own objects in memory. with_lake=False: the state tables only."""
    path = SEARCH_PATH if with_lake else STATE_SEARCH_PATH
    if scratch:
        con.execute("USE memory")
        con.execute(f"SET search_path = {quote_literal('memory.main,' + path)}")
    else:
        con.execute(f"SET search_path = {quote_literal(path)}")


def _detach(con: duckdb.DuckDBPyConnection) -> None:
    """End a writer's transaction: its copy and lake are detached, the cursor closed."""
    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")
    with contextlib.suppress(duckdb.Error):
        con.execute("USE memory")
    for name in (lake.LAKE, STATE_DB):
        with contextlib.suppress(duckdb.Error):
            con.execute(f"DETACH DATABASE IF EXISTS {name}")
    con.close()


@contextlib.contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _blank_name() -> str:
    """The blank (state.blanks) a new local catalog of this cvcatalog starts from."""
    return blanks.key(MIGRATIONS, tables.definitions_digest())


def _stats_due(con: duckdb.DuckDBPyConnection) -> bool:
    through = settings.get(con, settings.STATS_ORDERED)
    return lake.stats_out_of_order(*lake.stats_tail(con, int(through) if through else None))


def order_lake_stats(con: duckdb.DuckDBPyConnection) -> bool:
    """Inside a write: put the lake's per-file column statistics back in order once enough
    rows were appended out of it (lake.order_stats: what a filtered query reads of every file
    of a table); True when it did."""
    if not _stats_due(con):
        return False
    settings.put(con, settings.STATS_ORDERED, str(lake.order_stats(con)))
    return True


class CatalogDB:
    """Connections to one catalog database with bounded waits and atomic publishing."""

    #: what became of the snapshots before the oldest one kept (check_kept's line)
    OLDER_SNAPSHOTS = (
        "older ones expired (after cache.snapshot_retention_days; cache clear and cache evict "
        "expire them at once)"
    )
    #: what became of snapshots between two kept ones (a pin kept the earlier): check_kept's line
    BETWEEN_SNAPSHOTS = (
        "expired (after cache.snapshot_retention_days; cache clear and cache evict expire them "
        "at once; a pin keeps only its own snapshot)"
    )

    def __init__(
        self,
        paths: CatalogPaths,
        lock_timeout: float = 60.0,
        notify: Notify = _quiet,
        *,
        storage: str | None = None,
        s3: DownloadConfig | None = None,
        trip_gap_s: float | None = None,
    ) -> None:
        """storage: the lake location asked for ('local' or s3://...; None: whatever the
        catalog records). s3: profile/endpoint settings for an S3 lake. trip_gap_s:
        trips.max_gap_s to record with the next write (None: keep the recorded one)."""
        self.paths = paths
        self.requested_trip_gap = trip_gap_s
        self.lock_timeout = lock_timeout
        self.notify = notify
        self.requested_storage = storage
        self._s3 = s3
        self._lake_url: str | None = None
        self._lake_known = False
        self._store: LakeStore | None = None
        #: the tables this instance has ensured (new ones: a dataset registered since)
        self._ensured = ""  # tables.definitions_digest() of the last ensure
        self._hub: duckdb.DuckDBPyConnection | None = None
        self._hub_ident: tuple[int, int, int] | None = None
        self._hub_lock = threading.Lock()
        #: read() blocks open on the reader instance; and whether connect() handed out one of
        #: its cursors (the instance is then never re-attached: a new one replaces it)
        self._hub_users = 0
        self._hub_shared = False
        #: whether the reader instance has the lake attached (on the first session that needs it)
        self._hub_lake = False
        #: the log of the files read on each reader instance (by id: one replaced while a
        #: session still reads on it keeps its own until that session ends)
        self._read_logs: dict[int, ReadLog] = {}
        self._writer_hub: duckdb.DuckDBPyConnection | None = None
        #: whether this instance converted a catalog of cvcatalog 0.1 (not another process)
        self.migrated_legacy = False

    @classmethod
    def for_ingest(cls, cfg: IngestConfig, notify: Notify = _quiet) -> CatalogDB:
        """The catalog an ingest of any source writes, as its config says: directory, lock
        timeout, lake storage, S3 settings, trips.max_gap_s."""
        return cls(
            CatalogPaths.at(cfg.cache.directory),
            cfg.cache.lock_timeout_seconds,
            notify,
            storage=cfg.storage,
            s3=cfg.download,
            trip_gap_s=cfg.trips.max_gap_s if cfg.trips is not None else None,
        )

    # -- locking -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _writer_lock(self) -> Iterator[None]:
        # threads of this process (a run's commit thread and its workers recording a failure)
        # queue here, silently; other processes queue on the file lock below
        local = _local_writer_lock(self.paths.db_lock)
        if not local.acquire(timeout=self.lock_timeout):
            raise CatalogLockedError(
                f"the catalog at {self.paths.root} stayed locked by another writer of this "
                f"process for {self.lock_timeout:.0f}s"
            )
        try:
            with self._file_lock():
                yield
        finally:
            local.release()

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
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

    # -- public --------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.paths.db.exists() or self.paths.legacy_db.exists()

    def require(self) -> None:
        """Before a read: a catalog written by cvcatalog 0.1 is migrated first; where there is
        no catalog at all, a read creates none (no_catalog)."""
        if self.paths.db.exists():
            return
        if not self.paths.legacy_db.exists():
            raise no_catalog(self.paths.root)
        self.initialise()

    def check_legacy(self) -> None:
        """A catalog.duckdb still to migrate that is not one cvcatalog 0.1 wrote (a damaged
        file, someone else's database): one line (legacy.check), before anything is created
        in the directory. Nor can one be migrated, a read's first open included, by a user
        who cannot write the directory (it said "permission denied creating the catalog")."""
        if self.paths.legacy_db.exists() and not self.paths.db.exists():
            legacy.check(self.paths.legacy_db)
            root = self.paths.root
            if not os.access(root, os.W_OK):
                raise CatalogError(
                    f"{root} holds a catalog written by cvcatalog 0.1 "
                    f"({self.paths.legacy_db.name}), which is converted to DuckLake on its "
                    f"first open, and {root} is not writable here: run `cvcatalog migrate "
                    f"--catalog {root}` as a user who can write it"
                )

    def current(self) -> bool:
        """A DuckLake catalog that a write would leave as it is: no catalog.duckdb of 0.1 beside
        it, every migration applied, the lake's tables and views this cvcatalog's. Read only,
        so a catalog its user cannot write is told current rather than "not writable"."""
        if not self.paths.db.exists() or self.paths.legacy_db.exists():
            return False
        with self.read_state() as con:
            applied = {
                int(r[0])
                for r in con.execute(
                    f"SELECT version FROM {STATE_DB}.main.schema_migrations"
                ).fetchall()
            }
            # statistics an empty table lacks are the next write's to seed, not a migration:
            # a catalog its user cannot write stays current
            return applied >= {v for v, _ in MIGRATIONS} and tables.up_to_date(con, seeded=False)

    def initialise(self) -> None:
        """Create (or migrate) the catalog database."""
        with self.write(blank=True):
            pass

    def ensure_schema(self) -> None:
        """Bring the lake's tables and views to this cvcatalog's definitions (a new canonical
        version adds or renames columns; another trips.max_gap_s asked for): a write only when
        they differ."""
        if self.paths.db.exists():
            with self.read_state() as con:  # metadata and state tables: no lake to load
                gap = self.requested_trip_gap
                same_gap = gap is None or trips.recorded_gap(con) == gap
                if same_gap and tables.up_to_date(con):
                    return
        # a new catalog comes whole from the blank (state.blanks), or is made whole
        creating = not self.paths.db.exists() and not self.paths.legacy_db.exists()
        with self.write(message="evolve tables", blank=True, state_only=creating):
            pass

    def connect(
        self, *, scratch: bool = False, at: lake.AsOf | None = None
    ) -> duckdb.DuckDBPyConnection:
        """A read-only connection to the current snapshot (close it): the state tables
        (database `cvcatalog`) and the lake (`cv`), both searched for unqualified names.
        scratch: the default database is an in-memory one (temporary tables, COPY TO).
        at: the lake's tables and views as they were at that snapshot or time (time travel;
        the state tables are always current)."""
        self.require()
        if scratch or at is not None:  # its own instance: its lake and memory stay its own
            con = self._open(self.paths.db, read_only=True)
            try:
                if at is not None:
                    at = self.check_kept(con, at)
                self._attach_lake_read_only(con, at)
                use_search_path(con, scratch=scratch)
                return con
            except BaseException:
                con.close()
                raise
        _, cur = self._cursor(block=False)
        try:
            cur.execute(f"USE {STATE_DB}")
            use_search_path(cur)
            return cur
        except BaseException:
            cur.close()
            raise

    def _cursor(
        self, *, block: bool, with_lake: bool = True
    ) -> tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection]:
        """The reader instance and a cursor of it. block: closed by read() (counted in
        _hub_users); otherwise handed out, so the instance is never re-attached under it.
        with_lake: the lake attached to the instance first, if it is not yet."""
        with self._hub_lock:
            hub = self._reader()
            if with_lake and not self._hub_lake:
                self._attach_lake_read_only(hub)
                self._hub_lake = True
            if block:
                self._hub_users += 1
            else:
                self._hub_shared = True
            return hub, hub.cursor()

    def check_kept(
        self,
        con: duckdb.DuckDBPyConnection,
        at: lake.AsOf,
        kept: list[lake.Snapshot] | None = None,
    ) -> lake.AsOf:
        """at, checked against the snapshots still kept (one clear line when it is gone);
        kept: lake.snapshots(con), when the caller has read them already."""
        kept = lake.snapshots(con) if kept is None else kept
        if not kept:
            raise CatalogError("the catalog has no snapshots yet; ingest something first")
        oldest, newest = kept[0], kept[-1]
        when = _moment(oldest.committed_at)
        gone = f"the oldest snapshot still kept is {oldest.snapshot_id} ({when}); {self.OLDER_SNAPSHOTS}"
        if at.snapshot is not None:
            if at.snapshot > newest.snapshot_id or at.snapshot < 0:
                raise CatalogError(
                    f"there is no snapshot {at.snapshot}; the newest is {newest.snapshot_id}"
                )
            if at.snapshot in {k.snapshot_id for k in kept}:
                return at
            if at.snapshot < oldest.snapshot_id:
                raise CatalogError(f"snapshot {at.snapshot} is no longer kept: {gone}")
            # between two kept ones (a pin kept the earlier one, the later ones expired)
            before = [k for k in kept if k.snapshot_id < at.snapshot][-1]
            after = next(k for k in kept if k.snapshot_id > at.snapshot)
            raise CatalogError(
                f"snapshot {at.snapshot} is no longer kept: {self._gap(before, after)}"
            )
        assert at.time is not None
        t = at.time if at.time.tzinfo is not None else at.time.replace(tzinfo=UTC)
        if t < oldest.committed_at:
            if oldest.snapshot_id == 0:  # nothing expired: the catalog was not there yet
                raise CatalogError(
                    f"the catalog did not exist at {_moment(t)}; its first snapshot is 0 ({when})"
                )
            raise CatalogError(f"nothing is kept from as early as {t:%Y-%m-%d %H:%M:%S}: {gone}")
        # the snapshot current then (DuckLake refuses a time after its newest commit)
        then = [k for k in kept if k.committed_at <= t][-1]
        later = [k for k in kept if k.snapshot_id > then.snapshot_id]
        if later and later[0].snapshot_id > then.snapshot_id + 1 and t > then.committed_at:
            # snapshots committed after `then` and before the next kept one have expired: one
            # of them may have been current at t (when each was committed is gone with it)
            raise CatalogError(
                f"the snapshot current at {_moment(t)} may no longer be kept: "
                f"{self._gap(then, later[0])}"
            )
        return lake.AsOf(snapshot=then.snapshot_id)

    def _gap(self, before: lake.Snapshot, after: lake.Snapshot) -> str:
        """check_kept's line for the expired snapshots between two kept ones."""
        first, last = before.snapshot_id + 1, after.snapshot_id - 1
        ids = str(first) if first == last else f"{first}..{last}"
        return (
            f"snapshots {ids}, committed between {_moment(before.committed_at)} and "
            f"{_moment(after.committed_at)}, {self.BETWEEN_SNAPSHOTS}; the kept ones around "
            f"them are {before.snapshot_id} and {after.snapshot_id} (`cvcatalog snapshots` "
            "lists them)"
        )

    def _reader(self) -> duckdb.DuckDBPyConnection:
        """The process's DuckDB instance with the current catalog file attached read-only
        (extensions load once). Once a writer has published a new file, whose snapshot it then
        sees: the same instance re-attaches it when none of its cursors is open (what read()
        does between commits; loading the extensions again is most of a new instance's cost),
        else a new instance. The lake is attached by _cursor, when a session first needs it:
        a process that reads only the state tables (to_dask's file lists) never loads
        DuckLake nor reads the lake's catalog. The caller holds _hub_lock."""
        st = self.paths.db.stat()
        ident = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._hub is not None and self._hub_ident == ident:
            return self._hub
        hub = self._hub
        if hub is not None and not self._hub_users and not self._hub_shared:
            try:
                self._reattach(hub)
            except BaseException:
                self._hub = self._hub_ident = None
                hub.close()
                raise
        else:
            hub = self._open(self.paths.db, read_only=True)
            self._hub_users, self._hub_shared = 0, False
        self._hub, self._hub_ident, self._hub_lake = hub, ident, False
        return hub

    def _reattach(self, hub: duckdb.DuckDBPyConnection) -> None:
        """The reader instance, no cursor of it open, shows the current catalog file (its
        lake attached again by the next session that needs it)."""
        hub.execute("USE memory")
        for name in (lake.LAKE, STATE_DB):
            hub.execute(f"DETACH DATABASE IF EXISTS {name}")
        self._attach_state(hub, self.paths.db, read_only=True)

    def _attach_lake_read_only(
        self, con: duckdb.DuckDBPyConnection, at: lake.AsOf | None = None
    ) -> None:
        url = read_lake_url(con)
        self._lake_url, self._lake_known = url, True
        self._s3_access(con, url)
        data = lake.data_path(url or str(self.paths.root))
        lake.attach(con, STATE_DB, read_only=True, data=data, at=at)

    @contextlib.contextmanager
    def read(
        self, at: lake.AsOf | None = None, *, on_read: OnRead | None = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """connect(), closed at the end of the block. on_read: given the session and the files
        its statements opened, at the block's end (io.readlog)."""
        if at is not None:  # time travel: an instance of its own
            con = self.connect(at=at)
            try:
                with watched(con, on_read, ReadLog()):
                    yield con
            finally:
                con.close()
            return
        with self._session(on_read=on_read) as con:
            yield con

    @contextlib.contextmanager
    def read_state(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only session on the state tables alone (database `cvcatalog`), for readers
        that need nothing else. The state tables are the one record of which files each
        table shows now (every commit makes the lake show exactly those: tables.sync_all),
        so e.g. to_dask lists its files here and a process that only builds frames never
        loads DuckLake nor reads the lake's catalog (~40 MB of its memory)."""
        with self._session(with_lake=False) as con:
            yield con

    @contextlib.contextmanager
    def _session(
        self, *, with_lake: bool = True, on_read: OnRead | None = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """read()'s and read_state()'s connection: a cursor of the reader instance, counted
        while open (a subclass with its own connect() overrides this too); on_read as read()'s."""
        self.require()
        hub, con = self._cursor(block=True, with_lake=with_lake)
        try:
            con.execute(f"USE {STATE_DB}")
            use_search_path(con, with_lake=with_lake)
            with self._hub_lock:
                log = self._read_logs.setdefault(id(hub), ReadLog())
            with watched(con, on_read, log):
                yield con
        finally:
            con.close()
            with self._hub_lock:
                if hub is self._hub:
                    self._hub_users -= 1
                else:  # a replaced instance: no new session starts on it (a read still
                    self._read_logs.pop(id(hub), None)  # open there holds the log itself)

    # -- the lake ------------------------------------------------------------------------
    def _open(
        self,
        path: Path,
        read_only: bool,
        prepare: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
    ) -> duckdb.DuckDBPyConnection:
        """A new in-memory DuckDB instance with the catalog file attached as `cvcatalog`.
        Parquet footers are cached: a lake file never changes under its name (every write
        makes new names), and a warm query then skips re-reading the footers of files its
        filters prune (30 day files: 144 ms a query without, 0.5 ms with). prepare: runs on
        the instance before the file is attached (a published catalog's reader locks the
        session down before it reads a byte of the file)."""
        con = open_instance(":memory:")
        try:
            con.execute("SET parquet_metadata_cache = true")
            if prepare is not None:
                prepare(con)
            self._attach_state(con, path, read_only)
            return con
        except BaseException:
            con.close()
            raise

    def _attach_state(
        self, con: duckdb.DuckDBPyConnection, path: Path, read_only: bool, new: bool = False
    ) -> None:
        """ATTACH the catalog file as `cvcatalog` and USE it, waiting (bounded) while a foreign
        read-write session holds it."""
        deadline = time.monotonic() + self.lock_timeout
        told = False
        # a new catalog file gets small blocks: it holds metadata only, and every commit copies
        # it (16 KiB blocks: ~1 MB instead of ~15 MB for a small catalog)
        mode = " (READ_ONLY)" if read_only else f" (BLOCK_SIZE {BLOCK_SIZE})" if new else ""
        while True:
            try:
                con.execute(f"ATTACH {quote_literal(str(path))} AS {STATE_DB}{mode}")
                break
            except duckdb.IOException as e:
                if not _is_lock_conflict(e):
                    if "Permission denied" in str(e):
                        raise CatalogError(f"permission denied opening {path}") from None
                    raise CatalogError(
                        f"cannot open the catalog database {self.paths.db}: {e} (a damaged "
                        "catalog is rebuilt by moving the file aside and ingesting again)"
                    ) from None
                if time.monotonic() >= deadline:
                    raise CatalogLockedError(
                        f"{path.name} is held open read-write by another process for more "
                        f"than {self.lock_timeout:.0f}s; close that DuckDB session or "
                        "attach it READ_ONLY"
                    ) from None
                if not told:
                    self.notify(f"{path.name} is locked by another process; waiting")
                    told = True
                time.sleep(0.2)
        con.execute(f"USE {STATE_DB}")

    def _writer(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB instance writers use (extensions load once; each transaction attaches
        its private copy and detaches it at the end)."""
        if self._writer_hub is None:
            self._writer_hub = open_instance(":memory:")
            lake.load(self._writer_hub)
        return self._writer_hub

    @property
    def s3(self) -> DownloadConfig:
        """How this catalog reaches S3 (a lake there, a listing): the ingest's download:
        settings, else CVCATALOG_DOWNLOAD__* and the defaults (read when first needed)."""
        if self._s3 is None:
            self._s3 = download_config()
        return self._s3

    def _s3_access(self, con: duckdb.DuckDBPyConnection, url: str | None) -> None:
        """A lake on S3 is read and written through httpfs: load it and create the
        connection's secret."""
        if url is None:
            return
        cfg = self.s3
        s3_connection(con, profile=cfg.profile, endpoint=cfg.endpoint_url, name=LAKE_SECRET)

    def attach_lake(self, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        """Make a scratch connection able to read this catalog's lake files (httpfs for S3)."""
        url = self.lake_url
        if url is not None:
            with _LAKE_SECRET_LOCK:  # connections of one instance share their secrets
                have = con.execute(
                    "SELECT count(*) FROM duckdb_secrets() WHERE name = ?", [LAKE_SECRET]
                ).fetchone()
                if have and have[0]:
                    load_httpfs(con)
                else:
                    self._s3_access(con, url)
        return con

    @property
    def lake_url(self) -> str | None:
        """Where the Parquet lake lives: None for the catalog directory, else s3://..."""
        if not self._lake_known:
            if self.exists():
                with self.read_state() as con:
                    self._lake_url, self._lake_known = read_lake_url(con), True
            else:  # the URL first: another thread may read it once it is known
                self._lake_url = normalise_storage(self.requested_storage)
                self._lake_known = True
        return self._lake_url

    def writable(self) -> bool:
        """Whether this process may write the catalog (a commit renames a copy in its
        directory): a shared catalog may be readable only."""
        return os.access(self.paths.root, os.W_OK | os.X_OK)

    @property
    def lake_data(self) -> str:
        """DuckLake's DATA_PATH as the lake is now: under the catalog directory wherever it was
        moved or copied, or the S3 lake's URL."""
        return lake.data_path(self.lake_url or str(self.paths.root))

    def check_new_lake(self) -> None:
        """Before an ingest does anything (its first day may delete files of that day it does
        not know as its own orphans): a lake on S3 this catalog is to start, asked for and not
        recorded yet, holds no other catalog's files (S3Store.check_unclaimed; a write that
        records it checks again), and one it records was last written by this catalog, not
        by a copy of its directory (lake_behind; each write claims it again)."""
        wanted = normalise_storage(self.requested_storage)
        recorded = self.lake_url if self.exists() else None
        if wanted is not None and recorded != wanted:
            S3Store(wanted, self.s3).check_unclaimed()
        elif isinstance(store := self.store, S3Store):
            store.check_owner()  # (the guard's check: the run's first put need not repeat it)

    @property
    def store(self) -> LakeStore:
        url = self.lake_url
        if self._store is None or self._store.url != url:
            self._store = store_for(self.paths, url, self.s3)
            if isinstance(self._store, S3Store):
                self._store.guard(self._check_lineage)
        return self._store

    @property
    def _me(self) -> str:
        """This catalog as an S3 lake's lineage object names its writers: host and directory
        (a copy of the directory is another one)."""
        return f"{socket.gethostname()}:{self.paths.root}"

    def lake_behind(self) -> str | None:
        """The one line saying why this catalog may not change its lake: on S3, a copy of its
        directory wrote there since this one's last write (io.storage.lineage_refusal). None:
        it may."""
        store = self.store
        if not isinstance(store, S3Store):
            return None
        with self.read_state() as con:
            local = settings.get(con, settings.LINEAGE)
        reason = store.refusal(local, self._me)
        return None if reason is None else store.refusal_line(reason)

    def _check_lineage(self) -> None:
        """The S3 lake's line of writes still ends with this catalog's last (S3Store.guard)."""
        line = self.lake_behind()
        if line is not None:
            raise CatalogError(line)

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
        """One transaction on a private copy, published by an atomic rename on success.

        The caller changes state tables; before the commit every lake table is made to show
        the files the state calls current (tables.sync_all), so data and state land in one
        DuckLake snapshot labelled with message and run_id. rebuild: lake tables to create
        anew (their current files re-registered under new names): a table showing a missing
        or damaged file, which DuckLake cannot delete from. blank: the caller writes nothing
        (the tables and views alone): a new local catalog's file is then kept for this
        process's next new one, and in the user cache (state.blanks). state_only: the caller
        writes state that names no lake file (a run's start or end): the lake is neither
        attached nor synced (a third of a small write's time), and what a full write would
        bring up to date (tables, deletes) waits for the next one; a catalog still to create
        is written whole (or copied whole from the blank).

        A catalog written by cvcatalog 0.1 is migrated first: every open of it comes here
        (reads too, through require), so any command, or the API, migrates it. A
        catalog.duckdb that is not one is refused before anything is created (the lock's
        directories are the first thing a write makes)."""
        self.check_legacy()
        with self._writer_lock():
            self._remove_stale_copies()
            if self.paths.legacy_db.exists():
                if self.paths.db.exists():  # migrated, but the old files were not yet removed
                    legacy.finish(self.paths, self.store)
                else:
                    self._migrate_legacy()
            with self._transaction(
                run_id=run_id, message=message, rebuild=rebuild, blank=blank, state_only=state_only
            ) as con:
                yield con

    @contextlib.contextmanager
    def _transaction(
        self,
        *,
        run_id: str | None,
        message: str,
        rebuild: Sequence[str] = (),
        blank: bool = False,
        state_only: bool = False,
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """The copy-on-write transaction; the caller holds the writer lock."""
        tmp = self.paths.db.with_name(f".{self.paths.db.name}.{uuid.uuid4().hex}.tmp")
        wal = self.paths.db.with_name(self.paths.db.name + ".wal")
        took_wal = False
        claim: tuple[S3Store, str, str | None] | None = None
        try:
            from_blank = False
            with self._file_errors("copy"):
                if self.paths.db.exists():
                    shutil.copyfile(self.paths.db, tmp)
                    if wal.exists():
                        # another DuckDB session wrote to the file and did not checkpoint: the
                        # copy replays its log (else its writes were lost, and the old log was
                        # replayed onto the file published below)
                        shutil.copyfile(wal, tmp.with_name(tmp.name + ".wal"))
                        took_wal = True
                elif self.requested_storage is None:
                    from_blank = blanks.copy_to(tmp, _blank_name())
            con = self._writer().cursor()
            try:
                new = not tmp.exists()
                self._attach_state(con, tmp, read_only=False, new=new)
                # DuckDB lets one transaction write one attached database: the state and the
                # lake are written in separate transactions on the private copy, and the
                # rename below publishes all of them at once (or none, on any failure).
                with _transaction(con):
                    migrate(con)
                    if from_blank:  # its migrations, snapshots and UUIDs are this catalog's, new
                        when = now_utc()
                        con.execute("UPDATE schema_migrations SET applied_at = ?", [when])
                        lake.restamp(con, when)
                        lake.reidentify(con)
                    url = read_lake_url(con)
                    if self.requested_storage is not None:
                        wanted = record_lake_url(con, normalise_storage(self.requested_storage))
                        if wanted is not None and wanted != url:  # a lake this catalog starts
                            S3Store(wanted, self.s3).check_unclaimed()
                        url = wanted
                    data = lake.data_path(url or str(self.paths.root))
                    lake.relocate(con, data)
                    gap = trips.record_gap(con, self.requested_trip_gap)
                self._lake_url, self._lake_known = url, True
                # a write that may change an S3 lake's files claims the lake first: of two
                # copies of this directory, the first to write moves it on, the other is
                # then refused (io.storage.lineage_refusal)
                if url is not None and not (state_only and not new):
                    with _transaction(con):
                        claim = self._claim(con)
                # a catalog made from the blank is whole (its tables and views are this
                # cvcatalog's: the blank is named by them) unless another trips gap was asked
                other_gap = from_blank and self.requested_trip_gap is not None
                if state_only and not new and not other_gap:
                    with _transaction(con):
                        yield con
                    keep = False
                else:
                    with self._with_lake(
                        con, url, data, gap, new=new, run_id=run_id, message=message,
                        rebuild=rebuild,
                    ):  # fmt: skip
                        yield con
                    # a blank to keep: a file made whole, with nothing of a lake elsewhere nor
                    # of a requested trips gap in it (catalogs made from it record theirs on top)
                    keep = blank and new and url is None and self.requested_trip_gap is None
                with self._full_disk("commit"):
                    con.execute("CHECKPOINT")
            finally:
                _detach(con)
            with self._file_errors("publish"):
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
                if keep:
                    blanks.keep(tmp, _blank_name())
                os.replace(tmp, self.paths.db)
                if took_wal:  # held by the file now
                    wal.unlink(missing_ok=True)
                fsync_dir(self.paths.root)
            if claim is not None:
                store, token, etag = claim
                store.settle(token, self._me, etag)
        finally:
            for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()

    def _claim(self, con: duckdb.DuckDBPyConnection) -> tuple[S3Store, str, str | None]:
        """In a write's state transaction: the S3 lake claimed for this write (one line when
        a copy of this catalog wrote there since this one's last write), its token recorded
        with the write; settled once the write is published."""
        store = self.store
        assert isinstance(store, S3Store)
        token = uuid.uuid4().hex
        etag = store.claim(settings.get(con, settings.LINEAGE), token, self._me)
        settings.put(con, settings.LINEAGE, token)
        return store, token, etag

    @contextlib.contextmanager
    def _with_lake(
        self,
        con: duckdb.DuckDBPyConnection,
        url: str | None,
        data: str,
        gap: float,
        *,
        new: bool,
        run_id: str | None,
        message: str,
        rebuild: Sequence[str],
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write's lake half, on the private copy: the lake attached (its tables and views
        made current), the caller's block, then every lake table synced to the files the state
        calls current and one snapshot labelled with message and run_id."""
        self._s3_access(con, url)
        lake.attach(con, STATE_DB, data=data)
        wanted = tables.definitions_digest(gap)
        if self._ensured != wanted and (new or not tables.up_to_date(con)):
            with _transaction(con):
                installed = tables.ensure(con)
                # a snapshot of its own (tables and views defined again: a new trip gap, a
                # new cvcatalog), labelled as the write's: `snapshots` showed it blank
                lake.set_commit_message(con, message, {"run_id": run_id})
            with _transaction(con):
                tables.record_views(con, installed)
                # after the tables' own commit, which they must be in (lake.seed_stats)
                lake.seed_stats(con)
        self._ensured = wanted
        with _transaction(con):
            yield con
            # the lake's files and the state's current ones after the block's writes
            files, current = lake.data_files(con), tables.current_files(con)
            renamed = tables.fresh_names(
                con, self.store, self.paths.staging, rebuild, files, current
            )
        with _transaction(con):
            for table in rebuild:
                tables.rebuild(con, table)
            # fresh_names wrote state only (the lake's files are the same unless a
            # table was dropped and made again; the current ones unless it renamed)
            synced = tables.sync_all(
                con,
                self.store.location,
                files if not rebuild else None,
                current if not renamed else None,
            )
            deleted = tables.apply_deletes(con, self.store.location)
            extra: dict[str, object] = {"run_id": run_id}
            if deleted:
                extra["deleted"] = deleted
            # the rows of the files it ended, which `snapshots` can no longer count
            # once the snapshots that showed them expire (lake.snapshots)
            ended = {t: x.rows_removed for t, x in synced.items() if x.rows_removed}
            if ended:
                extra[lake.ENDED] = ended
            # a commit that changes the lake is a snapshot with this label; one that
            # changes state alone (a run's start, a claim) makes no snapshot, and the
            # label would only load the lake's catalog: 22 of a write's 58 ms
            if rebuild or synced or deleted:
                lake.set_commit_message(con, message, extra)
        if deleted:  # the snapshot just committed is the one that deleted them
            with _transaction(con):
                snapshot = lake.last_snapshot(con)
                deletes.mark_applied(con, snapshot)
                checksums.record_written(con, self._delete_files_of(con, snapshot))
        if rebuild or synced or deleted:  # the files the lake knows changed
            with _transaction(con):
                checksums.record(con)

    def _migrate_legacy(self) -> None:
        """A catalog written by cvcatalog 0.1 (catalog.duckdb, views listing files): its state
        is copied into a new catalog.ducklake and its Parquet files are registered in the lake
        under the lake's layout (hard links locally; nothing is downloaded from the source).
        The old files and database are removed only after the new catalog is published."""
        self.notify(f"migrating {self.paths.legacy_db.name} to {self.paths.db.name} (DuckLake)")
        if self.requested_storage is None:
            self.requested_storage = legacy.check(self.paths.legacy_db)
        with self._transaction(run_id=None, message="migrate from catalog.duckdb") as con:
            moved = legacy.import_state(con, self.paths, self.store)
        self.migrated_legacy = True
        self.notify(f"migrated: {len(moved)} Parquet file(s) registered in the lake")
        legacy.finish(self.paths, self.store)

    def _delete_files_of(
        self, con: duckdb.DuckDBPyConnection, snapshot: int
    ) -> dict[str, checksums.Checksum]:
        """The delete files a snapshot wrote, with the size and SHA-256 of their bytes now."""
        out: dict[str, checksums.Checksum] = {}
        for e in lake.delete_file_entries(con):
            if e.since != snapshot:
                continue
            rel = self.lake_relative(e.location)
            digest, size = self.store.sha256(rel), self.store.size(rel)
            if digest is not None and size is not None:
                out[rel] = checksums.Checksum(size, digest)
        return out

    def lake_files(self, con: duckdb.DuckDBPyConnection) -> set[str]:
        """Catalog-relative paths of every file the lake knows (shown by a kept snapshot or
        scheduled for deletion): never orphans, whatever the state tables list."""
        return {self.lake_relative(p) for p in lake.known_files(con)}

    def held_bytes(
        self, con: duckdb.DuckDBPyConnection, tables: Collection[str] | None = None
    ) -> int:
        """Bytes the files only older snapshots show take on the lake, of these tables (None:
        every table): what expiring those snapshots would free, so a file a rebuilt table
        shows again under another name, or one gone, counts nothing."""
        held, shown = lake.held_files(con, self.lake_data, tables)
        if not held:
            return 0
        rel = self.lake_relative
        return self.store.freed_bytes([(rel(loc), size) for loc, size in held], map(rel, shown))

    def lake_relative(self, location: str) -> str:
        """The catalog-relative path of a location the lake names (store.location's inverse)."""
        return location.removeprefix((self.lake_url or str(self.paths.root)).rstrip("/") + "/")

    def retire(self, rels: Iterable[str]) -> None:
        """Files a commit stopped using: quarantine files go now; Parquet files stay for the
        snapshots that still show them and go when those expire (expire_snapshots)."""
        self.store.discard(r for r in rels if not r.endswith(".parquet"))

    def expire_snapshots(self, older_than: datetime) -> list[str]:
        """Expire the lake's snapshots committed before older_than, then delete the files no
        kept snapshot shows (two commits: the second deletes only what the first published
        as unreachable). Returns the deleted locations. A commit only when there is something
        to expire or delete: most runs have neither, and a commit copies the catalog file."""
        with self.read_state() as con:  # the metadata and state tables: no lake to load
            due = lake.expirable(con, older_than, keep=pins.pinned_snapshots(con))
            pending = lake.pending_cleanup(con)
        if due:
            with self.write(message="expire snapshots") as con:
                lake.expire_snapshots(con, older_than, keep=pins.pinned_snapshots(con))
            with self.read_state() as con:  # what the expiry scheduled, visible once committed
                pending = lake.pending_cleanup(con)
        if not pending:
            return []
        with self.write(message="clean up files") as con:
            deleted = lake.cleanup_files(con)
        self.store.deleted(self.lake_relative(d) for d in deleted)
        with self.write(message="forget the deleted files' checksums") as con:
            checksums.forget(con, self.lake_files(con))
        return deleted

    def order_stats(self) -> bool:
        """order_lake_stats in a write of its own, after a read: most calls find too few rows
        appended to rewrite, and a write copies the catalog file."""
        with self.read_state() as con:
            if not _stats_due(con):
                return False
        with self.write(message="order the lake's file statistics") as con:
            return order_lake_stats(con)

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
