"""S3 access layer: client factory, error translation, rate limiter and retries.

Requests go to the real local moto server; error responses the server cannot produce on demand
(503 SlowDown, 429, 403) are injected with a botocore ``before-send`` hook, so botocore still
parses them exactly as it would parse a response from AWS.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import boto3
import dateutil.parser
import pytest
from botocore import UNSIGNED
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.utils import parse_timestamp
from hypothesis import given
from hypothesis import strategies as st

from cvcatalog.config import DownloadConfig
from cvcatalog.exceptions import (
    ConfigError,
    CredentialsError,
    EndpointUnreachableError,
    NoSuchBucketError,
    S3Error,
    TransientFetchError,
)
from cvcatalog.io.inputs import S3Input
from cvcatalog.io.s3 import (
    BACKOFF_CAP_SECONDS,
    ErrorKind,
    Retrier,
    RetryPolicy,
    TokenBucket,
    backoff_delay,
    classify_error,
    make_client,
    parse_retry_after,
    s3_timestamp,
    translate_error,
)
from cvcatalog.sandbox.server import free_port
from cvcatalog.sources.bucket import BUCKET

# -- helpers shared with test_download.py ------------------------------------------------------


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


Canned = tuple[int, str, dict[str, str]] | BaseException


def inject(
    client: Any, canned: list[Canned], when: Callable[[Any], bool] | None = None
) -> list[Any]:
    """Answer the next requests (matching ``when``) with canned errors; record every request.

    Each canned item is (status, code, headers) for an S3 XML error, or an exception to raise
    as if the connection failed. Once the list is used up, requests reach the real server.
    """
    seen: list[Any] = []
    queue = list(canned)

    def handler(request: Any, **_: Any) -> AWSResponse | None:
        seen.append(request)
        if queue and (when is None or when(request)):
            item = queue.pop(0)
            if isinstance(item, BaseException):
                raise item
            status, code, headers = item
            body = (
                "<?xml version='1.0' encoding='UTF-8'?>"
                f"<Error><Code>{code}</Code><Message>injected {code}</Message></Error>"
            ).encode()
            return AWSResponse(request.url, status, headers, _Raw(body))
        return None

    client.meta.events.register("before-send.s3", handler)
    return seen


class FakeSleep:
    """Records requested sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class FakeClock:
    """A monotonic clock that only moves when something sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


def cfg(**kw: Any) -> DownloadConfig:
    base: dict[str, Any] = {"rate_limit": 0, "retry_attempts": 3, "retry_delay_seconds": 0.5}
    base.update(kw)
    return DownloadConfig(**base)


def client_error(
    code: str, status: int, headers: dict[str, str] | None = None, msg: str = "x"
) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": msg},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}},
        },
        "ListObjectsV2",
    )


# -- client factory ----------------------------------------------------------------------------


def test_endpoint_comes_from_aws_endpoint_url_s3(s3_endpoint: str) -> None:
    client = make_client(cfg())
    assert client.meta.endpoint_url == s3_endpoint
    assert client.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0


def test_aws_endpoint_url_is_honoured_too(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    assert make_client(cfg()).meta.endpoint_url == s3_endpoint


def test_config_endpoint_overrides_environment(s3_endpoint: str) -> None:
    client = make_client(cfg(endpoint_url="http://127.0.0.1:1"))
    assert client.meta.endpoint_url == "http://127.0.0.1:1"


def test_client_settings(s3_endpoint: str) -> None:
    client = make_client(cfg(max_workers=12, timeout_seconds=42))
    conf = client.meta.config
    assert client.meta.region_name == "us-east-1"
    assert conf.retries["total_max_attempts"] == 1
    assert conf.max_pool_connections >= 14
    assert conf.read_timeout == 42
    assert conf.connect_timeout == 42


def test_listings_and_gets_read_their_timestamps_without_dateutil(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The times S3 writes (a listing's ISO 8601, a GET's Last-Modified header) are read by
    s3_timestamp, the same datetimes botocore's own parser gives, without dateutil's general
    parser (~50 us a timestamp: half a 1,000-key page's CPU)."""
    seeded = boto3.client("s3", endpoint_url=s3_endpoint)  # botocore's parser: the reference
    for i in range(3):
        seeded.put_object(Bucket=BUCKET, Key=f"k/{i}", Body=b"x" * i)
    want_list = {
        o["Key"]: o["LastModified"] for o in seeded.list_objects_v2(Bucket=BUCKET)["Contents"]
    }
    want_get = seeded.get_object(Bucket=BUCKET, Key="k/2")["LastModified"]

    calls: list[str] = []
    general = dateutil.parser.parser.parse

    def counted(self: Any, timestr: str, *a: Any, **kw: Any) -> Any:
        calls.append(timestr)
        return general(self, timestr, *a, **kw)

    monkeypatch.setattr(dateutil.parser.parser, "parse", counted)
    client = make_client(cfg())
    got_list = {
        o["Key"]: o["LastModified"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]
    }
    got_get = client.get_object(Bucket=BUCKET, Key="k/2")["LastModified"]
    assert calls == []
    assert got_list == want_list and len(got_list) == 3
    assert got_get == want_get and got_get.utcoffset() == timedelta(0)
    # a form S3 does not write still reads, through botocore's parser
    assert s3_timestamp("2021-04-01 12:00:00+01:00", parse_timestamp) == datetime(
        2021, 4, 1, 11, 0, tzinfo=UTC
    )
    assert calls


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(["iso", "iso-ms", "http"]),
)
def test_s3_timestamp_reads_what_botocore_reads(when: datetime, form: str) -> None:
    if form == "http":
        text = format_datetime(when.replace(microsecond=0), usegmt=True)
    elif form == "iso-ms":
        text = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    else:
        text = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    got = s3_timestamp(text, parse_timestamp)
    assert got == parse_timestamp(text)
    assert got.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "value", ["1617278400", 1617278400, "Thu, 01 Apr 2021 12:00:00 +0000", "x"]
)
def test_s3_timestamp_leaves_other_forms_to_botocore(value: Any) -> None:
    try:
        want: Any = parse_timestamp(value)
    except ValueError as e:
        with pytest.raises(ValueError, match=re.escape(str(e))):
            s3_timestamp(value, parse_timestamp)
        return
    assert s3_timestamp(value, parse_timestamp) == want


def test_botocore_itself_never_retries(s3_endpoint: str) -> None:
    client = make_client(cfg())
    seen = inject(client, [(503, "SlowDown", {}), (503, "SlowDown", {})])
    with pytest.raises(ClientError):
        client.list_objects_v2(Bucket=BUCKET)
    assert len(seen) == 1


def test_no_sign_request_sends_unsigned_requests(s3_endpoint: str) -> None:
    unsigned = make_client(cfg(no_sign_request=True))
    signed = make_client(cfg())
    seen_unsigned = inject(unsigned, [])
    seen_signed = inject(signed, [])
    assert unsigned.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0
    signed.list_objects_v2(Bucket=BUCKET)
    assert "Authorization" not in seen_unsigned[0].headers
    assert "Authorization" in seen_signed[0].headers


def test_unknown_profile_is_a_config_error(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "config"
    conf.write_text("[profile known]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(conf))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    with pytest.raises(ConfigError) as ei:
        make_client(cfg(profile="nope"))
    assert "'nope'" in str(ei.value)
    assert "\n" not in str(ei.value)
    assert make_client(cfg(profile="known")).meta.region_name == "us-east-1"


def test_missing_credentials_fail_at_once(
    s3_endpoint: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    client = make_client(cfg())
    sleep = FakeSleep()
    retrier = Retrier(attempts=4, base_delay=1.0, sleep=sleep)
    with pytest.raises(CredentialsError) as ei:
        retrier.call("ListObjectsV2", "wydot/", lambda: client.list_objects_v2(Bucket=BUCKET))
    assert "no usable AWS credentials" in str(ei.value)
    assert "aws configure" in str(ei.value)
    assert sleep.calls == []


# -- error translation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "kind", "throttled"),
    [
        ("AccessDenied", 403, ErrorKind.CREDENTIALS, False),
        ("403", 403, ErrorKind.CREDENTIALS, False),
        ("InvalidAccessKeyId", 403, ErrorKind.CREDENTIALS, False),
        ("SignatureDoesNotMatch", 403, ErrorKind.CREDENTIALS, False),
        ("ExpiredToken", 400, ErrorKind.CREDENTIALS, False),
        ("SlowDown", 503, ErrorKind.RETRYABLE, True),
        ("ServiceUnavailable", 503, ErrorKind.RETRYABLE, True),
        ("TooManyRequests", 429, ErrorKind.RETRYABLE, True),
        ("Throttling", 400, ErrorKind.RETRYABLE, True),
        ("RequestLimitExceeded", 400, ErrorKind.RETRYABLE, True),
        ("RequestTimeout", 400, ErrorKind.RETRYABLE, False),
        ("InternalError", 500, ErrorKind.RETRYABLE, False),
        ("BadGateway", 502, ErrorKind.RETRYABLE, False),
        ("GatewayTimeout", 504, ErrorKind.RETRYABLE, False),
        ("NoSuchBucket", 404, ErrorKind.FATAL, False),
        ("NoSuchKey", 404, ErrorKind.FATAL, False),
        ("PreconditionFailed", 412, ErrorKind.FATAL, False),
        ("InvalidArgument", 400, ErrorKind.FATAL, False),
    ],
)
def test_classify_client_errors(code: str, status: int, kind: ErrorKind, throttled: bool) -> None:
    info = classify_error(client_error(code, status))
    assert info is not None
    assert info.kind is kind
    assert info.throttled is throttled


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="http://x"),
        ReadTimeoutError(endpoint_url="http://x"),
        ResponseStreamingError(error="reset"),
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError(),
    ],
)
def test_connection_errors_are_retryable(exc: BaseException) -> None:
    info = classify_error(exc)
    assert info is not None and info.kind is ErrorKind.RETRYABLE


def test_local_errors_are_not_s3_errors() -> None:
    assert classify_error(OSError(28, "No space left on device")) is None
    assert classify_error(ValueError("bug")) is None


def test_credential_errors_translate_to_credentials_error() -> None:
    for exc in (
        NoCredentialsError(),
        PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
        client_error("AccessDenied", 403),
    ):
        err = translate_error(exc, "GetObject", "wydot/BSM/2021/04/01/00/obj")
        assert isinstance(err, CredentialsError)
        assert "wydot/BSM/2021/04/01/00/obj" in str(err)
        assert "--no-sign-request" in str(err)
    anon = translate_error(client_error("AccessDenied", 403), "GetObject", "k", anonymous=True)
    assert "anonymous" in str(anon)
    # unsigned already: the way out is credentials, not the flag that was given
    assert "try --no-sign-request" not in str(anon) and "drop --no-sign-request" in str(anon)


def test_messages_never_carry_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3tValue")
    exc = client_error("InvalidArgument", 400, msg="bad key AKIAABCDEFGHIJKLMNOP given")
    text = str(translate_error(exc, "GetObject", "k"))
    assert "AKIAABCDEFGHIJKLMNOP" not in text
    assert "s3cr3tValue" not in text


def test_no_such_bucket_message() -> None:
    err = translate_error(client_error("NoSuchBucket", 404), "ListObjectsV2", "s3://nope/x/")
    assert isinstance(err, S3Error)
    assert str(err).startswith("ListObjectsV2 s3://nope/x/: NoSuchBucket")
    assert "does not exist" in str(err)


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-4") == 0.0
    from datetime import UTC, datetime

    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Mon, 01 Jan 2024 12:00:07 GMT", now=now) == 7.0


# -- rate limiter ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "capacity", "n"), [(10.0, 1.0, 50), (4.0, 3.0, 40), (0.5, 1.0, 7)]
)
def test_token_bucket_rate_with_fake_clock(rate: float, capacity: float, n: int) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate, capacity, clock=clock, sleep=clock.sleep)
    start = clock()
    times = []
    for _ in range(n):
        bucket.acquire()
        times.append(clock())
    assert clock() - start >= (n - capacity) / rate - 1e-9
    assert bucket.acquired == n
    # no window [t_i, t_j] ever lets more than rate*T + capacity through
    for i in range(n):
        for j in range(i, n):
            assert j - i + 1 <= rate * (times[j] - times[i]) + capacity + 1e-9


def test_token_bucket_refills_after_idle_but_never_beyond_capacity() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, 2.0, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        bucket.acquire()
    clock.now += 60  # long idle: the bucket holds 2 tokens, not 600
    t0 = clock()
    for _ in range(12):
        bucket.acquire()
    assert clock() - t0 >= (12 - 2) / 10.0 - 1e-9


def test_token_bucket_unlimited_never_waits() -> None:
    clock = FakeClock()
    bucket = TokenBucket(0, clock=clock, sleep=clock.sleep)
    for _ in range(1000):
        assert bucket.acquire() == 0
    assert clock() == 1000.0
    assert bucket.acquired == 1000


def test_token_bucket_defer_holds_everyone_then_resumes_at_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5.0, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    bucket.defer(3.0)
    t0 = clock()
    bucket.acquire()
    assert clock() - t0 >= 3.0 - 1e-9
    t1 = clock()
    for _ in range(5):
        bucket.acquire()
    assert clock() - t1 >= 5 / 5.0 - 1e-9  # no burst when the pause ends


def test_token_bucket_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        TokenBucket(-1)
    with pytest.raises(ValueError):
        TokenBucket(1, capacity=0.5)


def test_token_bucket_is_thread_safe_with_real_clock() -> None:
    rate, threads, each = 50.0, 8, 5
    bucket = TokenBucket(rate)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(each):
            bucket.acquire()
            with lock:
                stamps.append(time.monotonic())

    t0 = time.monotonic()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    n = threads * each
    assert bucket.acquired == n
    assert time.monotonic() - t0 >= (n - 1) / rate * 0.98
    stamps.sort()
    # The bucket's guarantee is that nobody leaves early: the k-th release (in time order) is
    # not before t0 + k/rate (capacity 1). A descheduled thread only leaves late, so this holds
    # on any host however loaded, and two threads handed the same slot would break it.
    for k, stamp in enumerate(stamps):
        assert stamp >= t0 + k / rate - 0.002, (k, stamp - t0)


# -- retries -----------------------------------------------------------------------------------


def test_backoff_is_full_jitter_and_capped() -> None:
    rng = random.Random(1)
    for retry in range(1, 12):
        ceiling = min(BACKOFF_CAP_SECONDS, 0.5 * 2 ** (retry - 1))
        values = [backoff_delay(retry, 0.5, rng=rng) for _ in range(200)]
        assert all(0 <= v <= ceiling for v in values)
    assert max(backoff_delay(30, 1.0, rng=rng) for _ in range(200)) <= BACKOFF_CAP_SECONDS
    assert backoff_delay(3, 0.0) == 0.0


def _retrier(sleep: FakeSleep, attempts: int = 4, **kw: Any) -> Retrier:
    return Retrier(attempts=attempts, base_delay=0.5, sleep=sleep, rng=random.Random(0), **kw)


def test_slowdown_retry_after_is_honoured(s3_endpoint: str) -> None:
    client = make_client(cfg())
    seen = inject(client, [(503, "SlowDown", {"Retry-After": "2"})])
    sleep = FakeSleep()
    errors: list[tuple[Any, bool]] = []
    limiter = TokenBucket(0, sleep=sleep)
    retrier = _retrier(sleep, limiter=limiter, on_error=lambda i, r: errors.append((i, r)))
    resp = retrier.call("ListObjectsV2", "x/", lambda: client.list_objects_v2(Bucket=BUCKET))
    assert resp["KeyCount"] == 0
    assert len(seen) == 2
    assert sleep.calls[0] >= 2.0
    assert limiter.acquired == 2  # every attempt goes through the limiter
    assert errors[0][0].throttled and errors[0][1] is True
    assert errors[0][0].retry_after == 2.0


def test_an_s3_input_throttled_holds_the_run_back_for_retry_after() -> None:
    """NGSIM's S3 reads: a SlowDown with Retry-After defers every request of the run (the
    shared limiter) and the pipeline's retry waits at least that long."""
    clock = FakeClock()
    limiter = TokenBucket(0, clock=clock, sleep=clock.sleep)

    def throttled() -> None:
        raise client_error("SlowDown", 503, {"Retry-After": "3"})

    inp = S3Input("s3://b/k.csv", client=None, limiter=limiter)
    with pytest.raises(TransientFetchError) as e:
        inp._call("GetObject", throttled)
    assert e.value.retry_after == 3.0
    assert RetryPolicy(3, 0.5).delay(1, e.value.retry_after) >= 3.0
    assert limiter.acquire() == pytest.approx(3.0)  # the next request waits for Retry-After


def test_an_s3_input_not_there_says_which_part_is_missing() -> None:
    """A HEAD's 404 has no body: one HeadBucket tells a missing bucket from a missing object,
    and when it cannot (no right to list the bucket) the message says both."""

    class Client:
        def __init__(self, bucket_error: Exception | None) -> None:
            self.bucket_error = bucket_error

        def head_object(self, **_: Any) -> Any:
            raise client_error("404", 404)

        def head_bucket(self, **_: Any) -> Any:
            if self.bucket_error is not None:
                raise self.bucket_error
            return {}

    cases = [
        (None, ConfigError, "(bucket 'b' has no object 'd/k.csv')"),
        (client_error("404", 404), NoSuchBucketError, "(there is no bucket 'b'"),
        (client_error("403", 403), ConfigError, "(no object 'd/k.csv' in bucket 'b', or no such bucket)"),
    ]  # fmt: skip
    for bucket_error, kind, detail in cases:
        with pytest.raises(kind) as raised:
            S3Input("s3://b/d/k.csv", client=Client(bucket_error)).stat()
        assert str(raised.value).startswith(f"input not found: s3://b/d/k.csv {detail}")
        assert "removed since it was listed" not in str(raised.value)


def test_an_s3_input_refused_to_an_unsigned_client_says_it_was_anonymous() -> None:
    """`ingest --source ngsim --path s3://... --no-sign-request` refused: "S3 refused the
    request ... try --no-sign-request" (the CV ingest says "an anonymous request")."""

    class Client:
        def __init__(self, unsigned: bool) -> None:
            self.meta = type("Meta", (), {"config": Config(signature_version=UNSIGNED)})()
            if not unsigned:
                self.meta.config = Config()

        def head_object(self, **_: Any) -> Any:
            raise client_error("AccessDenied", 403)

    with pytest.raises(CredentialsError) as anonymous:
        S3Input("s3://b/k.csv", client=Client(unsigned=True)).stat()
    assert "an anonymous (unsigned) request" in str(anonymous.value)
    assert "drop --no-sign-request" in str(anonymous.value)
    with pytest.raises(CredentialsError) as signed:
        S3Input("s3://b/k.csv", client=Client(unsigned=False)).stat()
    assert "try --no-sign-request" in str(signed.value)


def test_429_is_retried(s3_endpoint: str) -> None:
    client = make_client(cfg())
    seen = inject(client, [(429, "TooManyRequests", {}), (429, "TooManyRequests", {})])
    sleep = FakeSleep()
    resp = _retrier(sleep).call(
        "ListObjectsV2", "x/", lambda: client.list_objects_v2(Bucket=BUCKET)
    )
    assert resp["KeyCount"] == 0
    assert len(seen) == 3
    assert len(sleep.calls) == 2
    assert all(0 <= s <= 1.0 for s in sleep.calls)


def test_injected_connection_errors_are_retried(s3_endpoint: str) -> None:
    client = make_client(cfg())
    inject(
        client,
        [EndpointConnectionError(endpoint_url=s3_endpoint), ConnectionResetError(104, "reset")],
    )
    sleep = FakeSleep()
    resp = _retrier(sleep).call(
        "ListObjectsV2", "x/", lambda: client.list_objects_v2(Bucket=BUCKET)
    )
    assert resp["KeyCount"] == 0
    assert len(sleep.calls) == 2


def test_unreachable_endpoint_fails_after_all_attempts(s3_endpoint: str) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # not the one AWS_ENDPOINT_URL_S3 names
    client = make_client(cfg(endpoint_url=endpoint, timeout_seconds=5))
    sleep = FakeSleep()
    with pytest.raises(EndpointUnreachableError) as ei:
        _retrier(sleep).call(
            "ListObjectsV2", "wydot/BSM/", lambda: client.list_objects_v2(Bucket=BUCKET)
        )
    assert str(ei.value) == (
        f"cannot reach the S3 endpoint {endpoint}/ (connection refused after 4 attempts); "
        "is it running?"
    )
    assert isinstance(ei.value.__cause__, EndpointConnectionError)
    assert len(sleep.calls) == 3


def test_access_denied_is_never_retried(s3_endpoint: str) -> None:
    client = make_client(cfg())
    seen = inject(client, [(403, "AccessDenied", {})])
    sleep = FakeSleep()
    with pytest.raises(CredentialsError) as ei:
        _retrier(sleep).call("ListObjectsV2", "x/", lambda: client.list_objects_v2(Bucket=BUCKET))
    assert len(seen) == 1
    assert sleep.calls == []
    assert "AccessDenied" in str(ei.value)
    assert "sandbox" not in str(ei.value)  # the dummy key id / secret


def test_persistent_slowdown_reports_reason_and_attempts(s3_endpoint: str) -> None:
    client = make_client(cfg())
    inject(client, [(503, "SlowDown", {})] * 3)
    sleep = FakeSleep()
    with pytest.raises(S3Error) as ei:
        _retrier(sleep, attempts=3).call(
            "ListObjectsV2", "thea/", lambda: client.list_objects_v2(Bucket=BUCKET)
        )
    assert str(ei.value).startswith("ListObjectsV2 thea/: SlowDown (HTTP 503)")
    assert str(ei.value).endswith("after 3 attempts")
    inject(client, [(503, "SlowDown", {})])
    with pytest.raises(S3Error) as once:  # retry_attempts 0: one attempt, not "after 1 attempts"
        _retrier(sleep, attempts=1).call(
            "ListObjectsV2", "thea/", lambda: client.list_objects_v2(Bucket=BUCKET)
        )
    assert str(once.value) == "ListObjectsV2 thea/: SlowDown (HTTP 503): injected SlowDown"


def test_non_s3_errors_propagate_unchanged() -> None:
    sleep = FakeSleep()

    def boom() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        _retrier(sleep).call("GetObject", "k", boom)
    assert sleep.calls == []


def test_a_missing_profile_is_named_whether_flag_or_environment_gave_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """AWS_PROFILE=nosuch said "AWS profile None not found" (the flag's value, not given)."""
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    with pytest.raises(ConfigError, match=r"^AWS profile 'byflag' not found"):
        make_client(cfg(profile="byflag"))
    monkeypatch.setenv("AWS_PROFILE", "byenv")
    with pytest.raises(ConfigError, match=r"^AWS profile 'byenv' not found"):
        make_client(cfg())
