# Databricks notebook source
# MAGIC %md
# MAGIC # recspark · 1 · ingest
# MAGIC
# MAGIC Raw files → bronze (typed copies with lineage, bad records quarantined with a reason) → silver (users and books
# MAGIC with stable dense indices, merged interactions, books with authors, works and genres). Same as `recspark ingest`.
# MAGIC
# MAGIC Every source line is ingested, quarantined (`bronze.quarantine`, with the reason) or counted as a duplicate.
# MAGIC The counts are printed and stored in `meta.ingest_counts`. A missing required file, a wrong CSV header or
# MAGIC a truncated gzip stops the run, and the tables it had written are rolled back.

# COMMAND ----------

from recspark import notebook as nb

nb.define_common_widgets(dbutils)
dbutils.widgets.text("source", "/Volumes/main/recspark/raw/goodreads", "Raw files")
dbutils.widgets.dropdown("format", "goodreads", ["goodreads", "goodbooks"], "Format")
dbutils.widgets.dropdown("force", "false", ["false", "true"], "Re-ingest unchanged input")

# COMMAND ----------

from datetime import datetime, UTC

from recspark.ingest import format_counts, run_ingest

lake = nb.open_lakehouse(spark, dbutils)
result = run_ingest(
    spark,
    lake,
    dbutils.widgets.get("source"),
    dbutils.widgets.get("format"),
    datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
    force=dbutils.widgets.get("force") == "true",
)
print("unchanged input: nothing ingested" if result.skipped else format_counts(result.counts))
for name, rows in result.tables.items():
    print(f"{lake.identifier('silver', name)}: {rows:,} rows")
