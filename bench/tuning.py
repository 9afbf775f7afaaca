"""What self-tuning and evaluation cost, at several generated scales, measured in one session.

    .venv/bin/python bench/tuning.py --scales 0.001 0.003

For each scale: generate (bench/data, not committed), ingest, the evaluation split, then

* **tuning**: ``recspark run``'s search (default configurations and automatic budget) on the split's training
  side: seconds, trials, the winner and its validation NDCG@10;
* **evaluation** of the chosen configuration: ALS fit on the training side, the ALS top-K lists of the test
  users (``recommend``: the recommend stage's work for the same users), the popularity and trending lists, then
  every metric at K = 5, 10, 20 over the materialised lists of all three models (``metrics``). The target is
  metrics <= 1.5x recommend.

Writes bench/results/tuning.json and tuning.md.
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
    from recspark.config import RunConfig, TuneOptions
    from recspark.ingest import run_ingest
    from recspark.pipeline import choose_parameters, evaluate_model, make_split

    spark, lake, raw = fresh_lakehouse(scale, seed, "tuning")
    ingested = run_ingest(spark, lake, str(raw), "goodreads", f"tuning-{scale}")
    cfg = RunConfig()
    s = make_split(spark, lake, lake.read("silver", "interactions"), cfg)
    t = time.perf_counter()
    cfg, tuning = choose_parameters(spark, lake, cfg, s.train, TuneOptions(mode="full"))
    tune_seconds = time.perf_counter() - t
    t = time.perf_counter()
    ev = evaluate_model(spark, lake, cfg, s, "bench-tuning", HERE / "data" / "reports", tuning)
    eval_seconds = time.perf_counter() - t
    return {
        "scale": scale,
        "interactions": ingested.tables["interactions"],
        "users": ingested.tables["users"],
        "books": ingested.tables["books"],
        "tune_seconds": round(tune_seconds, 1),
        "tune_budget_s": tuning["budget_s"],
        "trials": tuning["trials"],
        "chosen": tuning["best"],
        "runner_up": tuning["runner_up"],
        "evaluate_seconds": round(eval_seconds, 1),
        "evaluate_steps": ev.timings,
        "metrics_over_recommend": round(ev.timings["metrics"] / ev.timings["recommend"], 2),
        "ndcg@10": {m: round(ev.value(m, "ndcg", 10), 4) for m in ev.results},
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scales", type=float, nargs="+", default=[0.001, 0.003])
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()
    from recspark.cli import setup_logging

    setup_logging()
    runs = [measure(scale, args.seed) for scale in args.scales]
    out = {
        "command": "python bench/tuning.py --scales " + " ".join(map(str, args.scales)),
        "measured": time.strftime("%Y-%m-%d"),
        "cores": os.cpu_count(),
        "runs": runs,
    }
    results = HERE / "results"
    (results / "tuning.json").write_text(json.dumps(out, indent=1) + "\n")
    lines = [
        "# Self-tuning and evaluation cost",
        "",
        f"`{out['command']}` on {out['cores']} cores, {out['measured']}.",
        "",
        "| scale | interactions | tuning s (budget) | trials | chosen | evaluate s | fit | recommend | baselines "
        "| metrics | metrics / recommend |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        c, st = r["chosen"] or {}, r["evaluate_steps"]
        chosen = (
            f"rank {c['rank']}, reg {c['reg']}, alpha {c['alpha']}, {c['scheme']}/{c['signals']}"
            if c
            else "-"
        )
        lines.append(
            f"| {r['scale']} | {r['interactions']:,} | {r['tune_seconds']} ({r['tune_budget_s']}) | {r['trials']} "
            f"| {chosen} | {r['evaluate_seconds']} | {st['fit']} | {st['recommend']} | {st['baselines']} | {st['metrics']} "
            f"| {r['metrics_over_recommend']} |"
        )
    (results / "tuning.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
