"""What every replica generator shares: spec, hour context, objects, Java time text, bad lines."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from cvcatalog.sources.bucket import BUCKET, NDJSON_SINCE, VALID_TYPES, PartitionKey

#: Kinds of deliberately broken lines, cycled in this order when injecting.
MALFORMED_KINDS = ("truncated_json", "garbage", "missing_id")

#: Kinesis Firehose delivery-stream version that follows the stream name in NDJSON object names
#: (not the schema version).
FIREHOSE_VERSION = 6

#: I-80 across Wyoming, east to west: (lat, lon, elevation m). Sherman Summit is the highest
#: point of I-80; the rest are the towns along it.
I80_WAYPOINTS: tuple[tuple[float, float, float], ...] = (
    (41.1400, -104.8200, 1850.0),  # Cheyenne
    (41.2390, -105.4370, 2633.0),  # Sherman Summit
    (41.3100, -105.5900, 2185.0),  # Laramie
    (41.5900, -106.2100, 2380.0),  # Arlington
    (41.7900, -107.2400, 2070.0),  # Rawlins
    (41.6700, -107.9700, 2060.0),  # Wamsutter
    (41.5900, -109.2200, 1960.0),  # Rock Springs
    (41.5300, -109.4700, 1860.0),  # Green River
    (41.2700, -110.9600, 2070.0),  # Evanston
)


# --------------------------------------------------------------------------------------------
# Spec, hours and objects
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MalformedLine:
    """A line injected on purpose: where it is (object key, 1-based line) and what is wrong."""

    key: str
    line: int
    kind: str


@dataclass(frozen=True, slots=True)
class ReplicaObject:
    """One object to upload, with what it contains (for the report)."""

    key: str
    body: bytes
    partition: PartitionKey
    hour: int
    records: int  # valid records (malformed lines excluded)
    schema_version: int
    vehicles: dict[str, int]  # vehicle id -> valid records
    malformed: tuple[MalformedLine, ...] = ()
    first_ms: int = 0
    last_ms: int = 0


@dataclass(frozen=True)
class ReplicaSpec:
    """Every knob of a replica; a spec plus a seed fully determines the bytes.

    Checked by :func:`cvcatalog.sandbox.replica.validate_spec` (it needs the generator registry).
    """

    start: date
    end: date
    sources: tuple[str, ...] = ("wydot",)
    message_types: tuple[str, ...] = ("BSM",)
    bucket: str = BUCKET
    seed: int = 42
    records_per_hour: int = 200
    files_per_hour: int = 2
    vehicles: int = 20
    empty_hour_rate: float = 0.05
    empty_day_rate: float = 0.0
    empty_days: frozenset[date] = frozenset()
    malformed_per_day: int = 0
    malformed_kinds: tuple[str, ...] = MALFORMED_KINDS
    schema_version: int | None = None
    java_times: bool = True

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """The (source, type) pairs seeded: those of sources x message_types the bucket
        publishes (`--source wydot --source nycdot --type BSM --type EVENT`: wydot/BSM and
        nycdot/EVENT), in the order given."""
        return [
            (s, t) for s in self.sources for t in self.message_types if t in VALID_TYPES.get(s, ())
        ]


@dataclass(frozen=True)
class HourContext:
    """Everything a generator needs to produce one folder hour, already decided upstream."""

    spec: ReplicaSpec
    partition: PartitionKey
    hour: int
    schema_version: int
    malformed: tuple[str, ...]  # kinds to inject in this hour (NDJSON era only)

    @property
    def hour_start_ms(self) -> int:
        d = self.partition.day
        return int(datetime(d.year, d.month, d.day, self.hour, tzinfo=UTC).timestamp()) * 1000

    @property
    def ndjson(self) -> bool:
        return self.partition.day >= NDJSON_SINCE

    def rng(self, purpose: str) -> random.Random:
        """An RNG private to this hour and purpose, so hours can be made in any order."""
        s = self.spec
        return random.Random(f"{s.seed}/{self.partition.key}/{self.hour:02d}/{purpose}")


#: A generator turns one folder hour into its objects.
HourGenerator = Callable[[HourContext], list[ReplicaObject]]


# --------------------------------------------------------------------------------------------
# Record text (the ODE is Java; its output rules are reproduced here)
# --------------------------------------------------------------------------------------------


def java_zoned(ms: int) -> str:
    """ZonedDateTime.toString() in UTC: '2017-12-05T16:33:58Z[UTC]'.

    Java drops a zero fraction and, when the fraction is zero too, the seconds: a record made at
    16:33:00.000 reads '2017-12-05T16:33Z[UTC]'. Real v1/v3/v5 data has these, so the replica does.
    """
    return _java_local(ms, keep_seconds=False) + "Z[UTC]"


def java_instant(ms: int) -> str:
    """Instant.toString(): '2018-05-06T20:26:28.690Z' (seconds always, fraction only if non-zero)."""
    return _java_local(ms, keep_seconds=True) + "Z"


def _java_local(ms: int, *, keep_seconds: bool) -> str:
    secs, frac = divmod(ms, 1000)
    tm = time.gmtime(secs)
    text = f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T{tm.tm_hour:02d}:{tm.tm_min:02d}"
    if frac:
        return f"{text}:{tm.tm_sec:02d}.{frac:03d}"
    if tm.tm_sec or keep_seconds:
        return f"{text}:{tm.tm_sec:02d}"
    return text


def rng_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class _Num(str):
    """A JSON number kept as its original text, so re-indenting never reformats it."""


def pretty_json(line: str) -> str:
    """Re-indent one compact JSON document like json.dumps(indent=2), keeping number text."""
    out: list[str] = []
    _pretty(json.loads(line, parse_float=_Num, parse_int=_Num), 0, out)
    return "".join(out)


def _pretty(o: Any, level: int, out: list[str]) -> None:
    if isinstance(o, _Num):
        out.append(str.__str__(o))
    elif isinstance(o, dict):
        if not o:
            out.append("{}")
            return
        inner = "\n" + "  " * (level + 1)
        out.append("{")
        for i, (k, val) in enumerate(o.items()):
            out.append(("," if i else "") + inner + json.dumps(k) + ": ")
            _pretty(val, level + 1, out)
        out.append("\n" + "  " * level + "}")
    elif isinstance(o, list):
        if not o:
            out.append("[]")
            return
        inner = "\n" + "  " * (level + 1)
        out.append("[")
        for i, val in enumerate(o):
            out.append(("," if i else "") + inner)
            _pretty(val, level + 1, out)
        out.append("\n" + "  " * level + "]")
    else:
        out.append(json.dumps(o))


# --------------------------------------------------------------------------------------------
# Splitting hours into objects, broken lines
# --------------------------------------------------------------------------------------------


def split(n: int, parts: int) -> list[int]:
    parts = max(1, min(parts, n))
    base, extra = divmod(n, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def garbage(rng: random.Random) -> str:
    choices = (
        "<html><body><h1>503 Service Unavailable</h1></body></html>",
        "\ufffd\ufffd\ufffd\ufffd bsmTx log rotated",
        "#### corrupted block " + "".join(rng.choice("0123456789abcdef") for _ in range(24)),
        "metadata,payload,schemaVersion",
    )
    return rng.choice(choices)


def line_numbers(
    key: str, lines: list[str], inserted: list[tuple[int, str, str]]
) -> tuple[MalformedLine, ...]:
    """1-based line numbers of the injected lines after every insertion has been made."""
    if not inserted:
        return ()
    # later insertions at or before an earlier one's position shift it down by one
    positions = [at for at, _, _ in inserted]
    for j in range(len(inserted)):
        for k in range(j + 1, len(inserted)):
            if inserted[k][0] <= positions[j]:
                positions[j] += 1
    out = []
    for (_, kind, text), p in zip(inserted, positions, strict=True):
        assert lines[p] is text
        out.append(MalformedLine(key=key, line=p + 1, kind=kind))
    return tuple(sorted(out, key=lambda m: m.line))
