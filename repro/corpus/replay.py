"""Replay corpus cases on the installed Optuna and merge the runs into its results file.

Each case becomes a scenario (its id ends in the case id) and runs once through the same harness
as the default matrix: forked worker processes, a fresh journal file storage, the study capped
at the grid size. Under a remedy it is the harness's own remedy scenario (the id
then ends in the remedy): BruteForceSampler in every worker, or the whole grid enqueued once
before the workers start and popped by a plain sampler. A case no remedy row covers is not run
under that remedy; the tallies list it with the reason. Before any run, a probe records what
this Optuna does with the case's values.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna

from repro import _compat, execution, results, targets
from repro.corpus import judge, records
from repro.corpus.cases import REMEDIES, Case, Corpus
from repro.corpus.records import CorpusResults, Probe
from repro.jsonfile import encode_value
from repro.metrics import value_key
from repro.results import ResultsFile, RunRecord
from repro.scenarios import Scenario


def probe(case: Case) -> Probe:
    """Build the case's GridSampler and its CategoricalDistributions as a worker would, and
    record warnings, the error if any, and each value that is recorded as another one."""
    recorded_as: dict[str, list[list[Any]]] = {}
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            _compat.grid_sampler(dict(case.space), seed=0)
            for name, values in case.space:
                distribution = optuna.distributions.CategoricalDistribution(values)
                pairs = []
                for value in values:
                    got = distribution.to_external_repr(distribution.to_internal_repr(value))
                    if value_key(got) != value_key(value):
                        pairs.append([encode_value(value), encode_value(got)])
                if pairs:
                    recorded_as[name] = pairs
        except Exception as exc:  # Optuna's own rejection is the measurement.
            error = f"{type(exc).__name__}: {exc}"
    return Probe(
        case_id=case.id,
        digest=case.digest,
        recorded_as=recorded_as,
        warnings=[f"{w.category.__name__}: {w.message}" for w in caught],
        error=error,
    )


@dataclass(frozen=True)
class Replay:
    results: ResultsFile
    corpus_results: CorpusResults
    fresh: list[RunRecord]
    dropped: int  # earlier corpus runs of cases no longer in the corpus (a regenerated one)
    skipped: dict[str, list[str]]  # per remedy, the chosen cases it does not apply to


def merge_runs(
    earlier: Sequence[RunRecord], fresh: Sequence[RunRecord], corpus: Corpus
) -> tuple[list[RunRecord], int]:
    """Runs without a case id (the default matrix, custom spaces) are kept as they are; the
    fresh runs replace earlier runs of their cases under the same remedy; earlier runs of other
    cases or remedies are kept while they still match a case of this corpus. Corpus runs follow
    in case order, then remedy order."""
    by_id = corpus.by_id()
    replayed = {(r.case_id, r.remedy) for r in fresh}
    others = [r for r in earlier if r.case_id is None]
    stale = [r for r in earlier if r.case_id is not None and (r.case_id, r.remedy) not in replayed]
    kept = [r for r in stale if r.case_id in by_id and by_id[r.case_id].matches(r)]
    order = {c.id: i for i, c in enumerate(corpus.cases)}
    ours = sorted(
        [*kept, *fresh],
        key=lambda r: (order[r.case_id or ""], REMEDIES.index(r.remedy), r.repetition),
    )
    return others + ours, len(stale) - len(kept)


def replay(
    corpus: Corpus,
    cases: Sequence[Case],
    results_dir: Path,
    *,
    remedies: Sequence[str] = REMEDIES,
    jobs: int,
    timeout: float,
    progress: bool,
    command: str,
) -> Replay:
    from repro.environment import environment

    version = _compat.OPTUNA_VERSION
    path = results.results_path(results_dir, version)
    earlier = results.load(path) if path.exists() else None
    side_path = records.path_for(results_dir, version)
    side = records.load(side_path)

    began = time.monotonic()
    probes = {case.id: probe(case) for case in cases}
    chosen = [r for r in REMEDIES if r in remedies]
    scenarios: list[Scenario] = []
    case_of: dict[str, str] = {}  # scenario id -> case id
    skipped: dict[str, list[str]] = {}
    for remedy in chosen:
        for case in cases:
            if judge.not_applicable(case, remedy, version, corpus.storage) is None:
                scenario = case.scenario(corpus.storage, remedy)
                scenarios.append(scenario)
                case_of[scenario.id] = case.id
            else:
                skipped.setdefault(remedy, []).append(case.id)
    _compat.warm_up()
    runs = execution.run_all(scenarios, 1, jobs=jobs, timeout=timeout, progress=progress)
    fresh = [replace(r, case_id=case_of[r.scenario]) for r in runs]
    wall = round(time.monotonic() - began, 1)

    merged, dropped = merge_runs(earlier.runs if earlier else [], fresh, corpus)
    if earlier is not None:
        # The header describes the default matrix run; the replay's own is in the side file.
        new_results = replace(earlier, runs=merged)
    else:
        env = environment()
        new_results = ResultsFile(
            optuna_version=version,
            python=str(env["python"]),
            platform=str(env["platform"]),
            packages=dict(env["packages"]),  # type: ignore[call-overload]
            runs=merged,
            command=command,
            repetitions=1,
            jobs=jobs,
            wall_seconds=wall,
            target=targets.active(),
        )
    by_id = corpus.by_id()
    earlier_probes = side.probes if side is not None else {}
    kept_probes = {
        cid: p
        for cid, p in earlier_probes.items()
        if cid in by_id and p.digest == by_id[cid].digest and cid not in probes
    }
    all_probes = {**kept_probes, **probes}
    corpus_results = CorpusResults(
        optuna_version=version,
        corpus_seed=corpus.seed,
        replay={
            "command": command,
            "cases_replayed": len(cases),
            "cases_in_corpus": len(corpus.cases),
            "remedies": chosen,
            "runs": len(fresh),
            "jobs": jobs,
            "wall_seconds": wall,
            "python": sys.version.split()[0],
        },
        probes=all_probes,
        shrunk=side.shrunk if side is not None else [],
        summary=judge.tally(
            corpus.cases, merged, all_probes, version, corpus.max_grid, corpus.storage
        ),
    )
    results.save(path, new_results)
    records.save(side_path, corpus_results)
    return Replay(new_results, corpus_results, fresh, dropped, skipped)
