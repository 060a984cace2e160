"""Raw copies in memory (io.memstage): the budget, release, and what earlier runs left."""

from __future__ import annotations

import os
import time
from pathlib import Path

from cvcatalog.config import MemoryConfig
from cvcatalog.io import memstage
from cvcatalog.io.memstage import MemoryStage

DAY1, DAY2 = "wydot/BSM/2021/04/01", "wydot/BSM/2021/04/02"


def _stage(tmp_path: Path, budget: int, catalog: str = "cat") -> MemoryStage:
    stage = MemoryStage.open(tmp_path / catalog, budget, base=tmp_path / "shm")
    assert stage is not None
    return stage


def test_places_within_the_budget_and_release_returns_room(tmp_path: Path) -> None:
    (tmp_path / "shm").mkdir()
    stage = _stage(tmp_path, 100)
    a = stage.place(DAY1, "000000-a.json", 60)
    assert a is not None and a.parent.is_dir() and a.is_relative_to(stage.root)
    assert stage.place(DAY1, "000001-b.json", 50) is None  # 110 > 100
    assert stage.place(DAY1, "000000-a.json", 60) == a  # placed again: counted once
    b = stage.place(DAY2, "000000-c.json", 40)
    assert b is not None and stage.used == 100 and stage.holds(DAY2)
    a.write_bytes(b"x" * 60)
    stage.release(DAY1)
    assert not a.exists() and not a.parent.exists() and stage.used == 40
    assert stage.peak == 100 and not stage.holds(DAY1)
    assert stage.place(DAY1, "000001-b.json", 50) is not None
    stage.release(DAY2)
    stage.release(DAY2)  # twice: nothing more
    assert stage.used == 50
    # another catalog has a directory of its own
    other = _stage(tmp_path, 100, "other")
    assert other.root != stage.root and other.used == 0
    stage.close()  # a copy is left (not committed): kept for the next run
    assert (stage.root / DAY1).is_dir()
    stage.release(DAY1)
    stage.close()  # nothing left: the catalog's directory goes
    assert not stage.root.exists()


def test_no_stage_without_budget_or_room(tmp_path: Path) -> None:
    (tmp_path / "shm").mkdir()
    assert MemoryStage.open(tmp_path / "cat", 0, base=tmp_path / "shm") is None
    assert MemoryStage.open(tmp_path / "cat", 1 << 20, base=tmp_path / "missing") is None
    st = os.statvfs(tmp_path)
    # never more than an eighth of the machine's RAM, nor more than the file system's room
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    big = MemoryStage.open(tmp_path / "cat", 1 << 60, base=tmp_path / "shm")
    if ram // 8 > st.f_bavail * st.f_frsize:
        assert big is None
    else:
        assert big is not None and big.budget == ram // 8


def test_copies_an_earlier_run_left_are_counted_and_stale_ones_go(tmp_path: Path) -> None:
    (tmp_path / "shm").mkdir()
    first = _stage(tmp_path, 1000)
    kept = first.place(DAY1, "000000-a.json", 300)
    old = first.place(DAY2, "000000-b.json", 200)
    assert kept is not None and old is not None
    kept.write_bytes(b"x" * 300)
    old.write_bytes(b"y" * 200)
    # the first run was killed: its copies stay for the next run to reuse
    day_ago = time.time() - memstage.STALE_SECONDS - 60
    os.utime(old, (day_ago, day_ago))
    second = _stage(tmp_path, 1000)
    assert kept.exists() and not old.exists() and not old.parent.exists()
    assert second.used == 300 and second.holds(DAY1)
    assert second.place(DAY1, "000000-a.json", 300) == kept and second.used == 300
    assert second.place(DAY2, "000000-c.json", 800) is None  # 300 + 800 > 1000


def test_budget_is_part_of_the_process_budget() -> None:
    gib = 1024**3
    # none at 1 GB: a 2 GB day needs its 0.65 GB for DuckDB
    assert MemoryConfig(max_usage_gb=1).staging_bytes == 0
    assert MemoryConfig(max_usage_gb=1).duckdb_memory_limit == "0.65GB"
    assert MemoryConfig(max_usage_gb=6).staging_bytes == gib
    assert MemoryConfig(max_usage_gb=6).duckdb_memory_limit == "2.90GB"  # 3.90 - 1
    assert MemoryConfig(max_usage_gb=24).staging_bytes == 2 * gib  # at most 2 GB
    assert MemoryConfig(max_usage_gb=24, staging_gb=0).staging_bytes == 0
    assert MemoryConfig(max_usage_gb=4, staging_gb=0.5).staging_bytes == gib // 2


def test_what_any_catalog_left_long_ago_goes(tmp_path: Path) -> None:
    """A deleted catalog's copies (or a failed day's nobody ran again) do not hold memory."""
    base = tmp_path / "shm"
    base.mkdir()
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
    stage = _stage(tmp_path, 100)
    assert not old_copy.exists() and recent_copy.exists()
    assert stage.used == 0  # another catalog's copies are not this one's
    assert not empty_old.parents[4].exists()  # the empty catalog's whole directory
    assert stage.root.is_dir()


def test_a_directory_others_can_write_is_not_used(tmp_path: Path) -> None:
    """Another user may have made the name first (/dev/shm is shared): no stage then."""
    base = tmp_path / "shm"
    base.mkdir()
    home = memstage.stage_dir(tmp_path / "cat", base).parent
    home.mkdir(mode=0o777)
    home.chmod(0o777)
    assert MemoryStage.open(tmp_path / "cat", 100, base=base) is None
    home.rmdir()
    home.symlink_to(tmp_path, target_is_directory=True)
    assert MemoryStage.open(tmp_path / "cat", 100, base=base) is None
    home.unlink()
    assert MemoryStage.open(tmp_path / "cat", 100, base=base) is not None
