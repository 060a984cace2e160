"""The CV Pilot bucket through the dataset contract: the generic driver loads it object by
object and gets the rows and quarantine of the day-batched ingest (moto server over HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from cvcatalog.catalog import Catalog
from cvcatalog.config import DownloadConfig
from cvcatalog.datasets.base import Dataset
from cvcatalog.datasets.cvpilot import cvpilot_dataset
from cvcatalog.datasets.driver import run_dataset
from cvcatalog.io.layout import CatalogPaths
from cvcatalog.sandbox.replica import seed_replica
from cvcatalog.sources import BUCKET
from cvcatalog.state.db import CatalogDB

D0, D1 = date(2021, 4, 1), date(2021, 4, 2)
COLS = "source_key, vehicle_id, generated_at, latitude, longitude, speed_mps"


@pytest.fixture(scope="module")
def seeded(module_s3: Any) -> Iterator[Any]:
    client = module_s3
    seed_replica(
        client,
        D0,
        D1,
        sources=["wydot"],
        message_types=["BSM"],
        records_per_hour=5,
        files_per_hour=2,
        malformed_per_day=3,
    )
    yield client


def test_a_cv_source_implements_the_contract(seeded: Any) -> None:
    cls = cvpilot_dataset("wydot", "BSM")
    assert issubclass(cls, Dataset)
    ds = cls(D0, D0, download=DownloadConfig(rate_limit=0))
    inputs = ds.inputs()
    units = ds.units(inputs)
    listed = seeded.list_objects_v2(Bucket=BUCKET, Prefix="wydot/BSM/2021/04/01/")["Contents"]
    assert len(units) == len(inputs) == len(listed) > 0
    assert {u.uri for u in units} == {f"s3://{BUCKET}/{o['Key']}" for o in listed}
    assert all(u.fingerprint and u.end == u.size for u in units)
    assert {f.name for f in cls.arrow_schema} >= {"vehicle_id", "speed_mps", "date", "source_key"}


def test_the_generic_driver_loads_what_ingest_loads(seeded: Any, tmp_path: Path) -> None:
    ref = Catalog(tmp_path / "ingest")
    s = ref.ingest("wydot", "BSM", D0, D1, rate_limit=0, max_workers=4)
    assert s.ok and s.rows > 0

    db = CatalogDB(CatalogPaths.at(tmp_path / "driver"))
    cls = cvpilot_dataset("wydot", "BSM")
    summary = run_dataset(cls(D0, D1, download=DownloadConfig(rate_limit=0)), db, workers=4)
    assert summary.ok, summary.errors
    assert summary.rows == s.rows and summary.quarantined == s.quarantined
    assert summary.units_done == sum(d.objects for d in s.days)

    got = Catalog(tmp_path / "driver").query(
        f"select {COLS}, date from {cls.view_name} order by all"
    )
    want = ref.query(f"select {COLS}, date from wydot_bsm order by all")
    assert len(got) == s.rows
    assert got.equals(want)

    again = run_dataset(cls(D0, D1, download=DownloadConfig(rate_limit=0)), db)
    assert again.units_done == 0 and again.units_cached == summary.units_done
