"""Predicted stars: explicit-feedback ALS on the rated shelves, so each recommendation can say how many stars
the reader would probably give it.

* **Data**: the shelves with a rating (UCSD ``rating`` > 0, every goodbooks rating); unrated shelves say nothing
  about stars and are left out. Without at least :data:`MIN_RATINGS` ratings the step is skipped.
* **Model**: Spark ML ``ALS(implicitPrefs=False)`` minimising squared error on the ratings with ALS-WR
  regularisation (``regParam`` times each user's / book's number of ratings). Predictions are clipped to
  [1, 5]; a user or book the model has not seen gets no prediction (null), never a NaN.
* **Baseline**: the book's mean rating in the training data, shrunk towards the global mean with
  :data:`PRIOR_RATINGS` pseudo-ratings (a book rated once is not taken at its word); the global mean for books
  with no rating.
* **Choice of regParam**: :data:`REGS` are tried on a validation split carved from the training side (the
  tuning split), and the lowest RMSE wins (``recspark run`` with tuning on).
* **Metrics**: RMSE and MAE on held-out rated shelves, for the model and for the baseline.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recspark import columns as C

log = logging.getLogger(__name__)

MIN_RATINGS = 100
PRIOR_RATINGS = 5.0
REGS = (0.03, 0.1, 0.3)
PREDICTED = C.PREDICTED_RATING


@dataclass(frozen=True)
class StarsParams:
    rank: int = 16
    reg: float = 0.1
    max_iter: int = 10
    seed: int = 42

    def as_dict(self) -> dict:
        return asdict(self)


def rated(interactions: DataFrame) -> DataFrame:
    """``(user_idx, book_idx, rating)`` of the shelves with a rating (1-5)."""
    return interactions.where(F.col(C.RATING) > 0).select(
        C.USER_IDX, C.BOOK_IDX, F.col(C.RATING).cast("float").alias(C.RATING)
    )


def enough(ratings: DataFrame) -> bool:
    return ratings.limit(MIN_RATINGS).count() >= MIN_RATINGS


def fit(spark: SparkSession, ratings: DataFrame, params: StarsParams) -> ALSModel:
    blocks = max(1, spark.sparkContext.defaultParallelism)
    als = ALS(
        rank=params.rank,
        maxIter=params.max_iter,
        regParam=params.reg,
        implicitPrefs=False,
        userCol=C.USER_IDX,
        itemCol=C.BOOK_IDX,
        ratingCol=C.RATING,
        seed=params.seed,
        numUserBlocks=blocks,
        numItemBlocks=blocks,
        coldStartStrategy="nan",
    )
    log.info("explicit ALS (stars): rank=%d reg=%g iterations=%d", params.rank, params.reg, params.max_iter)
    return als.fit(ratings)


def predict(model: ALSModel, pairs: DataFrame) -> DataFrame:
    """``pairs`` with ``predicted_rating`` (float, clipped to [1, 5]; null for unknown users or books)."""
    out = model.transform(pairs)
    p = F.col("prediction")
    clipped = F.when(F.isnan(p), F.lit(None)).otherwise(F.least(F.greatest(p, F.lit(1.0)), F.lit(5.0)))
    return out.withColumn(PREDICTED, clipped.cast("float")).drop("prediction")


def book_means(train: DataFrame) -> tuple[DataFrame, float]:
    """``(book_idx, predicted_rating)``: shrunk per-book mean rating, and the global mean."""
    mu = float(train.agg(F.avg(C.RATING)).first()[0])
    means = train.groupBy(C.BOOK_IDX).agg(
        ((F.sum(C.RATING) + F.lit(PRIOR_RATINGS * mu)) / (F.count(F.lit(1)) + F.lit(PRIOR_RATINGS)))
        .cast("float")
        .alias(PREDICTED)
    )
    return means, mu


def errors(scored: DataFrame) -> dict[str, float]:
    """RMSE and MAE of ``predicted_rating`` against ``rating`` (rows without a prediction left out)."""
    diff = F.col(PREDICTED) - F.col(C.RATING)
    row = (
        scored.where(F.col(PREDICTED).isNotNull())
        .agg(
            F.sqrt(F.avg(diff * diff)).alias("rmse"),
            F.avg(F.abs(diff)).alias("mae"),
            F.count(F.lit(1)).alias("n"),
        )
        .first()
    )
    return {"rmse": float(row["rmse"] or 0.0), "mae": float(row["mae"] or 0.0), "n": int(row["n"])}


def evaluate(spark: SparkSession, train: DataFrame, test: DataFrame, params: StarsParams) -> dict[str, dict]:
    """RMSE/MAE of the model and of the book-mean baseline on the rated rows of ``test``; every rated test row
    is scored by the baseline, and the model's unknown users/books fall back to the baseline too, so both are
    measured on the same rows."""
    tr, te = rated(train).cache(), rated(test).cache()
    try:
        model = fit(spark, tr, params)
        means, mu = book_means(tr)
        base = te.join(means, on=C.BOOK_IDX, how="left").fillna({PREDICTED: mu})
        pred = predict(model, te).withColumnRenamed(PREDICTED, "_m")
        both = pred.join(
            base.select(C.USER_IDX, C.BOOK_IDX, F.col(PREDICTED).alias("_b")),
            on=[C.USER_IDX, C.BOOK_IDX],
            how="inner",
        ).select(C.USER_IDX, C.BOOK_IDX, C.RATING, F.coalesce("_m", "_b").alias(PREDICTED))
        return {"stars": errors(both), "book_mean": errors(base)}
    finally:
        tr.unpersist()
        te.unpersist()


def choose_reg(
    spark: SparkSession, train: DataFrame, valid: DataFrame, params: StarsParams
) -> tuple[float, float]:
    """The regParam of :data:`REGS` with the lowest validation RMSE, and that RMSE."""
    tr, va = rated(train).cache(), rated(valid).cache()
    try:
        results = []
        for reg in REGS:
            model = fit(
                spark, tr, StarsParams(rank=params.rank, reg=reg, max_iter=params.max_iter, seed=params.seed)
            )
            rmse = errors(predict(model, va))["rmse"]
            log.info("stars regParam %g: validation RMSE %.4f", reg, rmse)
            results.append((rmse, reg))
        rmse, reg = min(results)
        return reg, round(rmse, 4)
    finally:
        tr.unpersist()
        va.unpersist()
