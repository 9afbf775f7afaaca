# Databricks notebook source
# MAGIC %md
# MAGIC # recspark · 2 · tune (optional: `run` tunes itself)
# MAGIC
# MAGIC Searches ALS rank, regParam, alpha, the confidence scheme and which signals count, on a validation split
# MAGIC carved from the training side of the evaluation split (never the evaluation holdout), scored by NDCG@K:
# MAGIC quasi-random configurations, successive halving (few iterations for many, full iterations for the best),
# MAGIC within a time budget. All trials go to `model.tuning_trials`, the winner and runner-up to
# MAGIC `model.best_params` keyed by the silver input versions; later runs use it unless `use_tuned` is `false`.
# MAGIC With `ranker` `auto` the two-stage ranker (candidates from every model, a LambdaMART ranker) and a one-weight
# MAGIC blend of ALS and item-CF are trained and checked against every single model on the same split. Same as
# MAGIC `recspark tune`.

# COMMAND ----------

from recspark import notebook as nb

nb.define_common_widgets(dbutils)
dbutils.widgets.text("configs", "18", "Configurations")
dbutils.widgets.text("budget", "", "Time budget in seconds (empty: automatic)")
dbutils.widgets.text("k", "10", "K of NDCG@K")
dbutils.widgets.text("iterations", "12", "ALS iterations of the last rung")
dbutils.widgets.text("seed", "42", "Seed")
dbutils.widgets.text("ranks", "16,32,64,128,256", "Ranks to search (comma-separated)")
dbutils.widgets.dropdown("ranker", "auto", ["auto", "off"], "Two-stage ranker (auto: trained and checked)")

# COMMAND ----------

from dataclasses import replace

from recspark import tune
from recspark.config import TuneOptions, make_config
from recspark.pipeline import make_split, tune_on

lake = nb.open_lakehouse(spark, dbutils)
cfg = make_config(
    lake, k=nb.parse(dbutils, "k", int), seed=nb.parse(dbutils, "seed", int), evaluate=False, use_tuned=False
)
cfg = replace(cfg, als=replace(cfg.als, max_iter=nb.parse(dbutils, "iterations", int)))
space = {**tune.SPACE, "rank": tuple(int(r) for r in dbutils.widgets.get("ranks").split(","))}
budget = dbutils.widgets.get("budget").strip()
opts = TuneOptions(
    mode="full",
    budget_s=float(budget) if budget else None,
    configs=nb.parse(dbutils, "configs", int),
    space=space,
    ranker=dbutils.widgets.get("ranker"),
)
s = make_split(spark, lake, lake.read("silver", "interactions"), cfg)
search = tune_on(spark, lake, s.train, cfg, opts)
print("best:", search.best, "runner-up:", search.runner_up, "->", lake.identifier("model", "best_params"))
