"""The ML hand-off (issue 16): how fast the frames an ML pipeline reads come out of the catalog.

`python -m bench.ml_frames` (part of `make bench`) seeds the issue's week on a local moto
server (326,000 WYDOT BSM records of schemaVersion 6 in 326 objects: 2021-04-01..07, 2,000
records an hour in 2 objects, seed 42, 4 % empty hours), ingests it once, then measures each
variant warm, in a fresh child process (process start and imports included), `--repeats` times:

- **a** `to_dask(naming="socrata", columns=<the consumer's 19 columns>)` + per-vehicle
  count/mean of speed (`groupby('coreData_id')['coreData_speed'].agg(['count', 'mean'])`)
- **b** the full socrata frame + the same aggregate
- **c** the baseline: `dask.dataframe.read_parquet` of the canonical columns the 19 come from,
  straight from the catalog's Parquet files, + the same aggregate on `vehicle_id`/`speed_mps`
- **a_all**, **c_all** (context, no target): the 19 columns materialised (`.compute()` of the
  whole frame, what the consumer's cleaner does) from a and c
- **floor_a**, **floor_c** (context): the fixed cost of each, everything but the compute
  (imports, opening the catalog, building the frame), to show where time and RSS go

Reported: medians of wall seconds, CPU seconds (user + sys) and peak RSS, and `uptime` load
before and after. Targets: a ≤ 2x c and ≤ 300 MB peak RSS; b ≤ 4x c. Results go to
bench/results/ml_frames.{md,json}. Every variant's aggregate must agree (checked).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from bench.measure import run_measured

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
START, END = date(2021, 4, 1), date(2021, 4, 7)
SEED = {
    "seed": 42,
    "records_per_hour": 2000,
    "files_per_hour": 2,
    "empty_hour_rate": 0.04,  # seed 42: 163 of 168 hours hold data -> 326 objects
    "schema_version": 6,
    "vehicles": 50,
}
#: the socrata columns the consumer's first cleaner reads, and the canonical ones they come from
ML_COLUMNS = [
    "metadata_generatedAt", "metadata_recordType", "metadata_serialId_streamId",
    "metadata_serialId_bundleSize", "metadata_serialId_bundleId", "metadata_serialId_recordId",
    "metadata_serialId_serialNumber", "metadata_receivedAt", "coreData_id", "coreData_secMark",
    "coreData_position_lat", "coreData_position_long", "coreData_accuracy_semiMajor",
    "coreData_accuracy_semiMinor", "coreData_elevation", "coreData_accelset_accelYaw",
    "coreData_speed", "coreData_heading", "coreData_position",
]  # fmt: skip
CANONICAL = [
    "generated_at", "record_type", "serial_stream_id", "serial_bundle_size", "serial_bundle_id",
    "serial_record_id", "serial_number", "received_at", "vehicle_id", "sec_mark", "latitude",
    "longitude", "accuracy_semi_major_m", "accuracy_semi_minor_m", "elevation_m",
    "accel_yaw_dps", "speed_mps", "heading_deg",
]  # fmt: skip
VARIANTS = {
    "a": "19-column socrata frame + per-vehicle count/mean of speed",
    "b": "full socrata frame + the same aggregate",
    "c": "baseline dd.read_parquet of the 18 canonical columns + the same aggregate",
    "a_all": "19-column socrata frame, materialised (.compute())",
    "c_all": "baseline dd.read_parquet of the 18 canonical columns, materialised",
    "floor_a": "fixed cost of a: imports, catalog opened, 19-column frame built, nothing computed",
    "floor_c": "fixed cost of c: imports (dask.dataframe, pyarrow, distributed), frame built",
}
TARGETS = {"a": 2.0, "b": 4.0}  # x the baseline c
RSS_TARGET_MB = {"a": 300}


# -- the child: one variant ----------------------------------------------------------------------
def child(variant: str, catalog: Path) -> dict[str, Any]:
    """Run one variant in this (fresh) process; what it computed, for the cross-check."""
    t0 = time.perf_counter()
    import dask.dataframe as dd

    if variant.startswith(("c", "floor_c")):
        files = sorted(
            str(p) for p in (catalog / "lake").rglob("*.parquet") if "wydot_bsm" in str(p)
        )
        frame = dd.read_parquet(files, columns=CANONICAL)
        vid, speed = "vehicle_id", "speed_mps"
    else:
        from cvcatalog.catalog import Catalog

        cat = Catalog(catalog)
        cols = None if variant == "b" else ML_COLUMNS
        frame = cat.to_dask("wydot", "BSM", START, END, naming="socrata", columns=cols)
        vid, speed = "coreData_id", "coreData_speed"
    built = time.perf_counter() - t0
    out: dict[str, Any] = {"variant": variant, "npartitions": frame.npartitions}
    if variant.startswith("floor"):
        import distributed  # noqa: F401  (what compute() imports first)

        out.update(rows=0, speed_sum=0.0)
    elif variant.endswith("_all"):
        pdf = frame.compute()
        out.update(rows=len(pdf), columns=len(pdf.columns), speed_sum=float(pdf[speed].sum()))
    else:
        agg = frame.groupby(vid)[speed].agg(["count", "mean"]).compute()
        out.update(
            rows=int(agg["count"].sum()),
            vehicles=len(agg),
            speed_sum=float((agg["count"] * agg["mean"]).sum()),
        )
    out.update(frame_s=round(built, 3), total_s=round(time.perf_counter() - t0, 3), **_rss_split())
    return out


def _rss_split() -> dict[str, float]:
    """The child's resident memory at its end, anonymous (its own allocations) and file-backed
    (mapped shared libraries: how much of a library counts depends on how much of it the page
    cache holds, e.g. more in a freshly installed venv), in MB; {} where /proc is missing."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    kb = {k: int(v.split()[0]) for k, _, v in (x.partition(":") for x in lines)
          if k in ("RssAnon", "RssFile")}  # fmt: skip
    return {f"end_{k[3:].lower()}_mb": round(v / 1024, 1) for k, v in kb.items()}


# -- the parent: seed, ingest, measure -----------------------------------------------------------
def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


def prepare(work: Path) -> dict[str, Any]:
    """Seed the week and ingest it once (kept in work/ while its spec is the same)."""
    import boto3

    from cvcatalog.catalog import Catalog
    from cvcatalog.sandbox.replica import seed_replica
    from cvcatalog.sandbox.server import sandbox_env, start_server
    from cvcatalog.sources.bucket import BUCKET

    marker = work / "prepared.json"
    spec = {"start": START.isoformat(), "end": END.isoformat(), **SEED}
    if marker.exists():
        done = json.loads(marker.read_text())
        if done.get("spec") == spec:
            return dict(done)
    catalog = work / "catalog"
    if catalog.exists():
        import shutil

        shutil.rmtree(catalog)
    with start_server() as server:
        env = sandbox_env(server.endpoint_url)
        os.environ.update(env)
        client = boto3.client("s3", endpoint_url=server.endpoint_url)
        client.create_bucket(Bucket=BUCKET)
        t0 = time.perf_counter()
        rep = seed_replica(client, START, END, processes=2, workers=8, **SEED)  # type: ignore[arg-type]
        seeded = time.perf_counter() - t0
        t0 = time.perf_counter()
        summary = Catalog(catalog).ingest(
            "wydot", "BSM", START, END, timezone="UTC", rate_limit=0, max_workers=8
        )
        ingested = time.perf_counter() - t0
        if not summary.ok:
            raise SystemExit(f"ingest failed: {summary.as_dict()}")
    files = [p for p in (catalog / "lake").rglob("*.parquet") if "wydot_bsm" in str(p)]
    done = {
        "spec": spec,
        "records": rep.records,
        "objects": rep.objects,
        "rows": summary.rows,
        "parquet_files": len(files),
        "parquet_bytes": sum(p.stat().st_size for p in files),
        "seed_s": round(seeded, 1),
        "ingest_s": round(ingested, 1),
    }
    marker.write_text(json.dumps(done, indent=2))
    return done


def measure(work: Path, repeats: int, variants: list[str]) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CVCATALOG_"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for i in range(repeats):
        for v in variants:  # interleaved: a load spike hits every variant alike
            cmd = [sys.executable, "-m", "bench.ml_frames", "--variant", v, "--catalog",
                   str(work / "catalog")]  # fmt: skip
            load = os.getloadavg()[0]
            m = run_measured(f"{v}-{i}", cmd, env=env, cwd=ROOT, log_dir=work / "logs",
                             timeout=600)  # fmt: skip
            if not m.ok:
                raise SystemExit(f"variant {v} failed:\n{m.stderr_tail()}")
            result = json.loads(m.stdout().strip().splitlines()[-1])
            result.update(
                wall_s=round(m.wall_s, 3),
                cpu_s=round(m.user_s + m.sys_s, 3),
                rss_mb=round(m.max_rss_bytes / 2**20, 1),
                load1=round(load, 2),
            )
            runs[v].append(result)
            print(f"  {v} #{i + 1}: {result['wall_s']:.2f} s wall, {result['cpu_s']:.2f} s CPU, "
                  f"{result['rss_mb']:.0f} MB (load {load:.1f})", flush=True)  # fmt: skip
    return runs


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for v, rs in runs.items():
        out[v] = {
            "what": VARIANTS[v],
            "repeats": len(rs),
            "wall_s": statistics.median(r["wall_s"] for r in rs),
            "cpu_s": statistics.median(r["cpu_s"] for r in rs),
            "rss_mb": statistics.median(r["rss_mb"] for r in rs),
            "in_process_s": statistics.median(r["total_s"] for r in rs),
            "rows": rs[0]["rows"],
            "npartitions": rs[0]["npartitions"],
        }
        for k in ("end_anon_mb", "end_file_mb"):
            if all(k in r for r in rs):
                out[v][k] = statistics.median(r[k] for r in rs)
    base = out.get("c")
    for v, target in TARGETS.items():
        if v in out and base:
            ratio = out[v]["wall_s"] / base["wall_s"]
            out[v]["x_baseline"] = round(ratio, 2)
            out[v]["target_x"] = target
            ok = ratio <= target
            if v in RSS_TARGET_MB:
                out[v]["rss_target_mb"] = RSS_TARGET_MB[v]
                ok = ok and out[v]["rss_mb"] <= RSS_TARGET_MB[v]
            out[v]["met"] = ok
    return out


def check_agree(runs: dict[str, list[dict[str, Any]]]) -> None:
    """Every aggregate variant saw the same rows and the same sum of speed."""
    aggs = {v: rs[0] for v, rs in runs.items() if v in ("a", "b", "c")}
    rows = {v: r["rows"] for v, r in aggs.items()}
    sums = {v: r["speed_sum"] for v, r in aggs.items()}
    if len(set(rows.values())) > 1 or max(sums.values()) - min(sums.values()) > 1e-6 * max(
        abs(x) for x in sums.values()
    ):
        raise SystemExit(f"variants disagree: rows {rows}, speed sums {sums}")


def write(result: dict[str, Any], name: str = "ml_frames") -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    s = result["summary"]
    p = result["prepared"]
    lines = [
        "# ML frames: the warm hand-off (issue 16)",
        "",
        f"Data: {p['records']:,} WYDOT BSM records (schemaVersion {p['spec']['schema_version']}) "
        f"in {p['objects']} objects, {p['spec']['start']}..{p['spec']['end']}, ingested once "
        f"({p['parquet_files']} Parquet files, {p['parquet_bytes'] / 2**20:.1f} MB). "
        f"Each variant: a fresh `python -m bench.ml_frames --variant V` child process (imports "
        f"included), {result['repeats']} repeats interleaved, medians. Machine: "
        f"{result['cpus']} CPUs shared with other jobs. Python: `{result.get('python', '?')}`.",
        "",
        f"Load before: `{result['uptime_before']}`",
        f"Load after: `{result['uptime_after']}`",
        "",
        "| variant | what | wall s | CPU s | peak RSS MB | end anon / file MB | in-process s "
        "| rows | x baseline | target |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for v, r in s.items():
        target = ""
        if "target_x" in r:
            target = f"≤ {r['target_x']:g}x"
            if "rss_target_mb" in r:
                target += f", ≤ {r['rss_target_mb']} MB"
            target += " **met**" if r["met"] else " **not met**"
        split = (
            f"{r['end_anon_mb']:.0f} / {r['end_file_mb']:.0f}" if "end_file_mb" in r else ""
        )
        lines.append(
            f"| {v} | {r['what']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['rss_mb']:.0f} | "
            f"{split} | {r['in_process_s']:.2f} | {r['rows']:,} | {r.get('x_baseline', '')} | {target} |"
        )
    if {"a", "c", "floor_a", "floor_c"} <= set(s):
        a, c, fa, fc = s["a"], s["c"], s["floor_a"], s["floor_c"]
        lines += [
            "",
            "Where a's extra cost goes (medians): the fixed part, before any row is read "
            "(floor_a - floor_c: importing cvcatalog with DuckDB and pydantic, and reading the "
            f"catalog's state tables, without DuckLake or boto3), is {fa['wall_s'] - fc['wall_s']:.2f} s wall, "
            f"{fa['cpu_s'] - fc['cpu_s']:.2f} s CPU and {fa['rss_mb'] - fc['rss_mb']:.0f} MB; "
            f"the reading and aggregating part (a - floor_a vs c - floor_c) is "
            f"{a['wall_s'] - fa['wall_s']:.2f} s vs {c['wall_s'] - fc['wall_s']:.2f} s wall, "
            f"{a['cpu_s'] - fa['cpu_s']:.2f} s vs {c['cpu_s'] - fc['cpu_s']:.2f} s CPU, "
            f"+{a['rss_mb'] - fa['rss_mb']:.0f} MB vs +{c['rss_mb'] - fc['rss_mb']:.0f} MB. "
            f"floor_a alone is {fa['rss_mb']:.0f} MB.",
            "",
            "Peak RSS counts the shared libraries' pages mapped from the page cache (the 'file' "
            "part): the same code and packages measure 20-35 MB more in a freshly installed "
            "venv, whose library files are all cached, than in one installed hours before "
            "(bench/README.md); compare variants of one run.",
        ]
    lines += ["", "Every run (wall s / CPU s / RSS MB / 1-min load at its start):", ""]
    for v, rs in result["runs"].items():
        cells = ", ".join(
            f"{r['wall_s']:.2f}/{r['cpu_s']:.2f}/{r['rss_mb']:.0f}/{r['load1']}" for r in rs
        )
        lines.append(f"- {v}: {cells}")
    lines.append("")
    path = RESULTS / f"{name}.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    ap.add_argument("--catalog", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cvcatalog-ml-frames",
                    help="where the replica's catalog is kept between runs")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    ap.add_argument("--no-write", action="store_true", help="print only; keep bench/results")
    ap.add_argument("--name", default="ml_frames",
                    help="results file stem under bench/results (default ml_frames)")  # fmt: skip
    ap.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite bench/results/ml_frames.md from its .json")  # fmt: skip
    args = ap.parse_args(argv)
    if args.report_only:
        print(f"wrote {write(json.loads((RESULTS / f'{args.name}.json').read_text()), args.name)}")
        return
    if args.variant:
        print(json.dumps(child(args.variant, args.catalog)))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    if args.prepare_only:
        print(json.dumps(prepare(args.work)))
        return
    print(f"preparing the week in {args.work} ...", flush=True)
    # in a child: a forked child's peak RSS starts from its parent's, which must stay small
    out = subprocess.run(
        [sys.executable, "-m", "bench.ml_frames", "--prepare-only", "--work", str(args.work)],
        cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True,
    ).stdout  # fmt: skip
    prepared = json.loads(out.strip().splitlines()[-1])
    print(json.dumps(prepared), flush=True)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    before = uptime()
    runs = measure(args.work, max(1, args.repeats), variants)
    after = uptime()
    check_agree(runs)
    result = {
        "prepared": prepared,
        "repeats": max(1, args.repeats),
        "cpus": os.cpu_count(),
        "python": sys.executable,
        "uptime_before": before,
        "uptime_after": after,
        "summary": summarise(runs),
        "runs": runs,
    }
    for v, r in result["summary"].items():
        print(f"{v}: {json.dumps(r)}")
    if not args.no_write:
        print(f"wrote {write(result, args.name)}")


if __name__ == "__main__":
    main()
