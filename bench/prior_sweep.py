"""Item-CF's popularity-prior sweep in the self-tuning: one recommend() per weight against
:func:`recspark.itemcf.recommend_each_prior`, which counts readers and collects the neighbour table once.

    .venv/bin/python bench/quality.py ... --work /tmp/q   # any quality run leaves its tuning split in the lakehouse
    .venv/bin/python bench/prior_sweep.py --lakehouse /tmp/q/lakehouse --name goodbooks-to_read

On the run's own tuning split (``model/tune_train``, ``model/tune_valid``): item-CF fitted once (Jaccard, 400
neighbours, cached), then the weights of ``tune.ITEMCF_PRIOR_GRID`` scored both ways side by side, alternating,
best of ``--repeats``; the NDCG@10 of each weight must agree. Appends to bench/results/prior_sweep.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from common import append_result  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lakehouse", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()

    from recspark import columns as C
    from recspark import itemcf, metrics, tune
    from recspark.candidates import reads_recorded
    from recspark.itemcf import ItemCfParams
    from recspark.spark import get_spark
    from recspark.tables import Lakehouse

    spark = get_spark(master="local[2]", checkpoint_dir=str(HERE / "data" / "checkpoints"))
    lake = Lakehouse(spark, a.lakehouse)
    train = lake.read("model", "tune_train").cache()
    n_train = train.count()
    truth = (
        tune.liked(lake.read("model", "tune_valid"), reads_recorded(train))
        .select(C.USER_IDX, C.BOOK_IDX)
        .cache()
    )
    users = truth.select(C.USER_IDX).distinct().cache()
    n_users = users.count()
    table = itemcf.fit(train, ItemCfParams(similarity="jaccard", neighbours=400)).cache()
    n_table = table.count()
    weights = list(tune.ITEMCF_PRIOR_GRID)
    k = 10

    def one_per_weight() -> list[float]:
        return [
            metrics.ranking_metrics(
                itemcf.recommend(train, table, k, users=users, popularity_weight=w), truth, [k]
            )[k]["ndcg"]
            for w in weights
        ]

    def sweep() -> list[float]:
        return [
            metrics.ranking_metrics(recs, truth, [k])[k]["ndcg"]
            for _, recs in itemcf.recommend_each_prior(train, table, k, weights, users=users)
        ]

    times: dict[str, list[float]] = {"one recommend per weight": [], "recommend_each_prior": []}
    scores = {}
    for _ in range(a.repeats):
        for name, run in (("one recommend per weight", one_per_weight), ("recommend_each_prior", sweep)):
            t0 = time.perf_counter()
            scores[name] = run()
            times[name].append(round(time.perf_counter() - t0, 2))
    assert scores["one recommend per weight"] == scores["recommend_each_prior"], scores
    best = {name: min(t) for name, t in times.items()}
    result = {
        "name": a.name,
        "command": f"python bench/prior_sweep.py --lakehouse LAKE --name {a.name}",
        "date": time.strftime("%Y-%m-%d"),
        "tune_train_rows": n_train,
        "validation_users": n_users,
        "neighbour_rows": n_table,
        "weights": weights,
        "ndcg_at_10": dict(zip(map(str, weights), scores["recommend_each_prior"])),
        "seconds": times,
        "best_seconds": best,
        "speedup": round(best["one recommend per weight"] / best["recommend_each_prior"], 2),
    }
    print(json.dumps(result, indent=2))
    append_result("prior_sweep", result)
    spark.stop()


if __name__ == "__main__":
    main()
