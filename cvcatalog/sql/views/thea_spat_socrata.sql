-- THEA SPAT under the data.transportation.gov (Socrata) flattened column names, in the order of
-- the TheaSPATFlattener column list, plus source and date: one row per IntersectionState. Only
-- valid rows (invalid_reason IS NULL) are included.
--
-- Placeholders, filled by cvcatalog.schemas:
--   {view}      the quoted view name
--   {relation}  a FROM item with the canonical columns plus source and date
--               (the canonical view, or a registered data frame)
--
-- Identifiers, revisions and minute/millisecond stamps are integers; the MovementState list,
-- enabledLanes and maneuverAssistList are the intersection's JSON, verbatim (raw J2735 units, as
-- the portal published them; the canonical movement_states has them in seconds).
-- metadata_generatedAt is the UTC instant. randomNum is a hash of the row, so samples taken
-- with it are repeatable.
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
    e.external_id AS "metadata_externalID",
    e.time_stamp AS "payload_data_SPAT_timeStamp",
    e.spat_name AS "payload_data_SPAT_name",
    e.regional AS "payload_data_SPAT_regional",
    e.dsecond_ms AS "payload_data_SPAT_intersections_IntersectionState_timeStamp",
    e.moy AS "payload_data_SPAT_intersections_IntersectionState_moy",
    e.intersection_name AS "payload_data_SPAT_intersections_IntersectionState_name",
    e.intersection_id AS "payload_data_SPAT_intersections_IntersectionState_id_id",
    e.intersection_region AS "payload_data_SPAT_intersections_IntersectionState_id_region",
    e.status AS "payload_data_SPAT_intersections_IntersectionState_status",
    e.intersection -> '$.regional' AS "payload_data_SPAT_intersections_IntersectionState_regional",
    e.revision AS "payload_data_SPAT_intersections_IntersectionState_revision",
    e.intersection -> '$.states.MovementState' AS "payload_data_SPAT_intersections_IntersectionState_states_MovementState",
    e.intersection -> '$.enabledLanes' AS "payload_data_SPAT_intersections_IntersectionState_enabledLanes",
    e.intersection -> '$.maneuverAssistList' AS "payload_data_SPAT_intersections_IntersectionState_maneuverAssistList",
    hash(e.source_key, e.generated_at, e.intersection_id, e.dsecond_ms, e.intersection_index)::DOUBLE
        / 18446744073709551616.0 AS "randomNum",
    e.source AS source,
    e.date AS date
FROM {relation} AS e
WHERE e.invalid_reason IS NULL
