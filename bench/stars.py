"""Predicted stars against the per-book mean, for each (regParam, user shrinkage) pair of the search and for plain
explicit ALS without bias terms, on one ingested lakehouse.

    recspark generate --format goodbooks --scale 0.002 --out /tmp/gr
    recspark ingest --source /tmp/gr --format goodbooks --lakehouse /tmp/gr-lake
    .venv/bin/python bench/stars.py --lakehouse /tmp/gr-lake --name generated-ratings-0.002

Split: the per-user 20% holdout of ``recspark run`` (seed 42); RMSE/MAE on every rated held-out shelf.
Appends to bench/results/stars.json.
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
    a = p.parse_args()

    from pyspark.sql import functions as F

    from recspark import columns as C
    from recspark import split, stars
    from recspark.spark import get_spark
    from recspark.stars import StarsParams
    from recspark.tables import Lakehouse

    spark = get_spark(master="local[2]", checkpoint_dir=str(HERE / "data" / "checkpoints"))
    lake = Lakehouse(spark, a.lakehouse)
    s = split.holdout(lake.read("silver", "interactions"), fraction=0.2, seed=42, max_held_out=None)
    train, test = s.train.cache(), s.test.cache()
    rows = {}
    for reg, prior in stars.GRID:
        res = stars.evaluate(spark, train, test, StarsParams(reg=reg, user_prior=prior))
        rows[f"bias + ALS, reg {reg}, user prior {prior}"] = res["stars"]
        rows["per-book mean"] = res["book_mean"]
        print(reg, prior, res, flush=True)
    # plain explicit ALS on raw stars (no bias terms), the first version: ALS on the ratings themselves
    tr, te = stars.rated(train), stars.rated(test)
    from pyspark.ml.recommendation import ALS

    plain = ALS(
        rank=16, maxIter=10, regParam=0.3, userCol=C.USER_IDX, itemCol=C.BOOK_IDX, ratingCol=C.RATING, seed=42
    ).setColdStartStrategy("drop")
    pred = plain.fit(tr).transform(te)
    clipped = F.least(F.greatest(F.col("prediction"), F.lit(1.0)), F.lit(5.0))
    rows["plain explicit ALS (no bias terms), reg 0.3"] = stars.errors(
        pred.withColumn(stars.PREDICTED, clipped)
    )
    result = {
        "name": a.name,
        "command": "python bench/stars.py " + " ".join(sys.argv[1:]),
        "measured": time.strftime("%Y-%m-%d"),
        "rows": {
            k: {m: round(v, 4) if isinstance(v, float) else v for m, v in r.items()} for k, r in rows.items()
        },
    }
    append_result("stars", result, replace_key="name")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
