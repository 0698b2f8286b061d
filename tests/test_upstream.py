"""The upstream bundle (repro/upstream), checked on a bundle written anew from the JSON: the
issue is short and in the bug-report form's fields, the pull request in Optuna's template, each
body links only absolutely, renders with markdown-it-py and prints no number that is not in the
JSON it ships or the alternatives' JSON; nothing names this project's tracker or a machine's
folder; no body when the measurements contradict the premise. The committed bundle is what the
committed JSON renders (regenerate and compare)."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Set
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from repro import results
from repro.jsonfile import write_json
from repro.upstream import alternatives, bundle, collect, facts, pr, render, script_run
from repro.upstream import upstream_docs as docs

from .helpers import ONCE_PER_CI, link_targets

pytestmark = ONCE_PER_CI

# Computed here rather than imported from conftest, which is being split into helpers.
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
COMMITTED = RESULTS / "upstream"
# A git clone of optuna/optuna holding docs.TAG; no default, so no machine's path is assumed.
MIRROR_VAR = "OPTUNA_MIRROR"

BODIES = (bundle.ISSUE, bundle.COMMENT, bundle.DETAILS, bundle.PR_DESCRIPTION)
TEXTS = (*BODIES, bundle.TITLE, bundle.PR_TITLE, bundle.ALTERNATIVES)
# Source code and quoted upstream text: their digits are not measurements.
UNCHECKED_FENCES = {"python", "diff", "rst"}
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?!\w)(?!\.\d)")


def markdown() -> MarkdownIt:
    return MarkdownIt("commonmark").enable("table")


def run_upstream(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "repro.upstream", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def gathered() -> facts.Facts:
    """What the committed JSON says, read once."""
    return facts.gather(RESULTS)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle written anew from the committed JSON."""
    out = tmp_path_factory.mktemp("bundle")
    bundle.write(RESULTS, out)
    return out


def json_numbers(data: Any, into: set[str]) -> None:
    """Every number of a JSON value as the bodies may print it, and the digit runs of strings."""
    if isinstance(data, dict):
        for value in data.values():
            json_numbers(value, into)
    elif isinstance(data, list):
        for value in data:
            json_numbers(value, into)
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        into.update({f"{data:g}", str(data), f"{abs(data):g}"})
    elif isinstance(data, str):
        into.update(re.findall(r"\d+(?:\.\d+)?", data))


def zip_numbers(archive: Path) -> set[str]:
    numbers: set[str] = set()
    with zipfile.ZipFile(archive) as z:
        for name in z.namelist():
            json_numbers(json.loads(z.read(name)), numbers)
    return numbers


def checked_text(tokens: Iterable[Token]) -> Iterable[str]:
    """Text whose numbers must be measurements: prose, table cells and output blocks; not
    source code, quotes of upstream, inline code, nor link texts and targets (issue numbers,
    line numbers, PEP numbers)."""
    for token in tokens:
        if token.type == "fence" and token.info.strip() not in UNCHECKED_FENCES:
            yield token.content
        elif token.type == "inline" and token.children:
            in_link = 0
            for child in token.children:
                if child.type == "link_open":
                    in_link += 1
                elif child.type == "link_close":
                    in_link -= 1
                elif child.type == "text" and not in_link:
                    yield child.content


def unknown_numbers(body: str, numbers: Set[str]) -> list[str]:
    return [
        n
        for text in checked_text(markdown().parse(body))
        for n in NUMBER.findall(text)
        if n not in numbers and f"{float(n):g}" not in numbers
    ]


def test_committed_bundle_is_what_the_json_renders(fresh: Path) -> None:
    """Regenerate and compare: after the JSON changes, `python -m repro.upstream write` must
    be run again, and then this holds whatever the measurements."""
    for name in (*TEXTS, *bundle.RENDERED):
        assert (fresh / name).read_bytes() == (COMMITTED / name).read_bytes(), name


def test_zip_is_deterministic_and_holds_what_was_committed(fresh: Path, tmp_path: Path) -> None:
    """Two writes give the same bytes; the committed zip has the same entries, times and
    contents (its compressed bytes may differ with another zlib)."""
    bundle.write(RESULTS, tmp_path)
    assert (tmp_path / bundle.ZIP).read_bytes() == (fresh / bundle.ZIP).read_bytes()

    def entries(path: Path) -> list[tuple[str, tuple[int, ...], int, int]]:
        with zipfile.ZipFile(path) as z:
            return [(i.filename, i.date_time, i.CRC, i.file_size) for i in z.infolist()]

    assert entries(fresh / bundle.ZIP) == entries(COMMITTED / bundle.ZIP)
    assert [e[1] for e in entries(fresh / bundle.ZIP)] == [bundle.ZIP_TIME] * len(
        entries(fresh / bundle.ZIP)
    )


def test_zip_holds_every_json_the_bundle_read(fresh: Path, gathered: facts.Facts) -> None:
    found = gathered
    with zipfile.ZipFile(fresh / bundle.ZIP) as z:
        names = z.namelist()
    assert names == sorted(p.relative_to(RESULTS).as_posix() for p in found.sources)
    assert "upstream/script-run.json" in names
    assert {f"optuna-{f.optuna_version}.json" for f in results.load_all(RESULTS)} <= set(names)


@pytest.mark.parametrize("name", BODIES)
def test_body_fits_github_and_the_issue_is_short(fresh: Path, name: str) -> None:
    text = (fresh / name).read_text(encoding="utf-8")
    assert len(text) <= docs.BODY_LIMIT
    if name == bundle.ISSUE:
        assert len(text) <= render.ISSUE_LIMIT


def test_a_body_over_the_limit_is_refused() -> None:
    render.checked("x" * docs.BODY_LIMIT)
    with pytest.raises(render.TooLong):
        render.checked("x" * (docs.BODY_LIMIT + 1))
    with pytest.raises(render.TooLong):
        render.checked("x" * (render.ISSUE_LIMIT + 1), render.ISSUE_LIMIT)


@pytest.mark.parametrize("name", BODIES)
def test_body_links_only_absolutely(fresh: Path, name: str) -> None:
    """A pasted body resolves relative links against the issue's URL, so none may be relative."""
    targets = link_targets((fresh / name).read_text(encoding="utf-8"))
    assert targets, "expected links"
    assert [t for t in targets if not t.startswith("https://")] == []


def test_issue_renders_as_the_bug_report_form(fresh: Path) -> None:
    """The form's fields as headings in its order, one table, the logs one shell block (the
    form declares `render: shell`), the script one Python block, one environment block (the
    OS named once), both quotes linked, the code linked at its tag."""
    body = (fresh / bundle.ISSUE).read_text(encoding="utf-8")
    tokens = markdown().parse(body)
    headings = [
        tokens[i + 1].content
        for i, t in enumerate(tokens)
        if t.type == "heading_open" and t.tag == "h3"
    ]
    assert headings == list(render.FIELDS)
    assert markdown().render(body).count("<table>") == 1
    fences = [t.info for t in tokens if t.type == "fence"]
    assert sorted(fences) == ["python", "shell"]
    script = script_run.script_path(RESULTS).read_text(encoding="utf-8")
    assert script.rstrip("\n") in body
    newest = results.load_all(RESULTS)[-1]
    assert body.count(newest.platform) == 1
    assert body.count("- OS:") == 1
    for quote in docs.QUOTES:
        assert quote.url in body
        assert " ".join(line.strip() for line in quote.lines) in body
    for lines in docs.cause(newest.optuna_version).lines:
        assert lines.url in body


def test_issue_quotes_the_recorded_runs_verbatim(fresh: Path) -> None:
    body = (fresh / bundle.ISSUE).read_text(encoding="utf-8")
    record = script_run.load(RESULTS)
    logs = body.split("```shell\n", 1)[1].split("```", 1)[0]
    printed = [line for line in logs.splitlines() if line.startswith("{")]
    assert printed == list(dict.fromkeys(o.stdout for o in record.outputs))
    assert all(o.missing > 0 for o in record.outputs)


@functools.cache
def known_numbers(out: Path) -> frozenset[str]:
    """The numbers of the JSON the bundle ships, and of the alternatives' JSON beside the PR."""
    numbers = zip_numbers(out / bundle.ZIP)
    if (out / bundle.ALTERNATIVES).exists():
        json_numbers(json.loads((out / bundle.ALTERNATIVES).read_text()), numbers)
    return frozenset(numbers)


@pytest.mark.parametrize("name", BODIES)
def test_every_number_in_a_body_is_in_the_json_it_ships(fresh: Path, name: str) -> None:
    body = (fresh / name).read_text(encoding="utf-8")
    assert NUMBER.findall(body), "no numbers at all: the check would pass vacuously"
    assert unknown_numbers(body, known_numbers(fresh)) == []


def test_the_number_check_catches_a_number_not_in_the_json() -> None:
    numbers = known_numbers(COMMITTED)
    assert unknown_numbers("| a | 987654321 |\n|---|---|\n| b | 7 |\n", numbers) == ["987654321"]
    assert unknown_numbers("see [#987654321](https://x) and `987654321`", numbers) == []


def test_each_attachment_is_named_once_with_what_it_holds(fresh: Path) -> None:
    body = (fresh / bundle.ISSUE).read_text(encoding="utf-8")
    attached = body.split("**Attached:**", 1)[1].strip().splitlines()
    assert [line.split("`")[1] for line in attached] == list(bundle.ATTACHMENTS)
    for line, name in zip(attached, bundle.ATTACHMENTS):
        sentence = line.split(f"`{name}`: ", 1)[1]
        assert sentence.endswith("."), line
        assert sentence.count(". ") == 0, line
        path = fresh / name
        assert path.stat().st_size <= docs.ATTACHMENT_LIMITS[path.suffix], name


# What would mean nothing to an Optuna maintainer, or show the machine that wrote it.
INTERNAL = re.compile(r"\bissues? \d+\b|this project's (?:issue|tracker)", re.IGNORECASE)
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|root|tmp|home)/")


def test_nothing_upstream_names_this_projects_tracker_or_a_machines_folder(fresh: Path) -> None:
    texts = {name: (fresh / name).read_text(encoding="utf-8") for name in TEXTS}
    for patch in sorted((ROOT / "patches").glob("*.patch")):
        texts[patch.name] = patch.read_text(encoding="utf-8")
    for name, text in texts.items():
        assert INTERNAL.findall(text) == [], name
        assert MACHINE_PATH.findall(text) == [], name


def test_pull_request_is_in_optunas_template_with_a_title_in_its_style(fresh: Path) -> None:
    """The template's sections in order with its LLM checkbox ticked; a one-line imperative
    title without a trailing period, as Optuna's release notes quote titles."""
    text = (fresh / bundle.PR_DESCRIPTION).read_text(encoding="utf-8")
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert headings == list(pr.SECTIONS)
    assert text.rstrip().endswith(pr.LLM_BOX)
    title = (fresh / bundle.PR_TITLE).read_text(encoding="utf-8")
    assert title.endswith("\n")
    assert title.count("\n") == 1
    assert title[0].isupper()
    assert not title.rstrip().endswith(".")
    assert len(title) <= 80


def test_pull_request_recommends_only_what_was_measured_exact(fresh: Path) -> None:
    """The recommended row is exact in every cell of alternatives.json, and every test whose
    outcome differs between the release and a build is listed."""
    found = json.loads((fresh / bundle.ALTERNATIVES).read_text())
    text = (fresh / bundle.PR_DESCRIPTION).read_text(encoding="utf-8")
    if found["recommended"] is not None:
        row = next(r for r in found["rows"] if r["key"] == found["recommended"])
        cells = [t for modes in row["matrix"].values() for t in modes.values()]
        assert cells
        assert all(t["lost"] == t["duplicated"] == 0 < t["runs"] for t in cells)
        assert f"**Recommended: {row['design']}.**" in text
    for row in found["rows"]:
        for difference in (row["tests"] or {}).get("differences", []):
            function, _, param = difference["test"].partition("[")
            line = next(x for x in text.splitlines() if x.startswith(f"- `{function}`"))
            assert param.rstrip("]") in line
    assert {r["key"] for r in found["rows"]} >= {alternatives.RELEASE, alternatives.DOCS_ONLY}


def test_comment_points_to_the_new_issue_when_its_number_is_given(gathered: facts.Facts) -> None:
    found = gathered
    text = render.comment(found, 6900)
    assert "https://github.com/optuna/optuna/issues/6900" in text
    assert len([line for line in text.splitlines() if line.startswith("- ")]) == 3


def test_premise_holds_on_the_committed_results() -> None:
    assert facts.premise(results.load_all(RESULTS)[-1]) is None


def copy_results(target: Path) -> Path:
    """The committed results without the bundle, to doctor in a temporary directory."""
    shutil.copytree(RESULTS, target, ignore=shutil.ignore_patterns("*.md", "*.png", "upstream"))
    for name in bundle.RENDERED:
        shutil.copy2(RESULTS / name, target / name)
    (target / "upstream").mkdir()
    shutil.copy2(script_run.record_path(RESULTS), script_run.record_path(target))
    return target


def newest_path(directory: Path) -> Path:
    newest = results.load_all(directory)[-1]
    return results.results_path(directory, newest.optuna_version)


def test_no_body_when_the_newest_release_no_longer_loses_points(tmp_path: Path) -> None:
    """Doctored JSON: every distinct-seed run of the newest release evaluated each point once.
    The session says so, exits 0, writes no body and removes stale ones."""
    doctored = copy_results(tmp_path / "results")
    path = newest_path(doctored)
    newest = results.load(path)
    runs = [
        replace(r, missing=0, duplicates=0, colliding_id_duplicates=0)
        if r.seed_policy == "per-worker"
        else r
        for r in newest.runs
    ]
    results.save(path, replace(newest, runs=runs))
    out = tmp_path / "out"
    out.mkdir()
    (out / bundle.ISSUE).write_text("stale\n")
    done = run_upstream("write", "--results", str(doctored), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "no issue written" in done.stderr
    assert "no longer loses grid points" in done.stderr
    assert not any((out / name).exists() for name in bundle.BODIES)


def test_no_body_when_the_recorded_reproduction_lost_nothing(tmp_path: Path) -> None:
    doctored = copy_results(tmp_path / "results")
    path = script_run.record_path(doctored)
    record = script_run.load(doctored)
    outputs = [
        replace(o, missing=0, duplicates=0, stdout=o.stdout.replace('"missing": 7', '"missing": 0'))
        for o in record.outputs
    ]
    write_json(path, replace(record, outputs=outputs).to_json(), schema=script_run.SCHEMA)
    done = bundle.write(doctored, tmp_path / "out")
    assert done.premise_failed is not None
    assert "lost no grid point" in done.premise_failed
    assert not (tmp_path / "out" / bundle.ISSUE).exists()


def test_optional_sections_are_left_out_with_a_note(fresh: Path, gathered: facts.Facts) -> None:
    found = gathered
    text = (fresh / bundle.DETAILS).read_text(encoding="utf-8")
    present = {
        "remedies": bool(found.remedies),
        "fix": found.fix is not None,
        "rolling": bool(found.rolling),
    }
    for key, shown in present.items():
        assert (HEADINGS[key] in text) == shown, key
    assert len(found.notes) == sum(1 for shown in present.values() if not shown)
    assert not any(note in text for note in found.notes)


HEADINGS = {
    "remedies": "## Remedies users are told about",
    "fix": "## The proposed fix",
    "rolling": "## Upgrading workers one at a time",
}


def add_optional_json(directory: Path) -> None:
    """Remedy runs, a patched target with upstream's tests, and a rolling case, shaped as the
    engineers adding them write them, with numbers found nowhere else in the results."""
    path = newest_path(directory)
    newest = results.load(path)
    base = next(r for r in newest.runs if r.scenario == "sequential-none-sqlite-w4-g24")
    remedy = replace(base, scenario=base.scenario + "-x1.5", trials=36, missing=3, duplicates=15)
    results.save(path, replace(newest, runs=[*newest.runs, remedy]))
    v = newest.optuna_version

    target = directory / f"target-{v}+fix"
    patch = directory / "fix.patch"
    patch.write_text("--- a/optuna/samplers/_grid.py\n+++ b/optuna/samplers/_grid.py\n")
    provenance = {
        "label": f"{v}+fix",
        "spec": f"{v}+patches/fix.patch",
        "kind": "patched",
        "source": "package index sdist, patched",
        "optuna_version": v,
        "patches": [{"path": str(patch), "sha256": "ab" * 32}],
    }
    write_json(target / "target.json", {"provenance": provenance}, schema=1)
    fixed = [
        replace(r, missing=0, duplicates=0, colliding_id_duplicates=0)
        for r in newest.runs
        if r.seed_policy == "per-worker"
    ]
    results.save(results.results_path(target, v), replace(newest, runs=fixed))
    tests = {
        v: {"command": "pytest", "passed": 311, "failed": 1, "outcomes": {"t::a": "failed"}},
        f"{v}+fix": {"command": "pytest", "passed": 312, "failed": 0, "outcomes": {}},
    }
    write_json(directory / facts.UPSTREAM_TESTS, {"runs": tests}, schema=1)
    case = {
        "older": "4.0.0",
        "newer": v,
        "creator": "4.0.0",
        "seed_policy": "none",
        "mode": "sequential",
        "storage": "sqlite",
        "outcome": "lost-points",
        "missing": 41,
        "duplicates": 41,
        "refusal": None,
    }
    write_json(directory / facts.ROLLING, {"cases": [case]}, schema=1)


def test_optional_sections_are_included_and_their_numbers_checked(tmp_path: Path) -> None:
    doctored = copy_results(tmp_path / "results")
    add_optional_json(doctored)
    out = tmp_path / "out"
    done = bundle.write(doctored, out)
    assert done.premise_failed is None
    assert done.notes == []
    text = (out / bundle.DETAILS).read_text(encoding="utf-8")
    assert all(heading in text for heading in HEADINGS.values())
    assert f"- upstream's tests on `{results.load_all(doctored)[-1].optuna_version}`" in text
    assert "311 passed, 1 failed" in text
    assert "41 missing" in text
    numbers = known_numbers(out)
    assert {"311", "41", "36"} <= numbers
    for name in BODIES:
        if (out / name).exists():
            assert unknown_numbers((out / name).read_text(encoding="utf-8"), numbers) == []
    with zipfile.ZipFile(out / bundle.ZIP) as z:
        names = set(z.namelist())
    newest = results.load_all(doctored)[-1].optuna_version
    assert {"rolling.json", "upstream-tests.json", f"target-{newest}+fix/target.json"} <= names


def test_a_stale_script_record_is_refused(tmp_path: Path) -> None:
    doctored = copy_results(tmp_path / "results")
    script = script_run.script_path(doctored)
    script.write_text(script.read_text() + "\n# edited\n")
    done = run_upstream("write", "--results", str(doctored), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "nox -s upstream_record" in done.stderr


def test_the_committed_record_is_of_the_newest_release_and_this_script() -> None:
    record = script_run.load(RESULTS)
    assert record.optuna == results.load_all(RESULTS)[-1].optuna_version
    assert record.sha256 == script_run.sha256(script_run.script_path(RESULTS))


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = run_upstream("write", "--results", str(tmp_path / "missing"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    done = run_upstream("write", "--new-issue", "0")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1


def test_collect_takes_each_artifacts_own_measurement(tmp_path: Path) -> None:
    results_dir = tmp_path / "results"
    results_dir.mkdir()
    (results_dir / "optuna-3.2.0.json").write_text('{"old": 1}\n')
    (results_dir / "timeline.json").write_text('{"same": 1}\n')
    artifacts = tmp_path / "artifacts"
    for name, measured in (("results-3.2.0", "optuna-3.2.0.json"), ("results-latest", "x.json")):
        (artifacts / name).mkdir(parents=True)
        shutil.copy2(results_dir / "timeline.json", artifacts / name / "timeline.json")
        (artifacts / name / measured).write_text(f'{{"measured": "{name}"}}\n')
    copied = collect.collect(artifacts, results_dir)
    assert copied == [results_dir / "optuna-3.2.0.json", results_dir / "x.json"]
    assert "results-3.2.0" in (results_dir / "optuna-3.2.0.json").read_text()

    (results_dir / "optuna-3.2.0.json").write_text('{"old": 1}\n')
    (artifacts / "results-latest" / "optuna-3.2.0.json").write_text('{"other": 2}\n')
    with pytest.raises(collect.CollectError, match=r"optuna-3\.2\.0\.json"):
        collect.collect(artifacts, results_dir)


def test_quotes_are_verbatim_at_the_tag() -> None:
    """Against a git clone of optuna/optuna named by $OPTUNA_MIRROR (its git directory)."""
    mirror = os.environ.get(MIRROR_VAR)
    if not mirror:
        pytest.skip(f"set {MIRROR_VAR} to a git clone of optuna/optuna holding {docs.TAG}")
    for quote in docs.QUOTES:
        shown = subprocess.run(
            ["git", "-C", mirror, "show", f"{docs.TAG}:{quote.path}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        assert tuple(shown[quote.first - 1 : quote.last]) == quote.lines, quote.path


def test_quoted_and_linked_code_is_what_the_installed_release_ships() -> None:
    """The `seed` docstring quoted and every code line the issue would link for the installed
    release are that release's: the file it ships is the sdist's, which its tag builds."""
    optuna = pytest.importorskip("optuna")
    if optuna.__version__ not in docs.CAUSES:
        pytest.skip(f"Optuna {optuna.__version__} installed; lines known for {sorted(docs.CAUSES)}")
    source = (Path(optuna.__file__).parent / "samplers" / "_grid.py").read_text().splitlines()
    quote = docs.GRID_DOCSTRING
    assert tuple(source[quote.first - 1 : quote.last]) == quote.lines
    for lines in docs.cause(optuna.__version__).lines:
        assert lines.holds in "\n".join(source[lines.first - 1 : lines.last]), lines
        assert lines.tag == f"v{optuna.__version__}"


def test_a_release_whose_lines_were_not_read_is_refused() -> None:
    with pytest.raises(docs.UnknownRelease, match="add them to CAUSES"):
        docs.cause("0.0.1")


def test_record_keeps_each_printed_line_and_the_scripts_hash(tmp_path: Path) -> None:
    """The recorder on a stand-in script (no Optuna needed): lines verbatim, then loadable."""
    script = script_run.script_path(tmp_path)
    script.parent.mkdir()
    line = '{"optuna": "9.9.9", "trials": 24, "missing": 5, "duplicates": 5}'
    script.write_text(f"print('{line}')\n")
    done = run_upstream("record-script", "--results", str(tmp_path))
    assert done.returncode == 0, done.stderr
    record = script_run.load(tmp_path)
    assert [o.stdout for o in record.outputs] == [line] * 3
    assert record.optuna == "9.9.9"
    assert record.sha256 == script_run.sha256(script)

    script.write_text("import sys; sys.exit('boom')\n")
    failed = run_upstream("record-script", "--results", str(tmp_path), "--runs", "1")
    assert failed.returncode == 2
    assert failed.stderr.count("\n") == 1
    assert "boom" in failed.stderr
