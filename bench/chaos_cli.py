"""`python -m bench.chaos_cli ARGS` is `cvcatalog ARGS`, timing every lock acquisition.

Used by the chaos harness for the concurrent writers: the CLI runs unchanged; at exit the
acquisitions (lock kind, seconds waited, granted or not) go as JSON to $CHAOS_LOCK_LOG.
"""

from __future__ import annotations

import atexit
import json
import os
import time
from pathlib import Path
from typing import Any

import filelock

WAITS: list[dict[str, Any]] = []


def _instrument() -> None:
    real = filelock.BaseFileLock.acquire

    def acquire(self: filelock.BaseFileLock, *args: Any, **kwargs: Any) -> Any:
        t0 = time.monotonic()
        ok = False
        try:
            result = real(self, *args, **kwargs)
            ok = True
            return result
        finally:
            kind = "catalog" if Path(self.lock_file).name == "catalog.lock" else "partition"
            WAITS.append({"lock": kind, "seconds": time.monotonic() - t0, "granted": ok})

    filelock.BaseFileLock.acquire = acquire  # type: ignore[method-assign]

    def dump() -> None:
        out = os.environ.get("CHAOS_LOCK_LOG")
        if out:
            Path(out).write_text(json.dumps(WAITS))

    atexit.register(dump)


def main() -> None:
    _instrument()
    from cvcatalog.cli.main import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
