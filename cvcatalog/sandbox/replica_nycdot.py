"""Replica generator for NYCDOT EVENT: obfuscated ASD warning events in month/weekday/time bins.

Each record is one event as NYCDOT published it (see the samples and DataProcessing.txt): an
``eventHeader`` with the obfuscated bins, weather and the application's parameters, a ``bsmList``
of the host's (and for V2V warnings the target's and nearby vehicles') BSMs in the local X/Y/Z
frame with ``T_s`` around the warning at 0, and for some applications a ``mapList``,
``spatList`` or ``timList``. Objects are NDJSON, one event per line, in the bin folders
``nycdot/EVENT/YYYY/MM/{MON..SUN|NA}/{NT|AM|MD|PM|EV|NA}/``.

The ReplicaSpec knobs, as read for NYCDOT (a partition is one bin folder, not a day; planning is
in cvcatalog.sandbox.replica):

- ``records_per_hour``: events per non-empty bin. Bins with an N/A component hold a quarter of
  that (at least one): NYCDOT uses N/A only where few events share a bin. Events are large (the
  V2V ones record ten BSMs a second from both vehicles, 100-500 KB), so keep it small.
- ``files_per_hour``: NDJSON objects per bin (never more than its events).
- ``empty_hour_rate``: the chance a bin folder is empty; ``empty_day_rate``: the chance a whole
  month is; ``empty_days`` does not apply (events have no day).
- ``malformed_per_day``: broken lines per non-empty bin. ``missing_id`` drops
  ``eventHeader.eventType`` (a readable record that fails validation).
- ``vehicles``: the ASD-equipped fleet (group, firmware, size) host vehicles come from; the ids
  in the records are temporary (new for every event), as published.
- ``schema_version`` and ``java_times`` do not apply (no schemaVersion, no timestamps).

The real object names are not documented in the samples; ``nycdot-event-YYYY-MM-WD-TB-<uuid>``
is used. The MAP and SPaT entries follow the published TIM entries' shape (``{"seqNum",
"<kind>Record": {"msgHeader", "<kind>Msg"}}``) with the obfuscated J2735 elements of
DataProcessing.txt; the samples include no MAP or SPaT.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from cvcatalog.sandbox.replica_blocks import (
    HourContext,
    HourGenerator,
    MalformedLine,
    ReplicaObject,
    garbage,
    line_numbers,
    rng_uuid,
    split,
)
from cvcatalog.schemas.nycdot import EVENT_TYPES, NYCDOT_SCHEMA_VERSION

#: Applications that warn about another equipped vehicle (they record its BSMs too).
V2V_TYPES = frozenset({"bsw", "eebl", "fcw", "ima", "lcw", "vtrw"})

#: Relative frequency of each application's events.
EVENT_TYPE_WEIGHTS: dict[str, int] = {
    "spdcomp": 24,
    "fcw": 12,
    "cspdomp": 10,
    "ima": 8,
    "eebl": 6,
    "bsw": 6,
    "lcw": 6,
    "rlvw": 6,
    "spdcompwz": 6,
    "ovcclearancelimit": 5,
    "pedinxwalk": 4,
    "vtrw": 3,
    "evacinfo": 3,
}
assert set(EVENT_TYPE_WEIGHTS) == set(EVENT_TYPES)

#: targetVehID and triggerTVSeqNum of applications without a target vehicle (as published).
NO_TARGET_ID = "00000000"
NO_TARGET_SEQ = 16384
#: tOffset_s of a path-history point whose time is unavailable (J2735 65535 x 10 ms, shifted).
CRUMB_TIME_UNAVAILABLE = -655.34

_BOROUGHS = (("MN", 40), ("BK", 20), ("QN", 20), ("BX", 15), ("SI", 5))
_ROADS_MANHATTAN = (("1wayAve", 30), ("2wayAve", 15), ("1waySt", 30), ("2waySt", 10), ("FWY", 15))
_ROADS_OTHER = (("FWY", 30), ("ART", 45), ("OTH", 25))
#: typical speed (m/s) and its spread by road type
_ROAD_SPEED = {
    "FWY": (22.0, 5.0),
    "ART": (12.0, 4.0),
    "1wayAve": (10.0, 3.5),
    "2wayAve": (9.0, 3.0),
    "1waySt": (7.0, 2.5),
    "2waySt": (7.0, 2.5),
    "OTH": (8.0, 3.0),
}
#: NYC normal air temperature (F) by month, and the offset of each time-of-day bin
_MONTH_TEMP_F = (33, 36, 43, 53, 63, 72, 77, 76, 69, 58, 48, 38)
_TIME_TEMP_F = {"NT": -4, "AM": -2, "MD": 3, "PM": 2, "EV": -1, "NA": 0}
_WEATHER = (
    ("Clear", 30),
    ("MostlyCloudy", 20),
    ("PartlyCloudy", 15),
    ("Overcast", 15),
    ("LightRain", 8),
    ("Rain", 4),
    ("Fog", 2),
    ("LightSnow", 3),
    ("Snow", 3),
)
_ADVISORIES = (
    [1025, 268, 12568, 8721],
    [2574, 13569, 12622, 8709],
    [1025, 7186, 8720],
    [513, 1025, 12584],
)
_EVAC_TEXT = "EVAC Test Message NYC Connected Vehicle Zone"
_STRING_START = re.compile(r'"[A-Za-z]')
_SIGNAL_STATES = ("protected-Movement-Allowed", "protected-clearance", "stop-And-Remain")


def _weighted(rng: random.Random, pairs: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([p for p, _ in pairs], [w for _, w in pairs])[0]


def _hex_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(32):08X}"


# --------------------------------------------------------------------------------------------
# The equipped fleet
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Asd:
    """An ASD-equipped fleet vehicle: what stays the same from one of its events to the next."""

    grp_id: int  # <= 19 pilot test, 20 control (silent), >= 21 treatment
    firmware: str
    width: int  # cm
    length: int  # cm
    height: int  # J2735 units of 5 cm
    mass: int  # J2735 vehicle mass units
    classification: int  # J2735 BasicVehicleClass
    active: bool  # treatment vehicle delivering warnings (after the silent period)


@lru_cache(maxsize=16)
def asd_fleet(seed: int, size: int) -> tuple[Asd, ...]:
    """The equipped vehicles host events come from (cars, vans, trucks and buses of city fleets)."""
    if size < 1:
        raise ValueError("vehicles must be at least 1")
    rng = random.Random(f"{seed}/nycdot/fleet")
    out = []
    for _ in range(size):
        kind = rng.choices(("car", "van", "truck", "bus"), (50, 25, 15, 10))[0]
        width, length, height, mass, cls = {
            "car": (
                rng.randint(175, 201),
                rng.randint(460, 580),
                rng.randint(29, 38),
                rng.randint(30, 58),
                10,
            ),
            "van": (
                rng.randint(195, 215),
                rng.randint(560, 700),
                rng.randint(40, 55),
                rng.randint(56, 80),
                25,
            ),
            "truck": (
                rng.randint(230, 250),
                rng.randint(680, 1100),
                rng.randint(40, 80),
                rng.randint(80, 120),
                20,
            ),
            "bus": (
                rng.randint(244, 259),
                rng.randint(1200, 1830),
                rng.randint(60, 70),
                rng.randint(100, 127),
                25,
            ),
        }[kind]
        r = rng.random()
        grp = rng.randint(1, 19) if r < 0.05 else 20 if r < 0.25 else rng.randint(21, 23)
        out.append(
            Asd(
                grp_id=grp,
                firmware="ASD-SW_v4.3.3.0" if rng.random() < 0.85 else "ASD-SW_v4.2.9.0",
                width=width,
                length=length,
                height=height,
                mass=mass,
                classification=cls,
                active=grp >= 21 and rng.random() < 0.4,
            )
        )
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Motion in the event frame (x east, y north, metres; t seconds from the warning)
# --------------------------------------------------------------------------------------------

_DT = 0.1

#: acceleration (m/s^2) or yaw rate (deg/s) as a function of event time
Profile = Callable[[float], float]


@dataclass(slots=True)
class _Track:
    """States of one vehicle on a 0.1 s grid from t0: position, speed, heading, accel, yaw."""

    t0: float
    x: list[float]
    y: list[float]
    z: list[float]
    v: list[float]
    h: list[float]
    a: list[float]
    w: list[float]

    def index(self, t: float) -> int:
        return min(max(round((t - self.t0) / _DT), 0), len(self.x) - 1)


def _track(
    t0: float,
    t1: float,
    anchor_t: float,
    anchor: tuple[float, float, float],
    heading: float,
    speed: float,
    accel: Profile,
    yaw: Profile,
    grade: float,
) -> _Track:
    """Integrate a vehicle's motion over [t0, t1] so that it is at `anchor` at time anchor_t.

    accel(t) (m/s^2) and yaw(t) (deg/s) are functions of time; speed never goes below zero.
    """
    n = round((t1 - t0) / _DT) + 1
    k0 = min(max(round((anchor_t - t0) / _DT), 0), n - 1)
    x = [0.0] * n
    y = [0.0] * n
    z = [0.0] * n
    v = [0.0] * n
    h = [0.0] * n
    a = [0.0] * n
    w = [0.0] * n
    x[k0], y[k0], z[k0] = anchor
    v[k0], h[k0] = speed, heading % 360.0
    for k in range(k0, n):  # forward
        t = t0 + k * _DT
        a[k] = accel(t) if v[k] > 0.05 or accel(t) > 0 else 0.0
        w[k] = yaw(t) if v[k] > 0.3 else 0.0
        if k + 1 < n:
            v[k + 1] = max(0.0, v[k] + a[k] * _DT)
            h[k + 1] = (h[k] + w[k] * _DT) % 360.0
            step = (v[k] + v[k + 1]) / 2 * _DT
            rad = math.radians(h[k])
            x[k + 1] = x[k] + step * math.sin(rad)
            y[k + 1] = y[k] + step * math.cos(rad)
            z[k + 1] = z[k] + step * grade
    for k in range(k0 - 1, -1, -1):  # backward
        t = t0 + k * _DT
        acc = accel(t)
        w[k] = yaw(t)
        v[k] = max(0.0, v[k + 1] - acc * _DT)
        a[k] = acc if v[k] > 0.05 or acc > 0 else 0.0
        h[k] = (h[k + 1] - w[k] * _DT) % 360.0
        step = (v[k] + v[k + 1]) / 2 * _DT
        rad = math.radians(h[k])
        x[k] = x[k + 1] - step * math.sin(rad)
        y[k] = y[k + 1] - step * math.cos(rad)
        z[k] = z[k + 1] - step * grade
    return _Track(t0, x, y, z, v, h, a, w)


def _const(value: float) -> Profile:
    return lambda _t: value


def _step(before: float, after: float, at: float) -> Profile:
    return lambda t: before if t < at else after


@dataclass(slots=True)
class _Vehicle:
    """One vehicle heard in an event: its BSM identity and its track."""

    id: str
    track: _Track
    width: int
    length: int
    height: int
    mass: int
    classification: int
    msg_base: int
    own: bool  # the host's own BSMs (myRFLevel 0, authenticated)
    semi_major: int
    semi_minor: int
    orientation: int
    lights: bool


# --------------------------------------------------------------------------------------------
# One event
# --------------------------------------------------------------------------------------------


def _parameters(event_type: str, rng: random.Random) -> tuple[dict[str, str], float, float, float]:
    """The application's parameters (strings, as published), window before/after and resolution."""
    if event_type in V2V_TYPES:
        before, follow, res = rng.choice((7, 7, 10)), 10, 0.1
        min_spd = "4" if event_type == "fcw" else "2"
    elif event_type in ("evacinfo", "ovcclearancelimit"):
        before, follow, res, min_spd = 180, 180, 1.0, "2"
    else:
        before, follow, res, min_spd = 20, 10, 1.0, "2"
    p = {
        "recordingROI": "300",
        "timeRecordBefore": str(before),
        "timeRecordFollow": str(follow),
        "timeRecordResolution": "resOneTenthOfSec" if res < 1 else "resEverySec",
        "minSpdThreshold": min_spd,
    }
    extra: dict[str, dict[str, str]] = {
        "fcw": {"timeToCrash": "1"},
        "ima": {"timeToCrash": "0"},
        "eebl": {"hardBrakingThreshold": "4"},
        "cspdomp": {"excessiveCurveSpd": "0", "excessiveCurveSpdTime": "0", "minCurveSpd": "6"},
        "spdcomp": {
            "excessiveSpd": "3",
            "excessiveSpdTime": "0",
            "regulatorySpeed": rng.choice(("11", "11", "11", "13", "22")),
        },
        "spdcompwz": {
            "excessiveZoneSpd": "3",
            "excessiveZoneSpdTime": "0",
            "minZoneSpd": "2",
            "postedZoneSpeed": rng.choice(("9", "11")),
        },
        "rlvw": {
            "stopBarTolerance": "1",
            "yellowDurationTolerance": "0",
            "assumedDriverBraking": "3",
        },
        "ovcclearancelimit": {"postedHeightLimit": "1", "postedSizeLimit": "65535"},
    }
    p.update(extra.get(event_type, {}))
    return p, float(before), float(follow), res


def _location_bin(rng: random.Random, na_bin: bool) -> tuple[str, str]:
    """eventLocationBin and the road type (for speeds)."""
    if na_bin and rng.random() < 0.5:
        return "N/A", "OTH"
    if rng.random() < 0.04:
        return "nonNYC", "FWY"
    borough = _weighted(rng, _BOROUGHS)
    road = _weighted(rng, _ROADS_MANHATTAN if borough == "MN" else _ROADS_OTHER)
    near = rng.random() < (0.5 if borough == "MN" else 0.15)
    return f"{'CV' if near else 'NY'}-{borough}-{road}", road


def _weather(rng: random.Random, month: int, time_bin: str) -> dict[str, Any]:
    cond = _weighted(rng, _WEATHER)
    if "Snow" in cond and month in (5, 6, 7, 8, 9, 10):
        cond = "Rain"
    temp = _MONTH_TEMP_F[month - 1] + _TIME_TEMP_F[time_bin] + rng.randint(-6, 6)
    if "Snow" in cond:
        temp = min(temp, rng.randint(24, 33))
    wet = cond in ("LightRain", "Rain", "LightSnow", "Snow")
    if rng.random() < 0.03:
        precip = "M"
    elif wet:
        precip = f"{rng.randint(1, 30 if cond == 'Rain' else 8) / 100:.2f}"
    else:
        precip = "0.00"
    return {
        "weatherCondition": cond,
        "airTemperature": temp,
        "precipitation1Hr": precip,
        "windSpeed": rng.randint(0, 20),
        "snow": "Snow" in cond,
    }


def _scenario(
    event_type: str, rng: random.Random, road: str
) -> tuple[float, Profile, Profile, list[tuple[float, float, float, float, Profile, Profile]]]:
    """Host speed, accel(t), yaw(t), and the other vehicles relative to the host at t=0:
    (metres ahead, metres to the left, heading offset, speed, accel(t), yaw(t))."""
    mean, spread = _ROAD_SPEED.get(road, (9.0, 3.0))
    v = max(3.0, rng.gauss(mean, spread))
    accel, yaw = _const(rng.uniform(-0.3, 0.3)), _const(rng.uniform(-0.8, 0.8))
    others: list[tuple[float, float, float, float, Profile, Profile]] = []
    if event_type == "fcw":
        gap = rng.uniform(8.0, 25.0)
        others.append((gap, 0.0, 0.0, v * rng.uniform(0.3, 0.7), _const(-1.5), _const(0.0)))
        accel = _step(0.2, -3.5, 0.8)
    elif event_type == "eebl":
        others.append((rng.uniform(20.0, 50.0), 0.0, 0.0, v, _step(0.0, -6.0, -1.5), _const(0.0)))
        accel = _step(0.0, -2.5, 1.0)
    elif event_type in ("bsw", "lcw"):
        side = rng.choice((3.4, -3.4))
        others.append(
            (
                rng.uniform(-6.0, 2.0),
                side,
                0.0,
                v + rng.uniform(-1.0, 2.0),
                _const(0.0),
                _const(0.0),
            )
        )
        yaw = _step(side * 1.2, 0.0, 1.5)  # drifting toward the occupied lane, then back
    elif event_type == "vtrw":
        v = max(3.0, min(v, 8.0))
        others.append(
            (rng.uniform(-4.0, 4.0), -3.0, 0.0, v + rng.uniform(0.5, 3.0), _const(0.0), _const(0.0))
        )
        yaw = _step(14.0, 0.0, 5.0)  # turning right
    elif event_type == "ima":
        v = max(3.0, min(v, 12.0))
        turn = rng.choice((90.0, -90.0))
        dist = rng.uniform(15.0, 35.0)
        others.append(
            (
                dist,
                dist * (1 if turn < 0 else -1) * rng.uniform(0.8, 1.2),
                turn,
                rng.uniform(6.0, 12.0),
                _const(0.0),
                _const(0.0),
            )
        )
        for _ in range(rng.randint(0, 4)):  # other traffic at the intersection
            others.append(
                (
                    rng.uniform(-40.0, 80.0),
                    rng.uniform(-40.0, 40.0),
                    rng.choice((0.0, 90.0, 180.0, -90.0)),
                    rng.choice((0.0, rng.uniform(3.0, 12.0))),
                    _const(0.0),
                    _const(0.0),
                )
            )
    elif event_type in ("spdcomp", "spdcompwz", "cspdomp"):
        v = max(v, 12.0 + rng.uniform(0.0, 6.0))
        accel = _step(0.3, -0.8, 1.0)
        if event_type == "cspdomp":
            yaw = _step(0.0, rng.choice((6.0, -6.0)), 2.0)
    elif event_type == "rlvw":
        v = max(v, 9.0)
        accel = _step(0.0, -4.0, 0.7)
    elif event_type == "pedinxwalk":
        v = max(3.0, min(v, 7.0))
        accel = _step(0.0, -2.0, 0.5)
        yaw = _step(0.0, rng.choice((12.0, -12.0)), -3.0)
    elif event_type in ("evacinfo", "ovcclearancelimit"):
        # long recordings: stop-and-go city traffic
        period = rng.uniform(40.0, 90.0)

        def accel(t: float) -> float:
            return 0.4 * math.sin(2 * math.pi * t / period)

    return v, accel, yaw, others


def _bsm(
    veh: _Vehicle, k: int, seq: int, t_s: float, rng: random.Random, window_start: float
) -> dict[str, Any]:
    """One BSM of the bsmList, keys in the published order."""
    tr = veh.track
    crumbs = []
    back = 0.0
    for _ in range(rng.randint(2, 6)):
        back += rng.uniform(1.0, 6.0)
        j = tr.index(t_s - back)
        if tr.t0 > t_s - back and rng.random() < 0.5:
            crumbs.append(
                {
                    "xOffset_m": round(tr.x[j] - tr.x[k], 3),
                    "yOffset_m": round(tr.y[j] - tr.y[k], 3),
                    "zOffset_m": round(tr.z[j] - tr.z[k], 1),
                    "tOffset_s": CRUMB_TIME_UNAVAILABLE,
                }
            )
            break
        crumbs.append(
            {
                "xOffset_m": round(tr.x[j] - tr.x[k], 3),
                "yOffset_m": round(tr.y[j] - tr.y[k], 3),
                "zOffset_m": round(tr.z[j] - tr.z[k], 1),
                "tOffset_s": round(-back, 2),
            }
        )
    w = tr.w[k]
    speed = tr.v[k]
    radius = 32767 if abs(w) < 0.5 or speed < 0.5 else round(speed / math.radians(w) * 10)
    radius = max(-32767, min(32767, radius))
    vse: dict[str, Any] = {
        "pathHistory": {"crumbData": crumbs},
        "pathPrediction": {
            "radiusOfCurve": radius,
            "confidence": rng.choice((76, 180, 192, 197, 200)),
        },
    }
    if veh.lights:
        vse["lights"] = {"value": "3000", "length": 9}
    return {
        "eventMsgSeqNum": seq,
        "bsmRecord": {
            "msgHeader": (
                {"myRFLevel": 0, "authenticated": True}
                if veh.own
                else {"myRFLevel": rng.randint(-95, -60), "authenticated": rng.random() < 0.5}
            ),
            "bsmMsg": {
                "coreData": {
                    "msgCnt": (veh.msg_base + round((t_s - window_start) * 10)) % 128,
                    "id": veh.id,
                    "accuracy": {
                        "semiMajor": veh.semi_major,
                        "semiMinor": veh.semi_minor,
                        "orientation": veh.orientation,
                    },
                    "transmission": "forwardGears"
                    if speed > 0.2
                    else rng.choice(("forwardGears", "neutral")),
                    "angle": 127,
                    "accelSet": {
                        "long_mpss": round(tr.a[k] + rng.uniform(-0.05, 0.05), 2),
                        "lat_mpss": round(speed * math.radians(w) + rng.uniform(-0.1, 0.1), 2),
                        "vert_mpss": -0.259,
                        "yaw_dps": round(w + rng.uniform(-0.2, 0.2), 2),
                    },
                    "brakes": {
                        "wheelBrakes": "00",
                        "traction": "unavailable",
                        "abs": "unavailable",
                        "scs": "unavailable",
                        "brakeBoost": "unavailable",
                        "auxBrakes": "unavailable",
                    },
                    "size": {"width": veh.width, "length": veh.length},
                    "X_m": round(tr.x[k], 3),
                    "Y_m": round(tr.y[k], 3),
                    "Z_m": round(tr.z[k], 1),
                    "T_s": round(t_s, 3),
                    "speed_mps": round(speed, 2),
                    "heading_deg": round(tr.h[k], 3) % 360.0,
                },
                "partII": [
                    {"partII-Id": 0, "partII-Value": vse},
                    {
                        "partII-Id": 2,
                        "partII-Value": {
                            "classification": veh.classification,
                            "vehicleData": {"height": veh.height, "mass": veh.mass},
                        },
                    },
                ],
            },
        },
    }


def _map_list(rng: random.Random, host: _Track, speed_limit: float) -> list[dict[str, Any]]:
    """One intersection ahead of the host: four approaches of two lanes (MAP, obfuscated)."""
    k = host.index(2.0)
    rad = math.radians(host.h[k])
    ahead = rng.uniform(15.0, 40.0)
    ref = {
        "X_m": round(host.x[k] + ahead * math.sin(rad), 3),
        "Y_m": round(host.y[k] + ahead * math.cos(rad), 3),
        "Z_m": round(host.z[k], 1),
    }
    lanes = []
    lane_id = 1
    for approach in range(4):
        for lane in range(2):
            sx, sy = ((0, -1), (1, 0), (0, 1), (-1, 0))[approach]
            off = 180 + 360 * lane  # cm from the centreline, one lane width apart
            lanes.append(
                {
                    "laneID": lane_id,
                    "laneAttributes": {
                        "directionalUse": "10",
                        "sharedWith": "0000000000",
                        "laneType": {"vehicle": "00000000"},
                    },
                    "maneuvers": "110000000000" if lane == 0 else "101000000000",
                    "nodeList": {
                        "nodes": [
                            {
                                "delta": {
                                    "node-XY3": {
                                        "x": sx * 1200 + sy * off,
                                        "y": sy * 1200 - sx * off,
                                    }
                                }
                            },
                            {"delta": {"node-XY5": {"x": sx * 6000, "y": sy * 6000}}},
                        ]
                    },
                    "connectsTo": [
                        {
                            "connectingLane": {
                                "lane": (lane_id + 3) % 8 + 1,
                                "maneuver": "100000000000",
                            },
                            "signalGroup": 2 + 2 * (approach % 2) + 4 * (approach // 2),
                        }
                    ],
                }
            )
            lane_id += 1
    return [
        {
            "seqNum": 1,
            "mapRecord": {
                "msgHeader": {"myRFLevel": rng.randint(-90, -55), "authenticated": True},
                "mapMsg": {
                    "msgCnt": rng.randint(0, 127),
                    "intersections": [
                        {
                            "id": {"id": "A"},
                            "refPoint": ref,
                            "laneWidth": 360,
                            "speedLimits": [{"type": "vehicleMaxSpeed", "speed_mps": speed_limit}],
                            "laneSet": lanes,
                        }
                    ],
                },
            },
        }
    ]


def _spat_list(
    rng: random.Random, before: float, follow: float, red_at: float
) -> list[dict[str, Any]]:
    """One SPaT a second for intersection A; the host's group (2) turns red at red_at."""
    out = []
    t = -before + rng.uniform(0.0, 1.0)
    seq = 1
    cycle, green, yellow = 90.0, 40.0, 3.0
    phase0 = red_at - green - yellow  # when group 2 turned green
    while t < follow:
        states = []
        for group in (2, 4, 6, 8):
            start = phase0 if group in (2, 6) else phase0 + green + yellow
            pos = (t - start) % cycle
            if pos < green:
                state, end = _SIGNAL_STATES[0], t + green - pos
            elif pos < green + yellow:
                state, end = _SIGNAL_STATES[1], t + green + yellow - pos
            else:
                state, end = _SIGNAL_STATES[2], t + cycle - pos
            states.append(
                {
                    "signalGroup": group,
                    "state-time-speed": [
                        {
                            "eventState": state,
                            "timing": {
                                "minEndTime_s": round(end, 1),
                                "maxEndTime_s": round(end + 5.0, 1),
                            },
                        }
                    ],
                }
            )
        out.append(
            {
                "seqNum": seq,
                "spatRecord": {
                    "msgHeader": {"myRFLevel": rng.randint(-90, -55), "authenticated": True},
                    "spatMsg": {
                        "intersections": [
                            {
                                "id": {"id": "A"},
                                "revision": 1,
                                "status": "0000",
                                "time_sec": round(t, 3),
                                "states": states,
                            }
                        ]
                    },
                },
            }
        )
        seq += 1
        t += 1.0
    return out


def _tim_list(rng: random.Random, event_type: str) -> list[dict[str, Any]]:
    """The distinct TIMs heard (one copy each, packetIDs as letter codes)."""
    n = 2 if event_type in ("evacinfo", "ovcclearancelimit") else 1
    out = []
    seq = 1
    for i in range(n):
        if event_type == "evacinfo" and i == n - 1:
            items: list[dict[str, Any]] = [{"item": {"text": _EVAC_TEXT}}]
        else:
            items = [{"item": {"itis": c}} for c in rng.choice(_ADVISORIES)]
        out.append(
            {
                "seqNum": seq,
                "timRecord": {
                    "msgHeader": {"myRFLevel": rng.randint(-95, -65), "authenticated": True},
                    "timMsg": {
                        "msgCnt": 1,
                        "packetID": "ABCDEFGH"[i],
                        "dataFrames": [
                            {
                                "sspTimRights": 0,
                                "frameType": "advisory",
                                "msgId": {
                                    "roadSignID": {"viewAngle": "FFFF", "mutcdCode": "warning"}
                                },
                                "priority": rng.choice((4, 7)),
                                "sspLocationRights": 0,
                                "sspMsgRights1": 0,
                                "sspMsgRights2": 0,
                                "content": {"advisory": items},
                            }
                        ],
                    },
                },
            }
        )
        seq += rng.randint(1, 25)
    return out


def event_record(
    rng: random.Random,
    month: date,
    bins: tuple[str, str],
    *,
    event_type: str | None = None,
    asd: Asd | None = None,
) -> dict[str, Any]:
    """One NYCDOT EVENT record of the given month and (weekday, time-of-day) folder bin."""
    if event_type is None:
        event_type = rng.choices(list(EVENT_TYPE_WEIGHTS), list(EVENT_TYPE_WEIGHTS.values()))[0]
    if event_type not in EVENT_TYPE_WEIGHTS:
        raise ValueError(f"unknown NYCDOT event type {event_type!r}; one of {EVENT_TYPES}")
    if asd is None:
        asd = asd_fleet(0, 20)[rng.randrange(20)]
    _, time_bin = bins
    v2v = event_type in V2V_TYPES
    params, before, follow, res = _parameters(event_type, rng)
    location, road = _location_bin(rng, "NA" in bins)
    weather = _weather(rng, month.month, time_bin)
    host_id = _hex_id(rng)

    # motion: the host's trigger BSM is the origin, sent shortly before the warning
    t_trig = -round(rng.uniform(0.0, 0.09), 3)
    speed, accel, yaw, others = _scenario(event_type, rng, road)
    heading = rng.uniform(0.0, 360.0)
    grade = rng.uniform(-0.02, 0.02)
    t0, t1 = -before - 30.0, follow + 0.5
    host_track = _track(t0, t1, t_trig, (0.0, 0.0, 0.0), heading, speed, accel, yaw, grade)
    sm, sn = rng.choice(((10, 10), (15, 15), (18, 18), (254, 3), (102, 2), (30, 12)))
    vehicles = [
        _Vehicle(
            host_id,
            host_track,
            asd.width,
            asd.length,
            asd.height,
            asd.mass,
            asd.classification,
            rng.randrange(128),
            True,
            sm,
            sn,
            0 if sm == sn else rng.randrange(65535),
            rng.random() < 0.2,
        )
    ]
    k0 = host_track.index(0.0)
    hrad = math.radians(host_track.h[k0])
    for ahead, left, dh, v, acc, yw in others:
        x = host_track.x[k0] + ahead * math.sin(hrad) - left * math.cos(hrad)
        y = host_track.y[k0] + ahead * math.cos(hrad) + left * math.sin(hrad)
        track = _track(
            t0,
            t1,
            0.0,
            (x, y, host_track.z[k0] + rng.uniform(-0.5, 0.5)),
            host_track.h[k0] + dh,
            v,
            acc,
            yw,
            grade,
        )
        big = rng.random() < 0.2
        vehicles.append(
            _Vehicle(
                _hex_id(rng),
                track,
                rng.randint(175, 259),
                rng.randint(450, 1200 if big else 600),
                rng.randint(29, 70 if big else 40),
                rng.randint(30, 120 if big else 60),
                20 if big else 10,
                rng.randrange(128),
                False,
                15,
                15,
                0,
                rng.random() < 0.1,
            )
        )

    # BSMs: every vehicle at the recording resolution, with dropouts, merged in time order
    heard: list[tuple[float, int, int]] = []  # (T_s, vehicle index, track index)
    for vi, veh in enumerate(vehicles):
        phase = t_trig if vi == 0 else rng.uniform(-res, 0.0)
        drop = 0.0 if vi == 0 and res < 1 else rng.uniform(0.0, 0.12)
        steps = round((before + follow) / res)
        for j in range(steps + 1):
            t = phase + (j - round(before / res)) * res
            if t < -before or t > follow:
                continue
            is_trigger = vi == 0 and j == round(before / res)
            if not is_trigger and rng.random() < drop:
                continue
            if vi > 1 and rng.random() < 0.5:  # bystanders are heard less often
                continue
            jitter = 0.0 if is_trigger else rng.uniform(-0.004, 0.004)
            heard.append((t + jitter, vi, veh.track.index(t)))
    heard.sort()
    seq0 = 1 if not v2v or rng.random() < 0.5 else rng.randint(100, 6000)
    bsms = []
    trigger_hv = trigger_tv = NO_TARGET_SEQ
    best_tv = math.inf
    for n, (t, vi, k) in enumerate(heard):
        seq = seq0 + n
        if vi == 0 and abs(t - t_trig) < 1e-9:
            trigger_hv = seq
        if vi == 1 and v2v and abs(t) < best_tv:
            best_tv, trigger_tv = abs(t), seq
        bsms.append(_bsm(vehicles[vi], k, seq, t, rng, -before))
    # the trigger BSM is exactly at the origin, as DataProcessing.txt defines it
    if trigger_hv != NO_TARGET_SEQ:
        core = bsms[trigger_hv - seq0]["bsmRecord"]["bsmMsg"]["coreData"]
        core["X_m"], core["Y_m"], core["Z_m"] = 0.0, 0.0, 0.0

    header: dict[str, Any] = {
        "locationSource": (
            ("gpsrsu" if location.startswith("CV") else "gps")
            if asd.firmware.endswith("4.3.3.0")
            else rng.choice(("rsutriangulation", "gps"))
        ),
        "asdFirmwareVersion": asd.firmware,
        "eventAlertActive": asd.active,
        "eventAlertSent": True,
        "eventAlertHeard": asd.active and rng.random() < 0.8,
        "hostVehID": host_id,
        "targetVehID": vehicles[1].id if v2v else NO_TARGET_ID,
        "triggerHVSeqNum": trigger_hv,
        "triggerTVSeqNum": trigger_tv if v2v else NO_TARGET_SEQ,
        "eventType": event_type,
        "parameters": params,
        "grpId": asd.grp_id,
        "eventStatus": "Obfuscated",
        "eventTimeBin": f"{month.year:04d}-{month.month:02d}-"
        + "-".join("N/A" if b == "NA" else b for b in bins),
        "eventLocationBin": location,
        "weatherCondition": weather["weatherCondition"],
        "airTemperature": weather["airTemperature"],
        "precipitation1Hr": weather["precipitation1Hr"],
        "windSpeed": weather["windSpeed"],
    }
    if rng.random() < 0.4 and location not in ("N/A", "nonNYC"):
        header["speedCondition"] = max(3, round(_ROAD_SPEED[road][0] * 2.237 + rng.gauss(0, 4)))
    if month.month in (12, 1, 2, 3) and weather["snow"]:
        header["lastPlowed"] = rng.choice((-1, 5 * rng.randint(1, 48)))
    record: dict[str, Any] = {"eventHeader": header, "bsmList": bsms}
    at_intersection = event_type in ("rlvw", "pedinxwalk") or (
        event_type == "ima" and rng.random() < 0.5
    )
    if at_intersection:
        limit = round(float(params.get("regulatorySpeed", "11.18")), 2)
        record["mapList"] = _map_list(rng, host_track, limit)
        if event_type != "ima" or rng.random() < 0.5:
            record["spatList"] = _spat_list(rng, before, follow, red_at=rng.uniform(-4.0, -0.5))
    if event_type in ("evacinfo", "ovcclearancelimit", "spdcompwz") or rng.random() < 0.03:
        record["timList"] = _tim_list(rng, event_type)
    return record


# --------------------------------------------------------------------------------------------
# One bin folder
# --------------------------------------------------------------------------------------------


def events_in_bin(per_bin: int, bins: tuple[str, str]) -> int:
    """Events of a non-empty bin: records_per_hour, a quarter (at least 1) for an N/A bin."""
    if per_bin <= 0:
        return 0
    return max(1, per_bin // 4) if "NA" in bins else per_bin


def _malformed_event(kind: str, rng: random.Random, ctx: HourContext) -> str:
    pk = ctx.partition
    assert pk.bins is not None
    if kind == "garbage":
        text = garbage(rng)
    else:
        rec = event_record(rng, pk.day, pk.bins, event_type=rng.choice(("spdcomp", "cspdomp")))
        if kind == "missing_id":
            del rec["eventHeader"]["eventType"]
            return json.dumps(rec)
        full = json.dumps(rec)
        # cut inside a string: a cut right after ':', ',' or '[' leaves a prefix that DuckDB's
        # newline-delimited reader completes with the next line, losing that line too
        starts = [m.start() for m in _STRING_START.finditer(full, len(full) // 10)]
        cut = rng.choice([i for i in starts if i < len(full) * 9 // 10]) + 2
        text = full[:cut]
    try:
        json.loads(text)
    except ValueError:
        return text
    raise AssertionError(f"a {kind} line parsed as JSON: {text[:200]!r}")


def event_bin(ctx: HourContext) -> list[ReplicaObject]:
    """The NDJSON objects of one bin folder (ctx.hour is always 0 for binned sources)."""
    spec, pk = ctx.spec, ctx.partition
    if pk.bins is None:
        raise ValueError(f"{pk.key} is not a bin folder")
    fleet = asd_fleet(spec.seed, spec.vehicles)
    rng = ctx.rng("events")
    n = events_in_bin(spec.records_per_hour, pk.bins)
    records = [event_record(rng, pk.day, pk.bins, asd=rng.choice(fleet)) for _ in range(n)]
    sizes = split(n, spec.files_per_hour)
    bad_rng = ctx.rng("malformed")
    bad_by_file: dict[int, list[str]] = {}
    for kind in ctx.malformed:
        bad_by_file.setdefault(bad_rng.randrange(len(sizes)), []).append(kind)
    wd, tb = pk.bins
    objects = []
    pos = 0
    for fi, size in enumerate(sizes):
        chunk = records[pos : pos + size]
        pos += size
        lines = [json.dumps(r) for r in chunk]
        key = (
            f"{pk.s3_prefix}nycdot-event-{pk.day.year:04d}-{pk.day.month:02d}-{wd}-{tb}-"
            f"{rng_uuid(rng)}"
        )
        inserted: list[tuple[int, str, str]] = []
        for kind in bad_by_file.get(fi, []):
            text = _malformed_event(kind, bad_rng, ctx)
            at = bad_rng.randint(0, len(lines))
            lines.insert(at, text)
            inserted.append((at, kind, text))
        malformed: tuple[MalformedLine, ...] = line_numbers(key, lines, inserted)
        objects.append(
            ReplicaObject(
                key=key,
                body=("\n".join(lines) + "\n").encode(),
                partition=pk,
                hour=ctx.hour,
                records=len(chunk),
                schema_version=NYCDOT_SCHEMA_VERSION,
                vehicles=dict(Counter(r["eventHeader"]["hostVehID"] for r in chunk)),
                malformed=malformed,
            )
        )
    return objects


def generators() -> dict[tuple[str, str], HourGenerator]:
    return {("nycdot", "EVENT"): event_bin}
