"""Spark MLlib ALS with implicit feedback: fit, factors, save as Delta keyed by run id.

Settings chosen on purpose:

* a checkpoint directory is always set (``recspark.spark`` does it); without one Spark silently skips ALS
  checkpointing and long runs die with StackOverflowError on the growing lineage;
* ``numUserBlocks``/``numItemBlocks`` = the cluster's default parallelism (one block per core: fewer blocks
  shuffle less, more blocks than cores only add overhead);
* intermediate and final storage ``MEMORY_AND_DISK`` (the default; spills instead of recomputing);
* int ids (dense ``user_idx``/``book_idx``), persisted deterministic input (the caller writes splits to Delta
  and reads them back), a fixed seed, and ``coldStartStrategy="drop"`` so unknown ids never yield NaN.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recspark import columns as C
from recspark import topk
from recspark.features import PREFERENCE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlsParams:
    """Built-in defaults: the candidate with the best worst-case NDCG@10 (relative to the best candidate on each)
    across real goodbooks-10k shelves, generated ratings and generated UCSD shelves (bench/tune_defaults.py,
    README "Self-tuning"). ``recspark run`` searches around them by itself; these are what a too-small dataset
    and ``--tune off`` without a stored search use."""

    rank: int = 64
    reg: float = 0.5
    alpha: float = 5.0
    max_iter: int = 12
    seed: int = 42
    checkpoint_interval: int = 5
    num_blocks: int | None = None  # None: the cluster's default parallelism

    def as_dict(self) -> dict:
        return asdict(self)


def build(spark: SparkSession, params: AlsParams) -> ALS:
    blocks = params.num_blocks or max(1, spark.sparkContext.defaultParallelism)
    if spark.sparkContext.getCheckpointDir() is None:
        raise RuntimeError("set a checkpoint directory first (recspark.spark.get_spark does): ALS needs it")
    return ALS(
        rank=params.rank,
        maxIter=params.max_iter,
        regParam=params.reg,
        alpha=params.alpha,
        implicitPrefs=True,
        nonnegative=False,
        userCol=C.USER_IDX,
        itemCol=C.BOOK_IDX,
        ratingCol=PREFERENCE,
        seed=params.seed,
        checkpointInterval=params.checkpoint_interval,
        numUserBlocks=blocks,
        numItemBlocks=blocks,
        intermediateStorageLevel="MEMORY_AND_DISK",
        finalStorageLevel="MEMORY_AND_DISK",
        coldStartStrategy="drop",
    )


def fit(spark: SparkSession, prefs: DataFrame, params: AlsParams) -> ALSModel:
    """Fit implicit ALS on ``(user_idx, book_idx, preference)``."""
    log.info(
        "ALS: rank=%d reg=%g alpha=%g iterations=%d", params.rank, params.reg, params.alpha, params.max_iter
    )
    return build(spark, params).fit(prefs.select(C.USER_IDX, C.BOOK_IDX, PREFERENCE))


def user_factors(model: ALSModel) -> DataFrame:
    return model.userFactors.select(F.col("id").alias(C.USER_IDX), F.col("features").alias(C.FEATURES))


def item_factors(model: ALSModel) -> DataFrame:
    return model.itemFactors.select(F.col("id").alias(C.BOOK_IDX), F.col("features").alias(C.FEATURES))


def gram(item_factors: DataFrame) -> np.ndarray:
    """``YᵀY`` (float64, ``rank × rank``) of ``(book_idx, features)`` item factors, summed on the driver from one
    Arrow copy of the factors (``n_books × rank`` floats)."""
    y = topk.factor_matrix(item_factors)[1].astype(np.float64)
    return y.T @ y
