"""How much concurrent fetching buys the dataset driver: NGSIM units fetched by 1, 2, 4 and 8
threads from S3 (the local moto server) and from a threaded HTTP server that answers every
request after a delay (a stand-in for a distant endpoint).

    python -m bench.ngsim_fetch [--rows N] [--latency S]

Only fetching is timed (NgsimDataset.fetch of every unit, bytes counted and dropped): parsing
is CPU-bound and measured by bench.ngsim. Results go to bench/results/ngsim-fetch.md/.json.
"""

from __future__ import annotations

import argparse
import http.server
import json
import re
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
UNIT = 8 * 1024 * 1024  # small units, so even the latency runs have many requests


class _SlowRanges(http.server.BaseHTTPRequestHandler):
    """A threaded static server for one file with byte ranges, answering after `delay`."""

    path_on_disk: Path
    delay = 0.05

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        time.sleep(self.delay)
        size = self.path_on_disk.stat().st_size
        m = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
        a, b = (int(m.group(1)), int(m.group(2) or size - 1)) if m else (0, size - 1)
        b = min(b, size - 1)
        self.send_response(206 if m else 200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{size}"')
        self.send_header("Content-Length", str(b - a + 1))
        if m:
            self.send_header("Content-Range", f"bytes {a}-{b}/{size}")
        self.end_headers()
        if body:
            with open(self.path_on_disk, "rb") as f:
                f.seek(a)
                left = b - a + 1
                while left > 0:
                    chunk = f.read(min(1 << 20, left))
                    self.wfile.write(chunk)
                    left -= len(chunk)

    def log_message(self, *args: Any) -> None:
        pass


def _fetch_all(endpoint: str | None, uri: str, threads: int) -> tuple[float, int, int]:
    from cvcatalog.datasets.ngsim import NgsimDataset

    client = boto3.client("s3", endpoint_url=endpoint) if endpoint else None
    ds = NgsimDataset([uri], unit_bytes=UNIT, s3_client=client)
    units = ds.units(ds.inputs())

    def one(u: Any) -> int:
        """The unit's bytes, then the tail up to the end of its last line (as parse does)."""
        need = u.end - max(u.start - 1, 0)
        got = 0
        chunks = ds.fetch(u)
        try:
            for chunk in chunks:
                got += len(chunk)
                if got >= need and (got - len(chunk) >= need or b"\n" in chunk[need - got :]):
                    break
        finally:
            chunks.close()
        return got

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        total = sum(pool.map(one, units))
    return time.perf_counter() - t0, total, len(units)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ngsim_fetch")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--latency", type=float, default=0.05, help="seconds added per response")
    args = ap.parse_args(argv)
    from cvcatalog.sandbox.ngsim import generate_ngsim
    from cvcatalog.sandbox.server import start_server

    work = Path(tempfile.mkdtemp(prefix="bench-ngsim-fetch-"))
    csv_path = work / "ngsim.csv"
    generate_ngsim(csv_path, args.rows, seed=3)
    rows: list[dict[str, Any]] = []
    with start_server(port=0, log_file=work / "moto.log") as server:
        env = server.env()
        import os

        os.environ.update(env)
        client = boto3.client("s3", endpoint_url=server.endpoint_url)
        client.create_bucket(Bucket="bench")
        with open(csv_path, "rb") as body:  # one PUT (moto is slow with big multipart uploads)
            client.put_object(Bucket="bench", Key="ngsim.csv", Body=body)
        uri = "s3://bench/ngsim.csv"
        _SlowRanges.path_on_disk = csv_path
        _SlowRanges.delay = args.latency
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowRanges)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        http_uri = f"http://127.0.0.1:{httpd.server_address[1]}/ngsim.csv"
        try:
            cases = (("s3 (moto)", server.endpoint_url, uri), ("http, +latency", None, http_uri))
            for label, endpoint, where in cases:
                for threads in (1, 2, 4, 8):
                    seconds, nbytes, units = _fetch_all(endpoint, where, threads)
                    rows.append(
                        {
                            "endpoint": label,
                            "threads": threads,
                            "units": units,
                            "MB": round(nbytes / 1e6, 1),
                            "seconds": round(seconds, 2),
                            "MB_per_s": round(nbytes / 1e6 / seconds, 1),
                        }
                    )
                    print(rows[-1], flush=True)
        finally:
            httpd.shutdown()
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ngsim-fetch.json").write_text(
        json.dumps({"rows": args.rows, "latency_s": args.latency, "runs": rows}, indent=2)
    )
    lines = [
        "# NGSIM unit fetching: threads",
        "",
        f"{args.rows:,}-row NGSIM CSV on the local moto server, {UNIT // 2**20} MiB units; "
        f"the HTTP server answers each request after {args.latency * 1000:.0f} ms. "
        "`python -m bench.ngsim_fetch`.",
        "",
        "| endpoint | threads | units | MB | seconds | MB/s |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['endpoint']} | {r['threads']} | {r['units']} | {r['MB']} | {r['seconds']} | {r['MB_per_s']} |"
        for r in rows
    ]
    (out / "ngsim-fetch.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
