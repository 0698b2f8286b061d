"""Storage URL -> plain trial records of its studies, creating and changing nothing.

Opening a storage, Optuna would create what is missing: the SQLite or journal file, its
tables in a server database (and rows in them, see ``_compat.rdb_reader``). So each kind is
checked first with plain reads, and an SQLite file is opened read-only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from repro import services
from repro.scenarios import GridValue
from repro.storages import StorageError, StorageSpec, connect_args, from_url

# The key prefix of a study `worker` ran on Redis (cli._shared_storage); a user's own script
# gets Optuna's default, "".
OPTUNA_REDIS_PREFIX = ""


@dataclass(frozen=True)
class AuditTrial:
    """What the audit needs of one trial, as plain data."""

    number: int
    state: str  # Optuna's TrialState name
    params: dict[str, GridValue]
    # GridSampler's grid, stored with each trial it sampled; None for any other trial.
    space: dict[str, list[GridValue]] | None
    # enqueue_trial's params (a WAITING trial has no params yet); None if not enqueued.
    fixed: dict[str, GridValue] | None


@dataclass(frozen=True)
class StudyTrials:
    name: str
    trials: list[AuditTrial]


def storage_spec(url: str, study: str | None, redis_prefix: str | None) -> StorageSpec:
    """The spec of a user-given URL (forms as `worker` takes them). On Redis the key prefix is
    ``redis_prefix`` when given, else the one `worker` gives ``study`` when it has keys, else
    Optuna's default."""
    spec = from_url(url)
    if spec.kind != "redis":
        return spec
    if redis_prefix is None:
        redis_prefix = OPTUNA_REDIS_PREFIX
        if study is not None:
            worker = f"{services.REDIS_PREFIX}{services.run_tag()}{study}"
            if _redis_has_journal(spec.location, worker):
                redis_prefix = worker
    return StorageSpec("redis", spec.location, namespace=redis_prefix)


def _sqlite_path(url: str) -> str:
    import sqlalchemy

    return str(sqlalchemy.engine.make_url(url).database or "")


def _redis_has_journal(url: str, prefix: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    return bool(client.exists(f"{prefix}:log_number"))


def _driver_options(spec: StorageSpec) -> dict[str, object]:
    return {} if spec.kind == "sqlite" else connect_args(spec.location)


def _missing_tables(spec: StorageSpec) -> list[str]:
    """Which of Optuna's bookkeeping tables are absent or empty (plain SELECTs only)."""
    import sqlalchemy

    from repro import _compat

    engine = sqlalchemy.create_engine(_read_only_url(spec), connect_args=_driver_options(spec))
    try:
        present = set(sqlalchemy.inspect(engine).get_table_names())
        absent = [t for t in _compat.OPTUNA_TABLES if t not in present]
        if absent:
            return absent
        with engine.connect() as connection:
            return [
                t
                for t in _compat.OPTUNA_TABLES[1:]
                if connection.execute(sqlalchemy.text(f"SELECT COUNT(*) FROM {t}")).scalar() == 0
            ]
    finally:
        engine.dispose()


def check_present(spec: StorageSpec) -> None:
    """Raise StorageError (one line) unless ``spec`` holds an Optuna storage that opening will
    not change."""
    where = spec.redacted
    if spec.kind in ("sqlite", "journal"):
        path = _sqlite_path(spec.location) if spec.kind == "sqlite" else spec.location
        if not path or path == ":memory:":
            raise StorageError(f"{where}: names no file")
        if not os.path.isfile(path):
            raise StorageError(f"no storage at {where}: there is no file {path}")
        if spec.kind == "journal":
            return
    else:
        services.check_reachable(spec)
    if spec.kind == "redis":
        if not _redis_has_journal(spec.location, spec.namespace):
            raise StorageError(
                f"no Optuna journal in {where} under the key prefix {spec.namespace!r} "
                "(pass the prefix your JournalRedisBackend was given with --redis-prefix)"
            )
        return
    absent = _missing_tables(spec)
    if absent:
        raise StorageError(
            f"{where} is not an Optuna storage: no {', '.join(absent)} table or rows in it"
        )


def _read_only_url(spec: StorageSpec) -> str:
    if spec.kind != "sqlite":
        return spec.location
    path = os.path.abspath(_sqlite_path(spec.location))
    return f"sqlite:///file:{quote(path)}?mode=ro&uri=true"


@contextmanager
def _translated(spec: StorageSpec) -> Iterator[None]:
    """A database or journal error becomes one line naming the storage and the cause."""
    try:
        yield
    except RuntimeError as exc:  # the schema check: a database this Optuna cannot read
        raise StorageError(f"{spec.redacted}: {str(exc).splitlines()[0]}") from None
    except ValueError as exc:  # json: a file or key that holds no Optuna journal
        if spec.kind not in ("journal", "redis") or isinstance(exc, StorageError):
            raise
        raise StorageError(f"{spec.redacted} is not an Optuna journal ({exc})") from None
    except Exception as exc:
        if services.driver_error(exc) is None:
            raise
        raise StorageError(f"{spec.redacted}: {services.one_line(exc)}") from exc


@contextmanager
def opened(spec: StorageSpec, *, write: bool = False) -> Iterator[Any]:
    """The Optuna storage of a checked ``spec``: read-only unless ``write`` (repair)."""
    from repro import _compat

    _compat.quiet_optuna()
    with _translated(spec):
        check_present(spec)
        if spec.kind in ("sqlite", "postgresql", "mysql"):
            url = spec.location if write else _read_only_url(spec)
            storage = _compat.rdb_reader(url, _driver_options(spec))
        elif spec.kind == "journal":
            storage = _compat.journal_file_storage(spec.location)
        else:
            storage = _compat.journal_redis_storage(spec.location, spec.namespace)
        try:
            yield storage
        finally:
            _compat.dispose(storage)


def study_names(storage: Any) -> list[str]:
    return sorted(s.study_name for s in storage.get_all_studies())


def read(spec: StorageSpec, study: str | None) -> list[StudyTrials]:
    """Every study's trials (``study`` None), or that one study's; a study that is not there
    is a StorageError naming the ones that are."""
    from repro import _compat

    with opened(spec) as storage:
        names = study_names(storage)
        if study is not None:
            if study not in names:
                there = ", ".join(repr(n) for n in names[:5]) or "none"
                raise StorageError(f"no study {study!r} in {spec.redacted} (studies: {there})")
            names = [study]
        out = []
        for name in names:
            study_id = storage.get_study_id_from_name(name)
            trials = [
                AuditTrial(
                    number=t.number,
                    state=t.state.name,
                    params=dict(t.params),
                    space=(
                        t.system_attrs.get(_compat.SEARCH_SPACE_ATTR)
                        if _compat.GRID_ID_ATTR in t.system_attrs
                        else None
                    ),
                    fixed=t.system_attrs.get(_compat.FIXED_PARAMS_ATTR),
                )
                for t in storage.get_all_trials(study_id, deepcopy=False)
            ]
            out.append(StudyTrials(name, sorted(trials, key=lambda t: t.number)))
        return out
