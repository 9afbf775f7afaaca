"""Item-CF's liked-share prior in plain numpy, on exactly the split and scoring of ``bench/quality.py``: EASE plus
``γ`` times the book's liked share, before it was built (``recspark.itemcf``, step 5).

    python bench/liked_prior.py --source DIR [--format goodreads] --l2 8 [--shelf-weights read] \
        [--gammas 0,0.05,0.1,0.2,0.3,1] [--pseudo 2,10]

EASE over the 10,000 most-read books at ``--l2`` (times the mean readers per book, as the product), each book's
row cut to its 400 weights of largest magnitude (what the product keeps), the shelves weighted by
``--shelf-weights`` (``bench/ease_gap.py``'s schemes); each user's sums scaled to 1 at the top, plus ``γ`` times
the book's liked share: its liked shelves (not rated below 4 stars, and read where the data records reading, as
``recspark.candidates.liked``) plus ``a`` pseudo-shelves at the overall share, over its shelves plus ``a``, for each
``a`` of ``--pseudo`` (the product uses 10). Scores each user's top 10, shelved books excluded, with
``bench/quality.py``'s ``score``. Appends to ``bench/results/liked_prior.json``.
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
import quality  # noqa: E402
from common import append_result  # noqa: E402
from ease import ease_weights  # noqa: E402
from ease_gap import magnitude_top, shelf_weights  # noqa: E402

READ_RECORDED_SHARE = 0.05  # recspark.candidates: reading is recorded when 5-95% of the shelves are read


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--format", choices=["goodbooks", "goodreads"], default="goodbooks")
    p.add_argument("--l2", type=float, required=True, help="EASE's l2 (the product's choice on this data)")
    p.add_argument(
        "--shelf-weights", default="binary", help="bench/ease_gap.py's schemes: binary, stars, read"
    )
    p.add_argument("--gammas", default="0,0.05,0.1,0.2,0.3,1")
    p.add_argument("--pseudo", default="2,10", help="pseudo-shelves at the overall liked share")
    p.add_argument("--seed", type=int, default=1, help="bench/quality.py's --seed")
    a = p.parse_args()
    t0 = time.perf_counter()
    side = quality.training_side(a.source, a.format, a.seed)
    truth, train = side["truth"], side["train"]
    users, u, book_ids, order = side["users"], side["user_pos"], side["book_ids"], side["by_readers"]
    books = np.sort(order[:10_000])
    inside = np.isin(book_ids, books)
    b = np.searchsorted(books, book_ids[inside])
    stars = train["rating"].fillna(0).to_numpy()[inside] if "rating" in train else np.zeros(inside.sum())
    read = train["is_read"].to_numpy()[inside] > 0 if "is_read" in train else stars > 0
    share_read = float(read.mean())
    reads = "is_read" in train and READ_RECORDED_SHARE <= share_read <= 1 - READ_RECORDED_SHARE
    liked = ~((stars > 0) & (stars < 4)) & (read if reads else True)
    x = np.zeros((len(users), len(books)), dtype=np.float32)
    x[u[inside], b] = shelf_weights(stars, read, a.shelf_weights)
    g = (x.T @ x).astype(np.float64)
    w = magnitude_top(ease_weights(g, a.l2 * float(np.diag(g).mean())), 400).astype(np.float32)
    sums = x @ w
    sums = sums / np.maximum(sums.max(axis=1, keepdims=True), 1e-12)
    shelved = (x != 0).astype(np.float32)
    n_books = np.bincount(b, minlength=len(books)).astype(np.float64)
    n_liked = np.bincount(b, weights=liked.astype(np.float64), minlength=len(books))
    overall = float(liked.mean())
    ids = {
        "user": side["user_key"](users),
        "book": side["book_key"].reindex(books).to_numpy().astype("int64"),
    }
    scores: dict[str, float] = {}
    for pseudo in (float(v) for v in a.pseudo.split(",")):
        share = ((n_liked + pseudo * overall) / (n_books + pseudo)).astype(np.float32)
        for gamma in (float(v) for v in a.gammas.split(",")):
            sc = np.where(shelved > 0, -np.inf, sums + np.float32(gamma) * share)
            idx = np.argpartition(-sc, 10, axis=1)[:, :10]
            picks = np.take_along_axis(idx, np.argsort(-np.take_along_axis(sc, idx, 1), axis=1), 1)
            recs = pd.DataFrame(
                {
                    "user_id": np.repeat(ids["user"], 10),
                    "rank": np.tile(np.arange(1, 11), len(users)),
                    "book_id": ids["book"][picks.ravel()],
                }
            )
            key = f"pseudo {pseudo:g} gamma {gamma:g}"
            scores[key] = quality.score(recs, truth)["ndcg@10"]
            print(key, scores[key], flush=True)
    result = {
        "source": f"{a.source.name}/{side['name']}",
        "command": "python bench/liked_prior.py " + " ".join(sys.argv[1:]),
        "measured": time.strftime("%Y-%m-%d"),
        "reads_recorded": bool(reads),
        "overall_liked_share": round(overall, 4),
        "popularity": side["popularity"]["ndcg@10"],
        "ndcg@10": scores,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    append_result("liked_prior", result)


if __name__ == "__main__":
    main()
