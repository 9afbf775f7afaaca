"""Metrics against hand-computed values and a brute-force numpy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyspark.sql import functions as F

from recspark import metrics


def test_hand_computed(spark):
    # user 1: recs [10, 11, 12, 13], relevant {11, 13, 99}; user 2: recs [20, 21], relevant {20}
    # user 3: relevant {30}, no recommendations at all
    recs = spark.createDataFrame(
        [(1, 1, 10), (1, 2, 11), (1, 3, 12), (1, 4, 13), (2, 1, 20), (2, 2, 21)],
        "user_idx int, rank int, book_idx int",
    )
    truth = spark.createDataFrame([(1, 11), (1, 13), (1, 99), (2, 20), (3, 30)], "user_idx int, book_idx int")
    m = metrics.ranking_metrics(recs, truth, [2, 4])
    l2 = math.log2
    # @2: u1 hits rank 2; u2 hits rank 1; u3 none
    assert m[2]["precision"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert m[2]["recall"] == pytest.approx((1 / 3 + 1 + 0) / 3)
    ndcg_u1 = (1 / l2(3)) / (1 + 1 / l2(3))
    assert m[2]["ndcg"] == pytest.approx((ndcg_u1 + 1 + 0) / 3)
    assert m[2]["map"] == pytest.approx(((1 / 2) / 2 + 1 + 0) / 3)
    assert m[2]["mrr"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert m[2]["hit_rate"] == pytest.approx(2 / 3)
    # @4: u1 hits ranks 2 and 4
    dcg = 1 / l2(3) + 1 / l2(5)
    idcg = 1 + 1 / l2(3) + 1 / l2(4)
    assert m[4]["ndcg"] == pytest.approx((dcg / idcg + 1 + 0) / 3)
    assert m[4]["map"] == pytest.approx(((1 / 2 + 2 / 4) / 3 + 1 + 0) / 3)
    assert m[4]["precision"] == pytest.approx((2 / 4 + 1 / 4 + 0) / 3)


def numpy_reference(recs: dict, truth: dict, k: int) -> dict:
    out = {m: [] for m in metrics.RANKING}
    for u, rel in truth.items():
        lst = recs.get(u, [])[:k]
        h = np.array([1.0 if b in rel else 0.0 for b in lst])
        disc = 1 / np.log2(np.arange(2, len(h) + 2))
        idcg = (1 / np.log2(np.arange(2, min(len(rel), k) + 2))).sum()
        out["precision"].append(h.sum() / k)
        out["recall"].append(h.sum() / len(rel))
        out["ndcg"].append((h * disc).sum() / idcg)
        prec = np.cumsum(h) / np.arange(1, len(h) + 1)
        out["map"].append((prec * h).sum() / min(len(rel), k))
        first = np.flatnonzero(h)
        out["mrr"].append(1 / (first[0] + 1) if len(first) else 0.0)
        out["hit_rate"].append(1.0 if h.sum() else 0.0)
    return {m: float(np.mean(v)) for m, v in out.items()}


def test_matches_numpy_reference_on_random_lists(spark):
    rng = np.random.default_rng(0)
    recs, truth, rows, trows = {}, {}, [], []
    for u in range(60):
        lst = [int(x) for x in rng.choice(100, size=rng.integers(0, 15), replace=False)]
        recs[u] = lst
        rows += [(u, r + 1, b) for r, b in enumerate(lst)]
        rel = {int(x) for x in rng.choice(100, size=rng.integers(1, 12), replace=False)}
        truth[u] = rel
        trows += [(u, b) for b in rel]
    got = metrics.ranking_metrics(
        spark.createDataFrame(rows, "user_idx int, rank int, book_idx int"),
        spark.createDataFrame(trows, "user_idx int, book_idx int"),
        [3, 10],
    )
    for k in (3, 10):
        ref = numpy_reference(recs, truth, k)
        for m in metrics.RANKING:
            assert got[k][m] == pytest.approx(ref[m], abs=1e-9), (k, m)


def test_beyond_accuracy(spark):
    train = spark.createDataFrame(
        [(1, 10), (2, 10), (3, 10), (4, 10), (1, 11), (2, 12)], "user_idx int, book_idx int"
    )
    recs = spark.createDataFrame(
        [(1, 1, 12), (1, 2, 10), (2, 1, 11), (2, 2, 10)], "user_idx int, rank int, book_idx int"
    )
    f = spark.createDataFrame(
        [(10, [1.0, 0.0]), (11, [0.0, 2.0]), (12, [1.0, 1.0])], "book_idx int, features array<float>"
    )
    m = metrics.beyond_accuracy(recs, train, f, [1, 2])
    assert m[1]["coverage"] == pytest.approx(2 / 3)  # books 12, 11 of {10, 11, 12}
    assert m[2]["coverage"] == pytest.approx(1.0)
    p = {10: 4 / 4, 11: 1 / 4, 12: 1 / 4}
    assert m[2]["novelty"] == pytest.approx(np.mean([-math.log2(p[b]) for b in (12, 10, 11, 10)]))
    assert m[2]["popularity"] == pytest.approx(np.mean([p[b] for b in (12, 10, 11, 10)]))
    # user 1: cos(12, 10) = 1/sqrt2 -> 1 - 0.7071; user 2: cos(11, 10) = 0 -> 1
    assert m[2]["diversity"] == pytest.approx(((1 - 1 / math.sqrt(2)) + 1) / 2, abs=1e-6)


def test_paired_difference_by_hand(spark):
    from recspark.metrics import paired_difference, per_user_ndcg

    truth = spark.createDataFrame([(1, 10), (2, 20), (3, 30)], "user_idx int, book_idx int")
    schema = "user_idx int, rank int, book_idx int"
    a = spark.createDataFrame([(1, 1, 10), (2, 1, 99), (2, 2, 20)], schema)  # ndcg 1, 1/log2(3), 0
    b = spark.createDataFrame(
        [(1, 1, 98), (1, 2, 10), (3, 1, 97), (3, 2, 30)], schema
    )  # 1/log2(3), 0, 1/log2(3)
    g = 1 / math.log2(3)
    got = {r["user_idx"]: r["ndcg"] for r in per_user_ndcg(a, truth, 10).collect()}
    assert got == pytest.approx({1: 1.0, 2: g, 3: 0.0})
    diffs = [1 - g, g, -g]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    m, z = paired_difference(a, b, truth, 10)
    assert m == pytest.approx(mean) and z == pytest.approx(mean / (sd / math.sqrt(3)))
    assert paired_difference(a, a, truth, 10) == (0.0, 0.0)  # identical lists: no evidence either way
    # the same comparison on collected per-user scores (the search's trials), users in ascending order
    from recspark.metrics import paired_z, per_user_scores, ranking_metrics

    sa, sb = per_user_scores(a, truth, 10), per_user_scores(b, truth, 10)
    assert list(sa) == pytest.approx([1.0, g, 0.0]) and list(sb) == pytest.approx([g, 0.0, g])
    assert sa.mean() == pytest.approx(ranking_metrics(a, truth, [10])[10]["ndcg"])
    assert paired_z(sa, sb) == pytest.approx((m, z))
    assert paired_z(sa, sa) == (0.0, 0.0)
    # several lists in one job: each list's per-user scores as alone, a group without rows 0 for every user
    from pyspark.sql import functions as F

    from recspark.metrics import per_user_scores_by

    both = a.withColumn("m", F.lit("a")).unionByName(b.withColumn("m", F.lit("b")))
    users, by = per_user_scores_by(both, truth, 10, ["a", "b", "none"], by="m")
    assert list(users) == [1, 2, 3]
    assert list(by["a"]) == pytest.approx([1.0, g, 0.0]) and list(by["b"]) == pytest.approx([g, 0.0, g])
    assert list(by["none"]) == [0.0, 0.0, 0.0]


def test_a_difference_the_same_for_every_user_is_certain_not_absent():
    """No spread to divide by: every user 0.25 ahead is an infinite z (0.25 behind, minus infinity), not the 0 of
    no evidence; one user alone or no difference at all stays 0. Recorded as None, shown as such."""
    from recspark.metrics import paired_z, recorded_z, z_text

    ahead = paired_z([0.75, 0.5, 0.25], [0.5, 0.25, 0.0])
    assert ahead == (0.25, math.inf)
    assert paired_z([0.5, 0.25, 0.0], [0.75, 0.5, 0.25]) == (-0.25, -math.inf)
    assert paired_z([0.5], [0.25]) == (0.25, 0.0)
    assert paired_z([0.5, 0.5], [0.5, 0.5]) == (0.0, 0.0)
    assert recorded_z(math.inf) is None and recorded_z(-math.inf) is None and recorded_z(1.23456) == 1.23
    assert z_text(None) == "n/a (the same difference for every user)" and z_text(2.5) == "2.5"


def test_a_mean_of_no_users_is_zero_and_records_keep_five_decimals():
    import numpy as np

    from recspark.metrics import mean_score, recorded_mean

    assert mean_score(np.array([])) == 0.0 and recorded_mean(np.array([], dtype=float)) == 0.0
    assert mean_score(np.array([1.0, 0.0, 0.0])) == 1 / 3
    assert recorded_mean(np.array([1.0, 0.0, 0.0])) == 0.33333
    assert isinstance(recorded_mean(np.array([0.5])), float)


def test_several_lists_at_once_equal_each_list_alone(spark):
    """The one-job evaluation of several models (``*_by``) gives each model exactly its own metrics; a model
    with no list at all scores 0."""
    from pyspark.sql import functions as F

    rng = np.random.default_rng(3)
    lists = {}
    for name in ("a", "b"):
        rows = []
        for u in range(20):
            books = rng.choice(30, size=rng.integers(1, 8), replace=False)
            rows += [(u, r + 1, int(b)) for r, b in enumerate(books)]
        lists[name] = spark.createDataFrame(rows, "user_idx int, rank int, book_idx int")
    truth = spark.createDataFrame(
        [(u, int(b)) for u in range(22) for b in rng.choice(30, size=3, replace=False)],
        "user_idx int, book_idx int",
    )
    train = spark.createDataFrame(
        [(u, b) for u in range(10) for b in range(u, 30, 3)], "user_idx int, book_idx int"
    )
    f = spark.createDataFrame(
        [(b, [float(b % 4), 1.0 + b % 3]) for b in range(30)], "book_idx int, features array<float>"
    )
    both = lists["a"].withColumn("m", F.lit("a")).unionByName(lists["b"].withColumn("m", F.lit("b")))
    got = metrics.ranking_metrics_by(both, truth, [3, 5], ["a", "b", "none"], by="m")
    cat = metrics.Catalogue.of(train, f)
    beyond = metrics.beyond_accuracy_by(both, cat, [3, 5], ["a", "b", "none"], by="m")
    for name, recs in lists.items():
        alone = metrics.ranking_metrics(recs, truth, [3, 5])
        alone_b = metrics.beyond_accuracy(recs, train, f, [3, 5])
        for k in (3, 5):
            assert got[name][k] == pytest.approx(alone[k], abs=1e-12)
            assert beyond[name][k] == pytest.approx(alone_b[k], abs=1e-9)
    assert all(v == 0.0 for k in (3, 5) for v in got["none"][k].values())
    cat.release()


def test_the_evaluation_counts_liked_books_beside_every_held_out_book(spark):
    """The report's ``liked_`` rows count what validation counts (not rated below 4 stars; read where the data
    records reading), over the users with at least one such book; the plain rows count every held-out book."""
    from recspark import evaluate

    shelf = "user_idx int, book_idx int, is_read boolean, rating int"
    rated = spark.createDataFrame([(1, 1, True, 5), (1, 2, True, 4), (2, 1, True, 3), (2, 3, True, 5)], shelf)
    # user 1 holds out a 5-star and a 2-star book; user 2 only a 1-star one (no liked book: left out of liked_)
    test = spark.createDataFrame([(1, 10, True, 5), (1, 11, True, 2), (2, 12, True, 1)], shelf)
    recs = spark.createDataFrame(
        [(1, 1, 11), (1, 2, 10), (2, 1, 12), (2, 2, 13)], "user_idx int, rank int, book_idx int"
    )
    liked = evaluate.liked_rows(test, rated)
    assert sorted((r.user_idx, r.book_idx) for r in liked.collect()) == [(1, 10)]
    ev = evaluate.evaluate_lists({"m": recs}, rated, test, None, [2], liked=liked)
    at2 = ev.results["m"][2]
    assert at2["ndcg"] == pytest.approx(1.0)  # every held-out book: both users' lists start with hits
    assert at2["liked_ndcg"] == pytest.approx(
        1 / math.log2(3)
    )  # user 1's liked book at rank 2; user 2 not counted
    assert at2["liked_recall"] == pytest.approx(1.0) and at2["liked_precision"] == pytest.approx(1 / 2)
    assert "| liked_ndcg | 0.6309 |" in ev.table(2)
    # where every held-out book counts (unrated to-read shelves) there is nothing to add
    unrated = test.withColumn("rating", F.lit(0))
    assert evaluate.liked_rows(unrated, rated) is None
    # where the data records reading (half the training shelves unread), an unread held-out book is not liked
    mixed = rated.withColumn("is_read", F.col("book_idx") != 1)
    unread = unrated.withColumn("is_read", F.col("book_idx") != 11)
    assert sorted((r.user_idx, r.book_idx) for r in evaluate.liked_rows(unread, mixed).collect()) == [
        (1, 10),
        (2, 12),
    ]
