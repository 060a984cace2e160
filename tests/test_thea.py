"""THEA BSM, TIM and SPAT: the real samples, unit conversions and sentinels of the data
dictionaries, Eastern time across DST, list shapes, the views, the replica and the end-to-end
ingest through the local endpoint."""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvcatalog.catalog import Catalog
from cvcatalog.config import ValidationConfig
from cvcatalog.sandbox.replica import iter_replica, seed_replica
from cvcatalog.sandbox.replica_blocks import ReplicaSpec
from cvcatalog.sandbox.replica_thea import et_text, hour_start_ms
from cvcatalog.schemas import SCHEMAS, MessageSchema, list_literal, view_sql
from cvcatalog.transform import ConvertResult, RawFile, convert_partition

SANDBOX = Path(__file__).parent / "fixtures" / "sandbox"
ET = ZoneInfo("America/New_York")
TYPES = ("BSM", "TIM", "SPAT")
KEEP_ALL = ValidationConfig(drop_invalid_records=False)

#: The flattened (Socrata) names of data.transportation.gov, in order (sandbox_exporter col_order).
SOCRATA = {
    "BSM": [
        "dataType", "metadata_generatedAt", "metadata_generatedBy", "metadata_logFileName",
        "metadata_schemaVersion", "metadata_RSUID", "metadata_kind", "metadata_psid",
        "metadata_bsmSource", "metadata_externalID", "coreData_msgCnt", "coreData_id",
        "coreData_secMark", "coreData_position_lat", "coreData_position_long",
        "coreData_elevation", "coreData_accelset_accelYaw", "coreData_accelset_lat",
        "coreData_accelset_long", "coreData_accelset_vert", "coreData_angle",
        "coreData_accuracy_orientation", "coreData_accuracy_semiMajor",
        "coreData_accuracy_semiMinor", "coreData_transmission", "coreData_speed",
        "coreData_heading", "coreData_brakes_wheelBrakes_leftFront",
        "coreData_brakes_wheelBrakes_rightFront", "coreData_brakes_wheelBrakes_unavailable",
        "coreData_brakes_wheelBrakes_leftRear", "coreData_brakes_wheelBrakes_rightRear",
        "coreData_brakes_traction", "coreData_brakes_abs", "coreData_brakes_scs",
        "coreData_brakes_brakeBoost", "coreData_brakes_auxBrakes", "coreData_size",
        "part2_suve_classification", "part2_suve_cd_hpmstype", "part2_suve_cd_role",
        "part2_suve_vd_height", "part2_suve_vd_mass", "part2_suve_vd_bumpers_front",
        "part2_suve_vd_bumpers_rear", "part2_vse_events", "part2_vse_ph_crumbdata",
        "part2_vse_pp_confidence", "part2_vse_pp_radiusofcurve", "part2_vse_lights",
        "coreData_position", "randomNum", "metadata_generatedAt_timeOfDay",
    ],
    "TIM": [
        "dataType", "metadata_generatedAt", "metadata_generatedBy", "metadata_logFileName",
        "metadata_schemaVersion", "metadata_RSUID", "metadata_kind", "metadata_psid",
        "travelerinformation_timeStamp", "travelerinformation_packetID",
        "travelerinformation_urlB", "travelerinformation_msgCnt", "travelerinformation_regional",
        "travelerdataframe_closedPath", "travelerdataframe_anchor_elevation",
        "travelerdataframe_anchor_lat", "travelerdataframe_anchor_long",
        "travelerdataframe_anchor_regional", "travelerdataframe_name",
        "travelerdataframe_laneWidth", "travelerdataframe_directionality",
        "travelerdataframe_desc_nodes", "travelerdataframe_desc_scale",
        "travelerdataframe_direction", "travelerdataframe_id_id", "travelerdataframe_id_region",
        "travelerdataframe_sspMsgRights1", "travelerdataframe_sspMsgRights2",
        "travelerdataframe_startYear", "travelerdataframe_msgId_viewAngle",
        "travelerdataframe_msgId_mutcdCode", "travelerdataframe_msgId_elevation",
        "travelerdataframe_msgId_lat", "travelerdataframe_msgId_long",
        "travelerdataframe_msgId_furtherInfoId", "travelerdataframe_msgId_msgCrc",
        "travelerdataframe_msgId_regional", "travelerdataframe_priority",
        "travelerdataframe_content_advisory_sequence",
        "travelerdataframe_content_exitService_sequence",
        "travelerdataframe_content_genericSign_sequence",
        "travelerdataframe_content_speedLimit_sequence",
        "travelerdataframe_content_workZone_sequence", "travelerdataframe_sspTimRights",
        "travelerdataframe_sspLocationRights", "travelerdataframe_frameType",
        "travelerdataframe_startTime", "travelerdataframe_duratonTime",
        "travelerdataframe_msgId_position", "randomNum", "metadata_generatedAt_timeOfDay",
    ],
    "SPAT": [
        "dataType", "metadata_generatedAt", "metadata_generatedBy", "metadata_logFileName",
        "metadata_schemaVersion", "metadata_RSUID", "metadata_kind", "metadata_psid",
        "metadata_externalID", "payload_data_SPAT_timeStamp", "payload_data_SPAT_name",
        "payload_data_SPAT_regional", "payload_data_SPAT_intersections_IntersectionState_timeStamp",
        "payload_data_SPAT_intersections_IntersectionState_moy",
        "payload_data_SPAT_intersections_IntersectionState_name",
        "payload_data_SPAT_intersections_IntersectionState_id_id",
        "payload_data_SPAT_intersections_IntersectionState_id_region",
        "payload_data_SPAT_intersections_IntersectionState_status",
        "payload_data_SPAT_intersections_IntersectionState_regional",
        "payload_data_SPAT_intersections_IntersectionState_revision",
        "payload_data_SPAT_intersections_IntersectionState_states_MovementState",
        "payload_data_SPAT_intersections_IntersectionState_enabledLanes",
        "payload_data_SPAT_intersections_IntersectionState_maneuverAssistList", "randomNum",
    ],
}  # fmt: skip


# -- helpers ----------------------------------------------------------------------------------


def sample_path(mtype: str) -> Path:
    return SANDBOX / f"thea-filtered-{mtype.lower()}-schemaVersion1.json"


def sample(mtype: str) -> dict[str, Any]:
    return json.loads(sample_path(mtype).read_text())


def schema(mtype: str) -> MessageSchema:
    return SCHEMAS[("thea", mtype)]


def ndjson(path: Path, records: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def utc_ms(*args: int) -> int:
    return round(datetime(*args, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    c = duckdb.connect()
    yield c
    c.close()


def convert(
    con: duckdb.DuckDBPyConnection,
    mtype: str,
    files: list[RawFile],
    out: Path,
    validation: ValidationConfig | None = None,
) -> ConvertResult:
    return convert_partition(
        con, schema(mtype), files, out, validation=validation or ValidationConfig()
    )


def convert_records(
    con: duckdb.DuckDBPyConnection,
    tmp: Path,
    mtype: str,
    records: list[Any],
    validation: ValidationConfig | None = None,
) -> ConvertResult:
    src = ndjson(tmp / "raw" / f"{mtype}.ndjson", records)
    return convert(con, mtype, [RawFile(src, f"thea/{mtype}/k")], tmp / "out" / mtype, validation)


def rows(
    con: duckdb.DuckDBPyConnection, result: ConvertResult, order: str = "generated_at"
) -> list[dict[str, Any]]:
    """Rows as dicts; TIMESTAMPTZ columns as epoch ms (fetching them needs pytz otherwise)."""
    files = list_literal(map(str, result.parquet_files))
    desc = con.execute(f"DESCRIBE SELECT * FROM read_parquet({files})").fetchall()
    items = [f"epoch_ms({n}) AS {n}" if t == "TIMESTAMP WITH TIME ZONE" else n for n, t, *_ in desc]
    cur = con.execute(f"SELECT {', '.join(items)} FROM read_parquet({files}) ORDER BY {order}")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def build_views(
    con: duckdb.DuckDBPyConnection, root: Path, mtype: str, result: ConvertResult
) -> None:
    """Move converted files under a hive path and create the two views over them."""
    hive = root / f"source=thea/message_type={mtype}/year=2019/month=01/day=14"
    hive.mkdir(parents=True, exist_ok=True)
    files = []
    for p in result.parquet_files:
        target = hive / p.name
        shutil.move(p, target)
        files.append(str(target))
    for stmt in view_sql(schema(mtype), files):
        con.execute(stmt)


# -- the real samples -------------------------------------------------------------------------


@pytest.mark.parametrize("mtype", TYPES)
def test_sample_files_convert_as_documents_and_as_ndjson(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, mtype: str
) -> None:
    """The file as published (pretty-printed or one line) and as an NDJSON line: one row each."""
    src = tmp_path / "raw" / sample_path(mtype).name
    src.parent.mkdir()
    shutil.copy(sample_path(mtype), src)
    doc = convert(con, mtype, [RawFile(src, "thea/doc")], tmp_path / "doc")
    line = convert_records(con, tmp_path, mtype, [sample(mtype)] * 2)
    assert (doc.rows, doc.quarantined, doc.schema_versions, doc.unknown_versions) == (1, 0, [1], [])
    # the same record twice: both kept, counted as one duplicate
    assert (line.rows, line.quarantined, line.warnings) == (2, 0, {"duplicate_record": 1})
    a = rows(con, doc)[0]
    for b in rows(con, line):
        assert {k: v for k, v in b.items() if k != "source_key"} == {
            k: v for k, v in a.items() if k != "source_key"
        }


def test_bsm_sample_values_follow_the_dictionary(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    [row] = rows(con, convert_records(con, tmp_path, "BSM", [sample("BSM")]))
    # '2019-01-14 00:20:30.046 [ET]' is EST (UTC-5)
    assert row["generated_at"] == utc_ms(2019, 1, 14, 5, 20, 30, 46000)
    assert row["received_at"] is None
    assert (row["vehicle_id"], row["msg_cnt"], row["sec_mark"]) == ("8290373", 42, 30135)
    assert (row["latitude"], row["longitude"]) == (27.9434229, -82.4556863)  # 1e-7 degree
    assert row["elevation_m"] == -15.7  # 0.1 m
    assert row["speed_mps"] == 25.82  # 1291 x 0.02 m/s
    assert row["heading_deg"] == 68.625  # 5490 x 0.0125 degree
    assert row["accel_long_mps2"] == -0.02  # 0.01 m/s^2
    assert row["accel_lat_mps2"] is None  # 2001: unavailable
    assert row["accel_vert_g"] == 0.98  # 49 x 0.02 G
    assert row["accel_yaw_dps"] == -2.3  # 0.01 degree/s
    assert row["steering_angle_deg"] is None  # 127: unavailable
    assert (row["accuracy_semi_major_m"], row["accuracy_semi_minor_m"]) == (0.2, 0.2)  # 5 cm
    assert row["accuracy_orientation_deg"] == 7905 * 360 / 65535
    assert row["transmission"] == "UNAVAILABLE"
    assert [
        row[f"brakes_{w}"] for w in ("left_front", "right_front", "left_rear", "right_rear")
    ] == [False] * 4
    assert row["brakes_wheel_unavailable"] is False
    assert {row[f"brakes_{b}"] for b in ("traction", "abs", "scs", "boost", "aux")} == {
        "unavailable"
    }
    assert (row["size_width_cm"], row["size_length_cm"]) == (200, 460)
    assert (row["rsu_id"], row["kind"], row["psid"], row["bsm_source"]) == (
        "thea18",
        "in",
        "32",
        "RV",
    )
    assert (row["record_generated_by"], row["log_file_name"]) == ("rsu", "2019_1_14_0_thea18.csv")
    assert (row["external_id"], row["data_type"], row["schema_version"]) == ("NA", "bsm", 1)
    assert (row["vehicle_class"], row["vehicle_hpms_type"], row["vehicle_role"]) == (
        "10",
        "car",
        "basicVehicle",
    )
    assert row["vehicle_height_m"] == 1.5  # 30 x 5 cm
    assert row["vehicle_mass_kg"] == 1700.0  # 34 x 50 kg
    assert (row["bumper_front_m"], row["bumper_rear_m"]) == (0.43, 0.43)  # 0.01 m
    assert row["path_history"][0] == {
        "lat_offset_deg": 965 / 1e7, "lon_offset_deg": 2948 / 1e7,
        "elevation_offset_m": -0.3, "time_offset_s": 1.21,
    }  # fmt: skip
    assert len(row["path_history"]) == 4
    assert (row["path_radius_m"], row["path_confidence_pct"]) == (-607.8, 91.5)
    assert json.loads(row["part_ii"]) == sample("BSM")["payload"]["data"]["partII"]["SEQUENCE"]
    assert (row["invalid_reason"], row["warnings"]) == (None, [])


def test_tim_sample_values_follow_the_dictionary(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    rec = sample("TIM")
    [row] = rows(con, convert_records(con, tmp_path, "TIM", [rec]))
    frame = rec["payload"]["data"]["TravelerInformation"]["dataFrames"]["TravelerDataFrame"]
    assert row["generated_at"] == utc_ms(2021, 3, 3, 10, 12, 32, 565000)
    assert (row["packet_id"], row["msg_cnt"], row["rsu_id"], row["psid"]) == (
        "00000000000E528842", 2, "thea2", "32771",
    )  # fmt: skip
    assert (row["frame_index"], row["frame_count"], row["frame_type"]) == (0, 1, "advisory")
    assert (row["sign_latitude"], row["sign_longitude"], row["sign_elevation_m"]) == (
        27.9554788, -82.4413689, -1.5,
    )  # fmt: skip
    assert (row["anchor_latitude"], row["anchor_longitude"], row["anchor_elevation_m"]) == (
        27.9554788, -82.4413689, -1.5,
    )  # fmt: skip
    assert (row["sign_view_angle"], row["sign_mutcd_code"]) == ("0000001111111100", "warning")
    # startTime 88452 = minute of 2021 (UTC) -> 2021-03-03 10:12; duratonTime 5 minutes
    assert (row["start_year"], row["start_time"], row["duration_min"]) == (2021, 88452, 5)
    assert row["start_at"] == utc_ms(2021, 3, 3, 10, 12)
    assert row["end_at"] == utc_ms(2021, 3, 3, 10, 17)
    assert (row["priority"], row["lane_width_m"], row["directionality"]) == (3, 18.0, "forward")
    assert (row["closed_path"], row["direction"], row["region_count"]) == (
        False,
        "0000001111111100",
        1,
    )
    path = frame["regions"]["GeographicalPath"]["description"]["path"]
    assert len(row["path_nodes_m"]) == len(path["offset"]["xy"]["nodes"]["NodeXY"]) == 38
    assert row["path_nodes_m"][1] == {
        "kind": "node-XY6", "x_m": -49.82, "y_m": -0.4,
        "latitude": None, "longitude": None, "d_elevation_m": 0.0,
    }  # fmt: skip
    assert row["path_nodes_m"][6]["d_elevation_m"] == -0.07
    assert (row["content_type"], row["itis_codes"], row["content_texts"]) == (
        "advisory",
        [1793],
        [],
    )
    assert json.loads(row["data_frame"]) == frame
    assert (row["ssp_tim_rights"], row["ssp_msg_rights1"], row["ssp_msg_rights2"]) == (0, 0, 0)
    assert (row["invalid_reason"], row["warnings"]) == (None, [])


def test_spat_sample_values_follow_the_dictionary(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    rec = sample("SPAT")
    [row] = rows(con, convert_records(con, tmp_path, "SPAT", [rec]))
    assert row["generated_at"] == utc_ms(2019, 1, 14, 5, 0, 0, 35000)
    # SPAT.timeStamp 19020 = minute of 2019 (2019-01-14 05:00 UTC), IntersectionState.timeStamp
    # 34 = ms of that minute
    assert (row["time_stamp"], row["dsecond_ms"]) == (19020, 34)
    assert row["intersection_at"] == utc_ms(2019, 1, 14, 5, 0, 0, 34000)
    assert (row["intersection_id"], row["revision"], row["status"]) == (3150, 0, "0000000000000000")
    assert (row["intersection_index"], row["intersection_count"], row["rsu_id"]) == (0, 1, "thea33")
    states = row["movement_states"]
    assert [m["signal_group"] for m in states] == [10, 9, 4, 2]
    assert [m["events"][0]["event_state"] for m in states] == [
        "stop-And-Remain", "stop-And-Remain", "stop-And-Remain", "protected-Movement-Allowed",
    ]  # fmt: skip
    # TimeMark: tenths of a second after the hour
    assert [m["events"][0]["min_end_time_s"] for m in states] == [20.9, 0.0, 20.9, 14.9]
    assert states[0]["events"][0]["max_end_time_s"] is None
    ist = rec["payload"]["data"]["SPAT"]["intersections"]["IntersectionState"]
    assert json.loads(row["intersection"]) == ist
    assert (row["invalid_reason"], row["warnings"]) == (None, [])


# -- sentinels, validation --------------------------------------------------------------------


def test_bsm_unavailable_values_become_null(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    rec = sample("BSM")
    core = rec["payload"]["data"]["coreData"]
    core.update(elev="-4096", speed="8191", heading="28800", secMark="65535", angle="127")
    core["accelSet"].update(lat="2001", long="2001", vert="-127")
    core["accuracy"].update(semiMajor="255", semiMinor="255", orientation="65535")
    suve = rec["payload"]["data"]["partII"]["SEQUENCE"][1]["partII-Value"]
    suve["SupplementalVehicleExtensions"]["vehicleData"]["mass"] = "255"
    result = convert_records(con, tmp_path, "BSM", [rec])
    assert (result.rows, result.quarantined, result.warnings) == (1, 0, {})
    [row] = rows(con, result)
    for col in (
        "elevation_m", "speed_mps", "heading_deg", "sec_mark", "steering_angle_deg",
        "accel_lat_mps2", "accel_long_mps2", "accel_vert_g", "accuracy_semi_major_m",
        "accuracy_semi_minor_m", "accuracy_orientation_deg", "vehicle_mass_kg",
    ):  # fmt: skip
        assert row[col] is None, col
    assert row["latitude"] == 27.9434229


def test_bsm_validation_mirrors_wydot(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    good = sample("BSM")
    no_id, lat_unavailable, bad_time, far, no_lat = (copy.deepcopy(good) for _ in range(5))
    del no_id["payload"]["data"]["coreData"]["id"]
    lat_unavailable["payload"]["data"]["coreData"]["lat"] = "900000001"
    bad_time["metadata"]["recordGeneratedAt"] = "yesterday [ET]"
    far["payload"]["data"]["coreData"].update(lat="950000000", speed="8200", heading="28801")
    del no_lat["payload"]["data"]["coreData"]["lat"]
    lines = [good, no_id, lat_unavailable, "{broken", bad_time, far, no_lat]
    result = convert_records(con, tmp_path, "BSM", lines)
    assert (result.rows, result.quarantined) == (2, 5)
    assert result.reasons == {
        "missing required field payload.data.coreData.id": 1,
        "unavailable required field payload.data.coreData.lat": 1,
        "missing required field payload.data.coreData.lat": 1,
        "unparseable timestamp": 1,
        "malformed JSON": 1,
    }
    assert result.warnings == {
        "latitude_out_of_range": 1, "speed_out_of_range": 1, "heading_out_of_range": 1,
    }  # fmt: skip
    assert result.quarantine_file is not None
    entries = [json.loads(x) for x in result.quarantine_file.read_text().splitlines()]
    raw = {e["reason"]: e["raw"] for e in entries}
    # quarantined records keep their line as published: every value is still there
    kept = json.loads(raw["missing required field payload.data.coreData.id"])
    assert "id" not in kept["payload"]["data"]["coreData"]  # the line as published
    assert kept["payload"]["data"]["coreData"]["lat"] == "279434229"
    assert kept["payload"]["data"]["partII"] == no_id["payload"]["data"]["partII"]


def test_a_spat_minute_of_the_year_past_its_years_end_is_flagged_not_rolled_over(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """MinuteOfTheYear counts the minutes of one UTC year: 0..525599 (0..527039 in a leap
    year). A minute its year does not have is kept with the warning moy_out_of_range and no
    intersection_at (it used to become a time in the next year), as a millisecond past the
    minute's last (dsecond_out_of_range) is; the last minute of each kind of year is a time."""
    moy, ms = ["moy_out_of_range"], ["dsecond_out_of_range"]
    cases = [
        # generated_at [ET], minute of the year, ms of the minute -> intersection_at, warnings
        ("2019-12-31 18:50:00.000 [ET]", 525599, 500, utc_ms(2019, 12, 31, 23, 59, 0, 500000), []),
        ("2019-12-31 18:50:00.000 [ET]", 525600, 500, None, moy),  # 2019 has no minute 525600
        ("2019-12-31 19:05:00.000 [ET]", 525700, 500, None, moy),  # sent in 2020: 2019's minute
        ("2020-12-31 18:50:00.000 [ET]", 527039, 500, utc_ms(2020, 12, 31, 23, 59, 0, 500000), []),
        ("2020-12-31 19:05:00.000 [ET]", 527039, 500, utc_ms(2020, 12, 31, 23, 59, 0, 500000), []),
        ("2021-12-31 18:50:00.000 [ET]", 526000, 500, None, moy),
        ("2019-06-01 12:00:00.000 [ET]", 600000, 500, None, moy),  # past J2735's range too
        ("2019-12-31 18:50:00.000 [ET]", 525599, 60500, utc_ms(2020, 1, 1, 0, 0, 0, 500000), []),
        ("2019-12-31 18:50:00.000 [ET]", 525599, 61000, None, ms),  # a reserved ms: no time
    ]
    recs = []
    for i, (generated, minute, milli, _, _) in enumerate(cases):
        rec = sample("SPAT")
        rec["metadata"]["recordGeneratedAt"] = generated
        ist = rec["payload"]["data"]["SPAT"]["intersections"]["IntersectionState"]
        ist["moy"], ist["timeStamp"], ist["id"]["id"] = str(minute), str(milli), str(i)
        recs.append(rec)
    result = convert_records(con, tmp_path, "SPAT", recs)
    assert (result.rows, result.quarantined) == (len(cases), 0)  # kept, as out-of-range values
    assert result.warnings == {"moy_out_of_range": 4, "dsecond_out_of_range": 1}
    got = {r["intersection_id"]: r for r in rows(con, result)}
    assert [
        (got[i]["moy"], got[i]["dsecond_ms"], got[i]["intersection_at"], got[i]["warnings"])
        for i in range(len(cases))
    ] == [(minute, milli, at, warned) for _, minute, milli, at, warned in cases]


def test_a_tim_minute_of_the_year_past_its_years_end_is_flagged_not_rolled_over(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """TravelerInformation.timeStamp and a frame's startTime (of its startYear) past their
    year's end: the record is kept, message_at / start_at and end_at are NULL and the warning
    says which (time_stamp_out_of_range, start_time_out_of_range); the last minute of a leap
    year is still a time."""

    def tim(packet: str, generated: str, stamp: int, year: int, start: int) -> dict[str, Any]:
        rec = sample("TIM")
        rec["metadata"]["recordGeneratedAt"] = generated
        ti = rec["payload"]["data"]["TravelerInformation"]
        ti["packetID"], ti["timeStamp"] = packet, str(stamp)
        ti["dataFrames"]["TravelerDataFrame"].update(startYear=str(year), startTime=str(start))
        return rec

    recs = [
        tim("last", "2019-12-31 18:50:00.000 [ET]", 525599, 2019, 525599),
        tim("past", "2019-12-31 18:50:00.000 [ET]", 525600, 2019, 525600),
        tim("leap", "2020-12-31 18:50:00.000 [ET]", 527039, 2020, 527039),
        tim("newyear", "2020-01-01 00:10:00.000 [ET]", 525650, 2019, 527039),
    ]
    result = convert_records(con, tmp_path, "TIM", recs)
    assert (result.rows, result.quarantined) == (4, 0)
    assert result.warnings == {"time_stamp_out_of_range": 2, "start_time_out_of_range": 2}
    got = {r["packet_id"]: r for r in rows(con, result)}
    times = {k: (r["message_at"], r["start_at"], r["end_at"], r["warnings"]) for k, r in got.items()}
    assert times == {
        "last": (
            utc_ms(2019, 12, 31, 23, 59), utc_ms(2019, 12, 31, 23, 59),
            utc_ms(2020, 1, 1, 0, 4), [],
        ),
        "past": (None, None, None, ["start_time_out_of_range", "time_stamp_out_of_range"]),
        "leap": (
            utc_ms(2020, 12, 31, 23, 59), utc_ms(2020, 12, 31, 23, 59),
            utc_ms(2021, 1, 1, 0, 4), [],
        ),
        "newyear": (None, None, None, ["start_time_out_of_range", "time_stamp_out_of_range"]),
    }  # fmt: skip
    assert (got["past"]["time_stamp"], got["past"]["start_time"]) == (525600, 525600)


@pytest.mark.parametrize("mtype", ["TIM", "SPAT"])
def test_an_invalid_multi_row_record_is_one_quarantine_entry(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, mtype: str
) -> None:
    """Records of several frames / intersections: valid ones split, invalid ones stay whole."""
    rec = sample(mtype)
    if mtype == "TIM":
        ti = rec["payload"]["data"]["TravelerInformation"]
        frame = ti["dataFrames"]["TravelerDataFrame"]
        ti["dataFrames"]["TravelerDataFrame"] = [frame, frame, frame]
        bad = copy.deepcopy(rec)
        del bad["payload"]["data"]["TravelerInformation"]["packetID"]
        reason = "missing required field payload.data.TravelerInformation.packetID"
    else:
        spat = rec["payload"]["data"]["SPAT"]
        ist = spat["intersections"]["IntersectionState"]
        spat["intersections"]["IntersectionState"] = [ist, ist, ist]
        bad = copy.deepcopy(rec)
        del bad["payload"]["data"]["SPAT"]["intersections"]["IntersectionState"][1]["id"]
        reason = "missing required field payload.data.SPAT.intersections.IntersectionState.id.id"
    result = convert_records(con, tmp_path, mtype, [rec, bad])
    assert (result.rows, result.quarantined, result.reasons) == (3, 1, {reason: 1})
    index = "frame_index" if mtype == "TIM" else "intersection_index"
    count = "frame_count" if mtype == "TIM" else "intersection_count"
    got = rows(con, result, order=index)
    assert [(r[index], r[count]) for r in got] == [(0, 3), (1, 3), (2, 3)]
    kept = convert_records(con, tmp_path / "keep", mtype, [bad], KEEP_ALL)
    assert (kept.rows, kept.quarantined, kept.kept_invalid) == (1, 0, {reason: 1})
    [row] = rows(con, kept)
    assert (row[index], row[count], row["invalid_reason"]) == (None, 3, reason)


def test_single_objects_and_arrays_are_the_same_lists(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """XML-born JSON: one element is a bare object, several an array; both give lists."""
    bsm = sample("BSM")
    data = bsm["payload"]["data"]
    vse = data["partII"]["SEQUENCE"][0]
    crumbs = vse["partII-Value"]["VehicleSafetyExtensions"]["pathHistory"]["crumbData"]
    crumbs["PathHistoryPoint"] = crumbs["PathHistoryPoint"][0]
    data["partII"]["SEQUENCE"] = vse
    data["coreData"]["size"] = json.dumps({"width": "200", "length": "460"})  # "stringified"
    [b] = rows(con, convert_records(con, tmp_path, "BSM", [bsm]))
    assert len(b["path_history"]) == 1 and b["path_history"][0]["time_offset_s"] == 1.21
    assert json.loads(b["part_ii"]) == [vse] and b["vehicle_hpms_type"] is None
    assert (b["size_width_cm"], b["size_length_cm"]) == (200, 460)

    tim = sample("TIM")
    frame = tim["payload"]["data"]["TravelerInformation"]["dataFrames"]["TravelerDataFrame"]
    frame["content"] = {
        "workZone": {"SEQUENCE": [{"item": {"itis": "1025"}}, {"item": {"text": "LEFT LANE"}}]}
    }
    nodes = frame["regions"]["GeographicalPath"]["description"]["path"]["offset"]["xy"]["nodes"]
    nodes["NodeXY"] = nodes["NodeXY"][1]
    frame["regions"]["GeographicalPath"]["description"]["path"]["scale"] = "1"
    [t] = rows(con, convert_records(con, tmp_path, "TIM", [tim]))
    assert (t["content_type"], t["itis_codes"], t["content_texts"]) == (
        "workZone",
        [1025],
        ["LEFT LANE"],
    )
    assert [(n["x_m"], n["y_m"]) for n in t["path_nodes_m"]] == [(-99.64, -0.8)]  # 2^1 zoom

    spat = sample("SPAT")
    ist = spat["payload"]["data"]["SPAT"]["intersections"]["IntersectionState"]
    movements = ist["states"]["MovementState"]
    movements[0]["state-time-speed"]["MovementEvent"] = [
        {
            "eventState": {"protected-clearance": None},
            "timing": {"minEndTime": "36001", "maxEndTime": "300"},
        },
        {
            "eventState": {"stop-And-Remain": None},
            "timing": {"startTime": "300", "minEndTime": "600"},
        },
    ]
    ist["states"]["MovementState"] = movements[0]
    [s] = rows(con, convert_records(con, tmp_path, "SPAT", [spat]))
    [m] = s["movement_states"]
    assert m["signal_group"] == 10
    assert [
        (e["event_state"], e["start_time_s"], e["min_end_time_s"], e["max_end_time_s"])
        for e in m["events"]
    ] == [
        ("protected-clearance", None, None, 30.0),  # 36001: unknown
        ("stop-And-Remain", 30.0, 60.0, None),
    ]


# -- Eastern time -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-03-10 01:59:59.999 [ET]", (2019, 3, 10, 6, 59, 59, 999000)),  # EST, last ms
        ("2019-03-10 02:30:00.000 [ET]", (2019, 3, 10, 7, 30, 0)),  # no such time: as EST
        ("2019-03-10 03:00:00.000 [ET]", (2019, 3, 10, 7, 0, 0)),  # EDT from here
        ("2019-07-04 12:00:00.000 [ET]", (2019, 7, 4, 16, 0, 0)),
        ("2019-11-03 00:59:59.999 [ET]", (2019, 11, 3, 4, 59, 59, 999000)),  # still EDT
        ("2019-11-03 01:30:00.000 [ET]", (2019, 11, 3, 6, 30, 0)),  # repeated: read as EST
        ("2019-11-03 02:00:00.000 [ET]", (2019, 11, 3, 7, 0, 0)),
        ("2019-12-31 23:59:59.999 [ET]", (2020, 1, 1, 4, 59, 59, 999000)),
    ],
)
def test_eastern_time_becomes_utc_across_dst(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, text: str, expected: tuple[int, ...]
) -> None:
    con.execute("SET TimeZone = 'Asia/Kolkata'")  # the caller's zone must not leak in
    recs = {m: sample(m) for m in TYPES}
    for m in TYPES:
        recs[m]["metadata"]["recordGeneratedAt"] = text
        [row] = rows(con, convert_records(con, tmp_path / m, m, [recs[m]]))
        assert row["generated_at"] == utc_ms(*expected), m
    assert con.execute("SELECT current_setting('TimeZone')").fetchone() == ("Asia/Kolkata",)


# -- views ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mtype", TYPES)
def test_views_have_the_canonical_and_socrata_columns(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, mtype: str
) -> None:
    s = schema(mtype)
    for stmt in view_sql(s, []):  # no data yet: typed, empty
        con.execute(stmt)
    for view, cols in ((s.view_name, s.view_columns), (s.socrata_view_name, s.socrata_columns)):
        described = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {view}").fetchall()]
        expect = con.execute(f"DESCRIBE {s.empty_select_sql(cols)}").fetchall()
        assert described == [(r[0], r[1]) for r in expect]
    assert [n for n, _ in s.socrata_columns] == [*SOCRATA[mtype], "source", "date"]
    assert (s.view_name, s.socrata_view_name) == (
        f"thea_{mtype.lower()}",
        f"thea_{mtype.lower()}_socrata",
    )

    build_views(
        con, tmp_path / "lake", mtype, convert_records(con, tmp_path, mtype, [sample(mtype)])
    )
    assert con.execute(
        f"SELECT source, message_type, date::VARCHAR, count(*) FROM {s.view_name} GROUP BY ALL"
    ).fetchall() == [("thea", mtype, "2019-01-14", 1)]
    cur = con.execute(f'SELECT * EXCLUDE ("metadata_generatedAt") FROM {s.socrata_view_name}')
    row = dict(zip([d[0] for d in cur.description], cur.fetchone() or (), strict=True))
    assert 0 <= row["randomNum"] < 1 and row["metadata_RSUID"].startswith("thea")
    assert row["metadata_psid"] == int(sample(mtype)["metadata"]["psid"])


def test_socrata_values(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    for m in TYPES:
        build_views(con, tmp_path / "lake", m, convert_records(con, tmp_path, m, [sample(m)]))
    bsm = con.execute(
        'SELECT "coreData_position", "coreData_size", "coreData_speed", '
        '"metadata_generatedAt_timeOfDay", "part2_vse_ph_crumbdata", '
        '"coreData_brakes_wheelBrakes_unavailable", epoch_ms("metadata_generatedAt") '
        "FROM thea_bsm_socrata"
    ).fetchone()
    assert bsm is not None
    assert bsm[0] == "POINT (-82.4556863 27.9434229)"
    assert json.loads(bsm[1]) == {"width": 200, "length": 460}
    assert bsm[2] == 25.82
    assert bsm[3] == 0 + 20 / 60 + 30 / 3600  # 00:20:30 Eastern, as the portal computed it
    assert json.loads(bsm[4])[0] == {
        "latOffset": 0.0000965, "lonOffset": 0.0002948, "elevationOffset": -0.3, "timeOffset": 1.21,
    }  # fmt: skip
    assert (bsm[5], bsm[6]) == (False, utc_ms(2019, 1, 14, 5, 20, 30, 46000))
    tim = con.execute(
        'SELECT "travelerdataframe_msgId_position", "travelerdataframe_content_advisory_sequence", '
        '"travelerdataframe_duratonTime", "travelerdataframe_startTime", '
        '"travelerdataframe_desc_nodes" FROM thea_tim_socrata'
    ).fetchone()
    assert tim is not None
    frame = sample("TIM")["payload"]["data"]["TravelerInformation"]["dataFrames"][
        "TravelerDataFrame"
    ]
    assert tim[0] == "POINT (-82.4413689 27.9554788)"
    assert json.loads(tim[1]) == {"item": {"itis": "1793"}}
    assert tim[2:4] == (5, 88452)
    path = frame["regions"]["GeographicalPath"]["description"]["path"]
    assert json.loads(tim[4]) == path["offset"]["xy"]["nodes"]["NodeXY"]
    spat = con.execute(
        "SELECT payload_data_SPAT_intersections_IntersectionState_id_id, "
        "payload_data_SPAT_intersections_IntersectionState_states_MovementState, "
        "payload_data_SPAT_timeStamp FROM thea_spat_socrata"
    ).fetchone()
    assert spat is not None
    ist = sample("SPAT")["payload"]["data"]["SPAT"]["intersections"]["IntersectionState"]
    assert (spat[0], json.loads(spat[1]), spat[2]) == (3150, ist["states"]["MovementState"], 19020)


def test_bsm_shares_the_wydot_columns_by_name_and_type(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    wydot = dict(SCHEMAS[("wydot", "BSM")].canonical_columns)
    thea = dict(schema("BSM").canonical_columns)
    shared = [n for n in wydot if n in thea]
    assert [(n, thea[n]) for n in shared] == [(n, wydot[n]) for n in shared]
    assert {
        "generated_at", "received_at", "vehicle_id", "latitude", "longitude", "elevation_m",
        "speed_mps", "heading_deg", "schema_version", "msg_cnt", "sec_mark", "accel_lat_mps2",
        "accel_long_mps2", "accel_vert_g", "accel_yaw_dps", "accuracy_semi_major_m",
        "accuracy_semi_minor_m", "accuracy_orientation_deg", "transmission",
        "brakes_left_front", "brakes_right_front", "brakes_left_rear", "brakes_right_rear",
        "brakes_wheel_unavailable", "brakes_traction", "brakes_abs", "brakes_scs",
        "brakes_boost", "brakes_aux", "size_width_cm", "size_length_cm", "part_ii",
        "source_key", "invalid_reason", "warnings",
    } <= set(shared)  # fmt: skip

    build_views(
        con, tmp_path / "lake", "BSM", convert_records(con, tmp_path, "BSM", [sample("BSM")])
    )
    w_src = ndjson(
        tmp_path / "w" / "obj",
        [(SANDBOX / "wydot-filtered-bsm-schemaVersion6.json").read_text().replace("\n", " ")],
    )
    w_out = tmp_path / "lake" / "source=wydot/message_type=BSM/year=2018/month=05/day=06"
    w = convert_partition(
        con, SCHEMAS[("wydot", "BSM")], [RawFile(w_src, "w")], w_out, validation=ValidationConfig()
    )
    for stmt in view_sql(SCHEMAS[("wydot", "BSM")], [str(p) for p in w.parquet_files]):
        con.execute(stmt)
    got = con.execute(
        "SELECT epoch_ms(generated_at), vehicle_id, latitude, longitude, speed_mps FROM ("
        "select generated_at, vehicle_id, latitude, longitude, speed_mps from wydot_bsm "
        "union all select generated_at, vehicle_id, latitude, longitude, speed_mps from thea_bsm"
        ") ORDER BY 1"
    ).fetchall()
    assert got == [
        (utc_ms(2018, 5, 6, 20, 26, 28, 690000), "CB950124", 41.2827318, -105.5912184, 7.52),
        (utc_ms(2019, 1, 14, 5, 20, 30, 46000), "8290373", 27.9434229, -82.4556863, 25.82),
    ]
    names = ", ".join(shared)
    assert con.execute(
        f"SELECT count(*) FROM (SELECT {names} FROM wydot_bsm UNION ALL BY NAME SELECT {names} FROM thea_bsm)"
    ).fetchone() == (2,)


# -- the replica ------------------------------------------------------------------------------


def test_replica_records_have_the_real_shape_and_eastern_folders() -> None:
    spec = ReplicaSpec(
        start=date(2019, 3, 10), end=date(2019, 3, 10), sources=("thea",),
        message_types=TYPES, records_per_hour=6, files_per_hour=2, empty_hour_rate=0.0,
    )  # fmt: skip
    hours: dict[str, set[int]] = {m: set() for m in TYPES}
    shapes = {m: _paths(sample(m)) for m in TYPES}
    for obj in iter_replica(spec):
        source, mtype, y, mo, d, hh, name = obj.key.split("/")
        hours[mtype].add(int(hh))
        assert (source, y, mo, d) == ("thea", "2019", "03", "10")
        assert name.startswith(f"usdot-its-cvpilot-thea-{mtype.lower()}-public-1-2019-03-")
        recs = [json.loads(x) for x in obj.body.decode().splitlines()]
        assert len(recs) == obj.records and obj.schema_version == 1
        for rec in recs:
            md = rec["metadata"]
            text = md["recordGeneratedAt"]
            assert text.endswith(" [ET]") and text[:13] == f"2019-03-10 {hh}"
            assert md["logFileName"] == f"2019_3_10_{int(hh)}_{md['RSUID']}.csv"
            assert md["schemaVersion"] == 1 and md["dataType"] == mtype.lower()
            leaves = _leaves(rec)
            assert all(
                isinstance(v, str) or v is None for k, v in leaves if k != "metadata.schemaVersion"
            )
            assert {p for p in _paths(rec)} <= shapes[mtype] | _EXTRA_PATHS, mtype
    # 02:00 does not exist on the spring-forward day
    assert all(h == set(range(24)) - {2} for h in hours.values())
    assert hour_start_ms(date(2019, 3, 10), 2) is None
    assert hour_start_ms(date(2019, 11, 3), 1) == utc_ms(2019, 11, 3, 6)  # the EST occurrence
    assert et_text(utc_ms(2019, 11, 3, 6, 30, 0, 5000)) == "2019-11-03 01:30:00.005 [ET]"


#: Paths the replica writes that the single samples happen not to have.
_EXTRA_PATHS = {
    "payload.data.SPAT.intersections.IntersectionState.states.MovementState.state-time-speed.MovementEvent.eventState.protected-clearance",
    "payload.data.coreData.transmission.forwardGears",
    "payload.data.coreData.brakes.traction.off", "payload.data.coreData.brakes.abs.off",
    "payload.data.coreData.brakes.scs.off", "payload.data.coreData.brakes.brakeBoost.off",
    "payload.data.coreData.brakes.auxBrakes.off",
    "payload.data.partII.SEQUENCE.partII-Value.SupplementalVehicleExtensions.classDetails.role.transit",
    "payload.data.partII.SEQUENCE.partII-Value.SupplementalVehicleExtensions.classDetails.hpmsType.bus",
    "payload.data.TravelerInformation.dataFrames.TravelerDataFrame.content.workZone.SEQUENCE.item.itis",
    "payload.data.TravelerInformation.dataFrames.TravelerDataFrame.content.speedLimit.SEQUENCE.item.itis",
}  # fmt: skip


def _leaves(o: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(o, dict):
        return [x for k, v in o.items() for x in _leaves(v, f"{prefix}{'.' if prefix else ''}{k}")]
    if isinstance(o, list):
        return [x for v in o for x in _leaves(v, prefix)]
    return [(prefix, o)]


def _paths(o: Any) -> set[str]:
    return {k for k, _ in _leaves(o)}


# -- end to end through the local endpoint ----------------------------------------------------


@pytest.mark.parametrize("day", [date(2019, 11, 3)])  # the 25-hour fall-back day
def test_seeded_thea_days_ingest_exactly(s3_client: Any, catalog_dir: Path, day: date) -> None:
    report = seed_replica(
        s3_client, day, day, sources=["thea"], message_types=list(TYPES),
        records_per_hour=8, files_per_hour=1, vehicles=8, malformed_per_day=6, empty_hour_rate=0.1,
    )  # fmt: skip
    cat = Catalog(catalog_dir)
    for mtype in TYPES:
        part = report.partitions[f"thea/{mtype}/{day:%Y/%m/%d}"]
        assert part.records > 0 and part.malformed == 6
        s = cat.ingest("thea", mtype, day, day, timezone="America/New_York", rate_limit=0)
        assert s.ok, s.as_dict()
        assert (s.rows, s.quarantined, s.get_requests) == (
            part.records,
            part.malformed,
            part.objects,
        )
        view = f"thea_{mtype.lower()}"
        sender = "vehicle_id" if mtype == "BSM" else "rsu_id"
        got = cat.query(f"select {sender} as k, count(*) as n from {view} group by 1")
        assert dict(zip(got.k, got.n, strict=True)) == part.vehicles
        span = cat.query(
            f"select strftime(min(generated_at) at time zone 'UTC', '%Y-%m-%dT%H:%M:%S.%g+00:00') as lo, "
            f"strftime(max(generated_at) at time zone 'UTC', '%Y-%m-%dT%H:%M:%S.%g+00:00') as hi, "
            f"count(*) filter (where invalid_reason is not null) as bad, min(date) as d from {view}"
        )
        assert (span.lo[0], span.hi[0], span.bad[0]) == (
            part.first_record_at,
            part.last_record_at,
            0,
        )
        assert span.d[0] == day
        soc = cat.query(f"select count(*) as n from {view}_socrata")
        assert soc.n[0] == part.records
        hours = cat.query(
            f"select hour(timezone('America/New_York', generated_at)) as h, count(*) as n from {view} group by 1"
        )
        assert dict(zip(hours.h, hours.n, strict=True)) == part.hours
    # BSM of both pilots in one query
    mixed = cat.query(
        "select generated_at, vehicle_id, latitude, longitude, speed_mps from wydot_bsm "
        "union all select generated_at, vehicle_id, latitude, longitude, speed_mps from thea_bsm"
    )
    assert len(mixed) == report.partitions[f"thea/BSM/{day:%Y/%m/%d}"].records
    assert mixed.latitude.between(27.9, 28.0).all() and mixed.longitude.between(-82.5, -82.3).all()


# -- property: generated records survive JSON -> Parquet -> view ------------------------------


#: a J2735 raw value: in range, or its sentinel
def raw(lo: int, hi: int, sentinel: int | None = None) -> st.SearchStrategy[int]:
    values = st.integers(lo, hi)
    return values | st.just(sentinel) if sentinel is not None else values


def scaled(value: int, div: float, sentinel: int | None = None) -> float | None:
    return None if value == sentinel else value / div


local_times = st.datetimes(min_value=datetime(2017, 1, 1), max_value=datetime(2030, 12, 31)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
)


def et_utc_ms(naive: datetime) -> int:
    """How the catalog reads Eastern wall time: a repeated hour as its standard-time occurrence."""
    first, second = naive.replace(tzinfo=ET, fold=0), naive.replace(tzinfo=ET, fold=1)
    return round((second if first.utcoffset() != second.utcoffset() else first).timestamp() * 1000)


def exists(naive: datetime) -> bool:
    """False for wall times skipped at the spring-forward change."""
    aware = naive.replace(tzinfo=ET)
    return datetime.fromtimestamp(aware.timestamp(), ET).replace(tzinfo=None) == naive


def et_stamp(naive: datetime) -> str:
    return f"{naive:%Y-%m-%d %H:%M:%S}.{naive.microsecond // 1000:03d} [ET]"


@st.composite
def bsm_case(draw: st.DrawFn, i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    rec = sample("BSM")
    t = draw(local_times.filter(exists))
    rec["metadata"]["recordGeneratedAt"] = et_stamp(t)
    u = {
        "lat": draw(st.integers(-900000000, 900000000)),
        "long": draw(st.integers(-1799999999, 1800000000)),
        "elev": draw(raw(-4095, 61439, -4096)),
        "speed": draw(raw(0, 8190, 8191)),
        "heading": draw(raw(0, 28799, 28800)),
        "secMark": draw(raw(0, 60999, 65535)),
        "msgCnt": draw(st.integers(0, 127)),
        "angle": draw(raw(-126, 126, 127)),
        "alat": draw(raw(-2000, 2000, 2001)),
        "along": draw(raw(-2000, 2000, 2001)),
        "vert": draw(raw(-126, 127, -127)),
        "yaw": draw(st.integers(-32767, 32767)),
        "smaj": draw(raw(0, 254, 255)),
        "smin": draw(raw(0, 254, 255)),
        "orient": draw(raw(0, 65534, 65535)),
        "wheels": draw(st.text("01", min_size=5, max_size=5)),
        "width": draw(st.integers(0, 1023)),
        "length": draw(st.integers(0, 4095)),
    }
    core = rec["payload"]["data"]["coreData"]
    core.update(
        id=f"v{i}", lat=str(u["lat"]), long=str(u["long"]), elev=str(u["elev"]),
        speed=str(u["speed"]), heading=str(u["heading"]), secMark=str(u["secMark"]),
        msgCnt=str(u["msgCnt"]), angle=str(u["angle"]),
        transmission={draw(st.sampled_from(["neutral", "park", "forwardGears", "unavailable"])): None},
        size={"width": str(u["width"]), "length": str(u["length"])},
    )  # fmt: skip
    core["accelSet"] = {
        "long": str(u["along"]),
        "lat": str(u["alat"]),
        "vert": str(u["vert"]),
        "yaw": str(u["yaw"]),
    }
    core["accuracy"] = {
        "semiMajor": str(u["smaj"]),
        "semiMinor": str(u["smin"]),
        "orientation": str(u["orient"]),
    }
    core["brakes"]["wheelBrakes"] = u["wheels"]
    w = u["wheels"]
    expect = {
        "generated_at": et_utc_ms(t), "vehicle_id": f"v{i}",
        "latitude": u["lat"] / 1e7, "longitude": u["long"] / 1e7,
        "elevation_m": scaled(u["elev"], 10, -4096), "speed_mps": scaled(u["speed"], 50, 8191),
        "heading_deg": scaled(u["heading"], 80, 28800),
        "sec_mark": None if u["secMark"] == 65535 else u["secMark"], "msg_cnt": u["msgCnt"],
        "steering_angle_deg": None if u["angle"] == 127 else u["angle"] * 1.5,
        "accel_lat_mps2": scaled(u["alat"], 100, 2001), "accel_long_mps2": scaled(u["along"], 100, 2001),
        "accel_vert_g": scaled(u["vert"], 50, -127), "accel_yaw_dps": u["yaw"] / 100,
        "accuracy_semi_major_m": scaled(u["smaj"], 20, 255), "accuracy_semi_minor_m": scaled(u["smin"], 20, 255),
        "accuracy_orientation_deg": None if u["orient"] == 65535 else u["orient"] * 360 / 65535,
        "transmission": next(iter(core["transmission"])).upper(),
        "brakes_wheel_unavailable": w[0] == "1", "brakes_left_front": w[1] == "1",
        "brakes_left_rear": w[2] == "1", "brakes_right_front": w[3] == "1", "brakes_right_rear": w[4] == "1",
        "size_width_cm": u["width"], "size_length_cm": u["length"],
    }  # fmt: skip
    return rec, expect


@st.composite
def tim_case(draw: st.DrawFn, i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    rec = sample("TIM")
    t = draw(local_times.filter(exists))
    rec["metadata"]["recordGeneratedAt"] = et_stamp(t)
    ti = rec["payload"]["data"]["TravelerInformation"]
    ti["packetID"] = f"P{i}"
    ti["msgCnt"] = str(draw(st.integers(0, 127)))
    n = draw(st.integers(1, 3))
    frames, expect_frames = [], []
    for _ in range(n):
        f = copy.deepcopy(ti["dataFrames"]["TravelerDataFrame"])
        lat, lon = (
            draw(raw(-900000000, 900000000, 900000001)),
            draw(raw(-1799999999, 1800000000, 1800000001)),
        )
        elev, width = draw(raw(-4095, 61439, -4096)), draw(st.integers(0, 32767))
        year, moy, dur = (
            draw(st.integers(2017, 2030)),
            draw(st.integers(0, 525599)),
            draw(st.integers(1, 32000)),
        )
        codes = draw(st.lists(st.integers(0, 65535), min_size=1, max_size=3))
        f["msgId"]["roadSignID"]["position"] = {
            "lat": str(lat),
            "long": str(lon),
            "elevation": str(elev),
        }
        f["regions"]["GeographicalPath"]["laneWidth"] = str(width)
        f.update(startYear=str(year), startTime=str(moy), duratonTime=str(dur))
        items = [{"item": {"itis": str(c)}} for c in codes]
        f["content"] = {"advisory": {"SEQUENCE": items[0] if len(items) == 1 else items}}
        start = datetime(year, 1, 1, tzinfo=UTC) + timedelta(minutes=moy)
        frames.append(f)
        expect_frames.append({
            "sign_latitude": scaled(lat, 1e7, 900000001), "sign_longitude": scaled(lon, 1e7, 1800000001),
            "sign_elevation_m": scaled(elev, 10, -4096), "lane_width_m": width / 100,
            "start_at": round(start.timestamp() * 1000), "duration_min": dur,
            "end_at": None if dur == 32000 else round((start + timedelta(minutes=dur)).timestamp() * 1000),
            "itis_codes": codes,
        })  # fmt: skip
    ti["dataFrames"]["TravelerDataFrame"] = frames[0] if n == 1 else frames
    return rec, {
        "generated_at": et_utc_ms(t),
        "frames": expect_frames,
        "msg_cnt": int(ti["msgCnt"]),
    }


@st.composite
def spat_case(draw: st.DrawFn, i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    rec = sample("SPAT")
    t = draw(local_times.filter(exists))
    rec["metadata"]["recordGeneratedAt"] = et_stamp(t)
    spat = rec["payload"]["data"]["SPAT"]
    ist = spat["intersections"]["IntersectionState"]
    ist["id"]["id"] = str(i)
    utc = datetime.fromtimestamp(et_utc_ms(t) / 1000, UTC)
    moy = (utc - datetime(utc.year, 1, 1, tzinfo=UTC)) // timedelta(minutes=1)
    ms = utc.second * 1000 + utc.microsecond // 1000
    spat["timeStamp"], ist["timeStamp"] = str(moy), str(ms)
    groups = draw(
        st.lists(st.tuples(st.integers(1, 255), raw(0, 36000, 36001)), min_size=1, max_size=6)
    )
    states = [
        {"signalGroup": str(g), "state-time-speed": {"MovementEvent": {
            "eventState": {"stop-And-Remain": None}, "timing": {"minEndTime": str(mark)}}}}
        for g, mark in groups
    ]  # fmt: skip
    ist["states"] = {"MovementState": states[0] if len(states) == 1 else states}
    return rec, {
        "generated_at": et_utc_ms(t), "intersection_id": i, "time_stamp": moy, "dsecond_ms": ms,
        "movements": [(g, None if mark == 36001 else mark / 10) for g, mark in groups],
    }  # fmt: skip


CASES = {"BSM": bsm_case, "TIM": tim_case, "SPAT": spat_case}


@st.composite
def batches(draw: st.DrawFn) -> tuple[str, list[tuple[dict[str, Any], dict[str, Any]]]]:
    mtype = draw(st.sampled_from(TYPES))
    n = draw(st.integers(1, 5))
    return mtype, [draw(CASES[mtype](i)) for i in range(n)]


@pytest.fixture(scope="module")
def shared_con() -> Iterator[duckdb.DuckDBPyConnection]:
    """One connection for every example (views are replaced each time); connecting is slow."""
    c = duckdb.connect()
    yield c
    c.close()


_TIMES = {
    "BSM": "",
    "TIM": ", epoch_ms(start_at) AS start_at, epoch_ms(end_at) AS end_at, "
    "epoch_ms(message_at) AS message_at",
    "SPAT": ", epoch_ms(intersection_at) AS intersection_at",
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches())
def test_generated_records_round_trip(
    shared_con: duckdb.DuckDBPyConnection,
    batch: tuple[str, list[tuple[dict[str, Any], dict[str, Any]]]],
) -> None:
    mtype, cases = batch
    con = shared_con
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        result = convert_records(con, root, mtype, [rec for rec, _ in cases])
        assert result.quarantined == 0
        build_views(con, root / "lake", mtype, result)
        cur = con.execute(
            f"SELECT * REPLACE (epoch_ms(generated_at) AS generated_at{_TIMES[mtype]}) "
            f"FROM {schema(mtype).view_name}"
        )
        names = [d[0] for d in cur.description]
        got = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    assert all(r["source"] == "thea" and r["invalid_reason"] is None for r in got)
    if mtype == "BSM":
        by_id = {r["vehicle_id"]: r for r in got}
        assert len(by_id) == len(cases) == len(got)
        for i, (_, expect) in enumerate(cases):
            row = by_id[f"v{i}"]
            assert {k: row[k] for k in expect} == expect
    elif mtype == "TIM":
        assert len(got) == sum(len(e["frames"]) for _, e in cases)
        for i, (_, expect) in enumerate(cases):
            mine = sorted(
                (r for r in got if r["packet_id"] == f"P{i}"), key=lambda r: r["frame_index"]
            )
            assert [r["frame_index"] for r in mine] == list(range(len(expect["frames"])))
            for row, frame in zip(mine, expect["frames"], strict=True):
                assert {k: row[k] for k in frame} == frame
                assert (row["generated_at"], row["msg_cnt"]) == (
                    expect["generated_at"],
                    expect["msg_cnt"],
                )
                assert row["frame_count"] == len(expect["frames"])
    else:
        by_id = {r["intersection_id"]: r for r in got}
        assert len(by_id) == len(cases) == len(got)
        for i, (_, expect) in enumerate(cases):
            row = by_id[i]
            assert row["generated_at"] == expect["generated_at"]
            # the minute of the year and the ms of the minute give back the generation time
            assert row["intersection_at"] == expect["generated_at"]
            assert (row["time_stamp"], row["dsecond_ms"]) == (
                expect["time_stamp"],
                expect["dsecond_ms"],
            )
            assert [
                (m["signal_group"], m["events"][0]["min_end_time_s"])
                for m in row["movement_states"]
            ] == expect["movements"]
