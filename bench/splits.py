"""Trips and splits on a realistic week: `python -m bench.splits [--records-per-hour N]`.

Seeds a week of WYDOT BSM (replica, many vehicle ids) on a local endpoint, ingests it, then
measures (median of --reps, warm): the split plan by vehicle and by trip (group sizes in SQL),
computing the three frames of each, the trips view per source and a kinematics aggregate; and
checks the fractions (within 1 % of rows) and that no group is in two splits. Writes
bench/results/splits.{md,json}, with the machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import boto3

from cvcatalog.catalog import Catalog
from cvcatalog.sandbox.replica import seed_replica
from cvcatalog.sandbox.server import start_server
from cvcatalog.sources.bucket import BUCKET

RESULTS = Path(__file__).parent / "results"
START, END = date(2021, 4, 1), date(2021, 4, 7)
FRACTIONS = (0.8, 0.1, 0.1)


def timed(fn: Callable[[], Any], reps: int) -> tuple[float, Any]:
    fn()  # warm-up
    runs, out = [], None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records-per-hour", type=int, default=1940)  # ~326,000 a week
    ap.add_argument("--vehicles", type=int, default=600)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--name", default="splits")
    args = ap.parse_args()
    result: dict[str, Any] = {"args": vars(args), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp, start_server(port=0) as server:
        os.environ.update(server.env())
        client = boto3.client("s3", endpoint_url=server.endpoint_url)
        client.create_bucket(Bucket=BUCKET)
        seed_replica(client, START, END, records_per_hour=args.records_per_hour,
                     files_per_hour=2, vehicles=args.vehicles, seed=1, empty_hour_rate=0.0)  # fmt: skip
        cat = Catalog(Path(tmp) / "catalog")
        summary = cat.ingest("wydot", "BSM", START, END, rate_limit=0)
        assert summary.ok
        total = int(cat.query("select count(*) as n from wydot_bsm").n[0])
        result["rows"] = total
        result["vehicle_ids"] = int(
            cat.query("select count(distinct vehicle_id) as n from wydot_bsm").n[0]
        )
        for by in ("vehicle", "trip"):
            t_plan, (plan, _) = timed(
                lambda by=by: cat.split_plan("wydot", "BSM", START, END, by=by, fractions=FRACTIONS),
                args.reps,
            )  # fmt: skip

            def frames(by: str = by) -> list[int]:
                parts = cat.split("wydot", "BSM", START, END, by=by, fractions=FRACTIONS,
                                  columns=["vehicle_id", "generated_at", "speed_mps"])  # fmt: skip
                return [len(p) for p in parts]

            t_frames, rows = timed(frames, args.reps)
            achieved = [r / total for r in rows]
            assert sum(rows) == total and tuple(rows) == plan.rows
            result[by] = {
                "groups": len(plan.assignment),
                "plan_s": round(t_plan, 3),
                "split_and_count_s": round(t_frames, 3),
                "rows": rows,
                "achieved": [round(a, 5) for a in achieved],
                "max_deviation": round(max(abs(a - f) for a, f in zip(achieved, FRACTIONS, strict=True)), 5),
            }  # fmt: skip
        t_trips, trips = timed(
            lambda: cat.query("select source, count(*) as n from bsm_trips group by 1"), args.reps
        )
        t_kin, _ = timed(
            lambda: cat.query(
                "select avg(abs(speed_residual_mps)) as r from bsm_kinematics where dt_s > 0"
            ),
            args.reps,
        )
        result["trips"] = int(trips.n.sum())
        result["bsm_trips_query_s"] = round(t_trips, 3)
        result["bsm_kinematics_aggregate_s"] = round(t_kin, 3)
    result["load_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    lines = [
        f"# Trips and splits on a week ({result['rows']:,} WYDOT BSM rows, "
        f"{result['vehicle_ids']} vehicle ids, {result['trips']:,} trips)",
        "",
        f"Load average before / after: {result['load_before']} / {result['load_after']} "
        f"(median of {args.reps} warm runs).",
        "",
        "| by | groups | plan (s) | split + count 3 frames (s) | rows | achieved | max deviation |",
        "|---|---|---|---|---|---|---|",
    ]
    for by in ("vehicle", "trip"):
        r = result[by]
        lines.append(
            f"| {by} | {r['groups']:,} | {r['plan_s']} | {r['split_and_count_s']} | "
            f"{r['rows']} | {r['achieved']} | {r['max_deviation']} |"
        )
    lines += [
        "",
        f"`select source, count(*) from bsm_trips group by 1`: {result['bsm_trips_query_s']} s; "
        f"an aggregate over `bsm_kinematics`: {result['bsm_kinematics_aggregate_s']} s.",
    ]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
