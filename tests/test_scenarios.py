"""Scenarios are data with readable, unique ids; bad input is refused with a clear message."""

from __future__ import annotations

import itertools

import pytest

from repro import results
from repro.scenarios import (
    ALL_STORAGES,
    DEFAULT_SPACE,
    MAX_GRID_POINTS,
    MODES,
    SEED_POLICIES,
    UPSTREAM,
    GridValue,
    Scenario,
    ScenarioError,
    check_distinct,
    matrix,
    select,
    space_digest,
    validate_space,
)

from .helpers import RESULTS


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


def test_default_matrix_ids_are_unchanged() -> None:
    """Committed results, the expectation rows and the report are keyed by these ids."""
    expected = {
        f"{mode}-{policy}-{storage}-w4-g24"
        for mode, policy, storage in itertools.product(MODES, SEED_POLICIES, ALL_STORAGES)
    }
    assert {s.id for s in matrix()} == expected
    committed = {r.scenario for f in results.load_all(RESULTS) for r in f.runs if r.in_matrix}
    assert committed <= expected


def _shaped(**change: object) -> Scenario:
    return Scenario(mode="threads", seed_policy="none", storage="journal", **change)  # type: ignore[arg-type]


def test_id_names_a_per_worker_budget_other_than_the_even_split() -> None:
    """A 4-trial budget is another shape than the default 6 (the #5489 row must not show it);
    an explicit 6 is the default shape, with the default id."""
    default = _shaped()
    assert _shaped(trials_per_worker=4).id == "threads-none-journal-w4-g24-t4"
    assert _shaped(trials_per_worker=6) == default
    assert _shaped(trials_per_worker=6).id == default.id
    assert _shaped(workers=3).id == "threads-none-journal-w3-g24"
    assert _shaped(workers=3, trials_per_worker=8).id == "threads-none-journal-w3-g24"


def test_id_names_a_custom_space_by_its_canonical_hash() -> None:
    def space_id(space: dict[str, list[GridValue]]) -> str:
        return _shaped(workers=2, search_space=validate_space(space)).id

    first, second = space_id({"x": [0, 1]}), space_id({"x": [0, 2]})
    assert first != second
    # Pinned: results files keep these ids, so the canonical form must not drift.
    assert first == "threads-none-journal-w2-custom-499986ee"
    readme = Scenario("sequential", "none", "sqlite", 3, validate_space({"x": [0, 1, 2]}))
    assert readme.id == "sequential-none-sqlite-w3-custom-a965c672"  # README.md's example
    assert space_id({"y": ["a", "b"], "x": [0, 1]}) == space_id({"x": [0, 1], "y": ["a", "b"]})
    typed = [space_id({"x": [v, 2]}) for v in (1, 1.0, True, "1", None)]
    assert len(set(typed)) == len(typed)
    assert space_id({"x": [0, 1]}) != space_id({"x": [1, 0]})  # the order decides grid ids
    assert space_digest(validate_space({"x": [0.0, 1]})) != space_digest(
        validate_space({"x": [-0.0, 1]})
    )


def test_a_custom_space_equal_to_the_default_keeps_the_default_id() -> None:
    written_out = validate_space({name: list(values) for name, values in reversed(DEFAULT_SPACE)})
    assert _shaped(search_space=written_out).id == _shaped().id
    as_floats = validate_space(
        {"x": [float(v) for v in range(6)], "y": list(dict(DEFAULT_SPACE)["y"])}
    )
    assert _shaped(search_space=as_floats).id.startswith("threads-none-journal-w4-custom-")


@pytest.mark.parametrize(
    ("values", "first", "second"),
    [
        ([1, 2, 1], "1", "1"),
        ([1, True], "1", "True"),
        ([1, 1.0], "1", "1.0"),
        ([0, False], "0", "False"),
        ([0.0, -0.0], "0.0", "-0.0"),
        ([float("nan"), float("nan")], "nan", "nan"),
        ([None, "a", None], "None", "None"),
    ],
)
def test_values_optuna_records_as_one_choice_are_refused(
    values: list[GridValue], first: str, second: str
) -> None:
    with pytest.raises(ScenarioError, match=f"has {first} and {second}, which Optuna records"):
        check_distinct(validate_space({"x": values}))


def test_distinct_values_of_different_types_are_accepted() -> None:
    check_distinct(validate_space({"x": [1, "1", 2.5, None, "a"], "y": [True, "True"]}))


def test_the_grid_size_is_bounded() -> None:
    side = int(MAX_GRID_POINTS**0.5)
    assert side * side == MAX_GRID_POINTS
    validate_space({"x": list(range(side)), "y": list(range(side))})
    with pytest.raises(ScenarioError, match=f"{side * (side + 1)} grid points; the bound is"):
        validate_space({"x": list(range(side)), "y": list(range(side + 1))})
