"""The publish checks (``publish.check_gold``) on hand-made gold tables: a clean run passes with its row counts,
and a run with one of each fault is refused with every fault named and counted."""

from __future__ import annotations

import pytest

from recspark import publish
from recspark.tables import GOLD

RUN = "r1"
K = 2


def write_gold(lake, recs, sims, pop, serving, models=1):
    spark = lake.spark
    lake.write(
        spark.createDataFrame(
            [(RUN, *r) for r in recs],
            "run_id string, user_id string, book_id string, score double, because_book_id string",
        ),
        GOLD,
        "user_recommendations",
    )
    lake.write(
        spark.createDataFrame(
            [(RUN, *r) for r in sims], "run_id string, book_id string, similar_book_id string, score double"
        ),
        GOLD,
        "similar_books",
    )
    lake.write(
        spark.createDataFrame([(RUN, b) for b in pop], "run_id string, book_id string"), GOLD, "popular_books"
    )
    lake.write(
        spark.createDataFrame(
            [(RUN, *r) for r in serving], "run_id string, book_id string, work_book_id string"
        ),
        GOLD,
        "serving_books",
    )
    lake.write(
        spark.createDataFrame([(RUN, i) for i in range(models)], "run_id string, n int"),
        GOLD,
        "serving_model",
    )


SERVING = [("a", "a"), ("b", "b"), ("c", "c"), ("d", "d"), ("e", "d")]  # e is another edition of d's work


def shelved(spark, pairs):
    return spark.createDataFrame(pairs, "user_id string, book_id string")


def test_a_clean_run_passes_with_its_counts(spark, lake):
    write_gold(
        lake,
        recs=[("u1", "b", 0.9, "a"), ("u1", "c", 0.5, None), ("u2", "a", 0.8, None), ("u2", "d", 0.1, "c")],
        sims=[("a", "b", 0.7), ("b", "a", 0.7)],
        pop=["a", "b", "c"],
        serving=SERVING,
    )
    counts = publish.check_gold(lake, RUN, K, shelved(spark, [("u1", "a"), ("u2", "c")]))
    assert counts == {"user_recommendations": 4, "similar_books": 2, "popular_books": 3, "serving_books": 5}


def test_every_fault_is_named_and_counted(spark, lake):
    write_gold(
        lake,
        recs=[
            ("u1", "b", float("nan"), "a"),  # NaN score
            ("u1", "a", 0.5, "c"),  # a shelved book; cites c, which u1 did not shelve
            ("u2", "d", 0.8, None),  # d and e: two editions of one work
            ("u2", "e", 0.7, None),
            ("u3", "b", 0.1, None),  # one book only: not K
        ],
        sims=[("a", "a", 0.7), ("d", "e", 0.5)],  # a to itself; e is d's own work
        pop=[],
        serving=SERVING,
        models=2,
    )
    with pytest.raises(publish.PublishCheckError) as err:
        publish.check_gold(lake, RUN, K, shelved(spark, [("u1", "a")]))
    text = str(err.value)
    for fault in (
        "popular_books is empty",
        "1 users do not have exactly 2 distinct books",
        "1 NaN/null scores",
        "1 recommendations of books the user already shelved",
        "1 explanations cite books the user did not shelve",
        "1 books listed as similar to themselves",
        "serving_model has 2 rows for the run, not 1",
        "1 lists hold two editions of one work",
        "2 similar-books rows list an edition of the query's own work",
    ):
        assert fault in text, fault


def test_rankers_of_runs_no_longer_kept_are_removed(spark, lake, tmp_path):
    import json
    from pathlib import Path

    from recspark.pipeline import clean_old_rankers, input_versions, ranker_path

    root = Path(lake.root) / "model" / "_ranker"
    current = ranker_path(lake, input_versions(lake)).rsplit("/", 1)[-1]
    for name in ("old", "published", current):
        (root / name).mkdir(parents=True)
        (root / name / "metadata").write_text("{}")
    runs = [("run-a", json.dumps({"ranker_model": f"file:{root}/published"})), ("run-b", json.dumps({}))]
    lake.write(spark.createDataFrame(runs, "run_id string, params string"), GOLD, "runs")
    assert clean_old_rankers(spark, lake) == ["old"]
    assert sorted(p.name for p in root.iterdir()) == sorted(["published", current])
    assert clean_old_rankers(spark, lake) == []
