"""Cache management: status, clear, integrity verification and repair (eviction itself is cvcatalog.state.eviction)."""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cvcatalog.io import lake
from cvcatalog.schemas import SCHEMAS
from cvcatalog.state import checksums, manifest
from cvcatalog.state.access import read_access_log
from cvcatalog.state.datasets import (
    Refetch,
    dataset_files,
    dataset_status,
    drop_damaged,
    forget,
)
from cvcatalog.state.db import CatalogDB, now_utc
from cvcatalog.state.eviction import cache_bytes

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
    with db.read_state() as con:
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
        row = {
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
        if outdated(row):  # it read as complete, and nothing else
            row["error"] = OUTDATED.format(
                p.canonical_version, SCHEMAS[(p.source, p.message_type)].canonical_version
            )
        rows.append(row)
    return rows + datasets


#: what a complete day of a canonical version this cvcatalog does not read says in `status`
OUTDATED = (
    "written under canonical version {}; this cvcatalog reads {}: not shown until its day is "
    "ingested again (which converts it)"
)


def outdated(row: dict[str, Any]) -> bool:
    """Whether a `status` row is a complete CV Pilot day of a canonical version this
    cvcatalog does not read: its rows are not shown (the lake shows current files only, from
    the next write on) until the day is converted again."""
    source, message_type = [*row["partition"].split("/"), ""][:2]
    schema = SCHEMAS.get((source, message_type))  # (a dataset's partition: None)
    version = row.get("canonical_version")
    return row["status"] == "complete" and schema is not None and not schema.reads(version)


def _utc(t: datetime | None) -> str | None:
    """A time as ISO 8601 in UTC (+00:00), as every listing prints times: DuckDB gives them
    in the machine's zone (a local offset here, UTC in snapshots and runs)."""
    return t.astimezone(UTC).isoformat() if t else None


def clear(
    db: CatalogDB, source: str | None = None, message_type: str | None = None
) -> tuple[int, int]:
    """Forget and delete partitions (all, one source, or one source/type) and dataset files
    (e.g. --source ngsim), then expire every snapshot a pin does not hold; returns (count,
    bytes freed): every byte of the catalog that went (eviction.cache_bytes before and after:
    the files only the expired snapshots showed count, those a pinned snapshot keeps do not).
    Nothing to clear expires nothing: `--source thea` of a catalog without thea took every
    other table's time travel with it, saying "cleared 0 partitions"."""
    before = cache_bytes(db)
    with db.write(message="cache clear") as con:
        parts = manifest.get_partitions(con, source, message_type)
        files = manifest.delete_partitions(con, list(parts))
        n_ds, ds_files = forget(con, db.paths, source, message_type)
    db.retire([f.path for f in files] + [f.path for f in ds_files])
    if parts or n_ds:  # clearing frees the disk: the snapshots still showing the files expire
        db.expire_snapshots(now_utc())
    return len(parts) + n_ds, max(0, before - cache_bytes(db))


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
    #: damaged or missing files (in mismatched, missing) that only older kept snapshots show,
    #: and which snapshots ('3..5'): a re-fetch gives only the current data, so repair restores
    #: them from a good file with the same recorded SHA-256 (mend_kept), or says why it cannot
    kept_only: dict[str, str] = field(default_factory=dict)
    #: tables whose delete file in effect now is damaged or missing: repair rebuilds them (the
    #: state re-applies their deletes: state/deletes.py)
    bad_delete_tables: list[str] = field(default_factory=list)
    #: files checked by size alone, nobody having recorded their SHA-256 (files an earlier
    #: release wrote or replaced before it recorded file_checksums, its delete files too)
    by_size: set[str] = field(default_factory=set)
    #: the line saying why this catalog may not change its S3 lake (a copy of its directory
    #: wrote there since: that copy's files are this one's "orphans", which a repair would
    #: delete): None if it may (CatalogDB.lake_behind)
    behind: str | None = None

    @property
    def clean(self) -> bool:
        return not (self.mismatched or self.missing or self.orphans)

    def rows(self) -> list[dict[str, str]]:
        out = [{"problem": self._kept(p, self._mismatch(p)), "path": p} for p in self.mismatched]
        out += [{"problem": self._kept(p, "missing file"), "path": p} for p in self.missing]
        out += [{"problem": "orphan file (not in the manifest)", "path": p} for p in self.orphans]
        return out

    def _mismatch(self, path: str) -> str:
        return "size mismatch" if path in self.by_size else "checksum mismatch"

    def _kept(self, path: str, problem: str) -> str:
        span = self.kept_only.get(path)
        return problem if span is None else f"{problem} (only older {span} it)"


def verify(db: CatalogDB) -> VerifyReport:
    """Re-hash every file the manifest lists and every file kept snapshots show beside them
    (check_kept), and look for files none of them lists (wherever the lake lives: S3 objects
    are streamed and hashed, not trusted by their metadata)."""
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
    report.behind = db.lake_behind()
    report.bad_partitions = sorted(bad)
    check_kept(db, report)
    return report


@dataclass(frozen=True)
class _Kept:
    """A file a kept snapshot shows that the state does not call current."""

    rel: str
    size: int  # as the lake recorded it (0: unknown)
    since: int  # the first snapshot that shows it
    until: int | None  # the snapshot that ended it (None: in effect now)
    table: str
    deletes: bool  # a delete file (else a data file only older snapshots show)
    shown_by: tuple[int, ...] = ()  # the kept snapshots that show it

    @property
    def span(self) -> str:
        """'snapshot 2 shows' / 'snapshots 2..4, 7 show': the kept snapshots that show it (not
        those between that expired: time travel cannot reach those anyway)."""
        if not self.shown_by:
            last = "now" if self.until is None else str(self.until - 1)
            return f"snapshots {self.since}..{last} show"
        text = lake.snapshot_runs(self.shown_by)
        return f"snapshot {text} shows" if len(self.shown_by) == 1 else f"snapshots {text} show"


def _kept_files(db: CatalogDB) -> tuple[list[_Kept], dict[str, checksums.Checksum]]:
    """The files kept snapshots show beside the state's current ones (data files only older
    snapshots show, the lake's delete files), and the recorded checksums."""
    with db.read() as con:
        current = {f.path for f in manifest.get_files(con)} | {d.path for d in dataset_files(con)}
        data = [f for f in lake.data_files(con) if not f.current]
        deletes = lake.delete_file_entries(con)
        recorded = checksums.recorded(con)
        kept_ids = [k.snapshot_id for k in lake.snapshots(con)]
    out: dict[str, _Kept] = {}
    for is_delete, entries in ((False, data), (True, deletes)):
        for e in entries:
            rel = db.lake_relative(e.location)
            if rel in current:
                continue
            seen = out.get(rel)
            until = e.until if seen is None else _later(seen.until, e.until)
            since = e.since if seen is None else min(seen.since, e.since)
            shown = tuple(i for i in kept_ids if since <= i and (until is None or i < until))
            out[rel] = _Kept(rel, e.size, since, until, e.table, is_delete, shown)
    return sorted(out.values(), key=lambda k: k.rel), recorded


def _later(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else max(a, b)


def check_kept(db: CatalogDB, report: VerifyReport) -> dict[str, checksums.Checksum]:
    """Check every file kept snapshots show beside the current ones against its recorded
    SHA-256 (file_checksums), or against its size in the lake's metadata where no hash was
    recorded; add what is damaged or missing to report. Returns the recorded checksums."""
    kept, recorded = _kept_files(db)
    store = db.store
    bad_tables: set[str] = set(report.bad_delete_tables)
    for k in kept:
        report.checked += 1
        want = recorded.get(k.rel)
        if want is not None:
            digest = store.sha256(k.rel)
            missing, damaged = digest is None, digest is not None and digest != want.sha256
        else:
            report.by_size.add(k.rel)
            size = store.size(k.rel)
            missing, damaged = size is None, size is not None and 0 < k.size != size
        if not (missing or damaged):
            report.ok += 1
            continue
        (report.missing if missing else report.mismatched).append(k.rel)
        if k.deletes and k.until is None:  # in effect now: the table's current rows need it
            bad_tables.add(k.table)
        else:
            report.kept_only[k.rel] = k.span
    report.bad_delete_tables = sorted(bad_tables)
    return recorded


@dataclass(frozen=True)
class Mended:
    """A damaged file only older snapshots show: restored, or why it could not be."""

    path: str
    ok: bool
    line: str  # what the CLI prints


def mend_kept(db: CatalogDB) -> list[Mended]:
    """Restore each damaged or missing file that only older snapshots show (found anew: the
    repair's re-fetches and rebuilds just made the damaged current files such files) from a
    good file with the same recorded SHA-256, e.g. the same day converted again; nothing is
    deleted. A file no good copy matches stays as it is, and the line says why."""
    found = VerifyReport()
    recorded = check_kept(db, found)
    if not found.kept_only:
        return []
    damaged = set(found.kept_only)
    sources: dict[str, list[str]] = {}  # sha256 -> files recorded with it, not known damaged
    for rel, c in sorted(recorded.items()):
        if rel not in damaged:
            sources.setdefault(c.sha256, []).append(rel)
    store = db.store
    out: list[Mended] = []
    for rel, span in sorted(found.kept_only.items()):
        want = recorded.get(rel)
        source = None if want is None else _good_copy(db, sources.get(want.sha256, []), want)
        if want is not None and source is not None:
            with tempfile.TemporaryDirectory(dir=_scratch(db)) as scratch:
                store.duplicate(source, rel, Path(scratch))
            if store.sha256(rel) == want.sha256:
                out.append(Mended(rel, True, f"restored {rel} from {source} (the same SHA-256)"))
                continue
        why = (
            "no SHA-256 was recorded for it, so no other file can stand in for it"
            if want is None
            else "a re-fetch gives only the current data, and no file of the catalog has its bytes"
        )
        state = (  # a damaged file is kept; a missing one (a repair deleted it) is gone
            "kept as it is" if store.size(rel) is not None else "it is gone from the catalog"
        )
        out.append(
            Mended(
                rel,
                False,
                f"cannot mend {rel}: only older {span} it and {why}; {state} "
                "(time travel to those snapshots fails until they expire)",
            )
        )
    return out


def _good_copy(db: CatalogDB, candidates: list[str], want: checksums.Checksum) -> str | None:
    """The first candidate whose bytes still hash as recorded (re-read: it may be damaged
    too, and verify has not seen a file the repair just wrote)."""
    for rel in candidates:
        if db.store.sha256(rel) == want.sha256:
            return rel
    return None


def _scratch(db: CatalogDB) -> Path:
    """Where a copy through the local disk goes (S3: a download of the good file)."""
    db.paths.staging.mkdir(parents=True, exist_ok=True)
    return db.paths.staging


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
    rebuild = sorted(
        set(_tables_showing(db, report.missing + report.mismatched)) | set(report.bad_delete_tables)
    )
    if report.bad_partitions or report.bad_dataset_files or report.bad_delete_tables:
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
        # damaged files are of no use to any snapshot: deleted now; the good ones of the same
        # days and units stay for the older snapshots that show them (the lake deletes them
        # when those expire), and those no snapshot shows go now
        damaged = set(report.missing) | set(report.mismatched)
        with db.read() as con:
            known = db.lake_files(con)
        db.store.discard(
            p for p in [f.path for f in files] + doomed if p in damaged or p not in known
        )
    store = db.store
    for rel in report.orphans:
        with contextlib.suppress(FileNotFoundError):
            store.delete(rel)
    return refetch


#: the fields of a `status --summary` row: one a table (CV source/type, or a dataset)
SUMMARY_COLUMNS = (
    "table", "partitions", "statuses", "rows", "quarantined", "parquet_bytes",
    "source_objects", "first_day", "last_day", "last_accessed",
)  # fmt: skip

_KEY_DAY = re.compile(r"(?:(\d{4})/(\d{2})/(\d{2})|date=(\d{4}-\d{2}-\d{2}))$")


def partition_table(key: str) -> str:
    """What a partition key belongs to: 'wydot/BSM' of 'wydot/BSM/2021/04/01', the dataset
    ('ngsim') of 'ngsim/location=i-80/date=2005-04-13'."""
    head, _, rest = key.partition("/")
    second = rest.partition("/")[0]
    return head if not second or "=" in second else f"{head}/{second}"


def partition_day(key: str) -> str | None:
    """The day of a partition key as YYYY-MM-DD (None: the key names none)."""
    m = _KEY_DAY.search(key)
    if m is None:
        return None
    return m.group(4) or f"{m.group(1)}-{m.group(2)}-{m.group(3)}"


def summarise_status(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`status` rows summed per table, for a catalog of hundreds of days: how many partitions
    in each status, rows, bytes, the first and last day with rows (a `no_data` marker of a
    day not yet published made the last day today) and the last access."""
    out: dict[str, dict[str, Any]] = {}
    statuses: dict[str, Counter[str]] = {}
    for r in rows:
        table = partition_table(r["partition"])
        s = out.setdefault(table, {c: None for c in SUMMARY_COLUMNS} | {"table": table})
        statuses.setdefault(table, Counter())[r["status"]] += 1
        for c in ("rows", "quarantined", "parquet_bytes", "source_objects"):
            s[c] = (s[c] or 0) + (r.get(c) or 0)
        day = partition_day(r["partition"]) if r.get("rows") else None
        if day is not None:
            s["first_day"] = min(s["first_day"] or day, day)
            s["last_day"] = max(s["last_day"] or day, day)
        if r.get("last_accessed") is not None:
            s["last_accessed"] = max(s["last_accessed"] or r["last_accessed"], r["last_accessed"])
    for table, s in out.items():
        s["partitions"] = sum(statuses[table].values())
        s["statuses"] = ", ".join(f"{k} {n}" for k, n in sorted(statuses[table].items()))
    return [out[t] for t in sorted(out)]

