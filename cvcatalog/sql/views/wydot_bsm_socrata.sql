-- WYDOT BSM under the data.transportation.gov (Socrata) flattened column names, in the order of
-- the WydotBSMFlattener column list, plus source and date. Existing analysis pipelines expect
-- these names. Only valid rows (invalid_reason IS NULL) are included, as the portal did.
--
-- Placeholders, filled by cvcatalog.schemas:
--   {view}      the quoted view name
--   {relation}  a FROM item with the canonical columns plus source and date
--               (the canonical view, or a registered data frame)
--
-- part2_* come from part_ii (partII kept verbatim as JSON): the element whose id is
-- VehicleSafetyExtensions (vse), SupplementalVehicleExtensions (suve) or
-- SpecialVehicleExtensions (spve). partII is normally an array; a single object is accepted,
-- and so is a path history of one point given as an object (a list of one, as THEA's).
-- J2735 2024 (schemaVersion 8) renamed deprecated fields doNotUse*: SpecialVehicleExtensions
-- trailers -> doNotUse (its sspRights -> doNotUse), vehicleAlerts.sspRights and
-- vehicleAlerts.events.sspRights -> doNotUse, VehicleData.trailerWeight -> doNotUse; each column
-- reads the older name, else the newer one. PrivilegedEvents carries its flags as `event` in ODE
-- output (jpo-ode J2735PrivilegedEvents); `events` is read first, as before.
-- Fields the records never carry (e.g. metadata_securityResultCode before schemaVersion 5)
-- are NULL.
CREATE OR REPLACE VIEW {view} AS
SELECT
    e.data_type AS "dataType",
    e.generated_at AS "metadata_generatedAt",
    e.record_generated_by AS "metadata_generatedBy",
    e.log_file_name AS "metadata_logFileName",
    e.schema_version AS "metadata_schemaVersion",
    e.security_result_code AS "metadata_securityResultCode",
    e.sanitized AS "metadata_sanitized",
    e.payload_type AS "metadata_payloadType",
    e.record_type AS "metadata_recordType",
    e.serial_stream_id AS "metadata_serialId_streamId",
    e.serial_bundle_size AS "metadata_serialId_bundleSize",
    e.serial_bundle_id AS "metadata_serialId_bundleId",
    e.serial_record_id AS "metadata_serialId_recordId",
    e.serial_number AS "metadata_serialId_serialNumber",
    e.received_at AS "metadata_receivedAt",
    e.rmd_elevation_m AS "metadata_rmd_elevation",
    e.rmd_heading_deg AS "metadata_rmd_heading",
    e.rmd_latitude AS "metadata_rmd_latitude",
    e.rmd_longitude AS "metadata_rmd_longitude",
    e.rmd_speed_mps AS "metadata_rmd_speed",
    e.rx_source AS "metadata_rmd_rxSource",
    e.bsm_source AS "metadata_bsmSource",
    e.msg_cnt AS "coreData_msgCnt",
    e.vehicle_id AS "coreData_id",
    e.sec_mark AS "coreData_secMark",
    e.latitude AS "coreData_position_lat",
    e.longitude AS "coreData_position_long",
    e.elevation_m AS "coreData_elevation",
    e.accel_yaw_dps AS "coreData_accelset_accelYaw",
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
    json_extract_string(e._suve, '$.classDetails.hpmsType') AS "part2_suve_cd_hpmstype",
    json_extract_string(e._suve, '$.classDetails.role') AS "part2_suve_cd_role",
    try_cast(json_extract_string(e._suve, '$.vehicleData.height') AS DOUBLE) AS "part2_suve_vd_height",
    try_cast(json_extract_string(e._suve, '$.vehicleData.mass') AS DOUBLE) AS "part2_suve_vd_mass",
    try_cast(coalesce(
        json_extract_string(e._suve, '$.vehicleData.trailerWeight'),
        json_extract_string(e._suve, '$.vehicleData.doNotUse')
    ) AS DOUBLE) AS "part2_suve_vd_trailerweight",
    json_extract(e._vse, '$.events') AS "part2_vse_events",
    CASE json_type(e._vse, '$.pathHistory.crumbData')
        WHEN 'OBJECT' THEN json_array(json_extract(e._vse, '$.pathHistory.crumbData'))
        ELSE json_extract(e._vse, '$.pathHistory.crumbData')
    END AS "part2_vse_ph_crumbdata",
    try_cast(json_extract_string(e._vse, '$.pathPrediction.confidence') AS DOUBLE) AS "part2_vse_pp_confidence",
    try_cast(json_extract_string(e._vse, '$.pathPrediction.radiusOfCurve') AS DOUBLE) AS "part2_vse_pp_radiusofcurve",
    json_extract(e._vse, '$.lights') AS "part2_vse_lights",
    try_cast(coalesce(
        json_extract_string(e._spve, '$.vehicleAlerts.sspRights'),
        json_extract_string(e._spve, '$.vehicleAlerts.doNotUse')
    ) AS BIGINT) AS "part2_spve_vehalert_sspRights",
    try_cast(coalesce(
        json_extract_string(e._spve, '$.vehicleAlerts.events.sspRights'),
        json_extract_string(e._spve, '$.vehicleAlerts.events.doNotUse')
    ) AS BIGINT) AS "part2_spve_vehalert_event_sspRights",
    coalesce(
        json_extract(e._spve, '$.vehicleAlerts.events.events'),
        json_extract(e._spve, '$.vehicleAlerts.events.event')
    ) AS "part2_spve_vehalert_event_events",
    json_extract_string(e._spve, '$.vehicleAlerts.lightsUse') AS "part2_spve_vehalert_lightsUse",
    json_extract_string(e._spve, '$.vehicleAlerts.multi') AS "part2_spve_vehalert_multi",
    json_extract_string(e._spve, '$.vehicleAlerts.responseType') AS "part2_spve_vehalert_responseType",
    json_extract_string(e._spve, '$.vehicleAlerts.sirenUse') AS "part2_spve_vehalert_sirenUse",
    json_extract(e._spve, '$.description.description') AS "part2_spve_event_desc",
    json_extract_string(e._spve, '$.description.extent') AS "part2_spve_event_extent",
    json_extract(e._spve, '$.description.heading') AS "part2_spve_event_heading",
    try_cast(coalesce(
        json_extract_string(e._trailers, '$.sspRights'),
        json_extract_string(e._trailers, '$.doNotUse')
    ) AS BIGINT) AS "part2_spve_tr_sspRights",
    json_extract(e._trailers, '$.connection') AS "part2_spve_tr_conn",
    json_extract(e._trailers, '$.units') AS "part2_spve_tr_units",
    CASE
        WHEN e.longitude IS NOT NULL AND e.latitude IS NOT NULL
        THEN 'POINT (' || e.longitude::VARCHAR || ' ' || e.latitude::VARCHAR || ')'
    END AS "coreData_position",
    e.source AS source,
    e.date AS date
FROM (
    SELECT
        t.*,
        -- TrailerData: `trailers` up to J2735 2020, `doNotUse` in J2735 2024 (schemaVersion 8)
        CASE
            WHEN json_type(json_extract(t._spve, '$.trailers')) = 'OBJECT' THEN json_extract(t._spve, '$.trailers')
            WHEN json_type(json_extract(t._spve, '$.doNotUse')) = 'OBJECT' THEN json_extract(t._spve, '$.doNotUse')
        END AS _trailers
    FROM (
        SELECT
            p.*,
            json_extract(list_filter(p._elements, lambda x: x ->> '$.id' = 'VehicleSafetyExtensions')[1], '$.value') AS _vse,
            json_extract(list_filter(p._elements, lambda x: x ->> '$.id' = 'SupplementalVehicleExtensions')[1], '$.value') AS _suve,
            json_extract(list_filter(p._elements, lambda x: x ->> '$.id' = 'SpecialVehicleExtensions')[1], '$.value') AS _spve
        FROM (
            SELECT
                c.*,
                CASE json_type(c.part_ii::JSON)
                    WHEN 'ARRAY' THEN json_extract(c.part_ii::JSON, '$[*]')
                    WHEN 'OBJECT' THEN [c.part_ii::JSON]
                END AS _elements
            FROM {relation} AS c
            WHERE c.invalid_reason IS NULL
        ) AS p
    ) AS t
) AS e
