"""Run by ``tests/test_fault.py`` in a JVM of its own: ``local[2,3]`` lets a failed task be retried (up to 3
attempts), as a cluster does. The same small job (dense indices of string ids, implicit ALS, blocked top-K with
shelved books excluded) runs twice on identical input: once clean, once with a step that raises in the first
attempt of partition 0. Prints one JSON line: both outputs and whether the injected failure happened."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from pyspark import TaskContext

from recspark import als, clean, topk
from recspark import columns as C
from recspark.features import PREFERENCE
from recspark.spark import get_spark


def fails_on_first_attempt(marker: Path):
    """An identity ``mapInPandas`` step whose first attempt on partition 0 raises (and leaves ``marker``)."""

    def run(batches):
        ctx = TaskContext.get()
        if ctx.partitionId() == 0 and ctx.attemptNumber() == 0:
            marker.touch()
            raise RuntimeError("injected failure: first attempt of partition 0")
        yield from batches

    return run


def job(spark, rows, flaky: Path | None) -> dict:
    df = spark.createDataFrame(rows, "user_id string, book_idx int, preference float").repartition(
        4, "user_id"
    )
    if flaky is not None:
        df = df.mapInPandas(fails_on_first_attempt(flaky), df.schema)
    users = clean.dense_rank_of(df.select("user_id").distinct(), "user_id", C.USER_IDX)
    prefs = df.join(users, on="user_id", how="inner").select(C.USER_IDX, C.BOOK_IDX, PREFERENCE).persist()
    model = als.fit(spark, prefs, als.AlsParams(rank=8, max_iter=4, reg=0.1, alpha=5.0))
    recs = topk.recommend(
        spark, als.user_factors(model), als.item_factors(model), 5, seen=prefs.select(C.USER_IDX, C.BOOK_IDX)
    )
    out = {
        "users": sorted((r[0], r[1]) for r in users.collect()),
        "recs": sorted(
            (r[C.USER_IDX], r["rank"], r[C.BOOK_IDX], round(float(r["score"]), 4)) for r in recs.collect()
        ),
    }
    prefs.unpersist()
    return out


def main(work: str) -> None:
    spark = get_spark(
        app_name="recspark-retried-task",
        master="local[2,3]",
        shuffle_partitions=4,
        checkpoint_dir=str(Path(work) / "checkpoints"),
        extra_conf={"spark.ui.enabled": "false", "spark.sql.adaptive.enabled": "false"},
        log_level="ERROR",
    )
    rng = np.random.default_rng(3)
    pairs = {(int(u), int(b)) for u, b in zip(rng.integers(0, 120, 3000), rng.zipf(1.3, 3000) % 200)}
    rows = [(f"user-{u:04d}", b, float(1 + (u + b) % 3)) for u, b in sorted(pairs)]
    marker = Path(work) / "failed-once"
    clean_out = job(spark, rows, None)
    flaky_out = job(spark, rows, marker)
    print(json.dumps({"clean": clean_out, "retried": flaky_out, "failed_once": marker.exists()}))
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1])
