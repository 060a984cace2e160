"""The CV Pilot bucket seen through the dataset contract (cvcatalog.datasets.base).

Inputs are the S3 objects of a (source, message type, date range), one unit per object
(fingerprint: its ETag), fetched with one GET and parsed by the same canonical DuckDB SQL the
day-batched ingest uses (cvcatalog.transform.convert_partition), so both paths produce the same
rows and the same quarantine reasons.

`cvcatalog ingest --source wydot|thea|...` keeps the day-batched Ingestor (cvcatalog.ingest):
one DuckDB scan per day is what brings it to 0.93x DuckDB's own speed, while one scan per
object costs a DuckDB session each. This adapter is what the generic driver
(cvcatalog.datasets.driver) and a third dataset build on: `run_dataset(CvPilotObjects(...))`
loads the same bucket object by object, with per-object checkpoints and change detection.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from cvcatalog.config import DownloadConfig, ValidationConfig
from cvcatalog.datasets.base import Dataset, InputInfo, Rejects, TransientFetchError, WorkUnit
from cvcatalog.io.download import S3Fetcher
from cvcatalog.io.s3 import make_client
from cvcatalog.schemas import SCHEMAS, MessageSchema
from cvcatalog.sources import BUCKET, PartitionKey, partitions_for
from cvcatalog.transform import RawFile, convert_partition, reason_category

#: partition columns of the adapter's rows (the CV lake's own hive layout below source=)
PARTITION_COLUMNS = ("message_type", "date")


def canonical_arrow_schema(schema: MessageSchema) -> pa.Schema:
    """The Parquet schema the canonical SQL writes, from an empty select (no data needed)."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        return con.sql(schema.empty_select_sql()).arrow().read_all().schema
    finally:
        con.close()


def cvpilot_dataset(source: str, message_type: str) -> type[CvPilotObjects]:
    """A Dataset class for one (source, message type): the contract's schema, name and view
    are class attributes, so each pair is its own class."""
    schema = SCHEMAS[(source, message_type)]
    fields = list(canonical_arrow_schema(schema))
    fields += [pa.field("message_type", pa.string()), pa.field("date", pa.date32())]
    attrs: dict[str, Any] = {
        "name": f"{source}_{message_type.lower()}_objects",
        "message_type": message_type,
        "arrow_schema": pa.schema(fields),
        "partition_by": PARTITION_COLUMNS,
        "view_name": f"{source}_{message_type.lower()}_objects",
        "cv_schema": schema,
    }
    return type(f"CvPilotObjects_{source}_{message_type}", (CvPilotObjects,), attrs)


class CvPilotObjects(Dataset):
    """Objects of the CV Pilot bucket for a date range; build with :func:`cvpilot_dataset`."""

    cv_schema: ClassVar[MessageSchema]

    def __init__(
        self,
        start: date,
        end: date,
        *,
        timezone: str = "UTC",
        bucket: str = BUCKET,
        download: DownloadConfig | None = None,
        validation: ValidationConfig | None = None,
        fetcher: S3Fetcher | None = None,
    ) -> None:
        s = self.cv_schema
        self.keys: list[PartitionKey] = partitions_for(
            s.source, s.message_type, start, end, timezone
        )
        self.bucket = bucket
        self.validation = validation or ValidationConfig()
        cfg = download or DownloadConfig()
        self.fetcher = fetcher or S3Fetcher(make_client(cfg), cfg, bucket)
        self.uris = [f"s3://{bucket}/{k.s3_prefix}" for k in self.keys]
        self._day: dict[str, date] = {}

    def inputs(self) -> list[InputInfo]:
        out: list[InputInfo] = []
        for pk in self.keys:
            for o in self.fetcher.list(pk.s3_prefix):
                uri = f"s3://{self.bucket}/{o.key}"
                self._day[uri] = pk.day
                out.append(InputInfo(uri, o.etag, o.size, o.last_modified))
        return out

    def units(self, inputs: list[InputInfo]) -> list[WorkUnit]:
        return [
            WorkUnit(i.uri, i.uri, 0, i.size or 0, i.fingerprint, i.size, i.last_modified)
            for i in inputs
        ]

    def fetch(self, unit: WorkUnit) -> Iterator[bytes]:
        key = unit.uri.removeprefix(f"s3://{self.bucket}/")
        body = self.fetcher.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        md5 = hashlib.md5(usedforsecurity=False)
        try:
            for chunk in body.iter_chunks(1 << 20):
                md5.update(chunk)
                yield chunk
        finally:
            body.close()
        etag = unit.fingerprint.strip('"')
        if len(etag) == 32 and "-" not in etag and md5.hexdigest() != etag:
            # a single-part ETag is the body's MD5: a damaged transfer is retried
            raise TransientFetchError(f"{unit.uri}: MD5 {md5.hexdigest()} != ETag {etag}")

    def parse(
        self, unit: WorkUnit, data: Iterator[bytes], rejects: Rejects
    ) -> Iterator[pa.RecordBatch]:
        key = unit.uri.removeprefix(f"s3://{self.bucket}/")
        day = self._day.get(unit.uri) or _folder_day(key)
        work = Path(tempfile.mkdtemp(prefix="cvpilot-unit-"))
        try:
            raw = work / "object.json"
            with open(raw, "wb") as f:
                for chunk in data:
                    f.write(chunk)
            con = duckdb.connect()
            try:
                result = convert_partition(
                    con,
                    self.cv_schema,
                    [RawFile(raw, key)],
                    work / "out",
                    validation=self.validation,
                )
            finally:
                con.close()
            if result.quarantine_file is not None:
                _forward_quarantine(result.quarantine_file, rejects)
            extra = {"message_type": self.message_type, "date": day}
            for path in sorted(result.parquet_files):
                for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536):
                    yield _with_partition(batch, self.arrow_schema, extra)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _folder_day(key: str) -> date:
    parts = key.split("/")
    return date(int(parts[2]), int(parts[3]), int(parts[4]))


def _with_partition(
    batch: pa.RecordBatch, schema: pa.Schema, extra: dict[str, Any]
) -> pa.RecordBatch:
    n = batch.num_rows
    cols = [batch.column(f.name) for f in schema if f.name not in extra]
    cols += [pa.array([extra[name]] * n, schema.field(name).type) for name in extra]
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def _forward_quarantine(path: Path, rejects: Rejects) -> None:
    """The conversion's quarantine entries (JSON lines with reason and original bytes)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            entry = json.loads(line)
            reason = str(entry.get("reason") or entry.get("invalid_reason") or "quarantined")
            rejects.add(reason_category(reason), reason, line)
