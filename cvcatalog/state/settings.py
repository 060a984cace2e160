"""The catalog's settings (`catalog_settings`, key/value): the one module that reads and
writes that table. What is kept there: where the lake lives (`lake_url`, chosen once when a
catalog is created: cvcatalog.io.storage) and the trip gap the trip views were made with
(`trips.max_gap_s`: cvcatalog.state.trips), the last data file whose statistics are in
order (`lake.stats_ordered_through`: cvcatalog.state.db.order_lake_stats), and the token of
the catalog's last write to an S3 lake (`lake.lineage`: cvcatalog.io.storage.S3Store.claim)."""

from __future__ import annotations

import duckdb

from cvcatalog.exceptions import ConfigError

#: where the catalog's Parquet files live; no row (or an empty one): the local directory
LAKE_URL = "lake_url"
#: the last data file id of the lake's per-file statistics as last put in order
STATS_ORDERED = "lake.stats_ordered_through"
#: the token of this catalog's last write to its S3 lake (io.storage.S3Store.claim)
LINEAGE = "lake.lineage"


def get(con: duckdb.DuckDBPyConnection, key: str) -> str | None:
    """The recorded value (None: none recorded). Catalogs older than the table have no
    settings at all.

    The table (a few rows) is read whole: opening a catalog binds no Python value, because
    DuckDB's Python client imports pandas at the first statement that binds one (1.5.5:
    `import_cache.pandas.NaT()`, even for a string), ~0.2 s of a 0.9 s `cvcatalog query`
    whose own SQL binds nothing (tests/test_cli.py)."""
    try:
        rows = con.execute("SELECT key, value FROM catalog_settings").fetchall()
    except duckdb.CatalogException:
        return None
    return dict(rows).get(key) or None


def put(con: duckdb.DuckDBPyConnection, key: str, value: str | None) -> None:
    """Inside a write transaction: record the value (None: forget the key)."""
    con.execute("DELETE FROM catalog_settings WHERE key = ?", [key])
    if value is not None:
        con.execute("INSERT INTO catalog_settings VALUES (?, ?)", [key, value])


def read_lake_url(con: duckdb.DuckDBPyConnection) -> str | None:
    """The lake URL recorded in a catalog database (None: local)."""
    return get(con, LAKE_URL)


def record_lake_url(con: duckdb.DuckDBPyConnection, wanted: str | None) -> str | None:
    """Inside a write transaction: keep the recorded lake URL, or record the wanted one on a
    catalog that holds no files yet. Asking for another location than the one the files are
    in is an error, never a silent switch."""
    current = read_lake_url(con)
    if wanted == current:
        return current
    row = con.execute("SELECT count(*) FROM partition_files").fetchone()
    if row and row[0]:
        here = current or "the local catalog directory"
        there = wanted or "local storage"
        raise ConfigError(
            f"this catalog keeps its Parquet files in {here}; it cannot switch to {there} "
            "(use a new catalog directory, or `cvcatalog publish` to copy it to S3)"
        )
    put(con, LAKE_URL, wanted)
    return wanted
