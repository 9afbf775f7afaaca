# Databricks notebook source
# MAGIC %md
# MAGIC # recspark · 2 · tune (optional)
# MAGIC
# MAGIC Searches ALS rank, regParam and alpha, plus the confidence scheme, on a validation split of the silver
# MAGIC interactions, scored by NDCG@K. Each trial is timed. All trials go to `model.tuning_trials` and the best one
# MAGIC to `model.best_params`. Later runs use it unless `use_tuned` is `false`. Same as `recspark tune`.

# COMMAND ----------

from recspark import notebook as nb

nb.define_common_widgets(dbutils)
dbutils.widgets.text("trials", "8", "Trials")
dbutils.widgets.text("k", "10", "K of NDCG@K")
dbutils.widgets.text("iterations", "10", "ALS iterations per trial")
dbutils.widgets.text("seed", "42", "Seed")
dbutils.widgets.text("ranks", "32,64,128", "Ranks to search (comma-separated)")

# COMMAND ----------

from recspark.tune import DEFAULT_GRID, tune

lake = nb.open_lakehouse(spark, dbutils)
k = int(dbutils.widgets.get("k"))
grid = {**DEFAULT_GRID, "rank": [int(r) for r in dbutils.widgets.get("ranks").split(",")]}
results = tune(
    spark,
    lake,
    n_trials=int(dbutils.widgets.get("trials")),
    k=k,
    seed=int(dbutils.widgets.get("seed")),
    grid=grid,
    max_iter=int(dbutils.widgets.get("iterations")),
)
print("best:", max(results, key=lambda r: r[f"ndcg@{k}"]), "->", lake.identifier("model", "best_params"))
