"""The state tables of datasets (NGSIM, ...): dataset_units, dataset_files, dataset_inputs,
dataset_duplicates.

The one module that reads and writes them: the dataset loader records a committed unit and
publishes an input version through it (cvcatalog.sources.ngsim), `compact` replaces merged
files, and `cvcatalog cache`, `publish` and eviction ask it about the files; an input whose bytes
are already published under another URI is recorded as its duplicate. Dataset files
live in the same lake as CV Pilot partitions (local or S3, `db.store`). Every function that
changes rows runs inside the caller's write transaction and returns the files to delete after
it commits.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

from cvcatalog.clock import now_utc
from cvcatalog.datasets import DATASETS
from cvcatalog.datasets.base import Dataset
from cvcatalog.io.layout import CatalogPaths
from cvcatalog.sqlutil import insert_rows

#: unit_id of a file `cvcatalog compact` merged from the files of several units of one input
#: version (uri, scope, fingerprint): it holds rows of every unit of that version
COMPACTED_UNIT = "*"


@dataclass(frozen=True)
class DatasetFile:
    """One file of a committed unit, as dataset_files records it."""

    path: str
    dataset: str
    uri: str
    scope: str
    fingerprint: str
    unit_id: str
    partition: str
    kind: str
    rows: int
    bytes: int
    sha256: str
    published: bool  # of the version the view shows

    @property
    def partition_key(self) -> str:
        """How `cache status` and publish.json name its partition: '<dataset>/<partition>'."""
        return f"{self.dataset}/{self.partition}"


def _classes(dataset: str | None, message_type: str | None) -> list[type[Dataset]]:
    return [
        ds
        for name, ds in sorted(DATASETS.items())
        if (dataset is None or dataset == name)
        and (message_type is None or message_type == ds.message_type)
    ]


def forget_units(con: duckdb.DuckDBPyConnection, where: str, args: list[Any]) -> list[str]:
    """Drop the dataset_units rows matching `where` (a fixed condition on columns the two
    tables share, values as parameters) with their dataset_files rows; returns those files'
    catalog-relative paths, to delete once the transaction has committed."""
    paths = [
        r[0] for r in con.execute(f"SELECT path FROM dataset_files WHERE {where}", args).fetchall()
    ]
    for table in ("dataset_files", "dataset_units"):
        con.execute(f"DELETE FROM {table} WHERE {where}", args)
    return paths


@dataclass(frozen=True)
class UnitFile:
    """A file of a unit (or of a compaction's merge) as it is recorded: catalog-relative path,
    partition directory, kind ('data' or 'quarantine'), rows, bytes, SHA-256."""

    path: str
    partition: str
    kind: str
    rows: int
    bytes: int
    sha256: str


_FILE_COLUMNS = [
    "path", "dataset", "uri", "scope", "fingerprint", "unit_id", "partition", "kind", "rows",
    "bytes", "sha256", "created_at",
]  # fmt: skip


def _put_files(
    con: duckdb.DuckDBPyConnection,
    version: tuple[str, str, str, str],
    unit_id: str,
    files: Sequence[UnitFile],
    now: datetime,
) -> None:
    dataset, uri, scope, fingerprint = version
    insert_rows(
        con,
        "dataset_files",
        _FILE_COLUMNS,
        [
            [f.path, dataset, uri, scope, fingerprint, unit_id, f.partition, f.kind, f.rows,
             f.bytes, f.sha256, now]
            for f in files
        ],
    )  # fmt: skip


@dataclass(frozen=True)
class CommittedUnit:
    """A unit of one input version, loaded: where its bytes were, what it gave, which run."""

    dataset: str
    unit_id: str
    scope: str
    fingerprint: str
    uri: str
    start_byte: int
    end_byte: int
    rows: int
    quarantined: int
    skipped: int
    bytes: int
    run_id: str
    #: SHA-256 of the unit's own bytes [start_byte, end_byte), read by the load; None: unknown
    sha256: str | None = None


def put_unit(
    con: duckdb.DuckDBPyConnection,
    unit: CommittedUnit,
    files: Sequence[UnitFile],
    now: datetime,
) -> None:
    """Record a committed unit and its files, replacing the rows of an earlier commit of the
    same unit version (its files share the names: none is deleted)."""
    key = [unit.dataset, unit.unit_id, unit.scope, unit.fingerprint]
    forget_units(con, "dataset = ? AND unit_id = ? AND scope = ? AND fingerprint = ?", key)
    con.execute(
        "INSERT INTO dataset_units (dataset, unit_id, scope, fingerprint, uri, start_byte, "
        "end_byte, status, rows, quarantined, skipped, bytes, run_id, committed_at, sha256) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, 'complete', ?, ?, ?, ?, ?, ?, ?)",
        [
            *key, unit.uri, unit.start_byte, unit.end_byte, unit.rows, unit.quarantined,
            unit.skipped, unit.bytes, unit.run_id, now, unit.sha256,
        ],
    )  # fmt: skip
    version = (unit.dataset, unit.uri, unit.scope, unit.fingerprint)
    _put_files(con, version, unit.unit_id, files, now)


def unit_versions(con: duckdb.DuckDBPyConnection, dataset: str, scope: str) -> set[tuple[str, str]]:
    """(unit_id, fingerprint) of every committed unit of the dataset's scope."""
    return {
        (r[0], r[1])
        for r in con.execute(
            "SELECT unit_id, fingerprint FROM dataset_units WHERE dataset = ? AND scope = ?",
            [dataset, scope],
        ).fetchall()
    }


def unit_sizes(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str, str, str], int]:
    """(dataset, uri, scope, fingerprint) -> the unit size each version with committed units
    was cut with (a load cuts such an input so again; a repair loads it again so)."""
    return {
        (r[0], r[1], r[2], r[3]): int(r[4])
        for r in con.execute(
            "SELECT dataset, uri, scope, fingerprint, max(end_byte - start_byte) "
            "FROM dataset_units GROUP BY ALL"
        ).fetchall()
    }


def published_versions(con: duckdb.DuckDBPyConnection, dataset: str) -> dict[tuple[str, str], str]:
    """(uri, scope) -> the fingerprint of the version its view shows."""
    return {
        (r[0], r[1]): r[2]
        for r in con.execute(
            "SELECT uri, scope, fingerprint FROM dataset_inputs WHERE dataset = ?", [dataset]
        ).fetchall()
    }


def recorded_paths(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Every file any dataset row names."""
    return {r[0] for r in con.execute("SELECT path FROM dataset_files").fetchall()}


@dataclass(frozen=True)
class InputVersion:
    """One version of a dataset input, as dataset_inputs records its publication."""

    dataset: str
    uri: str
    scope: str
    fingerprint: str
    size: int | None
    last_modified: Any


@dataclass(frozen=True)
class VersionContent:
    """What the committed units of a whole input version hold: rows, quarantined lines, and
    the version's SHA-256 (content_digest of its units'; None when a unit has none)."""

    rows: int
    quarantined: int
    sha256: str | None


def content_digest(ranges: Iterable[tuple[int, int, str | None]]) -> str | None:
    """An input version's SHA-256 from its units' (start, end, SHA-256 of [start, end)), in any
    order: the same bytes cut into the same units give the same digest whatever the URI or
    scope. None if a unit's digest is unknown (loaded by an earlier release)."""
    h = hashlib.sha256()
    for start, end, digest in sorted(ranges):
        if digest is None:
            return None
        h.update(f"{start}-{end}:{digest}\n".encode())
    return h.hexdigest()


def version_content(
    con: duckdb.DuckDBPyConnection, version: InputVersion, unit_ids: Sequence[str]
) -> VersionContent | None:
    """The content of the version if every unit of it (unit_ids) is committed, else None."""
    v = version
    rows = con.execute(
        "SELECT start_byte, end_byte, sha256, rows, quarantined "
        "FROM dataset_units WHERE dataset = ? AND scope = ? AND fingerprint = ? "
        "AND list_contains(?, unit_id)",
        [v.dataset, v.scope, v.fingerprint, list(unit_ids)],
    ).fetchall()
    if not unit_ids or len(rows) < len(unit_ids):
        return None
    return VersionContent(
        sum(int(r[3]) for r in rows),
        sum(int(r[4]) for r in rows),
        content_digest((int(r[0]), int(r[1]), r[2]) for r in rows),
    )


def publish_input(
    con: duckdb.DuckDBPyConnection,
    version: InputVersion,
    unit_ids: Sequence[str],
    run_id: str,
    content: VersionContent,
) -> None:
    """Make this version the one the view shows: every unit of it (unit_ids) is committed,
    content is what version_content found they hold. The caller drops the other versions."""
    v = version
    unpublish(con, v.dataset, v.uri, v.scope)
    con.execute(
        "INSERT INTO dataset_inputs (dataset, uri, scope, fingerprint, size, last_modified, "
        "units, rows, quarantined, run_id, published_at, sha256) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            v.dataset, v.uri, v.scope, v.fingerprint, v.size, v.last_modified, len(unit_ids),
            content.rows, content.quarantined, run_id, now_utc(), content.sha256,
        ],
    )  # fmt: skip


def unpublish(con: duckdb.DuckDBPyConnection, dataset: str, uri: str, scope: str) -> None:
    """The input's (uri, scope) view shows no version (its units and files stay); the
    duplicate records of it, and those naming it (their bytes are no longer shown), go too."""
    con.execute(
        "DELETE FROM dataset_inputs WHERE dataset = ? AND uri = ? AND scope = ?",
        [dataset, uri, scope],
    )
    con.execute(
        "DELETE FROM dataset_duplicates WHERE dataset = ? AND ((uri = ? AND scope = ?) "
        "OR (same_as_uri = ? AND same_as_scope = ?))",
        [dataset, uri, scope, uri, scope],
    )


@dataclass(frozen=True)
class Duplicate:
    """An input version with the bytes of an input published under another URI (same_as)."""

    dataset: str
    uri: str
    scope: str
    fingerprint: str
    same_as_uri: str
    same_as_scope: str
    same_as_fingerprint: str
    sha256: str


def same_content(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    uri: str,
    scope: str,
    fingerprint: str,
    sha256: str,
) -> Duplicate | None:
    """The input published under another URI with these bytes (sha256) whose rows cover a load
    of uri with this scope (the same scope, or the whole input), as a Duplicate of it (the
    version of uri with this fingerprint)."""
    row = con.execute(
        "SELECT uri, scope, fingerprint FROM dataset_inputs WHERE dataset = ? AND sha256 = ? "
        "AND uri <> ? AND (scope = ? OR scope = '*') ORDER BY scope = '*' DESC, published_at, uri "
        "LIMIT 1",
        [dataset, sha256, uri, scope],
    ).fetchone()
    if row is None:
        return None
    return Duplicate(dataset, uri, scope, fingerprint, row[0], row[1], row[2], sha256)


def filtered_same_content(
    con: duckdb.DuckDBPyConnection, dataset: str, uri: str, sha256: str
) -> list[tuple[str, str, str]]:
    """(uri, scope, fingerprint) of the filtered loads ('location=...') of other URIs with
    these bytes: a whole load of uri covers their rows."""
    return [
        (r[0], r[1], r[2])
        for r in con.execute(
            "SELECT uri, scope, fingerprint FROM dataset_inputs WHERE dataset = ? AND sha256 = ? "
            "AND uri <> ? AND scope <> '*' ORDER BY uri, scope",
            [dataset, sha256, uri],
        ).fetchall()
    ]


def record_duplicate(con: duckdb.DuckDBPyConnection, dup: Duplicate, run_id: str) -> None:
    """Record that dup's version is not loaded: its bytes are shown under dup.same_as_uri."""
    con.execute(
        "DELETE FROM dataset_duplicates WHERE dataset = ? AND uri = ? AND scope = ?",
        [dup.dataset, dup.uri, dup.scope],
    )
    con.execute(
        "INSERT INTO dataset_duplicates (dataset, uri, scope, fingerprint, same_as_uri, "
        "same_as_scope, same_as_fingerprint, sha256, run_id, recorded_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            dup.dataset, dup.uri, dup.scope, dup.fingerprint, dup.same_as_uri,
            dup.same_as_scope, dup.same_as_fingerprint, dup.sha256, run_id, now_utc(),
        ],
    )  # fmt: skip


#: a duplicate record holds while the input it names is published with the version it had
_HOLDS = (
    "EXISTS (SELECT 1 FROM dataset_inputs i WHERE i.dataset = dataset_duplicates.dataset "
    "AND i.uri = dataset_duplicates.same_as_uri AND i.scope = dataset_duplicates.same_as_scope "
    "AND i.fingerprint = dataset_duplicates.same_as_fingerprint)"
)


def duplicates(con: duckdb.DuckDBPyConnection, dataset: str) -> dict[tuple[str, str], Duplicate]:
    """(uri, scope) -> its duplicate record, for those that hold: the input it names is still
    published with the version it had when the record was made."""
    rows = con.execute(
        "SELECT dataset, uri, scope, fingerprint, same_as_uri, same_as_scope, "
        "same_as_fingerprint, sha256 FROM dataset_duplicates "
        f"WHERE dataset = ? AND {_HOLDS}",
        [dataset],
    ).fetchall()
    return {(r[1], r[2]): Duplicate(*r) for r in rows}


def drop_stale_duplicates(con: duckdb.DuckDBPyConnection, dataset: str) -> None:
    """Forget the duplicate records that no longer hold (see duplicates)."""
    con.execute(
        f"DELETE FROM dataset_duplicates WHERE dataset = ? AND NOT {_HOLDS}", [dataset]
    )


def filtered_scopes(con: duckdb.DuckDBPyConnection, dataset: str, uri: str) -> list[str]:
    """The scopes other than the whole input ('*') this input is published with."""
    return [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT scope FROM dataset_inputs WHERE dataset = ? AND uri = ? "
            "AND scope <> '*' ORDER BY scope",
            [dataset, uri],
        ).fetchall()
    ]


def rename_file(con: duckdb.DuckDBPyConnection, old: str, new: str) -> None:
    """A dataset file now lives under another name (the same bytes)."""
    con.execute("UPDATE dataset_files SET path = ? WHERE path = ?", [new, old])


def replace_merged(
    con: duckdb.DuckDBPyConnection,
    version: tuple[str, str, str, str],
    old: Iterable[str],
    merged: Sequence[UnitFile],
) -> None:
    """`compact`: the files merged from several units of one input version (old) give way to
    the merged ones, recorded under COMPACTED_UNIT."""
    con.execute("DELETE FROM dataset_files WHERE list_contains(?, path)", [list(old)])
    _put_files(con, version, COMPACTED_UNIT, merged, now_utc())


def dataset_files(
    con: duckdb.DuckDBPyConnection,
    dataset: str | None = None,
    message_type: str | None = None,
    *,
    published_only: bool = False,
) -> list[DatasetFile]:
    """Files of every committed unit (or only of published versions), ordered by path.
    Their datasets are picked here, not by a bound value: `cache status` then binds none and
    never loads pandas (state.settings.get); the table holds few datasets."""
    names = [ds.name for ds in _classes(dataset, message_type)]
    if not names:
        return []
    sql = (
        "SELECT f.path, f.dataset, f.uri, f.scope, f.fingerprint, f.unit_id, f.partition, "
        "f.kind, f.rows, f.bytes, f.sha256, i.fingerprint IS NOT NULL AS published "
        "FROM dataset_files f LEFT JOIN dataset_inputs i ON f.dataset = i.dataset "
        "AND f.uri = i.uri AND f.scope = i.scope AND f.fingerprint = i.fingerprint"
    )
    if published_only:
        sql += " WHERE i.fingerprint IS NOT NULL"
    rows = con.execute(sql + " ORDER BY f.path").fetchall()
    wanted = set(names)
    return [DatasetFile(*r) for r in rows if r[1] in wanted]


def run_inputs(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """The dataset inputs (each version) run_id committed units of, still recorded, in the
    shape of manifest.run_objects (`runs show --objects` listed none of an NGSIM run): the
    input's URI, its fingerprint (ETag, or size and mtime), size, and its dataset."""
    rows = con.execute(
        "SELECT DISTINCT u.uri, u.fingerprint, i.size, u.dataset FROM dataset_units u "
        "LEFT JOIN dataset_inputs i ON i.dataset = u.dataset AND i.uri = u.uri "
        "AND i.scope = u.scope AND i.fingerprint = u.fingerprint "
        "WHERE u.run_id = ? ORDER BY 1",
        [run_id],
    ).fetchall()
    return [
        {"source_key": uri, "etag": fingerprint, "size": size, "partition": dataset}
        for uri, fingerprint, size, dataset in rows
    ]


def run_partitions(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """The dataset partitions holding files of units run_id committed (still recorded), in the
    shape of manifest.run_partitions: per '<dataset>/<partition>', its status ('complete' when
    the input version is published, else 'pending'), and the rows, inputs, files and bytes of
    those files (a unit's quarantine counts are per unit, not per partition: None)."""
    rows = con.execute(
        "SELECT f.dataset || '/' || f.partition AS partition, "
        "CASE WHEN bool_and(i.fingerprint IS NOT NULL) THEN 'complete' ELSE 'pending' END, "
        "sum(f.rows), count(DISTINCT f.uri), count(*), sum(f.bytes) "
        "FROM dataset_files f LEFT JOIN dataset_inputs i ON i.dataset = f.dataset "
        "AND i.uri = f.uri AND i.scope = f.scope AND i.fingerprint = f.fingerprint "
        "WHERE f.kind = 'data' AND EXISTS (SELECT 1 FROM dataset_units u "
        " WHERE u.dataset = f.dataset AND u.scope = f.scope AND u.fingerprint = f.fingerprint "
        # a file `compact` merged (COMPACTED_UNIT) holds rows of every unit of its version
        " AND (u.unit_id = f.unit_id OR f.unit_id = ?) AND u.run_id = ?) "
        "GROUP BY ALL ORDER BY ALL",
        [COMPACTED_UNIT, run_id],
    ).fetchall()
    out = []
    for partition, status, n, inputs, files, nbytes in rows:
        values = dict(p.split("=", 1) for p in partition.split("/")[1:] if "=" in p)
        day = values.get("date")
        out.append(
            {
                "partition": partition,
                "date": date.fromisoformat(day) if day and day != "__null__" else None,
                "status": status,
                "rows": int(n),
                "quarantined": None,
                "objects": int(inputs),
                "files": int(files),
                "parquet_bytes": int(nbytes),
            }
        )
    return out


def dataset_status(
    con: duckdb.DuckDBPyConnection, dataset: str | None = None, message_type: str | None = None
) -> list[dict[str, Any]]:
    """One row per dataset partition, in the shape of `cache status` rows. Status 'complete'
    for what the view shows, 'pending' for units of a version not published yet."""
    agg: dict[tuple[str, bool], dict[str, Any]] = {}
    for f in dataset_files(con, dataset, message_type):
        if f.kind != "data":
            continue
        row = agg.setdefault(
            (f.partition_key, f.published),
            {
                "partition": f.partition_key,
                "status": "complete" if f.published else "pending",
                "rows": 0,
                "quarantined": 0,
                "parquet_bytes": 0,
                "source_objects": set(),
                "source_bytes": None,
                "schema_versions": "",
                "canonical_version": None,
                "checked_at": None,
                "last_accessed": None,
                "error": None,
            },
        )
        row["rows"] += f.rows
        row["parquet_bytes"] += f.bytes
        row["source_objects"].add(f.uri)
    out = []
    for key in sorted(agg):
        row = agg[key]
        row["source_objects"] = len(row["source_objects"])
        out.append(row)
    return out


def forget(
    con: duckdb.DuckDBPyConnection,
    paths: CatalogPaths,
    dataset: str | None = None,
    message_type: str | None = None,
) -> tuple[int, list[DatasetFile]]:
    """Forget every input, unit and file of the dataset(s) and empty their views; returns
    (partitions, files to delete)."""
    classes = _classes(dataset, message_type)
    files = dataset_files(con, dataset, message_type)
    partitions = {f.partition_key for f in files if f.kind == "data"}
    for ds in classes:
        for table in ("dataset_files", "dataset_units", "dataset_inputs", "dataset_duplicates"):
            con.execute(f"DELETE FROM {table} WHERE dataset = ?", [ds.name])
    return len(partitions), files


@dataclass(frozen=True)
class Refetch:
    """An input some of whose units were dropped by a repair: load it again to fill them."""

    dataset: str
    uri: str
    scope: str
    unit_bytes: int | None = None  # the unit size it was cut with: only dropped units re-run


def drop_damaged(
    con: duckdb.DuckDBPyConnection, paths: CatalogPaths, damaged: list[str]
) -> tuple[list[str], list[Refetch]]:
    """Forget the units owning damaged (missing or mismatched) files, so the next load
    re-fetches exactly those units (every unit of the version, for a file `compact` merged),
    and unpublish their inputs (a view never shows an input with a hole). Returns (files of
    those units to delete, inputs to load again)."""
    if not damaged:
        return [], []
    units = con.execute(
        "SELECT DISTINCT dataset, unit_id, scope, fingerprint, uri FROM dataset_files "
        "WHERE list_contains(?, path)",
        [damaged],
    ).fetchall()
    doomed: list[str] = []
    refetch: set[Refetch] = set()
    sizes = unit_sizes(con)
    for dataset, unit_id, scope, fingerprint, uri in units:
        if unit_id == COMPACTED_UNIT:
            # a merged file holds rows of every unit of its version: all of them go
            doomed += forget_units(
                con,
                "dataset = ? AND uri = ? AND scope = ? AND fingerprint = ?",
                [dataset, uri, scope, fingerprint],
            )
        else:
            doomed += forget_units(
                con,
                "dataset = ? AND unit_id = ? AND scope = ? AND fingerprint = ?",
                [dataset, unit_id, scope, fingerprint],
            )
        con.execute(
            "DELETE FROM dataset_inputs WHERE dataset = ? AND uri = ? AND scope = ? "
            "AND fingerprint = ?",
            [dataset, uri, scope, fingerprint],
        )
        size = sizes.get((dataset, uri, scope, fingerprint))
        refetch.add(Refetch(dataset, uri, scope, size or None))
    return sorted(set(doomed)), sorted(refetch, key=lambda r: (r.dataset, r.uri, r.scope))


@dataclass(frozen=True)
class EvictableInput:
    """A loaded dataset input (all its versions' units and files) eviction may drop."""

    dataset: str
    uri: str
    scope: str
    bytes: int
    last_used: Any  # datetime: its latest read (access log) or its publication
    partitions: tuple[str, ...]  # '<dataset>/<partition>' keys, as the access log names them

    @property
    def label(self) -> str:
        """How `cache evict` names it: what to load again (`ingest --source ngsim --path`)."""
        return input_label(self.dataset, self.uri, self.scope)


def input_label(dataset: str, uri: str, scope: str) -> str:
    """How eviction names a dataset input loaded with a scope: `<dataset>:<uri>`, and the scope
    of a filtered load (`ngsim:s3://b/k.csv [location=i-80]`)."""
    return f"{dataset}:{uri}" + ("" if scope == "*" else f" [{scope}]")


def reloadable(uri: str, fingerprint: str) -> bool:
    """Whether the catalog can load this input version again on request: a local file still
    on disk unchanged (its size:mtime fingerprint), or a remote object (s3://, https://),
    which the load fetches again (a changed object is then loaded as its new version)."""
    scheme = urllib.parse.urlparse(uri).scheme.lower()
    if scheme in ("s3", "http", "https"):
        return True
    path = urllib.parse.urlparse(uri).path if scheme == "file" else uri
    try:
        st = Path(path).stat()
    except OSError:
        return False
    return f"{st.st_size}:{st.st_mtime_ns}" == fingerprint


def evictable_inputs(
    con: duckdb.DuckDBPyConnection,
    datasets: list[str],
    accessed: dict[str, Any],
    kept: Collection[str] = (),
) -> list[EvictableInput]:
    """Published inputs of the datasets that can be loaded again (see reloadable), with
    the bytes dropping them frees (every version's files but those in `kept`: files a pinned
    snapshot keeps on disk) and LRU time: the latest access of any of their partitions in
    `accessed`, else when they were published."""
    out = []
    for dataset, uri, scope, fingerprint, published, nbytes, parts in _published(
        con, datasets, kept
    ):
        if not reloadable(uri, fingerprint):
            continue
        keys = tuple(sorted(f"{dataset}/{p}" for p in parts or []))
        times = [accessed[k] for k in keys if k in accessed]
        out.append(EvictableInput(dataset, uri, scope, int(nbytes), max([published, *times]), keys))
    return out


def unloadable_inputs(
    con: duckdb.DuckDBPyConnection, datasets: list[str], kept: Collection[str] = ()
) -> list[tuple[str, int]]:
    """The published inputs eviction never drops, as `cache evict` names them, with their
    bytes (but those in `kept`): the catalog could not load them again (a local file changed
    or gone since its load: reloadable)."""
    return [
        (input_label(dataset, uri, scope), int(nbytes))
        for dataset, uri, scope, fingerprint, _, nbytes, _ in _published(con, datasets, kept)
        if not reloadable(uri, fingerprint) and nbytes
    ]


def _published(
    con: duckdb.DuckDBPyConnection, datasets: list[str], kept: Collection[str]
) -> list[tuple[Any, ...]]:
    """Per published input of the datasets: dataset, uri, scope, fingerprint, published_at,
    the bytes of its files but those in `kept`, and its data files' partitions."""
    if not datasets:
        return []
    return con.execute(
        "SELECT i.dataset, i.uri, i.scope, i.fingerprint, i.published_at, "
        "coalesce(sum(f.bytes) FILTER (NOT list_contains(?, f.path)), 0), "
        "list(DISTINCT f.partition) FILTER (f.kind = 'data') "
        "FROM dataset_inputs i LEFT JOIN dataset_files f ON f.dataset = i.dataset "
        "AND f.uri = i.uri AND f.scope = i.scope WHERE list_contains(?, i.dataset) "
        "GROUP BY ALL ORDER BY ALL",
        [sorted(kept), datasets],
    ).fetchall()


def forget_input(con: duckdb.DuckDBPyConnection, item: EvictableInput) -> list[str]:
    """Drop an input (every version's units and files, and its publication) so the next load
    of it fetches it whole; returns the files to delete after the commit."""
    where = "dataset = ? AND uri = ? AND scope = ?"
    args = [item.dataset, item.uri, item.scope]
    doomed = forget_units(con, where, args)
    unpublish(con, item.dataset, item.uri, item.scope)
    return doomed
