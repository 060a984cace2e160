"""Experiments: a cleaned, lazy Dask slice behind gather_data() / get_gathered_data(),
and the same frames computed on a dask.distributed cluster."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cvcatalog.catalog import Catalog
from cvcatalog.exceptions import ConfigError
from cvcatalog.read.experiments import CatalogGatherer, ExperimentConfig
from cvcatalog.sandbox.replica import seed_replica

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def catalog(module_s3: Any, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """Three days seeded and ingested once: the tests only read the catalog."""
    seed_replica(
        module_s3, date(2021, 4, 1), date(2021, 4, 3), records_per_hour=40, files_per_hour=1
    )
    cat = Catalog(tmp_path_factory.mktemp("experiments") / "catalog")
    cat.ingest("wydot", "BSM", "2021-04-01", "2021-04-03", timezone="UTC", rate_limit=0)
    return cat


def write_experiment(tmp_path: Path, extra: str = "", bounds: str = "") -> Path:
    p = tmp_path / "exp.yml"
    p.write_text(
        "experiment: {name: t, description: test}\n"
        "data:\n  source: wydot\n  message_type: BSM\n"
        "  date_range: {start_date: 2021-04-02, end_date: 2021-04-02, timezone: UTC}\n"
        + extra
        + "processing:\n  engine: dask\n  profile: "
        + str(REPO / "configs/profiles/32gb.yml")
        + "\n"
        "  cleaning:\n    remove_duplicates: true\n    validate_coordinates: true\n"
        "    coordinate_bounds: "
        + (bounds or "{lat_min: 40, lat_max: 45, lon_min: -112, lon_max: -104}")
        + "\n"
        "output: {column_names: socrata}\n"
    )
    return p


def test_gatherer_hands_over_a_lazy_cleaned_socrata_frame(catalog: Catalog, tmp_path: Path) -> None:
    g = CatalogGatherer(write_experiment(tmp_path), catalog).gather_data()
    ddf = g.get_gathered_data()
    assert type(ddf).__module__.startswith("dask")
    assert {
        "metadata_generatedAt",
        "coreData_id",
        "coreData_position_lat",
        "coreData_position_long",
        "coreData_speed",
        "coreData_heading",
    } <= set(ddf.columns)
    n_day = catalog.query("select count(*) as n from wydot_bsm where date = '2021-04-02'").n[0]
    assert len(ddf) == n_day  # replica coordinates lie on I-80 in Wyoming, inside the bounds

    west = write_experiment(
        tmp_path, bounds="{lat_min: 40, lat_max: 45, lon_min: -112, lon_max: -107.5}"
    )
    ddf = CatalogGatherer(west, catalog).gather_data().get_gathered_data()
    pdf = ddf.compute()
    expected = catalog.query(
        "select count(*) as n from wydot_bsm where date = '2021-04-02' and longitude <= -107.5"
    ).n[0]
    assert len(pdf) == expected and (pdf.coreData_position_long <= -107.5).all()

    capped = write_experiment(tmp_path, extra="  max_rows: 25\n")
    assert len(CatalogGatherer(capped, catalog).gather_data().get_gathered_data()) == 25


def test_experiment_configs_in_the_repo_are_valid() -> None:
    for p in sorted((REPO / "configs/experiments").glob("*.yml")):
        cfg = ExperimentConfig.from_yaml(p)
        assert cfg.data.source == "wydot"
        assert cfg.profile(REPO).dask.n_workers >= 1


def test_experiment_errors_are_one_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.yml"
    p.write_text(
        "experiment: {name: x}\ndata: {source: wydot, message_type: BSM, date_range: {days_back: 0}}\n"
    )
    with pytest.raises(ConfigError, match="days_back must be a positive"):
        ExperimentConfig.from_yaml(p)


@pytest.mark.parametrize(
    ("source", "found"),
    [("nycdot", "EVENT"), ("NGSIM", "TRAJECTORY"), ("wydot", None), ("mars", None)],
)
def test_a_source_of_one_type_needs_no_message_type(
    tmp_path: Path, source: str, found: str | None
) -> None:
    """As `ingest --source nycdot`; data.message_type was required for every source."""
    p = tmp_path / "exp.yml"
    p.write_text(
        f"experiment: {{name: x}}\ndata: {{source: {source}, "
        "date_range: {start_date: 2021-04-01}}\n"
    )
    if found is not None:
        assert ExperimentConfig.from_yaml(p).data.message_type == found
        return
    with pytest.raises(ConfigError) as raised:
        ExperimentConfig.from_yaml(p)
    line = str(raised.value)
    assert "\n" not in line
    if source == "wydot":
        assert line.endswith("data: give data.message_type for wydot: BSM, TIM"), line
    else:  # the field's own line, as before
        assert "data.message_type: Field required" in line, line


def test_to_dask_runs_on_a_distributed_cluster(catalog: Catalog) -> None:
    from dask.distributed import Client, LocalCluster

    ddf = catalog.to_dask(
        "wydot", "BSM", "2021-04-01", "2021-04-03", columns=["vehicle_id", "speed_mps"]
    )
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        got = ddf.groupby("vehicle_id").speed_mps.mean().compute().sort_index()
    expected = (
        catalog.query("select vehicle_id, avg(speed_mps) as s from wydot_bsm group by 1 order by 1")
        .set_index("vehicle_id")
        .s
    )
    assert list(got.index) == list(expected.index)
    assert (abs(got.values - expected.values) < 1e-9).all()


def test_experiment_imputes_per_partition(catalog: Catalog, tmp_path: Path) -> None:
    """processing.cleaning.impute: the canonical frame gains `imputed` (the replica has no NULL
    positions, so nothing is filled and every other value is unchanged)."""
    p = write_experiment(tmp_path)
    text = p.read_text().replace(
        "  cleaning:\n", "  cleaning:\n    impute: {max_gap_samples: 3, max_gap_s: 1.0}\n"
    )
    p.write_text(text.replace("column_names: socrata", "column_names: canonical"))
    ddf = CatalogGatherer(p, catalog).gather_data().get_gathered_data()
    assert "imputed" in ddf.columns
    pdf = ddf.compute()
    (tmp_path / "plain").mkdir()
    plain = write_experiment(tmp_path / "plain")
    plain.write_text(plain.read_text().replace("column_names: socrata", "column_names: canonical"))
    expected = CatalogGatherer(plain, catalog).gather_data().get_gathered_data().compute()
    assert len(pdf) == len(expected) and not pdf.imputed.any()
    key = ["vehicle_id", "generated_at", "source_key"]
    got = pdf.drop(columns="imputed").sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected.sort_values(key).reset_index(drop=True))
    # the socrata naming keeps the flag too, after the data.transportation.gov columns
    p.write_text(text)
    soc = CatalogGatherer(p, catalog).gather_data().get_gathered_data()
    assert list(soc.columns)[-1] == "imputed" and len(soc) == len(expected)
