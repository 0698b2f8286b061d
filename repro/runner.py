"""Runs one scenario once: fresh storage, workers per launch mode, metrics from the study."""

from __future__ import annotations

import dataclasses
import functools
import gc
import shutil
import signal
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

from repro import _compat, metrics, services, workers
from repro.fork import CTX, STOP_SIGNALS, Child, ChildFailed, ChildTimedOut, call
from repro.paths import relativize
from repro.results import RunRecord
from repro.scenarios import SERVER_STORAGES, Scenario
from repro.storages import StorageError, StorageSpec, embedded, sqlite_file
from repro.sync import Phaser
from repro.workers import WorkerPlan, WorkerResult

DEFAULT_TIMEOUT = 120.0
BARRIER_TIMEOUT = 30.0
# How a worker that held its run up is named in the run's error.
HUNG = "hung"
_T = TypeVar("_T")


@contextmanager
def _fresh_storage(
    kind: str, study_name: str, template: str | None = None
) -> Iterator[StorageSpec]:
    if kind in SERVER_STORAGES:
        with services.isolated(kind, study_name) as spec:
            yield spec
        return
    # Signals wait while the folder is made, so that an interrupt cannot fall between its
    # creation and the ``finally`` that removes it.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    tmp = None
    try:
        tmp = tempfile.mkdtemp(prefix=services.scratch_prefix(), dir=services.scratch_dir())
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        spec = embedded(kind, tmp)
        if template is not None:
            # A copy of an empty database whose tables this Optuna made: the run starts as
            # if the first of its scripts had already opened the file.
            shutil.copyfile(template, sqlite_file(spec))
            spec = dataclasses.replace(spec, schema_ready=True)
        yield spec
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        if tmp is not None:
            shutil.rmtree(tmp)


def worker_plan(
    scenario: Scenario,
    spec: StorageSpec,
    study_name: str,
    index: int,
    barrier_timeout: float,
    *,
    storage_barrier: bool = False,
) -> WorkerPlan:
    """Worker ``index``'s plan. In threads mode one process runs every worker's trials on
    ``n_jobs`` threads sharing one sampler. ``storage_barrier``: concurrent workers started
    by hand (``python -m repro worker``) meet through the storage, having no Phaser."""
    threads = scenario.workers if scenario.mode == "threads" else 1
    return WorkerPlan(
        scenario,
        spec,
        study_name,
        worker_index=index,
        n_trials=scenario.trials_each * threads,
        n_jobs=threads,
        barrier_timeout=barrier_timeout,
        storage_barrier=storage_barrier,
    )


def worker_plans(
    scenario: Scenario, spec: StorageSpec, study_name: str, barrier_timeout: float
) -> list[WorkerPlan]:
    """One plan per worker process of the run."""
    processes = 1 if scenario.mode == "threads" else scenario.workers
    return [worker_plan(scenario, spec, study_name, i, barrier_timeout) for i in range(processes)]


def failed_result(plan: WorkerPlan, pid: int, message: str, began: float) -> WorkerResult:
    """The result of a worker that reported none: it failed, hung or never started."""
    return WorkerResult(
        index=plan.worker_index,
        pid=pid,
        sampler_pid=None,
        seed=plan.scenario.seed_for(plan.worker_index),
        order_fingerprint=None,
        startup_s=None,
        elapsed_s=time.perf_counter() - began,
        error=message,
    )


def worker_failures(
    scenario: Scenario, results: Sequence[WorkerResult]
) -> tuple[list[str], list[str]]:
    """The workers' failures as the run's errors and as its worker crashes: under a remedy a
    worker's crash is an outcome of the remedy (counted, and the other workers' trials are
    still read and measured). A hung worker last: the one line a summary shows names it, not
    a worker that failed waiting for it."""
    failures = [
        f"worker {r.index}: {r.error}"
        for r in sorted(results, key=lambda r: (r.error or "").startswith(HUNG))
        if r.error
    ]
    return (failures, []) if scenario.remedy == "grid" else ([], failures)


@functools.cache
def _freeze_imports() -> None:
    """Leave what the process holds before its first run (Optuna, SQLAlchemy, NumPy: ~10^5
    objects) out of its later garbage collections, as every forked child does (``fork.py``).
    The run's own steps on the storage allocate in this process (``_step``: making the tables
    of a fresh SQLite file allocates the most), and each full collection that this triggers
    would walk all of those objects. Collected once first, so that no garbage is frozen."""
    gc.collect()
    gc.freeze()


def trial_capacity(scenario: Scenario, plans: Sequence[WorkerPlan]) -> int:
    """How many trials a run's study can hold: each worker's ``study.optimize`` runs at most
    its ``n_trials`` (over all its threads), and the enqueued remedy adds the grid's WAITING
    trials before the workers start, which the workers then run instead of new ones."""
    enqueued = scenario.grid_size if scenario.remedy == "enqueued" else 0
    return enqueued + sum(plan.n_trials for plan in plans)


# Where the run's own steps on its storage run in the run's process (see ``_step``).
IN_PROCESS_STEPS = ("sqlite", "journal", "redis")


def _step(fn: Callable[..., _T], spec: StorageSpec, *args: object, timeout: float) -> _T:
    """``fn(spec, *args)``: one of the run's own steps on its storage (create the study,
    enqueue the grid, read the trials back), which a plain script does in its workers' own
    processes. On a local file, and on Redis with a socket timeout, it runs in this process:
    one storage open instead of a fork and an open (docs/bench.md says what that saved). Its
    storage is disposed before it returns (``workers._opened``, ``workers.create_study``),
    so no connection is open when the workers are forked. PostgreSQL and MySQL drivers have no
    read timeout that a server which stops answering would end (psycopg2 has none), so there
    the step runs in a forked helper that the run's timeout bounds. Either way a failure is
    ``ChildFailed`` with the traceback, the error the run records."""
    if spec.kind not in IN_PROCESS_STEPS:
        result: _T = call(fn, spec, *args, timeout=timeout)
        return result
    if spec.kind == "redis":
        spec = dataclasses.replace(spec, location=_socket_timeout(spec.location, timeout))
    # On a journal file, signals wait until the step is done: Optuna 3.x's file lock turns an
    # exception raised while it acquires the lock into its own RuntimeError, which would hide
    # an interrupt (``except BaseException: self.release()``, and ``release`` raises "did not
    # possess lock": optuna/storages/_journal/file.py#L48-L77 at v3.2.0). Reading takes no
    # lock in any release (``read_logs``), so a worker killed holding one cannot block it.
    held = STOP_SIGNALS if spec.kind == "journal" else ()
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        return fn(spec, *args)
    except Exception:
        raise ChildFailed(relativize(traceback.format_exc())) from None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _socket_timeout(url: str, seconds: float) -> str:
    """A Redis URL whose client gives up on a read or a connect after ``seconds``, unless the
    URL sets its own (redis-py takes the first value of a query option)."""
    parts = urlsplit(url)
    bound = f"{seconds:g}"
    query = [parts.query] if parts.query else []
    query.append(urlencode({"socket_timeout": bound, "socket_connect_timeout": bound}))
    return urlunsplit(parts._replace(query="&".join(query)))


# Starts a run's workers and returns one result per worker plan, errors included.
Launch = Callable[[Scenario, Sequence[WorkerPlan], float], list[WorkerResult]]


def _launch(
    scenario: Scenario,
    plans: Sequence[WorkerPlan],
    deadline: float,
    attribution: workers.Attribution | None = None,
) -> list[WorkerResult]:
    """Fork the workers as the launch mode says; one result per worker, errors included.
    ``attribution``: where the workers record who ran each trial (else a tag per trial)."""

    def failed(plan: WorkerPlan, child: Child | None, message: str, began: float) -> WorkerResult:
        return failed_result(plan, child.process.pid or -1 if child else -1, message, began)

    def start(plan: WorkerPlan, phaser: Phaser | None) -> Child | None:
        # The run timeout bounds launching too: no worker is forked once it has passed.
        if time.monotonic() >= deadline:
            return None
        name = f"worker {plan.worker_index}"
        return Child(workers.run_worker, plan, phaser, time.perf_counter(), attribution, name=name)

    timed_out: dict[int, ChildTimedOut] = {}  # worker index -> its timeout
    waiting: set[int] = set()

    def collect(plan: WorkerPlan, child: Child | None, began: float) -> WorkerResult:
        if child is None:
            return failed(plan, None, "not started: the run timed out before its turn", began)
        try:
            result: WorkerResult = child.result(deadline)
            return result
        except ChildTimedOut as exc:
            if not timed_out and phaser is not None:
                # At the first timeout, before any worker is killed: who waits at the barrier.
                waiting.update(phaser.waiting())
            timed_out[plan.worker_index] = exc
            return failed(plan, child, str(exc), began)
        except ChildFailed as exc:
            return failed(plan, child, str(exc), began)

    phaser = Phaser(CTX, len(plans)) if scenario.mode == "concurrent" else None
    results: list[WorkerResult] = []
    if scenario.mode == "concurrent":
        began = time.perf_counter()
        children = [start(p, phaser) for p in plans]
        results = [collect(p, c, began) for p, c in zip(plans, children)]
    else:
        for plan in plans:
            began = time.perf_counter()
            results.append(collect(plan, start(plan, None), began))
    return _name_hung(results, timed_out, waiting)


def _name_hung(
    results: list[WorkerResult], timed_out: dict[int, ChildTimedOut], waiting: set[int]
) -> list[WorkerResult]:
    """Of the workers that gave no result by the deadline, name the one(s) that held the run
    up: those stopped by a signal; else those not waiting at the barrier; else all of them.
    The others say they were held up by it."""
    pids = {r.index: r.pid for r in results}
    hung = {i for i, exc in timed_out.items() if exc.stopped}
    hung = hung or {i for i in timed_out if pids[i] not in waiting} or set(timed_out)
    named = []
    for r in results:
        error: str | None
        if r.index in hung:
            how = "stopped by a signal" if timed_out[r.index].stopped else "no progress"
            error = f"{HUNG} ({how}): pid {r.pid} gave no result within the run timeout"
        elif r.index in timed_out:
            error = (
                f"pid {r.pid} gave no result within the run timeout, held up by worker(s) "
                f"{', '.join(map(str, sorted(hung)))}"
            )
        else:
            error = r.error
        named.append(dataclasses.replace(r, error=error))
    return named


def run(
    scenario: Scenario,
    repetition: int,
    *,
    storage: StorageSpec | None = None,
    template: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    barrier_timeout: float = BARRIER_TIMEOUT,
    launch: Launch | None = None,
) -> RunRecord:
    """Run ``scenario`` once on a fresh study and measure it. Never raises for a worker's
    failure: the record's ``error`` carries it. ``storage`` defaults to a fresh one of the
    scenario's kind: a file in a temporary directory, or a database / key prefix of its own
    on a server, removed afterwards. ``template``: an SQLite file with Optuna's tables, copied
    to make a fresh SQLite storage (see execution.sqlite_template). ``launch`` starts the
    workers elsewhere than in forked processes (repro/scale/dask.py)."""
    _compat.warm_up()
    _freeze_imports()
    began = time.perf_counter()
    deadline = time.monotonic() + timeout
    study_name = f"repro-{scenario.id}-r{repetition}-{uuid.uuid4().hex[:8]}"
    errors: list[str] = []
    worker_results: list[WorkerResult] = []
    trials: list[metrics.TrialRecord] = []
    crashes: list[str] = []
    attribution = None
    stack = ExitStack()
    try:
        spec = storage or stack.enter_context(
            _fresh_storage(scenario.storage, study_name, template)
        )
        _step(workers.create_study, spec, study_name, scenario, timeout=timeout)
        # Creating the study made (or found) Optuna's tables: every later open of this run
        # skips that work, as a distributed user's workers can (`skip_table_creation`).
        spec = dataclasses.replace(spec, schema_ready=True)
        if scenario.remedy == "enqueued":
            _step(workers.enqueue_grid, spec, study_name, scenario, timeout=timeout)
        plans = worker_plans(scenario, spec, study_name, barrier_timeout)
        if launch is None:
            attribution = workers.Attribution(CTX, trial_capacity(scenario, plans))
            worker_results = _launch(scenario, plans, deadline, attribution)
        else:
            worker_results = launch(scenario, plans, deadline)
        failed, crashes = worker_failures(scenario, worker_results)
        errors += failed
        trials = _step(workers.read_trials, spec, study_name, timeout=timeout)
        if attribution is not None:
            trials = attribution.apply(trials)
    except (ChildFailed, StorageError, OSError) as exc:
        # OSError: no scratch dir to make the storage in ($REPRO_TMPDIR missing, disk full).
        errors.append(f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError) else str(exc))
    except BaseException:
        # Interrupted: stop every worker still writing to the storage, remove it, go on.
        for child in CTX.active_children():
            child.kill()
            child.join(1)
        stack.close()
        raise
    teardown_error = None
    try:
        stack.close()
    except (ChildFailed, StorageError, OSError) as exc:
        # The measurement is complete; only the clean-up failed (e.g. the server died).
        teardown_error = f"removing the storage failed: {str(exc).strip()}"
    return record(
        scenario,
        repetition,
        trials,
        worker_results,
        errors,
        seconds=round(time.perf_counter() - began, 3),
        study_name=study_name,
        teardown_error=teardown_error,
        worker_crashes=crashes,
    )


def record(
    scenario: Scenario,
    repetition: int,
    trials: Sequence[metrics.TrialRecord],
    worker_results: Sequence[WorkerResult],
    errors: Sequence[str],
    *,
    seconds: float = 0.0,
    study_name: str = "",
    teardown_error: str | None = None,
    worker_crashes: Sequence[str] = (),
) -> RunRecord:
    """The run record of what was measured, in the shape it is written; ``errors`` (if any)
    say why it may be partial."""
    measured = metrics.compute(trials, scenario.search_space)
    return RunRecord(
        scenario=scenario.id,
        mode=scenario.mode,
        seed_policy=scenario.seed_policy,
        storage=scenario.storage,
        workers=scenario.workers,
        grid_size=scenario.grid_size,
        repetition=repetition,
        trials=measured.trials,
        complete=measured.complete,
        distinct=measured.distinct,
        duplicates=measured.duplicates,
        missing=measured.missing,
        same_id_duplicates=measured.same_id_duplicates,
        colliding_id_duplicates=measured.colliding_id_duplicates,
        worker_orders_distinct=metrics.orders_distinct(r.order_fingerprint for r in worker_results),
        error="\n".join(errors) or None,
        trials_per_worker=scenario.trials_each,
        search_space=[[name, list(values)] for name, values in scenario.search_space],
        states=measured.states,
        seconds=seconds,
        study_name=study_name,
        duplicated_points=measured.duplicated_points,
        missing_points=measured.missing_points,
        worker_results=[r.to_json() for r in worker_results],
        trial_log=[t.to_json() for t in sorted(trials, key=lambda t: t.number)],
        teardown_error=teardown_error,
        remedy=scenario.remedy,
        worker_crashes=list(worker_crashes),
    )
