"""Ingest: raw files -> bronze (:mod:`recspark.bronze`) -> silver (:mod:`recspark.silver`), all or nothing, and
the bookkeeping of ingest runs in ``meta`` (``ingest_runs`` with the source fingerprint, ``ingest_counts``).

A second run on unchanged input (same files, sizes and modification times) changes nothing and says so. Any
failure rolls back every table the run wrote (``Lakehouse.rollback_on_error``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recspark import columns as C
from recspark.bronze import (  # noqa: F401 -- IngestError, parse, format_counts: also imported from here
    FileCounts,
    IngestError,
    check_required,
    discover,
    format_counts,
    ingest_bronze,
    parse,
    specs_for,
)
from recspark.silver import build_silver
from recspark.sources.spec import STRING
from recspark.tables import META, SILVER, Lakehouse, ShrinkGuard

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    run_id: str
    skipped: bool
    counts: list[FileCounts]
    tables: dict[str, int]  # silver table -> rows


INGEST_RUNS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", STRING, False),
        T.StructField("source", STRING, False),
        T.StructField("format", STRING, False),
        T.StructField("fingerprint", STRING, False),
        T.StructField("status", STRING, False),
        T.StructField("started_at", T.TimestampType(), False),
        T.StructField("finished_at", T.TimestampType(), True),
    ]
)
COUNTS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", STRING, False),
        T.StructField(C.TABLE, STRING, False),
        T.StructField(C.FILE, STRING, False),
    ]
    + [T.StructField(c, T.LongType(), False) for c in (C.READ, C.INGESTED, C.QUARANTINED, C.DUPLICATES)]
)


def last_fingerprint(lake: Lakehouse, source: str | None = None, fmt: str | None = None) -> str | None:
    """The file fingerprint of the latest successful ingest (of ``source`` in ``fmt`` when given), or None."""
    if not lake.exists(META, "ingest_runs"):
        return None
    ok = F.col("status") == "succeeded"
    if source is not None:
        ok = ok & (F.col("source") == source) & (F.col("format") == fmt)
    rows = lake.read(META, "ingest_runs").where(ok).orderBy(F.col("finished_at").desc()).limit(1).collect()
    return rows[0]["fingerprint"] if rows else None


def run_ingest(
    spark: SparkSession,
    lake: Lakehouse,
    source: str,
    fmt: str,
    run_id: str,
    force: bool = False,
    max_shrink: float | None = None,
) -> IngestResult:
    """Ingest ``source`` (goodreads | goodbooks files) into bronze and silver, all or nothing.

    A second run on unchanged input (same files, sizes and modification times) changes nothing and says so;
    ``force=True`` re-ingests anyway (same rows, same indices) and accepts an input with no interactions;
    ``max_shrink`` refuses a new silver.interactions that shrinks by more than that share.
    """
    import datetime as dt
    import json

    specs = specs_for(fmt)
    found = discover(spark, source, specs)
    check_required(found, fmt, source)
    fingerprint = json.dumps(found.fingerprint())
    silver_ok = all(lake.exists(SILVER, t) for t in ("users", "books", "interactions"))
    if not force and silver_ok and last_fingerprint(lake, source, fmt) == fingerprint:
        log.info("input unchanged since the last successful ingest of %s: nothing to do", source)
        tables = {t: lake.read(SILVER, t).count() for t in ("users", "books", "interactions")}
        return IngestResult(run_id=run_id, skipped=True, counts=[], tables=tables)
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    ingested_at = F.lit(started).cast(T.TimestampType())
    for spec in specs:
        for path in found.paths(spec.table):
            log.info("found %-18s %s", spec.table, path)
    with lake.rollback_on_error():
        counts = ingest_bronze(spark, lake, found, specs, run_id, ingested_at)
        silver_counts, tables = build_silver(
            spark, lake, fmt, found, run_id, ingested_at, ShrinkGuard(max_shrink, force)
        )
        counts.append(silver_counts)
        lake.write(
            spark.createDataFrame(
                [(run_id, c.table, c.file, c.read, c.ingested, c.quarantined, c.duplicates) for c in counts],
                COUNTS_SCHEMA,
            ),
            META,
            "ingest_counts",
            mode="append",
        )
        finished = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        lake.write(
            spark.createDataFrame(
                [(run_id, source, fmt, fingerprint, "succeeded", started, finished)], INGEST_RUNS_SCHEMA
            ),
            META,
            "ingest_runs",
            mode="append",
        )
    return IngestResult(run_id=run_id, skipped=False, counts=counts, tables=tables)
