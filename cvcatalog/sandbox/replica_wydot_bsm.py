"""Replica generator for WYDOT (and wydot_backup) BSM: an I-80 fleet, records per schema version."""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from cvcatalog.sandbox.replica_blocks import (
    FIREHOSE_VERSION,
    I80_WAYPOINTS,
    HourContext,
    HourGenerator,
    ReplicaObject,
    garbage,
    java_instant,
    line_numbers,
    pretty_json,
    rng_uuid,
    split,
)

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

#: WYDOT switched schema versions on these folder days (3 before, 5 in between, 6 after).
SCHEMA5_SINCE = date(2018, 5, 1)
SCHEMA6_SINCE = date(2018, 9, 1)
SUPPORTED_SCHEMA_VERSIONS = (1, 3, 5, 6)

#: Kinesis Firehose delivery-stream name that prefixes NDJSON object names.
FIREHOSE_STREAM = "usdot-its-cvpilot-bsm-public"

_PAYLOAD_TYPE = "us.dot.its.jpo.ode.model.OdeBsmPayload"
_DATA_TYPE = "us.dot.its.jpo.ode.plugin.j2735.J2735Bsm"

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
# Number text (the ODE is Java; its output rules are reproduced here)
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
        stream_id=rng_uuid(rng),
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


# --------------------------------------------------------------------------------------------
# One folder hour
# --------------------------------------------------------------------------------------------


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

    sizes = split(len(times), spec.files_per_hour)
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
            f"{tm.tm_mday:02d}-{tm.tm_hour:02d}-{tm.tm_min:02d}-{tm.tm_sec:02d}-{rng_uuid(rng)}"
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
                malformed=line_numbers(key, lines, inserted),
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
        text = garbage(rng)
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


def generators() -> dict[tuple[str, str], HourGenerator]:
    """BSM hours for both WYDOT feeds (their fleets never share a vehicle id)."""
    return {("wydot", "BSM"): _bsm_hour, ("wydot_backup", "BSM"): _bsm_hour}
