"""Minimal failing search spaces: Hypothesis searches and shrinks, every example a real run.

Shrinking is sound only when the same example always gives the same outcome. That holds for
``sequential`` workers under a deterministic seed policy: each worker starts after the previous
one finished, so it sees a fixed study; its sampler's order (3.4+) or its picks (3.2.0) come
from a fixed seed; so the trials, and the verdict, are a function of the search space and the
worker count. ``concurrent`` and ``threads`` depend on timing, and seed policy ``none`` on OS
entropy (3.x), so neither is shrunk. A policy whose corpus failures were all timing-dependent
then ends as ``not-found``, which says just that.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis.errors import Flaky, Unsatisfiable

from repro import _compat, results, runner
from repro.corpus import judge, records
from repro.corpus.cases import Case, Corpus, CorpusError, encode_space, space_literal
from repro.corpus.records import CorpusResults, ShrinkOutcome
from repro.corpus.replay import probe
from repro.corpus.strategies import search_spaces, worker_counts
from repro.results import RunRecord
from repro.scenarios import PER_WORKER_SEED_BASE, SEED_POLICIES, SHARED_SEED, Mode, SeedPolicy

MODE: Mode = "sequential"
SNIPPET_TIMEOUT = 300.0


class PropertyFailed(AssertionError):
    def __init__(self, case: Case, record: RunRecord, verdict: judge.Verdict) -> None:
        super().__init__(
            f"{case.seed_policy}, {case.workers} workers, {space_literal(case.space)}: "
            f"lost {verdict.lost}, extra {verdict.extra}"
        )
        self.case = case


def run_case(case: Case, storage: str, timeout: float) -> tuple[RunRecord, judge.Verdict]:
    record = runner.run(case.scenario(storage), 0, timeout=timeout)
    return record, judge.judge(record, case, probe(case), _compat.OPTUNA_VERSION)


def counts(record: RunRecord, verdict: judge.Verdict) -> dict[str, Any]:
    return {
        "outcome": verdict.outcome,
        "trials": record.trials,
        "missing": record.missing,
        "duplicates": record.duplicates,
        "same_id_duplicates": record.same_id_duplicates,
        "colliding_id_duplicates": record.colliding_id_duplicates,
        "lost": verdict.lost,
        "extra": verdict.extra,
        "worker_orders_distinct": record.worker_orders_distinct,
        "seconds": record.seconds,
        "error": record.error,
    }


def snippet(case: Case, version: str) -> str:
    """A self-contained script that reproduces the case with Optuna alone."""
    seed = f"{SHARED_SEED}" if case.seed_policy == "shared" else f"{PER_WORKER_SEED_BASE} + worker"
    scenario = case.scenario()
    header = textwrap.fill(
        f"Minimal failing search space that Hypothesis found on Optuna {version} (seed policy "
        f"{case.seed_policy}). {case.workers} workers run one after another on one SQLite "
        "study, each with its own GridSampler, as separate scripts started one after another "
        "would; the study is capped at the grid size with MaxTrialsCallback, as in "
        "optuna/optuna#5489. Exit status 1: some grid point was never evaluated.",
        width=99,
        initial_indent="# ",
        subsequent_indent="# ",
    )
    return f"""\
{header}
import itertools
import tempfile

import optuna

space = {space_literal(case.space)}
workers = {case.workers}
trials_per_worker = {scenario.trials_each}
grid = [dict(zip(space, point)) for point in itertools.product(*space.values())]


def objective(trial: optuna.Trial) -> float:
    for name, values in space.items():
        trial.suggest_categorical(name, values)
    return 0.0


def key(params: dict) -> tuple:  # keeps 1, 1.0, True and "1" apart
    return tuple(sorted((name, type(v).__name__, repr(v)) for name, v in params.items()))


optuna.logging.set_verbosity(optuna.logging.ERROR)
storage = f"sqlite:///{{tempfile.mkdtemp()}}/grid.db"
study = optuna.create_study(storage=storage)
for worker in range(workers):
    sampler = optuna.samplers.GridSampler(space, seed={seed})
    optuna.load_study(study_name=study.study_name, storage=storage, sampler=sampler).optimize(
        objective,
        n_trials=trials_per_worker,
        callbacks=[optuna.study.MaxTrialsCallback(len(grid), states=None)],
    )
done = [key(t.params) for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
missing = [point for point in grid if key(point) not in done]
print(
    f"Optuna {{optuna.__version__}}: {{len(done)}} trials, {{len(missing)}} of {{len(grid)}} grid "
    f"points never evaluated {{missing}}, {{len(done) - len(set(done))}} evaluated twice"
)
raise SystemExit(1 if missing else 0)
"""


def check_snippet(code: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="grid-repro-snippet-") as tmp:
        try:
            done = subprocess.run(
                [sys.executable, "-c", code],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=SNIPPET_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"exit": None, "output": f"no result within {SNIPPET_TIMEOUT:g} s"}
    output = done.stdout.strip() or done.stderr.strip().splitlines()[-1:]
    return {"exit": done.returncode, "output": output if isinstance(output, str) else output[0]}


def search(
    policy: SeedPolicy,
    *,
    storage: str,
    examples: int,
    seed: int,
    max_grid: int,
    timeout: float,
) -> ShrinkOutcome:
    """Let Hypothesis look for a failing (space, workers) in sequential mode and shrink it."""
    tally = {"examples": 0, "rejected": 0}

    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=False,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        print_blob=False,
    )
    @hypothesis.seed(seed)
    @hypothesis.given(space=search_spaces(max_grid=max_grid), workers=worker_counts())
    def holds(space: Any, workers: int) -> None:
        tally["examples"] += 1
        case = Case("shrink", MODE, policy, workers, space)
        record, verdict = run_case(case, storage, timeout)
        if verdict.outcome in (judge.ERROR, judge.KNOWN_FAULT):
            # A crashed run says nothing about the property; Hypothesis draws another.
            tally["rejected"] += 1
            hypothesis.reject()
        if verdict.outcome == judge.FAILS:
            raise PropertyFailed(case, record, verdict)

    began = time.monotonic()
    base = ShrinkOutcome(
        seed_policy=policy,
        status="",
        reason="",
        hypothesis=hypothesis.__version__,
        max_examples=examples,
        hypothesis_seed=seed,
    )
    found: Case | None = None
    try:
        holds()
    except PropertyFailed as failed:
        found = failed.case
    except Flaky as exc:
        return replace(
            base,
            status="flaky",
            reason=f"Hypothesis saw an example both pass and fail: {str(exc).splitlines()[0]}",
            examples=tally["examples"],
            rejected=tally["rejected"],
            seconds=round(time.monotonic() - began, 1),
        )
    except Unsatisfiable:
        pass  # every example errored: nothing found
    seconds = round(time.monotonic() - began, 1)
    if found is None:
        return replace(
            base,
            status="not-found",
            reason=f"No failing search space in {tally['examples']} sequential runs: this "
            "policy's corpus failures need overlapping workers (concurrent or threads), whose "
            "outcome depends on timing and cannot be shrunk",
            examples=tally["examples"],
            rejected=tally["rejected"],
            seconds=seconds,
        )
    record, verdict = run_case(found, storage, timeout)
    code = snippet(found, _compat.OPTUNA_VERSION)
    return replace(
        base,
        status="shrunk",
        reason="Hypothesis shrank a failing sequential run to this space and worker count",
        examples=tally["examples"],
        rejected=tally["rejected"],
        seconds=seconds,
        workers=found.workers,
        space=encode_space(found.space),
        grid_size=found.grid_size,
        confirmation=counts(record, verdict),
        snippet=code,
        snippet_check=check_snippet(code),
    )


def shrink(
    corpus: Corpus,
    results_dir: Path,
    *,
    policies: Sequence[SeedPolicy],
    examples: int,
    seed: int,
    timeout: float,
) -> CorpusResults:
    """For each seed policy of ``policies``: shrink when its corpus cases on this version
    failed the property and the policy is deterministic; record why not otherwise."""
    version = _compat.OPTUNA_VERSION
    path = results.results_path(results_dir, version)
    side_path = records.path_for(results_dir, version)
    side = records.load(side_path)
    if side is None or not path.exists():
        raise CorpusError(
            f"no replay of the corpus on Optuna {version} in {results_dir}; "
            "run `python -m repro.corpus replay` first"
        )
    judged = judge.verdicts(corpus.cases, results.load(path).runs, side.probes, version)
    policy_of = {c.id: c.seed_policy for c in corpus.cases}
    found: dict[str, ShrinkOutcome] = {}
    for policy in policies:
        mine = [v for cid, (_, v) in judged.items() if policy_of[cid] == policy]
        failing = sum(1 for v in mine if v.outcome == judge.FAILS)
        if not failing:
            found[policy] = ShrinkOutcome(
                policy,
                "holds",
                f"The property held in all {len(mine)} corpus cases of this policy"
                if mine
                else "No corpus case has this policy",
            )
        elif policy == "none":
            found[policy] = ShrinkOutcome(
                policy,
                "not-deterministic",
                f"{failing} of {len(mine)} corpus cases failed, but with seed None Optuna 3.x "
                "draws from OS entropy (the grid order from 3.4, the pick among free grid ids "
                "before), so the same space can pass or fail",
            )
        else:
            print(f"  shrinking {policy} ({failing} failing corpus cases)...", file=sys.stderr)
            found[policy] = search(
                policy,
                storage=corpus.storage,
                examples=examples,
                seed=seed,
                max_grid=corpus.max_grid,
                timeout=timeout,
            )
    shrunk = [s for _, s in _by_policy(side.shrunk, found)]
    updated = replace(side, shrunk=shrunk)
    records.save(side_path, updated)
    return updated


def _by_policy(
    earlier: Sequence[ShrinkOutcome], fresh: dict[str, ShrinkOutcome]
) -> list[tuple[str, ShrinkOutcome]]:
    """One outcome per seed policy, in SEED_POLICIES order: the fresh one, else the earlier."""
    old = {s.seed_policy: s for s in earlier}
    return [(p, fresh.get(p) or old[p]) for p in SEED_POLICIES if p in fresh or p in old]
