-- Kinematic features of every point against its predecessor in the same trip
-- (cvcatalog.state.trips; docs/ml.md defines each column).
--
-- Placeholders, filled by cvcatalog.state.trips:
--   {view}      the quoted view name
--   {points}    the quoted trip points view (`bsm_points`)
--   {time}      the quoted time column
--   {order}     tie-breakers after the time
--   {heading}   the quoted reported heading column (degrees), or NULL when there is none
--
-- Distances and bearings are on the WGS84 ellipsoid, with the radii of curvature at the mean
-- latitude of the two points (meridian M, prime vertical N): north = M * dlat, east =
-- N * cos(lat) * dlon, step = hypot(north, east). Against pyproj's Geod (GeographicLib):
-- < 1e-8 relative up to 1 km, 8 mm at 10 km, 9 m at 100 km (a haversine sphere is off by up
-- to 0.56 % at any length). The bearing is the direction at the mean latitude turned back to
-- the first point (minus dlon/2 * sin(lat)), so it is the initial bearing within 0.0001 deg
-- at 10 km. The first point of a trip has NULL features; so does a point whose time equals its
-- predecessor's (dt_s = 0) for the per-second ones.
CREATE OR REPLACE VIEW {view} AS
WITH paired AS (
    SELECT
        *,
        lag({time}) OVER w AS _t0,
        lag(latitude) OVER w AS _lat0,
        lag(longitude) OVER w AS _lon0,
        lag(speed_mps) OVER w AS _v0,
        lag({heading}) OVER w AS _h0
    FROM {points}
    WHERE trip_id IS NOT NULL
    WINDOW w AS (PARTITION BY trip_id ORDER BY {time}{order})
),
local AS (
    SELECT
        *,
        (epoch_us({time}) - epoch_us(_t0)) / 1e6 AS _dt,
        radians((latitude + _lat0) / 2) AS _phi,
        radians(((longitude - _lon0 + 540) % 360) - 180) AS _dlon,
        sqrt(1 - 0.0066943799901413165 * pow(sin(radians((latitude + _lat0) / 2)), 2)) AS _w
    FROM paired
),
steps AS (
    SELECT
        *,
        6378137.0 * (1 - 0.0066943799901413165) / pow(_w, 3) * radians(latitude - _lat0) AS _north,
        6378137.0 / _w * cos(_phi) * _dlon AS _east
    FROM local
),
features AS (
    SELECT
        * EXCLUDE (_t0, _lat0, _lon0, _v0, _h0, _dt, _phi, _dlon, _w, _north, _east),
        _dt AS dt_s,
        sqrt(_north * _north + _east * _east) AS step_m,
        CASE WHEN _dt > 0 THEN sqrt(_north * _north + _east * _east) / _dt END
            AS implied_speed_mps,
        CASE WHEN _dt > 0 THEN (speed_mps - _v0) / _dt END AS implied_accel_mps2,
        ((({heading}) - _h0 + 540) % 360) - 180 AS heading_change_deg,
        CASE
            WHEN _north <> 0 OR _east <> 0 THEN
                (degrees(atan2(_east, _north) - _dlon / 2 * sin(_phi)) + 360) % 360
        END AS implied_heading_deg
    FROM steps
)
SELECT
    *,
    speed_mps - implied_speed_mps AS speed_residual_mps
FROM features
