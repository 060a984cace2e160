"""The DuckLake core: tables and views any DuckDB session sees, snapshots with run ids, time
travel until retention, the one write path, migration of 0.1 catalogs, open shells, and a
tampered published catalog (local S3 endpoint: moto server over HTTP)."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from cvcatalog.catalog import Catalog, RemoteCatalog
from cvcatalog.cli.main import app
from cvcatalog.exceptions import CvCatalogError
from cvcatalog.io import lake
from cvcatalog.io.duckdb_ext import extension_path, load_extension
from cvcatalog.ops import cache as cache_ops
from cvcatalog.sandbox.replica import seed_replica
from cvcatalog.state.tables import specs, view_statements

FIXTURES = Path(__file__).parent / "fixtures"
runner = CliRunner()


def user_session(db: Path) -> duckdb.DuckDBPyConnection:
    """What a DuckDB user types: load the extension, attach the lake read-only."""
    con = duckdb.connect()
    con.execute(f"LOAD '{extension_path('ducklake')}'")
    con.execute(f"ATTACH 'ducklake:{db}' AS cv (READ_ONLY)")
    return con


@pytest.fixture(scope="module")
def seeded(module_s3: Any) -> Any:
    """Two days of a few objects (most hours empty): nearly every test ingests them into a
    catalog of its own, and each object costs a GET and a file to convert."""
    seed_replica(
        module_s3,
        date(2021, 4, 1),
        date(2021, 4, 2),
        sources=["wydot"],
        message_types=["BSM"],
        records_per_hour=4,
        files_per_hour=1,
        empty_hour_rate=0.75,
        malformed_per_day=1,
    )
    return module_s3


def _ingest(cat: Catalog, **kw: Any) -> Any:
    s = cat.ingest("wydot", "BSM", "2021-04-01", "2021-04-02", rate_limit=0, **kw)
    assert s.ok, s.as_dict()
    return s


@pytest.fixture(scope="module")
def ingested(seeded: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """The seeded days ingested once (the catalog, the ingest's summary): a test that needs
    them ingested and is not about the ingest itself, nor about the catalog's directory (moved,
    copied, opened again), works on a copy of its own (_copy)."""
    home = tmp_path_factory.mktemp("ingested") / "catalog"
    return home, _ingest(Catalog(home))


def _copy(ingested: tuple[Path, Any], home: Path) -> tuple[Catalog, Any]:
    """A copy of the module's ingested catalog at `home` (a copy reads and writes its own
    files: test_a_copied_catalog_finds_repairs_and_time_travels_in_its_own_files), and the
    summary of the ingest that made it."""
    shutil.copytree(ingested[0], home)
    return Catalog(home), ingested[1]


def test_plain_duckdb_session_sees_every_table_and_view_by_name(
    ingested: tuple[Path, Any], tmp_path: Path
) -> None:
    cat, summary = _copy(ingested, tmp_path / "catalog")
    con = user_session(cat.paths.db)
    names = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'cv'"
        ).fetchall()
    }
    names |= {
        r[0]
        for r in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE database_name = 'cv'"
        ).fetchall()
    }
    assert set(specs()) | set(view_statements()) <= names
    n = con.execute("SELECT count(*) FROM cv.wydot_bsm").fetchone()
    assert n is not None and n[0] == summary.rows > 0
    per_day = con.execute(
        "SELECT date, count(*) FROM cv.wydot_bsm GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert [d for d, _ in per_day] == [date(2021, 4, 1), date(2021, 4, 2)]
    assert con.execute("SELECT count(*) FROM cv.bsm").fetchone() == (summary.rows,)
    socrata = con.execute(
        'SELECT count(*), min("coreData_id") FROM cv.wydot_bsm_socrata'
    ).fetchone()
    assert socrata is not None and socrata[0] == summary.rows and socrata[1]
    # the same answer as cvcatalog's own query
    assert cat.query("select count(*) as n from wydot_bsm")["n"][0] == summary.rows
    # a date filter opens only that day's files (partition pruning in the lake)
    plan = con.execute(
        "EXPLAIN ANALYZE SELECT count(*) FROM cv.wydot_bsm WHERE date = DATE '2021-04-02'"
    ).fetchall()[0][1]
    assert "day=1/" not in plan and "day=2/" in plan
    # every commit is a snapshot carrying its run id (the two days: one group commit, or two)
    rows = con.execute(
        "SELECT commit_message, commit_extra_info FROM cv.snapshots() "
        "WHERE commit_message LIKE 'ingest %'"
    ).fetchall()
    assert {m for m, _ in rows} in (
        {"ingest 2 units: wydot/BSM/2021/04/01.."},
        {"ingest wydot/BSM/2021/04/01", "ingest wydot/BSM/2021/04/02"},
    )
    assert {json.loads(extra)["run_id"] for _, extra in rows} == {summary.run_id}


def test_replaced_data_stays_readable_until_retention_then_goes(
    ingested: tuple[Path, Any], tmp_path: Path
) -> None:
    cat, _ = _copy(ingested, tmp_path / "catalog")
    con = user_session(cat.paths.db)
    before = con.execute("SELECT max(snapshot_id) FROM cv.snapshots()").fetchone()
    old_files = set(lake.files(_state(cat), "wydot_bsm"))
    con.close()
    second = _ingest(cat, force_refresh=True)  # default retention: 7 days
    new_files = set(lake.files(_state(cat), "wydot_bsm"))
    assert old_files and new_files and not (old_files & new_files)
    assert all(Path(p).exists() for p in old_files)  # kept for time travel
    con = user_session(cat.paths.db)
    assert before is not None
    then = con.execute(
        f"SELECT count(*) FROM cv.wydot_bsm AT (VERSION => {int(before[0])})"
    ).fetchone()
    now = con.execute("SELECT count(*) FROM cv.wydot_bsm").fetchone()
    assert then == now == (second.rows,)
    con.close()
    assert cat.verify().orphans == []  # files of kept snapshots are not orphans

    def checksummed() -> set[Path]:
        with cat.db.read_state() as con:
            rows = con.execute("SELECT path FROM file_checksums").fetchall()
        return {cat.paths.root / r[0] for r in rows}

    assert {Path(p) for p in old_files | new_files} <= checksummed()  # the old ones kept too
    removed = cat.db.expire_snapshots(datetime.now(UTC) + timedelta(seconds=1))
    assert {Path(p) for p in removed} == {Path(p) for p in old_files}
    assert not any(Path(p).exists() for p in old_files)
    assert cat.query("select count(*) as n from wydot_bsm")["n"][0] == second.rows
    assert checksummed() == {Path(p) for p in new_files}  # forgotten with their files


def _state(cat: Catalog) -> duckdb.DuckDBPyConnection:
    return cat.db.connect()


def test_cache_clear_empties_the_tables_and_deletes_the_files(
    ingested: tuple[Path, Any], tmp_path: Path
) -> None:
    cat, _ = _copy(ingested, tmp_path / "catalog")
    files = lake.files(_state(cat), "wydot_bsm")
    assert files
    cat.clear("wydot", "BSM")
    assert cat.query("select count(*) as n from wydot_bsm")["n"][0] == 0
    assert not any(Path(p).exists() for p in files)
    assert lake.files(_state(cat), "wydot_bsm") == []
    # no folder left empty by the files' deletion (a DuckLake cleanup deletes only files)
    tops = (cat.paths.lake, cat.paths.quarantine)
    emptied = [d for t in tops for d in t.rglob("*") if d.is_dir() and not any(d.iterdir())]
    assert emptied == []


def test_an_open_read_only_session_never_blocks_an_ingest(seeded: Any, tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "catalog")
    cat.db.initialise()
    code = textwrap.dedent(
        f"""
        import duckdb, sys, time
        con = duckdb.connect()
        con.execute("LOAD '{extension_path("ducklake")}'")
        con.execute("ATTACH 'ducklake:{cat.paths.db}' AS cv (READ_ONLY)")
        print(con.execute("SELECT count(*) FROM cv.wydot_bsm").fetchone()[0], flush=True)
        sys.stdin.readline()
        print(con.execute("SELECT count(*) FROM cv.wydot_bsm").fetchone()[0], flush=True)
        """
    )
    shell = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert shell.stdout is not None and shell.stdin is not None
        assert shell.stdout.readline().strip() == "0"
        t0 = time.monotonic()
        summary = _ingest(cat)
        assert time.monotonic() - t0 < 60
        shell.stdin.write("\n")
        shell.stdin.flush()
        # the open session keeps its snapshot: never half a commit
        assert shell.stdout.readline().strip() == "0"
    finally:
        shell.kill()
        shell.wait()
    con = user_session(cat.paths.db)  # attaching again shows the new data
    assert con.execute("SELECT count(*) FROM cv.wydot_bsm").fetchone() == (summary.rows,)


def test_sql_session_prints_what_a_plain_duckdb_session_needs_offline(
    ingested: tuple[Path, Any], tmp_path: Path
) -> None:
    """`cvcatalog sql session`: the extensions from their packages (a plain `LOAD ducklake`
    would download it), then the lake read-only as cv, in a session with default settings."""
    cat, summary = _copy(ingested, tmp_path / "catalog")
    result = runner.invoke(app, ["sql", "session", "--catalog", str(cat.paths.root)])
    assert result.exit_code == 0, result.output
    assert "LOAD ducklake" not in result.stdout and "SECRET" not in result.stdout.upper()
    code = (
        "import duckdb, sys; con = duckdb.connect(); con.execute(sys.stdin.read()); "
        "print(con.execute('SELECT count(*) FROM wydot_bsm_socrata').fetchone()[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=result.stdout, capture_output=True, text=True,
        check=True, timeout=120,
    )  # fmt: skip
    assert out.stdout.strip() == str(summary.rows)
    missing = runner.invoke(app, ["sql", "session", "--catalog", str(tmp_path / "none")])
    assert missing.exit_code == 1 and "no catalog" in missing.output


def test_the_documented_attach_again_shows_later_commits_in_a_shell_session(
    seeded: Any, tmp_path: Path
) -> None:
    """A `cvcatalog shell` (or `sql session`) keeps the snapshot of its ATTACH; the statements
    docs/architecture.md gives to attach again must work there. `DETACH cv;` alone, as it said,
    fails in such a session (cv is the default database), and `ATTACH OR REPLACE` keeps the
    old snapshot."""
    cat = Catalog(tmp_path / "catalog")
    first = cat.ingest("wydot", "BSM", "2021-04-01", "2021-04-01", rate_limit=0).rows
    con = duckdb.connect()
    con.execute(cat.shell_sql())
    second = cat.ingest("wydot", "BSM", "2021-04-02", "2021-04-02", rate_limit=0).rows
    assert first and second
    assert con.execute("SELECT count(*) FROM wydot_bsm").fetchone() == (first,)  # its snapshot
    text = " ".join((Path(__file__).parents[1] / "docs" / "architecture.md").read_text().split())
    found = re.search(r"To attach again in `cvcatalog shell`.*?: `([^`]+)`", text)
    assert found, "docs/architecture.md no longer says how to attach again"
    con.execute(found.group(1).replace("data/catalog/catalog.ducklake", str(cat.paths.db)))
    assert con.execute("SELECT count(*) FROM wydot_bsm").fetchone() == (first + second,)


def test_a_0_1_catalog_migrates_in_place_without_downloading(tmp_path: Path) -> None:
    with tarfile.open(FIXTURES / "legacy" / "v0.1-catalog.tar.xz") as tar:
        tar.extractall(tmp_path, filter="data")
    root = tmp_path / "catalog"
    expected = json.loads((FIXTURES / "legacy" / "expected.json").read_text())
    old_files = sorted((root / "lake").rglob("*.parquet"))
    assert old_files and (root / "catalog.duckdb").exists()
    # no S3 endpoint at all: nothing can be downloaded
    result = runner.invoke(app, ["migrate", "--catalog", str(root)])
    assert result.exit_code == 0, result.output
    assert "migrated" in result.output
    assert not (root / "catalog.duckdb").exists() and (root / "catalog.ducklake").exists()
    assert not any(p.exists() for p in old_files)
    cat = Catalog(root)
    for row in expected:
        table, n, s = row["t"], row["n"], row["s"]
        if table == "nycdot_event":
            got = cat.query(
                f"select count(*) as n, count(distinct event_id)::DOUBLE as s from {table}"
            )
        elif table.endswith("_socrata"):
            got = cat.query(
                f'select count(*) as n, round(sum("coreData_speed"), 6) as s from {table}'
            )
        else:
            got = cat.query(f"select count(*) as n, round(sum(speed_mps), 6) as s from {table}")
        assert (int(got["n"][0]), float(got["s"][0])) == (n, s), table
    assert cat.verify().clean
    con = user_session(root / "catalog.ducklake")
    assert con.execute("SELECT count(*) FROM cv.ngsim_trajectories").fetchone() == (
        next(r["n"] for r in expected if r["t"] == "ngsim_trajectories"),
    )
    again = runner.invoke(app, ["migrate", "--catalog", str(root)])
    assert again.exit_code == 0 and "already" in again.output


def test_any_command_or_the_api_migrates_a_0_1_catalog_on_first_open(tmp_path: Path) -> None:
    with tarfile.open(FIXTURES / "legacy" / "v0.1-catalog.tar.xz") as tar:
        tar.extractall(tmp_path, filter="data")
    root = tmp_path / "catalog"
    result = runner.invoke(app, ["views", "--catalog", str(root)])  # a read
    assert result.exit_code == 0, result.output
    assert "migrating catalog.duckdb to catalog.ducklake" in result.output
    assert not (root / "catalog.duckdb").exists() and (root / "catalog.ducklake").exists()


def test_migrate_of_a_current_catalog_writes_nothing_and_needs_no_write_access(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second `cvcatalog migrate` rewrote the catalog file all the same (a copy-on-write
    commit of nothing), and on a catalog its user could only read it failed with "the catalog
    directory ... is not writable" instead of saying there was nothing to do."""
    with tarfile.open(FIXTURES / "legacy" / "v0.1-catalog.tar.xz") as tar:
        tar.extractall(tmp_path, filter="data")
    root = tmp_path / "catalog"
    assert runner.invoke(app, ["migrate", "--catalog", str(root)]).exit_code == 0
    before = (root / "catalog.ducklake").stat()
    real = os.access

    def access(path: Any, mode: int, **kw: Any) -> bool:  # as for a user who cannot write it
        return False if Path(path) == root and mode & os.W_OK else real(path, mode, **kw)

    monkeypatch.setattr(os, "access", access)
    again = runner.invoke(app, ["migrate", "--catalog", str(root)])
    assert (again.exit_code, again.output) == (0, f"{root} is already a DuckLake catalog\n")
    after = (root / "catalog.ducklake").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert Catalog(root).migrate() is False


@pytest.mark.parametrize("command", [["migrate"], ["query", "select 1"], ["shell"]])
def test_a_0_1_catalog_its_user_cannot_write_is_one_line_naming_the_migration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """A 0.1 catalog is converted on its first open, which writes the directory. A user who
    could not write it (a shared catalog, a read-only mount) was told "permission denied
    creating the catalog at .../staging" by a query; now what to do, and nothing is made."""
    with tarfile.open(FIXTURES / "legacy" / "v0.1-catalog.tar.xz") as tar:
        tar.extractall(tmp_path, filter="data")
    root = tmp_path / "catalog"
    before = sorted(p.name for p in root.iterdir())
    real = os.access

    def access(path: Any, mode: int, **kw: Any) -> bool:  # as for a user who cannot write it
        return False if Path(path) == root and mode & os.W_OK else real(path, mode, **kw)

    monkeypatch.setattr(os, "access", access)
    result = runner.invoke(app, [*command, "--catalog", str(root)])
    assert result.exit_code == 1
    assert result.output == (
        f"error: {root} holds a catalog written by cvcatalog 0.1 (catalog.duckdb), which is "
        f"converted to DuckLake on its first open, and {root} is not writable here: run "
        f"`cvcatalog migrate --catalog {root}` as a user who can write it\n"
    )
    assert sorted(p.name for p in root.iterdir()) == before


@pytest.mark.parametrize(
    "command",
    [["migrate"], ["query", "select 1"], ["cache", "status"], ["views"], ["sql", "session"],
     ["ingest", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01"]],
)  # fmt: skip
def test_a_catalog_duckdb_that_is_not_a_catalog_is_one_line_and_nothing_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # never reached
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "catalog.duckdb").write_text("hello\n")
    result = runner.invoke(app, [*command, "--catalog", str(junk)])
    assert result.exit_code == 1
    assert result.output == (
        f"error: {junk / 'catalog.duckdb'} is not a cvcatalog catalog: not a DuckDB database file\n"
    )
    assert sorted(p.name for p in junk.iterdir()) == ["catalog.duckdb"]


def test_someone_elses_duckdb_database_is_refused_and_kept(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    con = duckdb.connect(str(other / "catalog.duckdb"))
    con.execute("CREATE TABLE mine AS SELECT 42 AS answer")
    con.close()
    with pytest.raises(CvCatalogError, match="is not a cvcatalog catalog: a DuckDB database"):
        Catalog(other).query("select 1")
    result = runner.invoke(app, ["migrate", "--catalog", str(other)])
    assert result.exit_code == 1 and len(result.output.splitlines()) == 1
    assert "without cvcatalog's tables (schema_migrations, partitions)" in result.output
    assert sorted(p.name for p in other.iterdir()) == ["catalog.duckdb"]  # not migrated away
    con = duckdb.connect(str(other / "catalog.duckdb"), read_only=True)
    assert con.execute("SELECT answer FROM mine").fetchone() == (42,)
    con.close()


def _published_copy(
    seeded: Any, ingested: tuple[Path, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, str, Path]:
    """A catalog of the seeded days published to s3://tamper/cv (a reader's cache of its
    own), and a local copy of its database for a test to tamper with and upload again: the
    ingest's summary, the URL and the copy."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    seeded.create_bucket(Bucket="tamper")
    cat, summary = _copy(ingested, tmp_path / "catalog")
    url = "s3://tamper/cv"
    assert cat.publish(url).ok
    evil = tmp_path / "evil.ducklake"
    seeded.download_file("tamper", "cv/catalog.ducklake", str(evil))
    return summary, url, evil


def test_a_tampered_published_catalog_cannot_read_local_files(
    seeded: Any, ingested: tuple[Path, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT\n")
    summary, url, evil = _published_copy(seeded, ingested, tmp_path, monkeypatch)
    # the attacker rewrites a stored view to read a local file, and re-uploads the catalog
    con = duckdb.connect()
    load_extension(con, "httpfs")  # its data path is on S3
    load_extension(con, "ducklake")
    con.execute(f"ATTACH 'ducklake:{evil}' AS cv")
    con.execute(
        f"CREATE OR REPLACE VIEW cv.wydot_bsm_socrata AS "
        f"SELECT content AS \"coreData_id\" FROM read_text('{secret}')"
    )
    con.close()
    seeded.upload_file(str(evil), "tamper", "cv/catalog.ducklake")
    remote = Catalog(url)
    assert isinstance(remote, RemoteCatalog)
    # the reader's own view definition is used
    got = remote.query('select count(*) as n, min("coreData_id") as v from wydot_bsm_socrata')
    assert int(got["n"][0]) == summary.rows and "SECRET" not in str(got["v"][0])
    # and the stored SQL, named explicitly, cannot touch the file
    result = runner.invoke(app, ["query", "--catalog", url, "select * from cv.wydot_bsm_socrata"])
    assert "TOP-SECRET" not in result.output
    assert result.exit_code == 1 and "error" in result.output.lower()


#: Tables of a published catalog file turned into views that read a local file: one DuckLake
#: reads while it attaches (a row of ducklake_view whose SQL carries the file), one cvcatalog
#: reads while it opens the session (catalog_settings)
_TAMPERED_TABLES = {
    "ducklake_view": (
        "ALTER TABLE ducklake_view RENAME TO ducklake_view_kept",
        "CREATE VIEW ducklake_view AS SELECT * FROM ducklake_view_kept UNION ALL "
        "SELECT (SELECT max(view_id) + 1 FROM ducklake_view_kept), uuid(), 0, NULL, 0, "
        "'leak', 'duckdb', (SELECT 'SELECT ''' || trim(content) || ''' AS leaked' "
        "FROM read_text('{secret}')), NULL",
    ),
    "catalog_settings": (
        "DROP TABLE catalog_settings",
        "CREATE VIEW catalog_settings AS SELECT 'trips.max_gap_s' AS key, "
        "(SELECT content FROM read_text('{secret}')) AS value",
    ),
}


@pytest.mark.parametrize("table", sorted(_TAMPERED_TABLES))
def test_a_published_catalog_whose_tables_are_views_reads_no_local_file(
    seeded: Any,
    ingested: tuple[Path, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    table: str,
) -> None:
    """The reader shuts external access off before it reads a byte of the published file,
    so SQL stored anywhere in it (not only in its views) reaches only the catalog's data."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT\n")
    _, url, evil = _published_copy(seeded, ingested, tmp_path, monkeypatch)
    con = duckdb.connect(str(evil))
    for sql in _TAMPERED_TABLES[table]:
        con.execute(sql.format(secret=secret))
    con.close()
    seeded.upload_file(str(evil), "tamper", "cv/catalog.ducklake")
    for sql in ("select * from leak", "select count(*) from wydot_bsm"):
        result = runner.invoke(app, ["query", "--catalog", url, sql])
        assert "TOP-SECRET" not in result.output, sql
        assert result.exit_code == 1, result.output
        *notes, error = result.output.strip().splitlines()
        assert all(n.startswith("note: ") for n in notes)  # fetching the catalog's database
        # a lake metadata table turned into a view is refused before it is read; any other
        # stored SQL runs with external access off
        assert (
            error.startswith("error: cannot open the published catalog")
            and "disabled by configuration" in error
        ) or error == (
            f"error: refusing to read the published catalog {url}: its lake metadata {table} "
            "is a view (its publisher's file was changed; publish it again)"
        )
    with pytest.raises(CvCatalogError) as e:
        Catalog(url).query("select count(*) from wydot_bsm")
    assert "TOP-SECRET" not in str(e.value)


def test_a_moved_catalog_directory_still_reads_and_writes(seeded: Any, tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "a" / "catalog")
    summary = _ingest(cat)
    moved = tmp_path / "b" / "catalog"
    moved.parent.mkdir()
    cat.paths.root.rename(moved)
    again = Catalog(moved)
    assert (
        again.query("select sum(speed_mps) is not null as ok, count(*) as n from wydot_bsm")["n"][0]
        == summary.rows
    )
    again.db.initialise()  # a write records the lake's new place for plain sessions too
    con = user_session(again.paths.db)
    assert con.execute(
        "SELECT count(*), max(speed_mps) IS NOT NULL FROM cv.wydot_bsm"
    ).fetchone() == (
        summary.rows,
        True,
    )


def test_a_copied_catalog_finds_repairs_and_time_travels_in_its_own_files(
    seeded: Any, tmp_path: Path
) -> None:
    """A copied (or moved) catalog read before any write reads its files under the new
    directory, but cvcatalog resolved them against the recorded (old) data path: verify called
    the file only an older snapshot shows an orphan (--repair deleted it), repair could not
    find a damaged file (unexpected IOException), and time travel read the old directory."""
    cat = Catalog(tmp_path / "a" / "catalog")
    _ingest(cat)
    older = cat.snapshots(limit=1)[0]["snapshot_id"]
    rows_then = cat.query("select count(*) as n from wydot_bsm")["n"][0]
    _ingest(cat, force_refresh=True)  # new files; the older snapshot keeps the old ones
    rows_now = cat.query("select count(*) as n from wydot_bsm")["n"][0]
    copy = tmp_path / "b" / "catalog"
    shutil.copytree(cat.paths.root, copy)
    cat.paths.root.rename(tmp_path / "a" / "gone")  # nothing may be read there any more
    moved = Catalog(copy)
    report = moved.verify()
    assert report.clean, report
    frame = moved.to_dask("wydot", "BSM", "2021-04-01", "2021-04-02", snapshot=older)
    assert len(frame) == rows_then
    # a damaged file of the copy is found, taken out of the views and fetched again
    shown = moved.query("select path from partition_files where path like '%.parquet'").path
    victim = copy / sorted(shown)[0]
    victim.write_bytes(b"not parquet")
    report = moved.verify()
    assert not report.clean
    moved.repair(report)
    assert moved.verify().clean
    assert moved.query("select count(*) as n from wydot_bsm")["n"][0] == rows_now


def test_a_second_process_finds_nothing_to_create_or_evolve(seeded: Any, tmp_path: Path) -> None:
    """The tables and views are ensured idempotently: a spurious rebuild would re-register
    files under names an expiring snapshot still owns."""
    cat = Catalog(tmp_path / "catalog")
    _ingest(cat)
    with cat.db.read() as con:
        before = con.execute("SELECT max(snapshot_id) FROM ducklake_snapshot").fetchone()
    Catalog(cat.paths.root).db.initialise()  # a new instance ensures tables and views again
    with Catalog(cat.paths.root).db.read() as con:
        after = con.execute("SELECT max(snapshot_id) FROM ducklake_snapshot").fetchone()
    assert before == after


def test_a_commits_files_are_registered_by_one_glob_only_when_it_matches_exactly_them(
    tmp_path: Path,
) -> None:
    """lake.registration_globs: one glob for a month's files of a commit (DuckLake spends a
    metadata query on each path or glob), the paths whenever the glob would match anything
    else, and s3:// URLs as they are."""
    con = duckdb.connect()

    def put(day: int, name: str) -> str:
        d = tmp_path / "year=2021" / "month=4" / f"day={day}" / f"date=2021-04-{day:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(b"x")
        return str(d / name)

    ours = [put(day, "part-20210401T000000-abcd1234-000.parquet") for day in (1, 2, 3)]
    month = tmp_path / "year=2021" / "month=4"
    assert lake.registration_globs(con, ours) == [
        f"{month}/*/*/part-20210401T000000-abcd1234-*.parquet"
    ]
    found = con.execute("SELECT file FROM glob(?)", lake.registration_globs(con, ours)).fetchall()
    assert sorted(f for (f,) in found) == sorted(ours)
    # an earlier commit of the same run left a file of that name in the month: paths
    put(4, "part-20210401T000000-abcd1234-000.parquet")
    assert lake.registration_globs(con, ours) == ours
    # one file, other names, URLs: as they are
    assert lake.registration_globs(con, ours[:1]) == ours[:1]
    other = put(5, "r1234abcd-part-20210401T000000-abcd1234-000.parquet")
    urls = ["s3://b/lake/main/t/year=2021/month=4/day=1/date=x/part-a-000.parquet"] * 2
    assert sorted(lake.registration_globs(con, [other, *urls])) == sorted([other, *urls])


def _stats_rows(cat: Catalog) -> list[tuple[Any, ...]]:
    """Every row of DuckLake's per-file column statistics, in the order they are stored."""
    with cat.db.read_state() as con:
        return con.execute("SELECT * FROM ducklake_file_column_stats ORDER BY rowid").fetchall()


def _stats_keys(rows: list[tuple[Any, ...]]) -> list[tuple[int, int, int]]:
    return [(r[1], r[2], r[0]) for r in rows]  # (table_id, column_id, data_file_id)


def test_the_lakes_file_statistics_are_put_in_order_and_unchanged(
    seeded: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckLake appends each file's statistics (a row a column) as files are added, and a
    filtered query reads one column's rows of every file: in (table, column, file) order the
    read decompresses a few vectors instead of all. The rows stay the same rows."""
    monkeypatch.setattr(lake, "STATS_TAIL_ROWS", 10**9)  # the runs leave them as appended
    cat = Catalog(tmp_path / "catalog")
    _ingest(cat)
    before = _stats_rows(cat)
    keys = _stats_keys(before)
    assert len({k[2] for k in keys}) >= 2 and keys != sorted(keys)  # two files, interleaved
    sql = "SELECT count(*), min(generated_at) FROM wydot_bsm WHERE date = DATE '2021-04-02'"
    con = user_session(cat.paths.db)
    expected = con.execute(sql.replace("wydot_bsm", "cv.wydot_bsm")).fetchall()
    con.close()
    assert not cat.db.order_stats()  # a tail under the threshold is left
    monkeypatch.setattr(lake, "STATS_TAIL_ROWS", 0)
    assert cat.db.order_stats()
    after = _stats_rows(cat)
    assert sorted(after, key=repr) == sorted(before, key=repr)
    assert _stats_keys(after) == sorted(keys)
    con = user_session(cat.paths.db)
    assert con.execute(sql.replace("wydot_bsm", "cv.wydot_bsm")).fetchall() == expected
    con.close()
    assert not cat.db.order_stats()  # nothing appended since


def test_a_run_that_appended_many_statistics_puts_them_in_order(
    seeded: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lake, "STATS_TAIL_ROWS", 0)
    cat = Catalog(tmp_path / "catalog")
    _ingest(cat)
    keys = _stats_keys(_stats_rows(cat))
    assert len({k[2] for k in keys}) >= 2 and keys == sorted(keys)
    assert cat.query("SELECT count(*) AS n FROM wydot_bsm")["n"][0] > 0


def _table_stats(
    cat: Catalog,
) -> tuple[dict[str, tuple[Any, ...]], dict[tuple[str, str], tuple[Any, ...]]]:
    """DuckLake's statistics of the current tables: (rows, next row id, bytes) by table, and
    (contains NULL, contains NaN, min, max) by (table, column's name, column id: the names of
    nested fields repeat)."""
    with cat.db.read_state() as con:
        tables = con.execute(
            "SELECT t.table_name, s.record_count, s.next_row_id, s.file_size_bytes "
            "FROM ducklake_table_stats s JOIN ducklake_table t ON t.table_id = s.table_id "
            "AND t.end_snapshot IS NULL"
        ).fetchall()
        columns = con.execute(
            "SELECT t.table_name, c.column_name, c.column_id, s.contains_null, s.contains_nan, "
            "s.min_value, s.max_value FROM ducklake_table_column_stats s JOIN ducklake_table t "
            "ON t.table_id = s.table_id AND t.end_snapshot IS NULL JOIN ducklake_column c "
            "ON c.table_id = s.table_id AND c.column_id = s.column_id AND c.end_snapshot IS NULL"
        ).fetchall()
    assert len({t for t, *_ in tables}) == len(tables)  # one row a table
    assert len({(t, i) for t, _, i, *_ in columns}) == len(columns)  # one row a column
    return {t: tuple(v) for t, *v in tables}, {(t, c, i): tuple(v) for t, c, i, *v in columns}


def test_every_table_starts_with_statistics_that_its_files_update_as_duckdb_would(
    seeded: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckLake 1.5.5 asks the metadata database again, for each column read, whenever it
    plans a query of a table without statistics (an empty one): a catalog's tables start with
    the statistics of no rows (lake.seed_stats). A catalog made before gets them with its next
    write, and the files an ingest adds leave the statistics an unseeded table would have."""
    cat = Catalog(tmp_path / "catalog")
    cat.db.ensure_schema()
    tables, columns = _table_stats(cat)
    assert set(tables) == set(specs()) and set(tables.values()) == {(0, 0, 0)}
    named = {(t, c): v for (t, c, _), v in columns.items()}
    assert named[("wydot_bsm", "latitude")] == (False, False, None, None)  # a float: no NaN
    assert named[("wydot_bsm", "vehicle_id")] == (False, None, None, None)
    assert ("wydot_bsm", "source") not in named  # a constant: no file holds it, nor stats
    # the same ingest into a catalog whose tables have no statistics, as DuckLake leaves them
    old = Catalog(tmp_path / "old")
    with monkeypatch.context() as m:
        m.setattr(lake, "seed_stats", lambda con: 0)
        m.setattr(lake, "unseeded_tables", lambda con: 0)
        old.db.ensure_schema()
        with old.db.write(state_only=True) as con:
            con.execute("DELETE FROM ducklake_table_column_stats")
            con.execute("DELETE FROM ducklake_table_stats")
        _ingest(old)
    _ingest(cat)
    old_tables, old_columns = _table_stats(old)
    tables, columns = _table_stats(cat)
    assert set(old_tables) == {"wydot_bsm"}
    assert tables["wydot_bsm"] == old_tables["wydot_bsm"] and tables["wydot_bsm"][0] > 0
    bsm = {k: v for k, v in columns.items() if k[0] == "wydot_bsm"}
    assert bsm == old_columns and any(v[2] is not None for v in bsm.values())
    # the older catalog: `migrate` leaves it as it is (it needs no write: a catalog its user
    # cannot write is no error); its empty tables get their statistics with the next write
    assert not Catalog(tmp_path / "old").migrate()
    assert set(_table_stats(old)[0]) == {"wydot_bsm"}
    Catalog(tmp_path / "old").db.ensure_schema()
    again, again_columns = _table_stats(old)
    assert set(again) == set(specs()) and again["wydot_bsm"] == old_tables["wydot_bsm"]
    assert {k: v for k, v in again_columns.items() if k[0] == "wydot_bsm"} == old_columns
    assert cat.query("SELECT count(*) AS n FROM bsm")["n"][0] == tables["wydot_bsm"][0]


def test_a_frame_whose_file_is_missing_names_the_mend(
    ingested: tuple[Path, Any], tmp_path: Path
) -> None:
    """to_dask over a partition whose Parquet file was deleted raised pyarrow's
    FileNotFoundError (the CLI's "unexpected"): a CatalogError naming the file and the mend."""
    cat, _ = _copy(ingested, tmp_path / "catalog")
    for f in (tmp_path / "catalog" / "lake").rglob("*.parquet"):
        f.unlink()
    with pytest.raises(CvCatalogError, match=r"is missing from the lake \(a `cache clear` or "):
        cat.to_dask("wydot", "BSM", "2021-04-01", "2021-04-02")


def test_a_frame_computed_over_a_damaged_or_missing_file_names_the_mend(
    ingested: tuple[Path, Any], tmp_path: Path
) -> None:
    """A frame's later partitions are read when it is computed: a truncated file there raised
    pyarrow's ArrowInvalid, a deleted one its FileNotFoundError. Both are a CatalogError now,
    saying what a query says (NGSIM's frames are built the same way)."""
    cat, _ = _copy(ingested, tmp_path / "catalog")
    day2 = sorted((tmp_path / "catalog/lake/main/wydot_bsm").rglob("date=2021-04-02/*.parquet"))
    day2[0].write_bytes(day2[0].read_bytes()[:100])
    frame = cat.to_dask("wydot", "BSM", "2021-04-01", "2021-04-02")  # day 1 gives the meta
    with pytest.raises(CvCatalogError, match=r"is missing or damaged, or a `cache clear` or "):
        len(frame)
    day2[0].unlink()
    with pytest.raises(CvCatalogError, match=r"is missing from the lake \(a `cache clear` or "):
        len(cat.to_dask("wydot", "BSM", "2021-04-01", "2021-04-02"))


def test_a_frame_computed_after_a_clear_says_what_likely_happened(
    ingested: tuple[Path, Any], tmp_path: Path
) -> None:
    """A lazy frame is often computed long after it was made: its files evicted or cleared
    meanwhile are not damage for `cache verify --repair` to mend."""
    cat, _ = _copy(ingested, tmp_path / "catalog")
    later = cat.to_dask("wydot", "BSM", "2021-04-01", "2021-04-02")
    cat.clear("wydot", "BSM")
    with pytest.raises(CvCatalogError, match=r"`cache evict` may have removed it meanwhile"):
        len(later)
    assert cat.verify().clean


def test_a_repair_says_which_orphans_it_deleted(
    ingested: tuple[Path, Any], tmp_path: Path
) -> None:
    """`cache verify --repair` deleted the orphan files it listed without a word (a repair of
    nothing but orphans printed nothing after the listing); each deletion is a line now."""
    cat, _ = _copy(ingested, tmp_path / "catalog")
    stray = tmp_path / "catalog/lake/main/wydot_bsm/year=2021/month=4/day=1/date=2021-04-01/x.parquet"
    stray.write_bytes(b"x")
    report = cat.verify()
    assert report.orphans == [stray.relative_to(tmp_path / "catalog").as_posix()]
    done = cat.repair(report)
    assert [r.line for r in done] == [
        f"deleted {report.orphans[0]} (an orphan: no table lists it)"
    ]
    assert not stray.exists() and cat.verify().clean


def _kept_only(cat: Catalog) -> list[Path]:
    """The data files only older snapshots show (a --force-refresh kept the earlier ones)."""
    with cat.db.read() as con:
        return sorted(Path(f.location) for f in lake.data_files(con) if not f.current)


def test_verify_checks_the_files_only_older_snapshots_show_and_repair_restores_them(
    ingested: tuple[Path, Any], tmp_path: Path
) -> None:
    """A damaged file kept for time travel went unseen: verify hashed only the current files.
    Now every file a kept snapshot shows is checked against its recorded SHA-256, and the
    repair restores one from a good file with the same bytes (a day converted again)."""
    cat, _ = _copy(ingested, tmp_path / "catalog")
    older = cat.snapshots(limit=1)[0]["snapshot_id"]
    rows_then = cat.query("select count(*) as n from wydot_bsm")["n"][0]
    _ingest(cat, force_refresh=True)  # the same bytes again, under new names
    truncated, gone = _kept_only(cat)
    with open(truncated, "r+b") as f:
        f.truncate(100)
    gone.unlink()
    rel_truncated, rel_gone = cat.paths.relative(truncated), cat.paths.relative(gone)
    home = str(cat.paths.root)
    r = runner.invoke(app, ["cache", "verify", "--catalog", home, "--format", "csv"])
    assert r.exit_code == 1, r.output
    span = f"snapshot {older} shows"  # the kept ones only ("2..4" named two expired ones)
    assert f"checksum mismatch (only older {span} it),{rel_truncated}" in r.output
    assert f"missing file (only older {span} it),{rel_gone}" in r.output
    assert "6 files checked: 4 ok, 1 mismatched, 1 missing" in r.output  # 2 quarantine files
    report = cat.verify()
    assert report.bad_partitions == [] and set(report.kept_only) == {rel_truncated, rel_gone}

    r = runner.invoke(app, ["cache", "verify", "--repair", "--catalog", home])
    assert r.exit_code == 0, r.output
    assert f"restored {rel_truncated} from " in r.output and f"restored {rel_gone} from " in r.output
    assert "re-fetched" not in r.output  # the current data was whole
    assert cat.verify().clean
    con = user_session(cat.paths.db)
    then = con.execute(f"SELECT count(*) FROM cv.wydot_bsm AT (VERSION => {older})").fetchone()
    con.close()
    assert then == (rows_then,)


def test_a_kept_file_nothing_can_stand_in_for_is_reported_and_kept(
    ingested: tuple[Path, Any], tmp_path: Path
) -> None:
    """A file only older snapshots show, with no recorded SHA-256 (replaced before this release
    recorded them): checked by the size the lake recorded, and the repair says in one line why
    it cannot mend it, deletes nothing and exits 1."""
    cat, _ = _copy(ingested, tmp_path / "catalog")
    _ingest(cat, force_refresh=True)
    victim = _kept_only(cat)[0]
    rel = cat.paths.relative(victim)
    with cat.db.write(message="test: an earlier release's catalog") as con:
        con.execute("DELETE FROM file_checksums WHERE path = ?", [rel])
    with open(victim, "r+b") as f:
        f.truncate(100)
    report = cat.verify()
    assert report.mismatched == [rel] and rel in report.by_size and rel in report.kept_only
    r = runner.invoke(app, ["cache", "verify", "--repair", "--catalog", str(cat.paths.root)])
    assert r.exit_code == 1, r.output
    [line] = [x for x in r.output.splitlines() if x.startswith("cannot mend")]
    assert line.startswith(f"cannot mend {rel}: only older snapshot")
    assert "no SHA-256 was recorded for it" in line and "Traceback" not in r.output
    assert victim.stat().st_size == 100  # kept as it is
    assert cat.verify().mismatched == [rel]


def test_a_kept_file_gone_is_said_gone_and_publish_names_what_it_cannot_show(
    seeded: Any, ingested: tuple[Path, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file only older snapshots show, gone from the catalog with nothing to stand in for it:
    the repair said "kept as it is" of a file that was not there; publish said every file was
    published (0 failed) and left it out without a word; a reader's time travel to those
    snapshots then said "404: the object does not exist", naming no object."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cat, _ = _copy(ingested, tmp_path / "catalog")
    older = cat.snapshots(limit=1)[0]["snapshot_id"]
    _ingest(cat, force_refresh=True)
    victim = _kept_only(cat)[0]
    rel = cat.paths.relative(victim)
    with cat.db.write(message="test: an earlier release's catalog") as con:
        con.execute("DELETE FROM file_checksums WHERE path = ?", [rel])
    victim.unlink()
    r = runner.invoke(app, ["cache", "verify", "--repair", "--catalog", str(cat.paths.root)])
    assert r.exit_code == 1, r.output
    [line] = [x for x in r.output.splitlines() if x.startswith("cannot mend")]
    assert "it is gone from the catalog (time travel to those snapshots fails" in line
    assert "kept as it is" not in line

    seeded.create_bucket(Bucket="gone")
    summary = cat.publish("s3://gone/cv", rate_limit=0)
    assert summary.ok and summary.gone == [rel] and summary.as_dict()["gone"] == 1
    assert summary.summary().endswith(
        f"; 1 file(s) only older snapshots {older} show are gone from the catalog (`cvcatalog "
        "cache verify` names them): time travel to those snapshots fails in the published "
        "catalog too"
    )
    res = runner.invoke(app, ["query", "--catalog", "s3://gone/cv", "--snapshot", str(older),
                              "select count(*) from wydot_bsm"])  # fmt: skip
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "error: GET " in res.stderr and f"/gone/cv/{rel}: 404" in res.stderr, res.stderr


def test_a_published_catalog_reads_no_other_s3_object_whatever_its_paths_say(
    seeded: Any, ingested: tuple[Path, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB allows a directory by its name's prefix and S3 resolves '..' after that check:
    a stored view reading `s3://tamper/cv/../other/secret.txt` read another prefix's object,
    and so could a data file's path climbing out of the lake. A reader allows the exact files
    the lake lists under its own URL, and refuses a catalog that lists one outside it."""
    summary, url, evil = _published_copy(seeded, ingested, tmp_path, monkeypatch)
    seeded.put_object(Bucket="tamper", Key="other/secret.txt", Body=b"TOP-SECRET-CONTENT\n")
    con = duckdb.connect()
    load_extension(con, "httpfs")
    load_extension(con, "ducklake")
    con.execute(f"ATTACH 'ducklake:{evil}' AS cv")
    con.execute(
        "CREATE VIEW cv.leak AS SELECT content FROM read_text('s3://tamper/cv/../other/secret.txt')"
    )
    con.close()
    seeded.upload_file(str(evil), "tamper", "cv/catalog.ducklake")
    result = runner.invoke(app, ["query", "--catalog", url, "select * from leak"])
    assert "TOP-SECRET" not in result.output
    assert result.exit_code == 1 and "error: cannot access s3://tamper/cv/../other/" in result.stderr
    # the catalog's own data is read as before
    got = Catalog(url).query("select count(*) as n from wydot_bsm")
    assert int(got["n"][0]) == summary.rows

    # a data file's path that climbs out of the lake: the catalog is refused, in one line
    con = duckdb.connect(str(evil))
    con.execute("UPDATE ducklake_data_file SET path = '../../../other/secret.txt'")
    con.close()
    seeded.upload_file(str(evil), "tamper", "cv/catalog.ducklake")
    result = runner.invoke(app, ["query", "--catalog", url, "select count(*) from wydot_bsm"])
    assert result.exit_code == 1 and "TOP-SECRET" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(
        f"error: refusing to read the published catalog {url}: it lists a file outside"
    )


def test_a_kept_files_snapshots_are_the_kept_ones_that_show_it() -> None:
    """verify said "only older snapshots 2..4 show it" of a file snapshots 3 and 4 of which
    had expired: only the kept snapshots are named (time travel reaches only those)."""
    kept = functools.partial(cache_ops._Kept, "f.parquet", 1, 2, 5, "wydot_bsm", False)
    assert kept((2,)).span == "snapshot 2 shows"
    assert kept((2, 3, 4)).span == "snapshots 2..4 show"
    assert kept((2, 4, 5, 6, 9)).span == "snapshots 2, 4..6, 9 show"
    assert kept(()).span == "snapshots 2..4 show"  # (none kept: its lifetime)
