"""NYCDOT EVENT records: obfuscated events binned by month, weekday and time of day.

An EVENT record documents one warning an Aftermarket Safety Device issued, with the messages the
host vehicle heard around it: ``eventHeader`` plus ``bsmList``, ``mapList``, ``spatList`` and
``timList``. Time and place are obfuscated: there is no absolute timestamp (``eventTimeBin`` is
``YYYY-MM-{MON..SUN|N/A}-{NT|AM|MD|PM|EV|N/A}`` in New York local time), BSM times are seconds
relative to the warning (``T_s``) and positions are metres in a local X/Y/Z frame whose origin is
the host BSM that triggered it (see the NYC CVPD ``DataProcessing.txt``).

Canonical rows: one per event, the header flat (typed), the BSMs as a typed LIST of STRUCT and the
MAP, SPaT and TIM messages as lists of JSON text (their J2735 shapes vary too much to type). Views:
``nycdot_event`` (canonical + hive columns year, month, weekday, time_bin), ``nycdot_event_socrata``
(the NycdotEVENTFlattener columns), and one row per message in ``nycdot_event_bsm``,
``nycdot_event_map``, ``nycdot_event_spat`` and ``nycdot_event_tim``.
"""

from __future__ import annotations

from cvcatalog.schemas.base import MessageSchema, struct_type

#: NYCDOT records carry no schemaVersion. Every published EVENT record follows the one obfuscated
#: format of DataProcessing.txt (NYC CVPD Event Format v1.9/v2.0, ASD firmware 4.2.9 and 4.3+), so
#: the catalog records this constant as their schema_version. Bump it (and add it to
#: known_versions) if a second published format ever appears.
NYCDOT_SCHEMA_VERSION = 1

#: The CV applications (eventHeader.eventType) documented in DataProcessing.txt.
EVENT_TYPES: tuple[str, ...] = (
    "bsw",
    "eebl",
    "fcw",
    "ima",
    "lcw",
    "vtrw",
    "cspdomp",
    "evacinfo",
    "ovcclearancelimit",
    "pedinxwalk",
    "rlvw",
    "spdcomp",
    "spdcompwz",
)

#: eventHeader.parameters, in the NycdotEVENTFlattener order. Which ones appear depends on the
#: event type; all are published as strings ("300"), timeRecordResolution is an enumeration.
PARAMETERS: tuple[str, ...] = (
    "recordingROI",
    "timeRecordBefore",
    "timeRecordFollow",
    "timeRecordResolution",
    "minSpdThreshold",
    "timeToCrash",
    "excessiveCurveSpd",
    "excessiveSpd",
    "excessiveSpdTime",
    "excessiveCurveSpdTime",
    "excessiveZoneSpd",
    "excessiveZoneSpdTime",
    "minCurveSpd",
    "minZoneSpd",
    "stopBarTolerance",
    "yellowDurationTolerance",
    "hardBrakingThreshold",
    "assumedDriverBraking",
    "postedHeightLimit",
    "postedSizeLimit",
    "postedZoneSpeed",
    "regulatorySpeed",
)

_EVENT_HEADER = {
    "locationSource": "VARCHAR",
    "asdFirmwareVersion": "VARCHAR",
    "eventAlertActive": "BOOLEAN",
    "eventAlertSent": "BOOLEAN",
    "eventAlertHeard": "BOOLEAN",
    "hostVehID": "VARCHAR",
    "targetVehID": "VARCHAR",
    "triggerHVSeqNum": "BIGINT",
    "triggerTVSeqNum": "BIGINT",
    "eventType": "VARCHAR",
    # kept verbatim: the set of parameters varies by event type and firmware
    "parameters": "JSON",
    "grpId": "INTEGER",
    "eventStatus": "VARCHAR",
    "eventTimeBin": "VARCHAR",
    "eventLocationBin": "VARCHAR",
    "weatherCondition": "VARCHAR",
    "airTemperature": "INTEGER",
    # "0.00", or "M" when not available
    "precipitation1Hr": "VARCHAR",
    "windSpeed": "INTEGER",
    "speedCondition": "INTEGER",
    "lastPlowed": "INTEGER",
}

_BSM_CORE = {
    "msgCnt": "INTEGER",
    "id": "VARCHAR",
    "accuracy": struct_type(
        {"semiMajor": "INTEGER", "semiMinor": "INTEGER", "orientation": "INTEGER"}
    ),
    "transmission": "VARCHAR",
    "angle": "INTEGER",
    "accelSet": struct_type(
        {"long_mpss": "DOUBLE", "lat_mpss": "DOUBLE", "vert_mpss": "DOUBLE", "yaw_dps": "DOUBLE"}
    ),
    "brakes": struct_type(
        {
            "wheelBrakes": "VARCHAR",
            "traction": "VARCHAR",
            "abs": "VARCHAR",
            "scs": "VARCHAR",
            "brakeBoost": "VARCHAR",
            "auxBrakes": "VARCHAR",
        }
    ),
    "size": struct_type({"width": "INTEGER", "length": "INTEGER"}),
    "X_m": "DOUBLE",
    "Y_m": "DOUBLE",
    "Z_m": "DOUBLE",
    "T_s": "DOUBLE",
    "speed_mps": "DOUBLE",
    "heading_deg": "DOUBLE",
}

_BSM_EVENT = struct_type(
    {
        "eventMsgSeqNum": "BIGINT",
        "bsmRecord": struct_type(
            {
                "msgHeader": struct_type({"myRFLevel": "INTEGER", "authenticated": "BOOLEAN"}),
                # partII stays JSON: a list of {partII-Id, partII-Value} whose content varies
                "bsmMsg": struct_type({"coreData": struct_type(_BSM_CORE), "partII": "JSON"}),
            }
        ),
    }
)

#: The typed bsmList the transform casts to (nycdot_event.sql, `{bsm_list_type}`).
BSM_LIST_TYPE = f"{_BSM_EVENT}[]"

#: read_json types. Every list stays JSON (normally an array; a lone object is one message): a
#: typed bsmList read a lone BSM object as NULL, and the event lost it (flagged no_bsms).
NYCDOT_EVENT_READ_COLUMNS: dict[str, str] = {
    "eventHeader": struct_type(_EVENT_HEADER),
    "bsmList": "JSON",
    "mapList": "JSON",
    "spatList": "JSON",
    "timList": "JSON",
}

#: One BSM of bsm_list (and a row of nycdot_event_bsm). Values are copied, not scaled: X/Y/Z in
#: metres of the event frame, T_s seconds relative to the warning, speed m/s, heading degrees
#: (0 = north), accelerations m/s^2 and deg/s as obfuscated by NYCDOT; accuracy, steering angle
#: and size keep their J2735 units (accuracy 0.05 m and 360/65535 degree units, 255/65535 =
#: unavailable; angle 1.5 degree units, 127 = unavailable; size in cm).
BSM_FIELDS: dict[str, str] = {
    "event_msg_seq_num": "BIGINT",
    "my_rf_level": "INTEGER",
    "authenticated": "BOOLEAN",
    "msg_cnt": "INTEGER",
    "vehicle_id": "VARCHAR",
    "x_m": "DOUBLE",
    "y_m": "DOUBLE",
    "z_m": "DOUBLE",
    "t_s": "DOUBLE",
    "speed_mps": "DOUBLE",
    "heading_deg": "DOUBLE",
    "accel_long_mps2": "DOUBLE",
    "accel_lat_mps2": "DOUBLE",
    "accel_vert_mps2": "DOUBLE",
    "accel_yaw_dps": "DOUBLE",
    "accuracy_semi_major": "INTEGER",
    "accuracy_semi_minor": "INTEGER",
    "accuracy_orientation": "INTEGER",
    "transmission": "VARCHAR",
    "steering_angle": "INTEGER",
    "brakes_wheel_brakes": "VARCHAR",
    "brakes_traction": "VARCHAR",
    "brakes_abs": "VARCHAR",
    "brakes_scs": "VARCHAR",
    "brakes_boost": "VARCHAR",
    "brakes_aux": "VARCHAR",
    "size_width_cm": "INTEGER",
    "size_length_cm": "INTEGER",
    # JSON text (VARCHAR: pyarrow cannot build empty Dask meta for JSON nested in a list)
    "part_ii": "VARCHAR",
}


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


#: Canonical parameter columns: param_<snake name>, numbers as DOUBLE (units depend on the
#: application; see the NYC CVPD Event Format), timeRecordResolution as text.
PARAMETER_COLUMNS: list[tuple[str, str, str]] = [
    (p, "param_" + _snake(p), "VARCHAR" if p == "timeRecordResolution" else "DOUBLE")
    for p in PARAMETERS
]

#: Canonical EVENT columns (one row per event). The partition columns (source, message_type,
#: year, month, weekday, time_bin) come from the hive directories, i.e. the bucket folder.
NYCDOT_EVENT_COLUMNS: list[tuple[str, str]] = [
    ("event_id", "VARCHAR"),
    ("event_type", "VARCHAR"),
    ("event_time_bin", "VARCHAR"),
    ("event_year", "INTEGER"),
    ("event_month", "INTEGER"),
    ("event_weekday", "VARCHAR"),
    ("event_time_of_day", "VARCHAR"),
    ("event_location_bin", "VARCHAR"),
    ("near_rsu", "BOOLEAN"),
    ("borough_bin", "VARCHAR"),
    ("road_type_bin", "VARCHAR"),
    ("event_status", "VARCHAR"),
    ("host_veh_id", "VARCHAR"),
    ("target_veh_id", "VARCHAR"),
    ("trigger_hv_seq_num", "BIGINT"),
    ("trigger_tv_seq_num", "BIGINT"),
    ("event_alert_sent", "BOOLEAN"),
    ("event_alert_active", "BOOLEAN"),
    ("event_alert_heard", "BOOLEAN"),
    ("location_source", "VARCHAR"),
    ("asd_firmware_version", "VARCHAR"),
    ("grp_id", "INTEGER"),
    ("weather_condition", "VARCHAR"),
    ("air_temperature_f", "INTEGER"),
    ("precipitation_1hr", "VARCHAR"),
    ("precipitation_1hr_in", "DOUBLE"),
    ("wind_speed_kt", "INTEGER"),
    ("speed_condition_mph", "INTEGER"),
    ("last_plowed_min", "INTEGER"),
    *[(col, typ) for _, col, typ in PARAMETER_COLUMNS],
    ("parameters", "JSON"),
    ("bsm_count", "INTEGER"),
    ("map_count", "INTEGER"),
    ("spat_count", "INTEGER"),
    ("tim_count", "INTEGER"),
    ("bsm_list", f"{struct_type(BSM_FIELDS)}[]"),
    # one JSON text per message (VARCHAR[], not JSON[]: see part_ii above)
    ("map_list", "VARCHAR[]"),
    ("spat_list", "VARCHAR[]"),
    ("tim_list", "VARCHAR[]"),
    ("schema_version", "INTEGER"),
    ("source_key", "VARCHAR"),
    ("invalid_reason", "VARCHAR"),
    ("warnings", "VARCHAR[]"),
]

#: The 51 NycdotEVENTFlattener names (data.transportation.gov), then source.
NYCDOT_EVENT_SOCRATA_COLUMNS: list[tuple[str, str]] = [
    ("eventHeader_eventTimeBin", "VARCHAR"),
    ("dayOfWeekBin", "VARCHAR"),
    ("timeOfDayBin", "VARCHAR"),
    ("eventHeader_eventLocationBin", "VARCHAR"),
    ("nearRSU", "BOOLEAN"),
    ("bureauBin", "VARCHAR"),
    ("roadTypeBin", "VARCHAR"),
    ("eventHeader_locationSource", "VARCHAR"),
    ("eventHeader_asdFirmwareVersion", "VARCHAR"),
    ("eventHeader_eventAlertActive", "BOOLEAN"),
    ("eventHeader_eventAlertSent", "BOOLEAN"),
    ("eventHeader_eventAlertHeard", "BOOLEAN"),
    ("eventHeader_hostVehID", "VARCHAR"),
    ("eventHeader_targetVehID", "VARCHAR"),
    ("eventHeader_triggerHVSeqNum", "BIGINT"),
    ("eventHeader_triggerTVSeqNum", "BIGINT"),
    ("eventHeader_eventType", "VARCHAR"),
    ("eventHeader_eventStatus", "VARCHAR"),
    ("eventHeader_grpId", "INTEGER"),
    ("eventHeader_weatherCondition", "VARCHAR"),
    ("eventHeader_airTemperature", "INTEGER"),
    ("eventHeader_precipitation1Hr", "VARCHAR"),
    ("eventHeader_windSpeed", "INTEGER"),
    ("eventHeader_speedCondition", "INTEGER"),
    ("eventHeader_lastPlowed", "INTEGER"),
    *[(f"eventHeader_parameters_{p}", "VARCHAR") for p in PARAMETERS],
    ("bsmList", "JSON"),
    ("mapList", "JSON"),
    ("spatList", "JSON"),
    ("timList", "JSON"),
    ("source", "VARCHAR"),
]

#: The hive directories of a bin folder (sources.PartitionKey.hive_values), typed.
NYCDOT_PARTITION_COLUMNS: list[tuple[str, str]] = [
    ("source", "VARCHAR"),
    ("message_type", "VARCHAR"),
    ("year", "INTEGER"),
    ("month", "INTEGER"),
    ("weekday", "VARCHAR"),
    ("time_bin", "VARCHAR"),
]


def schemas() -> list[MessageSchema]:
    return [
        MessageSchema(
            source="nycdot",
            message_type="EVENT",
            canonical_version=1,
            read_columns=NYCDOT_EVENT_READ_COLUMNS,
            # all five NULL is how read_json marks an unreadable line; only eventHeader is
            # required of a readable record (checked in the transform SQL)
            required_top_level=("eventHeader", "bsmList", "mapList", "spatList", "timList"),
            canonical_columns=NYCDOT_EVENT_COLUMNS,
            socrata_columns=NYCDOT_EVENT_SOCRATA_COLUMNS,
            known_versions=frozenset({NYCDOT_SCHEMA_VERSION}),
            transform_sql="nycdot_event.sql",
            view_template="nycdot_event.sql",
            socrata_view_template="nycdot_event_socrata.sql",
            view_name="nycdot_event",
            socrata_view_name="nycdot_event_socrata",
            # no absolute time: events are only binned (year, month, weekday, time of day)
            time_column=None,
            partition_columns=NYCDOT_PARTITION_COLUMNS,
            sql_values={"bsm_list_type": BSM_LIST_TYPE},
            extra_views=(
                ("nycdot_event_bsm", "nycdot_event_bsm.sql"),
                ("nycdot_event_map", "nycdot_event_map.sql"),
                ("nycdot_event_spat", "nycdot_event_spat.sql"),
                ("nycdot_event_tim", "nycdot_event_tim.sql"),
            ),
        )
    ]
