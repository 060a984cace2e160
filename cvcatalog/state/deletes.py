"""Deleted rows: the one owner of the `file_deletes` table.

`ingest --check-changes` writes a changed day as deletes and inserts: the day keeps its data
files, the rows of each changed or removed S3 object are deleted from them (keyed by
`source_key`) and the objects' new rows arrive in a new file. The lake applies a delete as
DuckLake does (a delete file, or inlined in the metadata); this table says the same thing by
object, so that readers of the files themselves (Dask frames, compaction, the next merge)
leave out exactly the rows the lake no longer shows, now or as of any kept snapshot.

A row is recorded pending (snapshot_id NULL) by the commit that decides it; the same
copy-on-write transaction applies it to the lake (tables.apply_deletes) and stamps it with
the snapshot that did (mark_applied), so state and lake change together or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence

import duckdb

from cvcatalog.sqlutil import list_literal, quote_ident


def record(
    con: duckdb.DuckDBPyConnection, deletes: Mapping[str, Iterable[str]], run_id: str | None
) -> int:
    """Delete the rows of these objects from these data files (path -> source keys), at this
    commit. Returns how many (file, object) pairs."""
    rows = [[path, key, run_id] for path, keys in deletes.items() for key in sorted(set(keys))]
    if rows:
        con.executemany(
            "INSERT INTO file_deletes (path, source_key, run_id, snapshot_id) "
            "VALUES (?, ?, ?, NULL)",
            rows,
        )
    return len(rows)


def pending(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Path -> source keys recorded by this commit and not yet applied to the lake."""
    out: dict[str, list[str]] = {}
    for path, key in con.execute(
        "SELECT path, source_key FROM file_deletes WHERE snapshot_id IS NULL ORDER BY 1, 2"
    ).fetchall():
        out.setdefault(str(path), []).append(str(key))
    return out


def mark_applied(con: duckdb.DuckDBPyConnection, snapshot_id: int) -> None:
    """The pending deletes became visible in this snapshot."""
    con.execute(
        "UPDATE file_deletes SET snapshot_id = ? WHERE snapshot_id IS NULL", [int(snapshot_id)]
    )


def of_files(
    con: duckdb.DuckDBPyConnection, paths: Iterable[str] | None, at: int | None = None
) -> dict[str, tuple[str, ...]]:
    """Path -> the source keys whose rows the lake no longer shows in that file (paths:
    these files, None: every file): now, or as of snapshot `at` (deletes applied by that
    snapshot or before)."""
    if not _exists(con):  # a catalog not yet written by this release: nothing deleted
        return {}
    sql = (
        "SELECT path, list(DISTINCT source_key ORDER BY source_key) FROM file_deletes "
        "WHERE snapshot_id IS NOT NULL"
    )
    params: list[object] = []
    if paths is not None:
        wanted = list(paths)
        if not wanted:
            return {}
        sql += " AND list_contains(?, path)"
        params.append(wanted)
    if at is not None:
        sql += " AND snapshot_id <= ?"
        params.append(int(at))
    rows = con.execute(sql + " GROUP BY path", params).fetchall()
    return {str(p): tuple(keys) for p, keys in rows}


def renamed(con: duckdb.DuckDBPyConnection, old: str, new: str) -> None:
    """A file got a new name (tables.fresh_names) and is added to the lake anew: its deletes
    are applied to the new name by this commit (the old name keeps its own, for the
    snapshots that still show it)."""
    con.execute(
        "INSERT INTO file_deletes (path, source_key, run_id, snapshot_id) "
        "SELECT DISTINCT ?, source_key, run_id, NULL FROM file_deletes WHERE path = ?",
        [new, old],
    )


def _exists(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the catalog has the table (read-only catalogs of an earlier release, e.g. a
    published one, are read as they are: migrations run on the first write)."""
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'file_deletes'"
    ).fetchone()
    return bool(row and row[0])


def gone_table(con: duckdb.DuckDBPyConnection, pairs: Iterable[tuple[str, str]]) -> str:
    """A temporary table of the (file location, source key) pairs whose rows are gone, for
    kept_rows_sql; returns its quoted name (the caller drops it)."""
    name = quote_ident(f"_cvcatalog_gone_{uuid.uuid4().hex}")
    con.execute(f"CREATE TEMP TABLE {name} (f VARCHAR, k VARCHAR)")
    rows = [[f, k] for f, k in pairs]
    if rows:
        con.executemany(f"INSERT INTO {name} VALUES (?, ?)", rows)
    return name


def gone_join(gone: str, file_column: str = "filename", how: str = "ANTI") -> str:
    """The JOIN of a read_parquet aliased `o` (its file's location in file_column) with the
    pairs of the table `gone` (gone_table): ANTI keeps the rows the lake shows, SEMI those it
    no longer does."""
    return f"{how} JOIN {gone} AS g ON o.{file_column} = g.f AND o.source_key = g.k"


def kept_rows_sql(files: Sequence[str], gone: str, options: str = "") -> str:
    """A SELECT of the files' rows but those of the pairs in the table `gone` (gone_table):
    what the lake shows of them. The lake's directories look like hive partitions: never read
    as columns. options: more read_parquet options (e.g. 'union_by_name = true')."""
    extra = f", {options}" if options else ""
    return (
        f"SELECT o.* EXCLUDE (filename) FROM read_parquet({list_literal(list(files))}, "
        f"filename = true, hive_partitioning = false{extra}) AS o {gone_join(gone)}"
    )
