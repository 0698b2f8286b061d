"""Which Optuna releases a timeline covers: listed by the package index, or named by the user.

Nothing here installs anything; ``envs.py`` makes an environment per release.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable, Sequence

from repro.errors import ReproError
from repro.versions import version_key

# Final releases only ("3.6.1"); pre-releases ("4.0.0b0", "5.0.0rc1") and dev builds are not
# what users install, so a timeline skips them.
FINAL = re.compile(r"\d+(\.\d+){1,2}")
LIST_COMMAND = (sys.executable, "-m", "pip", "index", "versions", "optuna")
INDEX_TIMEOUT = 120.0


class ReleaseError(ReproError, ValueError):
    """A release list or range that cannot be used; the message says what to change."""


def check_version(text: str, option: str) -> str:
    if not FINAL.fullmatch(text):
        raise ReleaseError(
            f"{option} {text!r} is not a release number like 3.6.1 (pre-releases are not measured)"
        )
    return text


def parse_pip_index(output: str) -> list[str]:
    """Final releases from ``pip index versions optuna`` output, oldest first."""
    for line in output.splitlines():
        if line.startswith("Available versions:"):
            listed = [v.strip() for v in line.split(":", 1)[1].split(",")]
            return sorted({v for v in listed if FINAL.fullmatch(v)}, key=version_key)
    raise ReleaseError(
        "`pip index versions optuna` printed no 'Available versions:' line; "
        "pass the releases with --versions instead"
    )


def list_from_index() -> list[str]:
    try:
        done = subprocess.run(
            LIST_COMMAND, capture_output=True, text=True, timeout=INDEX_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReleaseError(f"cannot list Optuna releases ({exc}); pass --versions") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ReleaseError(f"`pip index versions optuna` failed ({last}); pass --versions")
    return parse_pip_index(done.stdout)


def in_range(available: Sequence[str], start: str | None, stop: str | None) -> list[str]:
    """The releases from ``start`` to ``stop`` inclusive (None: no bound; "latest": the newest
    listed), oldest first. Bounds need not be releases themselves; the range must not be
    empty."""
    ordered = sorted(set(available), key=version_key)
    if not ordered:
        raise ReleaseError("no Optuna release to measure")
    low = version_key(start) if start is not None else None
    high = version_key(stop) if stop not in (None, "latest") else None
    if low is not None and high is not None and low > high:
        raise ReleaseError(f"--from {start} is after --to {stop}; swap them")
    chosen = [
        v
        for v in ordered
        if (low is None or version_key(v) >= low) and (high is None or version_key(v) <= high)
    ]
    if not chosen:
        bounds = f"--from {start}" if start is not None else ""
        bounds += f" --to {stop}" if stop is not None else ""
        raise ReleaseError(
            f"no release in {bounds.strip()}: the releases are {ordered[0]} .. {ordered[-1]}"
        )
    return chosen


def explicit(versions: Iterable[str]) -> list[str]:
    """A user-given ``--versions`` list, checked and put in release order."""
    return sorted({check_version(v, "--versions") for v in versions}, key=version_key)
