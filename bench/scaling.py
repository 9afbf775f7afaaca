"""How the production path scales on this machine: ingest, then train + publish (no evaluation), at several
generated scales, with per-stage timings and the sizes that drive each stage's cost.

    .venv/bin/python bench/scaling.py --scales 0.001 0.003 0.01

Each scale gets its own generated data (bench/data, not committed) and a fresh lakehouse; the default run
configuration (rank 64, 12 iterations, K=10, similar K=20, min readers 5) and the local default session
(local[cores]). Writes bench/results/scaling.json and scaling.md; docs/sizing.md derives the cluster guide for
the full 228M interactions from these numbers and from bench/results/topk.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from generated import fresh_lakehouse  # noqa: E402


def measure(scale: float, seed: int) -> dict:
    from pyspark.sql import functions as F

    from recspark import columns as C
    from recspark.ingest import run_ingest
    from recspark.pipeline import RunConfig, run_pipeline

    spark, lake, raw = fresh_lakehouse(scale, seed, "scaling")
    t = time.perf_counter()
    ingested = run_ingest(spark, lake, str(raw), "goodreads", f"scaling-{scale}")
    ingest_seconds = time.perf_counter() - t
    cfg = RunConfig(evaluate=False)
    t = time.perf_counter()
    summary = run_pipeline(spark, lake, cfg, HERE / "data" / "reports")
    pipeline_seconds = time.perf_counter() - t
    inter = lake.read("silver", "interactions")
    readers = inter.groupBy(C.BOOK_IDX).count()
    sizes = {
        "input_rows": sum(c.read for c in ingested.counts if not c.table.startswith("silver")),
        "interactions": ingested.tables["interactions"],
        "users": ingested.tables["users"],
        "books": ingested.tables["books"],
        "books_with_interactions": readers.count(),
        "books_with_min_readers": readers.where(F.col("count") >= cfg.min_readers).count(),
    }
    return {
        "scale": scale,
        "sizes": sizes,
        "ingest_seconds": round(ingest_seconds, 1),
        "pipeline_seconds": round(pipeline_seconds, 1),
        "steps": summary["timings"],
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scales", type=float, nargs="+", default=[0.001, 0.003, 0.01])
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()
    from recspark.cli import setup_logging

    setup_logging()
    runs = []
    for scale in args.scales:  # one session for all scales: its start-up is not part of any stage
        runs.append(measure(scale, args.seed))
        print(json.dumps(runs[-1], indent=2), flush=True)
    cores = os.cpu_count() or 2
    out = {
        "command": "python bench/scaling.py --scales " + " ".join(str(s) for s in args.scales),
        "measured": time.strftime("%Y-%m-%d"),
        "cores": cores,
        "config": "rank 64, 12 iterations, K=10, similar K=20, min readers 5, no evaluation",
        "runs": runs,
    }
    res = HERE / "results"
    res.mkdir(exist_ok=True)
    (res / "scaling.json").write_text(json.dumps(out, indent=2) + "\n")
    steps = list(runs[-1]["steps"])
    lines = [
        f"# Scaling of the production path ({out['measured']}, {cores} cores, local[{cores}])",
        "",
        f"`{out['command']}`; {out['config']}. Seconds per stage:",
        "",
        "| scale | interactions | users | books | ingest | " + " | ".join(steps) + " |",
        "|---:|---:|---:|---:|---:|" + "---:|" * len(steps),
    ]
    for r in runs:
        s = r["sizes"]
        lines.append(
            f"| {r['scale']} | {s['interactions']:,} | {s['users']:,} | {s['books']:,} | {r['ingest_seconds']} | "
            + " | ".join(str(r["steps"].get(name, "")) for name in steps)
            + " |"
        )
    (res / "scaling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
