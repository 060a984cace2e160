"""The fast part of `make chaos`: one kill -9 trial (with a killed re-run) and four concurrent
writers + a reader; three trials spread over the run are marked slow.

The long run (>= 30 trials, bigger data) is `make chaos` (bench/chaos.py).
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# bench/ is a top-level package of the repository, not part of the installed cvcatalog
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.catalog_session import plain_session  # noqa: E402
from bench.chaos import (  # noqa: E402
    InvariantError,
    Scenario,
    Trial,
    calibrate,
    check_catalog,
    concurrency,
    crash_trials,
    seed,
)


@pytest.fixture
def scenario(s3_endpoint: str) -> Scenario:
    return seed(s3_endpoint, days=1, records_per_hour=40, files_per_hour=2)


def test_a_kill_9_and_a_killed_re_run_lose_and_duplicate_nothing(
    scenario: Scenario, tmp_path: Path
) -> None:
    """One trial of the harness: an ingest killed at a random moment, its re-run killed too,
    then a re-run to the end (the spread of kill moments: the slow test below, `make chaos`;
    kills at set points: test_daygroups.py, test_ingest.py)."""
    cold, _ = calibrate(scenario, tmp_path, refresh=False)
    rng = random.Random(7)
    trials = crash_trials(scenario, tmp_path, 1, rng, (cold, cold), double_kill_every=1)
    _check_trials(trials, kills=1, double_killed=0)
    _check_the_checker(tmp_path, trials)


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_and_duplicates_nothing(
    scenario: Scenario, tmp_path: Path
) -> None:
    cold, _ = calibrate(scenario, tmp_path, refresh=False)
    rng = random.Random(7)
    # kills spread over the run: early, middle, late (cold, then --force-refresh, then cold)
    trials = crash_trials(scenario, tmp_path, 3, rng, (cold, cold), double_kill_every=3)
    _check_trials(trials, kills=3, double_killed=2)
    _check_the_checker(tmp_path, trials)


def _check_trials(trials: list[Trial], kills: int, double_killed: int) -> None:
    """No trial lost or duplicated a row; `kills` ingests were killed while running, and the
    re-run of trial `double_killed` (an index) was killed too."""
    for t in trials:
        assert t.error is None, t
        assert t.rows_lost == 0 and t.duplicates == 0
    assert sum(t.killed for t in trials) == kills
    assert trials[double_killed].reruns == 2


def _check_the_checker(tmp_path: Path, trials: list[Trial]) -> None:
    """The checker is not blind: a damaged file of a complete partition is caught."""
    catalog = tmp_path / f"trial-{max(t.n for t in trials if t.mode == 'cold')}"
    # a file the state calls current (replaced files stay on disk for time travel, unchecked)
    con = plain_session(catalog / "catalog.ducklake")
    try:
        row = con.execute("SELECT path FROM partition_files WHERE kind = 'data' LIMIT 1").fetchone()
    finally:
        con.close()
    assert row is not None
    part = catalog / row[0]
    part.write_bytes(part.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(InvariantError, match="SHA-256"):
        check_catalog(catalog)


def test_four_writers_and_a_reader(s3_endpoint: str, tmp_path: Path) -> None:
    sc = seed(s3_endpoint, days=3, records_per_hour=15, files_per_hour=1)
    res = concurrency(sc, tmp_path, writers=4, cli_reader=False)
    assert res.exit_codes == [0, 0, 0, 0], res.errors
    assert not res.errors, res.errors
    assert res.built == {k: 1 for k in sc.data_partitions}  # every day built exactly once
    assert res.rows == sc.records and res.duplicates == 0
    assert res.reader["queries"] > 0 and not res.reader["errors"]
    assert res.reader["inconsistent"] == 0 and res.reader["decreased"] == 0
    assert res.verify_clean
    assert all(n.startswith("note: waiting for another cvcatalog process") for n in res.notes)


def test_a_killed_run_is_marked_interrupted_by_the_next_one(
    scenario: Scenario, tmp_path: Path
) -> None:
    import socket
    import subprocess

    from cvcatalog.catalog import Catalog
    from cvcatalog.state.db import now_utc

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    cat = Catalog(tmp_path / "cat")
    with cat.db.write() as con:  # what a kill -9 leaves in ingest_runs
        con.execute(
            "INSERT INTO ingest_runs (run_id, started_at, status, host, pid) "
            "VALUES ('killed', ?, 'running', ?, ?), ('alive', ?, 'running', ?, ?)",
            [
                now_utc(),
                socket.gethostname(),
                int(gone.stdout),
                now_utc(),
                socket.gethostname(),
                os.getpid(),
            ],
        )
    s = cat.ingest("wydot", "BSM", scenario.start, scenario.end, timezone="UTC", rate_limit=0)
    assert s.ok
    runs = dict(cat.query("select run_id, status from ingest_runs").itertuples(index=False))
    assert runs["killed"] == "interrupted" and runs["alive"] == "running"
    # a run with every day cached records no run of its own, and marks a killed one too (it
    # stayed 'running' through any number of them)
    # and with what the killed run committed (it said 0 rows, 0 partitions): here one day
    with cat.db.write() as con:
        con.execute("UPDATE ingest_runs SET status = 'running' WHERE run_id = 'killed'")
        con.execute("UPDATE partitions SET run_id = 'killed' WHERE date = ?", [scenario.start])
    day_rows = int(cat.query("select rows from partitions where date = ?", [scenario.start]).rows[0])
    runs_before = len(cat.runs())
    again = cat.ingest("wydot", "BSM", scenario.start, scenario.end, timezone="UTC", rate_limit=0)
    assert again.ok and {o.status for o in again.outcomes} == {"cached"}
    runs = dict(cat.query("select run_id, status from ingest_runs").itertuples(index=False))
    assert runs["killed"] == "interrupted" and runs["alive"] == "running"
    assert len(cat.runs()) == runs_before  # still no run record of its own
    killed = cat.query("select * from ingest_runs where run_id = 'killed'").iloc[0]
    assert (killed.days_complete, killed.partitions_rewritten, killed["rows"]) == (1, 1, day_rows)
    # (a run whose last write failed on a full disk had finished: not "killed or crashed")
    assert killed.message.startswith("its process ended without recording the end of the run")
    assert day_rows > 0
