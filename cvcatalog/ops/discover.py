"""Discovery and planning from bucket listings alone (no GetObject).

``discover`` walks the folder tree with delimiter listings (ListObjectsV2, Delimiter="/",
CommonPrefixes), one level deeper than asked so every row says what it holds: types and their
years, years and their months, months and their days (or NYCDOT weekday bins). Asked for one
month, it lists every object of that month and reports each partition (day, or weekday/time
bin) with its hours, object count and bytes.

``plan`` lists the partitions an ingest of a date range would touch and sets them against the
manifest with the ingest's own rule (``ingest.needs_work``): what is cached, what would be
fetched, how many objects and bytes that is.

Every listing goes through :class:`~cvcatalog.io.download.S3Fetcher` (rate limit, retries, error
translation) and is cached in the catalog table ``listing_cache`` for
``cache.listing_ttl_hours``; ``refresh=True`` lists again. Cached listings are aggregates
(child names, or object counts and bytes per day/hour), never object keys, so they stay small.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from cvcatalog import incremental
from cvcatalog.config import (
    CacheConfig,
    DataSourceConfig,
    DownloadConfig,
    check_source_type,
    deep_merge,
    env_overrides,
    format_validation_error,
    spelled,
)
from cvcatalog.exceptions import CatalogLockedError, ConfigError
from cvcatalog.io.download import S3Fetcher
from cvcatalog.io.s3 import make_client
from cvcatalog.sources.bucket import (
    BINNED_SOURCES,
    BUCKET,
    TIME_BINS,
    VALID_TYPES,
    WEEKDAY_BINS,
    PartitionKey,
    partitions_for,
)
from cvcatalog.sources.cvpilot import check_not_future, folder_today, future_days, needs_work
from cvcatalog.state import manifest
from cvcatalog.state.db import CatalogDB, now_utc

FetcherFactory = Callable[[], S3Fetcher]

#: What each discover level lists, from the least to the most specific request.
LEVELS = ("types", "years", "months", "partitions")

#: Table columns of each level (json and csv carry every field of a row).
TABLE_COLUMNS: dict[str, list[str]] = {
    "types": ["type", "years", "n_years", "prefix"],
    "years": ["year", "months", "n_months", "prefix"],
    "months": ["month", "days", "n_days", "prefix"],
    "partitions": ["day", "hours", "n_hours", "missing_hours", "objects", "bytes", "size"],
}
BINNED_TABLE_COLUMNS: dict[str, list[str]] = {
    **TABLE_COLUMNS,
    "months": ["month", "weekdays", "n_weekdays", "prefix"],
    "partitions": ["weekday", "time_bin", "objects", "bytes", "size"],
}
PLAN_COLUMNS = ["partition", "status", "objects", "bytes", "size", "fetch", "reason"]
#: json and csv columns of `cvcatalog plan` (the last row is the TOTAL row).
PLAN_FIELDS = [
    "partition",
    "status",
    "objects",
    "bytes",
    "fetch",
    "fetch_objects",
    "fetch_bytes",
    "reason",
    "cached_rows",
]


def human_bytes(n: int | float) -> str:
    """Decimal units, as the rest of the CLI prints them (1 MB = 10^6 bytes)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def compact(names: Iterable[str]) -> str:
    """'01-03, 05, 07-08' for runs of consecutive numbers; other names joined by ', '."""
    items = list(names)
    if not items or not all(x.isdigit() for x in items):
        return ", ".join(items)
    nums = sorted({int(x) for x in items})
    width = max(len(x) for x in items)
    runs: list[str] = []
    lo = prev = nums[0]
    for n in [*nums[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        a, b = f"{lo:0{width}d}", f"{prev:0{width}d}"
        runs.append(a if lo == prev else f"{a}-{b}")
        if n is not None:
            lo = prev = n
    return ", ".join(runs)


def _sorted(names: Iterable[str]) -> list[str]:
    """Numbers numerically; NYCDOT weekday or time-of-day bins in calendar order (a set of
    names is read as weekdays or as time bins as a whole: "NA" is in both); the rest by name."""
    items = list(names)
    for bins in (WEEKDAY_BINS, TIME_BINS):
        if items and all(x in bins for x in items):
            return sorted(items, key=bins.index)
    return sorted(items, key=lambda x: (0, int(x), x) if x.isdigit() else (1, 0, x))


# -- settings --------------------------------------------------------------------------------
class _Settings(BaseModel):
    """The parts of a data-source config a listing needs (other sections are ignored)."""

    model_config = ConfigDict(extra="ignore")
    bucket: str = BUCKET
    cache: CacheConfig = CacheConfig()
    download: DownloadConfig = DownloadConfig()


def listing_settings(
    data: dict[str, Any], overrides: dict[str, Any], origin: str
) -> tuple[str, CacheConfig, DownloadConfig]:
    """bucket, cache and download settings: config file < CVCATALOG_* environment < overrides."""
    merged = deep_merge(deep_merge(data, env_overrides()), overrides)
    try:
        s = _Settings.model_validate(merged)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, origin)) from None
    return s.bucket, s.cache, s.download


def fetcher_factory(fetcher: S3Fetcher | None, dl: DownloadConfig, bucket: str) -> FetcherFactory:
    """The given fetcher, or one made on first use (a fully cached answer opens no client)."""
    if fetcher is not None:
        given = fetcher
        return lambda: given

    def make() -> S3Fetcher:
        return S3Fetcher(make_client(dl), dl, bucket)

    return make


# -- the listing cache -----------------------------------------------------------------------
@dataclass
class Listing:
    """One listing of a prefix.

    mode "level": ``children`` are the child folder names (no slashes), ``objects``/``bytes``
    count the objects directly under the prefix. mode "tree": ``children`` maps the first two
    folder components below the prefix ("01/00", "FRI/AM"; "" for objects directly under it)
    to [objects, bytes], and ``objects``/``bytes`` are the totals below the prefix.
    """

    prefix: str
    mode: str
    listed_at: datetime
    children: Any
    objects: int
    bytes: int
    cached: bool = False


class ListingCache:
    """Fresh listings from the catalog database, the rest listed through an S3Fetcher.

    New listings are kept in memory and stored by :meth:`save` in one catalog transaction.
    """

    def __init__(
        self,
        db: CatalogDB,
        fetcher_factory: FetcherFactory,
        *,
        ttl_hours: float,
        refresh: bool = False,
        scope: str = "",
        now: datetime | None = None,
    ) -> None:
        self.db = db
        self._factory = fetcher_factory
        self._fetcher: S3Fetcher | None = None
        self.ttl = timedelta(hours=ttl_hours)
        self.refresh = refresh
        self.now = now or now_utc()
        self._known: dict[tuple[str, str], Listing] = {}
        self._new: list[Listing] = []
        self.used: list[Listing] = []
        if not refresh and ttl_hours > 0:
            self._load(scope)

    def _load(self, scope: str) -> None:
        if not self.db.exists():
            return
        with self.db.read_state() as con:
            have = con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'listing_cache'"
            ).fetchone()
            if not have or not have[0]:
                return  # a catalog from before migration 2 that has not been written since
            rows = con.execute(
                "SELECT prefix, mode, listed_at, children, objects, bytes FROM listing_cache "
                "WHERE starts_with(prefix, ?) AND listed_at > ?",
                [scope, self.now - self.ttl],
            ).fetchall()
        for prefix, mode, listed_at, children, objects, nbytes in rows:
            self._known[(prefix, mode)] = Listing(
                prefix, mode, listed_at, json.loads(children), int(objects), int(nbytes), True
            )

    @property
    def fetcher(self) -> S3Fetcher:
        if self._fetcher is None:
            self._fetcher = self._factory()
        return self._fetcher

    @property
    def list_requests(self) -> int:
        """ListObjectsV2 requests this cache sent (0 when everything came from the cache)."""
        return self._fetcher.list_requests if self._fetcher is not None else 0

    def cached(self, prefix: str, mode: str) -> Listing | None:
        """A fresh cached listing, without listing anything."""
        return self._known.get((prefix, mode))

    def _use(self, listing: Listing) -> Listing:
        self.used.append(listing)
        return listing

    def level(self, prefix: str) -> Listing:
        """The child folders of prefix and the objects directly in it (one delimiter listing)."""
        hit = self._known.get((prefix, "level"))
        if hit is not None:
            return self._use(hit)
        folders, objs = self.fetcher.list_level(prefix)
        names = _sorted(f[len(prefix) :].rstrip("/") for f in folders if f.startswith(prefix))
        listing = Listing(prefix, "level", now_utc(), names, len(objs), sum(o.size for o in objs))
        return self._keep(listing)

    def tree(self, prefix: str) -> Listing:
        """Object counts and bytes below prefix, per first two folder components."""
        hit = self._known.get((prefix, "tree"))
        if hit is not None:
            return self._use(hit)
        groups: dict[str, list[int]] = {}
        objs = self.fetcher.list(prefix)
        for o in objs:
            folders = o.key[len(prefix) :].split("/")[:-1]
            g = groups.setdefault("/".join(folders[:2]), [0, 0])
            g[0] += 1
            g[1] += o.size
        listing = Listing(prefix, "tree", now_utc(), groups, len(objs), sum(o.size for o in objs))
        return self._keep(listing)

    def _keep(self, listing: Listing) -> Listing:
        self._known[(listing.prefix, listing.mode)] = listing
        self._new.append(listing)
        return self._use(listing)

    def save(self) -> None:
        """Store the listings made since the cache was opened (skipped if the catalog is busy,
        or is not there: a listing is no reason to make one, and a mistyped --catalog of
        `plan` or `discover` made one where none was meant to be)."""
        if not self._new or self.ttl <= timedelta(0) or not self.db.exists():
            return
        rows = [
            [x.prefix, x.mode, x.listed_at, json.dumps(x.children), x.objects, x.bytes]
            for x in self._new
        ]
        try:
            with self.db.write(state_only=True) as con:
                con.executemany(
                    "INSERT OR REPLACE INTO listing_cache "
                    "(prefix, mode, listed_at, children, objects, bytes) VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
        except CatalogLockedError as e:
            self.db.notify(f"listing not cached: {e}")
            return
        self._new = []

    def describe(self) -> str:
        """'3 listings (2 LIST requests, ...)' or 'from the listing cache (listed 12 min ago)'."""
        used = list({(x.prefix, x.mode): x for x in self.used}.values())
        fresh = [x for x in used if not x.cached]
        # LISTs sent besides the listings used (plan --check-changes lists each cached day)
        now = f"{plural(self.list_requests, 'LIST request')} now; no GETs"
        if not used:
            return now if self.list_requests else "nothing listed"
        if not fresh:
            oldest = min(x.listed_at for x in used)
            cached = f"from the listing cache (listed {_ago(self.now - oldest)} ago; --refresh)"
            return f"{cached}; {now}" if self.list_requests else cached
        from_cache = len(used) - len(fresh)
        extra = f", {from_cache} from the cache" if from_cache else ""
        return (
            f"{plural(len(used), 'listing')} "
            f"({plural(self.list_requests, 'LIST request')}{extra}; no GETs)"
        )


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _ago(d: timedelta) -> str:
    s = max(0, int(d.total_seconds()))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s / 3600:.1f} h"


# -- discover --------------------------------------------------------------------------------
@dataclass
class Discovery:
    """What one prefix of the bucket holds, one row per child (see TABLE_COLUMNS)."""

    bucket: str
    source: str
    message_type: str | None
    year: int | None
    month: int | None
    level: str
    prefix: str
    rows: list[dict[str, Any]]
    objects: int | None = None  # partitions level: totals of the month
    bytes: int | None = None
    missing: list[str] = field(default_factory=list)  # partitions level: day gaps
    list_requests: int = 0
    listing: str = ""  # how the listing was obtained (cache or requests)

    @property
    def columns(self) -> list[str]:
        binned = self.source in BINNED_SOURCES
        return (BINNED_TABLE_COLUMNS if binned else TABLE_COLUMNS)[self.level]

    def summary(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}"
        if not self.rows:
            return f"{where}: nothing listed ({self.listing})"
        what = {"types": "type", "years": "year", "months": "month"}.get(self.level)
        if what is None:
            what = "bin" if self.source in BINNED_SOURCES else "day"
        text = f"{where}: {plural(len(self.rows), what)}"
        if self.objects is not None and self.bytes is not None:
            text += f", {plural(self.objects, 'object')}, {human_bytes(self.bytes)}"
        if self.missing:
            text += f"; no folder for day(s) {compact(self.missing)}"
        return f"{text}; {self.listing}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "level": self.level,
            "objects": self.objects,
            "bytes": self.bytes,
            "missing_days": self.missing,
            "list_requests": self.list_requests,
            "rows": self.rows,
        }


def _check_discover_args(
    source: str,
    message_type: str | None,
    year: int | None,
    month: int | None,
    names: Mapping[str, str] | None = None,
) -> tuple[str, str | None]:
    """names: the caller's words for the arguments (the CLI's flags; config.spelled)."""
    src = source.strip().lower()
    if src not in VALID_TYPES:
        raise ConfigError(f"unknown source {source!r}; expected one of {', '.join(VALID_TYPES)}")
    mt = None
    if message_type is not None:
        try:
            src, mt = check_source_type(src, message_type)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    y, m, t = (spelled(names, a) for a in ("year", "month", "message_type"))
    for flag, value in ((y, year), (m, month)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{flag} must be a whole number, got {value!r}")
    if year is not None and mt is None:
        raise ConfigError(f"{y} needs {t} (the years are listed per message type)")
    if month is not None and year is None:
        raise ConfigError(f"{m} needs {y}")
    if year is not None and not 1000 <= year <= 9999:
        raise ConfigError(f"{y} must be a four-digit year, got {year}")
    if month is not None and not 1 <= month <= 12:
        raise ConfigError(f"{m} must be 1..12, got {month}")
    return src, mt


def discover(
    cache: ListingCache,
    bucket: str,
    source: str,
    message_type: str | None = None,
    year: int | None = None,
    month: int | None = None,
    names: Mapping[str, str] | None = None,
) -> Discovery:
    """List one level of the bucket below source[/type[/year[/month]]] (see the module doc);
    names: the caller's words for the arguments in its messages (config.spelled)."""
    src, mt = _check_discover_args(source, message_type, year, month, names)
    parts = [src, mt, f"{year:04d}" if year else None, f"{month:02d}" if month else None]
    levels = [p for p in parts if p is not None]
    prefix = "/".join(levels) + "/"
    level = LEVELS[len(levels) - 1]
    d = Discovery(bucket, src, mt, year, month, level, prefix, [])
    if level == "partitions":
        _month_rows(cache, d)
    else:
        child_col, grand_col = {
            "types": ("type", "years"),
            "years": ("year", "months"),
            "months": ("month", "weekdays" if src in BINNED_SOURCES else "days"),
        }[level]
        for child in cache.level(prefix).children:
            sub = f"{prefix}{child}/"
            grand = cache.level(sub).children
            d.rows.append(
                {
                    "source": src,
                    **({"type": mt} if mt and level != "types" else {}),
                    child_col: child,
                    grand_col: compact(grand),
                    f"n_{grand_col}": len(grand),
                    f"{grand_col}_list": grand,
                    "prefix": f"s3://{bucket}/{sub}",
                }
            )
    d.list_requests = cache.list_requests
    d.listing = cache.describe()
    return d


def _month_rows(cache: ListingCache, d: Discovery) -> None:
    """One row per day (hours, objects, bytes) or, for NYCDOT, per weekday/time bin."""
    assert d.year is not None and d.month is not None and d.message_type is not None
    tree = cache.tree(d.prefix)
    d.objects, d.bytes = tree.objects, tree.bytes
    by_first: dict[str, dict[str, list[int]]] = {}
    for group, (n, nbytes) in tree.children.items():
        first, _, second = group.partition("/")
        by_first.setdefault(first, {})[second] = [n, nbytes]
    binned = d.source in BINNED_SOURCES
    for first in _sorted(by_first):
        subs = by_first[first]
        n = sum(v[0] for v in subs.values())
        nbytes = sum(v[1] for v in subs.values())
        if binned:
            for second in _sorted(subs):
                key = f"{d.prefix}{first}/{second}" if first else d.prefix.rstrip("/")
                d.rows.append(
                    {
                        "partition": key,
                        "weekday": first,
                        "time_bin": second,
                        "objects": subs[second][0],
                        "bytes": subs[second][1],
                        "size": human_bytes(subs[second][1]),
                    }
                )
            continue
        hours = _sorted(h for h in subs if h)
        all_hours = [f"{h:02d}" for h in range(24)]
        day = _day_label(d.year, d.month, first)
        d.rows.append(
            {
                "partition": f"{d.prefix}{first}" if first else d.prefix.rstrip("/"),
                "day": day,
                "hours": compact(hours),
                "n_hours": len(hours),
                "missing_hours": compact(h for h in all_hours if h not in subs),
                "objects": n,
                "bytes": nbytes,
                "size": human_bytes(nbytes),
                "by_hour": {h: {"objects": subs[h][0], "bytes": subs[h][1]} for h in hours},
            }
        )
    if not binned:
        days = sorted(int(x) for x in by_first if x.isdigit())
        if days:
            d.missing = [f"{x:02d}" for x in range(days[0], days[-1] + 1) if x not in days]


def _day_label(year: int, month: int, folder: str) -> str:
    try:
        return date(year, month, int(folder)).isoformat()
    except ValueError:
        return folder  # not a day folder: show it as it is


# -- plan ------------------------------------------------------------------------------------
@dataclass
class Plan:
    """What an ingest of a range would do, per partition, from listings and the manifest."""

    bucket: str
    source: str
    message_type: str
    start: date
    end: date
    timezone: str
    rows: list[dict[str, Any]]
    list_requests: int = 0
    listing: str = ""

    def _sum(self, key: str, fetch: bool | None = None) -> int:
        return sum(int(r[key]) for r in self.rows if fetch is None or r["fetch"] is fetch)

    @property
    def totals(self) -> dict[str, Any]:
        statuses: dict[str, int] = {}
        for r in self.rows:
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        return {
            "partitions": len(self.rows),
            "objects": self._sum("objects"),
            "bytes": self._sum("bytes"),
            "fetch_partitions": sum(1 for r in self.rows if r["fetch"]),
            "fetch_objects": self._sum("objects", True),
            "fetch_bytes": self._sum("bytes", True),
            "cached_partitions": sum(
                1 for r in self.rows if not r["fetch"] and r["status"] != "missing"
            ),
            # a partition not in the catalog and not fetched is one after today
            "later_partitions": sum(
                1 for r in self.rows if not r["fetch"] and r["status"] == "missing"
            ),
            "status": statuses,
        }

    def total_row(self) -> dict[str, Any]:
        """The last row of `cvcatalog plan`: listed totals, and what would be fetched."""
        t = self.totals
        return {
            "partition": "TOTAL",
            "status": ", ".join(f"{n} {s}" for s, n in sorted(t["status"].items())),
            "objects": t["objects"],
            "bytes": t["bytes"],
            "size": human_bytes(t["bytes"]),
            "fetch": f"{t['fetch_partitions']} of {t['partitions']}",
            "fetch_objects": t["fetch_objects"],
            "fetch_bytes": t["fetch_bytes"],
            "reason": f"fetch {t['fetch_objects']:,} objects, {human_bytes(t['fetch_bytes'])}",
            "cached_rows": self._sum("cached_rows"),
        }

    def summary(self) -> str:
        t = self.totals
        return (
            f"{self.source}/{self.message_type} {self.start}..{self.end} ({self.timezone}): "
            f"an ingest would fetch {t['fetch_partitions']} of {t['partitions']} partitions, "
            f"{t['fetch_objects']:,} objects, {human_bytes(t['fetch_bytes'])}; "
            f"{t['cached_partitions']} already cached; "
            + (f"{t['later_partitions']} after today; " if t["later_partitions"] else "")
            + self.listing
        )


def _reason(rec: manifest.PartitionRecord | None, fetch: bool, why: str, force: bool) -> str:
    if not fetch:
        return why
    if force:
        return "--force-refresh"
    if rec is None:
        return "not in the catalog"
    if rec.status == "failed":
        return f"retry (failed: {rec.error or 'unknown error'})"
    if rec.status == "complete":
        return "rebuild (older canonical schema)"
    return "re-check (no_data marker may be stale)"


def plan(
    cache: ListingCache,
    db: CatalogDB,
    cfg: DataSourceConfig,
    *,
    force: bool = False,
    today: date | None = None,
    check_changes: bool = False,
) -> Plan:
    """Per partition of cfg's range: manifest status, objects and bytes listed, fetch or not
    (a day after today is neither listed nor fetched, as by an ingest: a range all after
    today is the ingest's one line). check_changes: as `ingest --check-changes`, each cached
    day is listed now and compared with the objects it was built from (_checked)."""
    check_not_future(cfg, today)
    start, end = cfg.date_range.resolve(today)  # days_back: today in the range's timezone
    given, today = today, folder_today(cfg.source, today)
    keys = partitions_for(cfg.source, cfg.message_type, start, end, cfg.date_range.timezone)
    future = set(future_days(keys, cfg.source, given))
    known: dict[str, manifest.PartitionRecord] = {}
    if db.exists():  # a new catalog: nothing known yet (saving the listings creates it)
        with db.read_state() as con:
            known = manifest.get_partitions(con, keys=[k.key for k in keys])
    p = Plan(cfg.bucket, cfg.source, cfg.message_type, start, end, cfg.date_range.timezone, [])
    there = _months_there(cache, cfg.source, cfg.message_type, keys)
    for pk in keys:
        rec = known.get(pk.key)
        fetched: tuple[int, int] | None = None  # (objects, bytes) to fetch, when not all
        if pk.key in future:
            n = nbytes = 0
            fetch, why = False, "after today: the bucket cannot hold it yet"
        elif there is not None and (pk.day.year, pk.day.month) not in there:
            n = nbytes = 0  # no folder of its month: nothing to list
            fetch, why = needs_work(rec, today, cfg, force)
        else:
            n, nbytes = _partition_totals(cache, pk)
            fetch, why = needs_work(rec, today, cfg, force)
            if not fetch and check_changes and incremental.checkable(rec, force):
                assert rec is not None  # (checkable)
                n, nbytes, fetch, why, fetched = _checked(cache, db, cfg, pk, rec)
            elif not fetch and n and rec is not None and rec.status == "no_data":
                why += f": the bucket now lists {plural(n, 'object')} (--force-refresh)"
        if fetched is None:
            fetched = (n, nbytes) if fetch else (0, 0)
        p.rows.append(
            {
                "partition": pk.key,
                "status": rec.status if rec is not None else "missing",
                "objects": n,
                "bytes": nbytes,
                "size": human_bytes(nbytes),
                "fetch": fetch,
                "fetch_objects": fetched[0],
                "fetch_bytes": fetched[1],
                "reason": why if fetch and why else _reason(rec, fetch, why, force),
                "cached_rows": rec.rows if rec is not None and rec.status == "complete" else 0,
            }
        )
    p.list_requests = cache.list_requests
    p.listing = cache.describe()
    return p


def _checked(
    cache: ListingCache,
    db: CatalogDB,
    cfg: DataSourceConfig,
    pk: PartitionKey,
    rec: manifest.PartitionRecord,
) -> tuple[int, int, bool, str, tuple[int, int]]:
    """A cached day as `ingest --check-changes` sees it: listed now (one LIST, as the ingest
    does) and compared by key, size and ETag with the objects it was built from. Returns
    (objects, bytes, fetch, why, (objects, bytes) to fetch): a complete day fetches its added
    and changed objects (all of them with a quality config: it is counted whole), a no_data
    marker whatever the bucket lists now."""
    listed = cache.fetcher.list(pk.s3_prefix)
    n, nbytes = len(listed), sum(o.size for o in listed)
    if rec.status == "no_data":
        if not listed:
            return 0, 0, False, "no_data (checked: still nothing listed)", (0, 0)
        return n, nbytes, True, f"no_data, now {plural(n, 'object')} (--check-changes)", (n, nbytes)
    with db.read_state() as con:
        known = manifest.get_source_objects(con, pk.key)
    delta = incremental.diff_objects(listed, known)
    if delta.empty:
        return n, nbytes, False, f"unchanged (checked: {plural(n, 'object')})", (0, 0)
    todo, whole = incremental.to_fetch(listed, delta, cfg.quality)
    why = f"{delta.counts_text()} (--check-changes)"
    if whole:
        why += "; the whole day, for the quality step"
    return n, nbytes, True, why, (len(todo), sum(o.size for o in todo))


#: a plan over more months than this lists which years and months the bucket has first
_MONTHS_LISTED_ALONE = 2


def _months_there(
    cache: ListingCache, source: str, message_type: str, keys: list[PartitionKey]
) -> set[tuple[int, int]] | None:
    """The (year, month) folders the bucket has for the months of a long range (one listing
    of the type's years, one of the months of each year in the range), so a plan of years
    (or centuries: a mistyped year) lists no day of a month that is not there: it listed
    every day, 2,192 requests and 28 s for six years. None for a range of a few months."""
    months = {(k.day.year, k.day.month) for k in keys}
    if len(months) <= _MONTHS_LISTED_ALONE:
        return None
    top = f"{source}/{message_type}/"
    years = {int(y) for y in cache.level(top).children if y.isdigit()}
    there: set[tuple[int, int]] = set()
    for year in sorted(years & {y for y, _ in months}):
        names = cache.level(f"{top}{year}/").children
        there |= {(year, int(m)) for m in names if m.isdigit()}
    return there


def _partition_totals(cache: ListingCache, pk: PartitionKey) -> tuple[int, int]:
    """(objects, bytes) of one partition: from a month listing if there is one, else its own."""
    month = f"{pk.source}/{pk.message_type}/{pk.day.year}/{pk.day.month:02d}/"
    if pk.bins is not None:
        # one listing per month instead of one per bin (a month has 48 bins, mostly small)
        tree = cache.tree(month)
        n, nbytes = tree.children.get(f"{pk.bins[0]}/{pk.bins[1]}", [0, 0])
        return int(n), int(nbytes)
    day = f"{pk.day.day:02d}"
    whole = cache.cached(month, "tree")
    own = cache.cached(pk.s3_prefix, "tree")
    if own is not None and whole is not None and own.listed_at > whole.listed_at:
        whole = None  # the day was listed since (plan --refresh): its listing is the news
    if whole is not None:  # `discover --month` listed it recently
        cache.used.append(whole)
        hits = [v for g, v in whole.children.items() if g == day or g.startswith(day + "/")]
        return sum(v[0] for v in hits), sum(v[1] for v in hits)
    tree = cache.tree(pk.s3_prefix)
    return tree.objects, tree.bytes
