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


#: NYCDOT folders are obfuscated bins, not dates: {YYYY}/{MM}/{weekday}/{time of day}.
WEEKDAY_BINS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN", "NA")
TIME_BINS = ("NT", "AM", "MD", "PM", "EV", "NA")
BINNED_SOURCES = frozenset({"nycdot"})


@dataclass(frozen=True, order=True)
class PartitionKey:
    """One cached unit; its string form is the cache key.

    Dated sources: one folder day, `{source}/{type}/{YYYY}/{MM}/{DD}`.
    Binned sources (nycdot): one bin folder, `{source}/{type}/{YYYY}/{MM}/{weekday}/{time}`,
    with `day` the first of the month.
    """

    source: str
    message_type: str
    day: date
    bins: tuple[str, str] | None = None

    @property
    def key(self) -> str:
        head = f"{self.source}/{self.message_type}/{self.day.year}/{self.day.month:02d}"
        if self.bins is not None:
            return f"{head}/{self.bins[0]}/{self.bins[1]}"
        return f"{head}/{self.day.day:02d}"

    @property
    def s3_prefix(self) -> str:
        return self.key + "/"

    @property
    def month_prefix(self) -> str:
        """The month folder holding this partition's folder (`{source}/{type}/{YYYY}/{MM}/`:
        its days, or NYCDOT's bins)."""
        return f"{self.source}/{self.message_type}/{self.day.year}/{self.day.month:02d}/"

    def hour_prefix(self, hour: int) -> str:
        return f"{self.key}/{hour:02d}/"

    @property
    def hive_values(self) -> list[tuple[str, str]]:
        """(column, value) of the hive directories below source/message_type."""
        values = [("year", str(self.day.year)), ("month", f"{self.day.month:02d}")]
        if self.bins is not None:
            return [*values, ("weekday", self.bins[0]), ("time_bin", self.bins[1])]
        return [*values, ("day", f"{self.day.day:02d}")]

    @property
    def table(self) -> str:
        """The DuckLake table holding this partition (`wydot_bsm`, `nycdot_event`, ...)."""
        return f"{self.source}_{self.message_type.lower()}"

    @property
    def lake_values(self) -> list[tuple[str, object]]:
        """(partition key, value) of this partition in its DuckLake table, in key order."""
        values: list[tuple[str, object]] = [("year", self.day.year), ("month", self.day.month)]
        if self.bins is not None:
            return [*values, ("weekday", self.bins[0]), ("time_bin", self.bins[1])]
        return [*values, ("day", self.day.day), ("date", self.day.isoformat())]

    @property
    def hive_dir(self) -> str:
        """Relative directory of this partition's Parquet files (source first)."""
        parts = [f"source={self.source}", f"message_type={self.message_type}"]
        return "/".join(parts + [f"{k}={v}" for k, v in self.hive_values])

    @property
    def last_day(self) -> date:
        """The last day whose records this partition can hold (for the sandbox-lag rule)."""
        if self.bins is None:
            return self.day
        nxt = date(self.day.year + self.day.month // 12, self.day.month % 12 + 1, 1)
        return nxt - timedelta(days=1)

    @classmethod
    def parse(cls, key: str) -> PartitionKey:
        """The inverse of .key (validates every component)."""
        parts = key.split("/")
        try:
            if parts[0] in BINNED_SOURCES and len(parts) == 6:
                wd, tb = parts[4], parts[5]
                if wd not in WEEKDAY_BINS or tb not in TIME_BINS:
                    raise ValueError(key)
                return cls(parts[0], parts[1], date(int(parts[2]), int(parts[3]), 1), (wd, tb))
            if len(parts) == 5 and parts[0] in VALID_TYPES and parts[0] not in BINNED_SOURCES:
                return cls(parts[0], parts[1], date(int(parts[2]), int(parts[3]), int(parts[4])))
        except ValueError:
            pass
        raise ValueError(f"not a partition key: {key!r}")

    @classmethod
    def from_lake_dir(cls, source: str, message_type: str, hive: str) -> PartitionKey:
        """The partition whose DuckLake directory ends with hive (`year=2021/month=4/day=1/
        date=2021-04-01`, or `.../weekday=.../time_bin=...`): the inverse of lake_values."""
        values = dict(part.split("=", 1) for part in hive.strip("/").split("/") if "=" in part)
        try:
            year, month = int(values["year"]), int(values["month"])
            if "weekday" in values:
                return cls.parse(
                    f"{source}/{message_type}/{year}/{month:02d}/{values['weekday']}/"
                    f"{values['time_bin']}"
                )
            return cls.parse(f"{source}/{message_type}/{year}/{month:02d}/{int(values['day']):02d}")
        except (KeyError, ValueError):
            raise ValueError(
                f"not a partition directory of {source}/{message_type}: {hive!r}"
            ) from None

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
    utc = FOLDER_TIMEZONE[source] == "UTC"  # names are UTC already (a range of years: 24k)
    zone = ZoneInfo(FOLDER_TIMEZONE[source])
    t = lo.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    seen: dict[tuple[date, int], None] = {}
    while t < hi:
        local = t if utc else t.astimezone(zone)
        seen[(local.date(), local.hour)] = None
        t += timedelta(hours=1)
    return list(seen)


def partitions_for(
    source: str, message_type: str, start: date, end: date, tz: str
) -> list[PartitionKey]:
    """The partitions a local date range touches.

    Dated sources: the folder days (a Denver day spans two UTC days). NYCDOT: every
    weekday/time-of-day bin of every month the range touches (events are only binned).
    """
    lo, hi = utc_window(start, end, tz)
    days = sorted({d for d, _ in folder_hours(source, lo, hi)})
    if source in BINNED_SOURCES:
        months = sorted({d.replace(day=1) for d in days})
        return [
            PartitionKey(source, message_type, m, (wd, tb))
            for m in months
            for wd in WEEKDAY_BINS
            for tb in TIME_BINS
        ]
    return [PartitionKey(source, message_type, d) for d in days]
