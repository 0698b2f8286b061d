"""Targets (repro/targets.py): spec parsing, provenance records, one-line errors with exit 2
that leave earlier files alone, and the candidate fix (patches/grid-shared-order.patch)
against the release it patches."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from repro import targets, upstream_tests
from repro.jsonfile import load_json, write_json
from repro.upstream import alternatives, upstream_docs

from .helpers import ROOT

PATCH = ROOT / "patches" / "grid-shared-order.patch"
FIX = "5.0.0+grid-shared-order"
FIXED = "+grid-shared-order"  # the label's tail of the candidate fix built on any release
SHA = "0123456789abcdef0123456789abcdef01234567"


def fake_tree(root: Path) -> Path:
    """The files that make a directory an Optuna source tree, and nothing else."""
    (root / "optuna" / "samplers").mkdir(parents=True)
    (root / "optuna" / "__init__.py").write_text("__version__ = '0.0.0'\n")
    (root / "optuna" / "samplers" / "_grid.py").write_text("x = 1\n")
    (root / "pyproject.toml").write_text("[project]\nname = 'optuna'\n")
    return root


def test_release_latest_and_labels() -> None:
    """A release number, `latest`, and `LABEL=` naming any spec."""
    assert targets.parse("5.0.0") == targets.Spec("5.0.0", "release", "5.0.0", release="5.0.0")
    assert targets.parse("latest").kind == "latest"
    assert targets.parse("mine=5.0.0").label == "mine"


def test_release_with_a_patch_is_labelled_by_release_and_patch_name() -> None:
    spec = targets.parse(f"5.0.0+{PATCH.relative_to(ROOT)}")
    assert (spec.kind, spec.label, spec.release, spec.patches) == (
        "patched",
        FIX,
        "5.0.0",
        (PATCH,),
    )


def test_source_tree_file_and_direct_reference(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "optuna-dev")
    assert targets.parse(str(tree)) == targets.Spec(
        str(tree), "source", "source-optuna-dev", path=tree
    )
    wheel = tmp_path / "optuna-5.1.0-py3-none-any.whl"
    wheel.write_bytes(b"not really a wheel")
    assert targets.parse(str(wheel)).label == "optuna-5.1.0-py3-none-any"
    direct = targets.parse(f"optuna @ git+https://github.com/optuna/optuna@{SHA}")
    assert (direct.kind, direct.label) == ("direct", f"git-{SHA[:12]}")
    assert direct.requirement == f"optuna @ git+https://github.com/optuna/optuna@{SHA}"
    head = targets.parse("optuna@git+https://github.com/optuna/optuna")
    assert head.label == "direct-head"
    # The user in an ssh URL is not a ref; a local repository is a git URL like any other.
    ssh = targets.parse("optuna @ git+ssh://git@github.com/optuna/optuna.git")
    assert ssh.label == "direct-head"
    local = targets.parse(f"optuna @ git+file://{tmp_path}/repo@{SHA}")
    assert local.label == f"git-{SHA[:12]}"
    assert targets.split_git("x", f"git+file://{tmp_path}/repo@main#egg=optuna") == (
        f"file://{tmp_path}/repo",
        "main",
    )


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("", "empty"),
        ("5.0.0+patches/no-such.patch", "no patch file patches/no-such.patch"),
        ("tests", "is not an Optuna source tree"),
        ("no-such-optuna-1.0.whl", "no such file"),
        ("optuna @", "'optuna @ URL'"),
        ("optuna @ git+ftp://example.org/optuna", "a git URL reads git+https://"),
        ("what is this", "not a release number"),
    ],
)
def test_bad_specs_are_refused_naming_the_target(spec: str, says: str) -> None:
    with pytest.raises(targets.TargetError, match="target ") as error:
        targets.parse(spec)
    assert says in str(error.value)
    assert repr(spec) in str(error.value)


def test_provenance_round_trips_through_json() -> None:
    record = targets.Provenance(
        label=FIX,
        spec="5.0.0+patches/grid-shared-order.patch",
        kind="patched",
        source="package index sdist optuna-5.0.0.tar.gz, patched, built locally",
        optuna_version="5.0.0",
        sha256="ab" * 32,
        patches=[targets.PatchRecord("patches/grid-shared-order.patch", "cd" * 32)],
    )
    assert targets.Provenance.from_json(json.loads(json.dumps(record.to_json()))) == record


def test_the_patch_is_recorded_with_its_sha256() -> None:
    spec = targets.parse(f"5.0.0+{PATCH}")
    digest = hashlib.sha256(PATCH.read_bytes()).hexdigest()
    assert targets.sha256_of(spec.patches[0]) == digest


def test_a_patch_that_does_not_apply_leaves_the_tree_alone(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "optuna-5.0.0")
    before = (tree / "optuna" / "samplers" / "_grid.py").read_text()
    spec = targets.parse(f"5.0.0+{PATCH}")
    with pytest.raises(targets.TargetError, match=r"applying grid-shared-order.patch.*failed"):
        targets.apply_patches(spec, tree)
    assert (tree / "optuna" / "samplers" / "_grid.py").read_text() == before


def test_a_tree_that_does_not_build_is_one_line(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "optuna-5.0.0")
    (tree / "pyproject.toml").write_text("[project\nname = ")  # not TOML
    spec = targets.parse(str(tree))
    with pytest.raises(targets.TargetError, match=r"building optuna-5.0.0 failed") as error:
        targets.build_wheel(spec, tree, tmp_path / "out")
    assert "\n" not in str(error.value)


def prepare_cli(
    spec: str, plan: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "repro.targets", "prepare", spec, "--plan", str(plan)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("spec", "env", "says"),
    [
        ("tests", {}, "is not an Optuna source tree"),
        ("5.0.0+patches/missing.patch", {}, "no patch file"),
        # A closed loopback port as the index: pip fails at once, as for an unknown release.
        (
            "99.0.0",
            {"PIP_INDEX_URL": "http://127.0.0.1:9/simple/", "PIP_RETRIES": "0"},
            "downloading optuna==99.0.0 failed",
        ),
        (
            "optuna @ git+file:///no/such/repository@main",
            {},
            # git's reason, not the advice it prints after it.
            "reaching the git repository file:///no/such/repository failed: fatal: "
            "'/no/such/repository' does not appear to be a git repository",
        ),
    ],
)
def test_cli_bad_target_is_one_line_exit_2_and_keeps_the_old_plan(
    tmp_path: Path, spec: str, env: dict[str, str], says: str
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text("earlier plan\n")
    done = prepare_cli(spec, plan, env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"python -m repro.targets: error: target {spec!r}: ")
    assert says in lines[0]
    assert plan.read_text() == "earlier plan\n"


def test_active_is_empty_outside_a_target_run_and_reads_the_stamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(targets.ENV_VAR, raising=False)
    assert targets.active() == {}
    record = targets.Provenance(FIX, "x", "patched", "y", optuna_version="5.0.0")
    path = tmp_path / "target.json"
    write_json(path, {"provenance": record.to_json(), "tests_from": None}, schema=1)
    monkeypatch.setenv(targets.ENV_VAR, str(path))
    assert targets.active() == record.to_json()


def test_junit_outcomes_per_test(tmp_path: Path) -> None:
    """Ids as pytest prints them: a module's test, a class's test (the module is the longest
    dotted prefix that is a file), a module that failed to collect; with each message."""
    (tmp_path / "tests" / "samplers_tests").mkdir(parents=True)
    (tmp_path / "tests" / "samplers_tests" / "test_samplers.py").write_text("")
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.samplers_tests.test_grid" name="test_nan"/>'
        '<testcase classname="tests.samplers_tests.test_grid" name="test_x">'
        '<failure message="boom&#10;more"/></testcase>'
        '<testcase classname="tests.samplers_tests.test_samplers.TestBasic" name="test_y[a]"/>'
        '<testcase classname="" name="tests.samplers_tests.test_gp">'
        '<error message="collection failure"/></testcase>'
        "</testsuite></testsuites>"
    )
    outcomes, messages = upstream_tests.outcomes_from_junit(junit, tmp_path)
    assert outcomes == {
        "tests/samplers_tests/test_grid.py::test_nan": "passed",
        "tests/samplers_tests/test_grid.py::test_x": "failed",
        "tests/samplers_tests/test_samplers.py::TestBasic::test_y[a]": "passed",
        "tests/samplers_tests/test_gp.py::(collection)": "error",
    }
    assert messages == {
        "tests/samplers_tests/test_grid.py::test_x": "boom",
        "tests/samplers_tests/test_gp.py::(collection)": "collection failure",
    }


def test_selection_is_the_samplers_tests_and_every_file_naming_grid_sampler(
    tmp_path: Path,
) -> None:
    for path, text in (
        ("tests/samplers_tests/test_grid.py", "GridSampler"),
        ("tests/pruners_tests/test_hyperband.py", "optuna.samplers.GridSampler("),
        ("tests/study_tests/test_study.py", "RandomSampler"),
    ):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    assert upstream_tests.select(tmp_path) == [
        "tests/samplers_tests",
        "tests/pruners_tests/test_hyperband.py",
    ]


def test_a_prs_patch_splits_per_file_and_its_docs_are_left_out_of_an_sdist(
    tmp_path: Path,
) -> None:
    """Both patches change the code, upstream's test and the documentation page; an sdist has
    no docs/, so a build applies the other files and names the ones it left out."""
    for name in ("grid-shared-order.patch", "grid-study-order.patch"):
        text = (ROOT / "patches" / name).read_text(encoding="utf-8")
        assert [path for path, _ in targets.file_sections(text)] == [
            "docs/source/reference/samplers/index.rst",
            "optuna/samplers/_grid.py",
            "tests/samplers_tests/test_grid.py",
        ]
    tree = tmp_path / "optuna-1.0.0"
    (tree / "optuna").mkdir(parents=True)
    (tree / "optuna" / "a.py").write_text("a = 1\n")
    patch = tmp_path / "two.patch"
    patch.write_text(
        "Why.\n\n--- a/docs/x.rst\n+++ b/docs/x.rst\n@@ -1 +1 @@\n-old\n+new\n"
        "--- a/optuna/a.py\n+++ b/optuna/a.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n"
    )
    spec = targets.Spec(str(patch), "patched", "x", release="1.0.0", patches=(patch,))
    assert targets.apply_patches(spec, tree) == ["docs/x.rst"]
    assert (tree / "optuna" / "a.py").read_text() == "a = 2\n"
    (tree / "optuna").rename(tree / "elsewhere")
    with pytest.raises(targets.TargetError, match="changes no file"):
        targets.apply_patches(spec, tree)


def test_both_patches_apply_to_the_installed_release(tmp_path: Path) -> None:
    """The code section of each patch applies to the _grid.py that the installed release ships,
    for the releases the patches are measured on (no download: the installed wheel's file; its
    tests and docs are not in a wheel and are left out)."""
    optuna = pytest.importorskip("optuna")
    if optuna.__version__ not in upstream_docs.CAUSES:
        pytest.skip(f"Optuna {optuna.__version__} installed; the patches are for later releases")
    if targets.active().get("patches"):
        pytest.skip("the installed build is a patched one: its _grid.py is the patch's already")
    for name in ("grid-shared-order.patch", "grid-study-order.patch"):
        tree = tmp_path / name / f"optuna-{optuna.__version__}"
        (tree / "optuna" / "samplers").mkdir(parents=True)
        shipped = Path(optuna.__file__).parent / "samplers" / "_grid.py"
        (tree / "optuna" / "samplers" / "_grid.py").write_bytes(shipped.read_bytes())
        patch = ROOT / "patches" / name
        release = optuna.__version__
        spec = targets.Spec(
            f"{release}+{patch}", "patched", name, release=release, patches=(patch,)
        )
        skipped = targets.apply_patches(spec, tree)
        assert skipped == [
            "docs/source/reference/samplers/index.rst",
            "tests/samplers_tests/test_grid.py",
        ]
        assert (tree / "optuna" / "samplers" / "_grid.py").read_bytes() != shipped.read_bytes()


def test_upstream_test_results_are_whole_and_every_difference_is_a_test_the_patch_adds() -> None:
    """Every run counts each test once and names its provenance; a patched run names its
    patches with their current sha256 (else it measured another patch). Where a patched
    build's outcome differs from the release's, the test is one its patch adds: the release
    ran the patched build's tests/, so every other test ran on both."""
    path = ROOT / "results" / upstream_tests.FILENAME
    if not path.exists():
        pytest.skip(f"no {path.name}: `nox -s target -- SPEC upstream-tests` writes it")
    data = load_json(path, schema=upstream_tests.SCHEMA)
    for label, run in data["runs"].items():
        assert run["outcomes"], label
        skipped = run.get("skipped", 0)
        assert run["passed"] + run["failed"] + skipped == len(run["outcomes"]), label
        assert run["target"]["label"] == label
        for patch in run["target"]["patches"]:
            current = targets.patch_path(targets.PatchRecord(**patch))
            assert patch["sha256"] == hashlib.sha256(current.read_bytes()).hexdigest(), label
    by_label = {t.label: t for t in upstream_tests.load(path)}
    for label, run in data["runs"].items():
        release = by_label.get(run["target"]["optuna_version"])
        if not run["target"]["patches"] or release is None:
            continue
        added = "".join(
            targets.patch_path(targets.PatchRecord(**p)).read_text(encoding="utf-8")
            for p in run["target"]["patches"]
        )
        for difference in upstream_tests.compare(release, by_label[label]):
            name = alternatives.test_function(difference.test)
            assert f"+def {name}(" in added, (label, difference)


def run_workers_one_after_another(seeds: list[int]) -> list[tuple[object, ...]]:
    """The #5489 pattern in one process: each "worker" loads the study with a GridSampler of
    its own seed and runs its share; returns the grid points never evaluated."""
    import optuna

    from repro import _compat
    from repro.scenarios import DEFAULT_SPACE

    _compat.quiet_optuna()
    space = dict(DEFAULT_SPACE)
    grid_size = len(space["x"]) * len(space["y"])
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(storage=storage, study_name="s")
    for seed in seeds:
        study = optuna.load_study(
            study_name="s", storage=storage, sampler=_compat.grid_sampler(space, seed)
        )
        study.optimize(
            lambda t: (
                float(t.suggest_categorical("x", space["x"]) == 0)
                + float(t.suggest_categorical("y", space["y"]) == "a")
            ),
            n_trials=grid_size // len(seeds),
        )
    seen = {(t.params["x"], t.params["y"]) for t in study.trials}
    return sorted(p for p in ((x, y) for x in space["x"] for y in space["y"]) if p not in seen)


def test_distinct_worker_seeds_cover_the_grid_with_the_fix_issue_5489() -> None:
    """The candidate fix passes what release 5.0.0 fails: four workers with distinct seeds
    (1000..1003, the per-worker policy), one after another, evaluate every grid point. The
    seeds are fixed, so on either build the outcome is the same on every run."""
    from repro import _compat, expectations

    label = targets.active().get("label", "")
    fixed = label.endswith(FIXED)
    row = expectations.expected(_compat.OPTUNA_VERSION, "sequential", "per-worker")
    if not fixed and row.outcome != "loses-points":
        pytest.skip(
            f"neither the patched build ({FIX}) nor a release whose distinct seeds lose points "
            "is installed; `nox -s target -- 5.0.0+patches/grid-shared-order.patch tests "
            "tests/test_targets.py` runs this on the patched build"
        )
    missing = run_workers_one_after_another([1000, 1001, 1002, 1003])
    if fixed:
        assert missing == [], f"{label} left {missing} unevaluated"
    else:
        assert missing, f"Optuna {_compat.OPTUNA_VERSION} (no patch) evaluated every point"


def test_the_fix_keeps_a_shuffled_order_and_same_seed_same_order() -> None:
    """What 5.0.0 promises and the fix keeps: the grid is shuffled (PR #4918), and one seed
    gives one order; with the fix every seed gives the order of the search space."""
    if not targets.active().get("label", "").endswith(FIXED):
        pytest.skip(f"no patched build (RELEASE{FIXED}) is the target under test")
    from repro import _compat
    from repro.scenarios import DEFAULT_SPACE

    space = dict(DEFAULT_SPACE)
    orders = [_compat.grid_order(_compat.grid_sampler(space, s)) for s in (None, 0, 7, 1000)]
    assert all(order == orders[0] for order in orders)
    product = [{"x": x, "y": y} for x in space["x"] for y in space["y"]]
    assert orders[0] != product
    assert sorted(map(str, orders[0])) == sorted(map(str, product))


def test_source_tree_plan_records_its_git_commit(tmp_path: Path) -> None:
    """The local stand-in for the weekly development-head job: a source tree is installed as
    it is and its provenance names the checked-out commit (no build here; `nox -s target --
    PATH` builds it)."""
    tree = fake_tree(tmp_path / "optuna")
    git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t"]
    for step in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "head"]):
        subprocess.run([*git, *step], check=True, capture_output=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    plan = targets.prepare(targets.parse(f"dev={tree}"), cache=tmp_path / "cache")
    assert plan.install == [str(tree)]
    assert plan.tests_from == str(tree)
    assert (plan.provenance.kind, plan.provenance.label) == ("source", "dev")
    assert plan.provenance.commit == head.stdout.strip()


def git_repository(tree: Path) -> str:
    """``tree`` committed as a git repository with a branch ``main``, an annotated tag ``v1``
    on that commit, then a second commit on ``main``; returns the first commit."""
    git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t"]

    def step(*args: str) -> str:
        done = subprocess.run([*git, *args], check=True, capture_output=True, text=True)
        return done.stdout.strip()

    step("init", "-q", "-b", "main")
    step("add", ".")
    step("commit", "-q", "-m", "first")
    first = step("rev-parse", "HEAD")
    step("tag", "-a", "v1", "-m", "tag object, not the commit")
    (tree / "NEWS").write_text("second\n")
    step("add", ".")
    step("commit", "-q", "-m", "second")
    return first


def test_a_git_reference_is_resolved_to_the_commit_it_installs(tmp_path: Path) -> None:
    """A branch, a tag (through the tag object to its commit), no ref (the default branch) and
    a full sha each become `optuna @ git+URL@<commit>`, with that commit in the provenance and
    the URL as given as its source; a local repository (git+file://) goes through the same
    code as git+https."""
    tree = fake_tree(tmp_path / "optuna")
    first = git_repository(tree)
    head = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    url = f"git+file://{tree}"
    for ref, commit, label in (
        ("@main", head, "direct-main"),
        ("@v1", first, "direct-v1"),
        ("", head, "direct-head"),
        (f"@{first}", first, f"git-{first[:12]}"),
    ):
        plan = targets.prepare(targets.parse(f"optuna @ {url}{ref}"), cache=tmp_path / "cache")
        assert plan.install == [f"optuna @ {url}@{commit}"], ref
        assert (plan.provenance.kind, plan.provenance.label) == ("direct", label)
        assert (plan.provenance.commit, plan.provenance.source) == (commit, f"{url}{ref}")
    assert not (tmp_path / "cache").exists()  # resolving downloads and builds nothing


def test_a_git_reference_that_names_no_branch_or_tag_is_one_line(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "optuna")
    git_repository(tree)
    spec = f"optuna @ git+file://{tree}@no-such-branch"
    with pytest.raises(targets.TargetError) as error:
        targets.prepare(targets.parse(spec))
    assert str(error.value) == (
        f"target {spec!r}: file://{tree} has no branch or tag 'no-such-branch'; give a "
        "branch, a tag or a full 40-hex commit"
    )
