-- Every row of a trajectory relation with the trip it belongs to (cvcatalog.state.trips).
--
-- Placeholders, filled by cvcatalog.state.trips:
--   {view}      the quoted view name
--   {relation}  the relation of points (`bsm`, `ngsim_trajectories`)
--   {columns}   its quoted columns, in order
--   {source}    the source column, or the source name as a literal
--   {time}      the quoted time column (UTC instants)
--   {order}     tie-breakers after the time, e.g. `, "source_key", "msg_cnt"`
--   {gap_us}    trips.max_gap_s in microseconds, an integer literal
--
-- Per (source, vehicle_id), in time order, a trip starts at the first point and wherever the
-- time since the previous point is MORE than the gap: a gap exactly equal to trips.max_gap_s
-- stays inside the trip (integer microseconds, so the comparison is exact). trip_id is
-- `source:vehicle_id:first time` (UTC, ISO 8601 with milliseconds), stable across re-reads.
-- Rows without a vehicle id or a time belong to no trip (trip_id NULL).
CREATE OR REPLACE VIEW {view} AS
WITH ordered AS (
    SELECT
        {columns},
        {source} AS _trip_source,
        lag({time}) OVER (
            PARTITION BY {source}, vehicle_id, {time} IS NULL ORDER BY {time}{order}
        ) AS _prev_time
    FROM {relation}
),
marked AS (
    SELECT
        *,
        CASE
            WHEN _prev_time IS NULL OR epoch_us({time}) - epoch_us(_prev_time) > {gap_us}
            THEN {time}
        END AS _trip_start
    FROM ordered
)
SELECT
    * EXCLUDE (_trip_source, _prev_time, _trip_start),
    CASE
        WHEN vehicle_id IS NOT NULL AND {time} IS NOT NULL THEN
            _trip_source || ':' || vehicle_id || ':' || strftime(
                timezone('UTC', max(_trip_start) OVER (
                    PARTITION BY _trip_source, vehicle_id, {time} IS NULL ORDER BY {time}{order}
                    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
                )),
                '%Y-%m-%dT%H:%M:%S.%gZ'
            )
    END AS trip_id
FROM marked
