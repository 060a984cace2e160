"""Experiments: a named, cleaned slice of the catalog handed to ML pipelines as a lazy Dask frame.

Existing pipelines load data through a gatherer with `gather_data()` / `get_gathered_data()`
and expect data.transportation.gov column names; `CatalogGatherer` speaks that interface.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cvcatalog import spatial
from cvcatalog.catalog import Catalog, RemoteCatalog, to_socrata
from cvcatalog.config import (
    DateRange,
    MemoryConfig,
    format_validation_error,
    load_yaml,
    type_of,
)
from cvcatalog.datasets import DATASETS
from cvcatalog.exceptions import ConfigError
from cvcatalog.quality.cleaning import impute_pandas
from cvcatalog.quality.config import IMPUTED_COLUMN, Impute, QualityConfig
from cvcatalog.quality.mapping import TrajectoryMapping, mapping_for
from cvcatalog.read.splits import check_fractions
from cvcatalog.schemas import SCHEMAS
from cvcatalog.sources.bucket import VALID_TYPES

if TYPE_CHECKING:
    import dask.dataframe as dd


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExperimentInfo(_Strict):
    name: str
    description: str = ""


class WithinSpec(_Strict):
    lat: float
    lon: float
    radius_m: float


class BBoxSpec(_Strict):
    lat_min: float
    lon_min: float
    lat_max: float
    lon_max: float


class CorridorSpec(_Strict):
    #: a GeoJSON LineString file (relative: from the experiment file's directory)
    geojson: Path | None = None
    #: or the polyline's [lat, lon] points
    points: list[tuple[float, float]] | None = None
    buffer_m: float

    @model_validator(mode="after")
    def _one_line(self) -> CorridorSpec:
        if (self.geojson is None) == (self.points is None):
            raise ValueError("give corridor.geojson (a file) or corridor.points, exactly one")
        return self


class SpatialSpec(_Strict):
    """data.spatial: exactly one of within, bbox, corridor (docs/spatial.md)."""

    within: WithinSpec | None = None
    bbox: BBoxSpec | None = None
    corridor: CorridorSpec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SpatialSpec:
        given = [k for k in ("within", "bbox", "corridor") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of within, bbox, corridor"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.corridor is None or self.corridor.points is not None:
            try:  # ranges, poles, antimeridian: checked now (a GeoJSON file when it is read)
                self.filter()
            except ConfigError as e:
                raise ValueError(str(e)) from None
        return self

    def filter(self, base: Path | None = None) -> spatial.SpatialFilter:
        spec = self.model_dump(exclude_none=True, mode="python")
        return spatial.parse_spatial(spec, base)


class DataSlice(_Strict):
    source: str
    #: not needed for a source of one type (nycdot: EVENT; ngsim: TRAJECTORY)
    message_type: str
    date_range: DateRange
    max_rows: int | None = Field(None, gt=0)
    #: read the catalog as of this snapshot (`cvcatalog snapshots`), pinned under the
    #: experiment's name when first gathered
    snapshot: int | None = Field(None, ge=0)
    #: pin the snapshot current when the experiment is first gathered, and read it ever after
    pin: bool = False
    #: only rows inside an area: within, bbox or corridor (docs/spatial.md)
    spatial: SpatialSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _only_type(cls, data: Any) -> Any:
        """The source's only type where none is given (as `ingest --source nycdot`)."""
        if not isinstance(data, dict) or data.get("message_type") is not None:
            return data
        source = data.get("source")
        if not isinstance(source, str):  # the field's own error
            return data
        src = source.strip().lower()
        ds = DATASETS.get(src)
        if ds is not None:
            return {**data, "message_type": ds.message_type}
        if src in VALID_TYPES:
            try:
                return {**data, "message_type": type_of(src, None)}
            except ConfigError:
                raise ValueError(
                    f"give data.message_type for {src}: {', '.join(VALID_TYPES[src])}"
                ) from None
        return data

    @model_validator(mode="after")
    def _one_version(self) -> DataSlice:
        if self.pin and self.snapshot is not None:
            raise ValueError("give data.snapshot or data.pin, not both")
        return self


class CoordinateBounds(_Strict):
    lat_min: float = Field(ge=-90, le=90)
    lat_max: float = Field(ge=-90, le=90)
    lon_min: float = Field(ge=-180, le=180)
    lon_max: float = Field(ge=-180, le=180)

    @model_validator(mode="after")
    def _ordered(self) -> CoordinateBounds:
        if self.lat_min > self.lat_max or self.lon_min > self.lon_max:
            raise ValueError("coordinate_bounds minimums must not exceed maximums")
        return self


class Cleaning(_Strict):
    remove_duplicates: bool = False
    validate_coordinates: bool = False
    coordinate_bounds: CoordinateBounds | None = None
    #: fill short NULL runs of position, speed and heading (cvcatalog.quality.cleaning.impute)
    impute: Impute | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Cleaning:
        if self.validate_coordinates and self.coordinate_bounds is None:
            raise ValueError("validate_coordinates needs coordinate_bounds")
        return self


class DaskProfile(_Strict):
    n_workers: int = Field(2, ge=1)
    threads_per_worker: int = Field(1, ge=1)
    memory_limit: str = "4GB"


class Profile(_Strict):
    memory: MemoryConfig = MemoryConfig()
    dask: DaskProfile = DaskProfile()


class Processing(_Strict):
    engine: Literal["dask"] = "dask"
    profile: Path | None = None
    cleaning: Cleaning = Cleaning()


class Output(_Strict):
    results_dir: Path | None = None
    column_names: Literal["socrata", "canonical"] = "socrata"


class SplitConfig(_Strict):
    """`split:`: whole vehicle ids (or trips) per split; the gatherer hands back `use`."""

    by: Literal["vehicle", "trip"] = "vehicle"
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    use: Literal["train", "validation", "test"] = "train"

    @field_validator("fractions", mode="before")
    @classmethod
    def _fractions(cls, value: Any) -> tuple[float, float, float]:
        """In Catalog.split's and --fractions' words (a list of two was "fractions.2: Field
        required")."""
        try:
            return check_fractions(value)
        except ConfigError as e:
            raise ValueError(str(e)) from None


class ExperimentConfig(_Strict):
    experiment: ExperimentInfo
    data: DataSlice
    processing: Processing = Processing()
    output: Output = Output()
    split: SplitConfig | None = None

    @classmethod
    def from_yaml(cls, path: str | Path) -> ExperimentConfig:
        try:
            return cls.model_validate(load_yaml(path))
        except ValidationError as e:
            raise ConfigError(format_validation_error(e, str(path))) from None

    def profile(self, base: Path | None = None) -> Profile:
        """The resource profile; relative paths resolve from the working directory, then base."""
        p = self.processing.profile
        if p is None:
            return Profile()
        if not p.is_absolute() and not p.exists() and base is not None:
            p = base / p
        try:
            return Profile.model_validate(load_yaml(p))
        except ValidationError as e:
            raise ConfigError(format_validation_error(e, str(p))) from None


#: Columns that identify a duplicate BSM (same vehicle, same instant, same message).
DUPLICATE_KEY = ["vehicle_id", "generated_at", "msg_cnt", "sec_mark"]
#: ... and a duplicate point of a dataset's trajectory (NGSIM: one row per vehicle and frame).
DATASET_DUPLICATE_KEY = ["vehicle_id", "timestamp"]


class Experiment:
    """A loaded experiment bound to a catalog."""

    def __init__(
        self, config: ExperimentConfig, catalog: Catalog | None = None, base: Path | None = None
    ) -> None:
        self.config = config
        self.catalog = catalog or Catalog()
        self.base = base

    @classmethod
    def load(cls, path: str | Path, catalog: Catalog | None = None) -> Experiment:
        p = Path(path)
        return cls(ExperimentConfig.from_yaml(p), catalog, base=p.parent)

    @property
    def name(self) -> str:
        return self.config.experiment.name

    def snapshot(self) -> int | None:
        """The snapshot the experiment reads, pinned under its name on the first gathering
        (`cvcatalog experiments show|unpin`): data.snapshot, or with data.pin the snapshot
        current then; None (neither): the current catalog. A published catalog, or one this
        user cannot write, is read-only: there the snapshot a pin its owner made under this
        name holds is read, else data.snapshot, else (data.pin) the current one, without a
        pin (its snapshots are its publisher's, or its owner's)."""
        d = self.config.data
        if d.snapshot is None and not d.pin:
            return None
        if isinstance(self.catalog, RemoteCatalog) or not self.catalog.writable():
            # no write this user cannot do (pin: true there was the catalog's read-only error)
            held = self.catalog.held_pin(self.name, d.snapshot)
            if held is not None:
                return held.snapshot_id
            return d.snapshot if d.snapshot is not None else self.catalog.current_snapshot()
        pin = self.catalog.pin(self.name, d.source, d.message_type, snapshot=d.snapshot)
        return pin.snapshot_id

    def frame(self) -> dd.DataFrame:
        """The lazy, partition-pruned and cleaned Dask frame of this experiment's slice."""
        d = self.config.data
        start, end = d.date_range.resolve()
        frame = self.catalog.to_dask(
            d.source,
            d.message_type,
            start,
            end,
            timezone=d.date_range.timezone,
            snapshot=self.snapshot(),
            **spatial.as_kwargs(d.spatial.filter(self.base) if d.spatial else None),
        ) if self.config.split is None else self.split_frame(start, end)  # fmt: skip
        c = self.config.processing.cleaning
        if c.validate_coordinates and c.coordinate_bounds is not None:
            b = c.coordinate_bounds
            frame = frame[
                frame.latitude.between(b.lat_min, b.lat_max)
                & frame.longitude.between(b.lon_min, b.lon_max)
            ]
        dataset = _is_dataset(d.source)
        if c.remove_duplicates:
            key = DATASET_DUPLICATE_KEY if dataset else DUPLICATE_KEY
            frame = frame.drop_duplicates(subset=[k for k in key if k in frame.columns])
        if c.impute is not None:
            frame = _imputed(frame, d.source, d.message_type, c.impute)
        if d.max_rows is not None:
            frame = frame.head(d.max_rows, npartitions=-1, compute=False)
        # datasets (NGSIM) have no data.transportation.gov names: their canonical ones are kept
        if self.config.output.column_names == "socrata" and not dataset:
            frame = to_socrata(frame, SCHEMAS[(frame_source(d.source), d.message_type.upper())])
        return frame

    def split_frame(self, start: Any, end: Any) -> dd.DataFrame:
        """The `split.use` frame of the slice split by `split.by` (cvcatalog/read/splits.py);
        cleaning and max_rows then apply to it."""
        d, sp = self.config.data, self.config.split
        assert sp is not None
        frames = self.catalog.split(
            d.source, d.message_type, start, end, by=sp.by, fractions=sp.fractions,
            seed=sp.seed, timezone=d.date_range.timezone, snapshot=self.snapshot(),
            **spatial.as_kwargs(d.spatial.filter(self.base) if d.spatial else None),
        )  # fmt: skip
        return getattr(frames, sp.use)

    def client(self) -> Any:
        """A dask.distributed LocalCluster client sized by the experiment's profile."""
        from dask.distributed import Client, LocalCluster

        prof = self.config.profile(self.base).dask
        cluster = LocalCluster(
            n_workers=prof.n_workers,
            threads_per_worker=prof.threads_per_worker,
            memory_limit=prof.memory_limit,
        )
        return Client(cluster)


def _imputed(frame: dd.DataFrame, source: str, message_type: str, section: Impute) -> dd.DataFrame:
    """Imputation per partition (a day): a trajectory cut by a partition boundary is treated
    as a gap there."""
    mapping = mapping_for(source, message_type)
    if not isinstance(mapping, TrajectoryMapping):
        raise ConfigError(
            f"processing.cleaning.impute: {source}/{message_type} records are not trajectories"
        )
    cfg = QualityConfig(impute=section.model_copy(update={"enabled": True}))
    meta = frame._meta.assign(**{IMPUTED_COLUMN: frame._meta.index.to_series().astype(bool)})
    return frame.map_partitions(impute_pandas, mapping, cfg, meta=meta)


def frame_source(source: str) -> str:
    return source.strip().lower()


def _is_dataset(source: str) -> bool:
    return frame_source(source) in DATASETS


class CatalogGatherer:
    """The gatherer interface existing loaders call: gather_data(), then get_gathered_data()."""

    def __init__(self, experiment: Experiment | str | Path, catalog: Catalog | None = None) -> None:
        self.experiment = (
            experiment
            if isinstance(experiment, Experiment)
            else Experiment.load(experiment, catalog)
        )
        self._data: dd.DataFrame | None = None

    def gather_data(self) -> CatalogGatherer:
        self._data = self.experiment.frame()
        return self

    def get_gathered_data(self) -> dd.DataFrame:
        if self._data is None:
            self.gather_data()
        assert self._data is not None
        return self._data


def load_experiment(path: str | Path, catalog: Catalog | None = None) -> Experiment:
    return Experiment.load(path, catalog)
