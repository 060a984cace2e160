"""The command line, through Typer's CliRunner and a real local endpoint."""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.testing import CliRunner

import cvcatalog
from cvcatalog import catalog as catalog_module
from cvcatalog.catalog import Catalog
from cvcatalog.cli import output
from cvcatalog.cli.main import app, main
from cvcatalog.cli.output import (
    Format,
    ResultStream,
    _box_table,
    arrow_rows,
    render,
    unique_names,
)
from cvcatalog.cli.progress import ExportBar, RichProgress
from cvcatalog.exceptions import CatalogError, ConfigError, QueryError, S3UnavailableError
from cvcatalog.ops.cache import summarise_status
from cvcatalog.pipeline.report import Outcome
from cvcatalog.sandbox import replica
from cvcatalog.sandbox import server as server_module
from cvcatalog.sandbox.ngsim import generate_ngsim
from cvcatalog.sandbox.replica import seed_replica
from cvcatalog.sandbox.server import detached_running, start_server
from cvcatalog.sources import cvpilot
from cvcatalog.sources.bucket import BUCKET

runner = CliRunner()
_INGEST = ("ingest", "--source", "wydot", "--type", "BSM")


def run(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def seeded(s3_client: Any) -> Any:
    """Two days of a few objects (most hours empty): each object is a PUT, a GET and a file to
    convert, and the tests count what was seeded, not how much."""
    return seed_replica(
        s3_client,
        date(2021, 4, 1),
        date(2021, 4, 2),
        records_per_hour=20,
        files_per_hour=1,
        empty_hour_rate=0.75,
        malformed_per_day=1,
    )


@pytest.fixture(scope="module")
def one_day(module_s3: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalog of one ingested day (wydot/BSM 2021-04-01) that the tests only read."""
    seed_replica(module_s3, date(2021, 4, 1), date(2021, 4, 1), records_per_hour=10,
                 files_per_hour=1)  # fmt: skip
    home = tmp_path_factory.mktemp("one-day") / "catalog"
    assert Catalog(home).ingest("wydot", "BSM", "2021-04-01", timezone="UTC", rate_limit=0).ok
    return home


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
    status = json.loads(r.stdout)
    assert [s["status"] for s in status] == ["complete", "complete"]
    assert sum(s["quarantined"] for s in status) == seeded.malformed
    # a catalog of hundreds of days: one row a table
    r = run("cache", "status", "--summary", "--catalog", cat, "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == [
        {
            "table": "wydot/BSM",
            "partitions": 2,
            "statuses": "complete 2",
            "rows": sum(s["rows"] for s in status),
            "quarantined": seeded.malformed,
            "parquet_bytes": sum(s["parquet_bytes"] for s in status),
            "source_objects": sum(s["source_objects"] for s in status),
            "first_day": "2021-04-01",
            "last_day": "2021-04-02",
            "last_accessed": max(s["last_accessed"] for s in status),
        }
    ]
    r = run("cache", "status", "--summary", "--catalog", cat)
    assert "wydot/BSM" in r.stdout and "2 partitions (2 complete)" in r.output

    r = run("cache", "verify", "--catalog", cat)
    assert r.exit_code == 0 and "0 mismatched" in r.output

    r = run("views", "--catalog", cat, "--format", "csv")
    lines = r.stdout.splitlines()  # the tables under a `view` column before
    assert lines[0] == "name,kind" and {"wydot_bsm,table", "wydot_bsm_socrata,view"} <= set(lines)

    r = run("cache", "clear", "--source", "wydot", "--catalog", cat, "--yes")
    assert r.exit_code == 0 and "cleared 2 partitions" in r.output
    r = run("query", "select count(*) as n from wydot_bsm", "--catalog", cat, "--format", "json")
    assert json.loads(r.output) == [{"n": 0}]


def test_a_query_table_holds_only_the_rows_it_shows(one_day: Path) -> None:
    # the table format shows --max-rows rows: the rest of the result streams by, counted, not
    # held (a `select *` of a whole table held every row to show 1,000)
    cat = Catalog(one_day)
    head, total = cat.query_head("select i from range(250000) t(i) order by i", 3)
    assert head.column("i").to_pylist() == [0, 1, 2] and total == 250_000
    r = run("query", "select i from range(250000) t(i)", "--max-rows", "2", "--catalog",
            str(one_day))  # fmt: skip
    assert r.exit_code == 0 and "(250,000 rows; showing 2;" in r.output
    # a query that fails after its first batches is QueryError's one line, not an OSError
    bad = "select cast(case when i > 3000000 then 'x' else '1' end as int) from range(5000000) t(i)"
    for read in (cat.query_arrow, lambda sql: cat.query_head(sql, 10)):
        with pytest.raises(QueryError, match="Could not convert string 'x' to INT32"):
            read(bad)
    r = runner.invoke(app, ["query", bad, "--catalog", str(one_day)])
    assert r.exit_code == 1 and "unexpected" not in r.output


#: cvcatalog commands in one child process (argv: the catalog, then each command's arguments
#: as JSON); prints the modules they loaded that they need not
_READS_CHILD = """
import json, sys
from cvcatalog.cli.main import main
catalog, commands = sys.argv[1], json.loads(sys.argv[2])
for args in commands:
    sys.argv = ["cvcatalog", *args, "--catalog", catalog]
    try:
        main()
    except SystemExit as e:
        assert not e.code, (args, e.code)
print("loaded:", sorted(m for m in ("pandas",) if m in sys.modules))
"""


def test_reading_a_local_catalog_loads_no_pandas(one_day: Path) -> None:
    """DuckDB's Python client imports pandas (~0.2 s of a 0.9 s `cvcatalog query`) at the
    first statement that binds a Python value; opening a catalog binds none, nor do `views`
    and `cache status`, so they and a query whose SQL binds none (its table printed from
    Arrow) never load it."""
    sql = "select count(*) as n, count(distinct date) as days from wydot_bsm"
    commands = [["query", sql], ["views"], ["cache", "status"]]
    out = subprocess.run(
        [sys.executable, "-c", _READS_CHILD, str(one_day), json.dumps(commands)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[-1] == "loaded: []"
    n, days = Catalog(one_day).query(sql).iloc[0]
    assert n > 0 and days == 1
    assert any(re.search(rf"\b{n}\b.*\b1\b", line) for line in lines), out.stdout
    assert any(re.search(r"\bwydot_bsm\b.*\btable\b", line) for line in lines), out.stdout
    assert any("wydot/BSM/2021/04/01" in line and "complete" in line for line in lines)


def test_query_is_read_only(catalog_dir: Path) -> None:
    Catalog(catalog_dir).db.initialise()  # an empty catalog (a read creates none)
    r = run("query", "create table evil as select 1", "--catalog", str(catalog_dir))
    assert r.exit_code == 1
    assert "read-only" in r.output
    assert "Traceback" not in r.output
    # `select 1; select 2` printed 2 alone: rows of a statement before the last were dropped
    r = run("query", "select 1 as a; select 2 as b", "--catalog", str(catalog_dir))
    assert r.exit_code == 1 and r.stdout == "", r.output
    assert r.stderr.startswith("error: 2 statements in one query, and only the last one's rows")
    assert "run the SELECT before it on its own" in r.stderr
    r = run("query", "create temp table t as select 7 as x; select x from t", "--read-write",
            "--catalog", str(catalog_dir), "--format", "csv")  # fmt: skip
    assert r.exit_code == 0 and r.stdout == "x\n7\n", r.output


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
        (["--source", "wydot", "--type", "BSM", "--days-back", "0"], "--days-back must be 1 or"),
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
        (["--source", "wydot", "--type", "BSM", "--start", "April 1st"], "--start must be a date"),
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


def test_sandbox_seed_checks_its_arguments_once(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """validate_spec is the one check of a seed's arguments, made once: it ran three times (the
    command, seed_spec, hour_contexts), beside the command's own checks of the same numbers."""
    checked: list[Any] = []
    check = replica.validate_spec

    def counted(*args: Any, **kwargs: Any) -> None:
        checked.append(args)
        check(*args, **kwargs)

    monkeypatch.setattr(replica, "validate_spec", counted)
    r = run("sandbox", "seed", "--start", "2021-04-01", "--records-per-hour", "1")
    assert r.exit_code == 0, r.output
    assert len(checked) == 1
    checked.clear()
    seed_replica(None, date(2021, 4, 1), date(2021, 4, 1), records_per_hour=0)  # no request
    assert len(checked) == 1


def test_sandbox_argument_lines_are_the_librarys_in_the_flags_words(tmp_path: Path) -> None:
    """The checks of `sandbox seed`, `ngsim` and `serve` are the library's (replica.validate_spec,
    generate_ngsim, start_server), which name an argument as their caller spells it: the
    command's line is the library's with the flag for the keyword (each number was checked
    in the command and again, in other words, in the library; --rows only in the command)."""
    day = date(2021, 4, 1)
    out = tmp_path / "n.csv"
    for library, keyword, args in [
        (lambda: seed_replica(None, day, day, files_per_hour=0), "files_per_hour",
         ["seed", "--start", "2021-04-01", "--files-per-hour", "0"]),
        (lambda: seed_replica(None, day, day, malformed_per_day=-1), "malformed_per_day",
         ["seed", "--start", "2021-04-01", "--malformed-per-day", "-1"]),
        (lambda: generate_ngsim(out, 10, bad_rows=-1), "bad_rows",
         ["ngsim", "--out", str(out), "--rows", "10", "--bad-rows", "-1"]),
        (lambda: generate_ngsim(out, 0), "rows", ["ngsim", "--out", str(out), "--rows", "0"]),
        (lambda: start_server(port=70000), "port", ["serve", "--port", "70000"]),
    ]:  # fmt: skip
        with pytest.raises(ConfigError) as raised:
            library()
        line = str(raised.value)
        assert line.startswith(f"{keyword} must be "), line
        flag = "--" + keyword.replace("_", "-")
        r = run("sandbox", *args)
        assert r.exit_code == 1 and r.output == f"error: {flag}{line[len(keyword) :]}\n"
    assert not out.exists()


_VALID_PAIRS = (
    "valid pairs: wydot/BSM, wydot/TIM, wydot_backup/BSM, wydot_backup/TIM, thea/BSM, thea/TIM, "
    "thea/SPAT, nycdot/EVENT"
)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--start", "2021-04-01", "--source", "wydot", "--type", "SPAT"],
         f"wydot/SPAT is not published by the bucket; {_VALID_PAIRS}"),
        (["--start", "nope"], "--start must be a date like 2021-04-01, got 'nope'"),
        (["--start", "2021-04-01", "--end", "4/2"],
         "--end must be a date like 2021-04-01, got '4/2'"),
        (["--start", "2021-04-05", "--end", "2021-04-01"],
         "end date 2021-04-01 is before start date 2021-04-05"),
        (["--start", "2021-04-01", "--empty-day", "x"],
         "--empty-day must be a date like 2021-04-01, got 'x'"),
        (["--start", "2021-04-01", "--end", "2021-04-02", "--empty-day", "2021-04-08"],
         "--empty-day 2021-04-08 is outside the days seeded, 2021-04-01..2021-04-02"),
        (["--start", "2021-04-01", "--files-per-hour", "0"], "--files-per-hour must be 1 or more, got 0"),
        (["--start", "2021-04-01", "--malformed-per-day", "-1"], "--malformed-per-day must be 0 or more, got -1"),
        # sizes the local endpoint cannot hold (it ran for hours, then out of memory)
        (["--start", "2021-01-01", "--end", "2021-12-31", "--records-per-hour", "10000"],
         "--records-per-hour 10,000 for 365 day(s) of 1 source/type pair(s) is 87,600,000 "
         "records: more than the 10,000,000 one seed writes (the local endpoint keeps every "
         "object in memory); seed fewer days or fewer an hour"),
        (["--start", "2021-04-01", "--source", "thea", "--type", "BSM", "--type", "TIM",
          "--files-per-hour", "30000", "--records-per-hour", "30000"],
         "--files-per-hour 30,000 for 1 day(s) of 2 source/type pair(s) is 1,440,000 objects: "
         "more than the 1,000,000 one seed writes (the local endpoint keeps every object in "
         "memory); seed fewer days or fewer an hour"),
        (["--start", "2021-04-01", "--report", "."],
         ". is a directory: the output is written whole under a temporary name and renamed "
         "into place; give a file name"),
    ],
)  # fmt: skip
def test_sandbox_seed_bad_arguments_are_one_line_before_any_request(
    args: list[str], line: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As ingest reports them: plain, exit 1, and before the endpoint is asked anything (nothing
    listens on port 9: a request would say it cannot reach it, after retries)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    r = run("sandbox", "seed", *args)
    assert r.exit_code == 1
    assert r.output == f"error: {line}\n"


def test_sandbox_ngsim_and_serve_bad_arguments_are_one_line(tmp_path: Path) -> None:
    out = str(tmp_path / "n.csv")
    for args, line in [
        (["ngsim", "--out", out, "--rows", "10", "--bad-rows", "-1"],
         "--bad-rows must be 0 or more, got -1"),
        (["ngsim", "--out", out, "--rows", "10", "--location", "mars"],
         "unknown NGSIM location 'mars'; expected one of us-101, lankershim, i-80, peachtree"),
        (["ngsim", "--out", str(tmp_path), "--rows", "10"],
         f"{tmp_path} is a directory: the output is written whole under a temporary name "
         "and renamed into place; give a file name"),
        (["serve", "--port", "99999"],
         "--port must be 0 (any free port) to 65535, got 99999"),
    ]:  # fmt: skip
        r = run("sandbox", *args)
        assert r.exit_code == 1, r.output
        assert r.output == f"error: {line}\n"
    assert not Path(out).exists()  # refused before writing
    # `.sandbox` a file where a detached server keeps its record: one line, and stop says
    # none ran (both were "unexpected" errors)
    (tmp_path / ".sandbox").write_text("mine")
    with contextlib.chdir(tmp_path):
        r = run("sandbox", "serve", "--detach", "--port", "0")
        assert (r.exit_code, r.output) == (1, "error: .sandbox is a file where `sandbox serve "
                                           "--detach` keeps its record and log (server.json, "
                                           "moto.log); move it away\n")  # fmt: skip
        r = run("sandbox", "stop")
        assert (r.exit_code, r.output) == (0, "no detached sandbox server was running\n")
    assert (tmp_path / ".sandbox").read_text() == "mine"
    # a site spelled as ingest --location takes it
    r = run("sandbox", "ngsim", "--out", out, "--rows", "10", "--location", "US_101")
    assert r.exit_code == 0, r.output
    assert {ln.rsplit(",", 1)[-1] for ln in Path(out).read_text().splitlines()[1:]} == {"us-101"}


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/b0/n.csv", "s3://b0", "s3://b0/", "s3:///n.csv", "b0/n.csv",
            "s3://B 0/n.csv", "s3://b0/a/../n.csv"],
)  # fmt: skip
def test_sandbox_ngsim_checks_its_destination_before_writing(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sandbox ngsim --to URL` wrote the CSV (possibly GBs), then refused the URL: now a bad
    destination, or no local endpoint to send it to, is one line before anything is written
    (the endpoint is never asked: nothing listens on port 9)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    out = tmp_path / "n.csv"
    r = run("sandbox", "ngsim", "--out", str(out), "--rows", "10", "--to", url)
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.startswith(f"error: --to must be s3://bucket/key, got {url!r}")
    assert len(r.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
    for var in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    r = run("sandbox", "ngsim", "--out", str(out), "--rows", "10", "--to", "s3://b0/n.csv")
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.startswith("error: no local endpoint: set AWS_ENDPOINT_URL_S3 ")
    assert r.stderr.count("\n") == 1 and list(tmp_path.iterdir()) == []


def test_sandbox_seed_report_that_cannot_be_written_is_one_line(
    s3_endpoint: str, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("")
    report = tmp_path / "file" / "seed.json"  # a file where a directory should be
    r = run("sandbox", "seed", "--start", "2021-04-01", "--records-per-hour", "1",
            "--report", str(report))  # fmt: skip
    assert r.exit_code == 1  # before seeding (it was after, the bucket filled for nothing)
    assert r.output == f"error: cannot write {report}: {tmp_path / 'file'} is a file, not a folder\n"


@pytest.mark.parametrize(
    ("flags", "pairs"),
    [
        # nycdot alone: its one type (it said "nycdot/BSM is not published by the bucket")
        (["--source", "nycdot"], {"nycdot/EVENT"}),
        (["--source", "wydot", "--source", "nycdot"], {"wydot/BSM", "nycdot/EVENT"}),
        # each source the types given that it publishes (it refused wydot/SPAT)
        (["--source", "thea", "--source", "wydot", "--type", "SPAT", "--type", "TIM"],
         {"thea/SPAT", "thea/TIM", "wydot/TIM"}),
    ],
)  # fmt: skip
def test_sandbox_seed_seeds_the_pairs_the_bucket_publishes(
    s3_client: Any, tmp_path: Path, flags: list[str], pairs: set[str]
) -> None:
    report = tmp_path / "seed.json"
    r = run("sandbox", "seed", "--start", "2021-04-01", "--records-per-hour", "2",
            "--files-per-hour", "1", "--report", str(report), *flags)  # fmt: skip
    assert r.exit_code == 0, r.output
    seeded = json.loads(report.read_text())["partitions"]
    assert {"/".join(k.split("/")[:2]) for k in seeded} == pairs
    keys = s3_client.list_objects_v2(Bucket=BUCKET)
    assert {"/".join(o["Key"].split("/")[:2]) for o in keys.get("Contents", [])} == pairs


def test_note_lines_are_never_wrapped_and_failures_are_counted_not_printed() -> None:
    """The console wraps at its width (80 without a terminal); a note is one line however
    long, so it reads (and greps) whole. A failed day is the summary's line (stdout): the
    progress counts it on its bar, it does not print it a second time."""
    console = Console(file=io.StringIO(), width=40)
    bar = RichProgress(console)
    bar.plan(["wydot/BSM/2021/04/01", "wydot/BSM/2021/04/02"], [])
    error = "cannot create the S3 client: Invalid endpoint: notaurl (a long reason)"
    bar.finished(Outcome("wydot/BSM/2021/04/01", "failed", error=error))
    bar.note("wydot/BSM/2021/04/02: a transient error of some length; retrying in 1.0s")
    assert console.file.getvalue().splitlines() == [  # type: ignore[attr-defined]
        # "note: " as every other note (and as with --no-progress); it said "note "
        "note: wydot/BSM/2021/04/02: a transient error of some length; retrying in 1.0s",
    ]
    assert bar.days is not None
    assert bar.bar.tasks[bar.days].fields["detail"] == "1/2 days, 1 failed"
    bar.converting("wydot/BSM/2021/04/02")
    assert bar.bar.tasks[bar.days].fields["detail"] == "1/2 days, 1 failed, wydot/BSM/2021/04/02"


def test_a_failed_day_is_reported_once(
    seeded: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed day's line was printed by the progress (stderr) and by the summary (stdout):
    twice in a terminal. It is the summary's alone now, with or without the progress."""
    real_one, real_group = cvpilot.convert_partition, cvpilot.convert_partitions

    def check(files: Any) -> None:
        if any(f.key.startswith("wydot/BSM/2021/04/02/") for f in files):
            raise OSError(5, "Input/output error")

    def one(con: Any, schema: Any, files: Any, *a: Any, **kw: Any) -> Any:
        check(files)
        return real_one(con, schema, files, *a, **kw)

    def group(con: Any, schema: Any, parts: Any, **kw: Any) -> Any:
        check([f for files, _ in parts for f in files])
        return real_group(con, schema, parts, **kw)

    monkeypatch.setattr(cvpilot, "convert_partition", one)
    monkeypatch.setattr(cvpilot, "convert_partitions", group)
    line = "  failed wydot/BSM/2021/04/02: OSError: [Errno 5] Input/output error"
    for progress in ([], ["--no-progress"]):
        r = run(*_INGEST, "--start", "2021-04-01", "--end", "2021-04-02", "--catalog",
                str(catalog_dir), "--rate-limit", "0", *progress)  # fmt: skip
        assert r.exit_code == 1
        assert r.stdout.splitlines()[1:] == [line]
        assert "failed" not in r.stderr and "Input/output error" not in r.stderr


def test_an_error_that_ends_the_run_follows_the_report_of_what_it_did(
    seeded: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The endpoint gone after the first day: the error's line alone was printed, the day
    committed before it not on screen. The run's report first (stdout), then the line."""
    real = cvpilot.CvPilotDays.fetch

    def fetch(self: Any, unit: Any, run: Any) -> Any:
        if unit.day == date(2021, 4, 2):  # once the first day is done
            for _ in range(600):
                if any(o.status == "complete" for o in run.summary.outcomes):
                    break
                time.sleep(0.05)
            raise S3UnavailableError("cannot reach the S3 endpoint (test)")
        return real(self, unit, run)

    monkeypatch.setattr(cvpilot.CvPilotDays, "fetch", fetch)
    r = run(*_INGEST, "--start", "2021-04-01", "--end", "2021-04-02", "--catalog",
            str(catalog_dir), "--rate-limit", "0")  # fmt: skip
    assert r.exit_code == 1
    assert r.stderr.strip().splitlines() == ["error: cannot reach the S3 endpoint (test)"]
    assert re.match(r"wydot/BSM 2021-04-01\.\.2021-04-02 \(.*\): 1 complete,", r.stdout)
    r = run(*_INGEST, "--start", "2021-04-01", "--end", "2021-04-02", "--catalog",
            str(catalog_dir.parent / "another"), "--rate-limit", "0", "-f", "json")  # fmt: skip
    assert r.exit_code == 1
    report = json.loads(r.stdout)[0]
    assert report["status"] == "failed" and report["days_complete"] == 1
    assert report["errors"] == ["run stopped: cannot reach the S3 endpoint (test)"]


def test_python_dash_m_entry_point() -> None:
    """...and a command's start imports none of the heavy libraries only some commands use
    (pandas ~0.15 s: splits and pandas results import it when they run)."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cvcatalog", "--help"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    for command in ("ingest", "query", "cache", "sandbox"):
        assert command in out.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines()}
    assert "duckdb" in imported  # the list is what it seems
    assert not imported & {"pandas", "dask", "distributed", "matplotlib", "pyproj"}


#: every way Python starts a process, recorded instead (then the command line's modules load)
_NO_CHILD_WHILE_LOADING = """
import os, subprocess, sys

started = []
class Recorded(subprocess.Popen):
    def __init__(self, args, *a, **k):
        started.append(args)
        raise OSError("no process")
subprocess.Popen = Recorded
os.fork = lambda: started.append("fork")
os.posix_spawn = lambda *a, **k: started.append(a[1])
import cvcatalog.cli.main
print(started)
"""


def test_loading_the_command_line_starts_no_process() -> None:
    """Every command imports cvcatalog.cli.main first: a child process started there (e.g.
    ctypes.util.find_library's `ldconfig -p`) costs every command a fork of the interpreter,
    and a test that watches the CLI's children for its moto server took it for the server."""
    out = subprocess.run(
        [sys.executable, "-c", _NO_CHILD_WHILE_LOADING], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


#: a Ctrl-C that lands while the command line's modules load (here: as DuckDB's starts to)
_CTRL_C_WHILE_LOADING = """
import os, signal, sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "duckdb":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, CtrlC())
sys.argv = ["cvcatalog", "--help"]
from cvcatalog.cli.entry import main
main()
"""


def test_ctrl_c_while_the_modules_load_is_the_one_line() -> None:
    """Not a KeyboardInterrupt traceback from inside an import (the first ~0.6 s)."""
    out = subprocess.run(
        [sys.executable, "-c", _CTRL_C_WHILE_LOADING], capture_output=True, text=True
    )
    assert (out.returncode, out.stdout, out.stderr) == (130, "", "interrupted\n")
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert 'cvcatalog = "cvcatalog.cli.entry:main"' in pyproject  # the command's, the same


def test_version_names_cvcatalog_duckdb_and_python() -> None:
    r = run("--version")
    assert r.exit_code == 0
    python = ".".join(str(n) for n in sys.version_info[:3])
    assert r.stdout == (
        f"cvcatalog {cvcatalog.__version__} (DuckDB {duckdb.__version__}, Python {python})\n"
    )
    assert run("runs", "--version").exit_code == 2  # the program's option, not a command's


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
                 "Catalog directory [env: CVCATALOG_HOME; default: ./data/catalog]"):  # fmt: skip
        assert text in flat


def test_validation_report_counts_each_rule(s3_client: Any, catalog_dir: Path) -> None:
    rep = seed_replica(s3_client, date(2021, 4, 1), date(2021, 4, 2), records_per_hour=20,
                       files_per_hour=1, malformed_per_day=3)
    cat = str(catalog_dir)
    r = run("ingest", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01", "--end",
            "2021-04-02", "--catalog", cat, "--rate-limit", "0", "--no-progress")
    assert r.exit_code == 0, r.output
    r = run("report", "validation", "--catalog", cat, "--format", "json")
    rows = json.loads(r.stdout)
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
    r = run("report", "validation", "--summary", "--catalog", cat, "--format", "json")
    summed = {(x["kind"], x["rule"]): x for x in json.loads(r.stdout)}
    for rule, n in by_rule.items():
        days = sorted({x["date"] for x in quarantined if x["rule"] == rule})
        assert summed["quarantine", rule]["count"] == n
        assert summed["quarantine", rule]["partitions"] == len(days)
        assert (summed["quarantine", rule]["first_day"], summed["quarantine", rule]["last_day"]) == (days[0], days[-1])
    assert len(summed) == len({(x["kind"], x["rule"]) for x in rows})
    # a run id the catalog does not know is a mistake, not an empty report
    for args in (["report", "validation", "--run", "NOPE"], ["runs", "show", "NOPE"]):
        r = run(*args, "--catalog", cat)
        assert r.exit_code == 1
        assert r.output == "error: no ingest run 'NOPE' in this catalog (see `cvcatalog runs`)\n"
    # a run asked for a source or type it did not ingest: one line naming what it did, not an
    # empty report
    run_id = rows[0]["run_id"]
    for asked, hint in (
        (["--source", "thea"], "thea (see `cvcatalog runs --source thea`)"),
        (["--type", "TIM"], "TIM (see `cvcatalog runs`)"),
        (["--source", "wydot", "--type", "TIM"], "wydot/TIM (see `cvcatalog runs --source wydot`)"),
    ):
        r = run("report", "validation", "--run", run_id, *asked, "--catalog", cat, "-f", "json")
        assert r.exit_code == 1 and r.stdout == ""
        assert r.stderr == f"error: run {run_id} ingested wydot/BSM: it holds no validation of {hint}\n"
    r = run("report", "validation", "--run", run_id, "--source", "wydot", "--type", "BSM",
            "--catalog", cat)  # fmt: skip
    assert r.exit_code == 0 and f"{rep.malformed} quarantined in run {run_id}" in r.output


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
    thawed_heap: None,
    argv: list[str],
    code: int,
) -> None:
    monkeypatch.setattr(sys, "argv", ["cvcatalog", *argv])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == code
    assert gc.get_freeze_count() > 0  # what the command loaded is out of the collector's reach
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


def _stand_in_server() -> subprocess.Popen[bytes]:
    """A process run as the sandbox server is run (its module and port on its command line),
    which sleeps."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", server_module.SERVER_MODULE,
         "-p", "5999"], start_new_session=True,
    )  # fmt: skip


def test_a_second_detached_server_in_one_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recorded server is alive (a process run as the server is run stands in for it):
    serve --detach refuses before starting anything, and names what runs."""
    monkeypatch.chdir(tmp_path)
    state = tmp_path / ".sandbox" / "server.json"
    state.parent.mkdir()
    stand_in = _stand_in_server()
    try:
        state.write_text(json.dumps({"pid": stand_in.pid, "port": 5999}))
        r = run("sandbox", "serve", "--detach", "--port", "5998")
        assert r.exit_code == 1
        assert "already running here at http://127.0.0.1:5999" in r.output
        assert json.loads(state.read_text())["port"] == 5999  # the record is kept
    finally:
        stand_in.kill()
        stand_in.wait()
    state.write_text(json.dumps({"pid": 2**22 + 12345, "port": 5999}))  # no such process
    assert detached_running(state) is None
    state.write_text(json.dumps({"pid": os.getpgrp(), "port": 5999}))  # alive, not a server
    assert detached_running(state) is None


def test_compact_names_the_flag_it_rejects(catalog_dir: Path) -> None:
    """`compact --rows-per-file 0` said "rows_per_file and row_group_size must be positive":
    the library's words, one of them no option of the command."""
    Catalog(catalog_dir).db.initialise()
    r = run("compact", "--rows-per-file", "0", "--catalog", str(catalog_dir))
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr == "error: --rows-per-file must be 1 or more, got 0\n"


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


#: commands that refuse a published catalog (s3://): they write it or hand it to DuckDB
LOCAL_ONLY = {
    "ingest", "shell", "migrate", "cache clear", "cache evict", "cache verify", "compact",
    "experiments unpin", "publish", "discover", "plan", "sql session",
}  # fmt: skip


def _catalog_helps() -> dict[str, str]:
    """Every command's --catalog help, by its command line ("cache evict")."""
    out: dict[str, str] = {}

    def walk(cmd: Any, path: list[str]) -> None:
        if hasattr(cmd, "commands"):  # a group (typer's own click)
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
            return
        for p in cmd.params:
            if "--catalog" in getattr(p, "opts", []):
                out[" ".join(path)] = str(getattr(p, "help", ""))

    walk(typer.main.get_command(app), [])
    return out


def test_catalog_help_offers_s3_only_to_the_commands_that_read_a_published_catalog() -> None:
    helps = _catalog_helps()
    assert set(helps) >= LOCAL_ONLY and {"query", "views", "cache status"} <= set(helps)
    for command, text in helps.items():
        published = "s3://bucket/prefix of a published catalog (read-only)" in text
        assert published == (command not in LOCAL_ONLY), (command, text)
        assert text.startswith("Catalog directory") and "CVCATALOG_HOME" in text, command
    r = run("migrate", "--help")
    assert r.exit_code == 0 and "s3://" not in r.output


def test_query_help_says_an_old_catalog_is_migrated_not_that_nothing_changes() -> None:
    text = " ".join(run("query", "--help").output.split())
    assert "never modified" not in text.replace("data is never modified", "")
    assert "0.1 is migrated first" in text
    text = " ".join(run("migrate", "--help").output.split())
    assert "reads too" in text and "first ingest or query" not in text


def test_split_help_offers_only_the_types_it_can_split() -> None:
    """`split --type` said BSM | TIM | SPAT | EVENT, but only records with a vehicle id and
    positions split (TIM, SPAT and EVENT are refused), and a CV source needs the type."""
    text = " ".join(run("split", "--help").output.split())
    assert "BSM | TRAJECTORY" in text and not re.search(r"\b(TIM|SPAT|EVENT)\b", text)


def _help_records() -> list[tuple[str, Any, tuple[str, str]]]:
    """(command line, parameter, its line in --help) of every command, group and
    subcommand: what `cvcatalog X --help` prints for each parameter."""
    from typer._click.core import Context

    out: list[tuple[str, Any, tuple[str, str]]] = []

    def walk(cmd: Any, path: list[str], parent: Any) -> None:
        ctx = Context(cmd, info_name=path[-1] if path else "cvcatalog", parent=parent)
        for p in cmd.get_params(ctx):
            record = p.get_help_record(ctx)
            if record is not None:
                out.append((" ".join(path) or "cvcatalog", p, record))
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name], ctx)

    walk(typer.main.get_command(app), [], None)
    return out


#: what typer prints for a value when nothing names it: the annotation's Python type
PYTHON_TYPE = re.compile(r"<(str|int|float|bool|path|list)\b|list\[|\[str|\[int|\{")


def test_help_names_every_value_for_the_user_not_as_a_python_type() -> None:
    """`--path <list[str]>`, `--seed <int>`: every option of every command, also ones added
    later, names its value with a word (DATE, SOURCE, SEED) or its choices."""
    records = _help_records()
    assert len({c for c, _, _ in records}) > 30  # the walk reached the subcommands
    for command, param, (name, _) in records:
        if param.param_type_name == "option":
            assert not PYTHON_TYPE.search(name), (command, name)
    text = run("sandbox", "seed", "--help").output
    assert "--empty-day DATE" in text and "--source SOURCE" in text and "list[" not in text
    assert "--path PATH" in run("ingest", "--help").output


def test_arguments_are_named_in_capitals_without_a_python_type() -> None:
    """`query [OPTIONS] {sql}` and `sql <str>`: every argument of every command is shown as
    click shows one, in the usage line and in the help's Arguments section."""
    from typer._click.core import Context

    arguments = [(c, p, rec) for c, p, rec in _help_records() if p.param_type_name == "argument"]
    assert {c for c, _, _ in arguments} >= {"query", "runs show", "experiments show"}
    for command, param, (name, _) in arguments:
        assert re.fullmatch(r"[A-Z][A-Z_]*", name), (command, name)
        pieces = param.get_usage_pieces(Context(typer.main.get_command(app)))
        assert pieces == [name], (command, pieces)
    assert "query [OPTIONS] SQL\n" in run("query", "--help").output
    assert "runs show [OPTIONS] RUN_ID\n" in run("runs", "show", "--help").output


def test_every_option_of_every_command_says_what_it_is_for() -> None:
    """`compact --rows-per-file`, `sandbox seed --seed` had no text in --help: every option
    (--help aside) of every command, also ones added later, has one."""
    silent = [
        (command, param.opts)
        for command, param, _ in _help_records()
        if param.param_type_name == "option" and "--help" not in param.opts
        and not (param.help or "").strip()
    ]  # fmt: skip
    assert silent == []
    text = " ".join(run("sandbox", "seed", "--help").output.split())
    assert "--records-per-hour N Records in each hour of each source and type" in text


@pytest.mark.parametrize("command", [["plan"], ["ingest", "--start", "2021-04-01"]])
def test_no_source_is_one_line_naming_the_flags(tmp_path: Path, command: list[str]) -> None:
    r = run(*command, "--catalog", str(tmp_path / "cat"))
    assert r.exit_code == 1
    assert r.output == "error: give --source and --type (or a --config that names them)\n"
    assert not (tmp_path / "cat").exists()


@pytest.mark.parametrize("command", ["ingest", "plan"])
@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (["--source", "WYDOT"], "--type is needed for --source wydot (BSM, TIM)"),
        (["--source", "thea"], "--type is needed for --source thea (BSM, TIM, SPAT)"),
        (["--type", "BSM"], "give --source (or a --config that names it)"),
        (["--source", "mars"], "unknown source 'mars'; expected one of wydot, wydot_backup, "),
    ],
)
def test_a_missing_type_or_source_is_one_line_naming_what_is_missing(
    tmp_path: Path, command: str, flags: list[str], line: str
) -> None:
    """`ingest --source wydot` said "give --source and --type" to a user who gave the source
    (nycdot, of one type, needs none: test_nycdot)."""
    r = run(command, *flags, "--start", "2021-04-01", "--catalog", str(tmp_path / "cat"))
    assert r.exit_code == 1 and r.output.startswith(f"error: {line}"), r.output
    assert r.output.count("\n") == 1 and not (tmp_path / "cat").exists()


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (["--rate-limit", "-1"], "--rate-limit must be 0 or more, got -1"),
        (["--start", "2021-4-5"], "--start must be a date like 2021-04-01, got '2021-4-5'"),
        (["--start", "2021-04-05", "--end", "04/06"], "--end must be a date like 2021-04-01"),
        (["--end", "2021-04-05"], "--end needs --start (or give --days-back)"),
        (["--days-back", "0"], "--days-back must be 1 or more, got 0"),
        (["--timezone", "Mars/Olympus"], "unknown timezone 'Mars/Olympus'"),
    ],
)
@pytest.mark.parametrize("command", ["ingest", "plan"])
def test_a_bad_flag_is_named_not_blamed_on_the_config_file(
    tmp_path: Path, command: str, flags: list[str], line: str
) -> None:
    """`ingest --config a.yml --rate-limit -1` said `invalid configuration (a.yml):
    download.rate_limit: ...`, the file blamed for the flag's value."""
    cfg = tmp_path / "a.yml"
    cfg.write_text(
        f"source: wydot\nmessage_type: BSM\ncache: {{directory: {tmp_path / 'cat'}}}\n"
        "date_range: {start_date: 2021-04-01, timezone: America/Denver}\n"
    )
    r = run(command, "--config", str(cfg), *flags)
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.startswith(f"error: {line}") and r.stderr.count("\n") == 1, r.stderr
    assert str(cfg) not in r.stderr and not (tmp_path / "cat").exists()


def test_the_cache_directory_variable_names_the_catalog_as_home_does(
    catalog_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CVCATALOG_CACHE__DIRECTORY (cache.directory's variable) was read only beside a --config:
    without one every command, and Catalog(), silently used ./data/catalog."""
    Catalog(catalog_dir).db.initialise()  # an empty catalog
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CVCATALOG_HOME", raising=False)
    monkeypatch.setenv("CVCATALOG_CACHE__DIRECTORY", str(catalog_dir))
    r = run("views", "-f", "csv")
    assert r.exit_code == 0 and "wydot_bsm" in r.stdout, r.output
    assert Catalog().paths.root == catalog_dir
    other = tmp_path / "other"
    monkeypatch.setenv("CVCATALOG_HOME", str(other))  # the documented name wins
    assert Catalog().paths.root == other
    r = run("views")
    assert r.exit_code == 1 and f"no catalog at {other}" in r.stderr
    assert not (tmp_path / "data").exists()


def test_shell_on_a_pipe_prints_no_colour_codes_nor_its_init_file(catalog_dir: Path) -> None:
    Catalog(catalog_dir).db.initialise()  # an empty catalog
    done = subprocess.run(
        [sys.executable, "-m", "cvcatalog", "shell", "--catalog", str(catalog_dir)],
        input=".mode csv\nselect count(*) as n from wydot_bsm;\n",
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["n", "0"]  # the init file ran: the lake is attached
    assert "\x1b[" not in done.stderr and "Loading resources" not in done.stderr
    assert done.stderr.split() == f"catalog {catalog_dir} attached read-only as cv".split()


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
    # a record naming a live process that is not the server (its pid reused, or a shell's):
    # it was killed; now the record is stale and the process left alone
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    server = _stand_in_server()
    try:
        state.write_text(json.dumps({"pid": other.pid, "port": 5999}))
        r = run("sandbox", "stop")
        assert r.exit_code == 0 and r.output == "no detached sandbox server was running\n"
        assert other.poll() is None and not state.exists()
        state.write_text(json.dumps({"pid": server.pid, "port": 5999}))
        r = run("sandbox", "stop")
        assert r.exit_code == 0 and r.output == "stopped\n"
        assert server.wait(timeout=10) != 0 and not state.exists()
    finally:
        other.kill()
        server.kill()


#: a server slow to stop: SIGTERM ends it 1.5 s later (moto takes 1-4 s)
SLOW_TO_STOP = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *a: (time.sleep(1.5), sys.exit(0)))\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


@pytest.mark.parametrize("ignores_sigterm", [False, True])
def test_sandbox_stop_says_stopped_only_once_the_process_has_exited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ignores_sigterm: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    # the slow server is waited for as long as a loaded machine may take to run its handler
    # (5 s once fell short in a fresh clone's `make test`); stop returns when it has exited
    monkeypatch.setattr(server_module, "STOP_TIMEOUT", 60.0 if not ignores_sigterm else 0.5)
    code = SLOW_TO_STOP.replace("lambda *a: (time.sleep(1.5), sys.exit(0))", "signal.SIG_IGN") \
        if ignores_sigterm else SLOW_TO_STOP  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", code, server_module.SERVER_MODULE, "-p",
                             "5999"], stdout=subprocess.PIPE, start_new_session=True, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        state = tmp_path / ".sandbox" / "server.json"
        state.parent.mkdir()
        state.write_text(json.dumps({"pid": proc.pid, "port": 5999}))
        r = run("sandbox", "stop")
        assert r.exit_code == 0 and r.output == "stopped\n"
        assert proc.poll() is not None, "stopped, yet the process still runs"
        assert proc.returncode == (-9 if ignores_sigterm else 0) and not state.exists()
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("fails", [False, True])
def test_a_terminals_bars_are_erased_when_the_command_fails(fails: bool) -> None:
    """In a terminal the bars' last frame stays after a run, but not above an error line:
    the block failed, so the frames are erased (three lines up, each cleared)."""
    erase = "\x1b[1A\x1b[2K"
    for make in (lambda c: RichProgress(c), lambda c: ExportBar(c)):
        out = io.StringIO()
        console = Console(file=out, force_terminal=True, width=100)
        with contextlib.suppress(RuntimeError), make(console) as bar:
            if isinstance(bar, RichProgress):
                bar.plan(["2021-04-01", "2021-04-02"], [])
            else:
                bar(10, 1000)
            if fails:
                raise RuntimeError("the endpoint is gone")
        lines = 3 if isinstance(bar, RichProgress) else 1
        text = out.getvalue()
        assert ("converting" if lines == 3 else "exporting") in text
        assert text.endswith(erase * lines) == fails, repr(text[-80:])


def test_bars_write_nothing_when_stderr_is_not_a_terminal() -> None:
    out = io.StringIO()
    with RichProgress(Console(file=out, width=100)) as bar:
        bar.plan(["2021-04-01"], [])
        bar.note("waiting")
    with ExportBar(Console(file=out, width=100)) as tick:
        tick(10, 1000)
    assert out.getvalue() == "note: waiting\n"  # its notes only


def test_machine_formats_print_only_the_data_on_stdout(one_day: Path, tmp_path: Path) -> None:
    """`cache verify --format json` printed `[]` then its summary line: not JSON. The summary
    goes to stderr in json/csv (stdout in the table format)."""
    home = tmp_path / "catalog"
    shutil.copytree(one_day, home)
    cat = Catalog(home)
    path = cat.query("select path from partition_files where kind = 'data' limit 1").path[0]
    cat.paths.absolute(path).unlink()
    r = run("cache", "verify", "--catalog", str(home), "--format", "json")
    assert r.exit_code == 1
    assert json.loads(r.stdout) == [{"problem": "missing file", "path": path}]
    assert "files checked" in r.stderr and "1 missing" in r.stderr
    r = run("cache", "verify", "--catalog", str(home), "--format", "csv")
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows == [["problem", "path"], ["missing file", path]]
    r = run("cache", "verify", "--catalog", str(home))
    assert "missing file" in r.stdout and "1 missing" in r.stdout and r.stderr == ""
    # and what to do about it (it said nothing of --repair)
    assert r.stdout.splitlines()[-1].startswith("`cvcatalog cache verify --repair` mends")


_UNKNOWN = "unknown source 'bogus'; expected one of wydot, wydot_backup, thea, nycdot, ngsim"
_NGSIM_BSM = "source 'ngsim' does not publish 'BSM'; it publishes TRAJECTORY"
_WYDOT_SPAT = "source 'wydot' does not publish 'SPAT'; it publishes BSM, TIM"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compact", "--source", "bogus"], _UNKNOWN),
        (["compact", "--source", "ngsim", "--type", "BSM"], _NGSIM_BSM),
        (["cache", "status", "--source", "bogus"], _UNKNOWN),
        (["cache", "status", "--source", "wydot", "--type", "SPAT"], _WYDOT_SPAT),
        (["cache", "status", "--type", "bogus"], "unknown message type 'BOGUS'; expected one of"),
        (["cache", "clear", "--source", "bogus", "--yes"], _UNKNOWN),
        (["cache", "clear", "--source", "wydot", "--type", "SPAT", "--yes"], _WYDOT_SPAT),
        (["runs", "--source", "bogus"], _UNKNOWN),
        (["report", "runs", "--source", "bogus"], _UNKNOWN),
        (["report", "validation", "--source", "bogus"], _UNKNOWN),
        (["report", "quality", "--source", "ngsim", "--type", "BSM"], _NGSIM_BSM),
        (["snapshots", "--source", "bogus"], _UNKNOWN),
        (["snapshots", "--source", "ngsim", "--type", "BSM"], _NGSIM_BSM),
        (["changes", "--source", "ngsim", "--type", "BSM", "--since", "1"], _NGSIM_BSM),
        (["changes", "--source", "bogus", "--since", "1"], _UNKNOWN),
        (["split", "--source", "ngsim", "--type", "BSM"], _NGSIM_BSM),
        (["split", "--source", "bogus"], _UNKNOWN),
        (["export", "--source", "ngsim", "--type", "BSM", "--output", "x.csv"], _NGSIM_BSM),
        (["export", "--source", "bogus", "--type", "BSM", "--output", "x.csv"], _UNKNOWN),
        (["ingest", "--source", "bogus", "--type", "BSM", "--start", "2021-04-01"], _UNKNOWN),
    ],
)
def test_every_command_checks_source_and_type_the_same_way(
    args: list[str], message: str, catalog_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cache clear --source bogus --yes` printed "cleared 0 partitions (0.0 MB) of bogus" and
    compact, cache status and runs listed nothing, exit 0: a typo looked like an empty catalog."""
    Catalog(catalog_dir).db.initialise()  # an empty catalog
    monkeypatch.chdir(tmp_path)
    r = run(*args, "--catalog", str(catalog_dir))
    assert r.exit_code == 1, r.output
    assert r.stdout == "" and r.stderr.startswith(f"error: {message}"), r.stderr
    assert r.stderr.count("\n") == 1


def test_a_type_alone_selects_its_tables(one_day: Path) -> None:
    """`snapshots --type TIM` listed the BSM ingest's snapshots too (the type was ignored)."""
    cat = Catalog(one_day)
    assert [s["tables"] for s in cat.snapshots(message_type="TIM")] == []
    assert {s["tables"] for s in cat.snapshots(message_type="bsm")} == {"wydot_bsm"}
    assert cat.status(message_type="TIM") == [] and len(cat.status(message_type="BSM")) == 1
    with pytest.raises(ConfigError, match="unknown source 'bogus'"):
        cat.status("bogus")


def test_evict_names_ten_partitions_and_counts_the_rest(
    one_day: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an eviction of a grown catalog's days printed every one on one line (795: 18 KB)
    home = tmp_path / "catalog"
    shutil.copytree(one_day, home)
    days = [f"wydot/BSM/2019/{m:02d}/{d:02d}" for m in range(1, 13) for d in range(1, 29)]
    monkeypatch.setattr(Catalog, "evict", lambda self, size: days)
    r = run("cache", "evict", "--max-size-gb", "0", "--catalog", str(home))
    assert r.exit_code == 0, r.output
    first = r.stdout.splitlines()[0]
    assert first == (
        f"evicted 336 partitions: {', '.join(days[:10])}, and 326 more (`cache status` lists "
        "what is kept)"
    )


def test_evict_refuses_a_negative_size_and_reads_its_config_as_ingest_does(
    one_day: Path, tmp_path: Path
) -> None:
    """--max-size-gb -1 evicted everything; a config whose cache.max_size_gb is not a number
    was `unexpected ValueError` (ingest says which file and field)."""
    home = tmp_path / "catalog"
    shutil.copytree(one_day, home)
    for size in ("-1", "nan", "inf"):
        r = run("cache", "evict", "--max-size-gb", size, "--catalog", str(home))
        assert r.exit_code == 1 and r.stdout == "", r.output
        assert r.stderr == (
            f"error: max_size_gb (--max-size-gb) must be a number of GB, 0 or more; got {size}\n"
        )
    assert [p["status"] for p in Catalog(home).status()] == ["complete"]  # nothing evicted
    bad = tmp_path / "bad.yml"
    bad.write_text("cache: {max_size_gb: lots}\n")
    r = run("cache", "evict", "--config", str(bad), "--catalog", str(home))
    assert r.exit_code == 1
    line = (
        f"error: invalid configuration ({bad}): cache.max_size_gb: Input should be a valid "
        "number, unable to parse string as a number\n"
    )
    assert r.stderr == line
    r = run(*_INGEST, "--start", "2021-04-01", "--config", str(bad), "--catalog", str(home))
    assert r.exit_code == 1 and r.stderr == line  # the same file, the same line
    r = run("cache", "evict", "--config", str(bad))  # the catalog directory read from it
    assert r.exit_code == 1 and r.stderr == line
    good = tmp_path / "good.yml"
    good.write_text(f"cache: {{directory: {home}, max_size_gb: 0}}\n")
    r = run("cache", "evict", "--config", str(good))
    assert r.exit_code == 1 and "cache.max_size_gb: Input should be greater than 0" in r.stderr
    r = run("cache", "evict", "--max-size-gb", "0", "--catalog", str(home))
    assert r.exit_code == 0 and r.stdout.startswith("evicted 1 partition: wydot/BSM/2021/04/01")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query", "select 1", "--max-rows", "-1"], "--max-rows must be 0 or more, got -1"),
        (["changes", "--source", "wydot", "--type", "BSM", "--since", "1", "--max-rows", "-5"],
         "--max-rows must be 0 or more, got -5"),
        (["snapshots", "--limit", "-1"], "limit must be 0 or more, got -1"),
        (["runs", "--limit", "-1"], "limit must be 0 or more, got -1"),  # was a BinderException
        (["report", "runs", "--limit", "-1"], "limit must be 0 or more, got -1"),
        (["split", "--source", "wydot", "--type", "BSM", "--start", "2021-04-03", "--end",
          "2021-04-01"], "end date 2021-04-01 is before start date 2021-04-03"),
        (["export", "--source", "wydot", "--type", "BSM", "--start", "2021-04-03", "--end",
          "2021-04-01", "--output", "x.csv"], "end date 2021-04-01 is before start date 2021-04-03"),
        (["publish", "--to", "s3://some-bucket/cat", "--workers", "-1"],
         "--workers must be between 1 and 64"),
    ],
)  # fmt: skip
def test_numbers_and_day_ranges_out_of_range_are_one_line(
    args: list[str], message: str, catalog_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """split --start 2021-04-03 --end 2021-04-01 printed an all-zero table, exit 0 (ingest and
    plan refuse the range); negative row counts were taken, or an unexpected error."""
    Catalog(catalog_dir).db.initialise()  # an empty catalog
    monkeypatch.chdir(tmp_path)
    r = run(*args, "--catalog", str(catalog_dir))
    assert r.exit_code == 1 and r.stdout == "", r.output
    assert r.stderr == f"error: {message}\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sandbox", "seed", "--start", "2021-04-01", "--files-per-hour", "0"],
         "--files-per-hour must be 1 or more, got 0"),
        (["sandbox", "seed", "--start", "2021-04-01", "--records-per-hour", "-1"],
         "--records-per-hour must be 0 or more, got -1"),
        (["sandbox", "ngsim", "--out", "n.csv", "--bad-rows", "-1"],
         "--bad-rows must be 0 or more, got -1"),
        (["sandbox", "serve", "--port", "-1"],
         "--port must be 0 (any free port) to 65535, got -1"),  # was an OverflowError
    ],
)  # fmt: skip
def test_sandbox_numbers_out_of_range_are_one_line_before_anything_runs(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # never reached
    r = run(*args)
    assert r.exit_code == 1 and r.stderr == f"error: {message}\n", r.output
    assert list(tmp_path.iterdir()) == []


def test_a_limit_of_0_lists_nothing(one_day: Path) -> None:
    cat = Catalog(one_day)
    assert cat.snapshots(limit=0) == [] and cat.runs(limit=0) == []
    assert len(cat.snapshots(limit=1)) == 1


def test_a_table_keeps_its_natural_width_when_stdout_is_not_a_terminal(one_day: Path) -> None:
    """`query "select * from bsm limit 2"` piped printed ~1,300 lines, a letter per column: the
    table was squeezed to a terminal width there is no terminal for. Now each row is a line."""
    r = run("query", "select * from bsm limit 2", "--catalog", str(one_day))
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 6  # top border, header, rule, two rows, bottom border
    columns = Catalog(one_day).query_arrow("select * from bsm limit 0").column_names
    assert len(columns) > 40
    header = [c.strip() for c in lines[1].strip("┃").split("┃")]
    assert header == columns
    assert len({len(line) for line in lines}) == 1  # one width, no fold


def test_a_terminal_table_still_fits_the_terminal() -> None:
    rows = [{f"column_{i}": "x" * 12 for i in range(30)}]
    folded = render(rows, Format.table, width=100)
    assert max(len(line) for line in folded.splitlines()) <= 100
    natural = render(rows, Format.table)
    assert len(natural.splitlines()) == 5 and len(natural.splitlines()[1]) > 30 * 12


def test_a_piped_table_keeps_a_title_wider_than_it_on_one_line() -> None:
    title = "coverage by day (America/New_York)"
    text = render([], Format.table, columns=["message_type", "day"], title=title)
    assert text.splitlines()[0].strip() == title


@pytest.mark.parametrize("workers", ["0", "65"])
def test_workers_out_of_range_is_one_line_for_every_source_and_publish(
    tmp_path: Path, workers: str
) -> None:
    """--workers is bounded once, in the flag's words: a CV ingest said pydantic's
    'download.max_workers: Input should be ...' where NGSIM said '--workers must be ...'."""
    cat = ["--catalog", str(tmp_path / "cat"), "--no-progress"]
    commands = [
        ["ingest", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01", *cat],
        ["ingest", "--source", "ngsim", "--path", str(tmp_path / "x.csv"), *cat],
        ["publish", "--to", "s3://bucket/prefix", "--catalog", str(tmp_path / "cat")],
    ]
    for args in commands:
        r = runner.invoke(app, [*args, "--workers", workers])
        assert (r.exit_code, r.stdout) == (1, ""), args
        assert r.stderr == "error: --workers must be between 1 and 64\n", args
    assert not (tmp_path / "cat").exists()  # refused before a catalog was made


def test_values_keep_what_they_are_in_every_format() -> None:
    """A sum() of integers (a DECIMAL) printed 45.0, a HUGEINT or DECIMAL(38, 9) lost digits
    to a float, NaN printed "None" in a table, infinity made invalid JSON ("Infinity" bare),
    and CSV booleans were Python's "True"."""
    big = Decimal("123456789012345678.123456789")
    rows = [
        {"s": Decimal(45), "h": Decimal(12345678901234567890), "d": big, "x": Decimal("0.5"),
         "nan": float("nan"), "inf": float("inf"), "b": True, "n": None},
    ]  # fmt: skip
    [got] = json.loads(render(rows, Format.json))
    assert got == {
        "s": 45, "h": 12345678901234567890, "d": "123456789012345678.123456789", "x": 0.5,
        "nan": None, "inf": "Infinity", "b": True, "n": None,
    }  # fmt: skip
    header, line = list(csv.reader(io.StringIO(render(rows, Format.csv))))
    assert dict(zip(header, line, strict=True)) == {
        "s": "45", "h": "12345678901234567890", "d": "123456789012345678.123456789",
        "x": "0.5", "nan": "", "inf": "Infinity", "b": "true", "n": "",
    }  # fmt: skip
    table = render(rows, Format.table)
    assert "None" not in table and "45.0" not in table and "12345678901234567890" in table


def test_a_reader_that_stops_reading_is_no_error(tmp_path: Path) -> None:
    """`cvcatalog views | true` (or `| head -1`) printed "error: unexpected BrokenPipeError",
    exit 1: it ends quietly, exit 141 as a process SIGPIPE ended would."""
    Catalog(tmp_path / "cat").db.initialise()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvcatalog", "views", "--catalog", str(tmp_path / "cat")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before it writes: its first write finds no reader
    errors = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141, errors
    assert errors == ""


def test_a_damaged_file_met_outside_a_query_is_the_same_line(one_day: Path, tmp_path: Path) -> None:
    """`cache evict` over a damaged Parquet file printed "unexpected InvalidInputException";
    a query says which file and how to mend it, and so does every other command now."""
    home = tmp_path / "catalog"
    shutil.copytree(one_day, home)
    [damaged] = list((home / "lake").rglob("*.parquet"))
    with damaged.open("ab") as f:
        f.write(b"x")
    r = run("cache", "evict", "--max-size-gb", "0.0000001", "--catalog", str(home))
    assert r.exit_code == 1 and "unexpected" not in r.stderr, r.output
    assert r.stderr.startswith("error: Invalid Input Error: No magic bytes found")
    assert r.stderr.rstrip().endswith("run `cvcatalog cache verify --repair`)")


def test_a_damaged_file_of_the_users_own_is_not_the_catalogs(one_day: Path, tmp_path: Path) -> None:
    """A query reading the user's own damaged Parquet file was told "a data file of the
    catalog is missing or damaged ... run `cvcatalog cache verify --repair`": DuckDB's line
    alone now. The catalog's own damaged file still gets the mend."""
    home = tmp_path / "catalog"
    shutil.copytree(one_day, home)
    mine = tmp_path / "mine.parquet"
    [damaged] = list((home / "lake").rglob("*.parquet"))
    for data in (b"not a parquet file at all", b"PAR"):  # no magic bytes; too small
        mine.write_bytes(data)
        r = run("query", f"select * from read_parquet('{mine}')", "--catalog", str(home))
        assert r.exit_code == 1 and str(mine) in r.stderr, r.output
        assert "cache verify" not in r.stderr and len(r.stderr.splitlines()) == 1
        damaged.write_bytes(data)
        r = run("query", "select max(speed_mps) from wydot_bsm", "--catalog", str(home))
        assert r.exit_code == 1 and str(damaged) in r.stderr, r.output
        assert r.stderr.rstrip().endswith("run `cvcatalog cache verify --repair`)")


def test_an_interval_column_to_parquet_is_one_line(one_day: Path, tmp_path: Path) -> None:
    """`query ... -o x.parquet` of a difference of two times: "unexpected
    ArrowNotImplementedError" (Parquet has no INTERVAL); one line saying what to select."""
    out = tmp_path / "span.parquet"
    sql = "select vehicle_id, max(generated_at) - min(generated_at) as span from wydot_bsm group by 1"
    r = run("query", sql, "-o", str(out), "--catalog", str(one_day))
    assert (r.exit_code, r.stdout) == (1, ""), r.output
    assert r.stderr == ("error: column 'span' is an INTERVAL, which Parquet cannot hold: select "
                        "it as seconds (epoch(...)) or as text (...::VARCHAR), or write a .csv "
                        "or .json\n")  # fmt: skip
    assert not out.exists()
    r = run("query", sql.replace("as span", "as span, 1 as n").replace(
        "max(generated_at) - min(generated_at)", "epoch(max(generated_at) - min(generated_at))"),
        "-o", str(out), "--catalog", str(one_day))  # fmt: skip
    assert r.exit_code == 0 and out.exists(), r.output


def test_every_output_path_is_checked_before_the_work(one_day: Path, tmp_path: Path) -> None:
    """`report quality --png x --html x` wrote the PNG and then the HTML over it; `report
    quality --png DIR` printed the whole report before its error; `sql macros -o FILE/x` said
    "File exists". Each output is checked first now: one line, nothing else printed, nothing
    written."""
    cat = ["--catalog", str(one_day)]
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    same, folder, under_file = tmp_path / "r.out", tmp_path / "adir", tmp_path / "afile" / "x"
    cases = {
        ("report", "quality", "--source", "wydot", "--png", str(same), "--html", str(same), *cat):
            f"--png and --html name the same file {same}; give each its own",
        ("report", "quality", "--source", "wydot", "--png", str(folder), *cat):
            f"{folder} is a directory: the output is written whole under a temporary name "
            "and renamed into place; give a file name",
        ("report", "coverage", "--source", "wydot", "--start", "2021-04-01", "--html",
         str(under_file), *cat):
            f"cannot write {under_file}: {tmp_path / 'afile'} is a file, not a folder",
        ("sql", "macros", "-o", str(under_file)):
            f"cannot write {under_file}: {tmp_path / 'afile'} is a file, not a folder",
        ("query", "select * from wydot_bsm", "-o", str(under_file), *cat):
            f"cannot write {under_file}: {tmp_path / 'afile'} is a file, not a folder",
        ("report", "coverage", "--source", "wydot", "--start", "2021-04-01", "--per-day", *cat):
            "--per-day draws a map a day into --png or --html: give one of them",
        ("sandbox", "ngsim", "--rows", "10", "--out", str(folder)):
            f"{folder} is a directory: the output is written whole under a temporary name "
            "and renamed into place; give a file name",
    }  # fmt: skip
    for args, want in cases.items():
        r = run(*args)
        assert (r.exit_code, r.stdout, r.stderr) == (1, "", f"error: {want}\n"), args
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile"]
    assert not any(folder.iterdir())


def test_ctrl_c_inside_a_duckdb_query_is_interrupted_not_unexpected(
    one_day: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while DuckDB ran a query (query, export, report quality...) printed "error:
    unexpected RuntimeError: Query interrupted" and exit 1: DuckDB's client raises that
    RuntimeError on SIGINT, not KeyboardInterrupt. It is now the interrupted line, exit 130."""
    import duckdb

    from cvcatalog.io.duckdb_ext import interrupted

    con = duckdb.connect()
    threading.Timer(0.3, con.interrupt).start()
    with pytest.raises(duckdb.Error) as caught:  # (what connection.interrupt() raises)
        con.execute("SELECT count(*) FROM range(100000000000) a").fetchall()
    assert interrupted(caught.value) and interrupted(RuntimeError("Query interrupted"))
    assert not interrupted(RuntimeError("something else")) and not interrupted(ValueError())

    def on_sigint(self: Catalog, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("Query interrupted")  # what DuckDB raises on SIGINT

    monkeypatch.setattr(Catalog, "_run_query", on_sigint)  # query_arrow's and query_head's
    r = run("query", "select 1", "--catalog", str(one_day))
    assert r.exit_code == 130, r.output
    assert "unexpected" not in r.stderr and r.stderr.startswith("interrupted"), r.stderr
    assert r.stderr == "interrupted\n"  # a query is done again, not resumed: no such advice


def test_a_validation_report_of_runs_without_one_says_why(one_day: Path) -> None:
    """It said "0 quarantined (no report)" of a catalog whose clean runs have nothing to report."""
    assert Catalog(one_day).validation_report() == []  # the replica's day is clean
    r = run("report", "validation", "--catalog", str(one_day))
    assert r.exit_code == 0, r.output
    assert r.stdout.rstrip().endswith("0 quarantined: no run quarantined a record or kept a warning")


#: a result of many batches with the values the formats print each their way: times, a NULL,
#: NaN, a duration, a list, a struct, a boolean, a decimal and a column name given twice
_MIXED = (
    "select i, timestamptz '2021-04-01 10:00:00+00' + to_seconds(i) as t, "
    "case when i % 7 = 0 then null else i * 0.5 end as half, 'nan'::double as nan, "
    "case when i % 2 = 0 then 'inf'::double else -i / 4 end as inf, "
    "to_seconds(i) as dur, [i, i + 1] as l, {'a': i, 'b': 'x' || i} as st, i % 2 = 0 as even, "
    "(i / 3)::decimal(10, 2) as d, i as i, "
    # the columns written a column at a time (output._csv_column), with nulls and cells to quote
    "case when i % 5 = 0 then null when i % 5 = 1 then i * 1e20 else i / 8 + i * 1e-9 end "
    "as f, case when i % 3 = 0 then null when i % 3 = 1 then 'a,\"b\" é' || chr(10) || chr(9) || i "
    "else '' end as s, case when i % 4 = 0 then null else i % 3 = 0 end as b, "
    "case when i % 6 = 0 then null else i end::int as n from range(4000) r(i)"
)


def _rich_table(cols: list[str], cells: list[list[str]]) -> str:
    """rich's own layout of a table at its natural width, every cell as its text."""
    table = Table(show_lines=False)
    for c in cols:
        table.add_column(Text(c), overflow="fold")
    for row in cells:
        table.add_row(*map(Text, row))
    console = Console(file=io.StringIO(), width=1_000_000, record=True)
    console.print(table)
    return console.export_text()


_CELL_TEXT = st.text(alphabet=st.sampled_from(list("ab Z09:[]/#@\\,.-é中\u0301\n\t😀")), max_size=8)


@given(
    st.integers(1, 4).flatmap(
        lambda n: st.tuples(
            st.lists(_CELL_TEXT, min_size=n, max_size=n),
            st.lists(st.lists(_CELL_TEXT, min_size=n, max_size=n), max_size=5),
        )
    )
)
@settings(max_examples=300, deadline=None)
def test_a_table_laid_out_directly_is_richs_to_the_byte(table: tuple[list[str], list[list[str]]]) -> None:
    """A table for a file or a pipe is laid out without rich (~70 us a cell: a day of BSM to a
    .txt file took minutes and GBs), as rich lays it out, or by rich where a cell is not one
    line of plain text."""
    cols, cells = table
    laid = _box_table(cols, cells)
    texts = cols + [c for row in cells for c in row]
    assert (laid is None) == any(ch in c for c in texts for ch in "\n\t\u0301")
    if laid is not None:
        assert laid == _rich_table(cols, cells)


def test_a_table_shows_its_cells_as_they_are() -> None:
    """Cells were rich markup and emoji codes: "[red]x" printed as "x", ":smile:" as a face."""
    rows = [{"tag": "[red]x[/red]", "code": ":smile:", "line": "a\nb"}]
    for width in (None, 100):  # a file or a pipe (laid out directly, or by rich), a terminal
        text = render(rows, Format.table, width=width)
        assert "[red]x[/red]" in text and ":smile:" in text and "😄" not in text


def test_query_output_streams_the_rows_as_the_whole_result_renders_them(
    one_day: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`query -o day.csv` of a BSM day held 1.5 GB (JSON 3.1 GB): every row of the result as
    Python values at once. Now a batch at a time, the same bytes."""
    cat = Catalog(one_day)
    whole = cat.query_arrow(_MIXED)
    rows, columns = arrow_rows(whole)
    written_batches: list[int] = []
    write = ResultStream.write

    def counted(self: ResultStream, batch: Any) -> None:
        written_batches.append(batch.num_rows)
        write(self, batch)

    monkeypatch.setattr(ResultStream, "write", counted)
    monkeypatch.setattr(catalog_module, "HEAD_BATCH_ROWS", 1000)  # a few batches of a few rows
    for fmt in ("csv", "json"):
        out = tmp_path / f"q.{fmt}"
        r = run("query", _MIXED, "--catalog", str(one_day), "-o", str(out))
        assert r.exit_code == 0, r.output
        assert out.read_text() == render(rows, Format(fmt), columns)
        r = run("query", _MIXED, "--catalog", str(one_day), "--format", fmt)
        assert r.exit_code == 0 and r.stdout == render(rows, Format(fmt), columns)
    assert len(written_batches) >= 4 * 2 and max(written_batches) < whole.num_rows
    # a table in a file (every row: --max-rows cuts only what a terminal shows) streams too, its
    # cells spilled while their widths are measured: a cell with a line break or a tab (column
    # s) has rich lay the table out; plain ones are laid out a column at a time, the times
    # and dates spelled by Arrow (one early date: its batch spelled by Python), text of wide
    # and non-ASCII letters padded by its cells, wider cells in later batches
    # (a quarter of the rows and batches: rich lays out every row of `want` and of the file)
    monkeypatch.setattr(catalog_module, "HEAD_BATCH_ROWS", 250)
    monkeypatch.setattr(output, "_LAID_ROWS", 100)
    plain = (
        "select i, timestamptz '2021-04-01 10:00:00+00' + to_microseconds(i * 250000) as t, "
        "timestamp '2021-04-01 10:00:00' + to_microseconds(i * 333) as naive, "
        "case when i % 9 = 0 then null when i = 334 then date '0999-12-31' "
        "else date '2021-04-01' + i::int end as day, "
        "repeat('中', i % 3) || repeat('x', i // 175) || case when i % 2 = 0 then 'é' end as w, "
        "i / 7 as f, i % 2 = 0 as b, 'nan'::double as nan from range(1000) r(i)"
    )
    laid: list[int] = []
    lines = output._CellSpill._lines
    monkeypatch.setattr(
        output._CellSpill, "_lines", lambda self, b: laid.append(b.num_rows) or lines(self, b)
    )
    for sql, direct in ((_MIXED.replace("range(4000)", "range(1000)"), False), (plain, True)):
        shown, names = arrow_rows(cat.query_arrow(sql))
        want = render(shown, Format.table, names)
        out = tmp_path / "q.txt"
        n = len(written_batches)
        laid.clear()
        r = run("query", sql, "--catalog", str(one_day), "-o", str(out))
        assert r.exit_code == 0, r.output
        assert out.read_text() == want and len(written_batches) - n >= 4
        assert (sum(laid), max(laid, default=0)) == ((1000, 100) if direct else (0, 0))
        for fmt in ("csv", "json"):  # (their times and dates spelled by Arrow too)
            r = run("query", sql, "--catalog", str(one_day), "--format", fmt)
            assert r.exit_code == 0 and r.stdout == render(shown, Format(fmt), names)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    out = tmp_path / "q.parquet"  # no duration: Parquet has no type for one (NaN: != itself)
    sql = _MIXED.replace("to_seconds(i) as dur, ", "").replace("'nan'::double as nan, ", "")
    sql = sql.replace("case when i % 2 = 0 then 'inf'::double else -i / 4 end as inf, ", "")
    r = run("query", sql, "--catalog", str(one_day), "-o", str(out))
    assert r.exit_code == 0, r.output
    # (the second `i` as `i_1`, as csv and json name it: two columns of one name were written)
    kept = whole.select([n for n in range(whole.num_columns) if n not in (3, 4, 5)])
    got = pq.read_table(out)
    assert got.column_names == unique_names(kept.column_names)
    assert got.to_pylist() == kept.rename_columns(got.column_names).to_pylist()
    # an empty result: the header, an empty list, an empty file with the columns
    empty = _MIXED + " where i < 0"
    for fmt, text in (("csv", render([], Format.csv, columns)), ("json", "[]\n")):
        r = run("query", empty, "--catalog", str(one_day), "--format", fmt)
        assert (r.exit_code, r.stdout) == (0, text)
    # failing midway (a cast that fails on a later row): no file, the old one kept
    out.write_text("old")
    bad = "select case when i > 3000 then ('x' || i)::int else i end as v from range(4000) r(i)"
    r = run("query", bad, "--catalog", str(one_day), "-o", str(tmp_path / "q.csv"))
    assert r.exit_code == 1 and "Could not convert string" in r.output, r.output
    assert (tmp_path / "q.csv").read_text() == render(rows, Format.csv, columns)  # (as it was)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_file_named_csv_or_json_gets_that_format(one_day: Path, tmp_path: Path) -> None:
    """`query -o q.csv` without --format wrote a box-drawn table of the first 1,000 rows."""
    out = tmp_path / "q.csv"
    sql = "select * from range(1500) t(x)"
    r = run("query", sql, "-o", str(out), "--catalog", str(one_day))
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 1500 and rows[0] == {"x": "0"}
    out = tmp_path / "q.json"
    assert run("query", sql, "-o", str(out), "--catalog", str(one_day)).exit_code == 0
    assert len(json.loads(out.read_text())) == 1500
    out = tmp_path / "q.parquet"  # was a box-drawn table in a file named .parquet
    assert run("query", sql, "-o", str(out), "--catalog", str(one_day)).exit_code == 0
    assert pq.read_table(out).column("x").to_pylist() == list(range(1500))
    out = tmp_path / "c.csv"  # changes too
    r = run("changes", "--source", "wydot", "--type", "BSM", "--since", "0", "-o", str(out),
            "--catalog", str(one_day))  # fmt: skip
    assert r.exit_code == 0, r.output
    assert next(csv.reader(out.open()))[:2] == ["change_type", "snapshot_id"]


@pytest.mark.parametrize(
    ("command", "fmt", "name", "named"),
    [
        ("query", "csv", "y.parquet", "parquet"),
        ("query", "json", "x.csv", "csv"),
        ("query", "csv", "x.JSON", "json"),
        ("changes", "csv", "c.parquet", "parquet"),
        ("changes", "parquet", "c.json", "json"),
    ],
)
def test_a_format_the_output_name_contradicts_is_one_line_before_anything_runs(
    one_day: Path, tmp_path: Path, command: str, fmt: str, name: str, named: str
) -> None:
    """`query -f csv -o y.parquet` wrote CSV into y.parquet and exited 0 (`-f json -o x.csv`
    JSON into x.csv): a file its own name lies about. A format given that the name's suffix
    contradicts is one line and exit 1, checked before the catalog is even opened."""
    out = tmp_path / name
    args = (["query", "select 1 as x"] if command == "query" else
            ["changes", "--source", "wydot", "--type", "BSM", "--since", "0"])  # fmt: skip
    said = (f"error: --format {fmt} but --output {name} names a {named} file: give a name "
            f"ending .{fmt}, or leave out --format to write {named}\n")  # fmt: skip
    for home in (one_day, tmp_path / "no-catalog-here"):  # (the check comes first)
        r = run(*args, "-f", fmt, "-o", str(out), "--catalog", str(home))
        assert r.exit_code == 1, r.output
        assert r.stderr == said and r.stdout == ""
        assert not out.exists()


def test_a_format_the_output_name_agrees_with_or_does_not_know_is_written(
    one_day: Path, tmp_path: Path
) -> None:
    """The refusal is for a known suffix naming another format only: the same format, or a
    name whose suffix names none (.txt), writes what --format says, as before."""
    sql = "select * from range(3) t(x)"
    for fmt, name in (("csv", "a.csv"), ("json", "a.json"), ("csv", "a.txt"), ("json", "a.out")):
        out = tmp_path / name
        r = run("query", sql, "-f", fmt, "-o", str(out), "--catalog", str(one_day))
        assert r.exit_code == 0, r.output
        if fmt == "csv":
            assert out.read_text() == "x\n0\n1\n2\n"
        else:
            assert json.loads(out.read_text()) == [{"x": 0}, {"x": 1}, {"x": 2}]


def test_export_to_a_dash_is_refused_not_a_file_named_dash(one_day: Path, tmp_path: Path) -> None:
    r = run("export", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01",
            "--format", "csv", "-o", "-", "--catalog", str(one_day))  # fmt: skip
    assert r.exit_code == 1 and r.stderr.startswith("error: --output -: an export writes a file")
    assert not Path("-").exists()


def test_an_empty_status_csv_still_has_its_header(one_day: Path) -> None:
    """`cache status --source wydot_backup -f csv` of a catalog without it printed a blank
    line: the header of the rows a full listing has."""
    full = run("cache", "status", "--catalog", str(one_day), "-f", "csv")
    empty = run(
        "cache", "status", "--source", "wydot_backup", "--catalog", str(one_day), "-f", "csv"
    )
    assert full.exit_code == empty.exit_code == 0, empty.output
    header = full.stdout.splitlines()[0]
    assert empty.stdout.splitlines() == [header]


def test_an_empty_runs_csv_still_has_its_header(one_day: Path) -> None:
    """`runs --source wydot_backup -f csv` of a catalog without such a run printed a blank
    line (views, discover and cache status print their header)."""
    full = run("runs", "--catalog", str(one_day), "-f", "csv")
    assert full.exit_code == 0, full.output
    header = full.stdout.splitlines()[0]
    assert header.startswith("run_id,started_at,finished_at,status,")
    for command in (["runs"], ["report", "runs"]):
        empty = run(*command, "--source", "wydot_backup", "--catalog", str(one_day), "-f", "csv")
        assert empty.exit_code == 0, empty.output
        assert empty.stdout.splitlines() == [header]


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_a_listing_filtered_to_nothing_says_so(one_day: Path, fmt: str) -> None:
    """`report runs --source thea` (and runs, snapshots, experiments list) of a catalog without
    any printed an empty table and nothing else; now a line says what it lists none of, on
    stderr in json and csv, whose stdout is still [] or the header."""
    cat = ["--catalog", str(one_day)]
    commands = {
        ("runs", "--source", "thea"): "no runs of source thea",
        ("report", "runs", "--source", "THEA"): "no runs of source thea",
        ("snapshots", "--source", "thea"): "no kept snapshots of source thea",
        ("snapshots", "--type", "tim"): "no kept snapshots of type TIM",
        ("snapshots", "--source", "wydot", "--type", "TIM"): "no kept snapshots of wydot/TIM",
        # it said "no kept snapshots" of a catalog that keeps some
        ("snapshots", "--limit", "0"): "--limit 0: no snapshot listed",
        ("experiments", "list"): "no experiments pinned",
    }
    for args, line in commands.items():
        r = run(*args, *cat, "--format", fmt)
        assert r.exit_code == 0, (args, r.output)
        if fmt == "table":
            assert r.stderr == "" and r.stdout.endswith(f"\n{line}\n"), (args, r.stdout)
            assert "added/changed/removed" not in r.stdout  # a footnote to no rows
        else:
            assert r.stderr == f"{line}\n", (args, r.stderr)
            if fmt == "json":
                assert json.loads(r.stdout) == [], args
            else:
                assert len(r.stdout.splitlines()) == 1, args  # the header
    # a listing with rows says nothing of the kind
    for args in (("runs", "--source", "wydot"), ("snapshots", "--source", "wydot")):
        r = run(*args, *cat, "--format", fmt)
        assert r.exit_code == 0 and " no " not in r.output and "\nno " not in r.output, args


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_lines_for_people_are_on_stderr_in_the_machine_formats(
    one_day: Path, tmp_path: Path, fmt: str
) -> None:
    """`runs show -f json` dropped its counts and the snapshots the run committed; cache
    status, compact, report validation and quality (its notes), trips and schema dropped
    theirs too. In json and csv they are on stderr (stdout is the data only); in the table
    format on stdout."""
    home = tmp_path / "catalog"
    shutil.copytree(one_day, home)
    [ran] = Catalog(home).runs()
    cat = ["--catalog", str(home)]
    commands = {
        ("runs", "show", ran["run_id"], *cat): [
            f"1 partition(s) currently from run {ran['run_id']}",
            "committed by the run: ",
        ],
        ("cache", "status", *cat): ["1 partitions (1 complete), "],
        ("compact", *cat): ["compacted "],
        ("report", "validation", *cat): ["0 quarantined"],
        ("report", "quality", "--source", "wydot", *cat): ["BSM: ", "note: BSM: "],
        ("trips", *cat): ["a gap of more than 120 s starts a trip"],
        ("schema", "--source", "wydot", "--type", "BSM"): ["wydot_bsm (canonical v"],
        # NGSIM too, with no --type (it was "unknown source 'ngsim'")
        ("schema", "--source", "ngsim"): ["ngsim_trajectories"],
    }
    for args, lines in commands.items():
        r = run(*args, "--format", fmt)
        assert r.exit_code == 0, (args, r.output)
        if fmt == "table":
            assert r.stderr == "", args
            people = r.stdout
        else:
            if fmt == "json":
                json.loads(r.stdout)
            else:
                assert next(csv.reader(io.StringIO(r.stdout)))[0].isidentifier(), args
            people = r.stderr
        for line in lines:
            assert any(x.strip().startswith(line) for x in people.splitlines()), (args, people)
    # changes says its counts on stderr in every format (with rows on stdout it said none)
    r = run("changes", "--source", "wydot", "--type", "BSM", "--since", "0", *cat, "-f", fmt)
    assert r.exit_code == 0 and r.stderr.endswith(" inserted, 0 deleted after snapshot 0\n")
    # ...and the end it was given (it said 'after snapshot 0' alone)
    r = run("changes", "--source", "wydot", "--type", "BSM", "--since", "0", "--until", "1",
            *cat, "-f", fmt)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert r.stderr.endswith(" deleted after snapshot 0 up to snapshot 1\n"), r.stderr


def test_times_are_utc_and_marked_so_in_every_format(one_day: Path) -> None:
    """The runs table printed `2021-04-01 10:00:00` and `10:05:00` with no zone; its json and
    csv, and cache status, gave the machine's local offset (TZ=America/Denver: -06:00) where
    snapshots gave UTC. Every format and command prints a moment as ISO 8601 in UTC."""
    denver = datetime(2021, 4, 1, 4, 30, tzinfo=timezone(timedelta(hours=-6)))
    for fmt in Format:
        assert "2021-04-01T10:30:00+00:00" in render([{"t": denver}], fmt), fmt
    [ran] = Catalog(one_day).runs()
    started = ran["started_at"].astimezone(UTC).isoformat()
    assert started.endswith("+00:00")
    table = run("runs", "--catalog", str(one_day)).stdout
    [got] = json.loads(run("runs", "--catalog", str(one_day), "-f", "json").stdout)
    assert started in table and got["started_at"] == started
    assert ran["finished_at"].astimezone(UTC).isoformat() in table
    # DuckDB reads the zone once per process: both commands in one process under Denver's
    env = {**os.environ, "TZ": "America/Denver"}
    outs = json.loads(subprocess.run(
        [sys.executable, "-c", _CLI_IN_A_ZONE, json.dumps([
            ["runs", "--catalog", str(one_day), "-f", "csv"],
            ["cache", "status", "--catalog", str(one_day), "-f", "csv"]])],
        env=env, capture_output=True, text=True, check=True, timeout=120,
    ).stdout.strip().splitlines()[-1])  # fmt: skip
    for out, column in zip(outs, ("started_at", "checked_at"), strict=True):
        [row] = csv.DictReader(io.StringIO(out))
        assert row[column].endswith("+00:00"), row
    assert row["checked_at"] == Catalog(one_day).status()[0]["checked_at"]


#: runs the cvcatalog commands given as a JSON list of argument lists in this one process (as
#: `python -m cvcatalog` does: DuckDB reads the zone once per process) and prints their stdouts
#: as a JSON list; with a catalog after them, also the first generated_at its query gives and
#: whether its shell SQL sets the session to UTC
_CLI_IN_A_ZONE = """
import json, sys
from typer.testing import CliRunner
from cvcatalog.cli.main import app
outs = []
for args in json.loads(sys.argv[1]):
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    outs.append(r.stdout)
if len(sys.argv) > 2:
    from cvcatalog import Catalog
    c = Catalog(sys.argv[2])
    t = c.query("select min(generated_at) t from wydot_bsm").t[0]
    outs += [t.isoformat(), "SET TimeZone = 'UTC';" in c.shell_sql()]
print(json.dumps(outs))
"""


def test_sql_reads_times_in_utc_whatever_the_machines_zone(one_day: Path) -> None:
    """`query` ran SQL in the machine's zone (DuckDB's default): under TZ=Asia/Kolkata
    `hour(generated_at)`, `generated_at::date` and a literal without an offset
    ('2021-04-01 12:00:00') meant Kolkata's, so the same query counted other rows on another
    machine, and other rows than `export --where` (UTC). Every session cvcatalog opens is in
    UTC, and `cvcatalog shell` (sql session) sets it too."""
    sql = (
        "select count(*) filter (where hour(generated_at) = 3) as h3, "
        "count(*) filter (where generated_at < '2021-04-01 12:00:00') as before_noon, "
        "count(*) filter (where generated_at::date = '2021-04-01') as on_day, "
        "count(*) filter (where strftime(generated_at, '%H') = '03') as h3_text from wydot_bsm"
    )
    query = ["query", sql, "--catalog", str(one_day), "-f", "json"]
    got: dict[str, Any] = {}
    # this process (its zone whatever it is), and a process in each of two other zones (DuckDB
    # reads the zone once per process); the one in Kolkata also reads a time through the API
    # and the shell's SQL
    [got["here"]] = json.loads(run(*query).stdout)
    for tz in ("Asia/Kolkata", "America/Denver"):
        outs = json.loads(subprocess.run(
            [sys.executable, "-c", _CLI_IN_A_ZONE, json.dumps([query]),
             *([str(one_day)] if tz == "Asia/Kolkata" else [])],
            env={**os.environ, "TZ": tz}, capture_output=True, text=True, check=True, timeout=120,
        ).stdout.strip().splitlines()[-1])  # fmt: skip
        [got[tz]] = json.loads(outs[0])
        if tz == "Asia/Kolkata":
            first, shell = outs[1:]
    [(total,)] = Catalog(one_day).query("select count(*) from wydot_bsm").itertuples(index=False)
    assert got["here"]["on_day"] == total and 0 < got["here"]["h3"] == got["here"]["h3_text"]
    assert got["Asia/Kolkata"] == got["here"] == got["America/Denver"], got
    assert first.endswith("+00:00") and shell is True


_INTERVALS = {  # DuckDB's INTERVAL: its text (a table, a CSV) and ISO 8601 (JSON)
    "interval 90 minute": ("01:30:00", "PT1H30M"),
    "interval '1 year 2 months 3 days 04:05:06.5'": (
        "1 year 2 months 3 days 04:05:06.5", "P1Y2M3DT4H5M6.5S"),
    "interval '-1 day'": ("-1 day", "P-1D"),
    "interval '-90 minutes'": ("-01:30:00", "PT-1H-30M"),
    "interval '1 month -2 days 00:00:00.000001'": (
        "1 month -2 days 00:00:00.000001", "P1M-2DT0.000001S"),
    "interval '-13 months'": ("-1 year -1 month", "P-1Y-1M"),
    "interval '100 hours'": ("100:00:00", "PT100H"),
    "interval 0 second": ("00:00:00", "PT0S"),
}  # fmt: skip


def test_a_duration_prints_as_one_and_json_keeps_it_exactly(one_day: Path) -> None:
    """`query "select interval 90 minute as d"` printed [0, 0, 5400000000000] (pyarrow's
    months, days, nanoseconds) in every format. A table and a CSV show it as DuckDB writes it;
    JSON gives an ISO 8601 duration, months and days kept as such."""
    sql = "select " + ", ".join(f"{q} as c{i}" for i, q in enumerate(_INTERVALS))
    cat = ["--catalog", str(one_day)]
    text = [t for t, _ in _INTERVALS.values()]
    [got] = json.loads(run("query", sql, *cat, "-f", "json").stdout)
    assert list(got.values()) == [iso for _, iso in _INTERVALS.values()]
    _, row = list(csv.reader(io.StringIO(run("query", sql, *cat, "-f", "csv").stdout)))
    assert row == text
    table = run("query", sql, *cat).stdout
    assert all(t in table for t in text) and "5400000000000" not in table
    with duckdb.connect() as con:  # the text is DuckDB's own, for any interval
        assert [v for (v,) in con.execute(
            "select (i::INTERVAL)::VARCHAR from unnest(?) t(i)", [text]
        ).fetchall()] == text  # fmt: skip
    # a timedelta (DuckDB's Python rows, pandas) prints the same way
    rows = [{"d": timedelta(hours=-1.5), "e": timedelta(days=2, microseconds=500_000)}]
    assert json.loads(render(rows, Format.json)) == [{"d": "PT-1H-30M", "e": "P2DT0.5S"}]
    assert render(rows, Format.csv).splitlines()[1] == "-01:30:00,2 days 00:00:00.5"


def test_columns_of_one_name_are_all_kept_named_as_duckdb_names_them(one_day: Path) -> None:
    """`query "select 1 as a, 2 as a" -f json` printed [{"a": 2}] (a row dict keeps one key
    per name) and the table and CSV showed 2 twice. Every format keeps both, named as DuckDB
    names them when it stores such a result: a, a_1 (case-insensitively: A_2)."""
    sql = "select 1 as a, 2 as a, 3 as A, 4 as a_1"
    cat = ["--catalog", str(one_day)]
    names = ["a", "a_1", "A_2", "a_1_1"]
    with duckdb.connect() as con:  # what DuckDB makes of them
        con.execute(f"create table t as {sql}")
        assert [c for (c, *_) in con.execute("describe t").fetchall()] == names
    assert json.loads(run("query", sql, *cat, "-f", "json").stdout) == [
        dict(zip(names, [1, 2, 3, 4], strict=True))
    ]
    assert run("query", sql, *cat, "-f", "csv").stdout == "a,a_1,A_2,a_1_1\n1,2,3,4\n"
    lines = run("query", sql, *cat).stdout.splitlines()
    assert lines[1].split() == ["┃", "a", "┃", "a_1", "┃", "A_2", "┃", "a_1_1", "┃"]
    assert lines[3].split() == ["│", "1", "│", "2", "│", "3", "│", "4", "│"]


def test_a_time_python_cannot_hold_is_printed_as_text(one_day: Path) -> None:
    """Ingest keeps a record dated 10000-01-01 (DuckDB's times go to year 294247), and then
    every `query` that reached it, in every format, was `unexpected OverflowError: date value
    out of range`, exit 1. Such a column is printed as DuckDB's text; the others as before."""
    sql = (
        "select '10000-01-01 00:00:00+00'::TIMESTAMPTZ as t, ['10000-01-02'::DATE] as l, "
        "{'s': '10000-01-03'::TIMESTAMP} as s, '2021-04-01'::DATE as d"
    )
    cat = ["--catalog", str(one_day)]
    for fmt in ("table", "csv", "json"):
        r = runner.invoke(app, ["query", sql, *cat, "-f", fmt])
        assert r.exit_code == 0, r.output
        assert all(f"10000-01-0{i}" in r.stdout for i in (1, 2, 3)), r.stdout
    [row] = json.loads(run("query", sql, *cat, "-f", "json").stdout)
    assert row["t"].startswith("10000-01-01 00:00:00") and row["d"] == "2021-04-01"


def test_a_misspelt_variable_is_one_note_when_a_command_reads_its_configuration(
    tmp_path: Path,
) -> None:
    """CVCATALOG_HOMEE=/x was ignored without a word: now one note line on stderr, not an
    error (the command goes on: here to its own error); none with --help."""
    env = {"CVCATALOG_HOMEE": str(tmp_path)}
    note = (
        "note: CVCATALOG_HOMEE is not a cvcatalog setting; ignored "
        "(did you mean CVCATALOG_HOME?)\n"
    )
    for command in (["views"], ["runs", "show", "r1"]):  # (runs: a group callback, then show)
        r = runner.invoke(app, [*command, "--catalog", str(tmp_path / "none")], env=env)
        assert r.exit_code == 1
        assert r.stderr.startswith(note) and r.stderr.count("note:") == 1, r.stderr
        assert r.stderr.splitlines()[1].startswith("error: no catalog at")
    r = runner.invoke(app, ["views", "--help"], env=env)
    assert r.exit_code == 0 and "note:" not in r.stderr


def test_every_command_waits_as_long_as_the_lock_timeout_it_is_given(tmp_path: Path) -> None:
    """CVCATALOG_CACHE__LOCK_TIMEOUT_SECONDS (or --config's cache.lock_timeout_seconds) bounds
    the wait of every command on a catalog another process holds, not only an ingest's: a
    query, `compact` or `cache clear` behind a DuckDB session that attached the catalog
    read-write waited 60 s whatever the setting said."""
    cat = Catalog(tmp_path / "catalog")
    cat.db.initialise()
    holder = subprocess.Popen(  # a foreign read-write session (not READ_ONLY) on the file
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('open', flush=True); time.sleep(120)", str(cat.paths.db)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        env = {"CVCATALOG_CACHE__LOCK_TIMEOUT_SECONDS": "1"}
        for command in (["views"], ["compact"]):
            t0 = time.monotonic()
            r = runner.invoke(app, [*command, "--catalog", str(cat.paths.root)], env=env)
            waited = time.monotonic() - t0
            assert r.exit_code == 1, (command, r.output)
            assert "held open read-write by another process for more than 1s" in r.output
            assert waited < 20, (command, waited)
        config = tmp_path / "cache.yml"
        config.write_text("cache:\n  lock_timeout_seconds: 1\n")
        t0 = time.monotonic()
        r = runner.invoke(app, ["cache", "evict", "--catalog", str(cat.paths.root),
                                "--config", str(config)])  # fmt: skip
        assert r.exit_code == 1 and "for more than 1s" in r.output, r.output
        assert time.monotonic() - t0 < 20
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("flag", ["--check-changes", "--no-check-changes"])
def test_a_dataset_ingest_refuses_the_change_check_flags_it_cannot_honour(
    tmp_path: Path, flag: str
) -> None:
    """NGSIM checks every input on every run (a changed one is loaded again, an unchanged one
    costs a HEAD or a stat), so neither flag can change what it does: both were accepted and
    ignored, where --force-refresh, --start, --scheduler ... are refused in one line."""
    csv_file = tmp_path / "t.csv"
    generate_ngsim(csv_file, 50)
    r = runner.invoke(app, ["ingest", "--source", "ngsim", "--path", str(csv_file), flag,
                            "--catalog", str(tmp_path / "cat"), "--no-progress"])  # fmt: skip
    assert (r.exit_code, r.output) == (1, f"error: --source ngsim does not take {flag}\n")
    assert not (tmp_path / "cat").exists()


@pytest.mark.parametrize(("given", "kept"), [(None, "1"), ("4", "4")])
def test_the_command_gives_openblas_one_thread_unless_told(
    monkeypatch: pytest.MonkeyPatch, given: str | None, kept: str
) -> None:
    """numpy's OpenBLAS spins a thread per core as it loads: set before the command's imports,
    and a value the user gave is kept."""
    out = subprocess.run(
        [sys.executable, "-c", _OPENBLAS_AT_IMPORT],
        capture_output=True, text=True,
        env={**{k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"},
             **({"OPENBLAS_NUM_THREADS": given} if given else {})},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == f"numpy loaded with {kept}"


#: what OPENBLAS_NUM_THREADS is when numpy starts to load under the command
_OPENBLAS_AT_IMPORT = """
import os, sys

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy":
            print("numpy loaded with", os.environ.get("OPENBLAS_NUM_THREADS"))
            sys.meta_path.remove(self)
        return None

sys.meta_path.insert(0, Watch())
sys.argv = ["cvcatalog", "--version"]
from cvcatalog.cli.entry import main
main()
"""


def test_run_ids_keys_and_limits_of_the_wrong_kind_are_one_line(one_day: Path) -> None:
    """run_partitions(5) was DuckDB's 'Could not convert string ... to INT32', runs(10**30) its
    INT128 cast; run_partitions/run_objects/run_snapshots of an unknown run returned [] where
    validation_report said there is no such run."""
    cat = Catalog(one_day)
    for call in (cat.run_partitions, cat.run_objects, cat.run_snapshots, cat.validation_report):
        with pytest.raises(ConfigError, match=r"^a run id is text, as `cvcatalog runs` lists"):
            call(5)
        with pytest.raises(CatalogError, match=r"^no ingest run 'nope' in this catalog"):
            call("nope")
    with pytest.raises(ConfigError, match=r"^a source_key is an object's key \(text\); got 5$"):
        cat.lineage(5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^limit must be at most 9,223,372,036,854,775,807"):
        cat.runs(10**30)
    run_id = cat.runs(1)[0]["run_id"]
    assert cat.run_partitions(run_id) and cat.run_snapshots(run_id)  # a real run still answers


def test_api_arguments_of_the_wrong_kind_are_one_line(one_day: Path, tmp_path: Path) -> None:
    """Each was a raw Python error from deep inside: pathlib's 'expected str, bytes or
    os.PathLike' (config=5), 'unsupported operand type(s) for +' at the first read
    (lock_timeout='x'), "'NoneType' object has no attribute 'strip'" (publish(None)), "'int'
    object has no attribute 'strip'" or SQLExpression's TypeError (where=5)."""
    cat = Catalog(one_day)
    # a mapping of the YAML's sections is a config too (what a notebook has at hand)
    cfg = cat.config("wydot", "BSM", "2021-04-01", config={"download": {"max_workers": 7}})
    assert cfg.download.max_workers == 7
    with pytest.raises(ConfigError, match=r"^invalid configuration \(config mapping\): download"):
        cat.config("wydot", "BSM", "2021-04-01", config={"download": {"max_workrs": 7}})
    with pytest.raises(ConfigError, match=r"^config is a YAML file's path, a mapping .* got 5$"):
        cat.config("wydot", "BSM", "2021-04-01", config=5)  # type: ignore[arg-type]
    for where in (tmp_path / "cat", "s3://some-bucket/published"):
        with pytest.raises(ConfigError, match=r"^lock_timeout is a number of seconds, 0 or more"):
            Catalog(where, lock_timeout="x")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^None is not an s3:// URL"):
        cat.publish(None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^where is one SQL predicate \(text\), got 5$"):
        cat.export("wydot", "BSM", "2021-04-01", output=tmp_path / "e.csv", where=5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^where is one SQL predicate \(text\), got 5$"):
        cat.query_spatial("wydot_bsm", within=(41.1, -104.8, 1000), where=5)  # type: ignore[arg-type]
    assert not (tmp_path / "e.csv").exists()
    # numbers past what the call can hold: OverflowError from deep inside (or a slice's)
    for size, got in ((1e300, "1e+300"), (10**400, "more")):
        with pytest.raises(ConfigError, match=rf"^max_size_gb .* must be at most 8,589,934,592 GB; got {re.escape(got)}$"):
            cat.evict(size)
    assert cat.query_head("select * from range(5)", 10**30)[1] == 5
    with pytest.raises(ConfigError, match=r"does not fit speed_mps \(double\)"):
        cat.to_dask("wydot", "BSM", filters=[("speed_mps", ">", 10**30)])
    # a generator of values for `in` is read once (it was used up, then Dask could not hash it)
    vid = cat.query("select vehicle_id from wydot_bsm limit 1").vehicle_id[0]
    want = cat.query("select count(*) n from wydot_bsm where vehicle_id = ?", [vid]).n[0]
    got = cat.to_dask("wydot", "BSM", filters=[("vehicle_id", "in", (v for v in [vid]))])
    assert len(got) == want > 0
    # arguments that named nothing, or were read as something else, without a word
    with pytest.raises(ConfigError, match=r"^columns names no column; leave it out"):
        cat.export("wydot", "BSM", "2021-04-01", output=tmp_path / "c.csv", columns=[])
    assert not (tmp_path / "c.csv").exists()  # ([] exported every column)
    for seed in (True, None, 1.5, "x"):  # (True split as 'True', None as a fixed 'None')
        with pytest.raises(ConfigError, match=r"^seed is a whole number"):
            cat.split_plan("wydot", "BSM", "2021-04-01", seed=seed)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^location is a site's name or a list of them"):
        cat.to_dask("ngsim", location=[])  # (an empty frame)
    with pytest.raises(ConfigError, match=r"^today must be a date like 2021-04-01"):
        cat.plan("wydot", "BSM", days_back=2, today="nope")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^scheduler is a Dask scheduler's address"):
        cat.ingest("wydot", "BSM", "2021-04-01", scheduler=5)  # ('int' has no get_executor)
    # a progress that is not one: an AttributeError once the run had started (and a
    # TypeError from inside the export's writer)
    for call in (
        lambda: cat.ingest("wydot", "BSM", "2021-04-01", progress=5),  # type: ignore[arg-type]
        lambda: cat.ingest_dataset("ngsim", [tmp_path / "n.csv"], progress=object()),  # type: ignore[arg-type]
    ):
        with pytest.raises(ConfigError, match=r"^progress is an object with the methods plan,"):
            call()
    with pytest.raises(ConfigError, match=r"^progress is a function of \(rows, bytes written\)"):
        cat.export("wydot", "BSM", "2021-04-01", output=tmp_path / "p.csv", progress=5)  # type: ignore[arg-type]
    assert not (tmp_path / "p.csv").exists()


def test_the_summarys_days_are_those_with_rows() -> None:
    """`cache status --summary` gave a last_day of today: a `no_data` marker of a day not yet
    published (and a first day of a complete day of no rows) counted as days held."""
    rows = [
        {"partition": "wydot/BSM/2021/04/01", "status": "complete", "rows": 10},
        {"partition": "wydot/BSM/2021/04/07", "status": "complete", "rows": 5},
        {"partition": "wydot/BSM/2021/03/31", "status": "complete", "rows": 0},
        {"partition": "wydot/BSM/2026/12/07", "status": "no_data", "rows": 0},
        {"partition": "thea/BSM/2021/04/01", "status": "no_data", "rows": 0},
    ]
    wydot, thea = sorted(summarise_status(rows), key=lambda s: s["table"], reverse=True)
    assert (wydot["first_day"], wydot["last_day"], wydot["partitions"]) == (
        "2021-04-01", "2021-04-07", 4
    )
    assert (thea["table"], thea["first_day"], thea["last_day"]) == ("thea/BSM", None, None)


def test_an_output_file_holds_every_row_whatever_max_rows_says(one_day: Path, tmp_path: Path) -> None:
    """`query -o big.txt` (the table format: no suffix of another) wrote the first 1,000 rows
    of 3,000 without a word; and --max-rows of 10**23 was "unexpected OverflowError"."""
    cat = ["--catalog", str(one_day)]
    out = tmp_path / "big.txt"
    r = run("query", "select * from range(3000) t(i)", *cat, "-o", str(out), "--max-rows", "10")
    assert r.exit_code == 0, r.output
    cells = [ln.split("│")[1].strip() for ln in out.read_text().splitlines() if ln.count("│") == 2]
    assert cells == [str(i) for i in range(3000)]
    for args in (["query", "select 1 as a"],
                 ["changes", "--source", "wydot", "--type", "BSM", "--since", "1"]):  # fmt: skip
        r = run(*args, *cat, "--max-rows", str(10**23))
        assert r.exit_code == 0 and "unexpected" not in r.output, r.output
