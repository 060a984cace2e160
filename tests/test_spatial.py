"""Spatial filters (issue 15): radius, box and corridor, one meaning in the API, Dask, SQL and the
plain-DuckDB macros, checked against an independent geodesic computation (pyproj's Geod).

Reference distances never come from cvcatalog: a radius is Geod.inv to the centre; a corridor
distance is the minimum of Geod.inv to the polyline sampled every few centimetres (segments
straight in latitude/longitude, as GeoJSON draws them).
"""

from __future__ import annotations

import itertools
import json
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from pyproj import Geod

from cvcatalog import spatial
from cvcatalog.catalog import Catalog
from cvcatalog.exceptions import ConfigError, QueryError
from cvcatalog.io.duckdb_ext import load_extension
from cvcatalog.read.experiments import CatalogGatherer, ExperimentConfig
from cvcatalog.sandbox.ngsim import generate_ngsim
from cvcatalog.sandbox.replica import seed_replica

SAMPLES = Path("/work/shared/samples/sandbox")
GEOD = Geod(ellps="WGS84")
DAY = date(2021, 4, 1)


# -- references -------------------------------------------------------------------------------
def _sample_positions() -> list[tuple[float, float]]:
    """Every real position in the sample records: WYDOT latitude/longitude in degrees, THEA
    lat/long in 1e-7 degrees (zeros, the 'unknown' value, left out)."""
    out: list[tuple[float, float]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "latitude" in node and "longitude" in node:
                la, lo = float(node["latitude"]), float(node["longitude"])
                if la and lo and abs(la) <= 90:
                    out.append((la, lo))
            if "lat" in node and "long" in node:
                la, lo = float(node["lat"]) / 1e7, float(node["long"]) / 1e7
                if abs(la) > 1 and abs(la) <= 90:
                    out.append((la, lo))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for f in sorted(SAMPLES.glob("*-bsm-*.json")):
        walk(json.loads(f.read_text()))
    return sorted(set(out))


def _polyline_distance(lat: float, lon: float, points: list[tuple[float, float]]) -> float:
    """Geodesic distance to the polyline, by brute force: each segment (straight in lat/lon)
    sampled at 400 places, then at 400 more around the nearest (steps of under 20 cm for
    segments up to 15 km: the distance is off by under 0.2 mm for positions 25 m away)."""
    best = np.inf
    n = 400

    def sampled(a: tuple[float, float], b: tuple[float, float], t: np.ndarray) -> np.ndarray:
        la, lo = a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])
        return np.asarray(GEOD.inv(np.full(len(t), lon), np.full(len(t), lat), lo, la)[2])

    for a, b in itertools.pairwise(points):
        t = np.linspace(0, 1, n)
        i = int(np.argmin(sampled(a, b, t)))
        fine = np.linspace(max(0.0, t[i] - 1 / (n - 1)), min(1.0, t[i] + 1 / (n - 1)), n)
        best = min(best, float(sampled(a, b, fine).min()))
    return best


def _ring(lat: float, lon: float, radius: float, offset: float, n: int = 36) -> np.ndarray:
    """n points at radius + offset metres from (lat, lon), all around."""
    az = np.linspace(0, 360, n, endpoint=False)
    lo, la, _ = GEOD.fwd(np.full(n, lon), np.full(n, lat), az, np.full(n, radius + offset))
    return np.column_stack([la, lo])


def _con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    load_extension(con, "spatial")
    con.execute(spatial.macros_sql())
    return con


def _sql_keep(
    con: duckdb.DuckDBPyConnection, f: spatial.SpatialFilter, pts: np.ndarray
) -> np.ndarray:
    con.register(
        "pts",
        pd.DataFrame({"i": np.arange(len(pts)), "latitude": pts[:, 0], "longitude": pts[:, 1]}),
    )
    pred, params = spatial.predicate_sql(f)
    kept = {r[0] for r in con.execute(f"SELECT i FROM pts WHERE {pred}", params).fetchall()}
    return np.array([i in kept for i in range(len(pts))])


# -- radius -----------------------------------------------------------------------------------
def test_sample_positions_are_real() -> None:
    pts = _sample_positions()
    assert any(40 < la < 42 and -112 < lo < -104 for la, lo in pts)  # WYDOT, I-80
    assert any(27 < la < 29 and -83 < lo < -82 for la, lo in pts)  # THEA, Tampa


@pytest.mark.parametrize("radius", [50.0, 2000.0, 25_000.0])
def test_radius_half_a_metre_either_side_of_the_circle(radius: float) -> None:
    con = _con()
    for lat, lon in _sample_positions():
        f = spatial.Within(lat, lon, radius)
        inside, outside = _ring(lat, lon, radius, -0.5), _ring(lat, lon, radius, +0.5)
        pts = np.vstack([inside, outside, [[lat, lon]]])
        ref = (
            GEOD.inv(np.full(len(pts), lon), np.full(len(pts), lat), pts[:, 1], pts[:, 0])[2]
            <= radius
        )
        assert ref[: len(inside)].all() and not ref[len(inside) : -1].any()
        assert (spatial.mask(f, pts[:, 0], pts[:, 1]) == ref).all()
        assert (_sql_keep(con, f, pts) == ref).all()
        # the bounding box contains the whole circle (what row-group pruning relies on)
        box = spatial.bounding_box(f)
        assert (inside[:, 0] >= box.lat_min).all() and (inside[:, 0] <= box.lat_max).all()
        assert (inside[:, 1] >= box.lon_min).all() and (inside[:, 1] <= box.lon_max).all()


def test_radius_on_random_points_matches_geod() -> None:
    rng = np.random.default_rng(3)
    con = _con()
    for lat, lon in _sample_positions():
        f = spatial.Within(lat, lon, 3000)
        pts = np.column_stack(
            [lat + rng.uniform(-0.05, 0.05, 3000), lon + rng.uniform(-0.06, 0.06, 3000)]
        )
        ref = (
            GEOD.inv(np.full(len(pts), lon), np.full(len(pts), lat), pts[:, 1], pts[:, 0])[2]
            <= 3000
        )
        assert 0 < ref.sum() < len(pts)
        assert (spatial.mask(f, pts[:, 0], pts[:, 1]) == ref).all()
        assert (_sql_keep(con, f, pts) == ref).all()
        sql = con.execute(
            "SELECT count(*) FROM pts WHERE cv_within(latitude, longitude, ?, ?, ?)",
            [lat, lon, 3000.0],
        ).fetchone()
        assert sql is not None and sql[0] == ref.sum()


@pytest.mark.parametrize("lat", [0.0, 30.0, 60.0, 75.0])
def test_plain_macros_keep_a_whole_circle_at_any_latitude(lat: float) -> None:
    """cv_within's own latitude/longitude range (for row-group pruning) never drops a point the
    geodesic test keeps, from 1 km to the 1,000 km limit."""
    con = _con()
    for radius in (1e3, 1e5, 1e6):
        for offset, want in ((-0.5, 360), (0.5, 0)):
            pts = _ring(lat, 10.0, radius, offset, n=360)
            con.register("ring", pd.DataFrame({"latitude": pts[:, 0], "longitude": pts[:, 1]}))
            n = con.execute(
                "SELECT count(*) FROM ring WHERE cv_within(latitude, longitude, ?, 10.0, ?)",
                [lat, radius],
            ).fetchone()
            assert n is not None and n[0] == want, (lat, radius, offset)


# -- box --------------------------------------------------------------------------------------
def test_bbox_bounds_are_inclusive_and_exact() -> None:
    f = spatial.BBox(41.1, -105.0, 41.2, -104.9)
    eps = 1e-9
    pts = np.array([
        [41.1, -105.0], [41.2, -104.9], [41.15, -104.95],  # on the corners, inside
        [41.1 - eps, -104.95], [41.2 + eps, -104.95], [41.15, -105.0 - eps], [41.15, -104.9 + eps],
        [np.nan, -104.95],
    ])  # fmt: skip
    ref = np.array([True, True, True, False, False, False, False, False])
    assert (spatial.mask(f, pts[:, 0], pts[:, 1]) == ref).all()
    con = _con()
    assert (_sql_keep(con, f, pts) == ref).all()
    n = con.execute(
        "SELECT count(*) FROM pts WHERE cv_in_bbox(latitude, longitude, 41.1, -105.0, 41.2, -104.9)"
    ).fetchone()
    assert n is not None and n[0] == ref.sum()


# -- corridor ---------------------------------------------------------------------------------
#: I-80 near Laramie, WY (lat, lon), segments of 1-15 km
I80 = [
    (41.2827318, -105.5912184),
    (41.2905, -105.5402),
    (41.3142, -105.4301),
    (41.2461, -105.3105),
    (41.1990, -105.1500),
]


def _near_line_points(
    points: list[tuple[float, float]], buffer: float, rng: np.random.Generator
) -> np.ndarray:
    """Points at buffer +- 0.5 m perpendicular to random places of each segment, plus random
    points around the line."""
    out = []
    for (a_lat, a_lon), (b_lat, b_lon) in itertools.pairwise(points):
        az = GEOD.inv(a_lon, a_lat, b_lon, b_lat)[0]
        for t in rng.uniform(0.05, 0.95, 4):
            c_lat, c_lon = a_lat + t * (b_lat - a_lat), a_lon + t * (b_lon - a_lon)
            for side in (90.0, -90.0):
                for off in (-0.5, 0.5):
                    lo, la, _ = GEOD.fwd(c_lon, c_lat, az + side, buffer + off)
                    out.append((la, lo))
    lats = [p[0] for p in points]
    lons = [p[1] for p in points]
    n = 60
    rand = np.column_stack([
        rng.uniform(min(lats) - 0.03, max(lats) + 0.03, n), rng.uniform(min(lons) - 0.03, max(lons) + 0.03, n)
    ])  # fmt: skip
    return np.vstack([np.array(out), rand])


@pytest.mark.parametrize("buffer", [30.0, 800.0, 25_000.0])
def test_corridor_matches_brute_force_geodesic_distance(buffer: float) -> None:
    rng = np.random.default_rng(11)
    f = spatial.Corridor(tuple(I80), buffer)
    pts = _near_line_points(I80, buffer, rng)
    ref_d = np.array([_polyline_distance(la, lo, I80) for la, lo in pts])
    clear = np.abs(ref_d - buffer) > 0.05  # the tolerance docs/spatial.md states
    assert clear.sum() > 0.95 * len(pts)
    ref = ref_d <= buffer
    assert 0 < ref.sum() < len(pts)
    got = spatial.mask(f, pts[:, 0], pts[:, 1])
    assert (got[clear] == ref[clear]).all()
    con = _con()
    assert (_sql_keep(con, f, pts) == got).all()  # Dask and SQL: the same rows
    rows = con.execute(
        "SELECT i FROM pts WHERE cv_near_line(latitude, longitude, ?, ?) ORDER BY i",
        [f.wkt(), buffer],
    ).fetchall()
    assert [r[0] for r in rows] == list(np.flatnonzero(got))


def test_corridor_from_geojson_reads_lon_lat(tmp_path: Path) -> None:
    line = [[lon, lat] for lat, lon in I80]
    docs = {
        "line.geojson": {"type": "LineString", "coordinates": line},
        "feature.geojson": {"type": "Feature", "properties": {}, "geometry": {"type": "LineString", "coordinates": line}},
        "fc.geojson": {"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": {"type": "LineString", "coordinates": line[:3]}},
            {"type": "Feature", "geometry": {"type": "LineString", "coordinates": line[2:]}},
        ]},
        "multi.geojson": {"type": "MultiLineString", "coordinates": [line[:2], line[1:]]},
    }  # fmt: skip
    for name, doc in docs.items():
        (tmp_path / name).write_text(json.dumps(doc))
        c = spatial.corridor_from_geojson(tmp_path / name, 100)
        assert c.points == tuple(I80), name
    assert spatial.parse_corridor_flag(f"{tmp_path / 'line.geojson'},250").buffer_m == 250
    (tmp_path / "pt.geojson").write_text(json.dumps({"type": "Point", "coordinates": [-105, 41]}))
    with pytest.raises(ConfigError, match="LineString"):
        spatial.corridor_from_geojson(tmp_path / "pt.geojson", 10)
    (tmp_path / "apart.geojson").write_text(
        json.dumps({"type": "MultiLineString", "coordinates": [line[:2], line[3:]]})
    )
    with pytest.raises(ConfigError, match="do not join"):
        spatial.corridor_from_geojson(tmp_path / "apart.geojson", 10)
    with pytest.raises(ConfigError, match="does not exist"):
        spatial.corridor_from_geojson(tmp_path / "none.geojson", 10)
    # a position of anything but numbers: one line (a "x" or null was an unexpected
    # ValueError or TypeError; true was read as 1); an elevation after them is left out
    for bad in ("x", None, True, [1]):
        doc = {"type": "LineString", "coordinates": [[-105.0, 41.0], [-105.1, bad]]}
        (tmp_path / "bad.geojson").write_text(json.dumps(doc))
        with pytest.raises(ConfigError, match=r"must be \[longitude, latitude\] in numbers"):
            spatial.corridor_from_geojson(tmp_path / "bad.geojson", 10)
    doc = {"type": "LineString", "coordinates": [[-105.0, 41.0, 2000.0], [-105.1, 41.1, 1990]]}
    (tmp_path / "z.geojson").write_text(json.dumps(doc))
    assert spatial.corridor_from_geojson(tmp_path / "z.geojson", 10).points == (
        (41.0, -105.0), (41.1, -105.1)
    )


# -- validation -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: spatial.Within(91, 0, 10), r"latitude 91 is outside \[-90, 90\]"),
        (lambda: spatial.Within(41, -181, 10), r"longitude -181 is outside"),
        (lambda: spatial.Within(41, -105, 0), "radius_m must be > 0"),
        (lambda: spatial.Within(41, -105, 2e6), "radius_m must be > 0 and <= 1,000,000"),
        # the value as given, not `got 1e+06` (a value that looks within the limit)
        (lambda: spatial.Within(41, -105, 1_000_001), "<= 1,000,000 m, got 1,000,001$"),
        (lambda: spatial.Within(89.99, 0, 5000), "pole"),
        (lambda: spatial.Within(-89.999, 0, 500), "pole"),
        (lambda: spatial.Within(10, 179.999, 1000), "antimeridian"),
        (lambda: spatial.BBox(10, 170, 20, -170), "antimeridian"),
        (lambda: spatial.BBox(20, 0, 10, 1), "lat_min 20 is above lat_max 10"),
        (lambda: spatial.BBox(80, 0, 90, 1), "pole"),
        (lambda: spatial.Corridor(((41, -105),), 10), "at least 2 points"),
        (lambda: spatial.Corridor(((41, -105), (41, 200)), 10), "longitude 200"),
        (lambda: spatial.Corridor(((41, -105), (41, -104)), 0), "buffer_m must be > 0"),
        (lambda: spatial.Corridor(((41, -105), (41, -104)), 25_001), "<= 25,000 m"),
        (lambda: spatial.Corridor(((10, 179.99), (10, 179.999)), 2000), "antimeridian"),
        (lambda: spatial.parse_within("41,-105"), "--within takes LAT,LON,RADIUS_M"),
        # (it said "--within value 'abc' must be a number, got 'abc'")
        (lambda: spatial.parse_within("41,-105,abc"),
         r"^each value of --within \(LAT,LON,RADIUS_M\) must be a number, got 'abc'$"),
        (lambda: spatial.parse_bbox("1,2,3"), "--bbox takes LAT_MIN,LON_MIN,LAT_MAX,LON_MAX"),
        (lambda: spatial.as_filter(within=(41, -105, 10), bbox=(1, 2, 3, 4)), "at most one"),
        (lambda: spatial.as_filter(within=(41, -105)), r"within takes \(lat, lon, radius_m\)"),
        # the API's tuples mistyped: a TypeError or IndexError escaped, not the one line
        (lambda: spatial.as_filter(corridor=(41.14, 100)), "corridor points must be a list"),
        (lambda: spatial.as_filter(corridor=([(41.14,), (41, -105)], 100)), "point 0 must be"),
        (lambda: spatial.as_filter(corridor=([41.14, 41.2], 100)), "point 0 must be a"),
        (lambda: spatial.as_filter(within=5), r"within takes \(lat, lon, radius_m\), got 5"),
        (lambda: spatial.as_filter(bbox=5), r"bbox takes \(lat_min, .*got 5"),
        (lambda: spatial.as_filter(within={"lat": 41, "lon": -105, "radius_m": 9}), "within takes"),
    ],
)
def test_bad_areas_are_one_clear_line(make: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


def test_parsers_and_tuples_give_the_same_filters() -> None:
    assert spatial.parse_within(" 41.1, -104.8 ,2000") == spatial.Within(41.1, -104.8, 2000)
    assert spatial.parse_bbox("41,-105,41.5,-104") == spatial.BBox(41, -105, 41.5, -104)
    assert spatial.as_filter(within=(41.1, -104.8, 2000)) == spatial.Within(41.1, -104.8, 2000)
    assert spatial.as_filter(corridor=([(41, -105), (41.1, -104.9)], 50)) == spatial.Corridor(
        ((41, -105), (41.1, -104.9)), 50
    )
    assert spatial.parse_spatial(
        {"within": {"lat": 41, "lon": -105, "radius_m": 10}}
    ) == spatial.Within(41, -105, 10)
    assert spatial.parse_spatial(
        {"corridor": {"points": [[41, -105], [41.1, -104.9]], "buffer_m": 5}}
    ) == spatial.Corridor(((41, -105), (41.1, -104.9)), 5)


def test_an_empty_area_keeps_nothing() -> None:
    pts = np.array([[41.2827318, -105.5912184]])
    f = spatial.Within(0.0, 0.0, 1000)  # the Gulf of Guinea
    assert not spatial.mask(f, pts[:, 0], pts[:, 1]).any()
    assert not _sql_keep(_con(), f, pts).any()


# -- experiment YAML --------------------------------------------------------------------------
def _experiment(spatial_yaml: dict[str, Any]) -> dict[str, Any]:
    return {
        "experiment": {"name": "e"},
        "data": {
            "source": "wydot", "message_type": "BSM",
            "date_range": {"start_date": "2021-04-01", "end_date": "2021-04-01"},
            "spatial": spatial_yaml,
        },
    }  # fmt: skip


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({}, "exactly one of within, bbox, corridor"),
        (
            {
                "within": {"lat": 41, "lon": -105, "radius_m": 10},
                "bbox": {"lat_min": 1, "lon_min": 1, "lat_max": 2, "lon_max": 2},
            },
            "got within, bbox",
        ),
        ({"within": {"lat": 95, "lon": -105, "radius_m": 10}}, "latitude 95 is outside"),
        ({"within": {"lat": 41, "lon": -105}}, "radius_m"),
        ({"bbox": {"lat_min": 41, "lon_min": 170, "lat_max": 42, "lon_max": -170}}, "antimeridian"),
        ({"corridor": {"buffer_m": 10}}, "exactly one"),
        ({"corridor": {"points": [[41, -105]], "buffer_m": 10}}, "at least 2 points"),
        ({"near": {"lat": 1}}, "near"),
    ],
)
def test_yaml_spatial_is_validated_with_clear_messages(block: dict[str, Any], message: str) -> None:
    from pydantic import ValidationError

    from cvcatalog.config import format_validation_error

    with pytest.raises(ValidationError) as info:
        ExperimentConfig.model_validate(_experiment(block))
    assert message in format_validation_error(info.value, "exp.yaml")


# -- on an ingested replica -------------------------------------------------------------------
@pytest.fixture(scope="module")
def lake(module_s3: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    seed_replica(module_s3, DAY, DAY, sources=["wydot"], message_types=["BSM", "TIM"],
                 records_per_hour=30, files_per_hour=1)  # fmt: skip
    root = tmp_path_factory.mktemp("spatial")
    cat = Catalog(root / "catalog")
    for t in ("BSM", "TIM"):
        s = cat.ingest("wydot", t, DAY, DAY, timezone="UTC", rate_limit=0, max_workers=4)
        assert s.ok, s.as_dict()
    csv = root / "ngsim.csv"
    generate_ngsim(csv, 3000, seed=5)
    cat.ingest_dataset("ngsim", str(csv))
    full = cat.to_dask("wydot", "BSM", DAY, DAY).compute()
    assert len(full) > 200
    return {"cat": cat, "full": full, "root": root}


def _centre(df: pd.DataFrame) -> tuple[float, float]:
    row = df.sort_values(["latitude", "longitude"]).iloc[len(df) // 2]
    return float(row.latitude), float(row.longitude)


def _radius_for(df: pd.DataFrame, lat: float, lon: float, k: int) -> float:
    """A radius halfway between the k-th and (k+1)-th nearest rows: both sides are real rows."""
    d = np.sort(
        GEOD.inv(
            np.full(len(df), lon),
            np.full(len(df), lat),
            df.longitude.to_numpy(),
            df.latitude.to_numpy(),
        )[2]
    )
    return float((d[k - 1] + d[k]) / 2)


def test_to_dask_within_on_the_replica_matches_geod(lake: dict[str, Any]) -> None:
    cat, full = lake["cat"], lake["full"]
    lat, lon = _centre(full)
    radius = _radius_for(full, lat, lon, 40)
    d = GEOD.inv(
        np.full(len(full), lon),
        np.full(len(full), lat),
        full.longitude.to_numpy(),
        full.latitude.to_numpy(),
    )[2]
    want = set(
        full.loc[d <= radius, "source_key"]
        + "|"
        + full.loc[d <= radius, "generated_at"].astype(str)
    )
    got = cat.to_dask("wydot", "BSM", DAY, DAY, within=(lat, lon, radius)).compute()
    assert (
        set(got.source_key + "|" + got.generated_at.astype(str)) == want
        and len(got) == (d <= radius).sum()
    )
    # a column selection without the positions still filters by them
    some = cat.to_dask(
        "wydot", "BSM", DAY, DAY, columns=["vehicle_id"], within=spatial.Within(lat, lon, radius)
    ).compute()
    assert list(some.columns) == ["vehicle_id"] and len(some) == len(got)
    # socrata names: same rows
    soc = cat.to_dask(
        "wydot", "BSM", DAY, DAY, naming="socrata", within=(lat, lon, radius)
    ).compute()
    assert len(soc) == len(got)


def test_sql_helpers_and_stored_macros_give_the_api_rows(lake: dict[str, Any]) -> None:
    cat, full = lake["cat"], lake["full"]
    lat, lon = _centre(full)
    radius = _radius_for(full, lat, lon, 25)
    api = cat.to_dask("wydot", "BSM", DAY, DAY, within=(lat, lon, radius)).compute()
    keys = sorted(api.source_key + "|" + api.generated_at.astype(str))
    for view in ("wydot_bsm", "bsm"):
        q = cat.query_spatial(
            view, within=(lat, lon, radius), columns=["source_key", "generated_at"]
        )
        assert sorted(q.source_key + "|" + q.generated_at.astype(str)) == keys, view
    pred, params = cat.where_spatial(within=(lat, lon, radius))
    n = cat.query(
        f"SELECT count(*) AS n FROM trajectories WHERE source = 'wydot' AND {pred}", params
    )
    assert int(n.n[0]) == len(keys)
    # the macros stored in the lake, in a plain DuckDB session that attaches the catalog
    con = duckdb.connect()  # what `cvcatalog shell` runs: ducklake + spatial, ATTACH ... AS cv
    for stmt in cat.shell_sql().split(";"):
        if stmt.strip():
            con.execute(stmt)
    rows = (
        con.execute(
            "SELECT source_key, generated_at FROM bsm WHERE cv_within(latitude, longitude, ?, ?, ?)",
            [lat, lon, radius],
        )
        .arrow()
        .read_all()
        .to_pandas()
    )
    assert sorted(rows.source_key + "|" + rows.generated_at.astype(str)) == keys
    # a corridor through the data: macros (WKT), SQL helper and Dask agree
    line = [
        (float(r.latitude), float(r.longitude))
        for r in full.sort_values("generated_at").iloc[[0, len(full) // 3]].itertuples()
    ]
    assert line[0] != line[1]
    c = spatial.Corridor(tuple(line), 150)
    dk = cat.to_dask("wydot", "BSM", DAY, DAY, corridor=(line, 150)).compute()
    wkt = con.execute(
        "SELECT count(*) FROM wydot_bsm WHERE cv_near_line(latitude, longitude, ?, 150)",
        [c.wkt()],
    ).fetchone()
    sq = cat.query_spatial("wydot_bsm", corridor=c)
    assert wkt is not None and wkt[0] == len(dk) == len(sq) > 0
    assert len(cat.query_spatial(" WYDOT_BSM", corridor=c)) == len(sq)  # a name as SQL reads it
    con.close()


def test_ngsim_and_empty_areas_and_refusals(lake: dict[str, Any]) -> None:
    cat = lake["cat"]
    ng = cat.to_dask("ngsim").compute()
    lat, lon = _centre(ng)
    radius = _radius_for(ng, lat, lon, 100)
    d = GEOD.inv(
        np.full(len(ng), lon),
        np.full(len(ng), lat),
        ng.longitude.to_numpy(),
        ng.latitude.to_numpy(),
    )[2]
    got = cat.to_dask("ngsim", within=(lat, lon, radius)).compute()
    assert len(got) == (d <= radius).sum() == 100
    sq = cat.query_spatial(
        "trajectories", within=(lat, lon, radius), where="source = ?", params=["ngsim"]
    )
    assert len(sq) == 100
    # the predicate is one expression inside the area: it cannot close the area's parenthesis
    # and OR in every row (it read the whole table), nor comment out what follows it
    for escape in ("1=1) OR (1=1", "source = 'ngsim') OR (true"):
        with pytest.raises(QueryError, match="where is not one SQL predicate"):
            cat.query_spatial("trajectories", within=(lat, lon, radius), where=escape)
    inside = cat.query_spatial("trajectories", within=(lat, lon, radius), where="true --", limit=5)
    assert len(inside) == 5
    # an empty area: an empty frame with the columns
    empty = cat.to_dask("wydot", "BSM", DAY, DAY, bbox=(10.0, 10.0, 10.1, 10.1)).compute()
    assert len(empty) == 0 and "latitude" in empty.columns
    assert len(cat.query_spatial("bsm", bbox=(10.0, 10.0, 10.1, 10.1))) == 0
    with pytest.raises(ConfigError, match="no latitude/longitude"):
        cat.to_dask("wydot", "TIM", DAY, DAY, within=(41, -105, 100))
    with pytest.raises(ConfigError, match="no latitude/longitude"):
        cat.query_spatial("wydot_tim", within=(41, -105, 100))
    with pytest.raises(QueryError, match="no table or view"):
        cat.query_spatial("nope", within=(41, -105, 100))


def test_experiment_yaml_spatial_is_applied(lake: dict[str, Any], tmp_path: Path) -> None:
    cat, full = lake["cat"], lake["full"]
    lat, lon = _centre(full)
    line = [[lon - 0.05, lat], [lon + 0.05, lat]]
    (tmp_path / "road.geojson").write_text(json.dumps({"type": "LineString", "coordinates": line}))
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        "experiment: {name: near-road}\n"
        "data:\n  source: wydot\n  message_type: BSM\n"
        "  date_range: {start_date: 2021-04-01, end_date: 2021-04-01, timezone: UTC}\n"
        "  spatial:\n    corridor: {geojson: road.geojson, buffer_m: 1500}\n"
        "output: {column_names: canonical}\n"
    )
    got = CatalogGatherer(exp, cat).get_gathered_data().compute()
    want = spatial.mask(
        spatial.Corridor(((lat, lon - 0.05), (lat, lon + 0.05)), 1500),
        full.latitude,
        full.longitude,
    )
    assert 0 < len(got) == want.sum()


def test_sql_macros_command_writes_the_file_a_session_reads(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cvcatalog.cli.main import app

    out = tmp_path / "cv_macros.sql"
    res = CliRunner().invoke(app, ["sql", "macros", "-o", str(out)])
    assert res.exit_code == 0, res.output
    # a directory or a place no file can be: one line (it was "unexpected IsADirectoryError")
    for bad in (tmp_path, tmp_path / "no" / "such" / "dir" / "x.sql"):
        if bad != tmp_path:
            bad.parent.parent.parent.write_text("a file where a directory would be")
        r = CliRunner().invoke(app, ["sql", "macros", "-o", str(bad)])
        assert r.exit_code == 1 and r.output.startswith("error: "), r.output
        assert "unexpected" not in r.output
    con = duckdb.connect()
    load_extension(con, "spatial")
    con.execute(out.read_text())  # what `.read cv_macros.sql` runs
    lat, lon = _sample_positions()[0]
    pts = np.vstack([_ring(lat, lon, 500, -0.5), _ring(lat, lon, 500, 0.5)])
    con.register("pts", pd.DataFrame({"latitude": pts[:, 0], "longitude": pts[:, 1]}))
    n = con.execute(
        "SELECT count(*) FROM pts WHERE cv_within(latitude, longitude, ?, ?, 500)", [lat, lon]
    ).fetchone()
    assert (
        n is not None
        and n[0] == spatial.mask(spatial.Within(lat, lon, 500), pts[:, 0], pts[:, 1]).sum() == 36
    )
    printed = CliRunner().invoke(app, ["sql", "macros"])
    assert printed.exit_code == 0 and "CREATE OR REPLACE MACRO cv_within(" in printed.output


def test_a_session_without_stored_macros_gets_its_own() -> None:
    """A lake written before the macros existed: cvcatalog's sessions define them (temporary)."""
    from cvcatalog.state.tables import spatial_session

    con = duckdb.connect()
    spatial_session(con)
    f = spatial.Within(41.3, -105.6, 1000)
    pred, params = spatial.predicate_sql(f)
    got = con.execute(
        f"SELECT {pred} FROM (SELECT 41.305 AS latitude, -105.6 AS longitude)", params
    ).fetchone()
    assert got is not None and got[0] is True


def test_describe_gives_every_digit_of_the_area() -> None:
    """The export and split summaries (and their JSON) printed `within 50 m of (34.1385,
    -118.365)` for --within 34.1385,-118.3645,50: six significant digits, a point 46 m from the
    one filtered on. Now the numbers as given."""
    assert spatial.describe(spatial.parse_within("34.1385,-118.3645,50")) == (
        "within 50 m of (34.1385, -118.3645)"
    )
    assert spatial.describe(spatial.parse_bbox("34.13841,-118.36512,34.139,-118.3640")) == (
        "bbox lat [34.13841, 34.139] lon [-118.36512, -118.364]"
    )
