"""Editions vs works (issue #17): what work-level exclusion and training on works change, measured at edition and
at work level on one split.

    .venv/bin/python bench/works.py --scale 0.003
    .venv/bin/python bench/works.py --source ../shared/data/goodbooks-10k --format goodbooks --name goodbooks

Generated UCSD data (with editions: later editions of a work get 1/5 of its first edition's weight) or a goodbooks
folder, ingested into a fresh lakehouse; the holdout split of ``recspark run`` (20% per user, seed 42). Three
variants of ALS (built-in parameters) and of item-CF, with popularity beside them:

* ``books``: the behaviour before #17: every ``book_id`` is an item, only the shelved book ids are excluded;
* ``edition``: trained on editions, lists with one edition per work and every edition of a shelved work excluded;
* ``work``: trained on works (``--item-level work``), same lists rules.

Each list is scored at edition level (a hit is the held-out ``book_id``) and at work level (a hit is any edition
of the held-out book's work), and the share of lists that hold two editions of one work or an edition of a
shelved work is counted. Writes bench/results/works-<name>.json and .md.
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=0.003)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--source", help="a goodbooks or UCSD folder instead of generated data")
    p.add_argument("--format", default="goodreads", choices=["goodreads", "goodbooks"])
    p.add_argument("--name", default=None)
    p.add_argument("--k", type=int, default=10)
    a = p.parse_args()
    name = a.name or f"generated-{a.scale}"

    from recspark import als, baselines, evaluate, itemcf, metrics, topk
    from recspark import columns as C
    from recspark.features import Weights, preference
    from recspark.ingest import run_ingest
    from recspark.itemcf import ItemCfParams
    from recspark.works import Works, candidates_of, seen_of

    spark, lake, raw = fresh_lakehouse(a.scale, a.seed, f"works-{name}", generate=not a.source)
    source = a.source or str(raw)
    t0 = time.perf_counter()
    run_ingest(spark, lake, source, a.format, "bench-works")
    train, test, truth = persisted_holdout(lake)
    users = truth.select(C.USER_IDX).distinct().cache()
    n_train, n_users = train.count(), users.count()
    books = lake.read("silver", "books")
    works = Works.of(books, train)
    result: dict = {
        "command": "python bench/works.py " + " ".join(sys.argv[1:]),
        "data": source if a.source else f"generated UCSD, scale {a.scale}, seed {a.seed}",
        "train_rows": n_train,
        "test_users": n_users,
        "books": books.count(),
        "k": a.k,
        "variants": {},
    }
    if works is None:
        result["works"] = "every book is its own work: the three variants are the same lists (not rerun)"
        print(result["works"], flush=True)
    else:
        result["works"] = works.n_works
        work_truth = works.to_work_level(truth).cache()
        table = {r[C.BOOK_IDX]: r[C.WORK_IDX] for r in works.table.select(C.BOOK_IDX, C.WORK_IDX).collect()}
        train_pairs = train.select(C.USER_IDX, C.BOOK_IDX).collect()
        shelved: dict[int, set[int]] = {}
        for r in train_pairs:
            shelved.setdefault(r[C.USER_IDX], set()).add(table.get(r[C.BOOK_IDX], r[C.BOOK_IDX]))
        held = truth.collect()
        # held-out books that are another edition of a work the user shelved in train: no list under the work
        # rules can show them, so edition-level metrics of the work variants lose them by construction
        result["held_out_editions_of_shelved_works"] = round(
            sum(table.get(r[C.BOOK_IDX], r[C.BOOK_IDX]) in shelved.get(r[C.USER_IDX], set()) for r in held)
            / max(1, len(held)),
            4,
        )
        print("held-out editions of shelved works:", result["held_out_editions_of_shelved_works"], flush=True)

    def score(label: str, recs, seconds: float) -> None:
        recs = evaluate.materialise(recs)
        row = {"seconds": round(seconds, 1)}
        m = metrics.ranking_metrics(recs, truth, [a.k])[a.k]
        row.update({f"ndcg@{a.k}": round(m["ndcg"], 4), f"recall@{a.k}": round(m["recall"], 4)})
        if works is not None:
            w = metrics.ranking_metrics(works.to_work_level(recs), work_truth, [a.k])[a.k]
            row.update({f"work_ndcg@{a.k}": round(w["ndcg"], 4), f"work_recall@{a.k}": round(w["recall"], 4)})
            lists: dict[int, list[int]] = {}
            for r in recs.select(C.USER_IDX, C.BOOK_IDX).collect():
                lists.setdefault(r[C.USER_IDX], []).append(table.get(r[C.BOOK_IDX], r[C.BOOK_IDX]))
            row["lists_with_two_editions"] = round(
                sum(len(set(v)) < len(v) for v in lists.values()) / max(1, len(lists)), 4
            )
            row["lists_with_a_shelved_work"] = round(
                sum(bool(set(v) & shelved.get(u, set())) for u, v in lists.items()) / max(1, len(lists)), 4
            )
        recs.unpersist()
        result["variants"][label] = row
        print(label, row, flush=True)

    variants = ["books"] if works is None else ["books", "edition", "work"]
    for variant in variants:
        w = None if variant == "books" else works
        fit_on = works.to_works(train).cache() if variant == "work" else train
        t = time.perf_counter()
        model = als.fit(spark, fit_on.transform(preference(Weights())), als.AlsParams())
        items = als.item_factors(model).cache()
        items.count()
        ufs = als.user_factors(model).join(users, on=C.USER_IDX, how="left_semi")
        seen = seen_of(w, fit_on.join(users, on=C.USER_IDX, how="left_semi"))
        score(
            f"als/{variant}",
            topk.recommend(spark, ufs, candidates_of(w, items), a.k, seen=seen),
            time.perf_counter() - t,
        )
        items.unpersist()
        t = time.perf_counter()
        nb = itemcf.fit(fit_on, ItemCfParams())
        score(
            f"itemcf/{variant}",
            itemcf.recommend(fit_on, nb, a.k, users=users, works=w),
            time.perf_counter() - t,
        )
        nb.unpersist()
        t = time.perf_counter()
        pop = candidates_of(w, baselines.as_factors(baselines.popularity(fit_on)))
        recs = topk.recommend(spark, baselines.constant_user_factors(users), pop, a.k, seen=seen)
        score(f"popularity/{variant}", recs, time.perf_counter() - t)
        if variant == "work":
            fit_on.unpersist()
    result["seconds"] = round(time.perf_counter() - t0, 1)
    out = HERE / "results" / f"works-{name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Editions vs works: {result['data']}",
        "",
        f"`{result['command']}`; {n_train:,} training rows, {n_users:,} test users, "
        + (
            f"{result['books']:,} books in {result['works']:,} works."
            if works is not None
            else result["works"]
        ),
        "",
    ]
    if works is not None:
        lines += [
            "Held-out books that are another edition of a work the user shelved in train: "
            f"{result['held_out_editions_of_shelved_works']:.2%} (the work rules can never show them).",
            "",
        ]
    cols = sorted({c for row in result["variants"].values() for c in row if c != "seconds"}) + ["seconds"]
    lines.append("| variant | " + " | ".join(cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    for label, row in result["variants"].items():
        lines.append(f"| {label} | " + " | ".join(str(row.get(c, "")) for c in cols) + " |")
    (HERE / "results" / f"works-{name}.md").write_text("\n".join(lines) + "\n")
    print(out, flush=True)


if __name__ == "__main__":
    main()
