"""Scenarios are data with readable, unique ids; bad input is refused with a clear message."""

from __future__ import annotations

import pytest

from repro.scenarios import (
    ALL_STORAGES,
    MODES,
    SEED_POLICIES,
    UPSTREAM,
    Scenario,
    ScenarioError,
    matrix,
    select,
    validate_space,
)


def test_matrix_is_every_mode_policy_and_storage_once() -> None:
    scenarios = matrix()
    assert len(scenarios) == len(MODES) * len(SEED_POLICIES) * len(ALL_STORAGES)
    assert len({s.id for s in scenarios}) == len(scenarios)
    assert UPSTREAM in scenarios
    assert UPSTREAM.id == "sequential-none-sqlite-w4-g24"


def test_default_grid_splits_evenly() -> None:
    """Every worker runs the same number of trials, so the barrier rounds line up."""
    for s in matrix():
        assert s.grid_size == 24
        assert s.trials_each * s.workers == s.grid_size


def test_seed_policies() -> None:
    def seeds(policy: str) -> list[int | None]:
        s = Scenario(mode="sequential", seed_policy=policy, storage="sqlite")  # type: ignore[arg-type]
        return [s.seed_for(i) for i in range(s.workers)]

    assert seeds("none") == [None] * 4
    assert len(set(seeds("shared"))) == 1
    assert seeds("shared")[0] is not None
    assert len(set(seeds("per-worker"))) == 4


def test_select_by_pattern() -> None:
    chosen = select(matrix(), ["sequential-*-journal-*"])
    assert {s.mode for s in chosen} == {"sequential"}
    assert {s.storage for s in chosen} == {"journal"}
    assert len(chosen) == len(SEED_POLICIES)


def test_select_refuses_a_pattern_that_matches_nothing() -> None:
    with pytest.raises(ScenarioError, match="no scenario matches 'bogus'"):
        select(matrix(), ["bogus"])


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({}, "non-empty JSON object"),
        ([1, 2], "non-empty JSON object"),
        ({"x": []}, "non-empty list"),
        ({"x": "abc"}, "non-empty list"),
        ({"x": [[1]]}, "GridSampler takes"),
        ({"": [1]}, "non-empty string"),
    ],
)
def test_malformed_search_space(space: object, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        validate_space(space)  # type: ignore[arg-type]


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ScenarioError, match="unknown mode 'parallel'"):
        Scenario(mode="parallel", seed_policy="none", storage="sqlite")  # type: ignore[arg-type]
