"""quality.cleaning.impute: linear in time inside a gap-free segment, heading on the circle."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cvcatalog.exceptions import ConfigError
from cvcatalog.quality.cleaning import impute, impute_pandas
from cvcatalog.quality.config import Impute, QualityConfig
from cvcatalog.quality.mapping import TrajectoryMapping, mapping_for
from cvcatalog.quality.rules import apply, cleans
from cvcatalog.read.experiments import Cleaning

T0 = datetime(2021, 4, 1, 12, tzinfo=UTC)
BSM = mapping_for("wydot", "BSM")
assert isinstance(BSM, TrajectoryMapping)


def row(
    vid: str, s: float, lat: float | None, spd: float | None, hdg: float | None
) -> dict[str, Any]:
    return {
        "vehicle_id": vid,
        "generated_at": T0 + timedelta(seconds=s),
        "latitude": lat,
        "longitude": None if lat is None else -105.0 - (lat - 41.0),
        "speed_mps": spd,
        "heading_deg": hdg,
        "accel_long_mps2": 0.0,
        "source_key": "obj",
    }


def table(rows: list[dict[str, Any]]) -> pa.Table:
    schema = pa.schema(
        [
            ("vehicle_id", pa.string()),
            ("generated_at", pa.timestamp("us", tz="UTC")),
            ("latitude", pa.float64()),
            ("longitude", pa.float64()),
            ("speed_mps", pa.float64()),
            ("heading_deg", pa.float64()),
            ("accel_long_mps2", pa.float64()),
            ("source_key", pa.string()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def lerp(t: float, t0: float, v0: float, t1: float, v1: float) -> float:
    return v0 + (v1 - v0) * (t - t0) / (t1 - t0)


def test_values_are_the_linear_interpolation_in_time() -> None:
    # uneven spacing: 0, 0.1, 0.35, 0.4 s; latitude missing at 0.1 and 0.35
    rows = [
        row("A", 0.0, 41.0, 20.0, 90.0),
        row("A", 0.1, None, None, 90.0),
        row("A", 0.35, None, 21.0, 90.0),
        row("A", 0.4, 41.004, 24.0, 90.0),
    ]
    out, stats = impute(table(rows), BSM)
    got = out.to_pylist()
    assert got[1]["latitude"] == pytest.approx(lerp(0.1, 0.0, 41.0, 0.4, 41.004), abs=1e-12)
    assert got[2]["latitude"] == pytest.approx(lerp(0.35, 0.0, 41.0, 0.4, 41.004), abs=1e-12)
    assert got[1]["longitude"] == pytest.approx(lerp(0.1, 0.0, -105.0, 0.4, -105.004), abs=1e-12)
    # speed: missing only at 0.1, between 20 (0 s) and 21 (0.35 s)
    assert got[1]["speed_mps"] == pytest.approx(lerp(0.1, 0.0, 20.0, 0.35, 21.0))
    assert [r["imputed"] for r in got] == [False, True, True, False]
    assert stats.count("impute", "imputed") == 2
    assert stats.count("impute", "values") == 5  # lat, lon twice, speed once
    assert stats.count("impute", "missing") == 0
    # the known values are untouched, the rows keep their order and columns
    assert out.drop_columns(["imputed"]).column_names == table(rows).column_names
    assert got[0] == {**rows[0], "imputed": False}


def test_never_across_a_gap() -> None:
    # detect_gaps' default for BSMs: 5 s; a hole whose known neighbours are 6 s apart spans a
    # gap, so it stays NULL even with no limit on the hole's length in seconds
    rows = [
        row("A", 0.0, 41.0, 20.0, 10.0),
        row("A", 0.1, None, 20.0, 10.0),  # segment 0's last point: no known value after it
        row("A", 6.1, None, 20.0, 10.0),  # segment 1's first point
        row("A", 6.2, 41.1, 20.0, 10.0),
    ]
    cfg = Impute(max_gap_samples=10, max_gap_s=None)
    out, stats = impute(table(rows), BSM, cfg)
    assert [r["latitude"] for r in out.to_pylist()] == [41.0, None, None, 41.1]
    assert not any(out.column("imputed").to_pylist())
    assert stats.count("impute", "missing") == 4  # latitude and longitude, twice
    # a longer gap threshold makes it one segment: then it is filled
    wide = QualityConfig.parse(
        {"cleaning": {"detect_gaps": {"max_gap_s": 10}}, "impute": {"max_gap_s": None}}
    )
    out2, _ = impute(table(rows), BSM, wide)
    assert out2.column("imputed").to_pylist() == [False, True, True, False]
    # and never across vehicles: B's known values do not fill A's hole
    rows3 = [row("A", 0.0, 41.0, 20.0, 10.0), row("A", 0.1, None, 20.0, 10.0)]
    rows3 += [row("B", 0.2, 42.0, 20.0, 10.0)]
    out3, _ = impute(table(rows3), BSM)
    assert out3.column("latitude").to_pylist()[1] is None


def test_heading_goes_the_short_way_round() -> None:
    rows = [
        row("A", 0.0, 41.0, 20.0, 350.0),
        row("A", 0.1, 41.0, 20.0, None),
        row("A", 0.2, 41.0, 20.0, None),
        row("A", 0.3, 41.0, 20.0, None),
        row("A", 0.4, 41.0, 20.0, 10.0),
    ]
    out, _ = impute(table(rows), BSM)
    h = out.column("heading_deg").to_pylist()
    assert h[1:4] == [pytest.approx(355.0), pytest.approx(0.0, abs=1e-9), pytest.approx(5.0)]
    # the other way round: 10 -> 350 passes 0 going down
    rows[0]["heading_deg"], rows[4]["heading_deg"] = 10.0, 350.0
    h2 = impute(table(rows), BSM)[0].column("heading_deg").to_pylist()
    assert h2[1:4] == [pytest.approx(5.0), pytest.approx(0.0, abs=1e-9), pytest.approx(355.0)]
    assert all(0 <= x < 360 for x in h + h2)
    # a plain linear interpolation would have gone through 180
    assert not any(math.isclose(x, 180.0) for x in h + h2)


def test_limits_in_samples_and_seconds() -> None:
    def holes(n: int, step: float) -> list[dict[str, Any]]:
        rows = [row("A", 0.0, 41.0, 20.0, 10.0)]
        rows += [row("A", step * (k + 1), None, 20.0, 10.0) for k in range(n)]
        return [*rows, row("A", step * (n + 1), 41.01, 20.0, 10.0)]

    samples = Impute(max_gap_samples=2, max_gap_s=None)
    assert sum(impute(table(holes(2, 0.1)), BSM, samples)[0].column("imputed").to_pylist()) == 2
    assert sum(impute(table(holes(3, 0.1)), BSM, samples)[0].column("imputed").to_pylist()) == 0
    seconds = Impute(max_gap_samples=None, max_gap_s=1.0)
    # 3 missing samples 0.25 s apart: known values 1.0 s apart -> filled; 0.3 s apart -> not
    assert sum(impute(table(holes(3, 0.25)), BSM, seconds)[0].column("imputed").to_pylist()) == 3
    assert sum(impute(table(holes(3, 0.3)), BSM, seconds)[0].column("imputed").to_pylist()) == 0
    # both limits hold when both are set
    both = Impute(max_gap_samples=5, max_gap_s=0.5)
    assert sum(impute(table(holes(3, 0.25)), BSM, both)[0].column("imputed").to_pylist()) == 0
    with pytest.raises(ValueError, match="needs a limit"):
        Impute(max_gap_samples=None, max_gap_s=None)


def test_edges_and_columns() -> None:
    # nothing known before (or after) a hole: left NULL
    rows = [row("A", 0.0, None, None, None), row("A", 0.1, 41.0, 20.0, 10.0)]
    rows += [row("A", 0.2, None, 20.0, 10.0)]
    out, stats = impute(table(rows), BSM)
    assert out.column("latitude").to_pylist() == [None, 41.0, None]
    assert stats.count("impute", "imputed") == 0
    # columns: only the ones named
    rows = [row("A", 0.0, 41.0, 20.0, 10.0), row("A", 0.1, None, None, None)]
    rows += [row("A", 0.2, 41.002, 22.0, 12.0)]
    out, _ = impute(table(rows), BSM, Impute(columns=["speed_mps"]))
    assert out.to_pylist()[1]["speed_mps"] == pytest.approx(21.0)
    assert out.to_pylist()[1]["latitude"] is None
    with pytest.raises(ConfigError, match="no column"):
        impute(table(rows), BSM, Impute(columns=["nope"]))
    with pytest.raises(ConfigError, match="not a numeric"):
        impute(table(rows), BSM, Impute(columns=["source_key"]))
    with pytest.raises(ConfigError, match="trajectories"):
        impute(table(rows), mapping_for("wydot", "TIM"))


def test_ngsim_metres_and_pandas_partitions() -> None:
    m = mapping_for("ngsim", "TRAJECTORY")
    assert isinstance(m, TrajectoryMapping)
    t = [T0 + timedelta(seconds=0.1 * k) for k in range(4)]
    frame = pd.DataFrame(
        {
            "vehicle_id": ["v1"] * 4,
            "timestamp": t,
            "x_m": [1.0, float("nan"), float("nan"), 4.0],
            "y_m": [10.0, float("nan"), 30.0, 40.0],
            "latitude": [34.0] * 4,
            "longitude": [-118.0] * 4,
            "speed_mps": pd.array([10.0, None, 12.0, 13.0], dtype="float32"),
            "accel_mps2": pd.array([0.0] * 4, dtype="float32"),
            "lane_id": pd.array([1, 1, 1, 1], dtype="int32"),
        },
        index=[7, 8, 9, 10],
    )
    out = impute_pandas(frame, m, QualityConfig())
    assert out["x_m"].tolist() == pytest.approx([1.0, 2.0, 3.0, 4.0])
    assert out["y_m"].tolist() == pytest.approx([10.0, 20.0, 30.0, 40.0])
    assert out["speed_mps"].tolist() == pytest.approx([10.0, 11.0, 12.0, 13.0])
    assert out["imputed"].tolist() == [False, True, True, False]
    # the partition keeps its index and every dtype
    assert list(out.index) == [7, 8, 9, 10]
    assert out.drop(columns="imputed").dtypes.equals(frame.dtypes)


def test_at_ingest_apply_writes_the_flag_and_counts(tmp_path: Path) -> None:
    rows = [
        row("A", 0.1 * k, None if k in (3, 4) else 41.0 + k * 1e-4, 20.0, 5.0) for k in range(8)
    ]
    src = tmp_path / "in.parquet"
    pq.write_table(table(rows), src)
    cfg = QualityConfig.parse({"impute": {"enabled": True}})
    assert cleans(cfg)
    con = duckdb.connect()
    stats = apply(con, [src], tmp_path / "out.parquet", BSM, cfg)
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column("imputed").to_pylist() == [k in (3, 4) for k in range(8)]
    assert out.column("latitude").to_pylist()[3] == pytest.approx(41.0003)
    assert stats.count("impute", "imputed") == 2 and stats.count("impute", "values") == 4
    assert stats.count("duplicates") == 0  # the rules are counted as always
    # off by default: no flag column, nothing counted
    assert ("impute", "imputed") not in apply(
        con,
        [src],
        tmp_path / "out2.parquet",
        BSM,
        QualityConfig.parse({"cleaning": {"remove_duplicates": True}}),
    ).counts
    assert "imputed" not in pq.read_table(tmp_path / "out2.parquet").column_names


def test_experiment_cleaning_takes_an_impute_section() -> None:
    c = Cleaning.model_validate({"impute": {"max_gap_samples": 3}})
    assert c.impute is not None and c.impute.max_gap_samples == 3
    assert Cleaning().impute is None
    with pytest.raises(ValueError):
        Cleaning.model_validate({"impute": {"max_gap_samples": 0}})
