"""Frames read only what is asked for (issue 16): column pushdown for canonical and socrata
naming, the ML consumer's 19 socrata columns, filters and time windows on columns not selected,
NGSIM frames with columns. Values are always compared with the catalog's own views."""

from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dask
import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cvcatalog import catalog as catalog_module
from cvcatalog.catalog import Catalog, to_socrata
from cvcatalog.exceptions import CatalogError, ConfigError, MissingDataWarning, QueryError
from cvcatalog.quality.config import Impute, QualityConfig
from cvcatalog.read import experiments as experiments_module
from cvcatalog.read.experiments import Experiment, ExperimentConfig
from cvcatalog.sandbox.ngsim import generate_ngsim
from cvcatalog.sandbox.replica import seed_replica
from cvcatalog.schemas import SCHEMAS
from cvcatalog.schemas.socrata import socrata_plan

D1, D2 = date(2021, 4, 1), date(2021, 4, 2)

#: the columns the ML pipeline's first cleaner reads (issue 16)
ML_COLUMNS = [
    "metadata_generatedAt",
    "metadata_recordType",
    "metadata_serialId_streamId",
    "metadata_serialId_bundleSize",
    "metadata_serialId_bundleId",
    "metadata_serialId_recordId",
    "metadata_serialId_serialNumber",
    "metadata_receivedAt",
    "coreData_id",
    "coreData_secMark",
    "coreData_position_lat",
    "coreData_position_long",
    "coreData_accuracy_semiMajor",
    "coreData_accuracy_semiMinor",
    "coreData_elevation",
    "coreData_accelset_accelYaw",
    "coreData_speed",
    "coreData_heading",
    "coreData_position",
]
#: what identifies a row in both namings
KEY = ["metadata_serialId_streamId", "metadata_serialId_recordId", "metadata_serialId_serialNumber",
       "metadata_generatedAt"]  # fmt: skip
CANON_KEY = ["serial_stream_id", "serial_record_id", "serial_number", "generated_at"]


@pytest.fixture(scope="module")
def cat(module_s3: Any, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    seed_replica(module_s3, D1, D2, sources=["wydot"], message_types=["BSM"], records_per_hour=12,
                 files_per_hour=2, malformed_per_day=2)  # fmt: skip
    c = Catalog(tmp_path_factory.mktemp("frames") / "catalog")
    s = c.ingest("wydot", "BSM", D1, D2, timezone="UTC", rate_limit=0, max_workers=4)
    assert s.ok, s.as_dict()
    return c


@pytest.fixture
def filters() -> list[Any]:
    """The `filters=` of the reads the `reads` fixture records."""
    return []


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch, filters: list[Any]) -> Iterator[list[list[str] | None]]:
    """The `columns=` of every Parquet read a frame's pieces make (synchronous scheduler)."""
    seen: list[list[str] | None] = []
    real = pq.read_table

    def spy(*args: Any, **kwargs: Any) -> Any:
        cols = kwargs.get("columns")
        seen.append(None if cols is None else list(cols))
        filters.append(kwargs.get("filters"))
        return real(*args, **kwargs)

    monkeypatch.setattr(catalog_module.pq, "read_table", spy)
    with dask.config.set(scheduler="sync"):
        yield seen


def _sorted(df: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    return df.sort_values(key, kind="stable").reset_index(drop=True)


def _text(s: pd.Series) -> list[str | None]:
    return [None if _null(v) else str(v) for v in s.astype(object)]


def _null(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):  # a list or array value
        return False


def _view(cat: Catalog, view: str, columns: list[str], where: str = "", params: Any = None) -> Any:
    cols = ", ".join(f'"{c}"' for c in columns)
    return cat.query(f"select {cols} from {view} {where}", params)


def test_the_19_socrata_columns_equal_the_view(cat: Catalog) -> None:
    frame = cat.to_dask("wydot", "BSM", D1, D2, columns=ML_COLUMNS, naming="socrata")
    assert list(frame.columns) == ML_COLUMNS
    full = cat.to_dask("wydot", "BSM", D1, D2, naming="socrata")
    # the same dtypes as those columns of the full socrata frame
    assert dict(frame.dtypes) == {c: full.dtypes[c] for c in ML_COLUMNS}
    # the values of the whole socrata SQL run over the canonical frame (to_socrata)
    whole = to_socrata(cat.to_dask("wydot", "BSM", D1, D2), SCHEMAS[("wydot", "BSM")])
    old = whole[ML_COLUMNS].compute()
    got = frame.compute()
    assert dict(got.dtypes) == dict(frame.dtypes)  # meta is what the pieces give
    assert str(got.coreData_speed.dtype) == "float64"
    assert str(got.coreData_secMark.dtype).lower().startswith(("int", "uint"))
    assert "datetime64" in str(got.metadata_generatedAt.dtype)
    want = _view(cat, "wydot_bsm_socrata", ML_COLUMNS)
    assert len(got) == len(want) > 0
    a, b = _sorted(got, KEY), _sorted(want[ML_COLUMNS], KEY)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    pd.testing.assert_frame_equal(a, _sorted(old, KEY), check_dtype=False)
    # the consumer's WKT: POINT (lon lat)
    lon_lat = a.coreData_position.str.extract(r"^POINT \((\S+) (\S+)\)$").astype(float)
    assert (lon_lat[0] == a.coreData_position_long).all()
    assert (lon_lat[1] == a.coreData_position_lat).all()


def test_socrata_reads_only_the_source_columns(
    cat: Catalog, reads: list[Any], filters: list[Any]
) -> None:
    plan = socrata_plan(SCHEMAS[("wydot", "BSM")])
    frame = cat.to_dask("wydot", "BSM", D1, D2, columns=["coreData_speed", "coreData_position"],
                        naming="socrata")  # fmt: skip
    frame.compute()
    assert reads and all(
        set(r or ()) == {"speed_mps", "latitude", "longitude", *plan.always} for r in reads
    )
    reads.clear()
    filters.clear()
    # the full frame: Dask's optimizer narrows the columns to what the aggregate uses
    full = cat.to_dask("wydot", "BSM", D1, D2, naming="socrata")
    agg = full.groupby("coreData_id")["coreData_speed"].agg(["count", "mean"]).compute()
    # two renames: the view's row filter (invalid_reason IS NULL) goes into the read
    assert reads and all(set(r or ()) == {"vehicle_id", "speed_mps"} for r in reads)
    assert plan.null_filter == tuple(plan.always) == ("invalid_reason",)
    assert filters and all("invalid_reason" in str(f) for f in filters)
    want = cat.query(
        'select "coreData_id", count("coreData_speed") as n, avg("coreData_speed") as m '
        "from wydot_bsm_socrata group by 1"
    ).set_index("coreData_id")
    assert len(agg) == len(want)
    assert (agg["count"] == want.n.reindex(agg.index)).all()
    assert ((agg["mean"] - want.m.reindex(agg.index)).abs() < 1e-9).all()


def test_canonical_reads_only_the_asked_columns(cat: Catalog, reads: list[Any]) -> None:
    cols = ["vehicle_id", "speed_mps", "latitude"]
    got = cat.to_dask("wydot", "BSM", D1, D2, columns=cols).compute()
    assert reads and all(r == cols for r in reads)
    want = _view(cat, "wydot_bsm", cols)
    pd.testing.assert_frame_equal(_sorted(got, cols), _sorted(want, cols), check_dtype=False)


def test_every_socrata_column_equals_the_view(cat: Catalog) -> None:
    """Each column computed alone (its own pruned SQL) equals the view's column."""
    plan = socrata_plan(SCHEMAS[("wydot", "BSM")])
    key = cat.to_dask("wydot", "BSM", D1, D2, columns=KEY, naming="socrata").compute()
    want = _sorted(_view(cat, "wydot_bsm_socrata", plan.names), KEY)
    for name in plan.names:
        if name in KEY:
            continue
        one = cat.to_dask("wydot", "BSM", D1, D2, columns=[*KEY, name], naming="socrata")
        got = _sorted(one.compute(), KEY)
        assert len(got) == len(key)
        # dask hands date objects over as strings: compare values as text
        assert _text(got[name]) == _text(want[name]), name


def test_filters_on_columns_not_selected(cat: Catalog, reads: list[Any]) -> None:
    where = "where heading_deg > 180 and date = ?"
    soc = cat.to_dask("wydot", "BSM", D1, D2, columns=["coreData_id", "coreData_speed"],
                      naming="socrata", filters=[("heading_deg", ">", 180.0), ("date", "=", D1)])  # fmt: skip
    got = soc.compute()
    assert list(got.columns) == ["coreData_id", "coreData_speed"]
    want = _view(
        cat, "wydot_bsm", ["vehicle_id", "speed_mps"], where + " and invalid_reason is null", [D1]
    )
    assert len(got) == len(want) > 0
    assert sorted(got.coreData_speed) == sorted(want.speed_mps)
    assert reads and all("heading_deg" not in (r or ()) for r in reads)
    canon = cat.to_dask("wydot", "BSM", D1, D2, columns=["speed_mps"],
                        filters=[("heading_deg", ">", 180.0), ("date", "=", D1)]).compute()  # fmt: skip
    assert list(canon.columns) == ["speed_mps"]
    n = cat.query(f"select count(*) as n from wydot_bsm {where}", [D1]).n[0]
    assert len(canon) == n


def test_time_window_without_the_time_column(cat: Catalog) -> None:
    window = "generated_at >= '2021-04-01 06:00:00+00' and generated_at < '2021-04-02 06:00:00+00'"
    canon = cat.to_dask("wydot", "BSM", D1, D1, timezone="America/Denver", columns=["speed_mps"])
    assert canon.npartitions == 2 and list(canon.columns) == ["speed_mps"]
    got = canon.compute()
    want = cat.query(f"select speed_mps from wydot_bsm where {window}")
    assert sorted(got.speed_mps) == sorted(want.speed_mps) and len(got) > 0
    soc = cat.to_dask("wydot", "BSM", D1, D1, timezone="America/Denver",
                      columns=["coreData_speed"], naming="socrata").compute()  # fmt: skip
    want_soc = cat.query(
        f"select speed_mps from wydot_bsm where {window} and invalid_reason is null"
    )
    assert list(soc.columns) == ["coreData_speed"]
    assert sorted(soc.coreData_speed) == sorted(want_soc.speed_mps)


def test_unknown_columns_are_one_clear_error(cat: Catalog) -> None:
    with pytest.raises(ConfigError, match=r"unknown column\(s\) coreData_nope.*valid: dataType"):
        cat.to_dask("wydot", "BSM", D1, D2, columns=["coreData_id", "coreData_nope"],
                    naming="socrata")  # fmt: skip
    with pytest.raises(ConfigError, match=r"unknown column\(s\) speed .*valid: .*speed_mps"):
        cat.to_dask("wydot", "BSM", D1, D2, columns=["speed"])


def test_mistaken_filters_are_one_clear_error_from_to_dask(cat: Catalog) -> None:
    """A filter naming no column, an unknown op, a value of another type, or pyarrow's OR
    form is a ConfigError when the frame is made; it was a pyarrow error (a schema dump, or
    'too many values to unpack') when it was computed."""
    cases = [
        ([("speed", ">", 20)], r"unknown column 'speed' in filters for wydot_bsm .*valid: .*speed_mps"),
        ([("speed_mps", "~", 1)], r"unknown filter operator '~' .*one of =, ==, !="),
        ([("speed_mps", ">", "fast")], r"does not fit speed_mps \(double\)"),
        ([("vehicle_id", "=", 5)], r"does not fit vehicle_id \(string\)"),
        ([[("speed_mps", ">", 30)], [("speed_mps", "<", 5)]], r"for an OR, filter the frame"),
        ([("speed_mps", ">")], r"a filter is a \(column, op, value\) tuple"),
        ([("vehicle_id", "in", "AB")], r"^filter \('vehicle_id', 'in', 'AB'\): 'in' takes a list"),
        ([("vehicle_id", "not in", "AB")], r"'not in' takes a list, tuple or set of values"),
        ([("date", "in", str(D1))], r"'in' takes a list, tuple or set of values"),
        ([("msg_cnt", "in", 1)], r"'in' takes a list, tuple or set of values"),
    ]  # fmt: skip
    for filters, said in cases:
        for naming in ("canonical", "socrata"):
            with pytest.raises(ConfigError, match=said):
                cat.to_dask("wydot", "BSM", D1, D2, filters=filters, naming=naming)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown column 'coreData_speed' in filters"):
        cat.to_dask("wydot", "BSM", D1, D2, naming="socrata", filters=[("coreData_speed", ">", 1)])
    # what is right still reads: partition values, lists, an aware moment
    ok = [("date", "=", str(D2)), ("msg_cnt", "in", (1, 2)), ("msg_cnt", "not in", {99}),
          ("generated_at", ">=", datetime(2021, 4, 2, 1, tzinfo=UTC))]  # fmt: skip
    got = len(cat.to_dask("wydot", "BSM", D1, D2, filters=ok))
    want = cat.query("select count(*) n from wydot_bsm where date = ? and msg_cnt in (1, 2) "
                     "and generated_at >= '2021-04-02 01:00:00+00'", [D2]).n[0]  # fmt: skip
    assert got == want > 0


def test_the_forms_a_notebook_gives_filters_in_read_what_they_say(cat: Catalog) -> None:
    """An op in capitals or with spaces passed the check but reached pyarrow as given (a
    ValueError '"IN" is not a valid operator' at compute); one term alone, or pyarrow's
    list holding one conjunction, was refused as an OR; a None value read no row at all."""
    want = cat.query("select count(*) n from wydot_bsm where msg_cnt in (1, 2) and speed_mps > 5 "
                     "and date between ? and ?", [D1, D2]).n[0]  # fmt: skip
    assert want > 0
    for filters in (
        [("msg_cnt", "IN", [1, 2]), ("speed_mps", " > ", 5.0)],
        [[("msg_cnt", "in", [1, 2]), ("speed_mps", ">", 5.0)]],
    ):
        assert len(cat.to_dask("wydot", "BSM", D1, D2, filters=filters)) == want
    alone = cat.query("select count(*) n from wydot_bsm where speed_mps > 5 and date between ? "
                      "and ?", [D1, D2]).n[0]  # fmt: skip
    assert len(cat.to_dask("wydot", "BSM", D1, D2, filters=("speed_mps", ">", 5.0))) == alone
    with pytest.raises(ConfigError, match=r"^filter \('speed_mps', '>', None\): None matches no row"):
        cat.to_dask("wydot", "BSM", D1, D2, filters=[("speed_mps", ">", None)])
    # nor a NaN, nor a date given as a number (0 rows for ==, every row for !=, silently)
    for nan in (float("nan"), np.float32("nan")):
        with pytest.raises(ConfigError, match=r"^filter \('speed_mps', '>', [^:]*nan\)?\): NaN matches"):
            cat.to_dask("wydot", "BSM", D1, D2, filters=[("speed_mps", ">", nan)])
    for op in ("==", "!=", "in"):
        day: Any = [20210401] if op == "in" else 20210401
        with pytest.raises(ConfigError, match=r"^a date filter's value is a day \('2021-04-01', "):
            cat.to_dask("wydot", "BSM", D1, D2, filters=[("date", op, day)])


def test_columns_naming_and_output_take_what_a_notebook_gives(cat: Catalog) -> None:
    """columns= as one str was read as its characters ('unknown column(s) v, e, h, ...'), a
    name given twice made a frame that failed at compute (KeyError), a None in it was a
    TypeError; naming='SOCRATA' or a typo gave canonical names silently, and query's
    output='polars' a pandas frame."""
    frame = cat.to_dask("wydot", "BSM", D1, D2, columns="vehicle_id, speed_mps")
    assert list(frame.columns) == ["vehicle_id", "speed_mps"]
    twice = cat.to_dask("wydot", "BSM", D1, D2, columns=["vehicle_id", "vehicle_id"])
    assert list(twice.compute().columns) == ["vehicle_id"]
    for bad in ([None], 5):
        with pytest.raises(ConfigError, match=r"^columns is a list of column names"):
            cat.to_dask("wydot", "BSM", D1, D2, columns=bad)  # type: ignore[arg-type]
    upper = cat.to_dask("wydot", "BSM", D1, D2, columns=["coreData_id"], naming="SOCRATA")  # type: ignore[arg-type]
    assert list(upper.columns) == ["coreData_id"]
    with pytest.raises(ConfigError, match=r"^naming must be one of 'canonical', 'socrata', got 'socratta'"):
        cat.to_dask("wydot", "BSM", D1, D2, naming="socratta")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^output must be one of 'pandas', 'arrow', got 'polars'"):
        cat.query("select 1 as a", output="polars")  # type: ignore[arg-type]
    assert cat.query("select 1 as a", output=" Arrow ").num_rows == 1  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^output must be one of 'pandas', 'arrow', 'dask'"):
        cat.changes("wydot", "BSM", 0, output="polars")  # type: ignore[arg-type]


def test_a_timezone_of_none_reads_utc_days(cat: Catalog) -> None:
    """timezone=None (a notebook's "no zone") was zoneinfo's TypeError from to_dask."""
    utc = cat.to_dask("wydot", "BSM", D1, D1, columns=["vehicle_id"])
    assert len(cat.to_dask("wydot", "BSM", D1, D1, columns=["vehicle_id"], timezone=None)) == len(utc)  # type: ignore[arg-type]


def test_ngsim_frames_with_columns(tmp_path: Path, reads: list[Any]) -> None:
    path = tmp_path / "trajectories.csv"
    generate_ngsim(path, 3_000, seed=3)
    cat = Catalog(tmp_path / "catalog")
    cat.ingest_dataset("ngsim", str(path), unit_bytes=1 << 18)
    cols = ["vehicle_id", "speed_mps"]
    frame = cat.to_dask("ngsim", columns=cols, filters=[("speed_mps", ">", 5.0)])
    assert list(frame.columns) == cols
    got = frame.compute()
    assert reads and all(r == cols for r in reads)
    want = cat.query("select vehicle_id, speed_mps from trajectories where speed_mps > 5")
    assert len(got) == len(want) > 0
    pd.testing.assert_frame_equal(_sorted(got, cols), _sorted(want, cols), check_dtype=False)
    with pytest.raises(ConfigError, match="valid: "):
        cat.to_dask("ngsim", columns=["speed"])
    with pytest.raises(ConfigError, match="unknown column 'speed' in filters for ngsim"):
        cat.to_dask("ngsim", filters=[("speed", ">", 5.0)])


def test_ngsim_frames_over_inputs_with_and_without_imputation(tmp_path: Path) -> None:
    """Two inputs, the second loaded with quality.impute on: the frame has `imputed`, NULL on
    the first input's rows (as in the table), its true rows the recorded count."""
    one, two = tmp_path / "a.csv", tmp_path / "b.csv"
    generate_ngsim(one, 2_000, seed=3, locations=["us-101"])
    generate_ngsim(two, 2_000, seed=4, locations=["i-80"])
    cat = Catalog(tmp_path / "catalog")
    assert cat.ingest_dataset("ngsim", str(one)).ok
    q = QualityConfig.model_validate({"impute": {"enabled": True}})
    assert cat.ingest_dataset("ngsim", str(two), quality=q).ok
    frame = cat.to_dask("ngsim")
    assert "imputed" in frame.columns
    got = frame.compute()
    table = cat.query(
        "select count(*) n, count(imputed) k, count_if(imputed)::BIGINT t, "
        "count(*) filter (where location = 'i-80') i80 from ngsim_trajectories"
    )
    stats = cat.query(
        "select coalesce(sum(count), 0)::BIGINT from quality_stats "
        "where rule = 'impute' and action = 'imputed'"
    ).iat[0, 0]
    assert len(got) == table.n[0] and int(got.imputed.notna().sum()) == table.k[0]
    assert table.k[0] == table.i80[0] > 0
    assert int(got.imputed.astype("boolean").sum()) == table.t[0] == stats


def test_reads_of_a_directory_without_a_catalog_raise_and_create_nothing(tmp_path: Path) -> None:
    """Only ingest, discover and plan create a catalog: the Python API's readers say there is
    none, as the CLI does (the same line), and leave nothing behind."""
    missing = tmp_path / "nope"
    cat = Catalog(missing)
    said = (
        f"no catalog at {missing} (check --catalog / CVCATALOG_HOME; `cvcatalog ingest` "
        "creates one)"
    )
    for read in (
        lambda: cat.to_dask("wydot", "BSM", "2021-04-01"),
        lambda: cat.to_dask("ngsim"),
        lambda: cat.query("select 1"),
        lambda: cat.partitions("wydot", "BSM"),
        lambda: cat.status(),
        lambda: cat.snapshots(),
        lambda: cat.views(),
        lambda: cat.runs(),
        lambda: cat.connect(),
    ):
        with pytest.raises(CatalogError) as e:
            read()
        assert str(e.value) == said
    assert not missing.exists()
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    with pytest.raises(CatalogError, match="is a file, not a catalog directory"):
        Catalog(a_file).query("select 1")


def test_a_frame_of_nothing_by_mistake_is_an_error_not_an_empty_frame(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "catalog")
    cat.db.initialise()  # an empty catalog
    with pytest.raises(ConfigError, match=r"unknown NGSIM location 'mars'; expected one of "
                       r"us-101, lankershim, i-80, peachtree"):  # fmt: skip
        cat.to_dask("ngsim", location="mars")
    with pytest.raises(ConfigError, match="unknown NGSIM location 'mars'"):
        cat.to_dask("ngsim", location=["us-101", "mars"])
    assert len(cat.to_dask("ngsim", location=" I_80 ")) == 0  # a site spelled as --location takes
    for source, kind in (("wydot", "BSM"), ("ngsim", None)):
        with pytest.raises(ConfigError, match="end date 2021-04-01 is before start date 20"):
            cat.to_dask(source, kind, "2021-04-02", "2021-04-01")
    with pytest.raises(ConfigError, match="before start date"):
        cat.partitions("wydot", "BSM", "2021-04-02", "2021-04-01")


def test_a_cleaner_like_the_consumers_runs_on_the_lazy_frame(cat: Catalog) -> None:
    """What the ML pipeline's cleaner does with the 19 columns (drop incomplete rows, parse the
    WKT point, time features from metadata_generatedAt), lazily per partition, agrees with the
    same steps on the view's rows."""

    def clean(df: pd.DataFrame) -> pd.DataFrame:
        df = df[ML_COLUMNS].dropna(subset=["coreData_position", "coreData_speed"])
        xy = df.coreData_position.str.extract(r"^POINT \((\S+) (\S+)\)$").astype(float)
        t = pd.to_datetime(df.metadata_generatedAt, utc=True)
        return df.assign(x_pos=xy[0], y_pos=xy[1], year=t.dt.year, month=t.dt.month,
                         day=t.dt.day, hour=t.dt.hour)[
            ["coreData_id", "x_pos", "y_pos", "year", "month", "day", "hour", "coreData_speed"]
        ]  # fmt: skip

    frame = cat.to_dask("wydot", "BSM", D1, D2, columns=ML_COLUMNS, naming="socrata")
    got = frame.map_partitions(clean).compute()
    want = clean(_view(cat, "wydot_bsm_socrata", ML_COLUMNS))
    key = ["coreData_id", "x_pos", "y_pos", "hour", "coreData_speed"]
    assert len(got) == len(want) > 0
    pd.testing.assert_frame_equal(_sorted(got, key), _sorted(want, key), check_dtype=False)
    assert set(got.day) == {D1.day, D2.day}


@pytest.mark.parametrize("key", sorted(SCHEMAS))
def test_every_socrata_column_alone_has_the_views_type(key: tuple[str, str]) -> None:
    """For every (source, type): each socrata column computed alone, from only the columns the
    plan says it needs (the others NULL), binds and has the type the whole view gives it."""
    schema = SCHEMAS[key]
    plan = socrata_plan(schema)
    con = duckdb.connect()
    try:
        empty = con.sql(schema.empty_select_sql(schema.view_columns)).arrow().read_all()
        con.register("frame", empty)
        whole = con.sql(schema.socrata_select_sql("frame")).arrow().read_all().schema
        assert plan.names == whole.names
        for name in plan.names:
            needs = plan.needs([name])
            con.register("frame", empty.select(needs))
            one = con.sql(plan.select_sql([name], "frame", needs)).arrow().read_all().schema
            assert one.names == [name] and one.field(0).type == whole.field(name).type, name
    finally:
        con.close()


def test_the_plan_travels_to_workers() -> None:
    """Pieces run on distributed workers: the plan they get must pickle, and unpickled it
    still computes the same SQL."""
    plan = socrata_plan(SCHEMAS[("wydot", "BSM")])
    back = pickle.loads(pickle.dumps(plan))
    assert back == plan
    assert back.select_sql(ML_COLUMNS, "frame", ["vehicle_id"]) == plan.select_sql(
        ML_COLUMNS, "frame", ["vehicle_id"]
    )


def test_a_socrata_frame_built_from_a_canonical_one_has_to_dasks_dtypes(cat: Catalog) -> None:
    """to_socrata (an experiment's socrata frame) gave pandas' own `str` strings (a NULL is
    nan) where to_dask(naming="socrata") gives Dask's `string` (a NULL is <NA>): 34 of the 71
    columns differed. Now every column has to_dask's dtype, in the meta and computed; with
    Dask's string conversion off, both are pandas' `str`."""
    # another day for each setting: Dask keeps the meta of an expression it has seen
    for convert, day in ((None, D1), (False, D2)):
        with dask.config.set({"dataframe.convert-string": convert}):
            read = cat.to_dask("wydot", "BSM", day, day, naming="socrata")
            built = to_socrata(cat.to_dask("wydot", "BSM", day, day), SCHEMAS[("wydot", "BSM")])
            assert list(built.columns) == list(read.columns)
            assert dict(built.dtypes) == dict(read.dtypes), convert
            assert dict(built.compute().dtypes) == dict(read.compute().dtypes), convert
            strings = [c for c, t in read.dtypes.items() if isinstance(t, pd.StringDtype)]
            assert strings and all(read.dtypes[c].na_value is pd.NA for c in strings) == (
                convert is None
            )


# -- the quality columns under socrata naming --------------------------------------------------
def test_an_experiments_imputed_flag_survives_the_socrata_naming(cat: Catalog) -> None:
    """processing.cleaning.impute with output.column_names socrata (the default): the frame
    carries `imputed`, true exactly on the rows whose values were filled, as the canonical
    frame says."""
    cfg = ExperimentConfig.model_validate(
        {
            "experiment": {"name": "imp"},
            "data": {"source": "wydot", "message_type": "BSM",
                     "date_range": {"start_date": str(D1), "end_date": str(D2)}},
            "processing": {"cleaning": {"impute": {"max_gap_samples": 3, "max_gap_s": None}}},
        }
    )  # fmt: skip
    got = Experiment(cfg, cat).frame().compute()
    assert "imputed" in got.columns and str(got.imputed.dtype) == "boolean"
    assert len(got) > 0 and not got.imputed.any()  # the replica has no NULL values to fill

    # holes made in the canonical frame: the flag and the filled values reach socrata names
    def holes(df: pd.DataFrame) -> pd.DataFrame:
        df = df.sort_values(["vehicle_id", "generated_at"]).copy()
        k = df.groupby("vehicle_id").cumcount()
        # each vehicle's points 0.1 s apart (one gap-free segment), 2 interior ones emptied
        first = df.groupby("vehicle_id").generated_at.transform("min")
        df["generated_at"] = first + pd.to_timedelta(k * 100, unit="ms")
        df.loc[k.between(3, 4), "speed_mps"] = float("nan")
        return df

    canonical = cat.to_dask("wydot", "BSM", D1, D2).map_partitions(holes)
    imputed = experiments_module._imputed(
        canonical, "wydot", "BSM", Impute(max_gap_samples=3, max_gap_s=None)
    )
    want = imputed.compute()
    socrata = to_socrata(imputed, SCHEMAS[("wydot", "BSM")]).compute()
    assert want.imputed.sum() > 0 and socrata.imputed.sum() == want.imputed.sum()
    filled = want[want.imputed]
    got_rows = socrata[socrata.imputed]
    assert sorted(got_rows.coreData_speed) == pytest.approx(sorted(filled.speed_mps))
    assert not socrata.coreData_speed.isna().any()


@pytest.fixture(scope="module")
def imputed_cat(cat: Catalog, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The same days, the second one ingested with quality.impute on: only its files carry
    `imputed`."""
    tmp = tmp_path_factory.mktemp("imputed")
    cfg = tmp / "cfg.yml"
    cfg.write_text(json.dumps({"source": "wydot", "message_type": "BSM",
                               "date_range": {"days_back": 1},
                               "quality": {"impute": {"enabled": True}}}))  # fmt: skip
    c = Catalog(tmp / "catalog")
    assert c.ingest("wydot", "BSM", D1, D1, timezone="UTC", rate_limit=0).ok
    assert c.ingest("wydot", "BSM", D2, D2, timezone="UTC", rate_limit=0, config=cfg).ok
    return c


@pytest.mark.parametrize("naming", ["socrata", "canonical"])
def test_a_catalog_imputed_at_ingest_keeps_the_flag_in_frames(
    imputed_cat: Catalog, reads: list[Any], naming: str
) -> None:
    """The whole frame and a frame asking for it carry `imputed`, read from the files that
    have it (NULL on the day written without it, as in the table), and it counts what the
    quality stats recorded."""
    whole = imputed_cat.to_dask("wydot", "BSM", D1, D2, naming=naming)  # type: ignore[arg-type]
    assert "imputed" in whole.columns
    df = whole.compute()
    stats = imputed_cat.query(
        "select coalesce(sum(count), 0)::BIGINT n from quality_stats "
        "where rule = 'impute' and action = 'imputed'"
    ).iat[0, 0]
    view = "wydot_bsm_socrata" if naming == "socrata" else "wydot_bsm"
    table = imputed_cat.query(
        "select count(*) n, count(imputed) k, count_if(imputed)::BIGINT t, "
        f"count(*) filter (where date = '{D2}') d2 from wydot_bsm"
        + (" where invalid_reason is null" if naming == "socrata" else "")
    )
    rows = imputed_cat.query(f"select count(*) from {view}").iat[0, 0]
    assert len(df) == rows == table.n[0] > 0
    assert int(df.imputed.notna().sum()) == table.k[0] == table.d2[0] > 0  # the second day
    flagged = df.imputed.astype("boolean")
    assert int(flagged.sum()) == table.t[0] == stats
    reads.clear()
    id_col = "coreData_id" if naming == "socrata" else "vehicle_id"
    few = imputed_cat.to_dask(
        "wydot", "BSM", D1, D2, naming=naming, columns=[id_col, "imputed"]  # type: ignore[arg-type]
    ).compute()
    assert list(few.columns) == [id_col, "imputed"] and len(few) == rows
    assert int(few.imputed.notna().sum()) == table.k[0]
    # a window without data: the empty frame has the column too (and the day is told missing)
    with pytest.warns(MissingDataWarning, match="2021-04-05; the frame has no rows of it"):
        none = imputed_cat.to_dask("wydot", "BSM", date(2021, 4, 5), date(2021, 4, 5), naming=naming)  # type: ignore[arg-type]
    assert "imputed" in none.columns and id_col in none.columns and len(none) == 0
    assert {c for r in reads if r for c in r} <= {"vehicle_id", "imputed", "invalid_reason",
                                                   "generated_at"}  # fmt: skip


FRAME_ONLY = """
import json, sys
from datetime import date
from cvcatalog.catalog import Catalog
cat = Catalog(sys.argv[1])
f = cat.to_dask("wydot", "BSM", date(2021, 4, 1), date(2021, 4, 2), naming="socrata",
                columns=["coreData_id", "coreData_speed"])
n = len(f.compute())
with cat.db.read_state() as con:
    dbs = sorted(r[0] for r in con.execute("SELECT database_name FROM duckdb_databases()").fetchall())
print(json.dumps({"rows": n, "boto3": "boto3" in sys.modules, "databases": dbs}))
"""


def test_a_process_that_only_reads_frames_loads_neither_ducklake_nor_boto3(cat: Catalog) -> None:
    """What keeps a frame reader small (bench.ml_frames, peak RSS): its file lists come from the
    state tables, so the lake is never attached, and no S3 client is made for a local catalog."""
    out = subprocess.run(
        [sys.executable, "-c", FRAME_ONLY, str(cat.paths.root)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    got = json.loads(out.stdout.strip().splitlines()[-1])
    rows = cat.query("select count(*) from wydot_bsm_socrata").iat[0, 0]
    assert got == {"rows": rows, "boto3": False, "databases": got["databases"]}
    assert "cv" not in got["databases"] and "cvcatalog" in got["databases"]


# -- the date column ---------------------------------------------------------------------------
DATE_DTYPE = pd.ArrowDtype(pa.date32())


def _dates_agree(frame: Any, want: pd.Series) -> pd.DataFrame:
    """frame's `date` is a date dtype in its meta and in every computed partition, and holds
    the datetime.date values query gives for the same rows."""
    assert frame.dtypes["date"] == DATE_DTYPE  # the meta
    got = frame.compute()
    assert got.dtypes["date"] == DATE_DTYPE
    for part in frame.to_delayed():  # each partition, not only their concatenation
        assert part.compute().dtypes["date"] == DATE_DTYPE
    assert sorted(got["date"].tolist()) == sorted(want.tolist())
    assert all(type(d) is date for d in got["date"])
    return got


def test_the_date_column_is_a_date_as_in_query(cat: Catalog, tmp_path: Path) -> None:
    """to_dask's `date` was Dask's string ('2021-04-01'); query gives datetime.date values.
    Now a date dtype, in the meta and in the partitions, canonical, socrata and NGSIM."""
    want = cat.query("select date from wydot_bsm")["date"]
    assert all(type(d) is date for d in want)
    got = _dates_agree(cat.to_dask("wydot", "BSM", D1, D2), want)
    assert set(got["date"]) == {D1, D2}
    # it compares with dates, and a filter on it keeps that day's rows
    frame = cat.to_dask("wydot", "BSM", D1, D2, columns=["date", "vehicle_id"])
    n2 = int((want == D2).sum())
    assert len(frame[frame["date"] == D2].compute()) == n2 > 0
    assert len(cat.to_dask("wydot", "BSM", columns=["date"], filters=[("date", "=", D2)])) == n2
    # a datetime, Timestamp or datetime64 is the date it says, as a day argument is: `=` kept
    # nothing and `!=` everything, without a word
    n1 = int((want == D1).sum())
    at = datetime(D2.year, D2.month, D2.day, 10, tzinfo=UTC)
    for day in (at, pd.Timestamp(at), np.datetime64(at.replace(tzinfo=None))):
        for op, value, n in (("=", day, n2), ("!=", day, n1), ("in", [day], n2), (">=", day, n2)):
            got = cat.to_dask("wydot", "BSM", columns=["date"], filters=[("date", op, value)])
            assert len(got) == n, (op, value)
    for nat in (pd.NaT, np.datetime64("NaT")):  # pandas' ValueError, or 'does not fit'
        for column in ("date", "generated_at"):
            with pytest.raises(ConfigError, match="NaT matches no row"):
                cat.to_dask("wydot", "BSM", columns=["date"], filters=[(column, ">=", nat)])
            with pytest.raises(ConfigError, match="NaT matches no row"):  # in a list too
                cat.to_dask("wydot", "BSM", columns=["date"], filters=[(column, "in", [nat])])
    _dates_agree(
        cat.to_dask("wydot", "BSM", D1, D2, naming="socrata", columns=["coreData_id", "date"]),
        cat.query("select date from wydot_bsm_socrata")["date"],
    )
    with pytest.warns(MissingDataWarning):  # a day never ingested: an empty frame
        empty = cat.to_dask("wydot", "BSM", "2020-01-01", "2020-01-01", columns=["date"])
    assert empty.dtypes["date"] == DATE_DTYPE and empty.compute().dtypes["date"] == DATE_DTYPE
    changes = cat.changes("wydot", "BSM", 0, output="dask")
    assert changes.dtypes["date"] == DATE_DTYPE and changes.compute().dtypes["date"] == DATE_DTYPE
    # NGSIM's partition column is a date too
    path = tmp_path / "trajectories.csv"
    generate_ngsim(path, 2_000, seed=3)
    ngsim = Catalog(tmp_path / "catalog")
    assert ngsim.ingest_dataset("ngsim", str(path)).ok
    _dates_agree(ngsim.to_dask("ngsim"), ngsim.query("select date from ngsim_trajectories")["date"])


def test_a_boolean_column_with_nulls_stays_boolean(cat: Catalog) -> None:
    """A boolean column with a NULL in a partition was an object column there, which Dask
    turned into strings ('True', 'False'); the meta said bool. Now pandas' nullable boolean,
    in the meta and every partition, with the values query gives."""
    want = cat.query(
        "select valid_signature, count(*) as n from wydot_bsm group by 1 order by 1 nulls last"
    )
    assert want["valid_signature"].isna().any()  # the replica leaves some NULL
    frame = cat.to_dask("wydot", "BSM", D1, D2, columns=["valid_signature", "vehicle_id"])
    assert str(frame.dtypes["valid_signature"]) == "boolean"
    got = frame.compute()
    assert str(got.dtypes["valid_signature"]) == "boolean"
    counts = got["valid_signature"].value_counts(dropna=False)
    assert {(None if v is pd.NA else bool(v)): int(n) for v, n in counts.items()} == {
        (None if pd.isna(v) else bool(v)): int(n)
        for v, n in zip(want["valid_signature"], want["n"], strict=True)
    }
    assert len(got[got["valid_signature"].fillna(False)]) == int(
        want.loc[want["valid_signature"].eq(True).fillna(False), "n"].sum()
    )


def test_integer_columns_with_nulls_stay_integers(
    cat: Catalog, module_s3: Any, tmp_path: Path
) -> None:
    """An integer column with a NULL in a partition came out as float64 there while the meta
    said int64 (WYDOT TIM's max_duration_min is NULL where the record has no duration). Now
    pandas' nullable integers (Int64, Int32, ...), in the meta and every partition, with the
    NULLs and sums query gives; a column without NULLs is the same nullable dtype."""
    seed_replica(module_s3, D1, D1, sources=["wydot"], message_types=["TIM"], records_per_hour=4,
                 files_per_hour=1)  # fmt: skip
    tim = Catalog(tmp_path / "tim")
    assert tim.ingest("wydot", "TIM", D1, D1, timezone="UTC", rate_limit=0).ok
    for c, table, mtype in ((tim, "wydot_tim", "TIM"), (cat, "wydot_bsm", "BSM")):
        frame = c.to_dask("wydot", mtype, D1, D1, timezone="UTC")
        ints = [k for k, t in frame.dtypes.items() if pd.api.types.is_integer_dtype(t)]
        assert ints and all(str(frame.dtypes[k])[0] in "IU" for k in ints), frame.dtypes
        sums = ", ".join(f'count(*) - count("{k}"), sum("{k}")' for k in ints)
        want = c.query(f"select {sums} from {table} where date = ?", [D1]).iloc[0].tolist()
        nulls = {k: int(n) for k, n in zip(ints, want[0::2], strict=True)}
        if table == "wydot_tim":
            assert nulls["max_duration_min"] > 0, nulls
        got = frame[ints].compute()
        assert {k: str(t) for k, t in got.dtypes.items()} == {k: str(frame.dtypes[k]) for k in ints}
        assert {k: int(got[k].isna().sum()) for k in ints} == nulls
        sums_got = [int(got[k].sum()) for k in ints]
        assert sums_got == [0 if pd.isna(v) else int(v) for v in want[1::2]]


# -- list columns ------------------------------------------------------------------------------
def _py(v: Any) -> Any:
    """A value as plain Python: a list column's value (query's numpy array, a frame's list) as
    a list of plain values, a struct as a dict, a numpy scalar as its Python value, NULL (None,
    NaN, <NA>) as None."""
    if isinstance(v, np.ndarray | list | tuple):
        return [_py(x) for x in v]
    if isinstance(v, dict):
        return {k: _py(x) for k, x in v.items()}
    if isinstance(v, np.generic):
        v = v.item()
    return None if _null(v) else v


def _rows(df: pd.DataFrame, columns: list[str]) -> list[str]:
    """The rows' values as plain Python (_py), each row as JSON text, sorted: the same rows
    compare equal whatever their order and dtypes."""
    return sorted(
        json.dumps([_py(v) for v in row], default=str)
        for row in zip(*(df[c] for c in columns), strict=True)
    )


def _lists_agree(frame: Any, column: str, want: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """frame's list column has one Arrow list dtype (not a string one, nor object) in its meta
    and in every computed partition, and holds the lists query gives for the same rows
    (compared as Python lists)."""
    dtype = frame.dtypes[column]  # the meta
    assert isinstance(dtype, pd.ArrowDtype) and pa.types.is_list(dtype.pyarrow_dtype), dtype
    got = frame.compute()
    # str too: pyarrow's type equality ignores the name of a list's item field
    assert got.dtypes[column] == dtype and str(got.dtypes[column]) == str(dtype)
    for part in frame.to_delayed():  # each partition, not only their concatenation
        assert str(part.compute().dtypes[column]) == str(dtype)
    values = [v for v in got[column] if not _null(v)]
    assert values and all(isinstance(v, list) for v in values), values[:3]
    assert len(got) == len(want) > 0
    assert _rows(got, [*key, column]) == _rows(want, [*key, column])
    return got


@pytest.mark.parametrize("convert_string", [True, False])
def test_a_bsm_list_column_holds_the_lists_query_gives(cat: Catalog, convert_string: bool) -> None:
    """A list column (DuckDB VARCHAR[], a BSM's `warnings`) was an object column of numpy
    arrays, which Dask's string conversion printed ("['a' 'b']", shortened when long): str
    values, a string dtype in the meta. Now pandas' Arrow list dtype, in the meta and every
    partition, whatever the user's `dataframe.convert-string`, with the lists query gives; the
    string columns keep the dtype they had."""
    want = cat.query("select * from wydot_bsm")
    assert all(isinstance(v, np.ndarray) for v in want["warnings"])  # empty: printed '[]'
    with dask.config.set({"dataframe.convert-string": convert_string}):
        strings = cat.to_dask("wydot", "BSM", D1, D2, columns=["vehicle_id"]).dtypes["vehicle_id"]
        frame = cat.to_dask("wydot", "BSM", D1, D2, columns=[*CANON_KEY, "warnings", "vehicle_id"])
        got = _lists_agree(frame, "warnings", want, CANON_KEY)
        assert frame.dtypes["vehicle_id"] == strings == got.dtypes["vehicle_id"]
        assert str(frame.dtypes["warnings"]) == "list<l: string>[pyarrow]"
        # the frame of every column, of changes, of a split, of an experiment: the same lists
        _lists_agree(cat.to_dask("wydot", "BSM", D1, D2), "warnings", want, CANON_KEY)
        changes = cat.changes("wydot", "BSM", 0, output="dask")
        rows = cat.changes("wydot", "BSM", 0)
        _lists_agree(changes, "warnings", rows, [*CANON_KEY, "change_type"])
        parts = cat.split("wydot", "BSM", D1, D2, fractions=(0.5, 0.5, 0.0))
        both = pd.concat([parts.train.compute(), parts.validation.compute()])
        assert _rows(both, [*CANON_KEY, "warnings"]) == _rows(want, [*CANON_KEY, "warnings"])
        assert str(parts.test.dtypes["warnings"]) == str(parts.test.compute().dtypes["warnings"])
        with pytest.warns(MissingDataWarning):  # a day never ingested: an empty frame
            empty = cat.to_dask("wydot", "BSM", "2020-01-01", "2020-01-01", columns=["warnings"])
        assert str(empty.dtypes["warnings"]) == str(empty.compute().dtypes["warnings"])
        assert str(empty.dtypes["warnings"]) == str(frame.dtypes["warnings"])
        cfg = ExperimentConfig.model_validate(
            {
                "experiment": {"name": "lists"},
                "data": {"source": "wydot", "message_type": "BSM",
                         "date_range": {"start_date": str(D1), "end_date": str(D2)}},
                "processing": {"cleaning": {"remove_duplicates": False,
                                            "impute": {"max_gap_samples": 3, "max_gap_s": None}}},
                "output": {"column_names": "canonical"},
            }
        )  # fmt: skip
        _lists_agree(Experiment(cfg, cat).frame(), "warnings", want, CANON_KEY)


def test_nycdot_and_tim_list_columns_hold_the_lists_query_gives(
    module_s3: Any, tmp_path: Path
) -> None:
    """NYCDOT EVENT's tim_list/map_list/spat_list (JSON text of each message, long) and WYDOT
    TIM's content_texts, itis_codes (INTEGER[]) and its socrata travelerdataframe_content_itis
    were Dask's printed numpy arrays: json.loads failed on them, and numpy shortened the long
    ones. Now the lists query gives, each item the JSON text it was."""
    for source, mtype in (("nycdot", "EVENT"), ("wydot", "TIM")):
        seed_replica(module_s3, D1, D1, sources=[source], message_types=[mtype],
                     records_per_hour=1, files_per_hour=1)  # fmt: skip
    c = Catalog(tmp_path / "catalog")
    assert c.ingest("nycdot", "EVENT", D1, D1, timezone="UTC", rate_limit=0).ok
    assert c.ingest("wydot", "TIM", D1, D1, timezone="UTC", rate_limit=0).ok
    key = ["source_key", "event_id"]
    lists = ["tim_list", "map_list", "spat_list"]
    want = c.query(f"select {', '.join(key + lists)}, bsm_list from nycdot_event")
    assert all(any(not _null(v) and len(v) > 0 for v in want[col]) for col in lists)
    for column in lists:
        frame = c.to_dask("nycdot", "EVENT", D1, D1, columns=[*key, column])
        got = _lists_agree(frame, column, want, key)
        texts = [t for v in got[column] if not _null(v) for t in v]
        assert texts and all(isinstance(json.loads(t), dict) for t in texts)
    assert str(frame.dtypes["spat_list"]) == "list<l: string>[pyarrow]"
    # a list of structs (one dict per BSM)
    _lists_agree(c.to_dask("nycdot", "EVENT", D1, D1, columns=[*key, "bsm_list"]), "bsm_list",
                 want, key)  # fmt: skip
    tim_key = ["source_key", "frame_index"]
    want = c.query("select * from wydot_tim")
    assert any(not _null(v) and len(v) > 0 for v in want["itis_codes"])
    tim = c.to_dask("wydot", "TIM", D1, D1)
    for column in ("content_texts", "itis_codes", "warnings"):
        _lists_agree(tim, column, want, tim_key)
    assert str(tim.dtypes["itis_codes"]) == "list<l: int32>[pyarrow]"
    soc = c.to_dask("wydot", "TIM", D1, D1, naming="socrata")
    name = "travelerdataframe_content_itis"
    want = c.query("select * from wydot_tim_socrata")
    soc_key = ["metadata_logFileName", "metadata_serialId_recordId", "travelerdataframe_name"]
    _lists_agree(soc, name, want, soc_key)
    # the socrata SQL run over a canonical frame (an experiment's output.column_names)
    _lists_agree(to_socrata(tim, SCHEMAS[("wydot", "TIM")]), name, want, soc_key)


# -- times without a zone ----------------------------------------------------------------------
def test_query_params_of_any_shape_a_frame_gives(cat: Catalog) -> None:
    """A value taken from a frame (numpy.int64) was "Unable to transform python value"; a
    pandas Series of values was "truth value ... ambiguous", a generator "has no len()".
    Each binds as the list of its values; a str is one line."""
    speeds = cat.query("select speed_mps from wydot_bsm where speed_mps is not null").speed_mps
    cut = speeds.median()
    sql = "select count(*) as n from wydot_bsm where speed_mps > ? and msg_cnt >= ?"
    want = int(cat.query(sql, [float(cut), 0]).n[0])
    assert 0 < want < len(speeds)
    for params in ([np.float64(cut), np.int64(0)], pd.Series([cut, 0]), np.array([cut, 0]),
                   (v for v in [cut, np.int32(0)]), (cut, 0)):  # fmt: skip
        assert int(cat.query(sql, params).n[0]) == want, type(params)
    named = "select count(*) as n from wydot_bsm where speed_mps > $s and msg_cnt >= $m"
    assert int(cat.query(named, {"s": np.float64(cut), "m": np.int64(0)}).n[0]) == want
    with pytest.raises(QueryError, match=r"^params is a list of values \(for \?\) or a dict"):
        cat.query(sql, "1.5")


def test_yes_no_arguments_take_true_or_false(cat: Catalog) -> None:
    """force_refresh="no" is truthy: it fetched the day again; read_only="no" and
    check_changes="yes" were taken the same way. One line each, before anything is done."""
    runs = len(cat.runs())
    for kw in ({"force_refresh": "no"}, {"check_changes": "yes"}, {"force_refresh": 0}):
        with pytest.raises(ConfigError, match=r"^(force_refresh|check_changes) is True or False"):
            cat.ingest("wydot", "BSM", D1, D1, **kw)
    assert len(cat.runs()) == runs  # nothing ran
    with pytest.raises(ConfigError, match=r"^read_only is True or False, got 'no'"):
        cat.query("select 1 as n", read_only="no")  # type: ignore[arg-type]
    assert cat.query("select 1 as n", read_only=np.bool_(True)).n[0] == 1


def test_a_time_without_a_zone_is_utc_as_in_query(cat: Catalog) -> None:
    """A naive datetime in to_dask's filters was refused ('give the datetime a zone') while
    query's params read it as UTC. Now UTC in both: the same rows as query's naive param and
    as the aware UTC time, whatever form the time takes (datetime, pandas.Timestamp,
    numpy.datetime64, in a list); refused, in one line, only where the read's days are
    another zone's, which makes the time ambiguous."""
    naive = datetime(2021, 4, 1, 12, 30)
    total = cat.query("select count(*) n from wydot_bsm").n[0]
    want = cat.query("select count(*) n from wydot_bsm where generated_at >= ?", [naive]).n[0]
    assert 0 < want < total  # the time cuts the rows
    aware = cat.to_dask("wydot", "BSM", filters=[("generated_at", ">=", naive.replace(tzinfo=UTC))])
    assert len(aware) == want
    for value in (naive, pd.Timestamp(naive), np.datetime64(naive), np.datetime64("2021-04-01T12:30")):
        for naming in ("canonical", "socrata"):
            frame = cat.to_dask("wydot", "BSM", filters=[("generated_at", ">=", value)], naming=naming)  # type: ignore[arg-type]
            assert len(frame) == want, (value, naming)
    # in a list (in / not in), and with the read's days in UTC under another name
    times = cat.query("select distinct generated_at from wydot_bsm order by 1 limit 2").generated_at
    bare = [t.tz_convert("UTC").tz_localize(None).to_pydatetime() for t in times]
    assert all(t.tzinfo is None for t in bare)
    exact = cat.query("select count(*) n from wydot_bsm where generated_at in (?, ?)", bare).n[0]
    assert exact > 0
    assert len(cat.to_dask("wydot", "BSM", filters=[("generated_at", "in", bare)])) == exact
    assert len(cat.to_dask("wydot", "BSM", filters=[("generated_at", "not in", set(bare))])) == total - exact
    utc = cat.to_dask("wydot", "BSM", D1, D2, timezone="Etc/UTC", filters=[("generated_at", ">=", naive)])
    assert len(utc) == want
    # a read of Denver days: which zone is 12:30 in? One line, from to_dask and from split
    said = (r"^filter \('generated_at', '>=', datetime\.datetime\(2021, 4, 1, 12, 30\)\): a time "
            r"without a zone is UTC, but this read's days are America/Denver days; give the time "
            r"its zone, e\.g\. tzinfo=ZoneInfo\('America/Denver'\) or tzinfo=timezone\.utc$")  # fmt: skip
    with pytest.raises(ConfigError, match=said):
        cat.to_dask("wydot", "BSM", D1, D2, timezone="America/Denver", filters=[("generated_at", ">=", naive)])
    with pytest.raises(ConfigError, match=said):
        cat.split("wydot", "BSM", D1, D2, timezone="America/Denver", filters=[("generated_at", ">=", naive)])
    denver = datetime(2021, 4, 1, 6, 30, tzinfo=ZoneInfo("America/Denver"))  # 12:30 UTC
    with pytest.warns(MissingDataWarning, match="2021-04-03"):  # Denver's 04-02 ends on it
        f = cat.to_dask("wydot", "BSM", D1, D2, timezone="America/Denver", filters=[("generated_at", ">=", denver)])
    assert len(f) == cat.query(
        "select count(*) n from wydot_bsm where generated_at >= ? and generated_at < ?",
        [naive, datetime(2021, 4, 3, 6)],
    ).n[0]


# -- days the catalog does not hold ------------------------------------------------------------
def test_a_window_with_days_never_ingested_warns_once(cat: Catalog, tmp_path: Path) -> None:
    """to_dask said nothing of the days of its window that were never ingested: a model
    trained on fewer days than asked for. Now one MissingDataWarning (at the caller's line)
    naming how many and the first ones, with the ingest that fetches them; a day the bucket
    has no data for (`no_data`) is not missing, and a read without a window never warns."""
    assert cat.partitions("wydot", "BSM") and len(cat.partitions("wydot", "BSM")) == 2  # seeded
    c = Catalog(tmp_path / "catalog")  # D2 complete, 2021-04-03 no_data (the bucket has none)
    d3 = date(2021, 4, 3)
    assert c.ingest("wydot", "BSM", D2, d3, rate_limit=0).ok
    status = {r["partition"]: r["status"] for r in c.status()}
    assert status == {"wydot/BSM/2021/04/02": "complete", "wydot/BSM/2021/04/03": "no_data"}
    rows = c.query("select count(*) n from wydot_bsm").n[0]
    assert rows > 0
    said = (r"^wydot/BSM: 9 UTC days of the window 2021-03-28\.\.2021-04-07 \(UTC\) are not in "
            r"the catalog \(never ingested, failed, or written under an older canonical version\): "
            r"2021-03-28, 2021-03-29, "
            r"2021-03-30, 2021-03-31, 2021-04-01 and 4 more; the frame has no rows of them\. "
            rf"`cvcatalog ingest --catalog {re.escape(str(c.paths.root))} --source wydot --type "
            r"BSM --start 2021-03-28 --end 2021-04-07` fetches what is missing")  # fmt: skip
    with pytest.warns(MissingDataWarning, match=said) as seen:
        frame = c.to_dask("wydot", "BSM", "2021-03-28", "2021-04-07", columns=["vehicle_id"])
    assert len(seen) == 1 and seen[0].filename == __file__  # the caller's line
    assert "2021-04-03" not in str(seen[0].message)  # no_data is not missing
    assert len(frame) == rows  # the frame itself is as before
    # one day of a Denver window: its two UTC days, the second never ingested
    with pytest.warns(MissingDataWarning, match=r"^wydot/BSM: 1 UTC day of the window "
                      r"2021-04-01\.\.2021-04-01 \(America/Denver\) is not in the catalog .*: "
                      r"2021-04-01; the frame has no rows of it\. .*--timezone America/Denver`"):  # fmt: skip
        c.to_dask("wydot", "BSM", D1, D1, timezone="America/Denver")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingDataWarning)
        assert len(c.to_dask("wydot", "BSM", D2, d3)) == rows  # complete + no_data
        assert len(c.to_dask("wydot", "BSM")) == rows  # no window
        assert len(c.to_dask("wydot", "BSM", filters=[("date", ">=", D1)])) == rows
        c.to_dask("wydot", "BSM", start=D2)  # from D2 to the last day the catalog records
    # a no_data marker far off (a days_back ingest's today): start alone reached to it and
    # named every day between as missing; it reaches to the last day with rows
    assert c.ingest("wydot", "BSM", "2021-06-30", "2021-06-30", rate_limit=0).ok
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingDataWarning)
        assert len(c.to_dask("wydot", "BSM", start=D2)) == rows


# -- a Catalog into another process ------------------------------------------------------------
UNPICKLE_AND_READ = """
import json, pickle, sys
import dask
with open(sys.argv[1], "rb") as f:
    cat = pickle.load(f)
frame = cat.to_dask("wydot", "BSM", "2021-04-01", "2021-04-02", columns=["vehicle_id", "date"])
got = frame.compute(scheduler="sync")
print(json.dumps({"repr": repr(cat), "query": int(cat.query("select count(*) n from wydot_bsm").n[0]),
                  "frame": len(got), "days": sorted({str(d) for d in got["date"]})}))
"""


def test_a_catalog_pickles_and_reopens_lazily(cat: Catalog, tmp_path: Path) -> None:
    """A Catalog did not pickle (its notify lambda, its DuckDB connections), so it could not
    go into a Dask task or a multiprocessing worker. Now it pickles what reopens it (its
    directory, lock timeout, storage), opens nothing when unpickled, and queries and reads
    frames as the original does, in this process and in another."""
    rows = int(cat.query("select count(*) n from wydot_bsm").n[0])  # the original has opened
    assert rows > 0 and cat.db._hub is not None
    quiet = Catalog(cat.paths.root, lock_timeout=7, notify=lambda m: print(m))
    blob = pickle.dumps(quiet)
    assert b"duckdb" not in blob.lower()  # no connection, no DuckDB object
    back = pickle.loads(blob)
    assert type(back) is Catalog and repr(back) == repr(cat)
    assert back.paths == cat.paths and back.db.lock_timeout == 7
    assert back.db._hub is None  # nothing opened yet: reopened lazily, on the first read
    assert int(back.query("select count(*) n from wydot_bsm").n[0]) == rows
    cols = ["vehicle_id", "speed_mps", "date"]
    got, want = (
        _sorted(c.to_dask("wydot", "BSM", D1, D2, columns=cols).compute(), cols) for c in (back, cat)
    )
    assert len(got) == rows
    pd.testing.assert_frame_equal(got, want)
    # in another process (as multiprocessing or a Dask worker unpickles it)
    path = tmp_path / "catalog.pickle"
    path.write_bytes(pickle.dumps(cat))
    out = subprocess.run(
        [sys.executable, "-c", UNPICKLE_AND_READ, str(path)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "repr": repr(cat), "query": rows, "frame": rows, "days": [str(D1), str(D2)],
    }  # fmt: skip
