"""One end-to-end run per launch mode on the installed Optuna, checked for what the harness
itself promises (independent of the Optuna version)."""

from __future__ import annotations

from collections import defaultdict

import pytest

from repro import runner
from repro.results import RunRecord
from repro.scenarios import Scenario

pytestmark = pytest.mark.xdist_group("processes")


def run(mode: str, storage: str = "sqlite") -> RunRecord:
    scenario = Scenario(mode=mode, seed_policy="none", storage=storage)  # type: ignore[arg-type]
    record = runner.run(scenario, 0)
    assert record.error is None, record.error
    assert record.trials == record.complete == scenario.grid_size
    assert record.distinct + record.duplicates == record.complete
    assert record.missing == record.grid_size - record.distinct
    return record


def test_sequential_workers_run_one_after_another() -> None:
    """Each worker runs its share, and worker i's trials all precede worker i+1's."""
    record = run("sequential")
    workers = [t["worker"] for t in record.trial_log]
    assert workers == sorted(workers)
    assert [workers.count(i) for i in range(record.workers)] == [record.trials_per_worker] * 4


def test_concurrent_workers_overlap_in_every_round() -> None:
    """The barrier makes every worker hold a RUNNING trial in every round: each phase holds
    exactly one trial of each worker."""
    record = run("concurrent")
    by_phase: dict[int, list[int]] = defaultdict(list)
    for t in record.trial_log:
        by_phase[t["phase"]].append(t["worker"])
    assert sorted(by_phase) == list(range(record.trials_per_worker))
    for members in by_phase.values():
        assert sorted(members) == list(range(record.workers))


def test_threads_share_one_process_and_one_sampler() -> None:
    record = run("threads", "journal")
    assert len(record.worker_results) == 1
    assert record.worker_orders_distinct == 1
    assert {t["phase"] for t in record.trial_log} == {None}
