"""THEA (Tampa) BSM, TIM and SPAT, metadata.schemaVersion 1: canonical columns and read types.

What the records look like, and why the schemas are shaped this way:

- Every value arrives as a JSON string in raw J2735 units ("lat": "279434229"), so the read
  types are VARCHAR leaves and the SQL (cvcatalog/sql/transforms/thea_*.sql) try_casts and scales them
  into SI units with the unit and "unavailable" sentinel of the THEA data dictionaries; a
  sentinel becomes NULL. Enumerations arrive as one-key objects ({"unavailable": null}); they are
  read as JSON and become the key's name.
- The records come from XML: a list of one element arrives as a single object, a longer one as
  an array. Such containers are read as JSON and normalised to arrays in SQL.
- metadata.recordGeneratedAt is US Eastern wall time ('2019-01-14 00:20:30.046 [ET]'); it is
  stored as TIMESTAMPTZ (UTC). A wall time repeated at the November DST change is read as the
  second (standard-time) occurrence; the text cannot tell them apart. Minute-of-year fields
  (J2735 MinuteOfTheYear, in UTC) are also turned into TIMESTAMPTZ, in their year: a minute
  the year does not have (past 525599, 527039 in a leap year) or a SPaT millisecond past the
  minute's 60999 is an out-of-range value like any other (kept, with its warning:
  moy_out_of_range, time_stamp_out_of_range, start_time_out_of_range, dsecond_out_of_range)
  and gives a NULL time, never one rolled into the next minute or year.

Grain:

- BSM: one row per record. The columns WYDOT BSM also has keep WYDOT's names and types
  (generated_at ... size_length_cm, record_generated_by, log_file_name, bsm_source, data_type,
  part_ii, source_key, invalid_reason, warnings), so the two union by name; THEA has no receive
  time, so received_at is NULL. part_ii holds the partII SEQUENCE verbatim (as an array); the
  common Part II values are also typed columns.
- TIM: one row per TravelerDataFrame, the grain of the portal's TheaTIMFlattener. The message
  identity (packet_id, msg_cnt, time_stamp, source_key) is on every row, with frame_index
  (0-based, as WYDOT TIM) and frame_count; the raw frame is kept as data_frame (JSON). Names
  follow WYDOT TIM where the meaning is the same.
- SPAT: one row per IntersectionState (intersection_index, 0-based), with its movement states
  as a typed list (timings in seconds) and the raw intersection as JSON; explode with
  unnest(movement_states).

An invalid record (quarantined, or kept with drop_invalid_records = false) is always exactly one
row, so quarantine counts are record counts for every type. A valid record gives one row per
frame / intersection (it must have one; with validation off a record without any is one row).
The sandbox replica always sends one, so its SeedReport.records is the expected row count.
"""

from __future__ import annotations

from cvcatalog.schemas.base import BSM_SHARED_COLUMNS, MessageSchema, struct_type

__all__ = [
    "THEA_BSM_COLUMNS",
    "THEA_BSM_SOCRATA_COLUMNS",
    "THEA_SPAT_COLUMNS",
    "THEA_SPAT_SOCRATA_COLUMNS",
    "THEA_TIM_COLUMNS",
    "THEA_TIM_SOCRATA_COLUMNS",
    "schemas",
]

_V = "VARCHAR"

#: metadata of every THEA type (absent keys read as NULL).
_METADATA = struct_type(
    {
        "schemaVersion": _V,
        "recordGeneratedBy": _V,
        "recordGeneratedAt": _V,
        "logFileName": _V,
        "kind": _V,
        "bsmSource": _V,
        "psid": _V,
        "RSUID": _V,
        "externalID": _V,
        "dataType": _V,
    }
)

_BSM_CORE = {
    "msgCnt": _V,
    "id": _V,
    "secMark": _V,
    "lat": _V,
    "long": _V,
    "elev": _V,
    "accuracy": struct_type({"semiMajor": _V, "semiMinor": _V, "orientation": _V}),
    "transmission": "JSON",
    "speed": _V,
    "heading": _V,
    "angle": _V,
    "accelSet": struct_type({"long": _V, "lat": _V, "vert": _V, "yaw": _V}),
    "brakes": struct_type(
        {
            "wheelBrakes": _V,
            "traction": "JSON",
            "abs": "JSON",
            "scs": "JSON",
            "brakeBoost": "JSON",
            "auxBrakes": "JSON",
        }
    ),
    # an object in the sandbox; the dictionary calls it "stringified", so a string is accepted
    "size": "JSON",
}

THEA_BSM_READ_COLUMNS: dict[str, str] = {
    "metadata": _METADATA,
    "payload": struct_type(
        {"data": struct_type({"coreData": struct_type(_BSM_CORE), "partII": "JSON"})}
    ),
}

THEA_TIM_READ_COLUMNS: dict[str, str] = {
    "metadata": _METADATA,
    "payload": struct_type(
        {
            "data": struct_type(
                {
                    "TravelerInformation": struct_type(
                        {
                            "msgCnt": _V,
                            "timeStamp": _V,
                            "packetID": _V,
                            "urlB": _V,
                            "regional": "JSON",
                            "dataFrames": "JSON",
                        }
                    )
                }
            )
        }
    ),
}

THEA_SPAT_READ_COLUMNS: dict[str, str] = {
    "metadata": _METADATA,
    "payload": struct_type(
        {
            "data": struct_type(
                {
                    "SPAT": struct_type(
                        {"timeStamp": _V, "name": _V, "regional": "JSON", "intersections": "JSON"}
                    )
                }
            )
        }
    ),
}

#: THEA metadata columns, the same for the three types (after the type's leading columns).
_METADATA_COLUMNS: list[tuple[str, str]] = [
    ("record_generated_by", "VARCHAR"),
    ("log_file_name", "VARCHAR"),
    ("rsu_id", "VARCHAR"),
    ("kind", "VARCHAR"),
    ("psid", "VARCHAR"),
    ("external_id", "VARCHAR"),
    ("data_type", "VARCHAR"),
]

_TAIL: list[tuple[str, str]] = [
    ("source_key", "VARCHAR"),
    ("invalid_reason", "VARCHAR"),
    ("warnings", "VARCHAR[]"),
]

#: Canonical THEA BSM columns. Everything up to part_ii has the WYDOT BSM name and type, in
#: WYDOT's order. Units: degrees, metres, m/s, m/s^2, degrees/s; accel_vert_g in g (the
#: dictionary's 0.02 G steps), vehicle size in cm as in J2735.
THEA_BSM_COLUMNS: list[tuple[str, str]] = [
    *BSM_SHARED_COLUMNS,  # received_at is always NULL: THEA records carry no receive time
    ("record_generated_by", "VARCHAR"),
    ("log_file_name", "VARCHAR"),
    ("bsm_source", "VARCHAR"),
    ("data_type", "VARCHAR"),
    ("part_ii", "JSON"),
    # THEA only
    ("rsu_id", "VARCHAR"),
    ("kind", "VARCHAR"),
    ("psid", "VARCHAR"),
    ("external_id", "VARCHAR"),
    ("vehicle_class", "VARCHAR"),
    ("vehicle_hpms_type", "VARCHAR"),
    ("vehicle_role", "VARCHAR"),
    ("vehicle_height_m", "DOUBLE"),
    ("vehicle_mass_kg", "DOUBLE"),
    ("bumper_front_m", "DOUBLE"),
    ("bumper_rear_m", "DOUBLE"),
    ("vehicle_events", "VARCHAR"),
    ("exterior_lights", "VARCHAR"),
    (
        "path_history",
        "STRUCT(lat_offset_deg DOUBLE, lon_offset_deg DOUBLE, elevation_offset_m DOUBLE, "
        "time_offset_s DOUBLE)[]",
    ),
    ("path_radius_m", "DOUBLE"),
    ("path_confidence_pct", "DOUBLE"),
    *_TAIL,
]

#: One row per TravelerDataFrame; see the module docstring.
THEA_TIM_COLUMNS: list[tuple[str, str]] = [
    ("generated_at", "TIMESTAMPTZ"),
    ("schema_version", "INTEGER"),
    *_METADATA_COLUMNS,
    ("msg_cnt", "INTEGER"),
    ("packet_id", "VARCHAR"),
    ("url_b", "VARCHAR"),
    ("time_stamp", "INTEGER"),
    ("message_at", "TIMESTAMPTZ"),
    ("regional", "JSON"),
    ("frame_index", "INTEGER"),
    ("frame_count", "INTEGER"),
    ("frame_type", "VARCHAR"),
    ("ssp_tim_rights", "INTEGER"),
    ("ssp_location_rights", "INTEGER"),
    ("ssp_msg_rights1", "INTEGER"),
    ("ssp_msg_rights2", "INTEGER"),
    ("msg_id_type", "VARCHAR"),
    ("further_info_id", "VARCHAR"),
    ("sign_latitude", "DOUBLE"),
    ("sign_longitude", "DOUBLE"),
    ("sign_elevation_m", "DOUBLE"),
    ("sign_view_angle", "VARCHAR"),
    ("sign_mutcd_code", "VARCHAR"),
    ("sign_crc", "VARCHAR"),
    ("start_year", "INTEGER"),
    ("start_time", "INTEGER"),
    ("start_at", "TIMESTAMPTZ"),
    ("duration_min", "INTEGER"),
    ("end_at", "TIMESTAMPTZ"),
    ("priority", "INTEGER"),
    ("url", "VARCHAR"),
    ("region_count", "INTEGER"),
    ("region_name", "VARCHAR"),
    ("region_id", "INTEGER"),
    ("region_regulator_id", "INTEGER"),
    ("anchor_latitude", "DOUBLE"),
    ("anchor_longitude", "DOUBLE"),
    ("anchor_elevation_m", "DOUBLE"),
    ("lane_width_m", "DOUBLE"),
    ("directionality", "VARCHAR"),
    ("closed_path", "BOOLEAN"),
    ("direction", "VARCHAR"),
    ("path_scale", "INTEGER"),
    (
        "path_nodes_m",
        "STRUCT(kind VARCHAR, x_m DOUBLE, y_m DOUBLE, latitude DOUBLE, longitude DOUBLE, "
        "d_elevation_m DOUBLE)[]",
    ),
    ("content_type", "VARCHAR"),
    ("itis_codes", "INTEGER[]"),
    ("content_texts", "VARCHAR[]"),
    ("data_frame", "JSON"),
    *_TAIL,
]

_MOVEMENT_EVENT = (
    "STRUCT(event_state VARCHAR, start_time_s DOUBLE, min_end_time_s DOUBLE, "
    "max_end_time_s DOUBLE, likely_time_s DOUBLE, confidence INTEGER, next_time_s DOUBLE)"
)

#: One row per IntersectionState; see the module docstring.
THEA_SPAT_COLUMNS: list[tuple[str, str]] = [
    ("generated_at", "TIMESTAMPTZ"),
    ("schema_version", "INTEGER"),
    *_METADATA_COLUMNS,
    ("time_stamp", "INTEGER"),
    ("spat_name", "VARCHAR"),
    ("regional", "JSON"),
    ("intersection_index", "INTEGER"),
    ("intersection_count", "INTEGER"),
    ("intersection_id", "INTEGER"),
    ("intersection_region", "INTEGER"),
    ("intersection_name", "VARCHAR"),
    ("revision", "INTEGER"),
    ("status", "VARCHAR"),
    ("moy", "INTEGER"),
    ("dsecond_ms", "INTEGER"),
    ("intersection_at", "TIMESTAMPTZ"),
    (
        "movement_states",
        f"STRUCT(signal_group INTEGER, movement_name VARCHAR, events {_MOVEMENT_EVENT}[])[]",
    ),
    ("intersection", "JSON"),
    *_TAIL,
]

_SOCRATA_META: list[tuple[str, str]] = [
    ("dataType", "VARCHAR"),
    ("metadata_generatedAt", "TIMESTAMPTZ"),
    ("metadata_generatedBy", "VARCHAR"),
    ("metadata_logFileName", "VARCHAR"),
    ("metadata_schemaVersion", "INTEGER"),
    ("metadata_RSUID", "VARCHAR"),
    ("metadata_kind", "VARCHAR"),
    ("metadata_psid", "BIGINT"),
]

_SOCRATA_ENDING: list[tuple[str, str]] = [
    ("randomNum", "DOUBLE"),
    ("metadata_generatedAt_timeOfDay", "DOUBLE"),
    ("source", "VARCHAR"),
    ("date", "DATE"),
]

#: The 53 TheaBSMFlattener names (data.transportation.gov), then source and date.
THEA_BSM_SOCRATA_COLUMNS: list[tuple[str, str]] = [
    *_SOCRATA_META,
    ("metadata_bsmSource", "VARCHAR"),
    ("metadata_externalID", "VARCHAR"),
    ("coreData_msgCnt", "INTEGER"),
    ("coreData_id", "VARCHAR"),
    ("coreData_secMark", "INTEGER"),
    ("coreData_position_lat", "DOUBLE"),
    ("coreData_position_long", "DOUBLE"),
    ("coreData_elevation", "DOUBLE"),
    ("coreData_accelset_accelYaw", "DOUBLE"),
    ("coreData_accelset_lat", "DOUBLE"),
    ("coreData_accelset_long", "DOUBLE"),
    ("coreData_accelset_vert", "DOUBLE"),
    ("coreData_angle", "DOUBLE"),
    ("coreData_accuracy_orientation", "DOUBLE"),
    ("coreData_accuracy_semiMajor", "DOUBLE"),
    ("coreData_accuracy_semiMinor", "DOUBLE"),
    ("coreData_transmission", "VARCHAR"),
    ("coreData_speed", "DOUBLE"),
    ("coreData_heading", "DOUBLE"),
    ("coreData_brakes_wheelBrakes_leftFront", "BOOLEAN"),
    ("coreData_brakes_wheelBrakes_rightFront", "BOOLEAN"),
    ("coreData_brakes_wheelBrakes_unavailable", "BOOLEAN"),
    ("coreData_brakes_wheelBrakes_leftRear", "BOOLEAN"),
    ("coreData_brakes_wheelBrakes_rightRear", "BOOLEAN"),
    ("coreData_brakes_traction", "VARCHAR"),
    ("coreData_brakes_abs", "VARCHAR"),
    ("coreData_brakes_scs", "VARCHAR"),
    ("coreData_brakes_brakeBoost", "VARCHAR"),
    ("coreData_brakes_auxBrakes", "VARCHAR"),
    ("coreData_size", "JSON"),
    ("part2_suve_classification", "VARCHAR"),
    ("part2_suve_cd_hpmstype", "VARCHAR"),
    ("part2_suve_cd_role", "VARCHAR"),
    ("part2_suve_vd_height", "DOUBLE"),
    ("part2_suve_vd_mass", "DOUBLE"),
    ("part2_suve_vd_bumpers_front", "DOUBLE"),
    ("part2_suve_vd_bumpers_rear", "DOUBLE"),
    ("part2_vse_events", "VARCHAR"),
    ("part2_vse_ph_crumbdata", "JSON"),
    ("part2_vse_pp_confidence", "DOUBLE"),
    ("part2_vse_pp_radiusofcurve", "DOUBLE"),
    ("part2_vse_lights", "VARCHAR"),
    ("coreData_position", "VARCHAR"),
    *_SOCRATA_ENDING,
]

#: The 51 TheaTIMFlattener names, then source and date.
THEA_TIM_SOCRATA_COLUMNS: list[tuple[str, str]] = [
    *_SOCRATA_META,
    ("travelerinformation_timeStamp", "INTEGER"),
    ("travelerinformation_packetID", "VARCHAR"),
    ("travelerinformation_urlB", "VARCHAR"),
    ("travelerinformation_msgCnt", "INTEGER"),
    ("travelerinformation_regional", "JSON"),
    ("travelerdataframe_closedPath", "BOOLEAN"),
    ("travelerdataframe_anchor_elevation", "DOUBLE"),
    ("travelerdataframe_anchor_lat", "DOUBLE"),
    ("travelerdataframe_anchor_long", "DOUBLE"),
    ("travelerdataframe_anchor_regional", "JSON"),
    ("travelerdataframe_name", "VARCHAR"),
    ("travelerdataframe_laneWidth", "DOUBLE"),
    ("travelerdataframe_directionality", "VARCHAR"),
    ("travelerdataframe_desc_nodes", "JSON"),
    ("travelerdataframe_desc_scale", "INTEGER"),
    ("travelerdataframe_direction", "VARCHAR"),
    ("travelerdataframe_id_id", "INTEGER"),
    ("travelerdataframe_id_region", "INTEGER"),
    ("travelerdataframe_sspMsgRights1", "INTEGER"),
    ("travelerdataframe_sspMsgRights2", "INTEGER"),
    ("travelerdataframe_startYear", "INTEGER"),
    ("travelerdataframe_msgId_viewAngle", "VARCHAR"),
    ("travelerdataframe_msgId_mutcdCode", "VARCHAR"),
    ("travelerdataframe_msgId_elevation", "DOUBLE"),
    ("travelerdataframe_msgId_lat", "DOUBLE"),
    ("travelerdataframe_msgId_long", "DOUBLE"),
    ("travelerdataframe_msgId_furtherInfoId", "VARCHAR"),
    ("travelerdataframe_msgId_msgCrc", "VARCHAR"),
    ("travelerdataframe_msgId_regional", "JSON"),
    ("travelerdataframe_priority", "INTEGER"),
    ("travelerdataframe_content_advisory_sequence", "JSON"),
    ("travelerdataframe_content_exitService_sequence", "JSON"),
    ("travelerdataframe_content_genericSign_sequence", "JSON"),
    ("travelerdataframe_content_speedLimit_sequence", "JSON"),
    ("travelerdataframe_content_workZone_sequence", "JSON"),
    ("travelerdataframe_sspTimRights", "INTEGER"),
    ("travelerdataframe_sspLocationRights", "INTEGER"),
    ("travelerdataframe_frameType", "VARCHAR"),
    ("travelerdataframe_startTime", "INTEGER"),
    ("travelerdataframe_duratonTime", "INTEGER"),
    ("travelerdataframe_msgId_position", "VARCHAR"),
    *_SOCRATA_ENDING,
]

#: The 24 TheaSPATFlattener names, then source and date.
THEA_SPAT_SOCRATA_COLUMNS: list[tuple[str, str]] = [
    *_SOCRATA_META,
    ("metadata_externalID", "VARCHAR"),
    ("payload_data_SPAT_timeStamp", "INTEGER"),
    ("payload_data_SPAT_name", "VARCHAR"),
    ("payload_data_SPAT_regional", "JSON"),
    ("payload_data_SPAT_intersections_IntersectionState_timeStamp", "INTEGER"),
    ("payload_data_SPAT_intersections_IntersectionState_moy", "INTEGER"),
    ("payload_data_SPAT_intersections_IntersectionState_name", "VARCHAR"),
    ("payload_data_SPAT_intersections_IntersectionState_id_id", "INTEGER"),
    ("payload_data_SPAT_intersections_IntersectionState_id_region", "INTEGER"),
    ("payload_data_SPAT_intersections_IntersectionState_status", "VARCHAR"),
    ("payload_data_SPAT_intersections_IntersectionState_regional", "JSON"),
    ("payload_data_SPAT_intersections_IntersectionState_revision", "INTEGER"),
    ("payload_data_SPAT_intersections_IntersectionState_states_MovementState", "JSON"),
    ("payload_data_SPAT_intersections_IntersectionState_enabledLanes", "JSON"),
    ("payload_data_SPAT_intersections_IntersectionState_maneuverAssistList", "JSON"),
    ("randomNum", "DOUBLE"),
    ("source", "VARCHAR"),
    ("date", "DATE"),
]


def _thea(
    message_type: str,
    read_columns: dict[str, str],
    columns: list[tuple[str, str]],
    socrata: list[tuple[str, str]],
) -> MessageSchema:
    name = f"thea_{message_type.lower()}"
    return MessageSchema(
        source="thea",
        message_type=message_type,
        canonical_version=1,
        read_columns=read_columns,
        required_top_level=("metadata", "payload"),
        canonical_columns=columns,
        socrata_columns=socrata,
        known_versions=frozenset({1}),
        transform_sql=f"{name}.sql",
        view_template=f"{name}.sql",
        socrata_view_template=f"{name}_socrata.sql",
        view_name=name,
        socrata_view_name=f"{name}_socrata",
    )


def schemas() -> list[MessageSchema]:
    """THEA BSM, TIM and SPAT (THEA publishes only metadata.schemaVersion 1)."""
    return [
        _thea("BSM", THEA_BSM_READ_COLUMNS, THEA_BSM_COLUMNS, THEA_BSM_SOCRATA_COLUMNS),
        _thea("TIM", THEA_TIM_READ_COLUMNS, THEA_TIM_COLUMNS, THEA_TIM_SOCRATA_COLUMNS),
        _thea("SPAT", THEA_SPAT_READ_COLUMNS, THEA_SPAT_COLUMNS, THEA_SPAT_SOCRATA_COLUMNS),
    ]
