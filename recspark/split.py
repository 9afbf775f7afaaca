"""Deterministic train/test splits that check themselves.

Every split is a pure function of the data and the seed (a hash of ``(seed, user, book)`` decides, never
``rand()`` whose values depend on partitioning), and the caller persists both sides before training, because
ALS needs deterministic input. Both kinds hold out, per user, ``ceil(fraction * n)`` of the user's ``n`` books
(at least one, never all; users with fewer than ``min_user`` books stay in train):

* ``holdout`` (the default): which books is decided by the hash -- a random per-user holdout;
* ``temporal``: the user's most recently added books (``date_added``; ties by the hash) -- "what did they shelve
  next", which needs timestamps.

:func:`check_split` asserts the invariants: no test pair in train, every evaluated user has history in train.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recspark import columns as C

_H = "_h"
KINDS = ("holdout", "temporal")


def _hash(seed: int, *cols: str) -> F.Column:
    """Uniform in [0, 1) from a hash of the seed and the columns (partitioning-independent)."""
    h = F.xxhash64(F.lit(seed), *[F.col(c) for c in cols])
    return (F.abs(h % F.lit(1_000_003)) / F.lit(1_000_003.0)).cast("double")


@dataclass
class Split:
    train: DataFrame
    test: DataFrame
    kind: str


class NoTimestamps(ValueError):
    """A temporal split was asked for on interactions without ``date_added``."""


def _per_user(df: DataFrame, fraction: float, seed: int, min_user: int, first: list, kind: str) -> Split:
    """The first ``ceil(fraction * n)`` of each user's ``n`` books in the order ``first`` (then the hash) to test."""
    w = Window.partitionBy(C.USER_IDX).orderBy(*first, F.col(_H), F.col(C.BOOK_IDX))
    n = Window.partitionBy(C.USER_IDX).rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    ranked = (
        df.withColumn(_H, _hash(seed, C.USER_IDX, C.BOOK_IDX))
        .withColumn("_rank", F.row_number().over(w))
        .withColumn("_n", F.count(F.lit(1)).over(n))
    )
    n_test = F.least(F.ceil(F.col("_n") * fraction), F.col("_n") - 1)
    is_test = (F.col("_n") >= min_user) & (F.col("_rank") <= n_test)
    cols = df.columns
    return Split(
        train=ranked.where(~is_test).select(*cols), test=ranked.where(is_test).select(*cols), kind=kind
    )


def holdout(df: DataFrame, fraction: float = 0.2, seed: int = 42, min_user: int = 2) -> Split:
    """Per user: ``ceil(fraction * n)`` books chosen by the hash to test."""
    return _per_user(df, fraction, seed, min_user, [], "holdout")


def temporal(df: DataFrame, fraction: float = 0.2, seed: int = 42, min_user: int = 2) -> Split:
    """Per user: the ``ceil(fraction * n)`` most recently added books to test (undated books count as oldest)."""
    if C.DATE_ADDED not in df.columns or df.where(F.col(C.DATE_ADDED).isNotNull()).limit(1).count() == 0:
        raise NoTimestamps(
            "a temporal split needs interactions with date_added; these have none (use --split holdout)"
        )
    return _per_user(df, fraction, seed, min_user, [F.col(C.DATE_ADDED).desc_nulls_last()], "temporal")


def make(kind: str, df: DataFrame, fraction: float = 0.2, seed: int = 42) -> Split:
    """The split named ``kind`` (one of :data:`KINDS`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown split {kind!r}; choose one of {', '.join(KINDS)}")
    return (holdout if kind == "holdout" else temporal)(df, fraction, seed)


class SplitError(AssertionError):
    pass


def check_split(split: Split) -> dict[str, int]:
    """Assert the split's invariants; return its sizes."""
    key = [C.USER_IDX, C.BOOK_IDX]
    overlap = split.test.select(*key).join(split.train.select(*key), on=key, how="inner").count()
    if overlap:
        raise SplitError(f"{overlap} test pairs are also in train")
    cold = (
        split.test.select(C.USER_IDX)
        .distinct()
        .join(split.train.select(C.USER_IDX).distinct(), on=C.USER_IDX, how="left_anti")
        .count()
    )
    if cold:
        raise SplitError(f"{cold} evaluated users have no history in train")
    return {
        "train": split.train.count(),
        "test": split.test.count(),
        "test_users": split.test.select(C.USER_IDX).distinct().count(),
    }
