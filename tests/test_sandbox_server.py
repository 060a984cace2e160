"""The sandbox's moto server process: the port it answers on is its own."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from cvcatalog.exceptions import SandboxError
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


def _real_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((sandbox.HOST, 0))
        return int(s.getsockname()[1])
