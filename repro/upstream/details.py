"""``details.md``, the issue's attachment with everything the body leaves out, from
``facts.Facts`` alone: the release history, the remedies users are told about, the proposed fix
with the alternatives and upstream's tests, and rolling upgrades. Each section is present only
when its JSON is."""

from __future__ import annotations

from collections.abc import Sequence

from repro import markdown as md
from repro.results import ScenarioSummary
from repro.upstream import pr
from repro.upstream.facts import REMEDY_LABELS, Facts, RollingCase
from repro.upstream.render import POLICY, issue_link


def _cell(s: ScenarioSummary | None) -> str:
    """Runs that lost points / runs · mean points lost · mean duplicate evaluations."""
    if s is None:
        return "not run"
    if not s.runs:
        return f"error ({s.errors} runs)"
    mark = "✗" if s.runs_with_missing else "✓"
    errors = f" · {s.errors} crashed" if s.errors else ""
    return (
        f"{mark} **{s.runs_with_missing}/{s.runs}** · {s.missing_mean:g} · "
        f"{s.duplicates_mean:g}{errors}"
    )


def _span(versions: Sequence[str], measured: Sequence[str]) -> str:
    """ "every release from A to B" when ``versions`` are all the measured ones between A and B,
    else the list."""
    first, last = measured.index(versions[0]), measured.index(versions[-1])
    if list(measured[first : last + 1]) == list(versions):
        return f"every release from {versions[0]} to {versions[-1]}"
    return ", ".join(versions)


def _history_section(facts: Facts) -> list[str]:
    if not facts.measured_releases:
        return []
    out = [
        "",
        "## History",
        "",
        f"Every final release from {facts.measured_releases[0]} to "
        f"{facts.measured_releases[-1]} was measured (sequential workers on SQLite):",
        "",
    ]
    for policy, versions in sorted(facts.losing.items()):
        changes = "; ".join(
            f"{t.from_outcome} on {t.from_version}, {t.to_outcome} on {t.to_version}"
            for t in facts.transitions
            if t.seed_policy == policy
        )
        out.append(
            f"- {POLICY[policy]}: lost points on {_span(versions, facts.measured_releases)}"
            + (f" ({changes})" if changes else "")
        )
    return out


def _remedy_label(name: str) -> str:
    if name in REMEDY_LABELS:
        return REMEDY_LABELS[name]
    return f"no cap, {name.lstrip('x')} times the grid's trials ({issue_link(5489)} pattern)"


def _ordered(facts: Facts, rows: Sequence[ScenarioSummary]) -> list[str]:
    """The storages of ``rows`` in the order of the main table, others after them."""
    found = {s.storage for s in rows}
    return [st for st in facts.storages if st in found] + sorted(found - set(facts.storages))


def _remedies_section(facts: Facts) -> list[str]:
    if not facts.remedies:
        return []
    storages = _ordered(facts, [s for r in facts.remedies for s in r.rows])
    out = [
        "",
        f"## Remedies users are told about, measured on {facts.version}",
        "",
        "Cells as above, then the mean number of trials:",
        "",
    ]
    rows = []
    for remedy in facts.remedies:
        keys: list[tuple[str, str]] = []
        for s in remedy.rows:
            if (s.mode, s.seed_policy) not in keys:
                keys.append((s.mode, s.seed_policy))
        for mode, policy in keys:
            cells = []
            for storage in storages:
                found = next(
                    (
                        s
                        for s in remedy.rows
                        if (s.mode, s.seed_policy, s.storage) == (mode, policy, storage)
                    ),
                    None,
                )
                cells.append(_cell(found) + (f" · {found.trials_mean:g} trials" if found else ""))
            rows.append([_remedy_label(remedy.name), f"{mode}, {POLICY[policy]}", *cells])
    return out + md.table(["remedy", "mode, seed", *storages], rows)


def _fix_section(facts: Facts) -> list[str]:
    fix = facts.fix
    if fix is None:
        return []
    shas = ", ".join(f"`{p.sha256}`" for p in fix.patches)
    storages = _ordered(facts, fix.rows)
    modes = sorted({s.mode for s in fix.rows})

    def fixed(mode: str, storage: str) -> str:
        return _cell(next((s for s in fix.rows if (s.mode, s.storage) == (mode, storage)), None))

    out = [
        "",
        f"## The proposed fix, `{fix.spec}`",
        "",
        f"Patch sha256 {shas}, built from the {facts.version} sdist and measured like the "
        "release; distinct seeds per worker:",
        "",
        *md.table(
            ["mode", *storages], ([mode, *(fixed(mode, st) for st in storages)] for mode in modes)
        ),
    ]
    found = facts.alternatives
    if found is None:
        return out
    out += ["", "## Alternatives", "", *pr.alternatives_table(found), ""]
    labels = {row.label for row in found.rows}
    out += [
        f"- upstream's tests on `{t.label}` (the `tests/` of `{t.tests_of or t.label}`): "
        f"{t.passed} passed, {t.failed} failed, {t.skipped} skipped"
        for t in fix.tests
        if t.label in labels
    ]
    return out


def _rolling_row(c: RollingCase) -> list[str]:
    detail = f"refused: `{c.refusal}`" if c.refusal else f"{c.missing} missing, {c.duplicates} dup"
    return [
        f"{c.older} + {c.newer}",
        c.creator,
        c.storage,
        f"{c.mode}, {POLICY[c.seed_policy]}",
        c.outcome,
        detail,
    ]


def _rolling_section(facts: Facts) -> list[str]:
    bad = [c for c in facts.rolling if c.outcome != "exact"]
    if not facts.rolling:
        return []
    out = ["", f"## Upgrading workers one at a time to {facts.version}", "", ""]
    if not bad:
        out[-1] += f"Every measured pair with {facts.version} was exact."
        return out
    out[-1] += (
        f"Workers of two releases sharing one study; the cases with {facts.version} that were "
        "not exact (the others were):"
    )
    headers = ["releases", "created by", "storage", "mode, seed", "outcome", "detail"]
    return [*out, "", *md.table(headers, (_rolling_row(c) for c in bad))]


def details(facts: Facts) -> str:
    out = [
        f"# GridSampler with distinct seeds per process: the measurements (Optuna {facts.version})",
        "",
        "Cells read: runs that lost grid points / runs · mean points never evaluated · mean "
        "duplicate evaluations, unless a table says otherwise.",
    ]
    out += _history_section(facts) + _remedies_section(facts) + _fix_section(facts)
    out += _rolling_section(facts)
    return "\n".join(out).rstrip() + "\n"
