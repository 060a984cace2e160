"""Datasets that are not in the CV Pilot bucket (NGSIM, ...), loaded through one contract.

`DATASETS` maps a dataset name (the `--source` of `cvcatalog ingest`) to its class; adding a
dataset is adding one module that implements :class:`cvcatalog.datasets.base.Dataset` and one
line here.
"""

from __future__ import annotations

from cvcatalog.datasets.base import Dataset
from cvcatalog.datasets.ngsim import NgsimDataset

DATASETS: dict[str, type[Dataset]] = {NgsimDataset.name: NgsimDataset}
