"""EASE in plain numpy beside Spark ALS on one holdout: the experiment that put EASE into item-CF's search.

    python bench/ease.py --source ../shared/data/goodbooks-10k [--lambdas 1,3,10,50,200] \
        [--als 64:0.5:5,64:0.05:1]

Reads a goodbooks ``ratings.csv`` (relevant: rating >= 4) or ``to_read.csv`` (every row relevant) directly,
holds out ``floor(0.2 n)`` random rows of each user (seed 42), and scores NDCG@10 over users with a relevant
held-out book, shelved books excluded:

* popularity;
* EASE with the full dense ``B`` for each absolute ``λ`` (the product's ``ease_l2`` is ``λ`` divided by the mean
  readers per book, printed as ``l2``), and the same with each row cut to its 100 / 400 largest positive weights
  (what the product keeps);
* Spark ALS (``implicitPrefs``, unit ratings, 12 iterations) for each ``rank:regParam:alpha``.

No recspark code is used: it is an outside check of the idea, not of the implementation (``tests/test_ease.py``
checks that). Appends to ``bench/results/ease.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import append_result, goodbooks_rows  # noqa: E402


def load(src: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    name = goodbooks_rows(src)
    df = pd.read_csv(src / name)
    rating = df["rating"].to_numpy() if "rating" in df else np.full(len(df), 5)
    return (
        pd.factorize(df["user_id"])[0],
        pd.factorize(df["book_id"])[0],
        rating,
        name,
    )


def holdout(u: np.ndarray, b: np.ndarray, r: np.ndarray, seed: int = 42):
    order = np.lexsort((np.random.default_rng(seed).random(len(u)), u))
    u, b, r = u[order], b[order], r[order]
    starts = np.r_[0, np.flatnonzero(np.diff(u)) + 1]
    counts = np.diff(np.r_[starts, len(u)])
    pos = np.arange(len(u)) - np.repeat(starts, counts)
    test = pos < np.repeat(np.floor(counts * 0.2).astype(int), counts)
    return (u[~test], b[~test]), (u[test], b[test], r[test])


def top10(scores: np.ndarray, seen: np.ndarray) -> np.ndarray:
    scores = np.where(seen > 0, -np.inf, scores)
    idx = np.argpartition(-scores, 10, axis=1)[:, :10]
    return np.take_along_axis(idx, np.argsort(-np.take_along_axis(scores, idx, 1), axis=1), 1)


def ndcg(recs: np.ndarray, users: np.ndarray, truth: dict[int, set[int]]) -> float:
    disc = 1 / np.log2(np.arange(2, 12))
    out = []
    for user, rec in zip(users, recs, strict=True):
        rel = truth[user]
        out.append((np.isin(rec, list(rel)) * disc).sum() / disc[: min(len(rel), 10)].sum())
    return round(float(np.mean(out)), 4)


def ease_weights(g: np.ndarray, lam: float) -> np.ndarray:
    """EASE's dense ``B`` from the Gram matrix ``g`` and an absolute ``lam``: ``-P / diag(P)``, ``diag(B) = 0``."""
    p_inv = np.linalg.inv(g + lam * np.eye(len(g)))
    w = p_inv / -np.diag(p_inv)[None, :]
    np.fill_diagonal(w, 0.0)
    return w


def positive_top(b: np.ndarray, n: int) -> np.ndarray:
    thr = -np.partition(-b, n, axis=1)[:, n : n + 1]
    return np.where((b >= thr) & (b > 0), b, 0.0)


def als_factors(df, n_users: int, n_books: int, cfg: str) -> tuple[np.ndarray, np.ndarray]:
    """Spark's implicit ALS (``rank:regParam:alpha``, 12 iterations, seed 42) on ``df`` (``u``, ``b``, unit ``r``):
    dense user and book factor matrices (zero rows for ids it never saw)."""
    from pyspark.ml.recommendation import ALS

    rank, reg, alpha = cfg.split(":")
    model = ALS(
        rank=int(rank),
        regParam=float(reg),
        alpha=float(alpha),
        implicitPrefs=True,
        maxIter=12,
        userCol="u",
        itemCol="b",
        ratingCol="r",
        seed=42,
    ).fit(df)
    uf = np.zeros((n_users, int(rank)), np.float32)
    vf = np.zeros((n_books, int(rank)), np.float32)
    for row in model.userFactors.collect():
        uf[row.id] = row.features
    for row in model.itemFactors.collect():
        vf[row.id] = row.features
    return uf, vf


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--lambdas", default="1,3,10,50,200")
    p.add_argument("--als", default="64:0.5:5,64:0.05:1,32:1:10")
    a = p.parse_args()
    u, b, r, name = load(a.source)
    (tu, tb), (eu, eb, er) = holdout(u, b, r)
    nu, nb = int(u.max()) + 1, int(b.max()) + 1
    x = np.zeros((nu, nb), dtype=np.float32)
    x[tu, tb] = 1.0
    truth: dict[int, set[int]] = {}
    for uu, bb, rr in zip(eu, eb, er, strict=True):
        if rr >= 4:
            truth.setdefault(int(uu), set()).add(int(bb))
    users = np.array(sorted(truth))
    seen = x[users]
    rows: dict[str, float] = {
        "popularity": ndcg(top10(np.tile(x.sum(0), (len(users), 1)), seen), users, truth)
    }
    g = (x.T @ x).astype(np.float64)
    mean_diag = float(np.diag(g).mean())
    for lam in (float(v) for v in a.lambdas.split(",")):
        t0 = time.perf_counter()
        w = ease_weights(g, lam)
        key = f"ease lambda {lam:g} (l2 {lam / mean_diag:.2f})"
        rows[key] = ndcg(top10(seen @ w.astype(np.float32), seen), users, truth)
        for n in (100, 400):
            rows[f"{key} top {n} positive"] = ndcg(
                top10(seen @ positive_top(w, n).astype(np.float32), seen), users, truth
            )
        print(key, rows[key], f"{time.perf_counter() - t0:.1f} s", flush=True)
    if a.als:
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.master("local[2]").config("spark.driver.memory", "6g").getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
        df = spark.createDataFrame(
            pd.DataFrame({"u": tu.astype("int32"), "b": tb.astype("int32"), "r": np.float32(1.0)})
        ).cache()
        df.count()
        for cfg in a.als.split(","):
            uf, vf = als_factors(df, nu, nb, cfg)
            rows[f"als {cfg}"] = ndcg(top10(uf[users] @ vf.T, seen), users, truth)
            print(f"als {cfg}", rows[f"als {cfg}"], flush=True)
        spark.stop()
    result = {
        "source": f"{a.source.name}/{name}",
        "command": "python bench/ease.py " + " ".join(sys.argv[1:]),
        "measured": time.strftime("%Y-%m-%d"),
        "users": len(users),
        "books": nb,
        "train_rows": len(tu),
        "mean_readers_per_book": round(mean_diag, 2),
        "ndcg@10": rows,
    }
    print(json.dumps(result, indent=1))
    append_result("ease", result)


if __name__ == "__main__":
    main()
