-- Canonical rows of NYCDOT EVENT records (obfuscated ASD warning events), one row per event.
--
-- Placeholders, filled by cvcatalog.schemas.MessageSchema.canonical_select_sql:
--   {relation}       a FROM item with columns eventHeader, bsmList, mapList, spatList, timList
--                    (typed by the schema's read_columns) and source_key (the S3 key)
--   {validate}       TRUE or FALSE; FALSE applies only the 'malformed JSON' rule
--   {extra_columns}  empty, or ", <expr> AS <name>, ..." appended to the select list
--   {bsm_list_type}  the typed bsmList (cvcatalog.schemas.nycdot.BSM_LIST_TYPE); bsmList is
--                    read as JSON and cast to it, a lone BSM object as a list of one
--
-- There is no metadata block and no absolute time: eventHeader.eventTimeBin
-- ('2021-04-FRI-AM', New York local; 'N/A' for an extra-obfuscated weekday or time of day) is
-- parsed into event_year/month/weekday/time_of_day ('N/A' written 'NA' as in the bucket
-- folders). BSM values are copied unscaled into a typed LIST of STRUCT; MAP, SPaT and TIM
-- messages stay JSON text, one list element per message. JSON nested in lists is stored as
-- VARCHAR (pyarrow cannot build an empty Dask meta for it); the views cast it back to JSON.
-- NYCDOT has no schemaVersion: the constant 1 (cvcatalog.schemas.nycdot.NYCDOT_SCHEMA_VERSION)
-- is written. Column order and types must
-- match the schema's canonical_columns; a change here needs a canonical_version bump.
SELECT
    b.event_id,
    b.event_type,
    b.event_time_bin,
    b.event_year,
    b.event_month,
    b.event_weekday,
    b.event_time_of_day,
    b.event_location_bin,
    b.near_rsu,
    b.borough_bin,
    b.road_type_bin,
    b.event_status,
    b.host_veh_id,
    b.target_veh_id,
    b.trigger_hv_seq_num,
    b.trigger_tv_seq_num,
    b.event_alert_sent,
    b.event_alert_active,
    b.event_alert_heard,
    b.location_source,
    b.asd_firmware_version,
    b.grp_id,
    b.weather_condition,
    b.air_temperature_f,
    b.precipitation_1hr,
    try_cast(b.precipitation_1hr AS DOUBLE) AS precipitation_1hr_in,
    b.wind_speed_kt,
    b.speed_condition_mph,
    b.last_plowed_min,
    try_cast(json_extract_string(b._parameters, '$.recordingROI') AS DOUBLE) AS param_recording_roi,
    try_cast(json_extract_string(b._parameters, '$.timeRecordBefore') AS DOUBLE) AS param_time_record_before,
    try_cast(json_extract_string(b._parameters, '$.timeRecordFollow') AS DOUBLE) AS param_time_record_follow,
    json_extract_string(b._parameters, '$.timeRecordResolution') AS param_time_record_resolution,
    try_cast(json_extract_string(b._parameters, '$.minSpdThreshold') AS DOUBLE) AS param_min_spd_threshold,
    try_cast(json_extract_string(b._parameters, '$.timeToCrash') AS DOUBLE) AS param_time_to_crash,
    try_cast(json_extract_string(b._parameters, '$.excessiveCurveSpd') AS DOUBLE) AS param_excessive_curve_spd,
    try_cast(json_extract_string(b._parameters, '$.excessiveSpd') AS DOUBLE) AS param_excessive_spd,
    try_cast(json_extract_string(b._parameters, '$.excessiveSpdTime') AS DOUBLE) AS param_excessive_spd_time,
    try_cast(json_extract_string(b._parameters, '$.excessiveCurveSpdTime') AS DOUBLE) AS param_excessive_curve_spd_time,
    try_cast(json_extract_string(b._parameters, '$.excessiveZoneSpd') AS DOUBLE) AS param_excessive_zone_spd,
    try_cast(json_extract_string(b._parameters, '$.excessiveZoneSpdTime') AS DOUBLE) AS param_excessive_zone_spd_time,
    try_cast(json_extract_string(b._parameters, '$.minCurveSpd') AS DOUBLE) AS param_min_curve_spd,
    try_cast(json_extract_string(b._parameters, '$.minZoneSpd') AS DOUBLE) AS param_min_zone_spd,
    try_cast(json_extract_string(b._parameters, '$.stopBarTolerance') AS DOUBLE) AS param_stop_bar_tolerance,
    try_cast(json_extract_string(b._parameters, '$.yellowDurationTolerance') AS DOUBLE) AS param_yellow_duration_tolerance,
    try_cast(json_extract_string(b._parameters, '$.hardBrakingThreshold') AS DOUBLE) AS param_hard_braking_threshold,
    try_cast(json_extract_string(b._parameters, '$.assumedDriverBraking') AS DOUBLE) AS param_assumed_driver_braking,
    try_cast(json_extract_string(b._parameters, '$.postedHeightLimit') AS DOUBLE) AS param_posted_height_limit,
    try_cast(json_extract_string(b._parameters, '$.postedSizeLimit') AS DOUBLE) AS param_posted_size_limit,
    try_cast(json_extract_string(b._parameters, '$.postedZoneSpeed') AS DOUBLE) AS param_posted_zone_speed,
    try_cast(json_extract_string(b._parameters, '$.regulatorySpeed') AS DOUBLE) AS param_regulatory_speed,
    b._parameters AS parameters,
    coalesce(len(b.bsm_list), 0)::INTEGER AS bsm_count,
    coalesce(len(b.map_list), 0)::INTEGER AS map_count,
    coalesce(len(b.spat_list), 0)::INTEGER AS spat_count,
    coalesce(len(b.tim_list), 0)::INTEGER AS tim_count,
    b.bsm_list,
    b.map_list,
    b.spat_list,
    b.tim_list,
    1 AS schema_version,
    b.source_key,
    -- One CASE, first match wins. All top-level columns NULL is how read_json(ignore_errors)
    -- marks a line it could not parse; such rows carry no data and are never kept.
    CASE
        WHEN b._unreadable THEN 'malformed JSON'
        WHEN NOT {validate} THEN NULL
        WHEN b._header IS NULL THEN 'missing required field eventHeader'
        WHEN b.event_type IS NULL THEN 'missing required field eventHeader.eventType'
        WHEN b.event_time_bin IS NULL THEN 'missing required field eventHeader.eventTimeBin'
        WHEN b.event_year IS NULL OR b.event_month NOT BETWEEN 1 AND 12
            THEN 'unparseable eventTimeBin: ' || left(b.event_time_bin, 100)
    END AS invalid_reason,
    -- Readable but odd values are kept and flagged.
    CASE
        WHEN NOT {validate} OR b._unreadable THEN []::VARCHAR[]
        ELSE (
            CASE WHEN b.event_type IS NOT NULL AND b.event_type NOT IN
                ('bsw', 'eebl', 'fcw', 'ima', 'lcw', 'vtrw', 'cspdomp', 'evacinfo',
                 'ovcclearancelimit', 'pedinxwalk', 'rlvw', 'spdcomp', 'spdcompwz')
                THEN ['unknown_event_type'] ELSE [] END
            || CASE WHEN b._header IS NOT NULL AND b.event_status IS DISTINCT FROM 'Obfuscated'
                THEN ['event_status_not_obfuscated'] ELSE [] END
            || CASE WHEN b.event_location_bin IS NOT NULL AND b.borough_bin IS NULL
                AND b.event_location_bin NOT IN ('N/A', 'nonNYC')
                THEN ['location_bin_unparseable'] ELSE [] END
            -- the bin of the record disagrees with the bucket folder it was published in
            || CASE WHEN b.event_year IS NOT NULL AND b._folder.y <> ''
                AND (try_cast(b._folder.y AS INTEGER) <> b.event_year OR try_cast(b._folder.m AS INTEGER) <> b.event_month
                    OR b._folder.wd <> b.event_weekday OR b._folder.tb <> b.event_time_of_day)
                THEN ['time_bin_differs_from_folder'] ELSE [] END
            || CASE WHEN b._header IS NOT NULL AND coalesce(len(b.bsm_list), 0) = 0
                THEN ['no_bsms'] ELSE [] END
            || CASE WHEN list_bool_or(list_transform(b.bsm_list,
                    lambda x: x.speed_mps < 0 OR x.speed_mps > 163.82))
                THEN ['bsm_speed_out_of_range'] ELSE [] END
            || CASE WHEN list_bool_or(list_transform(b.bsm_list,
                    lambda x: x.heading_deg < 0 OR x.heading_deg >= 360))
                THEN ['bsm_heading_out_of_range'] ELSE [] END
        )::VARCHAR[]
    END AS warnings
    {extra_columns}
FROM (
    SELECT
        p.*,
        CASE WHEN p._bin.y <> '' THEN try_cast(p._bin.y AS INTEGER) END AS event_year,
        CASE WHEN p._bin.y <> '' THEN try_cast(p._bin.m AS INTEGER) END AS event_month,
        CASE WHEN p._bin.y <> '' THEN replace(p._bin.wd, 'N/A', 'NA') END AS event_weekday,
        CASE WHEN p._bin.y <> '' THEN replace(p._bin.tb, 'N/A', 'NA') END AS event_time_of_day,
        CASE WHEN p._loc.rsu <> '' THEN p._loc.rsu = 'CV' END AS near_rsu,
        CASE WHEN p._loc.rsu <> '' THEN p._loc.borough END AS borough_bin,
        CASE WHEN p._loc.rsu <> '' THEN p._loc.road END AS road_type_bin
    FROM (
        SELECT
            r.*,  -- eventHeader, bsmList, mapList, spatList, timList, source_key, pass-through
            r."eventHeader" AS _header,
            r."eventHeader" IS NULL AND r._no_bsm_list AND r."mapList" IS NULL
                AND r."spatList" IS NULL AND r."timList" IS NULL AS _unreadable,
            -- a content hash: the same event published twice gets the same id
            md5(to_json(struct_pack(
                h := r."eventHeader", n := len(r._bsms),
                f := r._bsms[1], l := r._bsms[-1]
            ))::VARCHAR) AS event_id,
            r."eventHeader"."eventType" AS event_type,
            r."eventHeader"."eventTimeBin" AS event_time_bin,
            regexp_extract(r."eventHeader"."eventTimeBin",
                '^(\d{4})-(\d{2})-(MON|TUE|WED|THU|FRI|SAT|SUN|N/A|NA)-(NT|AM|MD|PM|EV|N/A|NA)$',
                ['y', 'm', 'wd', 'tb']) AS _bin,
            r."eventHeader"."eventLocationBin" AS event_location_bin,
            -- 'CV-MN-1wayAve': near an RSU (CV) or not (NY), borough, road type
            regexp_extract(r."eventHeader"."eventLocationBin",
                '^(CV|NY)-([A-Za-z]{2})-([A-Za-z0-9]+)$', ['rsu', 'borough', 'road']) AS _loc,
            -- folders are nycdot/EVENT/YYYY/MM/{weekday}/{time of day}/<object>
            regexp_extract(r.source_key,
                '^nycdot/EVENT/(\d{4})/(\d{2})/(MON|TUE|WED|THU|FRI|SAT|SUN|NA)/(NT|AM|MD|PM|EV|NA)/',
                ['y', 'm', 'wd', 'tb']) AS _folder,
            r."eventHeader"."eventStatus" AS event_status,
            r."eventHeader"."hostVehID" AS host_veh_id,
            r."eventHeader"."targetVehID" AS target_veh_id,
            r."eventHeader"."triggerHVSeqNum" AS trigger_hv_seq_num,
            r."eventHeader"."triggerTVSeqNum" AS trigger_tv_seq_num,
            r."eventHeader"."eventAlertSent" AS event_alert_sent,
            r."eventHeader"."eventAlertActive" AS event_alert_active,
            r."eventHeader"."eventAlertHeard" AS event_alert_heard,
            r."eventHeader"."locationSource" AS location_source,
            r."eventHeader"."asdFirmwareVersion" AS asd_firmware_version,
            r."eventHeader"."grpId" AS grp_id,
            r."eventHeader"."weatherCondition" AS weather_condition,
            r."eventHeader"."airTemperature" AS air_temperature_f,
            r."eventHeader"."precipitation1Hr" AS precipitation_1hr,
            r."eventHeader"."windSpeed" AS wind_speed_kt,
            r."eventHeader"."speedCondition" AS speed_condition_mph,
            r."eventHeader"."lastPlowed" AS last_plowed_min,
            r."eventHeader"."parameters" AS _parameters,
            list_transform(r._bsms, lambda x: struct_pack(
                event_msg_seq_num := x."eventMsgSeqNum",
                my_rf_level := x."bsmRecord"."msgHeader"."myRFLevel",
                authenticated := x."bsmRecord"."msgHeader"."authenticated",
                msg_cnt := x."bsmRecord"."bsmMsg"."coreData"."msgCnt",
                vehicle_id := x."bsmRecord"."bsmMsg"."coreData"."id",
                x_m := x."bsmRecord"."bsmMsg"."coreData"."X_m",
                y_m := x."bsmRecord"."bsmMsg"."coreData"."Y_m",
                z_m := x."bsmRecord"."bsmMsg"."coreData"."Z_m",
                t_s := x."bsmRecord"."bsmMsg"."coreData"."T_s",
                speed_mps := x."bsmRecord"."bsmMsg"."coreData"."speed_mps",
                heading_deg := x."bsmRecord"."bsmMsg"."coreData"."heading_deg",
                accel_long_mps2 := x."bsmRecord"."bsmMsg"."coreData"."accelSet"."long_mpss",
                accel_lat_mps2 := x."bsmRecord"."bsmMsg"."coreData"."accelSet"."lat_mpss",
                accel_vert_mps2 := x."bsmRecord"."bsmMsg"."coreData"."accelSet"."vert_mpss",
                accel_yaw_dps := x."bsmRecord"."bsmMsg"."coreData"."accelSet"."yaw_dps",
                accuracy_semi_major := x."bsmRecord"."bsmMsg"."coreData"."accuracy"."semiMajor",
                accuracy_semi_minor := x."bsmRecord"."bsmMsg"."coreData"."accuracy"."semiMinor",
                accuracy_orientation := x."bsmRecord"."bsmMsg"."coreData"."accuracy"."orientation",
                transmission := x."bsmRecord"."bsmMsg"."coreData"."transmission",
                steering_angle := x."bsmRecord"."bsmMsg"."coreData"."angle",
                brakes_wheel_brakes := x."bsmRecord"."bsmMsg"."coreData"."brakes"."wheelBrakes",
                brakes_traction := x."bsmRecord"."bsmMsg"."coreData"."brakes"."traction",
                brakes_abs := x."bsmRecord"."bsmMsg"."coreData"."brakes"."abs",
                brakes_scs := x."bsmRecord"."bsmMsg"."coreData"."brakes"."scs",
                brakes_boost := x."bsmRecord"."bsmMsg"."coreData"."brakes"."brakeBoost",
                brakes_aux := x."bsmRecord"."bsmMsg"."coreData"."brakes"."auxBrakes",
                size_width_cm := x."bsmRecord"."bsmMsg"."coreData"."size"."width",
                size_length_cm := x."bsmRecord"."bsmMsg"."coreData"."size"."length",
                part_ii := x."bsmRecord"."bsmMsg"."partII"::VARCHAR
            )) AS bsm_list,
            -- one element per message; a lone object (not seen so far) counts as one message
            CASE json_type(r."mapList")
                WHEN 'ARRAY' THEN json_extract(r."mapList", '$[*]')::VARCHAR[]
                WHEN 'OBJECT' THEN [r."mapList"::VARCHAR]
            END AS map_list,
            CASE json_type(r."spatList")
                WHEN 'ARRAY' THEN json_extract(r."spatList", '$[*]')::VARCHAR[]
                WHEN 'OBJECT' THEN [r."spatList"::VARCHAR]
            END AS spat_list,
            CASE json_type(r."timList")
                WHEN 'ARRAY' THEN json_extract(r."timList", '$[*]')::VARCHAR[]
                WHEN 'OBJECT' THEN [r."timList"::VARCHAR]
            END AS tim_list
        FROM (
            SELECT
                q.* EXCLUDE ("bsmList"),
                q."bsmList" IS NULL AS _no_bsm_list,
                -- read as JSON (a typed read made a lone BSM object NULL): cast as read_json
                -- would, a field of the wrong type NULL, a lone object a list of one (JSON
                -- read_json writes is minified: an object's text starts with '{')
                CASE
                    WHEN starts_with(q."bsmList"::VARCHAR, '{')
                        THEN try_cast(json_array(q."bsmList") AS {bsm_list_type})
                    ELSE try_cast(q."bsmList" AS {bsm_list_type})
                END AS _bsms
            FROM {relation} AS q
        ) AS r
    ) AS p
) AS b
