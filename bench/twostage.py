"""The two-stage ranker against every single model, and what its ranking stage costs next to ALS training.

    .venv/bin/python bench/twostage.py --scale 0.01
    .venv/bin/python bench/twostage.py --source ../shared/data/goodbooks-10k --format goodbooks

Generated UCSD data at ``--scale`` is ingested into a fresh lakehouse; the tuning split of ``recspark run`` is
carved from the training side of the evaluation split (20% of each user's books, then 20% of the rest). On it,
with the built-in parameters of every family: ALS is trained (timed: the reference), item-CF and content are
fitted, and :func:`recspark.twostage.validate` builds the candidates (top-100 of every source) of the validation
users, trains the ranker on 70% of them and compares it with every single model on the other 30% (NDCG@10),
with candidate recall per source. The ranking stage is everything ``validate`` does after the sources are
fitted: candidates, features, the ranker's fit and its lists. Writes bench/results/twostage.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from common import append_result  # noqa: E402
from generated import fresh_lakehouse  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--source", default=None, help="real files instead of generated data")
    p.add_argument("--format", default="goodreads", choices=["goodreads", "goodbooks"])
    a = p.parse_args()

    from recspark import als, content, itemcf, ranker, split, twostage
    from recspark import columns as C
    from recspark.candidates import reads_recorded
    from recspark.content import ContentParams
    from recspark.features import Weights, preference
    from recspark.ingest import run_ingest
    from recspark.itemcf import ItemCfParams
    from recspark.tune import liked, validation_split

    spark, lake, raw = fresh_lakehouse(a.scale, a.seed, "twostage", generate=not a.source)
    source = Path(a.source).resolve() if a.source else raw
    run_ingest(spark, lake, str(source), a.format if a.source else "goodreads", "bench-twostage")
    # the run's evaluation split (its half of the sparse users), so that validation_split below holds each
    # sparse user out once, as `recspark run` does
    s = split.holdout(
        lake.read("silver", "interactions"), fraction=0.2, seed=42, sparse=split.for_evaluation(42)
    )
    lake.write(s.train, "model", "split_train")
    tune_split, _ = validation_split(
        lake, lake.read("model", "split_train"), seed=42, evaluation_fraction=0.2
    )
    train = tune_split.train.cache()
    truth = liked(tune_split.test, reads_recorded(train)).select(C.USER_IDX, C.BOOK_IDX).cache()
    users = truth.select(C.USER_IDX).distinct().cache()
    n_train, n_users = train.count(), users.count()

    t = time.perf_counter()
    prefs = train.transform(preference(Weights())).cache()
    prefs.count()
    model = als.fit(spark, prefs, als.AlsParams())
    ufs, items = als.user_factors(model).cache(), als.item_factors(model).cache()
    items.count()
    als_fit = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    neighbours = itemcf.fit(train, ItemCfParams())
    itemcf_fit = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    books = lake.read("silver", "books")
    try:
        vectors = content.book_vectors(books, 42)
    except content.NoMetadata:
        vectors = None
    content_fit = round(time.perf_counter() - t, 1)
    sources = twostage.Sources(ufs, items, neighbours, vectors, ContentParams())

    t = time.perf_counter()
    summary, _ = twostage.validate(spark, train, truth, users, books, sources, 10, ranker.RankerParams())
    stage = round(time.perf_counter() - t, 1)
    result = {
        "command": "python bench/twostage.py "
        + (f"--source {a.source} --format {a.format}" if a.source else f"--scale {a.scale}"),
        "data": f"{a.source} ({a.format})" if a.source else f"generated UCSD, scale {a.scale}",
        "measured": str(date.today()),
        "tune_train_rows": n_train,
        "validation_users": n_users,
        "seconds": {
            "als_fit": als_fit,
            "itemcf_fit": itemcf_fit,
            "content_vectors": content_fit,
            "ranking_stage": stage,
        },
        "ranking_stage_over_als_fit": round(stage / als_fit, 2),
        "validation_ndcg@10": {"ranker": summary.get("ranker"), **summary["single"]},
        "ranker_wins": summary["wins"],
        "blend": summary.get("blend"),
        "published_kind": summary.get("publish"),
        "candidate_recall": summary["recall"],
        "importances": summary.get("importances"),
        "ranker_params": summary["params"],
    }
    append_result("twostage", result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
