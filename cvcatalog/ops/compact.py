"""Compaction: rewrite a partition's many small Parquet files as few well-sized ones, for
every table (CV Pilot partitions and dataset partitions such as NGSIM's location/date).

Catalogs built with a small rows_per_file, and datasets loaded as many byte-range units (one
file per unit and partition), pay for every extra file on every query. Compaction works like
an ingest commit: under the lock the writers of that data take (the partition lock; the
dataset's load lock), the files are streamed into new ones in staging, the row count is
checked, the new files are placed under new names, hashed and recorded, and the old ones are
retired in ONE `CatalogDB.write`; `tables.sync_all` then makes the table show exactly the new
files. The old files stay on disk for time travel (`AT (VERSION => n)`) until their snapshots
expire, as any replaced file does.

Why not DuckLake's own merge (`ducklake_merge_adjacent_files`, in the 1.5.5 extension)? It
works on files added with `ducklake_add_data_files`, but it cannot be made consistent with the
state tables (docs/architecture.md, "Compaction"):

* it chooses what to merge by table partition and snapshot adjacency, not by what cvcatalog
  owns: it merges the files of several NGSIM inputs (US-101 is published as three 15-minute
  files, all in one location/date partition) into one, so a changed input could no longer be
  replaced, nor a damaged file's rows re-fetched, file by file;
* its files carry the partition and constant columns and a `_ducklake_internal_snapshot_id`
  column; `ducklake_add_data_files` refuses such a file when a table is rebuilt (`cache verify
  --repair`, a schema change), and the Dask readers, which read the files directly, do not
  expect them;
* it schedules the merged-away files for deletion at once (kept only via the snapshot column
  of the new file), and it merges a whole table, never one partition under its lock.

A dataset partition is compacted per published input version (uri, scope, fingerprint): the
merged files keep that ownership and are recorded with unit id `COMPACTED_UNIT` ('*': rows of
every unit of that version), so a repair of a damaged merged file re-fetches that version.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock
import pyarrow as pa
import pyarrow.parquet as pq

from cvcatalog.datasets import DATASETS
from cvcatalog.exceptions import CatalogError, CatalogLockedError, CvCatalogError
from cvcatalog.io import roworder
from cvcatalog.io.duckdb_ext import open_instance
from cvcatalog.io.layout import remove_tree, sha256_file
from cvcatalog.io.roworder import RowOrder
from cvcatalog.io.storage import S3Access, S3Store
from cvcatalog.sources.bucket import PartitionKey
from cvcatalog.sources.ngsim import parquet_options
from cvcatalog.sqlutil import list_literal
from cvcatalog.state import datasets, deletes, manifest
from cvcatalog.state.datasets import dataset_files
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


@dataclass(frozen=True)
class Placed:
    """A new file in the lake, not yet recorded."""

    path: str
    rows: int
    bytes: int
    sha256: str


def compact(
    db: CatalogDB,
    source: str | None = None,
    message_type: str | None = None,
    *,
    rows_per_file: int = 2_000_000,
    row_group_size: int = 122_880,
    min_files: int = 2,
) -> list[CompactResult]:
    """Compact every partition with at least min_files data files: CV Pilot partitions of
    (source, type), and the partitions of datasets (source='ngsim'); all when source is None."""
    if rows_per_file < 1 or row_group_size < 1:
        raise CatalogError("rows_per_file and row_group_size must be positive")
    db.paths.ensure()  # a catalog it cannot write is one line before any lock file is made
    out: list[CompactResult] = []
    if source is None or source not in DATASETS:
        out += _compact_cv(db, source, message_type, rows_per_file, row_group_size, min_files)
    for name, ds in sorted(DATASETS.items()):
        if source is not None and source != name:
            continue
        if message_type is not None and message_type != ds.message_type:
            continue
        out += _compact_dataset(db, name, rows_per_file, row_group_size, min_files)
    if out:  # the merged files' statistics were appended out of order
        with contextlib.suppress(CvCatalogError):  # merged and committed: only slower to prune
            db.order_stats()
    return out


def worth_merging(rows: list[int], rows_per_file: int, min_files: int) -> bool:
    """Whether files of these row counts are worth merging: at least min_files of them, two
    or more well under the target size (a compacted partition has at most one, its last:
    running compact again rewrites nothing). A partition sorted in runs
    (roworder.write_ordered) has a file or more per run: at least half a run is well sized
    (merging them would write them as runs again)."""
    small = [n for n in rows if n < min(rows_per_file, roworder.SORT_RUN_ROWS) // 2]
    return len(rows) >= min_files and len(small) >= 2


# -- the one rewrite ----------------------------------------------------------------------
def _reader(db: CatalogDB) -> tuple[Callable[[str], str], Any]:
    """How pyarrow opens a catalog-relative file: its path (bucket/key on S3) and filesystem."""
    store = db.store
    fs = S3Access.of(store.fs_options()).filesystem() if isinstance(store, S3Store) else None
    return (lambda rel: store.location(rel).removeprefix("s3://")), fs


@dataclass(frozen=True)
class Writer:
    """How a table's files are written, so a merged file is typed and encoded as its parts:
    DuckDB's COPY for the CV tables (the ingest's writer), pyarrow with the NGSIM loader's
    settings for datasets (floats split into byte streams; no dictionary for `plain`)."""

    engine: str  # "duckdb" | "arrow"
    plain: tuple[str, ...] = ()
    #: the rows' order (cvcatalog.io.roworder); duckdb only: the arrow writer streams its
    #: files one after the other, each already in order (its row groups never mix two files)
    order: RowOrder | None = None


CV_WRITER = Writer("duckdb")


def rewrite(
    db: CatalogDB,
    rels: list[str],
    rel_dir: str,
    stage: Path,
    rows_per_file: int,
    row_group_size: int,
    writer: Writer = CV_WRITER,
) -> list[Placed]:
    """Stream the files' rows, in order, into new files of at most rows_per_file rows (zstd,
    row groups of row_group_size), check the count, and place them in the lake under
    rel_dir with new names. Column types are the files' own (no re-typing; hive directory
    names are not read as columns); a column some files lack (e.g. the quality step's
    `segment`) is NULL in their rows. Returns the placed files; the caller records them (or
    discards them when its commit fails)."""
    remove_tree(stage)
    stage.mkdir(parents=True)
    try:
        if writer.engine == "duckdb":
            expected = _write_duckdb(db, rels, stage, rows_per_file, row_group_size, writer.order)
        else:
            expected = _write_arrow(db, rels, stage, rows_per_file, row_group_size, writer)
        written = sorted(stage.glob("*.parquet"))
        counts = [pq.ParquetFile(p).metadata.num_rows for p in written]
        if sum(counts) != expected:
            raise CatalogError(
                f"compaction of {rel_dir} wrote {sum(counts)} rows, expected {expected}"
            )
        tag = f"compact-{uuid.uuid4().hex[:12]}"  # a new name: old snapshots keep theirs
        placed: list[Placed] = []
        store = db.store
        try:
            for i, (p, n) in enumerate(zip(written, counts, strict=True)):
                rel = f"{rel_dir}/part-{tag}-{i:03d}.parquet"
                digest, size = sha256_file(p), p.stat().st_size
                store.put(p, rel, size, digest)
                placed.append(Placed(rel, n, size, digest))
        except BaseException:
            store.discard(f.path for f in placed)
            raise
        return placed
    finally:
        remove_tree(stage)


def _write_duckdb(
    db: CatalogDB,
    rels: list[str],
    stage: Path,
    rows_per_file: int,
    row_group_size: int,
    order: RowOrder | None = None,
) -> int:
    """One COPY (DuckDB streams it, in file order, or sorts it by `order`, in runs of bounded
    size when large: roworder.write_ordered; row groups sized from the row count); returns
    the rows the sources hold. Rows deleted from a file (an object changed or removed by
    --check-changes) are left out, as the lake leaves them out."""
    store = db.store
    locations = [store.location(r) for r in rels]
    src = list_literal(locations)
    row_group_size = min(row_group_size, rows_per_file)
    with db.read_state() as state:
        gone = deletes.of_files(state, rels)
    con = db.attach_lake(open_instance())
    try:
        source: str | list[str] = locations
        row = con.execute(
            f"SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata({src})"
        ).fetchone()
        if gone:
            table = deletes.gone_table(
                con, [(store.location(p), k) for p, keys in gone.items() for k in keys]
            )
            source = (
                f"SELECT * FROM ({deletes.kept_rows_sql(locations, table, 'union_by_name = true')})"
            )
            dropped = con.execute(
                f"SELECT count(*) FROM read_parquet({src}, filename = true, "
                "hive_partitioning = false) AS o "
                f"{deletes.gone_join(table, how='SEMI')}"
            ).fetchone()
            row = (int(row[0]) - int(dropped[0]),) if row and dropped else row
        roworder.write_ordered(
            con,
            source,
            stage,
            order,
            rows=int(row[0]) if row else None,
            row_group_size=row_group_size,
            rows_per_file=rows_per_file,
        )
    finally:
        con.close()
    return int(row[0]) if row else 0


def _write_arrow(
    db: CatalogDB,
    rels: list[str],
    stage: Path,
    rows_per_file: int,
    row_group_size: int,
    how: Writer,
) -> int:
    """Batches of each file in turn into ParquetWriters; returns the rows the sources hold."""
    locate, fs = _reader(db)
    sources = [pq.ParquetFile(locate(r), filesystem=fs) for r in rels]
    schema = pa.unify_schemas([f.schema_arrow for f in sources]).remove_metadata()
    total = sum(f.metadata.num_rows for f in sources)
    row_group_size = roworder.row_group_rows(total, row_group_size)  # as every writer
    writer: pq.ParquetWriter | None = None
    files = in_file = 0
    try:
        for f in sources:
            for batch in f.iter_batches(batch_size=row_group_size):
                table = _conform(pa.Table.from_batches([batch]), schema)
                while table.num_rows:
                    if writer is None or in_file >= rows_per_file:
                        if writer is not None:
                            writer.close()
                        path = stage / f"part-{files:03d}.parquet"
                        writer = pq.ParquetWriter(
                            path, schema, **parquet_options(schema, how.plain)
                        )
                        files, in_file = files + 1, 0
                    take = min(table.num_rows, rows_per_file - in_file)
                    writer.write_table(table.slice(0, take), row_group_size=row_group_size)
                    in_file += take
                    table = table.slice(take)
    finally:
        if writer is not None:
            writer.close()
    return total


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """The table with schema's columns in order (missing ones NULL)."""
    cols = [
        table.column(field.name)
        if field.name in table.column_names
        else pa.nulls(table.num_rows, field.type)
        for field in schema
    ]
    return pa.Table.from_arrays(cols, schema=schema)


def _locked(path: Path, timeout: float, what: str) -> filelock.FileLock:
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(path))
    try:
        lock.acquire(timeout=timeout)
    except filelock.Timeout:
        raise CatalogLockedError(f"{what}; try again later") from None
    return lock


# -- CV Pilot partitions ------------------------------------------------------------------
#: CV partitions rewritten before one commit records them all: one catalog write and one
#: snapshot for up to this many (a write per partition cost a copy and sync of the whole
#: catalog each, and a snapshot each: 31 changed days of an 800-day catalog took 70 s)
COMMIT_PARTITIONS = 64


def _compact_cv(
    db: CatalogDB,
    source: str | None,
    message_type: str | None,
    rows_per_file: int,
    row_group_size: int,
    min_files: int,
) -> list[CompactResult]:
    with db.read_state() as con:
        parts = manifest.get_partitions(con, source, message_type)
        files = manifest.get_files(
            con, [k for k, p in parts.items() if p.status == "complete"], "data"
        )
    rows: dict[str, list[int]] = {}
    for f in files:
        rows.setdefault(f.partition_key, []).append(f.rows)
    keys = sorted(k for k, n in rows.items() if worth_merging(n, rows_per_file, min_files))
    out = []
    for i in range(0, len(keys), COMMIT_PARTITIONS):
        batch = keys[i : i + COMMIT_PARTITIONS]
        out += _compact_partitions(db, batch, rows_per_file, row_group_size, min_files)
    return out


def _compact_partitions(
    db: CatalogDB, keys: list[str], rows_per_file: int, row_group_size: int, min_files: int
) -> list[CompactResult]:
    """Rewrite these partitions, each under its partition lock (held until the commit), and
    record them all in ONE CatalogDB.write."""
    paths = db.paths
    locks: list[filelock.FileLock] = []
    done: list[tuple[str, list[FileRecord], list[Placed]]] = []
    try:
        for key in keys:
            locks.append(
                _locked(
                    paths.partition_lock(PartitionKey.parse(key)),
                    db.lock_timeout,
                    f"{key} is being ingested by another process",
                )
            )
        with db.read_state() as con:  # under the locks: what the partitions hold now
            recs = manifest.get_partitions(con, keys=keys)
            data: dict[str, list[FileRecord]] = {}
            for f in manifest.get_files(con, keys, "data"):
                data.setdefault(f.partition_key, []).append(f)
        for key in keys:
            rec, old = recs.get(key), data.get(key, [])
            if (
                rec is None
                or rec.status != "complete"
                or not worth_merging([f.rows for f in old], rows_per_file, min_files)
            ):
                continue  # changed while we waited
            pk = PartitionKey.parse(key)
            placed = rewrite(
                db,
                sorted(f.path for f in old),
                paths.partition_rel(pk),
                paths.staging_dir(pk) / "compact",
                rows_per_file,
                row_group_size,
                # re-sorted in the row order (in bounded memory: roworder.write_ordered)
                Writer("duckdb", order=roworder.order_for(pk.source, pk.message_type)),
            )
            done.append((key, old, placed))
        if not done:
            return []
        first, last = done[0][0], done[-1][0]
        message = (
            f"compact {first}"
            if len(done) == 1
            else f"compact {len(done)} partitions: {first}..{last}"
        )
        with db.write(message=message) as con:
            now: dict[str, set[str]] = {}
            for f in manifest.get_files(con, [key for key, _, _ in done], "data"):
                now.setdefault(f.partition_key, set()).add(f.path)
            for key, old, placed in done:
                if now.get(key, set()) != {f.path for f in old}:
                    raise CatalogError(f"{key} changed while it was compacted; run compact again")
                manifest.replace_data_files(
                    con,
                    key,
                    [FileRecord(f.path, key, "data", f.rows, f.bytes, f.sha256) for f in placed],
                )
    except BaseException:
        db.store.discard(f.path for _, _, placed in done for f in placed)
        raise
    finally:
        for lock in locks:
            lock.release()
    db.retire(f.path for _, old, _ in done for f in old)  # kept for the snapshots showing them
    return [
        CompactResult(
            key,
            len(old),
            len(placed),
            sum(f.rows for f in placed),
            sum(f.bytes for f in old),
            sum(f.bytes for f in placed),
        )
        for key, old, placed in done
    ]


# -- dataset partitions (NGSIM, ...) ----------------------------------------------------------
#: a dataset's compaction group: (uri, scope, fingerprint, partition)
Group = tuple[str, str, str, str]


def _compact_dataset(
    db: CatalogDB, name: str, rows_per_file: int, row_group_size: int, min_files: int
) -> list[CompactResult]:
    ds = DATASETS[name]
    lock = _locked(
        db.paths.dataset_lock(name), db.lock_timeout, f"another cvcatalog process is loading {name}"
    )
    try:
        groups = _dataset_groups(db, name, rows_per_file, min_files)
        if not groups:
            return []
        top = f"{db.paths.lake.relative_to(db.paths.root).as_posix()}/main/{ds.view_name}"
        stage = db.paths.staging / "datasets" / name / f"compact-{uuid.uuid4().hex[:8]}"
        placed: dict[Group, list[Placed]] = {}
        try:
            for group, files in groups.items():
                placed[group] = rewrite(
                    db,
                    [f.path for f in files],
                    f"{top}/{group[3]}",
                    stage,
                    rows_per_file,
                    row_group_size,
                    Writer("arrow", tuple(ds.plain_columns)),
                )
            with db.write(message=f"compact {name}") as con:
                current = _dataset_groups(db, name, rows_per_file, min_files, con)
                for group, files in groups.items():
                    if [f.path for f in current.get(group, [])] != [f.path for f in files]:
                        raise CatalogError(
                            f"{name} changed while it was compacted; run compact again"
                        )
                    _record(con, name, group, files, placed[group])
        except BaseException:
            db.store.discard(f.path for fs in placed.values() for f in fs)
            raise
        db.retire(f.path for files in groups.values() for f in files)
        return [
            CompactResult(
                f"{name}/{group[3]}",
                len(files),
                len(placed[group]),
                sum(f.rows for f in placed[group]),
                sum(f.bytes for f in files),
                sum(f.bytes for f in placed[group]),
            )
            for group, files in sorted(groups.items(), key=lambda g: (g[0][3], g[0][0]))
        ]
    finally:
        lock.release()


def _dataset_groups(
    db: CatalogDB, name: str, rows_per_file: int, min_files: int, con: Any = None
) -> dict[Group, list[Any]]:
    """Published data files of the dataset by (input version, partition), the groups worth
    merging only."""
    if con is None:
        with db.read_state() as c:
            files = dataset_files(c, name, published_only=True)
    else:
        files = dataset_files(con, name, published_only=True)
    groups: dict[Group, list[Any]] = {}
    for f in files:
        if f.kind == "data":
            groups.setdefault((f.uri, f.scope, f.fingerprint, f.partition), []).append(f)
    return {
        g: fs
        for g, fs in groups.items()
        if worth_merging([f.rows for f in fs], rows_per_file, min_files)
    }


def _record(con: Any, name: str, group: Group, old: Iterable[Any], placed: list[Placed]) -> None:
    """Replace the group's dataset_files rows by the merged files' (inside the write)."""
    uri, scope, fingerprint, partition = group
    datasets.replace_merged(
        con,
        (name, uri, scope, fingerprint),
        [f.path for f in old],
        [datasets.UnitFile(f.path, partition, "data", f.rows, f.bytes, f.sha256) for f in placed],
    )
