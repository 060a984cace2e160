"""Recorded checksums of the lake's files: the one owner of the `file_checksums` table.

partition_files and dataset_files name the files the state calls current, each with its size
and SHA-256; a commit that replaces a file drops its row there, while the lake keeps the file
for the older snapshots that show it (time travel, pins) until they expire. This table keeps
the size and hash of every data file the lake still knows, so `cache verify` checks those
files as it checks the current ones, and `--repair` finds a good file with the same bytes to
restore a damaged one from. Written by the one write path (CatalogDB.write): each commit that
changes the lake records its current files; the files the lake has forgotten are forgotten
after it cleans up (CatalogDB.expire_snapshots).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import duckdb

#: the current data files the state records, with their size and hash
_CURRENT = (
    "SELECT path, bytes, sha256 FROM partition_files WHERE kind = 'data' "
    "UNION ALL SELECT path, bytes, sha256 FROM dataset_files WHERE kind = 'data'"
)


@dataclass(frozen=True)
class Checksum:
    bytes: int
    sha256: str


def record(con: duckdb.DuckDBPyConnection) -> None:
    """Remember every current data file's size and hash (a path recorded with other bytes
    takes the current ones). Rows of files the lake has since forgotten stay until forget:
    the lake forgets files only when it cleans up after expired snapshots, and naming every
    file it knows on every commit cost the 500 one-object days ~0.5 CPU-s."""
    con.execute(
        f"DELETE FROM file_checksums k USING ({_CURRENT}) c "
        "WHERE k.path = c.path AND (k.sha256 <> c.sha256 OR k.bytes <> c.bytes)"
    )
    con.execute(
        f"INSERT INTO file_checksums SELECT c.path, c.bytes, c.sha256 FROM ({_CURRENT}) c "
        "WHERE NOT EXISTS (SELECT 1 FROM file_checksums k WHERE k.path = c.path)"
    )


def record_written(con: duckdb.DuckDBPyConnection, files: dict[str, Checksum]) -> None:
    """Remember files the lake wrote itself (a commit's delete files: no state table names
    them), hashed by the commit that wrote them, so `cache verify` checks their bytes rather
    than their size alone."""
    if not files:
        return
    con.execute("DELETE FROM file_checksums WHERE list_contains(?, path)", [sorted(files)])
    con.executemany(
        "INSERT INTO file_checksums VALUES (?, ?, ?)",
        [[p, c.bytes, c.sha256] for p, c in sorted(files.items())],
    )


def forget(con: duckdb.DuckDBPyConnection, known: Iterable[str]) -> None:
    """Forget the files neither current nor known to the lake (known: catalog-relative paths
    of every file it knows), after it cleaned up files; a row left of a deleted file is
    harmless until then (verify reads the lake's files, a repair re-hashes a candidate)."""
    con.execute(
        f"DELETE FROM file_checksums WHERE NOT list_contains(?, path) "
        f"AND path NOT IN (SELECT path FROM ({_CURRENT}))",
        [sorted(set(known))],
    )


def recorded(con: duckdb.DuckDBPyConnection) -> dict[str, Checksum]:
    """Path -> the recorded size and hash of every data file the lake knows (none in a
    catalog not yet written by this release: migrations run on the first write)."""
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'file_checksums'"
    ).fetchone()
    if not (row and row[0]):
        return {}
    rows = con.execute("SELECT path, bytes, sha256 FROM file_checksums").fetchall()
    return {str(p): Checksum(int(n), str(h)) for p, n, h in rows}
