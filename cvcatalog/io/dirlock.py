"""Directories a process holds while it works in them: an flock on the directory itself,
released by the kernel when the process ends (even killed), so another process can tell a
live run's directory from one a killed run left, and remove only the latter.

A run holds its directory (hold) from before anything is written into it until it is done; a
sweep removes a directory only under the exclusive lock it gets when nobody holds it
(remove_unheld). Used by the raw copies in memory (io.memstage) and by a run's grouped
conversions in staging (sources.cvpilot).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

from cvcatalog.io.layout import remove_tree

if sys.platform != "win32":  # no flock on Windows: nothing is held, sweeps go by age only
    import fcntl

#: attempts at holding a directory a sweep keeps removing under us
_HOLD_ATTEMPTS = 8


def hold(root: Path, *, shared: bool) -> int | None:
    """Make root (its parent must exist) and hold it: its descriptor, locked until closed
    (shared: other runs may hold it too), or None where the file system has no such locks
    (root is then only made). A sweep may remove root between its making and the lock: the
    lock is then on a removed directory, and taken again on a new one."""
    if sys.platform == "win32":
        root.mkdir(exist_ok=True)
        return None
    for _ in range(_HOLD_ATTEMPTS):
        root.mkdir(exist_ok=True)
        try:
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        except OSError:
            os.close(fd)
            return None
        if same_dir(root, fd):
            return fd
        os.close(fd)
    return None


def same_dir(root: Path, fd: int) -> bool:
    """Whether fd is still the directory at root (not one a sweep removed)."""
    try:
        here, held = os.stat(root), os.fstat(fd)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)


def remove_unheld(root: Path, fd: int, removable: Callable[[], bool] = lambda: True) -> bool:
    """Remove root (fd, its descriptor) if no run holds it and, under the exclusive lock that
    tells so, it is still removable; whether it was removed. A run taking its hold meanwhile
    waits, then finds the directory gone and makes a new one (hold)."""
    if sys.platform == "win32":
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by a run: fails at once
    except OSError:
        return False
    if not same_dir(root, fd) or not removable():
        return False
    remove_tree(root)
    return not root.exists()


def remove_if_unheld(root: Path, removable: Callable[[], bool] = lambda: True) -> bool:
    """remove_unheld for a directory the caller has not opened; whether it was removed."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # gone meanwhile
        return False
    try:
        return remove_unheld(root, fd, removable)
    finally:
        os.close(fd)


def sweep_unheld(parent: Path) -> list[Path]:
    """Remove every directory under parent that no run holds; those removed."""
    try:
        dirs = [d for d in parent.iterdir() if d.is_dir()]
    except OSError:  # no such directory: nothing left by anyone
        return []
    return [d for d in dirs if remove_if_unheld(d)]


def release(fd: int | None) -> None:
    """End a hold (its lock goes with the descriptor)."""
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
