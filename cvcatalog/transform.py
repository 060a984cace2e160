"""Convert one partition (source / type / day) of raw JSON objects into canonical Parquet.

Fast path: DuckDB parses every NDJSON object of the day in one parallel read_json and streams the
canonical SELECT straight into zstd Parquet (lz4 for a tiny file: roworder.kept_codec). DuckDB
spills to disk, and no row passes through Python, so memory does not grow with the size of a day.

Slow path, only when the written Parquet holds rows that must go: the lines DuckDB could not parse
are found again by a streaming line scan in Python (read_json reports them only as all-NULL rows,
without line numbers), records failing validation are re-read from just their objects to get
their raw JSON, everything is written to one quarantine NDJSON, and only the Parquet files that
held such rows are rewritten without them.

Single-document objects (before 2018-01-18, often pretty-printed) go through Python: DuckDB cannot
skip a parse error outside newline-delimited input, so one broken document would fail the day.
They are small and few; their records are re-emitted as NDJSON for the same DuckDB pass.

Hostile objects (docs/reliability.md, "Hostile input"): gzip-compressed objects and a leading
byte order mark are normalized first by cvcatalog.io.rawfile (clean objects are only sniffed,
never copied: from the first bytes their download kept, RawFile.head, when it did); an object
with a line longer than read_json's maximum_object_size makes DuckDB fail the whole read, so
that object alone is rewritten from its readable lines by the same streaming line scan and the
read is retried. Records generated outside the hour of the folder they were
published in are kept with the warning outside_folder_hour; identical rows are kept and counted
as the partition warning duplicate_record.

Records joined without a newline (`{...}{...}` on one line) are one line DuckDB rejects, so
their object takes the slow path like any object with an unreadable line: the line scan that
rewrites it from its readable lines splits such a line into its complete records, each then
converted as its own line (counted in ConvertResult.recovered), and quarantines only the
fragments between them that are no record (_joined_pieces).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal
from zoneinfo import ZoneInfo

import duckdb

from cvcatalog.config import ValidationConfig
from cvcatalog.exceptions import ConversionError
from cvcatalog.io import rawfile, roworder
from cvcatalog.io.duckdb_ext import temporary_setting
from cvcatalog.io.layout import GLOB_CHARS
from cvcatalog.io.quarantine import entry_line, read_entry, reason_category
from cvcatalog.quality.config import QualityConfig
from cvcatalog.quality.rules import QualityStats, process_partition
from cvcatalog.schemas import MessageSchema, list_literal, quote_ident, quote_literal
from cvcatalog.sources.bucket import BINNED_SOURCES, FOLDER_TIMEZONE

log = logging.getLogger(__name__)

QUARANTINE_NAME = "quarantine.ndjson"
PARQUET_NAME = "part-{:05d}.parquet"
MALFORMED = "malformed JSON"
MISMATCH = "malformed JSON count mismatch"
#: quarantine reason categories of the hostile-input checks
COMMENT = "comment line"
TOO_LONG = "line too long"
UNREADABLE = "unreadable object"
#: warnings: a record generated outside its folder's hour (kept, flagged on the row), and rows
#: identical to another row of the partition (kept, counted for the partition only)
OUTSIDE_HOUR = "outside_folder_hour"
DUPLICATE = "duplicate_record"
#: Schemas whose records fan out into several rows (a TIM: one row per TravelerDataFrame) number
#: a record's rows 0.. in this column, NULL when it has none; invalidity is judged per record, so
#: only that first row is quarantined (one entry per record) and counted as the record.
FANOUT_COLUMN = "frame_index"
#: longest line (terminator included) parsed at all; a longer one is quarantined unparsed.
#: read_json gets a little more room (READ_JSON_MAX_OBJECT), so every line the scan passes fits.
MAX_SCAN_LINE = 16 << 20
READ_JSON_MAX_OBJECT = MAX_SCAN_LINE + 1024
#: how much of a raw line or document a quarantine entry keeps: all of any line that was parsed
RAW_LIMIT = MAX_SCAN_LINE
#: how much of a line longer than MAX_SCAN_LINE its quarantine entry keeps (with raw_size)
RAW_HEAD = 1 << 20
_OVERSIZED = re.compile(r'while reading file "([^"]+)"')
_PEEK = 64 << 10
_WS = re.compile(r"[ \t\r\n]*")


@dataclass(frozen=True)
class RawFile:
    """A downloaded object: the local file and the S3 key it came from (kept as lineage);
    head: its first bytes, when its download kept them (download.HEAD_BYTES)."""

    path: Path
    key: str
    head: bytes | None = field(default=None, repr=False, compare=False)


@dataclass
class ConvertResult:
    """What one conversion wrote; reasons counts quarantine entries (sum == quarantined)."""

    parquet_files: list[Path]
    rows: int
    quarantined: int
    quarantine_file: Path | None
    reasons: dict[str, int]
    warnings: dict[str, int]
    schema_versions: list[int]
    unknown_versions: list[int]
    #: invalid records kept in the Parquet (validation.drop_invalid_records = false), by reason
    kept_invalid: dict[str, int] = field(default_factory=dict)
    #: the quality step's counts (cvcatalog.quality), when the config has a quality section
    quality: QualityStats | None = None
    #: a day changed by --check-changes (cvcatalog.incremental): its data files that stay
    #: (catalog-relative paths) beside parquet_files (the new rows), and the source keys
    #: whose rows are deleted from each of them; counts are those of the whole day
    kept: list[str] = field(default_factory=list)
    deletes: dict[str, list[str]] = field(default_factory=dict)
    #: rows of each of parquet_files as the conversion wrote them (the stager need not read
    #: their footers again); a step rewriting the files empties it
    file_rows: dict[Path, int] = field(default_factory=dict)
    #: records recovered from lines holding several records joined without a newline
    #: (`{...}{...}`), each converted as its own line (then validated like any other record)
    recovered: int = 0
    #: a day merged by --check-changes, whose rows and quarantined are the whole day's: the
    #: part the run wrote itself, reported as its work (Outcome) while the partition records
    #: the whole day. own_rows: the rows of parquet_files (what the lake's snapshot counts
    #: as inserted); own_quarantined: the entries of the objects it converted. None: the
    #: conversion wrote the whole day (rows and quarantined are its own)
    own_rows: int | None = None
    own_quarantined: int | None = None


def apply_quality(
    con: duckdb.DuckDBPyConnection,
    result: ConvertResult,
    schema: MessageSchema,
    out_dir: Path,
    cfg: QualityConfig,
    row_group_size: int | None = None,
) -> None:
    """Run the configured quality step (cvcatalog.quality) on a conversion's Parquet, in place:
    counts always; with cleaning on, the files become one cleaned file and rows its count."""
    files, stats = process_partition(
        con,
        result.parquet_files,
        out_dir,
        schema.source,
        schema.message_type,
        cfg,
        row_group_size=None
        if row_group_size is None
        else roworder.row_group_rows(result.rows, row_group_size),
    )
    result.parquet_files = files
    result.file_rows = {}
    if stats.rows_out is not None:
        result.rows = stats.rows_out
    result.quality = stats


def convert_partition(
    con: duckdb.DuckDBPyConnection,
    schema: MessageSchema,
    files: Sequence[RawFile],
    out_dir: Path,
    *,
    validation: ValidationConfig,
    target_rows_per_file: int = 2_000_000,
    row_group_size: int = 122_880,
    ordered: bool = True,
) -> ConvertResult:
    """Convert the raw objects of one partition into Parquet files and a quarantine file.

    Writes part-NNNNN.parquet (canonical columns, no partition columns) and, when anything was
    quarantined, quarantine.ndjson into out_dir. Nothing else is left there, also on error.
    ordered: rows in the files' row order (cvcatalog.io.roworder: sorted by the conversion's
    one pass when the input is small, else staged in arrival order then sorted once, in bounded
    memory; row groups sized from the day's row count);
    False: one batch of a partition converted in several, kept in arrival order and with no
    warnings counted: combine_results counts them over the whole partition (duplicates span
    batches) and order_partition orders it as a whole.
    """
    (result,) = _convert(
        con,
        schema,
        [(files, out_dir)],
        validation=validation,
        target_rows_per_file=target_rows_per_file,
        row_group_size=row_group_size,
        ordered=ordered,
    )
    return result


def convert_partitions(
    con: duckdb.DuckDBPyConnection,
    schema: MessageSchema,
    parts: Sequence[tuple[Sequence[RawFile], Path]],
    *,
    validation: ValidationConfig,
    target_rows_per_file: int = 2_000_000,
    row_group_size: int = 122_880,
    ordered: bool = True,
) -> list[ConvertResult]:
    """Convert several small partitions (their objects, their out_dir) with one DuckDB scan: the
    fixed cost of a conversion (binding the canonical SELECT, read_json, the Parquet writer) is
    most of a tiny day's, and here it is paid once for the group.

    The objects of every partition are read and made canonical by one statement into a
    temporary table; each partition's rows are then written by its own COPY (in the row order)
    into its out_dir, so every partition gets exactly the files, quarantine entries and counts
    convert_partition would give it alone. A quarantine entry that names no object (it could
    not be attributed to one partition) fails the whole group: the caller converts the
    partitions one by one then. No partitions: nothing to convert (no results).
    """
    if not parts:
        return []
    if len(parts) == 1:
        return [
            convert_partition(
                con,
                schema,
                parts[0][0],
                parts[0][1],
                validation=validation,
                target_rows_per_file=target_rows_per_file,
                row_group_size=row_group_size,
                ordered=ordered,
            )
        ]
    return _convert(
        con,
        schema,
        parts,
        validation=validation,
        target_rows_per_file=target_rows_per_file,
        row_group_size=row_group_size,
        ordered=ordered,
        grouped=True,
    )


def _convert(
    con: duckdb.DuckDBPyConnection,
    schema: MessageSchema,
    parts: Sequence[tuple[Sequence[RawFile], Path]],
    *,
    validation: ValidationConfig,
    target_rows_per_file: int,
    row_group_size: int,
    ordered: bool,
    grouped: bool = False,
) -> list[ConvertResult]:
    """convert_partition of one partition, or convert_partitions of several (grouped)."""
    if target_rows_per_file < 1 or row_group_size < 1:
        raise ValueError("target_rows_per_file and row_group_size must be positive")
    out_dirs = [Path(d).absolute() for _, d in parts]
    if len(set(out_dirs)) != len(out_dirs):
        raise ValueError("every partition of a group needs its own out_dir")
    files = [f for fs, _ in parts for f in fs]
    if len({f.path for f in files}) != len(files):
        raise ValueError("every object needs its own copy (a row is told by its file's path)")
    units = [u for u, (fs, _) in enumerate(parts) for _ in fs]
    for out_dir in out_dirs:
        out_dir.mkdir(parents=True, exist_ok=True)
        if any(out_dir.glob("part-*.parquet")) or (out_dir / QUARANTINE_NAME).exists():
            raise FileExistsError(f"{out_dir} already holds converted output")
    for p in [*out_dirs, *(f.path for f in files)]:
        if GLOB_CHARS & set(str(p)):
            raise ValueError(f"path {p} contains a glob character (* ? [); DuckDB would expand it")

    work = Path(tempfile.mkdtemp(prefix=".convert-", dir=out_dirs[0]))
    keys_table = f"_cvcatalog_keys_{uuid.uuid4().hex}"
    final: list[Path] = []
    done = False
    try:
        with temporary_setting(con, "TimeZone", "UTC"):
            results = _Conversion(
                con,
                schema,
                files,
                out_dirs,
                work,
                keys_table,
                validation,
                row_group_size,
                target_rows_per_file,
                final,
                ordered,
                units=units if grouped else None,
            ).run()
        done = True
        return results
    finally:
        if not done:
            for p in final:
                p.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
        # the connection may be unusable after an error; then there is nothing left to undo
        with contextlib.suppress(duckdb.Error):
            con.execute(f"DROP TABLE IF EXISTS {quote_ident(keys_table)}")


# --------------------------------------------------------------------------------------------


class _Quarantine:
    """Appends quarantine entries to a file in the work dir; counts them by reason category."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.reasons: Counter[str] = Counter()
        self._fh: IO[str] | None = None

    def _file(self) -> IO[str]:
        if self._fh is None:
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        return self._fh

    def add(
        self,
        source_key: str | None,
        line: int | None,
        reason: str,
        raw: str | bytes | None,
        raw_size: int | None = None,
    ) -> None:
        """One entry (:func:`cvcatalog.io.quarantine.entry_line`: raw bytes that are not UTF-8
        kept exactly in raw_base64); raw_size marks a raw cut to its first RAW_HEAD bytes."""
        self._file().write(entry_line(source_key, line, reason, raw, raw_size))
        self.count += 1
        self.reasons[reason_category(reason)] += 1

    def append_ndjson(self, path: Path) -> None:
        """Append entries DuckDB wrote with the same keys (rare: only invalid records)."""
        fh = self._file()
        with open(path, encoding="utf-8") as src:
            for line in src:
                if line.strip():
                    fh.write(line if line.endswith("\n") else line + "\n")
                    self.count += 1
                    self.reasons[reason_category(read_entry(line)["reason"])] += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def release(self) -> None:
        """Let go of the file on a failed conversion (its work dir goes with it): no flush or
        fsync that could raise over the conversion's own error. After close(), nothing to do."""
        fh, self._fh = self._fh, None
        if fh is not None:
            with contextlib.suppress(OSError):
                fh.close()


@dataclass
class _StageStats:
    """Per staged Parquet file and source key: counts of invalid rows by reason category."""

    by_file: dict[str, Counter[str]]
    by_key: dict[str | None, Counter[str]]


#: names of columns in the COPY's statistics (RETURN_STATS)
_INVALID_STAT = '"invalid_reason"'
_VERSION_STAT = '"schema_version"'
_WARNING_STAT = '"warnings"."element"'


#: input bytes read to estimate a partition's rows (_Conversion._one_pass_rows)
_SAMPLE_BYTES = 4 << 20


def estimated_lines(paths: Sequence[Path]) -> int | None:
    """The lines of NDJSON files: counted when they hold at most _SAMPLE_BYTES, else in their
    first _SAMPLE_BYTES and scaled to their size; None when they are empty."""
    total = sum(p.stat().st_size for p in paths)
    lines = seen = 0
    for path in paths:
        with open(path, "rb") as f:
            chunk = f.read(_SAMPLE_BYTES - seen)
        lines += chunk.count(b"\n") + (1 if chunk and not chunk.endswith(b"\n") else 0)
        seen += len(chunk)
        if seen >= _SAMPLE_BYTES:
            break
    if not seen:
        return None
    return lines if seen >= total else round(lines * total / seen)


def _stats_rows(result: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    """A COPY's RETURN_STATS rows as fetchall() gives them (the column statistics a dict of
    dicts), through Arrow: fetchall() builds a DuckDB MAP value per file and column first,
    ~2 ms a file of the 56-column schema (most of a tiny day's conversion), Arrow ~0.2 ms."""
    rows = result.to_arrow_table().to_pylist()
    return [
        (
            r["filename"],
            r["count"],
            r["file_size_bytes"],
            r["footer_size_bytes"],
            {k: dict(v or ()) for k, v in r["column_statistics"] or ()},
        )
        for r in rows
    ]


class _Conversion:
    """One run of convert_partition; a class only to share state between the steps."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        schema: MessageSchema,
        files: list[RawFile],
        out_dirs: list[Path],
        work: Path,
        keys_table: str,
        validation: ValidationConfig,
        row_group_size: int,
        rows_per_file: int,
        final: list[Path],
        ordered: bool = True,
        units: list[int] | None = None,
    ) -> None:
        self.con = con
        self.schema = schema
        self.files = files
        self.out_dirs = out_dirs
        #: grouped (convert_partitions): the partition of each file; None: one partition
        self.units = units
        #: a staged file -> its partition (grouped)
        self.unit_of_path: dict[Path, int] = {}
        self.work = work
        self.keys_table = quote_ident(keys_table)
        self.validate = validation.enabled
        self.drop_invalid = validation.enabled and validation.drop_invalid_records
        self.row_group_size = row_group_size
        self.rows_per_file = rows_per_file
        self.final = final
        self.quarantine = _Quarantine(work / QUARANTINE_NAME)
        self.ordered = ordered
        order = roworder.order_for(schema.source, schema.message_type)
        self.order = order if ordered else None
        #: one partition's staged files of an ordered type are rewritten in the row order (by
        #: _order_staged, or by order_partition after a day's last batch): a fast codec, as the
        #: files of a sort's runs; a group's are written in the order, as they stay (None: the
        #: kept codec for their rows, roworder.kept_codec)
        self.stage_codec = (
            roworder.INTERMEDIATE_CODEC if units is None and order is not None else None
        )
        #: the table's zstd level (roworder.ZSTD_LEVELS), for every file this writes in zstd
        self.zstd_level = order.zstd_level if order is not None else None
        self.docs_path = work / "documents.ndjson"
        #: a group's canonical rows (_stage_grouped), kept while the staged files hold exactly
        #: them, so _group_warnings reads them instead of the files
        self.group_table: str | None = None
        #: staged file -> the COPY's column statistics (RETURN_STATS); dropped for a file
        #: rewritten since (what they say may no longer hold)
        self.column_stats: dict[Path, dict[str, dict[str, str]]] = {}
        #: objects already rewritten from their readable lines (no second scan)
        self.scanned: set[int] = set()
        #: records recovered from joined lines, by source key (_replace_with_readable)
        self.recovered: Counter[str] = Counter()
        #: the staged files are in the row order already (a small partition, sorted in its
        #: one conversion pass); a rewrite of any of them clears it
        self.in_order = False
        #: the input's lines and the bytes of one (_measure)
        self.lines: int | None = None
        self.row_bytes: float | None = None
        #: each object's folder hour (UTC bounds; None for another key), by its key, which
        #: a copy made in the conversion keeps
        self.folder_hours = [_folder_hour(schema, f.key) for f in files]

    # -- steps -------------------------------------------------------------------------------
    def run(self) -> list[ConvertResult]:
        try:
            return self._steps()
        finally:
            self.quarantine.release()
            self._drop_group_table()

    def _drop_group_table(self) -> None:
        table, self.group_table = self.group_table, None
        if table is not None:
            with contextlib.suppress(duckdb.Error):
                self.con.execute(f"DROP TABLE IF EXISTS {table}")

    def _steps(self) -> list[ConvertResult]:
        kinds = self._normalize()
        ndjson = [i for i, k in enumerate(kinds) if k == "ndjson"]
        documents = [i for i, k in enumerate(kinds) if k == "document"]
        n_docs = self._write_documents(documents) if documents else 0
        staged: list[tuple[Path, int]] = []
        if ndjson or n_docs:
            self._register_keys()
            staged = self._stage_all(ndjson, with_docs=n_docs > 0)
        stats = self._stage_stats([p for p, _ in staged])
        broken = [i for i in ndjson if stats.by_key.get(self.files[i].key, Counter())[MALFORMED]]
        if broken:
            staged = self._reparse(staged, broken)
            stats = self._stage_stats([p for p, _ in staged])
        versions = self._schema_versions([p for p, _ in staged])
        kept_invalid: Counter[str] = Counter()
        if broken or stats.by_key:  # the files' rows are no longer the group table's
            self._drop_group_table()
        if stats.by_key:
            self._quarantine_malformed(stats, ndjson)
            if self.drop_invalid:
                self._quarantine_invalid(stats, ndjson, documents)
            else:
                for counts in stats.by_key.values():
                    kept_invalid.update({r: n for r, n in counts.items() if r != MALFORMED})
            staged = self._rewrite_affected(staged, stats)
        if self.order is not None and staged and not self.in_order:
            staged = self._order_staged(staged) if self.units is None else self._order_units(staged)
        self.quarantine.close()
        if self.units is not None:
            return self._split(staged, versions, stats)

        out_dir = self.out_dirs[0]
        file_rows: dict[Path, int] = {}
        for i, (path, count) in enumerate(staged):
            target = out_dir / PARQUET_NAME.format(i)
            os.replace(path, target)
            self.final.append(target)
            file_rows[target] = count
            if path in self.column_stats:
                self.column_stats[target] = self.column_stats.pop(path)
        quarantine_file = None
        if self.quarantine.count:
            quarantine_file = out_dir / QUARANTINE_NAME
            os.replace(self.quarantine.path, quarantine_file)  # same filesystem: atomic
            self.final.append(quarantine_file)

        unknown = sorted(v for v in versions if v not in self.schema.known_versions)
        if unknown:
            log.warning("unknown schema version(s) %s; parsed the known fields", unknown)
        return [
            ConvertResult(
                parquet_files=[p for p in self.final if p.suffix == ".parquet"],
                rows=sum(n for _, n in staged),
                quarantined=self.quarantine.count,
                quarantine_file=quarantine_file,
                reasons=dict(self.quarantine.reasons),
                warnings=(
                    self._warning_counts([p for p in self.final if p.suffix == ".parquet"])
                    if self.ordered
                    else {}  # a batch: combine_results counts them over the whole partition
                ),
                schema_versions=versions,
                unknown_versions=unknown,
                kept_invalid=dict(kept_invalid),
                file_rows=file_rows,
                recovered=sum(self.recovered.values()),
            )
        ]

    def _split(
        self, staged: list[tuple[Path, int]], versions: list[int], stats: _StageStats
    ) -> list[ConvertResult]:
        """A group's result per partition: its files (written by its own COPY), its quarantine
        entries (by their source_key) and its counts, as a conversion of it alone gives."""
        assert self.units is not None
        n = len(self.out_dirs)
        unit_of_key = {f.key: u for f, u in zip(self.files, self.units, strict=True)}
        entries: list[list[str]] = [[] for _ in range(n)]
        reasons: list[Counter[str]] = [Counter() for _ in range(n)]
        if self.quarantine.count:
            with open(self.quarantine.path, encoding="utf-8") as fh:
                for line in fh:
                    entry = read_entry(line)
                    key = entry.get("source_key")
                    u = unit_of_key.get(key) if isinstance(key, str) else None
                    if u is None:
                        raise ConversionError(
                            "a quarantine entry of a group names no object of the group: "
                            f"{entry.get('reason')}"
                        )
                    entries[u].append(line)
                    reasons[u][reason_category(entry["reason"])] += 1
        recovered: Counter[int] = Counter()
        for key, count in self.recovered.items():
            recovered[unit_of_key[key]] += count
        kept_invalid: list[Counter[str]] = [Counter() for _ in range(n)]
        if not self.drop_invalid:
            for key, counts in stats.by_key.items():
                u = unit_of_key.get(key) if key is not None else None
                if u is not None:
                    kept_invalid[u].update({r: k for r, k in counts.items() if r != MALFORMED})
        warnings = self._group_warnings(staged)
        results = []
        for u, out_dir in enumerate(self.out_dirs):
            mine = [(p, c) for p, c in staged if self.unit_of_path.get(p) == u]
            parquet = []
            file_rows: dict[Path, int] = {}
            for i, (path, count) in enumerate(mine):
                target = out_dir / PARQUET_NAME.format(i)
                os.replace(path, target)
                self.final.append(target)
                parquet.append(target)
                file_rows[target] = count
                if path in self.column_stats:
                    self.column_stats[target] = self.column_stats.pop(path)
            quarantine_file = None
            if entries[u]:
                quarantine_file = out_dir / QUARANTINE_NAME
                tmp = out_dir / (QUARANTINE_NAME + ".tmp")
                with open(tmp, "w", encoding="utf-8") as out:
                    out.writelines(entries[u])
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, quarantine_file)
                self.final.append(quarantine_file)
            mine_versions = self._schema_versions(parquet)
            unknown = sorted(v for v in mine_versions if v not in self.schema.known_versions)
            results.append(
                ConvertResult(
                    parquet_files=parquet,
                    rows=sum(c for _, c in mine),
                    quarantined=len(entries[u]),
                    quarantine_file=quarantine_file,
                    reasons=dict(reasons[u]),
                    warnings=warnings.get(u, {}),
                    schema_versions=mine_versions,
                    unknown_versions=unknown,
                    kept_invalid=dict(kept_invalid[u]),
                    file_rows=file_rows,
                    recovered=recovered[u],
                )
            )
        return results

    def _group_warnings(self, staged: list[tuple[Path, int]]) -> dict[int, dict[str, int]]:
        """warning_counts of each partition of a group, by one scan of all its files."""
        if not staged:
            return {}
        units = [self.unit_of_path[p] for p, _ in staged]
        names = ", ".join(
            f"({quote_literal(str(p))}, {u})" for (p, _), u in zip(staged, units, strict=True)
        )
        rows = (
            f"(SELECT f.unit AS _unit, t.* EXCLUDE (filename) "
            f"FROM read_parquet({list_literal(str(p) for p, _ in staged)}, filename = true, "
            "hive_partitioning = false) t "
            f"JOIN (VALUES {names}) AS f(path, unit) ON f.path = t.filename)"
        )
        if self.group_table is not None:  # the same rows, without reading the files back
            rows = f"(SELECT * FROM {self.group_table})"
        out: dict[int, dict[str, int]] = {}
        if not self._all_null([p for p, _ in staged], _WARNING_STAT):
            for u, w, n in self.con.execute(
                "SELECT _unit, w, count(*) FROM (SELECT _unit, unnest(warnings) AS w "
                f"FROM {rows} WHERE len(warnings) > 0) GROUP BY ALL ORDER BY ALL"
            ).fetchall():
                out.setdefault(int(u), {})[str(w)] = int(n)
        if self.validate:
            lead = ", ".join(
                quote_ident(c)
                for c in self.schema.column_names[:8]
                if c not in ("source_key", "warnings")
            )
            (repeats,) = self.con.execute(
                f"SELECT count(*) FROM (SELECT _unit FROM {rows} GROUP BY _unit "
                f"HAVING count(*) > count(DISTINCT hash({lead})))"
            ).fetchone() or (0,)
            if repeats:  # leading columns repeat: count whole-row duplicates, as warning_counts
                whole = "*COLUMNS(* EXCLUDE (_unit, source_key, warnings))"
                for u, n in self.con.execute(
                    f"SELECT _unit, count(*) - count(DISTINCT hash({whole})) FROM {rows} "
                    "GROUP BY _unit"
                ).fetchall():
                    if int(n):
                        out.setdefault(int(u), {})[DUPLICATE] = int(n)
        return out

    def _normalize(self) -> list[Literal["ndjson", "document", "empty"]]:
        """Decompress gzip objects and drop leading BOMs (rawfile); clean objects stay as they
        are. Returns each object's kind (_kind), from the same first read of it."""
        kinds: list[Literal["ndjson", "document", "empty"]] = []
        for i, raw in enumerate(self.files):
            if raw.head is not None and _tells(raw.head):  # no read of the copy
                head, more = raw.head, True  # (more matters only to an object of blanks)
            else:
                head, more = rawfile.peek(raw.path, _PEEK)
            norm = rawfile.normalize(raw.path, self.work, f"object-{i:06d}", head)
            if norm.path != raw.path:
                self.files[i] = RawFile(norm.path, raw.key)
                head, more = rawfile.peek(norm.path, _PEEK)
            if norm.problem is not None:
                self.quarantine.add(raw.key, None, f"{UNREADABLE}: {norm.problem}", None)
            kinds.append(_kind(head, more))
        return kinds

    def _stage_all(self, ndjson: list[int], *, with_docs: bool) -> list[tuple[Path, int]]:
        """The one big pass; an object with a line over read_json's maximum_object_size fails it
        as a whole, so such an object is rewritten from its readable lines and the pass retried."""
        for _ in range(len(ndjson) + 1):
            self._measure(ndjson, with_docs=with_docs)
            try:
                return self._stage(
                    self._relation(ndjson, with_docs=with_docs), sort_rows=self._one_pass_rows()
                )
            except duckdb.Error as e:
                if "maximum_object_size" not in str(e):
                    raise
                i = self._oversized(str(e), ndjson)
                shutil.rmtree(self.work / "stage", ignore_errors=True)
                self._replace_with_readable(i)
        raise ConversionError("lines over the size limit kept failing the conversion")

    def _oversized(self, message: str, ndjson: list[int]) -> int:
        """The index of the NDJSON object DuckDB's maximum_object_size error names."""
        m = _OVERSIZED.search(message)
        name = m.group(1) if m else None
        for i in ndjson:
            if str(self.files[i].path) == name and i not in self.scanned:
                return i
        raise ConversionError(
            f"a record of {name or 'an object'} is larger than {READ_JSON_MAX_OBJECT} bytes "
            "and could not be set aside"
        )

    def _replace_with_readable(self, i: int) -> None:
        """Quarantine the unreadable lines of object i and read its readable lines from now on
        (the records of a line of joined records each as a line of its own, counted)."""
        raw = self.files[i]
        clean = self.work / f"readable-{i:06d}.ndjson"
        recovered = _Recovered()
        with open(clean, "wb") as good:
            for line, reason, text, size in _scan_lines(
                raw.path, self.schema.required_top_level, good, recovered
            ):
                self.quarantine.add(raw.key, line, reason, text, size)
        if recovered.records:
            self.recovered[raw.key] += recovered.records
        self.files[i] = RawFile(clean, raw.key)
        self.scanned.add(i)
        self.con.execute(f"UPDATE {self.keys_table} SET path = ? WHERE idx = ?", [str(clean), i])

    def _write_documents(self, indices: list[int]) -> int:
        """Re-emit the records of single-document objects as `{"i": file index, "r": record}`.

        Broken documents and values that are not records go to quarantine here, with the line
        they start on, so the DuckDB pass only ever sees readable records.
        """
        written = 0
        with open(self.docs_path, "w", encoding="utf-8") as out:
            for i in indices:
                raw = self.files[i]
                for line, value, problem, text in _documents(raw.path):
                    if problem is not None:
                        self.quarantine.add(raw.key, line, f"{MALFORMED}: {problem}", text)
                        continue
                    for rec in value if isinstance(value, list) else [value]:
                        why = _record_problem(rec, self.schema.required_top_level)
                        if why is not None:
                            self.quarantine.add(
                                raw.key, line, f"{MALFORMED}: {why}", _clip(json.dumps(rec))
                            )
                            continue
                        record = json.dumps({"i": i, "r": rec}, ensure_ascii=False) + "\n"
                        size = len(record.encode("utf-8"))
                        if size > MAX_SCAN_LINE:
                            reason = f"{TOO_LONG}: a record of {size} bytes, over the limit"
                            head = record.encode("utf-8")[:RAW_HEAD]
                            self.quarantine.add(raw.key, line, reason, head, size)
                            continue
                        out.write(record)
                        written += 1
        return written

    def _register_keys(self) -> None:
        """The objects' table the rows join (_relation): index, path, key, folder hour's
        bounds, partition."""
        bounds = self.folder_hours
        self.con.execute(
            f"CREATE TEMP TABLE {self.keys_table} AS "
            "SELECT unnest($idx) AS idx, unnest($path) AS path, unnest($key) AS key, "
            "unnest($lo)::TIMESTAMPTZ AS folder_lo, unnest($hi)::TIMESTAMPTZ AS folder_hi, "
            "unnest($unit)::INTEGER AS unit",
            {
                "idx": list(range(len(self.files))),
                "unit": self.units or [0] * len(self.files),
                "path": [str(f.path) for f in self.files],
                "key": [f.key for f in self.files],
                "lo": [b[0] if b else None for b in bounds],
                "hi": [b[1] if b else None for b in bounds],
            },
        )

    def _wide(self) -> bool:
        """Rows of roworder.WIDE_ROW_BYTES or more a line (_measure): they take their object's columns
        from list literals (_objects), not from a join to the objects' table. DuckDB's join
        made memory grow with the input for such rows (a 1.3 GB NYCDOT EVENT bin of ~240 KB
        events, a COPY of its canonical rows on one thread: 1.10 GB peak RSS with the join,
        0.47 GB without); the lists are copied for every chunk the read gives, about one an
        object when objects are small (2,000 one-hour objects of 20 BSM records: 0.5 s more
        than the join), a few for the large objects of wide rows."""
        return roworder.wide(self.row_bytes)

    def _objects(self, position: str) -> str:
        """The columns a raw row of wide rows takes from its object: source_key, the folder
        hour's bounds and (grouped) the partition, for the object at 1-based `position` in
        self.files (a SQL expression): elements of list literals, no join (_wide)."""
        bounds = self.folder_hours
        los = ", ".join("NULL" if b is None else quote_literal(b[0].isoformat()) for b in bounds)
        his = ", ".join("NULL" if b is None else quote_literal(b[1].isoformat()) for b in bounds)
        cols = (
            f"{list_literal(f.key for f in self.files)}[{position}] AS source_key, "
            f"([{los}]::TIMESTAMPTZ[])[{position}] AS _folder_lo, "
            f"([{his}]::TIMESTAMPTZ[])[{position}] AS _folder_hi"
        )
        if self.units is not None:
            units = ", ".join(str(int(u)) for u in self.units)
            cols += f", ([{units}]::INTEGER[])[{position}] AS _unit"
        return cols

    def _position(self, filename: str) -> str:
        """The 1-based position in self.files of the copy a row's `filename` names (SQL): the
        name cast to an ENUM of the copies' paths (a hash lookup a row; list_position is a
        scan of the list, 0.1 s a 140,000-row read of 1,000 objects)."""
        paths = ", ".join(quote_literal(str(f.path)) for f in self.files)
        return f"(enum_code(TRY_CAST({filename} AS ENUM({paths}))) + 1)"

    def _relation(self, ndjson: list[int], *, with_docs: bool, raw_lines: bool = False) -> str:
        """The raw rows (read_columns, source_key, folder bounds) of NDJSON files and documents.

        raw_lines: read every line as its verbatim text too (column _raw_line), for quarantine.
        """
        cols = self.schema.read_columns_sql()
        names = [quote_ident(k) for k in self.schema.read_columns]
        raw_cols = ", ".join(f"j.{n}" for n in names)
        doc_cols = ", ".join(f"d.r.{n} AS {n}" for n in names)
        folder = "k.folder_lo AS _folder_lo, k.folder_hi AS _folder_hi"
        if self.units is not None:
            folder += ", k.unit AS _unit"
        wide = self._wide()
        limit = f"maximum_object_size = {READ_JSON_MAX_OBJECT}"
        parts = []
        if ndjson:
            paths = list_literal(str(self.files[i].path) for i in ndjson)
            if raw_lines:
                structure = quote_literal(json.dumps(self._json_structure()))
                parsed = f"json_transform(o.json, {structure})"
                source = (
                    f"(SELECT unnest({parsed}), o.json::VARCHAR AS _raw_line, o.filename "
                    f"FROM read_ndjson_objects({paths}, ignore_errors = true, filename = true, "
                    f"hive_partitioning = false, {limit}) AS o)"
                )
                raw_cols += ", j._raw_line"
            else:
                source = (
                    f"read_json({paths}, format = 'newline_delimited', columns = {cols}, "
                    f"ignore_errors = true, filename = true, hive_partitioning = false, {limit})"
                )
            if wide:
                parts.append(
                    f"SELECT {raw_cols}, {self._objects('j._object')} "
                    f"FROM (SELECT *, {self._position('filename')} AS _object FROM {source}) AS j"
                )
            else:
                parts.append(
                    f"SELECT {raw_cols}, coalesce(k.key, j.filename) AS source_key, {folder} "
                    f"FROM {source} AS j LEFT JOIN {self.keys_table} AS k ON k.path = j.filename"
                )
        if with_docs:
            wrapped = "{'i': 'INTEGER', 'r': " + quote_literal(_struct_of(self.schema)) + "}"
            if raw_lines:
                doc_cols += ", d._raw_line"
                structure = json.dumps({"i": "INTEGER", "r": self._json_structure()})
                source = (
                    f"(SELECT unnest(json_transform(o.json, {quote_literal(structure)})), "
                    "(o.json -> 'r')::VARCHAR AS _raw_line "
                    f"FROM read_ndjson_objects({quote_literal(str(self.docs_path))}, "
                    f"ignore_errors = true, hive_partitioning = false, {limit}) AS o)"
                )
            else:
                source = (
                    f"read_json({quote_literal(str(self.docs_path))}, "
                    f"format = 'newline_delimited', columns = {wrapped}, ignore_errors = true, "
                    f"hive_partitioning = false, {limit})"
                )
            if wide:
                parts.append(f"SELECT {doc_cols}, {self._objects('(d.i + 1)')} FROM {source} AS d")
            else:
                parts.append(
                    f"SELECT {doc_cols}, k.key AS source_key, {folder} FROM {source} AS d "
                    f"LEFT JOIN {self.keys_table} AS k ON k.idx = d.i"
                )
        return "(" + " UNION ALL ".join(parts) + ")"

    def _stage(
        self, relation: str, name: str = "stage", *, sort_rows: int | None = None
    ) -> list[tuple[Path, int]]:
        """The one big pass: raw JSON -> canonical rows -> Parquet files in work/<name>, in
        arrival order (streamed: the row order is written once at the end, _order_staged).

        sort_rows (_one_pass_rows: a small partition's rows): the pass writes the row order and
        the kept files' codec itself, the sort holding every row (a 142,872-row day: 0.95 s,
        ~485 MB peak RSS, against 1.25 s and ~820 MB staged then sorted).

        Grouped: the canonical rows of every partition go into a temporary table once, then
        each partition's rows are written (in the row order) by its own COPY into
        work/<name>/u<partition>."""
        if self.units is not None:
            return self._stage_grouped(relation, name)
        if sort_rows is not None and self.order is not None:
            written = self._write_ordered(self._select(relation), self.work / name, sort_rows)
            self.in_order = True
            return self._staged(written)
        return self._copy(self._select(relation), self.work / name)

    def _measure(self, ndjson: list[int], *, with_docs: bool) -> None:
        """The input's lines (estimated_lines: counted when it holds at most _SAMPLE_BYTES,
        else in its first _SAMPLE_BYTES) and the bytes of a line, taken as a row's (a row
        holds less than its JSON text for most types, about as much for NYCDOT EVENT's
        lists): the row groups hold at most roworder.ROW_GROUP_BYTES of them, and a sort of
        the rows in its conversion pass a share of DuckDB's memory (roworder.write_ordered)."""
        paths = [self.files[i].path for i in ndjson] + ([self.docs_path] if with_docs else [])
        self.lines = estimated_lines(paths)
        if self.lines:
            self.row_bytes = sum(p.stat().st_size for p in paths) / self.lines
            self.row_group_size = roworder.row_group_rows(None, self.row_group_size, self.row_bytes)

    def _one_pass_rows(self) -> int | None:
        """The rows of one ordered partition whose input is small enough to be sorted by its
        one conversion pass (at most roworder.SORT_ONE_COPY_ROWS lines, _measure; the rows
        size the row groups and choose the codec, roworder.copy_options); None otherwise."""
        if self.order is None or self.units is not None:
            return None
        rows = self.lines
        return rows if rows is not None and rows <= roworder.SORT_ONE_COPY_ROWS else None

    def _copy(
        self,
        select: str,
        stage: Path,
        unit: int | None = None,
        *,
        rows: int | None = None,
        by_unit: bool = False,
    ) -> list[tuple[Path, int]]:
        """COPY select into Parquet files under stage (roworder.copy_options for `rows` rows:
        None, not known yet), with their statistics; by_unit: one file per partition
        (PARTITION_BY _unit: stage/_unit=N/), else files of about rows_per_file rows (their
        partition: unit)."""
        layout = ["PARTITION_BY (_unit)"] if by_unit else []
        opts = roworder.copy_options(
            rows, self.row_group_size, None if by_unit else self.rows_per_file,
            *layout, "RETURN_STATS", compression=self.stage_codec, zstd_level=self.zstd_level,
        )  # fmt: skip
        written = _stats_rows(
            self.con.execute(f"COPY ({select}) TO {quote_literal(str(stage))} ({opts})")
        )
        return self._staged(written, stage, unit, by_unit=by_unit)

    def _staged(
        self,
        rows: list[tuple[Any, ...]],
        stage: Path | None = None,
        unit: int | None = None,
        *,
        by_unit: bool = False,
    ) -> list[tuple[Path, int]]:
        """The files a COPY with RETURN_STATS wrote (empty ones deleted) and their statistics;
        by_unit: each partition's hive directory (stage/_unit=N) renamed stage/uN (readers
        would see a column), the files remembered as that partition's (else as unit's)."""
        out = []
        for filename, count, _size, _footer, column_stats, *_ in rows:
            path = Path(filename)
            owner = unit
            if by_unit and stage is not None:
                owner = int(path.parent.name.split("=", 1)[1])
                renamed = stage / f"u{owner:05d}"
                if path.parent.exists():
                    os.replace(path.parent, renamed)
                path = renamed / path.name
            if count:
                out.append((path, int(count)))
                self.column_stats[path] = dict(column_stats or {})
                if owner is not None:
                    self.unit_of_path[path] = owner
            else:
                path.unlink(missing_ok=True)
        return sorted(out)

    def _order_staged(
        self, staged: list[tuple[Path, int]], unit: int | None = None
    ) -> list[tuple[Path, int]]:
        """The staged files rewritten once in the files' row order (cvcatalog.io.roworder:
        spatial pruning), row groups sized from the row count, in bounded memory; unit: the
        files of one partition of a group."""
        rows = sum(n for _, n in staged)
        target = self.work / ("ordered" if unit is None else f"ordered-u{unit:05d}")
        written = self._write_ordered([str(p) for p, _ in staged], target, rows)
        out = self._staged(written, unit=unit)
        if sum(n for _, n in out) != rows:
            raise ConversionError(f"ordering wrote {sum(n for _, n in out)} rows, expected {rows}")
        for p, _ in staged:
            self.column_stats.pop(p, None)
            self.unit_of_path.pop(p, None)
            p.unlink(missing_ok=True)
        return out

    def _write_ordered(
        self, source: str | list[str], target: Path, rows: int
    ) -> list[tuple[Any, ...]]:
        """roworder.write_ordered of a SELECT or staged files into target with this
        conversion's file options; its RETURN_STATS rows (for _staged)."""
        return roworder.write_ordered(
            self.con,
            source,
            target,
            self.order,
            rows=rows,
            row_group_size=self.row_group_size,
            rows_per_file=self.rows_per_file,
            extra=["RETURN_STATS"],
            row_bytes=self.row_bytes if isinstance(source, str) else None,
        )

    def _order_units(self, staged: list[tuple[Path, int]]) -> list[tuple[Path, int]]:
        """Grouped: each partition's files are written in the order already; one with several
        (its reparsed lines beside the rest) is rewritten as one ordered set, as its own
        conversion would write it."""
        files: dict[int, list[tuple[Path, int]]] = {}
        for item in staged:
            files.setdefault(self.unit_of_path[item[0]], []).append(item)
        out: list[tuple[Path, int]] = []
        for unit, items in sorted(files.items()):
            out += self._order_staged(items, unit) if len(items) > 1 else items
        return sorted(out)

    def _stage_grouped(self, relation: str, name: str) -> list[tuple[Path, int]]:
        """A group's canonical rows into a temporary table (one read_json of all its objects),
        then written per partition: the partitions that fit one file by one COPY with
        PARTITION_BY on one thread (a file per partition, each in the row order: one thread
        keeps the sorted stream's order within each partition), any larger one by a COPY of
        its own."""
        table = quote_ident(f"_cvcatalog_group_{uuid.uuid4().hex}")
        self.con.execute(f"CREATE TEMP TABLE {table} AS {self._select(relation)}")
        keep = False
        try:
            counts, unit_stats = self._unit_stats(table)
            if None in counts:
                raise ConversionError("rows of a group that name none of its objects")
            limit = self.rows_per_file
            small = sorted(int(u) for u, n in counts.items() if n <= limit)
            out: list[tuple[Path, int]] = []
            if small:
                only = "" if len(small) == len(counts) else f" WHERE _unit IN {tuple(small)!r}"
                select = self._ordered(f"SELECT * FROM {table}{only}")
                rows = max(int(counts[u]) for u in small)  # one row-group size for them all
                with temporary_setting(self.con, "threads", 1):
                    out += self._copy_units(select, self.work / name, rows, counts, unit_stats)
            for unit in sorted(int(u) for u in counts if int(u) not in small):
                select = self._ordered(
                    f"SELECT * EXCLUDE (_unit) FROM {table} WHERE _unit = {unit}"
                )
                out += self._copy(
                    select, self.work / name / f"u{unit:05d}", unit, rows=int(counts[unit])
                )
            if sum(n for _, n in out) != sum(counts.values()):
                raise ConversionError("a group's partitions were not written whole")
            keep = self.group_table is None  # a second staging (reparsed lines): not kept
            return sorted(out)
        finally:
            if keep:
                self.group_table = table
            else:
                with contextlib.suppress(duckdb.Error):
                    self.con.execute(f"DROP TABLE IF EXISTS {table}")

    def _unit_stats(
        self, table: str
    ) -> tuple[dict[Any, int], dict[int, dict[str, dict[str, str]]]]:
        """Rows of each partition of a group's table, and the column statistics the conversion
        reads of its file (_all_null, _schema_versions: null_count and num_values of
        invalid_reason, schema_version, the warnings' elements; schema_version's min and max),
        as RETURN_STATS gives them, by one aggregate (_copy_units)."""
        have = {r[0] for r in self.con.execute(f"DESCRIBE {table}").fetchall()}
        aggs = ["count(*)"]
        if "invalid_reason" in have:
            aggs.append("count(invalid_reason)")
        if "schema_version" in have:
            aggs += ["count(schema_version)", "min(schema_version)", "max(schema_version)"]
        if "warnings" in have:  # a NULL or empty list holds one NULL leaf
            aggs += [
                "sum(greatest(coalesce(len(warnings), 0), 1))",
                "sum(coalesce(list_count(warnings), 0))",
            ]
        counts: dict[Any, int] = {}
        stats: dict[int, dict[str, dict[str, str]]] = {}
        for unit, n, *rest in self.con.execute(
            f"SELECT _unit, {', '.join(aggs)} FROM {table} GROUP BY ALL"
        ).fetchall():
            counts[unit] = int(n)
            if unit is None:
                continue
            st: dict[str, dict[str, str]] = {}
            if "invalid_reason" in have:
                valid = int(rest.pop(0))
                st[_INVALID_STAT] = {"null_count": str(n - valid), "num_values": str(n)}
            if "schema_version" in have:
                known, lo, hi = rest.pop(0), rest.pop(0), rest.pop(0)
                st[_VERSION_STAT] = {"null_count": str(n - int(known)), "num_values": str(n)}
                if int(known):
                    st[_VERSION_STAT] |= {"min": str(lo), "max": str(hi)}
            if "warnings" in have:
                leaves, values = int(rest.pop(0)), int(rest.pop(0))
                st[_WARNING_STAT] = {
                    "null_count": str(leaves - values),
                    "num_values": str(leaves),
                }
            stats[int(unit)] = st
        return counts, stats

    def _copy_units(
        self,
        select: str,
        stage: Path,
        rows: int,
        counts: dict[Any, int],
        unit_stats: dict[int, dict[str, dict[str, str]]],
    ) -> list[tuple[Path, int]]:
        """A group's partitions by one COPY with PARTITION_BY (_unit) on one thread: a file
        each, stage/_unit=N renamed stage/uN (readers would see a column). Their rows and
        statistics come from _unit_stats, not RETURN_STATS: building those costs ~0.9 ms a
        file of the 56-column schema, a fifth of writing a tiny day's file."""
        opts = roworder.copy_options(
            rows, self.row_group_size, None, "PARTITION_BY (_unit)", zstd_level=self.zstd_level
        )
        self.con.execute(f"COPY ({select}) TO {quote_literal(str(stage))} ({opts})")
        out = []
        for d in sorted(stage.glob("_unit=*")):
            unit = int(d.name.split("=", 1)[1])
            renamed = stage / f"u{unit:05d}"
            os.replace(d, renamed)
            files = sorted(renamed.glob("*.parquet"))
            if len(files) != 1:  # one thread, no size limit: never; its counts would be unknown
                raise ConversionError(f"partition {unit} of a group was written as {len(files)}")
            path = files[0]
            out.append((path, int(counts[unit])))
            self.column_stats[path] = unit_stats.get(unit, {})
            self.unit_of_path[path] = unit
        return sorted(out)

    def _ordered(self, select: str) -> str:
        """The rows of select in the files' order (cvcatalog.io.roworder: spatial pruning)."""
        return roworder.ordered(self.con, select, self.order)

    def _all_null(self, paths: Sequence[Path], column: str) -> bool:
        """Whether the COPY's statistics show `column` (a stats name: '"a"', '"l"."element"')
        NULL in every row of every file; False when a file's statistics are unknown."""
        for p in paths:
            st = self.column_stats.get(p, {}).get(column)
            if st is None or "null_count" not in st or st["null_count"] != st.get("num_values"):
                return False
        return True

    def _json_structure(self) -> dict[str, Any]:
        """The read_columns as a json_transform structure (same types as read_json's columns)."""

        def structure(t: Any) -> Any:
            if t.id == "struct":
                return {name: structure(child) for name, child in t.children}
            if t.id == "list":
                return [structure(t.child)]
            return str(t)

        return {
            name: structure(self.con.sql(f"SELECT NULL::{ty}").types[0])
            for name, ty in self.schema.read_columns.items()
        }

    def _select(self, relation: str) -> str:
        """The canonical SELECT; when validating, flags rows generated outside their folder hour."""
        time_col = self.schema.time_column
        unit = ["b._unit AS _unit"] if self.units is not None else []
        if not self.validate or time_col is None:
            return self.schema.canonical_select_sql(
                relation, validate=self.validate, extra_columns=unit
            )
        inner = self.schema.canonical_select_sql(
            relation,
            validate=True,
            extra_columns=["b._folder_lo AS _folder_lo", "b._folder_hi AS _folder_hi", *unit],
        )
        t = quote_ident(time_col)
        return (
            "SELECT * EXCLUDE (_folder_lo, _folder_hi) REPLACE (CASE "
            f"WHEN {t} < _folder_lo OR {t} >= _folder_hi "
            f"THEN list_append(warnings, {quote_literal(OUTSIDE_HOUR)}) "
            f"ELSE warnings END AS warnings) FROM ({inner}) AS _c"
        )

    def _reparse(self, staged: list[tuple[Path, int]], broken: list[int]) -> list[tuple[Path, int]]:
        """Rebuild the rows of objects that had unreadable lines from their readable lines only.

        read_json(ignore_errors) may read the line after one cut off where a value must follow
        (after ':' or '[') as that value, losing a good record into the broken one; its rows for
        such an object cannot be trusted. The line scan can: it quarantines the unreadable lines
        and copies the readable ones, which then go through the same SQL as everything else.
        """
        keys = [self.files[i].key for i in broken]
        kept: list[tuple[Path, int]] = []
        for path, count in staged:
            src = quote_literal(str(path))
            (hit,) = self.con.execute(
                f"SELECT count(*) FROM read_parquet({src}, hive_partitioning = false) "
                "WHERE list_contains($k, source_key)",
                {"k": keys},
            ).fetchone() or (0,)
            if not hit:
                kept.append((path, count))
                continue
            tmp = path.with_name(path.stem + ".reparse.parquet")
            self.column_stats.pop(path, None)
            sub = (
                f"SELECT * FROM read_parquet({src}, hive_partitioning = false) "
                "WHERE NOT list_contains($k, source_key)"
            )
            (n,) = self.con.execute(
                f"COPY ({sub}) TO {quote_literal(str(tmp))} "
                f"({roworder.copy_options(count, self.row_group_size, zstd_level=self.zstd_level)})",
                {"k": keys},
            ).fetchone() or (0,)
            path.unlink()
            if int(n):
                os.replace(tmp, path)
                kept.append((path, int(n)))
            else:
                tmp.unlink(missing_ok=True)
        for i in broken:
            self._replace_with_readable(i)
        self.in_order = False  # the reparsed rows come as a file of their own
        return sorted(kept + self._stage(self._relation(broken, with_docs=False), "reparsed"))

    def _stage_stats(self, staged: list[Path]) -> _StageStats:
        stats = _StageStats({}, {})
        # files whose statistics show no invalid row need no scan (a clean day: none does)
        staged = [p for p in staged if not self._all_null([p], _INVALID_STAT)]
        if not staged:
            return stats
        rows = self.con.execute(
            "SELECT filename, source_key, split_part(invalid_reason, ': ', 1) AS category, "
            f"count(*), count(*) FILTER (WHERE {self._first_row}) "
            f"FROM read_parquet({list_literal(map(str, staged))}, filename = true, "
            "hive_partitioning = false) "
            "WHERE invalid_reason IS NOT NULL GROUP BY ALL"
        ).fetchall()
        for filename, key, category, n_rows, n_records in rows:
            stats.by_file.setdefault(str(Path(filename)), Counter())[category] += int(n_rows)
            stats.by_key.setdefault(key, Counter())[category] += int(n_records)
        return stats

    @property
    def _first_row(self) -> str:
        """SQL true on exactly one row of each record (every row unless records fan out)."""
        if FANOUT_COLUMN in self.schema.column_names:
            return f"coalesce({quote_ident(FANOUT_COLUMN)}, 0) = 0"
        return "TRUE"

    def _schema_versions(self, staged: list[Path]) -> list[int]:
        if not staged or self._all_null(staged, _VERSION_STAT):
            return []
        stats = [self.column_stats.get(p, {}).get(_VERSION_STAT) or {} for p in staged]
        bounds = {
            (st.get("min"), st.get("max"))
            for st in stats
            if st.get("null_count") != st.get("num_values")
        }
        if all("null_count" in st for st in stats) and len(bounds) == 1:
            lo, hi = next(iter(bounds))
            if lo is not None and lo == hi:  # one version in every file that has any
                return [int(lo)]
        rows = self.con.execute(
            "SELECT DISTINCT schema_version FROM "
            f"read_parquet({list_literal(map(str, staged))}, hive_partitioning = false) "
            "WHERE schema_version IS NOT NULL ORDER BY 1"
        ).fetchall()
        return [int(v) for (v,) in rows]

    def _warning_counts(self, parquet: list[Path]) -> dict[str, int]:
        return warning_counts(
            self.con,
            self.schema,
            parquet,
            validate=self.validate,
            warned=not self._all_null(parquet, _WARNING_STAT),
        )

    def _quarantine_malformed(self, stats: _StageStats, ndjson: list[int]) -> None:
        """Find the unparseable lines DuckDB counted, by a streaming scan of just those files."""
        by_key = {self.files[i].key: self.files[i] for i in ndjson}
        for key, counts in stats.by_key.items():
            expected = counts.get(MALFORMED, 0)
            if not expected:
                continue
            raw = by_key.get(key) if key is not None else None
            found = 0
            if raw is not None:
                for line, reason, text, size in _scan_lines(
                    raw.path, self.schema.required_top_level
                ):
                    self.quarantine.add(key, line, reason, text, size)
                    found += 1
            if found != expected:
                log.warning(
                    "%s: DuckDB found %d unreadable records, the line scan %d", key, expected, found
                )
                self.quarantine.add(
                    key,
                    None,
                    f"{MISMATCH}: DuckDB found {expected} unreadable record(s), the line scan "
                    f"{found}; {'some may also be in the Parquet' if found > expected else 'unlocated ones are lost'}",
                    None,
                )

    def _quarantine_invalid(
        self, stats: _StageStats, ndjson: list[int], documents: list[int]
    ) -> None:
        """Re-read only the objects holding invalid records, to quarantine them as raw JSON."""
        expected: Counter[str] = Counter()
        keys: set[str] = set()
        for key, counts in stats.by_key.items():
            for category, n in counts.items():
                if category != MALFORMED and key is not None:
                    expected[category] += n
                    keys.add(key)
        if not keys:
            return
        affected = [i for i in ndjson if self.files[i].key in keys]
        docs_hit = any(self.files[i].key in keys for i in documents)
        relation = self._relation(affected, with_docs=docs_hit, raw_lines=True)
        raw = "b._raw_line AS _raw"  # the line as published (a document's record: as JSON)
        select = self.schema.canonical_select_sql(
            relation, validate=self.validate, extra_columns=[raw]
        )
        target = self.work / "invalid.ndjson"
        (written,) = self.con.execute(
            "COPY (SELECT source_key, CAST(NULL AS BIGINT) AS line, invalid_reason AS reason, "
            f"_raw AS raw FROM ({select}) WHERE invalid_reason IS NOT NULL "
            f"AND invalid_reason <> {quote_literal(MALFORMED)} AND {self._first_row}) "
            f"TO {quote_literal(str(target))} (FORMAT json)"
        ).fetchone() or (0,)
        self.quarantine.append_ndjson(target)
        if int(written) != sum(expected.values()):
            self.quarantine.add(
                None,
                None,
                f"{MISMATCH}: re-reading found {written} invalid record(s), the conversion "
                f"{sum(expected.values())}",
                None,
            )

    def _rewrite_affected(
        self, staged: list[tuple[Path, int]], stats: _StageStats
    ) -> list[tuple[Path, int]]:
        """Rewrite, without the dropped rows, only the staged files that hold such rows."""
        keep = (
            "invalid_reason IS NULL"
            if self.drop_invalid
            else (f"invalid_reason IS NULL OR invalid_reason <> {quote_literal(MALFORMED)}")
        )
        out = []
        for path, count in staged:
            counts = stats.by_file.get(str(path), Counter())
            dropped = sum(counts.values()) if self.drop_invalid else counts.get(MALFORMED, 0)
            if not dropped:
                out.append((path, count))
                continue
            tmp = path.with_name(path.stem + ".rewrite.parquet")
            self.column_stats.pop(path, None)
            self.in_order = False  # the COPY need not keep the rows' order
            sub = (
                f"SELECT * FROM read_parquet({quote_literal(str(path))}, "
                f"hive_partitioning = false) WHERE {keep}"
            )
            (n,) = self.con.execute(
                f"COPY ({sub}) TO {quote_literal(str(tmp))} "
                f"({roworder.copy_options(count, self.row_group_size, zstd_level=self.zstd_level)})"
            ).fetchone() or (0,)
            path.unlink()
            if int(n):
                os.replace(tmp, path)
                out.append((path, int(n)))
            else:
                tmp.unlink(missing_ok=True)
        return out


def warning_counts(
    con: duckdb.DuckDBPyConnection,
    schema: MessageSchema,
    parquet: Sequence[Path],
    *,
    validate: bool,
    warned: bool = True,
    relation: str | None = None,
) -> dict[str, int]:
    """Row warnings by name, plus duplicate_record: rows identical to an earlier row of the
    partition in every column but source_key and warnings (a record published twice).
    warned=False: the files are known to hold no warning (their statistics), not scanned for
    them.

    Module level so that a partition merged from kept and new rows (cvcatalog.incremental)
    counts its warnings exactly as a conversion of the whole partition would. relation: the
    partition's rows as a SQL relation (kept rows of old files and new ones), instead of
    the files."""
    if not parquet and relation is None:
        return {}
    files = (
        relation or f"read_parquet({list_literal(map(str, parquet))}, hive_partitioning = false)"
    )
    rows = (
        con.execute(
            "SELECT w, count(*) FROM (SELECT unnest(warnings) AS w "
            f"FROM {files} WHERE len(warnings) > 0) "
            "GROUP BY w ORDER BY w"
        ).fetchall()
        if warned
        else []
    )
    counts = {str(w): int(n) for w, n in rows}
    if validate and _duplicates(con, files, schema.column_names[:8]):
        # the leading columns (time, identity, position) repeat: count whole-row duplicates
        counts[DUPLICATE] = _duplicates(con, files, None)
        if not counts[DUPLICATE]:
            del counts[DUPLICATE]
    return counts


def combine_results(
    con: duckdb.DuckDBPyConnection,
    schema: MessageSchema,
    parts: Sequence[ConvertResult],
    out_dir: Path,
    *,
    validate: bool,
) -> ConvertResult:
    """One partition's result from conversions of its objects in batches (convert_partition
    each, in listing order, into sub-directories of out_dir): the same rows, quarantine entries
    and counts as one conversion of all of them.

    Everything a conversion judges per object or per row adds up; what only the whole partition
    shows is computed again over all the files: the warnings (duplicate_record compares every
    row of the partition with every other, warning_counts). The batches' quarantine files become
    one out_dir/quarantine.ndjson (written aside, then renamed: a reader sees all or nothing).
    """
    files = [p for part in parts for p in part.parquet_files]
    reasons: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    for part in parts:
        reasons.update(part.reasons)
        kept.update(part.kept_invalid)
    quarantine_file = None
    sources = [p.quarantine_file for p in parts if p.quarantine_file is not None]
    if sources:
        quarantine_file = Path(out_dir) / QUARANTINE_NAME
        tmp = quarantine_file.with_name(QUARANTINE_NAME + ".tmp")
        with open(tmp, "wb") as out:
            for src in sources:
                with open(src, "rb") as f:
                    shutil.copyfileobj(f, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, quarantine_file)
    versions = sorted({v for part in parts for v in part.schema_versions})
    return ConvertResult(
        parquet_files=files,
        rows=sum(part.rows for part in parts),
        quarantined=sum(part.quarantined for part in parts),
        quarantine_file=quarantine_file,
        reasons=dict(reasons),
        warnings=warning_counts(con, schema, files, validate=validate),
        schema_versions=versions,
        unknown_versions=sorted({v for part in parts for v in part.unknown_versions}),
        kept_invalid=dict(kept),
        recovered=sum(part.recovered for part in parts),
    )


def order_partition(
    con: duckdb.DuckDBPyConnection,
    schema: MessageSchema,
    result: ConvertResult,
    out_dir: Path,
    *,
    rows_per_file: int,
    row_group_size: int,
) -> ConvertResult:
    """A partition converted in several batches (each in arrival order, ordered=False), its
    files rewritten once in the files' row order (cvcatalog.io.roworder.write_ordered: in
    runs of bounded size when large; row groups sized from the day's row count): a filter
    skips row groups only when the whole day is in order. The count must not change; the
    batch files are deleted. Nothing to do for a type without an order."""
    order = roworder.order_for(schema.source, schema.message_type)
    files = result.parquet_files
    if order is None or not files:
        return result
    stage = Path(out_dir) / "ordered"
    if stage.exists():
        shutil.rmtree(stage)
    written = roworder.write_ordered(
        con,
        [str(p) for p in files],
        stage,
        order,
        rows=result.rows,
        row_group_size=row_group_size,
        rows_per_file=rows_per_file,
        extra=["RETURN_STATS"],
    )
    out: dict[Path, int] = {}
    for filename, count, *_ in written:
        path = Path(filename)
        if count:
            out[path] = int(count)
        else:
            path.unlink(missing_ok=True)
    rows = sum(out.values())
    if rows != result.rows:
        shutil.rmtree(stage, ignore_errors=True)
        raise ConversionError(f"ordering the partition wrote {rows} rows, expected {result.rows}")
    for p in files:
        p.unlink(missing_ok=True)
    result.parquet_files = sorted(out)
    result.file_rows = out  # the stager need not read the new files' footers
    return result


def _duplicates(con: duckdb.DuckDBPyConnection, rows: str, columns: list[str] | None) -> int:
    """Rows minus distinct rows over the given columns (None: all but source_key, warnings).

    Identical rows hash alike, so a partition without repeats among a few leading columns
    (the usual case, and the cheap check) has no duplicate rows at all."""
    if columns is None:
        key = "*COLUMNS(* EXCLUDE (source_key, warnings))"
    else:
        key = ", ".join(quote_ident(c) for c in columns if c not in ("source_key", "warnings"))
    (n,) = con.execute(f"SELECT count(*) - count(DISTINCT hash({key})) FROM {rows}").fetchone() or (
        0,
    )
    return int(n)


# --------------------------------------------------------------------------------------------
# Python-side readers: only for documents and for locating broken lines.


def _folder_hour(schema: MessageSchema, key: str) -> tuple[datetime, datetime] | None:
    """The UTC interval of the hour folder a key `{source}/{type}/YYYY/MM/DD/HH/name` names.

    The folder clock is the producer's (sources.FOLDER_TIMEZONE); a wall-clock hour repeated at
    the end of daylight saving time spans both absolute hours. None for any other key.
    """
    if schema.time_column is None or schema.source in BINNED_SOURCES:
        return None
    parts = key.split("/")
    if len(parts) < 7 or parts[:2] != [schema.source, schema.message_type]:
        return None
    try:
        y, m, d, h = (int(x) for x in parts[2:6])
        zone = ZoneInfo(FOLDER_TIMEZONE[schema.source])
        first = datetime(y, m, d, h, tzinfo=zone, fold=0).astimezone(UTC)
        last = datetime(y, m, d, h, tzinfo=zone, fold=1).astimezone(UTC)
    except (ValueError, KeyError):
        return None
    return min(first, last), max(first, last) + timedelta(hours=1)


def _struct_of(schema: MessageSchema) -> str:
    return (
        "STRUCT(" + ", ".join(f"{quote_ident(k)} {v}" for k, v in schema.read_columns.items()) + ")"
    )


def _kind(head: bytes, more: bool) -> Literal["ndjson", "document", "empty"]:
    """NDJSON unless the object starts like a pretty-printed document (`{` or `[` alone), from
    its first _PEEK bytes (head) and whether more follow."""
    if head.startswith(rawfile.BOM):
        return "document"  # read_json cannot skip a BOM; the Python reader can
    body = head.lstrip()
    if not body:
        return "ndjson" if more else "empty"
    if body[:1] == b"[":
        # a top-level array is never an NDJSON record: a document, unless it is one whole line
        # with lines after it, an NDJSON object's first line that is no record (its elements
        # were quarantined each, re-serialised, instead of the line as published)
        first, _, rest = body.partition(b"\n")
        return "ndjson" if rest.strip() and _whole_json(first) else "document"
    return "document" if body.split(b"\n", 1)[0].strip() == b"{" else "ndjson"


def _whole_json(line: bytes) -> bool:
    """Whether a line is one complete JSON value."""
    try:
        json.loads(line)
    except (ValueError, RecursionError):
        return False
    return True


def _tells(head: bytes) -> bool:
    """Whether an object's first bytes give the kind its first _PEEK bytes would (_kind): not
    when they are fewer than a BOM, or blanks, or end inside a first line that is `{` so far."""
    body = head.lstrip()
    if len(head) < len(rawfile.BOM) or not body:
        return False
    first = body.split(b"\n", 1)
    return len(first) > 1 or first[0].strip() != b"{"


def _clip(text: str) -> str:
    return text if len(text) <= RAW_LIMIT else text[:RAW_LIMIT]


def _raw_bytes(data: bytes) -> bytes:
    """A line as quarantined: its bytes without the terminator (\n or \r\n)."""
    return data[:RAW_LIMIT].rstrip(b"\r\n")


def _source_bytes(text: str) -> bytes:
    """Text decoded with surrogateescape back to the bytes it came from."""
    return text.encode("utf-8", errors="surrogateescape")


def _record_problem(value: Any, required: tuple[str, ...]) -> str | None:
    """Why DuckDB would see this parsed value as an all-NULL row, or None if it is a record."""
    if not isinstance(value, dict):
        return f"not a record: a JSON {type(value).__name__ if value is not None else 'null'}"
    if all(value.get(k) is None for k in required):
        return f"not a record: none of {', '.join(required)}"
    return None


def _lone_surrogate(value: Any) -> bool:
    """DuckDB rejects a string with an unpaired \\uD800-\\uDFFF escape; Python accepts it."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _value_problem(value: Any, text: str, required: tuple[str, ...]) -> str | None:
    """Why DuckDB would read this value Python parsed from text as an all-NULL row, or None."""
    if "\\u" in text and _lone_surrogate(value):
        return "unpaired surrogate escape in a string"
    return _record_problem(value, required)


def parse_error(e: json.JSONDecodeError) -> str:
    """The parser's message and column ("Unterminated string starting at column 561": its
    message ends in "at" already, which read "at at column")."""
    return f"{e.msg.removesuffix(' at')} at column {e.colno}"


def _line_problem(line: bytes, required: tuple[str, ...]) -> str | None:
    """Why read_json(ignore_errors) would turn this line into an all-NULL row, or None."""
    body = line.rstrip(b"\r\n")
    if not body.strip():
        return None  # blank lines are skipped, not rows
    if body.lstrip().startswith(b"#"):
        return "comment line"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"invalid UTF-8 at byte {e.start}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        return parse_error(e)
    except RecursionError:
        return "nested too deeply"
    return _value_problem(value, text, required)


def _strip_line_bom(line: bytes) -> bytes:
    """A line starting with a byte order mark (objects concatenated with theirs) without it."""
    return line[len(rawfile.BOM) :] if line.startswith(rawfile.BOM) else line


@dataclass
class _Recovered:
    """What a line scan recovered from lines of joined records (_scan_lines)."""

    records: int = 0


def _scan_lines(
    path: Path,
    required: tuple[str, ...],
    good: IO[bytes] | None = None,
    recovered: _Recovered | None = None,
) -> Iterator[tuple[int, str, bytes, int | None]]:
    """(1-based line, quarantine reason, raw bytes, raw_size) of each line read_json could not
    turn into a record; raw_size is set (the line's full length) when raw is cut short.

    Streams with bounded memory: a line longer than MAX_SCAN_LINE is quarantined unparsed with
    its first RAW_HEAD bytes. With `good`, every readable line is copied there
    (newline-terminated, without a leading byte order mark), and a line of records joined
    without a newline (_joined_pieces) gives each of its records as a line of its own
    (counted in `recovered`) and only the fragments that are no record as entries (same line
    number; the reason's column is the fragment's in the line). Without `good` (nowhere to put
    them) such a line is one entry, as every unreadable line.
    """
    with open(path, "rb") as f:
        lineno = 0
        while True:
            line = f.readline(MAX_SCAN_LINE + 1)
            if not line:
                return
            lineno += 1
            if len(line) > MAX_SCAN_LINE:
                head, size = line[:RAW_HEAD], len(line)
                while line and not line.endswith(b"\n"):
                    line = f.readline(MAX_SCAN_LINE)
                    size += len(line)
                size -= 2 if line.endswith(b"\r\n") else 1 if line.endswith(b"\n") else 0
                yield (
                    lineno,
                    f"{TOO_LONG}: {size} bytes, over the {MAX_SCAN_LINE}-byte limit; not parsed",
                    head,
                    size,
                )
                continue
            line = _strip_line_bom(line)
            problem = _line_problem(line, required)
            if problem == COMMENT:
                yield lineno, f"{COMMENT}: starts with #", _raw_bytes(line), None
            elif problem is not None:
                pieces = _joined_pieces(line, required) if good is not None else None
                if pieces is None:
                    yield lineno, f"{MALFORMED}: {problem}", _raw_bytes(line), None
                    continue
                for piece, why in pieces:
                    if why is not None:
                        yield lineno, f"{MALFORMED}: {why}", piece, None
                    else:
                        assert good is not None
                        good.write(piece + b"\n")
                        if recovered is not None:
                            recovered.records += 1
            elif good is not None and line.strip():
                good.write(line if line.endswith(b"\n") else line + b"\n")


#: whitespace between joined records (a byte order mark too: objects concatenated with theirs)
_JOIN_WS = re.compile("[ \t\r\n\ufeff]*")
#: how much parsing the search for the next record after an unparseable fragment may spend,
#: in multiples of the line's length (failed attempts scan on; a hostile line stays linear)
_RESYNC_BUDGET = 4
#: failed attempts a line of joined records may cost (fragments, and candidates of the
#: resync that are no record): a parse error costs a scan of the line up to it
#: (json.JSONDecodeError's line and column), so a long line of many fragments would be
#: quadratic; past it, the rest of the line is one fragment
_MAX_LINE_ERRORS = 64


def _record_start(required: tuple[str, ...]) -> re.Pattern[str]:
    """Where a record may start after an unparseable fragment: a `{` right after a `}` (two
    records joined: `}{`), or a `{` opening with one of the record's top-level keys."""
    keys = "|".join(re.escape(k) for k in required)
    return re.compile(rf'\}}[ \t\r\n\ufeff]*(\{{)|(\{{)[ \t\r\n]*"(?:{keys})"[ \t\r\n]*:')


@dataclass
class _Resync:
    """What finding records in one line may still cost (_joined_pieces)."""

    chars: int  # parsing in failed attempts
    errors: int = _MAX_LINE_ERRORS  # failed parses


def _joined_pieces(
    line: bytes, required: tuple[str, ...]
) -> list[tuple[bytes, str | None]] | None:
    """A line read_json rejected as several JSON values joined without a newline: its pieces
    in order, each (bytes, None) for a record or (bytes, why) for a fragment that is none
    (a broken value, a value that is no record; why as _line_problem gives it, a parse
    error's column the line's). None when the line holds no whole record beside something
    else (not UTF-8, one value, nothing whole): it stays one unreadable line.

    After a fragment that does not parse, the next record is searched where one may start
    (_record_start) and must parse as a record; the search spends at most _RESYNC_BUDGET
    times the line's length and _MAX_LINE_ERRORS failed parses, then the rest of the line
    is the fragment."""
    try:
        text = line.rstrip(b"\r\n").decode("utf-8")
    except UnicodeDecodeError:
        return None
    decoder = json.JSONDecoder()
    starts = _record_start(required)
    pieces: list[tuple[str, str | None]] = []
    left = _Resync(_RESYNC_BUDGET * len(text))
    pos = _skip_join_ws(text, 0)
    while pos < len(text):
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            why = parse_error(e)
        except RecursionError:
            why = "nested too deeply"
        else:
            pieces.append((text[pos:end], _value_problem(value, text[pos:end], required)))
            pos = _skip_join_ws(text, end)
            continue
        left.errors -= 1
        nxt = _next_record(text, pos, decoder, starts, required, left)
        pieces.append((text[pos:nxt].rstrip(" \t\r\n\ufeff"), why))
        pos = nxt
    if len(pieces) < 2 or all(why is not None for _, why in pieces):
        return None
    return [(piece.encode("utf-8"), why) for piece, why in pieces]


def _skip_join_ws(text: str, pos: int) -> int:
    m = _JOIN_WS.match(text, pos)
    return m.end() if m else pos


def _next_record(
    text: str,
    after: int,
    decoder: json.JSONDecoder,
    starts: re.Pattern[str],
    required: tuple[str, ...],
    left: _Resync,
) -> int:
    """Where the next record of text after position `after` starts (len(text): none, or the
    search may cost no more: `left`, which each candidate (_record_start) that does not parse
    as a record pays for)."""
    for m in starts.finditer(text, after):
        at = m.start(1) if m.group(1) is not None else m.start(2)
        if at <= after:
            continue
        if left.chars <= 0 or left.errors <= 0:
            break
        try:
            value, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError as e:
            left.chars -= e.pos - at + 1
            left.errors -= 1
            continue
        except RecursionError:
            left.chars -= len(text) - at
            left.errors -= 1
            continue
        if _value_problem(value, text[at:end], required) is None:
            return at
        left.chars -= end - at
        left.errors -= 1
    return len(text)


def _documents(path: Path) -> Iterator[tuple[int, Any, str | None, bytes | None]]:
    """(start line, value, problem, raw) of each top-level JSON value of a document object.

    Documents are concatenated or single values; after a parse error the rest of the object
    cannot be resynchronised, so it is reported once (from where the bad value starts). Bytes
    that are not UTF-8 fail only the value holding them (kept exactly in its raw).
    """
    data = path.read_bytes()
    if data.startswith(rawfile.BOM):
        data = data[len(rawfile.BOM) :]
    text = data.decode("utf-8", errors="surrogateescape")
    del data
    decoder = json.JSONDecoder()
    pos, line, counted = 0, 1, 0
    while True:
        ws = _WS.match(text, pos)
        pos = ws.end() if ws else pos
        if pos >= len(text):
            return
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            where = f"at line {e.lineno} column {e.colno}"
            yield line, None, f"{e.msg} {where}", _source_bytes(_clip(text[pos:]))
            return
        except RecursionError:
            yield line, None, "nested too deeply", _source_bytes(_clip(text[pos:]))
            return
        if _lone_surrogate(value):
            raw = _source_bytes(_clip(text[pos:end]))
            try:
                raw.decode("utf-8")
                why = "unpaired surrogate escape in a string"
            except UnicodeDecodeError as e:
                why = f"invalid UTF-8 at byte {e.start} of the value"
            yield line, None, why, raw
        else:
            yield line, value, None, None
        pos = end
