"""Silver: this run's bronze tables -> ``silver.users``, ``silver.books`` and ``silver.interactions``.

The transformations are in :mod:`recspark.clean` (dense indices, id maps, merged interactions, books with their
authors, works and genres); this module runs them in order, quarantines interactions whose ids are unknown,
counts what it read, wrote and dropped, and refuses a new ``silver.interactions`` that would be empty or shrink
more than the :class:`~recspark.tables.ShrinkGuard` allows (:func:`guard_shrink`).
"""

from __future__ import annotations

import dataclasses
import logging
import time

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from recspark import columns as C
from recspark.bronze import QUARANTINE, FileCounts, IngestError
from recspark.frames import union_all
from recspark.sources.spec import SourceFiles
from recspark.tables import BRONZE, SILVER, Lakehouse, ShrinkGuard

log = logging.getLogger(__name__)


def guard_shrink(lake: Lakehouse, name: str, new_rows: int, guard: ShrinkGuard) -> None:
    """Refuse to replace silver ``name`` with an empty table, or one that shrinks by more than the guard allows
    (IngestError, unless forced): an input that lost its rows must not empty what the models read."""
    old_rows = lake.read(SILVER, name).count() if lake.exists(SILVER, name) else None
    problem = guard.problem(f"{SILVER}.{name}", old_rows, new_rows)
    if problem:
        raise IngestError(
            f"{problem} (empty, header-only or truncated input?): nothing was written. "
            "Pass --force to accept it (or a larger --max-shrink)."
        )


def build_silver(
    spark: SparkSession,
    lake: Lakehouse,
    fmt: str,
    found: SourceFiles,
    run_id: str,
    ingested_at: Column,
    guard: ShrinkGuard | None = None,
) -> tuple[FileCounts, dict[str, int]]:
    """Silver users, books and interactions from this run's bronze tables (never an empty interactions table
    unless forced, nor one that shrinks more than ``guard`` allows: :func:`guard_shrink`)."""
    from recspark import clean

    def bronze(name: str) -> DataFrame | None:
        return lake.read(BRONZE, name) if found.has(name) else None

    if fmt == "goodreads":
        parts = []
        if found.has("interactions_csv"):
            parts.append(
                clean.interactions_from_csv(
                    bronze("interactions_csv"), bronze("user_id_map"), bronze("book_id_map")
                )
            )
        if found.has("interactions_json"):
            parts.append(clean.interactions_from_json(bronze("interactions_json")))
        raw = union_all(parts)
    else:
        raw = clean.interactions_from_goodbooks(bronze("ratings"), bronze("to_read"), bronze("gb_books"))
    t0 = time.perf_counter()
    raw = raw.persist(StorageLevel.MEMORY_AND_DISK)
    n_in = raw.count()
    bad = raw.transform(clean.unmapped)
    n_bad = bad.count()
    if n_bad:
        lake.write(
            bad.select(
                F.lit(run_id).alias(C.INGEST_RUN_ID),
                F.lit(SILVER).alias(C.STAGE),
                F.lit(f"{BRONZE} interactions").alias(C.SOURCE_FILE),
                F.col(C.RAW),
                F.col(C.REASON),
                ingested_at.alias(C.INGESTED_AT),
            ),
            BRONZE,
            QUARANTINE,
            mode="append",
        )
    merged = (
        raw.transform(clean.mapped).transform(clean.merge_interactions).persist(StorageLevel.MEMORY_AND_DISK)
    )
    n_out = merged.count()
    guard_shrink(lake, "interactions", n_out, guard or ShrinkGuard())
    counts = FileCounts(
        table=f"{SILVER}.interactions",
        file="bronze interactions",
        read=n_in,
        ingested=n_out,
        quarantined=n_bad,
        duplicates=n_in - n_bad - n_out,
    )

    old_users = lake.read(SILVER, "users") if lake.exists(SILVER, "users") else None
    old_books = lake.read(SILVER, "books") if lake.exists(SILVER, "books") else None
    users = clean.assign_index(merged, old_users, C.USER_ID, C.USER_IDX)
    book_ids = merged.select(C.BOOK_ID)
    meta_books = bronze("books") if fmt == "goodreads" else bronze("gb_books")
    if meta_books is not None:
        id_col = C.BOOK_ID if fmt == "goodreads" else "goodreads_book_id"
        book_ids = book_ids.unionByName(meta_books.select(F.col(id_col).alias(C.BOOK_ID)))
    book_index = clean.assign_index(book_ids, old_books, C.BOOK_ID, C.BOOK_IDX).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    users = users.persist(StorageLevel.MEMORY_AND_DISK)
    if fmt == "goodreads":
        books = clean.books_from_goodreads(
            book_index, meta_books, bronze("authors"), bronze("works"), bronze("genres")
        )
    else:
        books = clean.books_from_goodbooks(book_index, meta_books, bronze("book_tags"), bronze("tags"))
    interactions = clean.index_interactions(merged, users, book_index)

    write_silver(
        lake,
        "users",
        users.select(C.USER_IDX, C.USER_ID),
        not_null=[C.USER_IDX, C.USER_ID],
        checks={"user_idx_nonneg": f"{C.USER_IDX} >= 0"},
    )
    write_silver(
        lake,
        "books",
        books,
        not_null=[C.BOOK_IDX, C.BOOK_ID],
        checks={"book_idx_nonneg": f"{C.BOOK_IDX} >= 0"},
    )
    write_silver(
        lake,
        "interactions",
        interactions,
        not_null=[C.USER_IDX, C.BOOK_IDX, C.IS_READ, C.RATING, C.IS_REVIEWED, C.SOURCE],
        checks={
            "rating_range": f"{C.RATING} BETWEEN 0 AND 5",
            "idx_nonneg": f"{C.USER_IDX} >= 0 AND {C.BOOK_IDX} >= 0",
        },
    )
    tables = {name: lake.rows_written(SILVER, name) for name in ("users", "books", "interactions")}
    for df in (raw, merged, book_index, users):
        df.unpersist()
    return dataclasses.replace(counts, seconds=round(time.perf_counter() - t0, 2)), tables


def write_silver(
    lake: Lakehouse, name: str, df: DataFrame, not_null: list[str], checks: dict[str, str]
) -> None:
    """Overwrite a silver table under its NOT NULL / CHECK contract (Delta rejects a violating write)."""
    lake.ensure_table(SILVER, name, df.schema, not_null, checks)
    lake.write(df, SILVER, name, keep_schema=True)
