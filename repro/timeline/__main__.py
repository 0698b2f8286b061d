"""``python -m repro.timeline``: measure every Optuna release in a range and say where the
outcome changed; ``--render`` redraws the views from the JSON alone.

For each release, ``measure.release`` reuses or makes its environment and runs the scenarios
there; ``records`` names the transitions (explained by ``changes``); this writes
``results/timeline.json`` and, through ``render`` and ``plot``, ``timeline.md`` and
``timeline.png``. Each ``--target SPEC`` (``repro/targets.py``) is resolved before anything is
measured (a bad one is one line and exit 2, with nothing written) and measured after the
releases by ``measure.target``, as a point of its own. This process never imports Optuna; only
the per-release and per-target environments have it.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from repro import targets
from repro.cmdline import Parser, dispatch, positive_int, positive_seconds
from repro.errors import ReproError
from repro.jsonfile import write_atomic
from repro.scenarios import SEED_POLICIES, Scenario, matrix, select
from repro.timeline import envs, measure, plot, records, releases, render

PROG = "python -m repro.timeline"
# The upstream pattern under each seed policy, plus overlapping workers without a seed. SQLite,
# although journal runs are quicker: on 3.2/3.3 the concurrent race shows in most SQLite runs
# but in few journal runs, so a few journal runs would call those releases exact by chance.
DEFAULT_SCENARIOS: tuple[Scenario, ...] = (
    *(Scenario("sequential", policy, "sqlite") for policy in SEED_POLICIES),
    Scenario("concurrent", "none", "sqlite"),
)
DEFAULT_FROM = "3.2.0"


class UsageError(ReproError, ValueError):
    """Bad input or a missing prerequisite; the message says what to do."""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Measure every final Optuna release in a range (one cached environment per "
        "release) and write results/timeline.json, timeline.md and timeline.png. Exit status: "
        "0 when at least one release or target was measured (those that fail to install or "
        "import are recorded, not fatal), 1 when none was, 2 for bad input (a target that "
        "cannot be resolved or built included).",
    )
    # One flat command line (`nox -s timeline -- --from 3.6.0`); --render picks the other
    # handler for dispatch.
    parser.set_defaults(command="measure")
    parser.add_argument(
        "--render",
        dest="command",
        action="store_const",
        const="render",
        help="only re-render timeline.md and timeline.png from OUT/timeline.json",
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
        "--target",
        dest="targets",
        action="append",
        default=[],
        metavar="SPEC",
        help="also measure this build beside the releases, as its own point after the release "
        "it comes from (repeatable): RELEASE+PATCH, a source tree, a wheel or sdist, "
        "'optuna @ git+URL@REF', ...; see `python -m repro.targets prepare --help`",
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
        default=measure.DEFAULT_REPETITIONS,
        help=f"runs per scenario and release (default: {measure.DEFAULT_REPETITIONS})",
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=positive_int,
        default=measure.DEFAULT_JOBS,
        help=f"parallel lanes per release (default: {measure.DEFAULT_JOBS})",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=measure.DEFAULT_TIMEOUT,
        help=f"seconds one run may take (default: {measure.DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("results"), help="output directory (default: results)"
    )
    parser.add_argument(
        "--envs",
        type=Path,
        default=envs.DEFAULT_ROOT,
        help="where the per-release and per-target environments are cached (default: "
        ".nox/timeline-envs)",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter the environments are made from (default: this one)",
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


def prepare_targets(specs: Sequence[str]) -> list[targets.Plan]:
    """Every target resolved, downloaded or built before the first release is measured, so a
    bad one stops the command (TargetError: one line, exit 2) while nothing is written."""
    parsed = [targets.parse(spec) for spec in specs]
    labels = [spec.label for spec in parsed]
    for label in labels:
        if labels.count(label) > 1:
            raise targets.TargetError(
                f"two targets are labelled {label!r}; name one with --target LABEL=SPEC"
            )
    return [targets.prepare(spec) for spec in parsed]


def _progress(n: int, total: int, release: records.Release) -> None:
    left = f"{total - n} left"
    if not release.measured:
        last = (release.error or "").strip().splitlines()[-1:] or [""]
        print(
            f"[{n}/{total}] {release.name}: {release.status}: {last[0]} ({left})",
            file=sys.stderr,
        )
        return
    found = ", ".join(
        f"{o.scenario.rsplit('-', 2)[0]} {o.measured}" for o in release.scenario_outcomes()
    )
    print(
        f"[{n}/{total}] {release.name}: environment {release.environment} "
        f"({release.install_seconds:g} s), measured in {release.run_seconds:g} s: {found} ({left})",
        file=sys.stderr,
    )


def write_views(out: Path, data: records.Timeline) -> list[Path]:
    """timeline.md and timeline.png from the timeline alone."""
    markdown, png = out / "timeline.md", out / "timeline.png"
    write_atomic(markdown, "\n".join(render.markdown(data)).rstrip() + "\n")
    # savefig writes in place; draw beside the target and rename, as write_atomic does.
    partial = out / ".timeline.partial.png"
    plot.draw(data, partial)
    partial.replace(png)
    return [markdown, png]


def cmd_render(args: argparse.Namespace) -> int:
    path = args.out / records.FILENAME
    if not path.exists():
        raise UsageError(f"no {path}; run `nox -s timeline` first")
    _require_matplotlib()
    paths = write_views(args.out, records.load(path))
    print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0


def cmd_measure(args: argparse.Namespace) -> int:
    ids = scenario_ids(args.scenario)
    versions, listed_by = choose_versions(args)
    plans = prepare_targets(args.targets)
    _require_matplotlib()
    settings = measure.Settings(
        envs=args.envs,
        python=args.python,
        uv=envs.find_uv(),
        repetitions=args.repetitions,
        jobs=args.jobs,
        timeout=args.timeout,
    )
    extra = f" and {len(plans)} targets" if plans else ""
    print(
        f"timeline: {len(versions)} releases {versions[0]} .. {versions[-1]} ({listed_by})"
        f"{extra}; {len(ids)} scenarios x {args.repetitions} runs each; environments in "
        f"{args.envs} via {'uv' if settings.uv else 'venv + pip'}",
        file=sys.stderr,
    )
    began = time.monotonic()
    total = len(versions) + len(plans)
    measured: list[records.Release] = []
    for n, version in enumerate(versions, 1):
        print(f"[{n}/{total}] {version}: preparing ...", file=sys.stderr)
        measured.append(measure.release(version, ids, settings))
        _progress(n, total, measured[-1])
    points: list[records.TargetPoint] = []
    for n, plan in enumerate(plans, len(versions) + 1):
        print(f"[{n}/{total}] target {plan.provenance.label}: preparing ...", file=sys.stderr)
        points.append(measure.target(plan, ids, settings))
        _progress(n, total, points[-1])
    data = records.Timeline(
        span=[versions[0], versions[-1]],
        versions=measured,
        transitions=records.transitions(measured),
        scenarios=ids,
        repetitions=args.repetitions,
        jobs=args.jobs,
        listed_by=listed_by,
        command=f"{PROG} " + " ".join(sys.argv[1:]),
        python=platform.python_version(),
        platform=platform.platform(),
        environments_created=sum(1 for r in [*measured, *points] if r.environment == "created"),
        wall_seconds=round(time.monotonic() - began, 1),
        targets=points,
    )
    records.save(args.out / records.FILENAME, data)
    paths = [args.out / records.FILENAME, *write_views(args.out, data)]
    print(
        f"wrote {', '.join(str(p) for p in paths)} in {data.wall_seconds:g} s "
        f"({data.environments_created} environments created)",
        file=sys.stderr,
    )
    for t in data.transitions:
        note = "" if t.explained else " [UNEXPLAINED]"
        print(
            f"  {t.scenario}: {t.from_outcome} on {t.from_version} -> {t.to_outcome} on "
            f"{t.to_version}{note}",
            file=sys.stderr,
        )
    return 0 if any(r.measured for r in [*measured, *points]) else 1


def _require_matplotlib() -> None:
    # Checked before hours of measuring, not when the plot is drawn at the end.
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError(
            "matplotlib is needed for timeline.png: run `nox -s timeline`, or pip install "
            "matplotlib"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return dispatch(PROG, {"measure": cmd_measure, "render": cmd_render}, args)


if __name__ == "__main__":
    sys.exit(main())
