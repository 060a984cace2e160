"""The quality rules and cleaning as DuckDB SQL over one partition (see cvcatalog.quality)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvcatalog.exceptions import CatalogError, ConfigError
from cvcatalog.io.duckdb_ext import temporary_setting
from cvcatalog.io.layout import replacing
from cvcatalog.io.s3 import as_s3_error
from cvcatalog.quality.config import IMPUTED_COLUMN, Bounds, Impute, QualityConfig
from cvcatalog.quality.mapping import (
    Mapping,
    RecordMapping,
    TrajectoryMapping,
    check_measure,
    mapping_for,
)
from cvcatalog.sqlutil import list_literal, quote_ident, quote_literal
from cvcatalog.state import deletes
from cvcatalog.state.db import now_utc

if TYPE_CHECKING:
    import duckdb
    import numpy as np

_P = "__q_"  # prefix of every internal column; none reaches an output file


# -- results ----------------------------------------------------------------------------------
@dataclass
class QualityStats:
    """Counts of one evaluation or cleaning, keyed (rule, action).

    Actions: flagged (rows failing a rule), removed, smoothed, gaps, and for rule "rows" the
    input and output row counts.
    """

    rows_in: int
    rows_out: int | None = None
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: the configuration with 'auto' values resolved, as recorded in quality_configs
    config_json: str | None = None

    def count(self, rule: str, action: str = "flagged") -> int:
        return self.counts.get((rule, action), 0)

    def rows(self) -> list[dict[str, Any]]:
        return [{"rule": r, "action": a, "count": n} for (r, a), n in self.counts.items()]


@dataclass(frozen=True)
class _Resolved:
    cfg: QualityConfig
    bounds: tuple[float, float, float, float] | None
    max_gap_s: float

    def to_json(self) -> str:
        data = self.cfg.model_dump(mode="json")
        b = self.bounds
        data["rules"]["bounds"] = (
            None
            if b is None
            else dict(zip(("lat_min", "lat_max", "lon_min", "lon_max"), b, strict=True))
        )
        data["cleaning"]["detect_gaps"]["max_gap_s"] = self.max_gap_s
        return json.dumps(data, sort_keys=True)


def _resolve(cfg: QualityConfig, m: Mapping) -> _Resolved:
    b = cfg.rules.bounds
    bounds = None
    if isinstance(m, TrajectoryMapping):
        bounds = (
            m.default_bounds if b == "auto" else (b.as_tuple() if isinstance(b, Bounds) else None)
        )
    g = cfg.cleaning.detect_gaps.max_gap_s
    default_gap = m.default_max_gap_s if isinstance(m, TrajectoryMapping) else 5.0
    return _Resolved(cfg, bounds, default_gap if isinstance(g, str) else float(g))


# -- SQL generation ---------------------------------------------------------------------------
def savgol_weights(window: int, order: int) -> np.ndarray:
    """Savitzky-Golay weights for the centre of a window: the value at offset 0 of the
    least-squares polynomial of degree `order` through `window` equally spaced samples.

    Offsets are scaled to [-1, 1] (the constant term, which is all we need, does not change),
    which keeps the Vandermonde matrix well conditioned for wide windows.
    """
    import numpy as np

    if window < 3 or window % 2 == 0 or not 0 <= order < window:
        raise ValueError(f"need an odd window >= 3 and 0 <= order < window, got {window}, {order}")
    h = window // 2
    k = np.arange(-h, h + 1, dtype=float) / h
    a = np.vander(k, order + 1, increasing=True)
    coef, *_ = np.linalg.lstsq(a, np.eye(window), rcond=None)
    return np.asarray(coef[0], dtype=float)


@dataclass
class _Plan:
    """CTEs of one pipeline, the names of its stages and the parameters they use."""

    ctes: list[tuple[str, str]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    flags: str = ""  # stage with every flag column
    final: str = ""  # stage after cleaning
    stat_flags: dict[str, str] = field(default_factory=dict)  # rule -> SQL over `flags`
    stat_removed: dict[str, str] = field(default_factory=dict)  # rule -> SQL over `flags`
    stat_out: dict[tuple[str, str], str] = field(default_factory=dict)  # over `final`
    output: list[str] = field(default_factory=list)  # extra output items (segment)
    order: str | None = None  # ORDER BY of the output (the storage order of the input)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, sql: str) -> str:
        self.ctes.append((name, sql))
        return name

    def param(self, name: str, value: Any) -> str:
        self.params[name] = value
        return f"${name}"

    def with_clause(self) -> str:
        return "WITH " + ",\n".join(f"{n} AS ({s})" for n, s in self.ctes)

    def params_for(self, sql: str) -> dict[str, Any]:
        """The parameters a statement uses (DuckDB refuses unused named parameters)."""
        return {k: v for k, v in self.params.items() if re.search(rf"\${k}\b", sql)}


def _describe(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    """Column name -> type of a relation; a missing view or file is one clear line."""
    import duckdb

    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    except duckdb.Error as e:
        known = as_s3_error(e)  # the lake is on S3 and httpfs could not reach it
        if known is not None:
            raise known from None
        raise CatalogError(f"cannot read {relation[:200]}: {str(e).splitlines()[0]}") from None
    return {str(r[0]): str(r[1]) for r in rows}


def _need(columns: dict[str, str], name: str | None, role: str) -> str | None:
    if name is None:
        return None
    if name not in columns:
        raise CatalogError(f"the data has no column {name!r} (the {role} column of the mapping)")
    return quote_ident(name)


def _trajectory_plan(
    columns: dict[str, str],
    m: TrajectoryMapping,
    r: _Resolved,
    order_cols: Sequence[str],
    *,
    clean: bool,
) -> _Plan:
    """Flags, then (when clean) removal, segments and smoothing, as chained CTEs over `src`."""
    rules, c = r.cfg.rules, r.cfg.cleaning
    p = _Plan()
    i, t = _need(columns, m.id, "id"), _need(columns, m.time, "time")
    assert i is not None and t is not None
    lat, lon = _need(columns, m.latitude, "latitude"), _need(columns, m.longitude, "longitude")
    speed, accel = _need(columns, m.speed, "speed"), _need(columns, m.accel, "acceleration")
    x, y = _need(columns, m.x, "x"), _need(columns, m.y, "y")
    ok = f"({i} IS NOT NULL AND {t} IS NOT NULL)"
    src_order = ", ".join(order_cols) if order_cols else None
    by_time = f"{t}, {src_order}" if src_order else t
    w_time = f"PARTITION BY {i} ORDER BY {by_time}"

    # stage 1: windows in source order and in time order
    items: list[str] = []
    want_dup = rules.duplicates or (clean and c.remove_duplicates)
    if rules.ordering and src_order:
        items.append(f"lag({t}) OVER (PARTITION BY {i} ORDER BY {src_order}) AS {_P}prev_t")
    if want_dup:
        dup_order = f" ORDER BY {src_order}" if src_order else ""
        items.append(f"row_number() OVER (PARTITION BY {i}, {t}{dup_order}) AS {_P}dup_rank")
    has_pos = (x is not None and y is not None) or (lat is not None and lon is not None)
    derived = rules.derived_from_positions and has_pos
    jumps = rules.max_jump_speed_mps is not None and has_pos
    near = rules.near_duplicate_s is not None and has_pos
    frozen = rules.frozen_min_speed_mps is not None and has_pos and speed is not None
    spikes = rules.speed_spikes and rules.max_abs_accel_mps2 is not None and speed is not None
    steps = derived or jumps or near or frozen or spikes

    neighbours: dict[tuple[str, int], str] = {}  # (column, offset) -> internal column

    def at(col: str, k: int) -> str:
        """A column k points later (k < 0: earlier) in the trajectory's time order; each
        (column, offset) is one window expression of the first stage, however often used."""
        if k == 0:
            return col
        if (col, k) not in neighbours:
            neighbours[(col, k)] = f"{_P}nb{len(neighbours)}"
        return neighbours[(col, k)]

    def dist(k0: int, k1: int) -> str:
        """Metres between the points k0 and k1 places from this one."""
        if x is not None and y is not None:
            return f"sqrt(pow({at(x, k1)} - {at(x, k0)}, 2) + pow({at(y, k1)} - {at(y, k0)}, 2))"
        assert lat is not None and lon is not None
        # equirectangular: exact enough over the metres between consecutive points
        return (
            f"6371008.8 * radians(sqrt(pow({at(lat, k1)} - {at(lat, k0)}, 2) + "
            f"pow(cos(radians({lat})) * ({at(lon, k1)} - {at(lon, k0)}), 2)))"
        )

    def dt(k0: int, k1: int) -> str:
        return f"(epoch_us({at(t, k1)}) - epoch_us({at(t, k0)})) / 1e6"

    # the steps to the previous and next point, and for the excursion rules the neighbours'
    # other steps too, from the neighbours' values fetched in one pass (one sort)
    steps_sql: list[str] = []
    if steps:
        steps_sql.append(f"{dt(-1, 0)} AS {_P}dt")
        steps_sql.append(f"{dt(0, 1)} AS {_P}dt_next")
        if has_pos:
            steps_sql.append(f"{dist(-1, 0)} AS {_P}dist")
            steps_sql.append(f"{dist(0, 1)} AS {_P}dist_next")
        if jumps or spikes:
            steps_sql.append(f"{dt(-2, -1)} AS {_P}dt_pp")
            steps_sql.append(f"{dt(1, 2)} AS {_P}dt_nn")
        if jumps:
            steps_sql.append(f"{dist(-2, -1)} AS {_P}dist_pp")
            steps_sql.append(f"{dist(1, 2)} AS {_P}dist_nn")
        if spikes:
            assert speed is not None
            for name, (k0, k1) in (("dv_pp", (-2, -1)), ("dv", (-1, 0)), ("dv_next", (0, 1))):
                steps_sql.append(f"{at(speed, k1)} - {at(speed, k0)} AS {_P}{name}")
            steps_sql.append(f"{at(speed, 2)} - {at(speed, 1)} AS {_P}dv_nn")
    items += [
        f"{'lead' if k > 0 else 'lag'}({col}, {abs(k)}) OVER ({w_time}) AS {name}"
        for (col, k), name in neighbours.items()
    ]
    stage = "src"
    if items:
        stage = p.add("w1", f"SELECT *, {', '.join(items)} FROM src")
    if steps_sql:
        stage = p.add("w1s", f"SELECT *, {', '.join(steps_sql)} FROM {stage}")
    if derived:
        stage = p.add(
            "w2",
            f"SELECT *, CASE WHEN {_P}dt > 0 THEN {_P}dist / {_P}dt END AS {_P}dspeed FROM {stage}",
        )
        stage = p.add(
            "w3",
            f"SELECT *, CASE WHEN {_P}dt > 0 THEN ({_P}dspeed - lag({_P}dspeed) OVER ({w_time})) "
            f"/ {_P}dt END AS {_P}daccel FROM {stage}",
        )
    # an excursion: the step into a point and the step out of it are both impossible (so the
    # point, not its neighbour, is wrong); at a trajectory's first (last) point the one step
    # it has, when the neighbour's other step is fine. <x>_in/_out: this point's steps;
    # <x>_in_p: the previous point's step in; <x>_out_n: the next point's step out
    exc: list[str] = []
    if jumps:
        vj = p.param("max_jump_speed", rules.max_jump_speed_mps)
        for name, d_, t_ in (
            ("j_in", "dist", "dt"),
            ("j_out", "dist_next", "dt_next"),
            ("j_in_p", "dist_pp", "dt_pp"),
            ("j_out_n", "dist_nn", "dt_nn"),
        ):
            exc.append(f"{_P}{t_} > 0 AND {_P}{d_} > {vj} * {_P}{t_} AS {_P}{name}")
    if spikes:
        am = p.param("spike_accel", rules.max_abs_accel_mps2)
        for name, v_, t_, sign_of in (
            ("s_in", "dv", "dt", None),
            ("s_out", "dv_next", "dt_next", "dv"),
            ("s_in_p", "dv_pp", "dt_pp", None),
            ("s_out_n", "dv_nn", "dt_nn", "dv_next"),
        ):
            turn = f" AND sign({_P}{sign_of}) IS DISTINCT FROM sign({_P}{v_})" if sign_of else ""
            exc.append(f"{_P}{t_} > 0 AND abs({_P}{v_}) > {am} * {_P}{t_}{turn} AS {_P}{name}")
    if exc:
        stage = p.add("x1", f"SELECT *, {', '.join(exc)} FROM {stage}")

    def excursion(a: str) -> str:
        i_, o_ = f"{_P}{a}_in", f"{_P}{a}_out"
        return (
            f"coalesce({ok} AND (({i_} AND {o_}) "
            f"OR ({_P}dt IS NULL AND {o_} AND NOT coalesce({o_}_n, false)) "
            f"OR ({_P}dt_next IS NULL AND {i_} AND NOT coalesce({i_}_p, false))"
            "), false)"
        )

    # stage 2: one boolean per rule
    flags: dict[str, str] = {}
    outlier_rules: list[str] = []
    if r.bounds is not None and lat is not None and lon is not None:
        la0, la1 = p.param("lat_min", r.bounds[0]), p.param("lat_max", r.bounds[1])
        lo0, lo1 = p.param("lon_min", r.bounds[2]), p.param("lon_max", r.bounds[3])
        flags["bounds"] = (
            f"coalesce({lat} NOT BETWEEN {la0} AND {la1} OR {lon} NOT BETWEEN {lo0} AND {lo1}, false)"
        )
        outlier_rules.append("bounds")
    if rules.max_speed_mps is not None:
        vmax = p.param("max_speed", rules.max_speed_mps)
        if speed is not None:
            flags["speed"] = f"coalesce({speed} < 0 OR {speed} > {vmax}, false)"
            outlier_rules.append("speed")
        if derived:
            flags["derived_speed"] = f"coalesce({_P}dspeed > {vmax}, false)"
            outlier_rules.append("derived_speed")
    if rules.max_abs_accel_mps2 is not None:
        amax = p.param("max_accel", rules.max_abs_accel_mps2)
        if accel is not None:
            flags["accel"] = f"coalesce(abs({accel}) > {amax}, false)"
            outlier_rules.append("accel")
        if derived:
            flags["derived_accel"] = f"coalesce(abs({_P}daccel) > {amax}, false)"
            outlier_rules.append("derived_accel")
    if rules.ordering and src_order:
        flags["ordering"] = f"coalesce({ok} AND {t} < {_P}prev_t, false)"
    if want_dup:
        flags["duplicates"] = f"coalesce({ok} AND {_P}dup_rank > 1, false)"
    if jumps:
        flags["jumps"] = excursion("j")
    if spikes:
        flags["speed_spikes"] = excursion("s")
    if near:
        ns = p.param("near_s", rules.near_duplicate_s)
        nm = p.param("near_m", rules.near_duplicate_m)
        flags["near_duplicates"] = (
            f"coalesce({ok} AND {_P}dt > 0 AND {_P}dt <= {ns} AND {_P}dist <= {nm}, false)"
        )
    if frozen:
        fv = p.param("frozen_speed", rules.frozen_min_speed_mps)
        fm = p.param("frozen_step", rules.frozen_max_step_m)
        not_near = f" AND {_P}dt > {p.param('near_s', rules.near_duplicate_s)}" if near else ""
        flags["frozen"] = (
            f"coalesce({ok} AND {_P}dt > 0{not_near} AND {_P}dist <= {fm} "
            f"AND {speed} >= {fv}, false)"
        )
    outlier = " OR ".join(f"{_P}{n}" for n in outlier_rules) or "false"
    if flags:
        flag_items = ", ".join(f"{sql} AS {_P}{n}" for n, sql in flags.items())
        stage = p.add("f1", f"SELECT *, {flag_items} FROM {stage}")
    p.flags = stage = p.add("flags", f"SELECT *, ({outlier}) AS {_P}outlier FROM {stage}")
    for n in flags:
        if n != "duplicates" or rules.duplicates:
            p.stat_flags[n] = f"count_if({_P}{n})"
    if outlier_rules:
        p.stat_flags["outliers"] = f"count_if({_P}outlier)"
    if rules.ordering and not src_order:
        p.notes.append("ordering not evaluated: the relation has no source order")

    if not clean:
        p.final = stage
        return p

    # stage 3: removal
    drop: list[str] = []
    if c.remove_duplicates:
        drop.append(f"{_P}duplicates")
        p.stat_removed["duplicates"] = f"count_if({_P}duplicates)"
    if c.remove_outliers and outlier_rules:
        not_dup = f" AND NOT {_P}duplicates" if c.remove_duplicates else ""
        drop.append(f"{_P}outlier")
        p.stat_removed["outliers"] = f"count_if({_P}outlier{not_dup})"
    if drop:
        stage = p.add("kept", f"SELECT * FROM {stage} WHERE NOT ({' OR '.join(drop)})")

    # stage 4: segments (gap detection; smoothing never spans a gap either)
    sm = c.smoothing
    imp = r.cfg.impute
    if c.detect_gaps.enabled or sm.enabled or imp.enabled:
        gap = p.param("max_gap", r.max_gap_s)
        stage = p.add(
            "g1",
            f"SELECT *, (epoch_us({t}) - epoch_us(lag({t}) OVER ({w_time}))) / 1e6 AS {_P}gap_dt "
            f"FROM {stage}",
        )
        stage = p.add(
            "g2",
            f"SELECT *, CASE WHEN {ok} THEN sum(CASE WHEN {_P}gap_dt > {gap} THEN 1 ELSE 0 END) "
            f"OVER ({w_time} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) END AS {_P}seg "
            f"FROM {stage}",
        )
        if c.detect_gaps.enabled:
            p.stat_out[("gaps", "gaps")] = f"count_if({ok} AND {_P}gap_dt > {gap})"
            p.stat_out[("gaps", "segments")] = f"count(DISTINCT ({i}, {_P}seg)) FILTER ({ok})"
            seg_type = "INTEGER"
            p.output.append(f"CAST({_P}seg AS {seg_type}) AS segment")

    # stage 4b: linear imputation of short NULL runs within a segment
    if imp.enabled:
        stage = _impute_stage(p, stage, columns, m, imp, i, t, by_time, ok)

    # stage 5: Savitzky-Golay smoothing over rows ordered by time within a segment
    if sm.enabled:
        cols = sm.columns or m.position_columns
        if not cols:
            raise ConfigError("smoothing has no columns: the mapping has no position columns")
        for col in cols:
            check_measure("cleaning.smoothing.columns", col, columns, m, "the data")
        weights = savgol_weights(sm.window, sm.order)
        h = sm.window // 2
        ws = f"PARTITION BY {i}, {_P}seg ORDER BY {by_time}"

        def sg(col: str) -> str:
            q = quote_ident(col)
            terms = []
            for k, w in zip(range(-h, h + 1), weights, strict=True):
                # weights are derived from validated integers; repr keeps every bit
                val = (
                    q
                    if k == 0
                    else (f"lag({q}, {-k}) OVER ({ws})" if k < 0 else f"lead({q}, {k}) OVER ({ws})")
                )
                terms.append(f"({float(w)!r}) * {val}")
            return "(" + " + ".join(terms) + ")"

        exprs = {col: sg(col) for col in cols}
        repl = ", ".join(
            f"CASE WHEN {ok} THEN coalesce({e}, {quote_ident(col)}) ELSE {quote_ident(col)} END "
            f"AS {quote_ident(col)}"
            for col, e in exprs.items()
        )
        any_smoothed = " OR ".join(f"{e} IS NOT NULL" for e in exprs.values())
        stage = p.add(
            "sm",
            f"SELECT * REPLACE ({repl}), coalesce({ok} AND ({any_smoothed}), false) AS {_P}smoothed "
            f"FROM {stage}",
        )
        p.stat_out[("smoothing", "smoothed")] = f"count_if({_P}smoothed)"
    p.final = stage
    return p


def impute_columns(m: TrajectoryMapping, imp: Impute) -> list[str]:
    """The columns imputation fills: the configured ones, else position, speed and heading."""
    if imp.columns is not None:
        return list(imp.columns)
    return [*m.position_columns, *(c for c in (m.speed, m.heading) if c is not None)]


def _impute_stage(
    p: _Plan,
    stage: str,
    columns: dict[str, str],
    m: TrajectoryMapping,
    imp: Impute,
    i: str,
    t: str,
    by_time: str,
    ok: str,
) -> str:
    """Fill a NULL value linearly in time between the known values around it, when both are in
    the same trajectory and gap-free segment and the hole is short (max_gap_samples missing
    samples, max_gap_s between the known values); the heading the short way round the circle.
    Adds a boolean `imputed` and counts imputed rows and values and the NULLs left."""
    cols = impute_columns(m, imp)
    for col in cols:
        check_measure("impute.columns", col, columns, m, "the data")
    ws = f"PARTITION BY {i}, {_P}seg ORDER BY {by_time}"
    stage = p.add(
        "im1",
        f"SELECT *, row_number() OVER ({ws}) AS {_P}rn, epoch_us({t}) AS {_P}tu FROM {stage}",
    )
    items = []
    for k, col in enumerate(cols):
        q = quote_ident(col)
        known = f"CASE WHEN {q} IS NOT NULL THEN {{'rn': {_P}rn, 'tu': {_P}tu, 'v': {q}}} END"
        items.append(
            f"CASE WHEN {q} IS NULL THEN last_value({known} IGNORE NULLS) OVER ({ws} "
            f"ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) END AS {_P}ip{k}"
        )
        items.append(
            f"CASE WHEN {q} IS NULL THEN first_value({known} IGNORE NULLS) OVER ({ws} "
            f"ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) END AS {_P}in{k}"
        )
    stage = p.add("im2", f"SELECT *, {', '.join(items)} FROM {stage}")
    conds = []
    if imp.max_gap_samples is not None:
        conds.append(f"{{n}}.rn - {{p}}.rn - 1 <= {p.param('imp_samples', imp.max_gap_samples)}")
    if imp.max_gap_s is not None:
        conds.append(f"({{n}}.tu - {{p}}.tu) / 1e6 <= {p.param('imp_seconds', imp.max_gap_s)}")
    repl, filled = [], []
    for k, col in enumerate(cols):
        q, pv, nv = quote_ident(col), f"{_P}ip{k}", f"{_P}in{k}"
        limit = " AND ".join(c.format(n=nv, p=pv) for c in conds)
        frac = f"({_P}tu - {pv}.tu) / nullif({nv}.tu - {pv}.tu, 0)"
        if col == m.heading:
            turn = f"((({nv}.v - {pv}.v) % 360 + 540) % 360 - 180)"
            value = f"((({pv}.v + {turn} * {frac}) % 360 + 360) % 360)"
        else:
            value = f"({pv}.v + ({nv}.v - {pv}.v) * {frac})"
        cond = f"{ok} AND {q} IS NULL AND {pv} IS NOT NULL AND {nv} IS NOT NULL AND {limit}"
        filled.append(f"{_P}if{k}")
        repl.append((col, q, cond, value, columns[col]))
    flags = ", ".join(
        f"coalesce({cond}, false) AS {_P}if{k}" for k, (_, _, cond, _, _) in enumerate(repl)
    )
    stage = p.add("im3", f"SELECT *, {flags} FROM {stage}")
    replace = ", ".join(
        f"CASE WHEN {_P}if{k} THEN CAST({value} AS {typ}) ELSE {q} END AS {q}"
        for k, (_, q, _, value, typ) in enumerate(repl)
    )
    stage = p.add(
        "im4",
        f"SELECT * REPLACE ({replace}), ({' OR '.join(filled)}) AS {_P}imputed FROM {stage}",
    )
    p.stat_out[("impute", "imputed")] = f"count_if({_P}imputed)"
    p.stat_out[("impute", "values")] = " + ".join(f"count_if({f})" for f in filled)
    p.stat_out[("impute", "missing")] = " + ".join(
        f"count_if({ok} AND {quote_ident(c)} IS NULL)" for c in cols
    )
    p.output.append(f"{_P}imputed AS {IMPUTED_COLUMN}")
    return stage


def _record_plan(
    columns: dict[str, str],
    m: RecordMapping,
    r: _Resolved,
    order_cols: Sequence[str],
    *,
    clean: bool,
) -> _Plan:
    """Exact duplicates over every column but the bookkeeping (and internal) ones."""
    p = _Plan()
    rules, c = r.cfg.rules, r.cfg.cleaning
    src_order = ", ".join(order_cols) if order_cols else None
    key = [quote_ident(n) for n in columns if n not in m.ignore and not n.startswith(_P)]
    stage = "src"
    if rules.duplicates or (clean and c.remove_duplicates):
        o = f" ORDER BY {src_order}" if src_order else ""
        stage = p.add(
            "w1",
            f"SELECT *, row_number() OVER (PARTITION BY {', '.join(key)}{o}) > 1 AS {_P}duplicates "
            f"FROM {stage}",
        )
        if rules.duplicates:
            p.stat_flags["duplicates"] = f"count_if({_P}duplicates)"
    p.flags = stage
    if clean and c.remove_duplicates:
        p.stat_removed["duplicates"] = f"count_if({_P}duplicates)"
        stage = p.add("kept", f"SELECT * FROM {stage} WHERE NOT {_P}duplicates")
    p.final = stage
    return p


def _plan(
    con: duckdb.DuckDBPyConnection,
    relation_sql: str,
    mapping: Mapping,
    cfg: QualityConfig,
    order_cols: Sequence[str],
    *,
    clean: bool,
) -> tuple[_Plan, _Resolved, dict[str, str]]:
    columns = _describe(con, relation_sql)
    res = _resolve(cfg, mapping)
    # the rules' source order: the mapping's columns, then the storage order of the rows;
    # without a storage order the order inside an object is unknown, so there is none
    storage = list(order_cols)
    order = [quote_ident(c) for c in mapping.order if c in columns] + storage if storage else []
    if isinstance(mapping, TrajectoryMapping):
        plan = _trajectory_plan(columns, mapping, res, order, clean=clean)
    else:
        if clean and cfg.trajectory_only:
            raise ConfigError(
                f"{', '.join(cfg.trajectory_only)} applies to trajectories only; these records "
                "are not trajectory points"
            )
        plan = _record_plan(columns, mapping, res, order, clean=clean)
    plan.ctes.insert(0, ("src", f"SELECT * FROM {relation_sql}"))
    plan.order = ", ".join(storage) or None  # output rows keep their storage order
    return plan, res, columns


def _stats_sql(plan: _Plan) -> tuple[str, list[tuple[str, str]]]:
    """One query returning every count; the keys name the (rule, action) of each column."""
    keys: list[tuple[str, str]] = [("rows", "input")]
    sel_in = ["count(*)"]
    for rule, expr in plan.stat_flags.items():
        keys.append((rule, "flagged"))
        sel_in.append(expr)
    for rule, expr in plan.stat_removed.items():
        keys.append((rule, "removed"))
        sel_in.append(expr)
    parts = [f"(SELECT [{', '.join(f'CAST({e} AS BIGINT)' for e in sel_in)}] FROM {plan.flags})"]
    if plan.final != plan.flags or plan.stat_out:
        keys.append(("rows", "output"))
        out = ["count(*)", *plan.stat_out.values()]
        keys.extend(plan.stat_out)
        parts.append(
            f"(SELECT [{', '.join(f'CAST({e} AS BIGINT)' for e in out)}] FROM {plan.final})"
        )
    return f"{plan.with_clause()}\nSELECT {' || '.join(parts)}", keys


def _run_stats(con: duckdb.DuckDBPyConnection, plan: _Plan, res: _Resolved) -> QualityStats:
    sql, keys = _stats_sql(plan)
    row = con.execute(sql, plan.params_for(sql)).fetchone()
    values = list(row[0]) if row else [0] * len(keys)
    counts = {k: int(v or 0) for k, v in zip(keys, values, strict=True)}
    stats = QualityStats(
        rows_in=counts[("rows", "input")],
        rows_out=counts.get(("rows", "output")),
        counts=counts,
        notes=list(plan.notes),
        config_json=res.to_json(),
    )
    return stats


def evaluate(
    con: duckdb.DuckDBPyConnection,
    relation_sql: str,
    mapping: Mapping,
    cfg: QualityConfig | None = None,
    *,
    order_by: Sequence[str] = (),
) -> QualityStats:
    """Count rows and rows failing each rule over a relation (a FROM item: view, table,
    `read_parquet(...)` or a parenthesised query). Nothing is changed.

    order_by: quoted columns of the relation giving the storage order of its rows; the
    source order (used by the ordering rule and to pick the original among duplicates) is the
    mapping's order columns, then these. Without them the ordering rule is not evaluated
    (noted in the result).
    """
    plan, res, _ = _plan(con, relation_sql, mapping, cfg or QualityConfig(), order_by, clean=False)
    return _run_stats(con, plan, res)


def _parquet_relation(files: Sequence[Path], gone: str | None = None) -> str:
    """The files in order, with their index in the list and the row number inside the file
    (the source order), and no hive columns (they live in directory names, not in files).
    gone: a table of (file, source key) pairs whose rows the lake no longer shows
    (`state.deletes.gone_table`, the files named as in `files`): those rows are left out."""
    names = [str(f) for f in files]
    cut = f" {deletes.gone_join(gone, f'{_P}file')}" if gone else ""
    return (
        f"(SELECT o.* EXCLUDE ({_P}file, file_row_number), "
        f"list_position({list_literal(names)}, o.{_P}file) AS {_P}o_file, "
        f"o.file_row_number AS {_P}o_row "
        f"FROM read_parquet({list_literal(names)}, filename = '{_P}file', "
        f"file_row_number = true, hive_partitioning = false) AS o{cut})"
    )


def evaluate_files(
    con: duckdb.DuckDBPyConnection,
    files: Sequence[Path],
    mapping: Mapping,
    cfg: QualityConfig | None = None,
    gone: str | None = None,
) -> QualityStats:
    """evaluate() over Parquet files, in source order (file list order, then row in file);
    gone: the rows deleted from them to leave out (see _parquet_relation)."""
    if not files:
        raise CatalogError("no Parquet files to evaluate")
    return evaluate(
        con, _parquet_relation(files, gone), mapping, cfg, order_by=(f"{_P}o_file", f"{_P}o_row")
    )


def apply(
    con: duckdb.DuckDBPyConnection,
    input_files: Sequence[Path],
    output_path: Path,
    mapping: Mapping,
    cfg: QualityConfig | None = None,
    *,
    row_group_size: int | None = None,
) -> QualityStats:
    """Evaluate the rules over one partition's Parquet files and write the cleaned rows to
    output_path (zstd Parquet, atomically: a temporary name in the same directory, then
    os.replace). Returns counts per rule and action.

    Rows keep their source order (file order, then row in file); columns keep their names and
    types; detect_gaps adds an INTEGER `segment` column (0, 1, ... per trajectory, NULL when
    id or time is NULL). With no cleaning operation enabled the rows are copied as they are
    (an ingest that cleans nothing should rather call evaluate_files() and keep its files).
    """
    cfg = cfg or QualityConfig()
    if not input_files:
        raise CatalogError("no Parquet files to clean")
    rel = _parquet_relation(input_files)
    order = (f"{_P}o_file", f"{_P}o_row")
    plan, res, columns = _plan(con, rel, mapping, cfg, order, clean=True)
    stats = _run_stats(con, plan, res)

    # the output needs only the flags that cleaning acts on: plan it again without the others
    c = cfg.cleaning
    out_cfg = cfg.model_copy(
        update={
            "rules": cfg.rules.model_copy(
                update={
                    "ordering": False,
                    "duplicates": c.remove_duplicates,
                    # counted only, never acted on: not needed for the output
                    "max_jump_speed_mps": None,
                    "speed_spikes": False,
                    "near_duplicate_s": None,
                    "frozen_min_speed_mps": None,
                }
                | (
                    {}
                    if c.remove_outliers
                    else {
                        "bounds": None,
                        "max_speed_mps": None,
                        "max_abs_accel_mps2": None,
                        "derived_from_positions": False,
                    }
                )
            )
        }
    )
    out, _, _ = _plan(con, rel, mapping, out_cfg, order, clean=True)
    query = _output_query(con, out, columns)
    if cleans(cfg):
        query += f" ORDER BY {out.order}"  # windows shuffle rows; a plain scan keeps the order
    options = "FORMAT parquet, COMPRESSION zstd"
    if row_group_size is not None:
        options += f", ROW_GROUP_SIZE {int(row_group_size)}"
    # the ingest's connections run with preserve_insertion_order = false; a plain scan keeps
    # the storage order only with it on (restored afterwards)
    with replacing(output_path) as tmp, temporary_setting(con, "preserve_insertion_order", True):
        con.execute(
            f"COPY ({query}) TO {quote_literal(str(tmp))} ({options})", out.params_for(query)
        )
    if stats.rows_out is None:
        stats.rows_out = stats.rows_in
        stats.counts[("rows", "output")] = stats.rows_in
    return stats


def _output_query(con: duckdb.DuckDBPyConnection, out: _Plan, columns: dict[str, str]) -> str:
    """The cleaned rows: the input's columns (internal ones dropped), then the added ones
    (segment, imputed) replacing input columns of the same name."""
    internal = _internal_columns(con, out)
    added = [o.rsplit(" AS ", 1)[1] for o in out.output]
    drop = [quote_ident(n) for n in internal] + [quote_ident(n) for n in added if n in columns]
    items = ["* EXCLUDE (" + ", ".join(drop) + ")", *out.output]
    return f"{out.with_clause()}\nSELECT {', '.join(items)} FROM {out.final}"


def clean_relation(
    con: duckdb.DuckDBPyConnection,
    relation_sql: str,
    mapping: Mapping,
    cfg: QualityConfig,
    *,
    order_by: Sequence[str],
) -> tuple[str, dict[str, Any], QualityStats]:
    """The cleaning of apply() over any relation with a storage order (order_by: columns named
    with the internal prefix, so they are dropped from the output): (query, parameters,
    counts). The query returns the cleaned rows in storage order; the caller runs it."""
    plan, res, columns = _plan(con, relation_sql, mapping, cfg, order_by, clean=True)
    stats = _run_stats(con, plan, res)
    query = f"{_output_query(con, plan, columns)} ORDER BY {', '.join(order_by)}"
    if stats.rows_out is None:
        stats.rows_out = stats.rows_in
        stats.counts[("rows", "output")] = stats.rows_in
    return query, plan.params_for(query), stats


@dataclass(frozen=True)
class FlagQuery:
    """Every input row with one boolean `rule_<name>` per rule evaluated (see flag_rows)."""

    sql: str
    params: dict[str, Any]
    rules: list[str]


def flag_rows(
    con: duckdb.DuckDBPyConnection,
    relation_sql: str,
    mapping: Mapping,
    cfg: QualityConfig | None = None,
    *,
    order_by: Sequence[str] = (),
) -> FlagQuery:
    """The rows of a relation with the flags evaluate() counts, one column per rule: the same
    plan as the counts, so a bench or a caller can see *which* rows fail which rule."""
    plan, _, columns = _plan(
        con, relation_sql, mapping, cfg or QualityConfig(), order_by, clean=False
    )
    names = [*plan.stat_flags]
    cols = [quote_ident(c) for c in columns]
    flags = [
        f"{_P}{'outlier' if n == 'outliers' else n} AS {quote_ident('rule_' + n)}" for n in names
    ]
    sql = f"{plan.with_clause()}\nSELECT {', '.join(cols + flags)} FROM {plan.flags}"
    return FlagQuery(sql, plan.params_for(sql), names)


def _internal_columns(con: duckdb.DuckDBPyConnection, plan: _Plan) -> list[str]:
    """Internal columns present at the final stage (every name with the internal prefix)."""
    sql = f"{plan.with_clause()}\nSELECT * FROM {plan.final} LIMIT 0"
    cur = con.execute(sql, plan.params_for(sql))
    return [d[0] for d in cur.description or [] if d[0].startswith(_P)]


# -- catalog recording ------------------------------------------------------------------------
def record(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    source: str,
    message_type: str,
    partition_key: str,
    stats: QualityStats,
    cfg: QualityConfig | None = None,
) -> None:
    """Store one partition's counts (zeros too: "evaluated and clean" differs from "not
    evaluated") and the run's resolved configuration. Call inside the ingest's catalog write
    transaction, next to the partition row, so both commit or neither does."""
    now = now_utc()
    con.execute(
        "DELETE FROM quality_stats WHERE run_id = ? AND partition_key = ?", [run_id, partition_key]
    )
    rows = [
        [run_id, source, message_type, partition_key, rule, action, int(n), now]
        for (rule, action), n in stats.counts.items()
    ]
    if rows:
        con.executemany("INSERT INTO quality_stats VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    config_json = stats.config_json or (cfg or QualityConfig()).model_dump_json()
    con.execute("INSERT OR REPLACE INTO quality_configs VALUES (?, ?)", [run_id, config_json])


def cleans(cfg: QualityConfig) -> bool:
    """Whether any cleaning operation is on (else the partition's files are kept as written)."""
    c = cfg.cleaning
    return (
        c.remove_duplicates
        or c.remove_outliers
        or c.detect_gaps.enabled
        or c.smoothing.enabled
        or cfg.impute.enabled
    )


def process_partition(
    con: duckdb.DuckDBPyConnection,
    files: Sequence[Path],
    out_dir: Path,
    source: str,
    message_type: str,
    cfg: QualityConfig,
    *,
    row_group_size: int | None = None,
) -> tuple[list[Path], QualityStats]:
    """The ingest's quality step for one converted partition: count the rules over its files,
    and when cleaning is on, replace them with one cleaned file. Returns (files, stats)."""
    mapping = mapping_for(source, message_type)
    if not files:
        return [], QualityStats(rows_in=0, rows_out=0)
    if not cleans(cfg):
        return list(files), evaluate_files(con, files, mapping, cfg)
    cleaned = out_dir / "quality-cleaned.parquet"
    stats = apply(con, files, cleaned, mapping, cfg, row_group_size=row_group_size)
    for f in files:
        if f != cleaned:
            f.unlink()
    return [cleaned], stats


def has_segments(con: duckdb.DuckDBPyConnection, source: str, message_type: str) -> bool:
    """Did any ingest write gap segments for this (source, type)? Then its view shows
    `segment` (NULL in files written without detect_gaps)."""
    row = con.execute(
        "SELECT count(*) FROM quality_stats WHERE source = ? AND message_type = ? "
        "AND rule = 'gaps' AND action = 'segments'",
        [source, message_type],
    ).fetchone()
    return bool(row and row[0])
