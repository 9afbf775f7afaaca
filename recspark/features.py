"""Silver interactions -> one implicit preference per (user, book).

Spark's implicit ALS turns a preference ``r`` into a confidence ``c = 1 + alpha * r``. We choose ``r``:

* **signal** ``s = w_shelved + w_read * is_read + w_rating * rating/5 + w_reviewed * is_reviewed``
  (``rating/5`` so a 5-star rating adds ``w_rating``; unrated adds nothing), times a recency decay
  ``0.5 ** (age_days / half_life_days)`` when timestamps exist and a half-life is set;
* **signals** say which flags count (:data:`SIGNALS`): ``all`` (the weights above), ``shelved`` (presence
  only), ``read`` (shelved + read), ``rating`` (shelved + rating/5), ``review`` (shelved + reviewed);
* **scheme** maps the signal to ``r``:
  - ``binary``: ``r = 1`` for every shelved book (confidence ``1 + alpha``; the signal is ignored);
  - ``linear``: ``r = s`` (confidence ``1 + alpha * s``, Hu, Koren & Volinsky 2008);
  - ``log``: ``r = log(1 + s / epsilon)`` (their saturating variant: a heavy signal does not dominate);
  - ``bm25``: ``r = s * (k1 + 1) / (s + k1 * (1 - b + b * n_u / avg_n)) * idf(book)`` with
    ``idf = log(n_users / n_readers(book))`` — the weighting the ``implicit`` library uses, which damps
    very active users and very popular books.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recspark import columns as C

PREFERENCE = "preference"
SCHEMES = ("binary", "linear", "log", "bm25")
# which interaction flags count, as (shelved, read, rating, reviewed) weights
SIGNALS = {
    "all": (1.0, 1.0, 1.0, 0.5),
    "shelved": (1.0, 0.0, 0.0, 0.0),
    "read": (1.0, 1.0, 0.0, 0.0),
    "rating": (1.0, 0.0, 1.0, 0.0),
    "review": (1.0, 0.0, 0.0, 1.0),
}


@dataclass(frozen=True)
class Weights:
    shelved: float = 1.0
    read: float = 1.0
    rating: float = 1.0
    reviewed: float = 0.5
    half_life_days: float | None = None  # recency decay; None = off
    scheme: str = "log"
    epsilon: float = 1.0  # log scheme
    k1: float = 1.2  # bm25
    b: float = 0.75  # bm25

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown weighting scheme {self.scheme!r}; choose one of {SCHEMES}")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def preset(cls, signals: str = "all", scheme: str = "log") -> Weights:
        """Weights that count the flags named by ``signals`` (a key of :data:`SIGNALS`), mapped by ``scheme``."""
        if signals not in SIGNALS:
            raise ValueError(f"unknown signals {signals!r}; choose one of {tuple(SIGNALS)}")
        shelved, read, rating, reviewed = SIGNALS[signals]
        return cls(shelved=shelved, read=read, rating=rating, reviewed=reviewed, scheme=scheme)


def signal(weights: Weights, now: F.Column | None = None):
    """``DataFrame -> DataFrame``: add the raw signal ``s`` per interaction."""

    def _signal(df: DataFrame) -> DataFrame:
        s = (
            F.lit(weights.shelved)
            + F.lit(weights.read) * F.col(C.IS_READ).cast("double")
            + F.lit(weights.rating) * F.col(C.RATING).cast("double") / 5.0
            + F.lit(weights.reviewed) * F.col(C.IS_REVIEWED).cast("double")
        )
        if weights.half_life_days:
            if now is None:
                # the newest interaction, one row, broadcast (an unpartitioned window would move every
                # interaction into a single task)
                df = df.crossJoin(F.broadcast(df.agg(F.max(C.DATE_ADDED).alias("_ref"))))
                ref = F.col("_ref")
            else:
                ref = now
            age = (F.unix_timestamp(ref) - F.unix_timestamp(F.col(C.DATE_ADDED))) / 86400.0
            s = s * F.coalesce(F.pow(F.lit(0.5), age / weights.half_life_days), F.lit(1.0))
        return df.withColumn("_signal", s).drop("_ref")

    return _signal


def preference(weights: Weights):
    """``DataFrame -> DataFrame``: ``(user_idx, book_idx, preference)`` from silver interactions."""

    def _preference(df: DataFrame) -> DataFrame:
        df = df.transform(signal(weights))
        s = F.col("_signal")
        if weights.scheme == "binary":
            r = F.lit(1.0)
        elif weights.scheme == "linear":
            r = s
        elif weights.scheme == "log":
            r = F.log1p(s / weights.epsilon)
        else:
            n_users = df.select(C.USER_IDX).distinct().count()
            avg_n = df.count() / max(n_users, 1)  # mean books per user (BM25's average document length)
            per_user = Window.partitionBy(C.USER_IDX).rowsBetween(
                Window.unboundedPreceding, Window.unboundedFollowing
            )
            per_book = Window.partitionBy(C.BOOK_IDX).rowsBetween(
                Window.unboundedPreceding, Window.unboundedFollowing
            )
            df = df.withColumn("_n_u", F.count(F.lit(1)).over(per_user)).withColumn(
                "_n_b", F.count(F.lit(1)).over(per_book)
            )
            df = df.withColumn("_avg_n", F.lit(avg_n))
            idf = F.log(F.lit(float(n_users)) / F.col("_n_b"))
            norm = weights.k1 * (1 - weights.b + weights.b * F.col("_n_u") / F.col("_avg_n"))
            r = s * (weights.k1 + 1) / (s + norm) * F.greatest(idf, F.lit(1e-3))
        return df.select(F.col(C.USER_IDX), F.col(C.BOOK_IDX), r.cast("float").alias(PREFERENCE))

    return _preference
