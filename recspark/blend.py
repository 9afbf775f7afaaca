"""A blend of ALS, item-CF and popularity over their candidates: the few-parameter alternative to the ranker.

Algorithm, on the candidates of :mod:`recspark.candidates` (each source's top-``n`` per user, shelved books
excluded, with ``<source>_score`` and ``<source>_rank``):

1. **Scale.** Each source's scores for a user are divided by that user's top score of the source (its
   magnitude; 1 when it is 0), so that one weight holds for light and heavy users alike (item-CF's sums grow
   with the user's shelves, ALS's dot products do not).
2. **Fill.** A book a source did not propose gets that source's lowest proposed score for the user: an upper
   bound of what the source gives it; 0 when the source proposed fewer than ``n`` books (item-CF lists books
   with a positive sum only, so an unproposed book has at most 0).
3. **Blend.** ``score = (1 - p) · ((1 - w) · als / top_als + w · itemcf / top_itemcf) + p · pop / top_pop``;
   each user's best ``k`` by score (ties to the smaller book index).

``w`` (item-CF's share) and ``p`` (popularity's) are chosen together on the validation split from
:func:`grid` (:func:`recspark.twostage.validate`), like any other hyper-parameter of the search, a ``p`` above 0
only when it beats the best ``w`` without popularity by :data:`MIN_SHARE_Z` standard errors: the blend is
kept only when its best point scores higher than every single model on the same validation users. Why it is
here: in plain numpy beside the product's split (``bench/blend.py``), the blend chosen on validation beat the
better of ALS and EASE on the held-out test of every data set tried, and with ``p`` it beat popularity by 15%
on heavy shelvers over a long tail, where popularity had been the best single model on validation; on the data
where popularity adds nothing, validation kept ``p`` at 0 (README, "Two-stage").

Bounds: per user at most ``n`` candidate rows per source; one aggregation per user for the scales and fills,
then one window per ``(blend, user)`` over those rows (``len(blends)`` times the rows when several blends are
scored at once: 26 of them in a search). No stage runs in one task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from recspark import columns as C
from recspark.candidates import top_k

SOURCES = ("als", "itemcf")  # (1 - w) · the first + w · the second
POPULARITY = "popularity"  # the optional third source, with share p
WEIGHTS = (0.2, 0.35, 0.5, 0.65, 0.8)  # item-CF's share; 0 and 1 alone are the single models themselves
POPULARITY_SHARES = (0.1, 0.2, 0.3)  # popularity's share p; with p > 0 also w 0 and w 1 are blends
# a popularity share is kept only when it beats the best blend without one by this many standard errors of the
# per-user NDCG differences on the fit users (the one-standard-error rule: in numpy, a share chosen by a 0.2%
# edge on validation scored 1.7% below the blend without it on the test of generated shelves,
# bench/results/blend.json)
MIN_SHARE_Z = 1.0
WEIGHT = "blend_weight"
BLEND = "blend"


@dataclass(frozen=True)
class Blend:
    """A fitted blend: item-CF's share ``weight`` and popularity's share ``popularity`` (what a ranker run
    publishes with instead of a learned model)."""

    weight: float
    popularity: float = 0.0

    @property
    def key(self) -> str:
        """The blend's name in :func:`ranked_by_weight` and the tuning record: ``"0.5"``, ``"1 p0.3"``."""
        return f"{self.weight:g}" if self.popularity == 0 else f"{self.weight:g} p{self.popularity:g}"


def grid(with_popularity: bool) -> tuple[Blend, ...]:
    """The blends a search scores: every weight of :data:`WEIGHTS`, and with popularity among the candidates'
    sources every share of :data:`POPULARITY_SHARES` with every weight from 0 to 1."""
    points = [Blend(w) for w in WEIGHTS]
    if with_popularity:
        points += [Blend(w, p) for p in POPULARITY_SHARES for w in (0.0, *WEIGHTS, 1.0)]
    return tuple(points)


def choose(
    on_fit: dict[Blend, float], share_z: Callable[[Blend, Blend], float]
) -> tuple[Blend, float | None]:
    """``(blend, z)``: the best of the scored blends ``on_fit`` (ties: less popularity, then the nearer an even
    mix of ALS and item-CF). When it has a popularity share, ``share_z(it, the best without one)`` (a paired z on
    the same users) must reach :data:`MIN_SHARE_Z`, else the best without one is chosen; ``z`` is None when no
    share was in question."""

    def best(blends: list[Blend]) -> Blend:
        return max(blends, key=lambda b: (on_fit[b], -b.popularity, -abs(b.weight - 0.5)))

    chosen = best(list(on_fit))
    if chosen.popularity == 0:
        return chosen, None
    plain = best([b for b in on_fit if b.popularity == 0])
    z = round(share_z(chosen, plain), 2)
    return (chosen if z >= MIN_SHARE_Z else plain), z


def _scaled(source: str, n: int) -> tuple[Column, Column, Column]:
    """(aggregates: the user's top score, lowest proposed score and number proposed by ``source``)."""
    proposed = F.col(f"{source}_rank") <= n
    score = F.when(proposed, F.col(f"{source}_score"))
    return (
        F.max(score).alias(f"_{source}_top"),
        F.min(score).alias(f"_{source}_low"),
        F.count(score).alias(f"_{source}_n"),
    )


def sources_of(cands: DataFrame) -> tuple[str, ...]:
    """The blend's sources among the candidates' columns: ALS and item-CF, and popularity when it proposed."""
    return SOURCES + ((POPULARITY,) if f"{POPULARITY}_rank" in cands.columns else ())


def normalised(cands: DataFrame, n: int) -> DataFrame:
    """``(user_idx, book_idx, als, itemcf[, popularity])``: each source's score of every candidate, filled and
    scaled (steps 1 and 2 of the module docstring)."""
    sources = sources_of(cands)
    stats = cands.groupBy(C.USER_IDX).agg(*[agg for s in sources for agg in _scaled(s, n)])
    cols = []
    for s in sources:
        top, low, count = F.col(f"_{s}_top"), F.col(f"_{s}_low"), F.col(f"_{s}_n")
        fill = F.when(count >= n, low).otherwise(F.lit(0.0))
        value = F.when(F.col(f"{s}_rank") <= n, F.col(f"{s}_score")).otherwise(fill)
        scale = F.when(F.coalesce(F.abs(top), F.lit(0.0)) > 0, F.abs(top)).otherwise(F.lit(1.0))
        cols.append((F.coalesce(value, F.lit(0.0)) / scale).cast("double").alias(s))
    return cands.join(stats, on=C.USER_IDX, how="inner").select(C.USER_IDX, C.BOOK_IDX, *cols)


def ranked_by_weight(cands: DataFrame, blends: tuple[Blend, ...], k: int, n: int) -> DataFrame:
    """``(blend_weight, user_idx, rank, book_idx, score)``: each user's top ``k`` under every blend, at once
    (``blend_weight`` holds :attr:`Blend.key`, the group column of :func:`recspark.metrics.ranking_metrics_by`)."""
    spark = cands.sparkSession
    scaled = normalised(cands, n)
    if any(b.popularity for b in blends) and POPULARITY not in scaled.columns:
        raise ValueError("a blend with a popularity share needs popularity among the candidates' sources")
    ws = spark.createDataFrame(
        [(b.key, float(b.weight), float(b.popularity)) for b in blends],
        f"{WEIGHT} string, _w double, _p double",
    )
    first, second = SOURCES
    two = (1 - F.col("_w")) * F.col(first) + F.col("_w") * F.col(second)
    score = (1 - F.col("_p")) * two + F.col("_p") * F.col(POPULARITY) if POPULARITY in scaled.columns else two
    scored = scaled.crossJoin(F.broadcast(ws)).select(WEIGHT, C.USER_IDX, C.BOOK_IDX, score.alias(BLEND))
    return top_k(scored, k, BLEND, by=(WEIGHT,))


def ranked(cands: DataFrame, fitted: Blend, k: int, n: int) -> DataFrame:
    """``(user_idx, rank, book_idx, score)``: each user's top ``k`` candidates under the blend ``fitted``."""
    return ranked_by_weight(cands, (fitted,), k, n).drop(WEIGHT)
