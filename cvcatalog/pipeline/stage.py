"""Staging: scratch directories of a run's units, staged files, and placing them in the lake
under fresh names (invisible until a commit lists them)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cvcatalog.io.layout import prune_empty_dirs, remove_tree, sha256_file
from cvcatalog.io.storage import LakeStore, Placement
from cvcatalog.pipeline.contract import Staged, StagedFile


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
    """Put every staged file of the batch at its destination (LakeStore.put_all: local moves
    made durable, or verified S3 PUTs).

    Returns the placed destinations; on any error the ones placed so far are removed again
    (nothing half-placed stays in the lake) and the first error propagates."""
    files = [
        Placement(f.path, f.dest, f.size, f.sha256) for staged in batch for f in staged.files
    ]
    placed: list[str] = []
    try:
        store.put_all(files, placed)
    except BaseException:
        store.discard(placed)
        raise
    return placed
