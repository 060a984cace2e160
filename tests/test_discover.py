"""Discovery and planning: listings against a seeded replica on the local endpoint, no GETs.

Expected values come from the test's own paginated listing of the bucket (s3_client), never from
the code under test.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cvcatalog.catalog import Catalog
from cvcatalog.cli.main import app
from cvcatalog.config import DownloadConfig
from cvcatalog.exceptions import ConfigError
from cvcatalog.io.download import S3Fetcher
from cvcatalog.io.layout import CatalogPaths
from cvcatalog.io.s3 import make_client
from cvcatalog.ops.discover import compact, human_bytes
from cvcatalog.pipeline.report import summary_lines
from cvcatalog.sandbox.replica import SeedReport, seed_replica
from cvcatalog.sources.bucket import BUCKET
from cvcatalog.state.db import CatalogDB

runner = CliRunner()
FAST = {"rate_limit": 0}  # no token-bucket waits in tests


def bucket_objects(client: Any, prefix: str) -> dict[str, int]:
    """key -> size of every object under prefix (the ground truth)."""
    out: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents") or ():
            out[item["Key"]] = int(item["Size"])
    return out


def grouped(client: Any, prefix: str) -> dict[tuple[str, str], list[int]]:
    """(first, second) folder below prefix -> [objects, bytes]."""
    out: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for key, size in bucket_objects(client, prefix).items():
        a, b = key[len(prefix) :].split("/")[:2]
        out[(a, b)][0] += 1
        out[(a, b)][1] += size
    return dict(out)


@pytest.fixture(scope="module")
def replica(module_s3: Any) -> Iterator[tuple[Any, SeedReport, SeedReport]]:
    """Seeded once for the module (nothing here writes to the bucket): wydot BSM and TIM
    2021-03-31..04-03 with 04-02 empty and a few empty hours (seed 42), and one month of
    nycdot EVENT bins, some of them empty."""
    client = module_s3
    wydot = seed_replica(
        client,
        date(2021, 3, 31),
        date(2021, 4, 3),
        sources=["wydot"],
        message_types=["BSM", "TIM"],
        records_per_hour=4,
        files_per_hour=1,
        empty_days=[date(2021, 4, 2)],
        empty_hour_rate=0.1,
    )
    nyc = seed_replica(
        client,
        date(2021, 4, 1),
        date(2021, 4, 1),
        sources=["nycdot"],
        message_types=["EVENT"],
        records_per_hour=1,
        files_per_hour=1,
        empty_hour_rate=0.3,
    )
    yield client, wydot, nyc


@pytest.fixture
def seeded(replica: tuple[Any, SeedReport, SeedReport]) -> tuple[SeedReport, SeedReport]:
    return replica[1], replica[2]


@pytest.fixture
def s3_client(replica: tuple[Any, SeedReport, SeedReport]) -> Any:
    """The module's client (overrides conftest's, which would empty the bucket)."""
    return replica[0]


@pytest.fixture(scope="module")
def empty_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly initialised catalog (creating its views takes seconds: done once, copied)."""
    root = tmp_path_factory.mktemp("template") / "catalog"
    CatalogDB(CatalogPaths.at(root)).initialise()
    return root


@pytest.fixture
def catalog_dir(tmp_path: Path, empty_catalog: Path) -> Path:
    root = tmp_path / "catalog"
    shutil.copytree(empty_catalog, root)
    return root


def counting_fetcher() -> tuple[S3Fetcher, list[str]]:
    """A fetcher whose client records every ListObjectsV2 sent (a botocore event hook)."""
    cfg = DownloadConfig(rate_limit=0)
    client = make_client(cfg)
    calls: list[str] = []
    client.meta.events.register(
        "before-call.s3.ListObjectsV2", lambda params, **_: calls.append(params["url_path"])
    )
    client.meta.events.register("before-call.s3.GetObject", lambda **_: calls.append("GET"))
    return S3Fetcher(client, cfg, BUCKET), calls


# -- library ----------------------------------------------------------------------------------
def test_discover_levels_match_the_bucket(seeded: Any, s3_client: Any, catalog_dir: Path) -> None:
    cat = Catalog(catalog_dir)

    d = cat.discover("wydot", **FAST)
    assert d.level == "types"
    assert [(r["type"], r["years_list"]) for r in d.rows] == [("BSM", ["2021"]), ("TIM", ["2021"])]

    d = cat.discover("wydot", "bsm", **FAST)
    assert [(r["year"], r["months_list"], r["months"]) for r in d.rows] == [
        ("2021", ["03", "04"], "03-04")
    ]

    d = cat.discover("wydot", "BSM", 2021, **FAST)
    assert [(r["month"], r["days_list"]) for r in d.rows] == [("03", ["31"]), ("04", ["01", "03"])]
    assert d.rows[1]["days"] == "01, 03"

    for mt in ("BSM", "TIM"):
        prefix = f"wydot/{mt}/2021/04/"
        truth = grouped(s3_client, prefix)
        d = cat.discover("wydot", mt, 2021, 4, **FAST)
        assert d.level == "partitions" and d.prefix == prefix
        assert d.missing == ["02"]  # the empty day has no folder at all
        assert [r["day"] for r in d.rows] == ["2021-04-01", "2021-04-03"]
        assert d.objects == sum(v[0] for v in truth.values())
        assert d.bytes == sum(v[1] for v in truth.values())
        for r in d.rows:
            day = r["day"][-2:]
            hours = sorted(h for (dd, h) in truth if dd == day)
            assert r["partition"] == f"wydot/{mt}/2021/04/{day}"
            assert r["n_hours"] == len(hours) and r["hours"] == compact(hours)
            assert r["missing_hours"] == compact(
                f"{h:02d}" for h in range(24) if f"{h:02d}" not in hours
            )
            assert r["objects"] == sum(truth[(day, h)][0] for h in hours)
            assert r["bytes"] == sum(truth[(day, h)][1] for h in hours)
            assert r["by_hour"] == {
                h: {"objects": truth[(day, h)][0], "bytes": truth[(day, h)][1]} for h in hours
            }
    # the seed leaves some hours empty: the test must exercise them
    assert any(r["missing_hours"] for r in d.rows)


def test_discover_nycdot_bins(seeded: Any, s3_client: Any, catalog_dir: Path) -> None:
    _, nyc = seeded
    cat = Catalog(catalog_dir)
    truth = grouped(s3_client, "nycdot/EVENT/2021/04/")
    assert 0 < len(truth) < 48  # some bins were left empty

    d = cat.discover("nycdot", "EVENT", 2021, **FAST)
    assert [r["month"] for r in d.rows] == ["04"]
    weekdays = d.rows[0]["weekdays_list"]
    assert set(weekdays) == {wd for wd, _ in truth}
    order = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN", "NA"]
    assert weekdays == [w for w in order if w in weekdays]  # calendar order, not alphabetical

    d = cat.discover("nycdot", "EVENT", 2021, 4, **FAST)
    got = {(r["weekday"], r["time_bin"]): [r["objects"], r["bytes"]] for r in d.rows}
    assert got == truth
    assert [r["weekday"] for r in d.rows] == sorted((r["weekday"] for r in d.rows), key=order.index)
    for wd in weekdays:
        bins = [r["time_bin"] for r in d.rows if r["weekday"] == wd]
        assert bins == [b for b in ("NT", "AM", "MD", "PM", "EV", "NA") if b in bins]
    assert {r["partition"] for r in d.rows} == {
        k for k, p in nyc.partitions.items() if not p.no_data
    }
    assert d.objects == nyc.objects and d.bytes == nyc.bytes


def test_listing_cache_ttl_and_refresh(
    seeded: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cat = Catalog(catalog_dir)
    fetcher, calls = counting_fetcher()
    first = cat.discover("wydot", "BSM", 2021, fetcher=fetcher)
    n_first = len(calls)
    assert n_first == first.list_requests == 3  # the year, then each of its two months

    fetcher, calls = counting_fetcher()
    again = cat.discover("wydot", "BSM", 2021, fetcher=fetcher)
    assert calls == [] and again.list_requests == 0
    assert again.rows == first.rows
    assert "from the listing cache" in again.listing

    fetcher, calls = counting_fetcher()
    fresh = cat.discover("wydot", "BSM", 2021, refresh=True, fetcher=fetcher)
    assert len(calls) == n_first and fresh.rows == first.rows
    assert "GET" not in calls

    # a TTL of 0 never reuses a listing
    monkeypatch.setenv("CVCATALOG_CACHE__LISTING_TTL_HOURS", "0")
    fetcher, calls = counting_fetcher()
    cat.discover("wydot", "BSM", 2021, fetcher=fetcher)
    assert len(calls) == n_first


def test_plan_before_and_after_an_ingest(seeded: Any, s3_client: Any, catalog_dir: Path) -> None:
    cat = Catalog(catalog_dir)
    days = {d: bucket_objects(s3_client, f"wydot/BSM/2021/04/{d}/") for d in ("01", "02", "03")}
    assert days["02"] == {}

    fetcher, calls = counting_fetcher()
    before = cat.plan("wydot", "BSM", "2021-04-01", "2021-04-03", fetcher=fetcher)
    assert "GET" not in calls and fetcher.get_requests == 0
    assert [(r["partition"], r["status"], r["fetch"]) for r in before.rows] == [
        (f"wydot/BSM/2021/04/{d}", "missing", True) for d in ("01", "02", "03")
    ]
    for r in before.rows:
        objs = days[r["partition"][-2:]]
        assert (r["objects"], r["bytes"]) == (len(objs), sum(objs.values()))
    t = before.totals
    assert t["fetch_partitions"] == 3 and t["cached_partitions"] == 0
    assert t["fetch_objects"] == sum(len(v) for v in days.values())
    assert t["fetch_bytes"] == sum(sum(v.values()) for v in days.values())

    summary = cat.ingest("wydot", "BSM", "2021-04-01", "2021-04-02", **FAST)
    assert summary.ok and summary.count("complete") == 1 and summary.count("no_data") == 1
    assert summary.get_requests == len(days["01"])  # what the plan said a GET would cost

    fetcher, calls = counting_fetcher()
    after = cat.plan("wydot", "BSM", "2021-04-01", "2021-04-03", fetcher=fetcher)
    assert calls == []  # every day was listed by the first plan, within the TTL
    assert [(r["status"], r["fetch"]) for r in after.rows] == [
        ("complete", False),
        ("no_data", False),
        ("missing", True),
    ]
    assert after.rows[0]["reason"] == "cached" and after.rows[0]["cached_rows"] == summary.rows
    t = after.totals
    assert (t["fetch_partitions"], t["cached_partitions"]) == (1, 2)
    assert t["fetch_objects"] == len(days["03"]) and t["fetch_bytes"] == sum(days["03"].values())
    assert t["objects"] == before.totals["objects"]  # listed totals do not change
    total = after.total_row()
    assert total["status"] == "1 complete, 1 missing, 1 no_data"
    assert total["fetch_objects"] == t["fetch_objects"]

    forced = cat.plan("wydot", "BSM", "2021-04-01", "2021-04-03", force_refresh=True, **FAST)
    assert all(r["fetch"] for r in forced.rows)


def test_plan_lists_no_day_after_today_as_an_ingest_does(seeded: Any, catalog_dir: Path) -> None:
    """plan showed days after today as work to fetch (listing them), while an ingest skips
    them: they are neither listed nor fetched, and a range all after today is its one line."""
    cat = Catalog(catalog_dir)
    fetcher, calls = counting_fetcher()
    p = cat.plan("wydot", "BSM", "2021-04-01", "2021-04-03", today=date(2021, 4, 1),
                 fetcher=fetcher)  # fmt: skip
    assert [(r["partition"][-2:], r["fetch"]) for r in p.rows] == [
        ("01", True), ("02", False), ("03", False),
    ]  # fmt: skip
    assert p.rows[1]["reason"].startswith("after today") and p.rows[2]["objects"] == 0
    assert not any("/04/02/" in c or "/04/03/" in c for c in calls)
    with pytest.raises(ConfigError, match="is after today"):
        cat.plan("wydot", "BSM", "2021-04-02", "2021-04-03", today=date(2021, 4, 1), **FAST)


def test_a_plan_of_years_lists_only_the_months_the_bucket_has(
    seeded: Any, s3_client: Any, catalog_dir: Path
) -> None:
    """A plan listed every day of its range: six years were 2,192 requests and 28 s (a
    mistyped century, hours). A range of more than a few months lists the type's years, then
    each of those years' months, and only the days of months that are there; the counts are
    the bucket's. Days after today are said so (they were counted as "already cached")."""
    cat = Catalog(catalog_dir)
    fetcher, calls = counting_fetcher()
    p = cat.plan("wydot", "BSM", "2019-01-01", "2021-12-31", today=date(2021, 12, 1),
                 fetcher=fetcher)  # fmt: skip
    assert len(p.rows) == 1096 and "GET" not in calls
    # the years, 2021's months, then the days of March and April 2021 (the seeded months)
    assert len(calls) == 2 + 31 + 30, calls[:3]
    truth = bucket_objects(s3_client, "wydot/BSM/")
    assert p.totals["objects"] == len(truth) and p.totals["bytes"] == sum(truth.values())
    got = {r["partition"]: r["objects"] for r in p.rows if r["objects"]}
    assert sorted(got) == [f"wydot/BSM/2021/{d}" for d in ("03/31", "04/01", "04/03")]
    assert p.totals["later_partitions"] == 30 and p.totals["cached_partitions"] == 0
    assert "; 0 already cached; 30 after today; " in p.summary()


def test_a_day_filled_since_it_was_listed_is_said_so(
    seeded: Any, s3_client: Any, catalog_dir: Path
) -> None:
    """Objects added to a day the catalog knew empty: a plain plan after `plan --refresh` went
    back to the older month listing (0 objects again), and a day whose no_data marker is kept
    was planned as "no_data (cached)" beside the objects the plan had listed, then the ingest
    said "no data in" it without listing it. The newer listing wins; both say what to do."""
    cat = Catalog(catalog_dir)
    day = "wydot_backup/BSM/2021/04/02"
    body = s3_client.get_object(Bucket=BUCKET, Key=next(iter(bucket_objects(
        s3_client, "wydot/BSM/2021/04/01/"))))["Body"].read()  # fmt: skip
    s3_client.put_object(Bucket=BUCKET, Key="wydot_backup/BSM/2021/04/01/00/a.json", Body=body)
    cat.discover("wydot_backup", "BSM", 2021, 4, **FAST)  # the month listing: 04/02 empty
    first = cat.ingest("wydot_backup", "BSM", "2021-04-02", "2021-04-02", **FAST)
    assert [o.status for o in first.outcomes] == ["no_data"]
    s3_client.put_object(Bucket=BUCKET, Key=f"{day}/03/b.json", Body=body)
    fresh = cat.plan("wydot_backup", "BSM", "2021-04-01", "2021-04-02", refresh=True, **FAST)
    again = cat.plan("wydot_backup", "BSM", "2021-04-01", "2021-04-02", **FAST)
    assert [r["objects"] for r in again.rows] == [r["objects"] for r in fresh.rows] == [1, 1]
    [row] = [r for r in again.rows if r["partition"] == day]
    assert (row["status"], row["fetch"]) == ("no_data", False)
    assert row["reason"] == "no_data (cached): the bucket now lists 1 object (--force-refresh)"
    s = cat.ingest("wydot_backup", "BSM", "2021-04-02", "2021-04-02", **FAST)
    assert f"  no data in {day} as recorded earlier (not listed again: --force-refresh lists " \
        "them)" in summary_lines(s)  # fmt: skip
    forced = cat.ingest("wydot_backup", "BSM", "2021-04-02", "2021-04-02", force_refresh=True,
                        **FAST)  # fmt: skip
    assert [o.status for o in forced.outcomes] == ["complete"]


def test_plan_reuses_a_month_listing_and_covers_timezones(
    seeded: Any, s3_client: Any, catalog_dir: Path
) -> None:
    cat = Catalog(catalog_dir)
    cat.discover("wydot", "TIM", 2021, 4, **FAST)  # caches the whole month
    fetcher, calls = counting_fetcher()
    p = cat.plan(
        "wydot", "TIM", "2021-04-01", "2021-04-02", timezone="America/Denver", fetcher=fetcher
    )
    # a Denver day spans two UTC days: 04-01..04-03; all three come from the month listing
    assert [r["partition"][-5:] for r in p.rows] == ["04/01", "04/02", "04/03"]
    assert calls == []
    truth = bucket_objects(s3_client, "wydot/TIM/2021/04/")
    assert p.totals["objects"] == len(truth) and p.totals["bytes"] == sum(truth.values())


def test_plan_nycdot_uses_one_listing_per_month(
    seeded: Any, s3_client: Any, catalog_dir: Path
) -> None:
    _, nyc = seeded
    fetcher, calls = counting_fetcher()
    p = Catalog(catalog_dir).plan("nycdot", "EVENT", "2021-04-05", "2021-04-06", fetcher=fetcher)
    assert len(calls) == 1 and len(p.rows) == 48
    got = {r["partition"]: (r["objects"], r["bytes"]) for r in p.rows if r["objects"]}
    assert got == {k: (v.objects, v.bytes) for k, v in nyc.partitions.items() if not v.no_data}


def test_discover_argument_errors(catalog_dir: Path) -> None:
    from cvcatalog.exceptions import ConfigError

    cat = Catalog(catalog_dir)
    for args, msg in [
        (("nope",), "unknown source"),
        (("wydot", "SPAT"), "does not publish"),
        (("wydot", None, 2021), "^year needs message_type"),  # Python's words, not flags
        (("wydot", "BSM", None, 4), "^month needs year"),
        (("wydot", "BSM", 2021, 13), "^month must be 1..12"),
        (("wydot", "BSM", "2021"), "^year must be a whole number"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            cat.discover(*args)


def test_list_level_pages_through_common_prefixes(seeded: Any) -> None:
    fetcher, calls = counting_fetcher()
    folders, objs = fetcher.list_level("wydot/BSM/2021/04/01/", page_size=5)
    assert folders == sorted(folders) and all(f.endswith("/") for f in folders)
    assert len(folders) > 5 and objs == []
    assert len(calls) == fetcher.list_requests == -(-len(folders) // 5)
    assert fetcher.list_level("wydot/BSM/1999/") == ([], [])


def test_formatting_helpers() -> None:
    assert compact(["01", "02", "03", "05", "07", "08"]) == "01-03, 05, 07-08"
    assert compact(["2021"]) == "2021"
    assert compact(["MON", "NA"]) == "MON, NA"
    assert compact([]) == ""
    assert human_bytes(999) == "999 B" and human_bytes(1_234_567) == "1.2 MB"


# -- command line -----------------------------------------------------------------------------
def cli(*args: str) -> Any:
    return runner.invoke(app, [*args, "--rate-limit", "0"], catch_exceptions=False)


def test_cli_discover_table_and_json(seeded: Any, s3_client: Any, catalog_dir: Path) -> None:
    cat = str(catalog_dir)
    r = cli("discover", "--source", "wydot", "--catalog", cat)
    assert r.exit_code == 0, r.output
    assert "BSM" in r.output and "TIM" in r.output and "2 types" in r.output

    r = cli("discover", "--source", "wydot", "--type", "BSM", "--year", "2021", "--month", "4",
            "--catalog", cat)  # fmt: skip
    assert r.exit_code == 0, r.output
    truth = bucket_objects(s3_client, "wydot/BSM/2021/04/")
    assert "2021-04-01" in r.output and "2021-04-03" in r.output
    assert f"2 days, {len(truth)} objects" in r.output
    assert "no folder for day(s) 02" in r.output

    r = cli("discover", "--source", "nycdot", "--type", "EVENT", "--year", "2021", "--month", "4",
            "--catalog", cat, "--format", "json")  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert {(x["weekday"], x["time_bin"]): [x["objects"], x["bytes"]] for x in rows} == grouped(
        s3_client, "nycdot/EVENT/2021/04/"
    )
    # the summary line is for people: stderr in json (it was dropped), stdout in a table
    assert r.stderr.startswith(f"s3://{BUCKET}/nycdot/EVENT/2021/04/"), r.stderr


def test_cli_plan_table_and_json(seeded: Any, s3_client: Any, catalog_dir: Path) -> None:
    cat = str(catalog_dir)
    args = ("plan", "--source", "wydot", "--type", "BSM", "--start", "2021-04-01",
            "--end", "2021-04-03", "--catalog", cat)  # fmt: skip
    r = cli(*args)
    assert r.exit_code == 0, r.output
    truth = bucket_objects(s3_client, "wydot/BSM/2021/04/")
    assert f"would fetch 3 of 3 partitions, {len(truth)} objects" in r.output
    assert "TOTAL" in r.output and "not in the catalog" in r.output

    r = cli(*args, "--format", "json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert f"would fetch 3 of 3 partitions, {len(truth)} objects" in r.stderr  # (was dropped)
    assert [x["partition"] for x in rows][-1] == "TOTAL"
    assert rows[-1]["fetch_objects"] == len(truth) and rows[-1]["bytes"] == sum(truth.values())
    assert [x["fetch"] for x in rows[:-1]] == [True, True, True]
    assert rows[1]["objects"] == 0 and rows[1]["status"] == "missing"
    assert human_bytes(rows[-1]["bytes"]) in cli(*args).output


def test_plan_and_discover_make_no_catalog_where_there_is_none(
    seeded: Any, tmp_path: Path
) -> None:
    """A listing is no reason to make a catalog: plan and discover at a path that holds none
    (a mistyped --catalog) answer from the bucket, cache nothing and leave the path as it
    was; an ingest there makes the catalog, as before."""
    missing = tmp_path / "no-such" / "catalog"
    args = ("--source", "wydot", "--catalog", str(missing))
    for command in (["plan", "--type", "BSM", "--start", "2021-04-01"], ["discover"]):
        for _ in range(2):  # nothing cached by the first: the second lists again
            r = cli(*command, *args)
            assert r.exit_code == 0, r.output
            assert re.search(r"\(\d+ LIST requests?; no GETs\)", r.output), r.output
            assert "listing cache" not in r.output
        assert not missing.parent.exists()
    cat = Catalog(missing)
    assert cat.discover("wydot", "BSM", 2021).list_requests > 0 and not missing.exists()
    assert cat.ingest("wydot", "BSM", "2021-04-01", **FAST).ok
    assert cat.plan("wydot", "BSM", "2021-04-01").rows[0]["status"] == "complete"
    assert "listing cache" in cat.plan("wydot", "BSM", "2021-04-01").listing


def test_cli_errors_are_one_line(catalog_dir: Path) -> None:
    r = runner.invoke(app, ["discover", "--source", "wydot", "--month", "4", "--type", "BSM",
                            "--catalog", str(catalog_dir)])  # fmt: skip
    assert r.exit_code == 1
    assert "--month needs --year" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["plan", "--source", "wydot", "--type", "EVENT", "--start",
                            "2021-04-01", "--catalog", str(catalog_dir)])  # fmt: skip
    assert r.exit_code == 1 and "does not publish" in r.output
    # no days: one line naming the flags (it was pydantic's "date_range: Field required")
    r = runner.invoke(app, ["plan", "--source", "wydot", "--type", "BSM", "--catalog",
                            str(catalog_dir)])  # fmt: skip
    assert (r.exit_code, r.output) == (1, "error: give the days: --start (and optionally "
                                          "--end) or --days-back\n")  # fmt: skip
    # an unknown source is named against the bucket's sources (it offered ngsim, which
    # discover then refused with the other list)
    want = "error: unknown source {!r}; expected one of wydot, wydot_backup, thea, nycdot\n"
    for source in ("foo", "ngsim"):
        for command in (["discover"], ["plan", "--type", "BSM", "--start", "2021-04-01"]):
            r = runner.invoke(app, [*command, "--source", source, "--catalog", str(catalog_dir)])
            assert r.exit_code == 1 and r.output.endswith(want.format(source)[7:]), r.output
