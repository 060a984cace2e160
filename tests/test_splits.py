"""Splits without leakage (cvcatalog/read/splits.py, Catalog.split, experiment `split:`):
disjoint groups, reproducible from the seed, row fractions within 1 % on a replica of a few
thousand rows over many vehicles."""

from __future__ import annotations

import json
import warnings
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from cvcatalog.catalog import Catalog
from cvcatalog.cli.main import app
from cvcatalog.exceptions import CatalogError, ConfigError, MissingDataWarning
from cvcatalog.read.experiments import CatalogGatherer
from cvcatalog.read.splits import SPLIT_NAMES, assign, nothing_to_split, relation
from cvcatalog.sandbox.ngsim import generate_ngsim
from cvcatalog.sandbox.replica import seed_replica

D1, D2 = date(2021, 4, 1), date(2021, 4, 2)
FRACTIONS = (0.7, 0.2, 0.1)


@pytest.fixture(scope="module")
def cat(module_s3: Any, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    seed_replica(module_s3, D1, D2, sources=["wydot"], message_types=["BSM"],
                 records_per_hour=120, files_per_hour=1, vehicles=400, seed=9)  # fmt: skip
    c = Catalog(tmp_path_factory.mktemp("splits") / "catalog")
    assert c.ingest("wydot", "BSM", D1, D2, rate_limit=0).ok
    return c


def _frames(cat: Catalog, **kw: Any) -> list[pd.DataFrame]:
    parts = cat.split("wydot", "BSM", D1, D2, fractions=FRACTIONS, **kw)
    return [f.compute() for f in parts]


def _check_fractions(frames: list[pd.DataFrame], total: int) -> None:
    assert sum(len(f) for f in frames) == total
    for f, want in zip(frames, FRACTIONS, strict=True):
        assert abs(len(f) / total - want) <= 0.01, [len(x) / total for x in frames]


def test_split_by_vehicle_is_disjoint_complete_and_meets_the_fractions(cat: Catalog) -> None:
    total = int(cat.query("select count(*) as n from wydot_bsm").n[0])
    vehicles = int(cat.query("select count(distinct vehicle_id) as n from wydot_bsm").n[0])
    assert total > 4000 and vehicles > 300
    frames = _frames(cat, by="vehicle", seed=3)
    _check_fractions(frames, total)
    ids = [set(f.vehicle_id) for f in frames]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert len(ids[0] | ids[1] | ids[2]) == vehicles
    # reproducible from the seed; another seed moves vehicles
    again = _frames(cat, by="vehicle", seed=3)
    assert [set(f.vehicle_id) for f in again] == ids
    other = _frames(cat, by="vehicle", seed=4)
    assert [set(f.vehicle_id) for f in other] != ids
    _check_fractions(other, total)


def test_a_source_splits_without_a_type_as_its_one_type_with_vehicle_ids(cat: Catalog) -> None:
    """`split --source thea` said "give the message type of thea: BSM, TIM, SPAT", though BSM
    is its one type with vehicle ids (as `report coverage` takes its one type with positions)."""
    by_bsm = [set(f.vehicle_id) for f in _frames(cat, seed=5)]
    untyped = cat.split("wydot", start=D1, end=D2, fractions=FRACTIONS, seed=5)
    assert [set(f.vehicle_id.compute()) for f in untyped] == by_bsm
    args = ["split", "--catalog", str(cat.paths.root), "--source", "wydot", "--start", str(D1),
            "--end", str(D2), "--fractions", "0.7,0.2,0.1", "--seed", "5", "--format", "json"]
    out = CliRunner().invoke(app, args)  # fmt: skip
    assert out.exit_code == 0, out.output
    assert [r["vehicles"] for r in json.loads(out.stdout)] == [len(ids) for ids in by_bsm]
    # a source with no such type: the line that names why
    with pytest.raises(ConfigError, match="nycdot_event has no vehicle_id"):
        cat.split("nycdot", start=D1)


def test_split_by_trip_keeps_each_trip_whole(cat: Catalog) -> None:
    points = cat.query("select vehicle_id, generated_at, trip_id from bsm_points")
    frames = _frames(cat, by="trip", seed=0)
    _check_fractions(frames, len(points))
    trips_of = []
    for f in frames:
        m = f[["vehicle_id", "generated_at"]].merge(points, on=["vehicle_id", "generated_at"])
        trips_of.append(set(m.trip_id))
    assert not (trips_of[0] & trips_of[1]) and not (trips_of[1] & trips_of[2])
    assert not (trips_of[0] & trips_of[2])
    sizes = points.groupby("trip_id").size()
    for f, trips in zip(frames, trips_of, strict=True):
        assert len(f) == int(sizes[list(trips)].sum())  # whole trips, nothing else
    # a vehicle id can be in several splits by trip (its trips go their own ways)
    ids = [set(f.vehicle_id) for f in frames]
    assert ids[0] & (ids[1] | ids[2])


def test_split_by_trip_with_socrata_columns(cat: Catalog) -> None:
    cols = ["coreData_speed", "coreData_position"]
    parts = cat.split("wydot", "BSM", D1, D2, by="trip", fractions=FRACTIONS, seed=0,
                      naming="socrata", columns=cols)  # fmt: skip
    canonical = _frames(cat, by="trip", seed=0)
    for frame, want in zip(parts, canonical, strict=True):
        got = frame.compute()
        assert list(got.columns) == cols and list(frame.columns) == cols
        assert len(got) == len(want)
        assert sorted(got.coreData_speed) == sorted(want.speed_mps)


def test_assignment_is_deterministic_and_greedy() -> None:
    sizes = {f"v{i}": 1 + (i * 7) % 13 for i in range(500)}
    a = assign(sizes, (0.8, 0.1, 0.1), seed=1)
    assert a == assign(dict(reversed(sizes.items())), (0.8, 0.1, 0.1), seed=1)
    assert a != assign(sizes, (0.8, 0.1, 0.1), seed=2)
    rows = [sum(n for k, n in sizes.items() if a[k] == i) for i in range(3)]
    total = sum(sizes.values())
    assert all(abs(r / total - f) <= 13 / total for r, f in zip(rows, (0.8, 0.1, 0.1), strict=True))
    none_to_val = assign(sizes, (0.9, 0.0, 0.1), seed=1)
    assert 1 not in none_to_val.values()


def test_bad_split_requests_are_one_clear_line(cat: Catalog) -> None:
    with pytest.raises(ConfigError, match="add up to 1"):
        cat.split("wydot", "BSM", D1, D2, fractions=(0.8, 0.3, 0.1))
    with pytest.raises(ConfigError, match="three numbers"):
        cat.split("wydot", "BSM", D1, D2, fractions=(0.8, 0.2))
    with pytest.raises(ConfigError, match="vehicle_id"):
        cat.split("wydot", "TIM", D1, D2)
    with pytest.raises(ConfigError, match="unknown timezone 'Mars/Base'"):
        cat.split("wydot", "BSM", D1, D2, timezone="Mars/Base")
    with pytest.raises(ConfigError, match="unknown timezone 'Mars/Base'"):
        cat.to_dask("wydot", "BSM", D1, D2, timezone="Mars/Base")
    for cmd in (["split"], ["export", "--output", "x.parquet"]):
        r = CliRunner().invoke(app, [*cmd, "--catalog", str(cat.paths.root), "--source", "wydot",
                                     "--type", "BSM", "--start", str(D1), "--timezone", "Mars/Base"])  # fmt: skip
        assert r.exit_code == 1 and r.output.startswith("error: unknown timezone"), r.output
        assert "unexpected" not in r.output
    with pytest.raises(ConfigError, match="by must be one of 'vehicle', 'trip', got 'day'"):
        cat.split("wydot", "BSM", D1, D2, by="day")  # type: ignore[arg-type]
    # a misspelt argument: to_dask's TypeError after the plan's query ran
    with pytest.raises(ConfigError, match=r"^split\(\) has no argument 'colums'; besides its "
                                          r"own it takes to_dask's: bbox, columns, "):
        cat.split("wydot", "BSM", D1, D2, colums=["vehicle_id"])


def test_experiment_yaml_split_hands_back_the_named_split(cat: Catalog, tmp_path: Path) -> None:
    parts = cat.split("wydot", "BSM", D1, D2, by="vehicle", fractions=FRACTIONS, seed=5)
    for use in SPLIT_NAMES:
        path = tmp_path / f"{use}.yml"
        path.write_text(
            "experiment: {name: split-demo}\n"
            "data:\n  source: wydot\n  message_type: BSM\n"
            "  date_range: {start_date: 2021-04-01, end_date: 2021-04-02}\n"
            f"split: {{by: vehicle, fractions: {list(FRACTIONS)}, seed: 5, use: {use}}}\n"
            "output: {column_names: socrata}\n"
        )
        got = CatalogGatherer(path, cat).gather_data().get_gathered_data().compute()
        want = getattr(parts, use).compute()
        assert len(got) == len(want) > 0
        assert set(got.coreData_id) == set(want.vehicle_id)
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "experiment: {name: x}\ndata:\n  source: wydot\n  message_type: BSM\n"
        "  date_range: {start_date: 2021-04-01}\nsplit: {fractions: [0.5, 0.6, 0.1]}\n"
    )
    with pytest.raises(ConfigError, match="add up to 1"):
        CatalogGatherer(bad, cat)
    bad.write_text(bad.read_text().replace("[0.5, 0.6, 0.1]", "[0.9, 0.1]"))
    with pytest.raises(ConfigError, match=r"three numbers \(train, validation, test\), got \[0"):
        CatalogGatherer(bad, cat)  # it said "split.fractions.2: Field required"


def test_a_start_alone_is_that_one_day_as_the_help_says(cat: Catalog) -> None:
    one = cat.split("wydot", "BSM", D1, fractions=FRACTIONS)
    day = cat.query("select count(*) as n from wydot_bsm where generated_at::DATE = ?", [D1])
    assert sum(len(f) for f in one) == int(day.n[0]) > 0
    out = CliRunner().invoke(app, ["split", "--catalog", str(cat.paths.root), "--source", "wydot",
                                   "--type", "BSM", "--start", str(D1), "--format", "json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert sum(r["rows"] for r in json.loads(out.stdout)) == int(day.n[0])


def test_the_plan_counts_the_rows_the_frames_hold_and_the_cli_shows_it(cat: Catalog) -> None:
    plan, _ = cat.split_plan("wydot", "BSM", D1, D2, by="trip", fractions=FRACTIONS, seed=2)
    frames = cat.split("wydot", "BSM", D1, D2, by="trip", fractions=FRACTIONS, seed=2)
    assert tuple(len(f) for f in frames) == plan.rows
    out = CliRunner().invoke(
        app,
        ["split", "--catalog", str(cat.paths.root), "--source", "wydot", "--type", "BSM",
         "--start", str(D1), "--end", str(D2), "--by", "trip", "--fractions", "0.7,0.2,0.1",
         "--seed", "2", "--format", "json"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert [r["rows"] for r in rows] == list(plan.rows)
    assert [r["trips"] for r in rows] == [len(plan.keys(i)) for i in range(3)]
    bad = CliRunner().invoke(app, ["split", "--catalog", str(cat.paths.root), "--source",
                                   "wydot", "--type", "BSM", "--fractions", "a,b"])  # fmt: skip
    assert bad.exit_code == 1 and "--fractions" in bad.output


def test_a_split_of_an_area_is_planned_on_the_areas_rows(cat: Catalog, tmp_path: Path) -> None:
    """within=/bbox=/corridor= (and an experiment's data.spatial) plan the split on the rows
    inside the area, as location= does a site's: planned on every row of the window, the
    frames (cut to the area afterwards) did not hold the plan's rows nor meet its fractions."""
    box = cat.query(
        "select min(latitude) - 0.01 a, quantile_cont(longitude, 0.3) b, "
        "max(latitude) + 0.01 c, max(longitude) + 0.01 d from wydot_bsm"
    ).iloc[0]
    area = (float(box.a), float(box.b), float(box.c), float(box.d))
    inside = int(cat.query("select count(*) n from wydot_bsm where latitude between ? and ? "
                           "and longitude between ? and ?",
                           [area[0], area[2], area[1], area[3]]).n[0])  # fmt: skip
    total = int(cat.query("select count(*) n from wydot_bsm").n[0])
    assert 0 < inside < total * 0.8
    for by in ("vehicle", "trip"):
        plan, groups = cat.split_plan("wydot", "BSM", D1, D2, by=by, fractions=FRACTIONS,  # type: ignore[arg-type]
                                      bbox=area)  # fmt: skip
        assert sum(plan.rows) == int(groups.n.sum()) == inside
        frames = cat.split("wydot", "BSM", D1, D2, by=by, fractions=FRACTIONS, bbox=area)  # type: ignore[arg-type]
        assert tuple(len(f) for f in frames) == plan.rows, by
        biggest = int(groups.n.max())
        for n, want in zip(plan.rows, FRACTIONS, strict=True):
            assert abs(n - want * inside) <= biggest, (by, plan.rows)
    # the command takes the area and a snapshot too (it had neither option)
    plan, _ = cat.split_plan("wydot", "BSM", D1, D2, fractions=FRACTIONS, bbox=area)
    sid = cat.snapshots()[0]["snapshot_id"]
    out = CliRunner().invoke(app, ["split", "--catalog", str(cat.paths.root), "--source", "wydot",
                                   "--type", "BSM", "--start", str(D1), "--end", str(D2),
                                   "--fractions", "0.7,0.2,0.1", "--bbox", ",".join(map(str, area)),
                                   "--snapshot", str(sid), "--format", "json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert [r["rows"] for r in json.loads(out.stdout)] == list(plan.rows)
    both = CliRunner().invoke(app, ["split", "--catalog", str(cat.paths.root), "--source",
                                    "wydot", "--type", "BSM", "--snapshot", "1", "--as-of",
                                    "2021-04-01", "--within", "41,-105,100",
                                    "--bbox", "1,2,3,4"])  # fmt: skip
    assert both.exit_code == 1 and "give at most one of --within" in both.stderr
    # an experiment's data.spatial with split: the same plan
    path = tmp_path / "area.yml"
    path.write_text(
        "experiment: {name: area-split}\n"
        "data:\n  source: wydot\n  message_type: BSM\n"
        "  date_range: {start_date: 2021-04-01, end_date: 2021-04-02}\n"
        f"  spatial: {{bbox: {{lat_min: {area[0]}, lon_min: {area[1]}, lat_max: {area[2]}, "
        f"lon_max: {area[3]}}}}}\n"
        f"split: {{by: vehicle, fractions: {list(FRACTIONS)}, use: validation}}\n"
        "output: {column_names: canonical}\n"
    )
    plan, _ = cat.split_plan("wydot", "BSM", D1, D2, fractions=FRACTIONS, bbox=area)
    got = CatalogGatherer(path, cat).gather_data().get_gathered_data().compute()
    assert len(got) == plan.rows[1] > 0
    with pytest.raises(CatalogError, match=r"^no wydot/BSM rows between .* inside the bbox lat"):
        cat.split_plan("wydot", "BSM", D1, D2, bbox=(10.0, 10.0, 10.5, 10.5))


def test_a_split_with_no_share_is_empty_with_the_same_columns(cat: Catalog) -> None:
    for by in ("vehicle", "trip"):
        train, validation, test = cat.split(
            "wydot", "BSM", D1, D2, by=by, fractions=(0.9, 0.0, 0.1), naming="socrata"
        )
        assert len(validation) == 0 and list(validation.columns) == list(train.columns)
        assert len(train) > 0 and len(test) > 0


def test_an_empty_window_is_one_line_as_coverage_says_it(cat: Catalog) -> None:
    line = "no wydot/BSM rows between 2020-01-01 and 2020-01-02 (UTC); nothing to split"
    for by in ("vehicle", "trip"):
        with pytest.raises(CatalogError) as raised, pytest.warns(MissingDataWarning):
            cat.split("wydot", "BSM", "2020-01-01", "2020-01-02", by=by)
        assert str(raised.value) == line
        with pytest.raises(CatalogError, match="nothing to split"), pytest.warns(
            MissingDataWarning, match="the split has no rows of them"
        ):
            cat.split_plan("wydot", "BSM", "2020-01-01", "2020-01-02", by=by)
    with pytest.raises(CatalogError, match=r"^no thea/BSM rows in the catalog; nothing to split$"):
        cat.split_plan("thea", "BSM")  # every partition: none of that source
    base = ["split", "--catalog", str(cat.paths.root), "--source", "wydot", "--type", "BSM",
            "--start", "2020-01-01"]  # fmt: skip
    for fmt in ("table", "json"):
        r = CliRunner().invoke(app, [*base, "--format", fmt])
        assert r.exit_code == 1, r.output
        assert r.stdout == ""  # no table of zeros, no JSON rows
        note, error = r.stderr.strip().splitlines()  # the day was never ingested: said first
        assert note.startswith("note: wydot/BSM: 1 UTC day of the window 2020-01-01..2020-01-01")
        assert "`cvcatalog ingest" in note
        assert error == (
            "error: no wydot/BSM rows between 2020-01-01 and 2020-01-01 (UTC); nothing to split"
        )


def test_a_split_names_missing_days_once_at_the_users_line(cat: Catalog, tmp_path: Path) -> None:
    """Catalog.split warned three times (once per frame) at cvcatalog's own line, the
    experiment gatherer at its module's, split_plan and the `split` command not at all: a
    window of days never ingested could not be told from days without traffic. Now one
    MissingDataWarning at the caller's line for each, and a note from the command."""
    window = ("wydot", "BSM", "2021-03-30", str(D2))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        parts = cat.split(*window, fractions=FRACTIONS)
        cat.split_plan(*window, fractions=FRACTIONS)
        path = tmp_path / "exp.yml"
        path.write_text(
            "experiment: {name: x}\ndata:\n  source: wydot\n  message_type: BSM\n"
            "  date_range: {start_date: 2021-03-30, end_date: 2021-04-02}\n"
            f"split: {{fractions: {list(FRACTIONS)}}}\n"
        )
        CatalogGatherer(path, cat).gather_data()
        path.write_text(path.read_text().split("split:")[0])  # no split: to_dask alone
        CatalogGatherer(path, cat).gather_data()
    missing = [w for w in seen if issubclass(w.category, MissingDataWarning)]
    assert len(missing) == 4, [str(w.message) for w in seen]
    assert all("2 UTC days" in str(w.message) for w in missing)
    assert {w.filename for w in missing} == {__file__}
    assert sum(len(f) for f in parts) > 0  # the days held are split
    # the frames' own reads warn no more when computed, and to_dask alone warns as before
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        parts.train.compute()
        cat.to_dask(*window)
    assert len([w for w in seen if issubclass(w.category, MissingDataWarning)]) == 1
    r = CliRunner().invoke(app, ["split", "--catalog", str(cat.paths.root), "--source", "wydot",
                                 "--type", "BSM", "--start", "2021-03-30", "--end", str(D2),
                                 "--by", " TRIP", "--format", "json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert [row["split"] for row in json.loads(r.stdout)] == list(SPLIT_NAMES)
    assert "trips" in json.loads(r.stdout)[0]
    assert r.stderr.startswith("note: wydot/BSM: 2 UTC days of the window 2021-03-30..")


def test_nothing_to_split_names_rows_without_a_vehicle_id() -> None:
    rel = relation("wydot", "BSM")
    line = str(nothing_to_split(rel, (D1, D1), "America/Denver", 1234, snapshot=7))
    assert line == (
        "none of the 1,234 wydot/BSM rows between 2021-04-01 and 2021-04-01 (America/Denver) "
        "at snapshot 7 has a vehicle id; nothing to split"
    )


def test_the_groups_first_is_where_each_group_begins_in_the_window(cat: Catalog) -> None:
    want = cat.query(
        "select vehicle_id, min(generated_at) as first from wydot_bsm "
        "where generated_at >= ? and generated_at < ? group by vehicle_id",
        [pd.Timestamp(D2, tz="UTC"), pd.Timestamp(D2, tz="UTC") + pd.Timedelta(days=1)],
    )
    _, groups = cat.split_plan("wydot", "BSM", D2, D2, by="vehicle")
    assert pd.api.types.is_datetime64_any_dtype(groups["first"])
    assert groups["first"].notna().all() and len(groups) == len(want) > 0
    got = groups.set_index("vehicle_id")["first"].sort_index()
    assert got.equals(want.set_index("vehicle_id")["first"].sort_index())
    _, trips = cat.split_plan("wydot", "BSM", D2, D2, by="trip")
    assert pd.api.types.is_datetime64_any_dtype(trips["first"]) and trips["first"].notna().all()
    # a vehicle's first row is its earliest trip's first row in the window
    earliest = trips.groupby("vehicle_id")["first"].min().sort_index()
    assert earliest.equals(got)


def test_a_split_of_one_ngsim_site_is_planned_on_that_site(tmp_path: Path) -> None:
    """location= (and `split --location`) plans the split on the site's own rows: planned on
    every site's rows, a small site's frames missed the fractions, a split even empty."""
    csv = tmp_path / "ngsim.csv"
    generate_ngsim(csv, 30_000, seed=1)
    cat = Catalog(tmp_path / "catalog")
    assert cat.ingest_dataset("ngsim", str(csv)).ok
    for site in ("peachtree", "us-101"):
        total = int(cat.query("select count(*) n from ngsim_trajectories where location = ?",
                              [site]).n[0])  # fmt: skip
        for by in ("vehicle", "trip"):
            plan, groups = cat.split_plan("ngsim", by=by, location=site)  # type: ignore[arg-type]
            assert sum(plan.rows) == int(groups.n.sum()) == total > 0
            frames = cat.split("ngsim", by=by, location=site)  # type: ignore[arg-type]
            sizes = tuple(len(f) for f in frames)
            assert sizes == plan.rows and all(sizes), (site, by, sizes)
            biggest = int(groups.n.max())
            for n, want in zip(sizes, plan.fractions, strict=True):
                assert abs(n - want * total) <= biggest, (site, by, sizes)
        r = CliRunner().invoke(app, ["split", "--catalog", str(cat.paths.root), "--source",
                                     "ngsim", "--location", site, "--format", "json"])  # fmt: skip
        assert r.exit_code == 0, r.output
        assert sum(row["rows"] for row in json.loads(r.stdout)) == total
    with pytest.raises(CatalogError, match=r"^no ngsim/TRAJECTORY \(i-80\) rows between"):
        cat.split_plan("ngsim", start="2005-06-15", end="2005-06-15", location="i-80")
    with pytest.raises(ConfigError, match="unknown NGSIM location 'mars'"):
        cat.split("ngsim", location="mars")
    with pytest.raises(ConfigError, match="location= selects sites of a dataset"):
        cat.split_plan("wydot", "BSM", location="i-80")


def test_split_location_on_a_cv_source_names_the_option(cat: Catalog) -> None:
    """The command names its own option (--location), the library its argument (location=)."""
    r = CliRunner().invoke(app, ["split", "--catalog", str(cat.paths.root), "--source", "wydot",
                                 "--type", "BSM", "--location", "i-80"])  # fmt: skip
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "error: --location selects sites of --source ngsim, not of wydot"
    ]
