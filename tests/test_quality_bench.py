"""A small bench.quality: labelled anomalies injected into replica trajectories must be found by
the catalog's rules (recall >= 95 % per type), and moving a rule's threshold must lose them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb
import pandas as pd
import pytest

from bench.quality import (
    ORDER_COL,
    RULE_FOR,
    TYPES,
    _traj,
    bsm_base,
    flags,
    inject,
    ngsim_base,
    run_dataset,
    score,
)
from cvcatalog.quality.config import QualityConfig
from cvcatalog.quality.rules import evaluate
from cvcatalog.sqlutil import quote_ident

RATE, SEED = 0.02, 3


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("qbench")
    con = duckdb.connect(config={"threads": 2})
    # ~0.36-0.72 s between a vehicle's samples: the smallest injected spike (20 m/s) and jump
    # (200 m) are then well beyond what a vehicle can do between two samples (at ~1.4 s a
    # 20 m/s change is not: see the sparse set of bench.quality)
    bsm = bsm_base(con, work, hours=1, per_hour=10_000, vehicles=2, seed=SEED)
    ngsim, ncon = ngsim_base(work, 1500, SEED)
    yield {
        "wydot": (con, bsm, _traj("wydot", "BSM")),
        "ngsim": (ncon, ngsim, _traj("ngsim", "TRAJECTORY")),
    }
    con.close()
    ncon.close()


@pytest.mark.parametrize("name", ["wydot", "ngsim"])
def test_every_anomaly_type_is_found(bases: dict[str, Any], name: str) -> None:
    con, base, mapping = bases[name]
    r = run_dataset(name, con, base, mapping, RATE, SEED, repeats=1)
    assert r["base_rows"] > 2000
    assert r["median_sample_interval_s"] < 0.8  # the density the thresholds need (see above)
    per_type = {t["type"]: t for t in r["per_type"]}
    assert set(per_type) == set(TYPES)
    for t in per_type.values():
        assert t["injected"] >= 20, t  # enough to measure a rate
        assert t["recall"] >= 0.95, t
    for rule in r["per_rule"]:
        if rule["flagged"]:
            assert rule["precision"] >= 0.90, rule
    # the counts evaluate() records at ingest are the flags' sums
    assert r["any_rule"]["recall"] >= 0.95


def _dirty(bases: dict[str, Any], name: str) -> tuple[Any, pd.DataFrame, Any]:
    con, base, mapping = bases[name]
    clean = base.reset_index(drop=True)
    clean[ORDER_COL] = range(len(clean))
    assert mapping.default_bounds is not None
    dirty, _ = inject(clean, mapping, RATE, SEED, mapping.default_bounds, QualityConfig())
    return con, dirty, mapping


@pytest.mark.parametrize(
    ("rules", "kinds"),
    [
        # thresholds moved past the injected anomalies: the rules must lose them
        ({"max_jump_speed_mps": 5000}, ["position_jump"]),
        ({"near_duplicate_s": 0.0005}, ["near_duplicate"]),
        ({"frozen_min_speed_mps": 500}, ["frozen_position"]),
        ({"max_abs_accel_mps2": 500}, ["impossible_accel", "speed_spike"]),
        ({"ordering": False, "duplicates": False}, ["out_of_order", "exact_duplicate"]),
        ({"bounds": None}, ["out_of_bounds"]),
    ],
)
def test_a_loosened_rule_misses_its_anomalies(
    bases: dict[str, Any], rules: dict[str, Any], kinds: list[str]
) -> None:
    con, dirty, mapping = _dirty(bases, "wydot")
    cfg = QualityConfig.parse({"rules": rules})
    f, names, _ = flags(con, dirty, mapping, cfg)
    counts = dirty["bench_label"].value_counts().to_dict()
    per_type = {t["type"]: t for t in score(f, names, counts)["per_type"]}
    for kind in kinds:
        assert per_type[kind]["recall"] is not None and per_type[kind]["recall"] < 0.5, kind
    # the other types are still found
    for kind in set(TYPES) - set(kinds):
        assert per_type[kind]["recall"] >= 0.95, kind


def test_new_rules_are_counted_like_the_others(bases: dict[str, Any]) -> None:
    con, dirty, mapping = _dirty(bases, "ngsim")
    con.register("dirty_rows", dirty)
    stats = evaluate(con, "dirty_rows", mapping, order_by=[quote_ident(ORDER_COL)])
    f, names, _ = flags(con, dirty, mapping, QualityConfig())
    con.unregister("dirty_rows")
    for rule in ("jumps", "speed_spikes", "near_duplicates", "frozen"):
        assert rule in names
        assert stats.count(rule) == int(f[f"rule_{rule}"].sum()) > 0
    assert set(RULE_FOR.values()) <= set(names)
