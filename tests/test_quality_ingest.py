"""The quality step inside ingest: counted and cleaned per partition, recorded with the run
(moto server over HTTP); compared with SQL over a catalog ingested without it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cvcatalog.catalog import Catalog
from cvcatalog.cli.main import app
from cvcatalog.config import ValidationConfig
from cvcatalog.distributed import ConvertJob, run_convert_job
from cvcatalog.quality.config import QualityConfig
from cvcatalog.quality.report import build_report
from cvcatalog.sandbox.replica import seed_replica
from cvcatalog.schemas import SCHEMAS
from cvcatalog.sources.bucket import BUCKET
from cvcatalog.transform import RawFile

D0, D1 = date(2021, 4, 1), date(2021, 4, 2)
#: a box that cuts the replica's corridor in two, so the bounds rule has work
BOX = {"lat_min": 40.5, "lat_max": 42.5, "lon_min": -107.0, "lon_max": -103.5}
OUTSIDE = (
    "not (latitude between 40.5 and 42.5 and longitude between -107.0 and -103.5) "
    "or speed_mps > 70 or speed_mps < 0 or abs(accel_long_mps2) > 15"
)
runner = CliRunner()


@pytest.fixture(scope="module")
def seeded(module_s3: Any) -> Iterator[Any]:
    client = module_s3
    seed_replica(
        client,
        D0,
        D1,
        sources=["wydot"],
        message_types=["BSM"],
        records_per_hour=20,
        files_per_hour=1,  # each test ingests the days again: an object an hour is enough,
        empty_hour_rate=0.5,  # and half the hours (each object: a PUT, a GET, a file)
    )
    yield client


@pytest.fixture(scope="module")
def plain(seeded: Any, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    cat = Catalog(tmp_path_factory.mktemp("plain") / "c")
    assert cat.ingest("wydot", "BSM", D0, D1, rate_limit=0).ok
    return cat


def _config(tmp: Path, quality: dict[str, Any]) -> Path:
    path = tmp / "cfg.yml"
    path.write_text(
        json.dumps(
            {
                "source": "wydot",
                "message_type": "BSM",
                "date_range": {"days_back": 1},
                "quality": quality,
            }
        )
    )
    return path


def test_counted_at_ingest_and_recorded_with_the_run(
    seeded: Any, plain: Catalog, tmp_path: Path
) -> None:
    cfg = _config(tmp_path, {"rules": {"bounds": BOX}})
    cat = Catalog(tmp_path / "counted")
    s = cat.ingest("wydot", "BSM", D0, D1, rate_limit=0, config=cfg)
    assert s.ok
    # counting only: the same rows as without the step
    assert s.rows == plain.query("select count(*) from wydot_bsm").iat[0, 0]
    want = plain.query(
        "select date, count(*) filter (where not (latitude between 40.5 and 42.5 and longitude "
        "between -107.0 and -103.5)) as n from wydot_bsm group by 1 order by 1"
    )
    got = cat.query(
        "select p.date, q.count as n from quality_stats q join partitions p using "
        "(partition_key) where q.rule = 'bounds' and q.action = 'flagged' and q.run_id = ? "
        "order by 1",
        [s.run_id],
    )
    assert want.n.sum() > 0 and list(got.n) == list(want.n)
    stored = cat.query("select config_json from quality_configs where run_id = ?", [s.run_id])
    assert json.loads(stored.iat[0, 0])["rules"]["bounds"]["lon_min"] == -107.0
    # report quality shows the recorded counts; other rules given say they changed nothing
    # (a --config with max_speed_mps 20 showed the same counts without a word)
    tight = build_report(cat, "wydot", "BSM", config=QualityConfig.model_validate(
        {"rules": {"max_speed_mps": 1}}))  # fmt: skip
    plain_report = build_report(cat, "wydot", "BSM")
    assert tight.types[0].counts == plain_report.types[0].counts
    assert any("recorded, under its own configuration" in n for n in tight.types[0].notes)
    assert not any("own configuration" in n for n in plain_report.types[0].notes)


def test_a_report_of_some_days_counts_their_partitions_and_shows_their_hours(
    seeded: Any, plain: Catalog, tmp_path: Path
) -> None:
    """`report quality` reported every day the catalog held; researchers look at the week
    they study (`--start/--end`, as `report coverage` takes them)."""
    cat = Catalog(tmp_path / "days")
    assert cat.ingest("wydot", "BSM", D0, D1, rate_limit=0,
                      config=_config(tmp_path, {"rules": {"bounds": BOX}})).ok  # fmt: skip
    day = f"from wydot_bsm where generated_at >= '{D1}' and generated_at < '{D1}'::DATE + 1"
    want = cat.query(f"select count(*) n, count(*) filter (where {OUTSIDE}) bad {day}")
    whole = build_report(cat, "wydot", "BSM").types[0]
    one = build_report(cat, "wydot", "BSM", start=D1).types[0]
    assert one.rows == want.n[0] < whole.rows
    assert 0 < one.counts[("bounds", "flagged")] == want.bad[0]
    assert one.counts[("bounds", "flagged")] < whole.counts[("bounds", "flagged")]
    assert [d for d, _ in one.by_day()] == [str(D1)] and sum(n for _, n in one.by_day()) == one.rows
    # rules evaluated now (a catalog without recorded stats): the same day's counts
    now = build_report(plain, "wydot", "BSM", start=D1, end=D1,
                       config=QualityConfig.model_validate({"rules": {"bounds": BOX}})).types[0]  # fmt: skip
    assert now.origin == "evaluated now" and now.counts[("bounds", "flagged")] == want.bad[0]
    # the CLI: a Denver day is parts of two UTC partitions, and says whose counts they are
    r = runner.invoke(app, ["report", "quality", "--source", "wydot", "--type", "BSM",
                            "--start", str(D1), "--timezone", "America/Denver", "--format",
                            "json", "--catalog", str(cat.paths.root)])  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [x["item"] for x in rows if x["section"] == "coverage_day"] == [str(D1)]
    assert "partition(s) holding these days" in r.stderr
    bad = runner.invoke(app, ["report", "quality", "--source", "wydot", "--end", str(D1),
                              "--catalog", str(cat.paths.root)])  # fmt: skip
    assert (bad.exit_code, bad.output) == (1, "error: --end needs --start\n")


def test_cleaning_removes_exactly_the_outliers(seeded: Any, plain: Catalog, tmp_path: Path) -> None:
    cfg = _config(tmp_path, {"rules": {"bounds": BOX}, "cleaning": {"remove_outliers": True}})
    cat = Catalog(tmp_path / "cleaned")
    s = cat.ingest("wydot", "BSM", D0, D1, rate_limit=0, config=cfg)
    assert s.ok
    keep = plain.query(f"select count(*) from wydot_bsm where not ({OUTSIDE})").iat[0, 0]
    removed = plain.query(f"select count(*) from wydot_bsm where {OUTSIDE}").iat[0, 0]
    assert removed > 0
    assert cat.query("select count(*) from wydot_bsm").iat[0, 0] == keep == s.rows
    assert cat.query("select sum(rows)::BIGINT from partitions").iat[0, 0] == keep
    assert (
        cat.query(
            "select sum(count)::BIGINT from quality_stats where rule = 'outliers' and action = 'removed'"
        ).iat[0, 0]
        == removed
    )
    assert cat.verify().clean

    result = runner.invoke(
        app,
        [
            "report",
            "quality",
            "--source",
            "wydot",
            "--type",
            "BSM",
            "--format",
            "json",
            "--catalog",
            str(cat.paths.root),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert any(r["action"] == "removed" and r["count"] == removed for r in rows)


def test_gap_segments_are_in_the_view(seeded: Any, plain: Catalog, tmp_path: Path) -> None:
    """detect_gaps numbers each vehicle's gap-free stretches; the view shows them, and the
    distinct (day, vehicle, segment) match the recorded segment counts."""
    cfg = _config(tmp_path, {"cleaning": {"detect_gaps": {"enabled": True, "max_gap_s": 60}}})
    cat = Catalog(tmp_path / "gaps")
    s = cat.ingest("wydot", "BSM", D0, D1, rate_limit=0, config=cfg)
    assert s.ok
    assert "segment" not in plain.query("select * from wydot_bsm limit 0").columns
    got = cat.query(
        "select count(*) n, count(segment) numbered, max(segment) top, "
        "(select count(*) from (select distinct date, vehicle_id, segment from wydot_bsm)) seg "
        "from wydot_bsm"
    )
    recorded = cat.query(
        "select sum(count)::BIGINT from quality_stats where rule = 'gaps' and action = 'segments'"
    ).iat[0, 0]
    assert got.n[0] == got.numbered[0] == s.rows
    assert got.top[0] > 0  # 20 records an hour per vehicle leave gaps over a minute
    assert got.seg[0] == recorded
    # the socrata view and the bsm union view still bind
    assert cat.query("select count(*) from bsm").iat[0, 0] == s.rows


def test_the_dask_conversion_job_runs_the_same_step(
    seeded: Any, plain: Catalog, tmp_path: Path
) -> None:
    """What a worker does: convert, then the quality step, with the stats sent back."""
    keys = [
        o["Key"]
        for o in seeded.list_objects_v2(Bucket=BUCKET, Prefix="wydot/BSM/2021/04/01/")["Contents"]
    ]
    raw = []
    for i, k in enumerate(keys):
        p = tmp_path / "raw" / f"{i:04d}.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(seeded.get_object(Bucket=BUCKET, Key=k)["Body"].read())
        raw.append(RawFile(p, k))
    q = QualityConfig.model_validate(
        {"rules": {"bounds": BOX}, "cleaning": {"remove_outliers": True}}
    )
    job = ConvertJob(
        key="wydot/BSM/2021/04/01",
        schema=SCHEMAS[("wydot", "BSM")],
        files=tuple(raw),
        out_dir=tmp_path / "out",
        spill_dir=tmp_path / "spill",
        validation=ValidationConfig(),
        rows_per_file=1_000_000,
        row_group_size=10_000,
        max_usage_gb=1.0,
        quality=q,
    )
    result = run_convert_job(job)
    keep = plain.query(
        f"select count(*) from wydot_bsm where date = '2021-04-01' and not ({OUTSIDE})"
    ).iat[0, 0]
    assert result.rows == keep and result.quality is not None
    removed = plain.query(
        f"select count(*) from wydot_bsm where date = '2021-04-01' and ({OUTSIDE})"
    ).iat[0, 0]
    assert result.quality.count("outliers", "removed") == removed > 0
    assert len(result.parquet_files) == 1 and result.parquet_files[0].exists()


def test_imputation_at_ingest_adds_the_flag_column(
    seeded: Any, plain: Catalog, tmp_path: Path
) -> None:
    """impute on: the table gains `imputed` (the replica has no NULL positions, so it is false
    everywhere and the values are those of the plain ingest), and the counts are recorded."""
    cfg = _config(tmp_path, {"impute": {"enabled": True, "max_gap_samples": 3}})
    cat = Catalog(tmp_path / "imputed")
    s = cat.ingest("wydot", "BSM", D0, D1, rate_limit=0, config=cfg)
    assert s.ok
    got = cat.query("select count(*) n, count_if(imputed) k, count(imputed) c from wydot_bsm")
    rows = plain.query("select count(*) from wydot_bsm").iat[0, 0]
    assert (got.n[0], got.k[0], got.c[0]) == (rows, 0, rows)
    same = "select vehicle_id, generated_at, latitude, speed_mps from wydot_bsm order by all"
    assert cat.query(same).equals(plain.query(same))
    q = cat.query(
        "select action, sum(count)::BIGINT n from quality_stats where rule = 'impute' group by 1"
    )
    assert dict(zip(q.action, q.n, strict=True)) == {"imputed": 0, "values": 0, "missing": 0}
    assert cat.verify().clean


def test_a_clean_replica_has_nothing_out_of_order(seeded: Any, tmp_path: Path) -> None:
    """The day's files are in the spatial row order, not in their objects' line order: the
    ordering rule reads the source order from source_key and received_at, so a clean
    replica (every vehicle's records in time order in every object) flags nothing."""
    cfg = _config(tmp_path, {"rules": {}})
    cat = Catalog(tmp_path / "counted")
    s = cat.ingest("wydot", "BSM", D0, D1, rate_limit=0, config=cfg)
    assert s.ok
    got = cat.query(
        "select rule, sum(count)::BIGINT as n from quality_stats where run_id = ? "
        "and action = 'flagged' group by rule",
        [s.run_id],
    )
    flagged = dict(zip(got["rule"], got["n"], strict=True))
    assert "ordering" in flagged and flagged["ordering"] == 0, flagged
