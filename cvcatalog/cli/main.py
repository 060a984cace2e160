"""The `cvcatalog` command: parse arguments, call the library, report in one clear line on error."""

# No `from __future__ import annotations` here: typer reads every command's annotations each
# time it builds the command line (once a process, once a CliRunner.invoke), and annotations
# kept as strings were compiled and evaluated then, 30-60 ms a build against 12-16 ms.
import contextlib
import functools
import gc
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import duckdb
import typer
from rich.console import Console
from rich.markup import escape

from cvcatalog import __version__, spatial
from cvcatalog.catalog import (
    HEAD_BATCH_ROWS,
    Catalog,
    RemoteCatalog,
    Repaired,
    damaged_file_line,
    default_home,
    source_pair,
)
from cvcatalog.cli.helptext import Commands
from cvcatalog.cli.output import (
    Format,
    ResultStream,
    arrow_rows,
    emit,
    emit_object,
    format_for,
    say,
)
from cvcatalog.cli.progress import ExportBar, RichProgress
from cvcatalog.config import (
    MAX_WORKERS,
    at_least,
    cache_config,
    check_workers,
    env_overrides,
    load_yaml,
    parse_day,
    quality_config,
    timezone_arg,
    trips_config,
    type_of,
    unknown_env,
)
from cvcatalog.datasets import DATASETS, source_filter
from cvcatalog.distributed import check_options, check_scheduler
from cvcatalog.exceptions import (
    CatalogError,
    ConfigError,
    CvCatalogError,
    MissingDataWarning,
    SandboxError,
)
from cvcatalog.io.duckdb_ext import interrupted
from cvcatalog.io.lake import snapshot_runs
from cvcatalog.io.layout import CatalogPaths, check_outputs, file_target, write_atomic
from cvcatalog.io.s3 import Retrier, as_s3_error
from cvcatalog.io.storage import is_remote
from cvcatalog.ops.cache import STATUS_COLUMNS, SUMMARY_COLUMNS, outdated, summarise_status
from cvcatalog.ops.discover import PLAN_COLUMNS, PLAN_FIELDS, human_bytes, plural
from cvcatalog.ops.export import export_format
from cvcatalog.ops.publish import RESULT_COLUMNS
from cvcatalog.ops.remote import read_only_error
from cvcatalog.pipeline.report import Interrupted, NullProgress, Summary, summary_lines
from cvcatalog.quality import coverage as coverage_report
from cvcatalog.quality.report import build_report, render_html, render_png
from cvcatalog.read.experiments import ExperimentConfig
from cvcatalog.read.splits import SPLIT_NAMES
from cvcatalog.sandbox.server import (
    UPLOAD_PURPOSE,
    SandboxServer,
    check_state_folder,
    create_bucket,
    detached_running,
    sandbox_client,
    sandbox_endpoint,
    start_server,
    stop_detached,
    stop_signals,
    upload_file,
    upload_target,
    write_state,
)
from cvcatalog.schemas import SCHEMAS
from cvcatalog.sources.bucket import BUCKET, VALID_TYPES
from cvcatalog.state.db import no_catalog
from cvcatalog.state.eviction import GB
from cvcatalog.state.manifest import (
    RUN_COLUMNS,
    VALIDATION_SUMMARY_COLUMNS,
    summarise_validation,
)
from cvcatalog.state.tables import specs


def _commands(help: str, **options: Any) -> Commands:
    """A command group with click's plain help, which wraps each option's text to the
    terminal (Rich's panels squeezed it into a quarter of an 80-column one and cut it), and
    names each option's value for the user (cli.helptext)."""
    return Commands(help=help, rich_markup_mode=None, **options)


app = _commands(
    "A local analytical catalog of the USDOT ITS CV Pilot sandbox bucket.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
cache_app = _commands("Inspect and manage the local cache.", no_args_is_help=True)
sandbox_app = _commands(
    "A local S3-compatible endpoint with a replica of the bucket.", no_args_is_help=True
)
app.add_typer(cache_app, name="cache")
app.add_typer(sandbox_app, name="sandbox")
report_app = _commands("Reports stored in the catalog.", no_args_is_help=True)
app.add_typer(report_app, name="report")
experiments_app = _commands(
    "Experiments pinned to a snapshot (data.pin / data.snapshot in the YAML).",
    no_args_is_help=True,
)
app.add_typer(experiments_app, name="experiments")


def _print_version(wanted: bool) -> None:
    if wanted:
        python = ".".join(str(n) for n in sys.version_info[:3])
        print(f"cvcatalog {__version__} (DuckDB {duckdb.__version__}, Python {python})")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True,
            help="Print cvcatalog's version, and DuckDB's and Python's, then exit.",
        ),
    ] = False,
) -> None:
    """A local analytical catalog of the USDOT ITS CV Pilot sandbox bucket."""

#: stderr's lines are never wrapped at the console's width (80 without a terminal): a path
#: broken across lines was neither greppable nor copyable ("(to \ndata/.../changes.parquet)")
err = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

_CATALOG_HOME = "[env: CVCATALOG_HOME; default: ./data/catalog]"
#: --catalog of the commands that read: a published catalog on S3 too
CatalogOpt = Annotated[
    str | None,
    typer.Option(
        "--catalog",
        help="Catalog directory, or s3://bucket/prefix of a published catalog (read-only) "
        + _CATALOG_HOME,
    ),
]
#: --catalog of the commands that write the catalog or hand it to DuckDB (refuse s3://)
LocalCatalogOpt = Annotated[
    str | None, typer.Option("--catalog", help="Catalog directory " + _CATALOG_HOME)
]
#: the S3 options of a command that reads a published catalog (--catalog s3://...)
ProfileOpt = Annotated[str | None, typer.Option("--profile", help="AWS profile")]
NoSignOpt = Annotated[
    bool | None, typer.Option("--no-sign-request", help="Anonymous (unsigned) requests")
]
FormatOpt = Annotated[
    Format,
    typer.Option(
        "--format",
        "-f",
        help="Output format; json and csv print only the data on stdout. Times are ISO 8601 "
        "in UTC; a duration is 01:30:00 in a table or csv, ISO 8601 (PT1H30M) in json",
    ),
]
SummaryOpt = Annotated[
    bool, typer.Option("--summary", help="One row a table (or rule), not one a partition")
]
SourceOpt = Annotated[
    str | None, typer.Option("--source", help="wydot | wydot_backup | thea | nycdot")
]
TypeOpt = Annotated[str | None, typer.Option("--type", help="BSM | TIM | SPAT | EVENT")]
StartOpt = Annotated[
    str | None, typer.Option("--start", metavar="DATE", help="First local day, YYYY-MM-DD")
]
EndOpt = Annotated[
    str | None,
    typer.Option("--end", metavar="DATE", help="Last local day (inclusive); default: --start"),
]
DaysBackOpt = Annotated[
    int | None,
    typer.Option("--days-back", metavar="N", help="The last N days up to today in --timezone"),
]
WithinOpt = Annotated[
    str | None,
    typer.Option(
        "--within", metavar="LAT,LON,RADIUS_M", help="Within RADIUS_M metres of a point"
    ),
]
BboxOpt = Annotated[
    str | None,
    typer.Option("--bbox", metavar="LAT_MIN,LON_MIN,LAT_MAX,LON_MAX", help="Inside a box"),
]
CorridorOpt = Annotated[
    str | None,
    typer.Option(
        "--corridor",
        metavar="FILE.geojson,BUFFER_M",
        help="Within BUFFER_M metres of the line in FILE.geojson",
    ),
]
SnapshotOpt = Annotated[
    int | None, typer.Option("--snapshot", help="The catalog as of this snapshot (snapshots)")
]
AsOfOpt = Annotated[
    str | None,
    typer.Option(
        "--as-of", metavar="TIME", help="The catalog as of this time (ISO 8601; UTC if no zone)"
    ),
]


def _area(
    within: str | None, bbox: str | None, corridor: str | None
) -> spatial.SpatialFilter | None:
    """The one area --within, --bbox or --corridor names (at most one), parsed."""
    if sum(a is not None for a in (within, bbox, corridor)) > 1:
        raise ConfigError("give at most one of --within, --bbox, --corridor")
    if within is not None:
        return spatial.parse_within(within)
    if bbox is not None:
        return spatial.parse_bbox(bbox)
    return spatial.parse_corridor_flag(corridor) if corridor is not None else None


def _one_point(snapshot: int | None, as_of: str | None) -> None:
    if snapshot is not None and as_of is not None:
        raise ConfigError("give --snapshot or --as-of, not both")
#: the most rows --max-rows shows: more than any result holds
MAX_ROWS_SHOWN = 2**62


def _rows_shown(limit: int) -> int:
    """--max-rows checked: 0 or more; past any result, all (10**23 was an OverflowError)."""
    at_least("--max-rows", limit, 0)
    return min(limit, MAX_ROWS_SHOWN)

#: commands that cover every source, datasets included (optional, and required: OneSourceOpt)
AnySourceOpt = Annotated[
    str | None, typer.Option("--source", help="wydot | wydot_backup | thea | nycdot | ngsim")
]
OneSourceOpt = Annotated[
    str, typer.Option("--source", help="wydot | wydot_backup | thea | nycdot | ngsim")
]


def _error_line(message: str) -> None:
    """One line on stderr; the message is text, never Rich markup ("cvcatalog[sandbox]")."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def _note(message: str) -> None:
    err.print(f"note: {message}", markup=False, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def _notes_of(kind: type[Warning]) -> Iterator[None]:
    """The library's warnings of this kind, each a note line on stderr once the block is done
    (Python's own print of a warning is two lines naming cvcatalog's file: noise to a user of
    the command); any other warning is shown as Python would have. Shown when the block
    fails too: before its error line, which they may explain (a split of days never ingested)."""
    seen: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", kind)
            yield
    finally:
        for w in seen:
            if issubclass(w.category, kind):
                _note(str(w.message))
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def _env_notes() -> None:
    """Before a command reads its configuration: a note for each CVCATALOG_* variable that
    names no setting (a misspelt CVCATALOG_HOMEE was ignored without a word). Not an error: a
    variable of another version or tool may share the prefix."""
    for line in unknown_env():
        _note(line)


def friendly(fn: F) -> F:
    """Turn domain errors into one line on stderr and exit code 1 (no tracebacks); so too S3,
    network and httpfs errors that escaped a Retrier (:func:`cvcatalog.io.s3.as_s3_error`)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CvCatalogError as e:
            _error_line(str(e))
            raise typer.Exit(1) from None
        except KeyboardInterrupt as e:
            _interrupted(e)
        except (typer.Exit, typer.Abort):
            raise
        except BrokenPipeError:  # the reader went (`| head`): nothing to say, as with SIGPIPE
            with contextlib.suppress(OSError, ValueError):  # (a stdout without a descriptor)
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error
            raise typer.Exit(141) from None
        except Exception as e:
            if interrupted(e):  # Ctrl-C met inside a DuckDB query: the same as anywhere else
                _interrupted(e)
            known = as_s3_error(e)
            if known is not None:
                _error_line(str(known))
                raise typer.Exit(1) from None
            damaged = damaged_file_line(e)  # e.g. met by `cache evict`, not only by a query
            if damaged is not None:
                _error_line(damaged)
                raise typer.Exit(1) from None
            if os.environ.get("CVCATALOG_DEBUG"):
                raise
            _error_line(
                f"unexpected {type(e).__name__}: {e} (set CVCATALOG_DEBUG=1 for a traceback)"
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _interrupted(e: BaseException) -> NoReturn:
    """Ctrl-C's one line and exit code 130 (SIGTERM's: 'terminated', 143); a run (ingest:
    Interrupted) goes on where it stopped when run again, an export or a query only does it
    again."""
    resumes = "; run the same command again to resume" if isinstance(e, Interrupted) else ""
    if _TERMINATED.is_set():
        err.print(f"terminated (SIGTERM){resumes}")
        raise typer.Exit(128 + signal.SIGTERM) from None
    err.print(f"interrupted{resumes}")
    raise typer.Exit(130) from None


#: set when SIGTERM stopped the command (_terminate)
_TERMINATED = threading.Event()


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM (systemd, `docker stop`, `timeout`) stops a command as Ctrl-C does: an ingest
    commits what it converted, records the run interrupted and prints its report. Python's
    default ended the process at once, as a kill -9: no report, the run left 'running'."""
    _TERMINATED.set()
    raise KeyboardInterrupt


def open_catalog(
    catalog: str | Path | None,
    config: Path | None = None,
    *,
    create: bool = False,
    **remote: Any,
) -> Catalog:
    """--catalog, then CVCATALOG_HOME, then the config file's cache.directory, then the default.

    An s3://bucket/prefix (from --catalog or CVCATALOG_HOME) opens a published catalog,
    read-only; remote holds its S3 options (profile, no_sign_request). Only the commands
    that fill a catalog (create: ingest, discover, plan) make a new one: for the others a
    directory without a catalog is a mistyped path, one line.
    """

    def note(m: str) -> None:
        _note(m)

    _env_notes()
    if catalog is not None and not str(catalog).strip():  # it was the current directory
        raise ConfigError("--catalog is empty: give the catalog's directory (or s3:// prefix)")
    home = os.environ.get("CVCATALOG_HOME")
    if catalog is None and is_remote(home):
        catalog = home
    if is_remote(catalog):
        options = {k: v for k, v in remote.items() if v is not None}
        return Catalog(str(catalog).strip(), notify=note, **options)
    # checked as an ingest checks the file; its lock timeout (or CVCATALOG_CACHE__'s) bounds
    # every command's wait, not only an ingest's (a query or compact waited 60 s whatever it said)
    settings = cache_config(config)
    if (
        catalog is None
        and not home
        and config is not None
        and "directory" in settings.model_fields_set
    ):
        catalog = settings.directory
    root = Path(catalog) if catalog is not None else default_home()
    paths = CatalogPaths(root)
    if not create and not (paths.db.exists() or paths.legacy_db.exists()):
        raise no_catalog(root)
    return Catalog(root, lock_timeout=settings.lock_timeout_seconds, notify=note)


# -- ingest ---------------------------------------------------------------------------------
#: the flags of the Dask options, as messages of cvcatalog.distributed.check_options name them
DASK_FLAGS = {"scheduler": "--scheduler", "cluster": "--cluster", "workers": "--workers"}


@app.command()
@friendly
def ingest(
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="wydot | wydot_backup | thea | nycdot | ngsim (required unless in --config)",
        ),
    ] = None,
    message_type: Annotated[
        str | None,
        typer.Option(
            "--type", help="BSM | TIM | SPAT | EVENT (required unless in --config; nycdot: EVENT)"
        ),
    ] = None,
    start: StartOpt = None,
    end: EndOpt = None,
    days_back: DaysBackOpt = None,
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone", help="Zone of --start/--end, e.g. America/Denver [default: UTC]"
        ),
    ] = None,
    force_refresh: Annotated[
        bool, typer.Option("--force-refresh", help="Re-fetch days already cached")
    ] = False,
    check_changes: Annotated[
        bool | None,
        typer.Option(
            "--check-changes/--no-check-changes",
            help="List cached days again (LIST only) and re-ingest only objects added or changed "
            "since; unchanged days are not touched [config: cache.check_changes, default off]",
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Data source YAML (configs/data_sources/*.yml)")
    ] = None,
    catalog: LocalCatalogOpt = None,
    profile: Annotated[str | None, typer.Option("--profile", help="AWS profile")] = None,
    no_sign_request: Annotated[
        bool | None, typer.Option("--no-sign-request", help="Anonymous (unsigned) requests")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help=f"Concurrent downloads (1-{MAX_WORKERS}); with --cluster local: the number of Dask worker "
            "processes",
        ),
    ] = None,
    rate_limit: Annotated[
        float | None, typer.Option("--rate-limit", help="S3 requests per second, 0 = unlimited")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            metavar="ADDRESS",
            help="Convert days on the dask.distributed cluster at this address, e.g. "
            "tcp://host:8786; its workers must see this machine's filesystem "
            "[env: DASK_SCHEDULER_ADDRESS]",
        ),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="'local': convert days on a Dask LocalCluster of --workers processes, started "
            "and closed by this command (DASK_SCHEDULER_ADDRESS is then ignored)",
        ),
    ] = None,
    fmt: FormatOpt = Format.table,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bars on stderr")
    ] = True,
    path: Annotated[
        list[str] | None,
        typer.Option(
            "--path",
            help="--source ngsim: the trajectory CSV (file, https:// URL or s3://bucket/key); "
            "repeatable",
        ),
    ] = None,
    location: Annotated[
        str | None,
        typer.Option(
            "--location",
            help="--source ngsim: keep only this site (us-101 | i-80 | lankershim | peachtree)",
        ),
    ] = None,
) -> None:
    """Download and convert a date range of one source and message type, or load a dataset
    (--source ngsim --path FILE|URL|s3://...). Every source reads --config the same way."""
    check_workers("--workers", workers)  # one line for every source and runner
    _check_rate_limit(rate_limit)
    if source is None and config is not None:  # the file may name the source (ngsim too)
        named = load_yaml(config).get("source")
        source = str(named) if isinstance(named, str) and named.lower() in DATASETS else None
    if source is not None and source.strip().lower() in DATASETS:
        flags = {
            "--start": start,
            "--end": end,
            "--days-back": days_back,
            "--timezone": timezone,
            "--scheduler": scheduler,
            "--cluster": cluster,
            "--force-refresh": force_refresh or None,
            # a dataset checks every input each run (an unchanged one costs a HEAD/stat): the
            # flag either way was accepted and did nothing
            "--check-changes" if check_changes else "--no-check-changes": check_changes,
        }
        _ingest_dataset(
            source.strip().lower(),
            message_type,
            path or [],
            location,
            [k for k, v in flags.items() if v is not None],
            catalog=catalog,
            profile=profile,
            no_sign_request=no_sign_request,
            workers=workers,
            rate_limit=rate_limit,
            fmt=fmt,
            progress=progress,
            config=config,
        )
        return
    if path or location:
        raise ConfigError("--path and --location are for --source ngsim only")
    _check_days(start, end, days_back, config)
    start_day, end_day = _day_flags(start, end, days_back, timezone)
    src, mt = _source_and_type(source, message_type, config, bucket_only=False)
    source_filter(src, mt, required=True)  # an unknown source is named against every one (ngsim)
    if scheduler is None and cluster is None:
        scheduler = os.environ.get("DASK_SCHEDULER_ADDRESS", "").strip() or None
    dask_workers = workers if cluster is not None else None
    if scheduler is not None or cluster is not None:  # fail before any progress bar is drawn
        check_options(scheduler, cluster, dask_workers, names=DASK_FLAGS)
        if scheduler is not None:
            check_scheduler(scheduler)
    cat = open_catalog(catalog, config, create=True)
    if isinstance(cat, RemoteCatalog):  # refused before any progress bar is drawn
        raise read_only_error(cat.location, "ingest into it")
    with _report_if_stopped(fmt), _progress(progress and fmt is Format.table) as bar:
        summary = cat.ingest(
            src,
            mt,
            start_day,
            end_day,
            days_back=days_back,
            timezone=timezone,
            config=config,
            force_refresh=force_refresh,
            check_changes=check_changes,
            progress=bar,
            profile=profile,
            no_sign_request=no_sign_request,
            max_workers=workers if cluster is None else None,
            rate_limit=rate_limit,
            scheduler=scheduler,
            cluster=cluster,
            workers=dask_workers,
        )
        _fail_if_nothing_ran(summary, fmt)  # in the block: the bars go with the error
    _print_summary(summary, fmt)
    if not summary.ok:
        raise typer.Exit(1)


def _ingest_dataset(
    name: str,
    message_type: str | None,
    paths: list[str],
    location: str | None,
    unsupported: list[str],
    *,
    catalog: str | None,
    profile: str | None,
    no_sign_request: bool | None,
    workers: int | None,
    rate_limit: float | None,
    fmt: Format,
    progress: bool,
    config: Path | None = None,
) -> None:
    """A dataset load (ingest_dataset): --config, CVCATALOG_* and the flags read as a CV
    ingest reads them (catalog directory, cache.max_size_gb, download:, quality:, ...)."""
    ds = DATASETS[name]
    if message_type is not None and message_type.strip().upper() != ds.message_type:
        raise ConfigError(f"--source {name} has one type, {ds.message_type}; omit --type")
    if unsupported:
        raise ConfigError(f"--source {name} does not take {', '.join(unsupported)}")
    if not paths:
        raise ConfigError(f"--source {name} needs --path FILE | https://URL | s3://bucket/key")
    cat = open_catalog(catalog, config, create=True)
    if isinstance(cat, RemoteCatalog):  # refused before any progress bar is drawn
        raise read_only_error(cat.location, "ingest into it")
    with (
        _report_if_stopped(fmt),  # outside the bars: printed once they are gone
        _progress(progress and fmt is Format.table, unit="units") as bar,
    ):
        summary = cat.ingest_dataset(
            name,
            paths,
            location=location,
            workers=workers,
            progress=bar,
            profile=profile,
            no_sign_request=no_sign_request,
            rate_limit=rate_limit,
            config=config,
        )
        _fail_if_nothing_ran(summary, fmt)
    _print_summary(summary, fmt)
    if not summary.ok:
        raise typer.Exit(1)


class _NotesOnly(NullProgress):
    """No bars, but waits and other notes still reach stderr (e.g. with --no-progress)."""

    def note(self, message: str) -> None:
        _note(message)


@contextlib.contextmanager
def _progress(enabled: bool, unit: str = "days") -> Iterator[Any]:
    """The one progress protocol (cvcatalog.pipeline.report.Progress) on stderr."""
    if not enabled:
        yield _NotesOnly()
        return
    with RichProgress(err, unit=unit) as bar:
        yield bar


@contextlib.contextmanager
def _report_if_stopped(fmt: Format) -> Iterator[None]:
    """Ctrl-C, or an error that ended the run after some of its units: the run's report of
    what it did first (status interrupted or failed), then friendly()'s one line and exit code
    130 or 1."""
    try:
        yield
    except Interrupted as e:
        with contextlib.suppress(CvCatalogError):  # a run stopped before any unit: no report
            _print_summary(e.summary, fmt)
        raise
    except CvCatalogError as e:
        if isinstance(e.run_summary, Summary):
            _print_summary(e.run_summary, fmt)
        raise


def _fail_if_nothing_ran(s: Summary, fmt: Format) -> None:
    """The run stopped before any unit (its plan failed: an input or the endpoint
    unreachable): in the table format that error is the whole report, one line."""
    if fmt is Format.table and s.run_errors and not s.outcomes:
        raise CvCatalogError("; ".join(s.run_errors))


def _print_summary(s: Summary, fmt: Format) -> None:
    """One report for every source: --format json|csv emits Summary.as_dict, the table format
    prints its headline and one line per failure."""
    d = s.as_dict()
    _fail_if_nothing_ran(s, fmt)
    if fmt is not Format.table:
        columns = [k for k in d if k not in ("days", "errors")]
        emit([d], fmt, columns=columns + (["errors"] if "errors" in d else []))
        return
    for line in summary_lines(s):
        print(line)


# -- query ----------------------------------------------------------------------------------
@app.command()
@friendly
def query(
    sql: Annotated[
        str, typer.Argument(help="SQL over the catalog views, e.g. select count(*) from wydot_bsm")
    ],
    fmt: FormatOpt = Format.table,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the result to this file (a .csv, .json or .parquet name: that format; "
            "another name: --format's, every row)",
        ),
    ] = None,
    catalog: CatalogOpt = None,
    profile: Annotated[
        str | None, typer.Option("--profile", help="AWS profile (for an s3:// catalog)")
    ] = None,
    no_sign_request: Annotated[
        bool | None,
        typer.Option("--no-sign-request", help="Anonymous requests (for an s3:// catalog)"),
    ] = None,
    limit: Annotated[
        int, typer.Option("--max-rows", help="Table format shows at most this many rows")
    ] = 1000,
    read_only: Annotated[
        bool,
        typer.Option(
            "--read-only/--read-write",
            help="Only SELECT/EXPLAIN (default); --read-write allows temporary tables and COPY "
            "to files outside the catalog, with the catalog attached READ_ONLY (a published "
            "catalog: temporary tables only)",
        ),
    ] = True,
    snapshot: SnapshotOpt = None,
    as_of: AsOfOpt = None,
) -> None:
    """Run SQL against the catalog (read-only: its data is never modified; a catalog written
    by cvcatalog 0.1 is migrated first, as by any command); with --snapshot or --as-of,
    against the catalog as it was then (time travel)."""
    _one_point(snapshot, as_of)
    limit = _rows_shown(limit)
    named = format_for(fmt, output)  # q.csv: csv; q.parquet: Parquet
    fmt = Format(named) if named in Format.__members__ else fmt
    check_outputs({"--output": output})  # before the query runs
    cat = open_catalog(catalog, profile=profile, no_sign_request=no_sign_request)
    if fmt is not Format.table or output is not None:  # every row, as it comes: a batch held
        # (a table in a file: every row, aligned; its cells spilled while their widths are
        # measured; --max-rows cuts what a terminal shows, never a file)
        with ResultStream(named if named == "parquet" else fmt.value, output) as out:
            out.finish(
                cat.query_batches(
                    sql, out.write, read_only=read_only, snapshot=snapshot, as_of=as_of
                )
            )
        return
    # the rows shown, not the whole result, held
    table, total = cat.query_head(sql, limit, read_only=read_only, snapshot=snapshot, as_of=as_of)
    if table.num_columns == 0:
        return  # a statement with no result (--read-write COPY ... TO): it printed a blank line
    rows, columns = arrow_rows(table.slice(0, limit))
    emit(rows, fmt, columns=columns)  # (`select 1 as a, 2 as a`: a and a_1)
    if total > limit:
        many = f"{total:,} row" + ("" if total == 1 else "s")
        err.print(f"({many}; showing {limit}; use --format csv/json or --output)")


@app.command()
@friendly
def snapshots(
    source: AnySourceOpt = None,
    message_type: TypeOpt = None,
    limit: Annotated[
        int | None, typer.Option("--limit", metavar="N", help="The newest N only")
    ] = None,
    catalog: CatalogOpt = None,
    profile: ProfileOpt = None,
    no_sign_request: NoSignOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """The catalog's kept snapshots, newest first: id, commit time (UTC), run, and the rows
    each added and removed per table. Query one with `query --snapshot ID`."""
    cat = open_catalog(catalog, profile=profile, no_sign_request=no_sign_request)
    source, message_type = source and source.lower(), message_type and message_type.upper()
    rows = cat.snapshots(source, message_type, limit)
    empty = f"no kept snapshots{_of(source, message_type)}"
    if limit == 0:  # asked for none: not "no kept snapshots", which would be false
        empty = "--limit 0: no snapshot listed"
    if fmt is Format.json:  # with the rows added and removed per table
        emit(rows, fmt, empty=empty)
        return
    emit(
        rows,
        fmt,
        columns=[
            "snapshot_id",
            "committed_at",
            "run_id",
            "message",
            "tables",
            "rows_added",
            "rows_removed",
        ],
        empty=empty,
    )


def _of(source: str | None, message_type: str | None = None) -> str:
    """What a listing was filtered to, for its line when it lists nothing: ' of source
    thea', ' of type TIM', ' of thea/BSM', or nothing."""
    if source and message_type:
        return f" of {source}/{message_type}"
    if source:
        return f" of source {source}"
    return f" of type {message_type}" if message_type else ""


#: what `changes --format table` shows of a row (the other formats give every column)
CHANGE_COLUMNS = ["change_type", "snapshot_id", "source_key", "date", "generated_at",
                  "timestamp", "vehicle_id", "latitude", "longitude"]  # fmt: skip


@app.command()
@friendly
def changes(
    source: OneSourceOpt,
    since: Annotated[
        int, typer.Option("--since", metavar="SNAPSHOT", help="Changes after this snapshot")
    ],
    message_type: TypeOpt = None,
    until: Annotated[
        int | None,
        typer.Option(
            "--until", metavar="SNAPSHOT", help="Up to this snapshot [default: the current]"
        ),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="table | json | csv | parquet (with --output)")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the rows to this file")
    ] = None,
    limit: Annotated[
        int, typer.Option("--max-rows", help="Table format shows at most this many rows")
    ] = 1000,
    catalog: CatalogOpt = None,
    profile: ProfileOpt = None,
    no_sign_request: NoSignOpt = None,
) -> None:
    """Rows inserted and deleted between two snapshots (see `snapshots`): change_type,
    the snapshot of the change, then the row. Rows a rewrite put back unchanged are not
    listed: a day re-ingested because one object changed shows only that object's rows."""
    if fmt not in ("table", "json", "csv", "parquet"):
        raise ConfigError(f"--format {fmt!r}: table, json, csv or parquet")
    fmt = format_for(fmt, output)
    if fmt == "parquet" and output is None:
        raise ConfigError("--format parquet needs --output FILE")
    limit = _rows_shown(limit)
    check_outputs({"--output": output})
    cat = open_catalog(catalog, profile=profile, no_sign_request=no_sign_request)
    full = table = cat.changes(
        source.lower(), message_type and message_type.upper(), since, until, output="arrow"
    )
    if fmt != "table":  # every column, a batch at a time (Python values of every row at once
        # held several times the table's memory)
        with ResultStream(fmt, output) as out:
            for batch in table.to_batches(max_chunksize=HEAD_BATCH_ROWS):
                out.write(batch)
            out.finish(table.schema)
    else:
        if output is None:  # the row's identity
            table = table.slice(0, limit)
        rows, columns = arrow_rows(table)
        if output is None:
            columns = [c for c in CHANGE_COLUMNS if c in columns] or columns[:8]
        emit(rows, Format(fmt), output, columns=columns)
    # stderr in every format (stdout may be the rows); the counts of every row, not the shown
    counts = full.group_by("change_type").aggregate([("change_type", "count")]).to_pylist()
    n = {r["change_type"]: r["change_type_count"] for r in counts}
    err.print(
        f"{n.get('insert', 0):,} inserted, {n.get('delete', 0):,} deleted after snapshot "
        f"{since}"
        + (f" up to snapshot {until}" if until is not None else "")
        + (f" (to {output})" if output is not None else ""),
        highlight=False,
    )


@app.command()
@friendly
def shell(catalog: LocalCatalogOpt = None) -> None:
    """Open the DuckDB CLI with the catalog attached read-only as `cv` (tables and views by
    name: select count(*) from wydot_bsm). It never blocks an ingest. A local catalog only:
    a published one's stored views are its publisher's SQL, which only cvcatalog's own
    reader (`query --catalog s3://...`) keeps from running."""
    cat = _local_catalog(catalog, "`cvcatalog shell` opens a local catalog")
    exe = shutil.which("duckdb", path=str(Path(sys.executable).parent)) or shutil.which("duckdb")
    if exe is None:
        raise CatalogError("the DuckDB CLI is not installed (pip install duckdb-cli==1.5.5)")
    # The statements may hold an S3 secret: they go through a file only this user can read
    # (never argv, which every user sees), removed when the shell ends.
    with tempfile.TemporaryDirectory(prefix="cvcatalog-shell-") as tmp:
        rc, reads = Path(tmp) / "init.sql", Path(tmp) / "reads"
        init = cat.shell_sql(read_log=reads)  # (the files the session opens: the LRU clock)
        err.print(f"catalog {cat.paths.root} attached read-only as cv", highlight=False)
        fd = os.open(rc, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            # silent: CREATE SECRET (a lake on S3) prints a "Success true" table; errors
            # still reach stderr. `.output` alone gives the user's statements stdout again.
            f.write(f".output {os.devnull}\n{init}\n.output\n")
        # Ctrl-C belongs to the DuckDB CLI (it cancels its query), not to this process
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            code = subprocess.run(_shell_command(exe, rc), check=False).returncode
        finally:
            signal.signal(signal.SIGINT, previous)
        # (an LRU clock is not worth failing the shell's exit for)
        with contextlib.suppress(CvCatalogError, duckdb.Error, OSError):
            cat.record_logged_reads(reads)
    raise typer.Exit(code)


def _shell_command(exe: str, init: Path) -> list[str]:
    """The DuckDB CLI reading init first. Not `-init FILE`, which prints "-- Loading resources
    from FILE" on stderr, in colour even where stderr is not a terminal (a pipe, a log):
    -no-init (nor ~/.duckdbrc, as -init FILE skips it too) and the file read by `.read`,
    silently. A path .read cannot quote (a ' in TMPDIR) falls back to -init."""
    if "'" in str(init):
        return [exe, "-init", str(init)]
    return [exe, "-no-init", "-cmd", f".read '{init}'"]


def _local_catalog(catalog: str | None, why: str) -> Catalog:
    """A local catalog for a command that hands it to DuckDB itself (shell, sql session): a
    published one's stored views are its publisher's SQL, which only cvcatalog's own reader
    (`query --catalog s3://...`) keeps from running."""
    if is_remote(catalog) or (catalog is None and is_remote(os.environ.get("CVCATALOG_HOME"))):
        raise CatalogError(
            f"{why}; query a published one with `cvcatalog query --catalog s3://...`"
        )
    return open_catalog(catalog)


@app.command()
@friendly
def migrate(catalog: LocalCatalogOpt = None) -> None:
    """Convert a catalog written by cvcatalog 0.1 (catalog.duckdb) to the DuckLake format in
    place; nothing is downloaded again (any command, or the Python API, that first opens such
    a catalog does the same: reads too)."""
    cat = open_catalog(catalog)
    if cat.migrate():
        print(f"migrated {cat.paths.root} to DuckLake ({cat.paths.db.name})")
    else:
        print(f"{cat.paths.root} is already a DuckLake catalog")


@app.command()
@friendly
def views(
    catalog: CatalogOpt = None,
    profile: ProfileOpt = None,
    no_sign_request: NoSignOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """List the tables and views of the catalog: name, and kind (a table holds one source and
    type's data; a view is defined over the tables)."""
    cat = open_catalog(catalog, profile=profile, no_sign_request=no_sign_request)
    emit(cat.relations(), fmt, columns=["name", "kind"])  # (a header when empty)


# -- cache ----------------------------------------------------------------------------------
@cache_app.command("status")
@friendly
def cache_status(
    source: AnySourceOpt = None,
    message_type: TypeOpt = None,
    catalog: CatalogOpt = None,
    profile: ProfileOpt = None,
    no_sign_request: NoSignOpt = None,
    fmt: FormatOpt = Format.table,
    summary: SummaryOpt = False,
) -> None:
    """Partitions known to the catalog: status, rows, bytes, LRU time; the table's last line
    also counts the files only older snapshots still show (kept for time travel or a pin,
    counted by eviction). --summary: one row a table instead of one a partition."""
    cat = open_catalog(catalog, profile=profile, no_sign_request=no_sign_request)
    source, message_type = source and source.lower(), message_type and message_type.upper()
    rows = cat.status(source, message_type)
    if summary:
        emit(summarise_status(rows), fmt, columns=list(SUMMARY_COLUMNS))
    else:
        cols = [
            "partition",
            "status",
            "rows",
            "quarantined",
            "parquet_bytes",
            "source_objects",
            "schema_versions",
            "last_accessed",
            "error",
        ]
        emit(rows, fmt, columns=cols if fmt is Format.table else None if rows else STATUS_COLUMNS)
    done = [r for r in rows if r["status"] == "complete"]
    total = sum(r["parquet_bytes"] for r in done)
    held = cat.older_snapshot_bytes(source, message_type)
    say(
        f"{len(rows)} partitions ({len(done)} complete), {total / 1e6:,.1f} MB Parquet"
        + (f" + {held / 1e6:,.1f} MB held for older snapshots" if held else "")
        + f", catalog {getattr(cat, 'url', cat.paths.root)}",
        fmt,
    )
    stale = sum(1 for r in done if outdated(r))
    if stale:  # their rows are not shown: cache status said complete and nothing else
        say(
            f"{plural(stale, 'complete partition')} of an older canonical version: not "
            "shown until `cvcatalog ingest` of their days converts them again",
            fmt,
        )


@cache_app.command("clear")
@friendly
def cache_clear(
    source: AnySourceOpt = None,
    message_type: TypeOpt = None,
    catalog: LocalCatalogOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
) -> None:
    """Delete cached partitions (all, one source, one source and type, or with --type alone
    that type of every source)."""
    source, message_type = source_filter(source, message_type)  # checked before asking
    what = "/".join(x for x in (source, message_type) if x) or "everything"
    if not yes:
        if not sys.stdin.isatty():
            raise ConfigError(f"cache clear deletes {what}: give --yes (no terminal to ask on)")
        typer.confirm(f"delete cached {what}?", abort=True)
    cat = open_catalog(catalog)
    n, freed = cat.clear(source, message_type)
    # the bytes that went, those of the files only older snapshots showed included (clearing
    # expires them), not those a pin keeps; as `cache evict` says it
    print(
        f"cleared {plural(n, 'partition')} of {what}; freed {human_bytes(freed)}, "
        f"the catalog keeps {human_bytes(cat.size_bytes())}"
    )
    _pins_held(cat)


def _pins_held(cat: Catalog) -> None:
    """What pinned experiments keep on disk after a clear or an eviction: per pin, the part
    only it keeps (what unpinning it frees) when other pins share its files, and the total
    once when there are several."""
    rows, total = cat.pins_held()
    held = [p for p in rows if p["held_bytes"]]
    for p in held:
        shared = p["held_bytes"] - p["held_alone_bytes"]
        alone = f"; {human_bytes(p['held_alone_bytes'])} of it only this pin keeps" if shared else ""
        print(
            f"  kept for pinned experiment {p['name']} (snapshot {p['snapshot_id']}): "
            f"{human_bytes(p['held_bytes'])}{alone} (cvcatalog experiments unpin {p['name']})"
        )
    if len(held) > 1:
        print(f"  kept for the {len(held)} pinned experiments in all: "
              f"{human_bytes(total)}")  # fmt: skip


#: the evicted partitions and inputs `cache evict` names; the others it counts
EVICT_NAMED = 10


@cache_app.command("evict")
@friendly
def cache_evict(
    max_size_gb: Annotated[
        float | None,
        typer.Option(
            "--max-size-gb",
            metavar="GB",
            help="Target size [default: cache.max_size_gb of --config, or 50]",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="A YAML whose cache: section gives the directory and limit"),
    ] = None,
    catalog: LocalCatalogOpt = None,
) -> None:
    """Evict least-recently-used partitions until the cache fits."""
    limit = max_size_gb if max_size_gb is not None else cache_config(config).max_size_gb
    cat = open_catalog(catalog, config)
    if isinstance(cat, RemoteCatalog):  # refused before its database is fetched to be measured
        raise read_only_error(cat.location, "evict partitions")
    before = cat.size_bytes()
    gone = cat.evict(limit)
    after = cat.size_bytes()
    inputs = sum(1 for g in gone if ":" in g.split("/")[0])  # '<dataset>:<uri>'
    what = plural(len(gone) - inputs, "partition") + (
        f" and {plural(inputs, 'dataset input')}" if inputs else ""
    )
    named = ", ".join(gone[:EVICT_NAMED])  # a year of days evicted was one 18 KB line
    if len(gone) > EVICT_NAMED:
        named += f", and {len(gone) - EVICT_NAMED:,} more (`cache status` lists what is kept)"
    print(f"evicted {what}" + (f": {named}" if gone else ""))
    # an eviction first expires the older snapshots (their files count too): it can free
    # bytes without evicting a partition
    print(
        f"freed {human_bytes(max(0, before - after))}; the catalog keeps {human_bytes(after)} "
        # the limit in the sizes' units too: max_size_gb counts 1024**3 bytes a GB, and
        # "keeps 10.7 MB (limit 0.01 GB)" read as over it
        f"(limit {limit:g} GiB = {human_bytes(limit * GB)})"
    )
    _pins_held(cat)
    if after > limit * GB:  # what else it could not drop, and why
        for label, nbytes in cat.never_evicted():
            print(
                f"  kept: {label} ({human_bytes(nbytes)}): its file changed or went since it "
                "was loaded, so it could not be loaded again"
            )
    for name in gone:  # a dataset input, '<dataset>:<uri>': how to load it again
        dataset, sep, uri = name.partition(":")
        if sep and "/" not in dataset:
            uri, _, scope = uri.partition(" [")  # a filtered load: ' [location=i-80]'
            extra = f" --{scope.rstrip(']').replace('=', ' ', 1)}" if scope else ""
            print(f"  load again: cvcatalog ingest --source {dataset} --path {uri}{extra}")


@cache_app.command("verify")
@friendly
def cache_verify(
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Hide damaged partitions, delete orphans and re-fetch; restore files only "
            "older snapshots show from a file with the same bytes",
        ),
    ] = False,
    catalog: LocalCatalogOpt = None,
    fmt: FormatOpt = Format.table,
    profile: ProfileOpt = None,
    no_sign_request: NoSignOpt = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="The data-source YAML the repair's fetches read, as ingest does "
            "(download settings, cache.max_size_gb kept at their end)",
        ),
    ] = None,
) -> None:
    """Re-hash every file of the catalog against its recorded SHA-256: the current ones, and
    those kept for older snapshots (time travel, pins)."""
    cat = open_catalog(catalog, config)
    report = cat.verify()
    emit(report.rows(), fmt, columns=["problem", "path"])
    say(
        f"{report.checked} files checked: {report.ok} ok, {len(report.mismatched)} mismatched, "
        f"{len(report.missing)} missing, {len(report.orphans)} orphans",
        fmt,
    )
    if report.clean:
        return
    if report.behind is not None:  # its "orphans" are the files of the copy that wrote last
        raise CatalogError(report.behind)
    if not repair:
        say("`cvcatalog cache verify --repair` mends what it can (re-fetching damaged days)", fmt)
        raise typer.Exit(1)

    def show(r: Repaired) -> None:
        if r.line is not None:  # a table rebuilt, a kept file restored, or why not
            say(r.line, fmt)
            return
        if r.failed:  # why, not a re-fetch of 0 rows
            say(f"could not re-fetch {r.what}: {'; '.join(r.errors) or 'failed'}", fmt)
            return
        units = f" ({r.units} units)" if r.units is not None else ""
        say(f"re-fetched {r.what}{units}: {r.rows:,} rows", fmt)

    done = cat.repair(
        report, profile=profile, no_sign_request=no_sign_request, on_done=show, config=config
    )
    failures = sum(r.failed for r in done)
    if failures:
        raise typer.Exit(1)


def _day_flags(
    start: str | None, end: str | None, days_back: int | None, timezone: str | None
) -> tuple[date | None, date | None]:
    """--start, --end, --days-back and --timezone checked as flags (ingest, plan): a bad one is
    a line naming it, not a config error blamed on the --config file; the days parsed."""
    if end is not None and start is None:  # the flags' days replace the config's whole
        raise ConfigError("--end needs --start (or give --days-back)")
    if days_back is not None:
        at_least("--days-back", days_back, 1)
    if timezone is not None:
        timezone_arg(timezone)
    return (
        parse_day(start, "--start") if start is not None else None,
        parse_day(end, "--end") if end is not None else None,
    )


def _check_rate_limit(rate_limit: float | None) -> None:
    """--rate-limit's one check and line (ingest, discover, plan)."""
    if rate_limit is not None:
        at_least("--rate-limit", rate_limit, 0)


def _source_and_type(
    source: str | None, message_type: str | None, config: Path | None, *, bucket_only: bool
) -> tuple[str, str]:
    """--source/--type, falling back on the ones a --config file names; a source of one type
    (nycdot) needs no --type, as in `schema` and `changes` (`ingest --source nycdot` said
    "give --source and --type" to a user who had given the source)."""
    data = load_yaml(config) if config else {}
    src = source or data.get("source")
    mt = message_type or data.get("message_type")
    if not src and not mt:
        raise ConfigError("give --source and --type (or a --config that names them)")
    if not src:
        raise ConfigError("give --source (or a --config that names it)")
    known = str(src).strip().lower()
    if known in VALID_TYPES:
        return str(src), str(mt) if mt else _type_flag(known, None)
    source_filter(str(src), None, required=True, bucket_only=bucket_only)  # every command's line
    if not mt:  # a dataset named by a --config (ingest's --source ngsim is its own path)
        raise ConfigError("give --type (or a --config that names it)")
    return str(src), str(mt)


def _type_flag(source: str, message_type: str | None) -> str:
    """--type, or the only type of a CV source (known, lower case) that has one; else the
    line naming the types --type can be."""
    try:
        return type_of(source, message_type)
    except ConfigError:
        types = ", ".join(VALID_TYPES[source])
        raise ConfigError(f"--type is needed for --source {source} ({types})") from None


@app.command()
@friendly
def schema(
    source: OneSourceOpt,
    message_type: Annotated[
        str | None,
        typer.Option("--type", help="BSM | TIM | SPAT | EVENT (required but for --source ngsim)"),
    ] = None,
    socrata: Annotated[
        bool, typer.Option("--socrata", help="The data.transportation.gov view")
    ] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Columns and types of a (source, type) view, from the canonical schema registry (a
    dataset's, NGSIM's: its table's)."""
    ds = DATASETS.get(source.strip().lower())
    if ds is not None:  # (it said "unknown source 'ngsim'", which every other command takes)
        if message_type is not None and message_type.strip().upper() != ds.message_type:
            raise ConfigError(f"{ds.name} has one type, {ds.message_type}, not {message_type!r}")
        if socrata:
            raise ConfigError(f"{ds.name} has no data.transportation.gov (socrata) view")
        table = specs()[ds.view_name].columns
        emit([{"column": c, "type": t} for c, t in table], fmt, title=ds.view_name)
        return
    src, _ = source_filter(source, None, required=True)
    assert src is not None
    message_type = _type_flag(src, message_type)  # nycdot's only one, or a line of them
    s = SCHEMAS.get(source_pair(source, message_type))
    if s is None:
        raise CvCatalogError(f"{source}/{message_type} has no schema in this cvcatalog version")
    cols = s.socrata_columns if socrata else s.view_columns
    emit(
        [{"column": c, "type": t} for c, t in cols],
        fmt,
        title=f"{s.socrata_view_name if socrata else s.view_name} (canonical v{s.canonical_version})",
    )


@app.command("compact")
@friendly
def compact_cmd(
    source: Annotated[
        str | None,
        typer.Option(
            "--source", help="wydot | wydot_backup | thea | nycdot | ngsim [default: all]"
        ),
    ] = None,
    message_type: TypeOpt = None,
    rows_per_file: Annotated[
        int,
        typer.Option(
            "--rows-per-file",
            metavar="N",
            help="Rows in one merged Parquet file, about: files end on a row group (at least "
            "4,096 rows)",
        ),
    ] = 2_000_000,
    catalog: LocalCatalogOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Merge partitions written as many small Parquet files into few well-sized files
    (CV Pilot days and dataset partitions such as NGSIM's location/date); the replaced files
    stay for time travel until their snapshots expire."""
    at_least("--rows-per-file", rows_per_file, 1)
    cat = open_catalog(catalog)
    done = cat.compact(
        source and source.lower(), message_type and message_type.upper(), rows_per_file
    )
    emit(
        [r.__dict__ for r in done],
        fmt,
        columns=["partition", "files_before", "files_after", "rows", "bytes_before", "bytes_after"],
    )
    say(f"compacted {len(done)} partitions", fmt)


# -- reports --------------------------------------------------------------------------------
@report_app.command("validation")
@friendly
def report_validation(
    run_id: Annotated[
        str | None,
        typer.Option("--run", metavar="RUN_ID", help="Ingest run id [default: the latest]"),
    ] = None,
    source: AnySourceOpt = None,
    message_type: TypeOpt = None,
    catalog: CatalogOpt = None,
    profile: ProfileOpt = None,
    no_sign_request: NoSignOpt = None,
    fmt: FormatOpt = Format.table,
    summary: SummaryOpt = False,
) -> None:
    """Quarantined records and kept warnings, per rule and partition, of one ingest run
    (--summary: per rule, over the partitions)."""
    cat = open_catalog(catalog, profile=profile, no_sign_request=no_sign_request)
    rows = cat.validation_report(
        run_id, source and source.lower(), message_type and message_type.upper()
    )
    if summary:
        emit(summarise_validation(rows), fmt, columns=list(VALIDATION_SUMMARY_COLUMNS))
    else:
        emit(rows, fmt, columns=["run_id", "partition", "date", "kind", "rule", "count"])
    total = sum(r["count"] for r in rows if r["kind"] == "quarantine")
    ran = rows[0]["run_id"] if rows else run_id  # a run asked for that quarantined nothing
    say(
        f"{total} quarantined"
        + (f" in run {ran}" if ran else ": no run quarantined a record or kept a warning"),
        fmt,
    )
    unknown = unknown_version_rows(rows)
    if unknown:
        say(
            "rows of unknown schema versions (parsed, kept): "
            + ", ".join(f"v{v}: {n}" for v, n in unknown.items()),
            fmt,
        )


#: the row warning of a record whose metadata.schemaVersion the schema does not know
UNKNOWN_VERSION_RULE = "unknown_schema_version_"


def unknown_version_rows(rows: list[dict[str, Any]]) -> dict[int, int]:
    """Rows per unknown schema version, from `report validation` rows (version order)."""
    out: dict[int, int] = {}
    for r in rows:
        rule = str(r["rule"])
        if r["kind"] == "warning" and rule.startswith(UNKNOWN_VERSION_RULE):
            tail = rule[len(UNKNOWN_VERSION_RULE) :]
            if tail.lstrip("-").isdigit():
                out[int(tail)] = out.get(int(tail), 0) + int(r["count"])
    return dict(sorted(out.items()))


#: --limit of `runs` and `report runs`
RunsLimitOpt = Annotated[
    int, typer.Option("--limit", metavar="N", help="How many runs, newest first")
]


@report_app.command("runs")
@friendly
def report_runs(
    limit: RunsLimitOpt = 20,
    source: AnySourceOpt = None,
    catalog: CatalogOpt = None,
    profile: ProfileOpt = None,
    no_sign_request: NoSignOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """The most recent ingest runs (same as `cvcatalog runs`)."""
    _emit_runs(catalog, limit, source, fmt, profile=profile, no_sign_request=no_sign_request)


RUN_TABLE = [
    "run_id",
    "started",
    "finished",
    "status",
    "source_type",
    "range",
    "mode",
    "added",
    "changed",
    "removed",
    "rewritten",
    "rows",
    "seconds",
]


def _emit_runs(
    catalog: str | None, limit: int, source: str | None, fmt: Format, **remote: Any
) -> None:
    source = source and source.lower()
    runs = open_catalog(catalog, **remote).runs(limit, source)
    empty = f"no runs{_of(source)}"
    if fmt is not Format.table:  # every stored column; an empty listing still has its header
        emit(runs, fmt, columns=RUN_COLUMNS, empty=empty)
        return
    rows = [
        {
            "run_id": r["run_id"],
            "started": r["started_at"],  # UTC, as every format and command prints times
            "finished": r["finished_at"],
            "status": r["status"],
            "source_type": f"{r['source']}/{r['message_type']}",
            "range": ""  # a dataset run (NGSIM) loads files, not a date range
            if r["start_date"] is None
            else str(r["start_date"])
            if r["start_date"] == r["end_date"]
            else f"{r['start_date']}..{r['end_date']}",
            "mode": r["mode"],
            "added": r["objects_added"],
            "changed": r["objects_changed"],
            "removed": r["objects_removed"],
            "rewritten": r["partitions_rewritten"],
            "rows": r["rows"],
            "seconds": None if r["seconds"] is None else round(float(r["seconds"]), 1),
        }
        for r in runs
    ]
    emit(rows, fmt, columns=RUN_TABLE, empty=empty)
    if rows:
        print("added/changed/removed: source objects; rewritten: partitions written by the run")


def _experiment_name(name: str) -> str:
    """An experiment's name, or the name inside an experiment YAML given by path (a path that
    is not there is `config file not found`, not an experiment of that name)."""
    if name.endswith((".yml", ".yaml")):
        return ExperimentConfig.from_yaml(name).experiment.name
    return name


PIN_COLUMNS = ["name", "snapshot_id", "source", "message_type", "files", "bytes", "held_bytes",
               "held_alone_bytes", "pinned_at", "digest"]  # fmt: skip


@experiments_app.command("list")
@friendly
def experiments_list(
    catalog: CatalogOpt = None,
    profile: ProfileOpt = None,
    no_sign_request: NoSignOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Pinned experiments: their snapshot, files, and the bytes only the pin keeps."""
    cat = open_catalog(catalog, profile=profile, no_sign_request=no_sign_request)
    emit(cat.pinned(), fmt, columns=PIN_COLUMNS, empty="no experiments pinned")


@experiments_app.command("show")
@friendly
def experiments_show(
    name: Annotated[str, typer.Argument(help="experiment.name, or its YAML file")],
    catalog: CatalogOpt = None,
    profile: ProfileOpt = None,
    no_sign_request: NoSignOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """An experiment's pin: the snapshot it reads and a digest of that snapshot's files."""
    cat = open_catalog(catalog, profile=profile, no_sign_request=no_sign_request)
    name = _experiment_name(name)
    pinned = cat.pinned()
    rows = [p for p in pinned if p["name"] == name]
    if not rows:  # (a typo read as an experiment that exists, unpinned)
        names = ", ".join(sorted(p["name"] for p in pinned)) or "none"
        raise CvCatalogError(
            f"no experiment named {name!r} is pinned in this catalog (pinned: {names}); "
            "data.pin: true or data.snapshot: ID pins one when it is first gathered"
        )
    emit(rows, fmt, columns=PIN_COLUMNS)


@experiments_app.command("unpin")
@friendly
def experiments_unpin(
    name: Annotated[str, typer.Argument(help="experiment.name, or its YAML file")],
    catalog: LocalCatalogOpt = None,
) -> None:
    """Release a pin: its snapshot and files then expire with retention like any other."""
    cat = open_catalog(catalog)
    name = _experiment_name(name)
    if not cat.unpin(name):
        raise CvCatalogError(f"experiment {name!r} is not pinned")
    print(f"unpinned {name}")


runs_app = _commands(
    "Ingest runs: what each one added, changed and removed.", invoke_without_command=True
)
app.add_typer(runs_app, name="runs")


@runs_app.callback()
@friendly
def runs_cmd(
    ctx: typer.Context,
    limit: RunsLimitOpt = 20,
    source: AnySourceOpt = None,
    catalog: CatalogOpt = None,
    profile: ProfileOpt = None,
    no_sign_request: NoSignOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """The most recent ingest runs: mode, objects added/changed/removed, partitions rewritten."""
    if ctx.invoked_subcommand is None:
        _emit_runs(catalog, limit, source, fmt, profile=profile, no_sign_request=no_sign_request)


@runs_app.command("show")
@friendly
def runs_show(
    run_id: Annotated[str, typer.Argument(help="A run id from `cvcatalog runs`")],
    objects: Annotated[
        bool, typer.Option("--objects", help="List the source objects instead of partitions")
    ] = False,
    catalog: CatalogOpt = None,
    profile: ProfileOpt = None,
    no_sign_request: NoSignOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """The partitions whose current version this run wrote (--objects: its S3 objects with
    their ETags), and the snapshots it committed (lineage: `query --snapshot ID`)."""
    cat = open_catalog(catalog, profile=profile, no_sign_request=no_sign_request)
    cat.require_run(run_id)
    if objects:
        rows = cat.run_objects(run_id)
        emit(rows, fmt, columns=["source_key", "etag", "size", "partition"])
    else:
        rows = cat.run_partitions(run_id)
        emit(
            rows,
            fmt,
            columns=[
                "partition",
                "date",
                "status",
                "rows",
                "quarantined",
                "objects",
                "files",
                "parquet_bytes",
            ],
        )
    what = "object(s)" if objects else "partition(s)"
    say(f"{len(rows)} {what} currently from run {run_id}", fmt)
    snaps = [int(s["snapshot_id"]) for s in cat.run_snapshots(run_id)]
    none = "no snapshot kept" if cat.expired_since_run(run_id) else "no snapshot (it changed no table)"
    ids = f"snapshot{'s' if len(snaps) > 1 else ''} {snapshot_runs(snaps)}"
    say(f"committed by the run: {ids if snaps else none}", fmt)


@report_app.command("quality")
@friendly
def report_quality(
    source: OneSourceOpt,
    message_type: Annotated[
        str | None,
        typer.Option("--type", help="BSM | TIM | SPAT | EVENT | TRAJECTORY [default: all]"),
    ] = None,
    catalog: CatalogOpt = None,
    profile: ProfileOpt = None,
    no_sign_request: NoSignOpt = None,
    fmt: FormatOpt = Format.table,
    png: Annotated[Path | None, typer.Option("--png", help="Write the charts here (PNG)")] = None,
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML report here")
    ] = None,
    timezone: Annotated[
        str,
        typer.Option("--timezone", help="Clock of --start/--end and of the coverage by hour"),
    ] = "UTC",
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="YAML with a quality: section, used when rules are evaluated now "
            "(no stats recorded yet) [env: CVCATALOG_QUALITY__*]",
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--start", metavar="DATE", help="First local day, YYYY-MM-DD [default: every day]"
        ),
    ] = None,
    end: EndOpt = None,
) -> None:
    """Rows, invalid records by rule, outliers removed and coverage by day and hour: of the
    days --start..--end, or of everything the catalog holds."""
    check_outputs({"--png": png, "--html": html_out})  # before the report is built
    if end is not None and start is None:
        raise ConfigError("--end needs --start")
    first = parse_day(start, "--start") if start is not None else None
    last = parse_day(end, "--end") if end is not None else None
    cfg = quality_config(config)
    rep = build_report(
        open_catalog(catalog, profile=profile, no_sign_request=no_sign_request),
        source,
        message_type,
        timezone=timezone,
        config=cfg,
        start=first,
        end=last,
    )
    if fmt is Format.table:
        emit(
            rep.summary_rows(),
            fmt,
            columns=["message_type", "rule", "action", "count", "origin"],
            title=f"data quality: {rep.source} {rep.span}".rstrip(": "),
        )
        days = [
            {"message_type": t.message_type, "day": d, "records": n}
            for t in rep.types
            for d, n in t.by_day()
        ]
        emit(
            days,
            fmt,
            columns=["message_type", "day", "records"],
            title=f"coverage by day ({rep.timezone})",
        )
    else:
        emit(
            rep.rows(),
            fmt,
            columns=["source", "message_type", "section", "item", "action", "count", "origin"],
        )
    for t in rep.types:
        hours = t.by_hour()
        if hours:
            peak = max(hours, key=lambda kv: kv[1])
            say(
                f"{t.message_type}: {len(hours)} {t.hour_unit}(s) covered, busiest {peak[0]} "
                f"({peak[1]:,} records)",
                fmt,
            )
    for note in rep.notes():
        say(f"note: {note}", fmt)
    if png or html_out:
        image = render_png(rep)
        if png:
            write_atomic(png, image)
        if html_out:
            # link the coverage maps written beside it (report coverage --html coverage*.html)
            maps = sorted(p.name for p in html_out.parent.glob("coverage*.html"))
            write_atomic(html_out, render_html(rep, image, maps).encode("utf-8"))
        for written in (png, html_out):
            if written is not None:
                err.print(f"wrote {written}", highlight=False, soft_wrap=True)  # stdout: the report


@report_app.command("coverage")
@friendly
def report_coverage(
    source: Annotated[str, typer.Option("--source", help="wydot | wydot_backup | thea | ngsim")],
    start: Annotated[
        str, typer.Option("--start", metavar="DATE", help="First local day, YYYY-MM-DD")
    ],
    message_type: Annotated[
        str | None,
        typer.Option(
            "--type", help="BSM | TRAJECTORY [default: the source's type with positions]"
        ),
    ] = None,
    end: EndOpt = None,
    timezone: Annotated[str, typer.Option("--timezone", help="Clock of the days")] = "UTC",
    png: Annotated[Path | None, typer.Option("--png", help="Write the map(s) here (PNG)")] = None,
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML page here")
    ] = None,
    per_day: Annotated[bool, typer.Option("--per-day", help="Also one map per day")] = False,
    catalog: CatalogOpt = None,
    profile: ProfileOpt = None,
    no_sign_request: NoSignOpt = None,
) -> None:
    """Where the points of a date range are: hexbin density maps (equal-area, offline)."""
    check_outputs({"--png": png, "--html": html_out})  # before the maps are drawn
    if per_day and png is None and html_out is None:  # (it drew them and wrote nothing)
        raise ConfigError("--per-day draws a map a day into --png or --html: give one of them")
    cat = open_catalog(catalog, profile=profile, no_sign_request=no_sign_request)
    with _notes_of(MissingDataWarning):  # days never ingested: a note (the maps are drawn)
        rep = cat.coverage(
            source, message_type, start, end or start, timezone=timezone, per_day=per_day
        )
    if rep.rows == 0:
        raise CatalogError(
            f"no {rep.source}/{rep.message_type} rows between {rep.start} and {rep.end} "
            f"({rep.timezone}); nothing written"
        )
    image = coverage_report.render_png(rep)
    if png:
        write_atomic(png, image)
    if html_out:
        write_atomic(html_out, coverage_report.render_html(rep, image).encode("utf-8"))
    print(
        f"{rep.rows:,} rows over {len(rep.days)} day(s), {rep.positioned:,} with a position"
        + "".join(f"; wrote {p}" for p in (png, html_out) if p)
    )


# -- sandbox --------------------------------------------------------------------------------
STATE = Path(".sandbox/server.json")
PORT_FLAG = {"port": "--port"}


@sandbox_app.command("serve")
@friendly
def sandbox_serve(
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1")] = 5055,
    detach: Annotated[
        bool, typer.Option("--detach", help="Run in the background (stop with `sandbox stop`)")
    ] = False,
) -> None:
    """Run a local S3-compatible endpoint (moto server) on 127.0.0.1. A detached one is
    recorded in ./.sandbox/server.json, where `sandbox stop` (run in the same directory)
    finds it."""
    if detach and (running := detached_running(STATE)) is not None:
        raise SandboxError(
            f"a detached sandbox server is already running here at http://127.0.0.1:"
            f"{running['port']} (pid {running['pid']}, {STATE}); use it, or run "
            "`cvcatalog sandbox stop` first"
        )
    if detach:
        check_state_folder(STATE)
        server = start_server(port=port, log_file=STATE.with_name("moto.log"), names=PORT_FLAG)
        write_state(STATE, server)
        print(
            f"sandbox S3 endpoint running at {server.endpoint_url} (pid {server.process.pid if server.process else '?'})"
        )
        print(_export_line(server))
        return
    # a Ctrl-C, kill or hang-up (from the start on) stops the server's process before we exit
    with stop_signals() as stopping:
        try:
            server = start_server(port=port, names=PORT_FLAG, stopping=stopping)
        except KeyboardInterrupt:
            err.print("stopped before the sandbox server answered; nothing is left running")
            raise typer.Exit(130) from None
        with server:
            print(f"sandbox S3 endpoint at {server.endpoint_url}; Ctrl-C to stop")
            print(_export_line(server), flush=True)  # seen at once through a pipe (| tee)
            server.wait(stopping)


def _export_line(server: SandboxServer) -> str:
    """The shell line that points AWS clients (and cvcatalog) at server."""
    return "export " + " ".join(f"{k}={v}" for k, v in server.env().items())


@sandbox_app.command("stop")
@friendly
def sandbox_stop() -> None:
    """Stop the server `sandbox serve --detach` started in this directory
    (./.sandbox/server.json), and wait until its process has exited (SIGTERM, then SIGKILL
    after 10 s)."""
    print("stopped" if stop_detached(STATE) else "no detached sandbox server was running")


def _seeded_types(sources: tuple[str, ...]) -> list[str]:
    """`sandbox seed`'s types when --type is not given: BSM, or the types of a source that
    publishes none (nycdot: EVENT; it said "nycdot/BSM is not published by the bucket")."""
    out: list[str] = []
    for src in sources:  # an unknown source: BSM, and validate_spec's line names it
        types = VALID_TYPES.get(src, ("BSM",))
        out += ["BSM"] if "BSM" in types else list(types)
    return list(dict.fromkeys(out))


@sandbox_app.command("seed")
@friendly
def sandbox_seed(
    start: Annotated[
        str,
        typer.Option(
            "--start",
            metavar="DATE",
            help="First UTC day of the records, YYYY-MM-DD (thea and nycdot file them in US "
            "Eastern folders: their first folder is the day before)",
        ),
    ],
    end: Annotated[
        str | None, typer.Option("--end", metavar="DATE", help="Last UTC day (inclusive)")
    ] = None,
    source: Annotated[
        list[str] | None, typer.Option("--source", help="Repeatable; default wydot")
    ] = None,
    message_type: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            help="Repeatable; default BSM (EVENT for nycdot). Each source gets the types "
            "given that the bucket publishes for it",
        ),
    ] = None,
    records_per_hour: Annotated[
        int,
        typer.Option(
            "--records-per-hour",
            metavar="N",
            help="Records in each hour of each source and type (about 1 hour in 20 is left "
            "empty, as the bucket has them)",
        ),
    ] = 200,
    files_per_hour: Annotated[
        int,
        typer.Option(
            "--files-per-hour", metavar="N", help="Objects each hour's records are split into"
        ),
    ] = 2,
    malformed_per_day: Annotated[
        int,
        typer.Option(
            "--malformed-per-day",
            metavar="N",
            help="Broken records a day (truncated JSON, garbage, no id) for validation to catch",
        ),
    ] = 0,
    empty_day: Annotated[
        list[str] | None,
        typer.Option("--empty-day", metavar="DATE", help="A day with no objects (repeatable)"),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed; the same seed writes the same bytes")
    ] = 42,
    report: Annotated[
        Path | None,
        typer.Option("--report", metavar="FILE", help="Write the seed report (JSON) here"),
    ] = None,
) -> None:
    """Fill bucket usdot-its-cvpilot-publicdata on the endpoint with a realistic replica."""
    # the generators (~40 ms of imports) load only for the sandbox commands that use them
    from cvcatalog.sandbox.replica import seed_spec, validate_spec
    from cvcatalog.sandbox.replica_blocks import ReplicaSpec

    s = parse_day(start, "--start")
    sources = tuple(source or ["wydot"])
    spec = ReplicaSpec(
        start=s,
        end=parse_day(end, "--end") if end is not None else s,
        sources=sources,
        message_types=tuple(message_type or _seeded_types(sources)),
        seed=seed,
        records_per_hour=records_per_hour,
        files_per_hour=files_per_hour,
        malformed_per_day=malformed_per_day,
        empty_days=frozenset(parse_day(d, "--empty-day") for d in empty_day or []),
    )
    flags = ("records_per_hour", "files_per_hour", "malformed_per_day")
    # every argument, once, before any request (seed_spec takes the spec as checked)
    validate_spec(
        spec, {"empty_days": "--empty-day", **{k: "--" + k.replace("_", "-") for k in flags}}
    )
    check_outputs({"--report": report})
    _env_notes()
    client, cfg = sandbox_client("seeding never writes to real AWS")
    create_bucket(client, cfg, BUCKET)
    t0 = time.monotonic()
    rep = seed_spec(client, spec, retrier=Retrier.from_config(cfg))
    if report:
        rep.write_json(report)
    print(
        f"seeded {rep.records:,} records in {rep.objects:,} objects "
        f"({rep.bytes / 1e6:,.1f} MB) for {spec.start}..{spec.end} at {cfg.endpoint_url} "
        f"in {time.monotonic() - t0:.1f}s"
    )


@sandbox_app.command("ngsim")
@friendly
def sandbox_ngsim(
    out: Annotated[Path, typer.Option("--out", metavar="FILE", help="CSV file to write")],
    rows: Annotated[
        int,
        typer.Option(
            "--rows",
            help="About this many trajectory rows. Vehicles are written whole, at least one "
            "per lane of every site period, so a small count comes out larger (~23,000 rows "
            "at least with the four sites)",
        ),
    ] = 100_000,
    location: Annotated[
        list[str] | None,
        typer.Option("--location", help="Repeatable; default: all four sites"),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed; the same seed writes the same bytes")
    ] = 42,
    bad_rows: Annotated[int, typer.Option("--bad-rows", help="Broken lines to mix in")] = 0,
    to: Annotated[
        str | None,
        typer.Option(
            "--to", metavar="URL", help="Also upload to s3://bucket/key on the local endpoint"
        ),
    ] = None,
) -> None:
    """Write an NGSIM-shaped trajectory CSV (car-following at 10 Hz, real sites' CRS)."""
    from cvcatalog.sandbox.ngsim import generate_ngsim  # as in sandbox_seed

    check_outputs({"--out": out})
    if to is not None:  # where it goes, checked before anything is written (no request yet)
        upload_target(to, "--to")
        _env_notes()
        sandbox_endpoint(UPLOAD_PURPOSE)
    t0 = time.monotonic()
    rep = generate_ngsim(
        out,
        rows,
        locations=location,
        seed=seed,
        bad_rows=bad_rows,
        names={"rows": "--rows", "bad_rows": "--bad-rows"},
    )
    print(
        f"wrote {rep.rows:,} rows (+{rep.bad_rows} broken) of {rep.vehicles:,} vehicles, "
        f"{out.stat().st_size / 1e6:,.1f} MB, to {out} in {time.monotonic() - t0:.1f}s"
    )
    if to is None:
        return
    endpoint = upload_file(out, to, names={"url": "--to"})
    print(f"uploaded to {to} at {endpoint}")


# -- publish --------------------------------------------------------------------------------
@app.command()
@friendly
def publish(
    to: Annotated[
        str, typer.Option("--to", metavar="URL", help="s3://bucket/prefix to publish to")
    ],
    catalog: LocalCatalogOpt = None,
    profile: Annotated[str | None, typer.Option("--profile", help="AWS profile")] = None,
    no_sign_request: Annotated[
        bool | None, typer.Option("--no-sign-request", help="Anonymous (unsigned) requests")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help=f"Concurrent uploads (1-{MAX_WORKERS})")
    ] = None,
    rate_limit: Annotated[
        float | None,
        typer.Option("--rate-limit", help="S3 requests per second [default: 0 = unlimited]"),
    ] = None,
    snapshot: Annotated[
        int | None,
        typer.Option(
            "--snapshot",
            help="The oldest snapshot the published catalog keeps [default: every kept one]",
        ),
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Upload a local catalog to S3 (Parquet + a portable catalog database), verified, resumable;
    its snapshots travel with it (`query --catalog s3://... --snapshot ID`)."""
    check_workers("--workers", workers)
    cat = open_catalog(catalog)
    summary = cat.publish(
        to,
        snapshot=snapshot,
        profile=profile,
        no_sign_request=no_sign_request,
        max_workers=workers,
        rate_limit=rate_limit,
        notify=_note,
    )
    if fmt is Format.table:
        emit(summary.totals(), fmt, columns=["kind", "status", "objects", "bytes"])
    else:
        emit(summary.rows(), fmt, columns=RESULT_COLUMNS)
    for r in summary.failed:
        say(f"  failed {r.path}: {r.reason}", fmt)
    say(summary.summary(), fmt)
    if not summary.ok:
        raise typer.Exit(1)


# -- discovery ------------------------------------------------------------------------------
RateOpt = Annotated[
    float | None, typer.Option("--rate-limit", help="S3 requests per second, 0 = unlimited")
]
RefreshOpt = Annotated[
    bool,
    typer.Option("--refresh", help="List the bucket again instead of using the listing cache"),
]


#: discover's arguments as its flags, in the library's messages (config.spelled)
DISCOVER_FLAGS = {"year": "--year", "month": "--month", "message_type": "--type"}


@app.command()
@friendly
def discover(
    source: Annotated[str, typer.Option("--source", help="wydot | wydot_backup | thea | nycdot")],
    message_type: TypeOpt = None,
    year: Annotated[int | None, typer.Option("--year", help="List this year's months")] = None,
    month: Annotated[
        int | None, typer.Option("--month", help="List this month's days, hours, objects, bytes")
    ] = None,
    refresh: RefreshOpt = False,
    config: Annotated[Path | None, typer.Option("--config", help="Data source YAML")] = None,
    catalog: LocalCatalogOpt = None,
    profile: ProfileOpt = None,
    no_sign_request: NoSignOpt = None,
    rate_limit: RateOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """What the bucket holds (types, years, months, days, hours, objects, bytes); no downloads."""
    _check_rate_limit(rate_limit)
    cat = open_catalog(catalog, config, create=True)
    d = cat.discover(
        source,
        message_type,
        year,
        month,
        refresh=refresh,
        config=config,
        names=DISCOVER_FLAGS,
        profile=profile,
        no_sign_request=no_sign_request,
        rate_limit=rate_limit,
    )
    if fmt is Format.table:
        emit(d.rows, fmt, columns=d.columns)
    else:  # every field; an empty listing still has its header
        emit(d.rows, fmt, columns=None if d.rows else d.columns)
    say(d.summary(), fmt)


def _check_days(
    start: str | None, end: str | None, days_back: int | None, config: Path | None
) -> None:
    """The days of an ingest or a plan: flags, or a config (or CVCATALOG_DATE_RANGE__*) that
    names them; one line otherwise (plan said pydantic's "date_range: Field required")."""
    if days_back is not None and (start is not None or end is not None):
        raise ConfigError("give --start (and --end) or --days-back, not both")
    no_range = config is None and not env_overrides().get("date_range")
    if no_range and start is None and end is None and days_back is None:
        raise ConfigError("give the days: --start (and optionally --end) or --days-back")


@app.command()
@friendly
def plan(
    source: Annotated[
        str | None, typer.Option("--source", help="wydot | wydot_backup | thea | nycdot")
    ] = None,
    message_type: TypeOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    days_back: DaysBackOpt = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="Zone of --start/--end [default: UTC]")
    ] = None,
    force_refresh: Annotated[
        bool, typer.Option("--force-refresh", help="Plan as `ingest --force-refresh` would")
    ] = False,
    check_changes: Annotated[
        bool | None,
        typer.Option(
            "--check-changes/--no-check-changes",
            help="Plan as `ingest --check-changes` would: list cached days again (one LIST each) "
            "and count the objects added or changed since [config: cache.check_changes]",
        ),
    ] = None,
    refresh: RefreshOpt = False,
    config: Annotated[Path | None, typer.Option("--config", help="Data source YAML")] = None,
    catalog: LocalCatalogOpt = None,
    profile: ProfileOpt = None,
    no_sign_request: NoSignOpt = None,
    rate_limit: RateOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """What an ingest of the range would fetch and what is already cached; no downloads."""
    _check_rate_limit(rate_limit)
    src, mt = _source_and_type(source, message_type, config, bucket_only=True)  # first
    _check_days(start, end, days_back, config)
    start_day, end_day = _day_flags(start, end, days_back, timezone)
    cat = open_catalog(catalog, config, create=True)
    p = cat.plan(
        src,
        mt,
        start_day,
        end_day,
        days_back=days_back,
        timezone=timezone,
        config=config,
        force_refresh=force_refresh,
        refresh=refresh,
        check_changes=check_changes,
        profile=profile,
        no_sign_request=no_sign_request,
        rate_limit=rate_limit,
    )
    rows = [*p.rows, p.total_row()]
    if fmt is Format.table:
        yes_no = {True: "yes", False: "no"}
        table = [{**r, "fetch": yes_no.get(r["fetch"], r["fetch"])} for r in rows]
        emit(table, fmt, columns=PLAN_COLUMNS)
    else:
        emit(rows, fmt, columns=PLAN_FIELDS)
    say(p.summary(), fmt)


# -- export ---------------------------------------------------------------------------------
#: export's parameters as its flags spell them, for the library's lines (Catalog.export names=)
EXPORT_FLAGS = {
    "start": "--start", "end": "--end", "output": "--output", "format": "--format",
    "where": "--where", "columns": "--columns", "naming": "--naming",
}  # fmt: skip


@app.command("export")
@friendly
def export_cmd(
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write")],
    source: AnySourceOpt = None,
    message_type: TypeOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    timezone: Annotated[
        str, typer.Option("--timezone", help="Zone of --start/--end, e.g. America/Denver")
    ] = "UTC",
    within: WithinOpt = None,
    bbox: BboxOpt = None,
    corridor: CorridorOpt = None,
    where: Annotated[
        str | None,
        typer.Option("--where", help="A SQL predicate on the exported columns (--naming)"),
    ] = None,
    columns: Annotated[
        str | None, typer.Option("--columns", help="a,b,c: only these columns, in this order")
    ] = None,
    naming: Annotated[
        str, typer.Option("--naming", help="canonical | socrata (data.transportation.gov names)")
    ] = "canonical",
    file_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="parquet | geoparquet | csv | ndjson [default: from the --output suffix]",
        ),
    ] = None,
    catalog: CatalogOpt = None,
    profile: ProfileOpt = None,
    no_sign_request: NoSignOpt = None,
    snapshot: SnapshotOpt = None,
    as_of: AsOfOpt = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr")
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object on stdout")
    ] = False,
) -> None:
    """Export rows of the catalog to one file (parquet, geoparquet, csv, ndjson): a date range,
    an area (--within, --bbox or --corridor) and a SQL predicate, as the official S3-Select
    exporter did. Streams; the file appears (or is replaced) only when complete."""
    if source is None:
        raise ConfigError("give --source (wydot | wydot_backup | thea | nycdot | ngsim)")
    if str(output) == "-":  # (it made a file named "-")
        raise ConfigError(
            "--output -: an export writes a file (atomically); give its name, or use "
            "`cvcatalog query ... --format csv` for rows on stdout"
        )
    # the library's rule, checked before the catalog is opened: -f csv -o x.parquet refused
    fmt = export_format(file_format, output, EXPORT_FLAGS)
    if fmt is None:  # (the API writes parquet; a command asks)
        file_target(output)  # /dev/null: not a file to write, the reason that matters
        raise ConfigError(
            f"give --format (parquet | geoparquet | csv | ndjson): {output.name!r} does not say"
        )
    area = _area(within, bbox, corridor)
    _one_point(snapshot, as_of)
    if naming not in ("canonical", "socrata"):
        raise ConfigError(f"--naming must be canonical or socrata, got {naming!r}")
    cat = open_catalog(catalog, profile=profile, no_sign_request=no_sign_request)
    bar = ExportBar(err) if progress else contextlib.nullcontext(None)
    # days never ingested: a note (the file is still written, exit 0: scripts go on)
    with _notes_of(MissingDataWarning), bar as tick:
        result = cat.export(
            source,
            message_type,
            start,
            end,
            output=output,
            format=fmt,
            timezone=timezone,
            **spatial.as_kwargs(area),
            where=where,
            columns=columns,
            naming="socrata" if naming == "socrata" else "canonical",
            snapshot=snapshot,
            as_of=as_of,
            progress=tick,
            names=EXPORT_FLAGS,
        )
    if as_json:
        emit_object(result.as_dict())
        return
    what = f"{result.source}/{result.message_type}"
    if result.empty:
        print(
            f"no rows matched: wrote an empty {result.format} file ({len(result.columns)} "
            f"columns) to {result.path}"
        )
    else:
        size = (
            f"{result.bytes / 1e6:,.1f} MB"
            if result.bytes >= 1e6
            else f"{result.bytes / 1e3:.1f} kB"
        )
        print(
            f"exported {result.rows:,} rows of {what} to {result.path} ({result.format}, "
            f"{size}) in {result.seconds:.1f}s"
        )
    if result.filters:
        print(f"filters: {'; '.join(result.filters)}")


sql_app = _commands("SQL for plain DuckDB sessions.", no_args_is_help=True)
app.add_typer(sql_app, name="sql")


@sql_app.command("macros")
@friendly
def sql_macros(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write them to this file")
    ] = None,
) -> None:
    """Print the spatial macros (cv_within, cv_in_bbox, cv_near_line, ...) for a DuckDB
    session (`.read` the file after LOAD spatial). A catalog's lake stores them already:
    attaching it is enough (docs/spatial.md)."""
    check_outputs({"--output": output})
    text = spatial.macros_sql()
    if output is None:
        sys.stdout.write(text)
        return
    write_atomic(output, text.encode("utf-8"))  # (write_text: unexpected IsADirectoryError)
    err.print(f"wrote {output}", highlight=False)


@sql_app.command("session")
@friendly
def sql_session(catalog: LocalCatalogOpt = None) -> None:
    """Print the statements that make any DuckDB 1.5.5 session (the CLI, Python), offline,
    see the catalog as `cvcatalog shell` does: ducklake and spatial LOADed from their pinned
    packages (a plain `LOAD ducklake` would download it), the lake attached read-only as cv.
    A lake on S3 also needs an S3 secret, which holds credentials and is never printed: use
    `cvcatalog shell`, or `Catalog.shell_sql()` in Python."""
    cat = _local_catalog(catalog, "a published catalog's stored SQL is its publisher's")
    if cat.db.lake_url is not None:
        raise CatalogError(
            "this catalog's lake is on S3: its session needs an S3 secret (credentials), "
            "which is not printed; use `cvcatalog shell` or Catalog.shell_sql()"
        )
    sys.stdout.write(cat.shell_sql() + "\n")


# -- trips and splits (docs/ml.md) ------------------------------------------------------------
@app.command("trips")
@friendly
def trips_cmd(
    catalog: CatalogOpt = None,
    profile: ProfileOpt = None,
    no_sign_request: NoSignOpt = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="A YAML with a trips: section")
    ] = None,
    max_gap_s: Annotated[
        float | None,
        typer.Option(
            "--max-gap-s",
            metavar="SECONDS",
            help="Record trips.max_gap_s and define the trip views again "
            "[env: CVCATALOG_TRIPS__MAX_GAP_S; config: trips.max_gap_s; default 120]",
        ),
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Trips per source (the bsm_trips and ngsim_trips views) and the gap that cuts them."""
    if max_gap_s is not None and not max_gap_s > 0:
        raise ConfigError(f"--max-gap-s must be more than 0 seconds, got {max_gap_s:g}")
    cat = open_catalog(catalog, config, profile=profile, no_sign_request=no_sign_request)
    wanted = trips_config(config, max_gap_s)
    if wanted is not None and wanted.max_gap_s != cat.trip_gap():
        cat.set_trip_gap(wanted.max_gap_s)
    table = cat.query_arrow(
        "select source, count(*) as trips, sum(points)::BIGINT as points, "
        "count(distinct vehicle_id) as vehicle_ids, count_if(points = 1)::BIGINT as one_point_trips, "
        "round(median(duration_s), 1) as median_duration_s, "
        "round(sum(distance_m) / 1000, 1) as distance_km "
        "from (select * from bsm_trips union all select * from ngsim_trips) "
        "group by source order by source"
    )
    rows, columns = arrow_rows(table)
    emit(rows, fmt, columns=columns)
    if not rows:  # an empty table said nothing of why
        say("no trips: the catalog holds no BSM or NGSIM rows", fmt)
    say(f"a gap of more than {cat.trip_gap():g} s starts a trip (trips.max_gap_s)", fmt)


@app.command("split")
@friendly
def split_cmd(
    source: Annotated[str, typer.Option("--source", help="wydot | wydot_backup | thea | ngsim")],
    message_type: Annotated[
        str | None,
        typer.Option("--type", help="BSM | TRAJECTORY [default: the source's type with vehicle ids]"),
    ] = None,
    start: StartOpt = None,
    end: EndOpt = None,
    timezone: Annotated[str, typer.Option("--timezone", help="Zone of --start/--end")] = "UTC",
    by: Annotated[str, typer.Option("--by", help="vehicle | trip")] = "vehicle",
    fractions: Annotated[
        str, typer.Option("--fractions", help="train,validation,test")
    ] = "0.8,0.1,0.1",
    seed: Annotated[
        int, typer.Option("--seed", help="Orders the groups; the same seed gives the same split")
    ] = 0,
    location: Annotated[
        str | None,
        typer.Option(
            "--location",
            help="--source ngsim: split only this site (us-101 | i-80 | lankershim | peachtree)",
        ),
    ] = None,
    within: WithinOpt = None,
    bbox: BboxOpt = None,
    corridor: CorridorOpt = None,
    snapshot: SnapshotOpt = None,
    as_of: AsOfOpt = None,
    catalog: CatalogOpt = None,
    profile: ProfileOpt = None,
    no_sign_request: NoSignOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Rows and groups of each split Catalog.split gives for these arguments (the plan, from
    the group sizes; no vehicle id or trip is in two splits); with an area, of its rows only;
    with --snapshot or --as-of, of the catalog as it was then."""
    try:
        parts = [float(x) for x in fractions.split(",")]
    except ValueError:
        raise ConfigError(
            f"--fractions takes three numbers like 0.8,0.1,0.1, got {fractions!r}"
        ) from None
    by = by.strip().lower()  # as --source and --type are read
    if by not in ("vehicle", "trip"):
        raise ConfigError(f"--by is vehicle or trip, not {by!r}")
    if location is not None and source.strip().lower() not in DATASETS:
        # the library's line names location=; a command names its option
        raise ConfigError(f"--location selects sites of --source ngsim, not of {source}")
    area = _area(within, bbox, corridor)
    _one_point(snapshot, as_of)
    cat = open_catalog(catalog, profile=profile, no_sign_request=no_sign_request)
    with _notes_of(MissingDataWarning):  # days never ingested: a note, before any error line
        plan, _ = cat.split_plan(
            source,
            message_type,
            start,
            end,
            by="trip" if by == "trip" else "vehicle",
            fractions=parts,
            seed=seed,
            timezone=timezone,
            location=location,
            snapshot=snapshot,
            as_of=as_of,
            **spatial.as_kwargs(area),
        )
    rows = [
        {
            "split": name,
            by + "s": len(plan.keys(i)),
            "rows": plan.rows[i],
            "fraction": round(plan.achieved[i], 4),
            "target": plan.fractions[i],
        }
        for i, name in enumerate(SPLIT_NAMES)
    ]
    emit(rows, fmt, columns=list(rows[0]))


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    finally:
        # The command is done. At exit the interpreter's collector walks every object it
        # loaded (botocore's service models, pandas, pyarrow, ...), several times: 0.2-0.25 s
        # of a one-day ingest's ~3.8 s (perf: gc_collect_main). Frozen objects are out of its
        # reach; their memory goes back with the process. Nothing cvcatalog keeps needs a
        # collector's finaliser: writes commit by rename before this point, locks are the
        # OS's, thread pools and temporary directories end in atexit hooks, which still run.
        gc.freeze()


if __name__ == "__main__":
    main()
