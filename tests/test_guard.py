"""The guard another project installs: the wheel, installed into a fresh environment outside
the checkout, runs from any directory and names itself; `worker`, `list` and `collect` take
run's shapes (the several-hosts recipe with a user's own space); `run --fail-on-loss` and its
loss table; the composite action's script run locally, its summary written, actionlint- and
shellcheck-clean."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from repro import _compat, expectations, services

from .helpers import ROOT, run_cli, run_main

pytestmark = pytest.mark.xdist_group("processes")

TOOL = "optuna-grid-repro"
SPACE = '{"x": [0, 1, 2, 3], "y": ["a", "b"]}'


@pytest.fixture(scope="module")
def venv() -> Iterator[Path]:
    """A wheel of the checkout (built from a copy, so the checkout gets no build/ folder),
    installed with uv into a fresh venv in a temporary folder. Its dependencies come from this
    test environment through a .pth file: tests reach no package index."""
    with tempfile.TemporaryDirectory(prefix="guard-test-") as tmp:
        root = Path(tmp)
        files = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        source = root / "source"
        for name in files:
            if (ROOT / name).is_file():
                (source / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, source / name)
        wheels = root / "wheels"
        build = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, setuptools.build_meta as b; print(b.build_wheel(sys.argv[1]))",
                str(wheels),
            ],
            cwd=source,
            capture_output=True,
            text=True,
            check=False,
        )
        assert build.returncode == 0, build.stderr
        wheel = wheels / build.stdout.split()[-1]
        env_dir = root / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
        python = env_dir / "bin" / "python"
        installed = subprocess.run(
            ["uv", "pip", "install", "--offline", "--no-deps", "--python", str(python), str(wheel)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert installed.returncode == 0, installed.stderr
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        # Optuna and the drivers of this environment, behind the installed wheel.
        Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        yield env_dir / "bin"


def in_venv(
    bin_dir: Path, command: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``command`` with the venv's scripts first on PATH and without the checkout on
    PYTHONPATH, as a user's shell or a CI step would run it."""
    environ = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    environ.pop("PYTHONPATH", None)
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False, env=environ
    )


def tool(
    bin_dir: Path, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return in_venv(bin_dir, [str(bin_dir / TOOL), *args], cwd, env)


def test_the_installed_script_runs_anywhere_and_names_itself(venv: Path, tmp_path: Path) -> None:
    """From a folder that is not the checkout: usage and errors say `optuna-grid-repro`; the
    module comes from the wheel, not the checkout; `run` writes where --out says, ends with
    the loss table, and --fail-on-loss exits 1 exactly when the table shows a loss."""
    where = tmp_path / "elsewhere"
    where.mkdir()
    done = tool(venv, "--help", cwd=where)
    assert done.returncode == 0
    assert done.stdout.startswith(f"usage: {TOOL} ")
    done = tool(venv, "audit", "foo://x", "--study", "s", cwd=where)
    assert done.returncode == 2
    assert done.stderr.startswith(f"{TOOL}: error: ")
    assert done.stderr.count("\n") == 1
    done = tool(venv, "audit", cwd=where)
    assert done.returncode == 2
    # One error prefix for every command; the usage error names the subcommand's --help.
    assert done.stderr.startswith(f"{TOOL}: error: ")
    assert f"(see {TOOL} audit --help)" in done.stderr
    out = tmp_path / "out"
    done = tool(
        venv,
        "run",
        "-s",
        "sequential-per-worker-sqlite-*",
        "--space",
        SPACE,
        "--workers",
        "2",
        "--remedies",
        "none",
        "--out",
        str(out),
        "-q",
        "--fail-on-loss",
        cwd=where,
    )
    assert done.returncode in (0, 1), done.stderr
    assert [p.name for p in out.iterdir() if p.suffix == ".json"] == [
        f"optuna-{_compat.OPTUNA_VERSION}.json"
    ]
    assert os.listdir(where) == []
    lines = done.stderr.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("scenario "))
    assert "runs that lost points" in lines[head]
    assert "mean missing" in lines[head]
    row = lines[head + 1].split()
    assert row[0].startswith("sequential-per-worker-sqlite-w2-custom-")
    assert done.returncode == (0 if row[1] == "0" else 1)
    runs = json.loads((out / f"optuna-{_compat.OPTUNA_VERSION}.json").read_text())["runs"]
    # A run that recorded an error is counted apart, never as lost points.
    lost = [r for r in runs if not r.get("error") and (r["missing"] or r["duplicates"])]
    assert len(lost) == int(row[1])


def test_several_hosts_recipe_with_an_own_space(tmp_path: Path) -> None:
    """`list`, `worker` and `collect` with --space/--workers: workers started by hand (each a
    process of its own) run the user's grid, and collect words its verdict per point, with
    points as {param: value}; `audit` agrees with it."""
    shape = ["--space", SPACE, "--workers", "2"]
    listed = run_main("list", "--storage", "sqlite", "--remedies", "none", *shape)
    scenario = next(s for s in listed.stdout.split() if s.startswith("sequential-per-worker-"))
    url = f"sqlite:///{tmp_path / 'hosts.db'}"
    for index in ("0", "1"):
        done = run_cli(
            "worker", "--storage", url, "--study", "s", "--scenario", scenario,
            "--worker-index", index, *shape,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    done = run_main("collect", "--storage", url, "--study", "s")
    assert done.returncode == 2
    assert "--workers" in done.stderr
    done = run_main("collect", "--storage", url, "--study", "s", "--workers", "2")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["scenario"] == scenario
    assert record["grid_size"] == 8
    audit = json.loads(run_main("audit", url, "--study", "s", "--json").stdout)["grids"][0]
    assert len(audit["missing"]) == record["missing"]
    assert len(audit["duplicated"]) == len(record["duplicated_points"])
    if record["duplicates"]:  # per-worker seeds: from 3.4.0 on (3.2.0 is exact)
        assert (
            f"{len(audit['duplicated'])} points evaluated more than once "
            f"({record['duplicates']} extra evaluations)"
        ) in done.stderr
        assert f"never evaluated: {json.dumps(audit['missing'][0])}" in done.stderr
    else:
        assert "every grid point evaluated exactly once" in done.stderr


def guard(bin_dir: Path, tmp_path: Path, **inputs: str) -> tuple[int, str]:
    """The action's script as its second step runs it, with the step summary in a file."""
    summary = tmp_path / "summary.md"
    inputs_env = {
        "GITHUB_STEP_SUMMARY": str(summary),
        "RUNNER_TEMP": str(tmp_path),
        **{f"GUARD_{k.upper()}": v for k, v in inputs.items()},
    }
    done = in_venv(bin_dir, ["bash", str(ROOT / "action" / "guard.sh")], tmp_path, inputs_env)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, summary.read_text()


def test_the_action_script_gives_the_verdict(venv: Path) -> None:
    """Two workers with their own seeds on the default grid: exact on 3.2.0, points lost from
    3.4.0 on, as the expectation table says. False-positive bound: from 3.4.0 the run is exact
    only if the second worker's 12 grid ids name exactly the 12 points the first one's did not,
    1 / C(24, 12) = 3.7e-7. The exit status is the verdict, and the step summary says it with
    the audit's table."""
    row = expectations.expected(_compat.OPTUNA_VERSION, "sequential", "per-worker")
    with tempfile.TemporaryDirectory(dir=services.scratch_dir()) as tmp:
        status, summary = guard(venv, Path(tmp), seed_policy="per-worker", workers="2")
    assert status == (1 if row.outcome == "loses-points" else 0)
    verdict = "grid points lost" if status else "every grid point evaluated exactly once"
    assert summary.startswith(f"### GridSampler guard: {verdict}\n")
    scenario = "sequential-per-worker-sqlite-w2-g24"
    assert f"Optuna {_compat.OPTUNA_VERSION}: scenario `{scenario}`" in summary
    assert ("points lost: " if status else "exact: every point of 1 grid") in summary


def test_the_action_is_lint_clean(tmp_path: Path) -> None:
    """shellcheck on the script; actionlint on a workflow that uses the action with every
    input (it checks the inputs against action.yml) and on the action's own steps."""
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert set(action["inputs"]) == {"optuna", "space", "workers", "seed-policy", "storage"}
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    done = subprocess.run(
        [shellcheck, str(ROOT / "action" / "guard.sh")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    shutil.copy(ROOT / "action.yml", tmp_path / "action.yml")
    steps = [
        {"uses": "actions/checkout@v4"},
        {"uses": "./", "with": {k: "x" for k in action["inputs"]}},
    ]
    # The action's own steps, as a job, so that actionlint (and shellcheck) see their shell.
    own = [
        {k: v for k, v in step.items() if k != "env"} | {"env": {"GITHUB_ACTION_PATH": "."}}
        for step in action["runs"]["steps"]
    ]
    (workflows / "use.yml").write_text(
        yaml.safe_dump(
            {
                "name": "use",
                "on": "push",
                "jobs": {
                    "a": {"runs-on": "ubuntu-latest", "steps": steps},
                    "b": {"runs-on": "ubuntu-latest", "steps": own},
                },
            }
        )
    )
    actionlint = shutil.which("actionlint") or str(Path(sys.executable).parent / "actionlint")
    env = {**os.environ, "PATH": f"{Path(shellcheck).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [actionlint, "-no-color"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
