"""Byte-range access to one input: a local file, an HTTP(S) URL or an S3 object.

Datasets read their units through these, so a unit can be fetched by any thread with a Range
request and nothing is ever read whole. Each read is pinned to the version the run planned
(If-Match with the ETag, or the local size and mtime): if the input changes mid-run the read
fails with InputChangedError instead of mixing two versions.
"""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from botocore import UNSIGNED

from cvcatalog.config import download_config
from cvcatalog.exceptions import (
    ConfigError,
    CvCatalogError,
    InputChangedError,
    NoSuchBucketError,
    TransientFetchError,
)
from cvcatalog.io.duckdb_ext import endpoint_url as configured_endpoint
from cvcatalog.io.s3 import (
    ErrorInfo,
    ErrorKind,
    TokenBucket,
    classify_error,
    make_client,
    translate_error,
)


@dataclass(frozen=True)
class InputInfo:
    """One input (file or object) and its change token."""

    uri: str
    fingerprint: str  # ETag (S3, HTTP) or 'size:mtime_ns' (local file)
    size: int | None
    last_modified: datetime | None
    ranges: bool = True  # the input can be read by byte range


CHUNK = 1 << 20
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class ByteInput(ABC):
    """One input, read by byte ranges."""

    uri: str

    @abstractmethod
    def stat(self) -> InputInfo:
        """Size, change token, and whether ranges work."""

    @abstractmethod
    def read(self, start: int, end: int | None, info: InputInfo) -> Iterator[bytes]:
        """Chunks of bytes [start, end) (end None: to the end) of the version described by info."""


class LocalInput(ByteInput):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().resolve()
        self.uri = str(self.path)

    def stat(self) -> InputInfo:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            raise ConfigError(f"input file not found: {self.path}") from None
        except PermissionError:
            raise ConfigError(f"permission denied reading {self.path}") from None
        if not self.path.is_file():
            raise ConfigError(f"input is not a file: {self.path}")
        return InputInfo(
            self.uri,
            f"{st.st_size}:{st.st_mtime_ns}",
            st.st_size,
            datetime.fromtimestamp(st.st_mtime, UTC),
        )

    def read(self, start: int, end: int | None, info: InputInfo) -> Iterator[bytes]:
        with open(self.path, "rb") as f:
            st = os.fstat(f.fileno())
            if f"{st.st_size}:{st.st_mtime_ns}" != info.fingerprint:
                raise InputChangedError(f"{self.uri} changed during the run; run the ingest again")
            f.seek(start)
            pos = start
            while end is None or pos < end:
                block = f.read(CHUNK if end is None else min(CHUNK, end - pos))
                if not block:
                    return
                pos += len(block)
                yield block


#: query parameters that sign a URL rather than name what it points at: S3's (SigV4, and V2
#: with its Signature), Google Cloud Storage's, and Azure's shared access signature (with sig)
_SIGNING_PREFIXES = ("x-amz-", "x-goog-")
_SIGNED_BY = {
    "signature": {"signature", "awsaccesskeyid", "expires"},
    "sig": {"sig", "sv", "ss", "srt", "sp", "se", "st", "spr", "sr", "si", "sip", "skoid",
            "sktid", "skt", "ske", "sks", "skv", "sdd"},
}  # fmt: skip


def public_url(url: str) -> str:
    """The URL the catalog records and prints for an input: without a user and password, nor
    a presigned URL's signature (anyone who reads the catalog, a published one too, could
    fetch with it until it expires, and a new signature of the same object is the same
    input). A signed URL is used as given for every request."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    names = {k.lower() for k, _ in query}
    drop = set().union(*(v for k, v in _SIGNED_BY.items() if k in names))
    kept = [(k, v) for k, v in query
            if not k.lower().startswith(_SIGNING_PREFIXES) and k.lower() not in drop]  # fmt: skip
    host = parts.netloc.rpartition("@")[2]
    if len(kept) == len(query) and host == parts.netloc:
        return url
    return urllib.parse.urlunsplit(
        (parts.scheme, host, parts.path, urllib.parse.urlencode(kept), parts.fragment)
    )


class HttpInput(ByteInput):
    """http(s):// with Range requests when the server accepts them (206), else one stream.
    uri is the URL as the catalog keeps it (public_url); requests use the one given."""

    def __init__(self, url: str, timeout: float = 300.0) -> None:
        self.url = url
        self.uri = public_url(url)
        self.timeout = timeout

    def _open(self, headers: dict[str, str], method: str = "GET") -> Any:
        req = urllib.request.Request(self.url, headers=headers, method=method)
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            if e.code in RETRY_STATUSES:
                raise TransientFetchError(f"{self.uri}: HTTP {e.code}") from None
            if e.code == 412:
                raise InputChangedError(
                    f"{self.uri} changed during the run; run the ingest again"
                ) from None
            raise CvCatalogError(f"{self.uri}: HTTP {e.code} {e.reason}") from None
        except urllib.error.URLError as e:
            raise TransientFetchError(f"{self.uri}: {e.reason}") from None
        except (TimeoutError, ConnectionError, http.client.HTTPException) as e:
            raise TransientFetchError(f"{self.uri}: {type(e).__name__}: {e}") from None

    def stat(self) -> InputInfo:
        # a one-byte ranged GET tells size, ETag and range support in one request (HEAD is
        # not always allowed, and some servers only reveal Accept-Ranges on a ranged answer)
        with self._open({"Range": "bytes=0-0"}) as resp:
            status = resp.status
            headers = resp.headers
            ranges = status == 206
            size: int | None = None
            if ranges:
                total = (headers.get("Content-Range") or "").rpartition("/")[2]
                size = int(total) if total.isdigit() else None
                ranges = size is not None
            elif headers.get("Content-Length", "").isdigit():
                size = int(headers["Content-Length"])
        etag = (headers.get("ETag") or "").strip()
        modified = headers.get("Last-Modified")
        last_modified = None
        if modified:
            try:
                last_modified = parsedate_to_datetime(modified)
            except (TypeError, ValueError):
                last_modified = None
        fingerprint = etag or f"{size}:{modified or ''}"
        return InputInfo(self.uri, fingerprint, size, last_modified, ranges)

    def read(self, start: int, end: int | None, info: InputInfo) -> Iterator[bytes]:
        headers: dict[str, str] = {}
        if info.ranges:
            headers["Range"] = f"bytes={start}-" + ("" if end is None else str(end - 1))
            if info.fingerprint.startswith(('"', 'W/"')):
                headers["If-Range"] = info.fingerprint
        elif start:
            raise CvCatalogError(f"{self.uri}: the server does not support ranged reads")
        with self._open(headers) as resp:
            if info.ranges and resp.status != 206:
                raise InputChangedError(f"{self.uri} changed during the run; run the ingest again")
            etag = (resp.headers.get("ETag") or "").strip()
            if etag and info.fingerprint.startswith('"') and etag != info.fingerprint:
                raise InputChangedError(f"{self.uri} changed during the run; run the ingest again")
            try:
                while block := resp.read(CHUNK):
                    yield block
            except (TimeoutError, ConnectionError, http.client.HTTPException) as e:
                raise TransientFetchError(f"{self.uri}: {type(e).__name__}: {e}") from None


class S3Input(ByteInput):
    """s3://bucket/key through the same client factory as the CV ingest (endpoint, profile,
    unsigned requests); GetObject with Range and IfMatch."""

    def __init__(self, uri: str, client: Any, limiter: TokenBucket | None = None) -> None:
        parsed = urllib.parse.urlparse(uri)
        if not parsed.netloc or not parsed.path.strip("/"):
            raise ConfigError(f"not an s3://bucket/key URI: {uri}")
        self.uri = uri
        self.bucket = parsed.netloc
        self.key = parsed.path.lstrip("/")
        self.client = client
        #: the S3 stack's rate limiter (download.rate_limit), shared by the run's requests
        self.limiter = limiter

    def _call(self, operation: str, fn: Any, request: bool = True, named: bool = False) -> Any:
        """fn() with the S3 stack's rate limit and error classification. named: the request
        is the first for an input the user named (its HEAD), whose 404 says it is not there."""
        if request and self.limiter is not None:
            self.limiter.acquire()
        try:
            return fn()
        except Exception as exc:
            info = classify_error(exc)
            if info is None:
                raise
            if named and _missing(info):
                raise self._not_found() from None
            if info.code == "PreconditionFailed" or info.status == 412:
                raise InputChangedError(
                    f"{self.uri} changed during the run; run the ingest again"
                ) from None
            if info.kind is ErrorKind.RETRYABLE:
                if info.throttled and info.retry_after and self.limiter is not None:
                    self.limiter.defer(info.retry_after)  # every request of the run waits
                raise TransientFetchError(
                    f"{operation} {self.uri}: {info.reason}", retry_after=info.retry_after
                ) from None
            raise translate_error(exc, operation, self.uri, anonymous=self._unsigned()) from None

    def _unsigned(self) -> bool:
        """Whether the client sends unsigned requests (--no-sign-request): its refusals say so."""
        config = getattr(getattr(self.client, "meta", None), "config", None)
        return getattr(config, "signature_version", None) is UNSIGNED

    def _not_found(self) -> CvCatalogError:
        """The input is not there, said plainly: no such bucket, or no such object in it. A
        HEAD's 404 has no body to tell which; one HeadBucket does."""
        if self.limiter is not None:
            self.limiter.acquire()
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            info = classify_error(exc)
            if info is None:
                raise
            if not _missing(info):  # e.g. no right to list the bucket: cannot tell which
                return ConfigError(
                    f"input not found: {self.uri} (no object {self.key!r} in bucket "
                    f"{self.bucket!r}, or no such bucket)"
                )
            endpoint = configured_endpoint()
            at = f" at {endpoint}" if endpoint else ""
            return NoSuchBucketError(
                f"input not found: {self.uri} (there is no bucket {self.bucket!r}{at})"
            )
        return ConfigError(
            f"input not found: {self.uri} (bucket {self.bucket!r} has no object {self.key!r})"
        )

    def stat(self) -> InputInfo:
        head = self._call(
            "HeadObject",
            lambda: self.client.head_object(Bucket=self.bucket, Key=self.key),
            named=True,
        )
        return InputInfo(
            self.uri,
            str(head.get("ETag") or "").strip('"'),
            int(head["ContentLength"]),
            head.get("LastModified"),
        )

    def read(self, start: int, end: int | None, info: InputInfo) -> Iterator[bytes]:
        rng = f"bytes={start}-" + ("" if end is None else str(end - 1))
        resp = self._call(
            "GetObject",
            lambda: self.client.get_object(
                Bucket=self.bucket, Key=self.key, Range=rng, IfMatch=f'"{info.fingerprint}"'
            ),
        )
        body = resp["Body"]
        try:
            while True:
                block = self._call("GetObject", lambda: body.read(CHUNK), request=False)
                if not block:
                    return
                yield block
        finally:
            body.close()


def _missing(info: ErrorInfo) -> bool:
    """S3 answered that the bucket or the object does not exist."""
    return info.status == 404 or info.code in ("NoSuchKey", "NoSuchBucket", "404")


def open_input(
    uri: str,
    *,
    s3_client: Any = None,
    timeout: float = 300.0,
    limiter: TokenBucket | None = None,
) -> ByteInput:
    """The ByteInput for a local path, an http(s):// URL or an s3:// URI (S3: the client of
    s3.make_client and the rate limiter of the S3 stack; a transient failure of any of them
    is retried by the run under the one retry policy, s3.RetryPolicy)."""
    scheme = urllib.parse.urlparse(uri).scheme.lower()
    if scheme in ("http", "https"):
        return HttpInput(uri, timeout)
    if scheme == "s3":
        if s3_client is None:
            s3_client = make_client(download_config())
        return S3Input(uri, s3_client, limiter)
    if scheme in ("", "file") or len(scheme) == 1:  # len 1: a Windows drive letter
        path = urllib.parse.urlparse(uri).path if scheme == "file" else uri
        return LocalInput(path)
    raise ConfigError(f"unsupported input {uri!r}: give a file path, an https:// URL or s3://")
