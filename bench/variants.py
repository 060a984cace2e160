"""The benchmark variants that are not a cvcatalog command, each run in a child process.

    python -m bench.variants NAME PARAMS_JSON RESULT_JSON

NAME is one of limit, limit_typed, baseline, download, ingest_recorded, queries, day_query. PARAMS_JSON is a JSON
object; the variant writes what it measured from inside (rows, requests, internal timings) to
RESULT_JSON. The parent measures wall time and peak RSS from outside.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.catalog_session import plain_session

#: canonical column -> json_normalize column of a WYDOT BSM record (v3..v6 names)
BASELINE_COLUMNS: dict[str, str] = {
    "generated_at": "metadata.recordGeneratedAt",
    "received_at": "metadata.odeReceivedAt",
    "vehicle_id": "payload.data.coreData.id",
    "latitude": "payload.data.coreData.position.latitude",
    "longitude": "payload.data.coreData.position.longitude",
    "elevation_m": "payload.data.coreData.position.elevation",
    "speed_mps": "payload.data.coreData.speed",
    "heading_deg": "payload.data.coreData.heading",
    "schema_version": "metadata.schemaVersion",
    "msg_cnt": "payload.data.coreData.msgCnt",
    "sec_mark": "payload.data.coreData.secMark",
    "accel_lat_mps2": "payload.data.coreData.accelSet.accelLat",
    "accel_long_mps2": "payload.data.coreData.accelSet.accelLong",
    "accel_vert_g": "payload.data.coreData.accelSet.accelVert",
    "accel_yaw_dps": "payload.data.coreData.accelSet.accelYaw",
    "accuracy_semi_major_m": "payload.data.coreData.accuracy.semiMajor",
    "accuracy_semi_minor_m": "payload.data.coreData.accuracy.semiMinor",
    "accuracy_orientation_deg": "payload.data.coreData.accuracy.orientation",
    "steering_angle_deg": "payload.data.coreData.angle",
    "transmission": "payload.data.coreData.transmission",
    "brakes_left_front": "payload.data.coreData.brakes.wheelBrakes.leftFront",
    "brakes_right_front": "payload.data.coreData.brakes.wheelBrakes.rightFront",
    "brakes_left_rear": "payload.data.coreData.brakes.wheelBrakes.leftRear",
    "brakes_right_rear": "payload.data.coreData.brakes.wheelBrakes.rightRear",
    "brakes_wheel_unavailable": "payload.data.coreData.brakes.wheelBrakes.unavailable",
    "brakes_traction": "payload.data.coreData.brakes.traction",
    "brakes_abs": "payload.data.coreData.brakes.abs",
    "brakes_scs": "payload.data.coreData.brakes.scs",
    "brakes_boost": "payload.data.coreData.brakes.brakeBoost",
    "brakes_aux": "payload.data.coreData.brakes.auxBrakes",
    "size_width_cm": "payload.data.coreData.size.width",
    "size_length_cm": "payload.data.coreData.size.length",
    "record_generated_by": "metadata.recordGeneratedBy",
    "record_type": "metadata.recordType",
    "log_file_name": "metadata.logFileName",
    "payload_type": "metadata.payloadType",
    "sanitized": "metadata.sanitized",
    "security_result_code": "metadata.securityResultCode",
    "bsm_source": "metadata.bsmSource",
    "valid_signature": "metadata.validSignature",
    "serial_stream_id": "metadata.serialId.streamId",
    "serial_bundle_size": "metadata.serialId.bundleSize",
    "serial_bundle_id": "metadata.serialId.bundleId",
    "serial_record_id": "metadata.serialId.recordId",
    "serial_number": "metadata.serialId.serialNumber",
    "rmd_latitude": "metadata.receivedMessageDetails.locationData.latitude",
    "rmd_longitude": "metadata.receivedMessageDetails.locationData.longitude",
    "rmd_elevation_m": "metadata.receivedMessageDetails.locationData.elevation",
    "rmd_speed_mps": "metadata.receivedMessageDetails.locationData.speed",
    "rmd_heading_deg": "metadata.receivedMessageDetails.locationData.heading",
    "rx_source": "metadata.receivedMessageDetails.rxSource",
    "data_type": "payload.dataType",
    "part_ii": "payload.data.partII",
}
_TIMESTAMPS = ("generated_at", "received_at")
_TEXT_NUMBERS = (
    "rmd_latitude",
    "rmd_longitude",
    "rmd_elevation_m",
    "rmd_speed_mps",
    "rmd_heading_deg",
)

#: the folder day of a key or of a local path that mirrors it: .../YYYY/MM/DD/HH/name
DAY_REGEX = r"/(\d{4})/(\d{2})/(\d{2})/\d{2}/[^/]+$"


def _s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "sandbox"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "sandbox"),
    )


# -- the DuckDB limit ------------------------------------------------------------------------


def httpfs_extension() -> Path:
    """The httpfs extension shipped by the duckdb-extension-httpfs package (loaded offline);
    the library's finder (cvcatalog.io.duckdb_ext), so bench and `Catalog("s3://...")` agree."""
    from cvcatalog.io.duckdb_ext import httpfs_extension as find

    return find()


def limit(p: dict[str, Any]) -> dict[str, Any]:
    """One DuckDB COPY: read_json of the same objects -> cvcatalog's canonical SELECT -> Parquet.

    p: globs (s3:// or local, one per folder day), endpoint (host:port, for s3), out,
    memory_limit, threads, row_group_size, mode ("per_day", the default, or "single"),
    ordered (rows in the catalog's row order, cvcatalog.io.roworder, as cvcatalog writes them
    since issue 15: the like-for-like limit of what the ingest now does).
    """
    import duckdb

    from cvcatalog.schemas import SCHEMAS
    from cvcatalog.sqlutil import list_literal, quote_literal

    t0 = time.perf_counter()
    schema = SCHEMAS[("wydot", "BSM")]
    out = Path(p["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    if any(str(g).startswith("s3://") for g in p["globs"]):
        con.execute(f"LOAD {quote_literal(str(httpfs_extension()))}")
        con.execute(
            "CREATE SECRET bench_s3 (TYPE s3, KEY_ID 'sandbox', SECRET 'sandbox', "
            f"REGION 'us-east-1', ENDPOINT {quote_literal(p['endpoint'])}, URL_STYLE 'path', "
            "USE_SSL false)"
        )
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET memory_limit = ?", [p["memory_limit"]])
    tmp = out.parent / (out.name + ".duckdb_tmp")
    con.execute("SET temp_directory = ?", [str(tmp)])
    if p.get("threads"):
        con.execute("SET threads = ?", [int(p["threads"])])
    parts = [
        f"CAST(regexp_extract(b.source_key, '{DAY_REGEX}', {i}) AS INTEGER) AS {name}"
        for i, name in ((1, "year"), (2, "month"), (3, "day"))
    ]
    # One COPY per folder day by default: a single COPY with PARTITION_BY over all days keeps a
    # Parquet writer open per day and thread and runs out of a 0.5 GB memory_limit at 1M
    # records; cvcatalog, too, converts one day at a time. mode "single" is the one-COPY form.
    groups = [p["globs"]] if p.get("mode") == "single" else [[g] for g in p["globs"]]
    t1 = time.perf_counter()
    rows: list[Any] = []
    for i, globs in enumerate(groups):
        relation = (
            "(SELECT metadata, payload, filename AS source_key "
            f"FROM read_json({list_literal(globs)}, format = 'newline_delimited', "
            f"columns = {schema.read_columns_sql()}, ignore_errors = true, filename = true))"
        )
        select = schema.canonical_select_sql(relation, validate=True, extra_columns=parts)
        select = f"SELECT * FROM ({select}) WHERE invalid_reason IS NULL"
        if p.get("ordered"):
            from cvcatalog.io import roworder

            select = roworder.ordered(con, select, roworder.order_for("wydot", "BSM"))
        rows += con.execute(
            f"COPY ({select}) TO "
            f"{quote_literal(str(out))} (FORMAT parquet, COMPRESSION zstd, "
            f"ROW_GROUP_SIZE {int(p.get('row_group_size', 122_880))}, "
            f"PARTITION_BY (year, month, day), {'APPEND, ' if i else ''}RETURN_STATS)"
        ).fetchall()
    t2 = time.perf_counter()
    con.close()
    return {
        "rows": sum(int(r[1]) for r in rows),
        "files": len(rows),
        "copies": len(groups),
        "setup_s": t1 - t0,
        "copy_s": t2 - t1,
    }


def limit_typed(p: dict[str, Any]) -> dict[str, Any]:
    """The tightest honest limit: read_json with the raw record's typed columns, SELECT * ->
    Parquet; no canonical SELECT, no validation, no checksums, no catalog.

    COPY (SELECT *, year, month, day FROM read_json(globs, format='newline_delimited',
    columns={SCHEMAS[("wydot","BSM")].read_columns_sql()})) TO out (FORMAT parquet,
    COMPRESSION zstd, PARTITION_BY (year, month, day)), with httpfs loaded from its pip package
    (cvcatalog.io.duckdb_ext, never INSTALL), the same memory_limit and threads as `limit`.
    p: as limit; mode "single" (default: one COPY over every glob) or "per_day".
    """
    import duckdb

    from cvcatalog.schemas import SCHEMAS
    from cvcatalog.sqlutil import list_literal, quote_literal

    t0 = time.perf_counter()
    schema = SCHEMAS[("wydot", "BSM")]
    out = Path(p["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    if any(str(g).startswith("s3://") for g in p["globs"]):
        from cvcatalog.io.duckdb_ext import load_httpfs

        load_httpfs(con)  # from the pip package, as cvcatalog loads it; never INSTALL
        con.execute(
            "CREATE SECRET bench_s3 (TYPE s3, KEY_ID 'sandbox', SECRET 'sandbox', "
            f"REGION 'us-east-1', ENDPOINT {quote_literal(p['endpoint'])}, URL_STYLE 'path', "
            "USE_SSL false)"
        )
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET memory_limit = ?", [p["memory_limit"]])
    con.execute("SET temp_directory = ?", [str(out.parent / (out.name + ".duckdb_tmp"))])
    if p.get("threads"):
        con.execute("SET threads = ?", [int(p["threads"])])
    parts = ", ".join(
        f"CAST(regexp_extract(filename, '{DAY_REGEX}', {i}) AS INTEGER) AS {name}"
        for i, name in ((1, "year"), (2, "month"), (3, "day"))
    )
    groups = [[g] for g in p["globs"]] if p.get("mode") == "per_day" else [p["globs"]]
    t1 = time.perf_counter()
    rows: list[Any] = []
    for i, globs in enumerate(groups):
        rows += con.execute(
            f"COPY (SELECT * EXCLUDE (filename), {parts} FROM read_json({list_literal(globs)}, "
            f"format = 'newline_delimited', columns = {schema.read_columns_sql()}, "
            f"filename = true)) TO {quote_literal(str(out))} (FORMAT parquet, "
            f"COMPRESSION zstd, PARTITION_BY (year, month, day), "
            f"{'APPEND, ' if i else ''}RETURN_STATS)"
        ).fetchall()
    t2 = time.perf_counter()
    con.close()
    return {
        "rows": sum(int(r[1]) for r in rows),
        "files": len(rows),
        "copies": len(groups),
        "setup_s": t1 - t0,
        "copy_s": t2 - t1,
    }


# -- the naive baseline -------------------------------------------------------------------------


def baseline(p: dict[str, Any]) -> dict[str, Any]:
    """json.loads per line + pandas.json_normalize + to_parquet, one object at a time.

    How the original scripts did it: list, GET each object in turn, parse every line with the
    json module, flatten with json_normalize, keep the canonical columns, write pandas' default
    Parquet (snappy) into the same hive layout. No validation beyond skipping unparseable lines.
    p: endpoint, bucket, prefixes, out.
    """
    import re

    import pandas as pd

    client = _s3_client(p["endpoint"])
    out = Path(p["out"])
    day_re = re.compile(DAY_REGEX)
    rows = objects = bad = files = 0
    t0 = time.perf_counter()
    for prefix in p["prefixes"]:
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=p["bucket"], Prefix=prefix
        ):
            keys += [item["Key"] for item in page.get("Contents") or ()]
        for key in keys:
            body = client.get_object(Bucket=p["bucket"], Key=key)["Body"].read()
            objects += 1
            records = []
            for line in body.decode("utf-8").splitlines():
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    bad += 1
            if not records:
                continue
            flat = pd.json_normalize(records)
            df = pd.DataFrame(
                {
                    name: flat[path] if path in flat.columns else None
                    for name, path in BASELINE_COLUMNS.items()
                }
            )
            for c in _TIMESTAMPS:
                df[c] = pd.to_datetime(df[c], utc=True, format="ISO8601", errors="coerce")
            for c in _TEXT_NUMBERS:
                df[c] = pd.to_numeric(df[c], errors="coerce")
            df["part_ii"] = [
                json.dumps(v) if isinstance(v, list | dict) else None for v in df["part_ii"]
            ]
            df["source_key"] = key
            m = day_re.search("/" + key)
            assert m is not None, key
            target = out / f"year={int(m[1])}" / f"month={int(m[2])}" / f"day={int(m[3])}"
            target.mkdir(parents=True, exist_ok=True)
            df.to_parquet(target / f"part-{objects:06d}.parquet", index=False)
            files += 1
            rows += len(df)
    return {
        "rows": rows,
        "objects": objects,
        "bad_lines": bad,
        "files": files,
        "seconds": time.perf_counter() - t0,
    }


# -- cvcatalog's downloader alone --------------------------------------------------------------


def download(p: dict[str, Any]) -> dict[str, Any]:
    """cvcatalog's S3Fetcher: list each day prefix, then one download_many into out/<key>
    (as `aws s3 sync` and s5cmd, it is handed the whole set, so no day waits for another).

    p: bucket, prefixes, out, workers, rate_limit.
    """
    from cvcatalog.config import DownloadConfig
    from cvcatalog.io.download import S3Fetcher
    from cvcatalog.io.s3 import make_client

    t0 = time.perf_counter()
    cfg = DownloadConfig(max_workers=int(p["workers"]), rate_limit=float(p["rate_limit"]))
    fetcher = S3Fetcher(make_client(cfg), cfg, p["bucket"])
    out = Path(p["out"])
    listed = [o for prefix in p["prefixes"] for o in fetcher.list(prefix)]
    results, failed = fetcher.download_many(listed, lambda o: out / o.key)
    objects, nbytes, failures = len(results), sum(r.size for r in results), len(failed)
    return {
        "objects": objects,
        "bytes": nbytes,
        "failures": failures,
        "get_requests": fetcher.get_requests,
        "list_requests": fetcher.list_requests,
        "seconds": time.perf_counter() - t0,
    }


# -- an ingest whose every request is timed on the client ---------------------------------------


def ingest_recorded(p: dict[str, Any]) -> dict[str, Any]:
    """Catalog.ingest with a rate limit, timing every HTTP request botocore sends.

    Only botocore's HTTP session is wrapped (to take a timestamp); cvcatalog runs unchanged.
    p: catalog, start, end, workers, rate_limit.
    """
    import threading

    from botocore.httpsession import URLLib3Session

    sent: list[tuple[float, str]] = []
    lock = threading.Lock()
    original: Callable[..., Any] = URLLib3Session.send

    def send(self: Any, request: Any) -> Any:
        from bench.measure import classify_request

        url = str(request.url)
        target = "/" + url.split("://", 1)[-1].split("/", 1)[-1]
        with lock:
            sent.append((time.monotonic(), classify_request(request.method, target)))
        return original(self, request)

    URLLib3Session.send = send  # type: ignore[method-assign]

    from cvcatalog.catalog import Catalog

    t0 = time.monotonic()
    summary = Catalog(p["catalog"]).ingest(
        "wydot",
        "BSM",
        p["start"],
        p["end"],
        max_workers=int(p["workers"]),
        rate_limit=float(p["rate_limit"]),
    )
    t1 = time.monotonic()
    return {
        "summary": {k: v for k, v in summary.as_dict().items() if k != "days"},
        "t_start": t0,
        "t_end": t1,
        "requests": [[round(t - t0, 6), kind] for t, kind in sent],
    }


# -- queries on a catalog ------------------------------------------------------------------------


def _files_read(con: Any, sql: str, params: list[Any] | None = None) -> dict[str, Any]:
    """Parquet files the query opened, from EXPLAIN ANALYZE ("Total Files Read", and
    "Scanning Files: read/total" after file pruning)."""
    import re

    text = con.execute("EXPLAIN ANALYZE " + sql, params or []).fetchall()[0][1]
    read = [int(x) for x in re.findall(r"Total Files Read:\s*(\d+)", text)]
    scanning = [(int(a), int(b)) for a, b in re.findall(r"Scanning Files:\s*(\d+)/(\d+)", text)]
    return {
        "total_files_read": sum(read) if read else None,
        "scanning_files": [f"{a}/{b}" for a, b in scanning],
    }


def _timed(fn: Callable[[], Any], reps: int) -> tuple[list[float], Any]:
    fn()  # warm up (metadata, OS cache, connection)
    times = []
    result = None
    for _ in range(reps):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return times, result


def queries(p: dict[str, Any]) -> dict[str, Any]:
    """Warm latencies of three queries via Catalog.query, a plain DuckDB connection and
    (for the trajectory) Catalog.to_dask; files opened via EXPLAIN ANALYZE.

    p: catalog, day, week_start, week_end, reps.
    """
    import statistics

    from cvcatalog.catalog import Catalog

    cat = Catalog(p["catalog"])
    reps = int(p["reps"])
    plain = plain_session(cat.database)
    day, w0, w1 = p["day"], p["week_start"], p["week_end"]
    vehicle = plain.execute(
        "SELECT vehicle_id FROM wydot_bsm WHERE date BETWEEN ?::DATE AND ?::DATE "
        "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
        [w0, w1],
    ).fetchone()
    vid = vehicle[0] if vehicle else ""
    day_files = plain.execute(
        "SELECT count(*) FROM partition_files WHERE kind = 'data' AND partition_key = ?",
        [f"wydot/BSM/{day[:4]}/{day[5:7]}/{day[8:10]}"],
    ).fetchone()
    week_keys = plain.execute(
        "SELECT count(*) FROM partition_files f JOIN partitions p USING (partition_key) "
        "WHERE f.kind = 'data' AND p.date BETWEEN ?::DATE AND ?::DATE",
        [w0, w1],
    ).fetchone()
    all_files = plain.execute("SELECT count(*) FROM partition_files WHERE kind = 'data'").fetchone()
    qs = {
        "one_day_count": (
            f"SELECT count(*) AS n FROM wydot_bsm WHERE date = DATE '{day}'",
            day_files[0] if day_files else None,
        ),
        "vehicle_week_trajectory": (
            "SELECT generated_at, latitude, longitude, speed_mps, heading_deg FROM wydot_bsm "
            f"WHERE vehicle_id = '{vid}' AND date BETWEEN DATE '{w0}' AND DATE '{w1}' "
            "ORDER BY generated_at",
            week_keys[0] if week_keys else None,
        ),
        "full_range_aggregate": (
            "SELECT date, count(*) AS n, avg(speed_mps) AS mean_speed, "
            "count(DISTINCT vehicle_id) AS vehicles FROM wydot_bsm GROUP BY date ORDER BY date",
            all_files[0] if all_files else None,
        ),
    }
    out: dict[str, Any] = {"vehicle_id": vid, "reps": reps, "queries": {}}
    for name, (sql, expected_files) in qs.items():
        api_times, api_res = _timed(lambda sql=sql: cat.query(sql), reps)
        plain_times, plain_res = _timed(lambda sql=sql: plain.execute(sql).fetchall(), reps)
        entry: dict[str, Any] = {
            "sql": sql,
            "rows": len(plain_res),
            "rows_catalog_query": len(api_res),
            "catalog_query_ms": [round(t * 1000, 3) for t in api_times],
            "catalog_query_median_ms": round(statistics.median(api_times) * 1000, 3),
            "plain_duckdb_ms": [round(t * 1000, 3) for t in plain_times],
            "plain_duckdb_median_ms": round(statistics.median(plain_times) * 1000, 3),
            "files_expected": expected_files,
            **_files_read(plain, sql),
        }
        out["queries"][name] = entry

    # the trajectory as a lazy Dask frame (one Dask partition per day, filter pushed down)
    def dask_week() -> int:
        frame = cat.to_dask(
            "wydot",
            "BSM",
            w0,
            w1,
            columns=["generated_at", "latitude", "longitude", "speed_mps", "heading_deg"],
            filters=[("vehicle_id", "==", vid)],
        )
        return len(frame.compute(scheduler="sync"))

    dask_times, dask_rows = _timed(dask_week, reps)
    out["queries"]["vehicle_week_trajectory"]["to_dask_ms"] = [
        round(t * 1000, 3) for t in dask_times
    ]
    out["queries"]["vehicle_week_trajectory"]["to_dask_median_ms"] = round(
        statistics.median(dask_times) * 1000, 3
    )
    out["queries"]["vehicle_week_trajectory"]["rows_to_dask"] = dask_rows
    plain.close()
    return out


def day_query(p: dict[str, Any]) -> dict[str, Any]:
    """Warm one-day count on several catalogs through Catalog.query and through a plain DuckDB
    session, every (catalog, method) pair in turn each repetition (so load changes hit all
    alike); wall and CPU ms.

    The plain session is what any DuckDB user types: the ducklake extension (loaded from its
    pip package, as cvcatalog loads it), then ATTACH 'ducklake:<catalog>/catalog.ducklake' AS cv
    (READ_ONLY). Only Catalog (public API) and the catalog file's name are cvcatalog's.
    p: catalogs ({label: {catalog, day}}), reps, warmups.
    """
    import statistics

    import duckdb

    from cvcatalog.catalog import Catalog
    from cvcatalog.io.duckdb_ext import load_extension
    from cvcatalog.sqlutil import quote_literal

    pairs: dict[tuple[str, str], Callable[[], Any]] = {}
    sessions: dict[str, tuple[Any, str]] = {}
    for label, c in p["catalogs"].items():
        cat = Catalog(c["catalog"])
        plain = duckdb.connect()
        load_extension(plain, "ducklake")
        lake_file = Path(c["catalog"]) / "catalog.ducklake"
        plain.execute(f"ATTACH {quote_literal(f'ducklake:{lake_file}')} AS cv (READ_ONLY)")
        plain.execute("USE cv")
        sql = f"SELECT count(*) AS n FROM wydot_bsm WHERE date = DATE '{c['day']}'"
        sessions[label] = (plain, sql)
        pairs[(label, "catalog_query")] = lambda cat=cat, sql=sql: cat.query(sql)
        pairs[(label, "plain_duckdb")] = lambda plain=plain, sql=sql: plain.execute(sql).fetchall()
    for fn in pairs.values():
        for _ in range(int(p.get("warmups", 3))):
            fn()
    wall: dict[tuple[str, str], list[float]] = {k: [] for k in pairs}
    cpu: dict[tuple[str, str], list[float]] = {k: [] for k in pairs}
    for _ in range(int(p["reps"])):
        for k, fn in pairs.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    out: dict[str, Any] = {}
    for label, (plain, sql) in sessions.items():
        n = plain.execute(sql).fetchone()
        entry: dict[str, Any] = {"sql": sql, "rows_counted": int(n[0]) if n else 0}
        entry.update(_files_read(plain, sql))
        for method in ("catalog_query", "plain_duckdb"):
            k = (label, method)
            entry[method] = {
                "median_ms": round(statistics.median(wall[k]) * 1000, 3),
                "cpu_median_ms": round(statistics.median(cpu[k]) * 1000, 3),
                "ms": [round(t * 1000, 3) for t in wall[k]],
            }
        out[label] = entry
        plain.close()
    return out


VARIANTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "limit": limit,
    "limit_typed": limit_typed,
    "day_query": day_query,
    "baseline": baseline,
    "download": download,
    "ingest_recorded": ingest_recorded,
    "queries": queries,
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] not in VARIANTS:
        print(
            f"usage: python -m bench.variants {{{','.join(VARIANTS)}}} PARAMS RESULT",
            file=sys.stderr,
        )
        return 2
    name, params, result = args
    out = VARIANTS[name](json.loads(params))
    Path(result).write_text(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
