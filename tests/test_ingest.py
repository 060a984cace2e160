"""End to end through the local endpoint: replica → ingest → views → Dask, and the cache rules."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cvcatalog import transform
from cvcatalog.catalog import Catalog
from cvcatalog.exceptions import CatalogError, MissingDataWarning
from cvcatalog.io import memstage, rawfile
from cvcatalog.io.duckdb_ext import extension_path
from cvcatalog.io.layout import CatalogPaths
from cvcatalog.pipeline.report import NullProgress, summary_lines
from cvcatalog.sandbox.replica import SeedReport, seed_replica
from cvcatalog.sources import cvpilot as cvpilot_module
from cvcatalog.sources.bucket import PartitionKey
from cvcatalog.sources.cvpilot import CvPilotDays
from cvcatalog.sources.cvpilot import ingest as run_ingest
from cvcatalog.state.db import CatalogDB

D1, D2, D3 = date(2021, 4, 1), date(2021, 4, 2), date(2021, 4, 3)


def seed(client: Any, start: date, end: date, **kw: Any) -> SeedReport:
    """A replica of wydot BSM days; a few objects a day (one an hour, most hours empty) unless
    a test needs more (each object is a PUT, a GET and a file to convert: ~9 ms of CPU between
    client and endpoint)."""
    kw.setdefault("records_per_hour", 30)
    kw.setdefault("files_per_hour", 1)
    kw.setdefault("empty_hour_rate", 0.75)
    return seed_replica(client, start, end, **kw)


def ingest(cat: Catalog, start: date, end: date, source: str = "wydot", **kw: Any) -> Any:
    kw.setdefault("timezone", "UTC")
    kw.setdefault("rate_limit", 0)
    kw.setdefault("max_workers", 4)
    return cat.ingest(source, "BSM", start, end, **kw)


def test_week_end_to_end(s3_client: Any, catalog_dir: Path) -> None:
    report = seed(s3_client, D1, D3, empty_days=[D2], malformed_per_day=3)
    cat = Catalog(catalog_dir)
    s = ingest(cat, D1, D3)
    assert s.ok, s.as_dict()
    assert (s.count("complete"), s.count("no_data"), s.count("failed")) == (2, 1, 0)
    assert s.rows == report.records
    assert s.quarantined == report.malformed
    assert s.get_requests == report.objects

    # the view holds exactly the seeded records, per day and per vehicle
    per_day = dict(
        cat.query("select date, count(*) from wydot_bsm group by 1").itertuples(index=False)
    )
    for key, part in report.partitions.items():
        assert per_day.get(part.day, 0) == part.records, key
    vehicles = cat.query("select vehicle_id, count(*) as n from wydot_bsm group by 1")
    expected: dict[str, int] = {}
    for part in report.partitions.values():
        for vid, n in part.vehicles.items():
            expected[vid] = expected.get(vid, 0) + n
    assert dict(zip(vehicles.vehicle_id, vehicles.n, strict=True)) == expected

    # the manifest: statuses, checksums, source objects
    status = {r["partition"]: r for r in cat.status()}
    assert status["wydot/BSM/2021/04/02"]["status"] == "no_data"
    assert (
        status["wydot/BSM/2021/04/01"]["rows"] == report.partitions["wydot/BSM/2021/04/01"].records
    )
    n_objects = cat.query("select count(*) as n from source_objects").n[0]
    assert n_objects == report.objects
    assert cat.verify().clean

    # quarantine: every injected line is there with its reason, none invented
    q = cat.query("select path from partition_files where kind = 'quarantine'")
    lines = []
    for rel in q.path:
        lines += [json.loads(x) for x in (catalog_dir / rel).read_text().splitlines()]
    assert len(lines) == report.malformed
    assert all(rec["reason"] for rec in lines)
    assert {(m.key, m.line) for m in report.malformed_lines if m.kind != "missing_id"} <= {
        (rec["source_key"], rec["line"]) for rec in lines
    }

    # a re-run of the same range makes no S3 request at all
    again = ingest(cat, D1, D3)
    assert (again.get_requests, again.list_requests) == (0, 0)
    assert again.count("cached") == 2 and again.rows == 0  # the summary counts this run's
    assert sum(d.rows for d in again.days) == s.rows  # each cached day: the rows it holds


def test_the_summary_after_a_failed_day_counts_only_what_this_run_wrote_and_fetched(
    s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A day that fails keeps its previous rows (its outcome says so), but they are not this
    run's: rows, rows/s and the run record count the day rewritten; bytes count every GET,
    the failed day's too."""
    report = seed(s3_client, D1, D2, empty_hour_rate=0.0)
    cat = Catalog(catalog_dir)
    assert ingest(cat, D1, D2).ok
    day1 = report.partitions["wydot/BSM/2021/04/01"].records
    bucket = "usdot-its-cvpilot-publicdata"
    real_listing = CvPilotDays._listing
    removed: list[tuple[str, bytes]] = []

    def listing_then_delete(self: Any, pk: PartitionKey) -> Any:
        objects = real_listing(self, pk)
        if pk.day == D2 and not removed:  # listed, then gone: its GET fails, the others ran
            key = objects[-1].key
            removed.append((key, s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()))
            s3_client.delete_object(Bucket=bucket, Key=key)
        return objects

    monkeypatch.setattr(CvPilotDays, "_listing", listing_then_delete)
    try:
        s = ingest(cat, D1, D2, force_refresh=True, max_workers=1)
    finally:
        for key, body in removed:
            s3_client.put_object(Bucket=bucket, Key=key, Body=body)
    failed = [o for o in s.days if o.status == "failed"]
    assert [o.key for o in failed] == ["wydot/BSM/2021/04/02"]
    assert "kept previous data" in (failed[0].error or "") and failed[0].rows > 0
    assert s.count("complete") == 1 and s.rows == day1
    assert s.as_dict()["rows"] == day1 and f"; {day1:,} rows, " in summary_lines(s)[0]
    # the failed day's objects were fetched too: counted with the GETs that fetched them
    written = sum(o.bytes_downloaded for o in s.days if o.status == "complete")
    assert s.get_requests > report.partitions["wydot/BSM/2021/04/01"].objects
    assert s.bytes_downloaded > written
    assert s.as_dict()["bytes_downloaded"] == s.bytes_downloaded
    assert cat.runs(limit=1)[0]["rows"] == day1


def test_dask_frame_is_lazy_pruned_and_matches_the_view(s3_client: Any, catalog_dir: Path) -> None:
    seed(s3_client, D1, D3)
    cat = Catalog(catalog_dir)
    ingest(cat, D1, D3)
    ddf = cat.to_dask(
        "wydot", "BSM", D2, D2, columns=["vehicle_id", "speed_mps", "generated_at", "date"]
    )
    assert ddf.npartitions == 1
    assert list(ddf.columns) == ["vehicle_id", "speed_mps", "generated_at", "date"]
    n_view = cat.query("select count(*) as n from wydot_bsm where date = ?", [D2]).n[0]
    assert len(ddf) == n_view
    fast = cat.to_dask("wydot", "BSM", D2, D2, filters=[("speed_mps", ">", 25.0)])
    n_fast = cat.query(
        "select count(*) as n from wydot_bsm where date = ? and speed_mps > 25", [D2]
    ).n[0]
    assert len(fast) == n_fast and (fast.speed_mps.compute() > 25).all()

    # a Denver day is 06:00..06:00 UTC: two partitions, cut to the exact window
    den = cat.to_dask("wydot", "BSM", D2, D2, timezone="America/Denver")
    assert den.npartitions == 2
    n_den = cat.query(
        "select count(*) as n from wydot_bsm where generated_at >= '2021-04-02 06:00:00+00' "
        "and generated_at < '2021-04-03 06:00:00+00'"
    ).n[0]
    assert len(den) == n_den
    soc = cat.to_dask("wydot", "BSM", D1, D1, naming="socrata")
    assert {"metadata_generatedAt", "coreData_id", "coreData_position_lat"} <= set(soc.columns)
    assert len(soc) == cat.query("select count(*) as n from wydot_bsm where date = ?", [D1]).n[0]


def test_wydot_and_wydot_backup_never_mix(s3_client: Any, catalog_dir: Path) -> None:
    a = seed(s3_client, D1, D1, sources=["wydot"])
    b = seed(s3_client, D1, D1, sources=["wydot_backup"])
    cat = Catalog(catalog_dir)
    ingest(cat, D1, D1, "wydot")
    only_a = cat.query("select count(*) as n from wydot_bsm").n[0]
    assert only_a == a.records
    assert cat.query("select count(*) as n from wydot_backup_bsm").n[0] == 0
    ingest(cat, D1, D1, "wydot_backup")
    va = set(cat.query("select distinct vehicle_id from wydot_bsm").vehicle_id)
    vb = set(cat.query("select distinct vehicle_id from wydot_backup_bsm").vehicle_id)
    assert va == set(a.partitions["wydot/BSM/2021/04/01"].vehicles)
    assert vb == set(b.partitions["wydot_backup/BSM/2021/04/01"].vehicles)
    assert not va & vb
    keys = set(cat.query("select key from source_objects where partition_key like 'wydot/%'").key)
    assert all(k.startswith("wydot/") for k in keys)
    assert any((catalog_dir / "lake/main/wydot_backup_bsm").rglob("*.parquet"))
    cat.clear("wydot_backup")
    assert cat.query("select count(*) as n from wydot_bsm").n[0] == a.records
    assert not any((catalog_dir / "lake/main/wydot_backup_bsm").rglob("*.parquet"))
    assert any((catalog_dir / "lake/main/wydot_bsm").rglob("*.parquet"))


def test_no_data_days_are_rechecked_only_while_recent(s3_client: Any, catalog_dir: Path) -> None:
    day = D1
    cfg = Catalog(catalog_dir).config("wydot", "BSM", day, day, rate_limit=0)
    first = run_ingest(cfg, today=day + timedelta(days=30))
    assert first.count("no_data") == 1 and first.list_requests == 1
    # an old day with an old marker: trusted, no request
    old = run_ingest(cfg, today=day + timedelta(days=31))
    assert old.list_requests == 0 and old.count("no_data") == 1
    # --force-refresh always looks again
    forced = run_ingest(cfg, force_refresh=True, today=day + timedelta(days=31))
    assert forced.list_requests == 1


def test_a_recent_no_data_day_is_looked_at_again(s3_client: Any, catalog_dir: Path) -> None:
    cfg = Catalog(catalog_dir).config("wydot", "BSM", D1, D1, rate_limit=0)
    assert run_ingest(cfg, today=D1 + timedelta(days=1)).count("no_data") == 1
    seed(s3_client, D1, D1, empty_hour_rate=0)  # the sandbox caught up
    late = run_ingest(cfg, today=D1 + timedelta(days=2))
    assert late.count("complete") == 1 and late.rows > 0


def test_a_no_data_marker_is_dated_on_the_folder_clock(
    monkeypatch: pytest.MonkeyPatch, s3_client: Any, catalog_dir: Path
) -> None:
    """A THEA folder day is a US Eastern day. At 2021-04-05 02:00 UTC it is still 04-04 in
    New York: THEA's 04-01 is 3 days old, within cache.recent_days, and a no_data marker taken
    then is provisional. The recheck window took today and the marker's day in UTC (04-05,
    and the machine's zone for the marker), so the marker was trusted at once and the day's
    data, published later, was never fetched (until cache.ttl_days)."""
    from cvcatalog.state import manifest as manifest_module

    now = datetime(2021, 4, 5, 2, 0, tzinfo=UTC)
    for module in (cvpilot_module, manifest_module):
        monkeypatch.setattr(module, "now_utc", lambda: now)
    cat = Catalog(catalog_dir)
    cfg = cat.config("thea", "BSM", D1, D1, timezone="America/New_York", rate_limit=0)
    assert run_ingest(cfg).count("no_data") == 1
    again = run_ingest(cfg)  # still a recent day on THEA's clock: looked at again
    assert again.list_requests == 1 and again.count("no_data") == 1
    seed(s3_client, D1, D1, sources=("thea",), empty_hour_rate=0)
    now = datetime(2021, 4, 6, 12, 0, tzinfo=UTC)  # 04-01 no longer recent; its marker was
    late = run_ingest(cfg)
    assert late.count("complete") == 1 and late.rows > 0


def test_days_back_ends_on_today_in_the_ranges_timezone(
    monkeypatch: pytest.MonkeyPatch, catalog_dir: Path
) -> None:
    """At 2026-12-06 00:43 UTC it is still 12-05 in New York: `--days-back 2 --timezone
    America/New_York` is 12-04..12-05 there. The ingest and plan took today in UTC (12-06), so
    the range was 12-05..12-06 and the ingest then skipped 12-06 as a day after today."""
    from cvcatalog import config as config_module
    from cvcatalog.ops import discover

    now = datetime(2026, 12, 6, 0, 43, tzinfo=UTC)
    for module in (config_module, discover, cvpilot_module):
        monkeypatch.setattr(module, "now_utc", lambda: now, raising=False)
    cat = Catalog(catalog_dir)
    cfg = cat.config("thea", "BSM", days_back=2, timezone="America/New_York")
    assert cfg.date_range.resolve() == (date(2026, 12, 4), date(2026, 12, 5))
    src = CvPilotDays(cfg, cat.db, run_id="t")
    assert src.run_fields()["start_date"] == date(2026, 12, 4)
    assert src.run_fields()["end_date"] == date(2026, 12, 5)
    todo, cached, _ = src.partitions()
    assert [k.key for k in todo + cached] == ["thea/BSM/2026/12/04", "thea/BSM/2026/12/05"]
    assert src.future == []

    class NoListing:
        list_requests = 0

        def describe(self) -> str:
            return ""

    monkeypatch.setattr(discover, "_partition_totals", lambda cache, pk: (0, 0))
    p = discover.plan(NoListing(), cat.db, cfg)  # type: ignore[arg-type]
    assert (p.start, p.end) == (date(2026, 12, 4), date(2026, 12, 5))


def test_days_after_today_are_refused_or_skipped_never_marked_no_data(
    s3_client: Any, catalog_dir: Path
) -> None:
    """A range after today cannot have data yet: one ConfigError line, nothing created (it
    said "no data in ..." and exited 0); a range that ends after today ingests up to today,
    skips the later days with a note and records no no_data marker for them."""
    from typer.testing import CliRunner

    from cvcatalog.cli.main import app
    from cvcatalog.exceptions import ConfigError

    today = datetime.now(UTC).date()
    later = today + timedelta(days=400)
    cat = Catalog(catalog_dir)
    with pytest.raises(ConfigError, match=rf"^wydot/BSM {later} is after today \({today}, UTC\)"):
        ingest(cat, later, later)
    assert not catalog_dir.exists()
    res = CliRunner().invoke(app, ["ingest", "--catalog", str(catalog_dir), "--source", "wydot",
                                   "--type", "BSM", "--start", str(later)])  # fmt: skip
    assert res.exit_code == 1 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [
        f"error: wydot/BSM {later} is after today ({today}, UTC): the bucket cannot hold data "
        "for it yet; nothing to ingest"
    ]
    notes: list[str] = []

    class Notes(NullProgress):
        def note(self, message: str) -> None:
            notes.append(message)

    yesterday, two_on = today - timedelta(days=1), today + timedelta(days=2)
    s = ingest(cat, yesterday, two_on, progress=Notes())
    assert s.ok and s.count("no_data") == 2  # yesterday and today: the bucket is empty
    marked = cat.query("select partition_key k, status from partitions order by 1")
    assert list(marked.k) == [PartitionKey("wydot", "BSM", d).key for d in (yesterday, today)]
    skipped = [PartitionKey("wydot", "BSM", today + timedelta(days=i)).key for i in (1, 2)]
    assert (
        f"2 day(s) after today skipped, not marked no_data (the bucket cannot hold them yet): "
        f"{', '.join(skipped)}"
    ) in notes


def test_a_failed_conversion_leaves_nothing_behind(
    s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(s3_client, D1, D2)
    cat = Catalog(catalog_dir)
    ingest(cat, D1, D1)
    before = cat.query("select count(*) as n from wydot_bsm").n[0]
    real = transform.convert_partition

    def broken(con: Any, schema: Any, files: Any, out_dir: Path, **kw: Any) -> Any:
        real(con, schema, files, out_dir, **kw)  # writes real Parquet, then dies
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr("cvcatalog.sources.cvpilot.convert_partition", broken)
        s = ingest(cat, D2, D2)
    assert s.count("failed") == 1 and "no space left" in (s.days[0].error or "").lower()
    assert cat.query("select count(*) as n from wydot_bsm").n[0] == before
    day2 = catalog_dir / "lake/main/wydot_bsm/year=2021/month=4/day=2/date=2021-04-02"
    assert not day2.exists() or not any(day2.iterdir())
    assert not list((catalog_dir / "staging").rglob("*.parquet"))
    assert {r["partition"]: r["status"] for r in cat.status()}["wydot/BSM/2021/04/02"] == "failed"
    retry = ingest(cat, D2, D2)
    assert retry.count("complete") == 1  # a failed day is retried; raw files were reused
    assert cat.verify().clean


def test_lru_eviction_keeps_the_recently_used(s3_client: Any, catalog_dir: Path) -> None:
    seed(s3_client, D1, D3, empty_hour_rate=0)
    cat = Catalog(catalog_dir)
    ingest(cat, D1, D3)
    sizes = {r["partition"]: r["parquet_bytes"] for r in cat.status()}
    cat.to_dask("wydot", "BSM", D1, D1)  # touch day 1: now day 2 is the least recently used
    total = sum(sizes.values())
    quarantine = cat.query(
        "select coalesce(sum(bytes), 0) as b from partition_files where kind='quarantine'"
    ).b[0]
    limit_gb = (total + quarantine - 1) / 1024**3  # one byte too small: one partition must go
    gone = cat.evict(limit_gb)
    assert gone == ["wydot/BSM/2021/04/02"]
    left = {r["partition"] for r in cat.status()}
    assert left == {"wydot/BSM/2021/04/01", "wydot/BSM/2021/04/03"}
    assert cat.query("select count(distinct date) as n from wydot_bsm").n[0] == 2
    month = catalog_dir / "lake/main/wydot_bsm/year=2021/month=4"
    # evicted: its files are gone with the snapshots that showed them, and so are its folders
    assert sorted(p.name for p in month.iterdir()) == ["day=1", "day=3"]
    assert cat.verify().clean


def _duckdb_cli() -> str:
    exe = Path(sys.executable).with_name("duckdb")
    return str(exe) if exe.exists() else (shutil.which("duckdb") or "duckdb")


def test_plain_duckdb_shell_reads_the_views(
    s3_client: Any, catalog_dir: Path, tmp_path: Path
) -> None:
    report = seed(s3_client, D1, D2)
    cat = Catalog(catalog_dir)
    ingest(cat, D1, D2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    sql = (
        "select count(*) from wydot_bsm; "
        "select count(*) from wydot_bsm_socrata where date = '2021-04-02';"
    )
    want = [report.records, report.partitions["wydot/BSM/2021/04/02"].records]
    attach = (
        f"LOAD '{extension_path('ducklake')}'; "
        f"ATTACH 'ducklake:{cat.paths.db}' AS cv (READ_ONLY); USE cv; "
    )
    out = subprocess.run(
        [_duckdb_cli(), "-csv", "-c", attach + sql],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=True,
    )
    assert [int(x) for x in out.stdout.split() if x.isdigit()] == want

    def shell(home: Path, statements: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "cvcatalog"), "shell", "--catalog", str(home)],
            input=".mode csv\n" + statements + "\n",
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
        )

    # `cvcatalog shell` opens the same session (here with its commands on stdin)
    opened = shell(catalog_dir, sql)
    assert opened.returncode == 0, opened.stderr
    assert [int(x) for x in opened.stdout.split() if x.isdigit()] == want
    # a catalog copied (cp -a), its original moved away: the shell reads the copy's files (it
    # read the recorded path, the original's: "Cannot open file .../lake/...parquet")
    speeds = "select round(sum(speed_mps), 3) as s from wydot_bsm"
    total = float(cat.query(speeds).s[0])
    copy = tmp_path / "copy"
    shutil.copytree(catalog_dir, copy, symlinks=True)
    catalog_dir.rename(tmp_path / "moved-away")
    opened = shell(copy, speeds + ";")
    assert opened.returncode == 0 and "Error" not in opened.stderr + opened.stdout, opened.stderr
    assert float(opened.stdout.split()[-1]) == total


WORKER = """
import json, sys
from cvcatalog.catalog import Catalog
s = Catalog(sys.argv[1]).ingest("wydot", "BSM", sys.argv[2], sys.argv[3], timezone="UTC", rate_limit=0)
print(json.dumps({d.key: d.status for d in s.days}))
"""


# the fast run has the same check through the CLI, four writers and a reader at once:
# test_chaos.py::test_four_writers_and_a_reader
@pytest.mark.slow
def test_concurrent_processes_ingest_each_day_exactly_once(
    s3_client: Any, catalog_dir: Path
) -> None:
    report = seed(s3_client, D1, date(2021, 4, 4), records_per_hour=60)
    ranges = [
        ("2021-04-01", "2021-04-03"),
        ("2021-04-02", "2021-04-04"),
        ("2021-04-01", "2021-04-04"),
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(catalog_dir), a, b],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for a, b in ranges
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    built: dict[str, int] = {}
    for r in results:
        for key, status in r.items():
            assert status in ("complete", "cached"), (key, status)
            built[key] = built.get(key, 0) + (status == "complete")
    assert built == {k: 1 for k in report.partitions}
    cat = Catalog(catalog_dir)
    assert cat.query("select count(*) as n from wydot_bsm").n[0] == report.records
    assert cat.query("select count(*) as n from partitions where status='complete'").n[0] == 4
    assert cat.verify().clean


def _memory_dir(catalog_dir: Path) -> Path:
    """The catalog's directory of raw copies in memory (the session's: conftest)."""
    base = os.environ.get("CVCATALOG_MEMORY__STAGING_DIR")
    return memstage.stage_dir(catalog_dir, Path(base) if base else memstage.SHM_ROOT)


KILLABLE = """
import sys
from cvcatalog.catalog import Catalog
Catalog(sys.argv[1]).ingest("wydot", "BSM", "2021-04-01", "2021-04-01", timezone="UTC",
                            rate_limit=6, max_workers=1)
"""


@pytest.mark.parametrize("staging", ["memory", "disk"])
def test_a_killed_ingest_resumes_without_fetching_twice(
    s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch, staging: str
) -> None:
    """Raw copies survive a kill -9 in the memory stage (io.memstage) as on disk, and the
    next run reuses them."""
    import signal
    import time

    if staging == "disk":
        monkeypatch.setenv("CVCATALOG_MEMORY__STAGING_GB", "0")
    report = seed(s3_client, D1, D1, files_per_hour=2, empty_hour_rate=0)
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, str(catalog_dir)])
    pk = PartitionKey("wydot", "BSM", D1)
    disk = CatalogPaths.at(catalog_dir).staging_dir(pk)
    raw = disk if staging == "disk" else _memory_dir(catalog_dir) / pk.key
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = [p for p in raw.glob("*.json") if not p.name.endswith(".part.json")]
        if len(done) >= 6:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(done) >= 6, "the ingest never got going"
    if staging == "memory":
        assert not list(disk.glob("*.json"))  # every copy went to memory
    cat = Catalog(catalog_dir)
    # nothing half-visible; the catalog's tables are written beside the first downloads (a
    # thread of their own), so a kill that early may leave no catalog at all: nothing either
    if (catalog_dir / "catalog.ducklake").exists():
        assert cat.query("select count(*) as n from wydot_bsm").n[0] == 0
    s = ingest(cat, D1, D1)
    assert s.count("complete") == 1 and s.rows == report.records
    assert s.reused_downloads >= len(done)
    assert s.get_requests <= report.objects - len(done) + 1
    assert cat.verify().clean
    assert not raw.exists()


@pytest.mark.parametrize(("signame", "code", "line"), [
    ("SIGINT", 130, "interrupted"),
    # SIGTERM (systemd, docker stop, timeout) ended the process at once: exit 143 with no
    # report, no line, and the run left 'running'
    ("SIGTERM", 143, "terminated (SIGTERM)"),
])  # fmt: skip
def test_ctrl_c_into_a_json_ingest_still_reports_what_it_committed(
    s3_client: Any, catalog_dir: Path, signame: str, code: int, line: str
) -> None:
    """`ingest --format json` stopped by Ctrl-C (or SIGTERM) prints its summary (status
    interrupted, what it found committed and what it committed) on stdout, then the one line
    on stderr, and exits 130 (143)."""
    import json
    import signal
    import time

    seed(s3_client, D1, D3, files_per_hour=1, empty_hour_rate=0)
    ingest(Catalog(catalog_dir), D1, D1)  # committed before the run that is interrupted
    cmd = [sys.executable, "-m", "cvcatalog", "ingest", "--source", "wydot", "--type", "BSM",
           "--start", D1.isoformat(), "--end", D3.isoformat(), "--catalog", str(catalog_dir),
           "--rate-limit", "3", "--workers", "1", "--no-progress", "--format", "json"]  # fmt: skip
    # Ctrl-C's default action in the child, whatever this process inherited: a suite run as a
    # background job ignores SIGINT, and the CLI keeps an ignored SIGINT ignored (Unix's rule
    # for background jobs), so the child would never see the signal and end with exit 0
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    copies = [_memory_dir(catalog_dir), CatalogPaths.at(catalog_dir).staging]
    deadline = time.monotonic() + 60
    # days 2 and 3 downloading: 48 GETs at 3/s, ~15 s left when the 4th is in (at 20/s, on a
    # loaded machine, the signal could come as the run ended: exit 0)
    while time.monotonic() < deadline:
        got = [p for d in copies for p in d.rglob("*.json") if not p.name.endswith(".part.json")]
        if len(got) >= 4:
            break
        time.sleep(0.02)
    proc.send_signal(getattr(signal, signame))
    signalled = time.monotonic()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    # the objects not yet started are given up, not each sent through the rate limit's wait
    # (which kept the run going ~15 s after the Ctrl-C)
    assert time.monotonic() - signalled < 7
    [report] = json.loads(out)
    assert report["status"] == "interrupted" and report["days_cached"] == 1
    cat = Catalog(catalog_dir)
    # the report's rows are those the run committed: the catalog's, but the cached day's
    held = cat.query("select count(*) as n from wydot_bsm").n[0]
    [cached] = [r["rows"] for r in cat.status() if r["partition"] == "wydot/BSM/2021/04/01"]
    assert report["rows"] == held - cached and cached > 0
    complete = sum(r["status"] == "complete" for r in cat.status())
    assert report["days_complete"] + report["days_cached"] == complete < 3
    assert f"{line}; run the same command again to resume" in err
    assert "Traceback" not in err
    assert cat.runs(1)[0]["status"] == "interrupted"


def test_staging_left_after_a_commit_is_swept_by_the_next_run(
    s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Copies on disk and in memory; then copies in memory by a run that opens no memory
    stage (staging_gb 0, a conversion pool, no room): they must not hold RAM because the
    next runs keep to disk."""
    seed(s3_client, D1, D1)
    cat = Catalog(catalog_dir)
    ingest(cat, D1, D1)
    pk = PartitionKey("wydot", "BSM", D1)
    in_memory = _memory_dir(catalog_dir) / pk.key
    for stages in ([in_memory, CatalogPaths.at(catalog_dir).staging_dir(pk)], [in_memory]):
        # a run killed between its commit and its cleanup leaves the raw copies behind
        for d in stages:
            d.mkdir(parents=True)
            (d / "000000-leftover.json").write_text('{"x": 1}\n')
        s = ingest(cat, D1, D1)
        assert s.count("cached") == 1 and s.get_requests == 0
        assert not any(d.exists() for d in stages)
        monkeypatch.setenv("CVCATALOG_MEMORY__STAGING_GB", "0")  # the second round: no stage


def test_a_deleted_catalogs_copies_in_memory_go_with_the_next_run_of_another(
    s3_client: Any, catalog_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catalog deleted after a run left copies in memory held that RAM for 24 hours: the
    next run of any catalog sweeps them, with a memory stage of its own or (here) without."""
    seed(s3_client, D1, D1)
    catalog_dir.mkdir()
    base = Path(os.environ.get("CVCATALOG_MEMORY__STAGING_DIR") or memstage.SHM_ROOT)
    stage = memstage.MemoryStage.open(catalog_dir, 100 << 20, base)
    assert stage is not None
    left = stage.place("wydot/BSM/2021/04/02", "000000-a.json", 2)  # a day that failed
    assert left is not None
    left.write_text("{}")
    stage.close()
    shutil.rmtree(catalog_dir)
    monkeypatch.setenv("CVCATALOG_MEMORY__STAGING_GB", "0")  # the next run opens no stage
    s = ingest(Catalog(tmp_path / "another"), D1, D1)
    assert s.count("complete") == 1
    assert not _memory_dir(catalog_dir).exists()


def test_a_conversion_out_of_memory_is_retried_with_one_thread(
    s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duckdb

    report = seed(s3_client, D1, D1)
    real = CvPilotDays._convert
    calls: list[int | None] = []

    def convert(
        self: CvPilotDays, raw: Any, out_dir: Path, threads: int | None = None, **kw: Any
    ) -> Any:
        calls.append(threads)
        if threads is None:  # the first try, with every core: DuckDB hits its memory_limit
            (out_dir / "part-00000.parquet").write_bytes(b"half written")
            raise duckdb.OutOfMemoryException("Out of Memory Error: failed to allocate 128 MiB")
        return real(self, raw, out_dir, threads, **kw)

    monkeypatch.setattr(CvPilotDays, "_convert", convert)
    monkeypatch.setenv("CVCATALOG_MEMORY__DUCKDB_THREADS", "2")
    cat = Catalog(catalog_dir)
    s = ingest(cat, D1, D1)
    assert calls == [None, 1]
    assert s.count("complete") == 1 and s.rows == report.records
    assert cat.query("select count(*) as n from wydot_bsm").n[0] == report.records
    assert cat.verify().clean


def test_a_conversion_out_of_memory_on_one_thread_fails_its_day_in_one_line(
    s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB's out-of-memory message goes on with "Possible solutions:" lines; a day that
    runs out at one thread too fails with one line naming the setting to raise (the summary
    printed DuckDB's whole text)."""
    import duckdb

    seed(s3_client, D1, D1)
    text = ("Out of Memory Error: failed to allocate data of size 16.0 MiB (604.3 MiB/619.8 "
            "MiB used)\n\nPossible solutions:\n* Reducing the number of threads (SET threads=X)"
            "\n* Increasing the memory limit (SET memory_limit='...GB')\n")  # fmt: skip

    def convert(self: CvPilotDays, *a: Any, **kw: Any) -> Any:
        raise duckdb.OutOfMemoryException(text)

    monkeypatch.setattr(CvPilotDays, "_convert", convert)
    monkeypatch.setenv("CVCATALOG_MEMORY__DUCKDB_THREADS", "2")
    s = ingest(Catalog(catalog_dir), D1, D1)
    (failed,) = [o for o in s.outcomes if o.status == "failed"]
    assert failed.error == (
        "DuckDB ran out of memory (Out of Memory Error: failed to allocate data of size 16.0 MiB "
        "(604.3 MiB/619.8 MiB used)): raise memory.max_usage_gb"
    )
    assert s.errors and not any("\n" in e or "Possible solutions" in e for e in s.errors)


def test_dask_columns_are_unique_and_typed(s3_client: Any, catalog_dir: Path) -> None:
    seed(s3_client, D1, D1)
    cat = Catalog(catalog_dir)
    ingest(cat, D1, D1)
    pdf = cat.to_dask("wydot", "BSM", D1, D1).compute()
    assert len(set(pdf.columns)) == len(pdf.columns)
    assert list(pdf.columns[-3:]) == ["source", "message_type", "date"]
    assert (pdf.source == "wydot").all()


def test_a_canonical_schema_change_rebuilds_instead_of_mixing(
    s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from cvcatalog import schemas

    report = seed(s3_client, D1, D2)
    cat = Catalog(catalog_dir)
    ingest(cat, D1, D2)
    bumped = dataclasses.replace(schemas.SCHEMAS[("wydot", "BSM")], canonical_version=99)
    monkeypatch.setitem(schemas.SCHEMAS, ("wydot", "BSM"), bumped)
    # old-layout partitions leave the views at the next catalog write instead of mixing in
    cat.clear("wydot_backup")
    assert cat.query("select count(*) as n from wydot_bsm").n[0] == 0
    with pytest.warns(MissingDataWarning, match="older canonical version.*2021-04-01, 2021-04-02;"):
        assert len(cat.to_dask("wydot", "BSM", D1, D2)) == 0
    s = ingest(cat, D1, D2)
    assert s.count("complete") == 2 and s.count("cached") == 0
    assert cat.query("select count(*) as n from wydot_bsm").n[0] == report.records
    assert {r["canonical_version"] for r in cat.status()} == {99}


def test_copies_the_memory_stage_has_no_room_for_go_to_disk(
    s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/dev/shm filled by others after the run opened its stage: those copies are downloaded
    again into disk staging and the day completes (not a failed day saying the disk is full)."""
    import errno

    from cvcatalog.io.download import S3Fetcher

    report = seed(s3_client, D1, D1, files_per_hour=2, empty_hour_rate=0)
    memory = _memory_dir(catalog_dir)
    real = S3Fetcher._download
    refused: list[str] = []
    to_disk: list[str] = []

    def download(self: S3Fetcher, obj: Any, dest: Path, *a: Any) -> Any:
        if dest.is_relative_to(memory) and len(refused) < 5:
            refused.append(obj.key)
            raise OSError(errno.ENOSPC, "No space left on device", str(dest))
        if obj.key in refused:
            to_disk.append(str(dest))
        return real(self, obj, dest, *a)

    monkeypatch.setattr(S3Fetcher, "_download", download)
    cat = Catalog(catalog_dir)
    s = ingest(cat, D1, D1)
    assert s.count("complete") == 1 and s.rows == report.records
    assert s.staged_in_memory_peak > 0, "the run opened no memory stage"
    assert len(refused) == 5 and len(to_disk) == 5
    staging = CatalogPaths.at(catalog_dir).staging
    assert all(Path(p).is_relative_to(staging) for p in to_disk)
    assert not memory.exists() or not any(memory.rglob("*.json"))
    assert cat.verify().clean


def test_a_new_catalog_fetches_its_first_day_while_its_tables_are_written(
    s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catalog that does not exist yet records nothing: the plan and the first day's fetch
    read no state (a read would create the catalog before its tables are written), and the
    tables are written meanwhile (pipeline.run)."""
    report = seed(s3_client, D1, D2, empty_hour_rate=0)
    downloading = threading.Event()
    seen: list[tuple[str, bool]] = []
    real_ensure, real_download = CatalogDB.ensure_schema, CvPilotDays._fetch_batch

    def ensure_schema(self: CatalogDB) -> None:
        seen.append(("tables held until a download started", downloading.wait(10)))
        real_ensure(self)

    def download(self: CvPilotDays, *args: Any) -> Any:
        if not downloading.is_set():
            seen.append(("a download started with a catalog file", self.paths.db.exists()))
            downloading.set()
        return real_download(self, *args)

    monkeypatch.setattr(CatalogDB, "ensure_schema", ensure_schema)
    monkeypatch.setattr(CvPilotDays, "_fetch_batch", download)
    cat = Catalog(catalog_dir)
    s = ingest(cat, D1, D2)
    assert s.ok and s.count("complete") == 2, s.as_dict()
    assert ("a download started with a catalog file", False) in seen
    assert ("tables held until a download started", True) in seen
    assert s.rows == report.records == cat.query("select count(*) as n from wydot_bsm").n[0]
    runs = cat.query("select status, days_complete from ingest_runs")
    assert (list(runs.status), list(runs.days_complete)) == (["ok"], [2])
    assert cat.verify().clean
    assert ingest(cat, D1, D2).count("cached") == 2


def test_a_new_catalog_over_files_it_does_not_know_removes_them_while_it_is_created(
    s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A day's directory holds files no catalog knows (its catalog file was deleted): the
    fetch removes them without reading the catalog being created (a read of a catalog that
    does not exist is an error now, and would fail the day)."""
    report = seed(s3_client, D1, D1, empty_hour_rate=0)
    paths = CatalogPaths.at(catalog_dir)
    stray = paths.root / paths.partition_rel(PartitionKey("wydot", "BSM", D1)) / "old.parquet"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"a file of a deleted catalog")
    fetched = threading.Event()
    real_ensure, real_fetch = CatalogDB.ensure_schema, CvPilotDays.fetch

    def ensure_schema(self: CatalogDB) -> None:
        fetched.wait(10)  # the tables wait for the day's fetch
        real_ensure(self)

    def fetch(self: CvPilotDays, *args: Any) -> Any:
        try:
            return real_fetch(self, *args)
        finally:
            fetched.set()

    monkeypatch.setattr(CatalogDB, "ensure_schema", ensure_schema)
    monkeypatch.setattr(CvPilotDays, "fetch", fetch)
    s = ingest(Catalog(catalog_dir), D1, D1)
    assert s.ok and s.count("complete") == 1 and s.rows == report.records, s.as_dict()
    assert not stray.exists()


def test_a_conversion_tells_each_downloaded_object_by_the_bytes_its_download_kept(
    s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beside busy download threads, every system call of the conversion's thread is a GIL
    hand-off (~0.5 s for a batch of 252 objects): the objects are not opened to be sniffed."""
    report = seed(s3_client, D1, D2, empty_hour_rate=0)
    peeked: list[Path] = []
    real_peek = rawfile.peek

    def peek(path: Path, size: int) -> tuple[bytes, bool]:
        peeked.append(path)
        return real_peek(path, size)

    monkeypatch.setattr(rawfile, "peek", peek)
    s = ingest(Catalog(catalog_dir), D1, D2)
    assert s.ok and s.rows == report.records and s.count("complete") == 2
    assert peeked == []
    # copies an earlier run left (no first bytes kept) are read as before
    shutil.rmtree(catalog_dir)
    seeded = sum(p.objects for p in report.partitions.values())
    real_place = CvPilotDays._place

    def place_and_leave_copies(self: CvPilotDays, f: Any, batch: Any) -> None:
        real_place(self, f, batch)
        for o in batch:  # as a killed run would have left them
            if not f.names[o.key].exists():
                f.names[o.key].parent.mkdir(parents=True, exist_ok=True)
                body = s3_client.get_object(Bucket="usdot-its-cvpilot-publicdata", Key=o.key)
                f.names[o.key].write_bytes(body["Body"].read())

    monkeypatch.setattr(CvPilotDays, "_place", place_and_leave_copies)
    again = ingest(Catalog(catalog_dir), D1, D2)
    assert again.ok and again.rows == report.records and again.get_requests == 0
    assert len(peeked) == seeded


def test_a_new_catalog_that_cannot_be_created_is_not_created_by_the_runs_end(
    s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(s3_client, D1, D1, empty_hour_rate=0)

    def ensure_schema(self: CatalogDB) -> None:
        raise CatalogError("cannot create the catalog (test)")

    monkeypatch.setattr(CatalogDB, "ensure_schema", ensure_schema)
    with pytest.raises(CatalogError, match="cannot create the catalog"):
        ingest(Catalog(catalog_dir), D1, D1)
    assert not CatalogPaths.at(catalog_dir).db.exists()  # nor by the post-run eviction check


def test_an_ingest_reads_its_state_without_loading_the_lake(
    s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan, each day's state, the change check, the size limit and snapshot expiry read
    state and metadata tables only: attaching the lake to the reader after every commit cost
    ~20-25 ms each (DuckLake loads its catalog: a dozen metadata queries)."""
    seed(s3_client, D1, D2)
    calls: list[int] = []
    real = CatalogDB._attach_lake_read_only

    def counted(self: CatalogDB, *args: Any, **kw: Any) -> None:
        calls.append(1)
        real(self, *args, **kw)

    monkeypatch.setattr(CatalogDB, "_attach_lake_read_only", counted)
    cat = Catalog(catalog_dir)
    assert ingest(cat, D1, D1).ok
    assert ingest(cat, D1, D2, check_changes=True).ok
    rewritten = ingest(cat, D1, D2, force_refresh=True)  # (cache.max_size_gb: 50 by default)
    assert rewritten.ok and rewritten.partitions_rewritten
    assert calls == []
    assert int(cat.query("select count(*) n from wydot_bsm").n[0]) == rewritten.rows
    assert calls  # a query needs the lake
