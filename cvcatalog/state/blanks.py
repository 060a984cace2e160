"""A new catalog's file as its tables and views were first made, kept so that the next new
catalog starts from a copy of it (~0.05 CPU-s) instead of ~160 DuckDB statements and four
commits (~0.4 CPU-s): in this process, and across processes in the user cache
(`<user cache>/blank-catalogs/`), where a first ingest into a new catalog would otherwise
write them beside its download.

A kept file is named by everything that decides its bytes (DuckDB's version, the DuckLake
extension file, the migrations' SQL, the tables' and views' definitions, the source of the
modules that make a catalog: MAKERS), and carries the SHA-256 of its bytes: a damaged or
cut-short copy is never used (and is removed), a stale one is never found."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from pathlib import Path

import duckdb

from cvcatalog.io.duckdb_ext import extension_path
from cvcatalog.io.layout import replacing, user_cache_path
from cvcatalog.sqlutil import load_sql

#: the modules whose code writes a new catalog (beside the migrations and definitions)
MAKERS = ("state/db.py", "state/tables.py", "state/settings.py", "state/trips.py", "io/lake.py")
#: the header before a kept file's bytes: their SHA-256 in hex, then a newline
_HEADER = 65
_KEPT: dict[str, bytes] = {}
_NAMES: dict[tuple[tuple[tuple[int, str], ...], str], str] = {}
_LOCK = threading.Lock()


def key(migrations: list[tuple[int, str]], definitions: str) -> str:
    """The name of the blank made by this DuckDB, DuckLake extension and cvcatalog."""
    memo = (tuple(migrations), definitions)
    if memo not in _NAMES:
        _NAMES[memo] = _key(migrations, definitions)
    return _NAMES[memo]


def _key(migrations: list[tuple[int, str]], definitions: str) -> str:
    h = hashlib.sha256(f"duckdb {duckdb.__version__}\n".encode())
    lake = extension_path("ducklake").stat()
    h.update(f"ducklake {lake.st_size} {lake.st_mtime_ns}\n".encode())
    for version, name in sorted(migrations):
        h.update(f"{version} {name}\n{load_sql('migrations', name)}\n".encode())
    h.update(f"definitions {definitions}\n".encode())
    package = Path(__file__).resolve().parents[1]
    for module in MAKERS:  # the code that makes a new catalog, whatever its version says
        try:
            h.update(f"{module}\n".encode() + (package / module).read_bytes())
        except OSError:  # not installed as files: every process makes its catalogs whole
            h.update(f"{module} unreadable {os.getpid()}\n".encode())
    return h.hexdigest()


def _file(name: str) -> Path | None:
    """Where the blank called name is kept; None without a home to keep it in."""
    return user_cache_path("blank-catalogs", f"{name}.ducklake")


def keep(path: Path, name: str) -> None:
    """Keep the catalog file at path (checkpointed, nothing but its tables and views in it) as
    the blank called name, here and in the user cache (nothing there if it is not writable),
    where it replaces the blank of another version of cvcatalog, DuckDB or DuckLake."""
    data = path.read_bytes()
    with _LOCK:
        _KEPT.clear()
        _KEPT[name] = data
    dest = _file(name)
    if dest is None:
        return
    with contextlib.suppress(OSError):  # e.g. a cache directory this user cannot read
        if dest.exists():
            return
        with replacing(dest) as tmp, open(tmp, "wb") as f:
            f.write(hashlib.sha256(data).hexdigest().encode() + b"\n")
            f.write(data)
        for other in dest.parent.iterdir():
            if other.name == dest.name:
                continue
            if other.suffix == ".ducklake" or _stale_copy(other):  # one blank is kept
                other.unlink(missing_ok=True)


def _stale_copy(path: Path) -> bool:
    """A copy a killed process left on its way in (keep's temporary file), an hour old."""
    return path.name.endswith(".tmp") and time.time() - path.stat().st_mtime > 3600


def copy_to(path: Path, name: str) -> bool:
    """Write the blank called name to path; False (path left alone) when there is none whole."""
    with _LOCK:
        data = _KEPT.get(name)
    if data is None:
        data = _read(_file(name))
        if data is None:
            return False
        with _LOCK:
            _KEPT.clear()
            _KEPT[name] = data
    path.write_bytes(data)
    return True


def _read(kept: Path | None) -> bytes | None:
    """A kept file's bytes when they are whole (their SHA-256 is the header's); a file that
    is not is removed."""
    if kept is None:
        return None
    try:
        raw = kept.read_bytes()
    except OSError:
        return None
    data = raw[_HEADER:]
    if raw[: _HEADER - 1] != hashlib.sha256(data).hexdigest().encode():
        with contextlib.suppress(OSError):
            kept.unlink()
        return None
    return data


def forget() -> None:
    """Forget this process's blank (the user cache's stay)."""
    with _LOCK:
        _KEPT.clear()
