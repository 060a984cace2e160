"""Cache management: status, clear, LRU eviction and integrity verification."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cvcatalog import lake, manifest
from cvcatalog.access import folded_access_log, read_access_log
from cvcatalog.db import CatalogDB, now_utc

if TYPE_CHECKING:
    from cvcatalog.datasets.manage import Refetch

GB = 1024**3


def status(
    db: CatalogDB, source: str | None = None, message_type: str | None = None
) -> list[dict[str, Any]]:
    """One row per known partition, with LRU times that include unfolded accesses; dataset
    partitions (NGSIM: '<dataset>/location=.../date=...') follow the CV Pilot ones."""
    from cvcatalog.datasets.manage import dataset_status

    with db.read() as con:
        parts = manifest.get_partitions(con, source, message_type)
        datasets = dataset_status(con, source, message_type)
    pending = read_access_log(db.paths)
    for row in datasets:  # dataset partitions' LRU times live in the access log
        seen = pending.get(row["partition"])
        row["last_accessed"] = seen.isoformat() if seen else None
    rows = []
    for p in parts.values():
        last = p.last_accessed
        if p.partition_key in pending and (last is None or pending[p.partition_key] > last):
            last = pending[p.partition_key]
        rows.append(
            {
                "partition": p.partition_key,
                "status": p.status,
                "rows": p.rows,
                "quarantined": p.quarantined,
                "parquet_bytes": p.parquet_bytes,
                "source_objects": p.source_objects,
                "source_bytes": p.source_bytes,
                "schema_versions": ",".join(str(v) for v in p.schema_versions),
                "canonical_version": p.canonical_version,
                "checked_at": p.checked_at.isoformat() if p.checked_at else None,
                "last_accessed": last.isoformat() if last else None,
                "error": p.error,
            }
        )
    return rows + datasets


def clear(
    db: CatalogDB, source: str | None = None, message_type: str | None = None
) -> tuple[int, int]:
    """Forget and delete partitions (all, one source, or one source/type) and dataset files
    (e.g. --source ngsim); returns (count, bytes)."""
    from cvcatalog.datasets.manage import forget

    with db.write(message="cache clear") as con:
        parts = manifest.get_partitions(con, source, message_type)
        files = manifest.delete_partitions(con, list(parts))
        n_ds, ds_files = forget(con, db.paths, source, message_type)
    db.retire([f.path for f in files] + [f.path for f in ds_files])
    # clearing frees the disk: the snapshots that still show the files expire now
    db.expire_snapshots(now_utc())
    return len(parts) + n_ds, sum(f.bytes for f in files) + sum(f.bytes for f in ds_files)


def cache_bytes(db: CatalogDB) -> int:
    """Every byte the catalog keeps: CV Pilot and dataset (NGSIM) files, and the files only
    older snapshots still show."""
    with db.read() as con:
        return _total_bytes(con)


def _total_bytes(con: Any) -> int:
    row = con.execute(
        "SELECT (SELECT coalesce(sum(bytes), 0) FROM partition_files) "
        "+ (SELECT coalesce(sum(bytes), 0) FROM dataset_files)"
    ).fetchone()
    return (int(row[0]) if row else 0) + lake.scheduled_bytes(con)


def evict_to_size(db: CatalogDB, max_size_gb: float, protect: set[str] | None = None) -> list[str]:
    """Drop least-recently-used data until the cache fits in max_size_gb: complete CV Pilot
    partitions and loaded dataset inputs (NGSIM), in one LRU order. Returns what went: CV
    partition keys, and `<dataset>:<uri>` for dataset inputs (load them again with `ingest
    --source <dataset> --path <uri>`).

    A dataset input goes whole (every unit and file of it, its checkpoints included, so the
    next load fetches it again: its units span partitions), only if the catalog can load it
    again (a local file still unchanged on disk, or an s3:// / https:// object) and no load of
    that dataset is running."""
    from cvcatalog.datasets.manage import EvictableInput, evictable_inputs, forget_input

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
            rows = con.execute(
                "SELECT p.partition_key, coalesce(max(p.last_accessed), max(p.created_at)), "
                "coalesce(sum(f.bytes), 0) FROM partitions p "
                "LEFT JOIN partition_files f USING (partition_key) "
                "WHERE p.status = 'complete' GROUP BY ALL"
            ).fetchall()
            candidates: list[tuple[Any, str, int, EvictableInput | None]] = [
                (when, key, int(size), None) for key, when, size in rows
            ]
            candidates += [
                (item.last_used, item.label, item.bytes, item)
                for item in evictable_inputs(con, loadable, accessed)
            ]
            candidates.sort(key=lambda c: (c[0], c[1]))
            total = _total_bytes(con)
            cv_victims: list[str] = []
            for _when, key, size, item in candidates:
                if total <= limit:
                    break
                if key in protect:
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


def _idle_datasets(db: CatalogDB, held: contextlib.ExitStack) -> list[str]:
    """Datasets no load is running for, their load locks held until `held` closes (a load
    places files before it records them: its inputs are not evicted meanwhile)."""
    import filelock

    from cvcatalog.compact import dataset_lock
    from cvcatalog.datasets import DATASETS

    names = []
    for name in sorted(DATASETS):
        path = dataset_lock(db, name)
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
    from cvcatalog.access import record_access

    for key, when in accessed.items():
        record_access([key], db.paths, when)


#: Parquet bytes per source byte assumed before a catalog has any partition to learn from.
DEFAULT_PARQUET_RATIO = 0.5


def expected_bytes(db: CatalogDB, source: str, message_type: str, source_bytes: int) -> int:
    """Parquet + quarantine bytes a partition of source_bytes raw bytes will take, from the
    ratio observed on the complete partitions of the same (source, type) (or of any)."""
    with db.read() as con:
        rows = con.execute(
            "SELECT p.source = ? AND p.message_type = ? AS same, sum(f.bytes), "
            "sum(p.source_bytes) FROM partitions p JOIN (SELECT partition_key, sum(bytes) AS "
            "bytes FROM partition_files GROUP BY 1) f USING (partition_key) "
            "WHERE p.status = 'complete' AND p.source_bytes > 0 GROUP BY 1",
            [source, message_type],
        ).fetchall()
    by_same = {bool(same): (int(out or 0), int(src or 0)) for same, out, src in rows}
    out, src = by_same.get(True) or by_same.get(False) or (0, 0)
    ratio = out / src if src else DEFAULT_PARQUET_RATIO
    return int(source_bytes * ratio)


def make_room(
    db: CatalogDB, max_size_gb: float, incoming_bytes: int, protect: set[str] | None = None
) -> list[str]:
    """Before writing incoming_bytes: evict least-recently-used partitions (never `protect`)
    until the cache plus the new files fit in max_size_gb."""
    limit = int(max_size_gb * GB)
    if cache_bytes(db) + incoming_bytes <= limit:
        return []
    return evict_to_size(db, max(limit - incoming_bytes, 0) / GB, protect=protect)


@dataclass
class VerifyReport:
    checked: int = 0
    ok: int = 0
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    bad_partitions: list[str] = field(default_factory=list)
    #: damaged dataset files (NGSIM, ...): repair drops their units for re-fetch
    bad_dataset_files: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.mismatched or self.missing or self.orphans)

    def rows(self) -> list[dict[str, str]]:
        out = [{"problem": "checksum mismatch", "path": p} for p in self.mismatched]
        out += [{"problem": "missing file", "path": p} for p in self.missing]
        out += [{"problem": "orphan file (not in the manifest)", "path": p} for p in self.orphans]
        return out


def verify(db: CatalogDB) -> VerifyReport:
    """Re-hash every file the manifest lists and look for files it does not list (wherever
    the lake lives: S3 objects are streamed and hashed, not trusted by their metadata)."""
    from cvcatalog.datasets.manage import dataset_files

    report = VerifyReport()
    with db.read() as con:
        files = manifest.get_files(con)
        ds_files = dataset_files(con)
        kept = db.lake_files(con)
    bad: set[str] = set()
    store = db.store
    for f in files:
        report.checked += 1
        digest = store.sha256(f.path)  # re-reads the bytes, local or on S3
        if digest is None:
            report.missing.append(f.path)
            bad.add(f.partition_key)
        elif digest != f.sha256:
            report.mismatched.append(f.path)
            bad.add(f.partition_key)
        else:
            report.ok += 1
    for d in ds_files:
        report.checked += 1
        digest = store.sha256(d.path)
        if digest is None:
            report.missing.append(d.path)
            report.bad_dataset_files.append(d.path)
        elif digest != d.sha256:
            report.mismatched.append(d.path)
            report.bad_dataset_files.append(d.path)
        else:
            report.ok += 1
    listed = {f.path for f in files} | {d.path for d in ds_files} | kept
    report.orphans = [rel for rel in store.list_files() if rel not in listed]
    report.bad_partitions = sorted(bad)
    return report


def _tables_showing(db: CatalogDB, rels: list[str]) -> list[str]:
    if not rels:
        return []
    with db.read() as con:
        counts = lake.record_counts(con)
    store = db.store
    return sorted({counts[loc][0] for loc in map(store.location, rels) if loc in counts})


def quarantine_bad(db: CatalogDB, report: VerifyReport) -> list[Refetch]:
    """Hide damaged partitions from the views (marked failed), drop the units of damaged
    dataset files (their inputs leave the views until re-loaded) and delete orphan files.
    Returns the dataset inputs to load again."""
    from cvcatalog.datasets.manage import drop_damaged

    refetch: list[Refetch] = []
    rebuild = _tables_showing(db, report.missing + report.mismatched)
    if report.bad_partitions or report.bad_dataset_files:
        # DuckLake's DELETE opens every file of a table, so a table showing a damaged file is
        # rebuilt: created anew with the files that are still good, under new names
        with db.write(message="cache repair", rebuild=rebuild) as con:
            parts = manifest.get_partitions(con, keys=report.bad_partitions)
            files = manifest.delete_partitions(con, report.bad_partitions)
            for p in parts.values():
                p.status, p.error = "failed", "integrity check failed; re-fetch needed"
                p.rows = p.quarantined = p.parquet_bytes = 0
                manifest.put_partition(con, p)
            doomed, refetch = drop_damaged(con, db.paths, report.bad_dataset_files)
        # damaged files are of no use to any snapshot: deleted now (the lake forgets them)
        db.store.discard([f.path for f in files] + doomed)
    store = db.store
    for rel in report.orphans:
        with contextlib.suppress(FileNotFoundError):
            store.delete(rel)
    return refetch
