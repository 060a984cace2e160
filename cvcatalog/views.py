"""Regenerate the SQL views inside a catalog transaction.

Views name their Parquet files explicitly (only files of complete partitions), so a partition
becomes visible in the same transaction that marks it complete, and stray or half-written files
are never read. Hive directory names still drive pruning: a date filter opens only that day.
"""

from __future__ import annotations

import duckdb

from cvcatalog.layout import CatalogPaths
from cvcatalog.manifest import complete_data_files
from cvcatalog.schemas import SCHEMAS, view_sql


def refresh_views(
    con: duckdb.DuckDBPyConnection, paths: CatalogPaths, source: str, message_type: str
) -> None:
    schema = SCHEMAS[(source, message_type)]
    files = [str(paths.absolute(f.path)) for f in complete_data_files(con, source, message_type)]
    for stmt in view_sql(schema, files):
        con.execute(stmt)


def refresh_all_views(con: duckdb.DuckDBPyConnection, paths: CatalogPaths) -> None:
    for source, message_type in SCHEMAS:
        refresh_views(con, paths, source, message_type)
