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
import gc
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvcatalog.config import MemoryConfig, ValidationConfig
from cvcatalog.exceptions import ConfigError, DistributedError
from cvcatalog.io.duckdb_ext import open_instance
from cvcatalog.io.layout import remove_tree
from cvcatalog.quality.config import QualityConfig
from cvcatalog.schemas import MessageSchema
from cvcatalog.transform import ConvertResult, RawFile, apply_quality, convert_partition

#: how long connecting to a scheduler (and waiting for its first worker) may take
CONNECT_TIMEOUT_SECONDS = 5.0
ENV_SCHEDULER = "DASK_SCHEDULER_ADDRESS"


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
    capacity: int
    name: str
    #: per-conversion memory budget in GB (None: the config's memory.max_usage_gb)
    memory_gb: float | None = None
    #: DuckDB threads per conversion when memory.duckdb_threads is not set (None: DuckDB's own)
    threads: int | None = None

    def submit(self, job: ConvertJob) -> Future[ConvertResult]:
        return self.executor.submit(run_convert_job, job)


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
    """
    memory = memory or MemoryConfig()
    timeout = timeout or CONNECT_TIMEOUT_SECONDS
    say = notify or (lambda _m: None)
    check_options(scheduler, cluster, workers)
    import dask
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        memory_gb: float | None = None
        threads: int | None = None
        if cluster is not None:
            n = workers or max(1, os.cpu_count() or 1)
            memory_gb = memory.max_usage_gb / n
            threads = max(1, (os.cpu_count() or 1) // n)
            # Tasks hold no Dask data, only DuckDB memory that DuckDB bounds itself: no spilling
            # or pausing on Dask's side (a paused worker would stall the ingest); the nanny still
            # restarts a worker that goes past 95 % of its limit.
            with dask.config.set(
                {
                    "distributed.worker.memory.target": False,
                    "distributed.worker.memory.spill": False,
                    "distributed.worker.memory.pause": False,
                }
            ):
                local = LocalCluster(
                    n_workers=n,
                    threads_per_worker=1,
                    processes=True,
                    memory_limit=int(memory_gb * 1e9),
                    dashboard_address="127.0.0.1:0",  # never fight over :8787
                    silence_logs=logging.ERROR,
                )
            stack.callback(local.close)
            client = Client(local, set_as_default=False)
            stack.callback(client.close)
            name = f"dask LocalCluster ({n} workers, {memory_gb:.2f} GB each)"
            say(f"started a Dask LocalCluster of {n} worker processes at {local.scheduler_address}")
        elif isinstance(scheduler, str):
            address = scheduler.strip()
            client = _connect(address, timeout)
            stack.callback(client.close)
            name = f"dask {address}"
        else:
            client = scheduler  # a distributed.Client the caller owns
            owned = getattr(getattr(client, "scheduler", None), "address", None)
            name = f"dask {owned or 'client'}"
        capacity = _capacity(client, timeout, name)
        executor = client.get_executor(pure=False)
        yield ConversionPool(executor, capacity, name, memory_gb, threads)


def check_options(scheduler: Any, cluster: str | None, workers: int | None) -> None:
    """One-line errors for contradictory options, or when dask.distributed is missing."""
    if scheduler is not None and cluster is not None:
        raise ConfigError("give either a Dask scheduler address or cluster='local', not both")
    if cluster is not None and cluster.strip().lower() != "local":
        raise ConfigError(
            f"unknown cluster {cluster!r}: cvcatalog only starts 'local' (a LocalCluster); "
            "for another cluster give its scheduler address (--scheduler tcp://host:8786)"
        )
    if scheduler is None and cluster is None:
        raise ConfigError("no Dask cluster: give a scheduler address or cluster='local'")
    if workers is not None and cluster is None:
        raise ConfigError(
            "workers= sets the size of a LocalCluster (cluster='local'); a cluster reached at "
            "a scheduler address brings its own workers"
        )
    if workers is not None and workers < 1:
        raise ConfigError(f"the number of Dask workers must be at least 1, got {workers}")
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
    quiet = [logging.getLogger(n) for n in ("distributed", "distributed.client", "tornado")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.CRITICAL)
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except Exception as e:
        failure = _first_line(e)
    finally:
        for lg, level in zip(quiet, levels, strict=True):
            lg.setLevel(level)
    # the half-started Client's __del__ would print a traceback at exit: collect it now, quietly
    hook = sys.unraisablehook
    sys.unraisablehook = lambda _unraisable: None
    try:
        gc.collect()
    finally:
        sys.unraisablehook = hook
    raise DistributedError(f"cannot reach the Dask scheduler at {address}: {failure}")


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
    try:  # a refused port or an unknown host fails at once (Dask's connect retries until timeout)
        with socket.create_connection(parse_host_port(location), timeout=timeout):
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
