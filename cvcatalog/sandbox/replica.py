"""A realistic, deterministic replica of the CV Pilot bucket for the local sandbox.

The demo, the tests and the benchmarks all need a bucket that looks like the real one (key layout,
object naming, NDJSON vs pretty-printed era, schema versions, empty hours and days, the odd broken
line) without any network. Everything here is derived from ``random.Random`` instances seeded from
``seed`` plus the partition and hour, so each hour is generated independently (streaming, in any
order) and the same seed always gives the same bytes.

Only WYDOT BSM (``wydot`` and ``wydot_backup``) has a generator today. Other (source, type) pairs
plug in through :data:`GENERATORS`: a function that turns one :class:`HourContext` into the objects
of that folder hour.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import multiprocessing
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from cvcatalog.exceptions import CvCatalogError, SandboxError
from cvcatalog.io.s3 import Retrier, classify_error, translate_error
from cvcatalog.schemas.nycdot import NYCDOT_SCHEMA_VERSION
from cvcatalog.sources import (
    BINNED_SOURCES,
    BUCKET,
    NDJSON_SINCE,
    TIME_BINS,
    VALID_TYPES,
    WEEKDAY_BINS,
    PartitionKey,
    local_days,
)

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

#: WYDOT switched schema versions on these folder days (3 before, 5 in between, 6 after).
SCHEMA5_SINCE = date(2018, 5, 1)
SCHEMA6_SINCE = date(2018, 9, 1)
SUPPORTED_SCHEMA_VERSIONS = (1, 3, 5, 6)

#: Kinds of deliberately broken lines, cycled in this order when injecting.
MALFORMED_KINDS = ("truncated_json", "garbage", "missing_id")

#: Kinesis Firehose delivery-stream name/version that prefix NDJSON object names. The number is
#: the delivery-stream version, not the schema version.
FIREHOSE_STREAM = "usdot-its-cvpilot-bsm-public"
FIREHOSE_VERSION = 6

_PAYLOAD_TYPE = "us.dot.its.jpo.ode.model.OdeBsmPayload"
_DATA_TYPE = "us.dot.its.jpo.ode.plugin.j2735.J2735Bsm"

#: I-80 across Wyoming, east to west: (lat, lon, elevation m). Sherman Summit is the highest
#: point of I-80; the rest are the towns along it.
I80_WAYPOINTS: tuple[tuple[float, float, float], ...] = (
    (41.1400, -104.8200, 1850.0),  # Cheyenne
    (41.2390, -105.4370, 2633.0),  # Sherman Summit
    (41.3100, -105.5900, 2185.0),  # Laramie
    (41.5900, -106.2100, 2380.0),  # Arlington
    (41.7900, -107.2400, 2070.0),  # Rawlins
    (41.6700, -107.9700, 2060.0),  # Wamsutter
    (41.5900, -109.2200, 1960.0),  # Rock Springs
    (41.5300, -109.4700, 1860.0),  # Green River
    (41.2700, -110.9600, 2070.0),  # Evanston
)

_M_PER_DEG_LAT = 111_320.0
_EPOCH_REF = 1_420_070_400  # 2015-01-01T00:00:00Z, keeps the motion phase numbers small
_HOUR_MS = 3_600_000


def _route_tables() -> tuple[list[float], list[float], list[float], list[float], float]:
    """Cumulative distance (m), segment length, bearing and lon scale of each segment."""
    cum = [0.0]
    seg_len: list[float] = []
    bearings: list[float] = []
    lon_scale: list[float] = []
    for (la1, lo1, _), (la2, lo2, _) in itertools.pairwise(I80_WAYPOINTS):
        k = math.cos(math.radians((la1 + la2) / 2))
        north = (la2 - la1) * _M_PER_DEG_LAT
        east = (lo2 - lo1) * _M_PER_DEG_LAT * k
        length = math.hypot(north, east)
        seg_len.append(length)
        cum.append(cum[-1] + length)
        bearings.append(math.degrees(math.atan2(east, north)) % 360.0)
        lon_scale.append(_M_PER_DEG_LAT * k)
    return cum, seg_len, bearings, lon_scale, cum[-1]


_CUM, _SEG_LEN, _BEARING, _LON_M, ROUTE_LENGTH_M = _route_tables()


# --------------------------------------------------------------------------------------------
# Vehicles and their motion
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Vehicle:
    """One connected vehicle shuttling along I-80; its state is a pure function of time."""

    id: str
    s0: float  # unfolded route position (m) at the reference epoch
    v_base: float  # mean speed, m/s
    v_amp: float  # speed swing, m/s
    period: float  # seconds of one speed swing
    phase: float
    lane: float  # metres right of the centreline
    width: int  # cm
    length: int  # cm
    height: float  # m
    transmission: str
    brakes_reported: bool
    semi_major: float
    semi_minor: float
    msg_offset: int
    mac_ipv6: str  # link-local address, as in bsmTx log names
    global_ipv6: str  # URL-encoded global address, as in rxMsg log names

    def state(self, t: float) -> tuple[float, float, float, float, float, float, float]:
        """(lat, lon, elevation, heading, speed, accel, grade) at epoch seconds t.

        Speed is v_base + v_amp*sin(w*tau + phase), so the distance travelled has a closed form;
        the vehicle bounces between Cheyenne and Evanston (folded distance modulo 2L). Heading is
        the bearing of the current segment in the direction of travel, grade the climb per metre
        travelled.
        """
        tau = t - _EPOCH_REF
        w = 2.0 * math.pi / self.period
        arg = w * tau + self.phase
        speed = self.v_base + self.v_amp * math.sin(arg)
        accel = self.v_amp * w * math.cos(arg)
        travelled = (
            self.s0 + self.v_base * tau - self.v_amp / w * (math.cos(arg) - math.cos(self.phase))
        )
        folded = travelled % (2.0 * ROUTE_LENGTH_M)
        if folded <= ROUTE_LENGTH_M:
            s, sign = folded, 1.0  # westbound, from Cheyenne towards Evanston
        else:
            s, sign = 2.0 * ROUTE_LENGTH_M - folded, -1.0
        i = min(max(bisect.bisect_right(_CUM, s) - 1, 0), len(_SEG_LEN) - 1)
        f = (s - _CUM[i]) / _SEG_LEN[i]
        la1, lo1, el1 = I80_WAYPOINTS[i]
        la2, lo2, el2 = I80_WAYPOINTS[i + 1]
        heading = _BEARING[i] if sign > 0 else (_BEARING[i] + 180.0) % 360.0
        # keep right: shift perpendicular to the direction of travel
        h = math.radians(heading)
        lat = la1 + f * (la2 - la1) - self.lane * math.sin(h) / _M_PER_DEG_LAT
        lon = lo1 + f * (lo2 - lo1) + self.lane * math.cos(h) / _LON_M[i]
        elev = el1 + f * (el2 - el1) + 6.0 * math.sin(s / 1700.0) + 2.0 * math.sin(s / 310.0)
        grade = sign * (
            (el2 - el1) / _SEG_LEN[i]
            + 6.0 / 1700.0 * math.cos(s / 1700.0)
            + 2.0 / 310.0 * math.cos(s / 310.0)
        )
        return lat, lon, elev, heading, speed, accel, grade


def _q(x: float, step: float, nd: int) -> float:
    """Quantise to a J2735 unit (step) and round to the decimals the ODE prints."""
    return round(round(x / step) * step, nd)


def _hex_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(32):08X}"


@lru_cache(maxsize=64)
def fleet(seed: int, source: str, size: int) -> tuple[Vehicle, ...]:
    """The vehicles of one source. Ids never overlap between wydot and wydot_backup."""
    if size < 1:
        raise ValueError("vehicles must be at least 1")
    # Ids of every other WYDOT source are reserved first so the fleets are disjoint no matter
    # which sources a caller asks for.
    taken: set[str] = set()
    for other in ("wydot", "wydot_backup"):
        if other != source:
            other_rng = random.Random(f"{seed}/{other}/fleet")
            taken.update(_hex_id(other_rng) for _ in range(size))
    rng = random.Random(f"{seed}/{source}/fleet")
    out: list[Vehicle] = []
    seen: set[str] = set()
    while len(out) < size:
        vid = _hex_id(rng)
        if vid in taken or vid in seen:
            continue
        seen.add(vid)
        truck = rng.random() < 0.35
        m = [rng.getrandbits(8) for _ in range(6)]
        # EUI-64 link-local address from a MAC, like fe80::226:adff:fe05:14c1 in the samples
        eui = (
            f"fe80::{((m[0] ^ 0x02) << 8) | m[1]:x}:{m[2]:x}ff:fe{m[3]:02x}:{(m[4] << 8) | m[5]:x}"
        )
        out.append(
            Vehicle(
                id=vid,
                s0=rng.uniform(0.0, 2.0 * ROUTE_LENGTH_M),
                v_base=rng.uniform(24.0, 30.0) if not truck else rng.uniform(22.0, 27.0),
                v_amp=rng.uniform(0.8, 4.0),
                period=rng.uniform(240.0, 1800.0),
                phase=rng.uniform(0.0, 2.0 * math.pi),
                lane=rng.choice((5.5, 9.0)),
                width=rng.randint(240, 260) if truck else rng.randint(170, 210),
                length=rng.randint(1200, 2100) if truck else rng.randint(400, 600),
                height=_q(rng.uniform(3.2, 4.1) if truck else rng.uniform(1.4, 2.0), 0.05, 2),
                transmission=rng.choices(("NEUTRAL", "FORWARDGEARS", "UNAVAILABLE"), (6, 3, 1))[0],
                brakes_reported=rng.random() < 0.25,
                semi_major=_q(rng.uniform(1.5, 4.0), 0.05, 2),
                semi_minor=_q(rng.uniform(1.5, 4.0), 0.05, 2),
                msg_offset=rng.randrange(128),
                mac_ipv6=eui,
                global_ipv6=f"2620%3A31%3A40e0%3A{0x800 + rng.randrange(64):x}%3A%3A{rng.randrange(1, 255):x}",
            )
        )
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Number and time text (the ODE is Java; its output rules are reproduced here)
# --------------------------------------------------------------------------------------------


def _num_text(units: int, decimals: int, strip: bool) -> str:
    """Text of units * 10**-decimals as Jackson writes a BigDecimal.

    v1/v3 keep the scale ('0.00', '2222.0', '258.6000'); v5/v6 strip trailing zeros ('0', '2.29').
    Working on integer units never yields '-0.0' or exponent notation ('1.2e-05'), which Python's
    float repr would.
    """
    q, r = divmod(abs(units), 10**decimals)
    frac = f"{r:0{decimals}d}" if decimals else ""
    if strip:
        frac = frac.rstrip("0")
    text = f"{q}.{frac}" if frac else str(q)
    return "-" + text if units < 0 else text


class _Texts(dict[int, str]):
    """Number text of one field by integer J2735 units, computed once per distinct value.

    A plain dict lookup is several times cheaper than a Python call, and each field only ever
    sees a few thousand distinct values (lat/lon themselves are formatted directly).
    """

    def __init__(self, fmt: Callable[[int], str]) -> None:
        super().__init__()
        self.fmt = fmt

    def __missing__(self, k: int) -> str:
        text = self[k] = self.fmt(k)
        return text


def _texts(mult: int, decimals: int, strip: bool) -> _Texts:
    return _Texts(lambda k: _num_text(k * mult, decimals, strip))


def _deg7_fixed(units: int) -> str:
    return "%.7f" % (units * 1e-7)


def _deg7_strip(units: int) -> str:
    text = "%.7f" % (units * 1e-7)
    if text[-1] == "0":
        text = text.rstrip("0")
        if text[-1] == ".":
            text = text[:-1]
    return text


@dataclass(frozen=True)
class _Style:
    """Number text in the field units of J2735, for fixed-scale or stripped output."""

    deg7: Callable[[int], str]  # lat, lon: 1e-7 degree
    offset7: _Texts  # path history lat/lon offsets: 1e-7 degree
    elevation: _Texts  # 0.1 m
    elevation_offset: _Texts  # 0.1 m
    speed: _Texts  # 0.02 m/s
    heading: _Texts  # 0.0125 degree
    accel: _Texts  # 0.01 m/s^2 (and 0.01 degree/s for yaw)
    accel_vert: _Texts  # 0.02
    size005: _Texts  # 0.05 m: accuracy axes, vehicle height
    time_offset: _Texts  # 0.01 s
    confidence: _Texts  # 0.5 %
    radius: _Texts  # 0.1 m
    straight: str  # radiusOfCurve of a straight path (32767 x 0.1 m)


@lru_cache(maxsize=2)
def _style(strip: bool) -> _Style:
    deg7 = _deg7_strip if strip else _deg7_fixed
    return _Style(
        deg7=deg7,
        offset7=_Texts(deg7),
        elevation=_texts(1, 1, strip),
        elevation_offset=_texts(1, 1, strip),
        speed=_texts(2, 2, strip),
        heading=_texts(125, 4, strip),
        accel=_texts(1, 2, strip),
        accel_vert=_texts(2, 2, strip),
        size005=_texts(5, 2, strip),
        time_offset=_texts(1, 2, strip),
        confidence=_texts(5, 1, strip),
        radius=_texts(1, 1, strip),
        straight=_num_text(32_767, 1, strip),
    )


def java_zoned(ms: int) -> str:
    """ZonedDateTime.toString() in UTC: '2017-12-05T16:33:58Z[UTC]'.

    Java drops a zero fraction and, when the fraction is zero too, the seconds: a record made at
    16:33:00.000 reads '2017-12-05T16:33Z[UTC]'. Real v1/v3/v5 data has these, so the replica does.
    """
    return _java_local(ms, keep_seconds=False) + "Z[UTC]"


def java_instant(ms: int) -> str:
    """Instant.toString(): '2018-05-06T20:26:28.690Z' (seconds always, fraction only if non-zero)."""
    return _java_local(ms, keep_seconds=True) + "Z"


def _java_local(ms: int, *, keep_seconds: bool) -> str:
    secs, frac = divmod(ms, 1000)
    tm = time.gmtime(secs)
    text = f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T{tm.tm_hour:02d}:{tm.tm_min:02d}"
    if frac:
        return f"{text}:{tm.tm_sec:02d}.{frac:03d}"
    if tm.tm_sec or keep_seconds:
        return f"{text}:{tm.tm_sec:02d}"
    return text


def _rng_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def schema_version_for(day: date) -> int:
    """The WYDOT BSM schema version published on a folder day."""
    if day < SCHEMA5_SINCE:
        return 3
    if day < SCHEMA6_SINCE:
        return 5
    return 6


# --------------------------------------------------------------------------------------------
# BSM records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogInfo:
    """What the ODE knew about the log file a record came from (metadata.serialId etc.)."""

    stream_id: str
    log_epoch: int  # seconds, in the log file name
    delay_ms: int  # odeReceivedAt - recordGeneratedAt
    bundle_id: int
    security: str
    rx_known: bool  # whether receivedMessageDetails.locationData is filled in
    rx_offset: int  # receiving OBU position relative to the sender, 1e-7 degree


def new_log(rng: random.Random, t_ms: int) -> LogInfo:
    """A log file (stream) for a vehicle starting around t_ms."""
    return LogInfo(
        stream_id=_rng_uuid(rng),
        log_epoch=t_ms // 1000 - rng.randrange(0, 900),
        delay_ms=rng.randrange(20_000, 4 * _HOUR_MS),
        bundle_id=rng.randrange(1, 20_000),
        security=rng.choice(("success", "success", "inconsistentInputParameters")),
        rx_known=rng.random() < 0.7,
        rx_offset=rng.randrange(-20_000, 20_000),
    )


_ZERO_LOCATION = '{"latitude":"0","longitude":"0","elevation":"0","speed":"0","heading":"0"}'
_CONFIDENCE_STEPS = (20, 100, 140, 180, 200)  # 10 %, 50 %, 70 %, 90 %, 100 % in 0.5 % units
_RAD_PER_DEG = math.pi / 180.0
_RAD_PER_HEADING_UNIT = 0.0125 * _RAD_PER_DEG
_D2 = [f"{i:02d}" for i in range(60)]
_D3 = [f"{i:03d}" for i in range(1000)]


class BsmWriter:
    """Writes WYDOT BSM records of one schema version as compact JSON lines, fast.

    Lines are assembled from text pieces instead of json.dumps of dicts: a dict plus json.dumps
    costs ~100 us a record, which would make a million-record replica take minutes. Key order and
    number text follow the published samples of each version; bsm_record() parses a line back so
    tests see exactly what is uploaded.
    """

    def __init__(self, version: int, rng: random.Random, *, java_times: bool = True) -> None:
        if version not in SUPPORTED_SCHEMA_VERSIONS:
            raise ValueError(
                f"unsupported WYDOT BSM schema version {version}; "
                f"choose one of {SUPPORTED_SCHEMA_VERSIONS}"
            )
        self.version = version
        self.rng = rng
        self.new_style = version >= 5
        self.fmt = _style(self.new_style)
        self.fixed = _style(False)
        self._vehicle_text: dict[str, tuple[tuple[str, str], str]] = {}
        self._log_text: dict[tuple[str, str], tuple[str, str, str, str]] = {}
        self._zone = "Z" if version == 6 else "Z[UTC]"
        # ZonedDateTime.toString() omits ':00' seconds (v1/v3/v5); Instant.toString() (v6) never
        self._short_minutes = java_times and version != 6
        self._hours: dict[int, str] = {}

    # -- static pieces -------------------------------------------------------------------------

    def _vehicle_pieces(self, v: Vehicle) -> tuple[tuple[str, str], str]:
        """Static per-vehicle text: two core-data runs (accuracy...), and the SUVE part."""
        got = self._vehicle_text.get(v.id)
        if got is not None:
            return got
        f = self.fmt
        state = "off" if v.brakes_reported else "unavailable"
        unavailable = "false" if v.brakes_reported else "true"
        semi = (f.size005[round(v.semi_major / 0.05)], f.size005[round(v.semi_minor / 0.05)])
        height = f.size005[round(v.height / 0.05)]
        class_details = (
            '"classDetails":{"fuelType":"unknownFuel","hpmsType":"none","keyType":0,'
            '"regional":[],"role":"basicVehicle"}'
        )
        if self.new_style:
            core = (
                f'"accuracy":{{"semiMajor":{semi[0]},"semiMinor":{semi[1]}}},'
                f'"transmission":"{v.transmission}",'
            )
            tail = (
                f'"brakes":{{"wheelBrakes":{{"leftFront":false,"rightFront":false,'
                f'"unavailable":{unavailable},"leftRear":false,"rightRear":false}},'
                f'"traction":"{state}","abs":"{state}","scs":"{state}","brakeBoost":"{state}",'
                f'"auxBrakes":"{state}"}},"size":{{"width":{v.width},"length":{v.length}}}}}'
            )
            suve = (
                f'{{"id":"SupplementalVehicleExtensions","value":{{{class_details},'
                f'"vehicleData":{{"height":{height}}},"weatherProbe":{{}},"regional":[]}}}}'
            )
            pieces = ((core, tail), suve)
        else:
            core = (
                f'"accuracy":{{"semiMajor":{semi[0]},"semiMinor":{semi[1]}}},'
                f'"brakes":{{"abs":"{state}","auxBrakes":"{state}","brakeBoost":"{state}",'
                f'"scs":"{state}","traction":"{state}","wheelBrakes":{{"leftFront":false,'
                f'"leftRear":false,"rightFront":false,"rightRear":false,'
                f'"unavailable":{unavailable}}}}},'
            )
            suve = (
                f'{{"id":"SupplementalVehicleExtensions","value":{{{class_details},'
                f'"regional":[],"vehicleData":{{"height":{height}}},"weatherProbe":{{}}}}}}'
            )
            pieces = ((core, ""), suve)
        self._vehicle_text[v.id] = pieces
        return pieces

    def _log_pieces(self, v: Vehicle, log: LogInfo) -> tuple[str, str, str, str]:
        """Metadata text around the per-record values (timestamps, recordId)."""
        got = self._log_text.get((v.id, log.stream_id))
        if got is not None:
            return got
        version = self.version
        if self.new_style:
            a = (
                f'{{"metadata":{{"bsmSource":"RV","logFileName":"rxMsg_{log.log_epoch}_'
                f'{v.global_ipv6}.csv","recordType":"rxMsg","securityResultCode":"{log.security}",'
                '"receivedMessageDetails":{"locationData":'
            )
            b = (
                f',"rxSource":"RV"}},"payloadType":"{_PAYLOAD_TYPE}","serialId":{{"streamId":'
                f'"{log.stream_id}","bundleSize":1,"bundleId":{log.bundle_id},"recordId":'
            )
            c = ',"serialNumber":0},"odeReceivedAt":"'
            d = f'","schemaVersion":{version},"recordGeneratedAt":"'
        else:
            log_name = f"bsmTx_{log.log_epoch}_{v.mac_ipv6}.csv"
            gen_key, rcv_key = (
                ("generatedAt", "receivedAt")
                if version == 1
                else ("recordGeneratedAt", "odeReceivedAt")
            )
            # v1 sorts generatedAt first; v3 has odeReceivedAt before recordGeneratedAt
            if version == 1:
                a = f'{{"metadata":{{"{gen_key}":"'
                b = f'","logFileName":"{log_name}","payloadType":"{_PAYLOAD_TYPE}","{rcv_key}":"'
            else:
                a = f'{{"metadata":{{"logFileName":"{log_name}","{rcv_key}":"'
                b = f'","payloadType":"{_PAYLOAD_TYPE}","{gen_key}":"'
            c = (
                '","recordGeneratedBy":"OBU","recordType":"bsmTx","sanitized":true,'
                f'"schemaVersion":{version},"serialId":{{"bundleId":{log.bundle_id},'
                '"bundleSize":1,"recordId":'
            )
            valid = "true" if log.security == "success" else "false"
            d = f',"serialNumber":0,"streamId":"{log.stream_id}"}},"validSignature":{valid}}},'
        pieces = (a, b, c, d)
        self._log_text[(v.id, log.stream_id)] = pieces
        return pieces

    def _time_text(self, t_ms: int) -> str:
        """Java text of a timestamp; the 'YYYY-MM-DDTHH:' part is cached per hour."""
        hour_ms = t_ms - t_ms % _HOUR_MS
        head = self._hours.get(hour_ms)
        if head is None:
            if len(self._hours) > 64:
                self._hours.clear()
            head = self._hours[hour_ms] = java_instant(hour_ms)[:14]
        mm, rest = divmod(t_ms - hour_ms, 60_000)
        ss, fff = divmod(rest, 1000)
        if fff:
            return f"{head}{_D2[mm]}:{_D2[ss]}.{_D3[fff]}{self._zone}"
        if ss or not self._short_minutes:
            return f"{head}{_D2[mm]}:{_D2[ss]}{self._zone}"
        return f"{head}{_D2[mm]}{self._zone}"

    # -- one record ------------------------------------------------------------------------------

    def line(self, v: Vehicle, t_ms: int, log: LogInfo, record_id: int) -> str:
        """One record as a compact JSON line (no newline). Hot path: ~30 us on a slow core."""
        rnd = self.rng.random
        f = self.fmt
        lat, lon, elev, heading, speed, accel, grade = v.state(t_ms / 1000.0)
        lat_u = round(lat * 1e7 + (rnd() - 0.5) * 200)  # GNSS noise, ~1 m
        lon_u = round(lon * 1e7 + (rnd() - 0.5) * 200)
        speed += (rnd() - 0.5) * 0.4  # never near 0: the fleet cruises at 18..34 m/s
        h_k = round((heading + (rnd() - 0.5) * 1.5) * 80.0) % 28_800  # 0.0125 degree units
        el_k = round(elev * 10)
        # Path history: where it was 0.4..4 s apart back in time. Offsets are current minus
        # past, as in the published samples (they point the way the vehicle goes).
        rad = h_k * _RAD_PER_HEADING_UNIT
        dn = math.cos(rad) * speed * (1e5 / _M_PER_DEG_LAT)  # 1e-7 degree per centisecond
        de = math.sin(rad) * speed * (1e5 / _M_PER_DEG_LAT) / math.cos(lat * _RAD_PER_DEG)
        dz = grade * speed * 0.1  # 0.1 m per centisecond
        off7, eo_texts, to_texts = f.offset7, f.elevation_offset, f.time_offset
        crumbs = []
        cs = 0
        for _ in range(3 + int(rnd() * 4)):
            cs += 40 + int(rnd() * 360)
            crumbs.append(
                f'{{"elevationOffset":{eo_texts[round(dz * cs)]},'
                f'"latOffset":{off7[round(dn * cs)]},"lonOffset":{off7[round(de * cs)]},'
                f'"timeOffset":{to_texts[cs]}}}'
            )
        crumb_text = ",".join(crumbs)
        confidence = f.confidence[_CONFIDENCE_STEPS[int(rnd() * 5)]]
        r = rnd()
        radius = (
            f.straight
            if r < 0.6
            else f.radius[round((r - 0.8) * 15_000 + (750 if r > 0.8 else -750))]
        )
        yaw = f.accel[round((rnd() - 0.5) * 120)]
        lat_t = f.deg7(lat_u)
        lon_t = f.deg7(lon_u)
        elev_t = f.elevation[el_k]
        sp_k = round(speed * 50)
        speed_t = f.speed[sp_k]
        heading_t = f.heading[h_k]
        msg_cnt = (t_ms // 100 + v.msg_offset) % 128
        sec_mark = t_ms % 60_000
        gen = self._time_text(t_ms)
        rcv = self._time_text(t_ms + log.delay_ms)
        a, b, c, d = self._log_pieces(v, log)
        core_static, suve = self._vehicle_pieces(v)
        if self.new_style:
            if log.rx_known:
                # the receiving OBU travels close by (a fixed offset for the log); the ODE wrote
                # its location as text
                fixed = self.fixed
                location = (
                    f'{{"latitude":"{_deg7_fixed(lat_u + log.rx_offset)}",'
                    f'"longitude":"{_deg7_fixed(lon_u - log.rx_offset)}",'
                    f'"elevation":"{fixed.elevation[el_k]}",'
                    f'"speed":"{fixed.speed[sp_k]}","heading":"{fixed.heading[h_k]}"}}'
                )
            else:
                location = _ZERO_LOCATION
            accel_lat = f.accel[round((rnd() - 0.5) * 16)]
            accel_long = f.accel[round(accel * 100 + (rnd() - 0.5) * 20)]
            accel_vert = f.accel_vert[round((rnd() - 0.5) * 2.2)]
            accuracy_tx, brakes_size = core_static
            return (
                f'{a}{location}{b}{record_id}{c}{rcv}{d}{gen}","recordGeneratedBy":"OBU",'
                f'"sanitized":false}},"payload":{{"dataType":"{_DATA_TYPE}","data":{{"coreData":'
                f'{{"msgCnt":{msg_cnt},"id":"{v.id}","secMark":{sec_mark},"position":'
                f'{{"latitude":{lat_t},"longitude":{lon_t},"elevation":{elev_t}}},"accelSet":'
                f'{{"accelLat":{accel_lat},"accelLong":{accel_long},"accelVert":{accel_vert},'
                f'"accelYaw":{yaw}}},{accuracy_tx}"speed":{speed_t},"heading":{heading_t},'
                f'{brakes_size},"partII":[{{"id":"VehicleSafetyExtensions","value":'
                f'{{"pathHistory":{{"crumbData":[{crumb_text}]}},"pathPrediction":'
                f'{{"confidence":{confidence},"radiusOfCurve":{radius}}}}}}},{suve}]}}}}}}'
            )
        first, second = (gen, rcv) if self.version == 1 else (rcv, gen)
        accuracy_brakes = core_static[0]
        return (
            f"{a}{first}{b}{second}{c}{record_id}{d}"
            f'"payload":{{"data":{{"coreData":{{"accelSet":{{"accelYaw":{yaw}}},{accuracy_brakes}'
            f'"heading":{heading_t},"id":"{v.id}","msgCnt":{msg_cnt},"position":'
            f'{{"elevation":{elev_t},"latitude":{lat_t},"longitude":{lon_t}}},'
            f'"secMark":{sec_mark},"size":{{"length":{v.length},"width":{v.width}}},'
            f'"speed":{speed_t},"transmission":"{v.transmission}"}},"partII":['
            f'{{"id":"VehicleSafetyExtensions","value":{{"pathHistory":{{"crumbData":'
            f'[{crumb_text}]}},"pathPrediction":{{"confidence":{confidence},'
            f'"radiusOfCurve":{radius}}}}}}},{suve}]}},"dataType":"{_DATA_TYPE}"}}}}'
        )


def bsm_record(
    vehicle: Vehicle,
    t: datetime,
    schema_version: int,
    rng: random.Random,
    *,
    log: LogInfo | None = None,
    record_id: int = 1,
    java_times: bool = True,
) -> dict[str, Any]:
    """One WYDOT BSM as the ODE published it for this schema version (1, 3, 5 or 6).

    The same writer seed_replica uses, parsed back, so tests see what is uploaded.
    """
    if t.tzinfo is None:
        raise ValueError("t must be timezone-aware (UTC)")
    t_ms = round(t.timestamp() * 1000)
    writer = BsmWriter(schema_version, rng, java_times=java_times)
    record: dict[str, Any] = json.loads(
        writer.line(vehicle, t_ms, log or new_log(rng, t_ms), record_id)
    )
    return record


class _Num(str):
    """A JSON number kept as its original text, so re-indenting never reformats it."""


def pretty_json(line: str) -> str:
    """Re-indent one compact JSON document like json.dumps(indent=2), keeping number text."""
    out: list[str] = []
    _pretty(json.loads(line, parse_float=_Num, parse_int=_Num), 0, out)
    return "".join(out)


def _pretty(o: Any, level: int, out: list[str]) -> None:
    if isinstance(o, _Num):
        out.append(str.__str__(o))
    elif isinstance(o, dict):
        if not o:
            out.append("{}")
            return
        inner = "\n" + "  " * (level + 1)
        out.append("{")
        for i, (k, val) in enumerate(o.items()):
            out.append(("," if i else "") + inner + json.dumps(k) + ": ")
            _pretty(val, level + 1, out)
        out.append("\n" + "  " * level + "}")
    elif isinstance(o, list):
        if not o:
            out.append("[]")
            return
        inner = "\n" + "  " * (level + 1)
        out.append("[")
        for i, val in enumerate(o):
            out.append(("," if i else "") + inner)
            _pretty(val, level + 1, out)
        out.append("\n" + "  " * level + "]")
    else:
        out.append(json.dumps(o))


# --------------------------------------------------------------------------------------------
# Objects, hours, the generator registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MalformedLine:
    """A line injected on purpose: where it is (object key, 1-based line) and what is wrong."""

    key: str
    line: int
    kind: str


@dataclass(frozen=True, slots=True)
class ReplicaObject:
    """One object to upload, with what it contains (for the report)."""

    key: str
    body: bytes
    partition: PartitionKey
    hour: int
    records: int  # valid records (malformed lines excluded)
    schema_version: int
    vehicles: dict[str, int]  # vehicle id -> valid records
    malformed: tuple[MalformedLine, ...] = ()
    first_ms: int = 0
    last_ms: int = 0


@dataclass(frozen=True)
class ReplicaSpec:
    """Every knob of a replica; a spec plus a seed fully determines the bytes."""

    start: date
    end: date
    sources: tuple[str, ...] = ("wydot",)
    message_types: tuple[str, ...] = ("BSM",)
    bucket: str = BUCKET
    seed: int = 42
    records_per_hour: int = 200
    files_per_hour: int = 2
    vehicles: int = 20
    empty_hour_rate: float = 0.05
    empty_day_rate: float = 0.0
    empty_days: frozenset[date] = frozenset()
    malformed_per_day: int = 0
    malformed_kinds: tuple[str, ...] = MALFORMED_KINDS
    schema_version: int | None = None
    java_times: bool = True

    def validate(self) -> None:
        """Fail early, with a message, on anything the generators cannot honour."""
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        for source in self.sources:
            for mtype in self.message_types:
                if mtype not in VALID_TYPES.get(source, ()):
                    raise ValueError(
                        f"{source}/{mtype} is not published by the bucket; valid pairs: "
                        + ", ".join(f"{s}/{t}" for s, ts in VALID_TYPES.items() for t in ts)
                    )
                if (source, mtype) not in load_generators():
                    raise ValueError(
                        f"the replica cannot generate {source}/{mtype} yet; available: "
                        + ", ".join(f"{s}/{t}" for s, t in sorted(GENERATORS))
                    )
        if self.records_per_hour < 0:
            raise ValueError("records_per_hour must be >= 0")
        if self.files_per_hour < 1:
            raise ValueError("files_per_hour must be >= 1")
        if self.vehicles < 1:
            raise ValueError("vehicles must be >= 1")
        for name in ("empty_hour_rate", "empty_day_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {rate}")
        if self.malformed_per_day < 0:
            raise ValueError("malformed_per_day must be >= 0")
        unknown = set(self.malformed_kinds) - set(MALFORMED_KINDS)
        if unknown or not self.malformed_kinds:
            raise ValueError(f"malformed_kinds must be a non-empty subset of {MALFORMED_KINDS}")
        if self.schema_version is not None and self.schema_version not in SUPPORTED_SCHEMA_VERSIONS:
            raise ValueError(
                f"unsupported schema_version {self.schema_version}; "
                f"choose one of {SUPPORTED_SCHEMA_VERSIONS} or None (by date)"
            )


@dataclass(frozen=True)
class HourContext:
    """Everything a generator needs to produce one folder hour, already decided upstream."""

    spec: ReplicaSpec
    partition: PartitionKey
    hour: int
    schema_version: int
    malformed: tuple[str, ...]  # kinds to inject in this hour (NDJSON era only)

    @property
    def hour_start_ms(self) -> int:
        d = self.partition.day
        return int(datetime(d.year, d.month, d.day, self.hour, tzinfo=UTC).timestamp()) * 1000

    @property
    def ndjson(self) -> bool:
        return self.partition.day >= NDJSON_SINCE

    def rng(self, purpose: str) -> random.Random:
        """An RNG private to this hour and purpose, so hours can be made in any order."""
        s = self.spec
        return random.Random(f"{s.seed}/{self.partition.key}/{self.hour:02d}/{purpose}")


#: A generator turns one folder hour into its objects.
HourGenerator = Callable[[HourContext], list[ReplicaObject]]


def _split(n: int, parts: int) -> list[int]:
    parts = max(1, min(parts, n))
    base, extra = divmod(n, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _record_times(
    rng: random.Random, fleet_: Sequence[Vehicle], n: int, start_ms: int, whole_seconds: bool
) -> list[tuple[int, int]]:
    """(time ms, vehicle index) for n records: each active vehicle sends a regular burst.

    Bursts make per-vehicle trajectories (what misbehaviour models look at) instead of isolated
    points, and keep every record of the hour inside the hour.
    """
    if n == 0:
        return []
    active = rng.sample(
        range(len(fleet_)), rng.randint(max(1, (len(fleet_) + 1) // 2), len(fleet_))
    )
    counts = Counter(rng.choice(active) for _ in range(n))
    out: list[tuple[int, int]] = []
    for vi in sorted(counts):
        c = counts[vi]
        step = rng.choice((1000, 1000, 2000, 5000, 10_000, 30_000))
        step = min(step, max(1, (_HOUR_MS - 1) // c))
        if whole_seconds and step >= 1000:
            step -= step % 1000
        span = step * (c - 1)
        first = rng.randrange(0, _HOUR_MS - span)
        if whole_seconds and step % 1000 == 0:
            first -= first % 1000
        out.extend((start_ms + first + k * step, vi) for k in range(c))
    out.sort()
    return out


def _garbage(rng: random.Random) -> str:
    choices = (
        "<html><body><h1>503 Service Unavailable</h1></body></html>",
        "\ufffd\ufffd\ufffd\ufffd bsmTx log rotated",
        "#### corrupted block " + "".join(rng.choice("0123456789abcdef") for _ in range(24)),
        "metadata,payload,schemaVersion",
    )
    return rng.choice(choices)


def _bsm_hour(ctx: HourContext) -> list[ReplicaObject]:
    """WYDOT BSM for one folder hour: NDJSON files, or one pretty document per record."""
    spec = ctx.spec
    vehicles = fleet(spec.seed, ctx.partition.source, spec.vehicles)
    rng = ctx.rng("records")
    version = ctx.schema_version
    writer = BsmWriter(version, rng, java_times=spec.java_times)
    times = _record_times(
        rng, vehicles, spec.records_per_hour, ctx.hour_start_ms, whole_seconds=version < 5
    )
    logs: dict[int, LogInfo] = {}
    record_ids: Counter[int] = Counter()

    def make(t_ms: int, vi: int) -> str:
        log = logs.get(vi)
        if log is None:
            log = logs[vi] = new_log(rng, t_ms)
        record_ids[vi] += 1
        return writer.line(vehicles[vi], t_ms, log, record_ids[vi])

    prefix = ctx.partition.hour_prefix(ctx.hour)
    objects: list[ReplicaObject] = []
    if not ctx.ndjson:
        used: set[int] = set()
        for t_ms, vi in times:
            body = pretty_json(make(t_ms, vi)).encode()
            name_ms = t_ms + logs[vi].delay_ms  # real names carry odeReceivedAt in epoch ms
            while name_ms in used:
                name_ms += 1
            used.add(name_ms)
            objects.append(
                ReplicaObject(
                    key=f"{prefix}wydot-filtered-bsm-{name_ms}.json",
                    body=body, partition=ctx.partition, hour=ctx.hour, records=1,
                    schema_version=version, vehicles={vehicles[vi].id: 1},
                    first_ms=t_ms, last_ms=t_ms,
                )
            )  # fmt: skip
        return objects

    sizes = _split(len(times), spec.files_per_hour)
    # where the broken lines go: which file, in the order of ctx.malformed (own RNG, so asking
    # for broken lines never changes the valid records)
    bad_rng = ctx.rng("malformed")
    bad_writer = BsmWriter(version, bad_rng, java_times=spec.java_times)
    bad_by_file: dict[int, list[str]] = {}
    for kind in ctx.malformed:
        bad_by_file.setdefault(bad_rng.randrange(len(sizes)), []).append(kind)
    pos = 0
    for fi, size in enumerate(sizes):
        chunk = times[pos : pos + size]
        pos += size
        lines = [make(t_ms, vi) for t_ms, vi in chunk]
        ids = Counter(vehicles[vi].id for _, vi in chunk)
        first_ms = chunk[0][0]
        tm = time.gmtime(first_ms // 1000)
        key = (
            f"{prefix}{FIREHOSE_STREAM}-{FIREHOSE_VERSION}-{tm.tm_year:04d}-{tm.tm_mon:02d}-"
            f"{tm.tm_mday:02d}-{tm.tm_hour:02d}-{tm.tm_min:02d}-{tm.tm_sec:02d}-{_rng_uuid(rng)}"
        )
        inserted: list[tuple[int, str, str]] = []  # (position when inserted, kind, text)
        for kind in bad_by_file.get(fi, []):
            text = _malformed_text(kind, bad_rng, bad_writer, vehicles, first_ms, chunk[-1][0])
            at = bad_rng.randint(0, len(lines))
            lines.insert(at, text)
            inserted.append((at, kind, text))
        body = ("\n".join(lines) + "\n").encode()
        objects.append(
            ReplicaObject(
                key=key, body=body, partition=ctx.partition, hour=ctx.hour, records=len(chunk),
                schema_version=version, vehicles=dict(ids),
                malformed=_line_numbers(key, lines, inserted),
                first_ms=first_ms, last_ms=chunk[-1][0],
            )
        )  # fmt: skip
    return objects


def _malformed_text(
    kind: str,
    rng: random.Random,
    writer: BsmWriter,
    vehicles: Sequence[Vehicle],
    lo_ms: int,
    hi_ms: int,
) -> str:
    """The text of one deliberately broken line of the given kind."""
    if kind == "garbage":
        text = _garbage(rng)
    else:
        v = vehicles[rng.randrange(len(vehicles))]
        t_ms = rng.randrange(lo_ms, hi_ms + 1)
        full = writer.line(v, t_ms, new_log(rng, t_ms), 1)
        if kind == "missing_id":
            text = full.replace(f'"id":"{v.id}",', "", 1)
            doc = json.loads(text)
            assert "id" not in doc["payload"]["data"]["coreData"]
            return text
        text = full[: rng.randrange(len(full) // 10, len(full) * 9 // 10)]
    try:
        json.loads(text)
    except ValueError:
        return text
    raise AssertionError(f"a {kind} line parsed as JSON: {text!r}")


def _line_numbers(
    key: str, lines: list[str], inserted: list[tuple[int, str, str]]
) -> tuple[MalformedLine, ...]:
    """1-based line numbers of the injected lines after every insertion has been made."""
    if not inserted:
        return ()
    # later insertions at or before an earlier one's position shift it down by one
    positions = [at for at, _, _ in inserted]
    for j in range(len(inserted)):
        for k in range(j + 1, len(inserted)):
            if inserted[k][0] <= positions[j]:
                positions[j] += 1
    out = []
    for (_, kind, text), p in zip(inserted, positions, strict=True):
        assert lines[p] is text
        out.append(MalformedLine(key=key, line=p + 1, kind=kind))
    return tuple(sorted(out, key=lambda m: m.line))


#: (source, message type) -> hour generator. Other families live in their own modules
#: (cvcatalog/sandbox/replica_*.py), each exposing generators(), merged in by load_generators().
GENERATORS: dict[tuple[str, str], HourGenerator] = {
    ("wydot", "BSM"): _bsm_hour,
    ("wydot_backup", "BSM"): _bsm_hour,
}
_PLUGINS_LOADED = False


def load_generators() -> dict[tuple[str, str], HourGenerator]:
    """The full registry (plug-in modules import this one, so they are loaded lazily)."""
    global _PLUGINS_LOADED
    if not _PLUGINS_LOADED:
        from cvcatalog.sandbox import replica_nycdot, replica_thea, replica_wydot_tim

        for plugin in (replica_thea, replica_wydot_tim, replica_nycdot):
            GENERATORS.update(plugin.generators())
        _PLUGINS_LOADED = True
    return GENERATORS


# --------------------------------------------------------------------------------------------
# Planning: which days and hours have data, where broken lines go
# --------------------------------------------------------------------------------------------


def _day_plan(spec: ReplicaSpec, pk: PartitionKey) -> tuple[list[int], dict[int, tuple[str, ...]]]:
    """Hours with data and, per hour, the kinds of broken lines to inject there."""
    if pk.day in spec.empty_days or spec.records_per_hour == 0:
        return [], {}
    base = f"{spec.seed}/{pk.key}"
    if spec.empty_day_rate and random.Random(f"{base}/empty-day").random() < spec.empty_day_rate:
        return [], {}
    hour_rng = random.Random(f"{base}/empty-hours")
    hours = [h for h in range(24) if hour_rng.random() >= spec.empty_hour_rate]
    bad: dict[int, list[str]] = {}
    if hours and spec.malformed_per_day and pk.day >= NDJSON_SINCE:
        bad_rng = random.Random(f"{base}/malformed")
        kinds = spec.malformed_kinds
        for i in range(spec.malformed_per_day):
            bad.setdefault(bad_rng.choice(hours), []).append(kinds[i % len(kinds)])
    return hours, {h: tuple(k) for h, k in bad.items()}


def _bin_plan(spec: ReplicaSpec, pk: PartitionKey) -> tuple[list[int], dict[int, tuple[str, ...]]]:
    """_day_plan for a bin folder of a binned source (nycdot): one "hour" (0) or none.

    A whole month is empty with probability empty_day_rate, a bin with empty_hour_rate;
    malformed_per_day broken lines go into every non-empty bin (kinds cycled from a per-bin
    start, so one line per bin still exercises every kind across a month).
    """
    if spec.records_per_hour == 0:
        return [], {}
    month = PartitionKey(pk.source, pk.message_type, pk.day).key
    if (
        spec.empty_day_rate
        and random.Random(f"{spec.seed}/{month}/empty-month").random() < spec.empty_day_rate
    ):
        return [], {}
    if random.Random(f"{spec.seed}/{pk.key}/empty-bin").random() < spec.empty_hour_rate:
        return [], {}
    kinds = spec.malformed_kinds
    first = random.Random(f"{spec.seed}/{pk.key}/malformed").randrange(len(kinds))
    return [0], {0: tuple(kinds[(first + i) % len(kinds)] for i in range(spec.malformed_per_day))}


def _month_bins(source: str, mtype: str, day: date) -> list[PartitionKey]:
    """Every bin folder of the month of day, in key order."""
    first = day.replace(day=1)
    return [PartitionKey(source, mtype, first, (wd, tb)) for wd in WEEKDAY_BINS for tb in TIME_BINS]


def hour_contexts(spec: ReplicaSpec) -> Iterator[HourContext]:
    """Every folder hour that gets data, in key order, with its decided broken lines.

    Binned sources (nycdot) have bin folders instead of days and hours: every weekday and
    time-of-day bin of each month the range touches, yielded at the month's first day in range,
    each with hour 0.
    """
    spec.validate()
    for day in local_days(spec.start, spec.end):
        for source in spec.sources:
            for mtype in spec.message_types:
                if source in BINNED_SOURCES:
                    if day == spec.start or day.day == 1:
                        for pk in _month_bins(source, mtype, day):
                            hours, bad = _bin_plan(spec, pk)
                            for hour in hours:
                                yield HourContext(
                                    spec, pk, hour, NYCDOT_SCHEMA_VERSION, bad.get(hour, ())
                                )
                    continue
                pk = PartitionKey(source, mtype, day)
                version = spec.schema_version or schema_version_for(day)
                hours, bad = _day_plan(spec, pk)
                for hour in hours:
                    yield HourContext(spec, pk, hour, version, bad.get(hour, ()))


def generate_hour(ctx: HourContext) -> list[ReplicaObject]:
    """The objects of one folder hour (module level so worker processes can run it)."""
    return load_generators()[(ctx.partition.source, ctx.partition.message_type)](ctx)


def iter_replica(spec: ReplicaSpec, *, processes: int = 0) -> Iterator[ReplicaObject]:
    """Every object of the replica in key order, holding only a few hours in memory.

    processes > 1 builds hours in that many worker processes (generation is CPU-bound Python,
    so threads would not help); the output is identical either way.
    """
    contexts = hour_contexts(spec)
    if processes <= 1:
        for ctx in contexts:
            yield from generate_hour(ctx)
        return
    # spawn, not fork: the caller may already run threads (boto3, the upload pool)
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        window: deque[Future[list[ReplicaObject]]] = deque()
        try:
            for ctx in contexts:
                window.append(pool.submit(generate_hour, ctx))
                if len(window) >= 2 * processes:
                    yield from window.popleft().result()
            while window:
                yield from window.popleft().result()
        finally:
            for fut in window:
                fut.cancel()


def partitions_of(spec: ReplicaSpec) -> list[PartitionKey]:
    """Every partition a spec covers, including the ones left empty (all bins of a month)."""
    out: list[PartitionKey] = []
    for d in local_days(spec.start, spec.end):
        for s in spec.sources:
            for m in spec.message_types:
                if s not in BINNED_SOURCES:
                    out.append(PartitionKey(s, m, d))
                elif d == spec.start or d.day == 1:
                    out.extend(_month_bins(s, m, d))
    return out


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


@dataclass
class PartitionStats:
    """What one folder-day partition holds, to check an ingest against."""

    key: str
    source: str
    message_type: str
    day: date
    records: int = 0
    malformed: int = 0
    objects: int = 0
    bytes: int = 0
    hours: dict[int, int] = field(default_factory=dict)  # hour -> valid records
    schema_versions: set[int] = field(default_factory=set)
    vehicles: dict[str, int] = field(default_factory=dict)  # vehicle id -> valid records
    first_record_at: str | None = None  # ISO UTC of the earliest valid record
    last_record_at: str | None = None

    @property
    def no_data(self) -> bool:
        return self.objects == 0

    @property
    def hours_with_data(self) -> list[int]:
        return sorted(self.hours)

    def add(self, obj: ReplicaObject) -> None:
        self.records += obj.records
        self.malformed += len(obj.malformed)
        self.objects += 1
        self.bytes += len(obj.body)
        if obj.records:
            self.hours[obj.hour] = self.hours.get(obj.hour, 0) + obj.records
        if obj.records and obj.last_ms:  # NYCDOT events have no time (first/last stay None)
            first = _iso(obj.first_ms)
            last = _iso(obj.last_ms)
            if self.first_record_at is None or first < self.first_record_at:
                self.first_record_at = first
            if self.last_record_at is None or last > self.last_record_at:
                self.last_record_at = last
        self.schema_versions.add(obj.schema_version)
        for vid, n in obj.vehicles.items():
            self.vehicles[vid] = self.vehicles.get(vid, 0) + n

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "source": self.source,
            "message_type": self.message_type,
            "day": self.day.isoformat(),
            "records": self.records,
            "malformed": self.malformed,
            "objects": self.objects,
            "bytes": self.bytes,
            "no_data": self.no_data,
            "hours": {f"{h:02d}": n for h, n in sorted(self.hours.items())},
            "schema_versions": sorted(self.schema_versions),
            "vehicles": dict(sorted(self.vehicles.items())),
            "first_record_at": self.first_record_at,
            "last_record_at": self.last_record_at,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PartitionStats:
        return cls(
            key=d["key"],
            source=d["source"],
            message_type=d["message_type"],
            day=date.fromisoformat(d["day"]),
            records=d["records"],
            malformed=d["malformed"],
            objects=d["objects"],
            bytes=d["bytes"],
            hours={int(h): n for h, n in d["hours"].items()},
            schema_versions=set(d["schema_versions"]),
            vehicles=dict(d["vehicles"]),
            first_record_at=d.get("first_record_at"),
            last_record_at=d.get("last_record_at"),
        )


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


@dataclass
class SeedReport:
    """Exactly what was seeded: per partition counts, the broken lines, totals.

    Tests assert ingests against it, the benchmarks size their runs with it, and the demo prints
    it. ``records`` counts valid records only; every injected line is in ``malformed_lines``.
    """

    bucket: str
    seed: int
    spec: dict[str, Any]
    partitions: dict[str, PartitionStats] = field(default_factory=dict)
    malformed_lines: list[MalformedLine] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def records(self) -> int:
        return sum(p.records for p in self.partitions.values())

    @property
    def malformed(self) -> int:
        return len(self.malformed_lines)

    @property
    def objects(self) -> int:
        return sum(p.objects for p in self.partitions.values())

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.partitions.values())

    @property
    def empty_partitions(self) -> list[str]:
        return [k for k, p in self.partitions.items() if p.no_data]

    def add(self, obj: ReplicaObject) -> None:
        self.partitions[obj.partition.key].add(obj)
        self.malformed_lines.extend(obj.malformed)

    def totals(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "malformed": self.malformed,
            "objects": self.objects,
            "bytes": self.bytes,
            "partitions": len(self.partitions),
            "empty_partitions": len(self.empty_partitions),
            "seconds": round(self.seconds, 3),
            "records_per_second": round(self.records / self.seconds) if self.seconds else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "seed": self.seed,
            "spec": self.spec,
            "totals": self.totals(),
            "partitions": {k: p.to_dict() for k, p in self.partitions.items()},
            "malformed_lines": [
                {"key": m.key, "line": m.line, "kind": m.kind} for m in self.malformed_lines
            ],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def write_json(self, path: str | Path) -> Path:
        """Write the report (atomically) so another process can check an ingest against it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)
        return path

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SeedReport:
        return cls(
            bucket=d["bucket"],
            seed=d["seed"],
            spec=d["spec"],
            partitions={k: PartitionStats.from_dict(p) for k, p in d["partitions"].items()},
            malformed_lines=[MalformedLine(**m) for m in d["malformed_lines"]],
            seconds=float(d.get("totals", {}).get("seconds") or 0.0),
        )

    @classmethod
    def read_json(cls, path: str | Path) -> SeedReport:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _spec_dict(spec: ReplicaSpec) -> dict[str, Any]:
    return {
        "start": spec.start.isoformat(),
        "end": spec.end.isoformat(),
        "sources": list(spec.sources),
        "message_types": list(spec.message_types),
        "records_per_hour": spec.records_per_hour,
        "files_per_hour": spec.files_per_hour,
        "vehicles": spec.vehicles,
        "empty_hour_rate": spec.empty_hour_rate,
        "empty_day_rate": spec.empty_day_rate,
        "empty_days": sorted(d.isoformat() for d in spec.empty_days),
        "malformed_per_day": spec.malformed_per_day,
        "malformed_kinds": list(spec.malformed_kinds),
        "schema_version": spec.schema_version,
        "java_times": spec.java_times,
    }


def new_report(spec: ReplicaSpec) -> SeedReport:
    """An empty report listing every partition of the spec (so empty days show as no_data)."""
    report = SeedReport(bucket=spec.bucket, seed=spec.seed, spec=_spec_dict(spec))
    for pk in partitions_of(spec):
        report.partitions[pk.key] = PartitionStats(pk.key, pk.source, pk.message_type, pk.day)
    return report


# --------------------------------------------------------------------------------------------
# Seeding a bucket
# --------------------------------------------------------------------------------------------


def seed_replica(
    client: Any,
    start: date,
    end: date,
    *,
    sources: Sequence[str] = ("wydot",),
    message_types: Sequence[str] = ("BSM",),
    bucket: str = BUCKET,
    seed: int = 42,
    records_per_hour: int = 200,
    files_per_hour: int = 2,
    vehicles: int = 20,
    empty_hour_rate: float = 0.05,
    empty_days: Iterable[date] = (),
    empty_day_rate: float = 0.0,
    malformed_per_day: int = 0,
    malformed_kinds: Sequence[str] = MALFORMED_KINDS,
    schema_version: int | None = None,
    java_times: bool = True,
    workers: int = 8,
    processes: int = 0,
    progress: Callable[[int], None] | None = None,
    retrier: Retrier | None = None,
) -> SeedReport:
    """Generate the replica for folder days start..end (inclusive, UTC) and upload it
    (through ``retrier`` when given: retried and its errors translated as every S3 request is).

    Objects are built one hour at a time (on this thread, or in ``processes`` worker processes
    when > 1) and uploaded with put_object by a pool of ``workers`` threads (0 or 1: upload
    inline); only a few hours' objects are ever in memory.
    ``progress`` is called on this thread with the number of valid records each uploaded object
    added (an increment, for progress bars). The bucket must exist.

    Layout knobs: ``records_per_hour`` valid records in every non-empty folder hour, split into
    ``files_per_hour`` NDJSON objects (before 2018-01-18 every record is its own pretty-printed
    object); ``empty_days`` and ``empty_day_rate`` leave whole days without objects and
    ``empty_hour_rate`` single hours; ``malformed_per_day`` extra broken lines (NDJSON days only,
    kinds cycled from ``malformed_kinds``) are listed in the report. ``schema_version`` forces one
    version for every day. ``java_times=False`` always prints seconds in timestamps; by default
    v1/v3/v5 timestamps at a whole minute read 'T16:33Z[UTC]', as Java wrote them.

    Binned sources (nycdot) have a bin folder per partition instead of days and hours; how they
    read these knobs (records_per_hour = events per bin, ...) is in replica_nycdot's docstring.
    """
    spec = ReplicaSpec(
        start=start,
        end=end,
        sources=tuple(sources),
        message_types=tuple(message_types),
        bucket=bucket,
        seed=seed,
        records_per_hour=records_per_hour,
        files_per_hour=files_per_hour,
        vehicles=vehicles,
        empty_hour_rate=empty_hour_rate,
        empty_day_rate=empty_day_rate,
        empty_days=frozenset(empty_days),
        malformed_per_day=malformed_per_day,
        malformed_kinds=tuple(malformed_kinds),
        schema_version=schema_version,
        java_times=java_times,
    )
    spec.validate()
    report = new_report(spec)
    began = time.perf_counter()

    def put(obj: ReplicaObject) -> int:
        target = f"s3://{bucket}/{obj.key}"

        def send() -> Any:
            return client.put_object(Bucket=bucket, Key=obj.key, Body=obj.body)

        try:
            if retrier is not None:
                retrier.call("PutObject", target, send)
            else:
                send()
        except CvCatalogError:
            raise
        except Exception as exc:
            if classify_error(exc) is not None:  # S3 or the network: the usual one line
                raise translate_error(exc, "PutObject", target) from exc
            raise SandboxError(f"could not upload {target}: {exc}") from exc
        return obj.records

    if workers <= 1:
        for obj in iter_replica(spec, processes=processes):
            report.add(obj)
            n = put(obj)
            if progress:
                progress(n)
    else:
        pending: deque[Future[int]] = deque()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="replica-put") as pool:
            try:
                for obj in iter_replica(spec, processes=processes):
                    report.add(obj)
                    pending.append(pool.submit(put, obj))
                    while len(pending) > 2 * workers or (pending and pending[0].done()):
                        n = pending.popleft().result()
                        if progress:
                            progress(n)
                while pending:
                    n = pending.popleft().result()
                    if progress:
                        progress(n)
            except BaseException:
                for f in pending:
                    f.cancel()
                raise
    report.seconds = time.perf_counter() - began
    return report
