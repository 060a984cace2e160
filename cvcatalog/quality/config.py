"""The `quality:` section of a config: which rules are counted and which cleaning runs.

Kept apart from the SQL (cvcatalog.quality.rules) so that configuration, which everything
imports, stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cvcatalog.configfile import format_validation_error, load_yaml
from cvcatalog.exceptions import ConfigError


# -- configuration ----------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class Bounds(_Strict):
    """A latitude/longitude box (degrees, inclusive)."""

    lat_min: float = Field(ge=-90, le=90)
    lat_max: float = Field(ge=-90, le=90)
    lon_min: float = Field(ge=-180, le=180)
    lon_max: float = Field(ge=-180, le=180)

    @model_validator(mode="after")
    def _ordered(self) -> Bounds:
        if self.lat_min > self.lat_max:
            raise ValueError(f"lat_min ({self.lat_min}) is above lat_max ({self.lat_max})")
        if self.lon_min > self.lon_max:
            raise ValueError(f"lon_min ({self.lon_min}) is above lon_max ({self.lon_max})")
        return self

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.lat_min, self.lat_max, self.lon_min, self.lon_max)


class Rules(_Strict):
    """What is counted on every partition. A limit of null switches that rule off."""

    bounds: Bounds | Literal["auto"] | None = Field(
        "auto", description="a box, 'auto' (the source's default box) or null (off)"
    )
    max_speed_mps: float | None = Field(70.0, gt=0, description="252 km/h; null = off")
    max_abs_accel_mps2: float | None = Field(15.0, gt=0, description="~1.5 g; null = off")
    derived_from_positions: bool = Field(
        False, description="also check speed and acceleration derived from consecutive positions"
    )
    ordering: bool = True
    duplicates: bool = True
    max_jump_speed_mps: float | None = Field(
        100.0,
        gt=0,
        description="position jumps: a point whose steps in and out both imply more; null = off",
    )
    speed_spikes: bool = Field(
        True,
        description="a reported speed that jumps in and back out faster than max_abs_accel_mps2",
    )
    near_duplicate_s: float | None = Field(
        0.02, gt=0, description="near duplicates: a point this close in time; null = off"
    )
    near_duplicate_m: float = Field(1.0, ge=0, description="... and this close in position")
    frozen_min_speed_mps: float | None = Field(
        2.0,
        gt=0,
        description="frozen positions: the position does not move while the reported speed is "
        "at least this; null = off",
    )
    frozen_max_step_m: float = Field(0.01, ge=0, description="'does not move': a step this small")

    @field_validator("bounds", mode="before")
    @classmethod
    def _bounds(cls, v: Any) -> Any:
        """One clear message instead of pydantic's per-member union errors."""
        if v is None or isinstance(v, Bounds):
            return v
        if isinstance(v, str) and v.strip().lower() == "auto":
            return "auto"
        if isinstance(v, dict):
            try:
                return Bounds.model_validate(v)
            except ValidationError as e:
                first = e.errors()[0]
                loc = ".".join(str(x) for x in first["loc"])
                msg = first["msg"].removeprefix("Value error, ")
                raise ValueError(f"{loc}: {msg}" if loc else msg) from None
        raise ValueError(
            "bounds must be 'auto', null (off) or a box with lat_min, lat_max, lon_min, lon_max; "
            f"got {v!r}"
        )


class GapDetection(_Strict):
    enabled: bool = False
    max_gap_s: float | Literal["auto"] = Field(
        "auto", description="'auto': 5 s for BSMs, 1 s for NGSIM (0.1 s frames)"
    )

    @field_validator("max_gap_s")
    @classmethod
    def _positive(cls, v: float | str) -> float | str:
        if not isinstance(v, str) and v <= 0:
            raise ValueError(f"max_gap_s must be a positive number of seconds, got {v}")
        return v


class Smoothing(_Strict):
    enabled: bool = False
    method: Literal["savgol"] = "savgol"
    window: int = Field(5, description="odd number of samples, >= 3")
    order: int = Field(2, ge=0, description="polynomial order, smaller than window")
    columns: list[str] | None = Field(None, description="default: the position columns")

    @field_validator("window")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v < 3 or v % 2 == 0:
            raise ValueError(f"window must be an odd number of samples >= 3, got {v}")
        if v > 101:
            raise ValueError(f"window must be at most 101 samples, got {v}")
        return v

    @model_validator(mode="after")
    def _order(self) -> Smoothing:
        if self.order >= self.window:
            raise ValueError(f"order ({self.order}) must be smaller than window ({self.window})")
        if self.columns is not None and not self.columns:
            raise ValueError("columns must name at least one column (or be left out)")
        return self


class Impute(_Strict):
    """Linear interpolation of short runs of NULL values inside a gap-free segment."""

    enabled: bool = False
    max_gap_samples: int | None = Field(5, ge=1, description="missing samples in a row; null = any")
    max_gap_s: float | None = Field(
        2.0, gt=0, description="seconds between the known values around the hole; null = any"
    )
    columns: list[str] | None = Field(
        None, description="default: the mapping's position, speed and heading columns"
    )

    @model_validator(mode="after")
    def _limited(self) -> Impute:
        if self.max_gap_samples is None and self.max_gap_s is None:
            raise ValueError(
                "give max_gap_samples or max_gap_s (or both): imputation needs a limit"
            )
        if self.columns is not None and not self.columns:
            raise ValueError("columns must name at least one column (or be left out)")
        return self


class Cleaning(_Strict):
    remove_duplicates: bool = False
    remove_outliers: bool = False
    detect_gaps: GapDetection = GapDetection()
    smoothing: Smoothing = Smoothing()


class QualityConfig(_Strict):
    """The `quality:` section of a data-source config (or a file of its own)."""

    rules: Rules = Rules()
    cleaning: Cleaning = Cleaning()
    impute: Impute = Impute()

    @model_validator(mode="after")
    def _outlier_rules(self) -> QualityConfig:
        r = self.rules
        if self.cleaning.remove_outliers and (
            r.bounds is None and r.max_speed_mps is None and r.max_abs_accel_mps2 is None
        ):
            raise ValueError(
                "cleaning.remove_outliers needs at least one outlier rule "
                "(rules.bounds, rules.max_speed_mps or rules.max_abs_accel_mps2)"
            )
        return self

    @property
    def trajectory_only(self) -> list[str]:
        """Enabled operations that only make sense on trajectories."""
        c = self.cleaning
        return [
            name
            for name, on in (
                ("cleaning.remove_outliers", c.remove_outliers),
                ("cleaning.detect_gaps", c.detect_gaps.enabled),
                ("cleaning.smoothing", c.smoothing.enabled),
                ("impute", self.impute.enabled),
            )
            if on
        ]

    @classmethod
    def parse(cls, data: dict[str, Any] | None, origin: str = "quality") -> QualityConfig:
        """Validate a mapping; errors become one ConfigError line with the field path."""
        try:
            return cls.model_validate(data or {})
        except ValidationError as e:
            raise ConfigError(format_validation_error(e, origin)) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> QualityConfig:
        """A YAML file holding either the section itself or a data-source config with one."""
        data = load_yaml(path)
        if "quality" in data:
            data = data["quality"] or {}
        return cls.parse(data, str(path))


#: the column detect_gaps adds to a cleaned partition's files
SEGMENT_COLUMN = "segment"
#: the column imputation adds: true where a value of the row was interpolated
IMPUTED_COLUMN = "imputed"
#: (name, DuckDB type) of the columns the quality step may add to a table's files: optional
#: columns of the lake's tables, and carried unchanged through the socrata naming
QUALITY_COLUMNS: tuple[tuple[str, str], ...] = (
    (SEGMENT_COLUMN, "INTEGER"),
    (IMPUTED_COLUMN, "BOOLEAN"),
)
