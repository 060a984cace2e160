-- Canonical rows of THEA BSM records (metadata.schemaVersion 1), one row per record.
--
-- Placeholders, filled by cvcatalog.schemas.MessageSchema.canonical_select_sql:
--   {relation}       a FROM item with columns metadata, payload (typed by the schema's
--                    read_columns) and source_key (the S3 key the record came from)
--   {validate}       TRUE or FALSE; FALSE applies only the 'malformed JSON' rule
--   {extra_columns}  empty, or ", <expr> AS <name>, ..." appended to the select list
--
-- THEA writes every value as a string in raw J2735 units. Each is try_cast and scaled to SI with
-- the unit and "unavailable" sentinel of thea_bsm_sandbox_data_dictionary.csv (a sentinel becomes
-- NULL via nullif). Dividing by the exact power of ten or integer of a unit (lat / 1e7,
-- speed / 50 for 0.02 m/s) gives the double nearest the decimal value, as a reader would expect.
-- recordGeneratedAt is US Eastern wall time ('2019-01-14 00:20:30.046 [ET]'): timezone() turns
-- it into an instant, so the session TimeZone plays no part; a repeated (fall-back) wall time is
-- read as its standard-time occurrence. Column order and types must match the schema's
-- canonical_columns; a change here needs a canonical_version bump.
SELECT
    b.generated_at,
    CAST(NULL AS TIMESTAMPTZ) AS received_at,
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
    b.metadata.recordGeneratedBy AS record_generated_by,
    b.metadata.logFileName AS log_file_name,
    b.metadata.bsmSource AS bsm_source,
    b.metadata.dataType AS data_type,
    b.part_ii,
    b.metadata.RSUID AS rsu_id,
    b.metadata.kind AS kind,
    b.metadata.psid AS psid,
    b.metadata.externalID AS external_id,
    b._suve.classification AS vehicle_class,
    b.vehicle_hpms_type,
    b.vehicle_role,
    try_cast(b._suve.vehicleData.height AS DOUBLE) / 20 AS vehicle_height_m,  -- 5 cm
    -- VehicleMass: 0..80 in 50 kg, 81..200 in 500 kg, 201..253 in 2000 kg steps; 254 is
    -- "above 170000 kg" (kept as 170000), 255 unavailable
    CASE
        WHEN b._mass BETWEEN 0 AND 80 THEN b._mass * 50
        WHEN b._mass BETWEEN 81 AND 200 THEN 4000 + (b._mass - 80) * 500
        WHEN b._mass BETWEEN 201 AND 253 THEN 64000 + (b._mass - 200) * 2000
        WHEN b._mass = 254 THEN 170000
    END::DOUBLE AS vehicle_mass_kg,
    try_cast(b._suve.vehicleData.bumpers.front AS DOUBLE) / 100 AS bumper_front_m,  -- 0.01 m
    try_cast(b._suve.vehicleData.bumpers.rear AS DOUBLE) / 100 AS bumper_rear_m,
    b._vse.events AS vehicle_events,
    b._vse.lights AS exterior_lights,
    b.path_history,
    -- radiusOfCurve in 10 cm; 32767 means a straight path and is kept (3276.7 m), as the ODE does
    try_cast(b._vse.pathPrediction.radiusOfCurve AS DOUBLE) / 10 AS path_radius_m,
    try_cast(b._vse.pathPrediction.confidence AS DOUBLE) / 2 AS path_confidence_pct,  -- 0.5 %
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
        WHEN b._core.lat IS NULL THEN 'missing required field payload.data.coreData.lat'
        WHEN b.latitude IS NULL THEN 'unavailable required field payload.data.coreData.lat: ' || left(b._core.lat, 100)
        WHEN b._core.long IS NULL THEN 'missing required field payload.data.coreData.long'
        WHEN b.longitude IS NULL THEN 'unavailable required field payload.data.coreData.long: ' || left(b._core.long, 100)
    END AS invalid_reason,
    -- Out-of-range values are kept and flagged (limits: the J2735 value ranges, as for WYDOT);
    -- a number that is not a number is NULL and flagged.
    CASE
        WHEN NOT {validate} OR (b._no_metadata AND b._no_payload) THEN []::VARCHAR[]
        ELSE (
            CASE WHEN b.latitude NOT BETWEEN -90 AND 90 THEN ['latitude_out_of_range'] ELSE [] END
            || CASE WHEN b.longitude NOT BETWEEN -180 AND 180 THEN ['longitude_out_of_range'] ELSE [] END
            || CASE WHEN b.speed_mps < 0 OR b.speed_mps > 163.82 THEN ['speed_out_of_range'] ELSE [] END
            || CASE WHEN b.heading_deg < 0 OR b.heading_deg >= 360 THEN ['heading_out_of_range'] ELSE [] END
            || CASE WHEN b.elevation_m NOT BETWEEN -409.6 AND 6143.9 THEN ['elevation_out_of_range'] ELSE [] END
            || CASE WHEN b._core.speed IS NOT NULL AND try_cast(b._core.speed AS DOUBLE) IS NULL THEN ['speed_unparseable'] ELSE [] END
            || CASE WHEN b._core.heading IS NOT NULL AND try_cast(b._core.heading AS DOUBLE) IS NULL THEN ['heading_unparseable'] ELSE [] END
            || CASE WHEN b._core.elev IS NOT NULL AND try_cast(b._core.elev AS DOUBLE) IS NULL THEN ['elevation_unparseable'] ELSE [] END
        )::VARCHAR[]
    END AS warnings
    {extra_columns}
FROM (
    -- typed Part II values (the structs parsed one level down)
    SELECT
        p.*,
        try_cast(p._suve.vehicleData.mass AS INTEGER) AS _mass,
        CASE json_type(p._suve.classDetails.hpmsType)
            WHEN 'OBJECT' THEN json_keys(p._suve.classDetails.hpmsType)[1]
            WHEN 'VARCHAR' THEN p._suve.classDetails.hpmsType ->> '$' END AS vehicle_hpms_type,
        CASE json_type(p._suve.classDetails.role)
            WHEN 'OBJECT' THEN json_keys(p._suve.classDetails.role)[1]
            WHEN 'VARCHAR' THEN p._suve.classDetails.role ->> '$' END AS vehicle_role,
        -- Path history offsets (current minus past position): 1e-7 degree, 0.1 m, 10 ms. The
        -- J2735 "unavailable" values of these offsets (-131072, -2048, 65535) become NULL.
        CAST(list_transform(
            CASE json_type(p._vse.pathHistory.crumbData.PathHistoryPoint)
                WHEN 'ARRAY' THEN json_extract(p._vse.pathHistory.crumbData.PathHistoryPoint, '$[*]')
                WHEN 'OBJECT' THEN [p._vse.pathHistory.crumbData.PathHistoryPoint] END,
            lambda x: {
                'lat_offset_deg': nullif(try_cast(x ->> '$.latOffset' AS DOUBLE), -131072) / 10000000,
                'lon_offset_deg': nullif(try_cast(x ->> '$.lonOffset' AS DOUBLE), -131072) / 10000000,
                'elevation_offset_m': nullif(try_cast(x ->> '$.elevationOffset' AS DOUBLE), -2048) / 10,
                'time_offset_s': nullif(try_cast(x ->> '$.timeOffset' AS DOUBLE), 65535) / 100
            })
        AS STRUCT(lat_offset_deg DOUBLE, lon_offset_deg DOUBLE, elevation_offset_m DOUBLE,
                  time_offset_s DOUBLE)[]) AS path_history
    FROM (
        SELECT
            q.*,
            -- an explicit offset is honoured; otherwise the text is Eastern wall time
            CASE
                WHEN regexp_matches(q._generated_text, '\d:\d\d(:\d\d(\.\d+)?)?\s*(Z|[+-]\d\d(:?\d\d)?)$')
                THEN try_cast(q._generated_text AS TIMESTAMPTZ)
                ELSE timezone('America/New_York',
                    try_cast(regexp_replace(q._generated_text, '\s*\[ET\]\s*$', '') AS TIMESTAMP))
            END AS generated_at,
            q._core.id AS vehicle_id,
            nullif(try_cast(q._core.lat AS DOUBLE), 900000001) / 10000000 AS latitude,  -- 1e-7 degree
            nullif(try_cast(q._core.long AS DOUBLE), 1800000001) / 10000000 AS longitude,
            nullif(try_cast(q._core.elev AS DOUBLE), -4096) / 10 AS elevation_m,  -- 0.1 m
            nullif(try_cast(q._core.speed AS DOUBLE), 8191) / 50 AS speed_mps,  -- 0.02 m/s
            nullif(try_cast(q._core.heading AS DOUBLE), 28800) / 80 AS heading_deg,  -- 0.0125 degree
            try_cast(q.metadata.schemaVersion AS INTEGER) AS schema_version,
            try_cast(q._core.msgCnt AS INTEGER) AS msg_cnt,
            nullif(try_cast(q._core.secMark AS INTEGER), 65535) AS sec_mark,  -- ms of the minute
            nullif(try_cast(q._core.accelSet.lat AS DOUBLE), 2001) / 100 AS accel_lat_mps2,  -- 0.01 m/s^2
            nullif(try_cast(q._core.accelSet.long AS DOUBLE), 2001) / 100 AS accel_long_mps2,
            nullif(try_cast(q._core.accelSet.vert AS DOUBLE), -127) / 50 AS accel_vert_g,  -- 0.02 G
            try_cast(q._core.accelSet.yaw AS DOUBLE) / 100 AS accel_yaw_dps,  -- 0.01 degree/s
            nullif(try_cast(q._core.accuracy.semiMajor AS DOUBLE), 255) / 20 AS accuracy_semi_major_m,  -- 5 cm
            nullif(try_cast(q._core.accuracy.semiMinor AS DOUBLE), 255) / 20 AS accuracy_semi_minor_m,
            -- 360/65535 degree
            nullif(try_cast(q._core.accuracy.orientation AS DOUBLE), 65535) * 360 / 65535 AS accuracy_orientation_deg,
            nullif(try_cast(q._core.angle AS DOUBLE), 127) * 1.5 AS steering_angle_deg,  -- 1.5 degree
            -- enumerations are one-key objects ({"forwardGears": null}); transmission is upper-cased
            -- to the ODE's spelling (FORWARDGEARS) so it compares with WYDOT
            upper(CASE json_type(q._core.transmission)
                WHEN 'OBJECT' THEN json_keys(q._core.transmission)[1]
                WHEN 'VARCHAR' THEN q._core.transmission ->> '$' END) AS transmission,
            -- BrakeAppliedStatus bit string: unavailable, leftFront, leftRear, rightFront, rightRear
            CASE WHEN regexp_matches(q._core.brakes.wheelBrakes, '^[01]{5}$') THEN q._core.brakes.wheelBrakes END AS _wheels,
            substr(_wheels, 2, 1) = '1' AS brakes_left_front,
            substr(_wheels, 4, 1) = '1' AS brakes_right_front,
            substr(_wheels, 3, 1) = '1' AS brakes_left_rear,
            substr(_wheels, 5, 1) = '1' AS brakes_right_rear,
            substr(_wheels, 1, 1) = '1' AS brakes_wheel_unavailable,
            CASE json_type(q._core.brakes.traction)
                WHEN 'OBJECT' THEN json_keys(q._core.brakes.traction)[1]
                WHEN 'VARCHAR' THEN q._core.brakes.traction ->> '$' END AS brakes_traction,
            CASE json_type(q._core.brakes.abs)
                WHEN 'OBJECT' THEN json_keys(q._core.brakes.abs)[1]
                WHEN 'VARCHAR' THEN q._core.brakes.abs ->> '$' END AS brakes_abs,
            CASE json_type(q._core.brakes.scs)
                WHEN 'OBJECT' THEN json_keys(q._core.brakes.scs)[1]
                WHEN 'VARCHAR' THEN q._core.brakes.scs ->> '$' END AS brakes_scs,
            CASE json_type(q._core.brakes.brakeBoost)
                WHEN 'OBJECT' THEN json_keys(q._core.brakes.brakeBoost)[1]
                WHEN 'VARCHAR' THEN q._core.brakes.brakeBoost ->> '$' END AS brakes_boost,
            CASE json_type(q._core.brakes.auxBrakes)
                WHEN 'OBJECT' THEN json_keys(q._core.brakes.auxBrakes)[1]
                WHEN 'VARCHAR' THEN q._core.brakes.auxBrakes ->> '$' END AS brakes_aux,
            -- size is an object, or the same object as a string ("stringified" in the dictionary)
            CASE json_type(q._core.size)
                WHEN 'OBJECT' THEN q._core.size
                WHEN 'VARCHAR' THEN try_cast(q._core.size ->> '$' AS JSON) END AS _size,
            try_cast(_size ->> '$.width' AS INTEGER) AS size_width_cm,
            try_cast(_size ->> '$.length' AS INTEGER) AS size_length_cm,
            CASE WHEN q._elements IS NOT NULL THEN to_json(q._elements) END AS part_ii,
            from_json(
                list_filter(list_transform(q._elements,
                    lambda x: x -> '$."partII-Value".VehicleSafetyExtensions'), lambda v: v IS NOT NULL)[1],
                '{"events": "VARCHAR", "lights": "VARCHAR",
                  "pathHistory": {"crumbData": {"PathHistoryPoint": "JSON"}},
                  "pathPrediction": {"radiusOfCurve": "VARCHAR", "confidence": "VARCHAR"}}'
            ) AS _vse,
            from_json(
                list_filter(list_transform(q._elements,
                    lambda x: x -> '$."partII-Value".SupplementalVehicleExtensions'), lambda v: v IS NOT NULL)[1],
                '{"classification": "VARCHAR", "classDetails": {"role": "JSON", "hpmsType": "JSON"},
                  "vehicleData": {"height": "VARCHAR", "mass": "VARCHAR",
                                  "bumpers": {"front": "VARCHAR", "rear": "VARCHAR"}}}'
            ) AS _suve
        FROM (
            SELECT
                r.*,  -- metadata, payload, source_key and any pass-through columns
                r.metadata IS NULL AS _no_metadata,
                r.payload IS NULL AS _no_payload,
                r.payload.data.coreData AS _core,
                r.metadata.recordGeneratedAt AS _generated_text,
                -- partII: {"SEQUENCE": element or [elements]}; kept verbatim as an array
                CASE json_type(r.payload.data.partII)
                    WHEN 'ARRAY' THEN json_extract(r.payload.data.partII, '$[*]')
                    WHEN 'OBJECT' THEN (
                        CASE json_type(r.payload.data.partII -> '$.SEQUENCE')
                            WHEN 'ARRAY' THEN json_extract(r.payload.data.partII, '$.SEQUENCE[*]')
                            WHEN 'OBJECT' THEN [r.payload.data.partII -> '$.SEQUENCE'] END)
                END AS _elements
            FROM {relation} AS r
        ) AS q
    ) AS p
) AS b
