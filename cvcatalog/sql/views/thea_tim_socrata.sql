-- THEA TIM under the data.transportation.gov (Socrata) flattened column names, in the order of
-- the TheaTIMFlattener column list, plus source and date: one row per TravelerDataFrame, as the
-- portal split them. Only valid rows (invalid_reason IS NULL) are included.
--
-- Placeholders, filled by cvcatalog.schemas:
--   {view}      the quoted view name
--   {relation}  a FROM item with the canonical columns plus source and date
--               (the canonical view, or a registered data frame)
--
-- Values are the canonical ones (degrees, metres; lane width in m), not the raw J2735 strings
-- the portal published; times are UTC instants, minute-of-year fields stay integers.
-- travelerdataframe_* objects that the portal kept as JSON text (regionals, nodes, content
-- sequences) are the JSON of the frame, verbatim. metadata_generatedAt_timeOfDay is hours into
-- the Eastern day; randomNum is a hash of the row, so samples taken with it are repeatable.
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
    e.time_stamp AS "travelerinformation_timeStamp",
    e.packet_id AS "travelerinformation_packetID",
    e.url_b AS "travelerinformation_urlB",
    e.msg_cnt AS "travelerinformation_msgCnt",
    e.regional AS "travelerinformation_regional",
    e.closed_path AS "travelerdataframe_closedPath",
    e.anchor_elevation_m AS "travelerdataframe_anchor_elevation",
    e.anchor_latitude AS "travelerdataframe_anchor_lat",
    e.anchor_longitude AS "travelerdataframe_anchor_long",
    e._path -> '$.anchor.regional' AS "travelerdataframe_anchor_regional",
    e.region_name AS "travelerdataframe_name",
    e.lane_width_m AS "travelerdataframe_laneWidth",
    e.directionality AS "travelerdataframe_directionality",
    coalesce(e._path -> '$.description.path.offset.xy.nodes.NodeXY',
             e._path -> '$.description.path.offset.ll.nodes.NodeLL') AS "travelerdataframe_desc_nodes",
    e.path_scale AS "travelerdataframe_desc_scale",
    e.direction AS "travelerdataframe_direction",
    e.region_id AS "travelerdataframe_id_id",
    e.region_regulator_id AS "travelerdataframe_id_region",
    e.ssp_msg_rights1 AS "travelerdataframe_sspMsgRights1",
    e.ssp_msg_rights2 AS "travelerdataframe_sspMsgRights2",
    e.start_year AS "travelerdataframe_startYear",
    e.sign_view_angle AS "travelerdataframe_msgId_viewAngle",
    e.sign_mutcd_code AS "travelerdataframe_msgId_mutcdCode",
    e.sign_elevation_m AS "travelerdataframe_msgId_elevation",
    e.sign_latitude AS "travelerdataframe_msgId_lat",
    e.sign_longitude AS "travelerdataframe_msgId_long",
    e.further_info_id AS "travelerdataframe_msgId_furtherInfoId",
    e.sign_crc AS "travelerdataframe_msgId_msgCrc",
    e.data_frame -> '$.msgId.roadSignID.position.regional' AS "travelerdataframe_msgId_regional",
    e.priority AS "travelerdataframe_priority",
    e.data_frame -> '$.content.advisory.SEQUENCE' AS "travelerdataframe_content_advisory_sequence",
    e.data_frame -> '$.content.exitService.SEQUENCE' AS "travelerdataframe_content_exitService_sequence",
    e.data_frame -> '$.content.genericSign.SEQUENCE' AS "travelerdataframe_content_genericSign_sequence",
    e.data_frame -> '$.content.speedLimit.SEQUENCE' AS "travelerdataframe_content_speedLimit_sequence",
    e.data_frame -> '$.content.workZone.SEQUENCE' AS "travelerdataframe_content_workZone_sequence",
    e.ssp_tim_rights AS "travelerdataframe_sspTimRights",
    e.ssp_location_rights AS "travelerdataframe_sspLocationRights",
    e.frame_type AS "travelerdataframe_frameType",
    e.start_time AS "travelerdataframe_startTime",
    e.duration_min AS "travelerdataframe_duratonTime",
    CASE
        WHEN e.sign_longitude IS NOT NULL AND e.sign_latitude IS NOT NULL
        THEN 'POINT (' || e.sign_longitude::VARCHAR || ' ' || e.sign_latitude::VARCHAR || ')'
    END AS "travelerdataframe_msgId_position",
    hash(e.source_key, e.generated_at, e.packet_id, e.msg_cnt, e.frame_index)::DOUBLE
        / 18446744073709551616.0 AS "randomNum",
    (hour(e._local) + minute(e._local) / 60 + second(e._local) / 3600)::DOUBLE AS "metadata_generatedAt_timeOfDay",
    e.source AS source,
    e.date AS date
FROM (
    SELECT
        c.*,
        timezone('America/New_York', c.generated_at) AS _local,
        -- the first GeographicalPath (the one the typed path_* columns describe)
        CASE json_type(c.data_frame -> '$.regions.GeographicalPath')
            WHEN 'ARRAY' THEN c.data_frame -> '$.regions.GeographicalPath[0]'
            WHEN 'OBJECT' THEN c.data_frame -> '$.regions.GeographicalPath'
            ELSE coalesce(c.data_frame -> '$.regions[0].GeographicalPath[0]',
                          c.data_frame -> '$.regions[0].GeographicalPath',
                          c.data_frame -> '$.regions[0]')
        END AS _path
    FROM {relation} AS c
    WHERE c.invalid_reason IS NULL
) AS e
