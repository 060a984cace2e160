-- Canonical rows of WYDOT BSM records (ODE output, metadata.schemaVersion 1-8; coreData has the
-- same fields in every version, partII stays JSON).
--
-- Placeholders, filled by cvcatalog.schemas.MessageSchema.canonical_select_sql:
--   {relation}       a FROM item with columns metadata, payload (typed by the schema's
--                    read_columns) and source_key (the S3 key the record came from)
--   {validate}       TRUE or FALSE; FALSE applies only the 'malformed JSON' rule
--   {extra_columns}  empty, or ", <expr> AS <name>, ..." appended to the select list
--   {known_versions} the schema's known metadata.schemaVersion values as a list literal; a row of
--                    any other version is parsed the same way and gets the warning
--                    unknown_schema_version_<n> (counted per version by `report validation`)
--
-- The session TimeZone must be UTC while this runs: WYDOT writes UTC, and a timestamp without
-- an offset is read in the session zone. The ODE already publishes SI units (degrees, metres,
-- m/s), so values are copied, not scaled. Column order and types must match the schema's
-- canonical_columns; a change here needs a canonical_version bump.
SELECT
    b.generated_at,
    b.received_at,
    b.vehicle_id,
    b.latitude,
    b.longitude,
    b.elevation_m,
    b.speed_mps,
    b.heading_deg,
    b.schema_version,
    b.msg_cnt,
    b.sec_mark,
    b.accel_lat_mps2,
    b.accel_long_mps2,
    b.accel_vert_g,
    b.accel_yaw_dps,
    b.accuracy_semi_major_m,
    b.accuracy_semi_minor_m,
    b.accuracy_orientation_deg,
    b.steering_angle_deg,
    b.transmission,
    b.brakes_left_front,
    b.brakes_right_front,
    b.brakes_left_rear,
    b.brakes_right_rear,
    b.brakes_wheel_unavailable,
    b.brakes_traction,
    b.brakes_abs,
    b.brakes_scs,
    b.brakes_boost,
    b.brakes_aux,
    b.size_width_cm,
    b.size_length_cm,
    b.record_generated_by,
    b.record_type,
    b.log_file_name,
    b.payload_type,
    b.sanitized,
    b.security_result_code,
    b.bsm_source,
    b.valid_signature,
    b.serial_stream_id,
    b.serial_bundle_size,
    b.serial_bundle_id,
    b.serial_record_id,
    b.serial_number,
    b.rmd_latitude,
    b.rmd_longitude,
    b.rmd_elevation_m,
    b.rmd_speed_mps,
    b.rmd_heading_deg,
    b.rx_source,
    b.data_type,
    b.part_ii,
    b.source_key,
    -- One CASE, first match wins. All top-level columns NULL is how read_json(ignore_errors)
    -- marks a line it could not parse; such rows carry no data and are never kept.
    CASE
        WHEN b._no_metadata AND b._no_payload THEN 'malformed JSON'
        WHEN NOT {validate} THEN NULL
        WHEN b._no_metadata THEN 'missing required field metadata'
        WHEN b._no_payload THEN 'missing required field payload'
        WHEN b._generated_text IS NULL THEN 'missing required field metadata.recordGeneratedAt'
        WHEN b.generated_at IS NULL THEN 'unparseable timestamp: ' || left(b._generated_text, 100)
        WHEN b.vehicle_id IS NULL THEN 'missing required field payload.data.coreData.id'
        WHEN b.latitude IS NULL THEN 'missing required field payload.data.coreData.position.latitude'
        WHEN b.longitude IS NULL THEN 'missing required field payload.data.coreData.position.longitude'
    END AS invalid_reason,
    -- Out-of-range values are kept and flagged; limits are the J2735 value ranges.
    CASE
        WHEN NOT {validate} OR (b._no_metadata AND b._no_payload) THEN []::VARCHAR[]
        ELSE (
            CASE WHEN b.latitude NOT BETWEEN -90 AND 90 THEN ['latitude_out_of_range'] ELSE [] END
            || CASE WHEN b.longitude NOT BETWEEN -180 AND 180 THEN ['longitude_out_of_range'] ELSE [] END
            || CASE WHEN b.speed_mps < 0 OR b.speed_mps > 163.82 THEN ['speed_out_of_range'] ELSE [] END
            || CASE WHEN b.heading_deg < 0 OR b.heading_deg >= 360 THEN ['heading_out_of_range'] ELSE [] END
            || CASE WHEN b.elevation_m NOT BETWEEN -409.6 AND 6143.9 THEN ['elevation_out_of_range'] ELSE [] END
            || CASE WHEN b._received_text IS NOT NULL AND b.received_at IS NULL THEN ['received_at_unparseable'] ELSE [] END
            || CASE WHEN NOT list_contains({known_versions}, b.schema_version)
                    THEN ['unknown_schema_version_' || b.schema_version] ELSE [] END
        )::VARCHAR[]
    END AS warnings
    {extra_columns}
FROM (
    SELECT
        r.*,  -- metadata, payload, source_key and any pass-through columns
        r.metadata IS NULL AS _no_metadata,
        r.payload IS NULL AS _no_payload,
        -- an empty string (v8 records received over UDP) is no time
        coalesce(nullif(r.metadata.recordGeneratedAt, ''), nullif(r.metadata.generatedAt, '')) AS _generated_text,
        coalesce(nullif(r.metadata.odeReceivedAt, ''), nullif(r.metadata.receivedAt, '')) AS _received_text,
        -- '2017-12-05T16:33:58Z[UTC]' (schemaVersion <= 5) -> drop the bracketed zone name.
        -- The ODE (Java's ZonedDateTime.toString) omits zero seconds: '2017-12-05T16:33Z[UTC]'
        -- means 16:33:00, so the fallback inserts ':00' before the zone.
        coalesce(
            try_cast(split_part(_generated_text, '[', 1) AS TIMESTAMPTZ),
            try_cast(regexp_replace(split_part(_generated_text, '[', 1),
                '^(\d{4}-\d\d-\d\dT\d\d:\d\d)(Z|[+-]\d\d:?\d\d)?$', '\1:00\2') AS TIMESTAMPTZ)
        ) AS generated_at,
        coalesce(
            try_cast(split_part(_received_text, '[', 1) AS TIMESTAMPTZ),
            try_cast(regexp_replace(split_part(_received_text, '[', 1),
                '^(\d{4}-\d\d-\d\dT\d\d:\d\d)(Z|[+-]\d\d:?\d\d)?$', '\1:00\2') AS TIMESTAMPTZ)
        ) AS received_at,
        r.payload.data.coreData.id AS vehicle_id,
        r.payload.data.coreData.position.latitude AS latitude,
        r.payload.data.coreData.position.longitude AS longitude,
        r.payload.data.coreData.position.elevation AS elevation_m,
        r.payload.data.coreData.speed AS speed_mps,
        r.payload.data.coreData.heading AS heading_deg,
        r.metadata.schemaVersion AS schema_version,
        r.payload.data.coreData.msgCnt AS msg_cnt,
        r.payload.data.coreData.secMark AS sec_mark,
        r.payload.data.coreData.accelSet.accelLat AS accel_lat_mps2,
        r.payload.data.coreData.accelSet.accelLong AS accel_long_mps2,
        r.payload.data.coreData.accelSet.accelVert AS accel_vert_g,
        r.payload.data.coreData.accelSet.accelYaw AS accel_yaw_dps,
        r.payload.data.coreData.accuracy.semiMajor AS accuracy_semi_major_m,
        r.payload.data.coreData.accuracy.semiMinor AS accuracy_semi_minor_m,
        r.payload.data.coreData.accuracy.orientation AS accuracy_orientation_deg,
        r.payload.data.coreData.angle AS steering_angle_deg,
        r.payload.data.coreData.transmission AS transmission,
        r.payload.data.coreData.brakes.wheelBrakes.leftFront AS brakes_left_front,
        r.payload.data.coreData.brakes.wheelBrakes.rightFront AS brakes_right_front,
        r.payload.data.coreData.brakes.wheelBrakes.leftRear AS brakes_left_rear,
        r.payload.data.coreData.brakes.wheelBrakes.rightRear AS brakes_right_rear,
        r.payload.data.coreData.brakes.wheelBrakes.unavailable AS brakes_wheel_unavailable,
        r.payload.data.coreData.brakes.traction AS brakes_traction,
        r.payload.data.coreData.brakes.abs AS brakes_abs,
        r.payload.data.coreData.brakes.scs AS brakes_scs,
        r.payload.data.coreData.brakes.brakeBoost AS brakes_boost,
        r.payload.data.coreData.brakes.auxBrakes AS brakes_aux,
        r.payload.data.coreData.size.width AS size_width_cm,
        r.payload.data.coreData.size.length AS size_length_cm,
        coalesce(r.metadata.recordGeneratedBy, r.metadata.generatedBy) AS record_generated_by,
        r.metadata.recordType AS record_type,
        r.metadata.logFileName AS log_file_name,
        r.metadata.payloadType AS payload_type,
        r.metadata.sanitized AS sanitized,
        r.metadata.securityResultCode AS security_result_code,
        r.metadata.bsmSource AS bsm_source,
        r.metadata.validSignature AS valid_signature,
        r.metadata.serialId.streamId AS serial_stream_id,
        r.metadata.serialId.bundleSize AS serial_bundle_size,
        r.metadata.serialId.bundleId AS serial_bundle_id,
        r.metadata.serialId.recordId AS serial_record_id,
        r.metadata.serialId.serialNumber AS serial_number,
        -- receivedMessageDetails.locationData holds numbers as strings ("41.1", or "0" when unknown)
        try_cast(r.metadata.receivedMessageDetails.locationData.latitude AS DOUBLE) AS rmd_latitude,
        try_cast(r.metadata.receivedMessageDetails.locationData.longitude AS DOUBLE) AS rmd_longitude,
        try_cast(r.metadata.receivedMessageDetails.locationData.elevation AS DOUBLE) AS rmd_elevation_m,
        try_cast(r.metadata.receivedMessageDetails.locationData.speed AS DOUBLE) AS rmd_speed_mps,
        try_cast(r.metadata.receivedMessageDetails.locationData.heading AS DOUBLE) AS rmd_heading_deg,
        r.metadata.receivedMessageDetails.rxSource AS rx_source,
        r.payload.dataType AS data_type,
        r.payload.data.partII AS part_ii
    FROM {relation} AS r
) AS b
