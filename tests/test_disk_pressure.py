"""Disk pressure: LRU eviction before writing, and a full disk (ENOSPC) leaves nothing behind."""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from cvcatalog import transform
from cvcatalog.catalog import Catalog
from cvcatalog.cli.main import app
from cvcatalog.sandbox.replica import seed_replica
from cvcatalog.state.eviction import GB, Room, cache_bytes

D1, D2, D3 = date(2021, 4, 1), date(2021, 4, 2), date(2021, 4, 3)
DAY3_DIRS = (
    "lake/main/wydot_bsm/year=2021/month=4/day=3/date=2021-04-03",
    "quarantine/source=wydot/message_type=BSM/year=2021/month=04/day=03",
)


def _ingest(cat: Catalog, start: date, end: date) -> Any:
    return cat.ingest("wydot", "BSM", start, end, timezone="UTC", rate_limit=0, max_workers=4)


@pytest.fixture
def seeded(s3_client: Any) -> Any:
    return seed_replica(
        s3_client,
        D1,
        D3,
        records_per_hour=20,
        files_per_hour=1,
        malformed_per_day=1,
        empty_hour_rate=0,
    )


def test_lru_partitions_are_evicted_before_writing(
    seeded: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cat = Catalog(catalog_dir)
    assert _ingest(cat, D1, D2).ok
    cat.to_dask("wydot", "BSM", D2, D2)  # day 1 is now the least recently used
    used = int(cat.query("select sum(bytes) as b from partition_files").b[0])
    one_day = used // 2
    # room for the two cached days and half a day more: day 3 only fits if day 1 goes first
    monkeypatch.setenv("CVCATALOG_CACHE__MAX_SIZE_GB", str((used + one_day // 2) / GB))
    seen_at_write: list[bool] = []
    real = transform.convert_partition

    def spy(*args: Any, **kw: Any) -> Any:
        day1 = catalog_dir / "lake/main/wydot_bsm/year=2021/month=4/day=1/date=2021-04-01"
        seen_at_write.append(any(day1.rglob("*.parquet")))
        return real(*args, **kw)

    monkeypatch.setattr("cvcatalog.sources.cvpilot.convert_partition", spy)
    s = _ingest(cat, D3, D3)
    assert s.ok and s.evicted == ["wydot/BSM/2021/04/01"]
    assert seen_at_write == [False]  # day 1 was gone before day 3 was written
    left = {r["partition"] for r in cat.status()}
    assert left == {"wydot/BSM/2021/04/02", "wydot/BSM/2021/04/03"}
    assert cat.verify().clean


def test_the_partitions_of_the_current_run_are_never_evicted(
    seeded: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CVCATALOG_CACHE__MAX_SIZE_GB", str(1000 / GB))  # 1000 bytes
    cat = Catalog(catalog_dir)
    s = _ingest(cat, D1, D3)
    assert s.ok and s.evicted == [] and s.count("complete") == 3
    assert cat.query("select count(*) as n from wydot_bsm").n[0] == seeded.records


def test_room_reads_the_catalog_only_when_a_day_might_not_fit(
    seeded: Any, catalog_dir: Path
) -> None:
    cat = Catalog(catalog_dir)
    assert _ingest(cat, D1, D2).ok
    used = cache_bytes(cat.db)
    room = Room(cat.db, (used + 10_000) / GB)
    assert room.make("wydot", "BSM", 1_000) == [] and room.measured == 1
    for _ in range(5):  # far below the limit: the running estimate answers
        assert room.make("wydot", "BSM", 1_000) == []
    assert room.measured == 1
    # a day that might not fit is measured, and room made: the least recently used day goes
    big = 10 * used
    assert room.make("wydot", "BSM", big) != []
    assert room.measured == 2
    assert cache_bytes(cat.db) < used


def _enospc_publish(monkeypatch: pytest.MonkeyPatch) -> None:
    """The second file moved into the lake (the quarantine file) hits a full disk."""
    import cvcatalog.io.storage as storage_mod

    real = storage_mod.publish_file
    calls = {"n": 0}

    def full(src: Path, dest: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dest))
        real(src, dest)

    monkeypatch.setattr(storage_mod, "publish_file", full)


@pytest.mark.parametrize("where", ["publish", "parquet"])
def test_enospc_fails_the_day_cleanly(
    seeded: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    cat = Catalog(catalog_dir)
    assert _ingest(cat, D1, D2).ok
    before = cat.query("select count(*) as n from wydot_bsm").n[0]
    files_before = set(cat.query("select path from partition_files").path)
    fault = pytest.MonkeyPatch()
    if where == "publish":
        _enospc_publish(fault)
    else:
        real = transform.convert_partition

        def full(con: Any, schema: Any, files: Any, out_dir: Path, **kw: Any) -> Any:
            real(con, schema, files, out_dir, **kw)  # real Parquet in staging, then a full disk
            raise duckdb.IOException(
                f'IO Error: Could not write file "{out_dir}/data_0.parquet": '
                "No space left on device"
            )

        fault.setattr("cvcatalog.sources.cvpilot.convert_partition", full)
    r = CliRunner().invoke(
        app,
        [
            "ingest",
            "--source",
            "wydot",
            "--type",
            "BSM",
            "--start",
            "2021-04-03",
            "--catalog",
            str(catalog_dir),
            "--rate-limit",
            "0",
            "--no-progress",
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 1 and "Traceback" not in r.output
    failed = [x for x in r.stdout.splitlines() if x.strip().startswith("failed")]
    assert len(failed) == 1, r.output
    assert "no space left on device while writing /" in failed[0]
    # the message names the file: a lake file (day=3/) or the quarantine file (day=03/)
    assert re.search(r"day=0?3/" if where == "publish" else r"data_0\.parquet", failed[0])
    # nothing partial: not in the lake, not in quarantine, not in staging; catalog as before
    for rel in DAY3_DIRS:
        d = catalog_dir / rel
        assert not d.exists() or not any(d.iterdir()), list(d.iterdir())
    assert not list((catalog_dir / "staging").rglob("*.parquet"))
    assert not list((catalog_dir / "staging").rglob("*.ndjson"))
    assert cat.query("select count(*) as n from wydot_bsm").n[0] == before
    assert set(cat.query("select path from partition_files").path) == files_before
    assert {r["partition"]: r["status"] for r in cat.status()}["wydot/BSM/2021/04/03"] == "failed"
    assert cat.verify().clean
    fault.undo()
    assert _ingest(cat, D3, D3).count("complete") == 1  # space is back: the day completes


def _userns_tmpfs() -> bool:
    exe = shutil.which("unshare")
    if exe is None:
        return False
    probe = subprocess.run(
        [
            exe,
            "-rm",
            "sh",
            "-c",
            "mount -t tmpfs -o size=1m tmpfs /mnt 2>/dev/null || "
            'mount -t tmpfs -o size=1m tmpfs "$TMPDIR"',
        ],
        capture_output=True,
        env={**os.environ, "TMPDIR": "/tmp"},
    )
    return probe.returncode == 0


MID_CONVERSION = textwrap.dedent(
    """
    import json, os, shutil, subprocess, sys
    from cvcatalog.io.duckdb_ext import extension_path
    from pathlib import Path
    src, fs, keep = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    catalog = fs / "catalog"
    shutil.copytree(src, catalog)
    st = os.statvfs(fs)
    free = st.f_bavail * st.f_frsize - keep - (st.f_bavail * st.f_frsize) % 4096
    filler = fs / "filler"
    with open(filler, "wb") as f:  # leave `keep` bytes free
        f.write(b"\\0" * max(free, 0))
    cmd = [sys.executable, "-m", "cvcatalog", "ingest", "--source", "wydot", "--type", "BSM",
           "--start", "2021-04-01", "--end", "2021-04-02", "--catalog", str(catalog),
           "--rate-limit", "0", "--no-progress"]
    def state():
        import duckdb
        parquet = sorted(str(p.relative_to(catalog)) for p in (catalog / "lake").rglob("*.parquet"))
        stray = [str(p) for p in catalog.rglob("*")
                 if p.is_file() and (p.suffix in (".tmp", ".wal") or p.name.endswith(".part.json"))]
        con = duckdb.connect()
        con.execute("LOAD '" + str(extension_path("ducklake")) + "'")
        con.execute("ATTACH '" + str(catalog / "catalog.ducklake") + "' AS c (READ_ONLY)")
        con.execute("USE c")
        con.execute("ATTACH 'ducklake:" + str(catalog / "catalog.ducklake")
                    + "' AS cv (READ_ONLY, METADATA_CATALOG 'c')")
        con.execute("SET search_path = 'cv.main,c.main'")
        listed = sorted(r[0] for r in con.execute(
            "select path from partition_files where kind = 'data'").fetchall())
        rows = con.execute("select count(*) from wydot_bsm").fetchone()[0]
        con.close()
        return {"parquet": parquet, "listed": listed, "stray": stray, "rows": rows}
    r = subprocess.run(cmd, capture_output=True, text=True)
    full = {"rc": r.returncode, "out": r.stdout, "err": r.stderr, **state()}
    filler.unlink()
    r = subprocess.run(cmd, capture_output=True, text=True)
    again = {"rc": r.returncode, "out": r.stdout, "err": r.stderr, **state()}
    print(json.dumps({"full": full, "again": again}))
    """
)


@pytest.mark.skipif(not _userns_tmpfs(), reason="needs an unprivileged user namespace + tmpfs")
def test_a_real_full_filesystem_during_conversion(
    s3_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Downloads already staged, then the disk is full: DuckDB itself hits ENOSPC while
    checkpointing the catalog copy (it raised a FATAL error that escaped as 'unexpected')."""
    import json

    report = seed_replica(
        s3_client, D1, D2, records_per_hour=150, files_per_hour=2, empty_hour_rate=0
    )
    src = tmp_path / "src"
    cat = Catalog(src)
    assert _ingest(cat, D1, D1).ok
    day1 = report.partitions["wydot/BSM/2021/04/01"].records
    with monkeypatch.context() as m:  # stage day 2's downloads, then stop before converting

        def stop(*a: Any, **kw: Any) -> Any:
            raise OSError(errno.EIO, "stop here")

        m.setattr("cvcatalog.sources.cvpilot.convert_partition", stop)
        assert _ingest(cat, D2, D2).count("failed") == 1
    fs = tmp_path / "fs"
    fs.mkdir()
    size = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    keep = cat.database.stat().st_size + 96 * 1024  # the copy fits, its checkpoint does not
    script = tmp_path / "mid.py"
    script.write_text(MID_CONVERSION)
    mb = size // (1 << 20) + 16
    cmd = (
        f"mount -t tmpfs -o size={mb}m tmpfs {fs} && "
        f"exec {sys.executable} {script} {src} {fs} {keep}"
    )
    r = subprocess.run(
        ["unshare", "-rm", "sh", "-c", cmd], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    full, again = res["full"], res["again"]
    text = full["out"] + full["err"]
    print(text)  # shown with -rP: what the user sees
    assert full["rc"] == 1 and "Traceback" not in text, text
    assert "no space left on device while writing" in text, text
    assert full["parquet"] == full["listed"] and full["stray"] == []
    assert full["rows"] == day1  # day 1 intact, nothing of day 2 visible
    assert again["rc"] == 0, again["out"] + again["err"]
    assert again["rows"] == report.records
    assert again["parquet"] == again["listed"] and again["stray"] == []
