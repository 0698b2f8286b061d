"""Command line: ``python -m repro.corpus generate|replay|shrink|report``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from repro.cmdline import Parser, dispatch, positive_int, positive_seconds
from repro.corpus.cases import REMEDIES, CorpusError
from repro.scenarios import SEED_POLICIES

PROG = "python -m repro.corpus"
DEFAULT_CORPUS = Path("results/corpus.json")
DEFAULT_CASES = 150
DEFAULT_SEED = 5489
DEFAULT_EXAMPLES = 40


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Random GridSampler search spaces (a corpus drawn "
        "once with Hypothesis) replayed on the installed Optuna.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def corpus_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--corpus",
            type=Path,
            default=DEFAULT_CORPUS,
            help=f"corpus file (default: {DEFAULT_CORPUS})",
        )

    def results_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--results",
            type=Path,
            default=Path("results"),
            help="directory of optuna-<version>.json and corpus-<version>.json (default: results)",
        )

    gen = sub.add_parser(
        "generate",
        help="draw a new corpus with Hypothesis and overwrite the corpus file",
        description="Draw CASES cases with Hypothesis from SEED and write them to the corpus "
        "file. Needs Hypothesis, not Optuna. Replayed results of an older corpus are dropped "
        "by the next replay.",
    )
    corpus_option(gen)
    gen.add_argument(
        "--cases", type=positive_int, default=DEFAULT_CASES, help=f"(default: {DEFAULT_CASES})"
    )
    gen.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"(default: {DEFAULT_SEED})")
    gen.add_argument(
        "--max-grid",
        type=positive_int,
        default=None,
        help="most grid points per case (default: repro.corpus.strategies.MAX_GRID)",
    )

    rep = sub.add_parser(
        "replay",
        help="run the corpus on the installed Optuna; merge into results/optuna-<version>.json",
        description="Run every corpus case once on the installed Optuna, under GridSampler and "
        "under each remedy that applies to it. The runs replace earlier runs of the "
        "same cases and remedies; the default matrix runs and other cases' runs are kept. Exit "
        "status 1 if a run recorded an error that is not a known Optuna fault, or a remedy run "
        "contradicts its remedy row.",
    )
    corpus_option(rep)
    results_option(rep)
    rep.add_argument(
        "--cases", type=positive_int, help="replay only the first CASES cases (default: all)"
    )
    rep.add_argument(
        "-j", "--jobs", type=positive_int, default=2, help="runs in parallel lanes (default: 2)"
    )
    rep.add_argument(
        "--timeout", type=positive_seconds, default=120.0, help="seconds per run (default: 120)"
    )
    rep.add_argument(
        "--remedy",
        action="append",
        choices=REMEDIES,
        default=[],
        help="replay under this sampler only, repeatable: grid (GridSampler), bruteforce "
        "(BruteForceSampler), enqueued (the grid enqueued, popped by RandomSampler) "
        "(default: all three)",
    )
    rep.add_argument("-q", "--quiet", action="store_true", help="no per-run progress lines")

    shr = sub.add_parser(
        "shrink",
        help="find minimal failing search spaces for the seed policies that failed",
        description="For each seed policy whose corpus cases failed on the installed Optuna, "
        "let Hypothesis find and shrink a failing search space in sequential mode, re-run it "
        "and run its snippet; record all in results/corpus-<version>.json. Run replay first.",
    )
    corpus_option(shr)
    results_option(shr)
    shr.add_argument(
        "--policy",
        action="append",
        choices=SEED_POLICIES,
        default=[],
        help="seed policy, repeatable (default: all; `none` is never shrunk)",
    )
    shr.add_argument(
        "--examples",
        type=positive_int,
        default=DEFAULT_EXAMPLES,
        help=f"runs Hypothesis may try before shrinking (default: {DEFAULT_EXAMPLES})",
    )
    shr.add_argument("--seed", type=int, help="Hypothesis seed (default: the corpus seed)")
    shr.add_argument(
        "--timeout", type=positive_seconds, default=120.0, help="seconds per run (default: 120)"
    )

    rend = sub.add_parser(
        "report", help="print the corpus section of the report (Markdown) from the JSON alone"
    )
    corpus_option(rend)
    results_option(rend)
    return parser


def cmd_generate(args: argparse.Namespace) -> int:
    import hypothesis

    from repro.corpus import cases, strategies

    max_grid = args.max_grid or strategies.MAX_GRID
    drawn = strategies.draw_corpus(args.cases, args.seed, max_grid)
    corpus = cases.Corpus(
        cases=drawn,
        seed=args.seed,
        hypothesis=hypothesis.__version__,
        max_grid=max_grid,
        command=f"{PROG} " + " ".join(sys.argv[1:]),
    )
    cases.save(args.corpus, corpus)
    sizes = sorted(c.grid_size for c in drawn)
    print(
        f"wrote {args.corpus}: {len(drawn)} cases, grid sizes {sizes[0]} to {sizes[-1]} "
        f"(Hypothesis {hypothesis.__version__}, seed {args.seed})",
        file=sys.stderr,
    )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from repro.corpus import cases

    corpus = cases.load(args.corpus)
    chosen = corpus.select(args.cases)
    from repro import _compat
    from repro.corpus import judge, replay
    from repro.expectations import known_fault

    print(
        f"Optuna {_compat.OPTUNA_VERSION} (python {sys.version.split()[0]}): {len(chosen)} of "
        f"{len(corpus.cases)} corpus cases, {args.jobs} lanes",
        file=sys.stderr,
    )
    done = replay.replay(
        corpus,
        chosen,
        args.results,
        remedies=args.remedy or REMEDIES,
        jobs=args.jobs,
        timeout=args.timeout,
        progress=not args.quiet,
        command=f"{PROG} " + " ".join(sys.argv[1:]),
    )
    summary = done.corpus_results.summary
    overall = summary["overall"]
    print(
        f"wrote results for {len(done.fresh)} runs of {len(chosen)} cases "
        f"({done.corpus_results.replay['wall_seconds']} s): GridSampler property failed in "
        f"{overall['fails']} of {overall['measured']} measured cases, "
        f"{overall['known_faults']} known Optuna faults, {overall['errors']} other errors"
        + (f"; dropped {done.dropped} runs of an older corpus" if done.dropped else ""),
        file=sys.stderr,
    )
    for row in summary["by_remedy"]:
        if row["remedy"] != "grid" and row["mode"] == judge.PROCESSES:
            print(
                f"  {row['remedy']}: {row['runs']} runs, {row['exact']} exact, "
                f"{row['lost_points']} lost points, {row['crashed_runs']} with crashed workers, "
                f"{row['contradicts']} contradict the row; "
                f"{len(done.skipped.get(row['remedy'], []))} chosen cases not applicable",
                file=sys.stderr,
            )
    failed = [r for r in done.fresh if r.error and not known_fault(r, _compat.OPTUNA_VERSION)]
    for r in failed:
        assert r.error is not None
        print(f"  ERROR: {r.scenario}: {r.error.strip().splitlines()[-1]}", file=sys.stderr)
    replayed = {(r.case_id, r.remedy) for r in done.fresh}
    contradicted = [
        text
        for remedy, judged in summary["remedies"].items()
        for cid, verdict in judged["verdicts"].items()
        if (cid, remedy) in replayed
        for text in verdict["contradicts"]
    ]
    for text in contradicted:
        print(f"  CONTRADICTS ITS ROW: {text}", file=sys.stderr)
    return 1 if failed or contradicted else 0


def cmd_shrink(args: argparse.Namespace) -> int:
    from repro.corpus import cases

    corpus = cases.load(args.corpus)
    from repro.corpus import shrink

    seed = corpus.seed if args.seed is None else args.seed
    updated = shrink.shrink(
        corpus,
        args.results,
        policies=args.policy or list(SEED_POLICIES),
        examples=args.examples,
        seed=seed,
        timeout=args.timeout,
    )
    for outcome in updated.shrunk:
        line = f"  {updated.optuna_version} {outcome.seed_policy}: {outcome.status}"
        if outcome.status == "shrunk" and outcome.confirmation and outcome.snippet_check:
            line += (
                f", {outcome.workers} workers, {outcome.grid_size} points; confirmation run "
                f"{outcome.confirmation['outcome']}, snippet exit {outcome.snippet_check['exit']}"
            )
        print(line, file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from repro import results
    from repro.corpus import report

    files = results.load_all(args.results)
    if not files:
        raise CorpusError(
            f"no optuna-*.json in {args.results}; run `python -m repro.corpus replay` first"
        )
    print("\n".join(report.render_section(files, args.corpus)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "generate": cmd_generate,
        "replay": cmd_replay,
        "shrink": cmd_shrink,
        "report": cmd_report,
    }
    try:
        return dispatch(PROG, handlers, args)
    except ModuleNotFoundError as exc:
        print(
            f"{PROG}: error: {exc.name} is not installed; `pip install hypothesis optuna` or use "
            "`nox -s corpus` / `nox -s corpus_generate`",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
