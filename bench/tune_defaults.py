"""How the built-in ALS defaults were chosen: candidate configurations scored on several kinds of data at once.

    .venv/bin/python bench/tune_defaults.py NAME=LAKEHOUSE [NAME=LAKEHOUSE ...]

Each LAKEHOUSE must already hold silver tables (``recspark ingest``). Used here with the real goodbooks-10k
``to_read`` shelves (../shared/data), generated ratings in the goodbooks format (``bench/quality.py
--generate-ratings``' data, ``recspark.sources.synthetic.to_goodbooks``) and generated UCSD shelves. On a 20%
per-user holdout (seed 42) of each, every candidate is fitted with the full iterations and scored by NDCG@10 on
the held-out books the user did not dislike (unrated, or 4-5 stars), beside popularity. The default is the
candidate with the best *worst* ratio to the per-dataset best candidate (robust across kinds of data rather than
best on one). Writes bench/results/tune_defaults.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

# (rank, reg, alpha, scheme, signals)
CANDIDATES = [
    (64, 1.0, 10.0, "log", "all"),  # the previous default (fitted to to_read)
    (64, 0.1, 1.0, "linear", "all"),
    (64, 0.05, 1.0, "binary", "shelved"),
    (64, 0.3, 3.0, "log", "all"),
    (64, 0.1, 3.0, "log", "all"),
    (32, 0.1, 3.0, "log", "all"),
    (64, 0.3, 5.0, "binary", "shelved"),
    (64, 1.0, 3.0, "log", "rating"),
    (128, 0.3, 3.0, "log", "all"),
    (64, 0.03, 0.3, "linear", "rating"),
    (64, 0.5, 5.0, "log", "all"),
    (64, 0.5, 10.0, "log", "all"),
    (64, 2.0, 10.0, "log", "all"),
    (64, 1.0, 20.0, "log", "all"),
    (32, 1.0, 10.0, "log", "all"),
    (16, 0.00706, 0.597, "bm25", "shelved"),  # what the search chose on both generated sets
]


def main() -> None:
    from recspark import als, evaluate, metrics, split, topk, tune
    from recspark.candidates import reads_recorded
    from recspark.features import Weights, preference
    from recspark.spark import get_spark
    from recspark.tables import Lakehouse

    spark = get_spark(master="local[2]", log_level="ERROR")
    datasets = dict(a.split("=", 1) for a in sys.argv[1:])
    table: dict[str, dict[str, float]] = {}
    for name, root in datasets.items():
        lake = Lakehouse(spark, root)
        s = split.holdout(lake.read("silver", "interactions"), 0.2, 42, max_held_out=None)
        lake.write(s.train, "model", "defaults_train")
        lake.write(s.test, "model", "defaults_test")
        train = lake.read("model", "defaults_train").cache()
        truth = (
            tune.liked(lake.read("model", "defaults_test"), reads_recorded(train))
            .select("user_idx", "book_idx")
            .cache()
        )
        users = truth.select("user_idx").distinct().cache()
        pop = evaluate.baseline_lists(spark, train, truth, 10, False)["popularity"]
        row = {"popularity": metrics.ranking_metrics(pop, truth, [10])[10]["ndcg"]}
        for rank, reg, alpha, scheme, signals in CANDIDATES:
            t = time.perf_counter()
            params = als.AlsParams(rank=rank, reg=reg, alpha=alpha)
            model = als.fit(spark, train.transform(preference(Weights.preset(signals, scheme))), params)
            u = als.user_factors(model).join(users, on="user_idx", how="left_semi")
            recs = topk.recommend(spark, u, als.item_factors(model), 10, seen=train)
            key = f"{rank}/{reg}/{alpha}/{scheme}/{signals}"
            row[key] = metrics.ranking_metrics(recs, truth, [10])[10]["ndcg"]
            print(json.dumps({"data": name, "config": key, "ndcg@10": round(row[key], 4),
                              "seconds": round(time.perf_counter() - t, 1)}), flush=True)  # fmt: skip
        table[name] = row
        for df in (train, truth, users):
            df.unpersist()
    keys = [k for k in next(iter(table.values())) if k != "popularity"]
    best = {d: max(row[k] for k in keys) for d, row in table.items()}
    worst_ratio = {k: min(table[d][k] / best[d] for d in table) for k in keys}
    chosen = max(keys, key=lambda k: worst_ratio[k])
    out = {
        "command": "python bench/tune_defaults.py " + " ".join(sys.argv[1:]),
        "measured": time.strftime("%Y-%m-%d"),
        "ndcg@10": {d: {k: round(v, 4) for k, v in row.items()} for d, row in table.items()},
        "worst_ratio_to_best": {k: round(v, 3) for k, v in worst_ratio.items()},
        "chosen": chosen,
    }
    (HERE / "results" / "tune_defaults.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
