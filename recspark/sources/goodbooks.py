"""goodbooks-10k (Zygmunt Zając, CC BY-SA 4.0): specs for ingest.

Required: ``ratings.csv`` and/or ``to_read.csv`` plus ``books.csv`` (which maps goodbooks' 1-based ``book_id``
to the Goodreads ``goodreads_book_id`` that recspark uses as ``book_id``). ``book_tags.csv`` + ``tags.csv`` are
optional and become shelves/genres.
"""

from __future__ import annotations

from recspark.sources.spec import DOUBLE, INT, LONG, Field, FileSpec

RATINGS = FileSpec(
    table="ratings",
    patterns=("ratings.csv",),
    kind="csv",
    header=("user_id", "book_id", "rating"),
    fields=(
        Field("user_id", target=INT, required=True, check="{c} >= 0"),
        Field("book_id", target=INT, required=True, check="{c} >= 0"),
        Field("rating", target=INT, required=True, check="{c} BETWEEN 1 AND 5"),
    ),
    key=("user_id", "book_id"),
    prefer=("rating",),
)

TO_READ = FileSpec(
    table="to_read",
    patterns=("to_read.csv",),
    kind="csv",
    header=("user_id", "book_id"),
    fields=(
        Field("user_id", target=INT, required=True, check="{c} >= 0"),
        Field("book_id", target=INT, required=True, check="{c} >= 0"),
    ),
    key=("user_id", "book_id"),
)

BOOK_COLUMNS = [
    "book_id",
    "goodreads_book_id",
    "best_book_id",
    "work_id",
    "books_count",
    "isbn",
    "isbn13",
    "authors",
    "original_publication_year",
    "original_title",
    "title",
    "language_code",
    "average_rating",
    "ratings_count",
    "work_ratings_count",
    "work_text_reviews_count",
    "ratings_1",
    "ratings_2",
    "ratings_3",
    "ratings_4",
    "ratings_5",
    "image_url",
    "small_image_url",
]
_BOOK_TYPES = {
    "book_id": INT,
    "goodreads_book_id": LONG,
    "best_book_id": LONG,
    "work_id": LONG,
    "books_count": INT,
    "original_publication_year": DOUBLE,  # written as "2008.0"
    "average_rating": DOUBLE,
    "ratings_count": INT,
    "work_ratings_count": INT,
    "work_text_reviews_count": INT,
    **{f"ratings_{i}": INT for i in range(1, 6)},
}
BOOKS = FileSpec(
    table="gb_books",
    patterns=("books.csv",),
    kind="csv",
    header=tuple(BOOK_COLUMNS),
    fields=tuple(
        Field(
            c,
            target=_BOOK_TYPES.get(c),
            required=c in ("book_id", "goodreads_book_id"),
            check="{c} >= 0" if c in ("book_id", "goodreads_book_id") else None,
        )
        for c in BOOK_COLUMNS
    ),
    key=("book_id",),
)

BOOK_TAGS = FileSpec(
    table="book_tags",
    patterns=("book_tags.csv",),
    kind="csv",
    header=("goodreads_book_id", "tag_id", "count"),
    fields=(
        Field("goodreads_book_id", target=LONG, required=True),
        Field("tag_id", target=INT, required=True),
        Field("count", target=INT),
    ),
    key=("goodreads_book_id", "tag_id"),
    prefer=("count",),
)

TAGS = FileSpec(
    table="tags",
    patterns=("tags.csv",),
    kind="csv",
    header=("tag_id", "tag_name"),
    fields=(Field("tag_id", target=INT, required=True), Field("tag_name")),
    key=("tag_id",),
)

SPECS = (RATINGS, TO_READ, BOOKS, BOOK_TAGS, TAGS)
