# Databricks notebook source
# MAGIC %md
# MAGIC # recspark · 6 · similar books
# MAGIC
# MAGIC "Readers of this book also liked": the top-K cosine neighbours on the item factors, for books with at least
# MAGIC `min_readers` readers. Computed as blocks of books × books, and a book is never its own neighbour. Results go
# MAGIC to `model.similar_books`. Same as `recspark similar`.

# COMMAND ----------

from recspark import notebook as nb

nb.define_common_widgets(dbutils)
dbutils.widgets.text("k", "20", "Neighbours per book")
dbutils.widgets.text("min_readers", "5", "Only books with at least this many readers")
dbutils.widgets.text("run_id", "", "Model run (empty: the latest trained)")

# COMMAND ----------

from recspark.pipeline import latest_model_run, similar_stage

lake = nb.open_lakehouse(spark, dbutils)
run_id = dbutils.widgets.get("run_id") or latest_model_run(lake)
sims = similar_stage(
    spark, lake, run_id, int(dbutils.widgets.get("k")), int(dbutils.widgets.get("min_readers"))
)
print(f"{sims.count():,} neighbours ({run_id}) -> {lake.identifier('model', 'similar_books')}")
