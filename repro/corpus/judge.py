"""Whether one corpus run kept GridSampler's promise, and the tallies per version.

The property: **every grid point evaluated, and no duplicate beyond re-evaluating the same grid
id**. Re-evaluating a grid id is what GridSampler does on purpose once the grid is used up
(a worker that starts after the last point still runs a trial); any other duplicate means
workers disagreed on what a grid id is, or raced for it, and with the budget capped at the grid
size it costs a point.

The grid is compared with the study as Optuna records it. ``CategoricalDistribution`` records a
value as the first choice equal to it, so in ``[1, True]`` both points are stored as ``1``;
the raw metrics then show one missing ``True`` and one duplicate ``1`` in a perfect run. The
probe (``records.Probe``, measured on the same Optuna) says which values are recorded as
which, and the property is checked against the grid mapped the same way: as a multiset, so two
grid points recorded alike must both be evaluated. The raw metrics stay in the run record and
in the report next to the verdict, so nothing is hidden by the mapping.

Under a remedy (``BruteForceSampler``, or the grid enqueued and popped by a plain
sampler) there is no grid id, and the run is judged by its own row in
``repro.expectations.REMEDY_TABLE``, never by a GridSampler row: the property there is every grid
point evaluated (as recorded), a crashed worker is counted as a measured outcome, and what
contradicts the row (``remedy_violations``, on the counts as recorded) is kept with the verdict; a
case whose values Optuna records alike is measured but held to no row (the rows are stated for
distinct values). A remedy that no row covers for a case (launch mode ``threads``: one process with
``n_jobs`` threads is itself the in-process remedy; a release without the sampler) is not replayed,
and the tallies say so per case.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from repro.corpus.cases import (
    CORPUS_STORAGE,
    REMEDIES,
    Case,
    decode_space,
    decode_value,
    encode_space,
)
from repro.corpus.records import Probe
from repro.expectations import (
    KNOWN_FAULTS,
    NoExpectation,
    known_fault,
    remedy_expected,
    remedy_violations,
)
from repro.metrics import point_key, value_key
from repro.results import RunRecord
from repro.scenarios import MODES, REMEDY_MODES, SEED_POLICIES, GridValue

HOLDS, FAILS, ERROR, KNOWN_FAULT, UNPROBED = "holds", "fails", "error", "known-fault", "unprobed"
PROCESSES = "processes"  # the launch modes with one process per worker, pooled


@dataclass(frozen=True)
class Verdict:
    outcome: str  # holds | fails | error | known-fault | unprobed
    lost: int  # grid points, as Optuna records them, that no complete trial evaluated
    extra: int  # complete trials beyond the recorded grid
    collapsed: int  # grid points Optuna records as another grid point (from the probe)
    # Remedy runs only: crashed workers, the outcome the remedy's own row expects, and what in
    # the run contradicts that row.
    crashes: int = 0
    expected: str = ""
    contradicts: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "outcome": self.outcome,
            "lost": self.lost,
            "extra": self.extra,
            "collapsed": self.collapsed,
        }
        if self.expected:
            data.update(
                crashes=self.crashes, expected=self.expected, contradicts=list(self.contradicts)
            )
        return data


def recorded_grid(case: Case, probe: Probe) -> Counter[str]:
    """The grid as Optuna will record it: each point's key, counted with multiplicity."""
    # A report judges each case several times per version (per remedy, summary and section):
    # the grid is computed once per case and probe mapping.
    # Keyed by the typed space, not by the Case: a Case compares equal to one whose values
    # Python calls equal (0.0 == 0 == False), whose grid Optuna records apart; keyed by the
    # Case, a shrink judged {"a": [0.0]} with the grid cached for {"a": [False]}.
    typed = json.dumps(encode_space(case.space))
    return Counter(_recorded_grid(typed, json.dumps(probe.recorded_as, sort_keys=True)))


@functools.lru_cache(maxsize=1024)
def _recorded_grid(typed_space: str, recorded_as: str) -> Counter[str]:
    space = decode_space(json.loads(typed_space))
    pairs_by_name: dict[str, list[list[Any]]] = json.loads(recorded_as)
    mapping: dict[str, dict[str, GridValue]] = {
        name: {value_key(decode_value(given)): decode_value(got) for given, got in pairs}
        for name, pairs in pairs_by_name.items()
    }
    names = [name for name, _ in space]
    grid: Counter[str] = Counter()
    for point in itertools.product(*(values for _, values in space)):
        recorded = {
            name: mapping.get(name, {}).get(value_key(value), value)
            for name, value in zip(names, point)
        }
        grid[point_key(recorded)] += 1
    return grid


def collapsed_points(case: Case, probe: Probe) -> int:
    grid = recorded_grid(case, probe)
    return case.grid_size - sum(1 for count in grid.values() if count == 1)


def not_applicable(
    case: Case, remedy: str, version: str, storage: str = CORPUS_STORAGE
) -> str | None:
    """Why ``case`` is not replayed under ``remedy`` on this version; None when it is."""
    if remedy == "grid":
        return None
    if case.mode not in REMEDY_MODES:
        return (
            f"launch mode {case.mode}: one process with n_jobs threads is itself the in-process "
            "remedy; remedies apply to worker processes"
        )
    try:
        remedy_expected(version, remedy, case.mode, case.seed_policy, storage)
    except NoExpectation as exc:
        return f"no remedy row applies ({exc})"
    return None


def _as_recorded(record: RunRecord, case: Case, probe: Probe) -> tuple[int, int, int]:
    """Grid points (as recorded) no complete trial evaluated, complete trials beyond the
    recorded grid, and complete trials."""
    expected = recorded_grid(case, probe)
    evaluated = Counter(
        point_key(t["params"]) for t in record.trial_log if t["state"] == "COMPLETE"
    )
    lost = sum((expected - evaluated).values())
    extra = sum((evaluated - expected).values())
    return lost, extra, sum(evaluated.values())


def judge(record: RunRecord, case: Case, probe: Probe | None, version: str) -> Verdict:
    if record.remedy != "grid":
        return _judge_remedy(record, case, probe, version)
    if probe is None or probe.digest != case.digest:
        return Verdict(UNPROBED, 0, 0, 0)
    collapsed = collapsed_points(case, probe)
    if record.error is not None:
        outcome = KNOWN_FAULT if known_fault(record, version) else ERROR
        return Verdict(outcome, 0, 0, collapsed)
    lost, extra, _ = _as_recorded(record, case, probe)
    holds = lost == 0 and extra <= record.same_id_duplicates
    return Verdict(HOLDS if holds else FAILS, lost, extra, collapsed)


def _judge_remedy(record: RunRecord, case: Case, probe: Probe | None, version: str) -> Verdict:
    row = remedy_expected(version, record.remedy, record.mode, record.seed_policy, record.storage)
    crashes = len(record.worker_crashes)
    if probe is None or probe.digest != case.digest:
        return Verdict(UNPROBED, 0, 0, 0, crashes, row.outcome)
    collapsed = collapsed_points(case, probe)
    if record.error is not None:
        outcome = KNOWN_FAULT if known_fault(record, version) else ERROR
        return Verdict(outcome, 0, 0, collapsed, crashes, row.outcome)
    lost, extra, complete = _as_recorded(record, case, probe)
    if any(
        fault.explains(version, record.storage, crash)
        for crash in record.worker_crashes
        for fault in KNOWN_FAULTS
    ):
        return Verdict(KNOWN_FAULT, lost, extra, collapsed, crashes, row.outcome)
    # MaxTrialsCallback stops a worker only after a trial, so a worker that starts once the
    # study has its grid-size trials (more workers than points, an uneven split) or overlaps
    # the last one still runs a trial, and it evaluates some point again whatever the sampler.
    # Those trials beyond the grid size are not the remedy's duplicates; any other one, with
    # the budget at the grid size, cost a point. The row reads the counts as recorded.
    beyond = max(0, complete - case.grid_size)
    as_recorded = replace(record, missing=lost, duplicates=extra - beyond)
    # The rows are stated for values Optuna records apart (the matrix refuses others,
    # scenarios.check_distinct). With values recorded alike, BruteForceSampler marks the leaf
    # of the value as recorded, so the other equal choice's leaf is never marked and it can be
    # picked again, a trial each time: measured and tallied apart (``alike``), not held to a
    # row that does not speak of it.
    contradicts = () if collapsed else tuple(remedy_violations(as_recorded, version))
    outcome = HOLDS if lost == 0 else FAILS
    return Verdict(outcome, lost, extra, collapsed, crashes, row.outcome, contradicts)


def case_runs(
    cases: Iterable[Case], runs: Iterable[RunRecord], remedy: str = "grid"
) -> dict[str, RunRecord]:
    """The run of each case under ``remedy``, from a results file's runs; runs of an older
    corpus (same id, other case) are not this case's and are left out."""
    by_id = {c.id: c for c in cases}
    out: dict[str, RunRecord] = {}
    for run in runs:
        case = by_id.get(run.case_id or "")
        if case is not None and run.remedy == remedy and case.matches(run):
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
        **_unjudged(pairs),
    }


def _unjudged(pairs: Sequence[tuple[RunRecord, Verdict]]) -> dict[str, int]:
    """Runs that measured nothing about the property, by why."""
    return {
        "errors": sum(1 for _, v in pairs if v.outcome == ERROR),
        "known_faults": sum(1 for _, v in pairs if v.outcome == KNOWN_FAULT),
        "unprobed": sum(1 for _, v in pairs if v.outcome == UNPROBED),
    }


def verdicts(
    cases: Sequence[Case],
    runs: Iterable[RunRecord],
    probes: Mapping[str, Probe],
    version: str,
    remedy: str = "grid",
) -> dict[str, tuple[RunRecord, Verdict]]:
    """Each case that has a run of this version under ``remedy``, with the run's verdict."""
    found = case_runs(cases, runs, remedy)
    return {
        c.id: (found[c.id], judge(found[c.id], c, probes.get(c.id), version))
        for c in cases
        if c.id in found
    }


def _remedy_row(
    cases: Sequence[Case],
    judged: Mapping[str, tuple[RunRecord, Verdict]],
    skipped: Mapping[str, str],
) -> dict[str, Any]:
    """One remedy over some cases: what ran, what was exact (every point as recorded, no
    crashed worker), what lost points, what crashed, and what contradicts the remedy's row."""
    pairs = [judged[c.id] for c in cases if c.id in judged]
    ok = [(r, v) for r, v in pairs if v.outcome in (HOLDS, FAILS)]
    return {
        "cases": len(cases),
        "not_applicable": sum(1 for c in cases if c.id in skipped),
        "runs": len(pairs),
        "expected": "/".join(sorted({v.expected for _, v in pairs if v.expected})),
        "exact": sum(1 for _, v in ok if v.outcome == HOLDS and not v.crashes),
        "lost_points": sum(1 for _, v in ok if v.lost),
        # Runs of cases with values Optuna records alike, and those of them that lost points.
        "alike": sum(1 for _, v in ok if v.collapsed),
        "alike_lost_points": sum(1 for _, v in ok if v.collapsed and v.lost),
        "lost_mean": round(sum(v.lost for _, v in ok) / (len(ok) or 1), 2),
        "crashed_runs": sum(1 for _, v in pairs if v.crashes),
        "crashed_workers": sum(v.crashes for _, v in pairs),
        "contradicts": sum(1 for _, v in pairs if v.contradicts),
        **_unjudged(pairs),
    }


def remedy_tally(
    cases: Sequence[Case],
    runs: Sequence[RunRecord],
    probes: Mapping[str, Probe],
    version: str,
    storage: str,
) -> dict[str, Any]:
    """Per remedy (GridSampler included, as the baseline on the same cases): the verdict of
    each remedy run, the cases not replayed under it and why, and one row per launch mode."""
    per_remedy: dict[str, Any] = {}
    rows = []
    for remedy in REMEDIES:
        judged = verdicts(cases, runs, probes, version, remedy)
        skipped = {
            c.id: reason
            for c in cases
            if (reason := not_applicable(c, remedy, version, storage)) is not None
        }
        if remedy != "grid":
            reasons: dict[str, list[str]] = {}
            for cid, reason in skipped.items():
                reasons.setdefault(reason, []).append(cid)
            per_remedy[remedy] = {
                "verdicts": {cid: v.to_json() for cid, (_, v) in judged.items()},
                "not_applicable": [
                    {"reason": reason, "cases": ids} for reason, ids in reasons.items()
                ],
            }
        # Sequential and concurrent pooled: the cases every remedy applies to, so the
        # samplers compare on the same cases.
        processes = [c for c in cases if c.mode in REMEDY_MODES]
        rows.append(
            {"remedy": remedy, "mode": PROCESSES, **_remedy_row(processes, judged, skipped)}
        )
        rows += [
            {
                "remedy": remedy,
                "mode": m,
                **_remedy_row([c for c in cases if c.mode == m], judged, skipped),
            }
            for m in MODES
        ]
    return {"by_remedy": rows, "remedies": per_remedy}


def tally(
    cases: Sequence[Case],
    runs: Iterable[RunRecord],
    probes: Mapping[str, Probe],
    version: str,
    max_grid: int,
    storage: str = CORPUS_STORAGE,
) -> dict[str, Any]:
    """Everything the corpus section prints for one version, as plain JSON data: the
    GridSampler property per case and its breakdowns, then the remedies on the same cases."""
    runs = list(runs)
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
        "verdicts": {cid: v.to_json() for cid, (_, v) in judged.items()},
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
        **remedy_tally(cases, runs, probes, version, storage),
    }
