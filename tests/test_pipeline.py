"""End to end on generated data: ingest -> evaluate -> recommend -> similar -> publish, checked from outside with
a Spark-free Delta reader and the raw input files; publication safety (kill before publish, failed check,
idempotent rerun, cold start)."""

from __future__ import annotations

import csv
import json

import pytest

from recspark import publish
from recspark.als import AlsParams
from recspark.ingest import run_ingest
from recspark.pipeline import RunConfig, run_pipeline
from recspark.serve import GoldReader

K = 5
ALS_ONLY = ("als",)  # publication safety is under test here, not the model families


def cfg(**kw) -> RunConfig:
    base = dict(k=K, ks=[5, 10], als=AlsParams(rank=16, max_iter=6, reg=0.1), similar_k=5, min_readers=2)
    base.update(kw)
    return RunConfig(**base)


@pytest.fixture(scope="module")
def published(spark, small_generated, tmp_path_factory):
    from recspark.tables import Lakehouse

    src, _ = small_generated
    lake = Lakehouse(spark, str(tmp_path_factory.mktemp("e2e") / "lakehouse"))
    run_ingest(spark, lake, str(src), "goodreads", "ingest-1")
    summary = run_pipeline(spark, lake, cfg(), tmp_path_factory.mktemp("reports"))
    return lake, summary, src


def shelved_from_raw(src) -> dict[str, set[int]]:
    """(user hash -> Goodreads book ids) straight from the raw CSV files."""
    with open(src / "user_id_map.csv") as f:
        users = {r["user_id_csv"]: r["user_id"] for r in csv.DictReader(f)}
    with open(src / "book_id_map.csv") as f:
        books = {r["book_id_csv"]: int(r["book_id"]) for r in csv.DictReader(f)}
    out: dict[str, set[int]] = {}
    with open(src / "goodreads_interactions.csv") as f:
        for r in csv.DictReader(f):
            out.setdefault(users[r["user_id"]], set()).add(books[r["book_id"]])
    return out


@pytest.mark.slow
def test_gold_tables_checked_from_outside(published):
    from deltalake import DeltaTable

    lake, summary, src = published
    gold = lake.path("gold", "")
    runs = DeltaTable(gold + "runs").to_pyarrow_table().to_pylist()
    assert [r["status"] for r in runs] == ["published"] and runs[0]["run_id"] == summary["run_id"]
    assert json.loads(runs[0]["row_counts"])["user_recommendations"] > 0
    recs = DeltaTable(gold + "user_recommendations").to_pyarrow_table().to_pylist()
    shelved = shelved_from_raw(src)
    by_user: dict[str, list] = {}
    for r in recs:
        by_user.setdefault(r["user_id"], []).append(r)
    assert set(by_user) == set(shelved)  # every user with history gets a list
    for user, rows in by_user.items():
        rows.sort(key=lambda r: r["rank"])
        assert [r["rank"] for r in rows] == list(range(1, K + 1))
        assert len({r["book_id"] for r in rows}) == K
        assert not {r["book_id"] for r in rows} & shelved[user]
        scores = [r["score"] for r in rows]
        assert scores == sorted(scores, reverse=True)
        assert all(r["because_book_id"] is None or r["because_book_id"] in shelved[user] for r in rows)
    assert sum(r["because_book_id"] is not None for r in recs) > 0.9 * len(recs)
    assert all(r["title"] for r in recs)
    sims = DeltaTable(gold + "similar_books").to_pyarrow_table().to_pylist()
    assert sims and all(r["book_id"] != r["similar_book_id"] for r in sims)
    evals = DeltaTable(gold + "evaluations").to_pyarrow_table().to_pylist()
    assert {r["model"] for r in evals if r["k"] > 0} == {"als", "itemcf", "content", "popularity", "trending"}
    errors = {(r["model"], r["metric"]): r["value"] for r in evals if r["k"] == 0}
    assert set(errors) == {(m, e) for m in ("stars", "book_mean") for e in ("rmse", "mae")}
    predicted = [r["predicted_rating"] for r in recs if r["predicted_rating"] is not None]
    assert len(predicted) > 0.9 * len(recs) and all(1.0 <= p <= 5.0 for p in predicted)
    # the published model (tuning off: the built-in ALS) for books with min_readers readers, content below that
    readers: dict[int, int] = {}
    for books in shelved.values():
        for b in books:
            readers[b] = readers.get(b, 0) + 1
    for r in sims:
        assert r["method"] == ("als" if readers.get(r["book_id"], 0) >= cfg().min_readers else "content"), r
    assert {r["metric"] for r in evals} >= {
        "ndcg",
        "precision",
        "recall",
        "map",
        "mrr",
        "hit_rate",
        "coverage",
        "novelty",
        "diversity",
    }


@pytest.mark.slow
def test_consumer_without_spark(published):
    lake, summary, src = published
    reader = GoldReader(lake.root)
    assert reader.run_id == summary["run_id"]
    user = next(iter(reader.recs))
    items, cold = reader.recommend(user, 3)
    assert not cold and len(items) == 3
    assert all(1.0 <= i.as_dict()["predicted_rating"] <= 5.0 for i in items)
    items, cold = reader.recommend("no-such-user", 10)  # cold start: popular books
    assert cold and len(items) == 10 and items[0].book_id == reader.popular[0].book_id
    book = next(iter(reader.similar))
    assert all(i.book_id != book for i in reader.similar_to(book))
    assert {i.as_dict()["method"] for items in reader.similar.values() for i in items} <= {"als", "content"}


@pytest.mark.slow
def test_rerun_idempotent_killed_run_leaves_old_served_retention(spark, published, tmp_path, monkeypatch):
    from pyspark.sql import functions as F

    lake, summary, src = published
    n_before = lake.read("gold", "user_recommendations").count()
    again = run_pipeline(
        spark, lake, cfg(models=ALS_ONLY, evaluate=False), tmp_path
    )  # evaluate=False: another run id
    assert again["run_id"] != summary["run_id"]
    same = run_pipeline(
        spark, lake, cfg(models=ALS_ONLY, evaluate=False), tmp_path
    )  # same inputs, params, seed
    assert same["run_id"] == again["run_id"]
    per_run = {
        r[0]: r[1] for r in lake.read("gold", "user_recommendations").groupBy("run_id").count().collect()
    }
    assert per_run == {summary["run_id"]: n_before, again["run_id"]: n_before}  # no duplicate rows
    served = publish.latest_published(lake)
    assert served == again["run_id"]

    # killed between writing and publishing: the previous run stays the one served
    with pytest.raises(RuntimeError, match="stopped before publishing"):
        run_pipeline(
            spark, lake, cfg(models=ALS_ONLY, evaluate=False, seed=7), tmp_path, fail_before_publish=True
        )
    assert publish.latest_published(lake) == served
    assert GoldReader(lake.root).run_id == served
    statuses = {r["run_id"]: r["status"] for r in lake.read("gold", "runs").collect()}
    assert sorted(statuses.values()).count("failed") == 1

    # a failed check stops publication: make every list one book short
    real_rows = publish.user_recommendation_rows
    monkeypatch.setattr(
        publish, "user_recommendation_rows", lambda *a: real_rows(*a).where(F.col("rank") < K)
    )
    with pytest.raises(publish.PublishCheckError, match=f"exactly {K} distinct books"):
        run_pipeline(spark, lake, cfg(models=ALS_ONLY, evaluate=False, seed=8), tmp_path)
    assert publish.latest_published(lake) == served
    monkeypatch.undo()

    # retention: keep_runs=1 leaves only the newly published run and its rows
    kept = run_pipeline(spark, lake, cfg(models=ALS_ONLY, evaluate=False, seed=21, keep_runs=1), tmp_path)
    runs = {r["run_id"]: r["status"] for r in lake.read("gold", "runs").collect()}
    assert [r for r, status in runs.items() if status == "published"] == [kept["run_id"]]
    assert {
        r[0] for r in lake.read("gold", "user_recommendations").select("run_id").distinct().collect()
    } == {kept["run_id"]}


@pytest.mark.slow
def test_single_stage_verbs(spark, published):
    from pyspark.sql import functions as F

    from recspark.pipeline import latest_model_run, recommend_stage, similar_stage, train_all

    lake, summary, src = published
    run_id = train_all(spark, lake, cfg())
    assert latest_model_run(lake) == run_id
    user = lake.read("silver", "users").orderBy("user_idx").first()
    recs = recommend_stage(spark, lake, run_id, 3, [user["user_id"]]).collect()
    assert sorted(r["rank"] for r in recs) == [1, 2, 3] and {r["user_idx"] for r in recs} == {
        user["user_idx"]
    }
    seen = {
        r[0]
        for r in lake.read("silver", "interactions")
        .where(F.col("user_idx") == user["user_idx"])
        .select("book_idx")
        .collect()
    }
    assert not {r["book_idx"] for r in recs} & seen
    sims = similar_stage(spark, lake, run_id, 3, min_readers=2)
    assert sims.count() > 0 and sims.where(F.col("book_idx") == F.col("neighbour_idx")).count() == 0


@pytest.mark.slow
def test_itemcf_published_end_to_end(spark, published, tmp_path):
    """``model="itemcf"``: lists and similar books from co-occurrence, exclusions exact, explanations cite
    shelved books, the single-stage verbs follow the trained family; checked from outside."""
    from deltalake import DeltaTable

    from recspark.pipeline import model_of, recommend_stage, similar_stage

    lake, first, src = published
    summary = run_pipeline(spark, lake, cfg(model="itemcf", evaluate=False), tmp_path)
    run_id = summary["run_id"]
    assert run_id != first["run_id"] and model_of(lake, run_id) == "itemcf"
    assert publish.latest_published(lake) == run_id
    gold = lake.path("gold", "")
    recs = [
        r
        for r in DeltaTable(gold + "user_recommendations").to_pyarrow_table().to_pylist()
        if r["run_id"] == run_id
    ]
    shelved = shelved_from_raw(src)
    assert {r["user_id"] for r in recs} == set(shelved)
    assert not [r for r in recs if r["book_id"] in shelved[r["user_id"]]]
    cited = [r for r in recs if r["because_book_id"] is not None]
    assert len(cited) > 0.5 * len(recs) and all(r["because_book_id"] in shelved[r["user_id"]] for r in cited)
    sims = [
        r for r in DeltaTable(gold + "similar_books").to_pyarrow_table().to_pylist() if r["run_id"] == run_id
    ]
    assert sims and {r["method"] for r in sims} == {"itemcf"}
    assert all(r["book_id"] != r["similar_book_id"] and r["rank"] <= cfg().similar_k for r in sims)
    user = lake.read("silver", "users").orderBy("user_idx").first()
    assert recommend_stage(spark, lake, run_id, 3, [user["user_id"]]).count() == 3
    assert similar_stage(spark, lake, run_id, 3, min_readers=2).count() > 0


@pytest.mark.slow
def test_a_new_book_with_no_readers_gets_content_neighbours_in_gold(spark, published, tmp_path):
    """A book added to the catalogue that nobody has shelved yet: its similar-books list comes from content."""
    from deltalake import DeltaTable
    from pyspark.sql import functions as F

    lake, _, _ = published
    books = lake.read("silver", "books")
    top = books.agg(F.max("book_idx"), F.max("book_id")).first()
    twin = books.orderBy("book_idx").limit(1)
    original = twin.first()["book_id"]
    new_id = top[1] + 1
    new = twin.withColumn("book_idx", F.lit(top[0] + 1).cast("int")).withColumn(
        "book_id", F.lit(new_id).cast("long")
    )
    lake.write(new.select(*books.columns), "silver", "books", mode="append")
    summary = run_pipeline(spark, lake, cfg(evaluate=False), tmp_path)
    sims = [
        r
        for r in DeltaTable(lake.path("gold", "similar_books")).to_pyarrow_table().to_pylist()
        if r["run_id"] == summary["run_id"] and r["book_id"] == new_id
    ]
    assert sims and {r["method"] for r in sims} == {"content"}
    assert sims[0]["similar_book_id"] == original and sims[0]["score"] > 0.99  # same metadata: cosine 1
