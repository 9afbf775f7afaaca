"""The hidden goodbooks-ratings shape from generated data: a few thousand users with about a hundred ratings each
over the most rated books only, as goodbooks-10k was cut from Goodreads (its 10,000 most popular books) and as
``../shared/quality-protocol.md`` describes the hidden set.

    recspark generate --scale 0.01 --seed 7 --out /tmp/gbl/full
    python bench/goodbooks_like.py --source /tmp/gbl/full --out /tmp/gbl/ratings --books 8000 --users 3000
    python bench/quality.py --name generated-goodbooks-like --source /tmp/gbl/ratings --format goodbooks
    python bench/hand_tuned_als.py --source /tmp/gbl/ratings --format goodbooks

From a generated UCSD folder: the rated shelves of the ``--books`` most rated books, users with at least ``--min``
of them, ``--users`` of those drawn at random (``--seed``), each keeping at most ``--max`` ratings (drawn at
random), written as ``ratings.csv`` + ``books.csv`` (``recspark.sources.synthetic.to_goodbooks``). Prints the
shape beside goodbooks-10k's (53,424 users, 10,000 books, 5,976,479 ratings: 112 per user, 598 per book). No
Spark.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np


def cut(
    data: np.ndarray, books: int, min_ratings: int, users: int, max_ratings: int, seed: int
) -> np.ndarray:
    """The kept rows of ``data`` (UCSD interaction rows ``user, book, is_read, rating, is_reviewed``)."""
    rng = np.random.default_rng(seed)
    data = data[data[:, 3] > 0]
    per_book = np.bincount(data[:, 1])
    top = np.argsort(-per_book, kind="stable")[:books]
    data = data[np.isin(data[:, 1], top)]
    per_user = np.bincount(data[:, 0])
    pool = np.flatnonzero(per_user >= min_ratings)
    keep = rng.choice(pool, size=min(users, len(pool)), replace=False)
    data = data[np.isin(data[:, 0], keep)]
    order = np.lexsort((rng.random(len(data)), data[:, 0]))  # per user, a random order
    data = data[order]
    first = np.r_[0, np.flatnonzero(np.diff(data[:, 0])) + 1]
    position = np.arange(len(data)) - np.repeat(first, np.diff(np.r_[first, len(data)]))
    return data[position < max_ratings]


def shape(data: np.ndarray) -> str:
    per_user = np.bincount(np.unique(data[:, 0], return_inverse=True)[1])
    per_book = np.sort(np.bincount(np.unique(data[:, 1], return_inverse=True)[1]))[::-1]
    top1 = per_book[: max(1, len(per_book) // 100)].sum() / len(data)
    stars = np.bincount(data[:, 3], minlength=6)[1:] / len(data)
    return (
        f"{len(per_user):,} users, {len(per_book):,} books, {len(data):,} ratings; per user mean "
        f"{per_user.mean():.0f} (median {np.median(per_user):.0f}, {per_user.min()}-{per_user.max()}); per book mean "
        f"{per_book.mean():.0f} (median {np.median(per_book):.0f}); the most rated book by "
        f"{per_book[0] / len(per_user):.0%} of users; the top 1% of books hold {top1:.0%} of ratings; "
        f"stars 1-5: {' / '.join(f'{s:.0%}' for s in stars)}"
    )


def main() -> None:
    from recspark.sources.synthetic import (
        AUTHORS_JSON,
        BOOK_MAP_CSV,
        BOOKS_JSON,
        INTERACTIONS_CSV,
        to_goodbooks,
    )

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True, help="a generated UCSD folder (recspark generate)")
    p.add_argument("--out", required=True)
    p.add_argument("--books", type=int, default=8000, help="keep the ratings of this many most rated books")
    p.add_argument("--users", type=int, default=3000)
    p.add_argument("--min", type=int, default=20, help="fewest ratings (of the kept books) of a kept user")
    p.add_argument("--max", type=int, default=200, help="most ratings kept per user")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    src = Path(a.source)
    data = np.loadtxt(src / INTERACTIONS_CSV, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    kept = cut(data, a.books, a.min, a.users, a.max, a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        np.savetxt(
            Path(tmp) / INTERACTIONS_CSV,
            kept,
            fmt="%d",
            delimiter=",",
            header="user_id,book_id,is_read,rating,is_reviewed",
            comments="",
        )
        for name in (BOOK_MAP_CSV, AUTHORS_JSON, BOOKS_JSON):
            os.symlink((src / name).resolve(), Path(tmp) / name)
        counts = to_goodbooks(tmp, a.out)
    print(f"{a.out}: {counts}")
    print(shape(kept))


if __name__ == "__main__":
    main()
