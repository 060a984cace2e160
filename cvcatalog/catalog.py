"""The Python API: one Catalog object over one catalog directory."""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import json
import math
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cvcatalog import spatial
from cvcatalog.config import (
    DEFAULT_HOME,
    CacheConfig,
    DatasetConfig,
    DataSourceConfig,
    DownloadConfig,
    IngestConfig,
    as_items,
    build,
    check_day_order,
    check_source_type,
    check_workers,
    download_config,
    load_yaml,
    parse_day,
    timezone_arg,
    type_of,
    whole_number,
)
from cvcatalog.datasets import DATASETS, source_filter
from cvcatalog.datasets.base import Dataset
from cvcatalog.distributed import dask_pool
from cvcatalog.exceptions import CatalogError, ConfigError, MissingDataWarning, QueryError, warn
from cvcatalog.io import lake
from cvcatalog.io.download import S3Fetcher
from cvcatalog.io.duckdb_ext import (
    UTC_SESSION_SQL,
    extension_path,
    httpfs_extension,
    open_instance,
    s3_secret_sql,
)
from cvcatalog.io.duckdb_ext import endpoint_url as current_endpoint
from cvcatalog.io.layout import CatalogPaths, safe_rel
from cvcatalog.io.readlog import OnRead, ReadLog, file_log_sql, logged_opens, watched
from cvcatalog.io.s3 import RetryPolicy, TokenBucket, as_s3_error, make_client
from cvcatalog.io.storage import S3Access, S3Location, S3Store, is_remote, s3fs_options
from cvcatalog.ops import cache
from cvcatalog.ops.compact import CompactResult, compact
from cvcatalog.ops.discover import Discovery, ListingCache, Plan, fetcher_factory, listing_settings
from cvcatalog.ops.discover import discover as discover_listing
from cvcatalog.ops.discover import plan as plan_listing
from cvcatalog.ops.export import ExportProgress, ExportResult, check_where, result_batches
from cvcatalog.ops.export import export as export_slice
from cvcatalog.ops.publish import publish as publish_catalog
from cvcatalog.ops.remote import PUBLISH_JSON, RemoteCatalogDB, cache_dir_for, read_only_error
from cvcatalog.pipeline.report import Progress, Summary, check_progress
from cvcatalog.quality.coverage import CoverageReport, build_coverage
from cvcatalog.read import splits
from cvcatalog.schemas import SCHEMAS, MessageSchema
from cvcatalog.schemas.socrata import SocrataPlan, socrata_plan
from cvcatalog.sources import cvpilot, ngsim
from cvcatalog.sources.bucket import (
    FOLDER_TIMEZONE,
    VALID_TYPES,
    PartitionKey,
    partitions_for,
    utc_window,
)
from cvcatalog.spatial import SpatialFilter
from cvcatalog.sqlutil import quote_ident, quote_literal
from cvcatalog.state import deletes, manifest, pins, tables, trips
from cvcatalog.state.access import file_keys, record_access
from cvcatalog.state.datasets import dataset_files
from cvcatalog.state.datasets import run_inputs as dataset_run_inputs
from cvcatalog.state.datasets import run_partitions as dataset_run_partitions
from cvcatalog.state.db import LAKE_SECRET, CatalogDB, Notify, now_utc
from cvcatalog.state.eviction import GB, cache_bytes, evict_to_size, never_evicted

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd


Filters = Sequence[tuple[str, str, Any]]


def default_home() -> Path:
    """The catalog directory no argument names: CVCATALOG_HOME, else
    CVCATALOG_CACHE__DIRECTORY (cache.directory's variable, as for any other field), else
    ./data/catalog."""
    env = os.environ
    return Path(env.get("CVCATALOG_HOME") or env.get("CVCATALOG_CACHE__DIRECTORY") or DEFAULT_HOME)


def _remote_home() -> str | None:
    """CVCATALOG_HOME when it names a published catalog (s3://...), else None."""
    home = os.environ.get("CVCATALOG_HOME")
    return home if is_remote(home) else None


def _as_date(value: date | str | None, what: str) -> date | None:
    return None if value is None else parse_day(value, what)


def _split_days(
    start: date | str | None, end: date | str | None
) -> tuple[date | str | None, date | str | None]:
    """A split's days: a start alone is that one day (`cvcatalog split`'s --end defaults to
    --start), which its frames read too (to_dask reads on from a start alone)."""
    return (start, start) if start is not None and end is None else (start, end)


def _require_run(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    if not isinstance(run_id, str):  # (5 reached DuckDB as a cast of every run id to INT32)
        raise ConfigError(f"a run id is text, as `cvcatalog runs` lists them; got {run_id!r}")
    row = con.execute("SELECT count(*) FROM ingest_runs WHERE run_id = ?", [run_id]).fetchone()
    if not row or not row[0]:
        raise CatalogError(f"no ingest run {run_id!r} in this catalog (see `cvcatalog runs`)")


def _require_run_of(
    con: duckdb.DuckDBPyConnection, run_id: str, source: str | None, message_type: str | None
) -> None:
    """A run ingests one source and type: asking it for another is a mistake (a mixed-up run
    id or source), one line naming what the run did ingest, not an empty report."""
    row = con.execute(
        "SELECT source, message_type FROM ingest_runs WHERE run_id = ?", [run_id]
    ).fetchone()
    if not row or row[0] is None:  # a run recorded without its source: nothing to compare
        return
    ran_source, ran_type = row
    if (source is None or source == ran_source) and (
        message_type is None or ran_type is None or message_type == ran_type
    ):
        return
    asked = "/".join(x for x in (source, message_type) if x)
    runs = f"cvcatalog runs --source {source}" if source else "cvcatalog runs"
    ran = f"{ran_source}/{ran_type}" if ran_type else ran_source
    raise CatalogError(
        f"run {run_id} ingested {ran}: it holds no validation of {asked} (see `{runs}`)"
    )


def _same_pin(
    held: pins.Pin, snapshot: int | None, table: tuple[str, str | None] | None = None
) -> pins.Pin:
    """An experiment's existing pin, if it holds the snapshot asked for (None: any) of the
    (source, type) asked for (None: any): another was returned as if it were that one."""
    if table is not None and (held.source, held.message_type) != table:
        raise ConfigError(
            f"experiment {held.name!r} is pinned to {held.source}/{held.message_type}, not "
            f"{table[0]}/{table[1]}; give this experiment another name, or "
            f"`cvcatalog experiments unpin {held.name}` first"
        )
    if snapshot is not None and held.snapshot_id != snapshot:
        raise ConfigError(
            f"experiment {held.name!r} is pinned to snapshot {held.snapshot_id}, not "
            f"{snapshot} (data.snapshot); `cvcatalog experiments unpin {held.name}` "
            "first to pin another"
        )
    return held


_T = TypeVar("_T")

#: rows a batch of a query's reader holds (query_head, query_batches; `changes` writes its
#: table in batches of as many)
HEAD_BATCH_ROWS = 16_384


def _check_lock_timeout(value: Any) -> None:
    """Catalog(lock_timeout=...): seconds, 0 or more ("x" was a TypeError at the first read)."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf
    ):
        raise ConfigError(f"lock_timeout is a number of seconds, 0 or more, got {value!r}")


def _check_limit(limit: int | None) -> None:
    """A number of rows to list (runs, snapshots, query_spatial): a whole number, 0 or more."""
    if limit is None:
        return
    n = whole_number(limit)
    if n is None:
        raise ConfigError(f"limit must be a whole number, 0 or more, got {limit!r}")
    if n < 0:
        raise ConfigError(f"limit must be 0 or more, got {limit}")
    if n > _MAX_LIMIT:  # (10**30 reached DuckDB as an INT128 it cannot cast to BIGINT)
        raise ConfigError(f"limit must be at most {_MAX_LIMIT:,} (2**63 - 1), got {limit}")


#: the most rows a listing takes: DuckDB's BIGINT
_MAX_LIMIT = 2**63 - 1
#: the largest max_size_gb an eviction takes: its bytes fit a BIGINT (8 EiB)
_MAX_SIZE_GB = _MAX_LIMIT / GB
#: set while a call that has named its window's missing days reads it again (a split's three
#: frames): those reads do not name them again (per thread and task, unlike catch_warnings)
_missing_told: contextvars.ContextVar[bool] = contextvars.ContextVar("missing_told", default=False)


def _query_value(value: Any) -> Any:
    """A numpy number as the Python one DuckDB binds (a value taken from a frame, df.n.max():
    "Unable to transform python value of type numpy.int64"); its times DuckDB takes as
    they are."""
    if isinstance(value, np.generic) and not isinstance(value, np.datetime64 | np.timedelta64):
        return value.item()
    return value


def _query_params(params: Any) -> list[Any] | dict[str, Any] | None:
    """query's params as DuckDB binds them: a dict of named values, or the values of any
    sequence or iterable (a list, a tuple, a pandas Series, a generator); anything else is
    one line (a Series was "truth value ... ambiguous", a generator "has no len()")."""
    if params is None:
        return None
    if isinstance(params, Mapping):
        return {k: _query_value(v) for k, v in params.items()}
    if isinstance(params, str | bytes) or not isinstance(params, Iterable):
        raise QueryError(
            f"params is a list of values (for ?) or a dict of named ones (for $name), "
            f"got {params!r}"
        )
    return [_query_value(v) for v in params]


def _flag(name: str, value: Any) -> None:
    """A yes/no argument is True or False (a numpy bool too): "no" is truthy, and
    force_refresh="no" fetched the day again."""
    if not isinstance(value, bool | np.bool_):
        raise ConfigError(f"{name} is True or False, got {value!r}")


def _whole_number(name: str, value: Any, least: int) -> int:
    """An argument that takes a whole number (rows_per_file=): a str, a float or a bool is one
    line naming it, not a TypeError from deep inside or a count silently rounded."""
    n = whole_number(value)
    if n is None or n < least:
        raise ConfigError(f"{name} must be a whole number, {least} or more, got {value!r}")
    return n


def _choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """An argument that takes one of a few words (output=, naming=), in any case and with
    spaces around it; anything else is one line naming the argument and its words, not a
    silent default."""
    word = value.strip().lower() if isinstance(value, str) else None
    if word is None or word not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return word


def _column_names(columns: Sequence[str] | str | None) -> list[str] | None:
    """columns= as a list of names: a list, tuple or other iterable of names, or one str of
    names separated by commas (`"vehicle_id, speed_mps"`, as --columns takes them); a name
    given twice is read once. None: every column. Anything else is one ConfigError line."""
    if columns is None:
        return None
    items = columns.split(",") if isinstance(columns, str) else as_items(columns)
    if items is None or not all(isinstance(c, str) for c in items):
        raise ConfigError(
            "columns is a list of column names, e.g. ['vehicle_id', 'speed_mps'] (or one str "
            f"'vehicle_id,speed_mps'), got {columns!r}"
        )
    names = [c.strip() for c in items]
    if isinstance(columns, str):
        names = [c for c in names if c]
    return list(dict.fromkeys(names))


def _day_range(start: date | str | None, end: date | str | None) -> tuple[date | None, date | None]:
    """start and end as days, checked in order when both are given."""
    s, e = _as_date(start, "start"), _as_date(end, "end")
    if s is not None and e is not None:
        check_day_order(s, e)
    return s, e


@dataclass(frozen=True)
class Repaired:
    """One damaged CV day (its partition key) or dataset input ('<dataset> <uri>') fetched
    again by Catalog.repair: the rows it holds now, and its failures (days, units); or a
    table rebuilt, an orphan file deleted, or a file only older snapshots show restored (or
    why not), with its line."""

    what: str
    rows: int
    failed: int
    units: int | None = None  # a dataset input: the units loaded
    #: why it failed (the failed days' or units' errors)
    errors: tuple[str, ...] = ()
    #: what a repair that is no re-fetch did, in one line (None: a re-fetch)
    line: str | None = None


@dataclass(frozen=True)
class DaskPiece:
    """One lazy Dask partition: the files of one catalog partition, and its partition values."""

    files: tuple[str, ...]
    constants: tuple[tuple[str, Any], ...]
    s3: S3Access | None = None  # the lake is on S3: read through s3fs
    #: file -> source keys whose rows the lake no longer shows in it (state/deletes.py)
    deleted: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class FrameSpec:
    """What a frame is of: its name, example partition values (typing an empty frame), the
    schema of its files when there are none, its time column and the Dask label."""

    name: str
    constants: tuple[tuple[str, Any], ...]
    empty_schema: Callable[[], pa.Schema]
    time_column: str | None
    label: str
    #: (old name, new name) of columns renamed by a canonical version (MessageSchema.renamed)
    renamed: tuple[tuple[str, str], ...] = ()
    #: files written under an earlier canonical version may lack columns (compatible_since)
    evolves: bool = False
    #: (name, DuckDB type) of the quality step's columns some files have (tables.optional_columns)
    optional: tuple[tuple[str, str], ...] = ()


def partition_constants(pk: PartitionKey) -> tuple[tuple[str, Any], ...]:
    """The partition columns a view derives from hive paths, as constants for Dask pieces."""
    head: tuple[tuple[str, Any], ...] = (("source", pk.source), ("message_type", pk.message_type))
    if pk.bins is None:
        return (*head, ("date", pk.day))
    return (
        *head,
        ("year", pk.day.year),
        ("month", pk.day.month),
        ("weekday", pk.bins[0]),
        ("time_bin", pk.bins[1]),
    )


def _with_constants(table: pa.Table, constants: tuple[tuple[str, Any], ...]) -> pa.Table:
    n = table.num_rows
    for name, value in constants:
        table = table.append_column(name, pa.repeat(pa.scalar(value), n))
    return table


_SCRATCH: tuple[int, duckdb.DuckDBPyConnection] | None = None
_SCRATCH_LOCK = threading.Lock()


def _scratch() -> duckdb.DuckDBPyConnection:
    """A connection to this process's in-memory DuckDB for frame SQL. Opening an instance
    costs ~10-50 ms, paid once per process (a forked child opens its own), not per piece;
    each call gets its own cursor, so pieces on several threads never share a registration."""
    global _SCRATCH
    with _SCRATCH_LOCK:
        if _SCRATCH is None or _SCRATCH[0] != os.getpid():
            _SCRATCH = (os.getpid(), open_instance(":memory:"))
        return _SCRATCH[1].cursor()


def _with_optional(schema: pa.Schema | None, optional: tuple[tuple[str, str], ...]) -> pa.Schema:
    """schema (None: no column) and the optional (name, DuckDB type) columns it lacks, with
    the Arrow types DuckDB reads them as."""
    have = set(schema.names) if schema is not None else set()
    items = [f"CAST(NULL AS {t}) AS {quote_ident(n)}" for n, t in optional if n not in have]
    fields = list(schema) if schema is not None else []
    if items:
        con = _scratch()
        try:
            empty = con.sql(f"SELECT {', '.join(items)} WHERE false").arrow().read_all()
            fields += list(empty.schema)
        finally:
            con.close()
    return pa.schema(fields)


def _frame_pandas(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as a partition (or the meta) of a Dask frame: as `table.to_pandas()`,
    except that a DATE column (the `date` partition column) is pandas' Arrow date dtype,
    `date32[pyarrow]`, whose values are the `datetime.date` objects `Catalog.query` gives. The
    object column of dates `to_pandas()` makes is not kept by Dask: its string conversion
    (`dataframe.convert-string`, on by default) turns every object column into strings
    ('2021-04-01'), in the meta and in every partition; list columns too (_frame_dtype)."""
    named = pa.schema(
        [f.with_type(_items_named(f.type)) for f in table.schema], metadata=table.schema.metadata
    )
    if any(str(a.type) != str(b.type) for a, b in zip(table.schema, named, strict=True)):
        table = table.cast(named)
    return table.to_pandas(types_mapper=_frame_dtype)


#: the name DuckDB gives a list's item field in Arrow (query_arrow's, the socrata SQL's)
_LIST_ITEM = "l"


def _items_named(t: pa.DataType) -> pa.DataType:
    """t with every list's item field named as DuckDB names it: the Parquet files name it
    `element`, DuckDB's results `l`. pyarrow's type equality ignores the name, but the dtype's
    text and hash do not: without this a list column's dtype would print and hash one way
    in a frame read from files and another in an empty, socrata or null-filled one."""
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        item = t.value_field.with_type(_items_named(t.value_type)).with_name(_LIST_ITEM)
        if pa.types.is_fixed_size_list(t):
            return pa.list_(item, t.list_size)
        return pa.large_list(item) if pa.types.is_large_list(t) else pa.list_(item)
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_items_named(f.type)) for f in t])
    if pa.types.is_map(t):
        item = t.item_field.with_type(_items_named(t.item_type))
        return pa.map_(t.key_field, item, keys_sorted=t.keys_sorted)
    return t


def _frame_dtype(t: pa.DataType) -> Any:
    """The pandas dtype of an Arrow column in a frame (None: to_pandas' own). Dates: pandas'
    Arrow date dtype (above). Booleans and integers: pandas' nullable `boolean` and `Int64`
    (`Int32`, `UInt8`, ...): `to_pandas()` gives `bool`/`int64` only to a partition without
    NULL, and an object column (strings 'True' in Dask) or float64 to one with, while the meta
    said bool/int64. Nested columns (lists such as `warnings` or `tim_list`; structs, maps):
    pandas' Arrow dtype of their type (`list<l: string>[pyarrow]`), each value a Python list
    (a struct: a dict) of the items query's numpy array holds; to_pandas' object column of
    arrays was printed by Dask's string conversion ("['a' 'b']", shortened when long). An
    Arrow dtype rather than convert-string scoped off: Dask never converts it, whatever the
    user's config, the string columns keep the dtype that config gives them, and the exact
    type survives the round trip through Arrow of to_socrata and the quality step (an object
    column of only NULLs would be typed null there). Strings: the dtype Dask's string
    conversion gives a frame it reads (`string`, a NULL is `<NA>`) while that conversion is
    on, so a frame built here (to_socrata's, an experiment's) has the dtypes of to_dask's;
    pandas' own `str` (a NULL is `nan`) when it is off, as Dask then leaves them."""
    import pandas as pd  # ~0.15 s to import: paid by frames, not by every command's start
    from dask.dataframe.utils import pyarrow_strings_enabled  # frames only, as pandas

    if pa.types.is_date(t) or pa.types.is_nested(t):
        return pd.ArrowDtype(t)
    if (pa.types.is_string(t) or pa.types.is_large_string(t)) and pyarrow_strings_enabled():
        return pd.StringDtype("pyarrow")
    if pa.types.is_boolean(t):
        return pd.BooleanDtype()
    if pa.types.is_integer(t):
        return pd.api.types.pandas_dtype(_NULLABLE_INTS[t.bit_width, pa.types.is_signed_integer(t)])
    return None


#: (bits, signed) -> pandas' nullable integer dtype
_NULLABLE_INTS = {
    (bits, signed): f"{'' if signed else 'U'}Int{bits}"
    for bits in (8, 16, 32, 64)
    for signed in (True, False)
}


def _apply_sql(table: pa.Table, sql: str) -> pa.Table:
    """Run SQL over an Arrow table named `frame` (keeps nested types, unlike pandas)."""
    con = _scratch()
    try:
        con.register("frame", table)
        return con.sql(sql).arrow().read_all()
    finally:
        con.close()


def _read_piece(
    piece: DaskPiece,
    columns: list[str] | None,
    filters: list[tuple[str, str, Any]] | None,
    window: tuple[datetime, datetime] | None,
    time_column: str | None,
    plan: SocrataPlan | None = None,
    expected: pa.Schema | None = None,
    renamed: tuple[tuple[str, str], ...] = (),
    socrata: pa.Schema | None = None,
    area: SpatialFilter | None = None,
) -> pd.DataFrame:
    """Read one partition's files with pyarrow (runs on Dask workers, so module level).

    Only the columns asked for are read (Dask's optimizer narrows `columns` to what the
    computation uses); filters and the time window are evaluated by the Parquet reader on
    columns that need not be selected. With plan (socrata naming), columns name socrata
    columns: only the canonical columns they come from are read, and only their expressions
    run (no SQL at all when they are all renames: the view's row filter goes into the read);
    socrata: the Arrow types the view gives them. expected: the table's columns now; those
    the files predate (a canonical version that only added columns) read as NULL, as in the
    lake.
    """
    const_names = {name for name, _ in piece.constants}
    fs = piece.s3.filesystem() if piece.s3 is not None else None
    absent: list[pa.Field] = []
    back: dict[str, str] = {}  # new name -> the old name the files use
    if expected is not None and piece.files:
        try:
            present = set(pq.read_schema(piece.files[0], filesystem=fs).names)
        except (FileNotFoundError, pa.ArrowInvalid) as e:
            raise _unreadable(piece, e) from None
        back = {n: o for o, n in renamed if o in present and n not in present}
        absent = [
            f
            for f in expected
            if f.name not in present and f.name not in back and f.name not in const_names
        ]
    renames = plan.renames(columns) if plan is not None else None
    if (
        renames is not None
        and plan is not None
        and {f.name for f in absent} & set(plan.null_filter or ())
    ):
        renames = None  # the row filter's column predates these files: the SQL handles it
    if renames is not None:
        wanted: list[str] | None = list(dict.fromkeys(src for _, src in renames))
    else:
        wanted = plan.needs(columns) if plan is not None else columns
    need = None
    if wanted is not None:
        gone = {f.name for f in absent}
        need = [back.get(c, c) for c in wanted if c not in const_names and c not in gone]
        absent = [f for f in absent if f.name in wanted]
    arrow_filters: list[tuple[str, str, Any]] = list(filters or [])
    if window and time_column:
        arrow_filters += [(time_column, ">=", window[0]), (time_column, "<", window[1])]
    if area is not None:  # the area's box prunes row groups; the exact test follows the read
        arrow_filters += spatial.pyarrow_filters(area)
        if need is not None:
            need += [c for c in (spatial.LAT, spatial.LON) if c not in need]
    where = pq.filters_to_expression(arrow_filters) if arrow_filters else None
    if renames is not None and plan is not None:  # the view's row filter, in the read
        for c in plan.null_filter or ():
            term = pc.field(back.get(c, c)).is_null()
            where = term if where is None else where & term
    table = _read_files(piece, need, where, fs)
    if back:
        old_to_new = {o: n for n, o in back.items()}
        table = table.rename_columns([old_to_new.get(c, c) for c in table.column_names])
    if area is not None:
        table = spatial.filter_table(table, area)
    for f in absent:
        table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    # only the partition values the result uses (a column asked for, or one a socrata
    # column comes from): repeating the others over every row costs memory for nothing
    table = _with_constants(
        table,
        piece.constants
        if wanted is None
        else tuple((n, v) for n, v in piece.constants if n in wanted),
    )
    if renames is not None:
        table = pa.table({name: table[src] for name, src in renames})
        if socrata is not None:  # e.g. the time zone DuckDB labels TIMESTAMPTZ with
            table = table.cast(pa.schema([socrata.field(name) for name, _ in renames]))
    elif plan is not None:
        table = _apply_sql(table, plan.select_sql(columns, "frame", table.column_names))
    if columns is not None:
        table = table.select(columns)
    return _frame_pandas(table)


def _read_files(
    piece: DaskPiece, columns: list[str] | None, where: pc.Expression | None, fs: Any
) -> pa.Table:
    """The piece's rows: its files read together, except that a file with deleted rows
    (an object changed or removed by --check-changes) is read alone, without those rows."""
    gone = dict(piece.deleted)
    plain = [f for f in piece.files if f not in gone]
    groups: list[tuple[list[str], pc.Expression | None]] = [(plain, where)] if plain else []
    for f in piece.files:
        if f in gone:
            keep = ~pc.field("source_key").isin(list(gone[f]))
            groups.append(([f], keep if where is None else where & keep))
    # partitioning=None: the partition columns come from the manifest, not re-parsed paths;
    # pre_buffer (coalesced reads ahead) pays off on S3 only: on local files it just holds
    # more memory (~13 MB peak on the issue-16 week)
    try:
        tables = [
            pq.read_table(
                files,
                columns=columns,
                filters=expr,
                partitioning=None,
                filesystem=fs,
                pre_buffer=fs is not None,
            )
            for files, expr in groups or [(list(piece.files), where)]
        ]
    except (FileNotFoundError, pa.ArrowInvalid) as e:
        raise _unreadable(piece, e) from None
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")


def _missing(path: str) -> CatalogError:
    """A frame's file gone: damage, or a clear or eviction since the frame's files were listed
    (a lazy frame is often computed long after it was made)."""
    return CatalogError(
        f"{path} is missing from the lake (a `cache clear` or `cache evict` may have removed it "
        "meanwhile: make the frame again; if this comes back, run "
        "`cvcatalog cache verify --repair`)"
    )


def _unreadable(piece: DaskPiece, e: Exception) -> Exception:
    """What a frame's task says of a local lake file it could not read (its partitions are
    read when the frame is computed, after the checks of to_dask): the file that is gone, or
    pyarrow's first line with the mend, as a query says it. A lake on S3: the error as it is
    (s3fs calls an endpoint it cannot reach "not found" too)."""
    if piece.s3 is not None:
        return e
    for f in piece.files:
        if not Path(f).exists():
            return _missing(f)
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return CatalogError(f"{text} {lake.DAMAGED_FILE}")


class Catalog:
    """A catalog directory: ingest into it, query it with SQL, read it lazily with Dask.

    `Catalog("s3://bucket/prefix")` opens a catalog published with `cvcatalog publish`
    instead: a read-only :class:`cvcatalog.catalog.RemoteCatalog` (extra keyword arguments
    profile=, no_sign_request=, endpoint_url=, cache_dir=).

    A Catalog pickles (into a dask.distributed task, a multiprocessing worker): what reopens
    it, its directory (absolute), lock timeout and storage, never its DuckDB connections; the
    unpickled one opens its own on its first read. Its `notify` callback stays behind (the
    unpickled catalog is quiet).
    """

    def __new__(cls, path: str | Path | None = None, *args: Any, **kwargs: Any) -> Catalog:
        # no path: CVCATALOG_HOME, which may name a published catalog as for the CLI
        if cls is Catalog and is_remote(path if path is not None else _remote_home()):
            return super().__new__(RemoteCatalog)
        return super().__new__(cls)

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        lock_timeout: float | None = None,
        notify: Notify | None = None,
        storage: str | None = None,
    ) -> None:
        """storage: where a new catalog keeps its Parquet lake, 'local' or s3://bucket/prefix
        (default: CVCATALOG_STORAGE, else what the catalog records, else local)."""
        if path is not None and (
            not isinstance(path, str | os.PathLike) or not os.fspath(path).strip()
        ):  # "" was the current directory: a catalog made wherever the notebook runs
            raise ConfigError(f"the catalog is a directory path (a str or Path), got {path!r}")
        self._open(
            CatalogPaths.at(path if path is not None else default_home()),
            lock_timeout,
            notify,
            storage,
        )

    def _open(
        self,
        paths: CatalogPaths,
        lock_timeout: float | None,
        notify: Notify | None,
        storage: str | None,
    ) -> None:
        """Set this catalog up over a directory; nothing is opened until the first read."""
        _check_lock_timeout(lock_timeout)
        self.paths = paths
        self._lock_timeout = lock_timeout
        self._storage = storage
        #: catalog-relative file -> access key (_record_reads)
        self._file_keys: dict[str, str] = {}
        self.db = CatalogDB(
            self.paths, lock_timeout or 60.0, notify or (lambda _m: None), storage=storage
        )

    def __getstate__(self) -> dict[str, Any]:
        """What reopens this catalog in another process (pickle): never a connection."""
        return {
            "root": str(self.paths.root),
            "lock_timeout": self._lock_timeout,
            "storage": self._storage,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._open(CatalogPaths.at(state["root"]), state["lock_timeout"], None, state["storage"])

    def __repr__(self) -> str:
        return f"Catalog({str(self.paths.root)!r})"

    @property
    def database(self) -> Path:
        """The catalog file: `ATTACH 'ducklake:<it>' AS cv (READ_ONLY)` in any DuckDB session."""
        return self.paths.db

    # -- ingest --------------------------------------------------------------------------
    def config(
        self,
        source: str,
        message_type: str | None = None,
        start: date | str | None = None,
        end: date | str | None = None,
        *,
        days_back: int | None = None,
        timezone: str | None = None,
        config: IngestConfig | Mapping[str, Any] | str | Path | None = None,
        **download: Any,
    ) -> DataSourceConfig:
        """Config file, or a mapping of its sections (optional) < CVCATALOG_* environment < these
        arguments.

        The source is always given explicitly, never inferred; the message type may be left
        out for a source of one type (nycdot: EVENT), as `ingest --source nycdot` takes it.
        """
        if message_type is None and isinstance(source, str):
            known = source.strip().lower()
            if known in VALID_TYPES:  # else the config's own line names the source
                message_type = type_of(known, None)
        data, origin, overrides = self._settings(config, download)
        if days_back is not None and (start is not None or end is not None):
            raise ConfigError("give start (and end) or days_back, not both")
        given: dict[str, Any] = {}  # the days given here replace the file's and the env's
        if start is not None or end is not None:  # read as every reader reads its days
            given.update(start_date=_as_date(start, "start"), end_date=_as_date(end, "end"))
        if days_back is not None:
            given["days_back"] = days_back
        if timezone is not None:
            given["timezone"] = timezone
        if given:
            overrides["date_range"] = given
        overrides.update(source=source, message_type=message_type)
        return build(DataSourceConfig, data, overrides, origin)

    def dataset_config(
        self, config: IngestConfig | Mapping[str, Any] | str | Path | None = None, **download: Any
    ) -> DatasetConfig:
        """The settings of a dataset load (ingest_dataset), read as an ingest of a CV source
        reads its own: config file (optional; a CV data-source file serves, its bucket keys
        left alone) < CVCATALOG_* environment < these arguments (`download:` settings). The
        catalog is this one, whatever cache.directory says."""
        data, origin, overrides = self._settings(config, download)
        return build(DatasetConfig, data, overrides, origin)

    def _settings(
        self, config: IngestConfig | Mapping[str, Any] | str | Path | None, download: dict[str, Any]
    ) -> tuple[dict[str, Any], str, dict[str, Any]]:
        """What every ingest's config is built from: the file's (or config object's) values,
        where they came from, and this catalog's overrides (its directory, lock timeout,
        storage) with the `download:` settings given as arguments."""
        if isinstance(config, IngestConfig):
            data, origin = config.model_dump(mode="json"), "config object"
        elif isinstance(config, Mapping):  # the YAML's sections as a dict (what a notebook has)
            data, origin = dict(config), "config mapping"
        elif isinstance(config, str | os.PathLike):
            data, origin = load_yaml(config), str(config)
        elif config is not None:  # (5 was pathlib's "expected str, bytes or os.PathLike")
            raise ConfigError(
                "config is a YAML file's path, a mapping of its sections or a config object, "
                f"got {config!r}"
            )
        else:
            data, origin = {}, "arguments"
        cache_over: dict[str, Any] = {"directory": str(self.paths.root)}
        if self._lock_timeout is not None:
            cache_over["lock_timeout_seconds"] = self._lock_timeout
        overrides: dict[str, Any] = {
            "storage": self._storage,
            "cache": cache_over,
            "download": {k: v for k, v in download.items() if v is not None},
        }
        return data, origin, overrides

    def ingest(
        self,
        source: str,
        message_type: str | None = None,
        start: date | str | None = None,
        end: date | str | None = None,
        *,
        days_back: int | None = None,
        timezone: str | None = None,
        config: IngestConfig | Mapping[str, Any] | str | Path | None = None,
        force_refresh: bool = False,
        progress: Progress | None = None,
        scheduler: Any = None,
        cluster: str | None = None,
        workers: int | None = None,
        check_changes: bool | None = None,
        **download: Any,
    ) -> Summary:
        """Fetch and convert every missing day of the range; returns what happened per day.
        message_type may be left out for a source of one type (nycdot: EVENT).

        Extra keyword arguments override `download:` settings (max_workers, rate_limit,
        profile, no_sign_request, endpoint_url, retry_attempts, ...).

        Conversions run in this process unless `scheduler` (a dask.distributed address such as
        tcp://host:8786, or a `distributed.Client`) or `cluster="local"` (a LocalCluster of
        `workers` processes, started and closed here) is given; the workers must see this
        machine's filesystem (docs/scaling.md). Listing, downloads and every catalog write stay
        in this process, and the result is the same as a single-process ingest.

        check_changes (default: cache.check_changes, off): list the cached days of the range
        again and re-ingest only objects added or changed since (docs/incremental.md).
        """
        progress = check_progress(progress)
        _flag("force_refresh", force_refresh)
        if check_changes is not None:
            _flag("check_changes", check_changes)
        cfg = self.config(
            source,
            message_type,
            start,
            end,
            days_back=days_back,
            timezone=timezone,
            config=config,
            **download,
        )
        if scheduler is None and cluster is None:
            if workers is not None:
                raise ConfigError(
                    "workers= is the size of a local Dask cluster: give cluster='local' too "
                    "(concurrent downloads are max_workers=)"
                )
            return cvpilot.ingest(
                cfg, force_refresh=force_refresh, progress=progress, check_changes=check_changes
            )
        notify = progress.note if progress is not None else None
        with dask_pool(scheduler, cluster, workers, memory=cfg.memory, notify=notify) as pool:
            return cvpilot.ingest(
                cfg,
                force_refresh=force_refresh,
                progress=progress,
                pool=pool,
                check_changes=check_changes,
            )

    def ingest_dataset(
        self,
        name: str,
        paths: str | Path | Sequence[str | Path],
        *,
        location: str | None = None,
        workers: int | None = None,
        unit_bytes: int | None = None,
        retries: int | None = None,
        progress: Progress | None = None,
        profile: str | None = None,
        no_sign_request: bool | None = None,
        quality: Any = None,
        rate_limit: float | None = None,
        config: IngestConfig | Mapping[str, Any] | str | Path | None = None,
    ) -> Summary:
        """Load a dataset that is not in the CV Pilot bucket (e.g. ``"ngsim"``) from local
        files, http(s) URLs or s3:// URIs; returns the run's Summary.

        Incremental: inputs whose version (ETag, or size and mtime) was loaded before are
        skipped; a changed input is rebuilt and replaces the old version in one transaction;
        an interrupted run resumes at the first uncommitted unit (docs/ngsim.md).
        config: read as a CV ingest reads its own (dataset_config: the YAML, a CV data-source
        file included, then CVCATALOG_*, then these arguments): `download:` (retries, rate
        limit, profile, endpoint, timeout), `quality:`, `trips:`, `storage:`, and
        `cache.max_size_gb`, kept at the end of the run as a CV ingest keeps it (least recently
        used data of every source evicted, never this run's inputs; the summary's `evicted`).
        quality: a cvcatalog.quality.config.QualityConfig (instead of the config's): its rules
        are counted (and its cleaning applied) on each unit's files and recorded in
        quality_stats with the run.
        """
        progress = check_progress(progress)
        cls = DATASETS.get(name.strip().lower()) if isinstance(name, str) else None
        if cls is None:  # None or no str too: one line, not an AttributeError
            raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
        given = [paths] if isinstance(paths, str | Path) else as_items(paths) or []
        if not given or not all(isinstance(p, str | Path) for p in given):
            raise ConfigError(f"paths is a path or URI, or a list of them, got {paths!r}")
        uris = [str(p) for p in given]
        # numbers checked here: "2" or 1.5 reached a comparison (TypeError) or ran as 1.5
        if workers is not None:
            check_workers("workers", _whole_number("workers", workers, 1))
        if unit_bytes is not None:
            unit_bytes = _whole_number("unit_bytes", unit_bytes, 1)
        cfg = self.dataset_config(
            config,
            profile=profile,
            no_sign_request=no_sign_request,
            retry_attempts=retries,
            rate_limit=rate_limit,
        )
        download = cfg.download
        s3_client = None
        limiter = None
        if any(u.lower().startswith("s3://") for u in uris):
            # the S3 stack of the CV ingest: its client, rate limiter and retry policy
            s3_client = make_client(download)
            limiter = TokenBucket(download.rate_limit)
        options: dict[str, Any] = {
            "s3_client": s3_client,
            "limiter": limiter,
            "timeout": download.timeout_seconds,
        }
        if location is not None:
            options["location"] = location
        if unit_bytes is not None:
            options["unit_bytes"] = unit_bytes
        dataset = cls(uris, **options)  # type: ignore[call-arg]
        return ngsim.load(
            dataset,
            CatalogDB.for_ingest(cfg, progress.note if progress is not None else self.db.notify),
            workers=workers or min(4, os.cpu_count() or 1),
            retry=RetryPolicy.from_config(download),
            progress=progress,
            quality=quality if quality is not None else cfg.quality,
            max_size_gb=cfg.cache.max_size_gb,
            snapshot_retention_days=cfg.cache.snapshot_retention_days,
        )

    # -- SQL -----------------------------------------------------------------------------
    def connect(self) -> duckdb.DuckDBPyConnection:
        """A read-only connection to the current catalog snapshot (close it when done)."""
        return self.db.connect()

    def query_arrow(
        self,
        sql: str,
        params: Sequence[Any] | dict[str, Any] | None = None,
        *,
        read_only: bool = True,
        snapshot: int | None = None,
        as_of: datetime | str | None = None,
    ) -> pa.Table:
        """Run SQL against the catalog views and tables; the catalog is never modified.

        params: values for the SQL's `?` (or `$name`) placeholders; a datetime without a zone
        is UTC (every session runs in UTC), as in to_dask's filters.
        read_only (the default): only SELECT/EXPLAIN statements, on a read-only connection.
        read_only=False: any statement in a private in-memory session where the catalog is
        attached READ_ONLY (temporary tables, COPY ... TO a file outside the catalog), never
        ATTACH/DETACH/EXPORT/IMPORT/INSTALL/LOAD.
        snapshot / as_of: every table and view as it was at that snapshot (`snapshots()`) or
        time (UTC unless the time says otherwise); the state tables (partitions, runs...)
        are always current.
        """
        def whole(reader: pa.RecordBatchReader) -> pa.Table:
            return pa.Table.from_batches(list(result_batches(reader)), reader.schema)

        return self._run_query(sql, params, read_only, as_of_point(snapshot, as_of), whole, None)

    def query_head(
        self,
        sql: str,
        rows: int,
        params: Sequence[Any] | dict[str, Any] | None = None,
        *,
        read_only: bool = True,
        snapshot: int | None = None,
        as_of: datetime | str | None = None,
    ) -> tuple[pa.Table, int]:
        """The first `rows` rows of query_arrow's result, and how many rows it has: the result
        streams by, only its first rows are kept (what `cvcatalog query` shows in a table: a
        `select *` of a whole table held every row to show 1,000)."""
        rows = min(_whole_number("rows", rows, 0), _MAX_LIMIT)  # (10**30 overflowed a slice)

        def head(reader: pa.RecordBatchReader) -> tuple[pa.Table, int]:
            kept: list[pa.RecordBatch] = []
            total = 0
            for batch in result_batches(reader):  # past the head: counted, not kept
                if total < rows:
                    kept.append(batch.slice(0, rows - total))
                total += batch.num_rows
            return pa.Table.from_batches(kept, schema=reader.schema), total

        return self._run_query(sql, params, read_only, as_of_point(snapshot, as_of), head)

    def query_batches(
        self,
        sql: str,
        each: Callable[[pa.RecordBatch], None],
        params: Sequence[Any] | dict[str, Any] | None = None,
        *,
        read_only: bool = True,
        snapshot: int | None = None,
        as_of: datetime | str | None = None,
        batch_rows: int | None = None,
    ) -> pa.Schema:
        """query_arrow's result handed to `each` batch by batch as DuckDB produces it, so
        memory holds a batch whatever the result's size (`query --output`: a day of BSM to
        CSV held 1.5 GB, to JSON 3.1 GB); returns the result's schema (its columns, also when
        it has no rows). batch_rows: rows a batch holds (HEAD_BATCH_ROWS unless given)."""
        batch_rows = _whole_number(
            "batch_rows", HEAD_BATCH_ROWS if batch_rows is None else batch_rows, 1
        )

        def stream(reader: pa.RecordBatchReader) -> pa.Schema:
            for batch in result_batches(reader):
                each(batch)
            return reader.schema

        return self._run_query(
            sql, params, read_only, as_of_point(snapshot, as_of), stream, batch_rows
        )

    def _run_query(
        self,
        sql: str,
        params: Sequence[Any] | dict[str, Any] | None,
        read_only: bool,
        at: lake.AsOf | None,
        consume: Callable[[pa.RecordBatchReader], _T],
        batch_rows: int | None = HEAD_BATCH_ROWS,
    ) -> _T:
        """Run a query (query_arrow, query_head, query_batches) and hand its result, as a
        reader that runs the query as it is read, to `consume` inside the session; a
        statement without a result gives an empty reader."""
        _flag("read_only", read_only)
        check_query(sql, read_only=read_only, root=self.paths.root)
        params = _query_params(params)
        # the files the statement opens: the LRU clock of their partitions (_record_reads)
        on_read = self._record_reads if self._watches_reads(at) else None
        session = (
            self.db.read(at, on_read=on_read) if read_only else self._scratch_session(at, on_read)
        )
        with session as con:
            if spatial.uses_spatial(sql):
                tables.spatial_session(con)
            try:
                # batch_rows None: DuckDB's own batches (query_arrow keeps them all)
                if not params:
                    rel = con.sql(sql)
                    if rel is None:
                        return consume(pa.table({}).to_reader())
                    reader = rel.arrow() if batch_rows is None else rel.to_arrow_reader(batch_rows)
                else:
                    res = con.execute(sql, params)
                    reader = res.arrow() if batch_rows is None else res.to_arrow_reader(batch_rows)
                # a query failing after its first rows (a bad cast in a later file) fails
                # while its batches are read: QueryError's one line, not an OSError
                return consume(reader)
            except duckdb.Error as e:
                raise QueryError(
                    lake.not_there_then(con, e, at) or _short_duckdb_error(e, self.db.lake_data)
                ) from None

    def _watches_reads(self, at: lake.AsOf | None) -> bool:
        """Whether a query's reads advance the LRU clock: those of the catalog as it is now (a
        query of an older snapshot reads files the catalog may no longer keep, as an export of
        one does)."""
        return at is None

    def _record_reads(self, con: duckdb.DuckDBPyConnection, opened: set[str]) -> None:
        """Advance the LRU clock of the partitions whose files a query opened."""
        self._record_access(self._partitions_read(con, opened))

    def _partitions_read(self, con: duckdb.DuckDBPyConnection, opened: set[str]) -> list[str]:
        """The access keys of the partitions whose files were opened (local paths, s3://
        URLs). They come from a map of every file, read again from con (a session with the
        state attached) when a file is not in it: a file's name is never another's, and
        reading the state at each query cost ~3 ms."""
        store = self.db.store
        files = {rel for p in opened if (rel := store.relative(p)) is not None}
        known = self._file_keys
        if not files <= known.keys():
            known = file_keys(con)
            # a file the state names no longer (one an older snapshot shows, as a change feed
            # reads) has no partition to advance: kept as such, not read again at each query
            known.update(dict.fromkeys(files - known.keys(), ""))
            self._file_keys = known
        return sorted({known[f] for f in files} - {""})

    @contextlib.contextmanager
    def _scratch_session(
        self, at: lake.AsOf | None = None, on_read: OnRead | None = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """An in-memory DuckDB with the catalog attached READ_ONLY and on the search path (an
        instance of its own); on_read as CatalogDB.read's."""
        con = self.db.connect(scratch=True, at=at)
        try:
            with watched(con, on_read, ReadLog()):
                yield con
        finally:
            con.close()

    def query(
        self,
        sql: str,
        params: Sequence[Any] | dict[str, Any] | None = None,
        *,
        output: Literal["pandas", "arrow"] = "pandas",
        read_only: bool = True,
        snapshot: int | None = None,
        as_of: datetime | str | None = None,
    ) -> Any:
        """query_arrow's result as a pandas DataFrame (output="pandas") or an Arrow table
        (output="arrow")."""
        output = _choice("output", output, ("pandas", "arrow"))  # type: ignore[assignment]
        table = self.query_arrow(sql, params, read_only=read_only, snapshot=snapshot, as_of=as_of)
        return table if output == "arrow" else table.to_pandas()

    def snapshots(
        self,
        source: str | None = None,
        message_type: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """The catalog's kept snapshots, newest first: id, commit time (UTC), the run that
        committed it, and the rows it added and removed per table. source/message_type: only
        snapshots that changed that table (NGSIM: source='ngsim')."""
        _check_limit(limit)
        wanted = _tables_of(*source_filter(source, message_type))
        with self.db.read_state() as con:
            kept = lake.snapshots(con)
        rows: list[dict[str, Any]] = []
        for snap in reversed(kept):
            if limit is not None and len(rows) >= limit:
                break
            names = snap.tables if wanted is None else [n for n in snap.tables if n in wanted]
            if wanted is not None and not names:
                continue
            rows.append(
                {
                    "snapshot_id": snap.snapshot_id,
                    "committed_at": snap.committed_at.astimezone(UTC),
                    "run_id": snap.run_id,
                    "message": snap.message,
                    "tables": ",".join(names),
                    "rows_added": sum(snap.added.get(n, 0) for n in names),
                    "rows_removed": sum(snap.removed.get(n, 0) for n in names),
                    "changes": {
                        n: {"added": snap.added.get(n, 0), "removed": snap.removed.get(n, 0)}
                        for n in names
                    },
                }
            )
        return rows

    def views(self) -> list[str]:
        """The lake's tables and views (what `select ... from <name>` can read)."""
        return [r["name"] for r in self.relations()]

    def relations(self) -> list[dict[str, str]]:
        """views() with what each is: {"name", "kind": "table" (the data, one a source and
        type) or "view" (defined over the tables)}, by name."""
        with self.db.read() as con:
            kinds = dict.fromkeys(lake.table_columns(con), "table")
            kinds.update(dict.fromkeys(lake.view_names(con), "view"))
        return [{"name": n, "kind": kinds[n]} for n in sorted(kinds)]

    # -- Dask ----------------------------------------------------------------------------
    def partitions(
        self,
        source: str,
        message_type: str,
        start: date | str | None = None,
        end: date | str | None = None,
        timezone: str = "UTC",
    ) -> list[manifest.PartitionRecord]:
        """Complete partitions of (source, type) that hold records of the local date range."""
        source, message_type = source_pair(source, message_type)
        with self.db.read_state() as con:
            parts = manifest.get_partitions(con, source, message_type)
        s, e = _day_range(start, end)
        wanted = None
        if s is not None or e is not None:
            s = s or min((p.date for p in parts.values()), default=date.today())
            e = e or max((p.date for p in parts.values()), default=s)
            wanted = {
                k.key for k in partitions_for(source, message_type, s, e, timezone_arg(timezone))
            }
        return [
            p
            for p in parts.values()
            if p.status == "complete"
            and SCHEMAS[(source, message_type)].reads(p.canonical_version)
            and (wanted is None or p.partition_key in wanted)
        ]

    def _warn_missing(
        self,
        source: str,
        message_type: str,
        start: date | None,
        end: date | None,
        tz: str,
        holder: str = "the frame",
    ) -> None:
        """Warn (MissingDataWarning, pointing at the caller of to_dask or export) when the
        window's partitions include some the catalog does not hold: never ingested, failed, or
        of a canonical version this cvcatalog does not read (an ingest rewrites those). Days
        recorded `no_data` (the bucket has nothing for them) and days not begun yet are not
        missing. start alone: from that day to the last day the catalog holds rows of (as
        the frame reads); end alone: from the first. Neither (an export of everything): only when
        the catalog holds no partition of it at all. holder: what has no rows of them. A
        dataset (NGSIM) has no days of the bucket to name: nothing."""
        if (source, message_type) not in SCHEMAS or _missing_told.get():
            return
        with self.db.read_state() as con:
            records = manifest.get_partitions(con, source, message_type)
        schema = SCHEMAS[(source, message_type)]

        def held(r: manifest.PartitionRecord | None) -> bool:
            return r is not None and (
                r.status == "no_data"
                or (r.status == "complete" and schema.reads(r.canonical_version))
            )

        if start is None and end is None:  # no window: everything, of which nothing is held?
            if not any(held(r) for r in records.values()):
                warn(
                    f"{source}/{message_type}: the catalog holds no partition of it (never "
                    f"ingested, failed, or written under an older canonical version); {holder} "
                    f"has no rows of it. "
                    f"{self._ingest_hint(source, message_type, 'DAY', 'DAY', tz)}",
                    MissingDataWarning,
                )
            return
        # start (or end) alone reaches to the last (first) day with rows: a no_data marker
        # far off (a days_back ingest's today) named thousands of days nobody asked for
        with_rows = [r.date for r in records.values() if r.status == "complete"]
        known = with_rows or [r.date for r in records.values()]
        lo = start or min(known, default=end)
        hi = end or max(known, default=start)
        assert lo is not None and hi is not None
        hi = max(lo, hi)
        keys = partitions_for(source, message_type, lo, hi, tz)
        later = set(cvpilot.future_days(keys, source))
        missing = [k for k in keys if not held(records.get(k.key)) and k.key not in later]
        if not missing:
            return
        n = len(missing)
        if missing[0].bins is not None:  # NYCDOT: bins of months
            names = [k.key for k in missing]
            what = "partition" if n == 1 else "partitions"
        else:  # folder days, named on the source's folder clock (a Denver day spans two)
            names = [k.day.isoformat() for k in missing]
            what = f"{FOLDER_TIMEZONE[source]} day" + ("" if n == 1 else "s")
        shown = ", ".join(names[:5]) + (f" and {n - 5} more" if n > 5 else "")
        warn(
            f"{source}/{message_type}: {n} {what} of the window {lo}..{hi} ({tz}) "
            f"{'is' if n == 1 else 'are'} not in the catalog (never ingested, failed, or "
            f"written under an older canonical version): {shown}; {holder} has no rows of "
            f"{'it' if n == 1 else 'them'}. "
            f"{self._ingest_hint(source, message_type, lo, hi, tz)}",
            MissingDataWarning,
        )

    def _ingest_hint(
        self, source: str, message_type: str, lo: date | str, hi: date | str, tz: str
    ) -> str:
        """How to fetch a window's missing days into this catalog (_warn_missing's advice);
        lo and hi may be placeholders (DAY) when there is no window."""
        zone = "" if tz == "UTC" else f" --timezone {tz}"
        return (
            f"`cvcatalog ingest --catalog {self.paths.root} --source {source} --type "
            f"{message_type} --start {lo} --end {hi}{zone}` fetches what is missing (the days "
            "the catalog holds are skipped)"
        )

    def to_dask(
        self,
        source: str,
        message_type: str | None = None,
        start: date | str | None = None,
        end: date | str | None = None,
        *,
        timezone: str = "UTC",
        columns: Sequence[str] | None = None,
        filters: Filters | None = None,
        naming: Literal["canonical", "socrata"] = "canonical",
        location: str | Sequence[str] | None = None,
        snapshot: int | None = None,
        as_of: datetime | str | None = None,
        within: spatial.Within | Sequence[float] | None = None,
        bbox: spatial.BBox | Sequence[float] | None = None,
        corridor: spatial.Corridor | tuple[Sequence[Sequence[float]], float] | None = None,
    ) -> dd.DataFrame:
        """A lazy Dask DataFrame over exactly the complete partitions of the range.

        One Dask partition per catalog partition (a CV Pilot folder day; a dataset's
        location/date directory, e.g. NGSIM: `to_dask("ngsim", start=..., location="i-80")`);
        only those partitions' files are ever opened. With start/end, rows are also cut to
        the exact local-time window (a Denver day is 06:00-06:00 UTC); a start alone reads
        from that day on, an end alone up to it (an ingest's, an export's or a split's start
        alone is that one day). A day is a date or 'YYYY-MM-DD'; a datetime, pandas.Timestamp
        or numpy.datetime64 is its date as written (every call that takes days reads them so).
        The partition column `date` is a date (pandas' `date32[pyarrow]`), in the meta and in
        every partition: the `datetime.date` values `query` gives for it; booleans and integers
        are pandas' nullable `boolean` and `Int64`/`Int32`/... (a NULL is `<NA>`); a list column
        (`warnings`, `tim_list`, ...) is pandas' Arrow list dtype, each value a Python list of
        the items of query's numpy array (not Dask's printed form of it). A window that
        touches CV Pilot days the catalog does not hold (never ingested, or failed; not the
        `no_data` days the bucket has nothing for) gives one MissingDataWarning naming them
        and the ingest that fetches them (docs/ml.md); a read without a window, of a snapshot
        or of NGSIM does not warn.

        `filters` are pyarrow conjunctions ((column, op, value) tuples, canonical column names
        in either naming):
        the ones on partition columns (date, location, ...) choose partitions, the others are
        pushed into the Parquet reads. A filter naming no column, with another op, a value
        the column cannot compare with, "in"/"not in" with a str (not a list of values), or
        a None value (it matches no row) is a ConfigError here, not an error at compute or a
        silent empty frame. An op may be in capitals (`"IN"`); one term alone, and pyarrow's
        list holding one conjunction (`[[term, ...]]`), are read as those terms; an OR (two
        conjunctions) is refused. A time without a zone (a naive datetime or
        pandas.Timestamp, a numpy.datetime64) is UTC, as in query's params: the catalog
        stores UTC. With a `timezone` other than UTC such a time is ambiguous (that zone's or
        UTC?) and refused in one line: give it its zone.

        Only the columns asked for (a list of names, or one str of names separated by
        commas; a name given twice is read once) and those the computation uses (Dask's
        optimizer narrows them further) are read; filter and time-window columns need not be
        among them.
        naming="socrata": data.transportation.gov names (the `<table>_socrata` view); each
        socrata column is computed only from the canonical columns it comes from
        (`cvcatalog.schemas.socrata`), so e.g. 19 metadata/coreData columns never touch partII.

        The frame computes on Dask's current scheduler: under a `distributed.Client` (e.g.
        `with Client(LocalCluster()):`) the days are read in parallel by its workers, which
        must see the catalog's files (same path, or a shared filesystem). A lake on S3 is read
        through s3fs, so any worker with credentials for the bucket can read it.

        snapshot: the rows as they were at that snapshot (`snapshots()`): the files that
        snapshot shows, which stay until it expires (or forever while an experiment pins it).
        as_of: the same at the newest snapshot committed at or before that time (a datetime
        or ISO 8601 string, UTC unless it says otherwise), as query(as_of=); not with
        snapshot. A snapshot before the table was made is query's one QueryError line.

        within=(lat, lon, radius_m) | bbox=(lat_min, lon_min, lat_max, lon_max) |
        corridor=([(lat, lon), ...], buffer_m) (or `cvcatalog.spatial` objects): only rows
        whose position is inside, with the meaning of docs/spatial.md; the area's box prunes
        Parquet row groups, the geodesic test runs on the rows read.
        """
        at = as_of_point(snapshot, as_of)
        area = spatial.as_filter(within, bbox, corridor)
        source_filter(source, message_type, required=True)
        timezone = timezone_arg(timezone)
        columns = _column_names(columns)
        naming = _choice("naming", naming, ("canonical", "socrata"))  # type: ignore[assignment]
        filters = _check_filter_terms(filters, timezone)
        ds = _dataset(source)
        if ds is not None:
            if area is not None:
                spatial.require_positions(_columns_of(source, message_type), ds.view_name)
            return self._dataset_dask(
                ds, message_type, start, end, timezone, columns, filters, naming, location,
                at, area,
            )  # fmt: skip
        message_type = type_of(source.strip().lower(), message_type)
        _sites(source, location)  # location= of a CV source: _sites' one line
        source, message_type = source_pair(source, message_type)
        schema = SCHEMAS[(source, message_type)]
        if area is not None:
            spatial.require_positions(_columns_of(source, message_type), schema.view_name)
        s, e = _day_range(start, end)
        locate, access = self._lake_reader()
        by_key: dict[PartitionKey, list[str]] = {}
        with self.db.read_state() as con:
            optional = tables.optional_columns(con, schema.view_name)
        if at is None:
            if s is not None or e is not None:
                self._warn_missing(source, message_type, s, e, timezone)
            parts = [p.pk for p in self.partitions(source, message_type, s, e, timezone)]
            with self.db.read_state() as con:
                files = manifest.get_files(con, [p.key for p in parts], kind="data")
                gone = {
                    locate(p).removeprefix("s3://"): keys
                    for p, keys in deletes.of_files(con, [f.path for f in files]).items()
                }
            for f in files:
                # s3fs paths are bucket/key, without the scheme
                where = locate(f.path).removeprefix("s3://")
                by_key.setdefault(PartitionKey.parse(f.partition_key), []).append(where)
        else:
            sid, shown_at = self._files_at(schema.view_name, at)
            for hive, shown in shown_at.items():
                pk = PartitionKey.from_lake_dir(source, message_type, hive)
                by_key[pk] = [w.removeprefix("s3://") for w in shown]
            gone = self._deleted_at(sid)
            parts = sorted(by_key)
            if s is not None or e is not None:
                lo = s or min((p.day for p in parts), default=e)
                hi = e or max((p.day for p in parts), default=s)
                assert lo is not None and hi is not None
                wanted = set(partitions_for(source, message_type, lo, hi, timezone_arg(timezone)))
                parts = [p for p in parts if p in wanted]
        keyed = [
            (
                p.key,
                DaskPiece(
                    tuple(by_key[p]),
                    partition_constants(p),
                    access,
                    tuple((w, gone[w]) for w in by_key[p] if w in gone),
                ),
            )
            for p in parts
            if p in by_key
        ]
        window = None
        if s is not None or e is not None:
            known = [p.day for p in parts]
            lo_day = s or (min(known) if known else e)
            hi_day = e or (max(known) if known else s)
            assert lo_day is not None and hi_day is not None
            window = utc_window(lo_day, hi_day, timezone)
        example = parts[0] if parts else PartitionKey.parse(_example_key(source, message_type))
        plan = socrata_plan(schema) if naming == "socrata" else None

        def empty() -> pa.Schema:
            con = open_instance()
            try:
                return con.sql(schema.empty_select_sql()).arrow().read_all().schema
            finally:
                con.close()

        return self._frame(
            keyed,
            FrameSpec(
                name=schema.view_name,
                constants=partition_constants(example),
                empty_schema=empty,
                time_column=schema.time_column,
                label=f"read-{source}-{message_type}",
                renamed=schema.renamed,
                evolves=schema.compatible_since is not None,
                optional=tuple(optional),
            ),
            columns,
            filters,
            window,
            plan,
            area,
        )

    def _dataset_dask(
        self,
        ds: type[Dataset],
        message_type: str | None,
        start: date | str | None,
        end: date | str | None,
        timezone: str,
        columns: Sequence[str] | None,
        filters: Filters | None,
        naming: str,
        location: str | Sequence[str] | None,
        at: lake.AsOf | None = None,
        area: SpatialFilter | None = None,
    ) -> dd.DataFrame:
        """to_dask of a dataset (NGSIM): the published files of its inputs, one Dask
        partition per hive directory (`location=us-101/date=2005-06-15`)."""
        if message_type is not None and message_type.strip().upper() != ds.message_type:
            raise ConfigError(f"{ds.name} has one type, {ds.message_type}")
        if naming != "canonical":
            raise ConfigError(f"{ds.name} has canonical column names only (naming='canonical')")
        wanted = [_dataset_term(ds, t) for t in filters or []]
        sites = _sites(ds.name, location)
        if sites is not None:
            wanted.append(("location", "in", sites))
        s, e = _day_range(start, end)
        tz = timezone_arg(timezone)
        window = None
        if s is not None or e is not None:
            window = utc_window(s or e, e or s, tz)  # type: ignore[arg-type]
        locate, access = self._lake_reader()
        by_part: dict[str, list[str]] = {}
        with self.db.read_state() as con:
            optional = tables.optional_columns(con, ds.view_name)
        if at is None:
            with self.db.read_state() as con:
                files = [
                    f for f in dataset_files(con, ds.name, published_only=True) if f.kind == "data"
                ]
            for f in files:
                by_part.setdefault(f.partition, []).append(locate(f.path).removeprefix("s3://"))
        else:
            for hive, shown in self._files_at(ds.view_name, at)[1].items():
                by_part[hive] = [w.removeprefix("s3://") for w in shown]
        keyed = []
        for part in sorted(by_part, key=lambda k: tuple(reversed(k.split("/")))):
            constants = _partition_values(ds, part)
            if window is not None and not _day_in(constants, *window):
                continue
            keyed.append((f"{ds.name}/{part}", DaskPiece(tuple(by_part[part]), constants, access)))
        time_column = getattr(ds, "time_column", None) or (
            "timestamp" if "timestamp" in ds.arrow_schema.names else None
        )
        example = tuple(
            (f.name, _example_value(f.type)) for f in ds.arrow_schema if f.name in ds.partition_by
        )
        return self._frame(
            keyed,
            FrameSpec(
                name=ds.view_name,
                constants=example,
                empty_schema=lambda: _storage_schema(ds),
                time_column=time_column,
                label=f"read-{ds.name}",
                optional=tuple(optional),
            ),
            columns,
            wanted,
            window if time_column else None,
            None,
            area,
        )

    def _snapshot_at(self, at: lake.AsOf | None) -> int | None:
        """The snapshot id a point of time travel names (a time: the newest snapshot
        committed at or before it, checked as a query checks it); None: the current one."""
        if at is None or at.snapshot is not None:
            return None if at is None else at.snapshot
        with self.db.read(at) as con:
            return lake.current_snapshot(con)

    def _deleted_at(self, snapshot: int) -> dict[str, tuple[str, ...]]:
        """File (as to_dask reads it) -> source keys whose rows the lake did not show in it
        as of the snapshot."""
        locate = self.db.store.location
        with self.db.read_state() as con:
            gone = deletes.of_files(con, None, at=snapshot)
        return {locate(p).removeprefix("s3://"): keys for p, keys in gone.items()}

    def _files_at(self, table: str, at: lake.AsOf) -> tuple[int, dict[str, list[str]]]:
        """The snapshot `at` is (a time: the one current then), and the data files of a lake
        table that it shows, by partition directory (the hive path below the table's
        directory, e.g. `year=2021/month=4/day=1/...`). A snapshot before the table was made
        is the query's QueryError naming the first snapshot with it (a frame of it would be
        silently empty)."""
        with self.db.read(at) as con:  # checks that the snapshot is kept
            if not lake.shows(con, table):
                line = lake.not_yet_shown(con, table, at)
                if line is not None:
                    raise QueryError(line)
            sid = lake.current_snapshot(con)
            shown = [f for f in lake.data_files(con) if f.table == table and f.shown_at(sid)]
        out: dict[str, list[str]] = {}
        marker = f"/{lake.SCHEMA}/{table}/"
        for f in sorted(shown, key=lambda f: f.location):
            head = f.location.rpartition("/")[0] + "/"
            hive = head.split(marker, 1)[1] if marker in head else ""
            out.setdefault(hive.strip("/"), []).append(f.location)
        return sid, out

    def _why_unreadable(self, piece: DaskPiece) -> None:
        """Why a frame's first file could not be read, when that can be told: s3fs calls any
        file it cannot read "not found", an endpoint it cannot reach too, so a lake on S3 asks
        the one S3 stack about the file (which raises what is wrong: the endpoint unreachable,
        the credentials refused); a file that is not there is a CatalogError naming the mend.
        Returns when it finds nothing to say."""
        first = piece.files[0]
        missing = _missing(first)
        store = self.db.store
        if piece.s3 is None:
            if not Path(first).exists():
                raise missing
            return
        if not isinstance(store, S3Store):
            return
        head = f"{store.s3loc.bucket}/{store.s3loc.prefix}/".replace("//", "/")
        where = first.removeprefix("s3://")
        if where.startswith(head) and store.uploader.head(where.removeprefix(head)) is None:
            raise missing

    def _frame(
        self,
        keyed: list[tuple[str, DaskPiece]],
        spec: FrameSpec,
        columns: Sequence[str] | None,
        filters: Filters | None,
        window: tuple[datetime, datetime] | None,
        plan: SocrataPlan | None,
        area: SpatialFilter | None = None,
    ) -> dd.DataFrame:
        """The one way a frame is built: pieces (catalog partition key, files, partition
        values) pruned by the filters on partition values, the other filters and the column
        selection pushed into each piece's Parquet read. plan: socrata naming (the columns
        are socrata names, computed from the canonical columns they come from)."""
        import dask.dataframe as dd

        filters = _check_filter_terms(filters)
        names = {n for _, p in keyed for n, _ in p.constants} | {n for n, _ in spec.constants}
        on_values = [f for f in filters or [] if f[0] in names]
        pushed = [f for f in filters or [] if f[0] not in names]
        keyed = [(k, p) for k, p in keyed if all(_holds(p.constants, f) for f in on_values)]
        pieces = [p for _, p in keyed]
        cols = list(columns) if columns is not None else None
        constants = pieces[0].constants if pieces else spec.constants
        # only a table whose schema evolved in place, or whose files the quality step wrote
        # with its columns, can have files that lack columns
        expected = spec.empty_schema() if spec.evolves else None
        if spec.optional:
            expected = _with_optional(expected, spec.optional)
        try:
            meta, socrata = _meta(spec, pieces, cols, constants, plan, expected, filters)
        except OSError:
            self._why_unreadable(pieces[0])
            raise
        if plan is not None and cols is None:
            # every piece computes the columns the frame has (the carried quality columns too,
            # NULL in files without them), not what its own files happen to hold
            cols = list(meta.columns)
        self._record_access([k for k, _ in keyed])
        if not pieces:
            return dd.from_pandas(meta, npartitions=1)
        return dd.from_map(
            _read_piece,
            pieces,
            columns=cols,
            filters=pushed or None,
            window=window,
            time_column=spec.time_column,
            plan=plan,
            expected=expected,
            renamed=spec.renamed,
            socrata=socrata,
            area=area,
            meta=meta,
            enforce_metadata=False,
            label=spec.label,
        )

    def _record_access(self, keys: list[str]) -> None:
        record_access(keys, self.paths)  # the LRU clock of `cache evict`

    def _lake_reader(self) -> tuple[Callable[[str], str], S3Access | None]:
        """How to_dask's readers reach a catalog-relative file: its path or s3:// URL, and the
        s3fs settings a worker needs (None: local files)."""
        store = self.db.store
        access = S3Access.of(store.fs_options()) if isinstance(store, S3Store) else None
        return store.location, access

    # -- cache ---------------------------------------------------------------------------
    def status(
        self, source: str | None = None, message_type: str | None = None, *, summary: bool = False
    ) -> list[dict[str, Any]]:
        """One row per partition (`cache status`); summary: one per table instead (partitions
        per status, rows, bytes, first and last day, last access)."""
        rows = cache.status(self.db, *source_filter(source, message_type))
        return cache.summarise_status(rows) if summary else rows

    def size_bytes(self) -> int:
        """Every byte the catalog keeps, as cache.max_size_gb bounds it: every source's data
        files and the files only older snapshots still show."""
        return cache_bytes(self.db)

    def older_snapshot_bytes(
        self, source: str | None = None, message_type: str | None = None
    ) -> int:
        """Bytes of the lake files only older snapshots show (replaced or evicted data kept
        for time travel or a pinned experiment until those snapshots expire): on disk beside
        what `status` lists, and counted by eviction (which expires them first)."""
        tables = _tables_of(*source_filter(source, message_type))
        with self.db.read_state() as con:
            return self.db.held_bytes(con, tables)

    def clear(self, source: str | None = None, message_type: str | None = None) -> tuple[int, int]:
        """Delete the partitions of all sources, one, or one source and type (NGSIM's too) and
        expire every snapshot no pin holds; returns (partitions, bytes freed on the lake)."""
        return cache.clear(self.db, *source_filter(source, message_type))

    def evict(self, max_size_gb: float) -> list[str]:
        """Drop least-recently-used data until the cache holds at most max_size_gb (0: all
        that pins do not hold); see cvcatalog.state.eviction.evict_to_size."""
        most = f"max_size_gb (--max-size-gb) must be at most {_MAX_SIZE_GB:,.0f} GB; got "
        try:  # a number of any kind (a Decimal a SQL sum gives too); not a str, None or bool
            size = None if isinstance(max_size_gb, bool | str | bytes) else float(max_size_gb)
        except (TypeError, ValueError):
            size = None
        except OverflowError:  # 10**400: past any float, so past the most it takes
            raise ConfigError(most + "more") from None
        if size is None or not 0 <= size < math.inf:  # a negative size emptied the cache
            got = repr(max_size_gb) if size is None else f"{size:g}"
            raise ConfigError(
                f"max_size_gb (--max-size-gb) must be a number of GB, 0 or more; got {got}"
            )
        if size > _MAX_SIZE_GB:  # (1e300 overflowed the bytes' int)
            raise ConfigError(most + f"{size:g}")
        return evict_to_size(self.db, size)

    def never_evicted(self) -> list[tuple[str, int]]:
        """The loaded dataset inputs eviction passes over, with their bytes: the catalog could
        not load them again (a local file changed or gone since its load); pinned data is
        `pinned`'s."""
        return never_evicted(self.db)

    def migrate(self) -> bool:
        """Bring a catalog written by cvcatalog 0.1 (catalog.duckdb) to the DuckLake format;
        also done by the first open of any kind (a query, a read of the state, a write).
        Returns whether this call converted one (not another process meanwhile). A catalog
        with nothing to do is not written (a read-only one is no error)."""
        if self.db.current():
            return False
        self.db.initialise()
        return self.db.migrated_legacy

    def shell_sql(self, read_log: Path | None = None) -> str:
        """The statements that make a DuckDB session see this catalog as `cvcatalog shell`
        does: the ducklake and spatial (the lake's cv_* macros) extensions from their packages,
        the session's times in UTC as cvcatalog's own (`UTC_SESSION_SQL`), the lake attached
        read-only as cv. A lake on S3 also needs httpfs and an S3 secret,
        which holds credentials: write the statements to a private file, never onto a command
        line. read_log: a directory where the session logs the files it opens (DuckDB's
        FileSystem log, in CSV), for record_logged_reads once it ends."""
        self.db.require()  # none: the one line; a 0.1 catalog: migrated first
        steps = [f"LOAD {quote_literal(str(extension_path(x)))};" for x in ("ducklake", "spatial")]
        steps += [f"{spatial.AXIS_ORDER_SQL};", f"{UTC_SESSION_SQL};"]
        if self.db.lake_url is not None:
            cfg = self.db.s3
            secret, _ = s3_secret_sql(
                profile=cfg.profile, endpoint=cfg.endpoint_url, name=LAKE_SECRET
            )
            steps += [f"LOAD {quote_literal(str(httpfs_extension()))};", f"{secret};"]
        target = quote_literal(f"ducklake:{self.paths.db}")
        # where the files are now: a catalog moved or copied (cp -a) still records the data
        # path it was written at until its next write, and the session read the old files
        here = quote_literal(self.db.lake_data)
        steps += [
            f"ATTACH {target} AS {lake.LAKE} (READ_ONLY, DATA_PATH {here}, "
            "OVERRIDE_DATA_PATH true);",
            f"USE {lake.LAKE};",
        ]
        if read_log is not None:  # (last: the statements above open no file of the lake's)
            steps += [f"{sql};" for sql in file_log_sql(read_log)]
        return "\n".join(steps)

    def record_logged_reads(self, read_log: Path) -> int:
        """Advance the LRU clock of the partitions whose files a DuckDB session opened, from
        the FileSystem log it kept in read_log (shell_sql's: `cvcatalog shell`, whose reads
        advanced no clock); returns how many partitions. A session that logged nothing (it
        switched the log off, or was killed before its log was written) advances none."""
        with self.db.read_state() as con:
            keys = self._partitions_read(con, logged_opens(con, read_log))
        self._record_access(keys)
        return len(keys)

    def validation_report(
        self,
        run_id: str | None = None,
        source: str | None = None,
        message_type: str | None = None,
        *,
        summary: bool = False,
    ) -> list[dict[str, Any]]:
        """Quarantined records and kept warnings per rule and partition of one ingest run;
        summary: per rule, summed over the partitions."""
        source, message_type = source_filter(source, message_type)
        with self.db.read_state() as con:
            if run_id is not None:
                _require_run(con, run_id)
                _require_run_of(con, run_id, source, message_type)
            rows = manifest.validation_report(con, run_id, source, message_type)
        return manifest.summarise_validation(rows) if summary else rows

    def require_run(self, run_id: str) -> None:
        """One line when the catalog recorded no ingest run `run_id` (a mistyped id)."""
        with self.db.read_state() as con:
            _require_run(con, run_id)

    def runs(
        self, limit: int = 20, source: str | None = None, message_type: str | None = None
    ) -> list[dict[str, Any]]:
        """The most recent ingest runs, newest first, with what each one changed; their start
        and finish times in UTC, as snapshots'."""
        _check_limit(limit)
        source, message_type = source_filter(source, message_type)
        with self.db.read_state() as con:
            runs = manifest.list_runs(con, limit, source, message_type)
        for r in runs:
            for key in ("started_at", "finished_at"):
                if isinstance(r[key], datetime):
                    r[key] = r[key].astimezone(UTC)
        return runs

    def run_partitions(self, run_id: str) -> list[dict[str, Any]]:
        """The partitions whose current version the run wrote (a later run that rewrote a
        partition owns it from then on); a dataset (NGSIM) run's: the partitions holding files
        of the units it committed, with those files' rows and bytes."""
        with self.db.read_state() as con:
            _require_run(con, run_id)  # a mistyped id: one line, as validation_report's
            return manifest.run_partitions(con, run_id) + dataset_run_partitions(con, run_id)

    def lineage(self, source_key: str) -> dict[str, Any]:
        """Where rows with this source_key (their S3 object) came from: the object's ETag,
        size and last-modified time as ingested, its partition, the run that wrote its current
        rows and the snapshot that made them visible (the one that registered its partition's
        current files)."""
        if not isinstance(source_key, str):
            raise ConfigError(f"a source_key is an object's key (text); got {source_key!r}")
        with self.db.read() as con:
            origin = manifest.object_origin(con, source_key)
            if origin is None:
                raise CatalogError(f"the catalog holds no rows of {source_key!r}")
            files = origin.pop("files")
            gone = deletes.of_files(con, files)
            # the partition's files that hold the object's current rows (a change deletes an
            # object's rows from the files it kept and adds them in a new one)
            located = [
                self.db.store.location(p) for p in files if source_key not in gone.get(p, ())
            ]
            if located:
                located = [
                    str(f)
                    for (f,) in con.execute(
                        "SELECT DISTINCT filename FROM read_parquet(?, filename = true, "
                        "hive_partitioning = false) WHERE source_key = ?",
                        [located, source_key],
                    ).fetchall()
                ]
            since = [f.since for f in lake.data_files(con) if f.current and f.location in located]
        origin["snapshot_id"] = max(since) if since else None
        return origin

    def changes(
        self,
        source: str,
        message_type: str | None = None,
        since: int | str = 0,
        until: int | str | None = None,
        *,
        output: Literal["pandas", "arrow", "dask"] = "pandas",
    ) -> Any:
        """The rows inserted and deleted after snapshot `since`, up to `until` (default: the
        current one): `change_type` (insert | delete), `snapshot_id` (the snapshot that made
        the change), then the table's columns. Net changes: rows a rewrite put back unchanged
        are not listed, so a day re-ingested because one object changed shows that object's
        old rows deleted and its new rows inserted.

        output="dask": a lazy frame with one partition per snapshot that changed the table
        (for ranges too large for memory), each netted within its snapshot: a row deleted by
        one snapshot and put back by a later one shows as both, where pandas nets it out.

        Snapshots after `since` that expired since (retention, while a pin kept `since`)
        still count: their changes stay in the files (a run of them is one Dask partition)."""
        table = _lake_table(source, message_type)[0]
        output = _choice("output", output, ("pandas", "arrow", "dask"))  # type: ignore[assignment]
        first = snapshot_id(since)  # '4' is 4; a word, a fraction or -1 is one line
        if first is None:
            raise ConfigError("changes need since: the snapshot they follow")
        since, until = first, snapshot_id(until)
        with self.db.read() as con:
            kept = lake.snapshots(con)
            last = until if until is not None else max((k.snapshot_id for k in kept), default=0)
            for sid in (since, last):
                self.db.check_kept(con, lake.AsOf(snapshot=sid), kept)
            if last < since:
                raise ConfigError(f"until ({last}) is before since ({since})")
            if table not in lake.table_columns(con):
                raise CatalogError(f"the catalog has no {table} table yet")
            rebuilt = lake.rebuilt_at(con, table, since, last)
            if rebuilt is not None:  # the feed read across it would be wrong: every row new
                raise CatalogError(
                    f"the {table} table was rebuilt at snapshot {rebuilt} (`cache verify "
                    "--repair` of a damaged file): changes cannot be read across it; give a "
                    f"since of {rebuilt} or later (the rows before it: query --snapshot)"
                )
            ids = {k.snapshot_id for k in kept}
            if output == "dask":
                changed = _change_parts(kept, ids, table, since, last)
                meta = _frame_pandas(lake.changes(con, table, last, last).slice(0, 0))
            elif last > since:
                # since is kept; the snapshot after it may have expired: read from since
                read = None if since + 1 in ids else (since, last)
                result = lake.changes(con, table, since + 1, last, read)
            else:  # nothing between: no rows, the feed's columns
                result = lake.changes(con, table, last, last).slice(0, 0)
        if output == "dask":
            import dask.dataframe as dd

            if not changed:
                return dd.from_pandas(meta, npartitions=1)
            # each partition reopens the catalog as pickling would (a remote one with its
            # endpoint and S3 settings, a local one with its storage), never this connection
            return dd.from_map(
                _changes_of, changed, kind=type(self), state=self.__getstate__(), table=table,
                meta=meta, label="changes",
            )  # fmt: skip
        return result if output == "arrow" else result.to_pandas()

    # -- pins ----------------------------------------------------------------------------
    def pin(
        self,
        name: str,
        source: str,
        message_type: str | None = None,
        snapshot: int | str | None = None,
    ) -> pins.Pin:
        """Pin experiment `name` to a snapshot: the one given (an experiment's data.snapshot,
        still kept), else the current one (data.pin); once: an existing pin is returned as it
        is, unless it holds another snapshot than the one given (a ConfigError: unpin it
        first). The snapshot never expires and its files stay until `unpin`."""
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"an experiment's name is a non-empty str, got {name!r}")
        table, source, message_type = _lake_table(source, message_type)
        snapshot = snapshot_id(snapshot)  # '4' is 4; a word or -1 is one line
        # every gathering asks: a read answers all but the first (no write, no writer lock)
        held = self.held_pin(name, snapshot, (source, message_type))
        if held is not None:
            return held
        with self.db.write(message=f"pin experiment {name}") as con:
            held = pins.get(con, name)  # pinned by another process meanwhile
            if held is not None:
                return _same_pin(held, snapshot, (source, message_type))
            kept = lake.snapshots(con)
            if not kept:
                raise CatalogError("the catalog has no snapshot to pin; ingest something first")
            sid = kept[-1].snapshot_id
            if snapshot is not None:  # one line when it does not exist or has expired
                self.db.check_kept(con, lake.AsOf(snapshot=snapshot), kept)
                sid = snapshot
            files = [f for f in lake.data_files(con) if f.table == table and f.shown_at(sid)]
            pin = pins.Pin(
                name,
                sid,
                source,
                message_type,
                len(files),
                sum(f.size for f in files),
                pins.files_digest(files),
                now_utc(),
            )
            pins.put(con, pin)
        return pin

    def current_snapshot(self) -> int:
        """The id of the snapshot the catalog shows now (what a read without snapshot= reads;
        a published catalog: the one it was published at)."""
        with self.db.read() as con:
            return lake.current_snapshot(con)

    def writable(self) -> bool:
        """Whether this process may write the catalog (a commit renames a copy in its
        directory): a shared catalog may be readable only."""
        return self.db.writable()

    def held_pin(
        self,
        name: str,
        snapshot: int | None = None,
        table: tuple[str, str | None] | None = None,
    ) -> pins.Pin | None:
        """Experiment `name`'s pin, if it has one (a read): a ConfigError when it holds another
        snapshot than the one given (None: any), or another (source, type) (None: any)."""
        held = self.pin_of(name)
        return None if held is None else _same_pin(held, snapshot, table)

    def pin_of(self, name: str) -> pins.Pin | None:
        with self.db.read_state() as con:
            return pins.get(con, name)

    def pinned(self) -> list[dict[str, Any]]:
        """Every pinned experiment, with the bytes its snapshot holds that the current
        catalog no longer shows (`held_bytes`: what eviction cannot free while it is pinned)
        and the part of them no other pin holds (`held_alone_bytes`: what unpinning it alone
        lets expiry free)."""
        return self.pins_held()[0]

    def pins_held(self) -> tuple[list[dict[str, Any]], int]:
        """pinned() and pinned_bytes() from one read of the lake's files."""
        with self.db.read() as con:
            held = pins.held_bytes(con)
            rows = [
                {
                    **p.__dict__,
                    "held_bytes": held.bytes.get(p.name, 0),
                    "held_alone_bytes": held.alone.get(p.name, 0),
                }
                for p in pins.all_pins(con)
            ]
            return rows, held.total

    def pinned_bytes(self) -> int:
        """The bytes every pin keeps that the current catalog no longer shows, each file
        counted once (pins of the same snapshot share its files)."""
        with self.db.read() as con:
            return pins.held_bytes(con).total

    def unpin(self, name: str) -> bool:
        """Release a pin; its snapshot expires with retention like any other."""
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"an experiment's name is a non-empty str, got {name!r}")
        with self.db.write(message=f"unpin experiment {name}") as con:
            return pins.remove(con, name)

    def run_snapshots(self, run_id: str) -> list[dict[str, Any]]:
        """The snapshots a run committed, oldest first (see snapshots())."""
        self.require_run(run_id)
        return [s for s in reversed(self.snapshots()) if s["run_id"] == run_id]

    def expired_since_run(self, run_id: str) -> bool:
        """Whether a snapshot committed since the run started has expired: the run's may be
        among them (`runs show` then says 'none kept', else that the run committed none)."""
        with self.db.read_state() as con:
            kept = lake.snapshots(con)
            row = con.execute(
                "SELECT started_at FROM ingest_runs WHERE run_id = ?", [run_id]
            ).fetchone()
        if row is None or not kept:
            return bool(row)
        before = [k.snapshot_id for k in kept if k.committed_at < row[0]]
        since = [k.snapshot_id for k in kept if k.committed_at >= row[0]]
        first = before[-1] + 1 if before else 0  # the first snapshot the run could commit
        return since != list(range(first, first + len(since)))

    def run_objects(self, run_id: str) -> list[dict[str, Any]]:
        """The source objects whose current rows the run wrote (a dataset run's: its
        inputs, their partition the dataset's name)."""
        with self.db.read_state() as con:
            _require_run(con, run_id)
            return manifest.run_objects(con, run_id) + dataset_run_inputs(con, run_id)

    def compact(
        self,
        source: str | None = None,
        message_type: str | None = None,
        rows_per_file: int = 2_000_000,
    ) -> list[CompactResult]:
        """Rewrite partitions made of several Parquet files as few well-sized files."""
        source, message_type = source_filter(source, message_type)
        rows_per_file = _whole_number("rows_per_file", rows_per_file, 1)
        return compact(self.db, source, message_type, rows_per_file=rows_per_file)

    def verify(self) -> cache.VerifyReport:
        return cache.verify(self.db)

    def repair(
        self,
        report: cache.VerifyReport,
        *,
        profile: str | None = None,
        no_sign_request: bool | None = None,
        on_done: Callable[[Repaired], None] | None = None,
        config: IngestConfig | Mapping[str, Any] | str | Path | None = None,
    ) -> list[Repaired]:
        """Mend what verify found: damaged partitions leave the views and damaged dataset
        units are dropped (ops.cache.quarantine_bad), a table whose delete file in effect is
        damaged is rebuilt, orphans are deleted, then each damaged CV day and dataset input is
        fetched again, and last each damaged file that only older snapshots show (the damaged
        current ones too, now) is restored from a good file with the same recorded SHA-256, or
        left as it is with the reason (ops.cache.mend_kept); on_done sees each as it finishes.

        The fetches are ingests: they read `config` (a data-source YAML or config object; its
        bucket slice is left alone) as ingest does, cache.max_size_gb included, which each
        keeps at its end (without one: CVCATALOG_* and the defaults, as `cvcatalog ingest`)."""
        out: list[Repaired] = []

        def done(item: Repaired) -> None:
            out.append(item)
            if on_done is not None:
                on_done(item)

        refetch = cache.quarantine_bad(self.db, report)
        for rel in report.orphans:  # quarantine_bad deleted them
            done(Repaired(rel, 0, 0, line=f"deleted {rel} (an orphan: no table lists it)"))
        for table in report.bad_delete_tables:
            done(Repaired(table, 0, 0, line=f"rebuilt {table}: its deletes applied again"))
        for r in refetch:
            options = DATASETS[r.dataset].options_for_scope(r.scope)
            if r.unit_bytes:
                options["unit_bytes"] = r.unit_bytes
            ds = self.ingest_dataset(
                r.dataset, [r.uri], profile=profile, no_sign_request=no_sign_request,
                config=config, **options,
            )  # fmt: skip
            done(
                Repaired(
                    f"{r.dataset} {r.uri}", ds.rows, ds.units_failed, ds.units_done,
                    tuple(ds.errors),
                )
            )  # fmt: skip
        for key in report.bad_partitions:
            pk = PartitionKey.parse(key)
            s = self.ingest(
                pk.source,
                pk.message_type,
                pk.day,
                pk.day,
                timezone=FOLDER_TIMEZONE[pk.source],
                config=config,
                profile=profile,
                no_sign_request=no_sign_request,
            )
            # the ingest covers the partition's whole folder range (a NYCDOT bin: the month),
            # its other partitions cached: only this one's outcome is the repair's
            mine = [o for o in s.outcomes if o.key == key]
            failed = [o.error or "failed" for o in mine if o.status == "failed"]
            done(Repaired(key, sum(o.rows for o in mine), len(failed), errors=tuple(failed)))
        for m in cache.mend_kept(self.db):
            done(Repaired(m.path, 0, int(not m.ok), line=m.line))
        return out

    def publish(self, url: str, **options: Any) -> Any:
        """Upload this catalog to s3://bucket/prefix for read-only use with Catalog(url);
        returns a cvcatalog.ops.publish.PublishSummary (see that module for the options)."""
        return publish_catalog(self, url, **options)

    # -- discovery (listings only, no downloads) ---------------------------------------------
    def discover(
        self,
        source: str,
        message_type: str | None = None,
        year: int | None = None,
        month: int | None = None,
        *,
        refresh: bool = False,
        config: str | Path | None = None,
        fetcher: S3Fetcher | None = None,
        names: Mapping[str, str] | None = None,
        **download: Any,
    ) -> Discovery:
        """What the bucket holds below source[/type[/year[/month]]], from delimiter listings.

        Listings are cached in the catalog for cache.listing_ttl_hours (refresh=True lists
        again). Extra keyword arguments override `download:` settings (profile, rate_limit...).
        names: the caller's words for the arguments in messages (a CLI's flags).
        """
        # None or not a str: one line (ngsim is no source of the bucket)
        source_filter(source, message_type, required=True, bucket_only=True)
        bucket, cache_cfg, dl = self._listing_settings(config, download)
        listings = ListingCache(
            self.db,
            fetcher_factory(fetcher, dl, bucket),
            ttl_hours=cache_cfg.listing_ttl_hours,
            refresh=refresh,
            scope=f"{source.strip().lower()}/",
        )
        result = discover_listing(listings, bucket, source, message_type, year, month, names)
        listings.save()
        return result

    def plan(
        self,
        source: str,
        message_type: str | None = None,
        start: date | str | None = None,
        end: date | str | None = None,
        *,
        days_back: int | None = None,
        timezone: str | None = None,
        config: DataSourceConfig | str | Path | None = None,
        force_refresh: bool = False,
        refresh: bool = False,
        check_changes: bool | None = None,
        fetcher: S3Fetcher | None = None,
        today: date | None = None,
        **download: Any,
    ) -> Plan:
        """What `ingest` with the same arguments would fetch, per partition (listings only).
        check_changes (default: cache.check_changes): as `ingest --check-changes`, each cached
        day is listed again and its added and changed objects are what it would fetch."""
        _flag("force_refresh", force_refresh)
        if check_changes is not None:
            _flag("check_changes", check_changes)
        cfg = self.config(
            source,
            message_type,
            start,
            end,
            days_back=days_back,
            timezone=timezone,
            config=config,
            **download,
        )
        listings = ListingCache(
            self.db,
            fetcher_factory(fetcher, cfg.download, cfg.bucket),
            ttl_hours=cfg.cache.listing_ttl_hours,
            refresh=refresh,
            scope=f"{cfg.source}/{cfg.message_type}/",
        )
        if today is not None:  # ("2021-04-03" was a TypeError from date arithmetic)
            today = parse_day(today, "today")
        check = cfg.cache.check_changes if check_changes is None else check_changes
        result = plan_listing(
            listings, self.db, cfg, force=force_refresh, today=today, check_changes=check
        )
        listings.save()
        return result

    def _listing_settings(
        self, config: str | Path | None, download: dict[str, Any]
    ) -> tuple[str, CacheConfig, DownloadConfig]:
        data, origin = (load_yaml(config), str(config)) if config is not None else ({}, "arguments")
        cache_over: dict[str, Any] = {"directory": str(self.paths.root)}
        if self._lock_timeout is not None:
            cache_over["lock_timeout_seconds"] = self._lock_timeout
        overrides = {
            "cache": cache_over,
            "download": {k: v for k, v in download.items() if v is not None},
        }
        return listing_settings(data, overrides, origin)

    # -- spatial filters (docs/spatial.md) -----------------------------------------------
    def where_spatial(
        self,
        *,
        within: spatial.Within | Sequence[float] | None = None,
        bbox: spatial.BBox | Sequence[float] | None = None,
        corridor: spatial.Corridor | tuple[Sequence[Sequence[float]], float] | None = None,
        lat: str = spatial.LAT,
        lon: str = spatial.LON,
    ) -> tuple[str, list[Any]]:
        """A spatial filter as a SQL predicate and its `?` parameters, to put in your own
        query(): `pred, params = cat.where_spatial(within=(41.14, -104.82, 2000))` then
        `cat.query(f"SELECT count(*) FROM bsm WHERE {pred}", params)`."""
        area = spatial.as_filter(within, bbox, corridor)
        if area is None:
            raise ConfigError("give one of within, bbox, corridor")
        for arg, column in (("lat", lat), ("lon", lon)):
            if not isinstance(column, str) or not column.strip():
                raise ConfigError(f"{arg} is the name of a column (a str), got {column!r}")
        return spatial.predicate_sql(area, lat, lon)

    def query_spatial(
        self,
        view: str,
        *,
        within: spatial.Within | Sequence[float] | None = None,
        bbox: spatial.BBox | Sequence[float] | None = None,
        corridor: spatial.Corridor | tuple[Sequence[Sequence[float]], float] | None = None,
        columns: Sequence[str] | None = None,
        where: str | None = None,
        params: Sequence[Any] | None = None,
        limit: int | None = None,
        output: Literal["pandas", "arrow"] = "pandas",
        snapshot: int | None = None,
        as_of: datetime | str | None = None,
    ) -> Any:
        """The rows of a table or view (`bsm`, `wydot_bsm`, `trajectories`, `ngsim_trajectories`,
        ...) inside an area, in SQL (DuckDB reads only the row groups the area's box can touch).
        where: an extra SQL predicate, its `?` values in params; columns: the columns to return
        (as to_dask takes them); limit: at most that many rows (0 or more)."""
        columns = _column_names(columns)
        _check_limit(limit)
        output = _choice("output", output, ("pandas", "arrow"))  # type: ignore[assignment]
        known = self.views()
        if not isinstance(view, str) or view.strip().lower() not in known:
            raise QueryError(f"no table or view {view!r}; try one of {', '.join(known)}")
        view = view.strip().lower()  # as SQL reads a name: 'BSM' is bsm
        probe = self.query_arrow(
            f"SELECT * FROM {quote_ident(view)} LIMIT 0", snapshot=snapshot, as_of=as_of
        )
        spatial.require_positions(probe.column_names, view)
        missing = [c for c in columns or () if c not in probe.column_names]
        if missing:
            raise QueryError(f"unknown column(s) {', '.join(missing)} for {view}")
        pred, values = self.where_spatial(within=within, bbox=bbox, corridor=corridor)
        cols = ", ".join(quote_ident(c) for c in columns) if columns else "*"
        sql = f"SELECT {cols} FROM {quote_ident(view)} WHERE {pred}"
        if where:  # one expression (check_where), on lines of its own: a `--` ends there
            check_where(where)
            sql += f" AND (\n{where}\n)"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self.query(
            sql, [*values, *(params or ())], output=output, snapshot=snapshot, as_of=as_of
        )

    # -- trips and splits (docs/ml.md) -------------------------------------------------------
    def trip_gap(self) -> float:
        """trips.max_gap_s as the catalog records it (the trip views are made with it)."""
        with self.db.read_state() as con:
            return trips.recorded_gap(con)

    def set_trip_gap(self, max_gap_s: float) -> float:
        """Record trips.max_gap_s and define the trip views again with it (one commit)."""
        gap = trips.check_gap(max_gap_s)
        self.db.requested_trip_gap = gap
        with self.db.write(message=f"trips.max_gap_s = {gap:g}"):
            pass
        return gap

    def split_plan(
        self,
        source: str,
        message_type: str | None = None,
        start: date | str | None = None,
        end: date | str | None = None,
        *,
        by: Literal["vehicle", "trip"] = "vehicle",
        fractions: Sequence[float] = (0.8, 0.1, 0.1),
        seed: int = 0,
        timezone: str = "UTC",
        snapshot: int | None = None,
        location: str | Sequence[str] | None = None,
        as_of: datetime | str | None = None,
        within: spatial.Within | Sequence[float] | None = None,
        bbox: spatial.BBox | Sequence[float] | None = None,
        corridor: spatial.Corridor | tuple[Sequence[Sequence[float]], float] | None = None,
    ) -> tuple[splits.SplitPlan, pd.DataFrame]:
        """Which group (vehicle id or trip) goes to which split, from the group sizes of the
        window counted once in SQL; and the groups: key, n (rows), vehicle_id and first (the
        time of the group's first row in the window). location: only those sites of a dataset
        (NGSIM), as to_dask(location=...) reads them; within / bbox / corridor: only the rows
        inside that area, as to_dask keeps them. snapshot / as_of: as to_dask's. A window
        with no group to split (no rows, or none with a vehicle id) is a CatalogError, one
        line, as `report coverage` says of an empty range."""
        by = _choice("by", by, ("vehicle", "trip"))  # type: ignore[assignment]
        splits.check_fractions(fractions)
        if whole_number(seed) is None:  # True split as 'True', None as 'None': not seeds
            raise ConfigError(f"seed is a whole number, e.g. 0, got {seed!r}")
        snapshot = self._snapshot_at(as_of_point(snapshot, as_of))
        rel = splits.relation(source, message_type)
        sites = _sites(source, location)
        area = spatial.as_filter(within, bbox, corridor)
        if area is not None:
            spatial.require_positions(_columns_of(source, message_type), rel.table)
        tz = timezone_arg(timezone)
        days = _day_range(*_split_days(start, end))
        window = splits.window_of(*days, tz)
        if snapshot is None and window is not None:  # as to_dask's window, before any error
            self._warn_missing(rel.source, rel.message_type, *days, tz, holder="the split")
        sql, params = splits.group_sizes_sql(rel, by, window, sites, area)
        groups = self.query(sql, params, snapshot=snapshot)
        if groups.empty:
            sql, params = splits.window_rows_sql(rel, window, sites, area)
            rows = int(self.query(sql, params, snapshot=snapshot).n[0])
            raise splits.nothing_to_split(rel, days, tz, rows, snapshot, sites, area)
        return splits.plan(groups, by, fractions, seed), groups

    def split(
        self,
        source: str,
        message_type: str | None = None,
        start: date | str | None = None,
        end: date | str | None = None,
        *,
        by: Literal["vehicle", "trip"] = "vehicle",
        fractions: Sequence[float] = (0.8, 0.1, 0.1),
        seed: int = 0,
        timezone: str = "UTC",
        snapshot: int | None = None,
        as_of: datetime | str | None = None,
        filters: Filters | None = None,
        **options: Any,
    ) -> splits.Splits:
        """Train, validation and test lazy Dask frames of to_dask(source, type, start, end):
        no vehicle id (by="vehicle") or trip (by="trip") is in two of them, the same seed
        gives the same split, and each holds its fraction of the window's rows within about
        one group's size. Other keyword arguments (columns, naming, location, ...) go to
        to_dask; fractions are planned on the window's rows (of those sites, inside that area)
        before `filters`. A window with nothing to split is a CatalogError (split_plan)
        (cvcatalog/read/splits.py, docs/ml.md)."""
        start, end = _split_days(start, end)
        # before the plan's query: a misspelt one (colums=) was to_dask's TypeError after it
        passed = set(inspect.signature(Catalog.split).parameters)
        takes = sorted(set(inspect.signature(Catalog.to_dask).parameters) - passed)
        unknown = sorted(set(options) - set(takes))
        if unknown:
            raise ConfigError(
                f"split() has no argument {unknown[0]!r}; besides its own it takes to_dask's: "
                + ", ".join(takes)
            )
        if "columns" in options:
            options["columns"] = _column_names(options["columns"])
        filters = _check_filter_terms(filters, timezone_arg(timezone))
        # a time is the snapshot current then, once: the plan and the frames read the same one
        snapshot = self._snapshot_at(as_of_point(snapshot, as_of))
        the_plan, groups = self.split_plan(
            source, message_type, start, end, by=by, fractions=fractions, seed=seed,
            timezone=timezone, snapshot=snapshot, location=options.get("location"),
            within=options.get("within"), bbox=options.get("bbox"),
            corridor=options.get("corridor"),
        )  # fmt: skip
        rel = splits.relation(source, message_type)

        def read(**kw: Any) -> dd.DataFrame:
            told = _missing_told.set(True)  # split_plan named the window's missing days
            try:
                return self.to_dask(  # the relation's type: the one it defaulted to
                    source, rel.message_type, start, end, timezone=timezone, snapshot=snapshot,
                    **kw,
                )  # fmt: skip
            finally:
                _missing_told.reset(told)

        return splits.split_frames(
            read, groups, the_plan, time_column=rel.time, filters=filters, **options
        )

    # -- export --------------------------------------------------------------------------
    def export(
        self,
        source: str,
        message_type: str | None = None,
        start: date | str | None = None,
        end: date | str | None = None,
        *,
        output: str | Path,
        format: str | None = None,
        timezone: str = "UTC",
        within: spatial.Within | Sequence[float] | None = None,
        bbox: spatial.BBox | Sequence[float] | None = None,
        corridor: spatial.Corridor | tuple[Sequence[Sequence[float]], float] | None = None,
        where: str | None = None,
        columns: Sequence[str] | str | None = None,
        naming: Literal["canonical", "socrata"] = "canonical",
        snapshot: int | None = None,
        as_of: datetime | str | None = None,
        progress: ExportProgress | None = None,
        names: Mapping[str, str] | None = None,
    ) -> ExportResult:
        """Write a slice of the catalog to one file (parquet, geoparquet, csv, ndjson), what
        the official S3-Select exporter did: the local days start..end of (source, type), an
        area (within/bbox/corridor as in to_dask), a SQL predicate `where` and `columns` in
        the names of `naming`. Streams; the file appears only when complete. See
        docs/spatial.md#export.

        Without `format`, the suffix of `output` decides, as the CLI's: .parquet, .geoparquet,
        .csv, .ndjson/.jsonl/.json (any other: parquet); a `format` that suffix contradicts
        (`output="a.parquet", format="csv"`) is one ConfigError line, the file left as it was.

        A bad argument is one ConfigError (or QueryError) line naming it by its parameter
        (`where is not one SQL predicate: ...`); `names` maps parameters to the caller's own
        words for them (the CLI passes its flags: {"where": "--where", ...}).

        Days of start..end (a start alone: that day) the catalog does not hold give one
        MissingDataWarning naming them and the ingest that fetches them, as to_dask's window
        does, after the (empty or short) file is written: an export of data never ingested
        said nothing. Without start, only a (source, type) the catalog holds nothing of
        warns; a snapshot's export, or NGSIM's, does not."""
        result = export_slice(
            self.db,
            source,
            message_type,
            start,
            end,
            output=output,
            format=format,
            timezone=timezone,
            area=spatial.as_filter(within, bbox, corridor),
            where=where,
            columns=_column_names(columns),
            naming=naming,
            at=as_of_point(snapshot, as_of),
            progress=progress,
            names=names,
        )
        if snapshot is None and as_of is None:
            s, e = _day_range(start, end)  # (checked by the export: no error here)
            tz = timezone_arg(timezone)
            # the LRU clock of what it read, as to_dask's (an exported day looked unused)
            self._record_access(
                self.partition_keys(result.source, result.message_type, s, e or s, tz)
            )
            self._warn_missing(
                result.source, result.message_type, s, e or s, tz, holder="the file"
            )
        return result

    def partition_keys(
        self,
        source: str,
        message_type: str,
        start: date | str | None = None,
        end: date | str | None = None,
        timezone: str = "UTC",
    ) -> list[str]:
        """The keys of the partitions a read of the local days start..end goes through (as
        `partitions`: None is open, from the first day or to the last): a CV type's complete
        partitions, a dataset's published ones of those days (what export and `report
        quality` read, and what they count as accessed)."""
        tz = timezone_arg(timezone)
        s, e = _day_range(start, end)
        ds = _dataset(source)
        if ds is None:
            return [p.partition_key for p in self.partitions(source, message_type, s, e, tz)]
        lo = utc_window(s, s, tz)[0] if s is not None else None  # where start's day begins
        hi = utc_window(e, e, tz)[1] if e is not None else None  # and end's ends
        with self.db.read_state() as con:
            files = dataset_files(con, ds.name, published_only=True)
        parts = {f.partition for f in files if f.kind == "data"}
        return [f"{ds.name}/{p}" for p in sorted(parts) if _day_in(_partition_values(ds, p), lo, hi)]

    def coverage(self, source: str, *args: Any, **options: Any) -> CoverageReport:
        """Where the points of a range of local days are: `report coverage`'s counts and
        hexbin cells, quality.coverage.build_coverage(catalog, source, message_type, start,
        end, timezone=, per_day=) of this catalog (message_type None: the source's type with
        positions). Days of the window the catalog does not hold give one MissingDataWarning
        naming them and the ingest that fetches them, as export and to_dask do: the maps
        could not tell a day never ingested from a day with no data."""
        rep = build_coverage(self, source, *args, **options)
        self._warn_missing(
            rep.source, rep.message_type, rep.start, rep.end, rep.timezone, holder="the report"
        )
        return rep


def source_pair(source: str, message_type: str) -> tuple[str, str]:
    """(source, type) normalised and checked against what the bucket publishes; a bad pair
    is one ConfigError line."""
    try:
        return check_source_type(source, message_type)
    except ValueError as e:
        raise ConfigError(str(e)) from None


#: Statements a read-only query may run (DESCRIBE, SHOW, SUMMARIZE, FROM ... are SELECTs).
_READ_STATEMENTS = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
#: Never allowed, even with --read-write: they could reach the catalog file itself.
_NEVER_STATEMENTS = {
    duckdb.StatementType.ATTACH,
    duckdb.StatementType.DETACH,
    duckdb.StatementType.EXPORT,
    duckdb.StatementType.LOAD,
    duckdb.StatementType.EXTENSION,  # INSTALL
    duckdb.StatementType.COPY_DATABASE,
}


def _tables_of(source: str | None, message_type: str | None) -> set[str] | None:
    """The lake tables of a source (and type), as source_filter gives them; None: all."""
    if source is not None:
        if _dataset(source) is not None or message_type is not None:
            return {_lake_table(source, message_type)[0]}
        return {s.view_name for (src, _), s in SCHEMAS.items() if src == source}
    if message_type is not None:
        wanted = {s.view_name for (_, mt), s in SCHEMAS.items() if mt == message_type}
        return wanted | {d.view_name for d in DATASETS.values() if d.message_type == message_type}
    return None


def _lake_table(source: str, message_type: str | None) -> tuple[str, str, str]:
    """The lake table of a (source, type), with the source and type as stored: a dataset's
    (NGSIM: one type), or a CV Pilot source's table of that type."""
    src, mt = source_filter(source, message_type, required=True)
    assert src is not None
    ds = _dataset(src)
    if ds is not None:
        return ds.view_name, ds.name, ds.message_type
    mt = type_of(src, mt)
    return SCHEMAS[(src, mt)].view_name, src, mt


def _change_parts(
    kept: list[lake.Snapshot], ids: set[int], table: str, since: int, last: int
) -> list[tuple[int, int]]:
    """The partitions of Catalog.changes(output="dask"): (first, last) snapshots, one per kept
    snapshot after since that changed the table, and one per run of expired snapshot ids
    (what they changed is no longer recorded per snapshot, only in the files)."""
    touched = {k.snapshot_id for k in kept if table in k.tables}
    parts: list[tuple[int, int]] = []
    gap: int | None = None
    for sid in range(since + 1, last + 1):
        if sid not in ids:
            gap = sid if gap is None else gap
            continue
        if gap is not None:
            parts.append((gap, sid - 1))
            gap = None
        if sid in touched:
            parts.append((sid, sid))
    return parts


def _changes_of(
    part: tuple[int, int], kind: type[Catalog], state: dict[str, Any], table: str
) -> pd.DataFrame:
    """The net changes of a table by snapshots first..last (a partition of
    Catalog.changes(output="dask"), read on a Dask worker, which opens the catalog itself from
    its pickled state): one snapshot, or a run of expired ones, read from the kept snapshot
    before them."""
    first, last = part
    cat = kind.__new__(kind)
    cat.__setstate__(state)
    with cat.db.read() as con:
        ids = {k.snapshot_id for k in lake.snapshots(con)}
        read = None if first in ids and last in ids else (first - 1, last + 1)
        return _frame_pandas(lake.changes(con, table, first, last, read))


def snapshot_id(snapshot: int | str | None) -> int | None:
    """snapshot= as the int it names (a string of digits too, as a YAML or form may give
    it): anything else is one ConfigError line, not a TypeError deep in a read."""
    if snapshot is None:
        return None
    if isinstance(snapshot, str):
        sid = int(snapshot.strip()) if snapshot.strip().isdigit() else None
    else:
        sid = whole_number(snapshot)  # an int, a numpy integer; not a float nor a bool
    if sid is None or sid < 0:
        raise ConfigError(
            "snapshot must be a snapshot id, a whole number 0 or more (`cvcatalog snapshots` "
            f"lists them), not {snapshot!r}"
        )
    return sid


def as_of_point(snapshot: int | str | None, as_of: datetime | str | None) -> lake.AsOf | None:
    """The point of time travel asked for (at most one of snapshot and as_of)."""
    if snapshot is not None and as_of is not None:
        raise ConfigError("give a snapshot or a time (as_of), not both")
    sid = snapshot_id(snapshot)
    if sid is not None:
        return lake.AsOf(snapshot=sid)
    if as_of is None:
        return None
    if isinstance(as_of, str):
        try:
            as_of = datetime.fromisoformat(as_of.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                f"not a time: {as_of!r} (ISO 8601, e.g. 2021-04-03T12:00:00Z; UTC if no zone)"
            ) from None
    if not isinstance(as_of, datetime):  # a date would be ambiguous: its start or its end?
        raise ConfigError(
            f"as_of is a time: a datetime or an ISO 8601 str such as 2021-04-03T12:00:00Z, got "
            f"{as_of!r}"
        )
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    return lake.AsOf(time=as_of)


def check_query(sql: str, *, read_only: bool = True, root: Path | None = None) -> None:
    """Reject statements that could modify the catalog (and SQL that is no str), with one
    clear line."""
    if not isinstance(sql, str):
        raise QueryError(f"the query is SQL text (a str), got {sql!r}")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise QueryError(_short_duckdb_error(e)) from None
    if not statements:
        raise QueryError("the query is empty")
    for st in statements:
        if st.type == duckdb.StatementType.EXPLAIN:  # EXPLAIN ANALYZE runs what it explains
            check_query(_explained(st.query), read_only=read_only, root=root)
            continue
        kind = st.type.name
        if st.type == duckdb.StatementType.LOAD and re.match(r"\s*(FORCE\s+)?INSTALL\b", st.query, re.I):
            kind = "INSTALL"  # DuckDB types INSTALL as LOAD: 'INSTALL httpfs' said LOAD
        if read_only and st.type not in _READ_STATEMENTS:
            raise QueryError(
                f"read-only query: {kind} statements are not allowed (only SELECT, EXPLAIN); "
                "the catalog cannot be modified with SQL (use --output to save a result)"
            )
        if st.type in _NEVER_STATEMENTS:
            raise QueryError(f"{kind} statements are not allowed on the catalog")
        if st.type == duckdb.StatementType.COPY and root is not None:
            literals = [m.replace("''", "'") for m in re.findall(r"'((?:[^']|'')*)'", st.query)]
            literals += [m[1] for m in re.findall(r"\$(\w*)\$(.*?)\$\1\$", st.query, re.S)]
            for literal in literals:
                target = Path(literal).expanduser().resolve()
                if target == root or target.is_relative_to(root):
                    raise QueryError(f"COPY may not write inside the catalog directory {root}")
    shown = [st for st in statements[:-1] if st.type in _READ_STATEMENTS]
    if shown:  # its rows would be dropped without a word: only the last result is returned
        raise QueryError(
            f"{len(statements)} statements in one query, and only the last one's rows are "
            f"returned: run the {shown[0].type.name} before it on its own (statements before "
            "the last may only change the session, e.g. CREATE TEMP TABLE with --read-write)"
        )


#: EXPLAIN's head: `EXPLAIN`, `EXPLAIN ANALYZE`, options in parentheses before or after it
_EXPLAIN_HEAD = re.compile(
    r"\s*EXPLAIN\b\s*(?:\((?:[^()]|\([^()]*\))*\)\s*)?(?:ANALY[SZ]E\b\s*)?"
    r"(?:\((?:[^()]|\([^()]*\))*\)\s*)?",
    re.I,
)


def _explained(sql: str) -> str:
    """The statement an EXPLAIN explains, checked as if run (EXPLAIN ANALYZE runs it: the
    read-only query wrote files through `EXPLAIN ANALYZE COPY ... TO`, and loaded and
    installed extensions); one line when it cannot be told."""
    head = _EXPLAIN_HEAD.match(sql)
    inner = sql[head.end() :] if head is not None else ""
    if not inner.strip():
        raise QueryError("EXPLAIN needs the statement it explains, written after it")
    return inner


def _short_duckdb_error(e: duckdb.Error, lake_data: str | None = None) -> str:
    """A DuckDB error of a query as one line for people: S3's and httpfs's as the S3 stack
    words them, a missing or damaged data file of the lake at lake_data with the command
    that mends it."""
    known = as_s3_error(e)  # httpfs could not reach S3, or S3 said no
    if known is not None:
        return str(known)
    text = str(e).strip().splitlines()[0]
    if "read-only mode" in text:
        return "the catalog is opened read-only for queries; it cannot be modified with SQL"
    return damaged_file_line(e, lake_data) or text


def damaged_file_line(e: BaseException, lake_data: str | None = None) -> str | None:
    """The line for a DuckDB error that met a data file missing or damaged (any command that
    reads the lake: a query, `cache evict`, compact), with the command that mends it; None
    for any other error (lake.damaged_line: a file outside lake_data is not the catalog's)."""
    if not isinstance(e, duckdb.Error) or not str(e).strip():
        return None
    return lake.damaged_line(str(e).strip().splitlines()[0], lake_data)


def _example_key(source: str, message_type: str) -> str:
    return partitions_for(source, message_type, date(2021, 1, 1), date(2021, 1, 1), "UTC")[0].key


def _meta(
    spec: FrameSpec,
    pieces: list[DaskPiece],
    columns: list[str] | None,
    constants: tuple[tuple[str, Any], ...],
    plan: SocrataPlan | None = None,
    expected: pa.Schema | None = None,
    filters: Filters | None = None,
) -> tuple[pd.DataFrame, pa.Schema | None]:
    """An empty frame with the exact dtypes a piece will have, and with plan the Arrow
    schema of the socrata columns. expected: the table's columns now, when files written
    before may lack some (FrameSpec.evolves). filters: checked against the (canonical)
    columns here, so a mistake is one line from to_dask, not a pyarrow error at compute."""
    if pieces:
        first = pieces[0]
        fs = first.s3.filesystem() if first.s3 is not None else None
        arrow_schema = pq.read_schema(first.files[0], filesystem=fs)
        for old, new in spec.renamed:  # as _read_piece renames them
            if old in arrow_schema.names and new not in arrow_schema.names:
                i = arrow_schema.get_field_index(old)
                arrow_schema = arrow_schema.set(i, arrow_schema.field(i).with_name(new))
    else:
        arrow_schema = spec.empty_schema()
    # columns its files predate, or quality columns only some files have, read as NULL
    # (_read_piece)
    for f in expected or ():
        if f.name not in arrow_schema.names and f.name not in dict(constants):
            arrow_schema = arrow_schema.append(f)
    table = _with_constants(arrow_schema.empty_table(), constants)
    _check_filter_columns(filters, table, {n for n, _ in constants}, spec.name)
    socrata = None
    if plan is not None:
        if columns is not None:
            plan.check(columns)
        table = _apply_sql(table, plan.select_sql(columns, "frame", table.column_names))
        socrata = table.schema
    if columns is not None:
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise ConfigError(
                f"unknown column(s) {', '.join(missing)} for {spec.name}; "
                f"valid: {', '.join(table.column_names)}"
            )
        table = table.select(columns)
    return _frame_pandas(table), socrata


def _sites(source: str, location: str | Sequence[str] | None) -> list[str] | None:
    """The sites location= names, as the dataset's files name them (a mistyped one is a
    ConfigError naming the valid ones); None: every site. Only a dataset with location
    partitions (NGSIM) has sites."""
    if location is None:
        return None
    ds = _dataset(source)
    if ds is None:
        raise ConfigError(f"location= selects sites of a dataset (ngsim), not of {source}")
    if "location" not in ds.partition_by:
        raise ConfigError(f"{ds.name} has no location partitions")
    sites = [location] if isinstance(location, str) else as_items(location)
    if not sites or not all(isinstance(x, str) for x in sites):  # ([] read no site: empty)
        # location=5 was "'int' object is not iterable"
        raise ConfigError(
            f"location is a site's name or a list of them, e.g. 'i-80', got {location!r}"
        )
    return [ds.partition_value("location", x) for x in sites]


def _columns_of(source: str, message_type: str | None) -> list[str]:
    """The canonical columns of a source's frames: a dataset's (NGSIM), else its view's."""
    ds = _dataset(source)
    if ds is not None:
        return list(ds.arrow_schema.names)
    return [n for n, _ in SCHEMAS[source_pair(source, message_type or "")].view_columns]


def _dataset(source: str) -> type[Dataset] | None:
    """The dataset (NGSIM, ...) a source name means, or None for a CV Pilot source."""
    return DATASETS.get(source.strip().lower())


def _dataset_term(ds: type[Dataset], term: tuple[str, str, Any]) -> tuple[str, str, Any]:
    """A filter on a dataset's partition column other than date (NGSIM's location) names its
    values as location= does: ("location", "==", "US-101") read no row (the files say
    us-101); a site the dataset does not have is one line naming those it has."""
    column, op, value = term
    if column not in ds.partition_by or column == "date":
        return term
    if isinstance(value, str):
        return column, op, ds.partition_value(column, value)
    if isinstance(value, list | tuple | set | frozenset) and all(isinstance(v, str) for v in value):
        return column, op, [ds.partition_value(column, v) for v in value]
    return term


def _day_in(
    constants: tuple[tuple[str, Any], ...], lo: datetime | None, hi: datetime | None
) -> bool:
    """A dataset partition (its values) is read by the UTC window lo..hi (None: open): its
    `date` in it, or no date to say otherwise."""
    day = dict(constants).get("date")
    if not isinstance(day, date):
        return True
    return (lo is None or lo.date() <= day) and (
        hi is None or day <= (hi - timedelta(microseconds=1)).date()
    )


def _partition_values(ds: type[Dataset], partition: str) -> tuple[tuple[str, Any], ...]:
    """'location=us-101/date=2005-06-15' -> (('location', 'us-101'), ('date', date(...))),
    typed as the dataset's schema types its partition columns."""
    types = {f.name: f.type for f in ds.arrow_schema}
    out: list[tuple[str, Any]] = []
    for item in partition.split("/"):
        key, _, text = item.partition("=")
        typ = types.get(key)
        value: Any = None if text == "__null__" else text
        if value is not None and typ is not None:
            if pa.types.is_date(typ):
                value = date.fromisoformat(text)
            elif pa.types.is_integer(typ):
                value = int(text)
        out.append((key, value))
    return tuple(out)


def _example_value(typ: pa.DataType) -> Any:
    if pa.types.is_date(typ):
        return date(1970, 1, 1)
    if pa.types.is_integer(typ):
        return 0
    return ""


def _storage_schema(ds: type[Dataset]) -> pa.Schema:
    """The columns a dataset's Parquet files hold (the partition columns are in the path)."""
    return pa.schema([f for f in ds.arrow_schema if f.name not in ds.partition_by])


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: bool(a == b),
    "==": lambda a, b: bool(a == b),
    "!=": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}


def _check_filter_terms(
    filters: Filters | None, timezone: str = "UTC"
) -> list[tuple[str, str, Any]]:
    """Each filter is a (column, op, value) term with a known op; all of them must hold (a
    list of lists, pyarrow's OR form, is not a term; a list holding one list of terms,
    pyarrow's form of one conjunction, is those terms). Returns the terms with their op as
    pyarrow reads it (`IN`, ` > `: `in`, `>`); one term alone, not in a list, is that term.
    A time without a zone (a naive datetime or pandas.Timestamp, a numpy.datetime64) is UTC,
    as in query params (_as_moment); timezone: the read's days' zone, which makes such a time
    ambiguous when it is not UTC."""
    if isinstance(filters, tuple) and len(filters) == 3 and isinstance(filters[0], str):
        filters = [filters]  # one term given alone, not in a list
    if (
        isinstance(filters, list | tuple)
        and len(filters) == 1
        and isinstance(filters[0], list | tuple)
        and filters[0]
        and all(isinstance(term, list | tuple) for term in filters[0])
    ):
        filters = filters[0]
    terms: list[tuple[str, str, Any]] = []
    for term in filters or ():
        if not (isinstance(term, tuple | list) and len(term) == 3 and isinstance(term[0], str)):
            raise ConfigError(
                f"a filter is a (column, op, value) tuple, and every filter must hold; got "
                f"{term!r} (for an OR, filter the frame: frame[(a) | (b)])"
            )
        if not isinstance(term[1], str) or term[1].strip().lower() not in _COMPARE:
            raise ConfigError(
                f"unknown filter operator {term[1]!r} in {tuple(term)!r} "
                f"(one of {', '.join(_COMPARE)})"
            )
        op = term[1].strip().lower()
        value = term[2]
        if op in ("in", "not in") and (
            isinstance(value, str | bytes) or not isinstance(value, Iterable)
        ):  # a str is a sequence of characters to pyarrow: "AB" would match 'A' or 'B'
            raise ConfigError(
                f"filter {tuple(term)!r}: {op!r} takes a list, tuple or set of values, e.g. "
                f"({term[0]!r}, {op!r}, [{term[2]!r}])"
            )
        if op in ("in", "not in") and not isinstance(value, list | tuple | set | frozenset):
            value = list(value)  # a generator: read once here (it was used up by the check,
            # then Dask could not hash it for the frame's name)
        if value is None:  # pyarrow compares NULL with nothing: every row would be dropped
            raise ConfigError(_matches_no_row(term, "None"))
        if isinstance(value, float | np.floating) and math.isnan(value):  # (no row equals NaN)
            raise ConfigError(_matches_no_row(term, "NaN", "NaN"))
        terms.append((term[0], op, _as_moment(term, value, timezone)))
    return terms


def _matches_no_row(term: Any, what: str, null: str = "NULL") -> str:
    """The line of a filter value no row can equal: None, a NaT, a NaN."""
    return (
        f"filter {tuple(term)!r}: {what} matches no row (no value compares with {null}); for the "
        f"rows without a value, filter the frame: frame[frame[{term[0]!r}].isna()]"
    )


def _as_moment(term: Any, value: Any, timezone: str) -> Any:
    """A filter's value with its times without a zone read as UTC, as a query's params are
    (every session of the catalog is in UTC): a naive datetime or pandas.Timestamp, a
    numpy.datetime64 (a list of them for in / not in). A read whose days are another zone's
    (timezone=) cannot tell which zone such a time means: one ConfigError line."""
    if isinstance(value, list | tuple | set):
        read = [_as_moment(term, v, timezone) for v in value]
        return read if any(a is not b for a, b in zip(read, value, strict=True)) else value
    if isinstance(value, datetime | np.datetime64) and value != value:  # NaT, either kind (in
        # a list too): pandas' was "ValueError: NaTType does not support utcoffset"
        raise ConfigError(_matches_no_row(term, "NaT"))
    if isinstance(value, np.datetime64):
        value = value.astype("datetime64[us]").item()  # a datetime
    if not isinstance(value, datetime) or value.utcoffset() is not None:
        return value
    if not _is_utc(timezone):
        raise ConfigError(
            f"filter {tuple(term)!r}: a time without a zone is UTC, but this read's days are "
            f"{timezone} days; give the time its zone, e.g. tzinfo=ZoneInfo({timezone!r}) "
            "or tzinfo=timezone.utc"
        )
    return value.replace(tzinfo=UTC)


def _is_utc(timezone: str) -> bool:
    """Whether a (checked) zone is UTC under another name (Etc/UTC, GMT, ...): no offset in
    winter or summer."""
    zone = ZoneInfo(timezone)
    return all(zone.utcoffset(datetime(2021, m, 1)) == timedelta(0) for m in (1, 7))


def _check_filter_columns(
    filters: Filters | None, table: pa.Table, constants: set[str], name: str
) -> None:
    """Each filter's column is one of the frame's canonical columns (in either naming), and
    its value compares with that column's type: checked on the empty table, so the mistake
    is one line before anything is read (partition values are compared by _holds)."""
    for term in filters or ():
        column, op, value = term
        if column not in table.column_names:
            raise ConfigError(
                f"unknown column {column!r} in filters for {name} (filters name canonical "
                f"columns, in either naming); valid: {', '.join(table.column_names)}"
            )
        if column in constants:
            continue
        kind = table.schema.field(column).type
        try:
            table.filter(pq.filters_to_expression([(column, op.strip().lower(), value)]))
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as e:  # (10**30)
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(
                f"filter {tuple(term)!r} does not fit {column} ({kind}): {why}"
            ) from None


def _holds(constants: tuple[tuple[str, Any], ...], term: tuple[str, str, Any]) -> bool:
    """Whether a piece's partition values satisfy one filter term."""
    column, op, value = term
    values = dict(constants)
    if column not in values:
        return True  # a column this piece does not have as a constant: read and filtered
    compare = _COMPARE.get(op.strip().lower())
    if compare is None:
        raise ConfigError(f"unknown filter operator {op!r} (one of {', '.join(_COMPARE)})")
    have = values[column]
    if isinstance(have, date) and not isinstance(have, datetime):
        value = _as_filter_date(value)
    if have is None:
        return False
    try:
        return compare(have, value)
    except TypeError:
        raise ConfigError(f"filter {term!r} does not fit the {column} values ({have!r})") from None


def _as_filter_date(value: Any) -> Any:
    """A filter's value for the date column as a date, as every day argument reads one
    (parse_day): text, and a datetime, pandas.Timestamp or numpy.datetime64 as the date it
    says. Compared as it was, a datetime equals no date: `("date", "=", datetime(...))`
    selected nothing and `!=` everything, without a word."""
    if isinstance(value, str | datetime | np.datetime64):
        return parse_day(value, "a date filter")  # type: ignore[arg-type]
    if isinstance(value, list | tuple | set | frozenset):
        return [_as_filter_date(v) for v in value]
    if isinstance(value, date):
        return value
    # 20210401 equals no date: ("date", "==", 20210401) selected nothing, "!=" everything
    raise ConfigError(
        f"a date filter's value is a day ('2021-04-01', a date or a datetime), got {value!r}"
    )


def to_socrata(frame: dd.DataFrame, schema: MessageSchema) -> dd.DataFrame:
    """Rename/derive the data.transportation.gov columns of a canonical frame (after cleaning),
    with the same SQL as the socrata view; the quality step's columns the frame has (an
    experiment's `imputed`) are kept under their names (SocrataPlan.carried)."""
    plan = socrata_plan(schema)

    def convert(df: pd.DataFrame) -> pd.DataFrame:
        sql = plan.select_sql(None, "frame", list(df.columns))
        return _frame_pandas(_apply_sql(pa.Table.from_pandas(df, preserve_index=False), sql))

    return frame.map_partitions(convert, meta=convert(frame._meta))


class RemoteCatalog(Catalog):
    """A published catalog on S3, queried read-only (SQL, views, status, reports).

    Pickles as a Catalog does: its URL, its S3 settings with the endpoint it was read from,
    its cache directory when one was given, its lock timeout (never a connection)."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        lock_timeout: float | None = None,
        notify: Notify | None = None,
        profile: str | None = None,
        no_sign_request: bool | None = None,
        endpoint_url: str | None = None,
        cache_dir: str | Path | None = None,
        storage: str | None = None,
    ) -> None:
        if storage is not None:  # (Catalog(url, storage=...) was a TypeError)
            raise ConfigError(
                f"storage= is where a new local catalog keeps its lake; a published catalog "
                f"({path}) has its own, read-only: got storage={storage!r}"
            )
        location = S3Location.parse(str(path if path is not None else _remote_home()))
        s3_config = download_config(
            profile=profile, no_sign_request=no_sign_request, endpoint_url=endpoint_url
        )
        self._open_remote(
            location,
            s3_config,
            current_endpoint(endpoint_url),
            Path(cache_dir) if cache_dir else None,
            lock_timeout,
            notify,
        )

    def _open_remote(
        self,
        location: S3Location,
        s3_config: DownloadConfig,
        endpoint: str | None,
        cache_dir: Path | None,
        lock_timeout: float | None,
        notify: Notify | None,
    ) -> None:
        """Set this catalog up over a published one; nothing is fetched until the first read.
        endpoint: the S3 endpoint it is read from (None: AWS's), which keys the default cache
        directory."""
        _check_lock_timeout(lock_timeout)
        self.location = location
        self.s3_config = s3_config
        self._endpoint = endpoint
        self._cache_dir = cache_dir
        self._lock_timeout = lock_timeout
        directory = cache_dir if cache_dir is not None else cache_dir_for(location, endpoint)
        self.db: RemoteCatalogDB = RemoteCatalogDB(
            location, s3_config, directory, lock_timeout or 60.0, notify
        )
        self.paths = self.db.paths

    def __getstate__(self) -> dict[str, Any]:
        """What reopens this catalog in another process (pickle): its URL and S3 settings, the
        endpoint it was read from made explicit (a worker's environment may name none; the
        credentials stay the worker's own, from its credential chain), its cache directory
        if one was given (else the unpickling user's own cache), its lock timeout."""
        s3_config = self.s3_config
        if s3_config.endpoint_url is None and self._endpoint is not None:
            s3_config = s3_config.model_copy(update={"endpoint_url": self._endpoint})
        return {
            "url": self.location.url,
            "s3_config": s3_config,
            "endpoint": self._endpoint,
            "cache_dir": self._cache_dir,
            "lock_timeout": self._lock_timeout,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._open_remote(
            S3Location.parse(state["url"]),
            state["s3_config"],
            state["endpoint"],
            state["cache_dir"],
            state["lock_timeout"],
            None,
        )

    def __repr__(self) -> str:
        return f"Catalog({self.location.url!r})"

    @property
    def url(self) -> str:
        return self.location.url

    @property
    def database(self) -> Path:
        """The local (cached) copy of the published catalog database."""
        return self.db.database_file()

    def published(self) -> dict[str, Any]:
        """The publish manifest (publish.json): when, by which cvcatalog, files, views."""
        key = self.location.key(PUBLISH_JSON)
        resp = self.db._call(
            "get",
            key,
            lambda: self.db.client.get_object(Bucket=self.location.bucket, Key=key),
        )
        data: dict[str, Any] = json.loads(resp["Body"].read())
        return data

    def _run_query(
        self,
        sql: str,
        params: Sequence[Any] | dict[str, Any] | None,
        read_only: bool,
        at: lake.AsOf | None,
        consume: Callable[[pa.RecordBatchReader], _T],
        batch_rows: int | None = HEAD_BATCH_ROWS,
    ) -> _T:
        """As Catalog's (query_arrow, query_head, query_batches); a session that reaches for
        a file other than the catalog's own (COPY ... TO, read_csv of a local file) is refused
        (_lock_down)."""
        try:
            return super()._run_query(sql, params, read_only, at, consume, batch_rows)
        except QueryError as e:
            m = re.search(r'Cannot access file "(.*)" - .*disabled by configuration', str(e))
            if m is None:
                raise
            raise QueryError(
                f"cannot access {m.group(1)}: a published catalog's session reads only the "
                f"files under {self.location}/ and writes none (for COPY ... TO: save a "
                "result with --output FILE; Python: the returned table)"
            ) from None

    # -- writes are not possible -----------------------------------------------------------
    def _refuse(self, what: str) -> NoReturn:
        raise read_only_error(self.location, what)

    def ingest(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse("ingest into it")

    def ingest_dataset(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse("ingest into it")

    def clear(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse("clear its cache")

    def evict(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse("evict partitions")

    def compact(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse("compact it")

    def verify(self) -> Any:
        self._refuse("verify local files (it has none; `cvcatalog publish` verifies uploads)")

    def repair(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse("repair it (repair the local catalog it was published from)")

    def shell_sql(self, read_log: Path | None = None) -> str:
        """Not for a published catalog: it said 'no catalog at <its cache directory>'."""
        raise CatalogError(
            f"{self.location} is a published catalog: shell_sql (`cvcatalog shell`) opens a "
            "local one; query this one with Catalog(url).query(...) or `cvcatalog query "
            "--catalog s3://...`"
        )

    def discover(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse("record bucket listings (run discover against a local catalog)")

    def plan(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse("plan an ingest into it")

    def publish(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse("publish it again (publish the local catalog it was built from)")

    def _record_access(self, keys: list[str]) -> None:
        pass  # nothing here is ever evicted: the files are the publisher's

    def _watches_reads(self, at: lake.AsOf | None) -> bool:
        return False  # (as _record_access: no clock to advance)

    def _ingest_hint(
        self, source: str, message_type: str, lo: date | str, hi: date | str, tz: str
    ) -> str:
        """A published catalog is read-only: the days go into the catalog it was published
        from, which is published again."""
        zone = "" if tz == "UTC" else f" --timezone {tz}"
        return (
            f"A published catalog is read-only: `cvcatalog ingest --source {source} --type "
            f"{message_type} --start {lo} --end {hi}{zone}` into the catalog {self.location} was "
            "published from fetches what is missing, then `cvcatalog publish` it again"
        )

    def _lake_reader(self) -> tuple[Callable[[str], str], S3Access | None]:
        """to_dask reads the published files under the catalog's URL through s3fs, with the
        profile, endpoint and --no-sign-request this catalog was opened with."""
        opts = s3fs_options(
            self.s3_config.profile,
            self.s3_config.endpoint_url,
            RetryPolicy.from_config(self.s3_config).attempts,
        )
        if self.s3_config.no_sign_request:
            opts["anon"] = True
        base = self.location.url
        return (lambda rel: f"{base.rstrip('/')}/{safe_rel(rel)}"), S3Access.of(opts)
