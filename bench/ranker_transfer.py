"""Does the learned ranker keep its validation lead when it ranks lists of sources fitted on more data?

    .venv/bin/python bench/ranker_transfer.py --source ../shared/data/goodbooks-10k --format goodbooks
    .venv/bin/python bench/ranker_transfer.py --scale 0.003

The nesting of a quality run (bench/quality.py around ``recspark run``), in Spark splits of one lakehouse:
an outer holdout (20% of each user's books, the test, what the quality run scores) leaves the data a run sees
(P); the run's evaluation split takes 20% of P, its tuning split 20% of the rest. Every source is fitted with its
built-in parameters on the tuning split's training side (about 64% of P) and proposes the top-100 candidates of
the validation users; the ranker learns on 70% of them, as :func:`recspark.twostage.validate` does, and is
scored on the other 30% (the check users). Then the same sources are fitted on all of P, as a published run fits
them, and the ranker trained on validation orders the candidates of the test users: its NDCG@10 on the test
against every single source and the even blend of ALS and item-CF, on the same users.

Feature variants, each its own ranker, side by side on the same candidates (:func:`recspark.candidates.features`):

* ``raw``: the features before the scaled scores (:func:`recspark.candidates.raw_feature_names`);
* ``scaled_scores``: every source's score over the user's top score of that source, counts raw;
* ``scaled_with_log_ratings``: also the book's ln(1 + readers) minus that of the most-read book and the user's
  ln(1 + shelves) minus its mean over users, but still the book's ln(1 + ratings), a count that grows with the data
  too (on a ratings file it is ln(1 + readers) itself): the product's features before 2026-12-06's last change;
* ``scaled``: the product's (:func:`recspark.candidates.feature_names`): the same without ln(1 + ratings).

Writes bench/results/ranker_transfer.json.
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
from generated import add_data_options, fresh_lakehouse  # noqa: E402

K = 10
OUTER_SEED = 7


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_options(p)
    a = p.parse_args()

    from pyspark.sql import functions as F

    from recspark import als, blend, candidates, content, itemcf, metrics, ranker, split, twostage
    from recspark import columns as C
    from recspark.candidates import reads_recorded
    from recspark.content import ContentParams
    from recspark.features import Weights, preference
    from recspark.ingest import run_ingest
    from recspark.itemcf import ItemCfParams
    from recspark.tune import liked, validation_split

    t_start = time.perf_counter()
    spark, lake, raw = fresh_lakehouse(a.scale, a.seed, "ranker-transfer", generate=not a.source)
    source = Path(a.source).resolve() if a.source else raw
    run_ingest(spark, lake, str(source), a.format if a.source else "goodreads", "bench-ranker-transfer")
    books = lake.read("silver", "books")
    try:
        vectors = content.book_vectors(books, 42)
    except content.NoMetadata:
        vectors = None
    if vectors is not None:
        vectors = vectors.cache()

    outer = split.holdout(lake.read("silver", "interactions"), fraction=0.2, seed=OUTER_SEED)
    lake.write(outer.train, "model", "outer_train")
    lake.write(outer.test, "model", "outer_test")
    seen = lake.read("model", "outer_train").cache()  # P: what a run sees
    reads = reads_recorded(seen)
    test_truth = liked(lake.read("model", "outer_test"), reads).select(C.USER_IDX, C.BOOK_IDX).cache()
    inner = split.holdout(seen, fraction=0.2, seed=42, sparse=split.for_evaluation(42))
    lake.write(inner.train, "model", "split_train")
    tune_split, _ = validation_split(
        lake, lake.read("model", "split_train"), seed=42, evaluation_fraction=0.2
    )
    tune_train = tune_split.train.cache()
    val_truth = liked(tune_split.test, reads).select(C.USER_IDX, C.BOOK_IDX).cache()
    params = ranker.RankerParams()
    n = params.n_candidates

    def sources_on(train):
        model = als.fit(spark, train.transform(preference(Weights())), als.AlsParams())
        ufs, items = als.user_factors(model).cache(), als.item_factors(model).cache()
        items.count()
        return twostage.Sources(ufs, items, itemcf.fit(train, ItemCfParams()), vectors, ContentParams())

    def sample(truth, salt):
        users = truth.select(C.USER_IDX).distinct()
        total = users.count()
        if total > a.max_users:
            users = ranker.user_share(users, a.max_users / total, params.seed + salt)
        return users.cache()

    def variants(names):
        """The feature columns of each ranker compared (every one on the same candidate frame)."""
        product = candidates.feature_names(names)
        raw_counts = {
            candidates.READERS_VS_TOP: "book_log_readers",
            candidates.SHELVES_VS_MEAN: "user_log_shelves",
        }
        # the product's features from 2026-12-06 (ec0d638) to 2026-12-06 (the forty-first session): with ln(1 +
        # ratings), a count that grows with the data (on a ratings file ln(1 + readers) itself)
        raw = candidates.raw_counts(names) - {"book_log_ratings"}
        with_ratings = [c for c in candidates.feature_columns(names) if c not in raw]
        return {
            "raw": candidates.raw_feature_names(names),
            "scaled_scores": [raw_counts.get(c, c) for c in with_ratings],
            "scaled_with_log_ratings": with_ratings,
            "scaled": product,
        }

    def scores(lists_by_name, truth):
        every = None
        for name, df in lists_by_name.items():
            part = df.where(F.col(C.RANK) <= K).select(
                F.lit(name).alias("_list"), C.USER_IDX, C.RANK, C.BOOK_IDX
            )
            every = part if every is None else every.unionByName(part)
        found = metrics.ranking_metrics_by(every, truth, [K], list(lists_by_name), by="_list")
        return {name: round(found[name][K]["ndcg"], 5) for name in lists_by_name}

    # validation: sources on the tuning split's training side, the ranker on 70% of the validation users
    t = time.perf_counter()
    val_sources = sources_on(tune_train)
    val_users = sample(val_truth, 1)
    feats, lists = twostage.candidate_features(spark, tune_train, val_sources, val_users, n, books)
    names = tuple(lists)
    fit_users = ranker.user_share(val_users, twostage.FIT_SHARE, params.seed)
    check_users = val_users.join(fit_users, on=C.USER_IDX, how="left_anti")
    check_truth = val_truth.join(check_users, on=C.USER_IDX, how="left_semi").cache()
    models, on_check = {}, {}
    check_feats = feats.join(check_users, on=C.USER_IDX, how="left_semi").cache()
    for label, cols in variants(names).items():
        models[label] = ranker.fit(
            ranker.labelled(feats.join(fit_users, on=C.USER_IDX, how="left_semi"), val_truth), cols, params
        )
        on_check[label] = ranker.rank(models[label], check_feats, K).cache()
    on_check["blend_even"] = blend.ranked(feats, blend.Blend(twostage.EVEN_MIX), K, n)
    validation = scores({**on_check, **lists}, check_truth)
    check_z_vs_blend = {
        label: metrics.recorded_z(
            metrics.paired_difference(on_check[label], on_check["blend_even"], check_truth, K)[1]
        )
        for label in models
    }
    check_best = max(lists, key=lambda s: validation[s])
    check_z_vs_best_single = {
        label: metrics.recorded_z(
            metrics.paired_difference(
                on_check[label], lists[check_best].where(F.col(C.RANK) <= K), check_truth, K
            )[1]
        )
        for label in on_check
    }
    validation_seconds = round(time.perf_counter() - t, 1)
    log_line = {"validation": validation}
    print(json.dumps(log_line), flush=True)

    # test: the same sources fitted on all of P, the validation-trained rankers on the test users' candidates
    t = time.perf_counter()
    test_sources = sources_on(seen)
    test_users = sample(test_truth, 3)
    feats_t, lists_t = twostage.candidate_features(spark, seen, test_sources, test_users, n, books)
    on_test = {label: ranker.rank(m, feats_t, K).cache() for label, m in models.items()}
    on_test["blend_even"] = blend.ranked(feats_t, blend.Blend(twostage.EVEN_MIX), K, n).cache()
    users_t = test_truth.join(test_users, on=C.USER_IDX, how="left_semi").cache()
    test = scores({**on_test, **lists_t}, users_t)
    best_single = max(lists_t, key=lambda s: test[s])
    z = {}
    for label in (*models, "blend_even"):
        _, z_value = metrics.paired_difference(
            on_test[label], lists_t[best_single].where(F.col(C.RANK) <= K), users_t, K
        )
        z[label] = metrics.recorded_z(z_value)
    test_z_vs_blend = {
        label: metrics.recorded_z(
            metrics.paired_difference(on_test[label], on_test["blend_even"], users_t, K)[1]
        )
        for label in models
    }
    result = {
        "command": "python bench/ranker_transfer.py "
        + (f"--source {a.source} --format {a.format}" if a.source else f"--scale {a.scale}"),
        "data": f"{a.source} ({a.format})" if a.source else f"generated UCSD, scale {a.scale}",
        "measured": str(date.today()),
        "rows": {"seen": seen.count(), "tune_train": tune_train.count()},
        "users": {
            "check": check_truth.select(C.USER_IDX).distinct().count(),
            "test": users_t.select(C.USER_IDX).distinct().count(),
        },
        "validation_ndcg@10": validation,
        "check_best_single": check_best,
        "check_z_vs_best_single": check_z_vs_best_single,
        "check_z_vs_blend_even": check_z_vs_blend,
        "test_ndcg@10": test,
        "test_z_vs_blend_even": test_z_vs_blend,
        "test_best_single": best_single,
        "test_z_vs_best_single": z,
        "importances": {
            label: ranker.importances(models[label], cols) for label, cols in variants(names).items()
        },
        "seconds": {
            "validation": validation_seconds,
            "test": round(time.perf_counter() - t, 1),
            "total": round(time.perf_counter() - t_start, 1),
        },
    }
    append_result("ranker_transfer", result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
