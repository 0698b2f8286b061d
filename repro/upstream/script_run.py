"""The minimal reproduction's measured output, recorded as JSON so that the issue quotes a real
run and never a hand-typed line.

Recording runs the PEP 723 script with this interpreter (whose Optuna it uses) a few times and
keeps each stdout line verbatim, with the script's sha256: a later edit of the script makes the
record stale, and the bundle refuses a stale record instead of quoting it.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from repro.errors import ReproError
from repro.jsonfile import FormatError, from_fields, load_json, write_json

SCHEMA = 1
SCRIPT = "lost_points_per_worker_seed.py"
FILENAME = "script-run.json"
# Each run starts 4 fresh interpreters that import Optuna; a few seconds each on an idle machine.
TIMEOUT = 300.0


class ScriptRunError(ReproError):
    """The script could not be run or recorded, or the record no longer fits the script."""


@dataclass(frozen=True)
class ScriptOutput:
    stdout: str  # the JSON line exactly as printed
    optuna: str
    trials: int
    missing: int
    duplicates: int


@dataclass(frozen=True)
class ScriptRecord:
    script: str  # path relative to the results directory
    sha256: str
    command: str
    python: str
    platform: str
    outputs: list[ScriptOutput]

    @property
    def optuna(self) -> str:
        return self.outputs[0].optuna

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScriptRecord:
        outputs = [from_fields(ScriptOutput, o) for o in data.get("outputs", [])]
        return from_fields(cls, data, outputs=outputs)


def script_path(results_dir: Path) -> Path:
    return results_dir / "scripts" / SCRIPT


def record_path(results_dir: Path) -> Path:
    return results_dir / "upstream" / FILENAME


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_once(script: Path) -> ScriptOutput:
    try:
        done = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ScriptRunError(f"{script} did not finish within {TIMEOUT:.0f} s") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or len(lines) != 1:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ScriptRunError(f"{script} exited {done.returncode}: {tail}")
    try:
        printed = json.loads(lines[0])
        return ScriptOutput(
            lines[0],
            printed["optuna"],
            printed["trials"],
            printed["missing"],
            printed["duplicates"],
        )
    except (ValueError, KeyError, TypeError):
        raise ScriptRunError(f"{script} printed {lines[0]!r}, not its JSON line") from None


def record(results_dir: Path, runs: int) -> ScriptRecord:
    """Run the script ``runs`` times with this interpreter and write the record."""
    script = script_path(results_dir)
    if not script.is_file():
        raise ScriptRunError(f"{script}: no such script")
    outputs = []
    for index in range(runs):
        started = time.monotonic()
        outputs.append(run_once(script))
        print(
            f"run {index + 1}/{runs}: {outputs[-1].stdout} ({time.monotonic() - started:.1f} s)",
            file=sys.stderr,
        )
    found = record_from(results_dir, script, outputs)
    write_json(record_path(results_dir), found.to_json(), schema=SCHEMA)
    return found


def record_from(results_dir: Path, script: Path, outputs: list[ScriptOutput]) -> ScriptRecord:
    return ScriptRecord(
        script=script.relative_to(results_dir).as_posix(),
        sha256=sha256(script),
        command=f"python {script.name}",
        python=platform.python_version(),
        platform=platform.platform(),
        outputs=outputs,
    )


def load(results_dir: Path) -> ScriptRecord:
    """The recorded runs; refused when missing, empty or recorded from another script text."""
    path = record_path(results_dir)
    hint = "record it with `nox -s upstream_record`"
    if not path.exists():
        raise ScriptRunError(f"{path}: no recorded run of {SCRIPT}; {hint}")
    try:
        found = ScriptRecord.from_json(load_json(path, schema=SCHEMA))
    except (TypeError, KeyError) as exc:
        raise FormatError(f"{path}: not a script record ({exc}); {hint}") from None
    if not found.outputs:
        raise ScriptRunError(f"{path}: no runs recorded; {hint}")
    script = results_dir / found.script
    if not script.is_file() or sha256(script) != found.sha256:
        raise ScriptRunError(f"{path}: recorded from another version of {found.script}; {hint}")
    return found
