"""NGSIM-shaped trajectory CSV for tests, the demo and the benchmark.

Vehicles enter each lane of a site one after another and follow their leader with the
Intelligent Driver Model at 10 Hz (the lane's first vehicle follows a slow stop-and-go wave, or
a signal on the arterials), so speeds, accelerations, headways and preceding/following ids are
consistent with each other. Global_X/Y are in the State Plane zone of the real site, near it.
Several recording periods per site restart Vehicle_ID at 1, as the real data does, and rows are
written vehicle by vehicle (as in the published file) while only one trajectory per lane is
kept in memory, so ~1.5 GB can be written in constant memory. Deterministic for a seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import IO

from cvcatalog.config import at_least, spelled
from cvcatalog.datasets.ngsim import CSV_NAMES, FT, LOCATIONS, check_location
from cvcatalog.exceptions import SandboxError
from cvcatalog.io.layout import replacing

DT = 0.1


@dataclass(frozen=True)
class Site:
    location: str
    anchor: tuple[float, float]  # State Plane ftUS of Local (0, 0)
    bearing_deg: float  # direction of travel (+Local_Y), counter-clockwise from east
    lanes: int
    length_ft: float
    v0_mps: float  # desired speed
    arterial: bool
    periods: tuple[datetime, ...]


_PDT = timezone(timedelta(hours=-7))
_EST = timezone(timedelta(hours=-5))

SITES: dict[str, Site] = {
    "us-101": Site(
        "us-101",
        (6451218.6, 1873167.5),
        -45.0,
        5,
        2100.0,
        26.0,
        False,
        tuple(datetime(2005, 6, 15, h, m, tzinfo=_PDT) for h, m in ((7, 50), (8, 5), (8, 20))),
    ),
    "i-80": Site(
        "i-80",
        (6042197.1, 2132953.9),
        80.0,
        6,
        1650.0,
        26.0,
        False,
        # the last two periods start after midnight UTC: a second date partition
        tuple(datetime(2005, 4, 13, h, m, tzinfo=_PDT) for h, m in ((16, 0), (17, 0), (17, 15))),
    ),
    "lankershim": Site(
        "lankershim",
        (6452219.1, 1873709.7),
        100.0,
        3,
        1600.0,
        15.0,
        True,
        tuple(datetime(2005, 6, 16, h, m, tzinfo=_PDT) for h, m in ((8, 28), (8, 45))),
    ),
    "peachtree": Site(
        "peachtree",
        (2230214.7, 1375989.2),
        90.0,
        2,
        2100.0,
        14.0,
        True,
        tuple(datetime(2006, 11, 8, h, m, tzinfo=_EST) for h, m in ((12, 45), (16, 0))),
    ),
}


@dataclass
class GenReport:
    """What was written: counts the tests check the ingest against."""

    rows: int = 0  # valid data lines
    bad_rows: int = 0  # deliberately broken lines
    bytes: int = 0
    vehicles: int = 0
    per_location: dict[str, int] = field(default_factory=dict)
    periods: dict[str, list[int]] = field(default_factory=dict)  # location -> period start ms

    @property
    def data_lines(self) -> int:
        return self.rows + self.bad_rows


@dataclass
class _Traj:
    vid: int
    frame0: int
    y: list[float]  # m
    v: list[float]
    length_m: float

    def at(self, frame: int) -> tuple[float, float] | None:
        i = frame - self.frame0
        if 0 <= i < len(self.y):
            return self.y[i], self.v[i]
        return None


@dataclass
class _Pending:
    """A simulated vehicle waiting for its follower's id before its rows are written."""

    traj: _Traj
    lane: int
    cls: int
    width_ft: float
    accel: list[float]
    lead_id: list[int]
    lead_gap: list[float]  # front-to-front, m (0 without a leader)
    x_ft: list[float]
    zones: tuple[int, int, int, int, int, int]


def _idm(v: float, v0: float, gap: float, dv: float, t_head: float) -> float:
    a_max, b, s0 = 1.4, 2.0, 2.0
    s_star = s0 + max(0.0, v * t_head + v * dv / (2 * math.sqrt(a_max * b)))
    free = 1 - (v / v0) ** 4 if v0 > 0 else -1.0
    return a_max * (free - (s_star / max(gap, 0.1)) ** 2)


class _Lane:
    def __init__(self) -> None:
        self.last: _Traj | None = None
        self.pending: _Pending | None = None
        self.next_entry = 0


def _simulate(
    rng: random.Random, site: Site, lead: _Traj | None, vid: int, entry: int, wave_phase: float
) -> tuple[_Traj, list[float], list[int], list[float]]:
    length_m = site.length_ft * FT
    v0 = site.v0_mps * rng.uniform(0.85, 1.1)
    t_head = rng.uniform(1.0, 1.8)
    veh_len = rng.choice((4.4, 4.4, 4.4, 4.8, 5.2, 13.0, 2.2))
    start = lead.at(entry) if lead else None
    v = min(start[1], v0) if start else v0 * 0.7
    y = 0.0
    ys: list[float] = []
    vs: list[float] = []
    accs: list[float] = []
    leads: list[int] = []
    gaps: list[float] = []
    frame = entry
    while y <= length_m and len(ys) < 30000:
        t = frame * DT
        here = lead.at(frame) if lead else None
        if here is not None:
            gap = here[0] - y - lead.length_m if lead else 1e9
            a = _idm(v, v0, gap, v - here[1], t_head)
            leads.append(lead.vid if lead else 0)
            gaps.append(here[0] - y)
        else:
            if site.arterial:  # a signal halfway along: 40 s red of a 90 s cycle
                stop = length_m / 2
                red = (t + wave_phase * 90) % 90 < 40
                gap = stop - y if red and y < stop - 1 else 1e9
                a = _idm(v, v0, gap, v, t_head)
            else:  # stop-and-go wave with a ~2 min period
                v_wave = v0 * (0.55 + 0.45 * math.sin(2 * math.pi * (t / 120 + wave_phase)))
                a = _idm(v, v_wave, 1e9, 0.0, t_head)
            leads.append(0)
            gaps.append(0.0)
        a = max(-3.4, min(3.4, a))
        ys.append(y)
        vs.append(v)
        accs.append(a)
        v_next = max(0.0, v + a * DT)
        y_next = y + (v + v_next) / 2 * DT
        if here is not None and lead is not None:  # never closer than 0.5 m bumper to bumper
            y_next = min(y_next, max(y, here[0] - lead.length_m - 0.5))
            v_next = min(v_next, (y_next - y) / DT * 2) if y_next > y else 0.0
        v, y = v_next, y_next
        frame += 1
    return _Traj(vid, entry, ys, vs, veh_len), accs, leads, gaps


def _write_vehicle(
    out: IO[str], site: Site, p: _Pending, follower: tuple[int, int] | None, period_ms: int
) -> int:
    """The vehicle's rows; follower = (id, entry frame) of the next vehicle in its lane."""
    ang = math.radians(site.bearing_deg)
    ux, uy = math.cos(ang), math.sin(ang)  # along the road
    px, py = math.sin(ang), -math.cos(ang)  # to the right of travel
    ax, ay = site.anchor
    t = p.traj
    n = len(t.y)
    length_ft = t.length_m / FT
    o_zone, d_zone, int_id, section_id, direction, movement = p.zones
    zones = (
        f"{o_zone},{d_zone},{int_id},{section_id},{direction},{movement}"
        if site.arterial
        else ",,,,,"
    )
    head = f"{t.vid},"
    tail = f",{site.location}\n"
    lines = []
    for i in range(n):
        frame = t.frame0 + i
        y_ft = t.y[i] / FT
        x_ft = p.x_ft[i]
        gx = ax + y_ft * ux + x_ft * px
        gy = ay + y_ft * uy + x_ft * py
        v_fts = t.v[i] / FT
        lead = p.lead_id[i]
        fol = follower[0] if follower is not None and frame >= follower[1] else 0
        if lead:
            space = p.lead_gap[i] / FT
            th = space / v_fts if v_fts > 0.1 else 9999.99
            heads = f"{space:.2f},{th:.2f}"
        else:
            heads = "0.00,9999.99"
        lines.append(
            f"{head}{frame},{n},{period_ms + 100 * frame},{x_ft:.3f},{y_ft:.3f},{gx:.3f},"
            f"{gy:.3f},{length_ft:.1f},{p.width_ft:.1f},{p.cls},{v_fts:.2f},"
            f"{p.accel[i] / FT:.2f},{p.lane},{zones},{lead},{fol},{heads}{tail}"
        )
    out.write("".join(lines))
    return n


def generate_ngsim(
    out: str | Path | IO[str],
    rows: int,
    *,
    locations: Sequence[str] | None = None,
    seed: int = 42,
    bad_rows: int = 0,
    names: Mapping[str, str] | None = None,
) -> GenReport:
    """Write about `rows` valid trajectory rows (whole vehicles, so slightly more) spread over
    the locations and their periods, plus `bad_rows` broken lines of several kinds. An argument
    it cannot honour is a ConfigError naming it as `names` spells it (`sandbox ngsim`: its
    flags), a file it cannot write a SandboxError (one line each). A path is written under a
    temporary name beside it and renamed into place at the end (replacing), so an interrupted
    or failed run leaves no half file there, nor a truncated earlier one."""
    # spelled as ingest --location takes them ('US_101', ' I-80 '): one line for any other
    locs = [check_location(loc) for loc in (locations or LOCATIONS)]
    at_least(spelled(names, "rows"), rows, 1)
    at_least(spelled(names, "bad_rows"), bad_rows, 0)
    if not isinstance(out, str | Path):
        return _write_ngsim(out, rows, locs, seed, bad_rows)
    try:
        with (
            replacing(Path(out)) as tmp,
            open(tmp, "w", encoding="utf-8", newline="", buffering=1 << 20) as f,
        ):
            return _write_ngsim(f, rows, locs, seed, bad_rows)
    except OSError as e:
        raise SandboxError(f"cannot write {out}: {e.strerror or e}") from None


def _write_ngsim(out: IO[str], rows: int, locs: list[str], seed: int, bad_rows: int) -> GenReport:
    """generate_ngsim's CSV, its arguments checked."""
    rep = GenReport()
    out.write(",".join(CSV_NAMES) + "\n")
    blocks = [(SITES[loc], p) for loc in locs for p in SITES[loc].periods]
    per_block = max(1, rows // len(blocks))
    bad_every = max(1, (rows // bad_rows)) if bad_rows else 0
    bad_kinds = _bad_line_makers()
    next_bad = bad_every
    for b, (site, period) in enumerate(blocks):
        target = per_block if b < len(blocks) - 1 else max(1, rows - rep.rows)
        rng = random.Random(f"{seed}:{site.location}:{period.isoformat()}")
        period_ms = int(period.astimezone(UTC).timestamp() * 1000)
        rep.periods.setdefault(site.location, []).append(period_ms)
        lanes = [_Lane() for _ in range(site.lanes)]
        for lane in lanes:
            lane.next_entry = rng.randint(1, 30)
        vid = 0
        written = 0
        while written < target:
            li = min(range(len(lanes)), key=lambda i: (lanes[i].next_entry, i))
            lane = lanes[li]
            entry = lane.next_entry
            lead = lane.last
            while lead is not None and (pos := lead.at(entry)) is not None and pos[0] < 12.0:
                entry += 5  # let the leader clear the entry
            vid += 1
            traj, accs, leads, gaps = _simulate(rng, site, lead, vid, entry, rng.random())
            cls = 3 if traj.length_m > 10 else (1 if traj.length_m < 3 else 2)
            width = {1: 3.0, 2: rng.choice((5.9, 6.2, 6.5)), 3: 8.5}[cls]
            x0 = (li + 0.5) * 12.0
            drift = rng.uniform(-0.6, 0.6)
            xs = [x0 + drift * math.sin(i / 80.0) for i in range(len(traj.y))]
            zones = (
                rng.randint(101, 123),
                rng.randint(201, 223),
                rng.randint(1, 4),
                rng.randint(1, 5),
                rng.randint(1, 4),
                rng.randint(1, 3),
            )
            pending = _Pending(traj, li + 1, cls, width, accs, leads, gaps, xs, zones)
            if lane.pending is not None:
                written += _write_vehicle(out, site, lane.pending, (vid, entry), period_ms)
            lane.pending = pending
            lane.last = traj
            lane.next_entry = entry + rng.randint(12, 35)
            rep.vehicles += 1
            while bad_every and rep.rows + written >= next_bad and rep.bad_rows < bad_rows:
                out.write(bad_kinds[rep.bad_rows % len(bad_kinds)](site, period_ms, rng))
                rep.bad_rows += 1
                next_bad += bad_every
        for lane in lanes:
            if lane.pending is not None:
                written += _write_vehicle(out, site, lane.pending, None, period_ms)
        rep.rows += written
        rep.per_location[site.location] = rep.per_location.get(site.location, 0) + written
    while rep.bad_rows < bad_rows:  # very small files
        site = SITES[locs[0]]
        out.write(bad_kinds[rep.bad_rows % len(bad_kinds)](site, 0, random.Random(rep.bad_rows)))
        rep.bad_rows += 1
    out.flush()
    if hasattr(out, "tell"):
        try:
            rep.bytes = out.tell()
        except OSError:
            rep.bytes = 0
    return rep


def _bad_line_makers() -> list[Callable[[Site, int, random.Random], str]]:
    """Broken lines of the kinds the ingest must quarantine (not crash on)."""

    def good(site: Site, period_ms: int) -> list[str]:
        return (
            f"999,10,20,{period_ms + 1000},6.0,100.0,{site.anchor[0]:.3f},{site.anchor[1]:.3f},"
            f"14.5,6.0,2,30.00,0.00,1,,,,,,,0,0,0.00,9999.99,{site.location}"
        ).split(",")

    def few_fields(site: Site, period_ms: int, rng: random.Random) -> str:
        return ",".join(good(site, period_ms)[:12]) + "\n"

    def not_a_number(site: Site, period_ms: int, rng: random.Random) -> str:
        f = good(site, period_ms)
        f[5] = "abc"
        return ",".join(f) + "\n"

    def missing_id(site: Site, period_ms: int, rng: random.Random) -> str:
        f = good(site, period_ms)
        f[0] = ""
        return ",".join(f) + "\n"

    def unknown_location(site: Site, period_ms: int, rng: random.Random) -> str:
        f = good(site, period_ms)
        f[-1] = "atlantis"
        return ",".join(f) + "\n"

    return [few_fields, not_a_number, missing_id, unknown_location]
