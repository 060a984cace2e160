"""LRU eviction: every byte the catalog keeps counted (CV days, dataset inputs, files only old
snapshots show), least recently used data dropped until it fits; the ingest makes room with it
(Room) before writing a day."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from cvcatalog.datasets import DATASETS
from cvcatalog.state import manifest, pins
from cvcatalog.state.access import folded_access_log, record_access
from cvcatalog.state.datasets import (
    EvictableInput,
    evictable_inputs,
    forget_input,
    unloadable_inputs,
)
from cvcatalog.state.db import CatalogDB, now_utc

GB = 1024**3


def cache_bytes(db: CatalogDB) -> int:
    """Every byte the catalog keeps: CV Pilot and dataset (NGSIM) files, and the files only
    older snapshots still show."""
    with db.read_state() as con:
        return _total_bytes(db, con)


def _total_bytes(db: CatalogDB, con: Any) -> int:
    row = con.execute(
        "SELECT (SELECT coalesce(sum(bytes), 0) FROM partition_files) "
        "+ (SELECT coalesce(sum(bytes), 0) FROM dataset_files)"
    ).fetchone()
    return (int(row[0]) if row else 0) + db.held_bytes(con)


def evict_to_size(db: CatalogDB, max_size_gb: float, protect: set[str] | None = None) -> list[str]:
    """Drop least-recently-used data until the cache fits in max_size_gb: complete CV Pilot
    partitions and loaded dataset inputs (NGSIM), in one LRU order, each counted for the bytes
    dropping it frees (not its files a pinned snapshot shows: they stay, and data a pin holds
    whole is not dropped). Returns what went: CV partition keys, and `<dataset>:<uri>` for
    dataset inputs (load them again with `ingest --source <dataset> --path <uri>`).

    A dataset input goes whole (every unit and file of it, its checkpoints included, so the
    next load fetches it again: its units span partitions), only if the catalog can load it
    again (a local file still unchanged on disk, or an s3:// / https:// object) and no load of
    that dataset is running."""
    limit = int(max_size_gb * GB)
    if cache_bytes(db) <= limit:
        return []
    protect = protect or set()
    # replaced data kept for time travel goes first
    db.expire_snapshots(now_utc())
    if cache_bytes(db) <= limit:
        return []
    victims: list[str] = []
    files: list[manifest.FileRecord] = []
    doomed: list[str] = []
    with contextlib.ExitStack() as held:
        loadable = _idle_datasets(db, held)
        with folded_access_log(db.paths) as accessed, db.write(message="cache evict") as con:
            manifest.touch(con, accessed)
            # what dropping each candidate frees: not the files a pinned snapshot shows (no
            # expiry deletes them), or eviction would stop with the cache still over the limit
            kept = sorted(db.lake_relative(loc) for loc in pins.pinned_files(con))
            rows = con.execute(
                "SELECT p.partition_key, coalesce(max(p.last_accessed), max(p.created_at)), "
                "coalesce(sum(f.bytes) FILTER (NOT list_contains(?, f.path)), 0) "
                "FROM partitions p LEFT JOIN partition_files f USING (partition_key) "
                "WHERE p.status = 'complete' GROUP BY ALL",
                [kept],
            ).fetchall()
            candidates: list[tuple[Any, str, int, EvictableInput | None]] = [
                (when, key, int(size), None) for key, when, size in rows
            ]
            candidates += [
                (item.last_used, item.label, item.bytes, item)
                for item in evictable_inputs(con, loadable, accessed, kept)
            ]
            candidates.sort(key=lambda c: (c[0], c[1]))
            total = _total_bytes(db, con)
            cv_victims: list[str] = []
            for _when, key, size, item in candidates:
                if total <= limit:
                    break
                if key in protect or not size:  # no size: its files are a pin's, kept
                    continue
                victims.append(key)
                total -= size
                if item is None:
                    cv_victims.append(key)
                else:
                    doomed += forget_input(con, item)
            files = manifest.delete_partitions(con, cv_victims)
            left = {
                f"{d}/{p}"
                for d, p in con.execute(
                    "SELECT DISTINCT dataset, partition FROM dataset_files"
                ).fetchall()
            }
        # the catalog keeps no LRU column for dataset partitions: their access times stay in
        # the log (one line per partition), for the next eviction
        _keep_access(db, {k: t for k, t in accessed.items() if k in left})
    db.retire([f.path for f in files] + doomed)
    if victims:
        db.expire_snapshots(now_utc())
    return victims


def never_evicted(db: CatalogDB) -> list[tuple[str, int]]:
    """What evict_to_size passes over besides pinned data (whose bytes `Catalog.pinned`
    gives): the loaded dataset inputs the catalog could not load again, as `cache evict`
    names them, with the bytes dropping them would free."""
    with db.read() as con:
        kept = sorted(db.lake_relative(loc) for loc in pins.pinned_files(con))
        return unloadable_inputs(con, sorted(DATASETS), kept)


def _idle_datasets(db: CatalogDB, held: contextlib.ExitStack) -> list[str]:
    """Datasets no load is running for, their load locks held until `held` closes (a load
    places files before it records them: its inputs are not evicted meanwhile)."""
    import filelock

    names = []
    for name in sorted(DATASETS):
        path = db.paths.dataset_lock(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(path))
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            continue
        held.callback(lock.release)
        names.append(name)
    return names


def _keep_access(db: CatalogDB, accessed: dict[str, Any]) -> None:
    for key, when in accessed.items():
        record_access([key], db.paths, when)


#: Parquet bytes per source byte assumed before a catalog has any partition to learn from.
DEFAULT_PARQUET_RATIO = 0.5


def _parquet_ratio(con: Any, source: str, message_type: str) -> float:
    """Parquet + quarantine bytes per source byte observed on the complete partitions of the
    same (source, type) (or of any)."""
    rows = con.execute(
        "SELECT p.source = ? AND p.message_type = ? AS same, sum(f.bytes), "
        "sum(p.source_bytes) FROM partitions p JOIN (SELECT partition_key, sum(bytes) AS "
        "bytes FROM partition_files GROUP BY 1) f USING (partition_key) "
        "WHERE p.status = 'complete' AND p.source_bytes > 0 GROUP BY 1",
        [source, message_type],
    ).fetchall()
    by_same = {bool(same): (int(out or 0), int(src or 0)) for same, out, src in rows}
    out, src = by_same.get(True) or by_same.get(False) or (0, 0)
    return out / src if src else DEFAULT_PARQUET_RATIO


class Room:
    """Room made before each partition a run writes: least-recently-used partitions (never
    `protect`) evicted until the cache plus the partition's expected size fit in max_size_gb.

    The cache is measured (every byte, and the Parquet/source ratio: one read) at the first
    partition and whenever the running estimate (the last measurement plus the expected size
    of every partition since) says the next one might not fit; far below the limit, a
    partition costs no catalog read. Bytes other processes add meanwhile are counted at the
    next measurement, and by the eviction after the run (evict_to_size)."""

    def __init__(self, db: CatalogDB, max_size_gb: float, protect: set[str] | None = None):
        self.db = db
        self.limit = int(max_size_gb * GB)
        self.protect = protect if protect is not None else set()
        #: bytes the cache holds by the last measurement, plus the partitions admitted since
        self._estimate: int | None = None
        self._ratio = DEFAULT_PARQUET_RATIO
        #: catalog reads made (measurements)
        self.measured = 0
        self._lock = threading.Lock()  # conversion slots make room in turn

    def make(self, source: str, message_type: str, source_bytes: int) -> list[str]:
        """Before writing a partition of source_bytes raw bytes; returns what was evicted."""
        with self._lock:
            return self._make(source, message_type, source_bytes)

    def _make(self, source: str, message_type: str, source_bytes: int) -> list[str]:
        if self._estimate is not None:
            incoming = int(source_bytes * self._ratio)
            if self._estimate + incoming <= self.limit:
                self._estimate += incoming
                return []
        self._estimate = None  # measured again below (and after an eviction, next time)
        if not self.db.exists():  # a new catalog, its tables still being written: empty
            self._estimate = int(source_bytes * self._ratio)
            return []
        with self.db.read_state() as con:
            total = _total_bytes(self.db, con)
            self._ratio = _parquet_ratio(con, source, message_type)
        self.measured += 1
        incoming = int(source_bytes * self._ratio)
        if total + incoming <= self.limit:
            self._estimate = total + incoming
            return []
        return evict_to_size(self.db, max(self.limit - incoming, 0) / GB, protect=self.protect)
