"""Rich progress bars for a pipeline run: listing (days), downloading (MB) and converting (units).

A bar is a live display for a terminal only, and it leaves no trace of a failure: when the
command fails (an exception leaves the ``with`` block) its last frame is erased, so the error
line stands alone; when stderr is not a terminal (a file, a pipe) no frame is written at all.

A failed unit is counted on the bar ("12/30 days, 1 failed"), not printed: the run's summary
on stdout has one line per failure with its reason, and a terminal shows both streams, so a
line here too showed each failure twice. Notes (retries, waits, evictions) are events the
summary does not repeat: they are printed, one line each.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from cvcatalog.pipeline.report import Outcome


class _LiveBar:
    """The live display both bars share: started by ``with`` on a terminal only, and erased
    when it stops if the block failed."""

    def __init__(self, console: Console | None) -> None:
        self.console = console or Console(stderr=True)
        self.bar = Progress(
            TextColumn("{task.description:<12}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=self.console,
            # a file or a pipe gets no frames (not even the last) and no blank line
            disable=not self.console.is_terminal or self.console.is_dumb_terminal,
        )

    def _start(self) -> None:
        self.bar.start()

    def _stop(self, failed: bool) -> None:
        if failed:  # the error line that follows stands alone
            self.bar.live.transient = True
        self.bar.stop()


class RichProgress(_LiveBar):
    """Implements cvcatalog.pipeline.report.Progress on stderr; `unit` names the units."""

    def __init__(self, console: Console | None = None, unit: str = "days") -> None:
        super().__init__(console)
        self.unit = unit
        self.t0 = time.monotonic()
        self.listing: TaskID | None = None
        self.download: TaskID | None = None
        self.days: TaskID | None = None
        self._todo = self._listed = self._done = self._cached = self._failed = 0
        self._bytes_total = self._bytes_done = 0

    def __enter__(self) -> RichProgress:
        self._start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop(failed=e is not None)

    def _days_detail(self, n: int, total: int, extra: str = "") -> str:
        failed = f", {self._failed} failed" if self._failed else ""
        return f"{n}/{total} {self.unit}{extra}{failed}"

    def plan(self, todo: list[str], cached: list[str], nbytes: int = 0) -> None:
        self._todo, self._cached = len(todo), len(cached)
        self.t0 = time.monotonic()
        if nbytes:  # sized up front (byte ranges): nothing to list
            self._bytes_total = nbytes
        else:
            self.listing = self.bar.add_task(
                "listing", total=max(len(todo), 1), detail=self._days_detail(0, len(todo))
            )
        self.download = self.bar.add_task("downloading", total=None, detail="0.0 MB")
        total = len(todo) + len(cached)
        self.days = self.bar.add_task(
            "converting",
            total=max(total, 1),
            completed=len(cached),
            detail=self._days_detail(
                len(cached), total, f" ({len(cached)} cached)" if cached else ""
            ),
        )

    def listed(self, key: str, objects: int, nbytes: int) -> None:
        self._listed += 1
        self._bytes_total += nbytes
        if self.listing is not None:
            self.bar.update(
                self.listing, advance=1, detail=self._days_detail(self._listed, self._todo)
            )
        self._refresh_download()

    def downloaded(self, nbytes: int) -> None:
        self._bytes_done += nbytes
        self._refresh_download()

    def _refresh_download(self) -> None:
        if self.download is None:
            return
        secs = max(time.monotonic() - self.t0, 1e-6)
        detail = (
            f"{self._bytes_done / 1e6:,.1f}/{self._bytes_total / 1e6:,.1f} MB "
            f"{self._bytes_done / 1e6 / secs:,.1f} MB/s"
        )
        self.bar.update(
            self.download,
            total=max(self._bytes_total, 1),
            completed=self._bytes_done,
            detail=detail,
        )

    def converting(self, key: str) -> None:
        if self.days is not None:
            done, total = self._done + self._cached, self._todo + self._cached
            self.bar.update(self.days, detail=f"{self._days_detail(done, total)}, {key}")

    def finished(self, outcome: Outcome) -> None:
        if outcome.detail == "cached":
            return  # counted in plan()
        self._done += 1
        if outcome.status == "failed":  # its reason: the summary's line (module docstring)
            self._failed += 1
        if self.days is not None:
            total = self._todo + self._cached
            self.bar.update(
                self.days, advance=1, detail=self._days_detail(self._done + self._cached, total)
            )

    def note(self, message: str) -> None:
        self.console.print(
            f"[yellow]note:[/yellow] {escape(message)}", highlight=False, soft_wrap=True
        )


class ExportBar(_LiveBar):
    """`cvcatalog export`'s bar on stderr: rows and bytes written so far (the number of rows
    a filter keeps is not known before the end, so the bar pulses)."""

    def __init__(self, console: Console | None = None, label: str = "exporting") -> None:
        super().__init__(console)
        self.task = self.bar.add_task(label, total=None, detail="0 rows")
        self.t0 = time.monotonic()

    def __enter__(self) -> ExportBar:
        self._start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop(failed=e is not None)

    def __call__(self, rows: int, nbytes: int) -> None:
        secs = max(time.monotonic() - self.t0, 1e-6)
        self.bar.update(
            self.task,
            detail=f"{rows:,} rows, {nbytes / 1e6:,.1f} MB, {rows / secs:,.0f} rows/s",
        )
