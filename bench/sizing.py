"""Derive the cluster sizing for the full UCSD Goodreads from what was measured on this machine.

    .venv/bin/python bench/sizing.py          # reads bench/results/scaling.json and topk.json

For each stage, a straight line ``seconds = fixed + per_unit * units`` is drawn through the two largest
measured scales (the smallest runs first, in a cold JVM), with the unit that drives that stage's cost (input rows for ingest, interactions for ALS and
for the checks, query x book pairs for top-K). The marginal rate is turned into core-seconds (x the cores it
ran on) and scaled to the full dataset. For top-K and item-item, the rate is taken from the large, side-by-side
benchmark in topk.json instead, because at these small scales the fixed costs hide it. Writes
bench/results/sizing.json and sizing.md; docs/sizing.md explains how to read them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

# the full UCSD Goodreads Book Graph (../shared/goodreads-formats.md)
FULL = {
    "interactions": 228_648_342,
    "users": 876_145,
    "books": 2_360_655,
    # CSV + dedup JSON (the same shelves twice) + id maps + books/authors/works/genres metadata
    "input_rows": 2 * 228_648_342 + 876_145 + 2_360_655 + 2_360_655 + 829_529 + 1_521_962 + 2_360_655,
}
K, SIM_K, RANK = 10, 20, 64


def fit(x: list[float], y: list[float]) -> tuple[float, float]:
    """(fixed seconds, seconds per unit) of the line through the two largest scales. The smallest scale runs
    first, in a cold JVM, so its time includes warm-up; the marginal cost is what scales."""
    order = np.argsort(x)
    (x1, y1), (x2, y2) = [(float(x[i]), float(y[i])) for i in order[-2:]]
    slope = max((y2 - y1) / (x2 - x1), 0.0)
    return y2 - slope * x2, slope


def main() -> None:
    scaling = json.loads((HERE / "results" / "scaling.json").read_text())
    topk = json.loads((HERE / "results" / "topk.json").read_text())
    runs, cores = scaling["runs"], scaling["cores"]
    inter = [r["sizes"]["interactions"] for r in runs]
    rows = [r["sizes"]["input_rows"] for r in runs]
    step = {name: [r["steps"][name] for r in runs] for name in runs[-1]["steps"]}
    train = next(n for n in step if n.startswith("train"))
    check = next(n for n in step if n.startswith("check"))
    popular = next(n for n in step if n.startswith("popular"))

    stages = []

    def add(name: str, unit: str, x: list[float], y: list[float], full_units: float, note: str) -> None:
        fixed, per = fit(x, y)
        stages.append(
            {
                "stage": name,
                "unit": unit,
                "measured_units": x,
                "measured_seconds": y,
                "fixed_seconds": round(fixed, 1),
                "core_seconds_per_million_units": round(per * cores * 1e6, 3),
                "full_units": full_units,
                "full_core_hours": round(per * cores * full_units / 3600, 2),
                "note": note,
            }
        )

    add("ingest", "input rows", rows, [r["ingest_seconds"] for r in runs], FULL["input_rows"], "")
    add("train ALS (rank 64, 12 it.)", "interactions", inter, step[train], FULL["interactions"], "")
    add("popular books", "interactions", inter, step[popular], FULL["interactions"], "")
    add("check and publish", "interactions", inter, step[check], FULL["interactions"], "")

    # top-K: rate from the large benchmark (core-seconds per pair at rank 64), scaled to the full pairs
    pairs_per_core_second = topk["users"] * topk["items"] / (topk["recspark_seconds"] * topk["cores"])
    full_pairs = FULL["users"] * FULL["books"]
    ii = topk["item_item"]
    sim_rate = ii["items"] ** 2 / (ii["recspark_seconds"] * topk["cores"])
    share = runs[-1]["sizes"]["books_with_min_readers"] / runs[-1]["sizes"]["books"]
    for name, pairs, rate, note in (
        (
            "recommend (read books excluded)",
            full_pairs,
            pairs_per_core_second,
            "rate from topk.json, measured at K=100",
        ),
        (
            "similar books, all books",
            FULL["books"] ** 2,
            sim_rate,
            "rate from topk.json item_item; upper bound (min readers 1)",
        ),
        (
            f"similar books, {share:.0%} of books (share with >= 5 readers at the largest scale)",
            (share * FULL["books"]) ** 2,
            sim_rate,
            "rate from topk.json item_item",
        ),
    ):
        stages.append(
            {
                "stage": name,
                "unit": "query x book pairs",
                "core_seconds_per_million_units": round(1e6 / rate, 5),
                "full_units": pairs,
                "full_core_hours": round(pairs / rate / 3600, 2),
                "note": note,
            }
        )
    total = sum(s["full_core_hours"] for s in stages if not s["stage"].startswith("similar books, all"))
    out = {
        "command": "python bench/sizing.py",
        "inputs": ["bench/results/scaling.json", "bench/results/topk.json"],
        "cores_measured_on": cores,
        "full": FULL,
        "stages": stages,
        "total_core_hours": round(total, 1),
    }
    (HERE / "results" / "sizing.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        "# Full-scale sizing derived from measurements",
        "",
        f"`{out['command']}` from {', '.join(out['inputs'])} (measured on {cores} cores). Full dataset: "
        f"{FULL['interactions']:,} interactions, {FULL['users']:,} users, {FULL['books']:,} books, "
        f"{FULL['input_rows']:,} input rows.",
        "",
        "| stage | grows with | fixed s | core-s per 1M units | full-scale units | core-hours |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for s in stages:
        lines.append(
            f"| {s['stage']} | {s['unit']} | {s.get('fixed_seconds', '')} | {s['core_seconds_per_million_units']} "
            f"| {s['full_units']:,.0f} | {s['full_core_hours']} |"
        )
    lines += ["", f"Total (without the all-books upper bound): **{out['total_core_hours']} core-hours**."]
    (HERE / "results" / "sizing.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
