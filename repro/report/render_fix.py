"""The candidate fix's Markdown, from ``fix.FixFindings`` alone: a short fold for
``report.md``, the per-scenario table and the patch's hunks for ``report-details.md``, and the
one sentence the summary may say. Formats, decides nothing."""

from __future__ import annotations

import re
from collections.abc import Sequence

from repro import markdown as md
from repro.report.fix import Bound, Change, CorpusPolicy, FixFindings, Patch, TargetResult
from repro.report.verdicts import Tally
from repro.upstream import upstream_docs as docs

TITLE = "A candidate fix for distinct per-worker seeds"
POLICY = {"none": "no seed", "shared": "shared seed", "per-worker": "seed per worker"}
# The tag whose file each release ships, for permalinks to the lines a patch replaces; the
# upstream bundle's tag stands for 5.0.0 (see repro/upstream/upstream_docs.py).
RELEASE_TAGS = {"5.0.0": docs.TAG}


def release_tag(release: str) -> str:
    """The tag the lines a patch of ``release`` touches are linked at."""
    return RELEASE_TAGS.get(release, f"v{release}")


def summary_note(found: FixFindings | None, version: str) -> str:
    """The summary's word on the fix, in the row of the release it patches; "" otherwise."""
    if found is None or version != found.release or not found.exact_everywhere:
        return ""
    total, corpus = found.fix.total, found.fix.corpus_total
    return (
        f" Not released: a candidate fix ({md.code(found.fix.label)}, below) measured exact "
        f"under every seed policy: {total.lost}/{total.runs} matrix runs lost points, "
        f"{corpus.fails}/{corpus.measured} corpus cases failed."
    )


def section(found: FixFindings, details_name: str) -> list[str]:
    """The fold's body in ``report.md``."""
    fix = found.fix
    out = [_what_it_is(found), ""]
    for patch in found.patches:
        out += _lines_touched(patch, found.release)
    out += [
        f"Matrix runs that lost grid points / runs, over every storage each target measured "
        f"(`✓` none lost; per scenario: {md.code(details_name)}):",
        "",
        *md.table(
            ["mode · seed policy", *(md.code(t.label) for t in found.targets)],
            _matrix_rows(found.targets),
        ),
        "",
    ]
    with_corpus = [t for t in found.targets if t.corpus]
    if with_corpus:
        out += [
            "Corpus cases (`results/corpus.json`, replayed unchanged) where the property failed "
            "/ cases that finished:",
            "",
            *md.table(
                ["seed policy", *(md.code(t.label) for t in with_corpus)],
                _corpus_rows(with_corpus),
            ),
            "",
        ]
    out += [
        "Each target, as its `target.json` records it; upstream's own tests "
        f"({md.code(found.tests_command)}) as `results/upstream-tests.json` records them:",
        "",
        *md.table(
            [
                "target",
                "Optuna reports",
                "source",
                "sha256 / commit",
                "patches",
                "matrix in",
                "upstream tests",
            ],
            (_provenance_row(t) for t in found.targets),
        ),
        "",
    ]
    out += _not_passed(found.targets)
    out += [_orders(fix), ""]
    if found.bound:
        out += [_bound(found, found.bound), ""]
    return out


def _not_passed(targets: Sequence[TargetResult]) -> list[str]:
    """The upstream tests that did not pass, per target. Tests that failed alike on every
    target that ran the same selection (an optional dependency absent from the environment,
    say) are counted once per selection, not listed under each target: the report lists what
    tells the builds apart."""
    groups: dict[str, list[TargetResult]] = {}
    for t in targets:
        if t.tests:
            groups.setdefault(t.tests.command, []).append(t)
    common = {
        command: (
            set.intersection(*(set(t.tests.not_passed) for t in group if t.tests))
            if len(group) > 1
            else set()
        )
        for command, group in groups.items()
    }
    failing = [
        f"- {md.code(t.label)}: "
        + ", ".join(md.code(x) for x in t.tests.not_passed if x not in common[t.tests.command])
        for group in groups.values()
        for t in group
        if t.tests and set(t.tests.not_passed) - common[t.tests.command]
    ]
    out = ["Tests that did not pass:", "", *failing, ""] if failing else []
    for command, alike in common.items():
        if alike:
            labels = ", ".join(md.code(t.label) for t in groups[command])
            out += [
                f"{len(alike)} tests did not pass on every build that ran {md.code(command)} "
                f"({labels}) alike, so they do not tell the builds apart; "
                "`results/upstream-tests.json` lists each with its message.",
                "",
            ]
    return out


def details(found: FixFindings, scenario_rows: Sequence[Sequence[str]], legend: str) -> list[str]:
    """``report-details.md``'s part: every scenario per target, and the patches' hunks."""
    out = [
        f"## {TITLE}: every scenario",
        "",
        legend,
        "",
        *md.table(
            ["mode · seed policy · storage", *(md.code(t.label) for t in found.targets)],
            scenario_rows,
        ),
        "",
    ]
    for patch in found.patches:
        if patch.as_measured:
            out += [
                f"The hunks of {md.code(patch.record.path)} (its header explains the change):",
                "",
                "```diff",
                patch.hunks.rstrip("\n"),
                "```",
                "",
            ]
    return out


def _what_it_is(found: FixFindings) -> str:
    patches = ", ".join(
        f"{md.code(p.record.path)} (sha256 {md.code(p.record.sha256)})" for p in found.patches
    )
    text = f"{md.code(found.fix.label)}: Optuna {found.release} with {patches}, built and measured "
    text += "like the release."
    if found.row:
        sources = ", ".join(f"[{u.rsplit('#', 1)[-1]}]({u})" for u in found.row.cite)
        modes = ", ".join(f"`{m}`" for m in sorted(found.row.modes))
        text += (
            f" The change: {found.row.why} ({sources}). Expected: `{found.row.outcome}` in "
            f"{modes} under every seed policy (`repro/expectations.py`, `TARGET_ROWS`)."
        )
    return text


def _lines(first: int, count: int) -> str:
    return f"line {first}" if count == 1 else f"lines {first}-{first + count - 1}"


def _quoted(lines: Sequence[str]) -> str:
    """The first non-blank line, whole when it is the only one."""
    shown = next((line.strip() for line in lines if line.strip()), "")
    return md.code(shown) + ("" if len(lines) == 1 else " …")


def _lines_touched(patch: Patch, release: str) -> list[str]:
    if not patch.as_measured:
        found = md.code(patch.sha256) if patch.sha256 else "missing"
        return [
            f"The lines {md.code(patch.record.path)} touches cannot be shown: the file is now "
            f"{found}, not the sha256 measured.",
            "",
        ]
    base = patch.base or release
    tag = release_tag(base)
    paths = sorted({c.path for c in patch.changes})
    out = [
        f"The lines it touches in {', '.join(md.code(p) for p in paths)} (read from the patch's "
        f"hunks, which count {base}'s lines; they link upstream at tag `{tag}`):",
        "",
    ]
    out += [f"- {_change(c, tag)}" for c in patch.changes]
    return [*out, ""]


def _change(c: Change, tag: str) -> str:
    added = f"adds {_lines(c.new_first, len(c.added))} ({_quoted(c.added)})" if c.added else ""
    if not c.removed:
        where = docs.permalink(c.path, c.after, tag=tag)
        return f"after [line {c.after}]({where}): {added}"
    last = c.old_first + len(c.removed) - 1
    where = docs.permalink(c.path, c.old_first, last if last != c.old_first else None, tag=tag)
    replaced = f"replaces [{_lines(c.old_first, len(c.removed))}]({where}) ({_quoted(c.removed)})"
    if not c.added:
        return replaced.replace("replaces", "removes", 1)
    return f"{replaced} with {_lines(c.new_first, len(c.added))} ({_quoted(c.added)})"


def _tally(t: Tally | None) -> str:
    if t is None:
        return "not run"
    return f"{'✗' if t.lost else '✓'} {t.lost}/{t.runs}"


def _matrix_rows(found: Sequence[TargetResult]) -> list[list[str]]:
    keys = list(dict.fromkeys((m, p) for t in found for m, p, _ in t.matrix))
    rows = []
    for mode, policy in keys:
        cells = [
            _tally(next((x for m, p, x in t.matrix if (m, p) == (mode, policy)), None))
            for t in found
        ]
        rows.append([f"{mode} · {policy}", *cells])
    rows.append([md.bold("all"), *(md.bold(_tally(t.total)) for t in found)])
    return rows


def _corpus_cell(c: CorpusPolicy | None) -> str:
    if c is None:
        return "not run"
    crashed = f" +{c.crashed} err" if c.crashed else ""
    return f"{'✗' if c.fails else '✓'} {c.fails}/{c.measured}{crashed}"


def _corpus_rows(found: Sequence[TargetResult]) -> list[list[str]]:
    policies = list(dict.fromkeys(c.seed_policy for t in found for c in t.corpus))
    rows = [
        [
            policy,
            *(
                _corpus_cell(next((c for c in t.corpus if c.seed_policy == policy), None))
                for t in found
            ),
        ]
        for policy in policies
    ]
    rows.append([md.bold("all"), *(md.bold(_corpus_cell(t.corpus_total)) for t in found)])
    return rows


def _provenance_row(t: TargetResult) -> list[str]:
    p = t.provenance
    tests = f"{t.tests.passed} passed, {t.tests.failed} failed" if t.tests else "not run"
    matrix = f"{md.code('results/' + t.measured_in)} ({', '.join(t.storages)})"
    if p is None:
        return [md.code(t.label), "", "", "", "", matrix, tests]
    ids = [f"sha256 {md.code(p.sha256)}"] if p.sha256 else []
    ids += [f"commit {md.code(p.commit)}"] if p.commit else []
    patches = ", ".join(f"{md.code(x.path)} sha256 {md.code(x.sha256)}" for x in p.patches)
    return [
        md.code(t.label),
        md.code(p.optuna_version),
        p.source,
        ", ".join(ids),
        patches or "none",
        matrix,
        tests,
    ]


def _orders(fix: TargetResult) -> str:
    agree = (
        "every run's workers shared one grid order"
        if fix.orders_max == 1
        else f"up to {fix.orders_max} grid orders among one run's workers"
    )
    contradicted = (
        f"{len(fix.contradicted)} runs contradict the expectation rows"
        if fix.contradicted
        else "no run contradicts its expectation row"
    )
    return (
        f"On {md.code(fix.label)} {agree} (`worker_orders_distinct`, measured from the trials), "
        f"{fix.duplicated} matrix runs evaluated a point twice and {contradicted}."
    )


def sci(x: float) -> str:
    """1.2e-9, not 1.2e-09."""
    return re.sub(r"e([+-])0*(\d)", r"e\1\2", f"{x:.1e}")


def _bound(found: FixFindings, b: Bound) -> str:
    return (
        f"How sure `exact` is: a build whose workers still shuffled with their own seeds (as "
        f"{found.release} does) could look exact in a run with a seed per worker only if the "
        f"{b.workers} workers' {b.trials_per_worker}-trial shares happened to cover the "
        f"{b.grid_size}-point grid: {sci(b.per_run)} per run (from the runs' grid and workers "
        f"in the JSON; `repro/scenarios.py`). Over the {b.scenarios} such scenarios of "
        f"{md.code(found.fix.label)} ({b.runs_each} runs each, one worker per process), the "
        f"chance that any of them reads exact by luck is at most {sci(b.any_scenario)}. In the "
        "other direction `exact` cannot fail by chance: one order for every worker and unique "
        "trial numbers force it. A corpus case is weaker evidence (a small grid can be covered "
        "by chance), hence the bound from the matrix."
    )
