"""Where a catalog lives: placing files in its folders while another process prunes the ones
it emptied, folders linked elsewhere, paths with `key=value` folders, catalogs a reader cannot
write."""

from __future__ import annotations

import errno
import os
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from cvcatalog.catalog import Catalog
from cvcatalog.exceptions import CatalogError
from cvcatalog.io.layout import CatalogPaths, into_folder, prune_empty_dirs, publish_file
from cvcatalog.sandbox.replica import seed_replica
from cvcatalog.sources.bucket import BUCKET


def test_a_file_is_placed_though_another_process_pruned_its_folder(tmp_path: Path) -> None:
    src = tmp_path / "staged.parquet"
    src.write_bytes(b"rows")
    dest = tmp_path / "lake" / "day=1" / "data.parquet"
    calls = 0

    def place() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # an eviction emptied a neighbour and pruned up: the new folder went
            prune_empty_dirs(dest.parent, tmp_path)
            assert not dest.parent.exists()
        os.replace(src, dest)

    into_folder(dest, place)
    assert dest.read_bytes() == b"rows" and calls == 2


def test_a_missing_source_is_not_mistaken_for_a_pruned_folder(tmp_path: Path) -> None:
    dest = tmp_path / "lake" / "data.parquet"
    calls = 0

    def place() -> None:
        nonlocal calls
        calls += 1
        os.replace(tmp_path / "gone", dest)

    with pytest.raises(FileNotFoundError):
        into_folder(dest, place)
    assert calls == 1


def test_publish_file_makes_the_folder_and_moves_the_file(tmp_path: Path) -> None:
    src = tmp_path / "staged"
    src.write_bytes(b"x")
    dest = tmp_path / "a" / "b" / "f"
    publish_file(src, dest)
    assert dest.read_bytes() == b"x" and not src.exists()


@pytest.mark.integration
def test_a_lake_folder_linked_to_another_disk_keeps_working(
    s3_client: Any, tmp_path: Path
) -> None:
    """Moving `lake/` to a bigger disk and linking it back: every file path read from the
    state was resolved through the link and refused as "escapes the catalog directory"
    (ingest, verify, clear all failed)."""
    day, other = date(2021, 4, 1), date(2021, 4, 2)
    seed_replica(s3_client, day, other, records_per_hour=4, files_per_hour=1, empty_hour_rate=0)
    cat = Catalog(tmp_path / "catalog")
    kw: dict[str, Any] = {"timezone": "UTC", "rate_limit": 0}
    first = cat.ingest("wydot", "BSM", day, day, **kw)
    assert first.ok and first.rows > 0
    moved = tmp_path / "bigger-disk" / "lake"
    moved.parent.mkdir()
    shutil.move(cat.paths.root / "lake", moved)
    (cat.paths.root / "lake").symlink_to(moved)

    second = cat.ingest("wydot", "BSM", other, other, **kw)
    assert second.ok and second.rows > 0
    assert len(list(moved.rglob("*.parquet"))) == 2
    report = cat.verify()
    assert report.checked == 2 and report.ok == 2 and not report.missing, report
    assert int(cat.query("select count(*) n from wydot_bsm").n[0]) == first.rows + second.rows
    cat.clear()
    assert int(cat.query("select count(*) n from wydot_bsm").n[0]) == 0
    assert not list(moved.rglob("*.parquet"))


@pytest.mark.parametrize("rel", ["../outside.parquet", "lake/../../x", "/etc/passwd", "a\\b"])
def test_a_state_path_leaving_the_catalog_is_refused(tmp_path: Path, rel: str) -> None:
    with pytest.raises(CatalogError, match="escapes the catalog"):
        CatalogPaths.at(tmp_path).absolute(rel)


@pytest.mark.integration
def test_a_catalog_path_with_key_value_folders_keeps_its_files_clean(
    s3_client: Any, tmp_path: Path
) -> None:
    """A catalog under a folder named like a hive partition (`run=3`, `year=1999`): DuckDB's
    scans guess hive columns from every `key=value` folder of a path, so the staged Parquet
    got a `run` column from the catalog's own path and DuckLake refused every day ("Column
    "run" exists in file ... but was not found in table"). Every path of the pipeline: a day
    streamed from disk staging, a group of days, a --check-changes merge, compaction."""
    d1, d3 = date(2021, 4, 1), date(2021, 4, 3)
    seed_replica(
        s3_client, d1, d3, records_per_hour=20, files_per_hour=2, empty_hour_rate=0,
        malformed_per_day=2,
    )  # fmt: skip
    kw: dict[str, Any] = {"timezone": "UTC", "rate_limit": 0, "max_workers": 4}
    cat = Catalog(tmp_path / "year=1999" / "run=3 100%" / "catalog")
    cfg = cat.config("wydot", "BSM", d1, d1, **kw)
    cfg.memory.staging_gb = 0  # raw copies under the catalog's own staging/
    cfg.memory.rows_per_file = 200  # several files a day, for compaction
    first = cat.ingest("wydot", "BSM", config=cfg)
    assert first.ok, first.as_dict()
    group = cat.ingest("wydot", "BSM", d1, d3, **kw)
    assert group.ok and group.count("complete") == 2, group.as_dict()
    key = sorted(
        o["Key"]
        for o in s3_client.list_objects_v2(Bucket=BUCKET, Prefix="wydot/BSM/2021/04/02/")[
            "Contents"
        ]
    )[0]
    lines = s3_client.get_object(Bucket=BUCKET, Key=key)["Body"].read().splitlines()
    s3_client.put_object(Bucket=BUCKET, Key=key, Body=b"\n".join(lines[:3]) + b"\n")
    changed = cat.ingest("wydot", "BSM", d1, d3, check_changes=True, **kw)
    assert changed.ok and changed.partitions_rewritten == 1, changed.as_dict()
    assert cat.compact("wydot", "BSM")  # day 1's small files merged

    columns = set(cat.query("select * from wydot_bsm limit 0").columns)
    data = cat.query("select path from partition_files where kind = 'data'").path
    for rel in data:
        names = pq.read_schema(cat.paths.absolute(rel)).names
        assert set(names) <= columns, (rel, set(names) - columns)
    assert cat.verify().clean
    fresh = Catalog(tmp_path / "plain")
    assert fresh.ingest("wydot", "BSM", d1, d3, **kw).ok
    rows = "select count(*) n, sum(speed_mps) s from wydot_bsm"
    assert cat.query(rows).values.tolist() == fresh.query(rows).values.tolist()
    frame = cat.to_dask("wydot", "BSM", d1, d3, timezone="UTC")
    assert set(frame.columns) <= columns | {"date"} and len(frame) == fresh.query(rows).n[0]


@pytest.mark.integration
@pytest.mark.parametrize("err", [errno.EROFS, errno.EACCES])
def test_a_catalog_the_reader_cannot_write_is_read(
    s3_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int
) -> None:
    """to_dask on a catalog mounted read-only (or another user's) was 'OSError: [Errno 30]
    Read-only file system: .../access.log': the LRU clock a read appends to failed the read.
    Every read works; the read is not logged."""
    day = date(2021, 4, 1)
    seed_replica(s3_client, day, day, records_per_hour=4, files_per_hour=1, empty_hour_rate=0)
    cat = Catalog(tmp_path / "catalog")
    done = cat.ingest("wydot", "BSM", day, day, timezone="UTC", rate_limit=0)
    assert done.ok and done.rows > 0
    root = str(cat.paths.root)
    real_open, real_mkdir = os.open, Path.mkdir
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND

    def cannot_write(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if str(path).startswith(root) and flags & writes:
            raise OSError(err, os.strerror(err), str(path))
        return real_open(path, flags, *args, **kwargs)

    def no_mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        if str(self).startswith(root) and self.is_dir():  # as on a read-only mount: EROFS
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(os, "open", cannot_write)
    monkeypatch.setattr(Path, "mkdir", no_mkdir)
    frame = cat.to_dask("wydot", "BSM", day, day, timezone="UTC", columns=["vehicle_id"])
    assert len(frame) == done.rows
    assert int(cat.query("select count(*) n from wydot_bsm").n[0]) == done.rows
    assert not cat.paths.access_log.exists()


@pytest.mark.integration
def test_staging_on_another_file_system_than_the_lake(
    s3_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """staging/ (or lake/, quarantine/) linked to another disk: every day failed with
    'OSError: [Errno 18] Invalid cross-device link' when its files were renamed into the lake,
    and a repair's hard link of a good copy the same. Such files are copied in whole."""
    day, other = date(2021, 4, 1), date(2021, 4, 2)
    seed_replica(s3_client, day, other, records_per_hour=4, files_per_hour=1, empty_hour_rate=0)
    cat = Catalog(tmp_path / "catalog")
    staging = str(cat.paths.staging) + os.sep
    real_replace = os.replace
    crossed: list[str] = []

    def replace(src: Any, dest: Any, *args: Any, **kwargs: Any) -> None:
        if str(src).startswith(staging) != str(dest).startswith(staging):
            crossed.append(str(dest))
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(src), None, str(dest))
        real_replace(src, dest, *args, **kwargs)

    def link(src: Any, dest: Any, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(src), None, str(dest))

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "link", link)
    kw: dict[str, Any] = {"timezone": "UTC", "rate_limit": 0}
    done = cat.ingest("wydot", "BSM", day, other, **kw)
    assert done.ok and done.count("complete") == 2, done.as_dict()
    assert crossed  # the files did come from another "file system"
    assert not list(cat.paths.staging.rglob("*.parquet"))  # moved, not left behind
    assert cat.verify().clean
    # a repair restores a damaged file shown only by an older snapshot from a good file of
    # the same bytes (a hard link, else a copy)
    again = cat.ingest("wydot", "BSM", day, day, force_refresh=True, **kw)
    assert again.ok
    old = next(
        p for p in cat.paths.lake.rglob("*.parquet")
        if str(p) not in set(cat.query("select path from partition_files").path.map(
            lambda r: str(cat.paths.absolute(r))))
    )  # fmt: skip
    old.write_bytes(b"damaged")
    report = cat.verify()
    assert not report.clean
    cat.repair(report)
    assert cat.verify().clean
