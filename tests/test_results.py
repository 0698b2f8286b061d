"""Results round-trip through JSON and are written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from repro import jsonfile, results
from repro.results import ResultsFile, summarize

from .helpers import run_record


def test_round_trip(tmp_path: Path) -> None:
    original = ResultsFile(
        "3.6.1", "3.11", "Linux", {"numpy": "2"}, [run_record(), run_record(missing=1)]
    )
    path = results.results_path(tmp_path, "3.6.1")
    results.save(path, original)
    assert results.load(path) == original
    assert path.name == "optuna-3.6.1.json"


def test_summary_is_stored_and_recomputable(tmp_path: Path) -> None:
    runs = [run_record(repetition=0, missing=2), run_record(repetition=1, missing=0)]
    path = tmp_path / "optuna-x.json"
    results.save(path, ResultsFile("x", "3.11", "Linux", {}, runs))
    stored = json.loads(path.read_text())["summary"]
    assert stored == [s.to_json() for s in summarize(runs)]
    assert stored[0]["runs_with_missing"] == 1
    assert stored[0]["missing_mean"] == 1


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash between writing and renaming leaves the previous results and no temp file."""
    path = tmp_path / "optuna-1.json"
    path.write_text("old")

    def crash(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        jsonfile.write_atomic(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["optuna-1.json"]


def test_versions_sort_numerically(tmp_path: Path) -> None:
    for v in ("3.10.0", "3.2.0", "5.0.0rc1", "3.6.1"):
        results.save(results.results_path(tmp_path, v), ResultsFile(v, "", "", {}, []))
    assert [f.optuna_version for f in results.load_all(tmp_path)] == [
        "3.2.0",
        "3.6.1",
        "3.10.0",
        "5.0.0rc1",
    ]


def test_machine_paths_are_written_from_named_roots(tmp_path: Path) -> None:
    """Tracebacks and headers name no folder of the machine that ran them; web addresses and
    relative paths stay as they are; a results file is rewritten in the tool's layout."""
    import json
    import sysconfig

    from repro import paths
    from repro.jsonfile import dumps

    site = sysconfig.get_paths()["purelib"]
    cases = {
        f'File "{site}/optuna/samplers/_grid.py", line 3': (
            'File "<site-packages>/optuna/samplers/_grid.py", line 3'
        ),
        'File "/home/u/wt/.nox/t/lib/python3.11/site-packages/optuna/x.py"': (
            'File "<site-packages>/optuna/x.py"'
        ),
        "/root/.pyenv/versions/3.11.7/lib/python3.11/json/decoder.py": "<stdlib>/json/decoder.py",
        f"{paths.CHECKOUT}/repro/fork.py": "<checkout>/repro/fork.py",
        "/work/wt-x/repro/fork.py": "<checkout>/repro/fork.py",
        "python -m repro run --out /tmp/abc": "python -m repro run --out <tmp>/abc",
        "sqlite:////dev/shm/grid-repro-1/a.db": "sqlite:///<tmp>/grid-repro-1/a.db",
        "https://github.com/optuna/optuna/blob/v4.0.0/tests/x.py": (
            "https://github.com/optuna/optuna/blob/v4.0.0/tests/x.py"
        ),
        ".nox/target-cache/tests/optuna-5.0.0": ".nox/target-cache/tests/optuna-5.0.0",
    }
    for text, expected in cases.items():
        assert paths.relativize(text) == expected, text
    path = tmp_path / "r.json"
    path.write_text(dumps({"error": f"File {site}/optuna/x.py", "n": 1}))
    assert paths.rewrite(path)
    assert path.read_text() == dumps({"error": "File <site-packages>/optuna/x.py", "n": 1})
    assert not paths.rewrite(path)
    assert json.loads(path.read_text())["n"] == 1
