"""WYDOT (and wydot_backup) Basic Safety Messages: ODE output, schemaVersion 1 to 8.

The ODE (usdot-jpo-ode/jpo-ode) numbers its output layout in metadata.schemaVersion:
1 (2017, generatedAt / receivedAt), 2 (Sept. 2017, generatedAt / generatedBy / odeReceivedAt),
3 (Oct. 2017, recordGeneratedAt / recordGeneratedBy), 4 (Jan. 2018, securityResultCode instead of
validSignature), 5 (May 2018, receivedMessageDetails on every record), 6 (Sept. 2018), 7 (Aug. 2024,
metadata.asn1, originIp, odePacketID, maxDurationTime) and 8 (Dec. 2024, J2735 2024). coreData
has the same fields in all of them; partII elements are {"id": <extension>, "value": {..}}, and
J2735 2024 renamed deprecated partII fields `doNotUse*` (SpecialVehicleExtensions.trailers ->
doNotUse, VehicleData.trailerWeight -> doNotUse, ...): the socrata view reads either name.
`WYDOT_VERSIONS` is the set every WYDOT schema knows; another version is parsed for the fields
that are known and flagged (warning unknown_schema_version_<n>), never quarantined for it.
"""

from __future__ import annotations

from cvcatalog.schemas.base import BSM_SHARED_COLUMNS, MessageSchema, struct_type

#: Every ODE output schemaVersion (jpo-ode OdeMsgMetadata, 2017-2024).
WYDOT_VERSIONS: frozenset[int] = frozenset(range(1, 9))

_WYDOT_BSM_METADATA = {
    # schemaVersion 3+ (ODE); v1 used generatedAt/receivedAt instead of the record*/ode* names
    "recordGeneratedAt": "VARCHAR",
    "recordGeneratedBy": "VARCHAR",
    "odeReceivedAt": "VARCHAR",
    "generatedAt": "VARCHAR",
    "generatedBy": "VARCHAR",
    "receivedAt": "VARCHAR",
    "schemaVersion": "INTEGER",
    "logFileName": "VARCHAR",
    "recordType": "VARCHAR",
    "payloadType": "VARCHAR",
    "sanitized": "BOOLEAN",
    "validSignature": "BOOLEAN",
    "securityResultCode": "VARCHAR",
    "bsmSource": "VARCHAR",
    "serialId": struct_type(
        {
            "streamId": "VARCHAR",
            "bundleSize": "BIGINT",
            "bundleId": "BIGINT",
            "recordId": "BIGINT",
            "serialNumber": "BIGINT",
        }
    ),
    "receivedMessageDetails": struct_type(
        {
            # strings in the samples ("0"); VARCHAR also takes numbers verbatim
            "locationData": struct_type(
                {
                    "latitude": "VARCHAR",
                    "longitude": "VARCHAR",
                    "elevation": "VARCHAR",
                    "speed": "VARCHAR",
                    "heading": "VARCHAR",
                }
            ),
            "rxSource": "VARCHAR",
        }
    ),
}

_WYDOT_BSM_CORE = {
    "msgCnt": "INTEGER",
    "id": "VARCHAR",
    "secMark": "INTEGER",
    "position": struct_type({"latitude": "DOUBLE", "longitude": "DOUBLE", "elevation": "DOUBLE"}),
    "accelSet": struct_type(
        {"accelLat": "DOUBLE", "accelLong": "DOUBLE", "accelVert": "DOUBLE", "accelYaw": "DOUBLE"}
    ),
    "accuracy": struct_type(
        {"semiMajor": "DOUBLE", "semiMinor": "DOUBLE", "orientation": "DOUBLE"}
    ),
    "transmission": "VARCHAR",
    "speed": "DOUBLE",
    "heading": "DOUBLE",
    "angle": "DOUBLE",
    "brakes": struct_type(
        {
            "wheelBrakes": struct_type(
                {
                    "leftFront": "BOOLEAN",
                    "rightFront": "BOOLEAN",
                    "unavailable": "BOOLEAN",
                    "leftRear": "BOOLEAN",
                    "rightRear": "BOOLEAN",
                }
            ),
            "traction": "VARCHAR",
            "abs": "VARCHAR",
            "scs": "VARCHAR",
            "brakeBoost": "VARCHAR",
            "auxBrakes": "VARCHAR",
        }
    ),
    "size": struct_type({"width": "INTEGER", "length": "INTEGER"}),
}

WYDOT_BSM_READ_COLUMNS: dict[str, str] = {
    "metadata": struct_type(_WYDOT_BSM_METADATA),
    "payload": struct_type(
        {
            "dataType": "VARCHAR",
            # partII stays JSON: its content varies by extension and it is an array in the
            # samples but may be a single object; nothing is lost either way.
            "data": struct_type({"coreData": struct_type(_WYDOT_BSM_CORE), "partII": "JSON"}),
        }
    ),
}

#: Canonical BSM columns. Units are SI as published by the ODE (degrees, metres, m/s);
#: vehicle size stays in the J2735 centimetres, vertical acceleration in g.
WYDOT_BSM_COLUMNS: list[tuple[str, str]] = [
    *BSM_SHARED_COLUMNS,
    ("record_generated_by", "VARCHAR"),
    ("record_type", "VARCHAR"),
    ("log_file_name", "VARCHAR"),
    ("payload_type", "VARCHAR"),
    ("sanitized", "BOOLEAN"),
    ("security_result_code", "VARCHAR"),
    ("bsm_source", "VARCHAR"),
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
    ("part_ii", "JSON"),
    ("source_key", "VARCHAR"),
    ("invalid_reason", "VARCHAR"),
    ("warnings", "VARCHAR[]"),
]

#: The 69 WydotBSMFlattener names (data.transportation.gov), then source and date.
WYDOT_BSM_SOCRATA_COLUMNS: list[tuple[str, str]] = [
    ("dataType", "VARCHAR"),
    ("metadata_generatedAt", "TIMESTAMPTZ"),
    ("metadata_generatedBy", "VARCHAR"),
    ("metadata_logFileName", "VARCHAR"),
    ("metadata_schemaVersion", "INTEGER"),
    ("metadata_securityResultCode", "VARCHAR"),
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
    ("metadata_rmd_latitude", "DOUBLE"),
    ("metadata_rmd_longitude", "DOUBLE"),
    ("metadata_rmd_speed", "DOUBLE"),
    ("metadata_rmd_rxSource", "VARCHAR"),
    ("metadata_bsmSource", "VARCHAR"),
    ("coreData_msgCnt", "INTEGER"),
    ("coreData_id", "VARCHAR"),
    ("coreData_secMark", "INTEGER"),
    ("coreData_position_lat", "DOUBLE"),
    ("coreData_position_long", "DOUBLE"),
    ("coreData_elevation", "DOUBLE"),
    ("coreData_accelset_accelYaw", "DOUBLE"),
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
    ("part2_suve_cd_hpmstype", "VARCHAR"),
    ("part2_suve_cd_role", "VARCHAR"),
    ("part2_suve_vd_height", "DOUBLE"),
    ("part2_suve_vd_mass", "DOUBLE"),
    ("part2_suve_vd_trailerweight", "DOUBLE"),
    ("part2_vse_events", "JSON"),
    ("part2_vse_ph_crumbdata", "JSON"),
    ("part2_vse_pp_confidence", "DOUBLE"),
    ("part2_vse_pp_radiusofcurve", "DOUBLE"),
    ("part2_vse_lights", "JSON"),
    ("part2_spve_vehalert_sspRights", "BIGINT"),
    ("part2_spve_vehalert_event_sspRights", "BIGINT"),
    ("part2_spve_vehalert_event_events", "JSON"),
    ("part2_spve_vehalert_lightsUse", "VARCHAR"),
    ("part2_spve_vehalert_multi", "VARCHAR"),
    ("part2_spve_vehalert_responseType", "VARCHAR"),
    ("part2_spve_vehalert_sirenUse", "VARCHAR"),
    ("part2_spve_event_desc", "JSON"),
    ("part2_spve_event_extent", "VARCHAR"),
    ("part2_spve_event_heading", "JSON"),
    ("part2_spve_tr_sspRights", "BIGINT"),
    ("part2_spve_tr_conn", "JSON"),
    ("part2_spve_tr_units", "JSON"),
    ("coreData_position", "VARCHAR"),
    ("source", "VARCHAR"),
    ("date", "DATE"),
]


def wydot_schema(
    source: str,
    message_type: str,
    read_columns: dict[str, str],
    columns: list[tuple[str, str]],
    socrata_columns: list[tuple[str, str]],
    canonical_version: int = 1,
    compatible_since: int | None = None,
) -> MessageSchema:
    """A WYDOT-family schema (ODE output); wydot_backup is the same feed, kept apart."""
    name = f"{source}_{message_type.lower()}"
    sql = f"wydot_{message_type.lower()}"
    return MessageSchema(
        source=source,
        message_type=message_type,
        canonical_version=canonical_version,
        compatible_since=compatible_since,
        read_columns=read_columns,
        required_top_level=("metadata", "payload"),
        canonical_columns=columns,
        socrata_columns=socrata_columns,
        known_versions=WYDOT_VERSIONS,
        transform_sql=f"{sql}.sql",
        view_template=f"{sql}.sql",
        socrata_view_template=f"{sql}_socrata.sql",
        view_name=name,
        socrata_view_name=f"{name}_socrata",
    )


def schemas() -> list[MessageSchema]:
    """wydot_backup is the same feed as wydot, kept apart (never mixed)."""
    return [
        wydot_schema(s, "BSM", WYDOT_BSM_READ_COLUMNS, WYDOT_BSM_COLUMNS, WYDOT_BSM_SOCRATA_COLUMNS)
        for s in ("wydot", "wydot_backup")
    ]
