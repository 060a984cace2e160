"""Every error cvcatalog raises on purpose (the CLI turns these into one line and exit code 1),
and the warnings its API gives (Python's `warnings`: shown once, filterable by class)."""

from __future__ import annotations

import os
import sys
import warnings


class CvCatalogError(Exception):
    """Base class: a problem the user can act on, with a message meant for them."""

    #: the report (pipeline.report.Summary) of the ingest run this error ended after some of
    #: its units, so a caller can show what was committed before it (the CLI prints it first)
    run_summary: object | None = None


class ConfigError(CvCatalogError):
    """A configuration file, flag or environment variable is invalid."""


class CredentialsError(CvCatalogError):
    """S3 refused us (AccessDenied) or no credentials could be found."""


class S3Error(CvCatalogError):
    """An S3 request failed after all retries."""


class S3UnavailableError(S3Error):
    """S3 cannot serve the run at all: every other request would fail the same way, so a run
    stops at the first one instead of failing each of its days."""


class EndpointUnreachableError(S3UnavailableError):
    """No connection to the S3 endpoint could be made at all (refused, unknown host, connect
    timeout)."""


class NoSuchBucketError(S3UnavailableError):
    """The bucket does not exist at the endpoint (another endpoint meant, a sandbox not seeded)."""


class IntegrityError(CvCatalogError):
    """A downloaded object does not match its listed size or ETag."""


class ConversionError(CvCatalogError):
    """A downloaded object could not be converted at all (not one bad line: those are quarantined)."""


class CatalogLockedError(CvCatalogError):
    """The catalog database or a partition stayed locked beyond the configured timeout."""


class CatalogError(CvCatalogError):
    """The catalog directory or database is unusable (permissions, corruption, version)."""


class QueryError(CvCatalogError):
    """A user query failed (syntax, unknown view, attempted write in read-only mode)."""


class DistributedError(CvCatalogError):
    """A Dask scheduler cannot be reached or used, or its workers cannot see the catalog's files."""


class ClusterLostError(DistributedError):
    """The Dask cluster of a distributed ingest went away mid-run (its scheduler lost, or no
    worker left for a while): every day still to convert would fail the same way."""


class SandboxError(CvCatalogError):
    """The local S3 sandbox could not be started, reached or seeded."""


def credentials_help(detail: str, *, anonymous: bool = False) -> str:
    """One-line advice on configuring AWS credentials, used wherever S3 says no (anonymous:
    the request was unsigned already, so --no-sign-request is not the way out)."""
    how = "AWS credentials (aws configure, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or --profile NAME)"
    if anonymous:
        return (
            f"{detail}. The bucket does not allow anonymous access: configure {how} and drop "
            "--no-sign-request"
        )
    return f"{detail}. Configure {how}, or try --no-sign-request for anonymous access"


class TransientFetchError(CvCatalogError):
    """A fetch failed in a way another attempt may fix (network, 5xx, throttling).
    retry_after: the server's Retry-After in seconds, which the retry policy waits at least."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InputChangedError(CvCatalogError):
    """An input changed while it was being read: its units no longer fit together."""


class CvCatalogWarning(UserWarning):
    """Base class of cvcatalog's warnings: something a user of the API should know of (the
    result may not be what they think), which is no error."""


class MissingDataWarning(CvCatalogWarning):
    """A read asked for days the catalog does not hold (never ingested, or their ingest
    failed): the result has no rows of them. Days the source has no data for (`no_data`) are
    not missing."""


#: the package's directory: a frame whose file is under it is cvcatalog's, not the user's
_PACKAGE = os.path.dirname(__file__) + os.sep


def warn(message: str, category: type[CvCatalogWarning]) -> None:
    """warnings.warn pointing at the first line outside cvcatalog: the user's call, however
    many of cvcatalog's own calls lie between it and here (a split's read of to_dask, an
    experiment's), where a fixed stacklevel named cvcatalog's file in those."""
    level, caller = 2, sys._getframe(1)  # 2: warn's caller
    while caller.f_code.co_filename.startswith(_PACKAGE) and caller.f_back is not None:
        level, caller = level + 1, caller.f_back
    warnings.warn(message, category, stacklevel=level)
