"""Every ODE output schemaVersion (1-8) of WYDOT BSM and TIM, the TMC's TIMs without a
MessageFrame, and records of a version this cvcatalog does not know.

The fixtures in tests/fixtures/ode/ are small records composed from the jpo-ode output schemas and
test data (tests/fixtures/ode/README.md says which upstream file each was checked against);
versions 3, 5 and 6 are the real samples in tests/fixtures/sandbox/. Expected values below are
read off the fixtures by hand: positions in the TIM are J2735 1e-7 degree and 0.1 m, times of
the year J2735 minutes (2020 and 2024 are leap years).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from cvcatalog.cli.main import app
from cvcatalog.config import ValidationConfig
from cvcatalog.schemas import SCHEMAS, list_literal
from cvcatalog.sources.bucket import BUCKET
from cvcatalog.transform import ConvertResult, RawFile, convert_partition

ODE = Path(__file__).parent / "fixtures" / "ode"
SANDBOX = Path(__file__).parent / "fixtures" / "sandbox"
BSM = SCHEMAS[("wydot", "BSM")]
TIM = SCHEMAS[("wydot", "TIM")]


def fixture(name: str) -> dict[str, Any]:
    path = ODE / f"{name}.json"
    if not path.exists():
        path = SANDBOX / f"{name}.json"
    return json.loads(path.read_text())


def ms(text: str) -> int:
    """Epoch milliseconds, truncated like DuckDB's epoch_ms (microseconds are kept in Parquet)."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    c = duckdb.connect()
    yield c
    c.close()


def convert(
    con: duckdb.DuckDBPyConnection, schema: Any, tmp: Path, records: list[dict[str, Any]]
) -> tuple[ConvertResult, list[dict[str, Any]]]:
    """Records as one NDJSON object -> (result, canonical rows in record and frame order)."""
    src = tmp / "raw" / "obj"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    result = convert_partition(
        con, schema, [RawFile(src, "k")], tmp / "out", validation=ValidationConfig()
    )
    if not result.parquet_files:
        return result, []
    order = "serial_record_id, frame_index" if schema is TIM else "serial_record_id"
    cur = con.execute(
        "SELECT * REPLACE (epoch_ms(generated_at) AS generated_at, "
        "epoch_ms(received_at) AS received_at"
        + (", epoch_ms(start_at) AS start_at, epoch_ms(ode_tim_start_at) AS ode_tim_start_at"
           if schema is TIM else "")
        + f") FROM read_parquet({list_literal(map(str, result.parquet_files))}) ORDER BY {order}"
    )  # fmt: skip
    names = [d[0] for d in cur.description]
    return result, [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def socrata(
    con: duckdb.DuckDBPyConnection, schema: Any, result: ConvertResult
) -> list[dict[str, Any]]:
    files = list_literal(map(str, result.parquet_files))
    con.execute(
        "CREATE OR REPLACE TEMP VIEW frame AS SELECT *, 'wydot' AS source, "
        f"DATE '2025-01-01' AS date FROM read_parquet({files})"
    )
    cur = con.execute(schema.socrata_select_sql("frame"))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# -- BSM: every version ------------------------------------------------------------------------

#: file -> (schemaVersion, generated, received, vehicle id, msgCnt, lat, lon, speed, heading)
BSM_VERSIONS = {
    "wydot-bsm-schemaVersion1": (1, "2017-08-01T17:00:01.123Z", "2017-08-01T17:05:02.456Z",
                                 "A1000001", 1, 41.1234567, -105.7654321, 24.56, 271.5),
    "wydot-bsm-schemaVersion2": (2, "2017-09-20T09:59:58.250Z", "2017-09-20T10:00:00.500Z",
                                 "A2000002", 2, 41.1234567, -105.7654321, 24.56, 271.5),
    "wydot-filtered-bsm-schemaVersion3": (3, "2017-12-05T16:33:58Z", "2017-12-05T17:45:13.736Z",
                                          "5B820000", 38, 41.0997729, -105.1547481, 27.98, 258.6),
    "wydot-bsm-schemaVersion4": (4, "2018-02-01T11:59:59.999Z", "2018-02-01T12:00:10.000Z",
                                 "A4000004", 4, 41.1234567, -105.7654321, 24.56, 271.5),
    "wydot-filtered-bsm-schemaVersion5": (5, "2018-05-06T20:26:28.690Z", "2018-05-09T16:29:30.349Z",
                                          "CB950124", 127, 41.2827318, -105.5912184, 7.52, 82.4375),
    "wydot-filtered-bsm-schemaVersion6": (6, "2018-05-06T20:26:28.690Z", "2018-05-09T16:29:30.349Z",
                                          "CB950124", 127, 41.2827318, -105.5912184, 7.52, 82.4375),
    "wydot-bsm-schemaVersion7": (7, "2024-09-23T14:00:00.500Z", "2024-09-23T14:00:05.123Z",
                                 "A7000007", 7, 41.1234567, -105.7654321, 22.04, 90.0125),
    "wydot-bsm-schemaVersion8": (8, "2025-01-06T18:30:47.250Z", "2025-01-06T18:30:48.095Z",
                                 "A8000008", 8, 40.5659938, -105.0317754, 0.28, 313.25),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BSM_VERSIONS))
def test_bsm_every_schema_version(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, name: str
) -> None:
    version, gen, rec, vid, cnt, lat, lon, speed, heading = BSM_VERSIONS[name]
    result, [row] = convert(con, BSM, tmp_path, [fixture(name)])
    assert (result.quarantined, result.warnings) == (0, {})
    assert result.schema_versions == [version] and result.unknown_versions == []
    assert (row["generated_at"], row["received_at"]) == (ms(gen), ms(rec))
    assert (row["vehicle_id"], row["msg_cnt"], row["latitude"], row["longitude"]) == (
        vid,
        cnt,
        lat,
        lon,
    )
    assert (row["speed_mps"], row["heading_deg"], row["warnings"]) == (speed, heading, [])


def test_bsm_v2_and_v4_metadata(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """v2 named the generator generatedBy and still had validSignature; v4 replaced it with
    securityResultCode, before receivedMessageDetails existed (v5)."""
    _, [v2] = convert(con, BSM, tmp_path / "2", [fixture("wydot-bsm-schemaVersion2")])
    assert (v2["record_generated_by"], v2["valid_signature"], v2["security_result_code"]) == (
        "OBU",
        True,
        None,
    )
    _, [v4] = convert(con, BSM, tmp_path / "4", [fixture("wydot-bsm-schemaVersion4")])
    assert (v4["security_result_code"], v4["bsm_source"], v4["rx_source"]) == ("success", "EV", None)
    assert (v4["serial_bundle_size"], v4["serial_bundle_id"], v4["serial_number"]) == (5, 6, 9)


def test_bsm_v7_v8_metadata_and_core(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    _, [v7] = convert(con, BSM, tmp_path / "7", [fixture("wydot-bsm-schemaVersion7")])
    # receivedMessageDetails numbers arrive as strings
    assert (v7["rmd_latitude"], v7["rmd_speed_mps"], v7["rx_source"]) == (41.123, 24.5, "NA")
    assert (v7["accel_long_mps2"], v7["accel_vert_g"], v7["steering_angle_deg"]) == (-1.25, 0.02, 1.5)
    assert (v7["size_width_cm"], v7["size_length_cm"], v7["transmission"]) == (250, 1650, "FORWARDGEARS")
    _, [v8] = convert(con, BSM, tmp_path / "8", [fixture("wydot-bsm-schemaVersion8")])
    # "unavailable" is no number: NULL, the string itself is not kept
    assert (v8["rmd_latitude"], v8["rmd_heading_deg"], v8["rx_source"]) == (None, None, "RSU")
    assert (v8["elevation_m"], v8["brakes_wheel_unavailable"], v8["brakes_abs"]) == (1440.9, True, "off")
    assert [e["id"] for e in json.loads(v8["part_ii"])] == [
        "VehicleSafetyExtensions",
        "SpecialVehicleExtensions",
        "SupplementalVehicleExtensions",
    ]


@pytest.mark.parametrize(
    ("version", "tr_ssp", "vehalert_ssp", "event_ssp", "trailer_weight", "unit", "pivot"),
    [
        # v7 (J2735 2020): trailers.sspRights, vehicleAlerts.sspRights, vehicleData.trailerWeight
        (7, 3, 1, 2, 18000.0, {"length": 1370, "mass": 32000, "height": 4.1}, 0.5),
        # v8 (J2735 2024): the same fields renamed doNotUse
        (8, 0, 1, 2, 5000.0, {"length": 600, "mass": 64000, "height": 2.0}, 1.0),
    ],
)
def test_bsm_socrata_trailers_and_alerts(
    con: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    version: int,
    tr_ssp: int,
    vehalert_ssp: int,
    event_ssp: int,
    trailer_weight: float,
    unit: dict[str, Any],
    pivot: float,
) -> None:
    result, _ = convert(con, BSM, tmp_path, [fixture(f"wydot-bsm-schemaVersion{version}")])
    [s] = socrata(con, BSM, result)
    assert s["metadata_schemaVersion"] == version
    assert (s["part2_spve_tr_sspRights"], s["part2_spve_vehalert_sspRights"]) == (tr_ssp, vehalert_ssp)
    assert s["part2_spve_vehalert_event_sspRights"] == event_ssp
    assert json.loads(s["part2_spve_vehalert_event_events"])["peEmergencyResponse"] is True
    [got] = json.loads(s["part2_spve_tr_units"])
    assert {k: got[k] for k in unit} == unit
    assert json.loads(s["part2_spve_tr_conn"])["pivotOffset"] == pivot
    assert s["part2_suve_vd_trailerweight"] == trailer_weight
    assert (s["part2_vse_pp_radiusofcurve"], s["part2_vse_pp_confidence"]) == (250.5, 70.0)


def test_bsm_without_a_generation_time_is_quarantined_with_a_reason(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """ODE v8 writes recordGeneratedAt "" when it does not know the time (records received over
    UDP): that is a missing field, not an unparseable timestamp."""
    rec = fixture("wydot-bsm-schemaVersion8")
    rec["metadata"]["recordGeneratedAt"] = ""
    result, got = convert(con, BSM, tmp_path, [rec, fixture("wydot-bsm-schemaVersion8")])
    assert len(got) == 1 and result.reasons == {
        "missing required field metadata.recordGeneratedAt": 1
    }


# -- TIM: every version ------------------------------------------------------------------------

#: file -> (schemaVersion, generated_at, frames, msgCnt, packetID, timeStamp, container)
TIM_VERSIONS = {
    "wydot-tim-schemaVersion1": (1, "2017-08-01T16:00:00.100Z", 1, 11, "000000000000000101", 306240, "MessageFrame"),
    "wydot-tim-schemaVersion2": (2, "2017-09-20T16:00:00.000Z", 1, 12, "000000000000000102", 378240, "MessageFrame"),
    "wydot-filtered-tim-schemaVersion3": (3, "2017-12-01T13:26:24.497Z", 1, 1, "000000000039F63AA6", None, "MessageFrame"),
    "wydot-tim-schemaVersion4": (4, "2018-02-01T16:00:00.000Z", 1, 14, "000000000000000104", 45600, "MessageFrame"),
    "wydot-filtered-tim-schemaVersion5": (5, "2018-05-01T15:56:13.299Z", 1, 1, "000000000000000002", 29507, "MessageFrame"),
    "wydot-filtered-tim-schemaVersion6_single": (6, "2018-12-10T15:00:00.682Z", 1, 1, "300000000000000000", 494820, "AdvisorySituationData"),
    "wydot-tim-tmc-2020": (6, "2020-12-14T23:36:40.965947Z", 2, 3, "9A1F0E2D3C4B5A6978", 502536, "TravelerInformation"),
    "wydot-tim-schemaVersion7": (7, "2024-10-15T16:20:00.125Z", 1, 9, "5F2E4D3C2B1A000000", 415700, "MessageFrame"),
    "wydot-tim-schemaVersion8": (8, "2025-03-03T15:05:00.517Z", 2, 4, "0C1D2E3F4A5B6C7D8E", 88745, "TravelerInformation"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(TIM_VERSIONS))
def test_tim_every_schema_version(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, name: str
) -> None:
    version, gen, frames, cnt, packet, ts, container = TIM_VERSIONS[name]
    result, got = convert(con, TIM, tmp_path, [fixture(name)])
    assert (result.quarantined, result.warnings, len(got)) == (0, {}, frames)
    assert result.schema_versions == [version] and result.unknown_versions == []
    for k, row in enumerate(got):
        assert (row["frame_index"], row["frame_count"], row["schema_version"]) == (k, frames, version)
        assert row["generated_at"] == ms(gen)
        assert (row["msg_cnt"], row["packet_id"], row["time_stamp"]) == (cnt, packet, ts)
        assert (row["tim_container"], row["invalid_reason"], row["warnings"]) == (container, None, [])


def test_tim_v1_v2_v4_metadata(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    _, [v1] = convert(con, TIM, tmp_path / "1", [fixture("wydot-tim-schemaVersion1")])
    assert v1["received_at"] == ms("2017-08-01T16:10:00.200Z")
    assert (v1["start_at"], v1["duration_min"], v1["itis_codes"]) == (
        ms("2017-08-01T16:00:00Z"),
        60,
        [268, 8720],
    )
    _, [v2] = convert(con, TIM, tmp_path / "2", [fixture("wydot-tim-schemaVersion2")])
    assert (v2["record_generated_by"], v2["valid_signature"], v2["received_at"]) == (
        "OBU",
        False,
        ms("2017-09-20T16:00:30Z"),
    )
    _, [v4] = convert(con, TIM, tmp_path / "4", [fixture("wydot-tim-schemaVersion4")])
    assert (v4["security_result_code"], v4["itis_codes"], v4["duration_min"]) == (
        "success",
        [1537, 5906],
        32000,
    )
    for row in (v1, v2, v4):
        assert (row["anchor_latitude"], row["anchor_longitude"], row["anchor_elevation_m"]) == (
            41.1,
            -104.8,
            1800.0,
        )
        assert (row["region_id"], row["lane_width_cm"], row["direction"]) == (2, 3600, "0000000100000000")


def test_tmc_tim_without_a_message_frame(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """Issue 17: a TIM generated by the TMC, payload.data the TravelerInformation itself."""
    result, got = convert(con, TIM, tmp_path, [fixture("wydot-tim-tmc-2020")])
    assert (result.rows, result.quarantined) == (2, 0)
    for row in got:  # the TIM's identity and the SDX deposit on every frame row
        assert (row["record_generated_by"], row["message_id"], row["url_b"]) == ("TMC", None, "null")
        assert row["received_at"] == ms("2020-12-14T23:36:41.012Z")
        assert row["data_type"] == "us.dot.its.jpo.ode.plugin.j2735.travelerinformation.TravelerInformation"
        assert (row["ode_packet_id"], row["max_duration_min"]) == ("9A1F0E2D3C4B5A6978", 32000)
        assert row["ode_tim_start_at"] == ms("2020-12-14T23:36:00Z")
        assert (row["sdw_record_id"], row["sdw_ttl"]) == ("1C2D3E4F", "oneweek")
        assert (row["sdw_nw_latitude"], row["sdw_nw_longitude"]) == (41.8, -107.5)
        assert (row["sdw_se_latitude"], row["sdw_se_longitude"]) == (41.0, -104.1)
        assert json.loads(row["request"])["ode"] == {"verb": "POST", "version": 3}
        assert row["rsus"] is None and row["advisory_situation"] is None
    first, second = got
    # frame 0: regions as a list, a road sign, advisory content as a bare list
    assert (first["frame_type"], first["priority"], first["duration_min"]) == ("advisory", 5, 32000)
    assert (first["start_year"], first["start_time"]) == (2020, 502536)
    assert first["start_at"] == ms("2020-12-14T23:36:00Z")
    assert (first["content_type"], first["itis_codes"], first["content_texts"]) == (
        "advisory",
        [5906, 13570],
        [],
    )
    assert (first["msg_id_type"], first["sign_mutcd_code"], first["sign_view_angle"]) == (
        "roadSignID",
        "warning",
        "1111111111111111",
    )
    assert (first["sign_latitude"], first["sign_longitude"], first["sign_elevation_m"]) == (
        41.2345678,
        -106.7654321,
        2015.0,
    )
    assert (first["ssp_tim_rights"], first["ssp_location_rights"]) == (0, 1)
    assert (first["ssp_msg_rights1"], first["ssp_msg_rights2"]) == (1, 2)
    assert (first["region_count"], first["region_name"], first["lane_width_cm"]) == (
        1,
        "I80_WB_MP300",
        5000,
    )
    assert (first["anchor_latitude"], first["anchor_longitude"], first["anchor_elevation_m"]) == (
        41.2345678,
        -106.7654321,
        2015.0,
    )
    assert (first["directionality"], first["closed_path"], first["direction"]) == (
        "both",
        False,
        "0000000000110000",
    )
    assert json.loads(first["path_nodes"])[1] == {"delta": {"node-LL3": {"lon": -1480, "lat": 310}}}
    # frame 1: regions as {"GeographicalPath": {..}}, furtherInfoID, text in a work zone
    assert (second["frame_type"], second["msg_id_type"], second["further_info_id"]) == (
        "roadSignage",
        "furtherInfoID",
        "0A0B",
    )
    assert second["start_at"] == ms("2020-12-14T23:40:00Z") and second["duration_min"] == 1440
    assert (second["content_type"], second["itis_codes"], second["content_texts"]) == (
        "workZone",
        [1025],
        ["CHAIN LAW"],
    )
    assert (second["region_count"], second["region_name"], second["region_id"]) == (1, "I80_EB", 5)
    assert (second["anchor_latitude"], second["anchor_longitude"], second["anchor_elevation_m"]) == (
        41.1,
        -105.0,
        None,
    )
    assert (second["directionality"], second["direction"], second["path_scale"]) == (
        "forward",
        "1000000000000001",
        2,
    )


def test_tmc_tim_socrata_view_has_the_columns_of_every_tim(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    result, _ = convert(con, TIM, tmp_path, [fixture("wydot-tim-tmc-2020")])
    got = socrata(con, TIM, result)
    assert [list(r) for r in got] == [[c for c, _ in TIM.socrata_columns]] * 2
    first, second = got
    assert (first["metadata_generatedBy"], first["metadata_schemaVersion"]) == ("TMC", 6)
    assert (first["travelerinformation_msgCnt"], first["travelerinformation_timeStamp"]) == (3, 502536)
    assert (first["travelerdataframe_anchor_lat"], first["travelerdataframe_anchor_long"]) == (
        412345678,
        -1067654321,
    )
    assert (first["travelerdataframe_msgId_lat"], first["travelerdataframe_msgId_elevation"]) == (
        412345678,
        20150,
    )
    assert (first["travelerdataframe_sspMsgRights2"], first["travelerdataframe_content_itis"]) == (
        2,
        [5906, 13570],
    )
    assert json.loads(first["travelerdataframe_content_advisory_sequence"]) == [
        {"item": {"itis": 5906}},
        {"item": {"itis": 13570}},
    ]
    assert (second["travelerdataframe_name"], second["travelerdataframe_direction"]) == (
        "I80_EB",
        "1000000000000001",
    )
    assert second["travelerdataframe_content_workZone_sequence"] is not None
    assert (second["travelerdataframe_desc_scale"], second["travelerdataframe_id"]) == (2, 5)


def test_tim_v7_strings_not_used_fields_and_a_path_list(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """v7 (J2735 2020) writes every value as a string, renames the SSP indexes notUsed..notUsed3
    and may wrap description.path in a list."""
    result, [row] = convert(con, TIM, tmp_path, [fixture("wydot-tim-schemaVersion7")])
    assert (row["message_id"], row["frame_type"], row["priority"], row["duration_min"]) == (
        31,
        "advisory",
        6,
        120,
    )
    assert row["start_at"] == ms("2024-10-15T16:20:00Z")
    assert (row["ssp_tim_rights"], row["ssp_location_rights"]) == (1, 2)
    assert (row["ssp_msg_rights1"], row["ssp_msg_rights2"]) == (3, 4)
    assert (row["content_type"], row["itis_codes"]) == ("speedLimit", [268, 12604])
    assert (row["sign_latitude"], row["sign_longitude"], row["sign_elevation_m"]) == (
        41.15,
        -104.9,
        1850.0,
    )
    assert (row["sign_view_angle"], row["sign_mutcd_code"]) == ("0000000000000001", "warning")
    assert (row["region_id"], row["directionality"], row["closed_path"]) == (7, "forward", False)
    assert (row["description_type"], row["path_scale"]) == ("path", 1)
    assert json.loads(row["path_nodes"]) == [
        {"delta": {"node-XY3": {"x": "250", "y": "1800"}}},
        {"delta": {"node-XY3": {"x": "-75", "y": "1650"}}},
    ]
    assert (row["sanitized"], row["serial_record_id"], row["max_duration_min"]) == (False, 7, 120)
    assert [r["rsuIndex"] for r in json.loads(row["rsus"])] == ["12"]
    assert row["sdw_record_id"] is None
    [s] = socrata(con, TIM, result)
    assert (s["messageId"], s["travelerdataframe_desc_scale"]) == (31, 1)
    assert s["metadata_request_snmp_channel"] == 183
    assert len(json.loads(s["travelerdataframe_desc_nodes"])) == 2


def test_tim_v8_j2735_2024(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """v8: no MessageFrame, doNotUse1-4, HeadingSlices as 16 booleans, plain enums."""
    result, got = convert(con, TIM, tmp_path, [fixture("wydot-tim-schemaVersion8")])
    first, second = got
    assert (first["ssp_tim_rights"], first["ssp_location_rights"]) == (1, 2)
    assert (first["ssp_msg_rights1"], first["ssp_msg_rights2"]) == (3, 4)
    # viewAngle all true; direction from000-0to022-5 and from337-5to360-0 true
    assert (first["sign_view_angle"], first["direction"]) == ("1111111111111111", "1000000000000001")
    assert (first["sign_latitude"], first["sign_longitude"], first["sign_elevation_m"]) == (
        40.60476,
        -105.00139,
        None,
    )
    assert (first["lane_width_cm"], first["closed_path"], first["directionality"]) == (32700, False, "both")
    assert (first["start_at"], first["itis_codes"]) == (ms("2025-03-03T15:04:00Z"), [5127])
    assert (second["direction"], second["closed_path"], second["region_count"]) == (
        "0000110000000000",
        True,
        2,
    )
    assert (second["anchor_latitude"], second["anchor_longitude"], second["anchor_elevation_m"]) == (
        41.2,
        -106.0,
        2100.0,
    )
    assert (second["start_at"], second["duration_min"], second["priority"]) == (
        ms("2025-03-03T16:00:00Z"),
        32000,
        7,
    )
    assert (second["content_type"], second["url"]) == ("genericSign", "https://wyoroad.info")
    for row in got:
        assert (row["sdw_record_id"], row["sdw_ttl"], row["sdw_nw_latitude"]) == (
            "7E3A91C4",
            "oneday",
            41.715253,
        )
        assert row["ode_tim_start_at"] == ms("2025-03-03T15:04:00Z")
    # socrata: one row per region, every direction as bits
    rows = socrata(con, TIM, result)
    assert [(r["travelerdataframe_name"], r["travelerdataframe_direction"]) for r in rows] == [
        ("I_I 25_SAT-1CEE1793", "1000000000000001"),
        ("I80_WB", "0000110000000000"),
        ("I80_WB_2", "0000100000000000"),
    ]
    assert [r["travelerdataframe_sspTimRights"] for r in rows] == [1, 0, 0]


def test_sdx_envelope_service_region_on_every_row(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """The v6 SDX deposit sample: request.sdw wins; without it, the envelope's 1e-7 degrees."""
    rec = fixture("wydot-filtered-tim-schemaVersion6_single")
    _, [row] = convert(con, TIM, tmp_path / "a", [rec])
    assert (row["sdw_record_id"], row["sdw_ttl"], row["sdw_se_longitude"]) == (
        "D69A0A12",
        "oneminute",
        -104.620706,
    )
    bare = copy.deepcopy(rec)
    del bare["metadata"]["request"]["sdw"]
    _, [row] = convert(con, TIM, tmp_path / "b", [bare])
    assert (row["sdw_record_id"], row["sdw_ttl"]) == ("D69A0A12", None)
    assert (row["sdw_nw_latitude"], row["sdw_nw_longitude"]) == (41.715253, -106.229851)
    assert (row["sdw_se_latitude"], row["sdw_se_longitude"]) == (40.227193, -104.620706)


def test_ode_request_form_is_not_read_as_j2735(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """The ODE's own request form (OdeTravelerInformationMessage: `dataframes`, degrees) is not a
    J2735 TravelerInformation: quarantined with the usual reason, never misread."""
    rec = fixture("wydot-tim-tmc-2020")
    rec["payload"] = {
        "dataType": "us.dot.its.jpo.ode.plugin.j2735.OdeTravelerInformationMessage",
        "data": {"msgCnt": 1, "packetID": "X", "dataframes": [{"durationTime": 5}]},
    }
    result, got = convert(con, TIM, tmp_path, [rec])
    assert got == [] and result.reasons == {"missing required field payload TravelerInformation": 1}


def test_heading_slice_as_a_number_keeps_its_leading_zeros(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    rec = fixture("wydot-tim-tmc-2020")
    frame = rec["payload"]["data"]["dataFrames"][0]
    frame["regions"][0]["direction"] = 110000  # "0000000000110000" written as a JSON number
    frame["msgId"]["roadSignID"]["viewAngle"] = 1111111111111111
    _, got = convert(con, TIM, tmp_path, [rec])
    assert (got[0]["direction"], got[0]["sign_view_angle"]) == ("0000000000110000", "1111111111111111")


# -- versions this cvcatalog does not know ------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "name", "rows_per_record"),
    [(BSM, "wydot-bsm-schemaVersion8", 1), (TIM, "wydot-tim-schemaVersion8", 2)],
)
def test_unknown_version_is_parsed_flagged_and_never_quarantined(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, schema: Any, name: str, rows_per_record: int
) -> None:
    known = fixture(name)
    v9 = copy.deepcopy(known)
    v9["metadata"]["schemaVersion"] = 9
    v9["metadata"]["someFieldOfTomorrow"] = {"x": [1, 2]}
    v12 = copy.deepcopy(known)
    v12["metadata"]["schemaVersion"] = 12
    result, got = convert(con, schema, tmp_path, [known, v9, v12])
    assert (result.rows, result.quarantined) == (3 * rows_per_record, 0)
    assert result.schema_versions == [8, 9, 12] and result.unknown_versions == [9, 12]
    assert result.warnings == {
        "unknown_schema_version_9": rows_per_record,
        "unknown_schema_version_12": rows_per_record,
    }
    by_version = {r["schema_version"]: r for r in got}
    assert by_version[8]["warnings"] == [] and by_version[9]["warnings"] == ["unknown_schema_version_9"]
    assert by_version[12]["generated_at"] == by_version[8]["generated_at"]
    field = "vehicle_id" if schema is BSM else "packet_id"
    assert {r[field] for r in got} == {by_version[8][field]}


def test_report_validation_counts_unknown_versions(
    s3_client: Any, catalog_dir: Path
) -> None:
    """End to end: objects in the bucket -> ingest -> `cvcatalog report validation`."""
    tim = fixture("wydot-tim-schemaVersion8")
    lines = [tim]
    for version, copies in ((9, 2), (10, 1)):
        for i in range(copies):
            rec = copy.deepcopy(tim)
            rec["metadata"]["schemaVersion"] = version
            rec["metadata"]["serialId"]["recordId"] = 100 * version + i
            lines.append(rec)
    s3_client.put_object(
        Bucket=BUCKET,
        Key="wydot/TIM/2025/03/03/15/wydot-filtered-tim-1741014300000.json",
        Body="".join(json.dumps(r) + "\n" for r in lines).encode(),
    )
    runner = CliRunner()
    r = runner.invoke(app, ["ingest", "--source", "wydot", "--type", "TIM", "--start",
                            "2025-03-03", "--end", "2025-03-03", "--timezone", "UTC",
                            "--catalog", str(catalog_dir), "--rate-limit", "0", "--no-progress"])  # fmt: skip
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["report", "validation", "--catalog", str(catalog_dir), "--format", "json"])
    assert r.exit_code == 0, r.output
    got = {(x["kind"], x["rule"]): x["count"] for x in json.loads(r.stdout)}
    # rows: two TravelerDataFrames per record
    assert got == {("warning", "unknown_schema_version_9"): 4, ("warning", "unknown_schema_version_10"): 2}
    r = runner.invoke(app, ["report", "validation", "--catalog", str(catalog_dir)])
    assert r.exit_code == 0 and "0 quarantined" in r.output
    assert "rows of unknown schema versions (parsed, kept): v9: 4, v10: 2" in r.output
    r = runner.invoke(app, ["query", "select schema_version, count(*) as n from wydot_tim group by 1 order by 1",
                            "--catalog", str(catalog_dir), "--format", "json"])  # fmt: skip
    assert json.loads(r.stdout) == [
        {"schema_version": 8, "n": 2},
        {"schema_version": 9, "n": 4},
        {"schema_version": 10, "n": 2},
    ]


def test_every_known_version_is_documented() -> None:
    text = (Path(__file__).parents[1] / "docs" / "schema.md").read_text()
    for (source, mt), schema in SCHEMAS.items():
        if source == "wydot_backup":
            continue
        versions = ", ".join(str(v) for v in sorted(schema.known_versions))
        assert f"| {source} | {mt} | {versions} |" in text, (source, mt)
    assert BSM.known_versions == TIM.known_versions == frozenset(range(1, 9))


def test_generated_at_utc_microseconds_kept(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    _, got = convert(con, TIM, tmp_path, [fixture("wydot-tim-tmc-2020")])
    (t,) = con.execute(
        "SELECT max(generated_at) FROM read_parquet(?)",
        [str(next((tmp_path / "out").glob("part-*.parquet")))],
    ).fetchone() or (None,)
    assert t == datetime(2020, 12, 14, 23, 36, 40, 965947, tzinfo=UTC)
    assert len(got) == 2
