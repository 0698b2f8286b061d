"""The report section "Upgrading workers one at a time", rendered from ``rolling.json`` alone
(the verdicts are read from the file, not recomputed, so every figure printed is in it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repro.expectations import grid_family, rolling_expected, storage_expected
from repro.jsonfile import load_json
from repro.rolling.records import SCHEMA
from repro.rolling.verdict import ADVICE, REFUSES, SAFE, SAFE_WITH_SEED, UNSAFE

TITLE = "## Upgrading workers one at a time"
JOURNALS = ("journal", "redis")  # the journal storages; the rest are RDB
VERDICT_WORDS = {
    SAFE: "**safe**",
    SAFE_WITH_SEED: "**safe only with a shared seed**",
    UNSAFE: "**unsafe**",
    REFUSES: "**refuses the storage**",
}


def _cell(case: dict[str, Any]) -> str:
    outcome = str(case["outcome"])
    if outcome == "exact":
        return "✓"
    if outcome in ("lost-points", "duplicates"):
        return f"✗ {case['missing']}·{case['duplicates']}"
    return outcome


def section_from_json(path: Path) -> list[str]:
    return render(load_json(path, schema=SCHEMA))


def render(data: dict[str, Any]) -> list[str]:
    """The section's Markdown lines from the JSON object of ``rolling.json``."""
    cases: list[dict[str, Any]] = data["cases"]
    storages = list(dict.fromkeys(c["storage"] for c in cases))
    lines = [
        TITLE,
        "",
        "Workers of two Optuna releases share one study, as while a cluster is upgraded one "
        f"worker at a time: {len(cases)} cases (4 workers alternating between the releases, "
        "the creator's first; each worker a fresh interpreter in its release's environment), "
        f"measured in {data['wall_seconds']:g} s (summed over the runs that wrote the file: "
        f"`{data['command']}`).",
        "",
        "| pair | verdict | exact, seed none | exact, seed shared | storage | what to do |",
        "|---|---|---|---|---|---|",
    ]
    for v in data["verdicts"]:
        by = v["exact_by_policy"]
        refused = ", ".join(v["refused_storages"])
        lines.append(
            f"| {v['older']} + {v['newer']} | {VERDICT_WORDS[v['verdict']]} | "
            + " | ".join(f"{by[p][0]}/{by[p][1]}" if p in by else "-" for p in ("none", "shared"))
            + f" | {'refused on ' + refused if refused else 'opened by both'} | {v['advice']} |"
        )
    lines += [
        "",
        "Per case: `✓` every point once, `✗ m·d` m points missing and d evaluated twice, "
        "`refused` a release would not open the other's storage, `worker-failed` / `hung` a "
        "worker crashed or was killed at its timeout. Each cell reads *created by the older "
        "release / created by the newer*. The expected outcome is the row of "
        "`repro/expectations.py` (`ROLLING_TABLE`, `SCHEMA_HEADS`) with the upstream lines "
        "behind it; `disagree` and `racy` force no outcome.",
        "",
        "| pair | mode | seed | " + " | ".join(storages) + " | expected |",
        "|---|---|---|" + "---|" * len(storages) + "---|",
    ]
    keys = list(dict.fromkeys((c["older"], c["newer"], c["mode"], c["seed_policy"]) for c in cases))
    for older, newer, mode, policy in keys:
        row = [
            c
            for c in cases
            if (c["older"], c["newer"], c["mode"], c["seed_policy"]) == (older, newer, mode, policy)
        ]
        cells = []
        for storage in storages:
            pair = [c for c in row if c["storage"] == storage]
            ordered = sorted(pair, key=lambda c: c["creator"] != older)
            cells.append(" / ".join(_cell(c) for c in ordered) or "-")
        expected = sorted({f"{c['expected']}, storage {c['expected_storage']}" for c in row})
        lines.append(
            f"| {older} + {newer} | {mode} | {policy} | "
            + " | ".join(cells)
            + f" | {'; '.join(expected)} |"
        )
    refusals = sorted({text for v in data["verdicts"] for text in v["refusals"]})
    if refusals:
        lines += ["", "What the refusing releases said:", ""]
        lines += [f"- {text}" for text in refusals]
    failures = [
        c for c in cases if c["outcome"] in ("not-run", "worker-failed", "hung", "collect-failed")
    ]
    if failures:
        lines += ["", "Workers that failed for another cause (last stderr line):", ""]
        for c in failures:
            bad = [w for w in c["workers"] if w["exit_code"] != 0 and not w["stopped"]]
            last = (
                bad[0]["stderr_tail"].splitlines()[-1]
                if bad and bad[0]["stderr_tail"]
                else c["collect_error"] or c.get("error")
            )
            lines.append(f"- `{c['case_id']}`: {last}")
    against = [p for v in data["verdicts"] for p in v["violations"]]
    lines += ["", "Against the expectation table: " + ("none." if not against else "")]
    lines += [f"- {p}" for p in against]
    lines += ["", "What to do, read off the measurements:", ""]
    for kind in (SAFE, SAFE_WITH_SEED, UNSAFE, REFUSES):
        chosen = [v for v in data["verdicts"] if v["verdict"] == kind]
        if chosen:
            pairs = ", ".join(
                f"{v['older']} + {v['newer']}"
                + (
                    f" (refused on {', '.join(v['refused_storages'])})"
                    if v["refused_storages"]
                    else ""
                )
                for v in chosen
            )
            lines.append(f"- {pairs}: {ADVICE[kind]}.")
    lines += ["", "The expectation rows behind the table:", ""]
    lines += _sources(cases)
    return lines


def _sources(cases: list[dict[str, Any]]) -> list[str]:
    """Each expectation row the cases used, with its upstream lines (a lookup in the table of
    repro/expectations.py by the releases the JSON names; nothing is measured here)."""
    seen: dict[str, tuple[str, ...]] = {}
    for c in cases:
        row = rolling_expected(c["older"], c["newer"], c["mode"], c["seed_policy"])
        families = " + ".join(sorted({grid_family(v).name for v in (c["older"], c["newer"])}))
        seen.setdefault(f"`{row.outcome}` for {families}: {row.why}", row.cite)
        store = storage_expected(c["older"], c["newer"], c["storage"])
        kind = "journal" if c["storage"] in JOURNALS else "RDB"
        seen.setdefault(f"storage `{store.outcome}` ({kind}): {store.why}", store.cite)
    return [
        f"- {text} (" + ", ".join(f"[{i}]({url})" for i, url in enumerate(cite, 1)) + ")"
        for text, cite in seen.items()
    ]
