"""Where a study lives: a storage spec is plain data (kind + location); opening it is the
compat module's business."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit, urlunsplit

from repro.errors import ReproError

if TYPE_CHECKING:
    import optuna


class StorageError(ReproError, ValueError):
    """A storage that cannot be used; the message names the (redacted) location and the cause."""


@dataclass(frozen=True)
class StorageSpec:
    # sqlite | journal | postgresql | mysql | redis; grpc only for the proxy a scale run starts
    # (repro/scale/proxy.py), never from a user's URL
    kind: str
    location: str  # an SQLAlchemy / Redis URL, or a journal file path
    namespace: str = ""  # Redis key prefix; every key of the study lives under "namespace:"
    # Optuna's tables are known to exist, made by this Optuna in this run (an RDB storage then
    # skips creating and checking them: what sampling does is the same either way).
    schema_ready: bool = False

    @property
    def redacted(self) -> str:
        return redact(self.location)


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def embedded(kind: str, directory: str) -> StorageSpec:
    """A fresh storage inside ``directory`` for one run."""
    if kind == "sqlite":
        return StorageSpec("sqlite", f"sqlite:///{os.path.join(directory, 'study.db')}")
    if kind == "journal":
        return StorageSpec("journal", os.path.join(directory, "journal.log"))
    raise StorageError(f"unknown embedded storage {kind!r}; choose sqlite or journal")


def sqlite_file(spec: StorageSpec) -> str:
    """The file of an SQLite storage made by ``embedded``."""
    return spec.location.removeprefix("sqlite:///")


def from_url(url: str) -> StorageSpec:
    """Classify a user-given storage URL; a plain path or ``journal:`` prefix is a journal file."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        return StorageSpec("sqlite", url)
    if scheme.startswith(("postgresql", "postgres")):
        return StorageSpec("postgresql", url)
    if scheme.startswith(("mysql", "mariadb")):
        return StorageSpec("mysql", url)
    if scheme in ("redis", "rediss"):
        return StorageSpec("redis", url, namespace="optuna-grid-repro")
    if scheme == "journal":
        return StorageSpec("journal", url.split(":", 1)[1].removeprefix("//"))
    if scheme == "":
        return StorageSpec("journal", url)
    raise StorageError(
        f"{redact(url)}: unsupported storage scheme {scheme!r}; use sqlite:///, postgresql://, "
        "mysql+pymysql://, redis:// or journal:PATH"
    )


def connect_args(url: str) -> dict[str, object]:
    """Driver options the harness adds to a server URL, beyond Optuna's own engine defaults.

    Every driver: a dead server fails the connect within 10 s instead of hanging. PyMySQL
    (1.2 on) tries TLS on every connection unless told otherwise, and builds a TLS context
    with the system's CA certificates for it before it asks the server, about 39 ms of CPU
    per connection whether or not the server offers TLS (this machine's MariaDB does not:
    ``have_ssl`` is DISABLED); each run opens six or more. On a loopback address with no TLS
    option in the URL, TLS protects nothing, so it is turned off there; a URL that names any
    ``ssl`` option keeps the driver's behaviour."""
    args: dict[str, object] = {"connect_timeout": 10}
    parts = urlsplit(url)
    tls_options = any(key.startswith("ssl") for key in parse_qs(parts.query))
    if "pymysql" in parts.scheme and _loopback(parts.hostname) and not tls_options:
        args["ssl_disabled"] = True
    return args


def _loopback(host: str | None) -> bool:
    if host in (None, "", "localhost"):
        return True  # no host: the driver's default, a local socket or 127.0.0.1
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_storage(spec: StorageSpec) -> optuna.storages.BaseStorage:
    # Imported here: the CLI and the report read specs without importing Optuna.
    from repro import _compat

    if spec.kind == "sqlite":
        return _compat.sqlite_storage(spec.location, spec.schema_ready)
    if spec.kind == "journal":
        return _compat.journal_file_storage(spec.location)
    if spec.kind in ("postgresql", "mysql"):
        return _compat.rdb_storage(spec.location, connect_args(spec.location), spec.schema_ready)
    if spec.kind == "redis":
        return _compat.journal_redis_storage(spec.location, spec.namespace)
    if spec.kind == "grpc":
        # Optuna's gRPC storage proxy; the server behind it holds the database.
        parts = urlsplit(spec.location)
        if parts.hostname is None or parts.port is None:
            raise StorageError(f"{spec.redacted}: a gRPC proxy URL is grpc://HOST:PORT")
        return _compat.grpc_proxy_storage(parts.hostname, parts.port)
    raise StorageError(f"{spec.redacted}: unknown storage kind {spec.kind!r}")
