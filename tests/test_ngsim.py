"""NGSIM through the dataset contract: generator -> ingest -> views, resume, changes, inputs."""

from __future__ import annotations

import csv
import gc
import http.server
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cvcatalog import Catalog
from cvcatalog.cli.main import app
from cvcatalog.datasets.base import Rejects, WorkUnit
from cvcatalog.datasets.ngsim import CSV_NAMES, NgsimDataset, to_lonlat
from cvcatalog.exceptions import CatalogError, ConfigError, TransientFetchError
from cvcatalog.io.lake import files as lake_files
from cvcatalog.io.s3 import RetryPolicy
from cvcatalog.io.storage import LINEAGE_OBJECT
from cvcatalog.pipeline.report import summary_lines
from cvcatalog.quality.report import build_report
from cvcatalog.sandbox import ngsim as ngsim_gen
from cvcatalog.sandbox.ngsim import generate_ngsim
from cvcatalog.sources import ngsim
from cvcatalog.state.db import CatalogDB

UNIT = 1 << 18  # small units: several per test file
runner = CliRunner()

#: generous boxes around the real sites (lat_min, lat_max, lon_min, lon_max)
BOXES = {
    "us-101": (34.12, 34.16, -118.39, -118.34),
    "lankershim": (34.12, 34.16, -118.39, -118.34),
    "i-80": (37.82, 37.86, -122.32, -122.28),
    "peachtree": (33.76, 33.80, -84.41, -84.37),
}


@pytest.fixture(scope="module")
def ngsim_csv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    path = tmp_path_factory.mktemp("ngsim") / "trajectories.csv"
    rep = generate_ngsim(path, 12_000, seed=7, bad_rows=8)
    return path, rep


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _ingest(catalog: Path, uri: str, **kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("unit_bytes", UNIT)
    return Catalog(catalog).ingest_dataset("ngsim", uri, **kw)  # type: ignore[arg-type]


def _cli_ingest(path: str, catalog: Path, *extra: str) -> dict[str, object]:
    """`cvcatalog ingest --source ngsim --path PATH ... --format json`, which must succeed;
    its summary."""
    r = runner.invoke(
        app,
        ["ingest", "--source", "ngsim", "--path", path, "--catalog", str(catalog),
         "--format", "json", "--no-progress", *extra],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    summary: dict[str, object] = json.loads(r.stdout)[0]
    return summary


def test_site_crs_land_on_the_real_sites() -> None:
    import numpy as np

    for loc, (x, y) in {
        "us-101": (6451218.6, 1873167.5),
        "lankershim": (6452219.1, 1873709.7),
        "i-80": (6042197.1, 2132953.9),
        "peachtree": (2230214.7, 1375989.2),
    }.items():
        lon, lat = to_lonlat(loc, np.array([x]), np.array([y]))
        lat_min, lat_max, lon_min, lon_max = BOXES[loc]
        assert lat_min < lat[0] < lat_max and lon_min < lon[0] < lon_max, loc


def test_generator_is_deterministic_and_plausible(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    generate_ngsim(a, 3000, seed=1)
    generate_ngsim(b, 3000, seed=1)
    assert a.read_bytes() == b.read_bytes()
    rows = _csv_rows(a)
    assert all(abs(float(r["v_Acc"])) <= 11.2 for r in rows)  # <= 3.4 m/s^2
    assert all(float(r["v_Vel"]) >= 0 for r in rows)
    for r in rows:  # Global_Time - 100 * Frame_ID is the period start: constant per period
        assert (int(r["Global_Time"]) - 100 * int(r["Frame_ID"])) % 1000 == 0
    led = [r for r in rows if r["Preceding"] != "0"]
    assert led and all(float(r["Space_Headway"]) > 0 for r in led)


def test_generator_interrupted_leaves_no_half_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during `sandbox ngsim` used to leave the CSV written so far at --out (a file an
    ingest then loads as if whole), over the earlier complete one; now --out is untouched."""
    out = tmp_path / "n.csv"
    generate_ngsim(out, 300, seed=1, locations=["us-101"])
    before = out.read_bytes()
    calls = 0
    real = ngsim_gen._write_vehicle

    def interrupted(*args: Any, **kwargs: Any) -> int:
        nonlocal calls
        calls += 1
        if calls > 20:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ngsim_gen, "_write_vehicle", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_ngsim(out, 50_000, seed=2)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["n.csv"]  # no temporary left either
    with pytest.raises(KeyboardInterrupt):
        generate_ngsim(tmp_path / "new.csv", 50_000, seed=2)
    assert not (tmp_path / "new.csv").exists()


def test_round_trip_units_ids_and_quarantine(ngsim_csv, catalog_dir: Path) -> None:  # type: ignore[no-untyped-def]
    path, rep = ngsim_csv
    s = _ingest(catalog_dir, str(path))
    assert s.ok and s.units > 3
    rows = _csv_rows(path)
    assert len(rows) == rep.data_lines
    assert s.quarantined == rep.bad_rows
    assert s.rows == rep.data_lines - s.quarantined
    cat = Catalog(catalog_dir)
    n = cat.query("select count(*) n from ngsim_trajectories")["n"][0]
    assert n == s.rows

    # conversions, checked against values computed here from the CSV rows
    sample = [r for r in rows if r["Location"] in BOXES][::997]
    for r in sample:
        vid = int(r["Vehicle_ID"])
        gt = int(r["Global_Time"])
        got = cat.query(
            "select * from ngsim_trajectories where ngsim_vehicle_id = ? and "
            "epoch_ms(timestamp) = ? and location = ?",
            [vid, gt, r["Location"]],
        )
        assert len(got) == 1
        g = got.iloc[0]
        assert g["x_m"] == pytest.approx(float(r["Local_X"]) * 0.3048)
        assert g["y_m"] == pytest.approx(float(r["Local_Y"]) * 0.3048)
        assert g["speed_mps"] == pytest.approx(float(r["v_Vel"]) * 0.3048)
        assert g["accel_mps2"] == pytest.approx(float(r["v_Acc"]) * 0.3048)
        assert g["vehicle_length_m"] == pytest.approx(float(r["v_length"]) * 0.3048)
        period = gt - 100 * int(r["Frame_ID"])
        assert g["vehicle_id"] == f"{r['Location']}:{period}:{vid}"
        assert g["lane_id"] == int(r["Lane_ID"])
        assert str(g["date"]) == str(g["timestamp"].tz_convert("UTC").date())
        lat_min, lat_max, lon_min, lon_max = BOXES[r["Location"]]
        assert lat_min < g["latitude"] < lat_max and lon_min < g["longitude"] < lon_max
        if r["Preceding"] == "0":
            assert g["preceding"] is None or g["preceding"] != g["preceding"]  # NULL / NaN
            assert g["time_headway_s"] != g["time_headway_s"] or g["time_headway_s"] is None

    # ids: NGSIM's repeat across periods and locations, ours do not
    ids = cat.query(
        "select ngsim_vehicle_id, count(distinct vehicle_id) n from ngsim_trajectories "
        "group by 1 order by 2 desc limit 1"
    )
    assert ids["n"][0] > 1
    per_vehicle = cat.query(
        "select vehicle_id, count(distinct location) l, count(distinct period_start) p, "
        "count(*) c, max(total_frames) t from ngsim_trajectories group by 1"
    )
    assert (per_vehicle["l"] == 1).all() and (per_vehicle["p"] == 1).all()
    assert (per_vehicle["c"] == per_vehicle["t"]).all()  # whole trajectories, no merging

    # quarantine: every broken line with its reason, and counted per rule; entries of the CV
    # shape (source_key, line, reason, raw): the input, no line number (a unit does not know
    # how many lines come before it) but the byte where the line starts, in any unit
    q = [
        json.loads(line)
        for f in (catalog_dir / "quarantine").rglob("*.ndjson")
        for line in f.read_text().splitlines()
    ]
    assert len(q) == rep.bad_rows
    assert {x["rule"] for x in q} == {
        "field_count",
        "non_numeric",
        "missing_field",
        "unknown_location",
    }
    data = path.read_bytes()
    for x in q:
        assert (x["source_key"], x["line"]) == (str(path.resolve()), None), x
        raw = x["raw"].encode()
        start = x["byte_offset"]
        assert data[start : start + len(raw) + 1] == raw + b"\n", x
        assert data[start - 1 : start] == b"\n"  # the start of a line
        assert x["unit"].startswith(f"{x['source_key']}#") and x["reason"]
    assert len({x["unit"] for x in q}) > 1  # offsets in the input, not in a unit
    rules = cat.query(
        "select rule, sum(count) n from validation_reports where run_id = ? group by 1",
        [s.run_id],
    )
    assert int(rules["n"].sum()) == rep.bad_rows
    # `report validation` without --run finds this run (its keys are units, not partitions)
    for source in (None, "ngsim"):
        report = cat.validation_report(source=source)
        assert {r["run_id"] for r in report} == {s.run_id}
        assert sum(r["count"] for r in report) == rep.bad_rows
    # a unit is named as eviction names an input (`ngsim:/path#start-end`), not `ngsim//path`
    assert {r["partition"] for r in report} == {f"ngsim:{u}" for u in {x["unit"] for x in q}}
    assert cat.validation_report(source="wydot") == []
    # a unit's counts have no partitions row: its type is its run's
    assert cat.validation_report(s.run_id, "ngsim", "TRAJECTORY") == report
    mixed_up = f"run {s.run_id} ingested ngsim/TRAJECTORY: it holds no validation of wydot"
    with pytest.raises(CatalogError, match=re.escape(mixed_up)):
        cat.validation_report(s.run_id, source="wydot")
    run = cat.query("select * from ingest_runs where run_id = ?", [s.run_id]).iloc[0]
    assert run["source"] == "ngsim" and run["message_type"] == "TRAJECTORY"
    assert run["status"] == "ok" and run["rows"] == s.rows


def test_location_filter_skips_other_sites(ngsim_csv, catalog_dir: Path) -> None:  # type: ignore[no-untyped-def]
    path, rep = ngsim_csv
    s = _ingest(catalog_dir, str(path), location="I-80")
    assert s.ok
    assert s.rows == rep.per_location["i-80"]
    cat = Catalog(catalog_dir)
    got = cat.query("select location, count(*) n from ngsim_trajectories group by 1")
    assert got["location"].tolist() == ["i-80"]
    # the i-80 periods cross midnight UTC: two date partitions
    dates = cat.query("select distinct date from ngsim_trajectories")
    assert len(dates) == 2
    # a whole load then supersedes the filtered one (no duplicates)
    s2 = _ingest(catalog_dir, str(path))
    assert s2.ok
    n = cat.query("select count(*) n from ngsim_trajectories where location = 'i-80'")["n"][0]
    assert n == rep.per_location["i-80"]


class _Counting(NgsimDataset):
    """Counts fetches; can fail one unit (once, or always)."""

    fail_index: int | None = None
    fail_kind: str = "fatal"
    fetches: list[int]

    def fetch(self, unit):  # type: ignore[no-untyped-def]
        self.fetches.append(unit.index)
        if unit.index == self.fail_index:
            if self.fail_kind == "transient-once":
                self.fail_index = None
                raise TransientFetchError("connection reset (test)")
            raise RuntimeError("disk on fire (test)")
        return super().fetch(unit)


def _run(catalog: Path, uri: str, **kw: object):  # type: ignore[no-untyped-def]
    ds = _Counting([uri], unit_bytes=UNIT)
    ds.fetches = []
    for k, v in kw.items():
        setattr(ds, k, v)
    s = ngsim.load(ds, Catalog(catalog).db, workers=2, retry=RetryPolicy(base_delay=0.0))
    return ds, s


def test_failed_unit_then_resume_fetches_only_the_rest(ngsim_csv, catalog_dir: Path) -> None:  # type: ignore[no-untyped-def]
    path, rep = ngsim_csv
    _, s = _run(catalog_dir, str(path), fail_index=2)
    assert not s.ok and s.units_failed == 1
    cat = Catalog(catalog_dir)
    # an input is shown only once all its units are in: nothing half-loaded is visible
    assert cat.query("select count(*) n from ngsim_trajectories")["n"][0] == 0
    committed = s.units_done
    # what a kill -9 of a load leaves in staging (its run's end never came): it stayed for
    # good, past later loads and `cache clear`; the next load clears it under its lock
    leftover = catalog_dir / "staging" / "datasets" / "ngsim" / "20210101T000000-dead" / "u"
    leftover.mkdir(parents=True)
    (leftover / "data-0000.parquet").write_bytes(b"PAR1")
    ds2, s2 = _run(catalog_dir, str(path))
    assert s2.ok
    assert not leftover.parent.exists()
    assert len(ds2.fetches) == s.units - committed  # only what the first run did not commit
    assert 2 in ds2.fetches
    assert s2.units_cached == committed
    assert cat.query("select count(*) n from ngsim_trajectories")["n"][0] == (
        rep.data_lines - rep.bad_rows
    )
    # unchanged input: nothing fetched at all
    ds3, s3 = _run(catalog_dir, str(path))
    assert s3.ok and ds3.fetches == [] and s3.units_cached == s3.units


def test_transient_error_is_retried(ngsim_csv, catalog_dir: Path) -> None:  # type: ignore[no-untyped-def]
    path, rep = ngsim_csv
    ds, s = _run(catalog_dir, str(path), fail_index=1, fail_kind="transient-once")
    assert s.ok and s.retries == 1
    assert ds.fetches.count(1) == 2
    assert s.rows == rep.data_lines - rep.bad_rows


def test_changed_input_is_rebuilt_and_replaces_the_old(tmp_path: Path, catalog_dir: Path) -> None:
    path = tmp_path / "t.csv"
    generate_ngsim(path, 4000, seed=1, locations=["us-101"])
    s1 = _ingest(catalog_dir, str(path))
    cat = Catalog(catalog_dir)
    old_files = set((catalog_dir / "lake").rglob("*.parquet"))
    rep2 = generate_ngsim(path, 3000, seed=2, locations=["peachtree"])
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))  # a different mtime, whatever the clock
    s2 = _ingest(catalog_dir, str(path))
    assert s2.ok and s2.units_done == s2.units and s2.inputs_published == 1
    got = cat.query("select location, count(*) n from ngsim_trajectories group by 1")
    assert got["location"].tolist() == ["peachtree"]
    assert got["n"][0] == rep2.rows
    with cat.db.read() as con:  # the old files leave the table (kept for time travel)
        shown = {Path(p) for p in lake_files(con, "ngsim_trajectories")}
    assert shown and not (old_files & shown)
    assert s1.rows != s2.rows or s1.run_id != s2.run_id
    inputs = cat.query("select * from dataset_inputs")
    assert len(inputs) == 1 and inputs["rows"][0] == rep2.rows
    s3 = _ingest(catalog_dir, str(path))  # unchanged now
    assert s3.units_done == 0
    # what changed and when, per run (`cvcatalog runs`)
    runs = cat.runs(10)
    by_id = {r["run_id"]: r for r in runs}
    want = {
        s1.run_id: (1, 0, 0, 1),  # added, changed, unchanged, partitions (us-101, one day)
        s2.run_id: (0, 1, 0, 1),  # peachtree replaces it
        s3.run_id: (0, 0, 1, 0),
    }
    for run_id, counts in want.items():
        r = by_id[run_id]
        got_counts = (
            r["objects_added"],
            r["objects_changed"],
            r["objects_unchanged"],
            r["partitions_rewritten"],
        )
        assert got_counts == counts, run_id
    out = runner.invoke(app, ["runs", "--format", "json", "--catalog", str(catalog_dir)])
    assert out.exit_code == 0, out.output
    listed = {r["run_id"]: r for r in json.loads(out.output)}
    assert listed[s2.run_id]["objects_changed"] == 1 and listed[s2.run_id]["start_date"] is None
    table = runner.invoke(app, ["runs", "--catalog", str(catalog_dir)])
    assert (
        table.exit_code == 0 and "ngsim/TRAJECTORY" in table.output and "None" not in table.output
    )


def test_a_changed_input_expires_the_old_snapshots_as_a_cv_ingest_does(
    tmp_path: Path, catalog_dir: Path
) -> None:
    """cache.snapshot_retention_days was applied after a CV ingest only: an NGSIM load that
    replaced an input kept the old version's files on disk whatever the retention (0 included),
    until some CV ingest or an eviction expired them. The runner now expires after a run of
    any source that wrote a partition."""
    path = tmp_path / "t.csv"
    generate_ngsim(path, 4000, seed=1, locations=["us-101"])
    config = tmp_path / "ngsim.yml"
    config.write_text(
        f"source: ngsim\ncache: {{directory: {catalog_dir}, snapshot_retention_days: 0}}\n"
    )
    _ingest(catalog_dir, str(path), config=config)
    cat = Catalog(catalog_dir)
    old_files = set((catalog_dir / "lake").rglob("*.parquet"))
    generate_ngsim(path, 3000, seed=2, locations=["peachtree"])
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))  # a different mtime, whatever the clock
    assert _ingest(catalog_dir, str(path), config=config).inputs_published == 1
    assert cat.older_snapshot_bytes() == 0
    assert old_files and not old_files & set((catalog_dir / "lake").rglob("*.parquet"))
    assert len(cat.snapshots()) == 1  # the current one; the first load's expired
    assert cat.verify().clean


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """A minimal static server with byte ranges (and an ETag) for one file."""

    path_on_disk: Path
    ranges = True

    def do_GET(self) -> None:
        data = self.path_on_disk.read_bytes()
        etag = f'"{len(data)}-{int(self.path_on_disk.stat().st_mtime_ns)}"'
        m = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
        if m and self.ranges:
            a = int(m.group(1))
            b = int(m.group(2)) if m.group(2) else len(data) - 1
            body = data[a : b + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {a}-{a + len(body) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_file(ngsim_csv) -> Iterator[tuple[str, type[_RangeHandler]]]:  # type: ignore[no-untyped-def]
    handler = type("H", (_RangeHandler,), {"path_on_disk": ngsim_csv[0]})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/trajectories.csv", handler
    finally:
        server.shutdown()
        server.server_close()


_ORDER = "select * exclude (vehicle_id) , vehicle_id from ngsim_trajectories order by vehicle_id, timestamp"


def test_a_loaded_input_asked_for_with_another_unit_size_is_not_fetched_again(
    ngsim_csv, catalog_dir: Path  # type: ignore[no-untyped-def]
) -> None:
    """Unit ids name byte ranges, so a load with another unit_bytes planned units none of
    which was committed: the whole input fetched and written again. An input some of whose
    units are committed (this version of it) is now cut as it was then."""
    path, _ = ngsim_csv
    first = _ingest(catalog_dir, str(path))
    assert first.ok and first.units_done > 3
    for size in (UNIT * 2, 1 << 16, 1 << 30):
        again = _ingest(catalog_dir, str(path), unit_bytes=size)
        assert again.ok and again.units == first.units, size
        assert again.units_done == 0 and again.bytes_downloaded == 0, size
    # `runs show --objects` of the run names its input (it listed none)
    r = runner.invoke(app, ["runs", "show", first.run_id, "--objects", "--format", "json",
                            "--catalog", str(catalog_dir)])  # fmt: skip
    assert r.exit_code == 0, r.output
    [row] = json.loads(r.stdout)
    assert (row["source_key"], row["size"], row["partition"]) == (
        str(path), path.stat().st_size, "ngsim")


@pytest.mark.parametrize(
    ("kw", "line"),
    [
        ({"workers": "2"}, "workers must be a whole number, 1 or more, got '2'"),
        ({"workers": 1.5}, "workers must be a whole number, 1 or more, got 1.5"),
        ({"workers": -1}, "workers must be a whole number, 1 or more, got -1"),
        ({"workers": 10_000}, "workers must be between 1 and "),
        ({"unit_bytes": "1MB"}, "unit_bytes must be a whole number, 1 or more, got '1MB'"),
        ({"unit_bytes": 1000}, "the unit size must be at least 64 KiB"),
    ],
)
def test_ingest_dataset_numbers_are_one_line(  # type: ignore[no-untyped-def]
    ngsim_csv, catalog_dir: Path, kw: dict[str, Any], line: str
) -> None:
    """workers="2" and unit_bytes="1MB" were TypeErrors from deep inside; workers=-1 and 1.5
    ran (as 1, and as 1.5 threads). One line naming the argument, as ingest() says it."""
    with pytest.raises(ConfigError, match="^" + re.escape(line)):
        Catalog(catalog_dir).ingest_dataset("ngsim", str(ngsim_csv[0]), **kw)
    assert not (catalog_dir / "catalog.ducklake").exists()


def _state_text(cat: Catalog) -> str:
    """Every text value of every state table, one string."""
    out: list[str] = []
    with cat.db.read_state() as con:
        tables = con.execute(
            "SELECT table_name, list(column_name) FROM duckdb_columns() WHERE database_name = "
            "current_database() AND data_type = 'VARCHAR' GROUP BY 1"
        ).fetchall()
        for table, columns in tables:
            cols = ", ".join(f'"{c}"' for c in columns)
            out += [str(v) for row in con.execute(f'SELECT {cols} FROM "{table}"').fetchall()
                    for v in row]  # fmt: skip
    return "\n".join(out)


def test_a_presigned_url_is_kept_without_its_signature(  # type: ignore[no-untyped-def]
    http_file, catalog_dir: Path
) -> None:
    """A presigned --path URL was recorded, listed and published with its signature (and the
    access key id of whoever signed it), and a new signature of the same object was another
    input, fetched again. Now the catalog keeps the URL without what signs it; every request
    still uses the URL as given."""
    url, _ = http_file
    signed = url + "?versionId=7&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE"
    first = _ingest(catalog_dir, signed + "&X-Amz-Signature=0123abcd&X-Amz-Expires=60")
    assert first.ok and first.units_done > 0
    cat = Catalog(catalog_dir)
    text = _state_text(cat)
    assert url + "?versionId=7" in text
    assert "0123abcd" not in text and "AKIAEXAMPLE" not in text and "X-Amz" not in text
    again = _ingest(catalog_dir, signed + "&X-Amz-Signature=4567ef01&X-Amz-Expires=30")
    assert again.ok and again.units_done == 0 and again.bytes_downloaded == 0
    r = runner.invoke(app, ["cache", "status", "--catalog", str(catalog_dir), "--format", "json"])
    assert r.exit_code == 0 and "Signature" not in r.output, r.output


@pytest.mark.slow
def test_local_http_and_s3_give_identical_results(  # type: ignore[no-untyped-def]
    ngsim_csv, http_file, s3_client, tmp_path: Path
) -> None:
    path, rep = ngsim_csv
    url, handler = http_file
    s3_client.create_bucket(Bucket="ngsim")
    s3_client.upload_file(str(path), "ngsim", "data/trajectories.csv")
    results = {}
    for name, uri in {
        "local": str(path),
        "http": url,
        "s3": "s3://ngsim/data/trajectories.csv",
    }.items():
        s = _ingest(tmp_path / name, uri)
        assert s.ok, s.errors
        assert s.units > 3
        results[name] = Catalog(tmp_path / name).query(_ORDER)
    handler.ranges = False  # a server without Range support: one streamed unit, same rows
    s = _ingest(tmp_path / "http-norange", url)
    assert s.ok and s.units == 1
    results["http-norange"] = Catalog(tmp_path / "http-norange").query(_ORDER)
    base = results["local"]
    assert len(base) == rep.data_lines - rep.bad_rows
    for name, df in results.items():
        assert df.equals(base), name
    # S3: unchanged ETag, nothing fetched again
    s = _ingest(tmp_path / "s3", "s3://ngsim/data/trajectories.csv")
    assert s.units_done == 0 and s.bytes_downloaded == 0


def test_cli_ingest_and_sandbox(
    tmp_path: Path, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    out = tmp_path / "g.csv"
    r = runner.invoke(app, ["sandbox", "ngsim", "--out", str(out), "--rows", "3000", "--seed", "5"])
    assert r.exit_code == 0, r.output
    monkeypatch.chdir(tmp_path)  # a path relative to the working directory, as users type it
    summary = _cli_ingest("g.csv", catalog_dir)
    data_lines = len(out.read_text().splitlines()) - 1
    assert summary["rows"] == data_lines
    r = runner.invoke(
        app,
        [
            "query",
            "--catalog",
            str(catalog_dir),
            "--format",
            "json",
            "select count(*) n from trajectories where source = 'ngsim'",
        ],
    )
    assert r.exit_code == 0 and json.loads(r.stdout)[0]["n"] == data_lines
    for bad in (
        ["ingest", "--source", "ngsim", "--catalog", str(catalog_dir)],
        ["ingest", "--source", "ngsim", "--type", "BSM", "--path", str(out)],
        ["ingest", "--source", "ngsim", "--path", str(out), "--start", "2021-01-01"],
        ["ingest", "--source", "ngsim", "--path", str(out), "--location", "mars"],
        ["ingest", "--source", "wydot", "--type", "BSM", "--path", str(out)],
        [
            "ingest",
            "--source",
            "ngsim",
            "--path",
            str(tmp_path / "missing.csv"),
            "--catalog",
            str(catalog_dir),
        ],
    ):
        r = runner.invoke(app, bad)
        assert r.exit_code == 1, (bad, r.output)
        assert "Traceback" not in r.output


def test_an_s3_input_that_is_not_there_is_named_plainly(  # type: ignore[no-untyped-def]
    s3_client, s3_endpoint: str, catalog_dir: Path
) -> None:
    """A path the user typed: which of bucket and object is missing, not a listing's 404
    ("removed since it was listed?")."""
    s3_client.create_bucket(Bucket="ngsim")
    for path, line in [
        ("s3://no-such-bucket/x.csv",
         f"input not found: s3://no-such-bucket/x.csv (there is no bucket 'no-such-bucket' at "
         f"{s3_endpoint})"),
        ("s3://ngsim/data/missing.csv",
         "input not found: s3://ngsim/data/missing.csv (bucket 'ngsim' has no object "
         "'data/missing.csv')"),
    ]:  # fmt: skip
        r = runner.invoke(
            app,
            ["ingest", "--source", "ngsim", "--path", path, "--catalog", str(catalog_dir),
             "--no-progress"],
        )  # fmt: skip
        assert r.exit_code == 1
        assert r.output == f"error: {line}\n"


def _same_bytes(here: str, there: str) -> str:
    return (
        f"{here}: the same bytes as {there}, already loaded: not loaded again (cvcatalog cache "
        "clear --source ngsim, then load the one you want, to switch)"
    )


def _count(catalog: Path, view: str = "ngsim_trajectories") -> int:
    where = " where source = 'ngsim'" if view == "trajectories" else ""
    n: int = Catalog(catalog).query(f"select count(*) n from {view}{where}")["n"][0]
    return n


def test_the_same_bytes_under_another_name_are_loaded_once_cli(  # type: ignore[no-untyped-def]
    ngsim_csv, s3_client, tmp_path: Path, catalog_dir: Path
) -> None:
    """A user walkthrough: `ingest --path data/ngsim.csv`, then the same file uploaded to S3
    (or copied elsewhere) loaded by its other name, held every row twice. Now the second name
    is one line of the summary (and a note), the run is ok, and a re-run reads nothing."""
    path, rep = ngsim_csv
    want = rep.data_lines - rep.bad_rows
    copy = tmp_path / "elsewhere" / "copy.csv"
    copy.parent.mkdir()
    copy.write_bytes(path.read_bytes())
    s3_client.create_bucket(Bucket="ngsim")
    s3_client.upload_file(str(path), "ngsim", "ngsim.csv")
    s3 = "s3://ngsim/ngsim.csv"
    first = _cli_ingest(str(path), catalog_dir)
    assert first["rows"] == want and first["duplicates"] == []
    r = runner.invoke(
        app, ["ingest", "--source", "ngsim", "--path", s3, "--catalog", str(catalog_dir)]
    )
    assert r.exit_code == 0, r.output
    assert _count(catalog_dir) == want and _count(catalog_dir, "trajectories") == want
    line = _same_bytes(s3, str(path))
    assert f"  {line}\n" in r.stdout  # the summary's line (and a note on stderr)
    assert line in r.stderr
    # the headline: the unit was read, and dropped, not loaded
    assert "1 input(s), 0 unit(s) loaded, 0 already loaded, 1 read and dropped (duplicates), " \
        "0 failed; 0 rows" in r.stdout
    other = _cli_ingest(str(copy), catalog_dir)
    assert other["status"] == "ok" and other["rows"] == 0
    assert other["duplicates"] == [_same_bytes(str(copy), str(path))]
    assert _count(catalog_dir) == want
    inputs = Catalog(catalog_dir).query("select uri, rows from dataset_inputs")
    assert inputs["uri"].tolist() == [str(path)] and inputs["rows"][0] == want
    # a re-run: one HEAD, nothing read; the same line again
    again = _cli_ingest(s3, catalog_dir)
    assert again["bytes_downloaded"] == 0 and again["units"] == 0
    assert again["duplicates"] == [line] and again["inputs_unchanged"] == 1
    assert _count(catalog_dir) == want
    assert Catalog(catalog_dir).verify().clean  # the dropped version's files are gone


def test_a_duplicate_loads_once_its_original_changes(  # type: ignore[no-untyped-def]
    s3_client, tmp_path: Path, catalog_dir: Path
) -> None:
    """Several units per input (the digest is over all of them, the dropped version's units
    committed in several commits); the duplicate's record goes with the input it names."""
    path = tmp_path / "a.csv"
    rep = generate_ngsim(path, 6000, seed=3, bad_rows=4)
    want = rep.data_lines - rep.bad_rows
    s3_client.create_bucket(Bucket="ngsim")
    s3_client.upload_file(str(path), "ngsim", "a.csv")
    s3 = "s3://ngsim/a.csv"
    _, s1 = _run(catalog_dir, str(path))
    assert s1.ok and s1.units > 3 and s1.rows == want
    files = set((catalog_dir / "lake").rglob("*.parquet"))
    ds2, s2 = _run(catalog_dir, s3)
    assert s2.ok and len(ds2.fetches) == s2.units  # read once: that is how its bytes are known
    assert _count(catalog_dir) == want
    line = _same_bytes(s3, str(path))
    assert s2.duplicates == [line] and f"  {line}" in summary_lines(s2)
    assert s2.rows == 0 and s2.inputs_published == 0 and not s2.partitions_written
    assert set((catalog_dir / "lake").rglob("*.parquet")) == files
    cat = Catalog(catalog_dir)
    # the bad rows are counted once, by the run that loaded them: the dropped version's run
    # reports none (its quarantine files went with it)
    assert sum(r["count"] for r in cat.validation_report(s1.run_id)) == rep.bad_rows
    assert cat.validation_report(s2.run_id) == []
    assert cat.query(f"select count(*) n from dataset_files where uri = '{s3}'")["n"][0] == 0
    ds3, s3_run = _run(catalog_dir, s3)  # nothing fetched
    assert s3_run.ok and ds3.fetches == [] and s3_run.bytes_downloaded == 0
    assert s3_run.duplicates == [line]
    # the original changes on disk only: the catalog still shows those bytes, still skipped
    rep2 = generate_ngsim(path, 3000, seed=4, locations=["us-101"])
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))
    assert _run(catalog_dir, s3)[0].fetches == []
    # ... once it is loaded as its new version, the S3 object is loaded by its next run
    assert _run(catalog_dir, str(path))[1].inputs_published == 1
    assert cat.query("select count(*) n from dataset_duplicates")["n"][0] == 0
    ds5, s5 = _run(catalog_dir, s3)
    assert s5.ok and s5.duplicates == [] and s5.rows == want and len(ds5.fetches) == s5.units
    assert _count(catalog_dir) == want + rep2.rows
    assert cat.verify().clean


def test_a_duplicate_and_scopes(  # type: ignore[no-untyped-def]
    ngsim_csv, tmp_path: Path, catalog_dir: Path
) -> None:
    """A whole load covers a --location load of the same bytes; a whole load of a copy
    replaces filtered loads of the original (their rows would show twice); eviction and
    clear drop the record with the input it names."""
    path, rep = ngsim_csv
    want = rep.data_lines - rep.bad_rows
    copy = tmp_path / "copy.csv"
    copy.write_bytes(path.read_bytes())
    assert _ingest(catalog_dir, str(path)).ok
    s = _ingest(catalog_dir, str(copy), location="i-80")
    assert _count(catalog_dir) == want
    assert s.ok and s.duplicates == [
        f"{copy} [location=i-80]: the same bytes as {path}, already loaded: not loaded again "
        "(cvcatalog cache clear --source ngsim, then load the one you want, to switch)"
    ]
    cat = Catalog(catalog_dir)
    cat.clear("ngsim")
    assert cat.query("select count(*) n from dataset_duplicates")["n"][0] == 0
    # the other way round: the original loaded for one site, the copy whole
    assert _ingest(catalog_dir, str(path), location="i-80").rows == rep.per_location["i-80"]
    s = _ingest(catalog_dir, str(copy))
    assert s.ok and s.rows == want and s.inputs_published == 1
    assert _count(catalog_dir) == want
    assert s.duplicates == [
        f"{path} [location=i-80]: the same bytes as {copy}, now loaded whole: its "
        f"location=i-80 load is dropped (its rows are {copy}'s)"
    ]
    assert _count(catalog_dir) == want
    again = _ingest(catalog_dir, str(path), location="i-80")  # covered: nothing read
    assert again.bytes_downloaded == 0 and again.duplicates and _count(catalog_dir) == want
    # the copy evicted: its duplicate's record goes with it, the original loads again
    assert cat.evict(max_size_gb=0.0)
    assert cat.query("select count(*) n from dataset_duplicates")["n"][0] == 0
    assert _ingest(catalog_dir, str(path), location="i-80").rows == rep.per_location["i-80"]
    assert cat.verify().clean


def _flip_byte(data: bytes) -> bytes:
    return data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]


def test_cache_status_verify_repair_and_clear(ngsim_csv, catalog_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from cvcatalog.ops.cache import mend_kept, quarantine_bad

    path, rep = ngsim_csv
    s = _ingest(catalog_dir, str(path))
    assert s.ok
    cat = Catalog(catalog_dir)
    total = rep.data_lines - rep.bad_rows

    status = cat.status("ngsim")
    assert status and all(r["partition"].startswith("ngsim/location=") for r in status)
    assert {r["status"] for r in status} == {"complete"}
    assert sum(r["rows"] for r in status) == total
    (summary,) = cat.status("ngsim", summary=True)  # a dataset's partitions are one table
    days = sorted(r["partition"].rsplit("date=", 1)[1] for r in status)
    assert (summary["table"], summary["partitions"], summary["rows"]) == ("ngsim", len(status), total)
    assert (summary["first_day"], summary["last_day"]) == (days[0], days[-1])
    # each file is sorted by (vehicle_id, timestamp); kinematics are 32-bit, positions 64-bit
    import pyarrow.parquet as pq

    first = sorted((catalog_dir / "lake" / "main" / "ngsim_trajectories").rglob("*.parquet"))[0]
    t = pq.read_table(first)
    keys = list(zip(t["vehicle_id"].to_pylist(), t["timestamp"].to_pylist(), strict=True))
    assert keys == sorted(keys) and len(set(t["vehicle_id"].to_pylist())) > 1
    assert str(t.schema.field("speed_mps").type) == "float"
    assert str(t.schema.field("latitude").type) == "double"

    # NGSIM files are the catalog's, not orphans
    report = cat.verify()
    assert report.clean and report.checked > s.units

    # a damaged file: its unit is dropped (and its input hidden) until it is fetched again
    files = cat.query("select path, unit_id from dataset_files where kind = 'data' order by path")
    victim, unit = files["path"][0], files["unit_id"][0]
    target = catalog_dir / victim
    target.write_bytes(_flip_byte(target.read_bytes()))
    stray = catalog_dir / "lake" / "main" / "ngsim_trajectories" / "stray.parquet"
    stray.write_bytes(b"x")
    report = cat.verify()
    assert report.mismatched == [victim] and report.bad_dataset_files == [victim]
    assert report.orphans == ["lake/main/ngsim_trajectories/stray.parquet"]
    refetch = quarantine_bad(cat.db, report)
    assert [(r.dataset, r.uri, r.scope, r.unit_bytes) for r in refetch] == [
        ("ngsim", str(path), "*", UNIT)
    ]
    assert not stray.exists() and not target.exists()
    assert cat.query("select count(*) n from ngsim_trajectories")["n"][0] == 0
    left = cat.query("select count(*) n from dataset_units where unit_id = ?", [unit])
    assert left["n"][0] == 0
    again = _ingest(catalog_dir, str(path))
    assert again.ok and again.units_done == 1 and again.inputs_published == 1
    assert cat.query("select count(*) n from ngsim_trajectories")["n"][0] == total
    # the snapshots before the repair showed the damaged file: restored from the unit loaded
    # again (the same bytes), as Catalog.repair's last step does
    [mended] = mend_kept(cat.db)
    assert mended.ok and mended.path == victim and target.exists()
    assert cat.verify().clean

    # the CLI: verify fails on a missing file, --repair re-fetches it
    gone = cat.query("select path from dataset_files where kind = 'data' limit 1")["path"][0]
    (catalog_dir / gone).unlink()
    home = str(catalog_dir)
    r = runner.invoke(app, ["cache", "verify", "--catalog", home])
    assert r.exit_code == 1 and gone in r.output
    r = runner.invoke(app, ["cache", "verify", "--repair", "--catalog", home])
    assert r.exit_code == 0, r.output
    assert "re-fetched ngsim" in r.output and "(1 units)" in r.output
    assert cat.verify().clean
    assert cat.query("select count(*) n from ngsim_trajectories")["n"][0] == total

    # clear --source ngsim: rows, files and the view's data go
    r = runner.invoke(app, ["cache", "clear", "--source", "ngsim", "--yes", "--catalog", home])
    assert r.exit_code == 0, r.output
    assert cat.query("select count(*) n from ngsim_trajectories")["n"][0] == 0
    for table in ("dataset_files", "dataset_units", "dataset_inputs"):
        assert cat.query(f"select count(*) n from {table}")["n"][0] == 0
    assert not [p for p in (catalog_dir / "lake").rglob("*") if p.is_file()]
    assert not [p for p in (catalog_dir / "quarantine").rglob("*") if p.is_file()]
    assert cat.status("ngsim") == []


def _lake_keys(client, bucket: str, prefix: str) -> list[str]:  # type: ignore[no-untyped-def]
    out: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return sorted(out)


@pytest.mark.slow
def test_ngsim_on_an_s3_lake(ngsim_csv, s3_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    import duckdb

    from cvcatalog.io.duckdb_ext import load_extension, s3_connection
    from cvcatalog.ops.cache import mend_kept, quarantine_bad

    path, _rep = ngsim_csv
    s3_client.create_bucket(Bucket="ngsim-lake")
    local = tmp_path / "local"
    assert _ingest(local, str(path)).ok
    want = Catalog(local).query(_ORDER)

    home = tmp_path / "remote"
    cat = Catalog(home, storage="s3://ngsim-lake/team")
    s = cat.ingest_dataset("ngsim", str(path), unit_bytes=UNIT)
    assert s.ok, s.errors
    assert s.units > 3 and s.parquet_bytes > 0
    assert cat.query(_ORDER).equals(want)

    # every file is an object under the prefix, with the checksum the catalog recorded
    files = cat.query("select path, sha256, bytes from dataset_files order by path")
    keys = _lake_keys(s3_client, "ngsim-lake", "team/")  # (and the lake's lineage object)
    assert sorted([f"team/{LINEAGE_OBJECT}", *(f"team/{p}" for p in files["path"])]) == keys
    assert any(k.endswith(".ndjson") for k in keys)  # quarantine too
    for p, digest, size in files.itertuples(index=False):
        body = s3_client.get_object(Bucket="ngsim-lake", Key=f"team/{p}")["Body"].read()
        assert len(body) == size and hashlib.sha256(body).hexdigest() == digest
    assert not [p for p in (home / "lake").rglob("*") if p.is_file()]

    # the lake's files are s3:// URLs: a plain DuckDB session with a secret reads it
    con = duckdb.connect()
    try:
        s3_connection(con)
        load_extension(con, "ducklake")
        con.execute(f"ATTACH 'ducklake:{cat.database}' AS cv (READ_ONLY)")
        located = [r[0] for r in con.execute(
            "select data_file from ducklake_list_files('cv', 'ngsim_trajectories')"
        ).fetchall()]
        assert located and all(
            p.startswith("s3://ngsim-lake/team/lake/main/ngsim_trajectories/") for p in located
        )
        n = con.execute("select count(*) from cv.ngsim_trajectories").fetchone()
    finally:
        con.close()
    assert n is not None and n[0] == len(want)

    # verify hashes the objects; repair drops the damaged unit and re-fetches only it
    assert cat.verify().clean
    victim = files["path"][files["path"].str.endswith(".parquet")].iloc[0]
    key = f"team/{victim}"
    body = s3_client.get_object(Bucket="ngsim-lake", Key=key)["Body"].read()
    s3_client.put_object(Bucket="ngsim-lake", Key=key, Body=_flip_byte(body))
    report = cat.verify()
    assert report.mismatched == [victim]
    assert len(quarantine_bad(cat.db, report)) == 1
    again = cat.ingest_dataset("ngsim", str(path), unit_bytes=UNIT)
    assert again.ok and again.units_done == 1
    assert [m.path for m in mend_kept(cat.db) if m.ok] == [victim]  # the older snapshots'
    assert cat.verify().clean and cat.query(_ORDER).equals(want)

    # publish copies the NGSIM objects; the published catalog answers the same
    summary = cat.publish("s3://ngsim-lake/published")
    assert summary.ok, summary.summary()
    current = set(cat.query("select path from dataset_files").path)
    published = Catalog("s3://ngsim-lake/published")
    # every current file, and those only older kept snapshots show (the repair's replaced ones)
    sent = {f["path"] for f in published.published()["files"]}
    assert summary.count("copied") == len(sent) and current <= sent
    assert published.query(_ORDER).equals(want)

    # clear --source ngsim deletes the objects
    n_parts, nbytes = cat.clear("ngsim")
    assert n_parts > 0 and nbytes > 0
    assert _lake_keys(s3_client, "ngsim-lake", "team/") == [f"team/{LINEAGE_OBJECT}"]
    assert cat.query("select count(*) n from ngsim_trajectories")["n"][0] == 0


def test_sort_order_ranks_strings_and_handles_nulls() -> None:
    import pyarrow as pa

    from cvcatalog.sources.ngsim import _sort_order

    t = pa.table(
        {
            "v": pa.array(["b", "a", None, "a", "10", "9"]),
            "t": pa.array([1, None, 3, 0, 5, 5], pa.timestamp("ms", tz="UTC")),
        }
    )
    order = _sort_order(t, ("v", "t"))
    assert order is not None
    got = t.take(order)["v"].to_pylist()
    assert got == [None, "10", "9", "a", "a", "b"]  # lexicographic, as SQL compares them
    assert t.take(order)["t"].to_pylist()[3:5] == [None, t["t"][3].as_py()]
    assert _sort_order(t.take(order), ("v", "t")) is None  # sorted already: no take


def test_quality_step_counts_and_cleans_each_unit(ngsim_csv, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """--config with a quality section: the rules are counted on every unit's files and
    recorded with the run; remove_outliers keeps exactly the rows inside the limits."""
    path, _ = ngsim_csv
    plain = tmp_path / "plain"
    assert _ingest(plain, str(path)).ok
    box = {"lat_min": 34.0, "lat_max": 34.2, "lon_min": -118.5, "lon_max": -118.2}  # LA sites
    inside = (
        "latitude between 34.0 and 34.2 and longitude between -118.5 and -118.2 "
        "and speed_mps between 0 and 70 and abs(accel_mps2) <= 15"
    )
    ref = Catalog(plain)
    keep = int(ref.query(f"select count(*) from ngsim_trajectories where {inside}").iat[0, 0])
    total = int(ref.query("select count(*) from ngsim_trajectories").iat[0, 0])
    assert 0 < keep < total

    cfg = tmp_path / "q.yml"
    cfg.write_text(json.dumps({"quality": {"rules": {"bounds": box}}}))
    counted = tmp_path / "counted"
    _cli_ingest(str(path), counted, "--config", str(cfg))
    cat = Catalog(counted)
    assert int(cat.query("select count(*) from ngsim_trajectories").iat[0, 0]) == total
    flagged = cat.query(
        "select sum(count)::BIGINT from quality_stats where rule = 'outliers' and action = 'flagged'"
    ).iat[0, 0]
    assert flagged == total - keep
    # one day of it (`report quality --start`): the counts recorded for that day's partitions
    # (a dataset records them per partition and unit)
    days = ref.query("select date, count(*) filter (where not (" + inside + ")) bad "
                     "from ngsim_trajectories group by 1 order by 1")  # fmt: skip
    assert len(days) > 1
    one = build_report(cat, "ngsim", start=days.date[1]).types[0]
    assert one.origin == "recorded" and one.counts[("outliers", "flagged")] == days.bad[1]

    cfg.write_text(
        json.dumps(
            {
                "quality": {
                    "rules": {"bounds": box},
                    "cleaning": {"remove_outliers": True, "detect_gaps": {"enabled": True}},
                }
            }
        )
    )
    cleaned = tmp_path / "cleaned"
    _cli_ingest(str(path), cleaned, "--config", str(cfg))
    cat = Catalog(cleaned)
    assert int(cat.query("select count(*) from ngsim_trajectories").iat[0, 0]) == keep
    # gap detection's segment numbers are in the view (only where an ingest detected gaps)
    assert "segment" not in ref.query("select * from ngsim_trajectories limit 0").columns
    seg = cat.query("select count(segment) n, min(segment) lo from ngsim_trajectories")
    assert int(seg.n[0]) == keep and int(seg.lo[0]) == 0
    report = runner.invoke(
        app,
        ["report", "quality", "--source", "ngsim", "--format", "json", "--catalog", str(cleaned)],
    )
    assert report.exit_code == 0, report.output
    rows = json.loads(report.stdout)
    assert any(x["action"] == "removed" and x["count"] == total - keep for x in rows)
    assert Catalog(cleaned).verify().clean


def test_ngsim_ingest_reads_the_config_a_cv_ingest_reads(  # type: ignore[no-untyped-def]
    ngsim_csv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--config is read as for a CV source (YAML < CVCATALOG_* < flags): the same file (no
    quality: section needed), its catalog directory, its quality: section; a file may name
    the source itself."""
    path, rep = ngsim_csv
    rows = rep.data_lines - rep.bad_rows
    monkeypatch.chdir(tmp_path)  # the default catalog would be ./data/catalog
    monkeypatch.delenv("CVCATALOG_HOME", raising=False)

    def ingest(*args: str) -> dict[str, object]:
        r = runner.invoke(
            app, ["ingest", "--path", str(path), "--format", "json", "--no-progress", *args]
        )
        assert r.exit_code == 0, r.output
        summary: dict[str, object] = json.loads(r.stdout)[0]
        return summary

    def count(home: Path, sql: str = "select count(*) from ngsim_trajectories") -> int:
        return int(Catalog(home).query(sql).iat[0, 0])

    home = tmp_path / "from-config"
    tiny = tmp_path / "tiny.yml"
    tiny.write_text(
        "source: wydot\nmessage_type: BSM\ndate_range: {days_back: 3, timezone: America/Denver}\n"
        f"cache: {{directory: {home}, max_size_gb: 5}}\ndownload: {{retry_attempts: 2}}\n"
        "validation: {drop_invalid_records: true}\n"
    )
    assert ingest("--source", "ngsim", "--config", str(tiny))["rows"] == rows
    assert count(home) == rows and not (tmp_path / "data").exists()
    # with a quality: section: counted into the config's catalog
    with_quality = tmp_path / "quality.yml"
    other = tmp_path / "with-quality"
    with_quality.write_text(
        tiny.read_text().replace(str(home), str(other)) + "quality: {rules: {bounds: auto}}\n"
    )
    ingest("--source", "ngsim", "--config", str(with_quality))
    assert count(other) == rows and not (tmp_path / "data").exists()
    assert count(other, "select count(*) from quality_stats where source = 'ngsim'") > 0
    # a file naming the source ngsim needs no --source; CVCATALOG_HOME wins over the file
    named = tmp_path / "ngsim.yml"
    named.write_text(f"source: ngsim\ncache: {{directory: {tmp_path / 'unused'}}}\n")
    monkeypatch.setenv("CVCATALOG_HOME", str(tmp_path / "from-env"))
    ingest("--config", str(named))
    assert count(tmp_path / "from-env") == rows and not (tmp_path / "unused").exists()
    # and a bad value of the file is one line, as for a CV ingest
    named.write_text("source: ngsim\ncache: {max_size_gb: -1}\n")
    r = runner.invoke(app, ["ingest", "--path", str(path), "--config", str(named)])
    assert r.exit_code == 1 and "cache.max_size_gb" in r.output and "Traceback" not in r.output


def test_codes_written_as_decimals_give_the_same_rows(ngsim_csv, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Integer codes are parsed as integers first; a file writing them as "2.0" falls back to
    doubles and must load exactly the same rows and quarantine the same lines."""
    from cvcatalog.datasets.ngsim import CODE_COLUMNS

    path, _ = ngsim_csv
    rows = _csv_rows(path)
    decimal = tmp_path / "decimal.csv"
    with open(decimal, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for row in rows:
            for name in CODE_COLUMNS:
                if re.fullmatch(r"-?\d+", row[name] or ""):
                    row[name] = f"{row[name]}.0"
            w.writerow(row)
    assert "2.0" in decimal.read_text()
    a = _ingest(tmp_path / "a", str(path))
    b = _ingest(tmp_path / "b", str(decimal))
    assert (a.rows, a.quarantined) == (b.rows, b.quarantined)
    assert a.rows > 10_000
    sql = "SELECT * FROM ngsim_trajectories"
    got_a = Catalog(tmp_path / "a").query(sql)
    got_b = Catalog(tmp_path / "b").query(sql)
    keys = ["vehicle_id", "timestamp"]
    got_a = got_a.sort_values(keys).reset_index(drop=True)
    got_b = got_b.sort_values(keys).reset_index(drop=True)
    assert got_a.equals(got_b)
    # and clean decimals take the typed fallback, not the row-by-row checked path
    from cvcatalog.datasets.base import Rejects
    from cvcatalog.datasets.ngsim import CSV_NAMES

    clean = tmp_path / "clean.csv"
    generate_ngsim(clean, 2000, seed=3)
    text = clean.read_bytes().split(b"\n", 1)[1]
    codes = {CSV_NAMES.index(n) for n in CODE_COLUMNS}
    as_decimals = b"\n".join(
        b",".join(
            v + b".0" if i in codes and v.isdigit() else v for i, v in enumerate(x.split(b","))
        )
        for x in text.split(b"\n")
    )
    assert as_decimals.count(b".0,") > text.count(b".0,")
    for block, int_codes in ((text, True), (as_decimals, False)):
        ds = NgsimDataset([str(clean)])
        rejects = Rejects(tmp_path / "q.ndjson", None)  # type: ignore[arg-type]
        parsed = sum(b.num_rows for b in ds.parse_block(block, CSV_NAMES, rejects, 0))
        lines = block.strip().count(b"\n") + 1
        assert (parsed, rejects.total, ds._int_codes) == (lines, 0, int_codes)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"x")), max_size=40),
    final_newline=st.booleans(),
    unit_bytes=st.integers(1, 200),
    block_bytes=st.integers(1, 90),
    chunk_bytes=st.integers(1, 70),
)
def test_units_split_into_blocks_hold_every_line_once(
    lines: list[bytes], final_newline: bool, unit_bytes: int, block_bytes: int, chunk_bytes: int
) -> None:
    """Whatever the unit, block and chunk sizes: the units' blocks, in order, are the file
    after its header, byte for byte, each block with where it starts in the file; every
    block but the input's last ends a line, and a block is longer than block_bytes only when
    its first line is."""
    from cvcatalog.datasets.ngsim import _unit_lines

    body = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    data = b"Vehicle_ID,Frame_ID\n" + body
    size = len(data)
    got = []
    for i, start in enumerate(range(0, size, unit_bytes)):
        unit = WorkUnit(f"f#{i}", "f", start, min(start + unit_bytes, size), "v", size, None, i)
        first = max(start - 1, 0)
        chunks = (data[p : p + chunk_bytes] for p in range(first, size, chunk_bytes))
        blocks = []
        for at, view in _unit_lines(unit, chunks, block_bytes):
            b = bytes(view)
            assert data[at : at + len(b)] == b
            blocks.append(b)
        for b in blocks:
            assert b
            first_end = b.find(b"\n")  # -1: one unterminated line
            assert len(b) <= block_bytes or first_end == -1 or first_end >= block_bytes
        got += blocks
    assert b"".join(got) == body
    for b in got[:-1]:
        assert b.endswith(b"\n")


def _with_field(line: bytes, column: str, value: bytes) -> bytes:
    fields = line.split(b",")
    fields[CSV_NAMES.index(column)] = value
    return b",".join(fields)


#: (what, column, value written into one line, the rule the line must get); each of these
#: failed its whole unit (a raw ArrowInvalid / OverflowError line), wrapped silently into
#: another id, or, for the open quote, took every later line of its block with it
HOSTILE_FIELDS = [
    ("an id beyond int64", "Vehicle_ID", b"99999999999999999999", "out_of_range"),
    ("an id beyond INTEGER", "Vehicle_ID", b"3000000000", "out_of_range"),
    ("a frame beyond INTEGER", "Frame_ID", b"5000000000", "out_of_range"),
    ("a time as 1e20", "Global_Time", b"1e20", "out_of_range"),
    ("a time in year 10000", "Global_Time", b"253402300800000", "out_of_range"),
    ("a Latin-1 byte", "Location", b"us-101\xe9", "invalid_utf8"),
    ("a quote left open, last field", "Location", b'"us-101', "unbalanced_quote"),
    ("a quote left open, mid line", "Local_X", b'"30.0', "unbalanced_quote"),
]


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [pytest.param(c, v, r, id=w) for w, c, v, r in HOSTILE_FIELDS],
)
def test_a_hostile_field_quarantines_its_line_only(
    tmp_path: Path, column: str, value: bytes, rule: str
) -> None:
    clean = tmp_path / "clean.csv"
    generate_ngsim(clean, 300, seed=5, locations=["us-101"])
    lines = clean.read_bytes().split(b"\n")[1:41]
    bad = _with_field(lines[3], column, value)
    block = b"\n".join([*lines[:3], bad, *lines[4:]]) + b"\n"
    rejects = Rejects(tmp_path / "q.ndjson", WorkUnit("u", "f", 0, 1, "v", 1, None, 0))
    parsed = sum(
        b.num_rows for b in NgsimDataset([str(clean)]).parse_block(block, CSV_NAMES, rejects, 0)
    )
    assert (parsed, dict(rejects.counts)) == (39, {rule: 1})
    rejects.close()
    entry = json.loads((tmp_path / "q.ndjson").read_text())
    assert entry["byte_offset"] == block.index(bad)


def test_codes_a_column_cannot_hold_are_null_not_wrapped(tmp_path: Path) -> None:
    """v_Class 300 was stored as 44 (int8 wrap), Lane_ID 99999999999 as 1215752191."""
    path = tmp_path / "codes.csv"
    generate_ngsim(path, 300, seed=5, locations=["us-101"])
    head, first, *rest = path.read_bytes().split(b"\n")
    first = _with_field(_with_field(first, "v_Class", b"300"), "Lane_ID", b"99999999999")
    path.write_bytes(b"\n".join([head, first, *rest]))
    _ingest(tmp_path / "cat", str(path))
    got = Catalog(tmp_path / "cat").query(
        "SELECT vehicle_class, lane_id FROM ngsim_trajectories WHERE frame_id = "
        + first.split(b",")[1].decode()
        + " AND ngsim_vehicle_id = "
        + first.split(b",")[0].decode()
    )
    assert got.isna().all(axis=None), got


def test_hostile_fields_through_the_cli(tmp_path: Path) -> None:
    """Every hostile line in one file: exit 0, one summary, rows + quarantined = lines."""
    path = tmp_path / "hostile.csv"
    generate_ngsim(path, 300, seed=5, locations=["us-101"])
    head, *lines = path.read_bytes().rstrip(b"\n").split(b"\n")
    for i, (_, column, value, _) in enumerate(HOSTILE_FIELDS):
        lines[10 + 5 * i] = _with_field(lines[10 + 5 * i], column, value)
    path.write_bytes(b"\n".join([head, *lines]) + b"\n")
    summary = _cli_ingest(str(path), tmp_path / "cat")
    assert (summary["quarantined"], summary["rows"]) == (
        len(HOSTILE_FIELDS),
        len(lines) - len(HOSTILE_FIELDS),
    )


def test_a_commit_dropping_several_duplicates_reads_the_lake_files_once(  # type: ignore[no-untyped-def]
    ngsim_csv, catalog_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each duplicate a commit dropped read the lake's whole file list again; a write's block
    changes state alone, so one read serves them all. The first commit is held a moment, so
    the copies that finish meanwhile are dropped together by the next one."""
    path, _ = ngsim_csv
    copies = []
    for i in range(3):
        copies.append(tmp_path / f"copy{i}.csv")
        copies[-1].write_bytes(path.read_bytes())
    assert _ingest(catalog_dir, str(path)).ok
    reads: list[Any] = []  # the write (its connection) of each read
    known = CatalogDB.lake_files

    def counted(self: CatalogDB, con: Any) -> set[str]:
        reads.append(con)
        return known(self, con)

    record = ngsim.DatasetUnits.record
    commits: list[int] = []

    def held(self: Any, con: Any, batch: list[Any], run: Any) -> list[str]:
        commits.append(len(batch))
        if len(commits) == 1:
            time.sleep(0.5)
        return record(self, con, batch, run)

    monkeypatch.setattr(CatalogDB, "lake_files", counted)
    monkeypatch.setattr(ngsim.DatasetUnits, "record", held)
    s = _ingest(catalog_dir, [str(c) for c in copies])
    assert s.ok and len(s.duplicates) == len(copies)
    assert reads and all(sum(c is x for c in reads) == 1 for x in reads)  # once a write


def test_units_leave_a_heap_the_process_froze_frozen(thawed_heap: None) -> None:
    """The units' freeze is undone after them only when it was theirs: gc.unfreeze() would
    also thaw what the process froze itself (a preloading server, this test session), and
    every later full collection would walk that heap again."""
    with ngsim._frozen_heap():  # nothing frozen before: frozen while units run, then not
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    gc.freeze()
    frozen = gc.get_freeze_count()
    with ngsim._frozen_heap():
        pass
    assert gc.get_freeze_count() == frozen
