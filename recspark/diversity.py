"""Diversity re-ranking: maximal marginal relevance (MMR) over unit-length item vectors.

For each user, from the model's list of ``depth`` candidates (relevance = its score, min-max scaled to [0, 1]
within the user's list), pick ``k`` books greedily: at each step the candidate with the largest

    (1 - weight) * relevance - weight * (max cosine similarity to the books already picked)

Weight 0 keeps the model's order; weight 1 ignores relevance after the first pick. Books without a vector
count as similar to nothing. Cost per user: ``k`` passes over ``depth`` candidates, one dot product each
(``k · depth · rank`` multiply-adds); the vectors are broadcast once (``books × rank`` floats).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from recspark import columns as C

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# Spark is imported inside rerank only: the consumer (recspark.serve) re-ranks a folded-in list with mmr_order and
# unit_rows, and must run without pyspark installed
DEPTH = 3  # MMR picks k books out of the model's best DEPTH * k (the batch lists and the consumer's fold-in)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); a zero row stays zero (a book without a vector)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.where(norms > 0, vectors / np.maximum(norms, 1e-12), 0.0).astype(np.float32)


def relevance(scores: np.ndarray) -> np.ndarray:
    """A list's scores min-max scaled to [0, 1] (all ones when they are equal)."""
    scores = np.asarray(scores, dtype=np.float64)
    span = scores.max() - scores.min() if len(scores) else 0.0
    return (scores - scores.min()) / span if span > 0 else np.ones(len(scores))


def mmr_order(relevance: np.ndarray, vectors: np.ndarray, k: int, weight: float) -> list[int]:
    """Positions (into ``relevance``) of the ``k`` picks, in order; ``vectors`` are unit rows (zeros: none)."""
    n = len(relevance)
    picked: list[int] = []
    closest = np.zeros(n)
    free = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        value = np.where(free, (1 - weight) * relevance - weight * closest, -np.inf)
        j = int(np.argmax(value))
        picked.append(j)
        free[j] = False
        closest = np.maximum(closest, vectors @ vectors[j])
    return picked


def rerank(recs: DataFrame, items: DataFrame, k: int, weight: float) -> DataFrame:
    """``(user_idx, rank, book_idx, score)``: each user's ``k`` books re-ranked by MMR from ``recs`` (a deeper
    list, e.g. 3k, in the shared shape) with ``items`` ``(book_idx, features)`` as the similarity space. The
    score kept is the model's."""
    import pandas as pd
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from recspark import topk

    schema = T.StructType(
        [
            T.StructField(C.USER_IDX, T.IntegerType(), False),
            T.StructField(C.RANK, T.IntegerType(), False),
            T.StructField(C.BOOK_IDX, T.IntegerType(), False),
            T.StructField(C.SCORE, T.FloatType(), False),
        ]
    )
    ids, mat = topk.factor_matrix(items)
    unit = unit_rows(mat)
    spark = recs.sparkSession
    bc_ids, bc_unit = spark.sparkContext.broadcast(ids), spark.sparkContext.broadcast(unit)

    def per_user(pdf: pd.DataFrame) -> pd.DataFrame:
        pdf = pdf.sort_values(C.RANK)
        scores = pdf[C.SCORE].to_numpy(dtype=np.float64)
        books = pdf[C.BOOK_IDX].to_numpy(dtype=np.int64)
        known_ids, vec = bc_ids.value, bc_unit.value
        v = np.zeros((len(books), vec.shape[1]), dtype=np.float32)
        if len(known_ids):
            pos = np.minimum(np.searchsorted(known_ids, books), len(known_ids) - 1)
            has = known_ids[pos] == books
            v[has] = vec[pos[has]]
        order = mmr_order(relevance(scores), v, k, weight)
        return pd.DataFrame(
            {
                C.USER_IDX: pdf[C.USER_IDX].iloc[0],
                C.RANK: np.arange(1, len(order) + 1, dtype=np.int32),
                C.BOOK_IDX: books[order].astype(np.int32),
                C.SCORE: scores[order].astype(np.float32),
            }
        )

    picked = recs.select(C.USER_IDX, C.RANK, C.BOOK_IDX, F.col(C.SCORE).cast("float").alias(C.SCORE))
    return picked.groupBy(C.USER_IDX).applyInPandas(per_user, schema)
