"""Configuration: YAML file, then environment, then explicit overrides, validated by pydantic.

Every check that can fail does so here, before any network call, with a one-line message.
"""

from __future__ import annotations

import contextlib
import difflib
import operator
import os
import re
from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cvcatalog.clock import now_utc
from cvcatalog.configfile import format_validation_error, load_yaml
from cvcatalog.exceptions import ConfigError
from cvcatalog.quality.config import QualityConfig
from cvcatalog.quality.mapping import check_applicable
from cvcatalog.sources.bucket import BUCKET, VALID_TYPES

DEFAULT_HOME = Path("data/catalog")
ENV_PREFIX = "CVCATALOG_"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def type_of(source: str, message_type: str | None) -> str:
    """A CV source's message type where a call reads one of its tables: the one given, else
    the source's only one (nycdot: EVENT; `changes --source nycdot` asked for it); a source of
    several without one is one line naming them (source: a known one, lower case)."""
    if message_type is not None:
        return message_type
    types = VALID_TYPES[source]
    if len(types) == 1:
        return types[0]
    raise ConfigError(f"give the message type of {source}: {', '.join(types)}")


def check_source_type(source: str, message_type: str) -> tuple[str, str]:
    """Normalise and check a (source, message type) pair; the source is never inferred."""
    if not isinstance(source, str):
        raise ValueError(
            f"give a source: one of {', '.join(VALID_TYPES)}"
            if source is None
            else f"the source is a name (a str), e.g. 'wydot', got {source!r}"
        )
    src = source.strip().lower()
    if src not in VALID_TYPES:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(VALID_TYPES)}")
    if not isinstance(message_type, str):
        raise ValueError(
            f"give the message type of {src}: {', '.join(VALID_TYPES[src])}"
            if message_type is None
            else f"the message type is a name (a str), e.g. 'BSM', got {message_type!r}"
        )
    mt = message_type.strip().upper()
    if mt not in VALID_TYPES[src]:
        raise ValueError(
            f"source {src!r} does not publish {message_type!r}; "
            f"it publishes {', '.join(VALID_TYPES[src])}"
        )
    return src, mt


#: the days a call takes: far wider than any data (NGSIM 2005, the CV Pilots 2017 on), and
#: narrow enough that a day's UTC window and its neighbours exist (9999-12-31 was an
#: OverflowError from the window's next day)
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2999, 12, 31)
#: the most days days_back reaches (100 years)
MAX_DAYS_BACK = 36_525


def _outside(day: date) -> str | None:
    """Why a day is not one a call takes (FIRST_DAY..LAST_DAY), or None."""
    if FIRST_DAY <= day <= LAST_DAY:
        return None
    return f"{day.isoformat()} is outside {FIRST_DAY}..{LAST_DAY}"


def check_day(day: date, what: str) -> date:
    """A day within FIRST_DAY..LAST_DAY, else one ConfigError line naming ``what``."""
    why = _outside(day)
    if why is not None:
        raise ConfigError(f"{what} {why}")
    return day


def parse_day(value: date | str, what: str) -> date:
    """A day given as a date or as text (YYYY-MM-DD); a datetime (a pandas.Timestamp too) or
    a numpy.datetime64 is the day its date says, as written (its time and zone dropped: the
    day is local in the zone the call is given). A ConfigError naming ``what`` (e.g.
    "--start") if it is not one: the one check and line of every day argument."""
    if isinstance(value, datetime):  # before date: a datetime is a date, but not a day
        day = value.date()
        if type(day) is date:  # (pandas.NaT is a datetime whose date() is NaT)
            return check_day(day, what)
    elif isinstance(value, date):
        return check_day(value, what)
    text = str(value).strip()
    with contextlib.suppress(ValueError):
        return check_day(date.fromisoformat(text), what)
    if not isinstance(value, str):  # numpy.datetime64: '2021-04-01T00:00:00.000000000'
        with contextlib.suppress(ValueError):
            return check_day(datetime.fromisoformat(text).date(), what)
    raise ConfigError(f"{what} must be a date like 2021-04-01, got {value!r}")


def as_items(value: Any) -> list[Any] | None:
    """The items of an argument that takes several values (a list, tuple, set, generator), or
    None when it is one value (a str, bytes, a mapping, a number): the one reading of such
    arguments (columns=, location=, paths=, a spatial filter's tuple)."""
    if isinstance(value, str | bytes | Mapping):
        return None
    try:
        return list(value)
    except TypeError:
        return None


def whole_number(value: Any) -> int | None:
    """value as an int when it is a whole number (numpy's too); None for a bool, a float, a
    str or anything else (limit=, rows_per_file=)."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def spelled(names: Mapping[str, str] | None, arg: str) -> str:
    """arg as a function's caller spells it in messages: names maps a function's arguments to
    the caller's words (`sandbox seed`: {"files_per_hour": "--files-per-hour"}); an argument
    it does not map is spelled as the function's own keyword."""
    return (names or {}).get(arg, arg)


def check_suffix(
    fmt: str,
    output: Path,
    suffixes: Mapping[str, str],
    kinds: Mapping[str, str] | None = None,
    names: Mapping[str, str] | None = None,
) -> None:
    """Refuse, before anything runs, a format that contradicts the one output's suffix names
    (`query -f csv -o y.parquet`, `Catalog.export(output="a.parquet", format="csv")` wrote CSV
    into a .parquet file: one no Parquet reader opens). suffixes: the caller's table (export's
    knows .geoparquet, .ndjson, ...); kinds: formats that write another's kind of file
    ({"geoparquet": "parquet"}); names: the caller's words for `format` and `output` (spelled).
    An unknown suffix names nothing, and a format the table does not know is left to the
    caller's own check, whose line lists the formats."""
    fmt = fmt.strip().lower()
    named = suffixes.get(output.suffix.lower())
    if named is None or fmt not in suffixes.values():
        return
    kind = kinds or {}
    if kind.get(named, named) != kind.get(fmt, fmt):
        given, out = spelled(names, "format"), spelled(names, "output")
        raise ConfigError(
            f"{given} {fmt} but {out} {output.name} names a {named} file: give a name "
            f"ending .{fmt}, or leave out {given} to write {named}"
        )


def at_least(name: str, value: float, least: int) -> None:
    """A number's lower bound: one line naming the argument (a flag: Typer's min= gives a usage
    message and exit code 2)."""
    if not value >= least:
        raise ConfigError(f"{name} must be {least} or more, got {value:g}")


def check_workers(name: str, workers: int | None) -> None:
    """The one bound (and line) of a count of workers, wherever it is given (--workers of an
    ingest of any source or of a Dask LocalCluster; None: the default)."""
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"{name} must be between 1 and {MAX_WORKERS}")


def check_day_order(start: date, end: date) -> None:
    """The one check (and line) of a day range given backwards, for every command that takes
    --start and --end (ingest and plan through DateRange, split, export, coverage, to_dask)."""
    if end < start:
        raise ConfigError(f"end date {end} is before start date {start}")


def timezone_arg(tz: str | ZoneInfo | None) -> str:
    """A time zone given as an argument (an API's, a flag's): check_timezone's check, one
    ConfigError line. None is UTC (every reader's default); a zoneinfo.ZoneInfo is its name;
    anything else that is no str is that line too, not a TypeError from zoneinfo."""
    if tz is None:
        return "UTC"
    if isinstance(tz, ZoneInfo) and tz.key:
        tz = tz.key
    if not isinstance(tz, str):
        raise ConfigError(
            f"timezone must be an IANA name such as America/Denver (a str), got {tz!r}"
        )
    try:
        return check_timezone(tz)
    except ValueError as e:
        raise ConfigError(str(e)) from None


#: a fixed offset as people write it: -07:00, +0530, UTC-7, GMT+2
_FIXED_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)


def check_timezone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {tz!r} (use an IANA name such as America/Denver{_offset_hint(tz)})"
        ) from None
    return tz


def _offset_hint(tz: str) -> str:
    """How a fixed offset is named, when tz is one: Etc/GMT+7 is UTC-07:00 (POSIX signs)."""
    m = _FIXED_OFFSET.match(tz.strip())
    if m is None:
        return ""
    sign, hours, minutes = m.group(1), int(m.group(2)), int(m.group(3) or 0)
    if hours > (12 if sign == "-" else 14):
        return "; no zone is that far from UTC"
    if minutes:
        return "; an offset of part of an hour has no such name: use the place's zone"
    if hours == 0:
        return "; UTC for an offset of 0"
    name = f"Etc/GMT{'+' if sign == '-' else '-'}{hours}"
    return f"; a fixed UTC{sign}{hours:02d}:00 is {name}, whose sign is the other way round"


class DateRange(_Strict):
    """Inclusive local days: either start_date/end_date or days_back (ending today)."""

    start_date: date | None = None
    end_date: date | None = None
    days_back: int | None = None
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return check_timezone(v)

    @field_validator("start_date", "end_date")
    @classmethod
    def _day(cls, v: date | None) -> date | None:
        why = _outside(v) if v is not None else None
        if why is not None:  # (a YAML's days: the field's path names them)
            raise ValueError(why)
        return v

    @field_validator("days_back")
    @classmethod
    def _positive(cls, v: int | None) -> int | None:
        if v is not None and not 0 < v <= MAX_DAYS_BACK:
            raise ValueError(
                f"days_back must be a positive number of days, at most {MAX_DAYS_BACK:,}, got {v}"
            )
        return v

    @model_validator(mode="after")
    def _complete(self) -> DateRange:
        if self.days_back is None:
            if self.start_date is None:
                raise ValueError("give start_date (and optionally end_date) or days_back")
            if self.end_date is not None:
                try:
                    check_day_order(self.start_date, self.end_date)
                except ConfigError as e:
                    raise ValueError(str(e)) from None
        elif self.start_date is not None or self.end_date is not None:
            raise ValueError("give either days_back or start_date/end_date, not both")
        return self

    def resolve(self, today: date | None = None) -> tuple[date, date]:
        """The concrete (start, end) local days; days_back ends on today in the range's
        timezone (today: that day, given, e.g. by a test), not on today in UTC."""
        if self.days_back is not None:
            today = today or now_utc().astimezone(ZoneInfo(self.timezone)).date()
            return today - timedelta(days=self.days_back - 1), today
        assert self.start_date is not None
        return self.start_date, self.end_date or self.start_date


class CacheConfig(_Strict):
    directory: Path = DEFAULT_HOME
    ttl_days: int = Field(30, ge=0, description="how long a provisional no_data marker is trusted")
    recent_days: int = Field(
        3, ge=0, description="days this close to today are re-checked (the sandbox lags)"
    )
    max_size_gb: float = Field(50.0, gt=0)
    lock_timeout_seconds: float = Field(
        60.0, ge=0, description="how long to wait for the catalog database or a partition lock"
    )
    listing_ttl_hours: float = Field(
        6.0, ge=0, description="how long a cached bucket listing (discover, plan) is reused"
    )
    snapshot_retention_days: float = Field(
        7.0,
        ge=0,
        description="how long replaced data stays readable by time travel (DuckLake snapshots) "
        "before its files are deleted; 0 deletes them at the end of each ingest",
    )
    check_changes: bool = Field(
        False,
        description="list complete days again and re-ingest only new or changed objects "
        "(LIST requests for every cached day; off: cached days cost no request)",
    )


#: the most concurrent S3 requests a run may make (download.max_workers, --workers)
MAX_WORKERS = 64


class DownloadConfig(_Strict):
    """How a run talks to S3. The defaults are sized for real S3, where a small object costs one
    round trip of tens of milliseconds: 32 requests in flight keep a run from waiting on
    latency (s5cmd runs 256), and 500 requests/s stays a tenth of the 5,500 GET/s S3 serves per
    prefix; a throttled request (503 SlowDown, Retry-After) holds every worker back
    (TokenBucket.defer) and is retried under the one retry policy."""

    max_workers: int = Field(32, ge=1, le=MAX_WORKERS)
    rate_limit: float = Field(500.0, ge=0, description="requests per second, 0 = unlimited")
    retry_attempts: int = Field(3, ge=0, le=20)
    retry_delay_seconds: float = Field(1.0, ge=0)
    timeout_seconds: float = Field(300.0, gt=0)
    profile: str | None = None
    no_sign_request: bool = False
    endpoint_url: str | None = Field(
        None, description="override; normally AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL"
    )


class MemoryConfig(_Strict):
    max_usage_gb: float = Field(24.0, gt=0, allow_inf_nan=False)
    partition_size_mb: int = Field(128, ge=1)
    duckdb_threads: int | None = Field(None, ge=1)
    rows_per_file: int = Field(
        2_000_000,
        ge=1,
        description="Parquet files are split above about this many rows (few, big files): "
        "the cut falls on a row group, so a file holds whole groups of at least 4,096 rows",
    )
    row_group_size: int = Field(
        122_880,
        ge=1,
        description="most rows per Parquet row group: each write sizes its groups from its row "
        "count, about 16 a partition, at least 4,096 (cvcatalog.io.roworder.row_group_rows)",
    )

    staging_gb: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="raw copies held in RAM (/dev/shm) during a run, taken from DuckDB's share of "
        "max_usage_gb; 0 = on disk only; default: a quarter of (max_usage_gb - 2), at most 2 GB; "
        "a run uses at most an eighth of the RAM and half of /dev/shm's free room, and none "
        "under 64 MiB (io.memstage)",
    )

    staging_dir: Path | None = Field(
        None, description="the RAM-backed directory those copies go to; default /dev/shm"
    )

    @field_validator("staging_dir", mode="before")
    @classmethod
    def _no_empty_dir(cls, v: object) -> object:
        """An empty value (`CVCATALOG_MEMORY__STAGING_DIR=`) means the default, not '.'."""
        return None if isinstance(v, str) and not v.strip() else v

    @property
    def staging_bytes(self) -> int:
        """The memory stage's budget (io.memstage)."""
        if self.staging_gb is not None:
            gb = self.staging_gb
        else:  # none below 2 GB: a 1 GB budget needs its 0.65 GB for DuckDB on a 2 GB day
            gb = min(max(0.0, 0.25 * (self.max_usage_gb - 2.0)), 2.0)
        return int(gb * 1024**3)

    @property
    def duckdb_memory_limit(self) -> str:
        """DuckDB's share of the process budget: 65 %, keeping at least 0.35 GB for Python,
        Arrow and the download threads (~0.2 GB before any conversion) and for what DuckDB
        allocates beyond its limit. Measured on a 2 GB day: a 1 GB budget (0.65 GB here) peaks
        at ~0.96 GB RSS; with 0.75 GB it peaked at 1.03 GB."""
        return self.duckdb_memory_limit_beside(0)

    def duckdb_memory_limit_beside(self, staged: int) -> str:
        """DuckDB's share less the budget of a memory stage open beside it (io.memstage: the
        one it actually opened with). 0.40 GB at a 1 GB budget ran a 2 GB day out of memory,
        so staging_bytes is none below 2 GB."""
        share = min(self.max_usage_gb - 0.35, self.max_usage_gb * 0.65) - staged / 1024**3
        return f"{max(0.25, share):.2f}GB"


class ValidationConfig(_Strict):
    enabled: bool = True
    drop_invalid_records: bool = True


#: the longest trips.max_gap_s (~31,700 years): the views compare whole microseconds as
#: BIGINT, so a gap must stay far inside its range (1e308 s overflowed)
MAX_TRIP_GAP_S = 1e12


class TripsConfig(_Strict):
    """How points become trips (the lake's `*_points`, `*_trips` and `*_kinematics` views)."""

    max_gap_s: float = Field(
        120.0,
        gt=0,
        le=MAX_TRIP_GAP_S,
        description="a time gap MORE than this many seconds between consecutive points of one "
        "vehicle id starts a new trip (a gap exactly equal stays in the trip); recorded in the "
        "catalog, whose trip views are defined again when it changes",
    )


def trips_config(
    config: str | Path | None = None, max_gap_s: float | None = None
) -> TripsConfig | None:
    """The trips settings asked for: the YAML's `trips:` section, then CVCATALOG_TRIPS__*,
    then max_gap_s, checked as an ingest's (:func:`build`: a bad value's line names the file,
    the variable or "arguments"); None when none of them says anything (the catalog keeps its
    own)."""
    section = (load_yaml(config).get("trips") or {}) if config is not None else {}
    given = {} if max_gap_s is None else {"trips": {"max_gap_s": max_gap_s}}
    if not section and not given and not env_overrides().get("trips"):
        return None
    return build(
        _TripsSection, {"trips": section} if section else {}, given, str(config or "arguments")
    ).trips


class _Section(BaseModel):
    """One section of the settings, for a command that reads no other (:func:`build`'s model):
    the file's other sections and the environment's other variables are left alone."""

    model_config = ConfigDict(extra="ignore")


class _CacheSection(_Section):
    cache: CacheConfig = CacheConfig()


class _DownloadSection(_Section):
    download: DownloadConfig = DownloadConfig()


class _TripsSection(_Section):
    trips: TripsConfig | None = None


class _QualitySection(_Section):
    quality: QualityConfig | None = None


S = TypeVar("S", bound=_Section)


def _one_section(
    model: type[S],
    config: str | Path | None,
    overrides: dict[str, Any],
    defaults: Mapping[str, Any] | None = None,
) -> S:
    """model's one section: a caller's own defaults, the YAML's (config), then
    CVCATALOG_<SECTION>__*, then overrides (None: not given), merged and checked by
    :func:`build` as an ingest's settings are (one ConfigError line naming the file, the
    variable or "arguments", whichever gave the value)."""
    [name] = model.model_fields
    data = load_yaml(config) if config is not None else {}
    base = {**(defaults or {}), **(data.get(name) or {})}
    given = {k: v for k, v in overrides.items() if v is not None}
    return build(
        model,
        {name: base} if base else {},
        {name: given} if given else {},
        origin=str(config or "arguments"),
    )


def quality_config(config: str | Path | None = None) -> QualityConfig | None:
    """The quality settings of a command that reads no other section (`report quality`): the
    YAML's `quality:` section (a data-source file without one: none; or a file holding the
    section itself), then CVCATALOG_QUALITY__*, checked as an ingest's; None when neither
    says anything."""
    data = load_yaml(config) if config is not None else {}
    whole = "quality" in data or not data.keys().isdisjoint(DataSourceConfig.model_fields)
    section = (data.get("quality") or {}) if whole else data
    if not section and not env_overrides().get("quality"):
        return None
    base = {"quality": section} if section else {}
    return build(_QualitySection, base, {}, str(config or "arguments")).quality


def cache_config(config: str | Path | None = None, **overrides: Any) -> CacheConfig:
    """The cache settings of a command that reads no other section (`cache evict`, the
    catalog directory of --config): the YAML's `cache:` section, then CVCATALOG_CACHE__*, then
    overrides."""
    return _one_section(_CacheSection, config, overrides).cache


def download_config(
    defaults: Mapping[str, Any] | None = None, **overrides: Any
) -> DownloadConfig:
    """The download settings of a reader that takes no config file (a published catalog's, an
    s3:// input without an ingest's client): the caller's defaults (publish's rate limit),
    CVCATALOG_DOWNLOAD__*, then overrides."""
    return _one_section(_DownloadSection, None, overrides, defaults).download


class IngestConfig(_Strict):
    """What every ingest reads from its config (YAML, then CVCATALOG_* environment, then flags),
    whatever its source: where the catalog is and how it is kept (cache), how S3 is reached
    (download), memory, the quality step, trips and where the lake lives."""

    #: top-level keys of a data-source file this kind of ingest accepts but does not read (build
    #: drops them), so one file serves every source
    ignored: ClassVar[tuple[str, ...]] = ()

    cache: CacheConfig = CacheConfig()
    download: DownloadConfig = DownloadConfig()
    memory: MemoryConfig = MemoryConfig()
    #: data quality rules and cleaning (cvcatalog.quality); absent: CV Pilot days count the
    #: rules with their defaults and clean nothing, a dataset load runs no quality step
    quality: QualityConfig | None = None
    #: trips.max_gap_s to record in the catalog; absent: the catalog keeps what it records
    trips: TripsConfig | None = None
    storage: str | None = Field(
        None,
        description="where the Parquet lake lives: 'local' (the catalog directory) or "
        "s3://bucket/prefix; unset: what the catalog already records (local for a new one)",
    )

    @field_validator("storage")
    @classmethod
    def _storage(cls, v: str | None) -> str | None:
        if v is None or v.strip() in ("", "local"):
            return None if v is None else "local"
        text = v.strip()
        if not text.lower().startswith("s3://") or len(text) <= 5:
            raise ValueError(f"must be 'local' or an s3://bucket/prefix URL, got {v!r}")
        return text


class DataSourceConfig(IngestConfig):
    """One CV Pilot ingest job: which slice of the bucket, and how to fetch and keep it."""

    source: str
    message_type: str
    bucket: str = BUCKET
    date_range: DateRange
    validation: ValidationConfig = ValidationConfig()

    @model_validator(mode="after")
    def _pair(self) -> DataSourceConfig:
        src, mt = check_source_type(self.source, self.message_type)
        if (src, mt) != (self.source, self.message_type):
            # assignment re-runs validation; only assign when normalisation changed something
            object.__setattr__(self, "source", src)
            object.__setattr__(self, "message_type", mt)
        if self.quality is not None:
            check_applicable(self.quality, src, mt)
        return self

    @property
    def quality_config(self) -> QualityConfig:
        """The quality section, or the defaults when the file has none."""
        return self.quality or QualityConfig()

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> DataSourceConfig:
        """Load a YAML file, apply CVCATALOG_* environment variables, then overrides."""
        data = load_yaml(path)
        return build(cls, data, overrides, origin=str(path))

    @classmethod
    def from_values(cls, **overrides: Any) -> DataSourceConfig:
        """Build from defaults, environment and overrides alone (no file)."""
        return build(cls, {}, overrides, origin="arguments")


class DatasetConfig(IngestConfig):
    """A dataset load (NGSIM): the settings every ingest reads. The keys only the CV Pilot ingest
    reads (which slice of the bucket, its record validation) are accepted and left alone, so
    `--config` takes the same file for every source."""

    ignored: ClassVar[tuple[str, ...]] = (
        "source", "message_type", "bucket", "date_range", "validation",
    )  # fmt: skip


def env_overrides(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """CVCATALOG_SECTION__FIELD=value pairs as a nested dict; CVCATALOG_HOME sets the cache dir
    (over CVCATALOG_CACHE__DIRECTORY, as catalog.default_home reads them). Two variables of
    which one sets a value the other would go inside (CVCATALOG_DOWNLOAD__RATE_LIMIT and
    CVCATALOG_DOWNLOAD__RATE_LIMIT__X) are a ConfigError naming both. A variable set but empty
    (`CVCATALOG_MEMORY__STAGING_GB=`) is unset, as for most tools: the level below applies;
    one set to null (or ~, YAML's null) is null, e.g. a quality rule off (ENV_NULL)."""
    environ = _set_env(environ)
    given: dict[tuple[str, ...], str] = {}  # field path -> the variable that sets it
    if environ.get("CVCATALOG_STORAGE"):
        given[("storage",)] = "CVCATALOG_STORAGE"
    for name in environ:
        if name.startswith(ENV_PREFIX) and "__" in name:
            given.setdefault(tuple(name[len(ENV_PREFIX) :].lower().split("__")), name)
    if environ.get("CVCATALOG_HOME"):
        given[("cache", "directory")] = "CVCATALOG_HOME"
    out: dict[str, Any] = {}
    for path, name in given.items():
        for i in range(1, len(path)):
            if path[:i] in given:
                raise ConfigError(
                    f"invalid configuration ({name}): {'.'.join(path[:i])} is a setting, not a "
                    f"section ({given[path[:i]]} sets it); unset one of the two"
                )
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        value = environ[name]
        node[path[-1]] = ENV_NULL if value.strip() in _NULL_WORDS else value
    return out


class _EnvNull:
    """A variable's null (`CVCATALOG_QUALITY__RULES__BOUNDS=null`: the rule off, as YAML's
    null): None once merged; deep_merge passes over a plain None (a flag not given)."""

    def __repr__(self) -> str:
        return "null"


ENV_NULL = _EnvNull()
#: YAML's spellings of null
_NULL_WORDS = frozenset({"null", "Null", "NULL", "~"})


def _set_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment's CVCATALOG_* variables that are set to something: one set but empty
    (or blank) is unset, not an empty value (an empty profile name, a number '')."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if k.startswith(ENV_PREFIX) and v.strip()}


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in extra.items():
        if v is None:
            continue
        if v is ENV_NULL:
            merged[k] = None
        elif isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = deep_merge(merged[k], v)
        else:
            merged[k] = v
    return merged


C = TypeVar("C", bound=BaseModel)


#: a date_range's keys that say which days: a level (the file, the environment, the arguments)
#: that gives any of them gives the days, and the lower levels' days go (their time zone stays)
DAY_KEYS = ("start_date", "end_date", "days_back")


def _over(base: dict[str, Any], level: dict[str, Any]) -> dict[str, Any]:
    """level merged over base, the days of a date_range taken whole from the level that says
    them (a days_back below start/end dates would be a conflict, a start above an end a
    backwards range)."""
    given = level.get("date_range")
    below = base.get("date_range")
    if isinstance(given, dict) and isinstance(below, dict) and any(k in given for k in DAY_KEYS):
        base = {**base, "date_range": {k: v for k, v in below.items() if k not in DAY_KEYS}}
    return deep_merge(base, level)


def build(model: type[C], data: dict[str, Any], overrides: dict[str, Any], origin: str) -> C:
    """data (a YAML file's) < CVCATALOG_* environment < overrides, validated as model (the
    days of a date_range from the highest level that gives any, DAY_KEYS); the keys model
    ignores (IngestConfig.ignored) are dropped first. An error names where its value came
    from: origin (the file's name), the variable, or "arguments" (overrides)."""
    env = env_overrides()
    merged = _over(_over(data, env), overrides)
    for key in getattr(model, "ignored", ()):
        merged.pop(key, None)
    try:
        return model.model_validate(merged)
    except ValidationError as e:
        loc = [str(p) for p in e.errors()[0]["loc"]]
        if _gives(overrides, loc):  # an argument's (a flag's) value, not the file's
            origin = "arguments"
        elif _gives(env, loc):  # the value came from the env
            origin = _ENV_NAMES.get(tuple(loc), ENV_PREFIX + "__".join(loc).upper())
            if isinstance(_at(env, loc), dict):  # e.g. the days of CVCATALOG_DATE_RANGE__*
                origin += "__*"
        raise ConfigError(format_validation_error(e, origin)) from None


#: settings whose environment variable is not CVCATALOG_<SECTION>__<FIELD>
_ENV_NAMES = {("cache", "directory"): "CVCATALOG_HOME", ("storage",): "CVCATALOG_STORAGE"}

#: the other CVCATALOG_* variables the code reads: tracebacks (cli.main.friendly) and the test
#: suite's switches (tests/conftest.py); with _ENV_NAMES and CVCATALOG_<FIELD>__* of a
#: DataSourceConfig field, every name a CVCATALOG_* variable may have (unknown_env)
OTHER_ENV = ("CVCATALOG_DEBUG", "CVCATALOG_TEST_SIGNED_EXTENSIONS", "CVCATALOG_TEST_DUCKDB_THREADS")


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    """The config models a field's annotation holds (QualityConfig | None: QualityConfig)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in get_args(annotation):
        yield from _models(arg)


def _setting_names(model: type[BaseModel], path: tuple[str, ...] = ()) -> Iterator[str]:
    """The variable of every setting of model, at any depth (CVCATALOG_CACHE__TTL_DAYS; and
    CVCATALOG_HOME, which sets cache.directory as CVCATALOG_CACHE__DIRECTORY does)."""
    for name, field in model.model_fields.items():
        here = (*path, name)
        yield ENV_PREFIX + "__".join(here).upper()
        if here in _ENV_NAMES:
            yield _ENV_NAMES[here]
        for sub in _models(field.annotation):
            yield from _setting_names(sub, here)


def unknown_env(environ: Mapping[str, str] | None = None) -> list[str]:
    """A line for each CVCATALOG_* variable that names nothing cvcatalog reads, with the
    closest name that does: a misspelt CVCATALOG_HOMEE was ignored without a word. A
    CVCATALOG_<FIELD>__* of a known field is left to the validation of what it sets."""
    environ = _set_env(environ)
    fields = DataSourceConfig.model_fields
    known = [*_ENV_NAMES.values(), *OTHER_ENV]
    candidates = sorted({*known, *_setting_names(DataSourceConfig)})
    lines = []
    for name in sorted(environ):
        if name in known:
            continue
        head, sep, _ = name[len(ENV_PREFIX) :].partition("__")
        if sep and head.lower() in fields:
            continue
        # matched without the prefix all share, which would make any name "close"
        tails = {c[len(ENV_PREFIX) :]: c for c in candidates}
        close = difflib.get_close_matches(name[len(ENV_PREFIX) :], tails, n=1)
        hint = f" (did you mean {tails[close[0]]}?)" if close else ""
        lines.append(f"{name} is not a cvcatalog setting; ignored{hint}")
    return lines


def _at(tree: dict[str, Any], path: list[str]) -> Any:
    """A nested dict's value at path; None if it has none."""
    node: Any = tree
    for part in path:
        if not isinstance(node, dict) or node.get(part) is None:
            return None
        node = node[part]
    return node


def _gives(tree: dict[str, Any], loc: list[str]) -> bool:
    """Whether a level (the environment's values, the arguments) gave what an error at loc is
    about: a value there, or, for a date_range as a whole, its days (they come whole from the
    highest level that gives any, DAY_KEYS); not a section it gave only other fields of."""
    value = _at(tree, loc) if loc else None
    if isinstance(value, dict):
        return loc == ["date_range"] and any(value.get(k) is not None for k in DAY_KEYS)
    return value is not None
