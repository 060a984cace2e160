"""Catalogs written by cvcatalog 0.1 (catalog.duckdb with views that list files) become
DuckLake catalogs on first open, without downloading anything again.

The state tables are copied into the new catalog.ducklake; every data file gets its place in
the lake's layout (`lake/main/<table>/<hive keys>/`) by a hard link (or a copy on an S3
lake), and the transaction's sync registers them with DuckLake. The old paths and database
are removed only after the new catalog has been published, so a crash at any point leaves
either the old catalog intact or the new one complete.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import duckdb

from cvcatalog.datasets import DATASETS
from cvcatalog.io.duckdb_ext import open_instance
from cvcatalog.io.layout import CatalogPaths
from cvcatalog.io.storage import LakeStore
from cvcatalog.sources.bucket import PartitionKey
from cvcatalog.sqlutil import quote_ident, quote_literal
from cvcatalog.state import datasets, manifest

LEGACY = "legacy_catalog"
#: old data files lived under lake/source=<source>/...
OLD_PREFIX = "lake/source="
#: state tables copied column by column (BY NAME: an older legacy schema leaves defaults)
STATE_TABLES = (
    "catalog_settings",
    "partitions",
    "partition_files",
    "source_objects",
    "ingest_runs",
    "validation_reports",
    "listing_cache",
    "dataset_inputs",
    "dataset_units",
    "dataset_files",
    "quality_stats",
    "quality_configs",
)


def lake_url(path: Path) -> str | None:
    """The lake location a legacy catalog recorded (None: its own directory)."""
    con = open_instance(str(path), read_only=True)
    try:
        row = con.execute(
            "SELECT value FROM duckdb_tables() t, catalog_settings s "
            "WHERE t.table_name = 'catalog_settings' AND s.key = 'lake_url' LIMIT 1"
        ).fetchone()
    except duckdb.Error:
        return None
    finally:
        con.close()
    return str(row[0]) if row and row[0] else None


def import_state(
    con: duckdb.DuckDBPyConnection, paths: CatalogPaths, store: LakeStore
) -> list[tuple[str, str]]:
    """Copy the legacy state into con's catalog and place its data files in the lake layout;
    returns (old path, new path) of every placed file."""
    # stays attached until the writer's connection closes (a transaction cannot detach it)
    con.execute(f"ATTACH {quote_literal(str(paths.legacy_db))} AS {LEGACY} (READ_ONLY)")
    have = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [LEGACY]
        ).fetchall()
    }
    for table in STATE_TABLES:
        if table in have:
            # catalog_settings: the lake location was recorded already (the same value)
            verb = "INSERT OR IGNORE" if table == "catalog_settings" else "INSERT"
            con.execute(
                f"{verb} INTO main.{quote_ident(table)} BY NAME "
                f"SELECT * FROM {LEGACY}.main.{quote_ident(table)}"
            )
    moved = _new_paths(con)
    with tempfile.TemporaryDirectory(dir=paths.staging if paths.staging.exists() else None) as t:
        for old, new in moved:
            store.duplicate(old, new, Path(t))
    for old, new in moved:
        manifest.rename_file(con, old, new)
        datasets.rename_file(con, old, new)
    return moved


def _new_paths(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    out = []
    for path, key in con.execute(
        "SELECT path, partition_key FROM partition_files WHERE kind = 'data' AND starts_with(path, ?)",
        [OLD_PREFIX],
    ).fetchall():
        out.append((path, f"{CatalogPaths.partition_rel(PartitionKey.parse(key))}/{_name(path)}"))
    tables = {ds.name: ds.view_name for ds in DATASETS.values()}
    for path, dataset, partition in con.execute(
        "SELECT path, dataset, partition FROM dataset_files WHERE kind = 'data' "
        "AND starts_with(path, ?)",
        [OLD_PREFIX],
    ).fetchall():
        if dataset in tables:
            out.append((path, f"lake/main/{tables[dataset]}/{partition}/{_name(path)}"))
    return out


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def finish(paths: CatalogPaths, store: LakeStore) -> None:
    """After the new catalog is published: remove the old data paths and the old database."""
    store.discard(rel for rel in store.list_files(under="lake") if rel.startswith(OLD_PREFIX))
    if store.is_local:
        for d in sorted(paths.lake.glob("source=*"), reverse=True):
            for sub in sorted(d.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if sub.is_dir():
                    with contextlib.suppress(OSError):
                        sub.rmdir()
            with contextlib.suppress(OSError):
                d.rmdir()
    for leftover in (paths.legacy_db, paths.legacy_db.with_name(paths.legacy_db.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
