"""Plain numpy EASE on the product's own tuning or evaluation split, or on ``bench/quality.py``'s split with part of
the training rows left out: does EASE's lead over popularity depend on how much of each user's shelves it sees?

    python bench/ease_splits.py --lake LAKE --split tune --relevant liked     # the product's validation split
    python bench/ease_splits.py --source DIR --format goodreads --keep 1,0.8,0.64

With ``--lake`` (a lakehouse of a finished run) the training side is ``model/<split>_train`` and the truth
``model/tune_valid`` or ``model/split_test`` (``liked``: unrated or rated 4-5, what the product's validation counts;
``is_read``: what the hidden UCSD check counts). With ``--source`` the split is ``bench/quality.py``'s (same function,
same ``--seed``; truth: its ``relevant``). With ``--keep`` only a random (seeded) share of each split's training rows
is the model's input, while every training row is still excluded from the lists (so a left-out row is neither a
seed nor a recommendation: only the amount of data changes). Each ``l2`` of ``--lambdas`` is scored with the full
``B`` and with each row cut to its 400 weights of largest magnitude (what the product keeps); popularity is ranked by
readers in the same input. Catalogue: the ``--max-books`` most-read books of the input (ties: first seen). NDCG@10
over users with a relevant held-out book. Appends to ``bench/results/ease_splits.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import quality  # noqa: E402  (bench/quality.py: the split of the hidden checks)
from common import append_result, goodbooks_rows  # noqa: E402
from ease import ease_weights  # noqa: E402  (bench/ease.py: the same B)
from ease_gap import magnitude_top, top_lists  # noqa: E402

K = 10  # bench/quality.py's cut-off


def lake_split(lake: Path, which: str, relevant: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, truth)`` as ``(user, book)`` frames from a run's persisted split tables."""
    from deltalake import DeltaTable

    train = DeltaTable(str(lake / "model" / f"{which}_train")).to_pandas(columns=["user_idx", "book_idx"])
    test = DeltaTable(str(lake / "model" / ("tune_valid" if which == "tune" else "split_test"))).to_pandas()
    if relevant == "liked":
        keep = (test["rating"] == 0) | (test["rating"] >= 4) | test["rating"].isna()
    else:
        keep = test["is_read"].astype(bool)
    rename = {"user_idx": "user", "book_idx": "book"}
    return train.rename(columns=rename), test.loc[keep, ["user_idx", "book_idx"]].rename(columns=rename)


def quality_split(source: Path, fmt: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, truth)`` of ``bench/quality.py``'s split, in the gold tables' ids."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "input"
        truth = quality.prepare(source.resolve(), fmt, out, seed)
        if fmt == "goodbooks":
            name = goodbooks_rows(out)
            rows = pd.read_csv(out / name)
            gr = pd.read_csv(out / "books.csv").set_index("book_id")["goodreads_book_id"]
            train = pd.DataFrame({"user": rows["user_id"].astype(str), "book": rows["book_id"].map(gr)})
        else:
            rows = pd.read_csv(out / "goodreads_interactions.csv")
            users = pd.read_csv(out / "user_id_map.csv").set_index("user_id_csv")["user_id"]
            books = pd.read_csv(out / "book_id_map.csv").set_index("book_id_csv")["book_id"]
            train = pd.DataFrame(
                {"user": rows["user_id"].map(users).astype(str), "book": rows["book_id"].map(books)}
            )
    truth = truth[truth["relevant"]]
    return train, pd.DataFrame({"user": truth["user_id"], "book": truth["book_id"]})


def ndcg(lists: np.ndarray, users: np.ndarray, books: np.ndarray, truth: pd.DataFrame) -> float:
    """``bench/quality.py``'s NDCG@10 of the lists (column indices into ``books``, one row per user)."""
    recs = pd.DataFrame(
        {
            "user_id": np.repeat(users, K),
            "rank": np.tile(np.arange(1, K + 1), len(users)),
            "book_id": books[lists.ravel()],
        }
    )
    return quality.score(recs, truth, K)[f"ndcg@{K}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lake", type=Path, help="a finished run's lakehouse: use its split tables")
    p.add_argument("--split", choices=["tune", "split"], default="tune")
    p.add_argument("--relevant", choices=["liked", "is_read"], default="liked")
    p.add_argument("--source", type=Path, help="or: bench/quality.py's split of this input")
    p.add_argument("--format", choices=["goodbooks", "goodreads"], default="goodreads")
    p.add_argument("--seed", type=int, default=1, help="bench/quality.py's --seed")
    p.add_argument("--lambdas", default="4,16")
    p.add_argument("--keep", default="1", help="shares of the training rows the model sees, e.g. 1,0.8,0.64")
    p.add_argument("--max-books", type=int, default=10_000)
    a = p.parse_args()
    if (a.lake is None) == (a.source is None):
        p.error("give one of --lake or --source")
    if a.lake is not None:
        train, truth_rows = lake_split(a.lake, a.split, a.relevant)
        label = f"{a.lake} {a.split} split, relevant: {a.relevant}"
    else:
        train, truth_rows = quality_split(a.source, a.format, a.seed)
        label = f"{a.source.name}: bench/quality.py split"
    truth = pd.DataFrame({"user_id": truth_rows["user"], "book_id": truth_rows["book"], "relevant": True})
    users = np.sort(train["user"].unique())
    rows = []
    for keep in (float(v) for v in a.keep.split(",")):
        seen = train[np.random.default_rng(5).random(len(train)) < keep] if keep < 1 else train
        counts = seen["book"].value_counts()
        books = np.sort(counts.index[: a.max_books].to_numpy())

        def matrix(df: pd.DataFrame, books: np.ndarray = books) -> np.ndarray:
            inside = df[df["book"].isin(books)]
            x = np.zeros((len(users), len(books)), dtype=np.float32)
            x[np.searchsorted(users, inside["user"]), np.searchsorted(books, inside["book"])] = 1.0
            return x

        x, excluded = matrix(seen), matrix(train)
        result = {"keep": keep, "input_rows": len(seen), "books": len(books)}
        readers = x.sum(axis=0, keepdims=True)  # popularity: every user's score for a book is its readers
        ones = np.ones((len(users), 1), dtype=np.float32)
        result["popularity"] = ndcg(top_lists(ones, readers, excluded=excluded), users, books, truth)
        g = (x.T @ x).astype(np.float64)
        mean_readers = float(np.diag(g).mean())
        for l2 in (float(v) for v in a.lambdas.split(",")):
            t0 = time.perf_counter()
            w = ease_weights(g, l2 * mean_readers)
            result[f"ease l2 {l2:g}"] = ndcg(
                top_lists(x, w.astype(np.float32), excluded=excluded), users, books, truth
            )
            cut = magnitude_top(w, 400).astype(np.float32)
            result[f"ease l2 {l2:g} top 400 by magnitude"] = ndcg(
                top_lists(x, cut, excluded=excluded), users, books, truth
            )
            print(keep, l2, result, f"{time.perf_counter() - t0:.1f} s", flush=True)
        rows.append(result)
    out = {
        "data": label,
        "command": "python bench/ease_splits.py " + " ".join(sys.argv[1:]),
        "measured": time.strftime("%Y-%m-%d"),
        "users": len(users),
        "scored_users": int(truth["user_id"].nunique()),
        "rows": rows,
    }
    print(json.dumps(out, indent=1))
    append_result("ease_splits", out)


if __name__ == "__main__":
    main()
