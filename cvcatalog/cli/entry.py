"""The `cvcatalog` command's entry point: a Ctrl-C while the command line's modules load
(~0.6 s: DuckDB, boto3, Typer) is the one 'interrupted' line and exit 130, as it is later,
not a KeyboardInterrupt traceback from deep inside an import.

It also gives numpy's OpenBLAS one thread (OPENBLAS_NUM_THREADS, unless the user set it):
OpenBLAS starts a thread per core as numpy loads, and they spin, about 0.1 CPU-s of every
command (the imports: 0.52 vs 0.41 CPU-s). No command does linear algebra."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType


def main() -> None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads (docstring)
    pressed: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        pressed.append(signum)  # acted on once the imports are done: never half an import

    previous = signal.signal(signal.SIGINT, hold)
    try:
        from cvcatalog.cli import main as cli  # the heavy imports, under the hold
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130)
    cli.main()
