"""A catalog opened the way any DuckDB user opens it: the bench's baseline for "plain DuckDB"."""

from __future__ import annotations

from pathlib import Path

import duckdb

from cvcatalog.io import lake
from cvcatalog.sqlutil import quote_literal


def plain_session(db: Path) -> duckdb.DuckDBPyConnection:
    """The lake attached read-only over its catalog file (attached read-only too, for the
    state tables); unqualified names find the lake's tables and views, then the state."""
    con = duckdb.connect()
    lake.load(con)
    con.execute(f"ATTACH {quote_literal(str(db))} AS cvcatalog (READ_ONLY)")
    con.execute("USE cvcatalog")
    lake.attach(con, "cvcatalog", read_only=True)
    con.execute("SET search_path = 'cv.main,cvcatalog.main'")
    return con
