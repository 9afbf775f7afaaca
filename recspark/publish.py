"""Gold tables for downstream services, versioned by run id, published only after they pass their checks.

Tables (Delta, ``<lakehouse>/gold/<name>`` or ``catalog.schema.gold_<name>``), every row carrying ``run_id``:

* ``user_recommendations``: ``run_id, user_id, rank, book_id, score, title, authors, because_book_id,
  predicted_rating, explanation`` (stars from explicit ALS, null without ratings; ``explanation``: "because you
  shelved <title>" or "next in series: <series> #n", see :mod:`recspark.series`). One edition per work, no
  edition of a work the user shelved (:mod:`recspark.works`; checked before publishing)
* ``similar_books``: ``run_id, book_id, rank, similar_book_id, score, title, similar_title, method``
  (``method``: ``als`` = cosine of ALS factors, ``itemcf`` = co-occurrence similarity or EASE weights)
* ``popular_books``: ``run_id, window, rank, book_id, readers, title, authors`` (cold start and fill-in)
* ``serving_books``: ``run_id, book_id, title, authors, readers, factors, vector, work_book_id, liked_share``:
  every book, with the edition that stands for its work, its ALS
  factors (null when the run has no ALS model or the book had no readers), content vector (null without
  metadata) and, in runs that publish the blend, its liked share (else null): what the consumer folds a new
  reader in with (:mod:`recspark.foldin`)
* ``serving_neighbours``: ``run_id, book_id, rank, similar_book_id, score``: the item-CF neighbour table of
  runs that publish item-CF or two-stage lists (their fold-in uses it; EASE's weights can be negative, summed as
  the batch lists sum them)
* ``serving_model``: one row per run: ``run_id, model, alpha, reg, weights, yty, reference_date, n_users,
  avg_books, content, itemcf, blend, diversity, item_level, series_order`` (``yty`` = YᵀY of the factors,
  row-major, so a request solves a ``rank × rank`` system; ``itemcf``: item-CF's parameters as JSON, for its
  popularity prior; ``blend``: the weight, liked-share weight and candidates per source of a ranker run that
  publishes the blend, as JSON; ``diversity``: the MMR weight its lists were re-ranked with; ``series_order``:
  whether its lists keep series in order, :mod:`recspark.series`)
* ``evaluations``: ``run_id, model, k, metric, value, split, params``
* ``runs``: ``run_id, status, started_at, finished_at, params, input_versions, row_counts, timings, tuning``
  (``tuning``: the chosen parameters, their validation score, the runner-up and the search's cost, as JSON)

Protocol: the run is recorded as ``running``; each gold table's rows for the run are written with
``replaceWhere run_id = ...`` (a rerun with the same inputs and seed has the same run id and replaces its own rows,
so it adds no duplicates); the checks run; only then is the run marked ``published``. Readers take the latest
``published`` run, so a run that fails or is killed midway leaves the previous one served. Runs beyond
``keep_runs`` published ones are deleted from every gold table.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recspark import columns as C
from recspark.tables import GOLD, Lakehouse, ShrinkGuard

log = logging.getLogger(__name__)

METHOD = "method"
PREDICTED_RATING = C.PREDICTED_RATING
RUNS_SCHEMA = T.StructType(
    [
        T.StructField(C.RUN_ID, T.StringType(), False),
        T.StructField("status", T.StringType(), False),
        T.StructField("started_at", T.TimestampType(), False),
        T.StructField("finished_at", T.TimestampType(), True),
        T.StructField("params", T.StringType(), True),
        T.StructField("input_versions", T.StringType(), True),
        T.StructField("row_counts", T.StringType(), True),
        T.StructField("timings", T.StringType(), True),
        T.StructField("tuning", T.StringType(), True),
    ]
)
CDF = {"delta.enableChangeDataFeed": "true"}
# the gold tables a run writes before it is published (each row keyed by run_id)
RUN_TABLES = (
    "user_recommendations",
    "similar_books",
    "popular_books",
    "serving_books",
    "serving_model",
    "serving_neighbours",
)


class PublishCheckError(RuntimeError):
    """A gold table failed its checks: the run is not published."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


EXPLAINED_SCHEMA = T.StructType(
    [
        T.StructField(C.USER_IDX, T.IntegerType(), False),
        T.StructField(C.RANK, T.IntegerType(), False),
        T.StructField(C.BOOK_IDX, T.IntegerType(), False),
        T.StructField(C.SCORE, T.FloatType(), False),
        T.StructField(C.BECAUSE_BOOK_IDX, T.IntegerType(), True),
    ]
)


# -- transformations ----------------------------------------------------------------------------------------
def explain(spark: SparkSession, recs: DataFrame, seen: DataFrame, item_factors: DataFrame) -> DataFrame:
    """Add ``because_book_idx``: the shelved book of the user most similar (cosine) to each recommendation."""
    pdf = item_factors.select(C.BOOK_IDX, C.FEATURES).toPandas()
    ids = pdf[C.BOOK_IDX].to_numpy(dtype=np.int64)
    order = np.argsort(ids)
    ids = ids[order]
    mat = np.stack(pdf[C.FEATURES].to_numpy()[order]).astype(np.float32)
    mat /= np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)
    bc_ids, bc_mat = spark.sparkContext.broadcast(ids), spark.sparkContext.broadcast(mat)
    lists = seen.groupBy(C.USER_IDX).agg(F.collect_list(F.col(C.BOOK_IDX).cast("int")).alias("_seen"))
    grouped = (
        recs.groupBy(C.USER_IDX)
        .agg(F.collect_list(F.struct(F.col(C.RANK), F.col(C.BOOK_IDX), F.col(C.SCORE))).alias("_recs"))
        .join(lists, on=C.USER_IDX, how="left")
    )
    schema = EXPLAINED_SCHEMA

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        ids, mat = bc_ids.value, bc_mat.value
        for pdf in batches:
            out = []
            for user, rec_list, seen_list in zip(pdf[C.USER_IDX], pdf["_recs"], pdf["_seen"]):
                rec_books = np.array([r[C.BOOK_IDX] for r in rec_list], dtype=np.int64)
                because = np.full(len(rec_books), -1, dtype=np.int64)
                if seen_list is not None and len(seen_list):
                    s = np.asarray(seen_list, dtype=np.int64)
                    sp = np.searchsorted(ids, s).clip(0, len(ids) - 1)
                    s = s[ids[sp] == s]
                    rp = np.searchsorted(ids, rec_books).clip(0, len(ids) - 1)
                    known = ids[rp] == rec_books
                    if len(s) and known.any():
                        sims = mat[rp[known]] @ mat[np.searchsorted(ids, s)].T
                        because[known] = s[np.argmax(sims, axis=1)]
                    if (~known).any():  # a book the model does not know: cite the most recent shelved one
                        because[~known] = s[0] if len(s) else seen_list[0]
                out.append(
                    pd.DataFrame(
                        {
                            C.USER_IDX: np.full(len(rec_books), user, dtype=np.int32),
                            C.RANK: np.array([r[C.RANK] for r in rec_list], dtype=np.int32),
                            C.BOOK_IDX: rec_books.astype(np.int32),
                            C.SCORE: np.array([r[C.SCORE] for r in rec_list], dtype=np.float32),
                            C.BECAUSE_BOOK_IDX: pd.array(
                                [int(x) if x >= 0 else None for x in because.tolist()], dtype="Int32"
                            ),
                        }
                    )
                )
            if out:
                yield pd.concat(out, ignore_index=True)

    return grouped.mapInPandas(run, schema)


def fill_from_popular(recs: DataFrame, popular_recs: DataFrame, k: int) -> DataFrame:
    """Complete lists shorter than k with popular books (already excluding seen), after the model's own; the
    filled rows have score 0 and no explanation."""
    have = recs.groupBy(C.USER_IDX).agg(F.count(F.lit(1)).alias("_n"))
    extra = (
        popular_recs.join(recs.select(C.USER_IDX, C.BOOK_IDX), on=[C.USER_IDX, C.BOOK_IDX], how="left_anti")
        .join(have, on=C.USER_IDX, how="left")
        .fillna({"_n": 0})
    )
    from pyspark.sql import Window

    w = Window.partitionBy(C.USER_IDX).orderBy(F.col(C.RANK))
    extra = extra.withColumn("_r", F.row_number().over(w) + F.col("_n")).where(F.col("_r") <= k)
    notes = [C.SERIES_NOTE] if C.SERIES_NOTE in recs.columns else []
    filled = extra.select(
        F.col(C.USER_IDX),
        F.col("_r").cast("int").alias(C.RANK),
        F.col(C.BOOK_IDX),
        F.lit(0.0).cast("float").alias(C.SCORE),
        F.lit(None).cast("int").alias(C.BECAUSE_BOOK_IDX),
        *[F.lit(None).cast("string").alias(n) for n in notes],
    )
    return recs.select(C.USER_IDX, C.RANK, C.BOOK_IDX, C.SCORE, C.BECAUSE_BOOK_IDX, *notes).unionByName(
        filled
    )


def user_recommendation_rows(recs: DataFrame, users: DataFrame, books: DataFrame, run_id: str) -> DataFrame:
    b = books.select(C.BOOK_IDX, C.BOOK_ID, C.TITLE, C.AUTHORS)
    because = books.select(
        F.col(C.BOOK_IDX).alias(C.BECAUSE_BOOK_IDX),
        F.col(C.BOOK_ID).alias(C.BECAUSE_BOOK_ID),
        F.col(C.TITLE).alias(C.BECAUSE_TITLE),
    )
    note = F.col(C.SERIES_NOTE) if C.SERIES_NOTE in recs.columns else F.lit(None).cast("string")
    cited = F.concat(
        F.lit("because you shelved "),
        F.coalesce(F.col(C.BECAUSE_TITLE), F.col(C.BECAUSE_BOOK_ID).cast("string")),
    )
    return (
        recs.join(users.select(C.USER_IDX, C.USER_ID), on=C.USER_IDX, how="inner")
        .join(b, on=C.BOOK_IDX, how="inner")
        .join(because, on=C.BECAUSE_BOOK_IDX, how="left")
        .select(
            F.lit(run_id).alias(C.RUN_ID),
            F.col(C.USER_ID),
            F.col(C.RANK),
            F.col(C.BOOK_ID),
            F.col(C.SCORE),
            F.col(C.TITLE),
            F.col(C.AUTHORS),
            F.col(C.BECAUSE_BOOK_ID),
            (F.col(PREDICTED_RATING) if PREDICTED_RATING in recs.columns else F.lit(None))
            .cast("float")
            .alias(PREDICTED_RATING),
            F.coalesce(note, F.when(F.col(C.BECAUSE_BOOK_ID).isNotNull(), cited)).alias(C.EXPLANATION),
        )
    )


def similar_rows(sims: DataFrame, books: DataFrame, run_id: str, method: str) -> DataFrame:
    """Gold rows from neighbour lists ``(book_idx, rank, neighbour_idx, score)``; ``method`` says which model
    produced them (``als``: cosine of ALS factors, ``itemcf``: co-occurrence similarity or EASE weights)."""
    a = books.select(F.col(C.BOOK_IDX), F.col(C.BOOK_ID), F.col(C.TITLE))
    b = books.select(
        F.col(C.BOOK_IDX).alias(C.NEIGHBOUR_IDX),
        F.col(C.BOOK_ID).alias(C.SIMILAR_BOOK_ID),
        F.col(C.TITLE).alias("similar_title"),
    )
    return (
        sims.join(a, on=C.BOOK_IDX, how="inner")
        .join(b, on=C.NEIGHBOUR_IDX, how="inner")
        .select(
            F.lit(run_id).alias(C.RUN_ID),
            F.col(C.BOOK_ID),
            F.col(C.RANK),
            F.col(C.SIMILAR_BOOK_ID),
            F.col(C.SCORE),
            F.col(C.TITLE),
            F.col("similar_title"),
            F.lit(method).alias(METHOD),
        )
    )


def popular_rows(pop: DataFrame, books: DataFrame, run_id: str, window: str, k: int) -> DataFrame:
    # the k most popular books, ranked on the driver (k rows), not with a window over every book in one task
    top = pop.orderBy(F.col("popularity").desc(), F.col(C.BOOK_IDX).asc()).limit(k).collect()
    ranked = pop.sparkSession.createDataFrame(
        [(r[C.BOOK_IDX], r["popularity"], i + 1) for i, r in enumerate(top)],
        T.StructType(
            [
                T.StructField(C.BOOK_IDX, T.IntegerType()),
                T.StructField("popularity", T.DoubleType()),
                T.StructField(C.RANK, T.IntegerType()),
            ]
        ),
    )
    return ranked.join(
        books.select(C.BOOK_IDX, C.BOOK_ID, C.TITLE, C.AUTHORS), on=C.BOOK_IDX, how="inner"
    ).select(
        F.lit(run_id).alias(C.RUN_ID),
        F.lit(window).alias("window"),
        F.col(C.RANK).cast("int").alias(C.RANK),
        F.col(C.BOOK_ID),
        F.col("popularity").cast("long").alias("readers"),
        F.col(C.TITLE),
        F.col(C.AUTHORS),
    )


def serving_book_rows(
    books: DataFrame,
    interactions: DataFrame,
    run_id: str,
    factors: DataFrame | None,
    vectors: DataFrame | None,
    works: DataFrame | None = None,
    liked: tuple[DataFrame, float] | None = None,
    trained: DataFrame | None = None,
) -> DataFrame:
    """``gold/serving_books``: every book with its readers, ALS factors and content vector (nullable), and
    ``work_book_id``: the book id of the edition that stands for its work (``works``: ``(book_idx, work_idx)``;
    without it every book stands for itself), so the consumer shows one edition per work and excludes every
    edition of a shelved work. ``liked_share``: with ``liked`` (``((book_idx, liked_share), overall)``, the shares of
    :func:`recspark.candidates.book_features`, what a run that publishes the blend orders its candidates by), the
    book's share, or the overall one for a book without shelves, as the candidates fill it; else null.
    ``trained_readers``: the book's readers in ``trained``, what the model learned from (a work-level run's
    interactions moved to works, :meth:`recspark.works.Works.to_works`; default ``interactions``), which the
    model's scores count (BM25's idf, item-CF's and content's popularity priors); ``readers`` (of ``interactions``)
    orders the popular fill."""
    readers = interactions.groupBy(C.BOOK_IDX).agg(F.count(F.lit(1)).alias(C.READERS))
    out = books.select(C.BOOK_IDX, C.BOOK_ID, C.TITLE, C.AUTHORS).join(readers, on=C.BOOK_IDX, how="left")
    if trained is None:
        out = out.withColumn(C.TRAINED_READERS, F.col(C.READERS))
    else:
        learned = trained.groupBy(C.BOOK_IDX).agg(F.count(F.lit(1)).alias(C.TRAINED_READERS))
        out = out.join(learned, on=C.BOOK_IDX, how="left")
    if works is None:
        out = out.withColumn(C.WORK_BOOK_ID, F.col(C.BOOK_ID))
    else:
        rep = books.select(F.col(C.BOOK_IDX).alias(C.WORK_IDX), F.col(C.BOOK_ID).alias(C.WORK_BOOK_ID))
        mapped = works.select(C.BOOK_IDX, C.WORK_IDX).join(rep, on=C.WORK_IDX, how="inner")
        out = out.join(mapped.select(C.BOOK_IDX, C.WORK_BOOK_ID), on=C.BOOK_IDX, how="left").withColumn(
            C.WORK_BOOK_ID, F.coalesce(F.col(C.WORK_BOOK_ID), F.col(C.BOOK_ID))
        )
    if liked is None:
        out = out.withColumn(C.LIKED_SHARE, F.lit(None).cast("float"))
    else:
        shares, overall = liked
        out = out.join(shares.select(C.BOOK_IDX, C.LIKED_SHARE), on=C.BOOK_IDX, how="left").withColumn(
            C.LIKED_SHARE, F.coalesce(F.col(C.LIKED_SHARE), F.lit(overall))
        )
    empty = F.lit(None).cast(T.ArrayType(T.FloatType()))
    for name, table in ((C.FACTORS, factors), (C.VECTOR, vectors)):
        if table is None:
            out = out.withColumn(name, empty)
        else:
            out = out.join(table.select(C.BOOK_IDX, F.col(C.FEATURES).alias(name)), on=C.BOOK_IDX, how="left")
    return out.select(
        F.lit(run_id).alias(C.RUN_ID),
        F.col(C.BOOK_ID),
        F.col(C.TITLE),
        F.col(C.AUTHORS),
        F.coalesce(F.col(C.READERS), F.lit(0)).cast("long").alias(C.READERS),
        F.coalesce(F.col(C.TRAINED_READERS), F.lit(0)).cast("long").alias(C.TRAINED_READERS),
        F.col(C.FACTORS).cast(T.ArrayType(T.FloatType())).alias(C.FACTORS),
        F.col(C.VECTOR).cast(T.ArrayType(T.FloatType())).alias(C.VECTOR),
        F.col(C.WORK_BOOK_ID).cast("long").alias(C.WORK_BOOK_ID),
        F.col(C.LIKED_SHARE).cast("float").alias(C.LIKED_SHARE),
    )


def serving_neighbour_rows(neighbours: DataFrame, books: DataFrame, run_id: str) -> DataFrame:
    """``gold/serving_neighbours``: the item-CF model's whole neighbour table in book ids (the consumer folds a
    new reader in with the same lists the batch run used, not only the top ``similar_k``)."""
    a = books.select(C.BOOK_IDX, C.BOOK_ID)
    b = books.select(F.col(C.BOOK_IDX).alias(C.NEIGHBOUR_IDX), F.col(C.BOOK_ID).alias(C.SIMILAR_BOOK_ID))
    return (
        neighbours.join(a, on=C.BOOK_IDX, how="inner")
        .join(b, on=C.NEIGHBOUR_IDX, how="inner")
        .select(
            F.lit(run_id).alias(C.RUN_ID), C.BOOK_ID, C.RANK, C.SIMILAR_BOOK_ID, F.col(C.SCORE).cast("float")
        )
    )


SERVING_MODEL_SCHEMA = T.StructType(
    [
        T.StructField(C.RUN_ID, T.StringType(), False),
        T.StructField("model", T.StringType(), False),
        T.StructField("alpha", T.DoubleType(), True),
        T.StructField("reg", T.DoubleType(), True),
        T.StructField("weights", T.StringType(), True),
        T.StructField("yty", T.ArrayType(T.DoubleType()), True),
        T.StructField("reference_date", T.TimestampType(), True),
        T.StructField("n_users", T.LongType(), False),
        T.StructField("avg_books", T.DoubleType(), False),
        T.StructField("content", T.StringType(), True),
        T.StructField("itemcf", T.StringType(), True),  # item-CF's parameters (its popularity prior)
        # a ranker run that publishes the blend: {"weight", "prior", "candidates"} as JSON (recspark.blend); else null
        T.StructField("blend", T.StringType(), True),
        T.StructField("diversity", T.DoubleType(), True),  # the MMR weight of the run's lists (--diversity)
        # what the model learned from: edition, or work (recspark.works: a reader's editions merged per work)
        T.StructField("item_level", T.StringType(), True),
        # whether the lists keep series in order (recspark.series; off where the search found it costs hits)
        T.StructField("series_order", T.BooleanType(), True),
    ]
)


def serving_model_row(
    spark: SparkSession,
    run_id: str,
    model: str,
    interactions: DataFrame,
    als_params: dict | None,
    weights: dict,
    yty: list[float] | None,
    content_params: dict,
    itemcf_params: dict | None = None,
    blend_params: dict | None = None,
    diversity: float = 0.0,
    item_level: str = "edition",
    series_order: bool = True,
) -> DataFrame:
    """``gold/serving_model``: the one row a request needs besides the book arrays. ``interactions``: what the model
    learned from (a work-level run's are moved to works): the newest date, users and mean shelves per user count
    there, as the model's weighting counted them."""
    stats = interactions.agg(
        F.max(C.DATE_ADDED).alias("ref"),
        F.countDistinct(C.USER_IDX).alias("users"),
        F.count(F.lit(1)).alias("rows"),
    ).first()
    users = int(stats["users"] or 0)
    row = (
        run_id,
        model,
        None if als_params is None else float(als_params["alpha"]),
        None if als_params is None else float(als_params["reg"]),
        json.dumps(weights),
        yty,
        stats["ref"],
        users,
        float(stats["rows"]) / max(users, 1),
        json.dumps(content_params),
        None if itemcf_params is None else json.dumps(itemcf_params),
        None if blend_params is None else json.dumps(blend_params),
        float(diversity),
        item_level,
        series_order,
    )
    return spark.createDataFrame([row], SERVING_MODEL_SCHEMA)


# -- writing and the run protocol ---------------------------------------------------------------------------
def write_run_rows(lake: Lakehouse, name: str, df: DataFrame, run_id: str) -> None:
    """Replace this run's rows of a gold table (partitioned by run_id) -- idempotent for a rerun."""
    lake.replace_run(df, GOLD, name, run_id, properties=CDF)


ZORDER = {"user_recommendations": C.USER_ID, "similar_books": C.BOOK_ID}  # what readers look rows up by
ZORDER_MIN_ROWS = 1_000_000  # below this a run's rows are a few files: Z-ordering costs more than it saves


def optimize_run(lake: Lakehouse, run_id: str, counts: dict[str, int]) -> list[str]:
    """Z-order this run's rows of the large gold tables by their lookup key (``OPTIMIZE … ZORDER BY``);
    returns the tables it optimised. Runs after the checks, before publication."""
    done = []
    for name, key in ZORDER.items():
        if counts.get(name, 0) >= ZORDER_MIN_ROWS:
            lake.spark.sql(
                f"OPTIMIZE {lake.identifier(GOLD, name)} WHERE {C.RUN_ID} = '{run_id}' ZORDER BY ({key})"
            )
            done.append(name)
    return done


def record_run(lake: Lakehouse, run_id: str, status: str, started_at: dt.datetime, **fields: object) -> None:
    """Upsert this run's row in ``gold.runs``."""
    spark = lake.spark
    row = {
        C.RUN_ID: run_id,
        "status": status,
        "started_at": started_at,
        "finished_at": fields.get("finished_at"),
        **{
            k: json.dumps(fields.get(k), sort_keys=True, default=str) if fields.get(k) is not None else None
            for k in ("params", "input_versions", "row_counts", "timings", "tuning")
        },
    }
    df = spark.createDataFrame([tuple(row[f.name] for f in RUNS_SCHEMA.fields)], RUNS_SCHEMA)
    if not lake.exists(GOLD, "runs"):
        lake.write(df, GOLD, "runs")
        return
    missing = [f for f in RUNS_SCHEMA.fields if f.name not in lake.read(GOLD, "runs").columns]
    if missing:  # a table written before these columns existed
        cols = ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in missing)
        spark.sql(f"ALTER TABLE {lake.identifier(GOLD, 'runs')} ADD COLUMNS ({cols})")
    (
        lake.delta(GOLD, "runs")
        .alias("t")
        .merge(df.alias("s"), f"t.{C.RUN_ID} = s.{C.RUN_ID}")
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )


def run_row(lake: Lakehouse, run_id: str) -> dict | None:
    """This run's row of ``gold.runs`` (None when it has none)."""
    if not lake.exists(GOLD, "runs"):
        return None
    rows = lake.read(GOLD, "runs").where(F.col(C.RUN_ID) == run_id).collect()
    return rows[0].asDict() if rows else None


def republish(lake: Lakehouse, run_id: str) -> None:
    """Serve an already published run again (its rows are in gold): a new ``finished_at`` makes it the latest
    published run, in one commit; nothing is recomputed or rewritten."""
    lake.delta(GOLD, "runs").update(f"{C.RUN_ID} = '{run_id}'", {"finished_at": F.lit(now())})


def latest_published(lake: Lakehouse) -> str | None:
    if not lake.exists(GOLD, "runs"):
        return None
    row = (
        lake.read(GOLD, "runs")
        .where(F.col("status") == "published")
        .orderBy(F.col("finished_at").desc())
        .limit(1)
        .collect()
    )
    return row[0][C.RUN_ID] if row else None


def shelved_ids(interactions: DataFrame, users: DataFrame, books: DataFrame) -> DataFrame:
    """Every shelf ``(user_id, book_id)`` in source ids: what :func:`check_gold` checks the lists against."""
    return (
        interactions.join(users, on=C.USER_IDX, how="inner")
        .join(books, on=C.BOOK_IDX, how="inner")
        .select(C.USER_ID, C.BOOK_ID)
    )


def check_gold(lake: Lakehouse, run_id: str, k: int, seen: DataFrame) -> dict[str, int]:
    """The checks a run must pass before it is published; raises PublishCheckError. Each table is read by one
    aggregation that computes all of its checks (a Spark job costs about a second of fixed overhead, so the
    number of jobs, not the rows, is what these checks cost on small and medium data)."""
    recs = lake.read(GOLD, "user_recommendations").where(F.col(C.RUN_ID) == run_id)
    sims = lake.read(GOLD, "similar_books").where(F.col(C.RUN_ID) == run_id)
    pop = lake.read(GOLD, "popular_books").where(F.col(C.RUN_ID) == run_id)
    problems = []
    bad_score = F.isnan(C.SCORE) | F.col(C.SCORE).isNull()
    per_user = recs.groupBy(C.USER_ID).agg(
        F.count(F.lit(1)).alias("n"),
        F.countDistinct(C.BOOK_ID).alias("d"),
        F.count(F.when(bad_score, 1)).alias("nan"),
    )
    r = per_user.agg(
        F.coalesce(F.sum("n"), F.lit(0)).alias("n"),
        F.coalesce(F.sum("nan"), F.lit(0)).alias("nan"),
        F.count(F.when((F.col("n") != k) | (F.col("d") != k), 1)).alias("bad_k"),
    ).first()
    s = sims.agg(
        F.count(F.lit(1)).alias("n"),
        F.count(F.when(F.isnan(C.SCORE), 1)).alias("nan"),
        F.count(F.when(F.col(C.BOOK_ID) == F.col(C.SIMILAR_BOOK_ID), 1)).alias("self"),
    ).first()
    n_recs, n_sims, n_pop = int(r["n"]), int(s["n"]), pop.count()
    if n_recs == 0:
        problems.append("user_recommendations is empty")
    if n_pop == 0:
        problems.append("popular_books is empty")
    if r["bad_k"]:
        problems.append(f"{r['bad_k']} users do not have exactly {k} distinct books")
    nan = int(r["nan"]) + int(s["nan"])
    if nan:
        problems.append(f"{nan} NaN/null scores")
    shelved = seen.select(C.USER_ID, C.BOOK_ID)
    # recommended pairs must not be shelved; cited pairs (the explanation's book) must be: one join for both
    cited = recs.where(F.col(C.BECAUSE_BOOK_ID).isNotNull()).select(
        C.USER_ID, F.col(C.BECAUSE_BOOK_ID).alias(C.BOOK_ID), F.lit(False).alias("_rec")
    )
    pairs = recs.select(C.USER_ID, C.BOOK_ID, F.lit(True).alias("_rec")).unionByName(cited)
    on_shelf = pairs.join(
        shelved.withColumn("_shelved", F.lit(True)), on=[C.USER_ID, C.BOOK_ID], how="left"
    ).agg(
        F.count(F.when(F.col("_rec") & F.col("_shelved").isNotNull(), 1)).alias("leaked"),
        F.count(F.when(~F.col("_rec") & F.col("_shelved").isNull(), 1)).alias("uncited"),
    )
    o = on_shelf.first()
    if o["leaked"]:
        problems.append(f"{o['leaked']} recommendations of books the user already shelved")
    if o["uncited"]:
        problems.append(f"{o['uncited']} explanations cite books the user did not shelve")
    if s["self"]:
        problems.append(f"{s['self']} books listed as similar to themselves")
    n_models = lake.read(GOLD, "serving_model").where(F.col(C.RUN_ID) == run_id).count()
    if n_models != 1:
        problems.append(f"serving_model has {n_models} rows for the run, not 1")
    serving = lake.read(GOLD, "serving_books").where(F.col(C.RUN_ID) == run_id)
    problems += work_problems(recs, sims, shelved, serving)
    sv = serving.agg(F.count(F.lit(1)).alias("n"), F.countDistinct(C.BOOK_ID).alias("d")).first()
    n_serving, n_ids = int(sv["n"]), int(sv["d"])
    if n_serving == 0 or n_ids != n_serving:
        problems.append(f"serving_books has {n_serving} rows for {n_ids} distinct books")
    if problems:
        raise PublishCheckError(f"run {run_id} not published: " + "; ".join(problems))
    return {
        "user_recommendations": n_recs,
        "similar_books": n_sims,
        "popular_books": n_pop,
        "serving_books": n_serving,
    }


def work_problems(recs: DataFrame, sims: DataFrame, shelved: DataFrame, serving: DataFrame) -> list[str]:
    """Work-level checks (``serving_books.work_book_id``): no list holds two editions of one work, no list holds
    an edition of a work the user shelved, no similar-books list holds an edition of the query's own work."""
    work = serving.select(C.BOOK_ID, C.WORK_BOOK_ID)
    other = work.select(F.col(C.BOOK_ID).alias(C.SIMILAR_BOOK_ID), F.col(C.WORK_BOOK_ID).alias("_sim_work"))
    rec_works = recs.select(C.USER_ID, C.BOOK_ID).join(work, on=C.BOOK_ID, how="inner")
    doubled = rec_works.groupBy(C.USER_ID, C.WORK_BOOK_ID).count().where(F.col("count") > 1).count()
    read_works = shelved.join(work, on=C.BOOK_ID, how="inner").select(C.USER_ID, C.WORK_BOOK_ID).distinct()
    reread = rec_works.join(read_works, on=[C.USER_ID, C.WORK_BOOK_ID], how="left_semi").count()
    own = (
        sims.select(C.BOOK_ID, C.SIMILAR_BOOK_ID)
        .join(work, on=C.BOOK_ID, how="inner")
        .join(other, on=C.SIMILAR_BOOK_ID, how="inner")
        .where(F.col(C.WORK_BOOK_ID) == F.col("_sim_work"))
        .count()
    )
    out = []
    if doubled:
        out.append(f"{doubled} lists hold two editions of one work")
    if reread:
        out.append(f"{reread} recommendations of an edition of a work the user already shelved")
    if own:
        out.append(f"{own} similar-books rows list an edition of the query's own work")
    return out


def guard_run_shrink(lake: Lakehouse, run_id: str, counts: dict[str, int], guard: ShrinkGuard) -> None:
    """Refuse to publish ``run_id`` when its user lists shrink against the served run's by more than ``guard``
    allows (PublishCheckError): a new published run replaces the served one only when it is as complete."""
    served = latest_published(lake)
    if served is None or served == run_id:
        return
    old = json.loads((run_row(lake, served) or {}).get("row_counts") or "{}").get("user_recommendations")
    problem = guard.problem(f"{GOLD}.user_recommendations", old, counts["user_recommendations"])
    if problem:
        raise PublishCheckError(
            f"run {run_id} not published: {problem} against the served run {served}. "
            "Pass --force to publish it anyway (or a larger --max-shrink)."
        )


def clean_old_runs(lake: Lakehouse, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` published runs (and failed/running runs older than them)."""
    if not lake.exists(GOLD, "runs"):
        return []
    runs = lake.read(GOLD, "runs").orderBy(F.col("started_at").desc()).collect()
    published = [r[C.RUN_ID] for r in runs if r["status"] == "published"]
    if len(published) <= keep:
        return []
    oldest_kept = next(r for r in runs if r[C.RUN_ID] == published[keep - 1])["started_at"]
    doomed = [r[C.RUN_ID] for r in runs if r["started_at"] < oldest_kept]
    ids = ", ".join(f"'{x}'" for x in doomed)
    for name in (*RUN_TABLES, "evaluations", "runs"):
        if lake.exists(GOLD, name):
            lake.delta(GOLD, name).delete(f"{C.RUN_ID} IN ({ids})")
    log.info("cleaned %d old runs", len(doomed))
    return doomed
