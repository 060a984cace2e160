"""A fault-injecting HTTP reverse proxy for the local S3 endpoint (test helper, stdlib only).

Put it in front of the moto server and point AWS_ENDPOINT_URL_S3 at it. Every request is
forwarded as is; a thread-safe *fault plan* decides which responses to damage::

    with FaultProxy("http://127.0.0.1:5055") as proxy:
        proxy.add(Rule("500", op="GET", key="wydot/BSM/2021/04/02/*", times=2))
        proxy.add(Rule("slowdown", op="LIST", retry_after=1))      # once
        proxy.add(Rule("corrupt", op="GET", key="*/03/*", times=None))  # always
        ... run an ingest against proxy.endpoint_url ...
        assert proxy.injected("500") == 2

Fault kinds (``FAULTS``):

``500``       answer 500 InternalError (the request never reaches the endpoint)
``slowdown``  answer 503 SlowDown with a ``Retry-After`` header
``reset``     forward, send the headers and the first ``at`` fraction of the body, then reset
              the connection (SO_LINGER 0: the client gets RST, not FIN); with no body, reset
              before answering
``truncate``  forward, send the headers (with the full Content-Length) and the first ``at``
              fraction of the body, then close the connection cleanly
``corrupt``   forward, flip bytes in the body (XOR 0xFF at ``flips`` evenly spaced positions);
              status, headers and length are unchanged
``latency``   forward, then wait ``delay`` seconds before answering

Operations: ``GET`` (GetObject), ``LIST`` (ListObjectsV2 / ListObjects), ``HEAD`` (HeadObject /
HeadBucket), ``*`` (any); other requests (PUT, POST, DELETE) are forwarded and counted but only
match ``*``. ``key`` is an fnmatch pattern over the object key (GET/HEAD) or the listed prefix
(LIST). A rule fires ``times`` times (None: always); the first matching rule with budget left
fires, under one lock, so counts are exact across threads.

Every request is recorded (:class:`Seen`) and every injected fault too (:class:`Injected`), so a
test can assert ``retries == faults`` and measure the time between attempts.
"""

from __future__ import annotations

import contextlib
import fnmatch
import http.client
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

FAULTS = ("500", "slowdown", "reset", "truncate", "corrupt", "latency")
OPS = ("GET", "LIST", "HEAD", "*")
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)


@dataclass
class Rule:
    """Damage responses of ``op`` requests whose key matches ``key``, ``times`` times."""

    fault: str
    op: str = "GET"
    key: str = "*"
    times: int | None = 1
    retry_after: float | None = 1.0  # slowdown: the Retry-After header (None: no header)
    delay: float = 0.5  # latency: seconds added before the answer
    at: float = 0.5  # reset / truncate: fraction of the body sent first
    flips: int = 3  # corrupt: bytes flipped
    fired: int = 0

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; expected one of {FAULTS}")
        if self.op not in OPS:
            raise ValueError(f"unknown op {self.op!r}; expected one of {OPS}")

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def matches(self, op: str, key: str) -> bool:
        return (self.op == "*" or self.op == op) and fnmatch.fnmatchcase(key, self.key)


@dataclass(frozen=True)
class Seen:
    """One request that reached the proxy."""

    op: str
    key: str
    method: str
    range: str | None
    started: float  # time.monotonic() when the request arrived
    fault: str | None  # the fault injected into its response, if any


@dataclass(frozen=True)
class Injected:
    fault: str
    op: str
    key: str
    at: float  # time.monotonic() when the damaged response was sent / cut


@dataclass
class _Plan:
    rules: list[Rule] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    injected: list[Injected] = field(default_factory=list)


def classify(method: str, raw_path: str) -> tuple[str, str]:
    """(op, key) of a path-style S3 request: LIST's key is its prefix."""
    parsed = urllib.parse.urlsplit(raw_path)
    query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
    path = urllib.parse.unquote(parsed.path).lstrip("/")
    bucket, _, key = path.partition("/")
    if method == "GET" and not key and bucket:
        if "list-type" in query or not any(k in query for k in ("location", "acl", "policy")):
            return "LIST", (query.get("prefix") or [""])[0]
        return "GET", ""
    if method in ("GET", "HEAD"):
        return method, key
    return method, key


class FaultProxy:
    """A threaded reverse proxy on 127.0.0.1:<free port> forwarding to ``upstream``."""

    def __init__(self, upstream: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        u = urllib.parse.urlsplit(upstream)
        if u.scheme != "http" or not u.hostname or not u.port:
            raise ValueError(f"upstream must be http://host:port, got {upstream!r}")
        self.upstream = (u.hostname, u.port)
        self._lock = threading.Lock()
        self._plan = _Plan()
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = _Server((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="faultproxy", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the plan ---------------------------------------------------------------------------
    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self._plan.rules.append(rule)
        return rule

    def fault(self, fault: str, op: str = "GET", key: str = "*", **kw: Any) -> Rule:
        """Shortcut for add(Rule(...))."""
        return self.add(Rule(fault, op, key, **kw))

    def clear_rules(self) -> None:
        """No more faults (the counters are kept)."""
        with self._lock:
            self._plan.rules.clear()

    def reset(self) -> None:
        """No rules, no counters."""
        with self._lock:
            self._plan = _Plan()

    def _pick(self, op: str, key: str, method: str, rng: str | None) -> Rule | None:
        with self._lock:
            rule = next(
                (r for r in self._plan.rules if not r.exhausted and r.matches(op, key)), None
            )
            if rule is not None:
                rule.fired += 1
            fault = rule.fault if rule is not None else None
            self._plan.seen.append(Seen(op, key, method, rng, time.monotonic(), fault))
            return rule

    def _record(self, rule: Rule, op: str, key: str) -> None:
        with self._lock:
            self._plan.injected.append(Injected(rule.fault, op, key, time.monotonic()))

    # -- counters ----------------------------------------------------------------------------
    def seen(
        self,
        op: str | None = None,
        key: str | None = None,
        *,
        where: Callable[[Seen], bool] | None = None,
    ) -> list[Seen]:
        """Requests seen (optionally of one op, with a key matching an fnmatch pattern)."""
        with self._lock:
            items = list(self._plan.seen)
        return [
            s
            for s in items
            if (op is None or s.op == op)
            and (key is None or fnmatch.fnmatchcase(s.key, key))
            and (where is None or where(s))
        ]

    def faults(self, fault: str | None = None, op: str | None = None) -> list[Injected]:
        with self._lock:
            items = list(self._plan.injected)
        return [
            f for f in items if (fault is None or f.fault == fault) and (op is None or f.op == op)
        ]

    def injected(self, fault: str | None = None, op: str | None = None) -> int:
        """How many faults were injected (optionally of one kind / op)."""
        return len(self.faults(fault, op))

    def requests(self, op: str | None = None) -> int:
        return len(self.seen(op))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client went away (e.g. after its read timeout): nothing to report


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    # -- plumbing ---------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if body or self.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(*self.owner.upstream, timeout=60)
        try:
            conn.request(self.command, self.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.reason, resp.getheaders(), data
        finally:
            conn.close()

    def _send(
        self,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        length: int | None = None,
    ) -> None:
        self.send_response_only(status, reason)
        for k, v in headers:
            if k.lower() not in HOP_BY_HOP and k.lower() not in ("date", "server"):
                self.send_header(k, v)
        if length is None:
            length = len(body)
            if self.command == "HEAD":  # no body: keep the upstream's length
                length = int(dict((k.lower(), v) for k, v in headers).get("content-length", 0))
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self.wfile.flush()

    def _error(self, status: int, code: str, message: str, extra: list[tuple[str, str]]) -> None:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            "<RequestId>faultproxy</RequestId></Error>"
        ).encode()
        reason = http.client.responses.get(status, "Error")
        self._send(status, reason, [("Content-Type", "application/xml"), *extra], body)

    def _reset(self) -> None:
        """Abort the connection with RST (SO_LINGER on, timeout 0)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.connection.close()

    def _cut(self) -> None:
        """Close cleanly (FIN) in the middle of a response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- one request ------------------------------------------------------------------------
    def _handle(self) -> None:
        body = self._read_body()
        op, key = classify(self.command, self.path)
        rule = self.owner._pick(op, key, self.command, self.headers.get("Range"))
        fault = rule.fault if rule is not None else None
        if rule is None or fault in ("500", "slowdown"):
            if rule is not None and fault == "500":
                self.owner._record(rule, op, key)
                self._error(
                    500, "InternalError", "We encountered an internal error (injected).", []
                )
                return
            if rule is not None and fault == "slowdown":
                extra = []
                if rule.retry_after is not None:
                    extra.append(("Retry-After", f"{rule.retry_after:g}"))
                self.owner._record(rule, op, key)
                self._error(503, "SlowDown", "Please reduce your request rate (injected).", extra)
                return
            status, reason, headers, data = self._forward(body)
            self._send(status, reason, headers, data)
            return

        status, reason, headers, data = self._forward(body)
        payload = data if self.command != "HEAD" else b""
        if fault == "latency":
            self.owner._record(rule, op, key)
            time.sleep(rule.delay)
            self._send(status, reason, headers, data)
        elif fault == "corrupt":
            damaged = bytearray(data)
            n = len(damaged)
            for i in range(rule.flips):
                if n:
                    damaged[(n * (i + 1)) // (rule.flips + 1)] ^= 0xFF
            self.owner._record(rule, op, key)
            self._send(status, reason, headers, bytes(damaged))
        elif fault == "reset":
            if payload:
                cut = int(len(payload) * rule.at)
                self._send(status, reason, headers, payload[:cut], length=len(payload))
            self.owner._record(rule, op, key)
            self._reset()
        elif fault == "truncate":
            cut = int(len(payload) * rule.at)
            self._send(status, reason, headers, payload[:cut], length=len(payload) or None)
            self.owner._record(rule, op, key)
            self._cut()
