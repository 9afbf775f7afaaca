"""Does the blend's best weight move with the amount of training data, and can a thinner split see where it goes?

    .venv/bin/python bench/blend_curve.py --source /tmp/ml100k --format goodbooks
    .venv/bin/python bench/blend_curve.py --scale 0.003

The product chooses the blend's weight ``w`` (item-CF's share against ALS, :mod:`recspark.blend`) on validation,
with sources fitted on about 64% of the data a run sees, and publishes lists of sources fitted on all of it. When
one family gains more from the rest of the data than the other, the weight chosen is off: on MovieLens 100k the
even mix the product published scored 0.3657 from outside and w 0.2 0.3825, while on real to-read shelves item-CF
gained more (docs/quality.md). Here, on one fixed test, the same sources at several amounts of data:

An outer holdout (20% of each user's rows at random, no cap, liked books as the hidden checks count them) leaves
P, the data a run sees. Nested per-user holdouts of 20% thin P to about 80%, 64% and 51% of its rows (each level's
rows a subset of the next). At every level ALS and item-CF are fitted with their built-in parameters (item-CF as EASE with ``--ease``), every test
user's candidates are proposed (top ``n`` of ALS, item-CF and popularity, with the books of P excluded: the hidden
check counts them as misses) and the blend is scored at every weight and liked-share weight γ of
:func:`recspark.blend.grid` on the test. A blend at w 0 ranks by ALS alone and at w 1 by item-CF alone (over the
same candidates). Then the product's weight rules (:func:`recspark.twostage.extrapolated_choice`) are applied
with each thinned level as validation and the next as the thinner level, on the blend settings at the γ a run
keeps (0.3 where the liked shares differ): ``plain`` the best weight unless within a standard error of the even
mix, ``curve`` the same on the scores extrapolated to P; each scored at P. Appends to
``bench/results/blend_curve.json``.
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
LEVELS = 3  # nested thinnings of P: P x 0.8, x 0.64, x 0.512


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_options(p)
    p.add_argument("--name", default=None, help="the record's name (default: the data)")
    p.add_argument(
        "--ease",
        type=float,
        default=None,
        help="item-CF as EASE with this l2 and 400 neighbours (what a run's search may choose) instead of the "
        "built-in cosine",
    )
    a = p.parse_args()

    from pyspark.sql import functions as F

    from recspark import als, blend, itemcf, metrics, ranker, split, twostage
    from recspark import columns as C
    from recspark.candidates import reads_recorded
    from recspark.content import ContentParams
    from recspark.features import Weights, preference
    from recspark.ingest import run_ingest
    from recspark.itemcf import ItemCfParams
    from recspark.tune import liked

    t_start = time.perf_counter()
    spark, lake, raw = fresh_lakehouse(
        a.scale, a.seed, f"blend-curve-{a.name or Path(a.source or 'gen').name}", generate=not a.source
    )
    source = Path(a.source).resolve() if a.source else raw
    run_ingest(spark, lake, str(source), a.format if a.source else "goodreads", "bench-blend-curve")
    outer = split.holdout(
        lake.read("silver", "interactions"), fraction=0.2, seed=OUTER_SEED, max_held_out=None
    )
    lake.write(outer.train, "model", "level_0")
    lake.write(outer.test, "model", "outer_test")
    seen = lake.read("model", "level_0").cache()  # P: what a run sees
    reads = reads_recorded(seen)
    truth = liked(lake.read("model", "outer_test"), reads).select(C.USER_IDX, C.BOOK_IDX).cache()
    users = truth.select(C.USER_IDX).distinct()
    total = users.count()
    params = ranker.RankerParams()
    if total > a.max_users:
        users = ranker.user_share(users, a.max_users / total, params.seed + 3)
    users = users.cache()
    truth = truth.join(users, on=C.USER_IDX, how="left_semi").cache()
    shelved = seen.select(C.USER_IDX, C.BOOK_IDX).cache()
    for level in range(1, LEVELS + 1):  # each level a per-user 80% of the one before
        thinner = split.holdout(
            lake.read("model", f"level_{level - 1}"), fraction=0.2, seed=100 + level, max_held_out=None
        )
        lake.write(thinner.train, "model", f"level_{level}")

    n = params.n_candidates
    cf_params = (
        ItemCfParams() if a.ease is None else ItemCfParams(similarity="ease", ease_l2=a.ease, neighbours=400)
    )
    results: dict[str, dict] = {}
    rows_at: dict[int, int] = {}
    per_user: dict[int, dict] = {}  # level -> {Blend: each test user's NDCG@10, in user order}
    for level in range(LEVELS + 1):
        t = time.perf_counter()
        train = lake.read("model", f"level_{level}").cache()
        rows = train.count()
        model = als.fit(spark, train.transform(preference(Weights())), als.AlsParams())
        ufs, items = als.user_factors(model).cache(), als.item_factors(model).cache()
        sources = twostage.Sources(ufs, items, itemcf.fit(train, cf_params), None, ContentParams())
        feats, lists = twostage.candidate_features(spark, train, sources, users, n, None)
        unread = feats.join(shelved, on=[C.USER_IDX, C.BOOK_IDX], how="left_anti").cache()
        settings = (
            blend.Blend(0.0),
            blend.Blend(1.0),
            *blend.grid(with_prior=twostage.liked_shares_differ(unread)),
        )
        labels = list(dict.fromkeys(b.label for b in settings))
        by_setting = blend.ranked_by_setting(unread, settings, K, n)
        found = metrics.ranking_metrics_by(by_setting, truth, [K], labels, by=blend.SETTING)
        prior = blend.DEFAULT_PRIOR if twostage.liked_shares_differ(unread) else 0.0
        per_user[level] = {
            b: metrics.per_user_scores(
                by_setting.where(F.col(blend.SETTING) == b.label).select(C.USER_IDX, C.RANK, C.BOOK_IDX),
                truth,
                K,
            )
            for b in (blend.Blend(w, prior) for w in blend.WEIGHTS)
        }
        rows_at[level] = rows
        share = round(rows / seen.count(), 3)
        results[str(share)] = {
            "rows": rows,
            "ndcg@10": {g: round(found[g][K]["ndcg"], 5) for g in labels},
            "seconds": round(time.perf_counter() - t, 1),
        }
        print(json.dumps({share: results[str(share)]}), flush=True)
        for df in (train, ufs, items, feats, unread, *lists.values()):
            df.unpersist()

    # the product's weight rules with each level as validation and the next as the thinner level, scored at P
    at_p = {b: round(float(v.mean()), 5) for b, v in per_user[0].items()}
    rules = {}
    for valid in range(1, LEVELS):
        thin = valid + 1
        reach = twostage.reach_of(rows_at[0], rows_at[valid], rows_at[thin])
        plain, _ = twostage.extrapolated_choice(per_user[valid], per_user[valid], 0.0)
        curve, record = twostage.extrapolated_choice(per_user[valid], per_user[thin], reach)
        rules[f"validation {rows_at[valid] / rows_at[0]:.3f}, thinner {rows_at[thin] / rows_at[0]:.3f}"] = {
            "reach": round(reach, 3),
            "plain": plain.label,
            "plain_at_P": at_p[plain],
            "curve": curve.label,
            "curve_at_P": at_p[curve],
            "curve_z_vs_even_mix": record["best_z_vs_even_mix"],
        }
    result = {
        "name": a.name or (Path(a.source).name if a.source else f"generated-{a.scale}"),
        "command": "python bench/blend_curve.py "
        + (f"--source {a.source} --format {a.format}" if a.source else f"--scale {a.scale}")
        + (f" --ease {a.ease:g}" if a.ease is not None else ""),
        "itemcf": cf_params.__dict__,
        "data": f"{a.source} ({a.format})" if a.source else f"generated UCSD, scale {a.scale}",
        "measured": str(date.today()),
        "test_users": truth.select(C.USER_IDX).distinct().count(),
        "by_share_of_P": results,
        "best_at_P": max(at_p, key=at_p.get).label,
        "rules": rules,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    append_result("blend_curve", result)
    print(json.dumps(result, indent=1))
    spark.stop()


if __name__ == "__main__":
    main()
