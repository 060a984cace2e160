"""Chaos: kill -9 ingests at random moments, and race writers against each other and a reader.

`make chaos` (or `python -m bench.chaos`) starts a moto server process, seeds a replica and:

1. **Crash at any point.** Measures one full cold `cvcatalog ingest` (T), then runs `--trials`
   times: start `cvcatalog ingest` (alternately into a new catalog, and with --force-refresh
   into the complete catalog of the previous trial), SIGKILL its process group after a delay
   drawn uniformly from [0, T], check the invariants on what the kill left, re-run the same
   command (every `--double-kill-every`-th trial the re-run is killed too, then run again) and
   check that the range is complete with exactly the seeded rows.
2. **Concurrency.** `--writers` processes ingest overlapping ranges into one new catalog while
   a reader process queries it in a loop; every day must be built exactly once, no process may
   fail, every snapshot the reader sees must be consistent, and lock waits are measured.

Invariants after every kill (`check_catalog`): the views list exactly the data files of
complete partitions (never a staging, temp or orphan file); every file of a complete partition
exists and its SHA-256 matches the manifest; the views' row count equals the manifest's; no
record appears twice. After every re-run additionally: all days complete, rows == the seeded
records (the quarantined lines are the seeded malformed ones), `cache verify` clean.

A summary is printed and written to bench/results/chaos.json (and .md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import boto3

from bench.catalog_session import plain_session
from cvcatalog.io import lake
from cvcatalog.io.layout import DB_NAME, CatalogPaths, sha256_file
from cvcatalog.sandbox.replica import SeedReport, seed_replica
from cvcatalog.sandbox.server import sandbox_env, start_server
from cvcatalog.sources.bucket import BUCKET

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
START = date(2021, 4, 1)
#: What identifies one record: the same record twice in the views is a duplicate.
RECORD_KEY = "source_key, serial_stream_id, serial_record_id, serial_number, generated_at"


class InvariantError(AssertionError):
    pass


# -- the scenario's data ----------------------------------------------------------------------
@dataclass
class Scenario:
    endpoint: str
    start: date
    end: date
    report: SeedReport

    @property
    def records(self) -> int:
        return self.report.records

    @property
    def malformed(self) -> int:
        return self.report.malformed

    @property
    def data_partitions(self) -> set[str]:
        return {k for k, p in self.report.partitions.items() if p.records or p.objects}

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CVCATALOG_"))}
        env.update(sandbox_env(self.endpoint))
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        return env


def seed(endpoint: str, days: int, records_per_hour: int, files_per_hour: int) -> Scenario:
    client = boto3.client("s3", endpoint_url=endpoint, **_creds(endpoint))
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=BUCKET)
    end = START + timedelta(days=days - 1)
    report = seed_replica(
        client,
        START,
        end,
        records_per_hour=records_per_hour,
        files_per_hour=files_per_hour,
        malformed_per_day=2,
        empty_hour_rate=0.0,
    )
    return Scenario(endpoint, START, end, report)


def _creds(endpoint: str) -> dict[str, str]:
    env = sandbox_env(endpoint)
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


def ingest_cmd(
    catalog: Path, start: date, end: date, *, force: bool = False, wrapper: bool = False
) -> list[str]:
    module = "bench.chaos_cli" if wrapper else "cvcatalog"
    cmd = [sys.executable, "-m", module, "ingest", "--source", "wydot", "--type", "BSM"]
    cmd += ["--start", start.isoformat(), "--end", end.isoformat(), "--catalog", str(catalog)]
    cmd += ["--timezone", "UTC", "--rate-limit", "0", "--workers", "4", "--no-progress"]
    return cmd + (["--force-refresh"] if force else [])


# -- invariants -------------------------------------------------------------------------------
@dataclass
class Snapshot:
    complete: int = 0
    rows: int = 0
    duplicates: int = 0
    orphans: int = 0
    stale_db_copies: int = 0
    staging_files: int = 0
    running_runs: int = 0


def phase_of(catalog: Path) -> str:
    """Best guess of what an ingest is doing, from the files it leaves while it works."""
    root = catalog.resolve()
    if any(root.glob(".catalog.ducklake.*.tmp")):
        return "catalog commit"
    staging = root / "staging"
    if staging.is_dir():
        if any(staging.glob("*/*/*/*/*/out-*")) or any(staging.glob(".groups/*/*")):
            return "convert/publish"
        if any(staging.glob("*/*/*/*/*/*.json*")):  # raw copies, whole or partial
            return "download"
    if not (root / "catalog.ducklake").exists():
        return "startup"
    return "plan/list"


def check_catalog(catalog: Path, *, complete: bool = False, sc: Scenario | None = None) -> Snapshot:
    """The invariants (raise InvariantError); with complete=True also the re-run's."""
    paths = CatalogPaths.at(catalog)
    snap = Snapshot()
    snap.stale_db_copies = len(list(paths.root.glob(".catalog.ducklake.*.tmp*")))
    if paths.staging.is_dir():
        snap.staging_files = sum(1 for p in paths.staging.rglob("*") if p.is_file())
    if not paths.db.exists():
        if complete:
            raise InvariantError("no catalog database after a completed re-run")
        return snap
    con = plain_session(paths.db)
    try:
        files = con.execute(
            "SELECT f.path, f.kind, f.rows, f.sha256, p.status FROM partition_files f "
            "JOIN partitions p USING (partition_key)"
        ).fetchall()
        listed = {paths.root / f[0] for f in files}
        bad = [f for f in files if f[4] != "complete"]
        if bad:
            raise InvariantError(f"files listed for a partition that is not complete: {bad[:3]}")
        data = {str((paths.root / f[0]).resolve()) for f in files if f[1] == "data"}
        seen = set(lake.files(con, "wydot_bsm"))
        if seen != data:
            extra, missing = sorted(seen - data)[:3], sorted(data - seen)[:3]
            raise InvariantError(f"lake files != complete data files: +{extra} -{missing}")
        kept = {Path(p) for p in lake.known_files(con)}  # shown by older snapshots
        if any(("staging" in s or ".tmp" in s or ".part" in s) for s in seen):
            raise InvariantError("the lake shows a staging or temporary file")
        for rel, _kind, _rows, digest, _ in files:
            p = paths.root / rel
            if not p.exists():
                raise InvariantError(f"a complete partition's file is missing: {rel}")
            if sha256_file(p) != digest:
                raise InvariantError(f"SHA-256 mismatch: {rel}")
        manifest_rows = sum(int(f[2]) for f in files if f[1] == "data")
        row = con.execute(
            f"SELECT count(*), count(DISTINCT ({RECORD_KEY})) FROM wydot_bsm"
        ).fetchone()
        assert row is not None
        snap.rows, distinct = int(row[0]), int(row[1])
        snap.duplicates = snap.rows - distinct
        if snap.rows != manifest_rows:
            raise InvariantError(f"table rows {snap.rows} != manifest rows {manifest_rows}")
        if snap.duplicates:
            raise InvariantError(f"{snap.duplicates} duplicated records")
        parts = dict(con.execute("SELECT partition_key, status FROM partitions").fetchall())
        snap.complete = sum(1 for s in parts.values() if s == "complete")
        running = con.execute("SELECT count(*) FROM ingest_runs WHERE status = 'running'")
        snap.running_runs = int((running.fetchone() or (0,))[0])
    finally:
        con.close()
    for top in (paths.lake, paths.quarantine):
        if top.is_dir():
            snap.orphans += sum(
                1 for p in top.rglob("*") if p.is_file() and p not in listed and p not in kept
            )
    if complete and sc is not None:
        want = sc.data_partitions
        not_done = sorted(k for k in want if parts.get(k) != "complete")
        if not_done:
            raise InvariantError(f"re-run left days incomplete: {not_done}")
        if snap.rows != sc.records:
            raise InvariantError(f"rows {snap.rows} != seeded records {sc.records}")
        if snap.orphans:
            raise InvariantError(f"{snap.orphans} orphan files after a completed re-run")
    return snap


# -- crash trials -----------------------------------------------------------------------------
@dataclass
class Trial:
    n: int
    mode: str  # cold | refresh
    delay_s: float
    phase: str
    killed: bool  # False: the ingest had already finished at the kill moment
    after_kill: dict[str, int] = field(default_factory=dict)
    reruns: int = 1
    rerun_s: float = 0.0
    rows_lost: int = 0
    duplicates: int = 0
    error: str | None = None


def run_cmd(
    cmd: list[str], env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def start_and_kill(
    cmd: list[str], env: dict[str, str], delay: float, catalog: Path
) -> tuple[bool, str, float]:
    """Start cmd, SIGKILL it after delay seconds; returns (killed while running, phase,
    seconds it ran)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(min(0.01, max(deadline - time.monotonic(), 0)))
    if proc.poll() is not None:
        return False, "finished", time.monotonic() - t0
    phase = phase_of(catalog)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return True, phase, time.monotonic() - t0


def calibrate(sc: Scenario, work: Path, refresh: bool = True) -> tuple[float, float]:
    """Wall time of a full cold ingest and of a --force-refresh one (subprocess, startup
    included); without refresh the cold time stands for both."""
    catalog = work / "calibrate"
    times = []
    for force in (False, True) if refresh else (False,):
        t0 = time.monotonic()
        r = run_cmd(ingest_cmd(catalog, sc.start, sc.end, force=force), sc.env())
        times.append(time.monotonic() - t0)
        if r.returncode != 0:
            raise RuntimeError(f"calibration ingest failed: {r.stderr.strip()[-500:]}")
        check_catalog(catalog, complete=True, sc=sc)
    return times[0], times[-1]


def crash_trials(
    sc: Scenario,
    work: Path,
    trials: int,
    rng: random.Random,
    times: tuple[float, float],
    double_kill_every: int = 5,
    log: Any = print,
) -> list[Trial]:
    """Until `trials` ingests were killed while running (an ingest that finishes before its
    kill moment is checked too, and its duration becomes the new T of its mode)."""
    out: list[Trial] = []
    catalog = work / "trial-0"
    full = {"cold": times[0], "refresh": times[1]}
    n = 0
    while sum(t.killed for t in out) < trials and n < 3 * trials:
        n += 1
        mode = "cold" if n % 2 == 1 else "refresh"
        if mode == "cold":
            catalog = work / f"trial-{n}"
        force = mode == "refresh"
        cmd = ingest_cmd(catalog, sc.start, sc.end, force=force)
        delay = rng.uniform(0, full[mode])
        killed, phase, ran = start_and_kill(cmd, sc.env(), delay, catalog)
        if not killed:
            full[mode] = ran
        t = Trial(n, mode, round(delay, 3), phase, killed)
        try:
            snap = check_catalog(catalog)
            t.after_kill = {
                "complete": snap.complete,
                "rows": snap.rows,
                "orphans": snap.orphans,
                "stale_db_copies": snap.stale_db_copies,
                "running_runs": snap.running_runs,
            }
            if double_kill_every and n % double_kill_every == 0:
                second = rng.uniform(0, full["refresh"])
                start_and_kill(cmd, sc.env(), second, catalog)
                check_catalog(catalog)
                t.reruns += 1
            t0 = time.monotonic()
            r = run_cmd(cmd, sc.env())
            t.rerun_s = round(time.monotonic() - t0, 2)
            if r.returncode != 0:
                raise InvariantError(f"re-run failed: {r.stderr.strip()[-300:]}")
            final = check_catalog(catalog, complete=True, sc=sc)
            t.rows_lost = sc.records - final.rows
            t.duplicates = final.duplicates
        except InvariantError as e:
            t.error = str(e)
        out.append(t)
        log(
            f"trial {n:>3} {mode:<7} kill at {delay:5.2f}s ({phase:<15}) "
            f"complete-at-kill={t.after_kill.get('complete', '?')} "
            f"re-runs={t.reruns} {'FAIL ' + t.error if t.error else 'ok'}"
        )
    return out


# -- concurrency ------------------------------------------------------------------------------
READER = r"""
import json, sys, time
import duckdb
from cvcatalog.catalog import Catalog
from cvcatalog.exceptions import CvCatalogError
from pathlib import Path
cat = Catalog(sys.argv[1], lock_timeout=60)
stop = Path(sys.argv[2])
stats = {"queries": 0, "errors": [], "inconsistent": 0, "decreased": 0, "max_s": 0.0}
last = 0
while not cat.db.exists() and not stop.exists():  # a reader creates no catalog: a writer's does
    time.sleep(0.05)
if not cat.db.exists():
    stats["errors"].append("the writers created no catalog")
while cat.db.exists() and (not stop.exists() or stats["queries"] == 0):
    t0 = time.monotonic()
    try:
        con = cat.connect()
        try:
            n = con.execute("SELECT count(*) FROM wydot_bsm").fetchone()[0]
            m = con.execute("SELECT coalesce(sum(rows), 0) FROM partitions WHERE status = 'complete'").fetchone()[0]
        finally:
            con.close()
        stats["queries"] += 1
        stats["inconsistent"] += int(n != m)
        stats["decreased"] += int(n < last)
        last = n
    except (CvCatalogError, duckdb.Error) as e:
        stats["errors"].append(str(e)[:200])
    stats["max_s"] = max(stats["max_s"], time.monotonic() - t0)
    time.sleep(0.05)
stats["last_rows"] = last
print(json.dumps(stats))
"""


@dataclass
class ConcurrencyResult:
    writers: int
    ranges: list[tuple[str, str]]
    seconds: float
    built: dict[str, int]
    exit_codes: list[int]
    errors: list[str]
    notes: list[str]
    rows: int
    expected_rows: int
    duplicates: int
    reader: dict[str, Any]
    cli_queries: int
    cli_query_errors: list[str]
    lock_waits: dict[str, Any]
    verify_clean: bool

    @property
    def ok(self) -> bool:
        return (
            all(c == 0 for c in self.exit_codes)
            and not self.errors
            and set(self.built.values()) <= {1}
            and self.rows == self.expected_rows
            and self.duplicates == 0
            and not self.reader.get("errors")
            and not self.reader.get("inconsistent")
            and not self.cli_query_errors
            and self.verify_clean
        )


def concurrency(
    sc: Scenario, work: Path, writers: int = 4, cli_reader: bool = True
) -> ConcurrencyResult:
    """writers processes over overlapping ranges of sc's days + a reader, into one catalog."""
    catalog = work / "concurrent"
    days = (sc.end - sc.start).days + 1
    ranges: list[tuple[date, date]] = []
    for i in range(writers):
        a = sc.start + timedelta(days=(i * days) // (writers + 1))
        b = sc.end - timedelta(days=((writers - 1 - i) * days) // (writers + 1))
        ranges.append((a, b))
    ranges[-1] = (sc.start, sc.end)  # one writer wants everything
    env = sc.env()
    logs = [work / f"locks-{i}.json" for i in range(writers)]
    t0 = time.monotonic()
    procs = []
    for i, (a, b) in enumerate(ranges):
        wenv = dict(env, CHAOS_LOCK_LOG=str(logs[i]))
        cmd = [*ingest_cmd(catalog, a, b, wrapper=True), "--format", "json"]
        procs.append(
            subprocess.Popen(
                cmd, env=wenv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    stop = work / "reader.stop"
    stop.unlink(missing_ok=True)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(catalog), str(stop)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cli_queries, cli_errors = 0, []
    while cli_reader and any(p.poll() is None for p in procs):
        if not (catalog / DB_NAME).exists():
            # a query of a directory without a catalog is refused (a mistyped --catalog): the
            # CLI reader starts with the first writer's first commit
            time.sleep(0.05)
            continue
        q = run_cmd(
            [
                sys.executable,
                "-m",
                "cvcatalog",
                "query",
                "--catalog",
                str(catalog),
                "--format",
                "json",
                "select count(*) as n from wydot_bsm",
            ],
            env,
            timeout=120,
        )
        cli_queries += 1
        if q.returncode != 0 or "error" in q.stderr.lower():
            cli_errors.append(q.stderr.strip()[:200])
    outs = [p.communicate(timeout=900) for p in procs]
    seconds = time.monotonic() - t0
    stop.touch()
    rout, rerr = reader.communicate(timeout=120)
    reader_stats = (
        json.loads(rout.strip().splitlines()[-1]) if rout.strip() else {"errors": [rerr[-300:]]}
    )
    errors, notes = [], []
    for _out, err in outs:
        for line in err.splitlines():
            if line.startswith("note:"):
                notes.append(line)
            elif line.strip():
                errors.append(line)
    waits = []
    for lg in logs:
        if lg.exists():
            waits += json.loads(lg.read_text())
    lock_waits: dict[str, Any] = {}
    for kind in ("catalog", "partition"):
        ws = [w["seconds"] for w in waits if w["lock"] == kind and w["granted"]]
        lock_waits[kind] = {
            "acquisitions": len(ws),
            "max_s": round(max(ws, default=0.0), 3),
            "over_0.5s": sum(1 for w in ws if w > 0.5),
            "denied_tries": sum(1 for w in waits if w["lock"] == kind and not w["granted"]),
        }
    con = plain_session(catalog / "catalog.ducklake")
    try:
        built = dict(
            con.execute(
                "SELECT partition_key, count(DISTINCT run_id) FROM partitions "
                "WHERE status = 'complete' GROUP BY 1"
            ).fetchall()
        )
        row = con.execute(
            f"SELECT count(*), count(DISTINCT ({RECORD_KEY})) FROM wydot_bsm"
        ).fetchone()
        assert row is not None
        per_writer = [json.loads(o)[0] for o, _ in outs if o.strip()]
    finally:
        con.close()
    completes = sum(int(w.get("days_complete", 0)) for w in per_writer)
    if completes != len(built):  # a day built by two writers would show here
        errors.append(f"writers report {completes} built days for {len(built)} partitions")
    from cvcatalog.ops.cache import verify
    from cvcatalog.state.db import CatalogDB

    report = verify(CatalogDB(CatalogPaths.at(catalog)))
    return ConcurrencyResult(
        writers,
        [(a.isoformat(), b.isoformat()) for a, b in ranges],
        round(seconds, 2),
        {k: int(v) for k, v in built.items()},
        [p.returncode for p in procs],
        errors,
        sorted(set(notes)),
        int(row[0]),
        sc.records,
        int(row[0]) - int(row[1]),
        reader_stats,
        cli_queries,
        cli_errors,
        lock_waits,
        report.clean,
    )


# -- report -----------------------------------------------------------------------------------
def summarize(
    trials: list[Trial], conc: ConcurrencyResult | None, extra: dict[str, Any]
) -> dict[str, Any]:
    killed = [t for t in trials if t.killed]
    return {
        **extra,
        "trials": len(trials),
        "killed_while_running": len(killed),
        "finished_before_kill": len(trials) - len(killed),
        "kill_phases": dict(Counter(t.phase for t in trials)),
        "kill_delay_s": {
            "min": min((t.delay_s for t in trials), default=0),
            "max": max((t.delay_s for t in trials), default=0),
        },
        "modes": dict(Counter(t.mode for t in trials)),
        "reruns": sum(t.reruns for t in trials),
        "failed_trials": [asdict(t) for t in trials if t.error],
        "rows_lost": sum(t.rows_lost for t in trials),
        "duplicates": sum(t.duplicates for t in trials),
        "orphans_after_kill_max": max((t.after_kill.get("orphans", 0) for t in trials), default=0),
        "stale_db_copies_after_kill": sum(t.after_kill.get("stale_db_copies", 0) for t in trials),
        "concurrency": asdict(conc) | {"ok": conc.ok} if conc else None,
        "trial_log": [asdict(t) for t in trials],
    }


def markdown(s: dict[str, Any]) -> str:
    lines = [
        "# Chaos results",
        "",
        f"- scenario: {s['days']} days, {s['records']:,} records, {s['objects']} objects; "
        f"full cold ingest {s['cold_s']:.1f}s, refresh {s['refresh_s']:.1f}s",
        f"- crash trials: {s['killed_while_running']} kill -9 while running (+ "
        f"{s['finished_before_kill']} runs that finished before their kill moment), "
        f"modes {s['modes']}, re-runs {s['reruns']}",
        f"- kill points by phase: {s['kill_phases']}",
        f"- rows lost: {s['rows_lost']}, duplicates: {s['duplicates']}, failed trials: "
        f"{len(s['failed_trials'])}",
        f"- max orphan files left by a kill (invisible, removed by the re-run): "
        f"{s['orphans_after_kill_max']}; stale catalog copies left by kills: "
        f"{s['stale_db_copies_after_kill']}",
    ]
    c = s.get("concurrency")
    if c:
        lines += [
            f"- concurrency: {c['writers']} writers {c['ranges']} + reader, {c['seconds']}s, "
            f"ok={c['ok']}; days built once each: {sorted(set(c['built'].values())) == [1]}; "
            f"rows {c['rows']}/{c['expected_rows']}, duplicates {c['duplicates']}",
            f"- reader: {c['reader'].get('queries')} API queries + {c['cli_queries']} CLI queries, "
            f"errors {len(c['reader'].get('errors', [])) + len(c['cli_query_errors'])}, "
            f"inconsistent snapshots {c['reader'].get('inconsistent')}",
            f"- lock waits: {c['lock_waits']}",
            f"- notes printed by writers: {c['notes']}",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--records-per-hour", type=int, default=250)
    ap.add_argument("--files-per-hour", type=int, default=3)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--concurrency-days", type=int, default=8)
    ap.add_argument("--double-kill-every", type=int, default=5)
    ap.add_argument("--seed", type=int, default=20210401)
    ap.add_argument("--out", type=Path, default=RESULTS / "chaos.json")
    ap.add_argument("--work", type=Path, default=None, help="keep catalogs here (default: temp)")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    t_all = time.monotonic()
    with contextlib.ExitStack() as stack:
        work = args.work or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chaos-")))
        work.mkdir(parents=True, exist_ok=True)
        server = stack.enter_context(start_server(port=0, log_file=work / "moto.log"))
        print(f"moto server at {server.endpoint_url}; work dir {work}", flush=True)
        sc = seed(server.endpoint_url, args.days, args.records_per_hour, args.files_per_hour)
        print(
            f"seeded {sc.records:,} records + {sc.malformed} malformed lines in "
            f"{sc.report.objects} objects",
            flush=True,
        )
        cold, refresh = calibrate(sc, work)
        print(f"full ingest: cold {cold:.1f}s, --force-refresh {refresh:.1f}s", flush=True)
        trials = crash_trials(
            sc,
            work,
            args.trials,
            rng,
            (cold, refresh),
            args.double_kill_every,
            log=lambda m: print(m, flush=True),
        )
        server.reset()
        client = boto3.client("s3", endpoint_url=server.endpoint_url, **_creds(server.endpoint_url))
        client.create_bucket(Bucket=BUCKET)
        csc = seed(server.endpoint_url, args.concurrency_days, args.records_per_hour // 2, 2)
        conc = concurrency(csc, work, args.writers)
        print(f"concurrency: ok={conc.ok} built={conc.built} lock waits={conc.lock_waits}")
        extra = {
            "days": args.days,
            "records": sc.records,
            "objects": sc.report.objects,
            "cold_s": round(cold, 2),
            "refresh_s": round(refresh, 2),
            "seconds": round(time.monotonic() - t_all, 1),
            "seed": args.seed,
        }
        summary = summarize(trials, conc, extra)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2, default=str))
    args.out.with_suffix(".md").write_text(markdown(summary))
    print(markdown(summary))
    failed = (
        summary["failed_trials"] or not conc.ok or summary["rows_lost"] or summary["duplicates"]
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
