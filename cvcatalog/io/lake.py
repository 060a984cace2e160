"""DuckLake, the catalog's table format: attaching it, its tables, and what a commit changes.

The DuckLake metadata lives in `<catalog>/catalog.ducklake`, a DuckDB file that also holds
cvcatalog's state tables (partitions, files, runs, ...). cvcatalog attaches the lake over that
same database (`METADATA_CATALOG`): a commit writes the state and the lake's snapshot in two
transactions on a private copy of that file (DuckDB lets a transaction write one attached
database), and one atomic rename publishes both (cvcatalog.state.db).

Data files are written by cvcatalog's own conversion (canonical columns only) and handed to
DuckLake with `ducklake_add_data_files`: the table's partition columns come from the hive
directories the files sit in (DuckLake stores them as partition values, so a filter on them
prunes files), its constant columns (source, message_type) from column defaults. A file
leaves the visible table when its rows are deleted (every row of it: DuckLake ends the file
in the new snapshot, no delete file); it is removed from disk only when the snapshots that
still show it expire.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath

import duckdb
import pyarrow as pa

from cvcatalog.io.duckdb_ext import load_extension, temporary_setting
from cvcatalog.sqlutil import quote_ident, quote_literal

#: the name cvcatalog (and the docs) attach the lake as
LAKE = "cv"
#: the lake's schema for data tables and views
SCHEMA = "main"
#: catalog-relative directory of DuckLake's data path
DATA_DIR = "lake"


@dataclass(frozen=True)
class TableSpec:
    """One DuckLake table: columns in order, constants as defaults, hive partition keys."""

    name: str
    columns: tuple[tuple[str, str], ...]
    constants: tuple[tuple[str, str], ...] = ()
    partition_keys: tuple[str, ...] = ()
    #: columns some files have and others lack (the quality step's `segment`)
    optional: tuple[tuple[str, str], ...] = field(default=())
    #: (old name, new name) of renamed columns (schema evolution without a rewrite)
    renamed: tuple[tuple[str, str], ...] = ()

    def ddl(self, with_optional: Iterable[str] = ()) -> str:
        consts = dict(self.constants)
        wanted = set(with_optional)
        items = []
        for name, typ in [*self.columns, *[(n, t) for n, t in self.optional if n in wanted]]:
            item = f"{quote_ident(name)} {typ}"
            if name in consts:
                item += f" DEFAULT {quote_literal(consts[name])}"
            items.append(item)
        return f"CREATE TABLE {qualified(self.name)} ({', '.join(items)})"


def qualified(name: str) -> str:
    return f"{LAKE}.{SCHEMA}.{quote_ident(name)}"


def data_path(base: str) -> str:
    """DuckLake's DATA_PATH for a lake rooted at base (catalog directory or s3://...)."""
    return f"{base.rstrip('/')}/{DATA_DIR}/"


@dataclass(frozen=True)
class AsOf:
    """A point in the lake's history: a snapshot id, or the snapshot current at a time."""

    snapshot: int | None = None
    time: datetime | None = None

    def option(self) -> str:
        """The ATTACH option that opens the lake there."""
        if self.snapshot is not None:
            return f"SNAPSHOT_VERSION {int(self.snapshot)}"
        if self.time is not None:
            return f"SNAPSHOT_TIME {quote_literal(self.time.isoformat())}"
        raise ValueError("AsOf needs a snapshot or a time")

    def __str__(self) -> str:
        return f"snapshot {self.snapshot}" if self.snapshot is not None else f"{self.time}"


def attach(
    con: duckdb.DuckDBPyConnection,
    metadata: str,
    *,
    data: str | None = None,
    read_only: bool = False,
    at: AsOf | None = None,
) -> None:
    """Attach the DuckLake whose metadata is the already attached database `metadata` (the
    catalog file itself) as `cv`. data: the DATA_PATH, used when the lake is created. at: the
    lake as it was then (read-only; time travel: its tables and views as of that snapshot)."""
    load_extension(con, "ducklake")
    options = [f"METADATA_CATALOG {quote_literal(metadata)}"]
    if at is not None:
        read_only = True
        options.append(at.option())
    if read_only:
        options.append("READ_ONLY")
        if data is not None:  # where the files are now (a catalog directory may move)
            options += [f"DATA_PATH {quote_literal(data)}", "OVERRIDE_DATA_PATH true"]
    else:
        # no inlined rows: every visible row is in a Parquet file Dask can read directly,
        # and deleting a file's rows ends the file instead of writing a delete file
        options.append("DATA_INLINING_ROW_LIMIT 0")
        if data is not None:
            options.append(f"DATA_PATH {quote_literal(data)}")
    # the attached databases read whole: no bound value while a catalog opens (settings.get)
    path = dict(con.execute("SELECT database_name, path FROM duckdb_databases()").fetchall()).get(
        metadata
    )
    if not path:
        raise ValueError(f"no attached database {metadata!r} to hold the lake's metadata")
    con.execute(f"ATTACH {quote_literal('ducklake:' + path)} AS {LAKE} ({', '.join(options)})")


def load(con: duckdb.DuckDBPyConnection) -> None:
    load_extension(con, "ducklake")


def relocate(con: duckdb.DuckDBPyConnection, data: str) -> None:
    """Record data as the lake's data path (the catalog directory moved or was copied; every
    file path in the lake is relative to it). A state write: before the lake is attached."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND table_name = 'ducklake_metadata'"
    ).fetchone()
    if exists and exists[0]:
        con.execute(
            "UPDATE ducklake_metadata SET value = ? WHERE key = 'data_path' AND value <> ?",
            [data, data],
        )


def restamp(con: duckdb.DuckDBPyConnection, when: datetime) -> None:
    """Move every snapshot's time so that the first is when, keeping their order and gaps
    (time travel tells them apart): a new catalog made from a copy of another's blank file
    (state.db) was made now, not when that one was. A state write, before the lake is
    attached."""
    con.execute(
        "UPDATE ducklake_snapshot SET snapshot_time = snapshot_time "
        "+ (?::TIMESTAMPTZ - (SELECT min(snapshot_time) FROM ducklake_snapshot))",
        [when],
    )


#: the metadata tables' identities: (table, its UUID column)
_IDENTITIES = (
    ("ducklake_schema", "schema_uuid"),
    ("ducklake_table", "table_uuid"),
    ("ducklake_view", "view_uuid"),
)


def reidentify(con: duckdb.DuckDBPyConnection) -> None:
    """Give every schema, table and view new UUIDs (one per object: its rows of other
    snapshots keep sharing theirs): a catalog made from a copy of the blank (state.blanks)
    had the blank's, so every new catalog's tables were the same tables to anything that
    tells lakes apart by them. A state write, before the lake is attached, as restamp."""
    for table, column in _IDENTITIES:
        t, c = quote_ident(table), quote_ident(column)
        con.execute(
            f"UPDATE {t} SET {c} = fresh.id FROM (SELECT old, uuid() AS id FROM "
            f"(SELECT DISTINCT {c} AS old FROM {t})) AS fresh WHERE {t}.{c} = fresh.old"
        )


def table_columns(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    """The lake's tables and their (column, type), in order. DESCRIBE each table rather than
    read duckdb_columns(): that binds every view of every attached database first (~0.2 s on a
    lake's first read in a process)."""
    # every attached database's tables, read whole: no bound value in a read (settings.get)
    tables = con.execute("SELECT database_name, schema_name, table_name FROM duckdb_tables()")
    names = sorted(t for d, s, t in tables.fetchall() if (d, s) == (LAKE, SCHEMA))
    prefix = f"{quote_ident(LAKE)}.{quote_ident(SCHEMA)}."
    return {
        t: [(r[0], r[1]) for r in con.execute(f"DESCRIBE {prefix}{quote_ident(t)}").fetchall()]
        for t in names
    }


def column_names(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    """The current lake's tables and their top-level column names, read from the metadata
    tables (the catalog file is the metadata database): a few ms, where listing them through
    DuckDB's catalog (table_columns) loads the whole lake's catalog first (~50 ms)."""
    rows = con.execute(
        "SELECT t.table_name, list(c.column_name) FROM ducklake_table t "
        "JOIN ducklake_schema s ON s.schema_id = t.schema_id "
        "AND s.end_snapshot IS NULL AND s.schema_name = ? "
        "JOIN ducklake_column c ON c.table_id = t.table_id "
        "AND c.end_snapshot IS NULL AND c.parent_column IS NULL "
        "WHERE t.end_snapshot IS NULL GROUP BY t.table_name",
        [SCHEMA],
    ).fetchall()
    return {name: set(cols) for name, cols in rows}


def view_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("SELECT database_name, view_name FROM duckdb_views() WHERE NOT internal")
    return {v for d, v in rows.fetchall() if d == LAKE}  # read whole, as table_columns


def macro_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The macros stored in the lake (the spatial `cv_*` macros) as of the snapshot the session
    attached, read from the metadata tables where the session finds them (the catalog file is
    the metadata database): ~2 ms, where DuckDB's duckdb_functions() lists every function of
    every loaded extension first (~20 ms a call, paid by every spatial query and export)."""
    snapshot = f"{quote_ident(LAKE)}.current_snapshot()"  # (the AT snapshot of time travel)
    try:
        rows = con.execute(
            "SELECT m.macro_name FROM ducklake_macro AS m JOIN ducklake_schema AS s "
            f"ON s.schema_id = m.schema_id AND s.schema_name = ? CROSS JOIN {snapshot} AS c "
            "WHERE c.id >= m.begin_snapshot AND (m.end_snapshot IS NULL OR c.id < m.end_snapshot) "
            "AND c.id >= s.begin_snapshot AND (s.end_snapshot IS NULL OR c.id < s.end_snapshot)",
            [SCHEMA],
        ).fetchall()
    except duckdb.CatalogException:  # the metadata tables are not on the session's path
        rows = con.execute(
            "SELECT DISTINCT function_name FROM duckdb_functions() WHERE database_name = ? "
            "AND schema_name = ? AND function_type IN ('macro', 'table_macro') AND NOT internal",
            [LAKE, SCHEMA],
        ).fetchall()
    return {r[0] for r in rows}


def create_table(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, optional: Iterable[str] = ()
) -> None:
    con.execute(spec.ddl(optional))
    if spec.partition_keys:
        keys = ", ".join(quote_ident(k) for k in spec.partition_keys)
        con.execute(f"ALTER TABLE {qualified(spec.name)} SET PARTITIONED BY ({keys})")


def rename_column(con: duckdb.DuckDBPyConnection, table: str, old: str, new: str) -> None:
    """Files registered before read the column under its new name (no rewrite)."""
    con.execute(
        f"ALTER TABLE {qualified(table)} RENAME COLUMN {quote_ident(old)} TO {quote_ident(new)}"
    )


def add_column(con: duckdb.DuckDBPyConnection, table: str, name: str, typ: str) -> None:
    """Files registered before read the new column as NULL (schema evolution, no rewrite)."""
    con.execute(f"ALTER TABLE {qualified(table)} ADD COLUMN {quote_ident(name)} {typ}")


def drop_table(con: duckdb.DuckDBPyConnection, table: str) -> None:
    con.execute(f"DROP TABLE IF EXISTS {qualified(table)}")


def data_location(con: duckdb.DuckDBPyConnection) -> str:
    """The lake's data path (files' locations start with it)."""
    return _data_path(con)


def _data_path(con: duckdb.DuckDBPyConnection) -> str:
    """Where the attached lake reads its files: a read-only attach of a catalog directory that
    was moved or copied overrides the recorded path (only a write records the new one), and
    locations resolved against the recorded path named the old directory (its files: damaged
    ones repaired there, or read there by time travel, while the moved catalog's own looked
    like orphans). The recorded path when the lake is not attached (a write, before it
    attaches the lake, records where it is)."""
    # one query on a commit's path (sync_all reads the lake's files for every table): a lake
    # attached to write was relocated to where it is before it was attached
    row = con.execute(
        "SELECT (SELECT readonly FROM duckdb_databases() WHERE database_name = ?), "
        "(SELECT value FROM ducklake_metadata WHERE key = 'data_path')",
        [LAKE],
    ).fetchone()
    read_only, recorded = row if row else (None, None)
    if read_only:
        now = con.execute(
            f"SELECT data_path FROM ducklake_settings({quote_literal(LAKE)})"
        ).fetchone()
        if now and now[0]:
            return str(now[0])
    return str(recorded) if recorded else ""


def _join(parent: str, path: str, relative: bool) -> str:
    return f"{parent.rstrip('/')}/{path}" if relative else path


@dataclass(frozen=True)
class DataFile:
    """A data file the lake's metadata lists (table and location resolved)."""

    table: str
    location: str  # absolute path or URL
    rows: int
    current: bool  # shown by the current snapshot (False: only older snapshots show it)
    since: int = 0  # the snapshot that registered it (its rows became visible then)
    until: int | None = None  # the snapshot that ended it (None: still shown)
    size: int = 0  # bytes
    #: rows its delete file in effect now deletes (rows - deleted: the rows it still shows)
    deleted: int = 0

    def shown_at(self, snapshot: int) -> bool:
        """Whether the lake as of that snapshot shows this file."""
        return self.since <= snapshot and (self.until is None or self.until > snapshot)


#: a file row's table (its latest name, its path, when it ended) and schema (its path), joined
#: by the file's table_id (data_files, delete_file_entries)
_TABLE_AND_SCHEMA = (
    "JOIN (SELECT table_id, any_value(schema_id) AS schema_id, "
    "      arg_max(table_name, begin_snapshot) AS table_name, any_value(path) AS path, "
    "      any_value(path_is_relative) AS path_is_relative, "
    "      CASE WHEN bool_or(end_snapshot IS NULL) THEN NULL ELSE max(end_snapshot) END "
    "      AS end_snapshot "
    "      FROM ducklake_table GROUP BY table_id) t USING (table_id) "
    "JOIN (SELECT schema_id, any_value(path) AS path, "
    "      any_value(path_is_relative) AS path_is_relative FROM ducklake_schema "
    "      GROUP BY schema_id) s USING (schema_id)"
)


def data_files(con: duckdb.DuckDBPyConnection, base: str | None = None) -> list[DataFile]:
    """Every data file in the lake's metadata, read from its tables in one query (the catalog
    file is the metadata database): a file's path is relative to its table's, the table's to
    its schema's, the schema's to the data path (base: this one, not the lake's), each unless
    marked absolute."""
    base = _data_path(con) if base is None else base
    rows = con.execute(
        "SELECT t.table_name, s.path, s.path_is_relative, t.path, t.path_is_relative, f.path, "
        "f.path_is_relative, f.record_count, f.end_snapshot IS NULL AND t.end_snapshot IS NULL, "
        "f.begin_snapshot, CASE WHEN f.end_snapshot IS NULL THEN t.end_snapshot "
        "WHEN t.end_snapshot IS NULL THEN f.end_snapshot "
        "ELSE least(f.end_snapshot, t.end_snapshot) END, f.file_size_bytes, "
        "(SELECT sum(d.delete_count) FROM ducklake_delete_file d "
        " WHERE d.data_file_id = f.data_file_id AND d.end_snapshot IS NULL) "
        "FROM ducklake_data_file f " + _TABLE_AND_SCHEMA
    ).fetchall()
    return [
        DataFile(
            table,
            _join(_join(_join(base, sp, sr), tp, tr), fp, fr),
            int(n),
            bool(now),
            int(b),
            None if e is None else int(e),
            int(size or 0),
            int(deleted or 0),
        )
        for table, sp, sr, tp, tr, fp, fr, n, now, b, e, size, deleted in rows
    ]


def active_files(
    con: duckdb.DuckDBPyConnection, files: list[DataFile] | None = None
) -> dict[str, set[str]]:
    """Table -> locations of the files it shows now (files: data_files, if already read)."""
    out: dict[str, set[str]] = {}
    for f in data_files(con) if files is None else files:
        if f.current:
            out.setdefault(f.table, set()).add(f.location)
    return out


def known_files(con: duckdb.DuckDBPyConnection, files: list[DataFile] | None = None) -> set[str]:
    """Locations of every file the lake knows: shown by any kept snapshot, or scheduled for
    deletion (they are not orphans, whatever the state tables say). files: data_files, if
    already read."""
    base = _data_path(con)
    out = {f.location for f in (data_files(con) if files is None else files)}
    for path, rel in con.execute(
        "SELECT path, path_is_relative FROM ducklake_files_scheduled_for_deletion"
    ).fetchall():
        out.add(_join(base, path, rel))
    return out | set(delete_files(con))


def delete_files(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Location -> bytes of the delete files the lake wrote for row deletes (DuckLake owns
    them: they go when the snapshots showing them expire), now or for an older snapshot."""
    return {f.location: f.size for f in delete_file_entries(con)}


def delete_file_entries(
    con: duckdb.DuckDBPyConnection, base: str | None = None
) -> list[DataFile]:
    """Every delete file in the lake's metadata, as data_files gives the data files (rows:
    the rows it deletes; current: in effect now), so `cache verify` checks it: against the
    SHA-256 the commit that wrote it recorded (state/checksums.record_written), or the size
    the lake recorded for one an earlier release wrote."""
    base = _data_path(con) if base is None else base
    rows = con.execute(
        "SELECT t.table_name, s.path, s.path_is_relative, t.path, t.path_is_relative, d.path, "
        "d.path_is_relative, d.delete_count, d.end_snapshot IS NULL AND t.end_snapshot IS NULL, "
        "d.begin_snapshot, CASE WHEN d.end_snapshot IS NULL THEN t.end_snapshot "
        "WHEN t.end_snapshot IS NULL THEN d.end_snapshot "
        "ELSE least(d.end_snapshot, t.end_snapshot) END, d.file_size_bytes "
        "FROM ducklake_delete_file d " + _TABLE_AND_SCHEMA
    ).fetchall()
    return [
        DataFile(
            table,
            _join(_join(_join(base, sp, sr), tp, tr), dp, dr),
            int(n or 0),
            bool(now),
            int(b),
            None if e is None else int(e),
            int(size or 0),
        )
        for table, sp, sr, tp, tr, dp, dr, n, now, b, e, size in rows
    ]


def record_counts(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, int]]:
    """Location -> (table, rows) of every file the lake shows now."""
    return {f.location: (f.table, f.rows) for f in data_files(con) if f.current}


def files(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """Locations (absolute path or URL) of the files the table shows now."""
    return sorted(active_files(con).get(table, set()))


def sync(
    con: duckdb.DuckDBPyConnection,
    table: str,
    want: Sequence[str],
    have: set[str] | None = None,
) -> tuple[list[str], list[str]]:
    """Make the table show exactly the files `want` (locations, in order); the one way
    cvcatalog changes what a table shows. have: what it shows now, if known. Returns
    (added, removed)."""
    have = set(files(con, table)) if have is None else have
    wanted = set(want)
    removed = sorted(have - wanted)
    added = [w for w in want if w not in have]
    if removed:
        con.execute(f"DELETE FROM {qualified(table)} WHERE list_contains(?, filename)", [removed])
    if added:  # one call for all of them: each call's cost grows with the table
        con.execute(
            "CALL ducklake_add_data_files(?, ?, ?, schema => ?, hive_partitioning => true, "
            "allow_missing => true)",
            [LAKE, table, registration_globs(con, added), SCHEMA],
        )
    return added, removed


#: registration_globs: the files of one glob sit this many directories below its root (a CV
#: table's month: day=/date=/file; an NGSIM table's location=/date=/file from the table)
GLOB_DEPTH = 3
_GLOB_CHARS = frozenset("*?[]{}\\")


def registration_globs(con: duckdb.DuckDBPyConnection, added: Sequence[str]) -> list[str]:
    """What ducklake_add_data_files is given for these files: a glob for each set of them
    under one directory GLOB_DEPTH levels up whose names share their prefix (a commit's
    files are named by its run: part-<run>-NNN.parquet) when DuckDB's glob of it matches
    exactly those files, checked here, else their paths. DuckLake reads the metadata of each
    path or glob it is given with one query of its own, ~1 ms each beside ~2 ms a file: a
    commit of a month of tiny days makes one query instead of 31 (bench/README.md, "Tiny
    days"). Files not on a local disk (s3:// URLs) are given as they are."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    out: list[str] = []
    for where in added:
        path = PurePosixPath(where)
        prefix = path.name.rpartition("-")[0]
        if not path.is_absolute() or len(path.parts) <= GLOB_DEPTH + 1 or not prefix:
            out.append(where)
            continue
        groups.setdefault((str(path.parents[GLOB_DEPTH - 1]), prefix, path.suffix), []).append(
            where
        )
    for (root, prefix, suffix), files in groups.items():
        pattern = "/".join([root, *["*"] * (GLOB_DEPTH - 1), f"{prefix}-*{suffix}"])
        exact = len(files) > 1 and not _GLOB_CHARS & set(root + prefix + suffix)
        if exact:
            found = con.execute("SELECT file FROM glob(?)", [pattern]).fetchall()
            exact = {f for (f,) in found} == set(files) and len(found) == len(files)
        out += [pattern] if exact else files
    return out


def delete_rows(con: duckdb.DuckDBPyConnection, table: str, by_file: dict[str, list[str]]) -> int:
    """Delete the rows of these source keys from these files (location -> keys) of the
    table: DuckLake writes delete files (or inlines small deletes), the files stay. Returns
    the rows deleted."""
    pairs = [(where, key) for where, keys in by_file.items() for key in keys]
    if not pairs:
        return 0
    row = con.execute(
        f"DELETE FROM {qualified(table)} WHERE list_contains(?, struct_pack(f := filename, "
        "k := source_key))",
        [[{"f": f, "k": k} for f, k in pairs]],
    ).fetchone()
    return int(row[0]) if row else 0


def last_snapshot(con: duckdb.DuckDBPyConnection) -> int:
    """The newest snapshot's id (the catalog database holds the lake's metadata)."""
    row = con.execute("SELECT max(snapshot_id) FROM ducklake_snapshot").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def snapshot_runs(ids: Iterable[int]) -> str:
    """Snapshot ids as lines name them: runs of consecutive ids as first..last ('2..4, 7')."""
    runs: list[list[int]] = []
    for i in sorted(set(ids)):
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}..{r[-1]}" for r in runs)


def current_snapshot(con: duckdb.DuckDBPyConnection) -> int:
    """The snapshot the attached lake shows (its newest, or the one it was attached at)."""
    row = con.execute("SELECT * FROM ducklake_current_snapshot(?)", [LAKE]).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


#: DuckDB's line for a name no table or view has (in the lake as of a snapshot, too)
_NO_TABLE = re.compile(r"Table with name (.+?) does not exist!")


def not_there_then(
    con: duckdb.DuckDBPyConnection, e: duckdb.Error, at: AsOf | None
) -> str | None:
    """For an error of a query on a lake attached at `at` (time travel) that names a table or
    view the lake did not show yet then: the line naming the snapshot that first shows it
    (not_yet_shown). None for any other error (a name never shown is a typo: DuckDB's own line
    says so), or when the session cannot tell (the query left it unusable)."""
    found = _NO_TABLE.search(str(e))
    if at is None or found is None or not isinstance(e, duckdb.CatalogException):
        return None
    try:
        return not_yet_shown(con, found.group(1), at)
    except duckdb.Error:
        return None


def not_yet_shown(con: duckdb.DuckDBPyConnection, name: str, at: AsOf) -> str | None:
    """For a lake attached at `at` (time travel): the one line saying that it shows no table
    or view called name yet, and which later snapshot first does; None if no later one does
    (the name is not one of the lake's). The metadata tables are current: they know every
    kept snapshot's tables and views."""
    then = current_snapshot(con)
    first = first_shown(con, name, after=then)
    if first is None:
        return None
    when = f"snapshot {then}" if at.snapshot is not None else f"{at} (snapshot {then})"
    return (
        f"{name} did not exist yet at {when}: the first snapshot with it is {first} "
        "(`cvcatalog snapshots` lists them)"
    )


def shows(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the attached lake (as of the snapshot it was attached at) has a table or view
    called name: a frame at a snapshot asks before reading the files that snapshot shows."""
    row = con.execute(
        "SELECT count(*) FROM ("
        "SELECT table_name AS name FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? "
        "UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = ? AND schema_name = ?"
        ") WHERE lower(name) = lower(?)",
        [LAKE, SCHEMA, LAKE, SCHEMA, name],
    ).fetchone()
    return bool(row and row[0])


def first_shown(con: duckdb.DuckDBPyConnection, name: str, after: int) -> int | None:
    """The first snapshot after `after` whose lake shows a table or view called name (names
    compare as SQL identifiers do: whatever their case), or None if none does."""
    row = con.execute(
        "SELECT min(begin_snapshot) FROM ("
        "SELECT table_name AS name, begin_snapshot FROM ducklake_table UNION ALL "
        "SELECT view_name, begin_snapshot FROM ducklake_view"
        ") WHERE lower(name) = lower(?) AND begin_snapshot > ?",
        [name, after],
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else None


#: the commit's extra info key for the rows of the files it ended, per table (snapshots)
ENDED = "ended"


def set_commit_message(
    con: duckdb.DuckDBPyConnection, message: str, extra: dict[str, object] | None = None
) -> None:
    """Label the snapshot this transaction commits (author cvcatalog, the run id in extra)."""
    con.execute(
        f"CALL {LAKE}.set_commit_message('cvcatalog', ?, extra_info => ?)",
        [message, json.dumps(extra or {}, sort_keys=True)],
    )


@dataclass
class Snapshot:
    """One commit of the lake: when, by which run, and the rows it added and removed per
    table (a file's rows count where the file begins and where it ends)."""

    snapshot_id: int
    committed_at: datetime
    message: str | None
    run_id: str | None
    added: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)

    @property
    def tables(self) -> list[str]:
        return sorted(set(self.added) | set(self.removed))


def snapshots(con: duckdb.DuckDBPyConnection) -> list[Snapshot]:
    """The lake's kept snapshots, oldest first. Reads DuckLake's metadata tables, which live
    in the catalog database (the connection's default database).

    The rows a snapshot removed by ending files are the ones its commit recorded (extra info
    `ended`: table -> rows), where it did: the files themselves leave the metadata when the
    snapshots that showed them expire (an eviction expires every older one at once), and
    their rows could no longer be counted. Snapshots committed before cvcatalog recorded it
    are counted from the files still known."""
    rows = con.execute(
        "SELECT snapshot_id, snapshot_time, commit_message, commit_extra_info "
        "FROM ducklake_snapshot s LEFT JOIN ducklake_snapshot_changes c USING (snapshot_id) "
        "ORDER BY snapshot_id"
    ).fetchall()
    out = {}
    recorded: set[int] = set()  # snapshots whose commit recorded the rows of the files it ended
    for sid, at, message, extra in rows:
        run_id = None
        if extra:
            try:
                run_id = json.loads(extra).get("run_id")
            except (ValueError, AttributeError):
                run_id = None
        out[sid] = Snapshot(int(sid), at, message, run_id)
        if extra:  # rows deleted from kept files (delete_rows), rows of ended files: at commit
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                info = json.loads(extra)
                removed = out[sid].removed
                for table, n in (info.get("deleted") or {}).items():
                    removed[str(table)] = removed.get(str(table), 0) + int(n)
                ended = info.get(ENDED)
                if isinstance(ended, dict):
                    for table, n in ended.items():
                        removed[str(table)] = removed.get(str(table), 0) + int(n)
                    recorded.add(sid)
    names = "(SELECT table_id, any_value(table_name) AS table_name FROM ducklake_table GROUP BY 1)"
    # a file that ends removes the rows it still shows: its rows less those its delete file (the
    # one in effect until then) had deleted, which the snapshot that deleted them counted
    deleted_before = (
        "(SELECT sum(d.delete_count) FROM ducklake_delete_file d "
        "WHERE d.data_file_id = f.data_file_id AND d.begin_snapshot < f.end_snapshot "
        "AND (d.end_snapshot IS NULL OR d.end_snapshot >= f.end_snapshot))"
    )
    for column, into, counted in (
        ("begin_snapshot", "added", "f.record_count"),
        ("end_snapshot", "removed", f"f.record_count - coalesce({deleted_before}, 0)"),
    ):
        changed = con.execute(
            f"SELECT f.{column}, t.table_name, sum({counted}) FROM ducklake_data_file f "
            f"JOIN {names} t USING (table_id) WHERE f.{column} IS NOT NULL GROUP BY ALL"
        ).fetchall()
        for sid, table, n in changed:
            if sid in out and not (into == "removed" and sid in recorded):
                counts = getattr(out[sid], into)
                counts[table] = counts.get(table, 0) + int(n)
    return list(out.values())


def changes(
    con: duckdb.DuckDBPyConnection,
    table: str,
    first: int,
    last: int,
    read: tuple[int, int] | None = None,
) -> pa.Table:
    """The net row changes of a lake table from snapshot first to last (inclusive): rows the
    later state has and the earlier lacks are inserts, the reverse deletes, each with the
    snapshot that made it (the last that added or removed it on balance: not a compaction,
    which rewrote it after). A file rewritten with its rows unchanged (a day merged by
    --check-changes, a compaction) nets to nothing, so only rows that really changed show.
    read: kept snapshots around first..last when first or last has expired (DuckLake reads
    changes between kept snapshots only; the expired snapshots' changes are still in its
    files): the changes are read between them, and only those of first..last kept."""
    # c: DuckLake labels the deletes of a delete file that spans several snapshots (a second
    # delete from the same data file merges into the first's file) with the file's first
    # snapshot, before the range read: a filter on the range dropped them (90 inserted, 0
    # deleted where 100 rows went). The range read holds only changes of its snapshots, so
    # its rows are kept, a label below it read as its first snapshot. A read wider than
    # first..last (expired snapshots, `read`) keeps its filter.
    # s: each row's net change in each snapshot, so a snapshot that rewrote it (a compaction:
    # deleted and inserted in one commit) nets to nothing and is not the one named for it
    sql = (
        "WITH c AS (SELECT * REPLACE (greatest(snapshot_id, ?) AS snapshot_id) "
        "FROM ducklake_table_changes(?, ?, ?, ?, ?) WHERE snapshot_id BETWEEN ? AND ?), "
        "s AS (SELECT * EXCLUDE (rowid, change_type), "
        "sum(CASE WHEN change_type IN ('insert', 'update_postimage') THEN 1 ELSE -1 END) "
        "AS _step FROM c GROUP BY ALL), "
        "g AS (SELECT * EXCLUDE (snapshot_id, _step), sum(_step) AS _net, "
        "max(snapshot_id) FILTER (WHERE _step > 0) AS _ins, "
        "max(snapshot_id) FILTER (WHERE _step < 0) AS _del "
        "FROM s GROUP BY ALL) "
        "SELECT CASE WHEN _net > 0 THEN 'insert' ELSE 'delete' END AS change_type, "
        "CASE WHEN _net > 0 THEN _ins ELSE _del END AS snapshot_id, "
        "g.* EXCLUDE (_net, _ins, _del) FROM g, range(CAST(abs(_net) AS BIGINT)) AS r(_n) WHERE _net <> 0 "
        "ORDER BY snapshot_id, change_type DESC, hash(g)"  # (ties: one order every time)
    )
    start, end = read if read is not None else (first, last)
    low = first if read is not None else 0  # the range read's own rows: every one of them
    params = [start, LAKE, SCHEMA, table, start, end, low, last]
    return con.execute(sql, params).arrow().read_all()


#: the file a DuckDB error names ("Cannot open file "...": ...", "... of file '...'")
_ERROR_FILE = re.compile(r"file\s+[\"']([^\"']+)[\"']", re.I)
#: DuckDB's words for a Parquet file it could not open or read as Parquet
_DAMAGED = ("Cannot open file", "Invalid footer", "No magic bytes", "too small to be a Parquet")
#: what follows the reader's own error when it met a missing or damaged data file
DAMAGED_FILE = (
    "(a data file of the catalog is missing or damaged, or a `cache clear` or `cache evict` "
    "removed it while this read: run it again; if this comes back, run "
    "`cvcatalog cache verify --repair`)"
)


def damaged_line(text: str, lake_data: str | None = None) -> str | None:
    """A reader's error line that met a lake file missing or damaged, with the command that
    mends it; None for any other line, and for one naming a file outside lake_data (a
    query's own read_parquet of the user's file: not the catalog's to mend)."""
    if not any(words in text for words in _DAMAGED):
        return None
    named = _ERROR_FILE.search(text)
    outside = (
        lake_data is not None
        and named is not None
        and not named.group(1).startswith(lake_data.rstrip("/") + "/")
    )
    return None if outside else f"{text} {DAMAGED_FILE}"


def rebuilt_at(con: duckdb.DuckDBPyConnection, table: str, after: int, through: int) -> int | None:
    """The last snapshot in (after, through] that dropped the table and made it anew (a
    repair's rebuild, tables.rebuild), or None. DuckLake's change feed reads one table by its
    name, the new one: every row it shows would read as inserted there, none as deleted."""
    row = con.execute(
        "SELECT max(n.begin_snapshot) FROM ducklake_table n JOIN ducklake_table o "
        "ON o.table_name = n.table_name AND o.end_snapshot = n.begin_snapshot "
        "AND o.table_id <> n.table_id "
        "WHERE n.table_name = ? AND n.begin_snapshot > ? AND n.begin_snapshot <= ?",
        [table, after, through],
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def expirable(
    con: duckdb.DuckDBPyConnection, older_than: datetime, keep: Iterable[int] = ()
) -> list[int]:
    """The snapshots expire_snapshots would expire (a read: most runs have none to expire)."""
    kept = snapshots(con)
    if not kept:
        return []
    spare = {kept[-1].snapshot_id, *keep}
    return [
        s.snapshot_id for s in kept if s.committed_at < older_than and s.snapshot_id not in spare
    ]


def expire_snapshots(
    con: duckdb.DuckDBPyConnection, older_than: datetime, keep: Iterable[int] = ()
) -> int:
    """Expire the snapshots committed before older_than, except the current one and those in
    keep (pinned); their files no kept snapshot shows are scheduled for deletion. Returns how
    many snapshots expired."""
    gone = expirable(con, older_than, keep)
    if not gone:
        return 0
    rows = con.execute("CALL ducklake_expire_snapshots(?, versions => ?)", [LAKE, gone]).fetchall()
    return len(rows)


def cleanup_files(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Delete the files no kept snapshot shows; returns their locations."""
    rows = con.execute("CALL ducklake_cleanup_old_files(?, cleanup_all => true)", [LAKE]).fetchall()
    return [r[0] for r in rows]


def pending_cleanup(con: duckdb.DuckDBPyConnection) -> int:
    """Files scheduled for deletion (shown by no kept snapshot)."""
    row = con.execute("SELECT count(*) FROM ducklake_files_scheduled_for_deletion").fetchone()
    return int(row[0]) if row else 0


def held_files(
    con: duckdb.DuckDBPyConnection, base: str, tables: Collection[str] | None = None
) -> tuple[list[tuple[str, int]], list[str]]:
    """The files only old snapshots show (kept for time travel or a pin until they expire;
    a dropped table's too) with the sizes the lake recorded, of these tables (None: every
    table), and the locations of every file shown now; resolved against base (data_path)."""
    files = data_files(con, base)
    held = [(f.location, f.size) for f in files
            if not f.current and (tables is None or f.table in tables)]  # fmt: skip
    return held, [f.location for f in files if f.current]


#: an unordered tail of the lake's per-file statistics smaller than this is never worth a
#: rewrite: two vectors of rows, ~0.2 ms more for a query that prunes on a column
STATS_TAIL_ROWS = 4096
#: ... nor one under this fraction of the whole table
STATS_TAIL_SHARE = 8


def stats_tail(con: duckdb.DuckDBPyConnection, through: int | None) -> tuple[int, int]:
    """Rows of DuckLake's per-file column statistics, and how many of them belong to files
    added after data file id `through` (None: every row): the rows appended since the table
    was last put in order (order_stats)."""
    row = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE data_file_id > ?) "
        "FROM ducklake_file_column_stats",
        [-1 if through is None else through],
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def stats_out_of_order(total: int, tail: int) -> bool:
    """Whether the appended tail is large enough, alone and against the whole, to rewrite."""
    return tail > max(STATS_TAIL_ROWS, total // STATS_TAIL_SHARE)


def order_stats(con: duckdb.DuckDBPyConnection) -> int:
    """Inside a write transaction on the metadata database: rewrite DuckLake's per-file column
    statistics ordered by (table, column, file); returns the last data file id it ordered.

    Why: a query that filters a column makes DuckLake read that column's statistics for
    every file of the table. Appended one commit at a time, a column's rows are spread over
    every vector of the table (60 columns a file), so DuckDB decompresses all of them; in
    this order they sit together. A one-day count on 1,000 days: 3.6 -> 0.8 ms for that read.
    The rows are the same rows, so no reader of the lake can tell but by its speed."""
    # the caller's transaction holds all of it: a failure rolls the copy back with the rest
    with temporary_setting(con, "preserve_insertion_order", True):
        con.execute(
            "CREATE TEMP TABLE cvcatalog_ordered_stats AS SELECT * "
            "FROM ducklake_file_column_stats ORDER BY table_id, column_id, data_file_id"
        )
        con.execute("DELETE FROM ducklake_file_column_stats")
        con.execute(
            "INSERT INTO ducklake_file_column_stats SELECT * FROM cvcatalog_ordered_stats"
        )
    row = con.execute("SELECT max(data_file_id) FROM cvcatalog_ordered_stats").fetchone()
    con.execute("DROP TABLE cvcatalog_ordered_stats")
    return int(row[0]) if row and row[0] is not None else -1


#: the column types whose statistics say whether they hold a NaN (DuckLake's float types)
_NAN_TYPES = ("float32", "float64")


def unseeded_tables(con: duckdb.DuckDBPyConnection) -> list[int]:
    """The ids of the current tables with no table statistics in the metadata (seed_stats'
    work)."""
    rows = con.execute(
        "SELECT table_id FROM ducklake_table WHERE end_snapshot IS NULL "
        "AND table_id NOT IN (SELECT table_id FROM ducklake_table_stats) ORDER BY table_id"
    ).fetchall()
    return [int(r[0]) for r in rows]


def seed_stats(con: duckdb.DuckDBPyConnection) -> int:
    """In a write's state transaction (the catalog file is the metadata database): give every
    table that has none the statistics of a table of no rows: 0 rows, and per leaf column no
    NULL, no NaN (float columns) and no bounds; none for a column no file holds (a constant,
    read from its default), which DuckLake gives none either. Returns the tables seeded.

    Why: DuckLake 1.5.5 keeps no answer for a table without statistics, so planning any query
    that reads an empty table asks the metadata database again for each column it reads, at
    every query (duckdb/ducklake#1313, fixed after 1.5.5): ~1.3 ms a column, 110 ms for a
    `SELECT *` of an empty BSM table, 80-350 ms for each query of a union view (`bsm`, `tim`,
    `bsm_trips`...) of a catalog holding one source. Seeded, they plan as tables with rows do.
    The first files a table gets update these rows as DuckLake updates any table's: the
    statistics come out the same as for a table never seeded (tests/test_lake.py)."""
    ids = unseeded_tables(con)
    if not ids:
        return 0
    con.execute(
        "INSERT INTO ducklake_table_column_stats (table_id, column_id, contains_null, "
        "contains_nan) SELECT c.table_id, c.column_id, false, "
        "CASE WHEN list_contains(?, c.column_type) THEN false END "
        "FROM ducklake_column c WHERE list_contains(?, c.table_id) "
        "AND c.end_snapshot IS NULL AND c.initial_default IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM ducklake_column d WHERE d.table_id = c.table_id "
        "AND d.parent_column = c.column_id AND d.end_snapshot IS NULL) "
        "AND NOT EXISTS (SELECT 1 FROM ducklake_table_column_stats s "
        "WHERE s.table_id = c.table_id AND s.column_id = c.column_id)",
        [list(_NAN_TYPES), ids],
    )
    con.execute(
        "INSERT INTO ducklake_table_stats (table_id, record_count, next_row_id, file_size_bytes) "
        "SELECT unnest(?::BIGINT[]), 0, 0, 0",
        [ids],
    )
    return len(ids)
