"""The S3 fault matrix: real ingests through the fault-injecting proxy, one per scenario.

``tests/test_s3_faults.py`` asserts on every outcome; run this file to print the figures of
docs/reliability.md ("S3 faults")::

    .venv/bin/python tests/faultmatrix.py            # starts its own moto server and proxy

The caller seeds two folder days (``seed``) on the endpoint; each scenario ingests into a fresh
catalog with one fault rule active, on the one object of hour 05 of day 2 (GET) or on day 2's
listing (LIST). Transient scenarios ingest day 2 only; persistent ones ingest both days (day 1
must complete regardless), then the fault is removed and the same ingest run again, which must
bring every seeded row in (rows lost = 0).
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `faultproxy` and `cvcatalog` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from faultproxy import FaultProxy, Rule

from cvcatalog.catalog import Catalog
from cvcatalog.pipeline.report import Summary as IngestSummary
from cvcatalog.sandbox.replica import SeedReport, seed_replica
from cvcatalog.sources.cvpilot import default_fetcher, ingest

D1, D2 = date(2021, 4, 1), date(2021, 4, 2)
DAY1, DAY2 = "wydot/BSM/2021/04/01", "wydot/BSM/2021/04/02"
GET_TARGET = DAY2 + "/05/*"  # exactly one object (files_per_hour=1, no empty hours)
LIST_TARGET = DAY2 + "/"
SEED: dict[str, Any] = {"records_per_hour": 10, "files_per_hour": 1, "empty_hour_rate": 0.0}
#: Download settings of every scenario (a scenario may override some).
DOWNLOAD: dict[str, Any] = {
    "rate_limit": 0,
    "max_workers": 4,
    "retry_attempts": 3,
    "retry_delay_seconds": 0.05,
}
RETRY_AFTER = 1.0  # seconds, in every SlowDown answer
TIMEOUT = 1.0  # read timeout of the latency-beyond-timeout scenarios
SLOW = 2.0  # latency added in those scenarios (> TIMEOUT)


def seed(client: Any) -> SeedReport:
    return seed_replica(client, D1, D2, **SEED)


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: str
    op: str  # GET | LIST
    times: int | None  # None: every matching request (persistent)
    expect: str  # the manifest status of day 2 after the faulty run: complete | failed
    reason: str = ""  # failed: text the recorded reason must contain (names the fault)
    rule: dict[str, Any] = field(default_factory=dict)
    download: dict[str, Any] = field(default_factory=dict)
    slow: bool = False  # takes seconds of waiting: only in the slow test run

    @property
    def persistent(self) -> bool:
        return self.times is None

    @property
    def target(self) -> str:
        return GET_TARGET if self.op == "GET" else LIST_TARGET

    @property
    def fires(self) -> str:
        return "always" if self.times is None else f"{self.times}x"


_TIMEOUT = {"timeout_seconds": TIMEOUT}
SCENARIOS: list[Scenario] = [
    # transient: retried, the day completes with every row
    Scenario("get-500-x2", "500", "GET", 2, "complete"),
    Scenario("get-slowdown-x2", "slowdown", "GET", 2, "complete", rule={"retry_after": 1.0}),
    Scenario("get-reset-x2", "reset", "GET", 2, "complete"),
    Scenario("get-truncate-x2", "truncate", "GET", 2, "complete"),
    Scenario("get-corrupt-x2", "corrupt", "GET", 2, "complete"),
    Scenario("get-latency-ok", "latency", "GET", None, "complete", rule={"delay": 0.3}),
    Scenario(
        "get-latency-timeout-x1",
        "latency",
        "GET",
        1,
        "complete",
        rule={"delay": SLOW},
        download=_TIMEOUT,
    ),
    Scenario("list-500-x2", "500", "LIST", 2, "complete"),
    Scenario("list-slowdown-x1", "slowdown", "LIST", 1, "complete", rule={"retry_after": 1.0}),
    Scenario("list-reset-x2", "reset", "LIST", 2, "complete"),
    Scenario("list-truncate-x2", "truncate", "LIST", 2, "complete"),
    Scenario("list-corrupt-x2", "corrupt", "LIST", 2, "complete"),
    Scenario("list-latency-ok", "latency", "LIST", None, "complete", rule={"delay": 0.3}),
    # persistent: the day fails with the reason, the other day completes
    Scenario("get-500-always", "500", "GET", None, "failed", "InternalError"),
    Scenario(
        "get-slowdown-always",
        "slowdown",
        "GET",
        None,
        "failed",
        "SlowDown",
        rule={"retry_after": 1.0},
        download={"retry_attempts": 2},
        slow=True,
    ),
    Scenario("get-reset-always", "reset", "GET", None, "failed", "Connection"),
    Scenario("get-truncate-always", "truncate", "GET", None, "failed", "IncompleteRead"),
    Scenario("get-corrupt-always", "corrupt", "GET", None, "failed", "checksum mismatch"),
    Scenario(
        "get-latency-timeout-always",
        "latency",
        "GET",
        None,
        "failed",
        "timeout",
        rule={"delay": SLOW},
        download={**_TIMEOUT, "retry_attempts": 2},
        slow=True,
    ),
    Scenario("list-500-always", "500", "LIST", None, "failed", "InternalError"),
    Scenario(
        "list-slowdown-always",
        "slowdown",
        "LIST",
        None,
        "failed",
        "SlowDown",
        rule={"retry_after": 1.0},
        download={"retry_attempts": 1},
        slow=True,
    ),
    Scenario("list-reset-always", "reset", "LIST", None, "failed", "Connection"),
    Scenario("list-truncate-always", "truncate", "LIST", None, "failed", "cut short or damaged"),
    Scenario("list-corrupt-always", "corrupt", "LIST", None, "failed", "cut short or damaged"),
]


@dataclass
class Outcome:
    scenario: Scenario
    status: dict[str, str]  # manifest status per partition after the faulty run
    error: str | None  # the manifest's reason for day 2
    summary_ok: bool
    rows: int  # rows in the views after the faulty run
    expected_rows: int  # seeded valid records of the days that completed
    seeded_rows: int
    faults: int  # faults the proxy injected
    requests: int  # requests of the faulted op the proxy saw
    retries: int  # attempts repeated after a transient error (IngestSummary.retries)
    refetches: int  # downloads repeated after a failed integrity check
    throttled: int
    gaps: list[float]  # seconds between each faulted request and the next one for that key
    ranged: int  # requests for the faulted key that asked for a byte range (resumed downloads)
    day2_view_rows: int
    day2_files: int
    rows_after_rerun: int  # after the faults are gone and the same ingest runs again
    rerun_status: str
    seconds: float

    @property
    def rows_lost(self) -> int:
        return self.seeded_rows - self.rows_after_rerun

    @property
    def repeats(self) -> int:
        return self.retries + self.refetches


def _ingest(
    catalog: Catalog, download: dict[str, Any], fetchers: list[Any] | None = None
) -> IngestSummary:
    start: Any = download.pop("start", D1)
    cfg = catalog.config("wydot", "BSM", start, D2, timezone="UTC", **download)
    if fetchers is None:
        return ingest(cfg)

    def factory(c: Any) -> Any:
        fetchers.append(default_fetcher(c))
        return fetchers[-1]

    return ingest(cfg, fetcher_factory=factory)


def _gaps(proxy: FaultProxy, op: str) -> list[float]:
    seen = proxy.seen(op)
    out = []
    for f in proxy.faults(op=op):
        later = [s.started for s in seen if s.key == f.key and s.started > f.at]
        if later:
            out.append(min(later) - f.at)
    return out


def run_scenario(proxy: FaultProxy, catalog_dir: Path, sc: Scenario, report: SeedReport) -> Outcome:
    """One faulty ingest into a fresh catalog, then (if day 2 failed) a clean re-run."""
    proxy.reset()
    proxy.add(Rule(sc.fault, op=sc.op, key=sc.target, times=sc.times, **sc.rule))
    cat = Catalog(catalog_dir)
    download = {**DOWNLOAD, **sc.download, "start": D1 if sc.persistent else D2}
    fetchers: list[Any] = []
    t0 = time.monotonic()
    s = _ingest(cat, dict(download), fetchers)
    seconds = time.monotonic() - t0
    status = {r["partition"]: r["status"] for r in cat.status()}
    error = next((r["error"] for r in cat.status() if r["partition"] == DAY2), None)
    rows = int(cat.query("select count(*) as n from wydot_bsm").n[0])
    day2_rows = int(cat.query("select count(*) as n from wydot_bsm where date = ?", [D2]).n[0])
    day2_files = int(
        cat.query("select count(*) as n from partition_files where partition_key = ?", [DAY2]).n[0]
    )
    expected = sum(p.records for k, p in report.partitions.items() if status.get(k) == "complete")
    seeded = sum(p.records for k, p in report.partitions.items() if k in status)
    stats = fetchers[0].stats.snapshot() if fetchers else {}
    outcome = Outcome(
        scenario=sc,
        status=status,
        error=error,
        summary_ok=s.ok,
        rows=rows,
        expected_rows=expected,
        seeded_rows=seeded,
        faults=proxy.injected(),
        requests=proxy.requests(sc.op),
        retries=s.retries,
        refetches=stats.get("integrity_failures", 0),
        throttled=stats.get("throttled", 0),
        gaps=_gaps(proxy, sc.op),
        ranged=len(proxy.seen(sc.op, sc.target, where=lambda r: bool(r.range))),
        day2_view_rows=day2_rows,
        day2_files=day2_files,
        rows_after_rerun=rows,
        rerun_status=status.get(DAY2, "?"),
        seconds=seconds,
    )
    proxy.clear_rules()
    if status.get(DAY2) != "complete":
        again = _ingest(cat, dict(download))
        outcome.rerun_status = next(d.status for d in again.days if d.key == DAY2)
        outcome.rows_after_rerun = int(cat.query("select count(*) as n from wydot_bsm").n[0])
    return outcome


def run_matrix(
    client: Any,
    endpoint: str,
    workdir: Path,
    scenarios: list[Scenario] = SCENARIOS,
    log: Callable[[str], None] = print,
    report: SeedReport | None = None,
) -> list[Outcome]:
    import os

    report = report or seed(client)
    out = []
    with FaultProxy(endpoint) as proxy:
        os.environ["AWS_ENDPOINT_URL_S3"] = proxy.endpoint_url
        for i, sc in enumerate(scenarios):
            o = run_scenario(proxy, workdir / f"cat-{i:02d}-{sc.name}", sc, report)
            log(f"{sc.name}: {o.status.get(DAY2)} in {o.seconds:.1f}s")
            out.append(o)
    return out


def table(outcomes: list[Outcome]) -> str:
    head = (
        "| scenario | fault | op | fires | faults injected | requests | retries | re-fetches "
        "| day 2 after the run | reason recorded | other day | rows lost |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for o in outcomes:
        sc = o.scenario
        reason = re.sub(r"(s3://[\w.-]+/)?wydot/BSM/[^\s:]*", "<key>", o.error or "")
        reason = re.sub(r"expected size .*", "...", reason).replace("|", "/")
        lines.append(
            f"| {sc.name} | {sc.fault} | {sc.op} | {sc.fires} | {o.faults} | {o.requests} "
            f"| {o.retries} | {o.refetches} | {o.status.get(DAY2)} | {reason or '-'} "
            f"| {o.status.get(DAY1, '-')} | {o.rows_lost} |"
        )
    failed = sum(1 for o in outcomes if o.status.get(DAY2) == "failed")
    total = (
        f"\n{len(outcomes)} scenarios: {sum(o.faults for o in outcomes)} faults injected, "
        f"{sum(o.retries for o in outcomes)} retries, {sum(o.refetches for o in outcomes)} "
        f"integrity re-fetches, {failed} days failed (every one of them a persistent fault), "
        f"{sum(o.rows_lost for o in outcomes)} rows lost after the re-run.\n"
    )
    return head + "\n".join(lines) + "\n" + total


def at_rest(proxy: FaultProxy, workdir: Path, report: SeedReport) -> list[dict[str, Any]]:
    """Corruption at rest: damage a complete catalog, then `cvcatalog cache verify [--repair]`.

    Case 1: one Parquet file of day 1 has a byte flipped, one of day 2 is deleted and a stray
    file sits in the lake; the repair re-fetches through one transient fault per day.
    Case 2: the same damage to day 2 only, but S3 resets every GET of one of its objects.
    """
    from typer.testing import CliRunner

    from cvcatalog.cli.main import app

    runner = CliRunner()
    rows: list[dict[str, Any]] = []
    for case, persistent in (
        ("flip + delete + orphan, transient faults", False),
        ("flip, persistent reset on re-fetch", True),
    ):
        proxy.reset()
        cat_dir = workdir / f"at-rest-{int(persistent)}"
        cat = Catalog(cat_dir)
        _ingest(cat, dict(DOWNLOAD))
        files = {
            key: [
                cat.paths.absolute(p)
                for p in cat.query(
                    "select path from partition_files where partition_key = ? and kind = 'data'",
                    [key],
                ).path
            ]
            for key in (DAY1, DAY2)
        }
        victim = files[DAY2][0] if persistent else files[DAY1][0]
        data = bytearray(victim.read_bytes())
        data[100] ^= 0xFF
        victim.write_bytes(bytes(data))
        if not persistent:
            files[DAY2][0].unlink()
            (files[DAY1][0].parent / "stray.parquet").write_bytes(b"not ours")
        before = cat.verify()
        gets = proxy.requests("GET")
        if persistent:
            proxy.add(Rule("reset", key=GET_TARGET, times=None))
        else:
            proxy.add(Rule("500", key=GET_TARGET, times=1))
            proxy.add(Rule("corrupt", key=DAY1 + "/07/*", times=1))
        env = {"CVCATALOG_DOWNLOAD__RETRY_DELAY_SECONDS": "0.05"}
        r = runner.invoke(app, ["cache", "verify", "--repair", "--catalog", str(cat_dir)], env=env)
        status = {x["partition"]: x["status"] for x in cat.status()}
        after = cat.verify()
        visible = int(cat.query("select count(*) as n from wydot_bsm").n[0])
        complete = sum(p.records for k, p in report.partitions.items() if status[k] == "complete")
        rows.append(
            {
                "case": case,
                "files checked": before.checked,
                "mismatched": len(before.mismatched),
                "missing": len(before.missing),
                "orphans": len(before.orphans),
                "repair exit": r.exit_code,
                "faults injected": proxy.injected(),
                "GETs to re-fetch": proxy.requests("GET") - gets,
                "day 1 / day 2 after": f"{status[DAY1]} / {status[DAY2]}",
                "verify after": "clean" if after.clean else "not clean",
                "rows visible": visible,
                "rows lost": complete - visible,
                "seeded": report.records,
            }
        )
    return rows


def at_rest_table(rows: list[dict[str, Any]]) -> str:
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


def main() -> None:
    import os
    import tempfile

    import boto3

    from cvcatalog.sandbox.server import start_server
    from cvcatalog.sources.bucket import BUCKET

    with tempfile.TemporaryDirectory() as tmp, start_server() as server:
        os.environ.update(server.env())
        client = boto3.client("s3", endpoint_url=server.endpoint_url)
        client.create_bucket(Bucket=BUCKET)
        t0 = time.monotonic()
        report = seed(client)
        outcomes = run_matrix(
            client,
            server.endpoint_url,
            Path(tmp),
            report=report,
            log=lambda m: print(m, file=sys.stderr),
        )
        print("## S3 faults\n")
        print(table(outcomes))
        with FaultProxy(server.endpoint_url) as proxy:
            os.environ["AWS_ENDPOINT_URL_S3"] = proxy.endpoint_url
            rest = at_rest(proxy, Path(tmp), report)
        print("## Corruption at rest\n")
        print(at_rest_table(rest))
        print(f"({time.monotonic() - t0:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
