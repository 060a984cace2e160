"""Data quality: rules counted on every partition, cleaning operations run when configured.

Everything is DuckDB SQL generated over a relation (a view, a table, or `read_parquet` of one
partition's files), so rules and cleaning run out-of-core on partitions of any size; Python
never holds the rows. A column mapping says which columns play which part (trajectory id,
time, position, speed, acceleration), so the same rules serve WYDOT and THEA BSMs and NGSIM
trajectories; for records that are not trajectories (TIM, SPAT, EVENT) only the duplicate rule
(and the report's coverage) apply.

Rules (always counted):
  * bounds      latitude/longitude outside a box (default per source, see DEFAULT_BOUNDS);
  * speed       reported speed < 0 or above max_speed_mps;
  * accel       |reported longitudinal acceleration| above max_abs_accel_mps2;
  * derived_speed, derived_accel (opt-in) the same limits on speed and acceleration derived
                from consecutive positions;
  * ordering    within a trajectory, in source order, a record whose time is earlier than the
                previous record's;
  * duplicates  same trajectory id and same time (trajectories), or the same values in every
                column except file bookkeeping (source_key, invalid_reason, warnings) for other
                records; the first in source order is the original, the others are counted.
bounds, speed, accel and the derived rules make a row an *outlier*.

Cleaning (each off by default): remove_duplicates, remove_outliers, detect_gaps (a `segment`
number per trajectory that starts again after a gap longer than max_gap_s; never deletes) and
Savitzky-Golay smoothing of position columns within gap-free segments.
"""
