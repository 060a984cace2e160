"""`report coverage`: hexbin maps of where the points of a date range are, and their counts."""

from __future__ import annotations

import re
import warnings
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from PIL import Image
from typer.testing import CliRunner

from cvcatalog.catalog import Catalog
from cvcatalog.cli.main import app
from cvcatalog.exceptions import ConfigError, MissingDataWarning
from cvcatalog.quality.coverage import build_coverage, positioned_type
from cvcatalog.sandbox.replica import seed_replica

runner = CliRunner()
D1, D2 = date(2021, 4, 1), date(2021, 4, 2)


def run(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def catalog_dir(module_s3: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two UTC days of WYDOT BSM (and the day after, so a Denver day has both its parts)."""
    seed_replica(module_s3, D1, D2 + timedelta(days=1), records_per_hour=30, files_per_hour=1,
                 vehicles=5)  # fmt: skip
    cat = tmp_path_factory.mktemp("coverage") / "catalog"
    r = run("ingest", "--source", "wydot", "--type", "BSM", "--start", D1.isoformat(), "--end",
            (D2 + timedelta(days=1)).isoformat(), "--catalog", str(cat), "--rate-limit", "0",
            "--no-progress")  # fmt: skip
    assert r.exit_code == 0, r.output
    return cat


def rows_between(cat: Path, lo: datetime, hi: datetime) -> int:
    got = Catalog(cat).query(
        "select count(*) as n from wydot_bsm where generated_at >= ? and generated_at < ?",
        [lo, hi],
    )
    return int(got.n[0])


def html_rows(text: str) -> int:
    m = re.search(r'<span id="rows">([\d,]+)</span>', text)
    assert m, text[:500]
    return int(m.group(1).replace(",", ""))


def test_maps_are_written_and_count_every_row_of_the_range(
    catalog_dir: Path, tmp_path: Path
) -> None:
    png, page = tmp_path / "coverage.png", tmp_path / "coverage.html"
    r = run("report", "coverage", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01",
            "--end", "2021-04-02", "--png", str(png), "--html", str(page), "--catalog",
            str(catalog_dir))  # fmt: skip
    assert r.exit_code == 0, r.output
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    text = page.read_text()
    assert "data:image/png;base64," in text and "+proj=laea" in text
    lo = datetime(2021, 4, 1, tzinfo=UTC)
    expected = rows_between(catalog_dir, lo, lo + timedelta(days=2))
    assert expected > 0
    assert html_rows(text) == expected
    # one table row per day, each equal to that day's rows
    for d in (D1, D2):
        day_lo = datetime.combine(d, datetime.min.time(), UTC)
        n = rows_between(catalog_dir, day_lo, day_lo + timedelta(days=1))
        assert f"<tr><td>{d.isoformat()}</td><td>{n:,}</td>" in text
    assert f"{expected:,} rows over 2 day(s)" in r.output


def test_binned_cells_hold_every_positioned_row_in_a_local_window(catalog_dir: Path) -> None:
    rep = build_coverage(Catalog(catalog_dir), "wydot", "BSM", "2021-04-01", "2021-04-01",
                         timezone="America/Denver", per_day=True)  # fmt: skip
    zone = ZoneInfo("America/Denver")
    lo = datetime(2021, 4, 1, tzinfo=zone).astimezone(UTC)
    assert rep.rows == rows_between(catalog_dir, lo, lo + timedelta(days=1))
    assert [d for d, _, _ in rep.days] == ["2021-04-01"]
    # the SQL binning loses no point: the cells' counts add up to the rows with a position
    assert int(rep.count.sum()) == rep.positioned > 0
    assert set(rep.day) == {"2021-04-01"}
    # every cell centre lies within half a cell of a real position's range
    got = Catalog(catalog_dir).query(
        "select min(latitude) as a, max(latitude) as b from wydot_bsm "
        "where generated_at >= ? and generated_at < ?",
        [lo, lo + timedelta(days=1)],
    )
    assert got.a[0] - rep.cell_deg <= rep.lat.min() and rep.lat.max() <= got.b[0] + rep.cell_deg


def test_the_type_defaults_to_the_sources_type_with_positions(catalog_dir: Path) -> None:
    """`report coverage --source ngsim` said "Missing option '--type'" (export and changes
    need none): each source has one type with positions, the map's."""
    assert positioned_type("ngsim") == ("ngsim", "TRAJECTORY")
    assert positioned_type("thea") == ("thea", "BSM")
    # a source none of whose types has positions: not "--type is needed: ... no type"
    with pytest.raises(ConfigError, match=r"^nycdot records have no position to map \(EVENT\)$"):
        positioned_type("nycdot")
    r = run("report", "coverage", "--source", "wydot", "--start", "2021-04-01",
            "--catalog", str(catalog_dir))  # fmt: skip
    given = run("report", "coverage", "--source", "wydot", "--type", "BSM", "--start",
                "2021-04-01", "--catalog", str(catalog_dir))  # fmt: skip
    assert r.exit_code == given.exit_code == 0, r.output
    assert r.output == given.output and " rows over 1 day(s)" in r.output


def test_per_day_maps(catalog_dir: Path, tmp_path: Path) -> None:
    one, many = tmp_path / "one.png", tmp_path / "many.png"
    common = ["report", "coverage", "--source", "wydot", "--type", "BSM", "--start",
              "2021-04-01", "--end", "2021-04-02", "--catalog", str(catalog_dir)]  # fmt: skip
    assert run(*common, "--png", str(one)).exit_code == 0
    r = run(*common, "--png", str(many), "--per-day")
    assert r.exit_code == 0, r.output
    # three panels (all days, then each day) make a larger image than the single map
    with Image.open(one) as a, Image.open(many) as b:
        assert b.size[0] > a.size[0]


def test_an_empty_range_is_one_line_and_writes_nothing(catalog_dir: Path, tmp_path: Path) -> None:
    png = tmp_path / "c.png"
    r = run("report", "coverage", "--source", "wydot", "--type", "BSM", "--start", "2020-01-01",
            "--png", str(png), "--catalog", str(catalog_dir))  # fmt: skip
    assert r.exit_code == 1
    # one error line, after the note that says why (a day never ingested)
    note, error = r.output.strip().splitlines()
    assert note.startswith("note: wydot/BSM: 1 UTC day of the window 2020-01-01..2020-01-01")
    assert error.startswith("error: no wydot/BSM rows between 2020-01-01 and 2020-01-01")
    assert not png.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "TIM"], "have no position"),
        (["--type", "XYZ"], "does not publish 'XYZ'"),
        (["--type", "BSM", "--timezone", "Mars/Olympus"], "timezone"),
        (["--type", "BSM", "--end", "2021-03-01"], "end date 2021-03-01 is before start date"),
    ],
)
def test_bad_input_is_one_line(catalog_dir: Path, args: list[str], message: str) -> None:
    r = run("report", "coverage", "--source", "wydot", "--start", "2021-04-01", *args,
            "--catalog", str(catalog_dir))  # fmt: skip
    assert r.exit_code == 1
    assert len(r.output.strip().splitlines()) == 1 and message in r.output


def test_quality_report_links_the_maps(catalog_dir: Path, tmp_path: Path) -> None:
    page = tmp_path / "quality.html"
    base = ["report", "quality", "--source", "wydot", "--type", "BSM", "--catalog",
            str(catalog_dir), "--html", str(page)]  # fmt: skip
    assert run(*base).exit_code == 0
    text = page.read_text()
    assert "cvcatalog report coverage --source wydot --type BSM --start 2021-04-01" in text
    assert 'href="coverage.html"' not in text
    r = run("report", "coverage", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01",
            "--html", str(tmp_path / "coverage.html"), "--catalog", str(catalog_dir))  # fmt: skip
    assert r.exit_code == 0, r.output
    assert run(*base).exit_code == 0
    assert 'href="coverage.html"' in page.read_text()


def test_days_never_ingested_are_named_as_export_names_them(
    catalog_dir: Path, tmp_path: Path
) -> None:
    """`report coverage` over a week with three days ingested drew the maps and said nothing
    of the other four: a day never ingested looked like a day with no data."""
    png = tmp_path / "week.png"
    r = run("report", "coverage", "--source", "wydot", "--start", "2021-04-01", "--end",
            "2021-04-07", "--png", str(png), "--catalog", str(catalog_dir))  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "note: wydot/BSM: 4 UTC days of the window 2021-04-01..2021-04-07 (UTC)" in r.stderr
    assert "2021-04-04, 2021-04-05" in r.stderr and png.exists()
    with pytest.warns(MissingDataWarning, match="the report has no rows of them"):
        Catalog(catalog_dir).coverage("wydot", None, "2021-04-01", "2021-04-07")
    with warnings.catch_warnings():  # the days it holds: no warning
        warnings.simplefilter("error", MissingDataWarning)
        Catalog(catalog_dir).coverage("wydot", "BSM", "2021-04-01", "2021-04-03")
