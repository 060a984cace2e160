"""Where everything lives inside a catalog directory, and the file-level primitives.

<catalog>/catalog.ducklake        the catalog database: DuckLake metadata and the state tables
<catalog>/lake/main/<table>/...   Parquet of the DuckLake tables, hive-partitioned
<catalog>/quarantine/source=.../  rejected lines and records, NDJSON, one file per partition
<catalog>/staging/                downloads (resumable) and conversion output before publishing
<catalog>/locks/                  inter-process file locks
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import shutil
import stat
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from cvcatalog.exceptions import CatalogError, ConfigError
from cvcatalog.sources.bucket import PartitionKey

DB_NAME = "catalog.ducklake"
#: the catalog database of cvcatalog 0.1 (views listing files), migrated on first open
LEGACY_DB_NAME = "catalog.duckdb"


@dataclass(frozen=True)
class CatalogPaths:
    root: Path

    @classmethod
    def at(cls, root: str | Path) -> CatalogPaths:
        return cls(Path(root).expanduser().resolve())

    @property
    def db(self) -> Path:
        return self.root / DB_NAME

    @property
    def legacy_db(self) -> Path:
        return self.root / LEGACY_DB_NAME

    @property
    def db_lock(self) -> Path:
        return self.root / "locks" / "catalog.lock"

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def access_log(self) -> Path:
        return self.root / "access.log"

    @staticmethod
    def partition_rel(pk: PartitionKey) -> str:
        """Catalog-relative directory of a partition's Parquet files (local or on S3): the
        hive directory of its DuckLake table, `lake/main/<table>/year=.../...`."""
        hive = "/".join(f"{k}={v}" for k, v in pk.lake_values)
        return f"lake/main/{pk.table}/{hive}"

    @staticmethod
    def quarantine_rel(pk: PartitionKey) -> str:
        return f"quarantine/{pk.hive_dir}"

    def partition_dir(self, pk: PartitionKey) -> Path:
        return self.root / self.partition_rel(pk)

    def quarantine_dir(self, pk: PartitionKey) -> Path:
        return self.quarantine / pk.hive_dir

    def staging_dir(self, pk: PartitionKey) -> Path:
        return self.staging / pk.key

    @property
    def group_staging(self) -> Path:
        """Runs' grouped conversions (a folder a run, held while it runs: io.dirlock)."""
        return self.staging / ".groups"

    def partition_lock(self, pk: PartitionKey) -> Path:
        return self.root / "locks" / f"{pk.key}.lock"

    def dataset_lock(self, name: str) -> Path:
        """Held by a dataset's load while it places and records files, and by its compaction
        and eviction: a load's tidy step deletes files no row names yet."""
        return self.root / "locks" / "datasets" / f"{name}.lock"

    def relative(self, path: Path) -> str:
        """Catalog-relative POSIX path, as stored in the manifest."""
        return path.resolve().relative_to(self.root).as_posix()

    def absolute(self, rel: str) -> Path:
        """Where a catalog-relative path is, read lexically (safe_rel): resolving it was a
        system call per folder of the path, ~1 ms a file on a commit of a thousand tiny days,
        and a folder of the catalog linked to another disk was refused as an escape."""
        return self.root / safe_rel(rel)

    def enclosing_catalog(self) -> Path | None:
        """The catalog directory this one would be made inside (`--catalog cat/lake`), if any."""
        return next((p for p in self.root.resolve().parents if (p / DB_NAME).is_file()), None)

    def ensure(self) -> None:
        """The catalog's directories, made if missing; one line when they cannot be (the one
        check before anything writes to the catalog: ingest, compact, repair, ...)."""
        if GLOB_CHARS & set(str(self.root)):
            raise CatalogError(
                f"the catalog directory {self.root} has a glob character (* ? [) in its path, "
                "which DuckDB would expand in its file paths; give it a path without one"
            )
        if not self.db.exists() and not self.legacy_db.exists():
            outer = self.enclosing_catalog()
            if outer is not None:
                raise CatalogError(
                    f"{self.root} is inside the catalog {outer}, whose checks would take a "
                    f"catalog's files there for its own: give --catalog {outer}, or a folder "
                    "outside it"
                )
        try:
            for d in (self.root, self.lake, self.quarantine, self.staging, self.db_lock.parent):
                d.mkdir(parents=True, exist_ok=True)
        except PermissionError as e:
            raise CatalogError(f"permission denied creating the catalog at {e.filename}") from None
        except (FileExistsError, NotADirectoryError) as e:
            raise CatalogError(_not_a_folder(_in_the_way(Path(e.filename)))) from None
        except OSError as e:
            if e.errno != errno.EROFS:  # e.g. a path under /proc, or a device gone
                raise CatalogError(
                    f"cannot create the catalog at {e.filename or self.root}: {e.strerror}"
                ) from None
            raise CatalogError(
                f"the catalog directory {self.root} is not writable (read-only file system)"
            ) from None
        if not os.access(self.root, os.W_OK):
            raise CatalogError(f"the catalog directory {self.root} is not writable")


def _in_the_way(path: Path) -> Path:
    """What stops a folder being made at path: path itself, or the nearest of its parents that
    is there and not a folder (a file where a parent folder should be: mkdir names the child)."""
    for p in (path, *path.parents):
        if p.is_symlink() or p.exists():
            return p if not p.is_dir() else path
    return path


def _not_a_folder(path: Path) -> str:
    """Why the catalog cannot make its folder at path: a file is there, or a link to a folder
    that is not there (another disk, not mounted)."""
    if path.is_symlink() and not path.exists():
        return (
            f"{path} is a link to {os.readlink(path)}, which does not exist (a disk not "
            "mounted?); mount it, or make the folder it names"
        )
    return f"{path} is a file where the catalog keeps a directory; move it away"


#: characters DuckDB expands in a file path it is given (a glob), never in a literal name
GLOB_CHARS = frozenset("*?[")


def safe_rel(rel: str) -> str:
    """rel, a path a catalog's state names, when it stays inside the catalog (local or on
    S3): relative, no `..` part, no backslash."""
    if rel.startswith("/") or ".." in rel.split("/") or "\\" in rel:
        raise CatalogError(f"manifest path escapes the catalog: {rel!r}")
    return rel


def user_cache_dir() -> Path:
    """cvcatalog's per-user cache (`$XDG_CACHE_HOME/cvcatalog`, default `~/.cache/cvcatalog`):
    remote catalogs' databases, the extension files already signature-checked and the kept
    blank catalog. Raises RuntimeError where the user has no home directory (Path.home)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "cvcatalog"


def user_cache_path(*parts: str) -> Path | None:
    """A path in the user cache, or None where there is none (no HOME, no entry in the
    password database: a container run under an arbitrary uid): for what the cache only
    remembers, which is then done again instead."""
    try:
        return user_cache_dir().joinpath(*parts)
    except RuntimeError:
        return None


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_syncfs() -> Callable[[int], int] | None:
    """libc's syncfs (Linux), or None where there is none. Looked up among the symbols the
    interpreter already has (libc's): ctypes.util.find_library would run `ldconfig -p` in a
    child process at every import of cvcatalog."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError, TypeError):  # no syncfs (macOS); no CDLL(None) (Windows)
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_SYNCFS = _load_syncfs()


def can_sync_at_once() -> bool:
    """Whether sync_file_systems can make many files durable with one call per file system."""
    return _SYNCFS is not None


def sync_file_systems(folders: Iterable[Path]) -> None:
    """Make everything written to the file systems of these folders durable: one syncfs per
    file system, where a file and a folder fsync each force a journal commit of their own
    (a thousand tiny files placed: 2,000 journal commits). Its errors are the file system's
    writeback errors since the last sync (Linux 5.8+). Raises OSError; needs
    can_sync_at_once()."""
    if _SYNCFS is None:
        raise OSError(errno.ENOSYS, "syncfs is not available here")
    one_each: dict[int, Path] = {}
    for folder in folders:
        one_each.setdefault(os.stat(folder).st_dev, folder)
    for folder in one_each.values():
        fd = os.open(folder, os.O_RDONLY)
        try:
            if _SYNCFS(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncing the file system of {folder}: {os.strerror(err)}")
        finally:
            os.close(fd)


def publish_file(src: Path, dest: Path) -> None:
    """Move a finished file into place atomically, durably: a rename, or from another file
    system (a catalog's staging/, lake/ or quarantine/ linked to another disk) a copy_into,
    then src removed."""
    with open(src, "rb") as f:
        os.fsync(f.fileno())
    move_file(src, dest)
    fsync_dir(dest.parent)


def move_file(src: Path, dest: Path) -> None:
    """Move src to dest: a rename into dest's folder, or from another file system a copy_into
    (synced), then src removed. The rename is not made durable here (publish_file does)."""
    if place_file(src, dest, lambda: os.replace(src, dest)):
        src.unlink()


def place_file(src: Path, dest: Path, place: Callable[[], object]) -> bool:
    """Put src at dest by place (a rename or a hard link) into dest's folder (into_folder),
    or by a copy_into where src is on another file system, which neither reaches; whether it
    was copied (src is then still there)."""
    try:
        into_folder(dest, place)
        return False
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
    copy_into(src, dest)
    return True


def copy_into(src: Path, dest: Path) -> None:
    """A copy of src published as dest: written beside it under a temporary name, synced and
    renamed, so dest is never half a file (for a file on another file system, which neither
    a rename nor a hard link can reach)."""

    def place() -> None:
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
        try:
            shutil.copyfile(src, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    into_folder(dest, place)


#: how often a file is put into a folder another process removed meanwhile
_FOLDER_ATTEMPTS = 5


def into_folder(dest: Path, place: Callable[[], object]) -> None:
    """Make dest's folder and place the file (rename, link). Another catalog process prunes a
    folder it emptied (prune_empty_dirs) whenever it is empty, which it is between the mkdir
    and the rename: the folder is made again, a few times at most."""
    for attempt in range(_FOLDER_ATTEMPTS):
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            place()
            return
        except FileNotFoundError:
            if dest.parent.is_dir() or attempt == _FOLDER_ATTEMPTS - 1:
                raise  # the source is missing, not the folder


def file_target(dest: Path) -> Path:
    """Where a whole file written for dest is published: dest, or the file its symbolic links
    lead to (the links stay links). One line when dest is there and is not a regular file (a
    device such as /dev/null or /dev/stdout, a FIFO, a directory): a rename would replace it."""
    try:
        mode = os.stat(dest).st_mode  # (follows links)
    except OSError:  # not there yet, or unreachable: creating it says why
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise ConfigError(
            f"{dest} is {kind}: the output is written whole under a temporary name and "
            "renamed into place; give a file name"
        )
    return Path(os.path.realpath(dest)) if dest.is_symlink() else dest


def nearest_existing(path: Path) -> Path:
    """path, or the nearest of its parents that is there: where making path would begin (a
    folder to write in, or a file in the way of the folders to make)."""
    return next(p for p in (path, *path.parents) if p.exists() or p == p.parent)


def check_outputs(named: Mapping[str, Path | None]) -> None:
    """Before a command's work (a report, a query, a generated file): each file it is to
    write (option -> path; None: not asked for) can be written there, and no two options
    name the same file (the second write replaced the first). One line otherwise."""
    seen: dict[str, str] = {}
    for option, dest in named.items():
        if dest is None:
            continue
        real = os.path.realpath(file_target(dest))
        if real in seen:
            raise ConfigError(f"{seen[real]} and {option} name the same file {dest}; give each its own")
        seen[real] = option
        folder = nearest_existing(Path(real).parent)
        if not folder.is_dir():
            raise ConfigError(f"cannot write {dest}: {folder} is a file, not a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"cannot write {dest}: permission denied in {folder}")


@contextlib.contextmanager
def replacing(dest: Path) -> Iterator[Path]:
    """A temporary path beside dest to write the file at: published as dest (publish_file)
    when the block ends without error, removed in any case, so dest is never half a file.
    dest must be a regular file or not exist yet (file_target)."""
    dest = file_target(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        publish_file(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def written(path: Path) -> Iterator[Path]:
    """replacing(path) for a file the user named: an OS error while writing it (a full disk,
    no permission) is one CatalogError line naming it."""
    try:
        with replacing(path) as tmp:
            yield tmp
    except OSError as err:
        raise CatalogError(f"cannot write {path}: {err.strerror or err}") from None


def write_atomic(path: Path, data: bytes) -> None:
    """A small file written whole (written)."""
    with written(path) as tmp:
        tmp.write_bytes(data)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def prune_empty_dirs(start: Path, stop: Path) -> None:
    """Remove empty directories from start up to (not including) stop."""
    p = start
    while p != stop and p.is_relative_to(stop):
        try:
            p.rmdir()
        except OSError:
            return
        p = p.parent
