"""Hypothesis strategies for search spaces and trial records."""

from __future__ import annotations

import itertools

from hypothesis import strategies as st

from repro.metrics import TrialRecord
from repro.scenarios import GridValue, SearchSpace

STATES = ("COMPLETE", "FAIL", "RUNNING", "PRUNED", "WAITING")

grid_values: st.SearchStrategy[GridValue] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-5, 5, allow_nan=False, width=32),
    st.sampled_from(["a", "b", "1", "1.0", "True", ""]),
)


@st.composite
def search_spaces(draw: st.DrawFn) -> SearchSpace:
    names = draw(st.lists(st.sampled_from("pqrst"), min_size=1, max_size=3, unique=True))
    space = []
    for name in sorted(names):
        values = draw(st.lists(grid_values, min_size=1, max_size=4, unique_by=repr))
        space.append((name, tuple(values)))
    return tuple(space)


@st.composite
def studies(draw: st.DrawFn) -> tuple[SearchSpace, list[TrialRecord]]:
    """A search space and trials drawn from its grid, with repeats, any state, any grid id."""
    space = draw(search_spaces())
    names = [name for name, _ in space]
    points = [dict(zip(names, p)) for p in itertools.product(*(v for _, v in space))]
    picks = draw(st.lists(st.integers(0, len(points) - 1), max_size=3 * len(points)))
    trials = [
        TrialRecord(
            number=n,
            state=draw(st.sampled_from(STATES)),
            params=points[i],
            grid_id=draw(st.one_of(st.none(), st.integers(0, len(points)))),
            worker=draw(st.integers(0, 3)),
        )
        for n, i in enumerate(picks)
    ]
    return space, trials
