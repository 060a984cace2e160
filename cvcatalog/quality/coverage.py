"""`report coverage`: where the points of a date range are, as hexbin density maps.

Offline by design: no tile server, no basemap download; the context is a light latitude /
longitude graticule. The points never leave DuckDB one by one: the view is aggregated in SQL
into fine latitude/longitude cells (at most MAX_CELLS of them, about a thousand across the
data's extent), the cell centres are projected with pyproj into a Lambert azimuthal
equal-area projection centred on the data, and matplotlib's hexbin sums the cells' counts
into hexagons (each hexagon far larger than a cell), so every hexagon's area on the ground is
the same and its colour is a density. Memory depends on the number of cells, never on rows.
The HTML page embeds the PNG and a table of rows per day; the counts come from the same query,
so they add up to exactly the rows of the range.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np

from cvcatalog.config import check_day_order, parse_day, timezone_arg
from cvcatalog.datasets import source_filter
from cvcatalog.exceptions import CatalogError, ConfigError
from cvcatalog.io import lake
from cvcatalog.quality.mapping import TrajectoryMapping, mapping_for, quality_sources, view_for
from cvcatalog.sources.bucket import utc_window
from cvcatalog.sqlutil import quote_ident

if TYPE_CHECKING:
    from cvcatalog.catalog import Catalog

#: fine cells the SQL aggregation may return (about 1000 x 1000 over the data's extent)
MAX_CELLS_ACROSS = 1000
#: hexagons across the map
GRIDSIZE = 60
#: panels of a per-day figure at most (the HTML table still lists every day)
MAX_DAY_PANELS = 62


@dataclass
class CoverageReport:
    """Counts of one (source, type) over local days start..end, and the binned positions."""

    source: str
    message_type: str
    view: str
    start: date
    end: date
    timezone: str
    #: (local day, rows, rows with a position)
    days: list[tuple[str, int, int]] = field(default_factory=list)
    #: fine cells: centre latitude, longitude and count, and the local day of each
    lat: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lon: np.ndarray = field(default_factory=lambda: np.zeros(0))
    count: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    day: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    cell_deg: float = 0.0
    per_day: bool = False

    @property
    def rows(self) -> int:
        return sum(n for _, n, _ in self.days)

    @property
    def positioned(self) -> int:
        return sum(p for _, _, p in self.days)

    def projection(self) -> str:
        """The PROJ string of the equal-area projection centred on the data."""
        lat0, lon0 = _centre(self.lat, self.lon)
        return f"+proj=laea +lat_0={lat0:.4f} +lon_0={lon0:.4f} +datum=WGS84 +units=m +no_defs"

    def rows_table(self) -> list[dict[str, Any]]:
        return [
            {"day": d, "rows": n, "with_position": p, "without_position": n - p}
            for d, n, p in self.days
        ]


def check_source(source: str, message_type: str | None = None) -> tuple[str, list[str]]:
    """Normalise a source (and optional type) against the sources the quality rules know."""
    source_filter(source, message_type)  # every command's check and line for a bad one
    known = quality_sources()
    src = source.strip().lower()
    if src not in known:
        raise ConfigError(f"unknown source {source!r}; expected one of {', '.join(known)}")
    if message_type is None:
        return src, list(known[src])
    mt = message_type.strip().upper()
    if mt not in known[src]:
        raise ConfigError(
            f"source {src!r} has no message type {message_type!r}; it has {', '.join(known[src])}"
        )
    return src, [mt]


def coverage_command(
    source: str, message_type: str, start: str, end: str, timezone: str = "UTC"
) -> str:
    """The CLI command that draws these maps (the quality report prints it)."""
    tz = "" if timezone == "UTC" else f" --timezone {timezone}"
    return (
        f"cvcatalog report coverage --source {source} --type {message_type} --start {start} "
        f"--end {end}{tz} --png coverage.png --html coverage.html"
    )


def positioned_type(source: str, message_type: str | None = None) -> tuple[str, str]:
    """The (source, type) whose positions a map shows: the type given, or else the source's
    one type with positions (every source has one: BSM, NGSIM's TRAJECTORY)."""
    src, types = check_source(source, message_type)
    with_positions = [t for t in types if _positions(src, t)]
    if message_type is not None and not with_positions:
        raise ConfigError(f"{src}/{types[0]} records have no position to map")
    if not with_positions:  # (it asked for a --type that no type of the source could be)
        raise ConfigError(f"{src} records have no position to map ({', '.join(types)})")
    if len(with_positions) != 1:
        raise ConfigError(f"--type is needed: {src} has positions in {', '.join(with_positions)}")
    return src, with_positions[0]


def _positions(source: str, message_type: str) -> bool:
    m = mapping_for(source, message_type)
    return isinstance(m, TrajectoryMapping) and m.latitude is not None and m.longitude is not None


def build_coverage(
    catalog: Catalog,
    source: str,
    message_type: str | None,
    start: date | str,
    end: date | str | None = None,
    *,
    timezone: str = "UTC",
    per_day: bool = False,
) -> CoverageReport:
    """Count and bin the positions of local days start..end (inclusive) in SQL; message_type
    None: the source's type with positions (positioned_type)."""
    tz = timezone_arg(timezone)
    src, mt = positioned_type(source, message_type)
    d0 = parse_day(start, "--start")
    d1 = parse_day(end if end is not None else start, "--end")
    check_day_order(d0, d1)
    mapping = mapping_for(src, mt)
    assert isinstance(mapping, TrajectoryMapping)
    assert mapping.latitude is not None and mapping.longitude is not None
    view = view_for(src, mt)
    lo, hi = utc_window(d0, d1, tz)
    rep = CoverageReport(src, mt, view, d0, d1, tz, per_day=per_day)
    t, la, lo_c = (quote_ident(c) for c in (mapping.time, mapping.latitude, mapping.longitude))
    valid = f"{la} BETWEEN -90 AND 90 AND {lo_c} BETWEEN -180 AND 180"
    local_day = f"strftime(timezone($tz, {t}), '%Y-%m-%d')"
    rng = f"FROM {quote_ident(view)} WHERE {t} >= $lo AND {t} < $hi"
    args: dict[str, Any] = {"tz": tz, "lo": lo, "hi": hi}
    with catalog.db.read() as con:
        if view not in set(lake.table_columns(con)) | lake.view_names(con):
            raise CatalogError(f"the catalog has no view {view}; ingest {src}/{mt} first")
        rep.days = [
            (str(d), int(n), int(p))
            for d, n, p in con.execute(
                f"SELECT {local_day} AS d, count(*), count(*) FILTER (WHERE {valid}) "
                f"{rng} GROUP BY d ORDER BY d",
                args,
            ).fetchall()
        ]
        if rep.positioned == 0:
            return rep
        ext = con.execute(
            f"SELECT min({la}), max({la}), min({lo_c}), max({lo_c}) {rng} AND {valid}",
            {"lo": lo, "hi": hi},
        ).fetchone()
        assert ext is not None
        span = max(float(ext[1]) - float(ext[0]), float(ext[3]) - float(ext[2]), 1e-6)
        rep.cell_deg = _nice_cell(span / MAX_CELLS_ACROSS)
        day_item = f"{local_day}" if per_day else "NULL"
        cells = con.execute(
            f"SELECT (floor({la} / $c) + 0.5) * $c AS clat, (floor({lo_c} / $c) + 0.5) * $c "
            f"AS clon, {day_item} AS d, count(*) AS n {rng} AND {valid} GROUP BY ALL",
            {**(args if per_day else {"lo": lo, "hi": hi}), "c": rep.cell_deg},
        ).fetchnumpy()
    rep.lat = np.asarray(cells["clat"], dtype=float)
    rep.lon = np.asarray(cells["clon"], dtype=float)
    rep.count = np.asarray(cells["n"], dtype=np.int64)
    rep.day = np.asarray(cells["d"], dtype=object)
    return rep


def _nice_cell(raw: float) -> float:
    """A round cell size (1, 2 or 5 x 10^k degrees) at or below raw."""
    exp = math.floor(math.log10(raw))
    for m in (5, 2, 1):
        if m * 10**exp <= raw:
            return float(m * 10**exp)
    return float(10**exp)


def _centre(lat: np.ndarray, lon: np.ndarray) -> tuple[float, float]:
    """The middle of the data's extent (the projection's centre)."""
    if len(lat) == 0:
        return 0.0, 0.0
    return float((lat.min() + lat.max()) / 2), float((lon.min() + lon.max()) / 2)


# -- rendering --------------------------------------------------------------------------------
def render_png(rep: CoverageReport) -> bytes:
    """The map of the whole range, then (per_day) one small map per day on the same hexagons
    and colour scale."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure
    from pyproj import Transformer

    days = [d for d, _, p in rep.days if p] if rep.per_day else []
    shown = days[:MAX_DAY_PANELS]
    n = 1 + len(shown)
    ncols = 1 if n == 1 else min(3, n)
    nrows = math.ceil(n / ncols)
    x = y = np.zeros(0)
    proj = ""
    aspect = 0.75
    if rep.positioned:
        proj = rep.projection()
        to_map = Transformer.from_crs("EPSG:4326", proj, always_xy=True)
        xs, ys = to_map.transform(rep.lon, rep.lat)
        x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
        aspect = min(1.2, max(0.25, (np.ptp(y) + 1.0) / (np.ptp(x) + 1.0)))
    width = 10.0 if n == 1 else 5.0 * ncols
    height = (width / ncols) * aspect * nrows + 1.2
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    title = (
        f"{rep.source}/{rep.message_type}: points {rep.start} .. {rep.end} ({rep.timezone}), "
        f"{rep.positioned:,} with a position"
    )
    fig.suptitle(title)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_axis_off()
    if rep.positioned == 0:
        axes[0].text(0.5, 0.5, "no points in this range", ha="center", va="center")
        axes[0].set_axis_off()
        return _png(fig)
    pad = max(np.ptp(x), np.ptp(y), 1000.0) * 0.05
    extent = (x.min() - pad, x.max() + pad, y.min() - pad, y.max() + pad)
    counts = rep.count.astype(float)
    # regular hexagons: rows of centres sqrt(3) hexagon widths apart, whatever the extent
    hex_w = (extent[1] - extent[0]) / GRIDSIZE
    grid = (GRIDSIZE, max(1, round((extent[3] - extent[2]) / (math.sqrt(3) * hex_w))))
    norm = LogNorm(vmin=1)

    def panel(ax: Any, sel: np.ndarray, label: str) -> Any:
        hb = ax.hexbin(
            x[sel], y[sel], C=counts[sel], reduce_C_function=np.sum, gridsize=grid,
            extent=extent, cmap="viridis", norm=norm, mincnt=1, linewidths=0.1,
        )  # fmt: skip
        _graticule(ax, to_map, extent)
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_aspect("equal")
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        return hb

    hb = panel(axes[0], np.ones(len(x), dtype=bool), "all days")
    norm.vmax = max(1.0, float(np.max(hb.get_array())))  # every panel on the same scale
    for ax, d in zip(axes[1:n], shown, strict=True):
        panel(ax, rep.day == d, d)
    hex_km = hex_w / 1000
    fig.colorbar(hb, ax=list(axes[:n]), shrink=0.7, label=f"points per hexagon (~{hex_km:.2g} km)")
    fig.text(0.01, 0.005, f"equal-area projection: {proj}", fontsize=6, color="grey")
    return _png(fig)


def _graticule(ax: Any, to_map: Any, extent: tuple[float, float, float, float]) -> None:
    """Light latitude/longitude lines over the map's extent, labelled at the edges."""
    back = to_map.transform(
        [extent[0], extent[1], extent[0], extent[1]],
        [extent[2], extent[2], extent[3], extent[3]],
        direction="INVERSE",
    )
    lon0, lon1 = min(back[0]), max(back[0])
    lat0, lat1 = min(back[1]), max(back[1])
    step = _nice_cell(max(lon1 - lon0, lat1 - lat0) / 4)
    for lon in np.arange(math.floor(lon0 / step) * step, lon1 + step, step):
        lats = np.linspace(lat0 - step, lat1 + step, 50)
        gx, gy = to_map.transform(np.full_like(lats, lon), lats)
        ax.plot(gx, gy, color="#bbbbbb", lw=0.5, zorder=0)
        ax.annotate(f"{lon:g}°", (float(np.mean(gx)), extent[2]), fontsize=6, color="grey",
                    ha="center", va="bottom", annotation_clip=True)  # fmt: skip
    for lat in np.arange(math.floor(lat0 / step) * step, lat1 + step, step):
        lons = np.linspace(lon0 - step, lon1 + step, 50)
        gx, gy = to_map.transform(lons, np.full_like(lons, lat))
        ax.plot(gx, gy, color="#bbbbbb", lw=0.5, zorder=0)
        ax.annotate(f"{lat:g}°", (extent[0], float(np.mean(gy))), fontsize=6, color="grey",
                    ha="left", va="center", annotation_clip=True)  # fmt: skip


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def render_html(rep: CoverageReport, png: bytes | None = None) -> str:
    """A self-contained page: the map(s) inline and rows per day; every value escaped."""
    e = html.escape
    rows = rep.rows_table()
    body = "".join(
        f"<tr><td>{e(r['day'])}</td><td>{r['rows']:,}</td><td>{r['with_position']:,}</td>"
        f"<td>{r['without_position']:,}</td></tr>"
        for r in rows
    )
    total = (
        f"<tr><th>total</th><th>{rep.rows:,}</th><th>{rep.positioned:,}</th>"
        f"<th>{rep.rows - rep.positioned:,}</th></tr>"
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Coverage: {e(rep.source)}/{e(rep.message_type)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;}table{border-collapse:collapse;"
        "margin:0.5em 0 1.5em;}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right;}"
        "th{background:#eee;}td:first-child,th:first-child{text-align:left;}"
        "img{max-width:100%;}</style></head><body>",
        f"<h1>Coverage: {e(rep.source)}/{e(rep.message_type)}</h1>",
        f"<p>Local days {e(str(rep.start))} to {e(str(rep.end))} ({e(rep.timezone)}), view "
        f'<code>{e(rep.view)}</code>: <span id="rows">{rep.rows:,}</span> rows, '
        f"{rep.positioned:,} with a valid position.</p>",
    ]
    if rep.positioned:
        parts.append(
            f"<p>Hexagons in an equal-area projection (<code>{e(rep.projection())}</code>); "
            f"positions binned in SQL into {rep.cell_deg:g}&deg; cells first, then summed into "
            "hexagons. No basemap: the grey lines are the latitude/longitude graticule.</p>"
        )
    if png:
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<img alt="coverage map" src="data:image/png;base64,{data}">')
    parts += [
        "<h2>Rows per day</h2>",
        "<table><thead><tr><th>day</th><th>rows</th><th>with position</th>"
        f"<th>without position</th></tr></thead><tbody>{body}{total}</tbody></table>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
