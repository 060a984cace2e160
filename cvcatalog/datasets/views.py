"""Views over datasets (cvcatalog.datasets) and the cross-source `trajectories` view.

Like the CV views, a dataset's view names its Parquet files explicitly: only files of the
version of each input recorded in dataset_inputs, so a new version becomes visible in the
transaction that publishes it and stray files are never read.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

import duckdb

from cvcatalog.datasets.base import Dataset, duckdb_type
from cvcatalog.exceptions import CatalogError
from cvcatalog.layout import CatalogPaths
from cvcatalog.quality import SEGMENT_COLUMN, has_segments
from cvcatalog.sqlutil import list_literal, quote_ident, quote_literal
from cvcatalog.storage import read_lake_url

TRAJECTORIES_VIEW = "trajectories"

#: BSM views folded into `trajectories`: (view, timestamp column, acceleration column)
BSM_TRAJECTORY_SOURCES = (
    ("wydot_bsm", "generated_at", "accel_long_mps2"),
    ("thea_bsm", "generated_at", "accel_long_mps2"),
)


def published_files(con: duckdb.DuckDBPyConnection, dataset: str) -> list[str]:
    """Catalog-relative data files of the published version of every input of a dataset."""
    rows = con.execute(
        "SELECT f.path FROM dataset_files f JOIN dataset_inputs i "
        "ON f.dataset = i.dataset AND f.uri = i.uri AND f.scope = i.scope "
        "AND f.fingerprint = i.fingerprint "
        "WHERE f.dataset = ? AND f.kind = 'data' ORDER BY f.partition, f.path",
        [dataset],
    ).fetchall()
    return [r[0] for r in rows]


def dataset_view_sql(ds: type[Dataset], files: list[str], extra_columns: Sequence[str] = ()) -> str:
    """CREATE VIEW over the files (hive partition columns from the paths), or a typed empty
    view when there are none. extra_columns (the quality step's `segment`) are in some files
    only: their columns are then unioned by name."""
    view = quote_ident(ds.view_name)
    if not files:
        cols = ", ".join(
            f"CAST(NULL AS {duckdb_type(f.type)}) AS {quote_ident(f.name)}" for f in ds.arrow_schema
        )
        return f"CREATE OR REPLACE VIEW {view} AS SELECT {cols} WHERE false"
    cols = ", ".join(quote_ident(n) for n in [*ds.arrow_schema.names, *extra_columns])
    hive = {"source": "VARCHAR"} | {
        name: duckdb_type(ds.arrow_schema.field(name).type) for name in ds.partition_by
    }
    hive_types = "{" + ", ".join(f"{quote_literal(k)}: {v}" for k, v in hive.items()) + "}"
    union = ", union_by_name = true" if extra_columns else ""
    return (
        f"CREATE OR REPLACE VIEW {view} AS SELECT {cols} FROM read_parquet("
        f"{list_literal(files)}, hive_partitioning = true, hive_types = {hive_types}{union})"
    )


def refresh_dataset_view(
    con: duckdb.DuckDBPyConnection,
    paths: CatalogPaths,
    ds: type[Dataset],
    base_url: str | None = None,
) -> None:
    """(Re)create one dataset's view over its published files, then `trajectories`.

    base_url (s3://bucket/prefix): name the files by that URL plus their catalog-relative
    path; by default the catalog's own lake (catalog_settings), local files when it has none."""
    from cvcatalog.views import remote_file_url

    rel = published_files(con, ds.name)
    extra = [SEGMENT_COLUMN] if has_segments(con, ds.name, ds.message_type) else []
    if base_url is None:
        base_url = read_lake_url(con)  # an S3 lake: the view reads it through httpfs
    if base_url is not None:
        con.execute(dataset_view_sql(ds, [remote_file_url(base_url, p) for p in rel], extra))
        refresh_trajectories_view(con, if_changed=True)
        return
    files = [str(paths.absolute(p)) for p in rel]
    missing = [p for p, f in zip(rel, files, strict=True) if not os.path.exists(f)]
    if missing:
        raise CatalogError(
            f"{len(missing)} Parquet file(s) of {ds.name} listed in the catalog are missing "
            f"(e.g. {missing[0]}); ingest the input again"
        )
    con.execute(dataset_view_sql(ds, files, extra))
    refresh_trajectories_view(con, if_changed=True)


def _view_columns(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    rows = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main'"
    ).fetchall()
    out: dict[str, set[str]] = {}
    for table, column in rows:
        out.setdefault(table, set()).add(column)
    return out


def trajectories_sql(con: duckdb.DuckDBPyConnection) -> str | None:
    """One row per position of any vehicle: NGSIM and the BSM views that exist."""
    from cvcatalog.datasets import DATASETS

    have = _view_columns(con)
    parts = []
    for ds in DATASETS.values():
        if ds.view_name in have:
            parts.append(
                'SELECT vehicle_id, "timestamp", latitude, longitude, speed_mps, accel_mps2, '
                f"{quote_literal(ds.name)} AS source, location FROM {quote_ident(ds.view_name)}"
            )
    need = {"vehicle_id", "latitude", "longitude", "speed_mps", "source"}
    for view, ts, accel in BSM_TRAJECTORY_SOURCES:
        cols = have.get(view, set())
        if need | {ts, accel} <= cols:
            parts.append(
                f'SELECT vehicle_id, {quote_ident(ts)} AS "timestamp", latitude, longitude, '
                f"speed_mps, {quote_ident(accel)} AS accel_mps2, source, "
                f"CAST(NULL AS VARCHAR) AS location FROM {quote_ident(view)}"
            )
    if not parts:
        return None
    return f"CREATE OR REPLACE VIEW {quote_ident(TRAJECTORIES_VIEW)} AS " + " UNION ALL ".join(
        parts
    )


def refresh_trajectories_view(con: duckdb.DuckDBPyConnection, *, if_changed: bool = False) -> None:
    """(Re)create `trajectories`; with if_changed only when its definition changed (creating
    it binds every view below it)."""
    sql = trajectories_sql(con)
    if sql is None:
        return
    tag = hashlib.sha256(sql.encode()).hexdigest()[:16]
    if if_changed:
        row = con.execute(
            "SELECT comment FROM duckdb_views() WHERE view_name = ? AND NOT internal",
            [TRAJECTORIES_VIEW],
        ).fetchone()
        if row is not None and row[0] == tag:
            return
    con.execute(sql)
    con.execute(f"COMMENT ON VIEW {quote_ident(TRAJECTORIES_VIEW)} IS '{tag}'")


def ensure_dataset_views(con: duckdb.DuckDBPyConnection, paths: CatalogPaths) -> None:
    """Create the views of datasets that have none yet (new catalogs), and `trajectories`."""
    from cvcatalog.datasets import DATASETS

    have = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    for ds in DATASETS.values():
        if ds.view_name not in have:
            refresh_dataset_view(con, paths, ds)
    refresh_trajectories_view(con, if_changed=True)
