"""S3 faults, end to end: real ingests through a fault-injecting HTTP proxy (tests/faultproxy.py)
in front of the local endpoint, and corruption at rest repaired by `cvcatalog cache verify`.

Transient faults are retried and the day completes with every row; persistent ones mark the day
`failed` with a reason naming the fault (exit code 1, the other day completes, nothing of the
failed day is visible); corrupted bodies are caught by the integrity check. The scenarios live in
tests/faultmatrix.py, which also prints the figures of docs/reliability.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError
from faultmatrix import (
    D1,
    D2,
    DAY1,
    DAY2,
    DOWNLOAD,
    GET_TARGET,
    SCENARIOS,
    Outcome,
    Scenario,
    run_scenario,
    seed,
)
from faultproxy import FaultProxy, Rule
from typer.testing import CliRunner
from urllib3.exceptions import ProtocolError

from cvcatalog.catalog import Catalog
from cvcatalog.cli.main import app
from cvcatalog.exceptions import QueryError
from cvcatalog.sources.bucket import BUCKET

runner = CliRunner()

#: The scenarios run by the fast suite; the others (and the ones that wait seconds) are slow.
FAST = {
    "get-500-x2",
    "get-slowdown-x2",
    "get-reset-x2",
    "get-truncate-x2",
    "get-corrupt-x2",
    "get-latency-timeout-x1",
    "list-corrupt-x2",
    "get-corrupt-always",
    "list-reset-always",
}


def _param(sc: Scenario) -> Any:
    marks = [] if sc.name in FAST and not sc.slow else [pytest.mark.slow]
    return pytest.param(sc, id=sc.name, marks=marks)


# -- the proxy itself ------------------------------------------------------------------------


def _raw_client(endpoint: str) -> Any:
    cfg = Config(
        retries={"total_max_attempts": 1},
        read_timeout=5,
        connect_timeout=5,
        response_checksum_validation="when_required",
    )
    return boto3.client("s3", endpoint_url=endpoint, config=cfg)


def test_proxy_injects_each_fault_and_counts_it(fault_proxy: FaultProxy, s3_client: Any) -> None:
    body = bytes(range(256)) * 64
    s3_client.put_object(Bucket=BUCKET, Key="k/obj.bin", Body=body)
    c = _raw_client(fault_proxy.endpoint_url)

    fault_proxy.add(Rule("500", op="HEAD", key="k/*"))
    with pytest.raises(ClientError) as e500:
        c.head_object(Bucket=BUCKET, Key="k/obj.bin")
    assert e500.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert c.head_object(Bucket=BUCKET, Key="k/obj.bin")["ContentLength"] == len(body)

    fault_proxy.add(Rule("slowdown", op="LIST", retry_after=3))
    with pytest.raises(ClientError) as slow:
        c.list_objects_v2(Bucket=BUCKET, Prefix="k/")
    assert slow.value.response["Error"]["Code"] == "SlowDown"
    assert slow.value.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "3"

    fault_proxy.add(Rule("corrupt", key="k/obj.bin"))
    got = c.get_object(Bucket=BUCKET, Key="k/obj.bin")["Body"].read()
    assert len(got) == len(body) and got != body
    assert sum(a != b for a, b in zip(got, body, strict=True)) == 3

    fault_proxy.add(Rule("truncate", key="k/obj.bin"))
    with pytest.raises((ProtocolError, Exception)) as cut:
        c.get_object(Bucket=BUCKET, Key="k/obj.bin")["Body"].read()
    assert "IncompleteRead" in repr(cut.value) or "incomplete" in str(cut.value).lower()

    fault_proxy.add(Rule("reset", op="LIST", at=0))
    with pytest.raises((ConnectionClosedError, ProtocolError, ConnectionError)):
        c.list_objects_v2(Bucket=BUCKET, Prefix="k/")

    fault_proxy.add(Rule("latency", key="k/obj.bin", delay=0.4))
    t0 = time.monotonic()
    assert c.get_object(Bucket=BUCKET, Key="k/obj.bin")["Body"].read() == body
    assert time.monotonic() - t0 >= 0.4

    assert c.get_object(Bucket=BUCKET, Key="k/obj.bin")["Body"].read() == body  # rules used up
    kinds = [f.fault for f in fault_proxy.faults()]
    assert kinds == ["500", "slowdown", "corrupt", "truncate", "reset", "latency"]
    assert fault_proxy.requests("HEAD") == 2 and fault_proxy.requests("LIST") == 2
    assert fault_proxy.requests("GET") == 4


def test_a_rule_fires_exactly_n_times_across_threads(
    fault_proxy: FaultProxy, s3_client: Any
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    s3_client.put_object(Bucket=BUCKET, Key="k/x", Body=b"x")
    fault_proxy.add(Rule("500", op="GET", key="k/*", times=5))
    c = _raw_client(fault_proxy.endpoint_url)

    def one(_: int) -> int:
        try:
            c.get_object(Bucket=BUCKET, Key="k/x")["Body"].read()
            return 0
        except ClientError:
            return 1

    with ThreadPoolExecutor(8) as pool:
        failures = sum(pool.map(one, range(40)))
    assert failures == 5 == fault_proxy.injected("500") and fault_proxy.requests("GET") == 40


# -- the fault matrix ----------------------------------------------------------------------------


def _check(o: Outcome) -> None:
    sc = o.scenario
    if sc.persistent:
        assert o.status.get(DAY1) == "complete", o  # the other day is never affected
    assert o.status.get(DAY2) == sc.expect, (o.status, o.error)
    assert o.rows == o.expected_rows  # exactly the seeded rows of the completed days
    assert o.rows_lost == 0 and o.rerun_status in ("complete", "cached")
    assert o.faults >= 1
    if sc.expect == "complete":
        assert o.summary_ok and o.error is None
        assert o.rows == o.seeded_rows
        if sc.fault == "latency" and sc.times is None:
            assert o.repeats == 0  # slow but within the timeout: no retry
        else:
            assert o.faults == sc.times
            assert o.repeats == o.faults  # every fault cost exactly one more attempt
    else:
        assert not o.summary_ok
        assert o.error and sc.reason.lower() in o.error.lower(), o.error
        assert o.day2_view_rows == 0 and o.day2_files == 0  # nothing of the day is visible
        attempts = sc.download.get("retry_attempts", DOWNLOAD["retry_attempts"]) + 1
        assert o.faults == attempts, o  # tried as often as configured, then given up
        if sc.fault == "corrupt" and sc.op == "GET":
            assert (o.retries, o.refetches) == (0, attempts)  # each copy checked and dropped
        else:
            assert o.retries == attempts - 1  # the last failure is final
        assert f"after {attempts} attempts" in o.error
    if sc.fault == "slowdown":
        assert o.throttled == o.faults
        retry_after = sc.rule["retry_after"]
        assert o.gaps and min(o.gaps) >= retry_after - 0.01, o.gaps  # Retry-After honoured
    if sc.fault == "latency" and "timeout_seconds" in sc.download:
        assert o.gaps and min(o.gaps) >= sc.download["timeout_seconds"] - 0.05
    if sc.fault == "corrupt" and sc.op == "GET" and sc.expect == "complete":
        assert (o.retries, o.refetches) == (0, sc.times)
    if sc.fault == "truncate" and sc.op == "GET":
        assert o.ranged >= 1  # the retry asked only for the missing bytes (HTTP Range)


@pytest.mark.parametrize("scenario", [_param(sc) for sc in SCENARIOS])
def test_fault_matrix(
    scenario: Scenario, fault_proxy: FaultProxy, s3_client: Any, tmp_path: Path
) -> None:
    report = seed(s3_client)
    outcome = run_scenario(fault_proxy, tmp_path / "catalog", scenario, report)
    _check(outcome)


# -- the command line ------------------------------------------------------------------------------


def _cli(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def _ingest_args(catalog: Path) -> list[str]:
    return [
        "ingest",
        "--source",
        "wydot",
        "--type",
        "BSM",
        "--start",
        str(D1),
        "--end",
        str(D2),
        "--timezone",
        "UTC",
        "--catalog",
        str(catalog),
        "--rate-limit",
        "0",
        "--no-progress",
    ]


def test_cli_persistent_fault_fails_the_day_with_one_line(
    fault_proxy: FaultProxy, s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fault, reason = "500", "InternalError"
    report = seed(s3_client)
    monkeypatch.setenv("CVCATALOG_DOWNLOAD__RETRY_DELAY_SECONDS", "0.05")
    fault_proxy.add(Rule(fault, key=GET_TARGET, times=None))
    r = _cli(*_ingest_args(catalog_dir))
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    failed = [line for line in r.output.splitlines() if "failed" in line and DAY2 in line]
    assert len(failed) == 1, r.output
    assert reason in failed[0] and "after 4 attempts" in failed[0]
    assert "1 complete" in r.output and "1 failed" in r.output
    # nothing else on the terminal: no log lines, no warnings, no traceback
    assert len(r.output.strip().splitlines()) == 2, r.output

    status = {row["partition"]: row for row in Catalog(catalog_dir).status()}
    assert status[DAY2]["status"] == "failed" and reason in (status[DAY2]["error"] or "")
    assert status[DAY1]["status"] == "complete"

    fault_proxy.clear_rules()  # the endpoint recovers: the failed day is fetched again
    r = _cli(*_ingest_args(catalog_dir))
    assert r.exit_code == 0, r.output
    # the run's rows: the day it fetched again (the cached day's are the first run's)
    day2 = report.partitions[DAY2].records
    assert "1 complete, 1 cached" in r.output and f"; {day2:,} rows, " in r.output


@pytest.mark.slow
def test_cli_process_prints_only_the_summary_under_persistent_corruption(
    fault_proxy: FaultProxy, s3_client: Any, catalog_dir: Path
) -> None:
    """A real process (no pytest log capture): the integrity retries print nothing raw."""
    seed(s3_client)
    fault_proxy.add(Rule("corrupt", key=GET_TARGET, times=None))
    env = dict(os.environ, CVCATALOG_DOWNLOAD__RETRY_DELAY_SECONDS="0.05")
    env.pop("CVCATALOG_DEBUG", None)
    r = subprocess.run(
        [sys.executable, "-m", "cvcatalog", *_ingest_args(catalog_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1, r.stderr
    assert r.stderr == ""  # no warnings, no traceback (--no-progress: no bars either)
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2 and "1 complete" in lines[0] and "1 failed" in lines[0], r.stdout
    assert lines[1].startswith(f"  failed {DAY2}: download failed: ")
    assert "checksum mismatch after 4 attempts" in lines[1]
    assert fault_proxy.injected("corrupt") == 4


# -- corruption at rest ----------------------------------------------------------------------------


def _flip(path: Path, at: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[min(at, len(data) - 1)] ^= 0xFF
    path.write_bytes(bytes(data))


def _data_files(cat: Catalog, key: str) -> list[Path]:
    rows = cat.query(
        "select path from partition_files where partition_key = ? and kind = 'data'", [key]
    )
    return [cat.paths.absolute(p) for p in rows.path]


def test_cache_verify_reports_and_repair_refetches(
    fault_proxy: FaultProxy, s3_client: Any, catalog_dir: Path
) -> None:
    report = seed(s3_client)
    cat = Catalog(catalog_dir)
    assert cat.ingest("wydot", "BSM", D1, D2, timezone="UTC", **DOWNLOAD).ok
    bad = _data_files(cat, DAY1)[0]
    gone = _data_files(cat, DAY2)[0]
    _flip(bad)  # same size, other bytes
    gone.unlink()
    rel_bad, rel_gone = cat.paths.relative(bad), cat.paths.relative(gone)

    r = _cli("cache", "verify", "--catalog", str(catalog_dir), "--format", "csv")
    assert r.exit_code == 1
    assert f"checksum mismatch,{rel_bad}" in r.output and f"missing file,{rel_gone}" in r.output
    assert "1 mismatched, 1 missing" in r.output
    gets_before = fault_proxy.requests("GET")

    # repair re-fetches both days from S3 -- through a transient fault, which is retried
    fault_proxy.add(Rule("500", key=GET_TARGET, times=1))
    fault_proxy.add(Rule("corrupt", key=DAY1 + "/07/*", times=1))
    r = _cli("cache", "verify", "--repair", "--catalog", str(catalog_dir))
    assert r.exit_code == 0, r.output
    assert f"re-fetched {DAY1}" in r.output and f"re-fetched {DAY2}" in r.output
    assert fault_proxy.injected() == 2
    assert fault_proxy.requests("GET") - gets_before == report.objects + 2  # every object again

    assert cat.verify().clean
    assert cat.query("select count(*) as n from wydot_bsm").n[0] == report.records
    per_day = dict(cat.query("select date, count(*) from wydot_bsm group by 1").itertuples(False))
    assert per_day == {p.day: p.records for p in report.partitions.values()}
    r = _cli("cache", "verify", "--catalog", str(catalog_dir))
    assert r.exit_code == 0 and "0 mismatched, 0 missing, 0 orphans" in r.output
    # the repair rebuilt the table (its damaged file could not be deleted from it): the feed
    # read across it said every row was inserted and none deleted; now one line, and the feed
    # from the rebuild on (which hid the damaged days) is the re-fetch's inserts
    first = min(x["snapshot_id"] for x in cat.snapshots())
    r = _cli("changes", "--source", "wydot", "--type", "BSM", "--since", str(first),
             "--catalog", str(catalog_dir))  # fmt: skip
    assert r.exit_code == 1 and "table was rebuilt at snapshot" in r.stderr, r.output
    rebuilt = int(r.stderr.split("rebuilt at snapshot ")[1].split()[0])
    after = cat.changes("wydot", "BSM", since=rebuilt)
    assert len(after) == report.records and set(after.change_type) == {"insert"}
    assert cat.query("select count(*) as n from wydot_bsm", snapshot=rebuilt).n[0] == 0


def test_a_repair_that_cannot_fetch_says_why(
    fault_proxy: FaultProxy, s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A re-fetch that failed printed "re-fetched <day>: 0 rows" and exit 1, never why."""
    seed(s3_client)
    cat = Catalog(catalog_dir)
    assert cat.ingest("wydot", "BSM", D1, D2, timezone="UTC", **DOWNLOAD).ok
    _data_files(cat, DAY2)[0].unlink()
    fault_proxy.add(Rule("500", key=DAY2 + "/*", times=None))
    monkeypatch.setenv("CVCATALOG_DOWNLOAD__RETRY_ATTEMPTS", "0")  # fails at once
    r = _cli("cache", "verify", "--repair", "--catalog", str(catalog_dir))
    assert r.exit_code == 1
    assert f"re-fetched {DAY2}" not in r.output
    [line] = [x for x in r.output.splitlines() if DAY2 in x and "re-fetch" in x]
    assert line.startswith(f"could not re-fetch {DAY2}: ") and "500" in line, r.output


def test_a_repair_reads_the_config_an_ingest_reads(
    fault_proxy: FaultProxy, s3_client: Any, catalog_dir: Path, tmp_path: Path
) -> None:
    """`cache verify --repair --config FILE`: the re-fetch is an ingest of the file's settings,
    its cache.max_size_gb kept at the end (the day it restores is never the one evicted)."""
    seed(s3_client)
    cat = Catalog(catalog_dir)
    assert cat.ingest("wydot", "BSM", D1, D2, timezone="UTC", **DOWNLOAD).ok
    _data_files(cat, DAY2)[0].unlink()
    small = tmp_path / "small.yml"
    small.write_text("cache:\n  max_size_gb: 0.000001\n")
    r = _cli("cache", "verify", "--repair", "--catalog", str(catalog_dir), "--config", str(small))
    assert r.exit_code == 0, r.output
    assert f"re-fetched {DAY2}" in r.output
    # the file's limit: the other day went, the repaired one stays
    assert set(cat.query("select distinct date::VARCHAR as d from wydot_bsm").d) == {str(D2)}


@pytest.mark.slow
def test_repair_that_cannot_refetch_fails_loudly_and_hides_the_day(
    fault_proxy: FaultProxy, s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = seed(s3_client)
    cat = Catalog(catalog_dir)
    assert cat.ingest("wydot", "BSM", D1, D2, timezone="UTC", **DOWNLOAD).ok
    _flip(_data_files(cat, DAY2)[0])
    monkeypatch.setenv("CVCATALOG_DOWNLOAD__RETRY_DELAY_SECONDS", "0.05")
    fault_proxy.add(Rule("reset", key=GET_TARGET, times=None))
    r = _cli("cache", "verify", "--repair", "--catalog", str(catalog_dir))
    assert r.exit_code == 1 and "Traceback" not in r.output
    status = {row["partition"]: row for row in cat.status()}
    assert status[DAY2]["status"] == "failed"  # never complete with damaged or missing data
    assert status[DAY1]["status"] == "complete"
    n = cat.query("select count(*) as n from wydot_bsm where date = ?", [D2]).n[0]
    assert n == 0
    assert cat.query("select count(*) as n from wydot_bsm").n[0] == report.partitions[DAY1].records

    # the damaged file went; the snapshots before the repair still show it: nothing could
    # stand in for it then
    [line] = [x for x in r.output.splitlines() if x.startswith("cannot mend")]
    assert "only older snapshot" in line and "no file of the catalog has its bytes" in line

    fault_proxy.clear_rules()
    s = cat.ingest("wydot", "BSM", D1, D2, timezone="UTC", **DOWNLOAD)
    assert s.ok and s.count("complete") == 1 and s.count("cached") == 1
    assert cat.query("select count(*) as n from wydot_bsm").n[0] == report.records
    # the day converted again has those bytes: the next repair restores the older snapshots'
    # file from it, fetching nothing
    kept = cat.verify()
    assert len(kept.missing) == 1 and list(kept.kept_only) == kept.missing
    gets = fault_proxy.requests("GET")
    [mended] = cat.repair(kept)
    assert not mended.failed and mended.line is not None and mended.line.startswith("restored")
    assert fault_proxy.requests("GET") == gets
    assert cat.verify().clean


def test_env_points_at_the_proxy(fault_proxy: FaultProxy) -> None:
    assert os.environ["AWS_ENDPOINT_URL_S3"] == fault_proxy.endpoint_url


def test_a_listing_cut_short_is_named_as_such(fault_proxy: FaultProxy, s3_client: Any) -> None:
    """botocore turns an unparseable 200 into a synthetic 500; the error must not blame S3."""
    from cvcatalog.config import DownloadConfig
    from cvcatalog.exceptions import S3Error
    from cvcatalog.io.download import S3Fetcher
    from cvcatalog.io.s3 import make_client

    s3_client.put_object(Bucket=BUCKET, Key="k/a", Body=b"a")
    cfg = DownloadConfig(rate_limit=0, retry_attempts=1, retry_delay_seconds=0)
    fetcher = S3Fetcher(make_client(cfg), cfg, BUCKET)
    for fault in ("truncate", "corrupt"):
        fault_proxy.reset()
        fault_proxy.add(Rule(fault, op="LIST", times=None))
        with pytest.raises(S3Error) as e:
            fetcher.list("k/")
        assert "cut short or damaged in transit" in str(e.value), e.value
        assert "after 2 attempts" in str(e.value) and "Internal" not in str(e.value)
    fault_proxy.reset()
    fault_proxy.add(Rule("500", op="LIST", times=None))  # a real 500 is still a 500
    with pytest.raises(S3Error, match="InternalError"):
        fetcher.list("k/")


@pytest.mark.slow
def test_a_missing_lake_file_fails_later_writes_clearly_until_repaired(
    fault_proxy: FaultProxy, s3_client: Any, catalog_dir: Path
) -> None:
    report = seed(s3_client)
    cat = Catalog(catalog_dir)
    assert cat.ingest("wydot", "BSM", D1, D1, timezone="UTC", **DOWNLOAD).ok
    _data_files(cat, DAY1)[0].unlink()
    # adding a day never reads the other days' files; reading the damaged day says what to do
    assert cat.ingest("wydot", "BSM", D2, D2, timezone="UTC", **DOWNLOAD).ok
    with pytest.raises(QueryError, match="cache verify --repair"):
        cat.query("select sum(speed_mps) as s from wydot_bsm")
    r = _cli("cache", "verify", "--repair", "--catalog", str(catalog_dir))
    assert r.exit_code == 0, r.output
    assert cat.ingest("wydot", "BSM", D1, D2, timezone="UTC", **DOWNLOAD).ok
    assert cat.query("select count(*) as n from wydot_bsm").n[0] == report.records
    assert cat.verify().clean
