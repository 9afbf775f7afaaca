# Databricks notebook source
# MAGIC %md
# MAGIC # recspark · end to end
# MAGIC
# MAGIC Raw Goodreads files → bronze/silver Delta tables → implicit ALS, evaluated against popularity and trending →
# MAGIC top-K recommendations with read books excluded, similar books, popular books → checked and published gold
# MAGIC tables. This is the same job as `recspark run` and `jobs/run.py`.
# MAGIC
# MAGIC **Before running:** the cluster needs the recspark wheel. The bundle in `deploy/databricks` installs it for
# MAGIC jobs. Interactively, run `%pip install <path to recspark-*.whl>` in a cell. Databricks Runtime already ships
# MAGIC Spark and Delta Lake.
# MAGIC
# MAGIC | widget | meaning |
# MAGIC |---|---|
# MAGIC | `source` | folder with the raw files (UCSD Goodreads or goodbooks-10k); empty = generate UCSD-format data |
# MAGIC | `format` | `goodreads` or `goodbooks` |
# MAGIC | `scale` | size of the generated data when `source` is empty (1.0 = the real 228.6M interactions) |
# MAGIC | `lakehouse` | folder for Delta tables (path mode), checkpoints and reports, e.g. a Unity Catalog volume |
# MAGIC | `catalog`, `schema` | write `catalog.schema.<layer>_<table>` instead of paths (empty catalog = paths) |
# MAGIC | `k`, `seed`, `rank`, `reg`, `alpha`, `iterations`, `scheme`, `use_tuned` | model settings; empty = tuned or default |
# MAGIC | `evaluate` | run the offline evaluation (ALS, item-CF and content vs popularity and trending) before training on everything |
# MAGIC | `tune` | `auto` (search ALS parameters once per input), `full` (always search) or `off`; off when `use_tuned` is `false` or an ALS parameter widget is set |
# MAGIC | `tune_budget` | seconds the search may take (empty: automatic) |

# COMMAND ----------

from recspark import notebook as nb

nb.define_common_widgets(dbutils)
nb.define_model_widgets(dbutils)
dbutils.widgets.text("source", "", "Raw files (empty: generate)")
dbutils.widgets.dropdown("format", "goodreads", ["goodreads", "goodbooks"], "Format")
dbutils.widgets.text("scale", "0.001", "Generated scale (when source is empty)")
dbutils.widgets.dropdown("evaluate", "true", ["true", "false"], "Offline evaluation")
dbutils.widgets.dropdown("tune", "auto", ["auto", "full", "off"], "Self-tuning of ALS parameters")
dbutils.widgets.text("tune_budget", "", "Tuning budget in seconds (empty: automatic)")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Ingest
# MAGIC When `source` is empty, UCSD-format files are generated into `<lakehouse>/_raw` first. Ingest quarantines
# MAGIC every bad record with a reason. On unchanged input it does nothing.

# COMMAND ----------

from datetime import datetime, UTC

from recspark.ingest import format_counts, run_ingest
from recspark.sources.synthetic import generate

lake = nb.open_lakehouse(spark, dbutils)
source, fmt = dbutils.widgets.get("source"), dbutils.widgets.get("format")
if not source:
    scale = nb.parse(dbutils, "scale", float)
    source, fmt = f"{lake.root}/_raw/generated-scale{scale}", "goodreads"
    print(generate(source, scale=scale, seed=nb.parse(dbutils, "seed", int)))
run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
ingested = run_ingest(spark, lake, source, fmt, run_id)
print("unchanged input: nothing ingested" if ingested.skipped else format_counts(ingested.counts))
print(ingested.tables)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Evaluate, train, recommend, publish
# MAGIC `run_pipeline` runs split → evaluate → train on everything → recommend → similar books → popular books →
# MAGIC check → publish. The gold tables carry the run id. The run is marked `published` in `gold.runs` only after
# MAGIC its checks pass.

# COMMAND ----------

from pathlib import Path

from recspark.pipeline import run_pipeline

cfg = nb.run_config(dbutils, lake, evaluate=dbutils.widgets.get("evaluate") == "true")
summary = run_pipeline(spark, lake, cfg, Path(f"{lake.root}/_reports"), tuning=nb.tune_options(dbutils))
print(f"published {summary['run_id']}: {summary['row_counts']}")
if summary["evaluation"] is not None:
    print(summary["evaluation"].table(10))

# COMMAND ----------

for name in ("user_recommendations", "similar_books", "popular_books", "runs"):
    print(name, "->", lake.identifier("gold", name))
lake.read("gold", "user_recommendations").where(f"run_id = '{summary['run_id']}'").orderBy(
    "user_id", "rank"
).show(10, truncate=False)
