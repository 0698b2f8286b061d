"""The timeline's JSON records and their schema: what each release measured, the outcome each
scenario shows there, and where the outcome changed; beside the releases, any target builds
(``repro/targets.py``) measured the same way, each placed after the release it comes from.

Nothing here imports Optuna or runs anything; ``measure.py`` makes the records, ``render.py``
and ``plot.py`` draw them from ``timeline.json`` alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repro import expectations, targets
from repro.jsonfile import FormatError, from_fields, load_json, shallow_fields, write_json
from repro.results import RunRecord
from repro.timeline import changes
from repro.versions import version_key

# 2: `behaviour` became `measured`, `from_/to_behaviour` `from_/to_outcome`, `range` `span`.
SCHEMA = 2
FILENAME = "timeline.json"

OK = "ok"
INSTALL_FAILED = "install-failed"
IMPORT_FAILED = "import-failed"
# The harness itself failed in an environment where Optuna imports (no results file came back).
RUN_FAILED = "run-failed"

NO_DATA = "no-data"  # every run of the scenario failed
MIXED = "mixed"  # the runs fit no single outcome of the expectation table
# Ordered from best to worst, so a transition can say which way it went.
OUTCOMES = ("exact", "racy", "loses-points")

STRATEGY = {
    "name": "every-release",
    "why": (
        "Every final release in the range is measured rather than bisected: a detector run costs "
        "seconds, the behaviour changes more than once and in both directions (seed None loses "
        "points from 3.4.0 and not from 4.0.0), which a bisection for one change would miss, and "
        "a release that fails to install would mislead a bisection but is only a gap here."
    ),
}


def _probe(outcome: str) -> expectations.Expectation:
    # Only ``outcome`` matters to expectations.violations; the other fields are placeholders.
    return expectations.Expectation("0", None, frozenset(), frozenset(), outcome, "measured", ())


def _violations(
    runs: Sequence[RunRecord], version: str, row: expectations.Expectation
) -> list[str]:
    return [v for r in runs for v in expectations.violations(r, version, row)]


def classify(runs: Sequence[RunRecord], version: str) -> str:
    """The first outcome of the expectation table that every finished run agrees with, so that
    `exact`, `racy` and `loses-points` mean here what they mean there; NO_DATA when no run
    finished, MIXED when the runs fit no outcome."""
    finished = [r for r in runs if r.error is None]
    if not finished:
        return NO_DATA
    for outcome in OUTCOMES:
        if not _violations(finished, version, _probe(outcome)):
            return outcome
    return MIXED


@dataclass(frozen=True)
class ScenarioOutcome:
    """One scenario on one release, derived from its runs."""

    scenario: str
    mode: str
    seed_policy: str
    storage: str
    measured: str  # the outcome the runs show: one of OUTCOMES, NO_DATA or MIXED
    runs: int
    errors: int
    runs_with_missing: int
    missing: list[int]
    duplicates: list[int]
    expected: str | None
    agrees: bool | None  # with the expectation table; None when it has no row

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def outcomes(
    version: str, runs: Sequence[RunRecord], target: str | None = None
) -> list[ScenarioOutcome]:
    """Per scenario, the outcome its runs show beside the expected one; ``target`` is the
    label whose rows of the expectation table apply (None: the target under test, if any)."""
    groups: dict[str, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(run.scenario, []).append(run)
    out = []
    for scenario, group in groups.items():
        first = group[0]
        finished = [r for r in group if r.error is None]
        try:
            row: expectations.Expectation | None = expectations.expected(
                version, first.mode, first.seed_policy, target
            )
        except expectations.NoExpectation:
            row = None
        out.append(
            ScenarioOutcome(
                scenario=scenario,
                mode=first.mode,
                seed_policy=first.seed_policy,
                storage=first.storage,
                measured=classify(group, version),
                runs=len(finished),
                errors=len(group) - len(finished),
                runs_with_missing=sum(1 for r in finished if r.missing),
                missing=[r.missing for r in finished],
                duplicates=[r.duplicates for r in finished],
                expected=row.outcome if row else None,
                agrees=None
                if row is None or not finished
                else not _violations(finished, version, row),
            )
        )
    return out


@dataclass(frozen=True)
class Release:
    """One release: how its environment went and every run measured in it."""

    version: str
    status: str  # OK | INSTALL_FAILED | IMPORT_FAILED | RUN_FAILED
    error: str | None
    runs: list[RunRecord] = field(default_factory=list)
    environment: str | None = None  # "created" | "reused"; None when it could not be made
    install_seconds: float = 0.0
    run_seconds: float = 0.0
    python: str = ""
    packages: dict[str, str] = field(default_factory=dict)

    @property
    def measured(self) -> bool:
        return self.status == OK

    @property
    def name(self) -> str:
        """What the tables and the plot call this point."""
        return self.version

    def scenario_outcomes(self) -> list[ScenarioOutcome]:
        return outcomes(self.version, self.runs)

    def to_json(self) -> dict[str, Any]:
        data = shallow_fields(self)
        data["runs"] = [r.to_json() for r in self.runs]
        # Derived, stored so that every figure the timeline prints is in the JSON.
        data["outcomes"] = [o.to_json() for o in self.scenario_outcomes()]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Release:
        return from_fields(cls, data, runs=[RunRecord.from_json(r) for r in data.get("runs", [])])


@dataclass(frozen=True)
class TargetPoint(Release):
    """A target build measured like a release. ``version`` is what the installed Optuna
    reports ("" when the install failed before it could say); the expectation table's rows
    for the target's label apply before the release rows."""

    label: str = ""
    provenance: targets.Provenance | None = None

    @property
    def name(self) -> str:
        return f"target {self.label}"

    def scenario_outcomes(self) -> list[ScenarioOutcome]:
        return outcomes(self.version, self.runs, self.label)

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["provenance"] = None if self.provenance is None else self.provenance.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TargetPoint:
        known = data.get("provenance")
        return from_fields(
            cls,
            data,
            runs=[RunRecord.from_json(r) for r in data.get("runs", [])],
            provenance=None if known is None else targets.Provenance.from_json(known),
        )


def placement_key(version: str) -> tuple[tuple[int, ...], int]:
    """Where a version sits among releases: a pre-release or development build
    ("5.1.0.dev0", "4.0.0rc1") before the final release it leads to, as in PEP 440."""
    base = re.match(r"\d+(\.\d+)*", version)
    numbers = tuple(int(n) for n in base.group().split(".")) if base else ()
    return numbers, int(base is not None and base.group() == version)


def placed(releases: Sequence[Release], points: Sequence[TargetPoint]) -> list[Release]:
    """The releases in release order, each target after every release and target at or below
    the version it reports (targets of one version in the order given); a target that
    reports no version goes last."""
    out: list[Release] = sorted(releases, key=lambda r: version_key(r.version))
    known = sorted((p for p in points if p.version), key=lambda p: placement_key(p.version))
    for point in known:
        key = placement_key(point.version)
        out.insert(sum(1 for here in out if placement_key(here.version) <= key), point)
    return out + [p for p in points if not p.version]


def built_from(releases: Sequence[Release], point: TargetPoint) -> Release | None:
    """The release a target is placed after (None when it goes first or reports no version)."""
    if not point.version:
        return None
    before = None
    for here in placed(releases, [point]):
        if here is point:
            return before
        before = here
    return None


@dataclass(frozen=True)
class Difference:
    """A scenario whose outcome on a target differs from the release it is placed after."""

    scenario: str
    release: str  # outcome on the release
    target: str  # outcome on the target


def differences(release: Release, point: TargetPoint) -> list[Difference]:
    """Scenarios both measured whose outcomes differ, in the target's order."""
    if not (release.measured and point.measured):
        return []
    before = {o.scenario: o.measured for o in release.scenario_outcomes()}
    return [
        Difference(o.scenario, before[o.scenario], o.measured)
        for o in point.scenario_outcomes()
        if o.scenario in before and before[o.scenario] != o.measured
    ]


@dataclass(frozen=True)
class Transition:
    """A scenario's outcome differs between two measured releases with none measured
    between them (releases that could not be measured are listed in ``unmeasured``)."""

    scenario: str
    mode: str
    seed_policy: str
    from_version: str
    to_version: str
    from_outcome: str
    to_outcome: str
    direction: str  # "worse" | "better" | "different"
    unmeasured: list[str]
    explained: bool
    change: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Transition:
        return cls(**data)


def _direction(before: str, after: str) -> str:
    if before in OUTCOMES and after in OUTCOMES:
        return "worse" if OUTCOMES.index(after) > OUTCOMES.index(before) else "better"
    return "different"


def transitions(releases: Sequence[Release]) -> list[Transition]:
    """For each scenario, every pair of consecutive measured releases whose outcome differs:
    the last release with the old outcome and the first with the new, in both directions.
    Releases with no data for the scenario are skipped and named in ``unmeasured``."""
    ordered = sorted(releases, key=lambda r: version_key(r.version))
    scenarios: dict[str, ScenarioOutcome] = {}
    per_release: list[tuple[Release, dict[str, ScenarioOutcome]]] = []
    for release in ordered:
        found = {o.scenario: o for o in outcomes(release.version, release.runs)}
        per_release.append((release, found))
        for o in found.values():
            scenarios.setdefault(o.scenario, o)
    out = []
    for scenario, first in scenarios.items():
        last: tuple[str, str] | None = None  # (version, outcome)
        gap: list[str] = []
        for release, found in per_release:
            here = found.get(scenario)
            if not release.measured or here is None or here.measured == NO_DATA:
                if last is not None:
                    gap.append(release.version)
                continue
            if last is not None and last[1] != here.measured:
                why = changes.explain(
                    first.mode, first.seed_policy, last[0], last[1], release.version, here.measured
                )
                out.append(
                    Transition(
                        scenario=scenario,
                        mode=first.mode,
                        seed_policy=first.seed_policy,
                        from_version=last[0],
                        to_version=release.version,
                        from_outcome=last[1],
                        to_outcome=here.measured,
                        direction=_direction(last[1], here.measured),
                        unmeasured=gap,
                        explained=why.explained,
                        change=why.change,
                    )
                )
            last, gap = (release.version, here.measured), []
    return out


@dataclass(frozen=True)
class Timeline:
    span: list[str]  # [first, last] release measured or attempted
    versions: list[Release]
    transitions: list[Transition]
    scenarios: list[str]
    repetitions: int
    jobs: int = 1
    listed_by: str = ""  # how the releases were chosen: the index command or --versions
    command: str = ""
    python: str = ""
    platform: str = ""
    environments_created: int = 0
    wall_seconds: float = 0.0
    strategy: dict[str, str] = field(default_factory=lambda: dict(STRATEGY))
    # Target builds measured beside the releases (--target); kept out of ``versions`` and of
    # the transitions, which are about releases.
    targets: list[TargetPoint] = field(default_factory=list)
    schema: int = SCHEMA

    def to_json(self) -> dict[str, Any]:
        data = shallow_fields(self)
        data["versions"] = [v.to_json() for v in self.versions]
        data["transitions"] = [t.to_json() for t in self.transitions]
        data["targets"] = [t.to_json() for t in self.targets]
        if not self.targets:
            del data["targets"]  # a timeline of releases only is written as before
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Timeline:
        return from_fields(
            cls,
            data,
            versions=[Release.from_json(v) for v in data.get("versions", [])],
            transitions=[Transition.from_json(t) for t in data.get("transitions", [])],
            targets=[TargetPoint.from_json(t) for t in data.get("targets", [])],
        )

    def points(self) -> list[Release]:
        """Releases and targets in the order the table and the plot show them."""
        return placed(self.versions, self.targets)


def save(path: Path, timeline: Timeline) -> None:
    write_json(path, timeline.to_json(), schema=SCHEMA)


def load(path: Path) -> Timeline:
    """Read ``timeline.json``; a schema 1 file (a timeline measured before the renames) is
    read too, with its fields renamed in memory."""
    try:
        return Timeline.from_json(load_json(path, schema=SCHEMA))
    except FormatError as current:
        try:
            old = load_json(path, schema=1)
        except FormatError:
            raise current from None
        return Timeline.from_json(from_schema_1(old))


def from_schema_1(data: dict[str, Any]) -> dict[str, Any]:
    """A schema 1 timeline with the schema 2 field names; the measurements are untouched.
    ``write_json(path, from_schema_1(load_json(path, schema=1)), schema=SCHEMA)`` migrates a
    file and changes nothing else in it."""
    out = {k: v for k, v in data.items() if k != "range"}
    out["span"] = data["range"]
    out["versions"] = [
        {**v, "outcomes": [_renamed(o, behaviour="measured") for o in v.get("outcomes", [])]}
        for v in data.get("versions", [])
    ]
    out["transitions"] = [
        _renamed(t, from_behaviour="from_outcome", to_behaviour="to_outcome")
        for t in data.get("transitions", [])
    ]
    out["schema"] = SCHEMA
    return out


def _renamed(record: dict[str, Any], **names: str) -> dict[str, Any]:
    return {names.get(k, k): v for k, v in record.items()}
