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
    ALS writes checkpoints every ``checkpoint_interval`` iterations and the lineage stays short."""
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
