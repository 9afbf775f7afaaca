"""Ranking and beyond-accuracy metrics, computed distributed (nothing collects the recommendations).

Inputs: ``recs (user_idx, rank, book_idx)`` with ranks 1..n per user and ``truth (user_idx, book_idx)`` (the
held-out books). Every user in ``truth`` is evaluated; a user without recommendations scores 0.

Per user u with relevant set R_u (|R_u| = n_u), hits h_i = 1 if the book at rank i is in R_u, at cut-off K:

* precision@K = sum_{i<=K} h_i / K;  recall@K = sum_{i<=K} h_i / n_u
* NDCG@K = DCG / IDCG with DCG = sum_{i<=K} h_i / log2(i + 1), IDCG = sum_{i<=min(n_u, K)} 1 / log2(i + 1)
* MAP@K = sum_{i<=K} h_i * precision@i / min(n_u, K)
* MRR@K = 1 / (rank of the first hit <= K), else 0;  hit rate@K = 1 if any hit <= K

Averaged over evaluated users. Beyond accuracy, over the recommendation lists cut at K:

* coverage@K = distinct recommended books / books in the catalogue (train)
* novelty@K = mean over recommended books of -log2(p_i), p_i = share of train users who shelved book i
* popularity@K (bias) = mean p_i of recommended books (average recommendation popularity)
* diversity@K (intra-list) = mean over users of 1 - mean pairwise cosine similarity of the item factors in
  the list: with unit vectors v, sum_{i != j} cos = |sum v|^2 - K, so no pairs are materialised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recspark import columns as C
from recspark import topk

RANKING = ("precision", "recall", "ndcg", "map", "mrr", "hit_rate")
BEYOND = ("coverage", "novelty", "popularity", "diversity")
_GROUP = "_group"  # the list a row belongs to when several lists are evaluated at once (``*_by``)


def _idcg_table(max_k: int) -> list[float]:
    out, acc = [0.0], 0.0
    for i in range(1, max_k + 1):
        acc += 1.0 / math.log2(i + 1)
        out.append(acc)
    return out


def ranking_metrics(recs: DataFrame, truth: DataFrame, ks: list[int]) -> dict[int, dict[str, float]]:
    """Mean ranking metrics at each K over the users in ``truth``."""
    return ranking_metrics_by(recs.withColumn(_GROUP, F.lit("")), truth, ks, [""])[""]


def ranking_metrics_by(
    recs: DataFrame, truth: DataFrame, ks: list[int], groups: list[str], by: str = _GROUP
) -> dict[str, dict[int, dict[str, float]]]:
    """:func:`ranking_metrics` of several lists at once: ``recs`` holds every list, told apart by the string
    column ``by`` (e.g. the model); one Spark job computes every group's metrics (a job costs about a second
    of fixed overhead, so evaluating seven models one by one costs seconds even on tiny data). Each group in
    ``groups`` is evaluated over every user in ``truth``; a group without a hit scores 0."""
    max_k = max(ks)
    relevant = truth.select(C.USER_IDX, C.BOOK_IDX).distinct()
    n_rel = relevant.groupBy(C.USER_IDX).agg(F.count(F.lit(1)).alias("_n_rel"))
    hits = (
        recs.where(F.col(C.RANK) <= max_k)
        .join(relevant.withColumn("_hit", F.lit(1)), on=[C.USER_IDX, C.BOOK_IDX], how="inner")
        .select(by, C.USER_IDX, F.col(C.RANK))
    )
    w = (
        Window.partitionBy(by, C.USER_IDX)
        .orderBy(C.RANK)
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    hits = hits.withColumn("_cum", F.count(F.lit(1)).over(w))  # hits up to and including this rank
    idcg = F.array(*[F.lit(x) for x in _idcg_table(max_k)])
    aggs = []
    for k in ks:
        at = F.col(C.RANK) <= k
        aggs += [
            F.sum(F.when(at, 1).otherwise(0)).alias(f"h{k}"),
            F.sum(F.when(at, 1.0 / F.log2(F.col(C.RANK) + 1)).otherwise(0.0)).alias(f"dcg{k}"),
            F.sum(F.when(at, F.col("_cum") / F.col(C.RANK)).otherwise(0.0)).alias(f"ap{k}"),
            F.min(F.when(at, F.col(C.RANK))).alias(f"first{k}"),
        ]
    names = recs.sparkSession.createDataFrame([(g,) for g in groups], f"{by} string")
    per_user = (
        n_rel.crossJoin(F.broadcast(names))
        .join(hits.groupBy(by, C.USER_IDX).agg(*aggs), on=[by, C.USER_IDX], how="left")
        .fillna(0)
    )
    cols = []
    for k in ks:
        h, n = F.col(f"h{k}"), F.col("_n_rel")
        cols += [
            F.avg(h / k).alias(f"precision@{k}"),
            F.avg(h / n).alias(f"recall@{k}"),
            F.avg(F.col(f"dcg{k}") / F.element_at(idcg, F.least(n, F.lit(k)).cast("int") + 1)).alias(
                f"ndcg@{k}"
            ),
            F.avg(F.col(f"ap{k}") / F.least(n, F.lit(k))).alias(f"map@{k}"),
            F.avg(F.when(F.col(f"first{k}") > 0, 1.0 / F.col(f"first{k}")).otherwise(0.0)).alias(f"mrr@{k}"),
            F.avg(F.when(h > 0, 1.0).otherwise(0.0)).alias(f"hit_rate@{k}"),
        ]
    rows = {row[by]: row.asDict() for row in per_user.groupBy(by).agg(*cols).collect()}
    return {
        g: {k: {m: float(rows.get(g, {}).get(f"{m}@{k}") or 0.0) for m in RANKING} for k in ks}
        for g in groups
    }


def _ndcg_rows(recs: DataFrame, truth: DataFrame, k: int, by: str) -> DataFrame:
    """``(by, user_idx, ndcg)``: NDCG@k of each list (told apart by ``by``) for every user in ``truth`` it
    hits, and one row with a null ``by`` and ndcg null for a user no list hits (the left join keeps them)."""
    relevant = truth.select(C.USER_IDX, C.BOOK_IDX).distinct()
    n_rel = relevant.groupBy(C.USER_IDX).agg(F.count(F.lit(1)).alias("_n"))
    dcg = (
        recs.where(F.col(C.RANK) <= k)
        .join(relevant, on=[C.USER_IDX, C.BOOK_IDX], how="inner")
        .groupBy(by, C.USER_IDX)
        .agg(F.sum(1.0 / F.log2(F.col(C.RANK) + 1)).alias("_dcg"))
    )
    idcg = F.array(*[F.lit(x) for x in _idcg_table(k)])
    return n_rel.join(dcg, on=C.USER_IDX, how="left").select(
        by,
        C.USER_IDX,
        (F.col("_dcg") / F.element_at(idcg, F.least("_n", F.lit(k)).cast("int") + 1)).alias("ndcg"),
    )


def per_user_ndcg(recs: DataFrame, truth: DataFrame, k: int) -> DataFrame:
    """``(user_idx, ndcg)``: NDCG@k of every user in ``truth`` (0 without a hit), as in :func:`ranking_metrics`."""
    rows = _ndcg_rows(recs.withColumn(_GROUP, F.lit("")), truth, k, _GROUP)
    return rows.select(C.USER_IDX, F.coalesce(F.col("ndcg"), F.lit(0.0)).alias("ndcg"))


def per_user_scores(recs: DataFrame, truth: DataFrame, k: int) -> np.ndarray:
    """:func:`per_user_ndcg` collected: NDCG@k of every user in ``truth`` in ascending user order (their mean is
    :func:`ranking_metrics`' NDCG), for comparisons made on the driver (:func:`paired_z`)."""
    return per_user_scores_by(recs.withColumn(_GROUP, F.lit("")), truth, k, [""], _GROUP)[1][""]


def per_user_scores_by(
    recs: DataFrame, truth: DataFrame, k: int, groups: list[str], by: str
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:func:`per_user_scores` of several lists in one Spark job (``recs`` holds every list, told apart by the
    string column ``by``, as in :func:`ranking_metrics_by`): ``(users, scores)``, the users in ``truth`` in
    ascending order and each group's NDCG@k of them in that order (0 without a hit; a group in ``groups`` without
    rows scores 0 for every user). Comparisons of many lists on the same users, and on any subset of them, are
    then made on the driver without another job."""
    found = _ndcg_rows(recs, truth, k, by).toArrow()
    user_col = found.column(C.USER_IDX).to_numpy()
    # every user in truth: the left join keeps the ones without a hit (their group is null)
    users = np.unique(user_col)
    pos = np.searchsorted(users, user_col)
    group_col = np.asarray(found.column(by).to_pylist(), dtype=object)
    ndcg = np.nan_to_num(found.column("ndcg").to_numpy(zero_copy_only=False).astype(float))
    scores = {}
    for g in groups:
        row = np.zeros(len(users))
        hit = group_col == g
        row[pos[hit]] = ndcg[hit]
        scores[g] = row
    return users, scores


def paired_difference(a: DataFrame, b: DataFrame, truth: DataFrame, k: int) -> tuple[float, float]:
    """``(mean, z)`` of the per-user NDCG@k difference of lists ``a`` minus lists ``b`` over the users in
    ``truth``: a paired comparison on the same users, ``z`` = mean / standard error (0 when every difference is
    0). ``z >= 2`` says the difference is unlikely to be noise of which users happened to be held out."""
    return paired_z(per_user_scores(a, truth, k), per_user_scores(b, truth, k))


def paired_z(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """``(mean, z)`` of ``a - b``, two per-user score arrays in one user order (:func:`per_user_scores`; the
    search's trials, :func:`recspark.tune.keep_the_default_unless_beaten`; the two-stage checks). z is 0 for fewer
    than two users or no difference at all, and infinite with the sign of the mean where every user differs by
    the same non-zero amount: there is no spread to divide by, yet the difference is certain (the checks that
    ask for ``z >= 2`` must not read it as no evidence). :func:`recorded_z` is how a z is stored."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    mean = float(d.mean()) if n else 0.0
    sd = float(d.std(ddof=1)) if n > 1 else 0.0
    if n < 2 or mean == 0.0:
        return mean, 0.0
    if sd == 0.0:
        return mean, math.copysign(math.inf, mean)
    return mean, mean / (sd / math.sqrt(n))


def mean_score(scores: np.ndarray) -> float:
    """The mean of per-user scores (:func:`per_user_scores`), 0 for no users."""
    return float(scores.mean()) if len(scores) else 0.0


def recorded_mean(scores: np.ndarray) -> float:
    """:func:`mean_score` as run records keep it: rounded to 5 decimals."""
    return round(mean_score(scores), 5)


def recorded_z(z: float) -> float | None:
    """A z as run records and reports keep it: rounded to 2 decimals, ``None`` where it is infinite (every user
    differs by the same amount, :func:`paired_z`; strict JSON has no infinity). The decision it led to is recorded
    beside it."""
    return round(z, 2) if math.isfinite(z) else None


def z_text(z: float | None) -> str:
    """A recorded z (:func:`recorded_z`) for reports and the printed summary: ``None`` is the same difference for
    every user, which no z can express."""
    return "n/a (the same difference for every user)" if z is None else f"{z:g}"


@dataclass
class Catalogue:
    """What the beyond-accuracy metrics need from the training data and the item factors, computed once and
    shared by every model's lists: each book's share of users ``_p``, the catalogue size, unit factor vectors."""

    popularity: DataFrame  # (book_idx, _p), cached
    n_users: int
    n_books: int
    unit: DataFrame | None  # (book_idx, _u), cached
    dim: int

    @classmethod
    def of(cls, train: DataFrame, item_factors: DataFrame | None) -> Catalogue:
        counts = train.groupBy(C.BOOK_IDX).agg(F.countDistinct(C.USER_IDX).alias("_n")).cache()
        row = counts.agg(F.count(F.lit(1)).alias("books")).first()
        n_users = train.select(C.USER_IDX).distinct().count()
        pop = counts.select(C.BOOK_IDX, (F.col("_n") / F.lit(max(n_users, 1))).alias("_p")).cache()
        pop.count()
        counts.unpersist()
        unit, dim = None, 0
        if item_factors is not None:
            unit = item_factors.select(
                F.col(C.BOOK_IDX), topk.unit_length(F.col(C.FEATURES)).alias("_u")
            ).cache()
            first = unit.first()
            dim = len(first["_u"]) if first else 0
        return cls(pop, n_users, int(row["books"] or 0), unit, dim)

    def release(self) -> None:
        self.popularity.unpersist()
        if self.unit is not None:
            self.unit.unpersist()


def beyond_accuracy(
    recs: DataFrame,
    train: DataFrame,
    item_factors: DataFrame | None,
    ks: list[int],
    catalogue: Catalogue | None = None,
) -> dict[int, dict[str, float]]:
    """Coverage, novelty, popularity bias and intra-list diversity at each K: one pass over the lists for the
    first three (each row counted at every K >= its rank) and one for diversity."""
    cat = catalogue or Catalogue.of(train, item_factors)
    try:
        return beyond_accuracy_by(recs.withColumn(_GROUP, F.lit("")), cat, ks, [""])[""]
    finally:
        if catalogue is None:
            cat.release()


def beyond_accuracy_by(
    recs: DataFrame, cat: Catalogue, ks: list[int], groups: list[str], by: str = _GROUP
) -> dict[str, dict[int, dict[str, float]]]:
    """:func:`beyond_accuracy` of several lists at once, told apart by the string column ``by`` (two Spark jobs
    for all of them)."""
    at_k = F.explode(F.array(*[F.lit(k) for k in ks])).alias("_k")
    r = (
        recs.join(cat.popularity, on=C.BOOK_IDX, how="left")
        .fillna({"_p": 1.0 / max(cat.n_users, 1)})
        .select(by, C.USER_IDX, C.BOOK_IDX, F.col(C.RANK), F.col("_p"), at_k)
        .where(F.col(C.RANK) <= F.col("_k"))
    )
    rows = {
        (row[by], row["_k"]): row
        for row in r.groupBy(by, "_k")
        .agg(
            F.countDistinct(C.BOOK_IDX).alias("distinct"),
            F.avg(-F.log2(F.col("_p"))).alias("novelty"),
            F.avg(F.col("_p")).alias("popularity"),
        )
        .collect()
    }
    out: dict[str, dict[int, dict[str, float]]] = {g: {} for g in groups}
    for g in groups:
        for k in ks:
            row = rows.get((g, k))
            out[g][k] = {
                "coverage": ((row["distinct"] if row else 0) or 0) / max(cat.n_books, 1),
                "novelty": float(row["novelty"] or 0.0) if row else 0.0,
                "popularity": float(row["popularity"] or 0.0) if row else 0.0,
            }
    if cat.unit is not None and cat.dim:
        zero = F.array_repeat(F.lit(0.0), cat.dim)
        per_user = (
            recs.join(cat.unit, on=C.BOOK_IDX, how="inner")
            .select(by, C.USER_IDX, F.col(C.RANK), F.col("_u"), at_k)
            .where(F.col(C.RANK) <= F.col("_k"))
            .groupBy(by, C.USER_IDX, "_k")
            .agg(
                F.aggregate(
                    F.collect_list("_u"), zero, lambda acc, v: F.zip_with(acc, v, lambda a, b: a + b)
                ).alias("_s"),
                F.count(F.lit(1)).alias("_n"),
            )
            .where(F.col("_n") >= 2)
        )
        sq = F.aggregate(F.col("_s"), F.lit(0.0), lambda acc, x: acc + x * x)
        ild = {
            (row[by], row["_k"]): row["d"]
            for row in per_user.groupBy(by, "_k")
            .agg(F.avg(1.0 - (sq - F.col("_n")) / (F.col("_n") * (F.col("_n") - 1))).alias("d"))
            .collect()
        }
        for g in groups:
            for k in ks:
                d = ild.get((g, k))
                out[g][k]["diversity"] = float(d) if d is not None else 0.0
    return out
