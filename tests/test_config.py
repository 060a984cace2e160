"""Configuration: YAML, environment and overrides; every invalid input rejected in one line."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from cvcatalog.catalog import Catalog
from cvcatalog.cli.main import app
from cvcatalog.config import (
    MAX_WORKERS,
    DataSourceConfig,
    DateRange,
    DownloadConfig,
    cache_config,
    download_config,
    parse_day,
    quality_config,
    timezone_arg,
    unknown_env,
)
from cvcatalog.exceptions import CatalogError, ConfigError
from cvcatalog.read.splits import check_fractions

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cfg.yml"
    p.write_text(text)
    return p


def test_example_config_loads() -> None:
    cfg = DataSourceConfig.from_yaml(REPO / "configs/data_sources/wydot_bsm.yml")
    assert (cfg.source, cfg.message_type) == ("wydot", "BSM")
    assert cfg.date_range.days_back == 30 and cfg.date_range.timezone == "America/Denver"
    start, end = cfg.date_range.resolve(today=date(2021, 5, 1))
    assert (start, end) == (date(2021, 4, 2), date(2021, 5, 1))
    assert cfg.download.rate_limit == 500 and cfg.download.max_workers == 32
    # the example spells out the defaults: sized for real S3 (issue 13)
    assert cfg.download == DownloadConfig()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"source": "wyoming"}, "unknown source 'wyoming'"),
        ({"source": "nycdot", "message_type": "BSM"}, "does not publish 'BSM'"),
        ({"source": "thea", "message_type": "EVENT"}, "does not publish 'EVENT'"),
        ({"source": "wydot", "message_type": "SPAT"}, "does not publish 'SPAT'"),
        (
            {"date_range": {"start_date": "2021-04-02", "end_date": "2021-04-01"}},
            "end date 2021-04-01 is before start date 2021-04-02",
        ),
        ({"date_range": {"days_back": 0}}, "days_back must be a positive"),
        ({"date_range": {"days_back": -3}}, "days_back must be a positive"),
        ({"date_range": {"days_back": 3, "timezone": "America/Nowhere"}}, "unknown timezone"),
        ({"download": {"max_workers": MAX_WORKERS + 1}}, "download.max_workers"),
        ({"download": {"rate_limit": -1}}, "download.rate_limit"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_values_are_rejected_in_one_line(overrides: dict, message: str) -> None:
    base = {"source": "wydot", "message_type": "BSM", "date_range": {"days_back": 1}}
    base.update(overrides)
    with pytest.raises(ConfigError) as exc:
        DataSourceConfig.from_values(**base)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_an_error_names_where_the_value_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad environment variable is named (it used to be blamed on "arguments")."""
    base = {"source": "wydot", "message_type": "BSM", "date_range": {"days_back": 1}}
    monkeypatch.setenv("CVCATALOG_MEMORY__STAGING_GB", "abc")
    with pytest.raises(ConfigError, match=r"\(CVCATALOG_MEMORY__STAGING_GB\): memory.staging_gb"):
        DataSourceConfig.from_values(**base)
    monkeypatch.setenv("CVCATALOG_MEMORY__STAGING_GB", "1")
    monkeypatch.setenv("CVCATALOG_DOWNLOAD__RATE_LIMIT", "-1")
    with pytest.raises(ConfigError, match=r"\(CVCATALOG_DOWNLOAD__RATE_LIMIT\)"):
        DataSourceConfig.from_values(**base)
    # a flag given over the variable is the flag's error
    with pytest.raises(ConfigError, match=r"\(arguments\): download.rate_limit"):
        DataSourceConfig.from_values(**base, download={"rate_limit": -2})
    monkeypatch.delenv("CVCATALOG_DOWNLOAD__RATE_LIMIT")
    p = write(
        tmp_path,
        "source: wydot\nmessage_type: BSM\ndate_range: {days_back: 1}\ndownload: {rate_limit: -5}\n",
    )
    with pytest.raises(ConfigError, match=f"\\({p}\\): download.rate_limit"):
        DataSourceConfig.from_yaml(p)


def test_one_section_readers_give_the_line_an_ingest_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cache_config and download_config (commands that read one section) merge and check it as
    an ingest does: the same line for the same bad value, naming the file, the variable or
    "arguments" (a bad CVCATALOG_CACHE__* was blamed on the file or "arguments", a download
    field lost its section), and the same precedence."""
    base = {"source": "wydot", "message_type": "BSM", "date_range": {"days_back": 1}}

    def line(read: Callable[[], object]) -> str:
        with pytest.raises(ConfigError) as raised:
            read()
        return str(raised.value)

    p = write(
        tmp_path,
        "source: wydot\nmessage_type: BSM\ndate_range: {days_back: 1}\n"
        "cache: {max_size_gb: lots}\n",
    )
    cases: list[tuple[str, str, Callable[[], object], Callable[[], object]]] = [
        ("CVCATALOG_CACHE__MAX_SIZE_GB", "-3",
         lambda: cache_config(), lambda: DataSourceConfig.from_values(**base)),
        ("CVCATALOG_DOWNLOAD__RETRY_ATTEMPTS", "many",
         lambda: download_config(), lambda: DataSourceConfig.from_values(**base)),
    ]  # fmt: skip
    for name, value, one, ingest in cases:
        monkeypatch.setenv(name, value)
        assert line(one) == line(ingest)
        assert line(one).startswith(f"invalid configuration ({name}): ")
        monkeypatch.delenv(name)
    assert line(lambda: cache_config(p)) == line(lambda: DataSourceConfig.from_yaml(p))
    assert line(lambda: download_config(rate_limit=-1)) == line(
        lambda: DataSourceConfig.from_values(**base, download={"rate_limit": -1})
    )
    # file < environment < arguments, as for an ingest
    p = write(tmp_path, "cache: {max_size_gb: 7, directory: from-file}\n")
    monkeypatch.setenv("CVCATALOG_CACHE__MAX_SIZE_GB", "8")
    assert cache_config(p).max_size_gb == 8
    assert cache_config(p, max_size_gb=9, directory=None).max_size_gb == 9
    assert cache_config(p).directory == Path("from-file")
    monkeypatch.setenv("CVCATALOG_DOWNLOAD__RATE_LIMIT", "20")
    assert (download_config().rate_limit, download_config(rate_limit=3).rate_limit) == (20, 3)
    # another section's bad variable is not theirs to read
    monkeypatch.setenv("CVCATALOG_MEMORY__STAGING_GB", "abc")
    assert (cache_config().max_size_gb, download_config().rate_limit) == (8, 20)


def test_valid_pairs_are_normalised() -> None:
    cfg = DataSourceConfig.from_values(
        source=" THEA ", message_type="spat", date_range={"start_date": "2019-01-14"}
    )
    assert (cfg.source, cfg.message_type) == ("thea", "SPAT")
    assert cfg.date_range.resolve() == (date(2019, 1, 14), date(2019, 1, 14))


def test_a_day_is_read_alike_from_each_form_a_notebook_holds(tmp_path: Path) -> None:
    """A datetime start with a date end (or the reverse) was a TypeError ('can't compare
    datetime.datetime to datetime.date') from every reader (to_dask, partitions, split,
    export); ingest and plan refused a datetime with a time ('Datetimes provided to dates
    should have zero time') and a numpy.datetime64 that to_dask took. A day is now its date,
    as written, in every form, for every call."""
    day = date(2021, 4, 1)
    for value in (
        day, "2021-04-01", " 2021-04-01 ", datetime(2021, 4, 1, 12, 30),
        datetime(2021, 4, 1, 23, tzinfo=UTC), pd.Timestamp("2021-04-01 06:00"),
        pd.Timestamp("2021-04-01", tz="America/Denver"), np.datetime64("2021-04-01"),
        np.datetime64("2021-04-01T10:00:00.000000000"),
    ):  # fmt: skip
        assert parse_day(value, "start") == day and type(parse_day(value, "start")) is date
    for bad in ("2021-04-01T10:00", "April 1", "", None):
        with pytest.raises(ConfigError, match=r"^start must be a date like 2021-04-01, got "):
            parse_day(bad, "start")  # type: ignore[arg-type]
    cat = Catalog(tmp_path / "catalog")
    cfg = cat.config("wydot", "BSM", datetime(2021, 4, 1, 12), date(2021, 4, 2))
    assert cfg.date_range.resolve() == (day, date(2021, 4, 2))
    cfg = cat.config("wydot", "BSM", np.datetime64("2021-04-01"), pd.Timestamp("2021-04-02 9:00"))
    assert cfg.date_range.resolve() == (day, date(2021, 4, 2))
    with pytest.raises(ConfigError, match=r"^start must be a date like 2021-04-01, got 'x'"):
        cat.config("wydot", "BSM", "x")


def test_a_source_or_type_that_is_none_or_no_str_is_one_line(tmp_path: Path) -> None:
    """to_dask(None, "BSM"), split, export and discover raised AttributeError ('NoneType' object
    has no attribute 'strip'), changes an AssertionError; a source or type that is no str (1,
    2) was an AttributeError from every call that takes one (status, runs, snapshots, ...), and
    partitions("wydot", None) too. Nothing here needs a catalog: the check comes first."""
    cat = Catalog(tmp_path / "none")
    needs_one = [
        lambda s, t: cat.to_dask(s, t), lambda s, t: cat.changes(s, t, 0),
        lambda s, t: cat.split_plan(s, t, "2021-04-01"), lambda s, t: cat.partitions(s, t),
        lambda s, t: cat.export(s, t, "2021-04-01", output=tmp_path / "x.parquet"),
        lambda s, t: cat.discover(s, t), lambda s, t: cat.pin("e", s, t),
    ]  # fmt: skip
    for call in needs_one:
        with pytest.raises(ConfigError, match=r"^give a source: one of wydot, wydot_backup, "):
            call(None, "BSM")
    every = [*needs_one, lambda s, t: cat.status(s, t), lambda s, t: cat.runs(5, s, t),
             lambda s, t: cat.snapshots(s, t), lambda s, t: cat.older_snapshot_bytes(s, t)]  # fmt: skip
    for call in every:
        with pytest.raises(ConfigError, match=r"^the source is a name \(a str\), e.g. 'wydot', got 1$"):
            call(1, "BSM")
        with pytest.raises(ConfigError, match=r"^the message type is a name \(a str\), e.g. 'BSM', got 2$"):
            call("wydot", 2)
    with pytest.raises(ConfigError, match=r"^give the message type of wydot: BSM, TIM$"):
        cat.partitions("wydot", None)  # type: ignore[arg-type]
    # a source of several types without one names them (to_dask said "(BSM, TIM, SPAT,
    # EVENT)" of every source; changes and split named none); one of a single type needs none
    for call in (lambda: cat.to_dask("thea"), lambda: cat.changes("thea", None, 0)):
        with pytest.raises(ConfigError, match=r"^give the message type of thea: BSM, TIM, SPAT$"):
            call()
    # (a split takes the source's one type with vehicle ids, BSM: then the catalog is missing)
    with pytest.raises(CatalogError, match=r"^no catalog at "):
        cat.split_plan("thea", None, "2021-04-01")
    with pytest.raises(ConfigError, match=r"^year must be a whole number, got '2021'$"):
        cat.discover("wydot", "BSM", "2021")  # type: ignore[arg-type]
    assert not (tmp_path / "none").exists()


def test_the_arguments_a_notebook_mistypes_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catalog("") made a catalog in the current directory, Catalog(5) was a TypeError;
    evict("1") / evict(None), compact(rows_per_file="10"), pin(None, ...) and a split's
    fractions as one str were TypeErrors or ValueErrors (pin("") was taken as a name). Nothing
    here needs a catalog: the checks come first."""
    for path in ("", "  ", 5):
        with pytest.raises(ConfigError, match=r"^the catalog is a directory path \(a str or "):
            Catalog(path)  # type: ignore[arg-type]
    cat = Catalog(tmp_path / "none")
    for size, got in (("1", "'1'"), (None, "None"), (True, "True"), (-1, "-1"), (Decimal(-2), "-2")):
        with pytest.raises(ConfigError, match=rf"must be a number of GB, 0 or more; got {got}$"):
            cat.evict(size)  # type: ignore[arg-type]
    for rows in ("10", 2.5, 0, True):
        with pytest.raises(ConfigError, match=r"^rows_per_file must be a whole number, 1 or "):
            cat.compact(rows_per_file=rows)  # type: ignore[arg-type]
    for name in (None, "", " ", 5):
        with pytest.raises(ConfigError, match=r"^an experiment's name is a non-empty str, got "):
            cat.pin(name, "wydot", "BSM")  # type: ignore[arg-type]
    for where in (5, [5], {"i-80": 1}):
        with pytest.raises(ConfigError, match=r"^location is a site's name or a list of them"):
            cat.to_dask("ngsim", location=where)  # type: ignore[arg-type]
    for name in (None, 5):
        with pytest.raises(ConfigError, match=r"^unknown dataset "):
            cat.ingest_dataset(name, "x.csv")  # type: ignore[arg-type]
    for paths in (None, 5, [], ["a.csv", None]):
        with pytest.raises(ConfigError, match=r"^paths is a path or URI, or a list of them"):
            cat.ingest_dataset("ngsim", paths)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^lat is the name of a column \(a str\), got None$"):
        cat.where_spatial(within=(41.1, -104.8, 100), lat=None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^format must be one of .*, got 3$"):
        cat.export("wydot", "BSM", "2021-04-01", output=tmp_path / "x.csv", format=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^output is the file to write \(a path\), got None$"):
        cat.export("wydot", "BSM", "2021-04-01", output=None)  # type: ignore[arg-type]
    assert check_fractions("0.8, 0.1,0.1") == (0.8, 0.1, 0.1)  # as --fractions takes them
    for bad in ("a,b,c", None, [0.8, "x", 0.1]):
        with pytest.raises(ConfigError, match=r"^split fractions are three numbers"):
            check_fractions(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"three numbers .*, got \['0.5', '0.5'\]$"):
        check_fractions("0.5,0.5")  # the str's numbers, not its characters
    assert not (tmp_path / "none").exists()
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["runs", "--catalog", ""])
    assert (r.exit_code, r.output) == (
        1, "error: --catalog is empty: give the catalog's directory (or s3:// prefix)\n"
    )  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_a_timezone_is_a_name_a_zoneinfo_or_none_and_anything_else_one_line(tmp_path: Path) -> None:
    """timezone=None or a datetime.timezone was zoneinfo's TypeError ('expected str, bytes or
    os.PathLike object') from to_dask, export, split_plan and partitions."""
    assert timezone_arg(None) == "UTC"
    assert timezone_arg(ZoneInfo("America/Denver")) == "America/Denver"
    cat = Catalog(tmp_path / "none")
    for bad in (UTC, 5):
        for call in (
            lambda: cat.to_dask("wydot", "BSM", "2021-04-01", timezone=bad),  # noqa: B023
            lambda: cat.export("wydot", "BSM", "2021-04-01", timezone=bad, output=tmp_path / "x"),  # noqa: B023
        ):
            with pytest.raises(ConfigError, match=r"^timezone must be an IANA name such as America/Denver \(a str\), got "):
                call()


@pytest.mark.parametrize(
    ("given", "hint"),
    [
        ("-07:00", "a fixed UTC-07:00 is Etc/GMT+7, whose sign is the other way round"),
        ("UTC+2", "a fixed UTC+02:00 is Etc/GMT-2, whose sign is the other way round"),
        ("+0530", "an offset of part of an hour has no such name: use the place's zone"),
        ("+00:00", "UTC for an offset of 0"),
        ("-13", "no zone is that far from UTC"),
    ],
)
def test_a_fixed_offset_given_as_a_timezone_is_told_its_name(given: str, hint: str) -> None:
    """'-07:00' said only 'use an IANA name': the fixed zones' names (Etc/GMT+7 for UTC-7)
    are not what anybody guesses."""
    with pytest.raises(ConfigError) as err:
        timezone_arg(given)
    assert str(err.value) == (
        f"unknown timezone {given!r} (use an IANA name such as America/Denver; {hint})"
    )
    name = hint.split(" is ")[1].split(",")[0] if "Etc/" in hint else None
    if name is not None:  # the name it gives is one, with the offset given
        offset = datetime(2021, 4, 1, tzinfo=ZoneInfo(timezone_arg(name))).utcoffset()
        assert offset is not None and offset.total_seconds() / 3600 == int(given.strip("UTC")[:3])


def test_precedence_file_then_environment_then_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = write(
        tmp_path,
        "source: wydot\nmessage_type: BSM\ndate_range: {days_back: 2}\n"
        "download: {rate_limit: 5, max_workers: 2}\ncache: {directory: from-file}\n",
    )
    monkeypatch.setenv("CVCATALOG_DOWNLOAD__RATE_LIMIT", "20")
    monkeypatch.setenv("CVCATALOG_HOME", str(tmp_path / "from-env"))
    cfg = DataSourceConfig.from_yaml(p, download={"max_workers": 8})
    assert cfg.download.rate_limit == 20  # environment beats the file
    assert cfg.download.max_workers == 8  # explicit override beats both
    assert cfg.cache.directory == tmp_path / "from-env"


def test_a_variable_set_to_null_is_null_as_in_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule is off at null in YAML; CVCATALOG_QUALITY__RULES__BOUNDS=null was the string
    'null', refused with "bounds must be 'auto', null (off) or a box ...; got 'null'"."""
    p = write(tmp_path, "quality:\n  rules: {max_speed_mps: 50}\n")
    for word in ("null", "~", "NULL"):
        monkeypatch.setenv("CVCATALOG_QUALITY__RULES__BOUNDS", word)
        monkeypatch.setenv("CVCATALOG_QUALITY__RULES__MAX_SPEED_MPS", f" {word} ")
        cfg = quality_config(p)
        assert cfg is not None and cfg.rules.bounds is None and cfg.rules.max_speed_mps is None
    monkeypatch.delenv("CVCATALOG_QUALITY__RULES__MAX_SPEED_MPS")
    cfg = quality_config(p)  # the file's value where no variable says otherwise
    assert cfg is not None and cfg.rules.max_speed_mps == 50 and cfg.rules.bounds is None
    monkeypatch.setenv("CVCATALOG_DOWNLOAD__RATE_LIMIT", "null")  # a setting that takes no null
    with pytest.raises(ConfigError, match=r"^invalid configuration \(CVCATALOG_DOWNLOAD__RATE"):
        DataSourceConfig.from_yaml(write(tmp_path, "source: wydot\nmessage_type: BSM\n"))


def test_cleaning_columns_the_table_lacks_are_config_errors_before_any_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """smoothing/impute columns were checked over the downloaded data: an ingest made its GETs
    first, then failed the day with a line lacking the file's name. Now they are the
    config's own error, before anything is fetched (here: no endpoint at all)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    HEAD = "source: wydot\nmessage_type: BSM\ndate_range: {start_date: 2021-04-01}\n"
    cases = {
        "cleaning: {smoothing: {enabled: true, columns: [nosuch]}}":
            "quality.cleaning.smoothing.columns: wydot_bsm has no column 'nosuch'",
        "impute: {enabled: true, columns: [vehicle_id]}":
            "quality.impute.columns: 'vehicle_id' (VARCHAR) is not a numeric measurement column",
        "cleaning: {smoothing: {enabled: true, columns: [generated_at]}}":
            "quality.cleaning.smoothing.columns: 'generated_at' (TIMESTAMPTZ) is not a numeric",
    }  # fmt: skip
    for section, message in cases.items():
        p = write(tmp_path, f"{HEAD}quality:\n  {section}\n")
        with pytest.raises(ConfigError, match=re.escape(f"invalid configuration ({p}): {message}")):
            DataSourceConfig.from_yaml(p)
        r = CliRunner().invoke(app, ["ingest", "--config", str(p), "--start", "2021-04-01",
                                     "--catalog", str(tmp_path / "cat")])  # fmt: skip
        assert r.exit_code == 1 and r.stderr.startswith(f"error: invalid configuration ({p}): ")
        assert message in r.stderr and "endpoint" not in r.stderr
    ok = write(tmp_path, f"{HEAD}quality:\n  cleaning: {{smoothing: {{enabled: true, "
               "columns: [speed_mps, heading_deg]}}\n")  # fmt: skip
    assert DataSourceConfig.from_yaml(ok).quality is not None


def test_the_example_config_names_every_setting() -> None:
    """The README says configs/data_sources/wydot_bsm.yml documents every field; docs/versions.md
    sent readers there for cache.snapshot_retention_days, which it did not have (nor trips,
    storage, quality.impute, ...). Alternatives it shows commented out are the exceptions."""
    raw = yaml.safe_load((REPO / "configs/data_sources/wydot_bsm.yml").read_text())
    commented = {"date_range.start_date", "date_range.end_date"}  # days_back is given instead
    missing = []

    def walk(model: type[BaseModel], given: dict[str, Any], path: str) -> None:
        for name, field in model.model_fields.items():
            key = field.alias or name
            if f"{path}{key}" in commented:
                continue
            if key not in given:
                missing.append(f"{path}{key}")
                continue
            kind = field.annotation
            if isinstance(kind, type) and issubclass(kind, BaseModel) and given[key] is not None:
                walk(kind, given[key], f"{path}{key}.")

    walk(DataSourceConfig, raw, "")
    assert missing == []
    assert DataSourceConfig.from_yaml(REPO / "configs/data_sources/wydot_bsm.yml").trips is None


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        DataSourceConfig.from_yaml(tmp_path / "nope.yml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        DataSourceConfig.from_yaml(write(tmp_path, "source: [unclosed\n"))
    with pytest.raises(ConfigError, match="mapping"):
        DataSourceConfig.from_yaml(write(tmp_path, "- a\n- b\n"))


@pytest.mark.parametrize("day", ["9999-12-31", date(9999, 12, 31), "0001-01-01", date(1899, 12, 31)])
def test_days_at_the_calendar_edges_are_one_line(tmp_path: Path, day: Any) -> None:
    """9999-12-31 was 'OverflowError: date value out of range' from the day's UTC window (to_dask,
    partitions, split_plan, export, ingest, plan), and days_back=10**9 from today's minus it."""
    cat = Catalog(tmp_path / "cat")
    cat.db.initialise()  # an empty catalog
    with pytest.raises(ConfigError, match=r"start .* is outside 1900-01-01\.\.2999-12-31$"):
        cat.partitions("wydot", "BSM", day, day)
    with pytest.raises(ValueError, match=r"is outside 1900-01-01\.\.2999-12-31"):  # a YAML's
        DateRange(start_date=parse_day("2021-04-01", "x"), end_date=date(9999, 12, 31))
    with pytest.raises(ConfigError, match="at most 36,525, got 1000000000"):
        cat.plan("wydot", "BSM", days_back=10**9)


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    """Was 'unexpected UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff ...'."""
    p = tmp_path / "bad.yml"
    p.write_bytes(b"\xff\xfe garbage")
    want = f"config file {p} is not UTF-8 text (byte 0: invalid start byte); YAML is read as UTF-8"
    with pytest.raises(ConfigError, match="^" + re.escape(want) + "$"):
        DataSourceConfig.from_yaml(p)


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    p = write(tmp_path, "source: !!python/object/apply:os.system ['true']\nmessage_type: BSM\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        DataSourceConfig.from_yaml(p)


def test_a_day_range_given_as_flags_beats_the_environment_and_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """YAML < CVCATALOG_DATE_RANGE__* < flags, also for the days (the environment's days beat
    the flags': an ingest fetched the wrong day)."""
    yml = tmp_path / "q.yml"
    yml.write_text(
        "source: wydot\nmessage_type: BSM\n"
        "date_range: {start_date: 2021-04-01, end_date: 2021-04-01}\n"
    )
    cat = Catalog(tmp_path / "catalog")
    monkeypatch.setenv("CVCATALOG_DATE_RANGE__START_DATE", "2021-04-03")
    monkeypatch.setenv("CVCATALOG_DATE_RANGE__END_DATE", "2021-04-03")
    monkeypatch.setenv("CVCATALOG_DATE_RANGE__TIMEZONE", "America/Denver")
    # no flags: the environment beats the file
    dr = cat.config("wydot", "BSM", config=yml).date_range
    assert (dr.start_date, dr.end_date, dr.timezone) == (
        date(2021, 4, 3), date(2021, 4, 3), "America/Denver"
    )
    # flags beat both; the time zone the flags do not give stays the environment's
    dr = cat.config("wydot", "BSM", "2021-04-02", "2021-04-02", config=yml).date_range
    assert (dr.start_date, dr.end_date, dr.timezone) == (
        date(2021, 4, 2), date(2021, 4, 2), "America/Denver"
    )
    given = cat.config("wydot", "BSM", "2021-04-02", config=yml, timezone="UTC")
    assert given.date_range.timezone == "UTC"
    # days_back in the environment, dates as flags: the flags' range, no conflict
    monkeypatch.delenv("CVCATALOG_DATE_RANGE__START_DATE")
    monkeypatch.delenv("CVCATALOG_DATE_RANGE__END_DATE")
    monkeypatch.setenv("CVCATALOG_DATE_RANGE__DAYS_BACK", "2")
    dr = cat.config("wydot", "BSM", "2021-04-02", "2021-04-02", config=yml).date_range
    assert (dr.start_date, dr.days_back) == (date(2021, 4, 2), None)


def test_each_level_that_gives_days_gives_them_whole_and_errors_name_their_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    yml = tmp_path / "q.yml"
    yml.write_text(
        "source: wydot\nmessage_type: BSM\ndate_range: "
        "{start_date: 2021-04-01, end_date: 2021-04-02, timezone: America/Denver}\n"
    )
    cat = Catalog(tmp_path / "catalog")
    # the environment's days_back replaces the file's dates (no "not both" conflict)
    monkeypatch.setenv("CVCATALOG_DATE_RANGE__DAYS_BACK", "2")
    dr = cat.config("wydot", "BSM", config=yml).date_range
    assert (dr.days_back, dr.start_date, dr.timezone) == (2, None, "America/Denver")
    monkeypatch.delenv("CVCATALOG_DATE_RANGE__DAYS_BACK")
    # an environment start is not mixed with the file's end (a backwards range)
    monkeypatch.setenv("CVCATALOG_DATE_RANGE__START_DATE", "2021-04-05")
    dr = cat.config("wydot", "BSM", config=yml).date_range
    assert (dr.start_date, dr.end_date) == (date(2021, 4, 5), None)
    monkeypatch.delenv("CVCATALOG_DATE_RANGE__START_DATE")
    # a bad environment value is named, also when flags give the days
    monkeypatch.setenv("CVCATALOG_DATE_RANGE__TIMEZONE", "Mars/Olympus")
    with pytest.raises(ConfigError, match="CVCATALOG_DATE_RANGE__TIMEZONE"):
        cat.config("wydot", "BSM", "2021-04-01", config=yml)
    monkeypatch.delenv("CVCATALOG_DATE_RANGE__TIMEZONE")
    # overrides of the days keep the file's time zone (from_yaml deep-merges the rest)
    cfg = DataSourceConfig.from_yaml(yml, date_range={"start_date": "2021-04-03"})
    assert (cfg.date_range.start_date, cfg.date_range.timezone) == (
        date(2021, 4, 3), "America/Denver"
    )


def test_an_arguments_value_is_not_blamed_on_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad value given as an argument over a config file was reported as the file's
    (`invalid configuration (a.yml): download.rate_limit` for `--rate-limit -1`)."""
    yml = write(
        tmp_path,
        "source: wydot\nmessage_type: BSM\n"
        "date_range: {start_date: 2021-04-01, timezone: America/Denver}\n",
    )
    cat = Catalog(tmp_path / "catalog")
    with pytest.raises(ConfigError, match=r"^invalid configuration \(arguments\): download.rate"):
        cat.config("wydot", "BSM", config=yml, rate_limit=-1)
    with pytest.raises(ConfigError, match=r"^invalid configuration \(arguments\): date_range: "):
        cat.config("wydot", "BSM", end="2021-04-05", config=yml)  # the days come whole
    # a time zone given as an argument does not make the file's days the arguments' fault
    bad = tmp_path / "bad.yml"
    bad.write_text("source: wydot\nmessage_type: BSM\ndate_range: {days_back: 0}\n")
    with pytest.raises(ConfigError, match=f"^invalid configuration \\({bad}\\): date_range"):
        cat.config("wydot", "BSM", config=bad, timezone="UTC")
    both = tmp_path / "both.yml"
    both.write_text(
        "source: wydot\nmessage_type: BSM\ndate_range: {days_back: 2, start_date: 2021-04-01}\n"
    )
    with pytest.raises(ConfigError, match=f"^invalid configuration \\({both}\\): date_range: "):
        cat.config("wydot", "BSM", config=both, timezone="UTC")
    # the environment's days as a whole: the variables, not a name that is none of them
    monkeypatch.setenv("CVCATALOG_DATE_RANGE__END_DATE", "2021-04-05")
    with pytest.raises(ConfigError, match=r"\(CVCATALOG_DATE_RANGE__\*\): date_range: give"):
        cat.config("wydot", "BSM", config=yml)
    # the file's source (the command line passes it on) is still the file's
    monkeypatch.delenv("CVCATALOG_DATE_RANGE__END_DATE")
    with pytest.raises(ConfigError, match=f"^invalid configuration \\({yml}\\): unknown source"):
        cat.config("wydt", "BSM", config=yml)


def test_home_beats_the_cache_directory_variable_in_every_reader() -> None:
    """CVCATALOG_HOME over CVCATALOG_CACHE__DIRECTORY, as the commands choose the catalog
    (env_overrides let the second win, whatever the order of the variables)."""
    from cvcatalog.config import env_overrides

    env = {"CVCATALOG_HOME": "/a", "CVCATALOG_CACHE__DIRECTORY": "/b"}
    assert env_overrides(env)["cache"]["directory"] == "/a"
    assert env_overrides({"CVCATALOG_CACHE__DIRECTORY": "/b"})["cache"]["directory"] == "/b"


@pytest.mark.parametrize(
    ("environ", "named", "setting", "setter"),
    [
        ({"CVCATALOG_DOWNLOAD__RATE_LIMIT": "3", "CVCATALOG_DOWNLOAD__RATE_LIMIT__X": "1"},
         "CVCATALOG_DOWNLOAD__RATE_LIMIT__X", "download.rate_limit",
         "CVCATALOG_DOWNLOAD__RATE_LIMIT"),
        ({"CVCATALOG_DOWNLOAD__RATE_LIMIT__X": "1", "CVCATALOG_DOWNLOAD__RATE_LIMIT": "3"},
         "CVCATALOG_DOWNLOAD__RATE_LIMIT__X", "download.rate_limit",
         "CVCATALOG_DOWNLOAD__RATE_LIMIT"),
        ({"CVCATALOG_STORAGE": "local", "CVCATALOG_STORAGE__X": "1"},
         "CVCATALOG_STORAGE__X", "storage", "CVCATALOG_STORAGE"),
        ({"CVCATALOG_HOME": "/a", "CVCATALOG_CACHE__DIRECTORY__X": "1"},
         "CVCATALOG_CACHE__DIRECTORY__X", "cache.directory", "CVCATALOG_HOME"),
    ],
)  # fmt: skip
def test_a_variable_inside_another_variables_value_is_one_line(
    environ: dict[str, str], named: str, setting: str, setter: str
) -> None:
    """CVCATALOG_DOWNLOAD__RATE_LIMIT=3 with CVCATALOG_DOWNLOAD__RATE_LIMIT__X=1 was `unexpected
    TypeError: 'str' object does not support item assignment` (or, in the other order, the
    second silently dropped)."""
    from cvcatalog.config import env_overrides

    with pytest.raises(ConfigError) as raised:
        env_overrides(environ)
    assert str(raised.value) == (
        f"invalid configuration ({named}): {setting} is a setting, not a section "
        f"({setter} sets it); unset one of the two"
    )


def test_a_yaml_mistake_names_its_line_and_a_key_given_twice_is_one(tmp_path: Path) -> None:
    """`source: [wydot` said only 'not valid YAML: while parsing a flow sequence' (no line);
    a second `download:` section silently replaced the first (YAML keeps the last key)."""
    cases = {
        "source: [wydot\n": "line 2, column 1: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence)",
        "download:\n  rate_limit: 5\nsource: wydot\ndownload:\n  max_workers: 3\n":
            "line 4, column 1: 'download' is given twice",
        "download: {rate_limit: 5, rate_limit: 6}\n": "line 1, column 27: 'rate_limit' is given twice",
    }  # fmt: skip
    for text, problem in cases.items():
        p = write(tmp_path, text)
        with pytest.raises(ConfigError) as raised:
            DataSourceConfig.from_yaml(p)
        assert str(raised.value) == f"config file {p} is not valid YAML: {problem}"
    # a merge key's fields may be given again: that is what it is for
    p.write_text(
        "source: wydot\nmessage_type: BSM\ndate_range: {days_back: 1}\n"
        "download:\n  <<: {rate_limit: 5, max_workers: 2}\n  rate_limit: 7\n"
    )
    download = DataSourceConfig.from_yaml(p).download
    assert (download.rate_limit, download.max_workers) == (7, 2)


def test_a_variable_that_names_no_setting_is_a_line_with_the_closest_name() -> None:
    """CVCATALOG_HOMEE, CVCATALOG_STORGE were ignored without a word."""
    env = {"CVCATALOG_HOMEE": "/x", "CVCATALOG_STORGE": "s3://b/p", "CVCATALOG_ZZZ": "1",
           "CVCATALOG_CACHE_MAX_SIZE_GB": "8", "CVCATALOG_DOWNLAOD__RATE_LIMIT": "1",
           "OTHER_HOMEE": "x"}  # fmt: skip
    assert unknown_env(env) == [
        "CVCATALOG_CACHE_MAX_SIZE_GB is not a cvcatalog setting; ignored "
        "(did you mean CVCATALOG_CACHE__MAX_SIZE_GB?)",
        "CVCATALOG_DOWNLAOD__RATE_LIMIT is not a cvcatalog setting; ignored "
        "(did you mean CVCATALOG_DOWNLOAD__RATE_LIMIT?)",
        "CVCATALOG_HOMEE is not a cvcatalog setting; ignored (did you mean CVCATALOG_HOME?)",
        "CVCATALOG_STORGE is not a cvcatalog setting; ignored (did you mean CVCATALOG_STORAGE?)",
        "CVCATALOG_ZZZ is not a cvcatalog setting; ignored",
    ]
    known = {"CVCATALOG_HOME": "/x", "CVCATALOG_STORAGE": "local", "CVCATALOG_DEBUG": "1",
             "CVCATALOG_CACHE__DIRECTORY": "/x", "CVCATALOG_QUALITY__RULES__MAX_SPEED_MPS": "9",
             "CVCATALOG_DATE_RANGE__DAYS_BACK": "2", "CVCATALOG_TRIPS__MAX_GAP_S": "60",
             # a known section's misspelt field: left to its validation, which names it
             "CVCATALOG_DOWNLOAD__RATE_LIMT": "1"}  # fmt: skip
    assert unknown_env(known) == []


def test_every_cvcatalog_variable_the_code_reads_is_known() -> None:
    """Tests and benchmarks included (CVCATALOG_MEMORY__STAGING_DIR, CVCATALOG_TEST_*): none
    of them may be called a misspelling."""
    read = re.compile(r"""(?:environ\.get\(|environ\[|getenv\()\s*["'](CVCATALOG_\w+)""")
    names = {
        m.group(1)
        for folder in ("cvcatalog", "tests", "bench")
        for path in (REPO / folder).rglob("*.py")
        for m in read.finditer(path.read_text())
    }
    assert {"CVCATALOG_HOME", "CVCATALOG_DEBUG", "CVCATALOG_MEMORY__STAGING_DIR"} <= names
    assert unknown_env(dict.fromkeys(names, "1")) == []


def test_a_variable_set_but_empty_is_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CVCATALOG_MEMORY__STAGING_GB= failed ("Input should be a valid number") and
    CVCATALOG_DOWNLOAD__PROFILE= gave an empty profile name: the level below applies now."""
    monkeypatch.setenv("CVCATALOG_MEMORY__STAGING_GB", "")
    monkeypatch.setenv("CVCATALOG_DOWNLOAD__PROFILE", "")
    monkeypatch.setenv("CVCATALOG_DOWNLOAD__RATE_LIMIT", " ")
    monkeypatch.setenv("CVCATALOG_HOMEE", "")  # unset: no note either
    yml = write(tmp_path, "download:\n  profile: from-file\n  rate_limit: 7\n")
    cfg = DataSourceConfig.from_yaml(
        yml, source="wydot", message_type="BSM", date_range={"days_back": 1}
    )
    assert cfg.memory.staging_gb is None
    assert (cfg.download.profile, cfg.download.rate_limit) == ("from-file", 7)
    assert download_config().profile is None
    assert unknown_env() == []


def test_a_relative_cache_directory_is_the_working_directorys_not_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the README's table of relative paths says (the demo and configs/ rely on it)."""
    (tmp_path / "configs").mkdir()
    yml = write(tmp_path / "configs", "cache:\n  directory: data/catalog\n")
    monkeypatch.chdir(tmp_path)
    assert cache_config(yml).directory.resolve() == tmp_path / "data" / "catalog"
