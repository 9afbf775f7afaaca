"""Spark ALS with every book against ALS without books of one reader (every row of a user none of whose books has
two readers kept), the same settings, scored from outside with the split and scoring of ``bench/quality.py``.

    python bench/als_min_readers.py --name heavy-users-400-seed2-single60 \
        --source /tmp/heavy/heavy400s2-single60 --format goodreads

Both fits use the built-in settings (rank 64, regParam 0.5, alpha 5, 12 iterations) and the confidence
``1 + alpha * log(1 + s)`` with ``s`` the rating (goodbooks) or ``1 + is_read`` (UCSD), through ``als.fit``. Each
list is the top 10 of ``u . v`` in numpy over the books with a factor, shelved books excluded; ``paired_z`` is the
mean of the per-user NDCG@10 differences (shared - every) over its standard error. Appends to
``bench/results/als_min_readers.json``. Tried in the product's ``als.fit`` and not adopted (docs/quality.md, "ALS
without books of one reader").
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
from hand_tuned_als import Layout  # noqa: E402
from quality import per_user, score, training_side  # noqa: E402


def top10(at: Layout, user_f: np.ndarray, item_f: np.ndarray, factored: np.ndarray) -> np.ndarray:
    """Top-10 book positions per user over the books with a factor, shelved books excluded."""
    out = np.empty((len(user_f), 10), dtype=np.int64)
    for lo in range(0, len(user_f), 256):
        s = user_f[lo : lo + 256] @ item_f.T
        s[:, ~factored] = -np.inf
        for i, books in enumerate(at.seen[lo : lo + 256]):
            s[i, books] = -np.inf
        top = np.argpartition(-s, 10, axis=1)[:, :10]
        order = np.argsort(-np.take_along_axis(s, top, axis=1), axis=1, kind="stable")
        out[lo : lo + 256] = np.take_along_axis(top, order, axis=1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True)
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--format", choices=["goodbooks", "goodreads"], required=True)
    p.add_argument("--seed", type=int, default=1, help="the split's seed (bench/quality.py's --seed)")
    a = p.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from recspark import als, metrics
    from recspark.spark import get_spark

    side = training_side(a.source, a.format, a.seed)
    train, truth = side["train"], side["truth"]
    at = Layout(side)
    s = train["rating"] if a.format == "goodbooks" else 1.0 + train["is_read"]
    readers = np.bincount(at.book_pos)
    spark = get_spark(
        master="local[2]", checkpoint_dir=str(Path(tempfile.mkdtemp(prefix="als-min-readers-")))
    )
    rows = pd.DataFrame(
        {
            "user_idx": at.user_pos.astype("int32"),
            "book_idx": at.book_pos.astype("int32"),
            "preference": np.log1p(s.to_numpy().astype(float)),
        }
    )
    shared = readers[at.book_pos] >= 2
    shared |= ~pd.Series(shared).groupby(at.user_pos).transform("any").to_numpy()  # users with nothing else
    frames = {
        "every book": spark.createDataFrame(rows).persist(),
        "shared books": spark.createDataFrame(rows[shared]).persist(),
    }
    params = als.AlsParams()
    runs, ndcg = [], {}
    for name, frame in frames.items():
        frame.count()
        t = time.perf_counter()
        model = als.fit(spark, frame, params)
        uf = np.zeros((len(at.users), params.rank), dtype=np.float32)
        vf = np.zeros((len(at.books), params.rank), dtype=np.float32)
        factored = np.zeros(len(at.books), dtype=bool)
        for r in model.userFactors.collect():
            uf[r["id"]] = r["features"]
        for r in model.itemFactors.collect():
            vf[r["id"]] = r["features"]
            factored[r["id"]] = True
        top = top10(at, uf, vf, factored)
        recs = pd.DataFrame(
            {
                "user_id": np.repeat(at.user_ids, 10),
                "rank": np.tile(np.arange(1, 11), len(at.users)),
                "book_id": at.book_ids[top.ravel()],
            }
        )
        got = {"fit": name, "books_fitted": int(factored.sum()), **score(recs, truth)}
        ndcg[name] = per_user(recs, truth)["ndcg"]
        got["seconds"] = round(time.perf_counter() - t, 1)
        print(got, flush=True)
        runs.append(got)
    result = {
        "name": a.name,
        "command": "python bench/als_min_readers.py " + " ".join(sys.argv[1:]),
        "measured": time.strftime("%Y-%m-%d"),
        "books": len(at.books),
        "one_reader_share": round(float((readers == 1).mean()), 3),
        "users": len(at.users),
        "popularity": side["popularity"],
        "als": params.as_dict(),
        "runs": runs,
        "paired_z": metrics.recorded_z(metrics.paired_z(*ndcg["shared books"].align(ndcg["every book"]))[1]),
    }
    append_result("als_min_readers", result, replace_key="name")
    spark.stop()


if __name__ == "__main__":
    main()
