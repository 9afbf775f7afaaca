"""Baselines scored the same way as the model: global popularity and a recent-window trending list.

Both are expressed as rank-1 "factors" (user vector ``[1]``, item vector ``[popularity]``) so the same exact
top-K engine (:mod:`recspark.topk`) ranks them and excludes each user's seen books identically to the model.
Ties are broken by the smaller book index.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recspark import columns as C

POPULARITY = "popularity"


def popularity(train: DataFrame) -> DataFrame:
    """``(book_idx, popularity)``: number of distinct users who shelved the book in train."""
    return train.groupBy(C.BOOK_IDX).agg(F.countDistinct(C.USER_IDX).cast("double").alias(POPULARITY))


def trending(train: DataFrame, days: int = 180, time_col: str = C.DATE_ADDED) -> DataFrame:
    """``(book_idx, popularity)`` over the last ``days`` before the newest train event; needs timestamps."""
    newest = train.agg(F.max(time_col)).first()[0]
    if newest is None:
        raise ValueError("trending needs timestamps (the UCSD dedup JSON); these interactions have none")
    recent = train.where(F.col(time_col) > F.lit(newest) - F.expr(f"INTERVAL {days} DAYS"))
    return popularity(recent)


def as_factors(scores: DataFrame) -> DataFrame:
    """Popularity as rank-1 item factors for the top-K engine."""
    return scores.select(F.col(C.BOOK_IDX), F.array(F.col(POPULARITY).cast("float")).alias(C.FEATURES))


def constant_user_factors(users: DataFrame) -> DataFrame:
    return (
        users.select(F.col(C.USER_IDX))
        .distinct()
        .select(C.USER_IDX, F.array(F.lit(1.0).cast("float")).alias(C.FEATURES))
    )
