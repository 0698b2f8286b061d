"""Command line: ``python -m repro run|list|report|worker|collect``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from repro import results
from repro.cmdline import Parser, dispatch, positive_int
from repro.environment import environment
from repro.jsonfile import write_atomic
from repro.scenarios import (
    ALL_STORAGES,
    DEFAULT_WORKERS,
    SERVER_STORAGES,
    Scenario,
    ScenarioError,
    matrix,
    remedy_matrix,
    select,
    validate_space,
)
from repro.storages import StorageError, StorageSpec

REMEDY_SETS = ("default", "all", "none")


def _space(text: str) -> dict[str, list[object]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"search space is not JSON ({exc.msg})") from None
    try:
        validate_space(data)
    except ScenarioError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return dict(data)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m repro", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = sub.add_parser(
        "run",
        help="run scenarios with the installed Optuna and write results/optuna-<version>.json",
        description="Run scenarios against the Optuna installed in this environment. Results "
        "of the scenarios run replace earlier results of the same scenarios in the JSON file; "
        "other scenarios' results are kept. Exit status 1 if any run recorded an error.",
    )
    run.add_argument(
        "-s",
        "--scenario",
        action="append",
        default=[],
        metavar="PATTERN",
        help="scenario id or shell pattern, repeatable (default: all); see `python -m repro list`",
    )
    run.add_argument(
        "-r", "--repetitions", type=positive_int, default=2, help="runs per scenario (default: 2)"
    )
    run.add_argument(
        "--storage",
        action="append",
        choices=ALL_STORAGES,
        default=[],
        help="storage kind, repeatable (default: all; the server kinds use this machine's "
        "services or $REPRO_POSTGRESQL_URL, $REPRO_MYSQL_URL, $REPRO_REDIS_URL)",
    )
    run.add_argument(
        "--no-services",
        action="store_true",
        help="skip postgresql, mysql and redis (says what it skipped); without it an "
        "unreachable server is an error",
    )
    run.add_argument(
        "--space",
        type=_space,
        metavar="JSON",
        help="custom search space, e.g. '{\"x\": [0, 1, 2]}' (default: 5 x 4 grid)",
    )
    run.add_argument(
        "--workers",
        type=positive_int,
        default=DEFAULT_WORKERS,
        help=f"workers per run (default: {DEFAULT_WORKERS})",
    )
    run.add_argument(
        "--trials-per-worker",
        type=positive_int,
        help="trials each worker runs (default: grid size / workers, rounded up)",
    )
    run.add_argument(
        "-j",
        "--jobs",
        type=positive_int,
        default=2,
        help="runs in parallel lanes; each run keeps its own storage (default: 2)",
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds one run may take before its workers are killed (default: 120)",
    )
    run.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        help="directory for the JSON results (default: results)",
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no per-run progress lines")
    run.add_argument(
        "--remedies",
        choices=REMEDY_SETS,
        default="default",
        help="remedy scenarios beside the GridSampler matrix (issue 12): 'default' runs "
        "BruteForceSampler and the enqueued grid on sqlite and postgresql plus more trials on "
        "the #5489 pattern; 'all' every remedy, seed policy and storage (default: default)",
    )

    lst = sub.add_parser("list", help="print the scenario ids")
    lst.add_argument("--storage", action="append", choices=ALL_STORAGES, default=[])
    lst.add_argument("--remedies", choices=REMEDY_SETS, default="default")

    wrk = sub.add_parser(
        "worker",
        help="run one worker of a scenario in this process, against a shared storage URL",
        description="Run one worker by hand, e.g. on one of several hosts that share a "
        "database. Start workers 0..N-1 of the same --study and --scenario (one after another "
        "for a sequential scenario), then run `collect`.",
    )
    wrk.add_argument(
        "--storage",
        required=True,
        metavar="URL",
        help="sqlite:///PATH, postgresql://..., mysql+pymysql://..., redis://... or journal:PATH",
    )
    wrk.add_argument("--study", required=True, help="study name shared by all workers")
    wrk.add_argument(
        "--scenario",
        required=True,
        metavar="ID",
        help="a scenario id from `list` (its mode, seed policy, workers and grid)",
    )
    wrk.add_argument(
        "--worker-index",
        required=True,
        type=int,
        metavar="I",
        help="0 .. workers-1; picks the per-worker seed",
    )
    wrk.add_argument(
        "--barrier-timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="concurrent scenarios: seconds to wait at each round for the other workers, "
        "which meet through the storage (default: 120)",
    )

    col = sub.add_parser(
        "collect",
        help="metrics and a run record from a finished study",
        description="Read a study that `worker` processes ran and print its run record as "
        "JSON (and a one-line verdict on stderr).",
    )
    col.add_argument("--storage", required=True, metavar="URL")
    col.add_argument("--study", required=True)
    col.add_argument("--delete", action="store_true", help="delete the study afterwards")

    rep = sub.add_parser("report", help="render results/report.md from the JSON files alone")
    rep.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        help="directory holding optuna-*.json (default: results)",
    )
    rep.add_argument("--out", type=Path, help="report file (default: RESULTS/report.md)")
    return parser


def _scenarios(args: argparse.Namespace) -> list[Scenario]:
    storages = args.storage or ALL_STORAGES
    remedies = getattr(args, "remedies", "none")
    base = matrix(storages)
    if remedies != "none":
        base += remedy_matrix(storages, full=remedies == "all")
    if getattr(args, "no_services", False):
        skipped = sorted({s.storage for s in base if s.storage in SERVER_STORAGES})
        if skipped:
            print(f"skipped storages (--no-services): {', '.join(skipped)}", file=sys.stderr)
        base = [s for s in base if s.storage not in SERVER_STORAGES]
    space = getattr(args, "space", None)
    workers = getattr(args, "workers", DEFAULT_WORKERS)
    trials = getattr(args, "trials_per_worker", None)
    if space is not None or workers != DEFAULT_WORKERS or trials is not None:
        frozen = validate_space(space) if space is not None else base[0].search_space
        base = [
            Scenario(
                mode=s.mode,
                seed_policy=s.seed_policy,
                storage=s.storage,
                workers=workers,
                search_space=frozen,
                trials_per_worker=trials,
                label="custom" if space is not None else "",
                remedy=s.remedy,
            )
            for s in base
        ]
    return select(base, getattr(args, "scenario", []))


def cmd_run(args: argparse.Namespace) -> int:
    scenarios = _scenarios(args)
    # Imported here so that `list` and `report` work without Optuna installed.
    from repro import _compat, execution

    path = results.results_path(args.out, _compat.OPTUNA_VERSION)
    earlier = results.load(path).runs if path.exists() else []
    env = environment()
    _compat.warm_up()
    scenarios = _reachable(scenarios, explicit=set(args.storage))
    versions = ", ".join(f"{k} {v}" for k, v in sorted(dict(env["packages"]).items()))  # type: ignore[call-overload]
    print(
        f"Optuna {_compat.OPTUNA_VERSION} (python {env['python']}, {versions}): "
        f"{len(scenarios)} scenarios x {args.repetitions} repetitions, {args.jobs} lanes",
        file=sys.stderr,
    )
    began = time.monotonic()
    runs = execution.run_all(
        scenarios, args.repetitions, jobs=args.jobs, timeout=args.timeout, progress=not args.quiet
    )
    fresh = {r.scenario for r in runs}
    record = results.ResultsFile(
        optuna_version=_compat.OPTUNA_VERSION,
        python=str(env["python"]),
        platform=str(env["platform"]),
        packages=dict(env["packages"]),  # type: ignore[call-overload]
        runs=[r for r in earlier if r.scenario not in fresh] + runs,
        command="python -m repro " + " ".join(sys.argv[1:]),
        repetitions=args.repetitions,
        jobs=args.jobs,
        wall_seconds=round(time.monotonic() - began, 1),
    )
    results.save(path, record)
    from repro.expectations import known_fault

    failed = [r for r in runs if r.error and not known_fault(r, _compat.OPTUNA_VERSION)]
    print(
        f"wrote {path} ({len(runs)} runs, {len(failed)} with errors, {record.wall_seconds:.1f}s)",
        file=sys.stderr,
    )
    for r in runs:
        if r.error:
            fault = known_fault(r, _compat.OPTUNA_VERSION)
            kind = f"known Optuna fault, {fault.name.split(':')[0]}" if fault else "ERROR"
            last = r.error.strip().splitlines()[-1]
            print(f"  {kind}: {r.scenario} r{r.repetition}: {last}", file=sys.stderr)
    return 1 if failed else 0


def services_required() -> bool:
    """In CI (or with REPRO_REQUIRE_SERVICES=1) a server that does not answer is an error;
    elsewhere the default run measures what this machine has and says what it skipped."""
    return bool(os.environ.get("CI")) or os.environ.get("REPRO_REQUIRE_SERVICES") == "1"


def _reachable(scenarios: list[Scenario], explicit: set[str]) -> list[Scenario]:
    """Check every server the scenarios need, before any run, within 10 s each. A server
    asked for by --storage, or any server in CI, must answer; otherwise an unreachable one
    is skipped with a line saying so."""
    from repro import services

    keep = list(scenarios)
    for kind in sorted({s.storage for s in scenarios} & set(SERVER_STORAGES)):
        try:
            services.check_reachable(StorageSpec(kind, services.server_url(kind)))
        except StorageError as exc:
            if kind in explicit or services_required():
                raise
            print(
                f"skipped {kind} scenarios: {exc} (start it, or set "
                f"{services.ENV_VARS[kind]}; CI fails here instead)",
                file=sys.stderr,
            )
            keep = [s for s in keep if s.storage != kind]
    return keep


def _shared_storage(url: str, study: str) -> StorageSpec:
    """A user-given storage URL; on Redis the study's keys live under their own prefix."""
    from repro import services
    from repro.storages import from_url

    spec = from_url(url)
    if spec.kind == "redis":
        prefix = f"{services.REDIS_PREFIX}{services.run_tag()}"
        spec = StorageSpec("redis", spec.location, namespace=f"{prefix}{study}")
    if spec.kind in SERVER_STORAGES:
        services.check_reachable(spec)
    return spec


def cmd_worker(args: argparse.Namespace) -> int:
    from repro import _compat, workers

    scenario = next((s for s in matrix() if s.id == args.scenario), None)
    if scenario is None:
        raise ScenarioError(f"unknown scenario {args.scenario!r}; see `python -m repro list`")
    if not 0 <= args.worker_index < scenario.workers:
        raise ScenarioError(f"--worker-index must be 0..{scenario.workers - 1}")
    spec = _shared_storage(args.storage, args.study)
    _compat.warm_up()
    workers.create_study(spec, args.study, scenario)
    plan = workers.WorkerPlan(
        scenario,
        spec,
        args.study,
        args.worker_index,
        n_trials=scenario.trials_each * (scenario.workers if scenario.mode == "threads" else 1),
        n_jobs=scenario.workers if scenario.mode == "threads" else 1,
        barrier_timeout=args.barrier_timeout,
        storage_barrier=scenario.mode == "concurrent",
    )
    result = workers.run_worker(plan, None, time.perf_counter())
    print(
        f"worker {args.worker_index} of {args.scenario} on {spec.redacted}: done in "
        f"{result['elapsed_s']:.2f}s, grid order {result['order_fingerprint']}",
        file=sys.stderr,
    )
    print(json.dumps(result))
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from repro import _compat, metrics, workers

    spec = _shared_storage(args.storage, args.study)
    _compat.quiet_optuna()
    scenario_id, space = workers.study_scenario(spec, args.study)
    trials = [metrics.TrialRecord.from_json(t) for t in workers.read_trials(spec, args.study)]
    frozen = validate_space({name: values for name, values in space})
    measured = metrics.compute(trials, frozen)
    workers_seen = sorted({t.worker for t in trials if t.worker is not None})
    verdict = (
        "every grid point evaluated exactly once"
        if measured.missing == measured.duplicates == 0
        else f"{measured.missing} grid points never evaluated, {measured.duplicates} evaluated "
        "more than once"
    )
    print(
        f"{args.study} ({scenario_id}, workers {workers_seen}): {measured.complete} complete "
        f"trials; {verdict}",
        file=sys.stderr,
    )
    print(
        json.dumps(
            {
                "study": args.study,
                "scenario": scenario_id,
                "storage": spec.kind,
                **{k: v for k, v in vars(measured).items()},
                "trial_log": [t.to_json() for t in trials],
            },
            indent=1,
        )
    )
    if args.delete:
        workers.delete_study(spec, args.study)
        if spec.kind == "redis":
            from repro import services

            services.delete_keys(spec.location, spec.namespace)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for scenario in _scenarios(args):
        print(scenario.id)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from repro import report

    files = results.load_all(args.results)
    if not files:
        raise SystemExit(
            f"repro: error: no optuna-*.json in {args.results}; run "
            "`nox -s repro` or `python -m repro run` first"
        )
    out = args.out or args.results / "report.md"
    write_atomic(out, report.render_dir(args.results))
    print(f"wrote {out} from {len(files)} results files", file=sys.stderr)
    try:
        from repro.chart import CHART_NAME, write_chart

        write_chart(files, out.parent / CHART_NAME)
        print(f"wrote {out.parent / CHART_NAME}", file=sys.stderr)
    except ImportError:
        print(
            "chart not updated: matplotlib is not installed (`nox -s report` has it)",
            file=sys.stderr,
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "run": cmd_run,
        "list": cmd_list,
        "report": cmd_report,
        "worker": cmd_worker,
        "collect": cmd_collect,
    }
    return dispatch("repro", handlers, args)


if __name__ == "__main__":
    sys.exit(main())
