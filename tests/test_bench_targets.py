"""The issue-13 targets harness (bench/targets.py) at its tiniest scale, on the local endpoint.

Never asserts a timing: it checks that every scenario ran, that outputs hold the seeded rows,
that the warm re-run made no GET, and that the result files carry one row per target.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cvcatalog.sandbox.server import SandboxServer

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.targets import _cpu_floor, figure, markdown, proxy_variants, target_rows  # noqa: E402
from bench.tools import DEFAULT_DIR  # noqa: E402


def _fig(wall: float | None, per_s: float | None = None) -> dict[str, Any]:
    return {"runs": 1, "ok": 1, "wall_s": wall, "cpu_s": 1.0, "load_1min": [1.0], "per_s": per_s}


def test_target_rows_pass_and_fail() -> None:
    """Ratios on the right side of a target pass, the others fail, missing ones stay open."""
    scenarios = {
        "limit": {
            "ranges": {
                "1d": {
                    "days": 1,
                    "records": 10,
                    "bytes": 1000,
                    "ingest": _fig(10.0),
                    "limit_typed": _fig(9.0),
                    "limit": _fig(8.0),
                    "ratio_typed": 0.9,
                    "ratio_canonical": 0.8,
                    "limit_ordered": _fig(9.5),
                    "ratio_ordered": 0.95,
                }
            }
        },
        "days": {
            "replica": {"days": 100},
            "ratio": 2.5,
            "query": {"days": {"many": 100, "compare": 10}, "ratio_catalog_query": 1.2},
        },
        "proxy": {
            "latency_ms": 50.0,
            "ingests": {
                "ingest_defaults": {"flags": "", "ratio": 0.95},
                "ingest_w16": {"flags": "--rate-limit 0 --workers 16", "ratio": None},
                "ingest_workers_64": {"flags": "--workers 64", "ratio": 0.5},
            },
        },
        "bigday": {
            "bytes": 2e9,
            "ingest": {"max_rss_bytes": 900 * 2**20},
            "parquet_over_raw": 0.06,
            "ingest_warm": {"server_gets": 1, "cvcatalog_gets": 0},
        },
    }
    rows = {r["target"]: r["pass"] for r in target_rows(scenarios)}
    assert rows == {
        "ingest vs limit (typed SELECT *), 1d": True,
        "ingest vs limit (canonical SQL), 1d": False,
        "ingest vs limit (canonical SQL in row order), 1d": True,
        "100 one-object days vs one day of the same objects": False,
        "warm one-day query, 100 vs 10 days (catalog_query)": True,
        "warm one-day query, 100 vs 10 days (plain_duckdb)": None,
        "objects/s vs s5cmd, 50 ms latency (defaults)": True,
        "objects/s vs s5cmd, 50 ms latency (--rate-limit 0 --workers 16)": None,
        "objects/s vs s5cmd, 50 ms latency (--workers 64)": None,
        "peak RSS, one day of 2 GB": True,
        "Parquet / raw, big day": True,
        "warm re-run GETs, big day": False,
    }


def test_proxy_variants_named_by_their_flags() -> None:
    v = proxy_variants(["--workers 64", "--rate-limit 200 --workers 32"])
    assert v == {
        "ingest_defaults": [],
        "ingest_w16": ["--rate-limit", "0", "--workers", "16"],
        "ingest_workers_64": ["--workers", "64"],
        "ingest_rate_limit_200_workers_32": ["--rate-limit", "200", "--workers", "32"],
    }


def _run_targets(tmp_path: Path, server: SandboxServer, *args: str) -> dict[str, Any]:
    out = tmp_path / "results"
    cmd = [
        sys.executable,
        "-m",
        "bench.targets",
        "--tiny",
        "--repeats",
        "1",
        "--no-install-tools",
        "--endpoint-port",
        str(server.port),
        "--out",
        str(out),
        "--work-dir",
        str(tmp_path / "work"),
        "--timeout",
        "120",
        *args,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CVCATALOG_"))}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode != 0:
        pytest.fail(
            f"bench.targets exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    results: dict[str, Any] = json.loads((out / "targets.json").read_text())
    results["_md"] = (out / "targets.md").read_text()
    return results


def _ok_runs(results: dict[str, Any], variant: str) -> list[dict[str, Any]]:
    runs = [r for r in results["runs"] if r["variant"] == variant]
    assert runs, f"no run of {variant}"
    for r in runs:
        assert r["status"] == "ok", r
        assert r["wall_s"] > 0 and r["cpu_s"] > 0 and len(r["loadavg_start"]) == 3
    return runs


def test_targets_tiny_limit(s3_endpoint: str, s3_server: SandboxServer, tmp_path: Path) -> None:
    """One tiny day: cvcatalog ingest, the typed-columns COPY and the canonical COPY (also in
    the catalog's row order)."""
    res = _run_targets(tmp_path, s3_server, "--only", "limit", "--range-days", "1")
    rng = res["scenarios"]["limit"]["ranges"]["1d"]
    for variant in ("ingest_1d", "limit_typed_1d", "limit_1d", "limit_ordered_1d"):
        (run,) = _ok_runs(res, variant)
        assert run["rows"] == rng["records"] == 480
    assert rng["ratio_typed"] > 0 and rng["ratio_canonical"] > 0 and rng["ratio_ordered"] > 0
    targets = [t["target"] for t in res["targets"]]
    assert targets == [
        "ingest vs limit (typed SELECT *), 1d",
        "ingest vs limit (canonical SQL), 1d",
        "ingest vs limit (canonical SQL in row order), 1d",
    ]
    assert "| DuckDB COPY, read_json typed columns, SELECT * | 1/1 |" in res["_md"]


@pytest.mark.slow
def test_targets_tiny_all(s3_endpoint: str, s3_server: SandboxServer, tmp_path: Path) -> None:
    """Every scenario at its tiniest: 1 and 2 days, 3 one-object days, 24 objects behind the
    latency proxy, a 2 MB big day."""
    res = _run_targets(tmp_path, s3_server)
    sc = res["scenarios"]
    assert {k: v["status"] for k, v in sc.items()} == dict.fromkeys(
        ("limit", "days", "proxy", "bigday"), "ok"
    )
    assert set(sc["limit"]["ranges"]) == {"1d", "2d"}
    for variant in ("ingest_many_days", "ingest_one_day"):
        (run,) = _ok_runs(res, variant)
        assert run["rows"] == sc["days"]["replica"]["records"] == 3 * 75
    assert sc["days"]["query"]["catalogs"]["many"]["files_read"] == 1
    for variant in ("ingest_defaults", "ingest_w16"):
        (run,) = _ok_runs(res, variant)
        assert run["proxy_requests"] >= sc["proxy"]["replica"]["objects"]
    assert sc["proxy"]["latency_injected"] > 0
    (s5,) = [r for r in res["runs"] if r["variant"] == "s5cmd"]
    tools = (DEFAULT_DIR / "bin" / "aws").exists()
    assert s5["status"] == ("ok" if tools else "skipped"), s5
    big = sc["bigday"]
    assert big["ingest"]["status"] == "ok" and big["ingest_warm"]["cvcatalog_gets"] == 0
    assert 0 < big["parquet_over_raw"] < 1
    assert len(res["targets"]) == 6 + 3 + 2 + 3
    for t in res["targets"]:
        # without s5cmd (bench/.tools not installed) there is no ratio to s5cmd, only then
        assert t["reached"] is not None or (not tools and "vs s5cmd" in t["target"]), t
        assert f"| {t['target']} |" in res["_md"]
    assert markdown(res).startswith("# cvcatalog: issue 13 targets")


def test_the_cpu_floor_adds_the_endpoints_cpu_to_the_clients() -> None:
    runs = [
        {"status": "ok", "wall_s": w, "cpu_s": c, "max_rss_bytes": 1, "endpoint_cpu_s": e}
        for w, c, e in ((3.0, 7.0, 3.0), (4.0, 8.0, 2.0), (5.0, 9.0, 4.0))
    ]
    f = figure(runs, 1000)
    assert (f["cpu_s"], f["endpoint_cpu_s"]) == (8.0, 3.0)
    assert _cpu_floor(f, 2) == ["3.00", "5.50"]  # (8 + 3) / 2 cores
    assert _cpu_floor(figure([]), 2) == ["-", "-"]  # no run: no floor
