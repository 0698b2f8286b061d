"""Remedies (issue 12): the scenario dimension, the expectation rows, the forced rows on the
installed Optuna, crashes as outcomes, and the "what works" decisions and rendering.

False-positive bound: the regression tests below assert only rows whose outcome the code
forces (sequential workers see every earlier trial; the journal orders every claim), plus the
forced trial count of the bigger budgets, so none can fail by chance. The crash test forces its
crash: with a zero barrier timeout the first worker to arrive always finds itself alone.
"""

from __future__ import annotations

import dataclasses

import pytest

from repro import _compat, expectations, remedies, runner
from repro.results import ResultsFile, RunRecord
from repro.scenarios import (
    ALL_STORAGES,
    REMEDIES,
    REMEDY_MODES,
    Scenario,
    ScenarioError,
    matrix,
    remedy_matrix,
)

from .helpers import run_record

PINNED = ("3.2.0", "3.6.1", "5.0.0")


def test_default_remedy_leaves_every_existing_id_unchanged() -> None:
    assert all(s.remedy == "grid" and s.id.endswith("-g24") for s in matrix())
    base = Scenario("sequential", "none", "sqlite")
    assert dataclasses.replace(base, remedy="bruteforce").id == (
        "sequential-none-sqlite-w4-g24-bruteforce"
    )
    assert dataclasses.replace(base, remedy="x1.5").id == "sequential-none-sqlite-w4-g24-x1.5"


def test_budget_remedies_give_each_worker_its_share_of_the_bigger_budget() -> None:
    base = Scenario("sequential", "none", "sqlite")
    assert (base.budget, base.trials_each) == (24, 6)
    assert dataclasses.replace(base, remedy="x1.5").trials_each == 9
    assert dataclasses.replace(base, remedy="x2").budget == 48


def test_unknown_remedy_is_a_scenario_error() -> None:
    with pytest.raises(ScenarioError, match="unknown remedy 'tpe'"):
        Scenario("sequential", "none", "sqlite", remedy="tpe")  # type: ignore[arg-type]


def test_default_remedies_are_cheap_and_cover_both_upstream_recommendations() -> None:
    """By default: BruteForceSampler on SQLite, and the enqueued grid on one storage of each
    way of claiming a WAITING trial (SQLite, a row lock on PostgreSQL, a journal entry on Redis), in
    both process modes; the full set adds every seed policy and storage."""
    default = remedy_matrix()
    by_remedy = {r: {s.storage for s in default if s.remedy == r} for r in REMEDIES}
    assert by_remedy["bruteforce"] == {"sqlite"}
    assert by_remedy["enqueued"] == {"sqlite", "postgresql", "redis"}
    # One storage per enqueued-claim row of the expectation table, on every pinned version.
    for version in PINNED:

        def row(storage: str, version: str = version) -> expectations.RemedyExpectation:
            return expectations.remedy_expected(version, "enqueued", "concurrent", "none", storage)

        assert {row(s) for s in by_remedy["enqueued"]} == {row(s) for s in ALL_STORAGES}
    for s in default:
        same = {x.mode for x in default if (x.storage, x.remedy) == (s.storage, s.remedy)}
        assert same == ({"sequential"} if s.remedy in ("x1.5", "x2") else set(REMEDY_MODES))
    full = remedy_matrix(full=True)
    assert {s.storage for s in full} == set(ALL_STORAGES)
    assert {s.remedy for s in full} == set(REMEDIES) - {"grid"}
    assert len({s.id for s in full}) == len(full)


@pytest.mark.parametrize("version", PINNED)
def test_every_remedy_scenario_has_exactly_one_row_citing_upstream(version: str) -> None:
    """Every remedy scenario applicable on a pinned release has its row; one that needs a later
    release (BruteForceSampler's avoid_premature_stop before 4.3.0) says so instead."""
    for s in remedy_matrix(full=True):
        if remedies.not_applicable(s.remedy, version):
            with pytest.raises(expectations.NoExpectation):
                expectations.remedy_expected(version, s.remedy, s.mode, s.seed_policy, s.storage)
            continue
        row = expectations.remedy_expected(version, s.remedy, s.mode, s.seed_policy, s.storage)
        assert row.cite
        assert all(c.startswith("https://github.com/optuna/optuna/blob/v") for c in row.cite)


def test_the_installed_optuna_has_strict_brute_force_exactly_from_its_bound() -> None:
    """The flag the workers read (the installed BruteForceSampler's signature) and the version
    bound the report prints agree on the installed release."""
    bound = remedies.not_applicable("bruteforce-strict", _compat.OPTUNA_VERSION)
    assert _compat.remedy_available("bruteforce-strict") == (bound is None)
    assert remedies.not_applicable("bruteforce-strict", "4.2.1") == "not applicable (from 4.3.0)"
    assert remedies.not_applicable("bruteforce-strict", "4.3.0") is None


FORCED = [
    Scenario("sequential", "none", "sqlite", remedy="bruteforce"),
    Scenario("sequential", "none", "sqlite", remedy="bruteforce-strict"),
    Scenario("sequential", "none", "sqlite", remedy="enqueued"),
    Scenario("concurrent", "none", "journal", remedy="enqueued"),
    Scenario("sequential", "none", "journal", remedy="x1.5"),
]


@pytest.mark.xdist_group("processes")
@pytest.mark.parametrize("scenario", FORCED, ids=[s.id for s in FORCED])
def test_forced_remedy_rows_hold_on_the_installed_optuna(scenario: Scenario) -> None:
    version = _compat.OPTUNA_VERSION
    if not _compat.remedy_available(scenario.remedy):
        pytest.skip(f"{scenario.remedy}: {remedies.not_applicable(scenario.remedy, version)}")
    record = runner.run(scenario, 0)
    assert record.remedy == scenario.remedy
    problems = expectations.remedy_violations(record, version)
    assert not problems, "\n".join(problems)


@pytest.mark.xdist_group("processes")
def test_a_worker_crash_under_a_remedy_is_counted_and_the_others_trials_kept() -> None:
    """With no time to wait at the barrier, the first worker to arrive finds itself alone and
    raises; the run is not an error, the crash is recorded with its exception, and every trial
    is still read back: each crashed worker's FAIL, every other trial COMPLETE. (How many
    workers crash depends on who arrives when; at least the first always does.)"""
    # GridSampler on SQLite: nothing else in this run can crash a worker on any pinned release.
    scenario = Scenario("concurrent", "none", "sqlite", remedy="x1.5")
    record = runner.run(scenario, 0, barrier_timeout=0.0)
    assert record.error is None
    assert record.worker_crashes
    assert all("PhaserTimeout" in crash for crash in record.worker_crashes)
    assert record.trials == len(record.trial_log) >= len(record.worker_crashes)
    assert record.states.get("FAIL", 0) == len(record.worker_crashes)
    assert record.complete + len(record.worker_crashes) == record.trials


def _run(scenario: Scenario, *, missing: int = 0, dups: int = 0, crashes: int = 0) -> RunRecord:
    """A finished run of ``scenario`` with the counts a test needs."""
    return run_record(
        scenario,
        missing=missing,
        duplicates=dups,
        worker_crashes=[f"worker {i}: Traceback ... RuntimeError" for i in range(crashes)],
    )


def _file(version: str, runs: list[RunRecord]) -> ResultsFile:
    return ResultsFile(version, "3.11", "linux", {}, runs)


def test_verdicts_read_off_the_runs() -> None:
    brute = Scenario("concurrent", "none", "sqlite", remedy="bruteforce")
    files = [
        _file(
            "5.0.0",
            [
                _run(Scenario("sequential", "none", "sqlite", remedy="bruteforce")),
                _run(brute, missing=1, dups=1),
                _run(brute),
                _run(Scenario("concurrent", "none", "sqlite", remedy="enqueued"), crashes=2),
                _run(Scenario("sequential", "none", "sqlite", remedy="x2"), dups=2),
            ],
        )
    ]
    got = {(c.strategy.remedy, c.strategy.mode): c for c in remedies.cells(files)}
    assert got[("bruteforce", "sequential")].verdict == "exact"
    assert got[("bruteforce", "concurrent")].verdict == "racy"
    assert got[("bruteforce", "concurrent")].lost_wilson95 == (0.09, 0.91)
    assert got[("enqueued", "concurrent")].verdict == "racy"
    assert got[("enqueued", "concurrent")].crashes == 2
    assert got[("x2", "sequential")].verdict == "covers"


def test_what_to_do_names_only_remedies_measured_exact() -> None:
    exact = Scenario("sequential", "shared", "journal")
    files = [
        _file(
            "3.6.1",
            [
                _run(exact),
                _run(dataclasses.replace(exact, mode="concurrent")),
                _run(Scenario("sequential", "none", "journal"), missing=7, dups=7),
                _run(Scenario("sequential", "none", "journal", remedy="bruteforce")),
                _run(Scenario("concurrent", "none", "journal", remedy="bruteforce"), missing=1),
            ],
        )
    ]
    (item,) = remedies.advice(files)
    assert item.exact == ("`GridSampler`, seed shared",)
    text = remedies.what_to_do(files)["3.6.1"]
    assert text.startswith("Measured exact: `GridSampler`, seed shared.")
    assert "`BruteForceSampler`, seed none: racy (exact sequential on every storage)" in text
    assert "`GridSampler`, seed none: loses-points" in text
    assert "lost points in 1/1 runs" in text


def test_storages_share_a_table_only_where_every_verdict_agrees() -> None:
    runs = [
        _run(Scenario("sequential", "none", s, remedy="enqueued"))
        for s in ("sqlite", "journal", "postgresql")
    ]
    runs += [_run(Scenario("concurrent", "none", "sqlite", remedy="enqueued"), crashes=1)]
    runs += [
        _run(Scenario("concurrent", "none", s, remedy="enqueued"))
        for s in ("journal", "postgresql")
    ]
    files = [_file("3.2.0", runs)]
    assert remedies.families(files) == [("sqlite",), ("journal", "postgresql")]
    lines = remedies.render_what_works(files)
    assert "### Storages: journal, postgresql" in lines
    assert not any("not measured" in line for line in lines)
    assert any(line.startswith("| grid enqueued") and "**racy** 0/1" in line for line in lines)


def test_advice_cells_give_numbers_for_more_trials_and_other_samplers() -> None:
    f = _file(
        "3.6.1",
        [
            _run(Scenario("sequential", "none", "sqlite", remedy="x1.5"), missing=9, dups=10),
            _run(Scenario("sequential", "none", "sqlite", remedy="bruteforce")),
        ],
    )
    more = remedies.render_advice_cell(f, ("x1.5", "x2"))
    assert more.startswith("`GridSampler`, budget 1.5x the grid, seed none: loses-points")
    assert "mean missing 9, mean duplicates 10" in more
    assert remedies.render_advice_cell(f, ("bruteforce",)).endswith(
        ": exact, lost points in 0/1 runs (95% 0.00-0.79), mean missing 0"
    )
    assert "--remedies all" in remedies.render_advice_cell(f, ("enqueued",))


def test_violations_judge_a_remedy_run_by_its_own_row() -> None:
    """The report and the committed-results check call ``violations`` on every run; a remedy
    run must not be held to the GridSampler row of its mode and seed policy."""
    run = _run(Scenario("sequential", "none", "sqlite", remedy="enqueued"))
    assert expectations.violations(run, "3.6.1") == []
    lost = dataclasses.replace(run, missing=2)
    assert "grid points never evaluated" in expectations.violations(lost, "3.6.1")[0]
