"""One cached virtual environment per Optuna release, and one per target build
(``measure.py`` runs the harness in it).

An environment holds Optuna and its dependencies only: the harness runs from the checkout
(``python -m repro`` with the repository root as working directory), so a cached environment
serves every later run, and a second timeline over the same releases installs nothing.
A target's environment is what ``repro.targets.prepare`` planned, installed; it is reused only
when the plan names an immutable build (an artifact's sha256 or a git commit).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from repro import targets
from repro.paths import relativize

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
    kept = [line for line in relativize(text).strip().splitlines() if line.strip()]
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
    return _make(root, version, env, install_commands(env, version, python, uv))


def _make(root: Path, name: str, env: Path, commands: list[list[str]]) -> Environment:
    began = time.monotonic()
    root.mkdir(parents=True, exist_ok=True)
    for command in commands:
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Environment(name, env, True, time.monotonic() - began, f"{command[0]}: {exc}")
        if done.returncode != 0:
            error = f"`{' '.join(command[:3])} ...` exited {done.returncode}: " + last_lines(
                done.stderr + done.stdout
            )
            return Environment(name, env, True, time.monotonic() - began, error)
    return Environment(name, env, True, time.monotonic() - began, None)


# Written into a target's environment once its install succeeded: the plan it holds.
TARGET_MARKER = "grid-repro-plan.json"


def target_env_dir(root: Path, plan: targets.Plan) -> Path:
    """One directory per build: the label, and a hash of what identifies the build (what is
    installed, the artifact's sha256, the commit, the patches' sha256s)."""
    p = plan.provenance
    identity = [plan.install, p.kind, p.sha256, p.commit, [x.sha256 for x in p.patches]]
    key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:12]
    return root / f"target-{p.label}-{key}"


def reusable(plan: targets.Plan) -> bool:
    """Whether a finished install of this plan can serve again: only an immutable build. A
    source tree may have changed since, even at the same commit, and a URL without a sha256
    or commit may now serve another build."""
    p = plan.provenance
    return p.kind != "source" and bool(p.sha256 or p.commit)


def target_install_commands(
    env: Path, plan: targets.Plan, python: str, uv: str | None
) -> list[list[str]]:
    """As for a release; Optuna itself is reinstalled every time, since a build of another
    commit or patch reports the same version as the one it would replace."""
    py = str(python_in(env))
    if uv is not None:
        install = [uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", py]
        return [
            [uv, "venv", "--quiet", "--allow-existing", "--python", python, str(env)],
            [*install, "--reinstall-package", "optuna", *plan.install],
        ]
    return [
        [python, "-m", "venv", str(env)],
        [py, "-m", "pip", "install", "--quiet", *plan.install],
        [py, "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps", *plan.install],
    ]


def ensure_target(root: Path, plan: targets.Plan, python: str, uv: str | None) -> Environment:
    """Reuse the build's environment when the plan allows it, or install the plan. Never
    raises for a failed install, as ``ensure``."""
    env = target_env_dir(root, plan)
    label = plan.provenance.label
    if reusable(plan) and python_in(env).exists() and (env / TARGET_MARKER).is_file():
        return Environment(label, env, False, 0.0, None)
    (env / TARGET_MARKER).unlink(missing_ok=True)
    made = _make(root, label, env, target_install_commands(env, plan, python, uv))
    if made.error is None:
        (env / TARGET_MARKER).write_text(json.dumps(plan.to_json(), indent=1) + "\n")
    return made


def find_uv() -> str | None:
    return shutil.which("uv")
