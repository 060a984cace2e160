"""DuckDB instances (opened offline), their extensions (httpfs, ducklake, spatial) and
settings changed for a block, and S3 secrets for httpfs.

Each extension comes from its pinned `duckdb-extension-<name>` package (installed with
cvcatalog), so nothing is ever downloaded at run time and autoinstall/autoload stay off.
Credentials come from the boto3 chain (environment, --profile, SSO, instance roles) and the
endpoint from the same variables boto3 honours (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL). The
secret is a TEMPORARY DuckDB secret: it lives in the connection's memory only and is never
written to disk or logged.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb

from cvcatalog.exceptions import CatalogError, ConfigError
from cvcatalog.io.layout import replacing, user_cache_path
from cvcatalog.sqlutil import quote_ident, quote_literal

#: The public bucket lives here; other regions only add a redirect (boto3 and httpfs alike).
DEFAULT_REGION = "us-east-1"


#: no extension is ever fetched or loaded implicitly, in any instance cvcatalog opens
_OFFLINE = {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}

#: Every session reads and writes time in UTC, whatever the machine's zone: a time without an
#: offset in SQL ('2021-04-01 06:00:00') is UTC, hour(), ::DATE and strftime of a TIMESTAMPTZ
#: give UTC's, and Python receives UTC datetimes. DuckDB's default is the machine's zone (TZ),
#: so the same query gave other rows on another machine (and than `export --where`).
UTC_SESSION_SQL = "SET TimeZone = 'UTC'"


def open_instance(
    database: str = ":memory:", *, read_only: bool = False, config: dict[str, Any] | None = None
) -> duckdb.DuckDBPyConnection:
    """A new DuckDB instance: every one cvcatalog opens comes from here (but the parse-only
    instance of schemas/socrata.py, a foundation module that loads no extension).

    DuckDB checks an extension's signature at each LOAD into each new instance by hashing the
    whole file (ducklake 36 MB, spatial 81 MB): 0.15-0.7 s per extension per instance on 2
    cores, paid again by every conversion, reader and writer instance, about a quarter of a
    one-day ingest. So the check runs once per file instead (`verify_extension`: DuckDB's own
    check in a throwaway instance, remembered per file version), and these instances load
    only files that passed it (`allow_unsigned_extensions`, through `load_extension`).
    Autoinstall and autoload stay off: no other extension is fetched or loaded implicitly,
    and a published catalog's reader turns external access off once its extensions are
    loaded, so SQL stored in a catalog can load nothing. Its sessions (cursors included) are
    in UTC (`UTC_SESSION_SQL`; DuckDB takes TimeZone only once ICU is loaded, after connect)."""
    settings = {**_OFFLINE, "allow_unsigned_extensions": "true", **(config or {})}
    con = duckdb.connect(database, read_only=read_only, config=settings)
    try:
        con.execute("SET GLOBAL TimeZone = 'UTC'")  # UTC_SESSION_SQL for every cursor too
    except BaseException:
        con.close()
        raise
    return con


def interrupted(e: BaseException) -> bool:
    """Whether e is DuckDB's report of a query stopped by Ctrl-C, not a failure: on SIGINT
    the Python client raises RuntimeError('Query interrupted') (not KeyboardInterrupt), and
    `connection.interrupt()` an InterruptException."""
    if isinstance(e, duckdb.InterruptException):
        return True
    return type(e) is RuntimeError and str(e).strip() == "Query interrupted"


@contextlib.contextmanager
def temporary_setting(con: duckdb.DuckDBPyConnection, name: str, value: object) -> Iterator[None]:
    """`SET name = value` for the block, the connection's own value restored after it, also
    after an error (a connection the error left unusable is left as it is). Nothing is set
    when the value is already that (setting threads resizes DuckDB's thread pool)."""
    row = con.execute("SELECT current_setting(?)", [name]).fetchone()
    if row is not None and str(row[0]) == str(value):
        yield
        return
    con.execute(f"SET {quote_ident(name)} = ?", [value])
    try:
        yield
    finally:
        if row is not None:
            with contextlib.suppress(duckdb.Error):
                con.execute(f"SET {quote_ident(name)} = ?", [row[0]])


_VERIFY_LOCK = threading.Lock()
#: (path, size, mtime_ns, inode) of extension files that passed the check in this process
_VERIFIED: set[tuple[str, int, int, int]] = set()


def verify_extension(path: Path, name: str) -> None:
    """DuckDB's signature check of an extension file, once per version of the file: in this
    process, and across processes through a marker in the user cache named by the file's
    path, size, modification time and inode (a replaced or rewritten file is checked again).
    A file that fails is one line naming it; no marker is written for it."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if key in _VERIFIED:
        return
    with _VERIFY_LOCK:
        if key in _VERIFIED:
            return
        marker = _marker(key)
        if marker is None or not _exists(marker):
            con = open_instance(config={"allow_unsigned_extensions": "false"})  # checks on
            try:
                con.execute(f"LOAD {quote_literal(str(path))}")
            except duckdb.Error as e:
                raise CatalogError(
                    f"DuckDB's {name} extension {path} failed its check "
                    f"({str(e).splitlines()[0]}); reinstall duckdb-extension-{name}"
                ) from None
            finally:
                con.close()
            # no home, or no writable cache: checked again by the next process
            if marker is not None:
                with contextlib.suppress(OSError), replacing(marker) as tmp:
                    tmp.write_text(f"{name} {path}\n")
        _VERIFIED.add(key)


def _marker(key: tuple[str, int, int, int]) -> Path | None:
    """The user cache's file that remembers an extension file checked; None where the user
    has no home directory to keep it in."""
    digest = hashlib.sha256(repr((duckdb.__version__, *key)).encode()).hexdigest()
    return user_cache_path("verified-extensions", digest)


def _exists(path: Path) -> bool:
    """Whether path exists; False where its folder cannot be looked into (a user cache this
    user may not read): the check then runs, as if nothing were remembered."""
    try:
        return path.exists()
    except OSError:
        return False


def extension_path(name: str) -> Path:
    """A DuckDB extension shipped by its pinned `duckdb-extension-<name>` package."""
    try:
        module = importlib.import_module(f"duckdb_extension_{name}")
    except ImportError:
        raise CatalogError(
            f"DuckDB's {name} extension is not installed (package duckdb-extension-{name}); "
            "reinstall cvcatalog with its dependencies"
        ) from None
    root = Path(str(module.__file__)).resolve().parent / "extensions"
    exact = root / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if exact.exists():
        return exact
    found = sorted(root.glob(f"v*/{name}.duckdb_extension"))
    if not found:
        raise CatalogError(f"no {name}.duckdb_extension under {root} (duckdb-extension-{name})")
    return found[-1]


def httpfs_extension() -> Path:
    """The httpfs extension shipped by the duckdb-extension-httpfs package (loaded offline)."""
    return extension_path("httpfs")


def load_extension(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """LOAD an extension from its pinned package; never install or autoload anything."""
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    path = extension_path(name)
    verify_extension(path, name)
    try:
        con.execute(f"LOAD {quote_literal(str(path))}")
    except duckdb.Error as e:
        raise CatalogError(
            f"cannot load DuckDB's {name} extension: {str(e).splitlines()[0]}"
        ) from None


def load_httpfs(con: duckdb.DuckDBPyConnection) -> None:
    """LOAD httpfs from the pinned package; never install or autoload anything."""
    load_extension(con, "httpfs")


def endpoint_url(explicit: str | None = None) -> str | None:
    """The S3 endpoint boto3 would use: explicit, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL."""
    return (
        explicit
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or None
    )


#: host name endings of AWS's own S3 endpoints (httpfs reaches them without being told)
AWS_HOSTS = (".amazonaws.com", ".amazonaws.com.cn")


def configured_endpoint(session: Any) -> str | None:
    """An endpoint the AWS config file gives S3 (`endpoint_url` in the profile or in its
    `services` section), which boto3 uses and httpfs must be told: without it a command
    listed and fetched from one endpoint and read the lake or a published catalog from AWS.
    session: a boto3 Session (its profile). None when the file sets none, or boto3 ignores it
    (AWS_IGNORE_CONFIGURED_ENDPOINT_URLS): the client boto3 makes then names AWS."""
    try:
        scoped = session._session.get_scoped_config()
        if not scoped.get("endpoint_url") and not scoped.get("services"):
            return None  # (a client costs ~80 ms to make: only when the file may set one)
        url = str(session.client("s3").meta.endpoint_url)
    except Exception:  # a broken profile is reported where its credentials are read
        return None
    host = urlsplit(url).hostname or ""
    return None if host.endswith(AWS_HOSTS) else url


def endpoint_problem(url: str) -> str | None:
    """Why url cannot be an S3 endpoint (no http(s) scheme, no host, a port out of range);
    None when it can."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port out of range or not a number raises ValueError
    except ValueError as e:
        return str(e).lower()
    if parts.scheme not in ("http", "https"):
        return "expected http://host[:port] or https://host[:port]"
    if not parts.hostname:
        return "no host name"
    return None


def invalid_endpoint_message(url: str, why: str | None = None) -> str:
    """The one line for an S3 endpoint URL that boto3 or httpfs cannot use (why: what is wrong
    with it, else endpoint_problem's answer), naming the variable that set it when one did."""
    var = next((v for v in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL") if os.environ.get(v)), None)
    origin = f" ({var})" if var is not None and endpoint_url() == url else ""
    why = why or endpoint_problem(url)
    return f"the S3 endpoint {url!r}{origin} is not a valid URL" + (f": {why}" if why else "")


@dataclass(frozen=True)
class S3Settings:
    """What a DuckDB S3 secret needs, without the credentials themselves."""

    region: str
    endpoint: str | None  # host[:port], None for AWS
    use_ssl: bool
    url_style: str  # path | vhost


def s3_settings(endpoint: str | None, region: str | None) -> S3Settings:
    if not endpoint:
        return S3Settings(region or DEFAULT_REGION, None, True, "vhost")
    try:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        port = parts.port
    except ValueError as e:  # a port out of range or not a number, a broken IPv6 address
        raise ConfigError(invalid_endpoint_message(endpoint, str(e).lower())) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(invalid_endpoint_message(endpoint))
    host = parts.hostname if port is None else f"{parts.hostname}:{port}"
    return S3Settings(region or DEFAULT_REGION, host, parts.scheme == "https", "path")


def s3_secret_sql(
    *,
    profile: str | None = None,
    no_sign_request: bool = False,
    endpoint: str | None = None,
    region: str | None = None,
    name: str = "cvcatalog_s3",
) -> tuple[str, S3Settings]:
    """The CREATE TEMPORARY SECRET statement for the boto3 credential chain and endpoint
    settings. It holds the credentials: never log it, and never pass it on a command line."""
    import boto3
    import botocore.exceptions as bce

    try:
        session = boto3.session.Session(profile_name=profile)
    except bce.ProfileNotFound:
        raise ConfigError(
            f"AWS profile {profile!r} not found in ~/.aws/config or ~/.aws/credentials "
            "(check the name, or AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE)"
        ) from None
    settings = s3_settings(
        endpoint_url(endpoint) or configured_endpoint(session), region or session.region_name
    )
    fields: list[tuple[str, Any]] = [
        ("TYPE", "s3"),
        ("REGION", settings.region),
        ("URL_STYLE", settings.url_style),
        ("USE_SSL", settings.use_ssl),
    ]
    if settings.endpoint:
        fields.append(("ENDPOINT", settings.endpoint))
    if not no_sign_request:
        try:
            creds = session.get_credentials()
        except bce.BotoCoreError as e:
            raise ConfigError(f"could not obtain AWS credentials ({type(e).__name__})") from None
        if creds is not None:
            frozen = creds.get_frozen_credentials()
            fields += [("KEY_ID", frozen.access_key), ("SECRET", frozen.secret_key)]
            if frozen.token:
                fields.append(("SESSION_TOKEN", frozen.token))
    body = ", ".join(
        f"{k} {str(v).lower()}"
        if isinstance(v, bool) or k == "TYPE"
        else f"{k} {quote_literal(str(v))}"
        for k, v in fields
    )
    return f"CREATE OR REPLACE TEMPORARY SECRET {quote_ident(name)} ({body})", settings


def create_s3_secret(
    con: duckdb.DuckDBPyConnection,
    *,
    profile: str | None = None,
    no_sign_request: bool = False,
    endpoint: str | None = None,
    region: str | None = None,
    name: str = "cvcatalog_s3",
) -> S3Settings:
    """A TEMPORARY DuckDB S3 secret from the boto3 credential chain and endpoint settings."""
    sql, settings = s3_secret_sql(
        profile=profile,
        no_sign_request=no_sign_request,
        endpoint=endpoint,
        region=region,
        name=name,
    )
    try:
        con.execute(sql)
    except duckdb.Error:
        # the statement holds the credentials: never echo it
        raise ConfigError(
            "DuckDB refused the S3 settings (endpoint, region or credentials)"
        ) from None
    return settings


def s3_connection(
    con: duckdb.DuckDBPyConnection,
    *,
    profile: str | None = None,
    no_sign_request: bool = False,
    endpoint: str | None = None,
    region: str | None = None,
    name: str = "cvcatalog_s3",
) -> duckdb.DuckDBPyConnection:
    """httpfs loaded and an S3 secret created on con; returns con."""
    load_httpfs(con)
    create_s3_secret(
        con,
        profile=profile,
        no_sign_request=no_sign_request,
        endpoint=endpoint,
        region=region,
        name=name,
    )
    return con
