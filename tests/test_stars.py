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


def test_release_unpersists_the_terms_a_fit_cached(spark):
    ratings = stars.rated(
        spark.createDataFrame([(u, b, 1 + (u + b) % 5) for u in range(6) for b in range(5)], SCHEMA)
    )
    model = stars.fit(spark, ratings, StarsParams(rank=2, max_iter=2))
    assert model.books.storageLevel.useMemory and model.users.storageLevel.useMemory
    model.release()
    assert not model.books.storageLevel.useMemory and not model.users.storageLevel.useMemory
    # a second fit on the same ratings caches its own terms again (nothing was left cached to collide with)
    again = stars.fit(spark, ratings, StarsParams(rank=2, max_iter=2))
    assert again.books.storageLevel.useMemory
    again.release()


def test_predict_adds_the_terms_by_hand(spark):
    """μ + b_b + b_u + x·y, a missing term counting 0, clipped to [1, 5]."""
    users = spark.createDataFrame(
        [(0, 0.5, [1.0, 2.0]), (1, -0.25, None)], "user_idx int, bias double, features array<float>"
    )
    books = spark.createDataFrame(
        [(0, 0.25, [0.5, -0.25]), (1, 1.0, [3.0, 3.0])], "book_idx int, bias double, features array<float>"
    )
    model = stars.StarsModel(3.0, users, books)
    pairs = spark.createDataFrame([(0, 0), (0, 1), (1, 0), (2, 0), (2, 9)], "user_idx int, book_idx int")
    got = {(r["user_idx"], r["book_idx"]): r[stars.PREDICTED] for r in stars.predict(model, pairs).collect()}
    assert got == pytest.approx(
        {
            (0, 0): 3.0 + 0.25 + 0.5 + (0.5 - 0.5),  # dot 1*0.5 + 2*(-0.25) = 0
            (0, 1): 5.0,  # 3 + 1 + 0.5 + 9: clipped
            (1, 0): 3.0 + 0.25 - 0.25,  # no factors for user 1: no dot
            (2, 0): 3.25,  # unknown user: μ + b_b
            (2, 9): 3.0,  # nothing known: μ
        }
    )


def test_the_saved_terms_predict_what_the_fitted_model_does(spark):
    """What training saves (``terms``) and publishing reads back (``from_terms``) is the same model."""
    rows = [(u, b, 5 if (u + b) % 2 else 1) for u in range(12) for b in range(10) if (u * b) % 7 != 3]
    model = stars.fit(
        spark, stars.rated(spark.createDataFrame(rows, SCHEMA)), StarsParams(rank=4, max_iter=4)
    )
    table = stars.terms(model)
    assert table.where("term = 'mean'").count() == 1
    assert table.where("term = 'user'").count() == 12 and table.where("term = 'book'").count() == 10
    saved = stars.from_terms(spark.createDataFrame(table.collect(), stars.TERMS_SCHEMA))
    assert saved is not None and saved.mu == pytest.approx(model.mu)
    pairs = spark.createDataFrame(
        [(u, b) for u in (0, 5, 11, 40) for b in (0, 3, 9, 77)], "user_idx int, book_idx int"
    )

    def predicted(m):
        return {(r["user_idx"], r["book_idx"]): r[stars.PREDICTED] for r in stars.predict(m, pairs).collect()}

    assert predicted(saved) == pytest.approx(predicted(model))
    model.release()
    assert stars.from_terms(spark.createDataFrame([], stars.TERMS_SCHEMA)) is None


def test_evaluate_scores_model_and_baseline_on_the_same_rows(spark):
    rows = [(u, b, 5 if (u + b) % 2 else 1) for u in range(12) for b in range(10)]
    df = spark.createDataFrame(rows, SCHEMA)
    test = df.where("(user_idx * 7 + book_idx) % 5 = 0")
    train = df.subtract(test)
    res = stars.evaluate(spark, train, test, StarsParams(rank=4, reg=0.01, max_iter=8))
    assert res["stars"]["n"] == res["book_mean"]["n"] == test.count()
    # the per-book mean cannot see the user-book pattern (every book has half 1s and half 5s): RMSE ~2
    assert res["stars"]["rmse"] < 0.5 * res["book_mean"]["rmse"]


def test_a_publish_predicts_from_the_saved_stars_and_fits_them_only_for_a_model_without(
    spark, lake, monkeypatch
):
    from recspark import pipeline

    rows = [(u, b, 1 + (u * 3 + b) % 5) for u in range(15) for b in range(10)]  # 150 ratings: enough
    interactions = spark.createDataFrame(rows, SCHEMA)
    recs = spark.createDataFrame([(0, 1), (14, 9), (99, 0)], "user_idx int, book_idx int")
    params = StarsParams(rank=2, max_iter=3)
    # a model trained before the stars were saved with it: fitted at publish
    old, fitted = pipeline.with_predicted_stars(spark, lake, "model-old", interactions, recs, params)
    assert fitted is not None and old.where("predicted_rating IS NULL").count() == 0
    fitted.release()
    # trained now: saved once, then read at every publish, never fitted again
    pipeline.fit_and_save_stars(spark, lake, interactions, params, "model-new")
    monkeypatch.setattr(stars, "fit", lambda *a, **k: pytest.fail("fitted again"))
    new, saved = pipeline.with_predicted_stars(spark, lake, "model-new", interactions, recs, params)
    assert saved is not None and new.where("predicted_rating IS NULL").count() == 0
    # too few ratings: nothing saved, and no stars
    few = interactions.limit(stars.MIN_RATINGS - 1)
    pipeline.fit_and_save_stars(spark, lake, few, params, "model-few")
    none, model = pipeline.with_predicted_stars(spark, lake, "model-few", few, recs, params)
    assert model is None and none.where("predicted_rating IS NOT NULL").count() == 0
