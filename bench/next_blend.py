"""The sparse "next shelves" shape: would EASE plus a popularity prior beat popularity, and would a validation
split see it? Plain numpy outside recspark (nothing here is in the product).

On the input ``bench/quality.py --next-shelves 3`` writes (every goodbooks-10k ``to_read`` user with at least six
shelves keeps three, seeded; the next three are the truth), it scores NDCG@10 over the truth users for

* popularity (the k most shelved books the user has not shelved);
* EASE (:mod:`recspark.ease`'s closed form over every book, ``λ = l2 × mean(diag G)``) blended with popularity:
  ``score = S_u / max(S_u) + β · n_readers / max(n_readers)`` (``β = 0`` keeps EASE's order and fills the rest
  of the list by popularity),

first on the whole input as the published model sees it (three shelves per user, truth = the next three), then
on a validation split that holds each user out once (a hashed half of the users loses one shelf to the truth
of validation, the other half one shelf to an evaluation holdout that is dropped), as a tuning split would
have to for users this sparse. Writes ``bench/results/next_blend.json``.

    python bench/next_blend.py --source ../shared/data/goodbooks-10k
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from ease import ease_weights, ndcg, top10
from quality import prepare_next

HERE = Path(__file__).resolve().parent
L2S = (1.0, 4.0, 16.0, 64.0, 256.0)
BETAS = (0.0, 0.03, 0.1, 0.3, 1.0)


def score(scores: np.ndarray, shelved: np.ndarray, truth: dict[int, set[int]]) -> float:
    """Mean NDCG@10 over the users of ``truth``, shelved books excluded (``bench/ease.py``'s top-10 and NDCG)."""
    users = np.array(sorted(truth))
    return ndcg(top10(scores[users], shelved[users]), users, truth)


def grid(x: np.ndarray, truth: dict[int, set[int]]) -> dict:
    """Popularity and the EASE x popularity blends on shelves ``x`` (users x books)."""
    pop = x.sum(0)
    popn = pop / max(pop.max(), 1.0)
    out = {"popularity": score(np.tile(popn, (len(x), 1)), x, truth), "ease": {}}
    g = x.T @ x
    for l2 in L2S:
        b = ease_weights(g, l2 * float(np.mean(np.diag(g))))
        s = x @ b
        s = s / np.maximum(s.max(1, keepdims=True), 1e-12)
        out["ease"][f"l2={l2:g}"] = {
            f"beta={beta:g}": score(s + beta * popn + 1e-9 * popn, x, truth) for beta in BETAS
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, required=True, help="goodbooks-10k folder")
    p.add_argument("--shelves", type=int, default=3)
    p.add_argument("--seed", type=int, default=1, help="the seed bench/quality.py uses by default")
    a = p.parse_args()
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="next_blend-"))
    try:
        truth_df = prepare_next(a.source.resolve(), "goodbooks", work / "input", a.shelves, a.seed)
        rows = pd.read_csv(work / "input" / "goodreads_interactions.csv")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    users = truth_df["user_id"].str[4:].astype(int).to_numpy()
    books = truth_df["book_id"].to_numpy() - 1
    n_users = int(max(rows["user_id"].max(), users.max())) + 1
    n_books = int(max(rows["book_id"].max(), books.max())) + 1
    x = np.zeros((n_users, n_books))
    x[rows["user_id"], rows["book_id"]] = 1.0
    truth: dict[int, set[int]] = {}
    for u, b in zip(users, books):
        truth.setdefault(int(u), set()).add(int(b))
    published = grid(x, truth)

    # held out once per user: a seeded half gives one shelf to validation, the other half one to evaluation
    rng = np.random.default_rng(a.seed)
    first = rows.assign(_h=rng.random(len(rows))).groupby("user_id")["_h"].rank(method="first") == 1
    validation_side = rng.random(n_users) < 0.5
    out = rows[first.to_numpy()]
    xv = x.copy()
    xv[out["user_id"], out["book_id"]] = 0.0
    val_truth: dict[int, set[int]] = {}
    for u, b in zip(out["user_id"], out["book_id"]):
        if validation_side[u]:
            val_truth.setdefault(int(u), set()).add(int(b))
    validation = grid(xv, val_truth)

    result = {
        "command": f"python bench/next_blend.py --source {a.source} --shelves {a.shelves} --seed {a.seed}",
        "measured": time.strftime("%Y-%m-%d"),
        "users": n_users,
        "books": n_books,
        "input_rows": len(rows),
        "truth_users": len(truth),
        "validation_users": len(val_truth),
        "published_shape": published,
        "validation_held_out_once": validation,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (HERE / "results" / "next_blend.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
