"""The sandbox's moto server process: the port it answers on is its own, and a foreground
`sandbox serve` takes it down with itself."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from cvcatalog.exceptions import ConfigError, SandboxError
from cvcatalog.sandbox import server as sandbox


def _listener(port: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((sandbox.HOST, port))
    s.listen()
    return s


def test_a_free_port_taken_before_the_server_binds_it_is_given_up_for_another(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two starts at once (parallel test workers) can pick the same free port: the second
    server cannot bind it, yet the port answers (the first server). The start must not take
    that server for its own: it tries another port, and the server it returns listens there."""
    taken = sandbox.free_port()
    ports = iter([taken])
    monkeypatch.setattr(sandbox, "free_port", lambda: next(ports, 0) or _real_free_port())
    foreign: list[socket.socket] = []
    spawn = sandbox._spawn

    def spawn_after_another_took_it(port: int, log_file: Path | None) -> subprocess.Popen[bytes]:
        if port == taken:  # another process binds the port between the pick and the bind
            foreign.append(_listener(port))
        return spawn(port, log_file)

    monkeypatch.setattr(sandbox, "_spawn", spawn_after_another_took_it)
    try:
        with sandbox.start_server(log_file=tmp_path / "moto.log") as server:
            assert foreign, "the race was not staged"
            assert server.port != taken
            assert server.process is not None
            assert sandbox._listens(server.process.pid, server.port)
            server.reset()  # it answers S3's API on its own port
    finally:
        for s in foreign:
            s.close()


def test_a_port_given_and_in_use_is_one_clear_error(tmp_path: Path) -> None:
    with _listener() as s:
        port = s.getsockname()[1]
        with pytest.raises(SandboxError, match=f"port {port} .* already in use"):
            sandbox.start_server(port=port, log_file=tmp_path / "moto.log")


REPO = Path(__file__).resolve().parents[1]


@dataclass
class Serving:
    """A `sandbox serve` process and the moto processes the test saw it start."""

    serve: subprocess.Popen[bytes]
    moto: list[psutil.Process] = field(default_factory=list)


@contextlib.contextmanager
def _serving(port: int, cwd: Path) -> Iterator[Serving]:
    """`cvcatalog sandbox serve --port port` in a process of its own, its output on pipes as a
    user's would be (not unbuffered); on the way out nothing is left behind, whatever failed:
    serve and every moto process it started are killed."""
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    serve = subprocess.Popen(
        [sys.executable, "-m", "cvcatalog", "sandbox", "serve", "--port", str(port)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": ""},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # Ctrl-C's default action, whatever this process inherited (a suite run as a
        # background job ignores SIGINT, and the CLI keeps an ignored SIGINT ignored)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    it = Serving(serve)
    try:
        yield it
    finally:
        with contextlib.suppress(psutil.Error):
            it.moto += psutil.Process(serve.pid).children(recursive=True)
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        for p in it.moto:
            with contextlib.suppress(psutil.Error):
                p.kill()
        for pipe in (serve.stdout, serve.stderr):
            if pipe is not None:
                pipe.close()


@pytest.mark.parametrize(
    "signum",
    [
        signal.SIGTERM,
        # the same handler: in make test-all only (make test stays within its 5 minutes)
        pytest.param(signal.SIGHUP, marks=pytest.mark.slow),
        pytest.param(signal.SIGINT, marks=pytest.mark.slow),
    ],
    ids=lambda s: s.name,
)
def test_a_foreground_serve_stops_its_moto_process_when_signalled(
    signum: signal.Signals, tmp_path: Path
) -> None:
    """`kill` (SIGTERM) or a closed terminal (SIGHUP) ended `sandbox serve` at once, and its moto
    process (in a session of its own, which no signal to serve reaches) kept running and
    holding the port. Every stop signal must stop it, and serve exit 0."""
    port = sandbox.free_port()
    with _serving(port, tmp_path) as it:
        serve = it.serve
        assert serve.stdout is not None
        # once it said where it serves (a signal before that gives up the start: exit 130)
        announced = serve.stdout.readline().decode()
        assert announced.startswith("sandbox S3 endpoint at"), serve.communicate()[1].decode()
        assert sandbox._port_open(port)
        it.moto = psutil.Process(serve.pid).children(recursive=True)
        assert any(sandbox._listens(p.pid, port) for p in it.moto)  # the moto process
        serve.send_signal(signum)
        assert serve.wait(timeout=30) == 0, serve.communicate()[1].decode()
        _, alive = psutil.wait_procs(it.moto, timeout=5)
        assert alive == [], f"moto still running after {signum.name}: {alive}"
        assert not sandbox._port_open(port)


def test_a_stop_signal_while_the_server_starts_stops_it_there(tmp_path: Path) -> None:
    """A Ctrl-C (or kill) before moto answered was held until the start ended (up to its 30 s
    timeout), then the server was started only to be stopped: the start is given up at once,
    the moto process stopped, and serve exits 130 without announcing an endpoint."""
    port = sandbox.free_port()
    with _serving(port, tmp_path) as it:
        serve = it.serve
        deadline = time.monotonic() + 60
        while not (moto := psutil.Process(serve.pid).children(recursive=True)):
            assert serve.poll() is None, serve.communicate()[1].decode()
            assert time.monotonic() < deadline, "serve never started moto"
            time.sleep(0.01)
        it.moto = moto
        assert not sandbox._port_open(port), "moto answered before the signal: not a start"
        serve.send_signal(signal.SIGINT)
        out, errors = serve.communicate(timeout=30)
        assert serve.returncode == 130, errors.decode()
        assert out == b""  # no endpoint was announced
        assert "stopped before the sandbox server answered" in errors.decode()
        _, alive = psutil.wait_procs(moto, timeout=5)
        assert alive == [], f"moto still running: {alive}"
        assert not sandbox._port_open(port)


def _real_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((sandbox.HOST, 0))
        return int(s.getsockname()[1])


def test_an_upload_destination_is_checked_in_the_callers_words(tmp_path: Path) -> None:
    """upload_target / upload_file name the argument as their caller spells it (the library:
    `url`; `sandbox ngsim`: --to), before any request or endpoint is needed."""
    assert sandbox.upload_target("s3://b0/data/n.csv") == ("b0", "data/n.csv")
    for bad in ("s3://b0", "http://h/b0/k", "s3:///k"):
        with pytest.raises(ConfigError, match=r"^url must be s3://bucket/key, got "):
            sandbox.upload_target(bad)
        with pytest.raises(ConfigError, match=r"^url must be s3://bucket/key, got "):
            sandbox.upload_file(tmp_path / "n.csv", bad)
        with pytest.raises(ConfigError, match=r"^--to must be s3://bucket/key, got "):
            sandbox.upload_file(tmp_path / "n.csv", bad, names={"url": "--to"})
    # a key under a name no bucket may have: why (it said only what the URL looked like)
    with pytest.raises(ConfigError, match=r"got 's3://b/k.csv': does not name a valid S3 bucket"):
        sandbox.upload_target("s3://b/k.csv")
