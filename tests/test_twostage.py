"""Two-stage recommendations: candidate features on a hand-made frame (hand-computed values), labels, the ranker
against a brute-force order, the fallback with too few positives, the message without xgboost, and the published
lists computed once with their lineage cut."""

from __future__ import annotations

import datetime as dt
import json
import math
import sys

import pytest
from pyspark.sql import functions as F

from recspark import candidates, ranker

N = 2


def train_frame(spark):
    rows = [
        (0, 0, 5, dt.datetime(2017, 1, 1)),
        (0, 1, 0, dt.datetime(2017, 3, 30)),
        (1, 0, 3, dt.datetime(2017, 3, 31)),
        (1, 2, 0, dt.datetime(2016, 10, 1)),  # more than 90 days before the latest shelf: not recent
        (2, 0, 0, dt.datetime(2017, 1, 1)),  # user 2 has no candidates: one shelf, of the most-read book
    ]
    return spark.createDataFrame(rows, "user_idx int, book_idx int, rating int, date_added timestamp")


def books_frame(spark):
    rows = [
        (0, [10], ["fantasy", "fiction"], ["s1"]),
        (1, [11], ["fantasy"], []),
        (2, [10], ["history"], []),
        (3, [10], ["fantasy"], ["s1"]),
    ]
    return spark.createDataFrame(
        rows, "book_idx int, author_ids array<long>, genres array<string>, series array<string>"
    )


def lists(spark):
    schema = "user_idx int, rank int, book_idx int, score float"
    return {
        "als": spark.createDataFrame([(0, 1, 3, 0.9), (0, 2, 2, 0.5), (1, 1, 3, 0.7)], schema),
        "popularity": spark.createDataFrame([(0, 1, 2, 2.0), (1, 1, 1, 1.0)], schema),
    }


def test_candidate_features_by_hand(spark):
    feats = candidates.features(
        candidates.candidate_union(lists(spark), N),
        train_frame(spark),
        books_frame(spark),
        ("als", "popularity"),
    )
    assert feats.columns == ["user_idx", "book_idx", *candidates.feature_columns(("als", "popularity"))]
    assert set(candidates.feature_names(("als", "popularity"))) < set(feats.columns)
    # the ranker sees no count that grows with the data: ln(ratings) is ln(readers) itself on a ratings file
    counts = {"als_score", "popularity_score", "book_log_readers", "user_log_shelves", "book_log_ratings"}
    assert not counts & set(candidates.feature_names(("als", "popularity")))
    got = {(r["user_idx"], r["book_idx"]): r.asDict() for r in feats.collect()}
    assert set(got) == {(0, 3), (0, 2), (1, 3), (1, 1)}
    nan = float("nan")
    want = {
        # source scores and ranks (a source that did not propose the book: score NaN, rank n + 1 = 3)
        (0, 3): dict(als_score=0.9, als_rank=1, popularity_score=nan, popularity_rank=3, n_sources=1),
        (0, 2): dict(als_score=0.5, als_rank=2, popularity_score=2.0, popularity_rank=1, n_sources=2),
        (1, 1): dict(als_score=nan, als_rank=3, popularity_score=1.0, popularity_rank=1, n_sources=1),
    }
    # scaled: over the user's top score of the source (user 0: ALS 0.9, popularity 2.0; user 1: popularity 1.0)
    want[(0, 3)].update(als_scaled=1.0, popularity_scaled=nan)
    want[(0, 2)].update(als_scaled=0.5 / 0.9, popularity_scaled=1.0)
    want[(1, 1)].update(als_scaled=nan, popularity_scaled=1.0)
    # book 2: one reader, 2016-10-01 is outside the 90 days before 2017-03-31, unrated; book 1: recent, unrated;
    # book 3: no reader in train at all; the most-read book is book 0 (3 readers): ln 4
    want[(0, 2)].update(book_log_readers=math.log(2), book_recent_share=0.0, book_log_ratings=0.0)
    want[(1, 1)].update(book_log_readers=math.log(2), book_recent_share=1.0, book_log_ratings=0.0)
    want[(0, 3)].update(
        book_log_readers=0.0, book_recent_share=0.0, book_log_ratings=0.0, book_mean_rating=nan
    )
    want[(0, 2)].update(book_readers_vs_top=math.log(2 / 4))
    want[(1, 1)].update(book_readers_vs_top=math.log(2 / 4))
    want[(0, 3)].update(book_readers_vs_top=-math.log(4))
    # liked share (no is_read column: reading not recorded): of the 5 shelves all but book 0's 3 stars are liked,
    # 4/5 overall; books 1 and 2 have one unrated (liked) shelf each, (1 + 10 · 4/5) / (1 + 10) = 9/11; book 3 is
    # unshelved and gets the overall share
    want[(0, 2)].update(book_liked_share=9 / 11)
    want[(1, 1)].update(book_liked_share=9 / 11)
    want[(0, 3)].update(book_liked_share=0.8)
    # users: 0 and 1 shelved 2 books, user 2 one (mean ln(1 + shelves): (2 ln 3 + ln 2) / 3); user 0 rated 5,
    # user 1 rated 3
    vs_mean = math.log(3) - (2 * math.log(3) + math.log(2)) / 3
    for key in want:
        want[key].update(
            user_log_shelves=math.log(3),
            user_shelves_vs_mean=vs_mean,
            user_mean_rating=5.0 if key[0] == 0 else 3.0,
        )
    # affinity: user 0 shelved b0 (author 10, fantasy, s1) and b1 (author 11, fantasy)
    want[(0, 3)].update(author_share=0.5, genre_share=1.0, series_read=math.log(2))
    want[(0, 2)].update(author_share=0.5, genre_share=0.0, series_read=0.0)
    # user 1 shelved b0 (author 10, fantasy, s1) and b2 (author 10, history)
    want[(1, 1)].update(author_share=0.0, genre_share=0.5, series_read=0.0)
    assert got[(1, 3)]["author_share"] == 1.0 and got[(1, 3)]["genre_share"] == 0.5
    for key, values in want.items():
        for name, value in values.items():
            if math.isnan(value):
                assert math.isnan(got[key][name]), (key, name)
            else:
                assert got[key][name] == pytest.approx(value, rel=1e-6), (key, name)
    assert math.isnan(got[(1, 1)]["book_mean_rating"])

    truth = spark.createDataFrame([(0, 2), (1, 9)], "user_idx int, book_idx int")
    # truth pairs with candidates: (0, 2) found by both sources' top-2; (1, 9) by none
    assert candidates.recall(feats, truth, ("als", "popularity"), N) == {
        "als": 0.5,
        "popularity": 0.5,
        "union": 0.5,
    }


def test_the_liked_share_is_shrunk_towards_the_overall_share(spark):
    """Without reading recorded: book 0 rated 5, 5, 4, 2 (3 of 4 liked), book 1 rated 1 (0 of 1), book 2 shelved
    unrated (1 of 1: unrated is not disliked): 4 of the 6 shelves liked, so overall 2/3 and, with 10 pseudo-shelves
    at 2/3, book 0 (3 + 20/3) / (4 + 10) = 29/42, book 1 (0 + 20/3) / 11 = 20/33, book 2 (1 + 20/3) / 11 = 23/33.
    Unrated shelves only (to_read): every shelf is liked, every share 1."""
    rows = [(u, 0, r) for u, r in enumerate((5, 5, 4, 2))] + [(0, 1, 1), (1, 2, 0)]
    train = spark.createDataFrame(rows, "user_idx int, book_idx int, rating int").withColumn(
        "date_added", F.lit(None).cast("timestamp")
    )
    per_book, overall = candidates.book_features(train)
    got = {r["book_idx"]: r["book_liked_share"] for r in per_book.collect()}
    assert overall == pytest.approx(2 / 3)
    assert got == pytest.approx({0: 29 / 42, 1: 20 / 33, 2: 23 / 33}, rel=1e-6)
    unrated = train.withColumn("rating", F.lit(0))
    per_book, overall = candidates.book_features(unrated)
    assert overall == 1.0 and {r["book_liked_share"] for r in per_book.collect()} == {1.0}


def test_where_reading_is_recorded_a_liked_shelf_is_a_read_one(spark):
    """UCSD-like shelves, 5 of 6 read: book 0 (read 5 stars, read unrated, unread unrated, read 2 stars) has 2
    liked of 4 (the unread shelf is not yet liked, the 2 stars disliked), book 1 (read 4, read 5) 2 of 2: overall
    4/6 = 2/3, book 0 (2 + 20/3) / 14 = 13/21, book 1 (2 + 20/3) / 12 = 13/18."""
    rows = [
        (0, 0, True, 5),
        (1, 0, True, 0),
        (2, 0, False, 0),
        (3, 0, True, 2),
        (0, 1, True, 4),
        (1, 1, True, 5),
    ]
    train = spark.createDataFrame(rows, "user_idx int, book_idx int, is_read boolean, rating int").withColumn(
        "date_added", F.lit(None).cast("timestamp")
    )
    assert candidates.reads_recorded(train)
    per_book, overall = candidates.book_features(train)
    got = {r["book_idx"]: r["book_liked_share"] for r in per_book.collect()}
    assert overall == pytest.approx(2 / 3)
    assert got == pytest.approx({0: 13 / 21, 1: 13 / 18}, rel=1e-6)


def test_reading_is_recorded_only_when_both_read_and_unread_shelves_are_common(spark):
    """At least 5% read and 5% unread: 1 read of 20 is recorded, 1 of 21 is not; all read (goodbooks ratings) or
    none read (to_read) is not; no is_read column is not."""

    def shelves(n_read: int, n: int):
        return spark.createDataFrame([(i < n_read,) for i in range(n)], "is_read boolean")

    assert candidates.reads_recorded(shelves(1, 20)) and candidates.reads_recorded(shelves(19, 20))
    assert not candidates.reads_recorded(shelves(1, 21)) and not candidates.reads_recorded(shelves(20, 21))
    assert not candidates.reads_recorded(shelves(20, 20)) and not candidates.reads_recorded(shelves(0, 20))
    assert not candidates.reads_recorded(spark.createDataFrame([(1,)], "rating int"))


def test_without_metadata_affinities_are_zero(spark):
    feats = candidates.features(
        candidates.candidate_union(lists(spark), N), train_frame(spark), None, ("als", "popularity")
    )
    assert {(r["author_share"], r["genre_share"], r["series_read"]) for r in feats.collect()} == {
        (0.0, 0.0, 0.0)
    }


def test_labels_mark_exactly_the_truth_and_drop_users_without_a_positive(spark):
    feats = candidates.features(
        candidates.candidate_union(lists(spark), N), train_frame(spark), None, ("als", "popularity")
    )
    truth = spark.createDataFrame([(0, 2), (0, 7), (1, 9)], "user_idx int, book_idx int")
    got = {(r["user_idx"], r["book_idx"]): r["label"] for r in ranker.labelled(feats, truth).collect()}
    assert got == {(0, 3): 0.0, (0, 2): 1.0}  # user 1 has no relevant candidate: no ranking signal


def synthetic_rows(n_users: int, n_items: int, seed: int = 0):
    """Per user, 3 relevant items whose ``signal`` is in [0.8, 1) and the rest in [0, 0.6); ``noise`` is noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        best = set(rng.choice(n_items, 3, replace=False).tolist())
        signal = [0.8 + 0.2 * rng.random() if b in best else 0.6 * rng.random() for b in range(n_items)]
        for b in range(n_items):
            rows.append((u, b, float(signal[b]), float(rng.random()), 1.0 if b in best else 0.0))
    return rows


@pytest.mark.slow
def test_the_ranker_learns_the_order_a_brute_force_oracle_knows(spark):
    pytest.importorskip("xgboost")
    rows = synthetic_rows(60, 20)
    df = spark.createDataFrame(rows, "user_idx int, book_idx int, signal float, noise float, label double")
    model = ranker.fit(df, ["signal", "noise"], ranker.RankerParams(n_estimators=20, max_depth=3))
    got = {}
    for r in ranker.rank(model, df.drop("label"), 3).collect():
        got.setdefault(r["user_idx"], set()).add(r["book_idx"])
    want = {}
    for u, b, _signal, _noise, label in rows:
        if label:
            want.setdefault(u, set()).add(b)
    assert got == want  # the three best by the signal, for every user
    imp = ranker.importances(model, ["signal", "noise"])
    assert max(imp, key=imp.get) == "signal"


def test_too_few_positives_is_refused_before_training(spark):
    pytest.importorskip("xgboost")
    rows = [(u, b, float(b), 1.0 if b == 0 and u < 3 else 0.0) for u in range(10) for b in range(5)]
    df = spark.createDataFrame(rows, "user_idx int, book_idx int, x float, label double")
    with pytest.raises(ranker.TooFewPositives, match="3 relevant candidates"):
        ranker.fit(df, ["x"], ranker.RankerParams(min_positives=50))


def test_without_xgboost_the_message_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "xgboost", None)
    monkeypatch.setitem(sys.modules, "xgboost.spark", None)
    with pytest.raises(ranker.RankerUnavailable, match=r"pip install 'recspark\[ranker\]'.*--ranker off"):
        ranker.require_xgboost()
    from recspark.cli import exit_code

    assert exit_code(ranker.RankerUnavailable("x")) == 2


def blend_candidates(spark):
    """Two users' candidates, top-2 per source (rank 3 and NaN: not proposed). By hand, user 0: ALS top 2.0,
    fill 1.0; item-CF top 4.0, fill 2.0. User 1: ALS top 3.0, fill 1.5; item-CF proposed one book only, so
    fill 0 and top 0.5."""
    nan = float("nan")
    rows = [
        (0, 10, 2.0, 1, nan, 3),
        (0, 11, 1.0, 2, 4.0, 1),
        (0, 12, nan, 3, 2.0, 2),
        (1, 10, 3.0, 1, nan, 3),
        (1, 13, 1.5, 2, 0.5, 1),
    ]
    schema = "user_idx int, book_idx int, als_score float, als_rank int, itemcf_score float, itemcf_rank int"
    return spark.createDataFrame(rows, schema)


def test_blend_scores_by_hand(spark):
    from chispa import assert_approx_df_equality

    from recspark import blend

    cands = blend_candidates(spark)
    # scaled and filled: user 0 -> 10: (1.0, 0.5), 11: (0.5, 1.0), 12: (0.5, 0.5); user 1 -> 10: (1.0, 0.0),
    # 13: (0.5, 1.0)
    want = spark.createDataFrame(
        [
            (0, 10, 1.0, 0.5, 0.0),
            (0, 11, 0.5, 1.0, 0.0),
            (0, 12, 0.5, 0.5, 0.0),
            (1, 10, 1.0, 0.0, 0.0),
            (1, 13, 0.5, 1.0, 0.0),
        ],
        "user_idx int, book_idx int, als double, itemcf double, book_liked_share double",
    )
    got = blend.normalised(cands, N).orderBy("user_idx", "book_idx")
    assert_approx_df_equality(got, want, 1e-9, ignore_nullable=True)
    # w 0.5: user 0 -> 10 and 11 tie at 0.75 (the smaller book first), 12 0.5; user 1 -> 13 0.75, 10 0.5
    # w 0.8: user 0 -> 11 0.9, 10 0.6; user 1 -> 13 0.9, 10 0.2
    schema = "blend_setting string, user_idx int, rank int, book_idx int, score float"
    want = spark.createDataFrame(
        [
            ("0.5", 0, 1, 10, 0.75),
            ("0.5", 0, 2, 11, 0.75),
            ("0.5", 1, 1, 13, 0.75),
            ("0.5", 1, 2, 10, 0.5),
            ("0.8", 0, 1, 11, 0.9),
            ("0.8", 0, 2, 10, 0.6),
            ("0.8", 1, 1, 13, 0.9),
            ("0.8", 1, 2, 10, 0.2),
        ],
        schema,
    )
    settings = (blend.Blend(0.5), blend.Blend(0.8))
    got = blend.ranked_by_setting(cands, settings, 2, N).orderBy("blend_setting", "user_idx", "rank")
    assert_approx_df_equality(got, want, 1e-6, ignore_nullable=True)
    one = blend.ranked(cands, blend.Blend(0.8), 2, N).orderBy("user_idx", "rank")
    assert [tuple(r) for r in one.select("user_idx", "rank", "book_idx").collect()] == [
        (0, 1, 11),
        (0, 2, 10),
        (1, 1, 13),
        (1, 2, 10),
    ]
    # with liked shares 10: 0.6, 11: 0.9, 12: 0.9, 13: 0.5, w 0.5 and γ 1, user 0 -> 11 0.75 + 0.9 = 1.65,
    # 12 0.5 + 0.9 = 1.4, 10 0.75 + 0.6 = 1.35; user 1 -> 13 0.75 + 0.5 = 1.25, 10 0.5 + 0.6 = 1.1
    liked = spark.createDataFrame(
        [(10, 0.6), (11, 0.9), (12, 0.9), (13, 0.5)], "book_idx int, book_liked_share float"
    )
    with_liked = cands.join(liked, on="book_idx", how="left")
    got = blend.ranked(with_liked, blend.Blend(0.5, 1.0), 2, N).orderBy("user_idx", "rank")
    assert [(r["user_idx"], r["book_idx"], round(r["score"], 5)) for r in got.collect()] == [
        (0, 11, 1.65),
        (0, 12, 1.4),
        (1, 13, 1.25),
        (1, 10, 1.1),
    ]
    assert blend.Blend(0.5).label == "0.5" and blend.Blend(0.35, 0.3).label == "0.35+0.3"


def test_the_consumers_blend_orders_a_reader_as_the_batch_blend_does(spark):
    """``foldin.blend_scores`` (numpy, the consumer's fold-in) against the Spark blend on the same sources, top 3
    each. Catalogue books 0-6, book 0 shelved. By hand: ALS proposes 1, 2, 3 (0.8, 0.6, 0.4; three of three, so
    the others get 0.4), scaled by 0.8 -> 1, 0.75, 0.5 and 0.5 elsewhere; item-CF proposes 2, 4 (2.0, 1.0; two of
    three, so the others get 0), scaled by 2 -> 1, 0.5; content adds 6, 5 and popularity nothing new. Liked shares
    1: 0.5, 2: 0.5, 3: 0.9, 4: 0.6, 5: 0.5, 6: 0.5. With w 0.5 and γ 1: 2 -> 0.375 + 0.5 + 0.5 = 1.375,
    3 -> 0.25 + 0.9 = 1.15, 4 -> 0.25 + 0.25 + 0.6 = 1.1, 1 -> 0.5 + 0.5 = 1.0, 5 and 6 -> 0.25 + 0.5 = 0.75 (the
    smaller book first). With γ 0: 2 (0.875), then 1 and 4 tie at 0.5, then 3, 5, 6 at 0.25."""
    import numpy as np

    from recspark import blend, foldin

    inf = np.inf
    sources = {
        "als": np.array([9.0, 0.8, 0.6, 0.4, 0.2, -inf, 0.1]),  # book 5 has no factor
        "itemcf": np.array([-inf, -inf, 2.0, -inf, 1.0, -inf, -inf]),
        "content": np.array([0.95, 0.7, 0.1, 0.0, 0.0, 0.8, 0.9]),
        "popularity": np.array([20.0, 9.0, 1.0, 10.0, 8.0, 1.0, 1.0]),
    }
    liked = np.array([0.5, 0.5, 0.5, 0.9, 0.6, 0.5, 0.5])
    exclude = np.array([0])
    lists = {  # each source's top 3 without book 0, as (rank, book, score)
        name: [(r + 1, int(b), float(sources[name][b])) for r, b in enumerate(foldin.top_n(s, exclude, 3))]
        for name, s in sources.items()
    }
    assert [b for _, b, _ in lists["als"]] == [1, 2, 3] and [b for _, b, _ in lists["itemcf"]] == [2, 4]
    frames = {
        name: spark.createDataFrame(
            [(0, *row) for row in rows], "user_idx int, rank int, book_idx int, score double"
        )
        for name, rows in lists.items()
    }
    shares = spark.createDataFrame(
        [(b, float(x)) for b, x in enumerate(liked)], "book_idx int, book_liked_share float"
    )
    cands = candidates.candidate_union(frames, 3).join(shares, on="book_idx", how="left")
    for setting, by_hand in (
        (blend.Blend(0.5, 1.0), [2, 3, 4, 1, 5, 6]),
        (blend.Blend(0.5), [2, 1, 4, 3, 5, 6]),
    ):
        spark_order = [r["book_idx"] for r in blend.ranked(cands, setting, 6, 3).orderBy("rank").collect()]
        scores = foldin.blend_scores(sources, setting.weight, setting.prior, liked, exclude, 3)
        assert np.isneginf(scores[0])  # shelved: never a candidate
        assert [int(b) for b in foldin.top_n(scores, exclude, 6)] == spark_order == by_hand, setting
    scored = foldin.blend_scores(sources, 0.5, 1.0, liked, exclude, 3)
    assert np.allclose(scored[[2, 3, 4, 1, 5, 6]], [1.375, 1.15, 1.1, 1.0, 0.75, 0.75], atol=1e-6)
    # a reader with no ALS vector (no shelved book has a factor): ALS counts 0 for every candidate, as in Spark
    no_als = foldin.blend_scores({**sources, "als": None}, 0.5, 0.0, liked, exclude, 3)
    assert [int(b) for b in foldin.top_n(no_als, exclude, 2)] == [2, 4]


def crossfit_frames(spark, n_users: int, relevant, extra: bool = False):
    """Three candidates per user, ranked by hand. Scaled: book 10 (ALS 1.0, item-CF 0.1), 11 (0.1, 1.0), 12 (0.8,
    0.8); blended with item-CF's share w: 10 scores 1 - 0.9w, 11 0.1 + 0.9w, 12 0.8, so the top book is 10 at
    w 0.2, 12 at 0.35 / 0.5 / 0.65 and 11 at 0.8. ``relevant(user)`` is each user's one held-out book. With
    ``extra`` a fourth, book 13 (0.5, 0.5), and liked shares: 1 for book 13, 0 for the others."""
    books = [(10, 1.0, 1, 0.1, 3), (11, 0.1, 3, 1.0, 1), (12, 0.8, 2, 0.8, 2)]
    if extra:
        books.append((13, 0.5, 4, 0.5, 4))
    rows = [(u, *book, 1.0 if book[0] == 13 else 0.0) for u in range(n_users) for book in books]
    schema = (
        "user_idx int, book_idx int, als_score float, als_rank int, itemcf_score float, itemcf_rank int, "
        "book_liked_share float"
    )
    feats = spark.createDataFrame(rows, schema)
    if not extra:
        feats = feats.drop("book_liked_share")
    lists = {
        s: feats.select(
            "user_idx", F.col(f"{s}_rank").alias("rank"), "book_idx", F.col(f"{s}_score").alias("score")
        )
        for s in ("als", "itemcf")
    }
    truth = spark.createDataFrame([(u, relevant(u)) for u in range(n_users)], "user_idx int, book_idx int")
    return feats, lists, truth


def test_the_blend_is_judged_cross_fitted_each_half_with_the_other_halfs_weight(spark):
    """Half 1 of the users (the hash of blend_check) wants book 11, only w 0.8 ranks it first; half 2 wants book
    10, only w 0.2. Each half is ranked with the weight best on the other, so every user misses: cross-fitted
    NDCG@1 0, below both single models, not published. A weight chosen and judged on the same users would have
    scored 1. When every user wants book 12 (which neither single model ranks first), both halves choose w 0.5
    (0.35 / 0.5 / 0.65 tie, the nearest an even mix wins) and the blend scores 1 against 0: published."""
    from recspark import twostage

    params = ranker.RankerParams(n_candidates=3)
    users = spark.createDataFrame([(u,) for u in range(30)], "user_idx int")
    first = {r["user_idx"] for r in ranker.user_share(users, 0.5, params.seed + 2).collect()}
    assert 5 <= len(first) <= 25  # both halves have users
    feats, lists, truth = crossfit_frames(spark, 30, lambda u: 11 if u in first else 10)
    b, _ = twostage.blend_check(feats, lists, users, truth, truth, 1, params)
    share = len(first) / 30
    assert b["weight_best_on_half"] == {"1": "0.8", "2": "0.2"}
    assert b["ndcg"] == 0.0 and b["ndcg_on_check_users"] == 0.0 and not b["wins"]
    assert b["single"] == pytest.approx({"als": 1 - share, "itemcf": share}, abs=1e-5)
    by_weight = {"0.2": 1 - share, "0.35": 0.0, "0.5": 0.0, "0.65": 0.0, "0.8": share}
    assert b["ndcg_by_weight"] == pytest.approx(by_weight, abs=1e-5)
    assert b["weight"] == (0.8 if share > 0.5 else 0.2)

    feats, lists, truth = crossfit_frames(spark, 30, lambda u: 12)
    b, _ = twostage.blend_check(feats, lists, users, truth, truth, 1, params)
    assert b["weight_best_on_half"] == {"1": "0.5", "2": "0.5"} and (b["weight"], b["prior"]) == (0.5, 0.0)
    assert (b["ndcg"], b["single"], b["wins"]) == (1.0, {"als": 0.0, "itemcf": 0.0}, True)
    assert b["z"] is None  # ahead by the same for every user: no spread, a certain difference


def test_the_blend_keeps_an_even_mix_and_is_kept_unless_beaten_by_a_standard_error(spark):
    """In each half of the users (the hash of blend_check) one more user wants book 10 (only w 0.2 and ALS rank it
    first) than book 12 (w 0.35 / 0.5 / 0.65): w 0.2 is best on every half and on all, but by less than a standard
    error over the even mix, so w 0.5 is chosen everywhere. Cross-fitted, the blend then trails ALS by two users of
    30: z about -0.37 (by hand below), inside one standard error, so the blend is kept. Before these rules: w 0.2,
    and ALS kept."""
    from recspark import twostage

    params = ranker.RankerParams(n_candidates=3)
    users = spark.createDataFrame([(u,) for u in range(30)], "user_idx int")
    first = sorted(r["user_idx"] for r in ranker.user_share(users, 0.5, params.seed + 2).collect())
    second = sorted(set(range(30)) - set(first))
    wants_10 = {u for half in (first, second) for u in half[: len(half) // 2 + 1]}
    feats, lists, truth = crossfit_frames(spark, 30, lambda u: 10 if u in wants_10 else 12)
    b, _ = twostage.blend_check(feats, lists, users, truth, truth, 1, params)

    def z(ahead: int, behind: int) -> float:
        """+1 for ``ahead`` users, -1 for ``behind``: the mean over its standard error."""
        n = ahead + behind
        mean = (ahead - behind) / n
        return mean / math.sqrt(n / (n - 1) * (1 - mean**2) / n)

    n10 = len(wants_10)
    assert b["ndcg_by_weight"]["0.2"] == pytest.approx(n10 / 30, abs=1e-5) and n10 > 15
    assert b["even_mix_z"]["all"] == {"0.2": pytest.approx(z(n10, 30 - n10), abs=0.01)}
    assert 0 < b["even_mix_z"]["all"]["0.2"] < 1 and set(b["even_mix_z"]["1"]) == {"0.2"}
    assert b["weight_best_on_half"] == {"1": "0.5", "2": "0.5"} and b["weight"] == 0.5
    assert b["best_single"] == "als" and b["ndcg"] == pytest.approx((30 - n10) / 30, abs=1e-5)
    assert b["z"] == pytest.approx(-z(n10, 30 - n10), abs=0.01) and b["wins"]


def test_the_learning_curves_reach_by_hand():
    """Steps of the thinning (from validation's rows to the thinner level's) between validation and the published
    rows, on a log scale: 64 of 100 rows at validation and 51.2 thinner is two steps of 80%; capped; none without
    a step or without data beyond validation."""
    from recspark import twostage

    assert twostage.reach_of(100, 64, 51.2) == pytest.approx(2.0)
    assert twostage.reach_of(100, 80, 64) == pytest.approx(1.0)
    assert twostage.reach_of(1_000, 64, 51.2) == twostage.MAX_REACH == 2.0
    assert twostage.reach_of(64, 64, 50) == 0.0 and twostage.reach_of(100, 64, 64) == 0.0


def test_the_weight_is_chosen_where_the_scores_are_heading():
    """Six users. On validation w 0.2 hits users 0-2 and w 0.5 users 3-5 (a tie: the even mix); on the thinner
    level w 0.2 hit nobody and w 0.5 the same users: w 0.2 is gaining. Extrapolated two steps on: w 0.2 scores
    3, 3, 3, 0, 0, 0 and w 0.5 0, 0, 0, 1, 1, 1; the differences 3 x 3 and 3 x -1 have mean 1 and standard
    deviation sqrt(4.8), z = 1 / (sqrt(4.8) / sqrt(6)) = 1.118: w 0.2. One step on: 2 x 3 and -1 x 3, mean 0.5,
    sd sqrt(2.7), z 0.745, inside a standard error but over half of one: one step of the grid towards w 0.2, which
    here is w 0.2 itself. Half a step on: 1.5 x 3 and -1 x 3, mean 0.25, sd sqrt(1.875), z 0.447: the even mix."""
    import numpy as np

    from recspark import blend, twostage

    w2, w5 = blend.Blend(0.2), blend.Blend(0.5)
    valid = {w2: np.array([1, 1, 1, 0, 0, 0.0]), w5: np.array([0, 0, 0, 1, 1, 1.0])}
    thin = {w2: np.zeros(6), w5: np.array([0, 0, 0, 1, 1, 1.0])}
    chosen, record = twostage.extrapolated_choice(valid, thin, 2.0)
    assert chosen == w2
    assert record == {
        "reach": 2.0,
        "thin": {"0.2": 0.0, "0.5": 0.5},
        "extrapolated": {"0.2": 1.5, "0.5": 0.5},
        "best_z_vs_even_mix": pytest.approx(1 / (math.sqrt(4.8) / math.sqrt(6)), abs=0.005),
        "weight": 0.2,
        "stepped": False,
    }
    chosen, record = twostage.extrapolated_choice(valid, thin, 1.0)
    assert chosen == w2 and record["extrapolated"] == {"0.2": 1.0, "0.5": 0.5} and record["stepped"]
    assert record["best_z_vs_even_mix"] == pytest.approx(0.5 / (math.sqrt(2.7) / math.sqrt(6)), abs=0.005)
    chosen, record = twostage.extrapolated_choice(valid, thin, 0.5)
    assert chosen == w5 and not record["stepped"]
    assert record["best_z_vs_even_mix"] == pytest.approx(0.25 / (math.sqrt(1.875) / math.sqrt(6)), abs=0.005)


def test_a_lead_inside_a_standard_error_moves_the_weight_one_step():
    """The grid 0.2 / 0.35 / 0.5 / 0.65 / 0.8 with no change from the thinner level (the extrapolation is validation
    itself). Six users: w 0.2 scores 2, 2, 2, 0, 0, 0 (mean 1), w 0.35 1, 1, 1, 1, 1, 0 (5/6), the even mix 0, 0, 0,
    1, 1, 1 (1/2), w 0.65 and 0.8 nothing. The best, w 0.2, leads the even mix by 0.5 with sd sqrt(2.7): z 0.745,
    one half standard error and not two: one step, w 0.35. Were w 0.35 to score below the even mix, the even mix
    would stay."""
    import numpy as np

    from recspark import blend, twostage

    got = {
        0.2: [2, 2, 2, 0, 0, 0],
        0.35: [1, 1, 1, 1, 1, 0],
        0.5: [0, 0, 0, 1, 1, 1],
        0.65: [0] * 6,
        0.8: [0] * 6,
    }
    valid = {blend.Blend(w): np.array(v, dtype=float) for w, v in got.items()}
    chosen, record = twostage.extrapolated_choice(valid, valid, 2.0)
    assert chosen == blend.Blend(0.35) and record["weight"] == 0.35 and record["stepped"]
    assert record["best_z_vs_even_mix"] == pytest.approx(0.5 / (math.sqrt(2.7) / math.sqrt(6)), abs=0.005)
    valid[blend.Blend(0.35)] = np.zeros(6)
    chosen, record = twostage.extrapolated_choice(valid, valid, 2.0)
    assert chosen == blend.Blend(0.5) and not record["stepped"]


def test_the_blend_check_publishes_the_weight_of_its_learning_curve(spark):
    """Validation as in the frames of ``crossfit_frames``: 14 of 30 users want book 10 (only w 0.2 ranks it first),
    16 book 12 (w 0.35 / 0.5 / 0.65): the even mix is kept on validation. On the thinner level (scaled scores: book
    10 ALS 0.1, item-CF 0.125; 11 ALS 1, item-CF 0.0625; 12 ALS 0.7, item-CF 1) w 0.2 ranks book 11 first (0.8125
    against 0.76) and hits nobody, the other weights rank 12 first. Extrapolated at reach 2: w 0.2 scores 3 for
    the users of book 10 (mean 1.4), w 0.35-0.65 1 for those of book 12 (mean 16/30), w 0.8 -2 for them: w 0.2,
    3 against -1 per user, z over 1. The cross-fitted check, which decides whether the blend is kept, is as
    without the curve."""
    from recspark import twostage

    params = ranker.RankerParams(n_candidates=3)
    users = spark.createDataFrame([(u,) for u in range(30)], "user_idx int")
    feats, lists, truth = crossfit_frames(spark, 30, lambda u: 10 if u < 14 else 12)
    thin = spark.createDataFrame(
        [
            (u, *book)
            for u in range(30)
            for book in [(10, 0.1, 3, 0.1, 2), (11, 1.0, 1, 0.05, 3), (12, 0.7, 2, 0.8, 1)]
        ],
        "user_idx int, book_idx int, als_score float, als_rank int, itemcf_score float, itemcf_rank int",
    )
    plain, _ = twostage.blend_check(feats, lists, users, truth, truth, 1, params)
    assert plain["weight"] == 0.5 and plain["learning_curve"] is None
    b, _ = twostage.blend_check(feats, lists, users, truth, truth, 1, params, thin, 2.0)
    curve = b["learning_curve"]
    assert curve["thin"] == pytest.approx(
        {"0.2": 0.0, "0.35": 16 / 30, "0.5": 16 / 30, "0.65": 16 / 30, "0.8": 16 / 30}, abs=1e-5
    )
    assert curve["extrapolated"] == pytest.approx(
        {"0.2": 1.4, "0.35": 16 / 30, "0.5": 16 / 30, "0.65": 16 / 30, "0.8": -32 / 30}, abs=1e-5
    )
    mean = (3 * 14 - 16) / 30
    sd = math.sqrt((14 * (3 - mean) ** 2 + 16 * (-1 - mean) ** 2) / 29)
    assert curve["best_z_vs_even_mix"] == pytest.approx(mean / (sd / math.sqrt(30)), abs=0.01)
    assert curve["best_z_vs_even_mix"] > 1
    assert curve["weight_on_validation"] == 0.5 and curve["reach"] == 2.0
    assert b["weight"] == 0.2 and b["prior"] == 0.0
    assert {key: b[key] for key in ("ndcg", "z", "wins", "weight_best_on_half")} == {
        key: plain[key] for key in ("ndcg", "z", "wins", "weight_best_on_half")
    }


def test_the_blend_searches_the_liked_share_only_when_books_differ_in_it(spark):
    """Book 13 (ALS 0.5, item-CF 0.5 scaled; liked share 1, the others 0) scores at most 0.5 + γ and the others at
    most 0.82 under any weight, so only γ 1 or 3 ranks it first: when every user wants it, both halves choose
    w 0.5 with γ 1 (ties: nearer an even mix, then the smaller γ) and the blend scores 1 against 0. With equal
    liked shares γ is not searched (the grid is the five weights)."""
    from recspark import twostage

    params = ranker.RankerParams(n_candidates=4)
    users = spark.createDataFrame([(u,) for u in range(30)], "user_idx int")
    feats, lists, truth = crossfit_frames(spark, 30, lambda u: 13, extra=True)
    b, _ = twostage.blend_check(feats, lists, users, truth, truth, 1, params)
    assert len(b["ndcg_by_weight"]) == 20 and b["ndcg_by_weight"]["0.5+1"] == 1.0
    assert b["weight_best_on_half"] == {"1": "0.5+1", "2": "0.5+1"} and (b["weight"], b["prior"]) == (
        0.5,
        1.0,
    )
    assert (b["ndcg"], b["wins"]) == (1.0, True)
    same = feats.withColumn("book_liked_share", F.lit(0.7))
    b, _ = twostage.blend_check(same, lists, users, truth, truth, 1, params)
    assert set(b["ndcg_by_weight"]) == {"0.2", "0.35", "0.5", "0.65", "0.8"} and b["prior"] == 0.0


def test_the_blend_keeps_the_default_liked_share_weight_unless_another_is_a_standard_error_ahead(spark):
    """Scaled and blended with w and γ, book 13 scores 0.5 + γ (liked share 1) and book 12 0.8 (liked share 0;
    crossfit_frames): at γ 0.3 they tie at 0.8 and 12 wins (the smaller index), so only γ 1 or 3 rank 13 first,
    and only w 0.35 / 0.5 / 0.65 with γ 0 or 0.3 rank 12 first. In each half one more user wants 13 than 12: γ 1
    is best everywhere, but by less than a standard error over the best with γ 0.3, so w 0.5 with γ 0.3 is chosen
    everywhere (before this rule: γ 1, cross-fitted NDCG@1 the share that wants 13). When every user wants 13, γ 1
    is ahead for every user alike and is kept."""
    from recspark import blend, evaluate, twostage

    assert blend.DEFAULT_PRIOR == 0.3
    params = ranker.RankerParams(n_candidates=4)
    users = spark.createDataFrame([(u,) for u in range(30)], "user_idx int")
    first = sorted(r["user_idx"] for r in ranker.user_share(users, 0.5, params.seed + 2).collect())
    second = sorted(set(range(30)) - set(first))
    wants_13 = {u for half in (first, second) for u in half[: len(half) // 2 + 1]}
    feats, lists, truth = crossfit_frames(spark, 30, lambda u: 13 if u in wants_13 else 12, extra=True)
    b, _ = twostage.blend_check(feats, lists, users, truth, truth, 1, params)
    n13 = len(wants_13)
    assert n13 > 15 and b["ndcg_by_weight"]["0.5+1"] == pytest.approx(n13 / 30, abs=1e-5)
    assert b["ndcg_by_weight"]["0.5+0.3"] == pytest.approx((30 - n13) / 30, abs=1e-5)
    n = 30
    mean = (n13 - (n - n13)) / n  # +1 for a user who wants 13, -1 for one who wants 12
    z_all = mean / math.sqrt(n / (n - 1) * (1 - mean**2) / n)
    assert b["prior_z"]["all"] == {"0.5+1": pytest.approx(z_all, abs=0.01)} and 0 < z_all < 1
    assert set(b["prior_z"]["1"]) == set(b["prior_z"]["2"]) == {"0.5+1"}
    assert b["weight_best_on_half"] == {"1": "0.5+0.3", "2": "0.5+0.3"}
    assert (b["weight"], b["prior"]) == (0.5, 0.3)
    assert b["ndcg"] == pytest.approx((30 - n13) / 30, abs=1e-5) and b["wins"]  # both single models score 0
    line = evaluate.blend_line({"blend": b, "wins": False})  # the report says which rule kept γ, with its z
    assert "w = 0.5, γ = 0.3" in line and "γ 0.3 unless another γ is a standard error ahead" in line
    assert json.dumps(b["prior_z"]) in line and line.endswith(": published.")

    feats, lists, truth = crossfit_frames(spark, 30, lambda u: 13, extra=True)
    b, _ = twostage.blend_check(feats, lists, users, truth, truth, 1, params)
    assert b["prior_z"]["all"] == {"0.5+1": None}  # ahead by the same for every user: a certain difference
    assert (b["weight"], b["prior"], b["ndcg"]) == (0.5, 1.0, 1.0)


def test_the_blend_before_the_learned_ranker_unless_the_ranker_leads_it_by_two_standard_errors(spark):
    """Both beat the single models: the blend is published unless the ranker leads it on the check users by
    twostage.MIN_Z (beats_blend, recorded with its z_vs_blend); one alone is published when it won; a stored record
    says what it published. The blend's per-user scores on the check users are the ones its ndcg_on_check_users
    averages, in ascending user order."""
    from recspark import twostage

    both = {"wins": True, "ranker": 0.08, "blend": {"wins": True, "ndcg_on_check_users": 0.07}}
    assert twostage.published_kind({**both, "z_vs_blend": 1.5, "beats_blend": False}) == "blend"
    assert twostage.published_kind({**both, "z_vs_blend": 2.0, "beats_blend": True}) == "ranker"
    assert twostage.published_kind({**both, "blend": {"wins": False}}) == "ranker"
    assert twostage.published_kind({**both, "wins": False}) == "blend"
    assert twostage.published_kind({"wins": False, "blend": None}) is None
    assert twostage.published_in({**both, "publish": "ranker"}) == "ranker"  # a record from before the rule
    assert twostage.published_in(both) == "blend"
    assert twostage.vs_blend({"z_vs_blend": 1.5}) == " (paired z 1.5)" and twostage.vs_blend(both) == ""

    # odd users want book 12 (first at the even mix), even users book 10 (first at w 0.2): an even mix on both
    # halves (w 0.2 is not a standard error ahead), so the cross-fitted lists hit for odd users only
    params = ranker.RankerParams(n_candidates=3)
    users = spark.createDataFrame([(u,) for u in range(30)], "user_idx int")
    feats, lists, truth = crossfit_frames(spark, 30, lambda u: 12 if u % 2 else 10)
    check_truth = truth.where("user_idx % 3 = 0")  # users 0, 3, ..., 27
    b, on_check = twostage.blend_check(feats, lists, users, truth, check_truth, 1, params)
    assert b["weight_best_on_half"] == {"1": "0.5", "2": "0.5"}
    assert on_check.tolist() == [float(u % 2) for u in range(0, 30, 3)]
    assert float(on_check.mean()) == pytest.approx(b["ndcg_on_check_users"], abs=1e-5)


def test_the_item_cf_source_carries_the_popularity_prior_the_search_chose(spark):
    """User 0 shelved book 0, whose neighbours are book 1 (0.9) and book 2 (0.4); books 2 has 3 readers (users 1-3),
    book 1 none. Without a prior item-CF proposes 1 then 2; with β 1, by hand 1: 0.9 / 0.9 + 0 = 1.0 and 2:
    0.4 / 0.9 + 1 · 3 / 3 = 1.44, so 2 comes first: the two-stage source is item-CF as it was tuned, also when the
    run builds its sources from a configuration the search's record set (``pipeline.sources_of``)."""
    from recspark import twostage
    from recspark.config import RunConfig, with_tuned
    from recspark.content import ContentParams
    from recspark.itemcf import ItemCfParams
    from recspark.pipeline import sources_of

    neighbours = spark.createDataFrame(
        [(0, 1, 1, 0.9), (0, 2, 2, 0.4)], "book_idx int, rank int, neighbour_idx int, score float"
    )
    train = spark.createDataFrame(
        [(0, 0, 0, None), (1, 2, 0, None), (2, 2, 0, None), (3, 2, 0, None)],
        "user_idx int, book_idx int, rating int, date_added timestamp",
    )
    users = spark.createDataFrame([(0,)], "user_idx int")

    def itemcf_books(prior: float) -> list[int]:
        sources = twostage.Sources(
            None, None, neighbours, None, ContentParams(), itemcf_params=ItemCfParams(popularity_weight=prior)
        )
        found = twostage.source_lists(spark, train, sources, users, 2)["itemcf"]
        return [r["book_idx"] for r in found.orderBy("rank").collect()]

    assert itemcf_books(0.0) == [1, 2]
    assert itemcf_books(1.0) == [2, 1]
    tuned = with_tuned(RunConfig(), {"itemcf": {**vars(ItemCfParams()), "popularity_weight": 1.0}})
    from_cfg = sources_of(tuned, None, None, neighbours, None, None)
    found = twostage.source_lists(spark, train, from_cfg, users, 2)["itemcf"]
    assert [r["book_idx"] for r in found.orderBy("rank").collect()] == [2, 1]


def test_the_candidates_leave_item_cfs_liked_prior_to_the_blend_but_the_singles_keep_it(spark):
    """User 0 shelved book 0, whose neighbours are book 1 (0.9) and book 2 (0.85). Book 1's one reader rated it 1
    star, book 2's 5 stars: liked shares (2 of 3 shelves liked, 10 pseudo-shelves at 2/3) 6.67 / 11 and 7.67 / 11.
    With item-CF's liked prior γ 1: 1 scores 0.9 / 0.9 + 0.606 = 1.606 and 2 0.85 / 0.9 + 0.697 = 1.641, so 2
    comes first in item-CF's own lists, what the two-stage lists are compared with; the candidates go without it
    (the blend adds the share with its own γ), 1 first."""
    from recspark import twostage
    from recspark.content import ContentParams
    from recspark.itemcf import ItemCfParams

    neighbours = spark.createDataFrame(
        [(0, 1, 1, 0.9), (0, 2, 2, 0.85)], "book_idx int, rank int, neighbour_idx int, score float"
    )
    train = spark.createDataFrame(
        [(0, 0, 0, None), (1, 1, 1, None), (2, 2, 5, None)],
        "user_idx int, book_idx int, rating int, date_added timestamp",
    )
    users = spark.createDataFrame([(0,)], "user_idx int")

    def books(df) -> list[int]:
        return [r["book_idx"] for r in df.orderBy("rank").collect()]

    liked = twostage.Sources(
        None, None, neighbours, None, ContentParams(), itemcf_params=ItemCfParams(liked_weight=1.0)
    )
    lists = twostage.source_lists(spark, train, liked, users, 2)
    assert books(lists["itemcf"]) == [1, 2]
    singles = twostage.as_published(train, liked, users, 2, lists)
    assert books(singles["itemcf"]) == [2, 1]
    singles["itemcf"].unpersist()
    plain = twostage.Sources(None, None, neighbours, None, ContentParams())
    assert twostage.as_published(train, plain, users, 2, lists) is lists


def test_validate_falls_back_without_a_ranker_and_publishes_the_blend_only_above_every_single_model(spark):
    """Hand-made factors and neighbours (no fitting): with too few positives no ranker is trained; the check
    scores every single source and the blend of ALS and item-CF (a weight of the grid chosen on the fit users,
    its NDCG on the check users), which is the published kind exactly when it beats every single model there."""
    pytest.importorskip("xgboost")
    from recspark import blend, twostage
    from recspark.content import ContentParams

    factors = "user_idx int, features array<float>"
    users = spark.createDataFrame([(u, [1.0, float(u % 3)]) for u in range(40)], factors)
    items = spark.createDataFrame(
        [(b, [float(b % 5), 1.0]) for b in range(12)], "book_idx int, features array<float>"
    )
    neighbours = spark.createDataFrame(
        [(b, r, (b + d) % 12, s) for b in range(12) for r, (d, s) in enumerate([(4, 0.9), (1, 0.4)], 1)],
        "book_idx int, rank int, neighbour_idx int, score float",
    )
    train = spark.createDataFrame(
        [(u, b, 0, None) for u in range(40) for b in (u % 12, (u + 1) % 12)],
        "user_idx int, book_idx int, rating int, date_added timestamp",
    )
    truth = spark.createDataFrame([(u, (u + 5) % 12) for u in range(40)], "user_idx int, book_idx int")
    sources = twostage.Sources(users, items, neighbours, None, ContentParams())
    params = ranker.RankerParams(n_candidates=5, min_positives=10**6)
    summary, model = twostage.validate(
        spark, train, truth, truth.select("user_idx").distinct(), None, sources, 3, params
    )
    b = summary["blend"]
    assert model is None and not summary["wins"] and summary["lift"] is None
    assert "too few to learn a ranking" in summary["skipped"]
    assert (
        set(summary["single"]) == {"als", "itemcf", "popularity"}
        and summary["best_single"] in summary["single"]
    )
    assert set(summary["recall"]) == {"als", "itemcf", "popularity", "union"}
    assert b["weight"] in blend.WEIGHTS and set(b["ndcg_by_weight"]) == {str(w) for w in blend.WEIGHTS}
    assert b["ndcg_by_weight"][str(b["weight"])] == max(b["ndcg_by_weight"].values())
    assert set(b["weight_best_on_half"]) == {"1", "2"} and set(b["weight_best_on_half"].values()) <= {
        str(w) for w in blend.WEIGHTS
    }
    assert 0.0 <= b["ndcg"] <= 1.0 and 0.0 <= b["ndcg_on_check_users"] <= 1.0
    # judged on all 40 validation users, not the ranker's check part: the single models scored there too
    assert set(b["single"]) == set(summary["single"])
    assert b["wins"] == (b["ndcg"] > max(b["single"].values()))
    assert summary["publish"] == ("blend" if b["wins"] else None)


def test_a_tuning_that_publishes_the_blend_configures_a_ranker_run_with_its_weight():
    """The tuning record decides what a "ranker" run publishes: the blend (its weight, no model file), the learned
    ranker (its saved path), or, for records from before the blend, the ranker when it won."""
    from recspark import blend
    from recspark.config import RunConfig, with_tuned
    from recspark.pipeline import load_ranker, model_run_id

    cfg = RunConfig()
    rk = {"path": "/lake/model/_ranker/x", "wins": False, "blend": {"weight": 0.35, "wins": True}}
    as_blend = with_tuned(cfg, {"model": "ranker", "ranker": {**rk, "publish": "blend"}})
    assert (as_blend.model, as_blend.blend, as_blend.ranker_model) == ("ranker", 0.35, None)
    assert load_ranker(as_blend) == blend.Blend(0.35)
    liked = with_tuned(
        cfg, {"model": "ranker", "ranker": {**rk, "blend": {**rk["blend"], "prior": 1.0}, "publish": "blend"}}
    )
    assert load_ranker(liked) == blend.Blend(0.35, 1.0)
    assert liked.published_label == "ranker: blend of ALS and item-CF, weight 0.35, liked share 1"
    assert as_blend.published_label == "ranker: blend of ALS and item-CF, weight 0.35"
    as_ranker = with_tuned(cfg, {"model": "ranker", "ranker": {**rk, "wins": True, "publish": "ranker"}})
    assert (as_ranker.model, as_ranker.blend, as_ranker.ranker_model) == ("ranker", None, rk["path"])
    assert (as_ranker.published_label, cfg.published_label) == ("ranker: learned", "als")
    old = with_tuned(cfg, {"model": "ranker", "ranker": {"path": rk["path"], "wins": True}})
    assert (old.model, old.blend, old.ranker_model) == ("ranker", None, rk["path"])
    # the weight is part of the trained model's key: another weight is another model
    other = with_tuned(
        cfg, {"model": "ranker", "ranker": {**rk, "publish": "blend", "blend": {"weight": 0.5}}}
    )
    assert model_run_id({}, as_blend) != model_run_id({}, other)


def test_ranked_lists_are_the_blends_order_computed_once_with_the_lineage_cut(spark):
    """``twostage.ranked_lists`` gives the blend's order over the candidates (compared with the same blend on the
    same features, computed without the cut), and a frame with no lineage: the publish step joins the lists
    several times, and with the plan over every source's candidates each join analysed it all again (on a
    work-level run: minutes, and at times a driver out of memory)."""
    from chispa import assert_df_equality

    from recspark import blend, twostage
    from recspark.content import ContentParams

    train = train_frame(spark)
    neighbours = spark.createDataFrame(
        [(0, 1, 1.0), (0, 2, 0.5), (1, 2, 0.25), (2, 3, 0.75)], "book_idx int, neighbour_idx int, score float"
    )
    ufs = spark.createDataFrame(
        [(0, [1.0, 0.0]), (1, [0.0, 1.0]), (2, [0.5, 0.5])], "user_idx int, features array<float>"
    )
    items = spark.createDataFrame(
        [(b, [0.1 * b, 1.0 - 0.2 * b]) for b in range(4)], "book_idx int, features array<float>"
    )
    sources = twostage.Sources(ufs, items, neighbours, None, ContentParams())
    users = train.select("user_idx").distinct()
    setting = blend.Blend(0.5, 1.0)
    out = twostage.ranked_lists(spark, train, sources, users, books_frame(spark), setting, 2, 3)
    feats, source_lists = twostage.candidate_features(spark, train, sources, users, 3, books_frame(spark))
    assert_df_equality(out, blend.ranked(feats, setting, 2, 3), ignore_row_order=True)
    for df in (feats, *source_lists.values()):  # cached by candidate_features
        df.unpersist()
    plan = out._jdf.queryExecution().analyzed()
    assert plan.nodeName() == "LogicalRDD" and plan.children().isEmpty(), plan.treeString()
    shelved = {(r["user_idx"], r["book_idx"]) for r in train.collect()}
    listed = {(r["user_idx"], r["book_idx"]) for r in out.collect()}
    assert listed and not listed & shelved
