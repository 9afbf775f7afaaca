"""Stage two of the two-stage design: a learned ranker over the candidates of every model.

Model: gradient-boosted trees with the LambdaMART NDCG objective (``rank:ndcg``), trained distributed on Spark
with ``xgboost.spark.SparkXGBRanker`` (one query group per user, ``qid_col = user_idx``). Labels: 1 when a
candidate is among the user's held-out relevant books of the *validation* split carved from the training side
(never the evaluation holdout), else 0. Users with no relevant candidate carry no ranking signal and are left
out of the fit; when fewer than ``min_positives`` positive rows remain, no ranker is trained
(:class:`TooFewPositives`), and the caller keeps the best single model.

Cost: one boosting pass per tree over ``rows = users × candidates`` (capped by ``max_fit_users`` users, sampled by
a hash of the user id); scoring is one tree walk per candidate row.

``xgboost`` (and the scikit-learn it needs for its Spark estimators) is the optional extra ``recspark[ranker]``:
without it :func:`require_xgboost` raises :class:`RankerUnavailable` naming the extra.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recspark import columns as C
from recspark.candidates import top_k

log = logging.getLogger(__name__)

LABEL = "label"
PREDICTION = "prediction"


class RankerUnavailable(RuntimeError):
    """xgboost (the ``ranker`` extra) is not installed."""


class TooFewPositives(ValueError):
    """Too few relevant candidates to learn a ranking from."""


@dataclass(frozen=True)
class RankerParams:
    n_candidates: int = 100  # top-N per source
    n_estimators: int = 100
    max_depth: int = 6
    learning_rate: float = 0.1
    min_positives: int = 50
    max_fit_users: int = 4000
    max_validation_users: int = 4000  # validation users given candidates (70% fit the ranker, 30% judge it)
    seed: int = 42

    def as_dict(self) -> dict:
        return asdict(self)


def require_xgboost():
    """``xgboost.spark.SparkXGBRanker``, or :class:`RankerUnavailable` with the install line."""
    try:
        from xgboost.spark import SparkXGBRanker
    except ImportError as exc:
        raise RankerUnavailable(
            f"the learned ranker needs xgboost and scikit-learn ({exc}): pip install 'recspark[ranker]', "
            "or run with --ranker off"
        ) from None
    return SparkXGBRanker


def labelled(feats: DataFrame, truth: DataFrame) -> DataFrame:
    """``feats`` with ``label`` (1.0 when ``(user_idx, book_idx)`` is in ``truth``), users without a positive
    left out."""
    marked = truth.select(C.USER_IDX, C.BOOK_IDX, F.lit(1.0).alias(LABEL)).distinct()
    out = feats.join(marked, on=[C.USER_IDX, C.BOOK_IDX], how="left").withColumn(
        LABEL, F.coalesce(F.col(LABEL), F.lit(0.0))
    )
    useful = out.groupBy(C.USER_IDX).agg(F.max(LABEL).alias("_any")).where(F.col("_any") > 0)
    return out.join(useful.select(C.USER_IDX), on=C.USER_IDX, how="left_semi")


def user_share(users: DataFrame, share: float, seed: int) -> DataFrame:
    """A deterministic ``share`` of ``users`` (a hash of the user index and the seed)."""
    h = F.abs(F.xxhash64(F.lit(seed), F.col(C.USER_IDX)) % F.lit(1_000_003)) / F.lit(1_000_003.0)
    return users.where(h < share)


def fit(train: DataFrame, feature_cols: list[str], params: RankerParams):
    """A fitted ``SparkXGBRankerModel`` on labelled rows (see :func:`labelled`)."""
    SparkXGBRanker = require_xgboost()
    users = train.select(C.USER_IDX).distinct()
    n_users = users.count()
    if n_users > params.max_fit_users:
        keep = user_share(users, params.max_fit_users / n_users, params.seed)
        train = train.join(keep, on=C.USER_IDX, how="left_semi")
    n_pos = train.where(F.col(LABEL) > 0).count()
    if n_pos < params.min_positives:
        raise TooFewPositives(
            f"{n_pos} relevant candidates (< {params.min_positives}): too few to learn a ranking; "
            "the best single model is kept"
        )
    log.info("ranker: fitting on %s rows, %d positives", f"{train.count():,}", n_pos)
    estimator = SparkXGBRanker(
        features_col=feature_cols,
        label_col=LABEL,
        qid_col=C.USER_IDX,
        num_workers=1,
        objective="rank:ndcg",
        n_estimators=params.n_estimators,
        max_depth=params.max_depth,
        learning_rate=params.learning_rate,
        random_state=params.seed,
        missing=float("nan"),
    )
    return estimator.fit(train.select(C.USER_IDX, *feature_cols, LABEL))


def rank(model, feats: DataFrame, k: int) -> DataFrame:
    """``(user_idx, rank, book_idx, score)``: each user's ``k`` best candidates by the ranker's score."""
    scored = model.transform(feats).select(C.USER_IDX, C.BOOK_IDX, F.col(PREDICTION))
    return top_k(scored, k, PREDICTION)


def importances(model, feature_cols: list[str]) -> dict[str, float]:
    """Share of the total gain per feature (features never used are left out), largest first."""
    gain = model.get_booster().get_score(importance_type="total_gain")
    # the booster names features f0, f1, ... or by column, depending on how it was built
    named = {(feature_cols[int(k[1:])] if k[1:].isdigit() and k[0] == "f" else k): v for k, v in gain.items()}
    total = sum(named.values()) or 1.0
    return {k: round(v / total, 4) for k, v in sorted(named.items(), key=lambda kv: -kv[1])}
