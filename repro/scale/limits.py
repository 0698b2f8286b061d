"""What must hold before a sweep cell starts its workers, measured on this machine: a cell whose
workers cannot all run at once measures queueing, not overlap, so it is refused with the limit
that blocks it, and recorded that way.

- PostgreSQL's ``max_connections`` (``SHOW``, less the slots reserved for superusers and the
  client connections already open): every worker holds one connection (one storage, one
  thread), the proxy server one per worker it serves at once, and the harness its own.
- The proxy server's thread pool and, behind it, its SQLAlchemy pool: both are sized to the
  workers (``proxy.threads_for``, ``_compat.serve_grpc_proxy``), and the check says so.
- The Dask cluster's slots (one single-threaded worker process per worker) and the memory its
  processes need: each Dask worker and its nanny import ``distributed`` (the worker Optuna too),
  measured as the resident size of one process that imports both.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from repro.fork import call
from repro.services import CONNECT_TIMEOUT, Unreachable, one_line, server_url

# The harness's own connections during a run, besides the workers': the admin connection that
# makes and drops the run's database, and the study's creation and read-back (one at a time).
HARNESS_CONNECTIONS = 2
# Resident size of a process that has imported Optuna and distributed (the Dask worker's);
# its nanny imports distributed only, counted at the same size to stay on the safe side.
PROCESSES_PER_DASK_WORKER = 2
_RSS_SCRIPT = (
    "import resource, optuna, distributed\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"  # KiB on Linux
)


# Client connections open now, less this one.
CLIENTS = "SELECT count(*) - 1 FROM pg_stat_activity WHERE backend_type = 'client backend'"


@dataclass(frozen=True)
class Capacity:
    """This machine's limits, measured once per sweep."""

    max_connections: int
    reserved_connections: int  # superuser_reserved_connections
    connections_in_use: int  # client connections open when measured (other users included)
    memory_available_mb: int  # MemAvailable
    dask_process_mb: int | None  # None: no Dask cell asked, not measured

    @property
    def free_connections(self) -> int:
        return self.max_connections - self.reserved_connections - self.connections_in_use

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _postgres_numbers(url: str) -> tuple[int, int, int]:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:

            def scalar(statement: str) -> int:
                return int(connection.execute(sqlalchemy.text(statement)).scalar_one())

            # This connection is not counted: it is closed before any worker starts.
            return (
                scalar("SHOW max_connections"),
                scalar("SHOW superuser_reserved_connections"),
                scalar(CLIENTS),
            )
    except Exception as exc:
        raise Unreachable(one_line(exc)) from None
    finally:
        engine.dispose()


def _memory_available_mb() -> int:
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    raise OSError("/proc/meminfo has no MemAvailable line")


def _dask_process_mb() -> int:
    done = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    return int(done.stdout.split()[-1]) // 1024


def measure(dask: bool) -> Capacity:
    """Ask PostgreSQL (in a forked child: the sweep's process holds no connection) and the
    kernel; with ``dask``, measure one Dask worker process's size."""
    max_connections, reserved, in_use = call(
        _postgres_numbers, server_url("postgresql"), timeout=CONNECT_TIMEOUT
    )
    return Capacity(
        max_connections,
        reserved,
        in_use,
        memory_available_mb=_memory_available_mb(),
        dask_process_mb=_dask_process_mb() if dask else None,
    )


def proxy_threads(workers: int) -> int:
    """The proxy server's thread pool for ``workers``: Optuna's default of 10 threads
    (server.py#L436 at v4.2.0, L30 at v5.1.0), or one per worker above that."""
    return max(10, workers)


def proxy_pool(threads: int) -> tuple[int, int]:
    """``pool_size`` and ``max_overflow`` of the proxy server's SQLAlchemy engine: its defaults
    (5 and 10) hold 15 connections; above that, enough for one per server thread."""
    return max(5, threads - 10), 10


@dataclass(frozen=True)
class Check:
    """A cell's limits: what it needs and has, and the limit that blocks it (None: it fits)."""

    needs: dict[str, int]
    blocked: str | None

    def to_json(self) -> dict[str, Any]:
        return {"needs": self.needs, "blocked": self.blocked}


def check(storage: str, workers: int, capacity: Capacity) -> Check:
    """Whether ``workers`` of a ``storage`` cell can all run at once on ``capacity``."""
    needs = {"connections": workers + HARNESS_CONNECTIONS}
    blocks: list[str] = []
    if needs["connections"] > capacity.free_connections:
        blocks.append(
            f"PostgreSQL max_connections: {needs['connections']} connections needed "
            f"({workers} workers + {HARNESS_CONNECTIONS} harness), {capacity.free_connections} "
            f"free (max_connections {capacity.max_connections} - "
            f"{capacity.reserved_connections} reserved - {capacity.connections_in_use} in use)"
        )
    if storage.startswith("grpc-"):
        threads = proxy_threads(workers)
        pool_size, overflow = proxy_pool(threads)
        needs |= {"proxy_threads": threads, "proxy_pool": pool_size + overflow}
        # Sized to the workers, so this holds by construction; stated, not assumed, in case
        # the sizing rule above is ever changed.
        if threads < workers or pool_size + overflow < workers:
            blocks.append(
                f"proxy pools: {threads} threads and {pool_size + overflow} database "
                f"connections for {workers} workers"
            )
    if storage.startswith("dask-"):
        needs["dask_slots"] = workers  # one single-threaded worker process each
        if capacity.dask_process_mb is not None:
            need_mb = workers * PROCESSES_PER_DASK_WORKER * capacity.dask_process_mb
            needs["memory_mb"] = need_mb
            if need_mb > capacity.memory_available_mb:
                blocks.append(
                    f"memory: {workers} Dask workers and nannies need about {need_mb} MB "
                    f"({PROCESSES_PER_DASK_WORKER} x {capacity.dask_process_mb} MB measured "
                    f"each), {capacity.memory_available_mb} MB available"
                )
    return Check(needs, "; ".join(blocks) or None)
