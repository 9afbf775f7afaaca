"""Does validation choose EASE's ``l2`` better by NDCG@10 or deeper? Plain numpy on ``bench/quality.py``'s split.

    python bench/itemcf_choice.py --source /tmp/ml100k --format goodbooks --seeds 1,2,3,4,5,6

``bench/quality.py``'s holdout (``--seed`` 1) leaves P, what a run sees, and the test. EASE (each book's row cut to
its 400 largest positive weights, over P's 10,000 most-read books, as the product keeps) is fitted on P for every
``l2`` of the grid and scored on the test (NDCG@10, the hidden checks' measure). Then, for each of ``--seeds``, the
product's two holdouts are emulated on P (the evaluation's, then the tuning split's: per user ``ceil(20%)``, at most
20, users with one row kept whole), EASE fitted on what they leave for every ``l2``, and each ``l2`` scored on the
tuning split's liked held-out rows at NDCG@10, @20 and @50. Rules choose an ``l2`` from those scores:

* ``@10``: the best of the product's grid (1, 4, 16, 64) by NDCG@10 (the product before 99e050f);
* ``@D``: the best of the grid by NDCG@D;
* ``@D, refined``: the same, then the halfway points either side (a factor 2) tried and kept if they score higher
  at @D (:func:`recspark.tune.refined`). The product's rule is ``@20, refined``
  (:data:`recspark.tune.ITEMCF_CHOICE_DEPTH`).

Each rule's choice is scored by the test NDCG@10 of EASE fitted on P with it. ``--summary`` prints every rule's mean
over the splits of each record in the results file (from the validation scores stored there, by :func:`choose`). Liked rows as the hidden checks count
them (goodbooks ratings: rating >= 4; UCSD: read, and not rated below 4; ``to_read``: every row). Appends to
``bench/results/itemcf_choice.json``.
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

GRID = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)
PRODUCT_GRID = (1.0, 4.0, 16.0, 64.0)
DEPTHS = (10, 20, 50)
NEIGHBOURS = 400


def emulated_holdout(df: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The product's per-user holdout: ``ceil(20%)`` of each user's rows at random, at most 20, none from a user
    with one row."""
    rng = np.random.default_rng(seed)
    d = df.assign(_r=rng.random(len(df))).sort_values(["user_id", "_r"])
    i = d.groupby("user_id").cumcount()
    n = d.groupby("user_id")["user_id"].transform("size")
    test = (i < np.minimum(np.ceil(n * 0.2), 20)) & (n >= 2)
    return d[~test].drop(columns="_r"), d[test].drop(columns="_r")


def catalogue_side(source: Path, fmt: str):
    """``bench/quality.py``'s training side (``--seed`` 1) as EASE sees it here: ``(side, train, users, books,
    matrix)``, ``train`` with a ``_liked`` column as the hidden checks count likes (read, not rated below 4),
    ``books`` the 10,000 most-read, and ``matrix(df)`` the binary users x books matrix of rows ``df``."""
    side = quality.training_side(source, fmt, 1)
    train = side["train"].copy()
    rating = train["rating"] if "rating" in train else pd.Series(0, index=train.index)
    read = train["is_read"] > 0 if "is_read" in train else pd.Series(True, index=train.index)
    train["_liked"] = read & ((rating == 0) | (rating >= 4))
    users = side["users"]
    books = np.sort(side["by_readers"][:10_000])

    def matrix(df: pd.DataFrame) -> np.ndarray:
        df = df[df["book_id"].isin(books)]
        x = np.zeros((len(users), len(books)), np.float32)
        x[np.searchsorted(users, df["user_id"]), np.searchsorted(books, df["book_id"])] = 1.0
        return x

    return side, train, users, books, matrix


def rules_parser(doc: str, seeds: str) -> argparse.ArgumentParser:
    """The options of a bench that scores choice rules on emulated tuning splits (this one, ``bench/ease_cut.py``)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--summary", action="store_true", help="every rule on the stored records, then exit")
    p.add_argument("--source", type=Path)
    p.add_argument("--format", choices=["goodbooks", "goodreads"], default="goodbooks")
    p.add_argument("--seeds", default=seeds, help="the emulated tuning splits")
    p.add_argument("--name", default=None, help="the record's name (default: the source folder)")
    return p


def rules_args(p: argparse.ArgumentParser, summary) -> argparse.Namespace | None:
    """The parsed options, or None once ``--summary`` has printed ``summary()``."""
    a = p.parse_args()
    if a.summary:
        summary()
        return None
    if a.source is None:
        p.error("--source is required (or --summary)")
    return a


def tuning_split(
    train: pd.DataFrame, seed: int, users: np.ndarray, books: np.ndarray
) -> tuple[pd.DataFrame, dict[int, set]]:
    """The product's two holdouts emulated on ``train`` (:func:`emulated_holdout`, the evaluation's then the
    tuning split's): the rows the tuning split fits on, and its liked held-out books among ``books`` per user
    position (book positions)."""
    seen, _ = emulated_holdout(train, seed)
    fit_on, held = emulated_holdout(seen, seed + 1000)
    held = held[held["_liked"] & held["book_id"].isin(books)]
    truth = {
        int(u): set(np.searchsorted(books, g["book_id"]))
        for u, g in held.groupby(np.searchsorted(users, held["user_id"]))
    }
    return fit_on, truth


def record_rules(
    bench: str, a: argparse.Namespace, users: int, books: int, test: dict, splits: list[dict], t_start: float
) -> None:
    """Print each rule's mean test NDCG@10 over ``splits`` and append the record to
    ``bench/results/<bench>.json``."""
    mean = {
        rule: round(float(np.mean([s["test_of_chosen"][rule] for s in splits])), 5)
        for rule in splits[0]["chosen"]
    }
    print("mean test NDCG@10 of each rule's choice:", mean)
    append_result(
        bench,
        {
            "name": a.name or a.source.name,
            "command": f"python bench/{bench}.py " + " ".join(sys.argv[1:]),
            "measured": time.strftime("%Y-%m-%d"),
            "users": users,
            "books": books,
            "test_ndcg@10": test,
            "splits": splits,
            "mean_test_of_chosen": mean,
            "seconds": round(time.perf_counter() - t_start, 1),
        },
    )


def ndcg(picks: np.ndarray, truth: dict[int, set], k: int) -> float:
    """Mean NDCG@k over the rows of ``picks`` (user positions) with a relevant book in ``truth``."""
    disc = 1 / np.log2(np.arange(2, k + 2))
    found = []
    for u, rel in truth.items():
        dcg = sum(disc[r] for r, b in enumerate(picks[u][:k]) if b in rel)
        found.append(dcg / disc[: min(len(rel), k)].sum())
    return float(np.mean(found)) if found else 0.0


def choose(valid: dict[float, list[float]]) -> dict[str, float]:
    """Each rule's ``l2`` from the validation scores (``l2`` -> NDCG at :data:`DEPTHS`)."""
    rules = {}
    for j, depth in enumerate(DEPTHS):
        best = max(PRODUCT_GRID, key=lambda l2: valid[l2][j])
        rules[f"@{depth}"] = best
        refined = best
        for l2 in (best / 2, best * 2):
            if l2 in valid and valid[l2][j] > valid[refined][j]:
                refined = l2
        rules[f"@{depth}, refined"] = refined
    return rules


def summary() -> None:
    """Every rule's mean test NDCG@10 over the splits of each stored record (rules applied by :func:`choose`)."""
    for rec in json.loads((HERE / "results" / "itemcf_choice.json").read_text()):
        test = {float(k): v for k, v in rec["test_ndcg@10"].items()}
        chosen = [choose({float(k): v for k, v in s["validation"].items()}) for s in rec["splits"]]
        means = {rule: round(float(np.mean([test[c[rule]] for c in chosen])), 4) for rule in chosen[0]}
        picks = {rule: [f"{c[rule]:g}" for c in chosen] for rule in chosen[0]}
        print(f"{rec['name']} ({len(chosen)} splits, {rec['measured']}):")
        for rule in means:
            print(f"  {rule:<14} {means[rule]:.4f}  l2 {', '.join(picks[rule])}")


def main() -> None:
    a = rules_args(rules_parser(__doc__, "1,2,3,4"), summary)
    if a is None:
        return
    t_start = time.perf_counter()
    side, train, users, books, matrix = catalogue_side(a.source, a.format)

    def fitted(x: np.ndarray, l2: float, k: int) -> np.ndarray:
        g = (x.T @ x).astype(np.float64)
        w = positive_top(ease_weights(g, l2 * float(np.diag(g).mean())), NEIGHBOURS).astype(np.float32)
        return top_lists(x, w, k=k)

    x = matrix(train)
    ids, keys = side["user_key"](users), side["book_key"].reindex(books).to_numpy().astype("int64")
    test = {}
    for l2 in GRID:
        picks = fitted(x, l2, 10)
        recs = pd.DataFrame(
            {
                "user_id": np.repeat(ids, 10),
                "rank": np.tile(np.arange(1, 11), len(users)),
                "book_id": keys[picks.ravel()],
            }
        )
        test[l2] = quality.score(recs, side["truth"])["ndcg@10"]
    print("test NDCG@10 with P:", test, flush=True)
    splits = []
    for seed in (int(s) for s in a.seeds.split(",")):
        fit_on, truth = tuning_split(train, seed, users, books)
        xv = matrix(fit_on)
        valid = {}
        for l2 in GRID:
            picks = fitted(xv, l2, max(DEPTHS))
            valid[l2] = [round(ndcg(picks, truth, k), 5) for k in DEPTHS]
        chosen = choose(valid)
        row = {
            "seed": seed,
            "validation": {f"{l2:g}": v for l2, v in valid.items()},
            "chosen": chosen,
            "test_of_chosen": {rule: test[l2] for rule, l2 in chosen.items()},
        }
        splits.append(row)
        print(json.dumps(row), f"{time.perf_counter() - t_start:.0f} s", flush=True)
    record_rules(
        "itemcf_choice", a, len(users), len(books), {f"{l2:g}": v for l2, v in test.items()}, splits, t_start
    )


if __name__ == "__main__":
    main()
