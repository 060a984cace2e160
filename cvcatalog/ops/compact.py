"""Compaction: rewrite a partition's many small Parquet files as few well-sized ones.

Catalogs built before ingest wrote one file per day (or with a small rows_per_file) pay for
every extra file on every query. Compaction works like an ingest commit: under the partition
lock, write new files to staging, check the row count, swap the manifest entry and the views in
one transaction, then delete the old files.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import duckdb
import filelock
import pyarrow.parquet as pq

from cvcatalog.exceptions import CatalogError, CatalogLockedError
from cvcatalog.io.layout import remove_tree, sha256_file
from cvcatalog.sources import PartitionKey
from cvcatalog.sqlutil import list_literal, quote_literal
from cvcatalog.state import manifest
from cvcatalog.state.db import CatalogDB
from cvcatalog.state.manifest import FileRecord


@dataclass
class CompactResult:
    partition: str
    files_before: int
    files_after: int
    rows: int
    bytes_before: int
    bytes_after: int


def compact(
    db: CatalogDB,
    source: str | None = None,
    message_type: str | None = None,
    *,
    rows_per_file: int = 2_000_000,
    row_group_size: int = 122_880,
    min_files: int = 2,
) -> list[CompactResult]:
    """Compact every complete partition with at least min_files data files."""
    with db.read() as con:
        parts = manifest.get_partitions(con, source, message_type)
        files = manifest.get_files(
            con, [k for k, p in parts.items() if p.status == "complete"], "data"
        )
    counts: dict[str, int] = {}
    for f in files:
        counts[f.partition_key] = counts.get(f.partition_key, 0) + 1
    out = []
    for key in sorted(k for k, n in counts.items() if n >= min_files):
        result = _compact_one(db, key, rows_per_file, row_group_size)
        if result is not None:
            out.append(result)
    return out


def _compact_one(
    db: CatalogDB, key: str, rows_per_file: int, row_group_size: int
) -> CompactResult | None:
    paths = db.paths
    lock_path = paths.partition_lock(PartitionKey.parse(key))
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(lock_path))
    try:
        lock.acquire(timeout=db.lock_timeout)
    except filelock.Timeout:
        raise CatalogLockedError(
            f"{key} is being ingested by another process; try again later"
        ) from None
    try:
        with db.read() as con:
            rec = manifest.get_partitions(con, keys=[key]).get(key)
            old = manifest.get_files(con, [key])
            objects = manifest.get_source_objects(con, key)
        data = [f for f in old if f.kind == "data"]
        if rec is None or rec.status != "complete" or len(data) < 2:
            return None  # changed while we waited
        pk = rec.pk
        stage = paths.staging_dir(pk) / "compact"
        remove_tree(stage)
        stage.mkdir(parents=True)
        try:
            rows = sum(f.rows for f in data)
            groups = max(1, -(-rows_per_file // row_group_size))
            store = db.store
            src = list_literal([store.location(f.path) for f in data])
            con = db.attach_lake(duckdb.connect())
            try:
                con.execute(
                    f"COPY (SELECT * FROM read_parquet({src})) TO {quote_literal(str(stage))} "
                    f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {int(row_group_size)}, "
                    f"ROW_GROUPS_PER_FILE {int(groups)}, FILENAME_PATTERN 'part_{{i}}')"
                )
            finally:
                con.close()
            written = sorted(stage.glob("*.parquet"))
            new_rows = sum(pq.ParquetFile(p).metadata.num_rows for p in written)
            if new_rows != rows:
                raise CatalogError(f"compaction of {key} wrote {new_rows} rows, expected {rows}")
            tag = f"compact-{uuid.uuid4().hex[:12]}"  # a new name: old snapshots keep theirs
            placed: list[FileRecord] = []
            for i, p in enumerate(written):
                rel = f"{paths.partition_rel(pk)}/part-{tag}-{i:03d}.parquet"
                n, digest, size = (
                    pq.ParquetFile(p).metadata.num_rows,
                    sha256_file(p),
                    p.stat().st_size,
                )
                store.put(p, rel, size, digest)
                placed.append(FileRecord(rel, key, "data", n, size, digest))
        finally:
            remove_tree(stage)
        keep = [f for f in old if f.kind != "data"]
        rec.parquet_bytes = sum(f.bytes for f in placed)
        try:
            with db.write(message=f"compact {key}") as con:
                obsolete = manifest.put_partition(con, rec, placed + keep, objects)
        except BaseException:
            db.store.discard(f.path for f in placed)
            raise
        db.retire(f.path for f in obsolete)
        return CompactResult(
            key, len(data), len(placed), rows, sum(f.bytes for f in data), rec.parquet_bytes
        )
    finally:
        lock.release()
