"""Small days converted in groups (transform.convert_partitions, Source.convert_group): the same
catalog as day by day, one bad day failing alone, and a kill -9 in the middle of a group."""

from __future__ import annotations

import errno
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cvcatalog.catalog import Catalog
from cvcatalog.exceptions import EndpointUnreachableError
from cvcatalog.io import dirlock
from cvcatalog.io.download import ObjectInfo, S3Fetcher
from cvcatalog.sandbox.replica import SeedReport, seed_replica
from cvcatalog.sources import cvpilot
from cvcatalog.sources.bucket import PartitionKey

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.catalog_session import plain_session  # noqa: E402
from bench.chaos import Scenario, check_catalog, run_cmd  # noqa: E402
from bench.chaos import ingest_cmd as chaos_ingest_cmd  # noqa: E402
from bench.chaos import seed as chaos_seed  # noqa: E402

D1 = date(2021, 4, 1)
DAYS = 8
END = D1 + timedelta(days=DAYS - 1)
EMPTY = D1 + timedelta(days=3)


@pytest.fixture(scope="module")
def replica(module_s3: Any) -> SeedReport:
    """Eight small days (one empty), with malformed lines in each."""
    return seed_replica(
        module_s3,
        D1,
        END,
        records_per_hour=6,
        files_per_hour=1,
        empty_hour_rate=0.3,
        empty_days=[EMPTY],
        malformed_per_day=3,
    )


class Groups:
    """Records the groups convert_partitions converts; the first day's conversion alone is
    slowed so the next days are fetched meanwhile and converted together."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        real_group = cvpilot.convert_partitions
        real_day = cvpilot.CvPilotDays.convert

        def group(con: Any, schema: Any, parts: Any, **kw: Any) -> Any:
            self.sizes.append(len(parts))
            return real_group(con, schema, parts, **kw)

        def day(source: Any, fetched: Any, run: Any) -> Any:
            time.sleep(0.5)
            return real_day(source, fetched, run)

        monkeypatch.setattr(cvpilot, "convert_partitions", group)
        monkeypatch.setattr(cvpilot.CvPilotDays, "convert", day)


def _ingest(catalog: Path, **kw: Any) -> Any:
    return Catalog(catalog).ingest(
        "wydot", "BSM", D1, END, timezone="UTC", rate_limit=0, max_workers=4, **kw
    )


def _state(catalog: Path) -> dict[str, Any]:
    """Everything a day's state and data say, without run ids, times and file names."""
    con = plain_session(catalog / "catalog.ducklake")
    try:

        def q(sql: str) -> list[tuple[Any, ...]]:
            return sorted(con.execute(sql).fetchall(), key=repr)

        rows = q("SELECT to_json(t)::VARCHAR FROM wydot_bsm t")
        parts = q(
            "SELECT partition_key, status, rows, quarantined, parquet_bytes > 0, source_objects, "
            "source_bytes, schema_versions, canonical_version, error FROM partitions"
        )
        files = q(
            "SELECT partition_key, kind, count(*), sum(rows) FROM partition_files GROUP BY ALL"
        )
        objects = q("SELECT partition_key, key, size, etag, last_modified FROM source_objects")
        validation = q("SELECT * EXCLUDE (run_id) FROM validation_reports")
        quarantine = sorted(
            (path.split("/quarantine-")[0], line)
            for (path,) in con.execute(
                "SELECT path FROM partition_files WHERE kind = 'quarantine'"
            ).fetchall()
            for line in (catalog / path).read_text().splitlines()
        )
        hashes = con.execute(
            "SELECT count(*), count(sha256) FROM partition_files WHERE length(sha256) = 64"
        ).fetchone()
    finally:
        con.close()
    return {
        "rows": rows,
        "partitions": parts,
        "files": files,
        "objects": objects,
        "validation": validation,
        "quarantine": quarantine,
        "hashed": hashes,
    }


def test_grouped_days_give_the_same_catalog_as_day_by_day(
    replica: SeedReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        groups = Groups(m)
        grouped = _ingest(tmp_path / "grouped")
    assert grouped.ok, [(o.key, o.status, o.error) for o in grouped.days]
    assert max(groups.sizes, default=0) > 1, groups.sizes  # days were converted together
    with monkeypatch.context() as m:
        m.setattr(cvpilot, "GROUP_MAX_DAYS", 1)
        m.setattr(cvpilot, "MONTH_LIST_MIN_DAYS", 10**6)  # a LIST per day, as before
        alone = _ingest(tmp_path / "alone")
    assert alone.ok, alone.as_dict()
    assert grouped.list_requests < alone.list_requests == DAYS  # one listing of the month

    a, b = _state(tmp_path / "grouped"), _state(tmp_path / "alone")
    assert len(a["rows"]) == replica.records
    assert len(a["quarantine"]) == replica.malformed > 0
    for what in a:
        assert a[what] == b[what], what
    statuses = {p[0]: p[1] for p in a["partitions"]}
    assert list(statuses.values()).count("no_data") == 1
    assert Catalog(tmp_path / "grouped").verify().clean


def test_one_bad_day_in_a_group_fails_alone(
    replica: SeedReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = D1 + timedelta(days=5)
    bad_dir = f"{bad:%Y/%m/%d}"
    real = cvpilot.convert_partition

    def broken(con: Any, schema: Any, files: Any, out_dir: Path, **kw: Any) -> Any:
        if any(bad_dir in f.key for f in files):
            raise OSError(28, "No space left on device")
        return real(con, schema, files, out_dir, **kw)

    notes: list[str] = []
    monkeypatch.setattr(cvpilot, "convert_partition", broken)
    Groups(monkeypatch)
    real_group = cvpilot.convert_partitions

    def group(con: Any, schema: Any, parts: Any, **kw: Any) -> Any:
        if any(bad_dir in f.key for fs, _ in parts for f in fs):
            raise OSError(28, "No space left on device")
        return real_group(con, schema, parts, **kw)

    monkeypatch.setattr(cvpilot, "convert_partitions", group)

    class Notes:
        def __getattr__(self, name: str) -> Any:
            return lambda *a, **k: notes.append(str(a[0])) if name == "note" else None

    cat = Catalog(tmp_path / "cat")
    s = cat.ingest(
        "wydot", "BSM", D1, END, timezone="UTC", rate_limit=0, max_workers=4, progress=Notes()
    )
    status = {o.key: o.status for o in s.days}
    bad_key = f"wydot/BSM/{bad_dir}"
    assert status.pop(bad_key) == "failed"
    assert set(status.values()) == {"complete", "no_data"}
    assert any("together failed" in n for n in notes), notes  # a group did include the bad day
    recorded = {r["partition"]: r["status"] for r in cat.status()}
    assert recorded[bad_key] == "failed"
    assert cat.verify().clean
    # the bad day alone is done again by the next run
    monkeypatch.setattr(cvpilot, "convert_partition", real)
    monkeypatch.setattr(cvpilot, "convert_partitions", real_group)
    again = cat.ingest("wydot", "BSM", D1, END, timezone="UTC", rate_limit=0)
    assert [o.key for o in again.days if o.status == "complete"] == [bad_key]


def test_a_groups_folder_goes_once_its_days_are_committed(
    replica: SeedReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Grouped days convert into a folder of the run's (no staging folder a day): a group's
    folder goes with the commit of its last day, the run's folder with the run."""
    Groups(monkeypatch)
    done: list[Path] = []  # folders whose last day was committed
    gone: list[bool] = []  # whether each was gone when its commit's tidy-up ended
    real_done, real_all = cvpilot.CvPilotDays._day_committed, cvpilot.CvPilotDays.committed_all

    def day_committed(self: Any, pk: Any) -> Any:
        group = real_done(self, pk)
        if group is not None:
            done.append(group)
        return group

    def committed_all(self: Any, batch: Any, run: Any) -> None:
        real_all(self, batch, run)
        gone.extend(not g.exists() for g in done[len(gone) :])

    monkeypatch.setattr(cvpilot.CvPilotDays, "_day_committed", day_committed)
    monkeypatch.setattr(cvpilot.CvPilotDays, "committed_all", committed_all)
    s = _ingest(tmp_path / "cat")
    assert s.ok
    assert done and all(gone) and len(gone) == len(done), (done, gone)
    groups = tmp_path / "cat" / "staging" / ".groups"
    assert list(groups.iterdir()) == []
    days = [p for p in (tmp_path / "cat" / "staging").rglob("*") if p.name.startswith("out-")]
    assert days == []


def test_a_held_groups_folder_is_kept_and_an_unheld_one_swept(
    replica: SeedReport, tmp_path: Path
) -> None:
    """A run's session sweeps the group folders no run holds (a killed run's), never one a
    live run holds."""
    groups = tmp_path / "cat" / "staging" / ".groups"
    dead = groups / "20210101T000000-dead" / "g00000" / "d000"
    dead.mkdir(parents=True)
    (dead / "data_0.parquet").write_bytes(b"left by a killed run")
    live = groups / "20210101T000000-live"
    groups.mkdir(exist_ok=True)
    fd = dirlock.hold(live, shared=False)
    assert fd is not None
    try:
        (live / "g00000").mkdir()
        assert _ingest(tmp_path / "cat").ok
        assert sorted(p.name for p in groups.iterdir()) == ["20210101T000000-live"]
        assert (live / "g00000").is_dir()
    finally:
        dirlock.release(fd)
    assert dirlock.sweep_unheld(groups) == [live]


def test_where_no_folder_can_be_held_a_group_uses_each_days_staging(
    replica: SeedReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a file system without flock (some NFS mounts) a killed run's folder of groups could
    not be told from a live run's: the groups convert in each day's own staging instead."""
    groups = Groups(monkeypatch)
    real = dirlock.hold

    def hold(root: Path, *, shared: bool) -> int | None:
        if shared:  # the memory stage's lease, as it is
            return real(root, shared=True)
        root.mkdir(exist_ok=True)  # what hold does where flock fails: the folder, no lock
        return None

    monkeypatch.setattr(dirlock, "hold", hold)
    made: list[Path] = []
    real_fresh = cvpilot.fresh_dir

    def fresh(path: Path) -> Path:
        made.append(path)
        return real_fresh(path)

    monkeypatch.setattr(cvpilot, "fresh_dir", fresh)
    s = _ingest(tmp_path / "cat")
    assert s.ok and s.rows == replica.records
    assert max(groups.sizes) > 1, groups.sizes
    assert len(made) >= max(groups.sizes)  # the days of a group each in their own folder
    assert all(p.name.startswith("out-") for p in made)
    staging = tmp_path / "cat" / "staging"
    assert not any(p.is_file() for p in staging.rglob("*"))
    assert list((staging / ".groups").iterdir()) == []


def test_a_run_error_in_a_group_ends_the_run_without_trying_each_day(
    replica: SeedReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The endpoint gone while a group converts (its downloads failing alike) printed "note:
    ... converting 6 units together failed (cannot reach ...); converting each alone", then
    the error: an error of the whole run ends it as any day's would, with no note."""
    Groups(monkeypatch)
    gone = EndpointUnreachableError("cannot reach the S3 endpoint http://127.0.0.1:9/")

    def group(con: Any, schema: Any, parts: Any, **kw: Any) -> Any:
        raise gone

    monkeypatch.setattr(cvpilot, "convert_partitions", group)
    notes: list[str] = []

    class Notes:
        def __getattr__(self, name: str) -> Any:
            return lambda *a, **k: notes.append(str(a[0])) if name == "note" else None

    with pytest.raises(EndpointUnreachableError):
        Catalog(tmp_path / "cat").ingest(
            "wydot", "BSM", D1, END, timezone="UTC", rate_limit=0, max_workers=4,
            progress=Notes(),
        )  # fmt: skip
    assert not [n for n in notes if "together failed" in n], notes


def test_the_first_days_fetch_while_later_months_are_still_listed(
    replica: SeedReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan requests the months' listings and goes on: April's listing is held until a
    March day has been fetched (the plan waiting for every month would wait it out)."""
    first = date(2021, 3, 29)  # three days of March, none with data, then the replica's April
    march_fetched = threading.Event()
    waited: list[bool] = []
    real_upto, real_listing = S3Fetcher.list_upto, cvpilot.CvPilotDays._listing

    def list_upto(self: Any, prefix: str, *a: Any, **kw: Any) -> Any:
        if "/2021/04/" in prefix:
            waited.append(march_fetched.wait(10))
        return real_upto(self, prefix, *a, **kw)

    def listing(self: Any, pk: Any) -> Any:
        objects = real_listing(self, pk)
        if pk.day.month == 3:
            march_fetched.set()
        return objects

    monkeypatch.setattr(S3Fetcher, "list_upto", list_upto)
    monkeypatch.setattr(cvpilot.CvPilotDays, "_listing", listing)
    s = Catalog(tmp_path / "cat").ingest(
        "wydot", "BSM", first, END, timezone="UTC", rate_limit=0, max_workers=4
    )
    assert waited == [True]
    assert s.ok, s.as_dict()
    assert s.list_requests == 2  # a listing a month, no day listed again
    status = {o.key: o.status for o in s.days}
    assert [status[f"wydot/BSM/2021/03/{d}"] for d in (29, 30, 31)] == ["no_data"] * 3
    assert s.count("complete") == DAYS - 1  # every April day with data
    assert s.rows == replica.records


def test_a_day_whose_download_fails_fails_alone_in_its_group(
    replica: SeedReport, module_s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = D1 + timedelta(days=6)
    real_list = cvpilot.CvPilotDays._list_months
    removed: list[tuple[str, bytes]] = []

    def list_then_delete(self: Any, todo: Any) -> None:
        real_list(self, todo)  # the plan's listing still names the object
        months = [m.result() or {} for m in self._listed.values()]
        key = next(o.key for month in months for day, objs in month.items()
                   if gone.strftime("%Y/%m/%d") in day for o in objs)  # fmt: skip
        body = module_s3.get_object(Bucket=self.cfg.bucket, Key=key)["Body"].read()
        module_s3.delete_object(Bucket=self.cfg.bucket, Key=key)
        removed.append((key, body))

    monkeypatch.setattr(cvpilot.CvPilotDays, "_list_months", list_then_delete)
    Groups(monkeypatch)
    try:
        s = _ingest(tmp_path / "cat")
    finally:
        for key, body in removed:
            module_s3.put_object(Bucket="usdot-its-cvpilot-publicdata", Key=key, Body=body)
    failed = [o for o in s.days if o.status == "failed"]
    assert [o.key for o in failed] == [f"wydot/BSM/{gone:%Y/%m/%d}"]
    assert "download failed" in (failed[0].error or "")
    assert s.count("complete") == DAYS - 2  # every other day with data
    assert Catalog(tmp_path / "cat").verify().clean


class Notes:
    """The run's notes (a Progress that keeps only those)."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: self.notes.append(str(a[0])) if name == "note" else None


def test_a_group_whose_every_download_fails_fails_each_day_plainly(
    replica: SeedReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every copy of a group's days removed under its downloads (the staging directory deleted
    during the run): the group converted nothing, yet ran a conversion of no day, whose
    IndexError became the note "converting 7 units together failed (IndexError: list index
    out of range); converting each alone". Each day fails with its download's reason."""
    Groups(monkeypatch)
    sizes: list[int] = []
    real_group = cvpilot.CvPilotDays.convert_group

    def group(self: Any, fetched: Any, run: Any) -> Any:
        sizes.append(len(fetched))
        return real_group(self, fetched, run)

    def removed(self: Any, objs: Any, dest_for: Any, **kw: Any) -> Any:
        return [], [(o, FileNotFoundError(2, "No such file or directory", str(dest_for(o))))
                    for o in objs]  # fmt: skip

    monkeypatch.setattr(cvpilot.CvPilotDays, "convert_group", group)
    monkeypatch.setattr(S3Fetcher, "download_many", removed)
    progress = Notes()
    s = _ingest(tmp_path / "cat", progress=progress)
    assert max(sizes, default=0) > 1, sizes  # a group's days all failed their downloads
    assert progress.notes == []
    failed = {o.key: o.error or "" for o in s.days if o.status == "failed"}
    assert len(failed) == DAYS - 1  # every day with data
    assert all(e.startswith("download failed: ") for e in failed.values()), failed
    assert {r["partition"] for r in Catalog(tmp_path / "cat").status()
            if r["status"] == "failed"} == set(failed)  # fmt: skip


def test_a_staged_copy_removed_under_a_group_is_named_plainly(
    replica: SeedReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A day's staged copies deleted before its group converts: the note and the day's
    failure say which copy is missing, not DuckDB's error about a file pattern (with its SQL
    excerpt on further lines); the other days complete, and the next run does the day."""
    bad = D1 + timedelta(days=5)
    bad_key = f"wydot/BSM/{bad:%Y/%m/%d}"
    Groups(monkeypatch)
    real_group = cvpilot.convert_partitions

    def group(con: Any, schema: Any, parts: Any, **kw: Any) -> Any:
        for files, _ in parts:
            for f in files:
                if f.key.startswith(bad_key):
                    f.path.unlink()
        return real_group(con, schema, parts, **kw)

    monkeypatch.setattr(cvpilot, "convert_partitions", group)
    progress = Notes()
    cat = Catalog(tmp_path / "cat")
    s = _ingest(tmp_path / "cat", progress=progress)
    [note] = progress.notes
    assert "converting each alone" in note and f"the staged copy of {bad_key}/" in note, note
    assert "IOException" not in note and "\n" not in note
    status = {o.key: (o.status, o.error or "") for o in s.days}
    state, error = status.pop(bad_key)
    assert state == "failed" and error.startswith(f"the staged copy of {bad_key}/"), error
    assert "removed while the run used it" in error
    assert {st for st, _ in status.values()} == {"complete", "no_data"}
    assert {r["partition"]: r["status"] for r in cat.status()}[bad_key] == "failed"
    monkeypatch.setattr(cvpilot, "convert_partitions", real_group)
    again = _ingest(tmp_path / "cat")
    assert [o.key for o in again.days if o.status == "complete"] == [bad_key]
    assert cat.verify().clean


def test_staging_gone_names_only_what_was_removed(tmp_path: Path) -> None:
    """The plain reason is given only when a copy the conversion read, or the day's staging
    directory, is gone: not for a copy still downloading (a later batch of a streamed day),
    nor for a full disk, nor for an error that is not about a file."""
    pk = PartitionKey("wydot", "BSM", D1)
    when = datetime(2021, 4, 1, tzinfo=UTC)
    read, later = (ObjectInfo(f"wydot/BSM/2021/04/01/00/{n}", 1, "e", when) for n in "ab")
    f = cvpilot.Fetched(pk, None, [read, later], {}, 0, 2)
    f.names = {read.key: tmp_path / "a.json", later.key: tmp_path / "b.json"}
    f.names[read.key].write_text("{}\n")  # b.json: still downloading
    out = tmp_path / "out"
    out.mkdir()
    gone = FileNotFoundError(2, "No such file or directory")
    assert cvpilot.staging_gone(f, [read], out, gone) is None  # all there: the error stands
    f.names[read.key].unlink()
    why = cvpilot.staging_gone(f, [read], out, gone)
    assert why == (f"the staged copy of {read.key} is missing ({tmp_path / 'a.json'}): "
                   "removed while the run used it")  # fmt: skip
    full = OSError(errno.ENOSPC, "No space left on device")
    assert cvpilot.staging_gone(f, [read], out, full) is None
    assert cvpilot.staging_gone(f, [read], out, ValueError("a bug")) is None
    out.rmdir()
    assert cvpilot.staging_gone(f, [], out, gone) == (
        f"the staging directory of {pk.key} ({out}) was removed while the run used it"
    )


KILL_IN = """
import os, signal, sys
from cvcatalog.pipeline import commit
from cvcatalog.sources import cvpilot
where = sys.argv[1]
real_place, real_group = commit.place, cvpilot.convert_partitions

def place(store, batch):
    placed = real_place(store, batch)
    if where == "commit" and len(batch) > 1:  # files of a group in the lake, not committed
        os.kill(os.getpid(), signal.SIGKILL)
    return placed

def group(con, schema, parts, **kw):
    out = real_group(con, schema, parts, **kw)
    if where == "convert":  # a group's files written in staging
        os.kill(os.getpid(), signal.SIGKILL)
    return out

commit.place, cvpilot.convert_partitions = place, group
real_convert = cvpilot.CvPilotDays.convert
def slow(self, fetched, run):
    import time
    time.sleep(0.5)  # the next days are fetched meanwhile: they convert as a group
    return real_convert(self, fetched, run)
cvpilot.CvPilotDays.convert = slow
sys.argv = ["cvcatalog", *sys.argv[2:]]
from cvcatalog.cli.main import app
app()
"""


@pytest.mark.parametrize("where", ["convert", "commit"])
def test_a_kill_in_the_middle_of_a_group_leaves_a_consistent_catalog(
    s3_endpoint: str, tmp_path: Path, where: str
) -> None:
    sc: Scenario = chaos_seed(s3_endpoint, days=6, records_per_hour=4, files_per_hour=1)
    catalog = tmp_path / "cat"
    cmd = chaos_ingest_cmd(catalog, sc.start, sc.end)
    killed = run_cmd([sys.executable, "-c", KILL_IN, where, *cmd[3:]], sc.env())
    assert killed.returncode == -9, killed.stderr[-2000:]
    snap = check_catalog(catalog)  # nothing visible without its state, nor the reverse
    assert snap.complete < len(sc.data_partitions)  # the group was not committed
    # the run's record is written before its first commit (a new catalog's once its tables
    # are made, on a thread of their own: the file can exist without it), so a run killed
    # before any commit may have left none to mark interrupted; one that committed days had
    # (on a slow machine the first conversion may already be the group: every day fetched
    # during the first 0.5 s)
    committed = snap.complete > 0
    groups = catalog / "staging" / ".groups"
    assert len(list(groups.iterdir())) == 1  # the killed run's folder of groups
    if where == "convert":  # with the group's files (a commit had moved them to the lake)
        assert list(groups.rglob("*.parquet")), sorted(groups.rglob("*"))
    again = run_cmd(cmd, sc.env())
    assert again.returncode == 0, again.stderr[-2000:]
    assert list(groups.iterdir()) == []  # swept by the re-run (nobody held it), its own gone
    final = check_catalog(catalog, complete=True, sc=sc)
    assert final.rows == sc.records and final.duplicates == 0 and final.orphans == 0
    runs = plain_session(catalog / "catalog.ducklake")
    try:
        statuses = [r[0] for r in runs.execute("SELECT status FROM ingest_runs").fetchall()]
    finally:
        runs.close()
    if committed:
        assert sorted(statuses) == ["interrupted", "ok"], statuses
    else:
        assert sorted(statuses) in (["ok"], ["interrupted", "ok"]), statuses
