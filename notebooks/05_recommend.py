# Databricks notebook source
# MAGIC %md
# MAGIC # recspark · 5 · recommend
# MAGIC
# MAGIC Exact top-K books per user from the latest trained model (or `run_id`), computed by the blocked top-K engine.
# MAGIC Each user's read books are excluded exactly. Results go to `model.recommendations`. Same as
# MAGIC `recspark recommend`. The gold tables (with titles, authors and explanations) are published by the end-to-end
# MAGIC notebook.

# COMMAND ----------

from recspark import notebook as nb

nb.define_common_widgets(dbutils)
dbutils.widgets.text("k", "10", "Recommendations per user")
dbutils.widgets.text("users", "", "Comma-separated user ids (empty: all users)")
dbutils.widgets.text("run_id", "", "Model run (empty: the latest trained)")

# COMMAND ----------

from recspark.pipeline import latest_model_run, recommend_stage

lake = nb.open_lakehouse(spark, dbutils)
run_id = dbutils.widgets.get("run_id") or latest_model_run(lake)
users = [u.strip() for u in dbutils.widgets.get("users").split(",") if u.strip()]
recs = recommend_stage(spark, lake, run_id, int(dbutils.widgets.get("k")), users or None)
print(f"{recs.count():,} recommendations ({run_id}) -> {lake.identifier('model', 'recommendations')}")
