"""Optuna's Dask example pattern (optuna-examples dask/dask_simple.py): one study and one
sampler made on the client, then ``client.submit(study.optimize, objective, n_trials=...,
callbacks=..., pure=False)`` per worker, so that the study, its storage and its sampler are
pickled into every task. Each task unpickles its own copy: its own storage connection (or, for
``DaskStorage``, its own handle on the storage that lives in the scheduler) and a sampler whose
random state is the client's, the same in every task.

The objective tags each trial with the worker (the task that ran it, known by its key), its
process and its sampler's grid order, so that the run record attributes trials as a run of
``workers.run_worker`` does. Concurrent workers meet through the storage
(``sync.StorageBarrier``); a task that ends, whether done, failed or lost with its worker,
is marked done there by the client, since ``study.optimize`` gives the task no last word."""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import optuna

from repro import _compat, runner, workers
from repro.errors import ReproError
from repro.results import RunRecord
from repro.scale import dask
from repro.scenarios import Scenario
from repro.storages import StorageSpec, open_storage
from repro.sync import StorageBarrier
from repro.workers import TAG_ATTR, WorkerResult

if TYPE_CHECKING:
    from distributed import Client

PATTERNS = ("own", "pickled")
# Where the pickled study keeps its trials: the run's database itself, or DaskStorage (in the
# scheduler's memory, or over the run's database).
DASK_STORAGES = ("off", "memory", "database")


class PatternError(ReproError):
    """A shape the pattern cannot run (one sampler has one seed)."""


def require_dask_storage() -> None:
    """Raise MissingExtra where DaskStorage needs a package that is not installed."""
    from repro.scale.extras import EXTRA, MissingExtra, require_distributed

    require_distributed()
    if not _compat.DASK_STORAGE_IN_OPTUNA and not _installed("optuna_integration"):
        raise MissingExtra(
            "--dask-storage needs optuna-integration (DaskStorage's home from Optuna 3.6.0), "
            f"which is not installed: {EXTRA}"
        )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # a module blocked by a None entry in sys.modules
        return False


def check(scenario: Scenario) -> None:
    """One sampler is pickled into every task, so there is one seed for all of them."""
    if scenario.seed_policy == "per-worker":
        raise PatternError(
            "--dask-pattern pickled makes one sampler for every task: --seed-policy per-worker "
            "does not apply (use none or shared)"
        )
    if scenario.mode not in ("sequential", "concurrent"):
        raise PatternError(f"--dask-pattern pickled runs no {scenario.mode} mode")


class TaggedObjective:
    """The scenario's objective: suggests every parameter of the grid, waits at the storage
    barrier when the workers are concurrent, and tags the trial with its worker. Pickled into
    every task; the barrier it builds lives in the task's process."""

    def __init__(self, scenario: Scenario, keys: dict[str, int], barrier_timeout: float) -> None:
        self._space = scenario.space_dict()
        self._keys = keys
        self._parties = scenario.workers
        self._concurrent = scenario.mode == "concurrent"
        self._barrier_timeout = barrier_timeout
        self._barriers: dict[int, StorageBarrier] = {}

    def __call__(self, trial: optuna.Trial) -> float:
        from distributed import get_worker

        # The task's process logs as the harness's own workers do: errors only.
        _compat.quiet_optuna()
        index = self._keys[str(get_worker().get_current_task())]
        for name, values in self._space.items():
            trial.suggest_categorical(name, values)
        order = _compat.sampler_order(trial.study.sampler)
        tag = {
            "worker": index,
            "phase": None,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "order": workers.order_fingerprint(order) if order is not None else None,
        }
        if self._concurrent:
            barrier = self._barriers.setdefault(
                index, StorageBarrier(trial.study, index, self._parties)
            )
            # Every live worker holds a RUNNING trial here at the same moment.
            tag["phase"] = barrier.arrive_and_wait(self._barrier_timeout)
        trial.set_user_attr(TAG_ATTR, tag)
        return 0.0


@contextmanager
def client_storage(
    client: Client, dask_storage: str, spec: StorageSpec | None
) -> Iterator[optuna.storages.BaseStorage]:
    """The storage the client's study is made on: the run's database (``spec``) as a user's
    script opens it, or DaskStorage registered on the scheduler, in memory or over ``spec``."""
    if dask_storage == "memory":
        storage = _compat.dask_storage(client, None)
    elif spec is None:
        raise PatternError(f"--dask-storage {dask_storage} needs the run's database")
    elif dask_storage == "database":
        storage = _compat.dask_storage(client, spec.location)
    else:
        storage = open_storage(spec)
    try:
        yield storage
    finally:
        _compat.dispose(storage)


def run(
    scenario: Scenario,
    repetition: int,
    client: Client,
    open_client_storage: Callable[[], Any],
    *,
    timeout: float = runner.DEFAULT_TIMEOUT,
    barrier_timeout: float = runner.BARRIER_TIMEOUT,
) -> RunRecord:
    """One run of the pattern on the storage ``open_client_storage()`` enters (a context
    manager), measured from the client's study. Never raises for a task's failure: the
    record's ``error`` (or ``worker_crashes`` under a remedy) carries it."""
    check(scenario)
    _compat.quiet_optuna()
    began = time.perf_counter()
    deadline = time.monotonic() + timeout
    study_name = f"repro-{scenario.id}-r{repetition}-{uuid.uuid4().hex[:8]}"
    with open_client_storage() as storage:
        study = optuna.create_study(
            study_name=study_name,
            storage=storage,
            sampler=_compat.remedy_sampler(
                scenario.remedy, scenario.space_dict(), scenario.seed_for(0)
            ),
            direction="minimize",
        )
        if scenario.remedy == "enqueued":
            names = [name for name, _ in scenario.search_space]
            points = itertools.product(*(values for _, values in scenario.search_space))
            _compat.enqueue_points(study, [dict(zip(names, p)) for p in points])
        results = _launch(scenario, client, study, deadline, barrier_timeout)
        frozen = study.get_trials(deepcopy=False)
    trials = [workers._trial_record(t) for t in frozen]
    tags = [t.user_attrs.get(TAG_ATTR, {}) for t in frozen]
    worker_results = [_attributed(r, tags) for r in results]
    errors, crashes = runner.worker_failures(scenario, worker_results)
    return runner.record(
        scenario,
        repetition,
        trials,
        worker_results,
        errors,
        seconds=round(time.perf_counter() - began, 3),
        study_name=study_name,
        worker_crashes=crashes,
    )


def _launch(
    scenario: Scenario,
    client: Client,
    study: optuna.Study,
    deadline: float,
    barrier_timeout: float,
) -> list[WorkerResult]:
    """Submit ``study.optimize`` once per worker (all at once when concurrent, one after
    another when sequential); one result per worker, errors included."""
    from distributed import as_completed

    run_tag = uuid.uuid4().hex[:8]
    keys = {f"repro-pickled-{i}-{run_tag}": i for i in range(scenario.workers)}
    objective = TaggedObjective(scenario, keys, barrier_timeout)
    callbacks = [
        optuna.study.MaxTrialsCallback(
            scenario.budget, states=_compat.counted_states(scenario.remedy)
        )
    ]

    def submit(key: str) -> Any:
        return client.submit(
            study.optimize,
            objective,
            n_trials=scenario.trials_each,
            catch=(),
            callbacks=callbacks,
            key=key,
            pure=False,
        )

    seed = scenario.seed_for(0)
    results: dict[int, WorkerResult] = {}

    def settle(index: int, future: Any, began: float) -> None:
        _, error = dask.task_outcome(future, deadline)
        if scenario.mode == "concurrent":
            # The others stop waiting for this worker at the barrier.
            StorageBarrier(study, index, scenario.workers).deregister()
        results[index] = WorkerResult(
            index=index,
            pid=-1,
            sampler_pid=None,
            seed=seed,
            order_fingerprint=None,
            startup_s=None,
            elapsed_s=time.perf_counter() - began,
            error=error,
        )

    if scenario.mode == "sequential":
        for key, index in keys.items():
            began = time.perf_counter()
            settle(index, submit(key), began)
    else:
        began = time.perf_counter()
        futures = {submit(key): index for key, index in keys.items()}
        try:
            for future in as_completed(futures, timeout=max(deadline - time.monotonic(), 0.1)):
                settle(futures[future], future, began)
        except TimeoutError:
            for future, index in futures.items():
                if index not in results:
                    settle(index, future, began)
    return [results[i] for i in sorted(results)]


def _attributed(result: WorkerResult, tags: list[dict[str, Any]]) -> WorkerResult:
    """A task's result with what its trials' tags tell: its process (where its sampler was
    unpickled) and that sampler's grid order."""
    mine = [t for t in tags if t.get("worker") == result.index]
    if not mine:
        return result
    return dataclasses.replace(
        result,
        pid=mine[0]["pid"],
        sampler_pid=mine[0]["pid"],
        order_fingerprint=mine[0].get("order"),
    )
