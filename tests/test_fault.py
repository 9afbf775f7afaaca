"""Faults, injected for real: a Spark task that fails once and is retried, a publish killed with SIGKILL while
readers poll gold, schema drift in the inputs, and the shrink guard on gold. (The input faults of issue #11 --
header-only files, invalid UTF-8, duplicate JSON keys, repeated headers, truncated gzip, bad CLI arguments, bad
consumer requests -- are tested next to the code they exercise: test_ingest, test_cli, test_pipeline.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from recspark import publish, serve, stars
from recspark.ingest import run_ingest
from recspark.tables import Lakehouse, ShrinkGuard
from tests.conftest import (
    TINY_ROWS,
    UCSD_INTERACTION_COLS,
    copy_of,
    e2e_cfg,
    polling_served,
    tiny_frame_submit_args,
    tiny_ucsd,
)

HERE = Path(__file__).resolve().parent


def child_env() -> dict[str, str]:
    """The test session's environment, plus its Python for Spark's workers and its tiny-frame settings for the
    child's JVM (a Python that builds its own SparkSession passes ``PYSPARK_SUBMIT_ARGS`` to spark-submit; what
    ``get_spark`` sets itself in local mode, e.g. the shuffle partitions, wins over them; adaptive execution,
    which it leaves alone, follows them: off in every step)."""
    return {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PYSPARK_SUBMIT_ARGS": f"{tiny_frame_submit_args()} pyspark-shell",
    }


@pytest.mark.slow
def test_a_task_that_fails_once_is_retried_to_the_same_output(tmp_path):
    """local[2,3] (3 attempts per task, as on a cluster): dense indices, ALS and the blocked top-K give exactly the
    lists of a clean run when the first attempt of one task raises."""
    done = subprocess.run(
        [sys.executable, str(HERE / "retried_task.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["failed_once"], "the injected failure did not happen"
    assert len(out["clean"]["recs"]) == 120 * 5
    assert out["retried"] == out["clean"]


def wait_until(predicate, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the publish process ended ({proc.returncode}) before it could be killed")
        if time.monotonic() > deadline:
            raise AssertionError("the publish never started writing gold")
        time.sleep(0.05)


def gold_rows_of(root: str, run_id: str) -> int:
    from deltalake import DeltaTable

    try:
        table = DeltaTable(f"{root}/gold/user_recommendations")
    except Exception:  # noqa: BLE001 -- not created yet
        return 0
    return table.to_pyarrow_table(filters=[("run_id", "=", run_id)], columns=["run_id"]).num_rows


@pytest.mark.slow
def test_rerun_sigkill_during_publish_failed_check_and_retention(spark, published, tmp_path, monkeypatch):
    """On a private copy of a published lakehouse:
    1. a rerun on unchanged input and parameters serves the published run as it is (never demoted meanwhile, nothing
       fitted): evaluating (the fixture's run did not) and ``keep_runs`` are not part of the run key;
    2. a publish (new lists of the trained model) killed with SIGKILL after writing gold leaves readers (polling
       from outside) on the served run;
    3. the checks, run on the partial gold the killed publish left, fail it and nothing is published;
    4. the next run of the killed publication (``k`` 3) reuses the trained model, publishes and retention keeps
       only it."""
    from recspark import pipeline
    from recspark.pipeline import publication_id, publish_stage, run_pipeline

    lake = copy_of(published[0], tmp_path / "lake")
    served = published[1]["run_id"]
    n_served = gold_rows_of(lake.root, served)
    n_trained = lake.read("model", "params").count()
    assert published[1]["evaluation"] is None  # the fixture ran with --no-evaluate; this rerun evaluates
    with polling_served(lake) as seen:
        same = run_pipeline(spark, lake, e2e_cfg(evaluate=True, keep_runs=9), tmp_path)
    assert same["run_id"] == served and same["reused"] and seen == {served}
    assert gold_rows_of(lake.root, served) == n_served  # no duplicate rows
    assert lake.read("model", "params").count() == n_trained  # nothing fitted

    # the served run's trained model published as new lists (k 3), in the CLI's shape (similar-k 20,
    # min-readers 5): the killed publish and the next one are the same run
    cfg = e2e_cfg(k=3, evaluate=False, similar_k=20, min_readers=5)
    model_run = published[1]["model_run_id"]
    run_id = publication_id(model_run, cfg)
    log = tmp_path / "publish.log"
    with open(log, "w") as out, polling_served(lake) as seen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "recspark", "publish", "--lakehouse", lake.root, "--run-id", model_run]
            + ["--k", "3", "--master", "local[2]"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=child_env(),
            start_new_session=True,  # its own process group: the JVM dies with it
        )
        try:  # killed once it has written this run's lists to gold, before the checks and publication
            wait_until(lambda: gold_rows_of(lake.root, run_id) > 0, proc)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-2000:]
    assert gold_rows_of(lake.root, run_id) > 0  # a partial run lies in gold ...
    assert seen == {served}  # ... and readers polling from outside never left the served run
    assert serve.GoldReader(lake.root).run_id == served
    assert gold_rows_of(lake.root, served) == n_served
    assert publish.run_row(lake, run_id)["status"] == "running"  # the killed run is not published

    # a failed check stops publication. The checks of the publish step (publish.check_gold) run on what the killed
    # publish left in gold -- its lists, without similar books or serving tables -- instead of lists computed
    # again (which every publish of this suite already checks): the whole step without recomputing it
    shelved = publish.shelved_ids(*(lake.read("silver", t) for t in ("interactions", "users", "books")))

    def checks_only(spark, lake, cfg, run_id, *args, **kwargs):
        return publish.check_gold(lake, run_id, cfg.k, shelved)

    monkeypatch.setattr(pipeline, "publish_model", checks_only)
    with pytest.raises(publish.PublishCheckError, match="serving_model has 0 rows for the run, not 1"):
        publish_stage(spark, lake, cfg, model_run)
    monkeypatch.undo()
    assert publish.latest_published(lake) == serve.latest_published(lake.root) == served
    assert publish.run_row(lake, run_id)["status"] == "failed"

    # the next attempt (`recspark run --k 3`) replaces the partial rows and publishes new lists from the same
    # trained model without fitting it again, its predicted stars included; keep_runs=1 leaves only it
    def fitted_again(*args, **kwargs):
        raise AssertionError("the predicted stars were fitted again, not read from the trained model")

    monkeypatch.setattr(stars, "fit", fitted_again)
    summary = run_pipeline(spark, lake, replace(cfg, keep_runs=1), tmp_path)
    monkeypatch.undo()
    assert summary["run_id"] == run_id and summary["model_run_id"] == model_run
    assert not summary["reused"] and summary["cleaned"] == [served]
    assert lake.read("model", "params").count() == n_trained  # nothing fitted
    assert any(step.startswith("reuse the trained als model") for step in summary["timings"])
    assert not any(step.startswith("train ") for step in summary["timings"])
    runs = {r["run_id"]: json.loads(r["params"]) for r in lake.read("gold", "runs").collect()}
    assert runs[run_id]["model_run_id"] == model_run
    assert publish.latest_published(lake) == serve.latest_published(lake.root) == run_id
    n_users = lake.read("silver", "users").count()
    assert gold_rows_of(lake.root, run_id) == summary["row_counts"]["user_recommendations"] == n_users * 3
    assert serve.GoldReader(lake.root).run_id == run_id
    assert {r["run_id"] for r in lake.read("gold", "runs").collect()} == {run_id}
    assert {
        r[0] for r in lake.read("gold", "user_recommendations").select("run_id").distinct().collect()
    } == {run_id}


@pytest.mark.slow
def test_gold_lists_shrinking_past_the_guard_are_not_published(published, tmp_path):
    lake = copy_of(published[0], tmp_path / "lake")
    served = publish.latest_published(lake)
    old = json.loads(publish.run_row(lake, served)["row_counts"])["user_recommendations"]
    half = {"user_recommendations": old // 2}
    publish.guard_run_shrink(lake, "run-new", half, ShrinkGuard())  # the default only warns at 50%
    with pytest.raises(publish.PublishCheckError, match=f"shrink from {old:,} to {old // 2:,} rows.*--force"):
        publish.guard_run_shrink(lake, "run-new", half, ShrinkGuard(max_shrink=0.2))
    publish.guard_run_shrink(lake, "run-new", half, ShrinkGuard(max_shrink=0.2, force=True))
    publish.guard_run_shrink(lake, "run-new", {"user_recommendations": old}, ShrinkGuard(max_shrink=0.0))
    with pytest.raises(publish.PublishCheckError, match="would be empty"):
        publish.guard_run_shrink(lake, "run-new", {"user_recommendations": 0}, ShrinkGuard())
    publish.guard_run_shrink(
        lake, served, half, ShrinkGuard(max_shrink=0.2)
    )  # the served run itself: no check
    with pytest.raises(ValueError, match=r"share in \[0, 1\)"):
        ShrinkGuard(max_shrink=1.5)


def schemas(lake: Lakehouse) -> dict[str, list[tuple[str, str]]]:
    return {
        f"{layer}.{name}": [(f.name, f.dataType.simpleString()) for f in lake.read(layer, name).schema.fields]
        for layer, name in (("bronze", "interactions_csv"), ("silver", "interactions"), ("silver", "books"))
    }


def json_line(user: str, book: str, **extra) -> str:
    row = {"user_id": user, "book_id": book, "review_id": "r", "is_read": True, "rating": 4, **extra}
    return json.dumps(row)


def test_schema_drift_is_dropped_or_quarantined_never_merged(spark, lake, tmp_path):
    """An added CSV column is dropped with a warning (columns are matched by the header's names) and its rows
    ingest unchanged; a changed type is quarantined with its reason; an added JSON key is outside the explicit
    schema and never becomes a column. Silver keeps its schema in every case (Delta refuses a schema change on
    write: nothing is auto-merged)."""
    run_ingest(spark, lake, str(tiny_ucsd(tmp_path / "v1")), "goodreads", "r1")
    before = schemas(lake)
    rows = sorted(tuple(r) for r in lake.read("silver", "interactions").collect())

    added = tiny_ucsd(
        tmp_path / "added-column",
        header=[*UCSD_INTERACTION_COLS, "shelf"],
        rows=[[*r, "x"] for r in TINY_ROWS],
    )
    result = run_ingest(spark, lake, str(added), "goodreads", "r2")
    csv_counts = {c.table: c for c in result.counts}["interactions_csv"]
    assert (csv_counts.read, csv_counts.ingested, csv_counts.quarantined) == (4, 4, 0)
    assert schemas(lake) == before
    assert sorted(tuple(r) for r in lake.read("silver", "interactions").collect()) == rows

    retyped = tiny_ucsd(
        tmp_path / "changed-type",
        extra_rows=[[1, 0, 1, "4.5", 0]],
        json_lines=[
            json_line("c" * 32, "100", shelf="to-read", review_count=3),  # added keys: ignored by the schema
            json_line("d" * 32, "200", rating="5"),  # a number turned string: quarantined
        ],
    )
    result = run_ingest(spark, lake, str(retyped), "goodreads", "r3")
    counts = {c.table: c for c in result.counts}
    assert (counts["interactions_csv"].read, counts["interactions_csv"].quarantined) == (5, 1)
    assert (counts["interactions_json"].read, counts["interactions_json"].quarantined) == (2, 1)
    reasons = sorted(r["reason"] for r in lake.read("bronze", "quarantine").where("_run_id = 'r3'").collect())
    assert reasons == [
        "rating: not a int: '4.5'",
        "rating: wrong JSON type (expected bigint); missing required field rating",
    ], reasons
    assert schemas(lake) == before
    users = {r["user_id"] for r in lake.read("silver", "users").collect()}
    assert "c" * 32 in users and "d" * 32 not in users
