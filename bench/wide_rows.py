"""Memory of one conversion of wide rows: a NYCDOT EVENT bin of replica events (~240 KB each).

A bin holds a month's events of one weekday and time of day, so its size follows the month,
and an event carries lists of the messages around it. The bench converts one such bin (the
replica's objects, all filed in one bin) in a child process per variant, the way the ingest
does (`convert_partition` on a connection with a memory limit, a spill directory and no
insertion order), and reports its wall time, CPU seconds and peak RSS:

    python -m bench.wide_rows --mb 1300 --out bench/results --name wide-rows-s36

Variants: 1 and 2 DuckDB threads under 0.62 GiB (DuckDB's share of a 1 GiB budget, as
`memory.max_usage_gb: 1` sets it), and 2 threads with no limit. The ingest converts again on
one thread when DuckDB runs out of memory with more (`sources/cvpilot.py`), so the 1-thread
row is what a 1 GiB budget gets.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from bench.measure import run_measured

#: bytes of the replica's events per record asked for, roughly (records_per_hour=150: 1.3 GB)
_BYTES_PER_RECORD_HOUR = 1300e6 / 150


def _generate(root: Path, megabytes: float) -> int:
    """The replica's NYCDOT EVENT objects of one day as local files; their total bytes."""
    from cvcatalog.sandbox.replica import iter_replica
    from cvcatalog.sandbox.replica_blocks import ReplicaSpec

    per_hour = max(1, round(megabytes * 1e6 / _BYTES_PER_RECORD_HOUR))
    spec = ReplicaSpec(start=date(2021, 4, 1), end=date(2021, 4, 1), sources=("nycdot",),
                       message_types=("EVENT",), records_per_hour=per_hour, files_per_hour=2)  # fmt: skip
    total = 0
    root.mkdir(parents=True, exist_ok=True)
    for i, obj in enumerate(iter_replica(spec)):
        (root / f"object-{i:05d}.json").write_bytes(obj.body)
        total += len(obj.body)
    return total


def _child(raw: Path, threads: int, limit: str | None) -> None:
    """One conversion of every object in raw as one bin; prints one JSON line."""
    import duckdb

    from cvcatalog.config import ValidationConfig
    from cvcatalog.io.duckdb_ext import open_instance
    from cvcatalog.schemas import SCHEMAS
    from cvcatalog.transform import RawFile, convert_partition

    files = [RawFile(p, f"nycdot/EVENT/2021/04/THU/AM/{p.name}") for p in sorted(raw.iterdir())]
    work = Path(tempfile.mkdtemp(prefix="wide-rows-"))
    con = open_instance()
    con.execute("SET threads = ?", [threads])
    if limit:
        con.execute("SET memory_limit = ?", [limit])
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET temp_directory = ?", [str(work / "spill")])
    out: dict[str, object] = {"threads": threads, "limit": limit}
    try:
        r = convert_partition(con, SCHEMAS[("nycdot", "EVENT")], files, work / "out",
                              validation=ValidationConfig())  # fmt: skip
        out.update(ok=True, rows=r.rows, files=len(r.parquet_files),
                   parquet_bytes=sum(p.stat().st_size for p in r.parquet_files))  # fmt: skip
    except duckdb.OutOfMemoryException as e:
        out.update(ok=False, error=str(e).splitlines()[0][:160])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=1300, help="raw megabytes of the bin")
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    ap.add_argument("--name", default="wide-rows")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--limit", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child, args.threads, args.limit)
        return 0
    root = Path(tempfile.mkdtemp(prefix="wide-rows-bench-"))
    try:
        raw_bytes = _generate(root / "raw", args.mb)
        rows = []
        for threads, limit in ((1, "0.62GiB"), (2, "0.62GiB"), (2, None)):
            name = f"t{threads}-{limit or 'nolimit'}"
            cmd = [sys.executable, "-m", "bench.wide_rows", "--child", str(root / "raw"),
                   "--threads", str(threads)] + (["--limit", limit] if limit else [])  # fmt: skip
            started = os.getloadavg()[0]
            m = run_measured(name, cmd, env=dict(os.environ), cwd=Path.cwd(),
                             log_dir=root / "logs", timeout=1800)  # fmt: skip
            lines = m.stdout_path.read_text().strip().splitlines()
            result = json.loads(lines[-1]) if lines else {"ok": False, "error": "no output"}
            rows.append({**result, "wall_s": round(m.wall_s, 2),
                         "cpu_s": round(m.user_s + m.sys_s, 2),
                         "peak_rss_mb": round(m.max_rss_bytes / 2**20),
                         "load_before": round(started, 2)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
        report = {"raw_bytes": raw_bytes, "objects": len(os.listdir(root / "raw")),
                  "when": time.strftime("%Y-%m-%d %H:%M"), "variants": rows}  # fmt: skip
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
        lines = [f"# {args.name}: one NYCDOT EVENT bin of {raw_bytes / 1e6:.0f} MB raw "
                 f"({report['objects']} objects), converted once per variant", "",
                 "| threads | DuckDB limit | result | rows | files | wall s | CPU s | peak RSS MB |",
                 "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in rows:
            result = "ok" if r.get("ok") else f"failed: {r.get('error', '')[:60]}"
            lines.append(f"| {r['threads']} | {r['limit'] or 'none'} | {result} | "
                         f"{r.get('rows', '')} | {r.get('files', '')} | {r['wall_s']} | "
                         f"{r['cpu_s']} | {r['peak_rss_mb']} |")  # fmt: skip
        (args.out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
