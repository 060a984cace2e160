"""Security: S3 keys are data, SQL cannot modify the catalog, credentials never leak,
config files are safe YAML with known keys only."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from cvcatalog.catalog import Catalog
from cvcatalog.cli.main import app
from cvcatalog.config import DataSourceConfig, load_yaml
from cvcatalog.exceptions import ConfigError, QueryError
from cvcatalog.io.download import ObjectInfo
from cvcatalog.ops import cache
from cvcatalog.sandbox.replica import seed_replica
from cvcatalog.sources.bucket import BUCKET
from cvcatalog.sources.cvpilot import raw_name as _raw_name
from cvcatalog.sqlutil import quote_ident
from cvcatalog.state import manifest

D1 = date(2021, 4, 1)
PREFIX = "wydot/BSM/2021/04/01/"
runner = CliRunner()


def cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False, env=env)


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _ingest(cat: Catalog) -> Any:
    return cat.ingest("wydot", "BSM", D1, D1, timezone="UTC", rate_limit=0, max_workers=4)


@pytest.fixture(scope="module")
def ingested(module_s3: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Catalog, Any]:
    """One day ingested once for the module: each test using it checks that what it tries
    leaves the catalog as it found it (digest before and after)."""
    report = seed_replica(module_s3, D1, D1, records_per_hour=10, files_per_hour=1)
    cat = Catalog(tmp_path_factory.mktemp("ingested") / "catalog")
    assert _ingest(cat).ok
    return cat, report


# -- S3 keys are data ---------------------------------------------------------------------------
def hostile_keys(tag: str) -> list[str]:
    return [
        f"{PREFIX}00/../../../../../../../../../../tmp/cvcatalog-escape-{tag}.json",
        f"{PREFIX}../../../../escape-{tag}.json",
        f"{PREFIX}/etc/cvcatalog-{tag}",  # "absolute" after the prefix
        f"{PREFIX}00/Ünïcødé-🚗-日本-{tag}.json",
        f"{PREFIX}00/new\nline\rcarriage-{tag}.json",
        f'{PREFIX}00/it\'s "quoted"; DROP TABLE partitions; --{tag}.json',
        f"{PREFIX}00/{'x' * 900}-{tag}.json",
        f"{PREFIX}00/con\\back\\slash %2e%2e%2f {tag}.json",
    ]


def test_local_names_never_derive_from_keys() -> None:
    for i, key in enumerate([*hostile_keys("t"), "/etc/passwd", "..", "../.."]):
        name = _raw_name(ObjectInfo(key, 1, "e", None), i)  # type: ignore[arg-type]
        assert re.fullmatch(r"\d{6}-[0-9a-f]{16}\.json", name), name


def test_hostile_keys_are_ingested_as_data_inside_the_catalog(
    s3_client: Any, catalog_dir: Path, tmp_path: Path
) -> None:
    report = seed_replica(s3_client, D1, D1, records_per_hour=10, files_per_hour=1)
    sample_key = next(
        o["Key"] for o in s3_client.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)["Contents"]
    )
    body = s3_client.get_object(Bucket=BUCKET, Key=sample_key)["Body"].read()
    per_copy = sum(1 for line in body.splitlines() if line.strip())
    tag = uuid.uuid4().hex[:8]
    keys = hostile_keys(tag)
    for k in keys:
        try:
            s3_client.put_object(Bucket=BUCKET, Key=k, Body=body)
        except ClientError:
            assert "\n" in k  # moto's server cannot store a key with a newline (S3 can)
    stored = {o["Key"] for o in s3_client.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)["Contents"]}
    keys = [k for k in keys if k in stored]  # kept verbatim, dot segments and all
    assert len(keys) == len(hostile_keys(tag)) - 1, sorted(stored - {sample_key})

    before = {p for p in tmp_path.parent.rglob("*") if "escape" in p.name or tag in p.name}
    cat = Catalog(catalog_dir)
    s = _ingest(cat)
    assert s.ok, s.as_dict()
    # lineage keeps the keys verbatim; they never became paths
    lineage = set(cat.query("select key from source_objects").key)
    assert set(keys) <= lineage
    got = cat.query(
        "select source_key, count(*) as n from wydot_bsm where list_contains(?, source_key) "
        "group by 1",
        [keys],
    )
    assert dict(zip(got.source_key, got.n, strict=True)) == {k: per_copy for k in keys}
    assert s.rows == report.records + per_copy * len(keys)
    # nothing was written outside the catalog: no escape file anywhere we could reach
    after = {p for p in tmp_path.parent.rglob("*") if "escape" in p.name or tag in p.name}
    assert after == before
    assert not Path(f"/tmp/cvcatalog-escape-{tag}.json").exists()
    assert not Path(f"/etc/cvcatalog-{tag}").exists()
    root = catalog_dir.resolve()
    for p in root.rglob("*"):
        assert p.resolve().is_relative_to(root)
        assert tag not in p.name and "\n" not in p.name
    assert cat.verify().clean


# -- SQL cannot modify the catalog ------------------------------------------------------------
WRITES = [
    "insert into partitions (partition_key) values ('x')",
    "delete from partitions",
    "update partitions set rows = 0",
    "drop view wydot_bsm",
    "create table mine as select 1",
    "copy (select 1) to '{out}'",
    "attach '{db}' as rw",
    "detach catalog",
    "install httpfs",
    "set threads = 1",
    "select 1; drop table partitions",
    "export database '{dir}'",
    # EXPLAIN ANALYZE runs the statement it explains: it wrote files, loaded and installed
    "explain analyze copy (select 1) to '{out}'",
    "EXPLAIN (ANALYZE, FORMAT json) copy (select 1) to '{out}'",
    "explain analyze install httpfs",
    "explain analyze set threads = 1",
]


def test_default_query_cannot_modify_the_catalog(
    ingested: tuple[Catalog, Any], tmp_path: Path
) -> None:
    cat, _ = ingested
    before = _digest(cat.database)
    out = tmp_path / "out.csv"
    for sql in WRITES:
        stmt = sql.format(out=out, db=cat.database, dir=tmp_path / "exp")
        r = cli("query", stmt, "--catalog", str(cat.paths.root))
        assert r.exit_code == 1, stmt
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
        assert "Traceback" not in r.output
        assert "not allowed" in lines[0], lines[0]
        if stmt.startswith("install"):  # named as written (DuckDB types it LOAD)
            assert "INSTALL statements are not allowed" in lines[0], lines[0]
        with pytest.raises(QueryError, match="not allowed"):
            cat.query(stmt)
    assert _digest(cat.database) == before
    assert not out.exists() and not (tmp_path / "exp").exists()
    assert (
        cli("query", "select count(*) from wydot_bsm", "--catalog", str(cat.paths.root)).exit_code
        == 0
    )


def test_read_write_mode_works_in_a_scratch_session_only(
    ingested: tuple[Catalog, Any], tmp_path: Path
) -> None:
    cat, report = ingested
    root = str(cat.paths.root)
    before = _digest(cat.database)
    out = tmp_path / "export.csv"
    ok = cli(
        "query",
        "create temp table t as select count(*) as n from wydot_bsm; "
        f"copy t to '{out}' (header false); select n from t",
        "--read-write",
        "--catalog",
        root,
        "--format",
        "csv",
    )
    assert ok.exit_code == 0, ok.output
    assert out.read_text().strip() == str(report.records)
    # a statement with no result prints nothing (a blank line) but JSON's empty list
    for fmt, printed in (("table", ""), ("csv", ""), ("json", "[]\n")):
        r = cli("query", f"copy (select 1) to '{tmp_path / 'one.csv'}'", "--read-write",
                "--catalog", root, "--format", fmt)  # fmt: skip
        assert r.exit_code == 0 and r.stdout == printed, (fmt, r.output)
    for sql in [
        "insert into partitions (partition_key) values ('x')",
        "drop view wydot_bsm",
        "delete from partition_files",
        "create table catalog.main.x as select 1",
        f"attach '{cat.database}' as again",
        "detach catalog",
        f"copy (select 1) to '{cat.paths.root}/lake/evil.parquet'",
        f"COPY (SELECT 1) TO $${cat.paths.root}/evil.csv$$",
        f"copy (select 1) to '{cat.paths.root}/../{cat.paths.root.name}/evil.csv'",
        f"explain analyze copy (select 1) to '{cat.paths.root}/lake/evil.parquet'",
        "explain analyze load spatial",
    ]:
        r = cli("query", sql, "--read-write", "--catalog", root)
        assert r.exit_code == 1, sql
        assert r.stderr.startswith("error:") and r.stderr.count("\n") == 1, r.stderr
    assert _digest(cat.database) == before
    assert not list(cat.paths.root.rglob("evil*"))
    assert cat.verify().clean


def test_filter_values_are_parameters_and_identifiers_are_quoted(
    ingested: tuple[Catalog, Any],
) -> None:
    cat, _ = ingested
    root = str(cat.paths.root)
    evil = "wydot' OR '1'='1"
    drop = "x'; DROP TABLE partitions; --"
    # an unknown source is refused before any SQL, in one line
    for args in (["cache", "status", "--source", evil, "--format", "json"],
                 ["cache", "clear", "--source", drop, "-y"],
                 ["report", "validation", "--source", evil, "--format", "json"]):  # fmt: skip
        r = cli(*args, "--catalog", root)
        assert r.exit_code == 1 and r.stderr.startswith("error: unknown source"), r.output
    # and below that check the values are still parameters
    assert cache.status(cat.db, evil) == []
    assert cache.clear(cat.db, drop) == (0, 0)
    with cat.db.read() as con:
        assert manifest.validation_report(con, None, evil) == []
    assert len(cat.status()) == 1
    assert quote_ident('we"ird') == '"we""ird"'
    con = duckdb.connect()
    assert con.execute(f"select 1 as {quote_ident('a; drop table x; --')}").fetchone() == (1,)


# -- credentials --------------------------------------------------------------------------------
def test_credentials_never_appear_in_output_files_or_the_catalog(
    s3_endpoint: str, s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_replica(s3_client, D1, D1, records_per_hour=10, files_per_hour=1, malformed_per_day=1)
    secret = "SeCrEt" + uuid.uuid4().hex
    token = "ToKeN" + uuid.uuid4().hex
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    root = str(catalog_dir)
    base = ["ingest", "--source", "wydot", "--type", "BSM", "--catalog", root, "--no-progress"]
    outputs = []
    ok = cli(*base, "--start", "2021-04-01", "--rate-limit", "0")
    assert ok.exit_code == 0, ok.output
    outputs.append(ok.output)
    # failing runs: an endpoint that refuses connections, an unknown profile, a missing day
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    monkeypatch.setenv("CVCATALOG_DOWNLOAD__RETRY_ATTEMPTS", "0")
    bad = cli(*base, "--start", "2021-04-02", "--rate-limit", "0")
    assert bad.exit_code == 1
    outputs.append(bad.output)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    prof = cli(*base, "--start", "2021-04-03", "--profile", "no-such-profile")
    assert prof.exit_code == 1 and "Traceback" not in prof.output
    outputs.append(prof.output)
    for text in outputs:
        assert secret not in text and token not in text
    for p in catalog_dir.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            assert secret.encode() not in data and token.encode() not in data, p
    cat = Catalog(catalog_dir)
    runs = cat.query("select * from ingest_runs")
    assert len(runs) >= 2
    flat = runs.astype(str).to_csv()
    assert secret not in flat and token not in flat


# -- configuration --------------------------------------------------------------------------------
def test_yaml_tags_are_rejected(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    cfg = tmp_path / "evil.yml"
    cfg.write_text(
        f'source: !!python/object/apply:os.system ["touch {marker}"]\n'
        "message_type: BSM\ndate_range: {start_date: 2021-04-01}\n"
    )
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(cfg)
    r = cli("ingest", "--config", str(cfg), "--catalog", str(tmp_path / "c"))
    assert r.exit_code == 1 and "not valid YAML" in r.stderr and "Traceback" not in r.output
    assert not marker.exists()


def test_unknown_config_keys_are_rejected(tmp_path: Path) -> None:
    cfg = tmp_path / "typo.yml"
    cfg.write_text(
        "source: wydot\nmessage_type: BSM\ndate_range: {start_date: 2021-04-01}\n"
        "cache: {max_size_gb: 1, directroy: /tmp/x}\n"
    )
    with pytest.raises(ConfigError, match=r"cache\.directroy"):
        DataSourceConfig.from_yaml(cfg)
    r = cli("ingest", "--config", str(cfg), "--catalog", str(tmp_path / "c"))
    assert r.exit_code == 1 and "directroy" in r.stderr
