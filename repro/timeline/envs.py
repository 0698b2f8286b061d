"""One cached virtual environment per Optuna release (``measure.py`` runs the harness in it).

An environment holds Optuna and its dependencies only: the harness runs from the checkout
(``python -m repro`` with the repository root as working directory), so a cached environment
serves every later run, and a second timeline over the same releases installs nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

# The repository root: the harness runs from here inside every environment.
CHECKOUT = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = CHECKOUT / ".nox" / "timeline-envs"
INSTALL_TIMEOUT = 900.0


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


def last_lines(text: str, lines: int = 3) -> str:
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
            error = f"`{' '.join(command[:3])} ...` exited {done.returncode}: " + last_lines(
                done.stderr + done.stdout
            )
            return Environment(version, env, True, time.monotonic() - began, error)
    return Environment(version, env, True, time.monotonic() - began, None)


def find_uv() -> str | None:
    return shutil.which("uv")
