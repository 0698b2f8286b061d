"""Metrics on hand-built trial lists and their invariants under Hypothesis."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from repro.metrics import TrialRecord, compute, orders_distinct, point_key
from repro.scenarios import SearchSpace

from .strategies import studies

SPACE: SearchSpace = (("x", (0, 1, 2)),)


def trial(number: int, x: object, grid_id: int | None, state: str = "COMPLETE") -> TrialRecord:
    return TrialRecord(number=number, state=state, params={"x": x}, grid_id=grid_id, worker=0)  # type: ignore[dict-item]


def test_every_point_once() -> None:
    """A clean grid: no duplicates, nothing missing."""
    m = compute([trial(0, 0, 0), trial(1, 1, 1), trial(2, 2, 2)], SPACE)
    assert (m.complete, m.distinct, m.duplicates, m.missing) == (3, 3, 0, 0)


def test_upstream_issue_5489_pattern_is_a_colliding_id_duplicate() -> None:
    """#5489: x=0, 1, 0 from three workers; grid ids 0, 1, 2 each used once."""
    m = compute([trial(0, 0, 0), trial(1, 1, 1), trial(2, 0, 2)], SPACE)
    assert (m.duplicates, m.missing) == (1, 1)
    assert (m.same_id_duplicates, m.colliding_id_duplicates) == (0, 1)
    assert m.missing_points == [point_key({"x": 2})]
    assert m.duplicated_points == [
        {"point": point_key({"x": 0}), "trials": [0, 2], "grid_ids": [0, 2]}
    ]


def test_same_grid_id_twice_is_a_same_id_duplicate() -> None:
    """Two workers racing for grid id 1 (the 3.2.0 failure mode)."""
    m = compute([trial(0, 0, 0), trial(1, 1, 1), trial(2, 1, 1)], SPACE)
    assert (m.same_id_duplicates, m.colliding_id_duplicates, m.missing) == (1, 0, 1)


def test_mixed_duplicates_split_by_kind() -> None:
    """Three evaluations of one point from two grid ids: one of each kind."""
    trials = [trial(0, 0, 0), trial(1, 0, 0), trial(2, 0, 2), trial(3, 1, 1)]
    m = compute(trials, SPACE)
    assert (m.duplicates, m.same_id_duplicates, m.colliding_id_duplicates) == (2, 1, 1)


def test_unfinished_trials_do_not_count_as_evaluated() -> None:
    """FAIL and RUNNING trials are counted by state but evaluate nothing."""
    m = compute([trial(0, 0, 0), trial(1, 1, 1, "FAIL"), trial(2, 2, 2, "RUNNING")], SPACE)
    assert m.states == {"COMPLETE": 1, "FAIL": 1, "RUNNING": 1}
    assert (m.trials, m.complete, m.missing) == (3, 1, 2)


def test_values_of_different_types_are_different_points() -> None:
    """1, 1.0, True and "1" are four grid points, and NaN equals NaN."""
    space: SearchSpace = (("x", (1, 1.0, True, "1", math.nan)),)
    trials = [trial(i, v, i) for i, v in enumerate((1, 1.0, True, "1", float("nan")))]
    m = compute(trials, space)
    assert (m.distinct, m.duplicates, m.missing) == (5, 0, 0)


def test_orders_distinct_ignores_workers_without_a_fingerprint() -> None:
    assert orders_distinct(["a", "a", None, "b"]) == 2


@given(studies())
def test_counts_add_up(study: tuple[SearchSpace, list[TrialRecord]]) -> None:
    """distinct + duplicates == complete, missing == grid - distinct, the split is exhaustive."""
    space, trials = study
    m = compute(trials, space)
    grid_size = math.prod(len(v) for _, v in space)
    assert m.distinct + m.duplicates == m.complete
    assert m.missing == grid_size - m.distinct
    assert m.same_id_duplicates + m.colliding_id_duplicates == m.duplicates
    assert sum(m.states.values()) == m.trials == len(trials)


@given(studies(), st.randoms(use_true_random=False))
def test_independent_of_trial_order(
    study: tuple[SearchSpace, list[TrialRecord]], rnd: object
) -> None:
    """Shuffling the trial list changes nothing."""
    space, trials = study
    shuffled = list(trials)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert compute(shuffled, space) == compute(trials, space)
