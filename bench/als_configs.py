"""Fixed ALS configurations scored on the held-out test of ``bench/quality.py``'s split, the way the product fits them.

    python bench/als_configs.py --name generated-heavy-users-300 --source /tmp/heavy/heavy300 --format goodreads \
        --config 64,0.5,5,log,all --config 64,0.00954,0.26,linear,all --config 64,0.1,1,binary,shelved

What a search's choice is worth against the built-in default on data where validation is noisy: each
``--config rank,regParam,alpha,scheme,signals`` gets its preferences from ``recspark.features.preference`` and is
fitted with ``recspark.als.fit`` (12 iterations, seed 42) on the training side of ``bench/quality.py``'s split
(``--seed``), then each user's top 10 of ``u . v`` over every book, shelved books excluded (numpy), is scored
from outside as the hidden checks score (``quality.score``); with ``--capped N`` also against at most N of each
user's held-out rows, as the product's own holdouts take them. Popularity beside them. Appends to
``bench/results/als_configs.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from common import append_result  # noqa: E402
from hand_tuned_als import Layout  # noqa: E402
from quality import training_side  # noqa: E402


def parse(text: str) -> tuple[int, float, float, str, str]:
    rank, reg, alpha, scheme, signals = text.split(",")
    return int(rank), float(reg), float(alpha), scheme, signals


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True)
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--format", choices=["goodbooks", "goodreads"], required=True)
    p.add_argument(
        "--config", action="append", type=parse, required=True, help="rank,reg,alpha,scheme,signals"
    )
    p.add_argument("--seed", type=int, default=1, help="the split's seed (bench/quality.py's --seed)")
    p.add_argument("--iterations", type=int, default=12)
    p.add_argument(
        "--capped", type=int, default=0, help="also score against at most this many held-out rows per user "
        "(drawn at random), as the product's own holdouts take (recspark.split.MAX_HELD_OUT)",
    )  # fmt: skip
    p.add_argument(
        "--negative-below", type=int, default=0, help="ratings from 1 to this minus 1 enter ALS as negative "
        "preferences (Spark's implicit ALS: p = 0 with confidence 1 + alpha |r|); 0: off",
    )  # fmt: skip
    a = p.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import functions as F

    from recspark import als
    from recspark import columns as C
    from recspark.features import PREFERENCE, Weights, preference
    from recspark.spark import get_spark

    side = training_side(a.source, a.format, a.seed)
    train, truth = side["train"], side["truth"]
    at = Layout(side)
    # the same held-out rows, at most --capped of each user's (a seeded shuffle, then each user's first ones)
    capped = (
        truth.sample(frac=1.0, random_state=a.seed).groupby("user_id").head(a.capped) if a.capped else None
    )
    n = len(train)

    def column(name: str, default: float) -> np.ndarray:
        return train[name].to_numpy().astype("int32") if name in train else np.full(n, default, dtype="int32")

    rated = "rating" in train and a.format == "goodbooks"  # goodbooks ratings: every rated book was read
    rows = pd.DataFrame(
        {
            C.USER_IDX: at.user_pos.astype("int32"),
            C.BOOK_IDX: at.book_pos.astype("int32"),
            C.IS_READ: column("is_read", 1 if rated else 0),
            C.RATING: column("rating", 0),
            C.IS_REVIEWED: column("is_reviewed", 0),
        }
    )
    spark = get_spark(master="local[2]", checkpoint_dir=tempfile.mkdtemp(prefix="als-configs-"))
    frame = spark.createDataFrame(rows).persist()
    frame.count()
    trials = []
    for rank, reg, alpha, scheme, signals in a.config:
        t = time.perf_counter()
        prefs = frame.transform(preference(Weights.preset(signals, scheme)))
        if a.negative_below:
            stars = frame.select(C.USER_IDX, C.BOOK_IDX, C.RATING)
            disliked = F.col(C.RATING).between(1, a.negative_below - 1)
            prefs = prefs.join(stars, on=[C.USER_IDX, C.BOOK_IDX], how="inner").select(
                C.USER_IDX,
                C.BOOK_IDX,
                F.when(disliked, -F.abs(F.col(PREFERENCE))).otherwise(F.col(PREFERENCE)).alias(PREFERENCE),
            )
        prefs = prefs.persist()
        params = als.AlsParams(rank=rank, reg=reg, alpha=alpha, max_iter=a.iterations)
        model = als.fit(spark, prefs, params)
        got = {"rank": rank, "reg": reg, "alpha": alpha, "scheme": scheme, "signals": signals}
        if a.negative_below:
            got["negative_below"] = a.negative_below
        got = {**got, **at.scored(model, rank, truth), "seconds": round(time.perf_counter() - t, 1)}
        if capped is not None:
            got[f"capped_{a.capped}"] = at.scored(model, rank, capped)
        prefs.unpersist()
        print(got, flush=True)
        trials.append(got)
    result = {
        "name": a.name,
        "command": "python bench/als_configs.py " + " ".join(sys.argv[1:]),
        "measured": time.strftime("%Y-%m-%d"),
        "held_out_rows": len(truth),
        **({f"capped_{a.capped}_rows": len(capped)} if capped is not None else {}),
        "popularity": side["popularity"],
        "trials": trials,
    }
    print({k: v for k, v in result.items() if k != "trials"})
    append_result("als_configs", result, replace_key="name")
    spark.stop()


if __name__ == "__main__":
    main()
