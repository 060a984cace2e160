"""The command line, through Typer's CliRunner and a real local endpoint."""

from __future__ import annotations

import csv
import gc
import io
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cvcatalog.catalog import Catalog
from cvcatalog.cli.main import app, main
from cvcatalog.sandbox.replica import seed_replica
from cvcatalog.sandbox.server import detached_running

runner = CliRunner()
_INGEST = ("ingest", "--source", "wydot", "--type", "BSM")


def run(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def seeded(s3_client: Any) -> Any:
    return seed_replica(
        s3_client,
        date(2021, 4, 1),
        date(2021, 4, 2),
        records_per_hour=20,
        files_per_hour=1,
        malformed_per_day=1,
    )


def test_ingest_query_and_cache_commands(seeded: Any, catalog_dir: Path, tmp_path: Path) -> None:
    cat = str(catalog_dir)
    r = run(
        "ingest",
        "--source",
        "wydot",
        "--type",
        "BSM",
        "--start",
        "2021-04-01",
        "--end",
        "2021-04-02",
        "--catalog",
        cat,
        "--rate-limit",
        "0",
        "--no-progress",
    )
    assert r.exit_code == 0, r.output
    assert "2 complete" in r.output and f"{seeded.records:,} rows" in r.output

    r = run(
        "ingest",
        "--source",
        "wydot",
        "--type",
        "BSM",
        "--start",
        "2021-04-01",
        "--end",
        "2021-04-02",
        "--catalog",
        cat,
        "--format",
        "json",
    )
    summary = json.loads(r.output)[0]
    assert (summary["days_cached"], summary["get_requests"], summary["list_requests"]) == (2, 0, 0)

    r = run(
        "query",
        "select date, count(*) as n from wydot_bsm group by 1 order by 1",
        "--catalog",
        cat,
        "--format",
        "json",
    )
    assert r.exit_code == 0, r.output
    got = {row["date"]: row["n"] for row in json.loads(r.output)}
    assert got == {p.day.isoformat(): p.records for p in seeded.partitions.values()}

    out = tmp_path / "res" / "rows.csv"
    r = run(
        "query",
        "select vehicle_id, speed_mps from wydot_bsm order by all",
        "--catalog",
        cat,
        "--format",
        "csv",
        "--output",
        str(out),
    )
    assert r.exit_code == 0 and out.exists()
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == seeded.records and set(rows[0]) == {"vehicle_id", "speed_mps"}

    r = run("cache", "status", "--catalog", cat, "--format", "json")
    status = json.loads(r.output)
    assert [s["status"] for s in status] == ["complete", "complete"]
    assert sum(s["quarantined"] for s in status) == seeded.malformed

    r = run("cache", "verify", "--catalog", cat)
    assert r.exit_code == 0 and "0 mismatched" in r.output

    r = run("views", "--catalog", cat, "--format", "csv")
    assert "wydot_bsm_socrata" in r.output

    r = run("cache", "clear", "--source", "wydot", "--catalog", cat, "--yes")
    assert r.exit_code == 0 and "cleared 2 partitions" in r.output
    r = run("query", "select count(*) as n from wydot_bsm", "--catalog", cat, "--format", "json")
    assert json.loads(r.output) == [{"n": 0}]


def test_query_is_read_only(seeded: Any, catalog_dir: Path) -> None:
    Catalog(catalog_dir).db.initialise()  # an empty catalog (a read creates none)
    r = run("query", "create table evil as select 1", "--catalog", str(catalog_dir))
    assert r.exit_code == 1
    assert "read-only" in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--source", "nycdot", "--type", "BSM", "--start", "2021-04-01"],
            "does not publish 'BSM'",
        ),
        (
            ["--source", "wydot", "--type", "BSM", "--start", "2021-04-02", "--end", "2021-04-01"],
            "before start date",
        ),
        (["--source", "wydot", "--type", "BSM", "--days-back", "0"], "positive"),
        (
            [
                "--source",
                "wydot",
                "--type",
                "BSM",
                "--start",
                "2021-04-01",
                "--timezone",
                "Mars/Olympus",
            ],
            "unknown timezone",
        ),
        (["--source", "wydot", "--type", "BSM", "--start", "April 1st"], "start_date"),
        (
            ["--source", "wydot", "--type", "BSM", "--start", "2021-04-01", "--days-back", "3"],
            "--start (and --end) or --days-back, not both",
        ),
        (["--source", "wydot", "--type", "BSM"], "give the days: --start"),
    ],
)
def test_invalid_arguments_fail_before_any_request(
    args: list[str], message: str, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an endpoint that nothing listens on: any request would hang or fail differently
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    r = run("ingest", *args, "--catalog", str(catalog_dir), "--no-progress")
    assert r.exit_code == 1
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and message in lines[0], r.output


def test_missing_credentials_give_setup_instructions(
    s3_endpoint: str, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    r = run(
        "ingest",
        "--source",
        "wydot",
        "--type",
        "BSM",
        "--start",
        "2021-04-01",
        "--catalog",
        str(catalog_dir),
        "--no-progress",
    )
    assert r.exit_code == 1
    assert "Configure AWS credentials" in r.output and "--no-sign-request" in r.output
    assert "Traceback" not in r.output
    r = run(
        "ingest",
        "--source",
        "wydot",
        "--type",
        "BSM",
        "--start",
        "2021-04-01",
        "--catalog",
        str(catalog_dir),
        "--no-progress",
        "--profile",
        "nosuchprofile",
    )
    assert r.exit_code == 1 and "nosuchprofile" in r.output


def test_missing_credentials_over_months_of_days_give_the_same_one_message(
    s3_endpoint: str, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Months of days: the plan's month listings fail in the background, then the first day's
    fetch, which ends the run with the set-up instructions as a single day does."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    one = run(*_INGEST, "--start", "2021-04-01", "--catalog", str(catalog_dir), "--no-progress")
    many = run(
        *_INGEST, "--start", "2021-03-01", "--end", "2021-05-31", "--catalog",
        str(tmp_path / "many"), "--no-progress",
    )  # fmt: skip
    assert one.exit_code == many.exit_code == 1
    assert "Configure AWS credentials" in many.output and "Traceback" not in many.output
    assert len(many.output.splitlines()) == len(one.output.splitlines()) == 1
    # the same line, naming the month it listed instead of the day
    assert many.output.replace("2021/03/", "2021/04/01/") == one.output


def test_a_missing_bucket_stops_the_run_at_the_first_request(
    s3_client: Any, catalog_dir: Path
) -> None:
    """Every day would fail the same way (1,000 days took 105 s, one failure line each): one
    line naming the bucket, exit 1, no day recorded failed."""
    s3_client.delete_bucket(Bucket="usdot-its-cvpilot-publicdata")
    r = run(
        "ingest", "--source", "wydot", "--type", "BSM", "--start", "2021-03-01",
        "--end", "2021-04-30", "--catalog", str(catalog_dir), "--no-progress",
    )  # fmt: skip
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert r.exit_code == 1 and len(lines) == 1, r.output
    assert "NoSuchBucket" in lines[0] and "usdot-its-cvpilot-publicdata" in lines[0]
    assert "the bucket does not exist at this endpoint" in lines[0]
    assert "Traceback" not in r.output and "unexpected" not in r.output
    failed = Catalog(catalog_dir).query("select count(*) as n from partitions").n[0]
    assert failed == 0


def test_config_file_drives_the_ingest(seeded: Any, tmp_path: Path) -> None:
    cfg = tmp_path / "job.yml"
    cfg.write_text(
        "source: wydot\nmessage_type: BSM\n"
        "date_range: {start_date: 2021-04-01, end_date: 2021-04-01, timezone: UTC}\n"
        f"cache: {{directory: {tmp_path / 'cat'}}}\ndownload: {{rate_limit: 0}}\n"
    )
    r = run("ingest", "--config", str(cfg), "--no-progress")
    assert r.exit_code == 0, r.output
    assert f"{seeded.partitions['wydot/BSM/2021/04/01'].records:,} rows" in r.output
    assert (tmp_path / "cat" / "catalog.ducklake").exists()


def test_sandbox_seed_refuses_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    r = run("sandbox", "seed", "--start", "2021-04-01")
    assert r.exit_code == 1 and "AWS_ENDPOINT_URL_S3" in r.output


def test_sandbox_seed_command(s3_endpoint: str, s3_client: Any, tmp_path: Path) -> None:
    rep = tmp_path / "seed.json"
    r = run(
        "sandbox",
        "seed",
        "--start",
        "2021-04-01",
        "--records-per-hour",
        "10",
        "--files-per-hour",
        "1",
        "--source",
        "wydot_backup",
        "--report",
        str(rep),
    )
    assert r.exit_code == 0, r.output
    listed = s3_client.list_objects_v2(
        Bucket="usdot-its-cvpilot-publicdata", Prefix="wydot_backup/BSM/2021/04/01/"
    )
    assert listed["KeyCount"] == json.loads(rep.read_text())["totals"]["objects"]


def test_python_dash_m_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cvcatalog", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("ingest", "query", "cache", "sandbox"):
        assert command in out.stdout


def test_help_fits_an_80_column_terminal_and_says_everything() -> None:
    """Each option's whole text, wrapped to the terminal (Rich's panels cut it to
    'configs/data_s…' in a squeezed column at 80 columns)."""
    env = {**os.environ, "COLUMNS": "80", "TERM": "xterm"}
    out = subprocess.run(
        [sys.executable, "-m", "cvcatalog", "ingest", "--help"],
        capture_output=True, text=True, check=True, env=env,
    ).stdout  # fmt: skip
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "…" not in out
    flat = " ".join(out.split())
    for text in ("(configs/data_sources/*.yml)", "--check-changes / --no-check-changes",
                 "s3://bucket/prefix of a published catalog"):  # fmt: skip
        assert text in flat


def test_validation_report_counts_each_rule(s3_client: Any, catalog_dir: Path) -> None:
    rep = seed_replica(s3_client, date(2021, 4, 1), date(2021, 4, 2), records_per_hour=20,
                       files_per_hour=1, malformed_per_day=3)
    cat = str(catalog_dir)
    r = run("ingest", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01", "--end",
            "2021-04-02", "--catalog", cat, "--rate-limit", "0", "--no-progress")
    assert r.exit_code == 0, r.output
    r = run("report", "validation", "--catalog", cat, "--format", "json")
    rows = json.loads(r.output)
    quarantined = [x for x in rows if x["kind"] == "quarantine"]
    assert sum(x["count"] for x in quarantined) == rep.malformed
    assert {x["partition"] for x in quarantined} == set(rep.partitions)
    by_rule: dict[str, int] = {}
    for x in quarantined:
        by_rule[x["rule"]] = by_rule.get(x["rule"], 0) + x["count"]
    kinds = [m.kind for m in rep.malformed_lines]
    assert by_rule.get("malformed JSON", 0) == sum(k != "missing_id" for k in kinds)
    assert by_rule.get("missing required field payload.data.coreData.id", 0) == kinds.count("missing_id")
    r = run("report", "runs", "--catalog", cat, "--format", "json")
    assert json.loads(r.output)[0]["status"] == "ok"
    r = run("report", "validation", "--catalog", cat)
    assert r.exit_code == 0 and f"{rep.malformed} quarantined" in r.output


def test_union_view_spans_every_bsm_source(seeded: Any, catalog_dir: Path) -> None:
    cat = str(catalog_dir)
    run("ingest", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01", "--catalog", cat,
        "--rate-limit", "0", "--no-progress")
    r = run("query", "select source, count(*) as n from bsm group by 1", "--catalog", cat, "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == [{"source": "wydot", "n": seeded.partitions["wydot/BSM/2021/04/01"].records}]


@pytest.mark.parametrize(("argv", "code"), [(["--help"], 0), (["--no-such-option"], 2)])
def test_the_command_keeps_its_exit_code_and_leaves_the_exit_collector_nothing_to_walk(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    code: int,
) -> None:
    monkeypatch.setattr(sys, "argv", ["cvcatalog", *argv])
    gc.unfreeze()
    try:
        with pytest.raises(SystemExit) as e:
            main()
        assert e.value.code == code
        assert gc.get_freeze_count() > 0  # what the command loaded is out of the collector's reach
    finally:
        gc.unfreeze()
    printed = capsys.readouterr()
    assert "Usage" in (printed.out if code == 0 else printed.err)


def test_a_directory_without_a_catalog_is_one_line_and_stays_absent(tmp_path: Path) -> None:
    """Only ingest/discover/plan create a catalog: a mistyped --catalog is said, not made."""
    missing = tmp_path / "no-such-catalog"
    for args in (["query", "select 1"], ["cache", "status"], ["migrate"], ["views"]):
        r = run(*args, "--catalog", str(missing))
        assert r.exit_code == 1, (args, r.output)
        assert r.output.strip() == (
            f"error: no catalog at {missing} (check --catalog / CVCATALOG_HOME; "
            "`cvcatalog ingest` creates one)"
        ), args
    assert not missing.exists()
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    r = run("query", "select 1", "--catalog", str(a_file))
    assert (
        r.exit_code == 1
        and r.output.strip() == f"error: {a_file} is a file, not a catalog directory"
    )


def test_cache_clear_without_a_terminal_needs_yes(seeded: Any, catalog_dir: Path) -> None:
    cat = str(catalog_dir)
    assert run("ingest", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01",
               "--timezone", "UTC", "--catalog", cat, "--no-progress").exit_code == 0  # fmt: skip
    r = runner.invoke(app, ["cache", "clear", "--catalog", cat], input="y\n")
    assert r.exit_code == 1
    assert "give --yes (no terminal to ask on)" in r.output
    n = run("query", "select count(*) as n from wydot_bsm", "--format", "json", "--catalog", cat)
    assert json.loads(n.output)[0]["n"] > 0  # nothing was deleted


def test_a_second_detached_server_in_one_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recorded server is alive (this process's group stands in for it): serve --detach
    refuses before starting anything, and names what runs."""
    monkeypatch.chdir(tmp_path)
    state = tmp_path / ".sandbox" / "server.json"
    state.parent.mkdir()
    state.write_text(json.dumps({"pid": os.getpgrp(), "port": 5999}))
    r = run("sandbox", "serve", "--detach", "--port", "5998")
    assert r.exit_code == 1
    assert "already running here at http://127.0.0.1:5999" in r.output
    assert json.loads(state.read_text())["port"] == 5999  # the record is kept
    state.write_text(json.dumps({"pid": 2**22 + 12345, "port": 5999}))  # no such process
    assert detached_running(state) is None


def test_shell_refuses_a_published_catalog_in_one_line() -> None:
    r = run("shell", "--catalog", "s3://bucket/prefix")
    assert r.exit_code == 1
    assert r.output.strip() == (
        "error: `cvcatalog shell` opens a local catalog; query a published one with "
        "`cvcatalog query --catalog s3://...`"
    )


def test_flag_conflicts_and_a_published_catalog_are_one_line_before_any_output(
    catalog_dir: Path,
) -> None:
    Catalog(catalog_dir).db.initialise()  # an empty catalog (a read creates none)
    r = run("query", "select 1", "--snapshot", "1", "--as-of", "2021-04-01", "--catalog",
            str(catalog_dir))  # fmt: skip
    assert r.exit_code == 1 and r.output == "error: give --snapshot or --as-of, not both\n"
    r = run("ingest", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01",
            "--catalog", "s3://cv-published/wydot")  # fmt: skip
    assert r.exit_code == 1
    assert r.output.startswith("error: s3://cv-published/wydot is a published catalog on S3")
    assert r.output.count("\n") == 1  # no progress bar drawn before it


def test_sandbox_stop_ends_the_recorded_server_and_forgets_a_stale_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    state = tmp_path / ".sandbox" / "server.json"
    state.parent.mkdir()
    for stale in ("{not json", json.dumps({"pid": 2**22 + 12345, "port": 5999})):
        state.write_text(stale)
        r = run("sandbox", "stop")
        assert r.exit_code == 0 and r.output == "no detached sandbox server was running\n"
        assert not state.exists()
    alive = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        state.write_text(json.dumps({"pid": alive.pid, "port": 5999}))
        r = run("sandbox", "stop")
        assert r.exit_code == 0 and r.output == "stopped\n"
        assert alive.wait(timeout=10) != 0 and not state.exists()
    finally:
        alive.kill()
