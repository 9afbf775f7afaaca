"""Does EASE's best ``l2`` move with the amount of training data? Plain numpy on ``bench/quality.py``'s split.

    python bench/ease_curve.py --source /tmp/ml100k --format goodbooks

The product chooses item-CF's EASE ``l2`` on validation, fitted on about three quarters of the data a run sees,
and publishes neighbours fitted on all of it with the same ``l2``. ``l2`` is relative: ``λ = l2 × mean readers
per catalogue book`` (:mod:`recspark.ease`), so λ grows with the data. In a ridge regression the prior's
precision does not grow with the data; if EASE's best λ in absolute terms stays put as the data grows, the best
relative ``l2`` falls and the product publishes with too strong a λ (MovieLens 100k: validation chose l2 64,
l2 16 scored 8% higher on the test; docs/quality.md).

``bench/quality.py``'s holdout (same function, ``--seed``) leaves P, the training side (what a run sees). Nested
per-user thinnings keep about 80%, 64% and 51% of P's rows (each a random subset of the one before, seeded).
At every level EASE (``B = -P / diag(P)``, each book's row cut to its 400 largest positive weights, as the
product keeps) is fitted over the ``--max-books`` most-read books of P for every ``l2`` of ``--lambdas``, and each
test user's top 10 (books of P excluded: the hidden check counts them as misses) scored with ``bench/quality.py``'s
``score``. Printed and appended to ``bench/results/ease_curve.json``: each level's rows, mean readers per book,
NDCG@10 per ``l2``, and the best ``l2`` with its absolute λ.
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
from ease import ease_weights, positive_top  # noqa: E402
from ease_gap import top_lists  # noqa: E402

LEVELS = 3  # nested thinnings: P x 0.8, x 0.64, x 0.512
KEEP = 0.8
NEIGHBOURS = 400


def thinned(x: np.ndarray, keep: float, rng: np.random.Generator) -> np.ndarray:
    """``x`` with a random ``1 - keep`` of each user's nonzero entries set to 0 (at least one kept)."""
    out = x.copy()
    for u in range(len(x)):
        shelved = np.flatnonzero(x[u])
        drop = int(np.floor(len(shelved) * (1 - keep)))
        if drop and len(shelved) > 1:
            out[u, rng.choice(shelved, min(drop, len(shelved) - 1), replace=False)] = 0.0
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--format", choices=["goodbooks", "goodreads"], default="goodbooks")
    p.add_argument("--lambdas", default="1,2,4,8,16,32,64,128,256")
    p.add_argument("--seed", type=int, default=1, help="bench/quality.py's --seed")
    p.add_argument("--max-books", type=int, default=10_000, help="the catalogue: P's most-read books")
    p.add_argument("--name", default=None, help="the record's name (default: the source folder)")
    a = p.parse_args()
    t_start = time.perf_counter()
    side = quality.training_side(a.source, a.format, a.seed)
    truth, users, u, book_ids, order = (
        side[k] for k in ("truth", "users", "user_pos", "book_ids", "by_readers")
    )
    books = np.sort(order[: a.max_books])
    inside = np.isin(book_ids, books)
    full = np.zeros((len(users), len(books)), dtype=np.float32)
    full[u[inside], np.searchsorted(books, book_ids[inside])] = 1.0
    user_ids = side["user_key"](users)
    book_keys = side["book_key"].reindex(books).to_numpy().astype("int64")
    rng = np.random.default_rng(a.seed + 100)
    lambdas = [float(v) for v in a.lambdas.split(",")]
    levels: list[dict] = []
    x = full
    for level in range(LEVELS + 1):
        if level:
            x = thinned(x, KEEP, rng)
        g = (x.T @ x).astype(np.float64)
        mean_readers = float(np.diag(g).mean())
        scores = {}
        for l2 in lambdas:
            w = positive_top(ease_weights(g, l2 * mean_readers), NEIGHBOURS).astype(np.float32)
            picks = top_lists(x, w, excluded=full)  # every book of P is a miss, whatever the level
            recs = pd.DataFrame(
                {
                    "user_id": np.repeat(user_ids, 10),
                    "rank": np.tile(np.arange(1, 11), len(users)),
                    "book_id": book_keys[picks.ravel()],
                }
            )
            scores[f"{l2:g}"] = quality.score(recs, truth)["ndcg@10"]
        best = max(scores, key=scores.get)
        row = {
            "rows": int((x > 0).sum()),
            "share": round(float((x > 0).sum() / (full > 0).sum()), 3),
            "mean_readers": round(mean_readers, 2),
            "ndcg@10": scores,
            "best_l2": float(best),
            "best_lambda": round(float(best) * mean_readers, 1),
        }
        levels.append(row)
        print(json.dumps(row), f"{time.perf_counter() - t_start:.0f} s", flush=True)
    result = {
        "name": a.name or a.source.name,
        "source": f"{a.source.name}/{side['name']}",
        "command": "python bench/ease_curve.py " + " ".join(sys.argv[1:]),
        "measured": time.strftime("%Y-%m-%d"),
        "users": len(users),
        "books": len(books),
        "levels": levels,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    append_result("ease_curve", result)


if __name__ == "__main__":
    main()
