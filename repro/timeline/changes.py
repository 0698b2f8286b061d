"""What changed in Optuna's GridSampler between releases, as data read from the diffs.

Every entry was written from ``git diff v<previous> v<release> -- optuna/samplers/_grid.py`` (and
``_lazy_random_state.py`` where the grid's RNG comes from) in the upstream repository, and cites
the lines at both tags. Entries that change no behaviour are kept too, so that a transition in a
window that holds only those can be reported as unexplained with the evidence, not guessed at.

The timeline asks ``explain`` for each measured transition. A transition counts as explained
only when a behavioural change lies in its window and ``repro/expectations.py`` (the one table of
expected outcomes) expects exactly the measured outcomes on both sides of that change.
"""

from __future__ import annotations

from dataclasses import dataclass

from repro import expectations
from repro.versions import version_key

GRID = "optuna/samplers/_grid.py"
LAZY_RNG = "optuna/samplers/_lazy_random_state.py"


def link(tag: str, lines: str, path: str = GRID) -> str:
    """A Markdown link to ``path`` at ``tag``, e.g. ``link("v3.4.0", "L116-L117")``."""
    name = path.rsplit("/", 1)[-1]
    return f"[{tag} {name}#{lines}](https://github.com/optuna/optuna/blob/{tag}/{path}#{lines})"


# The git blob of optuna/samplers/_grid.py at each release tag (`git rev-parse vX:path`): equal
# blobs mean the file is byte-identical, so a transition between them has its cause elsewhere.
# 5.0.0 is not tagged in the mirror read; its wheel's _grid.py hashes (`git hash-object`) to the
# v5.0.0-rc1 blob.
GRID_BLOBS: dict[str, str] = {
    "3.2.0": "ca69b0868c5bd9d7e547c19c6ee846cf3aac9f74",
    "3.3.0": "20c1525aa56549316ae3b82a09d05dfba59b07c3",
    "3.4.0": "aa9573521764a9df36b90815f9990b7c18e175a8",
    "3.4.1": "aa9573521764a9df36b90815f9990b7c18e175a8",
    "3.5.0": "aa9573521764a9df36b90815f9990b7c18e175a8",
    "3.5.1": "aa9573521764a9df36b90815f9990b7c18e175a8",
    "3.6.0": "2355b7b466fcb381dccb038bc9128f70f72b0a98",
    "3.6.1": "2355b7b466fcb381dccb038bc9128f70f72b0a98",
    "3.6.2": "2355b7b466fcb381dccb038bc9128f70f72b0a98",
    "4.0.0": "7a87576ed8e237080c9aa2ddd03ebdb4486cd1d6",
    "4.1.0": "7a87576ed8e237080c9aa2ddd03ebdb4486cd1d6",
    "4.2.0": "7a87576ed8e237080c9aa2ddd03ebdb4486cd1d6",
    "4.2.1": "7a87576ed8e237080c9aa2ddd03ebdb4486cd1d6",
    "4.3.0": "7a87576ed8e237080c9aa2ddd03ebdb4486cd1d6",
    "4.4.0": "7a87576ed8e237080c9aa2ddd03ebdb4486cd1d6",
    "4.5.0": "7a87576ed8e237080c9aa2ddd03ebdb4486cd1d6",
    "4.6.0": "7a87576ed8e237080c9aa2ddd03ebdb4486cd1d6",
    "4.7.0": "bc27223a0f966771762bbf0da44ab3b86e1351c5",
    "4.8.0": "c186776ade4b06fabe8fe7b9bfdabdb8fce3da03",
    "4.9.0": "57318fb8b80d727cdd1d2fd333cb2e5d931519bb",
    "5.0.0": "57318fb8b80d727cdd1d2fd333cb2e5d931519bb",
}


@dataclass(frozen=True)
class SourceChange:
    release: str  # the first release with the change
    previous: str  # the release before it: the diff is previous..release
    pull_request: int | None
    behavioural: bool  # False: the diff cannot change which point a trial evaluates
    summary: str  # Markdown, citing lines at both tags

    @property
    def title(self) -> str:
        pr = f"PR #{self.pull_request}, " if self.pull_request else ""
        return f"{pr}v{self.previous} → v{self.release}"


CHANGES: tuple[SourceChange, ...] = (
    SourceChange(
        "3.3.0",
        "3.2.0",
        None,
        False,
        "`_search_space` becomes a plain `dict` instead of `collections.OrderedDict` "
        f"({link('v3.2.0', 'L109')} → {link('v3.3.0', 'L108')}); keys are still inserted in "
        "sorted order, so the grid and its order are unchanged.",
    ),
    SourceChange(
        "3.4.0",
        "3.3.0",
        4918,
        True,
        "`__init__` now shuffles the grid with `LazyRandomState(seed)` "
        f"({link('v3.3.0', 'L115')} → {link('v3.4.0', 'L116-L117')}), which seeds numpy from "
        f"OS entropy when `seed` is None ({link('v3.4.0', 'L15-L21', LAZY_RNG)}); and "
        "`before_trial` gives each of the first len(grid) trials `grid_id = trial.number` "
        f"without reading the storage ({link('v3.4.0', 'L133-L138')}), where 3.3.0 picked at "
        "random among the ids no trial had finished or was running "
        f"({link('v3.3.0', 'L133-L154')}). Workers whose shuffles differ (seed None or "
        "distinct seeds) read the same grid id as different points, so points are lost; with "
        "one shuffle, unique trial numbers mean no id is picked twice, so the 3.3.0 race is "
        "gone.",
    ),
    SourceChange(
        "3.6.0",
        "3.5.1",
        None,
        False,
        f"Docstring only: a note on ask-and-tell ({link('v3.6.0', 'L52-L59')}).",
    ),
    SourceChange(
        "4.0.0",
        "3.6.2",
        5490,
        True,
        f"`LazyRandomState(seed)` becomes `LazyRandomState(seed or 0)` ({link('v3.6.2', 'L119')} "
        f"→ {link('v4.0.0', 'L123')}): seed None now means seed 0, so every process shuffles the "
        "grid the same way, and the `seed` docstring now asks for a fixed seed in every process "
        f"({link('v4.0.0', 'L101-L106')}). `grid_id = trial.number` stays "
        f"({link('v4.0.0', 'L140-L145')}), so distinct per-worker seeds still disagree on what "
        "a grid id means. The same window adds `is_exhausted` (PR #5306, "
        f"{link('v4.0.0', 'L282-L286')}), which `optimize` does not call.",
    ),
    SourceChange(
        "4.7.0",
        "4.6.0",
        None,
        False,
        f"Warnings go through `optuna_warn` instead of `warnings.warn` ({link('v4.7.0', 'L199')}, "
        f"{link('v4.7.0', 'L232')}); messages become f-strings.",
    ),
    SourceChange(
        "4.8.0",
        "4.7.0",
        None,
        False,
        f"Type-only imports move under `TYPE_CHECKING` ({link('v4.8.0', 'L18-L24')}).",
    ),
    SourceChange(
        "4.9.0",
        "4.8.0",
        None,
        False,
        f"Docstring and a comment only ({link('v4.9.0', 'L34-L43')}, "
        f"{link('v4.9.0', 'L142-L143')}).",
    ),
)

# What racy code may show in a few runs: no race at all. Every other outcome must match.
_COMPATIBLE = {("racy", "exact")}


def _consistent(expected: str, measured: str) -> bool:
    return measured == expected or (expected, measured) in _COMPATIBLE


def _expected(version: str, mode: str, seed_policy: str) -> str | None:
    try:
        return expectations.expected(version, mode, seed_policy).outcome
    except expectations.NoExpectation:
        return None


def in_window(start: str, stop: str) -> list[SourceChange]:
    """Changes first released after ``start`` and at or before ``stop``."""
    low, high = version_key(start), version_key(stop)
    return [c for c in CHANGES if low < version_key(c.release) <= high]


@dataclass(frozen=True)
class Explanation:
    explained: bool
    change: str  # Markdown


def explain(
    mode: str, seed_policy: str, start: str, before: str, stop: str, after: str
) -> Explanation:
    """Why ``mode``/``seed_policy`` measured ``before`` on ``start`` and ``after`` on ``stop``.

    Says so when nothing on file accounts for it, naming what the window does hold.
    """
    window = in_window(start, stop)
    for change in window:
        if not change.behavioural:
            continue
        old = _expected(change.previous, mode, seed_policy)
        new = _expected(change.release, mode, seed_policy)
        if (
            old is not None
            and new is not None
            and old != new
            and _consistent(old, before)
            and _consistent(new, after)
        ):
            return Explanation(True, f"{change.title}: {change.summary}")
    return Explanation(False, _unexplained(mode, seed_policy, start, before, stop, after, window))


def _unexplained(
    mode: str,
    seed_policy: str,
    start: str,
    before: str,
    stop: str,
    after: str,
    window: list[SourceChange],
) -> str:
    text = (
        f"**Unexplained**: no GridSampler change on file between v{start} and v{stop} accounts "
        f"for {mode}/{seed_policy} going from `{before}` to `{after}`."
    )
    blobs = GRID_BLOBS.get(start), GRID_BLOBS.get(stop)
    if blobs[0] is not None and blobs[0] == blobs[1]:
        text += (
            f" `{GRID}` is byte-identical at both releases (git blob {blobs[0][:10]}), so the "
            "cause lies elsewhere: another Optuna module, a dependency version, or timing "
            "(a `racy` outcome can show no race in a few runs)."
        )
    for change in window:
        text += f" In this window, {change.title}: {change.summary}"
    if not window and blobs[0] != blobs[1]:
        text += f" Read `git diff v{start} v{stop} -- {GRID}` and add an entry to this table."
    return text
