"""CV Pilot days through the pipeline: one unit is one folder day of one source and type.

Every CV-specific rule lives here: a request's local days become the UTC (or producer-clock)
folder days that hold them (sources.bucket); a day is done again when missing, failed, written
under an older canonical schema, or a `no_data` marker that may be stale (the recheck window,
cache.recent_days / ttl_days); with --check-changes a cached day is listed again and only its
added or changed objects are converted and merged with its kept rows (cvcatalog.incremental);
per-day file locks keep two processes from building the same day.

A day streams when nothing else would overlap its download (no other day of the run converts,
waits to, or is still to be fetched: a one-day run): its objects, in listing order, are cut
into batches of raw bytes (stream_batches: about 4 a day, 32..256 MB each, so a small day is
one batch); the fetch lists the day and downloads the first batch, and the conversion converts
batch k with one DuckDB scan of its objects (transform.convert_partition, what keeps the ingest
near DuckDB's own COPY speed) while batch k+1 downloads, so the day's download and conversion
overlap and at most one batch is staged ahead of its conversion. Streaming costs a second pass
(the batches convert in arrival order, then the day is sorted again), so a day that one pass
can sort (its rows estimated from the first batch's lines) downloads the rest at once after
its first batch and is converted in one pass (CvPilotDays._download_rest_at_once). A day
fetched while an earlier one converts, or before a later one, is downloaded whole (the
pipeline overlaps the days already, and each batch has a fixed cost) and converted as one
batch. The day's result is then made whole (transform.combine_results: what only the whole
day shows, its duplicate rows, is counted over all its files; the batches' quarantine files
become one) and the quality step, when configured, runs over the whole day; the day is
committed as one unit, so a failure in any batch fails the day with nothing of it visible.
Raw copies stay in staging until the commit: a re-run reuses them. Objects under 8 MiB are
staged in RAM while the memory stage's budget has room (io.memstage: writing them to disk cost
more system CPU than their conversion's reads), the others on disk. A conversion that runs out
of memory is done again with one DuckDB thread, and so is the rest of the day. A day converted
on a ConversionPool and a changed day merged with its kept rows (--check-changes) are
downloaded whole first and converted at once.

Small days (SMALL_DAY_BYTES) go in groups, so a tiny day does not cost a conversion, a LIST
and a commit of its own: the plan lists a month once when several of its days are to do, a
small day's fetch starts its download in the background, and the small days fetched while
another converts are converted together (convert_group: transform.convert_partitions, a file
set per day) and committed together; a group that fails is converted again day by day.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import itertools
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import duckdb
import filelock
import pyarrow.parquet as pq

from cvcatalog import incremental
from cvcatalog.config import DataSourceConfig
from cvcatalog.distributed import ConversionPool, ConvertJob
from cvcatalog.exceptions import (
    ClusterLostError,
    ConfigError,
    ConversionError,
    CredentialsError,
    CvCatalogError,
    S3UnavailableError,
)
from cvcatalog.io import dirlock, memstage, rawfile, roworder
from cvcatalog.io.download import RESUME_MIN_BYTES, DownloadResult, ObjectInfo, S3Fetcher
from cvcatalog.io.duckdb_ext import open_instance
from cvcatalog.io.layout import prune_empty_dirs, remove_tree
from cvcatalog.io.memstage import SHM_ROOT, MemoryStage
from cvcatalog.io.s3 import RetryPolicy, make_client
from cvcatalog.pipeline.contract import (
    Abandoned,
    Plan,
    RunContext,
    Source,
    Staged,
    StagedFile,
    describe,
)
from cvcatalog.pipeline.report import NullProgress, Outcome, Progress, Summary
from cvcatalog.pipeline.run import Runner, new_run_id
from cvcatalog.pipeline.stage import fresh_dir, staged_file
from cvcatalog.quality.rules import record as record_quality
from cvcatalog.schemas import SCHEMAS, MessageSchema
from cvcatalog.sources.bucket import FOLDER_TIMEZONE, PartitionKey, partitions_for
from cvcatalog.state import deletes, manifest
from cvcatalog.state.access import record_access
from cvcatalog.state.db import CatalogDB, now_utc
from cvcatalog.state.eviction import Room
from cvcatalog.state.manifest import FileRecord, PartitionRecord, SourceObjectRecord
from cvcatalog.transform import (
    ConvertResult,
    RawFile,
    apply_quality,
    combine_results,
    convert_partition,
    convert_partitions,
    estimated_lines,
    order_partition,
)

T = TypeVar("T")


#: A day converts in batches of its objects, in listing order, each as soon as its objects are
#: on disk while the next batch downloads (CvPilotDays._stream): about STREAM_BATCHES a day,
#: none under MIN_BATCH_BYTES of raw JSON (a conversion has a fixed cost: a small day stays one
#: batch, converted exactly as before) nor over MAX_BATCH_BYTES (how far the download runs
#: ahead of the conversion).
STREAM_BATCHES = 4
MIN_BATCH_BYTES = 32 << 20
MAX_BATCH_BYTES = 256 << 20

#: A day of at most SMALL_DAY_BYTES of raw JSON is small: its fetch downloads nothing, and the
#: conversion downloads it together with up to GROUP_MAX_DAYS - 1 other small days fetched
#: meanwhile, converts them with one DuckDB scan (transform.convert_partitions: a file set
#: per day) and they are committed together: the fixed cost of a conversion, most of a tiny
#: day's, is paid once per group (CvPilotDays.convert_group; a group that fails is converted
#: again day by day, so a bad day fails alone). A group reads at most GROUP_MAX_DAYS *
#: SMALL_DAY_BYTES = MAX_BATCH_BYTES of JSON, as a big day's batch does. 64 days, not 32: 1,000
#: one-object days took 10.8 s instead of 11.2 (median of 4 interleaved runs each; half the
#: groups, each with its fixed cost); groups of 4 MB days stay smaller (the downloads do not
#: run that far ahead of the conversion) and their run the same (8.8-9.2 s, 715-775 MB RSS).
SMALL_DAY_BYTES = 4 << 20
GROUP_MAX_DAYS = 64
#: A group converts on one DuckDB thread: its write of a file per day needs one (each day's
#: rows stay in the row order), and setting an instance's threads down and back up for each
#: group cost ~15 ms while the run's other threads are busy; a group's read of its tiny
#: objects gains little from a second thread, which the commit and downloads use meanwhile
#: (1,000 one-object days: ~0.5 CPU-s less).
GROUP_THREADS = 1
#: The plan lists a month once instead of each of its days (a LIST per day is most of a tiny
#: day's fetch) when at least MONTH_LIST_MIN_DAYS of its days are to do and it holds at most
#: MONTH_LIST_MAX_OBJECTS objects (past that the pages stop and the days are listed alone);
#: a day's fetch uses that listing only when the day is small, and lists a larger day again.
#: NYCDOT's bins are listed by month the same way, split by bin folder (a month's 48 bins,
#: e.g. its --check-changes: one LIST a 1,000 objects instead of 48).
MONTH_LIST_MIN_DAYS = 3
MONTH_LIST_MAX_OBJECTS = 5000
#: month listings requested at once (in the background: the first days fetch while later
#: months are listed; 33 months took 0.38 s to list before the first day started)
MONTH_LIST_WORKERS = 8
#: days whose state one read after a claim covers (CvPilotDays._day_state)
STATE_AHEAD = 64
#: committed days whose staging is removed at once (CvPilotDays.committed_all)
DROP_WORKERS = 8
#: small days downloading in the background at once (each with download.max_workers threads)
DOWNLOADS_AHEAD = 4


#: what S3Fetcher.download_many returns: the copies made and the objects that failed
Downloaded = tuple[list[DownloadResult], list[tuple[ObjectInfo, Exception]]]


@dataclass
class Fetched:
    """A day's objects, listed and downloaded into staging, ready to convert."""

    pk: PartitionKey
    prior: PartitionRecord | None
    objects: list[ObjectInfo]
    #: where each object's copy is (placed batch by batch, just before its download)
    names: dict[str, Path]
    downloaded: int
    nbytes: int
    #: set for a complete day checked with --check-changes: what changed since its version
    delta: incremental.ObjectDelta | None = None
    #: a changed day converted whole rather than merged (a quality config: its counts and
    #: cleaning cover the whole day, and smoothing never runs twice over kept rows)
    whole: bool = False
    #: the objects to download and convert, cut into batches (stream_batches); fetch downloads
    #: the first, the conversion each next one while the one before converts
    batches: list[list[ObjectInfo]] = field(default_factory=list)
    #: a small day whose fetch only started its download (download, in the background, at
    #: most DOWNLOADS_AHEAD days at once): its conversion waits for it
    deferred: bool = False
    download: Future[Downloaded] | None = None
    #: a copy -> the first bytes its download kept (DownloadResult.head), until its conversion
    heads: dict[Path, bytes] = field(default_factory=dict)

    @property
    def merging(self) -> bool:
        """Only delta.fetch was downloaded; it is merged with the day's kept rows."""
        return self.delta is not None and not self.whole


@dataclass
class _Converted:
    """What a converted day's commit records (Staged.payload)."""

    fetched: Fetched
    result: ConvertResult


#: conversions of at most this many raw bytes reuse an idle DuckDB connection
REUSE_MAX_BYTES = 32 * 1024 * 1024


class PartitionLocked(CvCatalogError):
    """Another process held the day's lock for too long (the day is reported, not recorded)."""


class DownloadFailed(CvCatalogError):
    """An object of the day could not be downloaded (after the fetcher's own retries)."""


def stream_batches(objects: list[ObjectInfo], min_objects: int = 1) -> list[list[ObjectInfo]]:
    """A day's objects, in listing order, cut into consecutive batches of about 1/STREAM_BATCHES
    of its bytes, within MIN_BATCH_BYTES..MAX_BATCH_BYTES; every batch but the last holds at
    least min_objects (so a batch keeps the download's workers busy), and a last batch under
    half that size joins the one before (a batch has a fixed cost)."""
    total = sum(o.size for o in objects)
    target = min(MAX_BATCH_BYTES, max(MIN_BATCH_BYTES, -(-total // STREAM_BATCHES)))
    out: list[list[ObjectInfo]] = []
    batch: list[ObjectInfo] = []
    size = 0
    for o in objects:
        batch.append(o)
        size += o.size
        if size >= target and len(batch) >= min_objects:
            out.append(batch)
            batch, size = [], 0
    if out and batch and size < target // 2:
        out[-1] += batch
    elif batch or not out:
        out.append(batch)
    return out


def _download_error(failures: list[tuple[ObjectInfo, Exception]]) -> DownloadFailed:
    """A day's failed downloads as one error naming the first object."""
    obj, err = failures[0]
    more = f" (and {len(failures) - 1} more objects)" if len(failures) > 1 else ""
    detail = describe_error(err)  # names the key already when it comes from S3Error
    what = detail if obj.key in detail else f"{obj.key}: {detail}"
    return DownloadFailed(f"download failed: {what}{more}")


def describe_error(e: BaseException, where: Path | None = None) -> str:
    if _is_enospc(e):
        return f"no space left on device while writing {_enospc_path(e) or where or 'the catalog'}"
    return describe(e)


def staging_gone(
    f: Fetched, objects: list[ObjectInfo], out_dir: Path | None, e: BaseException
) -> str | None:
    """A plain reason for a conversion that failed because what it works in was removed under
    it (a staged copy, or the day's staging directory, deleted by hand or by a cleaner while
    the run used it), instead of the OS or DuckDB error it met (a path, a SQL excerpt); None
    when the error was not about a file (a full disk says so itself) or everything is still
    there. objects: those whose copies the conversion read, all downloaded (not a batch still
    downloading). Looked at only after a failure: no extra system call per copy otherwise."""
    if not isinstance(e, OSError | duckdb.IOException) or _is_enospc(e):
        return None
    for o in objects:
        path = f.names.get(o.key)
        if path is not None and not path.exists():
            return f"the staged copy of {o.key} is missing ({path}): removed while the run used it"
    if out_dir is not None and not out_dir.is_dir():
        return f"the staging directory of {f.pk.key} ({out_dir}) was removed while the run used it"
    return None


def _short(e: BaseException) -> str:
    return str(e).strip().splitlines()[0][:200]


def _is_enospc(e: BaseException) -> bool:
    if isinstance(e, OSError):
        return e.errno == errno.ENOSPC
    return isinstance(e, duckdb.Error) and "No space left on device" in str(e)


def _enospc_path(e: BaseException) -> str | None:
    if isinstance(e, OSError):
        return str(e.filename) if e.filename else None
    m = re.search(r'"([^"]+)"', str(e))  # DuckDB: Could not write file "<path>": No space ...
    return m.group(1) if m else None


def needs_work(
    rec: PartitionRecord | None, today: date, cfg: DataSourceConfig, force: bool
) -> tuple[bool, str]:
    """Whether a partition must be (re)fetched, and why not when it need not. today is on the
    source's folder clock (folder_today), as the partition's day is, and so is the day a
    no_data marker was taken (its checked_at, an instant)."""
    if force or rec is None:
        return True, ""
    if rec.status == "failed":
        return True, ""
    if rec.status == "complete" and not SCHEMAS[(rec.source, rec.message_type)].reads(
        rec.canonical_version
    ):
        return True, ""  # written under a canonical schema that meant otherwise: rebuild
    if rec.status == "complete":
        return False, "cached"
    # no_data: the sandbox lags, so a marker for a recent day, or one taken while the day was
    # still recent, is only provisional.
    recent = timedelta(days=cfg.cache.recent_days)
    last = rec.pk.last_day
    if today - last <= recent:
        return True, ""
    checked = folder_day(rec.source, rec.checked_at) if rec.checked_at else last
    if checked - last <= recent:
        return True, ""
    if rec.checked_at and now_utc() - rec.checked_at > timedelta(days=cfg.cache.ttl_days):
        return True, ""
    return False, "no_data (cached)"


def folder_day(source: str, moment: datetime) -> date:
    """The day a moment falls on by the clock the source names its folders by (UTC for
    WYDOT, US Eastern for THEA and NYCDOT), whatever zone the datetime carries."""
    return moment.astimezone(ZoneInfo(FOLDER_TIMEZONE[source])).date()


def folder_today(source: str, today: date | None = None) -> date:
    """Today on the source's folder clock (folder_day of now); today: a given day (tests),
    taken as it is."""
    if today is not None:
        return today
    return folder_day(source, now_utc())


def future_days(keys: list[PartitionKey], source: str, today: date | None = None) -> list[str]:
    """The partitions that begin after today on the source's folder clock: the bucket
    cannot hold them yet, so they are neither listed nor marked no_data (a marker would say
    "looked, nothing there" of a day that has not happened)."""
    t = folder_today(source, today)
    return [k.key for k in keys if k.day > t]


def check_not_future(cfg: DataSourceConfig, today: date | None = None) -> None:
    """A range all of whose days are after today is one ConfigError line, before anything
    is created: it cannot have data yet (an ingest said "no data in ..." and exited 0)."""
    start, end = cfg.date_range.resolve(today)
    tz = cfg.date_range.timezone
    keys = partitions_for(cfg.source, cfg.message_type, start, end, tz)
    if keys and len(future_days(keys, cfg.source, today)) == len(keys):
        now = today or now_utc().astimezone(ZoneInfo(tz)).date()
        span = f"{start}" if start == end else f"{start} .. {end}"
        raise ConfigError(
            f"{cfg.source}/{cfg.message_type} {span} is after today ({now}, {tz}): the bucket "
            "cannot hold data for it yet; nothing to ingest"
        )


def raw_name(obj: ObjectInfo, index: int) -> str:
    """Local name of a downloaded object: never derived from the key's path components."""
    digest = hashlib.sha1(obj.key.encode()).hexdigest()[:16]
    return f"{index:06d}-{digest}.json"


def _raw(f: Fetched, objects: list[ObjectInfo]) -> list[RawFile]:
    """The objects' copies for a conversion, each with the first bytes its download kept
    (then forgotten), so the conversion tells what each holds without reading it again."""
    return [RawFile(f.names[o.key], o.key, f.heads.pop(f.names[o.key], None)) for o in objects]


def _gzip(f: Fetched, path: Path) -> bool:
    """Whether a copy is gzip-compressed, from the first bytes its download kept if it did."""
    head = f.heads.get(path)
    return rawfile.is_gzip(path) if head is None else head.startswith(rawfile.GZIP_MAGIC)


#: Errors every other day of the run would hit too: the run ends with the first one, in one line,
#: instead of failing each day (no credentials, an endpoint that cannot serve the run, an S3
#: client that cannot be made or a request that cannot be addressed as configured).
RUN_ERRORS: tuple[type[CvCatalogError], ...] = (CredentialsError, S3UnavailableError, ConfigError)


def default_fetcher(cfg: DataSourceConfig) -> S3Fetcher:
    return S3Fetcher(make_client(cfg.download), cfg.download, cfg.bucket)


class CvPilotDays(Source[PartitionKey, Fetched]):
    """One (source, message type, date range) of the CV Pilot bucket, a day per unit."""

    def __init__(
        self,
        cfg: DataSourceConfig,
        db: CatalogDB,
        *,
        run_id: str,
        force_refresh: bool = False,
        today: date | None = None,
        fetcher_factory: Callable[[DataSourceConfig], S3Fetcher] | None = None,
        pool: ConversionPool | None = None,
        check_changes: bool | None = None,
    ) -> None:
        """pool: convert there (e.g. on a Dask cluster, cvcatalog.distributed) with several days
        in flight; None converts in this process, one day at a time while the next downloads.
        check_changes: list cached days again and re-ingest only their new or changed objects
        (cvcatalog.incremental); None takes cache.check_changes."""
        self.cfg = cfg
        self.db = db
        self.paths = db.paths
        self.run_id = run_id
        self.force = force_refresh
        self.check_changes = cfg.cache.check_changes if check_changes is None else check_changes
        self.schema: MessageSchema = SCHEMAS[(cfg.source, cfg.message_type)]
        #: today on the source's folder clock, as its partitions' days (needs_work)
        self.today = folder_today(cfg.source, today)
        #: the day given (tests) or None: a days_back range ends on today in its own timezone
        self._given_today = today
        #: the range's partitions after today (future_days), left out of the run
        self.future: list[str] = []
        self.name = cfg.source
        self.message_type = cfg.message_type
        self.mode = "incremental" if self.check_changes else "full"
        self.pool = pool
        self.executor = pool.name if pool is not None else "local"
        self.max_size_gb = cfg.cache.max_size_gb
        self.snapshot_retention_days = cfg.cache.snapshot_retention_days
        self.fetch_slots = 1  # a day's objects download concurrently already (S3Fetcher)
        self.convert_slots = pool.capacity if pool is not None else 1
        self.group_max = GROUP_MAX_DAYS if pool is None else 1
        #: day -> its month's listing by day (None: not listed), requested by the plan and
        #: still arriving while the first days fetch; a small day's fetch takes its own
        self._listed: dict[str, Future[dict[str, list[ObjectInfo]] | None]] = {}
        self._lister: ThreadPoolExecutor | None = None
        #: the run's days to do, in order, and what a fetch last read of the state of the days
        #: from one on (_day_state), valid while the catalog file is the one it was read from
        self._todo: dict[str, int] = {}
        self._todo_keys: list[str] = []
        self._state: dict[str, tuple[PartitionRecord | None, list[FileRecord]]] = {}
        self._state_ident: tuple[int, int, int] | None = None
        self._downloads: ThreadPoolExecutor | None = None  # small days' background downloads
        self._fetcher_factory = fetcher_factory or default_fetcher
        self._fetcher: S3Fetcher | None = None
        self._fetcher_lock = threading.Lock()
        self._protect: set[str] = set()  # this run's partitions: never evicted to make room
        self._evicted: list[str] = []
        self._room: Room | None = None
        self._open: set[duckdb.DuckDBPyConnection] = set()
        #: conversion connections to reuse, with their threads (None: the configured number)
        self._idle: list[tuple[int | None, duckdb.DuckDBPyConnection]] = []
        self._reusing = True  # until the run finishes
        self._aborts: set[threading.Event] = set()  # downloads in progress (cancel sets them)
        self._cancelled = False  # cancel() was called: a download starting now is aborted
        self._memory: MemoryStage | None = None  # raw copies in RAM, for the run (session)
        self._unconverted: set[str] = set()  # days fetched whose conversion has not ended
        self._unfetched: set[str] = set()  # days of the plan whose fetch has not started
        self._open_lock = threading.Lock()
        #: why the pool's cluster went away mid-run (ClusterLostError): the run stopped there
        self._cluster_lost: str | None = None
        #: the run's folder of grouped conversions (_group_dir), held while the run lasts
        self._groups: Path | None = None
        self._groups_fd: int | None = None
        #: the run's folder could not be held (no flock there): each day's own staging then
        self._groups_unheld = False
        self._group_seq = itertools.count()
        #: a grouped day's folder, and how many of its days are still to be committed
        self._group_of: dict[str, Path] = {}
        self._group_left: dict[Path, int] = {}

    @contextlib.contextmanager
    def session(self, run: RunContext) -> Iterator[None]:
        """The run's memory stage for raw copies (io.memstage): not with a conversion pool,
        whose workers may not share this machine's memory. Opening it sweeps what runs of
        deleted catalogs left there; a run with no stage sweeps all the same."""
        if self.pool is None:
            self._memory = MemoryStage.open(
                self.paths.root, self.cfg.memory.staging_bytes, self._memory_base
            )
        if self._memory is None:
            memstage.sweep(self._memory_base)
        dirlock.sweep_unheld(self.paths.group_staging)  # what killed runs' groups left
        try:
            yield
        finally:
            stage, self._memory = self._memory, None
            if stage is not None:
                run.summary.staged_in_memory_peak = stage.peak
                stage.close()
            self._drop_groups()

    @property
    def _memory_base(self) -> Path:
        return self.cfg.memory.staging_dir or SHM_ROOT

    # -- planning ------------------------------------------------------------------------
    def key(self, unit: PartitionKey) -> str:
        return unit.key

    def run_fields(self) -> dict[str, Any]:
        start, end = self.cfg.date_range.resolve(self._given_today)
        return {"start_date": start, "end_date": end, "timezone": self.cfg.date_range.timezone}

    def partitions(
        self,
    ) -> tuple[list[PartitionKey], list[PartitionKey], dict[str, PartitionRecord]]:
        """The range's days to do and those cached, and their records."""
        start, end = self.cfg.date_range.resolve(self._given_today)
        keys = partitions_for(
            self.cfg.source, self.cfg.message_type, start, end, self.cfg.date_range.timezone
        )
        known: dict[str, PartitionRecord] = {}
        if self.db.exists():  # else a new catalog, being created (Runner): nothing recorded
            with self.db.read_state() as con:
                known = manifest.get_partitions(con, keys=[k.key for k in keys])
        todo: list[PartitionKey] = []
        cached: list[PartitionKey] = []
        self.future = future_days(keys, self.cfg.source, self._given_today)
        for k in keys:
            if k.key in self.future:
                continue  # not listed, not marked: see future_days
            work, _ = needs_work(known.get(k.key), self.today, self.cfg, self.force)
            if not work and self.check_changes:
                work = incremental.checkable(known.get(k.key), self.force)
            (todo if work else cached).append(k)
        return todo, cached, known

    def plan(self, run: RunContext) -> Plan[PartitionKey]:
        s = run.summary
        s.kind = "days"
        s.start, s.end = self.cfg.date_range.resolve(self._given_today)
        s.timezone = self.cfg.date_range.timezone
        todo, cached, known = self.partitions()
        if self.future:
            run.progress.note(
                f"{len(self.future)} day(s) after today skipped, not marked no_data (the bucket "
                f"cannot hold them yet): {', '.join(self.future[:3])}"
                + (" ..." if len(self.future) > 3 else "")
            )
        self._protect = {k.key for k in todo + cached}
        # one per run: it reads the catalog's size only when the run's days might not fit
        self._room = Room(self.db, self.cfg.cache.max_size_gb, self._protect)
        done = []
        for k in cached:
            rec = known[k.key]
            status = "cached" if rec.status == "complete" else "no_data"
            done.append(Outcome(k.key, status, rows=rec.rows, detail="cached"))
        record_access([k.key for k in cached if known[k.key].status == "complete"], self.paths)
        stale = [
            k.key
            for k in todo
            if k.key in known
            and known[k.key].status == "complete"
            and not self.force
            and not self.schema.reads(known[k.key].canonical_version)
        ]
        if stale:
            run.progress.note(
                f"{len(stale)} day(s) written under an older canonical schema whose meaning "
                f"changed (v{known[stale[0]].canonical_version} -> "
                f"v{self.schema.canonical_version}) are converted again: {', '.join(stale[:3])}"
                + (" ..." if len(stale) > 3 else "")
            )
        self._sweep_staging(cached)
        if todo and self.pool is not None:  # a Dask cluster waits for a worker here, if need be
            self.convert_slots = self.pool.slots()
        self._list_months(todo)
        self._todo_keys = [k.key for k in todo]
        self._todo = {k: i for i, k in enumerate(self._todo_keys)}
        self._unfetched = set(self._todo_keys)
        return Plan(todo, done)

    def _catalog_ident(self) -> tuple[int, int, int] | None:
        try:
            st = self.paths.db.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _day_state(self, pk: PartitionKey) -> tuple[PartitionRecord | None, list[FileRecord]]:
        """The day's record and current files, read after its claim (another process may have
        done it meanwhile). One read covers the next STATE_AHEAD days of the run too: a later
        day's answer is used only while the catalog file is still the one read, a file no
        commit (another process's, nor this run's) has replaced since; a commit of that day
        replaces it, so a day claimed after another process's commit is read again."""
        ident = self._catalog_ident()  # before the read: a commit during it invalidates it
        if ident is None and not self.db.exists():
            return None, []  # a new catalog, still being created (Runner): nothing recorded
        with self._open_lock:
            if ident is not None and ident == self._state_ident and pk.key in self._state:
                return self._state.pop(pk.key)
        i = self._todo.get(pk.key)
        keys = [pk.key] if i is None else self._todo_keys[i : i + STATE_AHEAD]
        with self.db.read_state() as con:
            recs = manifest.get_partitions(con, keys=keys)
            files = manifest.get_files(con, keys)
        state: dict[str, tuple[PartitionRecord | None, list[FileRecord]]] = {
            k: (recs.get(k), []) for k in keys
        }
        for f in files:
            state[f.partition_key][1].append(f)
        with self._open_lock:
            self._state, self._state_ident = state, ident
            return self._state.pop(pk.key)

    def _list_months(self, todo: list[PartitionKey]) -> None:
        """One listing per month for months with MONTH_LIST_MIN_DAYS days or more to do
        (only while small: MONTH_LIST_MAX_OBJECTS), up to MONTH_LIST_WORKERS months at once,
        in the background and in the days' order (a range of years would wait on dozens of
        LISTs before its first day starts). A transient failure leaves the month's days to be
        listed one by one; a failure every day would hit too (RUN_ERRORS: credentials, the
        endpoint) fails the fetch of its first day, which ends the run (on_error)."""
        months: dict[str, list[PartitionKey]] = {}
        for pk in todo:
            months.setdefault(pk.month_prefix, []).append(pk)
        months = {m: days for m, days in months.items() if len(days) >= MONTH_LIST_MIN_DAYS}
        if not months:
            return
        fetcher = self.fetcher

        def by_day(prefix: str, days: list[PartitionKey]) -> dict[str, list[ObjectInfo]] | None:
            try:
                objects = fetcher.list_upto(prefix, MONTH_LIST_MAX_OBJECTS)
            except RUN_ERRORS:
                raise
            except CvCatalogError:
                return None
            if objects is None:
                return None
            out: dict[str, list[ObjectInfo]] = {pk.s3_prefix: [] for pk in days}
            depth = days[0].s3_prefix.count("/")  # source/type/YYYY/MM/DD/ or .../MM/WD/TB/
            for o in objects:
                parts = o.key.split("/", depth)
                if len(parts) > depth:  # below a folder of that depth, as its own LIST gives
                    folder = "/".join(parts[:depth]) + "/"
                    if folder in out:
                        out[folder].append(o)
            return out

        pool = ThreadPoolExecutor(min(MONTH_LIST_WORKERS, len(months)), f"{self.name}-list")
        with self._open_lock:
            self._lister = pool
            for prefix, days in months.items():
                listing = pool.submit(by_day, prefix, days)
                self._listed.update((pk.key, listing) for pk in days)

    def _listing(self, pk: PartitionKey) -> list[ObjectInfo]:
        """The day's objects: the plan's month listing for a small day, else a LIST now."""
        with self._open_lock:
            month = self._listed.pop(pk.key, None)
        listed = month.result() if month is not None else None
        objects = listed.get(pk.s3_prefix) if listed is not None else None
        if objects is not None and sum(o.size for o in objects) <= SMALL_DAY_BYTES:
            return objects
        return self.fetcher.list(pk.s3_prefix)

    def warm_up(self) -> None:
        _ = self.fetcher  # made once, under its lock: the first fetch waits for it

    @property
    def fetcher(self) -> S3Fetcher:
        with self._fetcher_lock:
            if self._fetcher is None:
                self._fetcher = self._fetcher_factory(self.cfg)
            return self._fetcher

    # -- locks ---------------------------------------------------------------------------
    def _lock_path(self, pk: PartitionKey) -> Path:
        p = self.paths.partition_lock(pk)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def claim(self, unit: PartitionKey, wait: bool) -> filelock.BaseFileLock | None:
        lock = filelock.FileLock(str(self._lock_path(unit)), thread_local=False)
        try:
            lock.acquire(timeout=max(self.cfg.cache.lock_timeout_seconds, 1.0) * 10 if wait else 0)
        except filelock.Timeout:
            if not wait:
                return None
            raise PartitionLocked("partition locked by another process") from None
        return lock

    def _sweep_staging(self, done: list[PartitionKey]) -> None:
        """Raw copies of days already in the catalog, left by a run killed between its commit
        and its cleanup: nothing will read them again."""
        for pk in done:
            stage = self.paths.staging_dir(pk)
            in_memory = (
                self._memory.holds(pk.key)
                if self._memory is not None
                else memstage.has_day(self.paths.root, pk.key, self._memory_base)
            )
            if not stage.exists() and not in_memory:
                continue
            lock = filelock.FileLock(str(self._lock_path(pk)), thread_local=False)
            try:
                lock.acquire(timeout=0)
            except filelock.Timeout:
                continue  # another process is working on it
            try:
                self._drop_staging(pk)
            finally:
                lock.release()

    def _drop_staging(self, pk: PartitionKey) -> None:
        if self._memory is not None:
            self._memory.release(pk.key)
        else:  # copies an earlier run left in memory, this run having no stage
            memstage.remove_day(self.paths.root, pk.key, self._memory_base)
        stage = self.paths.staging_dir(pk)
        if stage.exists():
            remove_tree(stage)
            prune_empty_dirs(stage.parent, self.paths.staging)

    # -- fetch ---------------------------------------------------------------------------
    def fetch(
        self, unit: PartitionKey, run: RunContext
    ) -> Fetched | Outcome | Staged[PartitionKey]:
        pk, progress = unit, run.progress
        with self._open_lock:  # no other day converts, nor waits to: nothing to overlap with
            self._unfetched.discard(pk.key)
            alone = not self._unconverted and not self._unfetched
        # Another process may have finished it while we waited for the lock.
        rec, current = self._day_state(pk)
        work, why = needs_work(rec, self.today, self.cfg, self.force)
        check = not work and self.check_changes and incremental.checkable(rec, self.force)
        known: list[SourceObjectRecord] = []
        deleted: dict[str, tuple[str, ...]] = {}
        if check:
            with self.db.read_state() as con:
                known = manifest.get_source_objects(con, pk.key)
                deleted = deletes.of_files(con, [f.path for f in current])
        if not work and not check and rec is not None:
            return Outcome(pk.key, "cached", rows=rec.rows, detail=f"{why} (by another process)")
        self._remove_orphans(pk, {f.path for f in current})
        objects = self._listing(pk)
        nbytes = sum(o.size for o in objects)
        delta = None
        if objects and check and rec is not None and rec.status == "complete":
            delta = incremental.diff_objects(objects, known, current, deleted)
        fetch, whole = incremental.to_fetch(objects, delta, self.cfg.quality)
        progress.listed(pk.key, len(fetch), sum(o.size for o in fetch))
        if not objects:
            return self._empty_listing(pk, rec, progress)
        if delta is not None and delta.empty:  # LIST only: nothing fetched, nothing written
            self._drop_staging(pk)
            n = len(delta.unchanged)
            return Outcome(
                pk.key, "cached", rows=rec.rows if rec else 0, unchanged=n,
                detail="unchanged (checked)",
            )  # fmt: skip
        f = Fetched(pk, rec, objects, {}, 0, nbytes, delta, whole)
        # Downloaded whole: a day fetched while an earlier one converts or before a later one
        # (the next day's download overlaps its conversion, and a small day's conversion sorts
        # it in one pass: the first of 7 days took 2.75 s streamed, the others ~1.6 s), a day
        # for the pool (converted at once) and a merge (it reads all its new objects together).
        # A day alone streams, unless its first batch shows one pass can sort it
        # (_download_rest_at_once).
        whole_day = not alone or self.pool is not None or f.merging
        f.batches = [fetch] if whole_day else stream_batches(fetch, self.cfg.download.max_workers)
        run.check_stop()  # the run may have stopped while this fetch waited for its listing
        if self.pool is None and delta is None and nbytes <= SMALL_DAY_BYTES:
            # downloaded in the background: the fetch goes on to the next day, so small days
            # are fetched faster than converted and convert in groups
            f.deferred = True
            with self._open_lock:
                if self._downloads is None:
                    self._downloads = ThreadPoolExecutor(DOWNLOADS_AHEAD, f"{self.name}-ahead")
                f.download = self._downloads.submit(self._download_all, f, run)
                self._unconverted.add(pk.key)
            return f
        try:
            with self._abortable() as abort:
                self._download(f, 0, run, abort)
                if self._download_rest_at_once(f):
                    run.check_stop()
                    rest = [o for batch in f.batches[1:] for o in batch]
                    f.batches = [f.batches[0], rest]
                    self._download(f, 1, run, abort)
                    f.batches = [fetch]  # converted whole, in one pass
        except DownloadFailed as e:
            return self._download_failed(f, e, run)
        with self._open_lock:
            self._unconverted.add(pk.key)
        return f

    def _download_rest_at_once(self, f: Fetched) -> bool:
        """Whether a streamed day's other batches are downloaded at once, as one, and the day
        converted in one pass: one pass can sort it (its rows, estimated from the first
        batch's lines, at most roworder.SORT_ONE_COPY_ROWS; every CV type has a row order,
        roworder.order_for). Not for gzip-compressed copies (their lines are not counted).

        Streaming costs a second pass (the batches convert in arrival order, then the day is
        sorted and written again) that its overlap never won back, whatever the link's
        speed: each batch's download also waits for its slowest object before the next
        starts. Whole against streamed, the 294 MB day of 48 objects: 2.4 vs 3.1 s from the
        local endpoint, 5.0 vs 5.4 s with 0.4 s added to each GET, 10.7 vs 11.9 s with 1.2 s
        (the CPUs mostly idle); a 207 MB day of 1,008 objects through the fault proxy's 50 ms
        a request (the CPUs 80 % busy with the download and the endpoint): 4.9 vs 5.3 s and
        1.3 CPU-s less (bench/README.md, session 26)."""
        if len(f.batches) < 2:
            return False
        first = sum(o.size for o in f.batches[0])
        day = sum(o.size for batch in f.batches for o in batch)
        paths = [f.names[o.key] for o in f.batches[0]]
        if first <= 0 or any(_gzip(f, p) for p in paths):
            return False
        lines = estimated_lines(paths)
        return lines is not None and lines * day / first <= roworder.SORT_ONE_COPY_ROWS

    def _download(self, f: Fetched, k: int, run: RunContext, abort: threading.Event) -> None:
        """Download batch k of the day into its staging (concurrently: S3Fetcher.download_many,
        which reuses whole copies and resumes partial ones an earlier run left). Raises
        DownloadFailed naming the first object that failed, or Abandoned if the run stopped."""
        results, failures = self._fetch_batch(f, f.batches[k], run, abort)
        f.downloaded += sum(r.size - r.resumed_from for r in results)
        if failures:
            run.check_stop()  # not failed: cancel() aborted them
            raise _download_error(failures)

    def _download_all(self, f: Fetched, run: RunContext) -> Downloaded:
        """A small day's objects (in the background: cancel() aborts it)."""
        with self._abortable() as abort:
            return self._fetch_batch(f, f.batches[0], run, abort)

    def _fetch_batch(
        self, f: Fetched, batch: list[ObjectInfo], run: RunContext, abort: threading.Event
    ) -> Downloaded:
        """The batch's objects, placed (_place) and downloaded. Copies the memory stage's file
        system had no room for (filled by others since the stage opened: the budget only
        counts this catalog's copies) are downloaded again to disk."""
        self._place(f, batch)
        got, failures = self.fetcher.download_many(
            batch, lambda o: f.names[o.key], on_bytes=run.progress.downloaded, abort=abort
        )
        if self.pool is None:  # (a pool's workers read the copies themselves)
            f.heads.update((r.path, r.head) for r in got if r.head is not None)
        memory = self._memory
        if memory is None or not failures:
            return got, failures
        full = [
            o
            for o, e in failures
            if isinstance(e, OSError) and e.errno == errno.ENOSPC
            and memory.holds_copy(f.pk.key, f.names[o.key])
        ]  # fmt: skip
        if not full:
            return got, failures
        memory.full()  # the next copies go to disk at once, not after a failed GET each
        stage = self.paths.staging_dir(f.pk)
        for o in full:
            memory.drop(f.pk.key, f.names[o.key].name)
            f.names[o.key] = stage / f.names[o.key].name
        again, still = self.fetcher.download_many(
            full, lambda o: f.names[o.key], on_bytes=run.progress.downloaded, abort=abort
        )
        if self.pool is None:
            f.heads.update((r.path, r.head) for r in again if r.head is not None)
        moved = {o.key for o in full}
        return got + again, [(o, e) for o, e in failures if o.key not in moved] + still

    def _await_download(self, f: Fetched, run: RunContext) -> None:
        """A small day's download done (its background one, or now): raises DownloadFailed
        naming the first object that failed, or Abandoned if the run stopped."""
        if not f.deferred:
            return
        future, f.download = f.download, None
        got, failures = future.result() if future is not None else self._download_all(f, run)
        f.downloaded += sum(r.size - r.resumed_from for r in got)
        if failures:
            run.check_stop()  # not failed: cancel() aborted them
            raise _download_error(failures)
        f.deferred = False

    def _place(self, f: Fetched, batch: list[ObjectInfo]) -> None:
        """Where the batch's copies go: the memory stage (io.memstage) while it has room for
        an object too small to be resumed by a later process, else the day's staging directory
        (unless a copy an earlier run left is there: it is reused). Copies on disk sit in that
        directory itself, beside its out-<run> directories (a directory of their own was one
        more inode made and removed a day)."""
        stage = self.paths.staging_dir(f.pk)
        index = {o.key: i for i, o in enumerate(f.objects)}
        for o in batch:
            if o.key in f.names:
                continue
            name = raw_name(o, index.get(o.key, len(index)))
            path = stage / name
            if self._memory is not None and o.size < RESUME_MIN_BYTES and not path.is_file():
                path = self._memory.place(f.pk.key, name, o.size) or path
            f.names[o.key] = path

    def _download_failed(self, f: Fetched, e: DownloadFailed, run: RunContext) -> Outcome:
        out = self._fail(f.pk, str(e), run)
        out.bytes_downloaded = f.downloaded
        return out

    @contextlib.contextmanager
    def _abortable(self) -> Iterator[threading.Event]:
        """An abort event for downloads, set by cancel() while it is registered, or already
        set when the run was cancelled before (a fetch still in flight then downloads
        nothing more)."""
        abort = threading.Event()
        with self._open_lock:
            if self._cancelled:
                abort.set()
            self._aborts.add(abort)
        try:
            yield abort
        finally:
            with self._open_lock:
                self._aborts.discard(abort)

    def _empty_listing(
        self, pk: PartitionKey, prior: PartitionRecord | None, progress: Progress
    ) -> Outcome | Staged[PartitionKey]:
        if prior is not None and prior.status == "complete":
            # An empty listing never erases data we already hold.
            progress.note(f"{pk.key}: the bucket lists nothing now; keeping cached data")
            return Outcome(pk.key, "cached", rows=prior.rows, detail="kept (empty listing)")
        rec = PartitionRecord(
            pk.key, pk.source, pk.message_type, pk.day, "no_data", run_id=self.run_id
        )
        return Staged(pk, [], Outcome(pk.key, "no_data"), payload=rec)  # committed in a batch

    def _remove_orphans(self, pk: PartitionKey, current: set[str]) -> None:
        """Files in a partition's directories that neither the manifest (current: the day's
        files) nor the lake (a kept snapshot, a scheduled deletion) knows: a crashed run's.
        The lake's files are read only when there is a file the manifest does not list (this
        process holds the day's lock: no other adds files to it meanwhile)."""
        store = self.db.store
        strays = [
            rel
            for d in (self.paths.partition_rel(pk), self.paths.quarantine_rel(pk))
            for rel in store.list_files(under=d)
            if rel not in current
        ]
        if not strays:
            return
        known: set[str] = set()  # a catalog still being created knows no file yet
        if self.db.exists():
            with self.db.read() as con:
                known = self.db.lake_files(con)
        for rel in strays:
            if rel not in known:
                store.delete(rel)

    # -- convert -------------------------------------------------------------------------
    def convert(self, fetched: Fetched, run: RunContext) -> Staged[PartitionKey] | Outcome:
        try:
            return self._convert_day(fetched, run)
        finally:
            with self._open_lock:
                self._unconverted.discard(fetched.pk.key)

    def groupable(self, fetched: Fetched) -> bool:
        return fetched.deferred

    def convert_group(
        self, fetched: list[Fetched], run: RunContext
    ) -> list[Staged[PartitionKey] | Outcome]:
        """Small days together: their objects downloaded at once (a day whose download fails
        fails alone), converted by one DuckDB scan into a file set per day
        (transform.convert_partitions), each day staged as convert would stage it."""
        try:
            return self._convert_days(fetched, run)
        finally:
            with self._open_lock:
                for f in fetched:
                    self._unconverted.discard(f.pk.key)

    def _convert_days(
        self, days: list[Fetched], run: RunContext
    ) -> list[Staged[PartitionKey] | Outcome]:
        results: list[Staged[PartitionKey] | Outcome | None] = [None] * len(days)
        for f in days:
            self._make_room(f.pk, f.nbytes, run.progress)
        ok: list[int] = []
        for i, f in enumerate(days):
            try:
                self._await_download(f, run)
            except DownloadFailed as e:
                results[i] = self._download_failed(f, e, run)
                continue
            ok.append(i)
            run.progress.converting(f.pk.key)
        if not ok:  # every download failed: each day is failed already, nothing to convert
            return [r for r in results if r is not None]
        group = self._group_dir()
        if group is None:
            out_dirs = [self._out_dir(days[i].pk) for i in ok]
        else:
            out_dirs = [group / f"d{k:03d}" for k in range(len(ok))]
        try:
            for d in out_dirs:
                if group is None:
                    fresh_dir(d)
                else:
                    d.mkdir()
            parts = [
                (_raw(days[i], days[i].batches[0]), d) for i, d in zip(ok, out_dirs, strict=True)
            ]
            with self._duckdb(GROUP_THREADS, reuse=True) as con:
                converted = convert_partitions(
                    con,
                    self.schema,
                    parts,
                    validation=self.cfg.validation,
                    target_rows_per_file=self.cfg.memory.rows_per_file,
                    row_group_size=self.cfg.memory.row_group_size,
                )
                if self.cfg.quality is not None:  # counted (and cleaned) per day, at ingest
                    for result, d in zip(converted, out_dirs, strict=True):
                        apply_quality(
                            con, result, self.schema, d, self.cfg.quality,
                            self.cfg.memory.row_group_size,
                        )  # fmt: skip
            if group is not None:
                with self._open_lock:
                    self._group_left[group] = len(ok)
                    self._group_of.update((days[i].pk.key, group) for i in ok)
            for i, result in zip(ok, converted, strict=True):
                f = days[i]
                if result.unknown_versions:
                    run.progress.note(
                        f"{f.pk.key}: unknown schema version(s) {result.unknown_versions}; "
                        "parsed the known fields"
                    )
                files = self._stage_outputs(f.pk, result)
                results[i] = Staged(
                    f.pk, files, self._outcome(f, result, files), payload=_Converted(f, result)
                )
        except BaseException as e:
            gone = next(
                (why for i, d in zip(ok, out_dirs, strict=True)
                 if (why := staging_gone(days[i], days[i].batches[0], d, e)) is not None),
                None,
            )  # fmt: skip
            if group is None:
                for d in out_dirs:
                    remove_tree(d)
            else:
                with self._open_lock:
                    self._group_left.pop(group, None)
                    for i in ok:
                        self._group_of.pop(days[i].pk.key, None)
                remove_tree(group)
            if gone is not None:
                raise ConversionError(gone) from e
            raise
        assert all(r is not None for r in results)
        return [r for r in results if r is not None]

    def _group_dir(self) -> Path | None:
        """A new folder for a group's conversion, in the run's folder of them: a day's own
        staging folder (staging/<source>/<type>/<y>/<m>/<d>/out-<run>) was made, and removed
        after its commit, a day at a time: ~1 ms a day of the conversion thread, on the run's
        critical path (1,000 one-object days: 9.4 s instead of 10.2, medians of 5 interleaved
        runs). The run holds its folder (io.dirlock) until it ends (_drop_groups); a killed
        run's is swept by the next run's session. None where the folder cannot be held (a
        file system without flock, Windows): nobody could tell a killed run's folder from a
        live one's, so the days use their own staging folders, as a day alone does."""
        with self._open_lock:
            if self._groups_unheld:
                return None
            if self._groups is None:
                root = self.paths.group_staging / self.run_id
                root.parent.mkdir(parents=True, exist_ok=True)
                fd = dirlock.hold(root, shared=False)
                if fd is None:
                    self._groups_unheld = True
                    remove_tree(root)
                    return None
                self._groups_fd, self._groups = fd, root
            folder = self._groups / f"g{next(self._group_seq):05d}"
        folder.mkdir()
        return folder

    def _drop_groups(self) -> None:
        """The run's folder of grouped conversions goes, with whatever no commit took (the
        files of days that failed or that the run did not get to commit)."""
        with self._open_lock:
            root, self._groups = self._groups, None
            fd, self._groups_fd = self._groups_fd, None
            self._group_of.clear()
            self._group_left.clear()
        if root is not None:
            remove_tree(root)
        dirlock.release(fd)

    def _day_committed(self, pk: PartitionKey) -> Path | None:
        """A grouped day's files are in the lake: its group's folder, once all its days are."""
        with self._open_lock:
            group = self._group_of.pop(pk.key, None)
            if group is None:
                return None
            self._group_left[group] -= 1
            if self._group_left[group]:
                return None
            del self._group_left[group]
        return group

    def _convert_day(self, f: Fetched, run: RunContext) -> Staged[PartitionKey] | Outcome:
        pk = f.pk
        self._make_room(pk, f.nbytes, run.progress)
        run.progress.converting(pk.key)
        out_dir = self._out_dir(pk)
        try:
            if self.pool is not None and not f.merging:
                # an incremental merge reads the day's current files: done here, on the client
                result = self._convert_on_pool(f, out_dir, self.pool, run)
            else:
                result = self._convert_here(f, out_dir, run)
            if result.unknown_versions:
                run.progress.note(
                    f"{pk.key}: unknown schema version(s) {result.unknown_versions}; "
                    "parsed the known fields"
                )
            files = self._stage_outputs(pk, result)
        except DownloadFailed as e:  # a later batch of the day
            remove_tree(out_dir)
            return self._download_failed(f, e, run)
        except BaseException as e:
            # a day converted whole read every copy (a streamed one: _stream names its batch's)
            gone = staging_gone(f, f.batches[0] if len(f.batches) == 1 else [], out_dir, e)
            remove_tree(out_dir)
            if gone is not None:
                raise ConversionError(gone) from e
            raise
        outcome = self._outcome(f, result, files)
        return Staged(pk, files, outcome, payload=_Converted(f, result))

    def _out_dir(self, pk: PartitionKey) -> Path:
        return self.paths.staging_dir(pk) / f"out-{self.run_id}"

    def _convert_here(self, f: Fetched, out_dir: Path, run: RunContext) -> ConvertResult:
        """Convert in this process (the default): a day batch by batch as its objects arrive
        (_stream), a changed day by merging (_merge)."""
        fresh_dir(out_dir)
        if f.merging and f.delta is not None:
            raw = _raw(f, f.delta.fetch)
            return self._one_thread_on_oom(
                f.pk, run, out_dir, functools.partial(self._merge, f, raw, out_dir)
            )[0]
        return self._stream(f, out_dir, run)

    def _stream(self, f: Fetched, out_dir: Path, run: RunContext) -> ConvertResult:
        """Convert the day batch by batch: batch k converts (convert_partition, into
        out_dir/batch-k) while batch k+1 downloads, so at most one batch is staged ahead of
        the conversion (batch 0 came with the fetch, and the next day's first batch may be
        fetched meanwhile). A failed download or conversion stops the other and fails the day,
        nothing of it staged. Then the day's result is made whole (_finish_day); a day of one
        batch converts straight into out_dir, exactly as a whole day."""
        parts: list[ConvertResult] = []
        threads: int | None = None
        last = len(f.batches) - 1
        batch: list[ObjectInfo] = []  # the batch converting (its copies all downloaded)
        with self._abortable() as abort, ThreadPoolExecutor(1, f"{self.name}-next") as ahead:
            upcoming: Future[None] | None = None
            self._await_download(f, run)  # a small day converted alone
            try:
                for k, batch in enumerate(f.batches):
                    if upcoming is not None:
                        upcoming.result()  # batch k is staged now
                    if k < last:
                        upcoming = ahead.submit(self._download, f, k + 1, run, abort)
                    run.check_stop()
                    sub = out_dir if last == 0 else out_dir / f"batch-{k:03d}"
                    raw = _raw(f, batch)
                    size = sum(o.size for o in batch)
                    part, threads = self._one_thread_on_oom(
                        f.pk, run, sub,
                        # a day of several batches is ordered once, as a whole (_finish_day)
                        functools.partial(
                            self._convert, raw, sub, ordered=last == 0, nbytes=size
                        ), threads,
                    )  # fmt: skip
                    parts.append(part)
            except BaseException as e:
                abort.set()  # the next batch's download stops too
                gone = staging_gone(f, batch, out_dir, e) if last > 0 else None
                if gone is not None:
                    raise ConversionError(gone) from e
                raise
        return self._one_thread_on_oom(
            f.pk, run, None,
            functools.partial(self._finish_day, parts, out_dir), threads,
        )[0]  # fmt: skip

    def _one_thread_on_oom(
        self,
        pk: PartitionKey,
        run: RunContext,
        out_dir: Path | None,
        step: Callable[[int | None], T],
        threads: int | None = None,
    ) -> tuple[T, int | None]:
        """step(threads), and again with one DuckDB thread (out_dir emptied first) if DuckDB ran
        out of memory: every thread of read_json and the Parquet writer holds its own buffers;
        one thread needs about half the memory (a 2 GB day: 1.03 -> 0.68 GB peak RSS). Returns
        the result and the threads that made it (the rest of the day keeps to them)."""
        try:
            return step(threads), threads
        except duckdb.OutOfMemoryException as e:
            if threads == 1 or self._threads() == 1:
                raise
            run.check_stop()
            run.progress.note(
                f"{pk.key}: DuckDB ran out of memory.max_usage_gb "
                f"({_short(e)}); converting again with 1 thread"
            )
            if out_dir is not None:
                fresh_dir(out_dir)
            return step(1), 1

    def _convert_on_pool(
        self, f: Fetched, out_dir: Path, pool: ConversionPool, run: RunContext
    ) -> ConvertResult:
        """Hand the day's conversion to the pool and wait for it (this thread holds one of the
        pool's slots); the run stopping cancels it."""
        memory = self.cfg.memory
        fresh_dir(out_dir)
        job = ConvertJob(
            key=f.pk.key,
            schema=self.schema,
            files=tuple(RawFile(f.names[o.key], o.key) for o in f.objects),
            out_dir=out_dir,
            spill_dir=self.paths.staging_dir(f.pk) / f"spill-{self.run_id}",
            validation=self.cfg.validation,
            rows_per_file=memory.rows_per_file,
            row_group_size=memory.row_group_size,
            max_usage_gb=pool.memory_gb or memory.max_usage_gb,
            threads=memory.duckdb_threads or pool.threads,
            quality=self.cfg.quality,
        )
        future: Future[ConvertResult] = pool.submit(job)
        while True:
            try:
                return future.result(timeout=0.5)
            except FutureTimeout:
                lost = pool.lost()  # first: a day waiting on a cluster that is gone fails
                if lost is not None or run.stop.is_set():
                    future.cancel()
                if lost is not None:
                    raise ClusterLostError(lost) from None
                if run.stop.is_set():
                    raise Abandoned from None
            except Exception as e:  # the task failed (Dask's retries used up), or was cancelled
                lost = pool.lost()  # (Dask cancels the tasks in flight when it loses the scheduler)
                if lost is not None:
                    raise ClusterLostError(lost) from None
                raise ConversionError(
                    f"conversion on {pool.name} failed: {describe_error(e)}"
                ) from e

    def _merge(
        self, f: Fetched, raw: list[RawFile], out_dir: Path, threads: int | None = None
    ) -> ConvertResult:
        """A changed day (--check-changes): convert the added and changed objects only and
        merge them with the day's kept rows (a quality config makes the day convert whole
        instead: Fetched.whole)."""
        assert f.delta is not None
        delta_dir = out_dir / incremental.DELTA_DIR
        new = self._convert(raw, delta_dir, threads) if raw else incremental.empty_result()
        with self._duckdb(threads) as con:
            store = self.db.store
            if not store.is_local:
                self.db.attach_lake(con)  # the kept rows are read from the S3 lake
            return incremental.merge_partition(
                con,
                self.schema,
                store,
                f.delta,
                new,
                out_dir,
                validation=self.cfg.validation,
                rows_per_file=self.cfg.memory.rows_per_file,
                row_group_size=self.cfg.memory.row_group_size,
            )

    def _convert(
        self,
        raw: list[RawFile],
        out_dir: Path,
        threads: int | None = None,
        *,
        ordered: bool = True,
        nbytes: int | None = None,
    ) -> ConvertResult:
        """One DuckDB scan of these objects (transform.convert_partition). A small conversion
        reuses an idle connection (its fixed cost is most of a tiny day's); a large one gets a
        fresh one, closed after it, so no buffers a big batch grew outlive it (peak RSS).
        nbytes: the objects' bytes, when known (else each copy's size is read)."""
        if nbytes is None:
            nbytes = sum(r.path.stat().st_size for r in raw)
        small = nbytes <= REUSE_MAX_BYTES
        with self._duckdb(threads, reuse=small) as con:
            return convert_partition(
                con,
                self.schema,
                raw,
                out_dir,
                validation=self.cfg.validation,
                target_rows_per_file=self.cfg.memory.rows_per_file,
                row_group_size=self.cfg.memory.row_group_size,
                ordered=ordered,
            )

    def _finish_day(
        self,
        parts: list[ConvertResult],
        out_dir: Path,
        threads: int | None = None,
    ) -> ConvertResult:
        """The day's result from its batches (transform.combine_results: what only the whole
        day shows, its duplicate rows, is counted over all of them; its files rewritten as one
        run in the row order, transform.order_partition), then the quality step when
        configured (cvcatalog.quality: its counts and cleaning cover the whole day). A day of
        one batch without a quality config needs nothing more."""
        if len(parts) == 1 and self.cfg.quality is None:
            return parts[0]
        with self._duckdb(threads, reuse=len(parts) == 1) as con:
            if len(parts) == 1:
                result = parts[0]
            else:
                validate = self.cfg.validation.enabled
                result = combine_results(con, self.schema, parts, out_dir, validate=validate)
            if len(parts) > 1:
                result = order_partition(
                    con,
                    self.schema,
                    result,
                    out_dir,
                    rows_per_file=self.cfg.memory.rows_per_file,
                    row_group_size=self.cfg.memory.row_group_size,
                )
            if self.cfg.quality is not None:  # configured: counted (and cleaned) at ingest
                apply_quality(
                    con,
                    result,
                    self.schema,
                    out_dir,
                    self.cfg.quality,
                    self.cfg.memory.row_group_size,
                )
            return result

    def _threads(self) -> int:
        return self.cfg.memory.duckdb_threads or os.cpu_count() or 1

    @contextlib.contextmanager
    def _duckdb(
        self, threads: int | None = None, *, reuse: bool = False
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """An in-memory DuckDB for conversion, bounded by the memory config; spills to staging.
        reuse: one the run's earlier conversions left idle (a new instance and its settings
        cost ~20 ms CPU, a tiny day's conversion ~45 ms), with these threads (one with other
        threads is set to them: a second idle instance would hold its own memory), kept again
        only after a success; closed at the run's end (finish)."""
        con = None
        if reuse:
            with self._open_lock:
                same = [i for i, (t, _) in enumerate(self._idle) if t == threads]
                if self._idle:
                    had, con = self._idle.pop(same[-1] if same else -1)
            if con is not None and had != threads:
                try:
                    self._set_threads(con, threads)
                except BaseException:
                    con.close()
                    raise
        if con is None:
            con = open_instance(":memory:")
            try:
                self._configure(con, threads)
            except BaseException:
                con.close()
                raise
        with self._open_lock:
            self._open.add(con)
        keep = False
        try:
            yield con
            keep = reuse
        finally:
            with self._open_lock:
                self._open.discard(con)
                keep = keep and self._reusing
                if keep:
                    self._idle.append((threads, con))
            if not keep:
                con.close()

    def _configure(self, con: duckdb.DuckDBPyConnection, threads: int | None) -> None:
        spill = self.paths.staging / "duckdb_tmp"
        spill.mkdir(parents=True, exist_ok=True)
        staged = self._memory.budget if self._memory is not None else 0
        con.execute(
            "SET memory_limit = ?", [self.cfg.memory.duckdb_memory_limit_beside(staged)]
        )
        con.execute("SET temp_directory = ?", [str(spill)])
        con.execute("SET preserve_insertion_order = false")
        if threads or self.cfg.memory.duckdb_threads:
            self._set_threads(con, threads)

    def _set_threads(self, con: duckdb.DuckDBPyConnection, threads: int | None) -> None:
        """threads, else the configured number, else DuckDB's default (every core)."""
        if threads or self.cfg.memory.duckdb_threads:
            con.execute("SET threads = ?", [threads or self.cfg.memory.duckdb_threads])
        else:
            con.execute("RESET threads")

    def cancel(self) -> None:
        """Interrupt the conversions and downloads in progress (the run is stopping)."""
        with self._open_lock:
            self._cancelled = True
            for con in list(self._open):
                with contextlib.suppress(Exception):
                    con.interrupt()
            for abort in self._aborts:
                abort.set()

    # -- stage ---------------------------------------------------------------------------
    def _stage_outputs(self, pk: PartitionKey, result: ConvertResult) -> list[StagedFile]:
        """The conversion's files under their lake names (fresh: they name the run)."""
        tag = self.run_id.rsplit("-", 1)[-1]
        dest_dir = self.paths.partition_rel(pk)
        files = []
        for i, src in enumerate(sorted(result.parquet_files)):
            rel = f"{dest_dir}/part-{self.run_id[:15]}-{tag}-{i:03d}.parquet"
            rows = result.file_rows.get(src)
            if rows is None:
                rows = pq.ParquetFile(src).metadata.num_rows
            files.append(staged_file(src, rel, "data", rows, pk.key))
        if result.quarantine_file is not None:
            rel = f"{self.paths.quarantine_rel(pk)}/quarantine-{self.run_id[:15]}-{tag}.ndjson"
            files.append(
                staged_file(result.quarantine_file, rel, "quarantine", result.quarantined, pk.key)
            )
        return files

    def _outcome(self, f: Fetched, result: ConvertResult, files: list[StagedFile]) -> Outcome:
        """The day's report as the run's own work: a merged day's rows and quarantine entries
        are those the run wrote (ConvertResult.own_rows), not the whole day's (record)."""
        c = f.delta.counts() if f.delta is not None else {"added": len(f.objects)}
        return Outcome(
            f.pk.key,
            "complete",
            rows=result.rows if result.own_rows is None else result.own_rows,
            quarantined=(
                result.quarantined if result.own_quarantined is None else result.own_quarantined
            ),
            recovered=result.recovered,
            objects=len(f.objects),
            bytes_downloaded=f.downloaded,
            parquet_bytes=sum(x.size for x in files if x.kind == "data"),
            detail=f.delta.describe() if f.delta is not None else "",
            added=c["added"],
            changed=c.get("changed", 0),
            removed=c.get("removed", 0),
            unchanged=c.get("unchanged", 0),
        )

    # -- commit --------------------------------------------------------------------------
    def record(
        self,
        con: duckdb.DuckDBPyConnection,
        batch: list[Staged[PartitionKey]],
        run: RunContext,
    ) -> list[str]:
        rows: list[manifest.PartitionRows] = []  # every day's rows, written together
        for st in batch:
            pk = st.unit
            if isinstance(st.payload, PartitionRecord):  # a no_data marker
                rows.append((st.payload, [], [], []))
                continue
            conv: _Converted = st.payload
            f, result = conv.fetched, conv.result
            files = [FileRecord(x.dest, pk.key, x.kind, x.rows, x.size, x.sha256) for x in st.files]
            if result.kept and f.delta is not None:  # a changed day: deletes and inserts
                kept = set(result.kept)
                files += [x for x in f.delta.files if x.path in kept]
                deletes.record(con, result.deletes, self.run_id)
            rec = PartitionRecord(
                pk.key,
                pk.source,
                pk.message_type,
                pk.day,
                "complete",
                rows=result.rows,
                quarantined=result.quarantined,
                parquet_bytes=sum(x.bytes for x in files if x.kind == "data"),
                source_objects=len(f.objects),
                source_bytes=f.nbytes,
                schema_versions=sorted(result.schema_versions),
                canonical_version=self.schema.canonical_version,
                run_id=self.run_id,
            )
            validation = [("quarantine", r, n) for r, n in result.reasons.items()] + [
                ("warning", w, n) for w, n in result.warnings.items()
            ]
            # rows of an object a change kept came from the run that loaded them
            loaded: dict[str, str | None] = {}
            if result.kept and f.delta is not None:
                same = {o.key for o in f.delta.unchanged}
                before = f.prior.run_id if f.prior is not None else None
                loaded = {o.key: o.run_id or before for o in f.delta.known if o.key in same}
            sobjs = [
                SourceObjectRecord(o.key, o.size, o.etag, o.last_modified, loaded.get(o.key))
                for o in f.objects
            ]
            rows.append((rec, files, sobjs, validation))
            if result.quality is not None:
                record_quality(
                    con,
                    self.run_id,
                    pk.source,
                    pk.message_type,
                    pk.key,
                    result.quality,
                    self.cfg.quality,
                )
        return [x.path for x in manifest.put_partitions(con, rows)]

    def committed(self, staged: Staged[PartitionKey], run: RunContext) -> None:
        self.committed_all([staged], run)

    def committed_all(self, batch: list[Staged[PartitionKey]], run: RunContext) -> None:
        """The committed days' staging (their raw copies) goes, up to DROP_WORKERS days at
        once: removing a tree waits on the file system (a few ms a day while commits fsync),
        and a commit of hundreds of tiny days would hold the run's thread for seconds."""
        done = [st.unit for st in batch if st.outcome.status == "complete"]
        run.summary.partitions_written.update(pk.key for pk in done)
        groups = [g for pk in done if (g := self._day_committed(pk)) is not None]
        if len(done) + len(groups) <= 1:
            for pk in done:
                self._drop_staging(pk)
            for g in groups:
                remove_tree(g)
            return
        with ThreadPoolExecutor(min(DROP_WORKERS, len(done)), f"{self.name}-tidy") as pool:
            futures = [pool.submit(self._drop_staging, pk) for pk in done]
            futures += [pool.submit(remove_tree, g) for g in groups]
            for fut in futures:
                fut.result()

    def on_error(self, error: BaseException) -> str:
        if isinstance(error, RUN_ERRORS):
            return "raise"  # every other day would fail too
        if isinstance(error, ClusterLostError):  # the days waiting on the cluster fail with it,
            self._cluster_lost = str(error)  # and no other day starts (finish says how many)
            return "stop"
        if isinstance(error, CvCatalogError | OSError | duckdb.Error):
            return "unit"
        return "raise"

    def failed(self, unit: PartitionKey, error: BaseException, run: RunContext) -> Outcome:
        remove_tree(self._out_dir(unit))
        if isinstance(error, PartitionLocked):
            return Outcome(unit.key, "failed", error=str(error))
        return self._fail(unit, describe_error(error, self.paths.partition_dir(unit)), run)

    def _fail(self, pk: PartitionKey, reason: str, run: RunContext) -> Outcome:
        """Record a failed day. A day that was complete keeps its data; the error is reported.
        After the run's start: a new catalog's tables may still be being written."""
        run.started()
        with self.db.read_state() as con:
            prior = manifest.get_partitions(con, keys=[pk.key]).get(pk.key)
        if prior is not None and prior.status == "complete":
            return Outcome(
                pk.key, "failed", rows=prior.rows, error=f"{reason} (kept previous data)"
            )
        rec = PartitionRecord(
            pk.key, pk.source, pk.message_type, pk.day, "failed", error=reason, run_id=self.run_id
        )
        try:
            with self.db.write(run_id=self.run_id, message=f"ingest {pk.key}") as con:
                manifest.put_partition(con, rec, [], [], [])
        except CvCatalogError as e:  # locked, or the disk is full: the day is reported anyway
            reason = f"{reason}; {e}"
        return Outcome(pk.key, "failed", error=reason)

    # -- after the units -------------------------------------------------------------------
    def finish(self, run: RunContext, stopped: BaseException | None) -> None:
        s = run.summary
        with self._open_lock:
            downloads, self._downloads = self._downloads, None
            lister, self._lister = self._lister, None
            self._listed.clear()
        for pool in (downloads, lister):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        with self._open_lock:
            idle, self._idle, self._reusing = self._idle, [], False
        for _, con in idle:
            con.close()
        if self._fetcher is not None:
            s.list_requests = self._fetcher.list_requests
            s.get_requests = self._fetcher.get_requests
            s.fetched_bytes = self._fetcher.bytes_downloaded  # a failed day's GETs too
            s.retries += self._fetcher.retries
            s.reused_downloads = self._fetcher.stats.skipped
            s.resumed_downloads = self._fetcher.stats.resumed
        s.evicted = list(self._evicted)  # the runner's end-of-run eviction adds to it
        left = s.units - len(s.outcomes)
        if self._cluster_lost is not None and stopped is None and left > 0:
            s.run_errors.append(
                f"{left} day(s) not started: {self._cluster_lost}; the next run does them"
            )

    def protected(self) -> set[str]:
        """The run's days (to do and cached): never evicted by its own run."""
        return self._protect

    def _make_room(self, pk: PartitionKey, source_bytes: int, progress: Progress) -> None:
        """Evict LRU partitions before writing one whose expected size would overflow the cache."""
        if self._room is None:
            return
        try:
            gone = self._room.make(pk.source, pk.message_type, source_bytes)
        except CvCatalogError as e:
            progress.note(f"eviction skipped: {e}")
            return
        if gone:
            progress.note(f"evicted {len(gone)} partition(s) to make room for {pk.key}")
            self._evicted += gone


def ingest(
    cfg: DataSourceConfig,
    *,
    progress: Progress | None = None,
    today: date | None = None,
    force_refresh: bool = False,
    fetcher_factory: Callable[[DataSourceConfig], S3Fetcher] | None = None,
    pool: ConversionPool | None = None,
    check_changes: bool | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Summary:
    """Ingest a date range of one source and message type (the config) through the pipeline;
    returns what happened per day."""
    progress = progress or NullProgress()
    check_not_future(cfg, today)
    db = CatalogDB.for_ingest(cfg, progress.note)
    run_id = new_run_id()
    source = CvPilotDays(
        cfg,
        db,
        run_id=run_id,
        force_refresh=force_refresh,
        today=today,
        fetcher_factory=fetcher_factory,
        pool=pool,
        check_changes=check_changes,
    )
    runner = Runner(
        source,
        db,
        progress=progress,
        retry=RetryPolicy.from_config(cfg.download),
        sleep=sleep,
        run_id=run_id,
    )
    return runner.run()
