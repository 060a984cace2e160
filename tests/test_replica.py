"""The sandbox replica: key layout, formats, schema shapes, broken lines, report, determinism.

Seeding goes through the real local S3 endpoint (moto server process); record-level checks use
the generator directly. Sizes are tiny so the whole module runs in a few seconds.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import uuid
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from cvcatalog.exceptions import ConfigError
from cvcatalog.sandbox.replica import SeedReport, iter_replica, seed_replica
from cvcatalog.sandbox.replica_blocks import (
    MALFORMED_KINDS,
    ReplicaSpec,
    java_instant,
    java_zoned,
    pretty_json,
)
from cvcatalog.sandbox.replica_wydot_bsm import (
    BsmWriter,
    bsm_record,
    fleet,
    new_log,
    schema_version_for,
)
from cvcatalog.sources.bucket import BUCKET

_SAMPLE_DIRS = (
    Path(__file__).parent / "fixtures" / "sandbox",
    Path(__file__).resolve().parents[2] / "shared" / "samples" / "sandbox",
)

NDJSON_KEY = re.compile(
    r"^(?P<source>wydot|wydot_backup)/BSM/(?P<y>\d{4})/(?P<m>\d\d)/(?P<d>\d\d)/(?P<h>\d\d)/"
    r"usdot-its-cvpilot-bsm-public-6-(?P<stamp>\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)-(?P<uuid>[0-9a-f-]{36})$"
)
JSON_KEY = re.compile(
    r"^(?P<source>wydot|wydot_backup)/BSM/(?P<y>\d{4})/(?P<m>\d\d)/(?P<d>\d\d)/(?P<h>\d\d)/"
    r"wydot-filtered-bsm-(?P<ms>\d{13})\.json$"
)
ZONED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{3})?)?Z\[UTC\]$")
INSTANT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")


# -- helpers -------------------------------------------------------------------------------------


def sample(version: int) -> dict[str, Any]:
    for d in _SAMPLE_DIRS:
        path = d / f"wydot-filtered-bsm-schemaVersion{version}.json"
        if path.exists():
            doc: dict[str, Any] = json.loads(path.read_text())
            return doc
    pytest.skip(f"sample record for schemaVersion {version} not found")


def key_paths(doc: Any, exact_numbers: bool) -> dict[str, str]:
    """Flattened key paths ('payload.data.partII[].id') with a type name for each.

    exact_numbers=False folds int and float into 'number': v5/v6 print 0 for 0.0 (Jackson
    strips trailing zeros), so the same field is int in one record and float in the next.
    """
    out: dict[str, str] = {}

    def kind(v: Any) -> str:
        if isinstance(v, bool):
            return "bool"
        if isinstance(v, int | float):
            return type(v).__name__ if exact_numbers else "number"
        if isinstance(v, dict):
            return "object"
        if isinstance(v, list):
            return "array"
        return "string" if isinstance(v, str) else "null"

    def walk(v: Any, path: str) -> None:
        if path:
            out.setdefault(path, kind(v))
            assert out[path] == kind(v) or not exact_numbers, (path, out[path], kind(v))
        if isinstance(v, dict):
            for k, item in v.items():
                walk(item, f"{path}.{k}" if path else k)
        elif isinstance(v, list):
            for item in v:
                walk(item, path + "[]")

    walk(doc, "")
    return out


def list_bucket(client: Any, bucket: str = BUCKET, prefix: str = "") -> dict[str, int]:
    keys: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            keys[obj["Key"]] = obj["Size"]
    return keys


def read(client: Any, key: str, bucket: str = BUCKET) -> bytes:
    body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def generated_ms(doc: dict[str, Any]) -> int:
    meta = doc["metadata"]
    text = meta.get("recordGeneratedAt") or meta["generatedAt"]
    text = text.removesuffix("[UTC]").removesuffix("Z")
    fmt = "%Y-%m-%dT%H:%M:%S.%f" if "." in text else "%Y-%m-%dT%H:%M:%S"
    if text.count(":") == 1:  # Java's 'T16:33Z' for a whole minute
        text += ":00"
    t = datetime.strptime(text, fmt).replace(tzinfo=UTC)
    return round(t.timestamp() * 1000)


def number_free(text: str) -> list[str]:
    return [
        re.sub(r"-?\d+(\.\d+)?([eE][-+]?\d+)?(,?)$", r"N\3", line) for line in text.splitlines()
    ]


def bearing(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    north = lat2 - lat1
    east = (lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    return math.degrees(math.atan2(east, north)) % 360.0


def angle_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


# -- layout and formats through the local endpoint ---------------------------------------------


def test_layout_naming_and_formats_around_the_ndjson_switch(s3_client: Any) -> None:
    """Before 2018-01-18: one pretty document per object; from then on NDJSON files."""
    rep = seed_replica(
        s3_client, date(2018, 1, 17), date(2018, 1, 18),
        records_per_hour=2, files_per_hour=2, empty_hour_rate=0.5, workers=4,
    )  # fmt: skip
    listed = list_bucket(s3_client)
    assert len(listed) == rep.objects
    seen: dict[str, Counter[str]] = defaultdict(Counter)
    for key, size in listed.items():
        body = read(s3_client, key)
        assert len(body) == size
        pk = "/".join(key.split("/")[:5])
        seen[pk]["objects"] += 1
        seen[pk]["bytes"] += size
        folder_hour = int(key.split("/")[5])
        if key.startswith("wydot/BSM/2018/01/17/"):
            m = JSON_KEY.match(key)
            assert m, key
            text = body.decode()
            assert text.startswith('{\n  "metadata": {\n') and not text.endswith("\n")
            doc = json.loads(text)  # exactly one document
            # laid out like json.dumps(indent=2); numbers keep the ODE's text ('0.00')
            assert number_free(text) == number_free(json.dumps(doc, indent=2))
            docs = [doc]
            # the name is odeReceivedAt in epoch ms (bumped by a ms on a rare clash)
            received = doc["metadata"]["odeReceivedAt"].removesuffix("Z[UTC]")
            received_ms = round(
                datetime.fromisoformat(received).replace(tzinfo=UTC).timestamp() * 1000
            )
            assert 0 <= int(m["ms"]) - received_ms < 5
        else:
            m = NDJSON_KEY.match(key)
            assert m, key
            assert uuid.UUID(m["uuid"]).version == 4
            assert body.endswith(b"\n") and b"\n\n" not in body
            lines = body.decode().split("\n")[:-1]
            assert all(": " not in line for line in lines)  # compact, one record a line
            docs = [json.loads(line) for line in lines]
            first = datetime.fromtimestamp(generated_ms(docs[0]) / 1000, tz=UTC)
            assert m["stamp"] == first.strftime("%Y-%m-%d-%H-%M-%S")
        for doc in docs:
            t = datetime.fromtimestamp(generated_ms(doc) / 1000, tz=UTC)
            assert (t.year, t.month, t.day, t.hour) == (
                int(m["y"]), int(m["m"]), int(m["d"]), folder_hour,
            )  # fmt: skip
            assert doc["metadata"]["schemaVersion"] == 3
            seen[pk]["records"] += 1
            seen[pk][f"hour{folder_hour:02d}"] += 1
    for pk, stats in rep.partitions.items():
        assert stats.objects == seen[pk]["objects"]
        assert stats.bytes == seen[pk]["bytes"]
        assert stats.records == seen[pk]["records"]
        assert stats.hours == {int(k[4:]): n for k, n in seen[pk].items() if k.startswith("hour")}
        assert stats.records == 2 * len(stats.hours)
        assert 0 < len(stats.hours) < 24  # some hours empty at rate 0.5
        assert stats.schema_versions == {3}
    assert (
        rep.partitions["wydot/BSM/2018/01/17"].objects
        == rep.partitions["wydot/BSM/2018/01/17"].records
    )


def test_empty_days_have_no_objects_and_report_no_data(s3_client: Any) -> None:
    rep = seed_replica(
        s3_client, date(2021, 3, 31), date(2021, 4, 2), empty_days=[date(2021, 4, 1)],
        records_per_hour=3, files_per_hour=1, empty_hour_rate=0.1,
    )  # fmt: skip
    assert list_bucket(s3_client, prefix="wydot/BSM/2021/04/01/") == {}
    empty = rep.partitions["wydot/BSM/2021/04/01"]
    assert empty.no_data and empty.records == 0 and empty.objects == 0
    assert rep.empty_partitions == ["wydot/BSM/2021/04/01"]
    for key in ("wydot/BSM/2021/03/31", "wydot/BSM/2021/04/02"):
        listed = list_bucket(s3_client, prefix=key + "/")
        hours = {int(k.split("/")[5]) for k in listed}
        assert hours == set(rep.partitions[key].hours)
        assert len(listed) == rep.partitions[key].objects == len(hours)
    total = sum(list_bucket(s3_client).values())
    assert total == rep.bytes


def test_empty_day_rate_and_hour_rate_are_deterministic() -> None:
    spec = ReplicaSpec(
        start=date(2021, 4, 1), end=date(2021, 4, 20), records_per_hour=1,
        empty_day_rate=0.3, empty_hour_rate=0.2,
    )  # fmt: skip
    days = [{o.partition.day for o in iter_replica(spec)} for _ in range(2)]
    assert days[0] == days[1]
    assert 5 <= len(days[0]) < 20  # some days empty, most not
    everything_empty = ReplicaSpec(start=date(2021, 4, 1), end=date(2021, 4, 3), empty_day_rate=1.0)
    assert list(iter_replica(everything_empty)) == []


def test_schema_versions_and_timestamps_follow_the_date(s3_client: Any) -> None:
    rep = seed_replica(
        s3_client, date(2018, 4, 30), date(2018, 5, 1), records_per_hour=2,
        files_per_hour=1, empty_hour_rate=0.5,
    )  # fmt: skip
    rep6 = seed_replica(
        s3_client, date(2018, 9, 1), date(2018, 9, 1), records_per_hour=2,
        files_per_hour=1, empty_hour_rate=0.5,
    )  # fmt: skip
    expected = {"2018/04/30": 3, "2018/05/01": 5, "2018/09/01": 6}
    for day, version in expected.items():
        key = f"wydot/BSM/{day}"
        stats = (rep6 if version == 6 else rep).partitions[key]
        assert stats.schema_versions == {version}
        listed = list_bucket(s3_client, prefix=key + "/")
        assert listed
        for obj in listed:
            for line in read(s3_client, obj).decode().splitlines():
                doc = json.loads(line)
                meta = doc["metadata"]
                assert meta["schemaVersion"] == version
                pattern = INSTANT if version == 6 else ZONED
                assert pattern.match(meta["recordGeneratedAt"]), meta["recordGeneratedAt"]
                assert pattern.match(meta["odeReceivedAt"]), meta["odeReceivedAt"]
                want = key_paths(sample(version), exact_numbers=version == 3)
                assert key_paths(doc, exact_numbers=version == 3) == want
    assert [schema_version_for(date.fromisoformat(d.replace("/", "-"))) for d in expected] == [
        3, 5, 6,
    ]  # fmt: skip


# -- record shapes against the real samples ---------------------------------------------------


@pytest.mark.parametrize("version", [3, 5, 6])
def test_record_key_paths_match_the_real_sample(version: int) -> None:
    """Same nested field names, in the same order, with the same value types as the sample."""
    rng = random.Random(7)
    vehicles = fleet(42, "wydot", 5)
    want = key_paths(sample(version), exact_numbers=version == 3)
    for i in range(50):
        t = datetime(2021, 4, 1, 17, 5, tzinfo=UTC).replace(second=i, microsecond=i * 7919)
        doc = bsm_record(vehicles[i % 5], t, version, rng)
        got = key_paths(doc, exact_numbers=version == 3)
        assert got == want
        assert list(got) == list(want)  # key order too (v3 sorted, v5/v6 as the ODE wrote them)


def test_schema_version_1_renames_the_timestamps() -> None:
    doc = bsm_record(
        fleet(42, "wydot", 1)[0], datetime(2021, 4, 1, 3, tzinfo=UTC), 1, random.Random(1)
    )
    meta = doc["metadata"]
    assert meta["schemaVersion"] == 1
    assert "recordGeneratedAt" not in meta and "odeReceivedAt" not in meta
    assert ZONED.match(meta["generatedAt"]) and ZONED.match(meta["receivedAt"])
    renamed = {
        p.replace("metadata.generatedAt", "metadata.recordGeneratedAt").replace(
            "metadata.receivedAt", "metadata.odeReceivedAt"
        ): k
        for p, k in key_paths(doc, exact_numbers=True).items()
    }
    assert renamed == key_paths(sample(3), exact_numbers=True)


def test_forced_schema_version_applies_to_every_day(s3_client: Any) -> None:
    rep = seed_replica(
        s3_client, date(2021, 4, 1), date(2021, 4, 1), records_per_hour=1, files_per_hour=1,
        schema_version=1, empty_hour_rate=0.8,
    )  # fmt: skip
    assert rep.partitions["wydot/BSM/2021/04/01"].schema_versions == {1}
    for key in list_bucket(s3_client):
        assert json.loads(read(s3_client, key))["metadata"]["schemaVersion"] == 1


def test_values_are_realistic_and_consistent() -> None:
    spec = ReplicaSpec(
        start=date(2021, 4, 1), end=date(2021, 4, 1), records_per_hour=400, files_per_hour=1,
        empty_hour_rate=0.0, vehicles=8,
    )  # fmt: skip
    by_vehicle: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for obj in list(iter_replica(spec))[:3]:
        text = obj.body.decode()
        # number text like the ODE: no exponents, lat/lon at most 7 decimals
        assert not re.search(r"[:,\[]-?\d+(\.\d+)?[eE]", text)
        for m in re.finditer(r'"(latitude|longitude)":(-?\d+\.\d+)', text):
            assert len(m.group(2).split(".")[1]) <= 7
        for line in text.splitlines():
            doc = json.loads(line)
            core = doc["payload"]["data"]["coreData"]
            pos = core["position"]
            assert 40.9 < pos["latitude"] < 41.9 and -111.1 < pos["longitude"] < -104.7
            assert 1750 < pos["elevation"] < 2750
            assert 15 < core["speed"] < 40 and 0 <= core["heading"] < 360
            assert re.fullmatch(r"[0-9A-F]{8}", core["id"])
            assert 0 <= core["msgCnt"] < 128
            ms = generated_ms(doc)
            assert core["secMark"] == ms % 60_000
            crumbs = doc["payload"]["data"]["partII"][0]["value"]["pathHistory"]["crumbData"]
            assert 3 <= len(crumbs) <= 6
            offsets = [c["timeOffset"] for c in crumbs]
            assert offsets == sorted(offsets)
            by_vehicle[core["id"]].append((ms, core))
    checked = agree = 0
    for points in by_vehicle.values():
        points.sort(key=lambda p: p[0])
        for (t1, a), (t2, b) in itertools.pairwise(points):
            if not 0 < t2 - t1 <= 30_000:
                continue
            pa, pb = a["position"], b["position"]
            moved = math.hypot(
                (pb["latitude"] - pa["latitude"]) * 111_320,
                (pb["longitude"] - pa["longitude"]) * 111_320 * math.cos(math.radians(41.4)),
            )
            if moved < 20:
                continue
            checked += 1
            course = bearing(pa["latitude"], pa["longitude"], pb["latitude"], pb["longitude"])
            agree += angle_diff(course, b["heading"]) < 10
            # distance travelled matches the reported speeds
            assert moved == pytest.approx(
                (a["speed"] + b["speed"]) / 2 * (t2 - t1) / 1000, rel=0.25
            )
    assert checked > 50 and agree / checked > 0.9


def test_number_text_follows_each_schema_version() -> None:
    """v1/v3 keep the decimal scale ('258.6000', '0.00'); v5/v6 strip zeros ('0', '2.3')."""
    vehicles = fleet(42, "wydot", 4)
    t_ms = 1525638388690
    for version in (3, 5, 6):
        rng = random.Random(version)
        writer = BsmWriter(version, rng)
        for i in range(200):
            line = writer.line(vehicles[i % 4], t_ms + i * 1000, new_log(rng, t_ms), i + 1)
            numbers = re.sub(r'"[^"]*"', '""', line)  # drop string literals (IPv6 has '::95e')
            assert not re.search(r"[:,\[]-?\d+(\.\d+)?[eE]", numbers)  # no exponent notation
            assert not re.search(r"[:,\[]-0(\.0+)?[,}\]]", numbers)  # no negative zero
            if version == 3:
                assert re.search(r'"heading":\d+\.\d{4},', line)
                assert re.search(r'"latitude":\d+\.\d{7},', line)
                assert re.search(r'"elevation":\d+\.\d,', line)
                assert re.search(r'"semiMajor":\d+\.\d\d,', line)
            else:
                assert not re.search(r"[:,\[]-?\d+\.\d*0[,}\]]", numbers)
    # re-indenting keeps number text
    raw = pretty_json('{"a":0.00,"b":[1,2.50],"c":{},"d":[],"e":"x"}')
    assert raw == json.dumps({"a": 0, "b": [1, 2], "c": {}, "d": [], "e": "x"}, indent=2).replace(
        '"a": 0', '"a": 0.00'
    ).replace("    2\n", "    2.50\n")
    assert java_zoned(1512491638000) == "2017-12-05T16:33:58Z[UTC]"
    assert java_zoned(1512491580000) == "2017-12-05T16:33Z[UTC]"  # Java drops ':00'
    assert java_zoned(1525638388690) == "2018-05-06T20:26:28.690Z[UTC]"
    assert java_instant(1525638388690) == "2018-05-06T20:26:28.690Z"
    assert java_instant(1525638360000) == "2018-05-06T20:26:00Z"


# -- broken lines -------------------------------------------------------------------------------


def test_malformed_lines_are_listed_exactly(s3_client: Any) -> None:
    rep = seed_replica(
        s3_client, date(2021, 4, 1), date(2021, 4, 1), records_per_hour=6, files_per_hour=3,
        malformed_per_day=7, empty_hour_rate=0.7,
    )  # fmt: skip
    found: set[tuple[str, int, str]] = set()
    valid: Counter[str] = Counter()
    for key in list_bucket(s3_client):
        pk = "/".join(key.split("/")[:5])
        for n, line in enumerate(read(s3_client, key).decode().split("\n")[:-1], start=1):
            try:
                doc = json.loads(line)
            except ValueError:
                found.add((key, n, "unparseable"))
                continue
            if "id" not in doc["payload"]["data"]["coreData"]:
                found.add((key, n, "missing_id"))
            else:
                valid[pk] += 1
    reported = {(m.key, m.line, m.kind) for m in rep.malformed_lines}
    assert len(reported) == rep.malformed == 7
    as_seen = {
        (k, n, "missing_id" if kind == "missing_id" else "unparseable") for k, n, kind in reported
    }
    assert as_seen == found
    assert Counter(m.kind for m in rep.malformed_lines) == Counter(
        {"truncated_json": 3, "garbage": 2, "missing_id": 2}
    )
    stats = rep.partitions["wydot/BSM/2021/04/01"]
    assert stats.malformed == 7
    assert stats.records == valid["wydot/BSM/2021/04/01"] == 6 * len(stats.hours)
    assert rep.totals()["malformed"] == 7


def test_malformed_lines_do_not_change_the_valid_records() -> None:
    day = date(2021, 4, 1)
    clean_spec = ReplicaSpec(day, day, records_per_hour=5, files_per_hour=2)
    clean = {o.key: o.body for o in iter_replica(clean_spec)}
    dirty = list(
        iter_replica(
            ReplicaSpec(day, day, records_per_hour=5, files_per_hour=2, malformed_per_day=5)
        )
    )
    assert sorted(clean) == sorted(o.key for o in dirty)
    for obj in dirty:
        bad = {m.line for m in obj.malformed}
        kept = [x for i, x in enumerate(obj.body.split(b"\n"), start=1) if i not in bad]
        assert b"\n".join(kept) == clean[obj.key]
    assert sum(len(o.malformed) for o in dirty) == 5


def test_no_malformed_lines_before_ndjson() -> None:
    spec = ReplicaSpec(
        start=date(2018, 1, 10), end=date(2018, 1, 10), records_per_hour=1, malformed_per_day=3
    )
    assert all(not o.malformed for o in iter_replica(spec))


# -- sources, determinism, report ---------------------------------------------------------------


def test_wydot_and_wydot_backup_never_mix(s3_client: Any) -> None:
    rep = seed_replica(
        s3_client, date(2021, 4, 1), date(2021, 4, 1), sources=("wydot", "wydot_backup"),
        records_per_hour=4, files_per_hour=1, vehicles=10,
    )  # fmt: skip
    ids: dict[str, set[str]] = {}
    streams: dict[str, set[str]] = {}
    for source in ("wydot", "wydot_backup"):
        ids[source], streams[source] = set(), set()
        for key in list_bucket(s3_client, prefix=f"{source}/"):
            for line in read(s3_client, key).decode().splitlines():
                doc = json.loads(line)
                ids[source].add(doc["payload"]["data"]["coreData"]["id"])
                streams[source].add(doc["metadata"]["serialId"]["streamId"])
        assert ids[source] == set(rep.partitions[f"{source}/BSM/2021/04/01"].vehicles)
        assert ids[source] <= {v.id for v in fleet(42, source, 10)}
    assert not ids["wydot"] & ids["wydot_backup"]
    assert not streams["wydot"] & streams["wydot_backup"]
    assert {v.id for v in fleet(42, "wydot", 10)}.isdisjoint(
        v.id for v in fleet(42, "wydot_backup", 10)
    )


def test_same_seed_gives_same_bytes(s3_client: Any) -> None:
    s3_client.create_bucket(Bucket="replica-copy")
    day = date(2021, 4, 1)
    for bucket, workers in ((BUCKET, 8), ("replica-copy", 1)):
        seed_replica(
            s3_client, day, day, bucket=bucket, workers=workers, empty_hour_rate=0.6,
            records_per_hour=3, files_per_hour=2, malformed_per_day=2,
        )  # fmt: skip
    first, second = list_bucket(s3_client), list_bucket(s3_client, "replica-copy")
    assert first == second
    for key in first:
        assert read(s3_client, key) == read(s3_client, key, "replica-copy")
    spec = ReplicaSpec(day, day, seed=43, records_per_hour=3, files_per_hour=2, malformed_per_day=2)
    other = {o.key: o.body for o in iter_replica(spec)}
    assert other and not set(other) & set(first)


def test_worker_processes_give_identical_output() -> None:
    spec = ReplicaSpec(start=date(2021, 4, 1), end=date(2021, 4, 1), records_per_hour=2)
    inline = [(o.key, o.body) for o in iter_replica(spec)]
    assert [(o.key, o.body) for o in iter_replica(spec, processes=2)] == inline


def test_report_round_trips_through_json(s3_client: Any, tmp_path: Path) -> None:
    calls: list[int] = []
    rep = seed_replica(
        s3_client, date(2021, 4, 1), date(2021, 4, 2), records_per_hour=2, files_per_hour=1,
        malformed_per_day=1, empty_days=[date(2021, 4, 2)], progress=calls.append,
    )  # fmt: skip
    assert sum(calls) == rep.records == rep.partitions["wydot/BSM/2021/04/01"].records
    path = rep.write_json(tmp_path / "out" / "report.json")
    raw = json.loads(path.read_text())
    assert raw["totals"]["records"] == rep.records
    assert raw["totals"]["objects"] == rep.objects == len(list_bucket(s3_client))
    assert raw["partitions"]["wydot/BSM/2021/04/02"]["no_data"] is True
    assert raw["malformed_lines"][0]["kind"] in MALFORMED_KINDS
    again = SeedReport.read_json(path)
    assert again.to_dict()["partitions"] == rep.to_dict()["partitions"]
    assert again.malformed_lines == rep.malformed_lines


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sources": ("thea",), "message_types": ("EVENT",)}, "not published"),
        ({"sources": ("nycdot",)}, "not published"),
        ({"message_types": ("SPAT",)}, "not published"),
        ({"schema_version": 4}, "unsupported schema_version"),
        ({"files_per_hour": 0}, "files_per_hour"),
        ({"empty_hour_rate": 1.5}, "empty_hour_rate"),
    ],
)
def test_unsupported_requests_are_config_errors(kwargs: dict[str, Any], message: str) -> None:
    """A user's mistake (`sandbox seed` passes its arguments on): one line, exit 1 in the CLI."""
    with pytest.raises(ConfigError, match=message):
        seed_replica(None, date(2021, 4, 1), date(2021, 4, 1), **kwargs)


def test_end_before_start_is_an_error() -> None:
    with pytest.raises(ConfigError, match="before start"):
        seed_replica(None, date(2021, 4, 2), date(2021, 4, 1))
