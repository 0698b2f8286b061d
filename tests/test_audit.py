"""`audit` on studies made here by real Optuna runs, the way a user's scripts make them: each
worker is its own storage object and its own GridSampler, run one after another on one
storage (the #5489 pattern). Every storage kind, every pinned release; the repair round trip
runs the instructions `audit --enqueue-missing --yes` prints."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import subprocess
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import pytest

from repro import _compat, expectations, services
from repro.audit import read, report
from repro.scenarios import DEFAULT_SPACE, PER_WORKER_SEED_BASE, SHARED_SEED

from .helpers import require_service, run_cli, run_main

Space = dict[str, list[Any]]
Opener = Callable[[], optuna.storages.BaseStorage]
DEFAULT: Space = {name: list(values) for name, values in DEFAULT_SPACE}
SMALL: Space = {"x": [0, 1, 2, 3], "y": ["a", "b", "c"]}


class Pruned(Exception):
    pass


def objective(space: Space, fail: Any = None, prune: Any = None) -> Callable[[optuna.Trial], float]:
    """Suggests every parameter, then fails or prunes where x is ``fail`` or ``prune``."""

    def run(trial: optuna.Trial) -> float:
        params = {name: trial.suggest_categorical(name, values) for name, values in space.items()}
        if fail is not None and params["x"] == fail:
            raise ValueError("this point fails")
        if prune is not None and params["x"] == prune:
            raise optuna.TrialPruned()
        return 0.0

    return run


def workers(
    opener: Opener,
    study: str,
    space: Space,
    seeds: list[int | None],
    *,
    budget: int | None = None,
    n_trials: int | None = None,
    **kwargs: Any,
) -> None:
    """One worker per seed, one after another, each with its own storage object and sampler;
    each runs ``n_trials`` (default: its share of the grid), and the study stops at ``budget``
    trials (default: the grid size, as in #5489)."""
    size = math.prod(len(v) for v in space.values())
    share = n_trials or math.ceil(size / len(seeds))
    for seed in seeds:
        storage = opener()
        try:
            s = optuna.create_study(
                study_name=study,
                storage=storage,
                load_if_exists=True,
                sampler=_compat.grid_sampler(space, seed),
            )
            s.optimize(
                objective(space, **kwargs),
                n_trials=share,
                catch=(ValueError,),
                callbacks=[optuna.study.MaxTrialsCallback(budget or size)],
            )
        finally:
            _compat.dispose(storage)


def lost_points_study(opener: Opener, study: str, space: Space = SMALL) -> None:
    """Three workers with their own seeds, of which the third never ran: points are missing on
    every release (3.2.0's sequential workers alone lose none), and from 3.4.0 on others are
    evaluated twice as well."""
    size = math.prod(len(v) for v in space.values())
    seeds: list[int | None] = [PER_WORKER_SEED_BASE, PER_WORKER_SEED_BASE + 1]
    workers(opener, study, space, seeds, n_trials=math.ceil(size / 3))


@contextmanager
def storage(kind: str, tmp_path: Path, name: str) -> Iterator[tuple[str, Opener, list[str]]]:
    """(URL for audit, opener for the workers, extra audit arguments) on a fresh storage."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'study.db'}"
        yield url, lambda: _compat.sqlite_storage(url), []
    elif kind == "journal":
        path = str(tmp_path / "journal.log")
        yield f"journal:{path}", lambda: _compat.journal_file_storage(path), []
    else:
        require_service(kind)
        with services.isolated(kind, name, owner=os.getpid()) as spec:
            if kind == "redis":
                yield (
                    spec.location,
                    lambda: _compat.journal_redis_storage(spec.location, spec.namespace),
                    ["--redis-prefix", spec.namespace],
                )
            else:
                yield (
                    spec.location,
                    lambda: optuna.storages.RDBStorage(spec.location),
                    [],
                )


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A fresh folder on tmpfs where there is one (``services.scratch_dir``): SQLite's and the
    journal's fsyncs are what these studies spend their time on, and nothing here tests them."""
    with tempfile.TemporaryDirectory(prefix="audit-test-", dir=services.scratch_dir()) as tmp:
        yield Path(tmp)


def one_line_error(done: subprocess.CompletedProcess[str], needle: str = "") -> None:
    """Bad input: exit 2 and one line on stderr (containing ``needle``)."""
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert needle in done.stderr


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def evaluated(opener: Opener, study: str) -> list[dict[str, Any]]:
    """The params of every finished trial, read straight from Optuna."""
    storage = opener()
    try:
        trials = optuna.load_study(study_name=study, storage=storage).get_trials()
        return [t.params for t in trials if t.state.is_finished()]
    finally:
        _compat.dispose(storage)


def expected_loss(space: Space, points: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    """Missing and repeated points, computed independently of the audit (set arithmetic)."""
    grid = [dict(zip(space, p)) for p in itertools.product(*space.values())]
    keys = [json.dumps(p, sort_keys=True) for p in points]
    missing = [p for p in grid if json.dumps(p, sort_keys=True) not in keys]
    repeated = [p for p in grid if keys.count(json.dumps(p, sort_keys=True)) > 1]
    return missing, repeated


def audit_json(url: str, *args: str, fresh: bool = False) -> tuple[int, dict[str, Any]]:
    """`audit URL --json ARGS`: in this process, or with ``fresh`` as a user runs it."""
    done = (run_cli if fresh else run_main)("audit", url, "--json", *args)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def in_process(url: str, study: str | None, *extra: str) -> report.Audit:
    prefix = extra[1] if extra else None
    spec = read.storage_spec(url, study, prefix)
    return report.build(spec.redacted, read.read(spec, study), all_studies=study is None)


# The #5489 pattern with each seed policy, on the default grid and four workers, audited as
# one storage with --all-studies; the outcome is the expectation table's for this release.
@pytest.mark.xdist_group("processes")
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_the_5489_pattern_by_seed_policy(kind: str, tmp_path: Path) -> None:
    """Per-worker seeds, a shared seed and no seed: `audit` exits 1 exactly where the
    expectation table says the pattern loses points (false-positive bound 7.0e-9 per study,
    repro/scenarios.py), and lists exactly the points set arithmetic finds missing."""
    seeds: dict[str, list[int | None]] = {
        "none": [None] * 4,
        "shared": [SHARED_SEED] * 4,
        "per-worker": [PER_WORKER_SEED_BASE + i for i in range(4)],
    }
    with storage(kind, tmp_path, "pattern") as (url, opener, extra):
        for policy, policy_seeds in seeds.items():
            workers(opener, policy, DEFAULT, policy_seeds)
        before = digest(tmp_path / ("study.db" if kind == "sqlite" else "journal.log"))
        status, out = audit_json(url, "--all-studies", *extra, fresh=True)
        assert digest(tmp_path / ("study.db" if kind == "sqlite" else "journal.log")) == before
        lost = []
        for grid in out["grids"]:
            row = expectations.expected(_compat.OPTUNA_VERSION, "sequential", grid["study"])
            missing, repeated = expected_loss(DEFAULT, evaluated(opener, grid["study"]))
            assert grid["missing"] == missing
            assert [d["params"] for d in grid["duplicated"]] == repeated
            assert (grid["exact"] is False) == (row.outcome == "loses-points"), grid["study"]
            lost.append(not grid["exact"])
        assert status == (1 if any(lost) else 0)
        assert out["warnings"] == []
        lossy = [grid["study"] for grid in out["grids"] if grid["missing"]]
        if lossy:  # from 3.4.0 on
            gridsampler_stops_after_one_enqueued_trial(opener, lossy[0], url)


def gridsampler_stops_after_one_enqueued_trial(opener: Opener, study: str, url: str) -> None:
    """Why the repair runs under RandomSampler: once every grid id is used (here, all 24 by
    the four workers), GridSampler runs one enqueued trial and stops the study
    (optuna/optuna#6073). The rest then run as the printed instructions say."""
    done = run_main("audit", url, "--study", study, "--enqueue-missing", "--yes")
    assert done.returncode == 0, done.stderr
    waiting = len(json.loads(run_main("audit", url, "--study", study, "--json").stdout)[
        "grids"][0]["queued"])  # fmt: skip
    storage = opener()
    try:
        s = optuna.load_study(
            study_name=study, storage=storage, sampler=_compat.grid_sampler(DEFAULT, None)
        )
        still = optuna.trial.TrialState.WAITING
        s.optimize(objective(DEFAULT), n_trials=waiting)
        assert len(s.get_trials(states=(still,))) == waiting - 1
        s.sampler = optuna.samplers.RandomSampler()
        s.optimize(objective(DEFAULT), n_trials=waiting - 1)
    finally:
        _compat.dispose(storage)
    assert run_main("audit", url, "--study", study, "--missing-only").returncode == 0


@pytest.mark.xdist_group("processes")
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_varied_studies_in_one_storage(kind: str, tmp_path: Path) -> None:
    """Two spaces in one study, FAIL, PRUNED and RUNNING trials, enqueued trials, another
    sampler's trials, a study without GridSampler trials, values recorded alike, a grid of 121
    points."""
    big: Space = {"x": list(range(11)), "y": list(range(11))}
    alike: Space = {"x": [0, False, 1], "y": ["a"]}
    with storage(kind, tmp_path, "varied") as (url, opener, _):
        # Two spaces: the first run to the end, the second only half.
        workers(opener, "two-spaces", SMALL, [None])
        # Other names: Optuna refuses other choices for a parameter name it has seen.
        other: Space = {"u": [0, 1], "z": [0.5, 1.5, 2.5]}
        workers(opener, "two-spaces", other, [None], budget=len(SMALL["x"]) * 3 + 3)
        workers(opener, "fail-prune", SMALL, [None], fail=1, prune=2)
        # A worker that died inside its trial leaves it RUNNING.
        optuna.load_study(study_name="fail-prune", storage=opener()).ask()
        s = optuna.create_study(study_name="enqueued", storage=opener())
        s.enqueue_trial({"x": 0, "y": "a"})
        s.enqueue_trial({"x": 3, "y": "c"})
        workers(opener, "enqueued", SMALL, [None], budget=14, n_trials=14)
        workers(opener, "other", SMALL, [None])
        s = optuna.load_study(
            study_name="other", storage=opener(), sampler=optuna.samplers.RandomSampler(seed=0)
        )
        s.optimize(objective(SMALL), n_trials=3)
        s = optuna.create_study(
            study_name="random-only", storage=opener(), sampler=optuna.samplers.RandomSampler()
        )
        s.optimize(objective(SMALL), n_trials=2)
        workers(opener, "alike", alike, [None])
        workers(opener, "big", big, [None])
        audit = in_process(url, None)
        by = {(g.study, tuple(g.space)): g for g in audit.grids}

        first, second = by["two-spaces", ("x", "y")], by["two-spaces", ("u", "z")]
        assert first.exact is True
        assert len(second.missing) == 3
        assert second.duplicated == []

        failing = by["fail-prune", ("x", "y")]
        assert failing.missing == []
        assert failing.duplicated == []
        assert sorted((f.params["x"], f.states[0]) for f in failing.failed_only) == sorted(
            [(1, "FAIL")] * 3 + [(2, "PRUNED")] * 3
        )
        assert audit.running == {"fail-prune": 1}
        assert any(w.startswith("study 'fail-prune' has 1 RUNNING") for w in audit.warnings)

        queued = by["enqueued", ("x", "y")]
        assert queued.counted["enqueued"] == 2
        assert queued.missing == []
        # GridSampler leaves the enqueued trials alone and then covers its whole grid.
        assert sorted(json.dumps(d.params) for d in queued.duplicated) == [
            '{"x": 0, "y": "a"}',
            '{"x": 3, "y": "c"}',
        ]
        assert all(d.trials[0] in (0, 1) for d in queued.duplicated)

        others = by["other", ("x", "y")]
        assert others.counted == {"grid": 12, "enqueued": 0, "other": 3}
        assert sum(len(d.trials) - 1 for d in others.duplicated) == 3

        assert audit.without_grid == ["random-only"]

        same = by["alike", ("x", "y")]
        assert same.exact is None
        assert same.missing == []
        assert same.duplicated == []
        assert same.alike == {"x": [0, False]}
        assert any("'x'" in w and "cannot tell" in w for w in audit.warnings)

        assert by["big", ("x", "y")].points == 121
        assert by["big", ("x", "y")].exact is True

        path = tmp_path / ("study.db" if kind == "sqlite" else "journal.log")
        before = digest(path)
        done = run_cli("audit", url, "--all-studies")
        assert done.returncode == 1, done.stderr
        assert "points lost: 3 never evaluated" in done.stdout
        assert "random-only" in done.stdout
        one_line_error(run_main("audit", url, "--study", "random-only"), "has no GridSampler")
        done = run_main("audit", url, "--study", "alike", "--json")
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert out["exact"] is None
        assert len(out["warnings"]) == 1
        done = run_main("audit", url, "--study", "big", "--enqueue-missing")
        assert done.returncode == 0
        assert done.stdout.startswith("nothing to enqueue")
        assert digest(path) == before


def repair_round_trip(url: str, opener: Opener, extra: list[str], path: Path | None) -> None:
    """A lost-point study: audit, dry run (nothing written), --yes twice (the second adds
    nothing), the printed instructions run as printed, then `audit --missing-only` exits 0."""
    lost_points_study(opener, "lost")
    points = evaluated(opener, "lost")
    missing, repeated = expected_loss(SMALL, points)
    assert missing
    before = digest(path) if path else None
    status, out = audit_json(url, "--study", "lost", *extra)
    assert status == 1
    assert out["grids"][0]["missing"] == missing
    done = run_main("audit", url, "--study", "lost", "--enqueue-missing", *extra)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == len(missing)
    if path:
        assert digest(path) == before
    done = run_main("audit", url, "--study", "lost", "--enqueue-missing", "--yes", *extra)
    assert done.returncode == 0, done.stderr
    again = run_main("audit", url, "--study", "lost", "--enqueue-missing", "--yes", *extra)
    assert again.returncode == 0
    assert again.stdout.startswith("nothing to enqueue")
    code = textwrap.dedent(
        "\n".join(line for line in done.stdout.splitlines() if line.startswith("    "))
    )
    assert f"n_trials={len(missing)}" in code
    assert "RandomSampler" in code
    exec(code, {"objective": objective(SMALL)})  # the user's script, as printed
    status, out = audit_json(url, "--study", "lost", "--missing-only", *extra, fresh=True)
    assert status == 0, out
    grid = out["grids"][0]
    assert grid["missing"] == []
    assert grid["counted"]["enqueued"] == len(missing)
    assert [d["params"] for d in grid["duplicated"]] == repeated
    status, _ = audit_json(url, "--study", "lost", *extra)
    assert status == (1 if repeated else 0)
    assert re.search(r"--missing-only` exits 0", done.stdout)


@pytest.mark.xdist_group("processes")
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_repair_round_trip_embedded(kind: str, tmp_path: Path) -> None:
    with storage(kind, tmp_path, "repair") as (url, opener, extra):
        path = tmp_path / ("study.db" if kind == "sqlite" else "journal.log")
        repair_round_trip(url, opener, extra, path)


@pytest.mark.xdist_group("servers")
@pytest.mark.parametrize("kind", ["postgresql", "mysql", "redis"])
def test_repair_round_trip_on_servers(kind: str, tmp_path: Path) -> None:
    """The same round trip on each server; the database or prefix is removed afterwards."""
    with storage(kind, tmp_path, "repair") as (url, opener, extra):
        repair_round_trip(url, opener, extra, None)
    assert services.leftovers(kind) == []


@pytest.mark.xdist_group("servers")
@pytest.mark.parametrize("kind", ["postgresql", "mysql", "redis"])
def test_an_empty_server_storage_is_bad_input_and_stays_empty(kind: str, tmp_path: Path) -> None:
    """No Optuna tables (or no journal under the prefix): one line, exit 2, nothing made."""
    require_service(kind)
    with services.isolated(kind, "empty", owner=os.getpid()) as spec:
        extra = ["--redis-prefix", spec.namespace] if kind == "redis" else []
        done = run_main("audit", spec.location, "--study", "s", *extra)
        one_line_error(done)
        if kind == "redis":
            assert services.delete_keys(spec.location, spec.namespace) == 0
        else:
            import sqlalchemy

            engine = sqlalchemy.create_engine(spec.location)
            try:
                assert sqlalchemy.inspect(engine).get_table_names() == []
            finally:
                engine.dispose()


def test_bad_input_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    """A URL of no known storage, a missing file, a study that is not there."""
    db = tmp_path / "none.db"
    one_line_error(run_cli("audit", "foo://x/y", "--study", "s"), "unsupported storage scheme")
    for url in (f"sqlite:///{db}", f"journal:{tmp_path / 'none.log'}"):
        one_line_error(run_main("audit", url, "--study", "s"), "there is no file")
    assert list(tmp_path.iterdir()) == []
    url = f"sqlite:///{db}"
    optuna.create_study(study_name="there", storage=url)
    before = digest(db)
    done = run_main("audit", url, "--study", "not-there")
    one_line_error(done, "no study 'not-there'")
    assert "(studies: 'there')" in done.stderr
    one_line_error(run_main("audit", url, "--study", "there"), "has no GridSampler trials")
    assert digest(db) == before
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database")
    one_line_error(run_main("audit", f"sqlite:///{junk}", "--all-studies"), "not a database")
    assert junk.read_bytes() == b"not a database"
    assert sorted(os.listdir(tmp_path)) == ["junk.db", "none.db"]
