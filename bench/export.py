"""`cvcatalog export` throughput and memory: does peak RSS stay flat as the export grows?

Seeds WYDOT BSM days on a private moto server, ingests them once, then runs `cvcatalog export`
as child processes started by `bench.spawner` (wall time and peak RSS of exactly that child)
for every format over the whole catalog and over about a tenth of it (`--where "msg_cnt < 13"`:
msg_cnt cycles 0..127), plus a 2 km radius to GeoParquet. `--repeats` runs of each, medians
reported, with the load average before and after. If memory is bounded by the batch size, the
full export's peak RSS is close to the tenth's although it writes ten times the rows.

    .venv/bin/python -m bench.export [--days 2] [--records-per-hour 4000] [--repeats 3]

Results: bench/results/export.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import boto3

from bench.measure import Spawner
from cvcatalog.catalog import Catalog
from cvcatalog.sandbox.replica import seed_replica
from cvcatalog.sandbox.server import start_server
from cvcatalog.sources.bucket import BUCKET

START = date(2021, 4, 1)
#: a point on the replica's I-80 (the Laramie interchange), for the radius variant
LARAMIE = "41.31,-105.59,2000"


def _variants(catalog: Path, out: Path, end: date) -> list[tuple[str, list[str]]]:
    base = [sys.executable, "-m", "cvcatalog", "export", "--catalog", str(catalog), "--source",
            "wydot", "--type", "BSM", "--start", str(START), "--end", str(end), "--no-progress",
            "--json"]  # fmt: skip
    out_of = {"parquet": "parquet", "geoparquet": "geoparquet", "csv": "csv", "ndjson": "ndjson"}
    runs = []
    for fmt, suffix in out_of.items():
        runs.append((f"all_{fmt}", [*base, "--format", fmt, "-o", str(out / f"all.{suffix}")]))
        runs.append(
            (
                f"tenth_{fmt}",
                [
                    *base,
                    "--format",
                    fmt,
                    "--where",
                    "msg_cnt < 13",
                    "-o",
                    str(out / f"tenth.{suffix}"),
                ],
            )
        )
    near = str(out / "near.geoparquet")
    runs.append(
        ("within2km_geoparquet", [*base, "--format", "geoparquet", "--within", LARAMIE, "-o", near])
    )
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.export")
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--records-per-hour", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    end = START + timedelta(days=args.days - 1)
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    load_before = os.getloadavg()
    repo = Path(__file__).resolve().parent.parent
    spawner = Spawner(sys.executable, repo, {**os.environ, "PYTHONPATH": str(repo)})
    with start_server(port=0, log_file=work / "moto.log") as server:
        env = {**os.environ, **server.env()}
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "CVCATALOG_STORAGE"):
            env.pop(name, None)
        os.environ.update(server.env())
        client = boto3.client("s3", endpoint_url=server.endpoint_url)
        client.create_bucket(Bucket=BUCKET)
        seed_replica(client, START, end, sources=["wydot"], message_types=["BSM"],
                     records_per_hour=args.records_per_hour, files_per_hour=2)  # fmt: skip
        cat = Catalog(work / "catalog")
        t0 = time.perf_counter()
        summary = cat.ingest("wydot", "BSM", START, end, rate_limit=0)
        if not summary.ok:
            raise SystemExit(f"ingest failed: {summary.as_dict()}")
        ingest_s = time.perf_counter() - t0
        rows = int(cat.query("SELECT count(*) AS n FROM wydot_bsm").n[0])
        runs: dict[str, list[dict[str, Any]]] = {}
        for rep in range(args.repeats):
            variants = _variants(cat.paths.root, work / "out", end)
            shift = rep % len(variants)  # rotate: no variant always runs first
            for name, cmd in variants[shift:] + variants[:shift]:
                m = spawner.run(name, cmd, env=env, cwd=work, log_dir=work / "logs", timeout=1800)
                if not m.ok:
                    raise SystemExit(f"{name} failed: {m.stderr_tail()}")
                s = json.loads(m.stdout())  # --json: the summary, one object
                runs.setdefault(name, []).append(
                    {
                        "wall_s": m.wall_s,
                        "max_rss_bytes": m.max_rss_bytes,
                        "rows": s["rows"],
                        "bytes": s["bytes"],
                        "export_s": s["seconds"],
                    }
                )
    spawner.close()
    shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    table = []
    for name, rs in runs.items():
        export_s = statistics.median(r["export_s"] for r in rs)
        table.append(
            {
                "variant": name,
                "rows": rs[0]["rows"],
                "mb_written": round(rs[0]["bytes"] / 1e6, 1),
                "median_wall_s": round(statistics.median(r["wall_s"] for r in rs), 2),
                "median_export_s": round(export_s, 2),
                "rows_per_s": round(rs[0]["rows"] / export_s) if export_s else None,
                "median_peak_rss_mib": round(
                    statistics.median(r["max_rss_bytes"] for r in rs) / 2**20, 1
                ),
            }
        )
    doc = {
        "catalog_rows": rows,
        "days": args.days,
        "records_per_hour": args.records_per_hour,
        "repeats": args.repeats,
        "ingest_s": round(ingest_s, 1),
        "load_before": load_before,
        "load_after": load_after,
        "cpus": os.cpu_count(),
        "table": table,
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "export.json").write_text(json.dumps(doc, indent=2))
    cols = list(table[0])
    md = [
        "# cvcatalog export: throughput and peak memory",
        "",
        f"{rows:,} WYDOT BSM rows ({args.days} days x {args.records_per_hour}/hour), "
        f"{args.repeats} runs of each variant (medians), {os.cpu_count()} CPUs, load average "
        f"{load_before[0]:.1f} before / {load_after[0]:.1f} after. `median_wall_s` is the whole "
        "process (Python start, imports, DuckDB instance and extensions); `median_export_s` the "
        "export itself. Generated by `python -m bench.export`.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
        *("| " + " | ".join(str(r[c]) for c in cols) + " |" for r in table),
        "",
    ]
    (args.out / "export.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
