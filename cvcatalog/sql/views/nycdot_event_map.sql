-- The MAP messages of NYCDOT EVENT records (mapList), one row per message, with the identity
-- of its event.
--
-- Placeholders, filled by cvcatalog.schemas.view_sql:
--   {view}      the quoted view name
--   {relation}  the canonical nycdot_event view (canonical columns plus partition columns)
--
-- message is the whole list element as published ({"seqNum", "mapRecord": {"msgHeader",
-- "mapMsg"}}, the shape of the published timList entries); the other columns are extracts that
-- read NULL where an element lacks them. Obfuscation (DataProcessing.txt): intersection ids and
-- TIM packetIDs are letter codes (A, B, ...) consistent within an event; times are seconds
-- relative to the warning; positions are metres in the event's X/Y/Z frame.
CREATE OR REPLACE VIEW {view} AS
SELECT
    u.event_id,
    u.source_key,
    u.event_type,
    u.event_time_bin,
    u.host_veh_id,
    u.msg_index,
    try_cast(json_extract_string(u.message, '$.seqNum') AS BIGINT) AS seq_num,
    try_cast(json_extract_string(u.message, '$.mapRecord.msgHeader.myRFLevel') AS INTEGER) AS my_rf_level,
    try_cast(json_extract_string(u.message, '$.mapRecord.msgHeader.authenticated') AS BOOLEAN) AS authenticated,
    try_cast(json_extract_string(u.message, '$.mapRecord.mapMsg.msgCnt') AS INTEGER) AS msg_cnt,
    json_extract_string(u.message, '$.mapRecord.mapMsg.intersections[*].id.id') AS intersection_ids,
    u.message,
    u.invalid_reason,
    u.source,
    u.message_type,
    u.year,
    u.month,
    u.weekday,
    u.time_bin
FROM (
    SELECT
        e.event_id, e.source_key, e.event_type, e.event_time_bin, e.host_veh_id,
        e.invalid_reason, e.source, e.message_type, e.year, e.month, e.weekday, e.time_bin,
        unnest(e.map_list)::JSON AS message,
        generate_subscripts(e.map_list, 1) AS msg_index
    FROM {relation} AS e
) AS u
