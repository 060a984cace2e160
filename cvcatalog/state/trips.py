"""Trips and kinematic features: lake views over the BSM union (`bsm`) and NGSIM.

For each trajectory relation three views are made from the templates under
`cvcatalog/sql/views/` (`trip_points.sql`, `trip_kinematics.sql`, `trips.sql`):
`<prefix>_points` (every row, with `trip_id`), `<prefix>_kinematics` (each point against its
trip predecessor) and `<prefix>_trips` (one row per trip). A trip is one vehicle id's
continuous stretch: consecutive points more than `trips.max_gap_s` apart start a new one.

The gap is a catalog setting (`catalog_settings`, key `trips.max_gap_s`): the views are SQL
stored in the lake, so the gap is written into their text when they are (re)defined. A write
that asks for another gap (an ingest whose config has `trips.max_gap_s`, `Catalog.set_trip_gap`,
`cvcatalog trips --max-gap-s`) records it, and the changed view text makes `tables.ensure`
define the views again in the same commit.

The views need no extension, so a plain DuckDB session reads them; the trip line is WKT text
(`geometry`), which a session with the spatial extension turns into a GEOMETRY.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import duckdb

from cvcatalog.config import MAX_TRIP_GAP_S
from cvcatalog.exceptions import ConfigError
from cvcatalog.schemas import render_sql
from cvcatalog.sqlutil import load_sql, quote_ident, quote_literal
from cvcatalog.state import settings

#: trips.max_gap_s when the catalog records none
DEFAULT_MAX_GAP_S = 120.0
#: the catalog_settings key
GAP_SETTING = "trips.max_gap_s"


@dataclass(frozen=True)
class TripSource:
    """One relation of trajectory points and how its points are ordered."""

    prefix: str  # views <prefix>_points, <prefix>_kinematics, <prefix>_trips
    relation: str
    time: str
    heading: str | None  # the reported heading in degrees, if the relation has one
    order: tuple[str, ...]  # tie-breakers after the time (deterministic lag and line order)
    source: str | None = None  # the source name, for a relation without a source column

    @property
    def points(self) -> str:
        return f"{self.prefix}_points"

    @property
    def kinematics(self) -> str:
        return f"{self.prefix}_kinematics"

    @property
    def trips(self) -> str:
        return f"{self.prefix}_trips"


#: every BSM source (the `bsm` union view) and the NGSIM trajectories
TRIP_SOURCES = (
    TripSource("bsm", "bsm", "generated_at", "heading_deg", ("source_key", "msg_cnt", "sec_mark")),
    TripSource("ngsim", "ngsim_trajectories", "timestamp", None, ("frame_id",), source="ngsim"),
)


def trip_source(prefix: str) -> TripSource:
    for ts in TRIP_SOURCES:
        if ts.prefix == prefix:
            return ts
    raise KeyError(prefix)


def gap_us(max_gap_s: float) -> int:
    """The gap as whole microseconds: the views compare integers, so a gap exactly at the
    threshold is decided exactly (it does not start a trip)."""
    return round(max_gap_s * 1_000_000)


def view_statements(
    name_of: Callable[[str], str],
    columns: Mapping[str, Sequence[str]],
    max_gap_s: float = DEFAULT_MAX_GAP_S,
) -> dict[str, str]:
    """name -> CREATE OR REPLACE VIEW of every trip view, in dependency order. columns: the
    columns of each relation (the view lists them, so a changed relation changes its text)."""
    out: dict[str, str] = {}
    for ts in TRIP_SOURCES:
        have = list(columns.get(ts.relation, ()))
        if not have:
            continue
        cols = [quote_ident(c) for c in have]
        if ts.source is not None and "source" not in have:
            cols.append(f"{quote_literal(ts.source)} AS source")
        source = "source" if ts.source is None else quote_literal(ts.source)
        order = "".join(f", {quote_ident(c)}" for c in ts.order if c in have)
        time = quote_ident(ts.time)
        out[ts.points] = render_sql(
            load_sql("views", "trip_points.sql"),
            view=name_of(ts.points),
            relation=quote_ident(ts.relation),
            columns=",\n        ".join(cols),
            source=source,
            time=time,
            order=order,
            gap_us=str(gap_us(max_gap_s)),
        )
        out[ts.kinematics] = render_sql(
            load_sql("views", "trip_kinematics.sql"),
            view=name_of(ts.kinematics),
            points=quote_ident(ts.points),
            time=time,
            order=order,
            heading=quote_ident(ts.heading) if ts.heading else "CAST(NULL AS DOUBLE)",
        )
        out[ts.trips] = render_sql(
            load_sql("views", "trips.sql"),
            view=name_of(ts.trips),
            kinematics=quote_ident(ts.kinematics),
            time=time,
            order=order,
        )
    return out


# -- the setting ----------------------------------------------------------------------------
def check_gap(max_gap_s: float) -> float:
    try:
        value = float(max_gap_s)
    except (TypeError, ValueError):
        raise ConfigError(
            f"trips.max_gap_s must be a number of seconds, got {max_gap_s!r}"
        ) from None
    if not value > 0 or value != value or value == float("inf"):
        raise ConfigError(f"trips.max_gap_s must be a positive number of seconds, got {max_gap_s}")
    if value > MAX_TRIP_GAP_S:
        raise ConfigError(
            f"trips.max_gap_s must be at most {MAX_TRIP_GAP_S:g} seconds, got {max_gap_s}"
        )
    return value


def recorded_gap(con: duckdb.DuckDBPyConnection) -> float:
    """trips.max_gap_s as the catalog records it (the default when it records none)."""
    value = settings.get(con, GAP_SETTING)
    return float(value) if value else DEFAULT_MAX_GAP_S


def record_gap(con: duckdb.DuckDBPyConnection, wanted: float | None) -> float:
    """Inside a write transaction: record the wanted gap (None: keep the recorded one);
    returns the gap the views are made with."""
    if wanted is None:
        return recorded_gap(con)
    value = check_gap(wanted)
    settings.put(con, GAP_SETTING, repr(value))
    return value
