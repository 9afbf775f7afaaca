"""Small DataFrame helpers shared by the stages."""

from __future__ import annotations

import logging
from functools import reduce

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

# Arrow data below this size becomes a local relation inside the plan (Spark's default: 48 MB)
ARROW_LOCAL_RELATION_THRESHOLD = "spark.sql.execution.arrow.localRelationThreshold"


def union_all(frames: list[DataFrame]) -> DataFrame:
    """The rows of every frame, matched by column name (at least one frame)."""
    if not frames:
        raise ValueError("union_all needs at least one DataFrame")
    return reduce(DataFrame.unionByName, frames)


def from_arrow(spark: SparkSession, table: pa.Table) -> DataFrame:
    """``table`` as a DataFrame whose rows live in an RDD of its Arrow batches (one partition per batch of
    ``spark.sql.execution.arrow.maxRecordsPerBatch`` rows), not in a local relation embedded in the plan.

    Why: below 48 MB Spark keeps driver-made Arrow data in the plan, so every task of every stage that reads it
    carries all of it (a table of 1M rows of four 4-byte columns made 16 MB tasks; EASE's weight table has up to
    10,000 x 400 rows). The threshold is set to 0 for this one call and restored; a session that refuses the
    setting (a managed one) gets the local relation."""
    old = spark.conf.get(ARROW_LOCAL_RELATION_THRESHOLD, None)
    try:
        spark.conf.set(ARROW_LOCAL_RELATION_THRESHOLD, "0")
    except Exception as exc:  # any refusal: the local relation still works
        log.debug("%s not settable (%s): Arrow data stays in the plan", ARROW_LOCAL_RELATION_THRESHOLD, exc)
        return spark.createDataFrame(table)
    try:
        return spark.createDataFrame(table)
    finally:
        if old is None:
            spark.conf.unset(ARROW_LOCAL_RELATION_THRESHOLD)
        else:
            spark.conf.set(ARROW_LOCAL_RELATION_THRESHOLD, old)
