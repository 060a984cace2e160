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
                records; the first in source order is the original, the others are counted;
  * jumps, speed_spikes  a point whose step (position, reported speed) in from its predecessor
                and out to its successor are both impossible (max_jump_speed_mps,
                max_abs_accel_mps2 times the time step);
  * near_duplicates  a point within near_duplicate_s and near_duplicate_m of its predecessor;
  * frozen      a point that has not moved from its predecessor while reporting a speed.
bounds, speed, accel and the derived rules make a row an *outlier*; jumps, speed spikes, near
duplicates and frozen positions are counted, not removed.

Cleaning (each off by default): remove_duplicates, remove_outliers, detect_gaps (a `segment`
number per trajectory that starts again after a gap longer than max_gap_s; never deletes),
impute (short NULL runs filled linearly in time within a segment, an `imputed` flag) and
Savitzky-Golay smoothing of position columns within gap-free segments. cvcatalog.quality.cleaning
runs the same plan over an in-memory table (`impute`).
"""
