"""Bad input is found before anything runs, with one line and exit 2; ids keep shapes apart;
`collect` creates nothing it did not find; errors name their cause (issue 10, items 4, 5, 8,
9 and 10). Each test reproduces a defect of the earlier code: it fails there and passes here."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from repro import _compat, runner, services
from repro.cli import DEFAULT_GRID
from repro.fork import call
from repro.scenarios import SERVER_STORAGES, Scenario, space_digest, validate_space
from repro.storages import StorageError, StorageSpec, connect_args, embedded

from .helpers import require_service, run_cli

DEAD_POSTGRES_URL = "postgresql+psycopg2://u:pw@127.0.0.1:1/x"  # a closed loopback port
# Runs that the old code would start are kept tiny, so that a test fails fast there too.
CHEAP_RUN = ("-s", "sequential-none-journal-*", "-r", "1", "-q", "--timeout", "5")


def _one_error_line(done: object, *needles: str) -> None:
    assert done.returncode == 2, done.stderr  # type: ignore[attr-defined]
    stderr: str = done.stderr  # type: ignore[attr-defined]
    assert stderr.count("\n") == 1, stderr
    for needle in needles:
        assert needle in stderr, stderr


@pytest.fixture
def unwritable_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory this process cannot create files in: a read-only one, or (as root, who
    writes anywhere) /sys, which refuses new files even to root."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        for candidate in (locked, Path("/sys")):
            try:
                with tempfile.TemporaryFile(dir=candidate):
                    pass
            except OSError:
                yield candidate
                return
        pytest.skip("found no directory this process cannot write in")
    finally:
        locked.chmod(0o700)


# Item 4: --out is checked before anything runs.


@pytest.mark.parametrize("where", ["a file", "below a file", "unwritable"])
def test_unusable_out_is_refused_before_any_run(
    tmp_path: Path, request: pytest.FixtureRequest, where: str
) -> None:
    """The earlier code ran every scenario and then lost them all in a traceback."""
    afile = tmp_path / "afile"
    afile.write_text("")
    if where == "unwritable":
        out = request.getfixturevalue("unwritable_dir") / "results"
    else:
        out = afile if where == "a file" else afile / "sub"
    done = run_cli("run", "--out", str(out), *CHEAP_RUN)
    _one_error_line(done, f"python -m repro: error: --out {out}")
    assert afile.read_text() == ""


# Item 5: ids name the shape, so results of different shapes never replace each other.


@pytest.mark.xdist_group("processes")
def test_results_of_different_shapes_are_kept_apart(tmp_path: Path) -> None:
    """A 4-trial budget used to replace the default run of the same scenario, and a custom
    space took an id that every other custom space took too (tests/test_scenarios.py checks
    that two spaces get two ids)."""
    base = ("run", "--out", str(tmp_path), "-s", "threads-none-journal-*", "-r", "1", "-q")
    space = '{"x": [0, 1, 2, 3]}'
    for extra in ([], ["--trials-per-worker", "4"], ["--space", space]):
        done = run_cli(*base, *extra)
        assert done.returncode == 0, done.stderr
    data = json.loads((tmp_path / f"optuna-{_compat.OPTUNA_VERSION}.json").read_text())
    assert sorted(r["scenario"] for r in data["runs"]) == [
        "threads-none-journal-w4-custom-" + space_digest(validate_space(json.loads(space))),
        "threads-none-journal-w4-g24",
        "threads-none-journal-w4-g24-t4",
    ]
    default = next(r for r in data["runs"] if r["scenario"] == "threads-none-journal-w4-g24")
    assert default["trials_per_worker"] == 6


# Item 8: bounds, each named in a one-line error.

GRID_65_BY_64 = json.dumps({"x": list(range(65)), "y": list(range(64))})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--space", GRID_65_BY_64], "4160 grid points; the bound is 4096"),
        (["--workers", "65"], "65 is above the bound of 64 workers"),
        (["--workers", "25"], "--workers 25 is more than the 24 grid points"),
        (["--space", '{"x": [0, 1]}', "--workers", "3"], "--workers 3 is more than the 2 grid"),
        (["--timeout", "0"], "argument --timeout: 0 must be a finite number of seconds above 0"),
        (["--timeout", "-5"], "argument --timeout: -5 must be a finite number"),
        (["--timeout", "nan"], "argument --timeout: nan must be a finite number"),
        (["--space", '{"x": [1, 2, 1]}'], "'x' has 1 and 1, which Optuna records as one choice"),
        (["--space", '{"x": [1, true]}'], "'x' has 1 and True, which Optuna records as one"),
        (["--space", '{"x": [0.0, -0.0]}'], "'x' has 0.0 and -0.0, which Optuna records"),
    ],
)
def test_out_of_bounds_input_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """The earlier code ran all of these (the timeouts and duplicates to a misleading result,
    a 10^7-point grid to MemoryError after 158 s)."""
    began = time.monotonic()
    done = run_cli("run", "--out", str(tmp_path), *CHEAP_RUN, *args)
    _one_error_line(done, message)
    assert not list(tmp_path.iterdir())
    assert time.monotonic() - began < 60  # refused at once, no run started


def test_worker_barrier_timeout_must_be_positive() -> None:
    done = run_cli(
        "worker",
        "--storage",
        "sqlite:///unused.db",
        "--study",
        "s",
        "--scenario",
        "concurrent-none-sqlite-w4-g24",
        "--worker-index",
        "0",
        "--barrier-timeout",
        "0",
    )
    _one_error_line(done, "argument --barrier-timeout: 0 must be a finite number")


@pytest.mark.xdist_group("processes")
@pytest.mark.parametrize("mode", ["sequential", "concurrent"])
def test_no_worker_is_forked_after_the_run_deadline(tmp_path: Path, mode: str) -> None:
    """The earlier launcher forked every remaining worker after the deadline only to kill it
    (--workers 10000 --timeout 15 took 63 s); now a worker whose turn comes after the deadline
    is recorded as not started and no process is made for it."""
    scenario = Scenario(mode=mode, seed_policy="none", storage="journal")  # type: ignore[arg-type]
    spec = embedded("journal", str(tmp_path))
    plans = runner.worker_plans(scenario, spec, "s", barrier_timeout=5.0)
    results = runner._launch(scenario, plans, deadline=time.monotonic() - 1)
    assert [r.pid for r in results] == [-1] * 4
    assert all("not started: the run timed out before its turn" in (r.error or "") for r in results)
    assert not list(tmp_path.iterdir())


# Item 9: `collect` on a study that is not there, and one --worker-index used twice.


def _digest_tree(directory: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file()
    }


def _make_study(url: str, name: str) -> None:
    _compat.quiet_optuna()
    storage = _compat.sqlite_storage(url)
    optuna.create_study(study_name=name, storage=storage)
    _compat.dispose(storage)


@pytest.mark.xdist_group("processes")
@pytest.mark.parametrize("case", ["no sqlite file", "no journal file", "empty file", "other"])
def test_collect_of_a_missing_study_is_one_line_and_creates_nothing(
    tmp_path: Path, case: str
) -> None:
    """The earlier code raised a KeyError traceback and created the file (and its tables)."""
    if case == "no journal file":
        storage = str(tmp_path / "journal.log")
    else:
        storage = f"sqlite:///{tmp_path / 'study.db'}"
    if case == "empty file":
        (tmp_path / "study.db").write_bytes(b"")
    if case == "other":
        call(_make_study, storage, "another", timeout=60)
    before = _digest_tree(tmp_path)
    done = run_cli("collect", "--storage", storage, "--study", "missing")
    _one_error_line(done, f"python -m repro: error: no study 'missing' in {storage}")
    assert _digest_tree(tmp_path) == before


def _worker(storage: str, index: int) -> None:
    done = run_cli(
        "worker",
        "--storage",
        storage,
        "--study",
        "by-hand",
        "--scenario",
        "sequential-none-sqlite-w4-g24",
        "--worker-index",
        str(index),
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.xdist_group("processes")
def test_collect_flags_a_worker_index_used_by_two_processes(tmp_path: Path) -> None:
    """Index 0 started twice is flagged; index 1, started once, is not."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    for index in (0, 1, 0):
        _worker(storage, index)
    done = run_cli("collect", "--storage", storage, "--study", "by-hand")
    assert done.returncode == 0, done.stderr
    reused = json.loads(done.stdout)["reused_worker_indexes"]
    assert list(reused) == ["0"]
    assert len(reused["0"]) == 2
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning")]
    assert warnings == [
        f"warning: worker index 0 was used by 2 processes ({', '.join(reused['0'])}); start "
        "each worker with its own --worker-index"
    ]


def _left_on_server(spec: StorageSpec) -> list[str]:
    """Optuna's tables in the run's database, or the keys under its Redis prefix."""
    if spec.kind == "redis":
        import redis

        client = redis.Redis.from_url(spec.location, socket_connect_timeout=5, socket_timeout=5)
        return sorted(k.decode() for k in client.scan_iter(match=f"{spec.namespace}*"))
    import sqlalchemy

    engine = sqlalchemy.create_engine(spec.location)
    try:
        return sorted(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.xdist_group("servers")
@pytest.mark.parametrize("kind", SERVER_STORAGES)
def test_collect_of_a_missing_study_creates_nothing_on_a_server(kind: str) -> None:
    """The earlier code raised a KeyError traceback, and created Optuna's tables in the
    database it was pointed at. On Redis, `collect` looks under the study's own prefix, the one
    `services.isolated` gives this study too."""
    require_service(kind)
    with services.isolated(kind, "collect-missing") as spec:
        done = run_cli("collect", "--storage", spec.location, "--study", "collect-missing")
        _one_error_line(done, "python -m repro: error: no study 'collect-missing' in ")
        assert call(_left_on_server, spec, timeout=30) == []


# Item 10: messages.


@pytest.mark.xdist_group("processes")
def test_a_database_outage_is_recorded_as_the_drivers_error() -> None:
    """The earlier record ended in SQLAlchemy's "Background on this error at" link."""
    scenario = Scenario(mode="sequential", seed_policy="none", storage="postgresql")
    dead = StorageSpec("postgresql", DEAD_POSTGRES_URL)
    record = runner.run(scenario, 0, storage=dead, timeout=30)
    assert record.error is not None
    last = record.error.strip().splitlines()[-1]
    assert "OperationalError: connection to server at" in last
    assert "Connection refused" in last
    assert "Background on this error" not in last
    assert "pw" not in last


@pytest.mark.xdist_group("processes")
def test_a_server_that_refuses_a_new_database_names_the_drivers_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(services.ENV_VARS["postgresql"], DEAD_POSTGRES_URL)
    with pytest.raises(StorageError) as caught, services.isolated("postgresql", "s"):
        pytest.fail("a database was created on a closed port")
    assert "Connection refused" in str(caught.value)
    assert "Background on this error" not in str(caught.value)


def test_help_derives_the_default_grid_and_says_when_a_server_is_skipped() -> None:
    done = run_cli("run", "--help")
    text = " ".join(done.stdout.split())
    assert DEFAULT_GRID == "6 x 4"
    assert f"(default: {DEFAULT_GRID} grid)" in text
    assert "skipped with a line saying so, except in CI" in text


@pytest.mark.parametrize(
    ("url", "tls_off"),
    [
        ("mysql+pymysql://root@127.0.0.1:3306/test", True),
        ("mysql+pymysql://root@127.8.9.10/test", True),
        ("mysql+pymysql://root@[::1]:3306/test", True),
        ("mysql+pymysql://root@localhost/test", True),
        ("mysql+pymysql:///test", True),
        # Not loopback: the driver decides (this test parses URLs; it connects nowhere).
        ("mysql+pymysql://root@db.example.org/test", False),
        ("mysql+pymysql://root@10.0.0.5/test", False),
        # Any TLS option in the URL keeps the driver's behaviour, loopback or not.
        ("mysql+pymysql://root@127.0.0.1/test?ssl_ca=/etc/ca.pem", False),
        ("mysql+pymysql://root@127.0.0.1/test?ssl_verify_cert=true", False),
        # Other drivers: only the connect timeout.
        ("postgresql+psycopg2://postgres@127.0.0.1:5432/test", False),
    ],
)
def test_connect_args_turn_pymysql_tls_off_on_loopback_only(url: str, tls_off: bool) -> None:
    """PyMySQL builds a TLS context for every connection; the harness skips it where TLS
    protects nothing and the URL asks for none."""
    expected: dict[str, object] = {"connect_timeout": 10}
    if tls_off:
        expected["ssl_disabled"] = True
    assert connect_args(url) == expected
