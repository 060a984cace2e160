"""Commit: finished units into the catalog through CatalogDB.write, the one write path.

Units that finish together are committed together (the runner gathers the units converted within
COMMIT_INTERVAL of each other): their files are placed, then ONE
copy-on-write transaction records all of them (each commit copies, syncs, fsyncs and renames
the catalog file, a fixed cost per commit whatever its size), then the files they replaced are
deleted. A batch is all or nothing: a kill before the rename leaves none of its units
committed, and their placed files are orphans the next run of those units removes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cvcatalog.exceptions import CatalogError, CvCatalogError
from cvcatalog.pipeline.contract import RunContext, Source, Staged
from cvcatalog.pipeline.stage import place

#: units one commit records at most (bounds the transaction and what a failed commit takes
#: down with it)
MAX_BATCH = 256
#: seconds a converted unit waits at most for others to share its commit while other units are
#: still on their way (at least COMMIT_PACE times the last commit's duration, so committing
#: stays a small part of the run however fast units finish); a unit finishing when nothing else
#: is in flight, or when the run stops, is committed at once
COMMIT_INTERVAL = 1.0
COMMIT_PACE = 3.0


def commit_batch(
    source: Source[Any, Any], batch: Sequence[Staged[Any]], run: RunContext
) -> dict[int, CvCatalogError]:
    """Place the batch's files and record the batch in one catalog transaction. A unit whose
    staged files are gone (staging removed under the run) cannot be placed: it is left out,
    and returned by its index with the reason, so it fails alone (it failed the whole batch
    with FileNotFoundError).

    Raises what the commit raised; the batch's placed files are removed again then."""
    db = run.db
    gone = {i: why for i, s in enumerate(batch) if (why := _unplaceable(s)) is not None}
    batch = [s for i, s in enumerate(batch) if i not in gone]
    if not batch:
        return gone
    placed = place(db.store, batch)
    try:
        with db.write(run_id=run.run_id, message=source.commit_message(list(batch))) as con:
            obsolete = source.record(con, list(batch), run)
    except BaseException:
        db.store.discard(placed)  # never named by a committed row
        raise
    db.retire(obsolete)
    return gone


def _unplaceable(staged: Staged[Any]) -> CvCatalogError | None:
    """Why the unit's converted files cannot be placed: one of them is no longer there."""
    for f in staged.files:
        if not f.path.exists():
            return CatalogError(
                f"its converted file {f.path} was removed before the commit (staging deleted "
                "while the run used it); the next run converts it again"
            )
    return None
