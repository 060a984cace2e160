"""Datasets cut into byte-range units (NGSIM, ...) through the pipeline.

A dataset (the contract in cvcatalog.datasets.base: inputs -> units -> bytes -> canonical
Arrow batches; NGSIM's parsing is cvcatalog.datasets.ngsim) is loaded here: per run, the inputs
are described (one request each) and cut into units; units already committed for the same
input version (fingerprint) are skipped; each remaining unit is read and parsed as one stream
(fetch is streamed into the conversion, so memory stays flat whatever the input size) into
sorted zstd Parquet per partition plus a quarantine file; the pipeline retries transient
errors under the one retry policy and commits finished units together. The commit is the
checkpoint (dataset_units, dataset_files): a killed run loses at most the units in flight.

Versions: the views show, per input, only the version recorded in dataset_inputs. Units of a
new version are committed (checkpointed) but stay invisible until the transaction committing
the input's last unit publishes the version: it switches the view to the new files and drops
the old ones together, so a view never shows half old, half new data.

Content: each unit's own bytes are hashed (SHA-256) as they stream into its parse, and a
version's digest is taken over its units' when its last unit commits. A version whose bytes are
already published under another URI (the same scope, or the whole input) is not published: that
commit drops its units and files and records it as a duplicate (dataset_duplicates), so a run
with the same fingerprint skips it without fetching. The record goes with the input it names.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import filelock
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cvcatalog.datasets.base import Dataset, Rejects, WorkUnit
from cvcatalog.exceptions import (
    CatalogLockedError,
    ConversionError,
    CvCatalogError,
    InputChangedError,
)
from cvcatalog.io import roworder
from cvcatalog.io.duckdb_ext import open_instance
from cvcatalog.io.inputs import InputInfo
from cvcatalog.io.layout import CatalogPaths, remove_tree
from cvcatalog.io.s3 import RetryPolicy
from cvcatalog.pipeline.contract import Abandoned, Plan, RunContext, Source, Staged
from cvcatalog.pipeline.report import Outcome, Progress, Summary
from cvcatalog.pipeline.run import Runner, new_run_id
from cvcatalog.pipeline.stage import fresh_dir, short_hash, staged_file
from cvcatalog.quality.config import QualityConfig
from cvcatalog.quality.rules import QualityStats, process_partition
from cvcatalog.quality.rules import record as record_quality
from cvcatalog.state import datasets
from cvcatalog.state.db import CatalogDB, now_utc
from cvcatalog.state.manifest import add_validation_counts, drop_validation_counts
from cvcatalog.state.tables import register_dataset

ROW_GROUP_ROWS = 131_072
#: rows of one partition a unit holds in memory to sort before writing them (bounds memory
#: per unit in flight whatever the unit size; a unit of 64 MiB of NGSIM CSV is ~0.5 M rows)
SORT_ROWS = 1_500_000
#: zstd 3: within 1-2 % of level 9's size on trajectories at a third of the time
ZSTD_LEVEL = 3
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9._:+-]+$")


@dataclass
class _Loaded:
    """What a unit's commit records (Staged.payload)."""

    rules: Counter[str]
    #: quality counts per partition of the unit (when a quality config is given)
    quality: dict[str, QualityStats] = field(default_factory=dict)
    #: input versions this unit's commit made visible (set by record)
    published: int = 0
    #: SHA-256 of the unit's own bytes [start, end); None when the read did not cover them
    sha256: str | None = None
    #: its version was dropped at its commit: the same bytes are loaded under another URI
    dropped: bool = False


class _RangeDigest:
    """SHA-256 of the bytes [start, end) of an input, fed the chunks of a read that begins at
    byte `at` (the byte before the range, a tail after it: both left out)."""

    def __init__(self, start: int, end: int, at: int) -> None:
        self._h = hashlib.sha256()
        self.start, self.end, self.pos = start, end, at
        self.hashed = 0

    def update(self, chunk: bytes) -> None:
        a = max(self.start - self.pos, 0)
        b = min(self.end - self.pos, len(chunk))
        if b > a:
            self._h.update(memoryview(chunk)[a:b])  # hashlib releases the GIL for large data
            self.hashed += b - a
        self.pos += len(chunk)

    def hexdigest(self) -> str | None:
        """The digest if every byte of the range went by, else None."""
        if self.pos > self.start and self.hashed == self.end - self.start:
            return self._h.hexdigest()
        return None


class DatasetUnits(Source[WorkUnit, WorkUnit]):
    """One Dataset into one catalog, a byte range per unit (see the module docstring)."""

    record_idle_runs = True  # a run that found everything loaded is recorded too
    mode = "incremental"  # `cvcatalog runs`: a dataset's "objects" are its inputs (files)

    def __init__(
        self,
        dataset: Dataset,
        db: CatalogDB,
        *,
        run_id: str,
        workers: int = 4,
        quality: QualityConfig | None = None,
        max_size_gb: float | None = None,
        snapshot_retention_days: float | None = None,
    ) -> None:
        """max_size_gb: cache.max_size_gb, kept by the runner's eviction at the end of a run
        that loaded something (None: no limit); snapshot_retention_days:
        cache.snapshot_retention_days, the runner's snapshot expiry after a run that wrote a
        partition (None: none)."""
        self.ds = dataset
        #: the files' row order (cvcatalog.io.roworder); ds.sort_by for data without positions
        self._order = roworder.order_for(dataset.name, dataset.message_type)
        self.db = db
        self.paths: CatalogPaths = db.paths
        self.run_id = run_id
        self.name = dataset.name
        self.message_type = dataset.message_type
        self.fetch_slots = self.convert_slots = max(1, workers)
        #: the quality step (cvcatalog.quality) on each unit's files; None: skipped
        self.quality = quality
        self.max_size_gb = max_size_gb
        self.snapshot_retention_days = snapshot_retention_days
        self._unit_cache: list[WorkUnit] | None = None
        #: the run's inputs as eviction names them (protected)
        self._protected: set[str] = set()
        #: duplicates the transaction being written found (line for the summary), and the
        #: (uri, fingerprint) of the versions it dropped for them: reported once it commits
        self._found: list[tuple[datasets.Duplicate, str]] = []
        self._dropped: set[tuple[str, str]] = set()
        #: the files of those versions no snapshot ever showed: deleted once it commits
        self._unshown: list[str] = []
        #: (uri, fingerprint) -> the partitions this run's committed units of it wrote (the
        #: summary's partitions_written: those of versions later dropped as duplicates go)
        self._written: dict[tuple[str, str], set[str]] = {}
        #: the lake's files, read once in a write (_lake_files)
        self._shown: set[str] | None = None

    # -- paths ---------------------------------------------------------------------------
    @property
    def _lake_rel(self) -> str:
        """The dataset's DuckLake table directory, catalog-relative (the same key prefix on
        S3); units' files go to its hive partition directories."""
        return f"{self.paths.lake.relative_to(self.paths.root).as_posix()}/main/{self.ds.view_name}"

    @property
    def _quarantine_rel(self) -> str:
        return (
            f"{self.paths.quarantine.relative_to(self.paths.root).as_posix()}/source={self.ds.name}"
        )

    @property
    def _staging(self) -> Path:
        return self.paths.staging / "datasets" / self.ds.name

    @property
    def _lock(self) -> Path:
        return self.paths.dataset_lock(self.ds.name)

    # -- the run -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def session(self, run: RunContext) -> Iterator[None]:
        """One load of a dataset into a catalog at a time; units run with short GIL slices
        and a frozen heap; the run's staging goes at the end, and any a killed load left
        (no other load can be using it: this one holds the lock) at the start."""
        self._lock.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(self._lock))
        try:
            lock.acquire(timeout=self.db.lock_timeout)
        except filelock.Timeout:
            raise CatalogLockedError(
                f"another cvcatalog process is loading {self.ds.name} into {self.paths.root}; "
                "try again when it has finished"
            ) from None
        try:
            clear_staging(self.paths, self.ds.name)  # a kill -9's leftovers stayed for good
            with _short_gil_slices(self.convert_slots), _frozen_heap():
                yield
        finally:
            remove_tree(self._staging / self.run_id)
            lock.release()

    def key(self, unit: WorkUnit) -> str:
        return unit.id

    def plan(self, run: RunContext) -> Plan[WorkUnit]:
        s = run.summary
        s.kind = "units"
        s.scope = self.ds.scope
        inputs = self.ds.inputs()
        s.inputs = len(inputs)
        # what the run asked for: each input as loaded now, or whole when it was loaded so
        self._protected = {
            datasets.input_label(self.ds.name, info.uri, scope)
            for info in inputs
            for scope in {self.ds.scope, "*"}
        }
        units, todo = self._plan(inputs, run)
        done = set(id(u) for u in todo)
        cached = [Outcome(u.id, "cached", detail="cached") for u in units if id(u) not in done]
        return Plan(todo, cached, units=len(units), nbytes=sum(u.end - u.start for u in todo))

    def _plan(
        self, inputs: list[InputInfo], run: RunContext
    ) -> tuple[list[WorkUnit], list[WorkUnit]]:
        """Every unit and those still to do; tidies what earlier runs left (stale versions,
        orphans)."""
        scope, s = self.ds.scope, run.summary
        with self.db.read_state() as con:
            done = datasets.unit_versions(con, self.ds.name, scope)
            cut = datasets.unit_sizes(con)
            published = datasets.published_versions(con, self.ds.name)
            dups = datasets.duplicates(con, self.ds.name)
        todo_inputs = []
        for info in inputs:
            dup = dups.get((info.uri, scope)) or dups.get((info.uri, "*"))
            if dup is not None and dup.fingerprint == info.fingerprint:
                # its bytes are loaded under another URI: nothing fetched
                s.changes["unchanged"] += 1
                line = self._duplicate_line(info.uri, dup)
                s.duplicates.append(line)
                run.progress.note(line)
                continue
            before = published.get((info.uri, scope))
            kind = (
                "added"
                if before is None
                else "unchanged"
                if before == info.fingerprint
                else "changed"
            )
            s.changes[kind] += 1
            if scope != "*" and published.get((info.uri, "*")) == info.fingerprint:
                run.progress.note(
                    f"{info.uri} is already loaded whole (without a filter); nothing to do"
                )
                continue
            todo_inputs.append(info)
        # an input loaded (or begun) with another unit size is cut as it was: not fetched again
        versions = {i.uri: (self.ds.name, i.uri, scope, i.fingerprint) for i in todo_inputs}
        sizes = {uri: cut[v] for uri, v in versions.items() if v in cut}
        units = self.ds.units(todo_inputs, sizes)
        self._unit_cache = units
        todo = [u for u in units if (u.id, u.fingerprint) not in done]
        self._tidy(todo_inputs, units, published)
        self._report_found(run)
        return units, todo

    def _tidy(
        self,
        inputs: list[InputInfo],
        units: list[WorkUnit],
        published: dict[tuple[str, str], str],
    ) -> None:
        """Drop units of versions that are neither published nor current (an interrupted
        rebuild overtaken by another change), publish inputs whose units are all committed,
        and delete files no catalog row names (a run killed between placing and committing)."""
        scope = self.ds.scope
        obsolete: list[str] = []
        by_uri: dict[str, list[WorkUnit]] = {}
        for u in units:
            by_uri.setdefault(u.uri, []).append(u)
        self._found, self._dropped, self._unshown = [], set(), []
        self._shown = None
        with self.db.write(run_id=self.run_id, message=f"{self.ds.name} tidy") as con:
            datasets.drop_stale_duplicates(con, self.ds.name)
            for info in inputs:
                keep = [info.fingerprint]
                if (info.uri, scope) in published:
                    keep.append(published[(info.uri, scope)])
                obsolete += self._drop_versions(con, info.uri, scope, keep)
            for info in inputs:
                if published.get((info.uri, scope)) != info.fingerprint:
                    self._publish_if_complete(con, info, by_uri.get(info.uri, []), obsolete)
            known = datasets.recorded_paths(con)
            known |= self._lake_files(con)
        self.db.retire(obsolete)
        store = self.db.store
        for top in (self._lake_rel, self._quarantine_rel):
            for rel in store.list_files(top):
                if rel not in known:
                    with contextlib.suppress(CvCatalogError, OSError):
                        store.delete(rel)

    # -- one unit (worker threads) -------------------------------------------------------
    def fetch(self, unit: WorkUnit, run: RunContext) -> WorkUnit:
        """Nothing to bring ahead: the unit's bytes stream into its conversion."""
        return unit

    def convert(self, fetched: WorkUnit, run: RunContext) -> Staged[WorkUnit]:
        """Read and parse the unit's byte range into sorted Parquet per partition and a
        quarantine file, in the unit's own staging directory (fresh for every attempt)."""
        stage = fresh_dir(self._staging / self.run_id / short_hash(self.ds.scope, fetched.id))
        try:
            return self._load_unit(fetched, stage, run)
        except BaseException:
            remove_tree(stage)
            raise

    def _load_unit(self, unit: WorkUnit, stage: Path, run: RunContext) -> Staged[WorkUnit]:
        fetched = 0
        progress = run.progress
        # the unit's own bytes hashed as they go by: the input's content identity
        digest = _RangeDigest(unit.start, unit.end, self.ds.fetch_offset(unit))

        def counted(chunks: Iterator[bytes]) -> Iterator[bytes]:
            nonlocal fetched
            try:
                for chunk in chunks:
                    if run.stop.is_set():
                        raise Abandoned
                    fetched += len(chunk)
                    progress.downloaded(len(chunk))
                    digest.update(chunk)
                    yield chunk
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()

        rejects = Rejects(stage / "quarantine.ndjson", unit)
        writers: dict[tuple[Any, ...], tuple[pq.ParquetWriter, Path, list[int]]] = {}
        buffered: dict[tuple[Any, ...], list[pa.RecordBatch]] = {}
        counts: Counter[tuple[Any, ...]] = Counter()
        storage = self.ds.storage_schema()
        keys = self.ds.partition_by

        def flush(values: tuple[Any, ...]) -> None:
            """Write the partition's buffered rows, sorted, as row groups of its file."""
            batches = buffered.pop(values, [])
            counts.pop(values, None)
            if not batches:
                return
            w = writers.get(values)
            if w is None:
                path = stage / f"data-{len(writers):04d}.parquet"
                writer = pq.ParquetWriter(
                    path, storage, **parquet_options(storage, self.ds.plain_columns)
                )
                w = writers[values] = (writer, path, [0])
            table = pa.Table.from_batches(batches).select(storage.names)
            del batches[:]
            order = roworder.sort_indices(table, self._order)
            if order is None and self._order is None and self.ds.sort_by:
                order = _sort_order(table, self.ds.sort_by)
            if order is not None:
                table = table.take(order)
            # row groups sized from the chunk's rows (roworder.row_group_rows: spatial pruning)
            w[0].write_table(
                table, row_group_size=roworder.row_group_rows(table.num_rows, ROW_GROUP_ROWS)
            )
            w[2][0] += table.num_rows

        try:
            for batch in self.ds.parse(unit, counted(self.ds.fetch(unit)), rejects):
                for values, part in _split(batch, keys):
                    buffered.setdefault(values, []).append(part)
                    counts[values] += part.num_rows
                    if counts[values] >= SORT_ROWS:
                        flush(values)
            for values in list(buffered):
                flush(values)
        finally:
            for writer, _, _ in writers.values():
                writer.close()
            qfile = rejects.close()
        parts = [
            (path, _partition_dir(keys, values), rows[0])
            for values, (_, path, rows) in writers.items()
        ]
        checked: dict[str, QualityStats] = {}
        if self.quality is not None:
            parts, checked = self._quality_step(parts, stage)
        # never a name the lake used before: a file of an older snapshot may still be kept
        # (and later deleted) under it
        tag = short_hash(self.ds.scope, unit.id, unit.fingerprint, self.run_id)
        # hashed here, while the file is in the page cache and the other workers run, rather
        # than in the commit, which every worker's next checkpoint waits for
        lake = self._lake_rel
        files = [
            staged_file(path, f"{lake}/{part}/part-{unit.index:05d}-{tag}.parquet", "data", n, part)
            for path, part, n in parts
        ]
        if qfile is not None:
            part = f"input={short_hash(unit.uri)}"
            dest = f"{self._quarantine_rel}/{part}/part-{unit.index:05d}-{tag}.ndjson"
            files.append(staged_file(qfile, dest, "quarantine", rejects.total, part))
        rows = sum(f.rows for f in files if f.kind == "data")
        outcome = Outcome(
            unit.id,
            "complete",
            rows=rows,
            quarantined=rejects.total,
            skipped=rejects.skipped,
            bytes_downloaded=fetched,
            parquet_bytes=sum(f.size for f in files if f.kind == "data"),
        )
        loaded = _Loaded(Counter(rejects.counts), checked, sha256=digest.hexdigest())
        return Staged(unit, files, outcome, payload=loaded, stage_dir=stage)

    def _quality_step(
        self, parts: list[tuple[Path, str, int]], stage: Path
    ) -> tuple[list[tuple[Path, str, int]], dict[str, QualityStats]]:
        """Count the quality rules on each of the unit's partition files and, with cleaning on,
        replace the file by its cleaned rows (still sorted). Trajectory windows (ordering,
        gaps, smoothing) see the unit's rows of a vehicle: NGSIM files are grouped by vehicle,
        so only a vehicle cut by a unit boundary is seen in two pieces."""
        assert self.quality is not None
        out: dict[str, QualityStats] = {}
        kept_parts = list(parts)
        con = open_instance(":memory:")
        try:
            con.execute("SET threads = 1")  # units already run in parallel
            for i, (path, part, rows) in enumerate(parts):
                q_dir = stage / f"quality-{i:04d}"
                q_dir.mkdir(parents=True, exist_ok=True)
                kept, stats = process_partition(
                    con,
                    [path],
                    q_dir,
                    self.ds.name,
                    self.ds.message_type,
                    self.quality,
                    row_group_size=roworder.row_group_rows(rows, ROW_GROUP_ROWS),
                )
                if kept and kept[0] != path:
                    n = stats.rows_out if stats.rows_out is not None else rows
                    kept_parts[i] = (kept[0], part, n)
                out[part] = stats
        finally:
            con.close()
        return kept_parts, out

    # -- commit (the run's thread) ---------------------------------------------------------
    def commit_message(self, batch: list[Staged[WorkUnit]]) -> str:
        return f"ingest {self.ds.name}"

    def record(
        self, con: duckdb.DuckDBPyConnection, batch: list[Staged[WorkUnit]], run: RunContext
    ) -> list[str]:
        """Record the finished units in the commit's transaction, then publish every input
        version whose units are now all committed."""
        obsolete: list[str] = []
        self._found, self._dropped, self._unshown = [], set(), []  # of an earlier attempt
        self._shown = None
        for st in batch:
            loaded: _Loaded = st.payload
            self._record_unit(con, st)
            for partition, stats in loaded.quality.items():
                record_quality(
                    con,
                    self.run_id,
                    self.ds.name,
                    self.ds.message_type,
                    f"{self.ds.name}/{partition}/{st.unit.id}",
                    stats,
                    self.quality,
                )
            loaded.published = 0
        seen: set[tuple[str, str]] = set()
        for st in batch:
            u = st.unit
            if (u.uri, u.fingerprint) in seen:
                continue
            seen.add((u.uri, u.fingerprint))
            info = InputInfo(u.uri, u.fingerprint, u.size, u.last_modified)
            if self._publish_if_complete(con, info, None, obsolete):
                st.payload.published += 1
        return obsolete

    def committed(self, staged: Staged[WorkUnit], run: RunContext) -> None:
        run.summary.inputs_published += staged.payload.published
        if not staged.payload.dropped:
            version = (staged.unit.uri, staged.unit.fingerprint)
            self._written.setdefault(version, set()).update(
                f.partition for f in staged.files if f.kind == "data"
            )
        super().committed(staged, run)

    def committed_all(self, batch: list[Staged[WorkUnit]], run: RunContext) -> None:
        """The units of versions the commit dropped as duplicates wrote nothing that stays:
        their outcomes (this run's earlier units of those versions too) say so."""
        dropped_uris = {uri for uri, _ in self._dropped}
        for st in batch:
            if (st.unit.uri, st.unit.fingerprint) in self._dropped:
                st.payload.dropped = True
                _not_kept(st.outcome)
        for o in run.summary.outcomes:
            if o.status == "complete" and o.key.rpartition("#")[0] in dropped_uris:
                _not_kept(o)
        for version in self._dropped:  # its earlier commits' partitions: nothing of it stays
            self._written.pop(version, None)
        super().committed_all(batch, run)
        run.summary.partitions_written = set().union(*self._written.values())
        self._report_found(run)

    def _report_found(self, run: RunContext) -> None:
        """After a commit: the duplicates it recorded, one summary line and a note each; the
        files of their versions that no snapshot showed are deleted (the others stay for
        the snapshots that show them, as a replaced version's)."""
        found, self._found, self._dropped = self._found, [], set()
        self.db.store.discard(self._unshown)
        self._unshown = []
        for _, line in found:
            run.summary.duplicates.append(line)
            run.progress.note(line)

    def _duplicate_line(self, uri: str, dup: datasets.Duplicate) -> str:
        here = uri + ("" if self.ds.scope == "*" else f" [{self.ds.scope}]")
        there = dup.same_as_uri + ("" if dup.same_as_scope == "*" else f" [{dup.same_as_scope}]")
        return (
            f"{here}: the same bytes as {there}, already loaded: not loaded again "
            f"(cvcatalog cache clear --source {self.ds.name}, then load the one you want, "
            "to switch)"
        )

    def protected(self) -> set[str]:
        """The run's inputs: never evicted by its own run."""
        return self._protected

    def on_error(self, error: BaseException) -> str:
        if isinstance(error, InputChangedError) or not isinstance(error, CvCatalogError | OSError):
            return "stop"  # the other units of this version cannot succeed either
        return "unit"

    def _record_unit(self, con: duckdb.DuckDBPyConnection, st: Staged[WorkUnit]) -> None:
        u, o = st.unit, st.outcome
        loaded: _Loaded = st.payload
        unit = datasets.CommittedUnit(
            self.ds.name, u.id, self.ds.scope, u.fingerprint, u.uri, u.start, u.end, o.rows,
            o.quarantined, o.skipped, o.bytes_downloaded, self.run_id, loaded.sha256,
        )  # fmt: skip
        files = [
            datasets.UnitFile(f.dest, f.partition, f.kind, f.rows, f.size, f.sha256)
            for f in st.files
        ]
        datasets.put_unit(con, unit, files, now_utc())
        counts = [("quarantine", rule, n) for rule, n in sorted(loaded.rules.items())]
        add_validation_counts(con, self.run_id, f"{self.ds.name}:{u.id}", counts)

    def _publish_if_complete(
        self,
        con: duckdb.DuckDBPyConnection,
        info: InputInfo,
        units: list[WorkUnit] | None,
        obsolete: list[str],
    ) -> bool:
        """Make this version of the input the visible one if all its units are committed
        (inside the caller's transaction); other versions' rows go, their files are
        appended to obsolete for deletion after the commit."""
        if units is None:
            units = self._units_of(info)
        if not units:
            return False
        scope = self.ds.scope
        version = datasets.InputVersion(
            self.ds.name, info.uri, scope, info.fingerprint, info.size, info.last_modified
        )
        unit_ids = [u.id for u in units]
        content = datasets.version_content(con, version, unit_ids)
        if content is None:
            return False
        dup = (
            None
            if content.sha256 is None
            else datasets.same_content(
                con, self.ds.name, info.uri, scope, info.fingerprint, content.sha256
            )
        )
        if dup is not None:
            # these bytes are shown already, under another URI: this version is not published,
            # its units and files (and any version the input had before) go in this commit
            doomed = self._drop_versions(con, info.uri, scope, [])
            shown = self._lake_files(con)
            obsolete += [p for p in doomed if p in shown]
            self._unshown += [p for p in doomed if p not in shown]
            datasets.unpublish(con, self.ds.name, info.uri, scope)
            if scope == "*":
                obsolete += self._drop_filtered(con, info.uri)
            datasets.record_duplicate(con, dup, self.run_id)
            # its units' quarantine counts went with their files (the original's stand)
            drop_validation_counts(con, self.run_id, [f"{self.ds.name}:{i}" for i in unit_ids])
            self._found.append((dup, self._duplicate_line(info.uri, dup)))
            self._dropped.add((info.uri, info.fingerprint))
            return False
        datasets.publish_input(con, version, unit_ids, self.run_id, content)
        obsolete += self._drop_versions(con, info.uri, scope, [info.fingerprint])
        obsolete += self._drop_other_units(con, info, unit_ids)
        if scope == "*":  # a whole load supersedes filtered loads of the same input
            obsolete += self._drop_filtered(con, info.uri)
            if content.sha256 is not None:  # ... and of the same bytes under another URI
                obsolete += self._supersede_copies(con, info, content.sha256)
        return True

    def _lake_files(self, con: duckdb.DuckDBPyConnection) -> set[str]:
        """The lake's files (db.lake_files), read once in a write: its block writes state
        alone, so they stay the same until the write's end."""
        if self._shown is None:
            self._shown = self.db.lake_files(con)
        return self._shown

    def _drop_filtered(self, con: duckdb.DuckDBPyConnection, uri: str) -> list[str]:
        """Unpublish and forget the filtered loads (scopes other than '*') of uri."""
        obsolete: list[str] = []
        for other in datasets.filtered_scopes(con, self.ds.name, uri):
            obsolete += self._drop_versions(con, uri, other, [])
            datasets.unpublish(con, self.ds.name, uri, other)
        return obsolete

    def _supersede_copies(
        self, con: duckdb.DuckDBPyConnection, info: InputInfo, sha256: str
    ) -> list[str]:
        """A whole load covers the filtered loads of the same bytes under other URIs: they go
        (their rows would be shown twice) and are recorded as duplicates of this one."""
        obsolete: list[str] = []
        for uri, scope, fingerprint in datasets.filtered_same_content(
            con, self.ds.name, info.uri, sha256
        ):
            obsolete += self._drop_versions(con, uri, scope, [])
            datasets.unpublish(con, self.ds.name, uri, scope)
            dup = datasets.Duplicate(
                self.ds.name, uri, scope, fingerprint, info.uri, "*", info.fingerprint, sha256
            )
            datasets.record_duplicate(con, dup, self.run_id)
            self._found.append(
                (
                    dup,
                    f"{uri} [{scope}]: the same bytes as {info.uri}, now loaded whole: its "
                    f"{scope} load is dropped (its rows are {info.uri}'s)",
                )
            )
        return obsolete

    def _units_of(self, info: InputInfo) -> list[WorkUnit]:
        if self._unit_cache is None:
            return []
        return [
            u for u in self._unit_cache if u.uri == info.uri and u.fingerprint == info.fingerprint
        ]

    def _drop_versions(
        self, con: duckdb.DuckDBPyConnection, uri: str, scope: str, keep: list[str]
    ) -> list[str]:
        """Forget units and files of (uri, scope) whose fingerprint is not in keep."""
        return datasets.forget_units(
            con,
            "dataset = ? AND uri = ? AND scope = ? AND NOT list_contains(?, fingerprint)",
            [self.ds.name, uri, scope, keep],
        )

    def _drop_other_units(
        self, con: duckdb.DuckDBPyConnection, info: InputInfo, keep: list[str]
    ) -> list[str]:
        """Forget units of this version that are not among keep (an earlier run cut the input
        with another unit size); their rows are covered by keep's."""
        return datasets.forget_units(
            con,
            "dataset = ? AND uri = ? AND scope = ? AND fingerprint = ? "
            "AND NOT list_contains(?, unit_id)",
            [self.ds.name, info.uri, self.ds.scope, info.fingerprint, keep],
        )


def load(
    dataset: Dataset,
    db: CatalogDB,
    *,
    workers: int = 4,
    retry: RetryPolicy | None = None,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
    quality: QualityConfig | None = None,
    max_size_gb: float | None = None,
    snapshot_retention_days: float | None = None,
) -> Summary:
    """Load a dataset into a catalog through the pipeline (see the module docstring).

    retry: the one retry policy (default: s3.RetryPolicy(), as download.retry_attempts and
    retry_delay_seconds default). max_size_gb: cache.max_size_gb, kept at the end of a run
    that loaded something as a CV ingest keeps it (the runner's eviction; None: no limit).
    snapshot_retention_days: cache.snapshot_retention_days, after which a run that wrote a
    partition expires the older snapshots as a CV ingest does (None: it expires none)."""
    register_dataset(type(dataset))
    run_id = new_run_id()
    source = DatasetUnits(
        dataset, db, run_id=run_id, workers=workers, quality=quality, max_size_gb=max_size_gb,
        snapshot_retention_days=snapshot_retention_days,
    )  # fmt: skip
    return Runner(source, db, progress=progress, retry=retry, sleep=sleep, run_id=run_id).run()


def clear_staging(paths: CatalogPaths, name: str) -> None:
    """Remove every staging directory of a dataset (nothing there is ever needed again)."""
    shutil.rmtree(paths.staging / "datasets" / name, ignore_errors=True)


#: GIL switch interval while units run in parallel
GIL_SLICE_S = 0.001


@contextlib.contextmanager
def _short_gil_slices(workers: int) -> Iterator[None]:
    """Parsing a block is hundreds of short native calls (CSV, compute kernels, pyproj,
    Parquet) that each release and retake the GIL. With CPython's default 5 ms switch
    interval a thread coming back from one waits for the other thread's whole slice (the
    convoy effect): two workers could run slower than one. Shorter slices while the pool
    runs (restored after) let both threads progress (A/B in docs/ngsim.md, Performance)."""
    old = sys.getswitchinterval()
    if workers > 1:
        sys.setswitchinterval(min(old, GIL_SLICE_S))
    try:
        yield
    finally:
        sys.setswitchinterval(old)


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    """Units allocate many short-lived objects, so the cyclic GC runs often, and each full
    collection walked every object the imports left (pandas, pyarrow, duckdb...). Frozen
    while units run, that heap is skipped; unfrozen after, so its cycles are collected again.
    A heap the process froze itself (a server that preloads, a test runner) is left as it is:
    gc.unfreeze() would undo that freeze too, and its full collections would walk it again."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _split(
    batch: pa.RecordBatch, keys: tuple[str, ...]
) -> Iterator[tuple[tuple[Any, ...], pa.RecordBatch]]:
    """The batch's rows grouped by the values of the partition columns."""
    if not keys:
        yield (), batch
        return
    combos = pa.Table.from_batches([batch]).group_by(list(keys)).aggregate([])
    if combos.num_rows == 1:
        yield tuple(combos[k][0].as_py() for k in keys), batch
        return
    for i in range(combos.num_rows):
        values = tuple(combos[k][i].as_py() for k in keys)
        mask = None
        for k, v in zip(keys, values, strict=True):
            m = (
                pc.is_null(batch[k])
                if v is None
                else pc.equal(batch[k], pa.scalar(v, batch.schema.field(k).type))
            )
            mask = m if mask is None else pc.and_(mask, m)
        yield values, batch.filter(mask)


def _partition_dir(keys: tuple[str, ...], values: tuple[Any, ...]) -> str:
    parts = []
    for k, v in zip(keys, values, strict=True):
        text = "__null__" if v is None else str(v)
        if not _SAFE_VALUE.match(text) or text in (".", ".."):
            raise ConversionError(f"partition value {k}={text!r} cannot be a directory name")
        parts.append(f"{k}={text}")
    return "/".join(parts)


def parquet_options(schema: pa.Schema, plain: tuple[str, ...] = ()) -> dict[str, Any]:
    """The ParquetWriter settings of a dataset's files, the loader's and compaction's alike (a
    merged file is no larger than its parts): zstd at ZSTD_LEVEL, doubles split into byte
    streams (those of smooth trajectories compress far better so), dictionaries for the other
    columns but the plain ones."""
    floats = [f.name for f in schema if pa.types.is_floating(f.type)]
    return {
        "compression": "zstd",
        "compression_level": ZSTD_LEVEL,
        "use_byte_stream_split": floats,
        "use_dictionary": [f.name for f in schema if f.name not in floats and f.name not in plain],
        "write_statistics": True,
    }


def _sort_order(table: pa.Table, columns: tuple[str, ...]) -> np.ndarray | None:
    """Row order sorting the table by columns (ascending), or None if it is
    sorted already. Strings are ranked through their distinct values (a few thousand ids
    among a million rows), so the sort itself is an integer lexsort."""
    keys: list[np.ndarray] = []
    for name in columns:
        col = table[name].combine_chunks()
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            enc = pc.dictionary_encode(col)
            ranks = np.empty(len(enc.dictionary), np.int64)
            ranks[pc.sort_indices(enc.dictionary).to_numpy()] = np.arange(len(enc.dictionary))
            ranks = np.append(ranks, -1)  # null
            idx = pc.fill_null(enc.indices, len(enc.dictionary)).to_numpy()
            keys.append(ranks[idx])
        else:
            if pa.types.is_temporal(col.type):
                col = col.cast(pa.int64())
            if col.null_count:  # NULLs sort with the smallest values
                low = pc.min(col)
                col = pc.fill_null(col, low if low.is_valid else pa.scalar(0, col.type))
            keys.append(col.to_numpy(zero_copy_only=False))
    if not keys or table.num_rows < 2:
        return None
    order = np.lexsort(keys[::-1])
    if (order[1:] > order[:-1]).all():
        return None
    return order


def _not_kept(outcome: Outcome) -> None:
    """A unit whose version was dropped as a duplicate: nothing it wrote stays (its rows are
    another input's), though it was read."""
    outcome.rows = outcome.quarantined = outcome.skipped = outcome.parquet_bytes = 0
    outcome.detail = "duplicate"
