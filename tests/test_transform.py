"""Conversion of one partition of WYDOT BSM raw objects into canonical Parquet, and the views."""

from __future__ import annotations

import copy
import gc
import gzip
import json
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvcatalog import transform
from cvcatalog.config import ValidationConfig
from cvcatalog.io import roworder
from cvcatalog.io.download import HEAD_BYTES
from cvcatalog.schemas import (
    SCHEMAS,
    MessageSchema,
    list_literal,
    quote_ident,
    quote_literal,
    render_sql,
    view_sql,
)
from cvcatalog.transform import (
    ConvertResult,
    RawFile,
    convert_partition,
    convert_partitions,
    order_partition,
)

SANDBOX = Path(__file__).parent / "fixtures" / "sandbox"
SCHEMA = SCHEMAS[("wydot", "BSM")]
VERSIONS = [3, 5, 6]
KEEP_ALL = ValidationConfig(drop_invalid_records=False)

#: The WydotBSMFlattener column list of data.transportation.gov, in order.
SOCRATA_69 = [
    "dataType",
    "metadata_generatedAt",
    "metadata_generatedBy",
    "metadata_logFileName",
    "metadata_schemaVersion",
    "metadata_securityResultCode",
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
    "metadata_rmd_latitude",
    "metadata_rmd_longitude",
    "metadata_rmd_speed",
    "metadata_rmd_rxSource",
    "metadata_bsmSource",
    "coreData_msgCnt",
    "coreData_id",
    "coreData_secMark",
    "coreData_position_lat",
    "coreData_position_long",
    "coreData_elevation",
    "coreData_accelset_accelYaw",
    "coreData_accuracy_semiMajor",
    "coreData_accuracy_semiMinor",
    "coreData_transmission",
    "coreData_speed",
    "coreData_heading",
    "coreData_brakes_wheelBrakes_leftFront",
    "coreData_brakes_wheelBrakes_rightFront",
    "coreData_brakes_wheelBrakes_unavailable",
    "coreData_brakes_wheelBrakes_leftRear",
    "coreData_brakes_wheelBrakes_rightRear",
    "coreData_brakes_traction",
    "coreData_brakes_abs",
    "coreData_brakes_scs",
    "coreData_brakes_brakeBoost",
    "coreData_brakes_auxBrakes",
    "coreData_size",
    "part2_suve_cd_hpmstype",
    "part2_suve_cd_role",
    "part2_suve_vd_height",
    "part2_suve_vd_mass",
    "part2_suve_vd_trailerweight",
    "part2_vse_events",
    "part2_vse_ph_crumbdata",
    "part2_vse_pp_confidence",
    "part2_vse_pp_radiusofcurve",
    "part2_vse_lights",
    "part2_spve_vehalert_sspRights",
    "part2_spve_vehalert_event_sspRights",
    "part2_spve_vehalert_event_events",
    "part2_spve_vehalert_lightsUse",
    "part2_spve_vehalert_multi",
    "part2_spve_vehalert_responseType",
    "part2_spve_vehalert_sirenUse",
    "part2_spve_event_desc",
    "part2_spve_event_extent",
    "part2_spve_event_heading",
    "part2_spve_tr_sspRights",
    "part2_spve_tr_conn",
    "part2_spve_tr_units",
    "coreData_position",
]


# -- helpers ----------------------------------------------------------------------------------


def sample(version: int) -> dict[str, Any]:
    return json.loads((SANDBOX / f"wydot-filtered-bsm-schemaVersion{version}.json").read_text())


def ndjson(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def utc_ms(text: str) -> int:
    """Epoch milliseconds of an ODE timestamp ('...Z' or '...Z[UTC]')."""
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
    **kw: Any,
) -> ConvertResult:
    return convert_partition(
        con, SCHEMA, files, out, validation=validation or ValidationConfig(), **kw
    )


def rows(
    con: duckdb.DuckDBPyConnection, files: list[Path], columns: str = "*"
) -> list[dict[str, Any]]:
    """Rows of Parquet files as dicts; timestamps as epoch ms (fetching TIMESTAMPTZ needs pytz)."""
    cur = con.execute(
        f"SELECT {columns} REPLACE (epoch_ms(generated_at) AS generated_at, "
        "epoch_ms(received_at) AS received_at) "
        f"FROM read_parquet({list_literal(map(str, files))})"
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def quarantine(result: ConvertResult) -> list[dict[str, Any]]:
    assert result.quarantine_file is not None
    return [json.loads(line) for line in result.quarantine_file.read_text().splitlines()]


def hive_dir(root: Path, day: int, source: str = "wydot") -> Path:
    return root / f"source={source}/message_type=BSM/year=2018/month=05/day={day:02d}"


def assert_matches_record(row: dict[str, Any], rec: dict[str, Any]) -> None:
    md, core = rec["metadata"], rec["payload"]["data"]["coreData"]
    assert row["generated_at"] == utc_ms(md.get("recordGeneratedAt") or md["generatedAt"])
    assert row["received_at"] == utc_ms(md.get("odeReceivedAt") or md["receivedAt"])
    assert row["vehicle_id"] == core["id"]
    assert row["latitude"] == core["position"]["latitude"]
    assert row["longitude"] == core["position"]["longitude"]
    assert row["elevation_m"] == core["position"]["elevation"]
    assert row["speed_mps"] == core["speed"]
    assert row["heading_deg"] == core["heading"]
    assert row["schema_version"] == md["schemaVersion"]
    assert row["msg_cnt"] == core["msgCnt"]
    assert row["sec_mark"] == core["secMark"]
    assert row["transmission"] == core["transmission"]
    assert row["size_width_cm"] == core["size"]["width"]
    assert row["size_length_cm"] == core["size"]["length"]
    assert row["accel_yaw_dps"] == core["accelSet"]["accelYaw"]
    assert row["accuracy_semi_major_m"] == core["accuracy"]["semiMajor"]
    assert row["brakes_wheel_unavailable"] == core["brakes"]["wheelBrakes"]["unavailable"]
    assert row["brakes_abs"] == core["brakes"]["abs"]
    assert row["log_file_name"] == md["logFileName"]
    assert row["serial_stream_id"] == md["serialId"]["streamId"]
    assert row["serial_bundle_id"] == md["serialId"]["bundleId"]
    assert row["data_type"] == rec["payload"]["dataType"]
    assert json.loads(row["part_ii"]) == rec["payload"]["data"]["partII"]
    assert row["invalid_reason"] is None
    assert row["warnings"] == []


# -- the real samples -------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_sample_document_parses_with_exact_values(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, version: int
) -> None:
    src = tmp_path / "raw" / f"v{version}.json"
    src.parent.mkdir()
    shutil.copy(SANDBOX / f"wydot-filtered-bsm-schemaVersion{version}.json", src)
    result = convert(con, [RawFile(src, f"wydot/BSM/x/v{version}")], tmp_path / "out")
    assert (result.rows, result.quarantined, result.quarantine_file) == (1, 0, None)
    assert result.schema_versions == [version] and result.unknown_versions == []
    [row] = rows(con, result.parquet_files)
    assert_matches_record(row, sample(version))
    assert row["source_key"] == f"wydot/BSM/x/v{version}"


@pytest.mark.parametrize("version", VERSIONS)
def test_sample_as_ndjson_line_parses_with_exact_values(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, version: int
) -> None:
    rec = sample(version)
    src = ndjson(tmp_path / "raw" / "obj", [json.dumps(rec)] * 3)
    result = convert(con, [RawFile(src, "k")], tmp_path / "out")
    assert result.rows == 3 and result.quarantined == 0
    for row in rows(con, result.parquet_files):
        assert_matches_record(row, rec)


def test_sample_values_spelled_out(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """The numbers a reader of the v6 file sees, independent of the helper above."""
    src = ndjson(tmp_path / "raw" / "obj", [json.dumps(sample(6))])
    result = convert(con, [RawFile(src, "k")], tmp_path / "out")
    [row] = rows(con, result.parquet_files)
    assert row["generated_at"] == int(
        datetime(2018, 5, 6, 20, 26, 28, 690000, UTC).timestamp() * 1000
    )
    assert (row["vehicle_id"], row["latitude"], row["longitude"]) == (
        "CB950124",
        41.2827318,
        -105.5912184,
    )
    assert (row["elevation_m"], row["speed_mps"], row["heading_deg"]) == (2179.1, 7.52, 82.4375)
    assert (row["msg_cnt"], row["sec_mark"], row["schema_version"]) == (127, 28589, 6)
    assert (row["rmd_latitude"], row["rx_source"], row["bsm_source"]) == (0.0, "RV", "RV")
    assert row["security_result_code"] == "inconsistentInputParameters"


def test_v3_timestamp_with_zone_suffix_is_utc(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    src = ndjson(tmp_path / "raw" / "obj", [json.dumps(sample(3))])
    con.execute("SET TimeZone = 'America/Denver'")  # the caller's zone must not leak in
    result = convert(con, [RawFile(src, "k")], tmp_path / "out")
    assert con.execute("SELECT current_setting('TimeZone')").fetchone() == ("America/Denver",)
    [row] = rows(con, result.parquet_files)
    assert row["generated_at"] == int(
        datetime(2017, 12, 5, 16, 33, 58, tzinfo=UTC).timestamp() * 1000
    )


def test_java_timestamps_without_zero_seconds_parse(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """The ODE prints 16:33:00.000 as '16:33Z[UTC]' (Java drops zero seconds)."""
    rec = sample(3)
    rec["metadata"]["recordGeneratedAt"] = "2017-12-05T16:33Z[UTC]"
    rec["metadata"]["odeReceivedAt"] = "2017-12-05T17:45Z[UTC]"
    src = ndjson(tmp_path / "raw" / "obj", [json.dumps(rec)])
    result = convert(con, [RawFile(src, "k")], tmp_path / "out")
    assert result.quarantined == 0 and result.rows == 1
    [row] = rows(con, result.parquet_files)
    assert row["generated_at"] == utc_ms("2017-12-05T16:33:00Z")
    assert row["received_at"] == utc_ms("2017-12-05T17:45:00Z")


def test_timestamp_without_offset_is_read_as_utc(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    rec = sample(6)
    rec["metadata"]["recordGeneratedAt"] = "2018-05-06T20:26:28.690"
    src = ndjson(tmp_path / "raw" / "obj", [json.dumps(rec)])
    con.execute("SET TimeZone = 'America/Denver'")
    result = convert(con, [RawFile(src, "k")], tmp_path / "out")
    [row] = rows(con, result.parquet_files)
    assert row["generated_at"] == utc_ms("2018-05-06T20:26:28.690Z")


def test_v1_record_parses(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """schemaVersion 1 named the times generatedAt / receivedAt."""
    rec = sample(3)
    md = rec["metadata"]
    md["generatedAt"] = md.pop("recordGeneratedAt")
    md["receivedAt"] = md.pop("odeReceivedAt")
    md["schemaVersion"] = 1
    src = ndjson(tmp_path / "raw" / "obj", [json.dumps(rec)])
    result = convert(con, [RawFile(src, "k")], tmp_path / "out")
    assert result.rows == 1 and result.schema_versions == [1] and result.unknown_versions == []
    [row] = rows(con, result.parquet_files)
    assert_matches_record(row, rec)
    assert row["record_generated_by"] == "OBU"


def test_parquet_schema_is_the_canonical_one(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    src = ndjson(tmp_path / "raw" / "obj", [json.dumps(sample(6))])
    result = convert(con, [RawFile(src, "k")], tmp_path / "out")
    got = con.execute(
        f"DESCRIBE SELECT * FROM read_parquet({quote_literal(str(result.parquet_files[0]))})"
    ).fetchall()
    expect = con.execute(f"DESCRIBE {SCHEMA.empty_select_sql()}").fetchall()
    assert [(r[0], r[1]) for r in got] == [(r[0], r[1]) for r in expect]
    assert [r[0] for r in got] == SCHEMA.column_names


# -- bad input --------------------------------------------------------------------------------


def bad_file(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    good = sample(6)
    no_id = copy.deepcopy(good)
    del no_id["payload"]["data"]["coreData"]["id"]
    text = json.dumps(good)
    lines = [
        text,  # 1
        text[:150],  # 2 truncated
        "this is not json",  # 3 garbage
        "",  # 4 blank: skipped, not a record
        json.dumps(no_id),  # 5 missing coreData.id
        text,  # 6
    ]
    return ndjson(tmp_path / "raw" / "obj", lines), no_id


def test_bad_lines_are_quarantined_with_line_numbers(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    src, no_id = bad_file(tmp_path)
    out = tmp_path / "out"
    result = convert(con, [RawFile(src, "wydot/BSM/2018/05/06/20/obj")], out)
    assert result.rows == 2
    assert result.quarantined == 3
    assert result.reasons == {
        "malformed JSON": 2,
        "missing required field payload.data.coreData.id": 1,
    }
    assert result.kept_invalid == {}
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet", "quarantine.ndjson"]
    entries = quarantine(result)
    assert {e["source_key"] for e in entries} == {"wydot/BSM/2018/05/06/20/obj"}
    malformed = [e for e in entries if e["reason"].startswith("malformed JSON")]
    assert [(e["line"], e["raw"]) for e in malformed] == [
        (2, json.dumps(sample(6))[:150]),
        (3, "this is not json"),
    ]
    assert all(": " in e["reason"] for e in malformed)  # carries the parser's message
    [missing] = [e for e in entries if not e["reason"].startswith("malformed")]
    assert missing["line"] is None
    assert missing["reason"] == "missing required field payload.data.coreData.id"
    assert missing["raw"] == json.dumps(no_id)  # the line exactly as published
    assert all(r["invalid_reason"] is None for r in rows(con, result.parquet_files))


def test_truncated_last_line_without_newline(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """An object cut off mid-record (interrupted upload) loses only that record."""
    text = json.dumps(sample(6))
    src = tmp_path / "obj"
    src.write_text(text + "\n" + text + "\n" + text[:-40])
    result = convert(con, [RawFile(src, "k")], tmp_path / "out")
    assert result.rows == 2
    [entry] = quarantine(result)
    assert (entry["line"], entry["raw"]) == (3, text[:-40])


def test_keep_invalid_records_with_their_reason(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    src, _ = bad_file(tmp_path)
    result = convert(con, [RawFile(src, "k")], tmp_path / "out", KEEP_ALL)
    assert result.rows == 3
    assert result.quarantined == 2 and result.reasons == {"malformed JSON": 2}
    assert result.kept_invalid == {"missing required field payload.data.coreData.id": 1}
    kept = [r for r in rows(con, result.parquet_files) if r["invalid_reason"] is not None]
    assert [(r["vehicle_id"], r["invalid_reason"]) for r in kept] == [
        (None, "missing required field payload.data.coreData.id")
    ]
    assert kept[0]["latitude"] == 41.2827318


def test_validation_disabled_applies_only_the_malformed_rule(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    src, _ = bad_file(tmp_path)
    rec = sample(6)
    rec["payload"]["data"]["coreData"]["position"]["latitude"] = 95.0
    other = ndjson(tmp_path / "raw" / "other", [json.dumps(rec)])
    off = ValidationConfig(enabled=False)
    result = convert(con, [RawFile(src, "k"), RawFile(other, "k2")], tmp_path / "out", off)
    assert result.rows == 4
    assert result.reasons == {"malformed JSON": 2} and result.warnings == {}
    assert all(
        r["invalid_reason"] is None and r["warnings"] == [] for r in rows(con, result.parquet_files)
    )


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("latitude", 95.0, "latitude_out_of_range"),
        ("longitude", -181.5, "longitude_out_of_range"),
        ("speed", 200.0, "speed_out_of_range"),
        ("heading", 360.0, "heading_out_of_range"),
        ("elevation", 7000.0, "elevation_out_of_range"),
    ],
)
def test_out_of_range_value_is_kept_with_a_warning(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, field: str, value: float, flag: str
) -> None:
    rec = sample(6)
    core = rec["payload"]["data"]["coreData"]
    (core["position"] if field in ("latitude", "longitude", "elevation") else core)[field] = value
    src = ndjson(tmp_path / "raw" / "obj", [json.dumps(rec), json.dumps(sample(6))])
    result = convert(con, [RawFile(src, "k")], tmp_path / "out")
    assert result.rows == 2 and result.quarantined == 0
    assert result.warnings == {flag: 1}
    flagged = [r for r in rows(con, result.parquet_files) if r["warnings"]]
    assert [r["warnings"] for r in flagged] == [[flag]]
    assert flagged[0]["invalid_reason"] is None


def test_unparseable_timestamp_is_quarantined(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    rec = sample(6)
    rec["metadata"]["recordGeneratedAt"] = "2018-13-45T99:00:00Z"
    src = ndjson(tmp_path / "raw" / "obj", [json.dumps(rec)])
    result = convert(con, [RawFile(src, "k")], tmp_path / "out")
    assert result.rows == 0 and result.parquet_files == []
    assert result.reasons == {"unparseable timestamp": 1}
    [entry] = quarantine(result)
    assert entry["reason"] == "unparseable timestamp: 2018-13-45T99:00:00Z"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (
            lambda r: r["metadata"].pop("recordGeneratedAt"),
            "missing required field metadata.recordGeneratedAt",
        ),
        (
            lambda r: r["payload"]["data"]["coreData"]["position"].pop("latitude"),
            "missing required field payload.data.coreData.position.latitude",
        ),
        (
            lambda r: r["payload"]["data"]["coreData"]["position"].pop("longitude"),
            "missing required field payload.data.coreData.position.longitude",
        ),
        (lambda r: r.pop("payload"), "missing required field payload"),
        (lambda r: r.pop("metadata"), "missing required field metadata"),
    ],
)
def test_missing_required_fields(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, mutate: Any, reason: str
) -> None:
    rec = sample(6)
    mutate(rec)
    src = ndjson(tmp_path / "raw" / "obj", [json.dumps(rec)])
    result = convert(con, [RawFile(src, "k")], tmp_path / "out")
    assert result.rows == 0 and result.reasons == {reason: 1}


def test_unknown_schema_version_is_parsed_and_reported(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    rec = sample(6)
    rec["metadata"]["schemaVersion"] = 9  # 1-8 are the ODE's published versions
    rec["metadata"]["someNewField"] = {"x": 1}
    src = ndjson(tmp_path / "raw" / "obj", [json.dumps(rec), json.dumps(sample(6))])
    result = convert(con, [RawFile(src, "k")], tmp_path / "out")
    assert result.rows == 2 and result.quarantined == 0
    assert result.schema_versions == [6, 9] and result.unknown_versions == [9]
    assert result.warnings == {"unknown_schema_version_9": 1}


def test_lines_duckdb_cannot_read_but_python_can(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """Valid JSON that is no record, and an unpaired surrogate escape: all-NULL rows in DuckDB."""
    lines = [
        json.dumps(sample(6)),
        "[1, 2]",
        '{"foo": 1}',
        '{"metadata": null, "payload": null}',
        '{"metadata": {"logFileName": "\\ud800"}}',
        "   ",
    ]
    src = ndjson(tmp_path / "raw" / "obj", lines)
    result = convert(con, [RawFile(src, "k")], tmp_path / "out")
    assert result.rows == 1
    assert [e["line"] for e in quarantine(result)] == [2, 3, 4, 5]
    assert result.reasons == {"malformed JSON": 4}


def test_invalid_utf8_and_crlf(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    good = json.dumps(sample(6)).encode()
    src = tmp_path / "obj"
    src.write_bytes(good + b"\r\n" + b'{"metadata": {"logFileName": "\xff"}}\r\n' + good + b"\r\n")
    result = convert(con, [RawFile(src, "k")], tmp_path / "out")
    assert result.rows == 2
    [entry] = quarantine(result)
    assert entry["line"] == 2 and "invalid UTF-8" in entry["reason"]


def test_count_mismatch_is_recorded_not_lost(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the line scan cannot find what DuckDB rejected, the gap is a quarantine entry."""
    monkeypatch.setattr(transform, "_line_problem", lambda line, required: None)
    src, _ = bad_file(tmp_path)
    result = convert(con, [RawFile(src, "k")], tmp_path / "out")
    assert result.reasons == {
        "malformed JSON count mismatch": 1,
        "missing required field payload.data.coreData.id": 1,
    }
    [gap] = [e for e in quarantine(result) if e["reason"].startswith("malformed JSON count")]
    assert gap["source_key"] == "k" and "found 2" in gap["reason"]
    assert result.rows == 2


def _vehicle(i: int) -> dict[str, Any]:
    rec = sample(6)
    rec["payload"]["data"]["coreData"]["id"] = f"V{i:07d}"
    return rec


def test_records_joined_without_newlines_are_recovered(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`{...}{...}` on one line: each whole record is a row with its exact values, only the cut
    fragment between records is quarantined (its line, its bytes, the parser's reason), and
    only the object DuckDB rejected a line of is scanned (the clean one takes the fast path)."""
    recs = [_vehicle(i) for i in range(1, 8)]
    text = [json.dumps(r) for r in recs]
    cut = text[4][:120]
    joined = ndjson(
        tmp_path / "raw" / "joined",
        [text[0], text[1] + text[2], text[3] + cut + text[5], text[6] + "  "],
    )
    clean = ndjson(tmp_path / "raw" / "clean", [json.dumps(_vehicle(8))])
    scanned: list[Path] = []
    real_scan = transform._scan_lines
    monkeypatch.setattr(
        transform, "_scan_lines", lambda path, *a: (scanned.append(path), real_scan(path, *a))[1]
    )
    key = "wydot/BSM/2018/05/06/20/joined"
    result = convert(
        con, [RawFile(joined, key), RawFile(clean, "wydot/BSM/2018/05/06/20/clean")], tmp_path / "o"
    )
    assert scanned == [joined]
    assert result.rows == 7 and result.recovered == 4
    assert result.quarantined == 1 and result.reasons == {"malformed JSON": 1}
    [entry] = quarantine(result)
    assert (entry["source_key"], entry["line"], entry["raw"]) == (key, 3, cut)
    assert entry["reason"].startswith("malformed JSON: ")
    column = int(entry["reason"].rsplit(" ", 1)[1])  # the parser's column in the whole line
    assert entry["reason"].startswith("malformed JSON: Expecting") and column > len(text[3])
    got = {r["vehicle_id"]: r for r in rows(con, result.parquet_files)}
    assert sorted(got) == sorted(f"V{i:07d}" for i in (1, 2, 3, 4, 6, 7, 8))
    for rec in recs[:4] + recs[5:]:
        assert_matches_record(got[rec["payload"]["data"]["coreData"]["id"]], rec)


def test_joined_values_that_are_no_records_stay_one_line(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """Nothing to recover (values joined, none a record; invalid UTF-8): the line is one entry,
    as before; a recovered record that is invalid is quarantined like any record."""
    no_id = _vehicle(3)
    del no_id["payload"]["data"]["coreData"]["id"]
    src = tmp_path / "obj"
    src.write_bytes(
        b'{"a": 1}{"b": 2}\n'
        + json.dumps(_vehicle(1)).encode() + b"\xff{}\n"
        + json.dumps(_vehicle(2)).encode() + json.dumps(no_id).encode() + b"\n"
    )  # fmt: skip
    result = convert(con, [RawFile(src, "k")], tmp_path / "out")
    assert result.rows == 1 and result.recovered == 2
    entries = quarantine(result)
    assert [(e["line"], e["reason"].split(":")[0]) for e in entries] == [
        (1, "malformed JSON"),
        (2, "malformed JSON"),
        (None, "missing required field payload.data.coreData.id"),
    ]
    assert entries[0]["raw"] == '{"a": 1}{"b": 2}' and "invalid UTF-8" in entries[1]["reason"]
    assert entries[2]["raw"] == json.dumps(no_id)


def test_a_line_of_many_fragments_costs_a_bounded_search(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """Every unparseable fragment costs a scan of the line up to it (the parser's column), so
    a line of joined records with fragments between all of them recovers the records of its
    first transform._MAX_LINE_ERRORS fragments and keeps the rest of the line as one entry:
    nothing lost, no quadratic scan of a long hostile line."""
    n = transform._MAX_LINE_ERRORS
    recs = [json.dumps(_vehicle(i)) for i in range(n + 20)]
    src = ndjson(tmp_path / "obj", ["x".join(recs)])
    result = convert(con, [RawFile(src, "k")], tmp_path / "out")
    assert (result.rows, result.recovered, result.quarantined) == (n, n, n)
    entries = quarantine(result)
    assert all(e["raw"] == "x" for e in entries[:-1])
    assert entries[-1]["raw"] == "x" + "x".join(recs[n:])  # the rest, whole


def test_a_group_counts_recovered_records_per_partition(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """convert_partitions: each partition's recovered records are its own, as alone."""
    first = ndjson(tmp_path / "a", [json.dumps(_vehicle(1)) + json.dumps(_vehicle(2))])
    second = ndjson(tmp_path / "b", [json.dumps(_vehicle(3)), json.dumps(_vehicle(4))])
    results = convert_partitions(
        con,
        SCHEMA,
        [([RawFile(first, "wydot/BSM/2018/05/06/20/a")], tmp_path / "oa"),
         ([RawFile(second, "wydot/BSM/2018/05/07/20/b")], tmp_path / "ob")],
        validation=ValidationConfig(),
    )  # fmt: skip
    assert [(r.rows, r.recovered, r.quarantined) for r in results] == [(2, 2, 0), (2, 0, 0)]


def test_bom_file_is_read(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    src = tmp_path / "obj"
    src.write_bytes(b"\xef\xbb\xbf" + (json.dumps(sample(6)) + "\n").encode() * 2)
    result = convert(con, [RawFile(src, "k")], tmp_path / "out")
    assert result.rows == 2 and result.quarantined == 0


# -- documents (pre-2018 objects) --------------------------------------------------------------


def test_documents_concatenated_array_and_broken(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    pretty = json.dumps(sample(5), indent=2)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "two").write_text(pretty + "\n" + pretty)
    (raw / "array").write_text("[\n" + pretty + ",\n" + pretty + "\n]")
    (raw / "broken").write_text(pretty + "\n" + pretty[:500])
    (raw / "scalar").write_text("{\n}\n")
    files = [RawFile(raw / n, f"key/{n}") for n in ("two", "array", "broken", "scalar")]
    result = convert(con, files, tmp_path / "out")
    assert result.rows == 5
    entries = quarantine(result)
    assert [(e["source_key"], e["line"]) for e in entries] == [
        ("key/broken", pretty.count("\n") + 2),
        ("key/scalar", 1),
    ]
    assert entries[0]["raw"] == pretty[:500]
    assert result.reasons == {"malformed JSON": 2}
    keys = sorted(r["source_key"] for r in rows(con, result.parquet_files))
    assert keys == ["key/array"] * 2 + ["key/broken"] + ["key/two"] * 2


def test_documents_and_ndjson_in_one_partition(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    doc = tmp_path / "doc.json"
    shutil.copy(SANDBOX / "wydot-filtered-bsm-schemaVersion3.json", doc)
    nd = ndjson(tmp_path / "nd", [json.dumps(sample(6))] * 2)
    result = convert(con, [RawFile(doc, "d"), RawFile(nd, "n")], tmp_path / "out")
    assert result.rows == 3 and result.schema_versions == [3, 6]
    assert sorted(r["source_key"] for r in rows(con, result.parquet_files)) == ["d", "n", "n"]


def test_every_row_names_its_object_among_many_copies(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows take their object's key and folder hour from a join to the objects' table, or,
    when they are wide (here: every row), from list literals at the position of the copy they
    were read from (an ENUM of the copies' paths): 30 copies, one with a quote and spaces in
    its name, a document among them, half filed in their record's hour and half in another;
    each row with its own object's key and the same rows either way."""
    files = []
    for i in range(30):
        name = f"it's copy {i}.json" if i == 7 else f"copy-{i:02d}.json"
        record = sample(6)  # generated 2018-05-06T20:26:28.690Z
        record["metadata"]["serialId"]["recordId"] = i
        key = f"wydot/BSM/2018/05/06/{20 if i % 2 else 21}/{name}"
        files.append(RawFile(ndjson(tmp_path / name, [json.dumps(record)] * (1 + i % 3)), key))
    doc = tmp_path / "doc.json"
    shutil.copy(SANDBOX / "wydot-filtered-bsm-schemaVersion3.json", doc)
    files.insert(12, RawFile(doc, "k/doc"))
    got = {}
    for wide in (False, True):
        if wide:
            monkeypatch.setattr(roworder, "WIDE_ROW_BYTES", 1)
        result = convert(con, files, tmp_path / f"out-{wide}")
        got[wide] = sorted(
            (r["source_key"], r["serial_record_id"], tuple(r["warnings"]))
            for r in rows(con, result.parquet_files)
        )
    assert got[True] == got[False]
    keyed = [g for g in got[True] if g[0] != "k/doc"]
    assert [k for k, *_ in got[True]].count("k/doc") == 1  # the document's one record
    assert sorted((k.rsplit("/", 1)[1], n) for k, n, _ in keyed) == sorted(
        (f"it's copy {i}.json" if i == 7 else f"copy-{i:02d}.json", i)
        for i in range(30) for _ in range(1 + i % 3)
    )  # fmt: skip
    outside = {k for k, _, w in keyed if transform.OUTSIDE_HOUR in w}
    assert outside == {k for k, *_ in keyed if "/21/" in k} and outside
    with pytest.raises(ValueError, match="its own copy"):
        convert(con, [files[0], RawFile(files[0].path, "k/other")], tmp_path / "again")


# -- files and directories --------------------------------------------------------------------


def test_empty_input_writes_nothing(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = convert(con, [], out)
    assert (result.rows, result.parquet_files, result.quarantine_file) == (0, [], None)
    assert list(out.iterdir()) == []


def test_files_without_records_write_nothing(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    blank = tmp_path / "blank"
    blank.write_bytes(b"\n" * 100_000)  # beyond the peek window: goes through DuckDB
    out = tmp_path / "out"
    result = convert(con, [RawFile(empty, "a"), RawFile(blank, "b")], out)
    assert (result.rows, result.parquet_files, result.quarantined) == (0, [], 0)
    assert list(out.iterdir()) == []


def test_only_broken_lines_write_no_parquet(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    src = ndjson(tmp_path / "obj", ["nope", "{"])
    out = tmp_path / "out"
    result = convert(con, [RawFile(src, "k")], out)
    assert result.rows == 0 and result.parquet_files == [] and result.quarantined == 2
    assert [p.name for p in out.iterdir()] == ["quarantine.ndjson"]


def test_large_partition_is_split_into_files(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    line = json.dumps(sample(6))
    files = [RawFile(ndjson(tmp_path / "raw" / f"o{i}", [line] * 2000), f"k{i}") for i in range(5)]
    result = convert(con, files, tmp_path / "out", target_rows_per_file=2048, row_group_size=2048)
    assert result.rows == 10_000
    assert len(result.parquet_files) > 1
    counts = con.execute(
        "SELECT count(*) FROM read_parquet("
        f"{list_literal(map(str, result.parquet_files))}, filename = true) GROUP BY filename"
    ).fetchall()
    assert sum(n for (n,) in counts) == 10_000
    assert all(p.name.startswith("part-") for p in result.parquet_files)


def _codecs(con: duckdb.DuckDBPyConnection, files: list[Path]) -> set[str]:
    return {
        str(c).upper()
        for (c,) in con.execute(
            f"SELECT DISTINCT compression FROM parquet_metadata({list_literal(map(str, files))})"
        ).fetchall()
    }


def test_a_batch_is_intermediate_and_the_ordered_partition_is_the_kept_codec(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """The files a catalog keeps are roworder.kept_codec of their rows (lz4 for this tiny day);
    a batch of a day in several (ordered=False) is rewritten by order_partition, so it is
    written with the fast codec and counts no warnings (combine_results counts them over the
    whole day)."""
    dup = json.dumps(sample(6))
    files = [
        RawFile(ndjson(tmp_path / "raw" / f"o{i}", [dup, json.dumps(sample(5))]), f"k{i}")
        for i in range(2)
    ]
    whole = convert(con, files, tmp_path / "whole")
    assert _codecs(con, whole.parquet_files) == {"LZ4_RAW"}
    assert whole.warnings.get("duplicate_record")
    batch = convert(con, files, tmp_path / "batch", ordered=False)
    assert batch.warnings == {}
    assert _codecs(con, batch.parquet_files) == {"SNAPPY"}
    assert rows(con, batch.parquet_files) != [] and batch.rows == whole.rows
    done = order_partition(
        con, SCHEMA, batch, tmp_path / "batch", rows_per_file=10_000, row_group_size=2048
    )
    assert _codecs(con, done.parquet_files) == {"LZ4_RAW"}
    footers = con.execute(
        f"SELECT file_name, num_rows FROM parquet_file_metadata("
        f"{list_literal(map(str, done.parquet_files))})"
    ).fetchall()
    assert done.file_rows == {Path(f): n for f, n in footers}  # the stager reads no footer
    assert sorted(map(str, rows(con, done.parquet_files))) == sorted(
        map(str, rows(con, whole.parquet_files))
    )


def test_kept_files_of_many_rows_are_zstd_and_tiny_ones_lz4(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """zstd from SMALL_FILE_ROWS rows on, whether a day is converted whole or ordered after
    its batches; a group of tiny days writes each one lz4."""
    n = roworder.SMALL_FILE_ROWS
    assert roworder.kept_codec(n - 1) == "lz4" and roworder.kept_codec(None) == "zstd"
    line = json.dumps(sample(6))
    big = [RawFile(ndjson(tmp_path / "raw" / "big", [line] * n), "big")]
    whole = convert(con, big, tmp_path / "whole")
    assert whole.rows == n and _codecs(con, whole.parquet_files) == {"ZSTD"}
    batch = convert(con, big, tmp_path / "batch", ordered=False)
    done = order_partition(
        con, SCHEMA, batch, tmp_path / "batch", rows_per_file=10_000, row_group_size=2048
    )
    assert _codecs(con, done.parquet_files) == {"ZSTD"}
    small = [
        ([RawFile(ndjson(tmp_path / "raw" / f"d{i}", [line] * 3), f"d{i}")], tmp_path / f"u{i}")
        for i in range(2)
    ]
    grouped = convert_partitions(con, SCHEMA, small, validation=ValidationConfig())
    assert [r.rows for r in grouped] == [3, 3]
    assert _codecs(con, [p for r in grouped for p in r.parquet_files]) == {"LZ4_RAW"}


def test_rewrite_keeps_other_files_and_row_counts(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    line = json.dumps(sample(6))
    files = [RawFile(ndjson(tmp_path / "raw" / f"o{i}", [line] * 3000), f"k{i}") for i in range(3)]
    files.append(RawFile(ndjson(tmp_path / "raw" / "bad", [line, "x", line]), "kbad"))
    result = convert(con, files, tmp_path / "out", target_rows_per_file=2048, row_group_size=2048)
    assert result.rows == 9002 and result.quarantined == 1
    n = con.execute(
        f"SELECT count(*) FROM read_parquet({list_literal(map(str, result.parquet_files))})"
    ).fetchone()
    assert n == (9002,)


def test_failure_leaves_nothing_behind(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: Any, staged: Any, stats: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(transform._Conversion, "_rewrite_affected", boom)
    src, _ = bad_file(tmp_path)
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(RuntimeError, match="disk on fire"):
            convert(con, [RawFile(src, "k")], out)
        gc.collect()
    assert list(out.iterdir()) == []
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone() == (0,)
    # the quarantine file it had opened was closed, not left to the garbage collector
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_refuses_to_mix_with_earlier_output(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    src = ndjson(tmp_path / "obj", [json.dumps(sample(6))])
    convert(con, [RawFile(src, "k")], tmp_path / "out")
    with pytest.raises(FileExistsError):
        convert(con, [RawFile(src, "k")], tmp_path / "out")


def test_glob_characters_in_paths_are_refused(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    src = ndjson(tmp_path / "a[1]", [json.dumps(sample(6))])
    with pytest.raises(ValueError, match="glob"):
        convert(con, [RawFile(src, "k")], tmp_path / "out")


# -- views ------------------------------------------------------------------------------------


def build_catalog(
    con: duckdb.DuckDBPyConnection, root: Path, days: dict[int, list[str]]
) -> list[str]:
    files: list[str] = []
    for day, lines in days.items():
        src = ndjson(root / "raw" / f"d{day}", lines)
        result = convert(
            con,
            [RawFile(src, f"wydot/BSM/2018/05/{day:02d}/20/obj")],
            hive_dir(root, day),
            KEEP_ALL,
        )
        files += [str(p) for p in result.parquet_files]
    for stmt in view_sql(SCHEMA, files):
        con.execute(stmt)
    return files


def test_a_path_history_of_one_point_as_an_object_is_a_list_of_one(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """Single-element arrays sometimes arrive as objects: a crumbData of one point came
    through the socrata view as an object, where THEA's view (and a list) gives a list."""
    rec = sample(6)
    vse = rec["payload"]["data"]["partII"][0]["value"]
    point = vse["pathHistory"]["crumbData"][0]
    vse["pathHistory"]["crumbData"] = point
    build_catalog(con, tmp_path, {6: [json.dumps(rec)]})
    row = con.execute('SELECT "part2_vse_ph_crumbdata" FROM wydot_bsm_socrata').fetchone()
    assert row is not None and json.loads(row[0]) == [point]


def test_socrata_view_names_and_values(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    build_catalog(con, tmp_path, {6: [json.dumps(sample(6))]})
    cur = con.execute(
        'SELECT * REPLACE (epoch_ms("metadata_generatedAt") AS "metadata_generatedAt", '
        'epoch_ms("metadata_receivedAt") AS "metadata_receivedAt") FROM wydot_bsm_socrata'
    )
    names = [d[0] for d in cur.description]
    assert names == [*SOCRATA_69, "source", "date"]
    assert len(SOCRATA_69) == 69
    [values] = cur.fetchall()
    row = dict(zip(names, values, strict=True))
    rec = sample(6)
    vse = rec["payload"]["data"]["partII"][0]["value"]
    assert row["coreData_position_lat"] == 41.2827318
    assert row["coreData_position_long"] == -105.5912184
    assert row["coreData_elevation"] == 2179.1
    assert row["coreData_speed"] == 7.52
    assert row["coreData_heading"] == 82.4375
    assert row["coreData_id"] == "CB950124"
    assert row["coreData_msgCnt"] == 127 and row["coreData_secMark"] == 28589
    assert row["metadata_generatedAt"] == utc_ms("2018-05-06T20:26:28.690Z")
    assert row["metadata_receivedAt"] == utc_ms("2018-05-09T16:29:30.349Z")
    assert row["metadata_schemaVersion"] == 6 and row["metadata_generatedBy"] == "OBU"
    assert row["metadata_serialId_streamId"] == "2ef1bea6-804e-4646-9b18-658425bb8a14"
    assert row["metadata_rmd_rxSource"] == "RV" and row["metadata_rmd_latitude"] == 0.0
    assert row["coreData_accelset_accelYaw"] == 2.29
    assert row["coreData_brakes_wheelBrakes_unavailable"] is True
    assert json.loads(row["coreData_size"]) == {"width": 190, "length": 409}
    assert json.loads(row["part2_vse_ph_crumbdata"]) == vse["pathHistory"]["crumbData"]
    assert row["part2_vse_pp_confidence"] == 10 and row["part2_vse_pp_radiusofcurve"] == 97.5
    assert row["part2_suve_cd_hpmstype"] == "none" and row["part2_suve_cd_role"] == "basicVehicle"
    assert row["part2_suve_vd_height"] == 1.5
    assert row["part2_spve_vehalert_sirenUse"] is None and row["part2_vse_events"] is None
    assert row["coreData_position"] == "POINT (-105.5912184 41.2827318)"
    assert row["dataType"] == "us.dot.its.jpo.ode.plugin.j2735.J2735Bsm"
    assert (row["source"], str(row["date"])) == ("wydot", "2018-05-06")
    described = [(r[0], r[1]) for r in con.execute("DESCRIBE wydot_bsm_socrata").fetchall()]
    expect = con.execute(f"DESCRIBE {SCHEMA.empty_select_sql(SCHEMA.socrata_columns)}").fetchall()
    assert described == [(r[0], r[1]) for r in expect]


def test_socrata_partii_single_object_and_special_extensions(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    rec = sample(6)
    rec["payload"]["data"]["partII"] = {
        "id": "SpecialVehicleExtensions",
        "value": {
            "vehicleAlerts": {"sirenUse": "inUse", "sspRights": 3},
            "description": {"extent": "useFor3meters"},
        },
    }
    build_catalog(con, tmp_path, {6: [json.dumps(rec)]})
    got = con.execute(
        'SELECT "part2_spve_vehalert_sirenUse", "part2_spve_vehalert_sspRights", '
        '"part2_spve_event_extent", "part2_vse_ph_crumbdata" FROM wydot_bsm_socrata'
    ).fetchall()
    assert got == [("inUse", 3, "useFor3meters", None)]


def test_canonical_view_shows_kept_invalid_rows_socrata_does_not(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    no_id = sample(6)
    del no_id["payload"]["data"]["coreData"]["id"]
    build_catalog(con, tmp_path, {6: [json.dumps(sample(6)), json.dumps(no_id)]})
    assert con.execute("SELECT count(*), count(invalid_reason) FROM wydot_bsm").fetchone() == (2, 1)
    assert con.execute("SELECT count(*) FROM wydot_bsm_socrata").fetchone() == (1,)


def test_date_filter_prunes_files(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    line = json.dumps(sample(6))
    files = build_catalog(con, tmp_path, {6: [line] * 2, 7: [line] * 3})
    assert len(files) == 2
    assert con.execute(
        "SELECT date::VARCHAR, count(*) FROM wydot_bsm GROUP BY 1 ORDER BY 1"
    ).fetchall() == [
        ("2018-05-06", 2),
        ("2018-05-07", 3),
    ]
    plan = con.execute(
        "EXPLAIN ANALYZE SELECT count(*) FROM wydot_bsm WHERE date = DATE '2018-05-07'"
    ).fetchall()[0][1]
    assert re.search(r"Scanning Files:\s*1/2", plan), plan
    assert re.search(r"Total Files Read:\s*1\b", plan), plan
    assert "day=07" in plan and "day=06" not in plan
    assert con.execute(
        "SELECT count(*) FROM wydot_bsm WHERE date = DATE '2018-05-07'"
    ).fetchone() == (3,)


def test_empty_views_have_the_columns(con: duckdb.DuckDBPyConnection) -> None:
    for stmt in view_sql(SCHEMA, []):
        con.execute(stmt)
    assert con.execute("SELECT count(*) FROM wydot_bsm").fetchone() == (0,)
    described = [(r[0], r[1]) for r in con.execute("DESCRIBE wydot_bsm").fetchall()]
    expect = con.execute(f"DESCRIBE {SCHEMA.empty_select_sql(SCHEMA.view_columns)}").fetchall()
    assert described == [(r[0], r[1]) for r in expect]
    assert [r[0] for r in con.execute("DESCRIBE wydot_bsm_socrata").fetchall()] == [
        *SOCRATA_69,
        "source",
        "date",
    ]


def test_backup_source_has_its_own_views(con: duckdb.DuckDBPyConnection) -> None:
    backup = SCHEMAS[("wydot_backup", "BSM")]
    assert (backup.view_name, backup.socrata_view_name) == (
        "wydot_backup_bsm",
        "wydot_backup_bsm_socrata",
    )
    assert backup.canonical_columns == SCHEMA.canonical_columns
    for stmt in view_sql(backup, []):
        con.execute(stmt)
    assert con.execute("SELECT count(*) FROM wydot_backup_bsm_socrata").fetchone() == (0,)


def test_socrata_select_over_a_data_frame(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """The Dask path runs the same SELECT on a pandas frame of canonical columns."""
    build_catalog(con, tmp_path, {6: [json.dumps(sample(6))]})
    frame = con.execute("SELECT * FROM wydot_bsm").df()  # noqa: F841 - referenced by name below
    got = con.execute(SCHEMA.socrata_select_sql("frame")).df()
    assert list(got.columns) == [*SOCRATA_69, "source", "date"]
    assert got["coreData_position"].tolist() == ["POINT (-105.5912184 41.2827318)"]


# -- SQL helpers ------------------------------------------------------------------------------


def test_quoting_and_rendering() -> None:
    assert quote_ident('a"b') == '"a""b"'
    assert quote_literal("it's") == "'it''s'"
    assert list_literal(["/x/a'b"]) == "['/x/a''b']"
    assert (
        render_sql("SELECT {x} FROM t -- {y}\n-- {z}\n", x="1", y="2")
        == "SELECT 1 FROM t -- 2\n-- {z}\n"
    )
    assert render_sql("SELECT {'a': 1}") == "SELECT {'a': 1}"
    with pytest.raises(KeyError):
        render_sql("SELECT {missing}")


def test_schema_registry_is_consistent() -> None:
    for (source, message_type), schema in SCHEMAS.items():
        assert isinstance(schema, MessageSchema)
        assert (schema.source, schema.message_type) == (source, message_type)
        expected = ("eventHeader",) if source == "nycdot" else ("metadata", "payload")
        assert set(expected) <= set(schema.required_top_level) <= set(schema.read_columns)
        assert len({n for n, _ in schema.canonical_columns}) == len(schema.canonical_columns)
        assert not {"source", "message_type", "year", "month", "day", "date"} & set(
            schema.column_names
        )


# -- property: generated records survive JSON -> Parquet -> view ------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
json_scalar = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | finite | st.text(max_size=12)
)
json_value = st.recursive(
    json_scalar,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ids = st.sampled_from(
    ["VehicleSafetyExtensions", "SupplementalVehicleExtensions", "SpecialVehicleExtensions"]
)
part_ii = st.lists(st.fixed_dictionaries({"id": ids, "value": json_value}), max_size=3)
times = st.datetimes(min_value=datetime(2017, 1, 1), max_value=datetime(2030, 12, 31)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
)


@st.composite
def bsm_records(draw: st.DrawFn) -> dict[str, Any]:
    rec = sample(draw(st.sampled_from(VERSIONS)))
    md, core = rec["metadata"], rec["payload"]["data"]["coreData"]
    generated = draw(times)
    style = draw(st.sampled_from(["Z", "Z[UTC]", "", "+00:00"]))
    md["recordGeneratedAt"] = generated.isoformat(timespec="milliseconds") + style
    md["odeReceivedAt"] = (generated + timedelta(seconds=draw(st.integers(0, 10**6)))).isoformat(
        timespec="milliseconds"
    ) + "Z"
    md["serialId"]["bundleId"] = draw(st.integers(0, 2**40))
    core["id"] = draw(st.text(min_size=1, max_size=12))
    core["msgCnt"] = draw(st.integers(0, 127))
    core["secMark"] = draw(st.integers(0, 65535))
    core["position"] = {
        "latitude": draw(st.floats(-90, 90)),
        "longitude": draw(st.floats(-180, 180)),
        "elevation": draw(st.floats(-409.6, 6143.9)),
    }
    core["speed"] = draw(st.floats(0, 163.82))
    core["heading"] = draw(st.floats(0, 360, exclude_max=True))
    core["transmission"] = draw(
        st.sampled_from(["NEUTRAL", "PARK", "FORWARDGEARS", "REVERSEGEARS"])
    )
    rec["payload"]["data"]["partII"] = draw(part_ii)
    return rec


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(bsm_records(), min_size=1, max_size=12), split=st.integers(0, 12))
def test_generated_records_round_trip(records: list[dict[str, Any]], split: int) -> None:
    for i, rec in enumerate(records):
        rec["metadata"]["serialId"]["recordId"] = i  # to pair rows with records
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        con = duckdb.connect()
        try:
            parts = [records[:split], records[split:]]
            files = [
                RawFile(ndjson(root / "raw" / f"o{i}", [json.dumps(r) for r in part]), f"key/{i}")
                for i, part in enumerate(parts)
                if part
            ]
            result = convert(con, files, hive_dir(root, 6))
            assert result.rows == len(records) and result.quarantined == 0 and result.warnings == {}
            for stmt in view_sql(SCHEMA, [str(p) for p in result.parquet_files]):
                con.execute(stmt)
            cur = con.execute(
                "SELECT * REPLACE (epoch_ms(generated_at) AS generated_at, "
                "epoch_ms(received_at) AS received_at) FROM wydot_bsm ORDER BY serial_record_id"
            )
            names = [d[0] for d in cur.description]
            got = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
            assert len(got) == len(records)
            for i, (row, rec) in enumerate(zip(got, records, strict=True)):
                assert row["serial_record_id"] == i
                assert row["source_key"] == f"key/{0 if i < split else 1}"
                assert_matches_record(row, rec)
                assert (row["source"], str(row["date"])) == ("wydot", "2018-05-06")
        finally:
            con.close()


def test_a_groups_statistics_are_those_return_stats_gives(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """The grouped conversion writes its partitions without RETURN_STATS and takes the few
    statistics it reads (null counts of invalid_reason, schema_version and the warnings'
    elements; schema_version's range) from one aggregate: they must be what RETURN_STATS says
    of each partition's file, NULL lists, empty lists and NULL elements included."""
    con.execute(
        "CREATE TABLE t AS SELECT range % 5 AS _unit, "
        "CASE WHEN range % 5 = 1 AND range % 3 = 0 THEN 'bad: x' END AS invalid_reason, "
        "CASE WHEN range % 5 = 2 THEN NULL WHEN range % 5 = 3 THEN 5 + range % 2 "
        "ELSE 6 END AS schema_version, "
        "CASE WHEN range % 5 = 0 THEN NULL WHEN range % 5 = 1 THEN []::VARCHAR[] "
        "WHEN range % 5 = 4 AND range % 7 = 0 THEN ['w1', NULL] "
        "WHEN range % 5 = 4 THEN [NULL]::VARCHAR[] ELSE []::VARCHAR[] END AS warnings "
        "FROM range(200)"
    )
    conversion = transform._Conversion.__new__(transform._Conversion)
    conversion.con = con
    counts, stats = conversion._unit_stats("t")
    written = transform._stats_rows(
        con.execute(
            f"COPY t TO '{tmp_path / 'x'}' (FORMAT parquet, PARTITION_BY (_unit), RETURN_STATS)"
        )
    )
    assert len(written) == 5
    kept = ("null_count", "num_values", "min", "max")
    for filename, rows, _size, _footer, column_stats in written:
        unit = int(Path(filename).parent.name.split("=", 1)[1])
        assert counts[unit] == rows
        for name in (transform._INVALID_STAT, transform._WARNING_STAT):
            want = {k: v for k, v in column_stats[name].items() if k in kept[:2]}
            assert stats[unit][name] == want, (unit, name)
        want = {k: v for k, v in column_stats[transform._VERSION_STAT].items() if k in kept}
        assert stats[unit][transform._VERSION_STAT] == want, unit


def test_a_clean_groups_warnings_and_duplicates_equal_each_partition_alone(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """A group with no unreadable or invalid line counts its partitions' warnings and
    duplicate records from the rows it staged (not the files read back): the counts must be
    those of each partition converted alone."""
    def record(n: int, speed: float | None = None) -> str:
        rec = sample(6)
        rec["payload"]["data"]["coreData"]["msgCnt"] = n  # distinct records
        if speed is not None:
            rec["payload"]["data"]["coreData"]["speed"] = speed
        return json.dumps(rec)

    parts = []
    for day in range(3):
        lines = [record(10 * day + i) for i in range(2 + day)]
        if day != 1:  # a warning in days 0 and 2
            lines.append(record(99, speed=200.0))
        if day != 2:  # a record published twice in days 0 and 1
            lines.append(lines[0])
        src = ndjson(tmp_path / "raw" / f"d{day}" / "obj", lines)
        parts.append(([RawFile(src, f"k{day}")], tmp_path / "grouped" / f"d{day}"))
    grouped = transform.convert_partitions(
        con,
        SCHEMA,
        parts,
        validation=ValidationConfig(),
        target_rows_per_file=100_000,
        row_group_size=100_000,
    )
    alone = [convert(con, files, tmp_path / "alone" / out.name) for files, out in parts]
    assert [g.warnings for g in grouped] == [a.warnings for a in alone]
    assert [g.rows for g in grouped] == [a.rows for a in alone]
    assert grouped[0].warnings.get("speed_out_of_range") == 1
    assert grouped[1].warnings.get(transform.DUPLICATE) == 1
    assert "speed_out_of_range" not in grouped[1].warnings


# -- what an object holds, from the first bytes its download kept --------------------------------

_OPENINGS = st.lists(
    st.sampled_from([b"{", b"[", b"}", b" ", b"\n", b"\r\n", b"\t", b"\xef\xbb\xbf", b"\x1f\x8b",
                     b'"a": 1', b"x" * 700, b" " * 900, b" " * 70_000, b"y" * 70_000]),
    max_size=12,
)  # fmt: skip


@given(_OPENINGS, st.integers(min_value=1, max_value=5000))
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_an_objects_first_bytes_tell_its_kind_as_its_first_64_kib_would(
    parts: list[bytes], head_bytes: int
) -> None:
    data = b"".join(parts)
    peek = transform._PEEK
    read = transform._kind(data[:peek], len(data) > peek)
    head = data[:head_bytes]
    if transform._tells(head):
        assert transform._kind(head, True) == read


def test_objects_converted_from_their_kept_first_bytes_give_what_reading_them_gives(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NDJSON, a BOM, gzip, pretty-printed documents, an array, blanks: the same rows and
    quarantine whether the conversion is given the first bytes each object's download kept or
    reads them."""
    record = (json.dumps(sample(6)) + "\n").encode()
    pretty = json.dumps(sample(5), indent=2).encode()
    raw = tmp_path / "raw"
    raw.mkdir()
    objects = {
        "nd": record * 3,
        "bom": b"\xef\xbb\xbf" + record * 2,
        "gz": gzip.compress(record * 2),
        "doc": pretty + b"\n" + pretty,
        "array": b"[\n" + pretty + b",\n" + pretty + b"\n]",
        "blank": b" \n" * 3000 + record,  # its first bytes are blanks: read again
        "broken": record + record[:300],
    }
    for name, body in objects.items():
        (raw / name).write_bytes(body)

    def files(heads: bool) -> list[RawFile]:
        return [
            RawFile(raw / n, f"key/{n}", (raw / n).read_bytes()[:HEAD_BYTES] if heads else None)
            for n in objects
        ]

    plain = convert(con, files(False), tmp_path / "plain")
    peeked: list[Path] = []
    real_peek = transform.rawfile.peek

    def peek(path: Path, size: int) -> tuple[bytes, bool]:
        peeked.append(path)
        return real_peek(path, size)

    monkeypatch.setattr(transform.rawfile, "peek", peek)
    given_heads = convert(con, files(True), tmp_path / "heads")
    assert given_heads.rows == plain.rows == 13 and given_heads.reasons == plain.reasons
    assert quarantine(given_heads) == quarantine(plain)

    def keyed(result: ConvertResult) -> list[tuple[Any, ...]]:
        return sorted((r["source_key"], r["generated_at"]) for r in rows(con, result.parquet_files))

    assert keyed(given_heads) == keyed(plain)
    # read again: the blanks (their head cannot tell) and what rewriting gzip and a BOM reads;
    # never a clean object
    read = {p.name for p in peeked}
    assert "blank" in read and not read & {"nd", "doc", "array", "broken"}


def test_a_parse_error_reads_as_one_phrase() -> None:
    """'Unterminated string starting at at column 561': the parser's message ends in 'at'."""
    for text, want in (('{"a": "abc', "Unterminated string starting at column 7"),
                       ('{"a": }', "Expecting value at column 7")):  # fmt: skip
        with pytest.raises(json.JSONDecodeError) as raised:
            json.loads(text)
        assert transform.parse_error(raised.value) == want
