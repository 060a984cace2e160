"""Raw copies in memory (io.memstage): the budget, release, and what earlier runs left."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cvcatalog.config import MemoryConfig
from cvcatalog.io import dirlock, memstage
from cvcatalog.io.memstage import MemoryStage

DAY1, DAY2 = "wydot/BSM/2021/04/01", "wydot/BSM/2021/04/02"
MB = 1 << 20  # sizes are only counted: the files the tests write are small


@pytest.fixture
def base(tmp_path: Path) -> Path:
    (tmp_path / "shm").mkdir()
    return tmp_path / "shm"


def _stage(tmp_path: Path, base: Path, budget: int, catalog: str = "cat") -> MemoryStage:
    stage = MemoryStage.open(tmp_path / catalog, budget, base=base)
    assert stage is not None
    return stage


def test_places_within_the_budget_and_release_returns_room(tmp_path: Path, base: Path) -> None:
    stage = _stage(tmp_path, base, 100 * MB)
    a = stage.place(DAY1, "000000-a.json", 60 * MB)
    assert a is not None and a.parent.is_dir() and a.is_relative_to(stage.root)
    assert stage.holds_copy(DAY1, a) and not stage.holds_copy(DAY2, a)
    assert stage.place(DAY1, "000001-b.json", 50 * MB) is None  # 110 > 100
    assert stage.place(DAY1, "000000-a.json", 60 * MB) == a  # placed again: counted once
    b = stage.place(DAY2, "000000-c.json", 40 * MB)
    assert b is not None and stage.used == 100 * MB and stage.holds(DAY2)
    a.write_bytes(b"x")
    stage.release(DAY1)
    assert not a.exists() and not a.parent.exists() and stage.used == 40 * MB
    assert stage.peak == 100 * MB and not stage.holds(DAY1)
    assert stage.place(DAY1, "000001-b.json", 50 * MB) is not None
    stage.release(DAY2)
    stage.release(DAY2)  # twice: nothing more
    assert stage.used == 50 * MB
    # another catalog has a directory of its own
    other = _stage(tmp_path, base, 100 * MB, "other")
    assert other.root != stage.root and other.used == 0
    stage.close()  # a copy is left (not committed): kept for the next run
    assert (stage.root / DAY1).is_dir()
    stage.release(DAY1)
    stage.close()  # nothing left: the catalog's directory goes
    assert not stage.root.exists()


def test_a_full_file_system_stops_placing_and_a_dropped_copy_is_forgotten(
    tmp_path: Path, base: Path
) -> None:
    stage = _stage(tmp_path, base, 100 * MB)
    a = stage.place(DAY1, "000000-a.json", 10 * MB)
    assert a is not None
    Path(f"{a}.part").write_bytes(b"x")
    stage.drop(DAY1, a.name)  # it goes to disk instead
    assert stage.used == 0 and not Path(f"{a}.part").exists() and not stage.holds_copy(DAY1, a)
    b = stage.place(DAY1, "000001-b.json", 10 * MB)
    assert b is not None
    stage.full()
    assert stage.place(DAY1, "000002-c.json", 1) is None
    stage.release(DAY1)  # the room its copies took is the stage's again, and no more
    assert stage.place(DAY1, "000002-c.json", 11 * MB) is None
    assert stage.place(DAY1, "000002-c.json", 10 * MB) is not None


def test_no_stage_without_budget_or_room(tmp_path: Path, base: Path) -> None:
    assert MemoryStage.open(tmp_path / "cat", 0, base=base) is None
    assert MemoryStage.open(tmp_path / "cat", memstage.MIN_BUDGET - 1, base=base) is None
    assert MemoryStage.open(tmp_path / "cat", 100 * MB, base=tmp_path / "missing") is None
    # memory.staging_dir with a glob character: DuckDB would expand the copies' paths (the
    # conversion failed with 'unexpected ValueError'); the copies stay on disk
    globbed = tmp_path / "shm[1]"
    globbed.mkdir(mode=0o700)
    assert MemoryStage.open(tmp_path / "cat", 100 * MB, base=globbed) is None
    # never more than an eighth of the machine's RAM, nor half the file system's free room
    st = os.statvfs(base)
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    want = min(ram // 8, st.f_bavail * st.f_frsize // 2)
    big = MemoryStage.open(tmp_path / "cat", 1 << 60, base=base)
    assert big is not None and abs(big.budget - want) < 64 * MB


def test_copies_an_earlier_run_left_are_counted_and_stale_ones_go(
    tmp_path: Path, base: Path
) -> None:
    first = _stage(tmp_path, base, 1000 * MB)
    kept = first.place(DAY1, "000000-a.json", 3)
    old = first.place(DAY2, "000000-b.json", 2)
    assert kept is not None and old is not None
    kept.write_bytes(b"xxx")
    old.write_bytes(b"yy")
    Path(f"{kept}.part").write_bytes(b"partial")  # not counted: started over
    # the first run was killed: its copies stay for the next run to reuse
    day_ago = time.time() - memstage.STALE_SECONDS - 60
    os.utime(old, (day_ago, day_ago))
    os.utime(kept, (day_ago + 3600, day_ago + 3600))  # 23 hours old: kept
    second = _stage(tmp_path, base, 1000 * MB)
    assert kept.exists() and not old.exists() and not old.parent.exists()
    assert second.used == 3 and second.holds(DAY1)
    # placed again (reused by the download): counted once, and no longer about to go stale
    assert second.place(DAY1, "000000-a.json", 3) == kept and second.used == 3
    assert time.time() - kept.stat().st_mtime < 60


def test_what_any_catalog_left_long_ago_goes(tmp_path: Path, base: Path) -> None:
    """A deleted catalog's copies (or a failed day's nobody ran again) do not hold memory."""
    gone = memstage.stage_dir(tmp_path / "deleted-catalog", base)
    old_copy = gone / DAY1 / "000000-a.json"
    recent_copy = gone / DAY2 / "000000-b.json"
    empty_old = memstage.stage_dir(tmp_path / "empty-catalog", base) / DAY1
    for f in (old_copy, recent_copy):
        f.parent.mkdir(parents=True)
        f.write_text("{}")
    empty_old.mkdir(parents=True)
    long_ago = time.time() - memstage.STALE_SECONDS - 60
    os.utime(old_copy, (long_ago, long_ago))
    for d in [empty_old, *empty_old.parents[:5]]:  # the day's directory up to the catalog's
        os.utime(d, (long_ago, long_ago))
    stage = _stage(tmp_path, base, 100 * MB)
    assert not old_copy.exists() and recent_copy.exists()
    assert stage.used == 0  # another catalog's copies are not this one's
    assert not empty_old.parents[4].exists()  # the empty catalog's whole directory
    assert stage.root.is_dir()


def test_a_day_another_run_removes_while_this_one_counts_does_not_cost_the_stage(
    tmp_path: Path, base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs (two catalogs, or two test workers) share the user's directory: one commits
    a day (its copies go) while the other opens its stage and walks every catalog's copies.
    The walk raised FileNotFoundError and the run went on with no stage (CI, stop 28)."""
    other = memstage.stage_dir(tmp_path / "other", base)
    committing = other / DAY1
    committing.mkdir(parents=True)
    (committing / "000000-a.json").write_text("{}")
    mine = memstage.stage_dir(tmp_path / "cat", base) / DAY2 / "000000-b.json"
    mine.parent.mkdir(parents=True)
    mine.write_text("{}")
    real = os.scandir
    removed: list[str] = []

    def scandir(path: Any = ".") -> Any:
        if Path(path) == committing and committing.exists():  # listed, then committed
            removed.append(str(path))
            for f in committing.iterdir():
                f.unlink()
            committing.rmdir()
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    stage = MemoryStage.open(tmp_path / "cat", 100 * MB, base=base)
    assert removed, "the walk never reached the other run's day"
    assert stage is not None and stage.used == 2 and stage.holds(DAY2)


def test_a_run_without_a_stage_still_removes_a_committed_days_copies(
    tmp_path: Path, base: Path
) -> None:
    copy = memstage.stage_dir(tmp_path / "cat", base) / DAY1 / "000000-a.json"
    copy.parent.mkdir(parents=True)
    copy.write_text("{}")
    memstage.remove_day(tmp_path / "cat", DAY2, base)  # another day: nothing happens
    assert copy.exists()
    memstage.remove_day(tmp_path / "cat", DAY1, base)
    assert not copy.exists() and not copy.parent.exists()


def test_a_directory_others_can_write_is_not_used(tmp_path: Path, base: Path) -> None:
    """Another user may have made the name first (/dev/shm is shared): no stage then."""
    home = memstage.stage_dir(tmp_path / "cat", base).parent
    home.mkdir(mode=0o777)
    home.chmod(0o777)
    assert MemoryStage.open(tmp_path / "cat", 100 * MB, base=base) is None
    home.rmdir()
    home.symlink_to(tmp_path, target_is_directory=True)
    assert MemoryStage.open(tmp_path / "cat", 100 * MB, base=base) is None
    home.unlink()
    assert MemoryStage.open(tmp_path / "cat", 100 * MB, base=base) is not None


def test_budget_is_part_of_the_process_budget() -> None:
    gib = 1024**3
    # none at 1 GB: a 2 GB day needs its 0.65 GB for DuckDB
    assert MemoryConfig(max_usage_gb=1).staging_bytes == 0
    assert MemoryConfig(max_usage_gb=1).duckdb_memory_limit == "0.65GB"
    six = MemoryConfig(max_usage_gb=6)
    assert six.staging_bytes == gib
    # DuckDB's share less the budget the stage opened with (none open: the whole share)
    assert six.duckdb_memory_limit == "3.90GB"
    assert six.duckdb_memory_limit_beside(six.staging_bytes) == "2.90GB"
    assert MemoryConfig(max_usage_gb=24).staging_bytes == 2 * gib  # at most 2 GB
    assert MemoryConfig(max_usage_gb=24, staging_gb=0).staging_bytes == 0
    assert MemoryConfig(max_usage_gb=4, staging_gb=0.5).staging_bytes == gib // 2


def test_config_values_that_would_break_the_stage_are_refused_or_mean_the_default() -> None:
    with pytest.raises(ValidationError, match="finite"):
        MemoryConfig(staging_gb=float("inf"))  # was an OverflowError at ingest
    with pytest.raises(ValidationError, match="finite"):
        MemoryConfig(max_usage_gb=float("inf"))  # was a DuckDB parser error on every day
    assert MemoryConfig(staging_dir="").staging_dir is None  # not the current directory


def _left_copy(tmp_path: Path, base: Path, catalog: str, day: str = DAY1) -> Path:
    """A run of a catalog (made here) that wrote one copy and ended without committing it."""
    (tmp_path / catalog).mkdir(exist_ok=True)
    stage = _stage(tmp_path, base, 100 * MB, catalog)
    copy = stage.place(day, "000000-a.json", 2)
    assert copy is not None
    copy.write_text("{}")
    stage.close()
    return copy


def test_a_deleted_catalogs_copies_go_at_the_start_of_any_run(tmp_path: Path, base: Path) -> None:
    """A catalog deleted (after a failed or killed run) left its copies holding RAM until the
    24-hour sweep: now the next run of any catalog removes them, and a catalog still there
    keeps its copies for its re-run."""
    gone = _left_copy(tmp_path, base, "deleted")
    kept = _left_copy(tmp_path, base, "kept")
    assert (gone.parents[5] / memstage.OWNER_FILE).read_text() == str(tmp_path / "deleted")
    shutil.rmtree(tmp_path / "deleted")
    (tmp_path / "other").mkdir()
    stage = _stage(tmp_path, base, 100 * MB, "other")
    assert not gone.parents[5].exists() and kept.exists()
    assert stage.used == 0
    stage.close()
    # a run that opens no stage (no budget, a conversion pool) sweeps all the same
    again = _left_copy(tmp_path, base, "deleted")
    shutil.rmtree(tmp_path / "deleted")
    assert MemoryStage.open(tmp_path / "other", 0, base=base) is None
    memstage.sweep(base)
    assert not again.parents[5].exists() and kept.exists()
    # what is left of a catalog's directory once its copies went by age: nothing holds it
    os.utime(kept, (1.0, 1.0))
    memstage.sweep(base)
    assert not kept.parents[5].exists()


def test_a_stage_a_live_run_holds_is_never_swept(tmp_path: Path, base: Path) -> None:
    """Its catalog deleted under it (or not made yet), a live run's copies stay: each run holds
    a lock on its directory that a sweep needs free."""
    (tmp_path / "cat").mkdir()
    live = _stage(tmp_path, base, 100 * MB)
    copy = live.place(DAY1, "000000-a.json", 2)
    assert copy is not None
    copy.write_text("{}")
    shutil.rmtree(tmp_path / "cat")
    _stage(tmp_path, base, 100 * MB, "other").close()
    memstage.sweep(base)
    assert copy.exists() and live.used == 2
    live.close()  # the run ends: its copy stays for a re-run, but the catalog is gone
    memstage.sweep(base)
    assert not live.root.exists()


HOLDER = """
import sys
from pathlib import Path
from cvcatalog.io.memstage import MemoryStage
stage = MemoryStage.open(Path(sys.argv[1]), 100 << 20, base=Path(sys.argv[2]))
copy = stage.place("wydot/BSM/2021/04/01", "000000-a.json", 2)
copy.write_text("{}")
print("ready", flush=True)
sys.stdin.read()
"""


def test_a_killed_runs_stage_goes_once_its_catalog_is_gone(tmp_path: Path, base: Path) -> None:
    """The lock is the process's: held while it lives, released by its kill (no stale pid)."""
    (tmp_path / "cat").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "cat"), str(base)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        root = memstage.stage_dir(tmp_path / "cat", base)
        shutil.rmtree(tmp_path / "cat")
        memstage.sweep(base)
        assert (root / DAY1 / "000000-a.json").exists()  # the process lives: kept
    finally:
        proc.kill()
        proc.wait()
    memstage.sweep(base)
    assert not root.exists()


def test_a_lease_taken_on_a_directory_a_sweep_removed_is_taken_again(
    tmp_path: Path, base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep may remove the directory between a run's making it and its lock: the run then
    locks the one it makes again, not the removed one (whose copies nobody would protect)."""
    real = dirlock.fcntl.flock
    swept: list[int] = []

    def flock(fd: int, op: int) -> None:
        if op == dirlock.fcntl.LOCK_SH and not swept:
            swept.append(fd)
            shutil.rmtree(memstage.stage_dir(tmp_path / "cat", base))
        real(fd, op)

    monkeypatch.setattr(dirlock.fcntl, "flock", flock)
    (tmp_path / "cat").mkdir()
    stage = _stage(tmp_path, base, 100 * MB)
    monkeypatch.undo()
    assert swept and stage.root.is_dir() and (stage.root / memstage.OWNER_FILE).exists()
    shutil.rmtree(tmp_path / "cat")
    memstage.sweep(base)
    assert stage.root.is_dir()  # held
    stage.close()
    assert not stage.root.exists()  # nothing in it: it goes with the run
