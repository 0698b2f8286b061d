"""One release measured: its environment made or reused (``envs.py``), ``python -m repro run``
with the timeline's scenarios inside it, and the outcome as a ``records.Release``.

A release that fails to install, to import Optuna or to run the harness is recorded with the
reason, never raised: it is a gap in the timeline, not the end of it.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from repro import results
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
    made = "created" if env.created else "reused"
    done = run_harness(env.path, version, scenarios, settings)
    seconds = round(done.seconds, 1)
    if done.results is None:
        status = records.IMPORT_FAILED if done.import_error else records.RUN_FAILED
        return records.Release(
            version,
            status,
            done.import_error or done.error,
            environment=made,
            install_seconds=install,
            run_seconds=seconds,
        )
    return records.Release(
        version,
        records.OK,
        None,
        runs=done.results.runs,
        environment=made,
        install_seconds=install,
        run_seconds=seconds,
        python=done.results.python,
        packages=done.results.packages,
    )


@dataclass(frozen=True)
class HarnessResult:
    """What one ``python -m repro run`` in a release's environment gave back."""

    results: results.ResultsFile | None
    seconds: float
    import_error: str | None  # Optuna does not import in the environment
    error: str | None  # any other reason no results came back


def import_error(env: Path) -> str | None:
    """Why ``import optuna`` fails in ``env``, or None when it imports."""
    try:
        done = subprocess.run(
            [str(envs.python_in(env)), "-c", IMPORT_CHECK],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if done.returncode == 0 else envs.last_lines(done.stderr + done.stdout)


def run_harness(
    env: Path, version: str, scenarios: Sequence[str], settings: Settings
) -> HarnessResult:
    """``python -m repro run`` in ``env`` for the given scenario ids, into a scratch directory.
    Exit status 1 with a results file means some run recorded an error: the records carry it.
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
