-- Canonical rows of THEA TIM records (metadata.schemaVersion 1): one row per TravelerDataFrame.
--
-- Placeholders, filled by cvcatalog.schemas.MessageSchema.canonical_select_sql:
--   {relation}       a FROM item with columns metadata, payload (typed by the schema's
--                    read_columns) and source_key (the S3 key the record came from)
--   {validate}       TRUE or FALSE; FALSE applies only the 'malformed JSON' rule
--   {extra_columns}  empty, or ", <expr> AS <name>, ..." appended to the select list
--
-- Values are strings in raw J2735 units, scaled with the units and sentinels of
-- thea_tim_sandbox_data_dictionary.csv (1e-7 degree, 0.1 m, lane width in cm, minutes).
-- recordGeneratedAt is US Eastern wall time (see thea_bsm.sql); MinuteOfTheYear values are UTC
-- (J2735) and become instants: start_at from startYear + startTime, end_at = start_at +
-- duratonTime (32000 = forever: NULL), message_at from timeStamp in the year of generated_at
-- (or the year before or after, when that puts the minute within half a year of generated_at).
-- A minute its year does not have (0..525599, 0..527039 in a leap year; 527040 is J2735's
-- "invalid": NULL) is kept with its warning (time_stamp_out_of_range, start_time_out_of_range)
-- and gives no message_at / start_at and end_at, never a time rolled into the next year.
--
-- A record holds dataFrames.TravelerDataFrame: one object, or an array when there are several.
-- Valid records give one row per frame (frame_index 0..frame_count - 1, as for WYDOT TIM). The
-- validity of a record is decided before the frames are split, and an invalid or unreadable
-- record is exactly one row (its first frame, frame_index NULL), so a quarantined record is one
-- quarantine entry whatever the transform's fan-out rule.
SELECT
    b.generated_at,
    b.schema_version,
    b.metadata.recordGeneratedBy AS record_generated_by,
    b.metadata.logFileName AS log_file_name,
    b.metadata.RSUID AS rsu_id,
    b.metadata.kind AS kind,
    b.metadata.psid AS psid,
    b.metadata.externalID AS external_id,
    b.metadata.dataType AS data_type,
    try_cast(b.payload.data.TravelerInformation.msgCnt AS INTEGER) AS msg_cnt,
    b.payload.data.TravelerInformation.packetID AS packet_id,
    b.payload.data.TravelerInformation.urlB AS url_b,
    b.time_stamp,
    -- only a minute its year has makes a time; try(): a year past DuckDB's last is NULL, not
    -- an error that fails the whole day
    CASE WHEN b.time_stamp IS NOT NULL AND b._time_stamp_ok AND b.generated_at IS NOT NULL THEN try(
        make_timestamptz(b._time_stamp_year, 1, 1, 0, 0, 0, 'UTC') + to_minutes(b.time_stamp))
    END AS message_at,
    b.payload.data.TravelerInformation.regional AS regional,
    CASE WHEN b._reason IS NULL AND b._frame IS NOT NULL THEN b._fi END::INTEGER AS frame_index,
    coalesce(len(b._frames), 0)::INTEGER AS frame_count,
    CASE json_type(b._f.frameType)
        WHEN 'OBJECT' THEN json_keys(b._f.frameType)[1]
        WHEN 'VARCHAR' THEN b._f.frameType ->> '$' END AS frame_type,
    try_cast(b._f.sspTimRights AS INTEGER) AS ssp_tim_rights,
    try_cast(b._f.sspLocationRights AS INTEGER) AS ssp_location_rights,
    try_cast(b._f.sspMsgRights1 AS INTEGER) AS ssp_msg_rights1,
    try_cast(b._f.sspMsgRights2 AS INTEGER) AS ssp_msg_rights2,
    json_keys(b._frame -> '$.msgId')[1] AS msg_id_type,
    coalesce(b._frame ->> '$.msgId.furtherInfoID', b._frame ->> '$.msgId.furtherInfoId') AS further_info_id,
    b.sign_latitude,
    b.sign_longitude,
    nullif(try_cast(b._f.msgId.roadSignID.position.elevation AS DOUBLE), -4096) / 10 AS sign_elevation_m,
    b._f.msgId.roadSignID.viewAngle AS sign_view_angle,
    CASE json_type(b._f.msgId.roadSignID.mutcdCode)
        WHEN 'OBJECT' THEN json_keys(b._f.msgId.roadSignID.mutcdCode)[1]
        WHEN 'VARCHAR' THEN b._f.msgId.roadSignID.mutcdCode ->> '$' END AS sign_mutcd_code,
    b._f.msgId.roadSignID.crc AS sign_crc,
    b.start_year,
    b.start_time,
    b.start_at,
    b.duration_min,
    CASE WHEN b.duration_min <> 32000 THEN try(b.start_at + to_minutes(b.duration_min)) END AS end_at,
    try_cast(b._f.priority AS INTEGER) AS priority,
    b._f.url AS url,
    len(b._regions)::INTEGER AS region_count,
    b._gp.name AS region_name,
    try_cast(b._gp.id.id AS INTEGER) AS region_id,
    try_cast(b._gp.id.region AS INTEGER) AS region_regulator_id,
    b.anchor_latitude,
    b.anchor_longitude,
    nullif(try_cast(b._gp.anchor.elevation AS DOUBLE), -4096) / 10 AS anchor_elevation_m,
    try_cast(b._gp.laneWidth AS DOUBLE) / 100 AS lane_width_m,  -- cm
    CASE json_type(b._gp.directionality)
        WHEN 'OBJECT' THEN json_keys(b._gp.directionality)[1]
        WHEN 'VARCHAR' THEN b._gp.directionality ->> '$' END AS directionality,
    -- {"false": null}, or a plain boolean; omitted means false (J2735)
    CASE
        WHEN b._gp IS NULL THEN NULL
        WHEN json_type(b._gp.closedPath) = 'OBJECT' THEN json_keys(b._gp.closedPath)[1] = 'true'
        WHEN b._gp.closedPath IS NULL THEN false
        ELSE try_cast(b._gp.closedPath ->> '$' AS BOOLEAN)
    END AS closed_path,
    b._gp.direction AS direction,
    b.path_scale,
    -- Node offsets: node-XY1..6 x/y in cm, scaled by 2^scale (the path's zoom); node-LatLon and
    -- node-LL* lat/lon in 1e-7 degree; dElevation in cm (-512 unknown). Units per J2735.
    CAST(list_transform(b._nodes, lambda n: {
        'kind': json_keys(n -> '$.delta')[1],
        'x_m': try_cast(json_extract_string(n, '$.delta.*.x')[1] AS DOUBLE) / 100 * pow(2, coalesce(b.path_scale, 0)),
        'y_m': try_cast(json_extract_string(n, '$.delta.*.y')[1] AS DOUBLE) / 100 * pow(2, coalesce(b.path_scale, 0)),
        'latitude': try_cast(json_extract_string(n, '$.delta.*.lat')[1] AS DOUBLE) / 10000000,
        'longitude': try_cast(json_extract_string(n, '$.delta.*.lon')[1] AS DOUBLE) / 10000000,
        'd_elevation_m': nullif(try_cast(n ->> '$.attributes.dElevation' AS DOUBLE), -512) / 100
    }) AS STRUCT(kind VARCHAR, x_m DOUBLE, y_m DOUBLE, latitude DOUBLE, longitude DOUBLE,
                 d_elevation_m DOUBLE)[]) AS path_nodes_m,
    b.content_type,
    CAST(list_filter(list_transform(b._items, lambda i: try_cast(i ->> '$.itis' AS INTEGER)),
        lambda c: c IS NOT NULL) AS INTEGER[]) AS itis_codes,
    CAST(list_filter(list_transform(b._items, lambda i: i ->> '$.text'),
        lambda t: t IS NOT NULL) AS VARCHAR[]) AS content_texts,
    b._frame AS data_frame,
    b.source_key,
    b._reason AS invalid_reason,
    CASE
        WHEN NOT {validate} OR (b._no_metadata AND b._no_payload) THEN []::VARCHAR[]
        ELSE (
            CASE WHEN b.sign_latitude NOT BETWEEN -90 AND 90 THEN ['sign_latitude_out_of_range'] ELSE [] END
            || CASE WHEN b.sign_longitude NOT BETWEEN -180 AND 180 THEN ['sign_longitude_out_of_range'] ELSE [] END
            || CASE WHEN b.anchor_latitude NOT BETWEEN -90 AND 90 THEN ['anchor_latitude_out_of_range'] ELSE [] END
            || CASE WHEN b.anchor_longitude NOT BETWEEN -180 AND 180 THEN ['anchor_longitude_out_of_range'] ELSE [] END
            || CASE WHEN NOT b._start_time_ok THEN ['start_time_out_of_range'] ELSE [] END
            || CASE WHEN NOT b._time_stamp_ok THEN ['time_stamp_out_of_range'] ELSE [] END
        )::VARCHAR[]
    END AS warnings
    {extra_columns}
FROM (
    SELECT
        u.*,
        from_json(u._frame,
            '{"sspTimRights": "VARCHAR", "frameType": "JSON",
              "msgId": {"roadSignID": {"position": {"lat": "VARCHAR", "long": "VARCHAR", "elevation": "VARCHAR"},
                                       "viewAngle": "VARCHAR", "mutcdCode": "JSON", "crc": "VARCHAR"}},
              "startYear": "VARCHAR", "startTime": "VARCHAR", "duratonTime": "VARCHAR",
              "durationTime": "VARCHAR", "priority": "VARCHAR", "sspLocationRights": "VARCHAR",
              "sspMsgRights1": "VARCHAR", "sspMsgRights2": "VARCHAR", "url": "VARCHAR"}') AS _f,
        nullif(try_cast(u._frame ->> '$.msgId.roadSignID.position.lat' AS DOUBLE), 900000001) / 10000000 AS sign_latitude,
        nullif(try_cast(u._frame ->> '$.msgId.roadSignID.position.long' AS DOUBLE), 1800000001) / 10000000 AS sign_longitude,
        nullif(try_cast(u._frame ->> '$.startYear' AS INTEGER), 0) AS start_year,  -- 0: unknown
        try_cast(u._frame ->> '$.startTime' AS INTEGER) AS start_time,
        -- a minute startYear has (NULL: no minute; no year: J2735's range)
        coalesce(start_time BETWEEN 0 AND CASE
            WHEN start_year IS NULL THEN 527039
            WHEN start_year % 4 = 0 AND (start_year % 100 <> 0 OR start_year % 400 = 0) THEN 527039
            ELSE 525599 END, TRUE) AS _start_time_ok,
        -- years as WYDOT bounds them: 2147483647 made make_timestamptz fail the whole day
        CASE WHEN start_year BETWEEN 1 AND 9999 AND start_time IS NOT NULL AND _start_time_ok
            THEN make_timestamptz(start_year, 1, 1, 0, 0, 0, 'UTC') + to_minutes(start_time) END AS start_at,
        -- the year timeStamp is a minute of (generated_at's UTC year, or the one before or after
        -- when the minute is more than half a year from generated_at) and whether it has it
        u._year + CASE
            WHEN u.time_stamp::BIGINT * 60 - u._secs_into_year > 183 * 86400 THEN -1
            WHEN u.time_stamp::BIGINT * 60 - u._secs_into_year < -183 * 86400 THEN 1
            ELSE 0 END AS _time_stamp_year,
        coalesce(u.time_stamp BETWEEN 0 AND CASE
            WHEN _time_stamp_year IS NULL THEN 527039  -- no generated_at: J2735's range
            WHEN _time_stamp_year % 4 = 0 AND (_time_stamp_year % 100 <> 0 OR _time_stamp_year % 400 = 0) THEN 527039
            ELSE 525599 END, TRUE) AS _time_stamp_ok,
        try_cast(coalesce(u._frame ->> '$.duratonTime', u._frame ->> '$.durationTime') AS INTEGER) AS duration_min,
        -- regions: {"GeographicalPath": path or [paths]} (or an array of such); typed columns
        -- come from the first path, all of them stay in frame
        CASE json_type(u._frame -> '$.regions')
            WHEN 'OBJECT' THEN (
                CASE json_type(u._frame -> '$.regions.GeographicalPath')
                    WHEN 'ARRAY' THEN json_extract(u._frame, '$.regions.GeographicalPath[*]')
                    WHEN 'OBJECT' THEN [u._frame -> '$.regions.GeographicalPath'] END)
            WHEN 'ARRAY' THEN flatten(list_transform(json_extract(u._frame, '$.regions[*]'),
                lambda g: CASE json_type(g -> '$.GeographicalPath')
                    WHEN 'ARRAY' THEN json_extract(g, '$.GeographicalPath[*]')
                    WHEN 'OBJECT' THEN [g -> '$.GeographicalPath']
                    ELSE [g] END))
        END AS _regions,
        from_json(_regions[1],
            '{"name": "VARCHAR", "id": {"id": "VARCHAR", "region": "VARCHAR"},
              "anchor": {"lat": "VARCHAR", "long": "VARCHAR", "elevation": "VARCHAR"},
              "laneWidth": "VARCHAR", "directionality": "JSON", "closedPath": "JSON",
              "direction": "VARCHAR"}') AS _gp,
        nullif(try_cast(_regions[1] ->> '$.anchor.lat' AS DOUBLE), 900000001) / 10000000 AS anchor_latitude,
        nullif(try_cast(_regions[1] ->> '$.anchor.long' AS DOUBLE), 1800000001) / 10000000 AS anchor_longitude,
        try_cast(_regions[1] ->> '$.description.path.scale' AS INTEGER) AS path_scale,
        coalesce(
            CASE json_type(_regions[1] -> '$.description.path.offset.xy.nodes.NodeXY')
                WHEN 'ARRAY' THEN json_extract(_regions[1], '$.description.path.offset.xy.nodes.NodeXY[*]')
                WHEN 'OBJECT' THEN [_regions[1] -> '$.description.path.offset.xy.nodes.NodeXY'] END,
            CASE json_type(_regions[1] -> '$.description.path.offset.ll.nodes.NodeLL')
                WHEN 'ARRAY' THEN json_extract(_regions[1], '$.description.path.offset.ll.nodes.NodeLL[*]')
                WHEN 'OBJECT' THEN [_regions[1] -> '$.description.path.offset.ll.nodes.NodeLL'] END
        ) AS _nodes,
        -- content: {"advisory" | "workZone" | "genericSign" | "speedLimit" | "exitService":
        --           {"SEQUENCE": {"item": {"itis": ...} | {"text": ...}} or [such]}}
        json_keys(u._frame -> '$.content')[1] AS content_type,
        json_extract(u._frame, '$.content.*.SEQUENCE')[1] AS _sequence,
        flatten(list_transform(
            CASE json_type(_sequence)
                WHEN 'ARRAY' THEN json_extract(_sequence, '$[*]')
                WHEN 'OBJECT' THEN [_sequence] END,
            lambda s: CASE json_type(s -> '$.item')
                WHEN 'ARRAY' THEN json_extract(s, '$.item[*]')
                WHEN 'OBJECT' THEN [s -> '$.item']
                ELSE [s] END)) AS _items
    FROM (
        SELECT
            v.*,
            unnest(v._frames_used) AS _frame,
            unnest(range(0, len(v._frames_used))) AS _fi
        FROM (
            SELECT
                w.*,
                -- One CASE, first match wins. All top-level columns NULL is how
                -- read_json(ignore_errors) marks a line it could not parse.
                CASE
                    WHEN w._no_metadata AND w._no_payload THEN 'malformed JSON'
                    WHEN NOT {validate} THEN NULL
                    WHEN w._no_metadata THEN 'missing required field metadata'
                    WHEN w._no_payload THEN 'missing required field payload'
                    WHEN w._generated_text IS NULL THEN 'missing required field metadata.recordGeneratedAt'
                    WHEN w.generated_at IS NULL THEN 'unparseable timestamp: ' || left(w._generated_text, 100)
                    WHEN w.payload.data.TravelerInformation.packetID IS NULL
                        THEN 'missing required field payload.data.TravelerInformation.packetID'
                    WHEN coalesce(len(w._frames), 0) = 0
                        THEN 'missing required field payload.data.TravelerInformation.dataFrames'
                END AS _reason,
                CASE WHEN _reason IS NOT NULL OR coalesce(len(w._frames), 0) = 0
                    THEN [w._frames[1]] ELSE w._frames END AS _frames_used
            FROM (
                SELECT
                    r.*,  -- metadata, payload, source_key and any pass-through columns
                    r.metadata IS NULL AS _no_metadata,
                    r.payload IS NULL AS _no_payload,
                    r.metadata.recordGeneratedAt AS _generated_text,
                    -- an explicit offset is honoured; otherwise the text is Eastern wall time
                    CASE
                        WHEN regexp_matches(_generated_text, '\d:\d\d(:\d\d(\.\d+)?)?\s*(Z|[+-]\d\d(:?\d\d)?)$')
                        THEN try_cast(_generated_text AS TIMESTAMPTZ)
                        ELSE timezone('America/New_York',
                            try_cast(regexp_replace(_generated_text, '\s*\[ET\]\s*$', '') AS TIMESTAMP))
                    END AS generated_at,
                    year(timezone('UTC', generated_at)) AS _year,
                    epoch(generated_at) - epoch(make_timestamptz(_year, 1, 1, 0, 0, 0, 'UTC')) AS _secs_into_year,
                    try_cast(r.metadata.schemaVersion AS INTEGER) AS schema_version,
                    nullif(try_cast(r.payload.data.TravelerInformation.timeStamp AS INTEGER), 527040) AS time_stamp,
                    -- dataFrames: {"TravelerDataFrame": frame or [frames]} (or an array of such)
                    CASE json_type(r.payload.data.TravelerInformation.dataFrames)
                        WHEN 'OBJECT' THEN (
                            CASE json_type(r.payload.data.TravelerInformation.dataFrames -> '$.TravelerDataFrame')
                                WHEN 'ARRAY' THEN json_extract(r.payload.data.TravelerInformation.dataFrames, '$.TravelerDataFrame[*]')
                                WHEN 'OBJECT' THEN [r.payload.data.TravelerInformation.dataFrames -> '$.TravelerDataFrame'] END)
                        WHEN 'ARRAY' THEN flatten(list_transform(
                            json_extract(r.payload.data.TravelerInformation.dataFrames, '$[*]'),
                            lambda d: CASE json_type(d -> '$.TravelerDataFrame')
                                WHEN 'ARRAY' THEN json_extract(d, '$.TravelerDataFrame[*]')
                                WHEN 'OBJECT' THEN [d -> '$.TravelerDataFrame']
                                ELSE [d] END))
                    END AS _frames
                FROM {relation} AS r
            ) AS w
        ) AS v
    ) AS u
) AS b
