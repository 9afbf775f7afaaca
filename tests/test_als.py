"""ALS stage: checkpointing on long runs, deterministic fits, factors saved by run id, ALS beats popularity."""

from __future__ import annotations

import os

import pytest

from recspark import als
from recspark.features import Weights, preference


def tiny_prefs(spark):
    rows = [(u, b, 1.0) for u in range(40) for b in range(30) if (u * 7 + b * 3) % 5 == 0]
    return spark.createDataFrame(rows, "user_idx int, book_idx int, preference float")


@pytest.mark.slow
def test_long_run_checkpoints_instead_of_overflowing(spark):
    """60 iterations: the lineage would overflow the stack without checkpointing; with a checkpoint directory
    ALS writes checkpoints every ``checkpoint_interval`` iterations and the lineage stays short.

    Checked on 2026-11-22: the same fit in a session without a checkpoint directory died with
    ``java.lang.StackOverflowError`` (local[2], default stack size)."""
    ckpt = spark.sparkContext.getCheckpointDir()
    assert ckpt, "the session fixture must set a checkpoint directory"
    before = sum(len(f) for _, _, f in os.walk(ckpt.removeprefix("file:")))
    model = als.fit(spark, tiny_prefs(spark), als.AlsParams(rank=4, max_iter=60, checkpoint_interval=5))
    assert model.itemFactors.count() == 30
    after = sum(len(f) for _, _, f in os.walk(ckpt.removeprefix("file:")))
    assert after > before, "ALS wrote no checkpoint files"


def test_fit_is_deterministic(spark):
    prefs = tiny_prefs(spark).cache()
    p = als.AlsParams(rank=4, max_iter=3)
    a = sorted(
        (r[0], tuple(round(x, 5) for x in r[1])) for r in als.item_factors(als.fit(spark, prefs, p)).collect()
    )
    b = sorted(
        (r[0], tuple(round(x, 5) for x in r[1])) for r in als.item_factors(als.fit(spark, prefs, p)).collect()
    )
    assert a == b


def test_preference_feeds_als(spark):
    df = spark.createDataFrame(
        [(0, 1, True, 5, False), (1, 1, False, 0, False)],
        "user_idx int, book_idx int, is_read boolean, rating int, is_reviewed boolean",
    )
    prefs = df.transform(preference(Weights()))
    assert set(prefs.columns) == {"user_idx", "book_idx", "preference"}


@pytest.mark.slow
def test_default_als_beats_popularity_on_generated_data(spark, generated, tmp_path):
    """End to end on generated UCSD data (scale 0.002: 1.75k users, 4.7k books): the CSV's shelves, a persisted
    per-user 20% holdout, ALS with the *default* configuration vs popularity, scored by NDCG@10 on the held-out
    books. Measured 1.61x here (0.521 vs 0.323 on 2026-12-02) since the generator is shaped like Goodreads (issue #15: the top
    1% of books hold 10x their share, so popularity is a strong baseline, as on real shelves); 2.90x on the
    earlier, flatter generator. The bound is 1.4x: ALS must still clearly beat popularity.

    The lists and the metric are the evaluation step's own parts (``topk.recommend`` with the test users' training
    books excluded, ``evaluate.baseline_lists``, ``metrics.ranking_metrics``); the step itself, every family and
    baseline side by side with its report, runs on the self-tuning fixture (``tests/test_tune.py``)."""
    from pyspark.sql import functions as F

    from recspark import columns as C
    from recspark import evaluate, metrics, topk
    from recspark.config import RunConfig
    from recspark.pipeline import make_split, train
    from recspark.tables import Lakehouse

    out, _ = generated
    interactions = (
        spark.read.option("header", True)
        .schema("user_id int, book_id int, is_read int, rating int, is_reviewed int")
        .csv(str(out / "goodreads_interactions.csv"))
        .select(
            F.col("user_id").alias(C.USER_IDX),
            F.col("book_id").alias(C.BOOK_IDX),
            (F.col("is_read") == 1).alias(C.IS_READ),
            F.col("rating").alias(C.RATING),
            (F.col("is_reviewed") == 1).alias(C.IS_REVIEWED),
            F.lit(None).cast("timestamp").alias(C.DATE_ADDED),
        )
    )
    cfg = RunConfig()
    assert cfg.als == als.AlsParams() and cfg.weights == Weights()  # the defaults `recspark run` uses
    s = make_split(spark, Lakehouse(spark, str(tmp_path / "lakehouse")), interactions, cfg)
    test_users = s.test.select(C.USER_IDX).distinct()
    seen = s.train.join(test_users, on=C.USER_IDX, how="left_semi").select(C.USER_IDX, C.BOOK_IDX)
    model = train(spark, s.train, cfg)
    users = als.user_factors(model).join(test_users, on=C.USER_IDX, how="left_semi")
    lists = {
        "als": topk.recommend(spark, users, als.item_factors(model), 10, seen=seen),
        "popularity": evaluate.baseline_lists(spark, s.train, s.test, 10, with_trending=False)["popularity"],
    }
    ndcg = {name: metrics.ranking_metrics(recs, s.test, [10])[10]["ndcg"] for name, recs in lists.items()}
    print(f"ALS NDCG@10 {ndcg['als']:.4f} vs popularity {ndcg['popularity']:.4f}")
    ratio = ndcg["als"] / ndcg["popularity"]
    assert ratio >= 1.4, f"ALS/popularity NDCG@10 = {ratio:.2f} (measured 1.61x on this data)"
