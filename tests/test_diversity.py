"""MMR re-ranking: the greedy order on hand-made vectors, and the Spark re-ranking against it."""

from __future__ import annotations

import numpy as np

from recspark import diversity


def vectors():
    # books 0 and 1 point the same way, book 2 is orthogonal to both, book 3 has no vector
    return np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], dtype=np.float32)


def test_mmr_order_by_hand():
    rel = np.array([1.0, 0.9, 0.8, 0.1])
    assert diversity.mmr_order(rel, vectors(), 4, 0.0) == [0, 1, 2, 3]  # weight 0: the model's order
    # weight 0.5: 0 first (0.5); then 1 scores 0.45 - 0.5 = -0.05, 2 scores 0.4, 3 scores 0.05 -> 2;
    # then 1 scores -0.05 and 3 scores 0.05 -> 3; then 1
    assert diversity.mmr_order(rel, vectors(), 4, 0.5) == [0, 2, 3, 1]
    assert diversity.mmr_order(rel, vectors(), 2, 0.5) == [0, 2]


def test_spark_rerank_matches_the_greedy_order(spark):
    recs = spark.createDataFrame(
        [
            (7, 1, 10, 4.0),
            (7, 2, 11, 3.6),
            (7, 3, 12, 3.2),
            (7, 4, 13, 0.4),
            (8, 1, 12, 1.0),
            (8, 2, 10, 0.5),
        ],
        "user_idx int, rank int, book_idx int, score float",
    )
    items = spark.createDataFrame(
        [(10, [2.0, 0.0]), (11, [3.0, 0.0]), (12, [0.0, 0.5])], "book_idx int, features array<float>"
    )
    got = {}
    for r in diversity.rerank(recs, items, 3, 0.5).orderBy("user_idx", "rank").collect():
        got.setdefault(r["user_idx"], []).append((r["rank"], r["book_idx"], round(r["score"], 4)))
    # user 7: relevance (4 - 0.4) / 3.6 scaled: 1, 0.889, 0.778, 0 -> picks 10, then 12 (orthogonal), then 13
    # (no vector: 0.5 * 0 - 0 = 0 beats 11's 0.444 - 0.5)
    assert got[7] == [(1, 10, 4.0), (2, 12, 3.2), (3, 13, 0.4)]
    assert got[8] == [(1, 12, 1.0), (2, 10, 0.5)]
