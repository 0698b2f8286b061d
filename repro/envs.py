"""One cached virtual environment per Optuna release, and the harness run inside it.

An environment holds Optuna and its dependencies only: the harness runs from the checkout
(``python -m repro`` with the repository root as working directory), so a cached environment
serves every later run, and a second timeline over the same releases installs nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from repro import results

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ROOT = ROOT / ".nox" / "bisect-envs"
INSTALL_TIMEOUT = 900.0
IMPORT_CHECK = "import optuna; print(optuna.__version__)"


def env_dir(root: Path, version: str) -> Path:
    return root / f"optuna-{version}"


def python_in(env: Path) -> Path:
    return env / "bin" / "python"


def is_cached(env: Path, version: str) -> bool:
    """The environment exists and has this Optuna installed (its dist-info is there: a failed
    or interrupted install leaves none, so it is retried rather than reused)."""
    return python_in(env).exists() and any(
        env.glob(f"lib/python*/site-packages/optuna-{version}.dist-info")
    )


def install_commands(env: Path, version: str, python: str, uv: str | None) -> list[list[str]]:
    """uv when it is on PATH (seconds per release from its cache), else venv and pip."""
    py = str(python_in(env))
    if uv is not None:
        return [
            [uv, "venv", "--quiet", "--allow-existing", "--python", python, str(env)],
            # uv skips bytecode by default; the first import would then compile Optuna and
            # SQLAlchemy inside the measured run instead of here.
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--compile-bytecode",
                "--python",
                py,
                f"optuna=={version}",
            ],
        ]
    return [
        [python, "-m", "venv", str(env)],
        [py, "-m", "pip", "install", "--quiet", f"optuna=={version}"],
    ]


def _tail(text: str, lines: int = 3) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:]) or "no output"


@dataclass(frozen=True)
class Environment:
    version: str
    path: Path
    created: bool
    seconds: float
    error: str | None  # why the install failed; None when the environment is usable


def ensure(root: Path, version: str, python: str, uv: str | None) -> Environment:
    """Reuse the release's environment, or make it. Never raises for a failed install: the
    error names the command and its last output lines."""
    env = env_dir(root, version)
    if is_cached(env, version):
        return Environment(version, env, False, 0.0, None)
    began = time.monotonic()
    root.mkdir(parents=True, exist_ok=True)
    for command in install_commands(env, version, python, uv):
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Environment(version, env, True, time.monotonic() - began, f"{command[0]}: {exc}")
        if done.returncode != 0:
            error = f"`{' '.join(command[:3])} ...` exited {done.returncode}: " + _tail(
                done.stderr + done.stdout
            )
            return Environment(version, env, True, time.monotonic() - began, error)
    return Environment(version, env, True, time.monotonic() - began, None)


def find_uv() -> str | None:
    return shutil.which("uv")


@dataclass(frozen=True)
class HarnessResult:
    results: results.ResultsFile | None
    seconds: float
    import_error: str | None  # Optuna does not import in the environment
    error: str | None  # any other reason no results came back


def import_error(env: Path) -> str | None:
    """Why ``import optuna`` fails in ``env``, or None when it imports."""
    try:
        done = subprocess.run(
            [str(python_in(env)), "-c", IMPORT_CHECK],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if done.returncode == 0 else _tail(done.stderr + done.stdout)


def run_harness(
    env: Path,
    version: str,
    scenarios: Sequence[str],
    repetitions: int,
    jobs: int,
    timeout: float,
) -> HarnessResult:
    """``python -m repro run`` in ``env`` for the given scenario ids, into a scratch directory.
    Exit status 1 with a results file means some run recorded an error: the records carry it.
    """
    began = time.monotonic()
    command = [str(python_in(env)), "-m", "repro", "run", "-q", "-r", str(repetitions)]
    command += ["-j", str(jobs), "--timeout", str(timeout)]
    for scenario in scenarios:
        command += ["-s", scenario]
    # Every run may take its whole timeout; lanes share them out.
    limit = timeout * (len(scenarios) * repetitions + 2) + 300
    with tempfile.TemporaryDirectory(prefix="grid-repro-bisect-") as out:
        try:
            done = subprocess.run(
                [*command, "--out", out],
                cwd=ROOT,
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
        None, seconds, None, f"harness exited {done.returncode}: {_tail(done.stderr)}"
    )
