"""The environments a measurement needs: one per release, from the timeline's cache
(``repro/timeline/envs.py``, ``.nox/timeline-envs``), plus the database drivers the chosen
storages need (the timeline runs on SQLite only, so its environments may lack them)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from repro.rolling.records import Environment
from repro.timeline import envs

DRIVERS = {"postgresql": ("psycopg2", "psycopg2-binary>=2.9"), "mysql": ("pymysql", "pymysql>=1.1")}
DRIVERS["redis"] = ("redis", "redis>=5")
INSTALL_TIMEOUT = 600.0


def drivers_for(storages: Sequence[str]) -> list[tuple[str, str]]:
    """(module, requirement) for each server storage in use."""
    return [DRIVERS[s] for s in storages if s in DRIVERS]


def _missing_modules(python: Path, modules: Sequence[str]) -> list[str]:
    probe = (
        "import importlib.util, sys; "
        "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))"
    )
    done = subprocess.run(
        [str(python), "-c", probe, *modules],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout.split() if done.returncode == 0 else list(modules)


def install_drivers(env: Path, drivers: Sequence[tuple[str, str]], uv: str | None) -> str | None:
    """Install the drivers the environment lacks; returns the failure, or None."""
    python = envs.python_in(env)
    missing = set(_missing_modules(python, [module for module, _ in drivers]))
    wanted = [req for module, req in drivers if module in missing]
    if not wanted:
        return None
    if uv is not None:
        command = [uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", str(python)]
    else:
        command = [str(python), "-m", "pip", "install", "--quiet"]
    try:
        done = subprocess.run(
            [*command, *wanted],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"installing {', '.join(wanted)}: {exc}"
    if done.returncode != 0:
        last = (done.stderr + done.stdout).strip().splitlines()[-3:]
        return f"installing {', '.join(wanted)} exited {done.returncode}: " + " ".join(last)
    return None


def prepare(
    root: Path, version: str, python: str, storages: Sequence[str], uv: str | None
) -> tuple[Environment, Path]:
    """The release's environment (made or reused) and its interpreter; the record's ``error``
    says why it cannot be used."""
    env = envs.ensure(root, version, python, uv)
    error = env.error or install_drivers(env.path, drivers_for(storages), uv)
    record = Environment(version, env.created, round(env.seconds, 1), error)
    return record, envs.python_in(env.path)
