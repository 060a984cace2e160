"""An S3 endpoint that is not there: every command says so in one line and exits 1.

The endpoint is a real closed port on 127.0.0.1 (bound, then closed), so the errors are the
ones boto3, urllib3 and DuckDB's httpfs really raise.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import duckdb
import pytest
import urllib3.exceptions
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError
from clilines import one_line, point_s3_at
from typer.testing import CliRunner

from cvcatalog.catalog import Catalog
from cvcatalog.cli.main import app
from cvcatalog.exceptions import ConfigError, EndpointUnreachableError, S3Error
from cvcatalog.io.duckdb_ext import s3_connection
from cvcatalog.io.s3 import ErrorKind, as_s3_error, classify_error, translate_error

runner = CliRunner()


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def nowhere(monkeypatch: pytest.MonkeyPatch) -> str:
    """AWS_ENDPOINT_URL_S3 pointing at a port nothing listens on; retries without waits."""
    endpoint = f"http://127.0.0.1:{closed_port()}"
    point_s3_at(monkeypatch, endpoint)
    return endpoint


def expected_line(endpoint: str, attempts: int = 4) -> str:
    return (
        f"error: cannot reach the S3 endpoint {endpoint}/ (connection refused after {attempts} "
        "attempts); is it running? (AWS_ENDPOINT_URL_S3 points there)"
    )


def test_sandbox_seed(nowhere: str) -> None:
    assert one_line("sandbox", "seed", "--start", "2021-04-01") == expected_line(nowhere)


def test_ingest_stops_at_the_first_day(nowhere: str, catalog_dir: Path) -> None:
    line = one_line(
        "ingest", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01",
        "--end", "2021-04-07", "--catalog", str(catalog_dir), "--no-progress",
    )  # fmt: skip
    assert line == expected_line(nowhere)


def test_discover_and_plan(nowhere: str, catalog_dir: Path) -> None:
    cat = str(catalog_dir)
    assert one_line("discover", "--source", "wydot", "--catalog", cat) == expected_line(nowhere)
    line = one_line(
        "plan", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01", "--catalog", cat
    )
    assert line == expected_line(nowhere)


def test_published_catalog_and_sandbox_upload(nowhere: str, tmp_path: Path) -> None:
    line = one_line("query", "--catalog", "s3://published/cat", "select 1")
    assert line == expected_line(nowhere)
    r = runner.invoke(
        app,
        [
            "sandbox",
            "ngsim",
            "--out",
            str(tmp_path / "n.csv"),
            "--rows",
            "50",
            "--to",
            "s3://b0/n.csv",
        ],
    )
    assert r.exit_code == 1 and r.stdout.startswith("wrote ")  # the file, then no upload
    assert r.stderr.strip() == expected_line(nowhere)


def test_ngsim_input_on_s3_names_the_endpoint(nowhere: str, catalog_dir: Path) -> None:
    """The run stops in its plan (the input's HEAD): that error is the whole report."""
    line = one_line(
        "ingest", "--source", "ngsim", "--path", "s3://b0/t.csv", "--no-progress",
        "--catalog", str(catalog_dir),
    )  # fmt: skip
    assert line.startswith("error: HeadObject s3://b0/t.csv: ")
    assert f"cannot reach the S3 endpoint {nowhere}/ (connection refused" in line
    # after the one retry policy's attempts, as a CV listing (it gave up at the first)
    assert line.endswith("(after 4 attempts)"), line


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01",
         "--end", "2021-04-02"],
        ["ingest", "--source", "ngsim", "--path", "s3://b0/t.csv"],
        ["export", "--catalog", "s3://published/cat", "--source", "wydot", "--type", "BSM",
         "--output", "x.parquet"],
    ],
)  # fmt: skip
def test_with_progress_bars_the_error_line_is_all_stderr_shows(
    nowhere: str, catalog_dir: Path, tmp_path: Path, args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bars on (the default), stderr not a terminal: no frame of them, not even the last,
    before the error line (they printed "listing 0/2 days", "converting 0/2 days", ...)."""
    monkeypatch.chdir(tmp_path)
    if "--catalog" not in args:
        args = [*args, "--catalog", str(catalog_dir)]
    r = runner.invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 1, r.output
    assert r.stdout == ""
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert f"cannot reach the S3 endpoint {nowhere}/" in r.stderr


def test_httpfs_could_not_connect(nowhere: str) -> None:
    """DuckDB reading s3:// (a lake on S3, a published catalog's Parquet) from a dead endpoint."""
    con = s3_connection(duckdb.connect())
    with pytest.raises(duckdb.IOException) as raised:
        con.sql("select * from read_parquet('s3://lake/x.parquet')").fetchall()
    err = as_s3_error(raised.value)
    assert isinstance(err, EndpointUnreachableError)
    assert str(err).startswith(f"cannot reach the S3 endpoint {nowhere}/ (")
    assert str(err).endswith("is it running? (AWS_ENDPOINT_URL_S3 points there)")
    assert as_s3_error(duckdb.CatalogException("Table with name x does not exist!")) is None


def test_sandbox_serve_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "moto", None)  # `import moto` raises ImportError
    line = one_line("sandbox", "serve", "--port", str(closed_port()))
    assert "pip install 'cvcatalog[sandbox]'" in line  # not eaten as Rich markup


# -- the classification behind the line ---------------------------------------------------------


def test_refused_unknown_host_and_aws() -> None:
    refused = EndpointConnectionError(
        endpoint_url="http://127.0.0.1:9/bucket?list-type=2",
        error=urllib3.exceptions.NewConnectionError(
            None, "Failed to establish a new connection: [Errno 111] Connection refused"
        ),
    )
    info = classify_error(refused)
    assert info is not None and info.kind is ErrorKind.RETRYABLE and info.unreachable
    err = translate_error(refused, "ListObjectsV2", "s3://bucket/", attempts=4)
    assert isinstance(err, EndpointUnreachableError)
    assert str(err) == (
        "cannot reach the S3 endpoint http://127.0.0.1:9/ (connection refused after 4 attempts); "
        "is it running?"
    )
    unknown = EndpointConnectionError(
        endpoint_url="https://bucket.s3.amazonaws.com/k",
        error=socket.gaierror(-2, "Name or service not known"),
    )
    assert str(translate_error(unknown, "GetObject", "k")) == (
        "cannot reach the S3 endpoint https://bucket.s3.amazonaws.com/ (host name not found); "
        "check the network connection (and any proxy settings)"
    )


def test_a_dropped_connection_fails_the_request_not_the_endpoint() -> None:
    """A reset or a timeout after connecting is about one request: retried, then that day
    fails (the fault matrix relies on it), in a plain line naming the endpoint."""
    closed = ConnectionClosedError(endpoint_url="http://127.0.0.1:9/bucket/key")
    err = translate_error(closed, "GetObject", "key", attempts=4)
    assert type(err) is S3Error
    assert str(err) == (
        "GetObject key: the S3 endpoint http://127.0.0.1:9/ closed the connection before "
        "answering (ConnectionClosedError) after 4 attempts"
    )
    slow = ReadTimeoutError(endpoint_url="http://127.0.0.1:9/bucket/key")
    info = classify_error(slow)
    assert info is not None and not info.unreachable and "timeout" in info.reason.lower()


def test_a_published_catalogs_reader_takes_the_download_settings_of_the_environment(
    nowhere: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CVCATALOG_DOWNLOAD__* applies to every S3 reader, a published catalog's too (it took the
    defaults: 1 s between retries)."""
    monkeypatch.setenv("CVCATALOG_DOWNLOAD__RETRY_ATTEMPTS", "1")
    cat = Catalog("s3://published/cat", profile=None)
    assert (cat.s3_config.retry_delay_seconds, cat.s3_config.retry_attempts) == (0, 1)
    assert one_line("query", "--catalog", "s3://published/cat", "select 1") == (
        expected_line(nowhere, attempts=2)
    )
    monkeypatch.setenv("CVCATALOG_DOWNLOAD__RETRY_ATTEMPTS", "many")
    with pytest.raises(ConfigError, match="retry_attempts"):
        Catalog("s3://published/cat")
