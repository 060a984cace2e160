"""Change data capture (`ingest --check-changes`) end to end against the local S3 endpoint.

Every comparison is against a fresh full ingest of the same (modified) bucket into a second
catalog, so nothing here hard-codes an expected row count.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cvcatalog.catalog import Catalog
from cvcatalog.cli.main import app
from cvcatalog.io.lake import files as lake_files
from cvcatalog.io.layout import sha256_file
from cvcatalog.pipeline.report import Summary as IngestSummary
from cvcatalog.pipeline.report import summary_lines
from cvcatalog.sandbox.replica import SeedReport, seed_replica
from cvcatalog.sources.bucket import BUCKET
from cvcatalog.sources.cvpilot import CvPilotDays
from cvcatalog.sources.cvpilot import ingest as run_ingest

D1, D2 = date(2021, 4, 1), date(2021, 4, 2)
DAY1, DAY2 = "wydot/BSM/2021/04/01", "wydot/BSM/2021/04/02"


def seed(client: Any) -> SeedReport:
    """Two days of ~6 objects each (one an hour, most hours empty): enough to change, add
    and remove some (each object is a PUT, a GET and a file to convert, in every ingest)."""
    return seed_replica(
        client, D1, D2, records_per_hour=30, files_per_hour=1, empty_hour_rate=0.75,
        malformed_per_day=4,
    )  # fmt: skip


def ingest(cat: Catalog, **kw: Any) -> IngestSummary:
    return cat.ingest("wydot", "BSM", D1, D2, timezone="UTC", rate_limit=0, max_workers=4, **kw)


def keys_of(client: Any, day: str) -> list[str]:
    out = client.list_objects_v2(Bucket=BUCKET, Prefix=day + "/")
    return sorted(o["Key"] for o in out.get("Contents", []))


def body(client: Any, key: str) -> bytes:
    data: bytes = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return data


def rewrite(client: Any, key: str) -> None:
    """Publish a new version of an object with different records: its second half dropped and
    every remaining record's speed changed."""
    lines = body(client, key).decode().splitlines()
    kept = lines[: max(1, len(lines) // 2)]
    changed = [re.sub(r'"speed":(\d)', r'"speed":1\1', ln) for ln in kept]
    client.put_object(Bucket=BUCKET, Key=key, Body=("\n".join(changed) + "\n").encode())


def files_of(cat: Catalog, key: str) -> dict[str, str]:
    """path -> sha256 of the bytes on disk, for every file the manifest lists for a partition."""
    rows = cat.query("select path from partition_files where partition_key = ?", [key])
    return {p: sha256_file(cat.paths.absolute(p)) for p in rows.path}


def row_hashes(cat: Catalog) -> list[str]:
    """Every row of the view, as a hash of all its columns, sorted: equal lists = equal rows."""
    df = cat.query("select md5(cast(t as varchar)) as h from wydot_bsm t order by h")
    return list(df.h)


def quarantine_entries(cat: Catalog) -> list[tuple[Any, ...]]:
    rows = cat.query("select path from partition_files where kind = 'quarantine'")
    out = []
    for rel in rows.path:
        for line in cat.paths.absolute(rel).read_text().splitlines():
            e = json.loads(line)
            out.append((e["source_key"], e["line"] or 0, e["reason"], e.get("raw") or ""))
    return sorted(out)


def partition_state(cat: Catalog) -> dict[str, tuple[Any, ...]]:
    df = cat.query(
        "select partition_key, status, rows, quarantined, source_objects, source_bytes, "
        "schema_versions from partitions order by 1"
    )
    return {r[0]: (*tuple(r[1:5]), r[5], list(r[6])) for r in df.itertuples(index=False)}


def validation(cat: Catalog, key: str) -> dict[tuple[str, str], int]:
    """The validation counts the partition's current version was committed with."""
    df = cat.query(
        "select v.kind, v.rule, v.count from validation_reports v join partitions p "
        "on p.partition_key = v.partition_key and p.run_id = v.run_id where p.partition_key = ?",
        [key],
    )
    return {(k, r): int(n) for k, r, n in df.itertuples(index=False)}


def assert_same_as_fresh(cat: Catalog, client: Any, tmp_path: Path, **kw: Any) -> None:
    """The catalog holds exactly what a full ingest of the bucket as it is now would hold."""
    fresh = Catalog(tmp_path / f"fresh-{len(list(tmp_path.iterdir()))}")
    s = ingest(fresh, **kw)
    assert s.ok, s.as_dict()
    assert row_hashes(cat) == row_hashes(fresh)
    assert quarantine_entries(cat) == quarantine_entries(fresh)
    assert partition_state(cat) == partition_state(fresh)
    for key in (DAY1, DAY2):
        assert validation(cat, key) == validation(fresh, key), key
    for key in (DAY1, DAY2):  # same canonical Parquet schema, no extra column
        schemas = {
            str(pq.read_schema(c.paths.absolute(p)))
            for c in (cat, fresh)
            for p in files_of(c, key)
            if p.endswith(".parquet")
        }
        assert len(schemas) == 1, key
    objs = "select key, size, etag from source_objects order by key"
    assert cat.query(objs).equals(fresh.query(objs))
    # the view never double counts: it holds the manifest's rows, one version per day
    total = cat.query("select count(*) as n from wydot_bsm").n[0]
    assert total == cat.query("select sum(rows) as n from partitions").n[0]
    assert cat.verify().clean


def test_check_changes_changes_only_the_changed_day(
    s3_client: Any, catalog_dir: Path, tmp_path: Path
) -> None:
    report = seed(s3_client)
    cat = Catalog(catalog_dir)
    first = ingest(cat)
    assert first.ok and first.mode == "full"
    assert first.objects("added") == sum(p.objects for p in report.partitions.values())
    assert first.partitions_rewritten == 2
    day1_before, day2_before = files_of(cat, DAY1), files_of(cat, DAY2)

    # day 1 changes: one object overwritten (one with a quarantined line, so its entries must
    # be replaced), one added, one deleted (also one with a quarantined line when possible)
    keys = keys_of(s3_client, DAY1)
    bad = sorted({m.key for m in report.malformed_lines if m.key.startswith(DAY1 + "/")})
    changed = bad[0] if bad else keys[0]
    removed = next(k for k in (bad[1:] + keys) if k != changed)
    rewrite(s3_client, changed)
    added = changed.rsplit("/", 1)[0] + "/usdot-its-cvpilot-bsm-public-6-added-object"
    donor = next(k for k in keys if k not in (changed, removed))
    s3_client.put_object(Bucket=BUCKET, Key=added, Body=body(s3_client, donor))
    s3_client.delete_object(Bucket=BUCKET, Key=removed)

    # `plan` had no --check-changes: it said both days cached. It now lists them as the
    # ingest will, and counts what the ingest then fetches
    plain = {r["partition"]: r for r in cat.plan("wydot", "BSM", D1, D2, timezone="UTC").rows}
    assert [plain[k]["fetch"] for k in (DAY1, DAY2)] == [False, False]
    r = CliRunner().invoke(app, ["plan", "--source", "wydot", "--type", "BSM", "--start", str(D1),
                            "--end", str(D2), "--timezone", "UTC", "--check-changes",
                            "--catalog", str(catalog_dir), "--format", "json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = {row["partition"]: row for row in json.loads(r.stdout)}
    changes = f"1 added, 1 changed, 1 removed, {len(keys) - 2} unchanged (--check-changes)"
    assert (rows[DAY1]["fetch"], rows[DAY1]["fetch_objects"], rows[DAY1]["reason"]) == (
        True, 2, changes)  # fmt: skip
    n2 = len(keys_of(s3_client, DAY2))
    assert (rows[DAY2]["fetch"], rows[DAY2]["fetch_objects"], rows[DAY2]["objects"]) == (False, 0, n2)
    assert rows[DAY2]["reason"] == f"unchanged (checked: {n2} objects)"
    assert "from the listing cache" in r.stderr and "; 2 LIST requests now; no GETs" in r.stderr

    s = ingest(cat, check_changes=True)
    assert s.ok, s.as_dict()
    assert s.mode == "incremental"
    days = {d.key: d for d in s.days}
    assert days[DAY1].status == "complete" and days[DAY2].status == "cached"
    assert (days[DAY1].added, days[DAY1].changed, days[DAY1].removed) == (1, 1, 1)
    assert days[DAY1].unchanged == len(keys) - 2
    assert days[DAY2].unchanged == len(keys_of(s3_client, DAY2))
    assert s.get_requests == 2 == rows[DAY1]["fetch_objects"]  # the added and the changed one
    assert s.list_requests == 2
    assert s.partitions_rewritten == 1
    assert (s.objects("added"), s.objects("changed"), s.objects("removed")) == (1, 1, 1)
    assert files_of(cat, DAY2) == day2_before  # untouched: same files, same bytes
    # deletes and inserts: day 1 keeps its Parquet (the changed and removed objects' rows
    # deleted from it), one new file holds the added and changed objects' rows, and the
    # quarantine file is replaced (entries of unchanged objects kept)
    day1_after = files_of(cat, DAY1)
    kept = {r: h for r, h in day1_before.items() if r.endswith(".parquet")}
    assert kept and all(day1_after.get(r) == h for r, h in kept.items())  # same bytes
    assert len([r for r in day1_after if r.endswith(".parquet") and r not in kept]) == 1
    with cat.db.read() as con:
        shown = set(lake_files(con, "wydot_bsm"))
    for rel in day1_before:
        old = cat.paths.absolute(rel)
        assert (str(old) in shown) == old.exists() == rel.endswith(".parquet")
    assert_same_as_fresh(cat, s3_client, tmp_path)

    # nothing changed since: LIST only, no GET, nothing rewritten, not a byte of the lake moves
    lake = {**files_of(cat, DAY1), **files_of(cat, DAY2)}
    again = ingest(cat, check_changes=True)
    assert (again.get_requests, again.list_requests, again.partitions_rewritten) == (0, 2, 0)
    assert {d.detail for d in again.days} == {"unchanged (checked)"}
    assert {**files_of(cat, DAY1), **files_of(cat, DAY2)} == lake

    # the default stays free: cached days cost no request at all
    plain = ingest(cat)
    assert (plain.get_requests, plain.list_requests) == (0, 0)
    assert plain.count("cached") == 2


def test_a_merged_day_reports_the_rows_the_run_wrote_not_the_whole_day(
    s3_client: Any, catalog_dir: Path
) -> None:
    """A run's rows (summary line, rows/s, `runs`) are the rows it wrote, what its snapshot
    counts as inserted, and its quarantined the entries of the objects it converted; the
    partition still records the whole day."""
    report = seed(s3_client)
    cat = Catalog(catalog_dir)
    first = ingest(cat)
    assert first.ok
    first_snaps = [x for x in cat.snapshots() if x["run_id"] == first.run_id]
    assert first.rows == sum(x["rows_added"] for x in first_snaps)
    # day 1: an object with malformed lines copied under a new name (the run quarantines its
    # lines again; the original's entries are kept), one other object changed, one removed
    keys = keys_of(s3_client, DAY1)
    bad = sorted({m.key for m in report.malformed_lines if m.key.startswith(DAY1 + "/")})
    assert bad
    donor = bad[0]
    changed, removed = [k for k in keys if k != donor][:2]
    added = donor.rsplit("/", 1)[0] + "/usdot-its-cvpilot-bsm-public-6-added-object"
    s3_client.put_object(Bucket=BUCKET, Key=added, Body=body(s3_client, donor))
    rewrite(s3_client, changed)
    s3_client.delete_object(Bucket=BUCKET, Key=removed)

    s = ingest(cat, check_changes=True)
    assert s.ok, s.as_dict()
    assert s.partitions_rewritten == 1
    snaps = [x for x in cat.snapshots() if x["run_id"] == s.run_id]
    inserted = sum(x["rows_added"] for x in snaps)
    assert inserted > 0 and sum(x["rows_removed"] for x in snaps) > 0
    mine = [e for e in quarantine_entries(cat) if e[0] in (added, changed)]
    assert mine
    days = {d.key: d for d in s.days}
    assert (days[DAY1].rows, days[DAY1].quarantined) == (inserted, len(mine))
    assert (s.rows, s.quarantined) == (inserted, len(mine))
    d = s.as_dict()
    assert (d["rows"], d["quarantined"]) == (inserted, len(mine))
    line = summary_lines(s)[0]
    assert f"; {inserted:,} rows, {len(mine):,} quarantined" in line
    assert line.endswith(f"({inserted / s.seconds:,.0f} rows/s)")
    run = cat.runs(1)[0]
    assert run["run_id"] == s.run_id
    assert (run["rows"], run["quarantined"]) == (inserted, len(mine))
    r = CliRunner().invoke(app, ["runs", "--catalog", str(catalog_dir), "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)[0]["rows"] == inserted

    # the day's own record is unchanged in meaning: all the rows and entries it holds
    day = cat.query("select rows, quarantined from partitions where partition_key = ?", [DAY1])
    rows, quarantined = int(day.rows[0]), int(day.quarantined[0])
    shown = cat.query("select count(*) as n from wydot_bsm where date = ?", [D1]).n[0]
    entries = [e for e in quarantine_entries(cat) if e[0].startswith(DAY1 + "/")]
    assert rows == shown > inserted
    assert quarantined == len(entries) > len(mine)


def test_an_interrupted_check_resumes_with_the_days_left(
    s3_client: Any, catalog_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(s3_client)
    cat = Catalog(catalog_dir)
    assert ingest(cat).ok
    changed = {day: keys_of(s3_client, day)[1] for day in (DAY1, DAY2)}
    for key in changed.values():
        rewrite(s3_client, key)
    day2_before = files_of(cat, DAY2)

    real = CvPilotDays._convert
    calls: list[Path] = []

    def dies_on_the_second_day(self: CvPilotDays, raw: Any, out_dir: Path, threads: Any = None) -> Any:
        calls.append(out_dir)
        if len(calls) == 2:
            raise KeyboardInterrupt  # e.g. Ctrl-C while day 2 converts
        return real(self, raw, out_dir, threads)

    with monkeypatch.context() as m:
        m.setattr(CvPilotDays, "_convert", dies_on_the_second_day)
        with pytest.raises(KeyboardInterrupt):
            ingest(cat, check_changes=True)

    # day 1 was committed on its own (the checkpoint); day 2 still holds its previous version
    etag = "select etag from source_objects where key = ?"
    new_etag = {day: s3_client.head_object(Bucket=BUCKET, Key=k)["ETag"].strip('"')
                for day, k in changed.items()}  # fmt: skip
    assert cat.query(etag, [changed[DAY1]]).etag[0] == new_etag[DAY1]
    assert cat.query(etag, [changed[DAY2]]).etag[0] != new_etag[DAY2]
    assert files_of(cat, DAY2) == day2_before
    run = cat.runs(1)[0]
    assert run["status"] == "interrupted" and run["partitions_rewritten"] == 1
    day1_after = files_of(cat, DAY1)

    s = ingest(cat, check_changes=True)
    assert s.ok, s.as_dict()
    days = {d.key: d for d in s.days}
    assert days[DAY1].status == "cached" and days[DAY1].detail == "unchanged (checked)"
    assert days[DAY2].status == "complete" and days[DAY2].changed == 1
    assert s.partitions_rewritten == 1
    # only day 2's changed object: fetched again, or reused from the interrupted run's staging
    assert s.get_requests + s.reused_downloads == 1
    assert files_of(cat, DAY1) == day1_after
    assert_same_as_fresh(cat, s3_client, tmp_path)


def test_with_a_quality_config_a_changed_day_is_counted_whole(
    s3_client: Any, catalog_dir: Path, tmp_path: Path
) -> None:
    """The quality counts of a partition describe all its rows: a changed day is converted
    whole (its kept rows were cleaned already; smoothing them again would move them)."""
    seed(s3_client)
    box = {"lat_min": 40.5, "lat_max": 42.5, "lon_min": -107.0, "lon_max": -103.5}
    cfg = tmp_path / "q.yml"
    cfg.write_text(
        json.dumps(
            {
                "source": "wydot",
                "message_type": "BSM",
                "date_range": {"days_back": 1},
                "quality": {"rules": {"bounds": box}},
            }
        )
    )
    cat = Catalog(catalog_dir)
    assert ingest(cat, config=cfg).ok
    keys = keys_of(s3_client, DAY1)
    rewrite(s3_client, keys[0])
    s = ingest(cat, config=cfg, check_changes=True)
    assert s.ok, s.as_dict()
    days = {d.key: d for d in s.days}
    assert days[DAY1].status == "complete" and days[DAY1].changed == 1
    assert s.get_requests == len(keys)  # the whole day, not only the changed object
    outside = "not (latitude between 40.5 and 42.5 and longitude between -107.0 and -103.5)"
    want = cat.query(
        f"select count(*) filter (where {outside}) n, count(*) total from wydot_bsm where date = ?",
        [D1],
    )
    got = cat.query(
        "select rule, action, count from quality_stats where run_id = ? and partition_key = ?",
        [s.run_id, DAY1],
    )
    counts = {(r.rule, r.action): r.count for r in got.itertuples()}
    assert want.n[0] > 0
    assert counts[("bounds", "flagged")] == want.n[0]
    assert counts[("rows", "input")] == want.total[0]
    assert_same_as_fresh(cat, s3_client, tmp_path, config=cfg)
    again = ingest(cat, config=cfg, check_changes=True)  # nothing changed: LIST only
    assert (again.get_requests, again.partitions_rewritten) == (0, 0)


def test_a_day_that_only_lost_objects_and_a_no_data_day_that_filled(
    s3_client: Any, catalog_dir: Path, tmp_path: Path
) -> None:
    seed_replica(s3_client, D1, D1, records_per_hour=20, files_per_hour=1, empty_hour_rate=0)
    cat = Catalog(catalog_dir)
    first = ingest(cat)
    assert {d.key: d.status for d in first.days} == {DAY1: "complete", DAY2: "no_data"}
    for key in keys_of(s3_client, DAY1)[:3]:
        s3_client.delete_object(Bucket=BUCKET, Key=key)
    seed_replica(s3_client, D2, D2, records_per_hour=20, files_per_hour=1, empty_hour_rate=0)

    s = ingest(cat, check_changes=True)
    assert s.ok, s.as_dict()
    days = {d.key: d for d in s.days}
    assert (days[DAY1].status, days[DAY1].removed, days[DAY1].added) == ("complete", 3, 0)
    assert days[DAY2].status == "complete"
    assert days[DAY2].added == len(keys_of(s3_client, DAY2))
    assert s.get_requests == days[DAY2].added  # removals cost no GET
    assert_same_as_fresh(cat, s3_client, tmp_path)


def test_the_pooled_path_merges_on_the_client(
    s3_client: Any, catalog_dir: Path, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from cvcatalog.distributed import ConversionPool

    seed(s3_client)
    cat = Catalog(catalog_dir)
    assert ingest(cat).ok
    rewrite(s3_client, keys_of(s3_client, DAY1)[0])
    cfg = cat.config("wydot", "BSM", D1, D2, timezone="UTC", rate_limit=0)
    with ThreadPoolExecutor(2) as ex:
        pool = ConversionPool(ex, capacity=2, name="threads", threads=1)
        s = run_ingest(cfg, pool=pool, check_changes=True)
    assert s.ok and s.executor == "threads"
    assert (s.partitions_rewritten, s.objects("changed"), s.get_requests) == (1, 1, 1)
    assert_same_as_fresh(cat, s3_client, tmp_path)


def test_runs_lists_what_each_run_changed(s3_client: Any, catalog_dir: Path) -> None:
    seed(s3_client)
    cat = Catalog(catalog_dir)
    ingest(cat)
    key = keys_of(s3_client, DAY1)[0]
    rewrite(s3_client, key)
    s3_client.delete_object(Bucket=BUCKET, Key=keys_of(s3_client, DAY1)[1])
    runner = CliRunner()
    base = ["--source", "wydot", "--type", "BSM", "--start", "2021-04-01", "--end", "2021-04-02"]
    opts = ["--catalog", str(catalog_dir), "--rate-limit", "0", "--no-progress"]
    r = runner.invoke(app, ["ingest", *base, *opts, "--check-changes", "--format", "json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)[0]
    assert summary["mode"] == "incremental"
    assert (summary["objects_changed"], summary["objects_removed"]) == (1, 1)
    assert summary["partitions_rewritten"] == 1
    r = runner.invoke(app, ["ingest", *base, *opts, "--check-changes"])
    assert r.exit_code == 0, r.output
    assert "incremental: objects 0 added, 0 changed, 0 removed" in r.output

    r = runner.invoke(app, ["runs", "--catalog", str(catalog_dir), "--format", "json"])
    assert r.exit_code == 0, r.output
    runs = json.loads(r.output)
    assert [x["mode"] for x in runs] == ["incremental", "incremental", "full"]
    newest, middle, oldest = runs
    assert (middle["objects_changed"], middle["objects_removed"]) == (1, 1)
    assert middle["partitions_rewritten"] == 1 and middle["run_id"] == summary["run_id"]
    assert newest["partitions_rewritten"] == 0 and newest["objects_unchanged"] > 0
    assert oldest["objects_added"] == cat.query("select count(*) as n from source_objects").n[0] + 1
    assert oldest["partitions_rewritten"] == 2

    r = runner.invoke(app, ["runs", "--catalog", str(catalog_dir), "--limit", "2"])
    assert r.exit_code == 0, r.output
    assert summary["run_id"] in r.output and "incremental" in r.output
    assert r.output.count("incremental") == 2 and "full" not in r.output
    r = runner.invoke(app, ["runs", "--catalog", str(catalog_dir), "--source", "thea"])
    assert r.exit_code == 0 and summary["run_id"] not in r.output
    r = runner.invoke(app, ["report", "runs", "--catalog", str(catalog_dir), "--format", "csv"])
    assert r.exit_code == 0 and r.output.count("\n") == 4  # header + 3 runs

    r = runner.invoke(
        app, ["runs", "show", summary["run_id"], "--catalog", str(catalog_dir), "--format", "json"]
    )
    assert r.exit_code == 0, r.output
    assert [p["partition"] for p in json.loads(r.stdout)] == [DAY1]
    r = runner.invoke(app, ["runs", "show", "no-such-run", "--catalog", str(catalog_dir)])
    assert r.exit_code == 1 and "no ingest run" in r.output and "Traceback" not in r.output


def test_a_canonical_schema_change_still_rebuilds_the_whole_day(
    s3_client: Any, catalog_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from cvcatalog import schemas

    seed(s3_client)
    cat = Catalog(catalog_dir)
    assert ingest(cat).ok
    rewrite(s3_client, keys_of(s3_client, DAY1)[0])
    bumped = dataclasses.replace(schemas.SCHEMAS[("wydot", "BSM")], canonical_version=99)
    monkeypatch.setitem(schemas.SCHEMAS, ("wydot", "BSM"), bumped)
    s = ingest(cat, check_changes=True)
    assert s.ok and s.partitions_rewritten == 2
    n_objects = len(keys_of(s3_client, DAY1)) + len(keys_of(s3_client, DAY2))
    assert s.get_requests == n_objects == s.objects("added")  # rebuilt from every object
    assert s.objects("changed") == 0 and {d.detail for d in s.days} == {""}
    assert_same_as_fresh(cat, s3_client, tmp_path)


def test_objects_are_classified_by_key_size_and_etag() -> None:
    from datetime import UTC, datetime

    from cvcatalog.incremental import diff_objects
    from cvcatalog.io.download import ObjectInfo
    from cvcatalog.state.manifest import SourceObjectRecord

    t0, t1 = datetime(2021, 4, 1, tzinfo=UTC), datetime(2021, 4, 2, tzinfo=UTC)
    known = [
        SourceObjectRecord("a", 10, "e-a", t0),
        SourceObjectRecord("b", 10, "e-b", t0),
        SourceObjectRecord("c", 10, "e-c", t0),
        SourceObjectRecord("d", 10, "e-d", t0),
        SourceObjectRecord("gone", 10, "e-g", t0),
    ]
    listed = [
        ObjectInfo("a", 10, "e-a", t0),  # unchanged
        ObjectInfo("b", 10, "e-b", t1),  # only LastModified moved: the same bytes
        ObjectInfo("c", 10, "e-c2", t1),  # same size, new ETag
        ObjectInfo("d", 11, "e-d", t1),  # new size
        ObjectInfo("new", 5, "e-n", t1),
    ]
    d = diff_objects(listed, known)
    assert [o.key for o in d.added] == ["new"]
    assert [o.key for o in d.changed] == ["c", "d"]
    assert list(d.removed) == ["gone"]
    assert [o.key for o in d.unchanged] == ["a", "b"]
    assert [o.key for o in d.fetch] == ["new", "c", "d"]
    assert d.dropped_keys == ["c", "d", "gone"] and not d.empty
    assert diff_objects(listed[:2], known[:2]).empty
