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

from recspark import columns as C
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
# MAGIC ## The job: ingest, evaluate, train, recommend, publish
# MAGIC When `source` is empty, UCSD-format files are generated into `<lakehouse>/_raw` first. `run_job` runs every
# MAGIC stage in its order, as `recspark run` does: ingest (every bad record quarantined with a reason; nothing on
# MAGIC unchanged input) → (tune →) split → evaluate → train on everything → recommend → similar books → popular
# MAGIC books → serving tables → check → publish. The gold tables carry the run id; the run is marked `published` in
# MAGIC `gold.runs` only after its checks pass.

# COMMAND ----------

from datetime import datetime, UTC
from pathlib import Path

from recspark.ingest import format_counts
from recspark.pipeline import run_job
from recspark.sources.synthetic import generate

lake = nb.open_lakehouse(spark, dbutils)
source, fmt = dbutils.widgets.get("source"), dbutils.widgets.get("format")
if not source:
    scale = nb.parse(dbutils, "scale", float)
    source, fmt = f"{lake.root}/_raw/generated-scale{scale}", "goodreads"
    print(generate(source, scale=scale, seed=nb.parse(dbutils, "seed", int)))
cfg = nb.run_config(dbutils, lake, evaluate=dbutils.widgets.get("evaluate") == "true")
ingest_run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
summary = run_job(
    spark,
    lake,
    source,
    fmt,
    cfg,
    Path(f"{lake.root}/{C.REPORTS}"),
    ingest_run_id,
    tuning=nb.tune_options(dbutils),
)
ingested = summary["ingest"]
print("unchanged input: nothing ingested" if ingested.skipped else format_counts(ingested.counts))
print(ingested.tables)
print(f"published {summary['run_id']}: {summary['row_counts']}")
if summary["evaluation"] is not None:
    print(summary["evaluation"].table(10))

# COMMAND ----------

for name in ("user_recommendations", "similar_books", "popular_books", "runs"):
    print(name, "->", lake.identifier("gold", name))
lake.read("gold", "user_recommendations").where(f"run_id = '{summary['run_id']}'").orderBy(
    "user_id", "rank"
).show(10, truncate=False)
