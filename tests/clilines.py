"""What a failing command prints, for the tests of one-line errors (test_unreachable,
test_invalid_endpoint)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cvcatalog.cli.main import app

runner = CliRunner()


def one_line(*args: str) -> str:
    """Run the command; it must fail with exit code 1 and one plain line (no traceback, no
    "unexpected"), which is returned."""
    r = runner.invoke(app, list(args), catch_exceptions=False)
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1, r.output
    assert "unexpected" not in r.output and "Traceback" not in r.output
    return lines[0]


def point_s3_at(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """AWS_ENDPOINT_URL_S3 set to endpoint with sandbox credentials, retries without waits,
    nothing else of the caller's environment in the way."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "sandbox")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sandbox")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("CVCATALOG_DOWNLOAD__RETRY_DELAY_SECONDS", "0")
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "CVCATALOG_STORAGE", "CVCATALOG_DEBUG"):
        monkeypatch.delenv(name, raising=False)
