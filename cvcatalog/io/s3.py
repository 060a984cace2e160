"""S3 access: client factory, error translation, a shared rate limiter and retries.

botocore's own retries are switched off so that every attempt goes through one place: the
token bucket (so a configured request rate holds across threads), one classification of errors
(credentials fail at once, transient ones back off, the rest fail with a clear message) and
one backoff policy that honours the server's Retry-After.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import http.client
import logging
import os
import random
import re
import socket
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import botocore.exceptions as bce
import duckdb
import urllib3.exceptions

from cvcatalog.config import DownloadConfig
from cvcatalog.exceptions import (
    ConfigError,
    CredentialsError,
    CvCatalogError,
    EndpointUnreachableError,
    NoSuchBucketError,
    S3Error,
    S3UnavailableError,
    TransientFetchError,
    credentials_help,
)
from cvcatalog.io.duckdb_ext import DEFAULT_REGION, invalid_endpoint_message
from cvcatalog.io.duckdb_ext import endpoint_url as configured_endpoint

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Upper bound of one exponential backoff step.
BACKOFF_CAP_SECONDS = 30.0
#: A Retry-After beyond this is treated as this (a bogus header must not hang a run for days).
MAX_RETRY_AFTER_SECONDS = 600.0
#: Connecting should never take as long as reading a large body may.
MAX_CONNECT_TIMEOUT_SECONDS = 60.0

#: Error codes that mean "who you are is not allowed" -- retrying cannot help.
CREDENTIAL_CODES = frozenset(
    {
        "AccessDenied",
        "Forbidden",
        "403",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidToken",
        "TokenRefreshRequired",
        "AllAccessDisabled",
        "AccountProblem",
    }
)
#: Error codes that mean "slow down".
THROTTLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequests",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
    }
)
#: Other error codes worth another try.
TRANSIENT_CODES = frozenset(
    {"RequestTimeout", "RequestTimeoutException", "InternalError", "ServiceUnavailable", "503"}
)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
THROTTLE_STATUSES = frozenset({429, 503})

#: Exceptions raised by the credential chain itself (before any request is sent).
CREDENTIAL_EXCEPTIONS: tuple[type[BaseException], ...] = (
    bce.NoCredentialsError,
    bce.PartialCredentialsError,
    bce.CredentialRetrievalError,
    bce.NoAuthTokenError,
    bce.TokenRetrievalError,
    bce.SSOError,
)
#: Network-level failures: the request may never have arrived, or the body was cut short.
CONNECTION_EXCEPTIONS: tuple[type[BaseException], ...] = (
    bce.ConnectionError,  # EndpointConnectionError, ConnectTimeoutError, SSLError, proxy errors
    bce.HTTPClientError,  # ConnectionClosedError, ReadTimeoutError, ResponseStreamingError
    bce.IncompleteReadError,
    urllib3.exceptions.ProtocolError,  # includes urllib3's IncompleteRead
    urllib3.exceptions.TimeoutError,
    http.client.IncompleteRead,
    http.client.RemoteDisconnected,
    ConnectionError,  # builtin: resets, refused, broken pipe
    TimeoutError,
    socket.gaierror,  # the endpoint's host name does not resolve
)
#: Failures to open a connection at all: the endpoint is down, unknown or unreachable, and every
#: other request would fail the same way.
CONNECT_EXCEPTIONS: tuple[type[BaseException], ...] = (
    bce.EndpointConnectionError,
    bce.ConnectTimeoutError,
    bce.ProxyConnectionError,
    urllib3.exceptions.NewConnectionError,  # includes NameResolutionError
    urllib3.exceptions.ConnectTimeoutError,
    ConnectionRefusedError,
    socket.gaierror,
)
#: botocore cannot work out where to send a request (an endpoint URL it cannot use, a region
#: or bucket ARN that does not fit): raised before any request, the same for every one.
ENDPOINT_CONFIG_EXCEPTIONS: tuple[type[BaseException], ...] = (
    bce.EndpointProviderError,  # EndpointResolutionError: S3's endpoint rules said no
    bce.BaseEndpointResolverError,
    bce.InvalidEndpointConfigurationError,
)
#: EndpointResolutionError's message for a custom endpoint (AWS_ENDPOINT_URL_S3, ...) it cannot
#: use, e.g. a port out of range
_CUSTOM_ENDPOINT_RE = re.compile(r"Custom endpoint `(?P<url>[^`]*)` was not a valid URI")
#: botocore's ValueError for an endpoint URL a client cannot be made with
_INVALID_ENDPOINT_RE = re.compile(r"^Invalid endpoint: (?P<url>.*)$")
#: DuckDB httpfs's transport failures: "IO Error: <what> error for HTTP <METHOD> to '<url>'".
_HTTPFS_FAILURE_RE = re.compile(
    r"(?:Error: )?(?P<what>[^:']+?) error for HTTP (?P<method>[A-Z]+) to '(?P<url>[^']*)'"
)
_HTTPFS_CONNECT_WORDS = ("connect to server", "establish connection", "resolve", "refused")

#: Set on a response whose body could not be parsed (see :func:`_mark_unreadable_body`).
UNREADABLE_HEADER = "x-cvcatalog-unreadable-body"

_ACCESS_KEY_RE = re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b")


class ErrorKind(enum.Enum):
    CREDENTIALS = "credentials"
    RETRYABLE = "retryable"
    FATAL = "fatal"


@dataclass(frozen=True)
class ErrorInfo:
    """What an exception from boto means for us; ``reason`` is safe to show to the user."""

    kind: ErrorKind
    reason: str
    code: str | None = None
    status: int | None = None
    throttled: bool = False
    retry_after: float | None = None
    #: no connection could be made at all (see :data:`CONNECT_EXCEPTIONS`)
    unreachable: bool = False
    #: scheme://host[:port]/ of the endpoint the failed request went to, when known
    endpoint: str | None = None
    #: why it could not connect, e.g. "connection refused" (set with ``unreachable``)
    why: str | None = None
    #: the request could not even be addressed as configured (see
    #: :data:`ENDPOINT_CONFIG_EXCEPTIONS`): a ConfigError, and every request would fail alike
    config: bool = False


def _redact(text: str) -> str:
    """Belt and braces: never echo something that looks like an access key id."""
    return _ACCESS_KEY_RE.sub("<redacted>", text)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)


def classify_error(exc: BaseException) -> ErrorInfo | None:
    """Sort an exception into credentials / retryable / fatal; None if it is not from S3 or
    the network (a disk error, a bug) and must propagate unchanged."""
    if isinstance(exc, CREDENTIAL_EXCEPTIONS):
        return ErrorInfo(ErrorKind.CREDENTIALS, type(exc).__name__)
    if isinstance(exc, ENDPOINT_CONFIG_EXCEPTIONS):
        return _classify_endpoint_config(exc)
    if isinstance(exc, bce.ClientError):
        return _classify_client_error(exc)
    if isinstance(exc, CONNECTION_EXCEPTIONS):
        return _classify_connection_error(exc)
    if isinstance(exc, duckdb.HTTPException) and getattr(exc, "status_code", None):
        return _classify_httpfs_status(exc)
    if isinstance(exc, duckdb.IOException) and _HTTPFS_FAILURE_RE.search(str(exc)):
        return _classify_connection_error(exc)
    return None


def _classify_endpoint_config(exc: BaseException) -> ErrorInfo:
    """An endpoint URL, region or bucket ARN botocore cannot address a request with."""
    m = _CUSTOM_ENDPOINT_RE.search(str(exc))
    if m:  # the configured endpoint itself: not about any one request
        url = m.group("url")
        return ErrorInfo(
            ErrorKind.FATAL, invalid_endpoint_message(url), "InvalidEndpoint", config=True,
            endpoint=url,
        )  # fmt: skip
    reason = _redact(f"S3 cannot be addressed as configured: {exc}")
    return ErrorInfo(ErrorKind.FATAL, reason, "InvalidEndpointConfiguration", config=True)


def _chain(exc: BaseException) -> list[BaseException]:
    """exc and what it wraps (botocore's error=, urllib3's reason, causes), outermost first."""
    out: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo and len(out) < 10:
        e = todo.pop(0)
        if not isinstance(e, BaseException) or any(e is seen for seen in out):
            continue
        out.append(e)
        kwargs = getattr(e, "kwargs", None)
        wrapped = kwargs.get("error") if isinstance(kwargs, dict) else None
        todo += [wrapped, getattr(e, "reason", None), e.__cause__, e.__context__]
    return out


def _endpoint_of(exc: BaseException) -> str | None:
    """scheme://host[:port]/ of the endpoint a network error is about, else the configured one."""
    for e in _chain(exc):
        kwargs = getattr(e, "kwargs", None)
        url = kwargs.get("endpoint_url") if isinstance(kwargs, dict) else None
        if url is None and isinstance(e, duckdb.Error):
            m = _HTTPFS_FAILURE_RE.search(str(e))
            url = m.group("url") if m else None
        conn = getattr(e, "conn", None) or getattr(e, "pool", None)  # urllib3's
        host, port = getattr(conn, "host", None), getattr(conn, "port", None)
        if url is None and host:
            scheme = "https" if "HTTPS" in type(conn).__name__ else "http"
            url = f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"
        if url:
            parts = urllib.parse.urlsplit(str(url))
            if parts.scheme and parts.netloc:
                return f"{parts.scheme}://{parts.netloc}/"
    configured = configured_endpoint()
    return configured.rstrip("/") + "/" if configured else None


def _connect_failure(exc: BaseException) -> str | None:
    """Why no connection could be made ("connection refused", ...); None if one was made."""
    chain = _chain(exc)
    httpfs = isinstance(exc, duckdb.IOException)
    text = str(exc).lower()
    if httpfs and not any(w in text for w in _HTTPFS_CONNECT_WORDS):
        return None
    if not httpfs and not isinstance(exc, CONNECT_EXCEPTIONS):
        return None
    text = " ".join(str(e).lower() for e in chain)
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in text:
        return "connection refused"
    if any(isinstance(e, socket.gaierror | urllib3.exceptions.NameResolutionError) for e in chain):
        return "host name not found"
    if "resolve" in text or "name or service not known" in text or "nodename nor" in text:
        return "host name not found"
    if isinstance(exc, bce.ProxyConnectionError):
        return "the proxy refused or is down"
    if "no route to host" in text:
        return "no route to host"
    if "network is unreachable" in text:
        return "network unreachable"
    if "timed out" in text or "timeout" in text:
        return "timed out connecting"
    return "could not connect"


def _classify_connection_error(exc: BaseException) -> ErrorInfo:
    endpoint = _endpoint_of(exc)
    why = _connect_failure(exc)
    if why is not None:
        return ErrorInfo(
            ErrorKind.RETRYABLE,
            unreachable_message(endpoint, why),
            "EndpointUnreachable",
            unreachable=True,
            endpoint=endpoint,
            why=why,
        )
    where = f"the S3 endpoint {endpoint}" if endpoint else "the S3 endpoint"
    name = type(exc).__name__
    if isinstance(exc, bce.ConnectionClosedError):
        reason = f"{where} closed the connection before answering ({name})"
        return ErrorInfo(ErrorKind.RETRYABLE, reason, endpoint=endpoint)
    if isinstance(exc, bce.ReadTimeoutError):
        return ErrorInfo(
            ErrorKind.RETRYABLE, f"{where} did not answer in time ({name})", endpoint=endpoint
        )
    if isinstance(exc, duckdb.Error):
        m = _HTTPFS_FAILURE_RE.search(str(exc))
        what = m.group("what") if m else str(exc).splitlines()[0]
        return ErrorInfo(
            ErrorKind.RETRYABLE, f"the connection to {where} failed ({what})", endpoint=endpoint
        )
    return ErrorInfo(ErrorKind.RETRYABLE, _redact(f"{name}: {exc}"), endpoint=endpoint)


def _classify_httpfs_status(exc: duckdb.HTTPException) -> ErrorInfo:
    """An HTTP error status DuckDB's httpfs got, classified as S3's own answer would be."""
    status = int(getattr(exc, "status_code", 0) or 0)
    headers = getattr(exc, "headers", None) or {}
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    response: Any = {
        "Error": {"Code": str(status), "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": dict(headers)},
    }
    return _classify_client_error(bce.ClientError(response, "httpfs"))


def unreachable_message(endpoint: str | None, why: str, attempts: int | None = None) -> str:
    """The one line for an endpoint no connection could be made to, with what to check."""
    where = f"the S3 endpoint {endpoint}" if endpoint else "the S3 endpoint"
    tries = f" after {attempts} attempts" if attempts and attempts > 1 else ""
    host = urllib.parse.urlsplit(endpoint or "").hostname or ""
    if endpoint and not host.endswith(".amazonaws.com"):
        configured = configured_endpoint()
        named = configured is not None and configured.rstrip("/") + "/" == endpoint
        var = "AWS_ENDPOINT_URL_S3" if os.environ.get("AWS_ENDPOINT_URL_S3") else "AWS_ENDPOINT_URL"
        hint = f"is it running? ({var} points there)" if named else "is it running?"
    else:
        hint = "check the network connection (and any proxy settings)"
    return f"cannot reach {where} ({why}{tries}); {hint}"


def _classify_client_error(exc: bce.ClientError) -> ErrorInfo:
    response: dict[str, Any] = getattr(exc, "response", None) or {}
    err = response.get("Error") or {}
    meta = response.get("ResponseMetadata") or {}
    code = str(err.get("Code") or "") or None
    status = meta.get("HTTPStatusCode")
    status = int(status) if status is not None else None
    message = _redact(str(err.get("Message") or "")).strip()
    headers = {str(k).lower(): str(v) for k, v in (meta.get("HTTPHeaders") or {}).items()}
    label = code or str(status or "error")
    if status is not None and code != str(status):
        label = f"{label} (HTTP {status})"
    detail = f"{label}: {message}" if message else label

    if UNREADABLE_HEADER in headers:
        return ErrorInfo(
            ErrorKind.RETRYABLE,
            "the response was cut short or damaged in transit (its XML body could not be parsed)",
            "UnreadableResponse",
            status,
        )

    if code == "RequestTimeTooSkewed":
        return ErrorInfo(
            ErrorKind.FATAL,
            f"{label}: this machine's clock differs from S3's by more than 15 minutes; fix the clock",
            code,
            status,
        )
    if code in CREDENTIAL_CODES or status == 403:
        return ErrorInfo(ErrorKind.CREDENTIALS, label, code, status)
    if code == "NoSuchBucket":
        return ErrorInfo(
            ErrorKind.FATAL, f"{label}: the bucket does not exist at this endpoint", code, status
        )
    if code in ("NoSuchKey", "404") or status == 404:
        return ErrorInfo(
            ErrorKind.FATAL,
            f"{label}: the object does not exist (removed since it was listed?)",
            code,
            status,
        )
    if code == "PreconditionFailed" or status == 412:
        return ErrorInfo(
            ErrorKind.FATAL,
            f"{label}: the object changed since it was listed; list it again",
            code,
            status,
        )
    throttled = code in THROTTLE_CODES or status in THROTTLE_STATUSES
    if throttled or code in TRANSIENT_CODES or status in RETRY_STATUSES:
        return ErrorInfo(
            ErrorKind.RETRYABLE,
            detail,
            code,
            status,
            throttled=throttled,
            retry_after=parse_retry_after(headers.get("retry-after")),
        )
    return ErrorInfo(ErrorKind.FATAL, detail, code, status)


#: operations (as Retrier.call names them) whose answers are small (listings, HEADs): one
#: that times out every time means the endpoint answers nothing, not that a body is slow
BODILESS = frozenset({"ListObjectsV2", "list", "head", "head-bucket", "HeadObject"})


def translate_error(
    exc: BaseException,
    operation: str,
    key: str,
    attempts: int | None = None,
    *,
    anonymous: bool = False,
) -> CvCatalogError:
    """The one place that turns a boto/network exception into the exception we raise.

    Credentials problems get setup advice; an endpoint no connection could be made to is an
    EndpointUnreachableError naming the endpoint, not the request (every request would fail);
    anything else names the operation, the key and the reason (and how many attempts were
    made) -- never a credential.
    """
    if isinstance(exc, CvCatalogError):
        return exc
    info = classify_error(exc) or ErrorInfo(
        ErrorKind.FATAL, _redact(f"{type(exc).__name__}: {exc}")
    )
    target = f"{operation} {key}".strip()

    def about(text: str) -> str:  # "target: text", or text alone when no request is named
        return f"{target}: {text}" if target else text

    if info.kind is ErrorKind.CREDENTIALS:
        if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
            what = (
                "no usable AWS credentials were found"
                if isinstance(exc, bce.NoCredentialsError)
                else "the AWS credentials found are incomplete (key id without secret?)"
            )
            return CredentialsError(credentials_help(about(what)))
        if isinstance(exc, bce.ClientError):
            who = "an anonymous (unsigned) request" if anonymous else "the request"
            refused = " ".join(p for p in ("S3 refused", who, target) if p)
            return CredentialsError(
                credentials_help(f"{refused} ({info.reason})", anonymous=anonymous)
            )
        return CredentialsError(
            credentials_help(about(f"could not obtain AWS credentials ({info.reason})"))
        )
    if info.config:  # the endpoint (or region) configured: no request can be made
        return ConfigError(info.reason if info.code == "InvalidEndpoint" else about(info.reason))
    if info.unreachable:  # not about this request: the whole endpoint is out of reach
        return EndpointUnreachableError(
            unreachable_message(info.endpoint, info.why or "could not connect", attempts)
        )
    if info.code == "NoSuchBucket":  # nor is this: no request to the bucket can succeed
        return NoSuchBucketError(about(info.reason))
    retried = attempts is not None and attempts > 1 and info.kind is ErrorKind.RETRYABLE
    suffix = f" after {attempts} attempts" if retried else ""  # (never "after 1 attempts")
    if isinstance(exc, bce.ReadTimeoutError) and operation in BODILESS:
        # a request whose answer is small went unanswered every time: the endpoint accepts
        # connections and answers nothing, and every other request would wait as long (an
        # ingest waited that long for each of its days)
        return S3UnavailableError(
            about(
                f"{info.reason}{suffix}: it accepts connections but answers no request (the "
                "wrong endpoint or port? download.timeout_seconds bounds each wait)"
            )
        )
    return S3Error(about(f"{info.reason}{suffix}"))


def as_s3_error(exc: BaseException) -> CvCatalogError | None:
    """An exception from boto, urllib3 or DuckDB's httpfs that did not pass a :class:`Retrier`
    (a DuckDB query reading S3, the sandbox's uploads), as the error a Retrier would raise;
    None for anything else (builtin OSErrors may come from anywhere: not guessed at)."""
    if not isinstance(
        exc, bce.BotoCoreError | bce.ClientError | urllib3.exceptions.HTTPError | duckdb.Error
    ):
        return None
    if classify_error(exc) is None:
        return None
    # httpfs names the object it read in its message: the line names it too ("404: the
    # object does not exist" named none)
    named = _HTTPFS_OBJECT_RE.search(str(exc)) if isinstance(exc, duckdb.Error) else None
    key = urllib.parse.unquote(named.group(1)) if named else ""
    return translate_error(exc, "GET" if named else "", key)


#: the object an httpfs error names ("HTTP GET error reading 's3://b/k' in region ...")
_HTTPFS_OBJECT_RE = re.compile(r"error reading '((?:s3|https?)://[^']+)'")


def _mark_unreadable_body(response_dict: dict[str, Any] | None = None, **_: Any) -> None:
    """botocore turns a 200 answer whose XML cannot be parsed (a listing cut short or damaged
    in transit) into a synthetic "500 Internal Server Error" so that it is retried. Mark such a
    response so the error we report names what happened instead of blaming the server. S3's
    own 500s carry an XML <Error> document and are left alone."""
    if not response_dict or response_dict.get("status_code") != 500:
        return
    body = response_dict.get("body")
    if not isinstance(body, bytes | bytearray) or not body.strip():
        return
    try:
        ElementTree.fromstring(body)
    except ElementTree.ParseError:
        response_dict["headers"][UNREADABLE_HEADER] = "1"


_LOADERS: dict[str | None, Any] = {}
_LOADERS_LOCK = threading.Lock()


def s3_timestamp(value: Any, fallback: Callable[[Any], datetime]) -> datetime:
    """A timestamp of an S3 answer: the two forms S3 writes (ISO 8601 in UTC in XML bodies,
    "2021-04-01T12:00:00.000Z"; the HTTP date of a Last-Modified header, "Thu, 01 Apr 2021
    12:00:00 GMT") read by the standard library, any other by ``fallback`` (botocore's
    parser). botocore reads every timestamp with dateutil's general parser: ~50 us each,
    half the CPU of a 1,000-key listing page and a fifth of a small GET's (bench/README.md,
    session 42); the values are the same datetimes (tests/test_s3.py)."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError, TypeError):  # a value S3 did not write
            if value[-1:] == "Z" and value[10:11] == "T":
                return datetime.fromisoformat(value)
            if value[-4:] == " GMT" and value[3:5] == ", ":
                return parsedate_to_datetime(value)
    return fallback(value)


def _session(profile: str | None) -> Any:
    """A new boto3 Session (its own profile, credentials and configuration, read now) whose
    data loader is shared by the process: a new session loads and parses botocore's endpoint
    rules and the S3 model again (~0.1 CPU s a client, about a tenth of a small ingest);
    the files are the installed botocore's, the same for every session. boto3 and botocore's
    session (~11 MB) are imported here, not with this module: a process that only reads a
    local catalog (to_dask) never makes a client. Its clients read timestamps with
    s3_timestamp."""
    import boto3
    import botocore.loaders
    import botocore.session
    import botocore.utils

    class SharedLoader(botocore.loaders.Loader):
        """The loader with boto3's data folder on its search path from the start; it hands
        out a copy of the path, as boto3 appends its folder to every new Session's loader."""

        @property
        def search_paths(self) -> list[str]:
            return list(self._search_paths)

    core = botocore.session.Session(profile=profile)
    core.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=functools.partial(s3_timestamp, fallback=botocore.utils.parse_timestamp)
    )
    data_path = core.get_config_variable("data_path")  # AWS_DATA_PATH, as botocore reads it
    with _LOADERS_LOCK:
        loader = _LOADERS.get(data_path)
        if loader is None:
            extra = data_path.split(os.pathsep) if data_path else []
            loader = SharedLoader(
                extra_search_paths=[os.path.expanduser(os.path.expandvars(p)) for p in extra]
            )
            loader._search_paths.append(os.path.join(os.path.dirname(boto3.__file__), "data"))
            _LOADERS[data_path] = loader
    core.register_component("data_loader", loader)
    return boto3.session.Session(botocore_session=core, profile_name=profile)


def make_client(cfg: DownloadConfig, *, region: str | None = None) -> Any:
    """A botocore S3 client for cfg: profile or default chain, optional unsigned requests.

    The endpoint is cfg.endpoint_url if set; otherwise boto3 itself honours
    AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL (the sandbox relies on that). botocore's retries are
    off because :class:`Retrier` retries, rate-limits and counts every attempt.
    """
    from botocore import UNSIGNED
    from botocore.config import Config

    try:
        session = _session(cfg.profile)
    except bce.ProfileNotFound as e:  # named by --profile, or else by AWS_PROFILE
        name = cfg.profile or e.kwargs.get("profile")
        raise ConfigError(
            f"AWS profile {name!r} not found in ~/.aws/config or ~/.aws/credentials "
            "(check the name, or AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE)"
        ) from None
    except (bce.ConfigParseError, bce.InvalidConfigError) as e:
        raise ConfigError(f"cannot read the AWS configuration: {e}") from None
    config = Config(
        region_name=region or DEFAULT_REGION,
        signature_version=UNSIGNED if cfg.no_sign_request else None,
        # total_max_attempts counts the first try; {'max_attempts': 1} would mean one retry.
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=max(10, cfg.max_workers + 2),
        connect_timeout=min(cfg.timeout_seconds, MAX_CONNECT_TIMEOUT_SECONDS),
        read_timeout=cfg.timeout_seconds,
        # We verify size and MD5 ourselves; S3 sends no whole-object checksum for ranged reads.
        response_checksum_validation="when_required",
    )
    kwargs: dict[str, Any] = {"config": config}
    if cfg.endpoint_url:
        kwargs["endpoint_url"] = cfg.endpoint_url
    try:
        client = session.client("s3", **kwargs)
    except ValueError as e:  # e.g. a malformed endpoint URL
        m = _INVALID_ENDPOINT_RE.match(str(e))
        if m:  # the same line as a request that could not be addressed (classify_error)
            raise ConfigError(invalid_endpoint_message(m.group("url"))) from None
        raise ConfigError(f"cannot create the S3 client: {e}") from None
    client.meta.events.register("before-parse.s3", _mark_unreadable_body)
    return client


class TokenBucket:
    """Thread-safe request-rate limiter shared by all workers.

    Scheduled as a token bucket (GCRA): each caller reserves the next free slot under the lock
    and sleeps outside it, so in any window T at most ``rate*T + capacity`` callers pass.
    ``rate == 0`` means unlimited. :meth:`defer` holds everyone back after a Retry-After.
    """

    def __init__(
        self,
        rate: float,
        capacity: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate < 0:
            raise ValueError(f"rate must be >= 0 requests per second, got {rate}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.rate = float(rate)
        self.capacity = float(capacity)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._interval = 1.0 / self.rate if self.rate else 0.0
        self._tolerance = (self.capacity - 1.0) * self._interval
        self._tat: float | None = None  # theoretical arrival time of the next request
        self._not_before = float("-inf")
        self._acquired = 0
        self._waited = 0.0

    @property
    def acquired(self) -> int:
        """How many acquisitions (requests) have passed so far."""
        with self._lock:
            return self._acquired

    @property
    def waited_seconds(self) -> float:
        """Total time callers were told to wait."""
        with self._lock:
            return self._waited

    def acquire(self) -> float:
        """Block until a request may be sent; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            if self.rate:
                tat = now if self._tat is None else max(self._tat, now)
                release = max(now, tat - self._tolerance, self._not_before)
                # the bucket restarts after a deferral: never a burst when it ends
                self._tat = max(tat, release) + self._interval
            else:
                release = max(now, self._not_before)
            wait = release - now
            self._acquired += 1
            self._waited += wait
        if wait > 0:
            self._sleep(wait)
        return wait

    def defer(self, seconds: float) -> None:
        """Let nobody through for the next ``seconds`` (the server asked us to slow down)."""
        if seconds <= 0:
            return
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + seconds)


def backoff_delay(
    retry: int, base: float, cap: float = BACKOFF_CAP_SECONDS, rng: random.Random | None = None
) -> float:
    """Full-jitter exponential backoff for the ``retry``-th retry (1-based)."""
    ceiling = min(cap, base * (2 ** max(0, retry - 1)))
    return (rng or random).uniform(0.0, ceiling) if ceiling > 0 else 0.0


@dataclass(frozen=True)
class RetryPolicy:
    """The one retry policy of cvcatalog: an S3 request (:class:`Retrier`), an HTTP or S3 byte
    range of a dataset input, and a unit of a pipeline run (:mod:`cvcatalog.pipeline.run`) are
    all retried with it: ``attempts`` tries in all, full-jitter exponential backoff from
    ``base_delay`` capped at ``cap``, never shorter than a server's Retry-After."""

    attempts: int = 4
    base_delay: float = 1.0
    cap: float = BACKOFF_CAP_SECONDS

    @classmethod
    def from_config(cls, cfg: DownloadConfig) -> RetryPolicy:
        """download.retry_attempts (retries after the first try) and retry_delay_seconds."""
        return cls(attempts=cfg.retry_attempts + 1, base_delay=cfg.retry_delay_seconds)

    def delay(
        self, retry: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before the ``retry``-th retry (1-based)."""
        delay = backoff_delay(retry, self.base_delay, self.cap, rng)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt under the retry policy: network trouble, throttling, 5xx."""
    if isinstance(exc, TransientFetchError):
        return True
    if isinstance(exc, CvCatalogError):
        return False
    info = classify_error(exc)
    if info is not None:
        return info.kind is ErrorKind.RETRYABLE
    return isinstance(exc, ConnectionError | TimeoutError | http.client.HTTPException)


class Retrier:
    """Runs a request with rate limiting, retries on transient errors and error translation.

    ``attempts`` is the total number of tries (1 + retry_attempts). ``on_error(info,
    will_retry)`` sees every classified failure, for statistics.
    """

    def __init__(
        self,
        *,
        attempts: int,
        base_delay: float,
        cap: float = BACKOFF_CAP_SECONDS,
        limiter: TokenBucket | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        anonymous: bool = False,
        on_error: Callable[[ErrorInfo, bool], None] | None = None,
    ) -> None:
        self.attempts = max(1, attempts)
        self.base_delay = base_delay
        self.cap = cap
        self.limiter = limiter
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.anonymous = anonymous
        self.on_error = on_error

    @classmethod
    def from_config(cls, cfg: DownloadConfig, **kwargs: Any) -> Retrier:
        return cls.with_policy(
            RetryPolicy.from_config(cfg), anonymous=cfg.no_sign_request, **kwargs
        )

    @classmethod
    def with_policy(cls, policy: RetryPolicy, **kwargs: Any) -> Retrier:
        return cls(attempts=policy.attempts, base_delay=policy.base_delay, cap=policy.cap, **kwargs)

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.attempts, self.base_delay, self.cap)

    def delay_for(self, retry: int, info: ErrorInfo) -> float:
        """Backoff for the given retry, but never shorter than the server's Retry-After."""
        return self.policy.delay(retry, info.retry_after, self.rng)

    def call(self, operation: str, key: str, fn: Callable[[], T]) -> T:
        """fn() with retries; raises CredentialsError/S3Error, or fn's own non-S3 errors."""
        for attempt in range(1, self.attempts + 1):
            if self.limiter is not None:
                self.limiter.acquire()
            try:
                return fn()
            except Exception as exc:
                info = classify_error(exc)
                if info is None:
                    raise
                will_retry = info.kind is ErrorKind.RETRYABLE and attempt < self.attempts
                if self.on_error is not None:
                    self.on_error(info, will_retry)
                if not will_retry:
                    raise translate_error(
                        exc, operation, key, attempt, anonymous=self.anonymous
                    ) from exc
                delay = self.delay_for(attempt, info)
                if info.throttled and info.retry_after and self.limiter is not None:
                    self.limiter.defer(info.retry_after)
                log.info(
                    "%s %s: %s; retry %d/%d in %.2fs",
                    operation,
                    key,
                    info.reason,
                    attempt,
                    self.attempts - 1,
                    delay,
                )
                if delay > 0:
                    self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover
