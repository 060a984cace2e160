"""Train / validation / test splits without leakage: whole vehicles (or whole trips) per split.

A split is planned from group sizes (rows per vehicle id, or per trip, in the requested window),
counted once with SQL over the lake; the frames themselves stay lazy Dask frames that read only
their groups' rows. Groups are put in a seeded order (SHA-256 of the seed and the group key, so
the order is the same in every process and Python version) and each goes to the split furthest
below its target row count: no group is ever in two splits, the same seed gives the same split,
and the row fractions end within about one group's size of the targets.

by="vehicle": a group is a vehicle id of the source. J2735 temporary ids rotate (every ~5 min,
and on every restart), so one physical vehicle can still appear in two splits under different
ids; nothing in the published records links the ids. by="trip": a group is a trip of the
`bsm_trips` / `ngsim_trips` views (one id's continuous stretch, `trips.max_gap_s`); a vehicle id
can then be in several splits, each trip in one. Rows without a vehicle id (or a time, by trip)
belong to no group and to no split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np

from cvcatalog import spatial
from cvcatalog.config import check_day_order, type_of
from cvcatalog.datasets import DATASETS, source_filter
from cvcatalog.exceptions import CatalogError, ConfigError
from cvcatalog.schemas import SCHEMAS
from cvcatalog.sources.bucket import VALID_TYPES, utc_window
from cvcatalog.sqlutil import quote_ident
from cvcatalog.state.trips import trip_source

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

SPLIT_NAMES = ("train", "validation", "test")
By = Literal["vehicle", "trip"]
#: canonical name -> its name in a socrata frame (BSM: both sources name them alike)
SOCRATA_NAMES = {"vehicle_id": "coreData_id", "generated_at": "metadata_generatedAt"}


class Splits(NamedTuple):
    """The three lazy frames of a split (unpack: `train, validation, test = cat.split(...)`)."""

    train: dd.DataFrame
    validation: dd.DataFrame
    test: dd.DataFrame


@dataclass(frozen=True)
class SplitPlan:
    """Which split each group went to, and the rows each split holds."""

    by: By
    seed: int
    fractions: tuple[float, float, float]
    assignment: dict[str, int]  # group key -> index into SPLIT_NAMES
    rows: tuple[int, int, int]

    @property
    def achieved(self) -> tuple[float, ...]:
        total = sum(self.rows)
        return tuple(r / total if total else 0.0 for r in self.rows)

    def keys(self, split: int) -> list[str]:
        return sorted(k for k, s in self.assignment.items() if s == split)


@dataclass(frozen=True)
class Relation:
    """Where a (source, type)'s rows are in the lake, for counting its groups."""

    table: str
    time: str | None
    source: str  # the value of the points views' `source` column
    trips: str | None  # the trip points view of its rows, None if it has no trips
    message_type: str

    @property
    def what(self) -> str:
        """source/type, as every command names a slice ("wydot/BSM", "ngsim/TRAJECTORY")."""
        return f"{self.source}/{self.message_type}"


def check_fractions(fractions: Sequence[float] | str) -> tuple[float, float, float]:
    """Three fractions (train, validation, test), or one str of them ('0.8,0.1,0.1', as the
    CLI's --fractions takes them)."""
    items: Any = fractions.split(",") if isinstance(fractions, str) else fractions
    try:
        values = tuple(float(f) for f in items)
    except (TypeError, ValueError):
        raise ConfigError(
            f"split fractions are three numbers (train, validation, test), got {fractions!r}"
        ) from None
    if len(values) != 3:
        raise ConfigError(
            f"split fractions are three numbers (train, validation, test), got {list(items)}"
        )
    if any(not f >= 0 for f in values) or abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(f"split fractions must be >= 0 and add up to 1, got {list(values)}")
    return values[0], values[1], values[2]


def split_index(name: str) -> int:
    try:
        return SPLIT_NAMES.index(name)
    except ValueError:
        raise ConfigError(f"unknown split {name!r}; one of {', '.join(SPLIT_NAMES)}") from None


def _rank(seed: int, key: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{key}".encode()).digest()


def assign(sizes: dict[str, int], fractions: Sequence[float], seed: int = 0) -> dict[str, int]:
    """Group key -> split index: groups in seeded order, each to the split furthest below its
    target rows (ties: the earlier split). Deterministic for (sizes, fractions, seed)."""
    fr = check_fractions(fractions)
    total = sum(sizes.values())
    target = [f * total for f in fr]
    have = [0, 0, 0]
    out: dict[str, int] = {}
    for key in sorted(sizes, key=lambda k: _rank(seed, k)):
        i = max((j for j in range(3) if fr[j] > 0), key=lambda j: target[j] - have[j])
        out[key] = i
        have[i] += sizes[key]
    return out


def relation(source: str, message_type: str | None) -> Relation:
    """The lake table and time column of a (source, type), and its trip points view."""
    source_filter(source, message_type, required=True)
    src = source.strip().lower()
    ds = DATASETS.get(src)
    if ds is not None:
        ngsim = trip_source("ngsim") if ds.view_name == "ngsim_trajectories" else None
        points = ngsim.points if ngsim else None
        return Relation(ds.view_name, "timestamp", ds.name, points, ds.message_type)
    if message_type is None:  # the source's one type with vehicle ids (BSM), as `report
        # coverage` takes its one type with positions (`split --source thea` asked for a type)
        splittable = [t for t in VALID_TYPES[src] if _has_vehicle_ids(src, t)]
        message_type = splittable[0] if len(splittable) == 1 else type_of(src, None)
    schema = SCHEMAS.get((src, message_type.strip().upper()))
    if schema is None:
        raise ConfigError(f"unknown source and type {source!r} {message_type!r}")
    names = {n for n, _ in schema.view_columns}
    if "vehicle_id" not in names:
        raise ConfigError(f"{schema.view_name} has no vehicle_id: it cannot be split by vehicle")
    points = trip_source("bsm").points if schema.message_type == "BSM" else None
    return Relation(schema.view_name, schema.time_column, src, points, schema.message_type)


def _has_vehicle_ids(source: str, message_type: str) -> bool:
    schema = SCHEMAS.get((source, message_type))
    return schema is not None and any(n == "vehicle_id" for n, _ in schema.view_columns)


def group_sizes_sql(
    rel: Relation,
    by: By,
    window: tuple[datetime, datetime] | None,
    locations: Sequence[str] | None = None,
    area: spatial.SpatialFilter | None = None,
) -> tuple[str, list[Any]]:
    """SQL (and its parameters) counting the rows of each group in the window: key, rows,
    vehicle id, and first: the time of the group's first row in the window (by vehicle, where
    the id's rows in the window begin; by trip, where the trip's do). A source without a time
    column has no first (a NULL timestamp, NaT in pandas). locations: only the rows of these
    sites (a dataset's `location` partitions, as to_dask(location=...) reads them); area: only
    the rows inside it (as to_dask(within=/bbox=/corridor=) keeps them), so the fractions are
    met by the rows the frames hold."""
    params: list[Any] = []
    where = ["vehicle_id IS NOT NULL"]
    if by == "trip":
        if rel.trips is None or rel.time is None:
            raise ConfigError(f"{rel.table} has no trips: split it by='vehicle'")
        relation_name = quote_ident(rel.trips)
        where = ["trip_id IS NOT NULL", "source = ?"]
        params.append(rel.source)
    else:
        relation_name = quote_ident(rel.table)
    in_window, window_params = _window_where(rel, window, locations, area)
    where += in_window
    params += window_params
    first = f"min({quote_ident(rel.time)})" if rel.time is not None else "NULL::TIMESTAMPTZ"
    if by == "trip":
        select = (
            f"SELECT trip_id AS key, count(*) AS n, any_value(vehicle_id) AS vehicle_id, "
            f"{first} AS first"
        )
        group = "trip_id"
    else:
        select = f"SELECT vehicle_id AS key, count(*) AS n, vehicle_id, {first} AS first"
        group = "vehicle_id"
    sql = f"{select} FROM {relation_name} WHERE {' AND '.join(where)} GROUP BY {group}"
    return sql, params


def window_rows_sql(
    rel: Relation,
    window: tuple[datetime, datetime] | None,
    locations: Sequence[str] | None = None,
    area: spatial.SpatialFilter | None = None,
) -> tuple[str, list[Any]]:
    """SQL (and its parameters) counting every row of the window (of those sites, inside the
    area), with a vehicle id or not."""
    where, params = _window_where(rel, window, locations, area)
    sql = f"SELECT count(*) AS n FROM {quote_ident(rel.table)}"
    return (f"{sql} WHERE {' AND '.join(where)}" if where else sql), params


def _window_where(
    rel: Relation,
    window: tuple[datetime, datetime] | None,
    locations: Sequence[str] | None = None,
    area: spatial.SpatialFilter | None = None,
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if window is not None and rel.time is not None:
        t = quote_ident(rel.time)
        where.append(f"{t} >= ? AND {t} < ?")
        params += [window[0], window[1]]
    if locations is not None:
        where.append(f"location IN ({', '.join('?' for _ in locations)})")
        params += list(locations)
    if area is not None:
        inside, values = spatial.predicate_sql(area, spatial.LAT, spatial.LON)
        where.append(inside)
        params += values
    return where, params


def nothing_to_split(
    rel: Relation,
    days: tuple[date | None, date | None],
    timezone: str,
    rows: int,
    snapshot: int | None = None,
    locations: Sequence[str] | None = None,
    area: spatial.SpatialFilter | None = None,
) -> CatalogError:
    """The one line for a window with no group to split, worded as `report coverage` words
    an empty range: rows: the window's rows (with a vehicle id or not)."""
    what = rel.what + (f" ({', '.join(locations)})" if locations else "")
    where = (
        f"between {days[0]} and {days[1]} ({timezone})"
        if days[0] is not None and days[1] is not None
        else "in the catalog"
    )
    if area is not None:  # "within 10 m of (0, 0)", "inside the bbox lat [...] lon [...]"
        described = spatial.describe(area)
        where += f" {described}" if isinstance(area, spatial.Within) else f" inside the {described}"
    if snapshot is not None:
        where += f" at snapshot {snapshot}"
    if rows == 0:
        return CatalogError(f"no {what} rows {where}; nothing to split")
    return CatalogError(
        f"none of the {rows:,} {what} rows {where} has a vehicle id; nothing to split"
    )


def window_of(
    start: date | None, end: date | None, timezone: str
) -> tuple[datetime, datetime] | None:
    """The UTC window to_dask cuts rows to (both days given), or None (every partition)."""
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise ConfigError("a split needs both start and end, or neither (every partition)")
    check_day_order(start, end)
    return utc_window(start, end, timezone)


def plan(groups: pd.DataFrame, by: By, fractions: Sequence[float], seed: int) -> SplitPlan:
    """A plan from the group sizes (key, n)."""
    sizes = {str(k): int(n) for k, n in zip(groups["key"], groups["n"], strict=True)}
    assignment = assign(sizes, fractions, seed)
    rows = [0, 0, 0]
    for k, i in assignment.items():
        rows[i] += sizes[k]
    return SplitPlan(by, seed, check_fractions(fractions), assignment, (rows[0], rows[1], rows[2]))


def split_frames(
    read: Callable[..., dd.DataFrame],
    groups: pd.DataFrame,
    the_plan: SplitPlan,
    *,
    time_column: str | None,
    filters: Sequence[tuple[str, str, Any]] | None = None,
    columns: Sequence[str] | None = None,
    naming: str = "canonical",
    **options: Any,
) -> Splits:
    """The three lazy frames: read(filters=..., columns=..., naming=..., **options) is the
    catalog's to_dask for the (source, type, window); each split reads only the rows of its
    vehicles (a pyarrow filter on vehicle_id pushed into the Parquet reads), and by trip keeps
    the rows whose trip, found by (vehicle id, time), is in the split."""
    import pandas as pd  # ~0.15 s to import: paid by splits, not by every command's start

    frames = []
    for i in range(3):
        if the_plan.by == "vehicle":
            vehicles = the_plan.keys(i)
        else:
            in_split = groups["key"].astype(str).map(the_plan.assignment) == i
            vehicles = sorted(set(groups.loc[in_split, "vehicle_id"].astype(str)))
        if not vehicles:  # an empty split (fraction 0): no rows, the same columns
            frames.append(_empty(read(filters=filters, columns=columns, naming=naming, **options)))
            continue
        wanted = [*(filters or []), ("vehicle_id", "in", vehicles)]
        if the_plan.by == "vehicle":
            frames.append(read(filters=wanted, columns=columns, naming=naming, **options))
            continue
        assert time_column is not None
        vcol, tcol = "vehicle_id", time_column
        if naming == "socrata":
            vcol, tcol = SOCRATA_NAMES["vehicle_id"], SOCRATA_NAMES.get(tcol, tcol)
        cols = list(columns) if columns is not None else None
        extra = [c for c in (vcol, tcol) if cols is not None and c not in cols]
        if cols is not None:
            cols += extra
        frame = read(filters=wanted, columns=cols, naming=naming, **options)
        missing = [c for c in (vcol, tcol) if c not in frame.columns]
        if missing:
            raise ConfigError(f"a split by trip needs the column(s) {', '.join(missing)}")
        lookup = pd.DataFrame(
            {
                "_v": groups["vehicle_id"].astype(str).to_numpy(),
                "_first": pd.to_datetime(groups["first"], utc=True),
                "_split": groups["key"].astype(str).map(the_plan.assignment).to_numpy(),
            }
        ).sort_values("_first", kind="stable")
        meta = frame._meta.drop(columns=extra)
        frames.append(
            frame.map_partitions(
                keep_trips, lookup, i, vcol, tcol, extra, meta=meta, enforce_metadata=False
            )
        )
    return Splits(*frames)


def _empty(frame: dd.DataFrame) -> dd.DataFrame:
    import dask.dataframe as dd

    return dd.from_pandas(frame._meta, npartitions=1)


def keep_trips(
    df: pd.DataFrame, lookup: pd.DataFrame, split: int, vcol: str, tcol: str, drop: list[str]
) -> pd.DataFrame:
    """The rows of df whose trip is in `split`: the trip of a row is the latest trip of its
    vehicle id that begins at or before the row's time (trips of one id never overlap)."""
    import pandas as pd  # as in split_frames

    if df.empty:
        return df.drop(columns=drop)
    times = pd.to_datetime(df[tcol], utc=True)
    left = pd.DataFrame(
        {"_v": df[vcol].astype(str).to_numpy(), "_t": times.to_numpy(), "_i": np.arange(len(df))}
    )
    left["_t"] = pd.to_datetime(left["_t"], utc=True)
    right = lookup.assign(_first=lookup["_first"].astype(left["_t"].dtype))
    left = left.dropna(subset=["_t"]).sort_values("_t", kind="stable")
    matched = pd.merge_asof(
        left, right, left_on="_t", right_on="_first", left_by="_v", right_by="_v",
        direction="backward",
    )  # fmt: skip
    keep = np.zeros(len(df), dtype=bool)
    keep[matched["_i"].to_numpy()] = (matched["_split"] == split).to_numpy()
    return df.loc[keep].drop(columns=drop)
