"""The audit of a whole storage as one record, its JSON and its table. Deciding lives in
``grids``; this module only gathers and renders."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from repro.audit.grids import GridAudit, Point, audit_study, outside
from repro.audit.read import StudyTrials
from repro.errors import ReproError

SHOWN = 8  # points listed per kind in the table; --json lists them all


class NoGridError(ReproError):
    """Nothing to audit: no GridSampler trial in the studies asked for."""


@dataclass(frozen=True)
class Audit:
    storage: str
    grids: list[GridAudit]
    # Finished trials at no grid's point, per study.
    outside: dict[str, list[int]]
    # Studies with no GridSampler trial (only with --all-studies; else it is an error).
    without_grid: list[str]
    # RUNNING trials per study: a worker still at work, or one that died with its trial.
    running: dict[str, int]

    @property
    def exact(self) -> bool | None:
        verdicts = [g.exact for g in self.grids]
        if False in verdicts:
            return False
        return None if None in verdicts else True

    def lost(self, missing_only: bool = False) -> bool:
        """Whether any point was missed (or, unless ``missing_only``, repeated)."""
        if not missing_only:
            return self.exact is False
        return any(
            g.missing or any(a.evaluations < a.points for a in g.ambiguous) for g in self.grids
        )

    @property
    def warnings(self) -> list[str]:
        out = [
            f"study {study!r} has {count} RUNNING trials, whose points count as not evaluated: "
            "audit once its workers have finished (a worker that died leaves its trial RUNNING)"
            for study, count in self.running.items()
        ]
        for g in self.grids:
            for name, values in g.alike.items():
                shown = ", ".join(json.dumps(v) for v in values)
                out.append(
                    f"study {g.study!r}: parameter {name!r} has values Optuna records as one "
                    f"choice ({shown}); from the storage the audit cannot tell those points "
                    "apart, so it counts them together and reports none of them as missing "
                    "or repeated"
                )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "exact": self.exact,
            "storage": self.storage,
            "grids": [g.to_json() for g in self.grids],
            "outside_any_grid": self.outside,
            "studies_without_grid": self.without_grid,
            "warnings": self.warnings,
        }


def build(storage: str, studies: list[StudyTrials], *, all_studies: bool) -> Audit:
    grids: list[GridAudit] = []
    outside_any: dict[str, list[int]] = {}
    without: list[str] = []
    running: dict[str, int] = {}
    for study in studies:
        found = audit_study(study)
        if not found:
            without.append(study.name)
            continue
        grids += found
        busy = sum(t.state == "RUNNING" for t in study.trials)
        if busy:
            running[study.name] = busy
        rest = outside(study, found)
        if rest:
            outside_any[study.name] = rest
    if not grids:
        what = f"study {studies[0].name!r}" if not all_studies else "no study"
        if not studies:
            raise NoGridError(f"{storage} holds no study")
        raise NoGridError(
            f"{what} in {storage} has no GridSampler trials (no trial carries the "
            "search_space attribute GridSampler stores), so there is no grid to check"
            if not all_studies
            else f"no study in {storage} has GridSampler trials ({len(studies)} studies read)"
        )
    return Audit(storage, grids, outside_any, without, running)


def _points(points: list[Point]) -> str:
    shown = ", ".join(json.dumps(p) for p in points[:SHOWN])
    more = f", ... {len(points) - SHOWN} more (--json lists all)" if len(points) > SHOWN else ""
    return shown + more


def _space(space: dict[str, list[Any]]) -> str:
    return " ".join(f"{name}[{len(values)}]" for name, values in space.items())


def render(audit: Audit, missing_only: bool = False) -> str:
    """The table a person reads, the lists under it and one verdict line."""
    head = (
        "study",
        "grid",
        "points",
        "missing",
        "repeated (extra)",
        "fail/pruned only",
        "trials grid/enqueued/other",
    )
    rows = [head]
    for g in audit.grids:
        extra = sum(len(d.trials) - 1 for d in g.duplicated)
        c = g.counted
        rows.append(
            (
                g.study,
                _space(g.space),
                str(g.points),
                str(len(g.missing)) if not g.ambiguous else f"{len(g.missing)}+?",
                f"{len(g.duplicated)} ({extra})",
                str(len(g.failed_only)),
                f"{c['grid']}/{c['enqueued']}/{c['other']}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    for g in audit.grids:
        name = f"{g.study} {_space(g.space)}"
        if g.missing:
            lines.append(f"{name}: never evaluated: {_points(g.missing)}")
        if g.queued:
            lines.append(f"{name}: already enqueued, not yet run: {_points(g.queued)}")
        for d in g.duplicated[:SHOWN]:
            lines.append(
                f"{name}: {json.dumps(d.params)} evaluated by trials "
                f"{', '.join(map(str, d.trials))}"
            )
        if len(g.duplicated) > SHOWN:
            lines.append(f"{name}: ... {len(g.duplicated) - SHOWN} more repeated points")
        for f in g.failed_only[:SHOWN]:
            lines.append(
                f"{name}: {json.dumps(f.params)} reached only by {f.states[0]} trial {f.trials[0]}"
            )
        for a in g.ambiguous:
            if a.evaluations != a.points:
                lines.append(
                    f"{name}: {a.points} points recorded as {json.dumps(a.params)}, "
                    f"{a.evaluations} finished trials there"
                )
    for study, numbers in audit.outside.items():
        lines.append(
            f"{study}: {len(numbers)} finished trials at no grid point "
            f"(trials {', '.join(map(str, numbers[:SHOWN]))}"
            f"{', ...' if len(numbers) > SHOWN else ''})"
        )
    if audit.without_grid:
        lines.append(
            f"studies without GridSampler trials (not audited): {', '.join(audit.without_grid)}"
        )
    lines += [f"warning: {w}" for w in audit.warnings]
    lines.append(verdict(audit, missing_only))
    return "\n".join(lines)


def verdict(audit: Audit, missing_only: bool = False) -> str:
    missing = sum(len(g.missing) for g in audit.grids)
    repeated = sum(len(g.duplicated) for g in audit.grids)
    extra = sum(len(d.trials) - 1 for g in audit.grids for d in g.duplicated)
    grids = f"{len(audit.grids)} grid{'s' if len(audit.grids) != 1 else ''}"
    if audit.exact is True:
        return f"exact: every point of {grids} evaluated exactly once"
    if not audit.lost(missing_only):
        if audit.exact is None:
            return (
                f"cannot tell: nothing seen missing or repeated in {grids}, but some values "
                "are recorded alike (see the warnings)"
            )
        return (
            f"every point of {grids} evaluated; {repeated} evaluated more than once "
            f"({extra} extra evaluations), not held against the study (--missing-only)"
        )
    return (
        f"{'points lost' if missing else 'not exact'}: {missing} never evaluated, {repeated} "
        f"evaluated more than once ({extra} extra evaluations) in {grids}"
    )
