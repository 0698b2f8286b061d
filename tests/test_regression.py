"""The regression guard: every default scenario on the installed Optuna, checked against the
expectation table in repro/expectations.py.

False-positive bound: `exact` and `racy` rows assert only what the code forces, so they cannot
fail by chance. A `loses-points` run fails by chance only if independent worker shuffles
partition the grid, 7.0e-9 per run (repro/scenarios.py). Per CI run there are 30 such
scenarios (20 on 3.6.1, 10 on the newest release, 5 storages each), at most 2 runs each, plus
5 more such runs in test_services, test_scripts and the #5489 test below:
65 x 7.0e-9 = 4.6e-7.

Server-storage scenarios form their own xdist group, so they run beside the embedded ones on
the second core; the barrier forces the overlap either way, and the only timing-dependent
outcome (3.2.0's races) is measured, never asserted.
"""

from __future__ import annotations

import pytest

from repro import _compat, expectations, runner
from repro.scenarios import SERVER_STORAGES, Scenario, matrix

from .helpers import require_service

# Server runs cost about twice an embedded one; one repetition each keeps CI within budget,
# and the committed results hold two.
REPS = {"processes": 2, "servers": 1}


def group(scenario: Scenario) -> str:
    return "servers" if scenario.storage in SERVER_STORAGES else "processes"


@pytest.mark.parametrize(
    "scenario",
    [pytest.param(s, id=s.id, marks=pytest.mark.xdist_group(group(s))) for s in matrix()],
)
def test_scenario_behaves_as_the_expectation_table_says(scenario: Scenario) -> None:
    if scenario.storage in SERVER_STORAGES:
        require_service(scenario.storage)
    version = _compat.OPTUNA_VERSION
    row = expectations.expected(version, scenario.mode, scenario.seed_policy)
    problems = []
    for rep in range(REPS[group(scenario)]):
        problems += expectations.violations(runner.run(scenario, rep), version, row)
    assert not problems, "\n".join(problems)


@pytest.mark.xdist_group("processes")
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
