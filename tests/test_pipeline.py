"""The one pipeline (cvcatalog.pipeline) with a third source that lives in this test: a source
is one module implementing the contract; scheduling, retries, staging, batched commits,
progress and the run record come from the runner."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cvcatalog.exceptions import CatalogError, ConversionError, TransientFetchError
from cvcatalog.io import layout
from cvcatalog.io.layout import CatalogPaths
from cvcatalog.io.s3 import RetryPolicy
from cvcatalog.io.storage import SYNC_ONCE_MIN_FILES, LakeStore, LocalStore
from cvcatalog.pipeline import run as run_module
from cvcatalog.pipeline.contract import Plan, RunContext, Source, Staged
from cvcatalog.pipeline.report import Interrupted, NullProgress, Outcome, Summary, summary_lines
from cvcatalog.pipeline.run import Runner
from cvcatalog.pipeline.stage import fresh_dir, place, staged_file
from cvcatalog.state.db import CatalogDB


class Letters(Source[str, str]):
    """A third source: each unit is a letter; fetching 'downloads' it into staging, converting
    writes it upper-cased as the unit's one file; its state is a table of its own."""

    name = "letters"
    message_type = "TEXT"

    def __init__(self, db: CatalogDB, letters: str, *, slots: int = 1) -> None:
        self.db = db
        self.letters = letters
        self.fetch_slots = self.convert_slots = slots
        self.fetch_errors: dict[str, list[BaseException]] = {}
        self.convert_errors: dict[str, BaseException] = {}
        self.barrier: threading.Barrier | None = None
        self.batches: list[list[str]] = []

    def key(self, unit: str) -> str:
        return unit

    def plan(self, run: RunContext) -> Plan[str]:
        with self.db.write() as con:
            con.execute("CREATE TABLE IF NOT EXISTS letters (unit VARCHAR, path VARCHAR)")
        with self.db.read() as con:
            done = {r[0] for r in con.execute("SELECT unit FROM letters").fetchall()}
        todo = [u for u in self.letters if u not in done]
        cached = [Outcome(u, "cached", detail="cached") for u in self.letters if u in done]
        return Plan(todo, cached)

    def _stage(self, run: RunContext, unit: str) -> Path:
        return run.paths.staging / "letters" / run.run_id / unit

    def fetch(self, unit: str, run: RunContext) -> str:
        errors = self.fetch_errors.get(unit)
        if errors:
            raise errors.pop(0)
        raw = fresh_dir(self._stage(run, unit)) / "raw.txt"
        raw.write_text(unit)
        return str(raw)

    def convert(self, fetched: str, run: RunContext) -> Staged[str]:
        raw = Path(fetched)
        unit = raw.read_text()
        if unit in self.convert_errors:
            raise self.convert_errors[unit]
        if self.barrier is not None:
            self.barrier.wait(timeout=30)  # every unit finishes its conversion together
        out = raw.with_name("out.txt")
        out.write_text(unit.upper())
        dest = f"quarantine/source=letters/{unit}-{run.run_id}.txt"
        f = staged_file(out, dest, "data", 1, unit)
        return Staged(unit, [f], Outcome(unit, "complete", rows=1), stage_dir=raw.parent)

    def record(
        self, con: duckdb.DuckDBPyConnection, batch: list[Staged[str]], run: RunContext
    ) -> list[str]:
        self.batches.append([s.unit for s in batch])
        for s in batch:
            con.execute("INSERT INTO letters VALUES (?, ?)", [s.unit, s.files[0].dest])
        return []


@pytest.fixture
def db(tmp_path: Path) -> CatalogDB:
    return CatalogDB(CatalogPaths.at(tmp_path / "catalog"))


def _run(
    source: Letters, db: CatalogDB, sleeps: list[float] | None = None, **kwargs: Any
) -> Summary:
    policy = RetryPolicy(attempts=3, base_delay=0.01)
    sleep = sleeps.append if sleeps is not None else (lambda s: None)
    return Runner(source, db, retry=policy, sleep=sleep, **kwargs).run()


def _letters(db: CatalogDB) -> dict[str, str]:
    with db.read() as con:
        return dict(con.execute("SELECT unit, path FROM letters").fetchall())


def _run_row(db: CatalogDB, run_id: str) -> dict[str, Any]:
    with db.read() as con:
        cur = con.execute("SELECT * FROM ingest_runs WHERE run_id = ?", [run_id])
        names = [d[0] for d in cur.description]
        row = cur.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


def test_a_third_source_runs_through_the_pipeline(db: CatalogDB) -> None:
    src = Letters(db, "abc")
    s = _run(src, db)
    assert s.ok and s.count("complete") == 3 and s.rows == 3
    placed = _letters(db)
    assert sorted(placed) == ["a", "b", "c"]
    for unit, rel in placed.items():  # placed under its fresh name, its staging gone
        assert (db.paths.root / rel).read_text() == unit.upper()
    assert not list((db.paths.staging / "letters").rglob("*.txt"))
    run = _run_row(db, s.run_id)
    assert (run["status"], run["source"], run["days_complete"]) == ("ok", "letters", 3)
    assert summary_lines(s)[0].startswith("letters/TEXT")

    again = _run(Letters(db, "abcd"), db)
    assert again.count("cached") == 3 and again.count("complete") == 1


def test_units_that_finish_together_are_committed_together(db: CatalogDB) -> None:
    src = Letters(db, "abcdefgh", slots=8)
    src.barrier = threading.Barrier(8)
    s = _run(src, db)
    assert s.ok and s.count("complete") == 8
    assert sorted(u for b in src.batches for u in b) == list("abcdefgh")
    # one commit per unit would be 8; the runner batches what finished while it committed
    assert len(src.batches) <= 2, src.batches
    assert max(len(b) for b in src.batches) >= 4


def test_units_converted_one_after_another_share_a_commit(db: CatalogDB) -> None:
    # one unit at a time: each converted unit waits for the next ones (up to the commit
    # interval, far longer than this run) instead of paying a commit of its own
    src = Letters(db, "abcdefgh")
    s = _run(src, db, commit_interval=600)
    assert s.ok and s.count("complete") == 8
    assert src.batches == [list("abcdefgh")]
    # no interval: a commit starts as soon as a unit is converted and none is running
    eager = Letters(db, "ijkl")
    assert _run(eager, db, commit_interval=0).ok
    assert eager.batches[0] == ["i"]
    assert sorted(u for b in eager.batches for u in b) == list("ijkl")


def test_a_transient_fetch_error_is_retried_with_the_one_policy(db: CatalogDB) -> None:
    src = Letters(db, "abc")
    src.fetch_errors["b"] = [TransientFetchError("connection reset (test)")]
    sleeps: list[float] = []
    s = _run(src, db, sleeps)
    assert s.ok and s.count("complete") == 3
    assert s.retries == 1 and len(sleeps) == 1
    assert 0 <= sleeps[0] <= 0.01  # full jitter below the policy's base delay

    # a server's Retry-After (throttling) is waited at least
    src = Letters(db, "de")
    src.fetch_errors["e"] = [TransientFetchError("SlowDown (test)", retry_after=2.5)]
    sleeps = []
    assert _run(src, db, sleeps).ok
    assert sleeps == [2.5]

    # one that keeps failing fails its unit after the policy's attempts, the others go on
    src = Letters(db, "xyz")
    src.fetch_errors["y"] = [TransientFetchError("reset") for _ in range(5)]
    s = _run(src, db)
    assert s.count("complete") == 2 and s.count("failed") == 1
    assert s.errors == ["y: reset (after 3 attempts)"]
    assert len(src.fetch_errors["y"]) == 2  # three attempts used


def test_a_failing_unit_does_not_stop_the_others(db: CatalogDB) -> None:
    src = Letters(db, "abcd", slots=2)
    src.convert_errors["b"] = ConversionError("bad bytes (test)")
    s = _run(src, db)
    assert not s.ok
    assert {o.key: o.status for o in s.outcomes} == {
        "a": "complete", "b": "failed", "c": "complete", "d": "complete",
    }  # fmt: skip
    assert sorted(_letters(db)) == ["a", "c", "d"]
    run = _run_row(db, s.run_id)
    assert run["status"] == "failed" and run["days_failed"] == 1
    assert "b: bad bytes (test)" in run["message"]
    # the next run does only the failed unit
    assert _run(Letters(db, "abcd"), db).count("complete") == 1


def test_an_interrupted_run_is_recorded_and_keeps_what_it_committed(db: CatalogDB) -> None:
    src = Letters(db, "abcde")
    src.convert_errors["c"] = KeyboardInterrupt()
    runner = Runner(src, db, retry=RetryPolicy(attempts=1))
    with pytest.raises(Interrupted) as stopped:  # a KeyboardInterrupt, with the run's summary
        runner.run()
    run = _run_row(db, runner.run_id)
    assert run["status"] == "interrupted" and "stopped after" in run["message"]
    assert sorted(_letters(db)) == ["a", "b"]  # committed before the interrupt: kept
    summary = stopped.value.summary
    assert summary.status == "interrupted" and not summary.ok
    assert summary.count("complete") == 2 and summary.as_dict()["status"] == "interrupted"
    s = _run(Letters(db, "abcde"), db)  # the next run finishes the rest
    assert s.ok and s.count("cached") == 2 and s.count("complete") == 3


def test_a_run_with_nothing_to_do_is_not_recorded(db: CatalogDB) -> None:
    _run(Letters(db, "ab"), db)
    s = _run(Letters(db, "ab"), db)
    assert s.ok and s.count("cached") == 2
    with db.read() as con:
        assert con.execute("SELECT count(*) FROM ingest_runs").fetchone() == (1,)


class WarmLetters(Letters):
    """Letters whose first fetch needs what warm_up makes (the CV source's S3 client)."""

    def __init__(self, db: CatalogDB, letters: str, error: BaseException | None = None) -> None:
        super().__init__(db, letters)
        self.error = error
        self.warmed_on: list[str] = []
        self.ready = threading.Event()

    def warm_up(self) -> None:
        self.warmed_on.append(threading.current_thread().name)
        if self.error is not None:
            raise self.error
        self.ready.set()

    def fetch(self, unit: str, run: RunContext) -> str:
        if not self.ready.is_set():
            raise ConversionError("no client: warm_up failed")
        return super().fetch(unit, run)


def test_warm_up_runs_on_its_own_thread_once_there_are_units_and_its_error_is_the_fetchs(
    db: CatalogDB,
) -> None:
    src = WarmLetters(db, "ab")
    assert _run(src, db).count("complete") == 2
    assert src.warmed_on == ["letters-warm-up"]  # once, not on the run's thread

    cached = WarmLetters(db, "ab")  # nothing to fetch: nothing made
    assert _run(cached, db).count("cached") == 2 and cached.warmed_on == []

    broken = WarmLetters(db, "c", error=ValueError("bad profile"))
    s = _run(broken, db)  # the run goes on; the unit fails with the fetch's own error
    assert broken.warmed_on == ["letters-warm-up"] and s.count("failed") == 1
    assert "no client" in (s.outcomes[0].error or "")


class Groups(Letters):
    """Letters whose units are small: converted together (convert_group), the first one slowly
    so the others are fetched meanwhile; a group holding a bad letter raises."""

    group_max = 4

    def __init__(self, db: CatalogDB, letters: str, bad: str = "") -> None:
        super().__init__(db, letters)
        self.bad = bad
        self.groups: list[list[str]] = []
        self.first = threading.Event()

    def groupable(self, fetched: str) -> bool:
        return True

    def convert(self, fetched: str, run: RunContext) -> Staged[str]:
        if not self.first.is_set():
            self.first.set()
            threading.Event().wait(0.5)
        if Path(fetched).read_text() == self.bad:
            raise ConversionError(f"{self.bad} is bad")
        return super().convert(fetched, run)

    def convert_group(self, fetched: list[str], run: RunContext) -> list[Staged[str] | Outcome]:
        units = [Path(f).read_text() for f in fetched]
        self.groups.append(units)
        if self.bad in units:
            raise ConversionError("one of the group is bad")
        return [super(Groups, self).convert(f, run) for f in fetched]


def test_small_units_are_converted_in_groups_and_a_bad_one_fails_alone(db: CatalogDB) -> None:
    src = Groups(db, "abcdefghij", bad="c")
    notes: list[str] = []

    class Notes(NullProgress):
        def note(self, message: str) -> None:
            notes.append(message)

    s = _run(src, db, progress=Notes())
    assert s.count("complete") == 9 and s.count("failed") == 1
    assert [o.key for o in s.days if o.status == "failed"] == ["c"]
    assert max(len(g) for g in src.groups) > 1 and all(len(g) <= 4 for g in src.groups)
    assert any("c" in g for g in src.groups)  # the bad one was in a group, then alone
    assert any("converting each alone" in n for n in notes), notes
    assert sorted(_letters(db)) == sorted("abdefghij")
    # fewer commits than units: a group's units finish together
    assert len(src.batches) < 9


class _Store:
    """A lake store that fails to place one named file (after a delay, so others are placed
    meanwhile)."""

    put_all = LakeStore.put_all  # the threaded placing every store starts from

    def __init__(self, fail: str | None) -> None:
        self.fail = fail
        self.placed: list[str] = []
        self.discarded: list[str] = []
        self.lock = threading.Lock()

    def put(self, src: Path, rel: str, size: int, sha256: str) -> None:
        if rel == self.fail:
            threading.Event().wait(0.05)
            raise OSError("disk full")
        with self.lock:
            self.placed.append(rel)

    def discard(self, rels: Any) -> None:
        self.discarded += list(rels)


def _staged_files(tmp_path: Path, n: int) -> list[Staged[str]]:
    out = []
    for i in range(n):
        p = tmp_path / f"f{i}.txt"
        p.write_text(str(i))
        out.append(
            Staged(
                str(i),
                [staged_file(p, f"dest/{i}", "data", 1, str(i))],
                Outcome(str(i), "complete"),
            )
        )
    return out


def test_placing_a_batch_places_every_file_or_none(tmp_path: Path) -> None:
    """place puts a batch's files several at once; one that fails takes the batch down: every
    file placed meanwhile is removed again and the error propagates."""
    batch = _staged_files(tmp_path, 20)
    ok = _Store(None)
    assert sorted(place(ok, batch)) == sorted(f"dest/{i}" for i in range(20))  # type: ignore[arg-type]
    assert ok.discarded == []

    bad = _Store("dest/3")
    with pytest.raises(OSError, match="disk full"):
        place(bad, batch)  # type: ignore[arg-type]
    assert bad.placed and sorted(bad.discarded) == sorted(bad.placed)
    assert "dest/3" not in bad.placed


def _lake_batch(tmp_path: Path, n: int) -> tuple[LocalStore, list[Staged[str]]]:
    store = LocalStore(CatalogPaths.at(tmp_path / "catalog"))
    out = []
    for i in range(n):
        p = tmp_path / "staging" / f"day{i}" / "part-0.parquet"
        p.parent.mkdir(parents=True)
        p.write_bytes(b"x" * (i + 1))
        rel = f"lake/source=s/day={i}/part-{i}.parquet"
        out.append(
            Staged(str(i), [staged_file(p, rel, "data", 1, str(i))], Outcome(str(i), "complete"))
        )
    return store, out


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The file-system syncs made (each still made, by the real syncfs)."""
    real = layout._SYNCFS
    if real is None:
        pytest.skip("no syncfs on this system")
    made: list[int] = []

    def counted(fd: int) -> int:
        made.append(fd)
        return real(fd)

    monkeypatch.setattr(layout, "_SYNCFS", counted)
    return made


def test_a_local_batch_of_many_files_is_moved_then_synced_once(
    tmp_path: Path, syncs: list[int]
) -> None:
    """Many tiny days' files: each moved into its folder, then one sync of the file system
    (not two fsyncs a file); a few files sync themselves."""
    store, batch = _lake_batch(tmp_path, SYNC_ONCE_MIN_FILES + 4)
    placed = place(store, batch)
    assert sorted(placed) == sorted(f.dest for st in batch for f in st.files)
    for st in batch:
        f = st.files[0]
        assert not f.path.exists()
        assert store.paths.absolute(f.dest).read_bytes() == b"x" * (int(st.unit) + 1)
    assert len(syncs) == 1  # every folder is on one file system

    store, few = _lake_batch(tmp_path / "few", 3)
    assert len(place(store, few)) == 3
    assert len(syncs) == 1  # fsynced one by one


def test_a_failed_sync_takes_the_batch_out_of_the_lake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The files are moved before the sync: a sync that reports a write error fails the batch
    and every file moved is removed again (a commit would name files that may be lost)."""
    if layout._SYNCFS is None:
        pytest.skip("no syncfs on this system")

    def failing(fd: int) -> int:
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(layout, "_SYNCFS", failing)
    store, batch = _lake_batch(tmp_path, SYNC_ONCE_MIN_FILES)
    with pytest.raises(OSError, match="syncing the file system"):
        place(store, batch)
    assert not any(store.paths.absolute(f.dest).exists() for st in batch for f in st.files)


class FreshLetters(Letters):
    """Letters that, like the CV source, read no state while the catalog file does not exist
    (a new catalog records nothing); their table is made by their first commit."""

    def __init__(self, db: CatalogDB, letters: str, events: list[str]) -> None:
        super().__init__(db, letters)
        self.events = events
        self.fetching = threading.Event()
        self.converted = threading.Event()
        self.held: set[str] = set()  # units claimed and not yet released

    def claim(self, unit: str, wait: bool) -> Any:
        held = self.held
        held.add(unit)

        class Hold:
            def release(self) -> None:
                held.discard(unit)

        return Hold()

    def plan(self, run: RunContext) -> Plan[str]:
        self.events.append("plan")
        if not self.db.exists():
            return Plan(list(self.letters))
        return super().plan(run)

    def fetch(self, unit: str, run: RunContext) -> str:
        self.events.append("fetch, no catalog yet" if not self.db.exists() else "fetch")
        self.fetching.set()
        return super().fetch(unit, run)

    def convert(self, fetched: str, run: RunContext) -> Staged[str]:
        staged = super().convert(fetched, run)
        self.converted.set()
        return staged

    def record(
        self, con: duckdb.DuckDBPyConnection, batch: list[Staged[str]], run: RunContext
    ) -> list[str]:
        con.execute("CREATE TABLE IF NOT EXISTS letters (unit VARCHAR, path VARCHAR)")
        return super().record(con, batch, run)


def test_a_new_catalogs_tables_are_written_while_the_plan_and_first_fetch_go_on(
    db: CatalogDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    sources: list[FreshLetters] = []
    real = CatalogDB.ensure_schema

    def ensure_schema(self: CatalogDB) -> None:  # held until the run's first fetch, if any
        wait_s = 5 if len(sources) == 1 else 0.2  # the second run: an existing catalog
        events.append(f"tables held, fetched meanwhile: {sources[-1].fetching.wait(wait_s)}")
        real(self)
        events.append("tables written")

    monkeypatch.setattr(CatalogDB, "ensure_schema", ensure_schema)
    sources.append(FreshLetters(db, "abc", events))
    runner = Runner(sources[-1], db, retry=RetryPolicy(attempts=1))
    s = runner.run()
    assert s.ok and s.count("complete") == 3, s.as_dict()
    assert "tables held, fetched meanwhile: True" in events
    assert events.index("fetch, no catalog yet") < events.index("tables written")
    assert sorted(_letters(db)) == ["a", "b", "c"]
    run = _run_row(db, runner.run_id)  # the run's start and end recorded, after the tables
    assert (run["status"], run["days_complete"]) == ("ok", 3)

    # an existing catalog: its tables are brought up to date before the plan reads them
    events.clear()
    sources.append(FreshLetters(db, "abcd", events))
    again = _run(sources[-1], db)
    assert again.ok and again.count("cached") == 3 and again.count("complete") == 1
    assert events[:3] == ["tables held, fetched meanwhile: False", "tables written", "plan"]


def test_a_new_catalog_that_cannot_be_created_ends_the_run_with_its_error(
    db: CatalogDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = FreshLetters(db, "abc", [])

    def ensure_schema(self: CatalogDB) -> None:  # fails once a unit waits for its commit
        src.converted.wait(5)
        raise CatalogError("cannot create the catalog (test)")

    monkeypatch.setattr(CatalogDB, "ensure_schema", ensure_schema)
    with pytest.raises(CatalogError, match="cannot create the catalog"):
        _run(src, db, commit_interval=600)
    assert src.converted.is_set()
    assert src.batches == []  # nothing committed, not even what was converted meanwhile
    assert not db.exists()
    deadline = time.monotonic() + 5  # a unit still converting releases its claim when done
    while src.held and time.monotonic() < deadline:
        time.sleep(0.01)
    assert src.held == set()  # every unit's claim released


def test_an_interrupt_while_a_new_catalog_is_created_keeps_what_was_converted(
    db: CatalogDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = FreshLetters(db, "abc", [])
    src.convert_errors["b"] = KeyboardInterrupt()
    real = CatalogDB.ensure_schema

    def ensure_schema(self: CatalogDB) -> None:  # still writing the tables when "b" fails
        src.converted.wait(5)
        real(self)

    monkeypatch.setattr(CatalogDB, "ensure_schema", ensure_schema)
    runner = Runner(src, db, retry=RetryPolicy(attempts=1), commit_interval=600)
    with pytest.raises(Interrupted) as stopped:
        runner.run()
    assert stopped.value.summary.count("complete") == 1
    assert sorted(_letters(db)) == ["a"]  # converted before the interrupt: committed after
    run = _run_row(db, runner.run_id)  # the tables, then the run's start, then its end
    assert run["status"] == "interrupted" and run["days_complete"] == 1


def test_a_new_catalog_with_nothing_to_do_still_reports_that_it_could_not_be_created(
    db: CatalogDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    def ensure_schema(self: CatalogDB) -> None:
        raise CatalogError("cannot create the catalog (test)")

    monkeypatch.setattr(CatalogDB, "ensure_schema", ensure_schema)
    with pytest.raises(CatalogError, match="cannot create the catalog"):
        _run(FreshLetters(db, "", []), db)


def test_the_run_goes_on_converting_while_a_new_catalogs_tables_hold_its_first_commit(
    db: CatalogDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = FreshLetters(db, "abc", [])
    seen: list[bool] = []
    real = CatalogDB.ensure_schema

    def ensure_schema(self: CatalogDB) -> None:  # held until every unit is converted
        seen.append(all_converted.wait(5))
        real(self)

    all_converted = threading.Event()
    real_convert = src.convert

    def convert(fetched: str, run: RunContext) -> Staged[str]:
        staged = real_convert(fetched, run)
        if staged.unit == "c":
            all_converted.set()
        return staged

    monkeypatch.setattr(src, "convert", convert)
    monkeypatch.setattr(CatalogDB, "ensure_schema", ensure_schema)
    s = _run(src, db, commit_interval=0)  # "a" is due at once: its commit waits, not the run
    assert seen == [True] and s.ok and s.count("complete") == 3
    assert sorted(_letters(db)) == ["a", "b", "c"]


def test_a_source_that_records_a_failure_first_waits_for_the_runs_start(
    db: CatalogDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded: list[bool] = []

    class Failing(FreshLetters):
        def failed(self, unit: str, error: BaseException, run: RunContext) -> Outcome:
            failing.set()
            run.started()  # what a source writing the failure calls first
            with self.db.read() as con:
                row = con.execute(
                    "SELECT count(*) FROM ingest_runs WHERE run_id = ?", [run.run_id]
                ).fetchone()
            recorded.append(row == (1,))
            return super().failed(unit, error, run)

    failing = threading.Event()
    real = CatalogDB.ensure_schema

    def ensure_schema(self: CatalogDB) -> None:  # held until the failure is being recorded
        failing.wait(5)
        real(self)

    monkeypatch.setattr(CatalogDB, "ensure_schema", ensure_schema)
    src = Failing(db, "ab", [])
    src.fetch_errors["b"] = [ConversionError("broken (test)")]
    s = _run(src, db)
    assert recorded == [True]
    assert s.count("complete") == 1 and s.count("failed") == 1


class Noting(NullProgress):
    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)


def test_the_end_of_run_eviction_follows_a_run_that_ended_and_never_hides_its_error(
    db: CatalogDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner keeps the catalog within the source's max_size_gb after a run that ended;
    a run stopped by an error or Ctrl-C ends with that error alone (an eviction after it could
    wait out a lock again, or replace it), and an eviction's own failure is a note."""
    calls: list[set[str]] = []

    def evict(db: CatalogDB, max_size_gb: float, protect: set[str] | None = None) -> list[str]:
        calls.append(set(protect or ()))
        return ["x"]

    monkeypatch.setattr(run_module, "evict_to_size", evict)
    src = Letters(db, "ab")
    src.max_size_gb = 1.0
    s = _run(src, db)
    assert s.ok and s.evicted == ["x"] and len(calls) == 1

    stopped = Letters(db, "cd")
    stopped.max_size_gb = 1.0
    stopped.convert_errors["c"] = KeyboardInterrupt()
    with pytest.raises(Interrupted):
        Runner(stopped, db, retry=RetryPolicy(attempts=1)).run()
    assert len(calls) == 1  # none after the interrupt

    def broken(db: CatalogDB, max_size_gb: float, protect: set[str] | None = None) -> list[str]:
        raise duckdb.IOException("IO Error: disk on fire\nmore")

    monkeypatch.setattr(run_module, "evict_to_size", broken)
    notes = Noting()
    last = Letters(db, "cdef")
    last.max_size_gb = 1.0
    s = _run(last, db, progress=notes)
    assert s.ok and s.count("complete") >= 1
    assert "eviction skipped: IO Error: disk on fire" in notes.notes


def test_a_day_sources_json_summary_carries_the_runs_own_errors() -> None:
    """Days a lost Dask cluster left unstarted are a run error, not a day's: the JSON (and CSV)
    summary of a CV run carries them under errors, as the table's lines do."""
    s = Summary(run_id="r", source="wydot", message_type="BSM", kind="days")
    s.outcomes.append(Outcome(key="wydot/BSM/2021/04/02", status="failed", error="lost it"))
    s.run_errors.append("2 day(s) not started: lost it; the next run does them")
    d = s.as_dict()
    assert d["errors"] == [
        "2 day(s) not started: lost it; the next run does them",
        "wydot/BSM/2021/04/02: lost it",
    ]
    assert list(d)[-2:] == ["errors", "days"]


def test_the_summary_names_the_folders_that_had_no_data() -> None:
    """A thea range of three UTC days covers four US Eastern folder days: the count alone did
    not say which folder had nothing (the keys do, past NO_DATA_SHOWN only how many more)."""
    outcomes = [Outcome("thea/BSM/2020/03/01", "complete", rows=5)]
    outcomes += [Outcome(f"thea/BSM/2020/02/{d:02d}", "no_data") for d in range(29, 19, -1)]
    s = Summary("r", "thea", "BSM", start=date(2020, 3, 1), end=date(2020, 3, 1), outcomes=outcomes)
    lines = summary_lines(s)
    assert "1 complete, 0 cached, 10 no_data" in lines[0]
    shown = ", ".join(f"thea/BSM/2020/02/{d}" for d in range(20, 28))
    assert lines[1:] == [f"  no data in {shown} and 2 more"]
    s.outcomes = outcomes[:2]
    assert summary_lines(s)[1:] == ["  no data in thea/BSM/2020/02/29"]
    s.outcomes = outcomes[:1]
    assert summary_lines(s)[1:] == []


def test_the_summary_counts_records_recovered_from_joined_lines() -> None:
    """Records recovered from lines of joined records (`{...}{...}`) are counted as the other
    counts are: per day, in the headline beside rows and quarantined, and in --format json/csv
    (the run's own days only, not a cached day's)."""
    outcomes = [
        Outcome("wydot/BSM/2021/04/01", "complete", rows=9, quarantined=1, recovered=3),
        Outcome("wydot/BSM/2021/04/02", "complete", rows=4, recovered=2),
        Outcome("wydot/BSM/2021/04/03", "cached", rows=7, recovered=5),
    ]
    s = Summary(
        "r", "wydot", "BSM", start=date(2021, 4, 1), end=date(2021, 4, 3), outcomes=outcomes
    )
    assert s.recovered == 5
    assert "13 rows, 1 quarantined, 5 recovered from joined lines; " in summary_lines(s)[0]
    d = s.as_dict()
    assert d["recovered"] == 5 and [day["recovered"] for day in d["days"]] == [3, 2, 5]
    assert list(d)[list(d).index("quarantined") + 1] == "recovered"
    s.outcomes = outcomes[2:]  # nothing recovered by the run: the headline as it always was
    assert "0 rows, 0 quarantined; " in summary_lines(s)[0]


class Ending(Letters):
    """A source whose catalog errors end the run (as the CV source's endpoint-gone errors)."""

    def on_error(self, error: BaseException) -> str:
        return "raise" if isinstance(error, CatalogError) else super().on_error(error)


def test_an_error_that_ends_the_run_carries_what_it_did(db: CatalogDB) -> None:
    """A run-ending error after some units (the endpoint gone, the disk): the error's line, with
    the run's summary, so the CLI shows the units done before it (it printed the error alone)."""
    src = Ending(db, "abcde")
    src.convert_errors["c"] = CatalogError("the catalog's disk went away (test)")
    runner = Runner(src, db, retry=RetryPolicy(attempts=1))
    with pytest.raises(CatalogError) as stopped:  # the error itself, with the run's report
        runner.run()
    assert str(stopped.value) == "the catalog's disk went away (test)"
    summary = stopped.value.run_summary
    assert isinstance(summary, Summary)
    assert summary.count("complete") == 2 and summary.status == "failed"
    assert summary.as_dict()["errors"] == ["run stopped: the catalog's disk went away (test)"]
    assert summary_lines(summary)[0].startswith("letters/TEXT") and len(summary_lines(summary)) == 1
    run = _run_row(db, runner.run_id)
    assert run["status"] == "failed" and run["message"].count("disk went away") == 1
    # an error before any unit is the error alone, as before
    again = Ending(db, "abcdef")
    again.convert_errors["c"] = CatalogError("gone again (test)")
    with pytest.raises(CatalogError) as alone:
        Runner(again, db, retry=RetryPolicy(attempts=1)).run()
    assert alone.value.run_summary is None


class Vanishing(Letters):
    """A unit whose converted file is removed after its conversion, before its commit (its
    staging deleted under the run)."""

    def convert(self, fetched: str, run: RunContext) -> Staged[str]:
        staged = super().convert(fetched, run)
        if staged.unit == "b":
            staged.files[0].path.unlink()
        return staged


def test_a_unit_whose_staged_file_is_gone_fails_alone_and_plainly(db: CatalogDB) -> None:
    """It failed its whole commit batch with FileNotFoundError: it fails alone, saying why,
    and the next run does it."""
    s = _run(Vanishing(db, "abcd", slots=4), db)
    assert {o.key: o.status for o in s.outcomes} == {
        "a": "complete", "b": "failed", "c": "complete", "d": "complete",
    }  # fmt: skip
    [failed] = [o for o in s.outcomes if o.status == "failed"]
    assert failed.error is not None and "removed before the commit" in failed.error
    assert "FileNotFoundError" not in failed.error
    assert sorted(_letters(db)) == ["a", "c", "d"]
    assert _run(Letters(db, "abcd"), db).count("complete") == 1


class StoppedGroups(Groups):
    """Groups whose group conversion is stopped by the run's stop (Ctrl-C interrupts its
    queries: DuckDB's InterruptException)."""

    def convert_group(self, fetched: list[str], run: RunContext) -> list[Staged[str] | Outcome]:
        self.groups.append([Path(f).read_text() for f in fetched])
        run.stop.set()
        raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")


def test_a_group_stopped_by_an_interrupt_is_not_converted_again_unit_by_unit(
    db: CatalogDB,
) -> None:
    """Not the note 'converting N units together failed (InterruptException ...); converting
    each alone' before the run's 'interrupted' line."""
    src = StoppedGroups(db, "abcdef")
    alone: list[str] = []
    convert = src.convert

    def counted(fetched: str, run: RunContext) -> Staged[str]:
        alone.append(Path(fetched).read_text())
        return convert(fetched, run)

    src.convert = counted  # type: ignore[method-assign]
    notes: list[str] = []

    class Notes(NullProgress):
        def note(self, message: str) -> None:
            notes.append(message)

    with contextlib.suppress(Interrupted, duckdb.InterruptException):  # the run ends stopped
        _run(src, db, progress=Notes())
    grouped = {u for g in src.groups for u in g}
    assert grouped and not grouped & set(alone), (src.groups, alone)
    assert not [n for n in notes if "together failed" in n], notes
