"""Bronze -> silver: ``silver.users``, ``silver.books``, ``silver.interactions``.

* Interactions are keyed by ``(user_id, book_id)`` with the source's user id (UCSD hash, goodbooks integer as a
  string) and the Goodreads book id. Sources merged, de-duplicated on that key with this priority:
  UCSD dedup JSON (it has timestamps) over the UCSD CSV; goodbooks ``ratings`` over ``to_read``; then the most
  recent ``date_updated``. Rows whose ids are not in the id maps (CSV) or in ``books.csv`` (goodbooks) are
  quarantined with stage ``silver``.
* ``users.user_idx`` and ``books.book_idx`` are dense ints for ALS. They are stable: ids already in the silver
  table keep their index; new ids get the next indices in id order.
* Books are joined with authors (names in author order), works (original publication year) and genres
  (genre names by shelf count); the UCSD ``popular_shelves`` (or goodbooks tags) become ``shelves``.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recspark import columns as C
from recspark.frames import union_all

INTERACTION_COLUMNS = [
    C.USER_ID,
    C.BOOK_ID,
    C.IS_READ,
    C.RATING,
    C.IS_REVIEWED,
    C.DATE_ADDED,
    C.DATE_UPDATED,
    C.READ_AT,
    C.STARTED_AT,
    C.SOURCE,
]
SOURCE_PRIORITY = {"json": 0, "csv": 1, "ratings": 0, "to_read": 1}


def no_time() -> Column:
    """A null timestamp (built per use: a Column needs an active SparkContext, so never at import time)."""
    return F.lit(None).cast(T.TimestampType())


MAX_SHELVES = 20


# -- interactions ---------------------------------------------------------------------------------------------
def interactions_from_csv(csv: DataFrame, user_map: DataFrame, book_map: DataFrame) -> DataFrame:
    """UCSD CSV rows through the id maps. Unmapped ids give null ``user_id`` / ``book_id`` (quarantined later)."""
    users = user_map.select(F.col(C.USER_ID_CSV), F.col(C.USER_ID).alias("_uid"))
    books = book_map.select(F.col(C.BOOK_ID_CSV), F.col(C.BOOK_ID).alias("_bid"))
    return (
        csv.join(users, csv[C.USER_ID] == users[C.USER_ID_CSV], how="left")
        .join(books, csv[C.BOOK_ID] == books[C.BOOK_ID_CSV], how="left")
        .select(
            F.col("_uid").alias(C.USER_ID),
            F.col("_bid").alias(C.BOOK_ID),
            (F.col(C.IS_READ) == 1).alias(C.IS_READ),
            F.col(C.RATING),
            (F.col(C.IS_REVIEWED) == 1).alias(C.IS_REVIEWED),
            no_time().alias(C.DATE_ADDED),
            no_time().alias(C.DATE_UPDATED),
            no_time().alias(C.READ_AT),
            no_time().alias(C.STARTED_AT),
            F.lit("csv").alias(C.SOURCE),
            F.concat_ws(",", csv[C.USER_ID], csv[C.BOOK_ID]).alias("_key"),
        )
    )


def interactions_from_json(js: DataFrame) -> DataFrame:
    """UCSD dedup JSON (or genre subset) rows; reviewed = non-empty review text."""
    return js.select(
        F.col(C.USER_ID),
        F.col(C.BOOK_ID),
        F.col(C.IS_READ),
        F.col(C.RATING),
        (F.length(F.trim(F.coalesce(F.col("review_text_incomplete"), F.lit("")))) > 0).alias(C.IS_REVIEWED),
        F.col(C.DATE_ADDED),
        F.col(C.DATE_UPDATED),
        F.col(C.READ_AT),
        F.col(C.STARTED_AT),
        F.lit("json").alias(C.SOURCE),
        F.concat_ws(",", F.col(C.USER_ID), F.col(C.BOOK_ID).cast("string")).alias("_key"),
    )


def interactions_from_goodbooks(
    ratings: DataFrame | None, to_read: DataFrame | None, books: DataFrame
) -> DataFrame:
    """goodbooks ratings (read, rated) and to_read shelves (not read, not rated), book ids -> goodreads ids."""
    ids = books.select(F.col(C.BOOK_ID).alias("_gb_id"), F.col("goodreads_book_id").alias("_bid"))
    parts = []
    if ratings is not None:
        parts.append(
            ratings.select(
                C.USER_ID, C.BOOK_ID, F.lit(True).alias(C.IS_READ), C.RATING, F.lit("ratings").alias(C.SOURCE)
            )
        )
    if to_read is not None:
        parts.append(
            to_read.select(
                C.USER_ID,
                C.BOOK_ID,
                F.lit(False).alias(C.IS_READ),
                F.lit(0).alias(C.RATING),
                F.lit("to_read").alias(C.SOURCE),
            )
        )
    rows = union_all(parts)
    return rows.join(ids, rows[C.BOOK_ID] == ids["_gb_id"], how="left").select(
        F.col(C.USER_ID).cast("string").alias(C.USER_ID),
        F.col("_bid").alias(C.BOOK_ID),
        F.col(C.IS_READ),
        F.col(C.RATING).cast("int").alias(C.RATING),
        F.lit(False).alias(C.IS_REVIEWED),
        no_time().alias(C.DATE_ADDED),
        no_time().alias(C.DATE_UPDATED),
        no_time().alias(C.READ_AT),
        no_time().alias(C.STARTED_AT),
        F.col(C.SOURCE),
        F.concat_ws(",", F.col(C.USER_ID).cast("string"), rows[C.BOOK_ID].cast("string")).alias("_key"),
    )


def unmapped(df: DataFrame) -> DataFrame:
    """Rows whose user or book id could not be resolved, with a reason (for the quarantine)."""
    reason = F.concat_ws(
        "; ",
        F.when(F.col(C.USER_ID).isNull(), F.lit("user id not in the id map")),
        F.when(F.col(C.BOOK_ID).isNull(), F.lit("book id not in the id map / books file")),
    )
    return df.where(F.col(C.USER_ID).isNull() | F.col(C.BOOK_ID).isNull()).select(
        F.concat(F.col(C.SOURCE), F.lit(": "), F.col("_key")).alias(C.RAW), reason.alias(C.REASON)
    )


def mapped(df: DataFrame) -> DataFrame:
    return df.where(F.col(C.USER_ID).isNotNull() & F.col(C.BOOK_ID).isNotNull()).select(*INTERACTION_COLUMNS)


def merge_interactions(df: DataFrame) -> DataFrame:
    """One row per (user_id, book_id): preferred source first, then the latest ``date_updated``."""
    priority = F.coalesce(
        *[F.when(F.col(C.SOURCE) == k, F.lit(v)) for k, v in SOURCE_PRIORITY.items()], F.lit(9)
    )
    w = Window.partitionBy(C.USER_ID, C.BOOK_ID).orderBy(
        priority.asc(),
        F.col(C.DATE_UPDATED).desc_nulls_last(),
        F.col(C.RATING).desc(),
        F.col(C.IS_READ).desc(),
    )
    return df.withColumn("_rn", F.row_number().over(w)).where(F.col("_rn") == 1).select(*INTERACTION_COLUMNS)


# -- stable dense indices -------------------------------------------------------------------------------------
def assign_index(ids: DataFrame, existing: DataFrame | None, id_col: str, idx_col: str) -> DataFrame:
    """``(id_col, idx_col)`` for every id in ``ids`` and ``existing``: existing indices kept, new ids appended
    after the current maximum in id order."""
    distinct = ids.select(id_col).where(F.col(id_col).isNotNull()).distinct()
    if existing is None:
        base, offset = None, 0
    else:
        base = existing.select(id_col, idx_col)
        offset = (base.agg(F.max(idx_col)).first()[0] or -1) + 1
        distinct = distinct.join(base, on=id_col, how="left_anti")
    fresh = dense_rank_of(distinct, id_col, idx_col, offset)
    return fresh if base is None else base.unionByName(fresh)


def dense_rank_of(ids: DataFrame, id_col: str, idx_col: str, offset: int = 0) -> DataFrame:
    """``(id_col, idx_col)``: each distinct id's position in id order, plus ``offset``, without moving every id
    into one task. The ids are range-partitioned (partition ``p`` holds smaller ids than ``p + 1``), each
    partition is counted, and an id's index is the number of ids in the partitions before its own plus its
    rank inside it (a window partitioned by the range partition). The result depends only on the id order,
    not on where the range bounds fall."""
    spark = ids.sparkSession
    parts = max(2, spark.sparkContext.defaultParallelism)
    ranged = (
        ids.repartitionByRange(parts, id_col)
        .select(id_col, F.spark_partition_id().alias("_part"))
        .localCheckpoint()  # one fixed assignment of ids to ranges for the counts and the ranks below
    )
    counts = sorted((r["_part"], r["count"]) for r in ranged.groupBy("_part").count().collect())
    starts, total = [], offset
    for part, n in counts:
        starts.append((part, total))
        total += n
    start_of = spark.createDataFrame(starts or [(0, offset)], "_part int, _start long")
    within = (
        Window.partitionBy("_part").orderBy(id_col).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    return ranged.join(F.broadcast(start_of), on="_part", how="inner").select(
        id_col, (F.col("_start") + F.row_number().over(within) - 1).cast("int").alias(idx_col)
    )


def index_interactions(df: DataFrame, users: DataFrame, books: DataFrame) -> DataFrame:
    """Replace ids by dense indices (every id is in ``users`` / ``books`` by construction)."""
    return (
        df.join(users.select(C.USER_ID, C.USER_IDX), on=C.USER_ID, how="inner")
        .join(books.select(C.BOOK_ID, C.BOOK_IDX), on=C.BOOK_ID, how="inner")
        .select(
            F.col(C.USER_IDX),
            F.col(C.BOOK_IDX),
            F.col(C.IS_READ),
            F.col(C.RATING),
            F.col(C.IS_REVIEWED),
            F.col(C.DATE_ADDED),
            F.col(C.DATE_UPDATED),
            F.col(C.READ_AT),
            F.col(C.STARTED_AT),
            F.col(C.SOURCE),
        )
    )


# -- books ----------------------------------------------------------------------------------------------------
BOOK_COLUMNS = [
    C.BOOK_IDX,
    C.BOOK_ID,
    C.WORK_ID,
    C.TITLE,
    C.AUTHORS,
    C.AUTHOR_IDS,
    C.GENRES,
    C.SHELVES,
    C.DESCRIPTION,
    C.PUBLICATION_YEAR,
    C.AVERAGE_RATING,
    C.RATINGS_COUNT,
    C.NUM_PAGES,
    C.LANGUAGE_CODE,
    C.IMAGE_URL,
    C.SERIES,
]
_STR_ARRAY = T.ArrayType(T.StringType())
_LONG_ARRAY = T.ArrayType(T.LongType())


def empty_book_metadata(index: DataFrame) -> DataFrame:
    """Books with no metadata files: ids only; titles and authors stay empty."""
    return index.select(
        F.col(C.BOOK_IDX),
        F.col(C.BOOK_ID),
        F.lit(None).cast("long").alias(C.WORK_ID),
        F.lit(None).cast("string").alias(C.TITLE),
        F.lit(None).cast("string").alias(C.AUTHORS),
        F.lit(None).cast(_LONG_ARRAY).alias(C.AUTHOR_IDS),
        F.lit(None).cast(_STR_ARRAY).alias(C.GENRES),
        F.lit(None).cast(_STR_ARRAY).alias(C.SHELVES),
        F.lit(None).cast("string").alias(C.DESCRIPTION),
        F.lit(None).cast("int").alias(C.PUBLICATION_YEAR),
        F.lit(None).cast("double").alias(C.AVERAGE_RATING),
        F.lit(None).cast("int").alias(C.RATINGS_COUNT),
        F.lit(None).cast("int").alias(C.NUM_PAGES),
        F.lit(None).cast("string").alias(C.LANGUAGE_CODE),
        F.lit(None).cast("string").alias(C.IMAGE_URL),
        F.lit(None).cast(_STR_ARRAY).alias(C.SERIES),
    )


def author_names(books: DataFrame, authors: DataFrame | None) -> DataFrame:
    """``book_id -> authors`` (names joined with ", " in the book's author order) and ``author_ids``."""
    exploded = books.select(F.col(C.BOOK_ID), F.posexplode_outer(C.AUTHORS).alias("_pos", "_a")).select(
        C.BOOK_ID, "_pos", F.col("_a.author_id").try_cast("long").alias(C.AUTHOR_ID)
    )
    if authors is not None:
        names = authors.select(F.col(C.AUTHOR_ID), F.col(C.NAME))
        exploded = exploded.join(names, on=C.AUTHOR_ID, how="left")
    else:
        exploded = exploded.withColumn(C.NAME, F.lit(None).cast("string"))
    ordered = F.array_sort(F.collect_list(F.struct(F.col("_pos"), F.col(C.AUTHOR_ID), F.col(C.NAME))))
    return (
        exploded.groupBy(C.BOOK_ID)
        .agg(ordered.alias("_as"))
        .select(
            F.col(C.BOOK_ID),
            F.when(
                F.size(F.filter("_as", lambda a: a[C.NAME].isNotNull())) > 0,
                F.concat_ws(", ", F.transform("_as", lambda a: a[C.NAME])),
            ).alias(C.AUTHORS),
            F.filter(F.transform("_as", lambda a: a[C.AUTHOR_ID]), lambda x: x.isNotNull()).alias(
                C.AUTHOR_IDS
            ),
        )
    )


def genre_names(genres: DataFrame) -> DataFrame:
    """``book_id -> genres``: the genre keys ordered by shelf count (desc), then name."""
    entries = F.transform(
        F.map_entries(F.coalesce(F.col(C.GENRES), F.create_map().cast("map<string,bigint>"))),
        lambda e: F.struct((-e["value"]).alias("neg"), e["key"].alias("name")),
    )
    return genres.select(
        F.col(C.BOOK_ID), F.transform(F.array_sort(entries), lambda e: e["name"]).alias(C.GENRES)
    )


def shelf_names(books: DataFrame) -> DataFrame:
    """``book_id -> shelves``: popular shelf names by count (desc), at most ``MAX_SHELVES``."""
    shelves = F.transform(
        F.coalesce(F.col("popular_shelves"), F.array()),
        lambda s: F.struct(
            (-F.coalesce(s["count"].try_cast("long"), F.lit(0))).alias("neg"), s["name"].alias("name")
        ),
    )
    return books.select(
        F.col(C.BOOK_ID),
        F.slice(F.transform(F.array_sort(shelves), lambda s: s["name"]), 1, MAX_SHELVES).alias(C.SHELVES),
    )


def books_from_goodreads(
    index: DataFrame,
    books: DataFrame | None,
    authors: DataFrame | None,
    works: DataFrame | None,
    genres: DataFrame | None,
) -> DataFrame:
    """Silver books for the UCSD files: every indexed book, with whatever metadata exists."""
    if books is None:
        out = empty_book_metadata(index)
        if genres is not None:
            out = out.drop(C.GENRES).join(genre_names(genres), on=C.BOOK_ID, how="left")
        return out.select(*BOOK_COLUMNS)
    meta = books.select(
        C.BOOK_ID,
        C.WORK_ID,
        C.TITLE,
        C.DESCRIPTION,
        C.PUBLICATION_YEAR,
        C.AVERAGE_RATING,
        C.RATINGS_COUNT,
        C.NUM_PAGES,
        C.LANGUAGE_CODE,
        C.IMAGE_URL,
        C.SERIES,
    )
    out = (
        index.select(C.BOOK_IDX, C.BOOK_ID)
        .join(meta, on=C.BOOK_ID, how="left")
        .join(author_names(books, authors), on=C.BOOK_ID, how="left")
        .join(shelf_names(books), on=C.BOOK_ID, how="left")
    )
    if works is not None:
        years = works.select(C.WORK_ID, F.col("original_publication_year").alias("_oy"))
        out = out.join(years, on=C.WORK_ID, how="left").withColumn(
            C.PUBLICATION_YEAR, F.coalesce(F.col("_oy"), F.col(C.PUBLICATION_YEAR))
        )
    if genres is not None:
        out = out.join(genre_names(genres), on=C.BOOK_ID, how="left")
    else:
        out = out.withColumn(C.GENRES, F.lit(None).cast(_STR_ARRAY))
    return out.select(
        *[
            F.when(F.col(c) == "", None).otherwise(F.col(c)).alias(c)
            if c in (C.TITLE, C.DESCRIPTION, C.LANGUAGE_CODE, C.IMAGE_URL)
            else F.col(c)
            for c in BOOK_COLUMNS
        ]
    )


def books_from_goodbooks(
    index: DataFrame, books: DataFrame, book_tags: DataFrame | None, tags: DataFrame | None
) -> DataFrame:
    """Silver books for goodbooks-10k: ``book_id`` is ``goodreads_book_id``; tags become shelves."""
    meta = books.select(
        F.col("goodreads_book_id").alias(C.BOOK_ID),
        F.col(C.WORK_ID),
        F.col(C.TITLE),
        F.col(C.AUTHORS),
        F.col("original_publication_year").try_cast("int").alias(C.PUBLICATION_YEAR),
        F.col(C.AVERAGE_RATING),
        F.col(C.RATINGS_COUNT),
        F.col(C.LANGUAGE_CODE),
        F.col(C.IMAGE_URL),
    )
    out = index.select(C.BOOK_IDX, C.BOOK_ID).join(meta, on=C.BOOK_ID, how="left")
    if book_tags is not None and tags is not None:
        named = book_tags.join(tags, on="tag_id", how="inner").select(
            F.col("goodreads_book_id").alias(C.BOOK_ID),
            F.struct((-F.col("count")).alias("neg"), F.col("tag_name").alias("name")).alias("_t"),
        )
        shelves = named.groupBy(C.BOOK_ID).agg(
            F.slice(
                F.transform(F.array_sort(F.collect_list("_t")), lambda t: t["name"]), 1, MAX_SHELVES
            ).alias(C.SHELVES)
        )
        out = out.join(shelves, on=C.BOOK_ID, how="left")
    else:
        out = out.withColumn(C.SHELVES, F.lit(None).cast(_STR_ARRAY))
    return out.select(
        C.BOOK_IDX,
        C.BOOK_ID,
        C.WORK_ID,
        C.TITLE,
        C.AUTHORS,
        F.lit(None).cast(_LONG_ARRAY).alias(C.AUTHOR_IDS),
        F.lit(None).cast(_STR_ARRAY).alias(C.GENRES),
        C.SHELVES,
        F.lit(None).cast("string").alias(C.DESCRIPTION),
        C.PUBLICATION_YEAR,
        C.AVERAGE_RATING,
        C.RATINGS_COUNT,
        F.lit(None).cast("int").alias(C.NUM_PAGES),
        C.LANGUAGE_CODE,
        C.IMAGE_URL,
        F.lit(None).cast(_STR_ARRAY).alias(C.SERIES),
    )
