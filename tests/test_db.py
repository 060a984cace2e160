"""The catalog database: migrations, atomic copy-on-write commits, and bounded waits."""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import filelock
import pytest

from cvcatalog.exceptions import CatalogError, CatalogLockedError
from cvcatalog.io import lake
from cvcatalog.io.layout import CatalogPaths
from cvcatalog.state import blanks, tables, trips
from cvcatalog.state.db import MIGRATIONS, CatalogDB


@pytest.fixture
def db(catalog_dir: Path) -> CatalogDB:
    d = CatalogDB(CatalogPaths.at(catalog_dir), lock_timeout=2.0)
    d.initialise()
    return d


def test_migrations_create_the_tables_once(db: CatalogDB) -> None:
    db.initialise()
    with db.read() as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        versions = con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    assert {
        "partitions",
        "partition_files",
        "source_objects",
        "ingest_runs",
        "validation_reports",
    } <= tables
    assert versions == [(v,) for v, _ in sorted(MIGRATIONS)]


def test_a_failed_transaction_leaves_the_catalog_untouched(db: CatalogDB) -> None:
    before = db.paths.db.read_bytes()
    with pytest.raises(RuntimeError), db.write() as con:
        con.execute("CREATE TABLE scratch (x INTEGER)")
        raise RuntimeError("boom")
    assert db.paths.db.read_bytes() == before
    leftovers = [p.name for p in db.paths.root.iterdir() if p.name.endswith((".tmp", ".wal"))]
    assert leftovers == []


def test_readers_see_every_commit_and_open_ones_keep_their_snapshot(db: CatalogDB) -> None:
    def count(con: duckdb.DuckDBPyConnection) -> int:
        row = con.execute("SELECT count(*) FROM t").fetchone()
        assert row is not None
        return int(row[0])

    with db.write() as w:
        w.execute("CREATE TABLE t (x INTEGER)")
    for i in range(1, 4):
        with db.read() as con:
            assert count(con) == i - 1
        with db.read() as held:  # open while a writer publishes
            with db.write() as w:
                w.execute("INSERT INTO t VALUES (?)", [i])
            with db.read() as con:
                assert count(con) == i
            assert count(held) == i - 1
    handed = db.connect()  # a connection handed out keeps its snapshot too
    with db.write() as w:
        w.execute("INSERT INTO t VALUES (4)")
    with db.read() as con:
        assert count(con) == 4
    assert count(handed) == 3
    handed.close()
    with db.write() as w:
        w.execute("INSERT INTO t VALUES (5)")
    with db.read() as con:
        assert count(con) == 5


HOLDER = """
import duckdb, sys, time
con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
print(con.execute("SELECT count(*) FROM schema_migrations").fetchone()[0], flush=True)
sys.stdin.readline()
# still readable after the writer replaced the file: this session keeps its snapshot
print(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'added'").fetchone()[0], flush=True)
"""


@pytest.mark.parametrize("mode", ["ro", "rw"])
def test_an_open_duckdb_session_never_blocks_a_write(db: CatalogDB, mode: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db.paths.db), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == str(len(MIGRATIONS))  # one row per migration
        t0 = time.monotonic()
        with db.write() as con:
            con.execute("CREATE TABLE added (x INTEGER)")
        assert time.monotonic() - t0 < 2.0
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "0"  # the shell's snapshot is the old one
    finally:
        proc.kill()
        proc.wait()
    with db.read() as con:
        assert con.execute("SELECT count(*) FROM added").fetchone() == (0,)


def test_readers_wait_then_fail_clearly_on_a_read_write_holder(db: CatalogDB) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db.paths.db), "rw"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        db.lock_timeout = 0.5
        with pytest.raises(CatalogLockedError, match="READ_ONLY"), db.read():
            pass
    finally:
        proc.kill()
        proc.wait()


def test_writers_serialise_and_time_out_with_a_message(db: CatalogDB) -> None:
    notes: list[str] = []
    db.notify = notes.append
    db.lock_timeout = 0.6
    other = filelock.FileLock(str(db.paths.db_lock))
    other.acquire()
    try:
        t0 = time.monotonic()
        with pytest.raises(CatalogLockedError, match="another cvcatalog process"), db.write():
            pass
        assert time.monotonic() - t0 >= 0.6
        assert notes and "waiting" in notes[0]
    finally:
        other.release()


def test_the_catalog_opens_in_a_plain_duckdb(db: CatalogDB) -> None:
    con = duckdb.connect(str(db.paths.db), read_only=True)
    assert con.execute("SELECT count(*) FROM partitions").fetchone() == (0,)
    con.close()


@pytest.mark.parametrize("name", ["ducklake", "httpfs", "spatial"])
def test_the_shipped_extensions_load_with_signature_checks(name: str, tmp_path: Path) -> None:
    """Each pinned extension passes DuckDB's signature check, and a damaged copy is refused
    (cvcatalog's instances rely on that check, run once per file: duckdb_ext.verify_extension)."""
    from cvcatalog.io.duckdb_ext import extension_path, load_extension

    con = duckdb.connect(config={"allow_unsigned_extensions": False})
    try:
        load_extension(con, name)
        loaded = "select loaded from duckdb_extensions() where extension_name = ?"
        assert con.execute(loaded, [name]).fetchone() == (True,)
    finally:
        con.close()
    damaged = tmp_path / f"{name}.duckdb_extension"
    data = bytearray(extension_path(name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    con = duckdb.connect(config={"allow_unsigned_extensions": False})
    try:
        with pytest.raises(duckdb.Error, match="signature"):
            con.execute(f"LOAD '{damaged}'")
    finally:
        con.close()


def test_an_extension_is_checked_once_per_file_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify_extension runs DuckDB's signature check on a file the first time, remembers it
    (in the process and in the user cache), checks it again once the file changes, and turns
    a damaged file into one line with no marker left behind."""
    from cvcatalog.io import duckdb_ext

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    markers = tmp_path / "cache" / "cvcatalog" / "verified-extensions"
    good = tmp_path / "good" / "httpfs.duckdb_extension"
    good.parent.mkdir()
    good.write_bytes(duckdb_ext.extension_path("httpfs").read_bytes())
    checks: list[object] = []
    real_connect = duckdb.connect

    def counting(*args: Any, **kw: Any) -> duckdb.DuckDBPyConnection:
        checks.append(kw.get("config"))
        return real_connect(*args, **kw)

    monkeypatch.setattr(duckdb_ext.duckdb, "connect", counting)
    monkeypatch.setattr(duckdb_ext, "_VERIFIED", set())
    duckdb_ext.verify_extension(good, "httpfs")
    duckdb_ext.verify_extension(good, "httpfs")  # remembered in this process
    assert len(checks) == 1 and len(list(markers.iterdir())) == 1

    monkeypatch.setattr(duckdb_ext, "_VERIFIED", set())  # another process: the marker holds
    duckdb_ext.verify_extension(good, "httpfs")
    assert len(checks) == 1

    os.utime(good, ns=(1, 1))  # the file changed: checked again
    monkeypatch.setattr(duckdb_ext, "_VERIFIED", set())
    duckdb_ext.verify_extension(good, "httpfs")
    assert len(checks) == 2 and len(list(markers.iterdir())) == 2

    damaged = tmp_path / "bad" / "httpfs.duckdb_extension"
    damaged.parent.mkdir()
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(CatalogError, match=r"failed its check .*reinstall duckdb-extension-httpfs"):
        duckdb_ext.verify_extension(damaged, "httpfs")
    assert len(list(markers.iterdir())) == 2


def test_state_sessions_leave_the_lake_unattached(db: CatalogDB) -> None:
    """read_state() reads the state tables without DuckLake (all to_dask needs); a read()
    attaches the lake to the same reader instance when first needed, under open state
    sessions; after a commit both see the new catalog, and the lake waits for a read() again."""

    def count(con: duckdb.DuckDBPyConnection) -> int:
        row = con.execute("SELECT count(*) FROM t").fetchone()
        assert row is not None
        return int(row[0])

    def lake_there(con: duckdb.DuckDBPyConnection) -> tuple[bool, bool]:
        names = {r[0] for r in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()}
        row = con.execute(
            "SELECT count(*) FROM duckdb_extensions() WHERE extension_name = 'ducklake' AND loaded"
        ).fetchone()
        return "cv" in names, bool(row and row[0])

    with db.write() as w:
        w.execute("CREATE TABLE t (x INTEGER)")
        w.execute("INSERT INTO t VALUES (1)")
    fresh = CatalogDB(db.paths, lock_timeout=2.0)  # a process that has read nothing yet
    with fresh.read_state() as con:
        assert count(con) == 1 and lake_there(con) == (False, False)
    assert fresh.lake_url is None  # the setting is a state read too
    with fresh.read_state() as held:
        with fresh.read() as con:
            assert count(con) == 1 and lake_there(con) == (True, True)
            assert con.execute("SELECT count(*) FROM cv.main.wydot_bsm").fetchone() == (0,)
        assert count(held) == 1
    with db.write() as w:
        w.execute("INSERT INTO t VALUES (2)")
    with fresh.read_state() as con:
        assert count(con) == 2 and not lake_there(con)[0]
    with fresh.read() as con:
        assert count(con) == 2 and lake_there(con)[0]


def test_a_state_only_write_leaves_the_lake_out_and_publishes_the_state(
    catalog_dir: Path,
) -> None:
    """A run's start and end write state that names no lake file: the lake is not attached
    to that write (nor synced); its rows are published all the same. A catalog still to
    create is made whole by it (or copied whole from the blank), lake tables and views
    included."""

    def databases(con: duckdb.DuckDBPyConnection) -> set[str]:
        return {r[0] for r in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()}

    CatalogDB(CatalogPaths.at(catalog_dir.parent / "first")).initialise()  # a blank is kept
    db = CatalogDB(CatalogPaths.at(catalog_dir), lock_timeout=2.0)
    with db.write(state_only=True):  # no catalog yet: copied whole from the blank
        pass
    with db.read() as con:
        assert tables.up_to_date(con)
        assert con.execute("SELECT count(*) FROM wydot_bsm_socrata").fetchone() == (0,)
        snapshots = len(lake.snapshots(con))
    with db.write(state_only=True) as con:
        assert "cv" not in databases(con)
        con.execute("CREATE TABLE t (x INTEGER)")
        con.execute("INSERT INTO t VALUES (1)")
    with db.write() as con:
        assert "cv" in databases(con)
    with db.read() as con:
        assert con.execute("SELECT x FROM t").fetchall() == [(1,)]
        assert len(lake.snapshots(con)) == snapshots
        assert tables.up_to_date(con)
    # a new catalog that asks for another trips gap than the blank's gets its views made
    gapped = CatalogDB(CatalogPaths.at(catalog_dir.parent / "gapped"), trip_gap_s=30.0)
    gapped.ensure_schema()
    with gapped.read() as con:
        assert trips.recorded_gap(con) == 30.0 and tables.up_to_date(con)


def test_a_write_walks_the_lake_only_when_its_definitions_changed(
    db: CatalogDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new process's first write checks the lake's tables and views against this
    cvcatalog's from the metadata and state tables; ensure() runs only when they differ."""
    with db.write(message="create"):
        pass
    calls: list[int] = []
    real = tables.ensure

    def counted(con: Any) -> dict[str, str]:
        calls.append(1)
        return real(con)

    monkeypatch.setattr(tables, "ensure", counted)
    with CatalogDB(db.paths).write(message="first write of another process"):
        pass
    assert calls == []
    with db.read() as con:
        assert tables.up_to_date(con)
    with CatalogDB(db.paths).write(message="a view's definition changes") as con:
        con.execute("UPDATE lake_views SET sha256 = 'old' WHERE name = 'wydot_bsm_socrata'")
    with db.read() as con:
        assert not tables.up_to_date(con)
    with CatalogDB(db.paths).write(message="reinstalled"):
        pass
    assert calls == [1]
    with db.read() as con:
        assert tables.up_to_date(con)


def test_a_commit_reads_the_lake_and_state_files_once_unless_it_rebuilds_a_table(
    db: CatalogDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fresh_names and sync_all both need the lake's file list (a query over the metadata
    tables, ~10 % of a small commit): read once after the block, again only when a table was
    dropped and made anew in between."""
    calls: list[int] = []
    real = lake.data_files

    def counted(con: Any, base: str | None = None) -> list[lake.DataFile]:
        calls.append(1)
        return real(con, base)

    monkeypatch.setattr(lake, "data_files", counted)
    known: list[int] = []
    real_known, real_current = lake.known_files, tables.current_files
    monkeypatch.setattr(lake, "known_files", lambda *a: known.append(1) or real_known(*a))
    current: list[int] = []
    monkeypatch.setattr(tables, "current_files", lambda c: current.append(1) or real_current(c))
    with db.write(message="state only"):
        pass
    # no file about to be added: nothing the lake knew can be one (fresh_names' check skipped),
    # and the state's current files are read once for fresh_names and sync_all
    assert len(calls) == 1 and known == [] and current == [1]
    calls.clear()
    with db.write(message="rebuilt", rebuild=["wydot_bsm"]):
        pass
    assert len(calls) == 2
    with db.read() as con:
        assert con.execute("SELECT count(*) FROM wydot_bsm").fetchone() == (0,)


@pytest.mark.parametrize("where", ["staging", "quarantine", "lake", "locks"])
def test_a_file_where_the_catalog_keeps_a_directory_is_one_line(
    tmp_path: Path, where: str
) -> None:
    """A plain file in place of staging/ (or quarantine/, lake/, locks/) was 'unexpected
    FileExistsError' from ingest, compact and repair alike: one line naming it, nothing
    written."""
    from typer.testing import CliRunner

    from cvcatalog.cli.main import app

    db = CatalogDB(CatalogPaths.at(tmp_path / "cat"))
    db.initialise()
    target = tmp_path / "cat" / where
    shutil.rmtree(target)
    target.write_text("x")
    before = (tmp_path / "cat" / "catalog.ducklake").read_bytes()
    want = f"{target} is a file where the catalog keeps a directory; move it away"
    with pytest.raises(CatalogError, match="^" + re.escape(want) + "$"):
        CatalogDB(CatalogPaths.at(tmp_path / "cat")).initialise()
    r = CliRunner().invoke(app, ["compact", "--catalog", str(tmp_path / "cat")])
    assert (r.exit_code, r.stdout, r.stderr) == (1, "", f"error: {want}\n")
    assert (tmp_path / "cat" / "catalog.ducklake").read_bytes() == before
    assert target.read_text() == "x"


def test_a_file_in_place_of_a_parent_of_the_catalog_is_named(tmp_path: Path) -> None:
    """mkdir names the folder it was asked for, not the file above it: '<cat> is a file ...'
    named a path that does not exist."""
    (tmp_path / "afile").write_text("x")
    want = f"{tmp_path / 'afile'} is a file where the catalog keeps a directory; move it away"
    with pytest.raises(CatalogError, match="^" + re.escape(want) + "$"):
        CatalogPaths.at(tmp_path / "afile" / "sub" / "cat").ensure()
    assert (tmp_path / "afile").read_text() == "x"


def test_a_catalog_folder_that_cannot_be_made_for_another_reason_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not 'unexpected FileNotFoundError' (a path under /proc) or OSError (a device gone)."""
    where = tmp_path / "cat"

    def mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(self))

    monkeypatch.setattr(Path, "mkdir", mkdir)
    want = f"cannot create the catalog at {where}: {os.strerror(errno.EIO)}"
    with pytest.raises(CatalogError, match="^" + re.escape(want) + "$"):
        CatalogPaths.at(where).ensure()


@pytest.mark.parametrize("where", ["staging", "quarantine", "lake"])
def test_a_folder_linked_to_a_disk_not_mounted_is_named_so(tmp_path: Path, where: str) -> None:
    """staging/ (or lake/, quarantine/) linked to another disk that is not mounted: every
    writer said '... is a file where the catalog keeps a directory; move it away' of a link."""
    db = CatalogDB(CatalogPaths.at(tmp_path / "cat"))
    db.initialise()
    target = tmp_path / "cat" / where
    shutil.rmtree(target)
    target.symlink_to(tmp_path / "unmounted" / where)
    want = (
        f"{target} is a link to {tmp_path / 'unmounted' / where}, which does not exist (a disk "
        "not mounted?); mount it, or make the folder it names"
    )
    with pytest.raises(CatalogError, match="^" + re.escape(want) + "$"):
        CatalogDB(CatalogPaths.at(tmp_path / "cat")).initialise()
    assert target.is_symlink() and not (tmp_path / "unmounted").exists()  # nothing made


def _refused_in_one_line(root: Path, want: str) -> None:
    """A catalog directory refused, with this line, by the API and by `cvcatalog ingest`."""
    from typer.testing import CliRunner

    from cvcatalog.cli.main import app

    with pytest.raises(CatalogError, match="^" + re.escape(want) + "$"):
        CatalogDB(CatalogPaths.at(root)).initialise()
    r = CliRunner().invoke(
        app,
        ["ingest", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01", "--end",
         "2021-04-01", "--no-progress", "--catalog", str(root)],
    )  # fmt: skip
    assert (r.exit_code, r.stdout, r.stderr) == (1, "", f"error: {want}\n")


@pytest.mark.parametrize("name", ["run*", "day?", "cat[1]"])
def test_a_catalog_path_with_a_glob_character_is_one_line(tmp_path: Path, name: str) -> None:
    """A catalog directory named with * ? or [: its first ingest fetched every day and then
    failed with 'unexpected ValueError: path ... contains a glob character', leaving an empty
    catalog behind. Refused in one line before anything is made."""
    root = tmp_path / name / "catalog"
    want = (
        f"the catalog directory {root} has a glob character (* ? [) in its path, which DuckDB "
        "would expand in its file paths; give it a path without one"
    )
    _refused_in_one_line(root, want)
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("inner", ["lake", "lake/main", "elsewhere/deeper"])
def test_a_catalog_inside_a_catalog_is_refused_in_one_line(tmp_path: Path, inner: str) -> None:
    """`--catalog cat/lake` (a slip of the path) made a new catalog inside the lake of the one
    at cat, whose verify then took its files for orphans. Refused before anything is made;
    the catalog itself still opens."""
    outer = tmp_path / "cat"
    CatalogDB(CatalogPaths.at(outer)).initialise()
    root = outer / inner
    want = (
        f"{root} is inside the catalog {outer}, whose checks would take a catalog's files "
        f"there for its own: give --catalog {outer}, or a folder outside it"
    )
    _refused_in_one_line(root, want)
    assert not (root / "catalog.ducklake").exists() and not (outer / "elsewhere").exists()
    CatalogDB(CatalogPaths.at(outer)).initialise()  # the outer one is a catalog as before


def test_a_read_only_file_system_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """compact on a catalog mounted read-only was 'unexpected OSError: [Errno 30]' (it made its
    lock directory before any check); every writer now says it in one line."""
    from typer.testing import CliRunner

    from cvcatalog.cli.main import app

    CatalogDB(CatalogPaths.at(tmp_path / "cat")).initialise()
    real = Path.mkdir

    def read_only(self: Path, *args: Any, **kwargs: Any) -> None:
        if self.is_dir():  # as mkdir(exist_ok=True) on a read-only mount: EROFS, not EEXIST
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    r = CliRunner().invoke(app, ["compact", "--catalog", str(tmp_path / "cat")])
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr == (
        f"error: the catalog directory {tmp_path / 'cat'} is not writable (read-only file system)\n"
    )


def test_writes_another_session_left_in_the_log_are_kept_and_the_log_absorbed(
    tmp_path: Path,
) -> None:
    """A DuckDB session that wrote to catalog.ducklake and ended without a checkpoint leaves
    catalog.ducklake.wal. The copy-on-write copied the file alone: those writes were lost, and
    the stale log stayed beside the new file, to be replayed onto it by the next open."""
    paths = CatalogPaths.at(tmp_path / "cat")
    CatalogDB(paths).initialise()
    script = (
        "import duckdb, os, sys\n"
        "con = duckdb.connect(sys.argv[1])\n"
        "con.execute(\"SET wal_autocheckpoint = '1TB'\")\n"
        "con.execute('CREATE TABLE zz_note AS SELECT 42 AS x')\n"
        "os._exit(0)\n"  # no checkpoint: the write is in the log only
    )
    subprocess.run([sys.executable, "-c", script, str(paths.db)], check=True)
    wal = paths.db.with_name(paths.db.name + ".wal")
    assert wal.exists()
    with CatalogDB(paths).write(message="a write after it"):
        pass
    assert not wal.exists()
    con = duckdb.connect(str(paths.db), read_only=True)
    try:
        assert con.execute("SELECT x FROM zz_note").fetchall() == [(42,)]
    finally:
        con.close()


def test_a_new_catalog_made_from_the_blank_one_is_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process's second new catalog starts from a copy of its first one's blank file: the
    same tables, views and macros, dated when it was made, its own data path; a requested
    trips gap is applied on top of the copy."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no blank kept there yet
    blanks.forget()  # nor in this process: this test's first catalog is made whole

    def made(root: Path, **kw: Any) -> tuple[CatalogDB, datetime]:
        start = datetime.now(UTC)
        d = CatalogDB(CatalogPaths.at(root), **kw)
        d.initialise()
        return d, start

    def looks(d: CatalogDB) -> dict[str, Any]:
        with d.read() as con:
            return {
                "views": con.execute(
                    "SELECT view_name, sql FROM duckdb_views() WHERE database_name = 'cv' "
                    "ORDER BY 1"
                ).fetchall(),
                "columns": con.execute(
                    "SELECT table_name, column_name, data_type FROM duckdb_columns() "
                    "WHERE database_name = 'cv' ORDER BY 1, 2"
                ).fetchall(),
                "macros": con.execute(
                    "SELECT DISTINCT function_name FROM duckdb_functions() "
                    "WHERE database_name = 'cv' ORDER BY 1"
                ).fetchall(),
                "uuids": con.execute(
                    "SELECT table_uuid FROM ducklake_table ORDER BY table_id"
                ).fetchall(),
            }

    def ids(d: CatalogDB) -> list[Any]:
        with d.read_state() as con:
            return [r[0] for r in con.execute(
                "SELECT schema_uuid FROM ducklake_schema UNION ALL SELECT table_uuid FROM "
                "ducklake_table UNION ALL SELECT view_uuid FROM ducklake_view"
            ).fetchall()]  # fmt: skip

    def dates(d: CatalogDB) -> list[datetime]:
        with d.read_state() as con:
            rows = con.execute(
                "SELECT snapshot_time FROM ducklake_snapshot UNION ALL "
                "SELECT applied_at FROM schema_migrations"
            ).fetchall()
        return [r[0] for r in rows]

    first, _ = made(tmp_path / "a")
    time.sleep(0.05)
    second, start = made(tmp_path / "b")
    one, two = looks(first), looks(second)
    # a copy, with ids of its own (they were the blank's: every new catalog had the same)
    assert len(two.pop("uuids")) == len(one.pop("uuids")) > 0
    assert not set(ids(second)) & set(ids(first))
    assert two == one and len(two["views"]) > 20 and two["macros"]
    assert dates(second) and min(dates(second)) >= start > max(dates(first))
    with first.read_state() as a, second.read_state() as b:
        order = "SELECT snapshot_time FROM ducklake_snapshot ORDER BY snapshot_id"
        was, now = a.execute(order).fetchall(), b.execute(order).fetchall()
    # their order and gaps kept: time travel to the first one's time finds the first one
    assert len(was) == 2 and [t[0] - was[0][0] for t in was] == [t[0] - now[0][0] for t in now]
    with second.read() as con:
        row = con.execute("SELECT value FROM ducklake_metadata WHERE key = 'data_path'").fetchone()
    assert row is not None and row[0].startswith(str(tmp_path / "b"))

    third, _ = made(tmp_path / "c", trip_gap_s=30.0)
    with third.read() as con:
        assert trips.recorded_gap(con) == 30.0 and tables.up_to_date(con)
        assert con.execute("SELECT count(*) FROM cv.main.wydot_bsm").fetchone() == (0,)


_NEW_CATALOG = """
import sys
from pathlib import Path
from cvcatalog.io.layout import CatalogPaths
from cvcatalog.state.db import CatalogDB
from cvcatalog.state import blanks
copied = []
copy_to = blanks.copy_to
blanks.copy_to = lambda *a: copied.append(copy_to(*a)) or copied[-1]
db = CatalogDB(CatalogPaths.at(Path(sys.argv[1])))
db.initialise()
with db.read_state() as con:
    ids = con.execute("SELECT list(table_uuid ORDER BY table_id) FROM ducklake_table").fetchone()[0]
print(copied == [True], ids)
"""


def _new_catalog_elsewhere(root: Path, cache: Path) -> tuple[bool, str]:
    """A new catalog made by a process of its own with this user cache: whether it is a copy
    of the kept blank, and its tables' ids."""
    out = subprocess.run(
        [sys.executable, "-c", _NEW_CATALOG, str(root)],
        env={**os.environ, "XDG_CACHE_HOME": str(cache)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    copied, ids = out.stdout.strip().split(" ", 1)
    return copied == "True", ids


def test_a_new_catalog_in_another_process_starts_from_the_kept_blank(tmp_path: Path) -> None:
    """The first new catalog keeps its blank file in the user cache; a new catalog made by a
    later process is a copy of it, with the same views, its own data path and its own table
    ids. A kept file that is damaged is not used: it is removed, the catalog is made whole,
    and its blank is kept again."""
    cache = tmp_path / "cache"
    copied, first = _new_catalog_elsewhere(tmp_path / "a", cache)
    assert not copied  # no blank yet: made whole
    [kept] = (cache / "cvcatalog" / "blank-catalogs").iterdir()
    copied, second = _new_catalog_elsewhere(tmp_path / "b", cache)
    assert copied and second != first  # a copy, with ids of its own
    d = CatalogDB(CatalogPaths.at(tmp_path / "b"))
    with d.read() as con:
        assert tables.up_to_date(con)
        row = con.execute("SELECT value FROM ducklake_metadata WHERE key = 'data_path'").fetchone()
    assert row is not None and row[0].startswith(str(tmp_path / "b"))

    raw = bytearray(kept.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    kept.write_bytes(bytes(raw))
    copied, fourth = _new_catalog_elsewhere(tmp_path / "d", cache)
    assert not copied and fourth not in (first, second)  # the damaged copy was not used
    [again] = (cache / "cvcatalog" / "blank-catalogs").iterdir()
    assert again == kept and blanks._read(again) is not None  # kept anew, whole


def test_a_blank_is_named_by_what_makes_its_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another DuckDB, migration or table definition names another blank: a stale one is
    never found, and is removed when the current one is kept (with what a killed process
    left on its way in, an hour old)."""
    digest = tables.definitions_digest()
    name = blanks.key(MIGRATIONS, digest)
    assert blanks.key(MIGRATIONS, digest) == name
    assert blanks.key(MIGRATIONS[:-1], digest) != name
    assert blanks.key(MIGRATIONS, digest + "x") != name
    # the code that makes a catalog: a change in it (same version number) names another one
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(blanks, "MAKERS", (*blanks.MAKERS[:-1], "state/blanks.py"))
        assert blanks._key(MIGRATIONS, digest) != name
    assert blanks._key(MIGRATIONS, digest) == name
    # one blank is kept: another version's goes when this one's is kept
    cache = tmp_path / "cache"
    older = cache / "cvcatalog" / "blank-catalogs" / "0123.ducklake"
    older.parent.mkdir(parents=True)
    older.write_bytes(b"an older version's")
    killed = older.with_name(f".{name}.ducklake.123.456.tmp")  # left by a killed keep
    killed.write_bytes(b"half")
    os.utime(killed, (time.time() - 7200, time.time() - 7200))
    running = older.with_name(f".{name}.ducklake.124.457.tmp")  # another process's, now
    running.write_bytes(b"half")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    blanks.forget()  # made whole here, so its blank is kept
    CatalogDB(CatalogPaths.at(tmp_path / "a")).initialise()
    assert sorted(p.name for p in older.parent.iterdir()) == [running.name, f"{name}.ducklake"]


def test_a_user_cache_that_cannot_be_read_keeps_no_blank(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache directory this user may not look into (EACCES: a check of the blank's file
    raised it) or that is a file: new catalogs are made whole, and no line is printed."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    exists = Path.exists

    def denied(self: Path) -> bool:
        if str(self).startswith(str(cache)):
            raise PermissionError(13, "Permission denied", str(self))
        return exists(self)

    with monkeypatch.context() as mp:
        mp.setattr(Path, "exists", denied)
        blanks.forget()
        CatalogDB(CatalogPaths.at(tmp_path / "a")).initialise()
    assert not list(cache.rglob("*.ducklake"))  # nothing kept
    (cache / "cvcatalog").mkdir(parents=True)
    (cache / "cvcatalog" / "blank-catalogs").write_text("not a folder")
    blanks.forget()
    d = CatalogDB(CatalogPaths.at(tmp_path / "b"))
    d.initialise()
    blanks.forget()
    CatalogDB(CatalogPaths.at(tmp_path / "c")).initialise()
    with d.read() as con:
        assert tables.up_to_date(con)


_NO_HOME = """
import pathlib, sys
def no_home(cls=None):
    raise RuntimeError("Could not determine home directory.")
pathlib.Path.home = classmethod(no_home)
from pathlib import Path
from cvcatalog.io.layout import CatalogPaths
from cvcatalog.state.db import CatalogDB
for root in sys.argv[1:]:
    CatalogDB(CatalogPaths.at(Path(root))).initialise()
with CatalogDB(CatalogPaths.at(Path(sys.argv[-1]))).read() as con:
    print(con.execute("SELECT count(*) FROM wydot_bsm").fetchone()[0])
"""


def test_a_user_without_a_home_directory_makes_catalogs(tmp_path: Path) -> None:
    """No HOME and no entry in the password database (Path.home raises; a container run
    under an arbitrary uid): extensions are checked each time and catalogs made whole, with
    no traceback."""
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "XDG_CACHE_HOME")}
    out = subprocess.run(
        [sys.executable, "-c", _NO_HOME, str(tmp_path / "a"), str(tmp_path / "b")],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"
