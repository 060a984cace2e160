"""NYCDOT EVENT: the six real samples, validation, the views, the replica, and one month through
the local endpoint (ingest, bin pruning, Dask)."""

from __future__ import annotations

import copy
import functools
import itertools
import json
import random
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cvcatalog.catalog import Catalog
from cvcatalog.cli.main import app
from cvcatalog.config import ValidationConfig
from cvcatalog.exceptions import ConfigError
from cvcatalog.pipeline.report import Summary as IngestSummary
from cvcatalog.quality.report import build_report
from cvcatalog.sandbox.replica import (
    SeedReport,
    hour_contexts,
    iter_replica,
    new_report,
    seed_replica,
)
from cvcatalog.sandbox.replica_blocks import MALFORMED_KINDS, ReplicaSpec
from cvcatalog.sandbox.replica_nycdot import (
    CRUMB_TIME_UNAVAILABLE,
    NO_TARGET_ID,
    NO_TARGET_SEQ,
    V2V_TYPES,
    event_record,
    events_in_bin,
)
from cvcatalog.schemas import SCHEMAS, list_literal, view_sql
from cvcatalog.schemas.nycdot import EVENT_TYPES, NYCDOT_SCHEMA_VERSION, PARAMETERS
from cvcatalog.sources import cvpilot
from cvcatalog.sources.bucket import BUCKET, PartitionKey
from cvcatalog.transform import ConvertResult, RawFile, convert_partition

SANDBOX = Path(__file__).parent / "fixtures" / "sandbox"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "samples" / "sandbox"
SCHEMA = SCHEMAS[("nycdot", "EVENT")]
KEEP_ALL = ValidationConfig(drop_invalid_records=False)
APRIL = date(2021, 4, 1)

#: The NycdotEVENTFlattener column list of data.transportation.gov, in order.
SOCRATA_51 = [
    "eventHeader_eventTimeBin",
    "dayOfWeekBin",
    "timeOfDayBin",
    "eventHeader_eventLocationBin",
    "nearRSU",
    "bureauBin",
    "roadTypeBin",
    "eventHeader_locationSource",
    "eventHeader_asdFirmwareVersion",
    "eventHeader_eventAlertActive",
    "eventHeader_eventAlertSent",
    "eventHeader_eventAlertHeard",
    "eventHeader_hostVehID",
    "eventHeader_targetVehID",
    "eventHeader_triggerHVSeqNum",
    "eventHeader_triggerTVSeqNum",
    "eventHeader_eventType",
    "eventHeader_eventStatus",
    "eventHeader_grpId",
    "eventHeader_weatherCondition",
    "eventHeader_airTemperature",
    "eventHeader_precipitation1Hr",
    "eventHeader_windSpeed",
    "eventHeader_speedCondition",
    "eventHeader_lastPlowed",
    "eventHeader_parameters_recordingROI",
    "eventHeader_parameters_timeRecordBefore",
    "eventHeader_parameters_timeRecordFollow",
    "eventHeader_parameters_timeRecordResolution",
    "eventHeader_parameters_minSpdThreshold",
    "eventHeader_parameters_timeToCrash",
    "eventHeader_parameters_excessiveCurveSpd",
    "eventHeader_parameters_excessiveSpd",
    "eventHeader_parameters_excessiveSpdTime",
    "eventHeader_parameters_excessiveCurveSpdTime",
    "eventHeader_parameters_excessiveZoneSpd",
    "eventHeader_parameters_excessiveZoneSpdTime",
    "eventHeader_parameters_minCurveSpd",
    "eventHeader_parameters_minZoneSpd",
    "eventHeader_parameters_stopBarTolerance",
    "eventHeader_parameters_yellowDurationTolerance",
    "eventHeader_parameters_hardBrakingThreshold",
    "eventHeader_parameters_assumedDriverBraking",
    "eventHeader_parameters_postedHeightLimit",
    "eventHeader_parameters_postedSizeLimit",
    "eventHeader_parameters_postedZoneSpeed",
    "eventHeader_parameters_regulatorySpeed",
    "bsmList",
    "mapList",
    "spatList",
    "timList",
]

#: Values read off each sample file: (hostVehID, targetVehID, eventLocationBin, BSMs, TIMs,
#: first BSM's X_m and speed_mps).
SAMPLES: dict[str, tuple[str, str, str, int, int, float, float]] = {
    "cspdomp": ("6DC209B0", "00000000", "NY-MN-FWY", 23, 0, 221.014, 19.54),
    "evacinfo": ("4F6155C4", "00000000", "CV-MN-1wayAve", 231, 2, -70.766, 0.0),
    "fcw": ("C7D30386", "A305214A", "NY-QN-FWY", 322, 0, -120.422, 22.2),
    "ima": ("6B3ECA5D", "19C85AFD", "NY-BX-OTH", 521, 0, -104.32, 7.1),
    "ovcclearancelimit": ("3B898E91", "00000000", "NY-QN-ART", 356, 2, -28.731, 0.0),
    "spdcomp": ("07D4FB56", "00000000", "CV-MN-2wayAve", 29, 0, 176.755, 13.46),
}


# -- helpers ----------------------------------------------------------------------------------


def sample_path(event_type: str) -> Path:
    return SANDBOX / f"nycdot-{event_type}-event.json"


@functools.cache
def _sample_text(event_type: str) -> str:
    return sample_path(event_type).read_text()


def sample(event_type: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(_sample_text(event_type))
    return doc


def hive_dir(root: Path, bins: tuple[str, str] = ("FRI", "AM")) -> Path:
    return (
        root / "source=nycdot/message_type=EVENT/year=2021/month=04"
        f"/weekday={bins[0]}/time_bin={bins[1]}"
    )


def ndjson(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def convert(
    con: duckdb.DuckDBPyConnection,
    files: list[RawFile],
    out: Path,
    validation: ValidationConfig | None = None,
) -> ConvertResult:
    return convert_partition(con, SCHEMA, files, out, validation=validation or ValidationConfig())


def fetch(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def small_event(**header: Any) -> dict[str, Any]:
    """The spdcomp sample cut to two BSMs, with header fields replaced (None deletes)."""
    rec = sample("spdcomp")
    rec["bsmList"] = rec["bsmList"][:2]
    for k, v in header.items():
        if v is None:
            rec["eventHeader"].pop(k, None)
        else:
            rec["eventHeader"][k] = v
    return rec


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    c = duckdb.connect()
    yield c
    c.close()


@pytest.fixture(scope="module")
def samples_catalog(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """All six samples converted (one object each, NDJSON as in the bucket) with the views."""
    root = tmp_path_factory.mktemp("samples")
    c = duckdb.connect()
    files: list[str] = []
    for event_type in SAMPLES:
        out = hive_dir(root) / event_type
        result = convert(
            c, [RawFile(sample_path(event_type), f"nycdot/EVENT/2021/04/FRI/AM/{event_type}")], out
        )
        assert (result.rows, result.quarantined, result.warnings) == (1, 0, {}), event_type
        assert result.schema_versions == [NYCDOT_SCHEMA_VERSION] and not result.unknown_versions
        files += [str(p) for p in result.parquet_files]
    for stmt in view_sql(SCHEMA, files):
        c.execute(stmt)
    yield c
    c.close()


# -- the real samples -------------------------------------------------------------------------


def test_fixtures_are_the_published_samples() -> None:
    if not SHARED.exists():
        pytest.skip("../shared/samples not present")
    for event_type in SAMPLES:
        name = f"nycdot-{event_type}-event.json"
        assert (SANDBOX / name).read_bytes() == (SHARED / name).read_bytes(), name


@pytest.mark.parametrize("event_type", list(SAMPLES))
def test_sample_is_one_event_with_its_values(
    samples_catalog: duckdb.DuckDBPyConnection, event_type: str
) -> None:
    host, target, location, n_bsm, n_tim, x0, speed0 = SAMPLES[event_type]
    [row] = fetch(samples_catalog, f"SELECT * FROM nycdot_event WHERE event_type = '{event_type}'")
    assert (row["host_veh_id"], row["target_veh_id"], row["event_location_bin"]) == (
        host,
        target,
        location,
    )
    assert row["event_time_bin"] == "2021-04-FRI-AM"
    assert (row["event_year"], row["event_month"]) == (2021, 4)
    assert (row["event_weekday"], row["event_time_of_day"]) == ("FRI", "AM")
    assert (row["year"], row["month"], row["weekday"], row["time_bin"]) == (2021, 4, "FRI", "AM")
    assert (row["source"], row["message_type"]) == ("nycdot", "EVENT")
    assert (row["bsm_count"], row["tim_count"], row["map_count"], row["spat_count"]) == (
        n_bsm,
        n_tim,
        0,
        0,
    )
    assert row["bsm_list"][0]["x_m"] == x0 and row["bsm_list"][0]["speed_mps"] == speed0
    assert row["schema_version"] == NYCDOT_SCHEMA_VERSION
    assert row["invalid_reason"] is None and row["warnings"] == []
    assert row["event_status"] == "Obfuscated"
    assert row["source_key"] == f"nycdot/EVENT/2021/04/FRI/AM/{event_type}"

    # the whole header, flat
    h = sample(event_type)["eventHeader"]
    assert row["location_source"] == h["locationSource"]
    assert row["asd_firmware_version"] == h["asdFirmwareVersion"]
    assert (row["event_alert_active"], row["event_alert_sent"], row["event_alert_heard"]) == (
        h["eventAlertActive"],
        h["eventAlertSent"],
        h["eventAlertHeard"],
    )
    assert (row["trigger_hv_seq_num"], row["trigger_tv_seq_num"]) == (
        h["triggerHVSeqNum"],
        h["triggerTVSeqNum"],
    )
    assert row["grp_id"] == h["grpId"] and row["weather_condition"] == h["weatherCondition"]
    assert (
        row["air_temperature_f"] == h["airTemperature"] and row["wind_speed_kt"] == h["windSpeed"]
    )
    assert row["precipitation_1hr"] == h["precipitation1Hr"] and row["precipitation_1hr_in"] == 0.0
    assert row["speed_condition_mph"] == h.get("speedCondition")
    assert row["last_plowed_min"] is None
    assert json.loads(row["parameters"]) == h["parameters"]
    assert row["param_recording_roi"] == 300.0
    assert row["param_time_record_resolution"] == h["parameters"]["timeRecordResolution"]
    assert row["param_time_record_before"] == float(h["parameters"]["timeRecordBefore"])


@pytest.mark.parametrize("event_type", list(SAMPLES))
def test_bsm_view_has_one_row_per_bsm_with_exact_values(
    samples_catalog: duckdb.DuckDBPyConnection, event_type: str
) -> None:
    rec = sample(event_type)
    got = fetch(
        samples_catalog,
        f"SELECT * FROM nycdot_event_bsm WHERE event_type = '{event_type}' ORDER BY bsm_index",
    )
    assert len(got) == len(rec["bsmList"]) == SAMPLES[event_type][3]
    h = rec["eventHeader"]
    for i, (row, bsm) in enumerate(zip(got, rec["bsmList"], strict=True)):
        core = bsm["bsmRecord"]["bsmMsg"]["coreData"]
        assert row["bsm_index"] == i + 1
        assert (row["host_veh_id"], row["event_time_bin"]) == (h["hostVehID"], h["eventTimeBin"])
        assert row["source_key"] == f"nycdot/EVENT/2021/04/FRI/AM/{event_type}"
        assert row["event_msg_seq_num"] == bsm["eventMsgSeqNum"]
        assert (row["vehicle_id"], row["msg_cnt"]) == (core["id"], core["msgCnt"])
        assert (row["x_m"], row["y_m"], row["z_m"], row["t_s"]) == (
            core["X_m"],
            core["Y_m"],
            core["Z_m"],
            core["T_s"],
        )
        assert (row["speed_mps"], row["heading_deg"]) == (core["speed_mps"], core["heading_deg"])
        assert row["accel_yaw_dps"] == core["accelSet"]["yaw_dps"]
        assert row["accel_long_mps2"] == core["accelSet"]["long_mpss"]
        assert row["accuracy_semi_major"] == core["accuracy"]["semiMajor"]
        assert (row["size_width_cm"], row["size_length_cm"]) == (
            core["size"]["width"],
            core["size"]["length"],
        )
        assert row["brakes_wheel_brakes"] == core["brakes"]["wheelBrakes"]
        assert row["my_rf_level"] == bsm["bsmRecord"]["msgHeader"]["myRFLevel"]
        assert json.loads(row["part_ii"]) == bsm["bsmRecord"]["bsmMsg"]["partII"]
        vse = bsm["bsmRecord"]["bsmMsg"]["partII"][0]["partII-Value"]
        assert json.loads(row["path_history"]) == vse["pathHistory"]["crumbData"]
        assert row["path_radius_of_curve"] == vse["pathPrediction"]["radiusOfCurve"]
        assert row["vehicle_role"] == (
            "host" if core["id"] == h["hostVehID"] else "target"
            if core["id"] == h["targetVehID"] else "other"
        )  # fmt: skip
        assert (row["weekday"], row["time_bin"]) == ("FRI", "AM")


def test_trigger_bsms_and_roles(samples_catalog: duckdb.DuckDBPyConnection) -> None:
    roles = dict(
        samples_catalog.execute(
            "SELECT vehicle_role, count(*) FROM nycdot_event_bsm WHERE event_type = 'fcw' "
            "GROUP BY 1"
        ).fetchall()
    )
    assert roles == {"host": 161, "target": 161}
    trig = fetch(
        samples_catalog,
        "SELECT event_type, vehicle_role, event_msg_seq_num FROM nycdot_event_bsm "
        "WHERE is_trigger ORDER BY 1, 2",
    )
    for row in trig:
        h = sample(row["event_type"])["eventHeader"]
        key = "triggerHVSeqNum" if row["vehicle_role"] == "host" else "triggerTVSeqNum"
        assert row["event_msg_seq_num"] == h[key]


def test_tim_view_has_one_row_per_tim(samples_catalog: duckdb.DuckDBPyConnection) -> None:
    rows = fetch(samples_catalog, "SELECT * FROM nycdot_event_tim ORDER BY event_type, msg_index")
    assert [(r["event_type"], r["msg_index"]) for r in rows] == [
        ("evacinfo", 1),
        ("evacinfo", 2),
        ("ovcclearancelimit", 1),
        ("ovcclearancelimit", 2),
    ]
    for r in rows:
        tim = sample(r["event_type"])["timList"][r["msg_index"] - 1]
        assert json.loads(r["message"]) == tim
        assert r["seq_num"] == tim["seqNum"]
        assert r["packet_id"] == tim["timRecord"]["timMsg"]["packetID"]
        assert r["my_rf_level"] == tim["timRecord"]["msgHeader"]["myRFLevel"]
    assert samples_catalog.execute("SELECT count(*) FROM nycdot_event_map").fetchone() == (0,)
    assert samples_catalog.execute("SELECT count(*) FROM nycdot_event_spat").fetchone() == (0,)


def test_socrata_view_names_and_values(samples_catalog: duckdb.DuckDBPyConnection) -> None:
    cur = samples_catalog.execute("SELECT * FROM nycdot_event_socrata")
    names = [d[0] for d in cur.description]
    assert names == [*SOCRATA_51, "source"]
    assert len(SOCRATA_51) == 51
    assert [n for n, _ in SCHEMA.socrata_columns] == names
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    assert len(rows) == 6
    for row in rows:
        rec = sample(row["eventHeader_eventType"])
        h = rec["eventHeader"]
        assert (row["dayOfWeekBin"], row["timeOfDayBin"]) == ("FRI", "AM")
        rsu, borough, road = h["eventLocationBin"].split("-")
        assert (row["nearRSU"], row["bureauBin"], row["roadTypeBin"]) == (
            rsu == "CV",
            borough,
            road,
        )
        for key, value in h.items():
            if key == "parameters":
                for p in PARAMETERS:
                    assert row[f"eventHeader_parameters_{p}"] == value.get(p), p
            else:
                assert row[f"eventHeader_{key}"] == value, key
        assert row["eventHeader_lastPlowed"] is None
        # the lists as JSON text, as the flattener wrote them
        assert json.loads(row["bsmList"]) == rec["bsmList"]
        assert (json.loads(row["timList"]) if row["timList"] else None) == rec.get("timList")
        assert row["mapList"] is None and row["spatList"] is None
        assert row["source"] == "nycdot"


def test_parquet_columns_have_the_canonical_types(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    result = convert(con, [RawFile(sample_path("evacinfo"), "k")], tmp_path / "out")
    got = con.execute(
        "DESCRIBE SELECT * FROM read_parquet("
        f"{list_literal(map(str, result.parquet_files))}, hive_partitioning = false)"
    ).fetchall()
    want = con.execute(f"DESCRIBE {SCHEMA.empty_select_sql()}").fetchall()
    assert [(r[0], r[1]) for r in got] == [(r[0], r[1]) for r in want]
    assert [r[0] for r in got] == SCHEMA.column_names


def test_empty_views_have_every_column(con: duckdb.DuckDBPyConnection) -> None:
    for stmt in view_sql(SCHEMA, []):
        con.execute(stmt)
    cur = con.execute("SELECT * FROM nycdot_event")
    assert [d[0] for d in cur.description] == [n for n, _ in SCHEMA.view_columns]
    assert cur.fetchall() == []
    for view in ("nycdot_event_socrata", "nycdot_event_bsm", "nycdot_event_map",
                 "nycdot_event_spat", "nycdot_event_tim"):  # fmt: skip
        assert con.execute(f"SELECT count(*) FROM {view}").fetchone() == (0,)
    assert SCHEMA.time_column is None
    assert [n for n, _ in SCHEMA.partition_columns] == [
        "source",
        "message_type",
        "year",
        "month",
        "weekday",
        "time_bin",
    ]


# -- validation -------------------------------------------------------------------------------


def test_invalid_events_are_quarantined_with_their_reason(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    no_header = small_event()
    del no_header["eventHeader"]
    lines = [
        json.dumps(small_event()),
        json.dumps(no_header),
        json.dumps(small_event(eventType=None)),
        json.dumps(small_event(eventTimeBin=None)),
        json.dumps(small_event(eventTimeBin="2021-13-FRI-AM")),
        json.dumps(small_event(eventTimeBin="April 2021")),
        '{"eventHeader": {"eventType": "fcw", "eventTimeBin": "2021-04-FRI-AM"',
        "<html>503</html>",
    ]
    key = "nycdot/EVENT/2021/04/FRI/AM/obj"
    src = ndjson(tmp_path / "raw" / "obj", lines)
    result = convert(con, [RawFile(src, key)], hive_dir(tmp_path / "lake"))
    assert (result.rows, result.quarantined) == (1, 7)
    assert result.reasons == {
        "missing required field eventHeader": 1,
        "missing required field eventHeader.eventType": 1,
        "missing required field eventHeader.eventTimeBin": 1,
        "unparseable eventTimeBin": 2,
        "malformed JSON": 2,
    }
    assert result.quarantine_file is not None
    entries = [json.loads(x) for x in result.quarantine_file.read_text().splitlines()]
    assert all(e["source_key"] == key for e in entries)
    assert sorted(e["line"] for e in entries if e["reason"].startswith("malformed JSON")) == [7, 8]
    assert {e["reason"] for e in entries if e["reason"].startswith("unparseable")} == {
        "unparseable eventTimeBin: 2021-13-FRI-AM",
        "unparseable eventTimeBin: April 2021",
    }
    # invalid records keep their raw content
    raw = next(e["raw"] for e in entries if e["reason"].endswith("eventHeader.eventType"))
    assert json.loads(raw)["eventHeader"]["hostVehID"] == "07D4FB56"


def test_keep_invalid_records_with_a_flag(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    lines = [json.dumps(small_event()), json.dumps(small_event(eventType=None)), "garbage"]
    src = ndjson(tmp_path / "raw" / "obj", lines)
    result = convert(con, [RawFile(src, "k")], hive_dir(tmp_path / "lake"), KEEP_ALL)
    assert (result.rows, result.quarantined) == (2, 1)
    assert result.kept_invalid == {"missing required field eventHeader.eventType": 1}
    for stmt in view_sql(SCHEMA, [str(p) for p in result.parquet_files]):
        con.execute(stmt)
    assert con.execute("SELECT count(*) FROM nycdot_event").fetchone() == (2,)
    assert con.execute("SELECT count(*) FROM nycdot_event_socrata").fetchone() == (1,)
    # the BSM view says which event rows are invalid
    assert con.execute(
        "SELECT count(*) FILTER (WHERE invalid_reason IS NULL), count(*) FROM nycdot_event_bsm"
    ).fetchone() == (2, 4)


def test_odd_values_are_kept_with_warnings(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    fast = small_event(eventType="warpdrive", eventStatus="Raw", eventLocationBin="Queens")
    fast["bsmList"][0]["bsmRecord"]["bsmMsg"]["coreData"]["speed_mps"] = 250.0
    fast["bsmList"][1]["bsmRecord"]["bsmMsg"]["coreData"]["heading_deg"] = 360.5
    empty = small_event()
    empty["bsmList"] = []
    lines = [json.dumps(fast), json.dumps(empty), json.dumps(small_event())]
    src = ndjson(tmp_path / "raw" / "obj", lines)
    # published in the Monday night folder but binned FRI-AM
    result = convert(
        con, [RawFile(src, "nycdot/EVENT/2021/04/MON/NT/obj")], hive_dir(tmp_path, ("MON", "NT"))
    )
    assert (result.rows, result.quarantined) == (3, 0)
    assert result.warnings == {
        "unknown_event_type": 1,
        "event_status_not_obfuscated": 1,
        "location_bin_unparseable": 1,
        "bsm_speed_out_of_range": 1,
        "bsm_heading_out_of_range": 1,
        "no_bsms": 1,
        "time_bin_differs_from_folder": 3,
    }


def test_a_lone_bsm_object_is_a_list_of_one(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """bsmList holding one BSM as an object (a single-element array written as an object, as
    mapList/spatList/timList were already accepted) lost that BSM: bsm_count 0, bsm_list NULL and
    a misleading no_bsms warning. Now it is a list of one, with its values; an event written
    with an array of the same BSM gets the same event_id."""
    lone = small_event(hostVehID="LONE0001")
    lone["bsmList"] = lone["bsmList"][0]
    listed = small_event(hostVehID="LONE0001")
    listed["bsmList"] = listed["bsmList"][:1]
    src = ndjson(tmp_path / "raw" / "obj", [json.dumps(lone), json.dumps(listed)])
    result = convert(con, [RawFile(src, "nycdot/EVENT/2021/04/FRI/AM/obj")], hive_dir(tmp_path))
    # the same event twice: the second is flagged a duplicate, not no_bsms
    assert (result.rows, result.quarantined, result.warnings) == (2, 0, {"duplicate_record": 1})
    for stmt in view_sql(SCHEMA, [str(p) for p in result.parquet_files]):
        con.execute(stmt)
    rows = fetch(con, "SELECT event_id, bsm_count FROM nycdot_event")
    assert [r["bsm_count"] for r in rows] == [1, 1]
    assert rows[0]["event_id"] == rows[1]["event_id"]
    core = sample("spdcomp")["bsmList"][0]["bsmRecord"]["bsmMsg"]["coreData"]
    bsms = fetch(con, "SELECT vehicle_id, x_m, t_s, speed_mps FROM nycdot_event_bsm")
    assert bsms == 2 * [
        {"vehicle_id": core["id"], "x_m": core["X_m"], "t_s": core["T_s"],
         "speed_mps": core["speed_mps"]}
    ]  # fmt: skip


def test_na_bins_and_unbinned_locations(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    lines = [
        json.dumps(small_event(eventTimeBin="2021-04-N/A-N/A", eventLocationBin="N/A")),
        json.dumps(small_event(eventTimeBin="2021-04-SUN-N/A", eventLocationBin="nonNYC")),
    ]
    src = ndjson(tmp_path / "raw" / "obj", lines)
    out = hive_dir(tmp_path, ("NA", "NA"))
    result = convert(con, [RawFile(src, "nycdot/EVENT/2021/04/NA/NA/obj")], out)
    assert (result.rows, result.quarantined) == (2, 0)
    assert result.warnings == {"time_bin_differs_from_folder": 1}
    for stmt in view_sql(SCHEMA, [str(p) for p in result.parquet_files]):
        con.execute(stmt)
    rows = fetch(
        con,
        "SELECT event_weekday, event_time_of_day, near_rsu, borough_bin, road_type_bin, weekday, "
        "time_bin FROM nycdot_event ORDER BY event_weekday",
    )
    assert rows == [
        {"event_weekday": "NA", "event_time_of_day": "NA", "near_rsu": None, "borough_bin": None,
         "road_type_bin": None, "weekday": "NA", "time_bin": "NA"},
        {"event_weekday": "SUN", "event_time_of_day": "NA", "near_rsu": None, "borough_bin": None,
         "road_type_bin": None, "weekday": "NA", "time_bin": "NA"},
    ]  # fmt: skip
    soc = con.execute(
        'SELECT "dayOfWeekBin", "timeOfDayBin" FROM nycdot_event_socrata ORDER BY 1'
    ).fetchall()
    assert soc == [("N/A", "N/A"), ("SUN", "N/A")]


# -- hypothesis: headers round-trip -----------------------------------------------------------

_IDS = st.text("0123456789ABCDEF", min_size=8, max_size=8)
_WORDS = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=20)


@st.composite
def headers(draw: st.DrawFn) -> dict[str, Any]:
    wd = draw(st.sampled_from(["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN", "N/A"]))
    tb = draw(st.sampled_from(["NT", "AM", "MD", "PM", "EV", "N/A"]))
    month = draw(st.integers(1, 12))
    params = draw(
        st.dictionaries(
            st.sampled_from(PARAMETERS),
            st.integers(0, 65535).map(str) | st.sampled_from(["resEverySec", "1.5"]),
            max_size=8,
        )
    )
    loc = draw(
        st.sampled_from(["N/A", "nonNYC"])
        | st.builds(
            "{}-{}-{}".format,
            st.sampled_from(["CV", "NY"]),
            st.sampled_from(["MN", "BK", "BX", "QN", "SI"]),
            st.sampled_from(["1wayAve", "2wayAve", "1waySt", "2waySt", "FWY", "ART", "OTH"]),
        )
    )
    h: dict[str, Any] = {
        "locationSource": draw(st.sampled_from(["gps", "gpsrsu", "directgps", "rsutriangulation"])),
        "asdFirmwareVersion": draw(_WORDS),
        "eventAlertActive": draw(st.booleans()),
        "eventAlertSent": draw(st.booleans()),
        "eventAlertHeard": draw(st.booleans()),
        "hostVehID": draw(_IDS),
        "targetVehID": draw(_IDS),
        "triggerHVSeqNum": draw(st.integers(0, 2**40)),
        "triggerTVSeqNum": draw(st.integers(0, 2**40)),
        "eventType": draw(st.sampled_from(EVENT_TYPES)),
        "parameters": params,
        "grpId": draw(st.integers(0, 255)),
        "eventStatus": "Obfuscated",
        "eventTimeBin": f"{draw(st.integers(2018, 2030))}-{month:02d}-{wd}-{tb}",
        "eventLocationBin": loc,
        "weatherCondition": draw(_WORDS),
        "airTemperature": draw(st.integers(-40, 120)),
        "precipitation1Hr": draw(st.sampled_from(["0.00", "0.13", "M"])),
        "windSpeed": draw(st.integers(0, 80)),
    }
    if draw(st.booleans()):
        h["speedCondition"] = draw(st.integers(0, 90))
    if draw(st.booleans()):
        h["lastPlowed"] = draw(st.sampled_from([-1, 5, 240]))
    return h


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hs=st.lists(headers(), min_size=1, max_size=6))
def test_generated_headers_round_trip(hs: list[dict[str, Any]]) -> None:
    base = small_event()
    records = []
    for i, h in enumerate(hs):
        rec = copy.deepcopy(base)
        rec["eventHeader"] = {**h, "triggerHVSeqNum": i}  # to pair rows with headers
        records.append(rec)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        con = duckdb.connect()
        try:
            src = ndjson(root / "raw" / "obj", [json.dumps(r) for r in records])
            result = convert(con, [RawFile(src, "key")], hive_dir(root))
            assert (result.rows, result.quarantined) == (len(hs), 0)
            for stmt in view_sql(SCHEMA, [str(p) for p in result.parquet_files]):
                con.execute(stmt)
            rows = fetch(con, "SELECT * FROM nycdot_event ORDER BY trigger_hv_seq_num")
            soc = fetch(
                con, 'SELECT * FROM nycdot_event_socrata ORDER BY "eventHeader_triggerHVSeqNum"'
            )
            for i, (row, s, rec) in enumerate(zip(rows, soc, records, strict=True)):
                h = rec["eventHeader"]
                assert row["trigger_hv_seq_num"] == i
                for key, value in h.items():
                    if key != "parameters":
                        assert s[f"eventHeader_{key}"] == value, key
                for p in PARAMETERS:
                    assert s[f"eventHeader_parameters_{p}"] == h["parameters"].get(p)
                assert json.loads(row["parameters"]) == h["parameters"]
                year, month, wd, tb = h["eventTimeBin"].split("-")
                assert (row["event_year"], row["event_month"]) == (int(year), int(month))
                assert (row["event_weekday"], row["event_time_of_day"]) == (
                    wd.replace("N/A", "NA"),
                    tb.replace("N/A", "NA"),
                )
                assert (row["host_veh_id"], row["event_type"]) == (h["hostVehID"], h["eventType"])
                assert row["speed_condition_mph"] == h.get("speedCondition")
                assert row["last_plowed_min"] == h.get("lastPlowed")
                assert row["invalid_reason"] is None
                assert row["bsm_count"] == 2
        finally:
            con.close()


# -- the replica ------------------------------------------------------------------------------


def _key_paths(doc: Any, path: str = "", out: set[str] | None = None) -> set[str]:
    out = set() if out is None else out
    if isinstance(doc, dict):
        for k, v in doc.items():
            _key_paths(v, f"{path}.{k}", out)
    elif isinstance(doc, list):
        for v in doc:
            _key_paths(v, path + "[]", out)
    else:
        out.add(path)
    return out


@functools.lru_cache(maxsize=1)
def _sample_key_paths() -> frozenset[str]:
    return frozenset(set().union(*(_key_paths(sample(t)) for t in SAMPLES)))


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_replica_events_have_the_real_shape(event_type: str) -> None:
    rec = event_record(random.Random(event_type), APRIL, ("TUE", "PM"), event_type=event_type)
    h = rec["eventHeader"]
    known = _sample_key_paths()
    header_keys = [k for k in sample("evacinfo")["eventHeader"] if k != "speedCondition"]
    assert list(h)[: len(header_keys)] == header_keys
    assert set(h) <= {*header_keys, "speedCondition", "lastPlowed"}
    assert set(h["parameters"]) <= set(PARAMETERS)
    assert all(isinstance(v, str) for v in h["parameters"].values())
    assert (h["eventType"], h["eventTimeBin"], h["eventStatus"]) == (
        event_type,
        "2021-04-TUE-PM",
        "Obfuscated",
    )
    bsm_paths = _key_paths(rec["bsmList"], ".bsmList")
    assert bsm_paths <= known, bsm_paths - known
    if "timList" in rec:
        assert _key_paths(rec["timList"], ".timList") <= known

    before = float(h["parameters"]["timeRecordBefore"])
    follow = float(h["parameters"]["timeRecordFollow"])
    cores = [b["bsmRecord"]["bsmMsg"]["coreData"] for b in rec["bsmList"]]
    ids = Counter(c["id"] for c in cores)
    assert all(-before - 0.01 <= c["T_s"] <= follow + 0.01 for c in cores)
    assert all(0 <= c["heading_deg"] < 360 and c["speed_mps"] >= 0 for c in cores)
    seqs = [b["eventMsgSeqNum"] for b in rec["bsmList"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert [c["T_s"] for c in cores] == sorted(c["T_s"] for c in cores)
    [trigger] = [b for b in rec["bsmList"] if b["eventMsgSeqNum"] == h["triggerHVSeqNum"]]
    tc = trigger["bsmRecord"]["bsmMsg"]["coreData"]
    assert (tc["id"], tc["X_m"], tc["Y_m"], tc["Z_m"]) == (h["hostVehID"], 0.0, 0.0, 0.0)
    assert -0.1 < tc["T_s"] <= 0.0
    if event_type in V2V_TYPES:
        assert h["targetVehID"] != NO_TARGET_ID and ids[h["targetVehID"]] > 0
        [tv] = [b for b in rec["bsmList"] if b["eventMsgSeqNum"] == h["triggerTVSeqNum"]]
        assert tv["bsmRecord"]["bsmMsg"]["coreData"]["id"] == h["targetVehID"]
        assert h["parameters"]["timeRecordResolution"] == "resOneTenthOfSec"
    else:
        assert (h["targetVehID"], h["triggerTVSeqNum"]) == (NO_TARGET_ID, NO_TARGET_SEQ)
        assert set(ids) == {h["hostVehID"]}
    if event_type in ("rlvw", "pedinxwalk"):
        assert rec["mapList"][0]["mapRecord"]["mapMsg"]["intersections"][0]["id"] == {"id": "A"}
        assert rec["spatList"]
    if event_type in ("evacinfo", "ovcclearancelimit", "spdcompwz"):
        assert rec["timList"][0]["timRecord"]["timMsg"]["packetID"] == "A"
    # the host moves consistently with its speed and heading between 1 s BSMs
    host = [c for c in cores if c["id"] == h["hostVehID"]]
    for a, b in itertools.pairwise(host):
        dt = b["T_s"] - a["T_s"]
        dist = ((b["X_m"] - a["X_m"]) ** 2 + (b["Y_m"] - a["Y_m"]) ** 2) ** 0.5
        assert dist <= max(a["speed_mps"], b["speed_mps"]) * dt * 1.3 + 0.5


def test_replica_crumbs_are_past_offsets() -> None:
    rec = event_record(random.Random(1), APRIL, ("FRI", "AM"), event_type="fcw")
    for b in rec["bsmList"]:
        vse = b["bsmRecord"]["bsmMsg"]["partII"][0]["partII-Value"]
        times = [c["tOffset_s"] for c in vse["pathHistory"]["crumbData"]]
        assert times and all(t < 0 for t in times)
        real = [t for t in times if t != CRUMB_TIME_UNAVAILABLE]
        assert real == sorted(real, reverse=True)


def test_replica_layout_bins_and_report() -> None:
    spec = ReplicaSpec(
        start=date(2021, 4, 28), end=date(2021, 5, 2), sources=("nycdot",),
        message_types=("EVENT",), records_per_hour=1, files_per_hour=1, empty_hour_rate=0.7,
        malformed_per_day=1,
    )  # fmt: skip
    report = new_report(spec)
    assert len(report.partitions) == 96  # every bin of April and May
    assert all(PartitionKey.parse(k).bins for k in report.partitions)
    key_re = re.compile(
        r"^nycdot/EVENT/2021/0[45]/(MON|TUE|WED|THU|FRI|SAT|SUN|NA)/(NT|AM|MD|PM|EV|NA)/"
        r"nycdot-event-2021-0[45]-\1-\2-[0-9a-f-]{36}$"
    )
    bodies: dict[str, list[str]] = {}
    for obj in iter_replica(spec):
        report.add(obj)
        bodies[obj.key] = obj.body.decode().splitlines()
        assert key_re.match(obj.key), obj.key
        assert obj.key.startswith(obj.partition.key + "/")
        lines = obj.body.decode().splitlines()
        assert len(lines) == obj.records + len(obj.malformed)
        bad = {m.line for m in obj.malformed}
        for i, line in enumerate(lines, 1):
            if i in bad:
                continue
            rec = json.loads(line)
            wd, tb = obj.partition.bins or ("", "")
            want = "-".join("N/A" if b == "NA" else b for b in (wd, tb))
            assert rec["eventHeader"]["eventTimeBin"] == f"2021-{obj.partition.day:%m}-{want}"
        assert sum(obj.vehicles.values()) == obj.records
    filled = [p for p in report.partitions.values() if not p.no_data]
    assert 10 < len(filled) < 60
    for p in filled:
        assert p.records == 1
        assert p.malformed == 1 and p.schema_versions == {NYCDOT_SCHEMA_VERSION}
        assert p.first_record_at is None and p.hours == {0: p.records}
    assert {m.kind for m in report.malformed_lines} == set(MALFORMED_KINDS)
    for m in report.malformed_lines:
        text = bodies[m.key][m.line - 1]
        if m.kind == "missing_id":
            assert "eventType" not in json.loads(text)["eventHeader"]
        else:
            with pytest.raises(ValueError):
                json.loads(text)


def test_na_bins_hold_fewer_events() -> None:
    assert events_in_bin(8, ("FRI", "AM")) == 8
    assert events_in_bin(8, ("NA", "AM")) == events_in_bin(8, ("FRI", "NA")) == 2
    assert events_in_bin(1, ("NA", "NA")) == 1 and events_in_bin(0, ("NA", "NA")) == 0


def test_replica_is_deterministic_and_binned_contexts_only() -> None:
    spec = ReplicaSpec(
        start=APRIL, end=date(2021, 4, 30), sources=("nycdot",), message_types=("EVENT",),
        records_per_hour=1, empty_hour_rate=0.5,
    )  # fmt: skip
    contexts = list(hour_contexts(spec))
    assert all(c.hour == 0 and c.partition.bins for c in contexts)
    assert len({c.partition.key for c in contexts}) == len(contexts) <= 48
    one = [(o.key, o.body) for o in iter_replica(spec)]
    two = [(o.key, o.body) for o in iter_replica(spec)]
    assert one == two and len(one) == len(contexts)


# -- one month through the local endpoint -----------------------------------------------------


def _seed_april(client: Any) -> SeedReport:
    """April 2021 in the bucket (the same objects every time)."""
    return seed_replica(
        client, APRIL, date(2021, 4, 30), sources=("nycdot",), message_types=("EVENT",),
        seed=9, records_per_hour=2, files_per_hour=2, empty_hour_rate=0.75,
        malformed_per_day=1,
    )  # fmt: skip


@pytest.fixture(scope="module")
def april(
    module_s3: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Catalog, SeedReport, IngestSummary]]:
    """April 2021 seeded and ingested once for the tests below (ingest is the slow part)."""
    report = _seed_april(module_s3)
    cat = Catalog(tmp_path_factory.mktemp("april") / "catalog")
    summary = cat.ingest(
        "nycdot", "EVENT", "2021-04-01", "2021-04-30",
        timezone="America/New_York", rate_limit=0, max_workers=4,
    )  # fmt: skip
    yield cat, report, summary


def test_ingest_gives_exactly_the_seeded_events(
    april: tuple[Catalog, SeedReport, IngestSummary],
) -> None:
    cat, report, s = april
    assert s.ok, s.as_dict()
    empty = len(report.empty_partitions)
    assert len(report.partitions) == 48 and 0 < empty < 48
    assert (s.count("complete"), s.count("no_data"), s.count("failed")) == (48 - empty, empty, 0)
    assert s.list_requests == 1 and s.get_requests == report.objects  # one LIST of the month
    assert s.rows == report.records
    assert s.quarantined == report.malformed == 48 - empty
    per_bin = {
        (r["weekday"], r["time_bin"]): r["n"]
        for r in cat.query_arrow(
            "select weekday, time_bin, count(*) as n from nycdot_event group by all"
        ).to_pylist()
    }
    for key, part in report.partitions.items():
        bins = PartitionKey.parse(key).bins
        assert per_bin.get(bins, 0) == part.records, key
    hosts = cat.query("select host_veh_id, count(*) as n from nycdot_event group by 1")
    expected: Counter[str] = Counter()
    for part in report.partitions.values():
        expected.update(part.vehicles)
    assert dict(zip(hosts.host_veh_id, hosts.n, strict=True)) == dict(expected)
    # every event's BSMs are in the BSM view; headers agree with the folders
    n = cat.query(
        "select (select count(*) from nycdot_event_bsm) as bsms, sum(bsm_count) as total, "
        "count(*) filter (where event_weekday <> weekday or event_time_of_day <> time_bin "
        "or event_year <> year or event_month <> month) as off_bin, "
        "count(*) filter (where len(warnings) > 0) as warned from nycdot_event"
    )
    assert n.bsms[0] == n.total[0] > 0 and n.off_bin[0] == 0 and n.warned[0] == 0
    status = {r["partition"]: r["status"] for r in cat.status("nycdot", "EVENT")}
    assert status["nycdot/EVENT/2021/04/FRI/AM"] == "complete"
    assert cat.verify().clean


def test_quarantine_holds_every_broken_line(
    april: tuple[Catalog, SeedReport, IngestSummary],
) -> None:
    cat, report, _ = april
    q = cat.query("select path from partition_files where kind = 'quarantine'")
    entries = []
    for rel in q.path:
        entries += [json.loads(x) for x in (cat.paths.root / rel).read_text().splitlines()]
    assert len(entries) == report.malformed
    located = {(e["source_key"], e["line"]) for e in entries}
    for m in report.malformed_lines:
        if m.kind == "missing_id":
            assert any(
                e["source_key"] == m.key
                and e["reason"] == "missing required field eventHeader.eventType"
                for e in entries
            )
        else:
            assert (m.key, m.line) in located
    assert not any(e["reason"].startswith("malformed JSON count mismatch") for e in entries)


def test_a_bin_filter_reads_only_that_bins_files(
    april: tuple[Catalog, SeedReport, IngestSummary],
) -> None:
    cat, report, _ = april
    fri_am = report.partitions["nycdot/EVENT/2021/04/FRI/AM"]
    assert fri_am.records > 0  # the seed is chosen so
    files = cat.query(
        "select count(*) as n from partition_files "
        "where kind = 'data' and partition_key = 'nycdot/EVENT/2021/04/FRI/AM'"
    ).n[0]
    total = cat.query("select count(*) as n from partition_files where kind = 'data'").n[0]
    assert 0 < files < total
    where = "where weekday = 'FRI' and time_bin = 'AM'"
    con = cat.connect()
    try:
        assert con.execute(f"select count(*) from nycdot_event {where}").fetchone() == (
            fri_am.records,
        )
        # DuckDB answers a bare count(*) from Parquet row counts of the pruned file list, without
        # reading any file; queries that need values read exactly the bin's files
        for sql, allowed in (
            (f"select count(*) from nycdot_event {where}", ([], [files])),
            (f"select count(*), sum(bsm_count) from nycdot_event {where}", ([files],)),
            (f"select count(*) from nycdot_event_bsm {where}", ([files],)),
        ):
            plan = con.execute("EXPLAIN ANALYZE " + sql).fetchall()[0][1]
            read = [int(n) for n in re.findall(r"Total Files Read: *(\d+)", plan)]
            assert read in allowed, (sql, read)
        n_bsm = con.execute(f"select sum(bsm_count) from nycdot_event {where}").fetchone()
        assert con.execute(f"select count(*) from nycdot_event_bsm {where}").fetchone() == n_bsm
    finally:
        con.close()


def test_dask_frame_covers_the_month(april: tuple[Catalog, SeedReport, IngestSummary]) -> None:
    cat, report, _ = april
    ddf = cat.to_dask("nycdot", "EVENT", "2021-04-01", "2021-04-30")
    assert ddf.npartitions == 48 - len(report.empty_partitions)
    assert {"weekday", "time_bin", "year", "month", "bsm_list", "event_type"} <= set(ddf.columns)
    assert len(ddf) == report.records
    df = ddf[["weekday", "time_bin", "year", "month", "host_veh_id"]].compute()
    assert (df.year == 2021).all() and (df.month == 4).all()
    assert Counter(zip(df.weekday, df.time_bin, strict=True)) == Counter(
        {PartitionKey.parse(k).bins: p.records for k, p in report.partitions.items() if p.records}
    )
    # a month outside the catalog is empty, with the same columns
    empty = cat.to_dask("nycdot", "EVENT", "2021-06-01", "2021-06-30")
    assert len(empty) == 0 and list(empty.columns) == list(ddf.columns)
    # data.transportation.gov names, nested bsmList rebuilt per piece
    soc = cat.to_dask("nycdot", "EVENT", "2021-04-01", "2021-04-30", naming="socrata")
    assert [n for n, _ in SCHEMA.socrata_columns] == list(soc.columns)
    pdf = soc.compute()
    assert len(pdf) == report.records and pdf.bsmList.notna().all()
    # nycdot publishes EVENT alone: no type needed ("give the message type of nycdot")
    assert len(cat.to_dask("nycdot", start="2021-04-01", end="2021-04-30")) == report.records
    r = CliRunner().invoke(app, ["changes", "--source", "nycdot", "--since", "0", "--format",
                                 "json", "--catalog", str(cat.paths.root)])  # fmt: skip
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == report.records, r.output
    # ingest and plan too (they said "give --source and --type" to `--source nycdot`)
    days = ["--start", "2021-04-01", "--end", "2021-04-30", "--timezone", "America/New_York",
            "--catalog", str(cat.paths.root), "--format", "json"]  # fmt: skip
    r = CliRunner().invoke(app, ["ingest", "--source", "nycdot", "--no-progress", *days])
    assert r.exit_code == 0, r.output
    done = json.loads(r.stdout)[0]
    assert (done["message_type"], done["days_complete"], done["get_requests"]) == ("EVENT", 0, 0)
    assert done["days_cached"] == 48 - len(report.empty_partitions)
    r = CliRunner().invoke(app, ["plan", "--source", "nycdot", *days])
    assert r.exit_code == 0, r.output
    rows = [p for p in json.loads(r.stdout) if p["partition"] != "TOTAL"]
    assert len(rows) == 48 and not any(p["fetch"] for p in rows)
    # and the library, which the CLI calls (Catalog.ingest and plan asked for a type)
    again = cat.ingest("nycdot", start="2021-04-01", end="2021-04-30",
                       timezone="America/New_York", rate_limit=0)  # fmt: skip
    assert (again.message_type, again.count("cached")) == ("EVENT", 48 - len(report.empty_partitions))
    planned = cat.plan("nycdot", None, "2021-04-01", "2021-04-30", timezone="America/New_York")
    assert planned.message_type == "EVENT" and len(planned.rows) == 48
    assert not any(p["fetch"] for p in planned.rows)
    with pytest.raises(ConfigError, match=r"^give the message type of thea: BSM, TIM, SPAT$"):
        cat.plan("thea", start="2021-04-01")


def test_a_quality_report_of_a_day_is_its_months_bins(
    april: tuple[Catalog, SeedReport, IngestSummary],
) -> None:
    """NYCDOT files a month's events by weekday and time of day: a day's report is that of
    the bins holding it (the month's), and says so; a day of another month has no rows."""
    cat, report, _ = april
    whole = build_report(cat, "nycdot").types[0]
    day = build_report(cat, "nycdot", start=date(2021, 4, 5), timezone="America/New_York")
    one = day.types[0]
    assert (one.rows, one.counts, one.coverage) == (whole.rows, whole.counts, whole.coverage)
    assert one.rows == report.records and any("a NYCDOT bin is" in n for n in one.notes)
    may = build_report(cat, "nycdot", start=date(2021, 5, 5)).types[0]
    assert (may.rows, may.coverage) == (0, []) and "on these days" in may.notes[0]


def test_a_rerun_makes_no_s3_request(
    april: tuple[Catalog, SeedReport, IngestSummary], s3_endpoint: str
) -> None:
    cat, report, first = april
    again = cat.ingest(
        "nycdot", "EVENT", "2021-04-01", "2021-04-30", timezone="America/New_York", rate_limit=0
    )
    assert (again.get_requests, again.list_requests) == (0, 0)
    assert again.rows == 0  # nothing written: each cached bin's outcome has its rows
    assert sum(o.rows for o in again.days) == first.rows == report.records


def test_a_repair_reports_the_rows_of_the_bin_it_fetched_again(
    april: tuple[Catalog, SeedReport, IngestSummary], module_s3: Any, tmp_path: Path
) -> None:
    """A NYCDOT bin is fetched again by an ingest of its whole month (the other bins cached):
    `cache verify --repair` reports the bin's rows, not the month's."""
    cat, report, _ = april
    _seed_april(module_s3)  # again: a test before may have emptied the bucket (s3_endpoint)
    home = tmp_path / "catalog"
    shutil.copytree(cat.paths.root, home)
    key = "nycdot/EVENT/2021/04/FRI/AM"
    want = report.partitions[key].records
    assert 0 < want < report.records
    (rel,) = Catalog(home).query(
        "select path from partition_files where kind = 'data' and partition_key = ?", [key]
    )["path"]
    damaged = bytearray((home / rel).read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    (home / rel).write_bytes(bytes(damaged))
    r = CliRunner().invoke(app, ["cache", "verify", "--repair", "--catalog", str(home)])
    assert r.exit_code == 0, r.output
    assert f"re-fetched {key}: {want:,} rows\n" in r.output
    assert Catalog(home).verify().clean
    n = Catalog(home).query(
        "select count(*) n from nycdot_event where weekday = 'FRI' and time_bin = 'AM'"
    )["n"][0]
    assert n == want


def test_check_changes_lists_the_month_once(
    april: tuple[Catalog, SeedReport, IngestSummary],
    module_s3: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--check-changes of a NYCDOT month listed its 48 bin folders one LIST each; now it lists
    the month once and splits it by bin folder, with the same outcome bin by bin as a LIST
    per bin (the same objects compared by key, size and ETag)."""
    cat, report, _ = april
    _seed_april(module_s3)  # again: a test before may have emptied the bucket (s3_endpoint)
    key = "nycdot/EVENT/2021/04/FRI/AM"
    obj = module_s3.list_objects_v2(Bucket=BUCKET, Prefix=key + "/")["Contents"][0]["Key"]
    body = module_s3.get_object(Bucket=BUCKET, Key=obj)["Body"].read()
    module_s3.put_object(Bucket=BUCKET, Key=obj, Body=body.rstrip(b"\n").rsplit(b"\n", 1)[0])
    runs = {}
    try:
        for name, min_days in (("month", cvpilot.MONTH_LIST_MIN_DAYS), ("bins", 49)):
            monkeypatch.setattr(cvpilot, "MONTH_LIST_MIN_DAYS", min_days)
            home = tmp_path / name
            shutil.copytree(cat.paths.root, home)
            runs[name] = Catalog(home).ingest(
                "nycdot", "EVENT", "2021-04-01", "2021-04-30",
                timezone="America/New_York", rate_limit=0, check_changes=True,
            )  # fmt: skip
    finally:
        _seed_april(module_s3)
    month, bins = runs["month"], runs["bins"]
    assert month.ok and bins.ok, (month.as_dict(), bins.as_dict())
    assert (month.list_requests, bins.list_requests) == (1, 48)
    outcome = {
        name: sorted(
            (o.key, o.status, o.rows, o.added, o.changed, o.removed, o.unchanged, o.detail)
            for o in s.days
        )
        for name, s in runs.items()
    }
    assert outcome["month"] == outcome["bins"]
    changed = {o.key: o for o in month.days if o.changed}
    assert list(changed) == [key] and month.get_requests == bins.get_requests == 1
    assert month.partitions_rewritten == bins.partitions_rewritten == 1
    unchanged = [o for o in month.days if o.detail == "unchanged (checked)"]
    assert len(unchanged) == 48 - len(report.empty_partitions) - 1
