"""Experiment pins: the one owner of the `experiment_pins` table.

A pinned experiment reads the lake as of one snapshot (Catalog.to_dask(..., snapshot=)). The
snapshot and the files it shows must outlive retention, eviction and `cache clear`: expiry
(CatalogDB.expire_snapshots) never expires a pinned snapshot, and DuckLake deletes a file only
when no kept snapshot shows it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import duckdb

from cvcatalog.io import lake


@dataclass(frozen=True)
class Pin:
    name: str
    snapshot_id: int
    source: str
    message_type: str
    files: int
    bytes: int
    digest: str
    pinned_at: datetime


_COLUMNS = "name, snapshot_id, source, message_type, files, bytes, digest, pinned_at"


def get(con: duckdb.DuckDBPyConnection, name: str) -> Pin | None:
    row = con.execute(f"SELECT {_COLUMNS} FROM experiment_pins WHERE name = ?", [name]).fetchone()
    return Pin(*row) if row else None


def all_pins(con: duckdb.DuckDBPyConnection) -> list[Pin]:
    rows = con.execute(f"SELECT {_COLUMNS} FROM experiment_pins ORDER BY name").fetchall()
    return [Pin(*r) for r in rows]


def put(con: duckdb.DuckDBPyConnection, pin: Pin) -> None:
    """Record a pin (in a CatalogDB.write transaction); a name is pinned once."""
    con.execute(
        f"INSERT INTO experiment_pins ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [pin.name, pin.snapshot_id, pin.source, pin.message_type, pin.files, pin.bytes,
         pin.digest, pin.pinned_at],
    )  # fmt: skip


def remove(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute("DELETE FROM experiment_pins WHERE name = ? RETURNING name", [name])
    return row.fetchone() is not None


def drop_before(con: duckdb.DuckDBPyConnection, snapshot: int) -> list[str]:
    """Remove the pins of snapshots before `snapshot` (a copy published from it on keeps no
    older one); returns their names."""
    rows = con.execute(
        "DELETE FROM experiment_pins WHERE snapshot_id < ? RETURNING name", [snapshot]
    ).fetchall()
    return sorted(r[0] for r in rows)


def pinned_snapshots(con: duckdb.DuckDBPyConnection) -> set[int]:
    return {int(r[0]) for r in con.execute("SELECT snapshot_id FROM experiment_pins").fetchall()}


def files_digest(files: list[lake.DataFile]) -> str:
    """What a pin records of its files: they are written once under fresh names and never
    changed, so their names, sizes and row counts identify the rows."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.location):
        h.update(f"{f.location.rsplit('/lake/', 1)[-1]}\t{f.size}\t{f.rows}\n".encode())
    return h.hexdigest()


def pinned_files(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Locations of the files a pinned snapshot shows: no expiry deletes them, so dropping
    their data from the current catalog (eviction) frees none of their bytes."""
    keep = pinned_snapshots(con)
    if not keep:
        return set()
    return {f.location for f in lake.data_files(con) if any(f.shown_at(s) for s in keep)}


@dataclass(frozen=True)
class Held:
    """What pins keep on disk that the current catalog no longer shows."""

    #: pin name -> the bytes of the files its snapshot shows (eviction cannot free them while
    #: it exists; two pins showing the same file both count it)
    bytes: dict[str, int]
    #: pin name -> the part no other pin shows: what unpinning it alone lets expiry free
    alone: dict[str, int]
    #: every pin's files counted once
    total: int


def held_bytes(con: duckdb.DuckDBPyConnection) -> Held:
    """The bytes pins keep that the current catalog no longer shows, per pin, per pin alone,
    and in all."""
    pins = all_pins(con)
    if not pins:
        return Held({}, {}, 0)
    kept = [f for f in lake.data_files(con) if not f.current]
    shown = {p.name: {f.location for f in kept if f.shown_at(p.snapshot_id)} for p in pins}
    size = {f.location: f.size for f in kept}
    alone = {
        name: files - set().union(*(o for n, o in shown.items() if n != name))
        for name, files in shown.items()
    }
    return Held(
        {name: sum(size[x] for x in files) for name, files in shown.items()},
        {name: sum(size[x] for x in files) for name, files in alone.items()},
        sum(size[x] for x in set().union(*shown.values())),
    )
