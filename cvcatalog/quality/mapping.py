"""Which columns of each (source, message type) play which part in the quality rules."""

from __future__ import annotations

from dataclasses import dataclass

from cvcatalog.exceptions import ConfigError
from cvcatalog.quality.config import QualityConfig
from cvcatalog.schemas import SCHEMAS
from cvcatalog.sources.bucket import VALID_TYPES

# -- column mappings --------------------------------------------------------------------------
#: lat_min, lat_max, lon_min, lon_max. WYDOT: the I-80 corridor across Wyoming (41.0..41.8 N,
#: 104.05..111.05 W) with ~50 km of margin. THEA: Tampa (the REL and downtown are near 27.95 N,
#: 82.45 W) and Hillsborough County. NGSIM: a loose box over the contiguous United States (the
#: four sites are in California and Georgia; positions come from State Plane conversions).
DEFAULT_BOUNDS: dict[str, tuple[float, float, float, float]] = {
    "wydot": (40.5, 42.5, -111.5, -103.5),
    "wydot_backup": (40.5, 42.5, -111.5, -103.5),
    "thea": (27.5, 28.3, -82.9, -82.0),
    "ngsim": (24.0, 50.0, -125.0, -66.0),
}

#: Columns that say where a record came from, not what it says; ignored by exact duplicates.
BOOKKEEPING_COLUMNS: tuple[str, ...] = ("source_key", "invalid_reason", "warnings")


@dataclass(frozen=True)
class TrajectoryMapping:
    """Which columns of a relation make a trajectory point."""

    id: str
    time: str
    latitude: str | None = None
    longitude: str | None = None
    speed: str | None = None
    accel: str | None = None
    x: str | None = None  # metres, e.g. NGSIM local x/y
    y: str | None = None
    heading: str | None = None  # degrees clockwise from north (imputed on the circle)
    #: columns that order records as they were produced, before the row order of the files
    #: (CV Pilot BSM: source_key, the S3 object, whose keys sort by arrival, then received_at,
    #: the ODE's receive time, which the records of an object are appended in: a day's files
    #: are sorted in the spatial row order, not in the objects' line order). Absent columns
    #: are skipped.
    order: tuple[str, ...] = ()
    default_bounds: tuple[float, float, float, float] | None = None
    default_max_gap_s: float = 5.0

    @property
    def position_columns(self) -> list[str]:
        """What smoothing smooths by default: x/y (metres) and latitude/longitude."""
        return [c for c in (self.x, self.y, self.latitude, self.longitude) if c is not None]


@dataclass(frozen=True)
class RecordMapping:
    """Records that are not trajectory points: only exact duplicates are a rule."""

    time: str | None = None
    ignore: tuple[str, ...] = BOOKKEEPING_COLUMNS
    order: tuple[str, ...] = ("source_key",)  # as TrajectoryMapping.order


Mapping = TrajectoryMapping | RecordMapping


#: source -> message types the quality module knows beyond the bucket's (built elsewhere).
EXTRA_SOURCES: dict[str, tuple[str, ...]] = {"ngsim": ("TRAJECTORY",)}
_EXTRA_VIEWS = {("ngsim", "TRAJECTORY"): "ngsim_trajectories"}


def quality_sources() -> dict[str, tuple[str, ...]]:
    """Every source the quality rules and report know, with its message types."""
    out = {s: tuple(t) for s, t in VALID_TYPES.items()}
    for s, types in EXTRA_SOURCES.items():
        out[s] = tuple(dict.fromkeys([*out.get(s, ()), *types]))
    return out


def mapping_for(source: str, message_type: str) -> Mapping:
    """The column mapping of one (source, message type)."""
    src, mt = source.strip().lower(), message_type.strip().upper()
    if mt == "BSM" and src in ("wydot", "wydot_backup", "thea"):
        # the BSM columns every BSM source shares (schemas.base.BSM_SHARED_COLUMNS)
        return TrajectoryMapping(
            id="vehicle_id",
            time="generated_at",
            latitude="latitude",
            longitude="longitude",
            speed="speed_mps",
            accel="accel_long_mps2",
            heading="heading_deg",
            order=("source_key", "received_at"),
            default_bounds=DEFAULT_BOUNDS[src],
        )
    if (src, mt) == ("ngsim", "TRAJECTORY"):
        return TrajectoryMapping(
            id="vehicle_id",
            time="timestamp",
            latitude="latitude",
            longitude="longitude",
            speed="speed_mps",
            accel="accel_mps2",
            x="x_m",
            y="y_m",
            default_bounds=DEFAULT_BOUNDS["ngsim"],
            default_max_gap_s=1.0,
        )
    if (src, mt) == ("nycdot", "EVENT"):
        return RecordMapping(time=None)  # events carry only time bins
    if mt in quality_sources().get(src, ()):
        return RecordMapping(time="generated_at")
    raise ConfigError(f"no quality rules for {source}/{message_type}")


def view_for(source: str, message_type: str) -> str:
    """The canonical view of one (source, message type)."""
    schema = SCHEMAS.get((source, message_type))
    if schema is not None:
        return schema.view_name
    if (source, message_type) in _EXTRA_VIEWS:
        return _EXTRA_VIEWS[(source, message_type)]
    return f"{source}_{message_type.lower()}"


#: the DuckDB types of a measurement column smoothing and imputation may change
NUMERIC_TYPES = (
    "DOUBLE",
    "FLOAT",
    "REAL",
    "DECIMAL",
    "INTEGER",
    "BIGINT",
    "SMALLINT",
    "TINYINT",
    "HUGEINT",
)


def check_applicable(cfg: QualityConfig, source: str, message_type: str) -> None:
    """Trajectory-only cleaning on records that are not trajectories is a config mistake; so
    are smoothing or imputation columns a CV Pilot table does not have as measurements, told
    with the config's other errors, before an ingest downloads anything (the step names
    them again over the data, NGSIM's included)."""
    mapping = mapping_for(source, message_type)
    if isinstance(mapping, RecordMapping):
        if cfg.trajectory_only:
            raise ValueError(
                f"quality.{', quality.'.join(cfg.trajectory_only)} applies to trajectories "
                f"(BSM, TRAJECTORY) only; {source}/{message_type} records are not trajectory "
                "points"
            )
        return
    schema = SCHEMAS.get((source, message_type))
    if schema is None:
        return
    types = dict(schema.view_columns)
    sm, imp = cfg.cleaning.smoothing, cfg.impute
    for what, columns in (
        ("cleaning.smoothing.columns", sm.columns if sm.enabled else None),
        ("impute.columns", imp.columns if imp.enabled else None),
    ):
        for col in columns or ():
            try:
                check_measure(what, col, types, mapping, schema.view_name)
            except ConfigError as e:  # (a pydantic validator's error is a ValueError)
                raise ValueError(str(e)) from None


def check_measure(
    what: str, col: str, types: dict[str, str], mapping: TrajectoryMapping, holder: str
) -> None:
    """A column smoothing or imputation may change (what: its setting, e.g. impute.columns):
    one of holder's (a table, "the data"), numeric, and neither the trajectory id nor time."""
    typ = types.get(col)
    if typ is None:
        raise ConfigError(f"quality.{what}: {holder} has no column {col!r}")
    if col in (mapping.id, mapping.time) or not typ.upper().startswith(NUMERIC_TYPES):
        raise ConfigError(f"quality.{what}: {col!r} ({typ}) is not a numeric measurement column")
