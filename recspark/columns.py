"""Column and layer names, in one place. Every module refers to these constants, never to string literals."""

# identity
USER_ID = "user_id"  # the source's user id: 32-hex hash (UCSD) or the goodbooks integer as a string
BOOK_ID = "book_id"  # the Goodreads book id (long)
USER_IDX = "user_idx"  # dense int index for ALS, stable across re-ingests
BOOK_IDX = "book_idx"
WORK_IDX = "work_idx"  # a work, keyed by the book_idx of its representative (most read) edition
WORK_BOOK_ID = (
    "work_book_id"  # gold/serving_books: the book_id of the edition that stands for the book's work
)
LIKED_SHARE = "liked_share"  # gold/serving_books: how often a book's shelves are liked (recspark.candidates)
USER_ID_CSV = "user_id_csv"  # UCSD CSV's integer user id (index into user_id_map.csv)
BOOK_ID_CSV = "book_id_csv"
WORK_ID = "work_id"
AUTHOR_ID = "author_id"

# interactions
IS_READ = "is_read"
RATING = "rating"
IS_REVIEWED = "is_reviewed"
REVIEW_ID = "review_id"
DATE_ADDED = "date_added"
DATE_UPDATED = "date_updated"
READ_AT = "read_at"
STARTED_AT = "started_at"
SOURCE = "source"  # which file an interaction came from: csv | json | ratings | to_read

# books
TITLE = "title"
AUTHORS = "authors"  # display string: author names joined with ", "
AUTHOR_IDS = "author_ids"
GENRES = "genres"
SHELVES = "shelves"
DESCRIPTION = "description"
PUBLICATION_YEAR = "publication_year"
AVERAGE_RATING = "average_rating"
RATINGS_COUNT = "ratings_count"
NUM_PAGES = "num_pages"
LANGUAGE_CODE = "language_code"
IMAGE_URL = "image_url"
SERIES = "series"
NAME = "name"

# model outputs: every model's lists are (user_idx, rank, book_idx, score); factor tables carry features
RANK = "rank"
SCORE = "score"
FEATURES = "features"
NEIGHBOUR_IDX = "neighbour_idx"  # item-CF neighbour tables: (book_idx, rank, neighbour_idx, score)
BECAUSE_BOOK_IDX = "because_book_idx"  # the shelved book that explains a recommendation
BECAUSE_BOOK_ID = "because_book_id"  # the same book in gold, by its Goodreads id
BECAUSE_TITLE = "because_title"
SERIES_NOTE = "series_note"  # "next in series: <name> #n" when a later volume was replaced by an earlier one
EXPLANATION = "explanation"  # gold: why a book is recommended, in words
SIMILAR_BOOK_ID = "similar_book_id"  # gold/similar_books: a neighbour of book_id
RUN_ID = "run_id"  # key of model and gold rows: the model run (and publication) they belong to
PREDICTED_RATING = "predicted_rating"  # stars a reader would probably give a book (explicit ALS)
TERM = "term"  # model/stars: which term of the predicted stars a row holds (mean | user | book)
TERM_IDX = "idx"  # model/stars: the user_idx or book_idx of a user or book term (null for the mean)
BIAS = "bias"  # model/stars: the term's baseline offset (the global mean on the mean row)
READERS = "readers"  # how many users shelved a book
# gold/serving_books: readers in what the model learned from (a work-level run: the work's readers, on the edition
# that stands for it, 0 on its other editions; else the same as readers)
TRAINED_READERS = "trained_readers"
FACTORS = "factors"  # gold/serving_books: the book's ALS factors (features of model/item_factors)
VECTOR = "vector"  # gold/serving_books: the book's content vector

# lineage (bronze)
SOURCE_FILE = "_source_file"
INGESTED_AT = "_ingested_at"
INGEST_RUN_ID = "_run_id"  # lineage of bronze and quarantine rows: the ingest run that wrote them

# quarantine
RAW = "raw"
REASON = "reason"
STAGE = "stage"
CORRUPT = "_corrupt_record"

# counts
FILE = "file"
TABLE = "table"
READ = "read"
INGESTED = "ingested"
QUARANTINED = "quarantined"
DUPLICATES = "duplicates"

# the layers, in one place: raw files as rows (bronze), cleaned and indexed (silver), per-run model artefacts
# (model), what services read (gold), and the bookkeeping of ingests (meta)
BRONZE = "bronze"
SILVER = "silver"
MODEL = "model"
GOLD = "gold"
META = "meta"
# the evaluation reports (Markdown and a plot, not Delta tables) in a local lakehouse: `recspark run`/`evaluate`
# and the notebooks write them there unless told otherwise (a leading "_" keeps Spark from reading it as data)
REPORTS = "_reports"
