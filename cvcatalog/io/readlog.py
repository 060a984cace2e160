"""Which files DuckDB statements open, from DuckDB's own FileSystem log: what a SQL query
read after its filters pruned the rest, which no reading of the SQL could tell (the LRU clock
of the partitions a query reads, state/access.py). A session cvcatalog does not run (the
DuckDB CLI of `cvcatalog shell`) logs to CSV files instead (file_log_sql, logged_opens)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb

from cvcatalog.sqlutil import quote_literal

#: a FileSystem log entry's file, and whether the entry is its opening (an OPEN is logged at
#: the TRACE level, beside every READ)
_PATH = "json_extract_string(message, '$.path')"
_OPEN = "message LIKE '%\"op\":\"OPEN\"%'"
#: the files opened while the log was on: any statement's, as the log is the instance's, and
#: a file another statement opened meanwhile was read then too
_OPENED = (
    f"SELECT count(*), list(DISTINCT {_PATH}) FILTER (WHERE {_OPEN}) FROM duckdb_logs() "
    "WHERE type = 'FileSystem'"
)
#: the log's entries of file opens and reads only
_SELECTED = ("SET enabled_log_types = 'FileSystem'", "SET logging_mode = 'enable_selected'")
#: the settings that log them (SET: a CALL of enable_logging costs ~1.4 ms)
_LOG_FILES = ("SET logging_level = 'trace'", *_SELECTED, "SET enable_logging = true")
#: the file a log kept in a directory writes its entries to (DuckDB's name)
_ENTRIES = "duckdb_log_entries.csv"


def file_log_sql(directory: Path) -> list[str]:
    """The statements that have a session log the files it opens to CSV files in directory
    (file storage takes its path only through the CALL), for logged_opens once it ends."""
    call = (
        "CALL enable_logging(level = 'trace', storage = 'file', "
        f"storage_path = {quote_literal(str(directory))})"
    )
    return [call, *_SELECTED]


def logged_opens(con: duckdb.DuckDBPyConnection, directory: Path) -> set[str]:
    """The files a session that ran file_log_sql(directory) opened (read on con); none when
    it logged nothing (it switched the log off, or was killed before writing it)."""
    entries = directory / _ENTRIES
    if not entries.is_file():
        return set()
    rows = con.execute(
        f"SELECT DISTINCT {_PATH} FROM read_csv(?, header = true, all_varchar = true, "
        f"hive_partitioning = false) WHERE type = 'FileSystem' AND {_OPEN}",
        [str(entries)],
    ).fetchall()
    return {str(r[0]) for r in rows if r[0]}


#: what a watcher does with the files read: given the session (still open) and their locations
OnRead = Callable[[duckdb.DuckDBPyConnection, set[str]], None]


class ReadLog:
    """One DuckDB instance's log of the files its statements open. The log is the instance's:
    on while any statement on it is watched (every connection's statements log meanwhile)
    and emptied when the last watched one ends: it holds what was read while someone watched
    (~100 rows a MB of Parquet read), never what the instance ever read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watching = 0

    @contextlib.contextmanager
    def watch(self, con: duckdb.DuckDBPyConnection, on_read: OnRead) -> Iterator[None]:
        """Inside the block the instance logs; at its end on_read gets con and the files the
        instance's statements opened meanwhile, con's and any other's (local paths, s3://
        URLs), if any. What fails there (the log or on_read's SQL) is not worth failing a read
        for: it is left out."""
        with self._lock:
            if self._watching == 0:  # (set each time: a user's statement may have changed them)
                with contextlib.suppress(duckdb.Error):
                    for sql in _LOG_FILES:
                        con.execute(sql)
            self._watching += 1
        try:
            yield
        finally:
            opened = self._harvest(con)
            if opened:  # (its SQL, or the access log's file system)
                with contextlib.suppress(duckdb.Error, OSError):
                    on_read(con, opened)

    def _harvest(self, con: duckdb.DuckDBPyConnection) -> set[str]:
        """The files the log names; the log switched off and emptied after the last watcher
        (under the lock: no other starts meanwhile, nor loses rows it still needs)."""
        with self._lock:
            self._watching -= 1
            last = self._watching == 0
            try:
                if last:
                    con.execute("SET enable_logging = false")
                row = con.execute(_OPENED).fetchone()
                if last and (row is None or row[0]):  # (emptying it costs ~1.4 ms)
                    con.execute("CALL truncate_duckdb_logs()")
            except duckdb.Error:
                return set()
        return {str(p) for p in (row[1] if row is not None else None) or () if p}


def watched(
    con: duckdb.DuckDBPyConnection, on_read: OnRead | None, log: ReadLog
) -> contextlib.AbstractContextManager[None]:
    """log.watch(con, on_read), or nothing to do where on_read is None (no one asked)."""
    return contextlib.nullcontext() if on_read is None else log.watch(con, on_read)
