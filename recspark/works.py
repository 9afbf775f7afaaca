"""Editions and works: a reader who shelved one edition of a novel has read the novel.

Goodreads lists each edition of a book as its own ``book_id``; ``work_id`` ties the editions of one work together.
Every model here scores editions (``book_idx``), and this module makes every published list behave at work level:

* **Representative edition.** Each work is shown as one edition: its most read one (most interactions in the
  data the model is trained on; ties: the smaller ``book_idx``). A work is keyed by that edition's index,
  ``work_idx`` (so a work needs no second index space). Books without a ``work_id`` are works of their own.
  The user's language is not used to pick the edition (the interactions carry none).
* **Candidates** are the representative editions only (:meth:`Works.candidates`: a semi-join on the item table
  before the blocked top-K), so a list never holds two editions of one work.
* **Seen** grows to every edition of every work a user shelved (:meth:`Works.seen`), so no list holds an
  edition of a work the user has read. Both are exact inside the blocked top-K: the exclusion sets grow, the
  kernel stays the same. Item-item lists exclude the query's own work the same way (:meth:`Works.own_work`).
* **Training on works** (``--item-level work``, :meth:`Works.to_works`): each interaction is moved to its work's
  representative edition, one row per (user, work) (the highest rating, the latest dates, read if any edition
  was read), so ALS learns one vector per work.

Cost: one extra join per list computation; the seen lists grow by the editions of the shelved works (on
Goodreads 2.36M books / 1.52M works: about 1.5 editions per work). When no work has two editions
(:meth:`Works.of` returns None) nothing changes and nothing is paid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recspark import columns as C

log = logging.getLogger(__name__)

ITEM_LEVELS = ("edition", "work")
_WORK = "_work"


def editions(books: DataFrame, interactions: DataFrame) -> DataFrame:
    """``(book_idx, work_idx, readers)`` for every book: ``work_idx`` is the ``book_idx`` of the work's most read
    edition (ties: the smaller index); a book without ``work_id`` is its own work."""
    readers = interactions.groupBy(C.BOOK_IDX).agg(F.count(F.lit(1)).alias(C.READERS))
    keyed = (
        books.select(
            C.BOOK_IDX,
            F.coalesce(F.col(C.WORK_ID), -(F.col(C.BOOK_IDX).cast("long") + 1)).alias(_WORK),
        )
        .join(readers, on=C.BOOK_IDX, how="left")
        .fillna({C.READERS: 0})
    )
    best = keyed.groupBy(_WORK).agg(
        F.max(F.struct(F.col(C.READERS), (-F.col(C.BOOK_IDX)).alias("_neg"))).alias("_best")
    )
    return keyed.join(best, on=_WORK, how="inner").select(
        F.col(C.BOOK_IDX).cast("int").alias(C.BOOK_IDX),
        (-F.col("_best._neg")).cast("int").alias(C.WORK_IDX),
        F.col(C.READERS),
    )


@dataclass
class Works:
    """The edition -> work map of one catalogue and training set (materialised)."""

    table: DataFrame  # (book_idx, work_idx, readers), cached
    n_books: int
    n_works: int

    @classmethod
    def of(cls, books: DataFrame | None, interactions: DataFrame) -> Works | None:
        """The map of ``books`` with editions ranked by readers in ``interactions``; None when no work has two
        editions (nothing to do)."""
        if books is None or C.WORK_ID not in books.columns:
            return None
        table = editions(books, interactions).cache()
        counts = table.agg(F.count(F.lit(1)).alias("n"), F.countDistinct(C.WORK_IDX).alias("w")).first()
        if counts["n"] == counts["w"]:
            table.unpersist()
            log.info("works: every book is its own work (%d books): lists are per book", counts["n"])
            return None
        log.info(
            "works: %s books in %s works: lists show one edition per work, shelved works excluded",
            f"{counts['n']:,}",
            f"{counts['w']:,}",
        )
        return cls(table, int(counts["n"]), int(counts["w"]))

    def representatives(self) -> DataFrame:
        """``(book_idx)`` of the editions that stand for their works."""
        return self.table.where(F.col(C.BOOK_IDX) == F.col(C.WORK_IDX)).select(C.BOOK_IDX)

    def candidates(self, items: DataFrame, col: str = C.BOOK_IDX) -> DataFrame:
        """The rows of ``items`` whose ``col`` is a representative edition (books outside the map are kept: they
        are works of their own)."""
        others = self.table.where(F.col(C.BOOK_IDX) != F.col(C.WORK_IDX)).select(F.col(C.BOOK_IDX).alias(col))
        return items.join(others, on=col, how="left_anti")

    def seen(self, shelves: DataFrame) -> DataFrame:
        """``(user_idx, book_idx)``: every edition of every work in ``shelves`` (the shelved books included)."""
        pairs = shelves.select(C.USER_IDX, C.BOOK_IDX)
        works = self.table.select(C.BOOK_IDX, C.WORK_IDX)
        other = pairs.join(works, on=C.BOOK_IDX, how="inner").select(C.USER_IDX, C.WORK_IDX)
        expanded = other.join(works, on=C.WORK_IDX, how="inner").select(C.USER_IDX, C.BOOK_IDX)
        return pairs.unionByName(expanded).dropDuplicates([C.USER_IDX, C.BOOK_IDX])

    def own_work(self, queries: DataFrame, col: str = C.BOOK_IDX) -> DataFrame:
        """``(user_idx, book_idx)`` pairs for item-item lists: each query book (as ``user_idx``) with every
        edition of its own work (itself included): :meth:`seen` of the query as if it had shelved itself."""
        return self.seen(queries.select(F.col(col).alias(C.USER_IDX), F.col(col).alias(C.BOOK_IDX)))

    def to_works(self, interactions: DataFrame) -> DataFrame:
        """The interactions moved to their works' representative editions, one row per ``(user, work)``: the
        highest rating (then the latest added) gives the row; read, reviewed, updated and read-at merge over the
        editions (same schema)."""
        cols = interactions.columns
        mapped = (
            interactions.join(self.table.select(C.BOOK_IDX, C.WORK_IDX), on=C.BOOK_IDX, how="left")
            .withColumn("_edition", F.col(C.BOOK_IDX))
            .withColumn(C.BOOK_IDX, F.coalesce(F.col(C.WORK_IDX), F.col(C.BOOK_IDX)))
        )
        key = Window.partitionBy(C.USER_IDX, C.BOOK_IDX)
        whole = key.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
        first = key.orderBy(
            F.col(C.RATING).desc_nulls_last(), F.col(C.DATE_ADDED).desc_nulls_last(), F.col("_edition")
        )
        ranked = mapped.withColumn("_n", F.row_number().over(first))
        for name in (C.IS_READ, C.IS_REVIEWED, C.DATE_UPDATED, C.READ_AT):  # any edition counts
            if name in cols:
                ranked = ranked.withColumn(name, F.max(name).over(whole))
        return ranked.where(F.col("_n") == 1).select(*cols)

    def to_work_level(self, pairs: DataFrame, by: list[str] | None = None) -> DataFrame:
        """``pairs`` with ``book_idx`` replaced by its work's representative edition, duplicates dropped (the
        first row per ``(user, work)`` by rank when ``rank`` is a column): how work-level metrics see lists and
        held-out books. ``by``: columns that tell several lists apart (each list is reduced on its own)."""
        mapped = pairs.join(self.table.select(C.BOOK_IDX, C.WORK_IDX), on=C.BOOK_IDX, how="left").withColumn(
            C.BOOK_IDX, F.coalesce(F.col(C.WORK_IDX), F.col(C.BOOK_IDX))
        )
        key = [*(by or []), C.USER_IDX, C.BOOK_IDX]
        if C.RANK not in pairs.columns:
            return mapped.select(*pairs.columns).dropDuplicates(key)
        best = mapped.groupBy(*key).agg(F.min(C.RANK).alias(C.RANK))
        return mapped.join(best, on=[*key, C.RANK], how="inner").select(*pairs.columns)

    def edition_factors(self, items: DataFrame) -> DataFrame:
        """``(book_idx, features)`` for every edition whose work's representative is in ``items`` (a model
        trained on works has vectors for representatives only): each edition gets its work's vector."""
        return (
            self.table.select(C.BOOK_IDX, C.WORK_IDX)
            .join(items.select(F.col(C.BOOK_IDX).alias(C.WORK_IDX), C.FEATURES), on=C.WORK_IDX, how="inner")
            .select(C.BOOK_IDX, C.FEATURES)
        )

    def not_own_work(self, pairs: DataFrame, other: str) -> DataFrame:
        """Rows of ``pairs`` (``book_idx`` and ``other``, a second book index) whose two books belong to
        different works, and whose ``other`` is a representative edition."""
        a = self.table.select(C.BOOK_IDX, F.col(C.WORK_IDX).alias("_wa"))
        b = self.table.select(F.col(C.BOOK_IDX).alias(other), F.col(C.WORK_IDX).alias("_wb"))
        return (
            pairs.join(a, on=C.BOOK_IDX, how="left")
            .join(b, on=other, how="left")
            .where(
                F.coalesce(F.col("_wb"), F.col(other)) == F.col(other)
            )  # the other book stands for its work
            .where(F.coalesce(F.col("_wa"), F.col(C.BOOK_IDX)) != F.coalesce(F.col("_wb"), F.col(other)))
            .select(*pairs.columns)
        )

    def cited_editions(self, recs: DataFrame, shelves: DataFrame) -> DataFrame:
        """``recs`` of a model trained on works, with ``because_book_idx`` (a work's representative) moved to the
        edition of that work the user shelved (the smallest index when several), so explanations cite books
        the user really has."""
        mine = (
            shelves.select(C.USER_IDX, C.BOOK_IDX)
            .join(self.table.select(C.BOOK_IDX, C.WORK_IDX), on=C.BOOK_IDX, how="inner")
            .groupBy(C.USER_IDX, C.WORK_IDX)
            .agg(F.min(C.BOOK_IDX).alias("_cited"))
            .withColumnRenamed(C.WORK_IDX, C.BECAUSE_BOOK_IDX)
        )
        return (
            recs.join(mine, on=[C.USER_IDX, C.BECAUSE_BOOK_IDX], how="left")
            .withColumn(C.BECAUSE_BOOK_IDX, F.coalesce(F.col("_cited"), F.col(C.BECAUSE_BOOK_IDX)))
            .select(*recs.columns)
        )

    def release(self) -> None:
        self.table.unpersist()


def seen_of(works: Works | None, shelves: DataFrame) -> DataFrame:
    """What a list must exclude for the users of ``shelves``: their books, and with ``works`` every edition of
    their works."""
    return shelves.select(C.USER_IDX, C.BOOK_IDX) if works is None else works.seen(shelves)


def candidates_of(works: Works | None, items: DataFrame, col: str = C.BOOK_IDX) -> DataFrame:
    """The books a list may show: all of ``items``, or with ``works`` one edition per work."""
    return items if works is None else works.candidates(items, col)
