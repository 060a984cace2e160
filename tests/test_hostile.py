"""The hostile-input corpus (tests/hostile/cases.py) through the real conversion path.

Every case ends as parsed rows, quarantined lines with their reasons, or a clear CvCatalogError;
nothing crashes, the valid records of a file are kept with their values, and the quarantine
keeps the bad lines' bytes. A handful of cases also go end to end: local S3 endpoint ->
`cvcatalog ingest` -> catalog. docs/reliability.md ("Hostile input") has the outcome table.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hostile.cases import CASES, KEY_W6, MB, Case, w6_line
from typer.testing import CliRunner

from cvcatalog import exceptions, transform
from cvcatalog.catalog import Catalog
from cvcatalog.cli.main import app
from cvcatalog.config import MemoryConfig, ValidationConfig
from cvcatalog.schemas import SCHEMAS, list_literal
from cvcatalog.sources.bucket import BUCKET
from cvcatalog.transform import ConvertResult, RawFile, convert_partition


def _param(c: Case) -> Any:
    return pytest.param(c, id=c.name)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB set up as CvPilotDays._duckdb sets it up (memory limit, spill dir, no ordering)."""
    mem = MemoryConfig()
    c = duckdb.connect(":memory:")
    spill = tmp_path / "duckdb_tmp"
    spill.mkdir()
    c.execute("SET memory_limit = ?", [mem.duckdb_memory_limit])
    c.execute("SET temp_directory = ?", [str(spill)])
    c.execute("SET preserve_insertion_order = false")
    if mem.duckdb_threads:
        c.execute("SET threads = ?", [mem.duckdb_threads])
    yield c
    c.close()


def convert_case(
    con: duckdb.DuckDBPyConnection, c: Case, tmp: Path
) -> tuple[ConvertResult | None, Exception | None]:
    raw = tmp / "raw"
    raw.mkdir()
    files = []
    for i, (key, body) in enumerate(c.objects()):
        path = raw / f"{i:06d}-object.json"  # local names never derive from keys (as ingest)
        path.write_bytes(body)
        files.append(RawFile(path, key))
    mem = MemoryConfig()
    try:
        result = convert_partition(
            con,
            SCHEMAS[(c.source, c.message_type)],
            files,
            tmp / "out",
            validation=ValidationConfig(),
            target_rows_per_file=mem.rows_per_file,
            row_group_size=mem.row_group_size,
        )
    except exceptions.CvCatalogError as e:
        return None, e
    return result, None


def entries(result: ConvertResult) -> list[dict[str, Any]]:
    if result.quarantine_file is None:
        return []
    with open(result.quarantine_file, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def raw_bytes(entry: dict[str, Any]) -> bytes:
    """The exact bytes an entry keeps: raw_base64 when the line was not UTF-8, else raw."""
    if "raw_base64" in entry:
        return base64.b64decode(entry["raw_base64"])
    return (entry["raw"] or "").encode("utf-8")


def column(con: duckdb.DuckDBPyConnection, files: list[Path], name: str) -> list[Any]:
    if not files:
        return []
    rows = con.execute(
        f'SELECT "{name}" FROM read_parquet({list_literal(map(str, files))})'
    ).fetchall()
    return sorted((r[0] for r in rows), key=str)


@pytest.mark.parametrize("c", [_param(c) for c in CASES])
def test_case(c: Case, con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    result, error = convert_case(con, c, tmp_path)
    if c.error is not None:
        assert type(error).__name__ == c.error, error
        assert "\n" not in str(error)  # a one-line message
        assert not any((tmp_path / "out").glob("part-*"))  # nothing half-written is left
        return
    assert error is None, f"{type(error).__name__}: {error}"
    assert result is not None

    # rows: exactly the expected number, all valid, the valid records' values kept
    n_rows = sum(
        int(con.execute(f"SELECT count(*) FROM read_parquet('{p}')").fetchone()[0])  # type: ignore[index]
        for p in result.parquet_files
    )
    assert n_rows == result.rows
    assert result.rows == c.rows
    assert column(con, result.parquet_files, "invalid_reason") == [None] * result.rows
    for name, values in c.kept.items():
        assert column(con, result.parquet_files, name) == sorted(values, key=str), name

    # quarantine: the expected count, every entry with a reason, nothing unaccounted for
    found = entries(result)
    assert len(found) == result.quarantined == sum(result.reasons.values())
    assert result.quarantined == c.quarantined, [e["reason"] for e in found]
    assert all(e["reason"] and e["source_key"] for e in found)
    assert not any(transform.MISMATCH in e["reason"] for e in found), found
    for want in c.reasons:
        assert any(want in e["reason"] for e in found), (want, [e["reason"] for e in found])
    kept = [raw_bytes(e) for e in found]
    for line in c.bad_lines:
        exact = [k for k in kept if k.strip() == line.strip()]
        clipped = [
            k for k, e in zip(kept, found, strict=True) if "raw_size" in e and k.startswith(line)
        ]
        assert exact or clipped, f"bad line not kept in the quarantine: {line[:80]!r}"
    for e in found:
        if "raw_size" in e:  # a line too long to keep whole keeps its head and its size
            assert len(raw_bytes(e)) == transform.RAW_HEAD < e["raw_size"]

    for name, n in c.warnings.items():
        assert result.warnings.get(name) == n, result.warnings
    assert tuple(result.unknown_versions) == c.unknown_versions
    assert result.recovered == c.recovered


def test_corpus_size_and_classes() -> None:
    """The issue asks for at least 40 cases over these classes; names are unique."""
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)
    classes = Counter(c.klass for c in CASES)
    for k in (
        "truncated JSON",
        "truncated last line",
        "wrong types",
        "missing required fields",
        "NaN / Infinity",
        "huge numbers",
        "50 MB single line",
        "non-UTF-8 bytes",
        "UTF-8 BOM",
        "CRLF line endings",
        "empty files",
        "gzip-compressed objects",
        "duplicate records",
        "timestamp outside the folder's hour",
        "unknown schema versions",
        "# comment lines",
    ):
        assert classes[k] >= 1, k


def test_clean_objects_are_not_copied(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path stays fast: a clean object is only sniffed, never rewritten or rescanned."""
    calls: list[str] = []
    for name in ("gunzip", "strip_bom"):
        real = getattr(transform.rawfile, name)
        monkeypatch.setattr(
            transform.rawfile, name, lambda *a, _n=name, _r=real: (calls.append(_n), _r(*a))[1]
        )
    real_scan = transform._scan_lines
    monkeypatch.setattr(
        transform, "_scan_lines", lambda *a: (calls.append("scan"), real_scan(*a))[1]
    )
    [c] = [c for c in CASES if c.name == "duplicate_records_across_objects"]
    result, error = convert_case(con, c, tmp_path)
    assert error is None and result is not None and result.rows == 4
    assert calls == []


# -- memory: a 50 MB line is streamed, not slurped ----------------------------------------------

_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    import duckdb
    from cvcatalog.config import MemoryConfig, ValidationConfig
    from cvcatalog.schemas import SCHEMAS
    from cvcatalog.transform import RawFile, convert_partition

    tmp, size_mb, good = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode()
    src = tmp / "object.json"
    with open(src, "wb") as f:  # written in chunks: the test itself holds no big string
        f.write(good + b"\\n" + b'{"metadata": "')
        for _ in range(size_mb):
            f.write(b"x" * (1 << 20))
        f.write(b'"}\\n' + good + b"\\n")
    con = duckdb.connect()
    con.execute("SET memory_limit = ?", [MemoryConfig().duckdb_memory_limit])
    con.execute("SET threads = 2")  # DuckDB's read buffers grow with threads; fix them
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = convert_partition(con, SCHEMAS[("wydot", "BSM")], [RawFile(src, "k")], tmp / "out",
                          validation=ValidationConfig())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": r.rows, "q": r.quarantined, "reasons": r.reasons,
                      "growth_mb": (peak - base) / 1024}))
    """
)


def _convert_in_child(tmp_path: Path, size_mb: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(tmp_path), str(size_mb), w6_line(1).decode()],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_50mb_line_memory_stays_bounded(tmp_path: Path) -> None:
    got = _convert_in_child(tmp_path, 50)
    assert (got["rows"], got["q"], got["reasons"]) == (2, 1, {"line too long": 1})
    # the line is never held whole: a few 16 MiB scan buffers and DuckDB's read buffers
    # (~140 MB measured, the same for 50 and 500 MB lines)
    assert got["growth_mb"] < 256, got


@pytest.mark.slow
def test_500mb_line_memory_stays_bounded(tmp_path: Path) -> None:
    got = _convert_in_child(tmp_path, 500)
    assert (got["rows"], got["q"]) == (2, 1)
    assert got["growth_mb"] < 256, got  # holding the 500 MB line even once would exceed it


# -- end to end: local S3 endpoint -> cvcatalog ingest -> catalog ------------------------------

E2E = [
    "gzip_without_gz_suffix_with_bad_line",
    "gzip_cut_off",
    "latin1_byte_in_string",
    "bom_on_every_concatenated_object",
    "crlf_with_bad_line",
    "comment_lines_everywhere",
    "outside_hour_before_and_after",
    "duplicate_records_across_objects",
    "truncated_after_colon_swallows_nothing",
    "empty_only_whitespace",
    "joined_records_around_a_broken_one",
]
runner = CliRunner()


@pytest.mark.parametrize("name", E2E)
def test_end_to_end_through_s3(
    name: str, s3_client: Any, catalog_dir: Path, tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    [c] = [c for c in CASES if c.name == name]
    assert (c.source, c.message_type) == ("wydot", "BSM") and all(
        k.startswith("wydot/BSM/2018/05/06/") for k, _ in c.objects()
    )
    for key, body in c.objects():
        s3_client.put_object(Bucket=BUCKET, Key=key, Body=body)
    expected, _ = convert_case(con, c, tmp_path)  # the same objects straight through transform
    assert expected is not None

    r = runner.invoke(
        app,
        [
            "ingest",
            "--source",
            "wydot",
            "--type",
            "BSM",
            "--start",
            "2018-05-06",
            "--catalog",
            str(catalog_dir),
            "--rate-limit",
            "0",
            "--no-progress",
        ],
        catch_exceptions=False,
    )
    output = r.output
    assert r.exit_code == 0, output
    assert "Traceback" not in output and "error" not in output.lower()
    lines = [line for line in output.splitlines() if line.strip()]
    summary = [line for line in lines if line.startswith("wydot/BSM ")]
    assert len(summary) == 1, output
    assert f"{expected.rows:,} rows, {expected.quarantined:,} quarantined" in summary[0]
    if expected.recovered:
        assert f", {expected.recovered:,} recovered from joined lines; " in summary[0]
    else:
        assert "recovered" not in summary[0]
    assert "1 complete" in summary[0] and "0 failed" in summary[0]
    assert all(line.startswith(("wydot/BSM ", "note: ")) for line in lines), output

    cat = Catalog(catalog_dir)
    n = cat.query("select count(*) as n from wydot_bsm").n[0]
    assert n == expected.rows
    (run,) = cat.runs()  # the run's record keeps what its summary said
    assert (run["rows"], run["quarantined"], run["recovered"]) == (
        expected.rows, expected.quarantined, expected.recovered,
    )  # fmt: skip
    q = cat.query("select path, rows from partition_files where kind = 'quarantine'")
    assert int(q.rows.sum()) == expected.quarantined
    stored = []
    for rel in q.path:
        stored += [json.loads(x) for x in (catalog_dir / rel).read_text().splitlines()]
    assert sorted(e["reason"] for e in stored) == sorted(e["reason"] for e in entries(expected))
    if expected.warnings:
        report = cat.query(
            "select rule, sum(count) as n from validation_reports where kind = 'warning' "
            "group by rule"
        )
        assert dict(zip(report.rule, report.n, strict=True)) == expected.warnings


def test_end_to_end_50mb_line(s3_client: Any, catalog_dir: Path) -> None:
    """The 50 MB line through the S3 path: the day completes, the line is quarantined."""
    body = w6_line(1) + b"\n" + b"{" + b"x" * (50 * MB) + b"\n" + w6_line(2) + b"\n"
    s3_client.put_object(Bucket=BUCKET, Key=KEY_W6, Body=body)
    del body
    args = ["--start", "2018-05-06", "--catalog", str(catalog_dir), "--rate-limit", "0"]
    r = runner.invoke(
        app,
        ["ingest", "--source", "wydot", "--type", "BSM", *args, "--no-progress"],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    assert "2 rows, 1 quarantined" in r.output and "Traceback" not in r.output


# -- the clear error: an object DuckDB keeps rejecting ------------------------------------------


def _padded_line() -> bytes:
    """A valid 40 MB record: read_json fails on it (its buffers hold twice its limit)."""
    return w6_line(1)[:-1] + b', "padding": "' + b"x" * (40 * MB) + b'"}'


def test_an_object_that_cannot_be_set_aside_is_a_clear_error(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should DuckDB reject a line the scan lets through (here: the scan's limit raised above
    read_json's), conversion stops with a one-line ConversionError and leaves nothing behind."""
    monkeypatch.setattr(transform, "MAX_SCAN_LINE", 64 * MB)
    src = tmp_path / "object.json"
    src.write_bytes(_padded_line() + b"\n")
    out = tmp_path / "out"
    with pytest.raises(exceptions.ConversionError) as e:
        convert_partition(
            con,
            SCHEMAS[("wydot", "BSM")],
            [RawFile(src, KEY_W6)],
            out,
            validation=ValidationConfig(),
        )
    assert "\n" not in str(e.value) and str(transform.READ_JSON_MAX_OBJECT) in str(e.value)
    assert list(out.iterdir()) == []


def test_the_clear_error_through_the_cli(
    s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transform, "MAX_SCAN_LINE", 64 * MB)
    s3_client.put_object(Bucket=BUCKET, Key=KEY_W6, Body=_padded_line() + b"\n")
    args = ["--start", "2018-05-06", "--catalog", str(catalog_dir), "--rate-limit", "0"]
    r = runner.invoke(
        app,
        ["ingest", "--source", "wydot", "--type", "BSM", *args, "--no-progress"],
        catch_exceptions=False,
    )
    assert r.exit_code == 1
    assert "Traceback" not in r.output
    [failed] = [line for line in r.output.splitlines() if line.startswith("  failed ")]
    assert failed.startswith("  failed wydot/BSM/2018/05/06: a record of ")
