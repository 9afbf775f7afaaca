"""Would a personalised "will they like it" term add to the blend? Tried in numpy on a run's own splits.

    python bench/stars_term.py --lake WORK/lakehouse [--name NAME]

On a plain run's persisted splits (``model/tune_train`` -> ``model/tune_valid``, the validation split, and
``model/split_train`` -> ``model/split_test``, the evaluation split), each scored on the held-out books
validation counts (unrated or 4-5 stars): implicit ALS (the built-in default: rank 64, regParam 0.5, alpha 5,
``log(1 + s)`` of the product's signal ``s``), EASE (l2 64, as the product keeps it: the 10,000 most-read books,
400 weights each) and their blend over the top-100 candidates of each, scaled as :mod:`recspark.blend` scales
them, plus ``γ`` · the book's liked share (shrunk to the overall share by 10 shelves) and ``δ`` · the user's
*predicted stars* for the book on [0, 1] (``(stars - 1) / 4``, clipped): the global mean, shrunk book and user
offsets (5 pseudo-ratings each) and explicit ALS (rank 16, regParam 0.3) on what they leave, the model of
:mod:`recspark.stars`. ``δ`` 0 is the product's blend. Appends to ``bench/results/stars_term.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from blend import candidate_scaled, ease_model, ndcg_rows  # noqa: E402
from common import append_result  # noqa: E402
from ease import als_factors  # noqa: E402

TABLES = ("split_train", "split_test", "tune_train", "tune_valid")
WEIGHTS = (0.2, 0.5)
GAMMAS = (0.0, 0.3)
DELTAS = (0.0, 0.1, 0.3, 1.0, 3.0)


def predicted_stars(spark, train: pd.DataFrame, users: np.ndarray, nu: int, nb: int) -> np.ndarray:
    """``users`` x books predicted stars: mean + shrunk book and user offsets + rank-16 explicit ALS."""
    from pyspark.ml.recommendation import ALS

    r = train["rating"].to_numpy(float)
    mu = r.mean()
    by_book = pd.Series(r - mu).groupby(train["book_idx"].to_numpy()).agg(["sum", "count"])
    book = np.zeros(nb)
    book[by_book.index] = by_book["sum"] / (by_book["count"] + 5)
    left = r - mu - book[train["book_idx"]]
    by_user = pd.Series(left).groupby(train["user_idx"].to_numpy()).agg(["sum", "count"])
    user = np.zeros(nu)
    user[by_user.index] = by_user["sum"] / (by_user["count"] + 5)
    rows = pd.DataFrame(
        {
            "u": train["user_idx"].astype("int32"),
            "b": train["book_idx"].astype("int32"),
            "r": (left - user[train["user_idx"]]).astype("float32"),
        }
    )
    model = ALS(rank=16, regParam=0.3, maxIter=12, userCol="u", itemCol="b", ratingCol="r", seed=42).fit(
        spark.createDataFrame(rows)
    )
    uf, vf = np.zeros((nu, 16)), np.zeros((nb, 16))
    for row in model.userFactors.collect():
        uf[row.id] = row.features
    for row in model.itemFactors.collect():
        vf[row.id] = row.features
    return mu + user[users][:, None] + book[None, :] + uf[users] @ vf.T


def scores(spark, train: pd.DataFrame, test: pd.DataFrame, nu: int, nb: int) -> dict[str, float]:
    """Mean NDCG@10 over the users with a liked held-out book for every (w, γ, δ)."""
    x = sparse.csr_matrix((np.ones(len(train), np.float32), (train["user_idx"], train["book_idx"])), (nu, nb))
    rel = test[(test["rating"] == 0) | (test["rating"] >= 4)]
    truth = {int(u): g.to_numpy() for u, g in rel.groupby("user_idx")["book_idx"]}
    users = np.array(sorted(truth))
    seen = x[users].toarray()
    signal = (
        1 + train["is_read"].astype(float) + train["rating"] / 5 + 0.5 * train["is_reviewed"].astype(float)
    )
    prefs = pd.DataFrame(
        {
            "u": train["user_idx"].astype("int32"),
            "b": train["book_idx"].astype("int32"),
            "r": np.log1p(signal).astype("float32"),
        }
    )
    uf, vf = als_factors(spark.createDataFrame(prefs), nu, nb, "64:0.5:5")
    books, b = ease_model(x, 64)
    ease = np.zeros_like(seen)
    ease[:, books] = seen[:, books] @ b
    liked = ((train["rating"] == 0) | (train["rating"] >= 4)).astype(float)
    overall = liked.mean()
    by_book = pd.DataFrame({"b": train["book_idx"], "l": liked}).groupby("b")["l"].agg(["sum", "count"])
    share = np.full(nb, overall)
    share[by_book.index] = (by_book["sum"] + 10 * overall) / (by_book["count"] + 10)
    like = np.clip((predicted_stars(spark, train, users, nu, nb) - 1) / 4, 0, 1)
    a, in_a = candidate_scaled(uf[users] @ vf.T, seen, 100, positive=False)
    e, in_e = candidate_scaled(ease, seen, 100, positive=True)
    out = {}
    for w in WEIGHTS:
        for g in GAMMAS:
            for d in DELTAS:
                s = (1 - w) * a + w * e + g * share[None, :] + d * like
                out[f"w {w:g}, γ {g:g}, δ {d:g}"] = round(
                    float(ndcg_rows(np.where(in_a | in_e, s, -np.inf), seen, users, truth).mean()), 4
                )
    return {"users": len(users), **out}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lake", type=Path, required=True, help="a plain run's lakehouse (its model/ splits)")
    p.add_argument("--name", default=None)
    a = p.parse_args()
    from deltalake import DeltaTable
    from pyspark.sql import SparkSession

    cols = ["user_idx", "book_idx", "is_read", "rating", "is_reviewed"]
    t = {n: DeltaTable(str(a.lake / "model" / n)).to_pandas(columns=cols) for n in TABLES}
    nu = max(int(d["user_idx"].max()) for d in t.values()) + 1
    nb = max(int(d["book_idx"].max()) for d in t.values()) + 1
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.memory", "4g")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    t0 = time.perf_counter()
    result = {
        "name": a.name or a.lake.parent.name,
        "command": "python bench/stars_term.py " + " ".join(sys.argv[1:]),
        "measured": time.strftime("%Y-%m-%d"),
        "validation_ndcg@10": scores(spark, t["tune_train"], t["tune_valid"], nu, nb),
        "evaluation_ndcg@10": scores(spark, t["split_train"], t["split_test"], nu, nb),
    }
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result, indent=1, ensure_ascii=False))
    append_result("stars_term", result, replace_key="name")


if __name__ == "__main__":
    main()
