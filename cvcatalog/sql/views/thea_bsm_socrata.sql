-- THEA BSM under the data.transportation.gov (Socrata) flattened column names, in the order of
-- the TheaBSMFlattener column list, plus source and date. Only valid rows (invalid_reason IS
-- NULL) are included, as the portal did.
--
-- Placeholders, filled by cvcatalog.schemas:
--   {view}      the quoted view name
--   {relation}  a FROM item with the canonical columns plus source and date
--               (the canonical view, or a registered data frame)
--
-- Values are the canonical ones: SI units (degrees, metres, m/s, g, ...), not the raw J2735
-- strings the portal published, so that they compare with WYDOT's socrata view. Times are UTC
-- instants, except metadata_generatedAt_timeOfDay: hours into the Eastern day, as the portal
-- computed it from the [ET] text. randomNum is a hash of the row, not random(): the same row
-- always gets the same number, so samples taken with it are repeatable.
-- coreData_brakes_wheelBrakes_* split the BrakeAppliedStatus bits; part2_vse_ph_crumbdata is the
-- path history as [{latOffset, lonOffset, elevationOffset, timeOffset}] in degrees, m and s.
CREATE OR REPLACE VIEW {view} AS
SELECT
    e.data_type AS "dataType",
    e.generated_at AS "metadata_generatedAt",
    e.record_generated_by AS "metadata_generatedBy",
    e.log_file_name AS "metadata_logFileName",
    e.schema_version AS "metadata_schemaVersion",
    e.rsu_id AS "metadata_RSUID",
    e.kind AS "metadata_kind",
    try_cast(e.psid AS BIGINT) AS "metadata_psid",
    e.bsm_source AS "metadata_bsmSource",
    e.external_id AS "metadata_externalID",
    e.msg_cnt AS "coreData_msgCnt",
    e.vehicle_id AS "coreData_id",
    e.sec_mark AS "coreData_secMark",
    e.latitude AS "coreData_position_lat",
    e.longitude AS "coreData_position_long",
    e.elevation_m AS "coreData_elevation",
    e.accel_yaw_dps AS "coreData_accelset_accelYaw",
    e.accel_lat_mps2 AS "coreData_accelset_lat",
    e.accel_long_mps2 AS "coreData_accelset_long",
    e.accel_vert_g AS "coreData_accelset_vert",
    e.steering_angle_deg AS "coreData_angle",
    e.accuracy_orientation_deg AS "coreData_accuracy_orientation",
    e.accuracy_semi_major_m AS "coreData_accuracy_semiMajor",
    e.accuracy_semi_minor_m AS "coreData_accuracy_semiMinor",
    e.transmission AS "coreData_transmission",
    e.speed_mps AS "coreData_speed",
    e.heading_deg AS "coreData_heading",
    e.brakes_left_front AS "coreData_brakes_wheelBrakes_leftFront",
    e.brakes_right_front AS "coreData_brakes_wheelBrakes_rightFront",
    e.brakes_wheel_unavailable AS "coreData_brakes_wheelBrakes_unavailable",
    e.brakes_left_rear AS "coreData_brakes_wheelBrakes_leftRear",
    e.brakes_right_rear AS "coreData_brakes_wheelBrakes_rightRear",
    e.brakes_traction AS "coreData_brakes_traction",
    e.brakes_abs AS "coreData_brakes_abs",
    e.brakes_scs AS "coreData_brakes_scs",
    e.brakes_boost AS "coreData_brakes_brakeBoost",
    e.brakes_aux AS "coreData_brakes_auxBrakes",
    CASE
        WHEN e.size_width_cm IS NOT NULL OR e.size_length_cm IS NOT NULL
        THEN json_object('width', e.size_width_cm, 'length', e.size_length_cm)
    END AS "coreData_size",
    e.vehicle_class AS "part2_suve_classification",
    e.vehicle_hpms_type AS "part2_suve_cd_hpmstype",
    e.vehicle_role AS "part2_suve_cd_role",
    e.vehicle_height_m AS "part2_suve_vd_height",
    e.vehicle_mass_kg AS "part2_suve_vd_mass",
    e.bumper_front_m AS "part2_suve_vd_bumpers_front",
    e.bumper_rear_m AS "part2_suve_vd_bumpers_rear",
    e.vehicle_events AS "part2_vse_events",
    CASE WHEN e.path_history IS NOT NULL THEN to_json(list_transform(e.path_history, lambda p: {
        'latOffset': p.lat_offset_deg, 'lonOffset': p.lon_offset_deg,
        'elevationOffset': p.elevation_offset_m, 'timeOffset': p.time_offset_s
    })) END AS "part2_vse_ph_crumbdata",
    e.path_confidence_pct AS "part2_vse_pp_confidence",
    e.path_radius_m AS "part2_vse_pp_radiusofcurve",
    e.exterior_lights AS "part2_vse_lights",
    CASE
        WHEN e.longitude IS NOT NULL AND e.latitude IS NOT NULL
        THEN 'POINT (' || e.longitude::VARCHAR || ' ' || e.latitude::VARCHAR || ')'
    END AS "coreData_position",
    hash(e.source_key, e.generated_at, e.vehicle_id, e.msg_cnt, e.sec_mark)::DOUBLE
        / 18446744073709551616.0 AS "randomNum",
    (hour(_local) + minute(_local) / 60 + second(_local) / 3600)::DOUBLE AS "metadata_generatedAt_timeOfDay",
    e.source AS source,
    e.date AS date
FROM (
    SELECT c.*, timezone('America/New_York', c.generated_at) AS _local
    FROM {relation} AS c
    WHERE c.invalid_reason IS NULL
) AS e
