# Databricks notebook source
# MAGIC %md
# MAGIC # recspark · 4 · evaluate
# MAGIC
# MAGIC Holds out 20% of each user's books (seeded, persisted), fits ALS on the rest, and scores it against popularity
# MAGIC and recent-window trending. Ranking metrics are precision, recall, NDCG, MAP, MRR and hit rate at K = 5, 10
# MAGIC and 20. Beyond-accuracy metrics are coverage, novelty, diversity and popularity bias. Rows go to
# MAGIC `gold.evaluations`, plus a Markdown report with a plot under `<lakehouse>/_reports`. Same as
# MAGIC `recspark evaluate`.

# COMMAND ----------

from recspark import columns as C
from recspark import notebook as nb

nb.define_common_widgets(dbutils)
nb.define_model_widgets(dbutils)

# COMMAND ----------

from pathlib import Path

from recspark.pipeline import evaluate_model, input_versions, make_split, run_id_for

lake = nb.open_lakehouse(spark, dbutils)
cfg = nb.run_config(dbutils, lake)
run_id = run_id_for(input_versions(lake), cfg)
evaluation = evaluate_model(
    spark,
    lake,
    cfg,
    make_split(spark, lake, lake.read(C.SILVER, "interactions"), cfg),
    run_id,
    Path(f"{lake.root}/{C.REPORTS}"),
)
for k in cfg.ks:
    print(evaluation.table(k), "\n")
