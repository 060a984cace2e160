"""NGSIM vehicle trajectories (US-101, I-80, Lankershim Blvd, Peachtree St) as a dataset.

Input: the published trajectory CSV (25 columns, feet and ft/s, 0.1 s frames), from a local
file, an http(s) URL or S3. Units are byte ranges of the file; a unit owns the lines that
*start* in [start, end): it skips the partial line before its first byte (unit 0 skips the
header) and reads on past `end` to finish its last line, so units can be fetched concurrently
with Range requests and every line is parsed exactly once. See docs/ngsim.md for units,
coordinate systems, ids and NULL mapping.
"""

from __future__ import annotations

import csv
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from cvcatalog.datasets.base import Dataset, Rejects, WorkUnit
from cvcatalog.exceptions import ConfigError, ConversionError
from cvcatalog.io.inputs import ByteInput, InputInfo, open_input
from cvcatalog.io.s3 import TokenBucket

FT = 0.3048  # international foot, exactly; NGSIM's local coordinates, sizes and speeds
DEFAULT_UNIT_BYTES = 64 << 20
BLOCK_BYTES = 16 << 20  # parsed at once: bounds memory per worker whatever the unit size
#: after a unit's range, read this much more at a time to finish its last line
TAIL_BYTES = 64 << 10
FRAME_MS = 100

#: location -> EPSG code of its Global_X/Global_Y (NAD83 State Plane, US survey feet)
LOCATION_CRS: dict[str, int] = {
    "us-101": 2229,  # California zone 5 (Los Angeles County)
    "lankershim": 2229,
    "i-80": 2227,  # California zone 3 (Alameda County)
    "peachtree": 2240,  # Georgia West (Atlanta)
}
LOCATIONS = tuple(LOCATION_CRS)

#: (CSV column, Arrow type read) in the published order
CSV_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("Vehicle_ID", pa.int64()),
    ("Frame_ID", pa.int64()),
    ("Total_Frames", pa.int64()),
    ("Global_Time", pa.int64()),
    ("Local_X", pa.float64()),
    ("Local_Y", pa.float64()),
    ("Global_X", pa.float64()),
    ("Global_Y", pa.float64()),
    ("v_length", pa.float64()),
    ("v_Width", pa.float64()),
    ("v_Class", pa.float64()),
    ("v_Vel", pa.float64()),
    ("v_Acc", pa.float64()),
    ("Lane_ID", pa.float64()),
    ("O_Zone", pa.float64()),
    ("D_Zone", pa.float64()),
    ("Int_ID", pa.float64()),
    ("Section_ID", pa.float64()),
    ("Direction", pa.float64()),
    ("Movement", pa.float64()),
    ("Preceding", pa.float64()),
    ("Following", pa.float64()),
    ("Space_Headway", pa.float64()),
    ("Time_Headway", pa.float64()),
    ("Location", pa.string()),
]
CSV_NAMES = [n for n, _ in CSV_COLUMNS]
_CSV_TYPES = dict(CSV_COLUMNS)
#: the fast path reads Location as a dictionary: a handful of distinct values per block, so
#: normalising and checking it costs nothing per row
_FAST_TYPES = _CSV_TYPES | {"Location": pa.dictionary(pa.int32(), pa.string())}
#: integer codes the published file writes without decimals: parsed as integers first (15 %
#: less CSV time than as doubles); an input that writes them as "2.0" falls back, once, to
#: _FAST_TYPES for the rest of the run
CODE_COLUMNS = (
    "v_Class",
    "Lane_ID",
    "O_Zone",
    "D_Zone",
    "Int_ID",
    "Section_ID",
    "Direction",
    "Movement",
    "Preceding",
    "Following",
)
_INT_TYPES = _FAST_TYPES | {n: pa.int64() for n in CODE_COLUMNS}
#: a row without these is quarantined (Location only when no --location is given)
REQUIRED = ("Vehicle_ID", "Frame_ID", "Global_Time", "Local_X", "Local_Y", "v_Vel", "Location")
#: NGSIM writes this Time_Headway when there is no preceding vehicle
NO_HEADWAY_S = 9999.0
_NULLS = ["", "NA", "N/A", "NaN", "nan", "NULL", "null"]
#: the integer CSV columns a row needs in range, and that range: Vehicle_ID and Frame_ID are
#: stored as INTEGER (a wider value wrapped: 3000000000 became -1294967296), Global_Time
#: (epoch ms) must be a date of years 1-9999 (a later one failed the whole unit)
INT_RANGES: dict[str, tuple[int, int]] = {
    "Vehicle_ID": (-(1 << 31), (1 << 31) - 1),
    "Frame_ID": (-(1 << 31), (1 << 31) - 1),
    "Global_Time": (-62_135_596_800_000, 253_402_300_799_999),
}
_INT64 = (-(1 << 63), (1 << 63) - 1)
_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"

SCHEMA = pa.schema(
    [
        ("vehicle_id", pa.string()),  # '<location>:<period start ms>:<Vehicle_ID>', unique
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("x_m", pa.float64()),  # Local_X: lateral, from the left edge of the section
        ("y_m", pa.float64()),  # Local_Y: longitudinal, in the direction of travel
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("speed_mps", pa.float32()),
        ("accel_mps2", pa.float32()),
        ("lane_id", pa.int32()),
        ("frame_id", pa.int32()),
        ("ngsim_vehicle_id", pa.int32()),
        ("period_start", pa.timestamp("ms", tz="UTC")),
        ("total_frames", pa.int32()),
        ("vehicle_length_m", pa.float32()),
        ("vehicle_width_m", pa.float32()),
        ("vehicle_class", pa.int8()),  # 1 motorcycle, 2 auto, 3 truck
        ("preceding", pa.int32()),  # NGSIM Vehicle_ID of the leader; NULL for none (0)
        ("following", pa.int32()),
        ("space_headway_m", pa.float32()),
        ("time_headway_s", pa.float32()),
        ("o_zone", pa.int16()),
        ("d_zone", pa.int16()),
        ("int_id", pa.int16()),
        ("section_id", pa.int16()),
        ("direction", pa.int8()),
        ("movement", pa.int8()),
        ("location", pa.string()),
        ("date", pa.date32()),  # UTC date of timestamp
    ]
)

_tls = threading.local()


def _transformer(epsg: int) -> Any:
    """A pyproj Transformer per thread (they are not safe to share between threads)."""
    cache: dict[int, Any] | None = getattr(_tls, "transformers", None)
    if cache is None:
        cache = _tls.transformers = {}
    if epsg not in cache:
        from pyproj import Transformer

        cache[epsg] = Transformer.from_crs(epsg, 4326, always_xy=True)
    return cache[epsg]


def to_lonlat(location: str, x_ft: np.ndarray, y_ft: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """State Plane feet (US survey) of a site -> WGS84 longitude, latitude in degrees."""
    lon, lat = _transformer(LOCATION_CRS[location]).transform(x_ft, y_ft)
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def normalize_location(value: str) -> str:
    """'US-101', ' i_80 ', 'Peachtree' -> the canonical location name."""
    return re.sub(r"[ _]+", "-", value.strip().lower())


def check_location(value: str) -> str:
    """The canonical name of an NGSIM location given by a user (--location, to_dask); an
    unknown one is a ConfigError naming the four."""
    name = normalize_location(value)
    if name not in LOCATION_CRS:
        raise ConfigError(
            f"unknown NGSIM location {value!r}; expected one of {', '.join(LOCATIONS)}"
        )
    return name


def _normalize_locations(col: pa.ChunkedArray | pa.Array) -> Any:
    """normalize_location, vectorised."""
    return pc.replace_substring_regex(pc.utf8_lower(pc.utf8_trim_whitespace(col)), r"[ _]+", "-")


class NgsimDataset(Dataset):
    name: ClassVar[str] = "ngsim"
    message_type: ClassVar[str] = "TRAJECTORY"
    arrow_schema: ClassVar[pa.Schema] = SCHEMA
    partition_by: ClassVar[tuple[str, ...]] = ("location", "date")
    view_name: ClassVar[str] = "ngsim_trajectories"
    sort_by: ClassVar[tuple[str, ...]] = ("vehicle_id", "timestamp")
    plain_columns: ClassVar[tuple[str, ...]] = ("timestamp", "frame_id")

    def __init__(
        self,
        uris: Sequence[str],
        *,
        location: str | None = None,
        unit_bytes: int = DEFAULT_UNIT_BYTES,
        block_bytes: int = BLOCK_BYTES,
        s3_client: Any = None,
        timeout: float = 300.0,
        parse_threads: bool = True,
        limiter: TokenBucket | None = None,
    ) -> None:
        if not uris:
            raise ConfigError("give at least one NGSIM input (--path)")
        opened = [
            open_input(u, s3_client=s3_client, timeout=timeout, limiter=limiter) for u in uris
        ]
        #: canonical uris (a relative path becomes absolute): the keys of every unit
        self.uris = [i.uri for i in opened]
        self.location = check_location(location) if location else None
        if unit_bytes < 1 << 16:
            raise ConfigError("the unit size must be at least 64 KiB")
        self.unit_bytes = unit_bytes
        self.block_bytes = min(block_bytes, unit_bytes)
        self.parse_threads = parse_threads
        #: the typed fast path still tries integer codes (False after an input wrote "2.0")
        self._int_codes = True
        self._inputs: dict[str, ByteInput] = {i.uri: i for i in opened}
        self._infos: dict[str, InputInfo] = {}
        self._headers: dict[str, list[str]] = {}

    @property
    def scope(self) -> str:
        return f"location={self.location}" if self.location else "*"

    @classmethod
    def options_for_scope(cls, scope: str) -> dict[str, Any]:
        key, _, value = scope.partition("=")
        return {"location": value} if key == "location" and value else {}

    @classmethod
    def partition_value(cls, column: str, value: str) -> str:
        if column == "location":
            return check_location(value)
        return super().partition_value(column, value)

    # -- contract ------------------------------------------------------------------------
    def inputs(self) -> list[InputInfo]:
        out = []
        for source in self._inputs.values():
            info = source.stat()
            self._infos[info.uri] = info
            out.append(info)
        return out

    def units(
        self, inputs: list[InputInfo], unit_sizes: Mapping[str, int] | None = None
    ) -> list[WorkUnit]:
        units: list[WorkUnit] = []
        for info in inputs:
            self._check_header(info)
            if not info.ranges or info.size is None:  # one streamed unit
                bounds = [(0, info.size if info.size is not None else 1 << 62)]
            else:
                size = info.size
                step = max((unit_sizes or {}).get(info.uri, self.unit_bytes), 1)
                bounds = [(s, min(s + step, size)) for s in range(0, size, step)] or [(0, 0)]
            for i, (s, e) in enumerate(bounds):
                units.append(
                    WorkUnit(
                        f"{info.uri}#{s}-{e}",
                        info.uri,
                        s,
                        e,
                        info.fingerprint,
                        info.size,
                        info.last_modified,
                        i,
                    )
                )
        return units

    def fetch(self, unit: WorkUnit) -> Iterator[bytes]:
        """From the byte before the unit (to see whether a line starts at `start`) through the
        range, then TAIL_BYTES at a time until the caller has its last line and stops."""
        info = self._info(unit)
        source = self._inputs[unit.uri]
        first = max(unit.start - 1, 0)
        if not info.ranges:
            yield from source.read(0, None, info)
            return
        yield from source.read(first, unit.end, info)
        pos = unit.end
        size = info.size or 0
        while pos < size:
            stop = min(pos + TAIL_BYTES, size)
            yield from source.read(pos, stop, info)
            pos = stop

    def fetch_offset(self, unit: WorkUnit) -> int:
        """fetch starts at the byte before the unit, or at 0 for an input read whole."""
        return max(unit.start - 1, 0) if self._info(unit).ranges else 0

    def parse(
        self, unit: WorkUnit, data: Iterator[bytes], rejects: Rejects
    ) -> Iterator[pa.RecordBatch]:
        names = self._headers.get(unit.uri) or CSV_NAMES
        for at, block in _unit_lines(unit, data, self.block_bytes):
            yield from self.parse_block(block, names, rejects, at)

    # -- parsing -------------------------------------------------------------------------
    def parse_block(
        self, block: bytes | memoryview, names: list[str], rejects: Rejects, at: int
    ) -> Iterator[pa.RecordBatch]:
        """Whole lines (the first at byte `at` of the input) -> canonical batches. Clean blocks
        take the typed multithreaded path; a block with any bad row is parsed again column by
        column as text so that each bad row is quarantined with its reason, original line and
        where it starts."""
        if not len(block) or (len(block) < 256 and bytes(block).isspace()):
            return
        table = self._read_typed(block, names, _INT_TYPES) if self._int_codes else None
        if table is None:
            table = self._read_typed(block, names, _FAST_TYPES)
            if table is not None and self._int_codes:
                self._int_codes = False  # codes written as decimals (not a bad row)
        if table is None or self._has_bad_rows(table):
            table = self._read_checked(block, names, rejects, at)
        if table.num_rows:
            yield from self._canonical(table, rejects)

    def _read_typed(
        self, block: bytes | memoryview, names: list[str], types: dict[str, pa.DataType]
    ) -> pa.Table | None:
        bad = 0

        def invalid(_row: Any) -> str:
            nonlocal bad
            bad += 1
            return "skip"

        try:
            table = pacsv.read_csv(
                pa.py_buffer(block),
                read_options=pacsv.ReadOptions(
                    column_names=names, use_threads=self.parse_threads, block_size=1 << 20
                ),
                parse_options=pacsv.ParseOptions(invalid_row_handler=invalid),
                convert_options=pacsv.ConvertOptions(
                    column_types={n: types[n] for n in names if n in types},
                    include_columns=CSV_NAMES,
                    null_values=_NULLS,
                    strings_can_be_null=True,
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        return None if bad else table

    def _has_bad_rows(self, table: pa.Table) -> bool:
        for name in REQUIRED:
            if table[name].null_count:
                return True
        for name, (lo, hi) in INT_RANGES.items():
            bounds = pc.min_max(table[name])
            if table.num_rows and (bounds["min"].as_py() < lo or bounds["max"].as_py() > hi):
                return True
        return bool((_location_codes(table["Location"]) < 0).any())

    def _read_checked(
        self, block: bytes | memoryview, names: list[str], rejects: Rejects, at: int
    ) -> pa.Table:
        """The slow, exact path: field counts, then every numeric column checked as text.
        The block's first line starts at byte `at` of the input."""
        ncols = len(names)
        good: list[bytes] = []
        starts: list[int] = []  # where each good line starts in the input
        start = at
        for raw in bytes(block).split(b"\n"):
            line, here = raw.rstrip(b"\r"), start
            start += len(raw) + 1
            if not line.strip():
                continue
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                # pyarrow failed the whole unit on it ("CSV conversion error to string")
                rejects.add("invalid_utf8", f"invalid UTF-8 at byte {e.start}", line, here)
                continue
            n = line.count(b",") + 1
            if n != ncols:
                rejects.add("field_count", f"expected {ncols} fields, got {n}", line, here)
                continue
            if b'"' in line and not _quotes_closed(line):
                # a quote left open would run on into the next lines: pyarrow read them all
                # as one field, and they were neither rows nor quarantined
                rejects.add("unbalanced_quote", "a quoted field is not closed", line, here)
                continue
            good.append(line)
            starts.append(here)
        if not good:
            return _empty_typed()
        text = pacsv.read_csv(
            pa.py_buffer(b"\n".join(good)),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                include_columns=CSV_NAMES,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        if text.num_rows != len(good):  # every line checked is one row, or reasons misalign
            raise ConversionError(
                f"{len(good)} lines from byte {at} were read as {text.num_rows} CSV rows"
            )
        reason: list[str | None] = [None] * text.num_rows
        rule: list[str] = [""] * text.num_rows
        columns: dict[str, pa.Array] = {}
        for name in CSV_NAMES:
            col = pc.utf8_trim_whitespace(text[name].combine_chunks())
            is_null = pc.is_in(col, value_set=pa.array(_NULLS))
            col = pc.if_else(is_null, pa.scalar(None, pa.string()), col)
            if name in REQUIRED and not (name == "Location" and self.location):
                for i in np.flatnonzero(is_null.to_numpy(zero_copy_only=False)):
                    if reason[i] is None:
                        reason[i], rule[i] = f"missing {name}", "missing_field"
            if _CSV_TYPES[name] == pa.string():
                columns[name] = col
                continue
            ok = pc.fill_null(pc.match_substring_regex(col, _NUMBER), True)
            for i in np.flatnonzero(~ok.to_numpy(zero_copy_only=False)):
                if reason[i] is None:
                    reason[i], rule[i] = (
                        f"{name} is not a number: {col[i].as_py()!r}",
                        "non_numeric",
                    )
            safe = pc.if_else(ok, col, pa.scalar(None, pa.string()))
            as_float = pc.cast(safe, pa.float64())
            if pa.types.is_integer(_CSV_TYPES[name]):
                whole = pc.fill_null(pc.equal(pc.floor(as_float), as_float), True)
                for i in np.flatnonzero(~whole.to_numpy(zero_copy_only=False)):
                    if reason[i] is None:
                        reason[i], rule[i] = f"{name} is not an integer", "non_numeric"
                lo, hi = INT_RANGES.get(name, _INT64)
                # compared as doubles, below hi + 1 (int64's 2**63 - 1 is 2.0**63 as a double)
                upper = float(hi) + 1 if hi < _INT64[1] else 2.0**63
                fits = pc.and_(pc.greater_equal(as_float, float(lo)), pc.less(as_float, upper))
                fits = pc.fill_null(fits, True)
                for i in np.flatnonzero(~fits.to_numpy(zero_copy_only=False)):
                    if reason[i] is None:
                        value = col[int(i)].as_py()
                        reason[i], rule[i] = f"{name} is out of range: {value!r}", "out_of_range"
                keep_int = pc.and_(whole, fits)
                columns[name] = pc.cast(pc.if_else(keep_int, as_float, None), _CSV_TYPES[name])
            else:
                columns[name] = as_float
        loc = _normalize_locations(columns["Location"])
        known = pc.fill_null(pc.is_in(loc, value_set=pa.array(LOCATIONS)), False)
        for i in np.flatnonzero(~known.to_numpy(zero_copy_only=False)):
            if reason[i] is None:
                value = text["Location"][int(i)].as_py()
                reason[i], rule[i] = f"unknown location {value!r}", "unknown_location"
        keep = np.ones(text.num_rows, dtype=bool)
        for row, why in enumerate(reason):
            if why is not None:
                rejects.add(rule[row], why, good[row], starts[row])
                keep[row] = False
        typed = pa.table(columns)
        return typed.filter(pa.array(keep)) if not keep.all() else typed

    def _canonical(self, t: pa.Table, rejects: Rejects) -> Iterator[pa.RecordBatch]:
        """Typed CSV columns -> canonical columns (SI units, UTC, WGS84, unique ids), one batch
        per location. Locations become small integer codes first (normalised per distinct
        value, not per row)."""
        codes = _location_codes(t["Location"])
        if self.location is not None:
            keep = codes == LOCATIONS.index(self.location)
            if not keep.all():
                rejects.skip(int(t.num_rows - keep.sum()))
                t, codes = t.filter(pa.array(keep)), codes[keep]
        present = np.unique(codes)
        for code in present:
            part = t if len(present) == 1 else t.filter(pa.array(codes == code))
            if part.num_rows:
                yield self._convert(part, LOCATIONS[int(code)])

    def _convert(self, t: pa.Table, location: str) -> pa.RecordBatch:
        n = t.num_rows
        gt = t["Global_Time"].to_numpy()
        frame = t["Frame_ID"].to_numpy()
        vid = t["Vehicle_ID"].to_numpy()
        # Frame_ID counts 0.1 s frames from the start of the recording period, so this is the
        # period's start; rounded to the second to absorb jitter in Global_Time
        period = np.round((gt - FRAME_MS * frame) / 1000.0).astype(np.int64) * 1000
        vehicle_id = _vehicle_ids(location, period, vid)
        gx = t["Global_X"].to_numpy(zero_copy_only=False)
        gy = t["Global_Y"].to_numpy(zero_copy_only=False)
        lon, lat = to_lonlat(location, gx, gy)

        def ft(name: str, single: bool = False) -> pa.Array:
            col = pc.multiply(t[name].combine_chunks(), FT)
            return pc.cast(col, pa.float32()) if single else col

        def code(name: str, typ: pa.DataType, zero_is_null: bool = True) -> pa.Array:
            col = t[name].combine_chunks()
            if zero_is_null:
                col = pc.if_else(pc.equal(col, 0), pa.scalar(None, col.type), col)
            # a code its column cannot hold is NULL, as a CV integer that does not fit its
            # column is (it wrapped: v_Class 300 became 44, Lane_ID 99999999999 1215752191)
            info = np.iinfo(typ.to_pandas_dtype())
            fits = pc.and_(pc.greater_equal(col, info.min), pc.less_equal(col, info.max))
            col = pc.if_else(pc.fill_null(fits, False), col, pa.scalar(None, col.type))
            return pc.cast(col, typ, safe=False)

        preceding = code("Preceding", pa.int32())
        headway = t["Space_Headway"].combine_chunks()
        no_leader = pc.fill_null(pc.is_null(preceding), True)
        space = pc.if_else(
            no_leader,
            pa.scalar(None, pa.float32()),
            pc.cast(pc.multiply(headway, FT), pa.float32()),
        )
        th = t["Time_Headway"].combine_chunks()
        time_headway = pc.if_else(
            pc.fill_null(pc.or_(no_leader, pc.greater_equal(th, NO_HEADWAY_S)), True),
            pa.scalar(None, pa.float32()),
            pc.cast(th, pa.float32()),
        )
        ts = pa.array(gt, pa.timestamp("ms", tz="UTC"))
        days = np.floor_divide(gt, 86_400_000).astype(np.int32)
        arrays = [
            vehicle_id,
            ts,
            ft("Local_X"),
            ft("Local_Y"),
            pa.array(lat),
            pa.array(lon),
            ft("v_Vel", single=True),
            ft("v_Acc", single=True),
            code("Lane_ID", pa.int32(), zero_is_null=False),
            pa.array(frame.astype(np.int32)),
            pa.array(vid.astype(np.int32)),
            pa.array(period, pa.timestamp("ms", tz="UTC")),
            code("Total_Frames", pa.int32(), zero_is_null=False),
            ft("v_length", single=True),
            ft("v_Width", single=True),
            code("v_Class", pa.int8()),
            preceding,
            code("Following", pa.int32()),
            space,
            time_headway,
            code("O_Zone", pa.int16()),
            code("D_Zone", pa.int16()),
            code("Int_ID", pa.int16()),
            code("Section_ID", pa.int16()),
            code("Direction", pa.int8()),
            code("Movement", pa.int8()),
            pa.repeat(pa.scalar(location, pa.string()), n),
            pa.array(days, pa.date32()),
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)

    # -- helpers -------------------------------------------------------------------------
    def _info(self, unit: WorkUnit) -> InputInfo:
        info = self._infos.get(unit.uri)
        if info is None or info.fingerprint != unit.fingerprint:
            info = InputInfo(unit.uri, unit.fingerprint, unit.size, unit.last_modified)
        return info

    def _check_header(self, info: InputInfo) -> None:
        """Read the header line once: the columns must be NGSIM's (any order, any case)."""
        source = self._inputs[info.uri]
        head = b""
        stream = source.read(0, None if not info.ranges else min(info.size or 0, 1 << 16), info)
        try:
            for chunk in stream:
                head += chunk
                if b"\n" in head or len(head) > 1 << 16:
                    break
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        line = head.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace")
        line = line.lstrip("\ufeff")
        got = [c.strip() for c in line.split(",")]
        canon = {n.lower(): n for n in CSV_NAMES}
        names = [canon.get(c.lower(), c) for c in got]
        missing = [n for n in CSV_NAMES if n not in names]
        if missing:
            raise ConversionError(
                f"{info.uri} is not an NGSIM trajectory CSV: its header lacks "
                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
            )
        self._headers[info.uri] = names


def _location_codes(col: pa.ChunkedArray) -> np.ndarray:
    """Index of each row's normalised location in LOCATIONS; -1 for a missing or unknown one.
    Normalises each chunk's distinct values only (dictionary-encoding text columns first)."""
    known = pa.array(LOCATIONS)
    out = []
    for chunk in col.chunks:
        if not pa.types.is_dictionary(chunk.type):
            chunk = pc.dictionary_encode(chunk)
        values = pc.index_in(_normalize_locations(chunk.dictionary), value_set=known)
        lookup = np.append(pc.fill_null(values, -1).to_numpy().astype(np.int8), np.int8(-1))
        indices = pc.fill_null(chunk.indices, len(lookup) - 1).to_numpy()
        out.append(lookup[indices])
    return np.concatenate(out) if out else np.empty(0, np.int8)


def _vehicle_ids(location: str, period: np.ndarray, vid: np.ndarray) -> pa.Array:
    """'<location>:<period start ms>:<Vehicle_ID>' per row, built once per distinct vehicle
    (a block holds a few hundred vehicles, not hundreds of thousands) and expanded by index."""
    if len(vid) == 0:
        return pa.array([], pa.string())
    lo = int(vid.min())
    if int(vid.max()) - lo >= 1 << 31:  # absurd ids: no packed key, join strings per row
        return pc.binary_join_element_wise(
            pa.repeat(pa.scalar(location, pa.string()), len(vid)),
            pa.array(period).cast(pa.string()),
            pa.array(vid).cast(pa.string()),
            ":",
        )
    periods = pc.dictionary_encode(pa.array(period))
    key = periods.indices.to_numpy().astype(np.int64) << 32 | (vid - lo)
    encoded = pc.dictionary_encode(pa.array(key))
    uniq = encoded.dictionary.to_numpy()
    pvals = periods.dictionary.to_numpy()
    names = [f"{location}:{pvals[k >> 32]}:{(k & 0xFFFFFFFF) + lo}" for k in uniq.tolist()]
    return pc.take(pa.array(names, pa.string()), encoded.indices)


def _quotes_closed(line: bytes) -> bool:
    """Whether every quoted field of one CSV line is closed within it (a field opened with a
    quote and not closed would take the next lines into it)."""
    try:
        for _ in csv.reader([line.decode("utf-8")], strict=True):
            pass
    except csv.Error:
        return False
    return True


def _empty_typed() -> pa.Table:
    return pa.table({n: pa.array([], t) for n, t in CSV_COLUMNS})


def _unit_lines(
    unit: WorkUnit, data: Iterator[bytes], block_bytes: int
) -> Iterator[tuple[int, bytes | memoryview]]:
    """Blocks of whole lines owned by the unit: lines starting in [start, end), after the
    header, each with the offset of its first byte in the input. `data` begins at byte
    max(start - 1, 0); it is closed once the last line is read.

    Chunks wait in a list and are joined once per block; blocks are memoryviews of that join,
    so each byte is copied once after the read (a growing bytearray sliced into blocks copied
    it twice, into freshly faulted pages each time)."""
    pos = max(unit.start - 1, 0)  # absolute offset of the first pending byte
    pending: list[bytes] = []
    size = 0
    aligned = False  # pending starts at the beginning of a line the unit owns
    try:
        for chunk in data:
            if not aligned:
                nl = chunk.find(b"\n")
                if nl < 0:
                    pos += len(chunk)
                    continue
                chunk = chunk[nl + 1 :]
                pos += nl + 1
                aligned = True
            rel_end = unit.end - pos  # lines starting before this offset are ours
            if rel_end <= 0:
                return
            pending.append(chunk)
            size += len(chunk)
            if size >= rel_end:
                buf = _joined(pending)
                pending = [buf]
                last = buf.find(b"\n", rel_end - 1)
                if last >= 0:
                    yield from _blocks(buf, last + 1, block_bytes, pos)
                    return
                continue  # the last line goes on past the range: read the tail
            if size >= block_bytes:
                buf = _joined(pending)
                view = memoryview(buf)
                done = 0
                while size - done >= block_bytes:
                    cut = buf.rfind(b"\n", done, done + block_bytes)
                    if cut < 0:
                        break  # a line longer than a block: it grows until its end
                    yield pos + done, view[done : cut + 1]
                    done = cut + 1
                pos += done
                rest = buf[done:] if done else buf
                pending, size = ([rest] if rest else []), len(rest)
        if aligned and pending:  # end of input: the last line may lack its newline
            buf = _joined(pending)
            yield from _blocks(buf, len(buf), block_bytes, pos)
    finally:
        close = getattr(data, "close", None)
        if close is not None:
            close()


def _joined(parts: list[bytes]) -> bytes:
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _blocks(
    data: bytes, stop: int, block_bytes: int, offset: int
) -> Iterator[tuple[int, memoryview]]:
    """data[:stop] (whole lines) as memoryviews of about block_bytes, cut at line ends, each
    with where it starts in the input (data starts at offset)."""
    view = memoryview(data)
    start = 0
    while stop - start > block_bytes:
        cut = data.rfind(b"\n", start, start + block_bytes)
        if cut < 0:
            break
        yield offset + start, view[start : cut + 1]
        start = cut + 1
    if start < stop:
        yield offset + start, view[start:stop]
