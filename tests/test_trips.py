"""Trips and kinematic features (the *_points, *_trips, *_kinematics views) against an
independent segmentation in Python and pyproj's geodesics: a real WYDOT sample made into
designed trajectories (gap exactly at the threshold, one-point trips, a rotated id), the
replica, NGSIM-shaped trajectories, and the trips' gap as a catalog setting."""

from __future__ import annotations

import copy
import itertools
import json
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from pyproj import Geod
from typer.testing import CliRunner

from cvcatalog.catalog import Catalog
from cvcatalog.cli.main import app
from cvcatalog.config import trips_config
from cvcatalog.exceptions import ConfigError
from cvcatalog.io.duckdb_ext import extension_path, load_extension
from cvcatalog.sandbox.ngsim import generate_ngsim
from cvcatalog.sandbox.replica import seed_replica
from cvcatalog.sources.bucket import BUCKET
from cvcatalog.state.trips import DEFAULT_MAX_GAP_S, check_gap, gap_us

SAMPLE = Path(__file__).parent / "fixtures" / "sandbox" / "wydot-filtered-bsm-schemaVersion6.json"
GEOD = Geod(ellps="WGS84")
T0 = datetime(2018, 5, 6, 20, 26, 28, 690_000, tzinfo=UTC)

#: (vehicle id, seconds after T0, speed m/s, heading deg): the designed trajectories
DESIGN: list[tuple[str, float, float, float]] = [
    # CB950124: 1 s steps, then a gap of exactly 120 s (same trip), then 120.001 s (new trip)
    ("CB950124", 0.0, 7.52, 82.4375),
    ("CB950124", 1.0, 8.0, 84.0),
    ("CB950124", 2.0, 9.5, 90.0),
    ("CB950124", 122.0, 10.0, 359.0),
    ("CB950124", 242.001, 11.0, 1.0),
    ("CB950124", 243.001, 12.5, 2.0),
    # the same car after its temporary id rotated: another trip of another id
    ("0A1B2C3D", 244.001, 12.0, 359.5),
    ("0A1B2C3D", 245.001, 12.0, 0.5),
    # a one-point trip
    ("FFFF0001", 30.0, 0.0, 0.0),
]


def _positions() -> list[tuple[float, float]]:
    """(lat, lon) of each designed point: from the sample's position, each step moves
    speed * dt along the heading (pyproj forward), so the truth is known."""
    base = json.loads(SAMPLE.read_text())["payload"]["data"]["coreData"]["position"]
    lat, lon = base["latitude"], base["longitude"]
    out = []
    last: tuple[float, float, float] | None = None
    for _, t, v, h in DESIGN:
        if last is not None:
            dt = t - last[0]
            lon, lat, _ = GEOD.fwd(lon, lat, h, min(v * dt, 300.0))
        out.append((round(lat, 7), round(lon, 7)))
        last = (t, v, h)
    return out


def _records() -> list[dict[str, Any]]:
    rec = json.loads(SAMPLE.read_text())
    out = []
    for (vid, t, v, h), (lat, lon) in zip(DESIGN, _positions(), strict=True):
        r = copy.deepcopy(rec)
        when = T0 + timedelta(seconds=t)
        r["metadata"]["recordGeneratedAt"] = when.isoformat(timespec="milliseconds").replace(
            "+00:00", "Z"
        )
        core = r["payload"]["data"]["coreData"]
        core.update(
            id=vid, speed=v, heading=h, secMark=(when.second * 1000 + when.microsecond // 1000)
        )
        core["position"].update(latitude=lat, longitude=lon)
        out.append(r)
    return out


def python_trips(points: pd.DataFrame, gap_s: float) -> dict[str, dict[str, Any]]:
    """The independent segmentation: per (source, vehicle id), in time order, a new trip
    where consecutive times differ by more than gap_s; distances from pyproj's Geod."""
    out: dict[str, dict[str, Any]] = {}
    pts = points.dropna(subset=["vehicle_id", "t"]).sort_values(["source", "vehicle_id", "t"])
    for (source, vid), g in pts.groupby(["source", "vehicle_id"], sort=False):
        current: list[Any] = []
        rows = list(g.itertuples())
        for k, row in enumerate(rows):
            if k == 0 or (row.t - rows[k - 1].t).total_seconds() > gap_s:
                current = []
                first = row.t.tz_convert("UTC")
                tid = f"{source}:{vid}:{first.strftime('%Y-%m-%dT%H:%M:%S')}.{first.microsecond // 1000:03d}Z"
                out[tid] = {"rows": current}
            current.append(row)
    for trip in out.values():
        rows = trip.pop("rows")
        dist = 0.0
        for a, b in itertools.pairwise(rows):
            dist += GEOD.inv(a.longitude, a.latitude, b.longitude, b.latitude)[2]
        trip.update(
            points=len(rows), start=rows[0].t, end=rows[-1].t, distance_m=dist,
            lat_min=min(r.latitude for r in rows), lon_max=max(r.longitude for r in rows),
        )  # fmt: skip
    return out


def check_trips(cat: Catalog, prefix: str, relation: str, time: str, gap_s: float) -> int:
    source = "source" if relation == "bsm" else f"'{prefix}' as source"
    points = cat.query(
        f'select {source}, vehicle_id, "{time}" as t, latitude, longitude from {relation}'
    )
    want = python_trips(points, gap_s)
    got = cat.query(f"select * from {prefix}_trips").set_index("trip_id")
    assert set(got.index) == set(want)
    for tid, w in want.items():
        g = got.loc[tid]
        assert g.points == w["points"]
        assert g.start_time == w["start"] and g.end_time == w["end"]
        assert g.duration_s == pytest.approx((w["end"] - w["start"]).total_seconds())
        assert g.distance_m == pytest.approx(w["distance_m"], rel=1e-6, abs=1e-6)
        assert (g.lat_min, g.lon_max) == (w["lat_min"], w["lon_max"])
    n = cat.query(f"select count(*) as n, count(trip_id) as t from {prefix}_points")
    assert int(n.n[0]) == len(points) and int(n.t[0]) == len(points.dropna(subset=["vehicle_id"]))
    return len(want)


@pytest.fixture(scope="module")
def samples(module_s3: Any, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The designed trajectories (built from the real v6 sample) in one NDJSON object."""
    body = "".join(json.dumps(r) + "\n" for r in _records()).encode()
    module_s3.put_object(
        Bucket=BUCKET,
        Key="wydot/BSM/2018/05/06/20/usdot-its-cvpilot-bsm-public-6-2018-05-06-20-26-28-v6",
        Body=body,
    )
    cat = Catalog(tmp_path_factory.mktemp("trips") / "catalog")
    s = cat.ingest("wydot", "BSM", "2018-05-06", "2018-05-06", timezone="UTC", rate_limit=0)
    assert s.ok and s.rows == len(DESIGN)
    return cat


def test_sample_trips_split_at_more_than_the_gap_only(samples: Catalog) -> None:
    trips = samples.query("select * from bsm_trips order by start_time, vehicle_id")
    by_id = trips.set_index("trip_id")
    first = "wydot:CB950124:2018-05-06T20:26:28.690Z"
    # 0, 1, 2, and 122 s (a gap of exactly 120 s stays in the trip)
    assert by_id.loc[first].points == 4
    assert by_id.loc[first].duration_s == 122.0
    # 120.001 s later: a new trip
    assert by_id.loc["wydot:CB950124:2018-05-06T20:30:30.691Z"].points == 2
    # the rotated id is a trip of its own, the lone point a one-point trip with no line
    assert by_id.loc["wydot:0A1B2C3D:2018-05-06T20:30:32.691Z"].points == 2
    lone = by_id.loc["wydot:FFFF0001:2018-05-06T20:26:58.690Z"]
    assert (lone.points, lone.distance_m, lone.duration_s) == (1, 0.0, 0.0)
    assert pd.isna(lone.geometry)
    assert len(trips) == 4
    assert check_trips(samples, "bsm", "bsm", "generated_at", DEFAULT_MAX_GAP_S) == 4


def test_the_trip_id_does_not_depend_on_the_session_timezone(samples: Catalog) -> None:
    with samples.connect() as con:
        con.execute("SET TimeZone = 'America/Denver'")
        ids = {r[0] for r in con.execute("select trip_id from bsm_trips").fetchall()}
    assert ids == set(samples.query("select trip_id from bsm_trips").trip_id)


def test_kinematics_against_hand_computed_values(samples: Catalog) -> None:
    k = samples.query(
        "select vehicle_id, generated_at, dt_s, step_m, implied_speed_mps, speed_residual_mps, "
        "implied_accel_mps2, heading_change_deg, implied_heading_deg from bsm_kinematics "
        "order by vehicle_id, generated_at"
    )
    pos = dict(zip([(v, t) for v, t, _, _ in DESIGN], _positions(), strict=True))
    spec = {(v, t): (s, h) for v, t, s, h in DESIGN}
    checked = 0
    for vid in ("CB950124", "0A1B2C3D"):
        rows = k[k.vehicle_id == vid].reset_index(drop=True)
        times = sorted(t for v, t, _, _ in DESIGN if v == vid)
        assert len(rows) == len(times)
        for i, t in enumerate(times):
            r = rows.iloc[i]
            new_trip = i == 0 or t - times[i - 1] > 120.0
            if new_trip:
                assert pd.isna(r.dt_s) and pd.isna(r.step_m) and pd.isna(r.implied_heading_deg)
                continue
            t0 = times[i - 1]
            (la0, lo0), (la1, lo1) = pos[(vid, t0)], pos[(vid, t)]
            az, _, dist = GEOD.inv(lo0, la0, lo1, la1)
            dt = t - t0
            (v0, h0), (v1, h1) = spec[(vid, t0)], spec[(vid, t)]
            assert r.dt_s == pytest.approx(dt, abs=1e-9)
            assert r.step_m == pytest.approx(dist, rel=1e-7, abs=1e-6)
            assert r.implied_speed_mps == pytest.approx(dist / dt, rel=1e-7)
            assert r.speed_residual_mps == pytest.approx(v1 - dist / dt, rel=1e-6, abs=1e-6)
            assert r.implied_accel_mps2 == pytest.approx((v1 - v0) / dt, abs=1e-9)
            change = (h1 - h0 + 180) % 360 - 180
            assert r.heading_change_deg == pytest.approx(change, abs=1e-9)
            assert r.implied_heading_deg == pytest.approx(az % 360, abs=1e-4)
            checked += 1
    assert checked == 5
    # wrapped, not raw: 90 -> 359 is -91, 359.5 -> 0.5 is +1
    changes = set(k.heading_change_deg.dropna().round(4))
    assert {-91.0, 1.0} <= changes and all(-180 <= c <= 180 for c in changes)


def test_the_trip_line_is_wkt_that_spatial_reads(samples: Catalog) -> None:
    trips = samples.query("select trip_id, points, distance_m, geometry from bsm_trips")
    con = duckdb.connect()
    load_extension(con, "spatial")
    for t in trips.itertuples():
        if t.points < 2:
            continue
        n, length = con.execute(
            "SELECT ST_NPoints(g), ST_Length_Spheroid(ST_FlipCoordinates(g)) "
            "FROM (SELECT ST_GeomFromText(?) AS g)",
            [t.geometry],
        ).fetchone()  # type: ignore[misc]
        assert n == t.points
        assert length == pytest.approx(t.distance_m, rel=1e-6)
    assert extension_path("spatial").exists()


def test_a_plain_duckdb_session_reads_the_trip_views(samples: Catalog) -> None:
    con = duckdb.connect()
    load_extension(con, "ducklake")
    con.execute(f"ATTACH 'ducklake:{samples.database}' AS cv (READ_ONLY)")
    n = con.execute("select count(*), sum(points) from cv.bsm_trips").fetchone()
    assert n == (4, len(DESIGN))
    k = con.execute("select count(step_m) from cv.bsm_kinematics").fetchone()
    assert k == (len(DESIGN) - 4,)


def test_changing_the_gap_redefines_the_views(samples: Catalog, tmp_path: Path) -> None:
    assert samples.trip_gap() == DEFAULT_MAX_GAP_S
    copy_dir = tmp_path / "copy"
    shutil.copytree(samples.paths.root, copy_dir)
    cat = Catalog(copy_dir)
    assert cat.set_trip_gap(1.0) == 1.0
    assert cat.trip_gap() == 1.0
    # 1 s gaps stay; the 120 s one now splits CB950124's first trip
    assert check_trips(cat, "bsm", "bsm", "generated_at", 1.0) == 5
    assert cat.set_trip_gap(600) == 600.0
    assert check_trips(cat, "bsm", "bsm", "generated_at", 600.0) == 3
    # the snapshot that defines the views again says why (it was blank in `snapshots`)
    assert cat.snapshots(limit=1)[0]["message"] == "trips.max_gap_s = 600"
    with pytest.raises(ConfigError, match="positive"):
        cat.set_trip_gap(0)
    assert cat.trip_gap() == 600.0
    # the command: --max-gap-s records a gap, then trips per source
    out = CliRunner().invoke(
        app, ["trips", "--catalog", str(copy_dir), "--max-gap-s", "120", "--format", "json"]
    )
    assert out.exit_code == 0, out.output
    rows = {r["source"]: r for r in json.loads(out.stdout)}
    assert rows["wydot"]["trips"] == 4 and rows["wydot"]["one_point_trips"] == 1
    assert all(type(r[c]) is int for r in rows.values() for c in ("trips", "one_point_trips"))
    assert cat.trip_gap() == 120.0


def test_a_published_catalog_makes_its_trip_views_with_its_gap(
    samples: Catalog, module_s3: Any, tmp_path: Path
) -> None:
    shutil.copytree(samples.paths.root, tmp_path / "copy")
    cat = Catalog(tmp_path / "copy")
    cat.set_trip_gap(1.0)
    module_s3.create_bucket(Bucket="trips-published")
    assert cat.publish("s3://trips-published/c").ok
    remote = Catalog("s3://trips-published/c", cache_dir=tmp_path / "remote")
    assert remote.trip_gap() == 1.0
    assert int(remote.query("select count(*) as n from bsm_trips").n[0]) == 5


def test_an_ingest_config_with_trips_records_the_gap(samples: Catalog, tmp_path: Path) -> None:
    shutil.copytree(samples.paths.root, tmp_path / "copy")
    cat = Catalog(tmp_path / "copy")
    cfg = tmp_path / "ds.yml"
    cfg.write_text(
        "source: wydot\nmessage_type: BSM\ndate_range: {start_date: 2018-05-06}\n"
        "trips: {max_gap_s: 1}\n"
    )
    s = cat.ingest("wydot", "BSM", config=cfg, rate_limit=0)  # the day is cached: no data write
    assert s.ok and s.rows == 0 and sum(o.rows for o in s.days) == len(DESIGN)
    assert cat.trip_gap() == 1.0
    assert int(cat.query("select count(*) as n from bsm_trips").n[0]) == 5


def test_the_gap_setting_comes_from_yaml_then_env_then_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "ds.yml"
    cfg.write_text("trips:\n  max_gap_s: 90\n")
    monkeypatch.delenv("CVCATALOG_TRIPS__MAX_GAP_S", raising=False)
    assert trips_config() is None
    assert trips_config(cfg).max_gap_s == 90  # type: ignore[union-attr]
    monkeypatch.setenv("CVCATALOG_TRIPS__MAX_GAP_S", "60")
    assert trips_config(cfg).max_gap_s == 60  # type: ignore[union-attr]
    assert trips_config(cfg, 30).max_gap_s == 30  # type: ignore[union-attr]
    monkeypatch.setenv("CVCATALOG_TRIPS__MAX_GAP_S", "-1")
    with pytest.raises(ConfigError, match="max_gap_s"):
        trips_config(cfg)


def test_a_gap_too_long_for_microseconds_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`trips --max-gap-s 1e308` printed "unexpected OverflowError: cannot convert float
    infinity to integer" (the gap in microseconds); the flag, the YAML and the Python API
    now say the bound."""
    monkeypatch.delenv("CVCATALOG_TRIPS__MAX_GAP_S", raising=False)
    with pytest.raises(ConfigError, match="at most 1e"):
        check_gap(1e308)
    with pytest.raises(ConfigError, match=r"^invalid configuration \(arguments\): trips.max_gap_s"):
        trips_config(None, 1e308)
    assert check_gap(1e12) == 1e12 and gap_us(1e12) == 10**18


# -- the replica and NGSIM --------------------------------------------------------------------
D1, D2 = date(2021, 4, 1), date(2021, 4, 2)


@pytest.fixture(scope="module")
def replica(module_s3: Any, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    seed_replica(module_s3, D1, D2, sources=["wydot", "wydot_backup"], message_types=["BSM"],
                 records_per_hour=40, files_per_hour=1, vehicles=12, seed=5)  # fmt: skip
    cat = Catalog(tmp_path_factory.mktemp("trips_replica") / "catalog")
    for source in ("wydot", "wydot_backup"):
        assert cat.ingest(source, "BSM", D1, D2, rate_limit=0).ok
    csv = tmp_path_factory.mktemp("ngsim") / "ngsim.csv"
    generate_ngsim(csv, rows=3000, seed=3)
    assert cat.ingest_dataset("ngsim", csv).ok
    return cat


def test_replica_trips_match_the_python_segmentation(replica: Catalog) -> None:
    n = check_trips(replica, "bsm", "bsm", "generated_at", DEFAULT_MAX_GAP_S)
    sources = set(replica.query("select distinct source from bsm_trips").source)
    assert sources == {"wydot", "wydot_backup"} and n > 24


def test_ngsim_trips_match_the_python_segmentation(replica: Catalog) -> None:
    n = check_trips(replica, "ngsim", "ngsim_trajectories", "timestamp", DEFAULT_MAX_GAP_S)
    assert n > 1
    k = replica.query(
        "select count(*) as n, count(step_m) as steps, avg(dt_s) as dt, "
        "count(heading_change_deg) as headings from ngsim_kinematics"
    )
    assert int(k.steps[0]) == int(k.n[0]) - n and int(k.headings[0]) == 0


def test_a_bad_gap_names_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CVCATALOG_TRIPS__MAX_GAP_S=abc was `invalid configuration (arguments): max_gap_s: ...`,
    and `trips --config a.yml --max-gap-s -1` blamed a.yml; the section is now named as an
    ingest names it."""
    cfg = tmp_path / "ds.yml"
    cfg.write_text("trips:\n  max_gap_s: 90\n")
    monkeypatch.setenv("CVCATALOG_TRIPS__MAX_GAP_S", "abc")
    with pytest.raises(ConfigError) as raised:
        trips_config(cfg)
    assert str(raised.value).startswith(
        "invalid configuration (CVCATALOG_TRIPS__MAX_GAP_S): trips.max_gap_s: "
    )
    monkeypatch.delenv("CVCATALOG_TRIPS__MAX_GAP_S")
    with pytest.raises(ConfigError, match=r"^invalid configuration \(arguments\): trips.max_gap"):
        trips_config(cfg, -1)
    cfg.write_text("trips:\n  max_gap: 90\n")
    with pytest.raises(ConfigError, match=f"^invalid configuration \\({cfg}\\): trips.max_gap:"):
        trips_config(cfg)
    r = CliRunner().invoke(app, ["trips", "--max-gap-s", "-1", "--config", str(cfg)])
    assert r.exit_code == 1 and r.stderr == "error: --max-gap-s must be more than 0 seconds, got -1\n"


def test_trips_of_a_catalog_without_positions_says_there_are_none(tmp_path: Path) -> None:
    """An empty table (`[]` in JSON) said nothing of why: a note says the catalog holds no
    rows trips are made of, beside the rows (stderr in the machine formats)."""
    cat = Catalog(tmp_path / "catalog")
    cat.set_trip_gap(90)  # a catalog with no data at all
    for fmt, out in (("table", "stdout"), ("json", "stderr")):
        r = CliRunner().invoke(app, ["trips", "--catalog", str(cat.paths.root), "-f", fmt])
        assert r.exit_code == 0, r.output
        assert "no trips: the catalog holds no BSM or NGSIM rows\n" in getattr(r, out)
        if fmt == "json":
            assert r.stdout.strip() == "[]"
