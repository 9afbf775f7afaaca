# Databricks notebook source
# MAGIC %md
# MAGIC # recspark · 3 · train
# MAGIC
# MAGIC Fits Spark MLlib implicit ALS on every silver interaction, with confidence from shelved, read, rating and
# MAGIC reviewed. Saves the user and item factors and the parameters under a run id to `model.user_factors`,
# MAGIC `model.item_factors` and `model.params`. Same as `recspark train`.

# COMMAND ----------

from recspark import notebook as nb

nb.define_common_widgets(dbutils)
nb.define_model_widgets(dbutils)

# COMMAND ----------

from recspark.pipeline import train_all

lake = nb.open_lakehouse(spark, dbutils)
cfg = nb.run_config(dbutils, lake)
run_id, fitted = train_all(spark, lake, cfg)
print(
    f"{'trained' if fitted else 'already trained (not fitted again)'} {run_id}: rank {cfg.als.rank}, "
    f"reg {cfg.als.reg}, alpha {cfg.als.alpha}, {cfg.weights.scheme}"
)
print("->", lake.identifier("model", "item_factors"))
