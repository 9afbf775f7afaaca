"""Every Databricks notebook runs locally: source format checked, cells executed in order with a stand-in for
``dbutils.widgets`` and the test session, tables written to a catalog (``spark_catalog.<schema>``), checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SEPARATOR = "\n# COMMAND ----------\n"


class Widgets:
    """The part of ``dbutils.widgets`` the notebooks use; a widget must be defined before it is read."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.defaults: dict[str, str] = {}
        self.choices: dict[str, list[str]] = {}

    def text(self, name: str, default: str, label: str | None = None) -> None:
        self.defaults[name] = default

    def dropdown(self, name: str, default: str, choices: list[str], label: str | None = None) -> None:
        assert default in choices, f"dropdown {name}: default {default!r} not in {choices}"
        self.defaults[name], self.choices[name] = default, list(choices)

    def get(self, name: str) -> str:
        if name not in self.defaults:
            raise ValueError(f"InputWidgetNotDefined: {name}")
        value = self.values.get(name, self.defaults[name])
        if name in self.choices:
            assert value in self.choices[name], f"{name}={value!r} is not one of {self.choices[name]}"
        return value


class DbUtils:
    def __init__(self, values: dict[str, str]) -> None:
        self.widgets = Widgets(values)


def cells(path: Path) -> list[str]:
    text = path.read_text()
    assert text.startswith("# Databricks notebook source\n"), f"{path.name}: not Databricks source format"
    return text.split(SEPARATOR)


def run_notebook(spark, name: str, **values: str) -> dict:
    """Execute every code cell of ``notebooks/<name>.py``; returns the notebook's globals."""
    path = NOTEBOOKS / f"{name}.py"
    scope: dict = {
        "spark": spark,
        "dbutils": DbUtils({k: str(v) for k, v in values.items()}),
        "__name__": name,
    }
    for i, cell in enumerate(cells(path)):
        exec(compile(cell, f"{path.name} [cell {i + 1}]", "exec"), scope)
    unused = set(values) - set(scope["dbutils"].widgets.defaults)
    assert not unused, f"{name}: widgets given but never defined: {unused}"
    return scope


def test_every_notebook_is_databricks_source_with_prose_and_widgets():
    names = sorted(p.stem for p in NOTEBOOKS.glob("*.py"))
    assert names == [
        "00_end_to_end",
        "01_ingest",
        "02_tune",
        "03_train",
        "04_evaluate",
        "05_recommend",
        "06_similar",
    ]
    for name in names:
        parts = cells(NOTEBOOKS / f"{name}.py")
        assert len(parts) >= 3
        assert parts[0].splitlines()[1].startswith("# MAGIC %md"), f"{name}: first cell should be prose"
        assert all(re.match(r"# MAGIC( |$)", line) for line in parts[0].splitlines()[1:])
        assert "dbutils.widgets" in parts[1] or "define_common_widgets" in parts[1]


def test_the_models_widget_names_the_families_to_train_like_the_cli():
    from recspark import notebook as nb

    def families(text: str):
        dbutils = DbUtils({"models": text})
        nb.define_model_widgets(dbutils)
        return nb._families(dbutils)

    assert families("") is None  # every family (the default of RunConfig)
    assert families(" als, itemcf,als ") == ("als", "itemcf")
    with pytest.raises(ValueError, match="widget `models`: 'als,stars': give a comma-separated list"):
        families("als,stars")
    with pytest.raises(ValueError, match="popularity is always evaluated"):
        families("popularity")


@pytest.fixture(scope="module")
def catalog_lake(spark, small_csv_only, tmp_path_factory):
    src, _ = small_csv_only
    common = {
        "lakehouse": str(tmp_path_factory.mktemp("nb") / "lakehouse"),
        "catalog": "spark_catalog",
        "schema": "recspark_nb",
    }
    scope = run_notebook(spark, "01_ingest", source=str(src), format="goodreads", **common)
    return scope["lake"], common, src


def table(spark, common, layer, name):
    return spark.table(f"{common['catalog']}.{common['schema']}.{layer}_{name}")


@pytest.mark.slow
def test_stage_notebooks_in_order(spark, catalog_lake):
    from pyspark.sql import functions as F

    lake, common, _ = catalog_lake
    assert lake.catalog == "spark_catalog"
    users = table(spark, common, "silver", "users").count()
    assert users > 0 and table(spark, common, "silver", "interactions").count() > users

    small = {"rank": "8", "iterations": "3", "k": "3"}
    run_notebook(spark, "02_tune", configs="1", iterations="2", k="5", ranks="8", ranker="off", **common)
    best = table(spark, common, "model", "best_params").collect()
    assert len(best) == 1 and '"rank": 8' in best[0]["params"]

    scope = run_notebook(spark, "03_train", use_tuned="false", **small, **common)
    assert scope["cfg"].als.rank == 8 and scope["cfg"].als.max_iter == 3
    factors = table(spark, common, "model", "item_factors").where(F.col("run_id") == scope["run_id"])
    assert factors.count() > 0 and len(factors.first()["features"]) == 8

    # the families the CLI's --models names (every family is evaluated in the self-tuning tests)
    scope = run_notebook(spark, "04_evaluate", use_tuned="false", models="als", **small, **common)
    assert scope["cfg"].models == ("als",)
    evals = table(spark, common, "gold", "evaluations").where(F.col("run_id") == scope["run_id"])
    assert {r["model"] for r in evals.select("model").distinct().collect()} >= {"als", "popularity"}
    assert not {r["model"] for r in evals.select("model").distinct().collect()} & {"itemcf", "content"}
    assert list((Path(common["lakehouse"]) / "_reports").glob("evaluation-*.md"))

    run_notebook(spark, "05_recommend", k="4", **common)
    recs = table(spark, common, "model", "recommendations")
    per_user = recs.groupBy("user_idx").count().select(F.min("count"), F.max("count")).first()
    assert tuple(per_user) == (4, 4) and recs.select("user_idx").distinct().count() == users

    run_notebook(spark, "06_similar", k="3", min_readers="2", **common)
    sims = table(spark, common, "model", "similar_books")
    assert sims.count() > 0 and sims.where(F.col("book_idx") == F.col("neighbour_idx")).count() == 0


@pytest.mark.slow
def test_end_to_end_notebook_publishes(spark, catalog_lake):
    from pyspark.sql import functions as F

    lake, common, src = catalog_lake
    scope = run_notebook(
        spark,
        "00_end_to_end",
        source=str(src),
        evaluate="false",
        use_tuned="false",
        rank="8",
        iterations="3",
        k="5",
        **common,
    )
    assert scope["ingested"].skipped  # same files as the ingest notebook: nothing to do
    run_id = scope["summary"]["run_id"]
    runs = {r["run_id"]: r["status"] for r in table(spark, common, "gold", "runs").collect()}
    assert runs[run_id] == "published"
    recs = table(spark, common, "gold", "user_recommendations").where(F.col("run_id") == run_id)
    assert recs.groupBy("user_id").count().where(F.col("count") != 5).count() == 0
    assert recs.count() == 5 * table(spark, common, "silver", "users").count()
