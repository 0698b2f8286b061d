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
from repro.results import ScenarioSummary
from repro.upstream import upstream_docs as docs
from repro.upstream.facts import REMEDY_LABELS, Column, Facts, RollingCase

# The form's field labels, in its order.
EXPECTED = "Expected behavior"
ENVIRONMENT = "Environment"
LOGS = "Error messages, stack traces, or logs"
STEPS = "Steps to reproduce"
CONTEXT = "Additional context (optional)"
FIELDS = (EXPECTED, ENVIRONMENT, LOGS, STEPS, CONTEXT)

POLICY = {"per-worker": "seed per worker", "shared": "shared seed", "none": "no seed"}


class TooLong(ValueError):
    """A body GitHub would refuse."""


def link(text: str, url: str) -> str:
    return f"[{text}]({url})"


def issue_link(number: int) -> str:
    return link(f"#{number}", f"{docs.REPO}/issues/{number}")


def _cell(s: ScenarioSummary | None) -> str:
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


def _column_label(c: Column) -> str:
    return f"{c.version} {c.mode}, {POLICY[c.seed_policy]}"


def _table(facts: Facts) -> list[str]:
    return md.table(
        ["storage", *(_column_label(c) for c in facts.columns)],
        (
            [storage, *(_cell(facts.cells.get((storage, c))) for c in facts.columns)]
            for storage in facts.storages
        ),
    )


def _grid_sentence(facts: Facts) -> str:
    space = ", ".join(f"`{name}`: {len(values)} values" for name, values in facts.search_space)
    return (
        f"A {facts.grid_size}-point grid ({space}), {facts.workers} worker processes of "
        f"{facts.trials_per_worker} trials each sharing one study, the study capped at the grid "
        f"size with `MaxTrialsCallback` as in {issue_link(5489)}. `sequential`: the workers run "
        "one after another; `concurrent`: they run at once and every objective call waits at a "
        "barrier so that all of them hold a running trial together. Each worker process builds "
        "its own storage connection and its own `GridSampler`."
    )


def expected_behavior(facts: Facts) -> list[str]:
    v, old = facts.version, facts.oldest.optuna_version
    return [
        "Several worker processes share one study through one storage and each builds "
        "`GridSampler(search_space, seed=...)` with a seed of its own, as "
        f"{link('the samplers reference page', docs.SAMPLERS_PAGE.url)} tells distributed "
        "processes to do. I expect every grid point to be evaluated exactly once, as on "
        f"Optuna {old} with workers started one after another (last column below).",
        "",
        f"On Optuna {v} some grid points are never evaluated and others more than once, "
        "while the study stops as if the grid were done. No error is raised. Measured on every "
        "storage; without a seed, or with the same seed in every worker, the same runs are "
        f"exact on {v}:",
        "",
        *_table(facts),
        "",
        "Each cell: runs that lost grid points / runs · mean points never evaluated · mean "
        "duplicate evaluations. " + _grid_sentence(facts),
    ]


def environment(facts: Facts) -> list[str]:
    f = facts.newest
    packages = ", ".join(f"{k} {v}" for k, v in sorted(f.packages.items()))
    return [
        f"- Optuna version: {f.optuna_version}",
        f"- Python version: {f.python}",
        f"- OS: {f.platform}",
        f"- (Optional) Other libraries and their versions: {packages}. Storages: "
        + ", ".join(f"`{s}`" for s in facts.storages)
        + " (SQLite and the servers through `RDBStorage`; `journal` is `JournalStorage` on a "
        "file; `redis` is `JournalStorage` on Redis).",
    ]


def logs(facts: Facts) -> list[str]:
    out = ["```shell"]
    for output in facts.script.outputs:
        out += [f"$ {facts.script.command}", output.stdout]
    ex = facts.example
    if ex is not None:
        params = ", ".join(f"{k}={v!r}" for k, v in sorted(ex.params.items()))
        who = ", ".join(f"trial {n} (worker {w}, seed {s})" for n, w, s in ex.trials)
        out += [
            f"# One run of the harness ({ex.scenario}, repetition {ex.repetition}): {ex.missing} "
            f"points never evaluated, {ex.duplicates} duplicate evaluations; the {ex.workers} "
            f"workers had {ex.worker_orders_distinct} different grid orders. {params} was "
            f"evaluated by {who}.",
        ]
    out.append("```")
    return out


def steps(facts: Facts, script_text: str) -> list[str]:
    s = facts.script
    name = Path(s.script).name
    return [
        f"1. Save the script below as `{name}`.",
        f"2. Run `uv run {name}`: its inline metadata "
        f"({link('PEP 723', 'https://peps.python.org/pep-0723/')}) installs the newest Optuna "
        f"in a throwaway environment. Or `python {name}` with Optuna installed.",
        '3. It prints one JSON line; `"missing"` above 0 means that grid points were never '
        f"evaluated although all {facts.grid_size} trials ran. The logs above are "
        f"{len(s.outputs)} recorded runs on Optuna {s.optuna} (Python {s.python}, {s.platform}).",
        "",
        "```python",
        script_text.rstrip("\n"),
        "```",
    ]


def _quote(q: docs.Quote) -> list[str]:
    return [
        f"- {q.where}, {link(f'{q.path}#L{q.first}-L{q.last}', q.url)}:",
        "",
        "  ```rst",
        *[f"  {line}" for line in q.lines],
        "  ```",
    ]


def _docs_section(facts: Facts) -> list[str]:
    return [
        "**The documentation disagrees on the seeds of distributed workers.** Both at "
        f"{link(docs.TAG, f'{docs.REPO}/tree/{docs.TAG}')}:",
        "",
        *_quote(docs.SAMPLERS_PAGE),
        *_quote(docs.GRID_DOCSTRING),
        "",
        "The reference page, which speaks for every sampler, allows `seed=None` or different "
        "seeds per process. The `GridSampler` docstring strongly recommends fixing `seed` for "
        "each process, which keeps the grid whole only when every process fixes the same seed. "
        f"On {facts.version} different seeds lose grid points and a shared seed does not (table "
        "above), and nothing on the reference page says that `GridSampler` is the exception.",
    ]


def _cause_section(facts: Facts) -> list[str]:
    shuffle = docs.permalink(docs.GRID_PY, *docs.SHUFFLE_LINES)
    number = docs.permalink(docs.GRID_PY, *docs.TRIAL_NUMBER_LINES)
    return [
        "",
        f"**Why.** `GridSampler.__init__` shuffles the grid with `LazyRandomState(seed or 0)` "
        f"({link(f'_grid.py#L{docs.SHUFFLE_LINES[0]}-L{docs.SHUFFLE_LINES[1]}', shuffle)}), "
        "and `before_trial` gives each of the first `len(grid)` trials `grid_id = trial.number` "
        "without reading the storage "
        f"({link(f'_grid.py#L{docs.TRIAL_NUMBER_LINES[0]}-L{docs.TRIAL_NUMBER_LINES[1]}', number)}"
        "). Trial numbers are unique across workers, but a worker with another seed has another "
        "shuffled order, so the same grid id names another point in each worker. Every grid id "
        "is used once, `after_trial` finds none left and stops the study, and the points that "
        "no worker's order put at its trial numbers are never evaluated. In the runs above every "
        "duplicate came from two different grid ids naming the same point, never from one id "
        f"picked twice. {link('PR #5490', docs.PR_5490)} (the fix for {issue_link(5489)}) made "
        "`seed=None` mean seed 0, which repaired workers without a seed but not workers with "
        "different seeds.",
    ]


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
        f"**History.** Every final release from {facts.measured_releases[0]} to "
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
        f"**Remedies users are told about, measured on {facts.version}.** Cells as above, "
        "then the mean number of trials:",
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
        f"**A candidate fix**, `{fix.spec}` (patch sha256 {shas}), built from the {facts.version} "
        "sdist and measured like the release; distinct seeds per worker:",
        "",
        *md.table(
            ["mode", *storages], ([mode, *(fixed(mode, st) for st in storages)] for mode in modes)
        ),
    ]
    if fix.tests:
        out += ["", f"Upstream's own tests (`{fix.tests[0].command}`):", ""]
        for t in fix.tests:
            failing = f": {', '.join(f'`{x}`' for x in t.not_passed)}" if t.not_passed else ""
            out.append(f"- `{t.label}`: {t.passed} passed, {t.failed} not passed{failing}")
    if fix.diff:
        out += ["", "<details><summary>the patch</summary>", "", "```diff"]
        out += [fix.diff.rstrip("\n"), "```", "", "</details>"]
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
    out = ["", f"**Upgrading workers one at a time to {facts.version}.** "]
    if not bad:
        out[-1] += f"Every measured pair with {facts.version} was exact."
        return out
    out[-1] += (
        f"Workers of two releases sharing one study; the cases with {facts.version} that were "
        "not exact (the others were):"
    )
    headers = ["releases", "created by", "storage", "mode, seed", "outcome", "detail"]
    return [*out, "", *md.table(headers, (_rolling_row(c) for c in bad))]


def additional_context(facts: Facts, attachments: Sequence[str]) -> list[str]:
    out = _docs_section(facts) + _cause_section(facts) + _history_section(facts)
    out += _remedies_section(facts) + _fix_section(facts) + _rolling_section(facts)
    out += [
        "",
        "**Related:** "
        + ", ".join(issue_link(n) for n in (5489, 4627, 2039))
        + " (the last two: workers running at once may pick the same grid id).",
        "",
        "**Attached:** " + ", ".join(f"`{name}`" for name in attachments) + ". "
        "`report.md` is the measured report in short, `report-chart.png` its chart, "
        "`report-details.md`, `corpus.md` and `timeline.md` its long tables (every storage, "
        "the random search spaces, every release), `results.zip` every JSON file this issue "
        "was generated from.",
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
    return checked("\n".join(out).rstrip() + "\n")


def title(facts: Facts) -> str:
    return (
        f"`GridSampler` loses grid points when distributed workers pass different seeds "
        f"(Optuna {facts.version}), which the samplers reference page recommends"
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


def checked(body: str) -> str:
    if len(body) > docs.BODY_LIMIT:
        raise TooLong(f"{len(body)} characters; GitHub refuses more than {docs.BODY_LIMIT}")
    return body
