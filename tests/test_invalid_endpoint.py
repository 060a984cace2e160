"""An S3 endpoint URL that cannot be used at all (a port out of range, no scheme): every command
says so in one line and exits 1, and an ingest stops at once instead of failing each day.

botocore rejects such a URL in two places: a client cannot be made with "notaurl" (ValueError),
while "http://127.0.0.1:99999" makes a client whose every request fails to resolve its endpoint
(EndpointResolutionError). Both reach the user through the one S3 stack (make_client,
classify_error) as the same ConfigError line.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import EndpointResolutionError
from clilines import one_line, point_s3_at
from typer.testing import CliRunner

from cvcatalog.catalog import Catalog
from cvcatalog.cli.main import app
from cvcatalog.config import DownloadConfig
from cvcatalog.exceptions import ConfigError
from cvcatalog.io.duckdb_ext import s3_settings
from cvcatalog.io.s3 import (
    ErrorKind,
    Retrier,
    as_s3_error,
    classify_error,
    is_transient,
    make_client,
    translate_error,
)
from cvcatalog.sources.bucket import BUCKET

runner = CliRunner()

OUT_OF_RANGE = "http://127.0.0.1:99999"
#: each bad endpoint and the line every command gives for it
BAD = {
    OUT_OF_RANGE: (
        f"error: the S3 endpoint '{OUT_OF_RANGE}' (AWS_ENDPOINT_URL_S3) is not a valid URL: "
        "port out of range 0-65535"
    ),
    "notaurl": (
        "error: the S3 endpoint 'notaurl' (AWS_ENDPOINT_URL_S3) is not a valid URL: "
        "expected http://host[:port] or https://host[:port]"
    ),
}


@pytest.fixture(params=sorted(BAD))
def bad_endpoint(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    point_s3_at(monkeypatch, str(request.param))
    return str(request.param)


def test_sandbox_seed(bad_endpoint: str) -> None:
    assert one_line("sandbox", "seed", "--start", "2021-04-01") == BAD[bad_endpoint]


def test_sandbox_upload(bad_endpoint: str, tmp_path: Path) -> None:
    """The destination is checked before the file is written: nothing is."""
    r = runner.invoke(
        app, ["sandbox", "ngsim", "--out", str(tmp_path / "n.csv"), "--rows", "50",
              "--to", "s3://b0/n.csv"],
    )  # fmt: skip
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.strip() == BAD[bad_endpoint]
    assert list(tmp_path.iterdir()) == []


def test_discover_plan_and_query(bad_endpoint: str, catalog_dir: Path) -> None:
    cat = str(catalog_dir)
    assert one_line("discover", "--source", "wydot", "--catalog", cat) == BAD[bad_endpoint]
    line = one_line(
        "plan", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01", "--catalog", cat
    )
    assert line == BAD[bad_endpoint]
    assert one_line("query", "--catalog", "s3://published/cat", "select 1") == BAD[bad_endpoint]


@pytest.mark.parametrize(
    "days",
    [("2021-04-01", "2021-04-03"), ("2021-03-01", "2021-04-30")],  # days; months listed in the plan
    ids=["days", "months"],
)
def test_ingest_stops_with_one_line_and_fails_no_day(
    bad_endpoint: str, catalog_dir: Path, days: tuple[str, str]
) -> None:
    """A client that cannot be made (or a request that cannot be addressed) is a mistake of the
    whole run: one `error:` line, no summary with a failure per day, no day recorded failed."""
    line = one_line(
        "ingest", "--source", "wydot", "--type", "BSM", "--start", days[0], "--end", days[1],
        "--catalog", str(catalog_dir), "--no-progress",
    )  # fmt: skip
    assert line == BAD[bad_endpoint]
    assert Catalog(catalog_dir).query("select count(*) as n from partitions").n[0] == 0


def test_ingest_with_progress_prints_no_failed_day(bad_endpoint: str, catalog_dir: Path) -> None:
    r = runner.invoke(
        app,
        ["ingest", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01", "--end",
         "2021-04-02", "--catalog", str(catalog_dir)],
        catch_exceptions=False,
    )  # fmt: skip
    assert r.exit_code == 1
    assert "failed " not in r.output and "unexpected" not in r.output
    assert r.stdout == ""  # no summary
    assert r.stderr.strip().splitlines()[-1] == BAD[bad_endpoint]


def test_ngsim_input_on_s3(bad_endpoint: str, catalog_dir: Path) -> None:
    line = one_line(
        "ingest", "--source", "ngsim", "--path", "s3://b0/t.csv", "--no-progress",
        "--catalog", str(catalog_dir),
    )  # fmt: skip
    assert line == BAD[bad_endpoint]


# -- the classification behind the line ---------------------------------------------------------


def test_an_endpoint_botocore_cannot_resolve_is_a_config_error_not_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real botocore path: the client is made, its request fails before any connection."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", OUT_OF_RANGE)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "sandbox")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sandbox")
    client = make_client(DownloadConfig())
    sleeps: list[float] = []
    retrier = Retrier(attempts=4, base_delay=1.0, sleep=sleeps.append)
    with pytest.raises(ConfigError) as raised:
        retrier.call("ListObjectsV2", "wydot/", lambda: client.list_objects_v2(Bucket=BUCKET))
    assert str(raised.value) == BAD[OUT_OF_RANGE].removeprefix("error: ")
    assert sleeps == []  # not retried: every attempt would fail the same way
    assert isinstance(raised.value.__cause__, EndpointResolutionError)


def test_endpoint_resolution_errors_are_classified() -> None:
    exc = EndpointResolutionError(msg="Custom endpoint `http://h:70000` was not a valid URI")
    info = classify_error(exc)
    assert info is not None and info.kind is ErrorKind.FATAL and info.config
    assert not is_transient(exc)
    err = translate_error(exc, "GetObject", "s3://b/k")
    assert isinstance(err, ConfigError)
    assert (
        str(err) == "the S3 endpoint 'http://h:70000' is not a valid URL: port out of range 0-65535"
    )
    assert as_s3_error(exc) is not None and str(as_s3_error(exc)) == str(err)
    # another request S3's endpoint rules refuse (a region, a bucket ARN): names the request
    other = EndpointResolutionError(msg="Invalid region: region was not a valid DNS name.")
    err = translate_error(other, "GetObject", "s3://b/k")
    assert isinstance(err, ConfigError)
    assert str(err).startswith("GetObject s3://b/k: S3 cannot be addressed as configured: ")
    assert "Invalid region" in str(err)


def test_a_client_that_cannot_be_made_says_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with pytest.raises(ConfigError) as raised:
        make_client(DownloadConfig(endpoint_url="notaurl"))
    assert str(raised.value) == (  # no variable named: the configuration set it
        "the S3 endpoint 'notaurl' is not a valid URL: "
        "expected http://host[:port] or https://host[:port]"
    )


def test_duckdb_s3_settings_refuse_a_port_out_of_range() -> None:
    with pytest.raises(ConfigError, match="port out of range"):
        s3_settings(OUT_OF_RANGE, None)
    assert s3_settings("http://127.0.0.1:5055", None).endpoint == "127.0.0.1:5055"


@pytest.fixture
def silent_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A port that accepts connections and never answers (the wrong service on it, a hung
    proxy): every request waits until its read timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    point_s3_at(monkeypatch, url)
    monkeypatch.setenv("CVCATALOG_DOWNLOAD__TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("CVCATALOG_DOWNLOAD__RETRY_DELAY_SECONDS", "0")
    try:
        yield url
    finally:
        stop.set()
        thread.join()
        for s in [*held, server]:
            s.close()


def test_an_endpoint_that_answers_nothing_stops_the_ingest_once(
    silent_endpoint: str, catalog_dir: Path
) -> None:
    """Each day's listing waited out its read timeout and retries, then failed alone: ~20
    minutes a day at the defaults, with nothing printed. The first listing that goes
    unanswered every time stops the run in one line; no day is recorded failed."""
    line = one_line(
        "ingest", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01",
        "--end", "2021-04-03", "--catalog", str(catalog_dir), "--no-progress",
    )  # fmt: skip
    assert line.startswith("error: ListObjectsV2 s3://") and silent_endpoint in line
    assert line.endswith(
        "did not answer in time (ReadTimeoutError) after 4 attempts: it accepts connections "
        "but answers no request (the wrong endpoint or port? download.timeout_seconds bounds "
        "each wait)"
    )
    assert not Catalog(catalog_dir).db.exists() or Catalog(catalog_dir).query(
        "select count(*) as n from partitions"
    ).n[0] == 0
