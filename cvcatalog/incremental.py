"""Change data capture: re-ingest only the objects of a day that changed in the bucket.

A complete partition remembers the objects it was built from (``source_objects``: key, size,
ETag). ``ingest --check-changes`` lists the day again (LIST only), classifies each object as
added, changed, removed or unchanged, and when anything differs converts **only** the added and
changed objects, then merges them with the partition's current rows of unchanged objects (read
from its Parquet files by DuckDB, streamed file to file, never through Python) into a new
version of the partition. The ingest commits that version like any other (files, source
objects, row counts, validation counts and views in one catalog transaction), so each rewritten
day is its own checkpoint. See docs/incremental.md.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from cvcatalog.config import ValidationConfig
from cvcatalog.exceptions import ConversionError
from cvcatalog.io import roworder
from cvcatalog.io.download import ObjectInfo
from cvcatalog.io.layout import remove_tree
from cvcatalog.io.quarantine import read_entry, reason_category
from cvcatalog.io.roworder import RowOrder
from cvcatalog.io.storage import LakeStore
from cvcatalog.quality.config import QualityConfig
from cvcatalog.schemas import SCHEMAS, MessageSchema
from cvcatalog.sqlutil import list_literal, quote_ident, quote_literal
from cvcatalog.state import deletes
from cvcatalog.state.manifest import FileRecord, PartitionRecord, SourceObjectRecord
from cvcatalog.transform import (
    PARQUET_NAME,
    QUARANTINE_NAME,
    ConvertResult,
    warning_counts,
)

#: where the added and changed objects are converted, inside the partition's output directory
DELTA_DIR = "delta"


@dataclass(frozen=True)
class ObjectDelta:
    """How a day's listing differs from the objects its catalog version was built from."""

    added: tuple[ObjectInfo, ...]
    changed: tuple[ObjectInfo, ...]
    removed: tuple[str, ...]
    unchanged: tuple[ObjectInfo, ...]
    #: the partition's current files (data and quarantine), the rows to merge with
    files: tuple[FileRecord, ...] = ()
    #: rows earlier changes deleted from those files: path -> source keys (state/deletes.py)
    deleted: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: the objects as the catalog knew them (with the run that loaded each)
    known: tuple[SourceObjectRecord, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    @property
    def fetch(self) -> list[ObjectInfo]:
        """The objects to download and convert: added and changed ones, nothing else."""
        return [*self.added, *self.changed]

    @property
    def dropped_keys(self) -> list[str]:
        """Keys whose current rows and quarantine entries must go (changed or removed)."""
        return sorted([o.key for o in self.changed] + list(self.removed))

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "changed": len(self.changed),
            "removed": len(self.removed),
            "unchanged": len(self.unchanged),
        }

    def counts_text(self) -> str:
        """'1 added, 1 changed, 0 removed, 10 unchanged' (runs, plan --check-changes)."""
        c = self.counts()
        return (
            f"{c['added']} added, {c['changed']} changed, {c['removed']} removed, "
            f"{c['unchanged']} unchanged"
        )

    def describe(self) -> str:
        return f"incremental: {self.counts_text()}"


def to_fetch(
    listed: Sequence[ObjectInfo], delta: ObjectDelta | None, quality: QualityConfig | None
) -> tuple[list[ObjectInfo], bool]:
    """The objects a day's ingest downloads, and whether a changed day is converted whole: all
    it lists (no delta: not checked), else its added and changed ones, unless a quality config
    makes a changed day convert whole (its counts and cleaning cover the whole day)."""
    whole = delta is not None and not delta.empty and quality is not None
    return (list(listed) if delta is None or whole else delta.fetch), whole


def checkable(rec: PartitionRecord | None, force: bool) -> bool:
    """Whether --check-changes lists a partition the cache rules would otherwise skip: a
    complete one under the current canonical schema (an older schema is rebuilt anyway) or a
    no_data marker (the day may have been published since)."""
    if force or rec is None:
        return False
    if rec.status == "no_data":
        return True
    return rec.status == "complete" and SCHEMAS[(rec.source, rec.message_type)].reads(
        rec.canonical_version
    )


def diff_objects(
    listed: Sequence[ObjectInfo],
    known: Iterable[SourceObjectRecord],
    files: Iterable[FileRecord] = (),
    deleted: Mapping[str, tuple[str, ...]] | None = None,
) -> ObjectDelta:
    """Classify a listing against the stored objects by key, size and ETag.

    LastModified alone is not a change: S3 sets it on every PUT, also of identical bytes, and
    the ETag (an MD5 for single-part uploads) already says whether the bytes differ."""
    known = tuple(known)
    before = {o.key: o for o in known}
    added: list[ObjectInfo] = []
    changed: list[ObjectInfo] = []
    unchanged: list[ObjectInfo] = []
    for o in listed:
        old = before.get(o.key)
        if old is None:
            added.append(o)
        elif old.size != o.size or old.etag != o.etag:
            changed.append(o)
        else:
            unchanged.append(o)
    now = {o.key for o in listed}
    removed = sorted(k for k in before if k not in now)
    return ObjectDelta(
        tuple(added), tuple(changed), tuple(removed), tuple(unchanged), tuple(files),
        dict(deleted or {}), known,
    )  # fmt: skip


def empty_result() -> ConvertResult:
    """What converting no object at all gives (a day where objects were only removed)."""
    return ConvertResult([], 0, 0, None, {}, {}, [], [])


def merge_partition(
    con: duckdb.DuckDBPyConnection,
    schema: MessageSchema,
    store: LakeStore,
    delta: ObjectDelta,
    new: ConvertResult,
    out_dir: Path,
    *,
    validation: ValidationConfig,
    rows_per_file: int,
    row_group_size: int,
) -> ConvertResult:
    """The new version of a partition as deletes and inserts: its data files stay
    (result.kept), the rows of changed and removed objects are deleted from them
    (result.deletes, applied by the commit) and the added and changed objects' rows are the
    new files (result.parquet_files). Quarantine entries of unchanged objects and the new
    ones become one new quarantine file.

    The counts (rows, quarantine reasons, warnings, schema versions) are those of the whole
    partition after the change, as a conversion of all its objects would give (what the
    partition records); own_rows and own_quarantined are the run's part of them (what it
    reports as its work): the rows of the files it wrote and the entries of the objects it
    converted. Kept files written under an earlier canonical version with other columns than
    the new rows are rewritten instead (_rewrite), once: their rows take the new columns, and
    are the run's own (it wrote them again).
    """
    drop = delta.dropped_keys
    old = [f for f in delta.files if f.kind == "data"]
    where = {store.location(f.path): f.path for f in old}
    gone = {f.path: set(delta.deleted.get(f.path, ())) for f in old}
    new_files = [str(p) for p in new.parquet_files]
    old_quarantine = [
        store.local_copy(f.path, out_dir / f"kept-{i}.ndjson")
        for i, f in enumerate(delta.files)
        if f.kind == "quarantine"
    ]
    quarantine_file, reasons = _merge_quarantine(old_quarantine, new.quarantine_file, drop, out_dir)
    pairs = ""
    try:
        if old and new_files and _columns(con, list(where)) != _columns(con, new_files):
            pairs = _gone(con, {p: k | set(drop) for p, k in gone.items()}, store)
            parquet = _rewrite(
                con, list(where), new_files, pairs, out_dir, rows_per_file, row_group_size,
                schema.renamed, roworder.order_for(schema.source, schema.message_type),
            )  # fmt: skip
            files = [p for p, _ in parquet]
            written = sum(n for _, n in parquet)
            kept: list[str] = []
            to_delete: dict[str, list[str]] = {}
            rows_sql = (
                f"read_parquet({list_literal(map(str, files))}, hive_partitioning = false)"
                if files
                else None
            )
        else:
            # one scan of the kept files' source_key column: which objects' rows each holds
            held = _objects_in(con, list(where))
            dropped = set(drop)
            to_delete, kept = {}, []
            for f in old:
                rows = held.get(store.location(f.path), Counter())
                fresh = sorted(k for k in rows if k in dropped and k not in gone[f.path])
                # a file left with no row ends (the lake would end it too: DuckLake drops a
                # file whose every row is deleted), it does not stay with all its rows deleted
                if any(n for k, n in rows.items() if k not in dropped and k not in gone[f.path]):
                    kept.append(f.path)
                    if fresh:
                        to_delete[f.path] = fresh
            pairs = _gone(con, {p: gone[p] | set(to_delete.get(p, ())) for p in kept}, store)
            files = list(new.parquet_files)
            written = new.rows
            locations = [store.location(p) for p in kept]
            rows_sql = _day_rows(locations, new_files, pairs)
        counts = _day_counts(con, rows_sql)
        return ConvertResult(
            parquet_files=files,
            rows=counts[0],
            quarantined=sum(reasons.values()),
            quarantine_file=quarantine_file,
            reasons=dict(reasons),
            warnings=(
                warning_counts(con, schema, [], validate=validation.enabled, relation=rows_sql)
                if rows_sql is not None
                else {}
            ),
            schema_versions=counts[1],
            unknown_versions=new.unknown_versions,
            kept_invalid=new.kept_invalid,
            kept=kept,
            deletes=to_delete,
            recovered=new.recovered,  # the objects this change converted
            own_rows=written,
            own_quarantined=new.quarantined,
        )
    finally:
        if pairs:
            con.execute(f"DROP TABLE IF EXISTS {pairs}")


def _gone(
    con: duckdb.DuckDBPyConnection, gone: Mapping[str, Iterable[str]], store: LakeStore
) -> str:
    """deletes.gone_table of these kept files' (path -> source keys) pairs, by location."""
    pairs = [(store.location(path), key) for path, keys in gone.items() for key in sorted(keys)]
    return deletes.gone_table(con, pairs)


def _columns(con: duckdb.DuckDBPyConnection, files: list[str]) -> list[str]:
    """The columns of the first file (the files of one side share their layout)."""
    return [
        str(r[0])
        for r in con.execute(
            f"DESCRIBE SELECT * FROM read_parquet({quote_literal(files[0])}, "
            "hive_partitioning = false)"
        ).fetchall()
    ]


def _objects_in(con: duckdb.DuckDBPyConnection, files: list[str]) -> dict[str, Counter[str]]:
    """File location -> rows per source key (only the source_key column is read)."""
    if not files:
        return {}
    out: dict[str, Counter[str]] = {}
    for location, key, n in con.execute(
        f"SELECT filename, source_key, count(*) FROM read_parquet({list_literal(files)}, "
        "filename = true, hive_partitioning = false) GROUP BY ALL"
    ).fetchall():
        out.setdefault(str(location), Counter())[str(key)] = int(n)
    return out


def _row_selects(old: list[str], new: list[str], gone: str) -> list[str]:
    """SELECTs of the kept files' rows but the gone (file, key) pairs, and of the new
    files' rows (the lake's directories look like hive partitions: never read as columns)."""
    parts = [deletes.kept_rows_sql(old, gone)] if old else []
    if new:
        parts.append(f"SELECT * FROM read_parquet({list_literal(new)}, hive_partitioning = false)")
    return parts


def _day_rows(old: list[str], new: list[str], gone: str) -> str | None:
    """The partition's rows after the change as one SQL relation."""
    parts = _row_selects(old, new, gone)
    return f"({' UNION ALL '.join(parts)})" if parts else None


def _day_counts(con: duckdb.DuckDBPyConnection, rows: str | None) -> tuple[int, list[int]]:
    """Rows and schema versions of the partition's rows."""
    if rows is None:
        return 0, []
    found = con.execute(
        f"SELECT schema_version, count(*) FROM {rows} GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return sum(int(n) for _, n in found), [int(v) for v, _ in found if v is not None]


def _as_new_columns(
    con: duckdb.DuckDBPyConnection, old: str, new: str, renamed: tuple[tuple[str, str], ...]
) -> str:
    """The old rows' SELECT projected onto the new rows' columns, in their order."""
    ocols = [r[0] for r in con.execute(f"DESCRIBE {old}").fetchall()]
    ncols = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {new}").fetchall()]
    if ocols == [n for n, _ in ncols]:
        return old
    was = {new_name: old_name for old_name, new_name in renamed}
    items, used = [], set()
    for name, typ in ncols:
        src = name if name in ocols else was.get(name) if was.get(name) in ocols else None
        if src is None:
            items.append(f"CAST(NULL AS {typ}) AS {quote_ident(name)}")
        else:
            used.add(src)
            items.append(f"k.{quote_ident(src)} AS {quote_ident(name)}")
    if set(ocols) - used:  # a column went away: its meaning changed, not only the layout
        raise ConversionError(
            "the kept rows and the new rows have different columns; rebuild the day with "
            "--force-refresh"
        )
    return f"SELECT {', '.join(items)} FROM ({old}) AS k"


def _rewrite(
    con: duckdb.DuckDBPyConnection,
    old: list[str],
    new: list[str],
    gone: str,
    out_dir: Path,
    rows_per_file: int,
    row_group_size: int,
    renamed: tuple[tuple[str, str], ...] = (),
    order: RowOrder | None = None,
) -> list[tuple[Path, int]]:
    """Kept old rows (anti-joined against the gone (file, key) pairs) UNION ALL the new
    rows, one COPY into new files: for kept files whose columns differ from the new rows'.
    Old rows written under an earlier canonical version that only added or renamed columns
    take the new rows' columns (renamed ones under their new name, added ones NULL)."""
    parts = _row_selects(old, new, gone)
    if not parts:
        return []
    if len(parts) == 2:
        parts[0] = _as_new_columns(con, parts[0], parts[1], renamed)
    stage = out_dir / ".merge"
    union = " UNION ALL ".join(parts)
    (rows,) = con.execute(f"SELECT count(*) FROM ({union})").fetchone() or (0,)
    try:
        written = roworder.write_ordered(
            con,
            union,
            stage,
            order,
            rows=int(rows),
            row_group_size=row_group_size,
            rows_per_file=rows_per_file,
            extra=["RETURN_STATS"],
        )
        staged = []
        for filename, count, *_ in written:
            path = Path(filename)
            if count:
                staged.append((path, int(count)))
            else:
                path.unlink(missing_ok=True)
        out = []
        for i, (path, count) in enumerate(sorted(staged)):  # the conversion's naming and order
            target = out_dir / PARQUET_NAME.format(i)
            os.replace(path, target)
            out.append((target, count))
        return out
    finally:
        remove_tree(stage)


def _merge_quarantine(
    old: list[Path], new: Path | None, drop: list[str], out_dir: Path
) -> tuple[Path | None, Counter[str]]:
    """Kept quarantine entries of unchanged objects, then the new conversion's, line by line.

    Entries without a source_key (a partition-level count mismatch) cannot be attributed to an
    object and are kept."""
    dropped = set(drop)
    reasons: Counter[str] = Counter()
    target = out_dir / QUARANTINE_NAME
    tmp = out_dir / f".{QUARANTINE_NAME}.tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        for path, filter_keys in [*((p, True) for p in old), *([(new, False)] if new else [])]:
            with open(path, encoding="utf-8") as src:
                for line in src:
                    if not line.strip():
                        continue
                    entry = read_entry(line)
                    if filter_keys and entry.get("source_key") in dropped:
                        continue
                    out.write(line if line.endswith("\n") else line + "\n")
                    reasons[reason_category(str(entry.get("reason") or ""))] += 1
        out.flush()
        os.fsync(out.fileno())
    if not reasons:
        tmp.unlink()
        return None, reasons
    os.replace(tmp, target)
    return target, reasons
