"""Raw copies held in memory: a catalog's staging on a RAM-backed file system, within a budget.

A downloaded object is read once by DuckDB and deleted when its day is committed. Written to
the catalog's disk staging, it costs a page-cache write of every raw byte: measured on this
project's 2-core VM, writing 294 MB (one day) to ext4 cost 2-3 s of system CPU, the same bytes
on tmpfs 0.1 s, and DuckDB reads both at the same speed. So small objects go to a directory
under /dev/shm while the budget (memory.staging_gb, part of memory.max_usage_gb, and at most
an eighth of the machine's RAM) has room; the rest, and every object big enough to be resumed
by a later process (download.py's RESUME_MIN_BYTES), go to disk staging as before.

The copies behave as those on disk: plain files (the downloader, the normalizer and DuckDB read
them like any other), one directory a catalog, a day's copies removed with its commit, and kept
after a failure or a kill for the next run to reuse (the downloader checks them against the
listing). Unlike disk, memory is scarce: what is there counts against every run's budget, and
a day's copies a run finds older than STALE_SECONDS (a failed day nobody ran again) go.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import threading
import time
from pathlib import Path

from cvcatalog.io.download import S3Fetcher
from cvcatalog.io.layout import prune_empty_dirs, remove_tree

#: where RAM-backed directories live on Linux
SHM_ROOT = Path("/dev/shm")
#: a day's copies left this long (a failed day nobody ran again) are not kept for a re-run
STALE_SECONDS = 24 * 3600
#: a smaller budget is not worth a stage (a day's batch is 32 MB at least)
MIN_BUDGET = 64 * 1024 * 1024
#: an empty directory is removed only this long after its last change (another process may be
#: about to write into it)
EMPTY_SECONDS = 3600


def stage_dir(catalog: Path, base: Path = SHM_ROOT) -> Path:
    """The catalog's directory of raw copies in memory (one per user and catalog)."""
    digest = hashlib.sha1(str(catalog.resolve()).encode()).hexdigest()[:16]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return base / f"cvcatalog-{uid}" / digest


class MemoryStage:
    """Places a catalog's raw copies in memory while the budget has room."""

    def __init__(self, root: Path, budget: int) -> None:
        self.root = root
        self.budget = budget
        self.used = 0
        self.peak = 0
        self._sizes: dict[str, dict[str, int]] = {}  # group -> name -> bytes counted
        self._lock = threading.Lock()

    @classmethod
    def open(cls, catalog: Path, budget: int, base: Path = SHM_ROOT) -> MemoryStage | None:
        """The catalog's stage under base, its leftovers counted (and trimmed: tidy), with at
        most the budget, an eighth of the machine's RAM and half the free room there (others
        use /dev/shm too); None when that is under MIN_BUDGET, there is no such file system
        (or no statvfs: Windows), or the user's directory there is not private."""
        with contextlib.suppress(ValueError, OSError, AttributeError):
            budget = min(budget, os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 8)
        if budget < MIN_BUDGET or not hasattr(os, "statvfs"):
            return None
        root = stage_dir(catalog, base)
        try:
            st = os.statvfs(base)
            budget = min(budget, st.f_bavail * st.f_frsize // 2)
            if budget < MIN_BUDGET:
                return None
            root.parent.mkdir(mode=0o700, exist_ok=True)
            if not _private(root.parent):
                return None
            root.mkdir(exist_ok=True)
            stage = cls(root, budget)
            stage.tidy()
        except OSError:
            return None
        return stage

    def tidy(self, now: float | None = None) -> None:
        """Drop what every catalog's runs left longer than STALE_SECONDS ago (a failed day
        nobody ran again, a deleted catalog's) and count what is left of this catalog's (an
        earlier run's copies, or those another process ingesting into it is making: they
        count against this budget too, and are never removed here)."""
        now = time.time() if now is None else now
        sizes: dict[str, dict[str, int]] = {}
        for root in [d for d in self.root.parent.iterdir() if d.is_dir()]:
            found = _day_files(root)
            for group, (newest, files) in found.items():
                if now - newest > STALE_SECONDS:
                    _remove_day(root, group)
                elif root == self.root:
                    sizes[group] = files
            _prune_empty(root, now, keep=root == self.root)
        total = sum(sum(s.values()) for s in sizes.values())
        with self._lock:
            self._sizes = sizes
            self.used = total
            self.peak = max(self.peak, total)

    def place(self, group: str, name: str, size: int) -> Path | None:
        """A path for a copy of size bytes (counted until released; a copy an earlier run left
        there is the downloader's to check and reuse), or None when the budget has no room."""
        with self._lock:
            sizes = self._sizes.setdefault(group, {})
            grow = size - sizes.get(name, 0)
            if self.used + grow > self.budget:
                if not sizes:
                    del self._sizes[group]
                return None
            self.used += grow
            sizes[name] = size
            self.peak = max(self.peak, self.used)
        path = self.root / group / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # a copy an earlier run left: in use again, not stale
            os.utime(path)
        return path

    def full(self) -> None:
        """Its file system had no room for a copy (filled by others): place nothing more."""
        with self._lock:
            self.budget = self.used

    def close(self) -> None:
        """The run is over: the catalog's directory goes if nothing is left in it (copies of
        days not committed stay for the next run)."""
        with contextlib.suppress(OSError):
            self.root.rmdir()

    def holds_copy(self, group: str, path: Path) -> bool:
        """Whether path is a copy this stage placed."""
        with self._lock:
            return path.parent == self.root / group and path.name in self._sizes.get(group, {})

    def drop(self, group: str, name: str) -> None:
        """Forget one copy (it goes to disk instead) and delete what was written of it."""
        with self._lock:
            self.used -= self._sizes.get(group, {}).pop(name, 0)
        copy = self.root / group / name
        for p in (copy, *S3Fetcher.part_paths(copy)):
            p.unlink(missing_ok=True)

    def holds(self, group: str) -> bool:
        """Whether the stage counts copies of that day (placed, or left by an earlier run)."""
        with self._lock:
            return group in self._sizes

    def release(self, group: str) -> None:
        """Delete a day's copies and return their bytes to the budget."""
        with self._lock:
            sizes = self._sizes.pop(group, {})
            self.used -= sum(sizes.values())
        _remove_day(self.root, group)


def _private(home: Path) -> bool:
    """The user's directory is a real directory of theirs that nobody else can write into:
    /dev/shm is shared by every user, and another could have made the name first to swap a
    copy between its download (checked) and its conversion."""
    st = os.lstat(home)
    mine = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    return stat.S_ISDIR(st.st_mode) and mine and not st.st_mode & 0o022


def has_day(catalog: Path, group: str, base: Path = SHM_ROOT) -> bool:
    """Whether a day has copies in memory, seen without a stage (remove_day's runs)."""
    return (stage_dir(catalog, base) / group).exists()


def remove_day(catalog: Path, group: str, base: Path = SHM_ROOT) -> None:
    """Delete a day's copies in memory without a stage (a run that opened none: a conversion
    pool, staging_gb 0, no room): its commit must not leave them holding RAM."""
    _remove_day(stage_dir(catalog, base), group)


def _day_files(root: Path) -> dict[str, tuple[float, dict[str, int]]]:
    """A catalog's copies by day: the newest change and each file's size. Walked with os.walk,
    which passes over a directory removed meanwhile (another run committing its day): a
    pathlib glob raised FileNotFoundError then, and the stage did not open."""
    out: dict[str, tuple[float, dict[str, int]]] = {}
    for here, _, names in os.walk(root):
        group = Path(here).relative_to(root).as_posix()
        for name in names:
            # a partial (S3Fetcher.part_paths) is started over or renamed to its copy
            if name.endswith((".part", ".part.json")):
                continue
            with contextlib.suppress(OSError):  # removed meanwhile by its own run
                st = os.stat(os.path.join(here, name), follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode):
                    continue
                newest, files = out.get(group, (0.0, {}))
                files[name] = st.st_size
                out[group] = (max(newest, st.st_mtime), files)
    return out


def _remove_day(root: Path, group: str) -> None:
    d = root / group
    if d.exists():
        remove_tree(d)
        prune_empty_dirs(d.parent, root)


def _prune_empty(root: Path, now: float, *, keep: bool) -> None:
    """Remove root's empty directories unchanged for EMPTY_SECONDS (root itself too unless
    keep), deepest first."""
    dirs = [Path(here) for here, _, _ in os.walk(root, topdown=False)]  # deepest first
    if keep and dirs and dirs[-1] == root:
        dirs.pop()
    old = []
    for d in dirs:  # their times before a removal changes them
        with contextlib.suppress(OSError):
            if now - d.stat().st_mtime > EMPTY_SECONDS:
                old.append(d)
    for d in old:
        with contextlib.suppress(OSError):  # not empty, or gone
            d.rmdir()
