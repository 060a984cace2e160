"""Replica generator for WYDOT (and wydot_backup) TIM: folder hours of realistic records in their real shape.

Registered through generators(); see cvcatalog.sandbox.replica.GENERATORS.

What a day looks like: WYDOT's traffic management centre keeps a handful of advisories on I-80
(variable speed limits, closures, lane reductions for work zones, winter road conditions), each a
TIM with its own packetID and msgCnt, anchored at a point of the interstate with a path of nodes
along it. A record is either a vehicle logging the TIM it heard (rxMsg, `payload.data.MessageFrame`)
or, from schemaVersion 6 on, the TMC's deposit to the SDX (`payload.data.AdvisorySituationData`
around the same MessageFrame, with `metadata.request` naming the RSUs and SNMP settings).

The ODE writes J2735 XER turned into JSON, so one record may have shapes its neighbour does not:
dataFrames as a list, a dict or a dict nested in a dict; regions as an object or a list; a
one-element SEQUENCE or node list as the element itself; enums as `{"false": ""}`; rsus as a list,
`{"rsus": ..}` or `{"rsu": [..]}`; a packetID as a number. The generator cycles through all of
them (deterministically, by record position), as the real bucket mixes them.

Every replica TIM has at most one TravelerDataFrame (WYDOT's own TIMs carry one advisory each; the
multi-frame shape is covered by the real v6_multi sample in the tests), and a TIM without frames
still gives one row, so the canonical view has exactly one row per valid record:
rows == SeedReport.records. ReplicaObject.vehicles is keyed by packetID (as the view's
packet_id text) and counts valid records. Broken lines are listed as MalformedLine, as for BSM;
"missing_id" is a record whose payload has no TravelerInformation.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from cvcatalog.sandbox.replica_blocks import (
    FIREHOSE_VERSION,
    I80_WAYPOINTS,
    HourContext,
    HourGenerator,
    MalformedLine,
    ReplicaObject,
    java_instant,
    java_zoned,
    pretty_json,
    split,
)

#: Firehose delivery stream of the NDJSON-era TIM objects (the number after it is the stream
#: version, FIREHOSE_VERSION, as for BSM).
FIREHOSE_STREAM = "usdot-its-cvpilot-tim-public"
PAYLOAD_TYPE = "us.dot.its.jpo.ode.model.OdeTimPayload"
DATA_TYPE = "TravelerInformation"

#: Shapes cycled through, by record position (see the module docstring).
DATA_FRAME_SHAPES = ("dict", "list", "nested_dict", "dict_of_list")
REGION_SHAPES = ("object", "list_of_two", "list")
RSU_SHAPES = ("rsus_object", "rsus_list", "rsu_list", "list")
#: every this many records one TIM comes without any TravelerDataFrame
EMPTY_FRAMES_EVERY = 37

#: ITIS codes used (SAE J2540-2): 268 speed limit, 8720 mph, 12544 + n the number n,
#: 769 closed to traffic, 771 closed ahead, 777 reduced to one lane, 1025 road construction.
ITIS_SPEED_LIMIT = 268
ITIS_MPH = 8720
ITIS_NUMBER_BASE = 12544
ITIS_CLOSED_TO_TRAFFIC = 769
ITIS_CLOSED_AHEAD = 771
ITIS_ONE_LANE = 777
ITIS_ROAD_CONSTRUCTION = 1025
CONDITION_TEXTS = ("SLICK IN SPOTS", "BLOWING SNOW", "WINTER CONDITIONS", "HIGH WINDS")

#: I-80 mileposts fall westwards from Cheyenne (about 359) to Evanston (about 5); the waypoint
#: polyline is shorter than the road, so mileposts are spread evenly along it.
CHEYENNE_MILEPOST = 359.0
EVANSTON_MILEPOST = 5.0
_M_PER_DEG_LAT = 111_320.0
_HOUR_MS = 3_600_000
_ALL_DIRECTIONS = 1111111111111111  # HeadingSlice, written as a JSON number by v5/v6


def _route_cum() -> list[float]:
    """Cumulative distance (m) of each I-80 waypoint from Cheyenne, westwards."""
    cum = [0.0]
    for (la1, lo1, _), (la2, lo2, _) in itertools.pairwise(I80_WAYPOINTS):
        k = math.cos(math.radians((la1 + la2) / 2))
        cum.append(
            cum[-1] + math.hypot((la2 - la1) * _M_PER_DEG_LAT, (lo2 - lo1) * _M_PER_DEG_LAT * k)
        )
    return cum


_CUM = _route_cum()
ROUTE_LENGTH_M = _CUM[-1]


def route_point(s: float) -> tuple[float, float, float, float]:
    """(lat, lon, elevation m, westbound heading) at s metres west of Cheyenne on I-80."""
    s = min(max(s, 0.0), ROUTE_LENGTH_M)
    i = min(max(bisect.bisect_right(_CUM, s) - 1, 0), len(_CUM) - 2)
    f = (s - _CUM[i]) / (_CUM[i + 1] - _CUM[i])
    la1, lo1, el1 = I80_WAYPOINTS[i]
    la2, lo2, el2 = I80_WAYPOINTS[i + 1]
    k = math.cos(math.radians((la1 + la2) / 2))
    heading = math.degrees(math.atan2((lo2 - lo1) * k, la2 - la1)) % 360.0
    return la1 + f * (la2 - la1), lo1 + f * (lo2 - lo1), el1 + f * (el2 - el1), heading


def milepost(s: float) -> float:
    """The I-80 milepost (approximate) at s metres west of Cheyenne, for region names and text."""
    f = min(max(s / ROUTE_LENGTH_M, 0.0), 1.0)
    return CHEYENNE_MILEPOST - f * (CHEYENNE_MILEPOST - EVANSTON_MILEPOST)


# --------------------------------------------------------------------------------------------
# Advisories of a day
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Advisory:
    """One TIM the TMC keeps on the road; every record of it carries the same packetID."""

    packet_id: str | int  # hex text, or (sometimes, as in the real data) a JSON number
    kind: str  # speed | closure | work_zone | condition
    westbound: bool
    s_start: float  # metres west of Cheyenne where the region starts, in the travel direction
    length_m: float
    start_ms: int
    duration_min: int  # 32000 = until further notice
    msg_cnt: int
    speed_mph: int
    text: str
    sdw_record_id: str
    asdm_id: str

    @property
    def packet_text(self) -> str:
        """packetID as the canonical view shows it (json text of a number, or the hex)."""
        return str(self.packet_id)

    def points(self, n: int) -> list[tuple[float, float, float, float]]:
        """n points along the region, from its start in the direction of travel."""
        step = self.length_m / max(n - 1, 1)
        sign = 1.0 if self.westbound else -1.0
        return [route_point(self.s_start + sign * step * k) for k in range(n)]


@lru_cache(maxsize=256)
def advisories(seed: int, source: str, day: date) -> tuple[Advisory, ...]:
    """The advisories active on one day of one source (disjoint packetIDs between sources)."""
    rng = random.Random(f"{seed}/{source}/{day.isoformat()}/tim-advisories")
    day_ms = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000
    out = []
    for i in range(rng.randint(4, 8)):
        kind = ("speed", "closure", "work_zone", "condition")[i % 4]
        packet: str | int = f"{rng.getrandbits(72):018X}"
        if i % 5 == 4:
            packet = rng.randrange(10**17, 10**18)
        out.append(
            Advisory(
                packet_id=packet,
                kind=kind,
                westbound=rng.random() < 0.5,
                s_start=rng.uniform(5_000.0, ROUTE_LENGTH_M - 40_000.0),
                length_m=rng.uniform(3_000.0, 30_000.0),
                # set up to a day before; a start inside the day only for some
                start_ms=day_ms - rng.randrange(0, 86_400_000) + rng.randrange(0, 6) * 3_600_000,
                duration_min=rng.choice((120, 240, 720, 1440, 32000)),
                msg_cnt=rng.randrange(128),
                speed_mph=rng.choice((45, 55, 65, 75)),
                text=rng.choice(CONDITION_TEXTS),
                sdw_record_id=f"{rng.getrandbits(32):08X}",
                asdm_id=f"{rng.getrandbits(32):08X}",
            )
        )
    return tuple(out)


# --------------------------------------------------------------------------------------------
# One record
# --------------------------------------------------------------------------------------------


def _minute_of_year(ms: int) -> tuple[int, int]:
    """(year, minute of that year) of epoch ms, as J2735 startYear/startTime and timeStamp."""
    t = datetime.fromtimestamp(ms / 1000, tz=UTC)
    start = datetime(t.year, 1, 1, tzinfo=UTC)
    return t.year, int((t - start).total_seconds() // 60)


def _deg7(x: float) -> int:
    return round(x * 1e7)


def _one_or_list(items: list[Any]) -> Any:
    """XER-to-JSON writes a one-element SEQUENCE OF as the element itself."""
    return items[0] if len(items) == 1 else items


def _heading_slice(heading: float) -> str:
    """HeadingSlice bits (bit 0 first, 22.5 degree slices) covering heading +- one slice."""
    i = int(heading // 22.5) % 16
    return "".join("1" if (k - i) % 16 in (0, 1, 15) else "0" for k in range(16))


@dataclass
class TimWriter:
    """Builds the records of one schema version; variant shapes are chosen by the caller."""

    version: int
    rng: random.Random
    java_times: bool = True

    def time_text(self, ms: int) -> str:
        if self.version == 6:
            return java_instant(ms)
        if self.java_times:
            return java_zoned(ms)
        return java_instant(ms)[:-1] + "Z[UTC]"

    # -- the TravelerDataFrame ---------------------------------------------------------------

    def content(self, adv: Advisory) -> tuple[str, list[dict[str, Any]]]:
        """(content choice, items) of an advisory."""
        speed = [
            {"itis": ITIS_SPEED_LIMIT},
            {"itis": ITIS_NUMBER_BASE + adv.speed_mph},
            {"itis": ITIS_MPH},
        ]
        if adv.kind == "speed":
            return ("speedLimit" if adv.speed_mph % 10 == 5 else "advisory"), speed
        if adv.kind == "closure":
            lo, hi = sorted((milepost(adv.s_start), milepost(adv.s_start + adv.length_m)))
            if adv.msg_cnt % 2:
                return "advisory", [{"itis": ITIS_CLOSED_TO_TRAFFIC}]
            return "advisory", [{"itis": ITIS_CLOSED_AHEAD}, {"text": f"MP {lo:.0f} TO {hi:.0f}"}]
        if adv.kind == "work_zone":
            return "workZone", [{"itis": ITIS_ONE_LANE}, {"itis": ITIS_ROAD_CONSTRUCTION}]
        return "advisory", [{"text": adv.text}, *speed]

    def region(self, adv: Advisory, index: int, nodes: int) -> dict[str, Any]:
        """One GeographicalPath: a path of node-LatLon (v5/v6) or an oldRegion point set (v1/v3)."""
        pts = adv.points(nodes + 1)
        (lat0, lon0, el0, hdg) = pts[0]
        heading = hdg if adv.westbound else (hdg + 180.0) % 360.0
        mp_a, mp_b = milepost(adv.s_start), milepost(adv.s_start + adv.length_m)
        name = f"I80_{'WB' if adv.westbound else 'EB'}_MP{mp_a:.1f}-{mp_b:.1f}"
        anchor = {"elevation": round(el0 * 10), "lat": _deg7(lat0), "long": _deg7(lon0)}
        if self.version < 5:
            offsets = []
            for (la1, lo1, _, _), (la2, lo2, _, _) in itertools.pairwise(pts):
                k = math.cos(math.radians(la1))
                offsets.append(
                    {
                        "xOffset": round((lo2 - lo1) * _M_PER_DEG_LAT * k),
                        "yOffset": round((la2 - la1) * _M_PER_DEG_LAT),
                    }
                )
            return {
                "description": {
                    "oldRegion": {
                        "area": {
                            "regionPointSet": {
                                "anchor": anchor,
                                "nodeList": {"RegionOffsets": _one_or_list(offsets)},
                            }
                        },
                        "direction": _heading_slice(heading),
                    }
                },
                "id": {"id": index},
                "name": name,
            }
        node_list = [
            {"delta": {"node-LatLon": {"lon": _deg7(lo), "lat": _deg7(la)}}}
            for la, lo, _, _ in pts[1:]
        ]
        return {
            "closedPath": {"false": ""},
            "anchor": anchor,
            "name": name,
            "laneWidth": 366 * (2 if adv.kind != "work_zone" else 1),
            "directionality": {"forward": ""} if index == 0 else {"both": ""},
            "description": {
                "path": {
                    "offset": {"xy": {"nodes": {"NodeXY": _one_or_list(node_list)}}},
                    "scale": 0,
                }
            },
            "id": {"id": index, "region": 0},
            "direction": _ALL_DIRECTIONS,
        }

    def frame(self, adv: Advisory, region_shape: str, nodes: int) -> dict[str, Any]:
        choice, items = self.content(adv)
        sequence = _one_or_list([{"item": it} for it in items])
        year, minute = _minute_of_year(adv.start_ms)
        regions = [self.region(adv, 0, nodes)]
        if region_shape == "list_of_two":
            # both carriageways: the second region runs back the other way
            back = replace(adv, westbound=not adv.westbound)
            regions.append(self.region(back, 1, nodes))
        if region_shape == "list":
            region_value: Any = [{"GeographicalPath": regions[0]}]
        else:
            region_value = {"GeographicalPath": _one_or_list(regions)}
        lat, lon, el, _ = adv.points(1)[0]
        regulatory = adv.kind == "speed"
        if self.version < 5:
            return {
                "content": {choice: {"SEQUENCE": sequence}},
                "duratonTime": adv.duration_min,
                "frameType": {"roadSignage" if regulatory else "advisory": ""},
                "msgId": {
                    "roadSignID": {
                        "crc": "0000",
                        "mutcdCode": {"regulatory" if regulatory else "warning": ""},
                        "position": {
                            "elevation": round(el * 10),
                            "lat": _deg7(lat),
                            "long": _deg7(lon),
                        },
                        "viewAngle": "1111111111111111",
                    }
                },
                "priority": 5,
                "regions": region_value,
                "sspLocationRights": 1,
                "sspMsgRights1": 1,
                "sspMsgRights2": 1,
                "sspTimRights": 1,
                "startTime": minute,
                "startYear": year,
            }
        return {
            "regions": region_value,
            "duratonTime": adv.duration_min,
            "sspMsgRights1": 1,
            "sspMsgRights2": 1,
            "startYear": year,
            "msgId": {
                "roadSignID": {
                    "crc": "0000",
                    "viewAngle": _ALL_DIRECTIONS,
                    "mutcdCode": {"regulatory" if regulatory else "warning": ""},
                    "position": {
                        "elevation": round(el * 10),
                        "lat": _deg7(lat),
                        "long": _deg7(lon),
                    },
                }
            },
            "priority": 5,
            "content": {choice: {"SEQUENCE": sequence}},
            "url": None,
            "sspTimRights": 1,
            "sspLocationRights": 1,
            "frameType": {"roadSignage" if regulatory else "advisory": ""},
            "startTime": minute,
        }

    def traveler_information(
        self, adv: Advisory, frames_shape: str, region_shape: str, nodes: int
    ) -> dict[str, Any]:
        data_frames: Any
        if frames_shape == "empty":
            data_frames = []
        else:
            frame = self.frame(adv, region_shape, nodes)
            data_frames = {
                "dict": {"TravelerDataFrame": frame},
                "list": [{"TravelerDataFrame": frame}],
                "nested_dict": {"dataFrames": {"TravelerDataFrame": frame}},
                "dict_of_list": {"TravelerDataFrame": [frame]},
            }[frames_shape]
        if self.version < 5:
            return {"dataFrames": data_frames, "msgCnt": adv.msg_cnt, "packetID": adv.packet_id}
        return {
            "timeStamp": _minute_of_year(adv.start_ms)[1],
            "packetID": adv.packet_id,
            "urlB": None,
            "dataFrames": data_frames,
            "msgCnt": adv.msg_cnt,
        }

    # -- whole records -----------------------------------------------------------------------

    def _serial(self, stream: str, bundle: int, record: int) -> dict[str, Any]:
        return {
            "recordId": record,
            "serialNumber": 0,
            "streamId": stream,
            "bundleSize": 1,
            "bundleId": bundle,
        }

    def received(
        self, adv: Advisory, t_ms: int, tim: dict[str, Any] | None, *, record_id: int
    ) -> dict[str, Any]:
        """A vehicle's log of a TIM it heard from an RSU or the satellite feed (rxMsg)."""
        rng = self.rng
        back = rng.uniform(500.0, 15_000.0)
        lat, lon, el, hdg = route_point(adv.s_start - back if adv.westbound else adv.s_start + back)
        heading = hdg if adv.westbound else (hdg + 180.0) % 360.0
        location = {
            "elevation": round(el),
            "heading": round(heading, 4),
            "latitude": round(lat, 7),
            "longitude": round(lon, 7),
            "speed": round(rng.uniform(22.0, 33.0), 2),
        }
        log_epoch = t_ms // 1000 - rng.randrange(0, 3600)
        obu = f"2620_31_40e0_{0x800 + rng.randrange(64):x}_226_adff_fe05_{rng.randrange(4096):x}"
        stream = _uuid(rng)
        gen, rcv = self.time_text(t_ms), self.time_text(t_ms + rng.randrange(20_000, 4 * _HOUR_MS))
        payload = {
            "data": {"MessageFrame": {"messageId": 31, "value": {"TravelerInformation": tim}}},
            "dataType": DATA_TYPE,
        }
        if tim is None:  # a record the ODE wrote without its TIM (quarantined downstream)
            payload["data"] = {"MessageFrame": {"messageId": 31, "value": {}}}
        if self.version < 5:
            gen_key, rcv_key = (
                ("generatedAt", "receivedAt")
                if self.version == 1
                else ("recordGeneratedAt", "odeReceivedAt")
            )
            return {
                "metadata": {
                    "logFileName": f"rxMsg_{log_epoch}_fe80::226:adff:fe05:{rng.randrange(4096):x}.csv",
                    rcv_key: rcv,
                    "payloadType": PAYLOAD_TYPE,
                    "receivedMessageDetails": {"locationData": location, "rxSource": "RSU"},
                    gen_key: gen,
                    "recordGeneratedBy": "OBU",
                    "recordType": "rxMsg",
                    "sanitized": False,
                    "schemaVersion": self.version,
                    "serialId": self._serial(stream, rng.randrange(1, 5000), record_id),
                    "validSignature": False,
                },
                "payload": payload,
            }
        return {
            "metadata": {
                "securityResultCode": rng.choice(("success", "success", "unknown")),
                "recordGeneratedBy": "OBU",
                "receivedMessageDetails": {
                    "locationData": location,
                    "rxSource": rng.choice(("RSU", "SAT")),
                },
                "schemaVersion": self.version,
                "payloadType": PAYLOAD_TYPE,
                "serialId": self._serial(stream, rng.randrange(1, 5000), record_id),
                "sanitized": False,
                "recordGeneratedAt": gen,
                "recordType": "rxMsg",
                "logFileName": f"rxMsg_{log_epoch}_{obu}.csv.gz",
                "odeReceivedAt": rcv,
            },
            "payload": payload,
        }

    def deposited(
        self,
        adv: Advisory,
        t_ms: int,
        tim: dict[str, Any] | None,
        *,
        rsu_shape: str,
        record_id: int,
    ) -> dict[str, Any]:
        """The TMC's deposit of a TIM to the SDX and its RSUs (schemaVersion 6 only)."""
        rng = self.rng
        pts = adv.points(4)
        lats = [p[0] for p in pts]
        lons = [p[1] for p in pts]
        nw = (max(lats) + 0.05, min(lons) - 0.05)
        se = (min(lats) - 0.05, max(lons) + 0.05)
        rsu_list = [
            {
                "rsuTarget": f"10.145.{rng.randrange(1, 32)}.{rng.randrange(2, 250)}",
                "rsuUsername": "v3user",
                "rsuRetries": 1,
                "rsuTimeout": 2000,
                "rsuPassword": "*",
                "rsuIndex": 10 + k,
            }
            for k in range(1 if rsu_shape == "rsus_object" else rng.randint(2, 3))
        ]
        rsus: Any = {
            "rsus_object": {"rsus": rsu_list[0]},
            "rsus_list": {"rsus": rsu_list},
            "rsu_list": {"rsu": rsu_list},
            "list": rsu_list,
        }[rsu_shape]
        start = java_instant(adv.start_ms)
        stop = java_instant(adv.start_ms + min(adv.duration_min, 20_160) * 60_000)
        st = datetime.fromtimestamp(adv.start_ms / 1000, tz=UTC)
        en = datetime.fromtimestamp((adv.start_ms + adv.duration_min * 60_000) / 1000, tz=UTC)
        frame = (
            {"messageId": 31, "value": {"TravelerInformation": tim}}
            if tim is not None
            else {"messageId": 31, "value": {}}
        )
        return {
            "metadata": {
                "request": {
                    "ode": {"verb": "POST", "version": 3},
                    "sdw": {
                        "recordId": adv.sdw_record_id,
                        "serviceRegion": {
                            "nwCorner": {"latitude": round(nw[0], 6), "longitude": round(nw[1], 6)},
                            "seCorner": {"latitude": round(se[0], 6), "longitude": round(se[1], 6)},
                        },
                        "ttl": "oneday",
                    },
                    "rsus": rsus,
                    "snmp": {
                        "mode": 1,
                        "deliverystop": stop,
                        "rsuid": "00000083",
                        "deliverystart": start,
                        "enable": 1,
                        "channel": 178,
                        "msgid": 31,
                        "interval": 2,
                        "status": 4,
                    },
                },
                "recordGeneratedBy": "TMC",
                "schemaVersion": self.version,
                "payloadType": PAYLOAD_TYPE,
                "serialId": self._serial(_uuid(rng), rng.randrange(0, 500), record_id),
                "sanitized": False,
                "recordGeneratedAt": self.time_text(t_ms),
                "odeReceivedAt": self.time_text(t_ms + rng.randrange(200, 5_000)),
            },
            "payload": {
                "data": {
                    "AdvisorySituationData": {
                        "recordID": adv.sdw_record_id,
                        "timeToLive": 0,
                        "serviceRegion": {
                            "nwCorner": {"lat": _deg7(nw[0]), "long": _deg7(nw[1])},
                            "seCorner": {"lat": _deg7(se[0]), "long": _deg7(se[1])},
                        },
                        "asdmDetails": {
                            "advisoryMessage": {
                                "Ieee1609Dot2Data": {
                                    "protocolVersion": 3,
                                    "content": {"unsecuredData": {"MessageFrame": frame}},
                                }
                            },
                            "startTime": _ymdhm(st),
                            "stopTime": _ymdhm(en),
                            "distType": "03",
                            "asdmType": 2,
                            "asdmID": adv.asdm_id,
                        },
                        "requestID": adv.asdm_id,
                        "groupID": "00000000",
                        "dialogID": 156,
                        "seqID": 5,
                    }
                },
                "dataType": DATA_TYPE,
            },
        }

    def record(self, adv: Advisory, t_ms: int, position: int, *, with_tim: bool = True) -> str:
        """One record as compact JSON; position picks the variant shapes."""
        frames_shape = (
            "empty"
            if position % EMPTY_FRAMES_EVERY == EMPTY_FRAMES_EVERY - 1
            else DATA_FRAME_SHAPES[position % len(DATA_FRAME_SHAPES)]
        )
        region_shape = REGION_SHAPES[(position // len(DATA_FRAME_SHAPES)) % len(REGION_SHAPES)]
        nodes = 1 if position % 11 == 5 else self.rng.randint(2, 9)
        tim = (
            self.traveler_information(adv, frames_shape, region_shape, nodes) if with_tim else None
        )
        if self.version == 6 and position % 5 in (1, 3):
            rec = self.deposited(
                adv,
                t_ms,
                tim,
                rsu_shape=RSU_SHAPES[(position // 5) % len(RSU_SHAPES)],
                record_id=position,
            )
        else:
            rec = self.received(adv, t_ms, tim, record_id=position)
        return json.dumps(rec, separators=(",", ":"), sort_keys=self.version < 5)


def _ymdhm(t: datetime) -> dict[str, int]:
    return {"month": t.month, "hour": t.hour, "year": t.year, "day": t.day, "minute": t.minute}


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def tim_record(
    version: int,
    t: datetime,
    *,
    seed: int = 42,
    source: str = "wydot",
    position: int = 0,
    with_tim: bool = True,
) -> dict[str, Any]:
    """One replica TIM record as a dict (for tests): the same writer the hour generator uses."""
    if t.tzinfo is None:
        raise ValueError("t must be timezone-aware (UTC)")
    t_ms = round(t.timestamp() * 1000)
    advs = advisories(seed, source, t.astimezone(UTC).date())
    writer = TimWriter(version, random.Random(f"{seed}/{source}/{t_ms}/{position}"))
    record: dict[str, Any] = json.loads(
        writer.record(advs[position % len(advs)], t_ms, position, with_tim=with_tim)
    )
    return record


# --------------------------------------------------------------------------------------------
# Hours
# --------------------------------------------------------------------------------------------


def _times(rng: random.Random, n: int, start_ms: int) -> list[int]:
    """n record times inside the hour, sorted; some on a whole minute (Java prints 'T16:33Z')."""
    out = []
    for i in range(n):
        if i % 8 == 7:
            out.append(start_ms + rng.randrange(60) * 60_000)
        else:
            out.append(start_ms + rng.randrange(_HOUR_MS))
    return sorted(out)


_GARBAGE = (
    "<html><body><h1>503 Service Unavailable</h1></body></html>",
    "\ufffd\ufffd\ufffd rxMsg log rotated",
    "metadata,payload,schemaVersion",
)


def _expects_value(text: str) -> bool:
    """Whether JSON cut here stops where a value must follow (after ':', '[', or ',' in a list).

    DuckDB's read_json(ignore_errors) then takes the next line as that value and loses the next
    record with the broken one; a real bucket can have such lines, but the replica's report
    must stay exact, so it cuts elsewhere (see the xfail test in tests/test_wydot_tim.py).
    """
    stack: list[str] = []
    in_string = escaped = False
    last = ""
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string, last = False, ch
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append(ch)
        elif ch in "}]" and stack:
            stack.pop()
        if not ch.isspace():
            last = ch
    if in_string:
        return False
    return last in ":[" or (last == "," and bool(stack) and stack[-1] == "[")


def _malformed(
    kind: str, rng: random.Random, writer: TimWriter, advs: tuple[Advisory, ...], t_ms: int
) -> str:
    """The text of one deliberately broken line of the given kind."""
    if kind == "garbage":
        return rng.choice(_GARBAGE)
    adv = advs[rng.randrange(len(advs))]
    if kind == "missing_id":
        return writer.record(adv, t_ms, rng.randrange(1000), with_tim=False)
    full = writer.record(adv, t_ms, rng.randrange(1000))
    cut = rng.randrange(len(full) // 10, len(full) * 9 // 10)
    while _expects_value(full[:cut]):
        cut -= 1
    text = full[:cut]
    try:
        json.loads(text)
    except ValueError:
        return text
    raise AssertionError(f"a truncated line parsed as JSON: {text!r}")


def _tim_hour(ctx: HourContext) -> list[ReplicaObject]:
    """WYDOT TIM for one folder hour: NDJSON files, or one pretty document per record."""
    spec = ctx.spec
    source = ctx.partition.source
    advs = advisories(spec.seed, source, ctx.partition.day)
    rng = ctx.rng("tim-records")
    version = ctx.schema_version
    writer = TimWriter(version, rng, java_times=spec.java_times)
    times = _times(rng, spec.records_per_hour, ctx.hour_start_ms)
    if not times:
        return []
    # what each record is about: an advisory of the day, several records per advisory
    picks = [advs[rng.randrange(len(advs))] for _ in times]
    lines = [
        writer.record(adv, t_ms, ctx.hour * 1000 + i)
        for i, (adv, t_ms) in enumerate(zip(picks, times, strict=True))
    ]
    prefix = ctx.partition.hour_prefix(ctx.hour)
    objects: list[ReplicaObject] = []
    if not ctx.ndjson:
        used: set[int] = set()
        for line, adv, t_ms in zip(lines, picks, times, strict=True):
            name_ms = t_ms + rng.randrange(1_000, 60_000)
            while name_ms in used:
                name_ms += 1
            used.add(name_ms)
            objects.append(
                ReplicaObject(
                    key=f"{prefix}wydot-filtered-tim-{name_ms}.json",
                    body=pretty_json(line).encode(), partition=ctx.partition, hour=ctx.hour,
                    records=1, schema_version=version, vehicles={adv.packet_text: 1},
                    first_ms=t_ms, last_ms=t_ms,
                )
            )  # fmt: skip
        return objects

    sizes = split(len(lines), spec.files_per_hour)
    bad_rng = ctx.rng("tim-malformed")
    bad_writer = TimWriter(version, bad_rng, java_times=spec.java_times)
    bad_by_file: dict[int, list[str]] = {}
    for kind in ctx.malformed:
        bad_by_file.setdefault(bad_rng.randrange(len(sizes)), []).append(kind)
    pos = 0
    for fi, size in enumerate(sizes):
        chunk = range(pos, pos + size)
        pos += size
        body_lines: list[tuple[str, str | None]] = [(lines[i], None) for i in chunk]
        first_ms, last_ms = times[chunk[0]], times[chunk[-1]]
        for kind in bad_by_file.get(fi, []):
            text = _malformed(kind, bad_rng, bad_writer, advs, bad_rng.randint(first_ms, last_ms))
            body_lines.insert(bad_rng.randint(0, len(body_lines)), (text, kind))
        tm = time.gmtime(first_ms // 1000)
        key = (
            f"{prefix}{FIREHOSE_STREAM}-{FIREHOSE_VERSION}-{tm.tm_year:04d}-{tm.tm_mon:02d}-"
            f"{tm.tm_mday:02d}-{tm.tm_hour:02d}-{tm.tm_min:02d}-{tm.tm_sec:02d}-{_uuid(rng)}"
        )
        malformed = tuple(
            MalformedLine(key=key, line=n, kind=kind)
            for n, (_, kind) in enumerate(body_lines, start=1)
            if kind is not None
        )
        objects.append(
            ReplicaObject(
                key=key,
                body="".join(text + "\n" for text, _ in body_lines).encode(),
                partition=ctx.partition, hour=ctx.hour, records=size, schema_version=version,
                vehicles=dict(Counter(picks[i].packet_text for i in chunk)),
                malformed=malformed, first_ms=first_ms, last_ms=last_ms,
            )
        )  # fmt: skip
    return objects


def generators() -> dict[tuple[str, str], HourGenerator]:
    """TIM hours for both WYDOT feeds (wydot_backup has its own advisories and packetIDs)."""
    return {("wydot", "TIM"): _tim_hour, ("wydot_backup", "TIM"): _tim_hour}
