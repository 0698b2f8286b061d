"""The pull request as Markdown, from ``facts.Facts`` alone: a title in the style of Optuna's
release notes (they quote pull-request titles) and a description in the sections of its
template (``.github/PULL_REQUEST_TEMPLATE.md``: ``## Motivation``, ``## Description of the
changes``, ``## Checklist``). The alternatives table is rendered here for both the description
and ``details.md``. Numbers come from ``alternatives.json`` and the results files unchanged.
"""

from __future__ import annotations

from repro import markdown as md
from repro.scenarios import MODES
from repro.upstream import alternatives as alt
from repro.upstream import upstream_docs as docs
from repro.upstream.facts import Facts
from repro.upstream.render import HEADS, checked, issue_link, link

MOTIVATION = "Motivation"
CHANGES = "Description of the changes"
CHECKLIST = "Checklist"
SECTIONS = (MOTIVATION, CHANGES, CHECKLIST)
# The template's checkbox, ticked: this pull request was prepared with an LLM's help.
LLM_BOX = "* [x] I used an LLM while working on this PR."
# Distinct seeds first: the case this pull request is about.
POLICIES = ("per-worker", "shared", "none")
MODE_SHORT = {"sequential": "seq", "concurrent": "conc", "threads": "thr"}


def title() -> str:
    return "Make `GridSampler` processes with different seeds share one grid order"


def _tally(t: alt.Tally) -> str:
    mark = "✓" if t.exact else "✗"
    return f"{mark} {t.lost}/{t.runs}"


def _matrix_cell(row: alt.Row, policy: str) -> str:
    modes = row.matrix.get(policy)
    if not modes:
        return "n/a"
    return " · ".join(f"{MODE_SHORT[m]} {_tally(modes[m])}" for m in MODES if m in modes)


def _corpus_cell(row: alt.Row) -> str:
    if not row.corpus:
        return "not replayed"
    return ", ".join(
        f"{HEADS[p]} {row.corpus[p].lost}/{row.corpus[p].runs}" for p in POLICIES if p in row.corpus
    )


def _order_cell(row: alt.Row) -> str:
    one = "yes" if row.orders_max == 1 else f"no ({row.orders_max} orders)"
    if row.release_order is None:
        return one
    return f"{one}; the release's: {'yes' if row.release_order else 'no'}"


def _tests_cell(row: alt.Row) -> str:
    t = row.tests
    if t is None:
        return "not run"
    text = f"{t.passed} passed, {t.failed} failed"
    if t.differences:
        text += f"; {len(t.differences)} differ"
    return text


def alternatives_table(found: alt.Alternatives) -> list[str]:
    headers = [
        "design",
        *(f"{HEADS[p]}: lost / runs" for p in POLICIES),
        f"corpus: cases lost / cases ({found.corpus_cases})",
        "one seed, one order",
        "upstream's tests",
        "what changes for existing users",
    ]
    rows = (
        [
            f"{row.design} (`{row.source}`)",
            *(_matrix_cell(row, p) for p in POLICIES),
            _corpus_cell(row),
            _order_cell(row),
            _tests_cell(row),
            row.changes,
        ]
        for row in found.rows
    )
    return [
        *md.table(headers, rows),
        "",
        "Matrix cells: runs that lost a grid point / runs, pooled over the storages, per launch "
        "mode (seq: processes one after another, conc: at once, thr: threads of one process); "
        "✓ when no run lost or repeated a point. Corpus: random search spaces, one run each, "
        "the cases every row replayed (spaces with values that compare equal, such as 0 and "
        "False, left out: Optuna stores those as one value on every build). The "
        "documentation-only row is the release's "
        "shared-seed runs, what users who follow it would run. One seed, one order: every "
        "shared-seed run's workers had one grid order; the release's: the seed gives the "
        "release's order.",
    ]


def _differences(found: alt.Alternatives) -> list[str]:
    """Per build, the tests whose outcome differs from the release's, one line per test
    function and change (its parameters in brackets)."""
    out = []
    for row in found.rows:
        if row.tests is None or not row.tests.differences:
            continue
        groups: dict[tuple[str, str, str, bool], list[str]] = {}
        for d in row.tests.differences:
            function, _, param = d.test.partition("[")
            key = (function, d.release, d.patched, d.test in row.tests.added)
            groups.setdefault(key, []).append(param.rstrip("]"))
        out.append(f"On `{row.label}`, against the release:")
        for (function, before, after, added), params in groups.items():
            shown = f" [{', '.join(p for p in params if p)}]" if any(params) else ""
            why = " (a test this patch adds)" if added else ""
            out.append(f"- `{function}`{shown}: {before} on the release, {after} here{why}")
        out.append("")
    return out


def _tests_section(facts: Facts, found: alt.Alternatives) -> list[str]:
    """Upstream's tests: what ran, what failed everywhere alike, and each difference."""
    command = facts.fix.tests[0].command if facts.fix and facts.fix.tests else "pytest"
    alike = "; ".join(
        f"{count} with `{message or 'no message'}`"
        for message, count in found.failing_everywhere.items()
    )
    out = [
        f"Upstream's tests, `{command}` from the {found.release} sdist with this patch's "
        "`tests/` (the whole `tests/samplers_tests/` and every other test file naming "
        "`GridSampler`), on the release and on each build.",
    ]
    if alike:
        out[-1] += (
            " Failing alike on the release and on every build, so none is a patch's doing "
            f"(`torch` is not installed here): {alike}."
        )
    out += ["", *_differences(found)]
    return out


def _recommendation(found: alt.Alternatives) -> str:
    chosen = next((r for r in found.rows if r.key == found.recommended), None)
    if chosen is None:
        return (
            "**No design is recommended yet:** none was measured exact under every seed policy "
            "and launch mode without an upstream test doing worse."
        )
    others = [r for r in found.rows if r.key not in (chosen.key, alt.RELEASE)]
    racy = [r.design for r in others if r.matrix and not r.exact_everywhere]
    why = f" The others are not exact everywhere: {'; '.join(racy)}." if racy else ""
    return (
        f"**Recommended: {chosen.design}.** It is exact under every seed policy and launch mode "
        "measured, adds no storage access and holds by construction: every process derives the "
        "same order from what `_same_search_space` already requires them to share, so no "
        f"process can read an order another has not yet written.{why}"
    )


def description(facts: Facts, new_issue: int | None) -> str:
    found = facts.alternatives
    assert found is not None, "bundle writes a description only with alternatives"
    where = issue_link(new_issue) if new_issue is not None else "the accompanying bug report"
    tests = found.rows[0].tests
    body = [
        f"## {MOTIVATION}",
        "",
        f"Fixes {where}: processes that share one study and give `GridSampler` different "
        "seeds, as the samplers reference page recommends for distributed optimization, skip "
        "some grid points and evaluate others twice. Each process shuffles the grid with its "
        "own seed, and trial `n < len(grid)` evaluates point `n` of that process's order "
        f"({link('_grid.py', docs.cause(found.release).number.url)}).",
        "",
        f"## {CHANGES}",
        "",
        "- `GridSampler.__init__` shuffles the grid with a `np.random.RandomState` seeded from "
        "a sha256 of the parameter names and their numbers of values, so every process of a "
        "study has one order. `seed` still seeds the sampler's `LazyRandomState`, which "
        "`reseed_rng` reseeds and which picks among unvisited grids after the first "
        f"`len(grid)` trials; the grid stays shuffled ({link('#4918', docs.PR_4918)}).",
        "- The `seed` docstring and the seed note on the samplers reference page say so.",
        "- `test_different_seeds_share_one_grid` (`tests/samplers_tests/test_grid.py`): three "
        "samplers with different seeds share one storage, for every storage mode, and must "
        "cover the grid exactly.",
        "",
        f"Measured with real worker processes on every storage, from the {found.release} "
        "sdist with this patch, beside the alternatives a reviewer may ask about:",
        "",
        *alternatives_table(found),
        "",
        _recommendation(found),
        "",
    ]
    if tests is not None:
        body += _tests_section(facts, found)
    body += [f"## {CHECKLIST}", "", LLM_BOX]
    return checked("\n".join(body).rstrip() + "\n")
