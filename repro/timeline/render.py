"""Markdown for the release timeline, rendered from ``results/timeline.json`` alone: the whole
``timeline.md``, and the same lines as the report's timeline section.

Same JSON in, same lines out: nothing reads the clock or the environment.
"""

from __future__ import annotations

from pathlib import Path

from repro import markdown as md
from repro.timeline import records
from repro.timeline.records import Release, ScenarioOutcome, TargetPoint, Timeline, Transition

# What the timeline is rendered into, beside ``records.FILENAME``.
MARKDOWN_NAME = "timeline.md"

MARKS = {"exact": "✓", "racy": "≈", "loses-points": "✗"}

LEGEND = (
    "Each cell: the behaviour the runs show, then every run as **missing / duplicates** (grid "
    "points never evaluated / evaluations of a point already evaluated). `exact` (✓) = no point "
    "lost or repeated; `racy` (≈) = workers agree on the grid, but two of them picked the same "
    "grid id; `loses-points` (✗) = workers disagree on what a grid id means and points are lost "
    "in every run; `mixed` = the runs fit none of these. The outcomes are those of "
    "`repro/expectations.py`; `‼` marks a cell that contradicts its expected outcome there."
)


def _label(o: ScenarioOutcome) -> str:
    return f"{o.mode} · {o.seed_policy} · {o.storage}"


def _cell(o: ScenarioOutcome) -> str:
    if o.runs == 0:
        return f"no data ({o.errors} runs failed)"
    runs = " · ".join(f"{m}/{d}" for m, d in zip(o.missing, o.duplicates))
    mark = MARKS.get(o.measured, "?")
    errors = f" +{o.errors} err" if o.errors else ""
    flag = f" ‼ expected {md.code(str(o.expected))}" if o.agrees is False else ""
    return f"{mark} {md.code(o.measured)} {runs}{errors}{flag}"


def _one_line(text: str | None) -> str:
    """An error's last line, safe inside a table cell or a code span."""
    lines = (text or "").strip().splitlines()
    return (lines[-1] if lines else "").replace("|", "/").replace("`", "'")


def _release_row(release: Release, scenario_ids: list[str]) -> list[str]:
    if not release.measured:
        # The cause once, in the first scenario's column; the other cells stay empty.
        cause = f"{release.status}: {_one_line(release.error)}"
        return [release.name, cause, *[""] * (len(scenario_ids) - 1)]
    found = {o.scenario: o for o in release.scenario_outcomes()}
    cells = [_cell(found[s]) if s in found else "not run" for s in scenario_ids]
    return [release.name, *cells]


def _labels(data: Timeline) -> dict[str, str]:
    """Scenario id -> its label, "" for a scenario no release has an outcome for."""
    labels = dict.fromkeys(data.scenarios, "")
    for release in data.points():
        for o in release.scenario_outcomes():
            labels[o.scenario] = _label(o)
    return labels


def _heading(data: Timeline) -> list[str]:
    return [f"## Release timeline: Optuna {data.span[0]} to {data.span[1]}", ""]


def _scope(data: Timeline) -> str:
    measured = [r for r in data.versions if r.measured]
    extra = ""
    if data.targets:
        done = sum(1 for t in data.targets if t.measured)
        extra = f" {len(data.targets)} targets beside them, {done} measured (one environment each)."
    return (
        f"{len(data.versions)} releases ({data.listed_by}), {len(measured)} measured; "
        f"{len(data.scenarios)} scenarios x {data.repetitions} runs in one environment per "
        f"release.{extra}"
    )


def _provenance(point: TargetPoint) -> str:
    """Where a target's build came from, every identifying field the record holds."""
    p = point.provenance
    if p is None:
        return "no provenance recorded"
    parts = [f"{p.kind} target {md.code(p.spec)}", f"from {md.code(p.source)}"]
    parts.append(f"Optuna reports {p.optuna_version or 'nothing (not installed)'}")
    if p.commit:
        parts.append(f"commit {md.code(p.commit)}")
    if p.sha256:
        parts.append(f"sha256 {md.code(p.sha256)}")
    parts += [f"patch {md.code(x.path)} sha256 {md.code(x.sha256)}" for x in p.patches]
    return "; ".join(parts)


def _against(data: Timeline, point: TargetPoint, labels: dict[str, str]) -> str:
    """How the target compares with the release it is placed after."""
    release = records.built_from(data.versions, point)
    if not point.measured:
        return "Not compared: the target was not measured."
    if release is None or not release.measured:
        return f"Not compared: no release at or below Optuna {point.version} was measured."
    moved = records.differences(release, point)
    if not moved:
        return f"Against {release.version}: the same outcome in every scenario."
    changed = "; ".join(
        f"{labels.get(d.scenario) or d.scenario} {md.code(d.release)} → {md.code(d.target)}"
        for d in moved
    )
    return f"Against {release.version}: {changed}."


def _targets(data: Timeline, labels: dict[str, str]) -> list[str]:
    if not data.targets:
        return []
    out = ["### Targets beside the releases", ""]
    out.append(
        "Builds that are not releases (`repro/targets.py`), measured as the releases are; each "
        "row sits after the release at or below the version the build reports."
    )
    out.append("")
    for point in data.targets:
        out.append(f"- {md.bold(point.label)}: {_provenance(point)}.")
        out.append(f"  {_against(data, point, labels)}")
    out.append("")
    return out


def _moved(t: Transition, labels: dict[str, str]) -> str:
    gap = f" ({', '.join(t.unmeasured)} not measured in between)" if t.unmeasured else ""
    return (
        f"- {md.bold(labels.get(t.scenario) or t.scenario)}: {md.code(t.from_outcome)} "
        f"on {t.from_version} → {md.code(t.to_outcome)} on {t.to_version} "
        f"({t.direction}){gap}"
    )


NO_CHANGE = "No scenario changed behaviour between measured releases."


def summary(data: Timeline) -> list[str]:
    """The timeline in short, for the report: what was measured and where the behaviour
    changed. The table per release and the source change behind each move are in
    ``timeline.md``."""
    labels = _labels(data)
    out = [*_heading(data), _scope(data), ""]
    out += [_moved(t, labels) for t in data.transitions] or [NO_CHANGE]
    out.append("")
    for point in data.targets:
        out += [f"Target {md.bold(point.label)}: {_against(data, point, labels)}", ""]
    unmeasured = [r.name for r in data.points() if not r.measured]
    if unmeasured:
        out += [f"Not measured: {', '.join(unmeasured)}.", ""]
    return out


def markdown(data: Timeline) -> list[str]:
    """The lines of ``timeline.md``."""
    releases = data.points()
    scenario_ids = list(data.scenarios)
    labels = _labels(data)
    out = [*_heading(data), f"{_scope(data)} {data.strategy.get('why', '')}", ""]
    out.append(LEGEND)
    out.append("")
    out.extend(
        md.table(
            ["Optuna", *(labels[s] or s for s in scenario_ids)],
            (_release_row(r, scenario_ids) for r in releases),
        )
    )
    out.append("")
    out.append("### Where the behaviour changed")
    out.append("")
    if not data.transitions:
        out.append(NO_CHANGE)
        out.append("")
    # One paragraph per source change, with every scenario it moved: the explanation is the
    # same text for each of them.
    by_change: dict[str, list[Transition]] = {}
    for t in data.transitions:
        by_change.setdefault(t.change, []).append(t)
    for change, moved in by_change.items():
        out.extend(_moved(t, labels) for t in moved)
        out.append("")
        out.append(change)
        out.append("")
    out.extend(_targets(data, labels))
    unmeasured = [r for r in releases if not r.measured]
    if unmeasured:
        out.append("### Releases not measured")
        out.append("")
        for r in unmeasured:
            out.append(f"- {md.bold(r.name)} ({r.status}): {md.code(_one_line(r.error))}")
        out.append("")
    out.extend(_environments(data))
    return out


def _environments(data: Timeline) -> list[str]:
    rows = [
        [
            r.name,
            r.status,
            r.environment or "-",
            f"{r.install_seconds:g}",
            f"{r.run_seconds:g}",
            ", ".join(f"{k} {v}" for k, v in sorted(r.packages.items())),
        ]
        for r in data.points()
    ]
    headers = ["Optuna", "status", "environment", "install s", "run s", "packages"]
    return md.details(
        "Environment per release",
        [
            f"{data.environments_created} environments created, the rest reused; whole run "
            f"{data.wall_seconds:g} s on Python {data.python} ({data.platform}), {data.jobs} "
            "lanes.",
            "",
            *md.table(headers, rows),
            "",
        ],
    )


def render_section(results_dir: Path) -> list[str]:
    """The lines of ``timeline.md`` from ``results_dir``, or none when no timeline was
    measured."""
    path = results_dir / records.FILENAME
    return markdown(records.load(path)) if path.exists() else []


def summary_section(results_dir: Path) -> list[str]:
    """The report's timeline section (``summary``), or none when no timeline was measured."""
    path = results_dir / records.FILENAME
    return summary(records.load(path)) if path.exists() else []
