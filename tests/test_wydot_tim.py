"""WYDOT TIM: the real samples, every variant shape, the socrata names, the replica, end to end.

Grain: one canonical row per TravelerDataFrame (a TIM without frames: one row). Row counts of the
samples were counted by hand: v3, v5 and v6_single hold one TravelerDataFrame each, v6_multi two
(each with two GeographicalPath regions, so four socrata rows).
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvcatalog.catalog import Catalog
from cvcatalog.config import ValidationConfig
from cvcatalog.sandbox import replica_wydot_tim as rt
from cvcatalog.sandbox.replica import iter_replica, seed_replica
from cvcatalog.sandbox.replica_blocks import ReplicaSpec
from cvcatalog.schemas import SCHEMAS, list_literal, quote_literal, view_sql
from cvcatalog.transform import ConvertResult, RawFile, convert_partition

SANDBOX = Path(__file__).parent / "fixtures" / "sandbox"
SCHEMA = SCHEMAS[("wydot", "TIM")]
SAMPLES = ["3", "5", "6_single", "6_multi"]
#: TravelerDataFrames per sample, counted by hand in the files
FRAMES = {"3": 1, "5": 1, "6_single": 1, "6_multi": 2}
KEEP_ALL = ValidationConfig(drop_invalid_records=False)

#: The WydotTIMFlattener column list of data.transportation.gov, in order.
SOCRATA_69 = [
    "dataType",
    "metadata_generatedAt",
    "metadata_generatedBy",
    "metadata_logFileName",
    "metadata_schemaVersion",
    "messageId",
    "metadata_sanitized",
    "metadata_payloadType",
    "metadata_recordType",
    "metadata_serialId_streamId",
    "metadata_serialId_bundleSize",
    "metadata_serialId_bundleId",
    "metadata_serialId_recordId",
    "metadata_serialId_serialNumber",
    "metadata_receivedAt",
    "metadata_rmd_elevation",
    "metadata_rmd_heading",
    "metadata_rmd_longitude",
    "metadata_rmd_latitude",
    "metadata_rmd_speed",
    "metadata_rmd_rxSource",
    "metadata_request_rsus",
    "metadata_request_snmp_channel",
    "metadata_request_snmp_deliverystart",
    "metadata_request_snmp_deliverystop",
    "metadata_request_snmp_enable",
    "metadata_request_snmp_interval",
    "metadata_request_snmp_mode",
    "metadata_request_snmp_msgid",
    "metadata_request_snmp_rsuid",
    "metadata_request_snmp_status",
    "travelerdataframe_anchor_elevation",
    "travelerdataframe_anchor_lat",
    "travelerdataframe_anchor_long",
    "travelerdataframe_closedPath",
    "travelerdataframe_content_advisory_sequence",
    "travelerdataframe_desc_nodes",
    "travelerdataframe_desc_scale",
    "travelerdataframe_direction",
    "travelerdataframe_directionality",
    "travelerdataframe_durationTime",
    "travelerdataframe_frameType",
    "travelerdataframe_id",
    "travelerdataframe_laneWidth",
    "travelerdataframe_msgId_crc",
    "travelerdataframe_msgId_elevation",
    "travelerdataframe_msgId_lat",
    "travelerdataframe_msgId_long",
    "travelerdataframe_msgId_mutcdCode",
    "travelerdataframe_msgId_viewAngle",
    "travelerdataframe_name",
    "travelerdataframe_priority",
    "travelerdataframe_sspLocationRights",
    "travelerdataframe_sspMsgRights1",
    "travelerdataframe_sspMsgRights2",
    "travelerdataframe_sspTimRights",
    "travelerdataframe_startTime",
    "travelerdataframe_startYear",
    "travelerdataframe_url",
    "travelerinformation_msgCnt",
    "travelerinformation_packetID",
    "travelerinformation_timeStamp",
    "travelerinformation_urlB",
    "metadata_securityResultCode",
    "travelerdataframe_content_itis",
    "travelerdataframe_content_workZone_sequence",
    "travelerdataframe_content_genericSign_sequence",
    "travelerdataframe_content_speedLimit_sequence",
    "travelerdataframe_content_exitService_sequence",
]


# -- helpers ----------------------------------------------------------------------------------


def sample(name: str) -> dict[str, Any]:
    return json.loads((SANDBOX / f"wydot-filtered-tim-schemaVersion{name}.json").read_text())


def ndjson(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def utc_ms(text: str) -> int:
    dt = datetime.fromisoformat(text.split("[")[0].replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * 1000)


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    c = duckdb.connect()
    yield c
    c.close()


def convert(
    con: duckdb.DuckDBPyConnection,
    files: list[RawFile],
    out: Path,
    validation: ValidationConfig | None = None,
) -> ConvertResult:
    return convert_partition(con, SCHEMA, files, out, validation=validation or ValidationConfig())


def convert_records(
    con: duckdb.DuckDBPyConnection,
    tmp: Path,
    records: list[Any],
    validation: ValidationConfig | None = None,
) -> tuple[ConvertResult, list[dict[str, Any]]]:
    """Records (dicts, or raw text lines) as one NDJSON object -> (result, canonical rows)."""
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    src = ndjson(tmp / "raw" / "obj", lines)
    result = convert(con, [RawFile(src, "k")], tmp / "out", validation)
    return result, rows(con, result.parquet_files)


def rows(con: duckdb.DuckDBPyConnection, files: list[Path]) -> list[dict[str, Any]]:
    """Parquet rows as dicts, in record then frame order; times as epoch ms (no pytz needed)."""
    if not files:
        return []
    cur = con.execute(
        "SELECT * REPLACE (epoch_ms(generated_at) AS generated_at, "
        "epoch_ms(received_at) AS received_at, epoch_ms(start_at) AS start_at) "
        f"FROM read_parquet({list_literal(map(str, files))}) "
        "ORDER BY serial_record_id, source_key, frame_index NULLS FIRST"
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def described(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    """(name, type) of a relation, with DuckDB's long spelling of TIMESTAMPTZ shortened."""
    return [
        (r[0], r[1].replace("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"))
        for r in con.execute(f"DESCRIBE {relation}").fetchall()
    ]


def quarantine(result: ConvertResult) -> list[dict[str, Any]]:
    assert result.quarantine_file is not None
    return [json.loads(line) for line in result.quarantine_file.read_text().splitlines()]


def hive_dir(root: Path, source: str = "wydot") -> Path:
    return root / f"source={source}/message_type=TIM/year=2018/month=12/day=10"


# A small independent reading of the shapes, to check the SQL against.


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def find_tim(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "TravelerInformation" and isinstance(v, dict):
                return v
            found = find_tim(v)
            if found is not None:
                return found
    elif isinstance(value, list):
        for v in value:
            found = find_tim(v)
            if found is not None:
                return found
    return None


def py_frames(tim: dict[str, Any]) -> list[dict[str, Any]]:
    df = tim.get("dataFrames", tim.get("dataframes"))
    if isinstance(df, dict) and "dataFrames" in df:
        df = df["dataFrames"]
    out: list[Any] = []
    for e in as_list(df):
        out += (
            as_list(e["TravelerDataFrame"])
            if isinstance(e, dict) and "TravelerDataFrame" in e
            else [e]
        )
    return [f for f in out if isinstance(f, dict)]


def py_regions(frame: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[Any] = []
    for e in as_list(frame.get("regions")):
        out += (
            as_list(e["GeographicalPath"])
            if isinstance(e, dict) and "GeographicalPath" in e
            else [e]
        )
    return [g for g in out if isinstance(g, dict)]


def py_items(frame: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    content = frame.get("content")
    if not isinstance(content, dict) or not content:
        return None, []
    kind, value = next(iter(content.items()))
    if isinstance(value, dict) and "SEQUENCE" in value:
        value = value["SEQUENCE"]
    return kind, [e.get("item", e) if isinstance(e, dict) else e for e in as_list(value)]


def assert_matches_record(got: list[dict[str, Any]], rec: dict[str, Any]) -> None:
    """The rows of one record against the independent reading above."""
    md = rec["metadata"]
    tim = find_tim(rec["payload"])
    assert tim is not None
    frames = py_frames(tim)
    assert len(got) == max(1, len(frames))
    for k, row in enumerate(got):
        assert row["generated_at"] == utc_ms(md.get("recordGeneratedAt") or md["generatedAt"])
        assert row["schema_version"] == md["schemaVersion"]
        assert row["msg_cnt"] == tim["msgCnt"]
        assert row["packet_id"] == str(tim["packetID"])
        assert row["time_stamp"] == tim.get("timeStamp")
        assert row["frame_count"] == len(frames)
        assert row["invalid_reason"] is None
        if not frames:
            assert row["frame_index"] is None and row["data_frame"] is None
            assert "no_data_frames" in row["warnings"]
            continue
        f = frames[k]
        assert row["frame_index"] == k
        assert json.loads(row["data_frame"]) == f
        assert row["start_year"] == f.get("startYear")
        assert row["start_time"] == f.get("startTime")
        assert row["duration_min"] == f.get("duratonTime", f.get("durationTime"))
        assert row["priority"] == f.get("priority")
        kind, items = py_items(f)
        assert row["content_type"] == kind
        assert json.loads(row["content_items"]) == items
        assert row["itis_codes"] == [i["itis"] for i in items if "itis" in i]
        assert row["content_texts"] == [str(i["text"]) for i in items if "text" in i]
        regions = py_regions(f)
        assert row["region_count"] == len(regions)
        if regions:
            assert json.loads(row["regions"]) == regions
            anchor = regions[0].get("anchor")
            if anchor is not None:
                assert row["anchor_latitude"] == anchor["lat"] / 1e7
                assert row["anchor_longitude"] == anchor["long"] / 1e7


def tim_of(rec: dict[str, Any]) -> dict[str, Any]:
    tim = find_tim(rec["payload"])
    assert tim is not None
    return tim


# -- the real samples -------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_document_converts_one_row_per_frame(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, name: str
) -> None:
    src = tmp_path / "raw" / f"v{name}.json"
    src.parent.mkdir()
    shutil.copy(SANDBOX / f"wydot-filtered-tim-schemaVersion{name}.json", src)
    result = convert(con, [RawFile(src, f"wydot/TIM/x/v{name}")], tmp_path / "out")
    assert (result.rows, result.quarantined, result.warnings) == (FRAMES[name], 0, {})
    got = rows(con, result.parquet_files)
    assert_matches_record(got, sample(name))
    assert {r["source_key"] for r in got} == {f"wydot/TIM/x/v{name}"}
    assert len({r["record_hash"] for r in got}) == 1


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_as_ndjson_lines(con: duckdb.DuckDBPyConnection, tmp_path: Path, name: str) -> None:
    rec = sample(name)
    rec["metadata"]["serialId"]["recordId"] = 0
    result, got = convert_records(con, tmp_path, [rec, rec, rec])
    assert result.rows == 3 * FRAMES[name] and result.quarantined == 0
    # three identical records: same hash, frames numbered within each record
    assert Counter(r["frame_index"] for r in got) == {k: 3 for k in range(FRAMES[name])}


def test_unavailable_positions_and_start_year_are_null(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """J2735's "unavailable" values (latitude 900000001, longitude 1800000001, elevation -4096,
    startYear 0: THEA TIM's dictionary) were read as 90.0000001, 180.0000001, -409.6 m and the
    year 0 in WYDOT TIM (THEA TIM has them NULL); NULL now, as no other value changes."""
    rec = sample("5")
    tim = tim_of(rec)
    frame = py_frames(tim)[0]
    unknown = {"lat": 900000001, "long": 1800000001, "elevation": -4096}
    frame["msgId"]["roadSignID"]["position"] = dict(unknown)
    region = py_regions(frame)[0]
    region["anchor"] = dict(unknown)
    frame["startYear"] = 0
    _, [row] = convert_records(con, tmp_path, [rec])
    for column in ("sign_latitude", "sign_longitude", "sign_elevation_m", "anchor_latitude",
                   "anchor_longitude", "anchor_elevation_m", "start_year", "start_at"):  # fmt: skip
        assert row[column] is None, (column, row[column])
    _, [kept] = convert_records(con, tmp_path / "real", [sample("5")])
    assert {k: v for k, v in row.items() if not k.startswith(("sign_", "anchor_", "start_"))
            and k not in ("record_hash", "regions", "data_frame", "warnings")} == {
        k: v for k, v in kept.items() if not k.startswith(("sign_", "anchor_", "start_"))
        and k not in ("record_hash", "regions", "data_frame", "warnings")}  # fmt: skip


def test_v3_values_spelled_out(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    _, [row] = convert_records(con, tmp_path, [sample("3")])
    assert row["generated_at"] == utc_ms("2017-12-01T13:26:24.497Z")
    assert row["received_at"] == utc_ms("2017-12-04T19:30:05.978Z")
    assert (row["msg_cnt"], row["packet_id"], row["time_stamp"]) == (1, "000000000039F63AA6", None)
    assert (row["content_type"], row["itis_codes"]) == ("exitService", [7991])
    assert (row["frame_type"], row["msg_id_type"], row["further_info_id"]) == (
        "commercialSignage",
        "furtherInfoID",
        "0000",
    )
    assert (row["start_year"], row["start_time"], row["duration_min"]) == (2016, 487705, 24520)
    assert row["start_at"] == utc_ms("2016-12-04T16:25:00Z")  # minute 487705 of 2016
    assert (row["anchor_latitude"], row["anchor_longitude"], row["anchor_elevation_m"]) == (
        42.4918451,
        -83.4196504,
        267.0,
    )
    assert row["description_type"] == "oldRegion"
    assert row["direction"] == "0000000000000000"
    nodes = json.loads(row["path_nodes"])
    assert len(nodes) == 8 and nodes[0] == {"xOffset": -186, "yOffset": 48}
    assert (row["rmd_latitude"], row["rmd_speed_mps"], row["rx_source"]) == (
        41.0986645,
        30.2,
        "RSU",
    )
    assert (row["tim_container"], row["message_id"], row["region_id"]) == ("MessageFrame", 31, 0)


def test_v5_values_spelled_out(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    _, [row] = convert_records(con, tmp_path, [sample("5")])
    assert row["generated_at"] == utc_ms("2018-05-01T15:56:13.299Z")
    assert (row["msg_cnt"], row["packet_id"], row["time_stamp"]) == (1, "000000000000000002", 29507)
    assert (row["content_type"], row["itis_codes"], row["content_texts"]) == (
        "advisory",
        [268, 12594, 8720],
        [],
    )
    assert (row["start_year"], row["start_time"], row["duration_min"], row["priority"]) == (
        2017,
        459004,
        31680,
        5,
    )
    # the sample's anchor really is lat 41, long -105 in 1e-7 degree (a test message)
    assert (row["anchor_latitude"], row["anchor_longitude"], row["anchor_elevation_m"]) == (
        41 / 1e7,
        -105 / 1e7,
        858.9,
    )
    assert (row["region_name"], row["lane_width_cm"], row["closed_path"]) == (
        "Testing TIM",
        32700,
        False,
    )
    assert (row["directionality"], row["direction"], row["path_scale"]) == (
        "both",
        "1111111111111111",
        0,
    )
    nodes = json.loads(row["path_nodes"])
    assert len(nodes) == 9
    assert nodes[0] == {"delta": {"node-LatLon": {"lon": -1054384188, "lat": 412238776}}}
    assert (row["sign_mutcd_code"], row["sign_view_angle"], row["sign_crc"]) == (
        "none",
        "1111111111111111",
        "0000",
    )
    assert (row["sign_latitude"], row["sign_elevation_m"]) == (41 / 1e7, 91.7)
    assert (row["security_result_code"], row["rx_source"], row["url_b"]) == ("success", "SAT", None)


def test_v6_single_values_spelled_out(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    _, [row] = convert_records(con, tmp_path, [sample("6_single")])
    assert row["generated_at"] == utc_ms("2018-12-10T15:00:00.682Z")
    # packetID is a JSON number in this record
    assert (row["msg_cnt"], row["packet_id"], row["time_stamp"]) == (
        1,
        "300000000000000000",
        494820,
    )
    assert (row["itis_codes"], row["frame_type"], row["sign_mutcd_code"]) == (
        [7169],
        "advisory",
        "warning",
    )
    assert (row["anchor_latitude"], row["anchor_longitude"]) == (40.588379, -105.073228)
    assert row["start_at"] == utc_ms("2018-12-10T15:00:00Z") and row["duration_min"] == 32000
    assert (row["sign_latitude"], row["sign_longitude"]) == (26.3041699, -80.146323)
    assert row["tim_container"] == "AdvisorySituationData"
    assert json.loads(row["rsus"]) == [
        {"rsuTarget": "127.0.0.3", "rsuRetries": 1, "rsuTimeout": 1000, "rsuIndex": 10}
    ]
    asd = json.loads(row["advisory_situation"])
    assert asd["recordID"] == "D69A0A12" and "advisoryMessage" not in asd["asdmDetails"]
    assert json.loads(row["request"])["snmp"]["channel"] == 178
    assert row["record_generated_by"] == "TMC"


def test_v6_multi_values_spelled_out(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    _, got = convert_records(con, tmp_path, [sample("6_multi")])
    assert [r["frame_index"] for r in got] == [0, 1]
    for row in got:
        assert (row["frame_count"], row["region_count"]) == (2, 2)
        assert (row["msg_cnt"], row["packet_id"], row["time_stamp"]) == (
            13,
            "EC9C236B0000000000",
            491328,
        )
        assert row["itis_codes"] == [125, 250]
        assert row["content_texts"] == ["some text", "98765"]  # a number as text, kept as text
        assert (row["anchor_latitude"], row["anchor_longitude"], row["anchor_elevation_m"]) == (
            41.678473,
            -108.782775,
            917.1,
        )
        assert (row["region_id"], row["region_regulator_id"], row["region_name"]) == (33, 23, "bob")
        assert (row["description_type"], row["path_nodes"]) == ("geometry", None)
        assert (row["start_year"], row["start_time"], row["duration_min"]) == (2017, 482327, 22)
        assert [r["rsuTarget"] for r in json.loads(row["rsus"])] == [
            "127.0.0.1",
            "127.0.0.2",
            "127.0.0.3",
        ]
        assert len(json.loads(row["regions"])) == 2


def test_parquet_schema_is_the_canonical_one(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    result, _ = convert_records(con, tmp_path, [sample("6_multi")])
    got = con.execute(
        f"DESCRIBE SELECT * FROM read_parquet({quote_literal(str(result.parquet_files[0]))})"
    ).fetchall()
    expect = con.execute(f"DESCRIBE {SCHEMA.empty_select_sql()}").fetchall()
    assert [(r[0], r[1]) for r in got] == [(r[0], r[1]) for r in expect]
    assert [r[0] for r in got] == SCHEMA.column_names


# -- trap shapes ------------------------------------------------------------------------------


def with_data_frames(rec: dict[str, Any], value: Any) -> dict[str, Any]:
    rec = copy.deepcopy(rec)
    tim_of(rec)["dataFrames"] = value
    return rec


def two_frames() -> tuple[dict[str, Any], dict[str, Any]]:
    f = py_frames(tim_of(sample("5")))[0]
    g = copy.deepcopy(f)
    g["priority"] = 2
    g["content"] = {"workZone": {"SEQUENCE": [{"item": {"itis": 777}}, {"item": {"itis": 1025}}]}}
    return f, g


@pytest.mark.parametrize(
    ("shape", "n"),
    [
        ("dict", 1),
        ("list_of_wrappers", 2),
        ("nested_dict", 1),
        ("nested_dict_of_list", 2),
        ("dict_of_list", 2),
        ("dict_of_one_element_list", 1),
        ("bare_list", 2),
        ("lowercase_key", 2),
    ],
)
def test_data_frames_shapes(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, shape: str, n: int
) -> None:
    f, g = two_frames()
    value: Any = {
        "dict": {"TravelerDataFrame": f},
        "list_of_wrappers": [{"TravelerDataFrame": f}, {"TravelerDataFrame": g}],
        "nested_dict": {"dataFrames": {"TravelerDataFrame": f}},
        "nested_dict_of_list": {"dataFrames": {"TravelerDataFrame": [f, g]}},
        "dict_of_list": {"TravelerDataFrame": [f, g]},
        "dict_of_one_element_list": {"TravelerDataFrame": [f]},
        "bare_list": [f, g],
        "lowercase_key": None,
    }[shape]
    rec = with_data_frames(sample("5"), value)
    if shape == "lowercase_key":
        tim = tim_of(rec)
        del tim["dataFrames"]
        tim["dataframes"] = [f, g]
    result, got = convert_records(con, tmp_path, [rec])
    assert (result.rows, result.quarantined, result.warnings) == (n, 0, {})
    assert [r["frame_index"] for r in got] == list(range(n))
    assert [r["itis_codes"] for r in got] == [[268, 12594, 8720], [777, 1025]][:n]
    assert [r["content_type"] for r in got] == ["advisory", "workZone"][:n]
    assert all(r["frame_count"] == n and r["packet_id"] == "000000000000000002" for r in got)


@pytest.mark.parametrize(
    "value", [[], {"TravelerDataFrame": []}, {"TravelerDataFrame": None}, None]
)
def test_a_tim_without_frames_keeps_one_row(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, value: Any
) -> None:
    result, [row] = convert_records(con, tmp_path, [with_data_frames(sample("6_single"), value)])
    assert result.rows == 1 and result.quarantined == 0
    assert (row["frame_index"], row["frame_count"], row["data_frame"], row["itis_codes"]) == (
        None,
        0,
        None,
        None,
    )
    assert (row["msg_cnt"], row["packet_id"], row["time_stamp"]) == (
        1,
        "300000000000000000",
        494820,
    )
    assert row["warnings"] == ["no_data_frames"] and row["invalid_reason"] is None


def test_unreadable_frames_are_flagged_not_dropped(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    f, _ = two_frames()
    rec = with_data_frames(sample("5"), [{"TravelerDataFrame": f}, "junk", 7])
    result, [row] = convert_records(con, tmp_path, [rec])
    assert result.rows == 1 and row["warnings"] == ["data_frames_unreadable"]
    _, [odd] = convert_records(con, tmp_path / "2", [with_data_frames(sample("5"), "text")])
    assert odd["frame_count"] == 0 and odd["warnings"] == [
        "no_data_frames",
        "data_frames_unreadable",
    ]


@pytest.mark.parametrize("shape", ["object", "object_of_list", "list_of_wrappers", "bare_list"])
def test_regions_shapes(con: duckdb.DuckDBPyConnection, tmp_path: Path, shape: str) -> None:
    rec = sample("5")
    frame = py_frames(tim_of(rec))[0]
    g = frame["regions"]["GeographicalPath"]
    h = copy.deepcopy(g)
    h["name"], h["anchor"] = "second", {"lat": 412000000, "long": -1055000000, "elevation": 20000}
    frame["regions"] = {
        "object": {"GeographicalPath": g},
        "object_of_list": {"GeographicalPath": [g, h]},
        "list_of_wrappers": [{"GeographicalPath": g}, {"GeographicalPath": h}],
        "bare_list": [g, h],
    }[shape]
    n = 1 if shape == "object" else 2
    _, [row] = convert_records(con, tmp_path, [rec])
    assert (row["region_count"], row["region_name"], row["anchor_latitude"]) == (
        n,
        "Testing TIM",
        41 / 1e7,
    )
    assert [r["name"] for r in json.loads(row["regions"])] == ["Testing TIM", "second"][:n]
    # regions explode with plain SQL
    names = con.execute(
        "SELECT list(json_extract_string(r, '$.name')) FROM (SELECT unnest("
        "json_extract(?::JSON, '$[*]')) AS r)",
        [row["regions"]],
    ).fetchone()
    assert names == (["Testing TIM", "second"][:n],)


def test_single_element_arrays_as_objects(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    rec = sample("5")
    frame = py_frames(tim_of(rec))[0]
    frame["content"]["advisory"]["SEQUENCE"] = {"item": {"itis": 268}}
    nodes = frame["regions"]["GeographicalPath"]["description"]["path"]["offset"]["xy"]["nodes"]
    nodes["NodeXY"] = nodes["NodeXY"][0]
    _, [row] = convert_records(con, tmp_path, [rec])
    assert (row["itis_codes"], json.loads(row["content_items"])) == ([268], [{"itis": 268}])
    assert json.loads(row["path_nodes"]) == [
        {"delta": {"node-LatLon": {"lon": -1054384188, "lat": 412238776}}}
    ]


@pytest.mark.parametrize(
    ("closed", "expect"),
    [({"false": ""}, False), ({"true": ""}, True), (False, False), ("true", True), (None, None)],
)
def test_enum_objects(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, closed: Any, expect: bool | None
) -> None:
    rec = sample("5")
    frame = py_frames(tim_of(rec))[0]
    frame["regions"]["GeographicalPath"]["closedPath"] = closed
    frame["regions"]["GeographicalPath"]["directionality"] = "forward"  # a plain value
    frame["frameType"] = {"roadSignage": ""}
    frame["durationTime"] = frame.pop("duratonTime")  # the spelling J2735 uses
    _, [row] = convert_records(con, tmp_path, [rec])
    assert row["closed_path"] is expect
    assert (row["directionality"], row["frame_type"], row["duration_min"]) == (
        "forward",
        "roadSignage",
        31680,
    )


@pytest.mark.parametrize(
    "rsus",
    [
        {"rsus": {"rsuTarget": "10.0.0.1"}},
        {"rsus": [{"rsuTarget": "10.0.0.1"}, {"rsuTarget": "10.0.0.2"}]},
        {"rsu": [{"rsuTarget": "10.0.0.1"}, {"rsuTarget": "10.0.0.2"}]},
        {"rsu": {"rsuTarget": "10.0.0.1"}},
        [{"rsuTarget": "10.0.0.1"}, {"rsuTarget": "10.0.0.2"}],
    ],
)
def test_rsus_shapes(con: duckdb.DuckDBPyConnection, tmp_path: Path, rsus: Any) -> None:
    rec = sample("6_single")
    rec["metadata"]["request"]["rsus"] = rsus
    _, [row] = convert_records(con, tmp_path, [rec])
    inner = rsus if isinstance(rsus, list) else next(iter(rsus.values()))
    assert json.loads(row["rsus"]) == as_list(inner)


def test_tim_in_a_message_frame_or_an_sdx_envelope(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """The same TravelerInformation as an RSU broadcast and inside an SDX deposit."""
    deposit = sample("6_multi")
    broadcast = copy.deepcopy(deposit)
    broadcast["payload"]["data"] = {
        "MessageFrame": {"messageId": 31, "value": {"TravelerInformation": tim_of(deposit)}}
    }
    broadcast["metadata"]["serialId"]["recordId"] = 1
    _, got = convert_records(con, tmp_path, [deposit, broadcast])
    assert [r["tim_container"] for r in got] == ["AdvisorySituationData"] * 2 + ["MessageFrame"] * 2
    strip = {"tim_container", "advisory_situation", "record_hash", "serial_record_id"}
    a, b = (
        [{k: v for k, v in r.items() if k not in strip} for r in got[i : i + 2]] for i in (0, 2)
    )
    assert a == b


# -- times ------------------------------------------------------------------------------------


def test_v1_generated_at_received_at_and_java_minutes(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """v1 named the times generatedAt / receivedAt; Java drops zero seconds ('16:33Z[UTC]')."""
    rec = sample("3")
    md = rec["metadata"]
    del md["recordGeneratedAt"], md["odeReceivedAt"]
    md["generatedAt"] = "2017-12-05T16:33Z[UTC]"
    md["receivedAt"] = "2017-12-05T17:45:02.5Z[UTC]"
    md["schemaVersion"] = 1
    con.execute("SET TimeZone = 'America/Denver'")  # the caller's zone must not leak in
    result, [row] = convert_records(con, tmp_path, [rec])
    assert result.schema_versions == [1] and result.unknown_versions == []
    assert row["generated_at"] == utc_ms("2017-12-05T16:33:00Z")
    assert row["received_at"] == utc_ms("2017-12-05T17:45:02.500Z")
    assert con.execute("SELECT current_setting('TimeZone')").fetchone() == ("America/Denver",)


# -- invalid and broken input -----------------------------------------------------------------


def test_invalid_records_are_quarantined_once_per_record(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    good = sample("6_multi")
    bad_time = copy.deepcopy(good)  # two frames, one bad timestamp: one quarantine entry
    bad_time["metadata"]["recordGeneratedAt"] = "yesterday"
    no_tim = copy.deepcopy(good)
    no_tim["payload"]["data"] = {"MessageFrame": {"messageId": 31, "value": {}}}
    no_time = copy.deepcopy(sample("5"))
    del no_time["metadata"]["recordGeneratedAt"]
    text = json.dumps(good)
    lines = [
        text,  # 1: two rows
        text[:200],  # 2 truncated
        json.dumps(bad_time),  # 3
        "not json at all",  # 4
        json.dumps(no_tim),  # 5
        json.dumps({"metadata": 5, "payload": {}}),  # 6
        json.dumps(no_time),  # 7
        json.dumps({"neither": 1}),  # 8: no metadata, no payload
    ]
    result, got = convert_records(con, tmp_path, lines)
    assert result.rows == 2 and len(got) == 2
    entries = quarantine(result)
    assert result.quarantined == len(entries) == 7
    assert sorted((e["line"] or 0, e["reason"].split(":")[0]) for e in entries) == [
        (0, "missing required field metadata"),
        (0, "missing required field metadata.recordGeneratedAt"),
        (0, "missing required field payload TravelerInformation"),
        (0, "unparseable timestamp"),
        (2, "malformed JSON"),
        (4, "malformed JSON"),
        (8, "malformed JSON"),
    ]
    assert result.reasons == {
        "malformed JSON": 3,
        "unparseable timestamp": 1,
        "missing required field payload TravelerInformation": 1,
        "missing required field metadata": 1,
        "missing required field metadata.recordGeneratedAt": 1,
    }
    [raw] = [json.loads(e["raw"]) for e in entries if e["reason"].startswith("unparseable")]
    assert raw == bad_time  # the whole record, once, not once per frame


def test_a_line_cut_where_a_value_must_follow_loses_no_record(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    text = json.dumps(sample("5"))
    cut = text[: text.index('"closedPath":') + len('"closedPath":')]
    result, _ = convert_records(con, tmp_path, [text, cut, text])
    assert result.rows == 2 and result.quarantined == 1


def test_keep_invalid_records_keeps_every_frame(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    bad_time = sample("6_multi")
    bad_time["metadata"]["recordGeneratedAt"] = "yesterday"
    result, got = convert_records(con, tmp_path, [bad_time], KEEP_ALL)
    assert result.rows == 2 and result.quarantined == 0
    assert result.kept_invalid == {"unparseable timestamp": 1}  # counted per record
    assert {r["invalid_reason"] for r in got} == {"unparseable timestamp: yesterday"}


def test_out_of_range_values_are_kept_with_warnings(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    rec = sample("5")
    tim = tim_of(rec)
    tim["msgCnt"] = 300
    frame = py_frames(tim)[0]
    # (900000001 / 1800000001 are J2735's "unavailable": NULL, no warning)
    frame["regions"]["GeographicalPath"]["anchor"] = {"lat": 950000000, "long": 1850000000}
    frame["priority"], frame["startTime"] = 9, 600000
    result, [row] = convert_records(con, tmp_path, [rec])
    assert row["invalid_reason"] is None and row["anchor_latitude"] == 95.0
    assert row["warnings"] == [
        "msg_cnt_out_of_range",
        "anchor_out_of_range",
        "start_time_out_of_range",
        "priority_out_of_range",
    ]
    assert result.warnings == {w: 1 for w in row["warnings"]}
    assert row["start_at"] is None


@pytest.mark.parametrize(
    ("year", "minute", "start_at", "warned"),
    [
        (2019, 525599, datetime(2019, 12, 31, 23, 59, tzinfo=UTC), False),  # its last minute
        (2019, 525600, None, True),  # 2019 has no such minute: it was 2020-01-01 00:00
        (2019, 527039, None, True),
        (2020, 527039, datetime(2020, 12, 31, 23, 59, tzinfo=UTC), False),  # a leap year's last
        (2019, 527040, None, False),  # J2735's unknown minute
        (2019, 527041, None, True),
    ],
)
def test_a_start_minute_its_year_does_not_have_is_flagged_not_rolled_over(
    con: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    year: int,
    minute: int,
    start_at: datetime | None,
    warned: bool,
) -> None:
    rec = sample("5")
    frame = py_frames(tim_of(rec))[0]
    frame["startYear"], frame["startTime"] = year, minute
    _, [row] = convert_records(con, tmp_path, [rec])
    # the converted rows hold times as epoch milliseconds
    assert row["start_at"] == (None if start_at is None else int(start_at.timestamp() * 1000))
    assert ("start_time_out_of_range" in row["warnings"]) is warned


# -- views ------------------------------------------------------------------------------------


def canonical_and_socrata(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, records: list[dict[str, Any]]
) -> ConvertResult:
    src = ndjson(tmp_path / "raw" / "obj", [json.dumps(r) for r in records])
    result = convert(con, [RawFile(src, "k")], hive_dir(tmp_path))
    for stmt in view_sql(SCHEMA, [str(p) for p in result.parquet_files]):
        con.execute(stmt)
    return result


def test_socrata_view_names_and_values(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    recs = [sample(n) for n in SAMPLES]
    for i, r in enumerate(recs):
        r["metadata"]["serialId"]["recordId"] = i
    canonical_and_socrata(con, tmp_path, recs)
    cur = con.execute(
        'SELECT * FROM wydot_tim_socrata ORDER BY "metadata_serialId_recordId", '
        '"travelerdataframe_id", "travelerdataframe_startTime"'
    )
    names = [d[0] for d in cur.description]
    assert names == [*SOCRATA_69, "source", "date"]
    assert names[:69] == [n for n, _ in SCHEMA.socrata_columns][:69]
    got = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    assert described(con, "wydot_tim_socrata") == SCHEMA.socrata_columns
    # per frame and region, like the portal: 1 + 1 + 1 + 2 frames x 2 regions
    assert len(got) == 7
    v3, v5, v6s = got[0], got[1], got[2]
    assert (v3["travelerdataframe_anchor_lat"], v3["travelerdataframe_anchor_long"]) == (
        424918451,
        -834196504,
    )
    assert json.loads(v3["travelerdataframe_content_exitService_sequence"]) == [
        {"item": {"itis": 7991}}
    ]
    assert v3["travelerdataframe_durationTime"] == 24520
    assert v5["travelerdataframe_content_itis"] == [268, 12594, 8720]
    assert (
        json.loads(v5["travelerdataframe_content_advisory_sequence"])
        == (
            tim_of(sample("5"))["dataFrames"]["TravelerDataFrame"]["content"]["advisory"][
                "SEQUENCE"
            ]
        )
    )
    assert (v5["travelerdataframe_msgId_lat"], v5["travelerdataframe_msgId_long"]) == (41, -108)
    assert v5["travelerdataframe_msgId_elevation"] == 917
    assert (v5["travelerdataframe_closedPath"], v5["travelerdataframe_directionality"]) == (
        False,
        "both",
    )
    assert (
        v5["travelerdataframe_name"] == "Testing TIM" and v5["travelerdataframe_laneWidth"] == 32700
    )
    assert len(json.loads(v5["travelerdataframe_desc_nodes"])) == 9
    assert (v5["travelerdataframe_desc_scale"], v5["travelerdataframe_frameType"]) == (
        0,
        "advisory",
    )
    assert (v5["travelerinformation_packetID"], v5["travelerinformation_timeStamp"]) == (
        "000000000000000002",
        29507,
    )
    assert (v5["messageId"], v5["metadata_securityResultCode"]) == (31, "success")
    assert (v6s["metadata_request_snmp_channel"], v6s["metadata_request_snmp_rsuid"]) == (
        178,
        "00000083",
    )
    assert v6s["metadata_request_snmp_deliverystart"] == "2017-06-01T17:47:11-05:00"
    assert json.loads(v6s["metadata_request_rsus"])[0]["rsuTarget"] == "127.0.0.3"
    assert (v6s["travelerdataframe_msgId_lat"], v6s["travelerdataframe_msgId_long"]) == (
        263041699,
        -801463230,
    )
    multi = got[3:]
    assert {r["travelerinformation_msgCnt"] for r in multi} == {13}
    assert {r["travelerdataframe_anchor_lat"] for r in multi} == {416784730}
    assert {(r["travelerdataframe_id"], r["travelerdataframe_desc_nodes"]) for r in multi} == {
        (33, None)
    }
    assert all(r["source"] == "wydot" and str(r["date"]) == "2018-12-10" for r in got)


def test_socrata_select_over_a_data_frame(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """Dask's socrata naming runs the same SQL over pandas partitions (lists and JSON as objects)."""
    canonical_and_socrata(con, tmp_path, [sample("6_multi"), sample("5")])
    frame = con.execute("SELECT * FROM wydot_tim").df()  # noqa: F841 - read by DuckDB by name
    sql = SCHEMA.socrata_select_sql("frame")
    got = con.execute(f"SELECT * EXCLUDE (date), date::DATE FROM ({sql})").fetchall()
    view = con.execute("SELECT * EXCLUDE (date), date FROM wydot_tim_socrata").fetchall()
    key = lambda r: json.dumps(r, default=str, sort_keys=True)  # noqa: E731
    assert sorted(map(key, got)) == sorted(map(key, view)) and len(got) == 5


def test_canonical_view_shows_kept_invalid_rows_socrata_does_not(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    bad = sample("6_multi")
    bad["metadata"]["recordGeneratedAt"] = "yesterday"
    src = ndjson(tmp_path / "raw" / "obj", [json.dumps(bad), json.dumps(sample("5"))])
    result = convert(con, [RawFile(src, "k")], hive_dir(tmp_path), KEEP_ALL)
    for stmt in view_sql(SCHEMA, [str(p) for p in result.parquet_files]):
        con.execute(stmt)
    assert con.execute("SELECT count(*) FROM wydot_tim").fetchone() == (3,)
    assert con.execute("SELECT count(*) FROM wydot_tim_socrata").fetchone() == (1,)


def test_empty_views_and_the_backup_feed(con: duckdb.DuckDBPyConnection) -> None:
    backup = SCHEMAS[("wydot_backup", "TIM")]
    assert (backup.view_name, backup.socrata_view_name) == (
        "wydot_backup_tim",
        "wydot_backup_tim_socrata",
    )
    assert (SCHEMA.view_name, SCHEMA.socrata_view_name) == ("wydot_tim", "wydot_tim_socrata")
    for schema in (SCHEMA, backup):
        for stmt in view_sql(schema, []):
            con.execute(stmt)
        assert described(con, schema.view_name) == schema.view_columns
        assert described(con, schema.socrata_view_name) == schema.socrata_columns
        assert con.execute(f"SELECT count(*) FROM {schema.socrata_view_name}").fetchone() == (0,)


# -- the replica ------------------------------------------------------------------------------


def replica_records(spec: ReplicaSpec) -> list[tuple[Any, list[dict[str, Any]]]]:
    out = []
    for obj in iter_replica(spec):
        bad = {m.line for m in obj.malformed}
        text = obj.body.decode()
        if text.startswith("{\n"):
            recs = [json.loads(text)]
        else:
            recs = [json.loads(x) for i, x in enumerate(text.splitlines(), 1) if i not in bad]
        out.append((obj, recs))
    return out


def test_replica_records_are_realistic_and_cycle_through_the_shapes() -> None:
    day = date(2019, 3, 5)
    spec = ReplicaSpec(
        start=day, end=day, sources=("wydot",), message_types=("TIM",), records_per_hour=40,
        files_per_hour=2, empty_hour_rate=0.0,
    )  # fmt: skip
    shapes: Counter[str] = Counter()
    packets: Counter[str] = Counter()
    n = 0
    for obj, recs in replica_records(spec):
        assert obj.records == len(recs)
        packets.update(obj.vehicles)
        for rec in recs:
            n += 1
            md = rec["metadata"]
            t = datetime.fromtimestamp(utc_ms(md["recordGeneratedAt"]) / 1000, tz=UTC)
            assert (t.date(), t.hour) == (day, obj.hour) and md["schemaVersion"] == 6
            tim = tim_of(rec)
            frames = py_frames(tim)
            assert len(frames) <= 1  # so rows == records
            df = tim["dataFrames"]
            shapes["df_" + type(df).__name__ + ("_nested" if "dataFrames" in df else "")] += 1
            shapes["asd" if "AdvisorySituationData" in rec["payload"]["data"] else "rx"] += 1
            if isinstance(tim["packetID"], int):
                shapes["numeric_packet"] += 1
            if "request" in md:
                rs = md["request"]["rsus"]
                shapes[
                    "rsus_" + (type(rs).__name__ if isinstance(rs, list) else next(iter(rs)))
                ] += 1
            for f in frames:
                regions = py_regions(f)
                shapes[f"regions_{type(f['regions']).__name__}_{len(regions)}"] += 1
                _, items = py_items(f)
                codes = [i["itis"] for i in items if "itis" in i]
                assert codes and all(0 < c < 65536 for c in codes)
                seq = next(iter(f["content"].values()))["SEQUENCE"]
                shapes["sequence_" + type(seq).__name__] += 1
                for g in regions:
                    lat, lon = g["anchor"]["lat"] / 1e7, g["anchor"]["long"] / 1e7
                    assert 41.0 < lat < 42.0 and -111.1 < lon < -104.7  # on I-80 in Wyoming
                    assert g["closedPath"] == {"false": ""}
                    node = g["description"]["path"]["offset"]["xy"]["nodes"]["NodeXY"]
                    shapes["nodes_" + type(node).__name__] += 1
    assert sum(packets.values()) == n == 24 * 40
    for shape in (
        "df_dict", "df_list", "df_dict_nested", "asd", "rx", "numeric_packet", "rsus_rsus",
        "rsus_rsu", "rsus_list", "regions_dict_1", "regions_dict_2", "regions_list_1",
        "sequence_dict", "sequence_list", "nodes_dict", "nodes_list",
    ):  # fmt: skip
        assert shapes[shape] > 0, shape


def test_replica_is_deterministic_and_feeds_never_share_packets() -> None:
    day = date(2018, 6, 1)
    spec = ReplicaSpec(
        start=day, end=day, sources=("wydot", "wydot_backup"), message_types=("TIM",),
        records_per_hour=5, empty_hour_rate=0.2, malformed_per_day=3,
    )  # fmt: skip
    a = [(o.key, o.body, o.malformed) for o in iter_replica(spec)]
    b = [(o.key, o.body, o.malformed) for o in iter_replica(spec)]
    assert a == b
    by_source: dict[str, set[str]] = {"wydot": set(), "wydot_backup": set()}
    for obj in iter_replica(spec):
        by_source[obj.partition.source].update(obj.vehicles)
        assert obj.schema_version == 5
    assert by_source["wydot"] and by_source["wydot_backup"]
    assert not by_source["wydot"] & by_source["wydot_backup"]


def test_replica_v1_and_v3_records_convert(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    t = datetime(2017, 12, 5, 16, 33, tzinfo=UTC)
    v1 = rt.tim_record(1, t, position=2)
    v3 = rt.tim_record(3, t + timedelta(seconds=1), position=5)
    assert v1["metadata"]["generatedAt"] == "2017-12-05T16:33Z[UTC]"  # Java drops :00
    assert "recordGeneratedAt" in v3["metadata"]
    v3["metadata"]["serialId"]["recordId"] = 1000
    result, got = convert_records(con, tmp_path, [v1, v3])
    assert result.rows == 2 and result.quarantined == 0
    assert_matches_record(got[:1], v1)
    assert_matches_record(got[1:], v3)
    assert got[0]["description_type"] == "oldRegion" and got[0]["generated_at"] == utc_ms(
        "2017-12-05T16:33:00Z"
    )


# -- end to end through the local endpoint -----------------------------------------------------


def test_seeded_tim_days_ingest_exactly(s3_client: Any, catalog_dir: Path) -> None:
    """Rows == seeded records (one row per replica TIM), quarantine == injected broken lines."""
    d_doc, d_nd = date(2017, 12, 5), date(2019, 3, 5)
    reports = [
        seed_replica(
            s3_client, d_doc, d_doc, sources=["wydot"], message_types=["TIM"],
            records_per_hour=1, empty_hour_rate=0.5,
        ),
        seed_replica(
            s3_client, d_nd, d_nd, sources=["wydot", "wydot_backup"], message_types=["TIM"],
            records_per_hour=8, files_per_hour=1, empty_hour_rate=0.1, malformed_per_day=4,
        ),
    ]  # fmt: skip
    parts = {k: p for r in reports for k, p in r.partitions.items()}
    malformed = [m for r in reports for m in r.malformed_lines]
    cat = Catalog(catalog_dir)
    for day in (d_doc, d_nd):
        s = cat.ingest("wydot", "TIM", day, day, timezone="UTC", rate_limit=0)
        part = parts[f"wydot/TIM/{day:%Y/%m/%d}"]
        assert s.ok, s.as_dict()
        assert s.rows == part.records
        assert s.quarantined == part.malformed
    assert cat.query("select count(*) as n from wydot_backup_tim").n[0] == 0

    per_packet = cat.query("select packet_id, count(*) as n from wydot_tim group by 1")
    expected: Counter[str] = Counter()
    for key, part in parts.items():
        if key.startswith("wydot/"):
            expected.update(part.vehicles)
    assert dict(zip(per_packet.packet_id, per_packet.n, strict=True)) == expected
    versions = cat.query(
        "select date, list(distinct schema_version) as v from wydot_tim group by 1"
    )
    assert {str(d): list(v) for d, v in zip(versions.date, versions.v, strict=True)} == {
        "2017-12-05": [3],
        "2019-03-05": [6],
    }

    q = cat.query("select path from partition_files where kind = 'quarantine'")
    lines = [json.loads(x) for rel in q.path for x in (catalog_dir / rel).read_text().splitlines()]
    wydot_bad = [m for m in malformed if m.key.startswith("wydot/")]
    assert len(lines) == len(wydot_bad)
    assert {(m.key, m.line) for m in wydot_bad if m.kind != "missing_id"} <= {
        (e["source_key"], e["line"]) for e in lines
    }
    assert sum(e["reason"].startswith("missing required field payload") for e in lines) == sum(
        m.kind == "missing_id" for m in wydot_bad
    )

    b = cat.ingest("wydot_backup", "TIM", d_nd, d_nd, timezone="UTC", rate_limit=0)
    backup = parts[f"wydot_backup/TIM/{d_nd:%Y/%m/%d}"]
    assert (b.rows, b.quarantined) == (backup.records, backup.malformed)
    pa = set(cat.query("select distinct packet_id from wydot_tim").packet_id)
    pb = set(cat.query("select distinct packet_id from wydot_backup_tim").packet_id)
    assert pb == set(backup.vehicles) and not pa & pb
    assert cat.query("select count(*) as n from wydot_tim").n[0] == sum(
        p.records for k, p in parts.items() if k.startswith("wydot/")
    )
    soc = cat.query("select count(*) as n from wydot_backup_tim_socrata").n[0]
    regions = cat.query(
        "select sum(greatest(coalesce(region_count, 0), 1)) as n from wydot_backup_tim"
    ).n[0]
    assert soc == regions


# -- property: generated TIM records survive JSON -> Parquet -> view ---------------------------

safe_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
times = st.datetimes(min_value=datetime(2017, 1, 1), max_value=datetime(2030, 12, 31)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
)


@st.composite
def items(draw: st.DrawFn) -> list[dict[str, Any]]:
    return draw(
        st.lists(
            st.one_of(
                st.builds(lambda c: {"itis": c}, st.integers(0, 65535)),
                st.builds(lambda t: {"text": t}, safe_text),
            ),
            min_size=1,
            max_size=4,
        )
    )


@st.composite
def frames(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    f = copy.deepcopy(base)
    f["startYear"] = draw(st.integers(2000, 2030))
    f["startTime"] = draw(st.integers(0, 527039))
    f.pop("duratonTime", None)
    f[draw(st.sampled_from(["duratonTime", "durationTime"]))] = draw(st.integers(0, 32000))
    f["priority"] = draw(st.integers(0, 7))
    its = draw(items())
    seq = [{"item": i} for i in its]
    kind = draw(
        st.sampled_from(["advisory", "workZone", "genericSign", "speedLimit", "exitService"])
    )
    f["content"] = {kind: {"SEQUENCE": seq[0] if len(seq) == 1 and draw(st.booleans()) else seq}}
    region = py_regions(base)[0]
    regions = []
    for _ in range(draw(st.integers(0, 2))):
        g = copy.deepcopy(region)
        g["anchor"] = {
            "lat": draw(st.integers(-900000000, 900000000)),
            "long": draw(st.integers(-1799999999, 1800000000)),
            "elevation": draw(st.integers(-4095, 61439)),
        }
        regions.append(g)
    shape = draw(st.sampled_from(["object", "list_of_wrappers", "bare_list"]))
    if shape == "object" and regions:
        f["regions"] = {"GeographicalPath": regions[0] if len(regions) == 1 else regions}
    elif shape == "list_of_wrappers":
        f["regions"] = [{"GeographicalPath": g} for g in regions]
    else:
        f["regions"] = regions
    return f


@st.composite
def tim_records(draw: st.DrawFn) -> dict[str, Any]:
    rec = sample(draw(st.sampled_from(SAMPLES)))
    md = rec["metadata"]
    generated = draw(times)
    style = draw(st.sampled_from(["Z", "Z[UTC]", "", "+00:00"]))
    md["recordGeneratedAt"] = generated.isoformat(timespec="milliseconds") + style
    md["odeReceivedAt"] = (generated + timedelta(seconds=draw(st.integers(0, 10**6)))).isoformat(
        timespec="milliseconds"
    ) + "Z"
    tim = tim_of(rec)
    base = py_frames(tim)[0]
    tim["msgCnt"] = draw(st.integers(0, 127))
    tim["packetID"] = draw(
        st.one_of(
            st.integers(0, 2**72 - 1).map(lambda x: f"{x:018X}"),
            st.integers(10**17, 10**18),
        )
    )
    tim["timeStamp"] = draw(st.integers(0, 527040))
    fs = draw(st.lists(frames(base), max_size=3))
    shape = draw(st.sampled_from(["list", "dict_of_list", "nested", "dict"]))
    if shape == "dict" and len(fs) == 1:
        tim["dataFrames"] = {"TravelerDataFrame": fs[0]}
    elif shape == "nested":
        tim["dataFrames"] = {"dataFrames": {"TravelerDataFrame": fs}}
    elif shape == "dict_of_list":
        tim["dataFrames"] = {"TravelerDataFrame": fs}
    else:
        tim["dataFrames"] = [{"TravelerDataFrame": f} for f in fs]
    return rec


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(tim_records(), min_size=1, max_size=6), seed=st.integers(0, 99))
def test_generated_records_round_trip(records: list[dict[str, Any]], seed: int) -> None:
    for i, rec in enumerate(records):
        rec["metadata"]["serialId"]["recordId"] = i  # to pair rows with records
    split = random.Random(seed).randint(0, len(records))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        con = duckdb.connect()
        try:
            files = [
                RawFile(ndjson(root / "raw" / f"o{i}", [json.dumps(r) for r in part]), f"key/{i}")
                for i, part in enumerate((records[:split], records[split:]))
                if part
            ]
            result = convert(con, files, hive_dir(root))
            expected_rows = sum(max(1, len(py_frames(tim_of(r)))) for r in records)
            assert result.rows == expected_rows and result.quarantined == 0
            for stmt in view_sql(SCHEMA, [str(p) for p in result.parquet_files]):
                con.execute(stmt)
            cur = con.execute(
                "SELECT * REPLACE (epoch_ms(generated_at) AS generated_at, "
                "epoch_ms(received_at) AS received_at, epoch_ms(start_at) AS start_at) "
                "FROM wydot_tim ORDER BY serial_record_id, frame_index NULLS FIRST"
            )
            names = [d[0] for d in cur.description]
            got = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
            for i, rec in enumerate(records):
                mine = [r for r in got if r["serial_record_id"] == i]
                assert_matches_record(mine, rec)
                assert {r["source_key"] for r in mine} == {f"key/{0 if i < split else 1}"}
                for r in mine:
                    if r["start_year"] is not None:
                        year = datetime(r["start_year"], 1, 1, tzinfo=UTC)
                        minutes = (year.replace(year=year.year + 1) - year) // timedelta(minutes=1)
                        start = year + timedelta(minutes=r["start_time"])
                        # a minute its year does not have is no time (never the next year's)
                        has = 0 <= r["start_time"] < minutes
                        assert r["start_at"] == (round(start.timestamp() * 1000) if has else None)
                    assert (r["source"], str(r["date"])) == ("wydot", "2018-12-10")
        finally:
            con.close()
