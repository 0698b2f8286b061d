"""The regression guard: every default scenario on the installed Optuna, checked against the
expectation table in repro/expectations.py.

False-positive bound: `exact` and `racy` rows assert only what the code forces, so they cannot
fail by chance. A `loses-points` run fails by chance only if independent worker shuffles
partition the grid, 7.0e-9 per run (repro/scenarios.py); at most 8 such scenarios x REPS runs
per version and 3 versions per CI run gives below 3.4e-7 per CI run.
"""

from __future__ import annotations

import pytest

from repro import _compat, expectations, runner
from repro.scenarios import SERVER_STORAGES, Scenario, matrix

from .conftest import require_service

pytestmark = pytest.mark.xdist_group("processes")

REPS = 2


@pytest.mark.parametrize("scenario", matrix(), ids=lambda s: s.id)
def test_scenario_behaves_as_the_expectation_table_says(scenario: Scenario) -> None:
    if scenario.storage in SERVER_STORAGES:
        require_service(scenario.storage)
    version = _compat.OPTUNA_VERSION
    row = expectations.expected(version, scenario.mode, scenario.seed_policy)
    problems = []
    for rep in range(REPS):
        problems += expectations.violations(runner.run(scenario, rep), version, row)
    assert not problems, "\n".join(problems)


def test_upstream_issue_5489() -> None:
    """The reporter's pattern, named after the upstream issue: on the affected releases every
    run loses points, on the others none does (same bound as above)."""
    scenario = Scenario(mode="sequential", seed_policy="none", storage="sqlite")
    row = expectations.expected(_compat.OPTUNA_VERSION, scenario.mode, scenario.seed_policy)
    record = runner.run(scenario, 0)
    measured = (
        f"Optuna {_compat.OPTUNA_VERSION}, {record.scenario}: missing={record.missing} "
        f"duplicates={record.duplicates} same_id={record.same_id_duplicates} error={record.error}"
    )
    assert record.error is None, measured
    if row.outcome == "loses-points":
        assert record.missing > 0, measured
        assert record.same_id_duplicates == 0, measured
    else:
        assert record.missing == record.duplicates == 0, measured
