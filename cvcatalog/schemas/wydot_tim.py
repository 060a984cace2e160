"""WYDOT (and wydot_backup) Traveler Information Messages: ODE output, schemaVersion 1 to 8.

Grain: one canonical row per TravelerDataFrame. A TIM is an envelope (msgCnt, packetID,
timeStamp) around one or more frames, each an advisory with its own content (ITIS codes, text),
times, priority and regions; analysts count and filter advisories, so a frame is the unit. The
TIM's identity (generated_at, received_at, msg_cnt, packet_id, time_stamp, serial_*, source_key,
record_hash) is repeated on every frame row, frame_index/frame_count say where the row sits, and a
TIM without any frame still gives one row (frame columns NULL, warning 'no_data_frames'), so no
record is ever dropped by the fan-out.

Regions stay inside the frame row: `regions` holds every GeographicalPath of the frame as a JSON
array (explode with `unnest(json_extract(regions, '$[*]'))`), and the first region's fields are
also flattened into columns (region_count says whether there are more). The socrata view splits
rows per region, as the data.transportation.gov flattener did.

Raw shapes vary a lot (single-element arrays arriving as objects, dataFrames as a list, a dict or a
nested dict, regions as a list or `{"GeographicalPath": ...}`, enums as `{"false": ""}`), so both
top-level objects are read as JSON and every field is taken with DuckDB's json functions, never
through a fixed STRUCT that one odd record would turn into an unreadable line.

Where the TravelerInformation sits: inside payload.data.MessageFrame.value (RSU broadcasts and
received TIMs, v3-v7), inside an AdvisorySituationData envelope (SDX deposits, v6), or as
payload.data itself, without a MessageFrame: the TIMs the traffic management centre generates
(recordGeneratedBy TMC, dataType ...travelerinformation.TravelerInformation, 2020 on) and every
v8 TIM (J2735 2024). J2735 2020 (v7) and 2024 (v8) renamed the SSP indexes (notUsed*,
doNotUse1-4), v8 writes HeadingSlices as 16 booleans and plain enum values; all of them land in
the same columns. The SDX deposit request (metadata.request.sdw: record id, time to live,
service region) is flattened on every row.

canonical_version 2 added ode_packet_id, ode_tim_start_at, max_duration_min and the sdw_*
columns (the views read partitions of the current version only, so older ones are re-converted).
canonical_version 3: J2735's "unavailable" values are NULL, as THEA TIM has them: a sign's or
an anchor's latitude 900000001, longitude 1800000001 and elevation -4096, startYear 0 (they
read as 90.0000001, 180.0000001, -409.6 m and the year 0). The columns are v2's, so v2 days are
read as they are (compatible_since 2: a re-conversion of every TIM day, or those days hidden
until it, for values no sample has): such a value in a v2 day stays a number until the day is
converted again (`ingest --force-refresh`).
"""

from __future__ import annotations

from cvcatalog.schemas.base import MessageSchema
from cvcatalog.schemas.wydot_bsm import wydot_schema

#: Read as JSON: the shapes differ between versions and even between records of one version.
WYDOT_TIM_READ_COLUMNS: dict[str, str] = {"metadata": "JSON", "payload": "JSON"}

#: Canonical TIM columns, one row per TravelerDataFrame. Positions are in degrees and metres
#: (the J2735 1e-7 degree and 0.1 m units divided out, like the BSM view); lane width stays in
#: J2735 centimetres, times of the year in J2735 minutes. JSON columns keep the raw J2735 values.
WYDOT_TIM_COLUMNS: list[tuple[str, str]] = [
    # -- the record and its TravelerInformation (the same on every frame row) -------------------
    ("generated_at", "TIMESTAMPTZ"),
    ("received_at", "TIMESTAMPTZ"),
    ("schema_version", "INTEGER"),
    ("msg_cnt", "INTEGER"),
    ("packet_id", "VARCHAR"),
    ("time_stamp", "INTEGER"),  # TravelerInformation.timeStamp, minute of the year
    ("url_b", "VARCHAR"),
    ("message_id", "INTEGER"),  # MessageFrame.messageId (31 = TIM)
    ("frame_index", "INTEGER"),  # 0-based position in dataFrames; NULL when there is no frame
    ("frame_count", "INTEGER"),
    # -- the TravelerDataFrame -----------------------------------------------------------------
    ("frame_type", "VARCHAR"),  # advisory | roadSignage | commercialSignage | unknown
    ("start_year", "INTEGER"),
    ("start_time", "INTEGER"),  # minute of start_year
    ("start_at", "TIMESTAMPTZ"),  # start_year + start_time, when both are valid
    ("duration_min", "INTEGER"),  # duratonTime (sic, ODE spelling) or durationTime; 32000 = forever
    ("priority", "INTEGER"),
    ("content_type", "VARCHAR"),  # advisory | workZone | genericSign | speedLimit | exitService
    ("itis_codes", "INTEGER[]"),  # the ITIS codes of the content items, in order
    ("content_texts", "VARCHAR[]"),  # the text items, in order
    ("content_items", "JSON"),  # every item ({"itis": n} or {"text": "..."}), as an array
    ("msg_id_type", "VARCHAR"),  # roadSignID | furtherInfoID
    ("further_info_id", "VARCHAR"),
    ("sign_latitude", "DOUBLE"),  # msgId.roadSignID.position
    ("sign_longitude", "DOUBLE"),
    ("sign_elevation_m", "DOUBLE"),
    ("sign_view_angle", "VARCHAR"),  # HeadingSlice bits
    ("sign_mutcd_code", "VARCHAR"),
    ("sign_crc", "VARCHAR"),
    ("ssp_tim_rights", "INTEGER"),
    ("ssp_location_rights", "INTEGER"),
    ("ssp_msg_rights1", "INTEGER"),
    ("ssp_msg_rights2", "INTEGER"),
    ("url", "VARCHAR"),
    # -- regions: all of them as JSON, the first one flattened ---------------------------------
    ("region_count", "INTEGER"),
    ("region_name", "VARCHAR"),
    ("region_id", "INTEGER"),
    ("region_regulator_id", "INTEGER"),
    ("anchor_latitude", "DOUBLE"),
    ("anchor_longitude", "DOUBLE"),
    ("anchor_elevation_m", "DOUBLE"),
    ("lane_width_cm", "INTEGER"),
    ("directionality", "VARCHAR"),
    ("closed_path", "BOOLEAN"),
    ("direction", "VARCHAR"),  # HeadingSlice bits
    ("description_type", "VARCHAR"),  # path | geometry | oldRegion
    ("path_scale", "INTEGER"),
    ("path_nodes", "JSON"),  # the first region's node list as an array (raw J2735 units)
    ("regions", "JSON"),  # every GeographicalPath of the frame, as an array
    ("data_frame", "JSON"),  # the TravelerDataFrame verbatim
    # -- record metadata ---------------------------------------------------------------------
    ("record_generated_by", "VARCHAR"),
    ("record_type", "VARCHAR"),
    ("log_file_name", "VARCHAR"),
    ("payload_type", "VARCHAR"),
    ("sanitized", "BOOLEAN"),
    ("security_result_code", "VARCHAR"),
    ("valid_signature", "BOOLEAN"),
    ("serial_stream_id", "VARCHAR"),
    ("serial_bundle_size", "BIGINT"),
    ("serial_bundle_id", "BIGINT"),
    ("serial_record_id", "BIGINT"),
    ("serial_number", "BIGINT"),
    ("rmd_latitude", "DOUBLE"),
    ("rmd_longitude", "DOUBLE"),
    ("rmd_elevation_m", "DOUBLE"),
    ("rmd_speed_mps", "DOUBLE"),
    ("rmd_heading_deg", "DOUBLE"),
    ("rx_source", "VARCHAR"),
    ("data_type", "VARCHAR"),
    # first key of payload.data (MessageFrame | AdvisorySituationData), or TravelerInformation
    # when payload.data is the TIM itself
    ("tim_container", "VARCHAR"),
    ("request", "JSON"),  # metadata.request verbatim (ode, sdw, rsus, snmp)
    ("rsus", "JSON"),  # metadata.request.rsus as an array of RSU objects
    ("advisory_situation", "JSON"),  # the AdvisorySituationData envelope, without the TIM itself
    # -- the TMC's deposit request (canonical v2) -----------------------------------------------
    ("ode_packet_id", "VARCHAR"),  # metadata.odePacketID
    ("ode_tim_start_at", "TIMESTAMPTZ"),  # metadata.odeTimStartDateTime
    ("max_duration_min", "INTEGER"),  # metadata.maxDurationTime, minutes
    ("sdw_record_id", "VARCHAR"),  # request.sdw.recordId, or the SDX envelope's recordID
    ("sdw_ttl", "VARCHAR"),  # request.sdw.ttl: oneminute .. oneyear
    ("sdw_nw_latitude", "DOUBLE"),  # service region corners, degrees (request.sdw.serviceRegion,
    ("sdw_nw_longitude", "DOUBLE"),  # or the envelope's serviceRegion in 1e-7 degree, divided out)
    ("sdw_se_latitude", "DOUBLE"),
    ("sdw_se_longitude", "DOUBLE"),
    ("record_hash", "VARCHAR"),  # md5 of the record's JSON: groups frame rows back into records
    ("source_key", "VARCHAR"),
    ("invalid_reason", "VARCHAR"),
    ("warnings", "VARCHAR[]"),
]

#: The 69 WydotTIMFlattener names (data.transportation.gov), then source and date. Region and
#: position fields are in raw J2735 units there, as the portal published them.
WYDOT_TIM_SOCRATA_COLUMNS: list[tuple[str, str]] = [
    ("dataType", "VARCHAR"),
    ("metadata_generatedAt", "TIMESTAMPTZ"),
    ("metadata_generatedBy", "VARCHAR"),
    ("metadata_logFileName", "VARCHAR"),
    ("metadata_schemaVersion", "INTEGER"),
    ("messageId", "INTEGER"),
    ("metadata_sanitized", "BOOLEAN"),
    ("metadata_payloadType", "VARCHAR"),
    ("metadata_recordType", "VARCHAR"),
    ("metadata_serialId_streamId", "VARCHAR"),
    ("metadata_serialId_bundleSize", "BIGINT"),
    ("metadata_serialId_bundleId", "BIGINT"),
    ("metadata_serialId_recordId", "BIGINT"),
    ("metadata_serialId_serialNumber", "BIGINT"),
    ("metadata_receivedAt", "TIMESTAMPTZ"),
    ("metadata_rmd_elevation", "DOUBLE"),
    ("metadata_rmd_heading", "DOUBLE"),
    ("metadata_rmd_longitude", "DOUBLE"),
    ("metadata_rmd_latitude", "DOUBLE"),
    ("metadata_rmd_speed", "DOUBLE"),
    ("metadata_rmd_rxSource", "VARCHAR"),
    ("metadata_request_rsus", "JSON"),
    ("metadata_request_snmp_channel", "BIGINT"),
    ("metadata_request_snmp_deliverystart", "VARCHAR"),
    ("metadata_request_snmp_deliverystop", "VARCHAR"),
    ("metadata_request_snmp_enable", "BIGINT"),
    ("metadata_request_snmp_interval", "BIGINT"),
    ("metadata_request_snmp_mode", "BIGINT"),
    ("metadata_request_snmp_msgid", "BIGINT"),
    ("metadata_request_snmp_rsuid", "VARCHAR"),
    ("metadata_request_snmp_status", "BIGINT"),
    ("travelerdataframe_anchor_elevation", "BIGINT"),
    ("travelerdataframe_anchor_lat", "BIGINT"),
    ("travelerdataframe_anchor_long", "BIGINT"),
    ("travelerdataframe_closedPath", "BOOLEAN"),
    ("travelerdataframe_content_advisory_sequence", "JSON"),
    ("travelerdataframe_desc_nodes", "JSON"),
    ("travelerdataframe_desc_scale", "INTEGER"),
    ("travelerdataframe_direction", "VARCHAR"),
    ("travelerdataframe_directionality", "VARCHAR"),
    ("travelerdataframe_durationTime", "INTEGER"),
    ("travelerdataframe_frameType", "VARCHAR"),
    ("travelerdataframe_id", "INTEGER"),
    ("travelerdataframe_laneWidth", "INTEGER"),
    ("travelerdataframe_msgId_crc", "VARCHAR"),
    ("travelerdataframe_msgId_elevation", "BIGINT"),
    ("travelerdataframe_msgId_lat", "BIGINT"),
    ("travelerdataframe_msgId_long", "BIGINT"),
    ("travelerdataframe_msgId_mutcdCode", "VARCHAR"),
    ("travelerdataframe_msgId_viewAngle", "VARCHAR"),
    ("travelerdataframe_name", "VARCHAR"),
    ("travelerdataframe_priority", "INTEGER"),
    ("travelerdataframe_sspLocationRights", "INTEGER"),
    ("travelerdataframe_sspMsgRights1", "INTEGER"),
    ("travelerdataframe_sspMsgRights2", "INTEGER"),
    ("travelerdataframe_sspTimRights", "INTEGER"),
    ("travelerdataframe_startTime", "INTEGER"),
    ("travelerdataframe_startYear", "INTEGER"),
    ("travelerdataframe_url", "VARCHAR"),
    ("travelerinformation_msgCnt", "INTEGER"),
    ("travelerinformation_packetID", "VARCHAR"),
    ("travelerinformation_timeStamp", "INTEGER"),
    ("travelerinformation_urlB", "VARCHAR"),
    ("metadata_securityResultCode", "VARCHAR"),
    ("travelerdataframe_content_itis", "INTEGER[]"),
    ("travelerdataframe_content_workZone_sequence", "JSON"),
    ("travelerdataframe_content_genericSign_sequence", "JSON"),
    ("travelerdataframe_content_speedLimit_sequence", "JSON"),
    ("travelerdataframe_content_exitService_sequence", "JSON"),
    ("source", "VARCHAR"),
    ("date", "DATE"),
]


def schemas() -> list[MessageSchema]:
    """wydot_backup is the same feed as wydot, kept apart (never mixed)."""
    return [
        wydot_schema(
            s,
            "TIM",
            WYDOT_TIM_READ_COLUMNS,
            WYDOT_TIM_COLUMNS,
            WYDOT_TIM_SOCRATA_COLUMNS,
            canonical_version=3,
            compatible_since=2,
        )
        for s in ("wydot", "wydot_backup")
    ]
