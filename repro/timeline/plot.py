"""The timeline as a PNG plot, drawn from ``timeline.json`` alone.

matplotlib is imported only when drawing: the harness and the test environments do without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from repro.timeline.records import Timeline

if TYPE_CHECKING:
    from matplotlib.axes import Axes

Series = dict[str, list[float | None]]


def series(data: Timeline) -> tuple[list[str], Series]:
    """Releases in release order (each target after the release it comes from), and per
    scenario the mean missing points per finished run on each (None where the release or
    every run of the scenario failed)."""
    releases = data.points()
    out: Series = {s: [] for s in data.scenarios}
    for release in releases:
        found = {o.scenario: o for o in release.scenario_outcomes()}
        for scenario in data.scenarios:
            o = found.get(scenario)
            usable = release.measured and o is not None and o.runs > 0
            out[scenario].append(sum(o.missing) / o.runs if usable and o else None)
    return [r.name for r in releases], out


def _label(scenario: str) -> str:
    # Scenario ids read "<mode>-<seed policy>-<storage>-w<N>-<grid>"; the seed policy may hold a
    # hyphen itself ("per-worker").
    parts = scenario.split("-")
    return f"{parts[0]}, seed {'-'.join(parts[1:-3])} ({parts[-3]})"


def draw(data: Timeline, path: Path) -> None:
    """Write the PNG to ``path`` (in place: the caller renames it into position)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    versions, values = series(data)
    runs = [r for v in data.points() for r in v.runs]
    grid = max((r.grid_size for r in runs), default=0)
    workers = max((r.workers for r in runs), default=0)
    width = 0.8 / max(1, len(values))
    fig, ax = plt.subplots(figsize=(8.5, 5), dpi=100)
    for i, (scenario, ys) in enumerate(values.items()):
        xs = [x + (i - (len(values) - 1) / 2) * width for x in range(len(versions))]
        heights = [y if y is not None else 0.0 for y in ys]
        ax.bar(xs, heights, width=width, label=_label(scenario))
    _mark_unmeasured(ax, versions, values)
    _mark_transitions(ax, versions, data)
    ax.set_xticks(range(len(versions)), versions, rotation=45, ha="right")
    built = "\neach target after the release it comes from" if data.targets else ""
    ax.set_xlabel(
        f"Optuna release, oldest to newest (dotted line: some scenario changed behaviour){built}"
    )
    ax.set_ylabel(f"grid points never evaluated\n(mean per run, grid of {grid})")
    ax.set_title(
        f"GridSampler with {workers} workers: lost grid points, {data.repetitions} runs per bar "
        "(no bar = none lost)",
        fontsize=11,
    )
    # Headroom above the tallest bar for the legend, so it never hides a bar.
    ax.set_ylim(0, max([y for ys in values.values() for y in ys if y is not None] + [1]) * 1.35)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", ncol=2, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _mark_unmeasured(ax: Axes, versions: Sequence[str], values: Series) -> None:
    """Grey band where no scenario has data, so a gap is not read as "no point lost"."""
    for x, _ in enumerate(versions):
        if all(ys[x] is None for ys in values.values()):
            ax.axvspan(x - 0.45, x + 0.45, color="0.85", zorder=0)
            ax.text(x, 0.2, "not measured", rotation=90, ha="center", va="bottom", fontsize=8)


def _mark_transitions(ax: Axes, versions: Sequence[str], data: Timeline) -> None:
    """A dotted line between the last release with the old outcome and the first with the
    new, once per release pair."""
    index = {v: i for i, v in enumerate(versions)}
    for pair in sorted({(t.from_version, t.to_version) for t in data.transitions}):
        x = (index[pair[0]] + index[pair[1]]) / 2
        ax.axvline(x, color="0.3", linestyle=":", linewidth=1)
