"""The catalog's DuckLake tables and views, made from the canonical schemas and the datasets.

Every canonical (source, type) and every dataset is one DuckLake table under its familiar
name (`wydot_bsm`, `nycdot_event`, `ngsim_trajectories`, ...), partitioned as the bucket is
(year/month/day and the date; NYCDOT's year/month/weekday/time bin; NGSIM's location/date).
The socrata, exploded NYCDOT, union (`bsm`, `tim`) and `trajectories` views are DuckLake
views over those tables: no view lists files, and a plain DuckDB session that attaches the
lake sees them all.

`sync_all` is the one place that decides what a table shows: at the end of every catalog
transaction it makes each table show exactly the data files the state tables call current
(complete partitions of the current canonical version; the published version of each
dataset input). So data and state cannot disagree, whichever operation wrote the state.
"""

from __future__ import annotations

import functools
import hashlib
import tempfile
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import duckdb
import pyarrow as pa

from cvcatalog import spatial
from cvcatalog.datasets import DATASETS
from cvcatalog.datasets.base import Dataset
from cvcatalog.io import lake
from cvcatalog.io.duckdb_ext import load_extension, open_instance
from cvcatalog.io.lake import TableSpec
from cvcatalog.io.storage import LakeStore
from cvcatalog.quality.config import IMPUTED_COLUMN, QUALITY_COLUMNS, SEGMENT_COLUMN
from cvcatalog.schemas import SCHEMAS, MessageSchema, render_sql
from cvcatalog.sqlutil import insert_rows, load_sql, quote_ident, quote_literal
from cvcatalog.state import datasets as dataset_state
from cvcatalog.state import deletes, manifest, trips

#: the cross-source view of positions (NGSIM and the BSM tables)
TRAJECTORIES_VIEW = "trajectories"
#: BSM tables folded into `trajectories`: (table, timestamp column, acceleration column)
BSM_TRAJECTORY_SOURCES = (
    ("wydot_bsm", "generated_at", "accel_long_mps2"),
    ("thea_bsm", "generated_at", "accel_long_mps2"),
)
_CONSTANTS = ("source", "message_type")
_OPTIONAL = QUALITY_COLUMNS
#: optional column -> the (rule, action) in quality_stats that says a file of the table has it
_OPTIONAL_WHEN = {SEGMENT_COLUMN: ("gaps", "segments"), IMPUTED_COLUMN: ("impute", "imputed")}

#: a catalog-relative path -> the location DuckDB opens (local absolute path or s3:// URL)
Locate = Callable[[str], str]


@functools.cache
def cv_spec(schema: MessageSchema) -> TableSpec:
    names = [n for n, _ in schema.partition_columns if n not in _CONSTANTS]
    keys = [n for n in names if n != "date"] + (["date"] if "date" in names else [])
    return TableSpec(
        name=schema.view_name,
        columns=tuple(schema.view_columns),
        constants=(("source", schema.source), ("message_type", schema.message_type)),
        partition_keys=tuple(keys),
        optional=_OPTIONAL,
        renamed=schema.renamed,
    )


@functools.cache
def dataset_spec(ds: type[Dataset]) -> TableSpec:
    return TableSpec(
        name=ds.view_name,
        columns=_arrow_columns(ds.arrow_schema),
        partition_keys=tuple(ds.partition_by),
        optional=_OPTIONAL,
    )


#: datasets made at run time (e.g. a test's own) that sources.ngsim.load has loaded in this process
_REGISTERED: dict[str, type[Dataset]] = {}


def register_dataset(ds: type[Dataset]) -> None:
    """Give a dataset that is not in DATASETS a table of its own (sources.ngsim.load calls this)."""
    if ds.name not in DATASETS:
        _REGISTERED[ds.name] = ds


def datasets() -> dict[str, type[Dataset]]:
    return {**DATASETS, **_REGISTERED}


def _arrow_columns(schema: pa.Schema) -> tuple[tuple[str, str], ...]:
    """(name, DuckDB type) of an Arrow schema, as DuckDB reads it (nested types included)."""
    con = open_instance()
    try:
        rel = con.from_arrow(schema.empty_table())
        return tuple((n, str(t)) for n, t in zip(rel.columns, rel.types, strict=True))
    finally:
        con.close()


def specs() -> dict[str, TableSpec]:
    out = {s.view_name: cv_spec(s) for s in SCHEMAS.values()}
    out.update({ds.view_name: dataset_spec(ds) for ds in datasets().values()})
    return out


# -- views --------------------------------------------------------------------------------
def union_views() -> dict[str, list[MessageSchema]]:
    """Union view name -> the schemas it spans (message types published by several sources)."""
    groups: dict[str, list[MessageSchema]] = {}
    for (_, message_type), schema in sorted(SCHEMAS.items()):
        groups.setdefault(message_type.lower(), []).append(schema)
    return {name: schemas for name, schemas in groups.items() if len(schemas) > 1}


def shared_columns(schemas: list[MessageSchema]) -> list[tuple[str, str]]:
    """The columns (same name and type) that all the schemas' tables share."""
    first = schemas[0].view_columns
    return [
        (col, typ) for col, typ in first if all((col, typ) in s.view_columns for s in schemas[1:])
    ]


def union_view_sql(view: str, schemas: list[MessageSchema]) -> str:
    """A view over the columns (same name and type) that all the schemas' tables share."""
    shared = shared_columns(schemas)
    cols = ", ".join(quote_ident(c) for c, _ in shared)
    parts = [f"SELECT {cols} FROM {quote_ident(s.view_name)}" for s in schemas]
    return f"CREATE OR REPLACE VIEW {view} AS " + " UNION ALL ".join(parts)


def trajectories_sql(view: str) -> str:
    """One row per position of any vehicle: NGSIM and the BSM tables."""
    parts = [
        'SELECT vehicle_id, "timestamp", latitude, longitude, speed_mps, accel_mps2, '
        f"{quote_literal(ds.name)} AS source, location FROM {quote_ident(ds.view_name)}"
        for ds in DATASETS.values()
    ]
    columns = {s.view_name: {n for n, _ in s.view_columns} for s in SCHEMAS.values()}
    need = {"vehicle_id", "latitude", "longitude", "speed_mps", "source"}
    for table, ts, accel in BSM_TRAJECTORY_SOURCES:
        if need | {ts, accel} <= columns.get(table, set()):
            parts.append(
                f'SELECT vehicle_id, {quote_ident(ts)} AS "timestamp", latitude, longitude, '
                f"speed_mps, {quote_ident(accel)} AS accel_mps2, source, "
                f"CAST(NULL AS VARCHAR) AS location FROM {quote_ident(table)}"
            )
    return f"CREATE OR REPLACE VIEW {view} AS " + " UNION ALL ".join(parts)


def view_statements(
    *, temporary: bool = False, max_gap_s: float = trips.DEFAULT_MAX_GAP_S
) -> dict[str, str]:
    """Every view of the lake: name -> CREATE OR REPLACE VIEW, in dependency order.
    temporary: as a session's own temporary views (a published catalog's reader).
    max_gap_s: the trips' gap (trips.max_gap_s), written into the trip views."""
    out: dict[str, str] = {}
    name_of = quote_ident if temporary else lake.qualified
    for schema in SCHEMAS.values():
        relation = quote_ident(schema.view_name)
        out[schema.socrata_view_name] = render_sql(
            load_sql("views", schema.socrata_view_template),
            view=name_of(schema.socrata_view_name),
            relation=relation,
        )
        for name, template in schema.extra_views:
            out[name] = render_sql(
                load_sql("views", template), view=name_of(name), relation=relation
            )
    for name, schemas in union_views().items():
        out[name] = union_view_sql(name_of(name), schemas)
    out[TRAJECTORIES_VIEW] = trajectories_sql(name_of(TRAJECTORIES_VIEW))
    relations = {name: [c for c, _ in shared_columns(s)] for name, s in union_views().items()}
    relations.update({ds.view_name: [c for c, _ in dataset_spec(ds).columns] for ds in DATASETS.values()})
    out.update(trips.view_statements(name_of, relations, max_gap_s))
    if temporary:
        verb = "CREATE OR REPLACE VIEW "
        out = {k: v.replace(verb, "CREATE OR REPLACE TEMP VIEW ", 1) for k, v in out.items()}
    return out


#: the key of a stored macro in `lake_views` (views and macros share the digest table)
MACRO_PREFIX = "macro "


def macro_statements() -> dict[str, str]:
    """The spatial macros (`cv_within`, `cv_in_bbox`, `cv_near_line`, ...: cvcatalog.spatial)
    stored in the lake, so a session that attaches the catalog and loads DuckDB's spatial
    extension can call them: `MACRO_PREFIX + name` -> CREATE OR REPLACE MACRO cv.main.name."""
    target = f"{lake.LAKE}.{lake.SCHEMA}"
    return {MACRO_PREFIX + n: s for n, s in spatial.macro_statements(target).items()}


def spatial_session(con: duckdb.DuckDBPyConnection, *, temporary: bool = False) -> None:
    """Make a read connection able to run the spatial macros: DuckDB's spatial extension
    loaded, and the macros defined for the session when its lake predates them (or always,
    temporary: a published catalog's reader uses no SQL stored in the catalog). A session
    whose external access is off already (a published catalog's) has the extension loaded
    before: it is not loaded again (it could not be)."""
    try:  # (binding a call: ~0.5 ms; a look through duckdb_functions(): ~20 ms)
        con.execute("SELECT ST_Point(0, 0)")
    except duckdb.CatalogException:  # not loaded
        load_extension(con, "spatial")
    con.execute(spatial.AXIS_ORDER_SQL)
    if not temporary and set(spatial.macro_statements()) <= lake.macro_names(con):
        return
    for sql in spatial.macro_statements(temporary=True).values():
        con.execute(sql)


# -- creating and evolving ----------------------------------------------------------------
def ensure(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Create missing tables and views; evolve tables whose columns changed; recreate views
    whose definition changed (lake writes only). Returns name -> digest of the views it
    (re)created, for record_views in the next transaction."""
    have = lake.table_columns(con)
    for name, spec in specs().items():
        current = have.get(name)
        if current is None:
            lake.create_table(con, spec)
            continue
        _evolve(con, spec, current)
    stored = dict(con.execute("SELECT name, sha256 FROM lake_views").fetchall())
    present = lake.view_names(con) | {MACRO_PREFIX + m for m in lake.macro_names(con)}
    installed = {}
    for name, sql in {
        **view_statements(max_gap_s=trips.recorded_gap(con)),
        **macro_statements(),
    }.items():
        digest = hashlib.sha256(sql.encode()).hexdigest()
        if stored.get(name) == digest and name in present:
            continue
        if name.startswith(MACRO_PREFIX):
            load_extension(con, "spatial")  # a macro's body is bound when it is created
        con.execute(sql)
        installed[name] = digest
    return installed


#: the last definitions: the schema and dataset objects, their digest and view digests
_DEFINED: list[tuple[tuple[object, ...], str, dict[str, str]]] = []


def _definitions(max_gap_s: float = trips.DEFAULT_MAX_GAP_S) -> tuple[str, dict[str, str]]:
    """The digest of every table spec and view statement, and each view's own digest; made
    again only when the registered schemas or the trips' gap change (rendering every view
    costs ~50 ms)."""
    key = (*SCHEMAS.values(), *datasets().values(), max_gap_s)
    if _DEFINED and _DEFINED[0][0] == key:
        return _DEFINED[0][1], _DEFINED[0][2]
    h = hashlib.sha256()
    for name, spec in sorted(specs().items()):
        h.update(f"{name}={spec!r}\n".encode())
    views = {}
    for name, sql in {**view_statements(max_gap_s=max_gap_s), **macro_statements()}.items():
        h.update(f"{name}={sql}\n".encode())
        views[name] = hashlib.sha256(sql.encode()).hexdigest()
    _DEFINED[:] = [(key, h.hexdigest(), views)]
    return _DEFINED[0][1], views


def definitions_digest(max_gap_s: float = trips.DEFAULT_MAX_GAP_S) -> str:
    """A digest of every table spec and view statement of this cvcatalog (ensure's input)."""
    return _definitions(max_gap_s)[0]


def up_to_date(con: duckdb.DuckDBPyConnection, *, seeded: bool = True) -> bool:
    """Whether the lake's tables and views are those ensure() would make: every table with
    its columns (by name, from the lake's metadata tables) and every view and macro installed
    from this cvcatalog's definition (lake_views), and (seeded) every table with statistics
    (lake.seed_stats). A read check, and a write's first: when it holds, the write skips
    ensure's walk over the lake's catalog."""
    have = lake.column_names(con)
    for name, spec in specs().items():
        now = have.get(name)
        if not now or any(n not in now for n, _ in spec.columns):
            return False
    if seeded and lake.unseeded_tables(con):  # an empty table without them plans slowly
        return False
    stored = dict(con.execute("SELECT name, sha256 FROM lake_views").fetchall())
    views = _definitions(trips.recorded_gap(con))[1]
    return all(stored.get(name) == digest for name, digest in views.items())


def record_views(con: duckdb.DuckDBPyConnection, installed: dict[str, str]) -> None:
    """Remember which definition of each lake view is installed (a state write). One
    statement for all of them: a new catalog installs ~35 (one INSERT each: ~40 ms)."""
    insert_rows(con, "lake_views", ["name", "sha256"], list(installed.items()), or_replace=True)


def _evolve(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, current: list[tuple[str, str]]
) -> None:
    """Columns added by a new canonical version become ALTER TABLE ... ADD COLUMN (old files
    read them as NULL), renamed ones RENAME COLUMN (old files read them by field); a removed column or a changed type rebuilds the table (sync_all then
    registers the files that are current under the new schema)."""
    now = dict(current)
    for old, new in spec.renamed:
        if old in now and new not in now:
            lake.rename_column(con, spec.name, old, new)
            now[new] = now.pop(old)
    optional = dict(spec.optional)
    wanted = [(n, _normal_type(con, t)) for n, t in spec.columns]
    unexpected = [n for n in now if n not in dict(wanted) and n not in optional]
    retyped = [n for n, t in wanted if n in now and now[n] != t]
    if not unexpected and not retyped:
        for n, t in spec.columns:
            if n not in now:
                lake.add_column(con, spec.name, n, t)
        return
    lake.drop_table(con, spec.name)
    lake.create_table(con, spec, [n for n in now if n in optional])


_TYPES: dict[str, str] = {}


def _normal_type(con: duckdb.DuckDBPyConnection, typ: str) -> str:
    """A type as duckdb_columns() spells it (TIMESTAMPTZ -> TIMESTAMP WITH TIME ZONE, ...)."""
    if typ not in _TYPES:
        row = con.execute(f"SELECT typeof(CAST(NULL AS {typ}))").fetchone()
        _TYPES[typ] = str(row[0]) if row else typ
    return _TYPES[typ]


def ensure_optional(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    """Add an optional column (e.g. `segment`) the first time a file of the table has it;
    whether it was added."""
    spec = specs()[table]
    typ = dict(spec.optional)[column]
    have = dict(lake.table_columns(con).get(table, []))
    if column in have:
        return False
    lake.add_column(con, table, column, typ)
    return True


# -- what each table shows ------------------------------------------------------------------
def current_files(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Table -> the catalog-relative data files the state calls current, in order."""
    out: dict[str, list[str]] = {name: [] for name in specs()}
    schemas = {s.view_name: s for s in SCHEMAS.values()}
    rows = con.execute(
        "SELECT p.source || '_' || lower(p.message_type) AS tbl, f.path, p.canonical_version, "
        "f.partition_key FROM partition_files f JOIN partitions p USING (partition_key) "
        "WHERE p.status = 'complete' AND f.kind = 'data' ORDER BY p.date, f.path"
    ).fetchall()
    for table, path, version, _ in rows:
        if table in out and table in schemas and schemas[table].reads(version):
            out[table].append(path)
    by_dataset = {ds.name: ds.view_name for ds in datasets().values()}
    rows = con.execute(
        "SELECT f.dataset, f.path FROM dataset_files f JOIN dataset_inputs i "
        "ON f.dataset = i.dataset AND f.uri = i.uri AND f.scope = i.scope "
        "AND f.fingerprint = i.fingerprint WHERE f.kind = 'data' ORDER BY f.partition, f.path"
    ).fetchall()
    for dataset, path in rows:
        if dataset in by_dataset:
            out[by_dataset[dataset]].append(path)
    return out


def fresh_names(
    con: duckdb.DuckDBPyConnection,
    store: LakeStore,
    staging: Path,
    rebuilt: Sequence[str],
    files: list[lake.DataFile],
    current: dict[str, list[str]],
) -> int:
    """A current file whose location the lake already knows from an older snapshot (an input
    shown again after a repair hid it), or any current file of a table about to be rebuilt,
    gets a new name before it is added: DuckLake deletes the old entry's file when that
    snapshot expires, which must not be the file shown now. A state write (paths in
    partition_files / dataset_files; a copy made in a scratch folder under staging). files:
    lake.data_files, current: current_files, as the commit read them. Returns how many."""
    active = lake.active_files(con, files)
    shown = set().union(set(), *active.values())
    if not rebuilt and all(store.location(r) in shown for c in current.values() for r in c):
        return 0  # nothing about to be added (most commits of state alone)
    old = lake.known_files(con, files) - shown
    for table in rebuilt:
        old |= active.get(table, set())
    todo = [rel for rels in current.values() for rel in rels if store.location(rel) in old]
    if not todo:
        return 0
    with tempfile.TemporaryDirectory(dir=staging) as scratch:
        for rel in todo:
            head, _, name = rel.rpartition("/")
            new = f"{head}/r{uuid.uuid4().hex[:8]}-{name}"
            store.duplicate(rel, new, Path(scratch))
            manifest.rename_file(con, rel, new)
            dataset_state.rename_file(con, rel, new)
            deletes.renamed(con, rel, new)
    return len(todo)


def rebuild(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Drop a table and create it anew, empty (sync_all then adds its current files)."""
    spec = specs()[table]
    have = dict(lake.table_columns(con).get(table, []))
    lake.drop_table(con, table)
    lake.create_table(con, spec, [n for n, _ in spec.optional if n in have])


class Synced(NamedTuple):
    """What sync_all changed in one table."""

    files_added: int
    files_removed: int
    #: the rows the removed files still showed (their rows less those already deleted)
    rows_removed: int


def sync_all(
    con: duckdb.DuckDBPyConnection,
    locate: Locate,
    files: list[lake.DataFile] | None = None,
    current: dict[str, list[str]] | None = None,
) -> dict[str, Synced]:
    """Make every table show exactly its current files; returns what changed in the tables
    that did (a column added counts, with nothing added or removed). files: lake.data_files
    as the lake is now, current: current_files, if already read (a commit reads each once
    for fresh_names and this)."""
    changed: dict[str, Synced] = {}
    optional = {c: _tables_with(con, c) for c in _OPTIONAL_WHEN}
    files = lake.data_files(con) if files is None else files
    shown = lake.active_files(con, files)
    showing = {f.location: f.rows - f.deleted for f in files if f.current}
    for table, paths in (current_files(con) if current is None else current).items():
        altered = False
        for column, tables in optional.items():
            if table in tables:
                altered = ensure_optional(con, table, column) or altered
        added, removed = lake.sync(
            con, table, [locate(p) for p in paths], shown.get(table, set())
        )
        if added or removed or altered:
            rows = sum(showing.get(r, 0) for r in removed)
            changed[table] = Synced(len(added), len(removed), rows)
    return changed


def apply_deletes(con: duckdb.DuckDBPyConnection, locate: Locate) -> dict[str, int]:
    """Delete from the lake the rows this commit's state deletes (state/deletes.py: the rows
    of changed or removed objects in a day's kept files), after sync_all. A lake write, in
    the transaction that syncs the tables. Returns table -> rows deleted."""
    wanted = deletes.pending(con)
    if not wanted:
        return {}
    table_of = {path: table for table, current in current_files(con).items() for path in current}
    by_table: dict[str, dict[str, list[str]]] = {}
    for path, keys in wanted.items():
        if path in table_of:  # a file no longer current has nothing left to delete from
            by_table.setdefault(table_of[path], {})[locate(path)] = keys
    done = {table: lake.delete_rows(con, table, rows) for table, rows in by_table.items()}
    return {table: n for table, n in done.items() if n}


def optional_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    """(name, type) of the quality columns some current or past file of a table has, as the
    recorded counts say (a state read): a frame shows them, NULL where a file lacks them."""
    return [(c, t) for c, t in _OPTIONAL if table in _tables_with(con, c)]


def _tables_with(con: duckdb.DuckDBPyConnection, column: str) -> set[str]:
    """Tables with files written with an optional column by the quality step (`segment` by
    gap detection, `imputed` by imputation), as its recorded counts say."""
    rule, action = _OPTIONAL_WHEN[column]
    rows = con.execute(
        "SELECT DISTINCT source, message_type FROM quality_stats WHERE rule = ? AND action = ?",
        [rule, action],
    ).fetchall()
    out = set()
    by_dataset = {ds.name: ds.view_name for ds in datasets().values()}
    for source, message_type in rows:
        schema = SCHEMAS.get((source, message_type))
        if schema is not None:
            out.add(schema.view_name)
        elif source in by_dataset:
            out.add(by_dataset[source])
    return out
