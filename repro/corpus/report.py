"""The corpus section of the report, rendered from JSON alone: ``results/corpus.json``, the runs
with a ``case_id`` in each ``results/optuna-<version>.json`` and ``results/corpus-<version>.json``
next to the corpus. Same JSON in, same lines out; no Optuna, no Hypothesis, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from repro import markdown as md
from repro.corpus import judge, records
from repro.corpus.cases import (
    REMEDIES,
    Case,
    Corpus,
    CorpusError,
    decode_space,
    load,
    space_literal,
)
from repro.corpus.records import CorpusResults, ShrinkOutcome
from repro.remedies import ANY_SEED, Strategy
from repro.results import ResultsFile, RunRecord
from repro.scenarios import MODES, SEED_POLICIES

MARKS = {
    judge.HOLDS: "✓",
    judge.FAILS: "✗",
    judge.ERROR: "error",
    judge.KNOWN_FAULT: "fault",
    judge.UNPROBED: "unprobed",
}


def _share(row: dict[str, Any]) -> str:
    if not row["cases"]:
        return "-"
    errors = row["errors"] + row["known_faults"] + row["unprobed"]
    return f"{row['fails']}/{row['measured']}" + (f" +{errors} err" if errors else "")


class Replayed(NamedTuple):
    version: str
    runs: list[RunRecord]
    side: CorpusResults | None


TITLE = ["## Random search spaces across versions", ""]
PROPERTY = (
    "**Property**: every grid point evaluated, and no duplicate beyond re-evaluating the same "
    "grid id."
)


class Measured(NamedTuple):
    corpus: Corpus
    rows: list[Replayed]
    tallies: dict[str, dict[str, Any]]  # by version, as ``judge.tally`` returns them

    @property
    def versions(self) -> list[str]:
        return [row.version for row in self.rows]


def measured(files: Sequence[ResultsFile], corpus_path: Path) -> Measured | str:
    """The corpus, its replays and their tallies, or why there is nothing to show. The tallies
    are recomputed from the runs and probes with the function that stored each side file's
    ``summary``."""
    try:
        corpus = load(corpus_path)
    except CorpusError as exc:
        return str(exc)
    rows = [
        Replayed(
            f.optuna_version,
            f.runs,
            records.load(records.path_for(corpus_path.parent, f.optuna_version)),
        )
        for f in files
        if any(r.case_id is not None for r in f.runs)
    ]
    if not rows:
        return "no results file has corpus runs"
    tallies = {
        v: judge.tally(
            corpus.cases, runs, side.probes if side else {}, v, corpus.max_grid, corpus.storage
        )
        for v, runs, side in rows
    }
    return Measured(corpus, rows, tallies)


def render_section(
    files: Sequence[ResultsFile], corpus_path: Path, found: Measured | str | None = None
) -> list[str]:
    """Markdown lines of the whole corpus section; a short note if there is no corpus or
    replay. ``found``: what ``measured`` returned for the same files, if the caller has it."""
    found = measured(files, corpus_path) if found is None else found
    if isinstance(found, str):
        return [*TITLE, f"Not measured: {found}.", ""]
    corpus, rows, tallies = found
    versions = found.versions
    out = [*TITLE, *_intro(corpus, rows)]
    out.extend(_summary(versions, tallies))
    out.extend(_by_mode(versions, tallies))
    out.extend(_by_dimension(versions, tallies, "by_grid_size", "grid points"))
    out.extend(_by_dimension(versions, tallies, "by_workers", "workers"))
    out.extend(_remedies(corpus, rows, tallies))
    out.extend(_shrunk(rows))
    out.extend(_cases(corpus, rows, tallies))
    return out


def summary_section(
    files: Sequence[ResultsFile], corpus_path: Path, found: Measured | str | None = None
) -> list[str]:
    """The corpus in short, for the report: what was drawn and the table per version and seed
    policy; the property, the breakdowns, the shrunk spaces and every case are in the whole
    section. ``found`` as for ``render_section``."""
    found = measured(files, corpus_path) if found is None else found
    if isinstance(found, str):
        return [*TITLE, f"Not measured: {found}.", ""]
    return [
        *TITLE,
        _drawn(found.corpus),
        "",
        f"{PROPERTY} Values that Optuna records as one (`1` and `True` in one parameter) count "
        "as one point.",
        "",
        *_summary(found.versions, found.tallies),
        *_remedy_summary(found.versions, found.tallies, found.corpus.storage),
    ]


def _drawn(corpus: Corpus) -> str:
    """What the corpus holds, in one sentence."""

    def span(numbers: Sequence[int]) -> str:
        return f"{min(numbers)} to {max(numbers)}"

    params = [len(c.space) for c in corpus.cases]
    values = [len(v) for c in corpus.cases for _, v in c.space]
    return (
        f"{len(corpus.cases)} cases drawn once by Hypothesis {corpus.hypothesis} (seed "
        f"{corpus.seed}) into `results/corpus.json` and replayed unchanged on every version, "
        f"once each, on the {corpus.storage} storage: {span(params)} parameters of "
        f"{span(values)} values of int, float (NaN, infinities and -0.0 included), str, bool "
        f"and None, mixed within a parameter; {span([c.grid_size for c in corpus.cases])} grid "
        f"points; {span([c.workers for c in corpus.cases])} workers; every launch mode and "
        "seed policy. Each case runs with `GridSampler` and, where it starts worker processes, "
        "again under the remedies `BruteForceSampler` and the enqueued grid."
    )


def _intro(corpus: Corpus, rows: Sequence[Replayed]) -> list[str]:
    replays = []
    cost = []
    for version, runs, side in rows:
        if side is not None and side.replay:
            r = side.replay
            # A side file written before the remedies were replayed names no samplers.
            samplers = ", ".join(_sampler(m) for m in r.get("remedies", ["grid"]))
            replays.append(
                f"{version}: {r['cases_replayed']} cases under {samplers} in "
                f"{r['wall_seconds']:g} s, {r['jobs']} lanes"
            )
        # Each sampler's cost, whichever replay ran it: its runs' own seconds, summed.
        seconds = {
            m: sum(run.seconds for run in runs if run.case_id and run.remedy == m) for m in REMEDIES
        }
        cost.append(
            f"{version}: "
            + ", ".join(f"{_sampler(m)} {round(seconds[m], 1):g} s" for m in REMEDIES if seconds[m])
        )
    return [
        f"{_drawn(corpus)} Last replay: " + "; ".join(replays) + ". Seconds per sampler, "
        "summed over its runs (the lanes overlap them): " + "; ".join(cost) + ".",
        "",
        f"{PROPERTY} It is checked against the grid *as Optuna records it*: "
        "`CategoricalDistribution` stores a value as the first choice equal to it, so in "
        "`[1, True]` both points are recorded as `1`. That is not a lost point, but the raw "
        "counts (missing, duplicates) show it, and the tables give both; `alike` counts the "
        "cases with such values (measured per version by a probe, "
        "`results/corpus-<version>.json`). Errors are runs that crashed: `fault` is a known "
        "Optuna fault (`repro/expectations.py`), the rest are listed per case.",
        "",
    ]


def _summary(versions: Sequence[str], tallies: dict[str, dict[str, Any]]) -> list[str]:
    headers = [
        "Optuna",
        "seed policy",
        "cases",
        "property fails",
        "with missing points",
        "with duplicates",
        "mean missing",
        "mean duplicates",
        "mean lost (as recorded)",
        "alike",
        "errors · faults",
    ]
    rows = [
        [
            v,
            row["seed_policy"],
            str(row["cases"]),
            _share(row),
            str(row["with_missing"]),
            str(row["with_duplicates"]),
            f"{row['missing_mean']:g}",
            f"{row['duplicates_mean']:g}",
            f"{row['lost_mean']:g}",
            str(row["with_collapsed_values"]),
            f"{row['errors']} · {row['known_faults']}",
        ]
        for v in versions
        for row in tallies[v]["by_policy"]
    ]
    return [
        "### Summary per version and seed policy",
        "",
        *md.table(headers, rows),
        "",
        "`property fails` = failing cases / cases that finished (`+k err` = cases that "
        "crashed); means are over the cases that finished.",
        "",
    ]


def _by_mode(versions: Sequence[str], tallies: dict[str, dict[str, Any]]) -> list[str]:
    rows = [
        [v, mode, *(_share(row) for row in tallies[v]["by_mode"] if row["mode"] == mode)]
        for v in versions
        for mode in MODES
    ]
    return [
        "### Property failures by launch mode",
        "",
        *md.table(["Optuna", "mode", *SEED_POLICIES], rows),
        "",
    ]


def _by_dimension(
    versions: Sequence[str], tallies: dict[str, dict[str, Any]], key: str, label: str
) -> list[str]:
    heads = [f"{v} {p}" for v in versions for p in SEED_POLICIES]
    rows = []
    first = tallies[versions[0]][key] if versions else []
    groups = sorted({_group(row) for row in first}, key=lambda g: tuple(int(x) for x in g))
    for group in groups:
        cells = []
        for v in versions:
            for p in SEED_POLICIES:
                row = next(
                    r for r in tallies[v][key] if _group(r) == group and r["seed_policy"] == p
                )
                cells.append(f"{_share(row)} · {row['lost_mean']:g}" if row["cases"] else "-")
        name = group[0] if len(group) == 1 or group[0] == group[1] else f"{group[0]} to {group[1]}"
        rows.append([name, *cells])
    return [
        f"### Property failures by {label}",
        "",
        "Each cell: failing cases / cases that finished · mean grid points lost (the grid as "
        "Optuna records it).",
        "",
        *md.table([label, *heads], rows),
        "",
    ]


def _sampler(remedy: str) -> str:
    """What each worker runs under ``remedy``, in the words of the remedies section."""
    return Strategy(remedy, ANY_SEED, judge.PROCESSES).remedy_label


def _remedy_intro(storage: str) -> str:
    return (
        "Each case whose workers are processes (sequential or concurrent) runs once more under "
        "each remedy users are told about, as the harness's remedy scenarios run it: "
        "`BruteForceSampler` in every worker, and the whole grid enqueued once before the "
        "workers start and popped by `RandomSampler`. A remedy run is judged by its own row of "
        "`REMEDY_TABLE` "
        f"(`repro/expectations.py`; `expected` is that row's outcome on the {storage} storage), "
        "never by a GridSampler row. **exact**: every grid point, as Optuna records it, "
        "evaluated and no worker crashed (trials beyond the grid size, which `MaxTrialsCallback` "
        "lets a late or overlapping worker run, re-evaluate a point under any sampler and are not "
        "held against it); `GridSampler` rows count its property on the same cases. `(alike)`: "
        "of the runs that lost points, those of cases whose values Optuna records alike (`0` and "
        "`False`): the rows are stated for distinct values (the matrix refuses others), so these "
        "runs are measured but not held to a row. `BruteForceSampler` marks the leaf of the value "
        "as recorded, so the other equal choice stays unmarked and can be picked again, a trial "
        "each time."
    )


def _remedy_cells(row: dict[str, Any]) -> list[str]:
    return [
        str(row["runs"]),
        str(row["exact"]),
        f"{row['lost_points']} ({row['alike_lost_points']})",
        f"{row['crashed_runs']} ({row['crashed_workers']})",
        f"{row['errors']} · {row['known_faults']}",
    ]


REMEDY_HEADERS = [
    "runs",
    "exact",
    "lost points (alike)",
    "crashed runs (workers)",
    "errors · faults",
]


def _remedy_summary(
    versions: Sequence[str], tallies: dict[str, dict[str, Any]], storage: str
) -> list[str]:
    rows = [
        [v, _sampler(row["remedy"]), *_remedy_cells(row)]
        for v in versions
        for row in tallies[v]["by_remedy"]
        if row["mode"] == judge.PROCESSES
    ]
    return [
        "### The same cases under the remedies",
        "",
        _remedy_intro(storage),
        "",
        *md.table(["Optuna", "sampler", *REMEDY_HEADERS], rows),
        "",
    ]


def _remedies(
    corpus: Corpus, rows: Sequence[Replayed], tallies: dict[str, dict[str, Any]]
) -> list[str]:
    table = [
        [
            v,
            _sampler(row["remedy"]),
            row["mode"],
            row["expected"] or "-",
            *_remedy_cells(row),
            str(row["contradicts"]),
        ]
        for v, _, _ in rows
        for row in tallies[v]["by_remedy"]
        if row["runs"] and row["mode"] != judge.PROCESSES
    ]
    return [
        "### The same cases under the remedies",
        "",
        _remedy_intro(corpus.storage),
        "",
        *md.table(
            ["Optuna", "sampler", "mode", "expected", *REMEDY_HEADERS, "contradict the row"],
            table,
        ),
        "",
        *_not_applicable(rows, tallies),
        *_remedy_runs(corpus, rows, tallies),
    ]


def _not_applicable(rows: Sequence[Replayed], tallies: dict[str, dict[str, Any]]) -> list[str]:
    """The cases a remedy was not replayed on, and why, as the tallies list them."""
    found: dict[tuple[str, int], tuple[list[str], list[str]]] = {}
    for v, _, _ in rows:
        for remedy, judged in tallies[v]["remedies"].items():
            for group in judged["not_applicable"]:
                samplers, versions = found.setdefault(
                    (group["reason"], len(group["cases"])), ([], [])
                )
                samplers += [] if _sampler(remedy) in samplers else [_sampler(remedy)]
                versions += [] if v in versions else [v]
    if not found:
        return []
    return [
        "Not replayed under a remedy:",
        "",
        *(
            f"- {count} cases on {', '.join(versions)} under {' and '.join(samplers)}: {reason}."
            for (reason, count), (samplers, versions) in found.items()
        ),
        "",
    ]


def _remedy_runs(
    corpus: Corpus, rows: Sequence[Replayed], tallies: dict[str, dict[str, Any]]
) -> list[str]:
    """Every remedy run that lost points, crashed or contradicts its row, per version."""
    lines = []
    contradictions = []
    for v, runs, _ in rows:
        for remedy, judged in tallies[v]["remedies"].items():
            found = judge.case_runs(corpus.cases, runs, remedy)
            marks = [
                _remedy_mark(cid, verdict, found[cid])
                for cid, verdict in judged["verdicts"].items()
                if verdict["outcome"] != judge.HOLDS or verdict["crashes"]
            ]
            if marks:
                lines.append(f"- {v}, {_sampler(remedy)}: " + "; ".join(marks) + ".")
            contradictions += [
                f"- {v} {cid}: {text}"
                for cid, verdict in judged["verdicts"].items()
                for text in verdict["contradicts"]
            ]
    out = md.details(
        "Remedy runs that lost points or crashed: case, points lost (as recorded), crashed "
        "workers and the last line of the first crash",
        [*(lines or ["None."]), ""],
    )
    if contradictions:
        out += ["Remedy runs that contradict their row:", "", *contradictions, ""]
    return out


def _remedy_mark(case_id: str, verdict: dict[str, Any], record: RunRecord) -> str:
    if verdict["outcome"] == judge.UNPROBED:
        return f"{case_id} {MARKS[judge.UNPROBED]}"
    if verdict["outcome"] not in (judge.HOLDS, judge.FAILS):
        # A harness error, or a worker crash that a known Optuna fault explains.
        cause = record.error or record.worker_crashes[0]
        return f"{case_id} {MARKS[verdict['outcome']]} ({md.code(cause.strip().splitlines()[-1])})"
    text = f"{case_id} lost {verdict['lost']}"
    if verdict["crashes"]:
        first = record.worker_crashes[0].strip().splitlines()[-1]
        text += f", {verdict['crashes']} crashed ({md.code(first)})"
    return text


def _group(row: dict[str, Any]) -> tuple[str, ...]:
    if "workers" in row:
        return (str(row["workers"]),)
    return (str(row["low"]), str(row["high"]))


def _shrunk(rows: Sequence[Replayed]) -> list[str]:
    out = [
        "### Minimal failing search spaces (shrunk by Hypothesis)",
        "",
        "For each version and seed policy whose corpus cases failed, Hypothesis searched "
        "sequential runs (deterministic under a fixed seed: each worker starts on a finished "
        "study and its grid order comes from its seed) for a failing search space and worker "
        "count and shrank it; the minimal one was then run again by the harness and as the "
        "script shown, which uses Optuna alone.",
        "",
    ]
    for version, _, side in rows:
        shrunk: list[ShrinkOutcome] = side.shrunk if side is not None else []
        if not shrunk:
            out.append(f"- **{version}**: not shrunk.")
            continue
        for s in shrunk:
            out.extend(_outcome(version, s))
    out.append("")
    return out


def _outcome(version: str, s: ShrinkOutcome) -> list[str]:
    head = f"- **{version}, seed policy `{s.seed_policy}`**: {s.status}. {s.reason}"
    if s.status in ("not-found", "flaky"):
        head += f" (Hypothesis seed {s.hypothesis_seed}, {s.seconds:g} s)."
    if s.status != "shrunk" or s.space is None or s.confirmation is None:
        return [head if head.endswith(".") else head + "."]
    c = s.confirmation
    check = s.snippet_check or {}
    space = space_literal(decode_space(s.space))
    return [
        f"{head}: {md.code(space)} with {s.workers} workers ({s.grid_size} grid points), "
        f"after {s.examples} runs in {s.seconds:g} s (Hypothesis {s.hypothesis}, "
        f"seed {s.hypothesis_seed}). Confirmation run: {c['outcome']}, {c['trials']} trials, "
        f"{c['missing']} missing, {c['duplicates']} duplicates ({c['same_id_duplicates']} same "
        f"id, {c['colliding_id_duplicates']} colliding), {c['worker_orders_distinct']} worker "
        f"orders. The script below exited {check.get('exit')}: `{check.get('output')}`",
        "",
        "  ```python",
        *[f"  {line}" if line else "" for line in s.snippet.rstrip("\n").split("\n")],
        "  ```",
        "",
    ]


def _cell(record: RunRecord | None, verdict: dict[str, Any] | None) -> str:
    if record is None or verdict is None:
        return "not run"
    mark = MARKS[verdict["outcome"]]
    if verdict["outcome"] not in (judge.HOLDS, judge.FAILS):
        return mark
    split = []
    if record.same_id_duplicates:
        split.append(f"id {record.same_id_duplicates}")
    if record.colliding_id_duplicates:
        split.append(f"col {record.colliding_id_duplicates}")
    text = f"{mark} {record.missing} · {record.duplicates}"
    if split:
        text += f" ({', '.join(split)})"
    if verdict["collapsed"]:
        text += f" · {verdict['collapsed']} alike"
    return text


def _cases(
    corpus: Corpus, rows: Sequence[Replayed], tallies: dict[str, dict[str, Any]]
) -> list[str]:
    runs = {v: judge.case_runs(corpus.cases, r) for v, r, _ in rows}
    table = [
        [
            case.id,
            _label(case),
            str(case.grid_size),
            md.code(space_literal(case.space)),
            *(_cell(runs[v].get(case.id), tallies[v]["verdicts"].get(case.id)) for v, _, _ in rows),
        ]
        for case in corpus.cases
    ]
    headers = ["case", "mode · seed policy · workers", "grid", "search space"]
    out = md.details(
        f"Every case ({len(corpus.cases)}): verdict · missing · duplicates",
        [
            "`✓`/`✗` = property holds/fails, then missing points · duplicate evaluations (`id` = "
            "same grid id, `col` = colliding ids) as the harness counts them, and `alike` = grid "
            "points Optuna records as another, equal value.",
            "",
            *md.table([*headers, *(v for v, _, _ in rows)], table),
            "",
        ],
    )
    errors = [
        f"- {v} {case_id}: {record.error.strip().splitlines()[-1]}"
        for v, _, _ in rows
        for case_id, record in sorted(runs[v].items())
        if record.error and tallies[v]["verdicts"][case_id]["outcome"] == judge.ERROR
    ]
    if errors:
        out.extend(["Cases whose run crashed (not a known fault):", "", *errors, ""])
    return out


def _label(case: Case) -> str:
    return f"{case.mode} · {case.seed_policy} · {case.workers}"
