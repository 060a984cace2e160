"""Summaries, target checks and the markdown report of one benchmark invocation."""

from __future__ import annotations

import statistics
from typing import Any

MIB = 1024 * 1024
GIB = 1024 * MIB

#: the interleaved variants, in table order
THROUGHPUT_VARIANTS = ("ingest", "limit", "baseline")
DOWNLOAD_VARIANTS = ("dl_cvcatalog", "dl_aws", "dl_s5cmd")
LABELS = {
    "ingest": "cvcatalog ingest (cold, end to end)",
    "ingest_warm": "cvcatalog ingest, warm re-run",
    "ingest_default_memory": "cvcatalog ingest, default memory config (max_usage_gb 24)",
    "limit": "DuckDB limit (read_json over httpfs -> COPY)",
    "baseline": "naive baseline (json.loads + json_normalize + to_parquet)",
    "dl_cvcatalog": "cvcatalog downloader (S3Fetcher)",
    "dl_aws": "aws s3 sync",
    "dl_s5cmd": "s5cmd cp",
}


def _ok_runs(runs: list[dict[str, Any]], variant: str) -> list[dict[str, Any]]:
    return [r for r in runs if r["variant"] == variant and r.get("status") == "ok"]


def summarize(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per variant: median wall time of the repeats, throughput, peak RSS, sizes, ratios."""
    replica = results["replica"]
    records, raw = replica["records"], replica["bytes"]
    out: dict[str, dict[str, Any]] = {}
    for variant in (*THROUGHPUT_VARIANTS, "ingest_warm", *DOWNLOAD_VARIANTS):
        runs = _ok_runs(results["runs"], variant)
        skipped = [r for r in results["runs"] if r["variant"] == variant and r["status"] != "ok"]
        if not runs:
            if skipped:
                out[variant] = {"status": skipped[0]["status"], "why": skipped[0].get("why")}
            continue
        failed = [r for r in results["runs"] if r["variant"] == variant and r["status"] == "failed"]
        walls = [r["wall_s"] for r in runs]
        med = statistics.median(walls)
        s: dict[str, Any] = {
            "status": "ok",
            "repeats": len(runs),
            "wall_s_median": round(med, 3),
            "wall_s_min": round(min(walls), 3),
            "wall_s_max": round(max(walls), 3),
            "peak_rss_bytes": max(r["max_rss_bytes"] for r in runs),
            "requests": runs[0]["requests"]["by_kind"],
            "failed_runs": len(failed),
            "failures": [f.get("why") for f in failed],
        }
        if variant != "ingest_warm":
            s["records_per_s"] = round(records / med) if med else None
            s["mb_per_s"] = round(raw / 1e6 / med, 2) if med else None
        pq = [r["parquet_bytes"] for r in runs if r.get("parquet_bytes") is not None]
        if pq:
            s["parquet_bytes"] = int(statistics.median(pq))
            s["parquet_over_raw"] = round(s["parquet_bytes"] / raw, 4) if raw else None
        out[variant] = s
    limit = out.get("limit", {}).get("wall_s_median")
    base = out.get("baseline", {}).get("wall_s_median")
    for variant in THROUGHPUT_VARIANTS:
        s = out.get(variant, {})
        if s.get("status") != "ok":
            continue
        # throughput ratio = other's time / this time (same records in both)
        s["x_limit"] = round(limit / s["wall_s_median"], 3) if limit else None
        s["x_baseline"] = round(base / s["wall_s_median"], 2) if base else None
    tools = [
        out[v]["wall_s_median"]
        for v in ("dl_aws", "dl_s5cmd")
        if out.get(v, {}).get("status") == "ok"
    ]
    best_tool = min(tools) if tools else None
    for variant in DOWNLOAD_VARIANTS:
        s = out.get(variant, {})
        if s.get("status") == "ok" and best_tool:
            s["x_best_tool"] = round(best_tool / s["wall_s_median"], 3)
    return out


def targets(results: dict[str, Any], summary: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets: what was asked, what was reached, and whether it passes."""
    rows: list[dict[str, Any]] = []

    def add(name: str, target: str, value: Any, passed: bool | None, note: str = "") -> None:
        rows.append(
            {"target": name, "wanted": target, "reached": value, "pass": passed, "note": note}
        )

    ing = summary.get("ingest", {})
    if ing.get("status") == "ok" and ing.get("x_limit") is not None:
        add("ingest vs DuckDB limit", ">= 0.85x", f"{ing['x_limit']:.2f}x", ing["x_limit"] >= 0.85)
    if ing.get("status") == "ok" and ing.get("x_baseline") is not None:
        add(
            "ingest vs naive baseline",
            ">= 15x",
            f"{ing['x_baseline']:.1f}x",
            ing["x_baseline"] >= 15,
        )
    dl = summary.get("dl_cvcatalog", {})
    if dl.get("status") == "ok" and dl.get("x_best_tool") is not None:
        add(
            "download vs best of aws s3 sync / s5cmd",
            ">= 0.9x",
            f"{dl['x_best_tool']:.2f}x",
            dl["x_best_tool"] >= 0.9,
            f"equal concurrency: {results['config']['workers']} workers",
        )
    rl = results.get("rate_limit") or {}
    if rl.get("status") == "ok":
        add(
            f"rate limit {rl['rate_limit']:g}/s never exceeded by > 5 %",
            f"max in any 1 s <= {rl['allowed_per_window']:g}",
            f"max {rl['max_in_1s_window']} in 1 s (avg {rl['achieved_rate']:.2f}/s)",
            rl["max_in_1s_window"] <= rl["allowed_per_window"],
        )
    if ing.get("status") == "ok":
        rss = ing["peak_rss_bytes"]
        add(
            "peak RSS of ingest",
            "<= 1 GiB",
            f"{rss / MIB:.0f} MiB",
            rss <= GIB,
            f"days of ~{results['replica']['records_per_day']:,} records",
        )
    big = results.get("big_day") or {}
    for variant in ("ingest", "ingest_default_memory"):
        e = big.get(variant) or {}
        if not e:
            continue
        # the issue's 1 GiB budget for the bench's own config; the default config is judged
        # against its own budget (max_usage_gb 24), which is what a user of it asked for
        mem = "" if variant == "ingest" else ", max_usage_gb 24"
        budget = GIB if variant == "ingest" else 24 * GIB
        if e.get("status") == "ok":
            reached = f"{e['max_rss_bytes'] / MIB:.0f} MiB"
        else:
            why = (e.get("why") or "").replace("\n", " ").replace("|", "/")[:160]
            reached = f"failed ({why}), peak {e['max_rss_bytes'] / MIB:.0f} MiB"
        add(
            f"peak RSS of ingest, big day{mem}",
            f"<= {budget // GIB} GiB",
            reached,
            e.get("status") == "ok" and e["max_rss_bytes"] <= budget,
            f"one day of {big['bytes'] / 1e9:.2f} GB",
        )
    bwarm = big.get("ingest_warm") or {}
    if bwarm:
        add(
            "warm re-run makes zero GET requests, big day",
            "0",
            f"{bwarm.get('server_gets')} (server), {bwarm.get('cvcatalog_gets')} (cvcatalog)",
            bwarm.get("status") == "ok"
            and bwarm.get("server_gets") == 0
            and bwarm.get("cvcatalog_gets") == 0,
            f"one day of {big['bytes'] / 1e9:.2f} GB",
        )
    if ing.get("parquet_over_raw") is not None:
        add(
            "Parquet size / raw NDJSON",
            "<= 10 %",
            f"{ing['parquet_over_raw'] * 100:.1f} %",
            ing["parquet_over_raw"] <= 0.10,
        )
    warm = summary.get("ingest_warm", {})
    if warm.get("status") == "ok":
        gets = [r.get("server_gets") for r in _ok_runs(results["runs"], "ingest_warm")]
        add(
            "warm re-run makes zero GET requests",
            "0 GETs",
            f"{max(g or 0 for g in gets)} GETs",
            all(g == 0 for g in gets),
        )
    q = (results.get("queries") or {}).get("queries") or {}
    day = q.get("one_day_count")
    if day:
        add(
            "one-day query opens only that day's files",
            f"{day['files_expected']} file(s)",
            f"{day['total_files_read']} file(s) read, scanning {', '.join(day['scanning_files'])}",
            day["total_files_read"] == day["files_expected"],
        )
    week = q.get("vehicle_week_trajectory")
    if week:
        best = min(week["catalog_query_median_ms"], week["plain_duckdb_median_ms"])
        add(
            "single-vehicle week query, warm",
            "< 200 ms",
            f"{week['catalog_query_median_ms']:.0f} ms Catalog.query, "
            f"{week['plain_duckdb_median_ms']:.0f} ms plain DuckDB",
            week["catalog_query_median_ms"] < 200,
            f"plain DuckDB {'passes' if best < 200 else 'fails'} too",
        )
    return rows


# -- markdown ---------------------------------------------------------------------------------


def _fmt(v: Any, spec: str = "") -> str:
    if v is None:
        return "-"
    if spec:
        return format(v, spec)
    return str(v)


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / MIB:,.0f}"


def _req(d: dict[str, int] | None) -> str:
    if not d:
        return "0"
    parts = [f"{d[k]} {k}" for k in ("GET", "LIST", "HEAD") if d.get(k)]
    return ", ".join(parts) or "0"


def markdown(results: dict[str, Any]) -> str:
    s = results["summary"]
    cfg = results["config"]
    rep = results["replica"]
    meta = results["meta"]
    lines: list[str] = []
    w = lines.append
    w(f"# cvcatalog benchmark: {rep['records']:,} records")
    w("")
    w(
        f"{meta['started_at']} on {meta['cpus']} cores, {meta['memory_gib']:.0f} GiB; "
        f"cvcatalog {meta.get('git_commit') or '?'}{' (uncommitted changes)' if meta.get('git_dirty') else ''}, "
        f"DuckDB {meta['duckdb']}, Python {meta['python']}. Command: `{meta['command']}`."
    )
    w("")
    w(
        f"Replica: {rep['records']:,} WYDOT BSM v{rep['schema_version']} records "
        f"({rep['bytes'] / 1e9:.2f} GB NDJSON, {rep['bytes'] / rep['records']:,.0f} B/record) in "
        f"{rep['objects']:,} objects over {rep['days']} folder days ({rep['start']}..{rep['end']}), "
        f"{rep['files_per_hour']} objects/hour of ~{rep['records_per_object']:,} records, on a "
        f"local moto S3 endpoint (seeded in {rep['seed_seconds']:.0f} s). Each variant is its own "
        f"process; {cfg['repeats']} repeat(s), interleaved (order rotated per repeat); times are "
        f"medians of wall time including process start. {cfg['workers']} download workers, "
        f"DuckDB memory_limit {cfg['duckdb_memory_limit']} (memory.max_usage_gb "
        f"{cfg['memory_gb']:g}), threads {cfg['threads'] or 'default (all cores)'}."
    )
    w("")
    if any(v in s for v in (*THROUGHPUT_VARIANTS, "ingest_warm")):
        _throughput(w, s, results)
    if any(v in s for v in DOWNLOAD_VARIANTS):
        _downloads(w, s, results)
    _rest(w, results)
    w("")
    return "\n".join(lines)


def _throughput(w: Any, s: dict[str, Any], results: dict[str, Any]) -> None:
    w("## Ingest vs the DuckDB limit and the naive baseline")
    w("")
    w(
        "| variant | wall s (median; min-max) | records/s | MB/s | peak RSS MiB | Parquet MB | "
        "Parquet / raw | x limit | x baseline | requests (one run) |"
    )
    w("|---|---|---|---|---|---|---|---|---|---|")
    for v in (*THROUGHPUT_VARIANTS, "ingest_warm"):
        x = s.get(v)
        if not x:
            continue
        if x["status"] != "ok":
            why = (x.get("why") or "").replace("\n", " ").replace("|", "/")[:300]
            w(f"| {LABELS[v]} | {x['status']}: {why} | | | | | | | | |")
            continue
        pq = x.get("parquet_bytes")
        w(
            f"| {LABELS[v]} | {x['wall_s_median']:.2f} ({x['wall_s_min']:.2f}-{x['wall_s_max']:.2f}) | "
            f"{_fmt(x.get('records_per_s'), ',')} | {_fmt(x.get('mb_per_s'), '.1f')} | "
            f"{_mib(x['peak_rss_bytes'])} | {_fmt(None if pq is None else pq / 1e6, '.1f')} | "
            f"{_fmt(None if x.get('parquet_over_raw') is None else x['parquet_over_raw'] * 100, '.1f')}"
            f"{' %' if x.get('parquet_over_raw') is not None else ''} | "
            f"{_fmt(x.get('x_limit'), '.2f')} | {_fmt(x.get('x_baseline'), '.1f')} | "
            f"{_req(x.get('requests'))} |"
        )
    w("")
    for v in (*THROUGHPUT_VARIANTS, "ingest_warm"):
        x = s.get(v) or {}
        if x.get("failed_runs"):
            why = "; ".join(str(f).replace("\n", " ") for f in x["failures"])[:500]
            w(f"**{x['failed_runs']} failed run(s) of {v}** (not in the medians): {why}")
            w("")
    agree = results.get("agreement") or {}
    if agree:
        w(
            "Outputs agree: "
            + ("**yes**" if agree.get("all_agree") else "**NO**")
            + " (row count and exact integer checksums of speed, latitude and longitude, "
            "same for every run of ingest, limit and baseline; expected rows = seeded records)."
        )
        w("")
        w("| output | rows | Σ speed_mps | Σ latitude | distinct vehicles |")
        w("|---|---|---|---|---|")
        for v, st in agree.get("first_run", {}).items():
            w(
                f"| {v} | {st['rows']:,} | {st['sum_speed']:.6f} | {st['sum_latitude']:.6f} | "
                f"{st['vehicles']} |"
            )
        w("")


def _downloads(w: Any, s: dict[str, Any], results: dict[str, Any]) -> None:
    cfg = results["config"]
    w("## Download only")
    w("")
    w(
        "| tool | wall s (median; min-max) | MB/s | peak RSS MiB | x best tool | requests (one run) |"
    )
    w("|---|---|---|---|---|---|")
    for v in DOWNLOAD_VARIANTS:
        x = s.get(v)
        if not x:
            continue
        if x["status"] != "ok":
            w(f"| {LABELS[v]} | {x['status']}: {x.get('why') or ''} | | | | |")
            continue
        w(
            f"| {LABELS[v]} | {x['wall_s_median']:.2f} ({x['wall_s_min']:.2f}-{x['wall_s_max']:.2f}) | "
            f"{_fmt(x.get('mb_per_s'), '.1f')} | {_mib(x['peak_rss_bytes'])} | "
            f"{_fmt(x.get('x_best_tool'), '.2f')} | {_req(x.get('requests'))} |"
        )
    for v in DOWNLOAD_VARIANTS:
        x = s.get(v) or {}
        if x.get("failed_runs"):
            why = "; ".join(str(f).replace("\n", " ") for f in x["failures"])[:500]
            w("")
            w(f"**{x['failed_runs']} failed run(s) of {v}** (not in the medians): {why}")
    tools = results.get("tools") or {}
    if tools:
        w("")
        w(
            "Tools: "
            + "; ".join(f"{k}: {v}" for k, v in (tools.get("versions") or {}).items())
            + (
                "; problems: " + "; ".join(f"{k}: {v}" for k, v in tools["problems"].items())
                if tools.get("problems")
                else ""
            )
            + f". Same concurrency for all: {cfg['workers']} (aws: s3.max_concurrent_requests, "
            "s5cmd: --numworkers)."
        )


def _rest(w: Any, results: dict[str, Any]) -> None:
    cfg = results["config"]
    rl = results.get("rate_limit")
    if rl:
        w("")
        w("## Rate limit")
        w("")
        if rl.get("status") != "ok":
            w(f"{rl.get('status')}: {rl.get('why')}")
        else:
            w(
                f"`cvcatalog ingest --rate-limit {rl['rate_limit']:g} --workers {cfg['workers']}` "
                f"over the same range: {rl['requests']} requests ({rl['gets']} GET, "
                f"{rl['lists']} LIST) in {rl['elapsed_s']:.1f} s of ingest = "
                f"{rl['achieved_rate']:.2f}/s on average; {rl['request_span_rate']:.2f}/s between "
                f"the first and the last request; at most **{rl['max_in_1s_window']}** requests "
                f"in any 1 s sliding window (client-side timestamps of every HTTP request botocore "
                f"sent; allowed {rl['allowed_per_window']:g}); the server logged at most "
                f"{rl['server_max_per_logged_second']} in one wall-clock second. "
                f"{'PASS' if rl['max_in_1s_window'] <= rl['allowed_per_window'] else 'FAIL'}."
            )
    q = results.get("queries")
    if q:
        w("")
        w("## Queries on a catalog of many days")
        w("")
        if q.get("status") != "ok":
            w(f"{q.get('status')}: {q.get('why')}")
        else:
            qc = q["catalog"]
            w(
                f"{qc['days']} days x {qc['records_per_day']} records ({qc['records']:,} rows, "
                f"{qc['data_files']} Parquet files), ingested with `cvcatalog ingest` in "
                f"{qc['ingest_wall_s']:.1f} s ({qc['ingest_wall_s'] / qc['days'] * 1000:.0f} ms "
                f"per day, peak RSS {qc['ingest_max_rss_bytes'] / MIB:.0f} MiB). Warm latencies, "
                f"median of {q['reps']} after one warm-up; files read from EXPLAIN ANALYZE."
            )
            w("")
            w(
                "| query | rows | Catalog.query ms | plain DuckDB ms | to_dask ms | "
                "files read (expected) | scanning files |"
            )
            w("|---|---|---|---|---|---|---|")
            for name, e in q["queries"].items():
                w(
                    f"| {name} | {e['rows']:,} | {e['catalog_query_median_ms']:.1f} | "
                    f"{e['plain_duckdb_median_ms']:.1f} | "
                    f"{_fmt(e.get('to_dask_median_ms'), '.1f')} | "
                    f"{_fmt(e['total_files_read'])} ({_fmt(e['files_expected'])}) | "
                    f"{', '.join(e['scanning_files'])} |"
                )
    big = results.get("big_day")
    if big:
        w("")
        w("## A big day")
        w("")
        if big.get("status") != "ok":
            w(f"{big.get('status')}: {big.get('why')}")
        else:
            w(
                f"One folder day of {big['records']:,} records, {big['bytes'] / 1e9:.2f} GB "
                f"NDJSON in {big['objects']} objects."
            )
            w("")
            w("| variant | wall s | records/s | MB/s | peak RSS MiB | Parquet / raw |")
            w("|---|---|---|---|---|---|")
            for v in ("ingest", "ingest_default_memory", "limit"):
                e = big.get(v)
                if not e:
                    continue
                if e.get("status") != "ok":
                    why = (e.get("why") or "").replace("\n", " ").replace("|", "/")[:300]
                    w(
                        f"| {LABELS[v]} | {e.get('status')} after {e['wall_s']:.1f} s: {why} "
                        f"| | | {e['max_rss_bytes'] / MIB:,.0f} | |"
                    )
                    continue
                w(
                    f"| {LABELS[v]} | {e['wall_s']:.1f} | {big['records'] / e['wall_s']:,.0f} | "
                    f"{big['bytes'] / 1e6 / e['wall_s']:.1f} | {e['max_rss_bytes'] / MIB:,.0f} | "
                    f"{_fmt(None if e.get('parquet_bytes') is None else e['parquet_bytes'] / big['bytes'] * 100, '.1f')} % |"
                )
    prof = results.get("profile")
    if prof:
        w("")
        w("## Where ingest spends its time")
        w("")
        if prof.get("status") != "ok":
            w(f"{prof.get('status')}: {prof.get('why')}")
        else:
            w(
                f"One extra ingest under cProfile ({prof['ingest_wall_s']:.1f} s with the "
                f"profiler; main thread only) and the pieces measured alone on the same data:"
            )
            w("")
            w("| piece | seconds |")
            w("|---|---|")
            for label, secs in prof["pieces"]:
                w(f"| {label} | {secs:.2f} |")
            w("")
            w("cProfile, cumulative seconds of cvcatalog functions (main thread):")
            w("")
            w("| function | cumulative s | calls |")
            w("|---|---|---|")
            for fn in prof["functions"]:
                w(f"| `{fn['function']}` | {fn['cumtime']:.2f} | {fn['calls']} |")
    tg = results.get("targets") or []
    if tg:
        w("")
        w("## Targets")
        w("")
        w("| target | wanted | reached | pass |")
        w("|---|---|---|---|")
        for t in tg:
            mark = {True: "yes", False: "**no**", None: "-"}[t["pass"]]
            note = f" ({t['note']})" if t.get("note") else ""
            w(f"| {t['target']} | {t['wanted']} | {t['reached']}{note} | {mark} |")
    notes = results.get("notes") or []
    if notes:
        w("")
        w("## Notes")
        w("")
        for n in notes:
            w(f"- {n}")
