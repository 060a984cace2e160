-- Canonical rows of WYDOT TIM records (ODE output, metadata.schemaVersion 1-8): one row per
-- TravelerDataFrame, and one row for a TIM without any frame.
--
-- Placeholders, filled by cvcatalog.schemas.MessageSchema.canonical_select_sql:
--   {relation}       a FROM item with columns metadata, payload (both JSON, the schema's
--                    read_columns) and source_key (the S3 key the record came from)
--   {validate}       TRUE or FALSE; FALSE applies only the 'malformed JSON' rule
--   {extra_columns}  empty, or ", <expr> AS <name>, ..." appended to the select list; they may
--                    use b.metadata and b.payload (the raw record, the same on each frame row)
--   {known_versions} the schema's known metadata.schemaVersion values as a list literal; a row of
--                    any other version is parsed the same way and gets the warning
--                    unknown_schema_version_<n> (counted per version by `report validation`)
--
-- The session TimeZone must be UTC while this runs (a timestamp without an offset is UTC).
-- Column order and types must match the schema's canonical_columns; a change here needs a
-- canonical_version bump.
--
-- Shapes, all seen in real data, and how each is read (json functions only, no fixed STRUCT):
--   TravelerInformation  payload.data.MessageFrame.value (RSU broadcasts, v3-v7) or inside
--                        payload.data.AdvisorySituationData...unsecuredData.MessageFrame.value
--                        (SDX deposits, v6): found with '$..TravelerInformation' wherever it is;
--                        or payload.data itself, without a MessageFrame (TMC broadcasts of 2020
--                        on, dataType ...travelerinformation.TravelerInformation, and every v8 TIM)
--   dataFrames           [{"TravelerDataFrame": {..}}, ..] | {"TravelerDataFrame": {..} | [..]}
--                        | {"dataFrames": {"TravelerDataFrame": ..}} | [{..frame..}, ..]
--   regions              {"GeographicalPath": {..} | [..]} | [{"GeographicalPath": ..}, ..] | [..]
--   SEQUENCE, NodeXY,    an array, or the single element itself when there is only one
--   rsus, ...
--   enums                {"advisory": ""}, {"false": ""} (the key is the value), or a plain value
--   HeadingSlice         a bit string "0001..", the same bits as a JSON number (leading zeros lost:
--                        padded back to 16), or (v8) an object of 16 booleans
--                        {"from000-0to022-5degrees": true, ..}: all become the 16-character string,
--                        first character = from000-0to022-5degrees
--   SSP indexes          sspTimRights, sspLocationRights, sspMsgRights1, sspMsgRights2 (J2735 2016);
--                        renamed notUsed, notUsed1, notUsed2, notUsed3 (2020, v7) and doNotUse1-4
--                        (2024, v8) at the same places: read from whichever is present
--   description.path     an OffsetSystem, or (v7) a one-element array of it
-- Invalid records are judged on the record, so every row of one record carries the same
-- invalid_reason; the conversion quarantines only the row with frame_index 0 or NULL, i.e. one
-- entry per record (see cvcatalog.transform.FANOUT_COLUMN).
SELECT
    b.generated_at,
    b.received_at,
    b.schema_version,
    b.msg_cnt,
    b.packet_id,
    b.time_stamp,
    b.url_b,
    b.message_id,
    b.frame_index,
    b.frame_count,
    b.frame_type,
    b.start_year,
    b.start_time,
    b.start_at,
    b.duration_min,
    b.priority,
    b.content_type,
    b.itis_codes,
    b.content_texts,
    b.content_items,
    b.msg_id_type,
    b.further_info_id,
    b.sign_latitude,
    b.sign_longitude,
    b.sign_elevation_m,
    b.sign_view_angle,
    b.sign_mutcd_code,
    b.sign_crc,
    b.ssp_tim_rights,
    b.ssp_location_rights,
    b.ssp_msg_rights1,
    b.ssp_msg_rights2,
    b.url,
    b.region_count,
    b.region_name,
    b.region_id,
    b.region_regulator_id,
    b.anchor_latitude,
    b.anchor_longitude,
    b.anchor_elevation_m,
    b.lane_width_cm,
    b.directionality,
    b.closed_path,
    b.direction,
    b.description_type,
    b.path_scale,
    b.path_nodes,
    b.regions,
    b.data_frame,
    b.record_generated_by,
    b.record_type,
    b.log_file_name,
    b.payload_type,
    b.sanitized,
    b.security_result_code,
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
    b.tim_container,
    b.request,
    b.rsus,
    b.advisory_situation,
    b.ode_packet_id,
    b.ode_tim_start_at,
    b.max_duration_min,
    b.sdw_record_id,
    b.sdw_ttl,
    b.sdw_nw_latitude,
    b.sdw_nw_longitude,
    b.sdw_se_latitude,
    b.sdw_se_longitude,
    b.record_hash,
    b.source_key,
    -- One CASE, first match wins. Both top-level columns NULL is how read_json(ignore_errors)
    -- marks a line it could not parse; such rows carry no data and are never kept.
    CASE
        WHEN b._no_metadata AND b._no_payload THEN 'malformed JSON'
        WHEN NOT {validate} THEN NULL
        WHEN b._no_metadata OR json_type(b.metadata) <> 'OBJECT' THEN 'missing required field metadata'
        WHEN b._no_payload OR json_type(b.payload) <> 'OBJECT' THEN 'missing required field payload'
        WHEN b._generated_text IS NULL THEN 'missing required field metadata.recordGeneratedAt'
        WHEN b.generated_at IS NULL THEN 'unparseable timestamp: ' || left(b._generated_text, 100)
        WHEN b._tim IS NULL THEN 'missing required field payload TravelerInformation'
    END AS invalid_reason,
    -- Out-of-range values and odd shapes are kept and flagged; limits are the J2735 ranges.
    CASE
        WHEN NOT {validate} OR (b._no_metadata AND b._no_payload) THEN []::VARCHAR[]
        ELSE (
            CASE WHEN b._tim IS NOT NULL AND b.frame_count = 0 THEN ['no_data_frames'] ELSE [] END
            || CASE WHEN b._frames_dropped > 0 THEN ['data_frames_unreadable'] ELSE [] END
            || CASE WHEN b.msg_cnt NOT BETWEEN 0 AND 127 THEN ['msg_cnt_out_of_range'] ELSE [] END
            || CASE WHEN b.anchor_latitude NOT BETWEEN -90 AND 90
                      OR b.anchor_longitude NOT BETWEEN -180 AND 180
                    THEN ['anchor_out_of_range'] ELSE [] END
            || CASE WHEN b.sign_latitude NOT BETWEEN -90 AND 90
                      OR b.sign_longitude NOT BETWEEN -180 AND 180
                    THEN ['sign_position_out_of_range'] ELSE [] END
            || CASE WHEN NOT b._start_time_ok THEN ['start_time_out_of_range'] ELSE [] END
            || CASE WHEN b.duration_min NOT BETWEEN 0 AND 32000 THEN ['duration_out_of_range'] ELSE [] END
            || CASE WHEN b.priority NOT BETWEEN 0 AND 7 THEN ['priority_out_of_range'] ELSE [] END
            || CASE WHEN b._received_text IS NOT NULL AND b.received_at IS NULL THEN ['received_at_unparseable'] ELSE [] END
            || CASE WHEN NOT list_contains({known_versions}, b.schema_version)
                    THEN ['unknown_schema_version_' || b.schema_version] ELSE [] END
        )::VARCHAR[]
    END AS warnings
    {extra_columns}
FROM (
    -- 4: the first region of the frame, flattened
    SELECT
        g.*,
        json_extract_string(g._region, '$.name') AS region_name,
        try_cast(json_extract_string(g._region, '$.id.id') AS INTEGER) AS region_id,
        try_cast(json_extract_string(g._region, '$.id.region') AS INTEGER) AS region_regulator_id,
        nullif(try_cast(json_extract_string(g._anchor, '$.lat') AS DOUBLE), 900000001) / 1e7 AS anchor_latitude,
        nullif(try_cast(json_extract_string(g._anchor, '$.long') AS DOUBLE), 1800000001) / 1e7 AS anchor_longitude,
        nullif(try_cast(json_extract_string(g._anchor, '$.elevation') AS DOUBLE), -4096) / 10 AS anchor_elevation_m,
        try_cast(json_extract_string(g._region, '$.laneWidth') AS INTEGER) AS lane_width_cm,
        CASE json_type(json_extract(g._region, '$.directionality'))
            WHEN 'OBJECT' THEN json_keys(json_extract(g._region, '$.directionality'))[1]
            WHEN 'NULL' THEN NULL
            ELSE json_extract_string(g._region, '$.directionality')
        END AS directionality,
        CASE json_type(json_extract(g._region, '$.closedPath'))
            WHEN 'OBJECT' THEN try_cast(json_keys(json_extract(g._region, '$.closedPath'))[1] AS BOOLEAN)
            WHEN 'NULL' THEN NULL
            ELSE try_cast(json_extract_string(g._region, '$.closedPath') AS BOOLEAN)
        END AS closed_path,
        CASE json_type(g._direction)
            WHEN 'OBJECT' THEN array_to_string(list_transform(
                ['from000-0to022-5degrees', 'from022-5to045-0degrees', 'from045-0to067-5degrees', 'from067-5to090-0degrees',
                 'from090-0to112-5degrees', 'from112-5to135-0degrees', 'from135-0to157-5degrees', 'from157-5to180-0degrees',
                 'from180-0to202-5degrees', 'from202-5to225-0degrees', 'from225-0to247-5degrees', 'from247-5to270-0degrees',
                 'from270-0to292-5degrees', 'from292-5to315-0degrees', 'from315-0to337-5degrees', 'from337-5to360-0degrees'],
                lambda k: CASE WHEN json_extract_string(g._direction, '$."' || k || '"') = 'true' THEN '1' ELSE '0' END
            ), '')
            WHEN 'UBIGINT' THEN lpad(json_extract_string(g._direction, '$'), 16, '0')
            WHEN 'BIGINT' THEN lpad(json_extract_string(g._direction, '$'), 16, '0')
            ELSE json_extract_string(g._direction, '$')
        END AS direction,
        CASE WHEN json_type(json_extract(g._region, '$.description')) = 'OBJECT'
            THEN json_keys(json_extract(g._region, '$.description'))[1]
        END AS description_type,
        try_cast(coalesce(
            json_extract_string(g._region, '$.description.path.scale'),
            json_extract_string(g._region, '$.description.path[0].scale')
        ) AS INTEGER) AS path_scale,
        CASE
            WHEN json_type(g._nodes) = 'ARRAY' THEN g._nodes
            WHEN json_type(g._nodes) = 'OBJECT' THEN to_json([g._nodes])
        END AS path_nodes
    FROM (
        SELECT
            f.*,
            -- the region's HeadingSlice; an oldRegion or geometry description may carry its own
            coalesce(
                json_extract(f._region, '$.direction'),
                json_extract(f._region, '$.description.oldRegion.direction'),
                json_extract(f._region, '$.description.geometry.direction'),
                json_extract(f._region, '$.description.geometry[0].direction')
            ) AS _direction,
            -- an anchor belongs to a GeographicalPath; oldRegion point sets (v3) carry their own
            coalesce(
                json_extract(f._region, '$.anchor'),
                json_extract(f._region, '$.description.oldRegion.area.regionPointSet.anchor'),
                json_extract(f._region, '$.description.oldRegion.area.shapePointSet.anchor')
            ) AS _anchor,
            -- {"NodeXY": [..] | {..}} (path xy), {"NodeLL": ..} (path ll), {"RegionOffsets": ..}
            -- (oldRegion regionPointSet), or a bare list: unwrap the one-key holder
            CASE
                WHEN json_type(f._nodes_holder) = 'OBJECT'
                    AND len(json_keys(f._nodes_holder)) = 1
                    AND json_keys(f._nodes_holder)[1] IN ('NodeXY', 'NodeLL', 'RegionOffsets', 'NodeSetXY', 'NodeSetLL')
                THEN json_extract(f._nodes_holder, '$.*')[1]
                ELSE f._nodes_holder
            END AS _nodes
        FROM (
            -- 3: the TravelerDataFrame's own fields
            SELECT
                u.*,
                u._slot.i AS frame_index,
                u._slot.f AS data_frame,
                CASE json_type(json_extract(u._slot.f, '$.frameType'))
                    WHEN 'OBJECT' THEN json_keys(json_extract(u._slot.f, '$.frameType'))[1]
                    WHEN 'NULL' THEN NULL
                    ELSE json_extract_string(u._slot.f, '$.frameType')
                END AS frame_type,
                nullif(try_cast(json_extract_string(u._slot.f, '$.startYear') AS INTEGER), 0) AS start_year,  -- 0: unknown
                try_cast(json_extract_string(u._slot.f, '$.startTime') AS INTEGER) AS start_time,
                -- a minute startYear has (0..525599, 0..527039 in a leap year; 527040 is J2735's
                -- unknown minute; no year: J2735's range): a later one rolled into the next year
                coalesce(start_time = 527040 OR start_time BETWEEN 0 AND CASE
                    WHEN start_year BETWEEN 1 AND 9999 AND NOT (start_year % 4 = 0
                        AND (start_year % 100 <> 0 OR start_year % 400 = 0)) THEN 525599
                    ELSE 527039 END, TRUE) AS _start_time_ok,
                CASE
                    WHEN start_year BETWEEN 1 AND 9999 AND start_time BETWEEN 0 AND 527039
                        AND _start_time_ok
                    THEN make_timestamptz(start_year, 1, 1, 0, 0, 0.0, 'UTC') + to_minutes(start_time)
                END AS start_at,
                try_cast(coalesce(
                    json_extract_string(u._slot.f, '$.duratonTime'),
                    json_extract_string(u._slot.f, '$.durationTime')
                ) AS INTEGER) AS duration_min,
                try_cast(json_extract_string(u._slot.f, '$.priority') AS INTEGER) AS priority,
                CASE WHEN json_type(json_extract(u._slot.f, '$.content')) = 'OBJECT'
                    THEN json_keys(json_extract(u._slot.f, '$.content'))[1]
                END AS content_type,
                -- content.<type> is {"SEQUENCE": [..] | {..}}, or the list itself; each element is
                -- {"item": {"itis": n} | {"text": ".."}}
                list_transform(
                    CASE json_type(u._content_seq)
                        WHEN 'ARRAY' THEN json_extract(u._content_seq, '$[*]')
                        WHEN 'OBJECT' THEN [u._content_seq]
                        ELSE []::JSON[]
                    END,
                    lambda e: CASE WHEN json_exists(e, '$.item') THEN json_extract(e, '$.item') ELSE e END
                ) AS _items,
                CASE WHEN u._content_seq IS NOT NULL THEN list_filter(
                    list_transform(_items, lambda x: try_cast(json_extract_string(x, '$.itis') AS INTEGER)),
                    lambda c: c IS NOT NULL
                ) END AS itis_codes,
                CASE WHEN u._content_seq IS NOT NULL THEN list_filter(
                    list_transform(_items, lambda x: json_extract_string(x, '$.text')),
                    lambda t: t IS NOT NULL
                ) END AS content_texts,
                CASE WHEN u._content_seq IS NOT NULL THEN to_json(_items) END AS content_items,
                CASE WHEN json_type(json_extract(u._slot.f, '$.msgId')) = 'OBJECT'
                    THEN json_keys(json_extract(u._slot.f, '$.msgId'))[1]
                END AS msg_id_type,
                json_extract_string(u._slot.f, '$.msgId.furtherInfoID') AS further_info_id,
                nullif(try_cast(json_extract_string(u._slot.f, '$.msgId.roadSignID.position.lat') AS DOUBLE), 900000001) / 1e7 AS sign_latitude,
                nullif(try_cast(json_extract_string(u._slot.f, '$.msgId.roadSignID.position.long') AS DOUBLE), 1800000001) / 1e7 AS sign_longitude,
                nullif(try_cast(json_extract_string(u._slot.f, '$.msgId.roadSignID.position.elevation') AS DOUBLE), -4096) / 10 AS sign_elevation_m,
                CASE json_type(json_extract(u._slot.f, '$.msgId.roadSignID.viewAngle'))
                    WHEN 'OBJECT' THEN array_to_string(list_transform(
                        ['from000-0to022-5degrees', 'from022-5to045-0degrees', 'from045-0to067-5degrees', 'from067-5to090-0degrees',
                         'from090-0to112-5degrees', 'from112-5to135-0degrees', 'from135-0to157-5degrees', 'from157-5to180-0degrees',
                         'from180-0to202-5degrees', 'from202-5to225-0degrees', 'from225-0to247-5degrees', 'from247-5to270-0degrees',
                         'from270-0to292-5degrees', 'from292-5to315-0degrees', 'from315-0to337-5degrees', 'from337-5to360-0degrees'],
                        lambda k: CASE WHEN json_extract_string(json_extract(u._slot.f, '$.msgId.roadSignID.viewAngle'), '$."' || k || '"') = 'true' THEN '1' ELSE '0' END
                    ), '')
                    WHEN 'UBIGINT' THEN lpad(json_extract_string(json_extract(u._slot.f, '$.msgId.roadSignID.viewAngle'), '$'), 16, '0')
                    WHEN 'BIGINT' THEN lpad(json_extract_string(json_extract(u._slot.f, '$.msgId.roadSignID.viewAngle'), '$'), 16, '0')
                    ELSE json_extract_string(json_extract(u._slot.f, '$.msgId.roadSignID.viewAngle'), '$')
                END AS sign_view_angle,
                CASE json_type(json_extract(u._slot.f, '$.msgId.roadSignID.mutcdCode'))
                    WHEN 'OBJECT' THEN json_keys(json_extract(u._slot.f, '$.msgId.roadSignID.mutcdCode'))[1]
                    WHEN 'NULL' THEN NULL
                    ELSE json_extract_string(u._slot.f, '$.msgId.roadSignID.mutcdCode')
                END AS sign_mutcd_code,
                json_extract_string(u._slot.f, '$.msgId.roadSignID.crc') AS sign_crc,
                try_cast(coalesce(
                    json_extract_string(u._slot.f, '$.sspTimRights'),
                    json_extract_string(u._slot.f, '$.notUsed'),
                    json_extract_string(u._slot.f, '$.doNotUse1')
                ) AS INTEGER) AS ssp_tim_rights,
                try_cast(coalesce(
                    json_extract_string(u._slot.f, '$.sspLocationRights'),
                    json_extract_string(u._slot.f, '$.notUsed1'),
                    json_extract_string(u._slot.f, '$.doNotUse2')
                ) AS INTEGER) AS ssp_location_rights,
                try_cast(coalesce(
                    json_extract_string(u._slot.f, '$.sspMsgRights1'),
                    json_extract_string(u._slot.f, '$.notUsed2'),
                    json_extract_string(u._slot.f, '$.doNotUse3')
                ) AS INTEGER) AS ssp_msg_rights1,
                try_cast(coalesce(
                    json_extract_string(u._slot.f, '$.sspMsgRights2'),
                    json_extract_string(u._slot.f, '$.notUsed3'),
                    json_extract_string(u._slot.f, '$.doNotUse4')
                ) AS INTEGER) AS ssp_msg_rights2,
                json_extract_string(u._slot.f, '$.url') AS url,
                len(u._region_list)::INTEGER AS region_count,
                u._region_list[1] AS _region,
                CASE WHEN u._regions_raw IS NOT NULL THEN to_json(u._region_list) END AS regions,
                coalesce(
                    json_extract(u._region_list[1], '$.description.path.offset.xy.nodes'),
                    json_extract(u._region_list[1], '$.description.path.offset.ll.nodes'),
                    json_extract(u._region_list[1], '$.description.path[0].offset.xy.nodes'),
                    json_extract(u._region_list[1], '$.description.path[0].offset.ll.nodes'),
                    json_extract(u._region_list[1], '$.description.oldRegion.area.regionPointSet.nodeList'),
                    json_extract(u._region_list[1], '$.description.oldRegion.area.shapePointSet.nodeList')
                ) AS _nodes_holder
            FROM (
                SELECT
                    s.*,
                    -- content: {"<type>": {"SEQUENCE": ..}}; the type is the only key
                    CASE
                        WHEN json_type(json_extract(s._slot.f, '$.content')) <> 'OBJECT' THEN NULL
                        WHEN json_exists(json_extract(s._slot.f, '$.content.*')[1], '$.SEQUENCE')
                            THEN json_extract(json_extract(s._slot.f, '$.content.*')[1], '$.SEQUENCE')
                        ELSE json_extract(s._slot.f, '$.content.*')[1]
                    END AS _content_seq,
                    json_extract(s._slot.f, '$.regions') AS _regions_raw,
                    list_filter(
                        flatten(list_transform(
                            CASE json_type(json_extract(s._slot.f, '$.regions'))
                                WHEN 'ARRAY' THEN json_extract(s._slot.f, '$.regions[*]')
                                WHEN 'OBJECT' THEN [json_extract(s._slot.f, '$.regions')]
                                ELSE []::JSON[]
                            END,
                            lambda e: CASE
                                WHEN json_type(json_extract(e, '$.GeographicalPath')) = 'ARRAY'
                                    THEN json_extract(e, '$.GeographicalPath[*]')
                                WHEN json_exists(e, '$.GeographicalPath')
                                    THEN [json_extract(e, '$.GeographicalPath')]
                                ELSE [e]
                            END
                        )),
                        lambda x: json_type(x) = 'OBJECT'
                    ) AS _region_list
                FROM (
                    -- 2: one row per frame; a TIM without frames keeps one row (frame NULL)
                    SELECT
                        t.*,
                        unnest(
                            CASE WHEN len(t._frames) = 0
                                THEN [{'i': NULL::INTEGER, 'f': NULL::JSON}]
                                ELSE list_transform(t._frames, lambda x, i: {'i': (i - 1)::INTEGER, 'f': x})
                            END
                        ) AS _slot
                    FROM (
                        SELECT
                            c.*,
                            len(c._frames)::INTEGER AS frame_count,
                            len(c._frame_candidates) - len(c._frames)
                                + CASE WHEN json_type(c._data_frames) NOT IN ('ARRAY', 'OBJECT', 'NULL') THEN 1 ELSE 0 END
                                AS _frames_dropped
                        FROM (
                            SELECT
                                d.*,
                                list_filter(d._frame_candidates, lambda x: json_type(x) = 'OBJECT') AS _frames
                            FROM (
                                SELECT
                                    e.*,
                                    flatten(list_transform(
                                        CASE json_type(e._data_frames)
                                            WHEN 'ARRAY' THEN json_extract(e._data_frames, '$[*]')
                                            WHEN 'OBJECT' THEN [e._data_frames]
                                            ELSE []::JSON[]
                                        END,
                                        lambda x: CASE
                                            WHEN json_type(json_extract(x, '$.TravelerDataFrame')) = 'ARRAY'
                                                THEN json_extract(x, '$.TravelerDataFrame[*]')
                                            WHEN json_type(json_extract(x, '$.TravelerDataFrame')) = 'NULL'
                                                THEN []::JSON[]
                                            WHEN json_exists(x, '$.TravelerDataFrame')
                                                THEN [json_extract(x, '$.TravelerDataFrame')]
                                            ELSE [x]
                                        END
                                    )) AS _frame_candidates
                                FROM (
                                    SELECT
                                        h.*,
                                        -- {"dataFrames": {"TravelerDataFrame": ..}} nests one more level
                                        CASE
                                            WHEN json_type(h._data_frames_outer) = 'OBJECT'
                                                AND json_exists(h._data_frames_outer, '$.dataFrames')
                                            THEN json_extract(h._data_frames_outer, '$.dataFrames')
                                            ELSE h._data_frames_outer
                                        END AS _data_frames
                                    FROM (
                                        -- 1: the record: metadata and the TravelerInformation envelope
                                        SELECT
                                            r.*,  -- metadata, payload, source_key and any pass-through columns
                                            r.metadata IS NULL AS _no_metadata,
                                            r.payload IS NULL AS _no_payload,
                                            -- an empty string (v8 records received over UDP) is no time
                                            coalesce(
                                                nullif(json_extract_string(r.metadata, '$.recordGeneratedAt'), ''),
                                                nullif(json_extract_string(r.metadata, '$.generatedAt'), '')
                                            ) AS _generated_text,
                                            coalesce(
                                                nullif(json_extract_string(r.metadata, '$.odeReceivedAt'), ''),
                                                nullif(json_extract_string(r.metadata, '$.receivedAt'), '')
                                            ) AS _received_text,
                                            nullif(json_extract_string(r.metadata, '$.odeTimStartDateTime'), '') AS _tim_start_text,
                                            -- '2017-12-05T16:33:58Z[UTC]' (schemaVersion <= 5) -> drop the
                                            -- bracketed zone name. Java's ZonedDateTime.toString omits zero
                                            -- seconds: '2017-12-05T16:33Z[UTC]' means 16:33:00, so the
                                            -- fallback inserts ':00' before the zone.
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
                                            coalesce(
                                                try_cast(split_part(_tim_start_text, '[', 1) AS TIMESTAMPTZ),
                                                try_cast(regexp_replace(split_part(_tim_start_text, '[', 1),
                                                    '^(\d{4}-\d\d-\d\dT\d\d:\d\d)(Z|[+-]\d\d:?\d\d)?$', '\1:00\2') AS TIMESTAMPTZ)
                                            ) AS ode_tim_start_at,
                                            nullif(json_extract_string(r.metadata, '$.odePacketID'), '') AS ode_packet_id,
                                            try_cast(json_extract_string(r.metadata, '$.maxDurationTime') AS INTEGER) AS max_duration_min,
                                            -- the SDX deposit: metadata.request.sdw (degrees), or else the
                                            -- AdvisorySituationData envelope (J2735 1e-7 degree)
                                            coalesce(
                                                json_extract_string(r.metadata, '$.request.sdw.recordId'),
                                                json_extract_string(r.payload, '$.data.AdvisorySituationData.recordID')
                                            ) AS sdw_record_id,
                                            json_extract_string(r.metadata, '$.request.sdw.ttl') AS sdw_ttl,
                                            coalesce(
                                                try_cast(json_extract_string(r.metadata, '$.request.sdw.serviceRegion.nwCorner.latitude') AS DOUBLE),
                                                try_cast(json_extract_string(r.payload, '$.data.AdvisorySituationData.serviceRegion.nwCorner.lat') AS DOUBLE) / 1e7
                                            ) AS sdw_nw_latitude,
                                            coalesce(
                                                try_cast(json_extract_string(r.metadata, '$.request.sdw.serviceRegion.nwCorner.longitude') AS DOUBLE),
                                                try_cast(json_extract_string(r.payload, '$.data.AdvisorySituationData.serviceRegion.nwCorner.long') AS DOUBLE) / 1e7
                                            ) AS sdw_nw_longitude,
                                            coalesce(
                                                try_cast(json_extract_string(r.metadata, '$.request.sdw.serviceRegion.seCorner.latitude') AS DOUBLE),
                                                try_cast(json_extract_string(r.payload, '$.data.AdvisorySituationData.serviceRegion.seCorner.lat') AS DOUBLE) / 1e7
                                            ) AS sdw_se_latitude,
                                            coalesce(
                                                try_cast(json_extract_string(r.metadata, '$.request.sdw.serviceRegion.seCorner.longitude') AS DOUBLE),
                                                try_cast(json_extract_string(r.payload, '$.data.AdvisorySituationData.serviceRegion.seCorner.long') AS DOUBLE) / 1e7
                                            ) AS sdw_se_longitude,
                                            try_cast(json_extract_string(r.metadata, '$.schemaVersion') AS INTEGER) AS schema_version,
                                            try_cast(json_extract_string(r._tim, '$.msgCnt') AS INTEGER) AS msg_cnt,
                                            json_extract_string(r._tim, '$.packetID') AS packet_id,
                                            try_cast(json_extract_string(r._tim, '$.timeStamp') AS INTEGER) AS time_stamp,
                                            json_extract_string(r._tim, '$.urlB') AS url_b,
                                            try_cast(json_extract_string(list_filter(
                                                json_extract(r.payload, '$..MessageFrame'),
                                                lambda x: json_type(x) = 'OBJECT'
                                            )[1], '$.messageId') AS INTEGER) AS message_id,
                                            CASE
                                                WHEN json_type(json_extract(r._tim, '$.dataFrames')) NOT IN ('NULL')
                                                    THEN json_extract(r._tim, '$.dataFrames')
                                                ELSE json_extract(r._tim, '$.dataframes')
                                            END AS _data_frames_outer,
                                            coalesce(
                                                json_extract_string(r.metadata, '$.recordGeneratedBy'),
                                                json_extract_string(r.metadata, '$.generatedBy')
                                            ) AS record_generated_by,
                                            json_extract_string(r.metadata, '$.recordType') AS record_type,
                                            json_extract_string(r.metadata, '$.logFileName') AS log_file_name,
                                            json_extract_string(r.metadata, '$.payloadType') AS payload_type,
                                            try_cast(json_extract_string(r.metadata, '$.sanitized') AS BOOLEAN) AS sanitized,
                                            json_extract_string(r.metadata, '$.securityResultCode') AS security_result_code,
                                            try_cast(json_extract_string(r.metadata, '$.validSignature') AS BOOLEAN) AS valid_signature,
                                            json_extract_string(r.metadata, '$.serialId.streamId') AS serial_stream_id,
                                            try_cast(json_extract_string(r.metadata, '$.serialId.bundleSize') AS BIGINT) AS serial_bundle_size,
                                            try_cast(json_extract_string(r.metadata, '$.serialId.bundleId') AS BIGINT) AS serial_bundle_id,
                                            try_cast(json_extract_string(r.metadata, '$.serialId.recordId') AS BIGINT) AS serial_record_id,
                                            try_cast(json_extract_string(r.metadata, '$.serialId.serialNumber') AS BIGINT) AS serial_number,
                                            -- numbers in the TIM samples, strings ("0") in BSMs: read either
                                            try_cast(json_extract_string(r.metadata, '$.receivedMessageDetails.locationData.latitude') AS DOUBLE) AS rmd_latitude,
                                            try_cast(json_extract_string(r.metadata, '$.receivedMessageDetails.locationData.longitude') AS DOUBLE) AS rmd_longitude,
                                            try_cast(json_extract_string(r.metadata, '$.receivedMessageDetails.locationData.elevation') AS DOUBLE) AS rmd_elevation_m,
                                            try_cast(json_extract_string(r.metadata, '$.receivedMessageDetails.locationData.speed') AS DOUBLE) AS rmd_speed_mps,
                                            try_cast(json_extract_string(r.metadata, '$.receivedMessageDetails.locationData.heading') AS DOUBLE) AS rmd_heading_deg,
                                            json_extract_string(r.metadata, '$.receivedMessageDetails.rxSource') AS rx_source,
                                            json_extract_string(r.payload, '$.dataType') AS data_type,
                                            CASE
                                                WHEN r._tim_found IS NULL AND r._tim IS NOT NULL THEN 'TravelerInformation'
                                                WHEN json_type(json_extract(r.payload, '$.data')) = 'OBJECT'
                                                THEN json_keys(json_extract(r.payload, '$.data'))[1]
                                            END AS tim_container,
                                            CASE WHEN json_type(json_extract(r.metadata, '$.request')) <> 'NULL'
                                                THEN json_extract(r.metadata, '$.request')
                                            END AS request,
                                            -- rsus: [..] | {"rsus": [..] | {..}} | {"rsu": [..] | {..}} | one RSU
                                            CASE
                                                WHEN json_type(json_extract(r.metadata, '$.request.rsus.rsus')) = 'ARRAY'
                                                    THEN json_extract(r.metadata, '$.request.rsus.rsus')
                                                WHEN json_type(json_extract(r.metadata, '$.request.rsus.rsus')) = 'OBJECT'
                                                    THEN to_json([json_extract(r.metadata, '$.request.rsus.rsus')])
                                                WHEN json_type(json_extract(r.metadata, '$.request.rsus.rsu')) = 'ARRAY'
                                                    THEN json_extract(r.metadata, '$.request.rsus.rsu')
                                                WHEN json_type(json_extract(r.metadata, '$.request.rsus.rsu')) = 'OBJECT'
                                                    THEN to_json([json_extract(r.metadata, '$.request.rsus.rsu')])
                                                WHEN json_type(json_extract(r.metadata, '$.request.rsus')) = 'ARRAY'
                                                    THEN json_extract(r.metadata, '$.request.rsus')
                                                WHEN json_type(json_extract(r.metadata, '$.request.rsus')) = 'OBJECT'
                                                    THEN to_json([json_extract(r.metadata, '$.request.rsus')])
                                            END AS rsus,
                                            -- the SDX envelope (record id, service region, times, ids)
                                            -- without the TIM, which is in the frame columns
                                            CASE WHEN json_type(json_extract(r.payload, '$.data.AdvisorySituationData')) = 'OBJECT'
                                                THEN json_merge_patch(
                                                    json_extract(r.payload, '$.data.AdvisorySituationData'),
                                                    '{"asdmDetails": {"advisoryMessage": null}}'
                                                )
                                            END AS advisory_situation,
                                            md5(coalesce(r.metadata::VARCHAR, '') || chr(10) || coalesce(r.payload::VARCHAR, '')) AS record_hash
                                        FROM (
                                            SELECT
                                                q.*,
                                                list_filter(
                                                    json_extract(q.payload, '$..TravelerInformation'),
                                                    lambda x: json_type(x) = 'OBJECT'
                                                )[1] AS _tim_found,
                                                -- no TravelerInformation key: payload.data is the TIM itself
                                                -- (TMC, v8) when it is no MessageFrame or SDX envelope and
                                                -- has dataFrames or the dataType names it. The ODE's own
                                                -- request form (OdeTravelerInformationMessage: dataframes,
                                                -- degrees, startDateTime) is not J2735 and stays unread.
                                                coalesce(_tim_found, CASE
                                                    WHEN json_type(json_extract(q.payload, '$.data')) = 'OBJECT'
                                                        AND NOT json_exists(json_extract(q.payload, '$.data'), '$.MessageFrame')
                                                        AND NOT json_exists(json_extract(q.payload, '$.data'), '$.AdvisorySituationData')
                                                        AND (json_exists(json_extract(q.payload, '$.data'), '$.dataFrames')
                                                            OR json_extract_string(q.payload, '$.dataType') LIKE '%TravelerInformation')
                                                    THEN json_extract(q.payload, '$.data')
                                                END) AS _tim
                                            FROM {relation} AS q
                                        ) AS r
                                    ) AS h
                                ) AS e
                            ) AS d
                        ) AS c
                    ) AS t
                ) AS s
            ) AS u
        ) AS f
    ) AS g
) AS b
