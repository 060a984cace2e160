"""One output helper for every listing command: --format table|json|csv, optionally to a file.

In the json and csv formats stdout carries the data and nothing else, so a parser can read it
whole: a line for people that a command prints beside its rows (a summary, a count) goes to
stdout in the table format only and to stderr in the others (:func:`say`); so does the line of
a listing that lists nothing (`no runs of source thea`: :func:`emit`'s `empty`). A listing's JSON is
a list of rows, even of one; a command whose answer is one result, never a listing (`export
--json`'s summary), prints it as one JSON object (:func:`emit_object`).

Values print alike in every command: a moment (TIMESTAMPTZ) as ISO 8601 in UTC; a duration
(INTERVAL) as DuckDB writes it in a table or CSV cell ('01:30:00', '1 year 2 months 3 days
04:05:06.5') and as an ISO 8601 duration in JSON ('PT1H30M', 'P1Y2M3DT4H5M6.5S').
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.cells import cell_len, get_character_cell_size
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cvcatalog.config import check_suffix
from cvcatalog.exceptions import ConfigError
from cvcatalog.io.layout import write_atomic, written


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


#: the types whose values print as they are (most of a result's cells: checked first, a
#: query's rows to CSV spent half their time in this function's other checks)
_AS_IS = frozenset({str, int, bool, type(None)})


def _plain(v: Any, text: bool = False) -> Any:
    """A value as JSON has it (text: as a table's or a CSV's cell shows it, where that
    differs: a duration)."""
    kind = type(v)
    if kind in _AS_IS:
        return v
    if kind is float:
        return _json_float(v)
    duration = _interval(v)
    if duration is not None:
        return _duration_text(*duration) if text else _duration_iso(*duration)
    if isinstance(v, datetime) and v.tzinfo is not None:
        # a moment in UTC, marked (+00:00), whatever zone the machine's DuckDB gave it in:
        # every command prints its times alike (runs showed local offsets, snapshots UTC)
        return v.astimezone(UTC).isoformat()
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, Decimal):  # a sum() of integers, a HUGEINT, a DECIMAL(38, 9)
        return _number(v)
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, dict):
        return {k: _plain(x, text) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x, text) for x in v]
    if hasattr(v, "item") and callable(v.item):  # numpy scalars
        try:
            return v.item()
        except (ValueError, TypeError):
            return str(v)
    if v != v:  # NaN
        return None
    return _json_float(v) if isinstance(v, float) else v


def _json_float(v: float) -> float | str | None:
    """A float as JSON has it: NaN none, an infinity spelled out (JSON has none)."""
    if v != v:
        return None
    if v in (math.inf, -math.inf):
        return "Infinity" if v > 0 else "-Infinity"
    return v


#: nanoseconds per hour, minute and second
_HOUR, _MINUTE, _SECOND = 3_600 * 10**9, 60 * 10**9, 10**9


def _interval(v: Any) -> tuple[int, int, int] | None:
    """(months, days, nanoseconds) of a duration: DuckDB's INTERVAL through Arrow
    (pyarrow's MonthDayNano, a tuple that printed as a list [0, 0, 5400000000000]) or a
    timedelta (DuckDB's Python rows, pandas'); None for any other value."""
    if isinstance(v, pa.MonthDayNano):
        return int(v.months), int(v.days), int(v.nanoseconds)
    if isinstance(v, timedelta):  # (pandas' Timedelta adds its nanoseconds, 0 to 999)
        total = v // timedelta(microseconds=1) * 1000 + int(getattr(v, "nanoseconds", 0))
        days, rest = divmod(abs(total), 24 * _HOUR)
        sign = -1 if total < 0 else 1
        return 0, sign * days, sign * rest
    return None


def _split(months: int, nanos: int) -> tuple[int, int, int, int, int, int]:
    """Years and months (each with the months' sign), then hours, minutes, seconds and
    nanoseconds of the clock part (of its absolute value)."""
    sign = -1 if months < 0 else 1
    years, months = divmod(abs(months), 12)
    hours, rest = divmod(abs(nanos), _HOUR)
    minutes, rest = divmod(rest, _MINUTE)
    seconds, fraction = divmod(rest, _SECOND)
    return sign * years, sign * months, hours, minutes, seconds, fraction


def _fraction(nanos: int) -> str:
    """'.5' for 500,000,000 ns; nothing for 0."""
    return ("." + f"{nanos:09d}".rstrip("0")) if nanos else ""


def _duration_text(months: int, days: int, nanos: int) -> str:
    """A duration as DuckDB writes an INTERVAL (its CLI, COPY TO csv): '1 year 2 months
    3 days 04:05:06.5', '01:30:00', '-1 day', '00:00:00'."""
    years, months, hours, minutes, seconds, fraction = _split(months, nanos)
    parts = [
        f"{n} {unit}" + ("" if abs(n) == 1 else "s")
        for n, unit in ((years, "year"), (months, "month"), (days, "day"))
        if n
    ]
    if nanos or not parts:
        sign = "-" if nanos < 0 else ""
        parts.append(f"{sign}{hours:02d}:{minutes:02d}:{seconds:02d}{_fraction(fraction)}")
    return " ".join(parts)


def _duration_iso(months: int, days: int, nanos: int) -> str:
    """A duration as ISO 8601 (PostgreSQL's iso_8601 style: each part carries its sign):
    'P1Y2M3DT4H5M6.5S', 'PT1H30M', 'P-1D', 'PT0S'. Months and days stay what they are (a
    month is no fixed number of seconds), so JSON keeps every INTERVAL exactly."""
    years, months, hours, minutes, seconds, fraction = _split(months, nanos)
    day_part = "".join(f"{n}{u}" for n, u in ((years, "Y"), (months, "M"), (days, "D")) if n)
    sign = "-" if nanos < 0 else ""
    clock = [f"{sign}{n}{u}" for n, u in ((hours, "H"), (minutes, "M")) if n]
    if seconds or fraction:
        clock.append(f"{sign}{seconds}{_fraction(fraction)}S")
    if not day_part and not clock:
        return "PT0S"
    return "P" + day_part + ("T" + "".join(clock) if clock else "")


def _number(v: Decimal) -> int | float | str:
    """A decimal as the number it is: whole ones as int (a float turned 45 into 45.0 and
    12345678901234567890 into 1.2345678901234567e+19), others as float when that is exact,
    else as their digits (a DECIMAL(38, 9) loses none)."""
    if not v.is_finite():
        return str(v)
    if v == v.to_integral_value():
        return int(v)
    f = float(v)
    return f if Decimal(repr(f)) == v else str(v)


def render(
    rows: Sequence[dict[str, Any]],
    fmt: Format,
    columns: Sequence[str] | None = None,
    title: str | None = None,
    width: int | None = None,
) -> str:
    """The rows as text. The table format fits `width` columns (folding cells), or with None
    takes its natural width: every row on one line, for a file or a pipe, where a terminal's
    width means nothing (80 columns squeezed a 60-column table to a letter per line)."""
    cols = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    if fmt is Format.json:
        return (
            json.dumps([{c: _plain(r.get(c)) for c in cols} for r in rows], indent=2, default=str)
            + "\n"
        )
    if fmt is Format.csv:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow([_csv_value(r.get(c)) for c in cols])
        return buf.getvalue()
    cells = [[_cell(_plain(r.get(c), text=True)) for c in cols] for r in rows]
    return _table_text(cols, cells, title, width)


def _table_text(
    cols: Sequence[str], cells: Sequence[Sequence[str]], title: str | None, width: int | None
) -> str:
    """render's table of these cells: laid out directly at its natural width (_box_table),
    else by rich."""
    if width is None and not title:
        laid = _box_table(cols, cells)
        if laid is not None:
            return laid
    # cells as Text: shown as they are ("[red]x" was markup to rich, ":smile:" an emoji code)
    table = Table(title=title, show_lines=False)
    for c in cols:
        table.add_column(Text(c), overflow="fold")
    for row in cells:
        table.add_row(*map(Text, row))
    if width is None:
        # a title is folded to its table's width: a table as wide as its title keeps it whole
        table.min_width = len(title or "") or None
        width = Console(file=io.StringIO(), width=_UNBOUNDED).measure(table).maximum
    console = Console(file=io.StringIO(), width=width, record=True)
    console.print(table)
    return console.export_text()


def unique_names(names: Sequence[str]) -> list[str]:
    """Column names made unique as DuckDB makes them when it materialises a result (a table,
    a DataFrame): the second `a` is `a_1`, a third `a_2`, skipping names taken, compared
    case-insensitively as its identifiers are. A row dict kept one `a` of `select 1 as a,
    2 as a` (the second's value under the first's name): JSON lost a column."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        low = name.lower()
        if low not in seen:
            seen[low] = 1
            out.append(name)
            continue
        new = f"{name}_{seen[low]}"
        while new.lower() in seen:
            new = f"{name}_{seen[low]}"
            seen[low] += 1
        seen[new.lower()] = 1
        out.append(new)
    return out


#: a line break, a tab, any other control character: rich lays a cell holding one out otherwise
#: than as one line of its text
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _as_is(text: str) -> bool:
    """Whether rich shows text as it is on one line, a character in one cell or two (a wide
    one): no control character, none of no width (a combining mark alone was dropped)."""
    if text.isascii():
        return text.isprintable()
    return _CONTROL.search(text) is None and all(map(get_character_cell_size, text))


def _box_table(cols: Sequence[str], cells: Sequence[Sequence[str]]) -> str | None:
    """The table rich prints at its natural width (a heavy head, a space each side of a cell),
    laid out directly: rich took ~70 us a cell (a BSM day's 62 columns written to a .txt file,
    minutes and GBs). None where a cell is not one line of plain text: rich lays it out."""
    if not cols or not all(map(_as_is, cols)) or not all(_as_is(c) for row in cells for c in row):
        return None
    head = [cell_len(c) for c in cols]
    sizes = [[cell_len(c) for c in row] for row in cells]  # (each measured once)
    widths = [max(column) for column in zip(head, *sizes, strict=True)]
    return "".join([
        *_box_head(cols, head, widths), *map(_box_row, cells, sizes, [widths] * len(cells)),
        _box_foot(widths),
    ])  # fmt: skip


def _box_rule(widths: Sequence[int], left: str, mid: str, right: str, fill: str) -> str:
    return left + mid.join(fill * (w + 2) for w in widths) + right + "\n"


def _box_row(
    row: Sequence[str], sizes: Sequence[int], widths: Sequence[int], bar: str = "│"
) -> str:
    """A row of _box_table: each cell padded to its column's width (sizes: the cells' widths)."""
    return bar + bar.join(
        f" {c}{' ' * (w - n)} " for c, n, w in zip(row, sizes, widths, strict=True)
    ) + bar + "\n"


def _box_head(cols: Sequence[str], sizes: Sequence[int], widths: Sequence[int]) -> list[str]:
    return [
        _box_rule(widths, "┏", "┳", "┓", "━"), _box_row(cols, sizes, widths, "┃"),
        _box_rule(widths, "┡", "╇", "┩", "━"),
    ]  # fmt: skip


def _box_foot(widths: Sequence[int]) -> str:
    return _box_rule(widths, "└", "┴", "┘", "─")


def arrow_rows(table: pa.Table) -> tuple[list[dict[str, Any]], list[str]]:
    """A result's rows and its column names, made unique (:func:`unique_names`) so that no
    column is lost to another of the same name. A time Python cannot hold (DuckDB's go to
    year 294247: a record dated 10000-01-01 is kept by ingest) is its text instead: it was
    `unexpected OverflowError: date value out of range` for the whole result."""
    names = unique_names(table.column_names)
    if names != table.column_names:
        table = table.rename_columns(names)
    try:
        return table.to_pylist(), names
    except OverflowError:
        columns = [_python_column(col) for col in table.columns]
        return pa.table(columns, names=names).to_pylist(), names


def _python_values(col: pa.Array | pa.ChunkedArray) -> list[Any]:
    """A column's values in Python, its times as text where Python cannot hold them (as
    arrow_rows gives them)."""
    try:
        return col.to_pylist()
    except OverflowError:
        return pc.cast(col, _times_as_text(col.type)).to_pylist()


def _python_column(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """The column as is if Python can hold its values, else with its times as text."""
    try:
        col.to_pylist()
    except OverflowError:
        return pc.cast(col, _times_as_text(col.type))
    return col


def _times_as_text(typ: pa.DataType) -> pa.DataType:
    """typ with every timestamp and date in it (in lists and structs too) as a string."""
    if pa.types.is_timestamp(typ) or pa.types.is_date(typ):
        return pa.string()
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        field = pa.field(typ.value_field.name, _times_as_text(typ.value_type))
        return pa.list_(field) if pa.types.is_list(typ) else pa.large_list(field)
    if pa.types.is_struct(typ):
        return pa.struct([pa.field(f.name, _times_as_text(f.type)) for f in typ])
    return typ


def _csv_cell(v: Any) -> Any:
    """A CSV cell: nested values as JSON, booleans as JSON's (not Python's True), nothing for
    a null (NaN too)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v) if isinstance(v, dict | list) else v


def _csv_value(v: Any) -> Any:
    """A CSV cell of a Python value (_csv_cell of _plain's text), text and whole numbers
    passed straight through."""
    kind = type(v)
    if kind is str or kind is int:
        return v
    if kind is bool:
        return "true" if v else "false"
    if kind is float:
        return _csv_cell(_json_float(v))
    return "" if v is None else _csv_cell(_plain(v, text=True))


def _finite_floats(col: pa.Array | pa.ChunkedArray) -> bool:
    """Whether a column is of floats with no NaN nor infinity (nulls aside: is_finite of a null
    is null, which any() skips): Python's repr of each is then its cell, CSV's and JSON's."""
    return pa.types.is_floating(col.type) and not pc.any(pc.invert(pc.is_finite(col))).as_py()


def _csv_column(col: pa.Array | pa.ChunkedArray) -> list[Any]:
    """A column's CSV cells (_csv_value's), a column at a time: text and whole numbers as
    they are, booleans spelled in Arrow, floats with no NaN nor infinity as Python writes
    them; a null is None, which the csv module writes as the empty cell _csv_value gives.
    Times and dates are Arrow's text where it spells them as Python does (_iso_times). Only
    other columns (durations, nested values, ...) go value by value: a BSM day's CSV spent
    most of its time calling _csv_value on each cell."""
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t):
        return col.to_pylist()
    if pa.types.is_boolean(t):
        return pc.if_else(col, "true", "false").to_pylist()
    if _finite_floats(col):
        return col.to_pylist()
    iso = _iso_times(col)
    if iso is not None:
        return iso.to_pylist()
    return [_csv_value(v) for v in _python_values(col)]


#: a str's JSON text (json.dumps' own encoder for text)
_json_text = json.encoder.encode_basestring_ascii


def _json_column(col: pa.Array | pa.ChunkedArray) -> list[str]:
    """A column's values as JSON text inside a row of render's JSON (json.dumps with
    indent=2, the row's lines indented by two more): text, whole numbers, booleans and finite
    floats a column at a time; other values one by one through _plain, a nested one's lines
    indented to its place. A BSM day's JSON spent its time in a json.dumps of each row."""
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return ["null" if v is None else _json_text(v) for v in col.to_pylist()]
    if pa.types.is_integer(t):
        return pc.fill_null(pc.cast(col, pa.string()), "null").to_pylist()
    if pa.types.is_boolean(t):
        return pc.fill_null(pc.if_else(col, "true", "false"), "null").to_pylist()
    if _finite_floats(col):
        return ["null" if v is None else float.__repr__(v) for v in col.to_pylist()]
    iso = _iso_times(col)
    if iso is not None:  # (ASCII digits and signs: quoted as they are)
        return pc.fill_null(pc.binary_join_element_wise('"', iso, '"', ""), "null").to_pylist()
    return [
        json.dumps(_plain(v), indent=2, default=str).replace("\n", "\n    ")
        for v in _python_values(col)
    ]


def _table_column(col: pa.Array | pa.ChunkedArray) -> list[str]:
    """A column's table cells (_cell of _plain as text, the cells render gives), a column at a
    time where its type allows: text as is, whole numbers as Arrow spells them (as Python
    does), booleans and finite floats as Python spells them; other columns (times, nested
    values, ...) value by value."""
    kind = col.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return col.fill_null("").to_pylist()
    if pa.types.is_integer(kind):
        return pc.cast(col, pa.string()).fill_null("").to_pylist()
    if pa.types.is_boolean(kind):
        return pc.if_else(col, "True", "False").fill_null("").to_pylist()
    if _finite_floats(col):  # (Python's str of a float is its repr)
        return ["" if v is None else repr(v) for v in col.to_pylist()]
    iso = _iso_times(col)
    if iso is not None:
        return iso.fill_null("").to_pylist()
    return [_cell(_plain(v, text=True)) for v in _python_values(col)]


def _iso_times(col: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray | None:
    """A column of times or dates as _plain spells them (isoformat, in UTC marked +00:00),
    spelled by Arrow: a timestamp in microseconds (in UTC or of no zone) or a date, every one
    in the years 1-9999 (Python holds no other; both write a year with four digits); None for
    any other column. Through Python's datetime, ~10 us a value: a BSM day's two time
    columns took a third of the time its table took."""
    kind = col.type
    if pa.types.is_date32(kind) or pa.types.is_date64(kind):
        text, zone = pc.strftime(col, "%Y-%m-%d"), None
    elif pa.types.is_timestamp(kind) and kind.unit == "us" and kind.tz in (None, "UTC"):
        # %S is seconds.micros: Python leaves out micros of 0
        text = pc.replace_substring_regex(
            pc.strftime(col, "%Y-%m-%dT%H:%M:%S"), r"\.000000$", ""
        )
        zone = "+00:00" if kind.tz else None
    else:
        return None
    lo, hi = pc.min_max(pc.year(col)).values()
    if lo.is_valid and not (lo.as_py() >= 1 and hi.as_py() <= 9999):
        return None
    return text if zone is None else pc.binary_join_element_wise(text, zone, "")


def _cell_len(text: str) -> int:
    """rich's cell_len, without its look-ups for ASCII text (a character a cell)."""
    return len(text) if text.isascii() else cell_len(text)


def _cell(v: Any) -> str:
    """A table cell: nothing for a null (NaN too: it printed "None")."""
    return "" if v is None else str(v)


#: a console width no table reaches: measuring at it gives a table's natural width
_UNBOUNDED = 1_000_000


#: the formats a file's name asks for, when its command was given none but the table
FILE_FORMATS = {".csv": "csv", ".json": "json", ".parquet": "parquet"}
#: the listing commands' options, as config.check_suffix's line names them
_FLAGS = {"format": "--format", "output": "--output"}


def format_for(fmt: str, output: Path | None) -> str:
    """The format to write output in: the one given, or with the table format (the default) the
    one the file's suffix names (`query -o q.csv` wrote a box-drawn table of the first 1,000
    rows into q.csv; `-o q.parquet` a table in a file named .parquet): 'parquet' for
    ResultStream. A format given that the suffix contradicts is one line (config.check_suffix,
    the rule export's --format and Catalog.export share)."""
    if output is None:
        return fmt
    if fmt != Format.table:
        check_suffix(fmt, output, FILE_FORMATS, names=_FLAGS)
        return fmt
    return FILE_FORMATS.get(output.suffix.lower(), fmt)


def terminal_width() -> int | None:
    """The width a table printed on stdout fits (the terminal's, 80 to 250 columns), or None
    when stdout is not a terminal: the table keeps its natural width."""
    if not sys.stdout.isatty():
        return None
    try:
        return max(80, min(os.get_terminal_size(sys.stdout.fileno()).columns, 250))
    except (OSError, ValueError):
        return None


def emit(
    rows: Sequence[dict[str, Any]],
    fmt: Format = Format.table,
    output: Path | None = None,
    columns: Sequence[str] | None = None,
    title: str | None = None,
    empty: str | None = None,
) -> None:
    """Print rows (or write them atomically to output): a table fits the terminal, and keeps
    its natural width in a file or a pipe. A title is the table's; the machine formats have
    none, so there it is a line for people (:func:`say`), not lost. empty: what a listing
    with no rows says (`no runs of source thea`), a line for people after its empty table,
    JSON list or CSV header."""
    text = render(rows, fmt, columns, title, terminal_width() if output is None else None)
    if title and fmt is not Format.table:
        say(title, fmt)
    if output is None:
        print(text, end="")
    else:
        write_atomic(output, text.encode("utf-8"))
    if empty is not None and not rows:
        say(empty, fmt)


def _holds_interval(t: pa.DataType) -> bool:
    """Whether a type is, or holds, an INTERVAL (Parquet has no type for months+days+nanos)."""
    if pa.types.is_interval(t):
        return True
    return any(_holds_interval(t.field(i).type) for i in range(t.num_fields))


class ResultStream:
    """A query's result written as its batches arrive, so memory holds a batch and not the
    result (`query -o day.csv` of a BSM day held 1.5 GB, of JSON 3.1 GB): csv and json (the
    same text :func:`render` gives for the whole result) to stdout or a file, parquet and
    table to a file. A table's widths need every row: its cells are spilled as they come
    (Arrow IPC, beside the file) and laid out from there once all are measured (the table of
    a BSM day held 2.6 GB). A file is written under a temporary name and renamed when whole
    (:func:`written`): a query failing midway leaves no file and the old one as it was.

    Use: `with ResultStream(fmt, output) as out:` then `out.write(batch)` for each batch and
    `out.finish(schema)` once every batch is written."""

    def __init__(self, fmt: str, output: Path | None) -> None:
        if fmt not in ("csv", "json", "parquet", "table") or (
            fmt in ("parquet", "table") and output is None
        ):
            raise ValueError(f"a stream writes csv or json, or parquet or table to a file, not {fmt}")
        self.fmt, self.output = fmt, output
        self.rows = 0
        self._names: list[str] | None = None
        self._stack = contextlib.ExitStack()
        self._text: TextIO | None = None
        self._parquet: pq.ParquetWriter | None = None
        self._tmp: Path | None = None
        self._spill: _CellSpill | None = None

    def __enter__(self) -> ResultStream:
        if self.output is not None:
            self._tmp = self._stack.enter_context(written(self.output))
            if self.fmt == "table":
                self._spill = self._stack.enter_context(_CellSpill(self._tmp))
            if self.fmt != "parquet":
                self._text = self._stack.enter_context(
                    open(self._tmp, "w", encoding="utf-8", newline="")
                )
        elif self.fmt != "parquet":
            self._text = sys.stdout
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> bool | None:
        if self._parquet is not None:  # (finish closed it on success)
            with contextlib.suppress(Exception):
                self._parquet.close()
        return self._stack.__exit__(kind, error, trace)

    def _start(self, schema: pa.Schema) -> None:
        if self._names is not None:
            return
        self._names = unique_names(schema.names)
        if self.fmt == "parquet":
            for f in schema:
                if _holds_interval(f.type):
                    raise ConfigError(_interval_line(f.name))
            assert self._tmp is not None  # its columns named as csv and json name them: a
            # file with two columns of one name is one few readers open
            named = pa.schema([f.with_name(n) for f, n in zip(schema, self._names, strict=True)])
            self._parquet = pq.ParquetWriter(str(self._tmp), named, compression="zstd")
        elif self.fmt == "csv" and (schema.names or self.output is not None):
            self._put(_csv_line(self._names))
        elif self.fmt == "json":
            self._put("[")
        elif self._spill is not None:
            self._spill.start(self._names)

    def _put(self, text: str) -> None:
        assert self._text is not None
        self._text.write(text)

    def write(self, batch: pa.RecordBatch) -> None:
        self._start(batch.schema)
        if self._parquet is not None:
            if batch.num_rows:
                self._parquet.write_batch(batch.rename_columns(self._names or []))
            self.rows += batch.num_rows
            return
        if self._spill is not None:
            self._spill.add([_table_column(col) for col in batch.columns])
            self.rows += batch.num_rows
            return
        if self.fmt == "csv":
            buf = io.StringIO()
            cells = zip(*(_csv_column(col) for col in batch.columns), strict=True)
            csv.writer(buf, lineterminator="\n").writerows(cells)
            self._put(buf.getvalue())
            self.rows += batch.num_rows
            return
        # a row as render's json.dumps(indent=2) lays it out, inside the list: its values' JSON
        # text a column at a time, each after its key
        keys = [f"    {_json_text(name)}: " for name in self._names or []]
        values = zip(*(_json_column(col) for col in batch.columns), strict=True)
        for row in values:
            item = "  {\n" + ",\n".join(map(str.__add__, keys, row)) + "\n  }" if keys else "  {}"
            self._put(("\n" if self.rows == 0 else ",\n") + item)
            self.rows += 1

    def finish(self, schema: pa.Schema) -> None:
        """After the last batch: the header of a result with no rows, JSON's closing bracket,
        Parquet's footer (the file is renamed into place when the `with` ends)."""
        self._start(schema)
        if self.fmt == "json":
            self._put("]\n" if self.rows == 0 else "\n]\n")
        if self._spill is not None:
            self._spill.lay_out(self._put)
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None


#: rows of a table laid out at a time from its spill
_LAID_ROWS = 2048


class _CellSpill:
    """A table's cells kept on disk while the result streams (Arrow IPC of text columns, in a
    file beside `near` removed at the end), with each column's width and whether every cell
    is one line of plain text (_as_is); then laid out as render lays them out: directly
    (_box_table's rows, a batch of them in memory at a time) or, where a cell is not plain,
    by rich, which needs them all."""

    def __init__(self, near: Path) -> None:
        self.path = near.with_name(f".{near.name}.cells")
        self.names: list[str] = []
        self.widths: list[int] = []
        self.plain = True
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._schema: pa.Schema | None = None

    def __enter__(self) -> _CellSpill:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        self.path.unlink(missing_ok=True)

    def start(self, names: list[str]) -> None:
        self.names = names
        self.widths = [cell_len(n) for n in names]
        self.plain = bool(names) and all(map(_as_is, names))
        self._schema = pa.schema([pa.field(f"c{i}", pa.string()) for i in range(len(names))])
        self._writer = pa.ipc.new_stream(str(self.path), self._schema)

    def add(self, columns: list[list[str]]) -> None:
        assert self._writer is not None and self._schema is not None
        for i, column in enumerate(columns):
            if self.plain and not all(map(_as_is, column)):
                self.plain = False
            if column:
                self.widths[i] = max(self.widths[i], max(map(_cell_len, column)))
        if columns and columns[0]:
            self._writer.write_batch(
                pa.record_batch([pa.array(c, pa.string()) for c in columns], schema=self._schema)
            )

    def _batches(self) -> Iterator[pa.RecordBatch]:
        """The spilled cells a batch at a time."""
        # read through a plain file (a path was memory-mapped: the spill counted as resident)
        with pa.OSFile(str(self.path), "rb") as f, pa.ipc.open_stream(f) as reader:
            yield from reader

    def _lines(self, batch: pa.RecordBatch) -> str:
        """A batch's rows as _box_row lays them out, a column at a time in Arrow: each cell
        padded to its column's width (by Arrow where a column is ASCII, a character a cell),
        the cells joined by the bars."""
        padded = []
        for col, width in zip(batch.columns, self.widths, strict=True):
            if pc.all(pc.string_is_ascii(col)).as_py() is not False:
                padded.append(pc.utf8_rpad(col, width=width, padding=" "))
            else:
                padded.append(pa.array([c + " " * (width - cell_len(c)) for c in col.to_pylist()]))
        rows = pc.binary_join_element_wise(*padded, " │ ")
        return "".join(pc.binary_join_element_wise("│ ", rows, " │\n", "").to_pylist())

    def lay_out(self, put: Callable[[str], None]) -> None:
        assert self._writer is not None
        self._writer.close()
        self._writer = None
        if not self.plain:  # rich lays it out (a line break, a tab...: every cell held)
            cells = [
                row
                for batch in self._batches()
                for row in zip(*(c.to_pylist() for c in batch.columns), strict=True)
            ]
            put(_table_text(self.names, cells, None, None))
            return
        put("".join(_box_head(self.names, [cell_len(n) for n in self.names], self.widths)))
        for batch in self._batches():
            for at in range(0, batch.num_rows, _LAID_ROWS):  # (its padded copies: a few MB)
                put(self._lines(batch.slice(at, _LAID_ROWS)))
        put(_box_foot(self.widths))


def _csv_line(cells: Sequence[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(cells)
    return buf.getvalue()


def _interval_line(name: str) -> str:
    return (
        f"column {name!r} is an INTERVAL, which Parquet cannot hold: select it as seconds "
        "(epoch(...)) or as text (...::VARCHAR), or write a .csv or .json"
    )


def emit_object(result: dict[str, Any]) -> None:
    """Print one result (not a row of a listing) as a JSON object, its values as render's."""
    print(json.dumps({k: _plain(v) for k, v in result.items()}, indent=2, default=str))


def say(text: str, fmt: Format) -> None:
    """A line for people beside a listing's rows: stdout in the table format, stderr in the
    machine formats (their stdout is the data only)."""
    print(text, file=sys.stdout if fmt is Format.table else sys.stderr)
