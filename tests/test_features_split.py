"""Weighting functions and split invariants on tiny hand-made frames."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from recspark import split
from recspark.features import PREFERENCE, Weights, preference

SCHEMA = "user_idx int, book_idx int, is_read boolean, rating int, is_reviewed boolean, date_added timestamp"


def frame(spark, rows):
    return spark.createDataFrame(rows, SCHEMA)


def test_linear_and_log_preferences(spark):
    df = frame(
        spark, [(0, 0, False, 0, False, None), (0, 1, True, 5, True, None), (1, 0, True, 3, False, None)]
    )
    w = Weights(shelved=1, read=1, rating=1, reviewed=0.5, scheme="linear")
    got = df.transform(preference(w))
    expected = spark.createDataFrame(
        [(0, 0, 1.0), (0, 1, 3.5), (1, 0, 2.6)], f"user_idx int, book_idx int, {PREFERENCE} float"
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    got_log = {
        (r[0], r[1]): r[2] for r in df.transform(preference(Weights(scheme="log", epsilon=2.0))).collect()
    }
    assert got_log[(0, 1)] == pytest.approx(math.log1p(3.5 / 2.0), rel=1e-6)
    assert got_log[(0, 0)] == pytest.approx(math.log1p(0.5), rel=1e-6)


def test_bm25_damps_popular_books_and_heavy_users(spark):
    rows = [(u, 0, False, 0, False, None) for u in range(4)] + [(0, 1, False, 0, False, None)]
    got = {
        (r[0], r[1]): r[2]
        for r in frame(spark, rows).transform(preference(Weights(scheme="bm25", k1=1.2, b=0.75))).collect()
    }
    # book 0 is shelved by all 4 users: idf = log(4/4) = 0 -> floored at 1e-3; book 1 by one user: idf = log 4
    n_u0, avg = 2, 5 / 4
    s = 1.0
    expected_01 = s * 2.2 / (s + 1.2 * (1 - 0.75 + 0.75 * n_u0 / avg)) * math.log(4)
    assert got[(0, 1)] == pytest.approx(expected_01, rel=1e-5)
    assert got[(1, 0)] < got[(0, 1)] / 100


def test_recency_decay_halves_at_half_life(spark):
    df = frame(
        spark,
        [(0, 0, False, 0, False, dt.datetime(2017, 1, 31)), (0, 1, False, 0, False, dt.datetime(2017, 1, 1))],
    )
    got = {
        r[1]: r[2] for r in df.transform(preference(Weights(scheme="linear", half_life_days=30))).collect()
    }
    assert got[1] == pytest.approx(got[0] / 2, rel=1e-6)


def test_unknown_scheme():
    with pytest.raises(ValueError, match="unknown weighting scheme"):
        Weights(scheme="sqrt")


def interactions(spark, n_users=30, n_books=20):
    rows = []
    for u in range(n_users):
        for b in range(u % 7 + 1):
            rows.append((u, (u * 3 + b) % n_books, True, 4, False, f"2017-01-{b + 1:02d} 00:00:00"))
    return (
        frame(spark, [r[:5] + (None,) for r in rows])
        .drop("date_added")
        .join(
            spark.createDataFrame([(r[0], r[1], r[5]) for r in rows], "user_idx int, book_idx int, d string"),
            on=["user_idx", "book_idx"],
            how="inner",
        )
        .withColumn("date_added", F.to_timestamp("d"))
        .drop("d")
    )


def test_holdout_is_deterministic_and_valid(spark):
    df = interactions(spark)
    a = split.holdout(df, 0.3, seed=1)
    b = split.holdout(df.repartition(3), 0.3, seed=1)
    assert sorted(a.test.collect()) == sorted(b.test.collect())
    sizes = split.check_split(a)
    assert sizes["train"] + sizes["test"] == df.count()
    per_user = {r[0]: r[1] for r in a.test.groupBy("user_idx").count().collect()}
    # ceil(0.3 * n), never all of a user's books; single-book users stay in train
    for u in range(30):
        n = u % 7 + 1
        assert per_user.get(u, 0) == (0 if n < 2 else min(math.ceil(0.3 * n), n - 1))


def test_temporal_holds_out_each_users_latest_books(spark):
    df = interactions(spark)  # user u has u % 7 + 1 books, added on days 1, 2, ...
    s = split.temporal(df, 0.3, seed=1)
    sizes = split.check_split(s)
    assert sizes["train"] + sizes["test"] == df.count()
    days = {}
    for r in s.test.select("user_idx", F.dayofmonth("date_added").alias("d")).collect():
        days.setdefault(r["user_idx"], set()).add(r["d"])
    for u in range(30):  # the ceil(0.3 n) latest days, never all of them; one-book users stay in train
        n = u % 7 + 1
        n_test = 0 if n < 2 else min(math.ceil(0.3 * n), n - 1)
        assert days.get(u, set()) == set(range(n - n_test + 1, n + 1)), u
    assert split.make("temporal", df, 0.3, seed=1).kind == "temporal"
    with pytest.raises(split.NoTimestamps, match="--split holdout"):
        split.temporal(df.withColumn("date_added", F.lit(None).cast("timestamp")))
    with pytest.raises(ValueError, match="unknown split 'random'"):
        split.make("random", df)


@pytest.mark.parametrize("fraction", [0.2, 0.3, 0.5])
def test_sparse_users_are_held_out_once_by_evaluation_or_by_validation(spark, fraction):
    # 200 users: u has u % 14 + 1 books (1-14). Users with fewer than 10 go to evaluation or to validation by a
    # hash of (seed, user), never both; the others give ceil(fraction * n) books to evaluation and a fifth of the
    # rest to validation, whatever the evaluation's fraction (the tuning split is told it)
    rows = [(u, b, 0) for u in range(200) for b in range(u % 14 + 1)]
    df = spark.createDataFrame(rows, "user_idx int, book_idx int, rating int")
    first = split.holdout(df, fraction, seed=3, sparse=split.for_evaluation(3))
    sizes = split.check_split(first)
    assert sizes["train"] + sizes["test"] == df.count()
    second = split.holdout(first.train, 0.2, seed=1003, sparse=split.for_validation(3, fraction))
    split.check_split(second)
    held = [{r[0]: r[1] for r in s.test.groupBy("user_idx").count().collect()} for s in (first, second)]
    evaluation, validation = held
    for u in range(200):
        n = u % 14 + 1
        if n < 2:
            assert u not in evaluation and u not in validation
        elif n < split.SPARSE_BOOKS:  # held out once, by one side
            assert (u in evaluation) != (u in validation), u
            if u in evaluation:
                assert evaluation[u] == min(math.ceil(fraction * n), n - 1)
            else:
                assert validation[u] == math.ceil(0.2 * n)
        else:  # held out by both
            assert evaluation[u] == math.ceil(fraction * n), u
            assert validation[u] == math.ceil(0.2 * (n - evaluation[u])), u
    sparse_users = [u for u in range(200) if 2 <= u % 14 + 1 < split.SPARSE_BOOKS]
    in_evaluation = sum(u in evaluation for u in sparse_users)
    assert 0.3 < in_evaluation / len(sparse_users) < 0.7  # about half each way (126 users)


def test_a_holdout_takes_at_most_max_held_out_books_from_a_user(spark):
    # users of 50, 100, 101, 150 and 400 books: ceil(0.2 n) = 10, 20, 21, 30, 80, capped at 20 (by hand: 10, 20,
    # 20, 20, 20); without the cap the fifth each. Both kinds, and both holdouts in a row (400 keeps 360 = 90%)
    sizes = {0: 50, 1: 100, 2: 101, 3: 150, 4: 400}
    rows = [(u, b, 0) for u, n in sizes.items() for b in range(n)]
    df = spark.createDataFrame(rows, "user_idx int, book_idx int, rating int").withColumn(
        "date_added", F.timestamp_seconds(F.col("book_idx") * 3600)
    )

    def held(s: split.Split) -> dict[int, int]:
        split.check_split(s)
        return {r[0]: r[1] for r in s.test.groupBy("user_idx").count().collect()}

    assert split.MAX_HELD_OUT == 20
    first = split.holdout(df, 0.2, seed=3)
    assert held(first) == {0: 10, 1: 20, 2: 20, 3: 20, 4: 20}
    assert held(split.temporal(df, 0.2, seed=3)) == {0: 10, 1: 20, 2: 20, 3: 20, 4: 20}
    assert held(split.holdout(df, 0.2, seed=3, max_held_out=None)) == {0: 10, 1: 20, 2: 21, 3: 30, 4: 80}
    assert held(split.holdout(first.train, 0.2, seed=1003)) == {0: 8, 1: 16, 2: 17, 3: 20, 4: 20}
    assert [split.left_after_holdout(n, 0.2) for n in (50, 101, 400)] == [40, 81, 380]
    assert split.left_after_holdout(400, 0.2, max_held_out=None) == 320


def test_validation_holds_out_more_books_per_user_where_users_are_few(spark, lake, monkeypatch):
    from recspark import tune

    # by hand: 12,000 rows over 300 users = 40 each; from 600 users on the usual 20; 599 users: ceil(20.03) = 21
    assert [split.validation_cap(n) for n in (300, 599, 600, 5000)] == [40, 21, 20, 20]
    assert split.validation_cap(5, min_rows=300) == 60
    # 5 users of 400 books: ceil(0.2 * 400) = 80 each, capped at 60 when 300 rows are asked of 5 users; the
    # fraction still bounds it when 12,000 are (a cap of 2,400)
    rows = [(u, b, 0) for u in range(5) for b in range(400)]
    df = spark.createDataFrame(rows, "user_idx int, book_idx int, rating int")

    def held(s: split.Split) -> dict[int, int]:
        return {r[0]: r[1] for r in s.test.groupBy("user_idx").count().collect()}

    s, made = tune.validation_split(lake, df, seed=1, evaluation_fraction=0.2)
    assert held(s) == dict.fromkeys(range(5), 80)
    assert made == {"users": 5, "held_out_cap": 2400, "held_out": 400, "sampled": 1.0}
    assert tune.describe_validation(made) == "400 books held out from 5 users, at most 2,400 each"
    monkeypatch.setattr(split, "MIN_VALIDATION_ROWS", 300)
    s, made = tune.validation_split(lake, df, seed=1, evaluation_fraction=0.2)
    assert held(s) == dict.fromkeys(range(5), 60)
    assert made == {"users": 5, "held_out_cap": 60, "held_out": 300, "sampled": 1.0}


def test_the_validation_threshold_follows_the_evaluation_fraction():
    # by hand: at 0.2 a user of 10 keeps 8, one of 9 keeps 7 -> n' < 8; at 0.5: 5 and 4 -> n' < 5; at 0.11 both
    # keep 8 (ceil(1.1) = 2, ceil(0.99) = 1): the threshold moves to 9, so a user of 9 is never held out twice
    assert [split.left_after_holdout(n, 0.2) for n in (1, 2, 9, 10)] == [1, 1, 7, 8]
    assert split.for_validation(0, 0.2).below == 8
    assert split.for_validation(0, 0.3).below == 7
    assert split.for_validation(0, 0.5).below == 5
    assert split.for_validation(0, 0.11).below == 9


def test_check_split_catches_violations(spark):
    df = interactions(spark)
    s = split.holdout(df, 0.3, seed=1)
    leaky = split.Split(train=s.train.unionByName(s.test.limit(1)), test=s.test, kind="bad")
    with pytest.raises(split.SplitError, match="also in train"):
        split.check_split(leaky)
    cold = split.Split(train=s.train.where(F.col("user_idx") != 6), test=s.test, kind="bad")
    with pytest.raises(split.SplitError, match="no history in train"):
        split.check_split(cold)
