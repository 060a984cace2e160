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
from cvcatalog.exceptions import CatalogError
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


#: tables every catalog.duckdb of cvcatalog 0.1 has (its first migration made them)
REQUIRED_TABLES = ("schema_migrations", "partitions")


def check(path: Path) -> str | None:
    """That path is a catalog.duckdb written by cvcatalog 0.1, before anything is created for
    its migration: CatalogError (one line) for a file that is not a DuckDB database, or one
    without cvcatalog's state tables (someone else's database, which a migration would
    delete). Returns the lake location it recorded (None: its own directory; also when the
    file went meanwhile: another process migrated it)."""
    try:
        con = open_instance(str(path), read_only=True)
    except duckdb.Error as e:
        if not path.exists():
            return None
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "Could not set lock" in text or "Conflicting lock" in text:
            raise CatalogError(
                f"cannot open {path}: another process holds it open read-write; "
                "close that session and try again"
            ) from None
        why = (
            "not a DuckDB database file"
            if "not a valid DuckDB database" in text
            else text.removeprefix("IO Error: ")
        )
        raise CatalogError(f"{path} is not a cvcatalog catalog: {why}") from None
    try:
        have = {
            str(r[0])
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'"
            ).fetchall()
        }
        missing = [t for t in REQUIRED_TABLES if t not in have]
        if missing:
            raise CatalogError(
                f"{path} is not a cvcatalog catalog: a DuckDB database without cvcatalog's "
                f"tables ({', '.join(missing)}); move it away or use another catalog directory"
            )
        try:
            row = con.execute(
                "SELECT value FROM catalog_settings WHERE key = 'lake_url' LIMIT 1"
            ).fetchone()
        except duckdb.Error:  # a catalog of 0.1 from before catalog_settings
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
