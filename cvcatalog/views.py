"""Regenerate the SQL views inside a catalog transaction.

Views name their Parquet files explicitly (only files of complete partitions), so a partition
becomes visible in the same transaction that marks it complete, and stray or half-written files
are never read. Hive directory names still drive pruning: a date filter opens only that day.
Union views (`bsm`, ...) select the columns every source of a message type shares.
"""

from __future__ import annotations

import hashlib
import os

import duckdb

from cvcatalog.exceptions import CatalogError
from cvcatalog.layout import CatalogPaths
from cvcatalog.manifest import complete_data_files
from cvcatalog.quality import SEGMENT_COLUMN, has_segments
from cvcatalog.schemas import SCHEMAS, MessageSchema, view_sql
from cvcatalog.sqlutil import quote_ident
from cvcatalog.storage import read_lake_url


def refresh_views(
    con: duckdb.DuckDBPyConnection,
    paths: CatalogPaths,
    source: str,
    message_type: str,
    base_url: str | None = None,
) -> None:
    """(Re)create the views of one (source, type) over its complete partitions' files.

    base_url (e.g. s3://bucket/prefix): name the files by that URL plus their catalog-relative
    path instead of their local absolute path (the portable database of a published catalog).
    By default that is the catalog's own lake URL when its lake is on S3.
    """
    schema = SCHEMAS[(source, message_type)]
    current = complete_data_files(con, source, message_type, schema.canonical_version)
    extra = [SEGMENT_COLUMN] if has_segments(con, source, message_type) else []
    if base_url is None:
        base_url = read_lake_url(con)  # an S3 lake: the views read it through httpfs
    if base_url is not None:
        urls = [remote_file_url(base_url, f.path) for f in current]
        for stmt in view_sql(schema, urls, extra):
            con.execute(stmt)
        return
    files = [str(paths.absolute(f.path)) for f in current]
    missing = [f.path for f, p in zip(current, files, strict=True) if not os.path.exists(p)]
    if missing:  # DuckDB would fail the whole transaction with "No files found"
        raise CatalogError(
            f"{len(missing)} Parquet file(s) of {source}/{message_type} listed in the catalog are "
            f"missing (e.g. {missing[0]}); run `cvcatalog cache verify --repair`"
        )
    for stmt in view_sql(schema, files, extra):
        con.execute(stmt)


def remote_file_url(base_url: str, rel: str) -> str:
    """base_url joined with a manifest (catalog-relative POSIX) path."""
    if rel.startswith("/") or ".." in rel.split("/"):
        raise CatalogError(f"manifest path escapes the catalog directory: {rel!r}")
    return f"{base_url.rstrip('/')}/{rel}"


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


def refresh_union_views(con: duckdb.DuckDBPyConnection, *, if_changed: bool = False) -> None:
    """(Re)create the union views. With if_changed, only those whose definition differs from
    the one recorded in the view's comment: creating a view binds the views below it, which
    fails (and aborts the transaction) while a Parquet file they name is missing or damaged --
    exactly when `cache verify --repair` must still be able to write."""
    stored: dict[str, str | None] = {}
    if if_changed:
        stored = dict(
            con.execute(
                "SELECT view_name, comment FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
        )
    for name, schemas in union_views().items():
        sql = union_view_sql(name, schemas)
        tag = hashlib.sha256(sql.encode()).hexdigest()[:16]
        if if_changed and stored.get(name) == tag:
            continue
        con.execute(sql)
        con.execute(f"COMMENT ON VIEW {quote_ident(name)} IS '{tag}'")
