"""Server storages on this machine (PostgreSQL, MariaDB/MySQL, Redis): where they are, whether
they answer, and a fresh, cleaned-up place per run.

Every run on a server gets its own database (``repro_<hex>``, dropped afterwards) or its own
Redis key prefix (``repro:<study>``, deleted afterwards), so no run sees another's trials and
nothing is left behind. All connections are made in forked children, like every other storage
access, so the parent never holds a connection across a fork.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from repro.fork import CTX, ChildFailed, call
from repro.scenarios import SERVER_STORAGES
from repro.storages import StorageError, StorageSpec, redact

DEFAULT_URLS = {
    "postgresql": "postgresql+psycopg2://postgres@127.0.0.1:5432/test",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/test",
    "redis": "redis://127.0.0.1:6379/0",
}
ENV_VARS = {kind: f"REPRO_{kind.upper()}_URL" for kind in SERVER_STORAGES}
DATABASE_PREFIX = "repro_"
REDIS_PREFIX = "repro:"
# Set by the test suite per session, so that its check for leftovers sees only its own names
# and not those of another run using the same servers at the same time.
RUN_TAG_VAR = "REPRO_RUN_TAG"


def run_tag() -> str:
    tag = os.environ.get(RUN_TAG_VAR, "")
    return f"{tag}_" if tag else ""


CONNECT_TIMEOUT = 10.0
SCRATCH_PREFIX = "grid-repro-"


def scratch_prefix(owner: int | None = None) -> str:
    """``grid-repro-<pid>-``: the pid of the lane's parent (the `run` that owns the folder),
    so that the run can sweep what a lane it had to kill could not remove."""
    return f"{SCRATCH_PREFIX}{os.getppid() if owner is None else owner}-"


def sweep_scratch(owner: int) -> None:
    """Remove the scratch folders of ``owner``'s lanes; only once no lane of it is alive."""
    folder = Path(scratch_dir() or tempfile.gettempdir())
    for path in folder.glob(f"{scratch_prefix(owner)}*"):
        shutil.rmtree(path, ignore_errors=True)  # what cannot go stays for `clean` to list


def scratch_dir() -> str | None:
    """Where fresh embedded storages go: $REPRO_TMPDIR, else /dev/shm when it is writable
    (SQLite and the journal keep their real locking on tmpfs; only fsync gets cheap), else
    the system default."""
    chosen = os.environ.get("REPRO_TMPDIR")
    if chosen:
        return chosen
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        return "/dev/shm"
    return None


def server_url(kind: str) -> str:
    """The admin URL of a server kind: $REPRO_<KIND>_URL or this machine's service."""
    return os.environ.get(ENV_VARS[kind], DEFAULT_URLS[kind])


class Unreachable(RuntimeError):
    """One line saying why a server did not answer (or refused a statement)."""


def driver_error(exc: BaseException) -> BaseException | None:
    """The database driver's own exception behind ``exc``, if any: SQLAlchemy keeps it as
    ``.orig``, and Optuna re-raises SQLAlchemy's errors as its own from them."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException):
            return orig
        current = current.__cause__ or current.__context__
    return None


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line, naming the driver's own error where there is one:
    SQLAlchemy's text ends in a "Background on this error at" link that names no cause."""
    inner = driver_error(exc) or exc
    text = " ".join(str(inner).split()) or type(inner).__name__
    return f"{type(inner).__name__}: {text}"


def _cause(exc: ChildFailed) -> str:
    """The one line an ``Unreachable`` raised in a child carries, from its traceback text."""
    lines = str(exc).strip().splitlines()
    return lines[-1].removeprefix(f"{Unreachable.__module__}.Unreachable: ") if lines else ""


def _ping(spec: StorageSpec) -> None:
    try:
        _connect(spec)
    except Exception as exc:
        raise Unreachable(one_line(exc)) from None


def _connect(spec: StorageSpec) -> None:
    if spec.kind == "redis":
        import redis

        redis.Redis.from_url(spec.location, socket_connect_timeout=5, socket_timeout=5).ping()
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(spec.location, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    finally:
        engine.dispose()


def check_reachable(spec: StorageSpec) -> None:
    """Raise StorageError with one line naming the (redacted) URL and the cause, within 10 s."""
    try:
        call(_ping, spec, timeout=CONNECT_TIMEOUT)
    except ChildFailed as exc:
        raise StorageError(f"cannot use {spec.redacted}: {_cause(exc) or 'no answer'}") from None


def _admin(url: str, statement: str) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(
        url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(statement))
    except Exception as exc:
        raise Unreachable(one_line(exc)) from None
    finally:
        engine.dispose()


def _with_database(url: str, name: str) -> str:
    import sqlalchemy

    return sqlalchemy.engine.make_url(url).set(database=name).render_as_string(hide_password=False)


def delete_keys(url: str, prefix: str) -> int:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    return len(keys)


def _list_leftovers(kind: str, url: str) -> list[str]:
    if kind == "redis":
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        match = f"{REDIS_PREFIX}{run_tag()}*"
        return sorted(k.decode() for k in client.scan_iter(match=match, count=1000))
    import sqlalchemy

    query = (
        "SELECT datname FROM pg_database"
        if kind == "postgresql"
        else "SELECT schema_name FROM information_schema.schemata"
    )
    engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            names = [row[0] for row in connection.execute(sqlalchemy.text(query))]
    finally:
        engine.dispose()
    return sorted(n for n in names if n.startswith(f"{DATABASE_PREFIX}{run_tag()}"))


def database_prefix(owner: int, prefix: str = DATABASE_PREFIX) -> str:
    return f"{prefix}{run_tag()}{owner}_"


def owner_of(name: str) -> int | None:
    """The pid of the `run` that made a database, Redis key or scratch folder ``name``
    (``repro_[<tag>_]<pid>_...``, ``repro:[<tag>_]<pid>_...``, ``grid-repro-<pid>-...``),
    if it names one; any run tag, so that a clean without one still sees the owner."""
    base = os.path.basename(name)
    if base.startswith(SCRATCH_PREFIX):
        head = base[len(SCRATCH_PREFIX) :].split("-", 1)[0]
        return int(head) if head.isdigit() else None
    for prefix in (DATABASE_PREFIX, REDIS_PREFIX):
        if base.startswith(prefix):
            pieces = base[len(prefix) :].split("_", 2)
            return next((int(p) for p in pieces[:2] if p.isdigit()), None)
    return None


def sweep_databases(owner: int, kinds: set[str]) -> None:
    """Drop the databases of ``owner``'s lanes that are still there once no lane of it is
    alive (a lane stopped while its server was creating one); what fails stays for `clean`."""
    for kind in kinds & {"postgresql", "mysql"}:
        try:
            for name in leftovers(kind):
                if name.startswith(database_prefix(owner)):
                    remove_leftover(kind, name)
        except ChildFailed:
            continue


def leftovers(kind: str) -> list[str]:
    """Databases or Redis keys that runs of this harness (of this run tag, when one is set)
    created and did not remove."""
    result: list[str] = call(_list_leftovers, kind, server_url(kind), timeout=CONNECT_TIMEOUT)
    return result


@contextmanager
def isolated(kind: str, study_name: str, owner: int | None = None) -> Iterator[StorageSpec]:
    """A fresh database (or Redis prefix) on the server of ``kind`` for one study; removed on
    exit, also when the run failed. ``owner``: the pid whose sweep removes the database if
    its holder is killed (default: the parent, the `run` whose lane this is)."""
    admin = server_url(kind)
    timeout = 60.0
    # The `run` (the lane's parent) in every name, so that `clean` can tell a live run's
    # databases and keys from leftovers, and the run can sweep its own after stopping lanes.
    owner = os.getppid() if owner is None else owner
    if kind == "redis":
        spec = StorageSpec(
            "redis", admin, namespace=f"{database_prefix(owner, REDIS_PREFIX)}{study_name}"
        )
        try:
            yield spec
        finally:
            call(delete_keys, admin, spec.namespace, timeout=timeout)
        return
    name = f"{database_prefix(owner)}{uuid.uuid4().hex[:12]}"
    # FORCE (PostgreSQL 13+) ends sessions a killed worker may still hold open.
    drop = f"DROP DATABASE IF EXISTS {name}{' WITH (FORCE)' if kind == 'postgresql' else ''}"
    refused = False
    try:
        # Inside the try: an interrupt just after the CREATE still reaches the DROP.
        try:
            call(_admin, admin, f"CREATE DATABASE {name}", timeout=timeout)
        except ChildFailed as exc:
            refused = True
            raise StorageError(
                f"cannot create a database on {redact(admin)}: {_cause(exc)}"
            ) from None
        yield StorageSpec(kind, _with_database(admin, name))
    finally:
        if not refused:
            # A CREATE cut short by an interrupt: the server finishes it even if the client
            # dies, so let the helper see it through before dropping.
            # Only the harness's own forked helpers: the worker processes of a Dask
            # LocalCluster in this process are children too, and live on (2 s each per run).
            for child in CTX.active_children():
                if isinstance(child, CTX.Process):
                    child.join(2)
            call(_admin, admin, drop, timeout=timeout)


# `clean` and the runs it must not disturb. A run holds a shared flock on a file of its own in
# RUNS_DIR for its whole life (its lanes and workers inherit the descriptor); `clean` removes
# nothing while any such file is still locked, because it cannot tell which leftovers belong
# to a live run (server names carry no owner).
RUNS_DIR = "repro-runs"


def runs_dir() -> Path:
    return Path(scratch_dir() or tempfile.gettempdir()) / RUNS_DIR


@contextmanager
def alive_marker() -> Iterator[None]:
    """Mark this process (and its children) as a live run for ``clean`` while inside."""
    path = runs_dir() / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        path.parent.mkdir(mode=0o1777, exist_ok=True)  # never the scratch dir itself
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError:
        # An unusable scratch dir ($REPRO_TMPDIR=/nonexistent) fails every embedded run
        # anyway, and they are recorded as errors; it must not stop the server runs.
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)


def live_runs() -> list[str]:
    """``<pid>-<hex>`` of every run on this machine still alive; markers of dead runs are
    removed on the way."""
    alive = []
    folder = runs_dir()
    for path in sorted(folder.iterdir()) if folder.is_dir() else ():
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink(missing_ok=True)
        except BlockingIOError:
            alive.append(path.name)
        finally:
            os.close(fd)
    return alive


def live_pids() -> set[int]:
    """The pids of the runs alive on this machine (see ``alive_marker``)."""
    return {int(name.split("-")[0]) for name in live_runs()}


def in_use(name: str) -> bool:
    """Whether the process that made ``name`` (its pid is in the name) is still alive: a
    run started in-process by a test or a script holds no marker, and a run whose scratch
    dir differs from ours has its marker elsewhere, but its pid is alive all the same."""
    owner = owner_of(name)
    if owner is None:
        return False
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def scratch_leftovers() -> list[str]:
    """Scratch folders of embedded storages (``grid-repro-*``) in the scratch dir."""
    folder = Path(scratch_dir() or tempfile.gettempdir())
    return sorted(str(p) for p in folder.glob(f"{SCRATCH_PREFIX}*") if p.is_dir())


def _remove_leftover(kind: str, url: str, name: str) -> None:
    if kind == "redis":
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5).delete(name)
        return
    force = " WITH (FORCE)" if kind == "postgresql" else ""
    _admin(url, f"DROP DATABASE IF EXISTS {name}{force}")


def remove_leftover(kind: str, name: str) -> None:
    """Remove one name ``leftovers`` or ``scratch_leftovers`` listed."""
    if kind == "scratch":
        shutil.rmtree(name, ignore_errors=True)
        return
    call(_remove_leftover, kind, server_url(kind), name, timeout=60.0)


# Connections one worker process holds on a server storage at most (its storage's
# connection; Optuna's RDB storage and redis-py open one per thread in use, and a threads
# run's process counts as ``workers`` of them), and the connections a lane holds besides its
# workers (the helper that reads the study back, or makes it, one at a time).
LANE_CONNECTIONS = 1


@dataclass(frozen=True)
class ConnectionLimit:
    """How many more connections a server accepts now, and the settings that say so."""

    free: int
    detail: str


def _connection_limit(kind: str, url: str) -> ConnectionLimit:
    if kind == "redis":
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        limit = int(str(client.config_get("maxclients")["maxclients"]))
        used = int(client.info("clients")["connected_clients"]) - 1  # less this one
        return ConnectionLimit(limit - used, f"maxclients {limit}, {used} other clients connected")
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:

            def one(query: str) -> int:
                return int(connection.execute(sqlalchemy.text(query)).scalar() or 0)

            if kind == "postgresql":
                limit = one("SHOW max_connections")
                reserved = one("SHOW superuser_reserved_connections")
                reserved += one(
                    "SELECT coalesce((SELECT setting::int FROM pg_settings "
                    "WHERE name = 'reserved_connections'), 0)"
                )
                clients = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                used = one(clients + "'client backend'") - 1  # less this one
                return ConnectionLimit(
                    limit - reserved - used,
                    f"max_connections {limit}, {reserved} reserved, {used} others in use",
                )
            limit = one("SELECT @@max_connections")
            used = one("SELECT COUNT(*) FROM information_schema.PROCESSLIST") - 1
            return ConnectionLimit(
                limit - used, f"max_connections {limit}, {used} other connections in use"
            )
    finally:
        engine.dispose()


class LimitUnknown(StorageError):
    """The server would not say how many connections it accepts."""


def connection_limit(kind: str) -> ConnectionLimit:
    """Ask the server of ``kind`` how many more connections it accepts; LimitUnknown when it
    will not say (e.g. CONFIG is disabled on a managed Redis)."""
    url = server_url(kind)
    try:
        limit: ConnectionLimit = call(_connection_limit, kind, url, timeout=CONNECT_TIMEOUT)
    except ChildFailed as exc:
        raise LimitUnknown(
            f"cannot read the connection limit of {redact(url)}: {_cause(exc) or 'no answer'}"
        ) from None
    return limit


def check_connections(needs: dict[str, tuple[int, int]]) -> list[str]:
    """Before the first run: ``needs`` maps a server kind to (lanes, workers per run at
    most); raise StorageError, one line naming the limit and how to lower ``-j`` or
    ``--workers``, when lanes x (workers + LANE_CONNECTIONS) connections would not fit. The
    one-line reasons of the servers that would not say their limit are returned."""
    unknown = []
    for kind, (lanes, workers) in sorted(needs.items()):
        try:
            limit = connection_limit(kind)
        except LimitUnknown as exc:
            unknown.append(str(exc))
            continue
        need = lanes * (workers + LANE_CONNECTIONS)
        if need <= limit.free:
            continue
        fixes = []
        if (fit_lanes := limit.free // (workers + LANE_CONNECTIONS)) >= 1:
            fixes.append(f"-j {fit_lanes}")
        if (fit_workers := limit.free // lanes - LANE_CONNECTIONS) >= 1:
            fixes.append(f"--workers {fit_workers}" + (f" with -j {lanes}" if lanes > 1 else ""))
        advice = " or ".join(fixes) or "free connections on the server first"
        raise StorageError(
            f"{kind} at {redact(server_url(kind))} accepts {max(limit.free, 0)} more connections "
            f"({limit.detail}), but {lanes} lane(s) x ({workers} workers + "
            f"{LANE_CONNECTIONS}) need {need}: use {advice}, or raise the server's limit"
        )
    return unknown
