"""A small process that starts the measured children, so their peak RSS is their own.

Linux folds the memory high-water mark of the address space a child had before ``exec`` into
the child's ``ru_maxrss``. A child forked (or vforked) by the harness itself, which holds DuckDB,
boto3 and pandas, would therefore report at least the harness's own peak. Children started by
this process, which imports almost nothing, start from ~10 MiB instead.

Protocol: one JSON request per line on stdin ({name, cmd, env, cwd, log_dir, timeout}), one JSON
answer per line on stdout (the fields of bench.measure.Measured).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.measure import run_measured


def main() -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            m = run_measured(
                req["name"],
                req["cmd"],
                env=req["env"],
                cwd=Path(req["cwd"]),
                log_dir=Path(req["log_dir"]),
                timeout=float(req["timeout"]),
            )
            answer = {
                "returncode": m.returncode,
                "wall_s": m.wall_s,
                "max_rss_bytes": m.max_rss_bytes,
                "user_s": m.user_s,
                "sys_s": m.sys_s,
                "stdout_path": str(m.stdout_path),
                "stderr_path": str(m.stderr_path),
                "timed_out": m.timed_out,
            }
        except Exception as e:  # report, keep serving
            answer = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
