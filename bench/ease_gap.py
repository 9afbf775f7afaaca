"""Plain numpy EASE on exactly the split and scoring of ``bench/quality.py``: how far are the product's published
lists from the textbook model on the same input?

    python bench/ease_gap.py --source ../shared/data/goodbooks-10k --lambdas 1,4,16 [--lake LAKE]

Re-creates ``bench/quality.py``'s holdout (same function, same ``--seed``), fits EASE (``B = -P / diag(P)``,
``P = (XᵀX + λ·mean_readers·I)⁻¹``, ``diag(B) = 0``) on the training side over every book, and scores each user's
top 10 (shelved books excluded) with ``bench/quality.py``'s own ``score``. Like the product, EASE covers the
``--max-books`` most-read books only. Each ``l2`` of ``--lambdas`` is scored
with the full ``B``, with its positive weights only, and with each row of ``B`` cut to its ``--cuts`` largest
positive weights (400: what the product keeps); with ``--magnitude`` also to its ``--cuts`` weights of
largest magnitude, negative ones kept.
With ``--lake`` (a ``bench/quality.py --work`` folder's lakehouse of the same split and seed) the published lists
of its last run are scored beside them, and the two sets of lists are compared user by user (share of the top 10
in common). goodbooks (``ratings.csv`` or ``to_read.csv``) or, with ``--format goodreads``, the UCSD CSVs
(relevant: held-out ``is_read``). With ``--shelf-weights`` each shelf's entry of ``X`` (in the Gram matrix and in
the user's row that is scored) is weighted: ``stars`` rated ``r`` -> ``r / 5``, unrated 1; ``liked`` rated below
4 -> 0.25, else 1; ``read`` an unread shelf 0.5, a read one 1 (``read0.25``: 0.25); ``read+stars`` both factors;
``binary`` (the default) 1 for every shelf; a list of them scores each.
Appends to ``bench/results/ease_gap.json``.
"""

from __future__ import annotations

import argparse
import itertools
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
from ease import ease_weights, positive_top  # noqa: E402  (bench/ease.py: the same B and positive cut)


def magnitude_top(w: np.ndarray, n: int) -> np.ndarray:
    """Each seed book's row of ``w`` cut to its ``n`` weights of largest magnitude, negative ones kept."""
    thr = -np.partition(-np.abs(w), n, axis=1)[:, n : n + 1]
    return np.where(np.abs(w) >= thr, w, 0.0)


def gram_capped(x: np.ndarray, cap: int, seed: int) -> tuple[np.ndarray, float]:
    """``(XᵀX, mean readers per book)`` over at most ``cap`` shelves per user (a seeded random subset; 0: all)."""
    if cap:
        rng = np.random.default_rng(seed)
        x = x.copy()
        for u in np.flatnonzero((x > 0).sum(axis=1) > cap):
            shelved = np.flatnonzero(x[u])
            x[u, rng.choice(shelved, len(shelved) - cap, replace=False)] = 0.0
    g = (x.T @ x).astype(np.float64)
    return g, float(np.diag(g).mean())


def shelf_weights(rating: np.ndarray, is_read: np.ndarray, how: str) -> np.ndarray:
    """Each shelf's entry of ``X`` from its stars (0: unrated) and whether it was read: ``binary`` 1; ``stars``
    ``r / 5``, unrated 1; ``liked`` 0.25 below 4 stars, else 1; ``read`` / ``readF`` unread ``F`` (default
    0.5), read 1; ``read+stars`` the product of the two."""
    rated = rating > 0
    w = np.ones(len(rating), dtype=np.float64)
    for part in how.split("+"):
        if part == "binary":
            continue
        if part == "stars":
            w *= np.where(rated, rating / 5.0, 1.0)
        elif part == "liked":
            w *= np.where(rated & (rating < 4), 0.25, 1.0)
        elif part.startswith("read"):
            w *= np.where(is_read, 1.0, float(part[4:] or 0.5))
        else:
            raise ValueError(f"unknown shelf weights {how!r}")
    return w.astype(np.float32)


def top_lists(
    x: np.ndarray, w: np.ndarray, k: int = 10, batch: int = 4096, excluded: np.ndarray | None = None
) -> np.ndarray:
    """Each user's (row of ``x``) top ``k`` columns by ``x @ w``, the user's nonzero columns of ``excluded``
    (default: of ``x``) left out."""
    excluded = x if excluded is None else excluded
    out = np.empty((len(x), k), dtype=np.int64)
    for s in range(0, len(x), batch):
        xb = x[s : s + batch]
        sc = np.where(excluded[s : s + batch] > 0, -np.inf, xb @ w)
        idx = np.argpartition(-sc, k, axis=1)[:, :k]
        out[s : s + batch] = np.take_along_axis(idx, np.argsort(-np.take_along_axis(sc, idx, 1), axis=1), 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--lambdas", default="1,4,16")
    p.add_argument("--seed", type=int, default=1, help="bench/quality.py's --seed")
    p.add_argument(
        "--cuts", default="400", help="also score each B cut to this many positive weights per book"
    )
    p.add_argument("--magnitude", action="store_true", help="also cut by magnitude, negative weights kept")
    p.add_argument(
        "--lake", type=Path, help="a bench/quality.py lakehouse of the same split: score its lists too"
    )
    p.add_argument("--format", choices=["goodbooks", "goodreads"], default="goodbooks")
    p.add_argument(
        "--max-books", type=int, default=10_000, help="the catalogue: the most-read books (as ease.py)"
    )
    p.add_argument(
        "--shelf-weights",
        default="binary",
        help="binary, stars, liked, read[F] or a product such as read+stars (comma-separated: each scored)",
    )
    p.add_argument(
        "--user-caps",
        default="0",
        help="Gram matrix from at most this many shelves per user, a random seeded subset (the product's "
        "ItemCfParams.max_user_books on undated CSV input); 0: every shelf. Scoring uses every shelf.",
    )
    a = p.parse_args()
    side = quality.training_side(a.source, a.format, a.seed)
    truth, pop, name, train = side["truth"], side["popularity"], side["name"], side["train"]
    users, u, book_ids, order = side["users"], side["user_pos"], side["book_ids"], side["by_readers"]
    user_key, book_key = side["user_key"], side["book_key"]
    books = np.sort(order[: a.max_books])  # the catalogue, as ease.catalogue keeps it (ties: any)
    inside = np.isin(book_ids, books)
    b = np.searchsorted(books, book_ids[inside])
    shelved = np.zeros((len(users), len(books)), dtype=np.float32)
    shelved[u[inside], b] = 1.0
    stars = train["rating"].fillna(0).to_numpy()[inside] if "rating" in train else np.zeros(inside.sum())
    # goodbooks rows: rated ones were read, to-read ones not (as ingest reads them)
    read = train["is_read"].to_numpy()[inside] > 0 if "is_read" in train else stars > 0
    ids = {"user": user_key(users), "book": book_key.reindex(books).to_numpy().astype("int64")}
    rows: dict[str, dict] = {"popularity": pop}
    ours: dict[str, np.ndarray] = {}
    xs = {}
    for how in a.shelf_weights.split(","):
        xs[how] = np.zeros_like(shelved)
        xs[how][u[inside], b] = shelf_weights(stars, read, how)
    grams = [
        (how, cap, gram_capped(xs[how], cap, a.seed))
        for how in xs
        for cap in (int(v) for v in a.user_caps.split(","))
    ]
    for (how, cap, (g, mean_readers)), l2 in itertools.product(
        grams, (float(v) for v in a.lambdas.split(","))
    ):
        t0 = time.perf_counter()
        x = xs[how]
        w = ease_weights(g, l2 * mean_readers)
        tag = f"ease l2 {l2:g}" + (f" cap {cap}" if cap else "") + (f" {how}" if how != "binary" else "")
        cuts = [(f"{tag} top {n} positive", n) for n in (int(v) for v in a.cuts.split(","))]
        variants = [(tag, w), (f"{tag} positive", np.maximum(w, 0.0))]
        weighted = [(label, positive_top(w, n)) for label, n in cuts]
        if a.magnitude:
            weighted += [
                (label.replace("positive", "by magnitude"), magnitude_top(w, n)) for label, n in cuts
            ]
        for label, weights in variants + weighted:
            picks = top_lists(x, weights.astype(np.float32), excluded=shelved)
            ours[label] = picks
            recs = pd.DataFrame(
                {
                    "user_id": np.repeat(ids["user"], 10),
                    "rank": np.tile(np.arange(1, 11), len(users)),
                    "book_id": ids["book"][picks.ravel()],
                }
            )
            rows[label] = quality.score(recs, truth)
            print(label, rows[label], f"{time.perf_counter() - t0:.1f} s", flush=True)
    if a.lake:
        _, recs = quality.published_lists(a.lake)[-1]
        rows["published"] = quality.score(recs, truth)
        print("published", rows["published"], flush=True)
        best = max((k for k in ours if "top" in k), key=lambda k: rows[k]["ndcg@10"])
        mine = {uid: set(ids["book"][ours[best][i]]) for i, uid in enumerate(ids["user"])}
        theirs = recs.groupby("user_id")["book_id"].apply(set)
        shared = [len(mine[uid] & s) / 10 for uid, s in theirs.items() if uid in mine]
        rows["published"]["top10_shared_with"] = {best: round(float(np.mean(shared)), 3)}
    result = {
        "source": f"{a.source.name}/{name}",
        "command": "python bench/ease_gap.py " + " ".join(sys.argv[1:]),
        "measured": time.strftime("%Y-%m-%d"),
        "train_rows": len(train),
        "users": len(users),
        "books": len(books),
        "mean_readers_per_book": {f"{how} {cap}": round(m, 2) for how, cap, (_, m) in grams},
        "scores": rows,
    }
    print(json.dumps(result, indent=1))
    append_result("ease_gap", result)


if __name__ == "__main__":
    main()
