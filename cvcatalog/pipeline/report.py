"""One progress protocol and one summary type for every source (CV Pilot days, NGSIM units,
...): the CLI draws its bars from :class:`Progress`, prints :func:`summary_lines` and emits
:meth:`Summary.as_dict` for --format json|csv."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from cvcatalog.exceptions import ConfigError

CHANGES = ("added", "changed", "removed", "unchanged")


@dataclass
class Outcome:
    """What happened to one unit (a CV day, a byte range of a file...)."""

    key: str
    status: str  # complete | no_data | failed | cached
    #: a complete unit: what the run wrote (a day merged by --check-changes: the rows of its
    #: new files and its converted objects' quarantine entries, not the day's kept ones); a
    #: cached unit, or a failed one that kept its data: what the unit holds
    rows: int = 0
    quarantined: int = 0
    #: records recovered from lines of records joined without a newline (`{...}{...}`),
    #: each converted as its own record (in rows when valid, else quarantined)
    recovered: int = 0
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
    #: rows left out on purpose by a filter (NGSIM --location), not errors
    skipped: int = 0
    #: attempts repeated after a transient error (the one retry policy)
    retries: int = 0


class Progress(Protocol):
    """What a run reports while it goes (the CLI draws rich progress bars from it)."""

    def plan(self, todo: list[str], cached: list[str], nbytes: int = 0) -> None: ...
    def listed(self, key: str, objects: int, nbytes: int) -> None: ...
    def downloaded(self, nbytes: int) -> None: ...
    def converting(self, key: str) -> None: ...
    def finished(self, outcome: Outcome) -> None: ...
    def note(self, message: str) -> None: ...


#: the methods of Progress, each called as a run goes
PROGRESS_METHODS = ("plan", "listed", "downloaded", "converting", "finished", "note")


def check_progress(progress: object) -> Progress | None:
    """progress, when None or an object with every Progress method; else one ConfigError
    line, before the run starts (`progress=5` ended in an AttributeError mid-run)."""
    if progress is None:
        return None
    lacking = [m for m in PROGRESS_METHODS if not callable(getattr(progress, m, None))]
    if lacking:
        raise ConfigError(
            f"progress is an object with the methods {', '.join(PROGRESS_METHODS)} "
            f"(cvcatalog.pipeline.report.Progress), got {progress!r}: no {', '.join(lacking)}"
        )
    return progress  # type: ignore[return-value]


class NullProgress:
    def plan(self, todo: list[str], cached: list[str], nbytes: int = 0) -> None:
        pass

    def listed(self, key: str, objects: int, nbytes: int) -> None:
        pass

    def downloaded(self, nbytes: int) -> None:
        pass

    def converting(self, key: str) -> None:
        pass

    def finished(self, outcome: Outcome) -> None:
        pass

    def note(self, message: str) -> None:
        pass


#: as_dict keys of a day-based source (CV Pilot), in order
_DAY_KEYS = (
    "run_id", "source", "message_type", "start", "end", "timezone", "days_complete",
    "days_cached", "days_no_data", "days_failed", "rows", "quarantined", "recovered",
    "bytes_downloaded",
    "parquet_bytes", "list_requests", "get_requests", "retries", "reused_downloads",
    "resumed_downloads", "staged_in_memory_peak", "mode", "objects_added", "objects_changed",
    "objects_removed", "objects_unchanged", "partitions_rewritten", "seconds", "evicted",
    "executor", "status", "errors", "days",
)  # fmt: skip
#: as_dict keys of a file-based source (NGSIM), in order
_UNIT_KEYS = (
    "dataset", "run_id", "scope", "inputs", "units", "units_done", "units_cached",
    "units_failed", "inputs_published", "rows", "quarantined", "skipped", "bytes_downloaded",
    "parquet_bytes", "retries", "seconds", "rows_per_second", "errors", "inputs_added",
    "inputs_changed", "inputs_unchanged", "partitions_written", "evicted", "duplicates",
    "status",
)  # fmt: skip


@dataclass
class Summary:
    """What one run did, for every source. Units are CV days or NGSIM byte ranges; `days` is
    the list of unit outcomes under its CV name."""

    run_id: str
    source: str
    message_type: str
    #: "days" (a date range of a bucket source) or "units" (inputs cut into units)
    kind: str = "days"
    start: date | None = None
    end: date | None = None
    timezone: str | None = None
    scope: str | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    #: units planned in all (cached included)
    units: int = 0
    inputs: int = 0
    inputs_published: int = 0
    seconds: float = 0.0
    list_requests: int = 0
    get_requests: int = 0
    #: attempts repeated after transient errors (S3 requests and units)
    retries: int = 0
    reused_downloads: int = 0  # objects already on disk from an interrupted run (no GET)
    resumed_downloads: int = 0  # partial objects continued with an HTTP Range request
    #: most raw bytes held at once in the memory stage (io.memstage), beside the process's RSS
    staged_in_memory_peak: int = 0
    evicted: list[str] = field(default_factory=list)
    #: inputs not loaded because their bytes are in the catalog under another name (NGSIM),
    #: one line each
    duplicates: list[str] = field(default_factory=list)
    executor: str = "local"
    mode: str = "full"
    #: changes counted per input rather than per unit (NGSIM: inputs added/changed/unchanged)
    changes: Counter[str] = field(default_factory=Counter)
    #: partitions that received files in this run (CV: day keys; NGSIM: location=/date=)
    partitions_written: set[str] = field(default_factory=set)
    #: errors of the run itself, not of one unit (e.g. an input that cannot be read)
    run_errors: list[str] = field(default_factory=list)
    #: stopped by Ctrl-C (the runner raised Interrupted): what was committed stays
    interrupted: bool = False
    #: the error that ended the run after some of its units (CvCatalogError.run_summary)
    stopped: str | None = None
    #: bytes the run's fetcher received (every GET's, a failed day's included), when the
    #: source fetches through one (CV Pilot); None: the units' own counts are the run's
    fetched_bytes: int | None = None

    @property
    def days(self) -> list[Outcome]:
        return self.outcomes

    @property
    def dataset(self) -> str:
        return self.source

    def count(self, status: str) -> int:
        return sum(1 for d in self.outcomes if d.status == status)

    @property
    def units_done(self) -> int:
        return self.count("complete")

    @property
    def units_dropped(self) -> int:
        """Units read, then dropped: their input's bytes are loaded under another name."""
        return sum(1 for d in self.written if d.detail == "duplicate")

    @property
    def units_cached(self) -> int:
        return self.count("cached")

    @property
    def units_failed(self) -> int:
        return self.count("failed")

    @property
    def written(self) -> list[Outcome]:
        """The units this run wrote (complete): a cached unit's rows are an earlier run's,
        and so are those a failed day kept (its outcome still shows what the day holds)."""
        return [d for d in self.outcomes if d.status == "complete"]

    @property
    def rows(self) -> int:
        """Rows this run wrote (not those of cached units, nor those a failed day kept, nor
        the rows a merged day kept: Outcome.rows)."""
        return sum(d.rows for d in self.written)

    @property
    def quarantined(self) -> int:
        """Records this run quarantined."""
        return sum(d.quarantined for d in self.written)

    @property
    def recovered(self) -> int:
        """Records this run recovered from lines of joined records (Outcome.recovered)."""
        return sum(d.recovered for d in self.written)

    @property
    def skipped(self) -> int:
        return sum(d.skipped for d in self.written)

    @property
    def bytes_downloaded(self) -> int:
        """Bytes this run fetched: every GET's (get_requests), a failed day's included."""
        if self.fetched_bytes is not None:
            return self.fetched_bytes
        return sum(d.bytes_downloaded for d in self.outcomes)

    @property
    def parquet_bytes(self) -> int:
        return sum(d.parquet_bytes for d in self.written)

    @property
    def errors(self) -> list[str]:
        return (
            self.run_errors
            + [f"{d.key}: {d.error}" for d in self.outcomes if d.status == "failed"]
            + ([f"run stopped: {self.stopped}"] if self.stopped else [])
        )

    @property
    def ok(self) -> bool:
        return not self.errors and not self.interrupted

    @property
    def status(self) -> str:
        """ok | failed | interrupted: the status `cvcatalog runs` shows for a run it
        recorded (a run stopped before its plan had work may not be recorded)."""
        return "interrupted" if self.interrupted else "ok" if self.ok else "failed"

    def objects(self, change: str) -> int:
        """Source objects (or inputs) by change: added | changed | removed | unchanged."""
        return sum(int(getattr(d, change)) for d in self.outcomes) + self.changes[change]

    @property
    def partitions_rewritten(self) -> int:
        """Partitions this run wrote (built or merged) and committed."""
        return len(self.partitions_written)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "run_id": self.run_id,
            "source": self.source,
            "dataset": self.source,
            "message_type": self.message_type,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "timezone": self.timezone,
            "scope": self.scope,
            "inputs": self.inputs,
            "units": self.units,
            "units_done": self.units_done,
            "units_cached": self.units_cached,
            "units_failed": self.units_failed,
            "inputs_published": self.inputs_published,
            "days_complete": self.count("complete"),
            "days_cached": self.count("cached"),
            "days_no_data": self.count("no_data"),
            "days_failed": self.count("failed"),
            "rows": self.rows,
            "quarantined": self.quarantined,
            "recovered": self.recovered,
            "skipped": self.skipped,
            "bytes_downloaded": self.bytes_downloaded,
            "parquet_bytes": self.parquet_bytes,
            "list_requests": self.list_requests,
            "get_requests": self.get_requests,
            "retries": self.retries,
            "reused_downloads": self.reused_downloads,
            "resumed_downloads": self.resumed_downloads,
            "staged_in_memory_peak": self.staged_in_memory_peak,
            "mode": self.mode,
            "objects_added": self.objects("added"),
            "objects_changed": self.objects("changed"),
            "objects_removed": self.objects("removed"),
            "objects_unchanged": self.objects("unchanged"),
            "inputs_added": self.objects("added"),
            "inputs_changed": self.objects("changed"),
            "inputs_unchanged": self.objects("unchanged"),
            "partitions_rewritten": self.partitions_rewritten,
            "partitions_written": self.partitions_rewritten,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows / self.seconds) if self.seconds else 0,
            "evicted": self.evicted,
            "duplicates": self.duplicates,
            "executor": self.executor,
            "errors": self.errors,
            "status": self.status,
            "days": [o.__dict__ for o in self.outcomes],
        }
        return {k: d[k] for k in (_DAY_KEYS if self.kind == "days" else _UNIT_KEYS)}

    def run_values(self, stopped: BaseException | None) -> dict[str, Any]:
        """The run's ingest_runs columns at its end (one format for every source)."""
        failed = [d for d in self.outcomes if d.status == "failed"]
        message = "; ".join(self.errors)
        if stopped is not None:
            why = str(stopped) if str(stopped) else type(stopped).__name__
            what = "day(s)" if self.kind == "days" else "unit(s)"
            message = f"stopped after {len(self.outcomes)} {what}: {why}" + (
                f"; {message}" if message else ""
            )
        if stopped is not None and not isinstance(stopped, Exception):
            status = "interrupted"  # Ctrl-C, SystemExit: the units committed so far stay
        elif stopped is not None or not self.ok:
            status = "failed"
        else:
            status = "ok"
        return {
            "status": status,
            "days_complete": self.count("complete"),
            "days_no_data": self.count("no_data"),
            "days_failed": len(failed),
            "days_cached": self.count("cached"),
            "rows": self.rows,
            "quarantined": self.quarantined,
            "recovered": self.recovered,
            "bytes_downloaded": self.bytes_downloaded,
            "parquet_bytes": self.parquet_bytes,
            "list_requests": self.list_requests,
            "get_requests": self.get_requests,
            "seconds": self.seconds,
            "message": message[:2000] or None,
            "mode": self.mode,
            "objects_added": self.objects("added"),
            "objects_changed": self.objects("changed"),
            "objects_removed": self.objects("removed"),
            "objects_unchanged": self.objects("unchanged"),
            "partitions_rewritten": self.partitions_rewritten,
        }


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run: a KeyboardInterrupt that carries its Summary (interrupted set),
    so a caller can still report what was committed before it (`ingest --format json`)."""

    def __init__(self, summary: Summary) -> None:
        super().__init__()
        self.summary = summary

    def __reduce__(self) -> tuple[type[Interrupted], tuple[Summary]]:
        return (Interrupted, (self.summary,))  # pickled with its summary (e.g. by a worker)


def summary_lines(s: Summary) -> list[str]:
    """The CLI's table-format report of a run: one headline, then one line per failure."""
    rate = s.rows / s.seconds if s.seconds else 0.0
    if s.kind == "units":
        head = (
            f"{s.source} ({s.scope}): {s.inputs} input(s), {s.units_done - s.units_dropped} "
            f"unit(s) loaded, {s.units_cached} already loaded, "
            + (f"{s.units_dropped} read and dropped (duplicates), " if s.units_dropped else "")
            + f"{s.units_failed} failed; "
            f"{s.rows:,} rows, {s.quarantined:,} quarantined, "
            f"{s.skipped:,} skipped by --location; "
            f"{s.bytes_downloaded / 1e6:,.1f} MB read; "
            f"{s.parquet_bytes / 1e6:,.1f} MB Parquet; {s.seconds:.1f}s "
            f"({round(rate):,} rows/s)"
        )
        return (
            [head]
            + [f"  failed {e}" for e in s.errors]
            + [f"  {d}" for d in s.duplicates]
            + _evicted_lines(s)
        )
    failed = [d for d in s.outcomes if d.status == "failed"]
    lines = [
        f"{s.source}/{s.message_type} {s.start}..{s.end} ({s.timezone}): "
        f"{s.count('complete')} complete, {s.count('cached')} cached, "
        f"{s.count('no_data')} no_data, {len(failed)} failed; "
        f"{s.rows:,} rows, {s.quarantined:,} quarantined"
        + (f", {s.recovered:,} recovered from joined lines" if s.recovered else "")
        + f"; {s.bytes_downloaded / 1e6:,.1f} MB downloaded in {s.get_requests} GETs / "
        f"{s.list_requests} LISTs; "
        f"{s.parquet_bytes / 1e6:,.1f} MB Parquet; {s.seconds:.1f}s ({rate:,.0f} rows/s)"
        + (f"; converted on {s.executor}" if s.executor != "local" else "")
    ]
    if s.mode == "incremental":  # a full run's counts are in `cvcatalog runs`
        lines.append(
            f"  {s.mode}: objects {s.objects('added'):,} added, "
            f"{s.objects('changed'):,} changed, {s.objects('removed'):,} removed, "
            f"{s.objects('unchanged'):,} unchanged; {s.partitions_rewritten} partition(s) rewritten"
        )
    lines += [f"  failed {d.key}: {d.error}" for d in failed]
    lines += _no_data_lines(s)
    lines += [f"  {e}" for e in s.run_errors]  # e.g. days a lost Dask cluster left unstarted
    return lines + _evicted_lines(s)


#: the folders a summary names by key before it says how many more had no data
NO_DATA_SHOWN = 8


def _no_data_lines(s: Summary) -> list[str]:
    """Which folders had no objects: their keys are the producer's folder days (US Eastern for
    thea and nycdot), which need not be the days asked for, so the count alone cannot say."""
    lines = []
    for cached in (False, True):  # listed by this run; markers of earlier runs, not listed
        keys = sorted(
            d.key for d in s.outcomes if d.status == "no_data" and (d.detail == "cached") is cached
        )
        if not keys:
            continue
        shown = ", ".join(keys[:NO_DATA_SHOWN])
        more = len(keys) - NO_DATA_SHOWN
        line = f"  no data in {shown}" + (f" and {more:,} more" if more > 0 else "")
        if cached:
            line += " as recorded earlier (not listed again: --force-refresh lists them)"
        lines.append(line)
    return lines


def _evicted_lines(s: Summary) -> list[str]:
    """What the run's eviction dropped to keep the catalog within cache.max_size_gb."""
    if not s.evicted:
        return []
    return [f"  evicted (LRU, over cache.max_size_gb): {', '.join(s.evicted)}"]
