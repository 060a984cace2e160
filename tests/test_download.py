"""Listing and downloading against the real local S3 endpoint: pagination, resume, integrity,
rate limiting and failure handling."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ResponseStreamingError
from hypothesis import given
from hypothesis import strategies as st

from cvcatalog.config import DownloadConfig
from cvcatalog.exceptions import CredentialsError, IntegrityError, S3Error
from cvcatalog.io import download
from cvcatalog.io.download import CHUNK_SIZE, HEAD_BYTES, DownloadResult, ObjectInfo, S3Fetcher
from cvcatalog.io.s3 import make_client
from cvcatalog.sources.bucket import BUCKET

PREFIX = "wydot/BSM/2021/04/01/00/"


# The same small helpers as in test_s3.py (kept local: tests/ is not a package).


class FakeSleep:
    """Records requested sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def inject(client: Any, canned: list[Any], when: Any = None) -> list[Any]:
    """Answer the next matching requests with canned S3 errors (status, code, headers) or
    raise canned exceptions; afterwards requests reach the real server. Records requests."""
    seen: list[Any] = []
    queue = list(canned)

    def handler(request: Any, **_: Any) -> AWSResponse | None:
        seen.append(request)
        if queue and (when is None or when(request)):
            item = queue.pop(0)
            if isinstance(item, BaseException):
                raise item
            status, code, headers = item
            body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
            return AWSResponse(request.url, status, headers, _Raw(body))
        return None

    client.meta.events.register("before-send.s3", handler)
    return seen


def cfg(**kw: Any) -> DownloadConfig:
    base: dict[str, Any] = {"rate_limit": 0, "retry_attempts": 3, "retry_delay_seconds": 0.5}
    base.update(kw)
    return DownloadConfig(**base)


def payload(n: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating-ish bytes (NDJSON-like lines)."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += f'{{"seed":{seed},"i":{i},"v":"{hashlib.md5(f"{seed}-{i}".encode()).hexdigest()}"}}\n'.encode()
        i += 1
    return bytes(out[:n])


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def md5_sum(data: bytes) -> str:
    """DownloadResult.checksum of a copy verified by the ETag's MD5."""
    return f"md5:{md5(data)}"


def crc_sum(data: bytes) -> str:
    """DownloadResult.checksum of a copy verified by S3's stored CRC32."""
    return f"crc32:{zlib.crc32(data):08x}"


def fetcher(**kw: Any) -> tuple[S3Fetcher, FakeSleep]:
    sleep = FakeSleep()
    return S3Fetcher(make_client(cfg(**kw)), cfg(**kw), BUCKET, sleep=sleep), sleep


def put(s3_client: Any, key: str, data: bytes, *, legacy: bool = False) -> ObjectInfo:
    """Upload data; ``legacy`` uploads it without a stored checksum, as the bucket's older
    objects are (only the ETag's MD5 can verify them)."""
    client = s3_client
    if legacy:
        client = boto3.client("s3", config=Config(request_checksum_calculation="when_required"))
    resp = client.put_object(Bucket=BUCKET, Key=key, Body=data)
    return ObjectInfo(key, len(data), resp["ETag"].strip('"'), datetime.now(UTC))


def record_gets(f: S3Fetcher) -> list[Any]:
    """A live list of every GetObject request the fetcher's client sends."""
    seen: list[Any] = []
    f.client.meta.events.register(
        "before-send.s3.GetObject", lambda request, **_: seen.append(request)
    )
    return seen


# -- listing -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_list_paginates_past_1000_keys(s3_endpoint: str, s3_client: Any) -> None:
    """S3's own page cap: 1001 keys need two ListObjectsV2 calls (seeding takes ~10 s)."""
    keys = [f"{PREFIX}obj-{i:05d}" for i in range(1001)]
    for k in keys:
        s3_client.put_object(Bucket=BUCKET, Key=k, Body=b"x")
    s3_client.put_object(Bucket=BUCKET, Key="wydot/BSM/2021/04/01/01/other", Body=b"y")
    f, _ = fetcher()
    objs = f.list(PREFIX)
    assert [o.key for o in objs] == keys
    assert f.stats.list_requests == 2
    assert all(o.size == 1 and o.etag == md5(b"x") for o in objs)
    assert all(isinstance(o.last_modified, datetime) for o in objs)


def test_list_small_pages(s3_endpoint: str, s3_client: Any) -> None:
    """Pagination with a small page size stands in for > 1000 keys and keeps the test fast."""
    keys = [f"{PREFIX}obj-{i:03d}" for i in range(25)]
    for k in keys:
        s3_client.put_object(Bucket=BUCKET, Key=k, Body=k.encode())
    s3_client.put_object(Bucket=BUCKET, Key="wydot/BSM/2021/04/01/01/other", Body=b"y")
    f, _ = fetcher(rate_limit=0)
    objs = f.list(PREFIX, page_size=10)
    assert [o.key for o in objs] == keys
    assert [o.size for o in objs] == [len(k) for k in keys]
    assert objs[0].etag == md5(keys[0].encode())
    assert f.stats.list_requests == 3
    assert f.limiter.acquired == 3


def test_list_retries_one_page_without_restarting(s3_endpoint: str, s3_client: Any) -> None:
    for i in range(5):
        s3_client.put_object(Bucket=BUCKET, Key=f"{PREFIX}{i}", Body=b"z")
    f, sleep = fetcher()
    # the second page request fails once with 503 SlowDown
    seen = inject(
        f.client,
        [(503, "SlowDown", {"Retry-After": "1"})],
        when=lambda r: "continuation-token" in r.url,
    )
    objs = f.list(PREFIX, page_size=3)
    assert len(objs) == 5
    assert len(seen) == 3  # page 1, page 2 (503), page 2 again
    assert f.stats.list_requests == 3
    assert f.stats.retries == 1
    assert f.stats.throttled == 1
    assert sleep.calls[0] >= 1.0


def test_empty_prefix_is_an_empty_list(s3_endpoint: str) -> None:
    f, _ = fetcher()
    assert f.list("wydot/BSM/1999/01/01/") == []
    assert f.stats.list_requests == 1


def test_missing_bucket_is_a_clear_error(s3_endpoint: str) -> None:
    f, sleep = fetcher()
    f.bucket = "no-such-bucket"
    with pytest.raises(S3Error, match=r"NoSuchBucket.*does not exist"):
        f.list(PREFIX)
    assert sleep.calls == []


# -- downloading -------------------------------------------------------------------------------


@pytest.mark.parametrize("legacy", [False, True], ids=["stored-crc32", "etag-md5-only"])
def test_download_verifies_and_lands_atomically(
    s3_endpoint: str, s3_client: Any, tmp_path: Path, legacy: bool
) -> None:
    data = payload(3 * CHUNK_SIZE + 123)
    obj = put(s3_client, PREFIX + "a", data, legacy=legacy)
    f, _ = fetcher()
    dest = tmp_path / "deep" / "dir" / "a.ndjson"
    progress: list[int] = []
    res = f.download(obj, dest, on_bytes=progress.append)
    expected = md5_sum(data) if legacy else crc_sum(data)
    how = "md5" if legacy else "crc32"
    # the object's first bytes come with it: a conversion sniffs them instead of the copy
    assert res == DownloadResult(dest, len(data), expected, 0, how, head=data[:HEAD_BYTES])
    assert dest.read_bytes() == data
    assert sum(progress) == len(data)
    assert max(progress) <= CHUNK_SIZE
    assert f.stats.get_requests == 1
    assert f.stats.bytes_downloaded == len(data)
    part, sidecar = S3Fetcher.part_paths(dest)
    assert not part.exists() and not sidecar.exists()


def test_existing_good_file_is_not_fetched_again(
    s3_endpoint: str, s3_client: Any, tmp_path: Path
) -> None:
    data = payload(5000)
    obj = put(s3_client, PREFIX + "b", data)
    f, _ = fetcher()
    dest = tmp_path / "b"
    f.download(obj, dest)
    res = f.download(obj, dest)
    assert res.skipped and res.checksum == md5_sum(data)
    assert res.resumed_from == res.size  # nothing transferred
    assert res.head is None  # nothing read either
    assert f.stats.get_requests == 1 == f.get_requests
    assert f.stats.skipped == 1


def test_existing_bad_file_is_replaced(s3_endpoint: str, s3_client: Any, tmp_path: Path) -> None:
    data = payload(5000)
    obj = put(s3_client, PREFIX + "b", data)
    dest = tmp_path / "b"
    dest.write_bytes(b"\0" * len(data))  # right size, wrong bytes
    f, _ = fetcher()
    res = f.download(obj, dest)
    assert not res.skipped
    assert dest.read_bytes() == data


def test_empty_object(s3_endpoint: str, s3_client: Any, tmp_path: Path) -> None:
    obj = put(s3_client, PREFIX + "empty", b"")
    f, _ = fetcher()
    res = f.download(obj, tmp_path / "empty")
    assert res.size == 0 and res.checksum == crc_sum(b"") and res.verified == "crc32"
    assert (tmp_path / "empty").read_bytes() == b""


@pytest.fixture
def resumable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Objects of every size resume across processes (the tests' objects are small)."""
    monkeypatch.setattr(download, "RESUME_MIN_BYTES", 0)


def test_a_small_object_has_no_sidecar_and_a_leftover_is_fetched_whole(
    s3_endpoint: str, s3_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = payload(10_000)
    obj = put(s3_client, PREFIX + "small", data)
    dest = tmp_path / "small"
    _leave_partial(dest, obj, data[:4000])  # a crashed process's partial, sidecar and all
    monkeypatch.setattr(download, "RESUME_MIN_BYTES", len(data) + 1)
    f, _ = fetcher()
    seen = record_gets(f)
    made: list[str] = []
    real = Path.write_text
    monkeypatch.setattr(
        Path, "write_text", lambda p, *a, **k: made.append(p.name) or real(p, *a, **k)
    )
    res = f.download(obj, dest)
    assert res.resumed_from == 0 and dest.read_bytes() == data
    assert _header(seen[0], "Range") is None
    assert made == []  # no sidecar written
    part, sidecar = S3Fetcher.part_paths(dest)
    assert not part.exists() and not sidecar.exists()
    monkeypatch.setattr(download, "RESUME_MIN_BYTES", len(data))  # at the threshold: resumes
    dest.unlink()
    _leave_partial(dest, obj, data[:4000])
    assert f.download(obj, dest).resumed_from == 4000


def _leave_partial(dest: Path, obj: ObjectInfo, data: bytes, **override: Any) -> None:
    part, sidecar = S3Fetcher.part_paths(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(data)
    sidecar.write_text(json.dumps({"key": obj.key, "size": obj.size, "etag": obj.etag, **override}))


@pytest.mark.usefixtures("resumable")
def test_resume_from_partial_file(s3_endpoint: str, s3_client: Any, tmp_path: Path) -> None:
    data = payload(2 * CHUNK_SIZE + 777)
    obj = put(s3_client, PREFIX + "c", data)
    half = len(data) // 2
    dest = tmp_path / "c"
    _leave_partial(dest, obj, data[:half])
    f, _ = fetcher()
    seen = record_gets(f)
    res = f.download(obj, dest)
    assert res.resumed_from == half
    assert res.head is None  # its start came from disk
    assert res.checksum == md5_sum(data)  # resumed from disk: only the ETag can check it
    assert dest.read_bytes() == data
    assert len(seen) == 1
    assert _header(seen[0], "Range") == f"bytes={half}-"
    assert f.stats.bytes_downloaded == len(data) - half
    assert f.stats.resumed == 1


def _header(req: Any, name: str) -> str | None:
    value = req.headers.get(name)
    return value.decode() if isinstance(value, bytes) else value


@pytest.mark.usefixtures("resumable")
def test_resume_sends_if_match(s3_endpoint: str, s3_client: Any, tmp_path: Path) -> None:
    data = payload(10_000)
    obj = put(s3_client, PREFIX + "c2", data)
    dest = tmp_path / "c2"
    _leave_partial(dest, obj, data[:4000])
    f, _ = fetcher()
    seen = record_gets(f)
    f.download(obj, dest)
    assert _header(seen[0], "If-Match") == f'"{obj.etag}"'
    assert _header(seen[0], "Range") == "bytes=4000-"


@pytest.mark.usefixtures("resumable")
def test_corrupted_partial_file_is_detected_and_redone(
    s3_endpoint: str, s3_client: Any, tmp_path: Path
) -> None:
    data = payload(CHUNK_SIZE + 5000)
    obj = put(s3_client, PREFIX + "d", data)
    half = len(data) // 2
    dest = tmp_path / "d"
    _leave_partial(dest, obj, b"\xff" * half)  # matching sidecar, wrong bytes
    f, _ = fetcher()
    seen = record_gets(f)
    res = f.download(obj, dest)
    assert dest.read_bytes() == data
    assert res.checksum == crc_sum(data)
    assert res.resumed_from == 0
    assert [_header(r, "Range") for r in seen] == [f"bytes={half}-", None]
    assert f.stats.integrity_failures == 1


def test_partial_file_of_another_version_is_discarded(
    s3_endpoint: str, s3_client: Any, tmp_path: Path
) -> None:
    data = payload(9000)
    obj = put(s3_client, PREFIX + "e", data)
    dest = tmp_path / "e"
    _leave_partial(dest, obj, data[:3000], etag="0" * 32)
    f, _ = fetcher()
    seen = record_gets(f)
    res = f.download(obj, dest)
    assert res.resumed_from == 0
    assert _header(seen[0], "Range") is None
    assert dest.read_bytes() == data


class _FlakyBody:
    """Wraps a real response body and drops the connection after ``fail_after`` bytes."""

    def __init__(self, inner: Any, fail_after: int) -> None:
        self.inner = inner
        self.left = fail_after

    def read(self, amt: int | None = None) -> bytes:
        if self.left <= 0:
            raise ResponseStreamingError(error="Connection reset by peer")
        data: bytes = self.inner.read(min(amt or self.left, self.left))
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.inner.close()


def test_connection_reset_mid_body_resumes(
    s3_endpoint: str, s3_client: Any, tmp_path: Path
) -> None:
    data = payload(2 * CHUNK_SIZE + 999)
    obj = put(s3_client, PREFIX + "f", data)
    cut = CHUNK_SIZE + CHUNK_SIZE // 2
    f, sleep = fetcher()
    calls = []

    def break_first_body(parsed: dict[str, Any], **_: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            parsed["Body"] = _FlakyBody(parsed["Body"], cut)

    f.client.meta.events.register("after-call.s3.GetObject", break_first_body)
    seen = record_gets(f)
    res = f.download(obj, tmp_path / "f")
    assert res.checksum == crc_sum(data)  # the CRC32 spans both responses
    assert res.head == data[:HEAD_BYTES]  # kept from the first response
    assert (tmp_path / "f").read_bytes() == data
    assert [_header(r, "Range") for r in seen] == [None, f"bytes={cut}-"]
    assert f.stats.retries == 1
    assert f.stats.bytes_downloaded == len(data)
    assert len(sleep.calls) == 1


@pytest.mark.usefixtures("resumable")
def test_persistent_mid_body_failure_keeps_partial_for_next_run(
    s3_endpoint: str, s3_client: Any, tmp_path: Path
) -> None:
    data = payload(3 * CHUNK_SIZE)
    obj = put(s3_client, PREFIX + "g", data)
    f, _ = fetcher(retry_attempts=1)
    f.client.meta.events.register(
        "after-call.s3.GetObject",
        lambda parsed, **_: parsed.__setitem__("Body", _FlakyBody(parsed["Body"], CHUNK_SIZE)),
    )
    dest = tmp_path / "g"
    with pytest.raises(
        S3Error, match=r"^GetObject wydot/BSM/.*/g: ResponseStreamingError.*after 2 attempts$"
    ):
        f.download(obj, dest)
    part, sidecar = S3Fetcher.part_paths(dest)
    assert part.stat().st_size == 2 * CHUNK_SIZE
    assert sidecar.exists() and not dest.exists()
    # "next run": a healthy client picks up where the last one stopped
    g, _ = fetcher()
    res = g.download(obj, dest)
    assert res.resumed_from == 2 * CHUNK_SIZE
    assert dest.read_bytes() == data


def test_checksum_mismatch_raises_after_retry_budget(
    s3_endpoint: str, s3_client: Any, tmp_path: Path
) -> None:
    data = payload(4000)
    real = put(s3_client, PREFIX + "h", data)
    f, _ = fetcher(retry_attempts=2)
    # listed with the right size but another ETag: S3's If-Match would refuse, so drop it

    def drop_if_match(params: dict[str, Any], **_: Any) -> None:
        params["headers"].pop("If-Match", None)

    f.client.meta.events.register("before-call.s3.GetObject", drop_if_match)
    lying = ObjectInfo(real.key, real.size, "0" * 32, real.last_modified)
    dest = tmp_path / "h"
    with pytest.raises(IntegrityError) as ei:
        f.download(lying, dest)
    msg = str(ei.value)
    assert real.key in msg and "0" * 32 in msg and f"served etag {md5(data)}" in msg
    assert f.stats.get_requests == 3
    assert f.stats.integrity_failures == 3
    part, sidecar = S3Fetcher.part_paths(dest)
    assert not dest.exists() and not part.exists() and not sidecar.exists()


def test_wrong_size_is_an_integrity_error(s3_endpoint: str, s3_client: Any, tmp_path: Path) -> None:
    real = put(s3_client, PREFIX + "i", payload(4000))
    f, _ = fetcher(retry_attempts=0)
    with pytest.raises(IntegrityError, match="expected size 5000"):
        f.download(ObjectInfo(real.key, 5000, real.etag, real.last_modified), tmp_path / "i")


def test_object_changed_since_listing(s3_endpoint: str, s3_client: Any, tmp_path: Path) -> None:
    old = put(s3_client, PREFIX + "j", payload(4000, seed=1))
    put(s3_client, PREFIX + "j", payload(4000, seed=2))
    f, sleep = fetcher()
    with pytest.raises(S3Error, match="changed since it was listed"):
        f.download(old, tmp_path / "j")
    assert f.stats.get_requests == 1 and sleep.calls == []
    part, sidecar = S3Fetcher.part_paths(tmp_path / "j")
    assert not part.exists() and not sidecar.exists()


def test_get_slowdown_with_retry_after(s3_endpoint: str, s3_client: Any, tmp_path: Path) -> None:
    data = payload(2000)
    obj = put(s3_client, PREFIX + "k", data)
    f, sleep = fetcher()
    inject(f.client, [(503, "SlowDown", {"Retry-After": "3"}), (429, "TooManyRequests", {})])
    res = f.download(obj, tmp_path / "k")
    assert res.checksum == crc_sum(data)
    assert f.stats.throttled == 2
    assert f.stats.retries == 2
    assert f.stats.get_requests == 3
    assert sleep.calls[0] >= 3.0


def test_access_denied_on_get(s3_endpoint: str, s3_client: Any, tmp_path: Path) -> None:
    obj = put(s3_client, PREFIX + "l", b"data")
    f, sleep = fetcher()
    inject(f.client, [(403, "AccessDenied", {})])
    with pytest.raises(CredentialsError, match="AccessDenied"):
        f.download(obj, tmp_path / "l")
    assert f.stats.get_requests == 1 and sleep.calls == []


# -- multipart ETags -----------------------------------------------------------------------


def _put_multipart(s3_client: Any, key: str, parts: list[bytes]) -> ObjectInfo:
    up = s3_client.create_multipart_upload(Bucket=BUCKET, Key=key)
    done = []
    for n, chunk in enumerate(parts, start=1):
        r = s3_client.upload_part(
            Bucket=BUCKET, Key=key, UploadId=up["UploadId"], PartNumber=n, Body=chunk
        )
        done.append({"PartNumber": n, "ETag": r["ETag"]})
    s3_client.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": done}
    )
    head = s3_client.head_object(Bucket=BUCKET, Key=key)
    return ObjectInfo(key, head["ContentLength"], head["ETag"].strip('"'), head["LastModified"])


def test_multipart_etag_verified_with_common_part_size(
    s3_endpoint: str, s3_client: Any, tmp_path: Path
) -> None:
    data = payload(5 * 1024 * 1024 + 4321)
    obj = _put_multipart(
        s3_client, PREFIX + "mp", [data[: 5 * 1024 * 1024], data[5 * 1024 * 1024 :]]
    )
    assert obj.etag.endswith("-2")
    f, _ = fetcher()
    res = f.download(obj, tmp_path / "mp")
    assert res.verified == "multipart-md5"
    assert res.checksum == md5_sum(data)


def test_multipart_etag_with_unusual_part_size_is_size_only(
    s3_endpoint: str, s3_client: Any, tmp_path: Path
) -> None:
    cut = 6 * 1024 * 1024 + 17
    data = payload(cut + 1000)
    obj = _put_multipart(s3_client, PREFIX + "mp2", [data[:cut], data[cut:]])
    f, _ = fetcher()
    res = f.download(obj, tmp_path / "mp2")
    assert res.verified == "size-only"
    assert (tmp_path / "mp2").read_bytes() == data


# -- many --------------------------------------------------------------------------------------


def test_download_many_collects_failures(s3_endpoint: str, s3_client: Any, tmp_path: Path) -> None:
    objs = [put(s3_client, f"{PREFIX}m{i}", payload(3000 + i, seed=i)) for i in range(6)]
    bad = ObjectInfo(objs[2].key, objs[2].size + 1, objs[2].etag, objs[2].last_modified)
    objs[2] = bad
    f, _ = fetcher(max_workers=3, retry_attempts=1)
    results, failures = f.download_many(objs, lambda o: tmp_path / o.key)
    assert [r.path.name for r in results] == ["m0", "m1", "m3", "m4", "m5"]
    assert len(failures) == 1
    assert failures[0][0] == bad and isinstance(failures[0][1], IntegrityError)


def test_download_many_aborts_on_credentials_error(
    s3_endpoint: str, s3_client: Any, tmp_path: Path
) -> None:
    objs = [put(s3_client, f"{PREFIX}n{i}", payload(100, seed=i)) for i in range(8)]
    f, _ = fetcher(max_workers=2)
    inject(f.client, [(403, "AccessDenied", {})], when=lambda r: r.url.endswith("/n3"))
    with pytest.raises(CredentialsError):
        f.download_many(objs, lambda o: tmp_path / o.key)


def test_download_many_rejects_colliding_destinations(tmp_path: Path) -> None:
    f = S3Fetcher(None, cfg(), BUCKET)
    a = ObjectInfo("x/a", 1, "0" * 32, datetime.now(UTC))
    b = ObjectInfo("y/a", 1, "0" * 32, datetime.now(UTC))
    with pytest.raises(ValueError, match="both be written"):
        f.download_many([a, b], lambda o: tmp_path / o.key.rsplit("/", 1)[1])


def test_rate_limit_holds_across_threads(s3_endpoint: str, s3_client: Any, tmp_path: Path) -> None:
    objs = [put(s3_client, f"{PREFIX}r{i:02d}", payload(200, seed=i)) for i in range(20)]
    client = make_client(cfg())
    f = S3Fetcher(client, cfg(rate_limit=10, max_workers=4), BUCKET)
    t0 = time.monotonic()
    results, failures = f.download_many(objs, lambda o: tmp_path / o.key)
    elapsed = time.monotonic() - t0
    assert not failures and len(results) == 20
    assert f.limiter.acquired == 20
    assert f.stats.get_requests == 20
    assert elapsed >= 1.9 * 0.99


def test_download_tolerates_dest_given_as_str(
    s3_endpoint: str, s3_client: Any, tmp_path: Path
) -> None:
    obj = put(s3_client, PREFIX + "s", b"abc")
    f, _ = fetcher()
    res = f.download(obj, Path(os.fspath(tmp_path / "s")))
    assert res.path.read_bytes() == b"abc"


_KILLED_DOWNLOADER = """
import os, sys
from datetime import UTC, datetime
from pathlib import Path
from cvcatalog.config import DownloadConfig
from cvcatalog.io.download import ObjectInfo, S3Fetcher
from cvcatalog.io.s3 import make_client

key, size, etag, dest, stop_at = sys.argv[1:]
cfg = DownloadConfig(rate_limit=0)
fetcher = S3Fetcher(make_client(cfg), cfg, "usdot-its-cvpilot-publicdata")
got = 0

def on_bytes(n):
    global got
    got += n
    if got >= int(stop_at):
        os._exit(9)  # killed mid-body: no cleanup, no exception handlers

fetcher.download(ObjectInfo(key, int(size), etag, datetime.now(UTC)), Path(dest), on_bytes)
"""


def test_resume_after_the_process_was_killed(
    s3_endpoint: str, s3_client: Any, tmp_path: Path
) -> None:
    data = payload(max(4 * CHUNK_SIZE, download.RESUME_MIN_BYTES) + 10)  # resumable as shipped
    obj = put(s3_client, PREFIX + "killed", data)
    dest = tmp_path / "killed"
    args = [obj.key, str(obj.size), obj.etag, str(dest), str(2 * CHUNK_SIZE)]
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_DOWNLOADER, *args], capture_output=True, timeout=60
    )
    assert proc.returncode == 9, proc.stderr.decode()
    part, sidecar = S3Fetcher.part_paths(dest)
    have = part.stat().st_size
    assert CHUNK_SIZE <= have < len(data)
    assert json.loads(sidecar.read_text())["etag"] == obj.etag
    assert not dest.exists()
    f, _ = fetcher()
    res = f.download(obj, dest)
    assert res.resumed_from == have
    assert dest.read_bytes() == data
    assert f.stats.bytes_downloaded == len(data) - have


@given(st.lists(st.binary(max_size=3000), max_size=8), st.integers(0, 2**32 - 1))
def test_a_crc32_fed_in_any_chunks_is_zlibs_crc32_of_the_whole(
    chunks: list[bytes], stored: int
) -> None:
    """The CRC32 a download is verified by (ISA-L's) is the value S3 stores: zlib's of the
    whole object, however the body arrived; a stored value it is not is reported as such."""
    whole = b"".join(chunks)
    digests = download._Digests()
    digests.expect_crc32(zlib.crc32(whole))
    for chunk in chunks:
        digests.update(memoryview(chunk))
    assert digests.value() == crc_sum(whole)
    assert (digests.crc32 == stored) == (zlib.crc32(whole) == stored)
