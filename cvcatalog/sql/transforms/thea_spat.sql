-- Canonical rows of THEA SPAT records (metadata.schemaVersion 1): one row per IntersectionState.
--
-- Placeholders, filled by cvcatalog.schemas.MessageSchema.canonical_select_sql:
--   {relation}       a FROM item with columns metadata, payload (typed by the schema's
--                    read_columns) and source_key (the S3 key the record came from)
--   {validate}       TRUE or FALSE; FALSE applies only the 'malformed JSON' rule
--   {extra_columns}  empty, or ", <expr> AS <name>, ..." appended to the select list
--
-- Values are strings in raw J2735 units (thea_spat_sandbox_data_dictionary.csv). SPAT.timeStamp
-- and IntersectionState.moy are minutes of the (UTC) year, IntersectionState.timeStamp the
-- milliseconds of that minute: together they give intersection_at, in the year of generated_at
-- (or the year before or after, when that puts the minute within half a year of generated_at: a
-- message sent across New Year). A minute that year does not have (0..525599, 0..527039 in a
-- leap year; 527040 is J2735's "invalid": NULL) or a millisecond past 60999 (61000-65534 are
-- reserved) is kept with its warning (moy_out_of_range, dsecond_out_of_range) and gives no
-- intersection_at, never a time rolled into the next minute or year.
-- Movement event timings (startTime, minEndTime, maxEndTime, likelyTime, nextTime) are J2735
-- TimeMarks, tenths of a second after the start of the UTC hour; they become seconds
-- (209 -> 20.9), with 36001 ("unknown") NULL. recordGeneratedAt is Eastern wall time (see
-- thea_bsm.sql).
--
-- intersections.IntersectionState, states.MovementState and state-time-speed.MovementEvent are
-- each one object, or an array when there are several; all are normalised to lists. Valid records
-- give one row per intersection; an invalid or unreadable record is exactly one row.
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
    b.time_stamp,
    b.payload.data.SPAT.name AS spat_name,
    b.payload.data.SPAT.regional AS regional,
    CASE WHEN b._reason IS NULL AND b._intersection IS NOT NULL THEN b._ii END::INTEGER AS intersection_index,
    coalesce(len(b._intersections), 0)::INTEGER AS intersection_count,
    try_cast(b._is.id.id AS INTEGER) AS intersection_id,
    try_cast(b._is.id.region AS INTEGER) AS intersection_region,
    b._is.name AS intersection_name,
    try_cast(b._is.revision AS INTEGER) AS revision,
    b._is.status AS status,
    b.moy,
    b.dsecond_ms,
    -- only a minute its year has and a millisecond of the minute (60000-60999: a leap second)
    -- make a time; try(): a year past DuckDB's last is NULL, not an error that fails the day
    CASE WHEN b._minute IS NOT NULL AND b._minute_ok AND b._ms_ok AND b.generated_at IS NOT NULL THEN try(
        make_timestamptz(b._minute_year, 1, 1, 0, 0, 0, 'UTC')
        + to_minutes(b._minute)
        + to_milliseconds(coalesce(b.dsecond_ms, 0)))
    END AS intersection_at,
    CAST(list_transform(b._movements, lambda m: {
        'signal_group': try_cast(m ->> '$.signalGroup' AS INTEGER),
        'movement_name': m ->> '$.movementName',
        'events': list_transform(
            CASE json_type(m -> '$."state-time-speed".MovementEvent')
                WHEN 'ARRAY' THEN json_extract(m, '$."state-time-speed".MovementEvent[*]')
                WHEN 'OBJECT' THEN [m -> '$."state-time-speed".MovementEvent']
                ELSE [] END,
            lambda e: {
                'event_state': CASE json_type(e -> '$.eventState')
                    WHEN 'OBJECT' THEN json_keys(e -> '$.eventState')[1]
                    WHEN 'VARCHAR' THEN e ->> '$.eventState' END,
                'start_time_s': nullif(try_cast(e ->> '$.timing.startTime' AS DOUBLE), 36001) / 10,
                'min_end_time_s': nullif(try_cast(e ->> '$.timing.minEndTime' AS DOUBLE), 36001) / 10,
                'max_end_time_s': nullif(try_cast(e ->> '$.timing.maxEndTime' AS DOUBLE), 36001) / 10,
                'likely_time_s': nullif(try_cast(e ->> '$.timing.likelyTime' AS DOUBLE), 36001) / 10,
                'confidence': try_cast(e ->> '$.timing.confidence' AS INTEGER),
                'next_time_s': nullif(try_cast(e ->> '$.timing.nextTime' AS DOUBLE), 36001) / 10
            })
    }) AS STRUCT(signal_group INTEGER, movement_name VARCHAR, events STRUCT(event_state VARCHAR,
        start_time_s DOUBLE, min_end_time_s DOUBLE, max_end_time_s DOUBLE, likely_time_s DOUBLE,
        confidence INTEGER, next_time_s DOUBLE)[])[]) AS movement_states,
    b._intersection AS intersection,
    b.source_key,
    b._reason AS invalid_reason,
    CASE
        WHEN NOT {validate} OR (b._no_metadata AND b._no_payload) THEN []::VARCHAR[]
        ELSE (
            CASE WHEN NOT b._ms_ok THEN ['dsecond_out_of_range'] ELSE [] END
            || CASE WHEN NOT b._minute_ok THEN ['moy_out_of_range'] ELSE [] END
        )::VARCHAR[]
    END AS warnings
    {extra_columns}
FROM (
    SELECT
        u.*,
        from_json(u._intersection,
            '{"id": {"id": "VARCHAR", "region": "VARCHAR"}, "name": "VARCHAR",
              "revision": "VARCHAR", "status": "VARCHAR"}') AS _is,
        nullif(try_cast(u._intersection ->> '$.moy' AS INTEGER), 527040) AS moy,  -- 527040: invalid
        nullif(try_cast(u._intersection ->> '$.timeStamp' AS INTEGER), 65535) AS dsecond_ms,  -- 65535: unavailable
        -- the minute of the year intersection_at counts (moy, else SPAT.timeStamp), the year it
        -- is a minute of (generated_at's UTC year, or the one before or after when the minute is
        -- more than half a year from generated_at) and whether that year has it (NULL: no minute)
        coalesce(moy, u.time_stamp)::BIGINT AS _minute,
        u._year + CASE
            WHEN _minute * 60 - u._secs_into_year > 183 * 86400 THEN -1
            WHEN _minute * 60 - u._secs_into_year < -183 * 86400 THEN 1
            ELSE 0 END AS _minute_year,
        coalesce(_minute BETWEEN 0 AND CASE
            WHEN _minute_year IS NULL THEN 527039  -- no generated_at: J2735's range
            WHEN _minute_year % 4 = 0 AND (_minute_year % 100 <> 0 OR _minute_year % 400 = 0) THEN 527039
            ELSE 525599 END, TRUE) AS _minute_ok,
        coalesce(dsecond_ms BETWEEN 0 AND 60999, TRUE) AS _ms_ok,
        CASE json_type(u._intersection -> '$.states')
            WHEN 'OBJECT' THEN (
                CASE json_type(u._intersection -> '$.states.MovementState')
                    WHEN 'ARRAY' THEN json_extract(u._intersection, '$.states.MovementState[*]')
                    WHEN 'OBJECT' THEN [u._intersection -> '$.states.MovementState'] END)
            WHEN 'ARRAY' THEN flatten(list_transform(json_extract(u._intersection, '$.states[*]'),
                lambda s: CASE json_type(s -> '$.MovementState')
                    WHEN 'ARRAY' THEN json_extract(s, '$.MovementState[*]')
                    WHEN 'OBJECT' THEN [s -> '$.MovementState']
                    ELSE [s] END))
        END AS _movements
    FROM (
        SELECT
            v.*,
            unnest(v._used) AS _intersection,
            unnest(range(0, len(v._used))) AS _ii
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
                    WHEN coalesce(len(w._intersections), 0) = 0
                        THEN 'missing required field payload.data.SPAT.intersections'
                    WHEN len(list_filter(w._intersections, lambda i: (i ->> '$.id.id') IS NULL)) > 0
                        THEN 'missing required field payload.data.SPAT.intersections.IntersectionState.id.id'
                END AS _reason,
                CASE WHEN _reason IS NOT NULL OR coalesce(len(w._intersections), 0) = 0
                    THEN [w._intersections[1]] ELSE w._intersections END AS _used
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
                    nullif(try_cast(r.payload.data.SPAT.timeStamp AS INTEGER), 527040) AS time_stamp,
                    -- intersections: {"IntersectionState": state or [states]} (or an array of such)
                    CASE json_type(r.payload.data.SPAT.intersections)
                        WHEN 'OBJECT' THEN (
                            CASE json_type(r.payload.data.SPAT.intersections -> '$.IntersectionState')
                                WHEN 'ARRAY' THEN json_extract(r.payload.data.SPAT.intersections, '$.IntersectionState[*]')
                                WHEN 'OBJECT' THEN [r.payload.data.SPAT.intersections -> '$.IntersectionState'] END)
                        WHEN 'ARRAY' THEN flatten(list_transform(
                            json_extract(r.payload.data.SPAT.intersections, '$[*]'),
                            lambda d: CASE json_type(d -> '$.IntersectionState')
                                WHEN 'ARRAY' THEN json_extract(d, '$.IntersectionState[*]')
                                WHEN 'OBJECT' THEN [d -> '$.IntersectionState']
                                ELSE [d] END))
                    END AS _intersections
                FROM {relation} AS r
            ) AS w
        ) AS v
    ) AS u
) AS b
