"""The one place SQL identifiers and literals are quoted; values are otherwise bound as parameters."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.resources import files


def quote_ident(name: str) -> str:
    """A DuckDB identifier, double-quoted with inner quotes doubled."""
    if "\x00" in name:
        raise ValueError("identifier contains a NUL byte")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A DuckDB string literal; only for DDL (view bodies) where parameters cannot be bound."""
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
