"""Sessions: `nox -s repro` measures every pinned Optuna and writes the report;
`nox -s lint tests` is the test command CI runs."""

from __future__ import annotations

import json
import os

import nox

# The pinned Optuna versions; "latest" resolves to the newest release at install time and the
# results record the version actually installed.
VERSIONS = ("3.2.0", "3.6.1", "latest")

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "tests"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
SERVICE_DEPS: list[str] = EXTRAS["services"]
TEST_DEPS: list[str] = EXTRAS["test"]
LINT_DEPS: list[str] = EXTRAS["lint"]
TIMELINE_DEPS: list[str] = EXTRAS["timeline"]
CORPUS_DEPS: list[str] = EXTRAS["corpus"]
SCALE_DEPS: list[str] = EXTRAS["scale"]


def install_optuna(session: nox.Session, optuna: str, *extra: str) -> None:
    """Install one Optuna release (or the newest) and what else the session needs. The harness
    runs from the checkout (`python -m repro` and pytest put it on sys.path), so a warm run
    installs nothing."""
    if optuna == "latest":
        session.install("--upgrade", "optuna", *SERVICE_DEPS, *extra)
    else:
        session.install(f"optuna=={optuna}", *SERVICE_DEPS, *extra)
    compile_bytecode(session)


# Compiles the environment's packages and the harness to bytecode in place (quiet; a file that
# does not compile, such as a template shipped as .py, is left to fail where it is imported).
COMPILE = (
    "import compileall, sysconfig\n"
    "for path in (sysconfig.get_path('purelib'), 'repro', 'tests'):\n"
    "    compileall.compile_dir(path, quiet=2, workers=0)"
)


def compile_bytecode(session: nox.Session) -> None:
    """Where PYTHONDONTWRITEBYTECODE is set (as on this project's CI machine) and uv does not
    compile at install, every interpreter would compile Optuna, SQLAlchemy and the harness from
    source at each start, about twice the time `import optuna` takes from compiled files, paid
    again by each test process and each `python -m repro` a test starts. Compile once per
    session instead; where Python writes its own caches there is nothing to do."""
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        session.run("python", "-c", COMPILE, silent=True)


def show_versions(session: nox.Session) -> None:
    session.run(
        "python",
        "-c",
        "import sys, optuna, numpy, sqlalchemy; print('python', sys.version.split()[0], "
        "'| optuna', optuna.__version__, '| numpy', numpy.__version__, '| sqlalchemy', "
        "sqlalchemy.__version__)",
    )


@nox.session
@nox.parametrize("optuna", VERSIONS, ids=list(VERSIONS))
def repro(session: nox.Session, optuna: str) -> None:
    """Measure one Optuna version: its #5489 verdict first, the whole matrix after every verdict."""
    install_optuna(session, optuna)
    # `repro run` prints the interpreter and library versions itself. First the #5489 pattern
    # alone (one run, a few seconds; nothing if the options after -- leave it out); exit 1 (the
    # run recorded an error) is measured and kept, and the matrix runs anyway. The matrix
    # sessions are queued behind every version's verdict, so all verdicts come first.
    session.run(
        "python", "-m", "repro", "run", "--verdict", "-q", *session.posargs, success_codes=[0, 1]
    )
    python = os.path.join(session.bin, "python")
    session.notify(f"matrix({optuna})", posargs=[python, *session.posargs])


@nox.session(venv_backend="none", default=False)
@nox.parametrize("optuna", VERSIONS, ids=list(VERSIONS))
def matrix(session: nox.Session, optuna: str) -> None:
    """The whole matrix of one version in the environment `repro` made (queued by `repro`)."""
    if not session.posargs:
        session.error(f'queued by `nox -s "repro({optuna})"`, which names its environment')
    python, *options = session.posargs
    session.run(python, "-m", "repro", "run", *options, external=True)
    # The upstream bundle quotes the minimal reproduction's output on the newest release, and
    # the report session renders the bundle from results/: record it on this release, so that
    # the tree stays consistent when "latest" has moved to a new release.
    if optuna == "latest" and "--out" not in options:
        session.run(python, "-m", "repro.upstream", "record-script", external=True)
    # The report renders the folder this run wrote into, `results/` unless `--out` said.
    session.notify("report", posargs=results_option(options))


def results_option(options: list[str]) -> list[str]:
    """``--results D`` for the report when ``options`` (a `repro run` command line) has
    ``--out D`` or ``--out=D``; nothing when the run wrote into the default ``results/``."""
    for i, option in enumerate(options):
        if option == "--out" and i + 1 < len(options):
            return ["--results", options[i + 1]]
        if option.startswith("--out="):
            return ["--results", option.split("=", 1)[1]]
    return []


@nox.session
@nox.parametrize("optuna", VERSIONS, ids=list(VERSIONS))
def corpus(session: nox.Session, optuna: str) -> None:
    """Replay results/corpus.json on one Optuna version, then shrink what failed."""
    install_optuna(session, optuna, *CORPUS_DEPS)
    show_versions(session)
    # Options go to `replay`, e.g. `-- --cases 30 -j 1`; see `python -m repro.corpus replay -h`.
    session.run("python", "-m", "repro.corpus", "replay", *session.posargs)
    session.run("python", "-m", "repro.corpus", "shrink")
    session.notify("report", posargs=[])


@nox.session
def corpus_generate(session: nox.Session) -> None:
    """Draw a new results/corpus.json with Hypothesis (only when asked; e.g. -- --cases 300)."""
    session.install(*CORPUS_DEPS)
    session.run(
        "python",
        "-c",
        "import sys, hypothesis; print('python', sys.version.split()[0], "
        "'| hypothesis', hypothesis.__version__)",
    )
    session.run("python", "-m", "repro.corpus", "generate", *session.posargs)


@nox.session
def report(session: nox.Session) -> None:
    """Render the report, its chart, the README block and the upstream bundle from the JSON."""
    session.install("matplotlib")
    compile_bytecode(session)
    session.run("python", "-m", "repro", "report", *session.posargs)
    # results/upstream/ ships results/: rendered again from the JSON there, so that the tree is
    # consistent after any run. A run into another folder (`--results D`) leaves it alone.
    if "--results" not in session.posargs:
        session.run("python", "-m", "repro.upstream", "write")


@nox.session
@nox.parametrize("optuna", VERSIONS, ids=list(VERSIONS))
def tests(session: nox.Session, optuna: str) -> None:
    """Run the test suite against one Optuna version (the regression guard)."""
    # The gRPC proxy's tests need the scale extra, on the newest release only (the proxy is
    # there from 4.2.0; the older sessions check its "not applicable" line).
    install_optuna(session, optuna, *TEST_DEPS, *(SCALE_DEPS if optuna == "latest" else ()))
    show_versions(session)
    # --dist loadgroup comes from pyproject.toml's pytest options, as for any pytest run.
    session.run(
        "pytest",
        "-n",
        "auto",
        *(session.posargs or ["tests"]),
        env={"REPRO_PINNED_OPTUNA": optuna},
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy over repro, tests and this noxfile."""
    session.install(*LINT_DEPS, *TEST_DEPS, *SERVICE_DEPS, *TIMELINE_DEPS, "optuna", "-e", ".")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session(default=False)
def timeline(session: nox.Session) -> None:
    """Measure Optuna releases in a range, and -- --target builds; write results/timeline.*"""
    # This session's own environment only lists releases, resolves targets (pip downloads) and
    # draws the plot; each release and target gets its own cached environment under
    # .nox/timeline-envs (see repro/timeline/envs.py).
    session.install(*TIMELINE_DEPS)
    session.run("python", "-m", "repro.timeline", *session.posargs)


@nox.session(default=False)
def upstream(session: nox.Session) -> None:
    """Write results/upstream/ (the Optuna issue, attachments, pull request, #5489 comment)."""
    # Standard library only, and no Optuna: the bundle is rendered from the JSON files alone.
    session.run("python", "-c", "import sys; print('python', sys.version.split()[0])")
    # Options go to `write`, e.g. `-- --new-issue N --out /tmp/upstream` once the issue is filed.
    session.run("python", "-m", "repro.upstream", "write", *session.posargs)


@nox.session(default=False)
def upstream_record(session: nox.Session) -> None:
    """Run the minimal reproduction on the newest Optuna and record its output for the issue."""
    install_optuna(session, "latest")
    show_versions(session)
    session.run("python", "-m", "repro.upstream", "record-script", *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Time the harness against a plain script per storage at 4 and 64 workers (bench.json)."""
    install_optuna(session, "latest")
    show_versions(session)
    # Options go to the bench, e.g. `-- -r 5 --storage sqlite -w 4`; see `python -m repro.bench -h`.
    session.run("python", "-m", "repro.bench", *session.posargs)


@nox.session(default=False)
@nox.parametrize("optuna", VERSIONS, ids=list(VERSIONS))
def scale(session: nox.Session, optuna: str) -> None:
    """Sweep 2 to 64 workers on PostgreSQL, the gRPC proxy and Dask; write results/scale.json."""
    # The proxy exists from Optuna 4.2.0 and optuna-integration needs a new Optuna: older
    # releases get distributed alone (the Dask launcher; their proxy cells are "not applicable").
    install_optuna(session, optuna, *(SCALE_DEPS if optuna == "latest" else ["distributed"]))
    show_versions(session)
    # Options go to the sweep, e.g. `-- --workers 2 4 -r 2`; see `python -m repro.scale sweep -h`.
    session.run("python", "-m", "repro.scale", "sweep", *session.posargs)
    # The report renders the file the sweep wrote, results/scale.json unless `--out` said.
    session.notify("scale_report", posargs=results_option(list(session.posargs)))


@nox.session(default=False)
def scale_report(session: nox.Session) -> None:
    """Render results/scale.md and results/scale.png from results/scale.json (after `scale`)."""
    session.install("matplotlib")
    session.run("python", "-m", "repro.scale.render", *session.posargs)


# What each `target` command runs in the target's environment, and what it needs there.
TARGET_COMMANDS = {
    "repro": (["python", "-m", "repro", "run"], []),
    "corpus": (["python", "-m", "repro.corpus", "replay"], CORPUS_DEPS),
    "tests": (["pytest", "-n", "auto", "--dist", "loadgroup"], TEST_DEPS),
    # What upstream's samplers tests import beyond Optuna (its `test` group less torch, kaleido,
    # plotly and moto: no test of the selection needs them but test_gp.py, which needs torch).
    "upstream-tests": (
        ["python", "-m", "repro.upstream_tests"],
        ["pytest", "pytest-xdist", "fakeredis[lua]", "scipy", "cmaes", "grpcio", "protobuf"],
    ),
}


@nox.session(default=False)
def target(session: nox.Session) -> None:
    """Measure any Optuna build: -- SPEC [repro|corpus|tests|upstream-tests] [ARGS] (see README)."""
    if not session.posargs:
        session.error("give a target: nox -s target -- SPEC [COMMAND [ARGS...]]")
    spec, *rest = session.posargs
    command, *args = rest or ["repro"]
    if command not in TARGET_COMMANDS:
        session.error(f"unknown command {command!r}; choose one of {', '.join(TARGET_COMMANDS)}")
    run, deps = TARGET_COMMANDS[command]
    session.install("pip", *SERVICE_DEPS, *deps)
    plan_path = f"{session.create_tmp()}/plan.json"
    # Resolve, download or build (cached under .nox/target-cache); a bad target exits 2 here.
    session.run("python", "-m", "repro.targets", "prepare", spec, "--plan", plan_path)
    with open(plan_path, encoding="utf-8") as handle:
        plan = json.load(handle)
    session.install(*plan["install"])
    # Several builds report the same version: replace Optuna itself, keep its dependencies.
    session.install("--force-reinstall", "--no-deps", *plan["install"])
    compile_bytecode(session)
    stamped = session.run("python", "-m", "repro.targets", "stamp", plan_path, silent=True)
    provenance = str(stamped).strip().splitlines()[-1]
    show_versions(session)
    label = plan["provenance"]["label"]
    # A target's results go beside its provenance, never over a release's results/optuna-*.json.
    out = {
        "repro": ["--out", f"results/target-{label}"],
        "corpus": ["--results", f"results/target-{label}"],
    }.get(command, [])
    defaults = {"tests": ["tests"]}.get(command, [])
    session.run(*run, *out, *(args or defaults), env={"REPRO_TARGET": provenance})


@nox.session(default=False)
def rolling(session: nox.Session) -> None:
    """Workers of two Optuna releases share one study; write results/rolling.json."""
    # Each release runs in its own cached environment under .nox/timeline-envs
    # (repro/timeline/envs.py, shared with the timeline); this one only drives them: pip lists
    # the releases for "latest", SQLAlchemy and the drivers make and drop the server databases.
    session.install("pip>=23", "sqlalchemy>=2", *SERVICE_DEPS)
    session.run("python", "--version")
    session.run("python", "-m", "repro.rolling", "run", *session.posargs)
