"""Hypothesis strategies for GridSampler search spaces and corpus cases, and the corpus builder.

A parameter takes 1 to 8 values that are distinct as the harness counts them (1, 1.0, True and
"1" are four values; so are 0.0 and -0.0) of one or several of the types GridSampler accepts:
int, float (NaN and the infinities included), str, bool and None. Values that compare equal in
Python are drawn on purpose: Optuna's CategoricalDistribution records them as the first equal
choice, and the corpus measures what that does. Spaces have 1 to 4 parameters and at most
``MAX_GRID`` points. Every strategy shrinks towards few parameters, few values, small ints and
two workers, so a shrunk counterexample reads like a hand-written one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import hypothesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from repro.corpus.cases import Case, CorpusError, frozen_space, numbered, space_keys
from repro.metrics import value_key
from repro.scenarios import MODES, SEED_POLICIES, GridValue, Mode, SearchSpace, SeedPolicy

MAX_PARAMS = 4
MAX_VALUES = 8
MAX_GRID = 256
MIN_WORKERS, MAX_WORKERS = 2, 6
PARAM_NAMES = ("a", "b", "c", "d")

# Strings that look like other types, or like nothing, next to arbitrary text.
LOOKALIKES = ("", "0", "1", "1.0", "-0.0", "True", "None", "null", "nan", "inf", " 1")

VALUES: dict[str, st.SearchStrategy[GridValue]] = {
    # Order matters for shrinking: towards ints first.
    "int": st.integers(-(2**63), 2**63 - 1),
    # Printable text up to U+02FF, quotes, backslashes and Markdown's | and ` included: enough
    # for strings to be strings; exotic code points would say nothing more about GridSampler.
    "str": st.one_of(
        st.sampled_from(LOOKALIKES),
        st.text(
            st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_categories=["Cc"]),
            max_size=6,
        ),
    ),
    # One canonical NaN: its sign and payload do not survive JSON (see cases.py).
    "float": st.floats().map(lambda x: math.nan if math.isnan(x) else x),
    "bool": st.booleans(),
    "none": st.none(),
}
TYPES = tuple(VALUES)
# How many distinct values a type can contribute to one parameter.
CAPACITY = {"bool": 2, "none": 1}


@st.composite
def parameter_values(draw: st.DrawFn, max_values: int = MAX_VALUES) -> tuple[GridValue, ...]:
    """1 to ``max_values`` distinct values, of one type or a mixture."""
    kinds = draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=len(TYPES), unique=True))
    capacity = sum(CAPACITY.get(kind, max_values) for kind in kinds)
    size = draw(st.integers(1, min(max_values, capacity)))
    values = st.one_of(*(VALUES[kind] for kind in kinds))
    drawn = draw(st.lists(values, min_size=size, max_size=size, unique_by=value_key))
    return tuple(drawn)


@st.composite
def search_spaces(
    draw: st.DrawFn,
    max_params: int = MAX_PARAMS,
    max_values: int = MAX_VALUES,
    max_grid: int = MAX_GRID,
) -> SearchSpace:
    """1 to ``max_params`` parameters whose value counts multiply to at most ``max_grid``."""
    count = draw(st.integers(1, max_params))
    space: list[tuple[str, tuple[GridValue, ...]]] = []
    size = 1
    for name in PARAM_NAMES[:count]:
        values = draw(parameter_values(min(max_values, max_grid // size)))
        size *= len(values)
        space.append((name, values))
    return frozen_space(space)


def worker_counts() -> st.SearchStrategy[int]:
    return st.integers(MIN_WORKERS, MAX_WORKERS)


@st.composite
def cases(draw: st.DrawFn, max_grid: int = MAX_GRID) -> Case:
    """A case without an id; ``numbered`` gives ids once the corpus is drawn."""
    mode: Mode = draw(st.sampled_from(MODES))
    policy: SeedPolicy = draw(st.sampled_from(SEED_POLICIES))
    workers = draw(worker_counts())
    return Case("", mode, policy, workers, draw(search_spaces(max_grid=max_grid)))


def draw_corpus(count: int, seed: int, max_grid: int = MAX_GRID) -> tuple[Case, ...]:
    """``count`` distinct cases drawn by Hypothesis from a fixed seed, numbered in drawing
    order. Deterministic for one Hypothesis version only: hence the corpus file."""
    drawn: list[Case] = []

    @settings(
        max_examples=2 * count,
        database=None,
        deadline=None,
        derandomize=False,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.seed(seed)
    @hypothesis.given(cases(max_grid))
    def collect(case: Case) -> None:
        drawn.append(case)

    collect()
    distinct = _distinct(drawn)
    if len(distinct) < count:
        raise CorpusError(
            f"Hypothesis drew only {len(distinct)} distinct search spaces of {count}; "
            "ask for fewer cases or a larger --max-grid"
        )
    return numbered(distinct[:count])


def _distinct(drawn: Sequence[Case]) -> list[Case]:
    """The first case of every search space: Hypothesis opens with the simplest examples, and
    one ``{"a": [0]}`` is enough."""
    seen: set[str] = set()
    out = []
    for case in drawn:
        key = repr(space_keys(case.space))
        if key not in seen:
            seen.add(key)
            out.append(case)
    return out
