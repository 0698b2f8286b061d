"""Gather CI's matrix results into one results directory.

Each matrix job uploads its whole ``results/``: the committed files plus the JSON it measured.
A file that differs from the checkout's copy is that job's measurement and replaces it; two
jobs that changed the same file differently are a conflict, refused rather than resolved by
download order.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from repro.errors import ReproError


class CollectError(ReproError):
    """Two artifacts disagree on one file, or there is nothing to collect."""


def collect(artifacts: Path, results_dir: Path) -> list[Path]:
    """Copy every JSON file that some artifact under ``artifacts`` changed into
    ``results_dir``; return the files replaced or added."""
    dirs = sorted(p for p in artifacts.iterdir() if p.is_dir()) if artifacts.is_dir() else []
    if not dirs:
        raise CollectError(f"{artifacts}: no artifact directories to collect")
    chosen: dict[Path, Path] = {}
    for directory in dirs:
        for path in sorted(directory.rglob("*.json")):
            relative = path.relative_to(directory)
            current = results_dir / relative
            if current.is_file() and current.read_bytes() == path.read_bytes():
                continue
            earlier = chosen.get(relative)
            if earlier is not None and earlier.read_bytes() != path.read_bytes():
                raise CollectError(f"{relative}: {earlier} and {path} differ; which one is it?")
            chosen[relative] = path
    for relative, path in sorted(chosen.items()):
        (results_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, results_dir / relative)
    return [results_dir / r for r in sorted(chosen)]
