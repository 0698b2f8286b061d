"""What the issue quotes and links from upstream, and GitHub's limits on what it can post, as
data.

The quotes are verbatim lines of Optuna's repository at ``TAG`` with their line numbers; the
code links point into ``optuna/samplers/_grid.py`` at the newest release's tag (``CAUSES``). The
tests compare the quotes with a clone when one is named (``$OPTUNA_MIRROR``) and every quoted or
linked line of ``_grid.py`` with the installed release.

Why two tags: the clone of optuna/optuna read for this report (master of 2026-08-21, which still
says ``5.0.0.dev``) holds tags up to v5.0.0-rc1, so the documentation page is quoted at that
tag (it is unchanged from there to that master, and the quoted docstring lines are the same in
5.0.0 and 5.1.0). The code is linked at each release's own tag because its lines were read in
that release's sdist, which the tag builds; ``_grid.py`` at v5.0.0-rc1 is byte-identical to
5.0.0's.
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.errors import ReproError

REPO = "https://github.com/optuna/optuna"
TAG = "v5.0.0-rc1"

# GitHub refuses a longer issue or comment body: the REST API answers 422 "body is too long
# (maximum is 65536 characters)" (https://docs.github.com/rest/issues/issues#create-an-issue).
BODY_LIMIT = 65536
# Attachments to issue comments, by file type and size:
# https://docs.github.com/en/get-started/writing-on-github/working-with-advanced-formatting/attaching-files
# (.md, .json, .zip, .png are accepted; images up to 10 MB, other files up to 25 MB).
ATTACHMENT_LIMITS = {".png": 10 * 1024 * 1024, ".md": 25 * 1024 * 1024, ".zip": 25 * 1024 * 1024}

ISSUE_5489 = f"{REPO}/issues/5489"
PR_5490 = f"{REPO}/pull/5490"
PR_4918 = f"{REPO}/pull/4918"
NEW_ISSUE_FORM = f"{REPO}/issues/new?template=bug-report.yml"


def permalink(path: str, first: int, last: int | None = None, tag: str = TAG) -> str:
    lines = f"L{first}" if last is None else f"L{first}-L{last}"
    return f"{REPO}/blob/{tag}/{path}#{lines}"


@dataclass(frozen=True)
class Quote:
    where: str  # what a reader calls the place
    path: str
    first: int
    lines: tuple[str, ...]  # verbatim, indentation included

    @property
    def last(self) -> int:
        return self.first + len(self.lines) - 1

    @property
    def url(self) -> str:
        return permalink(self.path, self.first, self.last if self.last > self.first else None)


GRID_DOCSTRING = Quote(
    "the `GridSampler` docstring of `seed`",
    "optuna/samplers/_grid.py",
    112,
    (
        "            that fixing ``seed`` for each process is strongly recommended in distributed",
        "            optimization to avoid duplicated suggestions.",
    ),
)

SAMPLERS_PAGE = Quote(
    "the samplers reference page",
    "docs/source/reference/samplers/index.rst",
    67,
    (
        "    For the same reason, make sure that use either ``seed=None`` or different ``seed`` values among processes with distributed optimization explained in :ref:`distributed` tutorial.",  # noqa: E501 (verbatim)
    ),
)

QUOTES = (SAMPLERS_PAGE, GRID_DOCSTRING)

GRID_PY = "optuna/samplers/_grid.py"


@dataclass(frozen=True)
class CodeLines:
    """Lines of ``_grid.py`` at a release tag that the issue links, with text that must be on
    them."""

    tag: str
    first: int
    last: int
    holds: str

    @property
    def url(self) -> str:
        return permalink(GRID_PY, self.first, self.last, self.tag)


@dataclass(frozen=True)
class Cause:
    """The code behind the loss in one release: the shuffle seeded per sampler; the first
    len(grid) trials taking grid id = trial number without reading the storage; the id read
    through this process's order; the stop once no id is left."""

    shuffle: CodeLines
    number: CodeLines
    lookup: CodeLines
    stop: CodeLines

    @property
    def lines(self) -> tuple[CodeLines, ...]:
        return (self.shuffle, self.number, self.lookup, self.stop)


def _cause(release: str, stop_last: int) -> Cause:
    tag = f"v{release}"
    return Cause(
        CodeLines(tag, 130, 131, "seed or 0"),
        CodeLines(tag, 147, 152, "trial.number"),
        CodeLines(tag, 202, 203, "self._all_grids[grid_id]"),
        CodeLines(tag, 220, stop_last, "study.stop()"),
    )


# Per release, read in its sdist (5.1.0 adds a line to `after_trial`'s stop); the test checks
# them against the installed release.
CAUSES = {"5.0.0": _cause("5.0.0", 227), "5.1.0": _cause("5.1.0", 228)}


class UnknownRelease(ReproError):
    """A release whose lines of _grid.py the issue would link unread."""


def cause(release: str) -> Cause:
    if release not in CAUSES:
        raise UnknownRelease(
            f"Optuna {release}: which lines of {GRID_PY} to link is not known; read them in its "
            "sdist and add them to CAUSES in repro/upstream/upstream_docs.py"
        )
    return CAUSES[release]
