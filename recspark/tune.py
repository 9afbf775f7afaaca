"""Hyper-parameter search on a validation split: rank, regParam, alpha and the weighting scheme, by NDCG@K.

The validation split is a per-user holdout of the silver interactions with its own seed, persisted to
``model/tune_train`` / ``model/tune_valid``. Trials are sampled from the grid (seeded), each timed; all trials go
to ``model/tuning_trials`` and the best configuration to ``model/best_params``, which ``recspark run`` uses as its
default unless told otherwise (``--no-tuned``).
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import time

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from recspark import als, metrics, split, topk
from recspark import columns as C
from recspark.features import Weights, preference
from recspark.tables import Lakehouse

log = logging.getLogger(__name__)

MODEL = "model"
DEFAULT_GRID = {
    "rank": [32, 64, 128],
    "reg": [0.3, 1.0, 3.0],
    "alpha": [5.0, 10.0, 20.0],
    "scheme": ["log", "bm25", "linear"],
}


def trials(grid: dict, n: int, seed: int) -> list[dict]:
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    random.Random(seed).shuffle(combos)
    return combos[:n]


def tune(
    spark: SparkSession,
    lake: Lakehouse,
    n_trials: int = 8,
    k: int = 10,
    seed: int = 42,
    grid: dict | None = None,
    max_iter: int = 10,
) -> list[dict]:
    inter = lake.read("silver", "interactions")
    s = split.holdout(inter, fraction=0.2, seed=seed + 1000)
    lake.write(s.train, MODEL, "tune_train")
    lake.write(s.test, MODEL, "tune_valid")
    train, valid = lake.read(MODEL, "tune_train").cache(), lake.read(MODEL, "tune_valid").cache()
    split.check_split(split.Split(train, valid, "holdout"))
    tune_id = f"tune-{int(time.time())}"
    results = []
    for i, t in enumerate(trials(grid or DEFAULT_GRID, n_trials, seed), 1):
        start = time.perf_counter()
        params = als.AlsParams(rank=t["rank"], reg=t["reg"], alpha=t["alpha"], max_iter=max_iter, seed=seed)
        model = als.fit(spark, train.transform(preference(Weights(scheme=t["scheme"]))), params)
        users = als.user_factors(model).join(
            valid.select(C.USER_IDX).distinct(), on=C.USER_IDX, how="left_semi"
        )
        recs = topk.recommend(spark, users, als.item_factors(model), k, seen=train)
        ndcg = metrics.ranking_metrics(recs, valid, [k])[k]["ndcg"]
        row = {
            **t,
            "max_iter": max_iter,
            f"ndcg@{k}": round(ndcg, 5),
            "seconds": round(time.perf_counter() - start, 1),
        }
        results.append(row)
        print(f"trial {i}/{n_trials}: {json.dumps(row)}", flush=True)
    rows = [(tune_id, json.dumps(r), r[f"ndcg@{k}"], r["seconds"]) for r in results]
    lake.write(
        spark.createDataFrame(rows, "tune_id string, trial string, ndcg double, seconds double"),
        MODEL,
        "tuning_trials",
        mode="append",
    )
    best = max(results, key=lambda r: r[f"ndcg@{k}"])
    lake.write(
        spark.createDataFrame([(tune_id, json.dumps(best))], "tune_id string, params string"),
        MODEL,
        "best_params",
    )
    train.unpersist()
    valid.unpersist()
    return results


def best_params(lake: Lakehouse) -> dict | None:
    """The best configuration of the latest tuning, or None."""
    if not lake.exists(MODEL, "best_params"):
        return None
    row = lake.read(MODEL, "best_params").orderBy(F.col("tune_id").desc()).first()
    return json.loads(row["params"]) if row else None
