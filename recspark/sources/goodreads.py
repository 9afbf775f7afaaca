"""The UCSD Goodreads Book Graph files (Wan & McAuley, RecSys 2018): specs for ingest.

Required: the interactions, either ``goodreads_interactions.csv`` with ``user_id_map.csv`` and
``book_id_map.csv``, or ``goodreads_interactions_dedup.json.gz`` (or genre subsets
``goodreads_interactions_<genre>.json.gz``). Everything else is optional metadata.
Files may also be given uncompressed (``.json``).
"""

from __future__ import annotations

from pyspark.sql import types as T

from recspark.sources.spec import BOOL, DOUBLE, INT, LONG, STRING, Field, FileSpec

INTERACTIONS_CSV = FileSpec(
    table="interactions_csv",
    patterns=("goodreads_interactions.csv",),
    kind="csv",
    header=("user_id", "book_id", "is_read", "rating", "is_reviewed"),
    fields=(
        Field("user_id", target=INT, required=True, check="{c} >= 0"),
        Field("book_id", target=INT, required=True, check="{c} >= 0"),
        Field("is_read", target=INT, required=True, check="{c} IN (0, 1)"),
        Field("rating", target=INT, required=True, check="{c} BETWEEN 0 AND 5"),
        Field("is_reviewed", target=INT, required=True, check="{c} IN (0, 1)"),
    ),
    key=("user_id", "book_id"),
    description="shelves with CSV integer ids (no timestamps)",
)

USER_ID_MAP = FileSpec(
    table="user_id_map",
    patterns=("user_id_map.csv",),
    kind="csv",
    header=("user_id_csv", "user_id"),
    fields=(
        Field("user_id_csv", target=INT, required=True, check="{c} >= 0"),
        Field("user_id", required=True),
    ),
    key=("user_id_csv",),
)

BOOK_ID_MAP = FileSpec(
    table="book_id_map",
    patterns=("book_id_map.csv",),
    kind="csv",
    header=("book_id_csv", "book_id"),
    fields=(
        Field("book_id_csv", target=INT, required=True, check="{c} >= 0"),
        Field("book_id", target=LONG, required=True, check="{c} >= 0"),
    ),
    key=("book_id_csv",),
)

INTERACTIONS_JSON = FileSpec(
    table="interactions_json",
    patterns=(
        "goodreads_interactions_dedup.json.gz",
        "goodreads_interactions_dedup.json",
        "goodreads_interactions_*.json.gz",
        "goodreads_interactions_*.json",
    ),
    kind="json",
    fields=(
        Field("user_id", required=True),
        Field("book_id", target=LONG, required=True, check="{c} >= 0"),
        Field("review_id"),
        Field("is_read", BOOL, required=True),
        Field("rating", LONG, target=INT, required=True, check="{c} BETWEEN 0 AND 5"),
        Field("review_text_incomplete"),
        Field("date_added", date=True),
        Field("date_updated", date=True),
        Field("read_at", date=True),
        Field("started_at", date=True),
    ),
    key=("user_id", "book_id"),
    prefer=("date_updated",),
    description="the same shelves with hashed user ids, Goodreads book ids and dates",
)

_SHELF = T.StructType([T.StructField("count", STRING), T.StructField("name", STRING)])
_AUTHOR = T.StructType([T.StructField("author_id", STRING), T.StructField("role", STRING)])

BOOKS = FileSpec(
    table="books",
    patterns=(
        "goodreads_books.json.gz",
        "goodreads_books.json",
        "goodreads_books_*.json.gz",
        "goodreads_books_*.json",
    ),
    kind="json",
    fields=(
        Field("isbn"),
        Field("text_reviews_count", target=INT),
        Field("series", T.ArrayType(STRING)),
        Field("country_code"),
        Field("language_code"),
        Field("popular_shelves", T.ArrayType(_SHELF)),
        Field("asin"),
        Field("is_ebook", target=BOOL),
        Field("average_rating", target=DOUBLE, check="{c} BETWEEN 0 AND 5"),
        Field("kindle_asin"),
        Field("similar_books", T.ArrayType(STRING)),
        Field("description"),
        Field("format"),
        Field("link"),
        Field("authors", T.ArrayType(_AUTHOR)),
        Field("publisher"),
        Field("num_pages", target=INT),
        Field("publication_day", target=INT),
        Field("isbn13"),
        Field("publication_month", target=INT),
        Field("edition_information"),
        Field("publication_year", target=INT),
        Field("url"),
        Field("image_url"),
        Field("book_id", target=LONG, required=True, check="{c} >= 0"),
        Field("ratings_count", target=INT),
        Field("work_id", target=LONG),
        Field("title"),
        Field("title_without_series"),
    ),
    key=("book_id",),
)

AUTHORS = FileSpec(
    table="authors",
    patterns=("goodreads_book_authors.json.gz", "goodreads_book_authors.json"),
    kind="json",
    fields=(
        Field("average_rating", target=DOUBLE),
        Field("author_id", target=LONG, required=True),
        Field("text_reviews_count", target=INT),
        Field("name"),
        Field("ratings_count", target=INT),
    ),
    key=("author_id",),
)

WORKS = FileSpec(
    table="works",
    patterns=("goodreads_book_works.json.gz", "goodreads_book_works.json"),
    kind="json",
    fields=(
        Field("books_count", target=INT),
        Field("reviews_count", target=INT),
        Field("original_publication_month", target=INT),
        Field("default_description_language_code"),
        Field("text_reviews_count", target=INT),
        Field("best_book_id", target=LONG),
        Field("original_publication_year", target=INT),
        Field("original_title"),
        Field("rating_dist"),
        Field("default_chaptering_book_id"),
        Field("original_publication_day", target=INT),
        Field("original_language_id"),
        Field("ratings_count", target=INT),
        Field("media_type"),
        Field("ratings_sum", target=LONG),
        Field("work_id", target=LONG, required=True),
    ),
    key=("work_id",),
)

GENRES = FileSpec(
    table="genres",
    patterns=("goodreads_book_genres_initial.json.gz", "goodreads_book_genres_initial.json"),
    kind="json",
    fields=(
        Field("book_id", target=LONG, required=True),
        Field("genres", T.MapType(STRING, LONG)),
    ),
    key=("book_id",),
)

SPECS = (INTERACTIONS_CSV, USER_ID_MAP, BOOK_ID_MAP, INTERACTIONS_JSON, BOOKS, AUTHORS, WORKS, GENRES)
