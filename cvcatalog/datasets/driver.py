"""The generic loader: any Dataset into the catalog, concurrently, resumably, incrementally.

Per run: list the inputs (one request each) and cut them into units; skip units already
committed for the same input version (fingerprint); fetch + parse + write the rest on a thread
pool with at most `workers` units in flight (memory stays flat whatever the input size), each
unit retried with exponential backoff and full jitter on transient errors; then, in the main
thread, move each finished unit's files into the lake and commit the unit in ONE catalog
transaction. That transaction is the checkpoint: a killed run loses at most the units in
flight, and the next run starts after the last commit.

Versions: the views show, per input, only the version recorded in dataset_inputs. Units of a
new version are committed (checkpointed) but stay invisible until the transaction committing
the input's last unit publishes the version: it switches the view to the new files and drops
the old ones together, so a view never shows half old, half new data.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import http.client
import os
import re
import shutil
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import duckdb
import filelock
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cvcatalog.datasets.base import (
    Dataset,
    InputChangedError,
    InputInfo,
    Rejects,
    TransientFetchError,
    WorkUnit,
)
from cvcatalog.datasets.manage import forget_units
from cvcatalog.exceptions import CatalogLockedError, ConversionError, CvCatalogError
from cvcatalog.io.layout import CatalogPaths, remove_tree, sha256_file
from cvcatalog.io.s3 import ErrorKind, backoff_delay, classify_error
from cvcatalog.quality.config import QualityConfig
from cvcatalog.quality.rules import QualityStats, process_partition
from cvcatalog.quality.rules import record as record_quality
from cvcatalog.state.db import CatalogDB, now_utc
from cvcatalog.state.tables import register_dataset

ROW_GROUP_ROWS = 131_072
#: rows of one partition a unit holds in memory to sort before writing them (bounds memory
#: per unit in flight whatever the unit size; a unit of 64 MiB of NGSIM CSV is ~0.5 M rows)
SORT_ROWS = 1_500_000
#: zstd 3: within 1-2 % of level 9's size on trajectories at a third of the time
ZSTD_LEVEL = 3
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9._:+-]+$")


class DatasetProgress(Protocol):
    def planned(self, units: int, todo: int, nbytes: int) -> None: ...
    def fetched(self, nbytes: int) -> None: ...
    def unit_done(self, unit: WorkUnit, rows: int) -> None: ...
    def note(self, message: str) -> None: ...


class NullDatasetProgress:
    def planned(self, units: int, todo: int, nbytes: int) -> None:
        pass

    def fetched(self, nbytes: int) -> None:
        pass

    def unit_done(self, unit: WorkUnit, rows: int) -> None:
        pass

    def note(self, message: str) -> None:
        pass


@dataclass(frozen=True)
class StagedFile:
    path: Path
    partition: str
    kind: str  # data | quarantine
    rows: int
    #: hex SHA-256 of the final bytes, computed by the worker (off the committing thread)
    sha256: str | None = None


@dataclass
class UnitResult:
    unit: WorkUnit
    rows: int
    quarantined: int
    skipped: int
    fetched_bytes: int
    files: list[StagedFile]
    rules: Counter[str]
    attempts: int
    #: quality counts per partition of the unit (when a quality config is given)
    quality: dict[str, QualityStats] = field(default_factory=dict)


@dataclass
class DatasetSummary:
    """What one run did; `ok` is False if any unit failed."""

    dataset: str
    run_id: str
    scope: str
    inputs: int = 0
    units: int = 0
    units_done: int = 0  # committed by this run
    units_cached: int = 0  # already committed for the same version
    units_failed: int = 0
    inputs_published: int = 0  # versions that became visible in this run
    rows: int = 0
    quarantined: int = 0
    skipped: int = 0
    bytes_downloaded: int = 0
    parquet_bytes: int = 0
    retries: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    #: inputs by what changed since the published version: added / changed / unchanged
    inputs_by_change: Counter[str] = field(default_factory=Counter)
    #: partitions (location=.../date=...) that received files in this run
    partitions_written: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "run_id": self.run_id,
            "scope": self.scope,
            "inputs": self.inputs,
            "units": self.units,
            "units_done": self.units_done,
            "units_cached": self.units_cached,
            "units_failed": self.units_failed,
            "inputs_published": self.inputs_published,
            "rows": self.rows,
            "quarantined": self.quarantined,
            "skipped": self.skipped,
            "bytes_downloaded": self.bytes_downloaded,
            "parquet_bytes": self.parquet_bytes,
            "retries": self.retries,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows / self.seconds) if self.seconds else 0,
            "errors": self.errors,
            "inputs_added": self.inputs_by_change["added"],
            "inputs_changed": self.inputs_by_change["changed"],
            "inputs_unchanged": self.inputs_by_change["unchanged"],
            "partitions_written": len(self.partitions_written),
        }


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt: network trouble, throttling, 5xx."""
    if isinstance(exc, TransientFetchError):
        return True
    if isinstance(exc, CvCatalogError):
        return False
    info = classify_error(exc)
    if info is not None:
        return info.kind is ErrorKind.RETRYABLE
    return isinstance(exc, ConnectionError | TimeoutError | http.client.HTTPException)


class _Stopped(Exception):
    """A unit abandoned because the run is stopping (not a failure of that unit)."""


def _short_hash(*parts: str, n: int = 12) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:n]


class DatasetLoader:
    """Runs one Dataset into one catalog (see the module docstring)."""

    def __init__(
        self,
        dataset: Dataset,
        db: CatalogDB,
        *,
        workers: int = 4,
        retries: int = 3,
        retry_delay: float = 0.5,
        progress: DatasetProgress | None = None,
        sleep: Callable[[float], None] = time.sleep,
        quality: QualityConfig | None = None,
    ) -> None:
        self.ds = dataset
        self.db = db
        self.paths: CatalogPaths = db.paths
        self.workers = max(1, workers)
        self.retries = max(0, retries)
        self.retry_delay = retry_delay
        self.progress = progress or NullDatasetProgress()
        self.sleep = sleep
        #: the quality step (cvcatalog.quality) on each unit's files; None: skipped
        self.quality = quality
        self.run_id = now_utc().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        self._stop = threading.Event()
        self._unit_cache: list[WorkUnit] | None = None

    # -- paths ---------------------------------------------------------------------------
    @property
    def _lake(self) -> Path:
        return self.paths.root / self._lake_rel

    @property
    def _quarantine(self) -> Path:
        return self.paths.quarantine / f"source={self.ds.name}"

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
        return self.paths.root / "locks" / "datasets" / f"{self.ds.name}.lock"

    # -- run -----------------------------------------------------------------------------
    def run(self) -> DatasetSummary:
        self.paths.ensure()
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
            return self._run()
        finally:
            lock.release()

    def _run(self) -> DatasetSummary:
        t0 = time.monotonic()
        s = DatasetSummary(self.ds.name, self.run_id, self.ds.scope)
        self._record_start()
        try:
            inputs = self.ds.inputs()
            s.inputs = len(inputs)
            todo = self._plan(inputs, s)
            self.progress.planned(s.units, len(todo), sum(u.end - u.start for u in todo))
            self._execute(todo, s)
        except CvCatalogError as e:
            s.errors.append(str(e))
        except BaseException as e:
            s.seconds = time.monotonic() - t0
            self._record_end(s, "interrupted" if isinstance(e, KeyboardInterrupt) else "failed")
            raise
        finally:
            remove_tree(self._staging / self.run_id)
        s.seconds = time.monotonic() - t0
        self._record_end(s, "ok" if s.ok else "failed")
        return s

    def _plan(self, inputs: list[InputInfo], s: DatasetSummary) -> list[WorkUnit]:
        """Units still to do; tidies what earlier runs left (stale versions, orphans)."""
        scope = self.ds.scope
        with self.db.read() as con:
            done = {
                (r[0], r[1])
                for r in con.execute(
                    "SELECT unit_id, fingerprint FROM dataset_units WHERE dataset = ? AND scope = ?",
                    [self.ds.name, scope],
                ).fetchall()
            }
            published = {
                (r[0], r[1]): r[2]
                for r in con.execute(
                    "SELECT uri, scope, fingerprint FROM dataset_inputs WHERE dataset = ?",
                    [self.ds.name],
                ).fetchall()
            }
        todo_inputs = []
        for info in inputs:
            before = published.get((info.uri, scope))
            kind = (
                "added"
                if before is None
                else "unchanged"
                if before == info.fingerprint
                else "changed"
            )
            s.inputs_by_change[kind] += 1
            if scope != "*" and published.get((info.uri, "*")) == info.fingerprint:
                self.progress.note(
                    f"{info.uri} is already loaded whole (without a filter); nothing to do"
                )
                continue
            todo_inputs.append(info)
        units = self.ds.units(todo_inputs)
        self._unit_cache = units
        s.units = len(units)
        todo = [u for u in units if (u.id, u.fingerprint) not in done]
        s.units_cached = len(units) - len(todo)
        self._tidy(todo_inputs, units, published)
        return todo

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
        with self.db.write(run_id=self.run_id, message=f"{self.ds.name} tidy") as con:
            for info in inputs:
                keep = [info.fingerprint]
                if (info.uri, scope) in published:
                    keep.append(published[(info.uri, scope)])
                obsolete += self._drop_versions(con, info.uri, scope, keep)
            changed = False
            for info in inputs:
                if published.get((info.uri, scope)) != info.fingerprint:
                    changed |= self._publish_if_complete(
                        con, info, by_uri.get(info.uri, []), obsolete
                    )
            known = {r[0] for r in con.execute("SELECT path FROM dataset_files").fetchall()}
            known |= self.db.lake_files(con)
        self.db.retire(obsolete)
        store = self.db.store
        for top in (self._lake_rel, self._quarantine_rel):
            for rel in store.list_files(top):
                if rel not in known:
                    with contextlib.suppress(CvCatalogError, OSError):
                        store.delete(rel)

    def _execute(self, todo: list[WorkUnit], s: DatasetSummary) -> None:
        if not todo:
            return
        pending = iter(todo)
        running: dict[Future[UnitResult], WorkUnit] = {}
        with (
            _short_gil_slices(self.workers),
            _frozen_heap(),
            ThreadPoolExecutor(self.workers, thread_name_prefix=f"{self.ds.name}-unit") as pool,
        ):

            def submit_next() -> None:
                if self._stop.is_set():
                    return
                unit = next(pending, None)
                if unit is not None:
                    running[pool.submit(self._process, unit)] = unit

            for _ in range(self.workers):
                submit_next()
            try:
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    finished: list[UnitResult] = []
                    for fut in done:
                        unit = running.pop(fut)
                        try:
                            finished.append(fut.result())
                        except _Stopped:
                            pass  # left for the next run
                        except CvCatalogError as e:
                            self._failed(unit, e, s)
                        except Exception as e:  # a bug or a disk error: say which unit
                            self._failed(unit, e, s)
                    # keep the workers busy while the main thread commits (finished units
                    # wait as files in staging, not in memory)
                    for _ in done:
                        submit_next()
                    if finished:
                        try:
                            self._commit(finished, s)
                        except CvCatalogError as e:
                            for r in finished:
                                self._failed(r.unit, e, s)
            except BaseException:
                self._stop.set()
                for fut in running:
                    fut.cancel()
                raise

    def _failed(self, unit: WorkUnit, e: BaseException, s: DatasetSummary) -> None:
        s.units_failed += 1
        what = str(e) if isinstance(e, CvCatalogError) else f"{type(e).__name__}: {e}"
        s.errors.append(f"{unit.id}: {what}")
        if isinstance(e, InputChangedError) or not isinstance(e, CvCatalogError | OSError):
            self._stop.set()  # the other units of this version cannot succeed either

    # -- one unit (worker threads) -------------------------------------------------------
    def _process(self, unit: WorkUnit) -> UnitResult:
        attempt = 0
        while True:
            attempt += 1
            stage = self._staging / self.run_id / _short_hash(self.ds.scope, unit.id)
            remove_tree(stage)
            stage.mkdir(parents=True)
            try:
                result = self._load_unit(unit, stage)
                result.attempts = attempt
                return result
            except Exception as e:
                remove_tree(stage)
                if self._stop.is_set() or not is_transient(e) or attempt > self.retries:
                    if is_transient(e):
                        raise TransientFetchError(
                            f"{e} (after {attempt} attempt{'s' if attempt > 1 else ''})"
                        ) from None
                    raise
                delay = backoff_delay(attempt, self.retry_delay)
                self.progress.note(f"{unit.id}: {e}; retrying in {delay:.1f}s")
                self.sleep(delay)

    def _load_unit(self, unit: WorkUnit, stage: Path) -> UnitResult:
        fetched = 0

        def counted(chunks: Iterator[bytes]) -> Iterator[bytes]:
            nonlocal fetched
            try:
                for chunk in chunks:
                    if self._stop.is_set():
                        raise _Stopped
                    fetched += len(chunk)
                    self.progress.fetched(len(chunk))
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
                    path,
                    storage,
                    compression="zstd",
                    compression_level=ZSTD_LEVEL,
                    use_byte_stream_split=_float_columns(storage),
                    use_dictionary=_dictionary_columns(storage, self.ds.plain_columns),
                    write_statistics=True,
                )
                w = writers[values] = (writer, path, [0])
            table = pa.Table.from_batches(batches).select(storage.names)
            del batches[:]
            if self.ds.sort_by:
                order = _sort_order(table, self.ds.sort_by)
                if order is not None:
                    table = table.take(order)
            w[0].write_table(table, row_group_size=ROW_GROUP_ROWS)
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
        files = [
            StagedFile(path, _partition_dir(keys, values), "data", rows[0])
            for values, (_, path, rows) in writers.items()
        ]
        checked = self._quality_step(files, stage) if self.quality is not None else {}
        if qfile is not None:
            files.append(
                StagedFile(qfile, f"input={_short_hash(unit.uri)}", "quarantine", rejects.total)
            )
        # hashed here, while the file is in the page cache and the other workers run, rather
        # than in the main thread's commit, which every worker's next checkpoint waits for
        files = [replace(f, sha256=sha256_file(f.path)) for f in files]
        return UnitResult(
            unit,
            sum(f.rows for f in files if f.kind == "data"),
            rejects.total,
            rejects.skipped,
            fetched,
            files,
            Counter(rejects.counts),
            1,
            checked,
        )

    def _quality_step(self, files: list[StagedFile], stage: Path) -> dict[str, QualityStats]:
        """Count the quality rules on each of the unit's partition files and, with cleaning on,
        replace the file by its cleaned rows (still sorted). Trajectory windows (ordering,
        gaps, smoothing) see the unit's rows of a vehicle: NGSIM files are grouped by vehicle,
        so only a vehicle cut by a unit boundary is seen in two pieces."""
        assert self.quality is not None
        out: dict[str, QualityStats] = {}
        con = duckdb.connect(":memory:")
        try:
            con.execute("SET threads = 1")  # units already run in parallel
            for i, f in enumerate(files):
                q_dir = stage / f"quality-{i:04d}"
                q_dir.mkdir(parents=True, exist_ok=True)
                kept, stats = process_partition(
                    con,
                    [f.path],
                    q_dir,
                    self.ds.name,
                    self.ds.message_type,
                    self.quality,
                    row_group_size=ROW_GROUP_ROWS,
                )
                if kept and kept[0] != f.path:
                    rows = stats.rows_out if stats.rows_out is not None else f.rows
                    files[i] = StagedFile(kept[0], f.partition, f.kind, rows)
                out[f.partition] = stats
        finally:
            con.close()
        return out

    # -- commit (main thread) ------------------------------------------------------------
    def _commit(self, results: list[UnitResult], s: DatasetSummary) -> None:
        """Place the finished units' files in the lake (local or S3), then record all of them
        in ONE catalog transaction (each transaction copies and fsyncs the database, so units
        that finish together are checkpointed together)."""
        store = self.db.store
        placed: dict[str, list[tuple[str, StagedFile, int, str]]] = {}
        published = 0
        try:
            for r in results:
                u = r.unit
                # never a name the lake used before: a file of an older snapshot may still
                # be kept (and later deleted) under it
                tag = _short_hash(self.ds.scope, u.id, u.fingerprint, self.run_id)
                mine = placed.setdefault(u.id, [])
                for f in r.files:
                    top = self._lake_rel if f.kind == "data" else self._quarantine_rel
                    suffix = "parquet" if f.kind == "data" else "ndjson"
                    rel = f"{top}/{f.partition}/part-{u.index:05d}-{tag}.{suffix}"
                    size = f.path.stat().st_size
                    digest = f.sha256 or sha256_file(f.path)
                    store.put(f.path, rel, size, digest)
                    mine.append((rel, f, size, digest))
            obsolete: list[str] = []
            with self.db.write(run_id=self.run_id, message=f"ingest {self.ds.name}") as con:
                for r in results:
                    self._record_unit(con, r, placed[r.unit.id])
                    for partition, stats in r.quality.items():
                        record_quality(
                            con,
                            self.run_id,
                            self.ds.name,
                            self.ds.message_type,
                            f"{self.ds.name}/{partition}/{r.unit.id}",
                            stats,
                            self.quality,
                        )
                seen: set[tuple[str, str]] = set()
                for r in results:
                    u = r.unit
                    if (u.uri, u.fingerprint) in seen:
                        continue
                    seen.add((u.uri, u.fingerprint))
                    info = InputInfo(u.uri, u.fingerprint, u.size, u.last_modified)
                    if self._publish_if_complete(con, info, None, obsolete):
                        published += 1
        except BaseException:
            # never named by a committed row
            self.db.store.discard([p for files in placed.values() for p, *_ in files])
            raise
        self.db.retire(obsolete)
        s.inputs_published += published
        for r in results:
            s.partitions_written.update(f.partition for f in r.files if f.kind == "data")
            s.units_done += 1
            s.rows += r.rows
            s.quarantined += r.quarantined
            s.skipped += r.skipped
            s.bytes_downloaded += r.fetched_bytes
            s.parquet_bytes += sum(size for _, f, size, _ in placed[r.unit.id] if f.kind == "data")
            s.retries += r.attempts - 1
            self.progress.unit_done(r.unit, r.rows)

    def _record_unit(
        self,
        con: duckdb.DuckDBPyConnection,
        r: UnitResult,
        placed: list[tuple[str, StagedFile, int, str]],
    ) -> None:
        u, scope, now = r.unit, self.ds.scope, now_utc()
        key = [self.ds.name, u.id, scope, u.fingerprint]
        # rows of an earlier commit of this same unit version go; its files share the names
        forget_units(con, "dataset = ? AND unit_id = ? AND scope = ? AND fingerprint = ?", key)
        con.execute(
            "INSERT INTO dataset_units (dataset, unit_id, scope, fingerprint, uri, start_byte, "
            "end_byte, status, rows, quarantined, skipped, bytes, run_id, committed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'complete', ?, ?, ?, ?, ?, ?)",
            [
                *key,
                u.uri,
                u.start,
                u.end,
                r.rows,
                r.quarantined,
                r.skipped,
                r.fetched_bytes,
                self.run_id,
                now,
            ],
        )
        if placed:
            con.executemany(
                "INSERT INTO dataset_files (path, dataset, uri, scope, fingerprint, unit_id, "
                "partition, kind, rows, bytes, sha256, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    [
                        path,
                        self.ds.name,
                        u.uri,
                        scope,
                        u.fingerprint,
                        u.id,
                        f.partition,
                        f.kind,
                        f.rows,
                        size,
                        digest,
                        now,
                    ]
                    for path, f, size, digest in placed
                ],
            )
        rows = [
            [self.run_id, f"{self.ds.name}/{u.id}", "quarantine", rule, n]
            for rule, n in sorted(r.rules.items())
            if n
        ]
        if rows:
            con.executemany("INSERT INTO validation_reports VALUES (?, ?, ?, ?, ?)", rows)

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
        row = con.execute(
            "SELECT count(*), coalesce(sum(rows), 0), coalesce(sum(quarantined), 0) "
            "FROM dataset_units WHERE dataset = ? AND scope = ? AND fingerprint = ? "
            "AND list_contains(?, unit_id)",
            [self.ds.name, scope, info.fingerprint, [u.id for u in units]],
        ).fetchone()
        if row is None or row[0] < len(units):
            return False
        con.execute(
            "DELETE FROM dataset_inputs WHERE dataset = ? AND uri = ? AND scope = ?",
            [self.ds.name, info.uri, scope],
        )
        con.execute(
            "INSERT INTO dataset_inputs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                self.ds.name,
                info.uri,
                scope,
                info.fingerprint,
                info.size,
                info.last_modified,
                len(units),
                row[1],
                row[2],
                self.run_id,
                now_utc(),
            ],
        )
        obsolete += self._drop_versions(con, info.uri, scope, [info.fingerprint])
        obsolete += self._drop_other_units(con, info, [u.id for u in units])
        if scope == "*":  # a whole load supersedes filtered loads of the same input
            others = [
                r[0]
                for r in con.execute(
                    "SELECT DISTINCT scope FROM dataset_inputs WHERE dataset = ? AND uri = ? "
                    "AND scope <> '*'",
                    [self.ds.name, info.uri],
                ).fetchall()
            ]
            for other in others:
                obsolete += self._drop_versions(con, info.uri, other, [])
                con.execute(
                    "DELETE FROM dataset_inputs WHERE dataset = ? AND uri = ? AND scope = ?",
                    [self.ds.name, info.uri, other],
                )
        return True

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
        return forget_units(
            con,
            "dataset = ? AND uri = ? AND scope = ? AND NOT list_contains(?, fingerprint)",
            [self.ds.name, uri, scope, keep],
        )

    def _drop_other_units(
        self, con: duckdb.DuckDBPyConnection, info: InputInfo, keep: list[str]
    ) -> list[str]:
        """Forget units of this version that are not among keep (an earlier run cut the input
        with another unit size); their rows are covered by keep's."""
        return forget_units(
            con,
            "dataset = ? AND uri = ? AND scope = ? AND fingerprint = ? "
            "AND NOT list_contains(?, unit_id)",
            [self.ds.name, info.uri, self.ds.scope, info.fingerprint, keep],
        )

    # -- bookkeeping -----------------------------------------------------------------------
    def _record_start(self) -> None:
        from cvcatalog.ingest import _mark_interrupted_runs
        from cvcatalog.state.manifest import start_run

        with self.db.write() as con:
            _mark_interrupted_runs(con, socket.gethostname())
            start_run(
                con,
                {
                    "run_id": self.run_id,
                    "started_at": now_utc(),
                    "status": "running",
                    "source": self.ds.name,
                    "message_type": self.ds.message_type,
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                },
            )

    def _record_end(self, s: DatasetSummary, status: str) -> None:
        from cvcatalog.state.manifest import finish_run

        values = {
            "finished_at": now_utc(),
            "status": status,
            "days_complete": s.units_done,
            "days_failed": s.units_failed,
            "days_cached": s.units_cached,
            "rows": s.rows,
            "quarantined": s.quarantined,
            "bytes_downloaded": s.bytes_downloaded,
            "parquet_bytes": s.parquet_bytes,
            "seconds": s.seconds,
            "message": "; ".join(s.errors)[:2000] or None,
            # `cvcatalog runs`: a dataset's "objects" are its inputs (files)
            "mode": "incremental",
            "objects_added": s.inputs_by_change["added"],
            "objects_changed": s.inputs_by_change["changed"],
            "objects_unchanged": s.inputs_by_change["unchanged"],
            "partitions_rewritten": len(s.partitions_written),
        }
        try:
            with self.db.write() as con:
                finish_run(con, self.run_id, values)
        except CvCatalogError as e:
            self.progress.note(f"the run's end was not recorded: {e}")


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
    while units run, that heap is skipped; unfrozen after, so its cycles are collected again."""
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


def _float_columns(schema: pa.Schema) -> list[str]:
    """Doubles of smooth trajectories compress far better split into byte streams."""
    return [f.name for f in schema if pa.types.is_floating(f.type)]


def _dictionary_columns(schema: pa.Schema, plain: tuple[str, ...] = ()) -> list[str]:
    return [f.name for f in schema if not pa.types.is_floating(f.type) and f.name not in plain]


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


def run_dataset(dataset: Dataset, db: CatalogDB, **kwargs: Any) -> DatasetSummary:
    """Load a dataset into a catalog; see DatasetLoader."""
    register_dataset(type(dataset))
    return DatasetLoader(dataset, db, **kwargs).run()


def clear_staging(paths: CatalogPaths, name: str) -> None:
    """Remove every staging directory of a dataset (nothing there is ever needed again)."""
    shutil.rmtree(paths.staging / "datasets" / name, ignore_errors=True)
