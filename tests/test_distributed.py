"""Distributed ingest: conversions on a dask.distributed cluster give the single-process catalog.

The equality tests ingest the same seeded replica (seeded once for the module) into catalogs
of their own and compare each with the single-process catalog of that replica (ingested and
fingerprinted once): partition statuses, row and quarantine counts, per-view checksums over
every column, the quarantined lines and the validation reports.
"""

from __future__ import annotations

import json
import pickle
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cvcatalog import distributed as cvdist
from cvcatalog.catalog import Catalog
from cvcatalog.cli.main import app
from cvcatalog.config import ValidationConfig
from cvcatalog.distributed import ConversionPool, ConvertJob, run_convert_job
from cvcatalog.exceptions import ConfigError, DistributedError
from cvcatalog.sandbox.replica import SeedReport, seed_replica
from cvcatalog.schemas import SCHEMAS
from cvcatalog.sources import cvpilot
from cvcatalog.transform import ConvertResult, RawFile

D1, D2, D3, D4 = (date(2021, 4, d) for d in (1, 2, 3, 4))
runner = CliRunner()


def seed(client: Any, start: date, end: date, **kw: Any) -> SeedReport:
    kw.setdefault("records_per_hour", 30)
    kw.setdefault("files_per_hour", 2)
    kw.setdefault("empty_hour_rate", 0.1)
    return seed_replica(client, start, end, **kw)


def ingest(cat: Catalog, start: date, end: date, **kw: Any) -> Any:
    kw.setdefault("timezone", "UTC")
    kw.setdefault("rate_limit", 0)
    kw.setdefault("max_workers", 4)
    return cat.ingest("wydot", "BSM", start, end, **kw)


def fingerprint(cat: Catalog) -> dict[str, Any]:
    """Everything that must not depend on where conversions ran (no run ids, no file names)."""
    parts = {
        r["partition"]: (
            r["status"],
            r["rows"],
            r["quarantined"],
            r["source_objects"],
            str(r["schema_versions"]),
        )
        for r in cat.status()
    }
    views = {}
    for view in cat.views():
        # an order-independent checksum over every column of every row
        row = cat.query(
            f"select count(*) as n, coalesce(sum(hash(t)::hugeint), 0)::varchar as h from {view} t"
        )
        views[view] = (int(row.n[0]), row.h[0])
    checks = cat.query(
        "select date, count(*) as n, count(distinct vehicle_id) as vehicles, "
        "sum(round(speed_mps * 50))::bigint as speed, sum(round(latitude * 1e7))::hugeint::varchar "
        "as lat from wydot_bsm group by 1 order by 1"
    ).to_dict("records")
    quarantine = sorted(
        line
        for rel in cat.query("select path from partition_files where kind = 'quarantine'").path
        for line in (cat.paths.root / rel).read_text().splitlines()
    )
    validation = sorted(
        (r["partition"], r["kind"], r["rule"], r["count"]) for r in cat.validation_report()
    )
    return {
        "partitions": parts,
        "views": views,
        "checks": checks,
        "quarantine": quarantine,
        "validation": validation,
    }


def outcomes(summary: Any) -> dict[str, tuple[Any, ...]]:
    return {
        d.key: (d.status, d.rows, d.quarantined, d.objects, d.bytes_downloaded)
        for d in summary.days
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Reference:
    """The module's replica and its single-process catalog: what every executor must give."""

    report: SeedReport
    single: Catalog
    summary: Any
    fingerprint: dict[str, Any]


@pytest.fixture(scope="module")
def replica(module_s3: Any, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """D1..D4 seeded once (D3 empty, 2 malformed lines a day) and ingested in this process;
    the fingerprint (~2.5 CPU s: every view hashed) taken once."""
    report = seed(module_s3, D1, D4, empty_days=[D3], malformed_per_day=2)
    single = Catalog(tmp_path_factory.mktemp("single") / "catalog")
    s = ingest(single, D1, D4)
    assert s.ok, s.as_dict()
    assert s.executor == "local"
    return Reference(report, single, s, fingerprint(single))


# -- fast: no cluster ------------------------------------------------------------------------
def test_a_thread_pool_ingest_equals_the_single_process_one(
    replica: Reference, tmp_path: Path
) -> None:
    """The pooled path (several days in flight, published as they complete) with an
    in-process executor: the same catalog as the default path."""
    from concurrent.futures import ThreadPoolExecutor

    pooled = Catalog(tmp_path / "pooled")
    with ThreadPoolExecutor(2) as ex:
        pool = ConversionPool(ex, capacity=2, name="threads", threads=1)
        s2 = _ingest_with_pool(pooled, pool, D1, D4)
    assert s2.ok, s2.as_dict()
    assert s2.executor == "threads"
    assert s2.as_dict()["executor"] == "threads"
    assert outcomes(replica.summary) == outcomes(s2)
    assert s2.rows == replica.report.records and s2.quarantined == replica.report.malformed
    assert fingerprint(pooled) == replica.fingerprint
    assert pooled.verify().clean
    assert not list((tmp_path / "pooled" / "staging").rglob("*.parquet"))


def _ingest_with_pool(cat: Catalog, pool: ConversionPool, start: date, end: date) -> Any:
    cfg = cat.config("wydot", "BSM", start, end, timezone="UTC", rate_limit=0, max_workers=4)
    return cvpilot.ingest(cfg, pool=pool)


def test_a_worker_that_cannot_see_the_staged_files_fails_its_day(
    replica: Reference, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    assert {"wydot/BSM/2021/04/01", "wydot/BSM/2021/04/02"} <= set(replica.report.partitions)
    real = cvdist.run_convert_job

    def elsewhere(job: ConvertJob) -> ConvertResult:
        if job.key.endswith("/02"):  # as if this worker ran on a machine without the files
            gone = Path("/nonexistent/cvcatalog")
            job = replace(job, files=tuple(RawFile(gone / f.path.name, f.key) for f in job.files))
        return real(job)

    monkeypatch.setattr(cvdist, "run_convert_job", elsewhere)
    cat = Catalog(catalog_dir)
    with ThreadPoolExecutor(2) as ex:
        s = _ingest_with_pool(cat, ConversionPool(ex, 2, "threads"), D1, D2)
    by_key = {d.key: d for d in s.days}
    assert by_key["wydot/BSM/2021/04/01"].status == "complete"
    bad = by_key["wydot/BSM/2021/04/02"]
    assert bad.status == "failed"
    assert "not visible on Dask worker" in (bad.error or "")
    assert "shared filesystem" in (bad.error or "")
    assert {r["partition"]: r["status"] for r in cat.status()}["wydot/BSM/2021/04/02"] == "failed"
    # nothing of the failed day in the lake; its raw files stay staged for the retry
    day2 = catalog_dir / "lake/main/wydot_bsm/year=2021/month=4/day=2/date=2021-04-02"
    assert not day2.exists() or not any(day2.iterdir())
    monkeypatch.setattr(cvdist, "run_convert_job", real)
    with ThreadPoolExecutor(2) as ex:
        again = _ingest_with_pool(cat, ConversionPool(ex, 2, "threads"), D1, D2)
    assert again.count("complete") == 1 and again.count("cached") == 1
    assert again.get_requests == 0  # the retry reused the staged raw files
    assert cat.verify().clean


def test_convert_jobs_and_results_pickle_and_missing_files_are_explained(tmp_path: Path) -> None:
    job = ConvertJob(
        key="wydot/BSM/2021/04/01",
        schema=SCHEMAS[("wydot", "BSM")],
        files=(RawFile(tmp_path / "raw" / "000000-x.json", "wydot/BSM/2021/04/01/00/x"),),
        out_dir=tmp_path / "out",
        spill_dir=tmp_path / "spill",
        validation=ValidationConfig(),
        rows_per_file=1000,
        row_group_size=100,
        max_usage_gb=1.0,
        threads=1,
    )
    back = pickle.loads(pickle.dumps(job))
    assert back.files == job.files and back.schema.view_name == "wydot_bsm"
    result = ConvertResult(
        [tmp_path / "p.parquet"], 3, 1, tmp_path / "q.ndjson", {"malformed JSON": 1}, {}, [6], []
    )
    assert pickle.loads(pickle.dumps(result)) == result
    with pytest.raises(DistributedError, match=r"not visible on Dask worker .*shared filesystem"):
        run_convert_job(job)
    assert not job.out_dir.exists()


def test_dask_options_are_checked_before_anything_runs(
    catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cat = Catalog(catalog_dir)
    with pytest.raises(ConfigError, match="cluster='local'"):
        cat.ingest("wydot", "BSM", D1, D1, workers=2)
    with pytest.raises(ConfigError, match="unknown cluster 'k8s'"):
        cat.ingest("wydot", "BSM", D1, D1, cluster="k8s")
    with pytest.raises(ConfigError, match="not both"):
        cat.ingest("wydot", "BSM", D1, D1, cluster="local", scheduler="tcp://127.0.0.1:1")
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    with pytest.raises(DistributedError, match=r"dask\.distributed is not installed"):
        cat.ingest("wydot", "BSM", D1, D1, cluster="local", workers=2)


def test_an_unreachable_scheduler_is_one_line_and_exit_1(
    catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"  # nobody listens there
    args = ["ingest", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01"]
    args += ["--catalog", str(catalog_dir), "--no-progress"]
    r = runner.invoke(app, [*args, "--scheduler", address])
    assert r.exit_code == 1
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: cannot reach the Dask scheduler at " + address)
    # the environment variable is honoured when no flag is given
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
    r = runner.invoke(app, args)
    assert r.exit_code == 1 and "cannot reach the Dask scheduler" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    # a port that accepts connections but never speaks Dask (a Client would wait forever)
    monkeypatch.setattr(cvdist, "CONNECT_TIMEOUT_SECONDS", 1.0)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        mute = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        r = runner.invoke(app, [*args, "--scheduler", mute])
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.strip() == (
        f"error: cannot reach the Dask scheduler at {mute}: no Dask answer within 1 s "
        "(a scheduler listens on 8786 by default)"
    )


# -- on real Dask clusters (about 15-20 s each) -----------------------------------------------
@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[Any]:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
    ) as cluster:
        yield cluster


def test_local_cluster_ingest_equals_single_process_ingest(
    replica: Reference, tmp_path: Path
) -> None:
    # (a re-run on a cluster, all cached: test_scheduler_flag_and_to_dask_on_a_distributed_client)
    report, s1 = replica.report, replica.summary
    dist = Catalog(tmp_path / "dask")
    s2 = ingest(dist, D1, D4, cluster="local", workers=2)
    assert s2.ok, s2.as_dict()
    assert s2.executor.startswith("dask LocalCluster (2 workers")
    assert outcomes(s1) == outcomes(s2)
    assert (s2.count("complete"), s2.count("no_data")) == (3, 1)
    assert s2.rows == report.records and s2.quarantined == report.malformed
    assert s2.get_requests == s1.get_requests == report.objects
    assert fingerprint(dist) == replica.fingerprint
    assert dist.verify().clean


def test_scheduler_flag_and_to_dask_on_a_distributed_client(
    replica: Reference, tmp_path: Path, dask_cluster: Any
) -> None:
    from distributed import Client, get_task_stream

    catalog_dir = tmp_path / "dask"
    address = dask_cluster.scheduler_address
    args = ["ingest", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01"]
    args += ["--end", "2021-04-04", "--catalog", str(catalog_dir), "--rate-limit", "0"]
    r = runner.invoke(app, [*args, "--scheduler", address, "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "3 complete, 0 cached, 1 no_data" in r.stdout
    assert f"converted on dask {address}" in r.stdout
    cat = Catalog(catalog_dir)
    want_fingerprint = replica.fingerprint
    assert fingerprint(cat) == want_fingerprint
    r = runner.invoke(app, [*args, "--format", "json"], env={"DASK_SCHEDULER_ADDRESS": address})
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.stdout)
    # a re-run is all cached and starts no conversion
    assert row["days_cached"] == 3 and row["executor"] == f"dask {address}"
    assert row["get_requests"] == 0

    expected = cat.query("select date, vehicle_id, count(*) as n from wydot_bsm group by all")
    # (Dask's convert-string setting turns the date objects into strings)
    want = {(str(d), v): int(n) for d, v, n in expected.itertuples(index=False)}
    fast = cat.query("select count(*) as n from wydot_bsm where speed_mps > 25").n[0]
    with Client(dask_cluster) as client:
        ddf = cat.to_dask("wydot", "BSM", D1, D4, columns=["date", "vehicle_id"])
        assert ddf.npartitions == 3
        with get_task_stream(client) as stream:
            counts = ddf.groupby(["date", "vehicle_id"]).size().compute()
        assert len({t["worker"] for t in stream.data}) >= 1 and len(stream.data) >= 3
        filtered = cat.to_dask("wydot", "BSM", D1, D4, filters=[("speed_mps", ">", 25.0)])
        n_fast = len(filtered)
        # the library takes a Client it does not own (and leaves it open)
        again = ingest(cat, D1, D4, scheduler=client, force_refresh=True)
        assert again.count("complete") == 3 and client.status == "running"
    assert fingerprint(cat) == want_fingerprint
    assert cat.verify().clean
    assert {(str(d), v): int(n) for (d, v), n in counts.items()} == want
    assert n_fast == fast
