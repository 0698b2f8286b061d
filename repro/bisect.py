"""``python -m repro.bisect``: measure every Optuna release in a range and say where the
behaviour changed.

For each release: reuse or make its environment (``envs.py``), run the detector scenarios there
with ``python -m repro run``, keep the records. Then name the transitions (``timeline.py``),
explain them from the upstream diffs (``upstream_changes.py``), and write
``results/timeline.json``, ``timeline.md`` and ``timeline.png``. This process never imports
Optuna; only the per-release environments have it.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from repro import envs, releases, timeline, timeline_report
from repro.cmdline import Parser, positive_int
from repro.errors import ReproError
from repro.jsonfile import write_atomic
from repro.scenarios import SEED_POLICIES, Scenario, matrix, select

# The upstream pattern under each seed policy, plus overlapping workers without a seed. SQLite,
# although journal runs are quicker: on 3.2/3.3 the concurrent race shows in most SQLite runs
# but in few journal runs, so a few journal runs would call those releases exact by chance.
DEFAULT_SCENARIOS: tuple[Scenario, ...] = (
    *(Scenario("sequential", policy, "sqlite") for policy in SEED_POLICIES),
    Scenario("concurrent", "none", "sqlite"),
)
DEFAULT_FROM = "3.2.0"
DEFAULT_REPETITIONS = 3


class UsageError(ReproError, ValueError):
    """Bad input or a missing prerequisite; the message says what to do."""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m repro.bisect",
        description="Measure every final Optuna release in a range (one cached environment per "
        "release) and write results/timeline.json, timeline.md and timeline.png. Exit status: "
        "0 when at least one release was measured (releases that fail to install or import are "
        "recorded, not fatal), 1 when none was, 2 for bad input.",
    )
    parser.add_argument(
        "--from",
        dest="start",
        metavar="VERSION",
        help=f"first release (default: {DEFAULT_FROM}; with --versions: no lower bound)",
    )
    parser.add_argument(
        "--to", dest="stop", metavar="VERSION", help="last release, or latest (the default)"
    )
    parser.add_argument(
        "--versions",
        nargs="+",
        metavar="V",
        help="measure these releases instead of asking the package index (for reruns offline)",
    )
    parser.add_argument(
        "-s",
        "--scenario",
        nargs="+",
        action="extend",
        metavar="ID",
        help="scenario ids or shell patterns (default: "
        + ", ".join(s.id for s in DEFAULT_SCENARIOS)
        + "); see `python -m repro list`",
    )
    parser.add_argument(
        "-r",
        "--repetitions",
        type=positive_int,
        default=DEFAULT_REPETITIONS,
        help=f"runs per scenario and release (default: {DEFAULT_REPETITIONS})",
    )
    parser.add_argument(
        "-j", "--jobs", type=positive_int, default=2, help="parallel lanes per release (default: 2)"
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds one run may take (default: 120)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("results"), help="output directory (default: results)"
    )
    parser.add_argument(
        "--envs",
        type=Path,
        default=envs.DEFAULT_ROOT,
        help="where the per-release environments are cached (default: .nox/bisect-envs)",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter the environments are made from (default: this one)",
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="only re-render timeline.md and timeline.png from OUT/timeline.json",
    )
    return parser


def choose_versions(args: argparse.Namespace) -> tuple[list[str], str]:
    """The releases to measure and how they were chosen; raises ReleaseError."""
    for option, value in (("--from", args.start), ("--to", args.stop)):
        if value is not None and value != "latest":
            releases.check_version(value, option)
    if args.versions:
        chosen = releases.explicit(args.versions)
        return releases.in_range(chosen, args.start, args.stop), "--versions"
    available = releases.list_from_index()
    chosen = releases.in_range(available, args.start or DEFAULT_FROM, args.stop or "latest")
    return chosen, "`pip index versions optuna`, final releases only"


def scenario_ids(patterns: Sequence[str] | None) -> list[str]:
    if not patterns:
        return [s.id for s in DEFAULT_SCENARIOS]
    return [s.id for s in select(matrix(), patterns)]


def measure(
    version: str, ids: Sequence[str], args: argparse.Namespace, uv: str | None
) -> timeline.Release:
    env = envs.ensure(args.envs, version, args.python, uv)
    install = round(env.seconds, 1)
    if env.error is not None:
        return timeline.Release(
            version, timeline.INSTALL_FAILED, env.error, install_seconds=install
        )
    made = "created" if env.created else "reused"
    done = envs.run_harness(env.path, version, ids, args.repetitions, args.jobs, args.timeout)
    seconds = round(done.seconds, 1)
    if done.results is None:
        status = timeline.IMPORT_FAILED if done.import_error else timeline.RUN_FAILED
        return timeline.Release(
            version,
            status,
            done.import_error or done.error,
            environment=made,
            install_seconds=install,
            run_seconds=seconds,
        )
    return timeline.Release(
        version,
        timeline.OK,
        None,
        runs=done.results.runs,
        environment=made,
        install_seconds=install,
        run_seconds=seconds,
        python=done.results.python,
        packages=done.results.packages,
    )


def _progress(n: int, total: int, release: timeline.Release) -> None:
    left = f"{total - n} left"
    if not release.measured:
        last = (release.error or "").strip().splitlines()[-1:] or [""]
        print(
            f"[{n}/{total}] {release.version}: {release.status}: {last[0]} ({left})",
            file=sys.stderr,
        )
        return
    found = ", ".join(
        f"{o.scenario.rsplit('-', 2)[0]} {o.behaviour}"
        for o in timeline.outcomes(release.version, release.runs)
    )
    print(
        f"[{n}/{total}] {release.version}: environment {release.environment} "
        f"({release.install_seconds:g} s), measured in {release.run_seconds:g} s: {found} ({left})",
        file=sys.stderr,
    )


def render_views(out: Path, data: timeline.Timeline) -> list[Path]:
    """timeline.md and timeline.png from the timeline alone."""
    from repro import timeline_plot

    markdown, chart = out / "timeline.md", out / "timeline.png"
    write_atomic(markdown, "\n".join(timeline_report.render(data)).rstrip() + "\n")
    # savefig writes in place; draw beside the target and rename, as write_atomic does.
    partial = out / ".timeline.partial.png"
    timeline_plot.render(data, partial)
    partial.replace(chart)
    return [markdown, chart]


def run(args: argparse.Namespace, versions: list[str], listed_by: str, ids: list[str]) -> int:
    uv = envs.find_uv()
    print(
        f"bisect: {len(versions)} releases {versions[0]} .. {versions[-1]} ({listed_by}); "
        f"{len(ids)} scenarios x {args.repetitions} runs each; environments in {args.envs} "
        f"via {'uv' if uv else 'venv + pip'}",
        file=sys.stderr,
    )
    began = time.monotonic()
    measured: list[timeline.Release] = []
    for n, version in enumerate(versions, 1):
        print(f"[{n}/{len(versions)}] {version}: preparing ...", file=sys.stderr)
        measured.append(measure(version, ids, args, uv))
        _progress(n, len(versions), measured[-1])
    data = timeline.Timeline(
        range=[versions[0], versions[-1]],
        versions=measured,
        transitions=timeline.transitions(measured),
        scenarios=ids,
        repetitions=args.repetitions,
        jobs=args.jobs,
        listed_by=listed_by,
        command="python -m repro.bisect " + " ".join(sys.argv[1:]),
        python=platform.python_version(),
        platform=platform.platform(),
        environments_created=sum(1 for r in measured if r.environment == "created"),
        wall_seconds=round(time.monotonic() - began, 1),
    )
    timeline.save(args.out / timeline.FILENAME, data)
    paths = [args.out / timeline.FILENAME, *render_views(args.out, data)]
    print(
        f"wrote {', '.join(str(p) for p in paths)} in {data.wall_seconds:g} s "
        f"({data.environments_created} environments created)",
        file=sys.stderr,
    )
    for t in data.transitions:
        note = "" if t.explained else " [UNEXPLAINED]"
        print(
            f"  {t.scenario}: {t.from_behaviour} on {t.from_version} -> {t.to_behaviour} on "
            f"{t.to_version}{note}",
            file=sys.stderr,
        )
    return 0 if any(r.measured for r in measured) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.render:
            path = args.out / timeline.FILENAME
            if not path.exists():
                raise UsageError(f"no {path}; run `nox -s bisect` first")
            _require_matplotlib()
            paths = render_views(args.out, timeline.load(path))
            print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
            return 0
        ids = scenario_ids(args.scenario)
        versions, listed_by = choose_versions(args)
        _require_matplotlib()
    except ReproError as exc:
        print(f"python -m repro.bisect: error: {exc}", file=sys.stderr)
        return 2
    return run(args, versions, listed_by, ids)


def _require_matplotlib() -> None:
    # Checked before hours of measuring, not when the chart is drawn at the end.
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError(
            "matplotlib is needed for timeline.png: run `nox -s bisect`, or pip install matplotlib"
        )


if __name__ == "__main__":
    sys.exit(main())
