"""The source contract: what a source of rows implements to go through the one pipeline.

A run is plan units -> fetch -> convert -> stage -> commit (:mod:`cvcatalog.pipeline.run`). A
source says which units a run must do given the catalog's state (:meth:`Source.plan`), fetches
one unit (:meth:`Source.fetch`), converts it into staged Parquet + quarantine files
(:meth:`Source.convert`, returning a :class:`Staged`), and writes its state rows inside the
commit transaction (:meth:`Source.record`). Scheduling, the retry policy, placing files under
fresh names, batching commits, progress, cancellation and the run record are the pipeline's.
A third source is one module implementing this class (tests/test_pipeline.py has one).
"""

from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import duckdb

from cvcatalog.exceptions import CvCatalogError
from cvcatalog.io.layout import CatalogPaths, remove_tree
from cvcatalog.io.s3 import RetryPolicy
from cvcatalog.pipeline.report import Outcome, Progress, Summary
from cvcatalog.state.db import CatalogDB

U = TypeVar("U")  # a unit of work (a CV day, a byte range of a file, ...)
F = TypeVar("F")  # a fetched unit, ready to convert


class Abandoned(Exception):
    """Raised by a stage that gave up because the run is stopping (not a failure of the unit)."""


class Claim(Protocol):
    """A unit's hold against other processes (e.g. a file lock), released after its commit."""

    def release(self) -> None: ...


@dataclass
class Plan(Generic[U]):
    """What a run will do: the units to work on, and outcomes of units that need no work."""

    todo: list[U]
    done: list[Outcome] = field(default_factory=list)
    #: planned units in all (the summary's `units`); None: len(todo) + len(done)
    units: int | None = None
    #: bytes the todo units will read, when known up front (progress)
    nbytes: int = 0


@dataclass(frozen=True)
class StagedFile:
    """One converted file waiting in staging, and where it goes in the catalog."""

    path: Path
    #: catalog-relative destination (a fresh name no older snapshot used: stage.fresh_name)
    dest: str
    kind: str  # data | quarantine
    rows: int
    partition: str  # the source's key of the partition the file belongs to
    size: int
    sha256: str


@dataclass
class Staged(Generic[U]):
    """A converted unit: its files in staging, its outcome once committed, and whatever the
    source needs to record it (payload)."""

    unit: U
    files: list[StagedFile]
    outcome: Outcome
    payload: Any = None
    #: removed after the commit (the unit's scratch directory); None: nothing to remove
    stage_dir: Path | None = None


@dataclass
class RunContext:
    """What a source sees of the run it is part of."""

    run_id: str
    db: CatalogDB
    progress: Progress
    summary: Summary
    retry: RetryPolicy
    stop: threading.Event = field(default_factory=threading.Event)
    sleep: Callable[[float], None] = field(default=lambda s: None)
    #: waits until the run's start is recorded (raising what stopped it): a run that creates
    #: its catalog plans and fetches while the catalog's tables are written (pipeline.run), so
    #: a source writing before the first commit (a day recorded failed) calls this first
    started: Callable[[], None] = field(default=lambda: None)

    @property
    def paths(self) -> CatalogPaths:
        return self.db.paths

    def check_stop(self) -> None:
        """Raise Abandoned if the run is stopping (long stages call this between steps)."""
        if self.stop.is_set():
            raise Abandoned


class Source(ABC, Generic[U, F]):
    """One source of rows (see the module docstring).

    Threads: plan, committed, failed, finish and protected run in the run's thread; claim,
    fetch and convert in worker threads, at most `fetch_slots` fetches and `convert_slots`
    conversions at once (a fetched unit waits for a conversion slot, so at most `fetch_slots`
    units are fetched ahead); record in the commit thread, one commit at a time, while the
    workers go on (a group commit: the next one takes every unit that finished meanwhile).

    A run that creates its catalog plans and fetches while the catalog's tables are written
    (unless record_idle_runs): plan and fetch then find no catalog file (`db.exists()` is
    False: nothing is recorded, and a read would create one), and a source that writes before
    the first commit calls `run.started()` first.
    """

    #: ingest_runs.source / message_type of the run record
    name: str
    message_type: str
    fetch_slots: int = 1
    convert_slots: int = 1
    #: most fetched units one conversion takes together (convert_group, for units groupable
    #: says are small: the fixed cost of a conversion is then paid once for the group); while
    #: the units fetched ahead are all groupable, the runner fetches on up to this many
    group_max: int = 1
    #: record the run in ingest_runs even when it plans nothing (a cached CV range does not)
    record_idle_runs: ClassVar[bool] = False
    #: "full" or "incremental", as the run record and summary show it
    mode: str = "full"
    #: where conversions run ("local", or the pool, e.g. "dask tcp://host:8786")
    executor: str = "local"
    #: cache.max_size_gb: after a run that had work, the runner evicts the least recently used
    #: data of every source until the catalog fits (state.eviction.evict_to_size), never what
    #: `protected` names; None: the run keeps no limit
    max_size_gb: float | None = None
    #: cache.snapshot_retention_days: after a run that wrote a partition, the runner expires
    #: the snapshots older than that, and the files only they showed go (pinned snapshots
    #: kept: CatalogDB.expire_snapshots); None: the run expires none
    snapshot_retention_days: float | None = None

    # -- the run ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def session(self, run: RunContext) -> Iterator[None]:
        """Held for the whole run (e.g. a source-wide lock); default: nothing."""
        yield

    def run_fields(self) -> dict[str, Any]:
        """Extra columns of the run's ingest_runs row (start_date, end_date, timezone...)."""
        return {}

    @abstractmethod
    def plan(self, run: RunContext) -> Plan[U]:
        """The units this run must do, against the catalog's state (may tidy what an earlier,
        interrupted run left)."""

    @abstractmethod
    def key(self, unit: U) -> str:
        """The unit's name in progress, outcomes and errors."""

    def warm_up(self) -> None:
        """Make, on a thread of its own, what the first fetch needs and takes long to make (an
        S3 client: ~0.1 s of imports and model loading): the runner starts it once the plan has
        units, while it records the run's start. An error is left to the fetch, which makes
        the thing again and reports it; default: nothing."""

    def claim(self, unit: U, wait: bool) -> Claim | None:
        """Hold the unit against other processes until its commit. None: another process
        holds it and wait is False (the run does the other units first and comes back)."""
        return _NO_CLAIM

    # -- one unit (worker threads) -----------------------------------------------------------
    @abstractmethod
    def fetch(self, unit: U, run: RunContext) -> F | Outcome | Staged[U]:
        """Bring the unit's input near (list, download...). An Outcome ends the unit without a
        commit of the pipeline (cached, or a failure the source recorded); a Staged goes
        straight to the commit (e.g. a no_data marker). Transient errors are retried."""

    @abstractmethod
    def convert(self, fetched: F, run: RunContext) -> Staged[U] | Outcome:
        """Convert a fetched unit into staged files (files named by stage.fresh_name).
        Transient errors are retried (the unit's fetch is not repeated)."""

    def groupable(self, fetched: F) -> bool:
        """Whether a fetched unit may be converted together with others (convert_group)."""
        return False

    def convert_group(self, fetched: list[F], run: RunContext) -> list[Staged[U] | Outcome]:
        """Convert several groupable units at once: one result per unit, in order. Raising
        fails none of them: the runner converts each alone then (convert), so one bad unit
        fails alone."""
        raise NotImplementedError

    # -- commit (the run's thread) -----------------------------------------------------------
    @abstractmethod
    def record(
        self, con: duckdb.DuckDBPyConnection, batch: list[Staged[U]], run: RunContext
    ) -> list[str]:
        """Write the batch's state rows in the commit transaction (its files are placed under
        their dest names already); returns catalog-relative files the commit makes obsolete
        (deleted after it)."""

    def commit_message(self, batch: list[Staged[U]]) -> str:
        keys = [self.key(s.unit) for s in batch]
        return f"ingest {keys[0]}" if len(keys) == 1 else f"ingest {len(keys)} units: {keys[0]}.."

    def committed(self, staged: Staged[U], run: RunContext) -> None:
        """After the commit: tidy the unit's staging (default: remove stage_dir)."""
        if staged.stage_dir is not None:
            remove_tree(staged.stage_dir)

    def committed_all(self, batch: list[Staged[U]], run: RunContext) -> None:
        """After a commit, for all its units at once, before any of them is released (a
        source may tidy them concurrently); default: committed for each, in order."""
        for staged in batch:
            self.committed(staged, run)

    def failed(self, unit: U, error: BaseException, run: RunContext) -> Outcome:
        """A unit failed with error: record it if the source keeps failures, and say so."""
        return Outcome(self.key(unit), "failed", error=describe(error))

    def on_error(self, error: BaseException) -> str:
        """What an error of a unit means for the run: "unit" (the unit fails, others go on),
        "stop" (the unit fails and no new unit starts) or "raise" (the run ends with it)."""
        return "unit" if isinstance(error, CvCatalogError | OSError) else "raise"

    def cancel(self) -> None:
        """The run is stopping: interrupt long work in progress if possible."""

    def finish(self, run: RunContext, stopped: BaseException | None) -> None:
        """After the last unit (even if the run stops): final statistics, eviction."""

    def protected(self) -> set[str]:
        """What the run asked for, as eviction names it (CV partition keys, dataset inputs'
        labels): the end-of-run eviction never drops it (max_size_gb); default: nothing."""
        return set()


class _NoClaim:
    def release(self) -> None:
        pass


_NO_CLAIM = _NoClaim()


def describe(e: BaseException) -> str:
    """An error as a run shows it, on one line: a CvCatalogError's message, else its type and
    the first line of its message (DuckDB's errors go on with "Possible solutions:" lines,
    which broke a run's summary over many); DuckDB out of memory names the setting."""
    if isinstance(e, CvCatalogError):
        return str(e)
    lines = str(e).strip().splitlines()
    first = lines[0] if lines else ""
    if isinstance(e, duckdb.OutOfMemoryException):
        return f"DuckDB ran out of memory ({first}): raise memory.max_usage_gb"
    return f"{type(e).__name__}: {first}" if first else type(e).__name__
