"""Sources: one module per source of rows, each implementing the pipeline's contract
(:mod:`cvcatalog.pipeline.contract`).

* :mod:`cvcatalog.sources.bucket` -- what the CV Pilot bucket publishes and where (valid
  pairs, key layout, folder clocks, local day -> folder hours -> partitions); re-exported here
  so ``from cvcatalog.sources import PartitionKey`` works;
* :mod:`cvcatalog.sources.cvpilot` -- CV Pilot days (one unit = one folder day);
* :mod:`cvcatalog.sources.ngsim` -- NGSIM-style trajectory files (one unit = one byte range).

Only the light bucket layout is imported here, so importing the package pulls in no engine.
"""

from __future__ import annotations

from cvcatalog.sources.bucket import (
    BINNED_SOURCES,
    BUCKET,
    FOLDER_TIMEZONE,
    NDJSON_SINCE,
    TIME_BINS,
    VALID_TYPES,
    WEEKDAY_BINS,
    PartitionKey,
    folder_hours,
    local_days,
    partitions_for,
    utc_window,
)

__all__ = [
    "BINNED_SOURCES",
    "BUCKET",
    "FOLDER_TIMEZONE",
    "NDJSON_SINCE",
    "TIME_BINS",
    "VALID_TYPES",
    "WEEKDAY_BINS",
    "PartitionKey",
    "folder_hours",
    "local_days",
    "partitions_for",
    "utc_window",
]
