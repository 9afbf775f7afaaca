"""Content-based recommendations from book metadata: TF-IDF book vectors reduced by a random projection, a
time-decayed taste vector per user, and nearest neighbours with the blocked top-K engine.

Algorithm:

1. **Tokens per book** (:func:`book_tokens`): the words of the title and description (Spark ML
   ``RegexTokenizer`` + ``StopWordsRemover``, words of 3+ letters), and one token per genre, popular shelf,
   author and series, each prefixed by its field (``w:``, ``g:``, ``s:``, ``a:``, ``r:``) so a word and a shelf of
   the same spelling stay apart. Goodbooks ``books.csv`` has no genres, shelves or descriptions: its books get
   title words and authors only.
2. **TF-IDF**: ``tf`` = occurrences of the token in the book, ``idf = ln((N + 1) / (df + 1)) + 1`` over the ``N``
   books with tokens (the smoothed IDF of Spark ML and scikit-learn), each book's weights scaled to unit length.
3. **Random projection** to :data:`DIM` dense dimensions: token ``t`` is hashed (xxhash64) into one of
   :data:`BUCKETS` rows of a seeded Gaussian matrix ``R`` (``BUCKETS x DIM``, entries N(0, 1/DIM)), and the book
   vector is ``Σ_t tfidf_t · R[h(t)]``, then unit length. By Johnson-Lindenstrauss, cosines between books are kept
   within about ``±1/sqrt(DIM)`` (hash collisions add noise of the same order); ``R`` (16 MiB) is generated in each
   Python worker from the seed, never shipped.
4. **Taste vector** of a user: ``Σ_j w_j · v_j`` over the shelved books ``j`` with ``w_j = r(rating_j) ·
   0.5 ** (age_j / half_life)``: ``r`` = 1 for an unrated shelf, ``(rating - 2.5) / 2.5`` for a rating (a 1-star
   book pushes the taste away, a 5-star one counts fully); ``age`` in days before the newest event of the data.
5. **Scores**: ``cos(taste, v_b) + λ · p_b`` with ``p_b = ln(1 + readers_b) / ln(1 + max readers)``: pure content
   (``λ = 0``) picks obscure look-alikes, so a small popularity prior is part of the model (searched on the
   validation split). It is one dot product of ``[taste/|taste|, λ]`` with ``[v_b, p_b]``, so the blocked top-K
   engine (:mod:`recspark.topk`) ranks every book, shelved ones excluded exactly. Books with no readers have
   ``p_b = 0`` and are still recommended when their content matches: the model's answer to new books.

New books (:func:`cold_similar`): books with fewer than ``min_readers`` readers get their similar-books list
from the content cosine (``method = content`` in ``gold/similar_books``).

When the books carry no metadata (e.g. the UCSD CSV files alone), :func:`book_vectors` raises
:class:`NoMetadata` and the pipeline skips the model with that message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from pyspark.ml.feature import RegexTokenizer, StopWordsRemover
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recspark import columns as C
from recspark import topk
from recspark.works import Works, candidates_of, seen_of

log = logging.getLogger(__name__)

DIM = 64
BUCKETS = 1 << 16
MIN_BOOKS_WITH_TOKENS = 0.5  # fewer books with metadata than this share: no content model
TOKEN = "token"
TF = "tf"
_BUCKET = "_bucket"
_W = "_w"


class NoMetadata(RuntimeError):
    """The books carry too little metadata for a content model."""


@dataclass(frozen=True)
class ContentParams:
    popularity_weight: float = 1.0  # λ: weight of the log-popularity prior next to the content cosine
    half_life_days: float | None = 365.0  # taste decay; None: every shelf counts the same
    seed: int = 42

    def __post_init__(self) -> None:
        if self.popularity_weight < 0:
            raise ValueError(f"popularity_weight must be >= 0, not {self.popularity_weight}")
        if self.half_life_days is not None and self.half_life_days <= 0:
            raise ValueError(f"half_life_days must be positive, not {self.half_life_days}")

    def as_dict(self) -> dict:
        return asdict(self)


# -- book vectors ---------------------------------------------------------------------------------------------
def _prefixed(col: str, prefix: str) -> F.Column:
    """Array column ``col`` as lower-case tokens ``prefix + value`` (empty when null)."""
    return F.transform(
        F.coalesce(F.col(col), F.array().cast("array<string>")),
        lambda x: F.concat(F.lit(prefix), F.lower(F.trim(x.cast("string")))),
    )


def book_tokens(books: DataFrame) -> DataFrame:
    """``(book_idx, token, tf)``: every token of a book's metadata with its count in that book."""
    text = books.select(
        C.BOOK_IDX,
        F.concat_ws(
            " ", F.coalesce(F.col(C.TITLE), F.lit("")), F.coalesce(F.col(C.DESCRIPTION), F.lit(""))
        ).alias("_text"),
        F.col(C.GENRES),
        F.col(C.SHELVES),
        F.col(C.SERIES),
        F.coalesce(
            F.col(C.AUTHOR_IDS).cast("array<string>"),
            F.split(F.coalesce(F.col(C.AUTHORS), F.lit("")), ",\\s*"),
        ).alias("_authors"),
    )
    words = RegexTokenizer(inputCol="_text", outputCol="_words", pattern="[^\\p{L}]+", minTokenLength=3)
    stop = StopWordsRemover(inputCol="_words", outputCol="_kept")
    tokenised = stop.transform(words.transform(text))
    tokens = F.flatten(
        F.array(
            _prefixed("_kept", "w:"),
            _prefixed(C.GENRES, "g:"),
            _prefixed(C.SHELVES, "s:"),
            _prefixed("_authors", "a:"),
            _prefixed(C.SERIES, "r:"),
        )
    )
    return (
        tokenised.select(C.BOOK_IDX, F.explode(tokens).alias(TOKEN))
        .where(F.length(TOKEN) > 2)  # a prefix alone: an empty value
        .groupBy(C.BOOK_IDX, TOKEN)
        .agg(F.count(F.lit(1)).cast("double").alias(TF))
        .select(C.BOOK_IDX, TOKEN, TF)
    )


def tfidf(tokens: DataFrame, n_books: int) -> DataFrame:
    """``(book_idx, token, _w)``: tf * smoothed idf, unit length per book."""
    df = tokens.groupBy(TOKEN).agg(F.count(F.lit(1)).alias("_df"))
    idf = F.log((F.lit(n_books) + 1) / (F.col("_df") + 1)) + 1
    weighted = tokens.join(df, on=TOKEN, how="inner").select(C.BOOK_IDX, TOKEN, (F.col(TF) * idf).alias(_W))
    norms = weighted.groupBy(C.BOOK_IDX).agg(F.sqrt(F.sum(F.col(_W) * F.col(_W))).alias("_norm"))
    return weighted.join(norms, on=C.BOOK_IDX, how="inner").select(
        C.BOOK_IDX, TOKEN, (F.col(_W) / F.col("_norm")).alias(_W)
    )


@lru_cache(maxsize=2)
def projection(seed: int, buckets: int = BUCKETS, dim: int = DIM) -> np.ndarray:
    """The seeded Gaussian matrix ``R`` (``buckets x dim``, entries N(0, 1/dim)), identical in every worker."""
    return (
        np.random.default_rng(seed).standard_normal((buckets, dim), dtype=np.float32) / np.sqrt(dim)
    ).astype(np.float32)


def project(weights: DataFrame, seed: int) -> DataFrame:
    """``(book_idx, features)``: unit-length ``Σ_t w_t · R[h(t)]`` per book (see the module docstring)."""
    grouped = weights.select(
        C.BOOK_IDX,
        F.pmod(F.xxhash64(TOKEN), F.lit(BUCKETS)).cast("int").alias(_BUCKET),
        F.col(_W).cast("float"),
    ).groupBy(C.BOOK_IDX)
    lists = grouped.agg(F.collect_list(_BUCKET).alias("_b"), F.collect_list(_W).alias("_v"))
    schema = T.StructType(
        [
            T.StructField(C.BOOK_IDX, T.IntegerType(), False),
            T.StructField(C.FEATURES, T.ArrayType(T.FloatType(), False), False),
        ]
    )

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        r = projection(seed)
        for pdf in batches:
            out = []
            for b, v in zip(pdf["_b"], pdf["_v"]):
                vec = np.asarray(v, dtype=np.float32) @ r[np.asarray(b, dtype=np.int64)]
                out.append(vec / max(float(np.linalg.norm(vec)), 1e-12))
            yield pd.DataFrame({C.BOOK_IDX: pdf[C.BOOK_IDX].astype("int32"), C.FEATURES: out})

    return lists.mapInPandas(run, schema)


def book_vectors(books: DataFrame, seed: int = 42) -> DataFrame:
    """Unit content vectors ``(book_idx, features)`` of every book with metadata, materialised (cached, counted).
    Raises :class:`NoMetadata` when fewer than :data:`MIN_BOOKS_WITH_TOKENS` of the books have any token."""
    tokens = book_tokens(books).cache()
    n_books = books.count()
    n_with = tokens.select(C.BOOK_IDX).distinct().count()
    if n_books == 0 or n_with < MIN_BOOKS_WITH_TOKENS * n_books:
        tokens.unpersist()
        raise NoMetadata(
            f"only {n_with:,} of {n_books:,} books have titles, descriptions, genres, shelves or authors: "
            "the content model needs book metadata (goodreads_books.json.gz or books.csv)"
        )
    vectors = project(tfidf(tokens, n_with), seed).cache()
    vectors.count()
    tokens.unpersist()
    log.info("content: %s of %s books have vectors (%d dimensions)", f"{n_with:,}", f"{n_books:,}", DIM)
    return vectors


# -- users ----------------------------------------------------------------------------------------------------
def shelf_weights(interactions: DataFrame, half_life_days: float | None) -> DataFrame:
    """``(user_idx, book_idx, _w)``: rating weight times time decay (see the module docstring)."""
    rating = F.coalesce(F.col(C.RATING), F.lit(0))
    w = F.when(rating == 0, F.lit(1.0)).otherwise((rating - 2.5) / 2.5)
    newest = interactions.agg(F.max(C.DATE_ADDED)).first()[0] if half_life_days is not None else None
    if newest is not None:
        age = (F.lit(newest).cast("long") - F.col(C.DATE_ADDED).cast("long")) / 86400.0
        decay = F.pow(F.lit(0.5), F.greatest(age, F.lit(0.0)) / F.lit(float(half_life_days)))
        w = w * F.coalesce(decay, F.lit(1.0))
    return interactions.select(C.USER_IDX, C.BOOK_IDX, w.cast("double").alias(_W))


def taste_vectors(interactions: DataFrame, vectors: DataFrame, half_life_days: float | None) -> DataFrame:
    """``(user_idx, features)``: unit-length weighted sum of the vectors of the books the user shelved."""
    dims = F.posexplode(F.col(C.FEATURES)).alias("_d", "_x")
    parts = (
        shelf_weights(interactions, half_life_days)
        .join(vectors, on=C.BOOK_IDX, how="inner")
        .select(C.USER_IDX, _W, dims)
        .groupBy(C.USER_IDX, "_d")
        .agg(F.sum(F.col(_W) * F.col("_x")).alias("_x"))
    )
    summed = parts.groupBy(C.USER_IDX).agg(F.sort_array(F.collect_list(F.struct("_d", "_x"))).alias("_p"))
    vec = F.transform(F.col("_p"), lambda p: p["_x"])
    return summed.select(C.USER_IDX, topk.unit_length(vec).alias(C.FEATURES))


def with_popularity(vectors: DataFrame, interactions: DataFrame, weight: float) -> DataFrame:
    """Book vectors with one more dimension ``p_b = ln(1 + readers) / ln(1 + max readers)`` (0: no readers)."""
    readers = interactions.groupBy(C.BOOK_IDX).agg(F.count(F.lit(1)).alias("_r"))
    top = readers.agg(F.max("_r")).first()[0] or 1
    p = F.log1p(F.coalesce(F.col("_r"), F.lit(0))) / float(np.log1p(top))
    return vectors.join(readers, on=C.BOOK_IDX, how="left").select(
        C.BOOK_IDX, F.concat(F.col(C.FEATURES), F.array(p.cast("float"))).alias(C.FEATURES)
    )


def recommend(
    spark: SparkSession,
    interactions: DataFrame,
    vectors: DataFrame,
    k: int,
    params: ContentParams,
    users: DataFrame | None = None,
    works: Works | None = None,
) -> DataFrame:
    """Top-``k`` ``(user_idx, rank, book_idx, score)`` by ``cos(taste, book) + λ·p_book``, shelved books excluded
    (for every user in ``interactions``, or only those in ``users``); with ``works``, one edition per work and
    every edition of a shelved work excluded."""
    shelves = interactions
    if users is not None:
        shelves = shelves.join(users.select(C.USER_IDX).distinct(), on=C.USER_IDX, how="left_semi")
    taste = taste_vectors(shelves, vectors, params.half_life_days)
    queries = taste.select(
        C.USER_IDX,
        F.concat(F.col(C.FEATURES), F.array(F.lit(params.popularity_weight).cast("float"))).alias(C.FEATURES),
    )
    items = candidates_of(works, with_popularity(vectors, interactions, params.popularity_weight))
    return topk.recommend(spark, queries, items, k, seen=seen_of(works, shelves))


def cold_similar(
    spark: SparkSession,
    interactions: DataFrame,
    vectors: DataFrame,
    k: int,
    min_readers: int,
    works: Works | None = None,
) -> DataFrame:
    """``(book_idx, rank, neighbour_idx, score)``: content-cosine neighbours of the books with fewer than
    ``min_readers`` readers (zero included), among all books with vectors; never the book itself (with
    ``works``: never an edition of its own work, one edition per work)."""
    readers = interactions.groupBy(C.BOOK_IDX).agg(F.count(F.lit(1)).alias("_r"))
    cold = vectors.join(readers.where(F.col("_r") >= min_readers), on=C.BOOK_IDX, how="left_anti")
    own = works.own_work(cold) if works is not None else None
    return topk.item_neighbours(spark, cold, candidates_of(works, vectors), k, seen=own)
