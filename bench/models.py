"""The model families side by side on one generated dataset, in one Spark session: the cost of training and of
top-K lists for every user, and the quality of each on a per-user 20% holdout.

    .venv/bin/python bench/models.py --scale 0.01

Generated UCSD data (with metadata) at ``--scale``, ingested into a fresh lakehouse; the holdout split of
``recspark run`` (seed 42); each family with the built-in parameters (ALS rank 64 / 12 iterations, item-CF
cosine with 100 neighbours, content with the popularity prior 1.0) and popularity. Seconds are wall clock on this
machine for: ALS training (``fit``), item-CF's co-occurrence + neighbour table (``fit``), content's book vectors
(``fit``), and each family's top-10 for every test user (``recommend``). The ratio the issue asks about is
item-CF (fit + recommend) over ALS training. Writes bench/results/models.json and models.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from generated import fresh_lakehouse, persisted_holdout  # noqa: E402


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - t, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args()

    from recspark import als, baselines, content, evaluate, itemcf, metrics, topk
    from recspark import columns as C
    from recspark.content import ContentParams
    from recspark.features import Weights, preference
    from recspark.ingest import run_ingest
    from recspark.itemcf import ItemCfParams

    spark, lake, raw = fresh_lakehouse(a.scale, a.seed, "models")
    run_ingest(spark, lake, str(raw), "goodreads", "bench-models")
    train, test, truth = persisted_holdout(lake)
    users = test.select(C.USER_IDX).distinct().cache()
    n_train, n_users = train.count(), users.count()
    rows: dict[str, dict] = {}

    def score(name: str, recs, fit_s: float) -> None:
        recs, rec_s = timed(lambda: evaluate.materialise(recs))
        ndcg = metrics.ranking_metrics(recs, truth, [10])[10]
        rows[name] = {
            "fit_seconds": fit_s,
            "recommend_seconds": rec_s,
            "ndcg@10": round(ndcg["ndcg"], 4),
            "recall@10": round(ndcg["recall"], 4),
        }
        recs.unpersist()
        print(name, rows[name], flush=True)

    model, fit_s = timed(lambda: als.fit(spark, train.transform(preference(Weights())), als.AlsParams()))
    items = als.item_factors(model).cache()
    items.count()
    ufs = als.user_factors(model).join(users, on=C.USER_IDX, how="left_semi")
    score("als", topk.recommend(spark, ufs, items, 10, seen=train), fit_s)

    nb, fit_s = timed(lambda: itemcf.fit(train, ItemCfParams()))
    score("itemcf", itemcf.recommend(train, nb, 10, users=users), fit_s)

    vectors, fit_s = timed(lambda: content.book_vectors(lake.read("silver", "books")))
    score("content", content.recommend(spark, train, vectors, 10, ContentParams(), users=users), fit_s)

    pop = baselines.as_factors(baselines.popularity(train))
    score(
        "popularity", topk.recommend(spark, baselines.constant_user_factors(users), pop, 10, seen=train), 0.0
    )

    ic, al = rows["itemcf"], rows["als"]
    result = {
        "command": "python bench/models.py " + " ".join(sys.argv[1:]),
        "measured": time.strftime("%Y-%m-%d"),
        "scale": a.scale,
        "train_interactions": n_train,
        "test_users": n_users,
        "models": rows,
        "itemcf_total_over_als_fit": round(
            (ic["fit_seconds"] + ic["recommend_seconds"]) / al["fit_seconds"], 2
        ),
    }
    out = HERE / "results" / "models.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        f"# Model families side by side (generated scale {a.scale}, {n_train:,} training interactions)",
        "",
        f"`{result['command']}` ({result['measured']}); top-10 for {n_users:,} test users, 20% holdout.",
        "",
        "| model | fit s | recommend s | NDCG@10 | recall@10 |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['fit_seconds']} | {r['recommend_seconds']} | {r['ndcg@10']:.4f} | {r['recall@10']:.4f} |"
        )
    lines += ["", f"item-CF fit + recommend / ALS fit: {result['itemcf_total_over_als_fit']}x"]
    (HERE / "results" / "models.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
