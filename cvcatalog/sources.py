"""What the bucket publishes and where: sources, message types, key layout and folder clocks.

Folder times follow the producer's clock (UTC for WYDOT, US Eastern for THEA), so a request in
any timezone is turned into absolute hours first and then into the folder hours that hold them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

BUCKET = "usdot-its-cvpilot-publicdata"

#: Every (source, message type) pair the sandbox publishes. Any other pair is an error.
VALID_TYPES: dict[str, tuple[str, ...]] = {
    "wydot": ("BSM", "TIM"),
    "wydot_backup": ("BSM", "TIM"),
    "thea": ("BSM", "TIM", "SPAT"),
    "nycdot": ("EVENT",),
}

#: The clock the producer used to name hour folders.
FOLDER_TIMEZONE: dict[str, str] = {
    "wydot": "UTC",
    "wydot_backup": "UTC",
    "thea": "America/New_York",
    "nycdot": "America/New_York",
}

#: Before this date objects hold one (often pretty-printed) JSON document; after it, NDJSON.
NDJSON_SINCE = date(2018, 1, 18)


@dataclass(frozen=True, order=True)
class PartitionKey:
    """One cached unit: a source/type/folder-day. Its string form is the cache key."""

    source: str
    message_type: str
    day: date

    @property
    def key(self) -> str:
        return f"{self.source}/{self.message_type}/{self.day.year}/{self.day.month:02d}/{self.day.day:02d}"

    @property
    def s3_prefix(self) -> str:
        return self.key + "/"

    def hour_prefix(self, hour: int) -> str:
        return f"{self.key}/{hour:02d}/"

    @property
    def hive_dir(self) -> str:
        """Relative directory of this partition's Parquet files (source first)."""
        return (
            f"source={self.source}/message_type={self.message_type}/"
            f"year={self.day.year}/month={self.day.month:02d}/day={self.day.day:02d}"
        )

    def __str__(self) -> str:
        return self.key


def local_days(start: date, end: date) -> Iterator[date]:
    """Every day from start to end, inclusive."""
    d = start
    while d <= end:
        yield d
        d += timedelta(days=1)


def utc_window(start: date, end: date, tz: str) -> tuple[datetime, datetime]:
    """The half-open UTC interval covered by local days start..end in zone tz."""
    zone = ZoneInfo(tz)
    lo = datetime.combine(start, datetime.min.time(), zone).astimezone(UTC)
    hi = datetime.combine(end + timedelta(days=1), datetime.min.time(), zone).astimezone(UTC)
    return lo, hi


def folder_hours(source: str, lo: datetime, hi: datetime) -> list[tuple[date, int]]:
    """The (folder date, folder hour) pairs that hold records generated in [lo, hi).

    Walks absolute hours and names each in the producer's clock; a repeated wall-clock hour
    (DST fall-back) collapses into one folder, a skipped one (spring-forward) never appears.
    """
    zone = ZoneInfo(FOLDER_TIMEZONE[source])
    t = lo.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    seen: dict[tuple[date, int], None] = {}
    while t < hi:
        local = t.astimezone(zone)
        seen[(local.date(), local.hour)] = None
        t += timedelta(hours=1)
    return list(seen)


def partitions_for(
    source: str, message_type: str, start: date, end: date, tz: str
) -> list[PartitionKey]:
    """The folder-day partitions a local date range touches (a Denver day spans two UTC days)."""
    lo, hi = utc_window(start, end, tz)
    days = sorted({d for d, _ in folder_hours(source, lo, hi)})
    return [PartitionKey(source, message_type, d) for d in days]
