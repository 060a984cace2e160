"""The data quality report of one source: numbers from the catalog, a PNG and an HTML page.

Rows come from the manifest (partitions table), invalid-by-rule and removed counts from
`quality_stats` (the run that wrote each partition's current version), coverage from the
source's views. A catalog ingested before quality stats existed still gets a report: the rules
are then evaluated now over the partitions' Parquet files (or the view), and the report says so.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvcatalog.config import check_day_order, parse_day, timezone_arg
from cvcatalog.exceptions import CatalogError, ConfigError
from cvcatalog.io import lake
from cvcatalog.quality.config import QualityConfig
from cvcatalog.quality.coverage import check_source, coverage_command
from cvcatalog.quality.mapping import Mapping, mapping_for, view_for
from cvcatalog.quality.rules import QualityStats, evaluate, evaluate_files
from cvcatalog.schemas import SCHEMAS
from cvcatalog.sources.bucket import FOLDER_TIMEZONE, PartitionKey, utc_window
from cvcatalog.sqlutil import quote_ident
from cvcatalog.state import deletes
from cvcatalog.state.manifest import complete_data_files

if TYPE_CHECKING:
    import duckdb

    from cvcatalog.catalog import Catalog


#: Report origins: counts recorded by ingests, evaluated now, or nothing to count.
RECORDED, EVALUATED, NO_DATA = "recorded", "evaluated now", "no data"

_WEEKDAYS = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN", "NA"]
_TIME_BINS = ["NT", "AM", "MD", "PM", "EV", "NA"]


@dataclass
class TypeQuality:
    """The quality of one (source, message type)."""

    source: str
    message_type: str
    view: str
    rows: int = 0
    partitions: int = 0
    origin: str = NO_DATA
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    #: (day label, hour label, records); hour labels "00".."23", or NYCDOT time bins
    coverage: list[tuple[str, str, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def by_day(self) -> list[tuple[str, int]]:
        days: dict[str, int] = {}
        for d, _, n in self.coverage:
            days[d] = days.get(d, 0) + n
        return sorted(days.items(), key=lambda kv: _day_key(kv[0]))

    def by_hour(self) -> list[tuple[str, int]]:
        hours: dict[str, int] = {}
        for _, h, n in self.coverage:
            hours[h] = hours.get(h, 0) + n
        return sorted(hours.items(), key=lambda kv: _hour_key(kv[0]))

    @property
    def hour_unit(self) -> str:
        """What by_hour's labels are: hours of the day, or NYCDOT's time-of-day bins."""
        labels = {h for _, h, _ in self.coverage}
        return "time-of-day bin" if labels and labels <= set(_TIME_BINS) else "hour"


@dataclass
class QualityReport:
    source: str
    timezone: str
    types: list[TypeQuality]
    #: the local days reported on (start, end), or None: all the catalog holds
    days: tuple[date, date] | None = None

    @property
    def span(self) -> str:
        """The days reported on, as the titles say them ("" for all the catalog holds)."""
        if self.days is None:
            return ""
        d0, d1 = self.days
        return f"{d0}: " if d0 == d1 else f"{d0}..{d1}: "

    def summary_rows(self) -> list[dict[str, Any]]:
        """rows, then every (rule, action) count, per message type."""
        out: list[dict[str, Any]] = []
        for t in self.types:
            out.append(
                {
                    "message_type": t.message_type,
                    "rule": "rows",
                    "action": "in catalog",
                    "count": t.rows,
                    "origin": "manifest",
                }
            )
            for (rule, action), n in t.counts.items():
                out.append(
                    {
                        "message_type": t.message_type,
                        "rule": rule,
                        "action": action,
                        "count": n,
                        "origin": t.origin,
                    }
                )
        return out

    def rows(self) -> list[dict[str, Any]]:
        """Every number as flat rows (section, message_type, item, action, count) for json/csv."""
        out: list[dict[str, Any]] = []
        for r in self.summary_rows():
            section = "rows" if r["rule"] == "rows" else "rule"
            out.append(
                {
                    "source": self.source,
                    "message_type": r["message_type"],
                    "section": section,
                    "item": r["rule"],
                    "action": r["action"],
                    "count": r["count"],
                    "origin": r["origin"],
                }
            )
        for t in self.types:
            for day, n in t.by_day():
                out.append(
                    {
                        "source": self.source,
                        "message_type": t.message_type,
                        "section": "coverage_day",
                        "item": day,
                        "action": "records",
                        "count": n,
                        "origin": self.timezone,
                    }
                )
            for hour, n in t.by_hour():
                out.append(
                    {
                        "source": self.source,
                        "message_type": t.message_type,
                        "section": "coverage_hour",
                        "item": hour,
                        "action": "records",
                        "count": n,
                        "origin": self.timezone,
                    }
                )
        return out

    def notes(self) -> list[str]:
        return [f"{t.message_type}: {n}" for t in self.types for n in t.notes]


def _day_key(label: str) -> tuple[str, int]:
    head, _, wd = label.partition(" ")
    return head, _WEEKDAYS.index(wd) if wd in _WEEKDAYS else -1


def _hour_key(label: str) -> tuple[int, str]:
    if label in _TIME_BINS:
        return _TIME_BINS.index(label), label
    return (int(label), label) if label.isdigit() else (99, label)


# -- gathering --------------------------------------------------------------------------------
def build_report(
    catalog: Catalog,
    source: str,
    message_type: str | None = None,
    *,
    timezone: str = "UTC",
    config: QualityConfig | None = None,
    start: date | str | None = None,
    end: date | str | None = None,
) -> QualityReport:
    """Gather the report of a source (all its message types, or one) from a catalog: of the
    local days start..end in `timezone` (a start alone: that day), or of all it holds. With
    days, the rows and rule counts are those of the partitions holding them (the unit an
    ingest records its counts by), the coverage that of the days' own hours."""
    tz = timezone_arg(timezone)
    src, types = check_source(source, message_type)
    days = None
    if start is not None or end is not None:
        if start is None:
            raise ConfigError("end needs start")
        d0 = parse_day(start, "start")
        d1 = parse_day(end, "end") if end is not None else d0
        check_day_order(d0, d1)
        days = (d0, d1)
    with catalog.db.read() as con:
        views = set(lake.table_columns(con)) | lake.view_names(con)
        window = None if days is None else utc_window(days[0], days[1], tz)
        parts = []
        for mt in types:
            keys = None if days is None else catalog.partition_keys(src, mt, *days, tz)
            parts.append(
                _type_quality(con, catalog, src, mt, views, tz, config, keys, window, days)
            )
    missing = [t for t in parts if t.view not in views]
    if len(missing) == len(parts):
        raise CatalogError(
            f"the catalog has no view {', '.join(t.view for t in missing)}; ingest "
            f"{src}/{missing[0].message_type} first"
        )
    return QualityReport(src, tz, parts, days)


def _type_quality(
    con: duckdb.DuckDBPyConnection,
    catalog: Catalog,
    source: str,
    message_type: str,
    views: set[str],
    tz: str,
    cfg: QualityConfig | None,
    keys: list[str] | None = None,
    window: tuple[datetime, datetime] | None = None,
    days: tuple[date, date] | None = None,
) -> TypeQuality:
    """cfg: the rules given (--config, CVCATALOG_QUALITY__*); None: the defaults. keys: only
    these partitions (the days asked for), window: only rows of this UTC range."""
    view = view_for(source, message_type)
    tq = TypeQuality(source, message_type, view)
    if view not in views:
        tq.notes.append(f"no view {view} in this catalog")
        return tq
    mapping = mapping_for(source, message_type)
    in_keys = "" if keys is None else " AND list_contains($keys, partition_key)"
    args: dict[str, Any] = {"source": source, "mt": message_type}
    if keys is not None:
        args["keys"] = keys
    row = con.execute(
        "SELECT coalesce(sum(rows), 0), count(*) FROM partitions "
        f"WHERE status = 'complete' AND source = $source AND message_type = $mt{in_keys}",
        args,
    ).fetchone()
    tq.rows, tq.partitions = (int(row[0]), int(row[1])) if row else (0, 0)
    relation = _within(con, view, mapping, window, keys)
    if tq.partitions == 0:  # a source whose loader keeps no manifest rows: the view's (of
        # the days)
        n = con.execute(f"SELECT count(*) FROM {relation}").fetchone()
        tq.rows = int(n[0]) if n else 0
    elif keys is not None and days is not None:
        tq.notes.extend(_partition_note(keys, days, FOLDER_TIMEZONE.get(source) == tz))
    if tq.rows == 0:  # said, so an empty table does not read as a clean one
        where = "" if window is None else " on these days"
        tq.notes.append(
            f"no rows in the catalog{where} (`cvcatalog ingest --source {source}` first)"
        )
        return tq

    recorded, with_stats = _recorded(con, source, message_type, tq.partitions, keys)
    if recorded:
        tq.counts, tq.origin = recorded, RECORDED
        if cfg is not None:  # it changed nothing: said, not silently passed over
            tq.notes.append(
                "the counts are those the ingest recorded, under its own configuration; the "
                "rules given (--config, CVCATALOG_QUALITY__*) are evaluated only where no "
                "stats were recorded"
            )
        if tq.partitions and with_stats < tq.partitions:
            tq.notes.append(
                f"quality stats recorded for {with_stats} of {tq.partitions} partitions; "
                "the others were ingested without them"
            )
    else:
        stats = _evaluate_now(
            con, catalog, source, message_type, relation, cfg or QualityConfig(), keys
        )
        tq.counts, tq.origin = dict(stats.counts), EVALUATED
        tq.counts.pop(("rows", "output"), None)
        tq.notes.append(
            "no quality stats recorded yet: rules evaluated now over the catalog "
            "(default configuration unless --config or CVCATALOG_QUALITY__* give one)"
        )
        tq.notes.extend(stats.notes)
    tq.coverage = _coverage(con, relation, mapping, tz)
    folder = FOLDER_TIMEZONE.get(source)
    shown = sorted({d for d, _, _ in tq.coverage})
    if folder is not None and folder != tz and mapping.time and shown and days is None:
        # a partial day read as one with little traffic (the heatmap's empty hours too); the
        # days asked for are cut to their own hours
        tq.notes.append(
            f"the catalog holds {source}'s {folder} days: in {tz} the first and last days "
            f"shown ({shown[0]}, {shown[-1]}) are partly outside them"
        )
    return tq


def _partition_note(keys: list[str], days: tuple[date, date], same_clock: bool) -> list[str]:
    """Where the partitions holding the days reach beyond them (a Denver day is parts of two
    UTC folder days; a NYCDOT bin, a weekday and time of day of a month): the counts are
    the partitions'. same_clock: the days are asked in the clock of the source's folders."""
    parts = sorted(PartitionKey.parse(k) for k in keys)
    asked = {days[0] + timedelta(days=i) for i in range((days[1] - days[0]).days + 1)}
    if not parts or (same_clock and all(p.bins is None and p.day in asked for p in parts)):
        return []
    binned = any(p.bins is not None for p in parts)
    return [
        f"rows and rule counts are those of the {len(parts)} partition(s) holding these days "
        f"({parts[0].key}..{parts[-1].key}); "
        + ("so is the coverage (a NYCDOT bin is a weekday and time of day of a month)"
           if binned else "the coverage is of the days alone")
    ]  # fmt: skip


def _recorded(
    con: duckdb.DuckDBPyConnection,
    source: str,
    message_type: str,
    partitions: int,
    keys: list[str] | None = None,
) -> tuple[dict[tuple[str, str], int], int]:
    """Counts summed over each partition's current run (the one that wrote its files), or
    over each partition's latest run for sources the manifest does not track; keys: only
    these partitions (a dataset records its stats per partition and unit: `<key>/<unit>`)."""
    if partitions:
        in_keys = "" if keys is None else " AND list_contains($keys, partition_key)"
        chosen = (
            "SELECT partition_key, run_id FROM partitions "
            f"WHERE status = 'complete' AND source = $source AND message_type = $mt{in_keys}"
        )
    else:
        in_keys = "" if keys is None else (
            " AND len(list_filter($keys, k -> partition_key = k "
            "OR starts_with(partition_key, k || '/'))) > 0"
        )  # fmt: skip
        chosen = (
            "SELECT partition_key, arg_max(run_id, created_at) AS run_id FROM quality_stats "
            f"WHERE source = $source AND message_type = $mt{in_keys} GROUP BY partition_key"
        )
    args: dict[str, Any] = {"source": source, "mt": message_type}
    if keys is not None:
        args["keys"] = keys
    rows = con.execute(
        f"WITH chosen AS ({chosen}) "
        "SELECT q.rule, q.action, sum(q.count)::BIGINT, count(DISTINCT q.partition_key) "
        "FROM quality_stats q JOIN chosen c USING (partition_key, run_id) "
        "WHERE q.source = $source AND q.message_type = $mt "
        "GROUP BY ALL ORDER BY min(q.created_at), q.rule, q.action",
        args,
    ).fetchall()
    counts = {(str(r), str(a)): int(n) for r, a, n, _ in rows}
    with_stats = max((int(p) for *_, p in rows), default=0)
    return _ordered(counts), with_stats


_RULE_ORDER = [
    "rows",
    "bounds",
    "speed",
    "accel",
    "derived_speed",
    "derived_accel",
    "outliers",
    "ordering",
    "duplicates",
    "jumps",
    "speed_spikes",
    "near_duplicates",
    "frozen",
    "gaps",
    "impute",
    "smoothing",
]


def _ordered(counts: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    def key(k: tuple[str, str]) -> tuple[int, str, str]:
        rule, action = k
        return (_RULE_ORDER.index(rule) if rule in _RULE_ORDER else 99, rule, action)

    return {k: counts[k] for k in sorted(counts, key=key)}


def _evaluate_now(
    con: duckdb.DuckDBPyConnection,
    catalog: Catalog,
    source: str,
    message_type: str,
    relation: str,
    cfg: QualityConfig,
    keys: list[str] | None = None,
) -> QualityStats:
    """The rules over the partitions' own files (source order known; keys: only these
    partitions'), else over the relation (the view, or its rows of the days: _within)."""
    mapping = mapping_for(source, message_type)
    schema = SCHEMAS.get((source, message_type))
    files: dict[str, Path] = {}
    if schema is not None:
        versions = (schema.compatible_since or schema.canonical_version, schema.canonical_version)
        for f in complete_data_files(con, source, message_type, versions):
            if keys is not None and f.partition_key not in keys:
                continue
            try:
                files[f.path] = catalog.paths.absolute(f.path)
            except CatalogError:
                files = {}
                break
    if files and all(p.exists() for p in files.values()):
        # the rows --check-changes deleted from kept files are not the catalog's: counted,
        # they were 'rows input' beyond the view's and duplicates of the objects' new rows
        cut = deletes.of_files(con, files)
        pairs = [(str(files[p]), k) for p, keys in cut.items() for k in keys]
        gone = deletes.gone_table(con, pairs) if pairs else None
        try:
            stats = evaluate_files(con, list(files.values()), mapping, cfg, gone=gone)
        finally:
            if gone is not None:
                con.execute(f"DROP TABLE IF EXISTS {gone}")
    else:  # a published (remote) catalog, or a loader without manifest rows
        stats = evaluate(con, relation, mapping, cfg)
    stats.counts = _ordered(stats.counts)
    return stats


def _within(
    con: duckdb.DuckDBPyConnection,
    view: str,
    mapping: Mapping,
    window: tuple[datetime, datetime] | None,
    keys: list[str] | None = None,
) -> str:
    """The view as a FROM item, cut to the UTC window on its time column when given, or for
    a type without one (NYCDOT's events, filed in weekday and time-of-day bins) to the bins of
    the partitions `keys`. The bounds are session variables: evaluate() runs SQL it builds
    around the relation, with no parameters of its own."""
    v = quote_ident(view)
    if window is None:
        return v
    if mapping.time is not None:
        con.execute("SET VARIABLE cvcatalog_report_lo = ?", [window[0]])
        con.execute("SET VARIABLE cvcatalog_report_hi = ?", [window[1]])
        t = quote_ident(mapping.time)
        return (
            f"(SELECT * FROM {v} WHERE {t} >= getvariable('cvcatalog_report_lo') "
            f"AND {t} < getvariable('cvcatalog_report_hi'))"
        )
    bins = [PartitionKey.parse(k) for k in keys or []]
    con.execute(
        "SET VARIABLE cvcatalog_report_bins = ?",
        [[f"{p.day:%Y-%m} {'/'.join(p.bins)}" for p in bins if p.bins is not None] or [""]],
    )
    return (
        f"(SELECT * FROM {v} WHERE list_contains(getvariable('cvcatalog_report_bins'), "
        "printf('%04d-%02d', year, month) || ' ' || weekday || '/' || time_bin))"
    )


def _coverage(
    con: duckdb.DuckDBPyConnection, relation: str, mapping: Mapping, tz: str
) -> list[tuple[str, str, int]]:
    """(day, hour, records) in the report's clock; NYCDOT events by their bins. relation: a
    FROM item (_within)."""
    v = relation
    time_col = mapping.time
    if time_col is None:
        # NYCDOT events are binned: month and weekday bin, time-of-day bin
        sql = (
            f"SELECT printf('%04d-%02d', year, month) || ' ' || weekday, time_bin, count(*) "
            f"FROM {v} GROUP BY ALL"
        )
        rows = con.execute(sql).fetchall()
    else:
        t = f"timezone($tz, {quote_ident(time_col)})"
        sql = (
            f"SELECT strftime({t}, '%Y-%m-%d'), strftime({t}, '%H'), count(*) FROM {v} "
            f"WHERE {quote_ident(time_col)} IS NOT NULL GROUP BY ALL"
        )
        rows = con.execute(sql, {"tz": tz}).fetchall()
    return sorted(
        ((str(d), str(h), int(n)) for d, h, n in rows),
        key=lambda r: (_day_key(r[0]), _hour_key(r[1])),
    )


# -- rendering --------------------------------------------------------------------------------
def render_png(report: QualityReport) -> bytes:
    """Three panels per message type: invalid by rule, records per day, day x hour heatmap."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # message types without records only say "no data": leave them out unless all are empty
    types = [t for t in report.types if t.rows] or report.types
    n = max(1, len(types))
    fig = Figure(figsize=(15, 3.6 * n), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, 3, squeeze=False)
    fig.suptitle(f"Data quality: {report.source} ({report.span}times in {report.timezone})")
    for row, t in zip(axes, types, strict=False):
        a_rule, a_day, a_heat = row
        flagged = [
            (f"{rule} ({action})", cnt)
            for (rule, action), cnt in t.counts.items()
            if rule != "rows"
        ]
        a_rule.set_title(f"{t.message_type}: invalid by rule ({t.origin}; {t.rows:,} rows)")
        if flagged:
            labels, values = zip(*flagged, strict=True)
            ypos = np.arange(len(labels))
            a_rule.barh(ypos, values, color="#c0504d")
            a_rule.set_yticks(ypos, labels=labels, fontsize=8)
            a_rule.invert_yaxis()
            for y, val in zip(ypos, values, strict=True):
                a_rule.annotate(
                    f"{val:,}",
                    (val, y),
                    xytext=(3, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=7,
                )
        else:
            _empty(a_rule, "no rule counts")
        days = t.by_day()
        a_day.set_title(f"{t.message_type}: records per day")
        if days:
            xs = np.arange(len(days))
            a_day.bar(xs, [c for _, c in days], color="#4f81bd")
            step = max(1, len(days) // 12)
            a_day.set_xticks(
                xs[::step], labels=[d for d, _ in days][::step], rotation=45, ha="right", fontsize=7
            )
        else:
            _empty(a_day, "no records")
        a_heat.set_title(f"{t.message_type}: records by day and hour")
        if t.coverage:
            day_labels = [d for d, _ in days]
            hour_labels = _hour_axis(t)
            grid = np.zeros((len(day_labels), len(hour_labels)))
            di = {d: i for i, d in enumerate(day_labels)}
            hi = {h: i for i, h in enumerate(hour_labels)}
            for d, h, c in t.coverage:
                grid[di[d], hi[h]] += c
            im = a_heat.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
            a_heat.set_xticks(range(len(hour_labels)), labels=hour_labels, fontsize=6)
            step = max(1, len(day_labels) // 12)
            a_heat.set_yticks(
                range(0, len(day_labels), step), labels=day_labels[::step], fontsize=7
            )
            fig.colorbar(im, ax=a_heat, shrink=0.8)
        else:
            _empty(a_heat, "no records")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def _hour_axis(t: TypeQuality) -> list[str]:
    seen = {h for _, h, _ in t.coverage}
    if seen <= set(_TIME_BINS):
        return [b for b in _TIME_BINS if b in seen]
    return [f"{h:02d}" for h in range(24)] + sorted(s for s in seen if not s.isdigit())


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def render_html(
    report: QualityReport, png: bytes | None = None, maps: list[str] | None = None
) -> str:
    """A self-contained page: summary, coverage tables and the PNG inline; every value escaped.
    `maps`: coverage map pages to link (relative paths); the command that draws them is
    always given."""
    e = html.escape

    def table(headers: list[str], rows: list[list[Any]]) -> str:
        head = "".join(f"<th>{e(str(h))}</th>" for h in headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{e(_cell(v))}</td>" for v in r) + "</tr>" for r in rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Data quality: {e(report.source)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;}table{border-collapse:collapse;"
        "margin:0.5em 0 1.5em;}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right;}"
        "th{background:#eee;}td:first-child,th:first-child{text-align:left;}"
        "img{max-width:100%;}</style></head><body>",
        f"<h1>Data quality: {e(report.source)}</h1>",
        f"<p>{e(report.span)}Times in {e(report.timezone)}.</p>",
        "<h2>Summary</h2>",
        table(
            ["message type", "rule", "action", "count", "origin"],
            [
                [r["message_type"], r["rule"], r["action"], r["count"], r["origin"]]
                for r in report.summary_rows()
            ],
        ),
    ]
    notes = report.notes()
    if notes:
        parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    if png:
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<img alt="quality charts" src="data:image/png;base64,{data}">')
    for t in report.types:
        parts.append(f"<h2>{e(t.message_type)}: coverage by day</h2>")
        parts.append(table(["day", "records"], [[d, n] for d, n in t.by_day()]))
        parts.append(f"<h2>{e(t.message_type)}: coverage by {t.hour_unit}</h2>")
        parts.append(
            table([t.hour_unit, "records"], [[h, n] for h, n in t.by_hour()])
        )
    parts.append("<h2>Maps</h2>")
    if maps:
        links = "".join(f'<li><a href="{e(m, quote=True)}">{e(m)}</a></li>' for m in maps)
        parts.append(f"<ul>{links}</ul>")
    for t in report.types:
        days = t.by_day()
        if days and _is_day(days[0][0]) and _is_day(days[-1][0]) and _mappable(t):
            cmd = coverage_command(
                report.source, t.message_type, days[0][0], days[-1][0], report.timezone
            )
            parts.append(f"<p>Point density of {e(t.message_type)}: <code>{e(cmd)}</code></p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _is_day(label: str) -> bool:
    return len(label) == 10 and label[4] == "-" and label[7] == "-"


def _mappable(t: TypeQuality) -> bool:
    """Whether the type's records have positions (report coverage can map them)."""
    try:
        m = mapping_for(t.source, t.message_type)
    except ConfigError:
        return False
    return getattr(m, "latitude", None) is not None


def _cell(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)
