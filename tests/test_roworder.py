"""The row order of written files (cvcatalog.io.roworder): (Hilbert cell, vehicle, time)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections import Counter
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cvcatalog.config import ValidationConfig
from cvcatalog.io import roworder
from cvcatalog.io.duckdb_ext import temporary_setting
from cvcatalog.sandbox.replica import iter_replica
from cvcatalog.sandbox.replica_blocks import ReplicaSpec
from cvcatalog.schemas import SCHEMAS
from cvcatalog.transform import (
    RawFile,
    combine_results,
    convert_partition,
    convert_partitions,
    order_partition,
)

BSM = SCHEMAS[("wydot", "BSM")]
ORDER = roworder.order_for("wydot", "BSM")


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> list[RawFile]:
    """One replica day of WYDOT BSM (an I-80 fleet) as local objects."""
    root = tmp_path_factory.mktemp("raw")
    spec = ReplicaSpec(start=date(2021, 4, 1), end=date(2021, 4, 1), records_per_hour=300,
                       files_per_hour=2, vehicles=8, empty_hour_rate=0.0)  # fmt: skip
    out = []
    for i, obj in enumerate(iter_replica(spec)):
        p = root / f"object-{i:04d}"
        p.write_bytes(obj.body)
        out.append(RawFile(p, obj.key))
    return out


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute("SET preserve_insertion_order = false")  # as the ingest's connections
    roworder.prepare(c)
    return c


def keys(con: duckdb.DuckDBPyConnection, files: list[Path]) -> list[tuple[object, ...]]:
    """The order key of every row, in file order then row order."""
    assert ORDER is not None
    src = ", ".join(f"'{p}'" for p in files)
    return con.execute(
        f"SELECT {ORDER.key_sql()} FROM read_parquet([{src}], file_row_number = true, "
        "filename = true) ORDER BY filename, file_row_number"
    ).fetchall()


def in_order(rows: list[tuple[object, ...]]) -> bool:
    def k(r: tuple[object, ...]) -> tuple[object, ...]:
        return tuple((v is None, v) for v in r)

    return all(k(a) <= k(b) for a, b in itertools.pairwise(rows))


def test_positions_order_by_cell_and_the_others_by_record() -> None:
    assert ORDER is not None and ORDER.columns[:2] == ["latitude", "longitude"]
    assert ORDER.id == "vehicle_id" and ORDER.time == "generated_at" and ORDER.spatial
    assert roworder.order_for("ngsim", "TRAJECTORY") is not None
    tim = roworder.order_for("wydot", "TIM")
    assert tim is not None and not tim.spatial
    assert tim.then == ("source_key", "generated_at", "frame_index")
    assert set(tim.hashed) == set(SCHEMAS[("wydot", "TIM")].column_names)
    spat = roworder.order_for("thea", "SPAT")
    assert spat is not None and spat.then == ("source_key", "generated_at", "intersection_index")
    event = roworder.order_for("nycdot", "EVENT")  # no time column
    assert event is not None and event.then == ("source_key",)
    assert roworder.order_for("nosuch", "TIM") is None
    with pytest.raises(ValueError):
        roworder.cell_sql("a", "b", 17)


def _sequence(con: duckdb.DuckDBPyConnection, files: list[Path]) -> list[str]:
    """Every row (all columns, as text) of the files, in file then row order."""
    src = ", ".join(repr(str(p)) for p in sorted(files))
    return [r[0] for r in con.execute(
        f"SELECT t::VARCHAR FROM (SELECT * EXCLUDE (filename, file_row_number) FROM "
        f"read_parquet([{src}], filename = true, file_row_number = true) "
        "ORDER BY filename, file_row_number) AS t").fetchall()]  # fmt: skip


def _digest(files: list[Path]) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(files))).hexdigest()


@pytest.mark.parametrize(("source", "message_type", "per_hour"),
                         [("wydot", "TIM", 40), ("thea", "SPAT", 40), ("nycdot", "EVENT", 3)])  # fmt: skip
def test_a_day_without_positions_converts_to_the_same_bytes_every_time(
    tmp_path: Path, source: str, message_type: str, per_hour: int
) -> None:
    """TIM, SPaT and EVENT rows came out in the order DuckDB's threads joined them to their
    objects (a new SHA-256 at every conversion of the same objects on 2 threads), so `cache
    verify --repair` could not restore such a file that only older snapshots show from the
    day converted again. Ordered by record, the bytes are the same every time, and a day
    converted in batches then ordered holds its rows in the same order."""
    spec = ReplicaSpec(start=date(2021, 4, 1), end=date(2021, 4, 1), sources=(source,),
                       message_types=(message_type,), records_per_hour=per_hour, files_per_hour=2)  # fmt: skip
    raw = []
    for i, obj in enumerate(iter_replica(spec)):
        (p := tmp_path / "raw" / f"object-{i:04d}").parent.mkdir(exist_ok=True)
        p.write_bytes(obj.body)
        raw.append(RawFile(p, obj.key))
    schema = SCHEMAS[(source, message_type)]
    con = duckdb.connect(config={"threads": 2})
    digests, rows = set(), []
    for i in range(3):
        day = convert_partition(con, schema, raw, tmp_path / f"pass-{i}",
                                validation=ValidationConfig())  # fmt: skip
        digests.add(_digest(day.parquet_files))
        rows.append(_sequence(con, day.parquet_files))
    assert len(digests) == 1 and day.rows > 50
    half = len(raw) // 2
    parts = [convert_partition(con, schema, batch, tmp_path / f"batch-{i}",
                               validation=ValidationConfig(), ordered=False)
             for i, batch in enumerate((raw[:half], raw[half:]))]  # fmt: skip
    day = combine_results(con, schema, parts, tmp_path, validate=True)
    day = order_partition(con, schema, day, tmp_path, rows_per_file=2_000_000,
                          row_group_size=122_880)  # fmt: skip
    assert _sequence(con, day.parquet_files) == rows[0]


def test_a_day_with_the_same_records_in_two_objects_converts_to_the_same_bytes(
    tmp_path: Path,
) -> None:
    """BSM rows are ordered by cell, vehicle and time; two rows that differ only in their
    object (the same record in two objects, `duplicate_record`) tied, and came out in the
    order DuckDB's threads read them. The key ends with the hash of the whole row, so the
    day converted again is the same bytes (what `cache verify --repair` needs)."""
    spec = ReplicaSpec(start=date(2021, 4, 1), end=date(2021, 4, 1), records_per_hour=200,
                       files_per_hour=2, vehicles=4, empty_hour_rate=0.0)  # fmt: skip
    raw = []
    for i, obj in enumerate(iter_replica(spec)):
        for copy in ("a", "b"):  # every object twice, under two keys
            (p := tmp_path / "raw" / f"object-{i:04d}-{copy}").parent.mkdir(exist_ok=True)
            p.write_bytes(obj.body)
            raw.append(RawFile(p, f"{obj.key}-{copy}"))
    con = duckdb.connect(config={"threads": 2})
    digests = set()
    for i in range(3):
        day = convert_partition(con, BSM, raw, tmp_path / f"pass-{i}",
                                validation=ValidationConfig())  # fmt: skip
        digests.add(_digest(day.parquet_files))
    assert day.rows == 2 * 24 * 200
    assert len(digests) == 1


def test_cells_keep_neighbours_together(con: duckdb.DuckDBPyConnection) -> None:
    """Points a few metres apart share a cell; points 100 km apart do not."""
    cell = roworder.cell_sql("lat", "lon")
    (a, b, c) = con.execute(
        f"SELECT {cell.replace('lat', '41.3100').replace('lon', '-105.5900')}, "
        f"{cell.replace('lat', '41.3101').replace('lon', '-105.5901')}, "
        f"{cell.replace('lat', '41.5900').replace('lon', '-106.7100')}"
    ).fetchone() or (None, None, None)
    assert a == b != c


def test_a_conversion_writes_rows_in_order(
    raw: list[RawFile], con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    res = convert_partition(con, BSM, raw, tmp_path / "out", validation=ValidationConfig(),
                            target_rows_per_file=4096, row_group_size=2048)  # fmt: skip
    assert len(res.parquet_files) > 1  # the order runs across the files of one COPY
    got = keys(con, res.parquet_files)
    assert len(got) == res.rows == sum(1 for _ in got)
    assert in_order(got)
    # row groups cover small areas: far smaller than the same rows in arrival order
    src = ", ".join(f"'{p}'" for p in res.parquet_files)
    arrival = tmp_path / "arrival.parquet"
    con.execute(
        f"COPY (SELECT * FROM read_parquet([{src}]) ORDER BY source_key, generated_at) "
        f"TO '{arrival}' (FORMAT parquet, ROW_GROUP_SIZE 2048)"
    )
    assert box_area(res.parquet_files) < 0.5 * box_area([arrival])


def _spy_write_ordered(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """What each roworder.write_ordered call sorted: a SELECT (str) or staged files (list)."""
    calls: list[object] = []
    real = roworder.write_ordered

    def spy(con: duckdb.DuckDBPyConnection, source: object, *a: object, **k: object) -> object:
        calls.append(source if isinstance(source, str) else list(source))  # type: ignore[call-overload]
        return real(con, source, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(roworder, "write_ordered", spy)
    return calls


def test_a_small_partition_is_sorted_by_its_one_conversion_pass(
    raw: list[RawFile], con: duckdb.DuckDBPyConnection, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    calls = _spy_write_ordered(monkeypatch)
    res = convert_partition(con, BSM, raw, tmp_path / "one", validation=ValidationConfig(),
                            target_rows_per_file=100_000, row_group_size=122_880)  # fmt: skip
    assert len(calls) == 1 and isinstance(calls[0], str)  # from the JSON: no staged copy
    assert in_order(keys(con, res.parquet_files))
    # row groups and codec sized from the rows (estimated from the input's lines), as after a sort
    md = pq.ParquetFile(res.parquet_files[0]).metadata
    want = roworder.row_group_rows(res.rows, 122_880)
    assert md.num_row_groups == -(-res.rows // want) > 1
    assert md.row_group(0).column(0).compression == "ZSTD"

    calls.clear()  # over the one-pass limit: staged in arrival order, then sorted
    monkeypatch.setattr(roworder, "SORT_ONE_COPY_ROWS", res.rows // 2)
    big = convert_partition(con, BSM, raw, tmp_path / "two", validation=ValidationConfig(),
                            target_rows_per_file=100_000, row_group_size=122_880)  # fmt: skip
    assert len(calls) == 1 and isinstance(calls[0], list)
    assert rows_of(con, big.parquet_files) == rows_of(con, res.parquet_files)


def test_a_partition_sorted_in_its_pass_is_sorted_again_when_bad_lines_are_taken_out(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Malformed lines (reparsed) and invalid records (dropped) rewrite staged files: the
    partition is then sorted again, so it ends in order all the same."""
    spec = ReplicaSpec(start=date(2021, 4, 1), end=date(2021, 4, 1), records_per_hour=100,
                       files_per_hour=2, vehicles=8, empty_hour_rate=0.0,
                       malformed_per_day=6)  # fmt: skip
    raw = []
    for i, obj in enumerate(iter_replica(spec)):
        p = tmp_path / f"object-{i:04d}"
        p.write_bytes(obj.body)
        raw.append(RawFile(p, obj.key))
    calls = _spy_write_ordered(monkeypatch)
    res = convert_partition(con, BSM, raw, tmp_path / "out", validation=ValidationConfig(),
                            target_rows_per_file=100_000, row_group_size=2048)  # fmt: skip
    assert res.quarantined == 6 and res.rows == 2400  # the bad lines are extra lines
    assert [type(c) for c in calls] == [str, list]  # the pass's sort, then the one after it
    assert in_order(keys(con, res.parquet_files))


def box_area(files: list[Path]) -> float:
    """The mean latitude x longitude extent of the files' row groups (their statistics)."""
    areas = []
    for f in files:
        md = pq.ParquetFile(f).metadata
        names = md.schema.to_arrow_schema().names
        la, lo = names.index("latitude"), names.index("longitude")
        for i in range(md.num_row_groups):
            a, b = md.row_group(i).column(la).statistics, md.row_group(i).column(lo).statistics
            areas.append((a.max - a.min) * (b.max - b.min))
    return float(np.mean(areas))


def test_batches_of_a_day_become_one_run(
    raw: list[RawFile], con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    half = len(raw) // 2
    parts = [
        convert_partition(
            con,
            BSM,
            batch,
            tmp_path / f"batch-{i}",
            validation=ValidationConfig(),
            target_rows_per_file=100_000,
            row_group_size=2048,
        )
        for i, batch in enumerate((raw[:half], raw[half:]))
    ]
    day = combine_results(con, BSM, parts, tmp_path, validate=True)
    before = Counter(con.execute(
        f"SELECT vehicle_id, generated_at, latitude FROM read_parquet("
        f"[{', '.join(repr(str(p)) for p in day.parquet_files)}])").fetchall())  # fmt: skip
    assert not in_order(keys(con, day.parquet_files))  # two runs, one after the other
    old = list(day.parquet_files)
    day = order_partition(con, BSM, day, tmp_path, rows_per_file=100_000, row_group_size=2048)
    assert in_order(keys(con, day.parquet_files))
    after = Counter(con.execute(
        f"SELECT vehicle_id, generated_at, latitude FROM read_parquet("
        f"[{', '.join(repr(str(p)) for p in day.parquet_files)}])").fetchall())  # fmt: skip
    assert after == before and sum(after.values()) == day.rows
    assert not any(p.exists() for p in old)


def test_arrow_tables_sort_like_sql(con: duckdb.DuckDBPyConnection) -> None:
    rng = np.random.default_rng(7)
    n = 5000
    table = pa.table({
        "latitude": rng.uniform(41.0, 41.8, n),
        "longitude": rng.uniform(-111.0, -104.0, n),
        "vehicle_id": pa.array([f"v{i}" for i in rng.integers(0, 50, n)]),
        "timestamp": pa.array(rng.integers(0, 10**9, n)).cast(pa.timestamp("ms")),
        "other": np.arange(n),
    })  # fmt: skip
    order = roworder.RowOrder("latitude", "longitude", "vehicle_id", "timestamp")
    idx = roworder.sort_indices(table, order)
    assert idx is not None and sorted(idx.tolist()) == list(range(n))
    con.register("t", table)
    want = [r[0] for r in con.execute(
        f"SELECT other FROM t ORDER BY {order.key_sql()}, other").fetchall()]  # fmt: skip
    assert table.take(idx)["other"].to_pylist() == want
    assert roworder.sort_indices(table.take(idx), order) is None  # already in order
    assert roworder.sort_indices(table.drop_columns(["latitude"]), order) is None


def test_a_conversion_told_not_to_sort_keeps_arrival_order(
    raw: list[RawFile], con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """ordered=False: the batches of a day converted in several, ordered once as a whole."""
    got = {}
    for flag in (True, False):
        got[flag] = convert_partition(
            con, BSM, raw, tmp_path / str(flag), validation=ValidationConfig(),
            target_rows_per_file=100_000, row_group_size=2048, ordered=flag,
        )  # fmt: skip
    assert in_order(keys(con, got[True].parquet_files))
    assert not in_order(keys(con, got[False].parquet_files))
    assert rows_of(con, got[True].parquet_files) == rows_of(con, got[False].parquet_files)


def rows_of(con: duckdb.DuckDBPyConnection, files: list[Path]) -> Counter[tuple[object, ...]]:
    """Every row (all columns, as text) of the files, counted."""
    src = ", ".join(repr(str(p)) for p in files)
    return Counter(con.execute(
        f"SELECT t::VARCHAR FROM read_parquet([{src}]) AS t").fetchall())  # fmt: skip


def group_rows(files: list[Path]) -> list[int]:
    return [
        md.row_group(i).num_rows
        for md in (pq.ParquetFile(f).metadata for f in files)
        for i in range(md.num_row_groups)
    ]


def test_row_group_size_follows_the_row_count() -> None:
    n, lo = roworder.GROUPS_PER_PARTITION, roworder.MIN_GROUP_ROWS
    assert roworder.row_group_rows(1_000, 122_880) == lo  # small: one group of all its rows
    for rows in (70_000, 300_000, 1_500_000):  # 16 groups or a few more, whole vectors
        size = roworder.row_group_rows(rows, 122_880)
        assert size % 2048 == 0 and n <= -(-rows // size) <= n + 3
    assert roworder.row_group_rows(30_000_000, 122_880) == 122_880  # large: the configured cap
    assert roworder.row_group_rows(70_000, 2048) == 2048  # a cap below the minimum wins
    assert roworder.row_group_rows(None, 50_000) == 50_000  # count unknown: the cap
    opts = roworder.copy_options(200_000, 122_880, 100_000)
    assert "ROW_GROUP_SIZE 12288" in opts and "ROW_GROUPS_PER_FILE 9" in opts


@pytest.mark.parametrize("rows", [3_000, 40_000, 300_000])
def test_written_files_have_about_16_row_groups(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, rows: int
) -> None:
    """A small, a medium and a large file written at the default row-group size."""
    assert ORDER is not None
    src = tmp_path / "in.parquet"
    con.execute(
        "COPY (SELECT 41 + (i % 997) / 1000.0 AS latitude, -110 + (i % 7919) / 1000.0 AS "
        "longitude, 'v' || (i % 50) AS vehicle_id, TIMESTAMPTZ '2021-04-01' + to_seconds(i) "
        f"AS generated_at FROM range({rows}) AS r(i)) TO '{src}' (FORMAT parquet)"
    )
    roworder.write_ordered(con, [str(src)], tmp_path / "out", ORDER, rows=rows,
                           row_group_size=122_880, rows_per_file=10**6, run_rows=10**9)  # fmt: skip
    groups = group_rows(sorted((tmp_path / "out").glob("*.parquet")))
    assert sum(groups) == rows
    want = roworder.row_group_rows(rows, 122_880)
    assert max(groups) <= want
    if rows <= roworder.MIN_GROUP_ROWS:
        assert groups == [rows]
    else:
        assert len(groups) == -(-rows // want)
        if want > roworder.MIN_GROUP_ROWS:  # large enough for the target: 16 or a few more
            assert roworder.GROUPS_PER_PARTITION <= len(groups) <= roworder.GROUPS_PER_PARTITION + 3


def test_a_sort_in_runs_gives_the_same_order_and_rows(
    raw: list[RawFile], con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """More rows than a (lowered) run bound: ranked, split in runs, each sorted on its own,
    written one after the other; the result is the one-sort order with identical rows."""
    day = convert_partition(con, BSM, raw, tmp_path / "arrival", validation=ValidationConfig(),
                            ordered=False)  # fmt: skip
    assert not in_order(keys(con, day.parquet_files))
    src = [str(p) for p in day.parquet_files]
    roworder.write_ordered(con, src, tmp_path / "one", ORDER, rows=day.rows,
                           row_group_size=122_880, rows_per_file=10**6, run_rows=10**9)  # fmt: skip
    con.execute("SET threads = 2")  # not the runs' one thread, so a restore shows
    settings = "SELECT current_setting('threads'), current_setting('partitioned_write_flush_threshold')"
    before = con.execute(settings).fetchall()
    runs = roworder.write_ordered(con, src, tmp_path / "runs", ORDER, rows=day.rows,
                                  row_group_size=122_880, rows_per_file=3000,
                                  extra=["RETURN_STATS"], run_rows=1000)  # fmt: skip
    assert con.execute(settings).fetchall() == before  # one thread and small flushes: restored
    assert day.rows > 7 * 1000  # at least 8 runs
    files = sorted((tmp_path / "runs").glob("*.parquet"))
    runs_of = -(-day.rows // 1000)  # runs of equal size, a file each
    assert [Path(r[0]) for r in runs] == files
    assert [int(r[1]) for r in runs] == [day.rows // runs_of] * runs_of
    assert in_order(keys(con, files))
    assert keys(con, files) == keys(con, sorted((tmp_path / "one").glob("*.parquet")))
    assert rows_of(con, files) == rows_of(con, day.parquet_files)
    assert not (tmp_path / "runs.runs").exists()  # the work files are gone
    # a SELECT as the source is spilled to files first, then sorted the same way
    select = f"SELECT * FROM read_parquet({src!r})"
    roworder.write_ordered(con, select, tmp_path / "sql", ORDER, rows=None,
                           row_group_size=122_880, rows_per_file=10**6, run_rows=1000)  # fmt: skip
    assert keys(con, sorted((tmp_path / "sql").glob("*.parquet"))) == keys(con, files)


def test_a_tables_zstd_level_reaches_its_writes_in_one_copy_and_in_runs(
    raw: list[RawFile], con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """WYDOT BSM's kept files are zstd level 1, other tables DuckDB's default; the level of
    the order is the one written, whether the rows are sorted in one COPY or in runs."""
    assert ORDER is not None and ORDER.zstd_level == 1
    assert roworder.order_for("wydot_backup", "BSM").zstd_level == 1  # type: ignore[union-attr]
    assert roworder.order_for("thea", "BSM").zstd_level is None  # type: ignore[union-attr]
    assert "COMPRESSION_LEVEL 1" in roworder.copy_options(5000, 8192, zstd_level=1)
    assert "COMPRESSION_LEVEL" not in roworder.copy_options(5000, 8192)
    assert "COMPRESSION_LEVEL" not in roworder.copy_options(10, 8192, zstd_level=1)  # lz4
    day = convert_partition(con, BSM, raw, tmp_path / "arrival", validation=ValidationConfig(),
                            ordered=False)  # fmt: skip
    src = [str(p) for p in day.parquet_files]
    sizes = {}
    for level in (1, 9):
        for run_rows in (10**9, 3000):
            out = tmp_path / f"l{level}-{run_rows}"
            order = dataclasses.replace(ORDER, zstd_level=level)
            roworder.write_ordered(con, src, out, order, rows=day.rows, row_group_size=122_880,
                                   rows_per_file=10**6, run_rows=run_rows)  # fmt: skip
            sizes[level, run_rows] = sum(p.stat().st_size for p in out.glob("*.parquet"))
            assert rows_of(con, sorted(out.glob("*.parquet"))) == rows_of(con, day.parquet_files)
    # level 9 packs the same rows tighter than level 1, so each write used its order's level
    assert sizes[9, 10**9] < 0.97 * sizes[1, 10**9]
    assert sizes[9, 3000] < 0.97 * sizes[1, 3000]


def test_a_conversion_writes_the_tables_zstd_level_alone_and_in_a_group(
    raw: list[RawFile], con: duckdb.DuckDBPyConnection, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The level of ZSTD_LEVELS reaches the kept files of a day converted alone (its one
    sorting pass) and of days converted as a group (a COPY a day)."""
    half = len(raw) // 2
    sizes = {}
    for level in (1, 9):
        monkeypatch.setattr(roworder, "ZSTD_LEVELS", {("wydot", "BSM"): level})
        alone = convert_partition(con, BSM, raw, tmp_path / f"alone-{level}",
                                  validation=ValidationConfig())  # fmt: skip
        group = convert_partitions(con, BSM, [(raw[:half], tmp_path / f"g1-{level}"),
                                              (raw[half:], tmp_path / f"g2-{level}")],
                                   validation=ValidationConfig())  # fmt: skip
        assert min(r.rows for r in group) >= roworder.SMALL_FILE_ROWS  # zstd, not lz4
        sizes[level] = (
            sum(p.stat().st_size for p in alone.parquet_files),
            sum(p.stat().st_size for r in group for p in r.parquet_files),
        )
    assert sizes[9][0] < 0.97 * sizes[1][0]
    assert sizes[9][1] < 0.97 * sizes[1][1]


def test_a_conversion_over_the_run_bound_is_sorted(
    raw: list[RawFile], con: duckdb.DuckDBPyConnection, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(roworder, "SORT_RUN_ROWS", 1000)
    monkeypatch.setattr(roworder, "SORT_ONE_COPY_ROWS", 1000)
    res = convert_partition(con, BSM, raw, tmp_path / "out", validation=ValidationConfig())
    ref = convert_partition(con, BSM, raw, tmp_path / "ref", validation=ValidationConfig(),
                            ordered=False)  # fmt: skip
    assert res.rows == ref.rows > 1000
    assert len(res.parquet_files) > 1  # in runs: each run its own files
    assert in_order(keys(con, res.parquet_files))
    assert rows_of(con, res.parquet_files) == rows_of(con, ref.parquet_files)
    # over the run bound but under the one-COPY bound: one sort, the same rows in the order
    monkeypatch.setattr(roworder, "SORT_ONE_COPY_ROWS", res.rows)
    one = convert_partition(con, BSM, raw, tmp_path / "one", validation=ValidationConfig())
    assert len(one.parquet_files) == 1
    assert in_order(keys(con, one.parquet_files))
    assert rows_of(con, one.parquet_files) == rows_of(con, ref.parquet_files)
    # a file a run (runs under the day's row-group size: a group each)
    assert group_rows(res.parquet_files) == [res.rows // len(res.parquet_files)] * len(
        res.parquet_files
    ) and len(res.parquet_files) == -(-res.rows // 1000)


def test_a_temporary_setting_is_restored_after_an_error(con: duckdb.DuckDBPyConnection) -> None:
    before = con.execute("SELECT current_setting('threads')").fetchone()
    with pytest.raises(duckdb.Error), temporary_setting(con, "threads", 3):
        assert con.execute("SELECT current_setting('threads')").fetchone() == (3,)
        con.execute("SELECT * FROM no_such_table")
    assert con.execute("SELECT current_setting('threads')").fetchone() == before


def test_rows_of_many_bytes_are_sorted_in_runs_a_share_of_the_memory_limit_holds(
    raw: list[RawFile],
    con: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rows a sort holds are counted by their bytes too when they are wide (NYCDOT EVENT
    rows of ~240 KB ran one sort out of memory): a day whose bytes are more than a sort's
    share of DuckDB's memory limit is ranked and sorted in runs, whatever its row count; the
    order and the rows are the ones one sort gives. Narrow rows are counted by rows alone.
    (The shares are lowered to this small day's size and the width to its rows'; DuckDB
    itself does not run in a limit that small.)"""
    assert ORDER is not None
    day = convert_partition(con, BSM, raw, tmp_path / "arrival", validation=ValidationConfig(),
                            ordered=False)  # fmt: skip
    src = [str(p) for p in day.parquet_files]
    row_bytes = roworder.parquet_row_bytes(con, src)
    assert row_bytes is not None and 100 < row_bytes < 10_000  # BSM: ~850 bytes uncompressed
    con.execute("SET memory_limit = '1GiB'")
    assert roworder.memory_limit(con) == 1024**3
    roworder.write_ordered(con, src, tmp_path / "one", ORDER, rows=day.rows,
                           row_group_size=122_880, rows_per_file=10**6)  # fmt: skip
    assert len(list((tmp_path / "one").glob("*.parquet"))) == 1  # far inside the limit: one sort
    day_bytes = day.rows * row_bytes
    monkeypatch.setattr(roworder, "SORT_ONE_COPY_SHARE", 0.75 * day_bytes / 1024**3)
    monkeypatch.setattr(roworder, "SORT_RUN_SHARE", 0.375 * day_bytes / 1024**3)
    roworder.write_ordered(con, src, tmp_path / "narrow", ORDER, rows=day.rows,
                           row_group_size=122_880, rows_per_file=10**6)  # fmt: skip
    # BSM rows are narrow: their sorts count rows only (a line's bytes overstate them)
    assert len(list((tmp_path / "narrow").glob("*.parquet"))) == 1
    monkeypatch.setattr(roworder, "WIDE_ROW_BYTES", 100)  # here: as wide as EVENT's
    roworder.write_ordered(con, src, tmp_path / "runs", ORDER, rows=day.rows,
                           row_group_size=122_880, rows_per_file=10**6)  # fmt: skip
    files = sorted((tmp_path / "runs").glob("*.parquet"))
    assert len(files) == 3  # runs of at most 3/8 of the rows: 3 of them, a file each
    assert in_order(keys(con, files))
    assert keys(con, files) == keys(con, sorted((tmp_path / "one").glob("*.parquet")))
    assert rows_of(con, files) == rows_of(con, day.parquet_files)


def test_a_row_group_holds_at_most_row_group_bytes() -> None:
    """Rows of ~240 KB (a NYCDOT EVENT): 4,096 of them would be a 1 GB row group."""
    cap = roworder.ROW_GROUP_BYTES // 240_000
    assert roworder.row_group_rows(5_000, 122_880, 240_000) == cap
    assert roworder.row_group_rows(None, 122_880, 240_000) == cap
    assert roworder.row_group_rows(5_000, 122_880, 850) == roworder.MIN_GROUP_ROWS  # BSM: as before
    assert roworder.row_group_rows(970_000, 122_880, 850) == roworder.row_group_rows(
        970_000, 122_880
    )  # the 2 GB day
    assert roworder.row_group_rows(None, 122_880, 2_000) == 122_880  # narrow: as before
    assert f"ROW_GROUP_SIZE {cap}" in roworder.copy_options(5_000, 122_880, row_bytes=240_000)
