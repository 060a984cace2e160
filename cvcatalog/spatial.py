"""Where vehicles were: the three spatial filters (radius, box, corridor) with one meaning everywhere.

A filter is a value (`Within`, `BBox`, `Corridor`) validated once, here. Every reader applies
it the same way: SQL (`predicate_sql`, which calls the macros of `sql/spatial/macros.sql`), Dask
frames (`pyarrow_filters` for the row-group pruning + `mask` for the exact test) and the plain
DuckDB macros a user calls after attaching the catalog (`macros_sql`).

Meaning (WGS84, EPSG:4326 latitude/longitude in degrees):

* `Within(lat, lon, radius_m)`: geodesic distance on the WGS84 spheroid <= radius_m (DuckDB
  spatial's `ST_Distance_Spheroid` on points given as (lat, lon), and pyproj's `Geod` for Dask:
  both are GeographicLib, they agree to the last digit).
* `BBox(lat_min, lon_min, lat_max, lon_max)`: both bounds inclusive.
* `Corridor(points, buffer_m)`: geodesic distance to the polyline <= buffer_m. The polyline's
  segments are straight in latitude/longitude (as GeoJSON, RFC 7946 3.1.1, draws them); the
  nearest point of each segment is found in a local plane at the tested point and its distance
  measured on the spheroid, so a point is never kept farther than buffer_m (distances are
  exact geodesic ones) and the nearest-point search costs at most ~1 cm of the buffer.

An area that crosses the antimeridian or reaches a pole is refused (cvcatalog's sources are in
the contiguous US); split a box at 180 degrees instead.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pyarrow as pa

from cvcatalog.config import as_items
from cvcatalog.exceptions import ConfigError
from cvcatalog.sqlutil import load_sql, quote_ident

if TYPE_CHECKING:
    from pyproj import Geod

#: the largest radius (m) a `Within` takes: far beyond any study area, small enough that the
#: bounding box stays a box (no pole, no antimeridian)
MAX_RADIUS_M = 1_000_000.0
#: the largest corridor buffer (m): the local plane that finds each segment's nearest point
#: misses the geodesic distance by ~buffer^2 (0.1 mm at 5 km, 2 cm at 25 km, 0.8 m at 100 km)
MAX_BUFFER_M = 25_000.0
#: the planar nearest-point distance may be this much (relative) off the geodesic one; a
#: segment is measured exactly whenever its planar distance is within buffer * (1 + this) + 1 m
PLANAR_SLACK = 0.05

#: DuckDB spatial 1.5.5 reads ST_Distance_Spheroid's points as (latitude, longitude) unless
#: `geometry_always_xy` is true (then (longitude, latitude)); it warns while the setting is unset.
#: The macros pass (latitude, longitude): every session that calls them runs this first.
AXIS_ORDER_SQL = "SET geometry_always_xy = false"

#: WGS84: semi-major axis (m) and flattening; pyproj's Geod(ellps="WGS84") holds the same
_A = 6378137.0
_F = 1.0 / 298.257223563
_E2 = _F * (2.0 - _F)  # first eccentricity squared of WGS84


@functools.cache
def _geod() -> Geod:
    """pyproj's WGS84 geodesic, made on first use: importing pyproj costs ~0.1 s that a command
    without a spatial filter should not pay."""
    from pyproj import Geod

    return Geod(ellps="WGS84")


def _err(message: str) -> ConfigError:
    return ConfigError(message)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise _err(f"{what} must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise _err(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise _err(f"{what} must be a finite number, got {value!r}")
    return out


def _lat(value: Any, what: str = "latitude") -> float:
    v = _number(value, what)
    if not -90.0 <= v <= 90.0:
        raise _err(f"{what} {v:g} is outside [-90, 90]")
    return v


def _lon(value: Any, what: str = "longitude") -> float:
    v = _number(value, what)
    if not -180.0 <= v <= 180.0:
        raise _err(f"{what} {v:g} is outside [-180, 180]")
    return v


def _distance(value: Any, what: str, maximum: float) -> float:
    v = _number(value, what)
    if not 0.0 < v <= maximum:
        raise _err(f"{what} must be > 0 and <= {maximum:,.0f} m, got {v:,.15g}")
    return v


@dataclass(frozen=True)
class Box:
    """Latitude/longitude bounds (inclusive) that contain a filter's area: for pruning files,
    partitions and Parquet row groups by their min/max statistics."""

    lat_min: float
    lon_min: float
    lat_max: float
    lon_max: float


def _check_box(box: Box, what: str) -> Box:
    if box.lat_max >= 90.0 or box.lat_min <= -90.0:
        raise _err(f"{what} reaches a pole; areas touching a pole are not supported")
    if box.lon_min < -180.0 or box.lon_max > 180.0:
        raise _err(
            f"{what} crosses the antimeridian (180 degrees); not supported: split it into "
            "areas on either side"
        )
    return box


def _radius_box(lat: float, lon: float, radius_m: float, what: str) -> Box:
    """The lat/lon box around a geodesic circle: north/south along the meridian (exact), the
    east/west extent from 360 azimuths, padded by 0.1 % (the sampled maximum is within
    cos(0.5 deg) of the true one)."""
    north = _geod().fwd(lon, lat, 0.0, radius_m)[1] if lat < 89.0 else 90.0
    south = _geod().fwd(lon, lat, 180.0, radius_m)[1] if lat > -89.0 else -90.0
    # forward geodesics across a pole come back on the other side: a pole inside means refuse
    if north <= lat or south >= lat:
        raise _err(f"{what} reaches a pole; areas touching a pole are not supported")
    az = np.arange(0.0, 360.0, 1.0)
    lons, _, _ = _geod().fwd(
        np.full_like(az, lon), np.full_like(az, lat), az, np.full_like(az, radius_m)
    )
    dlon = np.abs((np.asarray(lons) - lon + 540.0) % 360.0 - 180.0).max() * 1.001 + 1e-9
    pad = (north - south) * 0.0005 + 1e-9
    return _check_box(
        Box(float(south - pad), float(lon - dlon), float(north + pad), float(lon + dlon)), what
    )


@dataclass(frozen=True)
class Within:
    """Points within `radius_m` metres (geodesic, WGS84) of (lat, lon)."""

    lat: float
    lon: float
    radius_m: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "lat", _lat(self.lat, "within latitude"))
        object.__setattr__(self, "lon", _lon(self.lon, "within longitude"))
        object.__setattr__(
            self, "radius_m", _distance(self.radius_m, "within radius_m", MAX_RADIUS_M)
        )
        _radius_box(self.lat, self.lon, self.radius_m, "the within area")


@dataclass(frozen=True)
class BBox:
    """Points with lat_min <= latitude <= lat_max and lon_min <= longitude <= lon_max."""

    lat_min: float
    lon_min: float
    lat_max: float
    lon_max: float

    def __post_init__(self) -> None:
        for name, check in (
            ("lat_min", _lat),
            ("lat_max", _lat),
            ("lon_min", _lon),
            ("lon_max", _lon),
        ):
            object.__setattr__(self, name, check(getattr(self, name), f"bbox {name}"))
        if self.lat_min > self.lat_max:
            raise _err(f"bbox lat_min {self.lat_min:g} is above lat_max {self.lat_max:g}")
        if self.lon_min > self.lon_max:
            raise _err(
                f"bbox lon_min {self.lon_min:g} is east of lon_max {self.lon_max:g}: a box "
                "crossing the antimeridian is not supported; split it into two boxes"
            )
        if self.lat_min <= -90.0 or self.lat_max >= 90.0:
            raise _err("bbox reaches a pole; areas touching a pole are not supported")


@dataclass(frozen=True)
class Corridor:
    """Points within `buffer_m` metres (geodesic, WGS84) of the polyline through `points`
    ((lat, lon) pairs; segments straight in lat/lon, as GeoJSON draws them)."""

    points: tuple[tuple[float, float], ...]
    buffer_m: float

    def __post_init__(self) -> None:
        try:
            raw = list(self.points)
        except TypeError:
            raise _err("corridor points must be a list of (lat, lon) pairs") from None
        pts: list[tuple[float, float]] = []
        for i, p in enumerate(raw):
            if isinstance(p, str) or not isinstance(p, Sequence) or len(p) != 2:
                raise _err(f"corridor point {i} must be a (lat, lon) pair, got {p!r}")
            pts.append(
                (
                    _lat(p[0], f"corridor point {i} latitude"),
                    _lon(p[1], f"corridor point {i} longitude"),
                )
            )
        if len(pts) < 2:
            raise _err(f"a corridor needs at least 2 points, got {len(pts)}")
        object.__setattr__(self, "points", tuple(pts))
        object.__setattr__(
            self, "buffer_m", _distance(self.buffer_m, "corridor buffer_m", MAX_BUFFER_M)
        )
        bounding_box(self)

    @property
    def lats(self) -> list[float]:
        return [p[0] for p in self.points]

    @property
    def lons(self) -> list[float]:
        return [p[1] for p in self.points]

    def wkt(self) -> str:
        """The polyline as WKT LINESTRING (longitude latitude order, as WKT and GeoJSON write it)."""
        return "LINESTRING(" + ", ".join(f"{lon!r} {lat!r}" for lat, lon in self.points) + ")"


SpatialFilter: TypeAlias = Within | BBox | Corridor


def bounding_box(f: SpatialFilter) -> Box:
    """Lat/lon bounds (inclusive) that contain every point the filter keeps."""
    if isinstance(f, BBox):
        return Box(f.lat_min, f.lon_min, f.lat_max, f.lon_max)
    if isinstance(f, Within):
        return _radius_box(f.lat, f.lon, f.radius_m, "the within area")
    boxes = [_radius_box(lat, lon, f.buffer_m, "the corridor") for lat, lon in f.points]
    # a segment lies between its ends in lat/lon, and the east-west reach of the buffer grows
    # with |latitude|: the widest reach, applied to the whole extent, covers every segment
    reach = max(b.lon_max - lon for b, (_, lon) in zip(boxes, f.points, strict=True))
    box = Box(
        min(b.lat_min for b in boxes),
        min(f.lons) - reach,
        max(b.lat_max for b in boxes),
        max(f.lons) + reach,
    )
    return _check_box(box, "the corridor")


# ---------------------------------------------------------------------------- parsing


def _numbers(text: str, n: int, flag: str, form: str) -> list[float]:
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != n or not all(parts):
        raise _err(f"{flag} takes {form}, got {text!r}")
    return [_number(p, f"each value of {flag} ({form})") for p in parts]


def parse_within(text: str) -> Within:
    """'LAT,LON,RADIUS_M' (a command-line flag) → Within."""
    lat, lon, radius = _numbers(text, 3, "--within", "LAT,LON,RADIUS_M")
    return Within(lat, lon, radius)


def parse_bbox(text: str) -> BBox:
    """'LAT_MIN,LON_MIN,LAT_MAX,LON_MAX' (a command-line flag) → BBox."""
    a, b, c, d = _numbers(text, 4, "--bbox", "LAT_MIN,LON_MIN,LAT_MAX,LON_MAX")
    return BBox(a, b, c, d)


def _geojson_lines(obj: Any, where: str) -> list[list[tuple[float, float]]]:
    if not isinstance(obj, Mapping):
        raise _err(f"{where}: not a GeoJSON object")
    kind = obj.get("type")
    if kind == "FeatureCollection":
        lines: list[list[tuple[float, float]]] = []
        for feat in obj.get("features") or []:
            lines.extend(_geojson_lines(feat, where))
        return lines
    if kind == "Feature":
        return _geojson_lines(obj.get("geometry"), where)
    if kind == "GeometryCollection":
        return [ln for g in obj.get("geometries") or [] for ln in _geojson_lines(g, where)]
    coords = obj.get("coordinates")
    if kind == "LineString":
        coords = [coords]
    elif kind != "MultiLineString":
        raise _err(f"{where}: a corridor needs a LineString or MultiLineString, found {kind!r}")
    out = []
    for line in coords or []:
        pts: list[tuple[float, float]] = []
        for pos in line or []:
            # numbers (an elevation after them is left out): a "x" or null was an unexpected
            # ValueError or TypeError, true was read as 1
            if (
                not isinstance(pos, Sequence)
                or isinstance(pos, str)
                or len(pos) < 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pos[:2])
            ):
                raise _err(
                    f"{where}: a position must be [longitude, latitude] in numbers, got {pos!r}"
                )
            pts.append((float(pos[1]), float(pos[0])))  # GeoJSON is longitude, latitude
        out.append(pts)
    return out


def corridor_from_geojson(path: str | Path, buffer_m: float) -> Corridor:
    """A corridor along the line of a GeoJSON file (LineString, MultiLineString, Feature or
    FeatureCollection; positions are [longitude, latitude]). The parts of a MultiLineString or
    several features must join end to end; they are read as one polyline in file order."""
    p = Path(path)
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _err(f"corridor GeoJSON {p} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _err(f"corridor GeoJSON {p} cannot be read: {e}") from None
    lines = [ln for ln in _geojson_lines(obj, str(p)) if ln]
    if not lines:
        raise _err(f"{p}: no LineString in the file")
    points: list[tuple[float, float]] = []
    for ln in lines:
        if points and ln[0] == points[-1]:
            ln = ln[1:]
        elif points:
            raise _err(f"{p}: its lines do not join end to end; give one LineString per corridor")
        points.extend(ln)
    return Corridor(tuple(points), buffer_m)


def parse_corridor_flag(text: str) -> Corridor:
    """'FILE.geojson,BUFFER_M' (a command-line flag) → Corridor."""
    path, sep, buffer = str(text).rpartition(",")
    if not sep or not path:
        raise _err(f"--corridor takes FILE.geojson,BUFFER_M, got {text!r}")
    return corridor_from_geojson(path, _number(buffer, "--corridor BUFFER_M"))


def _mapping(value: Any, key: str, fields: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _err(f"spatial.{key} must be a mapping with {', '.join(fields)}")
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise _err(
            f"spatial.{key}: unknown field(s) {', '.join(unknown)} (expected {', '.join(fields)})"
        )
    missing = [f for f in fields if f not in value]
    if missing and key != "corridor":
        raise _err(f"spatial.{key}: missing {', '.join(missing)}")
    return value


def parse_spatial(spec: Mapping[str, Any], base: Path | None = None) -> SpatialFilter:
    """A YAML `spatial:` mapping with exactly one of `within: {lat, lon, radius_m}`,
    `bbox: {lat_min, lon_min, lat_max, lon_max}` or `corridor: {geojson: PATH | points:
    [[lat, lon], ...], buffer_m}` → a filter. A relative geojson path is read from `base`."""
    if not isinstance(spec, Mapping):
        raise _err("spatial must be a mapping with one of within, bbox, corridor")
    keys = [k for k in ("within", "bbox", "corridor") if k in spec]
    unknown = sorted(set(spec) - {"within", "bbox", "corridor"})
    if unknown:
        raise _err(
            f"spatial: unknown key(s) {', '.join(map(str, unknown))} (expected within, bbox or corridor)"
        )
    if len(keys) != 1:
        raise _err(
            "spatial needs exactly one of within, bbox, corridor"
            + (f"; got {', '.join(keys)}" if keys else "")
        )
    key = keys[0]
    if key == "within":
        v = _mapping(spec[key], key, ("lat", "lon", "radius_m"))
        return Within(v["lat"], v["lon"], v["radius_m"])
    if key == "bbox":
        v = _mapping(spec[key], key, ("lat_min", "lon_min", "lat_max", "lon_max"))
        return BBox(v["lat_min"], v["lon_min"], v["lat_max"], v["lon_max"])
    v = _mapping(spec[key], key, ("geojson", "points", "buffer_m"))
    if "buffer_m" not in v:
        raise _err("spatial.corridor: missing buffer_m")
    if ("geojson" in v) == ("points" in v):
        raise _err(
            "spatial.corridor needs exactly one of geojson (a file) or points ([[lat, lon], ...])"
        )
    if "geojson" in v:
        path = Path(str(v["geojson"])).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        return corridor_from_geojson(path, v["buffer_m"])
    points = v["points"]
    if not isinstance(points, Sequence) or isinstance(points, str):
        raise _err("spatial.corridor.points must be a list of [lat, lon] pairs")
    return Corridor(
        tuple(
            tuple(p) if isinstance(p, Sequence) and not isinstance(p, str) else p for p in points
        ),
        v["buffer_m"],
    )


def as_filter(
    within: Within | Sequence[float] | None = None,
    bbox: BBox | Sequence[float] | None = None,
    corridor: Corridor | tuple[Sequence[Sequence[float]], float] | None = None,
) -> SpatialFilter | None:
    """The API's keyword arguments (objects, or tuples as the docs write them:
    within=(lat, lon, radius_m), bbox=(lat_min, lon_min, lat_max, lon_max),
    corridor=([(lat, lon), ...], buffer_m)) → at most one filter."""
    given = [v for v in (within, bbox, corridor) if v is not None]
    if len(given) > 1:
        raise _err("give at most one of within, bbox, corridor")
    if within is not None:
        if isinstance(within, Within):
            return within
        if isinstance(within, str):
            return parse_within(within)
        vals = as_items(within)
        if vals is None or len(vals) != 3:
            raise _err(f"within takes (lat, lon, radius_m), got {within!r}")
        return Within(*vals)
    if bbox is not None:
        if isinstance(bbox, BBox):
            return bbox
        if isinstance(bbox, str):
            return parse_bbox(bbox)
        vals = as_items(bbox)
        if vals is None or len(vals) != 4:
            raise _err(f"bbox takes (lat_min, lon_min, lat_max, lon_max), got {bbox!r}")
        return BBox(*vals)
    if corridor is not None:
        if isinstance(corridor, Corridor):
            return corridor
        try:
            points, buffer = corridor
        except (TypeError, ValueError):
            raise _err("corridor takes ([(lat, lon), ...], buffer_m)") from None
        if isinstance(points, (str, Path)):
            return corridor_from_geojson(points, buffer)
        pairs: Any = points  # as given: Corridor checks them, one line for any mistake
        return Corridor(pairs, buffer)
    return None


def _num(x: float) -> str:
    """A number as given: 2000 for 2000.0, every digit of -118.3645 (`:g` keeps six
    significant digits, which put a point given as -118.3645 at -118.365, 46 m away)."""
    return f"{x:.15g}"


def describe(f: SpatialFilter) -> str:
    """One line for logs, summaries and `--format json` output."""
    if isinstance(f, Within):
        return f"within {_num(f.radius_m)} m of ({_num(f.lat)}, {_num(f.lon)})"
    if isinstance(f, BBox):
        return (
            f"bbox lat [{_num(f.lat_min)}, {_num(f.lat_max)}] "
            f"lon [{_num(f.lon_min)}, {_num(f.lon_max)}]"
        )
    return f"corridor of {len(f.points)} points, buffer {_num(f.buffer_m)} m"


# ---------------------------------------------------------------------------- SQL


def macros_sql() -> str:
    """The `cv_within` / `cv_in_bbox` / `cv_near_line` macros (needs DuckDB's spatial extension
    loaded): run it on a connection, or `.read` it in the duckdb shell."""
    return load_sql("spatial", "macros.sql")


def predicate_sql(
    f: SpatialFilter, lat: str = "latitude", lon: str = "longitude"
) -> tuple[str, list[Any]]:
    """A DuckDB boolean expression (with `?` parameters) keeping the filter's rows: a lat/lon
    range prefilter Parquet statistics can prune with, AND the exact test (the macros of
    `macros_sql()`, which the connection must have defined)."""
    la, lo = quote_ident(lat), quote_ident(lon)
    box = bounding_box(f)
    pre = f"({la} BETWEEN ? AND ? AND {lo} BETWEEN ? AND ?)"
    params: list[Any] = [box.lat_min, box.lat_max, box.lon_min, box.lon_max]
    if isinstance(f, BBox):
        return pre, params
    if isinstance(f, Within):
        return f"({pre} AND cv_within_exact({la}, {lo}, ?, ?, ?))", [
            *params,
            f.lat,
            f.lon,
            f.radius_m,
        ]
    return (
        f"({pre} AND cv_near_points_exact({la}, {lo}, ?::DOUBLE[], ?::DOUBLE[], ?))",
        [*params, f.lats, f.lons, f.buffer_m],
    )


def pyarrow_filters(
    f: SpatialFilter, lat: str = "latitude", lon: str = "longitude"
) -> list[tuple[str, str, float]]:
    """The bounding box as pyarrow/Parquet filter terms (AND), for row-group pruning."""
    box = bounding_box(f)
    return [
        (lat, ">=", box.lat_min),
        (lat, "<=", box.lat_max),
        (lon, ">=", box.lon_min),
        (lon, "<=", box.lon_max),
    ]


# ---------------------------------------------------------------------------- numpy


def _planar(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scales of the local plane at each point (x per degree of longitude, y per degree of
    latitude, in units of metres/(N·pi/180)), and metres per unit (N·pi/180)."""
    phi = np.radians(lat)
    s2 = np.sin(phi) ** 2
    kx = np.cos(phi)
    ky = (1.0 - _E2) / (1.0 - _E2 * s2)
    unit = _A / np.sqrt(1.0 - _E2 * s2) * math.pi / 180.0
    return kx, ky, unit


def distances_m(lat: np.ndarray, lon: np.ndarray, c_lat: float, c_lon: float) -> np.ndarray:
    """Geodesic distances (m, WGS84) from each point to (c_lat, c_lon)."""
    lat = np.asarray(lat, dtype="float64")
    lon = np.asarray(lon, dtype="float64")
    _, _, d = _geod().inv(np.full_like(lon, c_lon), np.full_like(lat, c_lat), lon, lat)
    return np.asarray(d, dtype="float64")


def polyline_distances_m(
    lat: np.ndarray, lon: np.ndarray, lats: Sequence[float], lons: Sequence[float], buffer_m: float
) -> np.ndarray:
    """For each point, the geodesic distance (m) to the nearest point of the polyline, as the
    SQL macro finds it; inf where no segment comes within the planar slack of buffer_m."""
    lat = np.asarray(lat, dtype="float64")
    lon = np.asarray(lon, dtype="float64")
    best = np.full(lat.shape, np.inf)
    kx, ky, unit = _planar(lat, lon)
    limit = buffer_m * (1.0 + PLANAR_SLACK) + 1.0
    for i in range(len(lats) - 1):
        a_lat, a_lon, b_lat, b_lon = lats[i], lons[i], lats[i + 1], lons[i + 1]
        ax, ay = (a_lon - lon) * kx, (a_lat - lat) * ky
        dx, dy = (b_lon - a_lon) * kx, (b_lat - a_lat) * ky
        den = dx * dx + dy * dy
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(den > 0, -(ax * dx + ay * dy) / np.where(den > 0, den, 1.0), 0.0)
        t = np.clip(t, 0.0, 1.0)
        planar = np.hypot(ax + t * dx, ay + t * dy) * unit
        near = planar <= limit
        if not near.any():
            continue
        c_lat = a_lat + t[near] * (b_lat - a_lat)
        c_lon = a_lon + t[near] * (b_lon - a_lon)
        _, _, d = _geod().inv(lon[near], lat[near], c_lon, c_lat)
        best[near] = np.minimum(best[near], np.asarray(d))
    return best


def mask(f: SpatialFilter, lat: Any, lon: Any) -> np.ndarray:
    """The rows (boolean array) a filter keeps: the same meaning as `predicate_sql`. Missing
    positions (NaN) are never kept."""
    lat = np.asarray(lat, dtype="float64")
    lon = np.asarray(lon, dtype="float64")
    box = bounding_box(f)
    keep = (lat >= box.lat_min) & (lat <= box.lat_max) & (lon >= box.lon_min) & (lon <= box.lon_max)
    if isinstance(f, BBox) or not keep.any():
        return keep
    idx = np.flatnonzero(keep)
    if isinstance(f, Within):
        ok = distances_m(lat[idx], lon[idx], f.lat, f.lon) <= f.radius_m
    else:
        ok = polyline_distances_m(lat[idx], lon[idx], f.lats, f.lons, f.buffer_m) <= f.buffer_m
    keep[idx[~ok]] = False
    return keep


_MACRO_HEAD = re.compile(r"CREATE OR REPLACE MACRO (\w+)")
_SPATIAL_SQL = re.compile(r"\b(cv_\w+|st_\w+)\s*\(", re.IGNORECASE)


def macro_statements(schema: str | None = None, *, temporary: bool = False) -> dict[str, str]:
    """Each macro of `macros_sql()` as its own CREATE statement, in definition order: in
    `schema` (e.g. the lake's `cv.main`, so every session that attaches the lake has them), or
    as a session's temporary macros."""
    parts = [(m, part) for part in macros_sql().split(";\n") if (m := _MACRO_HEAD.search(part))]
    names = [m.group(1) for m, _ in parts]
    # a macro calling another names it in the same schema (the session may USE another one)
    calls = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\(")
    out: dict[str, str] = {}
    for m, part in parts:
        name = m.group(1)
        where = "TEMP MACRO " if temporary else "MACRO "
        target = f"{schema}.{quote_ident(name)}" if schema else quote_ident(name)
        body = part[m.end() :]
        if schema:
            body = calls.sub(lambda c: f"{schema}.{c.group(1)}(", body)
        out[name] = f"CREATE OR REPLACE {where}{target}{body}"
    return out


def uses_spatial(sql: str) -> bool:
    """Whether a statement may call the cv_* macros or spatial ST_* functions (then the
    connection needs DuckDB's spatial extension loaded)."""
    return _SPATIAL_SQL.search(sql) is not None


#: the position columns of every table and view a spatial filter applies to (BSM tables, the
#: union `bsm`, `trajectories`, NGSIM)
LAT, LON = "latitude", "longitude"


def require_positions(columns: Iterable[str], what: str) -> None:
    """Refuse, in one line, a spatial filter on a relation without latitude/longitude."""
    have = set(columns)
    if LAT not in have or LON not in have:
        raise ConfigError(
            f"{what} has no {LAT}/{LON} columns: spatial filters apply to the BSM tables and "
            "views (wydot_bsm, thea_bsm, bsm), trajectories and NGSIM"
        )


def filter_table(table: pa.Table, f: SpatialFilter) -> pa.Table:
    """The rows of an Arrow table (with latitude/longitude columns) that the filter keeps."""
    if table.num_rows == 0:
        return table
    lat = table.column(LAT).to_numpy(zero_copy_only=False)
    lon = table.column(LON).to_numpy(zero_copy_only=False)
    return table.filter(pa.array(mask(f, lat, lon)))


def as_kwargs(f: SpatialFilter | None) -> dict[str, Any]:
    """A filter as the keyword argument the API takes (`within=`, `bbox=` or `corridor=`)."""
    if f is None:
        return {}
    key = "within" if isinstance(f, Within) else "bbox" if isinstance(f, BBox) else "corridor"
    return {key: f}
