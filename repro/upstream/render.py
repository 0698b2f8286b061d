"""The issue and the comment as Markdown, from ``facts.Facts`` alone.

The issue's sections are the fields of Optuna's bug-report form
(``.github/ISSUE_TEMPLATE/bug-report.yml``), headed as GitHub renders a submitted form (``###
<label>``); the logs field is a ``shell`` block because the form declares ``render: shell``.
Every link is absolute: a pasted body resolves relative links against the issue's URL.
Numbers come from the facts unchanged (``:g``), never computed here, so each is in the JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from repro import markdown as md
from repro.errors import ReproError
from repro.results import ScenarioSummary
from repro.upstream import upstream_docs as docs
from repro.upstream.facts import Facts

# The form's field labels, in its order.
EXPECTED = "Expected behavior"
ENVIRONMENT = "Environment"
LOGS = "Error messages, stack traces, or logs"
STEPS = "Steps to reproduce"
CONTEXT = "Additional context (optional)"
FIELDS = (EXPECTED, ENVIRONMENT, LOGS, STEPS, CONTEXT)

POLICY = {"per-worker": "seed per worker", "shared": "shared seed", "none": "no seed"}
HEADS = {"per-worker": "distinct seeds", "shared": "one shared seed", "none": "no seed"}
# A maintainer reads a report in a couple of minutes: the body stays short, the rest is in
# the attachments (GitHub itself takes 65,536 characters, docs.BODY_LIMIT).
ISSUE_LIMIT = 6000
# One sentence per attachment, by file name.
ATTACHED = {
    "details.md": "every release since the first measured, remedies, the fix and its "
    "alternatives, upstream's tests.",
    "report.md": "the report in short.",
    "report-chart.png": "its chart.",
    "report-details.md": "every scenario and storage.",
    "corpus.md": "random search spaces.",
    "timeline.md": "where each release changed.",
    "results.zip": "every JSON file behind these figures.",
}


class TooLong(ReproError, ValueError):
    """A body GitHub would refuse."""


def link(text: str, url: str) -> str:
    return f"[{text}]({url})"


def issue_link(number: int) -> str:
    return link(f"#{number}", f"{docs.REPO}/issues/{number}")


def _cell(seq: ScenarioSummary | None, conc: ScenarioSummary | None) -> str:
    """Runs that lost points / runs, sequential · concurrent; ✗ when any lost."""
    found = [x for x in (seq, conc) if x is not None and x.runs]
    if not found:
        return "not run"
    mark = "✗" if any(x.runs_with_missing for x in found) else "✓"
    parts = [f"{x.runs_with_missing}/{x.runs}" if x and x.runs else "none" for x in (seq, conc)]
    lost = f" ({seq.missing_mean:g} lost)" if seq and seq.runs_with_missing else ""
    return f"{mark} {' · '.join(parts)}{lost}"


def _table(facts: Facts) -> list[str]:
    policies = list(dict.fromkeys(c.seed_policy for c in facts.columns))

    def cell(storage: str, policy: str) -> str:
        by_mode = {
            c.mode: facts.cells.get((storage, c)) for c in facts.columns if c.seed_policy == policy
        }
        return _cell(by_mode.get("sequential"), by_mode.get("concurrent"))

    return md.table(
        ["storage", *(HEADS[p] for p in policies)],
        ([storage, *(cell(storage, p) for p in policies)] for storage in facts.storages),
    )


def expected_behavior(facts: Facts) -> list[str]:
    return [
        "Processes that share one study, each with `GridSampler(search_space, seed=...)` and "
        f"its own seed as {link('the samplers page', docs.SAMPLERS_PAGE.url)} recommends, "
        f"should evaluate every grid point once. On Optuna {facts.version} some points are "
        "never evaluated and others twice, and the study stops as if the grid were done, "
        "without an error. With one seed in every process, or none, the same runs are exact:",
        "",
        *_table(facts),
        "",
        "Cells: runs that lost points / runs, processes one after another · at once (mean "
        f"points lost). A {facts.grid_size}-point grid, {facts.workers} processes of "
        f"{facts.trials_per_worker} trials, the study capped at the grid size with "
        f"`MaxTrialsCallback` as in {issue_link(5489)}; `journal` is a file, `redis` "
        "`JournalStorage` on Redis.",
    ]


def environment(facts: Facts) -> list[str]:
    f = facts.newest
    packages = ", ".join(f"{k} {v}" for k, v in sorted(f.packages.items()))
    return [
        f"- Optuna version: {f.optuna_version}",
        f"- Python version: {f.python}",
        f"- OS: {f.platform}",
        f"- (Optional) Other libraries and their versions: {packages}",
    ]


def logs(facts: Facts) -> list[str]:
    """Each line the recorded runs printed, once, with how many runs printed it."""
    printed = [o.stdout for o in facts.script.outputs]
    out = ["```shell"]
    for line in dict.fromkeys(printed):
        runs = printed.count(line)
        out += [f"$ {facts.script.command}  # {runs} of {len(printed)} runs printed:", line]
    return [*out, "```"]


def steps(facts: Facts, script_text: str) -> list[str]:
    name = Path(facts.script.script).name
    return [
        f"1. Save the script below as `{name}`.",
        f"2. `uv run {name}` (it installs the newest Optuna) or `python {name}`.",
        '3. `"missing"` above 0 in its output: grid points never evaluated.',
        "",
        "```python",
        script_text.rstrip("\n"),
        "```",
    ]


def _quote(q: docs.Quote) -> list[str]:
    text = " ".join(line.strip() for line in q.lines)
    return [f"> {text}", f"> — {link(q.where, q.url)}"]


def _docs_section() -> list[str]:
    return [
        "**The documentation disagrees with itself.**",
        "",
        *_quote(docs.SAMPLERS_PAGE),
        "",
        *_quote(docs.GRID_DOCSTRING),
        "",
        "Only the same seed in every process keeps the grid whole.",
    ]


def _code(lines: docs.CodeLines) -> str:
    return link(f"L{lines.first}-L{lines.last}", lines.url)


def _cause_section(facts: Facts) -> list[str]:
    c = docs.cause(facts.version)
    return [
        "",
        f"**Cause** (`_grid.py` at `{c.shuffle.tag}`): `__init__` shuffles the grid with the "
        f"sampler's seed ({_code(c.shuffle)}); trial `n < len(grid)` gets grid id `n` "
        f"({_code(c.number)}), read through this process's order ({_code(c.lookup)}). "
        "Different seeds map one trial number to different points; once every id is used "
        f"`after_trial` stops the study ({_code(c.stop)}). {link('PR #5490', docs.PR_5490)} "
        "made `seed=None` mean seed 0, which fixed processes without a seed only.",
    ]


def _fix_pointer(facts: Facts) -> list[str]:
    found = facts.alternatives
    if found is None or found.recommended is None:
        return []
    return [
        "",
        "**A fix** (the grid order derived from the search space, a regression test, the "
        "documentation) is ready as a pull request; `details.md` compares it with alternatives.",
    ]


def additional_context(facts: Facts, attachments: Sequence[str]) -> list[str]:
    out = _docs_section() + _cause_section(facts) + _fix_pointer(facts)
    out += [
        "",
        "**Related:** " + ", ".join(issue_link(n) for n in (5489, 4627, 2039)) + ".",
        "",
        "**Attached:**",
        "",
        *(f"- `{name}`: {ATTACHED[name]}" for name in attachments),
    ]
    return out


def issue(facts: Facts, script_text: str, attachments: Sequence[str]) -> str:
    sections = (
        expected_behavior(facts),
        environment(facts),
        logs(facts),
        steps(facts, script_text),
        additional_context(facts, attachments),
    )
    out: list[str] = []
    for label, body in zip(FIELDS, sections):
        out += [f"### {label}", "", *body, ""]
    return checked("\n".join(out).rstrip() + "\n", ISSUE_LIMIT)


def title(facts: Facts) -> str:
    return (
        "`GridSampler` skips grid points when distributed processes pass different seeds "
        f"(Optuna {facts.version})"
    )


def comment(facts: Facts, new_issue: int | None) -> str:
    """Three lines of history for the closed #5489 thread and a pointer to the new report."""
    v = facts.version
    first = facts.columns[0]
    sqlite = facts.cells.get(("sqlite", first)) or next(
        (facts.cells[(st, first)] for st in facts.storages if (st, first) in facts.cells), None
    )
    none_lost = facts.losing.get("none", [])
    where = (
        issue_link(new_issue)
        if new_issue is not None
        else "a new issue (it references this thread, so it is listed just above)"
    )
    lines = [
        "Measured on every final release "
        + (
            f"from {facts.measured_releases[0]} to {facts.measured_releases[-1]}"
            if facts.measured_releases
            else f"from {facts.oldest.optuna_version} to {v}"
        )
        + ", with real worker processes; the newest on "
        + ", ".join(f"`{st}`" for st in facts.storages)
        + ":",
        "",
    ]
    if none_lost:
        lines.append(
            f"- {none_lost[0]} ({link('PR #4918', docs.PR_4918)}): workers without a seed lose "
            f"grid points, as reported here; so does every release up to {none_lost[-1]}."
        )
    exact_again = next(
        (
            t.to_version
            for t in facts.transitions
            if t.seed_policy == "none" and t.to_outcome == "exact"
        ),
        None,
    )
    if exact_again:
        lines.append(
            f"- {exact_again} ({link('PR #5490', docs.PR_5490)}): `seed=None` means seed 0, so "
            "workers without a seed agree on the grid again: exact on every release since."
        )
    if sqlite is not None:
        lines.append(
            f"- {v}: workers with *different* seeds still lose points ({sqlite.storage}, "
            f"sequential: {sqlite.runs_with_missing}/{sqlite.runs} runs, {sqlite.missing_mean:g} "
            "points missing on average), and the samplers reference page recommends different "
            "seeds for distributed processes."
        )
    lines += ["", f"Reported with a minimal reproduction and the measurements in {where}."]
    return checked("\n".join(lines) + "\n")


def checked(body: str, limit: int = docs.BODY_LIMIT) -> str:
    if len(body) > limit:
        raise TooLong(f"{len(body)} characters; the limit is {limit}")
    return body
