"""How large the query plan of a ranker run's lists is, and what the publish step costs with it: the test
session's data (the ``published`` fixture's: scale 0.0002, seed 11; 8 users given a second edition of one work,
as ``test_a_work_level_run_folds_readers_in_as_it_trained`` does) published by a run that publishes the blend
(``model="ranker", blend=0.35, blend_prior=1.0``), at edition and at work level, with the test session's Spark
settings. For each level: the recommend step's seconds (the run's own timer) and the nodes of the analysed plan of
the lists the publish step starts from (``pipeline.diverse_lists``) and after the popular fill.

    PYSPARK_PYTHON=.venv/bin/python .venv/bin/python bench/ranked_lists_plan.py --name after
    # the code before a change, from a git worktree of it:
    PYTHONPATH=/tmp/old PYSPARK_PYTHON=.venv/bin/python .venv/bin/python bench/ranked_lists_plan.py --name before

Why: ``twostage.ranked_lists`` once returned its lists cached, with the plan over every source's candidates and
features attached; each later join of the publish step analysed it again (README, "Two-stage"). Appends to
``bench/results/ranked_lists_plan.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# PYTHONPATH (a worktree of other code) stays ahead of this checkout, which adds its `tests` helpers
sys.path[:0] = [p for p in (*os.environ.get("PYTHONPATH", "").split(os.pathsep), str(ROOT)) if p]


def plan_nodes(df) -> int:
    """Lines of the analysed plan's tree: one per node."""
    return df._jdf.queryExecution().analyzed().treeString().count("\n")


def measure(spark, work: Path, level: str) -> dict:
    from recspark import baselines, publish, series, topk
    from recspark.pipeline import (
        SILVER,
        C,
        candidates_of,
        diverse_lists,
        latest_model_run,
        load_factors,
        run_pipeline,
        seen_of,
        training_view,
        works_of,
    )
    from recspark.tables import Lakehouse
    from tests.conftest import copy_of, e2e_cfg

    lake = copy_of(Lakehouse(spark, str(work / "published")), work / f"lake-{level}")
    cfg = e2e_cfg(item_level=level, model="ranker", blend=0.35, blend_prior=1.0, evaluate=False)
    t = time.perf_counter()
    summary = run_pipeline(spark, lake, cfg, work / f"reports-{level}")
    seconds = time.perf_counter() - t
    step = next(v for k, v in summary["timings"].items() if k.startswith("recommend"))
    # the publish step's start, again on the trained model: its lists, then its popular fill
    model_run = latest_model_run(lake)
    interactions = lake.read(SILVER, "interactions")
    works = works_of(lake, interactions)
    fitted = training_view(interactions, works, cfg)
    items = None
    if works is not None and level == "work":
        items = works.edition_factors(load_factors(lake, model_run)[1])
    recs = diverse_lists(spark, lake, model_run, "ranker", fitted, cfg, items, None, works)
    lists_nodes = plan_nodes(recs)
    books = lake.read(SILVER, "books")
    users = lake.read(SILVER, "users").select(C.USER_IDX)
    if works is not None and level == "work":
        recs = works.cited_editions(recs, interactions)
    recs = series.in_series_order(recs, interactions, books, works)
    pop = topk.recommend(
        spark,
        baselines.constant_user_factors(users),
        candidates_of(works, baselines.as_factors(baselines.popularity(interactions))),
        2 * cfg.k,
        seen=seen_of(works, interactions),
    )
    filled = publish.fill_from_popular(recs, series.in_series_order(pop, interactions, books, works), cfg.k)
    return {
        "level": level,
        "run_seconds": round(seconds, 1),
        "recommend_step_seconds": round(step, 1),
        "plan_nodes_lists": lists_nodes,
        "plan_nodes_after_popular_fill": plan_nodes(filled),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", required=True, help="the record's name (e.g. before, after)")
    p.add_argument("--levels", default="edition,work")
    args = p.parse_args()

    import recspark
    from recspark.ingest import run_ingest
    from recspark.pipeline import run_pipeline
    from recspark.sources.synthetic import generate
    from recspark.tables import Lakehouse
    from tests.conftest import TINY_FRAME_CONF, copy_of, e2e_cfg, tiny_frame_spark
    from tests.test_pipeline import shelved_a_second_edition

    code = Path(recspark.__file__).resolve().parent.parent
    commit = subprocess.run(
        ["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="ranked-lists-plan-") as tmp:
        work = Path(tmp)
        spark = tiny_frame_spark("ranked-lists-plan", str(work / "checkpoints"), TINY_FRAME_CONF)
        try:
            generate(work / "raw", scale=0.0002, seed=11)
            ingested = Lakehouse(spark, str(work / "ingested"))
            run_ingest(spark, ingested, str(work / "raw"), "goodreads", "ingest-1")
            published = copy_of(ingested, work / "published")
            run_pipeline(spark, published, e2e_cfg(evaluate=False), work / "reports")
            shelved_a_second_edition(published, 8)
            rows = [measure(spark, work, level) for level in args.levels.split(",")]
        finally:
            spark.stop()
    record = {
        "name": args.name,
        "command": "python bench/ranked_lists_plan.py --name " + args.name,
        "measured": dt.date.today().isoformat(),
        "code": commit,
        "rows": rows,
    }
    out = HERE / "results" / "ranked_lists_plan.json"
    records = json.loads(out.read_text()) if out.exists() else []
    records.append(record)
    out.write_text(json.dumps(records, indent=1) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
