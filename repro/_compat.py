"""Every difference between Optuna releases that the harness has to bridge, in one place.

The rest of the package never reads ``optuna.__version__`` and never touches a private
Optuna attribute; it asks this module.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import optuna

from repro.versions import version_key

OPTUNA_VERSION: str = optuna.__version__

GRID_ID_ATTR = "grid_id"

try:  # Optuna >= 4.0 moved the journal backends to optuna.storages.journal.
    from optuna.storages.journal import JournalFileBackend as _JournalFile
    from optuna.storages.journal import JournalRedisBackend as _JournalRedis
except ImportError:  # Optuna 3.x
    from optuna.storages import JournalFileStorage as _JournalFile  # type: ignore[no-redef]
    from optuna.storages import JournalRedisStorage as _JournalRedis  # type: ignore[no-redef]


def quiet_optuna() -> None:
    """Keep worker output to errors: the harness reports from the study, not from logs."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    optuna.logging.disable_propagation()
    logging.getLogger("optuna").setLevel(logging.ERROR)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    # 4.x deprecates names the harness does not use; 3.x has nothing to hide here.
    warnings.simplefilter("ignore", FutureWarning)


def sqlite_storage(url: str, schema_ready: bool = False) -> optuna.storages.BaseStorage:
    """An RDB storage on SQLite with a long busy timeout, as upstream #5489 configured it.
    ``schema_ready``: the tables exist (made by this Optuna), so neither create nor check
    them (both options exist from 3.0 on)."""
    return optuna.storages.RDBStorage(
        url=url,
        engine_kwargs={"connect_args": {"timeout": 60}},
        skip_compatibility_check=schema_ready,
        skip_table_creation=schema_ready,
    )


def rdb_storage(
    url: str, connect_args: Mapping[str, object], schema_ready: bool = False
) -> optuna.storages.BaseStorage:
    """An RDB storage on a server database (PostgreSQL, MySQL/MariaDB) with the driver options
    ``connect_args`` (``storages.connect_args``) and otherwise Optuna's own engine defaults, as
    a user who passes a URL gets them: ``pool_pre_ping`` on MySQL only (every release from
    3.2.0 sets it there when not given). ``schema_ready`` as for SQLite."""
    return optuna.storages.RDBStorage(
        url=url,
        engine_kwargs={"connect_args": dict(connect_args)},
        skip_compatibility_check=schema_ready,
        skip_table_creation=schema_ready,
    )


def journal_file_storage(path: str) -> optuna.storages.BaseStorage:
    """Optuna's journal storage on a local file: JournalFileBackend (4.x) or
    JournalFileStorage (3.x)."""
    return optuna.storages.JournalStorage(_JournalFile(path))


def journal_redis_storage(url: str, prefix: str) -> optuna.storages.BaseStorage:
    """Optuna's journal storage on Redis: JournalRedisBackend (4.x) or JournalRedisStorage
    (3.x); both keep their keys under ``prefix:``."""
    return optuna.storages.JournalStorage(_JournalRedis(url, prefix=prefix))


def dispose(storage: optuna.storages.BaseStorage) -> None:
    """Release connections a storage holds (RDB engines keep a pool, and so does the Redis
    client of a journal storage on Redis), so that none is left open in a process that forks
    afterwards (``runner.run`` creates the study and reads it back in its own process)."""
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()
    # The backend is ``JournalStorage._backend`` and its client ``_redis`` on every pinned
    # release (v3.2.0 optuna/storages/_journal/storage.py#L104 and redis.py#L42; v3.6.1
    # storage.py#L103, redis.py#L42; v5.0.0-rc1 storages/journal/_storage.py#L104, _redis.py#L43).
    if isinstance(storage, optuna.storages.JournalStorage):
        backend = storage._backend
        if isinstance(backend, _JournalRedis):
            backend._redis.close()
    # The gRPC client's channel: ``close`` exists from 4.3.0 on; at 4.2.0 the channel goes
    # with the process.
    if GRPC_PROXY and isinstance(storage, optuna.storages.GrpcStorageProxy):
        close = getattr(storage, "close", None)
        if close is not None:
            close()


def grid_sampler(
    search_space: Mapping[str, Sequence[Any]], seed: int | None
) -> optuna.samplers.GridSampler:
    return optuna.samplers.GridSampler(dict(search_space), seed=seed)


def grid_order(sampler: optuna.samplers.GridSampler) -> list[dict[str, Any]]:
    """The point each grid id stands for, in this sampler: grid id ``i`` is element ``i``.

    Every release from 3.2.0 to 5.x keeps the grid in ``_all_grids`` (tuples ordered like
    ``_param_names``); from 3.4.0 it is shuffled in ``__init__``.
    """
    names: list[str] = list(sampler._param_names)
    return [dict(zip(names, point)) for point in sampler._all_grids]


@functools.cache
def warm_up() -> None:
    """Pay Optuna's lazy imports (SQLAlchemy mappers, Alembic: over a second on first use) once
    in the parent, so forked workers start warm. The throwaway storage is disposed before any
    fork and shares nothing with the studies under test. Also imported here, since every
    worker would otherwise import them itself: ``numpy.random`` (NumPy loads it on first use,
    which is a sampler's first draw from 3.6 on) and the server drivers with their SQLAlchemy
    dialects, where they are installed."""
    import importlib
    import tempfile

    import numpy.random  # noqa: F401

    for module in (
        "psycopg2",
        "pymysql",
        "sqlalchemy.dialects.postgresql.psycopg2",
        "sqlalchemy.dialects.mysql.pymysql",
    ):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    quiet_optuna()
    with tempfile.TemporaryDirectory(prefix="grid-repro-warmup-") as tmp:
        storage = sqlite_storage(f"sqlite:///{tmp}/warmup.db")
        dispose(storage)
        journal_file_storage(f"{tmp}/warmup.log")


# Remedies. BruteForceSampler exists from 3.1.0 and takes ``seed`` on every pinned release
# (3.2.0: np.random.RandomState(seed); 3.6.1 on: LazyRandomState(seed)); the "bruteforce"
# remedy leaves ``avoid_premature_stop`` at its default as a user would, "bruteforce-strict"
# sets it. The argument exists from 4.3.0 on (optuna#5893; v4.2.1's __init__ takes ``seed``
# only): ``expectations.REMEDY_SINCE`` holds that bound with its citation.
AVOID_PREMATURE_STOP: bool = (
    "avoid_premature_stop" in inspect.signature(optuna.samplers.BruteForceSampler).parameters
)


def remedy_available(remedy: str) -> bool:
    """Whether the installed Optuna has what ``remedy`` needs."""
    return remedy != "bruteforce-strict" or AVOID_PREMATURE_STOP


def remedy_sampler(
    remedy: str, search_space: Mapping[str, Sequence[Any]], seed: int | None
) -> optuna.samplers.BaseSampler:
    """The sampler each worker builds under ``remedy``: GridSampler for today's pattern and the
    bigger budgets, BruteForceSampler, or RandomSampler popping the enqueued grid (an enqueued
    trial's ``fixed_params`` win over any sampler, so the plain one only matters once the
    queue is empty)."""
    if remedy == "bruteforce":
        return optuna.samplers.BruteForceSampler(seed=seed)
    if remedy == "bruteforce-strict":
        return optuna.samplers.BruteForceSampler(seed=seed, avoid_premature_stop=True)
    if remedy == "enqueued":
        return optuna.samplers.RandomSampler(seed=seed)
    return grid_sampler(search_space, seed)


def sampler_order(sampler: optuna.samplers.BaseSampler) -> list[dict[str, Any]] | None:
    """The grid order of a GridSampler; None for samplers without one."""
    if isinstance(sampler, optuna.samplers.GridSampler):
        return grid_order(sampler)
    return None


def counted_states(remedy: str) -> tuple[optuna.trial.TrialState, ...] | None:
    """The states MaxTrialsCallback counts. None (every state) as in #5489, except for the
    enqueued grid: its WAITING trials would count from the start and stop every worker after
    one trial, so there it counts the trials a worker has claimed or finished."""
    if remedy != "enqueued":
        return None
    state = optuna.trial.TrialState
    return (state.RUNNING, state.COMPLETE, state.PRUNED, state.FAIL)


def enqueue_points(study: optuna.Study, points: Sequence[Mapping[str, Any]]) -> None:
    """Enqueue every point once, in order. ``enqueue_trial`` has the same signature for our use
    (params only) on every pinned release; in 3.x it warns as experimental, silenced by
    quiet_optuna."""
    for point in points:
        study.enqueue_trial(dict(point))


# Reading a user's study (`audit`). Every pinned release (3.2.0 to 5.x) runs, on opening an
# RDBStorage: ``create_all`` unless ``skip_table_creation`` (it makes any missing table), then
# ``_VersionManager``, which writes a version_info row when there is none and stamps
# alembic_version when it is empty, whatever the flags; ``skip_compatibility_check=False``
# only reads. So a reader skips table creation, keeps the check (a schema this Optuna cannot
# read becomes its one-line error), and opens only a database whose three tables are filled.
# Their schema head is v3.2.0.a on every release from 3.2.0 to 5.0.0, so a study written by
# any of them is read by any other.
OPTUNA_TABLES = ("studies", "version_info", "alembic_version")


def rdb_reader(url: str, connect_args: Mapping[str, object]) -> optuna.storages.BaseStorage:
    """An RDB storage that creates nothing (see above)."""
    return optuna.storages.RDBStorage(
        url=url,
        engine_kwargs={"connect_args": dict(connect_args)},
        skip_compatibility_check=False,
        skip_table_creation=True,
    )


# What GridSampler stores with each trial it samples, on every release from 3.2.0 to 5.x:
# "search_space" (its grid, names sorted) and "grid_id" (an index into its own, from 3.4.0
# shuffled, list of points: never a key across workers). An enqueued trial carries
# "fixed_params" and GridSampler leaves it alone (no grid id) on every release.
SEARCH_SPACE_ATTR = "search_space"
FIXED_PARAMS_ATTR = "fixed_params"


def journal_file_expression(path: str) -> str:
    """The Python expression a user writes for a journal file storage with this Optuna."""
    if _JournalFile.__name__ == "JournalFileBackend":
        backend = f"optuna.storages.journal.JournalFileBackend({path!r})"
    else:
        backend = f"optuna.storages.JournalFileStorage({path!r})"
    return f"optuna.storages.JournalStorage({backend})"


def journal_redis_expression(url: str, prefix: str) -> str:
    """The Python expression a user writes for a journal storage on Redis with this Optuna."""
    if _JournalRedis.__name__ == "JournalRedisBackend":
        backend = f"optuna.storages.journal.JournalRedisBackend({url!r}, prefix={prefix!r})"
    else:
        backend = f"optuna.storages.JournalRedisStorage({url!r}, prefix={prefix!r})"
    return f"optuna.storages.JournalStorage({backend})"


# Optuna's gRPC storage proxy: ``GrpcStorageProxy`` and ``run_grpc_proxy_server`` are exported
# by ``optuna.storages`` from 4.2.0 on, both experimental there
# (https://github.com/optuna/optuna/blob/v4.2.0/optuna/storages/_grpc/client.py#L33-L34,
# server.py#L444-L451); v4.1.0 has no ``_grpc`` package. They import ``grpc`` (grpcio) and
# the generated protobuf modules lazily, so the names exist without grpcio installed.
GRPC_PROXY_SINCE = "4.2.0"
GRPC_PROXY: bool = hasattr(optuna.storages, "GrpcStorageProxy")


def grpc_proxy_storage(host: str, port: int) -> optuna.storages.BaseStorage:
    """The client a worker opens: every call goes to the proxy server at ``host:port``."""
    return optuna.storages.GrpcStorageProxy(host=host, port=port)


def serve_grpc_proxy(
    storage: optuna.storages.BaseStorage,
    host: str,
    port: int,
    threads: int = 10,
    pool: tuple[int, int] | None = None,
) -> None:
    """Serve ``storage`` at ``host:port`` until the process is stopped, on ``threads`` server
    threads (``run_grpc_proxy_server`` takes a ``thread_pool`` from 4.2.0 on, default 10
    threads: server.py#L433-L451 at v4.2.0). An RDB storage is wrapped as ``get_storage``
    wraps it, which the proxy's documentation asks for (server.py#L466-L469 at v4.2.0): the
    server then answers from Optuna's in-process trial cache. Each thread that serves a call
    holds a connection of the RDB storage's SQLAlchemy pool (5 + 10 overflow by default):
    ``pool`` (``pool_size``, ``max_overflow``) makes its engine anew with room for one
    connection per thread, since waiting for a connection there would be queueing too."""
    from concurrent.futures import ThreadPoolExecutor

    if isinstance(storage, optuna.storages.RDBStorage) and pool is not None:
        pool_size, overflow = pool
        engine_kwargs = {**storage.engine_kwargs, "pool_size": pool_size, "max_overflow": overflow}
        storage.engine.dispose()
        storage = optuna.storages.RDBStorage(
            storage.url,
            engine_kwargs=engine_kwargs,
            skip_compatibility_check=True,
            skip_table_creation=True,
        )
    backend = optuna.storages.get_storage(storage)
    optuna.storages.run_grpc_proxy_server(
        backend, host=host, port=port, thread_pool=ThreadPoolExecutor(max_workers=threads)
    )


# DaskStorage (optuna_integration's, experimental from 3.1.0): every call of the storage runs
# in the scheduler's event loop, on the storage it wraps there (``get_storage(storage)``: an
# InMemoryStorage for ``storage=None``, an RDB storage behind Optuna's cache for a URL). Up to
# 3.5.x the class is Optuna's own (v3.2.0 optuna/integration/dask.py#L404-L417); from 3.6.0
# that module only re-exports ``optuna_integration.dask`` (v3.6.1 optuna/integration/dask.py#L1),
# so the optuna-integration package is needed (its 3.6.0 installs beside Optuna 3.6.x).
DASK_STORAGE_IN_OPTUNA: bool = version_key(OPTUNA_VERSION) < version_key("3.6.0")


def dask_storage(client: Any, url: str | None) -> optuna.storages.BaseStorage:
    """``DaskStorage(url)`` registered on ``client``'s scheduler: in memory there for None."""
    if DASK_STORAGE_IN_OPTUNA:
        from optuna.integration.dask import DaskStorage
    else:
        from optuna_integration.dask import DaskStorage  # type: ignore[import-not-found]
    storage: optuna.storages.BaseStorage = DaskStorage(storage=url, client=client)
    return storage
