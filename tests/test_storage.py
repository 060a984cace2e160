"""A catalog whose Parquet lake lives on S3 (moto server over HTTP): the same answers as a
local lake, through the views (httpfs), Dask (s3fs), verify, eviction, compaction and publish."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from cvcatalog.catalog import Catalog
from cvcatalog.cli.main import app
from cvcatalog.config import DataSourceConfig
from cvcatalog.exceptions import CatalogError, ConfigError, EndpointUnreachableError
from cvcatalog.io.duckdb_ext import load_extension, s3_connection
from cvcatalog.io.lake import files as table_files
from cvcatalog.io.storage import LINEAGE_OBJECT, Lineage, S3Store, lineage_refusal
from cvcatalog.sandbox.replica import seed_replica
from cvcatalog.sources.bucket import BUCKET
from cvcatalog.state.access import read_access_log

LAKE = "cv-lake"
runner = CliRunner()

CHECKS = [
    "select date, count(*) as n, round(sum(speed_mps), 6) as s, count(distinct vehicle_id) as v "
    "from wydot_bsm group by 1 order by 1",
    "select count(*) as n, round(sum(latitude), 6) as lat from bsm",
    "select count(*) from wydot_bsm_socrata",
    "select count(*) as n, count(distinct date) from wydot_tim",
]


@pytest.fixture(scope="module")
def env(module_s3: Any) -> Iterator[Any]:
    client = module_s3
    client.create_bucket(Bucket=LAKE)
    seed_replica(
        client,
        date(2021, 4, 1),
        date(2021, 4, 3),
        sources=["wydot"],
        message_types=["BSM", "TIM"],
        records_per_hour=6,
        files_per_hour=1,
        malformed_per_day=2,
    )
    yield client


def _ingest(cat: Catalog) -> None:
    for mt in ("BSM", "TIM"):
        s = cat.ingest("wydot", mt, "2021-04-01", "2021-04-03", rate_limit=0, max_workers=4)
        assert s.ok, s.as_dict()


@pytest.fixture(scope="module")
def local(env: Any, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    cat = Catalog(tmp_path_factory.mktemp("local") / "catalog")
    _ingest(cat)
    return cat


@pytest.fixture(scope="module")
def remote_lake(env: Any, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    cat = Catalog(tmp_path_factory.mktemp("s3lake") / "catalog", storage=f"s3://{LAKE}/team/cv")
    _ingest(cat)
    return cat


def _keys(client: Any, prefix: str) -> list[str]:
    out: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=LAKE, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return sorted(out)


def test_same_answers_as_a_local_lake(local: Catalog, remote_lake: Catalog) -> None:
    for sql in CHECKS:
        want = local.query(sql)
        got = remote_lake.query(sql)
        assert len(want) > 0
        assert got.equals(want), sql
    # and every BSM day they read (s3:// files) is as recently used as a local lake's day
    with remote_lake.db.read() as con:
        days = con.execute(
            "select partition_key from partitions where source = 'wydot' "
            "and message_type = 'BSM' and status = 'complete'"
        ).fetchall()
    read = {k for k in read_access_log(remote_lake.paths) if k.startswith("wydot/BSM/")}
    assert read and read == {d for (d,) in days}


def test_files_live_on_s3_with_their_checksums(env: Any, remote_lake: Catalog) -> None:
    with remote_lake.db.read() as con:
        files = con.execute("select path, sha256, bytes from partition_files").fetchall()
    keys = _keys(env, "team/cv/")  # (and the lake's lineage: which catalog wrote it last)
    assert sorted([f"team/cv/{LINEAGE_OBJECT}", *(f"team/cv/{p}" for p, _, _ in files)]) == keys
    assert any(k.endswith(".parquet") for k in keys) and any(k.endswith(".ndjson") for k in keys)
    for path, digest, size in files:
        body = env.get_object(Bucket=LAKE, Key=f"team/cv/{path}")["Body"].read()
        assert len(body) == size and hashlib.sha256(body).hexdigest() == digest
    # nothing but the database, locks and an empty staging area stays local
    assert not [p for p in (remote_lake.paths.root / "lake").rglob("*") if p.is_file()]
    assert remote_lake.db.lake_url == f"s3://{LAKE}/team/cv"


def test_the_lake_names_s3_files_and_a_plain_duckdb_reads_them(remote_lake: Catalog) -> None:
    con = duckdb.connect()
    try:
        s3_connection(con)  # what a shell user does: LOAD httpfs; CREATE SECRET (...)
        load_extension(con, "ducklake")
        con.execute(f"ATTACH 'ducklake:{remote_lake.database}' AS cv (READ_ONLY)")
        located = [r[0] for r in con.execute(
            "select data_file from ducklake_list_files('cv', 'wydot_bsm')"
        ).fetchall()]
        assert located and all(
            p.startswith(f"s3://{LAKE}/team/cv/lake/main/wydot_bsm/") for p in located
        )
        n = con.execute("select count(*) from cv.wydot_bsm").fetchone()
    finally:
        con.close()
    assert n is not None and n[0] == remote_lake.query("select count(*) from wydot_bsm").iat[0, 0]


def test_cvcatalog_shell_opens_an_s3_lake(remote_lake: Catalog, tmp_path: Path) -> None:
    """The DuckDB CLI child reads the S3 lake; its private init file (the secret) goes with it."""
    sql = "select count(*) from wydot_bsm; select count(*) from wydot_bsm_socrata;\n"
    shell = subprocess.run(
        [str(Path(sys.executable).parent / "cvcatalog"), "shell", "--catalog",
         str(remote_lake.paths.root)],
        input=".mode csv\n" + sql,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        check=False,
    )  # fmt: skip
    assert shell.returncode == 0, shell.stderr
    want = [remote_lake.query(q).iat[0, 0] for q in sql.strip().split(";") if q.strip()]
    # only the user's results: the setup (its CREATE SECRET's "Success true" table) is silent
    assert shell.stdout.splitlines() == ["count_star()", str(want[0]), "count_star()", str(want[1])]
    assert want[0] > 0
    init = remote_lake.shell_sql()
    assert "SECRET" in init and "KEY_ID" in init
    # `sql session` prints statements to the terminal: never the secret (the command alone,
    # in this process: the shell above is the process this test is about)
    printed = runner.invoke(app, ["sql", "session", "--catalog", str(remote_lake.paths.root)])
    assert printed.exit_code == 1 and not printed.stdout and "cvcatalog shell" in printed.stderr
    # the private init file is gone with the shell
    assert not list(tmp_path.glob("cvcatalog-shell-*"))


def test_dask_reads_the_s3_lake_through_s3fs(local: Catalog, remote_lake: Catalog) -> None:
    cols = ["vehicle_id", "generated_at", "speed_mps", "date"]
    want = local.to_dask("wydot", "BSM", "2021-04-01", "2021-04-02", columns=cols).compute()
    frame = remote_lake.to_dask("wydot", "BSM", "2021-04-01", "2021-04-02", columns=cols)
    got = frame.compute()
    assert frame.npartitions == 2 and len(got) == len(want) > 0
    key = ["vehicle_id", "generated_at"]
    a = want.sort_values(key).reset_index(drop=True)
    b = got.sort_values(key).reset_index(drop=True)
    assert a.equals(b)


def test_verify_finds_damage_on_s3_and_repair_refetches(env: Any, remote_lake: Catalog) -> None:
    with remote_lake.db.read() as con:
        data = con.execute(
            "select path from partition_files where kind = 'data' and path like '%day=3/%' "
            "and path like '%/wydot_bsm/%'"
        ).fetchall()
    victim = f"team/cv/{data[0][0]}"
    body = env.get_object(Bucket=LAKE, Key=victim)["Body"].read()
    flipped = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
    env.put_object(Bucket=LAKE, Key=victim, Body=flipped)  # same size, different bytes
    stray = "team/cv/lake/main/wydot_bsm/year=2021/month=4/day=3/date=2021-04-03/stray.parquet"
    env.put_object(Bucket=LAKE, Key=stray, Body=b"x")

    report = remote_lake.verify()
    assert report.mismatched == [data[0][0]]
    assert report.orphans == [stray.removeprefix("team/cv/")]

    home = str(remote_lake.paths.root)
    result = runner.invoke(app, ["cache", "verify", "--repair", "--catalog", home])
    assert result.exit_code == 0, result.output
    assert remote_lake.verify().clean
    assert stray not in _keys(env, "team/cv/")
    n = remote_lake.query("select count(*) as n from wydot_bsm where date = '2021-04-03'")
    m = remote_lake.query("select rows from partitions where partition_key = 'wydot/BSM/2021/04/03'")
    assert n.iat[0, 0] == m.iat[0, 0] > 0


def lake_files(cat: Catalog, table: str = "wydot_bsm") -> list[str]:
    with cat.db.read() as con:
        return table_files(con, table)


def test_compact_and_clear_act_on_s3(env: Any, tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c", storage=f"s3://{LAKE}/compact")
    cfg = {"rate_limit": 0, "max_workers": 4}
    assert cat.ingest("wydot", "TIM", "2021-04-01", "2021-04-01", **cfg).ok
    # an object added to the day and merged by --check-changes: a second Parquet file beside
    # the first (a day's own files are one: its ordered write makes row groups of at least
    # 2,048 rows, whatever a small rows_per_file says)
    day = "wydot/TIM/2021/04/01/"
    first = sorted(o["Key"] for o in env.list_objects_v2(Bucket=BUCKET, Prefix=day)["Contents"])[0]
    added = first.rsplit("/", 1)[0] + "/added-for-compaction"
    env.put_object(Bucket=BUCKET, Key=added, Body=env.get_object(Bucket=BUCKET, Key=first)["Body"].read())
    try:
        assert cat.ingest("wydot", "TIM", "2021-04-01", "2021-04-01", check_changes=True, **cfg).ok
    finally:
        env.delete_object(Bucket=BUCKET, Key=added)
    rows = "select * from wydot_tim order by all"
    before = cat.query(rows)
    n_files = len(lake_files(cat, "wydot_tim"))
    assert n_files > 1
    results = cat.compact()
    assert results and results[0].files_after < results[0].files_before
    assert len(lake_files(cat, "wydot_tim")) == results[0].files_after
    # the replaced files stay on S3 for time travel until their snapshots expire
    assert cat.db.expire_snapshots(datetime.now(UTC) + timedelta(seconds=1))
    after_keys = [k for k in _keys(env, "compact/lake/") if k.endswith(".parquet")]
    assert len(after_keys) == results[0].files_after
    assert cat.query(rows).equals(before)
    assert cat.verify().clean

    count, nbytes = cat.clear()
    assert count == 1 and nbytes > 0
    assert _keys(env, "compact/") == [f"compact/{LINEAGE_OBJECT}"]  # (the lake is still its own)
    assert cat.query("select count(*) as n from wydot_tim").iat[0, 0] == 0


def test_storage_switch_is_refused_and_env_selects_s3(
    env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "envcat"
    monkeypatch.setenv("CVCATALOG_STORAGE", f"s3://{LAKE}/fromenv")
    result = runner.invoke(
        app,
        ["ingest", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01",
         "--end", "2021-04-01", "--rate-limit", "0", "--no-progress", "--catalog", str(home)],
    )
    assert result.exit_code == 0, result.output
    assert any(k.endswith(".parquet") for k in _keys(env, "fromenv/lake/"))

    monkeypatch.setenv("CVCATALOG_STORAGE", "local")
    result = runner.invoke(
        app,
        ["ingest", "--source", "wydot", "--type", "BSM", "--start", "2021-04-02",
         "--end", "2021-04-02", "--rate-limit", "0", "--no-progress", "--catalog", str(home)],
    )
    assert result.exit_code == 1
    assert "keeps its Parquet files in s3://cv-lake/fromenv" in result.output
    assert "Traceback" not in result.output

    monkeypatch.delenv("CVCATALOG_STORAGE")
    # without a storage setting the catalog keeps using what it records
    result = runner.invoke(app, ["query", "--catalog", str(home), "select count(*) from wydot_bsm"])
    assert result.exit_code == 0 and "1" in result.output


def test_a_second_catalog_is_refused_a_lake_another_one_writes(
    env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two catalog directories given one storage prefix (a team's CVCATALOG_STORAGE): the
    second wrote into the first's lake, each took the other's files for orphans, and `cache
    verify --repair` of either deleted the other's data. The second is refused in one line,
    nothing of the first touched."""
    monkeypatch.setenv("CVCATALOG_STORAGE", f"s3://{LAKE}/shared")
    day = ["--type", "BSM", "--start", "2021-04-01", "--end", "2021-04-01", "--rate-limit", "0"]
    first = runner.invoke(
        app, ["ingest", "--source", "wydot", *day, "--no-progress", "--catalog", str(tmp_path / "a")]
    )
    assert first.exit_code == 0, first.output
    before = _keys(env, "shared/")
    assert any(k.endswith(".parquet") for k in before)
    second = runner.invoke(
        app, ["ingest", "--source", "wydot", *day, "--no-progress", "--catalog", str(tmp_path / "b")]
    )
    assert second.exit_code == 1 and second.stdout == ""
    assert second.stderr.startswith(
        f"error: s3://{LAKE}/shared already holds another catalog's files (s3://{LAKE}/shared/"
    )
    assert second.stderr.count("\n") == 1
    assert _keys(env, "shared/") == before
    assert not (tmp_path / "b" / "catalog.ducklake").exists()
    assert Catalog(tmp_path / "a").verify().clean  # no orphans: nothing of another catalog


def test_a_copy_of_a_catalog_on_an_s3_lake_cannot_delete_the_files_the_other_shows(
    env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cp -a` of a catalog directory whose lake is on S3 shares the lake: once the copy wrote
    a day, the original's eviction, repair or next ingest deleted the copy's files as its own
    orphans or expired ones. The lake now follows one line of writes: the catalog that wrote
    last goes on (moved, or after a write that failed midway), the one left behind is refused
    in one line before it changes anything, and its reads still answer."""
    storage = f"s3://{LAKE}/copied"
    a, b = tmp_path / "a", tmp_path / "b"
    cfg = {"rate_limit": 0, "max_workers": 4}
    assert Catalog(a, storage=storage).ingest("wydot", "BSM", "2021-04-01", "2021-04-01", **cfg).ok
    shutil.copytree(a, b, symlinks=True)
    copy = Catalog(b)
    assert copy.ingest("wydot", "BSM", "2021-04-02", "2021-04-02", **cfg).ok  # the copy goes on
    keys = _keys(env, "copied/")
    days = "select date, count(*) as n from wydot_bsm group by 1 order by 1"
    want = copy.query(days)
    assert len(want) == 2

    left = f"error: {storage} is not this catalog's to write: it was last written by "
    for args in (
        ["cache", "evict", "--max-size-gb", "0"],
        ["cache", "clear", "--yes"],
        ["cache", "verify"],  # (the copy's files are its orphans: no `--repair` to suggest)
        ["cache", "verify", "--repair"],
        ["ingest", "--source", "wydot", "--type", "BSM", "--start", "2021-04-03",
         "--end", "2021-04-03", "--rate-limit", "0", "--no-progress"],
    ):  # fmt: skip
        r = runner.invoke(app, [*args, "--catalog", str(a)])
        assert r.exit_code == 1, (args, r.output)
        assert r.stderr.startswith(left + f"{socket.gethostname()}:{b}. "), r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.output
    assert _keys(env, "copied/") == keys  # nothing of the copy's deleted, nothing added
    assert copy.query(days).equals(want) and copy.verify().clean
    original = Catalog(a)
    assert original.query(days)["n"].tolist() == want["n"].tolist()[:1]  # (it still reads)
    report = original.verify()
    assert report.orphans and report.behind == r.stderr.removeprefix("error: ").strip()
    with pytest.raises(CatalogError, match="not this catalog's to write"):
        original.evict(max_size_gb=0)

    # the copy moved: still the lake's last writer. A write that fails after claiming the
    # lake, or one committed whose claim was never settled, leaves it this catalog's
    moved = tmp_path / "moved"
    shutil.move(b, moved)
    cat = Catalog(moved)
    with pytest.raises(RuntimeError), cat.db.write() as con:
        con.execute("select 1")
        raise RuntimeError("killed midway")
    monkeypatch.setattr(S3Store, "settle", lambda self, new, me, etag: None)
    assert cat.ingest("wydot", "BSM", "2021-04-03", "2021-04-03", **cfg).ok
    monkeypatch.undo()
    assert cat.evict(max_size_gb=0)  # (every day evicted: its own)
    assert cat.status() == [] and cat.verify().clean
    # and the one left behind stays refused
    r = runner.invoke(app, ["cache", "evict", "--max-size-gb", "0", "--catalog", str(a)])
    assert r.exit_code == 1 and f"last written by {socket.gethostname()}:{moved}" in r.stderr


_KILL_IN_A_WRITE = """
import os, signal, sys
from cvcatalog.io.storage import S3Store
from cvcatalog.state.db import CatalogDB
where = sys.argv[1]
real_claim, real_settle = CatalogDB._claim, S3Store.settle

def claim(self, con):  # the lake claimed for this write, nothing of it published
    out = real_claim(self, con)
    if where == "claimed":
        os.kill(os.getpid(), signal.SIGKILL)
    return out

def settle(self, new, me, etag):  # the write published, its claim not settled
    if where == "published":
        os.kill(os.getpid(), signal.SIGKILL)
    return real_settle(self, new, me, etag)

CatalogDB._claim, S3Store.settle = claim, settle
sys.argv = ["cvcatalog", *sys.argv[2:]]
from cvcatalog.cli.main import app
app()
"""


@pytest.mark.parametrize("where", ["claimed", "published"])
def test_a_write_of_an_s3_lake_killed_around_its_commit_leaves_the_lake_its_own(
    env: Any, tmp_path: Path, where: str
) -> None:
    """kill -9 after a write claimed the lake (nothing of it published) or after it was
    published (its claim never settled): the catalog is still the lake's last writer, its
    next ingest goes on and the lake verifies clean; a copy made before the kill is refused."""
    home = tmp_path / "cat"
    storage = f"s3://{LAKE}/killed-{where}"
    day = ["--source", "wydot", "--type", "BSM", "--rate-limit", "0", "--no-progress"]
    cat = Catalog(home, storage=storage)
    assert cat.ingest("wydot", "BSM", "2021-04-01", "2021-04-01", rate_limit=0).ok
    shutil.copytree(home, tmp_path / "copy", symlinks=True)
    killed = subprocess.run(
        [sys.executable, "-c", _KILL_IN_A_WRITE, where, "ingest", *day,
         "--start", "2021-04-02", "--end", "2021-04-02", "--catalog", str(home)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    again = runner.invoke(
        app, ["ingest", *day, "--start", "2021-04-02", "--end", "2021-04-03",
              "--catalog", str(home)],
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    cat = Catalog(home)
    assert cat.verify().clean
    assert cat.query("select count(distinct date) as n from wydot_bsm")["n"][0] == 3
    left = runner.invoke(app, ["cache", "evict", "--max-size-gb", "0", "--catalog",
                               str(tmp_path / "copy")])  # fmt: skip
    assert left.exit_code == 1 and "is not this catalog's to write" in left.stderr


@pytest.mark.parametrize(
    ("found", "local", "refused"),
    [
        (None, None, None),  # a lake no write of this release claimed: the first takes it
        (Lineage("t1", "h:/a"), "t1", None),  # this catalog wrote last
        (Lineage("t1", "h:/b"), "t1", None),  # ... and was moved since
        (Lineage("t2", "h:/b"), "t1", "it was last written by h:/b"),  # a copy went on
        (Lineage("t2", None), None, "it was last written by another catalog"),
        (Lineage("t1", "h:/a", "t2", "h:/a"), "t2", None),  # committed, not settled
        (Lineage("t1", "h:/a", "t2", "h:/a"), "t1", None),  # failed before its commit
        (Lineage("t0", "h:/a", "t2", "h:/a"), "t1", "it was last written by h:/a"),
        (Lineage("t1", "h:/b", "t2", "h:/b"), "t1", "a write by h:/b is in progress there"),
    ],
)
def test_the_lake_follows_one_line_of_writes(
    found: Lineage | None, local: str | None, refused: str | None
) -> None:
    assert lineage_refusal(found, local, "h:/a") == refused


def test_of_two_copies_claiming_the_lake_at_once_one_is_refused(env: Any) -> None:
    """Both read the lineage object before either wrote it: S3's conditional PUT lets one
    mark its write pending; the other reads the object again and is refused."""
    url = f"s3://{LAKE}/racing"
    first, second = S3Store(url), S3Store(url)
    assert first.claim(None, "t1", "h:/a") is not None
    first.settle("t1", "h:/a", None)  # (its ETag unknown here: not settled, still pending)
    assert first.lineage()[0] == Lineage(None, "h:/a", "t1", "h:/a")
    stale = first.lineage()
    reads = iter([stale])
    second.lineage = lambda: next(reads, None) or S3Store.lineage(second)  # type: ignore[method-assign]
    etag = first.claim("t1", "t2", "h:/a")
    with pytest.raises(CatalogError, match="a write by h:/a is in progress there"):
        second.claim("t1", "t3", "h:/b")
    first.settle("t2", "h:/a", etag)
    assert first.lineage()[0] == Lineage("t2", "h:/a")
    assert second.refusal("t1", "h:/b") == "it was last written by h:/a"


def test_an_endpoint_without_conditional_puts_still_keeps_the_lakes_line_of_writes() -> None:
    """S3 stores that answer a conditional PUT with 501 NotImplemented: every write of their
    lake failed on its claim. The lineage object is written unconditionally there (the copy
    left behind still refused; only two copies writing at the same moment are not told)."""

    class NoConditions:
        def __init__(self) -> None:
            self.body: bytes | None = None
            self.conditional = 0

        def put_object(self, **kw: Any) -> dict[str, str]:
            if "IfMatch" in kw or "IfNoneMatch" in kw:
                self.conditional += 1
                raise ClientError(
                    {"Error": {"Code": "NotImplemented", "Message": "not implemented"},
                     "ResponseMetadata": {"HTTPStatusCode": 501}}, "PutObject",
                )  # fmt: skip
            self.body = kw["Body"]
            return {"ETag": '"e"'}

        def get_object(self, **kw: Any) -> dict[str, Any]:
            if self.body is None:
                raise ClientError(
                    {"Error": {"Code": "NoSuchKey", "Message": "no such key"},
                     "ResponseMetadata": {"HTTPStatusCode": 404}}, "GetObject",
                )  # fmt: skip
            return {"Body": io.BytesIO(self.body), "ETag": '"e"'}

    client = NoConditions()
    store = S3Store(f"s3://{LAKE}/plain", client=client)
    etag = store.claim(None, "t1", "h:/a")
    store.settle("t1", "h:/a", etag)
    assert store.lineage()[0] == Lineage("t1", "h:/a") and client.conditional == 1
    assert store.refusal("t0", "h:/b") == "it was last written by h:/a"
    with pytest.raises(CatalogError, match="it was last written by h:/a"):
        store.claim("t0", "t2", "h:/b")


def test_storage_setting_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="storage"):
        DataSourceConfig.from_values(
            source="wydot", message_type="BSM", date_range={"days_back": 1}, storage="/tmp/x"
        )
    with pytest.raises(ConfigError, match="bucket"):
        Catalog(tmp_path / "bad", storage="s3://Not_A_Bucket!/x").ingest(
            "wydot", "BSM", "2021-04-01", "2021-04-01"
        )


def test_publish_copies_an_s3_lake_server_side(env: Any, remote_lake: Catalog) -> None:
    summary = remote_lake.publish(f"s3://{LAKE}/published")
    assert summary.ok, summary.summary()
    pub = Catalog(f"s3://{LAKE}/published")
    # every current file, and those only older kept snapshots show (time travel)
    current = len(remote_lake.query("select * from partition_files"))
    files = pub.published()["files"]
    assert summary.count("copied") == len(files) >= current
    # copies are S3's own work, not bytes sent: only publish.json and the database are sent
    # (the summary counted every copy as uploaded and its bytes as sent)
    assert summary.count("uploaded") == 0
    assert summary.bytes_copied() == sum(f["bytes"] for f in files) > 0
    sent = sum(r.bytes for r in summary.results if r.kind in ("manifest", "database"))
    assert summary.bytes_uploaded() == sent
    copied = f"{summary.bytes_copied() / 1e6:,.1f} MB copied on the server"
    assert f"{sent / 1e6:,.1f} MB sent, {copied} in " in summary.summary()
    assert f"{len(files)} copied on the server, " in summary.summary()
    d = summary.as_dict()
    got = (d["copied"], d["bytes_copied"], d["uploaded"], d["bytes_uploaded"])
    assert got == (len(files), summary.bytes_copied(), 0, sent)
    again = remote_lake.publish(f"s3://{LAKE}/team/cv")  # its own location: nothing to send
    assert again.ok and again.count("copied") == 0 and again.count("skipped") > 0
    assert "copied on the server" not in again.summary()
    for sql in CHECKS[:2]:
        assert pub.query(sql).equals(remote_lake.query(sql))
    assert isinstance(remote_lake.db.store, S3Store)


def test_publish_command_tells_copies_from_uploads(env: Any, remote_lake: Catalog) -> None:
    """The table has a `copied` row and its line says what was copied on the server; json
    (like csv) gives each object's status (`copied`, not `uploaded`)."""
    root = str(remote_lake.paths.root)
    r = runner.invoke(app, ["publish", "--to", f"s3://{LAKE}/cli-table", "--catalog", root])
    assert r.exit_code == 0, r.output
    cells = {tuple(line.split()[1:4:2]) for line in r.stdout.splitlines() if "│" in line}
    assert ("data", "copied") in cells and ("data", "uploaded") not in cells
    assert ("database", "uploaded") in cells
    assert " MB copied on the server in " in r.output
    r = runner.invoke(
        app,
        ["publish", "--to", f"s3://{LAKE}/cli-json", "--catalog", root, "--format", "json"],
    )
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    status = {x["path"]: x["status"] for x in rows}
    assert status.pop("publish.json") == status.pop("catalog.ducklake") == "uploaded"
    assert status and set(status.values()) == {"copied"}
    assert " MB copied on the server in " in r.stderr


def test_incremental_merge_reads_the_kept_rows_from_s3(env: Any, tmp_path: Path) -> None:
    """--check-changes on an S3 lake: only the changed object is fetched; the day's kept rows
    and quarantine come from S3; the result equals a fresh ingest of the changed bucket."""
    day = "2021-04-03"
    cat = Catalog(tmp_path / "cdc", storage=f"s3://{LAKE}/cdc")
    assert cat.ingest("wydot", "BSM", day, day, rate_limit=0).ok
    keys = [
        o["Key"]
        for o in env.list_objects_v2(Bucket=BUCKET, Prefix="wydot/BSM/2021/04/03/")["Contents"]
    ]
    body = env.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read()
    lines = body.splitlines(keepends=True)
    env.put_object(Bucket=BUCKET, Key=keys[0], Body=b"".join(lines[: len(lines) // 2]))

    s = cat.ingest("wydot", "BSM", day, day, rate_limit=0, check_changes=True)
    assert s.ok and s.get_requests == 1
    fresh = Catalog(tmp_path / "fresh")
    assert fresh.ingest("wydot", "BSM", day, day, rate_limit=0).ok
    sql = "select source_key, vehicle_id, generated_at, speed_mps from wydot_bsm order by all"
    assert cat.query(sql).equals(fresh.query(sql))
    q = "select rows, quarantined from partitions"
    assert cat.query(q).equals(fresh.query(q))
    assert cat.verify().clean


def test_export_from_an_s3_lake_whose_endpoint_is_down_is_the_one_line(
    remote_lake: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """export printed DuckDB's "IO Error: Could not connect to server error for HTTP GET ..."
    where query says which endpoint it cannot reach."""
    from cvcatalog.sandbox.server import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    home = str(remote_lake.paths.root)
    out = tmp_path / "x.csv"
    r = runner.invoke(
        app,
        ["export", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01",
         "--format", "csv", "--output", str(out), "--catalog", home],
    )  # fmt: skip
    assert r.exit_code == 1, r.output
    assert r.stderr.startswith("error: cannot reach the S3 endpoint http://127.0.0.1:"), r.stderr
    assert len(r.stderr.splitlines()) == 1 and not out.exists()


def test_a_frame_of_an_s3_lake_whose_endpoint_is_down_says_so(
    remote_lake: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """to_dask raised FileNotFoundError naming a Parquet key (s3fs's word for a refused
    connection) where every other reader says which endpoint it cannot reach, after ~12 s
    (s3fs repeated botocore's retries 5 times; the policy's attempts are botocore's now)."""
    from cvcatalog.sandbox.server import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("CVCATALOG_DOWNLOAD__RETRY_ATTEMPTS", "0")
    cat = Catalog(remote_lake.paths.root)
    with pytest.raises(EndpointUnreachableError, match="cannot reach the S3 endpoint"):
        cat.to_dask("wydot", "BSM", "2021-04-01", "2021-04-01")
