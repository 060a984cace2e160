"""`cvcatalog export` and `Catalog.export` (issue 15) on a small ingested replica.

Every format is read back and compared with what `Catalog.query` returns for the same slice
(the local-day window is computed here independently, with zoneinfo); GeoParquet metadata is
read back with pyarrow (and geopandas when installed); an area filter gives exactly the rows
of `Catalog.query` with the same spatial predicate; failures are one line and leave no file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cvcatalog import catalog as catalog_module
from cvcatalog.catalog import Catalog
from cvcatalog.cli.main import app
from cvcatalog.exceptions import ConfigError, MissingDataWarning, QueryError
from cvcatalog.io.duckdb_ext import open_instance
from cvcatalog.ops import export as export_mod
from cvcatalog.sandbox.ngsim import generate_ngsim
from cvcatalog.sandbox.replica import seed_replica
from cvcatalog.state.access import read_access_log

D1, D2 = date(2021, 4, 1), date(2021, 4, 2)
DENVER = "America/Denver"
KEY = ["vehicle_id", "msg_cnt", "sec_mark", "latitude", "longitude", "speed_mps"]
runner = CliRunner()


@pytest.fixture(scope="module")
def cat(module_s3: Any, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """Two UTC days of WYDOT BSM and a small NGSIM file, ingested once."""
    seed_replica(module_s3, D1, D2, sources=["wydot"], message_types=["BSM"], records_per_hour=12,
                 files_per_hour=1)  # fmt: skip
    root = tmp_path_factory.mktemp("export")
    c = Catalog(root / "catalog")
    s = c.ingest("wydot", "BSM", D1, D2, timezone="UTC", rate_limit=0, max_workers=4)
    assert s.ok, s.as_dict()
    ngsim = root / "ngsim.csv"
    generate_ngsim(ngsim, 1_500, seed=3)
    assert c.ingest_dataset("ngsim", str(ngsim)).ok
    return c


def _denver_day(day: date) -> tuple[datetime, datetime]:
    lo = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(DENVER))
    return lo.astimezone(UTC), (lo + timedelta(days=1)).astimezone(UTC)


def _expected(cat: Catalog, day: date) -> pd.DataFrame:
    lo, hi = _denver_day(day)
    cols = ", ".join(KEY)
    return cat.query(
        f"SELECT generated_at, {cols} FROM wydot_bsm WHERE generated_at >= ? AND generated_at < ?",
        [lo, hi],
    )


def _sorted(df: pd.DataFrame, cols: list[str]) -> list[tuple[Any, ...]]:
    return sorted(df[cols].itertuples(index=False, name=None))


def _read(path: Path, fmt: str) -> pd.DataFrame:
    if fmt in ("parquet", "geoparquet"):
        return pq.read_table(path).to_pandas()
    if fmt == "csv":
        return pa_csv.read_csv(path).to_pandas()
    lines = path.read_text().splitlines()
    return pd.DataFrame([json.loads(x) for x in lines])


def _no_leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("fmt", ["parquet", "geoparquet", "csv", "ndjson"])
def test_every_format_round_trips_the_local_day(cat: Catalog, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "new" / "dir" / f"day.{fmt}"  # the parent is created
    res = cat.export("wydot", "BSM", D1, output=out, format=fmt, timezone=DENVER)
    want = _expected(cat, D1)
    assert len(want) > 0 and res.rows == len(want)
    assert res.bytes == out.stat().st_size and not _no_leftovers(out.parent)
    got = _read(out, fmt)
    assert len(got) == len(want)
    assert _sorted(got, KEY) == _sorted(want, KEY)
    times = pd.to_datetime(got["generated_at"], utc=True, format="mixed")
    assert sorted(times) == sorted(pd.to_datetime(want["generated_at"], utc=True))
    # the Denver day is 06:00-06:00 UTC: rows of both UTC days, none outside
    lo, hi = _denver_day(D1)
    assert times.min() >= lo and times.max() < hi
    assert {t.date() for t in times} == {D1, D2}


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_text_formats_write_times_as_query_prints_them(
    cat: Catalog, tmp_path: Path, fmt: str
) -> None:
    """Times printed three ways: query's 2021-04-01T10:22:12.064000+00:00, export CSV's
    2021-04-01 10:22:12.064000Z and NDJSON's "2021-04-01 10:22:12.064+00" (the README: one
    ISO 8601 form in every format and command). Now the same text as `query -f csv`, a whole
    second without a fraction, and a --where on the time still compares times."""
    noon = "2021-04-01 12:00:00+00"
    out = tmp_path / f"t.{fmt}"
    r = _export(cat, "--source", "wydot", "--type", "BSM", "--start", str(D1), "-o", str(out),
                "--where", f"generated_at >= '{noon}'", "--columns", "generated_at,received_at")  # fmt: skip
    assert r.exit_code == 0, r.output
    if fmt == "csv":
        rows = list(csv.DictReader(out.read_text().splitlines()))
    else:
        rows = [json.loads(x) for x in out.read_text().splitlines()]
    got = sorted((x["generated_at"], x["received_at"]) for x in rows)
    q = runner.invoke(app, ["query", "--catalog", str(cat.paths.root), "-f", "csv",
                            "select generated_at, received_at from wydot_bsm where generated_at"
                            f" >= '{noon}' and generated_at < '2021-04-02'"])  # fmt: skip
    assert q.exit_code == 0, q.output
    want = sorted((x["generated_at"], x["received_at"]) for x in csv.DictReader(q.stdout.splitlines()))
    assert len(got) > 0 and got == want
    assert all(t.startswith("2021-04-01T") and t.endswith("+00:00") for t, _ in got)
    # a whole second has no fraction, as Python's isoformat() (query's) prints it
    con = open_instance(":memory:")
    expr = export_mod._text_column("t", "TIMESTAMP WITH TIME ZONE", fmt)
    moments = [datetime(2021, 4, 1, 10, 30, tzinfo=UTC),
               datetime(2021, 4, 1, 10, 30, 0, 500000, tzinfo=UTC)]  # fmt: skip
    texts = con.execute(f"select {expr} from (select unnest(?) as t)", [moments]).fetchall()
    con.close()
    assert [t for (t,) in texts] == [m.isoformat() for m in moments]


def test_geoparquet_metadata_and_points(cat: Catalog, tmp_path: Path) -> None:
    out = tmp_path / "bsm.geoparquet"
    res = cat.export("wydot", "BSM", D1, D2, output=out, format="geoparquet")
    meta = pq.read_metadata(out).metadata
    geo = json.loads(meta[b"geo"])
    assert geo["version"].startswith("1.") and geo["primary_column"] == "geometry"
    col = geo["columns"]["geometry"]
    assert col["encoding"] == "WKB" and col["geometry_types"] == ["Point"]
    assert col["crs"]["id"] == {"authority": "EPSG", "code": 4326}
    table = pq.read_table(out)
    assert table.num_rows == res.rows and table.column_names[-1] == "geometry"
    df = table.to_pandas()
    assert col["bbox"] == [
        df.longitude.min(),
        df.latitude.min(),
        df.longitude.max(),
        df.latitude.max(),
    ]
    for wkb, lat, lon in zip(df.geometry[:50], df.latitude[:50], df.longitude[:50], strict=True):
        order, kind, x, y = struct.unpack("<BIdd", wkb)  # little-endian WKB POINT: x=lon, y=lat
        assert (order, kind, x, y) == (1, 1, lon, lat)


def test_geopandas_opens_the_geoparquet_as_epsg_4326(cat: Catalog, tmp_path: Path) -> None:
    geopandas = pytest.importorskip("geopandas")
    out = tmp_path / "bsm.geoparquet"
    cat.export("wydot", "BSM", D1, output=out, format="geoparquet", columns=["vehicle_id"])
    gdf = geopandas.read_parquet(out)
    assert gdf.crs is not None and gdf.crs.to_epsg() == 4326
    want = cat.query("SELECT longitude, latitude FROM wydot_bsm WHERE date = ?", [D1])
    assert sorted(zip(gdf.geometry.x, gdf.geometry.y, strict=True)) == sorted(
        zip(want.longitude, want.latitude, strict=True)
    )


def test_within_gives_the_rows_of_catalog_query(cat: Catalog, tmp_path: Path) -> None:
    pos = cat.query("SELECT median(latitude) AS lat, median(longitude) AS lon FROM wydot_bsm")
    center = (float(pos.lat[0]), float(pos.lon[0]), 30_000.0)
    pred, params = cat.where_spatial(within=center)
    want = cat.query(f"SELECT {', '.join(KEY)} FROM wydot_bsm WHERE {pred}", params)
    total = cat.query("SELECT count(*) AS n FROM wydot_bsm").n[0]
    assert 0 < len(want) < total  # the area keeps some rows, not all
    out = tmp_path / "near.parquet"
    res = cat.export("wydot", "BSM", D1, D2, output=out, within=center)
    assert res.rows == len(want)
    assert _sorted(pq.read_table(out).to_pandas(), KEY) == _sorted(want, KEY)
    # the CLI flag means the same
    cli = tmp_path / "cli.parquet"
    r = runner.invoke(
        app, ["export", "--catalog", str(cat.paths.root), "--source", "wydot", "--type", "BSM",
              "--start", str(D1), "--end", str(D2), "--within", ",".join(map(str, center)),
              "-o", str(cli), "--no-progress"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert f"exported {len(want):,} rows of wydot/BSM" in r.output
    assert pq.read_table(cli).num_rows == len(want)


def test_bbox_and_corridor_match_the_spatial_predicates(cat: Catalog, tmp_path: Path) -> None:
    pos = cat.query(
        "SELECT quantile_cont(latitude, 0.3) AS a, quantile_cont(latitude, 0.7) AS b, "
        "quantile_cont(longitude, 0.3) AS c, quantile_cont(longitude, 0.7) AS d FROM wydot_bsm"
    )
    box = (float(pos.a[0]), float(pos.c[0]), float(pos.b[0]), float(pos.d[0]))
    line = [(box[0], box[1]), (box[2], box[3])]
    for kw in ({"bbox": box}, {"corridor": (line, 3_000.0)}):
        pred, params = cat.where_spatial(**kw)
        want = cat.query(f"SELECT {', '.join(KEY)} FROM wydot_bsm WHERE {pred}", params)
        assert len(want) > 0, kw
        out = tmp_path / "area.csv"
        res = cat.export("wydot", "BSM", output=out, format="csv", **kw)
        assert res.rows == len(want)
        assert _sorted(_read(out, "csv"), KEY) == _sorted(want, KEY)
    geojson = tmp_path / "line.geojson"
    coords = [[lon, lat] for lat, lon in line]
    geojson.write_text(json.dumps({"type": "LineString", "coordinates": coords}))
    r = runner.invoke(
        app, ["export", "--catalog", str(cat.paths.root), "--source", "wydot", "--type", "BSM",
              "--corridor", f"{geojson},3000", "-o", str(tmp_path / "c.ndjson"), "--no-progress",
              "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rows"] == len(want)


def test_where_columns_and_socrata_naming(cat: Catalog, tmp_path: Path) -> None:
    out = tmp_path / "fast.parquet"
    res = cat.export(
        "wydot", "BSM", D1, D2, output=out, where="speed_mps > 20", columns="vehicle_id,speed_mps"
    )
    want = cat.query("SELECT vehicle_id, speed_mps FROM wydot_bsm WHERE speed_mps > 20")
    table = pq.read_table(out)
    assert table.column_names == ["vehicle_id", "speed_mps"] and res.rows == len(want) > 0
    assert _sorted(table.to_pandas(), ["vehicle_id", "speed_mps"]) == _sorted(
        want, ["vehicle_id", "speed_mps"]
    )
    soc = tmp_path / "socrata.geoparquet"
    res = cat.export(
        "wydot", "BSM", D1, D2, output=soc, format="geoparquet", naming="socrata",
        columns=["coreData_id", "coreData_speed"], where='"coreData_speed" > 20',
    )  # fmt: skip
    want = cat.query(
        'SELECT "coreData_id", "coreData_speed", "coreData_position_long" AS x, '
        '"coreData_position_lat" AS y FROM wydot_bsm_socrata WHERE "coreData_speed" > 20'
    )
    got = pq.read_table(soc).to_pandas()
    assert list(got.columns) == ["coreData_id", "coreData_speed", "geometry"]
    assert res.rows == len(want) > 0
    xy = [struct.unpack("<BIdd", g)[2:] for g in got.geometry]
    assert sorted(zip(got.coreData_id, got.coreData_speed, xy, strict=True)) == sorted(
        zip(want.coreData_id, want.coreData_speed, zip(want.x, want.y, strict=True), strict=True)
    )


def test_ngsim_exports_with_its_own_columns(cat: Catalog, tmp_path: Path) -> None:
    out = tmp_path / "ngsim.geoparquet"
    res = cat.export("ngsim", output=out, format="geoparquet", where="speed_mps > 5")
    want = cat.query("SELECT vehicle_id, frame_id, x_m FROM ngsim_trajectories WHERE speed_mps > 5")
    assert res.rows == len(want) > 0 and res.source == "ngsim"
    got = pq.read_table(out).to_pandas()
    cols = ["vehicle_id", "frame_id", "x_m"]
    assert _sorted(got, cols) == _sorted(want, cols)
    with pytest.raises(ConfigError, match="canonical column names only"):
        cat.export("ngsim", output=tmp_path / "x.parquet", naming="socrata")


def test_an_export_advances_the_lru_clock_of_what_it_read(cat: Catalog, tmp_path: Path) -> None:
    """As a to_dask read does: an exported day looked unused to `cache evict` (only ingests
    and frames logged an access), so the days a user exported every week went first."""
    before = read_access_log(cat.paths)
    cat.export("wydot", "BSM", D2, output=tmp_path / "d2.parquet")
    after = read_access_log(cat.paths)
    d1, d2 = (f"wydot/BSM/{d:%Y/%m/%d}" for d in (D1, D2))
    assert after[d2] > before.get(d2, datetime.min.replace(tzinfo=UTC))
    assert after.get(d1) == before.get(d1)  # a day it did not read keeps its time
    cat.export("ngsim", output=tmp_path / "ngsim.parquet")
    again = read_access_log(cat.paths)
    read = [k for k in again if k.startswith("ngsim/location=")]
    assert read and all(again[k] > after.get(k, again[d2]) for k in read)
    # the CLI's export too (the library's), and not an export of an older snapshot
    r = runner.invoke(app, ["export", "--catalog", str(cat.paths.root), "--source", "wydot",
                            "--type", "BSM", "--start", str(D1), "-o", str(tmp_path / "d1.csv")])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert read_access_log(cat.paths)[d1] > again.get(d1, datetime.min.replace(tzinfo=UTC))
    assert read_access_log(cat.paths)[d2] == again[d2]  # --start alone: that day (not D2 too)
    last = read_access_log(cat.paths)
    cat.export("wydot", "BSM", D2, output=tmp_path / "old.parquet", snapshot=1)
    assert read_access_log(cat.paths) == last


def test_a_query_advances_the_lru_clock_of_the_files_it_read(cat: Catalog) -> None:
    """SQL advanced no clock: a day a user queried every morning looked unused to `cache
    evict`. Now the partitions of the files a statement opened (DuckDB's own log: after its
    filters pruned the rest), from the library, the CLI, a stream, a scratch session and
    threads at once; not a statement that read no file, nor one of an older snapshot."""
    d1, d2 = (f"wydot/BSM/{d:%Y/%m/%d}" for d in (D1, D2))
    before = read_access_log(cat.paths)
    never = datetime.min.replace(tzinfo=UTC)
    cat.query(f"select avg(speed_mps) from wydot_bsm where date = '{D2}'")
    after = read_access_log(cat.paths)
    assert after[d2] > before.get(d2, never) and after.get(d1) == before.get(d1)
    for sql in ("select 1", f"select avg(speed_mps) from bsm where date = date '{D2}' - 9"):
        cat.query(sql)  # no file, or every file pruned: no line
        assert read_access_log(cat.paths) == after
    cat.query_arrow(f"select * from wydot_bsm where date = '{D1}'", snapshot=1)
    assert read_access_log(cat.paths) == after  # (an older snapshot's files)

    def advanced(since: dict[str, datetime], *keys: str) -> bool:
        now = read_access_log(cat.paths)
        return all(now[k] > since.get(k, never) for k in keys)

    r = runner.invoke(app, ["query", "--catalog", str(cat.paths.root), "-f", "csv",
                            f"select vehicle_id from bsm where date = '{D1}'"])  # fmt: skip
    assert r.exit_code == 0 and advanced(after, d1), r.output
    last = read_access_log(cat.paths)
    rows: list[int] = []  # a stream: its files once it ends
    cat.query_batches("select speed_mps from wydot_bsm", lambda b: rows.append(b.num_rows),
                      batch_rows=10)  # fmt: skip
    assert len(rows) > 2 and advanced(last, d1, d2)
    last = read_access_log(cat.paths)
    cat.query("select count(*), avg(speed_mps) from trajectories where source = 'ngsim'",
              read_only=False)  # fmt: skip
    ngsim = [k for k in read_access_log(cat.paths) if k.startswith("ngsim/location=")]
    assert ngsim and advanced(last, *ngsim)
    # statements at once on the one reader instance: each finds its own day
    last = read_access_log(cat.paths)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda d: cat.query(f"select avg(speed_mps) from wydot_bsm "
                                          f"where date = '{d}'"), [D1, D2] * 4))  # fmt: skip
    assert advanced(last, d1, d2)
    with cat.db.read() as con:  # the log is off and empty between statements
        assert con.execute("select current_setting('enable_logging')").fetchone() == (False,)
        assert con.execute("select count(*) from duckdb_logs()").fetchone() == (0,)


def test_cvcatalog_shell_advances_the_lru_clock_of_the_files_it_read(cat: Catalog) -> None:
    """A day read only in `cvcatalog shell` (the DuckDB CLI) looked unused to `cache evict`:
    the session now logs the files it opens and the shell records their partitions when it
    ends; a session that reads no day's file advances none, one that switched the log off
    advances none (and still exits as it would)."""
    d1, d2 = (f"wydot/BSM/{d:%Y/%m/%d}" for d in (D1, D2))

    def shell(sql: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "cvcatalog", "shell", "--catalog", str(cat.paths.root)],
            input=f".mode csv\n{sql}\n", capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done

    want = cat.query(f"select count(*) as n from wydot_bsm where date = '{D2}'")  # (a query
    before = read_access_log(cat.paths)  # advances the clock too: before the shell's)
    never = datetime.min.replace(tzinfo=UTC)
    done = shell(f"select count(*) as n from wydot_bsm where date = '{D2}';")
    assert done.stdout.split() == ["n", str(want["n"][0])]
    after = read_access_log(cat.paths)
    assert after[d2] > before.get(d2, never) and after.get(d1) == before.get(d1)
    for sql in ("select 42;", "set enable_logging = false; select count(*) from wydot_bsm;"):
        shell(sql)
        assert read_access_log(cat.paths) == after
    shell("select count(*) from bsm where speed_mps >= 0;")
    now = read_access_log(cat.paths)
    assert now[d1] > after.get(d1, never) and now[d2] > after[d2]
    assert cat.record_logged_reads(cat.paths.root / "no-such-log") == 0


def test_a_reader_instance_replaced_under_a_read_leaves_no_log_behind(cat: Catalog) -> None:
    """Each reader instance replaced while a query read on it (another process wrote
    meanwhile) kept its read log in the catalog object for the life of the process."""
    db = cat.db
    sql = f"select sum(speed_mps) from wydot_bsm where date = '{D1}'"
    recorded: list[set[str]] = []
    for _ in range(3):
        with db.read(on_read=lambda con, files: recorded.append(files)) as con:
            with db.write(message="another writer", state_only=True):
                pass  # a new catalog file: the next read needs a new instance (this one reads)
            with db.read(on_read=lambda con, files: recorded.append(files)) as other:
                other.execute(sql).fetchall()
            con.execute(sql).fetchall()
    assert len(recorded) == 6 and all(recorded)  # every read's files, on either instance
    assert list(db._read_logs) == [id(db._hub)]


def test_a_query_whose_reads_cannot_be_recorded_still_answers(
    cat: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The LRU clock is not worth failing a read for: the state unreadable or the access log
    unwritable, the query answers all the same (and records nothing)."""
    sql = f"select count(*) as n, avg(speed_mps) as s from wydot_bsm where date = '{D1}'"
    want = cat.query(sql)
    before = read_access_log(cat.paths)

    def unreadable(con: Any) -> dict[str, str]:
        raise duckdb.IOException("the state could not be read")

    def unwritable(keys: Any, paths: Any, when: Any = None) -> None:
        raise OSError(5, "Input/output error")

    for name, broken in (("file_keys", unreadable), ("record_access", unwritable)):
        with monkeypatch.context() as mp:
            mp.setattr(catalog_module, name, broken)
            mp.setattr(cat, "_file_keys", {})  # (read from the state again)
            assert cat.query(sql).equals(want)
    assert read_access_log(cat.paths) == before


def test_a_file_the_state_no_longer_names_is_not_looked_up_at_every_query(
    cat: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The map of files to partitions is read again when a statement opened a file it lacks; a
    file no partition holds now (an older snapshot's, as a change feed reads) is remembered
    as such, or every such query read the whole state again."""
    reads: list[int] = []

    def counted(con: Any) -> dict[str, str]:
        reads.append(1)
        return {"lake/main/wydot_bsm/x.parquet": "wydot/BSM/2021/04/01"}

    monkeypatch.setattr(catalog_module, "file_keys", counted)
    monkeypatch.setattr(cat, "_file_keys", {})
    recorded: list[list[str]] = []
    monkeypatch.setattr(cat, "_record_access", recorded.append)
    opened = {cat.db.store.location(f"lake/main/{f}") for f in ("wydot_bsm/x.parquet", "old.pq")}
    for _ in range(3):
        cat._record_reads(None, opened)  # type: ignore[arg-type]
    assert reads == [1] and recorded == [["wydot/BSM/2021/04/01"]] * 3


@pytest.mark.parametrize("fmt", ["parquet", "geoparquet", "csv", "ndjson"])
def test_an_empty_result_writes_a_valid_empty_file(cat: Catalog, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"none.{fmt}"
    res = cat.export("wydot", "BSM", D1, output=out, format=fmt, where="speed_mps < -1")
    assert res.rows == 0 and res.empty and out.exists()
    if fmt in ("parquet", "geoparquet"):
        table = pq.read_table(out)
        assert table.num_rows == 0 and table.column_names == res.columns
        assert "vehicle_id" in table.column_names
        if fmt == "geoparquet":
            geo = json.loads(pq.read_metadata(out).metadata[b"geo"])
            assert geo["columns"]["geometry"]["encoding"] == "WKB"
            assert "bbox" not in geo["columns"]["geometry"]
    elif fmt == "csv":
        header = out.read_text().splitlines()
        assert len(header) == 1 and header[0].split(",")[2] == '"vehicle_id"'
        assert pa_csv.read_csv(out).num_rows == 0
    else:
        assert out.read_bytes() == b""
    r = runner.invoke(
        app, ["export", "--catalog", str(cat.paths.root), "--source", "wydot", "--type", "BSM",
              "--start", str(D1), "--where", "speed_mps < -1", "-o", str(out), "--no-progress",
              "--format", fmt],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "no rows matched: wrote an empty" in r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--where", "no_such_column > 1"], "no_such_column"),
        (["--where", "speed_mps >"], "--where is not one SQL predicate"),
        (["--where", "true) UNION ALL (SELECT 1"], "--where is not one SQL predicate"),
        (["--where", "true; DROP TABLE wydot_bsm"], "--where is not one SQL predicate"),
        (["--columns", "vehicle_id,nope"], "unknown column(s) nope"),
        (["--where", "(SELECT count(*) FROM read_text('/etc/passwd')) > 0"], "disabled"),
        (["--where", "(SELECT count(*) FROM read_csv('/etc/hostname')) > 0"], "disabled"),
        (["--within", "41,-105"], "--within takes LAT,LON,RADIUS_M"),
        (["--within", "41,-105,100", "--bbox", "1,2,3,4"], "at most one of"),
        (["--type", "TIM", "--within", "41,-105,100"], "no latitude/longitude"),
        (["--format", "xlsx"], "--format must be one of"),
        (["--timezone", "Mars/Base"], "unknown timezone"),
        (["-o", "{catalog}/lake/x.parquet"], "inside the catalog directory"),
    ],
)
def test_bad_input_is_one_line_and_leaves_the_old_file(
    cat: Catalog, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "keep.parquet"
    out.write_bytes(b"previous export")
    base = ["export", "--catalog", str(cat.paths.root), "--source", "wydot", "--start", str(D1),
            "-o", str(out), "--no-progress"]  # fmt: skip
    if "--type" not in args:
        base += ["--type", "BSM"]
    args = [a.replace("{catalog}", str(cat.paths.root)) for a in args]
    r = runner.invoke(app, base + args)
    assert r.exit_code == 1, r.output
    errors = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], r.output
    assert "Traceback" not in r.output
    assert out.read_bytes() == b"previous export"  # replaced only by a finished export
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.parquet"]


def test_the_librarys_lines_name_its_parameters_and_the_clis_its_flags(
    cat: Catalog, tmp_path: Path
) -> None:
    """Catalog.export (and ops.export) said `--where is not one SQL predicate`, `--format must
    be ...`, `give --start with --end`, ... to a Python caller, who has no flags: the library
    names its parameters (or says nothing of either), and the CLI's line is the same with its
    flags, through export's names=."""
    out = tmp_path / "x.parquet"
    inside = cat.paths.root / "x.parquet"
    cases: list[tuple[dict[str, Any], list[str], str, str]] = [
        # (Catalog.export arguments, the same as flags, the library's line, the CLI's)
        ({"start": D1, "where": "speed_mps >"}, ["--start", str(D1), "--where", "speed_mps >"],
         "where is not one SQL predicate: ", "--where is not one SQL predicate: "),
        ({"start": D1, "format": "xlsx"}, ["--start", str(D1), "--format", "xlsx"],
         "format must be one of parquet, geoparquet, csv, ndjson, got 'xlsx'",
         "--format must be one of parquet, geoparquet, csv, ndjson, got 'xlsx'"),
        ({"start": "April 1st"}, ["--start", "April 1st"],
         "start must be a date like 2021-04-01, got 'April 1st'",
         "--start must be a date like 2021-04-01, got 'April 1st'"),
        ({"start": D1, "end": "4/2"}, ["--start", str(D1), "--end", "4/2"],
         "end must be a date like 2021-04-01, got '4/2'",
         "--end must be a date like 2021-04-01, got '4/2'"),
        ({"end": D2}, ["--end", str(D2)], "give start with end", "give --start with --end"),
        ({"start": D1, "output": tmp_path}, ["--start", str(D1), "-o", str(tmp_path), "--format", "parquet"],
         f"output {tmp_path} is a directory; give a file name",
         f"--output {tmp_path} is a directory; give a file name"),
        ({"start": D1, "output": inside}, ["--start", str(D1), "-o", str(inside)],
         f"output may not be inside the catalog directory {cat.paths.root.resolve()}",
         f"--output may not be inside the catalog directory {cat.paths.root.resolve()}"),
        ({"start": D1, "columns": ["vehicle_id", "nope"]},
         ["--start", str(D1), "--columns", "vehicle_id,nope"],
         "unknown column(s) nope in wydot_bsm (canonical names; `describe wydot_bsm` lists them)",
         "unknown column(s) nope in wydot_bsm (canonical names; `describe wydot_bsm` lists them)"),
    ]  # fmt: skip
    for kwargs, flags, library, cli in cases:
        call = {"output": out, **kwargs}
        with pytest.raises((ConfigError, QueryError)) as raised:
            cat.export("wydot", "BSM", **call)
        line = str(raised.value)
        assert line.startswith(library) and "--" not in line, line
        r = runner.invoke(
            app, ["export", "--catalog", str(cat.paths.root), "--source", "wydot", "--type", "BSM",
                  "-o", str(out), "--no-progress", *flags],
        )  # fmt: skip
        assert r.exit_code == 1 and r.stderr.startswith(f"error: {cli}"), r.output
        assert r.stderr.count("\n") == 1
    assert not out.exists()
    # the lines only the library gives (the CLI checks these itself first), in its words too
    for kwargs, library in [
        ({"naming": "nope"}, "naming must be canonical or socrata, got 'nope'"),
        ({"format": 3}, "format must be one of parquet, geoparquet, csv, ndjson, got 3"),
        ({"output": None}, "output is the file to write (a path), got None"),
    ]:
        with pytest.raises(ConfigError) as raised:
            cat.export("wydot", "BSM", D1, **{"output": out, **kwargs})
        assert str(raised.value) == library
    for call, library in [
        (lambda: cat.export("wydot", output=out), "give the message type of wydot: BSM, TIM"),
        (lambda: cat.export("ngsim", output=out, naming="socrata"),
         "ngsim has canonical column names only, no socrata names"),
        (lambda: export_mod.check_where("true; DROP TABLE wydot_bsm"),
         "where is not one SQL predicate: "),
    ]:  # fmt: skip
        with pytest.raises((ConfigError, QueryError)) as raised:
            call()
        assert str(raised.value).startswith(library) and "--" not in str(raised.value)


def test_an_output_that_is_not_a_regular_file_is_refused_not_replaced(
    cat: Catalog, tmp_path: Path
) -> None:
    """A FIFO (or a device: /dev/null, /dev/stdout as root) was renamed over by the finished
    export, replacing the special file with a regular one; a symlink was replaced by the file
    instead of the file it leads to being written."""
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    r = runner.invoke(app, ["export", "--catalog", str(cat.paths.root), "--source", "wydot",
                            "--type", "BSM", "--start", str(D1), "-o", str(fifo),
                            "--no-progress"])  # fmt: skip
    assert r.exit_code == 1, r.output
    assert r.output.startswith("error: ") and "not a regular file" in r.output, r.output
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still the FIFO
    assert _no_leftovers(tmp_path) == []
    # a name with no format's suffix (a FIFO "pipe", /dev/null): that it is no file to write
    # is the line, not that its name says no format
    bare = tmp_path / "pipe"
    os.mkfifo(bare)
    r = runner.invoke(app, ["export", "--catalog", str(cat.paths.root), "--source", "wydot",
                            "--type", "BSM", "--start", str(D1), "-o", str(bare)])  # fmt: skip
    assert r.exit_code == 1 and "is not a regular file" in r.output, r.output
    target = tmp_path / "real" / "out.parquet"
    target.parent.mkdir()
    target.write_bytes(b"previous export")
    link = tmp_path / "link.parquet"
    link.symlink_to(target)
    res = cat.export("wydot", "BSM", D1, output=link)
    assert link.is_symlink() and pq.read_metadata(target).num_rows == res.rows > 0


def test_python_api_errors_are_domain_errors(cat: Catalog, tmp_path: Path) -> None:
    with pytest.raises(QueryError, match="disabled"):
        cat.export(
            "wydot", "BSM", output=tmp_path / "x.csv", format="csv",
            where="(SELECT count(*) FROM read_text('/etc/passwd')) > 0",
        )  # fmt: skip
    with pytest.raises(ConfigError):
        cat.export("wydot", "BSM", output=tmp_path / "x.csv", format="csv", within=(41, -105))
    assert list(tmp_path.iterdir()) == []


def test_cli_summary_json_and_format_from_suffix(cat: Catalog, tmp_path: Path) -> None:
    out = tmp_path / "all.csv"
    r = runner.invoke(
        app, ["export", "--catalog", str(cat.paths.root), "--source", "wydot", "--type", "BSM",
              "--start", str(D1), "--end", str(D2), "-o", str(out), "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)  # one export, one JSON object (not a list of one)
    assert isinstance(summary, dict)
    assert list(summary) == ["path", "format", "rows", "bytes", "seconds", "source",
                             "message_type", "columns", "filters", "empty"]  # fmt: skip
    total = int(cat.query("SELECT count(*) AS n FROM wydot_bsm").n[0])
    assert summary["format"] == "csv" and summary["rows"] == total
    assert summary["bytes"] == out.stat().st_size and summary["empty"] is False
    assert summary["path"] == str(out) and summary["source"] == "wydot"
    assert len(pd.read_csv(io.StringIO(out.read_text()))) == total
    # an export of no rows: still one object, which says so
    r = runner.invoke(
        app, ["export", "--catalog", str(cat.paths.root), "--source", "wydot", "--type", "BSM",
              "--start", "2020-01-01", "-o", str(tmp_path / "none.csv"), "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    none = json.loads(r.stdout)
    assert isinstance(none, dict) and none["rows"] == 0 and none["empty"] is True
    # a listing stays a list of rows in JSON, even of one row
    r = runner.invoke(app, ["snapshots", "--catalog", str(cat.paths.root), "--limit", "1",
                            "--format", "json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    listed = json.loads(r.stdout)
    assert isinstance(listed, list) and len(listed) == 1 and "snapshot_id" in listed[0]


@pytest.mark.parametrize(
    ("fmt", "name", "named"),
    [
        ("csv", "ex.parquet", "parquet"),
        ("ndjson", "ex.csv", "csv"),
        ("parquet", "ex.jsonl", "ndjson"),
        ("geoparquet", "ex.ndjson", "ndjson"),
    ],
)
def test_a_format_the_output_name_contradicts_is_refused_as_query_refuses_it(
    cat: Catalog, tmp_path: Path, fmt: str, name: str, named: str
) -> None:
    """`export -f csv -o ex.parquet` wrote CSV into ex.parquet and printed "(csv, ...)": the
    same one line as `query -f csv -o y.parquet` now, before the catalog is even opened."""
    out = tmp_path / name
    said = (f"error: --format {fmt} but --output {name} names a {named} file: give a name "
            f"ending .{fmt}, or leave out --format to write {named}\n")  # fmt: skip
    for home in (cat.paths.root, tmp_path / "no-catalog-here"):
        r = runner.invoke(
            app, ["export", "--catalog", str(home), "--source", "wydot", "--type", "BSM",
                  "--start", str(D1), "-f", fmt, "-o", str(out), "--no-progress"],
        )  # fmt: skip
        assert r.exit_code == 1, r.output
        assert r.stderr == said and r.stdout == ""
        assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("fmt", "name"),
    [("geoparquet", "ex.parquet"), ("parquet", "ex.geoparquet"), ("ndjson", "ex.json"),
     ("CSV", "ex.csv"), ("csv", "ex.txt")],
)  # fmt: skip
def test_a_format_the_output_name_agrees_with_or_does_not_know_is_written(
    cat: Catalog, tmp_path: Path, fmt: str, name: str
) -> None:
    """A GeoParquet file is a Parquet file, .json is export's NDJSON, and a suffix that names
    no format (.txt) leaves --format to say: these export as before."""
    out = tmp_path / name
    r = runner.invoke(
        app, ["export", "--catalog", str(cat.paths.root), "--source", "wydot", "--type", "BSM",
              "--start", str(D1), "-f", fmt, "-o", str(out), "--no-progress", "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["format"] == fmt.lower() and summary["rows"] > 0
    assert len(_read(out, fmt.lower())) == summary["rows"]


def test_catalog_export_takes_the_format_from_the_output_suffix_as_the_cli_does(
    cat: Catalog, tmp_path: Path
) -> None:
    """Catalog.export(output="f.csv") wrote Parquet bytes into f.csv (format 'parquet'), .ndjson
    too, and format="csv" with output="a.parquet" wrote CSV over a good Parquet file: the API
    follows the CLI's rule now (the suffix decides; a contradiction is one ConfigError line)."""
    day = datetime(D1.year, D1.month, D1.day, tzinfo=UTC)
    want = int(cat.query("SELECT count(*) AS n FROM wydot_bsm WHERE generated_at >= ? "
                         "AND generated_at < ?", [day, day + timedelta(days=1)]).n[0])  # fmt: skip
    out = tmp_path / "x.csv"
    res = cat.export("wydot", "BSM", D1, output=out)
    assert res.format == "csv" and res.rows == want > 0
    with out.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == res.columns and len(rows) == want + 1
    out = tmp_path / "x.ndjson"
    res = cat.export("wydot", "BSM", D1, output=out)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert res.format == "ndjson" and len(lines) == want and list(lines[0]) == res.columns
    # a suffix naming no format: the default, parquet, as before; the same kind: as given
    out = tmp_path / "x.dat"
    assert cat.export("wydot", "BSM", D1, output=out).format == "parquet"
    assert pq.read_metadata(out).num_rows == want
    out = tmp_path / "x.parquet"
    assert cat.export("wydot", "BSM", D1, output=out, format="geoparquet").format == "geoparquet"
    before = out.read_bytes()
    with pytest.raises(ConfigError) as raised:
        cat.export("wydot", "BSM", D1, output=out, format="csv")
    assert str(raised.value) == (
        "format csv but output x.parquet names a parquet file: give a name ending .csv, or "
        "leave out format to write parquet"
    )
    assert out.read_bytes() == before and not _no_leftovers(tmp_path)
    assert export_mod.export_format(None, "a.jsonl") == "ndjson"
    assert export_mod.export_format(None, "a.txt") is None


def _export(cat: Catalog, *args: str) -> Any:
    return runner.invoke(
        app, ["export", "--catalog", str(cat.paths.root), "--no-progress", *args]
    )


def test_an_export_of_days_never_ingested_says_so_in_a_note(cat: Catalog, tmp_path: Path) -> None:
    """An export of a type never ingested (wydot TIM of a catalog of wydot BSM), or of days
    outside what the catalog holds, wrote an empty file and exited 0 with no hint, where
    to_dask warns (MissingDataWarning). Now the same warning's text is one note line on
    stderr naming the days and the ingest that fetches them; the file is still written and
    the exit code still 0 (scripts go on), stdout as before."""
    root = re.escape(str(cat.paths.root))
    cases = [
        (["--type", "TIM", "--start", str(D1)],
         r"wydot/TIM: 1 UTC day of the window 2021-04-01\.\.2021-04-01 \(UTC\) is not in "
         r"the catalog .*: 2021-04-01; the file has no rows of it\. `cvcatalog ingest --catalog "
         rf"{root} --source wydot --type TIM --start 2021-04-01 --end 2021-04-01` fetches"),
        (["--type", "BSM", "--start", "2020-12-30", "--end", "2021-01-02"],
         r"wydot/BSM: 4 UTC days of the window 2020-12-30\.\.2021-01-02 \(UTC\) are not in "
         r"the catalog .*: 2020-12-30, 2020-12-31, 2021-01-01, 2021-01-02; the file has no rows "
         r"of them\. `cvcatalog ingest .* --start 2020-12-30 --end 2021-01-02` fetches"),
        (["--type", "TIM"],  # no window: everything, of which the catalog holds nothing
         r"wydot/TIM: the catalog holds no partition of it .*; the file has no rows of it\. "
         rf"`cvcatalog ingest --catalog {root} --source wydot --type TIM --start DAY"),
    ]  # fmt: skip
    for i, (args, said) in enumerate(cases):
        out = tmp_path / f"none{i}.csv"
        r = _export(cat, "--source", "wydot", *args, "-o", str(out))
        assert r.exit_code == 0, r.output
        notes = [ln for ln in r.stderr.splitlines() if ln.startswith("note:")]
        assert len(notes) == 1 and re.match("note: " + said, notes[0]), r.stderr
        assert r.stderr == notes[0] + "\n"  # the one line, nothing else
        assert r.stdout.startswith("no rows matched: wrote an empty csv file")
        assert pa_csv.read_csv(out).num_rows == 0  # still written: the header
    # --json: stdout is still the one JSON object, the note on stderr
    r = _export(cat, "--source", "wydot", "--type", "TIM", "--start", str(D1), "--json",
                "-o", str(tmp_path / "none.parquet"))  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["empty"] is True and r.stderr.startswith("note: wydot/TIM: 1 ")
    # the part of a window the catalog holds is missing no day: no note
    r = _export(cat, "--source", "wydot", "--type", "BSM", "--start", str(D1), "--end", str(D2),
                "-o", str(tmp_path / "all.csv"))  # fmt: skip
    assert r.exit_code == 0 and r.stderr == "", r.output


def test_an_export_over_a_damaged_file_names_the_mend(cat: Catalog, tmp_path: Path) -> None:
    """A query over a damaged lake file says how to mend it; an export said DuckDB's line
    alone ("Invalid footer length ..."). Both now, whatever the format."""
    copy = Catalog(tmp_path / "copy")
    shutil.copytree(cat.paths.root, copy.paths.root)
    damaged = sorted((copy.paths.root / "lake/main/wydot_bsm").rglob("*.parquet"))[0]
    data = damaged.read_bytes()
    damaged.write_bytes(data[: len(data) // 2])
    for fmt in ("parquet", "csv"):
        with pytest.raises(QueryError) as raised:
            copy.export("wydot", "BSM", D1, D2, output=tmp_path / f"x.{fmt}")
        assert str(raised.value).endswith("run `cvcatalog cache verify --repair`)"), fmt
        assert not (tmp_path / f"x.{fmt}").exists()


def test_catalog_export_warns_of_missing_days_as_to_dask_does(
    cat: Catalog, tmp_path: Path
) -> None:
    """Catalog.export gives the MissingDataWarning to_dask gives (at the caller's line), and
    none for days it holds, for a snapshot's export or for NGSIM."""
    with pytest.warns(MissingDataWarning, match="2021-04-05; the file has no rows of it") as seen:
        res = cat.export("wydot", "BSM", "2021-04-05", output=tmp_path / "x.parquet")
    assert len(seen) == 1 and seen[0].filename == __file__
    assert res.empty and (tmp_path / "x.parquet").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingDataWarning)
        assert cat.export("wydot", "BSM", D1, D2, output=tmp_path / "y.parquet").rows > 0
        assert cat.export("wydot", "BSM", output=tmp_path / "z.parquet").rows > 0
        assert cat.export("ngsim", output=tmp_path / "n.parquet").rows > 0
        sid = int(cat.snapshots(limit=1)[0]["snapshot_id"])
        cat.export("wydot", "TIM", D1, output=tmp_path / "s.parquet", snapshot=sid)


def test_a_published_catalog_exports_the_same_rows(
    cat: Catalog, module_s3: Any, tmp_path: Path
) -> None:
    """Catalog("s3://...") (read-only, its session confined to its prefix) exports like the
    local catalog, spatial filter included, and a predicate still cannot read other files."""
    module_s3.create_bucket(Bucket="export-pub")
    assert cat.publish("s3://export-pub/cat").ok
    remote = Catalog("s3://export-pub/cat", cache_dir=tmp_path / "cache")
    pos = cat.query("SELECT median(latitude) AS lat, median(longitude) AS lon FROM wydot_bsm")
    center = (float(pos.lat[0]), float(pos.lon[0]), 30_000.0)
    here, there = tmp_path / "local.geoparquet", tmp_path / "remote.geoparquet"
    a = cat.export("wydot", "BSM", D1, D2, output=here, format="geoparquet", within=center)
    b = remote.export("wydot", "BSM", D1, D2, output=there, format="geoparquet", within=center)
    assert a.rows == b.rows > 0
    cols = ["generated_at", *KEY, "geometry"]
    assert _sorted(pq.read_table(here).to_pandas(), cols) == _sorted(
        pq.read_table(there).to_pandas(), cols
    )
    assert pq.read_metadata(here).metadata[b"geo"] == pq.read_metadata(there).metadata[b"geo"]
    with pytest.raises(QueryError, match="disabled"):
        remote.export(
            "wydot", "BSM", output=tmp_path / "x.csv", format="csv",
            where="(SELECT count(*) FROM read_text('/etc/passwd')) > 0",
        )  # fmt: skip


def test_a_query_failing_midway_is_a_query_error_and_leaves_no_file(
    cat: Catalog, tmp_path: Path
) -> None:
    """DuckDB's error reaches the batch loop through Arrow (an OSError): it must read as the
    query's error, not as a write error, and the temporary file must go."""
    con = duckdb.connect()
    con.execute("SET threads = 1")  # one thread: the error comes after batches were read
    late = "CASE WHEN range > 2900000 THEN CAST('x' || range::VARCHAR AS INTEGER) ELSE 0 END"
    reader = con.execute(f"SELECT {late} AS v FROM range(3000000)").to_arrow_reader(65_536)
    seen = 0
    with pytest.raises(QueryError, match="Conversion Error"):
        for batch in export_mod.result_batches(reader):
            seen += batch.num_rows
    assert seen >= 1_000_000
    out = tmp_path / "late.csv"
    out.write_text("old")
    with pytest.raises(QueryError, match="Conversion Error"):
        cat.export(
            "wydot", "BSM", output=out, format="csv",
            where=f"CASE WHEN date = DATE '{D2}' THEN CAST(vehicle_id AS INTEGER) ELSE 1 END > 0",
        )  # fmt: skip
    assert out.read_text() == "old" and _no_leftovers(tmp_path) == []


def test_a_where_that_names_no_column_is_named_as_the_callers(cat: Catalog, tmp_path: Path) -> None:
    """`--where "nosuch > 1"` printed DuckDB's Binder Error alone, naming no flag, where every
    other mistake in --where names it; the file is not made."""
    out = tmp_path / "w.csv"
    r = runner.invoke(app, ["export", "--catalog", str(cat.paths.root), "--source", "wydot",
                            "--type", "BSM", "--start", str(D1), "-o", str(out),
                            "--where", "nosuch > 1", "--no-progress"])  # fmt: skip
    assert r.exit_code == 1, r.output
    assert r.output.startswith("error: --where does not fit wydot_bsm: Binder Error: "), r.output
    assert "nosuch" in r.output and not out.exists()
    with pytest.raises(QueryError, match=r"^where does not fit wydot_bsm_socrata: "):
        cat.export("wydot", "BSM", D1, output=out, where="nosuch > 1", naming="socrata")
    # a predicate that fits still exports
    assert cat.export("wydot", "BSM", D1, output=out, where="speed_mps >= 0").rows > 0
