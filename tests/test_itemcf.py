"""Item-based CF on hand-made frames, every expected number computed by hand (see each test)."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from chispa import assert_df_equality

from recspark import columns as C
from recspark import itemcf
from recspark.itemcf import ItemCfParams

SCHEMA = "user_idx int, book_idx int, date_added timestamp"
DAY0 = dt.datetime(2020, 1, 1)


def shelves(spark, rows):
    """rows: (user, book, day or None)."""
    return spark.createDataFrame(
        [(u, b, None if d is None else DAY0 + dt.timedelta(days=d)) for u, b, d in rows], SCHEMA
    )


# u0 {0,1,2}, u1 {0,1}, u2 {1,2}, u3 {3}: readers 0:{u0,u1} 1:{u0,u1,u2} 2:{u0,u2} 3:{u3}
# co-occurrence (0,1)=2 (u0,u1), (0,2)=1 (u0), (1,2)=2 (u0,u2); book 3 co-occurs with nothing
TOY = [(0, 0, 1), (0, 1, 2), (0, 2, 3), (1, 0, 1), (1, 1, 2), (2, 1, 1), (2, 2, 2), (3, 3, 1)]


def pairs_of(df):
    return {(r[C.BOOK_IDX], r[itemcf.NEIGHBOUR_IDX]): r for r in df.collect()}


def test_cooccurrence_counts_common_readers(spark):
    shelf = itemcf.weighted(shelves(spark, TOY), None).select(C.USER_IDX, C.BOOK_IDX, itemcf.WEIGHT)
    got = {k: (r["c"], r["_users"]) for k, r in pairs_of(itemcf.cooccurrence(shelf)).items()}
    assert got == {(0, 1): (2.0, 2), (0, 2): (1.0, 1), (1, 2): (2.0, 2)}


@pytest.mark.parametrize(
    "kind, expected",
    [
        # cosine c/sqrt(n_a n_b): (0,1) 2/sqrt(2*3), (0,2) 1/sqrt(2*2), (1,2) 2/sqrt(3*2)
        ("cosine", {(0, 1): 2 / math.sqrt(6), (0, 2): 0.5, (1, 2): 2 / math.sqrt(6)}),
        # jaccard c/(n_a+n_b-c): 2/3, 1/3, 2/3
        ("jaccard", {(0, 1): 2 / 3, (0, 2): 1 / 3, (1, 2): 2 / 3}),
        # lift c*U/(n_a n_b), U = 4 users: 8/6, 4/4, 8/6
        ("lift", {(0, 1): 8 / 6, (0, 2): 1.0, (1, 2): 8 / 6}),
    ],
)
def test_similarities_both_directions(spark, kind, expected):
    co = itemcf.Cooccurrence(shelves(spark, TOY), ItemCfParams())
    try:
        got = {k: r["score"] for k, r in pairs_of(co.neighbours(kind, 10)).items()}
    finally:
        co.release()
    want = {**expected, **{(b, a): v for (a, b), v in expected.items()}}
    assert set(got) == set(want)
    for key, v in want.items():
        assert got[key] == pytest.approx(v, rel=1e-6), key


def test_top_neighbours_keeps_n_best_ties_to_smaller_index(spark):
    sims = spark.createDataFrame(
        [(0, 3, 0.5), (0, 1, 0.9), (0, 2, 0.5), (1, 0, 0.9)], "book_idx int, neighbour_idx int, score double"
    )
    got = itemcf.top_neighbours(sims, 2)
    want = spark.createDataFrame(
        [(0, 1, 1, 0.9), (0, 2, 2, 0.5), (1, 1, 0, 0.9)],
        "book_idx int, rank int, neighbour_idx int, score float",
    )
    assert_df_equality(got, want, ignore_row_order=True, ignore_nullable=True)


def test_recommend_sums_neighbour_scores_and_excludes_shelved_books(spark):
    data = shelves(spark, TOY)
    nb = itemcf.fit(data, ItemCfParams(similarity="cosine", neighbours=10))
    got = itemcf.recommend(data, nb, k=5).orderBy(C.USER_IDX, C.RANK).collect()
    # u1 {0,1}: only book 2 is unshelved and co-read: sim(0,2)+sim(1,2) = 0.5 + 2/sqrt(6), mostly because of 1
    # u2 {1,2}: book 0: sim(1,0)+sim(2,0) = 2/sqrt(6) + 0.5, because of 1. u0 has read every co-read book;
    # u3's book has no neighbours: neither gets a list (the publish step fills such lists with popular books)
    assert [(r[C.USER_IDX], r[C.RANK], r[C.BOOK_IDX], r[itemcf.BECAUSE_IDX]) for r in got] == [
        (1, 1, 2, 1),
        (2, 1, 0, 1),
    ]
    for r in got:
        assert r["score"] == pytest.approx(0.5 + 2 / math.sqrt(6), rel=1e-6)


def test_recommend_exclusion_is_exact_against_brute_force(spark):
    import random

    rnd = random.Random(7)
    rows = sorted({(u, rnd.randrange(30), rnd.randrange(100)) for u in range(40) for _ in range(8)})
    data = shelves(spark, [(u, b, d) for u, b, d in rows])
    nb = itemcf.fit(data, ItemCfParams(neighbours=5))
    recs = itemcf.recommend(data, nb, k=10).collect()
    seen = {(u, b) for u, b, _ in rows}
    assert recs and not [r for r in recs if (r[C.USER_IDX], r[C.BOOK_IDX]) in seen]
    # brute force: score(u, i) = sum over shelved j of sim(j, i) among j's kept neighbours
    sim = {(r[C.BOOK_IDX], r[itemcf.NEIGHBOUR_IDX]): r["score"] for r in nb.collect()}
    by_user: dict[int, set[int]] = {}
    for u, b, _ in rows:
        by_user.setdefault(u, set()).add(b)
    for r in recs:
        want = sum(sim.get((j, r[C.BOOK_IDX]), 0.0) for j in by_user[r[C.USER_IDX]])
        assert r["score"] == pytest.approx(want, rel=1e-5)


def brute_force_scores(rows, sim):
    """Python oracle: every user's score for every unshelved book with a shelved neighbour."""
    by_user: dict[int, set[int]] = {}
    for u, b, _ in rows:
        by_user.setdefault(u, set()).add(b)
    out: dict[int, dict[int, float]] = {}
    for u, read in by_user.items():
        for (j, i), s in sim.items():
            if j in read and i not in read:
                out.setdefault(u, {})[i] = out.setdefault(u, {}).get(i, 0.0) + s
    return out, by_user


@pytest.mark.parametrize("n_books", [30, 3000])  # 30: dense bincount branch; 3000: sorted-unique branch
def test_kernel_matches_join_path_and_brute_force(spark, n_books):
    import random

    rnd = random.Random(11)
    pick = [n_books, 12]  # a third of the users read among 12 books, so lists overlap
    rows = sorted({(u, rnd.randrange(pick[u % 3 == 0]), 0) for u in range(40) for _ in range(8)})
    data = shelves(spark, rows)
    nb = itemcf.fit(data, ItemCfParams(neighbours=6))
    sim = {(r[C.BOOK_IDX], r[itemcf.NEIGHBOUR_IDX]): r["score"] for r in nb.collect()}
    truth, read = brute_force_scores(rows, sim)
    k = 4

    assert itemcf.neighbour_arrays(nb) is not None and itemcf.neighbour_arrays(nb, budget_mb=0) is None
    kernel = itemcf.recommend(data, nb, k=k).collect()
    joined = itemcf.recommend(data, nb, k=k, broadcast_mb=0).collect()  # too big to broadcast: the join path
    for got in (kernel, joined):
        lists: dict[int, list] = {}
        for r in sorted(got, key=lambda r: (r[C.USER_IDX], r[C.RANK])):
            lists.setdefault(r[C.USER_IDX], []).append((r[C.BOOK_IDX], r["score"], r[itemcf.BECAUSE_IDX]))
        assert set(lists) == set(truth)
        for u, scores in truth.items():
            best = sorted(scores.values(), reverse=True)[:k]
            assert [s for _, s, _ in lists[u]] == pytest.approx(best, rel=1e-5), u  # the k best, in order
            for b, s, because in lists[u]:
                assert b not in read[u] and scores[b] == pytest.approx(s, rel=1e-5)
                # the explanation is a shelved book with the largest single contribution to b's score
                top = max(sim.get((j, b), 0.0) for j in read[u])
                assert because in read[u] and sim.get((because, b), 0.0) == pytest.approx(top, rel=1e-6)
    assert sorted((r[C.USER_IDX], r[C.RANK]) for r in kernel) == sorted(
        (r[C.USER_IDX], r[C.RANK]) for r in joined
    )


NEIGHBOUR_SCHEMA = "book_idx int, rank int, neighbour_idx int, score float"


@pytest.mark.parametrize("broadcast_mb", [itemcf.BROADCAST_MB, 0])  # the kernel, then the join path
def test_negative_weights_pull_a_sum_down_and_never_explain(spark, broadcast_mb):
    # EASE keeps negative weights. u0 shelved {0, 1}; 0 -> 2: 1.0, 0 -> 3: 0.5, 1 -> 2: -0.7, 1 -> 4: -0.2.
    # Sums: book 2: 1.0 - 0.7 = 0.3, book 3: 0.5, book 4: -0.2 (not positive: no shelf speaks for it, dropped).
    # Both are explained by book 0, their largest contribution (never book 1's negative one).
    data = shelves(spark, [(0, 0, None), (0, 1, None)])
    nb = spark.createDataFrame(
        [(0, 1, 2, 1.0), (0, 2, 3, 0.5), (1, 1, 4, -0.2), (1, 2, 2, -0.7)], NEIGHBOUR_SCHEMA
    )
    got = itemcf.recommend(data, nb, k=5, broadcast_mb=broadcast_mb).orderBy(C.RANK).collect()
    assert [(r[C.BOOK_IDX], r[itemcf.BECAUSE_IDX]) for r in got] == [(3, 0), (2, 0)]
    assert [r["score"] for r in got] == pytest.approx([0.5, 0.3], rel=1e-6)


def test_similar_books_from_neighbours_show_positive_weights_only(spark):
    from recspark.pipeline import similar_from_neighbours

    # every book has 2 readers; book 0's neighbours: 1 (0.4), 2 (-0.9, EASE's "less likely": no similarity), 3 (0.1)
    data = shelves(spark, [(u, b, None) for b in range(4) for u in (0, 1)])
    nb = spark.createDataFrame([(0, 1, 1, 0.4), (0, 2, 3, 0.1), (0, 3, 2, -0.9)], NEIGHBOUR_SCHEMA)
    got = similar_from_neighbours(data, nb, k=5, min_readers=2).orderBy(C.RANK).collect()
    assert [(r[C.BOOK_IDX], r[C.RANK], r[itemcf.NEIGHBOUR_IDX]) for r in got] == [(0, 1, 1), (0, 2, 3)]


@pytest.mark.parametrize("broadcast_mb", [itemcf.BROADCAST_MB, 0])  # the kernel, then the join path
def test_popularity_prior_by_hand(spark, broadcast_mb):
    data = shelves(spark, TOY)
    nb = itemcf.fit(data, ItemCfParams(similarity="cosine", neighbours=10))
    got = itemcf.recommend(data, nb, k=3, broadcast_mb=broadcast_mb, popularity_weight=1.0)
    rows = [
        (r[C.USER_IDX], r[C.RANK], r[C.BOOK_IDX], r[itemcf.BECAUSE_IDX], r["score"])
        for r in got.orderBy(C.USER_IDX, C.RANK).collect()
    ]
    # readers 0:2 1:3 2:2 3:1, so the prior (β = 1) is 2/3, 1, 2/3, 1/3. The neighbour sums are scaled to 1 per
    # user: u1's one candidate (book 2) scores 1 + 2/3, u2's (book 0) too, both because of book 1; then every
    # unshelved book by its prior alone, without an explanation: book 3 for u0, u1, u2; u3's book has no
    # neighbours, so u3 gets the popular order (1, then 0 and 2 tied at 2/3: the smaller index first)
    want = [
        (0, 1, 3, None, 1 / 3),
        (1, 1, 2, 1, 5 / 3),
        (1, 2, 3, None, 1 / 3),
        (2, 1, 0, 1, 5 / 3),
        (2, 2, 3, None, 1 / 3),
        (3, 1, 1, None, 1.0),
        (3, 2, 0, None, 2 / 3),
        (3, 3, 2, None, 2 / 3),
    ]
    assert [r[:4] for r in rows] == [w[:4] for w in want]
    assert [r[4] for r in rows] == pytest.approx([w[4] for w in want], rel=1e-6)


@pytest.mark.parametrize("broadcast_mb", [itemcf.BROADCAST_MB, 0])
def test_popularity_prior_against_brute_force(spark, broadcast_mb):
    import random

    rnd = random.Random(5)
    # users 0-19 read among 12 books (co-reading), users 20-39 among 40 (mostly alone): scores and prior mix
    rows = sorted({(u, rnd.randrange(12 if u < 20 else 40), 0) for u in range(40) for _ in range(4)})
    data = shelves(spark, rows)
    nb = itemcf.fit(data, ItemCfParams(neighbours=3))
    sim = {(r[C.BOOK_IDX], r[itemcf.NEIGHBOUR_IDX]): r["score"] for r in nb.collect()}
    truth, read = brute_force_scores(rows, sim)
    readers: dict[int, int] = {}
    for _, b, _ in rows:
        readers[b] = readers.get(b, 0) + 1
    beta, k = 0.5, 6
    got = itemcf.recommend(data, nb, k=k, broadcast_mb=broadcast_mb, popularity_weight=beta).collect()
    lists: dict[int, list] = {}
    for r in sorted(got, key=lambda r: (r[C.USER_IDX], r[C.RANK])):
        lists.setdefault(r[C.USER_IDX], []).append((r[C.BOOK_IDX], r["score"], r[itemcf.BECAUSE_IDX]))
    assert set(lists) == set(read)
    for u, books in read.items():
        own = {b: s for b, s in truth.get(u, {}).items() if s > 0}
        top = max(own.values(), default=1.0)
        want = {
            b: own.get(b, 0.0) / top + beta * n / max(readers.values())
            for b, n in readers.items()
            if b not in books
        }
        best = sorted(want.values(), reverse=True)[:k]
        assert [s for _, s, _ in lists[u]] == pytest.approx(best, rel=1e-5), u
        for b, s, because in lists[u]:
            assert s == pytest.approx(want[b], rel=1e-5)
            assert (because is None) == (b not in own)  # explained exactly when the shelves speak for it


@pytest.mark.parametrize("broadcast_mb", [itemcf.BROADCAST_MB, 0])
def test_the_prior_sweep_gives_the_lists_of_each_weight(spark, broadcast_mb):
    # the tuning's sweep counts readers (and collects the table) once: each weight's lists, scores and
    # explanations are exactly those of recommend() with that weight, for a subset of users too
    import random

    rnd = random.Random(9)
    rows = sorted({(u, rnd.randrange(12 if u < 20 else 40), 0) for u in range(40) for _ in range(4)})
    # ratings 1-5 at random, so the books' liked shares differ
    data = spark.createDataFrame(
        [(u, b, DAY0, rnd.randint(1, 5)) for u, b, _ in rows],
        "user_idx int, book_idx int, date_added timestamp, rating int",
    )
    nb = itemcf.fit(data, ItemCfParams(neighbours=3)).cache()
    users = spark.createDataFrame([(u,) for u in range(0, 40, 3)], "user_idx int")
    priors = [(0.5, 0.0), (3.0, 0.0), (0.0, 0.3), (0.5, 1.0)]
    swept = itemcf.recommend_each_prior(data, nb, 5, priors, users=users, broadcast_mb=broadcast_mb)
    seen = []
    for (beta, gamma), recs in swept:
        seen.append((beta, gamma))
        want = itemcf.recommend(
            data, nb, 5, users=users, broadcast_mb=broadcast_mb, popularity_weight=beta, liked_weight=gamma
        )
        got = sorted(tuple(r) for r in recs.collect())
        assert got == sorted(tuple(r) for r in want.collect()), (beta, gamma)
        assert {r[0] for r in got} == set(range(0, 40, 3))
    assert seen == priors
    nb.unpersist()


@pytest.mark.parametrize("broadcast_mb", [itemcf.BROADCAST_MB, 0])  # the kernel, then the join path
def test_liked_share_prior_by_hand(spark, broadcast_mb):
    # TOY with stars: book 0 rated 5 by u0 and 2 by u1, book 1 rated 4, 1, 5 by u0, u1, u2, book 2 5 and 3 by u0,
    # u2, book 3 unrated by u3. Liked (not rated below 4, unrated counts): 5 of 8 shelves, overall share 0.625;
    # shrunk by 10 pseudo-shelves at it: book 0 (1 + 6.25) / 12, book 1 (2 + 6.25) / 13, book 2 (1 + 6.25) / 12,
    # book 3 (1 + 6.25) / 11. With γ = 1 and no popularity prior: u1's one candidate (book 2, because of book 1)
    # scores 1 + 7.25 / 12, then book 3 by its share alone; u3 has no neighbours: the books by share (1, then 0
    # and 2 tied: the smaller index first)
    stars = {(0, 0): 5, (0, 1): 4, (0, 2): 5, (1, 0): 2, (1, 1): 1, (2, 1): 5, (2, 2): 3, (3, 3): 0}
    data = spark.createDataFrame(
        [(u, b, DAY0, stars[(u, b)]) for u, b, _ in TOY],
        "user_idx int, book_idx int, date_added timestamp, rating int",
    )
    nb = itemcf.fit(data, ItemCfParams(similarity="cosine", neighbours=10))
    got = itemcf.recommend(data, nb, k=3, broadcast_mb=broadcast_mb, liked_weight=1.0)
    rows = [
        (r[C.USER_IDX], r[C.RANK], r[C.BOOK_IDX], r[itemcf.BECAUSE_IDX], r["score"])
        for r in got.orderBy(C.USER_IDX, C.RANK).collect()
    ]
    share = {0: 7.25 / 12, 1: 8.25 / 13, 2: 7.25 / 12, 3: 7.25 / 11}
    want = [
        (0, 1, 3, None, share[3]),
        (1, 1, 2, 1, 1 + share[2]),
        (1, 2, 3, None, share[3]),
        (2, 1, 0, 1, 1 + share[0]),
        (2, 2, 3, None, share[3]),
        (3, 1, 1, None, share[1]),
        (3, 2, 0, None, share[0]),
        (3, 3, 2, None, share[2]),
    ]
    assert [r[:4] for r in rows] == [w[:4] for w in want]
    assert [r[4] for r in rows] == pytest.approx([w[4] for w in want], rel=1e-6)


def test_the_consumers_prior_is_the_batch_formula():
    import numpy as np

    from recspark import foldin

    # sums 0, 2, 1, 0 (scaled: 0, 1, 0.5, 0); readers 4, 0, 2, 0 (prior with weight 0.5: 0.5, 0, 0.25, 0); the
    # last book has neither a sum nor a reader: never recommended
    got = foldin.with_prior(np.array([0.0, 2.0, 1.0, 0.0]), np.array([4.0, 0.0, 2.0, 0.0]), 0.5)
    assert got.tolist() == [0.5, 1.0, 0.75, -np.inf]
    # with liked shares 0.2, 0.4, 0.6, 0.8 at γ 0.5: + 0.1, 0.2, 0.3 (the last book still never)
    liked = np.array([0.2, 0.4, 0.6, 0.8])
    got = foldin.with_prior(np.array([0.0, 2.0, 1.0, 0.0]), np.array([4.0, 0.0, 2.0, 0.0]), 0.5, liked, 0.5)
    assert got.tolist() == pytest.approx([0.6, 1.2, 1.05, -np.inf])


def test_the_consumers_sums_take_negative_weights_like_the_batch():
    import numpy as np

    from recspark import foldin

    # the table of test_negative_weights_pull_a_sum_down_and_never_explain in CSR form: 0 -> 2: 1.0, 0 -> 3: 0.5,
    # 1 -> 2: -0.7, 1 -> 4: -0.2. A reader who just shelved 0 and 1: sums 0.3, 0.5, -0.2 for books 2, 3, 4
    indptr = np.array([0, 2, 4, 4, 4, 4])
    neighbour, sim = np.array([2, 3, 2, 4]), np.array([1.0, 0.5, -0.7, -0.2])
    sums, cand, contrib = foldin.neighbour_scores(indptr, neighbour, sim, np.array([0, 1]), np.ones(2), 5)
    assert sums.tolist() == pytest.approx([0.0, 0.0, 0.3, 0.5, -0.2])
    # with the prior, a book whose sum is not positive counts by its readers alone, as in the batch kernel
    got = foldin.with_prior(sums, np.array([0.0, 0.0, 1.0, 1.0, 2.0]), 1.0)
    assert got.tolist() == pytest.approx([-np.inf, -np.inf, 0.6 + 0.5, 1.0 + 0.5, 1.0])


def test_cap_keeps_each_users_most_recent_books(spark):
    # u0 shelved 0 on day 1, 1 on day 2, 2 on day 3: with a cap of 2 only {1,2} count, so (0,1) keeps only u1
    shelf = itemcf.capped(itemcf.weighted(shelves(spark, TOY), None), 2, seed=1)
    got = {k: r["c"] for k, r in pairs_of(itemcf.cooccurrence(shelf)).items()}
    assert got == {(0, 1): 1.0, (1, 2): 2.0}


def test_time_decay_halves_weight_per_half_life(spark):
    # newest shelf on day 20; half-life 10 days: a shelf of day 10 weighs 0.5, of day 0 0.25, undated 1
    data = shelves(spark, [(0, 0, 20), (0, 1, 10), (1, 0, 0), (1, 2, None)])
    got = {(r[C.USER_IDX], r[C.BOOK_IDX]): r[itemcf.WEIGHT] for r in itemcf.weighted(data, 10.0).collect()}
    assert got == pytest.approx({(0, 0): 1.0, (0, 1): 0.5, (1, 0): 0.25, (1, 2): 1.0})


RATED = "user_idx int, book_idx int, date_added timestamp, rating int"


def test_star_weights_scale_a_rated_shelf_by_its_stars(spark):
    # rated 5 -> 1, 2 -> 0.4, unrated (0) -> 1; with a half-life of 10 days the decay multiplies in: the shelf of
    # day 10 rated 2 weighs 0.5 x 0.4 = 0.2 (the newest shelf is of day 20)
    data = spark.createDataFrame(
        [(0, 0, DAY0 + dt.timedelta(days=20), 5), (0, 1, DAY0 + dt.timedelta(days=10), 2), (1, 0, None, 0)],
        RATED,
    )
    got = {
        (r[C.USER_IDX], r[C.BOOK_IDX]): r[itemcf.WEIGHT]
        for r in itemcf.weighted(data, None, "stars").collect()
    }
    assert got == pytest.approx({(0, 0): 1.0, (0, 1): 0.4, (1, 0): 1.0})
    got = {
        (r[C.USER_IDX], r[C.BOOK_IDX]): r[itemcf.WEIGHT]
        for r in itemcf.weighted(data, 10.0, "stars").collect()
    }
    assert got == pytest.approx({(0, 0): 1.0, (0, 1): 0.2, (1, 0): 1.0})
    unit = {r[itemcf.WEIGHT] for r in itemcf.weighted(data, None).collect()}
    assert unit == {1.0}  # the default ignores the stars


def test_star_weighted_cosine_and_sums_by_hand(spark):
    # u0 rated 0 five and 1 one star (weights 1, 0.2); u1 rated 0 and 2 four stars (0.8, 0.8); u2 shelved 1 and 2
    # unrated (1, 1). Co-occurrence c01 = 1 x 0.2 = 0.2, c02 = 0.8 x 0.8 = 0.64, c12 = 1 x 1 = 1; q0 = 1 + 0.64
    # = 1.64, q1 = 0.04 + 1 = 1.04, q2 = 0.64 + 1 = 1.64. cos(0,1) = 0.2 / sqrt(1.64 x 1.04), cos(0,2) = 0.64 /
    # 1.64, cos(1,2) = 1 / sqrt(1.04 x 1.64). u0's only candidate, book 2: 1 x cos(0,2) + 0.2 x cos(1,2)
    data = spark.createDataFrame(
        [
            (0, 0, None, 5),
            (0, 1, None, 1),
            (1, 0, None, 4),
            (1, 2, None, 4),
            (2, 1, None, 0),
            (2, 2, None, 0),
        ],
        RATED,
    )
    params = ItemCfParams(similarity="cosine", neighbours=10, shelf_weights="stars")
    nb = itemcf.fit(data, params)
    sims = {k: r["score"] for k, r in pairs_of(nb).items()}
    c01, c02, c12 = 0.2 / math.sqrt(1.64 * 1.04), 0.64 / 1.64, 1 / math.sqrt(1.04 * 1.64)
    assert sims == pytest.approx(
        {(0, 1): c01, (1, 0): c01, (0, 2): c02, (2, 0): c02, (1, 2): c12, (2, 1): c12}
    )
    got = itemcf.recommend(data, nb, k=3, shelf_weights="stars").where(f"{C.USER_IDX} = 0").collect()
    assert [(r[C.BOOK_IDX], r[itemcf.BECAUSE_IDX]) for r in got] == [(2, 0)]
    assert got[0]["score"] == pytest.approx(c02 + 0.2 * c12, rel=1e-6)
    # the consumer weighs a reader's shelves the same way
    from recspark import foldin

    info = foldin.ModelInfo(model="itemcf", itemcf_shelf_weights="stars")
    shelved = [foldin.Shelf(pos=0, rating=5), foldin.Shelf(pos=1, rating=1), foldin.Shelf(pos=2)]
    assert foldin.shelf_weights(shelved, info).tolist() == pytest.approx([1.0, 0.2, 1.0])
    assert foldin.shelf_weights(shelved, foldin.ModelInfo(model="itemcf")).tolist() == [1.0, 1.0, 1.0]


def test_read_weights_halve_an_unread_shelf_in_the_batch_and_the_consumer(spark):
    # read unrated -> 1, unread -> 0.5; with stars too: read and rated 4 -> 0.8, unread and rated 2 (possible in
    # the UCSD files) -> 0.5 x 0.4 = 0.2
    schema = "user_idx int, book_idx int, date_added timestamp, rating int, is_read boolean"
    rows = [(0, 0, None, 0, True), (0, 1, None, 0, False), (1, 0, None, 4, True), (1, 2, None, 2, False)]
    data = spark.createDataFrame(rows, schema)
    from recspark import foldin

    for how, want in (("read", [1.0, 0.5, 1.0, 0.5]), ("read+stars", [1.0, 0.5, 0.8, 0.2])):
        got = {
            (r[C.USER_IDX], r[C.BOOK_IDX]): r[itemcf.WEIGHT]
            for r in itemcf.weighted(data, None, how).collect()
        }
        assert [got[(u, b)] for u, b, *_ in rows] == pytest.approx(want), how
        shelved = [foldin.Shelf(pos=b, rating=r, is_read=read) for _, b, _, r, read in rows]
        info = foldin.ModelInfo(model="itemcf", itemcf_shelf_weights=how)
        assert foldin.shelf_weights(shelved, info).tolist() == pytest.approx(want), how


def test_time_decay_weighs_the_sums_in_the_batch_and_the_consumer(spark):
    # newest shelf on day 20, half-life 10 days. u0 shelved book 0 on day 20 (weight 1) and book 1 on day 10
    # (0.5); u1 shelved 0 and 2, u2 1 and 2 (both on day 20). Cosine with decayed weights: c02 = 1 (u1), c12 = 1
    # (u2); q0 = 1 + 1 = 2, q1 = 0.25 + 1 = 1.25, q2 = 2. u0's only candidate, book 2, scores
    # 1 x cos(0,2) + 0.5 x cos(1,2) = 1 / 2 + 0.5 / sqrt(2.5)
    day = lambda d: DAY0 + dt.timedelta(days=d)  # noqa: E731
    rows = [
        (0, 0, day(20)),
        (0, 1, day(10)),
        (1, 0, day(20)),
        (1, 2, day(20)),
        (2, 1, day(20)),
        (2, 2, day(20)),
    ]
    data = spark.createDataFrame(rows, SCHEMA)
    params = ItemCfParams(similarity="cosine", neighbours=10, half_life_days=10.0)
    nb = itemcf.fit(data, params)
    got = itemcf.recommend(data, nb, k=3, half_life_days=10.0).where(f"{C.USER_IDX} = 0").collect()
    assert [r[C.BOOK_IDX] for r in got] == [2]
    assert got[0]["score"] == pytest.approx(0.5 + 0.5 / math.sqrt(2.5), rel=1e-6)
    from recspark import foldin

    info = foldin.ModelInfo(model="itemcf", reference_date=day(20), itemcf_half_life_days=10.0)
    shelved = [
        foldin.Shelf(pos=0, date_added=day(20)),
        foldin.Shelf(pos=1, date_added=day(10)),
        foldin.Shelf(2),
    ]
    assert foldin.shelf_weights(shelved, info).tolist() == pytest.approx([1.0, 0.5, 1.0])  # undated: 1
    no_decay = foldin.ModelInfo(model="itemcf", reference_date=day(20))
    assert foldin.shelf_weights(shelved, no_decay).tolist() == [1.0, 1.0, 1.0]


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="shelf weights"):
        ItemCfParams(shelf_weights="ratings")
    with pytest.raises(ValueError, match="similarity"):
        ItemCfParams(similarity="pearson")
    with pytest.raises(ValueError, match="neighbours"):
        ItemCfParams(neighbours=0)
    with pytest.raises(ValueError, match="popularity_weight"):
        ItemCfParams(popularity_weight=-0.1)
