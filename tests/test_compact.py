"""Compaction turns many small Parquet files of a partition into few, with nothing lost."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cvcatalog import Catalog  # the public import path the README shows
from cvcatalog.io import lake, roworder
from cvcatalog.sandbox.replica import seed_replica


def test_compact_merges_small_files_and_keeps_every_row(
    s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a day over the (lowered) sort-run bound: ingest and compaction sort in runs (two a day)
    monkeypatch.setattr(roworder, "SORT_RUN_ROWS", 5000)
    monkeypatch.setattr(roworder, "SORT_ONE_COPY_ROWS", 5000)
    rep = seed_replica(
        s3_client,
        date(2021, 4, 1),
        date(2021, 4, 2),
        records_per_hour=400,
        files_per_hour=1,  # the rows make the files (rows_per_file below), not the objects
        malformed_per_day=1,
    )
    cat = Catalog(catalog_dir)
    cfg = cat.config("wydot", "BSM", "2021-04-01", "2021-04-02", rate_limit=0)
    cfg.memory.rows_per_file = 2048
    cfg.memory.row_group_size = 2048
    from cvcatalog.sources.cvpilot import ingest

    ingest(cfg)
    files = cat.query(
        "select partition_key, count(*) as n from partition_files where kind='data' group by 1"
    )
    assert (files.n >= 2).all()
    before = cat.query(
        "select count(*) as n, sum(speed_mps) as s, count(distinct vehicle_id) as v from wydot_bsm"
    )

    snapshots = len(cat.snapshots())
    monkeypatch.setattr(lake, "STATS_TAIL_ROWS", 0)  # the merged files' statistics are ordered
    done = cat.compact("wydot", "BSM")
    with cat.db.read_state() as state:
        keys = state.execute(
            "SELECT table_id, column_id, data_file_id FROM ducklake_file_column_stats "
            "ORDER BY rowid"
        ).fetchall()
    assert keys == sorted(keys)
    assert sorted(r.partition for r in done) == sorted(rep.partitions)
    # the days are recorded by one commit (one catalog write, one snapshot), not one each
    assert len(cat.snapshots()) == snapshots + 1
    assert all(r.files_after == 2 and r.files_before >= 3 for r in done)  # a file a run
    assert all(r.bytes_after <= r.bytes_before for r in done)  # written as the ingest writes
    after = cat.query(
        "select count(*) as n, sum(speed_mps) as s, count(distinct vehicle_id) as v from wydot_bsm"
    )
    assert after.n[0] == before.n[0] == rep.records
    assert abs(after.s[0] - before.s[0]) < 1e-6 and after.v[0] == before.v[0]
    assert cat.verify().clean  # old files gone, new ones hashed, quarantine files kept
    assert cat.query("select count(*) as n from source_objects").n[0] == rep.objects
    assert cat.query("select count(*) as n from partition_files where kind='quarantine'").n[0] == 2
    # each merged day is in the row order (sorted in runs: more rows than the bound), its
    # files one after the other
    key = roworder.order_for("wydot", "BSM")
    assert key is not None
    con = duckdb.connect()
    roworder.prepare(con)
    data = cat.query("select partition_key, path from partition_files where kind = 'data'")
    for _, paths in data.groupby("partition_key")["path"]:
        got = con.sql(
            f"SELECT {key.key_sql()} FROM read_parquet({[str(catalog_dir / p) for p in sorted(paths)]}, "
            "filename = true, file_row_number = true) ORDER BY filename, file_row_number"
        ).fetchall()
        assert len(got) > 5000
        assert got == sorted(got, key=lambda r: tuple((v is None, v) for v in r))
    assert cat.compact("wydot", "BSM") == []  # nothing left to do
    # compaction merges small files, it never splits: a smaller target leaves one file alone
    assert cat.compact("wydot", "BSM", rows_per_file=1000) == []

    # the merged files hold the canonical columns only (partition values stay in the path),
    # so Dask reads them as it read the old ones
    import pyarrow.parquet as pq

    merged = cat.query("select path from partition_files where kind = 'data'")["path"]
    names = set(pq.read_schema(catalog_dir / merged[0]).names)
    assert not names & {"year", "month", "day", "date", "source", "message_type"}
    frame = cat.to_dask("wydot", "BSM", "2021-04-01", "2021-04-02")
    assert len(frame) == rep.records and frame["speed_mps"].sum().compute() == pytest.approx(
        before.s[0]
    )
