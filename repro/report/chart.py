"""The report's PNG: mean missing and duplicate points by version, seed policy and launch mode.

Reads only results files, and only their matrix runs, as the report's tables do (corpus runs
have other grids and a section of their own). matplotlib is imported here alone, so the rest of
the package (and the test environments) do not need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from repro.report.verdicts import Findings, decide, pooled, pooled_mean
from repro.results import ResultsFile
from repro.scenarios import ALL_STORAGES, MODES, SEED_POLICIES

CHART_NAME = "report-chart.png"
TITLES = {
    "sequential": "processes, one after another",
    "concurrent": "processes at once (barrier)",
    "threads": "one process, n_jobs threads",
}
YLABELS = {
    "missing": "points never evaluated\n(mean per run)",
    "duplicates": "duplicate evaluations\n(mean per run)",
}


FIELDS = ("missing", "duplicates")


def bars(found: Findings) -> dict[tuple[str, str, str], list[float]]:
    """(field, mode, version) -> the mean of ``field`` per run for each seed policy, over every
    storage."""
    out: dict[tuple[str, str, str], list[float]] = {}
    for version, summaries in found.summaries.items():
        groups = pooled(summaries)
        for field in FIELDS:
            for mode in MODES:
                out[field, mode, version] = [
                    pooled_mean(groups.get((mode, p), []), f"{field}_mean") for p in SEED_POLICIES
                ]
    return out


def write_chart(files: Sequence[ResultsFile], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = decide(files)
    heights = bars(found)
    fig, axes = plt.subplots(2, len(MODES), figsize=(9, 5.2), dpi=100, sharey="row")
    width = 0.8 / max(1, len(files))
    for row, field in enumerate(FIELDS):
        for col, mode in enumerate(MODES):
            ax = axes[row][col]
            for i, f in enumerate(found.files):
                values = heights[field, mode, f.optuna_version]
                xs = [x + (i - (len(files) - 1) / 2) * width for x in range(len(SEED_POLICIES))]
                ax.bar(xs, values, width, label=f"Optuna {f.optuna_version}")
            ax.set_xticks(range(len(SEED_POLICIES)), list(SEED_POLICIES))
            ax.tick_params(axis="x", labelsize=9)
            if row == 0:
                ax.set_title(TITLES[mode])
            else:
                ax.set_xlabel("seed policy")
            if col == 0:
                ax.set_ylabel(YLABELS[field])
            ax.grid(axis="y", alpha=0.3)
    measured = found.coverage.storages
    storages = "every storage" if set(measured) == set(ALL_STORAGES) else ", ".join(measured)
    fig.suptitle(
        f"GridSampler, {found.grid_size}-point grid, pooled over {storages}: points never "
        "evaluated / evaluated twice"
    )
    axes[0][-1].legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
