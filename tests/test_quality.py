"""Data quality: rules, cleaning, Savitzky-Golay smoothing, recording and the report."""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cvcatalog.catalog import Catalog
from cvcatalog.cli.main import app
from cvcatalog.config import DataSourceConfig
from cvcatalog.exceptions import CatalogError, ConfigError
from cvcatalog.quality.config import QualityConfig
from cvcatalog.quality.mapping import DEFAULT_BOUNDS, RecordMapping, TrajectoryMapping, mapping_for
from cvcatalog.quality.report import (
    QualityReport,
    TypeQuality,
    build_report,
    render_html,
    render_png,
)
from cvcatalog.quality.rules import (
    apply,
    evaluate,
    evaluate_files,
    flag_rows,
    record,
    savgol_weights,
)
from cvcatalog.sandbox.replica import seed_replica

runner = CliRunner()
T0 = datetime(2021, 4, 1, 12, 0, tzinfo=UTC)
BSM = mapping_for("wydot", "BSM")
assert isinstance(BSM, TrajectoryMapping)


# -- synthetic trajectories -------------------------------------------------------------------
@dataclass
class Injected:
    """A synthetic BSM partition and what was done to it."""

    rows: list[dict[str, Any]]
    speed: list[int] = field(default_factory=list)  # indices (in rows) of each kind
    accel: list[int] = field(default_factory=list)
    bounds: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)  # the second copies
    out_of_order: list[int] = field(default_factory=list)  # the record earlier than its predecessor
    gap_vehicle: str = ""


def point(vid: str, k: int, *, offset_s: float = 0.0) -> dict[str, Any]:
    """Vehicle vid at sample k (10 Hz) driving north-east at ~25 m/s near Laramie."""
    t = k * 0.1 + offset_s
    return {
        "vehicle_id": vid,
        "generated_at": T0 + timedelta(seconds=t),
        "latitude": 41.30 + 2.0e-4 * t + (hash((vid, "lat")) % 7) * 1e-3,
        "longitude": -105.60 + 2.5e-4 * t,
        "speed_mps": 25.0 + 0.5 * math.sin(t),
        "accel_long_mps2": 0.5 * math.cos(t),
        "msg_cnt": k % 128,
        "source_key": f"obj-{vid}",
    }


def synthetic() -> Injected:
    """Three vehicles; 3 speed outliers, 1 accel outlier, 1 out of bounds, 2 duplicates,
    1 out-of-order pair and 1 gap (vehicle B is silent for 8 s)."""
    a = [point("A", k) for k in range(60)]
    b = [point("B", k) for k in range(30)] + [point("B", k, offset_s=8.0) for k in range(30, 60)]
    c = [point("C", k) for k in range(60)]
    for k in (10, 20, 30):
        a[k]["speed_mps"] = 95.0
    c[40]["accel_long_mps2"] = -31.0
    b[45]["latitude"] = 47.9  # far north of the corridor
    c[20], c[21] = c[21], c[20]  # C's 21st sample arrives before its 20th
    rows = a + b + c
    inj = Injected(rows=[])
    for i, r in enumerate(rows):
        inj.rows.append(r)
        if r["vehicle_id"] == "A" and r["speed_mps"] > 90:
            inj.speed.append(len(inj.rows) - 1)
        if r["accel_long_mps2"] < -30:
            inj.accel.append(len(inj.rows) - 1)
        if r["latitude"] > 45:
            inj.bounds.append(len(inj.rows) - 1)
        if (r["vehicle_id"], i) in (("A", 5), ("C", 150)):  # received twice, back to back
            inj.rows.append(dict(r))  # e.g. re-sent by the ODE into the same object
            inj.duplicates.append(len(inj.rows) - 1)
    for i in range(1, len(inj.rows)):
        p, r = inj.rows[i - 1], inj.rows[i]
        if p["vehicle_id"] == r["vehicle_id"] and r["generated_at"] < p["generated_at"]:
            inj.out_of_order.append(i)
    inj.gap_vehicle = "B"
    assert (len(inj.speed), len(inj.accel), len(inj.bounds)) == (3, 1, 1)
    assert (len(inj.duplicates), len(inj.out_of_order)) == (2, 1)
    return inj


def write_parts(rows: list[dict[str, Any]], d: Path, pieces: int = 2) -> list[Path]:
    """The rows as `pieces` Parquet files (a partition written in several files)."""
    d.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows)
    step = math.ceil(len(rows) / pieces)
    files = []
    for i in range(pieces):
        f = d / f"part-{i:05d}.parquet"
        pq.write_table(table.slice(i * step, step), f)
        files.append(f)
    return files


def read(path: Path) -> list[dict[str, Any]]:
    return pq.read_table(path).to_pylist()


@pytest.fixture
def con() -> Any:
    c = duckdb.connect()
    yield c
    c.close()


@pytest.fixture
def inj() -> Injected:
    return synthetic()


@pytest.fixture
def files(inj: Injected, tmp_path: Path) -> list[Path]:
    return write_parts(inj.rows, tmp_path / "in")


def cfg(**cleaning: Any) -> QualityConfig:
    return QualityConfig.parse({"cleaning": cleaning})


# -- rules ------------------------------------------------------------------------------------
def test_rules_count_each_injected_problem(con: Any, inj: Injected, files: list[Path]) -> None:
    s = evaluate_files(con, files, BSM)
    assert s.rows_in == len(inj.rows)
    assert s.count("speed") == len(inj.speed)
    assert s.count("accel") == len(inj.accel)
    assert s.count("bounds") == len(inj.bounds)
    assert s.count("outliers") == len(set(inj.speed + inj.accel + inj.bounds))
    assert s.count("duplicates") == len(inj.duplicates)
    assert s.count("ordering") == len(inj.out_of_order)
    assert not s.notes
    # evaluation never cleans: no removed/output counts
    assert not [k for k in s.counts if k[1] in ("removed", "output")]


def test_rules_can_be_switched_off_and_limits_moved(con: Any, files: list[Path]) -> None:
    off = QualityConfig.parse(
        {
            "rules": {
                "bounds": None,
                "max_speed_mps": None,
                "max_abs_accel_mps2": None,
                "ordering": False,
                "duplicates": False,
                "max_jump_speed_mps": None,
                "near_duplicate_s": None,
                "frozen_min_speed_mps": None,
            }
        }
    )
    s = evaluate_files(con, files, BSM, off)
    assert set(s.counts) == {("rows", "input")}
    # a stricter speed limit catches the normal 25 m/s driving too
    strict = QualityConfig.parse({"rules": {"max_speed_mps": 20}})
    assert evaluate_files(con, files, BSM, strict).count("speed") == s.rows_in
    # an explicit box that excludes everybody
    box = {"lat_min": 0, "lat_max": 1, "lon_min": 0, "lon_max": 1}
    s2 = evaluate_files(con, files, BSM, QualityConfig.parse({"rules": {"bounds": box}}))
    assert s2.count("bounds") == s.rows_in


def test_ordering_needs_a_source_order(con: Any, files: list[Path]) -> None:
    rel = "read_parquet(" + repr([str(f) for f in files]) + ")"
    s = evaluate(con, rel, BSM)
    assert ("ordering", "flagged") not in s.counts
    assert any("ordering not evaluated" in n for n in s.notes)
    assert s.count("duplicates") == 2  # the count does not depend on which copy is first


def test_derived_checks_catch_a_position_jump(con: Any, inj: Injected, tmp_path: Path) -> None:
    rows = [point("A", k) for k in range(50)]
    rows[25]["longitude"] += 0.01  # ~840 m in 0.1 s, reported speed normal
    f = write_parts(rows, tmp_path / "jump", pieces=1)
    plain = evaluate_files(con, f, BSM)
    assert plain.count("outliers") == 0
    derived = evaluate_files(
        con, f, BSM, QualityConfig.parse({"rules": {"derived_from_positions": True}})
    )
    # into and out of the jump
    assert derived.count("derived_speed") == 2
    assert derived.count("derived_accel") >= 2
    assert derived.count("outliers") >= 2


def test_exact_duplicates_for_records(con: Any, tmp_path: Path) -> None:
    tim = mapping_for("wydot", "TIM")
    assert isinstance(tim, RecordMapping)
    rows = [
        {
            "generated_at": T0 + timedelta(minutes=i),
            "packet_id": f"p{i}",
            "itis_codes": [i, 7],
            "source_key": "a",
        }
        for i in range(10)
    ]
    # the same message from another object: only bookkeeping differs -> a duplicate
    rows.append(dict(rows[3], source_key="b"))
    rows.append(dict(rows[3], source_key="c"))
    # same time, different content -> not a duplicate
    rows.append(dict(rows[4], itis_codes=[1]))
    f = write_parts(rows, tmp_path / "tim", pieces=1)
    s = evaluate_files(con, f, tim)
    assert s.count("duplicates") == 2
    out = tmp_path / "tim-clean.parquet"
    s = apply(con, f, out, tim, cfg(remove_duplicates=True))
    got = read(out)
    assert s.rows_out == len(got) == len(rows) - 2
    assert [r["source_key"] for r in got if r["packet_id"] == "p3"] == ["a"]  # first kept


def test_trajectory_cleaning_on_records_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"quality\.cleaning\.smoothing applies to trajectories"):
        DataSourceConfig.from_values(
            source="thea",
            message_type="SPAT",
            date_range={"days_back": 1},
            quality={"cleaning": {"smoothing": {"enabled": True}}},
        )


# -- cleaning ---------------------------------------------------------------------------------
def test_nothing_enabled_copies_the_rows_unchanged(
    con: Any, inj: Injected, files: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "out" / "clean.parquet"
    con.execute("SET preserve_insertion_order = false")  # as the ingest's connections
    s = apply(con, files, out, BSM)
    assert con.execute("SELECT current_setting('preserve_insertion_order')").fetchone() == (False,)
    assert pq.read_table(out).equals(pa.Table.from_pylist(inj.rows))
    assert s.rows_out == s.rows_in == len(inj.rows)
    assert s.count("speed") == 3  # still counted
    assert pq.ParquetFile(out).metadata.row_group(0).column(0).compression == "ZSTD"
    assert [p.name for p in out.parent.iterdir()] == ["clean.parquet"]  # no temporary left


def test_remove_duplicates_removes_exactly_the_copies(
    con: Any, inj: Injected, files: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "dedup.parquet"
    s = apply(con, files, out, BSM, cfg(remove_duplicates=True))
    expected = [r for i, r in enumerate(inj.rows) if i not in inj.duplicates]
    assert read(out) == expected  # order kept, originals kept
    assert s.count("duplicates", "removed") == 2
    assert s.rows_out == len(inj.rows) - 2
    assert ("outliers", "removed") not in s.counts


def test_remove_outliers_removes_exactly_the_outliers(
    con: Any, inj: Injected, files: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "noout.parquet"
    s = apply(con, files, out, BSM, cfg(remove_outliers=True))
    bad = set(inj.speed + inj.accel + inj.bounds)
    assert read(out) == [r for i, r in enumerate(inj.rows) if i not in bad]
    assert s.count("outliers", "removed") == len(bad)
    assert s.rows_out == s.rows_in - len(bad)


def test_both_removals_count_each_row_once(con: Any, inj: Injected, tmp_path: Path) -> None:
    rows = list(inj.rows)
    rows.insert(inj.speed[0] + 1, dict(rows[inj.speed[0]]))  # an outlier that is also a copy
    f = write_parts(rows, tmp_path / "both")
    s = apply(
        con, f, tmp_path / "both.parquet", BSM, cfg(remove_duplicates=True, remove_outliers=True)
    )
    assert s.count("duplicates", "removed") == 3
    assert s.count("outliers", "removed") == 5  # the copied outlier is removed as a duplicate
    assert s.rows_out == len(rows) - 8 == len(read(tmp_path / "both.parquet"))


def test_gap_detection_numbers_segments_and_never_deletes(
    con: Any, inj: Injected, files: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "gaps.parquet"
    s = apply(con, files, out, BSM, cfg(detect_gaps={"enabled": True}))
    got = read(out)
    assert len(got) == len(inj.rows)
    assert s.count("gaps", "gaps") == 1 and s.count("gaps", "segments") == 4
    assert [{k: v for k, v in r.items() if k != "segment"} for r in got] == inj.rows
    for r in got:
        silent_after = T0 + timedelta(seconds=3)
        expect = 1 if r["vehicle_id"] == inj.gap_vehicle and r["generated_at"] > silent_after else 0
        assert r["segment"] == expect
    # a longer threshold sees no gap
    s = apply(con, files, out, BSM, cfg(detect_gaps={"enabled": True, "max_gap_s": 10}))
    assert s.count("gaps", "gaps") == 0 and {r["segment"] for r in read(out)} == {0}


def test_smoothing_changes_only_the_position_columns(
    con: Any, inj: Injected, files: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "smooth.parquet"
    s = apply(con, files, out, BSM, cfg(smoothing={"enabled": True, "window": 5, "order": 2}))
    got = read(out)
    assert len(got) == len(inj.rows)
    changed = set()
    for a, b in zip(inj.rows, got, strict=True):
        changed |= {k for k in a if a[k] != b[k]}
    assert changed == {"latitude", "longitude"}
    assert s.count("smoothing", "smoothed") > 0
    # edges (2 samples at each end of each gap-free segment) are left as they are
    by_vehicle: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for a, b in zip(inj.rows, got, strict=True):
        by_vehicle.setdefault(a["vehicle_id"], []).append((a, b))
    a_rows = sorted(by_vehicle["A"], key=lambda ab: ab[0]["generated_at"])
    assert [b["latitude"] for _, b in a_rows[:2]] == [a["latitude"] for a, _ in a_rows[:2]]


def sg_reference(y: np.ndarray, window: int, order: int) -> np.ndarray:
    """Independent reference: a numpy.polyfit per window, evaluated at the centre."""
    h = window // 2
    out = y.copy()
    k = np.arange(-h, h + 1, dtype=float)
    for j in range(h, len(y) - h):
        out[j] = np.polyval(np.polyfit(k, y[j - h : j + h + 1], order), 0.0)
    return out


@pytest.mark.parametrize(("window", "order"), [(5, 2), (7, 3), (11, 2), (3, 0)])
def test_savgol_matches_a_polyfit_reference(
    con: Any, tmp_path: Path, window: int, order: int
) -> None:
    rng = np.random.default_rng(window * 10 + order)
    n = 80
    lat = 41.3 + np.cumsum(rng.normal(2e-5, 1e-5, n))
    lon = -105.6 + np.cumsum(rng.normal(3e-5, 1e-5, n))
    rows = [dict(point("S", k), latitude=float(lat[k]), longitude=float(lon[k])) for k in range(n)]
    rng.shuffle(rows)  # storage order must not matter: windows follow time
    f = write_parts(rows, tmp_path / "sg")
    out = tmp_path / "sg.parquet"
    s = apply(con, f, out, BSM, cfg(smoothing={"enabled": True, "window": window, "order": order}))
    got = sorted(read(out), key=lambda r: r["generated_at"])
    h = window // 2
    assert s.count("smoothing", "smoothed") == n - 2 * h
    for col, raw in (("latitude", lat), ("longitude", lon)):
        mine = np.array([r[col] for r in got])
        ref = sg_reference(raw, window, order)
        np.testing.assert_allclose(mine[h:-h], ref[h:-h], rtol=0, atol=1e-9)
        assert np.array_equal(mine[:h], raw[:h]) and np.array_equal(mine[-h:], raw[-h:])


def test_savgol_leaves_a_straight_line_unchanged(con: Any, tmp_path: Path) -> None:
    rows = [point("L", k) for k in range(40)]  # latitude and longitude linear in time
    f = write_parts(rows, tmp_path / "line", pieces=1)
    out = tmp_path / "line.parquet"
    apply(con, f, out, BSM, cfg(smoothing={"enabled": True, "window": 9, "order": 1}))
    for a, b in zip(rows, read(out), strict=True):
        assert b["latitude"] == pytest.approx(a["latitude"], abs=1e-11)
        assert b["longitude"] == pytest.approx(a["longitude"], abs=1e-11)


def test_savgol_weights() -> None:
    w = savgol_weights(5, 2)
    np.testing.assert_allclose(w, np.array([-3, 12, 17, 12, -3]) / 35, atol=1e-12)
    assert savgol_weights(7, 0) == pytest.approx(np.full(7, 1 / 7))
    with pytest.raises(ValueError):
        savgol_weights(4, 2)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    half=st.integers(1, 6),
    data=st.data(),
    n=st.integers(15, 40),
)
def test_smoothing_a_polynomial_of_degree_at_most_order_is_identity(
    half: int, data: Any, n: int
) -> None:
    window = 2 * half + 1
    order = data.draw(st.integers(0, min(window - 1, 4)), label="order")
    degree = data.draw(st.integers(0, order), label="degree")
    coef = data.draw(
        st.lists(st.floats(-2, 2, allow_nan=False), min_size=degree + 1, max_size=degree + 1),
        label="coef",
    )
    k = np.arange(n, dtype=float) / n  # scaled so high powers stay O(1)
    y = np.polyval(coef, k)
    rows = [dict(point("P", j), x_m=float(y[j]), y_m=0.0) for j in range(n)]
    m = TrajectoryMapping(id="vehicle_id", time="generated_at", x="x_m", y="y_m")
    with tempfile.TemporaryDirectory() as d, duckdb.connect() as c:
        f = write_parts(rows, Path(d) / "p", pieces=1)
        out = Path(d) / "out.parquet"
        apply(c, f, out, m, cfg(smoothing={"enabled": True, "window": window, "order": order}))
        got = np.array([r["x_m"] for r in read(out)])
    np.testing.assert_allclose(got, y, rtol=0, atol=1e-9)


def test_smoothing_never_spans_a_gap(con: Any, tmp_path: Path) -> None:
    # two straight pieces with a jump between them, 8 s apart: smoothing must not blend them
    rows = [dict(point("G", k), x_m=float(k), y_m=0.0) for k in range(20)]
    rows += [dict(point("G", k, offset_s=8.0), x_m=1000.0 + k, y_m=0.0) for k in range(20, 40)]
    m = TrajectoryMapping(id="vehicle_id", time="generated_at", x="x_m", y="y_m")
    f = write_parts(rows, tmp_path / "g", pieces=1)
    out = tmp_path / "g.parquet"
    s = apply(con, f, out, m, cfg(smoothing={"enabled": True, "window": 5, "order": 1}))
    assert [r["x_m"] for r in read(out)] == pytest.approx([r["x_m"] for r in rows], abs=1e-9)
    assert s.count("smoothing", "smoothed") == 2 * (20 - 4)
    assert "segment" not in read(out)[0]  # segments steer smoothing; only detect_gaps adds them


def test_ngsim_mapping_and_defaults(con: Any, tmp_path: Path) -> None:
    m = mapping_for("ngsim", "TRAJECTORY")
    assert isinstance(m, TrajectoryMapping) and m.default_max_gap_s == 1.0
    rows = [
        {
            "vehicle_id": "us-101/1/12",
            "timestamp": T0 + timedelta(seconds=k / 10),
            "x_m": 2.0 * k,
            "y_m": 1.0,
            "latitude": 34.14,
            "longitude": -118.36,
            "speed_mps": 20.0,
            "accel_mps2": 0.0,
            "lane_id": 2,
            "location": "us-101",
            "date": date(2021, 4, 1),
        }
        for k in range(30)
    ]
    del rows[10:25]  # 1.6 s of silence: a gap at the 1 s NGSIM default (not at 5 s)
    f = write_parts(rows, tmp_path / "ng", pieces=1)
    s = apply(
        con,
        f,
        tmp_path / "ng.parquet",
        m,
        cfg(detect_gaps={"enabled": True}, smoothing={"enabled": True}),
    )
    assert s.count("gaps", "gaps") == 1 and s.count("bounds") == 0
    assert s.count("smoothing", "smoothed") == len(rows) - 8
    assert (
        json.loads(s.config_json or "{}")["rules"]["bounds"]["lat_min"]
        == DEFAULT_BOUNDS["ngsim"][0]
    )


def test_a_missing_column_is_one_clear_error(con: Any, tmp_path: Path) -> None:
    rows = [{"vehicle_id": "a", "generated_at": T0, "latitude": 41.3}]
    f = write_parts(rows, tmp_path / "m", pieces=1)
    with pytest.raises(CatalogError, match="no column 'longitude'"):
        evaluate_files(con, f, BSM)
    f2 = write_parts([point("A", k) for k in range(5)], tmp_path / "m2", pieces=1)
    with pytest.raises(ConfigError, match="no column 'nope'"):
        apply(
            con,
            f2,
            tmp_path / "x.parquet",
            BSM,
            cfg(smoothing={"enabled": True, "columns": ["nope"]}),
        )
    with pytest.raises(ConfigError, match="not a numeric"):
        apply(
            con,
            f2,
            tmp_path / "x.parquet",
            BSM,
            cfg(smoothing={"enabled": True, "columns": ["source_key"]}),
        )


# -- configuration ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"cleaning": {"smoothing": {"window": 4}}},
            "cleaning.smoothing.window: window must be an odd number of samples >= 3, got 4",
        ),
        (
            {"cleaning": {"smoothing": {"window": 5, "order": 5}}},
            "cleaning.smoothing: order (5) must be smaller than window (5)",
        ),
        (
            {"rules": {"bounds": {"lat_min": 45, "lat_max": 41, "lon_min": -111, "lon_max": -104}}},
            "rules.bounds: lat_min (45.0) is above lat_max (41.0)",
        ),
        ({"rules": {"bounds": "wyoming"}}, "rules.bounds: bounds must be 'auto', null (off)"),
        ({"rules": {"max_speed_mps": 0}}, "rules.max_speed_mps: Input should be greater than 0"),
        (
            {"cleaning": {"detect_gaps": {"max_gap_s": -1}}},
            "cleaning.detect_gaps.max_gap_s: max_gap_s must be a positive number of seconds",
        ),
        (
            {
                "cleaning": {"remove_outliers": True},
                "rules": {"bounds": None, "max_speed_mps": None, "max_abs_accel_mps2": None},
            },
            "cleaning.remove_outliers needs at least one outlier rule",
        ),
        (
            {"cleaning": {"smoothing": {"method": "kalman"}}},
            "cleaning.smoothing.method: Input should be 'savgol'",
        ),
        ({"rulez": {}}, "rulez: Extra inputs are not permitted"),
    ],
)
def test_config_errors_are_one_clear_line(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        QualityConfig.parse(data, "q.yml")
    text = str(e.value)
    assert text.startswith("invalid configuration (q.yml): ") and message in text
    assert "\n" not in text


def test_quality_section_in_yaml_then_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    y = tmp_path / "bsm.yml"
    y.write_text(
        "source: wydot\nmessage_type: BSM\ndate_range: {days_back: 1}\n"
        "quality:\n  rules: {max_speed_mps: 50}\n  cleaning:\n    smoothing: {enabled: true, window: 7}\n"
    )
    c = DataSourceConfig.from_yaml(y)
    assert c.quality is not None and c.quality.rules.max_speed_mps == 50
    assert c.quality.cleaning.smoothing.window == 7
    monkeypatch.setenv("CVCATALOG_QUALITY__CLEANING__REMOVE_DUPLICATES", "true")
    monkeypatch.setenv("CVCATALOG_QUALITY__RULES__MAX_SPEED_MPS", "60")
    c = DataSourceConfig.from_yaml(y)
    assert c.quality is not None and c.quality.cleaning.remove_duplicates
    assert c.quality.rules.max_speed_mps == 60 and c.quality.cleaning.smoothing.enabled
    assert QualityConfig.from_yaml(y).rules.max_speed_mps == 50  # the section of the same file
    monkeypatch.delenv("CVCATALOG_QUALITY__CLEANING__REMOVE_DUPLICATES")
    monkeypatch.delenv("CVCATALOG_QUALITY__RULES__MAX_SPEED_MPS")
    plain = DataSourceConfig.from_values(
        source="wydot", message_type="BSM", date_range={"days_back": 1}
    )
    assert plain.quality is None and plain.quality_config == QualityConfig()


# -- recording and the report -----------------------------------------------------------------
def run(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def ingested(s3_client: Any, catalog_dir: Path) -> Any:
    """One day of WYDOT BSM ingested through the CLI (no quality stats recorded)."""
    rep = seed_replica(
        s3_client,
        date(2021, 4, 1),
        date(2021, 4, 1),
        records_per_hour=20,
        files_per_hour=1,
        vehicles=4,
    )
    r = run(
        "ingest",
        "--source",
        "wydot",
        "--type",
        "BSM",
        "--start",
        "2021-04-01",
        "--catalog",
        str(catalog_dir),
        "--rate-limit",
        "0",
        "--no-progress",
    )
    assert r.exit_code == 0, r.output
    return rep


def test_report_without_recorded_stats_evaluates_now(
    ingested: Any, catalog_dir: Path, tmp_path: Path
) -> None:
    png, page = tmp_path / "q.png", tmp_path / "q.html"
    r = run(
        "report",
        "quality",
        "--source",
        "wydot",
        "--type",
        "BSM",
        "--catalog",
        str(catalog_dir),
        "--format",
        "json",
        "--png",
        str(png),
        "--html",
        str(page),
    )
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)  # the report; its lines for people and what was written: stderr
    *people, wrote_png, wrote_page = r.stderr.splitlines()
    assert [wrote_png, wrote_page] == [f"wrote {png}", f"wrote {page}"]
    assert "hour(s) covered" in people[0]
    total = next(x for x in rows if x["section"] == "rows")
    assert total["count"] == ingested.records
    rules = {(x["item"], x["action"]): x for x in rows if x["section"] == "rule"}
    assert rules[("speed", "flagged")]["origin"] == "evaluated now"
    # the same numbers as evaluating the rules directly over the view
    with Catalog(catalog_dir).db.read() as c:
        direct = evaluate(c, "wydot_bsm", BSM)
        by_hour = dict(
            c.execute(
                "SELECT strftime(generated_at AT TIME ZONE 'UTC', '%H'), count(*) FROM wydot_bsm "
                "GROUP BY 1"
            ).fetchall()
        )
    for rule in ("bounds", "speed", "accel", "duplicates"):
        assert rules[(rule, "flagged")]["count"] == direct.count(rule)
    days = [x for x in rows if x["section"] == "coverage_day"]
    assert [(d["item"], d["count"]) for d in days] == [("2021-04-01", ingested.records)]
    hours = {x["item"]: x["count"] for x in rows if x["section"] == "coverage_hour"}
    assert hours == by_hour
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    text = page.read_text()
    assert f"{ingested.records:,}" in text and "data:image/png;base64," in text
    assert "no quality stats recorded yet" in text

    r = run("report", "quality", "--source", "wydot", "--catalog", str(catalog_dir))
    assert r.exit_code == 0, r.output
    assert "evaluated now" in r.output and "2021-04-01" in r.output
    assert "note: BSM: no quality stats recorded yet" in r.output
    assert "partly outside" not in r.output  # the folder days' own zone
    # another zone: the edge days hold part of a day, which the report says (they read as days
    # of little traffic, their empty hours as hours without any)
    r = run("report", "quality", "--source", "wydot", "--catalog", str(catalog_dir),
            "--timezone", "America/Denver")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "the catalog holds wydot's UTC days: in America/Denver the first and last days" in (
        " ".join(r.output.split())
    )


def test_recorded_stats_are_reported_for_the_current_run(
    ingested: Any, catalog_dir: Path, tmp_path: Path
) -> None:
    cat = Catalog(catalog_dir)
    [part] = cat.partitions("wydot", "BSM", "2021-04-01", "2021-04-01")
    with cat.db.read() as c:
        paths = [
            cat.paths.absolute(p)
            for (p,) in c.execute(
                "SELECT path FROM partition_files WHERE partition_key = ? AND kind = 'data'",
                [part.partition_key],
            ).fetchall()
        ]
    qc = cfg(remove_duplicates=True)
    with duckdb.connect() as c:
        stats = apply(c, paths, tmp_path / "clean.parquet", BSM, qc)
    stats.counts[("speed", "flagged")] = 7  # distinguishable from an evaluation
    with cat.db.write() as c:
        record(c, "old-run", "wydot", "BSM", part.partition_key, stats, qc)  # not current
        stats.counts[("speed", "flagged")] = 11
        record(c, part.run_id or "", "wydot", "BSM", part.partition_key, stats, qc)
        record(c, part.run_id or "", "wydot", "BSM", part.partition_key, stats, qc)  # idempotent
        (saved,) = c.execute(
            "SELECT config_json FROM quality_configs WHERE run_id = ?", [part.run_id]
        ).fetchone()
    assert json.loads(saved)["cleaning"]["remove_duplicates"] is True
    assert json.loads(saved)["rules"]["bounds"]["lat_min"] == DEFAULT_BOUNDS["wydot"][0]
    rep = build_report(cat, "wydot", "BSM")
    [t] = rep.types
    assert t.origin == "recorded" and t.counts[("speed", "flagged")] == 11
    assert t.counts[("rows", "input")] == stats.rows_in and t.rows == ingested.records
    assert not t.notes


def test_unknown_source_is_one_line_and_exit_1(catalog_dir: Path) -> None:
    Catalog(catalog_dir).db.initialise()  # an empty catalog (a read creates none)
    r = run("report", "quality", "--source", "bogus", "--catalog", str(catalog_dir))
    assert r.exit_code == 1
    assert "unknown source 'bogus'" in r.output and "Traceback" not in r.output
    r = run(
        "report", "quality", "--source", "wydot", "--type", "SPAT", "--catalog", str(catalog_dir)
    )
    assert r.exit_code == 1 and "does not publish 'SPAT'" in r.output
    # NGSIM has a (typed, empty) view in every catalog: an empty report, not an error
    r = run(
        "report", "quality", "--source", "ngsim", "--format", "json", "--catalog", str(catalog_dir)
    )
    assert r.exit_code == 0, r.output
    rows = [x for x in json.loads(r.stdout) if x["section"] == "rows"]
    assert rows and rows[0]["source"] == "ngsim" and rows[0]["count"] == 0


def test_empty_catalog_reports_no_data(catalog_dir: Path, tmp_path: Path) -> None:
    cat = Catalog(catalog_dir)
    cat.db.initialise()  # an empty catalog (a read creates none)
    rep = build_report(cat, "thea")
    assert [t.message_type for t in rep.types] == ["BSM", "TIM", "SPAT"]
    assert all(t.rows == 0 and t.origin == "no data" for t in rep.types)
    # said in the table too, so zero counts do not read as a clean source
    assert rep.notes() == [
        f"{t}: no rows in the catalog (`cvcatalog ingest --source thea` first)"
        for t in ("BSM", "TIM", "SPAT")
    ]
    r = run("report", "quality", "--source", "thea", "--type", "TIM", "--catalog", str(catalog_dir))
    assert r.exit_code == 0 and r.output.endswith(
        "note: TIM: no rows in the catalog (`cvcatalog ingest --source thea` first)\n"
    )
    assert render_png(rep).startswith(b"\x89PNG")


def test_html_escapes_every_value() -> None:
    t = TypeQuality(
        "wydot",
        "<b>BSM</b>",
        "v",
        rows=5,
        origin="recorded",
        counts={("speed&<x>", "flagged"): 3},
        coverage=[("2021-04-01", "07", 5)],
        notes=["<script>alert(1)</script>"],
    )
    page = render_html(QualityReport("wydot", "UTC", [t]), png=b"\x89PNG fake")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "&lt;b&gt;BSM&lt;/b&gt;" in page and "speed&amp;&lt;x&gt;" in page


def test_the_example_config_documents_the_defaults() -> None:
    repo = Path(__file__).resolve().parent.parent
    c = DataSourceConfig.from_yaml(repo / "configs/data_sources/wydot_bsm.yml")
    assert c.quality == QualityConfig()


def test_source_order_follows_the_object_key_then_the_row(con: Any, tmp_path: Path) -> None:
    """Objects may be stored in any order; records keep their order inside an object."""
    early = [dict(point("A", k), source_key="BSM/2021/04/01/01/obj") for k in range(10)]
    late = [dict(point("A", k), source_key="BSM/2021/04/01/22/obj") for k in range(10, 20)]
    f = write_parts(late + early, tmp_path / "keys", pieces=1)  # hour 22 stored first
    assert evaluate_files(con, f, BSM).count("ordering") == 0
    late[3], late[4] = late[4], late[3]  # inside an object the row order counts
    f = write_parts(late + early, tmp_path / "keys2", pieces=1)
    assert evaluate_files(con, f, BSM).count("ordering") == 1
    out = tmp_path / "kept.parquet"
    apply(con, f, out, BSM, cfg(remove_duplicates=True))
    assert read(out) == late + early  # the output keeps the storage order


def test_every_source_has_a_mapping_and_a_view() -> None:
    from cvcatalog.quality.mapping import quality_sources, view_for

    for source, types in quality_sources().items():
        for mt in types:
            m = mapping_for(source, mt)
            assert isinstance(m, TrajectoryMapping) == (mt in ("BSM", "TRAJECTORY"))
            assert view_for(source, mt) == f"{source}_{mt.lower()}" or (source, mt) == (
                "ngsim",
                "TRAJECTORY",
            )
    assert view_for("ngsim", "TRAJECTORY") == "ngsim_trajectories"
    thea = mapping_for("thea", "BSM")
    assert isinstance(thea, TrajectoryMapping) and thea.default_bounds == DEFAULT_BOUNDS["thea"]


def test_coverage_by_day_and_hour_and_by_nycdot_bins(con: Any) -> None:
    from cvcatalog.quality.report import TypeQuality, _coverage

    con.execute(
        "CREATE VIEW v AS SELECT TIMESTAMPTZ '2021-04-01 05:30:00+00' + INTERVAL (i) MINUTE "
        "AS generated_at FROM range(120) t(i)"
    )
    got = _coverage(con, "v", mapping_for("wydot", "TIM"), "America/Denver")  # UTC-6 in April
    assert got == [("2021-03-31", "23", 30), ("2021-04-01", "00", 60), ("2021-04-01", "01", 30)]
    con.execute(
        "CREATE VIEW e AS SELECT * FROM (VALUES (2021, 4, 'TUE', 'PM'), (2021, 4, 'MON', 'AM'), "
        "(2021, 4, 'MON', 'AM'), (2021, 4, 'MON', 'NT')) t(year, month, weekday, time_bin)"
    )
    bins = _coverage(con, "e", mapping_for("nycdot", "EVENT"), "UTC")
    assert bins == [("2021-04 MON", "NT", 1), ("2021-04 MON", "AM", 2), ("2021-04 TUE", "PM", 1)]
    # the report names them as they are (it said "3 hour(s) of day covered" of NYCDOT's bins)
    assert TypeQuality("nycdot", "EVENT", "e", coverage=bins).hour_unit == "time-of-day bin"
    assert TypeQuality("wydot", "TIM", "v", coverage=got).hour_unit == "hour"


def _flagged(
    con: Any, rows: list[dict[str, Any]], rule: str, cfg: QualityConfig | None = None
) -> list[int]:
    """Indices (in time order) of the rows flag_rows marks for one rule."""
    con.register("pts", pa.Table.from_pylist(rows))
    q = flag_rows(con, "pts", BSM, cfg)
    got = con.execute(f"{q.sql} ORDER BY generated_at", q.params).fetchall()
    names = [d[0] for d in con.description]
    con.unregister("pts")
    return [i for i, r in enumerate(got) if r[names.index(f"rule_{rule}")]]


@pytest.mark.parametrize("k", [0, 1, 25, 48, 49])
def test_a_position_jump_flags_the_point_not_its_neighbours(con: Any, k: int) -> None:
    rows = [point("A", i) for i in range(50)]
    rows[k]["longitude"] += 0.01  # ~840 m in 0.1 s
    assert _flagged(con, rows, "jumps") == [k]
    assert _flagged(con, [point("A", i) for i in range(50)], "jumps") == []
    # a relocation after a silence (a new fix 10 km away 2 min later) is not a jump
    far = [point("A", i) for i in range(10)]
    far += [{**point("A", i, offset_s=120.0), "longitude": -105.5} for i in range(10, 20)]
    assert _flagged(con, far, "jumps") == []


@pytest.mark.parametrize("k", [0, 1, 25, 49])
def test_a_speed_spike_flags_the_point(con: Any, k: int) -> None:
    rows = [point("A", i) for i in range(50)]
    rows[k]["speed_mps"] += 5.0  # 50 m/s2 up and back down
    assert _flagged(con, rows, "speed_spikes") == [k]
    # a step change (up and staying up) is one hard change, not a spike
    clean = [point("A", i) for i in range(50)]
    step = [
        {**p, "speed_mps": p["speed_mps"] + (5.0 if i >= 25 else 0.0)} for i, p in enumerate(clean)
    ]
    assert _flagged(con, step, "speed_spikes") == []


def test_near_duplicates_and_frozen_positions(con: Any) -> None:
    rows = [point("A", i) for i in range(30)]
    copy = {**rows[10], "generated_at": rows[10]["generated_at"] + timedelta(milliseconds=5)}
    assert _flagged(con, [*rows, copy], "near_duplicates") == [11]
    # a copy 30 ms later is the next sample, as far as the rule knows
    late = {**rows[10], "generated_at": rows[10]["generated_at"] + timedelta(milliseconds=30)}
    assert _flagged(con, [*rows, late], "near_duplicates") == []
    # frozen: samples 5..8 repeat sample 4's position at 25 m/s
    frozen = [dict(p) for p in rows]
    for i in range(5, 9):
        frozen[i]["latitude"], frozen[i]["longitude"] = rows[4]["latitude"], rows[4]["longitude"]
    assert _flagged(con, frozen, "frozen") == [5, 6, 7, 8]
    # a stopped vehicle repeats its position legitimately
    stopped = [{**p, "speed_mps": 0.0} for p in frozen]
    assert _flagged(con, stopped, "frozen") == []
    # the near copy is not a frozen position too
    assert _flagged(con, [*rows, copy], "frozen") == []
    off = QualityConfig.parse({"rules": {"frozen_min_speed_mps": None}})
    con.register("pts", pa.Table.from_pylist(frozen))
    assert "frozen" not in flag_rows(con, "pts", BSM, off).rules
    assert evaluate(con, "pts", BSM).count("frozen") == 4


def test_report_quality_reads_the_environment_as_an_ingest_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`report quality` read only --config: CVCATALOG_QUALITY__* was silently ignored (rules
    evaluated with the file's or the default limits), and a data-source file without a
    quality: section was 'quality.source: Extra inputs are not permitted (and 7 more)'."""
    from cvcatalog.config import quality_config

    section = tmp_path / "q.yml"
    section.write_text("rules:\n  max_speed_mps: 30\n")
    source = tmp_path / "ds.yml"
    source.write_text("source: wydot\nmessage_type: BSM\ndate_range: {days_back: 1}\n")
    assert quality_config() is None and quality_config(source) is None
    assert quality_config(section).rules.max_speed_mps == 30  # type: ignore[union-attr]
    monkeypatch.setenv("CVCATALOG_QUALITY__RULES__MAX_SPEED_MPS", "40")
    assert quality_config(section).rules.max_speed_mps == 40  # type: ignore[union-attr]
    assert quality_config(source).rules.max_speed_mps == 40  # type: ignore[union-attr]
    assert quality_config().rules.max_speed_mps == 40  # type: ignore[union-attr]
    monkeypatch.setenv("CVCATALOG_QUALITY__RULES__MAX_SPEED_MPS", "fast")
    r = CliRunner().invoke(app, ["report", "quality", "--source", "wydot",
                                 "--catalog", str(tmp_path / "none")])  # fmt: skip
    assert r.exit_code == 1 and r.stderr == (
        "error: invalid configuration (CVCATALOG_QUALITY__RULES__MAX_SPEED_MPS): "
        "quality.rules.max_speed_mps: Input should be a valid number, unable to parse string "
        "as a number\n"
    )
