-- One row per trip (cvcatalog.state.trips): its points summed from the kinematics view.
--
-- Placeholders, filled by cvcatalog.state.trips:
--   {view}        the quoted view name
--   {kinematics}  the quoted kinematics view (`bsm_kinematics`)
--   {time}        the quoted time column
--   {order}       tie-breakers after the time
--
-- distance_m is the sum of the geodesic steps between consecutive points (step_m). geometry is
-- the trip as WKT text, `LINESTRING (lon lat, ...)` in time order (7 decimals, the J2735 unit):
-- plain DuckDB reads it as text, and a session with the spatial extension loaded makes it a
-- GEOMETRY with ST_GeomFromText(geometry). A trip of one point has no line (NULL).
CREATE OR REPLACE VIEW {view} AS
SELECT
    trip_id,
    any_value(source) AS source,
    any_value(vehicle_id) AS vehicle_id,
    min({time}) AS start_time,
    max({time}) AS end_time,
    (epoch_us(max({time})) - epoch_us(min({time}))) / 1e6 AS duration_s,
    count(*) AS points,
    coalesce(sum(step_m), 0) AS distance_m,
    min(latitude) AS lat_min,
    max(latitude) AS lat_max,
    min(longitude) AS lon_min,
    max(longitude) AS lon_max,
    CASE
        WHEN count(*) > 1 THEN
            'LINESTRING (' || string_agg(
                printf('%.7f %.7f', longitude, latitude), ', ' ORDER BY {time}{order}
            ) || ')'
    END AS geometry
FROM {kinematics}
GROUP BY trip_id
