"""Blocked, exact top-K of factor dot products inside Spark, with each user's seen books excluded.

Kernel (:func:`topk_blocks`): queries are taken ``b`` rows at a time; for each block, the items are scanned in
tiles of ``C`` columns (:data:`TILE_COLS` = 4096), so a ``b × C`` float32 score tile stays in cache:

1. ``S = Q_b @ V[tile].T`` into one reused buffer (one BLAS call, ``2·b·C·rank`` flops). Small tiles also
   avoid writing a ``b × n`` score matrix to memory, so the kernel runs *faster* than a plain full-width
   ``U @ V.T`` (``bench/topk.py`` measures both);
2. excluded entries of the tile (a user's seen books, an item itself) are set to ``-inf``: exact exclusion,
   no over-fetching;
3. **selection without touching every score twice.** The tile's columns are dealt into ``m = C // G``
   *strided* groups (group ``j`` holds columns ``j, j+m, j+2m, ...``), so the group maxima are one SIMD
   reduction over contiguous slabs. Each row keeps the K largest group maxima seen so far; their minimum
   ``thr`` is a lower bound on the row's final K-th score (K distinct groups each hold a score ``>= thr``),
   and it only rises from tile to tile. Only groups whose maximum is ``>= thr`` are gathered (a flat
   ``take``), and their scores ``>= thr`` become candidates; candidates that a later, higher ``thr`` rules out
   are dropped as the pool grows. ``partition`` runs over ``K + C/G`` values per row and tile, never over
   all ``n`` scores;
4. the surviving candidates are ranked exactly by ``(-score, item index)``: ties go to the smaller item index
   (deterministic), and a row with fewer than K allowed items returns all of them.

Memory, per Python worker:

* **one tile**: scores ``b·C·4`` bytes plus group maxima and their partition copy ``2·b·(C/G)·4``, so
  ``b = budget / (C · (4 + 8/G))`` rows (at most :data:`MAX_BLOCK_ROWS`; at least 1). With the default 8 MiB
  budget, b = 455 rows of 4096 books, whatever the catalogue size; the candidate pool adds at most
  ``8·K·b`` entries of 20 bytes;
* **one item shard**: the item matrix is broadcast in shards of at most ``item_budget_mb``
  (``n_shard = item_budget / (rank·4)``, 1M books at rank 64 for the default 256 MiB). A catalogue larger
  than one shard is scored shard by shard; each shard yields an exact top-K per user over its books, and the
  per-user union of the shards' lists is cut to the K best again, which is the exact top-K overall;
* Arrow batches of ``spark.sql.execution.arrow.maxRecordsPerBatch`` rows (10,000 by default).

So a worker's peak memory is bounded by the two budgets and the batch size, whatever the number of users or
books (``bench/topk.py`` measures it at two sizes).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recspark import columns as C
from recspark.frames import union_all

log = logging.getLogger(__name__)

GROUP = 16
TILE_COLS = 4096
MAX_BLOCK_ROWS = 1024
DEFAULT_BUDGET_MB = 8
DEFAULT_ITEM_BUDGET_MB = 256
SEEN = "_seen"

_EMPTY_I = np.zeros(0, dtype=np.int64)
_EMPTY_F = np.zeros(0, dtype=np.float32)


def unit_length(vec: Column) -> Column:
    """``vec`` (an array of numbers) divided by its Euclidean norm, as floats (a zero vector stays zero): cosine
    similarity becomes a dot product.

    The norm is computed once per array, in ``aggregate``'s finish function, where it is a bound lambda
    variable. Referring to it as an outer expression inside ``transform``'s lambda instead makes Spark evaluate it
    again for every element: ``O(d²)`` per vector, 71x slower at 256 dimensions (``bench/unit_length.py``)."""
    return F.aggregate(
        vec,
        F.lit(0.0),
        lambda acc, x: acc + x * x,
        lambda acc: F.transform(vec, lambda x: (x / F.greatest(F.sqrt(acc), F.lit(1e-12))).cast("float")),
    )


def group_size(n_items: int, k: int) -> int:
    """Columns per group: :data:`GROUP`, fewer when that would leave under 2K groups (small tiles)."""
    return int(max(1, min(GROUP, n_items // max(1, 2 * k))))


def block_rows(tile_cols: int, budget_mb: float = DEFAULT_BUDGET_MB) -> int:
    """Query rows per tile so that one score tile + its group maxima (+ their partition copy) fit the budget:
    ``b = budget / (C · (4 + 8/G))`` for ``C`` item columns per tile, capped at :data:`MAX_BLOCK_ROWS`."""
    per_row = tile_cols * (4 + 8 / GROUP)
    return int(max(1, min(MAX_BLOCK_ROWS, budget_mb * (1 << 20) // max(per_row, 1))))


def _tile_candidates(
    tile: np.ndarray, flat: np.ndarray, stride: int, top: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Candidates of one score tile (``b × w``, a view into the buffer whose flat view is ``flat``).

    ``top`` holds each row's k largest group maxima seen in earlier tiles (``-inf`` padded). Returns the tile's
    entries ``>= thr`` (row, tile column, value), the updated ``top`` and ``thr``, the k-th largest group
    maximum so far: a lower bound on the row's final k-th score, so nothing below it is ever needed.
    """
    b, w = tile.shape
    g = group_size(w, k)
    m = w // g  # strided groups over the first m*g columns; the < g tail columns are groups of one
    if g > 1:
        maxima = tile[:, : m * g].reshape(b, g, m).max(axis=1)
        if m * g < w:
            maxima = np.concatenate([maxima, tile[:, m * g :]], axis=1)
    else:
        maxima = tile
    joined = np.concatenate([top, maxima], axis=1)
    cut = joined.shape[1] - k
    joined.partition(cut, axis=1)
    thr, top = joined[:, cut], joined[:, cut:]
    # flat indices of the groups that may hold a top-k score (flatnonzero is ~10x faster than 2-D nonzero)
    rows, grp = np.divmod(np.flatnonzero(maxima >= thr[:, None]), maxima.shape[1])
    if g > 1:
        strided = grp < m
        cols = np.concatenate([(grp[strided, None] + m * np.arange(g)).ravel(), grp[~strided] - m + m * g])
        rows = np.concatenate([np.repeat(rows[strided], g), rows[~strided]])
    else:
        cols = grp
    vals = flat.take(rows * stride + cols)  # a flat take: ~3x faster than 2-D fancy indexing
    keep = (vals >= thr[rows]) & (vals > -np.inf)
    return rows[keep], cols[keep], vals[keep], top, thr


def topk_blocks(
    queries: np.ndarray,
    items_t: np.ndarray,
    k: int,
    ex_rows: np.ndarray | None = None,
    ex_cols: np.ndarray | None = None,
    budget_mb: float = DEFAULT_BUDGET_MB,
    tile_cols: int = TILE_COLS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact top-k of ``queries @ items_t`` per query row, computed in tiles of ``b`` rows × ``tile_cols`` items.

    ``items_t`` is the ``(rank, n)`` transposed item matrix (C-contiguous float32); ``(ex_rows, ex_cols)`` are
    the excluded (query row, item position) pairs, ``ex_rows`` sorted ascending. Returns
    ``(query_row, item_position, score)`` ordered by row, score descending, position ascending; a row with
    fewer than k allowed items returns all of them.
    """
    n_q, n = queries.shape[0], items_t.shape[1]
    if n_q == 0 or n == 0 or k <= 0:
        return _EMPTY_I, _EMPTY_I, _EMPTY_F
    width = min(n, tile_cols)
    b = min(block_rows(width, budget_mb), n_q)
    buf = np.empty((b, width), dtype=np.float32)
    flat = buf.reshape(-1)
    out_r, out_c, out_v = [], [], []
    for start in range(0, n_q, b):
        q = queries[start : start + b]
        bb = len(q)
        br = bc = _EMPTY_I
        if ex_rows is not None and len(ex_rows):
            lo, hi = np.searchsorted(ex_rows, [start, start + bb])
            order = np.argsort(ex_cols[lo:hi], kind="stable")  # by column: one slice per item tile
            br, bc = ex_rows[lo:hi][order] - start, ex_cols[lo:hi][order]
        top = np.full((bb, k), -np.inf, dtype=np.float32)
        thr = top[:, 0]
        pool_r, pool_c, pool_v, pooled = [], [], [], 0
        for c0 in range(0, n, width):
            w = min(width, n - c0)
            tile = buf[:bb, :w]
            np.matmul(q, items_t[:, c0 : c0 + w], out=tile)
            if len(bc):
                lo, hi = np.searchsorted(bc, [c0, c0 + w])
                tile[br[lo:hi], bc[lo:hi] - c0] = -np.inf
            r, c, v, top, thr = _tile_candidates(tile, flat, width, top, k)
            pool_r.append(r)
            pool_c.append(c + c0)
            pool_v.append(v)
            pooled += len(r)
            if pooled > 8 * k * bb:  # drop what the risen thresholds have ruled out
                r, c, v = np.concatenate(pool_r), np.concatenate(pool_c), np.concatenate(pool_v)
                keep = v >= thr[r]
                pool_r, pool_c, pool_v, pooled = [r[keep]], [c[keep]], [v[keep]], int(keep.sum())
        r, c, v = np.concatenate(pool_r), np.concatenate(pool_c), np.concatenate(pool_v)
        keep = v >= thr[r]
        r, c, v = r[keep], c[keep], v[keep]
        order = np.lexsort((c, -v, r))
        r, c, v = r[order], c[order], v[order]
        first = np.searchsorted(r, np.arange(bb))
        keep = (np.arange(len(r)) - first[r]) < k
        out_r.append(r[keep] + start)
        out_c.append(c[keep])
        out_v.append(v[keep])
    return np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_v)


def exclusion_pairs(
    lengths: np.ndarray, cols: np.ndarray, self_positions: np.ndarray | None = None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Excluded (query row, item position) pairs, sorted by row, or ``(None, None)`` when there are none.

    ``cols`` holds each query's excluded positions back to back (``lengths[i]`` of them for query i);
    ``self_positions[i]`` is one more for query i (the item itself, for item-item). Negative positions (an id
    absent from the item matrix) exclude nothing.
    """
    n = len(lengths)
    rows = np.repeat(np.arange(n, dtype=np.int64), lengths)
    cols = np.asarray(cols, dtype=np.int64)
    if self_positions is not None:
        rows = np.concatenate([rows, np.arange(n, dtype=np.int64)])
        cols = np.concatenate([cols, np.asarray(self_positions, dtype=np.int64)])
    keep = cols >= 0
    if not keep.any():
        return None, None
    rows, cols = rows[keep], cols[keep]
    order = np.argsort(rows, kind="stable")
    return rows[order], cols[order]


def flatten_exclusions(
    exclude: list[np.ndarray | None] | None, self_positions: np.ndarray | None, n_queries: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-query lists of excluded positions (and each query's own position) -> sorted flat (row, col) pairs."""
    lengths = np.zeros(n_queries, dtype=np.int64)
    cols = _EMPTY_I
    if exclude is not None:
        lengths = np.fromiter((0 if e is None else len(e) for e in exclude), dtype=np.int64, count=n_queries)
        if lengths.sum():
            cols = np.concatenate([np.asarray(e, dtype=np.int64) for e in exclude if e is not None])
    return exclusion_pairs(lengths, cols, self_positions)


def topk_numpy(
    queries: np.ndarray,
    items: np.ndarray,
    k: int,
    exclude: list[np.ndarray | None] | None = None,
    budget_mb: float = DEFAULT_BUDGET_MB,
    self_positions: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k items for every query row, blocked. ``exclude[i]``: item positions to skip for query i;
    ``self_positions[i]``: one more position to skip (the item itself, for item-item similarity).

    Returns ``(query_row, item_position, score)``.
    """
    items_t = np.ascontiguousarray(np.asarray(items, dtype=np.float32).T)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    er, ec = flatten_exclusions(exclude, self_positions, queries.shape[0])
    return topk_blocks(queries, items_t, k, er, ec, budget_mb)


OUTPUT_SCHEMA = T.StructType(
    [
        T.StructField(C.USER_IDX, T.IntegerType(), False),
        T.StructField(C.RANK, T.IntegerType(), False),
        T.StructField(C.BOOK_IDX, T.IntegerType(), False),
        T.StructField(C.SCORE, T.FloatType(), False),
    ]
)


def factor_matrix(df: DataFrame, id_col: str = C.BOOK_IDX) -> tuple[np.ndarray, np.ndarray]:
    """(ids, float32 matrix) of a factor table ``(id_col, features)`` collected to the driver via Arrow, sorted
    by id."""
    table = df.select(F.col(id_col).cast("long").alias("id"), F.col(C.FEATURES)).toArrow()
    ids = table.column("id").to_numpy()
    col = table.column(C.FEATURES).combine_chunks()
    if len(ids) == 0:
        return ids.astype(np.int64), np.zeros((0, 0), np.float32)
    mat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(ids), -1)
    order = np.argsort(ids, kind="stable")
    return ids[order].astype(np.int64), np.ascontiguousarray(mat[order])


def shard_bounds(n_items: int, rank: int, item_budget_mb: float) -> list[tuple[int, int]]:
    """Contiguous item ranges of at most ``item_budget_mb`` each (``rank·4`` bytes per item)."""
    per_shard = max(1, int(item_budget_mb * (1 << 20) // max(1, rank * 4)))
    return [(s, min(n_items, s + per_shard)) for s in range(0, max(n_items, 1), per_shard)]


def _positions(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Position of each wanted id in the sorted ``ids``, -1 where absent."""
    pos = np.searchsorted(ids, wanted)
    pos = np.minimum(pos, max(len(ids) - 1, 0))
    hit = (ids[pos] == wanted) if len(ids) else np.zeros(len(wanted), dtype=bool)
    return np.where(hit, pos, -1)


def _scorer(bc_ids, bc_items_t, k: int, budget_mb: float, exclude_self: bool):
    """The ``mapInPandas`` function: one Arrow batch of queries -> their top-k rows against one item shard."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        ids = bc_ids.value
        items_t = bc_items_t.value
        for pdf in batches:
            if pdf.empty:
                continue
            q = np.stack(pdf[C.FEATURES].to_numpy()).astype(np.float32, copy=False)
            users = pdf[C.USER_IDX].to_numpy(dtype=np.int64)
            seen = pdf[SEEN].to_numpy()
            lengths = np.fromiter((0 if s is None else len(s) for s in seen), dtype=np.int64, count=len(seen))
            flat = (
                np.concatenate([s for s in seen if s is not None and len(s)]) if lengths.sum() else _EMPTY_I
            )
            # seen books outside this shard (or unknown to the model) get position -1: nothing to exclude
            own = _positions(ids, users) if exclude_self else None
            er, ec = exclusion_pairs(lengths, _positions(ids, flat.astype(np.int64)), own)
            r, c, v = topk_blocks(q, items_t, k, er, ec, budget_mb)
            if len(r) == 0:
                continue
            starts = np.searchsorted(r, np.arange(len(users)))
            rank = np.arange(len(r)) - starts[r] + 1
            yield pd.DataFrame(
                {
                    C.USER_IDX: users[r].astype(np.int32),
                    C.RANK: rank.astype(np.int32),
                    C.BOOK_IDX: ids[c].astype(np.int32),
                    C.SCORE: v.astype(np.float32),
                }
            )

    return run


def with_seen_lists(queries: DataFrame, seen: DataFrame | None) -> DataFrame:
    """``(user_idx, features)`` + ``_seen``: the user's seen book indices as one array (null when none)."""
    if seen is None:
        return queries.withColumn(SEEN, F.lit(None).cast(T.ArrayType(T.IntegerType())))
    lists = seen.groupBy(F.col(C.USER_IDX)).agg(F.collect_list(F.col(C.BOOK_IDX).cast("int")).alias(SEEN))
    return queries.join(lists, on=C.USER_IDX, how="left").select(C.USER_IDX, C.FEATURES, SEEN)


def merge_shards(partials: DataFrame, k: int) -> DataFrame:
    """Per-user exact top-k over the union of per-shard top-k lists, re-ranked 1..k (score desc, book asc)."""
    order = Window.partitionBy(C.USER_IDX).orderBy(F.col(C.SCORE).desc(), F.col(C.BOOK_IDX).asc())
    return (
        partials.withColumn(C.RANK, F.row_number().over(order))
        .where(F.col(C.RANK) <= k)
        .select(C.USER_IDX, F.col(C.RANK).cast("int").alias(C.RANK), C.BOOK_IDX, C.SCORE)
    )


def recommend(
    spark: SparkSession,
    user_factors: DataFrame,
    item_factors: DataFrame,
    k: int,
    seen: DataFrame | None = None,
    budget_mb: float = DEFAULT_BUDGET_MB,
    query_col: str = C.USER_IDX,
    item_col: str = C.BOOK_IDX,
    exclude_self: bool = False,
    partitions: int | None = None,
    item_budget_mb: float = DEFAULT_ITEM_BUDGET_MB,
) -> DataFrame:
    """Top-k ``(user_idx, rank, book_idx, score)`` for every row of ``user_factors`` (``query_col``/``features``),
    excluding ``seen`` ``(user_idx, book_idx)`` pairs exactly.

    With ``exclude_self`` the queries are items and each item's own position is skipped (item-item).
    """
    item_ids, items = factor_matrix(item_factors, item_col)
    rank_dim = items.shape[1]
    queries = user_factors.select(F.col(query_col).cast("int").alias(C.USER_IDX), F.col(C.FEATURES))
    queries = with_seen_lists(queries, seen)
    parts = partitions or max(2, spark.sparkContext.defaultParallelism * 2)
    queries = queries.repartition(parts)
    shards = shard_bounds(len(item_ids), rank_dim, item_budget_mb)
    if len(shards) > 1:
        queries = queries.persist()  # scored once per shard: compute the seen-list join once
    log.info(
        "top-%d: %d books, rank %d, %d item shard(s), block budget %g MiB",
        k,
        len(item_ids),
        rank_dim,
        len(shards),
        budget_mb,
    )
    outputs = []
    for lo, hi in shards:
        bc_ids = spark.sparkContext.broadcast(item_ids[lo:hi])
        bc_items_t = spark.sparkContext.broadcast(np.ascontiguousarray(items[lo:hi].T))
        outputs.append(
            queries.mapInPandas(_scorer(bc_ids, bc_items_t, k, budget_mb, exclude_self), OUTPUT_SCHEMA)
        )
    if len(outputs) == 1:
        return outputs[0]
    return merge_shards(union_all(outputs), k)


def item_neighbours(
    spark: SparkSession, queries: DataFrame, items: DataFrame, k: int, seen: DataFrame | None = None
) -> DataFrame:
    """Top-k ``(book_idx, rank, neighbour_idx, score)`` by dot product for each query book among ``items`` (both
    ``(book_idx, features)``), never the book itself (nor ``seen`` ``(user_idx = query book, book_idx)`` pairs,
    e.g. the other editions of its work): similar-books lists in the shape of item-CF's table."""
    sims = recommend(spark, queries, items, k, seen=seen, query_col=C.BOOK_IDX, exclude_self=True)
    return sims.select(
        F.col(C.USER_IDX).alias(C.BOOK_IDX),
        F.col(C.RANK),
        F.col(C.BOOK_IDX).alias(C.NEIGHBOUR_IDX),
        F.col(C.SCORE),
    )
