"""Predicted stars: the baseline and error arithmetic by hand, clipping and unknown ids on a tiny model."""

from __future__ import annotations

import math

import pytest

from recspark import stars
from recspark.stars import StarsParams

SCHEMA = "user_idx int, book_idx int, rating int"


def test_rated_keeps_only_shelves_with_a_rating(spark):
    df = spark.createDataFrame([(0, 0, 0), (0, 1, 4), (1, 0, 2)], SCHEMA)
    assert sorted((r["user_idx"], r["book_idx"], r["rating"]) for r in stars.rated(df).collect()) == [
        (0, 1, 4.0),
        (1, 0, 2.0),
    ]


def test_book_means_shrink_towards_the_global_mean(spark):
    df = stars.rated(spark.createDataFrame([(0, 0, 5), (1, 0, 3), (2, 1, 1)], SCHEMA))
    means, mu = stars.book_means(df)
    got = {r["book_idx"]: r[stars.PREDICTED] for r in means.collect()}
    # mu = 9/3 = 3; book 0: (5+3 + 5*3)/(2+5) = 23/7; book 1: (1 + 15)/(1+5) = 16/6
    assert mu == pytest.approx(3.0)
    assert got == pytest.approx({0: 23 / 7, 1: 16 / 6}, rel=1e-6)


def test_errors_rmse_and_mae(spark):
    df = spark.createDataFrame([(4.0, 5.0), (2.0, 2.0), (None, 1.0)], "predicted_rating float, rating float")
    got = stars.errors(df)
    # rows with a prediction: errors -1 and 0 -> RMSE sqrt(1/2), MAE 1/2; the null row is left out
    assert got["rmse"] == pytest.approx(math.sqrt(0.5)) and got["mae"] == pytest.approx(0.5) and got["n"] == 2


def test_bias_terms_by_hand(spark):
    df = stars.rated(spark.createDataFrame([(0, 0, 5), (1, 0, 3), (0, 1, 1)], SCHEMA))
    mu, book, user = stars.bias_terms(df)
    bb = {r["book_idx"]: r["_bb"] for r in book.collect()}
    bu = {r["user_idx"]: r["_bu"] for r in user.collect()}
    # mu = 3; book 0: (2 + 0)/(2+5) = 2/7, book 1: (-2)/(1+5) = -1/3
    # user 0: ((5-3-2/7) + (1-3+1/3))/(2+5) = (12/7 - 5/3)/7 = 1/147; user 1: (3-3-2/7)/(1+5) = -1/21
    assert mu == pytest.approx(3.0)
    assert bb == pytest.approx({0: 2 / 7, 1: -1 / 3})
    assert bu == pytest.approx({0: 1 / 147, 1: -1 / 21})


def test_predictions_are_clipped_and_unknown_ids_get_the_terms_that_exist(spark):
    rows = [(u, b, 5 if (u + b) % 2 else 1) for u in range(12) for b in range(10)]
    ratings = stars.rated(spark.createDataFrame(rows, SCHEMA))
    model = stars.fit(spark, ratings, StarsParams(rank=4, reg=0.01, max_iter=8))
    pairs = spark.createDataFrame([(0, 1), (0, 2), (99, 1), (99, 99)], "user_idx int, book_idx int")
    got = {(r["user_idx"], r["book_idx"]): r[stars.PREDICTED] for r in stars.predict(model, pairs).collect()}
    assert got[(99, 99)] == pytest.approx(model.mu)  # nothing known: the global mean (3 here)
    assert got[(99, 1)] == pytest.approx(model.mu)  # every book has as many 1s as 5s: no book offset
    assert 1.0 <= got[(0, 2)] <= 1.5 and 4.5 <= got[(0, 1)] <= 5.0  # the checkerboard is learnt, in [1, 5]


def test_release_unpersists_the_bias_terms_a_fit_cached(spark):
    ratings = stars.rated(
        spark.createDataFrame([(u, b, 1 + (u + b) % 5) for u in range(6) for b in range(5)], SCHEMA)
    )
    model = stars.fit(spark, ratings, StarsParams(rank=2, max_iter=2))
    assert model.book_bias.storageLevel.useMemory and model.user_bias.storageLevel.useMemory
    model.release()
    assert not model.book_bias.storageLevel.useMemory and not model.user_bias.storageLevel.useMemory
    # a second fit on the same ratings caches its own terms again (nothing was left cached to collide with)
    again = stars.fit(spark, ratings, StarsParams(rank=2, max_iter=2))
    assert again.book_bias.storageLevel.useMemory
    again.release()


def test_evaluate_scores_model_and_baseline_on_the_same_rows(spark):
    rows = [(u, b, 5 if (u + b) % 2 else 1) for u in range(12) for b in range(10)]
    df = spark.createDataFrame(rows, SCHEMA)
    test = df.where("(user_idx * 7 + book_idx) % 5 = 0")
    train = df.subtract(test)
    res = stars.evaluate(spark, train, test, StarsParams(rank=4, reg=0.01, max_iter=8))
    assert res["stars"]["n"] == res["book_mean"]["n"] == test.count()
    # the per-book mean cannot see the user-book pattern (every book has half 1s and half 5s): RMSE ~2
    assert res["stars"]["rmse"] < 0.5 * res["book_mean"]["rmse"]
