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

A deleted catalog's copies must not wait that long: a catalog's directory records the catalog
it stages for (OWNER_FILE), and each run holds a shared lock on the directory (flock, released
by the kernel when the process ends, even killed). The start of any run (sweep) removes, under
an exclusive lock it can only get when no run holds the directory, every directory whose
catalog no longer exists, or that holds no copies. A killed run's copies of a catalog still
there are kept: the re-run reuses them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import threading
import time
from pathlib import Path

from cvcatalog.io import dirlock
from cvcatalog.io.download import S3Fetcher
from cvcatalog.io.layout import GLOB_CHARS, prune_empty_dirs, remove_tree

#: where RAM-backed directories live on Linux
SHM_ROOT = Path("/dev/shm")
#: a day's copies left this long (a failed day nobody ran again) are not kept for a re-run
STALE_SECONDS = 24 * 3600
#: a smaller budget is not worth a stage (a day's batch is 32 MB at least)
MIN_BUDGET = 64 * 1024 * 1024
#: an empty directory is removed only this long after its last change (another process may be
#: about to write into it)
EMPTY_SECONDS = 3600
#: in a catalog's directory: the catalog's path (its stage goes once the catalog is gone)
OWNER_FILE = ".catalog"


def stage_dir(catalog: Path, base: Path = SHM_ROOT) -> Path:
    """The catalog's directory of raw copies in memory (one per user and catalog)."""
    digest = hashlib.sha1(str(catalog.resolve()).encode()).hexdigest()[:16]
    return _home(base) / digest


def _home(base: Path) -> Path:
    """The user's directory of every catalog's stage."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return base / f"cvcatalog-{uid}"


class MemoryStage:
    """Places a catalog's raw copies in memory while the budget has room."""

    def __init__(self, root: Path, budget: int) -> None:
        self.root = root
        self.budget = budget
        self.used = 0
        self.peak = 0
        self._sizes: dict[str, dict[str, int]] = {}  # group -> name -> bytes counted
        self._lock = threading.Lock()
        #: the directory's descriptor, its shared lock held until close (None: not leased)
        self._lease: int | None = None

    @classmethod
    def open(cls, catalog: Path, budget: int, base: Path = SHM_ROOT) -> MemoryStage | None:
        """The catalog's stage under base, its leftovers counted (and trimmed: tidy), with at
        most the budget, an eighth of the machine's RAM and half the free room there (others
        use /dev/shm too); None when that is under MIN_BUDGET, there is no such file system
        (or no statvfs: Windows), the user's directory there is not private, or base has a
        glob character in its path (layout.GLOB_CHARS)."""
        with contextlib.suppress(ValueError, OSError, AttributeError):
            budget = min(budget, os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 8)
        if budget < MIN_BUDGET or not hasattr(os, "statvfs"):
            return None
        root = stage_dir(catalog, base)
        if GLOB_CHARS & set(str(root)):  # DuckDB would expand the copies' paths: disk staging
            return None
        try:
            st = os.statvfs(base)
            budget = min(budget, st.f_bavail * st.f_frsize // 2)
            if budget < MIN_BUDGET:
                return None
            root.parent.mkdir(mode=0o700, exist_ok=True)
            if not _private(root.parent):
                return None
            stage = cls(root, budget)
            stage._lease = _lease(root, catalog)
            try:
                stage.tidy()
            except OSError:
                stage.close()  # its lease too: a directory held by nobody is not kept
                raise
        except OSError:
            return None
        return stage

    def tidy(self, now: float | None = None) -> None:
        """Sweep what every catalog's runs left (_tidy_home) and count what is left of this
        catalog's (an earlier run's copies, or those another process ingesting into it is
        making: they count against this budget too, and are never removed here)."""
        sizes = _tidy_home(self.root.parent, self.root, now)
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
        """The run is over: the catalog's directory goes if nothing is left in it and no other
        run holds it (copies of days not committed stay for the next run), and its lease ends."""
        fd, self._lease = self._lease, None
        if fd is None:  # not leased (or closed before): no lock of its own to upgrade
            try:
                fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                return
        try:
            if not dirlock.remove_unheld(self.root, fd, lambda: _only_owner(self.root)):
                with contextlib.suppress(OSError):  # not leased, and empty
                    self.root.rmdir()
        finally:
            os.close(fd)

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


def sweep(base: Path = SHM_ROOT, now: float | None = None) -> None:
    """Sweep what runs of every catalog left (_tidy_home), for a run that opens no stage of
    its own (a conversion pool, staging_gb 0, no room): a deleted catalog's copies go at the
    start of any run."""
    home = _home(base)
    with contextlib.suppress(OSError):
        if home.is_dir() and _private(home):
            _tidy_home(home, None, now)


def has_day(catalog: Path, group: str, base: Path = SHM_ROOT) -> bool:
    """Whether a day has copies in memory, seen without a stage (remove_day's runs)."""
    return (stage_dir(catalog, base) / group).exists()


def remove_day(catalog: Path, group: str, base: Path = SHM_ROOT) -> None:
    """Delete a day's copies in memory without a stage (a run that opened none: a conversion
    pool, staging_gb 0, no room): its commit must not leave them holding RAM."""
    _remove_day(stage_dir(catalog, base), group)


def _tidy_home(
    home: Path, keep: Path | None, now: float | None
) -> dict[str, dict[str, int]]:
    """Remove the catalogs' directories no run holds whose catalog is gone or that hold no
    copies (_sweepable), the copies any run left longer than STALE_SECONDS ago (a failed day
    nobody ran again) and old empty directories; keep's copies by day and size (keep, the
    caller's own directory, is never removed)."""
    now = time.time() if now is None else now
    sizes: dict[str, dict[str, int]] = {}
    for root in [d for d in home.iterdir() if d.is_dir()]:
        for group, (newest, files) in _day_files(root).items():
            if now - newest > STALE_SECONDS:
                _remove_day(root, group)
            elif root == keep:
                sizes[group] = files
        if root == keep or not _sweep_unheld(root):
            _prune_empty(root, now, keep=root == keep)
    return sizes


def _lease(root: Path, catalog: Path) -> int | None:
    """Make root, hold a shared lock on it for the run (io.dirlock) and record its catalog
    (OWNER_FILE): the directory's descriptor, or None where the file system has no such locks
    (root is then only made, and swept as before: by age)."""
    fd = dirlock.hold(root, shared=True)
    if fd is not None:
        _record_owner(root, catalog)
    return fd


def _record_owner(root: Path, catalog: Path) -> None:
    """Write the catalog's path into its directory, whole (renamed into place); where that
    fails (no room), the directory is swept by age only, as one without a record."""
    path = root / OWNER_FILE
    text = str(catalog.resolve())
    with contextlib.suppress(OSError):
        if path.read_text(encoding="utf-8") == text:
            return
    tmp = root / f"{OWNER_FILE}.{os.getpid()}.{threading.get_ident()}"
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _only_owner(root: Path) -> bool:
    """Whether root holds nothing but its OWNER_FILE."""
    try:
        return all(p.name == OWNER_FILE for p in root.iterdir())
    except OSError:  # gone meanwhile
        return False


def _sweepable(root: Path) -> bool:
    """A directory whose recorded catalog no longer exists (deleted), or that holds no copies;
    one without a record (made where locks fail, or by an older version) is swept by age."""
    try:
        owner = (root / OWNER_FILE).read_text(encoding="utf-8")
    except OSError:
        return False
    gone = os.path.isabs(owner) and not os.path.exists(owner)
    return gone or not _day_files(root)


def _sweep_unheld(root: Path) -> bool:
    """Remove root if it is sweepable and no run holds it; whether it was removed."""
    return _sweepable(root) and dirlock.remove_if_unheld(root, lambda: _sweepable(root))


def _day_files(root: Path) -> dict[str, tuple[float, dict[str, int]]]:
    """A catalog's copies by day: the newest change and each file's size (not root's own
    files: its OWNER_FILE). Walked with os.walk, which passes over a directory removed
    meanwhile (another run committing its day): a pathlib glob raised FileNotFoundError then,
    and the stage did not open."""
    out: dict[str, tuple[float, dict[str, int]]] = {}
    for here, _, names in os.walk(root):
        group = Path(here).relative_to(root).as_posix()
        if group == ".":
            continue
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
