"""Series order: volume 3 of a series is not what a reader who has not read volumes 1 and 2 should get.

Volumes are read from titles, where both Goodreads formats put them: ``"The Hunger Games (The Hunger Games, #1)"``
(UCSD ``title``, goodbooks ``title``; generated data writes the same shape). :data:`VOLUME_PATTERN` takes the
series name and an integer volume; fractional or ranged volumes (``#1.5``, ``#1-3``: novellas, omnibus
editions) are not volumes in the order and are left alone.

Rule (:func:`in_series_order`), per recommended book that is volume ``n > 1`` of a series: if the reader has
shelved *no* volume of the series (any edition, when a :class:`~recspark.works.Works` map is given), the book is
**replaced** by the series' first volume (``m`` = the smallest volume below ``n`` in the catalogue), at the same
rank and score, with ``series_note = "next in series: <name> #m"``. A reader who has shelved some volume has
entered the series where they chose and keeps the model's pick, gap or not: on the real goodbooks-10k
``to_read`` shelves, replacing for them too cost a fifth of NDCG@10 (0.0666 against 0.0828: the held-out books
held the later volume far more often than the replacement; ``bench/series.py``, README "Editions, works and
series"). Replacing rather than demoting keeps the model's signal (the reader likes this series) and shows
what a reader would actually pick up next. A replacement that is already in the list keeps its better rank only
(the list closes up by one; the publish step fills it back to ``k`` from popular books). The replacement is the
most read book of that volume among the allowed candidates (one edition per work).

Cost: joins of the lists with the (small) volume table and of the readers' shelves with it; no window without a
partition (ranks are renumbered per user).
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recspark import columns as C
from recspark.works import Works, candidates_of, seen_of

log = logging.getLogger(__name__)

VOLUME_PATTERN = r"\(([^()#]+?),\s*#(\d+)\)\s*$"
SERIES_NAME = "series_name"
VOLUME = "volume"
SERIES_NOTE = C.SERIES_NOTE


def volumes(books: DataFrame) -> DataFrame:
    """``(book_idx, series_name, volume)`` for every book whose title ends in ``(<series>, #<n>)``."""
    name = F.regexp_extract(F.col(C.TITLE), VOLUME_PATTERN, 1)
    number = F.regexp_extract(F.col(C.TITLE), VOLUME_PATTERN, 2)
    return (
        books.where(F.col(C.TITLE).isNotNull())
        .select(C.BOOK_IDX, F.trim(name).alias(SERIES_NAME), number.alias("_n"))
        .where((F.col(SERIES_NAME) != "") & (F.col("_n") != ""))
        .select(C.BOOK_IDX, SERIES_NAME, F.col("_n").cast("int").alias(VOLUME))
    )


def has_volumes(books: DataFrame) -> bool:
    """Whether some title of ``books`` names a volume (the rule has anything to do)."""
    return C.TITLE in books.columns and volumes(books).limit(1).count() > 0


def first_volumes(vols: DataFrame, interactions: DataFrame, works: Works | None) -> DataFrame:
    """``(series_name, volume, book_idx)``: the book a reader is sent to for each volume, the most read allowed
    candidate of that volume (ties: the smaller index)."""
    readers = interactions.groupBy(C.BOOK_IDX).agg(F.count(F.lit(1)).alias(C.READERS))
    allowed = candidates_of(works, vols)
    best = (
        allowed.join(readers, on=C.BOOK_IDX, how="left")
        .fillna({C.READERS: 0})
        .groupBy(SERIES_NAME, VOLUME)
        .agg(F.max(F.struct(F.col(C.READERS), (-F.col(C.BOOK_IDX)).alias("_neg"))).alias("_b"))
    )
    return best.select(SERIES_NAME, VOLUME, (-F.col("_b._neg")).cast("int").alias(C.BOOK_IDX))


def as_ranked(recs: DataFrame) -> DataFrame:
    """``recs`` as the model ranked them, with the null ``series_note`` of :func:`in_series_order`'s schema: the
    lists of a run published without the rule (``RunConfig.series_order``, off where validation found that the
    data's readers start series elsewhere: :func:`recspark.tune.series_check`)."""
    cols = [c for c in recs.columns if c != SERIES_NOTE]
    return recs.select(*cols, F.lit(None).cast("string").alias(SERIES_NOTE))


def in_series_order(
    recs: DataFrame, interactions: DataFrame, books: DataFrame, works: Works | None = None
) -> DataFrame:
    """``recs`` (``user_idx, rank, book_idx, score`` + any columns) with later volumes of unstarted series
    replaced by the series' first volume (see the module docstring) and ``series_note`` added (null when
    the model's pick stands). Ranks are renumbered 1.. per user after duplicates close up."""
    vols = volumes(books)
    cols = [c for c in recs.columns if c != SERIES_NOTE]
    started = (  # (user, series) with some volume shelved
        seen_of(works, interactions)
        .join(vols, on=C.BOOK_IDX, how="inner")
        .select(C.USER_IDX, SERIES_NAME)
        .distinct()
    )
    picks = first_volumes(vols, interactions, works)
    later = (
        recs.select(C.USER_IDX, C.RANK, C.BOOK_IDX)
        .join(vols, on=C.BOOK_IDX, how="inner")
        .where(F.col(VOLUME) > 1)
        .select(C.USER_IDX, C.RANK, SERIES_NAME, F.col(VOLUME).alias("_n"))
    )
    unstarted = later.join(started, on=[C.USER_IDX, SERIES_NAME], how="left_anti")
    first_volume = (
        unstarted.join(picks.select(SERIES_NAME, VOLUME), on=SERIES_NAME, how="inner")
        .where(F.col(VOLUME) < F.col("_n"))
        .groupBy(C.USER_IDX, C.RANK, SERIES_NAME)
        .agg(F.min(VOLUME).alias(VOLUME))
        .join(picks, on=[SERIES_NAME, VOLUME], how="inner")
        .select(
            C.USER_IDX,
            C.RANK,
            F.col(C.BOOK_IDX).alias("_next"),
            F.concat(F.lit("next in series: "), F.col(SERIES_NAME), F.lit(" #"), F.col(VOLUME)).alias(
                SERIES_NOTE
            ),
        )
    )
    replaced = (
        recs.select(*cols)
        .join(first_volume, on=[C.USER_IDX, C.RANK], how="left")
        .withColumn(C.BOOK_IDX, F.coalesce(F.col("_next"), F.col(C.BOOK_IDX)))
    )
    once = (
        Window.partitionBy(C.USER_IDX, C.BOOK_IDX)
        .orderBy(C.RANK)
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    again = (
        Window.partitionBy(C.USER_IDX)
        .orderBy(C.RANK)
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    return (
        replaced.withColumn("_first", F.row_number().over(once))
        .where(F.col("_first") == 1)
        .withColumn(C.RANK, F.row_number().over(again).cast("int"))
        .select(*cols, SERIES_NOTE)
    )
