"""Cache management: status, clear and integrity verification (eviction itself is cvcatalog.state.eviction)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cvcatalog.io import lake
from cvcatalog.state import manifest
from cvcatalog.state.access import read_access_log
from cvcatalog.state.datasets import (
    Refetch,
    dataset_files,
    dataset_status,
    drop_damaged,
    forget,
)
from cvcatalog.state.db import CatalogDB, now_utc

#: the fields of a status row (a listing with no rows still has them: a CSV's header)
STATUS_COLUMNS = (
    "partition", "status", "rows", "quarantined", "parquet_bytes", "source_objects",
    "source_bytes", "schema_versions", "canonical_version", "checked_at", "last_accessed",
    "error",
)  # fmt: skip


def status(
    db: CatalogDB, source: str | None = None, message_type: str | None = None
) -> list[dict[str, Any]]:
    """One row per known partition, with LRU times that include unfolded accesses; dataset
    partitions (NGSIM: '<dataset>/location=.../date=...') follow the CV Pilot ones."""
    with db.read() as con:
        parts = manifest.get_partitions(con, source, message_type)
        datasets = dataset_status(con, source, message_type)
    pending = read_access_log(db.paths)
    for row in datasets:  # dataset partitions' LRU times live in the access log
        seen = pending.get(row["partition"])
        row["last_accessed"] = _utc(seen)
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
                "checked_at": _utc(p.checked_at),
                "last_accessed": _utc(last),
                "error": p.error,
            }
        )
    return rows + datasets


def _utc(t: datetime | None) -> str | None:
    """A time as ISO 8601 in UTC (+00:00), as every listing prints times: DuckDB gives them
    in the machine's zone (a local offset here, UTC in snapshots and runs)."""
    return t.astimezone(UTC).isoformat() if t else None


def clear(
    db: CatalogDB, source: str | None = None, message_type: str | None = None
) -> tuple[int, int]:
    """Forget and delete partitions (all, one source, or one source/type) and dataset files
    (e.g. --source ngsim); returns (count, bytes)."""
    with db.write(message="cache clear") as con:
        parts = manifest.get_partitions(con, source, message_type)
        files = manifest.delete_partitions(con, list(parts))
        n_ds, ds_files = forget(con, db.paths, source, message_type)
    db.retire([f.path for f in files] + [f.path for f in ds_files])
    # clearing frees the disk: the snapshots that still show the files expire now
    db.expire_snapshots(now_utc())
    return len(parts) + n_ds, sum(f.bytes for f in files) + sum(f.bytes for f in ds_files)


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
