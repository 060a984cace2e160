"""Snapshots you can see and time travel (issue 14), against the local S3 endpoint.

A catalog ingests two days in two runs, then one object of the first day changes and is picked
up with --check-changes. Every snapshot is listed with its run, and a query at an earlier
snapshot sees exactly what the catalog held then (compared with what it returned at the time,
never with hard-coded counts).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cvcatalog import schemas
from cvcatalog.catalog import Catalog
from cvcatalog.cli.main import app
from cvcatalog.exceptions import CatalogError, ConfigError, QueryError
from cvcatalog.ops.discover import human_bytes
from cvcatalog.pipeline.report import NullProgress
from cvcatalog.read.experiments import CatalogGatherer, ExperimentConfig
from cvcatalog.sandbox.replica import seed_replica
from cvcatalog.schemas.base import MessageSchema
from cvcatalog.sources.bucket import BUCKET
from cvcatalog.state import pins
from cvcatalog.state.eviction import cache_bytes

D1, D2 = date(2021, 4, 1), date(2021, 4, 2)
COUNT = (
    "select date, count(*) as n, round(sum(speed_mps), 3) as s from wydot_bsm group by 1 order by 1"
)
runner = CliRunner()


def _ingest(cat: Catalog, day: date, **kw: Any) -> str:
    s = cat.ingest("wydot", "BSM", day, day, timezone="UTC", rate_limit=0, max_workers=4, **kw)
    assert s.ok, s.as_dict()
    return s.run_id


@pytest.fixture(scope="module")
def history(module_s3: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The catalog, its runs, and what COUNT returned after each of them."""
    client = module_s3
    seed_replica(client, D1, D2, sources=["wydot"], message_types=["BSM"], records_per_hour=8,
                 files_per_hour=1)  # fmt: skip
    cat = Catalog(tmp_path_factory.mktemp("versions") / "catalog")
    seen: dict[str, Any] = {}
    seen["run1"] = _ingest(cat, D1)
    seen["after1"] = cat.query(COUNT)
    seen["time1"] = datetime.now(UTC)
    seen["run2"] = _ingest(cat, D2)
    seen["after2"] = cat.query(COUNT)
    # one object of day 1 changes: fewer records, other speeds
    key = sorted(
        o["Key"]
        for o in client.list_objects_v2(Bucket=BUCKET, Prefix="wydot/BSM/2021/04/01/")["Contents"]
    )[0]
    lines = client.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()
    kept = [re.sub(r'"speed":(\d)', r'"speed":1\1', ln) for ln in lines[: len(lines) // 2]]
    client.put_object(Bucket=BUCKET, Key=key, Body=("\n".join(kept) + "\n").encode())
    seen["run3"] = _ingest(cat, D1, check_changes=True)
    seen["after3"] = cat.query(COUNT)
    seen["cat"] = cat
    return seen


def _ingest_snapshots(cat: Catalog) -> list[dict[str, Any]]:
    return [s for s in cat.snapshots() if s["run_id"] is not None and s["tables"]]


def test_every_ingest_commit_is_a_snapshot_with_its_run(history: dict[str, Any]) -> None:
    cat: Catalog = history["cat"]
    snaps = _ingest_snapshots(cat)
    assert [s["run_id"] for s in snaps] == [history["run3"], history["run2"], history["run1"]]
    newest_first = [s["snapshot_id"] for s in cat.snapshots()]
    assert newest_first == sorted(newest_first, reverse=True)
    s3, s2, s1 = snaps
    n1 = int(history["after1"].n.sum())
    assert s1["tables"] == "wydot_bsm" and s1["rows_added"] == n1 and s1["rows_removed"] == 0
    assert s2["rows_added"] == int(history["after2"].n.sum()) - n1
    # the changed day: its old rows went, its new rows came
    assert s3["rows_removed"] > 0
    assert s3["rows_added"] - s3["rows_removed"] == int(
        history["after3"].n.sum() - history["after2"].n.sum()
    )
    assert cat.snapshots(limit=2) == cat.snapshots()[:2]
    assert cat.snapshots("wydot", "BSM")[0]["snapshot_id"] == s3["snapshot_id"]
    assert cat.snapshots("thea", "BSM") == []
    # a source alone: its tables only (wydot is not wydot_backup)
    assert cat.snapshots("wydot") == cat.snapshots("wydot", "BSM")
    assert cat.snapshots("wydot_backup") == []
    with pytest.raises(ConfigError, match="unknown source"):
        cat.snapshots("nowhere")


def test_sql_or_a_time_of_another_type_is_one_line(tmp_path: Path) -> None:
    """query(None) was DuckDB's TypeError (several lines of 'incompatible function arguments');
    as_of=date(...), a numpy.datetime64 or an int an AttributeError ('no attribute tzinfo').
    Both are checked before the catalog is opened."""
    cat = Catalog(tmp_path / "none")
    for sql in (None, 5):
        with pytest.raises(QueryError, match=r"^the query is SQL text \(a str\), got "):
            cat.query(sql)  # type: ignore[arg-type]
    for when in (date(2021, 4, 3), 5):
        for call in (
            lambda: cat.query("select 1", as_of=when),  # noqa: B023
            lambda: cat.to_dask("wydot", "BSM", as_of=when),  # noqa: B023
        ):
            with pytest.raises(ConfigError, match=r"^as_of is a time: a datetime or an ISO 8601 str"):
                call()
    assert not (tmp_path / "none").exists()


def test_a_limit_that_is_no_whole_number_is_one_line(history: dict[str, Any]) -> None:
    """limit="3" was a TypeError ('<' not supported between str and int) from snapshots() and
    runs(); 2.5 listed 3 snapshots but 2 runs, True one of each; query_spatial's -1 was
    DuckDB's Binder Error."""
    cat: Catalog = history["cat"]
    for bad in ("3", 2.5, True):
        for call in (
            lambda: cat.snapshots(limit=bad),  # noqa: B023
            lambda: cat.runs(limit=bad),  # noqa: B023
            lambda: cat.query_spatial("bsm", within=(41.2, -105.5, 5e4), limit=bad),  # noqa: B023
        ):
            with pytest.raises(ConfigError, match=r"^limit must be a whole number, 0 or more, got"):
                call()
    with pytest.raises(ConfigError, match=r"^limit must be 0 or more, got -1$"):
        cat.query_spatial("bsm", within=(41.2, -105.5, 5e4), limit=-1)
    assert len(cat.snapshots(limit=2)) == len(cat.runs(limit=2)) == 2


def test_a_query_at_a_snapshot_sees_the_catalog_as_it_was(history: dict[str, Any]) -> None:
    cat: Catalog = history["cat"]
    s3, s2, s1 = _ingest_snapshots(cat)
    for snap, want in ((s1, "after1"), (s2, "after2"), (s3, "after3")):
        got = cat.query(COUNT, snapshot=snap["snapshot_id"])
        assert got.equals(history[want]), snap
    assert not history["after2"].equals(history["after3"])  # the change is visible at all
    # the views travel too
    at1 = cat.query("select count(*) as n from wydot_bsm_socrata", snapshot=s1["snapshot_id"])
    assert at1.n[0] == history["after1"].n.sum()
    # as of a time: the snapshot current then
    got = cat.query(COUNT, as_of=history["time1"])
    assert got.equals(history["after1"])
    got = cat.query(COUNT, as_of=history["time1"].isoformat())
    assert got.equals(history["after1"])


def test_time_travel_gives_one_clear_line_for_what_is_not_kept(history: dict[str, Any]) -> None:
    cat: Catalog = history["cat"]
    newest = cat.snapshots()[0]["snapshot_id"]
    with pytest.raises(CatalogError, match=f"no snapshot {newest + 5}; the newest is {newest}"):
        cat.query("select 1", snapshot=newest + 5)
    with pytest.raises(CatalogError, match="did not exist"):
        cat.query("select 1", as_of=datetime(2000, 1, 1, tzinfo=UTC))
    # a time UTC cannot hold (before year 1 there): the same line (an OverflowError)
    with pytest.raises(CatalogError, match="did not exist at 0001-01-01T00:00:00\\+14:00"):
        cat.query("select 1", as_of="0001-01-01T00:00:00+14:00")
    with pytest.raises(ConfigError, match="not both"):
        cat.query("select 1", snapshot=1, as_of="2021-01-01")
    with pytest.raises(ConfigError, match="not a time"):
        cat.query("select 1", as_of="last tuesday")


def _first_with(cat: Catalog, sql: str) -> int:
    """The oldest snapshot at which sql runs (found by trying each, oldest first)."""
    for snap in reversed(cat.snapshots()):
        try:
            cat.query(sql, snapshot=snap["snapshot_id"])
        except QueryError:
            continue
        return int(snap["snapshot_id"])
    raise AssertionError(f"no snapshot runs {sql}")


def test_a_table_not_made_yet_at_a_snapshot_is_one_line_naming_its_first(
    history: dict[str, Any], module_s3: Any, tmp_path: Path
) -> None:
    cat: Catalog = history["cat"]
    root = str(cat.paths.root)
    assert cat.snapshots()[-1]["snapshot_id"] == 0  # snapshot 0: the lake before any table
    first = _first_with(cat, "select count(*) from wydot_bsm")
    assert first > 0
    line = (
        f"wydot_bsm did not exist yet at snapshot 0: the first snapshot with it is {first} "
        "(`cvcatalog snapshots` lists them)"
    )
    with pytest.raises(QueryError) as raised:
        cat.query("select count(*) as n from wydot_bsm", snapshot=0)
    assert str(raised.value) == line
    with pytest.raises(QueryError, match=r"^bsm_points did not exist yet at snapshot 0: "):
        cat.query("select count(*) from bsm_points", snapshot=0, read_only=False)
    # as of a time before the first table: the snapshot current then
    at0 = cat.snapshots()[-1]["committed_at"]
    with pytest.raises(QueryError, match=r"did not exist yet at .* \(snapshot 0\): the first"):
        cat.query("select count(*) from wydot_bsm", as_of=at0)
    # a name the lake never had is DuckDB's line, as without time travel
    with pytest.raises(
        QueryError, match=r"^Catalog Error: Table with name nosuch does not exist!$"
    ):
        cat.query("select * from nosuch", snapshot=0)
    res = runner.invoke(app, ["query", "--catalog", root, "--snapshot", "0",
                              "select count(*) from wydot_bsm"])  # fmt: skip
    assert res.exit_code == 1 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [f"error: {line}"]
    res = runner.invoke(app, ["export", "--catalog", root, "--snapshot", "0", "--source", "wydot",
                              "--type", "BSM", "-o", str(tmp_path / "x.parquet")])  # fmt: skip
    assert res.exit_code == 1 and res.stderr.strip().splitlines() == [f"error: {line}"]
    assert not (tmp_path / "x.parquet").exists()
    # a published catalog says the same
    module_s3.create_bucket(Bucket="cv-before")
    assert cat.publish("s3://cv-before/all", rate_limit=0).ok
    with pytest.raises(QueryError) as raised:
        Catalog("s3://cv-before/all").query("select count(*) from wydot_bsm", snapshot=0)
    assert str(raised.value) == line
    res = runner.invoke(app, ["query", "--catalog", "s3://cv-before/all", "--snapshot", "0",
                              "select count(*) from bsm_points"])  # fmt: skip
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [
        f"error: bsm_points did not exist yet at snapshot 0: the first snapshot with it is "
        f"{_first_with(cat, 'select count(*) from bsm_points')} (`cvcatalog snapshots` lists them)"
    ]


def test_an_expired_snapshot_names_the_oldest_kept(history: dict[str, Any], tmp_path: Path) -> None:
    cat: Catalog = history["cat"]
    first = _ingest_snapshots(cat)[-1]["snapshot_id"]
    # a copy of the catalog, so the other tests keep their history
    copy = Catalog(tmp_path / "copy")
    shutil.copytree(cat.paths.root, copy.paths.root)
    copy.db.expire_snapshots(datetime.now(UTC) + timedelta(seconds=1))
    oldest = copy.snapshots()[-1]["snapshot_id"]
    assert oldest > first
    with pytest.raises(
        CatalogError, match=f"snapshot {first} is no longer kept.*oldest.* {oldest}"
    ) as raised:
        copy.query("select 1", snapshot=first)
    assert str(raised.value).endswith(
        "older ones expired (after cache.snapshot_retention_days; cache clear and cache evict "
        "expire them at once)"
    )


def test_an_export_at_a_snapshot_writes_its_rows_and_says_which(
    history: dict[str, Any], tmp_path: Path
) -> None:
    """`export --snapshot` / `--as-of` wrote the older rows, but its summary (and --json's
    `filters`) read as an export of the current catalog."""
    cat: Catalog = history["cat"]
    _s3, _s2, s1 = _ingest_snapshots(cat)
    sid = s1["snapshot_id"]
    res = cat.export("wydot", "BSM", output=tmp_path / "s1.parquet", snapshot=sid)
    assert res.rows == int(history["after1"].n.sum())
    assert pq.read_table(tmp_path / "s1.parquet").num_rows == res.rows
    assert res.filters == [f"snapshot {sid}"]
    then = cat.export("wydot", "BSM", D1, output=tmp_path / "t1.csv", as_of=history["time1"])
    assert then.filters[0] == f"snapshot {sid}" and then.rows == int(history["after1"].n[0])
    assert cat.export("wydot", "BSM", output=tmp_path / "now.csv").filters == []
    out = tmp_path / "cli.csv"
    r = runner.invoke(app, ["export", "--catalog", str(cat.paths.root), "--source", "wydot",
                            "--type", "BSM", "--snapshot", str(sid), "-o", str(out),
                            "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["filters"] == f"snapshot {sid}"


def test_the_change_feed_takes_snapshot_ids_as_query_does(history: dict[str, Any]) -> None:
    """Catalog.changes(since='2') raised a TypeError, since=None an AssertionError, and
    since=-1 / 2.5 / True were looked up as snapshots ('snapshot 2.5 is no longer kept');
    they are query's and pin's one line now ('2' is 2, as there)."""
    cat: Catalog = history["cat"]
    _s3, s2, s1 = _ingest_snapshots(cat)
    since, until = s1["snapshot_id"], s2["snapshot_id"]
    feed = cat.changes("wydot", "BSM", since=since, until=until)
    assert cat.changes("wydot", "BSM", since=str(since), until=str(until)).equals(feed)
    for bad in (-1, 2.5, True, "two"):
        with pytest.raises(ConfigError, match="snapshot must be a snapshot id"):
            cat.changes("wydot", "BSM", since=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="snapshot must be a snapshot id"):
        cat.changes("wydot", "BSM", since=since, until="x")
    with pytest.raises(ConfigError, match="need since"):
        cat.changes("wydot", "BSM", since=None)  # type: ignore[arg-type]
    res = runner.invoke(app, ["changes", "--catalog", str(cat.paths.root), "--source", "wydot",
                              "--type", "BSM", "--since", "-1"])  # fmt: skip
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [
        "error: snapshot must be a snapshot id, a whole number 0 or more (`cvcatalog "
        "snapshots` lists them), not -1"
    ]


def test_a_time_in_expired_snapshots_after_a_pin_is_refused_not_read_at_the_pin(
    history: dict[str, Any], tmp_path: Path
) -> None:
    """A pin keeps snapshot s1; the later ones but the newest expire. `--as-of` a time when
    s2 was current read s1 (the newest kept one committed before it): the catalog as it
    was long before, silently. It is one line now, and so is `--snapshot` s2, which named
    s1 as 'the oldest snapshot still kept' and said the older ones had expired."""
    cat: Catalog = history["cat"]
    _s3, s2, s1 = _ingest_snapshots(cat)
    copy = Catalog(tmp_path / "copy")
    shutil.copytree(cat.paths.root, copy.paths.root)
    copy.pin("held", "wydot", "BSM", snapshot=s1["snapshot_id"])
    copy.db.expire_snapshots(datetime.now(UTC) + timedelta(seconds=1))
    kept = [s["snapshot_id"] for s in copy.snapshots()]
    assert s1["snapshot_id"] in kept and s2["snapshot_id"] not in kept
    newest = kept[0]
    with pytest.raises(CatalogError) as raised:
        copy.query(COUNT, as_of=s2["committed_at"])
    line = str(raised.value)
    assert line.startswith("the snapshot current at ") and "may no longer be kept" in line
    assert f"kept ones around them are {s1['snapshot_id']} and {newest}" in line
    with pytest.raises(CatalogError, match="may no longer be kept"):
        copy.to_dask("wydot", "BSM", as_of=s2["committed_at"])
    with pytest.raises(CatalogError) as raised:
        copy.query(COUNT, snapshot=s2["snapshot_id"])
    line = str(raised.value)
    assert line.startswith(f"snapshot {s2['snapshot_id']} is no longer kept: snapshots ")
    assert "oldest" not in line and "older ones" not in line
    # the pinned snapshot's own commit time, and a time after the newest, still read
    assert copy.query(COUNT, as_of=s1["committed_at"]).equals(history["after1"])
    assert copy.query(COUNT, as_of=datetime.now(UTC)).equals(history["after3"])
    res = runner.invoke(app, ["query", "--catalog", str(copy.paths.root), "--as-of",
                              s2["committed_at"].isoformat(), "select 1"])  # fmt: skip
    assert res.exit_code == 1 and len(res.stderr.strip().splitlines()) == 1, res.output


def test_replaced_files_show_as_held_and_an_eviction_reports_the_rows_it_removed(
    history: dict[str, Any], tmp_path: Path
) -> None:
    """A day ingested again: its old files stay for the older snapshots, and `cache status`
    counts them as eviction does. An eviction expires every older snapshot, so the files it
    ended leave the metadata; its snapshot still reports their rows (recorded at commit)."""
    copy = Catalog(tmp_path / "copy")  # the other tests keep their history
    shutil.copytree(history["cat"].paths.root, copy.paths.root)
    root = str(copy.paths.root)
    day2 = "select coalesce(sum(bytes), 0) as b from partition_files where kind = 'data' " \
        "and partition_key = 'wydot/BSM/2021/04/02'"  # fmt: skip
    replaced = int(copy.query(day2).b[0])
    assert copy.older_snapshot_bytes() == 0 < replaced
    _ingest(copy, D2, force_refresh=True)
    assert copy.older_snapshot_bytes() == replaced == copy.older_snapshot_bytes("wydot", "BSM")
    assert copy.older_snapshot_bytes("thea") == 0
    res = runner.invoke(app, ["cache", "status", "--catalog", root])
    assert res.exit_code == 0, res.output
    assert f"MB Parquet + {replaced / 1e6:,.1f} MB held for older snapshots" in res.stdout
    assert cache_bytes(copy.db) == int(copy.query(
        "select (select sum(bytes) from partition_files) as n").n[0]) + replaced  # fmt: skip

    # a limit the partitions fit once the older snapshots are gone: no partition evicted, and
    # the line says what the expiry freed
    total = cache_bytes(copy.db)
    limit = (total - replaced // 2) / 1e9
    res = runner.invoke(app, ["cache", "evict", "--max-size-gb", f"{limit}", "--catalog", root])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines() == [
        "evicted 0 partitions",
        f"freed {human_bytes(replaced)}; the catalog keeps {human_bytes(total - replaced)} "
        f"(limit {limit:g} GiB = {human_bytes(limit * 1024**3)})",  # (its bytes in MB: GiB)
    ]
    assert copy.older_snapshot_bytes() == 0 and cache_bytes(copy.db) == total - replaced
    _ingest(copy, D2, force_refresh=True)  # something older again, for the eviction below

    rows = int(copy.query("select count(*) as n from wydot_bsm").n[0])
    res = runner.invoke(app, ["cache", "evict", "--max-size-gb", "0", "--catalog", root])
    assert res.exit_code == 0, res.output
    [evict] = [s for s in copy.snapshots() if s["message"] == "cache evict"]
    assert evict["tables"] == "wydot_bsm" and rows > 0
    assert (evict["rows_added"], evict["rows_removed"]) == (0, rows)
    assert evict["changes"] == {"wydot_bsm": {"added": 0, "removed": rows}}
    assert copy.older_snapshot_bytes() == 0  # expired with the snapshots that showed them


def test_eviction_counts_only_the_bytes_a_pin_does_not_keep(
    history: dict[str, Any], tmp_path: Path
) -> None:
    """Evicting a day whose files a pinned snapshot shows frees none of them: it counted their
    bytes as freed, evicted that day instead of one that frees them, and left the catalog over
    its limit. Now a day a pin holds whole is passed over and the next one goes."""
    copy = Catalog(tmp_path / "copy")
    shutil.copytree(history["cat"].paths.root, copy.paths.root)
    pin = copy.pin("held", "wydot", "BSM")
    pinned = copy.query(COUNT, snapshot=pin.snapshot_id)
    _ingest(copy, D1, force_refresh=True)  # day 1's files now new ones, no pin shows them
    copy.to_dask("wydot", "BSM", D1, D1)  # day 2, all of it pinned, is the least recently used
    limit = cache_bytes(copy.db) - 1
    assert copy.evict(limit / 1024**3) == ["wydot/BSM/2021/04/01"]
    assert cache_bytes(copy.db) <= limit
    assert copy.query("select distinct date from wydot_bsm").date.astype(str).tolist() == [
        "2021-04-02"
    ]
    assert copy.query(COUNT, snapshot=pin.snapshot_id).equals(pinned)


def test_cache_clear_says_the_bytes_it_freed(history: dict[str, Any], tmp_path: Path) -> None:
    """`cache clear` said the bytes of the cleared partitions' current files: not the files only
    older snapshots showed, which it expires and deletes too, and counting those a pin keeps.
    Now it says what went, as `cache evict` does."""
    copy = Catalog(tmp_path / "copy")
    shutil.copytree(history["cat"].paths.root, copy.paths.root)
    _ingest(copy, D2, force_refresh=True)  # day 2's first files now only older snapshots show
    held = copy.older_snapshot_bytes()
    total = cache_bytes(copy.db)
    assert held > 0
    # a source the catalog holds nothing of: nothing cleared, and nothing expired either (it
    # expired every unpinned snapshot, the other tables' time travel with them)
    kept = [s["snapshot_id"] for s in copy.snapshots()]
    res = runner.invoke(app, ["cache", "clear", "--source", "thea", "--yes", "--catalog",
                              str(copy.paths.root)])  # fmt: skip
    assert res.exit_code == 0 and res.stdout.startswith("cleared 0 partitions"), res.output
    assert [s["snapshot_id"] for s in copy.snapshots()] == kept and len(kept) > 1
    assert copy.older_snapshot_bytes() == held and cache_bytes(copy.db) == total
    res = runner.invoke(app, ["cache", "clear", "--yes", "--catalog", str(copy.paths.root)])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines() == [
        f"cleared 2 partitions of everything; freed {human_bytes(total)}, the catalog keeps 0 B"
    ]
    assert cache_bytes(copy.db) == 0


def test_runs_show_tells_a_run_that_changed_nothing_from_one_whose_snapshots_expired(
    history: dict[str, Any], tmp_path: Path
) -> None:
    """A re-run that found its day cached commits no snapshot: `runs show` said 'none kept',
    as if its snapshots had expired."""
    copy = Catalog(tmp_path / "copy")
    shutil.copytree(history["cat"].paths.root, copy.paths.root)
    again = _ingest(copy, D2 + timedelta(days=30))  # no objects: nothing to write

    def said(run_id: str) -> list[str]:
        res = runner.invoke(app, ["runs", "show", run_id, "--catalog", str(copy.paths.root)])
        assert res.exit_code == 0, res.output
        return [ln for ln in res.stdout.splitlines() if ln.startswith("committed by the run")]

    assert said(again) == ["committed by the run: no snapshot (it changed no table)"]
    s2 = _ingest_snapshots(copy)[1]
    assert said(history["run2"]) == [f"committed by the run: snapshot {s2['snapshot_id']}"]
    res = runner.invoke(app, ["cache", "clear", "--yes", "--catalog", str(copy.paths.root)])
    assert res.exit_code == 0, res.output
    assert said(history["run2"]) == ["committed by the run: no snapshot kept"]

    pinned = Catalog(tmp_path / "pinned")
    shutil.copytree(history["cat"].paths.root, pinned.paths.root)
    pinned.pin("held", "wydot", "BSM")  # keeps every file the catalog shows now
    _ingest(pinned, D2, force_refresh=True)
    # what no pin shows: day 2's new files (and any quarantine file: not in the lake)
    fresh = int(pinned.query(
        "select sum(bytes) as b from partition_files where partition_key = "
        "'wydot/BSM/2021/04/02' or kind = 'quarantine'").b[0])  # fmt: skip
    assert pinned.clear("wydot") == (2, fresh)
    assert cache_bytes(pinned.db) == pinned.older_snapshot_bytes() > 0


def test_cli_snapshots_and_query_at_a_snapshot(history: dict[str, Any]) -> None:
    cat: Catalog = history["cat"]
    root = str(cat.paths.root)
    res = runner.invoke(app, ["snapshots", "--catalog", root, "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["snapshot_id"] for r in rows] == [s["snapshot_id"] for s in cat.snapshots()]
    changed = next(r for r in rows if r["run_id"] == history["run3"])
    assert changed["changes"]["wydot_bsm"]["removed"] == changed["rows_removed"] > 0
    res = runner.invoke(
        app, ["snapshots", "--catalog", root, "--source", "wydot", "--type", "BSM", "--limit", "1",
              "--format", "csv"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0].startswith("snapshot_id,committed_at,run_id")
    assert len(res.stdout.splitlines()) == 2
    first = next(r for r in reversed(rows) if r["run_id"] == history["run1"])
    res = runner.invoke(
        app, ["query", "--catalog", root, "--snapshot", str(first["snapshot_id"]), "--format",
              "json", "select count(*) as n from wydot_bsm"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == [{"n": int(history["after1"].n.sum())}]
    res = runner.invoke(app, ["query", "--catalog", root, "--snapshot", "999999", "select 1"])
    assert res.exit_code == 1
    assert "no snapshot 999999" in res.output and "Traceback" not in res.output


def test_lineage_from_a_row_to_its_object_run_and_snapshot(
    history: dict[str, Any], module_s3: Any
) -> None:
    cat: Catalog = history["cat"]
    s3, s2, s1 = _ingest_snapshots(cat)
    # day 1's first object changed (run 3); its others kept the rows run 1 loaded
    for day, pick, run, snap in (
        (D1, "min", "run3", s3), (D1, "max", "run1", s1), (D2, "min", "run2", s2),
    ):  # fmt: skip
        key = cat.query(
            f"select {pick}(source_key) as k from wydot_bsm where date = ?", [day]
        ).k[0]
        origin = cat.lineage(key)
        head = module_s3.head_object(Bucket=BUCKET, Key=key)
        assert origin["etag"] == head["ETag"].strip('"') and origin["size"] == head["ContentLength"]
        assert origin["run_id"] == history[run] and origin["snapshot_id"] == snap["snapshot_id"]
        # the snapshot is where those rows appeared: absent just before it
        before = cat.query(
            "select count(*) as n from wydot_bsm where source_key = ?", [key],
            snapshot=snap["snapshot_id"] - 1,
        ).n[0]  # fmt: skip
        at = cat.query(
            "select count(*) as n from wydot_bsm where source_key = ?", [key],
            snapshot=snap["snapshot_id"],
        ).n[0]  # fmt: skip
        assert at > 0 and (before == 0 or (pick == "min" and day == D1))  # changed: rows before
    with pytest.raises(CatalogError, match="no rows of"):
        cat.lineage("wydot/BSM/2099/01/01/00/nothing")
    res = runner.invoke(
        app, ["runs", "show", history["run2"], "--objects", "--catalog", str(cat.paths.root),
              "--format", "json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    objs = json.loads(res.stdout)
    listed = module_s3.list_objects_v2(Bucket=BUCKET, Prefix="wydot/BSM/2021/04/02/")["Contents"]
    assert {(o["source_key"], o["etag"]) for o in objs} == {
        (o["Key"], o["ETag"].strip('"')) for o in listed
    }
    res = runner.invoke(app, ["runs", "show", history["run2"], "--catalog", str(cat.paths.root)])
    assert f"committed by the run: snapshot {s2['snapshot_id']}" in res.stdout


def test_to_dask_at_a_snapshot_reads_the_rows_of_then(history: dict[str, Any]) -> None:
    cat: Catalog = history["cat"]
    s3, s2, s1 = _ingest_snapshots(cat)
    cols = ["source_key", "vehicle_id", "generated_at", "speed_mps"]
    for snap in (s1, s2, s3):
        sid = snap["snapshot_id"]
        frame = cat.to_dask("wydot", "BSM", columns=cols, snapshot=sid).compute()
        want = cat.query(f"select {', '.join(cols)} from wydot_bsm", snapshot=sid)
        key = cols[:3]
        got = frame.sort_values(key).reset_index(drop=True)[cols]
        want = want.sort_values(key).reset_index(drop=True)
        assert len(got) == len(want) > 0
        assert (got.values == want.values).all(), sid
    # a range cuts the snapshot's days as it cuts today's
    one = cat.to_dask("wydot", "BSM", D2, D2, snapshot=s2["snapshot_id"]).compute()
    assert len(one) == history["after2"].set_index("date").n[D2]
    with pytest.raises(CatalogError, match="no snapshot"):
        cat.to_dask("wydot", "BSM", snapshot=10**6)


def test_to_dask_at_a_snapshot_before_its_table_says_so_as_query_does(
    history: dict[str, Any],
) -> None:
    """A frame at a snapshot that did not show the table yet (snapshot 0: the empty lake) is
    the query's one line naming the first snapshot with it, not a silent empty frame."""
    cat: Catalog = history["cat"]
    with pytest.raises(QueryError) as said:
        cat.query("select count(*) from wydot_bsm", snapshot=0)
    with pytest.raises(QueryError) as raised:
        cat.to_dask("wydot", "BSM", snapshot=0)
    assert str(raised.value) == str(said.value)
    assert str(raised.value).startswith("wydot_bsm did not exist yet at snapshot 0: the first")
    with pytest.raises(QueryError, match="did not exist yet at snapshot 0"):
        cat.split("wydot", "BSM", D1, D2, snapshot=0)


def test_to_dask_as_of_a_time_reads_the_snapshot_current_then(history: dict[str, Any]) -> None:
    """as_of= as query's: the newest snapshot committed at or before that time (UTC unless
    the time says otherwise; a datetime or an ISO 8601 string), not with snapshot=."""
    cat: Catalog = history["cat"]
    cols = ["source_key", "generated_at"]
    for when in (history["time1"], history["time1"].isoformat(),
                 history["time1"].replace(tzinfo=None).isoformat()):  # fmt: skip
        frame = cat.to_dask("wydot", "BSM", columns=cols, as_of=when).compute()
        assert len(frame) == int(history["after1"].n.sum()) > 0
    one = cat.split("wydot", "BSM", D1, D2, as_of=history["time1"])
    n = sum(len(part) for part in one)
    assert n == int(history["after1"].n.sum())
    with pytest.raises(ConfigError, match="not both"):
        cat.to_dask("wydot", "BSM", snapshot=1, as_of=history["time1"])
    with pytest.raises(ConfigError, match="not a time"):
        cat.to_dask("wydot", "BSM", as_of="last tuesday")
    with pytest.raises(CatalogError, match="did not exist at"):
        cat.to_dask("wydot", "BSM", as_of=datetime(2000, 1, 1, tzinfo=UTC))
    at0 = cat.snapshots()[-1]["committed_at"]
    with pytest.raises(QueryError) as said:
        cat.query("select count(*) from wydot_bsm", as_of=at0)
    with pytest.raises(QueryError) as raised:
        cat.to_dask("wydot", "BSM", as_of=at0)
    assert str(raised.value) == str(said.value)


def test_a_snapshot_that_is_no_snapshot_id_is_one_line(history: dict[str, Any]) -> None:
    """snapshot= is a whole number 0 or more (a string of digits counts as one); anything else
    is one ConfigError line, not a TypeError from comparing it with the files' snapshots."""
    cat: Catalog = history["cat"]
    sid = _ingest_snapshots(cat)[-1]["snapshot_id"]
    cols = ["source_key", "generated_at"]
    want = cat.to_dask("wydot", "BSM", columns=cols, snapshot=sid).compute()
    got = cat.to_dask("wydot", "BSM", columns=cols, snapshot=str(sid)).compute()
    assert len(got) == len(want) > 0
    for bad in ("four", "-1", -1, 1.5, True, "1.0"):
        line = r"^snapshot must be a snapshot id, a whole number 0 or more \(`cvcatalog snapshots`"
        with pytest.raises(ConfigError, match=line):
            cat.to_dask("wydot", "BSM", snapshot=bad)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=line):
            cat.query("select 1", snapshot=bad)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=line):
            cat.split("wydot", "BSM", D1, snapshot=bad)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=line):  # pin held nothing and wrote nothing
            cat.pin("checked", "wydot", "BSM", snapshot=bad)  # type: ignore[arg-type]
    assert cat.pin_of("checked") is None


def test_a_pin_name_holds_one_table_and_unpin_takes_a_name(
    history: dict[str, Any], tmp_path: Path
) -> None:
    """pin("exp", "wydot", "TIM") where exp pins wydot/BSM returned the BSM pin as if it were
    the TIM one; unpin(5) was a raw ConversionException. One line each."""
    copy = Catalog(tmp_path / "copy")
    shutil.copytree(history["cat"].paths.root, copy.paths.root)
    bsm = copy.pin("exp", "wydot", "BSM")
    assert copy.pin("exp", "wydot", "bsm") == bsm  # the same table, however spelled
    with pytest.raises(ConfigError, match=r"^experiment 'exp' is pinned to wydot/BSM, not "
                                          r"wydot/TIM; give this experiment another name"):
        copy.pin("exp", "wydot", "TIM")
    for bad in (5, None, " "):
        with pytest.raises(ConfigError, match=r"^an experiment's name is a non-empty str"):
            copy.unpin(bad)  # type: ignore[arg-type]
    assert copy.unpin("exp") and copy.pin_of("exp") is None


D3, D4 = date(2021, 5, 1), date(2021, 5, 2)


def _experiment(path: Path, name: str, data_extra: str) -> Path:
    path.write_text(
        f"experiment: {{name: {name}}}\n"
        "data:\n  source: wydot\n  message_type: BSM\n"
        f"  date_range: {{start_date: {D3}, end_date: {D4}, timezone: UTC}}\n{data_extra}"
        "output: {column_names: canonical}\n"
    )
    return path


def _gathered(path: Path, cat: Catalog) -> Any:
    frame = CatalogGatherer(path, cat).gather_data().get_gathered_data().compute()
    cols = ["source_key", "vehicle_id", "generated_at", "msg_cnt", "speed_mps", "latitude"]
    return frame[cols].sort_values(cols[:4]).reset_index(drop=True)


def test_a_pinned_experiment_keeps_its_rows_through_changes_and_eviction(
    module_s3: Any, tmp_path: Path
) -> None:
    client = module_s3
    seed_replica(client, D3, D4, sources=["wydot"], message_types=["BSM"], records_per_hour=6,
                 files_per_hour=1, seed=7)  # fmt: skip
    cat = Catalog(tmp_path / "catalog")
    for day in (D3, D4):
        _ingest(cat, day)
    pinned = _experiment(tmp_path / "pinned.yml", "pinned_may", "  pin: true\n")
    live = _experiment(tmp_path / "live.yml", "live_may", "")
    before = _gathered(pinned, cat)
    pin = cat.pin_of("pinned_may")
    assert pin is not None
    # the newest snapshot when first gathered
    assert pin.snapshot_id == max(s["snapshot_id"] for s in _ingest_snapshots(cat))
    assert _gathered(live, cat).equals(before)

    # the bucket changes: one object rewritten, one object added; picked up incrementally
    key = sorted(
        o["Key"]
        for o in client.list_objects_v2(Bucket=BUCKET, Prefix="wydot/BSM/2021/05/01/")["Contents"]
    )[0]
    lines = client.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()
    client.put_object(Bucket=BUCKET, Key=key, Body=(lines[0] + "\n").encode())
    new_key = "wydot/BSM/2021/05/02/23/usdot-its-cvpilot-bsm-public-late-arrival"
    client.put_object(Bucket=BUCKET, Key=new_key, Body=("\n".join(lines) + "\n").encode())
    _ingest(cat, D3, check_changes=True)
    _ingest(cat, D4, check_changes=True)

    assert _gathered(pinned, cat).equals(before)  # bit for bit the rows first gathered
    now = _gathered(live, cat)
    assert not now.equals(before) and new_key in set(now.source_key)
    assert (now.source_key == key).sum() == 1 < (before.source_key == key).sum()

    # the change feed since the pin: only the changed object's rows and the new object's
    feed = cat.changes("wydot", "BSM", since=pin.snapshot_id)
    # in one order every time (rows of a snapshot and kind came in any order)
    assert cat.changes("wydot", "BSM", since=pin.snapshot_id).equals(feed)
    ident = ["source_key", "vehicle_id", "generated_at", "msg_cnt"]

    def rows(df: Any) -> list[tuple[Any, ...]]:
        return sorted(map(tuple, df[ident].astype(str).values.tolist()))

    old_rows, new_rows = rows(before[before.source_key == key]), rows(now[now.source_key == key])
    gone = list(old_rows)
    for r in new_rows:
        gone.remove(r)  # what the rewritten object kept is not a change
    assert rows(feed[feed.change_type == "delete"]) == sorted(gone) and gone
    assert rows(feed[feed.change_type == "insert"]) == rows(now[now.source_key == new_key])
    assert set(feed.source_key) == {key, new_key}  # nothing of the unchanged objects
    assert set(feed.snapshot_id) <= {s["snapshot_id"] for s in _ingest_snapshots(cat)[:2]}
    # the same feed as a lazy Dask frame, one partition per snapshot
    lazy = cat.changes("wydot", "BSM", since=pin.snapshot_id, output="dask")
    assert lazy.npartitions == len(set(feed.snapshot_id)) == 2
    got = lazy.compute()
    assert rows(got[got.change_type == "delete"]) == sorted(gone)
    assert rows(got[got.change_type == "insert"]) == rows(feed[feed.change_type == "insert"])
    out = tmp_path / "changes.parquet"
    res = runner.invoke(app, ["changes", "--source", "wydot", "--type", "BSM", "--since",
                              str(pin.snapshot_id), "--catalog", str(cat.paths.root),
                              "--format", "parquet", "--output", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert pq.read_table(out).num_rows == len(feed)
    # one line, the path whole (stderr was wrapped at 80 columns: "(to \n.../changes.parquet)")
    [said] = res.stderr.splitlines()
    assert said.startswith(f"{len(feed) - len(gone):,} inserted, {len(gone):,} deleted")
    assert said.endswith(f"(to {out})")

    res = runner.invoke(app, ["experiments", "show", str(pinned), "--catalog",
                              str(cat.paths.root), "--format", "json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    (shown,) = json.loads(res.stdout)
    assert shown["snapshot_id"] == pin.snapshot_id and shown["digest"] == pin.digest
    # the change deleted rows from the day's kept files: the pin holds no file of its own
    # (until files go: `cache clear` below)
    assert shown["held_bytes"] == 0

    # eviction and clear free what they can; the pin's files stay, and say so
    res = runner.invoke(app, ["cache", "clear", "--yes", "--catalog", str(cat.paths.root)])
    assert res.exit_code == 0, res.output
    assert "kept for pinned experiment pinned_may" in res.stdout
    cat.db.expire_snapshots(datetime.now(UTC) + timedelta(seconds=1))
    assert _gathered(pinned, cat).equals(before)
    assert cat.query("select count(*) as n from wydot_bsm").n[0] == 0

    # unpinned, the snapshot expires with everything else
    res = runner.invoke(app, ["experiments", "unpin", "pinned_may", "--catalog",
                              str(cat.paths.root)])  # fmt: skip
    assert res.exit_code == 0, res.output
    cat.db.expire_snapshots(datetime.now(UTC) + timedelta(seconds=1))
    with pytest.raises(CatalogError, match="no longer kept"):
        cat.to_dask("wydot", "BSM", snapshot=pin.snapshot_id)
    assert not [p for p in (cat.paths.root / "lake").rglob("*.parquet")]
    res = runner.invoke(app, ["experiments", "show", "pinned_may", "--catalog",
                              str(cat.paths.root)])  # fmt: skip
    assert res.exit_code == 1, res.output
    assert res.stderr == ("error: no experiment named 'pinned_may' is pinned in this catalog "
                          "(pinned: none); data.pin: true or data.snapshot: ID pins one when it "
                          "is first gathered\n")  # fmt: skip


def test_pins_sharing_files_count_them_once(history: dict[str, Any], tmp_path: Path) -> None:
    """Two pins of one snapshot each said they kept its files, and the lines after a clear
    added up to twice the bytes on disk. Now each says what only it keeps (what unpinning it
    frees: nothing, while the other pin holds the same files), and the total counts each
    file once."""
    root = tmp_path / "catalog"
    shutil.copytree(history["cat"].paths.root, root)
    cat = Catalog(root)
    _, s2, s1 = (s["snapshot_id"] for s in _ingest_snapshots(cat))
    cat.pin("first_a", "wydot", "BSM", s1)
    cat.pin("first_b", "wydot", "BSM", s1)
    cat.pin("second", "wydot", "BSM", s2)
    reads: list[int] = []
    counted = pins.held_bytes

    def held_bytes(con: Any) -> Any:
        reads.append(1)
        return counted(con)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pins, "held_bytes", held_bytes)
        res = runner.invoke(app, ["cache", "clear", "--yes", "--catalog", str(root)])
    assert res.exit_code == 0, res.output
    assert len(reads) == 1  # the pins' lines and their total: one read of the lake's files
    got = {p["name"]: (p["held_bytes"], p["held_alone_bytes"]) for p in cat.pinned()}
    first, second = got["first_a"][0], got["second"][0]
    assert first > 0 and got["first_b"] == (first, 0) and got["first_a"] == (first, 0)
    # s2 shows s1's files of day 1 and its own file of day 2: only that one is its own
    assert got["second"] == (second, second - first) and second > first
    assert cat.pinned_bytes() == second  # not first + first + second
    lines = [x.strip() for x in res.stdout.splitlines() if x.startswith("  kept for")]
    assert lines[-1] == f"kept for the 3 pinned experiments in all: {human_bytes(second)}"
    assert f"{human_bytes(first)}; {human_bytes(0)} of it only this pin keeps" in lines[0]
    res = runner.invoke(app, ["experiments", "list", "--catalog", str(root), "-f", "json"])
    assert {r["name"]: r["held_alone_bytes"] for r in json.loads(res.stdout)} == {
        name: alone for name, (_, alone) in got.items()
    }


D7, D8 = date(2021, 7, 1), date(2021, 7, 2)


def test_the_change_feed_since_a_pin_outlives_the_snapshots_after_it(
    module_s3: Any, tmp_path: Path
) -> None:
    """Retention expires the snapshots after a pin (the pin keeps only its own): the feed
    since the pin is the same afterwards, in pandas, Dask and the CLI. It was `error:
    unexpected InvalidInputException: ... No snapshot found at version N`, and the Dask feed
    silently left out the expired snapshots' changes."""
    seed_replica(module_s3, D7, D8, sources=["wydot"], message_types=["BSM", "TIM"],
                 records_per_hour=6, files_per_hour=1, seed=11)  # fmt: skip
    cat = Catalog(tmp_path / "catalog")
    _ingest(cat, D7)
    pin = cat.pin("trained_july", "wydot", "BSM")
    _ingest(cat, D8)  # after the pin: inserts
    seed_replica(module_s3, D8, D8, sources=["wydot"], message_types=["BSM"],
                 records_per_hour=2, files_per_hour=1, seed=12)  # fmt: skip
    _ingest(cat, D8, check_changes=True)  # late objects: inserts
    s = cat.ingest("wydot", "TIM", D7, D7, rate_limit=0)  # the current snapshot: no BSM change
    assert s.ok
    since = pin.snapshot_id
    ident = ["change_type", "snapshot_id", "source_key", "vehicle_id", "generated_at", "msg_cnt"]

    def rows(df: Any) -> list[tuple[Any, ...]]:
        return sorted(map(tuple, df[ident].astype(str).values.tolist()))

    before = cat.changes("wydot", "BSM", since=since)
    assert len(before) > 0 and set(before.change_type) == {"insert"}
    cat.db.expire_snapshots(datetime.now(UTC) + timedelta(seconds=1))
    kept = {k["snapshot_id"] for k in cat.snapshots()}
    assert since in kept and since + 1 not in kept  # the pin and the current one stay
    after = cat.changes("wydot", "BSM", since=since)
    assert rows(after) == rows(before)
    lazy = cat.changes("wydot", "BSM", since=since, output="dask").compute()
    assert rows(lazy) == rows(before)
    res = runner.invoke(app, ["changes", "--source", "wydot", "--type", "BSM", "--since",
                              str(since), "--catalog", str(cat.paths.root), "--format", "csv"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert f"{len(before):,} inserted, 0 deleted after snapshot {since}" in res.stderr
    assert cat.changes("wydot", "TIM", since=since).shape[0] > 0


def test_an_experiment_fixed_to_a_snapshot_is_pinned_to_it(
    history: dict[str, Any], tmp_path: Path
) -> None:
    """data.snapshot pins that snapshot under the experiment's name when first gathered, as
    data.pin pins the current one: `experiments show|list|unpin` know it, and it outlives
    retention."""
    home = tmp_path / "catalog"
    shutil.copytree(history["cat"].paths.root, home)
    cat = Catalog(home)
    _s3, s2, _s1 = _ingest_snapshots(cat)
    sid = s2["snapshot_id"]

    def experiment(name: str, snapshot: int) -> Path:
        path = tmp_path / f"{name}-{snapshot}.yml"
        path.write_text(
            f"experiment: {{name: {name}}}\n"
            "data:\n  source: wydot\n  message_type: BSM\n"
            f"  date_range: {{start_date: {D1}, end_date: {D2}, timezone: UTC}}\n"
            f"  snapshot: {snapshot}\n"
            "output: {column_names: canonical}\n"
        )
        return path

    fixed = experiment("fixed_s2", sid)
    want = int(history["after2"].n.sum())
    frame = CatalogGatherer(fixed, cat).gather_data().get_gathered_data()
    assert len(frame) == want
    for name in ("fixed_s2", str(fixed)):
        res = runner.invoke(app, ["experiments", "show", name, "--catalog", str(home),
                                  "--format", "json"])  # fmt: skip
        assert res.exit_code == 0, res.output
        (shown,) = json.loads(res.stdout)
        assert shown["snapshot_id"] == sid and shown["files"] > 0 and shown["source"] == "wydot"
    pin = cat.pin_of("fixed_s2")
    assert pin is not None and shown["digest"] == pin.digest
    assert [p["name"] for p in cat.pinned()] == ["fixed_s2"]

    # a later gathering only reads: no commit (a commit replaces the catalog file), so it
    # works on a catalog the user cannot write and never waits for an ingest's commits
    before = cat.paths.db.stat().st_ino
    assert len(CatalogGatherer(fixed, cat).gather_data().get_gathered_data()) == want
    assert cat.paths.db.stat().st_ino == before

    # kept: retention does not expire it while it is pinned
    cat.db.expire_snapshots(datetime.now(UTC) + timedelta(seconds=1))
    assert len(CatalogGatherer(fixed, cat).gather_data().get_gathered_data()) == want
    # one name, one snapshot: another one under the same name is a clear error
    with pytest.raises(ConfigError, match=f"pinned to snapshot {sid}, not {sid + 1}"):
        CatalogGatherer(experiment("fixed_s2", sid + 1), cat).gather_data()
    res = runner.invoke(app, ["experiments", "unpin", "fixed_s2", "--catalog", str(home)])
    assert res.exit_code == 0, res.output
    cat.db.expire_snapshots(datetime.now(UTC) + timedelta(seconds=1))
    with pytest.raises(CatalogError, match=f"snapshot {sid} is no longer kept"):
        CatalogGatherer(fixed, cat).gather_data()
    res = runner.invoke(app, ["experiments", "show", "fixed_s2", "--catalog", str(home)])
    assert res.exit_code == 1 and "data.snapshot: ID pins one" in res.output


def test_snapshot_and_pin_are_one_or_the_other(tmp_path: Path) -> None:
    bad = _experiment(tmp_path / "bad.yml", "bad", "  pin: true\n  snapshot: 3\n")
    with pytest.raises(ConfigError, match="not both"):
        ExperimentConfig.from_yaml(bad)


def test_a_published_catalog_keeps_its_snapshots(history: dict[str, Any], module_s3: Any) -> None:
    cat: Catalog = history["cat"]
    s3, s2, s1 = _ingest_snapshots(cat)
    module_s3.create_bucket(Bucket="cv-versions")
    summary = cat.publish("s3://cv-versions/all", rate_limit=0)
    assert summary.ok, summary.as_dict()
    remote = Catalog("s3://cv-versions/all")
    for snap, want in ((s1, "after1"), (s2, "after2"), (s3, "after3")):
        assert remote.query(COUNT, snapshot=snap["snapshot_id"]).equals(history[want])
    assert remote.query(COUNT).equals(history["after3"])
    # what older snapshots hold and where a row came from, as the catalog published says
    # (remotely: 0 held bytes, and lineage read the reader's cache directory for the files)
    assert remote.older_snapshot_bytes() == cat.older_snapshot_bytes()
    assert remote.size_bytes() == cat.size_bytes()
    key = cat.query("select source_key from wydot_bsm limit 1").source_key[0]
    assert remote.lineage(key) == cat.lineage(key)
    res = runner.invoke(app, ["query", "--catalog", "s3://cv-versions/all", "--snapshot",
                              str(s1["snapshot_id"]), "--format", "json",
                              "select count(*) as n from wydot_bsm"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == [{"n": int(history["after1"].n.sum())}]

    # --snapshot: the history from that snapshot on; older ones are not published
    res = runner.invoke(app, ["publish", "--to", "s3://cv-versions/recent", "--catalog",
                              str(cat.paths.root), "--snapshot", str(s2["snapshot_id"])])  # fmt: skip
    assert res.exit_code == 0, res.output
    recent = Catalog("s3://cv-versions/recent")
    assert recent.query(COUNT, snapshot=s2["snapshot_id"]).equals(history["after2"])
    with pytest.raises(CatalogError, match="no longer kept") as raised:
        recent.query(COUNT, snapshot=s1["snapshot_id"])
    # publish cut it, not retention (the line said "expired after cache.snapshot_retention_days")
    assert "retention" not in str(raised.value)
    assert str(raised.value).endswith(
        "older ones were not published (`publish --snapshot` leaves them out) or had expired in "
        "the catalog it was published from"
    )


def test_publish_from_a_snapshot_leaves_out_the_pins_of_older_ones(
    history: dict[str, Any], module_s3: Any, tmp_path: Path
) -> None:
    """`publish --snapshot S2` left out snapshot S1, but `experiments list --catalog s3://...`
    still listed a pin of S1 (its files and bytes), which the published catalog cannot read."""
    cat: Catalog = history["cat"]
    s3, s2, s1 = _ingest_snapshots(cat)
    copy = Catalog(tmp_path / "copy")  # the other tests keep a catalog without pins
    shutil.copytree(cat.paths.root, copy.paths.root)
    copy.pin("old", "wydot", "BSM", snapshot=s1["snapshot_id"])
    copy.pin("new", "wydot", "BSM", snapshot=s3["snapshot_id"])
    module_s3.create_bucket(Bucket="cv-pins")
    assert copy.publish("s3://cv-pins/recent", snapshot=s2["snapshot_id"], rate_limit=0).ok
    assert [p["name"] for p in Catalog("s3://cv-pins/recent").pinned()] == ["new"]
    assert [p["name"] for p in copy.pinned()] == ["new", "old"]  # the source keeps both
    res = runner.invoke(app, ["experiments", "show", "old", "--catalog", "s3://cv-pins/recent"])
    assert res.exit_code == 1 and "no experiment named 'old' is pinned in this catalog " \
        "(pinned: new)" in res.stderr, res.output


def test_publishing_other_snapshots_of_the_same_files_uploads_the_database(
    history: dict[str, Any], module_s3: Any
) -> None:
    """`publish --snapshot S2` then `publish` (every snapshot) to the same prefix said
    'database up to date' (the same files) and the published catalog still lacked S1."""
    cat: Catalog = history["cat"]
    _s3, s2, s1 = _ingest_snapshots(cat)
    module_s3.create_bucket(Bucket="cv-widen")
    url = "s3://cv-widen/c"
    assert cat.publish(url, snapshot=s2["snapshot_id"], rate_limit=0).ok
    summary = cat.publish(url, rate_limit=0)
    assert summary.ok and summary.database == "uploaded", summary.as_dict()
    assert Catalog(url).query(COUNT, snapshot=s1["snapshot_id"]).equals(history["after1"])
    assert cat.publish(url, rate_limit=0).database == "up to date"
    narrower = cat.publish(url, snapshot=s2["snapshot_id"], rate_limit=0)
    assert narrower.database == "uploaded", narrower.as_dict()
    with pytest.raises(CatalogError, match="no longer kept"):
        Catalog(url).query(COUNT, snapshot=s1["snapshot_id"])


D5, D6 = date(2021, 6, 1), date(2021, 6, 2)


@dataclasses.dataclass(frozen=True, eq=False)
class _AddsAColumn(MessageSchema):
    """wydot/BSM with one more canonical column, as a canonical version bump would add it."""

    def canonical_select_sql(self, relation: str, **kw: Any) -> str:
        inner = SCHEMAS_AT_IMPORT[("wydot", "BSM")].canonical_select_sql(relation, **kw)
        return f"SELECT *, 'v' || CAST(length(source_key) AS VARCHAR) AS lane_hint FROM ({inner})"


@dataclasses.dataclass(frozen=True, eq=False)
class _RenamesIt(MessageSchema):
    """... and a later bump that renames that column."""

    def canonical_select_sql(self, relation: str, **kw: Any) -> str:
        inner = SCHEMAS_AT_IMPORT[("wydot", "BSM")].canonical_select_sql(relation, **kw)
        return f"SELECT *, 'v' || CAST(length(source_key) AS VARCHAR) AS lane_label FROM ({inner})"


SCHEMAS_AT_IMPORT = dict(schemas.SCHEMAS)


def test_wydot_tim_days_of_canonical_v2_stay_shown_under_v3(
    module_s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """v3 of WYDOT TIM turns J2735's unavailable values into NULL, its columns v2's. With v2
    days not read by v3, the next write of anything (here `trips --max-gap-s`) hid every TIM
    row while `cache status` still said complete; they are read as they are now, and a
    re-ingest fetches nothing."""
    d = date(2021, 6, 5)
    seed_replica(module_s3, d, d, sources=["wydot"], message_types=["TIM"],
                 records_per_hour=4, files_per_hour=1, seed=12)  # fmt: skip
    v3 = SCHEMAS_AT_IMPORT[("wydot", "TIM")]
    assert (v3.canonical_version, v3.compatible_since) == (3, 2)
    v2 = dataclasses.replace(v3, canonical_version=2, compatible_since=None)
    cat = Catalog(tmp_path / "catalog")
    with monkeypatch.context() as m:
        m.setitem(schemas.SCHEMAS, ("wydot", "TIM"), v2)
        assert cat.ingest("wydot", "TIM", d, d, rate_limit=0).ok
    rows = cat.query("select count(*) as n from wydot_tim").n[0]
    assert rows > 0 and {r["canonical_version"] for r in cat.status()} == {2}
    r = runner.invoke(app, ["trips", "--max-gap-s", "30", "--catalog", str(cat.paths.root)])
    assert r.exit_code == 0, r.output
    assert cat.query("select count(*) as n from wydot_tim").n[0] == rows
    again = cat.ingest("wydot", "TIM", d, d, rate_limit=0)
    assert again.ok and again.count("cached") == 1 and again.get_requests == 0
    # a bump that does not read the old days: `cache status` said they were complete, while
    # the next write hid their rows; it says so now, and what converts them
    monkeypatch.setitem(schemas.SCHEMAS, ("wydot", "TIM"), dataclasses.replace(
        v3, canonical_version=4, compatible_since=None))  # fmt: skip
    r = runner.invoke(app, ["cache", "status", "--source", "wydot", "--type", "TIM", "--format",
                            "json", "--catalog", str(cat.paths.root)])  # fmt: skip
    assert r.exit_code == 0, r.output
    [row] = json.loads(r.stdout)
    assert (row["status"], row["canonical_version"]) == ("complete", 2)
    assert row["error"] == ("written under canonical version 2; this cvcatalog reads 4: not "
                            "shown until its day is ingested again (which converts it)")
    assert ("1 complete partition of an older canonical version: not shown until `cvcatalog "
            "ingest` of their days converts them again") in r.stderr  # fmt: skip


def test_a_canonical_version_that_adds_a_column_evolves_without_rewrites(
    module_s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_replica(module_s3, D5, D6, sources=["wydot"], message_types=["BSM"],
                 records_per_hour=4, files_per_hour=1, seed=11)  # fmt: skip
    cat = Catalog(tmp_path / "catalog")
    _ingest(cat, D5)
    old = SCHEMAS_AT_IMPORT[("wydot", "BSM")]
    before = cat.query("select * from wydot_bsm order by all")
    files_before = set(cat.query("select path from partition_files").path)

    v2 = _AddsAColumn(
        **{f.name: getattr(old, f.name) for f in dataclasses.fields(old)}
        | {
            "canonical_version": old.canonical_version + 1,
            "compatible_since": old.canonical_version,
            "canonical_columns": [*old.canonical_columns, ("lane_hint", "VARCHAR")],
        }
    )
    monkeypatch.setitem(schemas.SCHEMAS, ("wydot", "BSM"), v2)
    s = cat.ingest("wydot", "BSM", D5, D6, timezone="UTC", rate_limit=0, max_workers=4)
    assert s.ok and s.count("cached") == 1 and s.count("complete") == 1  # D5 not fetched again
    assert {p for p in files_before if p.endswith(".parquet")} <= set(
        cat.query("select path from partition_files").path
    )
    got = cat.query("select date, count(*) as n, count(lane_hint) as hinted from wydot_bsm "
                    "group by 1 order by 1")  # fmt: skip
    assert list(got.hinted) == [0, got.n[1]] and got.n[1] > 0  # old day NULL, new day filled
    kept = cat.query(
        f"select * exclude (lane_hint) from wydot_bsm where date = '{D5}' order by all"
    )
    assert kept.equals(before)
    frame = cat.to_dask("wydot", "BSM", D5, D6, columns=["date", "lane_hint"]).compute()
    assert frame.groupby("date").lane_hint.count().tolist() == [0, got.n[1]]
    whole = cat.to_dask("wydot", "BSM", D5, D6).compute()
    assert "lane_hint" in whole.columns and whole.lane_hint.notna().sum() == got.n[1]

    # a bump that renames the column: a rename in the lake, nothing converted again
    v3 = _RenamesIt(
        **{f.name: getattr(v2, f.name) for f in dataclasses.fields(v2)}
        | {
            "canonical_version": v2.canonical_version + 1,
            "canonical_columns": [*old.canonical_columns, ("lane_label", "VARCHAR")],
            "renamed": (("lane_hint", "lane_label"),),
        }
    )
    monkeypatch.setitem(schemas.SCHEMAS, ("wydot", "BSM"), v3)
    s = cat.ingest("wydot", "BSM", D5, D6, timezone="UTC", rate_limit=0, max_workers=4)
    assert s.ok and s.count("cached") == 2
    got = cat.query("select date, count(lane_label) as hinted from wydot_bsm group by 1 order by 1")
    assert list(got.hinted) == [0, got_n := int(got.hinted[1])] and got_n > 0
    frame = cat.to_dask("wydot", "BSM", D5, D6, columns=["date", "lane_label"]).compute()
    assert frame.groupby("date").lane_label.count().tolist() == [0, got_n]
    # a changed object of the oldest day merges with its kept (v1) rows
    key = sorted(
        o["Key"]
        for o in module_s3.list_objects_v2(Bucket=BUCKET, Prefix="wydot/BSM/2021/06/01/")[
            "Contents"
        ]
    )[0]
    lines = module_s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()
    module_s3.put_object(Bucket=BUCKET, Key=key, Body=(lines[0] + "\n").encode())
    s = cat.ingest("wydot", "BSM", D5, D5, timezone="UTC", rate_limit=0, max_workers=4,
                   check_changes=True)  # fmt: skip
    assert s.ok and s.count("complete") == 1, s.as_dict()
    merged = cat.query(
        f"select source_key = ? as changed, count(*) as n, count(lane_label) as hinted "
        f"from wydot_bsm where date = '{D5}' group by 1 order by 1",
        [key],
    )
    assert merged.n.tolist()[1] == 1 and merged.hinted.tolist() == [0, 1]
    # the kept rows were rewritten with the new columns (_rewrite): the run wrote the whole
    # day, and reports (and its snapshot inserts) every row of it
    inserted = sum(x["rows_added"] for x in cat.snapshots() if x["run_id"] == s.run_id)
    assert s.rows == inserted == merged.n.sum()

    # a bump that changes meaning rewrites the old days, and says so
    v3 = dataclasses.replace(v3, canonical_version=v3.canonical_version + 1, compatible_since=None)
    monkeypatch.setitem(schemas.SCHEMAS, ("wydot", "BSM"), v3)
    notes: list[str] = []

    class Notes(NullProgress):
        def note(self, message: str) -> None:
            notes.append(message)

    s = cat.ingest("wydot", "BSM", D5, D6, timezone="UTC", rate_limit=0, max_workers=4,
                   progress=Notes())  # fmt: skip
    assert s.ok and s.count("complete") == 2
    assert any("converted again" in n and "2 day(s)" in n for n in notes), notes
    again = cat.query("select count(lane_label) as h, count(*) as n from wydot_bsm")
    assert again.h[0] == again.n[0]


def test_an_experiment_fixed_to_a_snapshot_reads_a_catalog_it_cannot_write(
    history: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shared catalog this user may only read: data.snapshot reads that snapshot without a
    pin (a pin is a commit), as on a published catalog."""
    home = tmp_path / "catalog"
    shutil.copytree(history["cat"].paths.root, home)
    cat = Catalog(home)
    _s3, s2, _s1 = _ingest_snapshots(cat)
    path = tmp_path / "shared.yml"
    path.write_text(
        "experiment: {name: shared}\n"
        "data:\n  source: wydot\n  message_type: BSM\n"
        f"  date_range: {{start_date: {D1}, end_date: {D2}, timezone: UTC}}\n"
        f"  snapshot: {s2['snapshot_id']}\n"
        "output: {column_names: canonical}\n"
    )
    monkeypatch.setattr(Catalog, "writable", lambda self: False)
    before = cat.paths.db.stat().st_ino
    frame = CatalogGatherer(path, cat).gather_data().get_gathered_data()
    assert len(frame) == int(history["after2"].n.sum())
    assert cat.pin_of("shared") is None and cat.paths.db.stat().st_ino == before
    # pin: true there reads the current snapshot, unpinned (it was the read-only error line)
    current = path.read_text().replace(f"snapshot: {s2['snapshot_id']}", "pin: true")
    path.with_name("current.yml").write_text(current.replace("{name: shared}", "{name: now}"))
    frame = CatalogGatherer(path.with_name("current.yml"), cat).gather_data().get_gathered_data()
    assert len(frame) == len(cat.to_dask("wydot", "BSM", D1, D2)) != int(history["after2"].n.sum())
    assert cat.pin_of("now") is None and cat.paths.db.stat().st_ino == before
    # a pin its owner made under that name still holds (and one line when it holds another)
    cat.pin("shared", "wydot", "BSM", snapshot=_s3["snapshot_id"])
    with pytest.raises(ConfigError, match=f"pinned to snapshot {_s3['snapshot_id']}"):
        CatalogGatherer(path, cat).gather_data()


@pytest.mark.parametrize("command", ["show", "unpin"])
def test_a_missing_experiment_file_is_said_to_be_missing(tmp_path: Path, command: str) -> None:
    """`experiments show missing.yml` said "experiment 'missing.yml' is not pinned", as if a
    pin had that name, for a mistyped file."""
    home = tmp_path / "catalog"
    Catalog(home).db.initialise()
    missing = tmp_path / "missing.yml"
    res = runner.invoke(app, ["experiments", command, str(missing), "--catalog", str(home)])
    assert res.exit_code == 1 and res.stderr == f"error: config file not found: {missing}\n"
