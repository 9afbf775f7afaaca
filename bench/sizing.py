"""Derive the cluster sizing for the full UCSD Goodreads from runs measured on this machine at three scales.

    .venv/bin/python bench/sizing.py    # reads bench/results/scale-0.01.json, scale-0.03.json, scale.json (0.1)

Inputs: ``python bench/scale.py --scale S --tune off`` at S = 0.01, 0.03 (``--no-evaluate --out scale-S``) and
0.1 (``--out scale``), and bench/results/topk.json (the large top-K benchmark, a cross-check of the top-K rate).

For each stage of the production path, the unit that drives its cost is chosen (input rows for ingest,
interactions for ALS, recommend, similar books, popular books and the checks), and three curves are fitted to
the three points:

* the least-squares line ``seconds = fixed + marginal x units`` (the fit, with its residuals);
* the marginal cost of the last segment (0.03 -> 0.1), the rate the largest run shows;
* the power law ``seconds = a x units^b`` through the three points (log-log least squares): ``b > 1`` means the
  stage grows faster than its unit.

The full-scale estimate is the last-segment marginal cost in core-seconds (x the cores it ran on) times the
full-scale units; the range is the smallest and largest of the three curves' extrapolations (the power law
extrapolated from the 0.1 point). The top-K and item-item kernels grow with users x books and books², which the
small runs cannot show; their full-scale cost comes from the large benchmark in topk.json and is added. Writes
bench/results/sizing.json and sizing.md; docs/sizing.md reads them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
INPUTS = ["scale-0.01.json", "scale-0.03.json", "scale.json"]

# the full UCSD Goodreads Book Graph (../shared/goodreads-formats.md)
FULL = {
    "interactions": 228_648_342,
    "users": 876_145,
    "books": 2_360_655,
    # CSV + dedup JSON (the same shelves twice) + id maps + books/authors/works/genres metadata
    "input_rows": 2 * 228_648_342 + 876_145 + 2_360_655 + 2_360_655 + 829_529 + 1_521_962 + 2_360_655,
}

STAGES = [  # (step name prefix, label, unit, units of a run, full-scale units)
    ("ingest", "ingest", "input rows", lambda s: s["input_rows"], FULL["input_rows"]),
    (
        "train",
        "train ALS (rank 64, 12 it.)",
        "interactions",
        lambda s: s["interactions"],
        FULL["interactions"],
    ),
    # recommend and similar books: at the measured sizes the top-K kernels are a small share (about 40 s of the
    # 718 s of recommend at 0.1); the rest (predicted stars, explanations, series order, writes) grows with the
    # interactions, and so do the measured seconds. The kernels' own growth (users x books, books²) is added
    # from the large top-K benchmark below.
    (
        "recommend",
        "recommend (predicted stars, explanations, series, writes)",
        "interactions",
        lambda s: s["interactions"],
        FULL["interactions"],
    ),
    (
        "similar",
        "similar books (item-item and content)",
        "interactions",
        lambda s: s["interactions"],
        FULL["interactions"],
    ),
    ("popular", "popular books", "interactions", lambda s: s["interactions"], FULL["interactions"]),
    ("serving", "serving tables", "books", lambda s: s["books"], FULL["books"]),
    ("check", "check and publish", "interactions", lambda s: s["interactions"], FULL["interactions"]),
]


def curves(x: np.ndarray, y: np.ndarray, full: float, cores: int) -> dict:
    """The three fits of one stage and their full-scale core-hours."""
    marginal, fixed = np.polyfit(x, y, 1)
    residuals = y - (fixed + marginal * x)
    last = max((y[-1] - y[-2]) / (x[-1] - x[-2]), 0.0)
    b, log_a = np.polyfit(np.log(x), np.log(y), 1)

    def core_hours(seconds: float) -> float:
        return round(seconds * cores / 3600, 2)

    estimates = {
        "last_segment": core_hours(last * full),
        "least_squares": core_hours(max(marginal, 0.0) * full),
        "power_law": core_hours(y[-1] * (full / x[-1]) ** b),
    }
    return {
        "fixed_seconds": round(float(fixed), 1),
        "core_seconds_per_million_units": {
            "least_squares": round(float(marginal) * cores * 1e6, 4),
            "last_segment": round(float(last) * cores * 1e6, 4),
        },
        "residuals_seconds": [round(float(r), 1) for r in residuals],
        "power_law_exponent": round(float(b), 2),
        "full_core_hours": estimates["last_segment"],
        "full_core_hours_range": [min(estimates.values()), max(estimates.values())],
        "estimates": estimates,
    }


def main() -> None:
    runs = [json.loads((RESULTS / f).read_text()) for f in INPUTS]
    cores = runs[-1]["cores"]
    stages = []
    for prefix, label, unit, units_of, full in STAGES:
        x = np.array([float(units_of(r["sizes"])) for r in runs])
        y = np.array([next(s["seconds"] for s in r["steps"] if s["step"].startswith(prefix)) for r in runs])
        stages.append(
            {"stage": label, "unit": unit, "measured_units": x.tolist(), "measured_seconds": y.tolist()}
            | curves(x, y, full, cores)
            | {"full_units": full}
        )
    topk = json.loads((RESULTS / "topk.json").read_text())
    pairs_per_core_second = topk["users"] * topk["items"] / (topk["recspark_seconds"] * topk["cores"])
    ii = topk["item_item"]
    sim_pairs_per_core_second = ii["items"] ** 2 / (ii["recspark_seconds"] * topk["cores"])
    for label, unit, pairs, rate in (
        (
            "top-K kernel, all users (topk.json)",
            "users x books",
            FULL["users"] * FULL["books"],
            pairs_per_core_second,
        ),
        ("item-item kernel, all books (topk.json)", "books²", FULL["books"] ** 2, sim_pairs_per_core_second),
    ):
        hours = round(pairs / rate / 3600, 2)
        stages.append(
            {
                "stage": label,
                "unit": unit,
                "core_seconds_per_million_units": {"benchmark": round(1e6 / rate, 5)},
                "full_core_hours": hours,
                "full_core_hours_range": [hours, hours],
                "full_units": pairs,
            }
        )
    total = round(sum(s["full_core_hours"] for s in stages), 1)
    low = round(sum(s["full_core_hours_range"][0] for s in stages), 1)
    high = round(sum(s["full_core_hours_range"][1] for s in stages), 1)
    out = {
        "command": "python bench/sizing.py",
        "inputs": [f"bench/results/{f}" for f in INPUTS] + ["bench/results/topk.json"],
        "scales": [r["command"] for r in runs],
        "cores_measured_on": cores,
        "full": FULL,
        "stages": stages,
        "total_core_hours": total,
        "total_core_hours_range": [low, high],
    }
    (RESULTS / "sizing.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        "# Full-scale sizing fitted to three measured scales",
        "",
        f"`{out['command']}` from {', '.join(out['inputs'])} (each run on {cores} cores, local[{cores}]). Full "
        f"dataset: {FULL['interactions']:,} interactions, {FULL['users']:,} users, {FULL['books']:,} books, "
        f"{FULL['input_rows']:,} input rows.",
        "",
        "| stage | grows with | seconds at 0.01 / 0.03 / 0.1 | least-squares fixed s | residuals s "
        "| core-s per 1M units (last segment) | power-law exponent | full-scale core-hours (range) |",
        "|---|---|---|---:|---|---:|---:|---|",
    ]
    for s in stages:
        if "measured_seconds" not in s:
            lines.append(
                f"| {s['stage']} | {s['unit']} | (benchmark) | | | {s['core_seconds_per_million_units']['benchmark']} "
                f"| | **{s['full_core_hours']}** |"
            )
            continue
        secs = " / ".join(f"{v:.1f}" for v in s["measured_seconds"])
        res = ", ".join(f"{v:+.1f}" for v in s["residuals_seconds"])
        lo, hi = s["full_core_hours_range"]
        lines.append(
            f"| {s['stage']} | {s['unit']} | {secs} | {s['fixed_seconds']} | {res} "
            f"| {s['core_seconds_per_million_units']['last_segment']} | {s['power_law_exponent']} "
            f"| **{s['full_core_hours']}** ({lo}–{hi}) |"
        )
    lines += [
        "",
        f"Total: **{total} core-hours** (range {low}–{high}) for ingest, training and publication, if rates scale "
        "linearly with cores. The two kernel rows come from the large top-K benchmark (K=100, 100k users x 200k "
        "books; item-item on 200k books) and are added on top of the measured steps, which already contain the "
        "kernels at their small sizes: an upper bound.",
    ]
    (RESULTS / "sizing.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
