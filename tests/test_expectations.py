"""The expectation table itself: complete, unambiguous, and able to fail."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from repro import expectations, results
from repro.scenarios import MODES, SEED_POLICIES

from .helpers import RESULTS

RELEASES = ["3.2.0", "3.3.0", "3.4.0", "3.5.0", "3.6.1", "3.6.2", "4.0.0", "4.5.0", "5.0.0"]


@pytest.mark.parametrize("version", RELEASES)
def test_every_release_mode_and_policy_has_exactly_one_row(version: str) -> None:
    for mode in MODES:
        for policy in SEED_POLICIES:
            assert expectations.expected(version, mode, policy).outcome in {
                "exact",
                "loses-points",
                "racy",
            }


def test_every_row_cites_the_source() -> None:
    for row in expectations.TABLE:
        assert row.cite
        assert all(c.startswith("https://github.com/optuna/optuna/") for c in row.cite)


def committed(version_prefix: str) -> results.ResultsFile:
    files = [f for f in results.load_all(RESULTS) if f.optuna_version.startswith(version_prefix)]
    if not files:
        pytest.fail(f"no committed results for Optuna {version_prefix} in {RESULTS}")
    return files[0]


def test_committed_results_agree_with_the_table() -> None:
    """The results the report is built from contradict no row. Corpus runs (a case id) are
    random spaces, for which the rows promise nothing; tests/test_corpus.py covers them."""
    for f in results.load_all(RESULTS):
        matrix_runs = [r for r in f.runs if r.case_id is None]
        assert expectations.all_violations(matrix_runs, f.optuna_version) == []


def test_a_flipped_row_fails_with_version_scenario_and_numbers() -> None:
    """Declaring 3.6.1 free of lost points must be contradicted by what 3.6.1 does."""
    f = committed("3.6.1")
    real = expectations.expected("3.6.1", "sequential", "none")
    flipped = dataclasses.replace(real, outcome="exact")
    run = next(
        r
        for r in f.runs
        if r.case_id is None and r.mode == "sequential" and r.seed_policy == "none"
    )
    problems = expectations.violations(run, "3.6.1", flipped)
    assert problems
    assert "Optuna 3.6.1" in problems[0]
    assert run.scenario in problems[0]
    assert f"missing={run.missing}" in problems[0]


def test_pinned_version_is_the_installed_one() -> None:
    """nox installs the pin it names; "latest" is whatever the index serves."""
    from repro import _compat

    pinned = os.environ.get("REPRO_PINNED_OPTUNA")
    if pinned is None or pinned == "latest":
        pytest.skip("not run under a pinned nox session")
    assert pinned == _compat.OPTUNA_VERSION


def test_results_directory_exists() -> None:
    assert Path(RESULTS).is_dir()
