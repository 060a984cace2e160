"""The one runner: every source goes through plan units -> fetch -> convert -> stage -> commit.

Per run: the source plans its units against the catalog (units needing no work are reported at
once); worker threads claim and fetch units (at most `fetch_slots` at once, and at most that
many fetched ahead of the conversions, so fetching unit N+1 overlaps converting unit N);
conversion threads convert them (at most `convert_slots` at once: one DuckDB conversion using
every core for a CV day, a conversion waiting on a Dask worker per slot of a ConversionPool, or
one NGSIM byte range per worker); one commit thread commits the converted units, one commit at
a time, each taking every unit converted meanwhile (a group commit, pipeline.commit: a converted
unit waits up to COMMIT_INTERVAL, or COMMIT_PACE times the last commit's duration, for others
while units are still on their way), while the workers go on; the run's thread schedules and
reports.

Small units (Source.groupable) ready together are converted by one Source.convert_group (up to
Source.group_max; while every unit fetched ahead is small, fetching goes on up to that many); a
group that fails is converted again unit by unit, so one bad unit fails alone.

Transient errors (network, throttling, 5xx) of a fetch or a conversion are retried under the
one retry policy (s3.RetryPolicy); a unit that still fails is recorded failed by its source and
the others go on. An interrupt stops new units, lets the commit in flight finish and commits
the units already converted, releases every claim and records the run 'interrupted' with what
was committed; a kill -9 loses at most the uncommitted units, and the
next run marks the killed run interrupted (mark_interrupted_runs).

A run that creates its catalog writes the catalog's tables on a thread of their own while the
plan and the first fetches go on (a catalog file that does not exist yet records nothing, so a
source reads no state before it appears), then records the run's start there; the first commit
waits for both, and an error of either ends the run. A run into an existing catalog brings its
tables up to date first (ensure_schema), as does a source that records idle runs.

A run that ended normally and wrote a partition expires the snapshots older than its source's
`snapshot_retention_days` (cache.snapshot_retention_days), every source alike, and DuckLake
deletes the files only they showed. A run that had work and was not stopped ends by keeping
the catalog within its source's
`max_size_gb` (cache.max_size_gb): the one LRU eviction (state.eviction.evict_to_size, as
`cache evict`) over every source's bytes, sparing what the run asked for (Source.protected),
once the source's session (and its locks) is over; what went is the summary's `evicted`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

import duckdb

from cvcatalog.exceptions import CvCatalogError, TransientFetchError
from cvcatalog.io.duckdb_ext import interrupted
from cvcatalog.io.s3 import RetryPolicy, is_transient
from cvcatalog.pipeline.commit import COMMIT_INTERVAL, COMMIT_PACE, MAX_BATCH, commit_batch
from cvcatalog.pipeline.contract import (
    Abandoned,
    Claim,
    Plan,
    RunContext,
    Source,
    Staged,
    describe,
)
from cvcatalog.pipeline.report import Interrupted, NullProgress, Outcome, Progress, Summary
from cvcatalog.state import manifest
from cvcatalog.state.db import CatalogDB, now_utc, order_lake_stats
from cvcatalog.state.eviction import evict_to_size

U = TypeVar("U")
T = TypeVar("T")


def new_run_id() -> str:
    return now_utc().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


@dataclass
class _Item(Generic[U]):
    """One unit on its way through the stages."""

    unit: U
    key: str
    claim: Claim | None = None
    t0: float = 0.0
    result: Any = None
    error: BaseException | None = None
    deferred: bool = False
    retries: int = 0
    #: when it was converted (monotonic): waiting for its commit since
    converted_at: float = 0.0


class Runner(Generic[U]):
    """Runs one source into one catalog (see the module docstring)."""

    def __init__(
        self,
        source: Source[U, Any],
        db: CatalogDB,
        *,
        progress: Progress | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        run_id: str | None = None,
        max_batch: int = MAX_BATCH,
        commit_interval: float = COMMIT_INTERVAL,
    ) -> None:
        self.source = source
        self.db = db
        self.progress: Progress = progress or NullProgress()
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.run_id = run_id or new_run_id()
        self.max_batch = max(1, max_batch)
        self.commit_interval = max(0.0, commit_interval)
        #: a new catalog's tables, written on their own thread (run) while the plan and the
        #: first fetches go on, and the run's start recorded there after them (_run)
        self._creator: ThreadPoolExecutor | None = None
        self._creating: Future[None] | None = None
        self._starting: Future[None] | None = None
        #: the plan had units to do (only such a run evicts at its end)
        self._had_work = False

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> Summary:
        src = self.source
        summary = Summary(self.run_id, src.name, src.message_type, mode=src.mode)
        summary.executor = src.executor
        run = RunContext(
            self.run_id, self.db, self.progress, summary, self.retry, sleep=self.sleep,
            started=self._wait_started,
        )  # fmt: skip
        self._creator = self._creating = self._starting = None
        self._had_work = False
        try:
            self.db.check_legacy()  # a damaged catalog.duckdb: one line, nothing created
            self.db.paths.ensure()
            self.db.check_new_lake()  # another catalog's S3 lake: one line, nothing touched
            if self.db.exists() or src.record_idle_runs:
                self.db.ensure_schema()  # a new canonical version's columns, before any read
            else:
                # A new catalog records nothing yet: the plan and the first fetches need none
                # of it, so its tables are written meanwhile, on a thread of their own that
                # then records the run's start (_record_start_when_created); the first commit
                # (and a source's own write: RunContext.started) waits for both.
                self._creator = ThreadPoolExecutor(1, thread_name_prefix="catalog-create")
                self._creating = self._creator.submit(self.db.ensure_schema)
            with src.session(run):
                done = self._run(run)
            # after the session, whose locks are then released (a dataset's load lock: its
            # inputs are evictable like any other source's)
            self._evict(run)
            return done
        except KeyboardInterrupt as e:  # Ctrl-C, whenever: the summary goes with it
            summary.interrupted = True
            raise Interrupted(summary) from e
        except CvCatalogError as e:  # after some units: the summary goes with it
            if any(o.status != "cached" for o in summary.outcomes) and e.run_summary is None:
                summary.stopped = str(e)
                e.run_summary = summary
            raise
        finally:
            if self._creator is not None:
                self._creator.shutdown(wait=True)

    def _run(self, run: RunContext) -> Summary:
        src, s = self.source, run.summary
        t0 = time.monotonic()
        started = False
        if src.record_idle_runs:
            self._record_start()
            started = True
        stopped: BaseException | None = None
        warming: threading.Thread | None = None
        try:
            try:
                plan = self._retried("plan", lambda: src.plan(run), run, quiet=True)
            except CvCatalogError as e:
                if not started:
                    raise
                s.run_errors.append(str(e))
                plan = Plan([])
            self._had_work = bool(plan.todo)
            s.units = plan.units if plan.units is not None else len(plan.todo) + len(plan.done)
            self.progress.plan(
                [src.key(u) for u in plan.todo], [o.key for o in plan.done], plan.nbytes
            )
            for o in plan.done:
                s.outcomes.append(o)
                self.progress.finished(o)
            if plan.todo:
                warming = _warm_up(src)
                if not started and self._creator is not None:
                    self._starting = self._creator.submit(self._record_start_when_created)
                elif not started:
                    self._record_start()
                    started = True
                self._execute(plan.todo, run)
                if self._starting is not None:  # e.g. no unit got as far as a commit
                    self._starting.result()
            elif self._creating is not None:  # nothing to do: a new catalog, its tables made
                self._creating.result()
            elif not started:  # nothing to do, no run recorded: a killed one is said anyway
                self._mark_killed()
        except BaseException as e:  # interrupted: committed units stay, the run says so
            stopped = e
            raise
        finally:
            if warming is not None:
                warming.join()
            if self._starting is not None:  # recorded on the creator's thread
                started = self._started_ok()
            s.seconds = time.monotonic() - t0
            try:
                src.finish(run, stopped)
            finally:
                if started:
                    self._record_end(s, stopped)
        self._expire(run)
        s.seconds = time.monotonic() - t0
        return s

    def _expire(self, run: RunContext) -> None:
        """After a run that ended normally and wrote a partition (of any source): the data it
        replaced stays readable for the source's snapshot_retention_days, then the snapshots
        showing it expire and DuckLake deletes their files."""
        days = self.source.snapshot_retention_days
        if days is None or not run.summary.partitions_rewritten:
            return
        try:
            self.db.expire_snapshots(now_utc() - timedelta(days=days))
        except CvCatalogError as e:  # the data is committed; old files wait for the next run
            self.progress.note(f"old snapshots were not expired: {e}")

    def _evict(self, run: RunContext) -> None:
        """After a run that had work and ended (not one stopped by an error or Ctrl-C: its
        error is the user's line, and the next run or `cache evict` keeps the limit): the
        catalog kept within the source's max_size_gb, least recently used data of every source
        evicted first (state.eviction.evict_to_size, what `cache evict` does), never what the
        run asked for (Source.protected); what went is the summary's `evicted`."""
        src = self.source
        if src.max_size_gb is None or not self._had_work or not self.db.exists():
            return
        try:
            run.summary.evicted += evict_to_size(self.db, src.max_size_gb, protect=src.protected())
        except Exception as e:  # the run's data is committed; the next run tries again
            why = str(e).strip().splitlines()
            self.progress.note(f"eviction skipped: {why[0] if why else type(e).__name__}")

    # -- scheduling -------------------------------------------------------------------------
    def _execute(self, todo: list[U], run: RunContext) -> None:
        src = self.source
        pending: deque[tuple[U, bool]] = deque((u, False) for u in todo)
        deferred: list[U] = []
        fetching: dict[Future[_Item[U]], U] = {}
        ready: deque[_Item[U]] = deque()
        #: a conversion in flight and the units it converts (several: a group)
        converting: dict[Future[Any], list[_Item[U]]] = {}
        to_commit: list[_Item[U]] = []
        #: the commit in flight (one at a time) and its units
        committing: tuple[Future[dict[int, CvCatalogError]], list[_Item[U]]] | None = None
        fetch_slots, convert_slots = max(1, src.fetch_slots), max(1, src.convert_slots)
        fetchers = ThreadPoolExecutor(fetch_slots, thread_name_prefix=f"{src.name}-fetch")
        converters = ThreadPoolExecutor(convert_slots, thread_name_prefix=f"{src.name}-convert")
        committer = ThreadPoolExecutor(1, thread_name_prefix=f"{src.name}-commit")

        last_commit = 0.0  # seconds the last commit took

        def commit_due() -> float:
            """When the oldest converted unit is committed (others may join it meanwhile)."""
            wait_s = max(self.commit_interval, COMMIT_PACE * last_commit)
            return to_commit[0].converted_at + wait_s

        def top_up() -> None:
            nonlocal committing, to_commit
            if self._starting is not None and self._starting.done():
                self._starting.result()  # a new catalog that could not be created stops the run
            idle = not (pending or fetching or ready or converting)
            if (
                committing is None
                and to_commit
                and (self._starting is None or self._starting.done())  # a new catalog's tables
                and (
                    idle
                    or run.stop.is_set()
                    or len(to_commit) >= self.max_batch
                    or time.monotonic() >= commit_due()
                )
            ):
                # group commit: everything converted meanwhile
                batch, to_commit = to_commit[: self.max_batch], to_commit[self.max_batch :]
                staged = [i.result for i in batch]
                committing = (committer.submit(timed_commit, staged), batch)
            if run.stop.is_set():
                return
            if not pending and deferred and not fetching:
                for unit in deferred:  # held by another process: wait for it now
                    self.progress.note(
                        f"waiting for another cvcatalog process working on {src.key(unit)}"
                    )
                    pending.append((unit, True))
                deferred.clear()
            while ready and len(converting) < convert_slots:
                group = [ready.popleft()]
                while (
                    ready
                    and len(group) < src.group_max
                    and src.groupable(group[0].result)
                    and src.groupable(ready[0].result)
                ):
                    group.append(ready.popleft())
                fut: Future[Any]
                if len(group) == 1:
                    fut = converters.submit(self._convert_job, group[0], run)
                else:
                    fut = converters.submit(self._convert_group_job, group, run)
                converting[fut] = group
            while pending and may_fetch():
                unit, block = pending.popleft()
                fetching[fetchers.submit(self._fetch_job, unit, block, run)] = unit

        def may_fetch() -> bool:
            """At most fetch_slots fetches at once and as many units fetched ahead of the
            conversions; or, while every unit fetched ahead is groupable, up to group_max
            (they are converted together once a conversion slot frees)."""
            if len(fetching) >= fetch_slots:
                return False
            ahead = len(fetching) + len(ready)
            if ahead < fetch_slots:
                return True
            return ahead < src.group_max and all(src.groupable(i.result) for i in ready)

        def timed_commit(staged: list[Staged[U]]) -> dict[int, CvCatalogError]:
            nonlocal last_commit
            t0 = time.monotonic()
            try:
                return commit_batch(src, staged, run)
            finally:
                last_commit = time.monotonic() - t0

        try:
            top_up()
            while True:
                running: list[Future[Any]] = [*fetching, *converting]
                if committing is not None:
                    running.append(committing[0])
                starting = self._starting
                if starting is not None and not starting.done():
                    running.append(starting)  # its end may start the first commit, or stop
                if not running:
                    break  # nothing can start any more (done, or stopping)
                timeout = None
                if committing is None and to_commit and starting not in running:
                    timeout = max(0.0, commit_due() - time.monotonic())  # when the commit is due
                done, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
                for fut in done:
                    if fut is starting:
                        continue  # top_up below: its error, or the first commit
                    if committing is not None and fut is committing[0]:
                        batch = committing[1]
                        committing = None
                        self._committed(fut, batch, run)
                        continue
                    res = fut.result()  # the jobs never raise: errors travel in the items
                    if fetching.pop(fut, None) is not None:
                        if res.deferred:
                            deferred.append(res.unit)
                        else:
                            self._route(res, ready, to_commit, run)
                        continue
                    converting.pop(fut, None)
                    for item in res if isinstance(res, list) else [res]:
                        self._route(item, ready, to_commit, run)
                top_up()  # the workers go on while a commit runs
            for item in ready:  # fetched, but the run stopped before converting them
                _release(item)
        except BaseException:
            run.stop.set()
            src.cancel()
            for item in ready:
                _release(item)
            for fut in fetching:
                if not fut.cancel():
                    fut.add_done_callback(_release_when_done)
            for fut, items in converting.items():
                if fut.cancel():
                    for item in items:
                        _release(item)
                else:
                    fut.add_done_callback(_release_when_done)
            # the commit in flight completes, and the units converted before the run stopped
            # are committed too (each commit is all or nothing)
            last = [committing] if committing is not None else []
            if to_commit and self._started_ok():
                staged = [i.result for i in to_commit]
                last.append((committer.submit(commit_batch, src, staged, run), to_commit))
            else:  # no run recorded to commit them under (a new catalog that failed)
                for item in to_commit:
                    _release(item)
            for fut, items in last:
                wait([fut])
                with contextlib.suppress(BaseException):
                    self._committed(fut, items, run)
                for item in items:
                    _release(item)
            raise
        finally:
            fetchers.shutdown(wait=not run.stop.is_set(), cancel_futures=True)
            converters.shutdown(wait=not run.stop.is_set(), cancel_futures=True)
            committer.shutdown(wait=True)

    def _route(
        self,
        item: _Item[U],
        ready: deque[_Item[U]],
        to_commit: list[_Item[U]],
        run: RunContext,
    ) -> None:
        """Where a unit goes after a stage: failed, finished, on to convert, or to commit."""
        if item.error is not None:
            self._unit_error(item, run)
        elif isinstance(item.result, Outcome):
            self._finish(item, item.result, run)
        elif isinstance(item.result, Staged):
            item.converted_at = time.monotonic()
            to_commit.append(item)
        else:
            ready.append(item)

    def _unit_error(self, item: _Item[U], run: RunContext) -> None:
        e = item.error
        assert e is not None
        if isinstance(e, Abandoned):  # the run is stopping: left for the next run
            _release(item)
            return
        action = self.source.on_error(e) if isinstance(e, Exception) else "raise"
        if action == "raise":
            _release(item)
            raise e
        if action == "stop":
            run.stop.set()  # the units not started yet cannot succeed either
        try:
            outcome = self.source.failed(item.unit, e, run)
        except BaseException:
            _release(item)
            raise
        self._finish(item, outcome, run)

    def _finish(self, item: _Item[U], outcome: Outcome, run: RunContext) -> None:
        outcome.seconds = time.monotonic() - item.t0
        outcome.retries += item.retries
        run.summary.retries += item.retries
        run.summary.outcomes.append(outcome)
        _release(item)
        self.progress.finished(outcome)

    # -- the stages (worker threads) --------------------------------------------------------
    def _fetch_job(self, unit: U, block: bool, run: RunContext) -> _Item[U]:
        item = _Item(unit, self.source.key(unit), t0=time.monotonic())
        try:
            claim = self.source.claim(unit, block)
        except BaseException as e:
            item.error = e
            return item
        if claim is None:
            item.deferred = True
            return item
        item.claim = claim
        item.t0 = time.monotonic()
        try:
            item.result = self._attempts(item, lambda: self.source.fetch(unit, run), run)
        except BaseException as e:
            item.error = e
        return item

    def _convert_job(self, item: _Item[U], run: RunContext) -> _Item[U]:
        fetched = item.result
        try:
            run.check_stop()
            item.result = self._attempts(item, lambda: self.source.convert(fetched, run), run)
        except BaseException as e:
            item.error = e
        return item

    def _convert_group_job(self, items: list[_Item[U]], run: RunContext) -> list[_Item[U]]:
        """Convert small units together (Source.convert_group); if that fails, each alone, so
        one bad unit fails alone (its retries as usual)."""
        try:
            run.check_stop()
            results = self.source.convert_group([i.result for i in items], run)
            if len(results) != len(items):
                raise RuntimeError("convert_group must return one result per unit")  # a bug
        except Abandoned as e:
            for item in items:
                item.error = e
            return items
        except Exception as e:
            if run.stop.is_set() or interrupted(e):
                # the run is stopping (Ctrl-C interrupts the conversions' queries): the units
                # carry the interrupt, as _convert_job's do; no unit alone is tried
                for item in items:
                    item.error = e
                return items
            if isinstance(e, CvCatalogError) and self.source.on_error(e) != "unit":
                # the run's own error (the endpoint is gone, the credentials refused): no unit
                # alone would fare better; it ends the run as a unit's would (a bug in the
                # group's conversion still falls back on each unit alone)
                for item in items:
                    item.error = e
                return items
            self.progress.note(
                f"{items[0].key}..{items[-1].key}: converting {len(items)} units together "
                f"failed ({describe(e)}); converting each alone"
            )
            return [self._convert_job(item, run) for item in items]
        except BaseException as e:  # e.g. an interrupt: travels with the units, like _convert_job
            for item in items:
                item.error = e
            return items
        for item, result in zip(items, results, strict=True):
            item.result = result
        return items

    def _attempts(self, item: _Item[U], fn: Callable[[], T], run: RunContext) -> T:
        """fn() under the retry policy: transient errors are tried again after a backoff."""

        def retrying() -> None:
            item.retries += 1

        return self._retried(item.key, fn, run, retrying)

    def _retried(
        self,
        what: str,
        fn: Callable[[], T],
        run: RunContext,
        retrying: Callable[[], None] = lambda: None,
        *,
        quiet: bool = False,
    ) -> T:
        """fn() under the one retry policy (a unit's steps; the plan: a dataset input's HEAD
        on an endpoint that refused once was one line at once, a CV listing after 4 tries).
        quiet: no note a retry (the plan's, as a listing's, end in one line or none)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except Exception as e:
                transient = not isinstance(e, Abandoned) and is_transient(e)
                if run.stop.is_set() or not transient or attempt >= self.retry.attempts:
                    if transient:
                        raise TransientFetchError(
                            f"{describe(e)} (after {attempt} attempt{'s' if attempt > 1 else ''})"
                        ) from e
                    raise
                retrying()
                after = e.retry_after if isinstance(e, TransientFetchError) else None
                delay = self.retry.delay(attempt, after)
                if not quiet:
                    self.progress.note(f"{what}: {describe(e)}; retrying in {delay:.1f}s")
                self.sleep(delay)

    # -- commit -----------------------------------------------------------------------------
    def _committed(
        self, fut: Future[dict[int, CvCatalogError]], items: list[_Item[U]], run: RunContext
    ) -> None:
        """After a commit: finish its units, or fail them if the commit failed (or those it
        left out: commit_batch)."""
        try:
            left_out = fut.result()
        except (CvCatalogError, OSError, duckdb.Error) as e:
            for item in items:
                item.error = e
                self._unit_error(item, run)
            return
        except BaseException:
            for item in items:
                _release(item)
            raise
        for i, why in left_out.items():
            items[i].error = why
            self._unit_error(items[i], run)
        items = [item for i, item in enumerate(items) if i not in left_out]
        try:
            self.source.committed_all([item.result for item in items], run)
        except BaseException:
            for item in items:
                _release(item)
            raise
        for item in items:
            self._finish(item, item.result.outcome, run)

    # -- the run record ---------------------------------------------------------------------
    def _record_start(self) -> None:
        run = {
            "run_id": self.run_id,
            "started_at": now_utc(),
            "status": "running",
            "source": self.source.name,
            "message_type": self.source.message_type,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "mode": self.source.mode,
            **self.source.run_fields(),
        }
        with self.db.write(state_only=True) as con:
            mark_interrupted_runs(con, socket.gethostname())
            manifest.start_run(con, run)

    def _mark_killed(self) -> None:
        """What _record_start does first, for a run that records nothing (every unit cached):
        a killed run of this host stayed 'running' after any number of such runs. A read
        when there is none (the usual case), a write only when there is one to mark."""
        host = socket.gethostname()
        with self.db.read_state() as con:
            killed = killed_runs(con, host)
        if killed and self.db.writable():  # (a shared catalog may be readable only)
            with self.db.write(state_only=True) as con:
                mark_interrupted_runs(con, host)

    def _started_ok(self) -> bool:
        """Whether a commit may go ahead: the catalog's tables and the run's start written
        (waited for, when a new catalog's are still being written)."""
        if self._starting is None:
            return True
        wait([self._starting])
        return self._starting.exception() is None

    def _wait_started(self) -> None:
        """RunContext.started: the run's start recorded, or what stopped it raised."""
        if self._starting is not None:
            self._starting.result()
        elif self._creating is not None:
            self._creating.result()

    def _record_start_when_created(self) -> None:
        assert self._creating is not None
        self._creating.result()  # done: it ran before, on this thread
        self._record_start()

    def _record_end(self, s: Summary, stopped: BaseException | None) -> None:
        values = {"finished_at": now_utc(), **s.run_values(stopped)}
        try:
            ordering = bool(s.partitions_rewritten) and stopped is None
            with self.db.write(state_only=not ordering) as con:
                manifest.finish_run(con, self.run_id, values)
                if ordering:  # in the write it ends with
                    order_lake_stats(con)
        except CvCatalogError as e:  # locked or disk full: the summary is still reported
            self.progress.note(f"the run's end was not recorded: {e}")


def run_source(source: Source[Any, Any], db: CatalogDB, **kwargs: Any) -> Summary:
    """Run one source into a catalog; see Runner."""
    return Runner(source, db, **kwargs).run()


def _warm_up(src: Source[Any, Any]) -> threading.Thread:
    """Source.warm_up on its own thread (its error is the first fetch's to report)."""

    def warm() -> None:
        with contextlib.suppress(Exception):
            src.warm_up()

    thread = threading.Thread(target=warm, name=f"{src.name}-warm-up", daemon=True)
    thread.start()
    return thread


def _release(item: _Item[Any]) -> None:
    claim, item.claim = item.claim, None
    if claim is not None:
        claim.release()


def _release_when_done(fut: Future[Any]) -> None:
    if not fut.cancelled():
        res = fut.result()
        for item in res if isinstance(res, list) else [res]:
            _release(item)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def killed_runs(con: duckdb.DuckDBPyConnection, host: str) -> list[str]:
    """Runs of this host still 'running' whose process is gone: killed."""
    return [
        run_id
        for run_id, pid in manifest.running_runs(con, host)
        if pid is not None and not _pid_alive(int(pid))
    ]


def mark_interrupted_runs(con: duckdb.DuckDBPyConnection, host: str) -> None:
    """Runs of this host still 'running' whose process is gone were killed: say so."""
    for run_id in killed_runs(con, host):
        manifest.mark_interrupted(con, run_id)
