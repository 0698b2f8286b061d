"""The worker-count sweep (`python -m repro.scale sweep`): the limits checked with this
machine's real numbers before any worker starts, a tiny real sweep whose JSON renders, a real
SIGINT that keeps the finished cells, the replacement rule, and the committed section and
results file as any valid sweep must be. Real processes and PostgreSQL, loopback only."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from repro import _compat
from repro.errors import ReproError
from repro.jsonfile import load_json
from repro.scale import limits, render, sweep
from repro.versions import version_key
from tests.helpers import ONCE_PER_CI, RESULTS, ROOT, require_service, run_cli

SERVERS = pytest.mark.xdist_group("servers")
NOT_APPLICABLE = f"not applicable on Optuna {_compat.OPTUNA_VERSION} (from 4.2.0)"


def space(points: int) -> str:
    return json.dumps({"x": list(range(points))})


def sweep_cli(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("sweep", "--out", str(out), *args, module="repro.scale", timeout=120)


@SERVERS
def test_a_count_over_max_connections_is_refused_naming_the_limit(tmp_path: Path) -> None:
    """max_connections + 1 workers cannot all hold a connection: the cell is recorded as
    blocked by that limit, with the measured numbers, and no worker starts (no run record,
    no proxy, the whole command within seconds)."""
    require_service("postgresql")
    capacity = limits.measure(dask=False)
    workers = capacity.max_connections + 1
    check = limits.check("grpc-postgresql", workers, capacity)
    assert check.blocked is not None
    assert "PostgreSQL max_connections" in check.blocked
    assert f"max_connections {capacity.max_connections}" in check.blocked
    assert check.needs["proxy_threads"] >= workers
    assert check.needs["proxy_pool"] >= workers
    assert limits.check("postgresql", 2, capacity).blocked is None

    out = tmp_path / "scale.json"
    began = time.monotonic()
    result = sweep_cli(
        out, "-w", str(workers), "--space", space(workers), "--storage", "postgresql"
    )
    assert time.monotonic() - began < 30
    assert result.returncode == 0, result.stderr
    cells = load_json(out, schema=sweep.SCHEMA)["cells"]
    assert [c["status"] for c in cells] == ["blocked"] * len(sweep.SAMPLERS)
    for cell in cells:
        assert "PostgreSQL max_connections" in cell["reason"]
        assert cell["records"] == []
        assert cell["runs"] == 0
        assert cell["limits"]["needs"]["connections"] == workers + limits.HARNESS_CONNECTIONS
    assert "blocked: PostgreSQL max_connections" in result.stdout


@SERVERS
def test_tiny_sweep_writes_cells_that_render(tmp_path: Path) -> None:
    """2 workers on a 4-point grid, PostgreSQL and the proxy, GridSampler: every cell measured
    (or the proxy's not applicable, with its bound, before 4.2.0), its figures recomputed from
    its runs, judged by its row, and the section rendered from the JSON alone."""
    require_service("postgresql")
    out = tmp_path / "scale.json"
    result = sweep_cli(
        out, "-w", "2", "-r", "1", "--space", space(4), "--sampler", "grid",
        "--storage", "postgresql", "grpc-postgresql",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = load_json(out, schema=sweep.SCHEMA)
    by_storage = {c["storage"]: c for c in data["cells"]}
    assert set(by_storage) == {"postgresql", "grpc-postgresql"}
    direct = by_storage["postgresql"]
    assert direct["status"] == "measured"
    assert direct["runs"] == 1
    assert direct["records"][0]["trials"] == 4
    proxy = by_storage["grpc-postgresql"]
    if _compat.GRPC_PROXY:
        assert proxy["status"] == "measured"
        assert proxy["expectation"]["proxy"]["outcome"] == "as-direct"
        assert proxy["limits"]["needs"]["proxy_threads"] == 10
    else:
        assert proxy["status"] == "not applicable"
        assert NOT_APPLICABLE in proxy["reason"]
    check_valid(data)
    section = render.markdown(data)
    assert f"## Optuna {_compat.OPTUNA_VERSION}" in section
    assert "| PostgreSQL, processes | GridSampler |" in section


@SERVERS
def test_sigint_keeps_the_finished_cells(tmp_path: Path) -> None:
    """A real SIGINT once the first cell is written: exit 130, every cell written before it
    is still in the file (valid JSON, as written), and the cell in progress is not."""
    require_service("postgresql")
    out = tmp_path / "scale.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "repro.scale", "sweep", "--out", str(out), "-w", "2", "3", "4",
         "-r", "1", "--space", space(4), "--storage", "postgresql"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not out.exists():
            assert proc.poll() is None, "exited before writing a cell"
            assert time.monotonic() < deadline, "no cell written within 60 s"
            with pytest.raises(subprocess.TimeoutExpired):
                proc.wait(0.02)
        written = load_json(out, schema=sweep.SCHEMA)["cells"]
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # Nine cells of about a second each: the signal, sent within milliseconds of the first
    # write, arrives long before the last one.
    assert proc.returncode == 130, stderr
    kept = load_json(out, schema=sweep.SCHEMA)["cells"]
    assert 1 <= len(kept) < 3 * len(sweep.SAMPLERS)
    assert all(c in kept for c in written)
    assert all(c["status"] == "measured" for c in kept)
    assert "interrupted by SIGINT" in stderr


def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    """More workers than grid points: exit 2, one line, nothing written. A file of another
    grid's sweep is refused before anything runs (the same ReproError line, read in-process
    to spare a second interpreter start)."""
    out = tmp_path / "scale.json"
    result = sweep_cli(out, "-w", "8", "--space", space(4))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "every worker needs a trial" in result.stderr
    assert not out.exists()
    sweep.save(out, sweep.load(out, sweep.SWEEP_SPACE))
    with pytest.raises(ReproError, match="another grid"):
        sweep.load(out, (("x", (0, 1, 2, 3)),))


def test_only_a_clean_measurement_replaces_a_cell() -> None:
    """A failed or blocked rerun never replaces a measured cell; a clean one does, and one
    replaces a cell that measured nothing."""
    cell = sweep.Cell("5.1.0", "postgresql", "grid", 8)
    run = {"repetition": 0, "trials": 256, "complete": 256, "missing": 0, "duplicates": 0,
           "missing_points": [], "duplicated_points": [], "worker_crashes": [], "error": None,
           "violations": [], "seconds": 1.0}  # fmt: skip
    measured = sweep.cell_json(cell, "measured", runs=[run])
    failed = sweep.cell_json(cell, "failed", runs=[{**run, "error": "worker 3: hung"}])
    blocked = sweep.cell_json(cell, "blocked", reason="memory")
    assert sweep.merge([measured], failed) == [measured]
    assert sweep.merge([measured], blocked) == [measured]
    assert sweep.merge([failed], measured) == [measured]
    assert sweep.merge([blocked], failed) == [failed]
    other = sweep.cell_json(sweep.Cell("3.2.0", "postgresql", "grid", 8), "measured", runs=[run])
    assert sweep.merge([measured], other) == [other, measured]
    assert failed["errors"] == 1
    assert failed["runs"] == 0


def check_valid(data: dict[str, Any]) -> None:
    """What any sweep's results file satisfies, whatever it measured."""
    for cell in data["cells"]:
        assert {k: cell[k] for k in sweep.summarize([])} == sweep.summarize(cell["records"])
        if cell["status"] in ("blocked", "not applicable"):
            assert cell["reason"]
            assert cell["records"] == []
        else:
            assert len(cell["records"]) == cell["expectation"]["runs"]
            assert (cell["status"] == "failed") == any(r["error"] for r in cell["records"])
        if cell["storage"].startswith("grpc-") and version_key(cell["release"]) < version_key(
            "4.2.0"
        ):
            assert cell["status"] == "not applicable"
            assert "(from 4.2.0)" in cell["reason"]


@ONCE_PER_CI
def test_committed_section_is_rendered_from_the_committed_json() -> None:
    """results/scale.md is what the JSON beside it renders to; the JSON is a valid sweep."""
    data = load_json(RESULTS / "scale.json", schema=sweep.SCHEMA)
    check_valid(data)
    assert (RESULTS / "scale.md").read_text(encoding="utf-8") == render.markdown(data)
    assert (RESULTS / "scale.png").stat().st_size > 0
