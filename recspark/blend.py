"""A blend of ALS and item-CF over their candidates: the one-parameter alternative to the learned ranker.

Algorithm, on the candidates of :mod:`recspark.candidates` (each source's top-``n`` per user, shelved books
excluded, with ``<source>_score`` and ``<source>_rank``; item-CF's with the popularity prior the search chose for
it, :class:`recspark.twostage.Sources`):

1. **Scale.** Each source's scores for a user are divided by that user's top score of the source (its
   magnitude; 1 when it is 0), so that one weight holds for light and heavy users alike (item-CF's sums grow
   with the user's shelves, ALS's dot products do not).
2. **Fill.** A book a source did not propose gets that source's lowest proposed score for the user: an upper
   bound of what the source gives it; 0 when the source proposed fewer than ``n`` books (item-CF lists books
   with a positive sum only, so an unproposed book has at most 0).
3. **Blend.** ``score = (1 - w) · als / top_als + w · itemcf / top_itemcf``; each user's best ``k`` by score
   (ties to the smaller book index).

``w`` is chosen on the validation split from :data:`WEIGHTS` (:func:`recspark.twostage.blend_check`), like any
other hyper-parameter of the search: the blend is kept only when, cross-fitted (each half of the validation users
ranked with the weight best on the other half), it scores higher than every single model on those users. Why it is here: in plain numpy beside the product's split
(``bench/blend.py``), the weight chosen on validation beat the better of ALS and EASE on the held-out test of
every data set tried (README, "Two-stage").

Bounds: per user at most ``2n`` candidate rows; one aggregation per user for the scales and fills, then one
window per ``(weight, user)`` over those rows (``len(weights) · 2n`` rows per user when several weights are
scored at once). No stage runs in one task.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from recspark import columns as C
from recspark.candidates import top_k

SOURCES = ("als", "itemcf")  # (1 - w) · the first + w · the second
WEIGHTS = (0.2, 0.35, 0.5, 0.65, 0.8)  # item-CF's share; 0 and 1 are the single models themselves
WEIGHT = "blend_weight"
BLEND = "blend"


@dataclass(frozen=True)
class Blend:
    """A fitted blend: item-CF's share ``weight`` (what a ranker run publishes with instead of a learned model)."""

    weight: float


def _scaled(source: str, n: int) -> tuple[Column, Column, Column]:
    """(aggregates: the user's top score, lowest proposed score and number proposed by ``source``)."""
    proposed = F.col(f"{source}_rank") <= n
    score = F.when(proposed, F.col(f"{source}_score"))
    return (
        F.max(score).alias(f"_{source}_top"),
        F.min(score).alias(f"_{source}_low"),
        F.count(score).alias(f"_{source}_n"),
    )


def normalised(cands: DataFrame, n: int) -> DataFrame:
    """``(user_idx, book_idx, als, itemcf)``: each source's score of every candidate, filled and scaled (steps 1
    and 2 of the module docstring)."""
    stats = cands.groupBy(C.USER_IDX).agg(*[agg for s in SOURCES for agg in _scaled(s, n)])
    cols = []
    for s in SOURCES:
        top, low, count = F.col(f"_{s}_top"), F.col(f"_{s}_low"), F.col(f"_{s}_n")
        fill = F.when(count >= n, low).otherwise(F.lit(0.0))
        value = F.when(F.col(f"{s}_rank") <= n, F.col(f"{s}_score")).otherwise(fill)
        scale = F.when(F.coalesce(F.abs(top), F.lit(0.0)) > 0, F.abs(top)).otherwise(F.lit(1.0))
        cols.append((F.coalesce(value, F.lit(0.0)) / scale).cast("double").alias(s))
    return cands.join(stats, on=C.USER_IDX, how="inner").select(C.USER_IDX, C.BOOK_IDX, *cols)


def ranked_by_weight(cands: DataFrame, weights: tuple[float, ...], k: int, n: int) -> DataFrame:
    """``(blend_weight, user_idx, rank, book_idx, score)``: each user's top ``k`` under every weight, at once
    (``blend_weight`` as a string, the group column of :func:`recspark.metrics.ranking_metrics_by`)."""
    spark = cands.sparkSession
    ws = spark.createDataFrame([(str(w), float(w)) for w in weights], f"{WEIGHT} string, _w double")
    first, second = SOURCES
    scored = (
        normalised(cands, n)
        .crossJoin(F.broadcast(ws))
        .select(
            WEIGHT,
            C.USER_IDX,
            C.BOOK_IDX,
            ((1 - F.col("_w")) * F.col(first) + F.col("_w") * F.col(second)).alias(BLEND),
        )
    )
    return top_k(scored, k, BLEND, by=(WEIGHT,))


def ranked(cands: DataFrame, weight: float, k: int, n: int) -> DataFrame:
    """``(user_idx, rank, book_idx, score)``: each user's top ``k`` candidates under the blend of ``weight``."""
    return ranked_by_weight(cands, (weight,), k, n).drop(WEIGHT)
