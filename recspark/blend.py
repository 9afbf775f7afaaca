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
3. **Blend.** ``score = (1 - w) · als / top_als + w · itemcf / top_itemcf + γ · liked``; each user's best ``k``
   by score (ties to the smaller book index). ``liked`` is the book's liked share (``book_liked_share`` of
   :mod:`recspark.candidates`: how often a shelf of it is liked, shrunk towards the overall share). ALS and
   item-CF rank what a user will shelve; a shelved book is relevant only when it is liked (not rated below 4
   stars, and read where the data records reading), and books differ in that: on goodbooks-10k's real
   histograms the share of 4-5 stars is 0.54 at the 5th percentile of books and 0.86 at the 95th, and to-read
   shelves against ratings put the standard deviation of a book's logit read share near 1. On unrated to-read
   shelves every book has the same share and γ changes nothing.

``w`` and ``γ`` are chosen on the validation split from :data:`WEIGHTS` x :data:`PRIORS` (:data:`PRIORS` only
when the liked share differs between the candidates; :func:`recspark.twostage.blend_check`), like any other
hyper-parameter of the search, with γ :data:`DEFAULT_PRIOR` kept unless another γ is a standard error ahead, and
then an even mix (w 0.5) moved one weight towards the best for every half standard error of the best's lead, on
the scores extrapolated from a thinner fit to the published run's data
(:func:`recspark.twostage.extrapolated_choice`); the blend is kept unless, cross-fitted (each half of the
validation users ranked with the weight chosen on the other half), the best single model is a standard error ahead
of it on those users (:data:`recspark.twostage.BLEND_MARGIN_Z`).
Why it is here: in plain numpy beside the product's split
(``bench/blend.py``), the weight chosen on validation beat the better of ALS and EASE on the held-out test of
every data set tried (README, "Two-stage").

Serving: a run that publishes the blend records ``w``, ``γ`` and ``n`` in ``gold/serving_model.blend`` and every
book's liked share in ``gold/serving_books``, and the consumer folds a new reader in with the same three steps in
numpy (:func:`recspark.foldin.blend_scores`; a test checks it against :func:`ranked` on one reader).

Bounds: per user at most ``2n`` candidate rows; one aggregation per user for the scales and fills, then one
window per ``(setting, user)`` over those rows (``len(settings) · 2n`` rows per user when several settings are
scored at once). No stage runs in one task.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from recspark import columns as C
from recspark.candidates import LIKED_SHARE, magnitude, top_k

SOURCES = ("als", "itemcf")  # (1 - w) · the first + w · the second
WEIGHTS = (0.2, 0.35, 0.5, 0.65, 0.8)  # item-CF's share; 0 and 1 are the single models themselves
# γ, the weight of the book's liked share. Both scores are scaled to 1 at the user's top candidate, and on rated
# data the liked shares of the middle half of books span about 0.13 (0.66-0.79 on goodbooks-10k): γ 0.3 moves a
# book by a few hundredths (a nudge among near ties), γ 3 by about 0.4 (the share ranks the candidates); where
# reading is recorded the shares spread wider (their logits by about 1), and the same γ weighs them more
PRIORS = (0.0, 0.3, 1.0, 3.0)
# the γ kept unless another is a standard error ahead of it (recspark.twostage.blend_check), as the weight keeps an
# even mix: the nudge chose γ 0.3 on validation on every rated or read-recording shape measured but one, and there
# (real MovieLens 100k ratings) the γ 1 it chose by 1.2% lost 6% on the test (docs/quality.md, "Real ratings")
DEFAULT_PRIOR = 0.3
SETTING = "blend_setting"  # the group column of several settings scored at once (their labels)
BLEND = "blend"


@dataclass(frozen=True)
class Blend:
    """A fitted blend: item-CF's share ``weight`` and the liked share's weight ``prior`` (γ), what a ranker run
    publishes with instead of a learned model."""

    weight: float
    prior: float = 0.0

    @property
    def label(self) -> str:
        """``"0.5"`` (no liked share), ``"0.5+0.3"`` (γ 0.3): the key of its scores in a tuning record."""
        return f"{self.weight:g}" if self.prior == 0 else f"{self.weight:g}+{self.prior:g}"


def grid(with_prior: bool) -> tuple[Blend, ...]:
    """The settings the search scores: every weight, with every γ of :data:`PRIORS` when ``with_prior``."""
    return tuple(Blend(w, p) for p in (PRIORS if with_prior else (0.0,)) for w in WEIGHTS)


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
    """``(user_idx, book_idx, als, itemcf, book_liked_share)``: each source's score of every candidate, filled
    and scaled (steps 1 and 2 of the module docstring), and the book's liked share (0 when the candidates lack
    it)."""
    stats = cands.groupBy(C.USER_IDX).agg(*[agg for s in SOURCES for agg in _scaled(s, n)])
    cols = []
    for s in SOURCES:
        top, low, count = F.col(f"_{s}_top"), F.col(f"_{s}_low"), F.col(f"_{s}_n")
        fill = F.when(count >= n, low).otherwise(F.lit(0.0))
        value = F.when(F.col(f"{s}_rank") <= n, F.col(f"{s}_score")).otherwise(fill)
        cols.append((F.coalesce(value, F.lit(0.0)) / magnitude(top)).cast("double").alias(s))
    liked = F.col(LIKED_SHARE) if LIKED_SHARE in cands.columns else F.lit(0.0)
    return cands.join(stats, on=C.USER_IDX, how="inner").select(
        C.USER_IDX, C.BOOK_IDX, *cols, F.coalesce(liked, F.lit(0.0)).cast("double").alias(LIKED_SHARE)
    )


def ranked_by_setting(cands: DataFrame, settings: tuple[Blend, ...], k: int, n: int) -> DataFrame:
    """``(blend_setting, user_idx, rank, book_idx, score)``: each user's top ``k`` under every setting, at once
    (``blend_setting`` the setting's :attr:`Blend.label`, the group column of
    :func:`recspark.metrics.ranking_metrics_by`)."""
    spark = cands.sparkSession
    ws = spark.createDataFrame(
        [(b.label, float(b.weight), float(b.prior)) for b in settings],
        f"{SETTING} string, _w double, _p double",
    )
    first, second = SOURCES
    scored = (
        normalised(cands, n)
        .crossJoin(F.broadcast(ws))
        .select(
            SETTING,
            C.USER_IDX,
            C.BOOK_IDX,
            (
                (1 - F.col("_w")) * F.col(first)
                + F.col("_w") * F.col(second)
                + F.col("_p") * F.col(LIKED_SHARE)
            ).alias(BLEND),
        )
    )
    return top_k(scored, k, BLEND, by=(SETTING,))


def ranked(cands: DataFrame, setting: Blend, k: int, n: int) -> DataFrame:
    """``(user_idx, rank, book_idx, score)``: each user's top ``k`` candidates under the blend ``setting``."""
    return ranked_by_setting(cands, (setting,), k, n).drop(SETTING)
