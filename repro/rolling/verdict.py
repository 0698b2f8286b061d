"""A verdict and advice per pair, computed from the case records as data (the section renders
it), and the check of each case against its expectation rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from repro.jsonfile import write_json
from repro.rolling.records import EXACT, REFUSED, SCHEMA, CaseRecord, RollingFile

SAFE = "safe"  # every case exact: upgrade one worker at a time
SAFE_WITH_SEED = "safe-with-shared-seed"  # exact only when every worker passes the same seed
UNSAFE = "unsafe"  # points lost or workers failed: drain, then upgrade every worker together
REFUSES = "refuses-storage"  # one release will not open the other's storage

ADVICE = {
    SAFE: "upgrade one worker at a time",
    SAFE_WITH_SEED: "upgrade one worker at a time only if every worker passes the same "
    "GridSampler(seed=...); otherwise drain, then upgrade every worker together",
    UNSAFE: "drain the study (let every running worker finish), then upgrade every worker together",
    REFUSES: "drain, upgrade the storage (`optuna storage upgrade`) and every worker together; "
    "workers of the other release cannot open it",
}


@dataclass(frozen=True)
class PairVerdict:
    older: str
    newer: str
    verdict: str  # SAFE | SAFE_WITH_SEED | UNSAFE | REFUSES
    advice: str
    cases: int
    outcomes: dict[str, int]  # measured outcome -> cases
    exact_by_policy: dict[str, list[int]]  # seed policy -> [exact cases, cases]
    refused_storages: list[str]
    refusals: list[str]  # what each refusing release said, verbatim
    violations: list[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def violations(case: CaseRecord) -> list[str]:
    """What in one case contradicts a forced expectation; empty when it agrees. ``disagree`` and
    ``racy`` force nothing; a worker that failed for another cause measured no grid outcome."""
    where = (
        f"{case.case_id}: expected {case.expected} / storage {case.expected_storage}, measured "
        f"{case.outcome} (missing={case.missing} duplicates={case.duplicates} "
        f"orders={case.orders_distinct})"
    )
    if case.error is not None:  # not run: nothing measured
        return []
    refused = case.storage_compat == REFUSED
    if refused != (case.expected_storage == REFUSED):
        return [f"{where}: storage {'refused' if refused else 'not refused'}"]
    if refused or case.outcome not in (EXACT, "lost-points", "duplicates"):
        return []
    if case.expected == EXACT and (case.outcome != EXACT or case.orders_distinct != 1):
        return [f"{where}: not exact"]
    if case.expected == "loses-points" and not case.missing:
        return [f"{where}: no point lost"]
    return []


def verdict_of(group: Sequence[CaseRecord]) -> PairVerdict:
    """The verdict for one pair from all its cases."""
    first = group[0]
    refused = [c for c in group if c.storage_compat == REFUSED]
    by_policy: dict[str, list[int]] = {}
    for case in group:
        tally = by_policy.setdefault(case.seed_policy, [0, 0])
        tally[0] += case.outcome == EXACT
        tally[1] += 1
    safe = {policy for policy, (exact, total) in by_policy.items() if exact == total}
    if refused:
        verdict = REFUSES
    elif safe == set(by_policy):
        verdict = SAFE
    elif "shared" in safe:
        verdict = SAFE_WITH_SEED
    else:
        verdict = UNSAFE
    return PairVerdict(
        older=first.older,
        newer=first.newer,
        verdict=verdict,
        advice=ADVICE[verdict],
        cases=len(group),
        outcomes=dict(sorted(Counter(c.outcome for c in group).items())),
        exact_by_policy=dict(sorted(by_policy.items())),
        refused_storages=sorted({c.storage for c in refused}),
        refusals=sorted({c.refusal for c in refused if c.refusal}),
        violations=[v for c in group for v in violations(c)],
    )


def verdicts(cases: Sequence[CaseRecord], pairs: Sequence[Sequence[str]]) -> list[PairVerdict]:
    """One verdict per pair that has cases, in the order the pairs were measured."""
    out = []
    for older, newer in pairs:
        group = [c for c in cases if (c.older, c.newer) == (older, newer)]
        if group:
            out.append(verdict_of(group))
    return out


def save(path: Path, data: RollingFile) -> None:
    """``rolling.json``: the case records and, decided from them, the verdict per pair."""
    out = data.to_json()
    out["verdicts"] = [v.to_json() for v in verdicts(data.cases, data.pairs)]
    write_json(path, out, schema=SCHEMA)
