"""Item-based collaborative filtering from book-book co-occurrence, as Spark joins (no Python loops).

Algorithm:

1. **Weights.** Each shelf ``(user, book)`` weighs ``w = 1``, or ``w = 0.5 ** (age / half_life)`` with a time
   decay (``age`` in days before the newest event of the data; shelves without a date count as new). The
   weight is then multiplied by what the shelf says of the reader's taste (``shelf_weights``,
   :data:`SHELF_WEIGHTS`): ``stars``, ``rating / 5`` for a rated shelf (unrated: 1), so a book rated 2 stars
   says less than one rated 5; ``read``, :data:`UNREAD_WEIGHT` for a shelf not (yet) read, so a to-read shelf
   says less than a book read; ``read+stars`` both. The weights count alike in the co-occurrence, in EASE's
   Gram matrix and in the user's sums of step 4. The search tries each that the data can tell apart on its
   best configuration and keeps it where it scores higher (:func:`recspark.tune.best_itemcf`). Why: numpy EASE
   on the split of ``bench/quality.py`` (``bench/ease_gap.py --shelf-weights binary,stars,read,read+stars``)
   scored NDCG@10 0.389 with stars against 0.3645 with unit weights on real MovieLens 100k ratings (+6.7%),
   0.0994 against 0.0982 on the goodbooks-like ratings and 0.1504 against 0.1484 on generated ratings; on
   generated UCSD shelves ``read`` scored 0.3887 against 0.3279 (+18.5%), but ``stars`` 0.2943 (unrated to-read
   shelves weigh 1 there and rated read ones less): the best choice depends on the data, so validation makes
   it.
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

   * ``ease``:    weights learned in closed form from counts of the same kind (:mod:`recspark.ease`: a ridge
     regression of each book on all the others over the most-read books; the driver inverts the Gram matrix,
     counted over the catalogue with a larger per-user cap while the pairs fit in ``ease.MAX_PAIRS``)

   With unit weights, cosine is ``|A∩B| / sqrt(|A|·|B|)`` and Jaccard ``|A∩B| / |A∪B|`` over the readers.
   Pairs seen by fewer than ``min_common`` users are dropped (noise). Each book keeps its top
   ``neighbours`` by similarity (ties to the smaller index) in ``model/neighbours``.
4. **User scores** are a sparse product: ``score(u, i) = Σ_{j ∈ shelved(u)} w_uj · sim(j, i)``. The neighbour
   table (``n_books × neighbours`` entries, 8 bytes each) is broadcast in CSR form when it fits in
   :data:`BROADCAST_MB`; each user's shelves arrive as one list (``collect_list``, users spread over
   partitions) and a numpy kernel gathers the CSR rows of the shelved books, sums them per candidate (a dense
   ``bincount`` over the catalogue when that is at most four times the gathered entries, a sort otherwise),
   drops every shelved book (exact exclusion), and ranks the best ``k`` by ``(-score, book)``. A larger table
   is scored with Spark joins instead (the user's shelves joined with the neighbour lists on the shelved book,
   grouped per ``(user, candidate)``, a left-anti join for the exclusion, a window per user); both give the
   same lists (tested). The book that contributed most to each score is kept as the explanation
   (``because_book_idx``).
5. **Popularity prior** (``popularity_weight`` β > 0, searched on the validation split; 0 turns it off):
   ``score(u, i) = S_u(i) / max_j S_u(j) + β · readers_i / max readers``. A user with few shelves has few
   neighbours to add up, and for them the most-read books are often the better guess (sparse "next shelves"
   users: ``bench/next_blend.py`` found the blend ahead of popularity in numpy; in the product it ties with
   popularity on the sparse data we have, and heavy users keep β = 0, see the README); scaling ``S_u`` to 1
   lets one β hold for light and heavy users alike. Every
   book is a candidate now, but the best ``k`` are among the user's neighbour candidates and the first
   ``k + n_u`` books by readers (any other book scores its prior alone, below those), so the kernel stays exact
   without a pass over the catalogue; the join path adds the same popular books per user. A book picked by the
   prior alone has no explanation (``because_book_idx`` null). The **liked-share prior** (``liked_weight`` γ,
   searched after β where some shelves are liked and others not) adds ``γ · liked_i`` the same way, ``liked_i``
   the book's liked share (:func:`recspark.candidates.liked_shares`: how often a shelf of it is not rated below 4
   stars and, where the data records reading, read, shrunk towards the share over all shelves): the neighbours
   say what a reader will shelve, the share whether a shelf of it turns out liked, what the hidden checks count
   (numpy EASE, ``bench/liked_prior.py``: +6.6% on generated heavy shelvers at γ 0.1, -8% at 0.3, and lower at
   every γ on MovieLens with star weights, so it is chosen on validation like β: ``tune.ITEMCF_LIKED_GRID``).
   The "popular" books of the exactness argument are then the first by the whole prior
   ``β · readers / max + γ · liked``. The two-stage candidates go without γ (:mod:`recspark.twostage`).

Bounds: the co-occurrence join emits ``Σ_u min(n_u, cap)² / 2`` pairs, spread over partitions by the join keys.
Scoring one user costs ``O(n_u · neighbours)`` plus ``O(n_books)`` only when the dense sum is the cheaper one;
each Python worker holds one copy of the broadcast table (at most :data:`BROADCAST_MB`), and the join path
emits ``Σ_u n_u · neighbours`` rows. No stage runs in one task.

The user-based variant (users' neighbours instead of books') is not built: with far more users than books per
user (Goodreads: 876k users, 261 shelves each on average) its neighbour table costs more than the book one
and is usually weaker for top-N lists; it pays off only when users are few and books many.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recspark import baselines, candidates, ease
from recspark import columns as C
from recspark.candidates import LIKED_SHARE
from recspark.columns import RANK, SCORE
from recspark.foldin import UNREAD_WEIGHT, csr_positions
from recspark.works import Works

log = logging.getLogger(__name__)

SIMILARITIES = ("cosine", "jaccard", "lift", "ease")
SHELF_WEIGHTS = ("binary", "stars", "read", "read+stars")  # what multiplies a shelf's weight (step 1)
MAX_USER_BOOKS = 100
BROADCAST_MB = 256  # largest neighbour table scored by the broadcast kernel (8 bytes per entry)
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
    ease_l2: float = 4.0  # similarity "ease": λ = ease_l2 × mean readers of a catalogue book (recspark.ease)
    popularity_weight: float = 0.0  # β: readers / max readers added to the scores scaled to 1 (0: no prior)
    liked_weight: float = 0.0  # γ: the book's liked share added likewise (step 5; 0: none)
    shelf_weights: str = "binary"  # stars, read or read+stars: a shelf weighed by what it says (step 1)

    def __post_init__(self) -> None:
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"unknown similarity {self.similarity!r}; choose one of {SIMILARITIES}")
        if self.shelf_weights not in SHELF_WEIGHTS:
            raise ValueError(f"unknown shelf weights {self.shelf_weights!r}; choose one of {SHELF_WEIGHTS}")
        if self.neighbours < 1 or self.max_user_books < 2 or self.min_common < 1:
            raise ValueError(f"item-CF needs neighbours >= 1, max_user_books >= 2, min_common >= 1: {self}")
        if self.ease_l2 <= 0:
            raise ValueError(f"ease_l2 must be positive, not {self.ease_l2}")
        if self.popularity_weight < 0 or self.liked_weight < 0:
            raise ValueError(f"popularity_weight and liked_weight must be >= 0: {self}")
        if self.half_life_days is not None and self.half_life_days <= 0:
            raise ValueError(f"half_life_days must be positive, not {self.half_life_days}")

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """The configuration in words, as the run summary and the report show it."""
        parts = (
            [f"EASE weights (l2 {self.ease_l2:g}), {self.neighbours} per book at most"]
            if self.similarity == "ease"
            else [f"{self.similarity} similarity, {self.neighbours} neighbours per book"]
        )
        if self.popularity_weight > 0:
            parts.append(f"popularity prior {self.popularity_weight:g}")
        if self.liked_weight > 0:
            parts.append(f"liked-share prior {self.liked_weight:g}")
        if self.shelf_weights != "binary":
            said = {
                "stars": "a rated shelf weighs rating / 5",
                "read": f"an unread shelf weighs {UNREAD_WEIGHT:g}",
            }
            parts.append("shelves weighted: " + " and ".join(said[p] for p in self.shelf_weights.split("+")))
        if self.half_life_days is not None:
            parts.append(f"shelves decayed with a half-life of {self.half_life_days:g} days")
        return ", ".join(parts)


def weighted(
    interactions: DataFrame, half_life_days: float | None, shelf_weights: str = "binary"
) -> DataFrame:
    """``(user_idx, book_idx, _w, date_added)``: one row per shelf, weight 1 or decayed by age, times what the
    shelf says by ``shelf_weights`` (step 1: ``rating / 5`` where rated, :data:`UNREAD_WEIGHT` where unread)."""
    parts = set(shelf_weights.split("+")) - {"binary"}
    stars, read = "stars" in parts, "read" in parts
    cols = (
        [C.USER_IDX, C.BOOK_IDX, C.DATE_ADDED] + ([C.RATING] if stars else []) + ([C.IS_READ] if read else [])
    )
    base = interactions.select(*cols).dropDuplicates([C.USER_IDX, C.BOOK_IDX])
    w = F.lit(1.0)
    if half_life_days is not None:
        newest = interactions.agg(F.max(C.DATE_ADDED)).first()[0]
        if newest is None:
            log.warning("no dates in the interactions: item-CF runs without time decay")
        else:
            age_days = (F.lit(newest).cast("long") - F.col(C.DATE_ADDED).cast("long")) / 86400.0
            w = F.when(F.col(C.DATE_ADDED).isNull(), F.lit(1.0)).otherwise(
                F.pow(F.lit(0.5), F.greatest(age_days, F.lit(0.0)) / F.lit(float(half_life_days)))
            )
    if stars:
        w = w * star_weight(F.col(C.RATING))
    if read:
        w = w * F.when(F.col(C.IS_READ), F.lit(1.0)).otherwise(F.lit(UNREAD_WEIGHT))
    return base.select(C.USER_IDX, C.BOOK_IDX, w.alias(WEIGHT), C.DATE_ADDED)


def star_weight(rating: Column) -> Column:
    """A shelf's factor under ``shelf_weights="stars"``: ``rating / 5`` where rated (1-5), 1 unrated (0 or null);
    :func:`recspark.foldin.shelf_weights` is the consumer's copy."""
    return F.when(rating > 0, rating.cast("double") / 5.0).otherwise(F.lit(1.0))


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
    """The co-occurrence of one set of interactions, counted once per use and cached, from which neighbour tables
    for several similarity choices are derived (the search tries several without recounting): item-CF's pairs of
    every book over each user's :attr:`ItemCfParams.max_user_books` most recent shelves (for cosine, Jaccard and
    lift), and EASE's own pairs over its catalogue (:meth:`ease_counts`). Each is counted on first use."""

    def __init__(
        self,
        interactions: DataFrame,
        params: ItemCfParams,
        ease_max_books: int = ease.MAX_BOOKS,
        ease_max_pairs: int = ease.MAX_PAIRS,
    ) -> None:
        self.params = params
        self.ease_max_books = ease_max_books
        self.ease_max_pairs = ease_max_pairs
        self.interactions = interactions
        self.shelves = weighted(interactions, params.half_life_days, params.shelf_weights)
        self.n_users = 0  # counted with item-CF's pairs (lift needs it)
        self._counts: tuple[DataFrame, DataFrame] | None = None
        self._ease: tuple[DataFrame, DataFrame] | None = None

    def counts(self) -> tuple[DataFrame, DataFrame]:
        """``(pairs, sums)`` over each user's ``max_user_books`` most recent shelves, cached."""
        if self._counts is None:
            shelves = capped(self.shelves, self.params.max_user_books, self.params.seed)
            self._counts = (cooccurrence(shelves).cache(), book_sums(shelves).cache())
            n_pairs = self._counts[0].count()
            self.n_users = self.interactions.select(C.USER_IDX).distinct().count()
            log.info("item-CF: %s co-occurring book pairs over %s users", f"{n_pairs:,}", f"{self.n_users:,}")
        return self._counts

    def ease_counts(self) -> tuple[DataFrame, DataFrame]:
        """``(pairs, sums)`` for EASE's Gram matrix, cached: the shelves of the ``ease_max_books`` most-read books
        only (:func:`ease.catalogue`, readers counted over every shelf), each user's most recent ``cap`` of them,
        ``cap`` as large as :func:`ease.gram_cap` allows within ``ease_max_pairs`` pair rows and never below
        ``max_user_books`` (so nothing is dropped when the data is small enough)."""
        if self._ease is None:
            books, _ = ease.catalogue(book_sums(self.shelves), self.ease_max_books)
            spark = self.shelves.sparkSession
            cat = spark.createDataFrame(pa.table({C.BOOK_IDX: pa.array(books, pa.int32())}))
            inside = self.shelves.join(F.broadcast(cat), on=C.BOOK_IDX, how="left_semi").cache()
            sizes = (
                inside.groupBy(C.USER_IDX)
                .agg(F.count(F.lit(1)).alias("shelves"))
                .groupBy("shelves")
                .agg(F.count(F.lit(1)).alias("users"))
                .toArrow()
            )
            shelf_counts, users = sizes.column("shelves").to_numpy(), sizes.column("users").to_numpy()
            cap = ease.gram_cap(shelf_counts, users, self.ease_max_pairs, self.params.max_user_books)
            shelves = capped(inside, cap, self.params.seed)
            self._ease = (cooccurrence(shelves).cache(), book_sums(shelves).cache())
            n_pairs = self._ease[0].count()
            self._ease[1].count()
            inside.unpersist()
            log.info(
                "EASE: %s co-occurring pairs of %s catalogue books, at most %s shelves per user (largest: %s)",
                f"{n_pairs:,}",
                f"{len(books):,}",
                f"{cap:,}",
                f"{int(shelf_counts.max(initial=0)):,}",
            )
        return self._ease

    def neighbours(
        self, similarity_kind: str, n: int, min_common: int = 1, ease_l2: float = ItemCfParams.ease_l2
    ) -> DataFrame:
        if similarity_kind == "ease":
            pairs, sums = self.ease_counts()
            return ease.neighbours(pairs, sums, n, ease_l2, self.ease_max_books)
        pairs, sums = self.counts()
        sims = similarity(pairs, sums, similarity_kind, self.n_users, min_common)
        return top_neighbours(sims, n)

    def release(self) -> None:
        for counted in (self._counts, self._ease):
            for df in counted or ():
                df.unpersist()
        self._counts = self._ease = None


def fit(interactions: DataFrame, params: ItemCfParams) -> DataFrame:
    """The neighbour table ``(book_idx, rank, neighbour_idx, score)``, materialised (cached and counted)."""
    co = Cooccurrence(interactions, params)
    try:
        table = co.neighbours(params.similarity, params.neighbours, params.min_common, params.ease_l2).cache()
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
    broadcast_mb: float = BROADCAST_MB,
    works: Works | None = None,
    popularity_weight: float = 0.0,
    shelf_weights: str = "binary",
    liked_weight: float = 0.0,
) -> DataFrame:
    """Top-``k`` ``(user_idx, rank, book_idx, score, because_book_idx)`` for every user in ``interactions`` (or
    only those in ``users``): summed neighbour similarities of the user's shelves, each weighted as the table
    was fitted (``shelf_weights``, step 1; with ``popularity_weight`` β or ``liked_weight`` γ,
    scaled to 1 and added to β · readers / max readers + γ · liked share, both counted in ``interactions``,
    step 5); *every* shelved
    book is excluded. With ``works`` only one edition per work is a candidate (the neighbour table and the
    popular books are cut to them) and every edition of a shelved work is excluded: those editions join the
    shelves with weight 0, so they score nothing and are dropped like any shelved book (kernel and join alike).
    The neighbour table is broadcast to a numpy kernel when it fits in ``broadcast_mb``
    (:func:`recommend_kernel`), otherwise scored with Spark joins (:func:`recommend_join`); both give the same
    lists."""
    all_shelves = weighted(interactions, half_life_days, shelf_weights)
    shelves = shelves_of(all_shelves, users)
    popular = None
    if popularity_weight > 0 or liked_weight > 0:
        liked = candidates.liked_shares(interactions) if liked_weight > 0 else None
        popular = prior_weights(all_shelves, popularity_weight, liked, liked_weight)
    if works is not None:
        neighbours = works.candidates(neighbours, NEIGHBOUR_IDX)
        if popular is not None:
            popular = works.candidates(popular, C.BOOK_IDX)
        others = works.seen(shelves).join(shelves, on=[C.USER_IDX, C.BOOK_IDX], how="left_anti")
        shelves = shelves.unionByName(others.select(C.USER_IDX, C.BOOK_IDX, F.lit(0.0).alias(WEIGHT)))
    table = neighbour_arrays(neighbours, broadcast_mb)
    if table is None:
        return recommend_join(shelves, neighbours, k, popular)
    return recommend_kernel(shelves, table, k, prior=None if popular is None else prior_arrays(popular))


def shelves_of(weighted_shelves: DataFrame, users: DataFrame | None) -> DataFrame:
    """``(user_idx, book_idx, _w)``: the weighted shelves of ``users`` (every user's when None), the seeds scored."""
    if users is not None:
        weighted_shelves = weighted_shelves.join(
            users.select(C.USER_IDX).distinct(), on=C.USER_IDX, how="left_semi"
        )
    return weighted_shelves.select(C.USER_IDX, C.BOOK_IDX, WEIGHT)


PRIOR = "_prior"


def prior_weights(
    shelves: DataFrame, popularity_weight: float, liked: DataFrame | None = None, liked_weight: float = 0.0
) -> DataFrame:
    """``(book_idx, _prior)``: β · readers / max readers (+ γ · the book's liked share, from ``liked``:
    :func:`recspark.candidates.liked_shares`) for every book with a reader in ``shelves``."""
    readers = baselines.popularity(shelves)
    top = readers.agg(F.max(baselines.POPULARITY)).first()[0] or 1
    prior = F.lit(float(popularity_weight)) * F.col(baselines.POPULARITY) / F.lit(float(top))
    if liked is not None and liked_weight > 0:
        readers = readers.join(liked.select(C.BOOK_IDX, LIKED_SHARE), on=C.BOOK_IDX, how="left")
        prior = prior + F.lit(float(liked_weight)) * F.coalesce(F.col(LIKED_SHARE), F.lit(0.0)).cast("double")
    return readers.select(C.BOOK_IDX, prior.alias(PRIOR))


def recommend_join(
    shelves: DataFrame, neighbours: DataFrame, k: int, popular: DataFrame | None = None
) -> DataFrame:
    """The scores as a Spark join of ``(user_idx, book_idx, _w)`` shelves with the neighbour lists, grouped per
    ``(user, candidate)``, shelved books removed with a left-anti join, ranked by a window per user. With
    ``popular`` (``(book_idx, _prior)``, :func:`prior_weights`) the sums are scaled to 1 per user and the prior
    added, and each user's first ``k + n_u`` popular books join the candidates (prior alone, no explanation).
    Used when the neighbour table is too large to broadcast; the reference the kernel is tested against."""
    nb = neighbours.select(
        F.col(C.BOOK_IDX).alias(_OTHER), F.col(NEIGHBOUR_IDX).alias(C.BOOK_IDX), F.col(SCORE).alias("_sim")
    )
    contrib = (
        shelves.select(C.USER_IDX, F.col(C.BOOK_IDX).alias(_OTHER), WEIGHT)
        .join(nb, on=_OTHER, how="inner")
        .select(C.USER_IDX, C.BOOK_IDX, _OTHER, (F.col(WEIGHT) * F.col("_sim")).alias("_c"))
    )
    scored = (
        contrib.groupBy(C.USER_IDX, C.BOOK_IDX)
        .agg(F.sum("_c").alias(SCORE), F.max_by(_OTHER, "_c").alias(BECAUSE_IDX))
        .join(shelves.select(C.USER_IDX, C.BOOK_IDX), on=[C.USER_IDX, C.BOOK_IDX], how="left_anti")
        .where(F.col(SCORE) > 0)  # as the kernel: only books the shelves speak for
    )
    if popular is not None:
        scored = scored.transform(with_prior(shelves, popular, k))
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


def with_prior(shelves: DataFrame, popular: DataFrame, k: int):
    """``(user_idx, book_idx, score, because)`` candidates -> the same with each user's scores scaled to a
    maximum of 1 plus the prior, and the user's first ``k + n_u`` popular books (by ``(-prior, book)``, shelved
    ones removed) added with their prior alone and no explanation. A book in both keeps its blended score (it is
    the larger) and its explanation, so the candidates are computed once (one union, one ``groupBy``)."""

    def add(scored: DataFrame) -> DataFrame:
        per_user = Window.partitionBy(C.USER_IDX).rowsBetween(
            Window.unboundedPreceding, Window.unboundedFollowing
        )
        blended = (
            scored.withColumn("_max", F.max(SCORE).over(per_user))
            .join(popular, on=C.BOOK_IDX, how="left")
            .select(
                C.USER_IDX,
                C.BOOK_IDX,
                (F.col(SCORE) / F.col("_max") + F.coalesce(F.col(PRIOR), F.lit(0.0))).alias(SCORE),
                BECAUSE_IDX,
            )
        )
        order = Window.orderBy(F.col(PRIOR).desc(), F.col(C.BOOK_IDX).asc()).rowsBetween(
            Window.unboundedPreceding, Window.currentRow
        )
        n_u = shelves.groupBy(C.USER_IDX).agg(F.count(F.lit(1)).alias("_n"))
        depth = n_u.agg(F.max("_n")).first()[0] or 0
        # a global window over at most k + max n_u rows (the head of the popular order), not over the catalogue
        head = (
            popular.orderBy(F.col(PRIOR).desc(), F.col(C.BOOK_IDX).asc())
            .limit(k + depth)
            .withColumn("_pop_rank", F.row_number().over(order))
        )
        extra = (
            n_u.join(F.broadcast(head), on=F.col("_pop_rank") <= F.col("_n") + F.lit(k), how="inner")
            .select(
                C.USER_IDX, C.BOOK_IDX, F.col(PRIOR).alias(SCORE), F.lit(None).cast("int").alias(BECAUSE_IDX)
            )
            .join(shelves.select(C.USER_IDX, C.BOOK_IDX), on=[C.USER_IDX, C.BOOK_IDX], how="left_anti")
        )
        return (
            blended.unionByName(extra)
            .groupBy(C.USER_IDX, C.BOOK_IDX)
            .agg(F.max(SCORE).alias(SCORE), F.max_by(BECAUSE_IDX, SCORE).alias(BECAUSE_IDX))
            .select(C.USER_IDX, C.BOOK_IDX, SCORE, BECAUSE_IDX)
        )

    return add


@dataclass(frozen=True)
class Prior:
    """The popularity prior in arrays: ``weight[b]`` = β · readers / max readers (0 past the end or without
    readers), ``order`` = the books with readers by ``(-weight, book)``."""

    weight: np.ndarray  # float64
    order: np.ndarray  # int64


def prior_arrays(popular: DataFrame) -> Prior:
    """:class:`Prior` from ``(book_idx, _prior)`` (one row per book with readers)."""
    table = popular.select(F.col(C.BOOK_IDX).cast("int"), F.col(PRIOR).cast("double")).toArrow()
    return _prior(table.column(0).to_numpy().astype(np.int64), table.column(1).to_numpy())


def _prior(book: np.ndarray, value: np.ndarray) -> Prior:
    weight = np.zeros(int(book.max(initial=-1)) + 1, dtype=np.float64)
    weight[book] = value
    return Prior(weight, book[np.lexsort((book, -value))])


def recommend_configured(
    train: DataFrame,
    neighbours: DataFrame,
    params: ItemCfParams,
    k: int,
    users: DataFrame | None = None,
    works: Works | None = None,
    liked: bool = True,
) -> DataFrame:
    """:func:`recommend` with the settings of the configuration ``params`` the ``neighbours`` table was fitted
    with (shelf weights, time decay, popularity prior, and its liked-share prior only when ``liked``): the lists a
    run with that configuration makes."""
    return recommend(
        train,
        neighbours,
        k,
        users=users,
        works=works,
        half_life_days=params.half_life_days,
        popularity_weight=params.popularity_weight,
        shelf_weights=params.shelf_weights,
        liked_weight=params.liked_weight if liked else 0.0,
    )


def recommend_each_prior(
    interactions: DataFrame,
    neighbours: DataFrame,
    k: int,
    priors: list[tuple[float, float]],
    users: DataFrame | None = None,
    broadcast_mb: float = BROADCAST_MB,
    shelf_weights: str = "binary",
    half_life_days: float | None = None,
) -> Iterator[tuple[tuple[float, float], DataFrame]]:
    """``((β, γ), lists)`` for each popularity weight β and liked-share weight γ of ``priors`` in turn:
    :func:`recommend`'s lists (no works; the shelves weighed by ``shelf_weights`` and ``half_life_days``), from
    one count of readers and liked shares and, on the kernel path, one collected neighbour table, instead of one
    of each per prior (the tuning's prior sweeps). Each prior is computed as :func:`prior_weights` computes it,
    so the lists are the same. Lists are lazy: score one before the next."""
    all_shelves = weighted(interactions, half_life_days, shelf_weights)
    shelves = shelves_of(all_shelves, users)
    liked = candidates.liked_shares(interactions).cache() if any(g > 0 for _, g in priors) else None
    try:
        table = neighbour_arrays(neighbours, broadcast_mb)
        if table is None:
            for beta, gamma in priors:
                popular = prior_weights(all_shelves, beta, liked, gamma)
                yield (beta, gamma), recommend_join(shelves, neighbours, k, popular)
            return
        readers = baselines.popularity(all_shelves).select(
            F.col(C.BOOK_IDX).cast("int"), F.col(baselines.POPULARITY).cast("double")
        )
        if liked is not None:
            readers = readers.join(liked.select(C.BOOK_IDX, LIKED_SHARE), on=C.BOOK_IDX, how="left")
        counted = readers.toArrow()
        book = counted.column(0).to_numpy().astype(np.int64)
        n = counted.column(1).to_numpy()
        share = (
            np.nan_to_num(counted.column(2).to_numpy(zero_copy_only=False).astype(np.float64))
            if liked is not None
            else np.zeros(len(book))
        )
        top = float(n.max(initial=0.0) or 1.0)
        for beta, gamma in priors:
            value = float(beta) * n / top + (float(gamma) * share if gamma > 0 else 0.0)
            yield (beta, gamma), recommend_kernel(shelves, table, k, prior=_prior(book, value))
    finally:
        if liked is not None:
            liked.unpersist()


@dataclass(frozen=True)
class NeighbourArrays:
    """The neighbour table in CSR form: book ``j``'s neighbours are ``neighbour[indptr[j]:indptr[j+1]]`` with
    similarities ``sim[...]`` (``indptr`` covers every book index up to the largest one seen)."""

    indptr: np.ndarray  # int64, n_books + 1
    neighbour: np.ndarray  # int32
    sim: np.ndarray  # float32

    @property
    def n_books(self) -> int:
        return len(self.indptr) - 1


def neighbour_arrays(neighbours: DataFrame, budget_mb: float = BROADCAST_MB) -> NeighbourArrays | None:
    """The neighbour table collected into :class:`NeighbourArrays`, or None when its ``8`` bytes per entry
    exceed ``budget_mb`` (each Python worker holds one copy)."""
    n_rows = neighbours.count()
    if n_rows * 8 > budget_mb * 2**20:
        log.info(
            "item-CF: %s neighbour rows exceed the %g MiB broadcast budget: scoring with joins",
            f"{n_rows:,}",
            budget_mb,
        )
        return None
    table = neighbours.select(
        F.col(C.BOOK_IDX).cast("int"), F.col(NEIGHBOUR_IDX).cast("int"), F.col(SCORE).cast("float")
    ).toArrow()
    book = table.column(0).to_numpy()
    nbr = table.column(1).to_numpy()
    sim = table.column(2).to_numpy()
    n_books = int(max(book.max(initial=-1), nbr.max(initial=-1))) + 1
    order = np.argsort(book, kind="stable")
    counts = np.bincount(book, minlength=n_books)
    indptr = np.zeros(n_books + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return NeighbourArrays(indptr, np.ascontiguousarray(nbr[order]), np.ascontiguousarray(sim[order]))


def score_user(
    books: np.ndarray, weights: np.ndarray, table: NeighbourArrays, k: int, prior: Prior | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One user's top-``k`` ``(book, score, because)`` from their shelved ``books`` and ``weights``: the CSR rows
    of the shelved books are gathered, summed per candidate (a dense ``bincount`` when the catalogue is at most
    four times the gathered entries, else a sort), shelved books dropped, the best ``k`` ranked by
    ``(-score, book)``; ``because`` is the shelved book with the largest contribution (ties: smaller index).
    With ``prior`` the sums are scaled to 1 and the prior added, and the first ``k + n_u`` books of its order
    (shelved ones dropped) are candidates too, with their prior alone and ``because`` -1."""
    shelved = books
    inside = books < table.n_books  # a book without a row in the table has no neighbours
    books, weights = books[inside], weights[inside]
    pos, counts = csr_positions(table.indptr, books)
    total = len(pos)
    if k <= 0 or (total == 0 and prior is None):
        return _EMPTY_I, _EMPTY_F, _EMPTY_I
    cand = table.neighbour[pos]
    contrib = table.sim[pos] * np.repeat(weights, counts)
    if total == 0:
        ids, scores = _EMPTY_I, _EMPTY_F
    elif table.n_books <= 4 * total:
        acc = np.bincount(cand, weights=contrib, minlength=table.n_books)
        acc[books] = 0.0
        ids = np.flatnonzero(acc > 0)
        scores = acc[ids]
    else:
        ids, inverse = np.unique(cand, return_inverse=True)
        scores = np.bincount(inverse, weights=contrib)
        keep = (scores > 0) & ~np.isin(ids, books)
        ids, scores = ids[keep], scores[keep]
    own_ids = ids
    if prior is not None:
        if len(ids):
            scores = scores / scores.max() + _prior_of(prior, ids)
        head = prior.order[: k + len(shelved)]
        head = head[~np.isin(head, shelved) & ~np.isin(head, ids)]
        ids = np.concatenate([ids, head])
        scores = np.concatenate([scores, prior.weight[head]])
    if len(ids) > k:
        threshold = np.partition(scores, len(ids) - k)[len(ids) - k]
        tied_or_better = scores >= threshold
        ids, scores = ids[tied_or_better], scores[tied_or_better]
    order = np.lexsort((ids, -scores))[:k]
    ids, scores = ids[order], scores[order]
    because = np.full(len(ids), -1, dtype=np.int64)
    shown = np.isin(cand, own_ids) & np.isin(cand, ids)
    if shown.any():
        c, v, seed = cand[shown], contrib[shown], np.repeat(books, counts)[shown]
        best = np.lexsort((seed, -v, c))
        firsts, at = np.unique(c[best], return_index=True)
        where = np.searchsorted(firsts, ids).clip(0, len(firsts) - 1)
        own = firsts[where] == ids
        because[own] = seed[best][at][where[own]]
    return ids, scores, because


def _prior_of(prior: Prior, ids: np.ndarray) -> np.ndarray:
    """``prior.weight`` at ``ids`` (0 past its end: a book nobody in the data read)."""
    out = np.zeros(len(ids), dtype=np.float64)
    inside = ids < len(prior.weight)
    out[inside] = prior.weight[ids[inside]]
    return out


_EMPTY_I = np.zeros(0, dtype=np.int64)
_EMPTY_F = np.zeros(0, dtype=np.float64)
_SHELF = "_shelf"
KERNEL_SCHEMA = T.StructType(
    [
        T.StructField(C.USER_IDX, T.IntegerType(), False),
        T.StructField(RANK, T.IntegerType(), False),
        T.StructField(C.BOOK_IDX, T.IntegerType(), False),
        T.StructField(SCORE, T.FloatType(), False),
        T.StructField(BECAUSE_IDX, T.IntegerType(), True),  # null: picked by the popularity prior alone
    ]
)


def _kernel(bc_table, k: int, bc_prior=None):
    """The ``mapInArrow`` function: batches of ``(user_idx, [(book_idx, _w)])`` -> top-k rows per user."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        table: NeighbourArrays = bc_table.value
        prior: Prior | None = None if bc_prior is None else bc_prior.value
        for batch in batches:
            users = batch.column(0).to_numpy(zero_copy_only=False)
            lists = batch.column(1)
            offsets = lists.offsets.to_numpy()
            offsets = offsets - offsets[0]
            flat = lists.flatten()
            books = flat.field(0).to_numpy(zero_copy_only=False).astype(np.int64)
            weights = flat.field(1).to_numpy(zero_copy_only=False)
            out_u, out_r, out_b, out_s, out_c = [], [], [], [], []
            for i, user in enumerate(users):
                lo, hi = offsets[i], offsets[i + 1]
                ids, scores, because = score_user(books[lo:hi], weights[lo:hi], table, k, prior)
                if len(ids):
                    out_u.append(np.full(len(ids), user, dtype=np.int32))
                    out_r.append(np.arange(1, len(ids) + 1, dtype=np.int32))
                    out_b.append(ids.astype(np.int32))
                    out_s.append(scores.astype(np.float32))
                    out_c.append(because.astype(np.int32))
            if not out_u:
                continue
            because = np.concatenate(out_c)
            yield pa.RecordBatch.from_arrays(
                [pa.array(np.concatenate(a)) for a in (out_u, out_r, out_b, out_s)]
                + [pa.array(because, mask=because < 0)],
                schema=pa.schema([(f.name, t) for f, t in zip(KERNEL_SCHEMA.fields, _ARROW_TYPES)]),
            )

    return run


_ARROW_TYPES = (pa.int32(), pa.int32(), pa.int32(), pa.float32(), pa.int32())


def recommend_kernel(
    shelves: DataFrame,
    table: NeighbourArrays,
    k: int,
    partitions: int | None = None,
    prior: Prior | None = None,
) -> DataFrame:
    """The scores from a broadcast :class:`NeighbourArrays` (and :class:`Prior`) and each user's shelves gathered
    into one list (``collect_list`` per user), scored user by user with :func:`score_user` in ``mapInArrow``."""
    spark = shelves.sparkSession
    bc_table = spark.sparkContext.broadcast(table)
    bc_prior = None if prior is None else spark.sparkContext.broadcast(prior)
    parts = partitions or max(2, spark.sparkContext.defaultParallelism * 2)
    lists = shelves.groupBy(C.USER_IDX).agg(
        F.collect_list(
            F.struct(
                F.col(C.BOOK_IDX).cast("int").alias(C.BOOK_IDX), F.col(WEIGHT).cast("double").alias(WEIGHT)
            )
        ).alias(_SHELF)
    )
    return (
        lists.select(F.col(C.USER_IDX).cast("int"), _SHELF)
        .repartition(parts)
        .mapInArrow(_kernel(bc_table, k, bc_prior), KERNEL_SCHEMA)
    )
