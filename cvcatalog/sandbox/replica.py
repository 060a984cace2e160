"""The CV Pilot bucket replica: generator registry, spec validation, planning, report, seeding.

The demo, the tests and the benchmarks all need a bucket that looks like the real one (key layout,
object naming, NDJSON vs pretty-printed era, schema versions, empty hours and days, the odd broken
line) without any network. Everything is derived from ``random.Random`` instances seeded from
``seed`` plus the partition and hour, so each hour is generated independently (streaming, in any
order) and the same seed always gives the same bytes.

This module decides which folder hours get data and which broken lines, hands each hour to the
generator of its (source, type) in :data:`GENERATORS` (one module each: replica_wydot_bsm,
replica_wydot_tim, replica_thea, replica_nycdot, all built on replica_blocks), and uploads the
objects while counting them into a :class:`SeedReport`.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cvcatalog.config import at_least, check_day_order, spelled
from cvcatalog.exceptions import ConfigError, CvCatalogError, SandboxError
from cvcatalog.io.s3 import Retrier, classify_error, translate_error
from cvcatalog.sandbox import replica_nycdot, replica_thea, replica_wydot_bsm, replica_wydot_tim
from cvcatalog.sandbox.replica_blocks import (
    MALFORMED_KINDS,
    HourContext,
    HourGenerator,
    MalformedLine,
    ReplicaObject,
    ReplicaSpec,
)
from cvcatalog.sandbox.replica_wydot_bsm import SUPPORTED_SCHEMA_VERSIONS, schema_version_for
from cvcatalog.schemas.nycdot import NYCDOT_SCHEMA_VERSION
from cvcatalog.sources.bucket import (
    BINNED_SOURCES,
    BUCKET,
    NDJSON_SINCE,
    TIME_BINS,
    VALID_TYPES,
    WEEKDAY_BINS,
    PartitionKey,
    local_days,
)

# --------------------------------------------------------------------------------------------
# The generator registry and spec validation
# --------------------------------------------------------------------------------------------

#: (source, message type) -> hour generator, from every generator module's generators().
GENERATORS: dict[tuple[str, str], HourGenerator] = {
    **replica_wydot_bsm.generators(),
    **replica_thea.generators(),
    **replica_wydot_tim.generators(),
    **replica_nycdot.generators(),
}


def validate_spec(spec: ReplicaSpec, names: Mapping[str, str] | None = None) -> None:
    """Fail early, with a one-line ConfigError, on anything the generators cannot honour: the
    one check of a spec, made once by whoever makes the spec from a user's values
    (:func:`seed_replica`, `sandbox seed`) before anything else; names: how that caller
    spells the knobs (`sandbox seed`: its flags, :func:`cvcatalog.config.spelled`)."""
    check_day_order(spec.start, spec.end)
    outside = sorted(d for d in spec.empty_days if not spec.start <= d <= spec.end)
    if outside:  # it was taken and did nothing
        raise ConfigError(
            f"{spelled(names, 'empty_days')} {outside[0]} is outside the days seeded, "
            f"{spec.start}..{spec.end}"
        )
    pairs = spec.pairs
    valid = "valid pairs: " + ", ".join(f"{s}/{t}" for s, ts in VALID_TYPES.items() for t in ts)
    for source in spec.sources:  # each source, and each type, seeded in some pair
        if not any(s == source for s, _ in pairs):
            given = ", ".join(f"{source}/{t}" for t in spec.message_types)
            raise ConfigError(f"{given} is not published by the bucket; {valid}")
    for mtype in spec.message_types:
        if not any(t == mtype for _, t in pairs):
            given = ", ".join(f"{s}/{mtype}" for s in spec.sources)
            raise ConfigError(f"{given} is not published by the bucket; {valid}")
    for source, mtype in pairs:
        if (source, mtype) not in GENERATORS:
            raise ConfigError(
                f"the replica cannot generate {source}/{mtype} yet; available: "
                + ", ".join(f"{s}/{t}" for s, t in sorted(GENERATORS))
            )
    for knob, least in (
        ("records_per_hour", 0),
        ("files_per_hour", 1),
        ("vehicles", 1),
        ("malformed_per_day", 0),
    ):
        at_least(spelled(names, knob), getattr(spec, knob), least)
    _check_size(spec, names)
    for knob in ("empty_hour_rate", "empty_day_rate"):
        rate = getattr(spec, knob)
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"{spelled(names, knob)} must be within 0..1, got {rate}")
    unknown = set(spec.malformed_kinds) - set(MALFORMED_KINDS)
    if unknown or not spec.malformed_kinds:
        raise ConfigError(f"malformed_kinds must be a non-empty subset of {MALFORMED_KINDS}")
    if spec.schema_version is not None and spec.schema_version not in SUPPORTED_SCHEMA_VERSIONS:
        raise ConfigError(
            f"unsupported schema_version {spec.schema_version}; "
            f"choose one of {SUPPORTED_SCHEMA_VERSIONS} or None (by date)"
        )


#: the most records and objects one seed writes: the local endpoint (moto) keeps every object
#: in memory, ~2 KB a record (the 2 GB day of bench/targets.py is ~1 M records)
MAX_SEED_RECORDS = 10_000_000
MAX_SEED_OBJECTS = 1_000_000


def _check_size(spec: ReplicaSpec, names: Mapping[str, str] | None) -> None:
    """A seed of billions of records ran for hours until the endpoint ran out of memory."""
    days, pairs = (spec.end - spec.start).days + 1, len(spec.pairs)
    for knob, what, most in (
        ("records_per_hour", "records", MAX_SEED_RECORDS),
        ("files_per_hour", "objects", MAX_SEED_OBJECTS),
    ):
        total = getattr(spec, knob) * 24 * days * pairs
        if total > most:
            raise ConfigError(
                f"{spelled(names, knob)} {getattr(spec, knob):,} for {days:,} day(s) of "
                f"{pairs} source/type pair(s) is {total:,} {what}: more than the {most:,} one "
                "seed writes (the local endpoint keeps every object in memory); seed fewer "
                "days or fewer an hour"
            )


# --------------------------------------------------------------------------------------------
# Planning: which days and hours have data, where broken lines go
# --------------------------------------------------------------------------------------------


def _day_plan(spec: ReplicaSpec, pk: PartitionKey) -> tuple[list[int], dict[int, tuple[str, ...]]]:
    """Hours with data and, per hour, the kinds of broken lines to inject there."""
    if pk.day in spec.empty_days or spec.records_per_hour == 0:
        return [], {}
    base = f"{spec.seed}/{pk.key}"
    if spec.empty_day_rate and random.Random(f"{base}/empty-day").random() < spec.empty_day_rate:
        return [], {}
    hour_rng = random.Random(f"{base}/empty-hours")
    hours = [h for h in range(24) if hour_rng.random() >= spec.empty_hour_rate]
    bad: dict[int, list[str]] = {}
    if hours and spec.malformed_per_day and pk.day >= NDJSON_SINCE:
        bad_rng = random.Random(f"{base}/malformed")
        kinds = spec.malformed_kinds
        for i in range(spec.malformed_per_day):
            bad.setdefault(bad_rng.choice(hours), []).append(kinds[i % len(kinds)])
    return hours, {h: tuple(k) for h, k in bad.items()}


def _bin_plan(spec: ReplicaSpec, pk: PartitionKey) -> tuple[list[int], dict[int, tuple[str, ...]]]:
    """_day_plan for a bin folder of a binned source (nycdot): one "hour" (0) or none.

    A whole month is empty with probability empty_day_rate, a bin with empty_hour_rate;
    malformed_per_day broken lines go into every non-empty bin (kinds cycled from a per-bin
    start, so one line per bin still exercises every kind across a month).
    """
    if spec.records_per_hour == 0:
        return [], {}
    month = PartitionKey(pk.source, pk.message_type, pk.day).key
    if (
        spec.empty_day_rate
        and random.Random(f"{spec.seed}/{month}/empty-month").random() < spec.empty_day_rate
    ):
        return [], {}
    if random.Random(f"{spec.seed}/{pk.key}/empty-bin").random() < spec.empty_hour_rate:
        return [], {}
    kinds = spec.malformed_kinds
    first = random.Random(f"{spec.seed}/{pk.key}/malformed").randrange(len(kinds))
    return [0], {0: tuple(kinds[(first + i) % len(kinds)] for i in range(spec.malformed_per_day))}


def _month_bins(source: str, mtype: str, day: date) -> list[PartitionKey]:
    """Every bin folder of the month of day, in key order."""
    first = day.replace(day=1)
    return [PartitionKey(source, mtype, first, (wd, tb)) for wd in WEEKDAY_BINS for tb in TIME_BINS]


def hour_contexts(spec: ReplicaSpec) -> Iterator[HourContext]:
    """Every folder hour that gets data, in key order, with its decided broken lines.

    Binned sources (nycdot) have bin folders instead of days and hours: every weekday and
    time-of-day bin of each month the range touches, yielded at the month's first day in range,
    each with hour 0. spec: checked by :func:`validate_spec` beforehand.
    """
    for day in local_days(spec.start, spec.end):
        for source, mtype in spec.pairs:
            if source in BINNED_SOURCES:
                if day == spec.start or day.day == 1:
                    for pk in _month_bins(source, mtype, day):
                        hours, bad = _bin_plan(spec, pk)
                        for hour in hours:
                            yield HourContext(
                                spec, pk, hour, NYCDOT_SCHEMA_VERSION, bad.get(hour, ())
                            )
                continue
            pk = PartitionKey(source, mtype, day)
            version = spec.schema_version or schema_version_for(day)
            hours, bad = _day_plan(spec, pk)
            for hour in hours:
                yield HourContext(spec, pk, hour, version, bad.get(hour, ()))


def generate_hour(ctx: HourContext) -> list[ReplicaObject]:
    """The objects of one folder hour (module level so worker processes can run it)."""
    return GENERATORS[(ctx.partition.source, ctx.partition.message_type)](ctx)


def iter_replica(spec: ReplicaSpec, *, processes: int = 0) -> Iterator[ReplicaObject]:
    """Every object of the replica in key order, holding only a few hours in memory.

    processes > 1 builds hours in that many worker processes (generation is CPU-bound Python,
    so threads would not help); the output is identical either way. spec: checked by
    :func:`validate_spec` beforehand.
    """
    contexts = hour_contexts(spec)
    if processes <= 1:
        for ctx in contexts:
            yield from generate_hour(ctx)
        return
    # spawn, not fork: the caller may already run threads (boto3, the upload pool)
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        window: deque[Future[list[ReplicaObject]]] = deque()
        try:
            for ctx in contexts:
                window.append(pool.submit(generate_hour, ctx))
                if len(window) >= 2 * processes:
                    yield from window.popleft().result()
            while window:
                yield from window.popleft().result()
        finally:
            for fut in window:
                fut.cancel()


def partitions_of(spec: ReplicaSpec) -> list[PartitionKey]:
    """Every partition a spec covers, including the ones left empty (all bins of a month)."""
    out: list[PartitionKey] = []
    for d in local_days(spec.start, spec.end):
        for s, m in spec.pairs:
            if s not in BINNED_SOURCES:
                out.append(PartitionKey(s, m, d))
            elif d == spec.start or d.day == 1:
                out.extend(_month_bins(s, m, d))
    return out


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


@dataclass
class PartitionStats:
    """What one folder-day partition holds, to check an ingest against."""

    key: str
    source: str
    message_type: str
    day: date
    records: int = 0
    malformed: int = 0
    objects: int = 0
    bytes: int = 0
    hours: dict[int, int] = field(default_factory=dict)  # hour -> valid records
    schema_versions: set[int] = field(default_factory=set)
    vehicles: dict[str, int] = field(default_factory=dict)  # vehicle id -> valid records
    first_record_at: str | None = None  # ISO UTC of the earliest valid record
    last_record_at: str | None = None

    @property
    def no_data(self) -> bool:
        return self.objects == 0

    @property
    def hours_with_data(self) -> list[int]:
        return sorted(self.hours)

    def add(self, obj: ReplicaObject) -> None:
        self.records += obj.records
        self.malformed += len(obj.malformed)
        self.objects += 1
        self.bytes += len(obj.body)
        if obj.records:
            self.hours[obj.hour] = self.hours.get(obj.hour, 0) + obj.records
        if obj.records and obj.last_ms:  # NYCDOT events have no time (first/last stay None)
            first = _iso(obj.first_ms)
            last = _iso(obj.last_ms)
            if self.first_record_at is None or first < self.first_record_at:
                self.first_record_at = first
            if self.last_record_at is None or last > self.last_record_at:
                self.last_record_at = last
        self.schema_versions.add(obj.schema_version)
        for vid, n in obj.vehicles.items():
            self.vehicles[vid] = self.vehicles.get(vid, 0) + n

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "source": self.source,
            "message_type": self.message_type,
            "day": self.day.isoformat(),
            "records": self.records,
            "malformed": self.malformed,
            "objects": self.objects,
            "bytes": self.bytes,
            "no_data": self.no_data,
            "hours": {f"{h:02d}": n for h, n in sorted(self.hours.items())},
            "schema_versions": sorted(self.schema_versions),
            "vehicles": dict(sorted(self.vehicles.items())),
            "first_record_at": self.first_record_at,
            "last_record_at": self.last_record_at,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PartitionStats:
        return cls(
            key=d["key"],
            source=d["source"],
            message_type=d["message_type"],
            day=date.fromisoformat(d["day"]),
            records=d["records"],
            malformed=d["malformed"],
            objects=d["objects"],
            bytes=d["bytes"],
            hours={int(h): n for h, n in d["hours"].items()},
            schema_versions=set(d["schema_versions"]),
            vehicles=dict(d["vehicles"]),
            first_record_at=d.get("first_record_at"),
            last_record_at=d.get("last_record_at"),
        )


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


@dataclass
class SeedReport:
    """Exactly what was seeded: per partition counts, the broken lines, totals.

    Tests assert ingests against it, the benchmarks size their runs with it, and the demo prints
    it. ``records`` counts valid records only; every injected line is in ``malformed_lines``.
    """

    bucket: str
    seed: int
    spec: dict[str, Any]
    partitions: dict[str, PartitionStats] = field(default_factory=dict)
    malformed_lines: list[MalformedLine] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def records(self) -> int:
        return sum(p.records for p in self.partitions.values())

    @property
    def malformed(self) -> int:
        return len(self.malformed_lines)

    @property
    def objects(self) -> int:
        return sum(p.objects for p in self.partitions.values())

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.partitions.values())

    @property
    def empty_partitions(self) -> list[str]:
        return [k for k, p in self.partitions.items() if p.no_data]

    def add(self, obj: ReplicaObject) -> None:
        self.partitions[obj.partition.key].add(obj)
        self.malformed_lines.extend(obj.malformed)

    def totals(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "malformed": self.malformed,
            "objects": self.objects,
            "bytes": self.bytes,
            "partitions": len(self.partitions),
            "empty_partitions": len(self.empty_partitions),
            "seconds": round(self.seconds, 3),
            "records_per_second": round(self.records / self.seconds) if self.seconds else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "seed": self.seed,
            "spec": self.spec,
            "totals": self.totals(),
            "partitions": {k: p.to_dict() for k, p in self.partitions.items()},
            "malformed_lines": [
                {"key": m.key, "line": m.line, "kind": m.kind} for m in self.malformed_lines
            ],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def write_json(self, path: str | Path) -> Path:
        """Write the report (atomically) so another process can check an ingest against it;
        a path that cannot be written is a one-line SandboxError."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(self.to_json())
            tmp.replace(path)
        except OSError as e:
            raise SandboxError(f"cannot write the seed report {path}: {e.strerror or e}") from None
        return path

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SeedReport:
        return cls(
            bucket=d["bucket"],
            seed=d["seed"],
            spec=d["spec"],
            partitions={k: PartitionStats.from_dict(p) for k, p in d["partitions"].items()},
            malformed_lines=[MalformedLine(**m) for m in d["malformed_lines"]],
            seconds=float(d.get("totals", {}).get("seconds") or 0.0),
        )

    @classmethod
    def read_json(cls, path: str | Path) -> SeedReport:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _spec_dict(spec: ReplicaSpec) -> dict[str, Any]:
    return {
        "start": spec.start.isoformat(),
        "end": spec.end.isoformat(),
        "sources": list(spec.sources),
        "message_types": list(spec.message_types),
        "records_per_hour": spec.records_per_hour,
        "files_per_hour": spec.files_per_hour,
        "vehicles": spec.vehicles,
        "empty_hour_rate": spec.empty_hour_rate,
        "empty_day_rate": spec.empty_day_rate,
        "empty_days": sorted(d.isoformat() for d in spec.empty_days),
        "malformed_per_day": spec.malformed_per_day,
        "malformed_kinds": list(spec.malformed_kinds),
        "schema_version": spec.schema_version,
        "java_times": spec.java_times,
    }


def new_report(spec: ReplicaSpec) -> SeedReport:
    """An empty report listing every partition of the spec (so empty days show as no_data)."""
    report = SeedReport(bucket=spec.bucket, seed=spec.seed, spec=_spec_dict(spec))
    for pk in partitions_of(spec):
        report.partitions[pk.key] = PartitionStats(pk.key, pk.source, pk.message_type, pk.day)
    return report


# --------------------------------------------------------------------------------------------
# Seeding a bucket
# --------------------------------------------------------------------------------------------


def seed_replica(
    client: Any,
    start: date,
    end: date,
    *,
    sources: Sequence[str] = ("wydot",),
    message_types: Sequence[str] = ("BSM",),
    bucket: str = BUCKET,
    seed: int = 42,
    records_per_hour: int = 200,
    files_per_hour: int = 2,
    vehicles: int = 20,
    empty_hour_rate: float = 0.05,
    empty_days: Iterable[date] = (),
    empty_day_rate: float = 0.0,
    malformed_per_day: int = 0,
    malformed_kinds: Sequence[str] = MALFORMED_KINDS,
    schema_version: int | None = None,
    java_times: bool = True,
    workers: int = 8,
    processes: int = 0,
    progress: Callable[[int], None] | None = None,
    retrier: Retrier | None = None,
) -> SeedReport:
    """Generate the replica for folder days start..end (inclusive, UTC) and upload it
    (through ``retrier`` when given: retried and its errors translated as every S3 request is).

    Objects are built one hour at a time (on this thread, or in ``processes`` worker processes
    when > 1) and uploaded with put_object by a pool of ``workers`` threads (0 or 1: upload
    inline); only a few hours' objects are ever in memory.
    ``progress`` is called on this thread with the number of valid records each uploaded object
    added (an increment, for progress bars). The bucket must exist.

    Layout knobs: ``records_per_hour`` valid records in every non-empty folder hour, split into
    ``files_per_hour`` NDJSON objects (before 2018-01-18 every record is its own pretty-printed
    object); ``empty_days`` and ``empty_day_rate`` leave whole days without objects and
    ``empty_hour_rate`` single hours; ``malformed_per_day`` extra broken lines (NDJSON days only,
    kinds cycled from ``malformed_kinds``) are listed in the report. ``schema_version`` forces one
    version for every day. ``java_times=False`` always prints seconds in timestamps; by default
    v1/v3/v5 timestamps at a whole minute read 'T16:33Z[UTC]', as Java wrote them.

    Binned sources (nycdot) have a bin folder per partition instead of days and hours; how they
    read these knobs (records_per_hour = events per bin, ...) is in replica_nycdot's docstring.
    A knob the generators cannot honour is a ConfigError (:func:`validate_spec`), before any
    upload.
    """
    spec = ReplicaSpec(
        start=start,
        end=end,
        sources=tuple(sources),
        message_types=tuple(message_types),
        bucket=bucket,
        seed=seed,
        records_per_hour=records_per_hour,
        files_per_hour=files_per_hour,
        vehicles=vehicles,
        empty_hour_rate=empty_hour_rate,
        empty_day_rate=empty_day_rate,
        empty_days=frozenset(empty_days),
        malformed_per_day=malformed_per_day,
        malformed_kinds=tuple(malformed_kinds),
        schema_version=schema_version,
        java_times=java_times,
    )
    validate_spec(spec)
    return seed_spec(
        client, spec, workers=workers, processes=processes, progress=progress, retrier=retrier
    )


def seed_spec(
    client: Any,
    spec: ReplicaSpec,
    *,
    workers: int = 8,
    processes: int = 0,
    progress: Callable[[int], None] | None = None,
    retrier: Retrier | None = None,
) -> SeedReport:
    """:func:`seed_replica` for a spec made (and checked: :func:`validate_spec`) beforehand,
    e.g. before the bucket is created."""
    bucket = spec.bucket
    report = new_report(spec)
    began = time.perf_counter()

    def put(obj: ReplicaObject) -> int:
        target = f"s3://{bucket}/{obj.key}"

        def send() -> Any:
            return client.put_object(Bucket=bucket, Key=obj.key, Body=obj.body)

        try:
            if retrier is not None:
                retrier.call("PutObject", target, send)
            else:
                send()
        except CvCatalogError:
            raise
        except Exception as exc:
            if classify_error(exc) is not None:  # S3 or the network: the usual one line
                raise translate_error(exc, "PutObject", target) from exc
            raise SandboxError(f"could not upload {target}: {exc}") from exc
        return obj.records

    if workers <= 1:
        for obj in iter_replica(spec, processes=processes):
            report.add(obj)
            n = put(obj)
            if progress:
                progress(n)
    else:
        pending: deque[Future[int]] = deque()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="replica-put") as pool:
            try:
                for obj in iter_replica(spec, processes=processes):
                    report.add(obj)
                    pending.append(pool.submit(put, obj))
                    while len(pending) > 2 * workers or (pending and pending[0].done()):
                        n = pending.popleft().result()
                        if progress:
                            progress(n)
                while pending:
                    n = pending.popleft().result()
                    if progress:
                        progress(n)
            except BaseException:
                for f in pending:
                    f.cancel()
                raise
    report.seconds = time.perf_counter() - began
    return report
