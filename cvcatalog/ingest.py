"""Ingest: bucket days → downloaded objects → canonical Parquet → catalog, one partition at a time.

Each partition is processed under its own inter-process lock and published in one catalog
transaction, so two ingests over overlapping ranges never build the same day twice, and a crash
leaves either the previous state or the new one, never a mixture.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import filelock
import pyarrow.parquet as pq

from cvcatalog import incremental
from cvcatalog.config import DataSourceConfig
from cvcatalog.exceptions import CredentialsError, CvCatalogError, EndpointUnreachableError
from cvcatalog.io.download import ObjectInfo, S3Fetcher
from cvcatalog.io.layout import (
    CatalogPaths,
    prune_empty_dirs,
    remove_tree,
    sha256_file,
)
from cvcatalog.io.s3 import make_client
from cvcatalog.quality.rules import QualityStats
from cvcatalog.quality.rules import record as record_quality
from cvcatalog.schemas import SCHEMAS, MessageSchema
from cvcatalog.sources import PartitionKey, partitions_for
from cvcatalog.state import manifest
from cvcatalog.state.access import record_access
from cvcatalog.state.db import CatalogDB, now_utc
from cvcatalog.state.manifest import FileRecord, PartitionRecord, SourceObjectRecord
from cvcatalog.transform import ConvertResult, RawFile, apply_quality, convert_partition

if TYPE_CHECKING:
    from cvcatalog.distributed import ConversionPool


class IngestProgress(Protocol):
    """What an ingest reports while it runs (the CLI draws rich progress bars from it)."""

    def plan(self, todo: list[str], cached: list[str]) -> None: ...
    def listed(self, key: str, objects: int, nbytes: int) -> None: ...
    def downloaded(self, nbytes: int) -> None: ...
    def converting(self, key: str) -> None: ...
    def finished(self, outcome: DayOutcome) -> None: ...
    def note(self, message: str) -> None: ...


class NullProgress:
    def plan(self, todo: list[str], cached: list[str]) -> None:
        pass

    def listed(self, key: str, objects: int, nbytes: int) -> None:
        pass

    def downloaded(self, nbytes: int) -> None:
        pass

    def converting(self, key: str) -> None:
        pass

    def finished(self, outcome: DayOutcome) -> None:
        pass

    def note(self, message: str) -> None:
        pass


@dataclass
class DayOutcome:
    key: str
    status: str  # complete | no_data | failed | cached
    rows: int = 0
    quarantined: int = 0
    objects: int = 0
    bytes_downloaded: int = 0
    parquet_bytes: int = 0
    seconds: float = 0.0
    error: str | None = None
    detail: str = ""
    #: source objects by change (--check-changes; a newly built day counts all as added)
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0


@dataclass
class IngestSummary:
    run_id: str
    source: str
    message_type: str
    start: date
    end: date
    timezone: str
    days: list[DayOutcome] = field(default_factory=list)
    seconds: float = 0.0
    list_requests: int = 0
    get_requests: int = 0
    retries: int = 0
    reused_downloads: int = 0  # objects already on disk from an interrupted run (no GET)
    resumed_downloads: int = 0  # partial objects continued with an HTTP Range request
    evicted: list[str] = field(default_factory=list)
    #: where conversions ran: "local" (this process) or the pool, e.g. "dask tcp://host:8786"
    executor: str = "local"
    #: "full" (cache rules only) or "incremental" (--check-changes: cached days listed again)
    mode: str = "full"

    def count(self, status: str) -> int:
        return sum(1 for d in self.days if d.status == status)

    @property
    def rows(self) -> int:
        return sum(d.rows for d in self.days)

    @property
    def quarantined(self) -> int:
        return sum(d.quarantined for d in self.days)

    @property
    def bytes_downloaded(self) -> int:
        return sum(d.bytes_downloaded for d in self.days)

    @property
    def parquet_bytes(self) -> int:
        return sum(d.parquet_bytes for d in self.days)

    @property
    def ok(self) -> bool:
        return self.count("failed") == 0

    def objects(self, change: str) -> int:
        """Source objects by change: added | changed | removed | unchanged."""
        return sum(int(getattr(d, change)) for d in self.days)

    @property
    def partitions_rewritten(self) -> int:
        """Partitions this run wrote (built or merged) and committed."""
        return self.count("complete")

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "source": self.source,
            "message_type": self.message_type,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "timezone": self.timezone,
            "days_complete": self.count("complete"),
            "days_cached": self.count("cached"),
            "days_no_data": self.count("no_data"),
            "days_failed": self.count("failed"),
            "rows": self.rows,
            "quarantined": self.quarantined,
            "bytes_downloaded": self.bytes_downloaded,
            "parquet_bytes": self.parquet_bytes,
            "list_requests": self.list_requests,
            "get_requests": self.get_requests,
            "retries": self.retries,
            "reused_downloads": self.reused_downloads,
            "resumed_downloads": self.resumed_downloads,
            "mode": self.mode,
            "objects_added": self.objects("added"),
            "objects_changed": self.objects("changed"),
            "objects_removed": self.objects("removed"),
            "objects_unchanged": self.objects("unchanged"),
            "partitions_rewritten": self.partitions_rewritten,
            "seconds": round(self.seconds, 3),
            "evicted": self.evicted,
            "executor": self.executor,
            "days": [d.__dict__ for d in self.days],
        }


@dataclass
class _Fetched:
    """A partition's objects, listed and downloaded into staging, ready to convert."""

    prior: PartitionRecord | None
    objects: list[ObjectInfo]
    names: dict[str, Path]
    downloaded: int
    nbytes: int
    #: set for a complete day checked with --check-changes: what changed since its version
    delta: incremental.ObjectDelta | None = None
    #: a changed day converted whole rather than merged (a quality config: its counts and
    #: cleaning cover the whole day, and smoothing never runs twice over kept rows)
    whole: bool = False

    @property
    def merging(self) -> bool:
        """Only delta.fetch was downloaded; it is merged with the day's kept rows."""
        return self.delta is not None and not self.whole


@dataclass
class _Prepared:
    """The result of the fetch stage: either an outcome already, or fetched objects."""

    pk: PartitionKey
    lock: filelock.BaseFileLock | None
    outcome: DayOutcome | None = None
    fetched: _Fetched | None = None
    t0: float = field(default_factory=time.monotonic)


@dataclass
class _Converting:
    """A partition whose conversion was handed to a pool; still locked until published."""

    prepared: _Prepared
    out_dir: Path
    future: Future[ConvertResult]


def _describe(e: BaseException, where: Path | None = None) -> str:
    if _is_enospc(e):
        return f"no space left on device while writing {_enospc_path(e) or where or 'the catalog'}"
    return str(e) if isinstance(e, CvCatalogError) else f"{type(e).__name__}: {e}"


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
    """Whether a partition must be (re)fetched, and why not when it need not."""
    if force or rec is None:
        return True, ""
    if rec.status == "failed":
        return True, ""
    if (
        rec.status == "complete"
        and rec.canonical_version != SCHEMAS[(rec.source, rec.message_type)].canonical_version
    ):
        return True, ""  # written under an older canonical schema: rebuild, never mix
    if rec.status == "complete":
        return False, "cached"
    # no_data: the sandbox lags, so a marker for a recent day, or one taken while the day was
    # still recent, is only provisional.
    recent = timedelta(days=cfg.cache.recent_days)
    last = rec.pk.last_day
    if today - last <= recent:
        return True, ""
    checked = rec.checked_at.date() if rec.checked_at else last
    if checked - last <= recent:
        return True, ""
    if rec.checked_at and now_utc() - rec.checked_at > timedelta(days=cfg.cache.ttl_days):
        return True, ""
    return False, "no_data (cached)"


def _raw_name(obj: ObjectInfo, index: int) -> str:
    """Local name of a downloaded object: never derived from the key's path components."""
    digest = hashlib.sha1(obj.key.encode()).hexdigest()[:16]
    return f"{index:06d}-{digest}.json"


class Ingestor:
    """Runs one ingest job described by a DataSourceConfig."""

    def __init__(
        self,
        cfg: DataSourceConfig,
        *,
        force_refresh: bool = False,
        progress: IngestProgress | None = None,
        today: date | None = None,
        fetcher_factory: Callable[[DataSourceConfig], S3Fetcher] | None = None,
        pool: ConversionPool | None = None,
        check_changes: bool | None = None,
    ) -> None:
        """pool: run conversions there (e.g. on a Dask cluster, cvcatalog.distributed) with
        several days in flight; None converts in this process, one day at a time.
        check_changes: list cached days again and re-ingest only their new or changed objects
        (cvcatalog.incremental); None takes cache.check_changes."""
        self.cfg = cfg
        self.force = force_refresh
        self.check_changes = cfg.cache.check_changes if check_changes is None else check_changes
        self.progress: IngestProgress = progress or NullProgress()
        self.paths = CatalogPaths.at(cfg.cache.directory)
        self.db = CatalogDB(
            self.paths,
            cfg.cache.lock_timeout_seconds,
            notify=self.progress.note,
            storage=cfg.storage,
            s3=cfg.download,
        )
        self.schema: MessageSchema = SCHEMAS[(cfg.source, cfg.message_type)]
        self.today = today or now_utc().date()
        self.run_id = now_utc().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        self._fetcher_factory = fetcher_factory or _default_fetcher
        self._fetcher: S3Fetcher | None = None
        self._protect: set[str] = set()  # this run's partitions: never evicted to make room
        self._evicted: list[str] = []
        self.pool = pool

    # -- planning ------------------------------------------------------------------------
    def plan(self) -> tuple[list[PartitionKey], list[PartitionKey], dict[str, PartitionRecord]]:
        start, end = self.cfg.date_range.resolve(self.today)
        keys = partitions_for(
            self.cfg.source, self.cfg.message_type, start, end, self.cfg.date_range.timezone
        )
        with self.db.read() as con:
            known = manifest.get_partitions(con, keys=[k.key for k in keys])
        todo: list[PartitionKey] = []
        cached: list[PartitionKey] = []
        for k in keys:
            work, _ = needs_work(known.get(k.key), self.today, self.cfg, self.force)
            if not work and self.check_changes:
                work = incremental.checkable(known.get(k.key), self.force)
            (todo if work else cached).append(k)
        return todo, cached, known

    # -- the run -------------------------------------------------------------------------
    def run(self) -> IngestSummary:
        t0 = time.monotonic()
        start, end = self.cfg.date_range.resolve(self.today)
        summary = IngestSummary(
            self.run_id,
            self.cfg.source,
            self.cfg.message_type,
            start,
            end,
            self.cfg.date_range.timezone,
        )
        if self.pool is not None:
            summary.executor = self.pool.name
        summary.mode = "incremental" if self.check_changes else "full"
        self.paths.ensure()
        todo, cached, known = self.plan()
        self._protect = {k.key for k in todo + cached}
        self.progress.plan([k.key for k in todo], [k.key for k in cached])
        for k in cached:
            rec = known[k.key]
            status = "cached" if rec.status == "complete" else "no_data"
            outcome = DayOutcome(k.key, status, rows=rec.rows, detail="cached")
            summary.days.append(outcome)
            self.progress.finished(outcome)
        record_access([k.key for k in cached if known[k.key].status == "complete"], self.paths)
        self._sweep_staging(cached)
        if todo:
            self._record_run_start(start, end, summary.mode)
            stopped: BaseException | None = None
            try:
                if self.pool is None:
                    self._run_days(todo, summary)
                else:
                    self._run_days_pooled(todo, summary, self.pool)
            except BaseException as e:  # interrupted: committed days stay, the run says so
                stopped = e
                raise
            finally:
                summary.seconds = time.monotonic() - t0
                if self._fetcher is not None:
                    summary.list_requests = self._fetcher.list_requests
                    summary.get_requests = self._fetcher.get_requests
                    summary.retries = self._fetcher.retries
                    summary.reused_downloads = self._fetcher.stats.skipped
                    summary.resumed_downloads = self._fetcher.stats.resumed
                summary.evicted = self._evicted + self._evict_if_needed(self._protect)
                self._record_run_end(summary, stopped)
            self._expire_snapshots(summary)
        summary.seconds = time.monotonic() - t0
        return summary

    @property
    def fetcher(self) -> S3Fetcher:
        if self._fetcher is None:
            self._fetcher = self._fetcher_factory(self.cfg)
        return self._fetcher

    def _run_days(self, todo: list[PartitionKey], summary: IngestSummary) -> None:
        """Fetch day N+1 (list + download, one background thread) while day N converts.

        Days another process holds are deferred to the end and then waited for.
        """
        deferred: list[PartitionKey] = []
        queue: deque[tuple[PartitionKey, Future[_Prepared | None]]] = deque()
        days = iter(todo)
        with ThreadPoolExecutor(1, thread_name_prefix="cvcatalog-prefetch") as pool:

            def submit_next() -> None:
                pk = next(days, None)
                if pk is not None:
                    queue.append((pk, pool.submit(self._prepare, pk, False)))

            submit_next()
            try:
                while queue:
                    pk, fut = queue.popleft()
                    submit_next()  # overlaps the next download with this conversion
                    prepared = fut.result()
                    if prepared is None:
                        deferred.append(pk)
                        continue
                    summary.days.append(self._finish(prepared))
            except BaseException:
                _release_prefetched(queue)  # never leave a partition lock behind
                raise
        for pk in deferred:
            self.progress.note(f"waiting for another cvcatalog process working on {pk.key}")
            prepared = self._prepare(pk, True)
            assert prepared is not None
            summary.days.append(self._finish(prepared))

    def _run_days_pooled(
        self, todo: list[PartitionKey], summary: IngestSummary, pool: ConversionPool
    ) -> None:
        """Like _run_days, but conversions run in the pool, up to pool.capacity at once.

        The client fetches day N+1 (one background thread) while days ..N convert in the pool,
        and places and commits each converted day, under its partition lock, as soon as its
        conversion completes (in any order). Days another process holds go last, as before.
        """
        deferred: list[PartitionKey] = []
        queue: deque[tuple[PartitionKey, Future[_Prepared | None]]] = deque()
        running: dict[Future[ConvertResult], _Converting] = {}
        days = iter(todo)

        def start(prepared: _Prepared) -> None:
            started = self._start_conversion(prepared, pool)
            if isinstance(started, DayOutcome):
                summary.days.append(started)
            else:
                running[started.future] = started

        def publish(done: set[Future[Any]]) -> None:
            for fut in [f for f in running if f in done]:
                summary.days.append(self._publish_converted(running.pop(fut), pool))

        with ThreadPoolExecutor(1, thread_name_prefix="cvcatalog-prefetch") as prefetch:

            def submit_next() -> None:
                pk = next(days, None)
                if pk is not None:
                    queue.append((pk, prefetch.submit(self._prepare, pk, False)))

            submit_next()
            try:
                while queue or running:
                    # the next fetched day may start only while the pool has room
                    ready: list[Future[Any]] = (
                        [queue[0][1]] if queue and len(running) < pool.capacity else []
                    )
                    done, _ = wait([*ready, *running], return_when=FIRST_COMPLETED)
                    publish(done)
                    if ready and ready[0].done():
                        pk, fut = queue.popleft()
                        submit_next()  # fetch the next day while this one converts
                        prepared = fut.result()
                        if prepared is None:
                            deferred.append(pk)
                        else:
                            start(prepared)
                for pk in deferred:
                    self.progress.note(f"waiting for another cvcatalog process working on {pk.key}")
                    prepared = self._prepare(pk, True)
                    assert prepared is not None
                    start(prepared)
                    while running:
                        done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                        publish(done)
            except BaseException:
                _release_prefetched(queue)  # never leave a partition lock behind
                for conv in running.values():
                    conv.future.cancel()
                    remove_tree(conv.out_dir)
                    if conv.prepared.lock is not None:
                        conv.prepared.lock.release()
                raise

    def _start_conversion(self, p: _Prepared, pool: ConversionPool) -> DayOutcome | _Converting:
        """Hand a fetched partition's conversion to the pool (it stays locked), or finish a
        partition that needs none (cached, no_data, failed download) right away."""
        from cvcatalog.distributed import ConvertJob

        if p.outcome is not None or p.fetched is None:
            return self._finish(p)
        if p.fetched.merging:
            # an incremental merge reads the day's current files: done here, on the client
            return self._finish(p)
        pk, f = p.pk, p.fetched
        try:
            self._make_room(pk, f.nbytes)
            self.progress.converting(pk.key)
            out_dir = self._fresh_out_dir(pk)
            memory = self.cfg.memory
            job = ConvertJob(
                key=pk.key,
                schema=self.schema,
                files=tuple(RawFile(f.names[o.key], o.key) for o in f.objects),
                out_dir=out_dir,
                spill_dir=self.paths.staging_dir(pk) / f"spill-{self.run_id}",
                validation=self.cfg.validation,
                rows_per_file=memory.rows_per_file,
                row_group_size=memory.row_group_size,
                max_usage_gb=pool.memory_gb or memory.max_usage_gb,
                threads=memory.duckdb_threads or pool.threads,
                quality=self.cfg.quality,
            )
            return _Converting(p, out_dir, pool.submit(job))
        except (CvCatalogError, OSError) as e:
            outcome = self._fail(pk, _describe(e, self.paths.partition_dir(pk)))
        except BaseException:
            if p.lock is not None:
                p.lock.release()
            raise
        p.outcome = outcome
        return self._finish(p)

    def _publish_converted(self, c: _Converting, pool: ConversionPool) -> DayOutcome:
        """Place and commit a partition the pool converted, then release its lock."""
        p = c.prepared
        assert p.fetched is not None
        try:
            try:
                result = c.future.result()
            except Exception as e:  # the task failed or its worker was lost: fail the day
                remove_tree(c.out_dir)
                outcome = self._fail(p.pk, f"conversion on {pool.name} failed: {_describe(e)}")
            else:
                try:
                    files = self._place_result(p.pk, result, c.out_dir)
                    outcome = self._record_converted(p.pk, p.fetched, result, files)
                except (CvCatalogError, OSError, duckdb.Error) as e:
                    outcome = self._fail(p.pk, _describe(e, self.paths.partition_dir(p.pk)))
            outcome.seconds = time.monotonic() - p.t0
            self.progress.finished(outcome)
            return outcome
        finally:
            if p.lock is not None:
                p.lock.release()

    def _sweep_staging(self, done: list[PartitionKey]) -> None:
        """Raw copies of days already in the catalog, left by a run killed between its commit
        and its cleanup: nothing will read them again."""
        for pk in done:
            stage = self.paths.staging_dir(pk)
            if not stage.exists():
                continue
            lock = filelock.FileLock(str(self._lock_path(pk)), thread_local=False)
            try:
                lock.acquire(timeout=0)
            except filelock.Timeout:
                continue  # another process is working on it
            try:
                remove_tree(stage)
                prune_empty_dirs(stage.parent, self.paths.staging)
            finally:
                lock.release()

    def _sweep_staging_locked(self, pk: PartitionKey) -> None:
        """A checked day found unchanged: raw copies an interrupted run left are of no use."""
        stage = self.paths.staging_dir(pk)
        if stage.exists():
            remove_tree(stage)
            prune_empty_dirs(stage.parent, self.paths.staging)

    def _lock_path(self, pk: PartitionKey) -> Path:
        p = self.paths.partition_lock(pk)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def _prepare(self, pk: PartitionKey, wait: bool) -> _Prepared | None:
        """Lock the partition, decide whether it needs work, list and download it.

        Returns None when another process holds the partition and wait is False. The
        returned partition stays locked until _finish releases it.
        """
        lock = filelock.FileLock(str(self._lock_path(pk)), thread_local=False)
        try:
            lock.acquire(timeout=max(self.cfg.cache.lock_timeout_seconds, 1.0) * 10 if wait else 0)
        except filelock.Timeout:
            if not wait:
                return None
            return _Prepared(
                pk, None, DayOutcome(pk.key, "failed", error="partition locked by another process")
            )
        t0 = time.monotonic()
        try:
            outcome, fetched = self._fetch(pk)
        except BaseException:
            lock.release()
            raise
        return _Prepared(pk, lock, outcome, fetched, t0)

    def _fetch(self, pk: PartitionKey) -> tuple[DayOutcome | None, _Fetched | None]:
        # Another process may have finished it while we waited for the lock.
        with self.db.read() as con:
            rec = manifest.get_partitions(con, keys=[pk.key]).get(pk.key)
            current = manifest.get_files(con, [pk.key])
            referenced = {f.path for f in current} | self.db.lake_files(con)
            work, why = needs_work(rec, self.today, self.cfg, self.force)
            check = not work and self.check_changes and incremental.checkable(rec, self.force)
            known = manifest.get_source_objects(con, pk.key) if check else []
        if not work and not check and rec is not None:
            detail = f"{why} (by another process)"
            return DayOutcome(pk.key, "cached", rows=rec.rows, detail=detail), None
        self._remove_orphans(pk, referenced)
        try:
            objects = self.fetcher.list(pk.s3_prefix)
            nbytes = sum(o.size for o in objects)
            delta = None
            if objects and check and rec is not None and rec.status == "complete":
                delta = incremental.diff_objects(objects, known, current)
            whole = delta is not None and not delta.empty and self.cfg.quality is not None
            fetch = objects if delta is None or whole else delta.fetch
            self.progress.listed(pk.key, len(fetch), sum(o.size for o in fetch))
            if not objects:
                return self._empty_listing(pk, rec), None
            if delta is not None and delta.empty:  # LIST only: nothing fetched, nothing written
                self._sweep_staging_locked(pk)
                n = len(delta.unchanged)
                outcome = DayOutcome(
                    pk.key, "cached", rows=rec.rows if rec else 0, unchanged=n,
                    detail="unchanged (checked)",
                )  # fmt: skip
                return outcome, None
            raw_dir = self.paths.staging_dir(pk) / "raw"
            names = {o.key: raw_dir / _raw_name(o, i) for i, o in enumerate(objects)}
            results, failures = self.fetcher.download_many(
                fetch, lambda o: names[o.key], on_bytes=self.progress.downloaded
            )
        except (CredentialsError, EndpointUnreachableError):  # every other day would fail too
            raise
        except (CvCatalogError, OSError) as e:
            return self._fail(pk, _describe(e)), None
        downloaded = sum(r.size - r.resumed_from for r in results)
        if failures:
            obj, err = failures[0]
            more = f" (and {len(failures) - 1} more objects)" if len(failures) > 1 else ""
            detail = _describe(err)  # names the key already when it comes from S3Error
            what = detail if obj.key in detail else f"{obj.key}: {detail}"
            out = self._fail(pk, f"download failed: {what}{more}")
            out.bytes_downloaded = downloaded
            return out, None
        return None, _Fetched(rec, objects, names, downloaded, nbytes, delta, whole)

    def _empty_listing(self, pk: PartitionKey, prior: PartitionRecord | None) -> DayOutcome:
        if prior is not None and prior.status == "complete":
            # An empty listing never erases data we already hold.
            self.progress.note(f"{pk.key}: the bucket lists nothing now; keeping cached data")
            return DayOutcome(pk.key, "cached", rows=prior.rows, detail="kept (empty listing)")
        rec = PartitionRecord(
            pk.key, pk.source, pk.message_type, pk.day, "no_data", run_id=self.run_id
        )
        self._commit(pk, rec)
        return DayOutcome(pk.key, "no_data")

    def _finish(self, p: _Prepared) -> DayOutcome:
        """Convert and publish a fetched partition, then release its lock."""
        try:
            if p.outcome is not None:
                outcome = p.outcome
            else:
                assert p.fetched is not None
                try:
                    self._make_room(p.pk, p.fetched.nbytes)
                    outcome = self._convert_publish(p.pk, p.fetched)
                except (CvCatalogError, OSError, duckdb.Error) as e:
                    outcome = self._fail(p.pk, _describe(e, self.paths.partition_dir(p.pk)))
            outcome.seconds = time.monotonic() - p.t0
            self.progress.finished(outcome)
            return outcome
        finally:
            if p.lock is not None:
                p.lock.release()

    def _convert_publish(self, pk: PartitionKey, f: _Fetched) -> DayOutcome:
        """Convert in this process (the default), then place and commit."""
        objects, names = f.objects, f.names
        self.progress.converting(pk.key)
        out_dir = self._fresh_out_dir(pk)
        inputs = f.delta.fetch if f.merging and f.delta is not None else objects
        raw = [RawFile(names[o.key], o.key) for o in inputs]
        try:
            try:
                result = self._convert_inputs(f, raw, out_dir)
            except duckdb.OutOfMemoryException as e:
                if self._threads() == 1:
                    raise
                # Every thread of read_json and the Parquet writer holds its own buffers; one
                # thread needs about half the memory (a 2 GB day: 1.03 -> 0.68 GB peak RSS).
                self.progress.note(
                    f"{pk.key}: DuckDB ran out of memory.max_usage_gb "
                    f"({_short(e)}); converting again with 1 thread"
                )
                out_dir = self._fresh_out_dir(pk)
                result = self._convert_inputs(f, raw, out_dir, threads=1)
        except BaseException:
            remove_tree(out_dir)
            raise
        files = self._place_result(pk, result, out_dir)
        return self._record_converted(pk, f, result, files)

    def _fresh_out_dir(self, pk: PartitionKey) -> Path:
        out_dir = self.paths.staging_dir(pk) / f"out-{self.run_id}"
        remove_tree(out_dir)
        out_dir.mkdir(parents=True)
        return out_dir

    def _place_result(
        self, pk: PartitionKey, result: ConvertResult, out_dir: Path
    ) -> list[FileRecord]:
        """Move a conversion's outputs into the lake (invisible until committed); the
        conversion's output directory is removed either way."""
        try:
            if result.unknown_versions:
                self.progress.note(
                    f"{pk.key}: unknown schema version(s) {result.unknown_versions}; "
                    "parsed the known fields"
                )
            return self._place_outputs(
                pk, result.parquet_files, result.quarantine_file, result.quarantined
            )
        finally:
            remove_tree(out_dir)

    def _record_converted(
        self, pk: PartitionKey, f: _Fetched, result: ConvertResult, files: list[FileRecord]
    ) -> DayOutcome:
        """Commit a placed partition in one catalog transaction, then drop its staging."""
        objects = f.objects
        stage = self.paths.staging_dir(pk)
        rec = PartitionRecord(
            pk.key,
            pk.source,
            pk.message_type,
            pk.day,
            "complete",
            rows=result.rows,
            quarantined=result.quarantined,
            parquet_bytes=sum(f.bytes for f in files if f.kind == "data"),
            source_objects=len(objects),
            source_bytes=f.nbytes,
            schema_versions=sorted(result.schema_versions),
            canonical_version=self.schema.canonical_version,
            run_id=self.run_id,
        )
        validation = [("quarantine", r, n) for r, n in result.reasons.items()] + [
            ("warning", w, n) for w, n in result.warnings.items()
        ]
        sobjs = [SourceObjectRecord(o.key, o.size, o.etag, o.last_modified) for o in objects]
        try:
            self._commit(pk, rec, files, sobjs, validation, quality=result.quality)
        except BaseException:
            self.db.store.discard(f.path for f in files)
            raise
        remove_tree(stage)
        prune_empty_dirs(stage.parent, self.paths.staging)
        c = f.delta.counts() if f.delta is not None else {"added": len(objects)}
        return DayOutcome(
            pk.key,
            "complete",
            rows=result.rows,
            quarantined=result.quarantined,
            objects=len(objects),
            bytes_downloaded=f.downloaded,
            parquet_bytes=rec.parquet_bytes,
            detail=f.delta.describe() if f.delta is not None else "",
            added=c["added"],
            changed=c.get("changed", 0),
            removed=c.get("removed", 0),
            unchanged=c.get("unchanged", 0),
        )

    def _convert_inputs(
        self, f: _Fetched, raw: list[RawFile], out_dir: Path, threads: int | None = None
    ) -> ConvertResult:
        """A normal day: convert all its objects. A changed day (--check-changes): convert the
        added and changed objects only and merge them with the day's kept rows, unless a
        quality config made it convert the whole day (_Fetched.whole)."""
        if not f.merging or f.delta is None:
            return self._convert(raw, out_dir, threads)
        delta_dir = out_dir / incremental.DELTA_DIR
        new = self._convert(raw, delta_dir, threads) if raw else incremental.empty_result()
        with self._duckdb(threads) as con:
            store = self.db.store
            if not store.is_local:
                self.db.attach_lake(con)  # the kept rows are read from the S3 lake
            merged = incremental.merge_partition(
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
            return merged

    def _convert(
        self, raw: list[RawFile], out_dir: Path, threads: int | None = None
    ) -> ConvertResult:
        with self._duckdb(threads) as con:
            result = convert_partition(
                con,
                self.schema,
                raw,
                out_dir,
                validation=self.cfg.validation,
                target_rows_per_file=self.cfg.memory.rows_per_file,
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
    def _duckdb(self, threads: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """An in-memory DuckDB for conversion, bounded by the memory config; spills to staging."""
        con = duckdb.connect(":memory:")
        try:
            spill = self.paths.staging / "duckdb_tmp"
            spill.mkdir(parents=True, exist_ok=True)
            con.execute("SET memory_limit = ?", [self.cfg.memory.duckdb_memory_limit])
            con.execute("SET temp_directory = ?", [str(spill)])
            con.execute("SET preserve_insertion_order = false")
            if threads or self.cfg.memory.duckdb_threads:
                con.execute("SET threads = ?", [threads or self.cfg.memory.duckdb_threads])
            yield con
        finally:
            con.close()

    def _place_outputs(
        self, pk: PartitionKey, parquet: list[Path], quarantine: Path | None, quarantined: int
    ) -> list[FileRecord]:
        """Move conversion outputs into the lake under new names (invisible until committed)."""
        placed: list[FileRecord] = []
        try:
            return self._place(pk, parquet, quarantine, quarantined, placed)
        except BaseException:  # e.g. disk full: nothing half-placed stays in the lake
            self.db.store.discard(f.path for f in placed)
            raise

    def _place(
        self,
        pk: PartitionKey,
        parquet: list[Path],
        quarantine: Path | None,
        quarantined: int,
        placed: list[FileRecord],
    ) -> list[FileRecord]:
        tag = self.run_id.rsplit("-", 1)[-1]
        store = self.db.store
        dest_dir = self.paths.partition_rel(pk)
        for i, src in enumerate(sorted(parquet)):
            rel = f"{dest_dir}/part-{self.run_id[:15]}-{tag}-{i:03d}.parquet"
            rows = pq.ParquetFile(src).metadata.num_rows
            digest = sha256_file(src)
            size = src.stat().st_size
            store.put(src, rel, size, digest)
            placed.append(FileRecord(rel, pk.key, "data", rows, size, digest))
        if quarantine is not None:
            rel = f"{self.paths.quarantine_rel(pk)}/quarantine-{self.run_id[:15]}-{tag}.ndjson"
            digest = sha256_file(quarantine)
            size = quarantine.stat().st_size
            store.put(quarantine, rel, size, digest)
            placed.append(FileRecord(rel, pk.key, "quarantine", quarantined, size, digest))
        return placed

    def _commit(
        self,
        pk: PartitionKey,
        rec: PartitionRecord,
        files: list[FileRecord] | None = None,
        objects: list[SourceObjectRecord] | None = None,
        validation: list[tuple[str, str, int]] | None = None,
        quality: QualityStats | None = None,
    ) -> None:
        with self.db.write(run_id=self.run_id, message=f"ingest {pk.key}") as con:
            obsolete = manifest.put_partition(
                con, rec, files or [], objects or [], validation or []
            )
            if quality is not None:
                record_quality(
                    con, self.run_id, pk.source, pk.message_type, pk.key, quality, self.cfg.quality
                )
        self.db.retire(f.path for f in obsolete)

    def _fail(self, pk: PartitionKey, reason: str) -> DayOutcome:
        """Record a failed day. A day that was complete keeps its data; the error is reported."""
        with self.db.read() as con:
            prior = manifest.get_partitions(con, keys=[pk.key]).get(pk.key)
        if prior is not None and prior.status == "complete":
            return DayOutcome(
                pk.key, "failed", rows=prior.rows, error=f"{reason} (kept previous data)"
            )
        rec = PartitionRecord(
            pk.key, pk.source, pk.message_type, pk.day, "failed", error=reason, run_id=self.run_id
        )
        try:
            self._commit(pk, rec)
        except CvCatalogError as e:  # locked, or the disk is full: the day is reported anyway
            reason = f"{reason}; {e}"
        return DayOutcome(pk.key, "failed", error=reason)

    def _remove_orphans(self, pk: PartitionKey, referenced: set[str]) -> None:
        """Files in a partition's directories that the manifest does not list (a crashed run)."""
        store = self.db.store
        for d in (self.paths.partition_rel(pk), self.paths.quarantine_rel(pk)):
            for rel in store.list_files(under=d):
                if rel not in referenced:
                    store.delete(rel)

    # -- bookkeeping -----------------------------------------------------------------------
    def _expire_snapshots(self, summary: IngestSummary) -> None:
        """Replaced data stays readable for cache.snapshot_retention_days, then its files go."""
        if not summary.partitions_rewritten:
            return
        keep = timedelta(days=self.cfg.cache.snapshot_retention_days)
        try:
            self.db.expire_snapshots(now_utc() - keep)
        except CvCatalogError as e:  # the data is committed; old files wait for the next run
            self.progress.note(f"old snapshots were not expired: {e}")

    def _record_run_start(self, start: date, end: date, mode: str) -> None:
        run = {
            "run_id": self.run_id,
            "started_at": now_utc(),
            "status": "running",
            "source": self.cfg.source,
            "message_type": self.cfg.message_type,
            "start_date": start,
            "end_date": end,
            "timezone": self.cfg.date_range.timezone,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "mode": mode,
        }
        with self.db.write() as con:
            _mark_interrupted_runs(con, socket.gethostname())
            manifest.start_run(con, run)

    def _record_run_end(self, s: IngestSummary, stopped: BaseException | None = None) -> None:
        failed = [d for d in s.days if d.status == "failed"]
        message = "; ".join(f"{d.key}: {d.error}" for d in failed)
        if stopped is not None:
            why = _describe(stopped) if str(stopped) else type(stopped).__name__
            message = f"stopped after {len(s.days)} day(s): {why}" + (
                f"; {message}" if message else ""
            )
        values = {
            "finished_at": now_utc(),
            "status": (
                "interrupted"  # Ctrl-C, SystemExit: the days committed so far stay
                if stopped is not None and not isinstance(stopped, Exception)
                else "failed"
                if failed or stopped is not None
                else "ok"
            ),
            "days_complete": s.count("complete"),
            "days_no_data": s.count("no_data"),
            "days_failed": len(failed),
            "days_cached": s.count("cached"),
            "rows": s.rows,
            "quarantined": s.quarantined,
            "bytes_downloaded": s.bytes_downloaded,
            "parquet_bytes": s.parquet_bytes,
            "list_requests": s.list_requests,
            "get_requests": s.get_requests,
            "seconds": s.seconds,
            "message": message[:2000] or None,
            "objects_added": s.objects("added"),
            "objects_changed": s.objects("changed"),
            "objects_removed": s.objects("removed"),
            "objects_unchanged": s.objects("unchanged"),
            "partitions_rewritten": s.partitions_rewritten,
        }
        try:
            with self.db.write() as con:
                manifest.finish_run(con, self.run_id, values)
        except CvCatalogError as e:  # locked or disk full: the summary is still reported
            self.progress.note(f"the run's end was not recorded: {e}")

    def _make_room(self, pk: PartitionKey, source_bytes: int) -> None:
        """Evict LRU partitions before writing one whose expected size would overflow the cache."""
        from cvcatalog.ops.cache import expected_bytes, make_room

        incoming = expected_bytes(self.db, pk.source, pk.message_type, source_bytes)
        try:
            gone = make_room(self.db, self.cfg.cache.max_size_gb, incoming, self._protect)
        except CvCatalogError as e:
            self.progress.note(f"eviction skipped: {e}")
            return
        if gone:
            self.progress.note(f"evicted {len(gone)} partition(s) to make room for {pk.key}")
            self._evicted += gone

    def _evict_if_needed(self, protect: set[str]) -> list[str]:
        from cvcatalog.ops.cache import evict_to_size

        try:
            return evict_to_size(self.db, self.cfg.cache.max_size_gb, protect=protect)
        except CvCatalogError as e:
            self.progress.note(f"eviction skipped: {e}")
            return []


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _mark_interrupted_runs(con: duckdb.DuckDBPyConnection, host: str) -> None:
    """Runs of this host still 'running' whose process is gone were killed: say so."""
    rows = con.execute(
        "SELECT run_id, pid FROM ingest_runs WHERE status = 'running' AND host = ?", [host]
    ).fetchall()
    for run_id, pid in rows:
        if pid is not None and not _pid_alive(int(pid)):
            con.execute(
                "UPDATE ingest_runs SET status = 'interrupted', "
                "message = 'the process ended without finishing (killed or crashed)' "
                "WHERE run_id = ?",
                [run_id],
            )


def _release_prefetched(queue: deque[tuple[PartitionKey, Future[_Prepared | None]]]) -> None:
    """Cancel days still being fetched and unlock those already fetched (a run that stops)."""
    for _, fut in queue:
        fut.cancel()
        with contextlib.suppress(BaseException):
            leftover = fut.result()
            if leftover is not None and leftover.lock is not None:
                leftover.lock.release()


def _default_fetcher(cfg: DataSourceConfig) -> S3Fetcher:
    return S3Fetcher(make_client(cfg.download), cfg.download, cfg.bucket)


def run_ingest(cfg: DataSourceConfig, **kwargs: Any) -> IngestSummary:
    return Ingestor(cfg, **kwargs).run()
