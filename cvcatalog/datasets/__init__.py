"""Datasets that are not in the CV Pilot bucket (NGSIM, ...), loaded through one contract.

`DATASETS` maps a dataset name (the `--source` of `cvcatalog ingest`) to its class; adding a
dataset is adding one module that implements :class:`cvcatalog.datasets.base.Dataset` and one
line here. :func:`source_filter` checks a `--source`/`--type` against every source there is:
the CV Pilot bucket's and these.
"""

from __future__ import annotations

from cvcatalog.config import check_source_type
from cvcatalog.datasets.base import Dataset
from cvcatalog.datasets.ngsim import NgsimDataset
from cvcatalog.exceptions import ConfigError
from cvcatalog.sources.bucket import VALID_TYPES

DATASETS: dict[str, type[Dataset]] = {NgsimDataset.name: NgsimDataset}


def source_filter(
    source: str | None,
    message_type: str | None = None,
    *,
    required: bool = False,
    bucket_only: bool = False,
) -> tuple[str | None, str | None]:
    """A source and type as every command takes them (status, clear, compact, runs,
    snapshots, export, ...), normalised and checked: a CV Pilot source and a type it publishes
    (config.check_source_type), a dataset (ngsim) and its one type, or a type alone that some
    source has. None is "all" (or "not given"; required: a call that reads one source, where
    None is a mistake); anything unknown, or not a str, is one ConfigError line. bucket_only:
    a call about the CV Pilot bucket (discover), where a dataset is not a source."""
    known = [*VALID_TYPES, *([] if bucket_only else DATASETS)]
    if source is None and required:
        raise ConfigError(f"give a source: one of {', '.join(known)}")
    for what, value, example in (("source", source, "wydot"), ("message type", message_type, "BSM")):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"the {what} is a name (a str), e.g. {example!r}, got {value!r}")
    src = source.strip().lower() if source is not None else None
    mt = message_type.strip().upper() if message_type is not None else None
    ds = DATASETS.get(src) if src is not None and not bucket_only else None
    if src is not None and ds is None and src not in VALID_TYPES:
        raise ConfigError(f"unknown source {source!r}; expected one of {', '.join(known)}")
    if ds is not None:
        if mt is not None and mt != ds.message_type:
            raise ConfigError(
                f"source {ds.name!r} does not publish {message_type!r}; "
                f"it publishes {ds.message_type}"
            )
        return ds.name, mt
    if src is not None:
        if mt is not None:
            try:
                return check_source_type(src, mt)
            except ValueError as e:
                raise ConfigError(str(e)) from None
        return src, None
    if mt is not None:
        types = dict.fromkeys(
            [t for ts in VALID_TYPES.values() for t in ts]
            + [d.message_type for d in DATASETS.values()]
        )
        if mt not in types:
            raise ConfigError(
                f"unknown message type {message_type!r}; expected one of {', '.join(types)}"
            )
    return None, mt
