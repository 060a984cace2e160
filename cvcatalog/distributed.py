"""Distributed ingest: day conversions run on a dask.distributed cluster, state stays on the client.

The client (the `cvcatalog ingest` process) still plans, lists, downloads into staging, locks
partitions, places the outputs in the lake and commits the catalog; only the conversion of a
partition's staged raw files into Parquet (the CPU-heavy step) is shipped to the cluster, as
:func:`run_convert_job`. Workers open their own in-memory DuckDB and never touch
`catalog.duckdb`, so they never contend for it.

Workers read the staged raw files and write the Parquet at the client's paths: they must see the
client's filesystem (a LocalCluster does; a remote cluster needs the catalog directory on a
shared filesystem at the same path). A task that cannot see the staged files fails its day with
a message saying so.

This module imports dask only inside functions: the task and its job description must be cheap
to import on the client and unpickle on a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import multiprocessing
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvcatalog.config import (
    MAX_WORKERS,
    MemoryConfig,
    ValidationConfig,
    check_workers,
    spelled,
)
from cvcatalog.exceptions import ClusterLostError, ConfigError, DistributedError
from cvcatalog.io.duckdb_ext import open_instance
from cvcatalog.io.layout import remove_tree
from cvcatalog.quality.config import QualityConfig
from cvcatalog.schemas import MessageSchema
from cvcatalog.transform import ConvertResult, RawFile, apply_quality, convert_partition

#: how long connecting to a scheduler (and waiting for its first worker) may take
CONNECT_TIMEOUT_SECONDS = 5.0
#: how long a cluster may be without any worker mid-run before the days waiting on it fail (a
#: worker that a nanny or a supervisor restarts is back well within it)
NO_WORKERS_SECONDS = 30.0
#: how often (at most) a conversion waiting on a cluster asks its scheduler for the workers
WATCH_SECONDS = 1.0
ENV_SCHEDULER = "DASK_SCHEDULER_ADDRESS"
#: the Python API's words for dask_pool's options in messages (the CLI passes its flags: names=)
API_WORDS = {"scheduler": "a Dask scheduler address", "cluster": "cluster='local'"}


@dataclass(frozen=True)
class ConvertJob:
    """Everything a worker needs to convert one staged partition (pickled to the worker)."""

    key: str
    schema: MessageSchema
    files: tuple[RawFile, ...]
    out_dir: Path
    spill_dir: Path
    validation: ValidationConfig
    rows_per_file: int
    row_group_size: int
    #: the memory budget of one conversion (GB); a worker with a smaller memory limit lowers it
    max_usage_gb: float
    threads: int | None = None
    #: run the quality step (cvcatalog.quality) on the result; None: skip it
    quality: QualityConfig | None = None


def run_convert_job(job: ConvertJob) -> ConvertResult:
    """Convert one partition on a worker: staged raw files -> Parquet in job.out_dir.

    Top level so that it pickles by reference. Opens its own in-memory DuckDB bounded by the
    memory budget (three quarters of it, as in a single-process ingest) and spills into its own
    directory in the partition's staging area.
    """
    missing = [f.path for f in job.files if not f.path.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DistributedError(
            f"{job.key}: the staged file {missing[0]}{more} is not visible on Dask worker "
            f"{_where()}: workers must see the client's filesystem (run them on this machine, "
            "or put the catalog directory on a shared filesystem at the same path)"
        )
    remove_tree(job.out_dir)  # a retried task (its worker died) starts clean
    job.out_dir.mkdir(parents=True)
    job.spill_dir.mkdir(parents=True, exist_ok=True)
    con = open_instance(":memory:")
    try:
        budget = MemoryConfig(max_usage_gb=_budget_gb(job.max_usage_gb))
        con.execute("SET memory_limit = ?", [budget.duckdb_memory_limit])
        con.execute("SET temp_directory = ?", [str(job.spill_dir)])
        con.execute("SET preserve_insertion_order = false")
        # a worker's stdout is often the client's terminal (a LocalCluster): no progress bars
        con.execute("SET enable_progress_bar = false")
        if job.threads:
            con.execute("SET threads = ?", [job.threads])
        result = convert_partition(
            con,
            job.schema,
            list(job.files),
            job.out_dir,
            validation=job.validation,
            target_rows_per_file=job.rows_per_file,
            row_group_size=job.row_group_size,
        )
        if job.quality is not None:
            apply_quality(con, result, job.schema, job.out_dir, job.quality, job.row_group_size)
        return result
    finally:
        con.close()
        remove_tree(job.spill_dir)


def _where() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return socket.gethostname()


def _budget_gb(wanted: float) -> float:
    """The job's budget, lowered to the Dask worker's share when that is smaller: its memory
    limit divided by its threads (each thread may run a conversion)."""
    try:
        from distributed import get_worker

        worker = get_worker()
        limit = worker.memory_manager.memory_limit
        threads = max(1, int(getattr(worker.state, "nthreads", 1) or 1))
    except (ImportError, ValueError, AttributeError):
        return wanted
    return min(wanted, limit / threads / 1e9) if limit else wanted


@dataclass
class ConversionPool:
    """Where pooled conversions run: any concurrent.futures Executor (a Dask client's executor,
    or e.g. a ProcessPoolExecutor) and how many conversions may run at once."""

    executor: Executor
    #: conversions at once (with `size`: what it says, asked by slots())
    capacity: int
    name: str
    #: per-conversion memory budget in GB (None: the config's memory.max_usage_gb)
    memory_gb: float | None = None
    #: DuckDB threads per conversion when memory.duckdb_threads is not set (None: DuckDB's own)
    threads: int | None = None
    #: how many conversions may run at once, asked when a run first has a day to convert (a
    #: Dask cluster's worker threads: waits for a first worker, so a run whose every day is
    #: cached needs none); None: capacity
    size: Callable[[], int] | None = None
    #: why the pool cannot convert any more (a Dask cluster whose scheduler was lost, or without
    #: workers for NO_WORKERS_SECONDS), or None; asked while conversions wait (None: never)
    watch: Callable[[], str | None] | None = None

    def slots(self) -> int:
        """How many conversions may run at once (the first call asks `size`)."""
        if self.size is not None:
            self.capacity, self.size = self.size(), None
        return self.capacity

    def lost(self) -> str | None:
        """Why no conversion can run here any more (one line), or None."""
        return self.watch() if self.watch is not None else None

    def submit(self, job: ConvertJob) -> Future[ConvertResult]:
        try:
            return self.executor.submit(run_convert_job, job)
        except Exception as e:  # e.g. a Dask client closed once its scheduler was lost
            reason = self.lost()
            if reason is not None:
                raise ClusterLostError(reason) from None
            raise DistributedError(
                f"cannot hand {job.key} to {self.name}: {_first_line(e)}"
            ) from None


@contextlib.contextmanager
def dask_pool(
    scheduler: Any = None,
    cluster: str | None = None,
    workers: int | None = None,
    *,
    memory: MemoryConfig | None = None,
    timeout: float | None = None,
    notify: Callable[[str], None] | None = None,
) -> Iterator[ConversionPool]:
    """A ConversionPool on a Dask cluster, for the duration of one ingest.

    scheduler: an address (tcp://host:8786) or a distributed.Client (left open); cluster="local"
    starts a LocalCluster of `workers` processes (one thread each, memory.max_usage_gb split
    between them) and closes it afterwards.

    The pool waits for a first worker only when the run has a day to convert
    (ConversionPool.slots), and tells the conversions waiting on the cluster when it is gone
    (ConversionPool.lost: _ClusterWatch). distributed's own log lines are silenced meanwhile:
    every failure reaches the user as one line of ours.
    """
    memory = memory or MemoryConfig()
    timeout = timeout or CONNECT_TIMEOUT_SECONDS
    say = notify or (lambda _m: None)
    check_options(scheduler, cluster, workers)
    from distributed import Client

    with contextlib.ExitStack() as stack:
        stack.enter_context(_quiet_dask_logs())  # left last: the closes below are quiet too
        memory_gb: float | None = None
        threads: int | None = None
        if cluster is not None:
            n = workers or max(1, min(os.cpu_count() or 1, MAX_WORKERS))
            memory_gb = memory.max_usage_gb / n
            threads = max(1, (os.cpu_count() or 1) // n)
            local = _local_cluster(n, memory_gb)
            stack.callback(local.close)
            client = Client(local, set_as_default=False)
            stack.callback(client.close)
            where = str(local.scheduler_address)
            workers_said = f"{n} worker" + ("" if n == 1 else "s")
            each = " each" if n > 1 else ""
            name = f"dask LocalCluster ({workers_said}, {memory_gb:.2f} GB{each})"
            processes = f"{n} worker process" + ("" if n == 1 else "es")
            say(f"started a Dask LocalCluster of {processes} at {where}")
        elif isinstance(scheduler, str):
            where = scheduler.strip()
            client = _connect(where, timeout)
            stack.callback(client.close)
            name = f"dask {where}"
        else:
            client = scheduler  # a distributed.Client the caller owns
            owned = getattr(getattr(client, "scheduler", None), "address", None)
            where = str(owned or "its address")
            name = f"dask {owned or 'client'}"
        executor = client.get_executor(pure=False)
        yield ConversionPool(
            executor,
            0,
            name,
            memory_gb,
            threads,
            size=functools.partial(_capacity, client, timeout, name),
            watch=_ClusterWatch(client, where, say),
        )


def _local_cluster(n: int, memory_gb: float) -> Any:
    """A LocalCluster of n worker processes, or one line saying why it did not start (its
    workers' log lines silenced: a cluster too big for the machine logs hundreds)."""
    import dask
    from distributed import LocalCluster

    # Tasks hold no Dask data, only DuckDB memory that DuckDB bounds itself: no spilling or
    # pausing on Dask's side (a paused worker would stall the ingest); the nanny still restarts
    # a worker that goes past 95 % of its limit.
    settings = {
        "distributed.worker.memory.target": False,
        "distributed.worker.memory.spill": False,
        "distributed.worker.memory.pause": False,
    }
    try:
        with dask.config.set(settings):
            return LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                memory_limit=int(memory_gb * 1e9),
                dashboard_address="127.0.0.1:0",  # never fight over :8787
                silence_logs=logging.CRITICAL,
            )
    except Exception as e:
        failure = _first_line(e)
    _collect_quietly()  # what the half-started cluster leaves would print at exit
    processes = "process" if n == 1 else "processes"
    raise DistributedError(
        f"could not start a Dask LocalCluster of {n} worker {processes}: {failure}"
    )


class _ClusterWatch:
    """Whether a Dask cluster can still convert (ConversionPool.watch): not once its client has
    lost the scheduler (Dask cancels the tasks in flight, and closes the client when it cannot
    reconnect), nor once it has had no worker for NO_WORKERS_SECONDS (its tasks would wait for
    one forever). Asked by every conversion waiting on the cluster; the scheduler is asked at
    most every WATCH_SECONDS, by one of them at a time. A verdict is final for the run."""

    def __init__(self, client: Any, where: str, notify: Callable[[str], None]) -> None:
        self.client = client
        self.where = where
        self.notify = notify
        self.verdict: str | None = None
        self._asking = threading.Lock()
        self._next = 0.0
        self._empty_since: float | None = None

    def __call__(self) -> str | None:
        self._check_connected()
        if self.verdict is not None or time.monotonic() < self._next:
            return self.verdict
        if self._asking.acquire(blocking=False):  # else another conversion is asking
            try:
                self._count_workers()
            finally:
                self._asking.release()
        return self.verdict

    def _check_connected(self) -> None:
        if self.verdict is None and self.client.status != "running":
            self.verdict = f"lost the Dask scheduler at {self.where} mid-run"

    def _count_workers(self) -> None:
        now = time.monotonic()
        self._next = now + WATCH_SECONDS
        try:
            workers = self.client.nthreads(callback_timeout=CONNECT_TIMEOUT_SECONDS)
        except Exception:  # no answer this time: lost (the status says so), or asked again
            self._check_connected()
            return
        if workers:
            self._empty_since = None
        elif self._empty_since is None:
            self._empty_since = now
            self.notify(
                f"the Dask cluster at {self.where} has no workers; the days converting there "
                f"wait up to {NO_WORKERS_SECONDS:g} s for one"
            )
        elif now - self._empty_since >= NO_WORKERS_SECONDS:
            self.verdict = (
                f"the Dask cluster at {self.where} has no workers left "
                f"(none for {NO_WORKERS_SECONDS:g} s)"
            )


def _importing_main_in_a_worker() -> bool:
    """Whether this code runs while a process started with `spawn` (a LocalCluster's worker)
    imports its parent's main script (as `__mp_main__`, still bootstrapping: multiprocessing's
    own test before it starts a process). A script that starts a LocalCluster outside
    `if __name__ == "__main__":` does so again in every worker, which failed as "could not
    start a Dask LocalCluster ...: Nanny failed to start" and nothing more."""
    main = sys.modules.get("__mp_main__")
    bootstrapping = bool(getattr(multiprocessing.current_process(), "_inheriting", False))
    return bootstrapping and getattr(main, "__name__", None) == "__mp_main__"


def check_options(
    scheduler: Any,
    cluster: str | None,
    workers: int | None,
    *,
    names: dict[str, str] | None = None,
) -> None:
    """One-line errors for contradictory options, or when dask.distributed is missing. names:
    the caller's words for the options (the CLI: {"scheduler": "--scheduler", ...})."""
    if scheduler is not None and cluster is not None:
        words = {**API_WORDS, **(names or {})}
        raise ConfigError(f"give either {words['scheduler']} or {words['cluster']}, not both")
    if cluster is not None and cluster.strip().lower() != "local":
        raise ConfigError(
            f"unknown cluster {cluster!r}: cvcatalog only starts 'local' (a LocalCluster); "
            "for another cluster give its scheduler address (--scheduler tcp://host:8786)"
        )
    if scheduler is None and cluster is None:
        raise ConfigError("no Dask cluster: give a scheduler address or cluster='local'")
    if scheduler is not None and not (
        isinstance(scheduler, str) or callable(getattr(scheduler, "get_executor", None))
    ):  # (5 was "'int' object has no attribute 'get_executor'")
        raise ConfigError(
            f"{spelled(names, 'scheduler')} is a Dask scheduler's address (tcp://host:8786) or a distributed.Client, "
            f"got {scheduler!r}"
        )
    if cluster is not None and _importing_main_in_a_worker():
        raise DistributedError(
            "a LocalCluster was asked for while one of its worker processes imported the script "
            "that asks for it (they start by importing it): put the script's work under "
            '`if __name__ == "__main__":`'
        )
    if workers is not None and cluster is None:
        raise ConfigError(
            "workers= sets the size of a LocalCluster (cluster='local'); a cluster reached at "
            "a scheduler address brings its own workers"
        )
    check_workers(spelled(names, "workers"), workers)
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as e:
        raise DistributedError(
            f"dask.distributed is not installed ({e}): pip install distributed, "
            "or ingest without --scheduler/--cluster"
        ) from None


def check_scheduler(address: str, timeout: float | None = None) -> None:
    """Raise DistributedError (one line) unless a Dask scheduler answers at address."""
    check_options(address, None, None)
    _check_reachable(address.strip(), timeout or CONNECT_TIMEOUT_SECONDS)


def _connect(address: str, timeout: float) -> Any:
    from distributed import Client

    _check_reachable(address, timeout)
    # a scheduler that accepts connections but does not answer logs errors and retries until
    # the timeout; the user gets one line instead
    try:
        with _quiet_dask_logs():
            return Client(address, timeout=timeout, set_as_default=False)
    except Exception as e:
        failure = _first_line(e)
    _collect_quietly()  # the half-started Client's __del__ would print a traceback at exit
    raise DistributedError(f"cannot reach the Dask scheduler at {address}: {failure}")


@contextlib.contextmanager
def _quiet_dask_logs() -> Iterator[None]:
    """distributed's (and tornado's) loggers in this process silenced meanwhile: what they would
    print (a lost scheduler, reconnection attempts, workers that fail to start, each with its
    traceback) reaches the user as one line of ours."""
    manager = logging.Logger.manager
    quiet = [logging.getLogger(n) for n in ("distributed", "tornado")] + [
        lg
        for n, lg in list(manager.loggerDict.items())
        if isinstance(lg, logging.Logger) and n.startswith(("distributed.", "tornado."))
    ]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        if lg.level != logging.NOTSET or lg.name in ("distributed", "tornado"):
            lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(quiet, levels, strict=True):
            lg.setLevel(level)


def _collect_quietly() -> None:
    """Collect garbage now, its __del__ errors unprinted: a half-started Dask Client or cluster
    prints tracebacks when collected (at exit, after our one line)."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda _unraisable: None
    try:
        gc.collect()
    finally:
        sys.unraisablehook = hook


def _check_reachable(address: str, timeout: float) -> None:
    """Fail fast, with one line, unless a Dask scheduler answers at address within timeout.

    A distributed.Client waits forever for the handshake of a port that accepts connections
    but does not speak Dask (e.g. the dashboard's 8787), and one that cannot connect prints
    tracebacks of its own when garbage collected; a bounded `identity` call first avoids both.
    """
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    try:
        scheme, location = parse_address(address)
        get_backend(scheme)
    except ValueError as e:
        raise DistributedError(
            f"cannot reach the Dask scheduler at {address}: {_first_line(e)}"
        ) from None
    if scheme != "tcp":
        return  # tls/ws need the security settings a Client builds; let it try
    try:
        host, port = parse_host_port(location)
    except ValueError as e:
        raise DistributedError(
            f"cannot reach the Dask scheduler at {address}: {_first_line(e)}"
        ) from None
    if not 0 <= port <= 65535:  # the socket layer would wrap it round to another port
        raise DistributedError(
            f"cannot reach the Dask scheduler at {address}: port out of range 0-65535"
        )
    try:  # a refused port or an unknown host fails at once (Dask's connect retries until timeout)
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except TimeoutError:
        raise DistributedError(
            f"cannot reach the Dask scheduler at {address}: no answer within {timeout:g} s"
        ) from None
    except (OSError, ValueError) as e:
        raise DistributedError(
            f"cannot reach the Dask scheduler at {address}: {_first_line(e)}"
        ) from None
    with ThreadPoolExecutor(1, thread_name_prefix="cvcatalog-dask-probe") as probe:
        try:  # in a thread of its own: the caller may be inside an event loop (Jupyter)
            reply = probe.submit(asyncio.run, _identity(address, timeout)).result()
        except TimeoutError:
            raise DistributedError(
                f"cannot reach the Dask scheduler at {address}: no Dask answer within "
                f"{timeout:g} s (a scheduler listens on 8786 by default)"
            ) from None
        except Exception as e:
            raise DistributedError(
                f"cannot reach the Dask scheduler at {address}: {_first_line(e)}"
            ) from None
    kind = reply.get("type") if isinstance(reply, dict) else None
    if kind != "Scheduler":
        raise DistributedError(
            f"cannot reach the Dask scheduler at {address}: it answers as {kind or 'something'} "
            "else, not as a Dask scheduler"
        )


async def _identity(address: str, timeout: float) -> Any:
    from distributed.comm import connect

    async def ask() -> Any:
        comm = await connect(address, timeout=timeout)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    return await asyncio.wait_for(ask(), timeout)


def _first_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror.lower()
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _capacity(client: Any, timeout: float, name: str) -> int:
    """How many conversions may run at once: the cluster's worker threads."""
    nthreads = sum(client.nthreads().values())
    if nthreads:
        return int(nthreads)
    try:
        client.wait_for_workers(1, timeout=timeout)
    except Exception:
        raise DistributedError(
            f"{name} has no workers (waited {timeout:g} s); start some with `dask worker ADDRESS`"
        ) from None
    return max(1, int(sum(client.nthreads().values())))
