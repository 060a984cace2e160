"""Publishing a catalog to S3 and querying it from there (moto server over HTTP)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from botocore.awsrequest import AWSResponse
from typer.testing import CliRunner

from cvcatalog.catalog import Catalog, RemoteCatalog
from cvcatalog.cli.main import app
from cvcatalog.exceptions import CatalogError, ConfigError, CvCatalogError, MissingDataWarning
from cvcatalog.io.storage import S3Location, b64
from cvcatalog.ops import publish as publish_mod
from cvcatalog.ops import remote as remote_mod
from cvcatalog.sandbox.replica import seed_replica

PUB = "cv-published"
URL = f"s3://{PUB}/catalogs/wydot"
runner = CliRunner()

#: one answer per view: rows and sums that any difference in files would change
CHECKS = {
    "wydot_bsm": "select count(*) as n, round(sum(speed_mps), 6) as s, count(distinct vehicle_id) "
    "as v, min(date) as d0, max(date) as d1 from wydot_bsm",
    "wydot_tim": "select count(*) as n, count(distinct date) as days from wydot_tim",
    "bsm": "select source, count(*) as n, round(sum(latitude), 6) as lat from bsm group by 1",
    "per_day": "select date, count(*) as n from wydot_bsm group by 1 order by 1",
    "socrata": "select count(*) as n from wydot_bsm_socrata",
    "partitions": "select partition_key, status, rows from partitions order by 1",
}


@pytest.fixture(scope="module")
def env(module_s3: Any) -> Iterator[Any]:
    yield module_s3


@pytest.fixture(scope="module")
def local(env: Any, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """wydot BSM and TIM for two days (with quarantined lines), ingested once."""
    env.create_bucket(Bucket=PUB)
    seed_replica(
        env,
        date(2021, 4, 1),
        date(2021, 4, 2),
        sources=["wydot"],
        message_types=["BSM", "TIM"],
        records_per_hour=6,
        files_per_hour=1,
        malformed_per_day=2,
    )
    cat = Catalog(tmp_path_factory.mktemp("local") / "catalog")
    for mt in ("BSM", "TIM"):
        s = cat.ingest("wydot", mt, "2021-04-01", "2021-04-02", rate_limit=0, max_workers=4)
        assert s.ok, s.as_dict()
    return cat


@pytest.fixture(scope="module")
def first(local: Catalog) -> publish_mod.PublishSummary:
    return local.publish(URL)


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Another machine: an empty HOME and cache."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def answers(cat: Catalog) -> dict[str, list[dict[str, Any]]]:
    return {name: cat.query_arrow(sql).to_pylist() for name, sql in CHECKS.items()}


def keys(client: Any, prefix: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=PUB, Prefix=prefix):
        out.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    return out


def manifest_files(cat: Catalog) -> dict[str, tuple[int, str]]:
    rows = cat.query_arrow(
        "select f.path, f.bytes, f.sha256 from partition_files f join partitions p "
        "using (partition_key) where p.status = 'complete'"
    ).to_pylist()
    return {r["path"]: (r["bytes"], r["sha256"]) for r in rows}


def failing_put(target: str) -> Any:
    """A botocore before-send hook: PutObject of a key ending in target fails (400 BadDigest)."""

    def hook(request: Any, **_: Any) -> Any:
        if request.method == "PUT" and unquote(request.url.split("?")[0]).endswith(target):
            body = (
                b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>BadDigest</Code>"
                b"<Message>The SHA256 you specified did not match the calculated checksum."
                b"</Message></Error>"
            )
            return AWSResponse(request.url, 400, {"Content-Type": "application/xml"}, _Raw(body))
        return None

    return hook


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


# -- publish ----------------------------------------------------------------------------------
def test_publish_uploads_and_verifies_every_object(
    env: Any, local: Catalog, first: publish_mod.PublishSummary
) -> None:
    files = manifest_files(local)
    kinds = {r.kind for r in first.results}
    assert {"data", "quarantine", "manifest", "database"} <= kinds
    assert first.ok and first.database == "uploaded", first.summary()
    assert first.count("uploaded") == len(files) and first.count("skipped") == 0
    assert all(r.verified and r.checksum == "sha256" for r in first.results), first.rows()

    on_s3 = keys(env, "catalogs/wydot/")
    expected = {f"catalogs/wydot/{p}": size for p, (size, _) in files.items()}
    assert {k: v for k, v in on_s3.items() if k in expected} == expected
    assert set(on_s3) - set(expected) == {
        "catalogs/wydot/publish.json",
        "catalogs/wydot/catalog.ducklake",
    }
    for path, (size, sha) in files.items():
        head = env.head_object(Bucket=PUB, Key=f"catalogs/wydot/{path}", ChecksumMode="ENABLED")
        assert head["Metadata"]["sha256"] == sha and head["ContentLength"] == size
        assert head["ChecksumSHA256"] == b64(sha)

    doc = json.loads(env.get_object(Bucket=PUB, Key="catalogs/wydot/publish.json")["Body"].read())
    assert doc["url"] == URL and doc["cvcatalog_version"]
    assert {f["path"]: (f["bytes"], f["sha256"]) for f in doc["files"]} == files
    assert {"wydot_bsm", "wydot_tim", "bsm", "tim"} <= set(doc["views"])
    db_head = env.head_object(Bucket=PUB, Key="catalogs/wydot/catalog.ducklake")
    assert db_head["Metadata"]["sha256"] == doc["database"]["sha256"]


def test_republish_skips_everything(local: Catalog, first: publish_mod.PublishSummary) -> None:
    again = local.publish(URL)
    assert again.ok, again.summary()
    assert again.count("uploaded") == 0
    assert again.count("skipped") == first.count("uploaded")
    assert all(r.verified and r.checksum == "sha256" for r in again.results)
    assert again.database == "up to date"
    assert again.bytes_uploaded() == 0
    assert "0 uploaded" in again.summary()


def test_a_run_that_changed_only_the_state_is_published_again(
    local: Catalog, tmp_path: Path, fresh_home: Path
) -> None:
    """A re-publish after a run that recorded only a no_data day (no file changed) said
    "database up to date": the published catalog's runs and cache status stayed as before."""
    cat = Catalog(tmp_path / "catalog")
    assert cat.ingest("wydot", "BSM", "2021-04-01", rate_limit=0).ok
    url = f"s3://{PUB}/state-only"
    assert cat.publish(url).database == "uploaded"
    assert cat.publish(url).database == "up to date"  # nothing changed
    assert cat.ingest("wydot", "BSM", "2021-04-05", rate_limit=0).count("no_data") == 1
    again = cat.publish(url)
    assert again.database == "uploaded" and again.count("uploaded") == 0  # no new file
    status = Catalog(url).query("select status from partitions where partition_key = 'wydot/BSM/2021/04/05'")
    assert list(status["status"]) == ["no_data"]


def test_interrupted_publish_reports_and_resumes(
    env: Any, local: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"s3://{PUB}/resume"
    victim = sorted(manifest_files(local))[0]
    real = publish_mod.make_client

    def flaky(cfg: Any) -> Any:
        client = real(cfg)
        client.meta.events.register("before-send.s3.PutObject", failing_put(victim))
        return client

    monkeypatch.setattr(publish_mod, "make_client", flaky)
    r = runner.invoke(app, ["publish", "--to", url, "--catalog", str(local.paths.root)])
    assert r.exit_code == 1, r.output
    assert f"failed {victim}: " in r.output and "BadDigest" in r.output
    assert "1 failed" in r.output and "database not uploaded" in r.output
    assert "resume/catalog.ducklake" not in keys(env, "resume/")  # never a dangling database

    # simulate a lost object too, then re-run: only those two are sent
    monkeypatch.setattr(publish_mod, "make_client", real)
    other = sorted(manifest_files(local))[-1]
    env.delete_object(Bucket=PUB, Key=f"resume/{other}")
    r = runner.invoke(
        app, ["publish", "--to", url, "--catalog", str(local.paths.root), "--format", "json"]
    )
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    sent = sorted(x["path"] for x in rows if x["status"] == "uploaded")
    assert sent == sorted([victim, other, "publish.json", "catalog.ducklake"])
    assert all(x["verified"] for x in rows) and not [x for x in rows if x["status"] == "failed"]
    # its summary is for people: on stderr in json and csv (it was dropped), as in a table
    assert f"{url}: " in r.stderr and " 2 uploaded, " in r.stderr and " 0 failed" in r.stderr


def test_publish_errors_are_one_line(local: Catalog, tmp_path: Path) -> None:
    with pytest.raises(CvCatalogError, match="bucket 'no-such-bucket' does not exist"):
        local.publish("s3://no-such-bucket/x")
    with pytest.raises(CvCatalogError, match="not an s3:// URL"):
        local.publish("https://example.com/x")
    r = runner.invoke(app, ["publish", "--to", "s3://no-such-bucket/x", "--catalog",
                            str(local.paths.root)])  # fmt: skip
    assert r.exit_code == 1 and "does not exist" in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


# -- query from S3 ----------------------------------------------------------------------------
def test_remote_catalog_answers_like_the_local_one(
    local: Catalog, first: publish_mod.PublishSummary, fresh_home: Path
) -> None:
    remote = Catalog(URL)
    assert isinstance(remote, RemoteCatalog) and repr(remote) == f"Catalog({URL!r})"
    assert answers(remote) == answers(local)
    assert remote.views() == local.views()
    assert [r["partition"] for r in remote.status()] == [r["partition"] for r in local.status()]
    # the database was fetched once into the fresh cache; views read S3, not local paths
    cached = list(fresh_home.glob("cvcatalog/remote/*/catalog-*.ducklake"))
    assert len(cached) == 1
    located = remote.query_arrow(
        "select data_file from ducklake_list_files('cv', 'wydot_bsm')"
    ).column("data_file").to_pylist()
    assert located and all(p.startswith(f"{URL}/lake/main/wydot_bsm/") for p in located)
    # --read-write session (temp tables) works the same
    n = remote.query_arrow(
        "create temp table t as select * from wydot_bsm; select count(*) as n from t",
        read_only=False,
    ).to_pylist()
    assert n == [{"n": answers(local)["wydot_bsm"][0]["n"]}]
    assert remote.published()["url"] == URL
    for storage in ("local", "s3://elsewhere/lake"):  # (a TypeError from RemoteCatalog)
        with pytest.raises(ConfigError, match=r"^storage= is where a new local catalog keeps"):
            Catalog(URL, storage=storage)


def test_a_published_catalog_counts_what_older_snapshots_hold_as_the_original(
    local: Catalog, tmp_path: Path
) -> None:
    """A published catalog said 0 bytes held for older snapshots (and left them out of its
    size) though it published those files, and its lineage looked for the lake's files in
    the reader's cache directory (a raw "No files found"): both as the local catalog says."""
    copy = Catalog(tmp_path / "copy")
    shutil.copytree(local.paths.root, copy.paths.root)
    s = copy.ingest("wydot", "BSM", "2021-04-01", "2021-04-01", force_refresh=True, rate_limit=0)
    assert s.ok and copy.older_snapshot_bytes() > 0  # the day's first files, kept
    url = f"s3://{PUB}/catalogs/held"
    assert copy.publish(url, rate_limit=0).ok
    remote = Catalog(url)
    assert remote.older_snapshot_bytes() == copy.older_snapshot_bytes()
    assert remote.size_bytes() == copy.size_bytes()
    key = copy.query("select source_key from wydot_bsm limit 1").source_key[0]
    assert remote.lineage(key) == copy.lineage(key)


@pytest.mark.parametrize("where", ["profile", "services"])
def test_an_endpoint_the_aws_config_file_sets_serves_every_read(
    local: Catalog,
    first: publish_mod.PublishSummary,
    fresh_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    """boto3 takes `endpoint_url` from the AWS config file (the profile's, or its services'
    s3 section); httpfs was told only the AWS_ENDPOINT_URL* variables: the database came from
    the configured endpoint and the lake's files were read from AWS ("cannot reach ...
    amazonaws.com")."""
    endpoint = os.environ["AWS_ENDPOINT_URL_S3"]
    config = tmp_path / "aws-config"
    if where == "profile":
        config.write_text(f"[default]\nendpoint_url = {endpoint}\n")
    else:
        config.write_text(
            f"[default]\nservices = local\n\n[services local]\ns3 =\n  endpoint_url = {endpoint}\n"
        )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert answers(Catalog(URL)) == answers(local)


def test_to_dask_reads_the_published_files(
    local: Catalog, first: publish_mod.PublishSummary, fresh_home: Path
) -> None:
    """The lazy Dask frame of a published catalog reads its Parquet on S3 through s3fs and
    equals the local catalog's, with column selection and pushed-down filters."""
    remote = Catalog(URL)
    kw: dict[str, Any] = {"columns": ["vehicle_id", "speed_mps", "date"]}
    for args, extra in (
        (("wydot", "BSM", "2021-04-01", "2021-04-02"), {}),
        (("wydot", "BSM", "2021-04-02", "2021-04-02"), {"filters": [("speed_mps", ">", 10)]}),
    ):
        frames = [c.to_dask(*args, **kw, **extra) for c in (remote, local)]
        assert frames[0].npartitions == frames[1].npartitions
        got, want = (
            f.compute().sort_values(["vehicle_id", "speed_mps"]).reset_index(drop=True)
            for f in frames
        )
        assert len(want) > 0 and got.equals(want)
    assert not list(fresh_home.rglob("access.log"))  # reading records no LRU clock


def test_to_dask_of_a_published_catalog_warns_of_missing_days(
    local: Catalog, first: publish_mod.PublishSummary, fresh_home: Path
) -> None:
    """A published catalog's frame over days it lacks warns as a local one does, with the
    way a read-only catalog gets them: ingest into the catalog it came from, publish again."""
    said = (r"^wydot/BSM: 1 UTC day of the window 2021-04-01\.\.2021-04-03 \(UTC\) is not in "
            r"the catalog .*: 2021-04-03; the frame has no rows of it\. A published catalog is "
            r"read-only: `cvcatalog ingest --source wydot --type BSM --start 2021-04-01 --end "
            rf"2021-04-03` into the catalog {URL} was published from fetches what is missing, "
            r"then `cvcatalog publish` it again$")  # fmt: skip
    with pytest.warns(MissingDataWarning, match=said):
        frame = Catalog(URL).to_dask("wydot", "BSM", "2021-04-01", "2021-04-03", columns=["date"])
    assert len(frame) == local.query("select count(*) n from wydot_bsm").n[0]


UNPICKLE_AND_READ = """
import json, pickle, sys
with open(sys.argv[1], "rb") as f:
    cat = pickle.load(f)
got = cat.to_dask("wydot", "BSM", "2021-04-01", "2021-04-02", columns=["vehicle_id"])
changes = cat.changes("wydot", "BSM", 0, output="dask")  # its partitions reopen the catalog
print(json.dumps({"repr": repr(cat), "query": int(cat.query("select count(*) n from wydot_bsm").n[0]),
                  "frame": len(got.compute(scheduler="sync")),
                  "changes": len(changes.compute(scheduler="sync"))}))
"""


def test_a_published_catalog_pickles_and_reopens_where_it_was_read_from(
    local: Catalog, first: publish_mod.PublishSummary, fresh_home: Path, tmp_path: Path
) -> None:
    """A RemoteCatalog did not pickle either. Now it pickles its URL and S3 settings, with the
    endpoint it was read from made explicit: unpickled in a process whose environment names
    no endpoint (a Dask worker's), it reads from the same one, lazily, and answers as the
    original does; so do the partitions of its changes(output="dask"), which reopen it (they
    used to reopen it from its URL alone: from the environment's endpoint)."""
    rows = int(local.query("select count(*) n from wydot_bsm").n[0])
    remote = Catalog(URL)
    assert int(remote.query("select count(*) n from wydot_bsm").n[0]) == rows  # it has opened
    back = pickle.loads(pickle.dumps(remote))
    assert isinstance(back, RemoteCatalog) and repr(back) == repr(remote)
    assert back.s3_config.endpoint_url == os.environ["AWS_ENDPOINT_URL_S3"]
    assert back.paths == remote.paths and back.db._current is None  # nothing fetched yet
    assert int(back.query("select count(*) n from wydot_bsm").n[0]) == rows
    assert len(back.to_dask("wydot", "BSM", "2021-04-01", "2021-04-02")) == rows
    path = tmp_path / "remote.pickle"
    path.write_bytes(pickle.dumps(remote))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    out = subprocess.run(
        [sys.executable, "-c", UNPICKLE_AND_READ, str(path)],
        capture_output=True, text=True, check=True, timeout=120, env=env,
    )  # fmt: skip
    got = json.loads(out.stdout.strip().splitlines()[-1])
    changed = len(remote.changes("wydot", "BSM", 0))
    assert changed >= rows
    assert got == {"repr": repr(remote), "query": rows, "frame": rows, "changes": changed}


def test_cli_query_on_s3(
    local: Catalog,
    first: publish_mod.PublishSummary,
    fresh_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("wydot_bsm", "bsm", "per_day"):
        r = runner.invoke(app, ["query", CHECKS[name], "--catalog", URL, "--format", "json"])
        assert r.exit_code == 0, r.output
        want = json.loads(
            runner.invoke(
                app, ["query", CHECKS[name], "--catalog", str(local.paths.root), "-f", "json"]
            ).stdout
        )
        assert json.loads(r.stdout) == want
    r = runner.invoke(app, ["views", "--catalog", URL])
    assert r.exit_code == 0 and "wydot_tim_socrata" in r.output
    monkeypatch.setenv("CVCATALOG_HOME", URL)  # the environment may name the S3 catalog too
    r = runner.invoke(app, ["cache", "status"])
    assert r.exit_code == 0, r.output
    assert "4 partitions (4 complete)" in r.stdout and f"catalog {URL}" in r.stdout
    # and Catalog() with no path, as the CLI (it was a local directory named 's3:/...')
    home = Catalog()
    assert isinstance(home, RemoteCatalog) and repr(home) == f"Catalog({URL!r})"
    assert home.query("select count(*) as n from wydot_bsm").n[0] == local.query(
        "select count(*) as n from wydot_bsm"
    ).n[0]


def test_remote_refetches_a_republished_database(
    env: Any, local: Catalog, first: publish_mod.PublishSummary, fresh_home: Path
) -> None:
    url = f"s3://{PUB}/refetch"
    assert local.publish(url).ok
    view = "select data_file as sql from ducklake_list_files('cv', 'wydot_bsm') limit 1"
    remote = Catalog(url)
    before = remote.database
    assert "refetch/lake/" in remote.query_arrow(view).to_pylist()[0]["sql"]
    original = env.get_object(Bucket=PUB, Key="refetch/catalog.ducklake")["Body"].read()

    # a new database under the same URL (new ETag): the next reader fetches it
    env.copy_object(
        Bucket=PUB,
        Key="refetch/catalog.ducklake",
        CopySource={"Bucket": PUB, "Key": "catalogs/wydot/catalog.ducklake"},
    )
    again = Catalog(url)
    assert again.database != before and not before.exists()
    # its file records another prefix's data path: a reader reads the catalog's own prefix,
    # whatever the file says (the same catalog was published there: the same rows)
    assert f"{url}/lake/" in again.query_arrow(view).to_pylist()[0]["sql"]
    got = again.query("select count(*) as n from wydot_bsm")["n"][0]
    assert got == local.query("select count(*) as n from wydot_bsm")["n"][0]

    # a database that does not match its published SHA-256 is refused
    env.put_object(
        Bucket=PUB, Key="refetch/catalog.ducklake", Body=original, Metadata={"sha256": "0" * 64}
    )
    with pytest.raises(CatalogError, match="did not match its size/SHA-256"):
        Catalog(url).query("select 1")


def test_the_cache_of_catalogs_not_read_for_a_month_goes(
    first: publish_mod.PublishSummary, fresh_home: Path
) -> None:
    """Every published catalog read left its database in the user cache for good (a test
    suite's runs left 945, 2.7 GB). A read touches its copy; when a database is fetched, the
    copies of catalogs nobody read for STALE_DAYS go, the others stay."""
    home = fresh_home / "cvcatalog" / "remote"
    month = remote_mod.STALE_DAYS * 86400
    old, recent = home / "0123456789abcdef", home / "fedcba9876543210"
    for d, age in ((old, month + 3600), (recent, month - 3600)):
        d.mkdir(parents=True)
        (d / "catalog-0.ducklake").write_bytes(b"a copy")
        os.utime(d / "catalog-0.ducklake", (time.time() - age, time.time() - age))
    rows = Catalog(URL).query("select count(*) n from wydot_bsm").n[0]  # fetched
    assert rows > 0
    assert not old.exists() and recent.exists()
    [mine] = [d for d in home.iterdir() if d != recent]
    [copy] = mine.glob("catalog-*.ducklake")
    os.utime(copy, (time.time() - 2 * month, time.time() - 2 * month))
    assert Catalog(URL).query("select count(*) n from wydot_bsm").n[0] == rows  # read
    assert time.time() - copy.stat().st_mtime < 600  # touched: not stale
    shutil.rmtree(recent)
    assert remote_mod.sweep_stale(now=time.time() + month - 3600) == []
    assert remote_mod.sweep_stale(now=time.time() + month + 3600) == [mine]


def test_writes_to_a_remote_catalog_fail_clearly(first: publish_mod.PublishSummary) -> None:
    remote = Catalog(URL)
    for call in (
        lambda: remote.ingest("wydot", "BSM", "2021-04-01"),
        lambda: remote.clear(),
        lambda: remote.evict(1.0),
        lambda: remote.compact(),
    ):
        with pytest.raises(CatalogError, match="published catalog on S3 and is read-only"):
            call()
    with pytest.raises(CvCatalogError, match="read-only query"):
        remote.query("create table x as select 1")
    with pytest.raises(CatalogError, match=r"is a published catalog: shell_sql \(`cvcatalog shell`"):
        remote.shell_sql()  # (it said 'no catalog at <its cache directory>')
    for args in (
        ["ingest", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01"],
        ["cache", "clear", "--yes"],
        ["cache", "evict", "--max-size-gb", "1"],
        ["compact"],
    ):
        r = runner.invoke(app, [*args, "--catalog", URL])
        assert r.exit_code == 1, (args, r.output)
        assert "read-only" in r.output and "Traceback" not in r.output
        assert len(r.output.strip().splitlines()) == 1, r.output


def test_wrong_bucket_or_prefix(first: publish_mod.PublishSummary, fresh_home: Path) -> None:
    with pytest.raises(CatalogError, match="no published catalog at s3://cv-published/nope"):
        Catalog(f"s3://{PUB}/nope").query("select 1")
    r = runner.invoke(app, ["query", "select 1", "--catalog", "s3://no-such-bucket/x"])
    assert r.exit_code == 1 and "no published catalog at s3://no-such-bucket/x" in r.output
    assert len(r.output.strip().splitlines()) == 1, r.output
    r = runner.invoke(app, ["query", "select 1", "--catalog", "s3://"])
    assert r.exit_code == 1 and "valid S3 bucket" in r.output


def test_a_catalog_published_by_0_1_is_named_as_such(
    env: Any, first: publish_mod.PublishSummary, fresh_home: Path
) -> None:
    """cvcatalog 0.1 published catalog.duckdb: reading it said 'catalog.ducklake not found
    (wrong bucket or prefix, or not published yet)' though it was published."""
    env.put_object(Bucket=PUB, Key="catalogs/old/catalog.duckdb", Body=b"0.1's database")
    env.put_object(Bucket=PUB, Key="catalogs/old/publish.json", Body=b'{"format": 1}')
    url = f"s3://{PUB}/catalogs/old"
    r = runner.invoke(app, ["query", "select 1", "--catalog", url])
    assert r.exit_code == 1
    assert r.output == (
        f"error: {url} was published by cvcatalog 0.1 (catalog.duckdb), which this cvcatalog "
        f"does not read: its publisher publishes it again with this one (`cvcatalog migrate`, "
        f"then `cvcatalog publish --to {url}`)\n"
    )
    with pytest.raises(CatalogError, match=r"published by cvcatalog 0\.1"):
        Catalog(url).views()


def test_copy_to_a_file_from_a_published_catalog_says_how_to_save_a_result(
    first: publish_mod.PublishSummary, fresh_home: Path, tmp_path: Path
) -> None:
    """`query --read-write "COPY ... TO 'f.csv'"` (which --help offers) on a published
    catalog said 'Permission Error: Cannot access file ... disabled by configuration'."""
    out = tmp_path / "x.csv"
    r = runner.invoke(
        app, ["query", "--catalog", URL, "--read-write", f"COPY (select 1) TO '{out}'"]
    )
    assert r.exit_code == 1 and not out.exists()
    assert r.stderr.splitlines()[-1] + "\n" == (
        f"error: cannot access {out}: a published catalog's session reads only the files "
        f"under {URL}/ and writes none (for COPY ... TO: save a result with --output FILE; "
        "Python: the returned table)\n"
    )
    r = runner.invoke(app, ["query", "--catalog", URL, "--output", str(out), "select 1 as a"])
    assert r.exit_code == 0, r.output
    assert out.read_text().split() == ["a", "1"]


def test_location_parsing() -> None:
    assert S3Location.parse("s3://bkt/a/b/").url == "s3://bkt/a/b"
    assert S3Location.parse("s3://bkt").key("catalog.ducklake") == "catalog.ducklake"
    with pytest.raises(CvCatalogError):
        S3Location.parse("s3://bkt/../x")


def test_publish_reads_the_download_settings_of_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """publish made its settings from its arguments alone: CVCATALOG_DOWNLOAD__TIMEOUT_SECONDS
    could not shorten a wait on an endpoint that never answers (~20 minutes)."""
    cat = Catalog(tmp_path / "cat")
    cat.db.initialise()
    monkeypatch.setenv("CVCATALOG_DOWNLOAD__TIMEOUT_SECONDS", "-1")
    with pytest.raises(CvCatalogError, match="CVCATALOG_DOWNLOAD__TIMEOUT_SECONDS"):
        cat.publish("s3://some-bucket/prefix")
    seen: list[Any] = []

    def made(cfg: Any, **kw: Any) -> Any:
        seen.append(cfg)
        raise CatalogError("stop here")

    monkeypatch.setattr(publish_mod, "make_client", made)
    monkeypatch.setenv("CVCATALOG_DOWNLOAD__TIMEOUT_SECONDS", "2")
    monkeypatch.setenv("CVCATALOG_DOWNLOAD__RATE_LIMIT", "7")
    with pytest.raises(CatalogError, match="stop here"):
        cat.publish("s3://some-bucket/prefix")
    assert (seen[0].timeout_seconds, seen[0].rate_limit) == (2.0, 7.0)
    monkeypatch.delenv("CVCATALOG_DOWNLOAD__RATE_LIMIT")
    with pytest.raises(CatalogError, match="stop here"):
        cat.publish("s3://some-bucket/prefix", rate_limit=None)
    assert seen[1].rate_limit == publish_mod.DEFAULT_RATE_LIMIT  # publish's own default


@pytest.mark.parametrize(
    "command",
    [["views"], ["snapshots"], ["cache", "status"], ["runs"], ["experiments", "list"],
     ["trips"]],
    ids=lambda c: "-".join(c[:2]),
)  # fmt: skip
def test_every_reader_of_a_published_catalog_takes_its_s3_options(
    first: publish_mod.PublishSummary, fresh_home: Path, command: list[str]
) -> None:
    """views, snapshots, cache status, ... read `--catalog s3://...` but had no --profile or
    --no-sign-request (exit 2), while their credential errors told users to pass them."""
    r = CliRunner().invoke(app, [*command, "--catalog", URL, "--profile", "nosuchprofile"])
    assert r.exit_code == 1, r.output
    assert r.stderr.startswith("error: AWS profile 'nosuchprofile' not found"), r.stderr
    r = CliRunner().invoke(app, [*command, "--catalog", URL, "--no-sign-request"])
    assert r.exit_code == 1, r.output  # the sandbox's bucket is private: unsigned, refused
    assert r.stderr.startswith("error: S3 refused an anonymous (unsigned) request"), r.stderr
    r = CliRunner().invoke(app, [*command, "--catalog", URL])
    assert r.exit_code == 0, r.output


def test_the_summary_names_the_snapshots_whose_files_are_gone() -> None:
    """Files only older snapshots show, gone from the catalog, are named with those snapshots;
    gone delete files show in no snapshot of their own (the span was read from an empty list)."""
    s = publish_mod.PublishSummary("s3://b/p")
    assert s.gone_line() == "" and s.summary().endswith("s")
    s.gone, s.gone_snapshots = ["lake/a.parquet", "lake/b.parquet"], [4, 3, 4]
    assert s.gone_line().startswith("; 2 file(s) only older snapshots 3..4 show are gone")
    s.gone_snapshots = []
    assert s.gone_line().startswith("; 2 file(s) only older snapshots show are gone")
    assert s.as_dict()["gone"] == 2 and s.summary().endswith("in the published catalog too")
