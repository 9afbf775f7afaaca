"""EASE weights (recspark.ease) on hand-made frames: one hand-computed case, a brute-force oracle that solves
each book's ridge regression directly, the catalogue cap and the item-CF plumbing."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from recspark import columns as C
from recspark import ease, itemcf
from recspark.itemcf import ItemCfParams

SCHEMA = "user_idx int, book_idx int, date_added timestamp"


def shelves(spark, pairs):
    return spark.createDataFrame([(u, b, None) for u, b in pairs], SCHEMA)


def table_of(df) -> dict[tuple[int, int], float]:
    return {(r[C.BOOK_IDX], r[C.NEIGHBOUR_IDX]): r[C.SCORE] for r in df.collect()}


def ease_table(spark, pairs, l2, n=10, max_books=ease.MAX_BOOKS):
    co = itemcf.Cooccurrence(shelves(spark, pairs), ItemCfParams(), ease_max_books=max_books)
    try:
        return co.neighbours("ease", n, ease_l2=l2).cache()
    finally:
        co.release()


def oracle(x: np.ndarray, l2: float) -> dict[tuple[int, int], float]:
    """Every nonzero EASE weight ``(j, i)`` of the 0/1 matrix ``x``: book ``i``'s column ridge-regressed on the
    other columns, ``w = (X_oᵀX_o + λI)⁻¹ X_oᵀ x_i``, ``λ = l2 × mean(diag XᵀX)``."""
    m = x.shape[1]
    lam = l2 * np.mean(np.diag(x.T @ x))
    want = {}
    for i in range(m):
        others = [j for j in range(m) if j != i]
        xo = x[:, others]
        w = np.linalg.solve(xo.T @ xo + lam * np.eye(m - 1), xo.T @ x[:, i])
        want.update({(j, i): v for j, v in zip(others, w) if v != 0})
    return want


def test_two_books_by_hand(spark):
    # u0 {0,1}, u1 {0,1}, u2 {0}: G = [[3, 2], [2, 2]], mean diagonal 2.5, l2 = 0.4 -> lambda = 1
    # P = inv([[4, 2], [2, 3]]) = [[3, -2], [-2, 4]] / 8
    # B_01 = -P_01 / P_11 = (2/8) / (4/8) = 1/2; B_10 = -P_10 / P_00 = (2/8) / (3/8) = 2/3
    got = table_of(ease_table(spark, [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)], l2=0.4))
    assert got == pytest.approx({(0, 1): 0.5, (1, 0): 2 / 3})


def test_weights_match_each_books_own_ridge_regression(spark):
    """Oracle: for every book i, ridge-regress its column of X on the other books' columns (no self weight):
    w = (X_oᵀX_o + λI)⁻¹ X_oᵀ x_i. EASE's closed form must give the same weights, negative ones kept (n = 10 is
    more than the 5 other books, so every nonzero weight is in the table)."""
    rng = np.random.default_rng(7)
    x = (rng.random((40, 6)) < 0.4).astype(float)
    x[0] = 1.0  # every book has a reader
    pairs = [(int(u), int(b)) for u, b in zip(*np.nonzero(x))]
    l2 = 0.1  # weak enough that some weights are negative
    want = oracle(x, l2)
    got = table_of(ease_table(spark, pairs, l2=l2))
    assert any(v < 0 for v in want.values())  # the case exercises negative weights
    assert set(got) == set(want)
    for key, v in want.items():
        assert got[key] == pytest.approx(v, rel=1e-4), key


def test_ranks_by_weight_and_cuts_to_the_n_largest_magnitudes(spark):
    rng = np.random.default_rng(3)
    x = (rng.random((60, 8)) < 0.5).astype(float)
    pairs = [(int(u), int(b)) for u, b in zip(*np.nonzero(x))]
    full = ease_table(spark, pairs, l2=0.2).collect()
    for n in (2, 5):  # at 5, book 0 keeps its weight -0.065 for book 3 rather than +0.037 for book 7
        cut = ease_table(spark, pairs, l2=0.2, n=n).collect()
        for book in {r[C.BOOK_IDX] for r in full}:
            rows = sorted((r for r in full if r[C.BOOK_IDX] == book), key=lambda r: r[C.RANK])
            assert [r[C.RANK] for r in rows] == list(range(1, len(rows) + 1))
            assert all(a[C.SCORE] >= b[C.SCORE] for a, b in zip(rows, rows[1:]))
            largest = sorted(rows, key=lambda r: -abs(r[C.SCORE]))[:n]  # ranked by weight after the cut
            want = sorted(largest, key=lambda r: (-r[C.SCORE], r[C.NEIGHBOUR_IDX]))
            kept = sorted((r for r in cut if r[C.BOOK_IDX] == book), key=lambda r: r[C.RANK])
            assert [(r[C.NEIGHBOUR_IDX], r[C.RANK]) for r in kept] == [
                (r[C.NEIGHBOUR_IDX], rank) for rank, r in enumerate(want, 1)
            ]
        assert any(r[C.SCORE] < 0 for r in cut) == (n == 5)


def test_catalogue_is_the_most_read_books(spark):
    # readers: book 0: 2, book 1: 3, book 2: 2, book 3: 1 -> the 2 most read are 1 and 0 (tie with 2: smaller)
    pairs = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 1), (2, 2), (3, 3)]
    got = table_of(ease_table(spark, pairs, l2=0.1, max_books=2))
    assert {b for pair in got for b in pair} == {0, 1}


def test_catalogue_counts_readers_over_every_shelf(spark):
    # u0 and u1 shelved books 0, 1 and (oldest) 2. Over every shelf books 0 and 2 have 4 readers each, book 3 has 3;
    # item-CF's cap of 2 shelves per user would drop book 2 from u0 and u1 (2 readers left) and put book 3 in the
    # 2-book catalogue, where it co-occurs with nothing (an empty table)
    rows = [(u, b, d) for u in (0, 1) for b, d in ((0, 4), (1, 3), (2, 1))]
    rows += [(2, 2, 1), (3, 2, 1), (4, 3, 1), (5, 3, 1), (6, 3, 1), (7, 0, 1), (8, 0, 1)]
    data = spark.createDataFrame(
        [(u, b, datetime(2020, 1, 1) + timedelta(days=d)) for u, b, d in rows], SCHEMA
    )
    co = itemcf.Cooccurrence(data, ItemCfParams(max_user_books=2), ease_max_books=2)
    try:
        got = table_of(co.neighbours("ease", 10, ease_l2=0.1))
    finally:
        co.release()
    assert set(got) == {(0, 2), (2, 0)}


def dated(x: np.ndarray):
    """``(user_idx, book_idx, date_added)`` of the 0/1 matrix ``x``: a user's higher book indices are newer."""
    start = datetime(2020, 1, 1)
    return [(int(u), int(b), start + timedelta(days=int(b))) for u, b in zip(*np.nonzero(x))]


def test_gram_counts_every_shelf_when_the_pairs_fit(spark):
    """Oracle on users with more shelves than item-CF's cap: with room for every pair EASE regresses over the whole
    matrix; with room for none beyond item-CF's own cap, over each user's 2 most recent shelves."""
    rng = np.random.default_rng(11)
    x = (rng.random((30, 6)) < 0.6).astype(float)
    x[0] = 1.0
    assert (x.sum(axis=1) > 2).sum() > 10  # most users are over the cap of 2
    newest = np.zeros_like(x)
    for u in range(len(x)):
        newest[u, np.flatnonzero(x[u])[-2:]] = 1.0
    data = spark.createDataFrame(dated(x), SCHEMA)
    for max_pairs, want in ((10**6, oracle(x, 0.5)), (1, oracle(newest, 0.5))):
        co = itemcf.Cooccurrence(data, ItemCfParams(max_user_books=2), ease_max_pairs=max_pairs)
        try:
            got = table_of(co.neighbours("ease", 10, ease_l2=0.5))
        finally:
            co.release()
        assert set(got) == set(want)
        for key, v in want.items():
            assert got[key] == pytest.approx(v, rel=1e-4), (max_pairs, key)


def test_gram_cap_by_hand():
    # one user with 3 shelves and one with 10: rows(c) = C(min(3, c), 2) + C(min(10, c), 2)
    sizes, users = np.array([3, 10]), np.array([1, 1])
    assert ease.pair_rows(sizes, users, 6) == 3 + 15
    assert ease.pair_rows(np.array([4]), np.array([5]), 100) == 5 * 6
    assert ease.gram_cap(sizes, users, max_pairs=20, floor=2) == 6  # rows(6) = 18, rows(7) = 24
    assert ease.gram_cap(sizes, users, max_pairs=10**6, floor=2) == 10  # everything fits: the largest user
    assert ease.gram_cap(sizes, users, max_pairs=1, floor=2) == 2  # never below the floor
    assert ease.gram_cap(sizes, users, max_pairs=1, floor=50) == 50  # nobody is over the floor
    assert ease.gram_cap(np.array([], dtype=int), np.array([], dtype=int), max_pairs=1, floor=2) == 2


def test_a_pair_outside_the_catalogue_is_refused():
    books = np.array([2, 5, 9])
    assert ease.position(books, np.array([9, 2, 5])).tolist() == [2, 0, 1]
    for outside in ([3], [10], [2, 1]):  # between, after and before the catalogue's books
        with pytest.raises(ValueError, match="outside its catalogue"):
            ease.position(books, np.array(outside))


def test_item_cf_recommends_with_ease_weights(spark):
    # u0..u2 read {0, 1}; u3 reads {0}: the only candidate for u3 is book 1, explained by book 0
    pairs = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (4, 2)]
    data = shelves(spark, pairs)
    nb = itemcf.fit(data, ItemCfParams(similarity="ease", ease_l2=0.5))
    rows = itemcf.recommend(data, nb, k=5).where(f"{C.USER_IDX} = 3").collect()
    assert [(r[C.BOOK_IDX], r[itemcf.BECAUSE_IDX]) for r in rows] == [(1, 0)]


def test_ease_l2_must_be_positive():
    with pytest.raises(ValueError, match="ease_l2"):
        ItemCfParams(similarity="ease", ease_l2=0.0)


def test_the_weight_table_reaches_spark_as_arrow_batches_not_as_a_constant_in_the_plan(spark):
    """``frames.from_arrow`` (how EASE hands its driver-made weight table to Spark): the rows come back whole, the
    plan reads an RDD (a local relation would travel inside every task), and the session setting it lowers for
    the call is restored, whether it had been set or not."""
    import pyarrow as pa

    from recspark.frames import ARROW_LOCAL_RELATION_THRESHOLD, from_arrow

    table = pa.table(
        {C.BOOK_IDX: pa.array([3, 1, 2], pa.int32()), "score": pa.array([0.5, -1.0, 2.0], pa.float32())}
    )
    for before in (None, "1234b"):
        if before is None:
            spark.conf.unset(ARROW_LOCAL_RELATION_THRESHOLD)
        else:
            spark.conf.set(ARROW_LOCAL_RELATION_THRESHOLD, before)
        default = spark.conf.get(ARROW_LOCAL_RELATION_THRESHOLD)
        df = from_arrow(spark, table)
        assert df._jdf.queryExecution().logical().getClass().getSimpleName() == "LogicalRDD"
        assert sorted((r[C.BOOK_IDX], r["score"]) for r in df.collect()) == [(1, -1.0), (2, 2.0), (3, 0.5)]
        assert spark.conf.get(ARROW_LOCAL_RELATION_THRESHOLD) == default
    spark.conf.unset(ARROW_LOCAL_RELATION_THRESHOLD)
