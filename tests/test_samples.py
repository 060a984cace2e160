"""Every real WYDOT BSM sample (tests/fixtures/sandbox, from the ITS sandbox repository) goes
through the local endpoint, ingest and the views with its exact values."""

from __future__ import annotations

import json
import runpy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cvcatalog.catalog import Catalog
from cvcatalog.sources.bucket import BUCKET

SAMPLES = Path(__file__).parent / "fixtures" / "sandbox"


def load(version: int) -> dict[str, Any]:
    return json.loads((SAMPLES / f"wydot-filtered-bsm-schemaVersion{version}.json").read_text())


@pytest.fixture(scope="module")
def catalog(module_s3: Any, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The samples ingested once for the module (the tests only read the catalog)."""
    s3_client = module_s3
    # v3 predates 2018-01-18: one pretty-printed document per object, uploaded byte for byte
    s3_client.put_object(
        Bucket=BUCKET,
        Key="wydot/BSM/2017/12/05/16/wydot-filtered-bsm-1512495913736.json",
        Body=(SAMPLES / "wydot-filtered-bsm-schemaVersion3.json").read_bytes(),
    )
    # v5 and v6 are NDJSON-era: one compact record per line, same hour folder
    for v in (5, 6):
        s3_client.put_object(
            Bucket=BUCKET,
            Key=f"wydot/BSM/2018/05/06/20/usdot-its-cvpilot-bsm-public-6-2018-05-06-20-26-28-v{v}",
            Body=(json.dumps(load(v)) + "\n").encode(),
        )
    cat = Catalog(tmp_path_factory.mktemp("samples") / "catalog")
    for day in ("2017-12-05", "2018-05-06"):
        s = cat.ingest("wydot", "BSM", day, day, timezone="UTC", rate_limit=0)
        assert s.ok and s.quarantined == 0
    return cat


def test_every_sample_has_its_values_in_the_view(catalog: Catalog) -> None:
    df = catalog.query("select * from wydot_bsm order by schema_version")
    assert list(df.schema_version) == [3, 5, 6]
    for row, version in zip(df.itertuples(), (3, 5, 6), strict=True):
        rec = load(version)
        core = rec["payload"]["data"]["coreData"]
        md = rec["metadata"]
        stamp = md["recordGeneratedAt"].split("[")[0].replace("Z", "+00:00")
        assert row.generated_at.to_pydatetime() == datetime.fromisoformat(stamp).astimezone(UTC)
        assert row.vehicle_id == core["id"]
        assert row.latitude == core["position"]["latitude"]
        assert row.longitude == core["position"]["longitude"]
        assert row.elevation_m == core["position"]["elevation"]
        assert row.speed_mps == core["speed"]
        assert row.heading_deg == core["heading"]
        assert (row.msg_cnt, row.sec_mark) == (core["msgCnt"], core["secMark"])
        assert row.record_type == md["recordType"]
        assert json.loads(row.part_ii) == rec["payload"]["data"]["partII"]
    assert df.date.astype(str).tolist() == ["2017-12-05", "2018-05-06", "2018-05-06"]
    assert df.source.unique().tolist() == ["wydot"]


def test_samples_in_the_socrata_view(catalog: Catalog) -> None:
    soc = catalog.query(
        "select coreData_id, coreData_position_lat, coreData_position_long, coreData_speed, "
        "coreData_heading, coreData_elevation, metadata_schemaVersion from wydot_bsm_socrata "
        "order by metadata_schemaVersion"
    )
    v6 = load(6)["payload"]["data"]["coreData"]
    last = soc.iloc[-1]
    assert (last.coreData_id, last.coreData_position_lat, last.coreData_position_long) == (
        v6["id"],
        v6["position"]["latitude"],
        v6["position"]["longitude"],
    )
    assert (last.coreData_speed, last.coreData_heading, last.coreData_elevation) == (
        v6["speed"],
        v6["heading"],
        v6["position"]["elevation"],
    )
    status = {r["partition"]: r for r in catalog.status()}
    assert status["wydot/BSM/2018/05/06"]["schema_versions"] == "5,6"
    assert status["wydot/BSM/2017/12/05"]["schema_versions"] == "3"


def test_docs_schema_is_what_its_generator_writes() -> None:
    """docs/schema.md is generated (`python docs/gen_schema.py`): the generator runs and the
    committed page is its output."""
    docs = Path(__file__).resolve().parents[1] / "docs"
    gen = runpy.run_path(str(docs / "gen_schema.py"))
    assert gen["render"]() == (docs / "schema.md").read_text()
