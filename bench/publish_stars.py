"""Seconds of a publish of a trained model with its predicted stars read from the model (``model/stars``, saved at
training since 2026-12-04) against fitted again at publish (what every publish did before), side by side in one
Spark session on the same lakehouse.

    PYSPARK_PYTHON=.venv/bin/python .venv/bin/python bench/publish_stars.py --scale 0.005 --repeat 3

Generates UCSD-format data at ``--scale`` (seed 5), ingests it and trains the default model once (``--tune off``
values: the built-in ALS), then publishes it once to warm up (``k`` 9, not counted) and ``2 * --repeat`` times,
alternating the sides (saved first), each with another ``k`` (10, 11, ...) so no publish is served as an
earlier one. The "fitted again" side is the code path a model trained before the stars were saved still takes
(``pipeline.load_stars`` finding nothing). Per publish: the seconds of its recommend step (where the stars are
predicted) and of the whole publish. Appends to ``bench/results/publish_stars.json``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from common import append_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.005)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    from recspark import pipeline
    from recspark.config import RunConfig
    from recspark.ingest import run_ingest
    from recspark.pipeline import publish_stage, train_all
    from recspark.sources.synthetic import generate
    from recspark.spark import get_spark
    from recspark.tables import SILVER, Lakehouse

    work = a.work or Path(tempfile.mkdtemp(prefix="publish-stars-"))
    raw = work / "raw"
    if not raw.exists():
        generate(raw, scale=a.scale, seed=5)
    shutil.rmtree(work / "lakehouse", ignore_errors=True)  # a rerun publishes afresh, never served as is
    spark = get_spark(master="local[2]", checkpoint_dir=str(work / "checkpoints"))
    lake = Lakehouse(spark, str(work / "lakehouse"))
    run_ingest(spark, lake, str(raw), "goodreads", "bench")
    interactions = lake.read(SILVER, "interactions")
    n = interactions.count()
    rated = interactions.where("rating > 0").count()
    t = time.perf_counter()
    model_run, _ = train_all(spark, lake, RunConfig())
    train_s = round(time.perf_counter() - t, 1)
    print(f"{n:,} interactions, {rated:,} rated; trained {model_run} in {train_s} s", flush=True)

    saved_loader = pipeline.load_stars
    t = time.perf_counter()
    # a warm-up, not counted: the first publish of a session is slower
    publish_stage(spark, lake, RunConfig(k=9), model_run)
    print(f"warm-up publish (k 9, saved): {time.perf_counter() - t:.1f} s", flush=True)
    runs = []
    k = 10
    for _ in range(a.repeat):
        for side in ("saved", "fitted again"):
            pipeline.load_stars = saved_loader if side == "saved" else (lambda lake, model_run: None)
            t = time.perf_counter()
            out = publish_stage(spark, lake, RunConfig(k=k), model_run)
            total = round(time.perf_counter() - t, 1)
            recommend = next(v for step, v in out["timings"].items() if step.startswith("recommend"))
            runs.append({"side": side, "k": k, "recommend_s": recommend, "publish_s": total})
            print(runs[-1], flush=True)
            k += 1
    pipeline.load_stars = saved_loader
    spark.stop()

    def mean(side: str, key: str) -> float:
        values = [r[key] for r in runs if r["side"] == side]
        return round(sum(values) / len(values), 1)

    result = {
        "when": time.strftime("%Y-%m-%d"),
        "scale": a.scale,
        "interactions": n,
        "rated": rated,
        "train_s": train_s,
        "runs": runs,
        "recommend_s": {side: mean(side, "recommend_s") for side in ("saved", "fitted again")},
        "publish_s": {side: mean(side, "publish_s") for side in ("saved", "fitted again")},
        "command": "PYSPARK_PYTHON=.venv/bin/python .venv/bin/python bench/publish_stars.py "
        f"--scale {a.scale} --repeat {a.repeat}",
    }
    print(result["recommend_s"], result["publish_s"])
    append_result("publish_stars", result)


if __name__ == "__main__":
    main()
