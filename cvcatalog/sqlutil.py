"""The one place SQL identifiers and literals are quoted; values are otherwise bound as parameters."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from importlib.resources import files
from importlib.resources.abc import Traversable
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


@functools.cache
def _sql_root() -> Traversable:
    """The sql/ folder beside this package in a source checkout, else the packaged copy.

    An editable install maps cvcatalog._sql to the checkout it was installed from, so a second
    checkout (a git worktree) run with PYTHONPATH would otherwise read the other one's SQL."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "sql" / "migrations").is_dir():
        return checkout / "sql"
    return files("cvcatalog._sql")


def load_sql(*parts: str) -> str:
    """Text of a .sql file from the top-level sql/ folder (packaged as cvcatalog._sql)."""
    node = _sql_root()
    for p in parts:
        node = node / p
    return node.read_text(encoding="utf-8")
