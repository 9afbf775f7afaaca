"""EASE over a catalogue far larger than the product's 10,000 books, when users are few: is the catalogue cap what
holds EASE back on the "few heavy users, long tail" shape?

    python bench/ease_dual.py --source /tmp/heavy/heavy300 --format goodreads --books 10000,20000,56118 \
        --lambdas 1,4,16,64,256,1024

With ``n`` users and ``m`` books, EASE's ``P = (XᵀX + λI)⁻¹`` is ``m × m``, but its scores need only
``X·P = (XXᵀ + λI)⁻¹·X`` (the push-through identity), an ``n × n`` inverse, and ``diag(P)_i = (1 - x_iᵀ·(XXᵀ +
λI)⁻¹·x_i) / λ`` (Woodbury), so ``scores = X·B = X - (X·P) / diag(P)`` for every book at once: under a second
for 300 users and 56k books. That is the *full* ``B`` (no weights cut per book), scored on
``bench/quality.py``'s holdout (same function and ``--seed``; relevant: held-out ``is_read`` for the UCSD CSVs,
rating >= 4 for goodbooks ratings, every row of ``to_read``), shelved books excluded. The catalogue is the
``--books`` most-read books; ``λ = l2 × mean readers per catalogue book`` as in the product.

Dense ``n × m`` matrices: meant for a few thousand users at most. No recspark code; appends to
``bench/results/ease_dual.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import quality  # noqa: E402  (bench/quality.py: the split and the scoring of the hidden checks)
from common import append_result  # noqa: E402


def full_ease_top(x: np.ndarray, l2: float, k: int = 10) -> np.ndarray:
    """Each user's (row of the binary ``x``) top ``k`` columns by EASE's full ``X·B``, shelved columns left out,
    through the ``n × n`` inverse (module docstring)."""
    lam = l2 * float(x.sum(axis=0).mean())
    kx = np.linalg.solve(x @ x.T + lam * np.eye(len(x)), x)  # X·P
    diag_p = (1.0 - np.einsum("ij,ij->j", x, kx)) / lam
    scores = x - kx / diag_p[None, :]
    scores[x > 0] = -np.inf
    idx = np.argpartition(-scores, k, axis=1)[:, :k]
    return np.take_along_axis(idx, np.argsort(-np.take_along_axis(scores, idx, 1), axis=1), 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--format", choices=["goodbooks", "goodreads"], default="goodreads")
    p.add_argument("--books", default="10000,20000", help="catalogue sizes: the most-read books")
    p.add_argument("--lambdas", default="1,4,16,64,256")
    p.add_argument("--seed", type=int, default=1, help="bench/quality.py's --seed")
    a = p.parse_args()
    side = quality.training_side(a.source, a.format, a.seed)
    truth, pop, name, train = side["truth"], side["popularity"], side["name"], side["train"]
    users, u, book_ids, order = side["users"], side["user_pos"], side["book_ids"], side["by_readers"]
    user_key, book_key = side["user_key"], side["book_key"]
    scores: dict[str, dict] = {"popularity": pop}
    for m in (int(v) for v in a.books.split(",")):
        books = np.sort(order[:m])
        inside = np.isin(book_ids, books)
        x = np.zeros((len(users), len(books)), dtype=np.float64)
        x[u[inside], np.searchsorted(books, book_ids[inside])] = 1.0
        ids = book_key.reindex(books).to_numpy().astype("int64")
        for l2 in (float(v) for v in a.lambdas.split(",")):
            t0 = time.perf_counter()
            top = full_ease_top(x, l2)
            recs = pd.DataFrame(
                {
                    "user_id": np.repeat(user_key(users), 10),
                    "rank": np.tile(np.arange(1, 11), len(users)),
                    "book_id": ids[top.ravel()],
                }
            )
            label = f"full ease, {len(books)} books, l2 {l2:g}"
            scores[label] = {**quality.score(recs, truth), "seconds": round(time.perf_counter() - t0, 1)}
            print(label, scores[label], flush=True)
    append_result(
        "ease_dual",
        {
            "source": f"{a.source.name}/{name}",
            "command": "python bench/ease_dual.py " + " ".join(sys.argv[1:]),
            "measured": time.strftime("%Y-%m-%d"),
            "train_rows": len(train),
            "users": len(users),
            "books": len(order),
            "scores": scores,
        },
    )


if __name__ == "__main__":
    main()
