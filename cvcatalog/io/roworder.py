"""The row order of the Parquet files cvcatalog writes, so spatial filters skip row groups.

Every writer of a partition's data files (the CV conversion's COPY in `transform.py`, its
rewrites, the `--check-changes` merge in `incremental.py`, compaction in `ops/compact.py`, and
the NGSIM loader in `sources/ngsim.py`) orders rows by the one key defined here:

    (Hilbert cell of the position at level CELL_LEVEL, trajectory id, time)

then, for a CV table, the hash of the whole row (so that only identical rows tie: the same
record in two objects tied, and a day converted again was other bytes).

The cell is DuckDB spatial's `ST_Hilbert` of (longitude, latitude) over the whole world
(16 bits an axis), shifted down to CELL_LEVEL levels: at level 10 a cell is 0.35 deg of
longitude by 0.18 deg of latitude (about 29 x 20 km at 41 N). Rows of one cell sit together,
so a row group's latitude/longitude min/max cover one cell or a few neighbouring ones and a
radius, box or corridor filter (a lat/lon bounding-box prefilter) skips the others; inside a
cell, a vehicle's points are consecutive, so a trajectory query reads one run per cell it
crossed (min/max and the bloom filter DuckDB writes for vehicle_id skip the rest).
`bench/spatial.py` measures this key against pure Hilbert, (vehicle, time) and no order
(results in bench/results/spatial.md, reasons in docs/spatial.md, "Pruning").

(source, type)s with positions are ordered so (BSM, NGSIM trajectories). The others (TIM,
SPaT, NYCDOT EVENT) are ordered by record (`record_order`: object, time, index in the record,
then the row's hash), so that converting a day again writes the same bytes. The order changes no
column: files written before it keep their order, and `cvcatalog compact` rewrites a partition
in this order.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from cvcatalog.exceptions import ConfigError
from cvcatalog.io.duckdb_ext import load_extension, open_instance, temporary_setting
from cvcatalog.quality.mapping import TrajectoryMapping, mapping_for
from cvcatalog.schemas import SCHEMAS
from cvcatalog.sqlutil import list_literal, quote_ident, quote_literal

#: Hilbert levels kept of ST_Hilbert's 16 (bench/results/spatial.md compares 8, 10, 12, 16)
CELL_LEVEL = 10
#: the bounds of ST_Hilbert: the whole world, so a key never depends on the data written
WORLD_BOX = "{'min_x': -180.0, 'min_y': -90.0, 'max_x': 180.0, 'max_y': 90.0}::BOX_2D"


@dataclass(frozen=True)
class RowOrder:
    """Which columns order a table's rows: position, then trajectory id and time (a type
    with positions), or the record order of a type without them (`then`), then the hash of
    the `hashed` columns (a CV table's whole row)."""

    latitude: str | None
    longitude: str | None
    id: str | None = None
    time: str | None = None
    level: int = CELL_LEVEL
    #: the zstd level of the table's kept files, all of which are written in this order
    zstd_level: int | None = None
    #: columns after the key, in this order, then the hash of the `hashed` columns: a type
    #: without positions is ordered by its object, time and fan-out index, a CV type with
    #: them by cell, vehicle and time, each then by the hash of the whole row, so that only
    #: identical rows tie and a conversion writes the same bytes whatever DuckDB's threads
    #: did (a hash, not the columns: sorting by every column of a TIM costs a sort key of
    #: every column)
    then: tuple[str, ...] = ()
    hashed: tuple[str, ...] = ()

    @property
    def spatial(self) -> bool:
        """The key starts with the Hilbert cell (DuckDB spatial's ST_Hilbert)."""
        return self.latitude is not None and self.longitude is not None

    def key_sql(self, prefix: str = "") -> str:
        """The ORDER BY items (no keyword); prefix qualifies the columns (e.g. 'r.')."""
        return ", ".join(self.key_items(prefix))

    def key_items(self, prefix: str = "") -> list[str]:
        """The ORDER BY items one by one (key_sql)."""
        items = []
        if self.latitude is not None and self.longitude is not None:
            items.append(cell_sql(prefix + quote_ident(self.latitude),
                                  prefix + quote_ident(self.longitude), self.level))  # fmt: skip
        items += [prefix + quote_ident(c) for c in (self.id, self.time) if c is not None]
        items += [prefix + quote_ident(c) for c in self.then]
        if self.hashed:  # those of the relation's columns it has (files of an older
            # canonical version may lack one), in its order; never the prefix's: a COLUMNS
            # lambda picks from every relation of the FROM (callers order one relation)
            items.append(f"hash(*COLUMNS(c -> list_contains({list_literal(self.hashed)}, c)))")
        return items

    @property
    def columns(self) -> list[str]:
        head = (self.latitude, self.longitude, self.id, self.time)
        named = [c for c in head if c is not None] + list(self.then)
        return named + [c for c in self.hashed if c not in named]


def cell_sql(lat: str, lon: str, level: int = CELL_LEVEL) -> str:
    """The Hilbert cell of a position at `level` (1..16) as SQL (spatial must be loaded).
    NULL positions give NULL (sorted last); out-of-range ones a valid edge cell."""
    if not 1 <= level <= 16:
        raise ValueError("level must be 1..16")
    return f"(ST_Hilbert({lon}, {lat}, {WORLD_BOX}) >> {32 - 2 * level})"


#: Row groups a partition's files hold at default settings: a spatial filter reads about
#: 2-3 of them (the row groups of the cells it touches), so a day prunes whatever its size only
#: if it has many. Each write chooses its row-group size from its row count (row_group_rows):
#: rows / GROUPS_PER_PARTITION, at least MIN_GROUP_ROWS (a footer and per-group overhead for
#: fewer rows) and at most the configured memory.row_group_size.
GROUPS_PER_PARTITION = 16
MIN_GROUP_ROWS = 4096
#: A sort holds the rows it orders: more rows than this are ordered in runs of at most this
#: many (write_ordered: ranges of the key, each sorted on its own into its own files), so the
#: memory of the sort is bounded by a run, not by the day. The 2 GB day (970,896 records)
#: sorted as one run ran out of its 0.65 GB DuckDB limit (with 1 thread too); runs of 100,000
#: rows peaked at ~0.8 GiB RSS, of 200,000 at ~0.9 GiB (bench/results/targets-bigday-sorted.md,
#: docs/spatial.md#pruning).
SORT_RUN_ROWS = 100_000
#: ...but up to this many rows are still one sorting COPY: ranking and splitting read the rows
#: three times, and below this a whole sort stays far inside the 1 GiB a day may use (a
#: 137,000-row day: one COPY 1.0 CPU-s less than runs, bench/results/targets.md); a
#: conversion whose input holds at most this many rows sorts them in its one pass from the JSON
#: (transform: 285,744 BSM rows took 1.38 s and peaked at 783 MB RSS that way, 2.05 s and
#: 1,262 MB staged in arrival order, then sorted)
SORT_ONE_COPY_ROWS = 300_000
#: ...and rows are counted by their bytes too: a sort and a row group hold whole rows, and a
#: row of NYCDOT EVENT (~240 KB of lists of messages) weighs what ~280 BSM rows do (~850 bytes
#: in Parquet, uncompressed). A one-copy sort holds at most SORT_ONE_COPY_SHARE of DuckDB's
#: memory limit, a run SORT_RUN_SHARE (a BSM run of 100,000 rows is ~85 MB, an eighth of the
#: 0.65 GB limit of a 1 GiB budget), a row group ROW_GROUP_BYTES and a run's buffer in the
#: split SPLIT_FLUSH_BYTES. A 378 MB EVENT bin sorted in one COPY ran out of a 0.65 GB limit
#: (whatever the threads), and a row group of 4,096 such rows is 1 GB.
SORT_ONE_COPY_SHARE = 0.25
SORT_RUN_SHARE = 0.125
ROW_GROUP_BYTES = 64 * 1024**2
SPLIT_FLUSH_BYTES = 32 * 1024**2
#: The sorts count bytes only for rows this wide (NYCDOT EVENT; BSM, TIM and SPaT rows are 1-3
#: KB of JSON and under 1 KB in Parquet): a JSON line's bytes overstate a narrow row's
#: memory, and counted so, a 96,600-row BSM day under a 1 GiB budget was sorted in runs,
#: 2.3 s against 1.0 in one COPY, for no less memory (0.46 against 0.48 GB peak RSS).
WIDE_ROW_BYTES = 64 * 1024


def wide(row_bytes: float | None) -> bool:
    """Rows of WIDE_ROW_BYTES or more (row_bytes: None when not known)."""
    return row_bytes is not None and row_bytes >= WIDE_ROW_BYTES


def row_group_rows(rows: int | None, cap: int, row_bytes: float | None = None) -> int:
    """The row-group size of a write of `rows` rows (None: unknown, then cap): about
    GROUPS_PER_PARTITION groups (a few more, never fewer), at least MIN_GROUP_ROWS rows
    each, at most cap, and for wide rows (row_bytes each) at most ROW_GROUP_BYTES."""
    if row_bytes is not None and wide(row_bytes):  # (at most 1,024 rows: under a vector)
        cap = min(cap, max(1, int(ROW_GROUP_BYTES // row_bytes)))
    if rows is None:
        return max(1, cap)
    # a multiple of DuckDB's 2,048-row vectors, rounded down (its writer rounds sizes up)
    want = max(MIN_GROUP_ROWS, rows // GROUPS_PER_PARTITION // 2048 * 2048)
    return max(1, min(cap, want))


#: The codec of the files a catalog keeps: zstd, but lz4 for a file of fewer than
#: SMALL_FILE_ROWS rows. zstd sets up its compressor for every column chunk, about 2 ms a file
#: of the BSM schema, whatever its size: a 75-row file took 5.9 ms in zstd and 3.9 in lz4, 23
#: and 28 KB (2,000 rows: 12.3 vs 8.7 ms, 233 vs 342 KB). A catalog of many tiny days (sparse
#: types, one-object days) writes a file a day, so the fixed cost is most of its write time;
#: the bytes lz4 adds are a few KB a file (bench/README.md, "Tiny days").
KEPT_CODEC = "zstd"
SMALL_FILE_CODEC = "lz4"
SMALL_FILE_ROWS = 1000
#: zstd levels other than DuckDB's default (3), by (source, type), where they measured better.
#: WYDOT BSM at level 1: the same bytes (a day of 142,872 rows: 15.99 MB vs 16.03 at 3) for
#: 10 % less CPU in its write (the 7-day ingest: 11.1 vs 11.6 s, 4 interleaved runs each).
#: Not for the rest: level 1 made THEA TIM 52 % larger, THEA SPAT 26 %, THEA BSM 4 %
#: (bench/README.md, "The kept files' zstd level").
ZSTD_LEVELS = {("wydot", "BSM"): 1, ("wydot_backup", "BSM"): 1}


def kept_codec(rows: int | None) -> str:
    """The codec of a kept file of `rows` rows (None: not known, zstd)."""
    return SMALL_FILE_CODEC if rows is not None and rows < SMALL_FILE_ROWS else KEPT_CODEC


def copy_options(
    rows: int | None,
    row_group_size: int,
    rows_per_file: int | None = None,
    *extra: str,
    compression: str | None = None,
    zstd_level: int | None = None,
    row_bytes: float | None = None,
) -> str:
    """The options of every COPY that writes a partition's Parquet (conversion and its
    rewrites, the --check-changes merge, compaction): the codec (kept_codec of `rows`, unless
    given; zstd at zstd_level, DuckDB's default when None), the row-group size for `rows` rows
    of row_bytes each (row_group_rows), files of about rows_per_file rows, then extra."""
    group = row_group_rows(rows, row_group_size, row_bytes)
    codec = compression or kept_codec(rows)
    opts = ["FORMAT parquet", f"COMPRESSION {codec}", f"ROW_GROUP_SIZE {group}"]
    if codec == "zstd" and zstd_level is not None:
        opts.append(f"COMPRESSION_LEVEL {int(zstd_level)}")
    if rows_per_file is not None:
        opts.append(f"ROW_GROUPS_PER_FILE {max(1, -(-rows_per_file // group))}")
    return ", ".join([*opts, *extra])


def order_for(source: str, message_type: str) -> RowOrder | None:
    """The row order of a (source, type)'s files: by position (a type with positions), else
    by record (record_order); None for a type neither the quality rules nor the schemas
    know (its input order is kept)."""
    try:
        m = mapping_for(source, message_type)
    except ConfigError:  # a type the quality rules do not know
        return record_order(source, message_type)
    if not isinstance(m, TrajectoryMapping) or m.latitude is None or m.longitude is None:
        return record_order(source, message_type)
    # a CV table's key ends with the hash of the whole row: rows that differ only in their
    # object (the same record in two objects) tied on (cell, vehicle, time), and a day
    # converted again was other bytes (a replica day of BSM doubled: 3 SHA-256s in 3
    # conversions on 2 threads); ~2-4 % of a BSM conversion's wall time
    schema = SCHEMAS.get((source, message_type))
    return RowOrder(
        m.latitude,
        m.longitude,
        m.id,
        m.time,
        zstd_level=ZSTD_LEVELS.get((source, message_type)),
        hashed=tuple(schema.column_names) if schema is not None else (),
    )


#: the column numbering the rows one record fans out into, by type (transform.FANOUT_COLUMN
#: for TIM frames; a SPaT's intersections)
_FANOUT = ("frame_index", "intersection_index")


def record_order(source: str, message_type: str) -> RowOrder | None:
    """The order of a type without positions: its object (source_key), its time, the row's
    index within its record, then the hash of all its columns. Rows come out of DuckDB's parallel
    JSON read joined to their objects in an order that differs between runs (three SHA-256s
    of the same 48 TIM objects in three conversions on 2 threads); sorted, a day converted
    again is the same bytes, which `cache verify --repair` relies on."""
    schema = SCHEMAS.get((source, message_type))
    if schema is None:
        return None
    names = list(schema.column_names)
    wanted = ["source_key", schema.time_column, *(c for c in _FANOUT if c in names)]
    head = [c for c in wanted if c is not None and c in names]
    return RowOrder(None, None, then=tuple(head), hashed=tuple(names))


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
    if order.spatial:
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


def memory_limit(con: duckdb.DuckDBPyConnection) -> int | None:
    """DuckDB's memory limit on con in bytes (None: not readable)."""
    row = con.execute("SELECT current_setting('memory_limit')").fetchone()
    number, _, unit = str(row[0] if row else "").partition(" ")
    scale = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50}
    try:
        return int(float(number) * scale[unit])
    except (KeyError, ValueError):
        return None


def parquet_row_bytes(con: duckdb.DuckDBPyConnection, files: Sequence[str]) -> float | None:
    """The uncompressed bytes of a row of Parquet files (their footers' sizes), None if empty."""
    if not files:
        return None
    # one read of the footers: a row group's rows counted once, on its first column's chunk
    row = con.execute(
        "SELECT sum(total_uncompressed_size) / nullif(sum(row_group_num_rows) "
        "FILTER (WHERE column_id = 0), 0) FROM parquet_metadata($f)",
        {"f": list(files)},
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def sort_rows(limit: int | None, row_bytes: float | None, share: float) -> int | None:
    """The rows of row_bytes each that `share` of a memory limit (memory_limit) holds (None:
    unbounded or unknown)."""
    if row_bytes is None or row_bytes <= 0 or limit is None:
        return None
    return max(1, int(limit * share // row_bytes))


def write_ordered(
    con: duckdb.DuckDBPyConnection,
    source: str | Sequence[str],
    stage: Path,
    order: RowOrder | None,
    *,
    rows: int | None,
    row_group_size: int,
    rows_per_file: int,
    extra: Sequence[str] = (),
    run_rows: int | None = None,
    params: dict[str, object] | None = None,
    row_bytes: float | None = None,
) -> list[tuple[Any, ...]]:
    """COPY rows into Parquet files in the directory `stage`, in the order, with the options
    of copy_options for `rows` rows; returns the COPY's rows (RETURN_STATS in extra: one per
    file). source: a SELECT, or Parquet files (paths or lake locations). The files' names
    sort in the order.

    Up to run_rows rows (or no order) are one COPY, sorted by DuckDB. More are sorted in runs,
    so memory is bounded by a run (DuckDB's sort of a whole 2 GB day does not stay within its
    memory limit): the key columns alone are ranked (a sort of a few small columns, about 40
    bytes a row), the rows split by rank range into runs of at most run_rows (one streaming
    pass into a work directory beside stage; a SELECT is first written out as it comes), and
    each run sorted on its own into its own files. run_rows: SORT_RUN_ROWS unless given (read
    at the call: tests lower it)."""
    level = order.zstd_level if order is not None else None
    if row_bytes is None and not isinstance(source, str):
        row_bytes = parquet_row_bytes(con, source)
    one_copy = SORT_ONE_COPY_ROWS if run_rows is None else max(1, run_rows)
    run_rows = SORT_RUN_ROWS if run_rows is None else max(1, run_rows)
    if order is not None and wide(row_bytes):  # rows of many bytes: fewer a sort
        limit = memory_limit(con)
        one_copy = min(one_copy, sort_rows(limit, row_bytes, SORT_ONE_COPY_SHARE) or one_copy)
        run_rows = min(run_rows, sort_rows(limit, row_bytes, SORT_RUN_SHARE) or run_rows)
    if order is None or (rows is not None and rows <= one_copy):
        select = source if isinstance(source, str) else _scan(source)
        opts = copy_options(
            rows, row_group_size, rows_per_file, *extra, zstd_level=level, row_bytes=row_bytes
        )
        return con.execute(
            f"COPY ({ordered(con, select, order)}) TO {quote_literal(str(stage))} ({opts})",
            params or {},
        ).fetchall()
    if order.spatial:
        prepare(con)
    work = stage.with_name(stage.name + ".runs")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        files = (
            list(source)
            if not isinstance(source, str)
            else _spill(con, source, work, params, row_bytes)
        )
        # one thread: every thread holds its own sort and split buffers (the 2 GB day peaked at
        # 0.66 GiB RSS with one, 0.79 with two; and one used less CPU on 2 busy cores)
        with temporary_setting(con, "threads", 1):
            return _write_in_runs(
                con, files, stage, work, order, row_group_size, rows_per_file, extra, run_rows,
                row_bytes,
            )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


#: files written once and read once before the row order rewrites them (a sort's runs, a
#: conversion's staged rows): a fast codec (zstd costs ~25 % more CPU to write them)
INTERMEDIATE_CODEC = "snappy"
#: rows of one run the split holds before writing them out
_SPLIT_FLUSH = 32_768
#: the row groups of those files
_INTERMEDIATE_GROUP = 16_384


def _scan(files: Sequence[str], extra: str = "") -> str:
    return (
        f"SELECT * FROM read_parquet({list_literal(files)}, hive_partitioning = false, "
        f"union_by_name = true{extra})"
    )


def _spill(
    con: duckdb.DuckDBPyConnection,
    select: str,
    work: Path,
    params: dict[str, object] | None,
    row_bytes: float | None,
) -> list[str]:
    """The rows of a SELECT as Parquet files in arrival order (streamed: bounded memory)."""
    target = work / "input.parquet"
    group = row_group_rows(None, _INTERMEDIATE_GROUP, row_bytes)
    con.execute(
        f"COPY ({select}) TO {quote_literal(str(target))} "
        f"(FORMAT parquet, COMPRESSION {INTERMEDIATE_CODEC}, ROW_GROUP_SIZE {group})",
        params or {},
    )
    return [str(target)]


def _write_in_runs(
    con: duckdb.DuckDBPyConnection,
    files: list[str],
    stage: Path,
    work: Path,
    order: RowOrder,
    row_group_size: int,
    rows_per_file: int,
    extra: Sequence[str],
    run_rows: int,
    row_bytes: float | None,
) -> list[tuple[Any, ...]]:
    src = list_literal(files)
    scan = f"read_parquet({src}, hive_partitioning = false, union_by_name = true, "
    ranks = quote_ident(f"_cvcatalog_rank_{uuid.uuid4().hex}")
    try:
        # 1. the rank of every row, from the key alone (file index, row in file): computed
        # first, so the window holds the key's values and not the columns they come from
        # (hash of a whole NYCDOT EVENT row: a window over the columns ran out of memory)
        items = order.key_items()
        keys = ", ".join(f"{e} AS __k{i}" for i, e in enumerate(items))
        by = ", ".join(f"__k{i}" for i in range(len(items)))
        con.execute(
            f"CREATE TEMP TABLE {ranks} AS SELECT __f, __r, row_number() OVER (ORDER BY {by}) "
            f"- 1 AS __rank FROM (SELECT file_index::INTEGER AS __f, file_row_number AS __r, "
            f"{keys} FROM {scan}file_row_number = true))"
        )
        (total,) = con.execute(f"SELECT count(*) FROM {ranks}").fetchone() or (0,)
        total = int(total)
        runs = max(1, -(-total // run_rows))
        per_run = max(1, -(-total // runs))
        # 2. the rows split into runs of consecutive ranks (one streaming pass; a partition's
        # rows flushed every _SPLIT_FLUSH rows (or SPLIT_FLUSH_BYTES), not DuckDB's default
        # 524,288: bounded memory)
        split = work / "split"
        flush = _SPLIT_FLUSH
        if row_bytes is not None and row_bytes > 0:
            flush = max(1, min(flush, int(SPLIT_FLUSH_BYTES // row_bytes)))
        with temporary_setting(con, "partitioned_write_flush_threshold", flush):
            con.execute(
                f"COPY (SELECT s.* EXCLUDE (file_row_number), k.__rank, "
                f"k.__rank // {per_run} AS __run FROM {scan}file_row_number = true) AS s "
                f"JOIN {ranks} AS k ON k.__f = s.file_index AND k.__r = s.file_row_number) "
                f"TO {quote_literal(str(split))} (FORMAT parquet, COMPRESSION {INTERMEDIATE_CODEC}, "
                f"ROW_GROUP_SIZE {row_group_rows(None, _INTERMEDIATE_GROUP, row_bytes)}, "
                "PARTITION_BY (__run))"
            )
        con.execute(f"DROP TABLE {ranks}")
        # 3. each run sorted on its own (memory holds one run) into its own final files,
        # named so that the runs' files sort in the order
        stage.mkdir(parents=True, exist_ok=True)
        opts = copy_options(
            total, row_group_size, rows_per_file, *extra, zstd_level=order.zstd_level,
            row_bytes=row_bytes,
        )  # fmt: skip
        out: list[tuple[Any, ...]] = []
        for i in range(runs):
            part = split / f"__run={i}"
            if not part.exists():
                continue
            target = work / f"run-{i:05d}"
            written = con.execute(
                f"COPY (SELECT * EXCLUDE (__rank) FROM read_parquet("
                f"{quote_literal(str(part / '*.parquet'))}, hive_partitioning = false) "
                f"ORDER BY __rank) TO {quote_literal(str(target))} ({opts})"
            ).fetchall()
            shutil.rmtree(part)
            out += _renamed(written, target, stage, f"data_{i:05d}_")
        return out
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute(f"DROP TABLE IF EXISTS {ranks}")


def _renamed(
    written: list[tuple[Any, ...]], target: Path, stage: Path, prefix: str
) -> list[tuple[Any, ...]]:
    """A run's files (DuckDB's data_<n>.parquet in target) moved into stage as
    <prefix><n:05d>.parquet, and the COPY's rows (RETURN_STATS: the file first) renamed too."""
    moved: dict[str, str] = {}
    for p in target.glob("*.parquet"):
        new = stage / f"{prefix}{int(p.stem.rsplit('_', 1)[-1]):05d}.parquet"
        os.replace(p, new)
        moved[str(p)] = str(new)
    shutil.rmtree(target, ignore_errors=True)
    if written and len(written[0]) > 1:  # RETURN_STATS: one row a file
        return [(moved.get(str(Path(r[0])), r[0]), *r[1:]) for r in written]
    return written
