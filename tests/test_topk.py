"""The blocked top-K kernel equals a brute-force numpy top-K: exclusions, ties, users who read almost all."""

from __future__ import annotations

import numpy as np
import pytest

from recspark import topk


def brute(q, items, k, exclude=None, self_pos=None):
    out = []
    for i in range(q.shape[0]):
        s = (q[i : i + 1] @ items.T)[0].astype(np.float32)
        banned = set(exclude[i]) if exclude is not None and exclude[i] is not None else set()
        if self_pos is not None:
            banned.add(int(self_pos[i]))
        cand = [(-float(s[j]), j) for j in range(items.shape[0]) if j not in banned]
        cand.sort()
        out.append([(j, -v) for v, j in cand[:k]])
    return out


def as_lists(r, c, v, n):
    out = [[] for _ in range(n)]
    for a, b, x in zip(r, c, v):
        out[a].append((int(b), float(x)))
    return out


@pytest.mark.parametrize("n_items,k", [(50, 5), (2000, 10), (5000, 100)])
def test_equals_brute_force_with_exclusion(n_items, k):
    rng = np.random.default_rng(n_items)
    q = rng.normal(size=(40, 16)).astype(np.float32)
    items = rng.normal(size=(n_items, 16)).astype(np.float32)
    exclude = [rng.choice(n_items, size=rng.integers(0, n_items // 3), replace=False) for _ in range(40)]
    r, c, v = topk.topk_numpy(q, items, k, exclude, budget_mb=0.5)
    got = as_lists(r, c, v, 40)
    want = brute(q, items, k, exclude)
    for g, w in zip(got, want):
        assert [x[0] for x in g] == [x[0] for x in w]
        np.testing.assert_allclose([x[1] for x in g], [x[1] for x in w], rtol=1e-5, atol=1e-5)


def test_without_exclusion_and_block_boundaries():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(37, 8)).astype(np.float32)
    items = rng.normal(size=(3001, 8)).astype(np.float32)
    r, c, v = topk.topk_numpy(q, items, 7, budget_mb=0.05)  # tiny budget: many blocks
    got = as_lists(r, c, v, 37)
    assert [[x[0] for x in g] for g in got] == [[x[0] for x in w] for w in brute(q, items, 7)]


def test_ties_break_by_smaller_item_index():
    items = np.ones((1000, 4), dtype=np.float32)  # every score equal
    items[500] = 2.0
    q = np.ones((3, 4), dtype=np.float32)
    r, c, v = topk.topk_numpy(q, items, 5, [None, np.array([500]), np.array([0, 1])])
    got = as_lists(r, c, v, 3)
    assert [x[0] for x in got[0]] == [500, 0, 1, 2, 3]
    assert [x[0] for x in got[1]] == [0, 1, 2, 3, 4]
    assert [x[0] for x in got[2]] == [500, 2, 3, 4, 5]


def test_user_who_read_almost_everything_gets_the_rest():
    rng = np.random.default_rng(2)
    items = rng.normal(size=(300, 8)).astype(np.float32)
    q = rng.normal(size=(2, 8)).astype(np.float32)
    read_all_but_3 = np.setdiff1d(np.arange(300), [7, 99, 250])
    r, c, v = topk.topk_numpy(q, items, 10, [read_all_but_3, np.arange(300)])
    got = as_lists(r, c, v, 2)
    assert sorted(x[0] for x in got[0]) == [7, 99, 250] and got[1] == []
    assert [x[1] for x in got[0]] == sorted([x[1] for x in got[0]], reverse=True)


def test_self_exclusion_for_item_item():
    rng = np.random.default_rng(3)
    items = rng.normal(size=(500, 8)).astype(np.float32)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    r, c, v = topk.topk_numpy(items, items, 5, self_positions=np.arange(500))
    got = as_lists(r, c, v, 500)
    assert all(i not in [x[0] for x in g] and len(g) == 5 for i, g in enumerate(got))
    want = brute(items, items, 5, self_pos=np.arange(500))
    assert [[x[0] for x in g] for g in got] == [[x[0] for x in w] for w in want]


def test_property_random_shapes():
    rng = np.random.default_rng(4)
    for _ in range(25):
        n, b, d, k = rng.integers(1, 400), rng.integers(1, 20), rng.integers(1, 6), rng.integers(1, 30)
        items = rng.integers(-3, 4, size=(n, d)).astype(np.float32)  # small ints: many ties
        q = rng.integers(-3, 4, size=(b, d)).astype(np.float32)
        exclude = [rng.choice(n, size=rng.integers(0, n + 1), replace=False) for _ in range(b)]
        r, c, v = topk.topk_numpy(q, items, int(k), exclude, budget_mb=0.01)
        got = as_lists(r, c, v, b)
        want = brute(q, items, int(k), exclude)
        assert [[x[0] for x in g] for g in got] == [[x[0] for x in w] for w in want]


def test_block_rows_formula():
    assert topk.block_rows(4096, 8) == int(8 * 2**20 // (4096 * (4 + 8 / topk.GROUP))) == 455
    assert topk.block_rows(100, 64) == topk.MAX_BLOCK_ROWS
    assert topk.block_rows(10**9, 1) == 1


@pytest.mark.parametrize("tile_cols,k", [(64, 5), (100, 30), (37, 1), (4096, 50)])
def test_many_item_tiles_ties_and_pool_pruning(tile_cols, k):
    """Many item tiles: the running threshold crosses tile borders, the candidate pool is pruned, ties at the
    K-th score fall on different tiles, exclusions land in every tile."""
    rng = np.random.default_rng(tile_cols + k)
    n = 2_500
    q = rng.integers(-2, 3, size=(70, 4)).astype(np.float32)
    items = rng.integers(-2, 3, size=(n, 4)).astype(np.float32)
    exclude = [np.sort(rng.choice(n, size=rng.integers(0, 900), replace=False)) for _ in range(70)]
    exclude[3] = np.delete(np.arange(n), [5, 2_000])  # two books left, in different tiles
    er, ec = topk.flatten_exclusions(exclude, None, 70)
    items_t = np.ascontiguousarray(items.T)
    r, c, v = topk.topk_blocks(q, items_t, k, er, ec, budget_mb=0.02, tile_cols=tile_cols)
    got = [[x[0] for x in g] for g in as_lists(r, c, v, 70)]
    assert got == brute_ids(q, items, k, exclude)
    assert got[3] == brute_ids(q, items, k, exclude)[3] and len(got[3]) == min(2, k)


def test_spark_recommend_matches_numpy(spark):
    rng = np.random.default_rng(5)
    U = rng.normal(size=(30, 6)).astype(np.float32)
    V = rng.normal(size=(200, 6)).astype(np.float32)
    users = spark.createDataFrame(
        [(i * 3, U[i].tolist()) for i in range(30)], "user_idx int, features array<float>"
    )
    items = spark.createDataFrame(
        [(j * 2, V[j].tolist()) for j in range(200)], "book_idx int, features array<float>"
    )
    seen_pairs = [(i * 3, int(j) * 2) for i in range(30) for j in rng.choice(200, size=20, replace=False)]
    seen = spark.createDataFrame(seen_pairs, "user_idx int, book_idx int")
    got = topk.recommend(spark, users, items, 10, seen=seen).collect()
    by_user = {}
    for row in got:
        by_user.setdefault(row["user_idx"], []).append((row["rank"], row["book_idx"], row["score"]))
    exclude = [np.array([b // 2 for u, b in seen_pairs if u == i * 3]) for i in range(30)]
    want = brute(U, V, 10, exclude)
    for i in range(30):
        ranks = sorted(by_user[i * 3])
        assert [x[0] for x in ranks] == list(range(1, 11))
        assert [x[1] for x in ranks] == [j * 2 for j, _ in want[i]]


def brute_ids(q, items, k, exclude=None, self_pos=None):
    """The book positions of :func:`brute`, per query."""
    return [[j for j, _ in row] for row in brute(q, items, k, exclude, self_pos)]


@pytest.mark.parametrize("n_items,k", [(3_207, 100), (4_096, 20), (10_001, 7), (33, 40)])
def test_strided_groups_with_tail_and_many_ties(n_items, k):
    """Catalogues that use full groups of GROUP columns plus a ragged tail; small-int factors make ties common,
    including ties exactly at the K-th score."""
    rng = np.random.default_rng(n_items)
    q = rng.integers(-2, 3, size=(53, 3)).astype(np.float32)
    items = rng.integers(-2, 3, size=(n_items, 3)).astype(np.float32)
    exclude = [rng.choice(n_items, size=rng.integers(0, min(n_items, 500)), replace=False) for _ in range(53)]
    exclude[0] = np.arange(n_items - 3)  # read almost everything: 3 books left
    r, c, v = topk.topk_numpy(q, items, k, exclude, budget_mb=0.3)
    got = [[x[0] for x in g] for g in as_lists(r, c, v, 53)]
    assert got == brute_ids(q, items, k, exclude)
    assert len(got[0]) == min(3, k)


def test_group_size_keeps_at_least_2k_groups():
    assert topk.group_size(200_000, 100) == topk.GROUP
    assert topk.group_size(1_000, 100) == 5
    assert topk.group_size(50, 100) == 1


def test_spark_sharded_items_equal_one_shard(spark):
    """A catalogue split into several item shards (tiny item budget) gives exactly the one-shard result."""
    rng = np.random.default_rng(8)
    U = rng.integers(-3, 4, size=(25, 4)).astype(np.float32)  # ties across shard borders
    V = rng.integers(-3, 4, size=(900, 4)).astype(np.float32)
    users = spark.createDataFrame(
        [(i, U[i].tolist()) for i in range(25)], "user_idx int, features array<float>"
    )
    items = spark.createDataFrame(
        [(j, V[j].tolist()) for j in range(900)], "book_idx int, features array<float>"
    )
    seen_pairs = [(i, int(j)) for i in range(25) for j in rng.choice(900, size=40, replace=False)]
    seen = spark.createDataFrame(seen_pairs, "user_idx int, book_idx int")
    shard_mb = 250 * 4 * 4 / 2**20  # 250 books per shard -> 4 shards
    assert len(topk.shard_bounds(900, 4, shard_mb)) == 4
    rows = topk.recommend(spark, users, items, 12, seen=seen, item_budget_mb=shard_mb).collect()
    by_user: dict[int, list] = {}
    for row in rows:
        by_user.setdefault(row["user_idx"], []).append((row["rank"], row["book_idx"]))
    exclude = [np.array([b for u, b in seen_pairs if u == i]) for i in range(25)]
    want = brute_ids(U, V, 12, exclude)
    for i in range(25):
        ranks = sorted(by_user[i])
        assert [x[0] for x in ranks] == list(range(1, 13))
        assert [x[1] for x in ranks] == want[i]


def test_spark_item_item_excludes_self(spark):
    rng = np.random.default_rng(9)
    V = rng.normal(size=(120, 5)).astype(np.float32)
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    items = spark.createDataFrame(
        [(j + 1000, V[j].tolist()) for j in range(120)], "book_idx int, features array<float>"
    )
    rows = topk.recommend(spark, items, items, 4, query_col="book_idx", exclude_self=True).collect()
    got: dict[int, list] = {}
    for row in sorted(rows, key=lambda r: (r["user_idx"], r["rank"])):
        got.setdefault(row["user_idx"] - 1000, []).append(row["book_idx"] - 1000)
    assert got == dict(enumerate(brute_ids(V, V, 4, self_pos=np.arange(120))))


def test_unit_length_by_hand_and_against_numpy(spark):
    from pyspark.sql import functions as F

    rng = np.random.default_rng(3)
    wide = rng.standard_normal((5, 256)).astype(np.float32)
    rows = [(0, [3.0, 4.0]), (1, [0.0, 0.0]), (2, []), (3, None)] + [
        (4 + i, v.tolist()) for i, v in enumerate(wide)
    ]
    df = spark.createDataFrame(rows, "i int, v array<float>")
    got = {r["i"]: r["u"] for r in df.select("i", topk.unit_length(F.col("v")).alias("u")).collect()}
    assert got[0] == pytest.approx([0.6, 0.8]) and got[1] == [0.0, 0.0]  # a zero vector stays zero
    assert got[2] == [] and got[3] is None
    expected = wide / np.linalg.norm(wide, axis=1, keepdims=True)
    np.testing.assert_allclose(np.array([got[4 + i] for i in range(5)]), expected, rtol=1e-6, atol=1e-7)
