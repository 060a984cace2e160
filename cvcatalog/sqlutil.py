"""The one place SQL identifiers and literals are quoted (values are otherwise bound as
parameters), and rows inserted in bulk."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from importlib.resources import files
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb


def quote_ident(name: str) -> str:
    """A DuckDB identifier, double-quoted with inner quotes doubled."""
    if "\x00" in name:
        raise ValueError("identifier contains a NUL byte")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A DuckDB string literal; only where parameters cannot be bound (view bodies, a COPY's
    target file)."""
    if "\x00" in value:
        raise ValueError("literal contains a NUL byte")
    return "'" + value.replace("'", "''") + "'"


def list_literal(values: Iterable[str]) -> str:
    """A DuckDB list of string literals, e.g. a view's Parquet file list."""
    return "[" + ", ".join(quote_literal(v) for v in values) + "]"


def load_sql(*parts: str) -> str:
    """Text of a .sql file under cvcatalog/sql/ (DDL, migrations, transforms, view templates)."""
    node = files("cvcatalog.sql")
    for p in parts:
        node = node / p
    return node.read_text(encoding="utf-8")


def insert_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    or_replace: bool = False,
) -> None:
    """Insert rows with one statement (a list per column, unnested): executemany runs one
    statement per row, most of a many-day commit's state rows. or_replace: INSERT OR REPLACE
    (rows whose key exists replace it)."""
    if not rows:
        return
    cols = [list(c) for c in zip(*rows, strict=True)]
    items = ", ".join(f"unnest(${i + 1}) AS {quote_ident(c)}" for i, c in enumerate(columns))
    verb = "INSERT OR REPLACE" if or_replace else "INSERT"
    con.execute(
        f"{verb} INTO {quote_ident(table)} ({', '.join(quote_ident(c) for c in columns)}) "
        f"SELECT {items}",
        cols,
    )
