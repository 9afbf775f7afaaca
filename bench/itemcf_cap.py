"""Item-CF's per-user cap (co-occurrence and score seeds) against quality and cost on one ingested lakehouse.

    recspark generate --scale 0.001 --out /tmp/gu && recspark ingest --source /tmp/gu --lakehouse /tmp/gu-lake
    .venv/bin/python bench/itemcf_cap.py --lakehouse /tmp/gu-lake --caps 300 100 50

Per-user 20% holdout (seed 7), cosine with 100 neighbours; NDCG@10 on the held-out books the user did not
dislike, fit and recommend seconds. Writes bench/results/itemcf_cap.json. The cap bounds the co-occurrence only:
the scores seed from every shelf (the product since 424b0b3). The first record (2026-11-23) capped the seeds as
well, with the since removed ``max_seed_books`` argument.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lakehouse", required=True)
    p.add_argument("--caps", type=int, nargs="+", default=[300, 100, 50])
    a = p.parse_args()

    from recspark import columns as C
    from recspark import itemcf, metrics, split, tune
    from recspark.candidates import reads_recorded
    from recspark.itemcf import ItemCfParams
    from recspark.spark import get_spark
    from recspark.tables import Lakehouse

    spark = get_spark(master="local[2]", checkpoint_dir=str(HERE / "data" / "checkpoints"))
    lake = Lakehouse(spark, a.lakehouse)
    s = split.holdout(lake.read("silver", "interactions"), fraction=0.2, seed=7, max_held_out=None)
    train = s.train.cache()
    n_train = train.count()
    truth = tune.liked(s.test, reads_recorded(train)).select(C.USER_IDX, C.BOOK_IDX).cache()
    users = truth.select(C.USER_IDX).distinct().cache()
    rows = []
    for cap in a.caps:
        t0 = time.perf_counter()
        nb = itemcf.fit(train, ItemCfParams(max_user_books=cap))
        t1 = time.perf_counter()
        recs = itemcf.recommend(train, nb, 10, users=users).cache()
        recs.count()
        t2 = time.perf_counter()
        ndcg = metrics.ranking_metrics(recs, truth, [10])[10]["ndcg"]
        rows.append(
            {
                "cap": cap,
                "ndcg@10": round(ndcg, 4),
                "fit_seconds": round(t1 - t0, 1),
                "recommend_seconds": round(t2 - t1, 1),
            }
        )
        print(rows[-1], flush=True)
        nb.unpersist()
        recs.unpersist()
    result = {
        "command": "python bench/itemcf_cap.py " + " ".join(sys.argv[1:]),
        "measured": time.strftime("%Y-%m-%d"),
        "train_interactions": n_train,
        "rows": rows,
    }
    (HERE / "results" / "itemcf_cap.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
