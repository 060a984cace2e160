"""Smoke test of the benchmark harness (bench/): a tiny replica, every variant once.

It checks that the harness works and that the variants agree with each other (same rows, same
checksums), never how fast anything is.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# bench/ is a top-level package of the repository, not part of the installed cvcatalog
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.measure import (  # noqa: E402
    RequestLog,
    classify_request,
    compile_package,
    max_in_window,
)
from bench.run import layout_for  # noqa: E402
from bench.tools import DEFAULT_DIR  # noqa: E402


def test_layout_for_holds_the_records() -> None:
    lay = layout_for(1_000_000, 3000, 2)
    assert lay == {"days": 7, "records_per_hour": 5953, "files_per_hour": 2}
    assert lay["days"] * 24 * lay["records_per_hour"] >= 1_000_000
    small = layout_for(2000, 3000, 2)
    assert small == {"days": 1, "records_per_hour": 84, "files_per_hour": 1}


def test_the_measured_package_starts_compiled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The harness writes a package's bytecode before it measures anything, even where no
    process would write it (PYTHONDONTWRITEBYTECODE, as in CI); a module that cannot compile
    stops it with the package named."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    sources = [pkg / "__init__.py", pkg / "sub" / "__init__.py", pkg / "sub" / "mod.py"]
    for f in sources:
        f.write_text("X = 1\n")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    compile_package(pkg)
    for f in sources:
        assert Path(importlib.util.cache_from_source(str(f))).is_file()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "mod.py").write_text("def (:\n")
    with pytest.raises(RuntimeError, match="broken did not compile"):
        compile_package(broken)


def test_max_in_window() -> None:
    assert max_in_window([]) == 0
    assert max_in_window([0.0, 0.5, 0.99, 1.0, 1.5]) == 3  # (0.0, 1.0] holds 0.5, 0.99, 1.0
    assert max_in_window([i * 0.25 for i in range(20)]) == 4  # exact binary fractions


def test_request_log(tmp_path: Path) -> None:
    log = tmp_path / "moto.log"
    log.write_text(
        '127.0.0.1 - - [21/Nov/2026 22:31:23] "PUT /b/k HTTP/1.1" 200 -\n'
        '127.0.0.1 - - [21/Nov/2026 22:31:24] "GET /b?list-type=2&prefix=a/ HTTP/1.1" 200 -\n'
        '127.0.0.1 - - [21/Nov/2026 22:31:24] "\x1b[35m\x1b[1mGET /b/a/k HTTP/1.1\x1b[0m" 206 -\n'
        '127.0.0.1 - - [21/Nov/2026 22:31:25] "HEAD /b/a/k HTTP/1.1" 200 -\n'
    )
    counts = RequestLog(log).since(0, settle=0)
    assert counts.by_kind == {"PUT": 1, "LIST": 1, "GET": 1, "HEAD": 1}
    assert counts.reads == 3
    assert counts.max_per_second == 2
    assert classify_request("GET", "/bucket/") == "LIST"


# ~17 s, the suite's longest: the bench harness (`make bench`) runs in `make test-all`, beside
# test_bench_targets.py's tiny run of the issue targets' harness, which `make test` keeps
@pytest.mark.slow
def test_benchmark_smoke(tmp_path: Path) -> None:
    """The whole harness on ~2,000 records; outputs agree; the warm re-run GETs nothing."""
    out = tmp_path / "results"
    tools_installed = (DEFAULT_DIR / "bin" / "aws").exists()
    cmd = [
        sys.executable,
        "-m",
        "bench.run",
        "--records",
        "2000",
        "--repeats",
        "1",
        "--query-days",
        "3",
        "--query-records-per-hour",
        "2",
        "--query-reps",
        "2",
        "--rate-limit-check",
        "50",
        "--big-day-gb",
        "0",
        "--no-install-tools",
        "--out",
        str(out),
        "--name",
        "smoke",
        "--work-dir",
        str(tmp_path / "work"),
        "--timeout",
        "120",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CVCATALOG_"))}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if proc.returncode != 0:
        pytest.fail(
            f"bench.run exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    results = json.loads((out / "smoke.json").read_text())
    md = (out / "smoke.md").read_text()
    assert "## Targets" in md and "| cvcatalog ingest (cold, end to end) |" in md

    runs = {r["variant"]: r for r in results["runs"]}
    for variant in ("ingest", "ingest_warm", "limit", "baseline", "dl_cvcatalog"):
        assert runs[variant]["status"] == "ok", runs[variant]
        assert runs[variant]["max_rss_bytes"] > 0 and runs[variant]["wall_s"] > 0
    for variant in ("dl_aws", "dl_s5cmd"):
        # external tools run when bench/.tools holds them; otherwise they are skipped, with why
        assert runs[variant]["status"] == ("ok" if tools_installed else "skipped"), runs[variant]
        assert runs[variant]["status"] == "ok" or runs[variant]["why"]

    records = results["replica"]["records"]
    assert records >= 2000
    stats = [runs[v]["output"] for v in ("ingest", "limit", "baseline")]
    assert [s["rows"] for s in stats] == [records] * 3
    for key in ("speed_units", "latitude_units", "longitude_units", "vehicles"):
        assert len({s[key] for s in stats}) == 1, key
    for key in ("sum_speed", "sum_latitude"):
        assert stats[1][key] == pytest.approx(stats[0][key], rel=1e-12)
        assert stats[2][key] == pytest.approx(stats[0][key], rel=1e-12)
    assert results["agreement"]["all_agree"] is True

    # the warm re-run sends no GET (server log) and says so (cvcatalog's own counters)
    assert runs["ingest_warm"]["server_gets"] == 0
    assert runs["ingest_warm"]["detail"]["get_requests"] == 0
    assert runs["ingest"]["server_gets"] == results["replica"]["objects"]

    # downloads fetched every byte
    dl = runs["dl_cvcatalog"]["downloaded"]
    assert (dl["files"], dl["bytes"]) == (
        results["replica"]["objects"],
        results["replica"]["bytes"],
    )

    rl = results["rate_limit"]
    assert rl["status"] == "ok"
    assert rl["requests"] == results["replica"]["objects"] + rl["lists"]
    assert rl["max_in_1s_window"] >= 1

    q = results["queries"]
    assert q["status"] == "ok"
    day = q["queries"]["one_day_count"]
    assert day["rows"] == 1 and day["total_files_read"] == day["files_expected"] == 1
    week = q["queries"]["vehicle_week_trajectory"]
    assert week["rows"] == week["rows_catalog_query"] == week["rows_to_dask"] > 0
    assert q["queries"]["full_range_aggregate"]["rows"] == 3

    summary = results["summary"]
    assert summary["ingest"]["x_limit"] > 0 and summary["ingest"]["x_baseline"] > 0
    assert {t["target"] for t in results["targets"]} >= {
        "ingest vs DuckDB limit",
        "Parquet size / raw NDJSON",
        "warm re-run makes zero GET requests",
    }
