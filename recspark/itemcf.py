"""Item-based collaborative filtering from book-book co-occurrence, as Spark joins (no Python loops).

Algorithm:

1. **Weights.** Each shelf ``(user, book)`` weighs ``w = 1``, or ``w = 0.5 ** (age / half_life)`` with a time
   decay (``age`` in days before the newest event of the data; shelves without a date count as new).
2. **Co-occurrence with a cap on active users.** Each user contributes at most :data:`MAX_USER_BOOKS` books (the
   most recent ones; a seeded hash order when there are no dates). A user with ``n`` books yields ``n(n-1)/2``
   pairs, so the cap bounds the self-join at ``cap²/2`` rows per user whatever the user's activity: real
   Goodreads users with thousands of shelves would otherwise dominate both the cost (one task carrying
   millions of pairs) and the similarities. Below the cap nothing is dropped. The pairs ``(a, b)``, ``a < b``,
   come from a self-join on ``user_idx`` (``how="inner"``), summed per pair: ``c_ab = Σ_u w_ua·w_ub``.
3. **Similarity** of two books from ``c_ab`` and each book's own sums ``n_a = Σ_u w_ua`` and ``q_a = Σ_u w_ua²``:

   * ``cosine``:  ``c_ab / sqrt(q_a · q_b)``
   * ``jaccard``: ``c_ab / (n_a + n_b - c_ab)``
   * ``lift``:    ``c_ab · U / (n_a · n_b)`` (``U`` users; favours rare pairs, so it is noisier)

   With unit weights, cosine is ``|A∩B| / sqrt(|A|·|B|)`` and Jaccard ``|A∩B| / |A∪B|`` over the readers.
   Pairs seen by fewer than ``min_common`` users are dropped (noise). Each book keeps its top
   ``neighbours`` by similarity (ties to the smaller index) in ``model/neighbours``.
4. **User scores** are a sparse product: the user's weighted shelves joined with the neighbour lists on the
   shelved book, summed per candidate book: ``score(u, i) = Σ_{j ∈ shelved(u)} w_uj · sim(j, i)``, grouped by
   ``(user_idx, book_idx)`` in Spark. Every book the user shelved is removed with a left-anti join before the
   ranking (exact exclusion), and the rank comes from a window partitioned by user. The book that contributed
   most to each score is kept as the explanation (``because_book_idx``).

Bounds: the join emits ``Σ_u min(n_u, cap)² / 2`` pairs for the similarities and ``Σ_u n_u · neighbours`` rows
for the scores; both are spread over partitions by the join keys, so no stage runs in one task.

The user-based variant (users' neighbours instead of books') is not built: with far more users than books per
user (Goodreads: 876k users, 261 shelves each on average) its neighbour table costs more than the book one
and is usually weaker for top-N lists; it pays off only when users are few and books many.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recspark import columns as C
from recspark.columns import RANK, SCORE

log = logging.getLogger(__name__)

SIMILARITIES = ("cosine", "jaccard", "lift")
MAX_USER_BOOKS = 100
NEIGHBOUR_IDX = C.NEIGHBOUR_IDX
BECAUSE_IDX = C.BECAUSE_BOOK_IDX
WEIGHT = "_w"
_OTHER = "_other_idx"


@dataclass(frozen=True)
class ItemCfParams:
    similarity: str = "cosine"
    neighbours: int = 100  # neighbours kept per book
    max_user_books: int = MAX_USER_BOOKS  # co-occurrence cap per user (most recent books)
    min_common: int = 1  # a pair needs this many common readers
    half_life_days: float | None = None  # None: no time decay
    seed: int = 42

    def __post_init__(self) -> None:
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"unknown similarity {self.similarity!r}; choose one of {SIMILARITIES}")
        if self.neighbours < 1 or self.max_user_books < 2 or self.min_common < 1:
            raise ValueError(f"item-CF needs neighbours >= 1, max_user_books >= 2, min_common >= 1: {self}")
        if self.half_life_days is not None and self.half_life_days <= 0:
            raise ValueError(f"half_life_days must be positive, not {self.half_life_days}")

    def as_dict(self) -> dict:
        return asdict(self)


def weighted(interactions: DataFrame, half_life_days: float | None) -> DataFrame:
    """``(user_idx, book_idx, _w, date_added)``: one row per shelf, weight 1 or decayed by age."""
    base = interactions.select(C.USER_IDX, C.BOOK_IDX, C.DATE_ADDED).dropDuplicates([C.USER_IDX, C.BOOK_IDX])
    if half_life_days is None:
        return base.select(C.USER_IDX, C.BOOK_IDX, F.lit(1.0).alias(WEIGHT), C.DATE_ADDED)
    newest = interactions.agg(F.max(C.DATE_ADDED)).first()[0]
    if newest is None:
        log.warning("no dates in the interactions: item-CF runs without time decay")
        return base.select(C.USER_IDX, C.BOOK_IDX, F.lit(1.0).alias(WEIGHT), C.DATE_ADDED)
    age_days = (F.lit(newest).cast("long") - F.col(C.DATE_ADDED).cast("long")) / 86400.0
    w = F.when(F.col(C.DATE_ADDED).isNull(), F.lit(1.0)).otherwise(
        F.pow(F.lit(0.5), F.greatest(age_days, F.lit(0.0)) / F.lit(float(half_life_days)))
    )
    return base.select(C.USER_IDX, C.BOOK_IDX, w.alias(WEIGHT), C.DATE_ADDED)


def capped(shelves: DataFrame, max_user_books: int, seed: int) -> DataFrame:
    """Each user's ``max_user_books`` most recent shelves (a seeded hash order breaks ties and orders undated
    shelves)."""
    w = (
        Window.partitionBy(C.USER_IDX)
        .orderBy(F.col(C.DATE_ADDED).desc_nulls_last(), F.xxhash64(C.USER_IDX, C.BOOK_IDX, F.lit(seed)))
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    return (
        shelves.withColumn("_n", F.row_number().over(w))
        .where(F.col("_n") <= max_user_books)
        .select(C.USER_IDX, C.BOOK_IDX, WEIGHT)
    )


def cooccurrence(shelves: DataFrame) -> DataFrame:
    """``(book_idx, neighbour_idx, c)`` for ``book_idx < neighbour_idx``: ``c = Σ_u w_ua · w_ub``."""
    a = shelves.select(C.USER_IDX, C.BOOK_IDX, F.col(WEIGHT).alias("_wa"))
    b = shelves.select(C.USER_IDX, F.col(C.BOOK_IDX).alias(NEIGHBOUR_IDX), F.col(WEIGHT).alias("_wb"))
    return (
        a.join(b, on=C.USER_IDX, how="inner")
        .where(F.col(C.BOOK_IDX) < F.col(NEIGHBOUR_IDX))
        .groupBy(C.BOOK_IDX, NEIGHBOUR_IDX)
        .agg(F.sum(F.col("_wa") * F.col("_wb")).alias("c"), F.count(F.lit(1)).alias("_users"))
        .select(C.BOOK_IDX, NEIGHBOUR_IDX, "c", "_users")
    )


def book_sums(shelves: DataFrame) -> DataFrame:
    """``(book_idx, n, q)``: the sum of a book's weights and of their squares."""
    return shelves.groupBy(C.BOOK_IDX).agg(
        F.sum(WEIGHT).alias("n"), F.sum(F.col(WEIGHT) * F.col(WEIGHT)).alias("q")
    )


def similarity(pairs: DataFrame, sums: DataFrame, kind: str, n_users: int, min_common: int = 1) -> DataFrame:
    """``(book_idx, neighbour_idx, score)`` in both directions from the co-occurrence ``pairs``."""
    sa = sums.select(C.BOOK_IDX, F.col("n").alias("_na"), F.col("q").alias("_qa"))
    sb = sums.select(F.col(C.BOOK_IDX).alias(NEIGHBOUR_IDX), F.col("n").alias("_nb"), F.col("q").alias("_qb"))
    c = F.col("c")
    formula = {
        "cosine": c / F.sqrt(F.col("_qa") * F.col("_qb")),
        "jaccard": c / (F.col("_na") + F.col("_nb") - c),
        "lift": c * F.lit(float(n_users)) / (F.col("_na") * F.col("_nb")),
    }[kind]
    one_way = (
        pairs.where(F.col("_users") >= min_common)
        .join(sa, on=C.BOOK_IDX, how="inner")
        .join(sb, on=NEIGHBOUR_IDX, how="inner")
        .select(C.BOOK_IDX, NEIGHBOUR_IDX, formula.alias(SCORE))
    )
    other_way = one_way.select(
        F.col(NEIGHBOUR_IDX).alias(C.BOOK_IDX), F.col(C.BOOK_IDX).alias(NEIGHBOUR_IDX), F.col(SCORE)
    )
    return one_way.unionByName(other_way)


def top_neighbours(sims: DataFrame, n: int) -> DataFrame:
    """``(book_idx, rank, neighbour_idx, score)``: each book's ``n`` most similar books (ties: smaller index)."""
    w = (
        Window.partitionBy(C.BOOK_IDX)
        .orderBy(F.col(SCORE).desc(), F.col(NEIGHBOUR_IDX).asc())
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    return (
        sims.withColumn(RANK, F.row_number().over(w))
        .where(F.col(RANK) <= n)
        .select(
            C.BOOK_IDX, F.col(RANK).cast("int"), F.col(NEIGHBOUR_IDX).cast("int"), F.col(SCORE).cast("float")
        )
    )


class Cooccurrence:
    """The co-occurrence of one set of interactions, computed once and cached, from which neighbour tables for
    several similarity choices are derived (the search tries several without recounting)."""

    def __init__(self, interactions: DataFrame, params: ItemCfParams) -> None:
        self.params = params
        shelves = capped(weighted(interactions, params.half_life_days), params.max_user_books, params.seed)
        self.pairs = cooccurrence(shelves).cache()
        self.sums = book_sums(shelves).cache()
        self.n_users = interactions.select(C.USER_IDX).distinct().count()
        n_pairs = self.pairs.count()
        log.info("item-CF: %s co-occurring book pairs over %s users", f"{n_pairs:,}", f"{self.n_users:,}")

    def neighbours(self, similarity_kind: str, n: int, min_common: int = 1) -> DataFrame:
        sims = similarity(self.pairs, self.sums, similarity_kind, self.n_users, min_common)
        return top_neighbours(sims, n)

    def release(self) -> None:
        self.pairs.unpersist()
        self.sums.unpersist()


def fit(interactions: DataFrame, params: ItemCfParams) -> DataFrame:
    """The neighbour table ``(book_idx, rank, neighbour_idx, score)``, materialised (cached and counted)."""
    co = Cooccurrence(interactions, params)
    try:
        table = co.neighbours(params.similarity, params.neighbours, params.min_common).cache()
        table.count()
    finally:
        co.release()
    return table


def recommend(
    interactions: DataFrame,
    neighbours: DataFrame,
    k: int,
    users: DataFrame | None = None,
    half_life_days: float | None = None,
    max_seed_books: int | None = None,
    seed: int = 42,
) -> DataFrame:
    """Top-``k`` ``(user_idx, rank, book_idx, score, because_book_idx)`` for every user in ``interactions`` (or
    only those in ``users``): summed neighbour similarities of the user's (at most ``max_seed_books`` most
    recent) shelves; *every* shelved book is excluded."""
    all_shelves = weighted(interactions, half_life_days)
    if users is not None:
        all_shelves = all_shelves.join(users.select(C.USER_IDX).distinct(), on=C.USER_IDX, how="left_semi")
    shelves = all_shelves.select(C.USER_IDX, C.BOOK_IDX, WEIGHT)
    seeds = shelves if max_seed_books is None else capped(all_shelves, max_seed_books, seed)
    nb = neighbours.select(
        F.col(C.BOOK_IDX).alias(_OTHER), F.col(NEIGHBOUR_IDX).alias(C.BOOK_IDX), F.col(SCORE).alias("_sim")
    )
    contrib = (
        seeds.select(C.USER_IDX, F.col(C.BOOK_IDX).alias(_OTHER), WEIGHT)
        .join(nb, on=_OTHER, how="inner")
        .select(C.USER_IDX, C.BOOK_IDX, _OTHER, (F.col(WEIGHT) * F.col("_sim")).alias("_c"))
    )
    scored = (
        contrib.groupBy(C.USER_IDX, C.BOOK_IDX)
        .agg(F.sum("_c").alias(SCORE), F.max_by(_OTHER, "_c").alias(BECAUSE_IDX))
        .join(shelves.select(C.USER_IDX, C.BOOK_IDX), on=[C.USER_IDX, C.BOOK_IDX], how="left_anti")
    )
    w = (
        Window.partitionBy(C.USER_IDX)
        .orderBy(F.col(SCORE).desc(), F.col(C.BOOK_IDX).asc())
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    return (
        scored.withColumn(RANK, F.row_number().over(w))
        .where(F.col(RANK) <= k)
        .select(
            F.col(C.USER_IDX).cast("int"),
            F.col(RANK).cast("int"),
            F.col(C.BOOK_IDX).cast("int"),
            F.col(SCORE).cast("float"),
            F.col(BECAUSE_IDX).cast("int"),
        )
    )
