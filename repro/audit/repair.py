"""`audit --enqueue-missing`: enqueue each missing point once, and say how to run them.

Which sampler runs them matters. On every release from 3.2.0 to 5.x, GridSampler leaves an
enqueued trial alone (``before_trial``, or ``infer_relative_search_space`` on 3.2.0, returns
at ``fixed_params``), and its ``after_trial`` stops the study as soon as no grid id is left
unvisited: in a study that lost points every grid id was used, so GridSampler would stop after
the first enqueued trial (optuna/optuna#6073, closed as intended; optuna/optuna#6844 open).
An enqueued trial takes its ``fixed_params`` under any sampler, so the instructions load the
study with RandomSampler and run exactly as many trials as are waiting: one more would be a
random point.
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.audit.grids import Point
from repro.audit.read import opened
from repro.audit.report import Audit
from repro.storages import StorageSpec


@dataclass(frozen=True)
class Plan:
    """Per study, the missing points that have no WAITING trial yet."""

    points: dict[str, list[Point]]

    @property
    def empty(self) -> bool:
        return not any(self.points.values())


def plan(audit: Audit) -> Plan:
    points: dict[str, list[Point]] = {}
    for g in audit.grids:
        todo = [p for p in g.missing if p not in g.queued]
        points.setdefault(g.study, []).extend(todo)
    return Plan(points)


def apply(spec: StorageSpec, todo: Plan) -> dict[str, int]:
    """Enqueue the plan's points; returns the WAITING trials each study then has."""
    import optuna

    from repro import _compat

    waiting: dict[str, int] = {}
    with opened(spec, write=True) as storage:
        for name, points in todo.points.items():
            study = optuna.load_study(study_name=name, storage=storage)
            _compat.enqueue_points(study, points)
            waiting[name] = len(study.get_trials(states=(optuna.trial.TrialState.WAITING,)))
    return waiting


def storage_expression(spec: StorageSpec) -> str:
    """How the user's script names this storage in Python."""
    from repro import _compat

    if spec.kind == "journal":
        return _compat.journal_file_expression(spec.location)
    if spec.kind == "redis":
        return _compat.journal_redis_expression(spec.redacted, spec.namespace)
    return repr(spec.redacted)


def instructions(spec: StorageSpec, study: str, waiting: int, audit_command: str) -> str:
    """What to run next: the waiting trials, once, under a sampler that is not GridSampler."""
    return "\n".join(
        [
            f"Run the {waiting} waiting trials of {study!r} once, in one process, with your "
            "objective and a sampler that is not GridSampler: GridSampler gives enqueued "
            "trials no grid id and stops the study once every grid id has been used, which "
            "in a study that lost points that way is after the first of them:",
            "",
            "    import optuna",
            f"    storage = {storage_expression(spec)}",
            f"    study = optuna.load_study(study_name={study!r}, storage=storage,",
            "                              sampler=optuna.samplers.RandomSampler())",
            f"    study.optimize(objective, n_trials={waiting})",
            "",
            f"Then `{audit_command} --missing-only` exits 0 (points evaluated more than once "
            "stay so: a repair cannot undo an evaluation).",
        ]
        + (["(Put your password back where *** stands.)"] if spec.redacted != spec.location else [])
    )
