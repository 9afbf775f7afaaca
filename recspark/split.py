"""Deterministic train/test splits that check themselves.

Every split is a pure function of the data and the seed (a hash of ``(seed, user, book)`` decides, never
``rand()`` whose values depend on partitioning), and the caller persists both sides before training, because
ALS needs deterministic input.

* ``holdout``: per user, a fraction of the books (at least one, never all) goes to test.
* ``leave_last``: per user, the N most recently added books go to test (needs timestamps).
* ``time_cutoff``: everything added after a global cutoff goes to test, for users and books seen before.
* ``users``: a fraction of users is held out for validation/test; they keep part of their history in train
  (so the model knows them) and the rest is what they are evaluated on.

:func:`check_split` asserts the invariants: no test pair in train, no train event after a temporal cutoff,
every evaluated user has history in train.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recspark import columns as C

_H = "_h"


def _hash(seed: int, *cols: str) -> F.Column:
    """Uniform in [0, 1) from a hash of the seed and the columns (partitioning-independent)."""
    h = F.xxhash64(F.lit(seed), *[F.col(c) for c in cols])
    return (F.abs(h % F.lit(1_000_003)) / F.lit(1_000_003.0)).cast("double")


@dataclass
class Split:
    train: DataFrame
    test: DataFrame
    kind: str
    cutoff: str | None = None


def holdout(df: DataFrame, fraction: float = 0.2, seed: int = 42, min_user: int = 2) -> Split:
    """Per user: ``ceil(fraction * n)`` books to test (users with fewer than ``min_user`` stay in train)."""
    w = Window.partitionBy(C.USER_IDX).orderBy(F.col(_H), F.col(C.BOOK_IDX))
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
        train=ranked.where(~is_test).select(*cols), test=ranked.where(is_test).select(*cols), kind="holdout"
    )


def leave_last(df: DataFrame, n: int = 1, min_user: int = 2, time_col: str = C.DATE_ADDED) -> Split:
    """Per user: the ``n`` most recent books to test (ties broken by book index)."""
    w = Window.partitionBy(C.USER_IDX).orderBy(F.col(time_col).desc(), F.col(C.BOOK_IDX).desc())
    cnt = Window.partitionBy(C.USER_IDX).rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    ranked = df.withColumn("_rank", F.row_number().over(w)).withColumn("_n", F.count(F.lit(1)).over(cnt))
    is_test = (F.col("_n") >= min_user) & (F.col("_rank") <= F.least(F.lit(n), F.col("_n") - 1))
    cols = df.columns
    return Split(
        train=ranked.where(~is_test).select(*cols),
        test=ranked.where(is_test).select(*cols),
        kind="leave_last",
    )


def time_cutoff(df: DataFrame, cutoff: str, time_col: str = C.DATE_ADDED) -> Split:
    """Events up to ``cutoff`` train; later events of users and books known in train test."""
    ts = F.to_timestamp(F.lit(cutoff))
    train = df.where(F.col(time_col) <= ts)
    later = df.where(F.col(time_col) > ts)
    test = later.join(train.select(C.USER_IDX).distinct(), on=C.USER_IDX, how="left_semi").join(
        train.select(C.BOOK_IDX).distinct(), on=C.BOOK_IDX, how="left_semi"
    )
    return Split(train=train, test=test.select(*df.columns), kind="time_cutoff", cutoff=cutoff)


def users(
    df: DataFrame, fraction: float = 0.1, keep: float = 0.5, seed: int = 42, min_user: int = 2
) -> Split:
    """Hold out ``fraction`` of users; each keeps ``keep`` of their books in train, the rest is test."""
    chosen = _hash(seed + 1, C.USER_IDX) < fraction
    w = Window.partitionBy(C.USER_IDX).orderBy(F.col(_H), F.col(C.BOOK_IDX))
    cnt = Window.partitionBy(C.USER_IDX).rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    ranked = (
        df.withColumn(_H, _hash(seed, C.USER_IDX, C.BOOK_IDX))
        .withColumn("_rank", F.row_number().over(w))
        .withColumn("_n", F.count(F.lit(1)).over(cnt))
    )
    n_keep = F.greatest(F.lit(1), F.floor(F.col("_n") * keep))
    is_test = chosen & (F.col("_n") >= min_user) & (F.col("_rank") > n_keep)
    cols = df.columns
    return Split(
        train=ranked.where(~is_test).select(*cols), test=ranked.where(is_test).select(*cols), kind="users"
    )


class SplitError(AssertionError):
    pass


def check_split(split: Split, time_col: str = C.DATE_ADDED) -> dict[str, int]:
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
    if split.cutoff is not None:
        late = split.train.where(F.col(time_col) > F.to_timestamp(F.lit(split.cutoff))).count()
        if late:
            raise SplitError(f"{late} train events are after the cutoff {split.cutoff}")
    return {
        "train": split.train.count(),
        "test": split.test.count(),
        "test_users": split.test.select(C.USER_IDX).distinct().count(),
    }
