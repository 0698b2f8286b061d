"""Dask as a launcher: a scenario's workers as Dask tasks, one task per worker, each building
its own storage and sampler as a separate script would (``workers.run_worker``). By default on
a ``LocalCluster`` of worker processes that the run starts on 127.0.0.1 without a dashboard and
closes in ``finally``; ``--scheduler ADDRESS`` uses an existing cluster. Concurrent workers meet
through the storage (``sync.StorageBarrier``): no barrier object crosses a Dask worker's process.
A task that fails, a worker that dies (Dask gives up on the task: ``KilledWorker``) or a task
past the run's deadline becomes the worker's recorded error, never a hang."""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import time
import traceback
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from repro.errors import ReproError
from repro.runner import HUNG, Launch, failed_result
from repro.scale.extras import require_distributed
from repro.scenarios import Scenario
from repro.storages import StorageSpec
from repro.sync import StorageBarrier
from repro.workers import WorkerPlan, WorkerResult, run_worker

if TYPE_CHECKING:
    from distributed import Client

# Below the 10 s in which an unreachable scheduler must be one line, interpreter start included.
CONNECT_TIMEOUT = 5.0


class ClusterError(ReproError):
    """A scheduler that does not answer, or a cluster too small to run the workers at once."""


@contextmanager
def cluster(workers: int, scheduler: str | None) -> Iterator[Client]:
    """A client of the run's own LocalCluster (one single-threaded worker process per worker),
    or of the cluster at ``scheduler``; closed when the block ends, interrupts included."""
    require_distributed()
    if scheduler is not None:
        _probe(scheduler)
    import dask
    from distributed import Client, LocalCluster

    if scheduler is None:
        with (
            # A worker process that dies fails its task at once (KilledWorker, the worker's
            # recorded error) instead of Dask running it again on another worker, which would
            # add a worker the scenario does not have. An existing cluster keeps its own rule.
            dask.config.set({"distributed.scheduler.allowed-failures": 0}),
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            ) as local,
            Client(local) as client,
        ):
            _announce(client)
            yield client
        return
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(
            f"scheduler {scheduler} did not answer within {CONNECT_TIMEOUT:g} s ({reason})"
        ) from None
    try:
        slots = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values())
        if slots < workers:
            raise ClusterError(
                f"the cluster at {scheduler} has {slots} worker threads; {workers} workers must "
                "run at once (queueing is not overlap): add workers or lower -w"
            )
        _announce(client)
        yield client
    finally:
        client.close()


def _announce(client: Client) -> None:
    """One line on stderr: the scheduler the run uses, and its worker processes."""
    pids = " ".join(str(pid) for pid in sorted(client.run(os.getpid).values()))
    print(f"dask scheduler {client.scheduler.address}, worker pids {pids}", file=sys.stderr)


def _probe(scheduler: str) -> None:
    """Fail at once on a ``tcp://HOST:PORT`` that refuses connections, and within
    CONNECT_TIMEOUT on one that never speaks, before importing distributed (over a second on a
    loaded machine). A Dask scheduler writes its handshake as soon as it accepts a connection;
    ``Client`` itself retries a refused port until its timeout and, measured with distributed
    2026.8.0, waits past any timeout on a port that accepts and stays silent. Other schemes
    are left to ``Client``."""
    parts = urlsplit(scheduler)
    try:
        port = parts.port
    except ValueError:
        return
    if parts.scheme != "tcp" or parts.hostname is None or port is None:
        return
    try:
        with socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT) as probe:
            probe.settimeout(CONNECT_TIMEOUT)
            if probe.recv(1):
                return
            reason = "it closed the connection"
    except ConnectionRefusedError:
        raise ClusterError(
            f"scheduler {scheduler} refused the connection: no scheduler listens there"
        ) from None
    except OSError as exc:
        reason = exc.strerror or "no reply"
    raise ClusterError(
        f"scheduler {scheduler} did not answer within {CONNECT_TIMEOUT:g} s ({reason})"
    )


def launcher(client: Client) -> Launch:
    """``runner.run``'s launch step on ``client``: one task per worker plan."""

    def launch(
        scenario: Scenario, plans: Sequence[WorkerPlan], deadline: float
    ) -> list[WorkerResult]:
        concurrent = scenario.mode == "concurrent"
        plans = [dataclasses.replace(p, storage_barrier=concurrent) for p in plans]
        if not concurrent:
            return [_wait(p, _submit(client, p), deadline) for p in plans]
        return _concurrent(client, plans, deadline)

    return launch


def _concurrent(client: Client, plans: Sequence[WorkerPlan], deadline: float) -> list[WorkerResult]:
    """Every task at once; each result as its task ends. A task that failed without a word to
    the storage (its worker process died) is marked done at the storage barrier here, so that
    the others stop waiting for it at once rather than at the barrier's timeout."""
    from distributed import as_completed

    futures = {_submit(client, p): p for p in plans}
    results: dict[int, WorkerResult] = {}
    try:
        for future in as_completed(futures, timeout=max(deadline - time.monotonic(), 0.1)):
            plan = futures[future]
            results[plan.worker_index] = result = _wait(plan, future, deadline)
            if result.error:
                release(plan.storage, plan.study_name, plan.worker_index, len(plans))
    except TimeoutError:
        for future, plan in futures.items():
            if plan.worker_index not in results:
                results[plan.worker_index] = _wait(plan, future, deadline)
    return [results[p.worker_index] for p in plans]


def release(spec: StorageSpec, study_name: str, index: int, parties: int) -> None:
    """Mark worker ``index`` done at the storage barrier of ``study_name``."""
    import optuna

    from repro import _compat
    from repro.storages import open_storage

    storage = open_storage(spec)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
        StorageBarrier(study, index, parties).deregister()
    finally:
        _compat.dispose(storage)


def _submit(client: Client, plan: WorkerPlan) -> Any:
    key = f"repro-worker-{plan.worker_index}-{uuid.uuid4().hex[:8]}"
    return client.submit(run_worker, plan, None, time.perf_counter(), key=key, pure=False)


def task_outcome(future: Any, deadline: float) -> tuple[Any, str | None]:
    """A task's result, or its error: hung (cancelled) past the run's deadline, or the
    task's own traceback where Dask carries it (KilledWorker names the lost worker)."""
    try:
        return future.result(timeout=max(deadline - time.monotonic(), 0.1)), None
    except TimeoutError:
        future.cancel()
        return None, f"{HUNG}: the Dask task did not finish before the run's deadline"
    except Exception as exc:
        return None, "".join(traceback.format_exception(exc))


def _wait(plan: WorkerPlan, future: Any, deadline: float) -> WorkerResult:
    began = time.perf_counter()
    result, error = task_outcome(future, deadline)
    if error is None:
        worker_result: WorkerResult = result
        return worker_result
    return failed_result(plan, -1, error, began)
