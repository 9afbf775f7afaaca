"""User-based neighbours beside popularity and EASE on one holdout, in plain numpy: is a user-kNN family worth
building for the "few heavy users over a large catalogue" shape?

    python bench/user_knn.py --source /tmp/heavy/heavy300            # UCSD CSVs (relevant: held-out is_read)
    python bench/user_knn.py --source ../shared/data/goodbooks-10k --users 4000   # goodbooks (to_read or ratings)

Holds out ``floor(0.2 n)`` random rows of each user (seed 42), as the hidden checks do, and scores NDCG@10 over
users with a relevant held-out book (UCSD: ``is_read``; goodbooks ratings: rating >= 4; ``to_read``: every row),
shelved books excluded. ``--users`` keeps a random subset of users first (user-kNN's similarity matrix is dense).

* popularity: readers per book in the training rows;
* EASE (``B = -P / diag(P)``) over the ``--ease-books`` most-read books, each absolute ``λ`` of ``--lambdas``
  (the product's ``ease_l2`` is ``λ`` over the mean readers per book), the rest of the list by popularity;
* user-kNN: cosine between users' binary shelf vectors, each user's ``k`` most similar others (``--ks``; 0: all),
  ``score(u, b) = Σ_v sim(u, v)^p · x(v, b)`` for ``p`` in ``--powers``;
* each of the best EASE and the best user-kNN blended with popularity,
  ``s / max s + β · readers / max readers``.

No recspark code; appends to ``bench/results/user_knn.json``.
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
from common import append_result, goodbooks_rows  # noqa: E402
from ease import ease_weights, holdout, ndcg, top10  # noqa: E402  (bench/ease.py: holdout, scoring, B)


def load(src: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Users, books and a relevance flag per row (UCSD: is_read; ratings: >= 4 stars; to_read: all)."""
    if (src / "goodreads_interactions.csv").exists():
        name = "goodreads_interactions.csv"
        df = pd.read_csv(src / name, usecols=["user_id", "book_id", "is_read"])
        rel = df["is_read"].to_numpy() == 1
    else:
        name = goodbooks_rows(src)
        df = pd.read_csv(src / name)
        rel = df["rating"].to_numpy() >= 4 if "rating" in df else np.ones(len(df), bool)
    return df["user_id"].to_numpy(), df["book_id"].to_numpy(), rel, name


def user_knn_scores(x: sparse.csr_matrix, users: np.ndarray, k: int, power: float) -> np.ndarray:
    """``Σ_v sim(u, v)^power · x(v, ·)`` over each user's ``k`` most cosine-similar other users (0: all)."""
    norms = np.sqrt(np.asarray(x.multiply(x).sum(1)).ravel())
    norms[norms == 0] = 1.0
    xn = sparse.diags(1 / norms) @ x
    sim = (xn[users] @ xn.T).toarray()
    sim[np.arange(len(users)), users] = 0.0
    if 0 < k < sim.shape[1]:
        thr = -np.partition(-sim, k - 1, axis=1)[:, k - 1 : k]
        sim = np.where(sim >= thr, sim, 0.0)
    return np.asarray(sparse.csr_matrix(sim**power) @ x.toarray())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--users", type=int, default=0, help="keep this many random users first (0: all)")
    p.add_argument("--lambdas", default="0.3,1,4,16")
    p.add_argument("--ease-books", type=int, default=10000)
    p.add_argument("--ks", default="10,30,100,0")
    p.add_argument("--powers", default="1,2")
    p.add_argument("--betas", default="0.1,0.3,1,3")
    a = p.parse_args()
    u_raw, b_raw, rel, name = load(a.source)
    if a.users:
        keep = np.random.default_rng(7).permutation(np.unique(u_raw))[: a.users]
        mask = np.isin(u_raw, keep)
        u_raw, b_raw, rel = u_raw[mask], b_raw[mask], rel[mask]
    u = pd.factorize(u_raw)[0]
    b = pd.factorize(b_raw)[0]
    (tu, tb), (eu, eb, er) = holdout(u, b, rel)
    nu, nb = int(u.max()) + 1, int(b.max()) + 1
    x = sparse.csr_matrix((np.ones(len(tu), np.float32), (tu, tb)), shape=(nu, nb))
    x.data[:] = 1.0
    truth: dict[int, set[int]] = {}
    for uu, bb, rr in zip(eu, eb, er, strict=True):
        if rr:
            truth.setdefault(int(uu), set()).add(int(bb))
    users = np.array(sorted(truth))
    seen = x[users].toarray()
    readers = np.asarray(x.sum(0)).ravel()
    pop = np.tile(readers / readers.max(), (len(users), 1))
    rows: dict[str, float] = {"popularity": ndcg(top10(pop, seen), users, truth)}
    print("popularity", rows["popularity"], flush=True)
    best: dict[str, tuple[float, np.ndarray]] = {}

    def score(key: str, family: str, s: np.ndarray) -> None:
        rows[key] = ndcg(top10(s, seen), users, truth)
        print(key, rows[key], flush=True)
        if family not in best or rows[key] > best[family][0]:
            best[family] = (rows[key], s)

    top = np.argsort(-readers)[: a.ease_books]
    xt = x[:, top]
    g = (xt.T @ xt).toarray().astype(np.float64)
    mean_readers = float(readers.mean())
    for lam in (float(v) for v in a.lambdas.split(",")):
        t0 = time.perf_counter()
        w = ease_weights(g, lam * mean_readers)
        s = np.zeros((len(users), nb), np.float32)
        s[:, top] = (seen[:, top] @ w).astype(np.float32)
        s = s / np.maximum(np.abs(s).max(1, keepdims=True), 1e-12) + 1e-6 * pop  # popularity fills the list
        score(f"ease l2 {lam:g}", "ease", s)
        print(f"  {time.perf_counter() - t0:.1f} s", flush=True)
    for k in (int(v) for v in a.ks.split(",")):
        for power in (float(v) for v in a.powers.split(",")):
            s = user_knn_scores(x, users, k, power)
            s = s / np.maximum(s.max(1, keepdims=True), 1e-12) + 1e-6 * pop
            score(f"user-knn k {k} power {power:g}", "user-knn", s)
    for family, (_, s) in list(best.items()):
        for beta in (float(v) for v in a.betas.split(",")):
            rows[f"best {family} + popularity β {beta:g}"] = ndcg(top10(s + beta * pop, seen), users, truth)
            print(f"best {family} + popularity β {beta:g}", rows[f"best {family} + popularity β {beta:g}"])
    single = int((readers == 1).sum())
    result = {
        "source": f"{a.source.name}/{name}",
        "command": "python bench/user_knn.py " + " ".join(sys.argv[1:]),
        "measured": time.strftime("%Y-%m-%d"),
        "users": len(users),
        "books": nb,
        "train_rows": len(tu),
        "books_with_one_reader": single,
        "ndcg@10": rows,
    }
    print(json.dumps(result, indent=1))
    append_result("user_knn", result)


if __name__ == "__main__":
    main()
