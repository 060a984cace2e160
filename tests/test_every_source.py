"""Every source gets every command: NGSIM (a dataset) through to_dask, compact and the cache
commands, as the CV Pilot sources do. NGSIM is loaded from the local S3 endpoint."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cvcatalog import Catalog
from cvcatalog.cli.main import app
from cvcatalog.exceptions import ConfigError
from cvcatalog.ops.cache import mend_kept, quarantine_bad
from cvcatalog.pipeline.report import summary_lines
from cvcatalog.read.experiments import CatalogGatherer
from cvcatalog.sandbox.ngsim import generate_ngsim
from cvcatalog.sandbox.replica import seed_replica
from cvcatalog.state.db import now_utc
from cvcatalog.state.eviction import GB, cache_bytes

UNIT = 1 << 17  # small units: many small files per partition
BUCKET = "ngsim-inputs"


@pytest.fixture(scope="module")
def ngsim_catalog(
    tmp_path_factory: pytest.TempPathFactory, module_s3: Any
) -> tuple[Path, str, int]:
    """A catalog with the generated NGSIM file loaded from s3:// (built once per module;
    tests work on copies): (catalog, input URI, rows)."""
    root = tmp_path_factory.mktemp("every")
    csv = root / "trajectories.csv"
    rep = generate_ngsim(csv, 6_000, seed=11, bad_rows=3)
    module_s3.create_bucket(Bucket=BUCKET)
    module_s3.upload_file(str(csv), BUCKET, "trajectories.csv")
    uri = f"s3://{BUCKET}/trajectories.csv"
    home = root / "catalog"
    s = Catalog(home).ingest_dataset("ngsim", uri, unit_bytes=UNIT)
    assert s.ok, s.errors
    assert s.rows == rep.data_lines - rep.bad_rows
    return home, uri, s.rows


@pytest.fixture
def cat(ngsim_catalog: tuple[Path, str, int], tmp_path: Path, module_s3: Any) -> Catalog:
    home = tmp_path / "catalog"
    shutil.copytree(ngsim_catalog[0], home)
    return Catalog(home)


def test_to_dask_reads_ngsim_with_partition_pruning(
    cat: Catalog, ngsim_catalog: tuple[Path, str, int]
) -> None:
    total = ngsim_catalog[2]
    parts = cat.query(
        "select location, date, count(*) n from ngsim_trajectories group by all order by all"
    )
    assert len(parts) > 1

    whole = cat.to_dask("ngsim")
    assert whole.npartitions == len(parts)
    assert len(whole) == total
    assert list(whole.columns) == list(
        cat.query("select * from ngsim_trajectories limit 0").columns
    )
    got = whole.compute().sort_values(["vehicle_id", "timestamp"]).reset_index(drop=True)
    want = cat.query("select * from ngsim_trajectories order by vehicle_id, timestamp")
    assert got["speed_mps"].sum() == pytest.approx(want["speed_mps"].sum())
    assert (got["vehicle_id"] == want["vehicle_id"]).all()
    assert (got["location"] == want["location"]).all()
    assert [str(d) for d in got["date"]] == [str(d) for d in want["date"]]

    # a location: only its partitions are read (the other sites' files are never opened)
    site = str(parts["location"][0])
    mine = parts[parts["location"] == site]
    frame = cat.to_dask("ngsim", location=site.upper(), columns=["vehicle_id", "speed_mps"])
    assert frame.npartitions == len(mine)
    assert list(frame.columns) == ["vehicle_id", "speed_mps"]
    assert len(frame) == int(mine["n"].sum())

    # a day (UTC partitions, rows cut to the window) and filters on values and partitions
    day = parts["date"][0]
    one = cat.to_dask("ngsim", "TRAJECTORY", day, day)
    assert len(one) == int(parts[parts["date"] == day]["n"].sum())
    fast = cat.to_dask("ngsim", filters=[("speed_mps", ">", 20.0), ("location", "=", site)])
    n_fast = cat.query(
        "select count(*) n from ngsim_trajectories where speed_mps > 20 and location = ?", [site]
    )["n"][0]
    assert fast.npartitions == len(mine) and len(fast) == n_fast
    # a location filter spelled as location= takes it (it read no row); an unknown one names
    # the sites
    for spelled in (site.upper(), f" {site.replace('-', '_')} "):
        upper = cat.to_dask("ngsim", filters=[("location", "in", [spelled])])
        assert upper.npartitions == len(mine) and len(upper) == int(mine["n"].sum()), spelled
    with pytest.raises(ConfigError, match="unknown NGSIM location 'mars'"):
        cat.to_dask("ngsim", filters=[("location", "==", "mars")])
    by_date = cat.to_dask("ngsim", filters=[("date", ">=", str(day))])
    assert len(by_date) == int(parts[parts["date"] >= day]["n"].sum())

    # nothing in range: an empty frame with the same columns and dtypes
    empty = cat.to_dask("ngsim", start=date(2030, 1, 1), end=date(2030, 1, 2))
    assert len(empty) == 0 and list(empty.columns) == list(whole.columns)
    assert dict(empty.dtypes) == dict(whole.dtypes)

    # reads are LRU accesses of the dataset partitions
    log = (cat.paths.access_log).read_text()
    assert f"ngsim/location={site}/date=" in log


def test_an_experiment_over_ngsim(cat: Catalog, tmp_path: Path) -> None:
    days = cat.query("select min(date) lo, max(date) hi, count(*) n from ngsim_trajectories")
    lo, hi, n = days["lo"][0], days["hi"][0], int(days["n"][0])
    p = tmp_path / "ngsim.yml"
    p.write_text(
        "experiment: {name: ngsim, description: trajectories}\n"
        "data:\n  source: ngsim\n  message_type: TRAJECTORY\n"
        f"  date_range: {{start_date: {lo}, end_date: {hi}, timezone: UTC}}\n"
        "processing:\n  cleaning: {remove_duplicates: true}\n"
        "output: {column_names: socrata}\n"  # the default; a dataset keeps canonical names
    )
    frame = CatalogGatherer(p, cat).gather_data().get_gathered_data()
    assert {"vehicle_id", "timestamp", "latitude", "longitude", "location"} <= set(frame.columns)
    assert len(frame) == n  # (vehicle_id, timestamp) is unique: nothing dropped


_CHECKSUM = "select count(*) n, sum(hash(t)) h from ngsim_trajectories t"


def _files_per_partition(cat: Catalog) -> dict[str, int]:
    rows = cat.query(
        "select partition, count(*) n from dataset_files where kind = 'data' group by 1"
    )
    return dict(zip(rows["partition"], rows["n"], strict=True))


def test_compact_ngsim_merges_files_keeps_rows_and_time_travel(
    cat: Catalog, ngsim_catalog: tuple[Path, str, int]
) -> None:
    from typer.testing import CliRunner

    _home, uri, total = ngsim_catalog
    before = _files_per_partition(cat)
    assert max(before.values()) > 2  # many units: several small files per partition
    want = cat.query(_CHECKSUM)
    dtypes = dict(cat.to_dask("ngsim").dtypes)
    snapshot = int(cat.query("select max(snapshot_id) s from ducklake_snapshots('cv')")["s"][0])
    old_files = [cat.paths.root / p for p in cat.query("select path from dataset_files")["path"]]
    old_data = [p for p in old_files if p.suffix == ".parquet"]

    r = CliRunner().invoke(
        app, ["compact", "--source", "ngsim", "--catalog", str(cat.paths.root), "--format", "json"]
    )
    assert r.exit_code == 0, r.output
    done = json.loads(r.stdout)
    assert sorted(d["partition"] for d in done) == sorted(
        f"ngsim/{p}" for p, n in before.items() if n >= 2
    )
    assert all(d["files_after"] == 1 and d["rows"] > 0 for d in done)
    # written with the load's settings: merging costs no space
    assert sum(d["bytes_after"] for d in done) <= sum(d["bytes_before"] for d in done)
    assert (
        sum(d["rows"] for d in done)
        + sum(
            int(cat.query("select sum(rows) r from dataset_files where partition = ?", [p])["r"][0])
            for p, n in before.items()
            if n < 2
        )
        == total
    )
    assert set(_files_per_partition(cat).values()) == {1}

    # rows unchanged: count and a checksum of every value, in SQL and through Dask
    assert cat.query(_CHECKSUM).equals(want)
    frame = cat.to_dask("ngsim")
    assert len(frame) == total and dict(frame.dtypes) == dtypes
    assert cat.verify().clean
    units = cat.query("select distinct unit_id from dataset_files where kind = 'data'")
    assert list(units["unit_id"]) == ["*"]
    assert cat.query("select count(*) n from dataset_units")["n"][0] > len(done)  # checkpoints kept

    # the old files stay for time travel until their snapshots expire
    assert all(p.exists() for p in old_data)
    past = cat.query(
        f"select count(*) n, sum(hash(t)) h from "
        f"(from ngsim_trajectories at (version => {snapshot})) t"
    )
    assert past.equals(want)
    assert cat.compact("ngsim") == []  # nothing left to do

    # a damaged merged file: repair forgets every unit of its input version, the load
    # re-fetches them and the view is whole again
    victim = cat.query("select path from dataset_files where kind = 'data' order by path")["path"][
        0
    ]
    target = cat.paths.root / victim
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    report = cat.verify()
    assert report.mismatched == [victim]
    refetch = quarantine_bad(cat.db, report)
    assert [(x.dataset, x.uri, x.unit_bytes) for x in refetch] == [("ngsim", uri, UNIT)]
    assert cat.query("select count(*) n from dataset_units")["n"][0] == 0
    assert cat.query("select count(*) n from ngsim_trajectories")["n"][0] == 0
    again = cat.ingest_dataset("ngsim", uri, unit_bytes=UNIT)
    assert again.ok and again.inputs_published == 1
    assert cat.query(_CHECKSUM).equals(want)
    # the snapshots between the compaction and the repair showed the damaged merged file; the
    # units loaded again are other files, so nothing has its bytes: said, and kept as it is
    [kept] = mend_kept(cat.db)
    assert not kept.ok and kept.path == victim and "no file of the catalog has its bytes" in kept.line
    assert list(cat.verify().kept_only) == [victim]

    # expiry deletes the replaced files (the damaged one's snapshots too); the catalog is clean
    cat.db.expire_snapshots(now_utc())
    assert not any(p.exists() for p in old_data)
    assert cat.verify().clean and cat.query(_CHECKSUM).equals(want)


def test_evict_counts_ngsim_and_drops_it_in_lru_order(
    cat: Catalog, ngsim_catalog: tuple[Path, str, int], module_s3: Any, tmp_path: Path
) -> None:
    _home, uri, total = ngsim_catalog
    want = cat.query(_CHECKSUM)
    seed_replica(
        module_s3, date(2021, 4, 1), date(2021, 4, 2), records_per_hour=20, files_per_hour=1
    )
    s = cat.ingest("wydot", "BSM", "2021-04-01", "2021-04-02", timezone="UTC", rate_limit=0)
    d1, d2 = "wydot/BSM/2021/04/01", "wydot/BSM/2021/04/02"
    assert s.rows > 0 and {p["partition"] for p in cat.status("wydot")} == {d1, d2}
    ngsim_bytes = int(cat.query("select sum(bytes) b from dataset_files")["b"][0])
    assert cache_bytes(cat.db) > ngsim_bytes  # every byte of every source is counted

    # reading NGSIM makes it the most recently used: the CV days go first, one at a time,
    # and NGSIM's access time survives the evictions that fold the access log
    cat.to_dask("ngsim")
    assert cat.evict((cache_bytes(cat.db) - 1) / GB) == [d1]
    assert any(r["last_accessed"] for r in cat.status("ngsim"))
    assert cat.evict((cache_bytes(cat.db) - 1) / GB) == [d2]
    assert cat.query(_CHECKSUM).equals(want)

    # then NGSIM: the input goes whole, its checkpoints too, so a load fetches it again
    assert cat.evict(0) == [f"ngsim:{uri}"]
    for table in ("dataset_files", "dataset_units", "dataset_inputs"):
        assert cat.query(f"select count(*) n from {table}")["n"][0] == 0
    assert cat.query("select count(*) n from ngsim_trajectories")["n"][0] == 0
    assert cat.status("ngsim") == [] and cat.verify().clean
    assert not list((cat.paths.root / "lake" / "main" / "ngsim_trajectories").rglob("*.parquet"))
    again = cat.ingest_dataset("ngsim", uri, unit_bytes=UNIT)
    assert again.ok and again.units_cached == 0 and again.units_done == again.units
    assert again.rows == total and cat.query(_CHECKSUM).equals(want)

    # an input the catalog could not load again (a local file changed since) is never evicted
    local = tmp_path / "small.csv"
    generate_ngsim(local, 1_500, seed=3)
    assert cat.ingest_dataset("ngsim", str(local)).ok
    with open(local, "a") as f:
        f.write("\n")
    assert cat.evict(0) == [f"ngsim:{uri}"]
    kept = cat.query("select uri from dataset_inputs")
    assert list(kept["uri"]) == [str(local)]
    assert cat.verify().clean
    # ...and `cache evict` says what it kept and why (it said only the catalog's size)
    held = int(cat.query("select sum(bytes) b from dataset_files")["b"][0])
    assert cat.never_evicted() == [(f"ngsim:{local}", held)]
    r = CliRunner().invoke(
        app, ["cache", "evict", "--max-size-gb", "0", "--catalog", str(cat.paths.root)]
    )
    assert r.exit_code == 0, r.output
    assert f"  kept: ngsim:{local} (" in r.output and "could not be loaded again" in r.output


def test_an_ngsim_ingest_keeps_the_cache_within_max_size_gb_as_a_cv_ingest_does(
    cat: Catalog,
    ngsim_catalog: tuple[Path, str, int],
    module_s3: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The size limit counts every byte of every source, and an NGSIM ingest keeps the catalog
    within it at its end as a CV ingest does: the one LRU eviction over every source (`cache
    evict`'s), never the inputs the run asked for, and what went in the summary's `evicted`."""
    _home, uri, total = ngsim_catalog
    seed_replica(
        module_s3, date(2021, 4, 1), date(2021, 4, 2), records_per_hour=20, files_per_hour=1
    )
    assert cat.ingest("wydot", "BSM", "2021-04-01", "2021-04-02", timezone="UTC", rate_limit=0).ok
    d1, d2 = "wydot/BSM/2021/04/01", "wydot/BSM/2021/04/02"
    second = tmp_path / "second.csv"
    generate_ngsim(second, 1_500, seed=5)
    module_s3.upload_file(str(second), BUCKET, "second.csv")
    uri2 = f"s3://{BUCKET}/second.csv"

    # the CLI with the limit in the environment (CVCATALOG_CACHE__MAX_SIZE_GB): the size of the
    # catalog before this load, so the least recently used data goes until it fits again: the
    # first NGSIM input, loaded before the CV days
    limit = cache_bytes(cat.db) / GB
    monkeypatch.setenv("CVCATALOG_CACHE__MAX_SIZE_GB", repr(limit))
    r = CliRunner().invoke(
        app,
        ["ingest", "--source", "ngsim", "--path", uri2, "--catalog", str(cat.paths.root),
         "--format", "json", "--no-progress"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["evicted"] == [f"ngsim:{uri}"]
    assert cache_bytes(cat.db) <= limit * GB
    assert list(cat.query("select uri from dataset_inputs")["uri"]) == [uri2]
    assert {p["partition"] for p in cat.status("wydot")} == {d1, d2}
    monkeypatch.delenv("CVCATALOG_CACHE__MAX_SIZE_GB")

    # the Python API with the limit in a config (a CV data-source file serves as it is) below
    # what the run writes: everything else goes, oldest first; the run's input stays
    tiny = tmp_path / "tiny.yml"
    tiny.write_text(
        "source: wydot\nmessage_type: BSM\ndate_range: {days_back: 1}\n"
        "cache: {max_size_gb: 0.000001}\n"
    )
    s = cat.ingest_dataset("ngsim", uri, unit_bytes=UNIT, config=tiny)
    assert s.ok and s.evicted == [d1, d2, f"ngsim:{uri2}"], s.as_dict()
    assert "evicted (LRU, over cache.max_size_gb)" in "\n".join(summary_lines(s))
    assert list(cat.query("select uri from dataset_inputs")["uri"]) == [uri]
    assert cat.query("select count(*) n from ngsim_trajectories")["n"][0] == total
    assert cat.status("wydot") == [] and cat.verify().clean


def test_runs_show_lists_the_partitions_an_ngsim_run_wrote(
    cat: Catalog, ngsim_catalog: tuple[Path, str, int]
) -> None:
    _home, _uri, total = ngsim_catalog
    (run_id,) = cat.query("select run_id from ingest_runs where source = 'ngsim'")["run_id"]
    want = cat.query(
        "select 'ngsim/' || partition as partition, sum(rows) as n, count(*) as files, "
        "sum(bytes) as b from dataset_files where kind = 'data' group by 1 order by 1"
    )
    assert len(want) > 1

    def shown() -> list[dict[str, Any]]:
        r = CliRunner().invoke(
            app, ["runs", "show", run_id, "--catalog", str(cat.paths.root), "--format", "json"]
        )
        assert r.exit_code == 0, r.output
        rows: list[dict[str, Any]] = json.loads(r.stdout)
        return rows

    rows = shown()
    assert [x["partition"] for x in rows] == list(want["partition"])
    assert [x["rows"] for x in rows] == list(want["n"]) and sum(x["rows"] for x in rows) == total
    assert [x["files"] for x in rows] == list(want["files"])
    assert [x["parquet_bytes"] for x in rows] == list(want["b"])
    assert {x["status"] for x in rows} == {"complete"} and {x["objects"] for x in rows} == {1}
    assert all(x["partition"].endswith(f"date={x['date']}") for x in rows)
    r = CliRunner().invoke(app, ["runs", "show", run_id, "--catalog", str(cat.paths.root)])
    assert r.exit_code == 0, r.output
    assert f"{len(want)} partition(s) currently from run {run_id}" in r.output

    # compacted, the run's rows are still its own (now one file a partition)
    assert cat.compact("ngsim")
    after = shown()
    assert [x["rows"] for x in after] == [x["rows"] for x in rows]
    assert {x["files"] for x in after} == {1}


def test_ngsim_on_an_s3_lake_compacts_publishes_and_reads_with_dask(
    ngsim_catalog: tuple[Path, str, int], module_s3: Any, tmp_path: Path
) -> None:
    _home, uri, total = ngsim_catalog
    module_s3.create_bucket(Bucket="every-lake")
    cat = Catalog(tmp_path / "catalog", storage="s3://every-lake/team")
    assert cat.ingest_dataset("ngsim", uri, unit_bytes=UNIT).ok
    want = cat.query(_CHECKSUM)
    assert want["n"][0] == total
    before = sum(_files_per_partition(cat).values())

    done = cat.compact("ngsim")  # read through s3fs, merged files PUT with their SHA-256
    assert done and set(_files_per_partition(cat).values()) == {1}
    assert sum(_files_per_partition(cat).values()) < before
    assert cat.query(_CHECKSUM).equals(want) and cat.verify().clean
    assert not [p for p in (tmp_path / "catalog" / "lake").rglob("*") if p.is_file()]
    assert len(cat.to_dask("ngsim")) == total  # the S3 lake read by Dask

    summary = cat.publish("s3://every-lake/published")
    assert summary.ok, summary.summary()
    remote = Catalog("s3://every-lake/published")
    assert remote.query(_CHECKSUM).equals(want)
    site = str(remote.query("select min(location) l from ngsim_trajectories")["l"][0])
    n_site = cat.query("select count(*) n from ngsim_trajectories where location = ?", [site])
    frame = remote.to_dask("ngsim", location=site, columns=["vehicle_id", "timestamp"])
    assert len(frame) == n_site["n"][0]

    # the CLI: status lists NGSIM's partitions, evict names the input and how to load it again
    from typer.testing import CliRunner

    home = str(cat.paths.root)
    r = CliRunner().invoke(
        app, ["cache", "status", "--source", "ngsim", "--catalog", home, "--format", "json"]
    )
    assert r.exit_code == 0, r.output
    assert sum(row["rows"] for row in json.loads(r.stdout)) == total
    r = CliRunner().invoke(app, ["cache", "evict", "--max-size-gb", "0", "--catalog", home])
    assert r.exit_code == 0, r.output
    assert f"load again: cvcatalog ingest --source ngsim --path {uri}" in r.output
    assert cat.status("ngsim") == [] and cat.verify().clean
