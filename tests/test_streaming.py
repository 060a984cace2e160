"""A day streams: its objects convert in batches while the next batch downloads (cvpilot).

Against the local S3 endpoint: a day cut into batches gives exactly the rows, quarantine and
counts of the day converted at once; a batch converts before the day's last object is
downloaded, and at most one batch is downloaded ahead; a failure in a later batch fails the day
with nothing of it visible; an interrupted run stops the next batch's download.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from cvcatalog.catalog import Catalog
from cvcatalog.config import DataSourceConfig
from cvcatalog.exceptions import ConversionError, IntegrityError
from cvcatalog.io.download import DownloadResult, ObjectInfo, S3Fetcher
from cvcatalog.io.layout import CatalogPaths
from cvcatalog.io.s3 import make_client
from cvcatalog.sandbox.replica import SeedReport, seed_replica
from cvcatalog.sources import cvpilot
from cvcatalog.sources.bucket import BUCKET, PartitionKey
from cvcatalog.sources.cvpilot import CvPilotDays, stream_batches
from cvcatalog.sources.cvpilot import ingest as run_ingest

D1, D2 = date(2021, 4, 1), date(2021, 4, 2)
PK1 = PartitionKey("wydot", "BSM", D1)
WORKERS = 2  # download concurrency: every batch but the last holds at least this many objects
#: a box that cuts the replica's corridor in two, so the bounds rule has work
BOX = {"lat_min": 40.5, "lat_max": 42.5, "lon_min": -107.0, "lon_max": -103.5}


def _obj(key: str, size: int) -> ObjectInfo:
    return ObjectInfo(key, size, "0" * 32, datetime(2021, 4, 1, tzinfo=UTC))


def test_batches_are_consecutive_runs_of_the_listing() -> None:
    mib = 1 << 20
    objs = [_obj(f"k{i:03d}", 8 * mib) for i in range(40)]  # 320 MiB
    batches = stream_batches(objs, min_objects=2)
    assert [o for b in batches for o in b] == objs
    assert len(batches) == cvpilot.STREAM_BATCHES
    assert all(sum(o.size for o in b) >= 320 * mib // cvpilot.STREAM_BATCHES for b in batches)
    # a small last batch joins the one before
    tail = [_obj(f"t{i}", 10 * mib) for i in range(9)]  # batches of 32 MiB at least
    assert [len(b) for b in stream_batches(tail, min_objects=1)] == [4, 5]
    # a small day is one batch: converted exactly as before streaming
    small = objs[:3]
    assert stream_batches(small, min_objects=2) == [small]
    # a batch fills the download's workers even when its objects are big
    big = [_obj(f"b{i}", 300 * mib) for i in range(6)]
    assert [len(b) for b in stream_batches(big, min_objects=4)] == [4, 2]
    assert [len(b) for b in stream_batches(big, min_objects=1)] == [1] * 6  # 256 MiB at most
    assert stream_batches([], min_objects=4) == [[]]


def _stream_small_days(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cut even a test's small day (~1.5 MB) into about STREAM_BATCHES batches, and stream it
    (as a day too big for one sorting pass streams)."""
    monkeypatch.setattr(cvpilot, "MIN_BATCH_BYTES", 1)
    monkeypatch.setattr(CvPilotDays, "_download_rest_at_once", lambda self, f: False)


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    _stream_small_days(monkeypatch)


def _seed(client: Any, start: date = D1, end: date = D1) -> SeedReport:
    report = seed_replica(
        client,
        start,
        end,
        records_per_hour=30,
        files_per_hour=2,
        empty_hour_rate=0,
        malformed_per_day=6,
    )
    # the first record published again at the end of the day: a duplicate the day's last
    # batch can only see against its first batch
    first = min(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"])
    line = client.get_object(Bucket=BUCKET, Key=first)["Body"].read().splitlines()[0]
    dup = f"{first.rsplit('/', 2)[0]}/23/zz-republished.json"
    client.put_object(Bucket=BUCKET, Key=dup, Body=line + b"\n")
    return report


def _config(catalog_dir: Path, start: date = D1, end: date = D1) -> DataSourceConfig:
    return Catalog(catalog_dir).config(
        "wydot", "BSM", start, end, timezone="UTC", rate_limit=0, max_workers=WORKERS
    )


class Recording(S3Fetcher):
    """The real fetcher, recording which objects it was asked to download, in order; `hook`
    runs before each download (on the download's own thread)."""

    def __init__(self, cfg: DataSourceConfig) -> None:
        super().__init__(make_client(cfg.download), cfg.download, cfg.bucket)
        self.started: list[str] = []
        self.listed: dict[str, list[ObjectInfo]] = {}
        self.hook: Callable[[ObjectInfo, threading.Event | None], None] = lambda o, a: None
        self._lock = threading.Lock()

    def list(self, prefix: str, page_size: int = 1000) -> list[ObjectInfo]:
        objs = super().list(prefix, page_size)
        self.listed[prefix] = objs
        return objs

    def _download(
        self, obj: ObjectInfo, dest: Path, on_bytes: Any, abort: threading.Event | None
    ) -> DownloadResult:
        with self._lock:
            self.started.append(obj.key)
        self.hook(obj, abort)
        return super()._download(obj, dest, on_bytes, abort)

    def batches(self, pk: PartitionKey) -> list[list[str]]:
        """The day's batches as the source cuts them."""
        return [[o.key for o in b] for b in stream_batches(self.listed[pk.s3_prefix], WORKERS)]


def _rows(cat: Catalog) -> list[str]:
    """Every row of the table, as JSON, sorted."""
    return sorted(cat.query("select to_json(t)::varchar as j from wydot_bsm t").j)


def _quarantine(cat: Catalog, catalog_dir: Path) -> list[dict[str, Any]]:
    paths = cat.query("select path from partition_files where kind = 'quarantine'").path
    lines = [json.loads(x) for p in paths for x in (catalog_dir / p).read_text().splitlines()]
    return sorted(lines, key=lambda e: json.dumps(e, sort_keys=True))


def _state(cat: Catalog) -> tuple[Any, ...]:
    part = cat.query(
        "select rows, quarantined, source_objects, source_bytes, schema_versions from partitions"
    ).to_dict("records")
    checks = sorted(
        map(tuple, cat.query("select kind, rule, count from validation_reports").values.tolist())
    )
    return json.dumps(part, default=str), checks


def _convert_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record the source keys of every DuckDB conversion of a batch."""
    calls: list[list[str]] = []
    real = CvPilotDays._convert

    def convert(
        self: CvPilotDays, raw: Any, out_dir: Path, threads: int | None = None, **kw: Any
    ) -> Any:
        calls.append([r.key for r in raw])
        return real(self, raw, out_dir, threads, **kw)

    monkeypatch.setattr(CvPilotDays, "_convert", convert)
    return calls


def test_a_day_in_batches_is_the_day_converted_at_once(
    s3_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = _seed(s3_client)
    whole_dir, batched_dir = tmp_path / "whole", tmp_path / "batched"
    calls = _convert_calls(monkeypatch)
    whole = run_ingest(_config(whole_dir))
    assert len(calls) == 1  # a small day: one conversion of every object
    calls.clear()
    _stream_small_days(monkeypatch)
    cfg = _config(batched_dir)
    fetcher = Recording(cfg)
    batched = run_ingest(cfg, fetcher_factory=lambda c: fetcher)
    assert whole.ok and batched.ok, (whole.as_dict(), batched.as_dict())
    assert calls == fetcher.batches(PK1) and len(calls) >= 4

    a, b = Catalog(whole_dir), Catalog(batched_dir)
    assert len(_rows(a)) == report.records + 1
    assert _rows(a) == _rows(b)
    assert len(_quarantine(a, whole_dir)) == report.malformed
    assert _quarantine(a, whole_dir) == _quarantine(b, batched_dir)
    assert _state(a) == _state(b)
    assert ("warning", "duplicate_record", 1) in _state(b)[1]  # seen across batches
    assert (batched.rows, batched.quarantined) == (whole.rows, whole.quarantined)
    assert b.verify().clean


def test_a_day_one_pass_can_sort_downloads_the_rest_at_once_after_its_first_batch(
    s3_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After its first batch, a day alone that one pass can sort downloads the rest at once,
    then converts in one pass, even over a slow link (20 ms a GET here); one with too many
    rows for one pass streams."""
    report = _seed(s3_client)
    monkeypatch.setattr(cvpilot, "MIN_BATCH_BYTES", 1)
    monkeypatch.setattr(cvpilot, "SMALL_DAY_BYTES", 0)  # fetched as a big day is
    calls = _convert_calls(monkeypatch)
    cfg = _config(tmp_path / "whole")
    fetcher = Recording(cfg)
    fetcher.hook = lambda o, a: time.sleep(0.02)
    whole = run_ingest(cfg, fetcher_factory=lambda c: fetcher)
    assert whole.ok, whole.as_dict()
    batches = fetcher.batches(PK1)
    assert len(batches) >= 4
    everything = [k for b in batches for k in b]
    assert calls == [everything]  # one conversion of the whole day
    assert sorted(fetcher.started[: len(batches[0])]) == sorted(batches[0])  # came first
    assert sorted(fetcher.started) == sorted(everything)  # each object downloaded once
    assert whole.rows == report.records + 1 and whole.quarantined == report.malformed

    calls.clear()
    monkeypatch.setattr(cvpilot.roworder, "SORT_ONE_COPY_ROWS", 10)  # one pass cannot sort it
    cfg = _config(tmp_path / "streamed")
    fetcher = Recording(cfg)
    streamed = run_ingest(cfg, fetcher_factory=lambda c: fetcher)
    assert streamed.ok, streamed.as_dict()
    assert calls == fetcher.batches(PK1)
    assert _rows(Catalog(tmp_path / "whole")) == _rows(Catalog(tmp_path / "streamed"))
    assert _state(Catalog(tmp_path / "whole")) == _state(Catalog(tmp_path / "streamed"))


def test_the_quality_step_covers_the_whole_streamed_day(
    s3_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cleaning and gap segments follow each vehicle over the whole day, across batches."""
    _seed(s3_client)
    quality = tmp_path / "quality.yml"
    quality.write_text(
        json.dumps(
            {
                "source": "wydot",
                "message_type": "BSM",
                "date_range": {"days_back": 1},
                "quality": {
                    "rules": {"bounds": BOX},
                    "cleaning": {
                        "remove_outliers": True,
                        "detect_gaps": {"enabled": True, "max_gap_s": 60},
                    },
                },
            }
        )
    )

    def ingest(catalog: Path) -> Catalog:
        cfg = Catalog(catalog).config(
            "wydot", "BSM", D1, D1, timezone="UTC", rate_limit=0, max_workers=WORKERS,
            config=quality,
        )  # fmt: skip
        assert run_ingest(cfg).ok
        return Catalog(catalog)

    calls = _convert_calls(monkeypatch)
    whole = ingest(tmp_path / "whole")
    assert len(calls) == 1
    _stream_small_days(monkeypatch)
    batched = ingest(tmp_path / "batched")
    assert len(calls) >= 4
    stats = "select rule, action, count from quality_stats order by all"
    assert whole.query(stats).values.tolist() == batched.query(stats).values.tolist()
    assert any(r[1] == "removed" and r[2] > 0 for r in batched.query(stats).values.tolist())
    assert _rows(whole) == _rows(batched)
    assert _state(whole) == _state(batched)


def test_a_batch_converts_while_the_next_downloads(
    s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch, small_batches: None
) -> None:
    _seed(s3_client)
    cfg = _config(catalog_dir)
    fetcher = Recording(cfg)
    converting = threading.Event()
    seen_at_convert: list[list[str]] = []
    real = CvPilotDays._convert

    def convert(
        self: CvPilotDays, raw: Any, out_dir: Path, threads: int | None = None, **kw: Any
    ) -> Any:
        with fetcher._lock:
            seen_at_convert.append(list(fetcher.started))
        converting.set()
        return real(self, raw, out_dir, threads, **kw)

    monkeypatch.setattr(CvPilotDays, "_convert", convert)
    waited: list[bool] = []

    def hold_the_last(obj: ObjectInfo, abort: threading.Event | None) -> None:
        if obj.key == fetcher.listed[PK1.s3_prefix][-1].key:
            # the day's last object waits for a conversion to begin: only a day that converts
            # before all of it is downloaded can go on (a whole-day conversion would wait here
            # the full minute and the test fails)
            waited.append(converting.wait(60))

    fetcher.hook = hold_the_last
    s = run_ingest(cfg, fetcher_factory=lambda c: fetcher)
    assert s.ok and s.count("complete") == 1
    assert waited == [True]
    batches = fetcher.batches(PK1)
    assert len(batches) >= 4
    # when batch k starts converting, nothing after batch k + 1 was asked for: at most one
    # batch is downloaded ahead of the conversion
    assert len(seen_at_convert) == len(batches)
    for k, seen in enumerate(seen_at_convert):
        allowed = {key for b in batches[: k + 2] for key in b}
        assert set(seen) <= allowed, k
        assert set(batches[k]) <= set(seen)  # and its own objects are all there
    assert fetcher.started.count(batches[-1][-1]) == 1


def test_the_days_of_a_range_download_whole_and_only_a_lone_day_streams(
    s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch, small_batches: None
) -> None:
    """A day with a later one still to fetch, or fetched while an earlier one converts, is
    downloaded whole and converted at once: the next day's download overlaps its conversion,
    which sorts a small day in one pass. The range's last day, fetched once the others are
    converted, has nothing to overlap with: it streams."""
    report = _seed(s3_client, D1, D2)
    cfg = _config(catalog_dir, D1, D2)
    fetcher = Recording(cfg)
    d2 = PartitionKey("wydot", "BSM", D2)
    calls = _convert_calls(monkeypatch)
    s = run_ingest(cfg, fetcher_factory=lambda c: fetcher)
    assert s.count("complete") == 2 and s.rows == report.records + 1
    day1 = [o.key for o in fetcher.listed[PK1.s3_prefix]]
    assert calls[0] == day1  # one conversion of the whole first day
    day2 = [o.key for o in fetcher.listed[d2.s3_prefix]]
    # day 2: whole when day 1 still converted as it was fetched, else in batches
    assert calls[1:] in ([day2], fetcher.batches(d2))

    calls.clear()  # a one-day run streams
    one = _config(catalog_dir.parent / "one", D1, D1)
    lone = Recording(one)
    assert run_ingest(one, fetcher_factory=lambda c: lone).count("complete") == 1
    assert calls == lone.batches(PK1) and len(calls) >= 4


def _nothing_visible(cat: Catalog, catalog_dir: Path) -> None:
    assert cat.query("select count(*) as n from wydot_bsm").n[0] == 0
    day = catalog_dir / "lake/main/wydot_bsm/year=2021/month=4/day=1"
    assert not day.exists() or not any(p.is_file() for p in day.rglob("*"))
    assert not list((catalog_dir / "staging").rglob("*.parquet"))
    assert not list((catalog_dir / "staging").rglob("quarantine*.ndjson"))


def test_a_download_failing_in_a_later_batch_fails_the_day(
    s3_client: Any, catalog_dir: Path, small_batches: None
) -> None:
    report = _seed(s3_client)
    cfg = _config(catalog_dir)
    fetcher = Recording(cfg)

    def fail_the_last(obj: ObjectInfo, abort: threading.Event | None) -> None:
        if obj.key == fetcher.listed[PK1.s3_prefix][-1].key:
            raise IntegrityError(f"{obj.key}: checksum mismatch after 4 attempts")

    fetcher.hook = fail_the_last
    s = run_ingest(cfg, fetcher_factory=lambda c: fetcher)
    assert s.count("failed") == 1
    error = s.days[0].error or ""
    assert "download failed" in error and "zz-republished.json" in error
    assert s.days[0].bytes_downloaded > 0
    cat = Catalog(catalog_dir)
    _nothing_visible(cat, catalog_dir)
    assert {r["partition"]: r["status"] for r in cat.status()}[PK1.key] == "failed"

    again = run_ingest(cfg)  # the raw copies of the failed run are reused
    assert again.count("complete") == 1 and again.rows == report.records + 1
    assert again.reused_downloads == len(fetcher.listed[PK1.s3_prefix]) - 1
    assert cat.verify().clean


def test_a_conversion_failing_in_a_later_batch_fails_the_day(
    s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch, small_batches: None
) -> None:
    _seed(s3_client)
    cfg = _config(catalog_dir)
    fetcher = Recording(cfg)
    real = CvPilotDays._convert
    calls: list[int] = []

    def convert(
        self: CvPilotDays, raw: Any, out_dir: Path, threads: int | None = None, **kw: Any
    ) -> Any:
        calls.append(len(raw))
        result = real(self, raw, out_dir, threads, **kw)  # writes real Parquet, then fails
        if len(calls) == 2:
            raise ConversionError("the second batch could not be converted")
        return result

    monkeypatch.setattr(CvPilotDays, "_convert", convert)
    s = run_ingest(cfg, fetcher_factory=lambda c: fetcher)
    assert s.count("failed") == 1 and "second batch" in (s.days[0].error or "")
    assert len(calls) == 2
    # the download stopped with the conversion: batch 3 (index 2) at most was asked for
    batches = fetcher.batches(PK1)
    assert set(fetcher.started) <= {key for b in batches[:3] for key in b}
    cat = Catalog(catalog_dir)
    _nothing_visible(cat, catalog_dir)
    assert {r["partition"]: r["status"] for r in cat.status()}[PK1.key] == "failed"


def test_an_interrupt_stops_the_next_batch_download(
    s3_client: Any, catalog_dir: Path, monkeypatch: pytest.MonkeyPatch, small_batches: None
) -> None:
    report = _seed(s3_client, D1, D1)
    cfg = _config(catalog_dir, D1, D1)
    fetcher = Recording(cfg)
    streaming = threading.Event()
    aborted: list[bool] = []

    def hold_batch_one(obj: ObjectInfo, abort: threading.Event | None) -> None:
        batches = fetcher.batches(PK1)
        if obj.key == batches[1][0] and abort is not None:
            streaming.set()  # the day converts its first batch and downloads its second
            aborted.append(abort.wait(60))  # until the interrupt's cancel() aborts it

    def convert(self: CvPilotDays, *a: Any, **kw: Any) -> Any:
        assert streaming.wait(60)
        raise KeyboardInterrupt  # Ctrl-C: the run's thread gets it from this unit

    fetcher.hook = hold_batch_one
    real = CvPilotDays._convert
    monkeypatch.setattr(CvPilotDays, "_convert", convert)
    with pytest.raises(KeyboardInterrupt):
        run_ingest(cfg, fetcher_factory=lambda c: fetcher)
    monkeypatch.setattr(CvPilotDays, "_convert", real)
    assert aborted == [True]
    cat = Catalog(catalog_dir)
    run = cat.query("select status from ingest_runs").to_dict("records")
    assert run == [{"status": "interrupted"}]
    assert cat.query("select count(*) as n from wydot_bsm").n[0] == 0
    assert cat.query("select count(*) as n from partitions").n[0] == 0  # abandoned, not failed
    # the batches after the one aborted were never asked for
    assert set(fetcher.started) <= set(fetcher.batches(PK1)[0] + fetcher.batches(PK1)[1])

    again = run_ingest(_config(catalog_dir, D1, D1))
    assert again.count("complete") == 1 and again.rows == report.records + 1
    assert cat.query("select count(*) as n from wydot_bsm").n[0] == report.records + 1
    assert not CatalogPaths.at(catalog_dir).staging_dir(PK1).exists()  # raw copies gone
    assert cat.verify().clean


def test_one_idle_conversion_instance_serves_groups_and_days(catalog_dir: Path) -> None:
    """A group's conversion (GROUP_THREADS) and a day's (the configured threads) take the same
    idle DuckDB, its threads set for each; a second idle instance would hold its own memory."""
    cfg = _config(catalog_dir)
    cfg.memory.duckdb_threads = 2
    src = CvPilotDays(cfg, Catalog(catalog_dir).db, run_id="t")

    def threads(con: Any) -> int:
        return int(con.execute("SELECT current_setting('threads')").fetchone()[0])

    with src._duckdb(reuse=False) as fresh:
        default = threads(fresh)  # the configured number
    with src._duckdb(cvpilot.GROUP_THREADS, reuse=True) as group:
        assert threads(group) == cvpilot.GROUP_THREADS != default == 2
    with src._duckdb(reuse=True) as day:
        assert day is group and threads(day) == default
    with src._duckdb(cvpilot.GROUP_THREADS, reuse=True) as again:
        assert again is group and threads(again) == cvpilot.GROUP_THREADS
    with src._duckdb(reuse=False) as other:
        assert other is not group
    assert [con for _, con in src._idle] == [group]
    group.close()


@pytest.mark.parametrize(
    ("case", "rest_first"),
    [
        ("one pass sorts it", True),
        ("too many rows for one pass", False),
        ("gzip", False),
        ("one batch", False),
    ],
)
def test_the_rest_downloads_at_once_only_when_one_pass_can_sort_the_day(
    catalog_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, rest_first: bool
) -> None:
    """The rule alone (_download_rest_at_once), on a first batch of 4 x 1 MB NDJSON copies of
    an 8 MB day (8,000 lines, as estimated from the first batch's 4,000): at once, unless one
    pass cannot sort that many rows, the lines cannot be counted, or there is no second pass
    to save (every CV type has a row order: TIM, SPaT and EVENT by record)."""
    line = b'{"x": 1}' + b" " * 990 + b"\n"  # 1,000 bytes a line
    objs, names = [], {}
    for i in range(8):
        obj = _obj(f"wydot/BSM/2021/04/01/00/o{i}", 1_000_000)
        objs.append(obj)
        names[obj.key] = path = tmp_path / f"o{i}.json"
        body = line * 1000
        path.write_bytes(gzip.compress(body) if case == "gzip" else body)
    cfg = Catalog(catalog_dir).config("wydot", "BSM", D1, D1, timezone="UTC")
    src = CvPilotDays(cfg, Catalog(catalog_dir).db, run_id="t")
    if case == "too many rows for one pass":
        monkeypatch.setattr(cvpilot.roworder, "SORT_ONE_COPY_ROWS", 7_999)
    f = cvpilot.Fetched(PK1, None, objs, names, 0, 8_000_000)
    f.batches = [objs] if case == "one batch" else [objs[:4], objs[4:]]
    assert src._download_rest_at_once(f) is rest_first


def test_a_download_that_starts_after_the_run_was_cancelled_is_aborted_at_once(
    catalog_dir: Path,
) -> None:
    """cancel() sets the abort events of the downloads in progress; a fetch still in flight
    (e.g. one that was waiting for its month's listing) gets one already set."""
    src = CvPilotDays(_config(catalog_dir), Catalog(catalog_dir).db, run_id="t")
    with src._abortable() as before:
        assert not before.is_set()
        src.cancel()
        assert before.is_set()
    with src._abortable() as after:
        assert after.is_set()

