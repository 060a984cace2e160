"""Shared fixtures: a real local S3 endpoint (moto server process) and temporary catalogs."""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pytest
import typer.testing
from faultproxy import FaultProxy

from cvcatalog.sandbox.server import SandboxServer, start_server
from cvcatalog.sources.bucket import BUCKET

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """One moto server process for the whole session, spoken to over HTTP."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with start_server(port=0, log_file=log) as server:
        yield server


def _point_at(server: SandboxServer, mp: pytest.MonkeyPatch) -> Any:
    """Reset the server to an empty BUCKET and point the AWS environment at it (no profile,
    no lake override); returns a client of it."""
    server.reset()
    for k, v in server.env().items():
        mp.setenv(k, v)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "CVCATALOG_STORAGE"):
        mp.delenv(name, raising=False)
    client = boto3.client("s3", endpoint_url=server.endpoint_url)
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def s3_endpoint(s3_server: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty bucket on the local endpoint, with the AWS environment pointing at it."""
    _point_at(s3_server, monkeypatch)
    yield s3_server.endpoint_url


@pytest.fixture(scope="module")
def module_s3(s3_server: SandboxServer) -> Iterator[Any]:
    """s3_endpoint for a whole module: fixtures that seed (and ingest) once build on it.
    s3_endpoint and s3_client reset the server: in such a module they empty its bucket."""
    with pytest.MonkeyPatch.context() as mp:
        yield _point_at(s3_server, mp)


@pytest.fixture
def s3_client(s3_endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client("s3", endpoint_url=s3_endpoint)


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    return tmp_path / "catalog"


@pytest.fixture
def fault_proxy(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the local endpoint; AWS_ENDPOINT_URL_S3 points at it
    (the `s3_client` fixture still talks to the endpoint directly, e.g. for seeding)."""
    with FaultProxy(s3_endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.endpoint_url)
        yield proxy


# DuckDB checks an extension's signature by hashing the whole file on every LOAD into a new
# instance. cvcatalog's own instances (duckdb_ext.open_instance) run that check once per file
# version (duckdb_ext.verify_extension); the plain instances tests open themselves skip it
# here too, so they load the pinned files as cvcatalog does (load_extension: verified once,
# autoinstall/autoload off). test_db.py::test_the_shipped_extensions_load_with_signature_checks
# loads each one with the check on. CVCATALOG_TEST_SIGNED_EXTENSIONS=1 keeps the check here too.
#
# The suite runs more pytest workers than cores (`make test`: -n 3 on 2), so a DuckDB instance of
# this process that takes every core competes with the other workers, their moto servers and the
# subprocesses of both: on the tests' tiny days its extra threads only add scheduling (a 2-day
# ingest: 2.2 -> 1.6 CPU s). Instances opened here without a `threads` setting get one; an
# explicit setting (memory.duckdb_threads, a pool's threads, SET threads) still applies, and the
# subprocesses (CLI, kill -9, bench smoke) run with DuckDB's default, as shipped.
# CVCATALOG_TEST_DUCKDB_THREADS=0 keeps DuckDB's default here too (or sets another number).
_duckdb_connect = duckdb.connect
_SIGNED = bool(os.environ.get("CVCATALOG_TEST_SIGNED_EXTENSIONS"))
_THREADS = int(os.environ.get("CVCATALOG_TEST_DUCKDB_THREADS", "1"))


def _connect_for_tests(
    database: Any = ":memory:", read_only: bool = False, config: Any = None, **kw: Any
) -> duckdb.DuckDBPyConnection:
    config = dict(config or {})
    if not _SIGNED:
        config.setdefault("allow_unsigned_extensions", True)
    if _THREADS > 0:
        config.setdefault("threads", _THREADS)
    return _duckdb_connect(database, read_only, config, **kw)


duckdb.connect = _connect_for_tests  # type: ignore[assignment]


# Typer's CliRunner builds the whole click command tree from the app at every invoke (~27 ms:
# every command's signature and type hints read again), some thousand times a run: the tree of
# an app is built once per process here. A click command keeps no state between invocations.
_COMMANDS: dict[int, Any] = {}


def _command_of(app: Any) -> Any:
    if id(app) not in _COMMANDS:
        _COMMANDS[id(app)] = (app, _build_command(app))  # (the app kept: its id stays its own)
    return _COMMANDS[id(app)][1]


_build_command = typer.testing._get_command
typer.testing._get_command = _command_of  # type: ignore[assignment]


# `make test` runs the modules on 3 workers with --dist loadfile (a module's fixtures are built
# once, on one worker). xdist then hands out modules in order of their number of tests, so the
# modules with a few long tests (kill -9 trials, Dask clusters, the bench smoke run) came last
# and one worker ran them alone at the end. Longest first instead: the modules below (all but
# the ones under 3 s, longest first, measured with --junitxml of `make test` in session 28:
# test_layout, 11 s, was missing and came among the last) are handed out
# first, the others after them, and the workers finish close together. The list is only a
# scheduling hint: a module missing from it runs all the same.
LONGEST_MODULES = (
    "test_ngsim.py",
    "test_cli.py",
    "test_publish.py",
    "test_ingest.py",
    "test_daygroups.py",
    "test_versions.py",
    "test_lake.py",
    "test_s3_faults.py",
    "test_frames.py",
    "test_storage.py",
    "test_hostile.py",
    "test_every_source.py",
    "test_streaming.py",
    "test_distributed.py",
    "test_db.py",
    "test_wydot_tim.py",
    "test_disk_pressure.py",
    "test_incremental.py",
    "test_chaos.py",
    "test_nycdot.py",
    "test_splits.py",
    "test_transform.py",
    "test_pipeline.py",
    "test_roworder.py",
    "test_thea.py",
    "test_export.py",
    "test_layout.py",
    "test_quality.py",
    "test_trips.py",
    "test_deletes.py",
    "test_quality_bench.py",
    "test_experiments.py",
    "test_spatial.py",
    "test_coverage.py",
    "test_quality_ingest.py",
    "test_bench_targets.py",
    "test_download.py",
    "test_discover.py",
    "test_compact.py",
    "test_invalid_endpoint.py",
    "test_ode_versions.py",
    "test_security.py",
    "test_replica.py",
    "test_sandbox_server.py",
)


#: names the user cache this test session made (not a CVCATALOG_ variable: the CLI notes those)
_SESSION_CACHE = "PYTEST_CVCATALOG_USER_CACHE"
#: the directories of this test session: the memory stage's (io.memstage; the copies of the
#: days tests leave failed go with the session, not 24 hours later) and the user cache. Made
#: by the process that starts the session (xdist's workers inherit them) and removed by it.
_MADE_STAGING: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist: keep the order below
        config.option.loadscopereorder = False
    if "CVCATALOG_MEMORY__STAGING_DIR" not in os.environ:
        # a small /dev/shm (a container's 64 MB) would give no stage: a directory on disk then,
        # so the tests of the memory stage run the same code everywhere
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
        if shm is not None:
            st = os.statvfs(shm)
            shm = shm if st.f_bavail * st.f_frsize >= 1 << 30 else None
        made = tempfile.mkdtemp(prefix="cvcatalog-tests-", dir=shm)
        os.environ["CVCATALOG_MEMORY__STAGING_DIR"] = made
        _MADE_STAGING.append(made)
    if _SESSION_CACHE not in os.environ:
        # the user cache of this session (xdist's workers and every process the tests start
        # inherit it): the remote catalogs' databases the tests read (~3 MB each, under a new
        # endpoint port every session), kept blanks and extension markers go with the session
        # instead of filling the developer's ~/.cache (945 directories, 2.7 GB, had built up)
        made = tempfile.mkdtemp(prefix="cvcatalog-tests-cache-")
        os.environ["XDG_CACHE_HOME"] = os.environ[_SESSION_CACHE] = made
        _MADE_STAGING.append(made)


def pytest_unconfigure(config: pytest.Config) -> None:
    for made in _MADE_STAGING:
        shutil.rmtree(made, ignore_errors=True)


#: modules whose tests start their own moto server process rather than the session's
SERVES_ITSELF = frozenset({"test_sandbox_server.py"})


def _freeze_what_lives() -> None:
    """Collect, then freeze what is left: nothing frozen is garbage already."""
    gc.collect()
    gc.freeze()


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collecting imported (modules, classes, functions: ~300,000 objects a worker) lives
    as long as the process: frozen out of the garbage collector's way, its full collections
    no longer scan them again each time (a third of their time; ~1 % of a worker's CPU)."""
    _freeze_what_lives()


@pytest.fixture
def thawed_heap() -> Iterator[None]:
    """A test of code that freezes the heap starts with nothing frozen; the worker's frozen
    heap is restored after it, else every later full collection walks it again."""
    session_froze = gc.get_freeze_count() > 0
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()
        if session_froze:
            _freeze_what_lives()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After a module's last test (its fixtures torn down), what is still alive joins the
    frozen heap: what the module imported (dask, pandas' submodules, ...) and the session's
    caches. A full collection then walks only what the next module made, not all a worker
    ever loaded (~150 ms each, some 40 a worker). What a frozen object holds is still freed
    by its reference count; only a cycle among objects alive here would outlive its use."""
    yield
    if nextitem is None or nextitem.path != item.path:
        _freeze_what_lives()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # a test that speaks to the local S3 endpoint (a moto server process) is an integration
        # test, whichever fixture brought the server in; `make test-unit` leaves them out
        if "s3_server" in getattr(item, "fixturenames", ()) or item.path.name in SERVES_ITSELF:
            item.add_marker(pytest.mark.integration)
    rank = {name: i for i, name in enumerate(LONGEST_MODULES)}
    order = {id(item): i for i, item in enumerate(items)}
    items.sort(key=lambda it: (rank.get(it.path.name, len(rank)), order[id(it)]))
