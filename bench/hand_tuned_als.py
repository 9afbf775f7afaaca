"""Issue #14's yardstick on data we have: Spark MLlib implicit ALS tuned by hand on the very holdout it is scored
on (an upper bound for any hand tuning), beside popularity, with the split and scoring of ``bench/quality.py``.

    python bench/hand_tuned_als.py --name generated-goodbooks-like --source /tmp/gbl/ratings --format goodbooks

The issue's ratings target is "a hand-tuned Spark ALS reaches 0.285": so the product's plain ``recspark run``
(``bench/quality.py`` with the same ``--source`` and ``--seed``) is compared with this number. The search: at rank
64, regParam x alpha x confidence (binary, or the rating as ``r`` in ``1 + alpha * r``; UCSD: 1 + is_read), 15
iterations; then the best of those at other ranks. Each list is the top 10 of ``u . v`` in numpy over every book,
shelved books excluded. Appends to ``bench/results/hand_tuned_als.json``.
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
from common import append_result  # noqa: E402
from quality import score, training_side  # noqa: E402

RANK = 64
REGS = (0.01, 0.1, 1.0, 10.0)
ALPHAS = (1.0, 5.0, 20.0, 50.0)
RANKS = (16, 32, 128, 256)


def lists(user_f: np.ndarray, item_f: np.ndarray, seen: list[np.ndarray], k: int = 10) -> np.ndarray:
    """Top-k book positions per user (rows of ``user_f``), shelved books excluded, in blocks of 512 users."""
    out = np.empty((len(user_f), k), dtype=np.int64)
    for lo in range(0, len(user_f), 512):
        s = user_f[lo : lo + 512] @ item_f.T
        for i, books in enumerate(seen[lo : lo + 512]):
            s[i, books] = -np.inf
        top = np.argpartition(-s, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, top, axis=1), axis=1, kind="stable")
        out[lo : lo + 512] = np.take_along_axis(top, order, axis=1)
    return out


class Layout:
    """The split's training side indexed for numpy: each row's user and book position, each user's shelved book
    positions (``seen``), and the ids the scoring compares for each position (``user_ids``, ``book_ids``)."""

    def __init__(self, side: dict) -> None:
        self.users, self.user_pos = side["users"], side["user_pos"]
        self.books, self.book_pos = np.unique(side["book_ids"], return_inverse=True)
        by_user = np.argsort(self.user_pos, kind="stable")
        self.seen = np.split(self.book_pos[by_user], np.cumsum(np.bincount(self.user_pos))[:-1])
        self.user_ids = side["user_key"](self.users)
        self.book_ids = side["book_key"].reindex(self.books).to_numpy().astype("int64")

    def scored(self, model, rank: int, truth: pd.DataFrame) -> dict:
        """``quality.score`` of a fitted Spark ALS model's top 10 per user (``u . v``, shelved books excluded)."""
        uf = np.zeros((len(self.users), rank), dtype=np.float32)
        vf = np.zeros((len(self.books), rank), dtype=np.float32)
        for r in model.userFactors.collect():
            uf[r["id"]] = r["features"]
        for r in model.itemFactors.collect():
            vf[r["id"]] = r["features"]
        top = lists(uf, vf, self.seen)
        recs = pd.DataFrame(
            {
                "user_id": np.repeat(self.user_ids, 10),
                "rank": np.tile(np.arange(1, 11), len(self.users)),
                "book_id": self.book_ids[top.ravel()],
            }
        )
        return score(recs, truth)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True)
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--format", choices=["goodbooks", "goodreads"], required=True)
    p.add_argument("--seed", type=int, default=1, help="the split's seed (bench/quality.py's --seed)")
    p.add_argument("--iterations", type=int, default=15)
    p.add_argument(
        "--ranks",
        default=",".join(map(str, RANKS)),
        help="the other ranks the best setting is tried at, comma-separated (rank 256 over 60k books takes >6 min)",
    )
    a = p.parse_args()
    ranks = [int(r) for r in a.ranks.split(",") if r]
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from recspark.spark import get_spark

    side = training_side(a.source, a.format, a.seed)
    train, truth = side["train"], side["truth"]
    at = Layout(side)
    if a.format == "goodbooks" and "rating" in train:
        strength = train["rating"].to_numpy().astype(float)
    elif "is_read" in train:
        strength = 1.0 + train["is_read"].to_numpy().astype(float)
    else:
        strength = np.ones(len(train))
    work = Path(tempfile.mkdtemp(prefix="hand-tuned-als-"))
    spark = get_spark(master="local[2]", checkpoint_dir=str(work / "checkpoints"))
    from pyspark.ml.recommendation import ALS

    frame = spark.createDataFrame(
        pd.DataFrame({"u": at.user_pos.astype("int32"), "i": at.book_pos.astype("int32"), "r": strength})
    ).persist()
    frame.count()

    def evaluate(rank: int, reg: float, alpha: float, conf: str) -> dict:
        t = time.perf_counter()
        data = frame if conf == "strength" else frame.selectExpr("u", "i", "1.0 AS r")
        model = ALS(
            rank=rank, regParam=reg, alpha=alpha, maxIter=a.iterations, implicitPrefs=True, userCol="u",
            itemCol="i", ratingCol="r", seed=42, coldStartStrategy="drop",
        ).fit(data)  # fmt: skip
        got = {"rank": rank, "reg": reg, "alpha": alpha, "confidence": conf, **at.scored(model, rank, truth)}
        got["seconds"] = round(time.perf_counter() - t, 1)
        print(got, flush=True)
        return got

    trials = [
        evaluate(RANK, reg, alpha, conf)
        for conf in ("binary", "strength")
        for reg in REGS
        for alpha in ALPHAS
    ]
    best = max(trials, key=lambda r: r["ndcg@10"])
    trials += [evaluate(rank, best["reg"], best["alpha"], best["confidence"]) for rank in ranks]
    best = max(trials, key=lambda r: r["ndcg@10"])
    result = {
        "name": a.name,
        "command": "python bench/hand_tuned_als.py " + " ".join(sys.argv[1:]),
        "measured": time.strftime("%Y-%m-%d"),
        "held_out_rows": len(truth),
        "popularity": side["popularity"],
        "best": best,
        "trials": trials,
    }
    print({k: v for k, v in result.items() if k != "trials"})
    append_result("hand_tuned_als", result, replace_key="name")
    spark.stop()


if __name__ == "__main__":
    main()
