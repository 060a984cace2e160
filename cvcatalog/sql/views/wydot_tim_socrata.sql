-- WYDOT TIM under the data.transportation.gov (Socrata) flattened column names, in the order of
-- the WydotTIMFlattener column list, plus source and date. Existing analysis pipelines expect
-- these names. Only valid rows (invalid_reason IS NULL) are included, as the portal did.
--
-- Placeholders, filled by cvcatalog.schemas:
--   {view}      the quoted view name
--   {relation}  a FROM item with the canonical columns plus source and date
--               (the canonical view, or a registered data frame)
--
-- Grain: like the portal's flattener, one row per TravelerDataFrame and GeographicalPath: a frame
-- with several regions gives one row per region (frame fields repeated), a frame without regions
-- and a TIM without frames one row. Region fields come from the canonical `regions` array, so
-- they are the raw J2735 values (1e-7 degree, 0.1 m), as the portal published them; msgId
-- positions are turned back into those units from the canonical degrees and metres.
-- The flattener only looked at payload.data.MessageFrame; here TIMs inside an
-- AdvisorySituationData envelope (SDX deposits) and TIMs without a MessageFrame (TMC broadcasts,
-- schemaVersion 8) are flattened the same way. A region's direction is the 16-character
-- HeadingSlice bit string whatever its raw form (string, number, or v8's 16 booleans), like
-- the canonical `direction`.
CREATE OR REPLACE VIEW {view} AS
SELECT
    e.data_type AS "dataType",
    e.generated_at AS "metadata_generatedAt",
    e.record_generated_by AS "metadata_generatedBy",
    e.log_file_name AS "metadata_logFileName",
    e.schema_version AS "metadata_schemaVersion",
    e.message_id AS "messageId",
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
    e.rmd_longitude AS "metadata_rmd_longitude",
    e.rmd_latitude AS "metadata_rmd_latitude",
    e.rmd_speed_mps AS "metadata_rmd_speed",
    e.rx_source AS "metadata_rmd_rxSource",
    e.rsus::JSON AS "metadata_request_rsus",
    try_cast(json_extract_string(e.request::JSON, '$.snmp.channel') AS BIGINT) AS "metadata_request_snmp_channel",
    json_extract_string(e.request::JSON, '$.snmp.deliverystart') AS "metadata_request_snmp_deliverystart",
    json_extract_string(e.request::JSON, '$.snmp.deliverystop') AS "metadata_request_snmp_deliverystop",
    try_cast(json_extract_string(e.request::JSON, '$.snmp.enable') AS BIGINT) AS "metadata_request_snmp_enable",
    try_cast(json_extract_string(e.request::JSON, '$.snmp.interval') AS BIGINT) AS "metadata_request_snmp_interval",
    try_cast(json_extract_string(e.request::JSON, '$.snmp.mode') AS BIGINT) AS "metadata_request_snmp_mode",
    try_cast(json_extract_string(e.request::JSON, '$.snmp.msgid') AS BIGINT) AS "metadata_request_snmp_msgid",
    json_extract_string(e.request::JSON, '$.snmp.rsuid') AS "metadata_request_snmp_rsuid",
    try_cast(json_extract_string(e.request::JSON, '$.snmp.status') AS BIGINT) AS "metadata_request_snmp_status",
    try_cast(json_extract_string(e._anchor, '$.elevation') AS BIGINT) AS "travelerdataframe_anchor_elevation",
    try_cast(json_extract_string(e._anchor, '$.lat') AS BIGINT) AS "travelerdataframe_anchor_lat",
    try_cast(json_extract_string(e._anchor, '$.long') AS BIGINT) AS "travelerdataframe_anchor_long",
    CASE json_type(json_extract(e._region, '$.closedPath'))
        WHEN 'OBJECT' THEN try_cast(json_keys(json_extract(e._region, '$.closedPath'))[1] AS BOOLEAN)
        WHEN 'NULL' THEN NULL
        ELSE try_cast(json_extract_string(e._region, '$.closedPath') AS BOOLEAN)
    END AS "travelerdataframe_closedPath",
    CASE WHEN e.content_type = 'advisory' THEN e._sequence END AS "travelerdataframe_content_advisory_sequence",
    CASE
        WHEN json_type(e._nodes) = 'ARRAY' THEN e._nodes
        WHEN json_type(e._nodes) = 'OBJECT' THEN to_json([e._nodes])
    END AS "travelerdataframe_desc_nodes",
    try_cast(coalesce(
        json_extract_string(e._region, '$.description.path.scale'),
        json_extract_string(e._region, '$.description.path[0].scale')
    ) AS INTEGER) AS "travelerdataframe_desc_scale",
    CASE json_type(e._direction)
        WHEN 'OBJECT' THEN array_to_string(list_transform(
            ['from000-0to022-5degrees', 'from022-5to045-0degrees', 'from045-0to067-5degrees', 'from067-5to090-0degrees',
             'from090-0to112-5degrees', 'from112-5to135-0degrees', 'from135-0to157-5degrees', 'from157-5to180-0degrees',
             'from180-0to202-5degrees', 'from202-5to225-0degrees', 'from225-0to247-5degrees', 'from247-5to270-0degrees',
             'from270-0to292-5degrees', 'from292-5to315-0degrees', 'from315-0to337-5degrees', 'from337-5to360-0degrees'],
            lambda k: CASE WHEN json_extract_string(e._direction, '$."' || k || '"') = 'true' THEN '1' ELSE '0' END
        ), '')
        WHEN 'UBIGINT' THEN lpad(json_extract_string(e._direction, '$'), 16, '0')
        WHEN 'BIGINT' THEN lpad(json_extract_string(e._direction, '$'), 16, '0')
        ELSE json_extract_string(e._direction, '$')
    END AS "travelerdataframe_direction",
    CASE json_type(json_extract(e._region, '$.directionality'))
        WHEN 'OBJECT' THEN json_keys(json_extract(e._region, '$.directionality'))[1]
        WHEN 'NULL' THEN NULL
        ELSE json_extract_string(e._region, '$.directionality')
    END AS "travelerdataframe_directionality",
    e.duration_min AS "travelerdataframe_durationTime",
    e.frame_type AS "travelerdataframe_frameType",
    try_cast(json_extract_string(e._region, '$.id.id') AS INTEGER) AS "travelerdataframe_id",
    try_cast(json_extract_string(e._region, '$.laneWidth') AS INTEGER) AS "travelerdataframe_laneWidth",
    e.sign_crc AS "travelerdataframe_msgId_crc",
    round(e.sign_elevation_m * 10)::BIGINT AS "travelerdataframe_msgId_elevation",
    round(e.sign_latitude * 1e7)::BIGINT AS "travelerdataframe_msgId_lat",
    round(e.sign_longitude * 1e7)::BIGINT AS "travelerdataframe_msgId_long",
    e.sign_mutcd_code AS "travelerdataframe_msgId_mutcdCode",
    e.sign_view_angle AS "travelerdataframe_msgId_viewAngle",
    json_extract_string(e._region, '$.name') AS "travelerdataframe_name",
    e.priority AS "travelerdataframe_priority",
    e.ssp_location_rights AS "travelerdataframe_sspLocationRights",
    e.ssp_msg_rights1 AS "travelerdataframe_sspMsgRights1",
    e.ssp_msg_rights2 AS "travelerdataframe_sspMsgRights2",
    e.ssp_tim_rights AS "travelerdataframe_sspTimRights",
    e.start_time AS "travelerdataframe_startTime",
    e.start_year AS "travelerdataframe_startYear",
    e.url AS "travelerdataframe_url",
    e.msg_cnt AS "travelerinformation_msgCnt",
    e.packet_id AS "travelerinformation_packetID",
    e.time_stamp AS "travelerinformation_timeStamp",
    e.url_b AS "travelerinformation_urlB",
    e.security_result_code AS "metadata_securityResultCode",
    e.itis_codes AS "travelerdataframe_content_itis",
    CASE WHEN e.content_type = 'workZone' THEN e._sequence END AS "travelerdataframe_content_workZone_sequence",
    CASE WHEN e.content_type = 'genericSign' THEN e._sequence END AS "travelerdataframe_content_genericSign_sequence",
    CASE WHEN e.content_type = 'speedLimit' THEN e._sequence END AS "travelerdataframe_content_speedLimit_sequence",
    CASE WHEN e.content_type = 'exitService' THEN e._sequence END AS "travelerdataframe_content_exitService_sequence",
    e.source AS source,
    e.date AS date
FROM (
    SELECT
        p.*,
        coalesce(
            json_extract(p._region, '$.direction'),
            json_extract(p._region, '$.description.oldRegion.direction'),
            json_extract(p._region, '$.description.geometry.direction'),
            json_extract(p._region, '$.description.geometry[0].direction')
        ) AS _direction,
        coalesce(
            json_extract(p._region, '$.anchor'),
            json_extract(p._region, '$.description.oldRegion.area.regionPointSet.anchor'),
            json_extract(p._region, '$.description.oldRegion.area.shapePointSet.anchor')
        ) AS _anchor,
        CASE
            WHEN json_type(p._nodes_holder) = 'OBJECT'
                AND len(json_keys(p._nodes_holder)) = 1
                AND json_keys(p._nodes_holder)[1] IN ('NodeXY', 'NodeLL', 'RegionOffsets', 'NodeSetXY', 'NodeSetLL')
            THEN json_extract(p._nodes_holder, '$.*')[1]
            ELSE p._nodes_holder
        END AS _nodes
    FROM (
        SELECT
            q.*,
            coalesce(
                json_extract(q._region, '$.description.path.offset.xy.nodes'),
                json_extract(q._region, '$.description.path.offset.ll.nodes'),
                json_extract(q._region, '$.description.path[0].offset.xy.nodes'),
                json_extract(q._region, '$.description.path[0].offset.ll.nodes'),
                json_extract(q._region, '$.description.oldRegion.area.regionPointSet.nodeList'),
                json_extract(q._region, '$.description.oldRegion.area.shapePointSet.nodeList')
            ) AS _nodes_holder
        FROM (
            SELECT
                c.*,
                -- the portal's SEQUENCE shape: [{"item": {..}}, ..], always a list here
                CASE WHEN c.content_items IS NOT NULL
                    THEN to_json(list_transform(
                        json_extract(c.content_items::JSON, '$[*]'),
                        lambda x: json_object('item', x)
                    ))
                END AS _sequence,
                unnest(
                    CASE WHEN coalesce(json_array_length(c.regions::JSON), 0) = 0
                        THEN [NULL::JSON]
                        ELSE json_extract(c.regions::JSON, '$[*]')
                    END
                ) AS _region
            FROM {relation} AS c
            WHERE c.invalid_reason IS NULL
        ) AS q
    ) AS p
) AS e
