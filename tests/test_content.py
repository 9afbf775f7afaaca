"""Content model on hand-made frames: tokens, TF-IDF and taste-vector arithmetic computed by hand."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from recspark import content
from recspark.content import ContentParams, NoMetadata

BOOKS = (
    "book_idx int, title string, description string, genres array<string>, shelves array<string>, "
    "series array<string>, author_ids array<long>, authors string"
)
SHELVES = "user_idx int, book_idx int, rating int, date_added timestamp"
DAY0 = dt.datetime(2020, 1, 1)


def books_df(spark, rows):
    return spark.createDataFrame(rows, BOOKS)


def test_tokens_per_field_with_counts(spark):
    rows = [(0, "The Dragon Rider", "A dragon story.", ["fantasy"], ["dragons"], ["s1"], [7], "Ann Author")]
    got = {(r["token"], r["tf"]) for r in content.book_tokens(books_df(spark, rows)).collect()}
    # "the" and "a" are stop words (and "a" too short); "dragon" appears in title and description: tf 2;
    # author ids win over the display names
    assert got == {
        ("w:dragon", 2.0),
        ("w:rider", 1.0),
        ("w:story", 1.0),
        ("g:fantasy", 1.0),
        ("s:dragons", 1.0),
        ("r:s1", 1.0),
        ("a:7", 1.0),
    }


def test_goodbooks_books_use_title_and_author_names(spark):
    rows = [(0, "Dune", None, None, None, None, None, "Frank Herbert, Brian Herbert")]
    got = {r["token"] for r in content.book_tokens(books_df(spark, rows)).collect()}
    assert got == {"w:dune", "a:frank herbert", "a:brian herbert"}


def test_tfidf_smoothed_idf_and_unit_length(spark):
    tokens = spark.createDataFrame(
        [(0, "x", 1.0), (0, "y", 2.0), (1, "x", 1.0)], "book_idx int, token string, tf double"
    )
    got = {(r["book_idx"], r["token"]): r["_w"] for r in content.tfidf(tokens, 2).collect()}
    # N=2: idf(x) = ln(3/3)+1 = 1 (in both books), idf(y) = ln(3/2)+1; book 0 = (1, 2*idf_y) normalised
    idf_y = math.log(3 / 2) + 1
    norm = math.sqrt(1 + (2 * idf_y) ** 2)
    assert got[(0, "x")] == pytest.approx(1 / norm) and got[(0, "y")] == pytest.approx(2 * idf_y / norm)
    assert got[(1, "x")] == pytest.approx(1.0)


def test_projection_keeps_cosines_and_is_seeded(spark):
    rows = [
        (0, "dragon wizard castle", None, ["fantasy"], None, None, [1], None),
        (1, "dragon wizard tower", None, ["fantasy"], None, None, [1], None),
        (2, "murder detective police", None, ["mystery"], None, None, [2], None),
    ]
    vec = {
        r["book_idx"]: np.array(r["features"]) for r in content.book_vectors(books_df(spark, rows)).collect()
    }
    assert all(len(v) == content.DIM and abs(np.linalg.norm(v) - 1) < 1e-5 for v in vec.values())
    # books 0 and 1 share 3 of 4 tokens, book 2 shares none: the projection keeps that ordering
    assert vec[0] @ vec[1] > 0.5 > abs(vec[0] @ vec[2])
    assert np.array_equal(content.projection(42), content.projection(42))


def test_shelf_weights_rating_and_decay(spark):
    rows = [
        (0, 0, 5, DAY0 + dt.timedelta(days=20)),  # newest: rating weight (5-2.5)/2.5 = 1
        (0, 1, 1, DAY0 + dt.timedelta(days=20)),  # 1 star: (1-2.5)/2.5 = -0.6
        (0, 2, 0, DAY0 + dt.timedelta(days=10)),  # unrated: 1, one half-life old: 0.5
        (0, 3, 4, DAY0),  # 4 stars 0.6, two half-lives: 0.6/4 = 0.15
        (0, 4, 0, None),  # undated: no decay
    ]
    df = spark.createDataFrame(rows, SHELVES)
    got = {r["book_idx"]: r["_w"] for r in content.shelf_weights(df, 10.0).collect()}
    assert got == pytest.approx({0: 1.0, 1: -0.6, 2: 0.5, 3: 0.15, 4: 1.0})


def test_taste_vector_is_the_normalised_weighted_sum(spark):
    vectors = spark.createDataFrame([(0, [1.0, 0.0]), (1, [0.0, 1.0])], "book_idx int, features array<float>")
    rows = [(7, 0, 0, DAY0 + dt.timedelta(days=10)), (7, 1, 0, DAY0)]
    df = spark.createDataFrame(rows, SHELVES)
    (row,) = content.taste_vectors(df, vectors, 10.0).collect()
    # book 0 weighs 1 (newest), book 1 one half-life older weighs 0.5: (1, 0.5) / sqrt(1.25)
    assert row["user_idx"] == 7
    assert row["features"] == pytest.approx([1 / math.sqrt(1.25), 0.5 / math.sqrt(1.25)], rel=1e-6)


def test_recommend_excludes_shelved_and_ranks_by_content_plus_prior(spark):
    vectors = spark.createDataFrame(
        [(0, [1.0, 0.0]), (1, [0.96, 0.28]), (2, [0.0, 1.0]), (3, [0.6, 0.8])],
        "book_idx int, features array<float>",
    )
    # user 0 shelved book 0; readers: book 2 by 3 users, book 1 by none
    rows = [(0, 0, 0, None), (1, 2, 0, None), (2, 2, 0, None), (3, 2, 0, None)]
    df = spark.createDataFrame(rows, SHELVES)
    pure = content.recommend(
        spark, df, vectors, 3, ContentParams(popularity_weight=0.0), users=df.where("user_idx = 0")
    )
    assert [r["book_idx"] for r in pure.orderBy("rank").collect()] == [
        1,
        3,
        2,
    ]  # cos 0.96, 0.6, 0: book 0 excluded
    # with λ = 1 the prior adds p = ln(1+3)/ln(1+3) = 1 to book 2 (cos 0 -> 1.0 > 0.96): it moves first
    mixed = content.recommend(
        spark, df, vectors, 3, ContentParams(popularity_weight=1.0), users=df.where("user_idx = 0")
    )
    got = [(r["book_idx"], round(r["score"], 4)) for r in mixed.orderBy("rank").collect()]
    assert got == [(2, 1.0), (1, 0.96), (3, 0.6)]


def test_books_without_metadata_skip_the_model(spark):
    rows = [(i, None, None, None, None, None, None, None) for i in range(4)]
    with pytest.raises(NoMetadata, match="needs book metadata"):
        content.book_vectors(books_df(spark, rows))


def test_a_book_nobody_read_gets_content_neighbours(spark):
    vectors = spark.createDataFrame(
        [(0, [1.0, 0.0]), (1, [0.8, 0.6]), (2, [0.0, 1.0])], "book_idx int, features array<float>"
    )
    df = spark.createDataFrame([(0, 0, 0, None), (1, 0, 0, None), (0, 2, 0, None), (1, 2, 0, None)], SHELVES)
    got = content.cold_similar(spark, df, vectors, 2, min_readers=2).orderBy("rank").collect()
    # only book 1 (0 readers) is cold; its neighbours by cosine: book 0 (0.8), book 2 (0.6); never itself
    assert [(r["book_idx"], r["neighbour_idx"]) for r in got] == [(1, 0), (1, 2)]
    assert [round(r["score"], 4) for r in got] == [0.8, 0.6]


def test_pipeline_skips_the_content_model_with_a_message_when_books_have_no_metadata(spark, lake, caplog):
    from recspark.config import RunConfig
    from recspark.pipeline import content_vectors

    rows = [(i, None, None, None, None, None, None, None) for i in range(4)]
    lake.write(books_df(spark, rows), "silver", "books")
    with caplog.at_level("WARNING", logger="recspark.pipeline"):
        assert content_vectors(lake, RunConfig()) is None
    assert "content model skipped" in caplog.text and "needs book metadata" in caplog.text
    with pytest.raises(NoMetadata):  # when content is the model to publish, the run stops instead
        content_vectors(lake, RunConfig(), required=True)
