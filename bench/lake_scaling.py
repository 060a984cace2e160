"""How a one-day query scales with the number of days (files) in the catalog: DuckLake vs views.

    python -m bench.lake_scaling [--sizes 10,365,1000,8000] [--reps 15] [--warmups 3]

The issue: "Views list every file. A one-day query took 1.3 ms on a 10-day catalog and 8.1 ms
on a 400-day one (6x); on a view over 8,000 Parquet files 166 ms, on a DuckLake table of the
same files 25 ms." Target: the one-day query (warm) on the big catalog <= 1.5x the same query
on a 10-day catalog.

1. A moto server is seeded with ONE WYDOT BSM folder day (50 records/hour, 1 object/hour) and
   ingested through the real pipeline (`Catalog.ingest`); its single data file is the template.
2. For each N: a catalog of N one-day partitions (consecutive days from 2000-01-01), the
   template hard-linked into each day's hive directory (`CatalogPaths.partition_rel`), all N
   partitions registered in ONE `CatalogDB.write()` (state rows via `manifest.put_partition`,
   the lake registers the files at the end of the write, as every writer does). Timed.
3. Warm one-day queries on the middle day, three ways, interleaved round by round:
   `lake`   a plain DuckDB session with the lake attached read-only (bench.catalog_session),
   `catalog` `Catalog(path).query(...)` (pandas result),
   `view`   the old approach: a view `read_parquet([all N files], hive_partitioning = true)`
            with `make_date(year, month, day) AS date`, as the 0.1 template made it.
   Median over --reps after --warmups, CPU seconds of this process (DuckDB threads included)
   and the load average; EXPLAIN ANALYZE gives the files each query opened.

Results: bench/results/lake-scaling.md and .json. Everything runs in a temporary directory
that is removed at the end (--keep-work keeps it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import duckdb

from bench.catalog_session import plain_session
from cvcatalog.catalog import Catalog
from cvcatalog.io.layout import CatalogPaths, sha256_file
from cvcatalog.schemas import SCHEMAS
from cvcatalog.sources.bucket import BUCKET, PartitionKey
from cvcatalog.sqlutil import quote_ident, quote_literal
from cvcatalog.state import manifest
from cvcatalog.state.db import CatalogDB
from cvcatalog.state.manifest import FileRecord, PartitionRecord

SOURCE, MESSAGE_TYPE = "wydot", "BSM"
TABLE = "wydot_bsm"
TEMPLATE_DAY = date(2021, 4, 1)
FIRST_DAY = date(2000, 1, 1)
DEFAULT_SIZES = (10, 365, 1000, 8000)
TARGET_RATIO = 1.5
METHODS = ("lake", "catalog", "view")
#: {day}: the queried day (ISO)
QUERIES = {
    "count_avg": f"SELECT count(*), avg(speed_mps) FROM {TABLE} WHERE date = DATE '{{day}}'",
    "max_speed": f"SELECT max(speed_mps) FROM {TABLE} WHERE date = DATE '{{day}}'",
}
#: what the issue measured with views (ms): 10-day, 400-day, 8,000 files; DuckLake at 8,000
ISSUE = {
    "view_10_days_ms": 1.3,
    "view_400_days_ms": 8.1,
    "view_8000_ms": 166.0,
    "lake_8000_ms": 25.0,
}


@dataclass(frozen=True)
class Template:
    path: Path
    rows: int
    bytes: int
    sha256: str
    schema_versions: list[int]
    ingest_s: float


@dataclass
class Build:
    n: int
    link_s: float
    state_s: float  # the write's body: N put_partition calls
    write_s: float  # the whole CatalogDB.write(): copy, state, lake registration, publish
    write_cpu_s: float
    db_bytes: int
    lake_files: int
    order_s: float = 0.0  # CatalogDB.order_stats after the write, as an ingest run ends


@dataclass
class Timing:
    first_ms: float  # the first call (a session just opened)
    median_ms: float
    min_ms: float
    max_ms: float
    cpu_s: float  # process CPU over the timed calls
    cpu_ms_per_query: float
    samples_ms: list[float]
    result: list[Any]


# -- the template day --------------------------------------------------------------------------
@contextlib.contextmanager
def _environment(values: dict[str, str], drop: Sequence[str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    for name in drop:
        os.environ.pop(name, None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def make_template(work: Path, records_per_hour: int) -> Template:
    """Seed one folder day on a private moto server, ingest it, keep its data file."""
    import boto3

    from cvcatalog.sandbox.replica import seed_replica
    from cvcatalog.sandbox.server import start_server

    with start_server(port=0, log_file=work / "moto.log") as server:
        drop = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "CVCATALOG_STORAGE")
        with _environment(server.env(), drop):
            client = boto3.client("s3", endpoint_url=server.endpoint_url)
            client.create_bucket(Bucket=BUCKET)
            seed_replica(
                client,
                TEMPLATE_DAY,
                TEMPLATE_DAY,
                sources=[SOURCE],
                message_types=[MESSAGE_TYPE],
                records_per_hour=records_per_hour,
                files_per_hour=1,
                empty_hour_rate=0.0,
            )
            cat = Catalog(work / "template-catalog")
            t0 = time.perf_counter()
            summary = cat.ingest(SOURCE, MESSAGE_TYPE, TEMPLATE_DAY, TEMPLATE_DAY, rate_limit=0)
            ingest_s = time.perf_counter() - t0
            if not summary.ok:
                raise SystemExit(f"template ingest failed: {summary.as_dict()}")
    with cat.db.read() as con:
        files = manifest.get_files(con, kind="data")
        part = manifest.get_partitions(con)
    if len(files) != 1:
        raise SystemExit(f"the template day has {len(files)} data files, expected 1")
    src = cat.paths.absolute(files[0].path)
    dest = work / "template.parquet"
    shutil.copyfile(src, dest)
    rec = part[files[0].partition_key]
    return Template(
        path=dest,
        rows=files[0].rows,
        bytes=dest.stat().st_size,
        sha256=sha256_file(dest),
        schema_versions=list(rec.schema_versions),
        ingest_s=ingest_s,
    )


# -- the N-day catalogs ------------------------------------------------------------------------
def day(i: int) -> date:
    return FIRST_DAY + timedelta(days=i)


def build_catalog(root: Path, template: Template, n: int, name: str) -> Build:
    """N one-day partitions, each a hard link of the template, registered in one write."""
    paths = CatalogPaths.at(root)
    paths.ensure()
    canonical = SCHEMAS[(SOURCE, MESSAGE_TYPE)].canonical_version
    t0 = time.perf_counter()
    entries: list[tuple[PartitionKey, str]] = []
    for i in range(n):
        pk = PartitionKey(SOURCE, MESSAGE_TYPE, day(i))
        rel = f"{paths.partition_rel(pk)}/{name}"
        target = paths.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(template.path, target)
        entries.append((pk, rel))
    link_s = time.perf_counter() - t0

    db = CatalogDB(paths)
    state_s = 0.0
    cpu0, t0 = time.process_time(), time.perf_counter()
    with db.write(message=f"bench: {n} days") as con:
        s0 = time.perf_counter()
        for pk, rel in entries:
            rec = PartitionRecord(
                pk.key,
                pk.source,
                pk.message_type,
                pk.day,
                "complete",
                rows=template.rows,
                parquet_bytes=template.bytes,
                schema_versions=template.schema_versions,
                canonical_version=canonical,
            )
            files = [
                FileRecord(rel, pk.key, "data", template.rows, template.bytes, template.sha256)
            ]
            manifest.put_partition(con, rec, files)
        state_s = time.perf_counter() - s0
    write_s = time.perf_counter() - t0
    write_cpu_s = time.process_time() - cpu0
    # what the end of an ingest run does after it appended that many files' statistics
    t0 = time.perf_counter()
    db.order_stats()
    order_s = time.perf_counter() - t0

    con = plain_session(paths.db)
    try:
        row = con.execute(
            "SELECT count(*) FROM ducklake_data_file WHERE end_snapshot IS NULL"
        ).fetchone()
    finally:
        con.close()
    return Build(
        n=n,
        link_s=round(link_s, 3),
        state_s=round(state_s, 3),
        write_s=round(write_s, 3),
        write_cpu_s=round(write_cpu_s, 3),
        order_s=round(order_s, 3),
        db_bytes=paths.db.stat().st_size,
        lake_files=int(row[0]) if row else 0,
    )


def old_view_sql(files: Sequence[str]) -> str:
    """The 0.1 template (cvcatalog/sql/views/wydot_bsm.sql before DuckLake): an explicit file list, the
    date made from the hive directories. source and message_type were hive directories then;
    the lake's layout has no such directories, so they are constants here."""
    schema = SCHEMAS[(SOURCE, MESSAGE_TYPE)]
    columns = ", ".join(quote_ident(c) for c, _ in schema.canonical_columns)
    listing = "[" + ", ".join(quote_literal(f) for f in files) + "]"
    return (
        f"CREATE OR REPLACE VIEW {TABLE} AS SELECT {columns}, "
        f"{quote_literal(SOURCE)} AS source, {quote_literal(MESSAGE_TYPE)} AS message_type, "
        "make_date(year, month, day) AS date, year, month, day "
        f"FROM read_parquet({listing}, hive_partitioning = true, "
        "hive_types = {'year': INTEGER, 'month': INTEGER, 'day': INTEGER, 'date': DATE})"
    )


# -- timing ------------------------------------------------------------------------------------
def _rows(result: Any) -> list[Any]:
    """Query results as comparable lists (a pandas frame from Catalog.query, tuples else)."""
    if hasattr(result, "itertuples"):
        return [list(r) for r in result.itertuples(index=False, name=None)]
    return [list(r) for r in result]


def _close(value: float) -> float:
    return round(value, 3)


def time_round_robin(
    calls: dict[str, Callable[[], Any]], reps: int, warmups: int
) -> dict[str, Timing]:
    """Warm every call up, then `reps` rounds each calling every method once (the order
    rotated every round, so no method always runs first)."""
    first: dict[str, float] = {}
    results: dict[str, list[Any]] = {}
    for name, fn in calls.items():
        for w in range(warmups):
            t0 = time.perf_counter()
            out = fn()
            if w == 0:
                first[name] = (time.perf_counter() - t0) * 1000
                results[name] = _rows(out)
    samples: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, float] = dict.fromkeys(calls, 0.0)
    names = list(calls)
    for r in range(reps):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            fn = calls[name]
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - t0) * 1000)
            cpu[name] += time.process_time() - c0
    return {
        name: Timing(
            first_ms=_close(first[name]),
            median_ms=_close(statistics.median(samples[name])),
            min_ms=_close(min(samples[name])),
            max_ms=_close(max(samples[name])),
            cpu_s=_close(cpu[name]),
            cpu_ms_per_query=_close(cpu[name] * 1000 / reps),
            samples_ms=[_close(s) for s in samples[name]],
            result=results[name],
        )
        for name in calls
    }


_FILES_READ = re.compile(r"Total Files Read:\s*([\d,]+)")
_SCANNING = re.compile(r"Scanning Files:\s*([\d,]+)\s*/\s*([\d,]+)")


def files_read(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, Any]:
    """The files EXPLAIN ANALYZE says the query opened ("Total Files Read", and "Scanning
    Files: read/total" where DuckDB prints it)."""
    row = con.execute("EXPLAIN ANALYZE " + sql).fetchone()
    plan = str(row[1]) if row else ""
    out: dict[str, Any] = {}
    total = [int(m.replace(",", "")) for m in _FILES_READ.findall(plan)]
    if total:
        out["total_files_read"] = sum(total)
    scanning = _SCANNING.findall(plan)
    if scanning:
        out["scanning_files"] = [f"{a}/{b}" for a, b in scanning]
    return out


@dataclass
class SizeResult:
    n: int
    day: str
    build: Build
    session_open_ms: dict[str, float]
    view_create_ms: float
    timings: dict[str, dict[str, Timing]]  # query -> method -> timing
    explain: dict[str, dict[str, Any]]  # method -> what EXPLAIN ANALYZE says (count_avg)
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    results_agree: bool


def _fetch(con: duckdb.DuckDBPyConnection, sql: str) -> list[Any]:
    return con.execute(sql).fetchall()


def measure(root: Path, template: Template, n: int, reps: int, warmups: int) -> SizeResult:
    build = build_catalog(root, template, n, name="part-bench-000.parquet")
    if build.lake_files != n:
        raise SystemExit(f"N={n}: the lake shows {build.lake_files} files, expected {n}")
    the_day = day(n // 2).isoformat()
    load_before = os.getloadavg()

    t0 = time.perf_counter()
    lake_con = plain_session(root / "catalog.ducklake")
    opened = {"lake": (time.perf_counter() - t0) * 1000}
    cat = Catalog(root)
    t0 = time.perf_counter()
    with cat.db.read() as con:  # the catalog's reader instance, opened once per process
        files = [str(cat.paths.absolute(f.path)) for f in manifest.get_files(con, kind="data")]
    opened["catalog"] = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    view_con = duckdb.connect()
    opened["view"] = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    view_con.execute(old_view_sql(files))
    view_create_ms = (time.perf_counter() - t0) * 1000

    timings: dict[str, dict[str, Timing]] = {}
    try:
        for qname, template_sql in QUERIES.items():
            sql = template_sql.format(day=the_day)
            calls: dict[str, Callable[[], Any]] = {
                "lake": partial(_fetch, lake_con, sql),
                "catalog": partial(cat.query, sql),
                "view": partial(_fetch, view_con, sql),
            }
            timings[qname] = time_round_robin(calls, reps, warmups)
        explain_sql = QUERIES["count_avg"].format(day=the_day)
        explain = {
            "lake": files_read(lake_con, explain_sql),
            "view": files_read(view_con, explain_sql),
        }
    finally:
        lake_con.close()
        view_con.close()
    load_after = os.getloadavg()
    agree = (
        all(_approx_equal(t["lake"].result, t[m].result) for t in timings.values() for m in METHODS)
        and timings["count_avg"]["lake"].result[0][0] == template.rows
    )
    return SizeResult(
        n=n,
        day=the_day,
        build=build,
        session_open_ms={k: _close(v) for k, v in opened.items()},
        view_create_ms=_close(view_create_ms),
        timings=timings,
        explain=explain,
        load_before=load_before,
        load_after=load_after,
        results_agree=agree,
    )


def _approx_equal(a: list[Any], b: list[Any]) -> bool:
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b, strict=True):
        for x, y in zip(ra, rb, strict=True):
            if isinstance(x, float) or isinstance(y, float):
                if abs(float(x) - float(y)) > 1e-9 * max(1.0, abs(float(x))):
                    return False
            elif x != y:
                return False
    return True


# -- report ------------------------------------------------------------------------------------
def summarise(results: list[SizeResult]) -> dict[str, Any]:
    """query -> method -> N -> {median_ms, ratio to the smallest N}."""
    base = results[0]
    out: dict[str, Any] = {}
    for qname in QUERIES:
        out[qname] = {}
        for method in METHODS:
            ref = base.timings[qname][method].median_ms
            ref_cpu = base.timings[qname][method].cpu_ms_per_query
            out[qname][method] = {
                str(r.n): {
                    "median_ms": r.timings[qname][method].median_ms,
                    "ratio": round(r.timings[qname][method].median_ms / ref, 2),
                    "cpu_ms_per_query": r.timings[qname][method].cpu_ms_per_query,
                    "cpu_ratio": round(r.timings[qname][method].cpu_ms_per_query / ref_cpu, 2),
                }
                for r in results
            }
    return out


def target_check(results: list[SizeResult]) -> dict[str, Any]:
    """The issue's target on the largest catalog, for the lake (plain session) and Catalog.query."""
    base, big = results[0], results[-1]
    out: dict[str, Any] = {}
    for qname in QUERIES:
        for method in ("lake", "catalog"):
            b, s = base.timings[qname][method], big.timings[qname][method]
            ratio = s.median_ms / b.median_ms
            out[f"{qname}/{method}"] = {
                "ratio": round(ratio, 2),
                "cpu_ratio": round(s.cpu_ms_per_query / b.cpu_ms_per_query, 2),
                "target": TARGET_RATIO,
                "pass": ratio <= TARGET_RATIO,
            }
    return out


def render_md(doc: dict[str, Any], results: list[SizeResult]) -> str:
    base_n = results[0].n
    lines = [
        "# One-day query vs catalog size: DuckLake table vs the old file-list view",
        "",
        f"`python -m bench.lake_scaling` ({doc['finished_at']}, wall {doc['wall_s']:.0f} s). "
        f"Host: {doc['host']['cpus']} CPUs, DuckDB {doc['host']['duckdb']}, Python "
        f"{doc['host']['python']}. Each day is one hard link of one real ingested WYDOT BSM day "
        f"({doc['template']['rows']:,} rows, {doc['template']['bytes']:,} bytes). Warm "
        f"queries on the middle day, median of {doc['reps']} after {doc['warmups']} warm-ups, "
        "methods interleaved round by round.",
        "",
        "- `lake`: plain DuckDB session, lake attached read-only (bench/catalog_session.py)",
        "- `catalog`: `Catalog(path).query(sql)` (pandas result)",
        "- `view`: the old template, `read_parquet([all N files], hive_partitioning = true)` "
        "with `make_date(year, month, day) AS date`",
        "",
    ]
    for qname, sql in QUERIES.items():
        lines += [
            f"## `{sql.format(day='<day>')}`",
            "",
            "| days (files) | "
            + " | ".join(f"{m} ms | x N={base_n} | {m} CPU ms | x N={base_n}" for m in METHODS)
            + " |",
            "|---:|" + "---:|" * 4 * len(METHODS),
        ]
        for r in results:
            cells = []
            for method in METHODS:
                t = r.timings[qname][method]
                ref = results[0].timings[qname][method]
                cells += [
                    f"{t.median_ms:.2f}",
                    f"{t.median_ms / ref.median_ms:.2f}",
                    f"{t.cpu_ms_per_query:.2f}",
                    f"{t.cpu_ms_per_query / ref.cpu_ms_per_query:.2f}",
                ]
            lines.append(f"| {r.n:,} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        f"## Target: one-day query on the largest catalog <= {TARGET_RATIO}x the {base_n}-day one",
        "",
        "| query / method | wall ratio | pass | CPU ratio |",
        "|---|---:|---|---:|",
    ]
    for key, v in doc["target"].items():
        lines.append(
            f"| {key} | {v['ratio']:.2f} | {'yes' if v['pass'] else 'NO'} | {v['cpu_ratio']:.2f} |"
        )
    lines += [
        "",
        "## Building the catalogs (one `CatalogDB.write()` each)",
        "",
        "| days | hard links s | state rows s | whole write s | write CPU s | statistics ordered s "
        "| catalog.ducklake MB "
        "| lake files | files read (EXPLAIN ANALYZE) lake / view | load 1-min before / after |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        b = r.build
        fr = " / ".join(str(r.explain[m].get("total_files_read", "?")) for m in ("lake", "view"))
        lines.append(
            f"| {b.n:,} | {b.link_s:.2f} | {b.state_s:.2f} | {b.write_s:.2f} | "
            f"{b.write_cpu_s:.2f} | {b.order_s:.2f} | {b.db_bytes / 1e6:.1f} | {b.lake_files:,} "
            f"| {fr} | "
            f"{r.load_before[0]:.2f} / {r.load_after[0]:.2f} |"
        )
    lines += [
        "",
        "Session open (ms, once per N): "
        + "; ".join(
            f"N={r.n:,}: lake attach {r.session_open_ms['lake']:.0f}, catalog reader "
            f"{r.session_open_ms['catalog']:.0f}, view create {r.view_create_ms:.0f}"
            for r in results
        ),
        "",
        "First call after opening (ms, count_avg) lake / catalog / view: "
        + "; ".join(
            f"N={r.n:,}: "
            + " / ".join(f"{r.timings['count_avg'][m].first_ms:.1f}" for m in METHODS)
            for r in results
        ),
        "",
        "All methods returned the same rows at every N: "
        + ("yes" if all(r.results_agree for r in results) else "**NO**"),
        "",
        f"The issue's numbers for comparison: view {ISSUE['view_10_days_ms']} ms at 10 days, "
        f"{ISSUE['view_400_days_ms']} ms at 400; {ISSUE['view_8000_ms']:.0f} ms (view) vs "
        f"{ISSUE['lake_8000_ms']:.0f} ms (DuckLake) at 8,000 files.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.lake_scaling")
    ap.add_argument(
        "--sizes",
        default=",".join(str(n) for n in DEFAULT_SIZES),
        help="days (= files) per catalog, comma-separated; the first is the reference",
    )
    ap.add_argument("--reps", type=int, default=25)
    ap.add_argument("--warmups", type=int, default=3)
    ap.add_argument("--records-per-hour", type=int, default=50)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--name", default="lake-scaling")
    ap.add_argument("--work-dir", type=Path, default=None)
    ap.add_argument("--keep-work", action="store_true")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.warmups < 1 or args.reps < 1 or not sizes:
        ap.error("--reps, --warmups and --sizes need at least one")

    started = time.perf_counter()
    cpu0 = time.process_time()
    work = Path(tempfile.mkdtemp(prefix="lake-scaling-", dir=args.work_dir))
    try:
        print(f"template: ingesting one day ({args.records_per_hour} records/hour)", flush=True)
        template = make_template(work, args.records_per_hour)
        print(f"  {template.rows} rows, {template.bytes:,} bytes, {template.ingest_s:.1f} s")
        results: list[SizeResult] = []
        for n in sizes:
            print(f"N={n}: building", flush=True)
            r = measure(work / f"catalog-{n}", template, n, args.reps, args.warmups)
            results.append(r)
            b = r.build
            print(
                f"  write {b.write_s:.1f} s (state {b.state_s:.1f} s), "
                + ", ".join(f"{m} {r.timings['count_avg'][m].median_ms:.2f} ms" for m in METHODS)
                + f", files read lake/view {r.explain['lake'].get('total_files_read')}"
                f"/{r.explain['view'].get('total_files_read')}",
                flush=True,
            )
            shutil.rmtree(work / f"catalog-{n}", ignore_errors=True)
    finally:
        if args.keep_work:
            print(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    wall = time.perf_counter() - started
    doc: dict[str, Any] = {
        "bench": "lake_scaling",
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "wall_s": round(wall, 1),
        "cpu_s": round(time.process_time() - cpu0, 1),
        "host": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
        },
        "sizes": sizes,
        "reps": args.reps,
        "warmups": args.warmups,
        "queries": QUERIES,
        "template": {k: v for k, v in asdict(template).items() if k != "path"},
        "issue": ISSUE,
        "summary": summarise(results),
        "target": target_check(results),
        "results": [asdict(r) for r in results],
        "argv": sys.argv[1:] if argv is None else argv,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    md = render_md(doc, results)
    (args.out / f"{args.name}.md").write_text(md)
    print(md)
    return 0 if all(r.results_agree for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
