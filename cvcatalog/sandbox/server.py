"""Run moto's S3-compatible server as a separate process on 127.0.0.1.

The server is a real HTTP endpoint, so boto3 and DuckDB's httpfs talk to it exactly as they
would talk to AWS; only the endpoint URL differs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from cvcatalog.config import DownloadConfig, download_config, spelled
from cvcatalog.exceptions import ConfigError, S3Error, SandboxError
from cvcatalog.io.duckdb_ext import endpoint_problem, invalid_endpoint_message
from cvcatalog.io.duckdb_ext import endpoint_url as configured_endpoint
from cvcatalog.io.layout import nearest_existing
from cvcatalog.io.s3 import Retrier, classify_error, make_client
from cvcatalog.io.storage import S3Location, is_remote

DEFAULT_PORT = 5055
#: the module the server process runs (`python -m`), by which a recorded pid is known as ours
SERVER_MODULE = "cvcatalog.sandbox.moto_main"
MAX_PORT = 65535
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((HOST, port)) == 0


def _listens(pid: int, port: int) -> bool:
    """Whether process pid holds the listening socket of port. A port picked free can be
    taken by another server before ours binds it (two starts at once: parallel test workers,
    a bench beside them); ours then exits, and the port answers all the same."""
    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns)


@dataclass
class SandboxServer:
    """A running moto server; use as a context manager or call stop()."""

    port: int
    process: subprocess.Popen[bytes] | None

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def env(self) -> dict[str, str]:
        """Environment that points boto3 (and cvcatalog) at this endpoint with dummy keys."""
        return sandbox_env(self.endpoint_url)

    def reset(self) -> None:
        """Drop every bucket and object (moto's reset API)."""
        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def wait(self, stopping: threading.Event, poll: float = 0.5) -> None:
        """Return when the server's process ends or stopping is set (:func:`stop_signals`)."""
        while self.process is not None and self.process.poll() is None:
            if stopping.wait(poll):
                return

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


#: how long a server is given to exit after SIGTERM, then after SIGKILL (`sandbox stop`, or the
#: server this process started)
STOP_TIMEOUT = 10.0

#: what ends a foreground server: Ctrl-C, `kill`, its terminal closing
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """While inside, STOP_SIGNALS set the event instead of ending this process, so a foreground
    server is waited on (:meth:`SandboxServer.wait`) and stopped on the way out: its process
    runs in a session of its own, where no signal sent to this one reaches it. The previous
    handlers come back at the end. Main thread only (Python's signal handlers live there)."""
    stopping = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stopping.set()

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield stopping
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)  # None: set from C


def sandbox_env(endpoint_url: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL_S3": endpoint_url,
        "AWS_ACCESS_KEY_ID": "sandbox",
        "AWS_SECRET_ACCESS_KEY": "sandbox",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


#: What `sandbox serve` needs beyond cvcatalog's own dependencies (the `sandbox` extra).
SANDBOX_MODULES = ("moto", "flask", "flask_cors")
INSTALL_HINT = "pip install 'cvcatalog[sandbox]'"


def check_sandbox_installed() -> None:
    """SandboxError naming the extra to install when moto's server cannot be run here."""
    missing = [m for m in SANDBOX_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise SandboxError(
            f"the local sandbox needs moto's server ({', '.join(missing)} not installed): "
            f"{INSTALL_HINT}"
        )


#: free ports tried by start_server(port=0) when another process takes one first
PORT_ATTEMPTS = 5


def start_server(
    port: int = 0,
    log_file: Path | None = None,
    timeout: float = 30.0,
    *,
    names: Mapping[str, str] | None = None,
    stopping: threading.Event | None = None,
) -> SandboxServer:
    """Start moto_server on 127.0.0.1:port (0 picks a free port) and wait until it answers;
    a free port another process takes meanwhile is given up for another one. A port that is
    not one is a ConfigError naming it as names spells it (`sandbox serve`: --port). When
    stopping is set before the server answers (:func:`stop_signals`), or the wait is
    interrupted, the process started is stopped and KeyboardInterrupt raised: nothing is left
    running."""
    if not 0 <= port <= MAX_PORT:
        raise ConfigError(
            f"{spelled(names, 'port')} must be 0 (any free port) to {MAX_PORT}, got {port}"
        )
    check_sandbox_installed()
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    for _ in range(1 if port else PORT_ATTEMPTS):
        chosen = port or free_port()
        server = (
            None
            if _port_open(chosen)
            else _start_on(chosen, log_file, deadline, timeout, stopping or threading.Event())
        )
        if server is not None:
            return server
        if port:
            raise SandboxError(
                f"port {port} on {HOST} is already in use; choose another with --port"
            )
    raise SandboxError(f"no free port for the moto server on {HOST} after {PORT_ATTEMPTS} tries")


def _start_on(
    port: int, log_file: Path | None, deadline: float, timeout: float, stopping: threading.Event
) -> SandboxServer | None:
    """A moto server started on port, or None when another process holds the port: ours
    cannot bind it (it is stopped), yet the port answers. Whatever ends the wait otherwise
    (a timeout, stopping, Ctrl-C) stops the process: it runs in a session of its own, which
    no signal to this one reaches."""
    proc = _spawn(port, log_file)
    try:
        while time.monotonic() < deadline:
            if _port_open(port):
                if _listens(proc.pid, port):
                    return SandboxServer(port=port, process=proc)
                break
            if proc.poll() is not None:
                raise SandboxError(f"the moto server exited at start (code {proc.returncode})")
            if stopping.wait(0.1):
                raise KeyboardInterrupt
        else:
            raise SandboxError(
                f"the moto server did not answer on {HOST}:{port} within {timeout:.0f}s"
            )
    except BaseException:
        _kill(proc)
        raise
    _kill(proc)
    return None


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _spawn(port: int, log_file: Path | None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", SERVER_MODULE, "-H", HOST, "-p", str(port)]
    if log_file is None:
        return subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
    with open(log_file, "ab") as out:  # the child keeps its own copy
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def check_state_folder(path: Path) -> None:
    """Before a detached server starts: the folder its record and log go in can be made."""
    folder = nearest_existing(path.parent)
    if not folder.is_dir():
        raise SandboxError(
            f"{folder} is a file where `sandbox serve --detach` keeps its record and log "
            "(server.json, moto.log); move it away"
        )


def write_state(path: Path, server: SandboxServer) -> None:
    """Remember a detached server (pid and port) so `sandbox stop` can find it."""
    assert server.process is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": server.process.pid, "port": server.port}))
    os.replace(tmp, path)


def detached_running(path: Path) -> dict[str, int] | None:
    """The detached server recorded in path ({"pid", "port"}) while its process lives; None
    when none is recorded, it has ended, or the pid is now another program's (a stale
    record: `sandbox stop` killed whatever process group it named, the shell running it too)."""
    try:
        state = json.loads(path.read_text())
        pid, port = int(state["pid"]), int(state["port"])
        os.killpg(pid, 0)
        cmdline = psutil.Process(pid).cmdline()
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return None
    if SERVER_MODULE not in cmdline or str(port) not in cmdline:
        return None
    return {"pid": pid, "port": port}




def _exited(pid: int) -> bool:
    """Whether process pid has ended (a zombie not yet reaped by its parent has)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def _end(pid: int, sig: signal.Signals, timeout: float) -> bool:
    """Send sig to the process group of pid; whether pid exited within timeout."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
    deadline = time.monotonic() + timeout
    while not _exited(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def stop_detached(path: Path) -> bool:
    """Stop the server recorded in path and wait until its process has exited (SIGTERM, then
    SIGKILL after STOP_TIMEOUT seconds); the record goes. False when none was running. A
    process that outlives SIGKILL too is a SandboxError (its record is kept)."""
    running = detached_running(path)
    if running is None:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # (.sandbox a file)
            path.unlink()
        return False
    pid = running["pid"]
    if not _end(pid, signal.SIGTERM, STOP_TIMEOUT) and not _end(pid, signal.SIGKILL, STOP_TIMEOUT):
        raise SandboxError(
            f"the sandbox server (pid {pid}) did not exit {2 * STOP_TIMEOUT:.0f}s after "
            "SIGTERM and SIGKILL"
        )
    path.unlink(missing_ok=True)
    return True


# -- a client for the local endpoint -------------------------------------------------------------
def sandbox_endpoint(purpose: str) -> str:
    """The local endpoint AWS_ENDPOINT_URL_S3 names, checked without a request (a command can
    ask before it writes anything): without one a SandboxError that ends with ``purpose`` (the
    sandbox never talks to real AWS), a URL no request can go to a ConfigError (the one line
    of :func:`cvcatalog.io.duckdb_ext.invalid_endpoint_message`)."""
    endpoint = configured_endpoint()
    if not endpoint:
        raise SandboxError(
            f"no local endpoint: set AWS_ENDPOINT_URL_S3 (see `cvcatalog sandbox serve`); {purpose}"
        )
    if endpoint_problem(endpoint) is not None:
        raise ConfigError(invalid_endpoint_message(endpoint))
    return endpoint


def sandbox_client(purpose: str) -> tuple[Any, DownloadConfig]:
    """An S3 client for the endpoint AWS_ENDPOINT_URL_S3 names (:func:`sandbox_endpoint`), made
    as every other one is (:func:`cvcatalog.io.s3.make_client`, `download:` settings from
    CVCATALOG_DOWNLOAD__*), and its settings for a :class:`~cvcatalog.io.s3.Retrier`."""
    cfg = download_config(endpoint_url=sandbox_endpoint(purpose))
    return make_client(cfg), cfg


def create_bucket(client: Any, cfg: DownloadConfig, bucket: str) -> None:
    """Create bucket (one that exists already is fine). The first request of a seed or upload,
    retried like any other: an endpoint that is not running shows here, in one line."""
    try:
        Retrier.from_config(cfg).call(
            "CreateBucket", f"s3://{bucket}", lambda: client.create_bucket(Bucket=bucket)
        )
    except S3Error as e:
        info = classify_error(e.__cause__) if e.__cause__ is not None else None
        if info is None or info.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


#: why an upload goes nowhere but the local endpoint (sandbox_endpoint's purpose)
UPLOAD_PURPOSE = "the sandbox never writes to real AWS"


def upload_target(url: str, name: str = "url") -> tuple[str, str]:
    """(bucket, key) of an upload's s3://bucket/key, checked without a request (a command
    checks it before it writes the file: `sandbox ngsim --to`); anything else is a ConfigError
    naming the argument as its caller spells it (name)."""
    why = ""
    try:
        loc: S3Location | None = S3Location.parse(url)
    except ConfigError as e:
        loc = None
        if is_remote(url):  # what is wrong with it (s3://b/k.csv: the bucket name), not only
            # what it must look like, which it did
            why = ": " + str(e).removeprefix(repr(url)).lstrip(": ")
    if loc is None or not loc.prefix:
        raise ConfigError(f"{name} must be s3://bucket/key, got {url!r}{why}")
    return loc.bucket, loc.prefix


def upload_file(path: Path, url: str, *, names: Mapping[str, str] | None = None) -> str:
    """Upload path to s3://bucket/key on the local endpoint (the bucket is created if needed);
    returns the endpoint's URL. A bad url is a ConfigError naming it as `names` spells it
    (upload_target), before any request."""
    bucket, key = upload_target(url, spelled(names, "url"))
    client, cfg = sandbox_client(UPLOAD_PURPOSE)
    create_bucket(client, cfg, bucket)
    Retrier.from_config(cfg).call("upload", url, lambda: client.upload_file(str(path), bucket, key))
    return str(cfg.endpoint_url)
