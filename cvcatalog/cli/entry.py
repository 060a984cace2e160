"""The `cvcatalog` command's entry point: a Ctrl-C while the command line's modules load
(~0.6 s: DuckDB, boto3, Typer) is the one 'interrupted' line and exit 130, as it is later,
not a KeyboardInterrupt traceback from deep inside an import."""

from __future__ import annotations

import signal
import sys
from types import FrameType


def main() -> None:
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
