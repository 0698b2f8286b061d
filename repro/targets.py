"""Targets: which Optuna build a measurement runs against, and where that build came from.

A target spec is one of (optionally prefixed ``LABEL=`` to name it yourself):

- ``5.0.0``: a release from the package index; ``latest``: the newest release;
- ``5.0.0+patches/fix.patch[+more.patch]``: that release's sdist, patched, built, installed;
- a directory: a local Optuna source tree (e.g. a clone of the development head);
- ``optuna-X.whl`` or ``optuna-X.tar.gz``: a wheel or sdist file;
- ``optuna @ git+https://github.com/optuna/optuna@<sha>``: a PEP 508 direct reference; a git
  URL may name a commit, a branch or a tag (``prepare`` resolves it to the commit and installs
  that commit) and may be ``git+file:///path/to/repo`` for a local repository, which goes
  through the same code as a remote one.

``prepare`` (run in any environment with pip) resolves a spec to what to install and to its
provenance, downloading and building what it must (a patched release is built once per
(release, patch sha256s) and cached); ``stamp`` (run in the target's environment after the
install) adds what only the installed build knows (the version Optuna reports, the commit pip
recorded) and writes ``<results>/target-<label>/target.json``. ``$REPRO_TARGET`` names that
file for the commands that follow; ``active()`` reads it, and results files carry it.

Nothing here imports Optuna except ``stamp``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from repro.cmdline import Parser, dispatch
from repro.errors import ReproError
from repro.jsonfile import from_fields, load_json, write_json

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".nox" / "target-cache"
SCHEMA = 1
ENV_VAR = "REPRO_TARGET"
KINDS = ("release", "latest", "patched", "source", "file", "direct")
TIMEOUT = 900.0
RELEASE = re.compile(r"\d+(\.\d+)*([abc]|rc|\.post|\.dev)?\d*")
SHA = re.compile(r"[0-9a-f]{40}")
# The schemes of pip's git URLs (git+SCHEME://...); file:// is a local repository.
GIT_SCHEMES = ("https", "http", "ssh", "git", "file")


class TargetError(ReproError):
    """A target that cannot be measured; the message names the target and what to change."""


@dataclass(frozen=True)
class PatchRecord:
    path: str
    sha256: str


@dataclass(frozen=True)
class Provenance:
    """Where a measured Optuna came from, as plain data: every results file carries it."""

    label: str
    spec: str
    kind: str
    source: str  # the index requirement, path or URL the build came from
    optuna_version: str = ""  # what the installed Optuna reports; set by `stamp`
    commit: str | None = None  # git commit of a source tree or direct reference
    sha256: str | None = None  # of the downloaded or given artifact (wheel or sdist)
    patches: list[PatchRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Provenance:
        patches = [PatchRecord(**p) for p in data.get("patches", [])]
        return from_fields(cls, data, patches=patches)


@dataclass(frozen=True)
class Spec:
    text: str
    kind: str
    label: str
    release: str | None = None
    path: Path | None = None
    patches: tuple[Path, ...] = ()
    requirement: str | None = None


@dataclass(frozen=True)
class Plan:
    """What to install into the target's environment, and the provenance known before it."""

    install: list[str]
    provenance: Provenance
    tests_from: str | None  # a directory holding upstream's tests/ for this build, if any

    def to_json(self) -> dict[str, Any]:
        return {
            "install": self.install,
            "provenance": self.provenance.to_json(),
            "tests_from": self.tests_from,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(data["install"], Provenance.from_json(data["provenance"]), data["tests_from"])


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-") or "target"


def _shown(path: Path) -> str:
    """A path as results files record it: relative to the checkout when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse(text: str, base: Path = ROOT) -> Spec:
    """Read a spec (no network, no build); relative paths are relative to ``base``."""
    raw = text.strip()
    label = ""
    named = re.fullmatch(r"([A-Za-z0-9._+-]+)=(.+)", raw)
    if named and not raw.startswith("optuna"):
        label, raw = named.group(1), named.group(2).strip()
    if not raw:
        raise TargetError(f"target {text!r}: empty; give a release, latest, a path or a URL")
    if raw.startswith("optuna") and "@" in raw:
        direct = re.fullmatch(r"optuna\s*@\s*(\S+)", raw)
        if direct is None:
            raise TargetError(f"target {text!r}: a direct reference reads 'optuna @ URL'")
        url = direct.group(1)
        if url.startswith("git+"):
            ref = split_git(text, url)[1]
            default = f"git-{ref[:12]}" if SHA.fullmatch(ref) else "direct-" + _safe(ref or "head")
        else:  # a URL to a wheel or sdist, installed as pip finds it
            default = "direct-" + _safe(urlsplit(url).path.rsplit("/", 1)[-1])
        return Spec(text, "direct", label or default, requirement=f"optuna @ {url}")
    if raw == "latest":
        return Spec(text, "latest", label or "latest")
    head, *patch_texts = raw.split("+")
    if RELEASE.fullmatch(head):
        patches = tuple((base / p).resolve() for p in patch_texts)
        for given, path in zip(patch_texts, patches):
            if not path.is_file():
                raise TargetError(f"target {text!r}: no patch file {given}")
        if not patches:
            return Spec(text, "release", label or head, release=head)
        default = head + "+" + "+".join(_safe(p.stem) for p in patches)
        return Spec(text, "patched", label or default, release=head, patches=patches)
    path = (base / raw).resolve()
    if path.is_dir():
        if not (path / "optuna" / "__init__.py").is_file() or not any(
            (path / f).is_file() for f in ("pyproject.toml", "setup.py")
        ):
            raise TargetError(
                f"target {text!r}: {path} is not an Optuna source tree (no optuna/__init__.py "
                "beside a pyproject.toml or setup.py)"
            )
        return Spec(text, "source", label or f"source-{_safe(path.name)}", path=path)
    if raw.endswith((".whl", ".tar.gz")):
        if not path.is_file():
            raise TargetError(f"target {text!r}: no such file {path}")
        if not path.name.lower().startswith("optuna-"):
            raise TargetError(f"target {text!r}: {path.name} is not an Optuna wheel or sdist")
        stem = path.name.removesuffix(".whl").removesuffix(".tar.gz")
        return Spec(text, "file", label or _safe(stem), path=path)
    raise TargetError(
        f"target {text!r}: not a release number, latest, RELEASE+PATCH, an Optuna source tree, "
        "a .whl/.tar.gz file or 'optuna @ URL'"
    )


def split_git(target: str, url: str) -> tuple[str, str]:
    """The repository URL git reads and the ref ("" for the default branch) of a pip git URL,
    ``git+SCHEME://[USER@]HOST/PATH[@REF][#FRAGMENT]`` (the fragment, e.g. ``#egg=``, is
    dropped: Optuna sits at the repository's root)."""
    parts = urlsplit(url.removeprefix("git+"))
    if parts.scheme not in GIT_SCHEMES:
        raise TargetError(
            f"target {target!r}: a git URL reads git+https://HOST/PATH[@REF] (or git+ssh://, "
            "git+file:///PATH for a local repository)"
        )
    path, _, ref = parts.path.rpartition("@") if "@" in parts.path else (parts.path, "", "")
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")), ref


def _run(command: Sequence[str], target: str, doing: str, cwd: Path | None = None) -> str:
    """Run a step of preparing a target; a failure becomes one line naming the target."""
    try:
        done = subprocess.run(
            list(command),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
            # git must fail at once on a repository that asks for credentials, not wait for them.
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TargetError(f"target {target!r}: {doing} failed ({exc})") from None
    if done.returncode != 0:
        lines = [x.strip() for x in (done.stderr + done.stdout).splitlines() if x.strip()]
        # git says why first ("fatal: ...") and then gives advice; pip and uv end with the cause.
        fatal = [x for x in lines if x.startswith("fatal:")]
        why = (fatal or lines[-1:] or [f"exit status {done.returncode}"])[0]
        raise TargetError(f"target {target!r}: {doing} failed: {why}")
    return done.stdout


def download(spec: Spec, requirement: str, sdist: bool, into: Path) -> Path:
    """One Optuna artifact from the package index (no dependencies), into ``into``."""
    kind = ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    with tempfile.TemporaryDirectory(prefix="grid-repro-dl-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *kind]
        _run([*command, "-d", tmp, requirement], spec.text, f"downloading {requirement}")
        found = sorted(Path(tmp).iterdir())
        if len(found) != 1:
            raise TargetError(f"target {spec.text!r}: pip downloaded {len(found)} files")
        into.mkdir(parents=True, exist_ok=True)
        return Path(shutil.move(str(found[0]), into / found[0].name))


def _unpack(spec: Spec, sdist: Path, into: Path) -> Path:
    with tarfile.open(sdist) as archive:
        archive.extractall(into, filter="data")
    trees = [p for p in into.iterdir() if p.is_dir()]
    if len(trees) != 1:
        raise TargetError(f"target {spec.text!r}: {sdist.name} holds {len(trees)} directories")
    return trees[0]


def file_sections(text: str) -> list[tuple[str, str]]:
    """A unified diff's per-file sections as (path it patches, section text); the text before
    the first section (a patch's description) is left out. Sections start at ``diff --git``
    lines, or in a plain diff at each ``--- `` line followed by a ``+++ `` line."""
    lines = text.splitlines(keepends=True)
    git = any(line.startswith("diff --git ") for line in lines)
    if git:
        starts = [i for i, line in enumerate(lines) if line.startswith("diff --git ")]
    else:
        starts = [
            i
            for i, pair in enumerate(itertools.pairwise(lines))
            if pair[0].startswith("--- ") and pair[1].startswith("+++ ")
        ]
    sections = []
    for first, end in zip(starts, [*starts[1:], len(lines)]):
        chunk = lines[first:end]
        target = next((x[4:].split("\t")[0].strip() for x in chunk if x.startswith("+++ ")), "")
        sections.append((target.removeprefix("b/"), "".join(chunk)))
    return sections


def apply_patches(spec: Spec, tree: Path) -> list[str]:
    """Apply each patch to an unpacked source tree, each dry-run first so that a patch that
    does not apply leaves the tree as it was. A pull request's patch also changes files that an
    sdist does not ship (``docs/``): the sections for a top-level directory the tree lacks are
    left out, and their paths returned; a patch that changes nothing in the tree is refused."""
    skipped: list[str] = []
    for patch in spec.patches:
        sections = file_sections(patch.read_text(encoding="utf-8"))
        kept = [text for path, text in sections if (tree / path.split("/")[0]).exists()]
        skipped += [path for path, _ in sections if not (tree / path.split("/")[0]).exists()]
        if not kept:
            raise TargetError(f"target {spec.text!r}: {patch.name} changes no file of {tree.name}")
        with tempfile.TemporaryDirectory(prefix="grid-repro-patch-") as tmp:
            applied = Path(tmp) / patch.name
            applied.write_text("".join(kept), encoding="utf-8")
            for dry in (["--dry-run"], []):
                _run(
                    ["patch", "-p1", "--batch", "--forward", *dry, "-i", str(applied)],
                    spec.text,
                    f"applying {patch.name} to {tree.name}",
                    cwd=tree,
                )
    return skipped


def build_wheel(spec: Spec, tree: Path, out: Path) -> Path:
    """Build one wheel from a source tree with uv (or pip without it)."""
    uv = shutil.which("uv")
    build = (
        [uv, "build", "--wheel", "--quiet", "-o", str(out), str(tree)]
        if uv
        else [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(tree)]
    )
    _run(build, spec.text, f"building {tree.name}")
    wheels = sorted(out.glob("optuna-*.whl"))
    if len(wheels) != 1:
        raise TargetError(
            f"target {spec.text!r}: the build of {tree.name} made {len(wheels)} wheels"
        )
    return wheels[0]


def _keep_tests(tree: Path, into: Path) -> Path:
    """Upstream's tests/ (as the sdist and any patches left them) and the pyproject.toml that
    configures pytest for them, for ``repro.upstream_tests``."""
    shutil.copytree(tree / "tests", into / "tests")
    shutil.copy2(tree / "pyproject.toml", into / "pyproject.toml")
    return into


def build_patched(spec: Spec, cache: Path) -> Plan:
    """Download the release's sdist, apply the patches (each dry-run first), build a wheel;
    cached by (release, patch sha256s), so a warm run downloads and builds nothing."""
    assert spec.release is not None
    patches = [PatchRecord(_shown(p), sha256_of(p)) for p in spec.patches]
    key = hashlib.sha256(" ".join(p.sha256 for p in patches).encode()).hexdigest()[:16]
    done = cache / "builds" / f"optuna-{spec.release}-{key}"
    record = done / "plan.json"
    if record.is_file():
        plan = Plan.from_json(load_json(record, schema=SCHEMA))
        # Cached by the patches' content; their names may differ from the first build's.
        known = replace(plan.provenance, label=spec.label, spec=spec.text, patches=patches)
        return replace(plan, provenance=known)
    with tempfile.TemporaryDirectory(prefix="grid-repro-build-") as tmp:
        work = Path(tmp)
        sdist = download(spec, f"optuna=={spec.release}", True, work / "sdist")
        tree = _unpack(spec, sdist, work / "src")
        skipped = apply_patches(spec, tree)
        wheel_file = build_wheel(spec, tree, work / "wheel")
        staging = _keep_tests(tree, work / "done")
        wheel = Path(shutil.copy2(wheel_file, staging / wheel_file.name))
        plan = Plan(
            install=[str(done / wheel.name)],
            provenance=Provenance(
                label=spec.label,
                spec=spec.text,
                kind="patched",
                source=f"package index sdist {sdist.name}, patched, built locally"
                + (f"; not in the sdist, not applied: {', '.join(skipped)}" if skipped else ""),
                sha256=sha256_of(sdist),
                patches=patches,
            ),
            tests_from=str(done),
        )
        write_json(staging / "plan.json", plan.to_json(), schema=SCHEMA)
        done.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(done, ignore_errors=True)  # an interrupted earlier build left no plan
        shutil.move(str(staging), done)
    return plan


def release_tests(spec: Spec, release: str, cache: Path) -> str:
    """Upstream's tests/ of a release, from its sdist (cached)."""
    done = cache / "tests" / f"optuna-{release}"
    if (done / "tests").is_dir():
        return str(done)
    with tempfile.TemporaryDirectory(prefix="grid-repro-tests-") as tmp:
        sdist = download(spec, f"optuna=={release}", True, Path(tmp) / "sdist")
        tree = _unpack(spec, sdist, Path(tmp) / "src")
        staging = _keep_tests(tree, Path(tmp) / "done")
        done.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(done, ignore_errors=True)
        shutil.move(str(staging), done)
    return str(done)


def prepare(spec: Spec, cache: Path = CACHE) -> Plan:
    """Resolve a spec to what to install; download or build what it needs."""
    if spec.kind == "patched":
        return build_patched(spec, cache)
    if spec.kind in ("release", "latest"):
        requirement = "optuna" if spec.release is None else f"optuna=={spec.release}"
        artifact = download(spec, requirement, False, cache / "wheels")
        release = artifact.name.split("-")[1]
        return Plan(
            [str(artifact)],
            Provenance(
                spec.label,
                spec.text,
                spec.kind,
                f"package index {artifact.name}",
                sha256=sha256_of(artifact),
            ),
            release_tests(spec, release, cache),
        )
    if spec.kind == "source":
        assert spec.path is not None
        commit = None
        if (spec.path / ".git").exists():
            commit = _run(
                ["git", "-C", str(spec.path), "rev-parse", "HEAD"], spec.text, "git rev-parse"
            ).strip()
        return Plan(
            [str(spec.path)],
            Provenance(spec.label, spec.text, "source", str(spec.path), commit=commit),
            str(spec.path),
        )
    if spec.kind == "file":
        assert spec.path is not None
        return Plan(
            [str(spec.path)],
            Provenance(spec.label, spec.text, "file", str(spec.path), sha256=sha256_of(spec.path)),
            None,
        )
    assert spec.requirement is not None
    url = spec.requirement.split("@", 1)[1].strip()
    if not url.startswith("git+"):
        return Plan([spec.requirement], Provenance(spec.label, spec.text, "direct", url), None)
    repo, commit = resolve_git(spec, url)
    # The commit resolved here is what gets installed: a branch that moves in between cannot
    # make the provenance name another commit than the one measured.
    return Plan(
        [f"optuna @ git+{repo}@{commit}"],
        Provenance(spec.label, spec.text, "direct", url, commit=commit),
        None,
    )


def resolve_git(spec: Spec, url: str) -> tuple[str, str]:
    """The repository of a git direct reference and the commit it names, asked of the
    repository itself (``git ls-remote``), so that an unreachable repository or an unknown
    branch or tag is a one-line error before anything is installed. A full commit sha is
    taken as it is (the install fetches it); a branch wins over a tag of the same name, as
    in pip."""
    repo, ref = split_git(spec.text, url)
    asked = "HEAD" if not ref or SHA.fullmatch(ref) else ref
    # An annotated tag lists the tag object and, peeled (^{}), the commit it points to; the
    # peeled line is listed only when asked for by name.
    patterns = [asked] if asked == "HEAD" else [asked, asked + "^{}"]
    listed = _run(
        ["git", "ls-remote", repo, *patterns], spec.text, f"reaching the git repository {repo}"
    )
    if SHA.fullmatch(ref):
        return repo, ref
    found = {name: sha for sha, _, name in (line.partition("\t") for line in listed.splitlines())}
    names = [f"refs/heads/{ref}", f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}"]
    wanted = ["HEAD"] if asked == "HEAD" else names
    commit = next((found[name] for name in wanted if name in found), None)
    if commit is None:
        raise TargetError(
            f"target {spec.text!r}: {repo} has no branch or tag {asked!r}; give a branch, a "
            "tag or a full 40-hex commit"
        )
    return repo, commit


def target_dir(results: Path, label: str) -> Path:
    return results / f"target-{label}"


def stamp(plan: Plan, results: Path) -> Path:
    """In the target's environment: record the version Optuna reports and, for a VCS install,
    the commit pip resolved; write the provenance file that ``$REPRO_TARGET`` names."""
    from importlib import metadata

    from repro import _compat

    provenance = replace(plan.provenance, optuna_version=_compat.OPTUNA_VERSION)
    try:
        direct = json.loads(metadata.distribution("optuna").read_text("direct_url.json") or "{}")
    except (metadata.PackageNotFoundError, json.JSONDecodeError):
        direct = {}
    resolved = direct.get("vcs_info", {}).get("commit_id")
    if resolved:
        provenance = replace(provenance, commit=resolved)
    path = target_dir(results, provenance.label) / "target.json"
    tests_from = plan.tests_from and _shown(Path(plan.tests_from))
    write_json(path, {"provenance": provenance.to_json(), "tests_from": tests_from}, schema=SCHEMA)
    return path


def read_provenance(directory: Path) -> Provenance | None:
    """The provenance a target run wrote into ``directory`` (``stamp``), None without one."""
    path = directory / "target.json"
    if not path.exists():
        return None
    return Provenance.from_json(load_json(path, schema=SCHEMA)["provenance"])


def patch_path(patch: PatchRecord) -> Path:
    """A recorded patch's file; a relative path is relative to the checkout (``_shown``)."""
    path = Path(patch.path)
    return path if path.is_absolute() else ROOT / path


def active() -> dict[str, Any]:
    """The provenance of the target named by ``$REPRO_TARGET``, or {} outside a target run."""
    path = os.environ.get(ENV_VAR)
    if not path:
        return {}
    data: dict[str, Any] = load_json(Path(path), schema=SCHEMA)["provenance"]
    return data


def _cmd_prepare(args: argparse.Namespace) -> int:
    plan = prepare(parse(args.spec))
    write_json(args.plan, plan.to_json(), schema=SCHEMA)
    print(f"target {plan.provenance.label}: install {' '.join(plan.install)}", file=sys.stderr)
    return 0


def _cmd_stamp(args: argparse.Namespace) -> int:
    path = stamp(Plan.from_json(load_json(args.plan, schema=SCHEMA)), args.results)
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m repro.targets", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    pre = sub.add_parser("prepare", help="resolve a target spec; download or build it")
    pre.add_argument("spec", help="release, latest, RELEASE+PATCH, source tree, file or URL")
    pre.add_argument("--plan", type=Path, required=True, help="where to write the plan JSON")
    sta = sub.add_parser("stamp", help="record the installed build's provenance")
    sta.add_argument("plan", type=Path)
    sta.add_argument("--results", type=Path, default=Path("results"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"prepare": _cmd_prepare, "stamp": _cmd_stamp}
    return dispatch("python -m repro.targets", handlers, args)


if __name__ == "__main__":
    sys.exit(main())
