"""The contract every dataset outside the CV Pilot bucket implements (NGSIM today).

A dataset says what its inputs are, cuts them into units of work (byte ranges), fetches one
unit's bytes, and parses them into Arrow batches of its canonical schema (partition columns
included). Everything else -- Parquet, quarantine, checkpoints and change detection -- is the NGSIM-style
loading side in :mod:`cvcatalog.sources.ngsim`, and concurrency, retries, progress, commits and
the run record are the one pipeline's (:mod:`cvcatalog.pipeline`).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, ClassVar

import pyarrow as pa

from cvcatalog.exceptions import CvCatalogError
from cvcatalog.io.inputs import InputInfo
from cvcatalog.io.quarantine import entry_line, with_category

__all__ = [
    "Dataset",
    "Rejects",
    "WorkUnit",
    "duckdb_type",
]


@dataclass(frozen=True)
class WorkUnit:
    """One byte range [start, end) of one version of one input; id is stable across runs."""

    id: str
    uri: str
    start: int
    end: int
    fingerprint: str
    size: int | None
    last_modified: datetime | None
    index: int = 0


class Rejects:
    """Rows a parser refuses, each with a rule, a reason and the original line (never lost).

    Lines go to an NDJSON file opened on the first reject, as quarantine entries of the one
    shape (:mod:`cvcatalog.io.quarantine`: the input's URI as source_key, the line's byte
    offset in it, the rule and the unit); counts per rule feed validation_reports.
    Thread-safe (pyarrow's CSV reader calls back from its threads).
    """

    def __init__(self, path: Path, unit: WorkUnit) -> None:
        self.path = path
        self.unit = unit
        self.counts: Counter[str] = Counter()
        self.skipped = 0  # rows left out on purpose (a filter), not errors
        self._file: IO[str] | None = None
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, rule: str, reason: str, line: bytes, offset: int) -> None:
        """One refused line (without its line break), which starts offset bytes into the
        unit's input. A unit does not know how many lines come before it, so the entry's
        line number is null and byte_offset says where the line is."""
        text = entry_line(
            self.unit.uri,
            None,
            with_category(rule, reason),
            line.rstrip(b"\r\n"),
            byte_offset=offset,
            rule=rule,
            unit=self.unit.id,
        )
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
            self._file.write(text)
            self.counts[rule] += 1

    def skip(self, n: int) -> None:
        with self._lock:
            self.skipped += n

    def close(self) -> Path | None:
        """Close the file; returns its path if anything was rejected."""
        with self._lock:
            if self._file is None:
                return None
            self._file.close()
            self._file = None
            return self.path


class Dataset(ABC):
    """A source of rows for the catalog: inputs -> units -> bytes -> canonical Arrow batches."""

    #: catalog name of the dataset (lake/source=<name>/..., ingest_runs.source)
    name: ClassVar[str]
    #: what ingest_runs.message_type records
    message_type: ClassVar[str] = "TRAJECTORY"
    #: canonical columns, partition columns included
    arrow_schema: ClassVar[pa.Schema]
    #: hive partition columns, outermost first; their values become directory names
    partition_by: ClassVar[tuple[str, ...]]
    #: the view over the published files
    view_name: ClassVar[str]
    #: rows of each written file are ordered by these columns (runs of similar values
    #: compress, and row-group statistics let a query for one key skip the rest); () keeps
    #: the input order
    sort_by: ClassVar[tuple[str, ...]] = ()
    #: high-cardinality non-float columns written without a dictionary (trying one for a
    #: column of mostly distinct values costs time and falls back to plain anyway)
    plain_columns: ClassVar[tuple[str, ...]] = ()

    #: input URIs to load
    uris: list[str]

    @property
    def scope(self) -> str:
        """'*', or the row filter this instance applies (loads with different scopes coexist)."""
        return "*"

    @classmethod
    def options_for_scope(cls, scope: str) -> dict[str, Any]:
        """Constructor keywords that load with the given scope again (repairs re-fetch with
        them)."""
        return {}

    @classmethod
    def partition_value(cls, column: str, value: str) -> str:
        """A value of a partition column as a reader names it (`to_dask(location=...)`), as
        the files name it; a value the dataset cannot have is a ConfigError naming the valid
        ones (a mistake, not an empty frame). Default: stripped, lower case."""
        return value.strip().lower()

    @abstractmethod
    def inputs(self) -> list[InputInfo]:
        """Describe every input (one request each): URI, fingerprint, size."""

    @abstractmethod
    def units(
        self, inputs: list[InputInfo], unit_sizes: Mapping[str, int] | None = None
    ) -> list[WorkUnit]:
        """Cut the inputs into units of work with stable ids. unit_sizes: uri -> the unit size
        an input was cut with when some of its units were committed (this version of it), so
        a run asking for another size still finds them."""

    @abstractmethod
    def fetch(self, unit: WorkUnit) -> Iterator[bytes]:
        """The unit's bytes as chunks (it may yield more than the range; parse stops early).

        Raise TransientFetchError (or a network exception) for failures worth a retry."""

    @abstractmethod
    def parse(
        self, unit: WorkUnit, data: Iterator[bytes], rejects: Rejects
    ) -> Iterator[pa.RecordBatch]:
        """Canonical batches (arrow_schema) of the unit's rows; bad rows go to rejects."""

    def fetch_offset(self, unit: WorkUnit) -> int:
        """Where in the input the first byte fetch(unit) yields lies (default: the unit's
        start). The loader hashes the unit's own bytes [start, end) as they stream by: the
        content identity of the input (the same bytes under another URI are loaded once)."""
        return unit.start

    def storage_schema(self) -> pa.Schema:
        """The Parquet columns: the canonical ones minus the partition columns (in the path)."""
        return pa.schema([f for f in self.arrow_schema if f.name not in self.partition_by])


#: DuckDB spelling of the Arrow types datasets use (typed empty views before any data).
_DUCKDB_TYPES: dict[pa.DataType, str] = {
    pa.string(): "VARCHAR",
    pa.int8(): "TINYINT",
    pa.int16(): "SMALLINT",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float32(): "FLOAT",
    pa.float64(): "DOUBLE",
    pa.date32(): "DATE",
    pa.bool_(): "BOOLEAN",
}


def duckdb_type(t: pa.DataType) -> str:
    """The DuckDB type of an Arrow type (the small set datasets use)."""
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    try:
        return _DUCKDB_TYPES[t]
    except KeyError:
        raise CvCatalogError(f"no DuckDB type for Arrow type {t}") from None
