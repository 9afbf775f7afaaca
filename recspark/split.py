"""Deterministic train/test splits that check themselves.

Every split is a pure function of the data and the seed (a hash of ``(seed, user, book)`` decides, never
``rand()`` whose values depend on partitioning), and the caller persists both sides before training, because
ALS needs deterministic input. Both kinds hold out, per user, ``ceil(fraction * n)`` of the user's ``n`` books,
at most :data:`MAX_HELD_OUT` (at least one, never all; users with fewer than ``min_user`` books stay in train):

* ``holdout`` (the default): which books is decided by the hash -- a random per-user holdout;
* ``temporal``: the user's most recently added books (``date_added``; ties by the hash) -- "what did they shelve
  next", which needs timestamps.

**At most** :data:`MAX_HELD_OUT` **books per user.** NDCG@10 needs no more than 10 relevant books per user to reach
its ideal, so a heavy user's 20% (174 of 870 shelves) only takes data away from what the model is fitted on. The
search is fitted on what two holdouts leave (the evaluation's, then validation's), and an item model's validation
score falls steeply with the data it sees (numpy EASE on 300 generated heavy shelvers: NDCG@10 0.227 / 0.162 /
0.104 with 100% / 80% / 64% of the training rows, popularity 0.164-0.166 throughout; docs/quality.md, "Item-CF
and EASE"), so without a cap the search judged every model on 64% of a heavy user's books and the published one
sees 100%. With it a user with 870 books keeps 95% through both holdouts; a user with at most 100 books (dense raters,
``to_read`` shelves, sparse users) is held out exactly as before. Where users are few, the tuning split raises its
cap so that it holds out at least :data:`MIN_VALIDATION_ROWS` books in all (:func:`validation_cap`): 300 heavy
users give 40 books each, for more hits to choose on.

Sparse users are held out once, not twice (:class:`Sparse`): the evaluation split and the tuning split carved
from its training side would each take a book from a user with few books, leaving a user with 3 shelves one
shelf to be scored from, where no model but popularity can show what it does with the 2 the published run sees.
So users with fewer than :data:`SPARSE_BOOKS` books are divided by a hash of ``(seed, user)`` into two halves:
one half gives a book to evaluation only, the other to validation only (the tuning split passes the same seed
and the other half). Users with more books are held out in both, as before.

:func:`check_split` asserts the invariants: no test pair in train, every evaluated user has history in train.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recspark import columns as C

_H = "_h"
KINDS = ("holdout", "temporal")
SPARSE_BOOKS = 10  # users with fewer books are held out by evaluation or by validation, never both
# books a holdout takes from one user at most (2 x NDCG@10's 10: some held-out books are not liked)
MAX_HELD_OUT = 20
# the tuning split holds out at least this many books in all where users are too few for that at MAX_HELD_OUT each
# (validation_cap): 600 users' worth at the cap
MIN_VALIDATION_ROWS = 12_000


def _hash(seed: int, *cols: str) -> F.Column:
    """Uniform in [0, 1) from a hash of the seed and the columns (partitioning-independent)."""
    h = F.xxhash64(F.lit(seed), *[F.col(c) for c in cols])
    return (F.abs(h % F.lit(1_000_003)) / F.lit(1_000_003.0)).cast("double")


@dataclass
class Split:
    train: DataFrame
    test: DataFrame
    kind: str


@dataclass(frozen=True)
class Sparse:
    """Hold out a user with fewer than ``below`` books only when the hash of ``(seed, user)`` puts them in this
    split's half (``first``: below 0.5); the other half keeps all of its books in train."""

    seed: int
    first: bool
    below: int = SPARSE_BOOKS

    def held_out(self, n: F.Column) -> F.Column:
        in_first = _hash(self.seed, C.USER_IDX) < F.lit(0.5)
        return (n >= F.lit(self.below)) | (in_first if self.first else ~in_first)


def for_evaluation(seed: int) -> Sparse:
    """The evaluation split's half of the sparse users."""
    return Sparse(seed, first=True)


def describe(fraction: float) -> str:
    """The per-user holdout rule in words, as reports and the CLI state it."""
    return f"{fraction:.0%} of each user's books, at most {MAX_HELD_OUT}"


def left_after_holdout(n: int, fraction: float, max_held_out: int | None = MAX_HELD_OUT) -> int:
    """Books a user with ``n`` books keeps in train after a holdout of ``fraction`` (as :func:`_per_user`)."""
    cap = n - 1 if max_held_out is None else min(n - 1, max_held_out)
    return n if n < 2 else n - min(math.ceil(fraction * n), cap)


def validation_cap(n_users: int, min_rows: int | None = None) -> int:
    """The tuning split's per-user cap for ``n_users`` users: :data:`MAX_HELD_OUT`, raised where users are so few
    that the cap would leave fewer than ``min_rows`` held-out books in all (300 users: 40 each).

    Why: on few heavy users validation NDCG@10 rests on a few dozen hits (300 generated heavy shelvers, 20
    held-out books each: about 0.01, the default and the search's winner 1 standard error apart), and every choice
    of the search is made on them. Holding out more from each of them gives more hits to tell configurations
    apart, at the price of data the search fits on: a user with 870 books keeps 810 (93%) instead of 830 (95%).
    Where users are many the cap is unchanged (from 600 users at 12,000 rows), and a user's share is still at
    most the holdout's fraction. ``min_rows`` None: :data:`MIN_VALIDATION_ROWS`."""
    rows = MIN_VALIDATION_ROWS if min_rows is None else min_rows
    return max(MAX_HELD_OUT, math.ceil(rows / max(n_users, 1)))


def for_validation(seed: int, evaluation_fraction: float) -> Sparse:
    """The tuning split's half: the other sparse users, counted after the evaluation holdout of
    ``evaluation_fraction``.

    The tuning split sees a user's books after the evaluation took its share, so the evaluation's threshold
    ``n < SPARSE_BOOKS`` becomes ``n' < left_after_holdout(SPARSE_BOOKS)`` there (``n' < 8`` at 0.2). Where a
    fraction leaves a user with ``SPARSE_BOOKS - 1`` books as many as one with ``SPARSE_BOOKS`` (0.11: both keep
    8), the threshold moves one up: such a user is held out by the evaluation only, never by both.
    """
    below = left_after_holdout(SPARSE_BOOKS, evaluation_fraction)
    if left_after_holdout(SPARSE_BOOKS - 1, evaluation_fraction) >= below:
        below += 1
    return Sparse(seed, first=False, below=below)


class NoTimestamps(ValueError):
    """A temporal split was asked for on interactions without ``date_added``."""


def _per_user(
    df: DataFrame,
    fraction: float,
    seed: int,
    min_user: int,
    first: list,
    kind: str,
    sparse: Sparse | None,
    max_held_out: int | None,
) -> Split:
    """The first ``ceil(fraction * n)`` (at most ``max_held_out``; None: no cap) of each user's ``n`` books in the
    order ``first`` (then the hash) to test (with ``sparse``, only for the sparse users of its half)."""
    w = Window.partitionBy(C.USER_IDX).orderBy(*first, F.col(_H), F.col(C.BOOK_IDX))
    n = Window.partitionBy(C.USER_IDX).rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    ranked = (
        df.withColumn(_H, _hash(seed, C.USER_IDX, C.BOOK_IDX))
        .withColumn("_rank", F.row_number().over(w))
        .withColumn("_n", F.count(F.lit(1)).over(n))
    )
    n_test = F.least(F.ceil(F.col("_n") * fraction), F.col("_n") - 1)
    if max_held_out is not None:
        n_test = F.least(n_test, F.lit(max_held_out))
    is_test = (F.col("_n") >= min_user) & (F.col("_rank") <= n_test)
    if sparse is not None:
        is_test = is_test & sparse.held_out(F.col("_n"))
    cols = df.columns
    return Split(
        train=ranked.where(~is_test).select(*cols), test=ranked.where(is_test).select(*cols), kind=kind
    )


def holdout(
    df: DataFrame,
    fraction: float = 0.2,
    seed: int = 42,
    min_user: int = 2,
    sparse: Sparse | None = None,
    max_held_out: int | None = MAX_HELD_OUT,
) -> Split:
    """Per user: ``ceil(fraction * n)`` books (at most ``max_held_out``) chosen by the hash to test."""
    return _per_user(df, fraction, seed, min_user, [], "holdout", sparse, max_held_out)


def temporal(
    df: DataFrame,
    fraction: float = 0.2,
    seed: int = 42,
    min_user: int = 2,
    sparse: Sparse | None = None,
    max_held_out: int | None = MAX_HELD_OUT,
) -> Split:
    """Per user: the ``ceil(fraction * n)`` most recently added books (at most ``max_held_out``) to test (undated
    books count as oldest)."""
    if C.DATE_ADDED not in df.columns or df.where(F.col(C.DATE_ADDED).isNotNull()).limit(1).count() == 0:
        raise NoTimestamps(
            "a temporal split needs interactions with date_added; these have none (use --split holdout)"
        )
    return _per_user(
        df,
        fraction,
        seed,
        min_user,
        [F.col(C.DATE_ADDED).desc_nulls_last()],
        "temporal",
        sparse,
        max_held_out,
    )


def make(
    kind: str, df: DataFrame, fraction: float = 0.2, seed: int = 42, sparse: Sparse | None = None
) -> Split:
    """The split named ``kind`` (one of :data:`KINDS`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown split {kind!r}; choose one of {', '.join(KINDS)}")
    return (holdout if kind == "holdout" else temporal)(df, fraction, seed, sparse=sparse)


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
