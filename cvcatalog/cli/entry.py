"""The `cvcatalog` command's entry point (and `python -m cvcatalog`'s).

Loading the CLI's modules (DuckDB, pandas, pyarrow, boto3, ...) takes about a second; a Ctrl-C
then printed a traceback of whatever module was loading. It ends with the line and exit code
of a Ctrl-C during a command instead.
"""

from __future__ import annotations

import sys

try:
    from cvcatalog.cli.main import main
except KeyboardInterrupt:
    sys.stderr.write("interrupted\n")
    raise SystemExit(130) from None

__all__ = ["main"]
