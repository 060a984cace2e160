"""Incremental changes written as deletes and inserts (issue 14), against the local S3 endpoint.

A day is ingested, then in the bucket one object changes, one is removed and one is added, and
the day is re-ingested with --check-changes: the day's data files must stay (not be rewritten),
the changed and removed objects' rows be deleted from them, and the new rows arrive in a new
file. The oracle is independent of the merge: a fresh catalog ingesting the bucket as it is
then. Every reader must agree with it: SQL views, Dask frames (which read the files
themselves), time travel, compaction, verification.
"""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from cvcatalog.catalog import Catalog
from cvcatalog.cli.main import app
from cvcatalog.exceptions import CatalogError
from cvcatalog.io import lake
from cvcatalog.quality.report import build_report
from cvcatalog.sandbox.replica import seed_replica
from cvcatalog.sources.bucket import BUCKET
from cvcatalog.state import checksums, manifest

DAY = date(2021, 4, 1)
ROWS = "select source_key, generated_at, speed_mps from wydot_bsm order by all"


def _ingest(cat: Catalog, **kw: Any) -> str:
    s = cat.ingest("wydot", "BSM", DAY, DAY, timezone="UTC", rate_limit=0, max_workers=4, **kw)
    assert s.ok, s.as_dict()
    return s.run_id


def _data_files(cat: Catalog) -> list[str]:
    with cat.db.read() as con:
        return [f.path for f in manifest.get_files(con, kind="data")]


def _fresh(tmp: Path) -> pd.DataFrame:
    """What a catalog built from scratch from the bucket as it is now holds."""
    fresh = Catalog(tmp)
    _ingest(fresh)
    return fresh.query(ROWS)


def _frame(cat: Catalog, **kw: Any) -> pd.DataFrame:
    df = cat.to_dask("wydot", "BSM", DAY, DAY, **kw)[["source_key", "generated_at", "speed_mps"]]
    out = df.compute().sort_values(["source_key", "generated_at", "speed_mps"])
    return out.reset_index(drop=True)


def _rewrite(client: Any, key: str, faster: str) -> None:
    """Keep the first half of the object's records, with other speeds."""
    lines = client.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()
    kept = [re.sub(r'"speed":(\d)', faster + r"\1", ln) for ln in lines[: len(lines) // 2]]
    client.put_object(Bucket=BUCKET, Key=key, Body=("\n".join(kept) + "\n").encode())


@pytest.fixture(scope="module")
def changed(module_s3: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    client = module_s3
    seed_replica(client, DAY, DAY, sources=["wydot"], message_types=["BSM"], records_per_hour=6,
                 files_per_hour=1)  # fmt: skip
    root = tmp_path_factory.mktemp("deletes")
    cat = Catalog(root / "catalog")
    seen: dict[str, Any] = {"cat": cat, "root": root}
    seen["run1"] = _ingest(cat)
    seen["files1"] = _data_files(cat)
    seen["rows1"] = cat.query(ROWS)
    keys = sorted(
        o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="wydot/BSM/2021/04/01/")[
            "Contents"]
    )  # fmt: skip
    seen["changed"], seen["removed"], seen["same"] = keys[0], keys[1], keys[2]
    _rewrite(client, keys[0], '"speed":1')
    client.delete_object(Bucket=BUCKET, Key=keys[1])
    body = client.get_object(Bucket=BUCKET, Key=keys[2])["Body"].read()
    seen["added"] = keys[2][:-4] + "beef"  # a name like the bucket's
    body = re.sub(rb'"speed":(\d)', rb'"speed":2\1', body)
    client.put_object(Bucket=BUCKET, Key=seen["added"], Body=body)
    seen["run2"] = _ingest(cat, check_changes=True)
    seen["files2"] = _data_files(cat)
    seen["rows2"] = cat.query(ROWS)
    seen["oracle2"] = _fresh(root / "fresh2")
    seen["snap2"] = cat.snapshots()[0]["snapshot_id"]
    seen["frame2"] = _frame(cat)
    # the same object changes again and the added one goes: run 2's file holds only theirs
    _rewrite(client, keys[0], '"speed":3')
    client.delete_object(Bucket=BUCKET, Key=seen["added"])
    seen["run3"] = _ingest(cat, check_changes=True)
    seen["files3"] = _data_files(cat)
    seen["oracle3"] = _fresh(root / "fresh3")
    return seen


def test_a_changed_day_keeps_its_files_and_adds_one(changed: dict[str, Any]) -> None:
    before, after = changed["files1"], changed["files2"]
    assert set(before) <= set(after)  # not rewritten: the same files, still current
    new = set(after) - set(before)
    assert len(new) == 1
    # its rows and the SQL view's agree with a catalog built from scratch
    assert changed["rows2"].equals(changed["oracle2"])
    assert not changed["rows2"].equals(changed["rows1"])


def test_a_file_whose_rows_all_go_leaves_the_day(changed: dict[str, Any]) -> None:
    (added_by_run2,) = set(changed["files2"]) - set(changed["files1"])
    # run 3 changed or removed every object in run 2's file: that file is no longer current
    assert added_by_run2 not in changed["files3"]
    assert set(changed["files1"]) <= set(changed["files3"])
    assert changed["cat"].query(ROWS).equals(changed["oracle3"])


def test_dask_frames_leave_out_the_deleted_rows(changed: dict[str, Any]) -> None:
    cat: Catalog = changed["cat"]
    oracle = changed["oracle3"].sort_values(["source_key", "generated_at", "speed_mps"])
    oracle = oracle.reset_index(drop=True)
    got = _frame(cat)
    pd.testing.assert_frame_equal(got, oracle, check_dtype=False)
    # as of the snapshot of run 2: the deletes then, not those made since
    at2 = _frame(cat, snapshot=changed["snap2"])
    pd.testing.assert_frame_equal(at2, changed["frame2"], check_dtype=False)
    want2 = changed["oracle2"].sort_values(["source_key", "generated_at", "speed_mps"])
    pd.testing.assert_frame_equal(at2, want2.reset_index(drop=True), check_dtype=False)
    # a column list without source_key still loses the deleted rows
    n = len(cat.to_dask("wydot", "BSM", DAY, DAY, columns=["speed_mps"]))
    assert n == len(changed["oracle3"])


def test_the_change_feed_and_snapshot_show_only_the_objects_that_changed(
    changed: dict[str, Any],
) -> None:
    cat: Catalog = changed["cat"]
    run1 = next(s for s in cat.snapshots() if s["run_id"] == changed["run1"])["snapshot_id"]
    feed = cat.changes("wydot", "BSM", since=run1, until=changed["snap2"])
    deleted = set(feed[feed.change_type == "delete"].source_key)
    inserted = set(feed[feed.change_type == "insert"].source_key)
    assert deleted == {changed["changed"], changed["removed"]}
    assert inserted == {changed["changed"], changed["added"]}
    rows1 = changed["rows1"]
    gone = rows1[rows1.source_key.isin([changed["changed"], changed["removed"]])]
    assert (feed.change_type == "delete").sum() == len(gone)
    snap = next(s for s in cat.snapshots() if s["snapshot_id"] == changed["snap2"])
    assert snap["rows_removed"] == len(gone)
    assert snap["rows_added"] == (feed.change_type == "insert").sum()


def test_the_quality_report_counts_the_rows_the_catalog_shows(changed: dict[str, Any]) -> None:
    # the rules run over the day's files: the rows --check-changes deleted from them were
    # counted too ('rows input' above the view's, and each changed object's old rows as
    # duplicates of its new ones); the report must be a fresh catalog's
    got = build_report(changed["cat"], "wydot", "BSM").types[0].counts
    fresh = build_report(Catalog(changed["root"] / "fresh3"), "wydot", "BSM").types[0].counts
    assert got[("rows", "input")] == len(changed["oracle3"])
    assert got == fresh


def test_lineage_keeps_the_run_that_loaded_unchanged_rows(changed: dict[str, Any]) -> None:
    cat: Catalog = changed["cat"]
    assert cat.lineage(changed["same"])["run_id"] == changed["run1"]
    assert cat.lineage(changed["changed"])["run_id"] == changed["run3"]
    with pytest.raises(CatalogError, match="no rows of"):
        cat.lineage(changed["added"])  # removed from the bucket by run 3


def test_verify_and_compaction_after_deletes(changed: dict[str, Any], tmp_path: Path) -> None:
    report = changed["cat"].verify()  # the lake's delete files are its own, not orphans
    assert report.clean, report
    copy = Catalog(tmp_path / "copy")
    shutil.copytree(changed["cat"].paths.root, copy.paths.root)
    partition = copy.partitions("wydot", "BSM", DAY, DAY)[0]
    assert partition.rows == len(changed["oracle3"])
    first = min(s["snapshot_id"] for s in copy.snapshots())
    feed = copy.changes("wydot", "BSM", since=first)
    assert feed.snapshot_id.nunique() > 1  # the runs' inserts and deletes
    per_snapshot = copy.changes("wydot", "BSM", since=first, output="dask").compute()
    results = copy.compact()
    assert results and results[0].rows == len(changed["oracle3"])
    assert copy.query(ROWS).equals(changed["oracle3"])
    assert len(_data_files(copy)) == 1
    oracle = changed["oracle3"].sort_values(["source_key", "generated_at", "speed_mps"])
    pd.testing.assert_frame_equal(_frame(copy), oracle.reset_index(drop=True), check_dtype=False)
    assert copy.verify().clean  # the compaction's commit moved the lake to the copy
    # the feed through the compaction is the feed before it: each row under the snapshot that
    # made it (the compaction's rewrite, a delete and an insert of every row, named them all)
    pd.testing.assert_frame_equal(copy.changes("wydot", "BSM", since=first), feed)
    arrow = copy.changes("wydot", "BSM", since=first, output="arrow")
    assert arrow.column("snapshot_id").to_pylist() == feed.snapshot_id.tolist()
    dask_ids = copy.changes("wydot", "BSM", since=first, output="dask").compute().snapshot_id
    assert sorted(dask_ids) == sorted(per_snapshot.snapshot_id)  # (it was right)


def test_a_file_that_ends_after_some_of_its_rows_were_deleted_counts_only_the_rest(
    changed: dict[str, Any], tmp_path: Path
) -> None:
    """`snapshots`' rows_removed: a kept file whose rows an earlier merge deleted, ended later
    (here by --force-refresh), removes only the rows it still showed (the deleted ones were
    counted by the snapshot that deleted them: they were counted twice)."""
    cat = Catalog(tmp_path / "catalog")
    shutil.copytree(changed["cat"].paths.root, cat.paths.root)
    showing = int(cat.query("select count(*) as n from wydot_bsm").n[0])
    run = _ingest(cat, force_refresh=True)
    snap = next(s for s in cat.snapshots() if s["run_id"] == run)
    assert snap["rows_removed"] == showing
    assert snap["rows_added"] == int(cat.query("select count(*) as n from wydot_bsm").n[0])


def _copy(changed: dict[str, Any], to: Path) -> Catalog:
    shutil.copytree(changed["cat"].paths.root, to)
    return Catalog(to)


def test_a_damaged_delete_file_is_found_and_its_table_rebuilt(
    changed: dict[str, Any], tmp_path: Path
) -> None:
    """The lake's delete files were never checked: one damaged broke every read of its table.
    verify checks each against the SHA-256 the commit that wrote it recorded (a byte changed
    in place, the size the same, is found: it used to be checked by size alone); the repair
    rebuilds the table (the state applies its deletes again)."""
    cat = _copy(changed, tmp_path / "copy")
    with cat.db.read() as con:
        current = [f for f in lake.delete_file_entries(con) if f.current]
    assert current
    victim = Path(current[0].location)
    rel = cat.paths.relative(victim)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    report = cat.verify()
    assert report.mismatched == [rel] and rel not in report.by_size and not report.kept_only
    assert report.rows() == [{"problem": "checksum mismatch", "path": rel}]
    assert report.bad_delete_tables == ["wydot_bsm"] and not report.bad_partitions
    done = cat.repair(report)
    assert [r.line for r in done if r.what == "wydot_bsm"] == [
        "rebuilt wydot_bsm: its deletes applied again"
    ]
    assert cat.query(ROWS).equals(changed["oracle3"])
    [failed] = [r for r in done if r.failed]
    assert failed.what == rel and failed.line is not None
    assert failed.line.startswith(f"cannot mend {rel}: only older snapshot")
    assert victim.read_bytes() == bytes(data)  # nothing deleted
    after = cat.verify()
    assert after.mismatched == [rel] and list(after.kept_only) == [rel]


def test_a_rebuilt_tables_files_are_not_counted_twice_nor_gone_ones_at_all(
    changed: dict[str, Any], tmp_path: Path
) -> None:
    """A rebuild shows the table's current files again under new names (hard links), and the
    old names stay for the older snapshots: `cache status` counted their bytes a second time
    as "held for older snapshots", and eviction counted them as bytes an expiry frees. Now
    the held bytes are what expiring those snapshots would free on disk: a file whose bytes a
    shown file shares counts nothing, nor does one already gone."""
    cat = _copy(changed, tmp_path / "copy")
    with cat.db.read() as con:
        victim = Path(next(f for f in lake.delete_file_entries(con) if f.current).location)
    victim.write_bytes(b"not a delete file")
    cat.repair(cat.verify())

    def disk(files: list[lake.DataFile]) -> dict[tuple[int, int], int]:
        stats = [Path(f.location).stat() for f in files if Path(f.location).exists()]
        return {(st.st_dev, st.st_ino): st.st_size for st in stats}

    with cat.db.read() as con:
        files = lake.data_files(con)
    old = [f for f in files if not f.current]
    shown = disk([f for f in files if f.current])
    alone = {k: v for k, v in disk(old).items() if k not in shown}
    assert len(alone) < len(old)  # the rebuild linked some: their bytes are the shown files'
    assert cat.older_snapshot_bytes() == sum(alone.values()) > 0
    assert sum(f.size for f in old) > sum(alone.values())  # what the lake's sizes add up to
    current = sum(r["parquet_bytes"] for r in cat.status())
    assert cat.size_bytes() == current + sum(alone.values())
    # a held file gone frees nothing
    lone = next(f for f in old if next(iter(disk([f]))) in alone)
    Path(lone.location).unlink()
    assert cat.older_snapshot_bytes() == sum(alone.values()) - lone.size


def test_a_delete_file_of_an_earlier_release_is_checked_by_its_size(
    changed: dict[str, Any], tmp_path: Path
) -> None:
    """A delete file written before commits recorded their hashes: checked against the size
    the lake recorded (all there is), so a file of other bytes and size is still found."""
    cat = _copy(changed, tmp_path / "copy")
    with cat.db.read() as con:
        current = [f for f in lake.delete_file_entries(con) if f.current]
        recorded = checksums.recorded(con)
    rels = [cat.paths.relative(Path(f.location)) for f in current]
    assert rels and all(r in recorded for r in rels)  # each commit hashed the ones it wrote
    with cat.db.write(message="test: an earlier release's catalog") as con:
        con.execute("DELETE FROM file_checksums WHERE list_contains(?, path)", [rels])
    assert cat.verify().clean
    Path(current[0].location).write_bytes(b"not a delete file")
    report = cat.verify()
    assert report.rows() == [{"problem": "size mismatch", "path": rels[0]}]
    assert report.bad_delete_tables == ["wydot_bsm"]


def test_a_kept_file_no_other_file_has_the_bytes_of_cannot_be_mended(
    changed: dict[str, Any], tmp_path: Path
) -> None:
    """A file only older snapshots show, whose rows no current file holds: a re-fetch gives
    only the current data, so the repair says so and keeps it."""
    cat = _copy(changed, tmp_path / "copy")
    with cat.db.read() as con:
        old = sorted(Path(f.location) for f in lake.data_files(con) if not f.current)
    assert old
    victim = old[0]
    rel = cat.paths.relative(victim)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    report = cat.verify()
    assert report.mismatched == [rel] and list(report.kept_only) == [rel]
    assert rel not in report.by_size and not report.bad_partitions
    r = CliRunner().invoke(app, ["cache", "verify", "--repair", "--catalog", str(cat.paths.root)])
    assert r.exit_code == 1, r.output
    [line] = [x for x in r.output.splitlines() if x.startswith("cannot mend")]
    assert line.startswith(f"cannot mend {rel}: only older snapshot")
    assert "no file of the catalog has its bytes" in line and "re-fetched" not in r.output
    assert victim.read_bytes() == bytes(data)
    assert cat.query(ROWS).equals(changed["oracle3"])


def test_the_feed_counts_deletes_a_later_run_made_in_the_same_file(
    module_s3: Any, tmp_path: Path
) -> None:
    """Two --check-changes runs, each changing another object of one day's file: DuckLake
    keeps one delete file for that file over both snapshots, and the feed read after the
    first showed the second's inserts but none of its deletes (90 inserted, 0 deleted where
    `snapshots` said 100 removed). The feed is now the difference of the two versions."""
    day = date(2021, 4, 2)
    seed_replica(module_s3, day, day, sources=["wydot"], message_types=["BSM"],
                 records_per_hour=6, files_per_hour=1)  # fmt: skip
    cat = Catalog(tmp_path / "catalog")

    def ingest(**kw: Any) -> None:
        s = cat.ingest("wydot", "BSM", day, day, timezone="UTC", rate_limit=0, **kw)
        assert s.ok, s.as_dict()

    ingest()
    keys = sorted(o["Key"] for o in module_s3.list_objects_v2(
        Bucket=BUCKET, Prefix="wydot/BSM/2021/04/02/")["Contents"])  # fmt: skip
    _rewrite(module_s3, keys[0], '"speed":1')
    ingest(check_changes=True)
    first = max(s["snapshot_id"] for s in cat.snapshots())
    _rewrite(module_s3, keys[1], '"speed":2')
    ingest(check_changes=True)
    rows = "select source_key, generated_at, speed_mps from wydot_bsm"
    before, now = cat.query(rows, snapshot=first), cat.query(rows)
    gone = before.merge(now, how="left", indicator=True).query("_merge == 'left_only'")
    came = now.merge(before, how="left", indicator=True).query("_merge == 'left_only'")
    assert len(gone) > 0 and len(came) > 0
    feed = cat.changes("wydot", "BSM", since=first)
    assert (feed.change_type == "delete").sum() == len(gone)
    assert (feed.change_type == "insert").sum() == len(came)
    assert set(feed.snapshot_id) == {first + 1}
    per_snapshot = cat.changes("wydot", "BSM", since=first, output="dask").compute()
    assert sorted(per_snapshot.change_type) == sorted(feed.change_type)
