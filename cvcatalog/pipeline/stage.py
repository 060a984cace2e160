"""Staging: scratch directories of a run's units, staged files, and placing them in the lake
under fresh names (invisible until a commit lists them)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cvcatalog.io.layout import prune_empty_dirs, remove_tree, sha256_file
from cvcatalog.io.storage import LakeStore
from cvcatalog.pipeline.contract import Staged, StagedFile

#: staged files placed at once (pipeline.commit): placing waits on fsyncs or the network
PLACE_WORKERS = 8


def fresh_dir(path: Path) -> Path:
    """An empty directory at path (whatever an interrupted run left there is removed)."""
    remove_tree(path)
    path.mkdir(parents=True)
    return path


def drop_dir(path: Path | None, top: Path | None = None) -> None:
    """Remove a staging directory, and its parents up to top once they are empty."""
    if path is None:
        return
    remove_tree(path)
    if top is not None:
        prune_empty_dirs(path.parent, top)


def short_hash(*parts: str, n: int = 12) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:n]


def fresh_name(directory: str, stem: str, run_id: str, *tags: str, suffix: str) -> str:
    """A catalog-relative file name no earlier run used: it names the run (a file of an older
    snapshot may still be kept, and later deleted, under its own name)."""
    return f"{directory}/{stem}-{short_hash(run_id, *tags)}.{suffix}"


def staged_file(
    path: Path, dest: str, kind: str, rows: int, partition: str, sha256: str | None = None
) -> StagedFile:
    """Describe a file in staging (hashed here, in the worker, while it is in the page cache)."""
    return StagedFile(
        path, dest, kind, rows, partition, path.stat().st_size, sha256 or sha256_file(path)
    )


def place(store: LakeStore, batch: Iterable[Staged[Any]]) -> list[str]:
    """Put every staged file of the batch at its destination (local move or verified S3 PUT),
    up to PLACE_WORKERS at once: each local move waits on two fsyncs (the file, its folder)
    and each S3 PUT on the network, so a batch of a thousand tiny days' files placed one at a
    time spends seconds waiting (5 ms a file here, 0.5 ms eight at once).

    Returns the placed destinations; on any error the ones placed so far are removed again
    (nothing half-placed stays in the lake) and the first error propagates."""
    files = [f for staged in batch for f in staged.files]
    placed: list[str] = []
    lock = threading.Lock()

    def put(f: StagedFile) -> None:
        store.put(f.path, f.dest, f.size, f.sha256)
        with lock:
            placed.append(f.dest)

    try:
        if len(files) <= 1:
            for f in files:
                put(f)
            return placed
        with ThreadPoolExecutor(min(PLACE_WORKERS, len(files)), "place") as pool:
            futures = [pool.submit(put, f) for f in files]
            errors = [e for e in (fut.exception() for fut in futures) if e is not None]
        if errors:
            raise errors[0]
    except BaseException:
        store.discard(placed)
        raise
    return placed
