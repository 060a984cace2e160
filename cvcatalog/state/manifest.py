"""Reads and writes of the catalog tables; every function takes an open connection.

Writers call these inside CatalogDB.write(), so a partition's row, its files, its source
objects and its validation counts change together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import duckdb

from cvcatalog.clock import now_utc
from cvcatalog.sources.bucket import PartitionKey
from cvcatalog.sqlutil import insert_rows, quote_ident


@dataclass
class PartitionRecord:
    partition_key: str
    source: str
    message_type: str
    date: date
    status: str
    rows: int = 0
    quarantined: int = 0
    parquet_bytes: int = 0
    source_objects: int = 0
    source_bytes: int = 0
    schema_versions: list[int] = field(default_factory=list)
    canonical_version: int | None = None
    error: str | None = None
    run_id: str | None = None
    created_at: datetime | None = None
    checked_at: datetime | None = None
    last_accessed: datetime | None = None

    @property
    def pk(self) -> PartitionKey:
        return PartitionKey.parse(self.partition_key)


@dataclass(frozen=True)
class FileRecord:
    path: str  # relative to the catalog directory
    partition_key: str
    kind: str  # data | quarantine
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class SourceObjectRecord:
    key: str
    size: int
    etag: str
    last_modified: datetime | None
    #: the run that loaded its rows (None: the partition's run)
    run_id: str | None = None


_PCOLS = [f for f in PartitionRecord.__dataclass_fields__]
#: partition_files: a FileRecord's columns and when it was recorded
_FILE_COLUMNS = ["path", "partition_key", "kind", "rows", "bytes", "sha256", "created_at"]


def _rows(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()
) -> list[dict[str, Any]]:
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def get_partitions(
    con: duckdb.DuckDBPyConnection,
    source: str | None = None,
    message_type: str | None = None,
    keys: Iterable[str] | None = None,
) -> dict[str, PartitionRecord]:
    sql = f"SELECT {', '.join(_PCOLS)} FROM partitions WHERE 1=1"
    params: list[Any] = []
    if source:
        sql += " AND source = ?"
        params.append(source)
    if message_type:
        sql += " AND message_type = ?"
        params.append(message_type)
    if keys is not None:
        sql += " AND list_contains(?, partition_key)"
        params.append(list(keys))
    sql += " ORDER BY source, message_type, date"
    out = {}
    for r in _rows(con, sql, params):
        r["schema_versions"] = list(r["schema_versions"] or [])
        out[r["partition_key"]] = PartitionRecord(**r)
    return out


def get_files(
    con: duckdb.DuckDBPyConnection, keys: Iterable[str] | None = None, kind: str | None = None
) -> list[FileRecord]:
    sql = "SELECT path, partition_key, kind, rows, bytes, sha256 FROM partition_files WHERE 1=1"
    params: list[Any] = []
    if keys is not None:
        sql += " AND list_contains(?, partition_key)"
        params.append(list(keys))
    if kind:
        sql += " AND kind = ?"
        params.append(kind)
    sql += " ORDER BY path"
    return [FileRecord(**r) for r in _rows(con, sql, params)]


def complete_data_files(
    con: duckdb.DuckDBPyConnection, source: str, message_type: str, versions: tuple[int, int]
) -> list[FileRecord]:
    """Data files the views may see: complete partitions of one (source, type) written under
    a canonical schema version in versions (oldest, newest) that reads as the current one
    (older ones wait for re-ingest rather than mix layouts)."""
    sql = (
        "SELECT f.path, f.partition_key, f.kind, f.rows, f.bytes, f.sha256 "
        "FROM partition_files f JOIN partitions p USING (partition_key) "
        "WHERE p.status = 'complete' AND f.kind = 'data' AND p.source = ? AND p.message_type = ? "
        "AND p.canonical_version BETWEEN ? AND ? ORDER BY p.date, f.path"
    )
    return [FileRecord(**r) for r in _rows(con, sql, [source, message_type, *versions])]


def get_source_objects(con: duckdb.DuckDBPyConnection, key: str) -> list[SourceObjectRecord]:
    return [
        SourceObjectRecord(**r)
        for r in _rows(
            con,
            "SELECT key, size, etag, last_modified, run_id FROM source_objects "
            "WHERE partition_key = ? "
            "ORDER BY key",
            [key],
        )
    ]


def object_origin(con: duckdb.DuckDBPyConnection, key: str) -> dict[str, Any] | None:
    """An S3 object the catalog holds rows of: its size, ETag and last-modified time as
    ingested, its partition, the run that recorded it and the partition's data files."""
    rows = _rows(
        con,
        "SELECT o.key AS source_key, o.etag, o.size, o.last_modified, o.partition_key, "
        "coalesce(o.run_id, p.run_id) AS run_id FROM source_objects o "
        "LEFT JOIN partitions p USING (partition_key) WHERE o.key = ?",
        [key],
    )
    if not rows:
        return None
    out = rows[0]
    files = con.execute(
        "SELECT path FROM partition_files WHERE partition_key = ? AND kind = 'data' ORDER BY 1",
        [out["partition_key"]],
    ).fetchall()
    out["files"] = [f[0] for f in files]
    return out


def run_objects(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """The source objects whose rows the run loaded (still current in the catalog)."""
    return _rows(
        con,
        "SELECT o.key AS source_key, o.etag, o.size, o.partition_key AS partition "
        "FROM source_objects o LEFT JOIN partitions p USING (partition_key) "
        "WHERE coalesce(o.run_id, p.run_id) = ? ORDER BY o.key",
        [run_id],
    )


def put_partition(
    con: duckdb.DuckDBPyConnection,
    rec: PartitionRecord,
    files: Sequence[FileRecord] = (),
    objects: Sequence[SourceObjectRecord] = (),
    validation: Iterable[tuple[str, str, int]] = (),
) -> list[FileRecord]:
    """Replace everything known about one partition; returns the files it no longer uses."""
    return put_partitions(con, [(rec, files, objects, validation)])


#: one partition's state rows, as put_partitions takes them
PartitionRows = tuple[
    PartitionRecord,
    Sequence[FileRecord],
    Sequence[SourceObjectRecord],
    Iterable[tuple[str, str, int]],
]


def put_partitions(
    con: duckdb.DuckDBPyConnection, items: Sequence[PartitionRows]
) -> list[FileRecord]:
    """put_partition of several partitions with a few statements for all of them (a commit of
    many small days: the statements, not the rows, are most of its cost); returns the files
    they no longer use."""
    keys = [rec.partition_key for rec, *_ in items]
    if len(set(keys)) != len(keys):  # the same partition twice: in order, one at a time
        return [f for item in items for f in put_partitions(con, [item])]
    if not items:
        return []
    now = now_utc()
    created = dict(
        con.execute(
            "SELECT partition_key, created_at FROM partitions WHERE list_contains(?, partition_key)",
            [keys],
        ).fetchall()
    )
    for rec, *_ in items:
        rec.created_at = created.get(rec.partition_key) or rec.created_at or now
        rec.checked_at = rec.checked_at or now
        if rec.status == "complete" and rec.last_accessed is None:
            rec.last_accessed = now
    previous = get_files(con, keys)
    con.execute("DELETE FROM partitions WHERE list_contains(?, partition_key)", [keys])
    insert_rows(con, "partitions", _PCOLS, [[getattr(rec, c) for c in _PCOLS] for rec, *_ in items])
    con.execute("DELETE FROM partition_files WHERE list_contains(?, partition_key)", [keys])
    files = [f for _, fs, _, _ in items for f in fs]
    insert_rows(
        con,
        "partition_files",
        _FILE_COLUMNS,
        [[f.path, f.partition_key, f.kind, f.rows, f.bytes, f.sha256, now] for f in files],
    )
    replaced = [rec.partition_key for rec, _, objs, _ in items if objs or rec.status != "failed"]
    if replaced:
        con.execute("DELETE FROM source_objects WHERE list_contains(?, partition_key)", [replaced])
    objects = [
        [o.key, rec.partition_key, o.size, o.etag, o.last_modified, o.run_id or rec.run_id]
        for rec, _, objs, _ in items
        for o in objs
    ]
    insert_rows(
        con,
        "source_objects",
        ["key", "partition_key", "size", "etag", "last_modified", "run_id"],
        objects,
    )
    rows = [
        [rec.run_id, rec.partition_key, kind, rule, n]
        for rec, _, _, validation in items
        for kind, rule, n in validation
        if n
    ]
    insert_rows(
        con, "validation_reports", ["run_id", "partition_key", "kind", "rule", "count"], rows
    )
    keep = {f.path for f in files}
    return [f for f in previous if f.path not in keep]


def delete_partitions(con: duckdb.DuckDBPyConnection, keys: Sequence[str]) -> list[FileRecord]:
    """Forget partitions; returns their files for the caller to delete after commit."""
    if not keys:
        return []
    files = get_files(con, keys)
    for table in ("partition_files", "source_objects", "partitions"):
        con.execute(f"DELETE FROM {table} WHERE list_contains(?, partition_key)", [list(keys)])
    return files


def touch(con: duckdb.DuckDBPyConnection, accessed: dict[str, datetime]) -> None:
    """Advance LRU clocks (never move them backwards)."""
    if not accessed:
        return
    con.executemany(
        "UPDATE partitions SET last_accessed = greatest(coalesce(last_accessed, ?::TIMESTAMPTZ), ?::TIMESTAMPTZ) "
        "WHERE partition_key = ?",
        [[t, t, k] for k, t in accessed.items()],
    )


def replace_data_files(
    con: duckdb.DuckDBPyConnection, key: str, files: Sequence[FileRecord]
) -> None:
    """A partition's data files give way to these (`compact`: the same rows, merged); the
    partition's parquet_bytes follows, as the ingest records it."""
    con.execute("DELETE FROM partition_files WHERE partition_key = ? AND kind = 'data'", [key])
    now = now_utc()
    insert_rows(
        con,
        "partition_files",
        _FILE_COLUMNS,
        [[f.path, key, "data", f.rows, f.bytes, f.sha256, now] for f in files],
    )
    con.execute(
        "UPDATE partitions SET parquet_bytes = ? WHERE partition_key = ?",
        [sum(f.bytes for f in files), key],
    )


def rename_file(con: duckdb.DuckDBPyConnection, old: str, new: str) -> None:
    """A partition's file now lives under another name (the same bytes)."""
    con.execute("UPDATE partition_files SET path = ? WHERE path = ?", [new, old])


def add_validation_counts(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    key: str,
    counts: Iterable[tuple[str, str, int]],
) -> None:
    """A run's counts (kind, rule, count) for one partition or unit key; zeros are left out."""
    rows = [[run_id, key, kind, rule, n] for kind, rule, n in counts if n]
    insert_rows(
        con, "validation_reports", ["run_id", "partition_key", "kind", "rule", "count"], rows
    )


def drop_validation_counts(con: duckdb.DuckDBPyConnection, run_id: str, keys: list[str]) -> None:
    """Forget a run's counts for these partition or unit keys (units whose rows the commit
    drops: they describe nothing the catalog keeps)."""
    if keys:
        con.execute(
            "DELETE FROM validation_reports WHERE run_id = ? AND list_contains(?, partition_key)",
            [run_id, keys],
        )


def start_run(con: duckdb.DuckDBPyConnection, run: dict[str, Any]) -> None:
    cols = list(run)
    con.execute(
        f"INSERT INTO ingest_runs ({', '.join(quote_ident(c) for c in cols)}) "
        f"VALUES ({', '.join('?' * len(cols))})",
        [run[c] for c in cols],
    )


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, values: dict[str, Any]) -> None:
    sets = ", ".join(f"{quote_ident(c)} = ?" for c in values)
    con.execute(f"UPDATE ingest_runs SET {sets} WHERE run_id = ?", [*values.values(), run_id])


def running_runs(con: duckdb.DuckDBPyConnection, host: str) -> list[tuple[str, int | None]]:
    """(run_id, pid) of this host's runs still recorded as running."""
    return [
        (r[0], r[1])
        for r in con.execute(
            "SELECT run_id, pid FROM ingest_runs WHERE status = 'running' AND host = ?", [host]
        ).fetchall()
    ]


def mark_interrupted(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """A run whose process is gone without recording its end: killed, or its last write
    failed (a full disk: the run may have finished; it said "killed or crashed" of such a
    run). Recorded with what it committed (the days and dataset units whose current
    version it wrote), as a Ctrl-C'd run records them."""
    con.execute(
        "UPDATE ingest_runs SET status = 'interrupted', "
        "message = 'its process ended without recording the end of the run (killed, "
        "crashed, or that last write failed: a full disk)', "
        "days_complete = d.n, partitions_rewritten = d.n + u.n, rows = d.rows + u.rows, "
        "quarantined = d.quarantined + u.quarantined "
        "FROM (SELECT count(*) AS n, coalesce(sum(rows), 0) AS rows, "
        "  coalesce(sum(quarantined), 0) AS quarantined FROM partitions "
        "  WHERE run_id = $run AND status = 'complete') AS d, "
        " (SELECT count(*) AS n, coalesce(sum(rows), 0) AS rows, "
        "  coalesce(sum(quarantined), 0) AS quarantined FROM dataset_units "
        "  WHERE run_id = $run) AS u "
        "WHERE ingest_runs.run_id = $run",
        {"run": run_id},
    )


def validation_report(
    con: duckdb.DuckDBPyConnection,
    run_id: str | None = None,
    source: str | None = None,
    message_type: str | None = None,
) -> list[dict[str, Any]]:
    """Counts per rule and partition for one ingest run (default: the latest with a report).
    A dataset unit's counts are keyed '<dataset>:<unit>' (no partitions row; older catalogs
    wrote '<dataset>/<unit>'): its source is the key up to ':' or '/', its type its run's."""
    where, params = ["1=1"], []
    if source:
        where.append("coalesce(p.source, regexp_extract(v.partition_key, '^[^/:]+')) = ?")
        params.append(source)
    if message_type:
        where.append("coalesce(p.message_type, k.message_type) = ?")
        params.append(message_type)
    cond = " AND ".join(where)
    counts = (
        "validation_reports v LEFT JOIN partitions p USING (partition_key) "
        "LEFT JOIN ingest_runs k ON k.run_id = v.run_id"
    )
    if run_id is None:
        latest = _rows(
            con,
            f"SELECT r.run_id FROM ingest_runs r WHERE EXISTS (SELECT 1 FROM {counts} "
            f"WHERE v.run_id = r.run_id AND {cond}) ORDER BY r.started_at DESC LIMIT 1",
            params,
        )
        if not latest:
            return []
        run_id = latest[0]["run_id"]
    return _rows(
        con,
        "SELECT v.run_id, v.partition_key AS partition, p.date, v.kind, v.rule, v.count "
        f"FROM {counts} WHERE v.run_id = ? AND {cond} ORDER BY v.partition_key, v.kind, v.rule",
        [run_id, *params],
    )


#: `cvcatalog runs` columns; those a catalog older than migration 005 lacks read as NULL
RUN_COLUMNS = [
    "run_id",
    "started_at",
    "finished_at",
    "status",
    "source",
    "message_type",
    "start_date",
    "end_date",
    "mode",
    "objects_added",
    "objects_changed",
    "objects_removed",
    "objects_unchanged",
    "partitions_rewritten",
    "days_complete",
    "days_no_data",
    "days_failed",
    "days_cached",
    "rows",
    "quarantined",
    "recovered",
    "get_requests",
    "list_requests",
    "seconds",
    "message",
]

#: the fields of a `report validation --summary` row: one a rule of a kind
VALIDATION_SUMMARY_COLUMNS = ("run_id", "kind", "rule", "count", "partitions", "first_day", "last_day")


def summarise_validation(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`report validation` rows summed per (kind, rule) over the partitions: the run's
    problems at a glance when it covered hundreds of days (most counted first)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        key = (str(r["kind"]), str(r["rule"]))
        s = out.setdefault(
            key,
            {"run_id": r["run_id"], "kind": key[0], "rule": key[1], "count": 0,
             "partitions": 0, "first_day": None, "last_day": None},
        )  # fmt: skip
        s["count"] += r["count"] or 0
        s["partitions"] += 1
        day = None if r.get("date") is None else str(r["date"])
        if day is not None:
            s["first_day"] = min(s["first_day"] or day, day)
            s["last_day"] = max(s["last_day"] or day, day)
    return sorted(out.values(), key=lambda s: (s["kind"], -s["count"], s["rule"]))



def list_runs(
    con: duckdb.DuckDBPyConnection,
    limit: int = 20,
    source: str | None = None,
    message_type: str | None = None,
) -> list[dict[str, Any]]:
    """The most recent ingest runs, newest first. A published catalog may predate a column
    (read-only: it cannot be migrated), which then reads as NULL instead of failing."""
    have = {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'ingest_runs'"
        ).fetchall()
    }
    cols = ", ".join(
        quote_ident(c) if c in have else f"NULL AS {quote_ident(c)}" for c in RUN_COLUMNS
    )
    where, params = ["1=1"], []
    if source:
        where.append("source = ?")
        params.append(source)
    if message_type:
        where.append("message_type = ?")
        params.append(message_type)
    return _rows(
        con,
        f"SELECT {cols} FROM ingest_runs WHERE {' AND '.join(where)} "
        "ORDER BY started_at DESC LIMIT ?",
        [*params, limit],
    )


def run_partitions(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """Partitions whose current version was written by run_id (with its row, object and file
    counts); days a later run rewrote belong to that run."""
    return _rows(
        con,
        "SELECT p.partition_key AS partition, p.date, p.status, p.rows, p.quarantined, "
        "p.source_objects AS objects, "
        "(SELECT count(*) FROM partition_files f WHERE f.partition_key = p.partition_key "
        " AND f.kind = 'data') AS files, p.parquet_bytes "
        "FROM partitions p WHERE p.run_id = ? ORDER BY p.source, p.message_type, p.date",
        [run_id],
    )
