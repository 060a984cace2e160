"""Replica generator for THEA BSM, TIM and SPAT: folder hours of realistic records in their real shape.

Registered through generators(); see cvcatalog.sandbox.replica.GENERATORS.

What makes THEA records THEA (all from the published samples and data dictionaries):

- every value is a JSON string in raw J2735 units ("lat": "279434229", "speed": "1291"),
  enumerations are one-key objects ({"unavailable": null}), metadata.schemaVersion is the number 1;
- metadata.recordGeneratedAt is US Eastern wall time, '2019-01-14 00:20:30.046 [ET]', and the
  folder hour is the Eastern hour of that time (logFileName '2019_1_14_0_thea18.csv' likewise);
- a list of one element is a bare object (TravelerDataFrame, IntersectionState, MovementEvent).

Vehicles shuttle along the Selmon Expressway reversible express lanes between downtown Tampa
and Brandon; RSUs along the road log the BSMs they hear (kind "in", bsmSource "RV") and send TIMs;
RSUs at downtown intersections send SPATs of a fixed-time signal plan. Every TIM carries one
TravelerDataFrame and every SPAT one IntersectionState, so a valid record is one canonical row and
SeedReport.records is the expected row count for every type. For TIM and SPAT the report's
"vehicles" are the sending RSUs (metadata.RSUID -> valid records), the rsu_id column.

The fall-back hour (01 on the first Sunday of November) is written for its second, standard-time
occurrence only: the [ET] text cannot tell the two apart and the catalog reads it that way. The
spring-forward hour 02 does not exist and gets no objects. Object names copy the WYDOT Firehose
pattern with a THEA stream name (usdot-its-cvpilot-thea-bsm-public-1-<UTC time>-<uuid>); before
2018-01-18 each record is its own pretty-printed thea-filtered-<type>-<epoch ms>.json.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from cvcatalog.sandbox.replica_blocks import (
    HourContext,
    HourGenerator,
    ReplicaObject,
    garbage,
    line_numbers,
    pretty_json,
    rng_uuid,
    split,
)

__all__ = [
    "INTERSECTIONS",
    "REL_WAYPOINTS",
    "TIM_SITES",
    "TheaVehicle",
    "bsm_record",
    "et_text",
    "generators",
    "hour_start_ms",
    "spat_record",
    "thea_fleet",
    "tim_record",
]

ET = ZoneInfo("America/New_York")
SCHEMA_VERSION = 1
_HOUR_MS = 3_600_000
_M_PER_DEG_LAT = 111_320.0
_EPOCH_REF = 1_420_070_400  # 2015-01-01T00:00:00Z, keeps motion phases small

#: Selmon Expressway reversible express lanes, downtown Tampa (west) to Brandon (east):
#: (lat, lon, ellipsoid height m). The geoid is ~27 m below the ellipsoid here, so road heights
#: are negative, as in the samples (elev "-157" is -15.7 m).
REL_WAYPOINTS: tuple[tuple[float, float, float], ...] = (
    (27.9433, -82.4590, -24.0),  # Florida Ave, downtown
    (27.9434, -82.4557, -22.5),  # Franklin St (the BSM sample's position)
    (27.9437, -82.4497, -18.0),  # Meridian Ave ramp (REL downtown end)
    (27.9462, -82.4330, -13.0),  # 22nd St, elevated
    (27.9488, -82.4170, -12.0),  # 34th St
    (27.9478, -82.3990, -12.5),  # 50th St
    (27.9420, -82.3720, -15.0),  # US 301
    (27.9330, -82.3440, -18.0),  # I-75
    (27.9300, -82.3260, -20.0),  # Brandon Pkwy (REL east end)
)

#: Downtown signalised intersections sending SPAT: (intersection id, RSU, signal groups).
INTERSECTIONS: tuple[tuple[int, str, tuple[int, ...]], ...] = (
    (3150, "thea33", (10, 9, 4, 2)),  # the SPAT sample's intersection
    (3151, "thea34", (2, 4, 6, 8)),
    (3152, "thea35", (2, 4, 6, 8)),
    (3153, "thea36", (2, 6, 4)),
    (3154, "thea37", (2, 4, 6, 8, 9, 10)),
)

#: RSUs sending TIMs: (RSU, route position m, travel direction +1 east / -1 west, ITIS codes).
TIM_SITES: tuple[tuple[str, float, int, tuple[int, ...]], ...] = (
    ("thea2", 900.0, -1, (1793, 7186, 268)),  # the TIM sample's RSU: REL downtown exit
    ("thea3", 2600.0, 1, (1793, 13579)),
    ("thea4", 7400.0, -1, (268, 770)),
    ("thea5", 12600.0, 1, (1793, 7186)),
)

#: RSUs logging BSMs: one every 600 m of the route, thea10, thea11, ...
_RSU_SPACING_M = 600.0
_RSU_FIRST = 10

_CONTENT_KINDS = ("advisory", "advisory", "advisory", "workZone", "speedLimit")
_HPMS_CAR = ("car", "basicVehicle", "10")
_HPMS_BUS = ("bus", "transit", "73")  # J2735 BasicVehicleClass 73: transit-LocalBus (HART)


def _route_tables() -> tuple[list[float], list[float], list[float], list[float], float]:
    """Cumulative distance (m), segment length, bearing and metres per degree of longitude."""
    cum = [0.0]
    seg_len: list[float] = []
    bearings: list[float] = []
    lon_scale: list[float] = []
    for (la1, lo1, _), (la2, lo2, _) in itertools.pairwise(REL_WAYPOINTS):
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


def route_point(s: float) -> tuple[float, float, float, float]:
    """(lat, lon, elevation m, eastbound bearing) at s metres from the downtown end."""
    s = min(max(s, 0.0), ROUTE_LENGTH_M)
    i = min(max(bisect.bisect_right(_CUM, s) - 1, 0), len(_SEG_LEN) - 1)
    f = (s - _CUM[i]) / _SEG_LEN[i]
    la1, lo1, el1 = REL_WAYPOINTS[i]
    la2, lo2, el2 = REL_WAYPOINTS[i + 1]
    return la1 + f * (la2 - la1), lo1 + f * (lo2 - lo1), el1 + f * (el2 - el1), _BEARING[i]


# --------------------------------------------------------------------------------------------
# Vehicles
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TheaVehicle:
    """One connected vehicle (car or HART bus) shuttling along the REL; state is a function of t."""

    id: str  # TemporaryID as THEA writes it: a decimal string
    s0: float
    v_base: float
    v_amp: float
    period: float
    phase: float
    lane: float  # metres right of the centreline
    width: int  # cm
    length: int  # cm
    height: int  # 5 cm units
    mass: int  # J2735 VehicleMass code
    bumper: int  # cm
    kind: tuple[str, str, str]  # hpmsType, role, classification
    transmission: str
    brakes_state: str
    semi_major: int  # 5 cm units
    semi_minor: int
    msg_offset: int

    def state(self, t: float) -> tuple[float, float, float, float, float, float]:
        """(lat, lon, elevation m, heading degree, speed m/s, acceleration m/s^2) at epoch s t."""
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
            s, sign = folded, 1.0  # eastbound, towards Brandon
        else:
            s, sign = 2.0 * ROUTE_LENGTH_M - folded, -1.0
        lat, lon, elev, bearing = route_point(s)
        heading = bearing if sign > 0 else (bearing + 180.0) % 360.0
        h = math.radians(heading)
        i = min(max(bisect.bisect_right(_CUM, s) - 1, 0), len(_SEG_LEN) - 1)
        lat -= self.lane * math.sin(h) / _M_PER_DEG_LAT
        lon += self.lane * math.cos(h) / _LON_M[i]
        return lat, lon, elev, heading, speed, accel

    def position_m(self, t: float) -> float:
        """Route position (m from downtown), for the nearest RSU."""
        tau = t - _EPOCH_REF
        w = 2.0 * math.pi / self.period
        arg = w * tau + self.phase
        travelled = (
            self.s0 + self.v_base * tau - self.v_amp / w * (math.cos(arg) - math.cos(self.phase))
        )
        folded = travelled % (2.0 * ROUTE_LENGTH_M)
        return folded if folded <= ROUTE_LENGTH_M else 2.0 * ROUTE_LENGTH_M - folded


@lru_cache(maxsize=16)
def thea_fleet(seed: int, size: int) -> tuple[TheaVehicle, ...]:
    """The THEA vehicles of a replica (about one in ten a HART bus)."""
    if size < 1:
        raise ValueError("vehicles must be at least 1")
    rng = random.Random(f"{seed}/thea/fleet")
    out: list[TheaVehicle] = []
    seen: set[str] = set()
    while len(out) < size:
        vid = str(rng.randrange(1_000_000, 4_294_967_295))
        if vid in seen:
            continue
        seen.add(vid)
        bus = rng.random() < 0.1
        out.append(
            TheaVehicle(
                id=vid,
                s0=rng.uniform(0.0, 2.0 * ROUTE_LENGTH_M),
                v_base=rng.uniform(18.0, 24.0) if bus else rng.uniform(22.0, 29.0),
                v_amp=rng.uniform(0.5, 3.5),
                period=rng.uniform(120.0, 900.0),
                phase=rng.uniform(0.0, 2.0 * math.pi),
                lane=rng.choice((1.8, 5.4)),
                width=rng.randint(250, 260) if bus else rng.randint(175, 205),
                length=rng.randint(1200, 1250) if bus else rng.randint(420, 520),
                height=rng.randint(62, 66) if bus else rng.randint(28, 36),
                mass=rng.randint(96, 104) if bus else rng.randint(28, 44),
                bumper=rng.randint(45, 60) if bus else rng.randint(38, 50),
                kind=_HPMS_BUS if bus else _HPMS_CAR,
                transmission=rng.choice(("unavailable", "forwardGears")),
                brakes_state=rng.choice(("unavailable", "unavailable", "off")),
                semi_major=rng.randint(3, 12),
                semi_minor=rng.randint(2, 8),
                msg_offset=rng.randrange(128),
            )
        )
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Time text
# --------------------------------------------------------------------------------------------


def et_text(ms: int) -> str:
    """recordGeneratedAt as THEA writes it: Eastern wall time, '2019-01-14 00:20:30.046 [ET]'."""
    local = datetime.fromtimestamp(ms // 1000, ET)
    return (
        f"{local.year:04d}-{local.month:02d}-{local.day:02d} "
        f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}.{ms % 1000:03d} [ET]"
    )


def _log_file_name(ms: int, rsu: str) -> str:
    """'2019_1_14_0_thea18.csv': the Eastern year, month, day and hour, unpadded."""
    local = datetime.fromtimestamp(ms // 1000, ET)
    return f"{local.year}_{local.month}_{local.day}_{local.hour}_{rsu}.csv"


def _minute_of_year(ms: int) -> tuple[int, int]:
    """(UTC year, J2735 MinuteOfTheYear) of an instant."""
    tm = time.gmtime(ms // 1000)
    start = int(datetime(tm.tm_year, 1, 1, tzinfo=UTC).timestamp())
    return tm.tm_year, (ms // 1000 - start) // 60


def hour_start_ms(day: date, hour: int) -> int | None:
    """Epoch ms where Eastern folder hour `hour` of `day` starts, or None if the hour is skipped.

    The repeated November hour is taken at its second (standard-time) occurrence, which is how
    the catalog reads its [ET] text.
    """
    local = datetime(day.year, day.month, day.day, hour, tzinfo=ET, fold=1)
    ts = local.timestamp()
    back = datetime.fromtimestamp(ts, ET)
    if (back.date(), back.hour) != (day, hour):
        return None
    return int(ts) * 1000


def _metadata(ms: int, rsu: str, kind: str, psid: str, data_type: str) -> dict[str, Any]:
    md: dict[str, Any] = {
        "schemaVersion": SCHEMA_VERSION,
        "recordGeneratedBy": "rsu",
        "recordGeneratedAt": et_text(ms),
        "logFileName": _log_file_name(ms, rsu),
        "kind": kind,
    }
    if data_type == "bsm":
        md["bsmSource"] = "RV"
    md["psid"] = psid
    md["RSUID"] = rsu
    if data_type != "tim":  # the TIM sample has no externalID
        md["externalID"] = "NA"
    md["dataType"] = data_type
    return md


def _dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"))


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


def bsm_record(v: TheaVehicle, t_ms: int, rng: random.Random) -> dict[str, Any]:
    """One BSM as logged by the RSU nearest to the vehicle, in the shape of the THEA sample."""
    rnd = rng.random
    lat, lon, elev, heading, speed, accel = v.state(t_ms / 1000.0)
    s = v.position_m(t_ms / 1000.0)
    rsu = f"thea{_RSU_FIRST + int(s // _RSU_SPACING_M)}"
    speed += (rnd() - 0.5) * 0.4
    h_k = round((heading + (rnd() - 0.5) * 1.5) * 80.0) % 28_800  # 0.0125 degree
    lat_u = round(lat * 1e7 + (rnd() - 0.5) * 200)
    lon_u = round(lon * 1e7 + (rnd() - 0.5) * 200)
    # path history: past points 1..6 s back, offsets are current minus past (as in the sample)
    rad = math.radians(h_k / 80.0)
    dn = math.cos(rad) * speed * (1e5 / _M_PER_DEG_LAT)  # 1e-7 degree per centisecond
    de = math.sin(rad) * speed * (1e5 / _M_PER_DEG_LAT) / math.cos(math.radians(lat))
    crumbs = []
    cs = 0
    for _ in range(2 + int(rnd() * 4)):
        cs += 100 + int(rnd() * 300)
        crumbs.append(
            {
                "latOffset": str(round(dn * cs)),
                "lonOffset": str(round(de * cs)),
                "elevationOffset": str(round((rnd() - 0.5) * 4)),
                "timeOffset": str(cs),
            }
        )
    r = rnd()
    radius = 32767 if r < 0.5 else round((r - 0.75) * 40_000)
    hpms, role, classification = v.kind
    braking = accel < -0.12 or rnd() < 0.02  # the odd hard stop in traffic
    core: dict[str, Any] = {
        "msgCnt": str((t_ms // 100 + v.msg_offset) % 128),
        "id": v.id,
        "secMark": str(t_ms % 60_000),
        "lat": str(lat_u),
        "long": str(lon_u),
        "elev": str(round(elev * 10)),
        "accuracy": {
            "semiMajor": str(v.semi_major),
            "semiMinor": str(v.semi_minor),
            "orientation": str(int(rnd() * 65535)),
        },
        "transmission": {v.transmission: None},
        "speed": str(round(speed * 50)),
        "heading": str(h_k),
        "angle": "127" if rnd() < 0.8 else str(round((rnd() - 0.5) * 10)),
        "accelSet": {
            "long": str(round(accel * 100 + (rnd() - 0.5) * 20)),
            "lat": "2001" if rnd() < 0.7 else str(round((rnd() - 0.5) * 30)),
            "vert": "-127" if rnd() < 0.2 else str(48 + int(rnd() * 4)),
            "yaw": str(round((rnd() - 0.5) * 300)),
        },
        "brakes": {
            "wheelBrakes": "01111" if braking else "00000",
            "traction": {v.brakes_state: None},
            "abs": {v.brakes_state: None},
            "scs": {v.brakes_state: None},
            "brakeBoost": {v.brakes_state: None},
            "auxBrakes": {v.brakes_state: None},
        },
        "size": {"width": str(v.width), "length": str(v.length)},
    }
    vse = {
        "partII-Id": "0",
        "partII-Value": {
            "VehicleSafetyExtensions": {
                "pathHistory": {"crumbData": {"PathHistoryPoint": crumbs}},
                "pathPrediction": {
                    "radiusOfCurve": str(radius),
                    "confidence": str(rng.choice((100, 140, 183, 200))),
                },
            }
        },
    }
    suve = {
        "partII-Id": "2",
        "partII-Value": {
            "SupplementalVehicleExtensions": {
                "classification": classification,
                "classDetails": {"role": {role: None}, "hpmsType": {hpms: None}},
                "vehicleData": {
                    "height": str(v.height),
                    "bumpers": {"front": str(v.bumper), "rear": str(v.bumper)},
                    "mass": str(v.mass),
                },
            }
        },
    }
    return {
        "metadata": _metadata(t_ms, rsu, "in", "32", "bsm"),
        "payload": {"data": {"coreData": core, "partII": {"SEQUENCE": [vse, suve]}}},
    }


def _heading_slice(heading: float) -> str:
    """J2735 HeadingSlice bits (22.5 degree sectors from north) within 80 degrees of heading."""
    bits = []
    for i in range(16):
        centre = i * 22.5 + 11.25
        diff = abs((centre - heading + 180.0) % 360.0 - 180.0)
        bits.append("1" if diff <= 80.0 else "0")
    return "".join(bits)


def tim_record(site: int, t_ms: int, rng: random.Random) -> dict[str, Any]:
    """One TIM broadcast by a TIM RSU; content and msgCnt change every `duration` minutes."""
    rsu, s, direction, codes = TIM_SITES[site]
    lat, lon, elev, bearing = route_point(s)
    heading = bearing if direction > 0 else (bearing + 180.0) % 360.0
    duration = (5, 10, 15, 30)[site % 4]
    index = t_ms // 60_000 // duration  # which message of the site this is
    start_ms = index * duration * 60_000
    year, start_moy = _minute_of_year(start_ms)
    msg_rng = random.Random(f"thea-tim/{rsu}/{index}")  # the same message every broadcast
    pos = {
        "lat": str(round(lat * 1e7)),
        "long": str(round(lon * 1e7)),
        "elevation": str(round(elev * 10)),
    }
    # the path: nodes every ~250 m upstream of the sign (the way vehicles come from)
    nodes = [{"delta": {"node-XY6": {"x": "0", "y": "0"}}, "attributes": {"dElevation": "0"}}]
    prev = (lat, lon, elev)
    for k in range(1, 4 + msg_rng.randrange(6)):
        la, lo, el, _ = route_point(s - direction * 250.0 * k)
        x = round((lo - prev[1]) * _M_PER_DEG_LAT * math.cos(math.radians(la)) * 100)
        y = round((la - prev[0]) * _M_PER_DEG_LAT * 100)
        nodes.append(
            {
                "delta": {"node-XY6": {"x": str(x), "y": str(y)}},
                "attributes": {"dElevation": str(round((el - prev[2]) * 100))},
            }
        )
        prev = (la, lo, el)
    kind = _CONTENT_KINDS[msg_rng.randrange(len(_CONTENT_KINDS))]
    items = [
        {"item": {"itis": str(c)}} for c in msg_rng.sample(codes, msg_rng.randint(1, len(codes)))
    ]
    slice_text = _heading_slice(heading)
    frame: dict[str, Any] = {
        "sspTimRights": "0",
        "frameType": {"advisory": None},
        "msgId": {
            "roadSignID": {
                "position": pos,
                "viewAngle": slice_text,
                "mutcdCode": {"warning": None},
            }
        },
        "startYear": str(year),
        "startTime": str(start_moy),
        "duratonTime": str(duration),  # sic: THEA's spelling
        "priority": str(msg_rng.randint(1, 5)),
        "sspLocationRights": "0",
        "regions": {
            "GeographicalPath": {
                "anchor": dict(pos),
                "laneWidth": str(msg_rng.choice((366, 1800))),
                "directionality": {"forward": None},
                "closedPath": {"false": None},
                "direction": slice_text,
                "description": {"path": {"offset": {"xy": {"nodes": {"NodeXY": nodes}}}}},
            }
        },
        "sspMsgRights1": "0",
        "sspMsgRights2": "0",
        # one item is a bare object, several an array, as XML-derived JSON does it
        "content": {kind: {"SEQUENCE": items[0] if len(items) == 1 else items}},
    }
    return {
        "metadata": _metadata(t_ms, rsu, "out", "32771", "tim"),
        "payload": {
            "data": {
                "TravelerInformation": {
                    "msgCnt": str(index % 128),
                    "packetID": f"{msg_rng.getrandbits(72):018X}",
                    "dataFrames": {"TravelerDataFrame": frame},
                }
            }
        },
    }


_CYCLE_S = 90  # fixed-time plan: two phases of 45 s (38 green, 4 yellow, 3 all-red)


def _signal(group: int, offset: int, t_ms: int) -> tuple[str, int]:
    """(eventState, end of the state as a J2735 TimeMark: 0.1 s after the UTC hour)."""
    phase = 0 if group in (2, 6, 9, 10) else 1
    pos_ms = (t_ms // 100 * 100 + offset * 1000) % (_CYCLE_S * 1000)
    start = phase * 45_000
    rel = (pos_ms - start) % (_CYCLE_S * 1000)
    if rel < 38_000:
        state, left = "protected-Movement-Allowed", 38_000 - rel
    elif rel < 42_000:
        state, left = "protected-clearance", 42_000 - rel
    else:
        state, left = "stop-And-Remain", _CYCLE_S * 1000 - rel
    end_ms = t_ms + left
    return state, (end_ms % _HOUR_MS) // 100


def spat_record(intersection: int, t_ms: int, rng: random.Random) -> dict[str, Any]:
    """One SPAT of a downtown intersection, stamped a few ms before the RSU logged it."""
    iid, rsu, groups = INTERSECTIONS[intersection]
    stamp = t_ms - 1 - int(rng.random() * 3)
    _, moy = _minute_of_year(stamp)
    states = []
    for g in groups:
        state, mark = _signal(g, iid % 37, stamp)
        states.append(
            {
                "signalGroup": str(g),
                "state-time-speed": {
                    "MovementEvent": {
                        "eventState": {state: None},
                        "timing": {"minEndTime": str(mark)},
                    }
                },
            }
        )
    return {
        "metadata": _metadata(t_ms, rsu, "out", "32770", "spat"),
        "payload": {
            "data": {
                "SPAT": {
                    "timeStamp": str(moy),
                    "intersections": {
                        "IntersectionState": {
                            "id": {"id": str(iid)},
                            "revision": "0",
                            "status": "0000000000000000",
                            "timeStamp": str(stamp % 60_000),
                            "states": {"MovementState": states},
                        }
                    },
                }
            }
        },
    }


def _drop_id(message_type: str, record: dict[str, Any]) -> str:
    """The record without the field that identifies it (a 'missing_id' broken line)."""
    data = record["payload"]["data"]
    if message_type == "BSM":
        del data["coreData"]["id"]
    elif message_type == "TIM":
        del data["TravelerInformation"]["packetID"]
    else:
        del data["SPAT"]["intersections"]["IntersectionState"]["id"]["id"]
    return _dumps(record)


# --------------------------------------------------------------------------------------------
# Hours
# --------------------------------------------------------------------------------------------


def _times(rng: random.Random, senders: int, n: int, start_ms: int) -> list[tuple[int, int]]:
    """(time ms, sender index) of n records: each active sender sends a regular burst."""
    if n == 0:
        return []
    active = rng.sample(range(senders), rng.randint(max(1, (senders + 1) // 2), senders))
    counts = Counter(rng.choice(active) for _ in range(n))
    out: list[tuple[int, int]] = []
    for si in sorted(counts):
        c = counts[si]
        step = min(rng.choice((100, 1000, 1000, 2000, 5000)), max(1, (_HOUR_MS - 1) // c))
        first = rng.randrange(0, _HOUR_MS - step * (c - 1))
        out.extend((start_ms + first + k * step, si) for k in range(c))
    out.sort()
    return out


def _hour(ctx: HourContext) -> list[ReplicaObject]:
    """The objects of one THEA folder hour (Eastern time) of any of the three types."""
    spec = ctx.spec
    mtype = ctx.partition.message_type
    start = hour_start_ms(ctx.partition.day, ctx.hour)
    if start is None:
        return []  # 02:00 on the spring-forward day does not exist
    rng = ctx.rng("records")
    if mtype == "BSM":
        vehicles = thea_fleet(spec.seed, spec.vehicles)
        ids: Sequence[str] = [v.id for v in vehicles]

        def maker(t: int, i: int, r: random.Random) -> dict[str, Any]:
            return bsm_record(vehicles[i], t, r)

    elif mtype == "TIM":
        ids = [site[0] for site in TIM_SITES]

        def maker(t: int, i: int, r: random.Random) -> dict[str, Any]:
            return tim_record(i, t, r)

    else:
        ids = [x[1] for x in INTERSECTIONS]

        def maker(t: int, i: int, r: random.Random) -> dict[str, Any]:
            return spat_record(i, t, r)

    times = _times(rng, len(ids), spec.records_per_hour, start)

    def sender(rec: dict[str, Any], i: int) -> str:
        return str(rec["metadata"]["RSUID"]) if mtype != "BSM" else ids[i]

    prefix = ctx.partition.hour_prefix(ctx.hour)
    objects: list[ReplicaObject] = []
    if not ctx.ndjson:
        used: set[int] = set()
        for t_ms, i in times:
            rec = maker(t_ms, i, rng)
            name_ms = t_ms
            while name_ms in used:
                name_ms += 1
            used.add(name_ms)
            objects.append(
                ReplicaObject(
                    key=f"{prefix}thea-filtered-{mtype.lower()}-{name_ms}.json",
                    body=pretty_json(_dumps(rec)).encode(), partition=ctx.partition,
                    hour=ctx.hour, records=1, schema_version=SCHEMA_VERSION,
                    vehicles={sender(rec, i): 1}, first_ms=t_ms, last_ms=t_ms,
                )
            )  # fmt: skip
        return objects

    sizes = split(len(times), spec.files_per_hour)
    bad_rng = ctx.rng("malformed")  # its own RNG: broken lines never change the valid records
    bad_by_file: dict[int, list[str]] = {}
    for kind in ctx.malformed:
        bad_by_file.setdefault(bad_rng.randrange(len(sizes)), []).append(kind)
    stream = f"usdot-its-cvpilot-thea-{mtype.lower()}-public-1"
    pos = 0
    for fi, size in enumerate(sizes):
        chunk = times[pos : pos + size]
        pos += size
        lines: list[str] = []
        senders: Counter[str] = Counter()
        for t_ms, i in chunk:
            rec = maker(t_ms, i, rng)
            lines.append(_dumps(rec))
            senders[sender(rec, i)] += 1
        first_ms, last_ms = chunk[0][0], chunk[-1][0]
        tm = time.gmtime(first_ms // 1000)
        key = (
            f"{prefix}{stream}-{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}-"
            f"{tm.tm_hour:02d}-{tm.tm_min:02d}-{tm.tm_sec:02d}-{rng_uuid(rng)}"
        )
        inserted: list[tuple[int, str, str]] = []
        for kind in bad_by_file.get(fi, []):
            t_bad = bad_rng.randrange(first_ms, last_ms + 1)
            text = _malformed_text(
                kind, mtype, bad_rng, maker(t_bad, bad_rng.randrange(len(ids)), bad_rng)
            )
            at = bad_rng.randint(0, len(lines))
            lines.insert(at, text)
            inserted.append((at, kind, text))
        objects.append(
            ReplicaObject(
                key=key, body=("\n".join(lines) + "\n").encode(), partition=ctx.partition,
                hour=ctx.hour, records=len(chunk), schema_version=SCHEMA_VERSION,
                vehicles=dict(senders), malformed=line_numbers(key, lines, inserted),
                first_ms=first_ms, last_ms=last_ms,
            )
        )  # fmt: skip
    return objects


def _malformed_text(kind: str, mtype: str, rng: random.Random, record: dict[str, Any]) -> str:
    """One deliberately broken line: garbage, a truncated record, or one without its id."""
    if kind == "missing_id":
        return _drop_id(mtype, record)
    if kind == "garbage":
        text = garbage(rng)
    else:
        full = _dumps(record)
        cut = rng.randrange(len(full) // 10, len(full) * 9 // 10)
        # End inside a string, number or word: DuckDB's NDJSON reader takes a line ending in
        # ':', '[' or an array's ',' as unfinished and reads the next (valid) line into it.
        while not full[cut - 1].isalnum():
            cut -= 1
        text = full[:cut]
    try:
        json.loads(text)
    except ValueError:
        return text
    raise AssertionError(f"a {kind} line parsed as JSON: {text!r}")


def generators() -> dict[tuple[str, str], HourGenerator]:
    """THEA BSM, TIM and SPAT share one hour generator (it dispatches on the message type)."""
    return {("thea", "BSM"): _hour, ("thea", "TIM"): _hour, ("thea", "SPAT"): _hour}
