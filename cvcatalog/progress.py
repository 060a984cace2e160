"""Rich progress bars for an ingest: listing, downloading and converting."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from cvcatalog.ingest import DayOutcome


class RichProgress:
    """Implements cvcatalog.ingest.IngestProgress on stderr."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.bar = Progress(
            TextColumn("{task.description:<12}"),
            BarColumn(),
            MofNCompleteColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.days: TaskID | None = None
        self.listing: TaskID | None = None
        self.download: TaskID | None = None
        self._planned_bytes = 0

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.bar.stop()

    def plan(self, todo: list[str], cached: list[str]) -> None:
        self.listing = self.bar.add_task("listing", total=len(todo))
        self.download = self.bar.add_task("downloading", total=0)
        self.days = self.bar.add_task("converting", total=len(todo) + len(cached))
        if cached:
            self.bar.advance(self.days, len(cached))

    def listed(self, key: str, objects: int, nbytes: int) -> None:
        if self.listing is not None:
            self.bar.advance(self.listing)
        if self.download is not None:
            self._planned_bytes += nbytes
            self.bar.update(self.download, total=self._planned_bytes)

    def downloaded(self, nbytes: int) -> None:
        if self.download is not None:
            self.bar.advance(self.download, nbytes)

    def converting(self, key: str) -> None:
        if self.days is not None:
            self.bar.update(self.days, description="converting")

    def finished(self, outcome: DayOutcome) -> None:
        if self.days is not None and outcome.detail != "cached":
            self.bar.advance(self.days)
        if outcome.status == "failed":
            self.console.print(f"[red]failed[/red] {outcome.key}: {outcome.error}")

    def note(self, message: str) -> None:
        self.console.print(f"[yellow]note[/yellow] {message}")
