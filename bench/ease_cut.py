"""How many weights should each book keep of EASE's ``B``, and can validation tell? Plain numpy on
``bench/quality.py``'s split.

    python bench/ease_cut.py --source /tmp/heavy/heavy300-single60 --format goodreads --seeds 1,2,3

The product keeps each book's 400 weights of largest magnitude (``ItemCfParams.neighbours``, negative ones kept).
On 300 generated heavy shelvers that cut matters more than ``l2``: numpy EASE at l2 4 scored NDCG@10 0.1454 with
the whole ``B``, 0.2155 cut to 400 weights, 0.2312 to 200 and 0.1572 to 800 (``bench/ease_gap.py --cuts
100,200,400,800 --magnitude``), where other data barely moves. So: is the cut worth searching?

``bench/quality.py``'s holdout (``--seed`` 1) leaves P, what a run sees, and the test. EASE (binary shelves, over
P's 10,000 most-read books) is fitted on P for every ``l2`` of :data:`GRID`, each row cut to each of ``--cuts``
weights by magnitude, and scored on the test (NDCG@10). Then, for each of ``--seeds``, the product's two holdouts
are emulated on P (``bench/itemcf_choice.py``'s ``emulated_holdout``) and every ``(l2, cut)`` is scored on the tuning
split's liked held-out rows at NDCG@20, what the product chooses by. Rules:

* ``product``: the product's l2 at the cut of 400 (best of 1, 4, 16, 64 by @20, then the halfway points kept
  where they score higher: :func:`recspark.tune.refined`);
* ``then halfway``: that l2, then the cuts of 200 and 800 (a factor 2 either side, as
  :func:`recspark.tune.refined` steps l2) tried and kept where they score higher at @20;
* ``then cut``: that l2, then each other cut of ``--cuts`` tried and kept where it scores higher at @20;
* ``joint``: the best ``(l2, cut)`` over the grid by @20.

Each rule's choice is scored by its test NDCG@10. Liked rows as the hidden checks count them (goodbooks ratings:
rating >= 4; UCSD: read, not rated below 4; ``to_read``: every row). Appends to ``bench/results/ease_cut.json``;
``--summary`` applies every rule to the validation scores stored there and prints each record's means.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import quality  # noqa: E402  (bench/quality.py: the split and the scoring of the hidden checks)
from ease import ease_weights  # noqa: E402
from ease_gap import magnitude_top, top_lists  # noqa: E402
from itemcf_choice import (  # noqa: E402
    PRODUCT_GRID,
    catalogue_side,
    ndcg,
    record_rules,
    rules_args,
    rules_parser,
    tuning_split,
)

GRID = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
PRODUCT_CUT = 400
DEPTH = 20


def product_l2(valid: dict[tuple[float, int], float]) -> float:
    """The product's l2 at the cut of 400: the best of its grid, then the halfway points where they score higher."""
    best = max(PRODUCT_GRID, key=lambda l2: valid[(l2, PRODUCT_CUT)])
    chosen = best
    for l2 in (best / 2, best * 2):
        if (l2, PRODUCT_CUT) in valid and valid[(l2, PRODUCT_CUT)] > valid[(chosen, PRODUCT_CUT)]:
            chosen = l2
    return chosen


def choose(valid: dict[tuple[float, int], float], cuts: list[int]) -> dict[str, tuple[float, int]]:
    """Each rule's ``(l2, cut)`` from the validation scores."""
    l2 = product_l2(valid)

    def then(tried: list[int]) -> tuple[float, int]:
        best = (l2, PRODUCT_CUT)
        for cut in tried:
            if (l2, cut) in valid and valid[(l2, cut)] > valid[best]:
                best = (l2, cut)
        return best

    return {
        "product": (l2, PRODUCT_CUT),
        "then halfway": then([PRODUCT_CUT // 2, PRODUCT_CUT * 2]),
        "then cut": then(cuts),
        "joint": max(valid, key=valid.get),
    }


def summary() -> None:
    """Every rule's mean test NDCG@10 over the splits of each stored record (rules applied by :func:`choose`)."""
    for rec in json.loads((HERE / "results" / "ease_cut.json").read_text()):
        test = rec["test_ndcg@10"]
        cuts = sorted({int(key.split("/")[1]) for key in test})
        picks = []
        for s in rec["splits"]:
            valid = {(float(k.split("/")[0]), int(k.split("/")[1])): v for k, v in s["validation"].items()}
            picks.append({rule: f"{l2:g}/{c}" for rule, (l2, c) in choose(valid, cuts).items()})
        print(f"{rec['name']} ({len(picks)} splits, {rec['measured']}):")
        for rule in picks[0]:
            mean = float(np.mean([test[p[rule]] for p in picks]))
            print(f"  {rule:<13} {mean:.4f}  {', '.join(p[rule] for p in picks)}")


def main() -> None:
    p = rules_parser(__doc__, "1,2,3")
    p.add_argument("--cuts", default="100,200,400,800")
    a = rules_args(p, summary)
    if a is None:
        return
    cuts = [int(c) for c in a.cuts.split(",")]
    if PRODUCT_CUT not in cuts:
        p.error(f"--cuts must include the product's {PRODUCT_CUT}")
    t_start = time.perf_counter()
    side, train, users, books, matrix = catalogue_side(a.source, a.format)

    def each_fit(x: np.ndarray, k: int):
        """``((l2, cut), top-k picks)`` for every l2 of the grid and every cut, one inversion per l2."""
        g = (x.T @ x).astype(np.float64)
        mean = float(np.diag(g).mean())
        for l2 in GRID:
            w = ease_weights(g, l2 * mean)
            for cut in cuts:
                yield (
                    (l2, cut),
                    top_lists(x, magnitude_top(w, min(cut, len(books) - 1)).astype(np.float32), k=k),
                )

    x = matrix(train)
    ids, keys = side["user_key"](users), side["book_key"].reindex(books).to_numpy().astype("int64")
    test = {}
    for key, picks in each_fit(x, 10):
        recs = pd.DataFrame(
            {
                "user_id": np.repeat(ids, 10),
                "rank": np.tile(np.arange(1, 11), len(users)),
                "book_id": keys[picks.ravel()],
            }
        )
        test[key] = quality.score(recs, side["truth"])["ndcg@10"]
    print("test NDCG@10 with P:", {f"{l2:g}/{c}": v for (l2, c), v in test.items()}, flush=True)
    splits = []
    for seed in (int(s) for s in a.seeds.split(",")):
        fit_on, truth = tuning_split(train, seed, users, books)
        valid = {key: round(ndcg(picks, truth, DEPTH), 5) for key, picks in each_fit(matrix(fit_on), DEPTH)}
        chosen = choose(valid, cuts)
        row = {
            "seed": seed,
            "validation": {f"{l2:g}/{c}": v for (l2, c), v in valid.items()},
            "chosen": {rule: f"{l2:g}/{c}" for rule, (l2, c) in chosen.items()},
            "test_of_chosen": {rule: test[key] for rule, key in chosen.items()},
        }
        splits.append(row)
        print(
            json.dumps({k: v for k, v in row.items() if k != "validation"}),
            f"{time.perf_counter() - t_start:.0f} s",
        )
    tests = {f"{l2:g}/{c}": v for (l2, c), v in test.items()}
    record_rules("ease_cut", a, len(users), len(books), tests, splits, t_start)


if __name__ == "__main__":
    main()
