"""The row order of the Parquet files cvcatalog writes, so spatial filters skip row groups.

Every writer of a partition's data files (the CV conversion's COPY in `transform.py`, its
rewrites, the `--check-changes` merge in `incremental.py`, compaction in `ops/compact.py`, and
the NGSIM loader in `sources/ngsim.py`) orders rows by the one key defined here:

    (Hilbert cell of the position at level CELL_LEVEL, trajectory id, time)

The cell is DuckDB spatial's `ST_Hilbert` of (longitude, latitude) over the whole world
(16 bits an axis), shifted down to CELL_LEVEL levels: at level 10 a cell is 0.35 deg of
longitude by 0.18 deg of latitude (about 29 x 20 km at 41 N). Rows of one cell sit together,
so a row group's latitude/longitude min/max cover one cell or a few neighbouring ones and a
radius, box or corridor filter (a lat/lon bounding-box prefilter) skips the others; inside a
cell, a vehicle's points are consecutive, so a trajectory query reads one run per cell it
crossed (min/max and the bloom filter DuckDB writes for vehicle_id skip the rest).
`bench/spatial.py` measures this key against pure Hilbert, (vehicle, time) and no order
(results in bench/results/spatial.md, reasons in docs/spatial.md, "Pruning").

Only (source, type)s with positions are ordered (BSM, NGSIM trajectories); others keep the
input order. The order changes no column: files written before it keep their order, and
`cvcatalog compact` rewrites a partition in this order.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from cvcatalog.exceptions import ConfigError
from cvcatalog.io.duckdb_ext import load_extension, open_instance
from cvcatalog.quality.mapping import TrajectoryMapping, mapping_for
from cvcatalog.sqlutil import quote_ident

#: Hilbert levels kept of ST_Hilbert's 16 (bench/results/spatial.md compares 8, 10, 12, 16)
CELL_LEVEL = 10
#: the bounds of ST_Hilbert: the whole world, so a key never depends on the data written
WORLD_BOX = "{'min_x': -180.0, 'min_y': -90.0, 'max_x': 180.0, 'max_y': 90.0}::BOX_2D"


@dataclass(frozen=True)
class RowOrder:
    """Which columns order a table's rows: position, then trajectory id and time."""

    latitude: str
    longitude: str
    id: str | None = None
    time: str | None = None
    level: int = CELL_LEVEL

    def key_sql(self, prefix: str = "") -> str:
        """The ORDER BY items (no keyword); prefix qualifies the columns (e.g. 'r.')."""
        items = [cell_sql(prefix + quote_ident(self.latitude),
                          prefix + quote_ident(self.longitude), self.level)]  # fmt: skip
        items += [prefix + quote_ident(c) for c in (self.id, self.time) if c is not None]
        return ", ".join(items)

    @property
    def columns(self) -> list[str]:
        return [c for c in (self.latitude, self.longitude, self.id, self.time) if c is not None]


def cell_sql(lat: str, lon: str, level: int = CELL_LEVEL) -> str:
    """The Hilbert cell of a position at `level` (1..16) as SQL (spatial must be loaded).
    NULL positions give NULL (sorted last); out-of-range ones a valid edge cell."""
    if not 1 <= level <= 16:
        raise ValueError("level must be 1..16")
    return f"(ST_Hilbert({lon}, {lat}, {WORLD_BOX}) >> {32 - 2 * level})"


#: Sorting holds the rows it orders, so only this much is written in the order, in bounded
#: memory: a CV day of at most SORT_MAX_RAW_BYTES of raw JSON (known before it converts) and a
#: compaction of at most SORT_MAX_ROWS rows. The 2 GB day (970,896 records) sorted peaked at
#: 1.28 GiB RSS, and re-sorted as one run ran out of its 1 GB DuckDB budget; bigger inputs
#: keep arrival order (bench/results/targets-sorted.md, docs/spatial.md#pruning).
SORT_MAX_RAW_BYTES = 256 << 20
SORT_MAX_ROWS = 250_000


def order_for(source: str, message_type: str) -> RowOrder | None:
    """The row order of a (source, type)'s files; None when its rows have no position."""
    try:
        m = mapping_for(source, message_type)
    except ConfigError:  # a type the quality rules do not know: keep the input order
        return None
    if not isinstance(m, TrajectoryMapping) or m.latitude is None or m.longitude is None:
        return None
    return RowOrder(m.latitude, m.longitude, m.id, m.time)


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Make ST_Hilbert available on a connection (spatial, from its pinned package)."""
    loaded = con.execute(
        "SELECT loaded FROM duckdb_extensions() WHERE extension_name = 'spatial'"
    ).fetchone()
    if not (loaded and loaded[0]):
        load_extension(con, "spatial")


def ordered(con: duckdb.DuckDBPyConnection, select: str, order: RowOrder | None) -> str:
    """`select` with its rows in the order (spatial loaded on con), or as is when None."""
    if order is None:
        return select
    prepare(con)
    return f"SELECT * FROM ({select}) AS _o ORDER BY {order.key_sql('_o.')}"


_SORTER: duckdb.DuckDBPyConnection | None = None
_SORTER_LOCK = threading.Lock()


def _sorter() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB for sort_indices (loading spatial takes about a second)."""
    global _SORTER
    with _SORTER_LOCK:
        if _SORTER is None:
            con = open_instance()
            con.execute("SET threads = 1")  # the callers already run in parallel
            prepare(con)
            _SORTER = con
        return _SORTER


def sort_indices(table: pa.Table, order: RowOrder | None) -> np.ndarray | None:
    """Row indices putting an Arrow table in the order (the same key, computed by DuckDB on
    just the key columns), or None when it is in order already or has no order."""
    if order is None or table.num_rows < 2 or not set(order.columns) <= set(table.column_names):
        return None
    keys = table.select(order.columns).append_column(
        "__row", pa.array(np.arange(table.num_rows, dtype=np.int64))
    )
    con = _sorter().cursor()  # cursors share the instance: spatial is loaded once
    try:
        con.register("_keys", keys)
        idx = con.execute(
            f"SELECT __row FROM _keys ORDER BY {order.key_sql()}, __row"
        ).fetchnumpy()["__row"]
    finally:
        con.close()
    idx = np.asarray(idx, dtype=np.int64)
    if (idx[1:] > idx[:-1]).all():
        return None
    return idx
