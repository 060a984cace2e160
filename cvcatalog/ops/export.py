"""Export a slice of the catalog to one file: the job the official S3-Select exporter did.

One streaming read of the lake (a DuckDB query over the lake table, cut to the local-time
window, the spatial filter and the user's `where`), written batch by batch through pyarrow
(Parquet, GeoParquet, CSV) or as DuckDB-rendered JSON lines (NDJSON): memory stays flat
whatever the size of the result. The file is written under a temporary name beside the output
and renamed over it only when complete, so a failure never leaves a partial file and an
existing output is replaced only at the end.

The query runs on a private DuckDB instance where the catalog is attached read-only and whose
file-system access is then cut to the lake's own data directory (`enable_external_access`
off, configuration locked): a `where` predicate can read the catalog, nothing else.

Messages name an argument as the caller spells it (`names`, config.spelled): the Python
parameter by default (`where`, `format`, ...), the flag when the CLI passes its own words.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from cvcatalog import spatial
from cvcatalog.config import (
    check_day_order,
    check_suffix,
    parse_day,
    spelled,
    timezone_arg,
    type_of,
)
from cvcatalog.datasets import DATASETS, source_filter
from cvcatalog.exceptions import CatalogError, ConfigError, QueryError
from cvcatalog.io import lake
from cvcatalog.io.layout import written
from cvcatalog.io.s3 import as_s3_error
from cvcatalog.schemas import SCHEMAS, MessageSchema
from cvcatalog.sources.bucket import BINNED_SOURCES, partitions_for, utc_window
from cvcatalog.sqlutil import quote_ident
from cvcatalog.state import tables
from cvcatalog.state.db import CatalogDB

Format = Literal["parquet", "geoparquet", "csv", "ndjson"]
FORMATS: tuple[str, ...] = ("parquet", "geoparquet", "csv", "ndjson")
#: the format an output's suffix names, when none is given (the CLI's and the API's one table)
SUFFIX_FORMATS: dict[str, str] = {
    ".parquet": "parquet",
    ".geoparquet": "geoparquet",
    ".csv": "csv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "ndjson",
}
#: formats that write another's kind of file: a GeoParquet file is a Parquet file
SAME_KIND: dict[str, str] = {"geoparquet": "parquet"}
#: what an output whose suffix names no format is written as, when no format is given
DEFAULT_FORMAT = "parquet"
Naming = Literal["canonical", "socrata"]
#: rows per record batch read from DuckDB: what is in memory at once (BSMs with their part II
#: JSON are ~2.5 KB a row in Arrow)
BATCH_ROWS = 16_384
#: rows per Parquet row group written (batches are gathered up to it)
ROW_GROUP_ROWS = 65_536
#: the GeoParquet version the `geo` metadata follows
GEOPARQUET_VERSION = "1.1.0"
GEOMETRY = "geometry"


@dataclass
class ExportResult:
    """What an export wrote: the summary the CLI prints (and emits with --json)."""

    path: Path
    format: str
    rows: int
    bytes: int
    seconds: float
    columns: list[str]
    source: str
    message_type: str
    filters: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.rows == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "rows": self.rows,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "source": self.source,
            "message_type": self.message_type,
            "columns": len(self.columns),
            "filters": "; ".join(self.filters),
            "empty": self.empty,
        }


#: called after each batch written: (rows so far, bytes so far)
ExportProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class _Target:
    """The lake table an export reads, and what its columns mean."""

    table: str
    source: str
    message_type: str
    time_column: str | None
    schema: MessageSchema | None  # None: a dataset (NGSIM)


def _target(source: str, message_type: str | None) -> _Target:
    source_filter(source, message_type, required=True)  # an unknown source or type: one line
    ds = DATASETS.get(source.strip().lower())
    if ds is not None:
        time_column = getattr(ds, "time_column", None) or (
            "timestamp" if "timestamp" in ds.arrow_schema.names else None
        )
        return _Target(ds.view_name, ds.name, ds.message_type, time_column, None)
    src = source.strip().lower()
    message_type = type_of(src, message_type)  # (a CV source: source_filter knows it)
    key = (src, message_type.strip().upper())
    schema = SCHEMAS.get(key)
    if schema is None:
        raise ConfigError(f"unknown source and type {source}/{message_type}")
    return _Target(schema.view_name, key[0], key[1], schema.time_column, schema)


def _as_date(value: date | str | None, what: str) -> date | None:
    return None if value is None else parse_day(value, what)


def _range_sql(
    t: _Target, start: date | None, end: date | None, timezone: str
) -> tuple[list[str], list[Any], list[str]]:
    """WHERE terms (and parameters) cutting the table to the local days start..end: the
    partitions that hold them (so whole files are skipped), then the exact UTC window on the
    time column. Returns (terms, params, descriptions)."""
    if start is None and end is None:
        return [], [], []
    s, e = start or end, end or start
    assert s is not None and e is not None
    check_day_order(s, e)
    lo, hi = utc_window(s, e, timezone)
    terms: list[str] = []
    params: list[Any] = []
    if t.schema is None:  # a dataset: its date partitions inside the window
        terms.append("date BETWEEN ? AND ?")
        params += [lo.date(), (hi - timedelta(microseconds=1)).date()]
    elif t.source in BINNED_SOURCES:  # only binned by month: whole months
        months = sorted(
            {k.day.replace(day=1) for k in partitions_for(t.source, t.message_type, s, e, timezone)}
        )
        terms.append("make_date(year, month, 1) BETWEEN ? AND ?")
        params += [months[0], months[-1]]
    else:  # the folder days the local days touch
        days = sorted(k.day for k in partitions_for(t.source, t.message_type, s, e, timezone))
        terms.append("date BETWEEN ? AND ?")
        params += [days[0], days[-1]]
    if t.time_column is not None:
        col = quote_ident(t.time_column)
        terms.append(f"{col} >= ? AND {col} < ?")
        params += [lo, hi]
    return terms, params, [f"{s}..{e} ({timezone})"]


def _socrata_position(schema: MessageSchema) -> tuple[str, str] | None:
    """The socrata names of the canonical latitude and longitude columns, if it has them."""
    body = schema.socrata_select_sql("frame")
    names = []
    for col in ("latitude", "longitude"):
        m = re.search(rf"\b\w+\.{col}\s+AS\s+\"?(\w+)\"?", body)
        if m is None:
            return None
        names.append(m.group(1))
    return names[0], names[1]


def check_where(where: str, name: str = "where") -> str:
    """The user's predicate as ONE SQL expression (re-serialised by DuckDB's parser), or one
    clear line naming the argument as its caller spells it (name): it can never close the
    WHERE clause and add statements or clauses."""
    if not isinstance(where, str):  # (5 was 'int' has no attribute 'strip', or a TypeError)
        raise ConfigError(f"{name} is one SQL predicate (text), got {where!r}")
    try:
        return str(duckdb.SQLExpression(where))
    except duckdb.Error as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise QueryError(f"{name} is not one SQL predicate: {msg}") from None


@contextlib.contextmanager
def _sandboxed(db: CatalogDB, at: lake.AsOf | None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A private instance with the catalog attached read-only, DuckDB's spatial extension and
    cvcatalog's spatial macros, and no file access beyond the lake's data directory."""
    con = db.connect(scratch=True, at=at)
    try:
        tables.spatial_session(con)  # (in UTC, as every instance: duckdb_ext.open_instance)
        opened = con.execute("SELECT current_setting('enable_external_access')").fetchone()
        if opened and opened[0]:  # (a published catalog's session comes confined already)
            con.execute("SET allowed_directories = ?", [[db.lake_data]])
            con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        yield con
    finally:
        con.close()


def _short(e: duckdb.Error) -> str:
    known = as_s3_error(e)  # a lake on S3 that httpfs could not reach, or that said no
    if known is not None:
        return str(known)
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if "file system operations are disabled" in text:
        return f"{text} (an export reads the catalog only)"
    return lake.damaged_line(text) or text  # (it reads only the lake: any file is its)


def _geo_metadata(bbox: list[float] | None) -> dict[str, Any]:
    """GeoParquet 1.1 file metadata of the POINT column: WKB, WGS84 (EPSG:4326 as PROJJSON;
    GeoParquet always stores x = longitude, y = latitude, whatever the CRS's axis order)."""
    from pyproj import CRS  # ~0.1 s to import: paid by GeoParquet exports only

    column: dict[str, Any] = {
        "encoding": "WKB",
        "geometry_types": ["Point"],
        "crs": CRS.from_epsg(4326).to_json_dict(),
    }
    if bbox is not None:
        column["bbox"] = bbox
    return {
        "version": GEOPARQUET_VERSION,
        "primary_column": GEOMETRY,
        "columns": {GEOMETRY: column},
    }


class _Bounds:
    """The running [xmin, ymin, xmax, ymax] of the points written (GeoParquet's bbox)."""

    def __init__(self) -> None:
        self.box: list[float] | None = None

    def add(self, lon: pa.Array, lat: pa.Array) -> None:
        import pyarrow.compute as pc

        ok = pc.and_(pc.is_valid(lon), pc.is_valid(lat))
        lon, lat = pc.filter(lon, ok), pc.filter(lat, ok)
        if len(lon) == 0:
            return
        xs, ys = pc.min_max(lon), pc.min_max(lat)
        part = [xs["min"].as_py(), ys["min"].as_py(), xs["max"].as_py(), ys["max"].as_py()]
        if self.box is None:
            self.box = part
        else:
            b = self.box
            self.box = [
                min(b[0], part[0]),
                min(b[1], part[1]),
                max(b[2], part[2]),
                max(b[3], part[3]),
            ]


def _text_column(name: str, typ: Any, fmt: str) -> str:
    """A column as a text format (CSV, NDJSON) writes it: a moment as ISO 8601 in UTC, as
    `query` prints it in every format (2021-04-01T10:22:12.064000+00:00; no fraction when it
    is zero); CSV's nested values (lists, structs, maps) as JSON text. The file said
    `2021-04-01 10:22:12.064000Z` (CSV) and `"2021-04-01 10:22:12.064+00"` (NDJSON)."""
    q = quote_ident(name)
    text = str(typ).upper()
    if text in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS"):
        zone = "+00:00" if "ZONE" in text else ""  # (sessions are UTC: open_instance)
        whole, part = f"%Y-%m-%dT%H:%M:%S{zone}", f"%Y-%m-%dT%H:%M:%S.%f{zone}"
        return (
            f"CASE WHEN microsecond({q}) % 1000000 = 0 THEN strftime({q}, '{whole}') "
            f"ELSE strftime({q}, '{part}') END AS {q}"
        )
    if fmt == "csv" and (text.endswith("]") or text.startswith(("STRUCT", "MAP", "UNION"))):
        return f"to_json({q})::VARCHAR AS {q}"
    return q


def export_format(
    format: str | None, output: str | Path, names: Mapping[str, str] | None = None
) -> str | None:
    """The format an export to output writes, decided before anything is read, by one rule
    for the API and the CLI: `format` if given (checked, and refused in one line when the
    suffix names another kind of file: CSV written into a.parquet is a file its name lies
    about), else the one the suffix names (SUFFIX_FORMATS), else None: the caller's default
    (the API's DEFAULT_FORMAT; the CLI asks for --format). names: as export's."""
    out = Path(output)
    if format is None:
        return SUFFIX_FORMATS.get(out.suffix.lower())
    fmt = _format_arg(format, names)
    check_suffix(fmt, out, SUFFIX_FORMATS, SAME_KIND, names)
    return fmt


def _format_arg(format: Any, names: Mapping[str, str] | None) -> str:
    """A given format, normalised, or one line listing the formats."""
    fmt = format.strip().lower() if isinstance(format, str) else ""
    if fmt not in FORMATS:
        word = spelled(names, "format")
        raise ConfigError(f"{word} must be one of {', '.join(FORMATS)}, got {format!r}")
    return fmt


def export(
    db: CatalogDB,
    source: str,
    message_type: str | None = None,
    start: date | str | None = None,
    end: date | str | None = None,
    *,
    output: str | Path,
    format: str | None = None,
    timezone: str = "UTC",
    area: spatial.SpatialFilter | None = None,
    where: str | None = None,
    columns: Sequence[str] | None = None,
    naming: str = "canonical",
    at: lake.AsOf | None = None,
    progress: ExportProgress | None = None,
    batch_rows: int = BATCH_ROWS,
    names: Mapping[str, str] | None = None,
) -> ExportResult:
    """Write the rows of (source, type) in the local days start..end (end defaults to start;
    neither: everything), inside `area`, matching `where`, to `output` as one file.

    `where` and `columns` use the names of `naming` (canonical, or the data.transportation.gov
    names of the `<table>_socrata` views); the date range and `area` always apply to the
    canonical time and position columns. Without `format` the suffix of `output` decides
    (.csv: CSV, ...; one it does not know: parquet); a `format` the suffix contradicts is
    refused (export_format). `format='geoparquet'` adds a POINT `geometry` column (WKB,
    EPSG:4326) built from longitude/latitude. A bad argument is one line naming it as `names`
    spells it (config.spelled; the CLI: {"where": "--where", ...}), by default as this
    function's parameter.
    """
    word = functools.partial(spelled, names)
    if progress is not None and not callable(progress):
        raise ConfigError(
            f"{word('progress')} is a function of (rows, bytes written), got {progress!r}"
        )
    t0 = time.monotonic()
    if format is not None:  # a bad format is the first line; the output's suffix: below
        _format_arg(format, names)
    if naming not in ("canonical", "socrata"):
        raise ConfigError(f"{word('naming')} must be canonical or socrata, got {naming!r}")
    t = _target(source, message_type)
    if naming == "socrata" and t.schema is None:
        raise ConfigError(f"{t.source} has canonical column names only, no socrata names")
    s, e = _as_date(start, word("start")), _as_date(end, word("end"))
    if s is None and e is not None:
        raise ConfigError(f"give {word('start')} with {word('end')}")
    timezone = timezone_arg(timezone)
    terms, params, described = _range_sql(t, s, e if e is not None else s, timezone)
    if isinstance(where, str) and not where.strip():
        where = None
    pred = check_where(where, word("where")) if where is not None else None
    if not isinstance(output, str | Path) or not str(output).strip():
        raise ConfigError(f"{word('output')} is the file to write (a path), got {output!r}")
    out = Path(output).expanduser()
    if out.is_dir():
        raise ConfigError(f"{word('output')} {out} is a directory; give a file name")
    root = db.paths.root.resolve()
    if out.resolve().is_relative_to(root):
        raise ConfigError(f"{word('output')} may not be inside the catalog directory {root}")
    fmt = export_format(format, out, names) or DEFAULT_FORMAT
    if columns is not None and not [c for c in columns if c.strip()]:  # ([] wrote every column)
        raise ConfigError(f"{word('columns')} names no column; leave it out to export every column")

    with _sandboxed(db, at) as con:
        try:
            table_info = con.execute(f"DESCRIBE {quote_ident(t.table)}").fetchall()
        except duckdb.Error as err:  # e.g. at a snapshot before the table was made
            raise QueryError(lake.not_there_then(con, err, at) or _short(err)) from None
        if at is not None:  # the summary says which version it wrote (as_of: the one then)
            described.insert(0, f"snapshot {lake.current_snapshot(con)}")
        table_cols = [r[0] for r in table_info]
        has_position = {spatial.LAT, spatial.LON} <= set(table_cols)
        if area is not None:
            spatial.require_positions(table_cols, t.table)
            sql, p = spatial.predicate_sql(area)
            terms.append(sql)
            params += p
            described.append(spatial.describe(area))
        inner = f"SELECT * FROM {quote_ident(t.table)}"
        if terms:
            inner += " WHERE " + " AND ".join(f"({x})" for x in terms)
        position = (spatial.LAT, spatial.LON) if has_position else None
        if naming == "socrata":
            assert t.schema is not None
            base = t.schema.socrata_select_sql(f"({inner})")
            position = _socrata_position(t.schema) if has_position else None
        else:
            base = inner
        if fmt == "geoparquet" and position is None:
            raise ConfigError(
                f"{t.table} has no latitude/longitude columns: GeoParquet needs positions "
                "(export it as parquet)"
            )
        try:
            available = con.execute(f"DESCRIBE {base}", params).fetchall()
        except duckdb.Error as err:
            raise QueryError(_short(err)) from None
        types = {r[0]: r[1] for r in available}
        column_names = [r[0] for r in available]
        view = f"{t.table}{'_socrata' if naming == 'socrata' else ''}"  # the caller's names
        if pred is not None:  # bound alone first: its mistake is named as the caller's
            try:
                con.execute(f"SELECT 1 FROM ({base}) AS t WHERE {pred} LIMIT 0", params)
            except duckdb.Error as err:
                raise QueryError(f"{word('where')} does not fit {view}: {_short(err)}") from None
        if columns:
            wanted = [c.strip() for c in columns if c.strip()]
            unknown = [c for c in wanted if c not in types]
            if unknown:
                raise QueryError(
                    f"unknown column(s) {', '.join(unknown)} in {view} ({naming} names; "
                    f"`describe {view}` lists them)"
                )
            column_names = list(dict.fromkeys(wanted))
        if fmt == "geoparquet" and GEOMETRY in column_names:
            raise ConfigError(
                f"the table has a column named {GEOMETRY!r}, which GeoParquet adds; leave it "
                f"out of {word('columns')}"
            )
        if fmt in ("csv", "ndjson"):
            rel = con.sql(f"SELECT * FROM ({base}) LIMIT 0", params=params)
            ctypes = dict(zip(rel.columns, rel.types, strict=True))
            select = [_text_column(n, ctypes[n], fmt) for n in column_names]
        else:
            select = [quote_ident(n) for n in column_names]
        if fmt == "geoparquet":
            assert position is not None
            lat, lon = (quote_ident(c) for c in position)
            select.append(f"ST_AsWKB(ST_Point({lon}, {lat})) AS {GEOMETRY}")
            # bbox: the positions of the rows written (not exported unless asked for)
            select += [f"{lon} AS __cv_lon", f"{lat} AS __cv_lat"]
        query = f"SELECT {', '.join(select)} FROM ({base}) AS t"
        if pred is not None:
            query += f" WHERE {pred}"
        if fmt == "ndjson":
            query = f"SELECT to_json(x)::VARCHAR || chr(10) AS line FROM ({query}) AS x"
        filters = described + ([f"where {pred}"] if pred else [])
        try:
            rows, nbytes = _write(con, query, params, out, fmt, batch_rows, progress)
        except duckdb.Error as err:
            raise QueryError(_short(err)) from None
    return ExportResult(
        path=out,
        format=fmt,
        rows=rows,
        bytes=nbytes,
        seconds=time.monotonic() - t0,
        columns=column_names + ([GEOMETRY] if fmt == "geoparquet" else []),
        source=t.source,
        message_type=t.message_type,
        filters=filters,
    )


def _write(
    con: duckdb.DuckDBPyConnection,
    query: str,
    params: list[Any],
    out: Path,
    fmt: str,
    batch_rows: int,
    progress: ExportProgress | None,
) -> tuple[int, int]:
    """Stream the query's batches into a temporary file beside `out`, then rename it over
    `out` (created with its parent directories). Returns (rows, bytes)."""
    reader = con.execute(query, params).to_arrow_reader(batch_rows)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CatalogError(f"cannot create {out.parent}: {err.strerror or err}") from None
    rows = 0
    with written(out) as tmp:

        def tell() -> int:
            return tmp.stat().st_size if tmp.exists() else 0

        if fmt in ("parquet", "geoparquet"):
            rows = _write_parquet(reader, tmp, fmt == "geoparquet", progress, tell)
        else:
            with open(tmp, "wb") as sink:
                header = fmt == "csv"
                for batch in result_batches(reader):
                    if fmt == "ndjson":
                        sink.write(_text(batch.column(0)))
                    else:
                        _csv_batches(sink, [batch], reader.schema, header)
                        header = False
                    rows += batch.num_rows
                    if progress is not None:
                        progress(rows, sink.tell())
                if header:  # no batch at all: the header alone
                    _csv_batches(sink, [], reader.schema, True)
        nbytes = tmp.stat().st_size
    return rows, nbytes


def result_batches(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    """The reader's batches; the query failing midway (DuckDB's error reaches Python through
    Arrow as an OSError) is a QueryError, not a write error."""
    it = iter(reader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except (duckdb.Error, OSError, pa.ArrowException) as e:
            text = str(e).strip().splitlines()
            line = text[0] if text else type(e).__name__
            raise QueryError(lake.damaged_line(line) or line) from None
        yield batch


def _csv_batches(sink: Any, batches: list[pa.RecordBatch], schema: pa.Schema, header: bool) -> None:
    """Batches as CSV text appended to sink (with the header: the first, or no batch at all)."""
    table = pa.Table.from_batches(batches, schema=schema)
    buf = pa.BufferOutputStream()
    pa_csv.write_csv(table, buf, pa_csv.WriteOptions(include_header=header))
    sink.write(buf.getvalue().to_pybytes())


def _write_parquet(
    reader: pa.RecordBatchReader,
    path: Path,
    geo: bool,
    progress: ExportProgress | None,
    tell: Callable[[], int],
) -> int:
    """Parquet (zstd) batch by batch; GeoParquet: the helper position columns dropped, the
    `geo` metadata (with the bbox of what was written) added before the footer."""
    schema = reader.schema
    keep = [n for n in schema.names if n not in ("__cv_lon", "__cv_lat")]
    if geo:
        schema = pa.schema([schema.field(n) for n in keep])
    bounds = _Bounds()
    rows = 0
    group: list[pa.RecordBatch] = []

    def flush() -> None:
        if group:
            w.write_table(pa.Table.from_batches(group, schema=schema), ROW_GROUP_ROWS)
            group.clear()

    with pq.ParquetWriter(str(path), schema, compression="zstd") as w:
        for batch in result_batches(reader):
            if geo:
                bounds.add(batch.column("__cv_lon"), batch.column("__cv_lat"))
                batch = pa.RecordBatch.from_arrays([batch.column(n) for n in keep], schema=schema)
            if batch.num_rows:
                group.append(batch)
            rows += batch.num_rows
            if sum(b.num_rows for b in group) >= ROW_GROUP_ROWS:
                flush()
                if progress is not None:
                    progress(rows, tell())
        flush()
        if geo:
            w.add_key_value_metadata({"geo": json.dumps(_geo_metadata(bounds.box))})
    if progress is not None:
        progress(rows, tell())
    return rows


def _text(lines: pa.Array) -> memoryview:
    """The bytes of a string column's values, back to back (each ends with its newline),
    straight from the Arrow buffer: no Python string per row."""
    arr = lines.cast(pa.large_string())
    if len(arr) == 0:
        return memoryview(b"")
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)
    lo, hi = int(offsets[arr.offset]), int(offsets[arr.offset + len(arr)])
    data = arr.buffers()[2]
    return memoryview(data)[lo:hi] if data is not None else memoryview(b"")


__all__ = ["FORMATS", "ExportResult", "check_where", "export"]
