"""Measuring one variant: a child process's wall time and peak RSS, and the requests it sent.

Every variant runs as its own child process so that its peak resident set size is its own
(``os.wait4`` returns the rusage of exactly that child, including any descendants it waited
for) and so that no variant inherits another's warm caches. Requests are counted on the server
side from the moto server's access log, which the harness starts with a log file.
"""

from __future__ import annotations

import compileall
import contextlib
import functools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

#: the package every measured child runs
PACKAGE = Path(__file__).resolve().parent.parent / "cvcatalog"


@functools.cache
def compile_package(package: Path = PACKAGE) -> None:
    """Write the package's bytecode before a measured child starts, as installing its wheel
    does: an editable install has none, and with PYTHONDONTWRITEBYTECODE set (CI, this
    machine) every cvcatalog process compiled all its modules again, ~0.25 s of each
    ingest's start that no installed copy pays (bench/README.md, session 29). Once a
    process: the children start after it, and nobody edits the package mid-run."""
    if not compileall.compile_dir(package, quiet=1):
        raise RuntimeError(f"the modules of {package} did not compile")


#: What a measured child imports (a cvcatalog command, a bench variant), the S3 client made
WARM_UP = (
    "import boto3, pandas, pyarrow.parquet, cvcatalog.cli.main; "
    "boto3.session.Session().client('s3', region_name='us-east-1')"
)


@functools.cache
def compile_imports() -> None:
    """Write the bytecode of the installed packages a measured child imports, by importing
    them once in an unmeasured child that writes bytecode: `make install` compiles none, and
    where PYTHONDONTWRITEBYTECODE is set (CI, this machine) every child compiled pandas &
    co. again; where it is not, the first measured child did. Once a process."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": ""}
    subprocess.run(
        [sys.executable, "-c", WARM_UP], env=env, check=True, capture_output=True, timeout=600
    )


@dataclass
class Measured:
    """One finished child process."""

    name: str
    cmd: list[str]
    returncode: int
    wall_s: float
    max_rss_bytes: int
    user_s: float
    sys_s: float
    stdout_path: Path
    stderr_path: Path
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr_tail(self, lines: int = 15) -> str:
        text = self.stderr_path.read_text(errors="replace").strip().splitlines()
        return "\n".join(text[-lines:])


def run_measured(
    name: str,
    cmd: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path,
    log_dir: Path,
    timeout: float,
) -> Measured:
    """Run cmd to completion; stdout/stderr go to files in log_dir (never a pipe: no deadlock).

    The child gets its own session so that a timeout can kill exactly its process group.
    """
    compile_package()
    compile_imports()
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path = log_dir / f"{name}.stdout"
    err_path = log_dir / f"{name}.stderr"
    timed_out = threading.Event()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.daemon = True
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code  # reaped here; keep Popen from waiting again
    return Measured(
        name=name,
        cmd=list(cmd),
        returncode=code,
        wall_s=wall,
        max_rss_bytes=int(usage.ru_maxrss) * 1024,  # Linux reports KiB
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        stdout_path=out_path,
        stderr_path=err_path,
        timed_out=timed_out.is_set(),
    )


# -- the moto server's access log -------------------------------------------------------------

#: werkzeug colours some status lines (206, 304, 4xx) with ANSI escapes
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: werkzeug: 127.0.0.1 - - [21/Nov/2026 22:31:23] "GET /bucket/key HTTP/1.1" 200 -
_LINE = re.compile(
    r'\[(?P<ts>\d\d/\w{3}/\d{4} \d\d:\d\d:\d\d)\] "(?P<method>[A-Z]+) (?P<target>\S+) '
    r'HTTP/[\d.]+" (?P<status>\d{3})'
)


@dataclass
class RequestCounts:
    """Requests the server saw in a stretch of its log."""

    by_kind: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    #: requests (GET/LIST/HEAD) per wall-clock second, as the server logged them
    per_second: dict[str, int] = field(default_factory=dict)

    def get(self, kind: str) -> int:
        return self.by_kind.get(kind, 0)

    @property
    def reads(self) -> int:
        """GETs of objects, listings and HEADs: every request a reader sends."""
        return self.get("GET") + self.get("LIST") + self.get("HEAD")

    @property
    def max_per_second(self) -> int:
        return max(self.per_second.values(), default=0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "by_kind": dict(self.by_kind),
            "by_status": dict(self.by_status),
            "reads": self.reads,
            "max_per_logged_second": self.max_per_second,
        }


def classify_request(method: str, target: str) -> str:
    """GET of an object, LIST (ListObjects*), HEAD, PUT or OTHER."""
    path, _, query = target.partition("?")
    if method == "GET":
        # /bucket or /bucket/ with a query is a listing; /bucket/key is an object
        if "list-type=" in query or path.strip("/").count("/") == 0:
            return "LIST"
        return "GET"
    if method in ("HEAD", "PUT", "POST", "DELETE"):
        return method
    return "OTHER"


class RequestLog:
    """Counts requests in the moto server's log between two marks."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def since(self, mark: int, settle: float = 0.2) -> RequestCounts:
        # werkzeug writes the line when it sends the response headers, so every request of a
        # finished client is already there; a short settle covers the file system.
        time.sleep(settle)
        with open(self.path, "rb") as f:
            f.seek(mark)
            text = f.read().decode(errors="replace")
        kinds: Counter[str] = Counter()
        statuses: Counter[str] = Counter()
        seconds: Counter[str] = Counter()
        for line in text.splitlines():
            m = _LINE.search(_ANSI.sub("", line))
            if m is None:
                continue
            kind = classify_request(m["method"], m["target"])
            kinds[kind] += 1
            statuses[m["status"]] += 1
            if kind in ("GET", "LIST", "HEAD"):
                ts = datetime.strptime(m["ts"], "%d/%b/%Y %H:%M:%S")
                seconds[ts.isoformat()] += 1
        return RequestCounts(dict(kinds), dict(statuses), dict(sorted(seconds.items())))


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The largest number of events in any half-open interval (t - window, t]."""
    ts = sorted(times)
    best = 0
    j = 0
    for i, t in enumerate(ts):
        while ts[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def tree_bytes(root: Path, suffix: str | None = None) -> tuple[int, int]:
    """(number of files, total bytes) under root, optionally only names ending in suffix."""
    n = 0
    total = 0
    if not root.exists():
        return 0, 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if suffix is not None and not name.endswith(suffix):
                continue
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(dirpath, name)).st_size
                n += 1
    return n, total


class Spawner:
    """Runs measured children through bench.spawner (see there for why)."""

    def __init__(self, python: str, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [python, "-m", "bench.spawner"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(
        self,
        name: str,
        cmd: Sequence[str],
        *,
        env: dict[str, str],
        cwd: Path,
        log_dir: Path,
        timeout: float,
    ) -> Measured:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        req = {
            "name": name,
            "cmd": list(cmd),
            "env": env,
            "cwd": str(cwd),
            "log_dir": str(log_dir),
            "timeout": timeout,
        }
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the spawner process exited (code {self.proc.poll()})")
        a = json.loads(line)
        if "error" in a:
            raise RuntimeError(f"the spawner could not run {name}: {a['error']}")
        return Measured(
            name=name,
            cmd=list(cmd),
            returncode=int(a["returncode"]),
            wall_s=float(a["wall_s"]),
            max_rss_bytes=int(a["max_rss_bytes"]),
            user_s=float(a["user_s"]),
            sys_s=float(a["sys_s"]),
            stdout_path=Path(a["stdout_path"]),
            stderr_path=Path(a["stderr_path"]),
            timed_out=bool(a["timed_out"]),
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
