"""The one place SQL identifiers and literals are quoted; values are otherwise bound as parameters."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path


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


#: The sql/ folder next to this package in a source checkout (None when installed as a wheel).
_CHECKOUT_SQL = Path(__file__).resolve().parent.parent / "sql"


def load_sql(*parts: str) -> str:
    """Text of a .sql file from the top-level sql/ folder (packaged as cvcatalog._sql).

    A source checkout (e.g. a git worktree put first on PYTHONPATH) reads its own sql/ folder:
    an editable install elsewhere maps cvcatalog._sql to *its* checkout, whose migrations and
    view templates may differ from the code being run.
    """
    local = _CHECKOUT_SQL.joinpath(*parts)
    if (_CHECKOUT_SQL / "__init__.py").is_file() and local.is_file():
        return local.read_text(encoding="utf-8")
    node = files("cvcatalog._sql")
    for p in parts:
        node = node / p
    return node.read_text(encoding="utf-8")
