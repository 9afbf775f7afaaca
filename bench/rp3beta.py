"""RP3beta beside EASE in plain numpy, on exactly the split and scoring of ``bench/quality.py``.

    python bench/rp3beta.py --source ../shared/data/goodbooks-10k [--format goodbooks] \
        [--alphas 0.5,1] [--betas 0,0.3,0.5,0.7] [--neighbours 100,400] [--lambdas 1,4,16,64]

RP3beta (Paudel et al. 2017; one of the strongest simple baselines in Dacrema et al. 2019, "Are we really making
much progress?") is a three-step random walk user -> book -> user -> book with a popularity penalty:
``W_ij = readers_i^-α · Σ_u x_ui · x_uj · books_u^-α / readers_j^β`` (``x`` the binary shelves, ``books_u`` the
user's shelves, ``readers_i`` the book's), the diagonal zeroed, each row cut to its ``--neighbours`` largest
weights, a user's score ``Σ_j x_uj · W_ji``. It needs the same counts item-CF already has, weighted by the user's
activity, and no inverse: would it beat the EASE configurations the product searches?

Both cover the ``--max-books`` most-read books, as the product's EASE does; EASE is scored as the product keeps
it (each row cut to its 400 weights of largest magnitude, ``bench/ease_gap.py``). Every setting is scored on the
test holdout itself, so the best of each family is optimistic by the noise of its grid; compare the two bests
side by side, not with the product. Appends to ``bench/results/rp3beta.json``.
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
import quality  # noqa: E402  (bench/quality.py: the split and the scoring of the hidden checks)
from common import append_result  # noqa: E402
from ease import ease_weights  # noqa: E402
from ease_gap import magnitude_top, top_lists  # noqa: E402


def rp3_walk(x: np.ndarray, alpha: float) -> np.ndarray:
    """``readers_i^-α · Σ_u x_ui · x_uj · books_u^-α``: the two-step walk book -> user -> book, before the
    popularity penalty."""
    per_user = np.maximum(x.sum(axis=1), 1.0) ** -alpha
    per_book = np.maximum(x.sum(axis=0), 1.0) ** -alpha
    return (x.T @ (x * per_user[:, None]).astype(np.float32)) * per_book[:, None]


def rp3beta(walk: np.ndarray, readers: np.ndarray, beta: float, neighbours: int) -> np.ndarray:
    """The walk divided by ``readers_j^β`` per target book, diagonal zeroed, each row cut to its ``neighbours``
    largest weights (all weights are >= 0)."""
    w = walk / np.maximum(readers, 1.0)[None, :] ** beta
    np.fill_diagonal(w, 0.0)
    if neighbours < w.shape[1]:
        thr = -np.partition(-w, neighbours, axis=1)[:, neighbours : neighbours + 1]
        w = np.where(w >= thr, w, 0.0)
    return w.astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--format", choices=["goodbooks", "goodreads"], default="goodbooks")
    p.add_argument("--seed", type=int, default=1, help="bench/quality.py's --seed")
    p.add_argument("--alphas", default="0.5,1")
    p.add_argument("--betas", default="0,0.3,0.5,0.7")
    p.add_argument("--neighbours", default="100,400")
    p.add_argument("--lambdas", default="1,4,16,64", help="EASE l2 (relative to the mean readers per book)")
    p.add_argument("--max-books", type=int, default=10_000)
    a = p.parse_args()
    side = quality.training_side(a.source, a.format, a.seed)
    truth, users, u, book_ids = side["truth"], side["users"], side["user_pos"], side["book_ids"]
    books = np.sort(side["by_readers"][: a.max_books])
    inside = np.isin(book_ids, books)
    x = np.zeros((len(users), len(books)), dtype=np.float32)
    x[u[inside], np.searchsorted(books, book_ids[inside])] = 1.0
    ids_user = side["user_key"](users)
    ids_book = side["book_key"].reindex(books).to_numpy().astype("int64")

    def scored(w: np.ndarray) -> dict:
        picks = top_lists(x, w)
        recs = pd.DataFrame(
            {
                "user_id": np.repeat(ids_user, 10),
                "rank": np.tile(np.arange(1, 11), len(users)),
                "book_id": ids_book[picks.ravel()],
            }
        )
        return quality.score(recs, truth)

    rows: dict[str, dict] = {"popularity": side["popularity"]}
    g = (x.T @ x).astype(np.float64)
    mean_readers = float(np.diag(g).mean())
    for l2 in (float(v) for v in a.lambdas.split(",")):
        t0 = time.perf_counter()
        w = magnitude_top(ease_weights(g, l2 * mean_readers), 400).astype(np.float32)
        rows[f"ease l2 {l2:g}"] = scored(w) | {"seconds": round(time.perf_counter() - t0, 1)}
        print(f"ease l2 {l2:g}", rows[f"ease l2 {l2:g}"], flush=True)
    del g
    readers = x.sum(axis=0)
    for alpha in (float(v) for v in a.alphas.split(",")):
        walk = rp3_walk(x, alpha)
        for beta in (float(v) for v in a.betas.split(",")):
            for n in (int(v) for v in a.neighbours.split(",")):
                t0 = time.perf_counter()
                label = f"rp3beta alpha {alpha:g} beta {beta:g} neighbours {n}"
                rows[label] = scored(rp3beta(walk, readers, beta, n)) | {
                    "seconds": round(time.perf_counter() - t0, 1)
                }
                print(label, rows[label], flush=True)
    best = {
        fam: max((k for k in rows if k.startswith(fam)), key=lambda k: rows[k]["ndcg@10"])
        for fam in ("ease", "rp3beta")
    }
    result = {
        "source": f"{a.source.name}/{side['name']}",
        "command": "python bench/rp3beta.py " + " ".join(sys.argv[1:]),
        "measured": time.strftime("%Y-%m-%d"),
        "users": len(users),
        "books": len(books),
        "best": {fam: {"setting": k, "ndcg@10": rows[k]["ndcg@10"]} for fam, k in best.items()},
        "scores": rows,
    }
    print(json.dumps(result["best"], indent=1))
    append_result("rp3beta", result)


if __name__ == "__main__":
    main()
