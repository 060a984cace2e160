"""LRU access times without write locks on the read path.

Reads append `partition_key<TAB>timestamp` lines to access.log (O_APPEND, one write); the log is
folded into partitions.last_accessed inside the next catalog transaction that needs it (eviction).
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime

import duckdb

from cvcatalog.io.layout import CatalogPaths
from cvcatalog.sqlutil import quote_ident
from cvcatalog.state.db import STATE_DB, now_utc

#: why a reader may be unable to log: a catalog it may read but not write (a read-only file
#: system, another user's catalog), or no room left
UNLOGGED = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


def record_access(keys: Iterable[str], paths: CatalogPaths, when: datetime | None = None) -> None:
    """Log that these partitions were read. A reader that cannot write the catalog logs
    nothing: an LRU clock is not worth failing a read for (their data stays as recently used
    as the last logged read says)."""
    keys = list(keys)
    if not keys:
        return
    stamp = (when or now_utc()).isoformat()
    data = "".join(f"{k}\t{stamp}\n" for k in keys).encode()
    try:
        paths.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(paths.access_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as e:
        if e.errno not in UNLOGGED:
            raise


def file_keys(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Every catalog-relative file's access key (quarantine files too, which a statement may
    read by their path), as record_access takes them: its CV partition's key,
    `<dataset>/<partition>` for a dataset's (NGSIM) unit. con: a session with the catalog's
    state attached (named: whatever schema a query left it in)."""
    db = quote_ident(STATE_DB)
    rows = con.execute(
        f"SELECT path, partition_key FROM {db}.partition_files "
        f"UNION ALL SELECT path, dataset || '/' || partition FROM {db}.dataset_files"
    ).fetchall()
    return {str(path): str(key) for path, key in rows}


def _latest(lines: Iterable[str]) -> dict[str, datetime]:
    latest: dict[str, datetime] = {}
    for line in lines:
        key, _, stamp = line.rstrip("\n").partition("\t")
        try:
            t = datetime.fromisoformat(stamp)
        except ValueError:
            continue  # a torn or foreign line; an LRU clock is not worth failing for
        if key and (key not in latest or t > latest[key]):
            latest[key] = t
    return latest


def read_access_log(paths: CatalogPaths) -> dict[str, datetime]:
    """Latest logged access per partition key, not yet folded into the catalog."""
    with contextlib.suppress(FileNotFoundError), open(paths.access_log, encoding="utf-8") as f:
        return _latest(f)
    return {}


@contextlib.contextmanager
def folded_access_log(paths: CatalogPaths) -> Iterator[dict[str, datetime]]:
    """Take the log for folding; wrap the catalog write that applies it (manifest.touch).

    The log is removed only when the body (and so the commit) succeeds; otherwise its lines
    are appended back, so no access is forgotten.
    """
    folding = paths.access_log.with_name(f"access.{uuid.uuid4().hex}.folding")
    try:
        os.replace(paths.access_log, folding)
    except FileNotFoundError:
        yield {}
        return
    with open(folding, encoding="utf-8") as f:
        latest = _latest(f)
    try:
        yield latest
    except BaseException:
        data = folding.read_bytes()
        fd = os.open(paths.access_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        folding.unlink()
        raise
    folding.unlink()
