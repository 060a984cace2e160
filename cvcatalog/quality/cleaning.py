"""Cleaning of in-memory frames (an Arrow table or a pandas frame) with the partition plan.

The cleaning itself is the SQL plan of `cvcatalog.quality.rules` (the one `apply()` runs on a
partition's files at ingest); this module runs it over a table held by the caller, which is
what an experiment's frame or a notebook has. `impute` is the entry point for missing values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from cvcatalog.exceptions import ConfigError
from cvcatalog.io.duckdb_ext import open_instance
from cvcatalog.quality.config import IMPUTED_COLUMN, Impute, QualityConfig
from cvcatalog.quality.mapping import Mapping, TrajectoryMapping, mapping_for
from cvcatalog.quality.rules import QualityStats, clean_relation, impute_columns

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

_ROW = "__q_o_row"  # the caller's row order (internal prefix: dropped from the output)


def impute(
    data: pa.Table | pd.DataFrame,
    mapping: Mapping | tuple[str, str],
    cfg: QualityConfig | Impute | None = None,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
) -> tuple[pa.Table, QualityStats]:
    """Fill short runs of NULL position, speed and heading values by linear interpolation in
    time, inside a trajectory's gap-free segment (never across a gap longer than the gap
    detection's max_gap_s), and add a boolean `imputed` column. Returns the table in the
    input's row order (same columns and types, plus `imputed`) and the counts ("impute":
    imputed rows, values, missing values left).

    mapping: a TrajectoryMapping or a (source, message_type) pair. cfg: the quality config
    (its `impute` section, switched on here, and `cleaning.detect_gaps.max_gap_s`), or just an
    Impute section. Only imputation runs: no rule is counted and nothing is removed.
    """

    m = mapping_for(*mapping) if isinstance(mapping, tuple) else mapping
    if not isinstance(m, TrajectoryMapping):
        raise ConfigError("imputation applies to trajectories (BSM, TRAJECTORY) only")
    base = cfg if isinstance(cfg, QualityConfig) else QualityConfig()
    section = cfg if isinstance(cfg, Impute) else base.impute
    off = base.rules.model_copy(
        update={
            "bounds": None,
            "max_speed_mps": None,
            "max_abs_accel_mps2": None,
            "derived_from_positions": False,
            "ordering": False,
            "duplicates": False,
            "max_jump_speed_mps": None,
            "speed_spikes": False,
            "near_duplicate_s": None,
            "frozen_min_speed_mps": None,
        }
    )
    gaps = base.cleaning.detect_gaps.model_copy(update={"enabled": False})
    only = QualityConfig(
        rules=off,
        cleaning=base.cleaning.model_copy(
            update={
                "remove_duplicates": False,
                "remove_outliers": False,
                "detect_gaps": gaps,
                "smoothing": base.cleaning.smoothing.model_copy(update={"enabled": False}),
            }
        ),
        impute=section.model_copy(update={"enabled": True}),
    )
    table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    if _ROW in table.column_names:
        table = table.drop_columns([_ROW])
    table = table.append_column(_ROW, pa.array(range(table.num_rows), pa.int64()))
    own = con is None
    c = con if con is not None else open_instance(config={"threads": 1})
    name = f"__q_impute_{id(table):x}"
    try:
        c.register(name, table)
        query, params, stats = clean_relation(c, name, m, only, order_by=[_ROW])
        out = c.execute(query, params).arrow().read_all()
    finally:
        c.unregister(name)
        if own:
            c.close()
    return out, stats


def impute_pandas(frame: pd.DataFrame, mapping: TrajectoryMapping, cfg: Any) -> pd.DataFrame:
    """impute() on one pandas partition (Dask's map_partitions): the frame with its imputed
    columns replaced and an `imputed` column; every other column keeps its dtype."""
    out, _ = impute(frame, mapping, cfg)
    result = frame.copy()
    for col in impute_columns(mapping, cfg.impute if isinstance(cfg, QualityConfig) else cfg):
        if col in result.columns:
            result[col] = (
                out.column(col).to_numpy(zero_copy_only=False).astype(result[col].dtype, copy=False)
            )
    result[IMPUTED_COLUMN] = out.column(IMPUTED_COLUMN).to_numpy(zero_copy_only=False)
    return result
