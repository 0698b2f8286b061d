"""Metrics of a finished study, computed from plain trial records only."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from repro.scenarios import GridValue, SearchSpace


@dataclass(frozen=True)
class TrialRecord:
    """What the harness needs of one trial; the state is Optuna's TrialState name."""

    number: int
    state: str
    params: dict[str, GridValue]
    grid_id: int | None
    worker: int | None
    phase: int | None = None  # barrier round, concurrent mode only

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def value_key(value: GridValue) -> str:
    """A key that keeps 1, 1.0, True and "1" apart and makes every NaN equal."""
    if isinstance(value, float) and math.isnan(value):
        return "float:nan"
    return f"{type(value).__name__}:{value!r}"


def point_key(params: dict[str, GridValue]) -> str:
    return json.dumps(sorted((name, value_key(v)) for name, v in params.items()))


def grid_keys(space: SearchSpace) -> set[str]:
    names = [name for name, _ in space]
    return {
        point_key(dict(zip(names, point)))
        for point in itertools.product(*(values for _, values in space))
    }


@dataclass(frozen=True)
class Metrics:
    trials: int
    states: dict[str, int]
    complete: int
    distinct: int
    duplicates: int
    missing: int
    same_id_duplicates: int
    colliding_id_duplicates: int
    duplicated_points: list[dict[str, Any]]
    missing_points: list[str]


def compute(trials: Sequence[TrialRecord], space: SearchSpace) -> Metrics:
    """Count what the study evaluated against the grid.

    A point evaluated k times by complete trials carrying g distinct grid ids contributes
    k - 1 duplicates: k - g of them re-use a grid id already evaluated (same id), g - 1 of
    them come from other grid ids that this worker's order mapped to the same values
    (colliding ids). So ``same + colliding == duplicates == complete - distinct``.
    """
    grid = grid_keys(space)
    complete = [t for t in trials if t.state == "COMPLETE"]
    by_point: dict[str, list[TrialRecord]] = defaultdict(list)
    for t in complete:
        by_point[point_key(t.params)].append(t)

    same_id = colliding = 0
    duplicated: list[dict[str, Any]] = []
    for key, group in sorted(by_point.items()):
        if len(group) < 2:
            continue
        ids = {t.grid_id for t in group}
        same_id += len(group) - len(ids)
        colliding += len(ids) - 1
        duplicated.append(
            {
                "point": key,
                "trials": sorted(t.number for t in group),
                "grid_ids": sorted(ids, key=lambda i: -1 if i is None else i),
            }
        )
    missing = sorted(grid - by_point.keys())
    states = Counter(t.state for t in trials)
    return Metrics(
        trials=len(trials),
        states=dict(sorted(states.items())),
        complete=len(complete),
        distinct=len(by_point),
        duplicates=len(complete) - len(by_point),
        missing=len(missing),
        same_id_duplicates=same_id,
        colliding_id_duplicates=colliding,
        duplicated_points=duplicated,
        missing_points=missing,
    )


def orders_distinct(fingerprints: Iterable[str | None]) -> int:
    return len({f for f in fingerprints if f is not None})
