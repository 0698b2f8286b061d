"""Plain trial records -> one audit per grid that GridSampler stored.

A grid is what GridSampler stores with each trial it samples (``search_space``); a study that
had several spaces has several grids. Trials are matched to points by their params only:
from 3.4.0 on, the same ``grid_id`` names different points in different workers.

Optuna records a categorical value as the first choice equal to it, so 1, 1.0 and True (and
0, 0.0, -0.0 and False) become one value. Points that differ only in such values form one
class here: the audit knows how many of the class's points were evaluated, never which.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from repro.audit.read import AuditTrial, StudyTrials
from repro.metrics import value_key
from repro.scenarios import GridValue, same_choice

Point = dict[str, GridValue]
FINISHED = ("COMPLETE", "PRUNED", "FAIL")
# How a trial came to a grid point: sampled by GridSampler for this grid, enqueued
# (enqueue_trial), or from another sampler (or GridSampler with another grid).
ORIGINS = ("grid", "enqueued", "other")


@dataclass(frozen=True)
class Reached:
    """A point (or a class of points recorded alike) and the finished trials at it."""

    params: Point
    trials: list[int]
    states: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"params": self.params, "trials": self.trials, "states": self.states}


@dataclass(frozen=True)
class Ambiguous:
    """Points Optuna records as one: ``points`` of them in the grid, ``evaluations`` finished
    trials recorded as ``params``."""

    params: Point
    points: int
    evaluations: int
    trials: list[int]

    def to_json(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "points": self.points,
            "evaluations": self.evaluations,
            "trials": self.trials,
        }


@dataclass(frozen=True)
class GridAudit:
    study: str
    space: dict[str, list[GridValue]]
    points: int
    # Points with no finished trial: enqueue_trial takes each as it is.
    missing: list[Point]
    # Points reached by more than one finished trial.
    duplicated: list[Reached]
    # Points reached only by FAIL or PRUNED trials (not missing, not duplicated).
    failed_only: list[Reached]
    # Classes of points recorded alike, whose counts say nothing about single points.
    ambiguous: list[Ambiguous]
    # Trials counted at this grid's points, by origin.
    counted: dict[str, int]
    # Missing points that already have a WAITING enqueued trial.
    queued: list[Point]
    # Parameters whose values Optuna records as one choice: name -> the values.
    alike: dict[str, list[GridValue]] = field(default_factory=dict)

    @property
    def exact(self) -> bool | None:
        """True: every point evaluated exactly once; False: some missed or repeated; None:
        nothing seen missed or repeated, but values recorded alike hide single points."""
        if self.missing or self.duplicated:
            return False
        if any(a.evaluations != a.points for a in self.ambiguous):
            return False
        return None if self.ambiguous else True

    def to_json(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "space": self.space,
            "points": self.points,
            "exact": self.exact,
            "missing": self.missing,
            "duplicated": [d.to_json() for d in self.duplicated],
            "extra_evaluations": sum(len(d.trials) - 1 for d in self.duplicated),
            "failed_only": [f.to_json() for f in self.failed_only],
            "ambiguous": [a.to_json() for a in self.ambiguous],
            "counted": self.counted,
            "queued": self.queued,
            "alike": self.alike,
        }


def _space_key(space: dict[str, list[GridValue]]) -> str:
    """Spaces with the same points are one grid, whatever the order of their values."""
    return json.dumps(sorted((n, sorted(value_key(v) for v in vs)) for n, vs in space.items()))


def _classes(values: list[GridValue]) -> list[list[int]]:
    """Indexes of ``values`` grouped by what Optuna records them as (the first equal one)."""
    groups: list[list[int]] = []
    for i, value in enumerate(values):
        for group in groups:
            if same_choice(values[group[0]], value):
                group.append(i)
                break
        else:
            groups.append([i])
    return groups


class _Grid:
    """A grid's point classes and a way to place params in them."""

    def __init__(self, space: dict[str, list[GridValue]]) -> None:
        self.space = {name: list(space[name]) for name in sorted(space)}
        self.names = list(self.space)
        self.classes = {name: _classes(vs) for name, vs in self.space.items()}

    def place(self, params: dict[str, Any] | None) -> tuple[int, ...] | None:
        """The class (first index of each parameter's class) of ``params``, or None when they
        are not a point of this grid."""
        if not params or set(params) != set(self.names):
            return None
        key = []
        for name in self.names:
            values = self.space[name]
            found = next((i for i, v in enumerate(values) if same_choice(v, params[name])), None)
            if found is None:
                return None
            key.append(found)
        return tuple(key)

    def point(self, key: tuple[int, ...]) -> Point:
        return {name: self.space[name][i] for name, i in zip(self.names, key)}

    def all_classes(self) -> list[tuple[tuple[int, ...], int]]:
        """Every class key with the number of grid points in it."""
        per_param = [self.classes[name] for name in self.names]
        return [
            (tuple(g[0] for g in combo), math.prod(len(g) for g in combo))
            for combo in itertools.product(*per_param)
        ]


def _origin(trial: AuditTrial, key: str) -> str:
    if trial.space is not None and _space_key(trial.space) == key:
        return "grid"
    return "enqueued" if trial.fixed is not None else "other"


def audit_study(study: StudyTrials) -> list[GridAudit]:
    """One audit per distinct grid among the study's GridSampler trials (none: empty)."""
    spaces: dict[str, dict[str, list[GridValue]]] = {}
    for t in study.trials:
        if t.space is not None:
            spaces.setdefault(_space_key(t.space), t.space)
    return [_audit_grid(study, key, space) for key, space in spaces.items()]


def _audit_grid(study: StudyTrials, key: str, space: dict[str, list[GridValue]]) -> GridAudit:
    grid = _Grid(space)
    reached: dict[tuple[int, ...], list[AuditTrial]] = {}
    queued: set[tuple[int, ...]] = set()
    counted = dict.fromkeys(ORIGINS, 0)
    for t in study.trials:
        if t.state == "WAITING":
            where = grid.place(t.fixed)
            if where is not None:
                queued.add(where)
            continue
        where = grid.place(t.params)
        if where is None or t.state not in FINISHED:
            continue
        reached.setdefault(where, []).append(t)
        counted[_origin(t, key)] += 1
    missing: list[Point] = []
    duplicated: list[Reached] = []
    failed_only: list[Reached] = []
    ambiguous: list[Ambiguous] = []
    for cls, size in grid.all_classes():
        trials = reached.get(cls, [])
        params = grid.point(cls)
        numbers = [t.number for t in trials]
        if size > 1:
            ambiguous.append(Ambiguous(params, size, len(trials), numbers))
        elif not trials:
            missing.append(params)
        elif len(trials) > 1:
            duplicated.append(Reached(params, numbers, [t.state for t in trials]))
        elif trials[0].state != "COMPLETE":
            failed_only.append(Reached(params, numbers, [trials[0].state]))
    alike = {
        name: [grid.space[name][i] for group in groups if len(group) > 1 for i in group]
        for name, groups in grid.classes.items()
        if any(len(group) > 1 for group in groups)
    }
    return GridAudit(
        study=study.name,
        space=grid.space,
        points=math.prod(len(vs) for vs in grid.space.values()),
        missing=missing,
        duplicated=duplicated,
        failed_only=failed_only,
        ambiguous=ambiguous,
        counted=counted,
        queued=[grid.point(k) for k in sorted(queued) if grid.point(k) in missing],
        alike=alike,
    )


def outside(study: StudyTrials, audits: Sequence[GridAudit]) -> list[int]:
    """Finished trials whose params are a point of no grid (another sampler's, or a trial that
    failed before suggesting every parameter)."""
    grids = [_Grid(a.space) for a in audits]
    return [
        t.number
        for t in study.trials
        if t.state in FINISHED and all(g.place(t.params) is None for g in grids)
    ]
