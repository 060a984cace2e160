-- The BSMs of NYCDOT EVENT records, one row per BSM of bsmList, with the identity of its event.
--
-- Placeholders, filled by cvcatalog.schemas.view_sql:
--   {view}      the quoted view name
--   {relation}  the canonical nycdot_event view (canonical columns plus partition columns)
--
-- Obfuscated units (DataProcessing.txt): x_m, y_m, z_m are metres in the event's local frame
-- (x east, y north; the host BSM that triggered the warning is at 0,0,0), t_s is seconds
-- relative to the warning (negative before it), speed_mps m/s, heading_deg degrees clockwise
-- from north, accelerations m/s^2 and deg/s. accuracy_*, steering_angle and size_* keep their
-- J2735 units (see cvcatalog.schemas.nycdot.BSM_FIELDS), and so do vehicle_height (units of
-- 5 cm: 29 is 1.45 m) and vehicle_mass (the J2735 VehicleMass code, not kilograms), read from
-- partII as the records give them. bsm_index is the 1-based position in
-- bsmList. vehicle_role says whether the BSM is the host's, the warning target's, or another
-- vehicle's; is_trigger marks the BSMs named by triggerHVSeqNum / triggerTVSeqNum. The partII
-- extracts read the VehicleSafetyExtensions (partII-Id 0) and SupplementalVehicleExtensions
-- (partII-Id 2) elements; part_ii keeps the whole list.
CREATE OR REPLACE VIEW {view} AS
SELECT
    u.event_id,
    u.source_key,
    u.event_type,
    u.event_time_bin,
    u.host_veh_id,
    u.target_veh_id,
    u.bsm_index,
    u.b.vehicle_id AS vehicle_id,
    CASE
        WHEN u.b.vehicle_id = u.host_veh_id THEN 'host'
        WHEN u.b.vehicle_id = u.target_veh_id THEN 'target'
        ELSE 'other'
    END AS vehicle_role,
    coalesce(
        (u.b.vehicle_id = u.host_veh_id AND u.b.event_msg_seq_num = u.trigger_hv_seq_num)
        OR (u.b.vehicle_id = u.target_veh_id AND u.b.event_msg_seq_num = u.trigger_tv_seq_num),
        false
    ) AS is_trigger,
    u.b.event_msg_seq_num AS event_msg_seq_num,
    u.b.msg_cnt AS msg_cnt,
    u.b.t_s AS t_s,
    u.b.x_m AS x_m,
    u.b.y_m AS y_m,
    u.b.z_m AS z_m,
    u.b.speed_mps AS speed_mps,
    u.b.heading_deg AS heading_deg,
    u.b.accel_long_mps2 AS accel_long_mps2,
    u.b.accel_lat_mps2 AS accel_lat_mps2,
    u.b.accel_vert_mps2 AS accel_vert_mps2,
    u.b.accel_yaw_dps AS accel_yaw_dps,
    u.b.accuracy_semi_major AS accuracy_semi_major,
    u.b.accuracy_semi_minor AS accuracy_semi_minor,
    u.b.accuracy_orientation AS accuracy_orientation,
    u.b.transmission AS transmission,
    u.b.steering_angle AS steering_angle,
    u.b.brakes_wheel_brakes AS brakes_wheel_brakes,
    u.b.brakes_traction AS brakes_traction,
    u.b.brakes_abs AS brakes_abs,
    u.b.brakes_scs AS brakes_scs,
    u.b.brakes_boost AS brakes_boost,
    u.b.brakes_aux AS brakes_aux,
    u.b.size_width_cm AS size_width_cm,
    u.b.size_length_cm AS size_length_cm,
    u.b.my_rf_level AS my_rf_level,
    u.b.authenticated AS authenticated,
    json_extract(u._vse, '$.pathHistory.crumbData') AS path_history,
    try_cast(json_extract_string(u._vse, '$.pathPrediction.radiusOfCurve') AS INTEGER) AS path_radius_of_curve,
    try_cast(json_extract_string(u._vse, '$.pathPrediction.confidence') AS INTEGER) AS path_confidence,
    json_extract_string(u._vse, '$.lights.value') AS exterior_lights,
    try_cast(json_extract_string(u._suve, '$.classification') AS INTEGER) AS vehicle_classification,
    try_cast(json_extract_string(u._suve, '$.vehicleData.height') AS INTEGER) AS vehicle_height,
    try_cast(json_extract_string(u._suve, '$.vehicleData.mass') AS INTEGER) AS vehicle_mass,
    u.b.part_ii::JSON AS part_ii,
    u.invalid_reason,
    u.source,
    u.message_type,
    u.year,
    u.month,
    u.weekday,
    u.time_bin
FROM (
    SELECT
        v.*,
        json_extract(list_filter(v._elements, lambda x: x ->> '$."partII-Id"' = '0')[1], '$."partII-Value"') AS _vse,
        json_extract(list_filter(v._elements, lambda x: x ->> '$."partII-Id"' = '2')[1], '$."partII-Value"') AS _suve
    FROM (
        SELECT
            w.*,
            CASE json_type(w.b.part_ii::JSON)
                WHEN 'ARRAY' THEN json_extract(w.b.part_ii::JSON, '$[*]')
                WHEN 'OBJECT' THEN [w.b.part_ii::JSON]
            END AS _elements
        FROM (
            SELECT
                e.event_id, e.source_key, e.event_type, e.event_time_bin, e.host_veh_id,
                e.target_veh_id, e.trigger_hv_seq_num, e.trigger_tv_seq_num, e.invalid_reason,
                e.source, e.message_type, e.year, e.month, e.weekday, e.time_bin,
                unnest(e.bsm_list) AS b,
                generate_subscripts(e.bsm_list, 1) AS bsm_index
            FROM {relation} AS e
        ) AS w
    ) AS v
) AS u
