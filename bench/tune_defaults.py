"""The grid that chose the ALS defaults on real data (goodbooks-10k to_read), with popularity alongside.

    .venv/bin/python bench/tune_defaults.py /tmp/tune_gb ../shared/data/goodbooks-10k

argv[1]: a scratch lakehouse; argv[2] (optional): a goodbooks source to ingest first. Prints one JSON line per
configuration (NDCG@10 on a 20% per-user holdout, seed 42). Results: bench/results/tune_goodbooks.json.
"""

import json
import sys
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from recspark import als, evaluate, metrics, split, topk
from recspark.features import Weights, preference
from recspark.ingest import run_ingest
from recspark.spark import get_spark
from recspark.tables import Lakehouse

spark = get_spark(master="local[2]", log_level="ERROR")
lh = sys.argv[1]
src = sys.argv[2] if len(sys.argv) > 2 else None
lake = Lakehouse(spark, lh)
if src:
    run_ingest(spark, lake, src, "goodbooks", "t")
inter = lake.read("silver", "interactions")
s = split.holdout(inter, 0.2, 42)
lake.write(s.train, "model", "split_train")
lake.write(s.test, "model", "split_test")
train = lake.read("model", "split_train").cache()
test = lake.read("model", "split_test").cache()
print("sizes", train.count(), test.count(), flush=True)
pop = evaluate.baseline_lists(spark, train, test, 10, False)["popularity"]
print("popularity", metrics.ranking_metrics(pop, test, [10])[10]["ndcg"], flush=True)
grid = [
    (64, 0.05, 10, "log"),
    (64, 1.0, 10, "log"),
    (64, 5.0, 10, "log"),
    (32, 1.0, 40, "log"),
    (64, 1.0, 1, "linear"),
    (128, 5.0, 20, "log"),
    (64, 1.0, 5, "bm25"),
]
for rank, reg, alpha, scheme in grid:
    t = time.time()
    p = als.AlsParams(rank=rank, reg=reg, alpha=alpha, max_iter=10)
    m = als.fit(spark, train.transform(preference(Weights(scheme=scheme))), p)
    users = als.user_factors(m).join(test.select("user_idx").distinct(), "user_idx", "left_semi")
    recs = topk.recommend(spark, users, als.item_factors(m), 10, seen=train)
    nd = metrics.ranking_metrics(recs, test, [10])[10]["ndcg"]
    print(
        json.dumps(
            dict(
                rank=rank,
                reg=reg,
                alpha=alpha,
                scheme=scheme,
                ndcg=round(nd, 4),
                secs=round(time.time() - t, 1),
            )
        ),
        flush=True,
    )
