"""The hostile-input corpus (issue 5, "Nothing lost"): one S3 object per case, built in code.

Every object is made from the real record shapes in tests/fixtures/sandbox/ (values changed only
where the case says so) and is paired with its expected outcome: how many rows are parsed, how
many lines are quarantined and why, which valid records must survive, which raw bytes the
quarantine must keep, and which warnings are counted. Large objects (the 50 MB line) are built
when a test asks for them, never committed. tests/test_hostile.py runs them all;
docs/reliability.md ("Hostile input") summarises the outcome of each class.
"""

from __future__ import annotations

import codecs
import copy
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SANDBOX = Path(__file__).parent.parent / "fixtures" / "sandbox"
BOM = b"\xef\xbb\xbf"
MB = 1 << 20


def fixture(name: str) -> dict[str, Any]:
    return json.loads((SANDBOX / name).read_text())


def compact(rec: Any) -> bytes:
    return json.dumps(rec).encode()


def pretty(rec: Any) -> bytes:
    return json.dumps(rec, indent=2).encode()


def ndjson(*lines: bytes, end: bytes = b"\n") -> bytes:
    return b"".join(line + end for line in lines)


# -- record shapes ---------------------------------------------------------------------------

WYDOT6 = fixture("wydot-filtered-bsm-schemaVersion6.json")  # 2018-05-06T20:26:28.690Z
WYDOT3 = fixture("wydot-filtered-bsm-schemaVersion3.json")  # 2017-12-05T16:33:58Z[UTC]
THEA_BSM = fixture("thea-filtered-bsm-schemaVersion1.json")  # 2019-01-14 00:20:30.046 [ET]
THEA_TIM = fixture("thea-filtered-tim-schemaVersion1.json")  # 2021-03-03 05:12:32.565 [ET]
THEA_SPAT = fixture("thea-filtered-spat-schemaVersion1.json")  # 2019-01-14 00:00:00.035 [ET]
WYDOT_TIM = fixture("wydot-filtered-tim-schemaVersion6_multi.json")  # two frames
NYC_EVENT = fixture("nycdot-spdcomp-event.json")

#: hour folders holding the fixtures' generation times (THEA names folders in US Eastern time)
KEY_W6 = "wydot/BSM/2018/05/06/20/wydot-filtered-bsm-1525638388000"
KEY_W3 = "wydot/BSM/2017/12/05/16/wydot-filtered-bsm-1512491638000.json"
KEY_THEA_BSM = "thea/BSM/2019/01/14/00/thea-filtered-bsm-1547443230046.json"
KEY_THEA_TIM = "thea/TIM/2021/03/03/05/thea-filtered-tim-1614766352565.json"
KEY_THEA_SPAT = "thea/SPAT/2019/01/14/00/thea-filtered-spat-1547442000035.json"
KEY_NYC = "nycdot/EVENT/2021/04/FRI/AM/nycdot-event-2021-04-FRI-AM-0001.json"


def _tim_key() -> str:
    stamp = WYDOT_TIM["metadata"]["recordGeneratedAt"][:13]  # 'YYYY-MM-DDTHH'
    return f"wydot/TIM/{stamp[:4]}/{stamp[5:7]}/{stamp[8:10]}/{stamp[11:13]}/wydot-filtered-tim-1"


KEY_WTIM = _tim_key()


def w6(i: int, **meta: Any) -> dict[str, Any]:
    """The v6 fixture as vehicle V6{i:06d} (distinct rows), metadata fields overridden."""
    rec = copy.deepcopy(WYDOT6)
    rec["payload"]["data"]["coreData"]["id"] = f"V6{i:06d}"
    rec["payload"]["data"]["coreData"]["msgCnt"] = i % 128
    rec["metadata"].update(meta)
    return rec


def w6_line(i: int, **meta: Any) -> bytes:
    return compact(w6(i, **meta))


def w6_edit(i: int, edit: Callable[[dict[str, Any]], None]) -> bytes:
    rec = w6(i)
    edit(rec)
    return compact(rec)


def core(rec: dict[str, Any]) -> dict[str, Any]:
    return rec["payload"]["data"]["coreData"]  # type: ignore[no-any-return]


def w3(i: int) -> dict[str, Any]:
    rec = copy.deepcopy(WYDOT3)
    core(rec)["id"] = f"V3{i:06d}"
    return rec


def w1(i: int) -> dict[str, Any]:
    """A schemaVersion 1 record: the v3 shape with the pre-2017 names generatedAt/receivedAt."""
    rec = w3(i)
    md = rec["metadata"]
    md["schemaVersion"] = 1
    md["generatedAt"] = md.pop("recordGeneratedAt")
    md["receivedAt"] = md.pop("odeReceivedAt")
    core(rec)["id"] = f"V1{i:06d}"
    return rec


def thea_bsm(i: int, generated: str | None = None) -> dict[str, Any]:
    rec = copy.deepcopy(THEA_BSM)
    rec["payload"]["data"]["coreData"]["id"] = str(8290000 + i)
    if generated is not None:
        rec["metadata"]["recordGeneratedAt"] = generated
    return rec


def nyc_event(i: int) -> dict[str, Any]:
    rec = copy.deepcopy(NYC_EVENT)
    rec["eventHeader"]["hostVehID"] = f"{0xA0000000 + i:08X}"
    return rec


# -- the case type ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    #: the hostile class of issue 5 the case belongs to (the table in docs/reliability.md)
    klass: str
    source: str
    message_type: str
    #: (S3 key, body) of each object of the partition; built lazily (some are large)
    objects: Callable[[], list[tuple[str, bytes]]]
    rows: int
    quarantined: int
    #: each must be a substring of some quarantine reason
    reasons: tuple[str, ...] = ()
    #: column -> the sorted values the parsed rows must hold (the valid records are kept)
    kept: dict[str, list[Any]] = field(default_factory=dict)
    #: byte strings each quarantined line must be found in (raw, or raw_base64 decoded)
    bad_lines: tuple[bytes, ...] = ()
    #: warnings the conversion must count (exactly these counts; others may exist)
    warnings: dict[str, int] = field(default_factory=dict)
    #: schema versions the conversion must call unknown
    unknown_versions: tuple[int, ...] = ()
    #: records recovered from lines of records joined without a newline (exactly)
    recovered: int = 0
    #: the CvCatalogError subclass name the conversion must raise instead (none do today)
    error: str | None = None
    #: a large object (the 50 MB lines), built only when the case runs
    big: bool = False
    note: str = ""


def one(key: str, body: bytes) -> Callable[[], list[tuple[str, bytes]]]:
    return lambda: [(key, body)]


CASES: list[Case] = []


def case(**kw: Any) -> None:
    CASES.append(Case(**kw))


def ids(*n: int) -> list[str]:
    return sorted(f"V6{i:06d}" for i in n)


_GOOD = w6_line(1)
_FULL = compact(w6(2))

# -- truncated JSON --------------------------------------------------------------------------
T = "truncated JSON"
case(
    name="truncated_mid_file",
    klass=T,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), _FULL[:300], w6_line(3))),
    rows=2,
    quarantined=1,
    reasons=("malformed JSON",),
    kept={"vehicle_id": ids(1, 3)},
    bad_lines=(_FULL[:300],),
)
_cut_colon = _FULL[: _FULL.index(b'"latitude":') + len(b'"latitude":')]
case(
    name="truncated_after_colon_swallows_nothing",
    klass=T,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), _cut_colon, w6_line(3), w6_line(4))),
    rows=3,
    quarantined=1,
    reasons=("malformed JSON",),
    kept={"vehicle_id": ids(1, 3, 4)},
    bad_lines=(_cut_colon,),
    note="read_json alone would read the next line as the missing value",
)
_cut_bracket = _FULL[: _FULL.index(b'"partII": [') + len(b'"partII": [')]
case(
    name="truncated_after_bracket",
    klass=T,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), _cut_bracket, w6_line(3))),
    rows=2,
    quarantined=1,
    reasons=("malformed JSON",),
    kept={"vehicle_id": ids(1, 3)},
    bad_lines=(_cut_bracket,),
)
case(
    name="truncated_many_lines",
    klass=T,
    source="wydot",
    message_type="BSM",
    objects=one(
        KEY_W6,
        ndjson(*(w6_line(i) if i % 3 else w6_line(i)[: 50 + i] for i in range(1, 31))),
    ),
    rows=20,
    quarantined=10,
    reasons=("malformed JSON",),
    kept={"vehicle_id": ids(*(i for i in range(1, 31) if i % 3))},
)
_doc3 = pretty(w3(1))
case(
    name="truncated_pretty_document_v3",
    klass=T,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W3, _doc3[: len(_doc3) // 2]),
    rows=0,
    quarantined=1,
    reasons=("malformed JSON",),
    bad_lines=(_doc3[: len(_doc3) // 2],),
)
_doc3b = pretty(w3(2))
case(
    name="truncated_second_of_concatenated_documents",
    klass=T,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W3, pretty(w3(1)) + b"\n" + _doc3b[:-40]),
    rows=1,
    quarantined=1,
    reasons=("malformed JSON",),
    kept={"vehicle_id": ["V3000001"]},
    bad_lines=(_doc3b[:-40],),
)
_thea_tim = compact(THEA_TIM)
case(
    name="truncated_thea_tim",
    klass=T,
    source="thea",
    message_type="TIM",
    objects=one(KEY_THEA_TIM, ndjson(_thea_tim, _thea_tim[:700], _thea_tim)),
    rows=2,
    quarantined=1,
    reasons=("malformed JSON",),
    bad_lines=(_thea_tim[:700],),
)
_nyc = compact(nyc_event(2))
case(
    name="truncated_nycdot_event",
    klass=T,
    source="nycdot",
    message_type="EVENT",
    objects=one(KEY_NYC, ndjson(compact(nyc_event(1)), _nyc[:5000], compact(nyc_event(3)))),
    rows=2,
    quarantined=1,
    reasons=("malformed JSON",),
    kept={"host_veh_id": ["A0000001", "A0000003"]},
    bad_lines=(_nyc[:5000],),
)

# -- truncated last line ---------------------------------------------------------------------
L = "truncated last line"
case(
    name="truncated_last_line_no_newline",
    klass=L,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), w6_line(2)) + _FULL[:500]),
    rows=2,
    quarantined=1,
    reasons=("malformed JSON",),
    kept={"vehicle_id": ids(1, 2)},
    bad_lines=(_FULL[:500],),
)
case(
    name="truncated_last_line_single_brace",
    klass=L,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), w6_line(2)) + b"{"),
    rows=2,
    quarantined=1,
    reasons=("malformed JSON",),
    kept={"vehicle_id": ids(1, 2)},
    bad_lines=(b"{",),
)
case(
    name="valid_last_line_without_newline",
    klass=L,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1)) + w6_line(2)),
    rows=2,
    quarantined=0,
    kept={"vehicle_id": ids(1, 2)},
)
_tim = compact(WYDOT_TIM)
case(
    name="truncated_last_line_wydot_tim",
    klass=L,
    source="wydot",
    message_type="TIM",
    objects=one(KEY_WTIM, ndjson(_tim) + _tim[: len(_tim) // 2]),
    rows=2,  # one TIM with two TravelerDataFrames
    quarantined=1,
    reasons=("malformed JSON",),
    bad_lines=(_tim[: len(_tim) // 2],),
)

# -- wrong types -----------------------------------------------------------------------------
W = "wrong types"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(rec: dict[str, Any]) -> None:
        *head, last = path.split(".")
        node = rec
        for p in head:
            node = node[p]
        node[last] = value

    return edit


_lat_str = w6_edit(2, _set("payload.data.coreData.position.latitude", "forty-one"))
case(
    name="latitude_as_string",
    klass=W,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), _lat_str, w6_line(3))),
    rows=2,
    quarantined=1,
    reasons=("payload.data.coreData.position.latitude",),
    kept={"vehicle_id": ids(1, 3)},
    bad_lines=(_lat_str,),
    note="a value of the wrong type reads as NULL; a required one fails the record",
)
_lon_obj = w6_edit(2, _set("payload.data.coreData.position.longitude", {"deg": -105}))
case(
    name="longitude_as_object",
    klass=W,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), _lon_obj)),
    rows=1,
    quarantined=1,
    reasons=("payload.data.coreData.position.longitude",),
    kept={"vehicle_id": ids(1)},
    bad_lines=(_lon_obj,),
)
case(
    name="speed_as_string_kept_as_null",
    klass=W,
    source="wydot",
    message_type="BSM",
    objects=one(
        KEY_W6,
        ndjson(w6_line(1), w6_edit(2, _set("payload.data.coreData.speed", "fast"))),
    ),
    rows=2,
    quarantined=0,
    kept={"vehicle_id": ids(1, 2), "speed_mps": sorted([None, 7.52], key=str)},
)
case(
    name="vehicle_id_as_number",
    klass=W,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_edit(1, _set("payload.data.coreData.id", 123456)))),
    rows=1,
    quarantined=0,
    kept={"vehicle_id": ["123456"]},
)
_meta_str = compact({"metadata": "rxMsg", "payload": WYDOT6["payload"]})
case(
    name="metadata_as_string",
    klass=W,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), _meta_str)),
    rows=1,
    quarantined=1,
    reasons=("missing required field metadata",),
    kept={"vehicle_id": ids(1)},
    bad_lines=(_meta_str,),
)
_payload_list = compact({"metadata": WYDOT6["metadata"], "payload": [1, 2, 3]})
case(
    name="payload_as_array",
    klass=W,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(_payload_list, w6_line(2))),
    rows=1,
    quarantined=1,
    reasons=("missing required field",),
    kept={"vehicle_id": ids(2)},
    bad_lines=(_payload_list,),
)
case(
    name="record_is_array_string_number_null",
    klass=W,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), b"[1, 2, 3]", b'"rxMsg"', b"42", b"null", b"true")),
    rows=1,
    quarantined=5,
    reasons=("not a record",),
    kept={"vehicle_id": ids(1)},
    bad_lines=(b"[1, 2, 3]", b'"rxMsg"', b"42", b"null", b"true"),
)
# an array on an object's first line: it was read as a pretty-printed document, its elements
# quarantined one by one, re-serialised ("1", "2"), not the line as published
for _first in (b"[1, 2]", b'[{"a": 1}, {"b": 2}]'):
    case(
        name=f"first_line_is_an_array_{len(_first)}",
        klass=W,
        source="wydot",
        message_type="BSM",
        objects=one(KEY_W6, ndjson(_first, w6_line(1), w6_line(2))),
        rows=2,
        quarantined=1,
        reasons=("not a record",),
        kept={"vehicle_id": ids(1, 2)},
        bad_lines=(_first,),
    )
case(
    name="thea_coordinates_not_numbers",
    klass=W,
    source="thea",
    message_type="BSM",
    objects=one(
        KEY_THEA_BSM,
        ndjson(
            compact(thea_bsm(1)),
            compact(
                (lambda r: (r["payload"]["data"]["coreData"].update(speed="fast"), r)[1])(
                    thea_bsm(2)
                )
            ),
        ),
    ),
    rows=2,
    quarantined=0,
    kept={"vehicle_id": ["8290001", "8290002"]},
    warnings={"speed_unparseable": 1},
)

# -- missing required fields -----------------------------------------------------------------
M = "missing required fields"


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def edit(rec: dict[str, Any]) -> None:
        *head, last = path.split(".")
        node = rec
        for p in head:
            node = node[p]
        del node[last]

    return edit


for _path, _reason in [
    ("metadata", "missing required field metadata"),
    ("payload", "missing required field payload"),
    ("metadata.recordGeneratedAt", "missing required field metadata.recordGeneratedAt"),
    ("payload.data.coreData.id", "missing required field payload.data.coreData.id"),
    ("payload.data.coreData.position.longitude", "coreData.position.longitude"),
]:
    _bad = w6_edit(2, _drop(_path))
    case(
        name=f"missing_{_path.rsplit('.', 1)[-1]}",
        klass=M,
        source="wydot",
        message_type="BSM",
        objects=one(KEY_W6, ndjson(w6_line(1), _bad, w6_line(3))),
        rows=2,
        quarantined=1,
        reasons=(_reason,),
        kept={"vehicle_id": ids(1, 3)},
        bad_lines=(_bad,),
    )
case(
    name="empty_object_line",
    klass=M,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), b"{}", b'{"unrelated": 1}')),
    rows=1,
    quarantined=2,
    reasons=("not a record",),
    kept={"vehicle_id": ids(1)},
    bad_lines=(b"{}", b'{"unrelated": 1}'),
)
_thea_nopay = compact({"metadata": THEA_BSM["metadata"]})
case(
    name="thea_missing_payload",
    klass=M,
    source="thea",
    message_type="BSM",
    objects=one(KEY_THEA_BSM, ndjson(compact(thea_bsm(1)), _thea_nopay)),
    rows=1,
    quarantined=1,
    reasons=("missing required field payload",),
    kept={"vehicle_id": ["8290001"]},
    bad_lines=(_thea_nopay,),
)
_bad_time = w6_line(2, recordGeneratedAt="yesterday at noon")
case(
    name="unparseable_timestamp",
    klass=M,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), _bad_time)),
    rows=1,
    quarantined=1,
    reasons=("unparseable timestamp: yesterday at noon",),
    kept={"vehicle_id": ids(1)},
    bad_lines=(_bad_time,),
)

# -- NaN / Infinity --------------------------------------------------------------------------
N = "NaN / Infinity"
_nan = _FULL.replace(b'"speed": 7.52', b'"speed": NaN', 1)
_inf = _FULL.replace(b'"heading": 82.4375', b'"heading": Infinity', 1)
_ninf = _FULL.replace(b'"latitude": 41.2827318', b'"latitude": -Infinity', 1)
assert _nan != _FULL and _inf != _FULL and _ninf != _FULL
case(
    name="nan_speed",
    klass=N,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), _nan)),
    rows=2,
    quarantined=0,
    kept={"vehicle_id": ids(1, 2)},
    warnings={"speed_out_of_range": 1},
    note="NaN is stored as NaN and flagged by the range check",
)
case(
    name="infinity_heading",
    klass=N,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), _inf)),
    rows=2,
    quarantined=0,
    warnings={"heading_out_of_range": 1},
)
case(
    name="negative_infinity_latitude",
    klass=N,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(_ninf, w6_line(1))),
    rows=2,
    quarantined=0,
    warnings={"latitude_out_of_range": 1},
)
_nan_doc = pretty(w3(1)).replace(b'"speed": ', b'"speed": NaN, "speed_was": ', 1)
case(
    name="nan_in_pretty_document",
    klass=N,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W3, _nan_doc),
    rows=1,
    quarantined=0,
    kept={"vehicle_id": ["V3000001"]},
    warnings={"speed_out_of_range": 1},
)

# -- huge numbers ----------------------------------------------------------------------------
H = "huge numbers"
case(
    name="integer_beyond_int64",
    klass=H,
    source="wydot",
    message_type="BSM",
    objects=one(
        KEY_W6,
        ndjson(w6_line(1), w6_edit(2, _set("payload.data.coreData.msgCnt", 10**30))),
    ),
    rows=2,
    quarantined=0,
    kept={"vehicle_id": ids(1, 2), "msg_cnt": sorted([None, 1], key=str)},
    note="a number that does not fit its column reads as NULL",
)
case(
    name="float_beyond_double",
    klass=H,
    source="wydot",
    message_type="BSM",
    objects=one(
        KEY_W6,
        ndjson(w6_line(1), _FULL.replace(b'"latitude": 41.2827318', b'"latitude": 1e999', 1)),
    ),
    rows=2,
    quarantined=0,
    warnings={"latitude_out_of_range": 1},
)
case(
    name="thousand_digit_number",
    klass=H,
    source="wydot",
    message_type="BSM",
    objects=one(
        KEY_W6,
        ndjson(w6_line(1), _FULL.replace(b'"speed": 7.52', b'"speed": 7' + b"0" * 1000, 1)),
    ),
    rows=2,
    quarantined=0,
    warnings={"speed_out_of_range": 1},
)
case(
    name="bundle_id_beyond_int32",
    klass=H,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_edit(1, _set("metadata.serialId.bundleId", 99_999_999_999)))),
    rows=1,
    quarantined=0,
    kept={"vehicle_id": ids(1)},
)


def _thea_tim_with(frame: dict[str, Any] | None = None, **info: Any) -> bytes:
    rec = copy.deepcopy(THEA_TIM)
    rec["payload"]["data"]["TravelerInformation"].update(info)
    rec["payload"]["data"]["TravelerInformation"]["dataFrames"]["TravelerDataFrame"].update(
        frame or {}
    )
    return compact(rec)


def _thea_spat_with(**state: Any) -> bytes:
    rec = copy.deepcopy(THEA_SPAT)
    rec["payload"]["data"]["SPAT"]["intersections"]["IntersectionState"].update(state)
    return compact(rec)


# THEA's minutes of the year and start years become instants in SQL: an INTEGER that fits its
# column but not the arithmetic (2147483647 * 60, make_timestamptz(2147483647, ...)) failed the
# whole day with a DuckDB error; the instant is now NULL and the record kept
case(
    name="thea_tim_minute_of_year_overflows",
    klass=H,
    source="thea",
    message_type="TIM",
    objects=one(
        KEY_THEA_TIM,
        ndjson(_thea_tim_with(timeStamp="2147483647"), _thea_tim_with(timeStamp="-2147483648")),
    ),
    rows=2,
    quarantined=0,
    kept={"message_at": [None, None], "time_stamp": [-2147483648, 2147483647]},
)
case(
    name="thea_tim_start_year_overflows",
    klass=H,
    source="thea",
    message_type="TIM",
    objects=one(
        KEY_THEA_TIM,
        ndjson(
            _thea_tim_with({"startYear": "2147483647"}), _thea_tim_with({"startYear": "300000"})
        ),
    ),
    rows=2,
    quarantined=0,
    kept={"start_at": [None, None], "end_at": [None, None]},
)
case(
    name="thea_spat_minute_of_year_overflows",
    klass=H,
    source="thea",
    message_type="SPAT",
    objects=one(KEY_THEA_SPAT, ndjson(_thea_spat_with(moy="2147483647"), compact(THEA_SPAT))),
    rows=2,
    quarantined=0,
    kept={"moy": [2147483647, None]},
)


# -- a 50 MB single line ---------------------------------------------------------------------
B = "50 MB single line"


def _big_valid() -> list[tuple[str, bytes]]:
    rec = w6(2)
    rec["payload"]["data"]["partII"][0]["value"]["padding"] = "x" * (50 * MB)
    return [(KEY_W6, ndjson(w6_line(1), compact(rec), w6_line(3)))]


def _big_garbage() -> list[tuple[str, bytes]]:
    return [(KEY_W6, ndjson(w6_line(1), b'{"metadata": ' + b"9" * (50 * MB), w6_line(3)))]


def _big_last() -> list[tuple[str, bytes]]:
    return [(KEY_W6, ndjson(w6_line(1), w6_line(2)) + b"[" * (50 * MB))]


case(
    name="line_50mb_valid_record",
    klass=B,
    source="wydot",
    message_type="BSM",
    objects=_big_valid,
    rows=2,
    quarantined=1,
    reasons=("line too long",),
    kept={"vehicle_id": ids(1, 3)},
    bad_lines=(b'{"metadata": {"bsmSource": "RV"',),  # the raw keeps the first 1 MiB
    big=True,
)
case(
    name="line_50mb_garbage",
    klass=B,
    source="wydot",
    message_type="BSM",
    objects=_big_garbage,
    rows=2,
    quarantined=1,
    reasons=("line too long",),
    kept={"vehicle_id": ids(1, 3)},
    bad_lines=(b'{"metadata": 9999',),
    big=True,
)
case(
    name="line_50mb_last_without_newline",
    klass=B,
    source="wydot",
    message_type="BSM",
    objects=_big_last,
    rows=2,
    quarantined=1,
    reasons=("line too long",),
    kept={"vehicle_id": ids(1, 2)},
    bad_lines=(b"[[[[",),
    big=True,
)

# -- non-UTF-8 bytes -------------------------------------------------------------------------
U = "non-UTF-8 bytes"
_latin1 = _FULL.replace(b'"bsmSource": "RV"', b'"bsmSource": "R\xe9V"', 1)
_ff = _FULL.replace(b'"rxMsg"', b'"rx\xff\xfeMsg"', 1)
_overlong = _FULL.replace(b'"rxMsg"', b'"rx\xc0\xafMsg"', 1)
case(
    name="latin1_byte_in_string",
    klass=U,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), _latin1, w6_line(3))),
    rows=2,
    quarantined=1,
    reasons=("invalid UTF-8",),
    kept={"vehicle_id": ids(1, 3)},
    bad_lines=(_latin1,),
)
case(
    name="ff_fe_bytes",
    klass=U,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(_ff, w6_line(2))),
    rows=1,
    quarantined=1,
    reasons=("invalid UTF-8",),
    kept={"vehicle_id": ids(2)},
    bad_lines=(_ff,),
)
case(
    name="overlong_utf8_sequence",
    klass=U,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), _overlong)),
    rows=1,
    quarantined=1,
    reasons=("invalid UTF-8",),
    bad_lines=(_overlong,),
)
_lone = _FULL.replace(b'"rxMsg"', b'"rx\\ud800Msg"', 1)
case(
    name="unpaired_surrogate_escape",
    klass=U,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), _lone, w6_line(3))),
    rows=2,
    quarantined=1,
    reasons=("unpaired surrogate",),
    kept={"vehicle_id": ids(1, 3)},
    bad_lines=(_lone,),
)
_utf16_lines = [w6_line(1), w6_line(2)]
case(
    name="utf16_object_with_bom",
    klass=U,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(*_utf16_lines).decode().encode("utf-16")),
    rows=2,
    quarantined=0,
    kept={"vehicle_id": ids(1, 2)},
    note="a UTF-16 byte order mark: transcoded to UTF-8",
)
for _codec in ("utf-32", "utf-32-be"):  # Python's "utf-32" writes the little-endian mark
    case(
        name=f"{_codec.replace('-', '')}_object_with_bom",
        klass=U,
        source="wydot",
        message_type="BSM",
        objects=one(
            KEY_W6,
            (b"" if _codec == "utf-32" else codecs.BOM_UTF32_BE)
            + ndjson(*_utf16_lines).decode().encode(_codec),
        ),
        rows=2,
        quarantined=0,
        kept={"vehicle_id": ids(1, 2)},
        note="a UTF-32 byte order mark (its little-endian one starts as UTF-16's): transcoded",
    )
case(
    name="utf16_object_without_bom",
    klass=U,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(*_utf16_lines).decode().encode("utf-16-le")),
    rows=0,
    quarantined=3,  # split at 0x0a: two lines and the NUL after the last newline
    reasons=("malformed JSON",),
    note="no way to know the encoding: every line is quarantined with its exact bytes",
)
_doc_bad = pretty(w3(2)).replace(b'"OBU"', b'"OB\xdc"', 1)
case(
    name="latin1_in_concatenated_documents",
    klass=U,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W3, pretty(w3(1)) + b"\n" + _doc_bad + b"\n" + pretty(w3(3))),
    rows=2,
    quarantined=1,
    reasons=("invalid UTF-8",),
    kept={"vehicle_id": ["V3000001", "V3000003"]},
    bad_lines=(_doc_bad,),
)

# -- byte order mark -------------------------------------------------------------------------
BO = "UTF-8 BOM"
case(
    name="bom_ndjson",
    klass=BO,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, BOM + ndjson(w6_line(1), w6_line(2), w6_line(3))),
    rows=3,
    quarantined=0,
    kept={"vehicle_id": ids(1, 2, 3)},
)
case(
    name="bom_pretty_document",
    klass=BO,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W3, BOM + pretty(w3(1))),
    rows=1,
    quarantined=0,
    kept={"vehicle_id": ["V3000001"]},
)
case(
    name="bom_on_every_concatenated_object",
    klass=BO,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, BOM + ndjson(w6_line(1)) + BOM + ndjson(w6_line(2), w6_line(3))),
    rows=3,
    quarantined=0,
    kept={"vehicle_id": ids(1, 2, 3)},
)
case(
    name="bom_with_bad_line",
    klass=BO,
    source="thea",
    message_type="SPAT",
    objects=one(KEY_THEA_SPAT, BOM + ndjson(compact(THEA_SPAT), b"not json", compact(THEA_SPAT))),
    rows=2,
    quarantined=1,
    reasons=("malformed JSON",),
    bad_lines=(b"not json",),
)

# -- CRLF line endings -----------------------------------------------------------------------
C = "CRLF line endings"
case(
    name="crlf_ndjson",
    klass=C,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), w6_line(2), end=b"\r\n")),
    rows=2,
    quarantined=0,
    kept={"vehicle_id": ids(1, 2)},
)
case(
    name="crlf_with_bad_line",
    klass=C,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), b"{broken", w6_line(3), end=b"\r\n")),
    rows=2,
    quarantined=1,
    reasons=("malformed JSON",),
    kept={"vehicle_id": ids(1, 3)},
    bad_lines=(b"{broken",),
)
case(
    name="crlf_pretty_document_v1",
    klass=C,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W3, pretty(w1(1)).replace(b"\n", b"\r\n")),
    rows=1,
    quarantined=0,
    kept={"vehicle_id": ["V1000001"], "schema_version": [1]},
)
case(
    name="bom_and_crlf_thea_bsm",
    klass=C,
    source="thea",
    message_type="BSM",
    objects=one(
        KEY_THEA_BSM, BOM + ndjson(compact(thea_bsm(1)), compact(thea_bsm(2)), end=b"\r\n")
    ),
    rows=2,
    quarantined=0,
    kept={"vehicle_id": ["8290001", "8290002"]},
)

# -- empty files -----------------------------------------------------------------------------
E = "empty files"
for _name, _body in [
    ("empty_zero_bytes", b""),
    ("empty_only_newlines", b"\n\n\n"),
    ("empty_only_whitespace", b"  \t \r\n \n"),
    ("empty_only_bom", BOM),
    ("empty_gzip", gzip.compress(b"")),
]:
    case(
        name=_name,
        klass=E,
        source="wydot",
        message_type="BSM",
        objects=one(KEY_W6, _body),
        rows=0,
        quarantined=0,
    )
case(
    name="empty_object_beside_a_full_one",
    klass=E,
    source="wydot",
    message_type="BSM",
    objects=lambda: [(KEY_W6 + "-a", b""), (KEY_W6 + "-b", ndjson(w6_line(1)))],
    rows=1,
    quarantined=0,
    kept={"vehicle_id": ids(1)},
)

# -- gzip-compressed objects -----------------------------------------------------------------
G = "gzip-compressed objects"
case(
    name="gzip_ndjson",
    klass=G,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6 + ".gz", gzip.compress(ndjson(w6_line(1), w6_line(2), w6_line(3)))),
    rows=3,
    quarantined=0,
    kept={"vehicle_id": ids(1, 2, 3)},
)
case(
    name="gzip_without_gz_suffix_with_bad_line",
    klass=G,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, gzip.compress(ndjson(w6_line(1), b"# not json", b"{x", w6_line(4)))),
    rows=2,
    quarantined=2,
    reasons=("malformed JSON", "comment line"),
    kept={"vehicle_id": ids(1, 4)},
    bad_lines=(b"# not json", b"{x"),
)
case(
    name="gzip_pretty_document",
    klass=G,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W3, gzip.compress(pretty(w3(1)))),
    rows=1,
    quarantined=0,
    kept={"vehicle_id": ["V3000001"]},
)
case(
    name="gzip_multi_member",
    klass=G,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, gzip.compress(ndjson(w6_line(1))) + gzip.compress(ndjson(w6_line(2)))),
    rows=2,
    quarantined=0,
    kept={"vehicle_id": ids(1, 2)},
)
_gz = gzip.compress(ndjson(*(w6_line(i) for i in range(1, 41))), compresslevel=1)
case(
    name="gzip_cut_off",
    klass=G,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, _gz[: len(_gz) * 2 // 3]),
    rows=23,  # the records decompressed whole before the cut
    quarantined=2,  # the cut itself, and the partial 24th line
    reasons=("unreadable object: gzip stream cut off", "malformed JSON"),
    kept={"vehicle_id": ids(*range(1, 24))},
    note="the decompressed prefix is kept; its partial last line and the cut are quarantined",
)
case(
    name="gzip_corrupt_body",
    klass=G,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"this is not deflate data" * 4),
    rows=0,
    quarantined=1,
    reasons=("unreadable object: corrupt gzip stream",),
)
case(
    name="gzip_gzip_and_plain_objects",
    klass=G,
    source="thea",
    message_type="BSM",
    objects=lambda: [
        (KEY_THEA_BSM + "-a", gzip.compress(ndjson(compact(thea_bsm(1))))),
        (KEY_THEA_BSM + "-b", ndjson(compact(thea_bsm(2)))),
    ],
    rows=2,
    quarantined=0,
    kept={"vehicle_id": ["8290001", "8290002"]},
)

# -- duplicate records -----------------------------------------------------------------------
D = "duplicate records"
case(
    name="duplicate_lines_in_one_object",
    klass=D,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), w6_line(1), w6_line(1), w6_line(2))),
    rows=4,
    quarantined=0,
    kept={"vehicle_id": sorted(ids(1) * 3 + ids(2))},
    warnings={"duplicate_record": 2},
    note="kept as published; counted as the partition warning duplicate_record",
)
case(
    name="duplicate_records_across_objects",
    klass=D,
    source="wydot",
    message_type="BSM",
    objects=lambda: [
        (KEY_W6 + "-a", ndjson(w6_line(1), w6_line(2))),
        (KEY_W6 + "-b", ndjson(w6_line(2), w6_line(3))),
    ],
    rows=4,
    quarantined=0,
    warnings={"duplicate_record": 1},
)
case(
    name="duplicate_tim_records",
    klass=D,
    source="wydot",
    message_type="TIM",
    objects=one(KEY_WTIM, ndjson(_tim, _tim)),
    rows=4,
    quarantined=0,
    warnings={"duplicate_record": 2},  # one per TravelerDataFrame row
)

# -- timestamps outside the folder's hour ----------------------------------------------------
X = "timestamp outside the folder's hour"
case(
    name="outside_hour_before_and_after",
    klass=X,
    source="wydot",
    message_type="BSM",
    objects=one(
        KEY_W6,
        ndjson(
            w6_line(1, recordGeneratedAt="2018-05-06T19:59:59.999Z"),
            w6_line(2, recordGeneratedAt="2018-05-06T20:00:00Z"),
            w6_line(3, recordGeneratedAt="2018-05-06T20:59:59.999Z"),
            w6_line(4, recordGeneratedAt="2018-05-06T21:00:00Z"),
            w6_line(5, recordGeneratedAt="2019-01-01T00:00:00Z"),
        ),
    ),
    rows=5,
    quarantined=0,
    kept={"vehicle_id": ids(1, 2, 3, 4, 5)},
    warnings={"outside_folder_hour": 3},
)
case(
    name="outside_hour_v1_document",
    klass=X,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W3.replace("/16/", "/17/"), pretty(w1(1))),
    rows=1,
    quarantined=0,
    kept={"vehicle_id": ["V1000001"]},
    warnings={"outside_folder_hour": 1},
)
case(
    name="thea_folder_hour_is_eastern_time",
    klass=X,
    source="thea",
    message_type="BSM",
    objects=one(
        KEY_THEA_BSM,
        ndjson(
            compact(thea_bsm(1)),  # 00:20 ET, folder 00 (ET): inside
            compact(thea_bsm(2, "2019-01-14 01:20:30.046 [ET]")),  # next hour: outside
        ),
    ),
    rows=2,
    quarantined=0,
    warnings={"outside_folder_hour": 1},
)
case(
    name="outside_hour_wydot_tim",
    klass=X,
    source="wydot",
    message_type="TIM",
    objects=one(
        KEY_WTIM.replace(KEY_WTIM.split("/")[5], f"{(int(KEY_WTIM.split('/')[5]) + 1) % 24:02d}"),
        ndjson(_tim),
    ),
    rows=2,
    quarantined=0,
    warnings={"outside_folder_hour": 2},
)

# -- unknown schema versions -----------------------------------------------------------------
V = "unknown schema versions"
case(
    name="schema_version_99",
    klass=V,
    source="wydot",
    message_type="BSM",
    objects=one(
        KEY_W6, ndjson(w6_line(1), w6_line(2, schemaVersion=99, brandNewField={"x": [1, 2]}))
    ),
    rows=2,
    quarantined=0,
    kept={"vehicle_id": ids(1, 2), "schema_version": [6, 99]},
    unknown_versions=(99,),
)
case(
    name="schema_version_not_a_number",
    klass=V,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1, schemaVersion="6b"))),
    rows=1,
    quarantined=0,
    kept={"vehicle_id": ids(1), "schema_version": [None]},
)
case(
    name="thea_schema_version_2",
    klass=V,
    source="thea",
    message_type="BSM",
    objects=one(
        KEY_THEA_BSM,
        ndjson(compact((lambda r: (r["metadata"].update(schemaVersion=2), r)[1])(thea_bsm(1)))),
    ),
    rows=1,
    quarantined=0,
    unknown_versions=(2,),
)

# -- '#' comment lines -----------------------------------------------------------------------
K = "# comment lines"
case(
    name="comment_header",
    klass=K,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(b"# exported 2018-05-06 by ode", w6_line(1), w6_line(2))),
    rows=2,
    quarantined=1,
    reasons=("comment line",),
    kept={"vehicle_id": ids(1, 2)},
    bad_lines=(b"# exported 2018-05-06 by ode",),
)
case(
    name="comment_lines_everywhere",
    klass=K,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), b"#", b"   # indented", w6_line(2), b"#{json-looking}")),
    rows=2,
    quarantined=3,
    reasons=("comment line",),
    kept={"vehicle_id": ids(1, 2)},
    bad_lines=(b"#", b"   # indented", b"#{json-looking}"),
)

# -- more hostile shapes ---------------------------------------------------------------------
Z = "other hostile shapes"
case(
    name="two_records_on_one_line",
    klass=Z,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), w6_line(2) + b" " + w6_line(3), w6_line(4))),
    rows=4,
    quarantined=0,
    kept={"vehicle_id": ids(1, 2, 3, 4)},
    recovered=2,
)
case(
    name="records_joined_without_newlines",
    klass=Z,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1) + w6_line(2) + w6_line(3), w6_line(4) + w6_line(5))),
    rows=5,
    quarantined=0,
    kept={"vehicle_id": ids(1, 2, 3, 4, 5)},
    recovered=5,
)
case(
    name="joined_records_around_a_broken_one",
    klass=Z,
    source="wydot",
    message_type="BSM",
    objects=one(
        KEY_W6,
        ndjson(w6_line(1) + w6_line(2)[:90] + w6_line(3) + b"}{", w6_line(4)),
    ),
    rows=3,
    quarantined=2,  # the cut record and the stray brace after the last whole one
    reasons=("malformed JSON",),
    kept={"vehicle_id": ids(1, 3, 4)},
    bad_lines=(w6_line(2)[:90], b"}{"),
    recovered=2,
)
case(
    name="joined_thea_spat_records",
    klass=Z,
    source="thea",
    message_type="SPAT",
    objects=one(KEY_THEA_SPAT, ndjson(compact(THEA_SPAT) + compact(THEA_SPAT), b"[1]{}")),
    rows=2,
    quarantined=1,  # values joined but none a record: one line, as before
    reasons=("malformed JSON",),
    bad_lines=(b"[1]{}",),
    recovered=2,
)
case(
    name="nested_too_deeply",
    klass=Z,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), b"[" * 100_000 + b"]" * 100_000, w6_line(3))),
    rows=2,
    quarantined=1,
    reasons=("malformed JSON",),
    kept={"vehicle_id": ids(1, 3)},
)
case(
    name="binary_garbage_object",
    klass=Z,
    source="wydot",
    message_type="BSM",
    objects=lambda: [
        (KEY_W6 + "-bin", bytes(range(256)) * 4),
        (KEY_W6 + "-ok", ndjson(w6_line(1))),
    ],
    rows=1,
    quarantined=5,  # the 0x0a bytes split it into five lines, each kept exactly
    reasons=("malformed JSON", "invalid UTF-8"),
    kept={"vehicle_id": ids(1)},
)
case(
    name="message_of_another_type_in_folder",
    klass=Z,
    source="wydot",
    message_type="BSM",
    objects=one(KEY_W6, ndjson(w6_line(1), compact(THEA_SPAT))),
    rows=1,
    quarantined=1,
    reasons=("missing required field",),
    kept={"vehicle_id": ids(1)},
)
