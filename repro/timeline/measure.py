"""One release measured: its environment made or reused (``envs.py``), ``python -m repro run``
with the timeline's scenarios inside it, and the outcome as a ``records.Release``; a target
build (``repro/targets.py``) the same way, as a ``records.TargetPoint`` with its provenance.

A release or target that fails to install, to import Optuna or to run the harness is recorded
with the reason, never raised: it is a gap in the timeline, not the end of it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from repro import results, targets
from repro.jsonfile import write_json
from repro.timeline import envs, records

DEFAULT_REPETITIONS = 3
DEFAULT_JOBS = 2
DEFAULT_TIMEOUT = 120.0
IMPORT_CHECK = "import optuna; print(optuna.__version__)"


@dataclass(frozen=True)
class Settings:
    """How every release is measured; the command line fills it from its options."""

    envs: Path  # where the per-release environments are cached
    python: str  # the interpreter the environments are made from
    uv: str | None  # uv's path, or None to use venv and pip
    repetitions: int = DEFAULT_REPETITIONS
    jobs: int = DEFAULT_JOBS
    timeout: float = DEFAULT_TIMEOUT  # seconds one run may take


def release(version: str, scenarios: Sequence[str], settings: Settings) -> records.Release:
    """Measure ``scenarios`` on one release."""
    env = envs.ensure(settings.envs, version, settings.python, settings.uv)
    install = round(env.seconds, 1)
    if env.error is not None:
        return records.Release(version, records.INSTALL_FAILED, env.error, install_seconds=install)
    done = run_harness(env.path, version, scenarios, settings)
    return _recorded(records.Release(version, records.OK, None), env, done)


Point = TypeVar("Point", bound=records.Release)


def _recorded(point: Point, env: envs.Environment, done: HarnessResult) -> Point:
    """``point`` (a Release or TargetPoint) with what its environment and harness run gave."""
    point = replace(
        point,
        environment="created" if env.created else "reused",
        install_seconds=round(env.seconds, 1),
        run_seconds=round(done.seconds, 1),
    )
    if done.results is None:
        status = records.IMPORT_FAILED if done.import_error else records.RUN_FAILED
        return replace(point, status=status, error=done.import_error or done.error)
    measured = done.results
    return replace(point, runs=measured.runs, python=measured.python, packages=measured.packages)


def target(plan: targets.Plan, scenarios: Sequence[str], settings: Settings) -> records.TargetPoint:
    """Measure ``scenarios`` on a prepared target: install its plan (``envs.ensure_target``),
    record the provenance the installed build gives (``repro.targets stamp``, as ``nox -s
    target`` does), run the harness with ``$REPRO_TARGET`` naming it."""
    known = plan.provenance
    point = records.TargetPoint(
        known.optuna_version, records.OK, None, label=known.label, provenance=known
    )
    env = envs.ensure_target(settings.envs, plan, settings.python, settings.uv)
    if env.error is not None:
        return replace(
            point,
            status=records.INSTALL_FAILED,
            error=env.error,
            install_seconds=round(env.seconds, 1),
        )
    with tempfile.TemporaryDirectory(prefix="grid-repro-target-") as tmp:
        stamped = stamp(env.path, plan, Path(tmp))
        if isinstance(stamped, str):
            failed = HarnessResult(None, 0.0, stamped, None)
            return _recorded(point, env, failed)
        path, provenance = stamped
        point = replace(point, version=provenance.optuna_version, provenance=provenance)
        done = run_harness(
            env.path, point.version, scenarios, settings, {targets.ENV_VAR: str(path)}
        )
    return _recorded(point, env, done)


def stamp(env: Path, plan: targets.Plan, into: Path) -> tuple[Path, targets.Provenance] | str:
    """``python -m repro.targets stamp`` in the target's environment: the provenance file and
    its record, or why Optuna would not say its version there."""
    plan_file = into / "plan.json"
    write_json(plan_file, plan.to_json(), schema=targets.SCHEMA)
    command = ["-m", "repro.targets", "stamp", str(plan_file), "--results", str(into)]
    failure, printed = in_env(env, command)
    if failure is not None:
        return failure
    provenance = targets.read_provenance(targets.target_dir(into, plan.provenance.label))
    assert provenance is not None  # stamp exited 0 after writing it
    return Path(printed.strip().splitlines()[-1]), provenance


@dataclass(frozen=True)
class HarnessResult:
    """What one ``python -m repro run`` in a release's environment gave back."""

    results: results.ResultsFile | None
    seconds: float
    import_error: str | None  # Optuna does not import in the environment
    error: str | None  # any other reason no results came back


def in_env(env: Path, args: Sequence[str]) -> tuple[str | None, str]:
    """The environment's Python with ``args``, from the checkout: (why it failed, or None;
    what it printed)."""
    try:
        done = subprocess.run(
            [str(envs.python_in(env)), *args],
            cwd=envs.CHECKOUT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc), ""
    failed = done.returncode != 0
    return (envs.last_lines(done.stderr + done.stdout) if failed else None), done.stdout


def import_error(env: Path) -> str | None:
    """Why ``import optuna`` fails in ``env``, or None when it imports."""
    return in_env(env, ["-c", IMPORT_CHECK])[0]


def run_harness(
    env: Path,
    version: str,
    scenarios: Sequence[str],
    settings: Settings,
    environ: Mapping[str, str] | None = None,
) -> HarnessResult:
    """``python -m repro run`` in ``env`` for the given scenario ids, into a scratch directory,
    with ``environ`` added to this process's environment. Exit status 1 with a results file
    means some run recorded an error: the records carry it.
    """
    began = time.monotonic()
    repetitions, timeout = settings.repetitions, settings.timeout
    # Every scenario its repetitions, forced outcome or not: the timeline is where a release's
    # behaviour is found, not assumed from the expectation table.
    command = [str(envs.python_in(env)), "-m", "repro", "run", "-q", "-r", str(repetitions)]
    command += ["--forced-runs", str(repetitions), "--remedies", "none"]
    command += ["-j", str(settings.jobs), "--timeout", str(timeout)]
    for scenario in scenarios:
        command += ["-s", scenario]
    # Every run may take its whole timeout; lanes share them out.
    limit = timeout * (len(scenarios) * repetitions + 2) + 300
    with tempfile.TemporaryDirectory(prefix="grid-repro-timeline-") as out:
        try:
            done = subprocess.run(
                [*command, "--out", out],
                cwd=envs.CHECKOUT,
                env={**os.environ, **(environ or {})},
                capture_output=True,
                text=True,
                timeout=limit,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return HarnessResult(None, time.monotonic() - began, None, f"harness: {exc}")
        seconds = time.monotonic() - began
        written = sorted(Path(out).glob("optuna-*.json"))
        if done.returncode in (0, 1) and len(written) == 1:
            measured = results.load(written[0])
            if measured.optuna_version != version:
                return HarnessResult(
                    None,
                    seconds,
                    None,
                    f"the environment has Optuna {measured.optuna_version}, not {version}; "
                    f"delete {env} and run again",
                )
            return HarnessResult(measured, seconds, None, None)
    failure = import_error(env)
    if failure is not None:
        return HarnessResult(None, seconds, failure, None)
    return HarnessResult(
        None, seconds, None, f"harness exited {done.returncode}: {envs.last_lines(done.stderr)}"
    )
