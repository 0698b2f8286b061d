"""Worker processes. Each worker is a forked child of a parent that has already imported Optuna,
so it pays neither a fresh interpreter nor a fresh ``import optuna``; it builds its own storage
connection and its own GridSampler after the fork, exactly as a separate script would.

Workers return plain records (``WorkerResult``, ``TrialRecord``) through a pipe
(``repro.fork`` pickles them); only ``runner.record`` turns them into the JSON of a run.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from multiprocessing.context import BaseContext
from typing import Any

import optuna

from repro import _compat, services
from repro.metrics import TrialRecord, point_key
from repro.scenarios import Scenario
from repro.storages import StorageError, StorageSpec, open_storage
from repro.sync import Phaser, StorageBarrier

Barrier = Phaser | StorageBarrier

# One user attr per trial (each is a storage write): {"worker": index, "phase": barrier round,
# "pid": process id, "host": host name}. Written by workers that have no ``Attribution`` (those
# started by hand and Dask tasks), where the storage is all that `collect` and the run read
# back. The process tells `collect` when two workers started by hand were given the same index.
TAG_ATTR = "repro"
# The storages that keep Optuna's tables, which concurrent openers may race to create.
RDB_STORAGES = ("sqlite", "postgresql", "mysql")


@contextmanager
def _driver_errors(spec: StorageSpec) -> Iterator[None]:
    """A database error becomes a StorageError naming the storage and the driver's own error,
    so that the last line of a recorded traceback (and the one line of `worker` and `collect`)
    says what failed instead of SQLAlchemy's link. Other errors pass unchanged."""
    try:
        yield
    except Exception as exc:
        if services.driver_error(exc) is None:
            raise
        raise StorageError(f"{spec.redacted}: {services.one_line(exc)}") from exc


@contextmanager
def _opened(spec: StorageSpec) -> Iterator[optuna.storages.BaseStorage]:
    _compat.quiet_optuna()
    with _driver_errors(spec):
        storage = open_storage(spec)
        try:
            yield storage
        finally:
            _compat.dispose(storage)


class Attribution:
    """Which worker ran each trial, and in which barrier round, for workers forked by the run:
    shared memory (made before the fork) with one slot per trial number, written by the one
    worker that ran that trial and read by the parent once the workers are gone. It stands in
    for the per-trial tag, a storage write that a user's script does not make, and what a
    worker wrote is kept when it is killed later. ``capacity`` bounds the trial numbers: every
    trial a run makes (``runner.trial_capacity``)."""

    def __init__(self, ctx: BaseContext, capacity: int) -> None:
        # 0: no trial there; else the worker index + 1 and the barrier round + 1 (0: none).
        self._worker: Any = ctx.Array("i", capacity, lock=False)
        self._phase: Any = ctx.Array("i", capacity, lock=False)

    def record(self, number: int, worker: int, phase: int | None) -> None:
        self._phase[number] = 0 if phase is None else phase + 1
        self._worker[number] = worker + 1

    def apply(self, trials: Sequence[TrialRecord]) -> list[TrialRecord]:
        """``trials`` with the worker and round of each trial that a worker recorded here; a
        trial tagged in the storage (``TAG_ATTR``) keeps its tag."""
        out = []
        for t in trials:
            worker = self._worker[t.number] if t.number < len(self._worker) else 0
            if t.worker is None and worker:
                phase = self._phase[t.number]
                t = replace(t, worker=worker - 1, phase=phase - 1 if phase else None)
            out.append(t)
        return out


@dataclass(frozen=True)
class WorkerPlan:
    """Everything a worker needs, as plain data: no Optuna object crosses the fork."""

    scenario: Scenario
    storage: StorageSpec
    study_name: str
    worker_index: int
    n_trials: int
    n_jobs: int
    barrier_timeout: float
    # Concurrent workers started by hand on several hosts meet through the storage instead.
    storage_barrier: bool = False


@dataclass(frozen=True)
class WorkerResult:
    """What one worker process reports; the run record holds its JSON form."""

    index: int
    pid: int
    sampler_pid: int | None
    seed: int | None
    order_fingerprint: str | None
    startup_s: float | None
    elapsed_s: float
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def order_fingerprint(order: list[dict[str, Any]]) -> str:
    text = json.dumps([point_key(point) for point in order])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_worker(
    plan: WorkerPlan,
    phaser: Phaser | None,
    spawned_at: float,
    attribution: Attribution | None = None,
) -> WorkerResult:
    """Body of one worker process. Each trial's worker and barrier round go to
    ``attribution`` when the run gives one, else into the trial's ``TAG_ATTR``."""
    try:
        with _driver_errors(plan.storage):
            return _run_worker(plan, phaser, spawned_at, attribution)
    finally:
        # Also on failure, so the other workers finish their rounds without this one.
        if phaser is not None:
            phaser.deregister()


def _run_worker(
    plan: WorkerPlan,
    phaser: Barrier | None,
    spawned_at: float,
    attribution: Attribution | None,
) -> WorkerResult:
    _compat.quiet_optuna()
    scenario = plan.scenario
    seed = scenario.seed_for(plan.worker_index)
    storage = open_storage(plan.storage)
    sampler = _compat.remedy_sampler(scenario.remedy, scenario.space_dict(), seed)
    sampler_pid = os.getpid()
    order = _compat.sampler_order(sampler)
    fingerprint = order_fingerprint(order) if order is not None else None
    study = optuna.load_study(study_name=plan.study_name, storage=storage, sampler=sampler)
    if plan.storage_barrier:
        phaser = StorageBarrier(study, plan.worker_index, scenario.workers)
    startup = time.perf_counter() - spawned_at
    space = scenario.space_dict()
    process = {"pid": os.getpid(), "host": socket.gethostname()}

    def objective(trial: optuna.Trial) -> float:
        for name, values in space.items():
            trial.suggest_categorical(name, values)
        phase = None
        if phaser is not None:
            # Every live worker holds a RUNNING trial here at the same moment.
            phase = phaser.arrive_and_wait(plan.barrier_timeout)
        if attribution is None:
            trial.set_user_attr(TAG_ATTR, {"worker": plan.worker_index, "phase": phase, **process})
        else:
            attribution.record(trial.number, plan.worker_index, phase)
        return 0.0

    started = time.perf_counter()
    try:
        study.optimize(
            objective,
            n_trials=plan.n_trials,
            n_jobs=plan.n_jobs,
            catch=(),
            # As in #5489: the study as a whole stops at its budget (the grid size unless a
            # remedy gives more), whatever each worker's quota.
            callbacks=[
                optuna.study.MaxTrialsCallback(
                    scenario.budget, states=_compat.counted_states(scenario.remedy)
                )
            ],
        )
    finally:
        if plan.storage_barrier and phaser is not None:
            phaser.deregister()
        _compat.dispose(storage)
    return WorkerResult(
        index=plan.worker_index,
        pid=os.getpid(),
        sampler_pid=sampler_pid,
        seed=seed,
        order_fingerprint=fingerprint,
        startup_s=startup,
        elapsed_s=time.perf_counter() - started,
        error=None,
    )


SCENARIO_ATTR = "repro_scenario"
SPACE_ATTR = "repro_search_space"


def create_study(spec: StorageSpec, study_name: str, scenario: Scenario) -> None:
    """Create the study, or join it when another worker (on another host) already did; the
    scenario is recorded in the study so that ``collect`` needs nothing but the storage."""
    _compat.quiet_optuna()
    with _driver_errors(spec):
        storage = _open_racing(spec)
        try:
            study = optuna.create_study(
                study_name=study_name, storage=storage, direction="minimize", load_if_exists=True
            )
            study.set_user_attr(SCENARIO_ATTR, scenario.id)
            study.set_user_attr(SPACE_ATTR, [[n, list(v)] for n, v in scenario.search_space])
        finally:
            _compat.dispose(storage)


def create_schema(spec: StorageSpec) -> None:
    """Make Optuna's tables (and its schema version record) in an empty database."""
    _compat.quiet_optuna()
    with _opened(spec):
        pass


def enqueue_grid(spec: StorageSpec, study_name: str, scenario: Scenario) -> None:
    """The "enqueued" remedy's one step before any worker starts: every grid point becomes a
    WAITING trial, which the workers then claim (optuna/optuna#2210)."""
    _compat.quiet_optuna()
    storage = open_storage(spec)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
        names = [name for name, _ in scenario.search_space]
        points = itertools.product(*(values for _, values in scenario.search_space))
        _compat.enqueue_points(study, [dict(zip(names, p)) for p in points])
    finally:
        _compat.dispose(storage)


def _open_racing(spec: StorageSpec, attempts: int = 5) -> optuna.storages.BaseStorage:
    """Open a storage that other workers may be initialising at the same moment: on a fresh
    PostgreSQL database, Optuna's table creation in one process fails with a unique violation
    when another creates the same type first. The loser retries and finds the tables. A
    storage without tables (a journal) fails for another cause, which a retry would only
    repeat: on a Redis server that stops answering, once per socket timeout."""
    for attempt in range(attempts):
        try:
            return open_storage(spec)
        except Exception:
            if spec.kind not in RDB_STORAGES or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def require_study(spec: StorageSpec, study_name: str) -> None:
    """Raise StorageError naming the study and the storage unless the study is there, and
    create nothing on the way: opening a storage, Optuna creates the SQLite or journal file, or
    its tables in a server database. So the file must exist, and Optuna's tables (or the Redis
    prefix's keys) must be there, before Optuna opens anything."""
    missing = f"no study {study_name!r} in {spec.redacted}"
    with _driver_errors(spec):
        if spec.kind in ("sqlite", "journal"):
            path = _sqlite_path(spec.location) if spec.kind == "sqlite" else spec.location
            if not os.path.isfile(path):
                raise StorageError(f"{missing}: there is no file {path}")
        if spec.kind in ("sqlite", "postgresql", "mysql") and not _has_optuna_tables(spec):
            raise StorageError(f"{missing}: the database has no Optuna tables")
        if spec.kind == "redis" and not _has_keys(spec):
            raise StorageError(f"{missing}: no keys under {spec.namespace}:")
    with _opened(spec) as storage:
        try:
            storage.get_study_id_from_name(study_name)
        except KeyError:
            raise StorageError(missing) from None


def _sqlite_path(url: str) -> str:
    import sqlalchemy

    return str(sqlalchemy.engine.make_url(url).database or "")


def _has_optuna_tables(spec: StorageSpec) -> bool:
    import sqlalchemy

    engine = sqlalchemy.create_engine(spec.location)
    try:
        return bool(sqlalchemy.inspect(engine).has_table("studies"))
    finally:
        engine.dispose()


def _has_keys(spec: StorageSpec) -> bool:
    import redis

    client = redis.Redis.from_url(spec.location, socket_connect_timeout=5, socket_timeout=5)
    return next(client.scan_iter(match=f"{spec.namespace}:*", count=1000), None) is not None


@dataclass(frozen=True)
class StudyRecord:
    """What ``collect`` reads of a study that `worker` commands ran."""

    scenario_id: str
    search_space: list[list[Any]]
    trials: list[TrialRecord]
    # Worker index -> "host:pid" of each process that ran trials under it; more than one means
    # two workers were started with the same --worker-index.
    processes: dict[int, list[str]]


def read_study(spec: StorageSpec, study_name: str) -> StudyRecord:
    with _opened(spec) as storage:
        study = optuna.load_study(study_name=study_name, storage=storage)
        attrs = study.user_attrs
        if SCENARIO_ATTR not in attrs or SPACE_ATTR not in attrs:
            raise StorageError(
                f"study {study_name!r} in {spec.redacted} was not made by "
                "`python -m repro worker` (it names no scenario)"
            )
        trials = study.get_trials(deepcopy=False)
        processes: dict[int, set[str]] = {}
        for t in trials:
            tag = t.user_attrs.get(TAG_ATTR, {})
            if tag.get("worker") is not None and "pid" in tag:
                key = f"{tag.get('host')}:{tag['pid']}"
                processes.setdefault(tag["worker"], set()).add(key)
        return StudyRecord(
            scenario_id=attrs[SCENARIO_ATTR],
            search_space=attrs[SPACE_ATTR],
            trials=[_trial_record(t) for t in trials],
            processes={i: sorted(p) for i, p in sorted(processes.items())},
        )


def _trial_record(t: optuna.trial.FrozenTrial) -> TrialRecord:
    tag = t.user_attrs.get(TAG_ATTR, {})
    return TrialRecord(
        number=t.number,
        state=t.state.name,
        params=dict(t.params),
        grid_id=t.system_attrs.get(_compat.GRID_ID_ATTR),
        worker=tag.get("worker"),
        phase=tag.get("phase"),
    )


def read_trials(spec: StorageSpec, study_name: str) -> list[TrialRecord]:
    with _opened(spec) as storage:
        study = optuna.load_study(study_name=study_name, storage=storage)
        return [_trial_record(t) for t in study.get_trials(deepcopy=False)]


def delete_study(spec: StorageSpec, study_name: str) -> None:
    with _opened(spec) as storage:
        optuna.delete_study(study_name=study_name, storage=storage)
