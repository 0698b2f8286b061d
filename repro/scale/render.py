"""The sweep's section (``scale.md``) and plot (``scale.png``), from ``scale.json`` alone.

``python -m repro.scale.render [--results FILE]`` writes both beside FILE (default
results/scale.json).
matplotlib is imported only to draw."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from repro.cmdline import Parser, dispatch, prog_name
from repro.errors import ReproError
from repro.scale.sweep import DEFAULT_OUT, SAMPLERS, SCHEMA, STORAGES
from repro.versions import version_key

SAMPLER_NAMES = {
    "grid": "GridSampler",
    "bruteforce": "BruteForceSampler",
    "enqueued": "enqueued grid",
}
STORAGE_NAMES = {
    "postgresql": "PostgreSQL, processes",
    "grpc-postgresql": "gRPC proxy, PostgreSQL",
    "dask-postgresql": "Dask tasks, PostgreSQL",
}


def _name(table: dict[str, str], key: str) -> str:
    return table.get(key, key)


def releases(data: dict[str, Any]) -> list[str]:
    return sorted({c["release"] for c in data["cells"]}, key=version_key)


def rate_text(cell: dict[str, Any]) -> str:
    """What a count's column shows for a cell: runs that lost points of the runs measured,
    with the Wilson interval; or why nothing was measured."""
    if cell["status"] == "blocked":
        return "blocked"
    if cell["status"] == "not applicable":
        return "n/a"
    if not cell["runs"]:
        return f"{cell['errors']} failed"
    low, high = cell["wilson95"]
    text = f"{cell['losing_runs']}/{cell['runs']} ({low:.2f}-{high:.2f})"
    return text + (f", {cell['errors']} failed" if cell["errors"] else "")


def markdown(data: dict[str, Any]) -> str:
    """The section, from the results file's data alone."""
    grid = 1
    for _, values in data["space"]:
        grid *= len(values)
    lines = [
        "# Worker count as a dimension",
        "",
        f"Concurrent workers (seed policy `{data['seed_policy']}`) on a {grid}-point grid, "
        "a fresh PostgreSQL database per run. A column is a worker count; a cell gives the "
        "runs that lost grid points of the runs measured, with the Wilson 95% interval. "
        "Written by `nox -s scale` from `scale.json`; see docs/sweep.md.",
    ]
    for release in releases(data):
        cells = [c for c in data["cells"] if c["release"] == release]
        counts = sorted({c["workers"] for c in cells})
        lines += [
            "",
            f"## Optuna {release}",
            "",
            "| storage | sampler | expected | " + " | ".join(f"{n} workers" for n in counts) + " |",
            "|---|---|---|" + "---|" * len(counts),
        ]
        rows = sorted({(c["storage"], c["sampler"]) for c in cells}, key=_row_order)
        for storage, sampler in rows:
            by_count = {
                c["workers"]: c for c in cells if (c["storage"], c["sampler"]) == (storage, sampler)
            }
            expected = next((c["expectation"] for c in by_count.values() if c["expectation"]), None)
            outcome = "-" if expected is None else _outcome(expected)
            texts = [rate_text(by_count[n]) if n in by_count else "" for n in counts]
            lines.append(
                f"| {_name(STORAGE_NAMES, storage)} | {_name(SAMPLER_NAMES, sampler)} | "
                f"{outcome} | " + " | ".join(texts) + " |"
            )
        lines += ["", *_details(cells), *_not_measured(cells), *_sources(cells)]
    return "\n".join(lines).rstrip() + "\n"


def _row_order(row: tuple[str, str]) -> tuple[int, str, int, str]:
    storage, sampler = row
    return (
        STORAGES.index(storage) if storage in STORAGES else len(STORAGES),
        storage,
        SAMPLERS.index(sampler) if sampler in SAMPLERS else len(SAMPLERS),
        sampler,
    )


def _outcome(expected: dict[str, Any]) -> str:
    proxy = expected["proxy"]
    text = f"{expected['outcome']}{' (forced: 1 run)' if expected['forced'] else ''}"
    return text + (f"; proxy: {proxy['outcome']}" if proxy else "")


def _details(cells: list[dict[str, Any]]) -> list[str]:
    measured = [c for c in cells if c["status"] in ("measured", "failed")]
    if not measured:
        return []
    lines = [
        "| storage | sampler | workers | runs | lost points | points lost | extra evaluations "
        "| worker crashes | failed runs | contradicts its row |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in sorted(
        measured, key=lambda c: (*_row_order((c["storage"], c["sampler"])), c["workers"])
    ):
        contradicted = sum(1 for r in c["records"] if r["violations"])
        lines.append(
            f"| {_name(STORAGE_NAMES, c['storage'])} | {_name(SAMPLER_NAMES, c['sampler'])} | "
            f"{c['workers']} | {c['runs']} | {c['losing_runs']} | {c['points_lost']} | "
            f"{c['extra_evaluations']} | {c['worker_crashes']} | {c['errors']} | "
            f"{contradicted} |"
        )
    return [*lines, ""]


def _not_measured(cells: list[dict[str, Any]]) -> list[str]:
    """Each reason a cell was not (wholly) measured, once, with the cells it stopped: a limit,
    a release without the storage, or the error of a failed run."""
    reasons: dict[str, list[str]] = {}
    for c in cells:
        where = f"{_name(STORAGE_NAMES, c['storage'])} x{c['workers']}"
        if c["status"] in ("blocked", "not applicable"):
            reason = f"{c['status']}: {c['reason']}"
        elif c["errors"]:
            where += f" {_name(SAMPLER_NAMES, c['sampler'])}"
            errors = sorted({r["error"] for r in c["records"] if r["error"]})
            reason = f"{c['errors']} failed run(s): {'; '.join(errors)}"
        else:
            continue
        listed = reasons.setdefault(reason, [])
        if where not in listed:
            listed.append(where)
    return [f"- {', '.join(where)}: {reason}" for reason, where in reasons.items()] + (
        [""] if reasons else []
    )


def _sources(cells: list[dict[str, Any]]) -> list[str]:
    """The rows the cells are judged by, each with the upstream lines that decide it."""
    rows: dict[str, dict[str, Any]] = {}
    proxy: dict[str, dict[str, Any]] = {}
    for c in cells:
        if c["expectation"]:
            rows.setdefault(c["sampler"], c["expectation"])
            if c["expectation"]["proxy"]:
                proxy.setdefault(c["sampler"], c["expectation"]["proxy"])
    order = sorted(rows, key=lambda sampler: _row_order(("", sampler)))
    lines = [
        f"- {_name(SAMPLER_NAMES, s)}: {rows[s]['outcome']}, {rows[s]['why']} "
        f"({', '.join(rows[s]['cite'])})"
        for s in order
    ]
    return lines + [
        f"- {_name(SAMPLER_NAMES, s)} through the gRPC proxy: {proxy[s]['outcome']} "
        f"({', '.join(proxy[s]['cite'])})"
        for s in order
        if s in proxy
    ]


# Inches at the figure's right for the legend, shared by the panels.
LEGEND_WIDTH = 3.2


def plot(data: dict[str, Any], path: Path) -> None:
    """Rate of runs losing points against workers (log2 axis), one line per sampler and
    storage, Wilson intervals as error bars; one panel per release."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    versions = releases(data) or ["none"]
    fig, axes = plt.subplots(
        1,
        len(versions),
        figsize=(4.0 * len(versions) + LEGEND_WIDTH, 4.2),
        dpi=100,
        sharey=True,
        squeeze=False,
    )
    styles = {s: style for s, style in zip(STORAGES, ("-", "--", ":"))}
    markers = {s: marker for s, marker in zip(STORAGES, ("o", "s", "^"))}
    colors = {s: color for s, color in zip(SAMPLERS, ("tab:blue", "tab:orange", "tab:green"))}
    for ax, release in zip(axes[0], versions):
        cells = [c for c in data["cells"] if c["release"] == release and c["runs"]]
        lines = sorted({(c["storage"], c["sampler"]) for c in cells}, key=_row_order)
        for i, (storage, sampler) in enumerate(lines):
            line = sorted(
                (c for c in cells if (c["storage"], c["sampler"]) == (storage, sampler)),
                key=lambda c: c["workers"],
            )
            # Lines often coincide (at 0 or 1): each is shifted a little along the log axis so
            # that every error bar shows.
            shift = 2 ** (0.04 * (i - (len(lines) - 1) / 2))
            xs = [c["workers"] * shift for c in line]
            ys = [c["losing_runs"] / c["runs"] for c in line]
            below = [y - c["wilson95"][0] for y, c in zip(ys, line)]
            above = [c["wilson95"][1] - y for y, c in zip(ys, line)]
            ax.errorbar(
                xs,
                ys,
                yerr=[below, above],
                linestyle=styles.get(storage, "-."),
                marker=markers.get(storage, "x"),
                color=colors.get(sampler),
                capsize=2,
                label=f"{_name(SAMPLER_NAMES, sampler)}, {_name(STORAGE_NAMES, storage)}",
            )
        counts = sorted({c["workers"] for c in cells})
        ax.set_xscale("log", base=2)
        ax.set_xticks(counts, [str(n) for n in counts])
        ax.minorticks_off()
        ax.set_title(f"Optuna {release}")
        ax.set_xlabel("workers")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
    handles, labels = axes[0][-1].get_legend_handles_labels()
    for ax in axes[0][:-1]:
        more = ax.get_legend_handles_labels()
        handles += [h for h, label in zip(*more) if label not in labels]
        labels += [label for label in more[1] if label not in labels]
    if handles:
        fig.legend(handles, labels, loc="center right", fontsize=7)
    axes[0][0].set_ylabel("runs that lost points (Wilson 95%)")
    fig.tight_layout(rect=(0, 0, 1 - LEGEND_WIDTH / fig.get_figwidth(), 1))
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)


def write(results: Path) -> list[Path]:
    """scale.md and scale.png beside ``results``, each written whole or not at all."""
    from repro import jsonfile

    data = jsonfile.load_json(results, schema=SCHEMA)
    markdown_path = results.with_suffix(".md")
    png = results.with_suffix(".png")
    jsonfile.write_atomic(markdown_path, markdown(data))
    # savefig writes in place; draw beside the target and rename, as write_atomic does.
    partial = results.with_name(f".{png.name}.partial.png")
    plot(data, partial)
    partial.replace(png)
    return [markdown_path, png]


def cmd_render(args: argparse.Namespace) -> int:
    import importlib.util

    if not args.results.is_file():
        raise ReproError(f"no {args.results}; run `nox -s scale` first")
    if importlib.util.find_spec("matplotlib") is None:
        raise ReproError("matplotlib is needed for the plot: run `nox -s scale_report`")
    paths = write(args.results)
    print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    prog = prog_name("python -m repro.scale.render")
    parser = Parser(prog=prog, description=__doc__)
    parser.add_argument(
        "--results", type=Path, default=DEFAULT_OUT, metavar="FILE", help="the sweep's results"
    )
    args = parser.parse_args(argv)
    args.command = "render"
    return dispatch(prog, {"render": cmd_render}, args)


if __name__ == "__main__":
    sys.exit(main())
