"""Stage one of the two-stage design: candidates from every model, and the features a ranker sees.

Candidates. For each user, the union of the top-``n`` lists of every source (ALS, item-CF, content,
popularity; shelved books are already excluded by each source), one row per ``(user, book)`` with each source's
score and rank. A source that did not propose the book leaves its score missing (NaN: the ranker treats it as
missing) and its rank at ``n + 1``. Cost: at most ``len(sources) * n`` rows per user.

Features (:func:`feature_columns`, one explicit schema, all float):

* per source: ``<source>_score``, ``<source>_rank``, ``<source>_scaled`` (the score over the magnitude of the
  user's top score of that source, as :mod:`recspark.blend` scales it); ``n_sources`` (how many sources proposed
  the book);
* book: ``book_log_readers`` (ln(1 + readers)), ``book_readers_vs_top`` (the same minus that of the most-read
  book), ``book_recent_share`` (share of its readers who shelved it in the last :data:`RECENT_DAYS` days of the
  data; 0 without dates), ``book_mean_rating`` and ``book_log_ratings`` (over ratings > 0; NaN when unrated),
  ``book_liked_share`` (how often a shelf of the book turns out *liked*, what validation counts relevant
  (:func:`liked`): the share of its shelves that are not rated below 4 stars and, where the data records reading
  (:func:`reads_recorded`), are read; shrunk towards the share over all shelves by :data:`LIKED_PRIOR_SHELVES`
  pseudo-shelves);
* user: ``user_log_shelves``, ``user_shelves_vs_mean`` (the same minus its mean over the users of the data),
  ``user_mean_rating`` (NaN when the user rated nothing);
* affinity, from the user's shelves and the book metadata (0 without metadata): ``author_share`` (share of
  the user's shelves by an author of the book), ``genre_share`` (share of the user's shelves whose main genre is
  the book's), ``series_read`` (ln(1 + books of the book's series the user shelved)).

The ranker sees :func:`feature_names`: the scaled scores and the two ratios, not the raw scores and counts
(:func:`raw_counts`). Why: it learns on the tuning split, whose sources are fitted on about two thirds of the data
a run sees, and it ranks the lists of sources fitted on all of it. Item-CF's sums, popularity counts, ln(readers)
and ln(ratings) grow with the data; their ratios to the user's top or the data's top do not. With the raw features
the ranker's validation lead did not carry over to the test (generated goodbooks-like ratings: 2.5% ahead of ALS
on validation, 4% behind on the test); with the ratios it was 6% ahead on the test, and within 1% of the raw
features on three other data sets (``bench/ranker_transfer.py``, docs/quality.md "Two-stage: the ranker's features
as ratios"). ``book_log_ratings`` stayed in until 2026-12-06: on a ratings file it is ln(readers) itself, so the
count came back through it; without it the ranker scored 2.6% and 3.1% higher on the test of the goodbooks-like
ratings and the generated UCSD shelves (docs/quality.md, "The ranker without the ratings count").

:func:`recall` measures, per source and for the union, the share of held-out relevant books that are among the
candidates: the ceiling of any ranker.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recspark import columns as C
from recspark.frames import union_all

SOURCES = ("als", "itemcf", "content", "popularity")
RECENT_DAYS = 90
LIKED_SHARE = "book_liked_share"  # how often a book's shelves are liked (also a term of recspark.blend)
BOOK_FEATURES = ("book_log_readers", "book_recent_share", "book_mean_rating", "book_log_ratings", LIKED_SHARE)
# pseudo-shelves at the overall liked share: a book's own share counts past about 10 shelves
LIKED_PRIOR_SHELVES = 10.0
LIKED_STARS = 4  # a rating below this is "disliked"; unrated or this or more can be liked
# the data records reading when at least this share of shelves is read and at least this share is not: UCSD
# shelves (49% read) do; goodbooks ratings (all read) and to_read shelves (none read) do not
READ_RECORDED_SHARE = 0.05
USER_FEATURES = ("user_log_shelves", "user_mean_rating")
AFFINITY_FEATURES = ("author_share", "genre_share", "series_read")
# counts that grow with the data, as ratios that do not (the ranker's features; see "Features" above)
READERS_VS_TOP = "book_readers_vs_top"
SHELVES_VS_MEAN = "user_shelves_vs_mean"
SOURCE = "_source"


def nan() -> Column:
    """A missing feature value (NaN; a Column is built per use, never at import time)."""
    return F.lit(float("nan"))


def source_columns(sources: tuple[str, ...]) -> list[str]:
    return [f"{s}_{part}" for s in sources for part in ("score", "rank")]


def scaled_columns(sources: tuple[str, ...]) -> list[str]:
    return [f"{s}_scaled" for s in sources]


def feature_columns(sources: tuple[str, ...]) -> list[str]:
    """Every column :func:`features` computes besides the keys, in order (the schema contract)."""
    return [
        *source_columns(sources),
        *scaled_columns(sources),
        "n_sources",
        *BOOK_FEATURES,
        READERS_VS_TOP,
        *USER_FEATURES,
        SHELVES_VS_MEAN,
        *AFFINITY_FEATURES,
    ]


def feature_names(sources: tuple[str, ...]) -> list[str]:
    """The ranker's feature columns, in order, for candidates from ``sources``: the scaled scores and the ratios
    rather than the raw scores and counts, which grow with the data the sources are fitted on."""
    return [c for c in feature_columns(sources) if c not in raw_counts(sources)]


def raw_counts(sources: tuple[str, ...]) -> set[str]:
    """The columns :func:`feature_names` leaves out: the raw scores and the counts that grow with the data
    (``book_log_ratings`` too: on a ratings file it is ``book_log_readers`` itself, and where a share of the shelves
    is rated it grows with the data all the same)."""
    return {f"{s}_score" for s in sources} | {"book_log_readers", "user_log_shelves", "book_log_ratings"}


def raw_feature_names(sources: tuple[str, ...]) -> list[str]:
    """The ranker's features before the scaled scores and ratios (bench/ranker_transfer.py compares them)."""
    return [*source_columns(sources), "n_sources", *BOOK_FEATURES, *USER_FEATURES, *AFFINITY_FEATURES]


def candidate_union(lists: dict[str, DataFrame], n: int) -> DataFrame:
    """``(user_idx, book_idx, <source>_score, <source>_rank…, n_sources)``: the union of each source's top-``n``
    ``(user_idx, rank, book_idx, score)`` lists."""
    sources = tuple(lists)
    long = union_all(
        [
            df.where(F.col(C.RANK) <= n).select(
                C.USER_IDX,
                C.BOOK_IDX,
                F.lit(src).alias(SOURCE),
                F.col(C.SCORE).cast("float").alias(C.SCORE),
                F.col(C.RANK).cast("float").alias(C.RANK),
            )
            for src, df in lists.items()
        ]
    )
    aggs = []
    for src in sources:
        mine = F.col(SOURCE) == src
        aggs.append(F.max(F.when(mine, F.col(C.SCORE))).alias(f"{src}_score"))
        aggs.append(F.min(F.when(mine, F.col(C.RANK))).alias(f"{src}_rank"))
    wide = long.groupBy(C.USER_IDX, C.BOOK_IDX).agg(*aggs, F.count(F.lit(1)).cast("float").alias("n_sources"))
    filled = [
        F.coalesce(F.col(c), nan() if c.endswith("_score") else F.lit(float(n + 1))).cast("float").alias(c)
        for c in source_columns(sources)
    ]
    return wide.select(C.USER_IDX, C.BOOK_IDX, *filled, F.col("n_sources"))


def reads_recorded(shelves: DataFrame) -> bool:
    """Whether ``shelves`` tell read books from unread ones: at least :data:`READ_RECORDED_SHARE` of them are
    read and as many are not (False without an ``is_read`` column)."""
    if C.IS_READ not in shelves.columns:
        return False
    return _recorded(shelves.agg(F.avg(F.col(C.IS_READ).cast("double"))).first()[0])


def _recorded(read_share: float | None) -> bool:
    return read_share is not None and READ_RECORDED_SHARE <= read_share <= 1.0 - READ_RECORDED_SHARE


def liked(reads: bool) -> Column:
    """Whether a shelf is *liked*, what validation counts relevant: not rated below :data:`LIKED_STARS` (unrated
    counts) and, when the data records reading (``reads``, :func:`reads_recorded`), read. A book on a reader's
    to-read shelf is not yet a success where the data can say so: a shelf read is."""
    rating = F.col(C.RATING)
    not_disliked = rating.isNull() | (rating == 0) | (rating >= LIKED_STARS)
    return not_disliked & F.col(C.IS_READ) if reads else not_disliked


def book_features(train: DataFrame) -> tuple[DataFrame, float]:
    """``(book_idx, book_log_readers, book_recent_share, book_mean_rating, book_log_ratings, book_liked_share)``
    from shelves, and the liked share over all shelves (what a book without shelves gets)."""
    rated = F.col(C.RATING) > 0
    reads, overall, (latest,) = _liked_basis(train, F.max(C.DATE_ADDED))  # one pass
    recent = (
        F.col(C.DATE_ADDED) >= F.lit(latest) - F.expr(f"INTERVAL {RECENT_DAYS} DAYS")
        if latest is not None
        else F.lit(False)
    )
    per_book = train.groupBy(C.BOOK_IDX).agg(
        F.log1p(F.count(F.lit(1))).cast("float").alias("book_log_readers"),
        F.avg(F.when(recent, 1.0).otherwise(0.0)).cast("float").alias("book_recent_share"),
        F.coalesce(F.avg(F.when(rated, F.col(C.RATING))), nan()).cast("float").alias("book_mean_rating"),
        F.log1p(F.count(F.when(rated, 1))).cast("float").alias("book_log_ratings"),
        _liked_share(reads, overall).alias(LIKED_SHARE),
    )
    return per_book, overall


def liked_shares(train: DataFrame) -> DataFrame:
    """``(book_idx, book_liked_share)`` as :func:`book_features` gives it, alone (item-CF's liked prior)."""
    reads, overall, _ = _liked_basis(train)
    return train.groupBy(C.BOOK_IDX).agg(_liked_share(reads, overall).alias(LIKED_SHARE))


def likes_differ(train: DataFrame) -> bool:
    """Whether some shelves of ``train`` are liked and others not (:func:`liked`): else every book's liked share
    is the same and ranks nothing. The share of liked shelves lies strictly between 0 and 1 exactly then."""
    if C.RATING not in train.columns:
        return False
    _, overall, _ = _liked_basis(train)
    return 0.0 < overall < 1.0


def _liked_basis(train: DataFrame, *more: Column) -> tuple[bool, float, list]:
    """Whether ``train`` records reading (:func:`reads_recorded`), its liked share over all shelves, and the values
    of the aggregates ``more``, in one pass."""
    has_reads = C.IS_READ in train.columns
    read_share = F.avg(F.col(C.IS_READ).cast("double")) if has_reads else F.lit(None).cast("double")
    either = [F.avg(liked(reads).cast("double")) for reads in ((False, True) if has_reads else (False,))]
    share, *rest = train.agg(read_share, *either, *more).first()
    reads = _recorded(share)
    overall = rest[int(reads)]
    return reads, float(overall) if overall is not None else 0.0, rest[len(either) :]


def _liked_share(reads: bool, overall: float) -> Column:
    """A book's liked share, as an aggregate over its shelves: its liked shelves plus
    :data:`LIKED_PRIOR_SHELVES` pseudo-shelves at ``overall``, over its shelves plus the same."""
    m = LIKED_PRIOR_SHELVES
    return ((F.sum(liked(reads).cast("double")) + m * overall) / (F.count(F.lit(1)) + m)).cast("float")


def user_features(train: DataFrame) -> DataFrame:
    """``(user_idx, user_log_shelves, user_mean_rating)``."""
    rated = F.col(C.RATING) > 0
    return train.groupBy(C.USER_IDX).agg(
        F.log1p(F.count(F.lit(1))).cast("float").alias("user_log_shelves"),
        F.coalesce(F.avg(F.when(rated, F.col(C.RATING))), nan()).cast("float").alias("user_mean_rating"),
    )


def _keys(books: DataFrame, key: Column, name: str) -> DataFrame:
    """``(book_idx, name)``: one row per key of each book (exploded), books without keys left out."""
    return (
        books.select(C.BOOK_IDX, F.explode_outer(key).alias(name)).where(F.col(name).isNotNull()).distinct()
    )


def affinity(cands: DataFrame, train: DataFrame, books: DataFrame | None) -> DataFrame:
    """``(user_idx, book_idx, author_share, genre_share, series_read)`` for every candidate (0 without
    metadata). A book counts once per key it shares with a candidate (an author, the main genre, a series)."""
    pairs = cands.select(C.USER_IDX, C.BOOK_IDX)
    if books is None:
        return pairs.select("*", *[F.lit(0.0).cast("float").alias(f) for f in AFFINITY_FEATURES])
    shelves = train.select(C.USER_IDX, C.BOOK_IDX)
    n_shelves = shelves.groupBy(C.USER_IDX).agg(F.count(F.lit(1)).alias("_n"))
    keyed = {
        "author_share": _keys(books, F.col(C.AUTHOR_IDS), "_key"),
        "genre_share": _keys(books, F.array(F.element_at(F.col(C.GENRES), 1)), "_key"),
        "series_read": _keys(books, F.col(C.SERIES), "_key"),
    }
    out = pairs
    for name, keys in keyed.items():
        per_user = (
            shelves.join(keys, on=C.BOOK_IDX, how="inner")
            .groupBy(C.USER_IDX, "_key")
            .agg(F.count("*").alias("_c"))
        )
        hits = (
            pairs.join(keys, on=C.BOOK_IDX, how="inner")
            .join(per_user, on=[C.USER_IDX, "_key"], how="inner")
            .groupBy(C.USER_IDX, C.BOOK_IDX)
            .agg(F.sum("_c").alias("_hits"))
        )
        out = out.join(hits.withColumnRenamed("_hits", name), on=[C.USER_IDX, C.BOOK_IDX], how="left")
    out = out.join(n_shelves, on=C.USER_IDX, how="left")
    return out.select(
        C.USER_IDX,
        C.BOOK_IDX,
        (F.coalesce(F.col("author_share"), F.lit(0)) / F.col("_n")).cast("float").alias("author_share"),
        (F.coalesce(F.col("genre_share"), F.lit(0)) / F.col("_n")).cast("float").alias("genre_share"),
        F.log1p(F.coalesce(F.col("series_read"), F.lit(0))).cast("float").alias("series_read"),
    )


def magnitude(top: Column) -> Column:
    """``|top|``, or 1 when it is 0 or missing: what a user's scores of a source are divided by (here and in
    :mod:`recspark.blend`)."""
    size = F.abs(F.coalesce(top, F.lit(0.0)))
    return F.when(size > 0, size).otherwise(F.lit(1.0))


def top_scores(cands: DataFrame, sources: tuple[str, ...]) -> DataFrame:
    """``(user_idx, _<source>_top…)``: each user's top score of every source over the books it proposed (NaN
    scores, of books it did not propose, left out)."""
    return cands.groupBy(C.USER_IDX).agg(
        *[F.max(F.when(~F.isnan(f"{s}_score"), F.col(f"{s}_score"))).alias(f"_{s}_top") for s in sources]
    )


def features(
    cands: DataFrame, train: DataFrame, books: DataFrame | None, sources: tuple[str, ...]
) -> DataFrame:
    """``(user_idx, book_idx, <feature_columns(sources)>)``: candidates with every feature (the schema contract)."""
    book_cols = [F.coalesce(F.col(c), F.lit(0.0)).cast("float").alias(c) for c in BOOK_FEATURES[:2]]
    per_book, overall = book_features(train)
    per_user = user_features(train)
    # the most-read book of train and the mean user, as one-row frames joined on (no separate Spark job)
    top_readers = per_book.agg(F.max("book_log_readers").alias("_top_readers"))
    mean_shelves = per_user.agg(F.avg("user_log_shelves").alias("_mean_shelves"))
    return (
        cands.join(top_scores(cands, sources), on=C.USER_IDX, how="inner")
        .join(per_book, on=C.BOOK_IDX, how="left")
        .join(per_user, on=C.USER_IDX, how="left")
        .join(affinity(cands, train, books), on=[C.USER_IDX, C.BOOK_IDX], how="left")
        .crossJoin(F.broadcast(top_readers))
        .crossJoin(F.broadcast(mean_shelves))
        .select(
            C.USER_IDX,
            C.BOOK_IDX,
            *source_columns(sources),
            *[
                (F.col(f"{src}_score") / magnitude(F.col(f"_{src}_top"))).cast("float").alias(name)
                for src, name in zip(sources, scaled_columns(sources))
            ],
            "n_sources",
            *book_cols,
            F.coalesce(F.col("book_mean_rating"), nan()).cast("float").alias("book_mean_rating"),
            F.coalesce(F.col("book_log_ratings"), F.lit(0.0)).cast("float").alias("book_log_ratings"),
            F.coalesce(F.col(LIKED_SHARE), F.lit(overall)).cast("float").alias(LIKED_SHARE),
            (F.coalesce(F.col("book_log_readers"), F.lit(0.0)) - F.col("_top_readers"))
            .cast("float")
            .alias(READERS_VS_TOP),
            *USER_FEATURES,
            (F.col("user_log_shelves") - F.col("_mean_shelves")).cast("float").alias(SHELVES_VS_MEAN),
            *AFFINITY_FEATURES,
        )
    )


def recall(cands: DataFrame, truth: DataFrame, sources: tuple[str, ...], n: int) -> dict[str, float]:
    """Share of the held-out ``truth`` pairs ``(user_idx, book_idx)`` (users with candidates only) found among
    each source's top-``n`` and in the union."""
    users = cands.select(C.USER_IDX).distinct()
    held = truth.join(users, on=C.USER_IDX, how="left_semi")
    found = held.join(cands, on=[C.USER_IDX, C.BOOK_IDX], how="left")
    row = found.agg(
        F.count(F.lit(1)).alias("total"),
        F.count(F.col("n_sources")).alias("union"),
        *[F.count(F.when(F.col(f"{s}_rank") <= n, 1)).alias(s) for s in sources],
    ).first()
    total = max(row["total"], 1)
    return {name: round(row[name] / total, 4) for name in (*sources, "union")}


def top_k(scored: DataFrame, k: int, score_col: str, by: tuple[str, ...] = ()) -> DataFrame:
    """``(*by, user_idx, rank, book_idx, score)``: the ``k`` best candidates of each user (of each ``by`` group, e.g.
    several lists at once) by ``score_col`` (ties by book index), with a window per user and group."""
    w = Window.partitionBy(*by, C.USER_IDX).orderBy(F.col(score_col).desc(), F.col(C.BOOK_IDX))
    return (
        scored.withColumn(C.RANK, F.row_number().over(w))
        .where(F.col(C.RANK) <= k)
        .select(*by, C.USER_IDX, C.RANK, C.BOOK_IDX, F.col(score_col).cast("float").alias(C.SCORE))
    )
