"""Issue 13's measurements: each target of the issue, measured the same way every time.

    python -m bench.targets                      # full scale (see bench/README.md for times)
    python -m bench.targets --quick              # minutes: smaller days, 100 one-object days
    python -m bench.targets --tiny --repeats 1   # seconds: proves the harness works
    python -m bench.targets --only limit,days    # some scenarios only

Scenarios (``--only``, default all, in this order):

limit   ingest vs the tightest honest limit, for a 1-day and a 7-day range (--range-days):
        ``cvcatalog ingest`` (cold, --rate-limit 0, --workers W) vs one DuckDB COPY of
        read_json with the raw record's typed columns (``limit_typed``) and vs the bench's
        canonical-SQL ``limit``. Ratio = limit seconds / ingest seconds (target >= 0.85).
days    N one-object days vs the same N objects (same bytes) under one day, each ingested into
        a fresh catalog (target <= 2x); then a warm one-day query on the N-day catalog vs on a
        10-day catalog, via Catalog.query and a plain DuckDB session (target <= 1.5x).
proxy   tests/faultproxy.py's FaultProxy adds --proxy-latency-ms to every request between the
        client and moto; small objects; objects/s of ``cvcatalog ingest`` with no flags vs
        ``s5cmd cp`` through the proxy (target >= 0.9x); also --rate-limit 0 --workers 16 and
        every --proxy-variant.
bigday  bench.run's big day (``Bench.big_day_phase``): peak RSS of one ~2 GB day's ingest,
        Parquet / raw bytes, and the warm re-run's GET count (must be 0).

Every figure is the median over --repeats runs (variants interleaved, order rotated), each run
its own process measured from outside (process start included): wall time, CPU seconds
(user + sys of the child and what it waited for) and the machine's load average before it.
Memory: bigday runs with memory.max_usage_gb 1 (the issue's 1 GiB), the others with cvcatalog's
default budget (what ``cvcatalog ingest`` runs with; raw copies then go to RAM staging,
io.memstage, shown beside the peak RSS), DuckDB's memory_limit in the COPYs following it;
--memory-gb sets one budget for all.
cvcatalog is driven only through its CLI (``python -m cvcatalog ingest``) and public API
(Catalog, the DuckLake file), so the harness outlives engine rewrites.
Results: <out>/<name>.json (every run) and <out>/<name>.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from bench.measure import RequestLog, Spawner, tree_bytes
from bench.run import BUCKET, MAIN_START, REPO, Bench, _git, _memory_gib
from bench.tools import DEFAULT_DIR as TOOLS_DIR
from bench.tools import ensure_tools
from cvcatalog.config import MemoryConfig

#: what `cvcatalog ingest` runs with when nothing is configured
DEFAULT_MEMORY_GB = MemoryConfig().max_usage_gb

SCENARIOS = ("limit", "days", "proxy", "bigday")
MANY_START = date(2019, 1, 1)  # the N one-object days (schemaVersion 6 forced)
ONE_DAY = date(2023, 6, 1)  # the same N objects under this one day
PROXY_DAY = date(2022, 3, 1)

#: preset -> option defaults (an option given on the command line always wins)
PRESETS: dict[str, dict[str, Any]] = {
    "full": {
        "repeats": 3,
        "records_per_day": 142_857,  # bench.run's default: 1,000,000 records over 7 days
        "many_days": 1000,
        "proxy_objects": 1000,
        "big_day_gb": 2.0,
        "query_reps": 25,
        "range_days": "1,7",
        "compare_days": 10,
    },
    "quick": {
        "repeats": 1,
        "records_per_day": 20_000,
        "many_days": 100,
        "proxy_objects": 200,
        "big_day_gb": 0.2,
        "query_reps": 10,
        "range_days": "1,7",
        "compare_days": 10,
    },
    "tiny": {
        "repeats": 1,
        "records_per_day": 480,
        "many_days": 3,
        "proxy_objects": 24,
        "big_day_gb": 0.002,
        "query_reps": 3,
        "range_days": "1,2",
        "compare_days": 1,
    },
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.targets",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="a few minutes (see PRESETS)")
    g.add_argument("--tiny", action="store_true", help="seconds: the harness's smoke scale")
    p.add_argument("--only", default=",".join(SCENARIOS), help=f"of {', '.join(SCENARIOS)}")
    p.add_argument("--repeats", type=int, help="runs of every variant; medians [3]")
    p.add_argument("--workers", type=int, default=8, help="--workers of the cold ingests [8]")
    p.add_argument(
        "--memory-gb",
        type=float,
        help="cvcatalog's memory.max_usage_gb (DuckDB's limit in the COPYs follows it) [the "
        "issue's 1 GiB for bigday; cvcatalog's default, what `cvcatalog ingest` runs with, for "
        "the others]",
    )
    p.add_argument("--threads", type=int, help="DuckDB threads, cvcatalog and limits [all]")
    # limit
    p.add_argument("--records-per-day", type=int, help="limit scenario: records a day [142,857]")
    p.add_argument("--range-days", help="limit scenario: ranges in days [1,7]")
    p.add_argument("--records-per-object", type=int, default=3000, help="[3000]")
    p.add_argument("--objects-per-hour", type=int, default=2, help="[2]")
    p.add_argument(
        "--limit-mode",
        choices=("single", "per_day"),
        default="single",
        help="typed limit over a range: one COPY (single) or one per day [single]",
    )
    # days
    p.add_argument("--many-days", type=int, help="days scenario: one-object days [1000]")
    p.add_argument(
        "--days-repeats",
        type=int,
        help="repeats of the two days ingests [--repeats]; each 1,000-day ingest takes minutes",
    )
    p.add_argument("--small-object-records", type=int, default=75, help="records/object [75]")
    p.add_argument("--compare-days", type=int, help="the small catalog's days [10]")
    p.add_argument("--query-reps", type=int, help="timed warm queries per process [25]")
    p.add_argument("--query-warmups", type=int, default=3, help="[3]")
    # proxy
    p.add_argument("--proxy-objects", type=int, help="proxy scenario: objects [1000]")
    p.add_argument("--proxy-records-per-object", type=int, default=100, help="[100]")
    p.add_argument("--proxy-latency-ms", type=float, default=50.0, help="per request [50]")
    p.add_argument(
        "--proxy-variant",
        action="append",
        default=[],
        metavar="FLAGS",
        help="proxy scenario: one more ingest with these flags, e.g. '--workers 64' (repeatable)",
    )
    # bigday
    p.add_argument("--big-day-gb", type=float, help="bigday scenario: GB of raw NDJSON [2]")
    # plumbing
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    p.add_argument("--name", default="targets", help="result file base name [targets]")
    p.add_argument("--work-dir", type=Path, help="scratch folder [a new temporary folder]")
    p.add_argument("--keep-work", action="store_true")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per process")
    p.add_argument(
        "--endpoint-port",
        type=int,
        help="use the moto server already listening on 127.0.0.1:PORT (it gets RESET) instead "
        "of starting one",
    )
    p.add_argument("--endpoint-log", type=Path, help="that server's access log, if any")
    p.add_argument("--tools-dir", type=Path, default=TOOLS_DIR)
    p.add_argument("--no-install-tools", action="store_true")
    a = p.parse_args(argv)
    a.preset = "tiny" if a.tiny else "quick" if a.quick else "full"
    for k, v in PRESETS[a.preset].items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.only = [s.strip() for s in a.only.split(",") if s.strip()]
    if set(a.only) - set(SCENARIOS):
        p.error(f"--only: unknown {', '.join(sorted(set(a.only) - set(SCENARIOS)))}")
    a.range_days = sorted({int(x) for x in a.range_days.split(",") if x.strip()})
    if not a.range_days or min(a.range_days) < 1 or a.repeats < 1 or a.many_days < 1:
        p.error("--range-days, --repeats and --many-days must be >= 1")
    # what bench.run's Bench reads from its arguments
    a.skip = set()
    a.rate_limit_check = 0.0
    a.records = 0
    return a


def catalog_rows(catalog: Path) -> int:
    """Rows of wydot_bsm as any DuckDB user sees them: the DuckLake file attached read-only
    (ducklake loaded from its pip package, as cvcatalog does); independent of file layout."""
    import duckdb

    from cvcatalog.io.duckdb_ext import load_extension
    from cvcatalog.sqlutil import quote_literal

    con = duckdb.connect()
    try:
        load_extension(con, "ducklake")
        lake_file = f"ducklake:{catalog / 'catalog.ducklake'}"
        con.execute(f"ATTACH {quote_literal(lake_file)} AS cv (READ_ONLY)")
        row = con.execute("SELECT count(*) FROM cv.wydot_bsm").fetchone()
    except duckdb.Error as e:
        print(f"    ! cannot count the rows of {catalog}: {e}", flush=True)
        return -1
    finally:
        con.close()
    return int(row[0]) if row else 0


def _median(xs: Sequence[float]) -> float | None:
    return round(statistics.median(xs), 4) if xs else None


def figure(recs: Sequence[dict[str, Any]], count: float | None = None) -> dict[str, Any]:
    """Medians of the ok runs of one variant (wall, CPU), their spread, the load around them."""
    ok = [r for r in recs if r.get("status") == "ok"]
    walls = [r["wall_s"] for r in ok]
    out: dict[str, Any] = {
        "runs": len(recs),
        "ok": len(ok),
        "wall_s": _median(walls),
        "wall_min_s": min(walls) if walls else None,
        "wall_max_s": max(walls) if walls else None,
        "cpu_s": _median([r["cpu_s"] for r in ok]),
        "max_rss_bytes": max((r["max_rss_bytes"] for r in ok), default=None),
        "load_1min": [r["loadavg_start"][0] for r in recs if "loadavg_start" in r],
        "failures": [r.get("why") for r in recs if r.get("status") != "ok"],
    }
    staged = [(r.get("detail") or {}).get("staged_in_memory_peak") or 0 for r in ok]
    if any(staged):  # raw copies in RAM (io.memstage): memory beside the process's RSS
        out["staged_peak_bytes"] = max(staged)
    if any("endpoint_cpu_s" in r for r in ok):
        out["endpoint_cpu_s"] = _median([r["endpoint_cpu_s"] for r in ok if "endpoint_cpu_s" in r])
    if count is not None and out["wall_s"]:
        out["per_s"] = round(count / out["wall_s"], 2)
    return out


def _cpu_floor(f: dict[str, Any], cpus: int | None) -> list[str]:
    """The endpoint CPU column and the CPU floor: (client + endpoint CPU s) / cores."""
    endpoint = f.get("endpoint_cpu_s")
    if endpoint is None or f.get("cpu_s") is None or not cpus:
        return ["-", "-"]
    return [f"{endpoint:.2f}", f"{(f['cpu_s'] + endpoint) / cpus:.2f}"]


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a and b else None


class Targets(Bench):
    def __init__(self, args: argparse.Namespace) -> None:
        self.memory_given: float | None = args.memory_gb
        args.memory_gb = DEFAULT_MEMORY_GB if args.memory_gb is None else args.memory_gb
        super().__init__(args)
        self.started = datetime.now(UTC)

    # -- plumbing --------------------------------------------------------------------------
    def fresh_endpoint(self) -> None:
        self.server.reset()
        self.client().create_bucket(Bucket=BUCKET)

    def cli_ingest(
        self, catalog: Path, start: date, end: date, flags: Sequence[str] | None = None
    ) -> list[str]:
        """`python -m cvcatalog ingest` of start..end; flags default to the bench's
        `--workers W --rate-limit 0` (pass [] for cvcatalog's defaults)."""
        if flags is None:
            flags = ["--workers", str(self.args.workers), "--rate-limit", "0"]
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
            start.isoformat(),
            "--end",
            end.isoformat(),
            "--catalog",
            str(catalog),
            *flags,
            "--no-progress",
            "--format",
            "json",
        ]

    def run_ingest_checked(
        self,
        variant: str,
        repeat: int,
        cmd: list[str],
        catalog: Path,
        rows: int,
        env_extra: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        shutil.rmtree(catalog, ignore_errors=True)
        rec, m = self.measure(variant, repeat, cmd, env_extra=env_extra)
        rec["detail"] = self.ingest_summary(m)
        self.note_failed_days(rec, catalog)
        if rec["status"] == "ok":
            self.check_rows(rec, catalog_rows(catalog), rows)
        return rec

    @staticmethod
    def check_rows(rec: dict[str, Any], got: int, want: int) -> None:
        rec["rows"] = got
        if got != want and rec["status"] == "ok":
            rec["status"] = "failed"
            rec["why"] = f"wrote {got} rows, expected {want}"
            print(f"    ! {rec['variant']}: {rec['why']}", flush=True)

    def runs_of(self, scenario: str, variant: str) -> list[dict[str, Any]]:
        return [r for r in self.runs if r.get("scenario") == scenario and r["variant"] == variant]

    def interleave(
        self,
        scenario: str,
        steps: dict[str, Callable[[int], dict[str, Any]]],
        repeats: int | None = None,
    ) -> None:
        names = list(steps)
        repeats = repeats or self.args.repeats
        for r in range(repeats):
            k = r % len(names)
            order = names[k:] + names[:k]
            print(f"[{scenario}] repeat {r + 1}/{repeats}: {' -> '.join(order)}", flush=True)
            for name in order:
                rec = steps[name](r)
                rec["scenario"] = scenario
            self.finish(partial=True)

    # -- 1. ingest vs the tightest honest limit ------------------------------------------------
    def scenario_limit(self) -> dict[str, Any]:
        a = self.args
        self.fresh_endpoint()
        per_hour = math.ceil(a.records_per_day / 24)
        files = max(1, min(a.objects_per_hour, math.ceil(per_hour / a.records_per_object)))
        ndays = max(a.range_days)
        print(f"[limit] seeding {ndays} days x {per_hour * 24} records, {files} objects/hour")
        rep = self.seed(MAIN_START, ndays, per_hour, files)
        self.replica = rep
        out: dict[str, Any] = {"replica": rep, "ranges": {}}
        endpoint = f"127.0.0.1:{self.server.port}"
        for n in a.range_days:
            end = MAIN_START + timedelta(days=n - 1)
            rows = per_hour * 24 * n
            globs = [
                f"s3://{BUCKET}/wydot/BSM/{MAIN_START + timedelta(i):%Y/%m/%d}/*/*"
                for i in range(n)
            ]
            tag = f"{n}d"

            def ingest(r: int, n: int = n, end: date = end, rows: int = rows) -> dict[str, Any]:
                catalog = self.work / f"limit-{n}d-catalog"
                rec = self.run_ingest_checked(
                    f"ingest_{n}d", r, self.cli_ingest(catalog, MAIN_START, end), catalog, rows
                )
                shutil.rmtree(catalog, ignore_errors=True)
                return rec

            def limit(
                r: int, kind: str, n: int = n, globs: list[str] = globs, rows: int = rows
            ) -> dict[str, Any]:
                dest = self.work / f"{kind}-{n}d"
                result = self.work / f"{kind}-{n}d.json"
                shutil.rmtree(dest, ignore_errors=True)
                params = {
                    "globs": globs,
                    "endpoint": endpoint,
                    "out": str(dest),
                    "memory_limit": self.memory_limit,
                    "threads": a.threads,
                    "mode": a.limit_mode if kind == "limit_typed" else "per_day",
                    "ordered": kind == "limit_ordered",
                }
                rec, _ = self.measure(
                    f"{kind}_{n}d",
                    r,
                    self.variant_cmd("limit" if kind == "limit_ordered" else kind, params, result),
                    result_file=result,
                )
                if rec["status"] == "ok":
                    rec["parquet_bytes"] = tree_bytes(dest, ".parquet")[1]
                    self.check_rows(rec, int(rec["detail"]["rows"]), rows)
                shutil.rmtree(dest, ignore_errors=True)
                return rec

            self.interleave(
                f"limit-{tag}",
                {
                    "ingest": ingest,
                    "limit_typed": functools.partial(limit, kind="limit_typed"),
                    "limit": functools.partial(limit, kind="limit"),
                    "limit_ordered": functools.partial(limit, kind="limit_ordered"),
                },
            )
            s = f"limit-{tag}"
            ing = figure(self.runs_of(s, f"ingest_{n}d"), rows)
            typed = figure(self.runs_of(s, f"limit_typed_{n}d"), rows)
            canon = figure(self.runs_of(s, f"limit_{n}d"), rows)
            canon_ordered = figure(self.runs_of(s, f"limit_ordered_{n}d"), rows)
            out["ranges"][tag] = {
                "days": n,
                "records": rows,
                "bytes": round(rep["bytes"] * n / ndays),
                "ingest": ing,
                "limit_typed": typed,
                "limit": canon,
                "ratio_typed": ratio(typed["wall_s"], ing["wall_s"]),
                "ratio_canonical": ratio(canon["wall_s"], ing["wall_s"]),
                "limit_ordered": canon_ordered,
                "ratio_ordered": ratio(canon_ordered["wall_s"], ing["wall_s"]),
            }
        return out

    # -- 2. many one-object days vs one day ----------------------------------------------------
    def seed_one_object_days(self) -> dict[str, Any]:
        """N days of one object each (hour 12) and the same bytes as N objects under ONE_DAY."""
        from cvcatalog.sandbox.replica import HourContext, ReplicaSpec, generate_hour
        from cvcatalog.sources.bucket import PartitionKey

        a = self.args
        n = a.many_days
        end = MANY_START + timedelta(days=n - 1)
        spec = ReplicaSpec(
            start=MANY_START,
            end=end,
            records_per_hour=a.small_object_records,
            files_per_hour=1,
            empty_hour_rate=0.0,
            schema_version=6,
        )
        client = self.client()
        t0 = time.perf_counter()
        records = nbytes = 0
        names: set[str] = set()

        def put(key: str, body: bytes) -> None:
            client.put_object(Bucket=BUCKET, Key=key, Body=body)

        with ThreadPoolExecutor(8) as pool:
            futures = []
            for i in range(n):
                day = MANY_START + timedelta(days=i)
                ctx = HourContext(spec, PartitionKey("wydot", "BSM", day), 12, 6, ())
                objs = generate_hour(ctx)
                assert len(objs) == 1, f"{day}: {len(objs)} objects"
                obj = objs[0]
                name = obj.key.rsplit("/", 1)[-1]
                if name in names:
                    name = f"{i:05d}-{name}"
                names.add(name)
                records += obj.records
                nbytes += len(obj.body)
                futures.append(pool.submit(put, obj.key, obj.body))
                one = f"wydot/BSM/{ONE_DAY:%Y/%m/%d}/{i % 24:02d}/{name}"
                futures.append(pool.submit(put, one, obj.body))
            for f in futures:
                f.result()
        return {
            "days": n,
            "start": MANY_START.isoformat(),
            "end": end.isoformat(),
            "one_day": ONE_DAY.isoformat(),
            "objects": n,
            "records": records,
            "bytes": nbytes,
            "records_per_object": a.small_object_records,
            "seed_seconds": round(time.perf_counter() - t0, 2),
        }

    def scenario_days(self) -> dict[str, Any]:
        a = self.args
        self.fresh_endpoint()
        n = a.many_days
        print(f"[days] seeding {n} one-object days and the same objects under {ONE_DAY}")
        rep = self.seed_one_object_days()
        end = MANY_START + timedelta(days=n - 1)
        many_cat = self.work / "days-many-catalog"
        one_cat = self.work / "days-one-catalog"

        def many(r: int) -> dict[str, Any]:
            cmd = self.cli_ingest(many_cat, MANY_START, end)
            return self.run_ingest_checked("ingest_many_days", r, cmd, many_cat, rep["records"])

        def one(r: int) -> dict[str, Any]:
            cmd = self.cli_ingest(one_cat, ONE_DAY, ONE_DAY)
            return self.run_ingest_checked("ingest_one_day", r, cmd, one_cat, rep["records"])

        self.interleave("days", {"many_days": many, "one_day": one}, a.days_repeats)
        shutil.rmtree(one_cat, ignore_errors=True)
        f_many = figure(self.runs_of("days", "ingest_many_days"), rep["objects"])
        f_one = figure(self.runs_of("days", "ingest_one_day"), rep["objects"])
        out: dict[str, Any] = {
            "replica": rep,
            "ingest_many_days": f_many,
            "ingest_one_day": f_one,
            "ratio": ratio(f_many["wall_s"], f_one["wall_s"]),
        }
        # the small catalog: the first --compare-days of the same days, one cold ingest
        k = min(a.compare_days, n)
        small_cat = self.work / "days-small-catalog"
        small_end = MANY_START + timedelta(days=k - 1)
        rec = self.run_ingest_checked(
            f"ingest_{k}_days",
            0,
            self.cli_ingest(small_cat, MANY_START, small_end),
            small_cat,
            k * a.small_object_records,
        )
        rec["scenario"] = "days-query"
        if not many_cat.exists() or rec["status"] != "ok":
            out["query"] = {"status": "failed", "why": "a catalog to query is missing"}
            return out
        catalogs = {
            "many": (many_cat, MANY_START + timedelta(days=n // 2)),
            "compare": (small_cat, MANY_START + timedelta(days=k // 2)),
        }

        def query(r: int) -> dict[str, Any]:
            result = self.work / "day-query.json"
            params = {
                "catalogs": {
                    label: {"catalog": str(cat), "day": day.isoformat()}
                    for label, (cat, day) in catalogs.items()
                },
                "reps": a.query_reps,
                "warmups": a.query_warmups,
            }
            rec, _ = self.measure(
                "day_query", r, self.variant_cmd("day_query", params, result), result_file=result
            )
            if rec["status"] == "ok":
                for label in catalogs:
                    got = rec["detail"][label]["rows_counted"]
                    self.check_rows(rec, got, a.small_object_records)
            return rec

        self.interleave("days-query", {"day_query": query})
        recs = [r for r in self.runs_of("days-query", "day_query") if r["status"] == "ok"]
        q: dict[str, Any] = {
            "status": "ok" if recs else "failed",
            "days": {"many": n, "compare": k},
            "catalogs": {},
        }
        for label in catalogs:
            per: dict[str, Any] = {"files_read": None}
            for method in ("catalog_query", "plain_duckdb"):
                per[method] = {
                    "median_ms": _median([r["detail"][label][method]["median_ms"] for r in recs]),
                    "cpu_median_ms": _median(
                        [r["detail"][label][method]["cpu_median_ms"] for r in recs]
                    ),
                }
            if recs:
                per["files_read"] = recs[0]["detail"][label].get("total_files_read")
            per["load_1min"] = [r["loadavg_start"][0] for r in recs]
            q["catalogs"][label] = per
        if recs:
            big, small = q["catalogs"]["many"], q["catalogs"]["compare"]
            for method in ("catalog_query", "plain_duckdb"):
                q[f"ratio_{method}"] = ratio(big[method]["median_ms"], small[method]["median_ms"])
                q[f"cpu_ratio_{method}"] = ratio(
                    big[method]["cpu_median_ms"], small[method]["cpu_median_ms"]
                )
        else:
            q["why"] = "the query process failed"
        out["query"] = q
        shutil.rmtree(many_cat, ignore_errors=True)
        shutil.rmtree(small_cat, ignore_errors=True)
        return out

    # -- 3. defaults sized for real S3: latency on every request ---------------------------------
    def scenario_proxy(self) -> dict[str, Any]:
        a = self.args
        sys.path.insert(0, str(REPO / "tests"))
        from faultproxy import FaultProxy, Rule  # tests/faultproxy.py (stdlib only)

        from cvcatalog.sandbox.server import sandbox_env

        self.fresh_endpoint()
        files = max(1, math.ceil(a.proxy_objects / 24))
        print(f"[proxy] seeding 24 h x {files} objects of {a.proxy_records_per_object} records")
        rep = self.seed(PROXY_DAY, 1, files * a.proxy_records_per_object, files)
        tools = ensure_tools(a.tools_dir, install=not a.no_install_tools)
        proxy = FaultProxy(self.server.endpoint_url).start()
        proxy.add(Rule("latency", op="*", key="*", times=None, delay=a.proxy_latency_ms / 1000))
        env = sandbox_env(proxy.endpoint_url)
        objects = rep["objects"]
        moto = psutil.Process(self.server.process.pid) if self.server.process else None

        def endpoint_cpu() -> float:
            """CPU seconds the endpoint has used: the moto server's process, and this one,
            whose threads are the proxy (the harness itself only waits meanwhile)."""
            t = os.times()
            used = t.user + t.system
            if moto is not None:
                c = moto.cpu_times()
                used += c.user + c.system
            return used

        try:

            def ingest(r: int, variant: str, flags: list[str]) -> dict[str, Any]:
                catalog = self.work / f"proxy-{variant}"
                before = proxy.requests()
                cpu_before = endpoint_cpu()
                cmd = self.cli_ingest(catalog, PROXY_DAY, PROXY_DAY, flags)
                rec = self.run_ingest_checked(variant, r, cmd, catalog, rep["records"], env)
                rec["endpoint_cpu_s"] = round(endpoint_cpu() - cpu_before, 2)
                rec["proxy_requests"] = proxy.requests() - before
                shutil.rmtree(catalog, ignore_errors=True)
                return rec

            def s5cmd(r: int) -> dict[str, Any]:
                if tools.s5cmd is None:
                    return self.skip("s5cmd", r, tools.problems.get("s5cmd", "not available"))
                dest = self.work / "proxy-s5cmd"
                shutil.rmtree(dest, ignore_errors=True)
                before = proxy.requests()
                cpu_before = endpoint_cpu()
                cmd = [
                    str(tools.s5cmd),
                    "--endpoint-url",
                    proxy.endpoint_url,
                    "--log",
                    "error",
                    "cp",
                    f"s3://{BUCKET}/wydot/BSM/*",
                    str(dest) + "/",
                ]
                rec, _ = self.measure("s5cmd", r, cmd, env_extra=env)
                rec["endpoint_cpu_s"] = round(endpoint_cpu() - cpu_before, 2)
                rec["proxy_requests"] = proxy.requests() - before
                if rec["status"] == "ok":
                    got = tree_bytes(dest)
                    rec["downloaded"] = {"files": got[0], "bytes": got[1]}
                    if got != (objects, rep["bytes"]):
                        rec["status"] = "failed"
                        rec["why"] = f"downloaded {got}, expected {(objects, rep['bytes'])}"
                shutil.rmtree(dest, ignore_errors=True)
                return rec

            variants = proxy_variants(a.proxy_variant)
            steps: dict[str, Callable[[int], dict[str, Any]]] = {
                name: (lambda r, name=name, flags=flags: ingest(r, name, flags))
                for name, flags in variants.items()
            }
            steps["s5cmd"] = s5cmd
            self.interleave("proxy", steps)
        finally:
            injected = proxy.injected("latency")
            proxy.stop()
        f_s5 = figure(self.runs_of("proxy", "s5cmd"), objects)
        ingests = {}
        for name, flags in variants.items():
            f = figure(self.runs_of("proxy", name), objects)
            ingests[name] = {
                "flags": " ".join(flags),
                "figure": f,
                "ratio": ratio(f.get("per_s"), f_s5.get("per_s")),
            }
        return {
            "replica": rep,
            "latency_ms": a.proxy_latency_ms,
            "latency_injected": injected,
            "s5cmd_version": tools.versions.get("s5cmd"),
            "ingests": ingests,
            "s5cmd": f_s5,
        }

    # -- 4. a big day (bench.run's scenario) ---------------------------------------------------
    def scenario_bigday(self) -> dict[str, Any]:
        before = len(self.runs)
        out = self.big_day_phase(extras=False)
        for rec in self.runs[before:]:
            rec["scenario"] = "bigday"
        ing = out.get("ingest") or {}
        if ing.get("status") == "ok" and ing.get("rows") != out.get("records"):
            out["status"] = "failed"
            out["why"] = f"ingest wrote {ing.get('rows')} rows, expected {out.get('records')}"
        if (out.get("ingest_warm") or {}).get("status") == "failed":
            out["status"] = "failed"
            out["why"] = out["ingest_warm"].get("why")
        if ing.get("parquet_bytes") and out.get("bytes"):
            out["parquet_over_raw"] = round(ing["parquet_bytes"] / out["bytes"], 4)
        return out

    # -- the invocation ----------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        import duckdb

        from cvcatalog.sandbox.server import SandboxServer, start_server

        a = self.args
        self.meta = {
            "started_at": self.started.strftime("%Y-%m-%d %H:%M UTC"),
            "command": "python -m bench.targets " + " ".join(sys.argv[1:]),
            "preset": a.preset,
            "cpus": os.cpu_count(),
            "memory_gib": _memory_gib(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
            "platform": platform.platform(),
            "git_commit": _git("rev-parse", "--short", "HEAD"),
            "git_dirty": bool(_git("status", "--porcelain", "--", "cvcatalog", "sql")),
            "work_dir": str(self.work),
        }
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = str(REPO)
        self.spawner = Spawner(self.python, REPO, env)
        if a.endpoint_port:
            self.server = SandboxServer(port=a.endpoint_port, process=None)  # stop(): no-op
            log = a.endpoint_log or self.work / "no-server-log"
            if a.endpoint_log is None:
                log.touch()  # stays empty: requests are counted by cvcatalog only
                self.notes.append("no server access log: server-side request counts are 0")
        else:
            log = self.work / "moto.log"
            self.server = start_server(port=0, log_file=log)
        self.reqlog = RequestLog(log)
        self.write_aws_config()
        scenarios: dict[str, Callable[[], dict[str, Any]]] = {
            "limit": self.scenario_limit,
            "days": self.scenario_days,
            "proxy": self.scenario_proxy,
            "bigday": self.scenario_bigday,
        }
        try:
            for name in a.only:
                t0 = time.perf_counter()
                gb = self.budget(name)
                try:
                    res = scenarios[name]()
                    res.setdefault("status", "ok")
                except Exception as e:  # one scenario failing must not lose the others
                    res = {"status": "failed", "why": f"{type(e).__name__}: {e}"}
                    print(f"  ! scenario {name}: {res['why']}", flush=True)
                res["seconds"] = round(time.perf_counter() - t0, 1)
                res["memory_gb"], res["duckdb_memory_limit"] = gb, self.memory_limit
                self.results[name] = res
                self.finish(partial=True)
        finally:
            self.server.stop()
            self.spawner.close()
            self.meta["seconds"] = round((datetime.now(UTC) - self.started).total_seconds(), 1)
            self.finish()
            if not a.keep_work:
                shutil.rmtree(self.work, ignore_errors=True)
        return self.snapshot()

    def budget(self, scenario: str) -> float:
        """The scenario's memory.max_usage_gb (bench.run's env() and limit read it)."""
        given = self.memory_given
        gb = given if given is not None else 1.0 if scenario == "bigday" else DEFAULT_MEMORY_GB
        self.args.memory_gb = gb
        self.memory_limit = MemoryConfig(max_usage_gb=gb).duckdb_memory_limit
        return gb

    def snapshot(self) -> dict[str, Any]:
        a = self.args
        config = {
            k: (sorted(v) if isinstance(v, set) else str(v) if isinstance(v, Path) else v)
            for k, v in vars(a).items()
            if k not in ("skip", "rate_limit_check", "records", "quick", "tiny")
        }
        config["duckdb_memory_limit"] = self.memory_limit
        return {
            "meta": self.meta,
            "config": config,
            "scenarios": dict(self.results),
            "targets": target_rows(self.results),
            "runs": self.runs,
            "notes": self.notes,
        }

    def finish(self, partial: bool = False) -> None:
        results = self.snapshot()
        if partial:
            results["notes"] = [*results["notes"], "partial results: the run was still going"]
        a = self.args
        a.out.mkdir(parents=True, exist_ok=True)
        path = a.out / f"{a.name}.json"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(results, indent=1, default=str) + "\n")
        os.replace(tmp, path)
        md = a.out / f"{a.name}.md"
        md.write_text(markdown(results))
        if not partial:
            print(md.read_text(), flush=True)
            print(f"wrote {md} and {path}", flush=True)


# -- the report -----------------------------------------------------------------------------------


def proxy_variants(extra: Sequence[str]) -> dict[str, list[str]]:
    """The proxy scenario's ingests by name: the defaults (no flags), --rate-limit 0 --workers
    16, and one per --proxy-variant."""
    out = {"ingest_defaults": [], "ingest_w16": ["--rate-limit", "0", "--workers", "16"]}
    for flags in extra:
        words = shlex.split(flags)
        out["ingest_" + re.sub(r"[^a-z0-9]+", "_", " ".join(words).lower()).strip("_")] = words
    return out


def target_rows(s: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target of issue 13: wanted, reached, pass (None when not measured)."""
    rows: list[dict[str, Any]] = []

    def add(target: str, wanted: str, value: float | None, ok: bool | None, unit: str) -> None:
        rows.append(
            {
                "target": target,
                "wanted": wanted,
                "reached": None if value is None else f"{value:g}{unit}",
                "pass": ok,
            }
        )

    lim = s.get("limit") or {}
    for tag, r in (lim.get("ranges") or {}).items():
        for key, what in (
            ("ratio_typed", "typed SELECT *"),
            ("ratio_canonical", "canonical SQL"),
            ("ratio_ordered", "canonical SQL in row order"),
        ):
            v = r.get(key)
            add(
                f"ingest vs limit ({what}), {tag}",
                ">= 0.85x",
                v,
                None if v is None else v >= 0.85,
                "x",
            )
    days = s.get("days") or {}
    if days:
        v = days.get("ratio")
        n = (days.get("replica") or {}).get("days")
        add(
            f"{n} one-object days vs one day of the same objects",
            "<= 2x",
            v,
            None if v is None else v <= 2,
            "x",
        )
        q = days.get("query") or {}
        for method in ("catalog_query", "plain_duckdb"):
            v = q.get(f"ratio_{method}")
            k = (q.get("days") or {}).get("compare")
            add(
                f"warm one-day query, {n} vs {k} days ({method})",
                "<= 1.5x",
                v,
                None if v is None else v <= 1.5,
                "x",
            )
    px = s.get("proxy") or {}
    for name, v in (px.get("ingests") or {}).items():
        what = "defaults" if name == "ingest_defaults" else v["flags"]
        r = v.get("ratio")
        add(
            f"objects/s vs s5cmd, {px.get('latency_ms'):g} ms latency ({what})",
            ">= 0.9x",
            r,
            None if r is None or name != "ingest_defaults" else r >= 0.9,
            "x",
        )
    big = s.get("bigday") or {}
    if big.get("ingest"):
        rss = big["ingest"].get("max_rss_bytes")
        mib = None if rss is None else round(rss / 2**20)
        add(
            f"peak RSS, one day of {big.get('bytes', 0) / 1e9:.3g} GB",
            "<= 1024 MiB",
            mib,
            None if mib is None else mib <= 1024,
            " MiB",
        )
        pr = big.get("parquet_over_raw")
        add("Parquet / raw, big day", "< 0.25", pr, None if pr is None else pr < 0.25, "")
        warm = big.get("ingest_warm") or {}
        g = warm.get("server_gets")
        add(
            "warm re-run GETs, big day",
            "0",
            g,
            None if g is None else g == 0 and warm.get("cvcatalog_gets") == 0,
            "",
        )
    return rows


def _s(x: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.0f}"


def _load(f: dict[str, Any]) -> str:
    xs = f.get("load_1min") or []
    if not xs:
        return "-"
    return f"{min(xs):.1f}" if min(xs) == max(xs) else f"{min(xs):.1f}-{max(xs):.1f}"


def _row(label: str, f: dict[str, Any], extra: Sequence[str] = ()) -> str:
    spread = (
        f" ({f['wall_min_s']:.2f}-{f['wall_max_s']:.2f})"
        if f.get("ok", 0) > 1 and f.get("wall_min_s") is not None
        else ""
    )
    rss = f.get("max_rss_bytes")
    staged = f.get("staged_peak_bytes")
    cells = [
        label,
        f"{f.get('ok', 0)}/{f.get('runs', 0)}",
        _s(f.get("wall_s")) + spread,
        _s(f.get("cpu_s")),
        _load(f),
        ("-" if rss is None else f"{rss / 2**20:,.0f}")
        + (f" + {staged / 2**20:,.0f} staged in RAM" if staged else ""),
        *extra,
    ]
    return "| " + " | ".join(cells) + " |"


HEAD = "| variant | ok/runs | wall s (min-max) | CPU s | load 1-min | peak RSS MiB |"


def markdown(res: dict[str, Any]) -> str:
    m = res["meta"]
    s = res["scenarios"]
    c = res["config"]
    out = [
        "# cvcatalog: issue 13 targets",
        "",
        f"{m.get('started_at')} on {m.get('cpus')} CPUs, {m.get('memory_gib')} GiB, load average "
        f"at start {m.get('loadavg_at_start')}; cvcatalog {m.get('git_commit')}"
        f"{' (uncommitted changes)' if m.get('git_dirty') else ''}, DuckDB {m.get('duckdb')}, "
        f"Python {m.get('python')}. Command: `{m.get('command')}` (preset {c.get('preset')}, "
        f"{c.get('repeats')} repeat(s)). {m.get('seconds', '?')} s in all.",
        "",
        "Every figure: median over the repeats of a process measured from outside (process "
        "start included); CPU s = user + sys of that process and its children; load 1-min = "
        "the machine's 1-minute load average just before each run (min-max over the runs).",
        "",
    ]
    for note in res.get("notes") or []:
        out += [f"> {note}", ""]
    out += ["## Targets", "", "| target | wanted | reached | pass |", "|---|---|---|---|"]
    for t in res["targets"]:
        ok = "-" if t["pass"] is None else "yes" if t["pass"] else "**no**"
        out.append(f"| {t['target']} | {t['wanted']} | {t['reached'] or '-'} | {ok} |")
    out.append("")
    lim = s.get("limit")
    if lim:
        out += ["## 1. Ingest vs the tightest honest limit", ""]
        if lim.get("status") != "ok":
            out += [f"Failed: {lim.get('why')}", ""]
        for r in (lim.get("ranges") or {}).values():
            out += [
                f"### {r['days']} day(s): {r['records']:,} records, {r['bytes'] / 1e9:.3f} GB",
                "",
                HEAD + " records/s | limit s / ingest s |",
                "|---|---|---|---|---|---|---|---|",
                _row(
                    f"cvcatalog ingest (cold, --rate-limit 0, --workers {c['workers']})",
                    r["ingest"],
                    [_s(r["ingest"].get("per_s"), "{:,.0f}"), "-"],
                ),
                _row(
                    "DuckDB COPY, read_json typed columns, SELECT *",
                    r["limit_typed"],
                    [_s(r["limit_typed"].get("per_s"), "{:,.0f}"), _s(r.get("ratio_typed"))],
                ),
                _row(
                    "DuckDB COPY, cvcatalog's canonical SQL (`limit`)",
                    r["limit"],
                    [_s(r["limit"].get("per_s"), "{:,.0f}"), _s(r.get("ratio_canonical"))],
                ),
                _row(
                    "DuckDB COPY, canonical SQL in the catalog's row order (`limit_ordered`)",
                    r.get("limit_ordered") or {},
                    [
                        _s((r.get("limit_ordered") or {}).get("per_s"), "{:,.0f}"),
                        _s(r.get("ratio_ordered")),
                    ],
                ),
                "",
            ]
    days = s.get("days")
    if days:
        out += ["## 2. One-object days vs one day", ""]
        rep = days.get("replica") or {}
        if rep:
            out += [
                f"{rep['days']} days ({rep['start']}..{rep['end']}) of one object each "
                f"({rep['records_per_object']} records), and the same {rep['objects']} objects "
                f"(same bytes, {rep['bytes'] / 1e6:.1f} MB) under {rep['one_day']}; each ingested "
                "cold into a fresh catalog.",
                "",
                HEAD + " objects/s |",
                "|---|---|---|---|---|---|---|",
                _row(
                    f"{rep['days']} one-object days",
                    days["ingest_many_days"],
                    [_s(days["ingest_many_days"].get("per_s"))],
                ),
                _row(
                    "the same objects as one day",
                    days["ingest_one_day"],
                    [_s(days["ingest_one_day"].get("per_s"))],
                ),
                "",
                f"Ratio: **{_s(days.get('ratio'))}x** (target <= 2x).",
                "",
            ]
        q = days.get("query") or {}
        if q.get("status") == "ok":
            out += [
                "Warm one-day count (`SELECT count(*) FROM wydot_bsm WHERE date = ...`), median "
                f"of {c['query_reps']} per process after {c['query_warmups']} warm-ups, both "
                "catalogs and both methods in one process, in turn; median over the processes:",
                "",
                "| catalog | Catalog.query ms | CPU ms | plain DuckDB ms | CPU ms | files read | load 1-min |",
                "|---|---|---|---|---|---|---|",
            ]
            for label, per in q["catalogs"].items():
                out.append(
                    f"| {q['days'][label]} days | {_s(per['catalog_query']['median_ms'])} | "
                    f"{_s(per['catalog_query']['cpu_median_ms'])} | "
                    f"{_s(per['plain_duckdb']['median_ms'])} | "
                    f"{_s(per['plain_duckdb']['cpu_median_ms'])} | {per.get('files_read')} | "
                    f"{_load(per)} |"
                )
            out += [
                "",
                f"Ratios: Catalog.query **{_s(q.get('ratio_catalog_query'))}x** (CPU "
                f"{_s(q.get('cpu_ratio_catalog_query'))}x), plain DuckDB "
                f"**{_s(q.get('ratio_plain_duckdb'))}x** (CPU {_s(q.get('cpu_ratio_plain_duckdb'))}x); "
                "target <= 1.5x.",
                "",
            ]
        elif q:
            out += [f"Query part failed: {q.get('why')}", ""]
    px = s.get("proxy")
    if px:
        out += ["## 3. Defaults sized for real S3 (latency on every request)", ""]
        rep = px.get("replica") or {}
        if rep:
            out += [
                f"{rep['objects']} objects of ~{rep['records_per_object']} records "
                f"({rep['bytes'] / 1e6:.1f} MB) in one day, through tests/faultproxy.py with "
                f"{px['latency_ms']:g} ms added to every request ({px.get('latency_injected')} "
                f"injected); s5cmd {px.get('s5cmd_version') or '-'} with its defaults.",
                "",
                HEAD + " objects/s | x s5cmd | endpoint CPU s | CPU floor s |",
                "|---|---|---|---|---|---|---|---|---|---|",
                *(
                    _row(
                        "cvcatalog ingest, no flags (defaults)"
                        if name == "ingest_defaults"
                        else f"cvcatalog ingest {v['flags']}",
                        v["figure"],
                        [
                            _s(v["figure"].get("per_s")),
                            _s(v.get("ratio")),
                            *_cpu_floor(v["figure"], m.get("cpus")),
                        ],
                    )
                    for name, v in px["ingests"].items()
                ),
                _row(
                    "s5cmd cp (defaults)",
                    px["s5cmd"],
                    [_s(px["s5cmd"].get("per_s")), "1.00", *_cpu_floor(px["s5cmd"], m.get("cpus"))],
                ),
                "",
                "Endpoint CPU s: what the local endpoint spent serving the run (the moto server "
                "and the proxy, on the same cores). CPU floor s: the client's and the endpoint's "
                "CPU seconds over the machine's cores, the least wall time the run could take "
                "here whatever its concurrency.",
                "",
            ]
        else:
            out += [f"Failed: {px.get('why')}", ""]
    big = s.get("bigday")
    if big:
        out += ["## 4. A big day (bench.run's big-day scenario)", ""]
        if big.get("ingest"):
            ing, warm = big["ingest"], big.get("ingest_warm") or {}
            rss = ing.get("max_rss_bytes")
            out += [
                f"One folder day of {big.get('records', 0):,} records, "
                f"{big.get('bytes', 0) / 1e9:.3g} GB NDJSON in {big.get('objects')} objects; "
                f"memory.max_usage_gb {big.get('memory_gb', c['memory_gb']):g}.",
                "",
                "| run | status | wall s | CPU s | load 1-min | peak RSS MiB | Parquet / raw | GETs |",
                "|---|---|---|---|---|---|---|---|",
                f"| cold ingest | {ing.get('status')} | {_s(ing.get('wall_s'))} | "
                f"{_s(ing.get('cpu_s'))} | {(ing.get('loadavg_start') or ['-'])[0]} | "
                f"{_mib(rss)} | "
                f"{_s(big.get('parquet_over_raw'), '{:.1%}')} | - |",
                f"| warm re-run | {warm.get('status', '-')} | {_s(warm.get('wall_s'))} | "
                f"{_s(warm.get('cpu_s'))} | {(warm.get('loadavg_start') or ['-'])[0]} | "
                f"{_mib(warm.get('max_rss_bytes'))} | - | "
                f"{warm.get('server_gets', '-')} (server), {warm.get('cvcatalog_gets', '-')} (cvcatalog) |",
                "",
            ]
        else:
            out += [f"Failed: {big.get('why')}", ""]
    failed = [r for r in res["runs"] if r.get("status") == "failed"]
    if failed:
        out += ["## Failed runs", ""]
        out += [f"- {r['variant']} (repeat {r.get('repeat')}): {r.get('why')}" for r in failed]
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = Targets(args).run()
    bad = [r for r in results["runs"] if r.get("status") == "failed"]
    bad_scenarios = [k for k, v in results["scenarios"].items() if v.get("status") != "ok"]
    for r in bad:
        print(f"FAILED {r['variant']} (repeat {r.get('repeat')}): {r.get('why')}", file=sys.stderr)
    for k in bad_scenarios:
        print(f"FAILED scenario {k}: {results['scenarios'][k].get('why')}", file=sys.stderr)
    return 1 if bad or bad_scenarios else 0


if __name__ == "__main__":
    sys.exit(main())
