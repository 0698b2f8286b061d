"""Whether one corpus run kept GridSampler's promise, and the tallies per version.

The property: **every grid point evaluated, and no duplicate beyond re-evaluating the same grid
id**. Re-evaluating a grid id is what GridSampler does on purpose once the grid is used up
(a worker that starts after the last point still runs a trial); any other duplicate means
workers disagreed on what a grid id is, or raced for it, and with the budget capped at the grid
size it costs a point.

The grid is compared with the study as Optuna records it. ``CategoricalDistribution`` records a
value as the first choice equal to it, so in ``[1, True]`` both points are stored as ``1``;
the raw metrics then show one missing ``True`` and one duplicate ``1`` in a perfect run. The
probe (``outcomes.Probe``, measured on the same Optuna) says which values are recorded as
which, and the property is checked against the grid mapped the same way: as a multiset, so two
grid points recorded alike must both be evaluated. The raw metrics stay in the run record and
in the report next to the verdict, so nothing is hidden by the mapping.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from repro.corpus.cases import Case, decode_value
from repro.corpus.outcomes import Probe
from repro.expectations import known_fault
from repro.metrics import point_key, value_key
from repro.results import RunRecord
from repro.scenarios import MODES, SEED_POLICIES, GridValue

HOLDS, FAILS, ERROR, KNOWN_FAULT, UNPROBED = "holds", "fails", "error", "known-fault", "unprobed"


@dataclass(frozen=True)
class Verdict:
    outcome: str  # holds | fails | error | known-fault | unprobed
    lost: int  # grid points, as Optuna records them, that no complete trial evaluated
    extra: int  # complete trials beyond the recorded grid
    collapsed: int  # grid points Optuna records as another grid point (from the probe)


def recorded_grid(case: Case, probe: Probe) -> Counter[str]:
    """The grid as Optuna will record it: each point's key, counted with multiplicity."""
    mapping: dict[str, dict[str, GridValue]] = {
        name: {value_key(decode_value(given)): decode_value(got) for given, got in pairs}
        for name, pairs in probe.recorded_as.items()
    }
    names = [name for name, _ in case.space]
    grid: Counter[str] = Counter()
    for point in itertools.product(*(values for _, values in case.space)):
        recorded = {
            name: mapping.get(name, {}).get(value_key(value), value)
            for name, value in zip(names, point)
        }
        grid[point_key(recorded)] += 1
    return grid


def collapsed_points(case: Case, probe: Probe) -> int:
    grid = recorded_grid(case, probe)
    return case.grid_size - sum(1 for count in grid.values() if count == 1)


def judge(record: RunRecord, case: Case, probe: Probe | None, version: str) -> Verdict:
    if probe is None or probe.digest != case.digest:
        return Verdict(UNPROBED, 0, 0, 0)
    collapsed = collapsed_points(case, probe)
    if record.error is not None:
        outcome = KNOWN_FAULT if known_fault(record, version) else ERROR
        return Verdict(outcome, 0, 0, collapsed)
    expected = recorded_grid(case, probe)
    evaluated = Counter(
        point_key(t["params"]) for t in record.trial_log if t["state"] == "COMPLETE"
    )
    lost = sum((expected - evaluated).values())
    extra = sum((evaluated - expected).values())
    holds = lost == 0 and extra <= record.same_id_duplicates
    return Verdict(HOLDS if holds else FAILS, lost, extra, collapsed)


def case_runs(cases: Iterable[Case], runs: Iterable[RunRecord]) -> dict[str, RunRecord]:
    """The run of each case, from a results file's runs; runs of an older corpus (same id,
    other case) are not this case's and are left out."""
    by_id = {c.id: c for c in cases}
    out: dict[str, RunRecord] = {}
    for run in runs:
        case = by_id.get(run.case_id or "")
        if case is not None and case.matches(run):
            out[case.id] = run
    return out


def grid_bins(max_grid: int) -> list[tuple[int, int]]:
    """Grid-size bins by powers of four: 1, 2-4, 5-16, 17-64, 65 up to ``max_grid``."""
    edges = [(1, 1), (2, 4), (5, 16), (17, 64), (65, max(65, max_grid))]
    return [(lo, min(hi, max_grid)) for lo, hi in edges if lo <= max_grid]


def _row(pairs: Sequence[tuple[RunRecord, Verdict]]) -> dict[str, Any]:
    """Counts over the runs of one group; means over the runs that finished (errored runs are
    counted, not averaged, as in results.summarize)."""
    ok = [(r, v) for r, v in pairs if v.outcome in (HOLDS, FAILS)]
    n = len(ok) or 1
    return {
        "cases": len(pairs),
        "measured": len(ok),
        "fails": sum(1 for _, v in ok if v.outcome == FAILS),
        "with_missing": sum(1 for r, _ in ok if r.missing),
        "with_duplicates": sum(1 for r, _ in ok if r.duplicates),
        "missing_mean": round(sum(r.missing for r, _ in ok) / n, 2),
        "duplicates_mean": round(sum(r.duplicates for r, _ in ok) / n, 2),
        "lost_mean": round(sum(v.lost for _, v in ok) / n, 2),
        "with_collapsed_values": sum(1 for _, v in pairs if v.collapsed),
        "errors": sum(1 for _, v in pairs if v.outcome == ERROR),
        "known_faults": sum(1 for _, v in pairs if v.outcome == KNOWN_FAULT),
        "unprobed": sum(1 for _, v in pairs if v.outcome == UNPROBED),
    }


def verdicts(
    cases: Sequence[Case],
    runs: Iterable[RunRecord],
    probes: Mapping[str, Probe],
    version: str,
) -> dict[str, tuple[RunRecord, Verdict]]:
    """Each case that has a run of this version, with the run's verdict."""
    found = case_runs(cases, runs)
    return {
        c.id: (found[c.id], judge(found[c.id], c, probes.get(c.id), version))
        for c in cases
        if c.id in found
    }


def tally(
    cases: Sequence[Case],
    runs: Iterable[RunRecord],
    probes: Mapping[str, Probe],
    version: str,
    max_grid: int,
) -> dict[str, Any]:
    """Everything the corpus section prints for one version, as plain JSON data."""
    judged = verdicts(cases, runs, probes, version)
    by_id = {c.id: c for c in cases}

    def rows(groups: Iterable[tuple[dict[str, Any], Any]]) -> list[dict[str, Any]]:
        out = []
        for labels, test in groups:
            pairs = [pv for cid, pv in judged.items() if test(by_id[cid])]
            out.append({**labels, **_row(pairs)})
        return out

    def with_policy(p: str, keep: Any) -> Any:
        return lambda c: c.seed_policy == p and keep(c)

    return {
        "cases": len(cases),
        "runs": len(judged),
        "verdicts": {
            cid: {"outcome": v.outcome, "lost": v.lost, "extra": v.extra, "collapsed": v.collapsed}
            for cid, (_, v) in judged.items()
        },
        "overall": _row(list(judged.values())),
        "by_policy": rows(
            (({"seed_policy": p}, with_policy(p, lambda c: True)) for p in SEED_POLICIES),
        ),
        "by_mode": rows(
            (
                ({"mode": m, "seed_policy": p}, with_policy(p, lambda c, m=m: c.mode == m))
                for m in MODES
                for p in SEED_POLICIES
            ),
        ),
        "by_grid_size": rows(
            (
                (
                    {"seed_policy": p, "low": lo, "high": hi},
                    with_policy(p, lambda c, lo=lo, hi=hi: lo <= c.grid_size <= hi),
                )
                for lo, hi in grid_bins(max_grid)
                for p in SEED_POLICIES
            ),
        ),
        "by_workers": rows(
            (
                ({"seed_policy": p, "workers": w}, with_policy(p, lambda c, w=w: c.workers == w))
                for w in sorted({c.workers for c in cases})
                for p in SEED_POLICIES
            ),
        ),
    }
