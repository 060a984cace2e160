"""Regenerate the SQL views inside a catalog transaction.

Views name their Parquet files explicitly (only files of complete partitions), so a partition
becomes visible in the same transaction that marks it complete, and stray or half-written files
are never read. Hive directory names still drive pruning: a date filter opens only that day.
Union views (`bsm`, ...) select the columns every source of a message type shares.
"""

from __future__ import annotations

import duckdb

from cvcatalog.layout import CatalogPaths
from cvcatalog.manifest import complete_data_files
from cvcatalog.schemas import SCHEMAS, MessageSchema, view_sql
from cvcatalog.sqlutil import quote_ident


def refresh_views(
    con: duckdb.DuckDBPyConnection, paths: CatalogPaths, source: str, message_type: str
) -> None:
    schema = SCHEMAS[(source, message_type)]
    current = complete_data_files(con, source, message_type, schema.canonical_version)
    files = [str(paths.absolute(f.path)) for f in current]
    for stmt in view_sql(schema, files):
        con.execute(stmt)


def union_views() -> dict[str, list[MessageSchema]]:
    """Union view name -> the schemas it spans (message types published by several sources)."""
    groups: dict[str, list[MessageSchema]] = {}
    for (_, message_type), schema in sorted(SCHEMAS.items()):
        groups.setdefault(message_type.lower(), []).append(schema)
    return {name: schemas for name, schemas in groups.items() if len(schemas) > 1}


def union_view_sql(name: str, schemas: list[MessageSchema]) -> str:
    """A view over the columns (same name and type) that all the schemas' views share."""
    first = schemas[0].view_columns
    shared = [
        (col, typ) for col, typ in first if all((col, typ) in s.view_columns for s in schemas[1:])
    ]
    cols = ", ".join(quote_ident(c) for c, _ in shared)
    parts = [f"SELECT {cols} FROM {quote_ident(s.view_name)}" for s in schemas]
    return f"CREATE OR REPLACE VIEW {quote_ident(name)} AS " + " UNION ALL ".join(parts)


def refresh_union_views(con: duckdb.DuckDBPyConnection) -> None:
    for name, schemas in union_views().items():
        con.execute(union_view_sql(name, schemas))
