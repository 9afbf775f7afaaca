"""EASE: item-item weights from a closed-form ridge regression of each book on all the others (Steck, 2019).

Item-CF (:mod:`recspark.itemcf`) scores a user's candidate by summing fixed similarities (cosine, Jaccard) to the
books they shelved. EASE learns those weights instead: the book-by-book matrix ``B`` that best reconstructs every
user's shelves from the user's *other* shelves, ``min ||X - X·B||² + λ·||B||²`` subject to ``diag(B) = 0``.
The solution is closed form:

1. **Gram matrix** ``G = Xᵀ·X`` of the weighted shelves of the catalogue, the :data:`MAX_BOOKS` most-read books
   (readers counted over every shelf; ties: smaller index): co-occurrence counts as item-CF computes them
   (``c_ab`` off the diagonal, ``q_a = Σ_u w_ua²`` on it), collected into a dense ``float64`` matrix on the
   driver. Item-CF counts each user's 100 most recent shelves (``ItemCfParams.max_user_books``); EASE counts
   its own pairs over the catalogue with a cap as large as :data:`MAX_PAIRS` self-join rows allow
   (:func:`gram_cap`, never below item-CF's), so on data of a few hundred heavy shelvers or a few thousand
   raters every shelf counts. Why: on 300 generated heavy shelvers (~870 shelves each) numpy EASE scored
   NDCG@10 0.2222 with every shelf in ``G``, 0.1775 with 300 per user and 0.1259 with 100 (l2 16, 400 weights
   by magnitude; popularity 0.1662; ``bench/ease_gap.py --user-caps``).
2. ``P = (G + λ·I)⁻¹`` with ``λ = l2 × mean(diag G)``: ``l2`` is relative to how many readers the average
   catalogue book has, so one setting means the same on a small and a large dataset.
3. ``B_ji = -P_ji / P_ii`` for ``j ≠ i``, ``B_ii = 0``.
4. The user's score for book ``i`` is ``Σ_j x_uj · B_ji``: the same sparse product item-CF computes, so each
   book ``j`` keeps its ``neighbours`` weights ``B_j·`` of largest *magnitude* as its row of the neighbour table
   ``(book_idx, rank, neighbour_idx, score)`` (ranked by weight, ties: smaller index), and item-CF's kernel,
   explanations, publishing and serving fold-in work unchanged. Negative weights (a book that makes another
   *less* likely) are kept: they pull a candidate's sum down, and the kernel still recommends only books whose
   sum is positive, explained by their largest positive contribution; similar-books lists show positive
   weights only. Why keep them: on the goodbooks-10k ``to_read`` shelves, on the split of ``bench/quality.py``,
   the 400 weights of largest magnitude scored NDCG@10 0.0853 at l2 4 against 0.0830 for the 400 largest
   positive ones (what was kept before) and 0.0846 for the full matrix (``bench/ease_gap.py``).

Why: on dense data EASE is a strong item model (Steck reports it above matrix factorisation on MovieLens-20M,
Netflix and MSD); on the real goodbooks-10k ``to_read`` shelves it beat Spark ALS by about a quarter (NDCG@10
0.0915 vs 0.0710 on one 20% holdout, ``bench/ease.py``). It is one more configuration of the item-CF family,
chosen only when it wins on validation like every other.

Bounds: the catalogue is at most :data:`MAX_BOOKS` books (books outside it are neither scored nor used as
seeds). The Gram's self-join emits at most :data:`MAX_PAIRS` rows, or ``Σ_u min(n_u, 100)²/2`` when even item-CF's
cap exceeds that (``n_u``: the user's catalogue shelves). The driver holds the catalogue's pairs (at most
``m(m-1)/2`` rows of 16 bytes) and two dense ``m × m``
``float64`` matrices (800 MB each at ``m = 10,000``); the inverse costs ``O(m³)`` (about 30 s at
``m = 10,000`` on 2 cores). The neighbour table has at most ``m × neighbours`` rows.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recspark import columns as C
from recspark.columns import RANK, SCORE
from recspark.frames import from_arrow

log = logging.getLogger(__name__)

MAX_BOOKS = 10_000  # the dense catalogue: the most-read books (the inverse is O(m³) on the driver)
MAX_PAIRS = 100_000_000  # the Gram's self-join rows: the per-user cap rises above item-CF's while they fit
_ROWS = 1024  # rows of B ranked at a time (bounds the temporary copies)


def catalogue(sums: DataFrame, max_books: int) -> tuple[np.ndarray, np.ndarray]:
    """``(book_idx, q)`` of the ``max_books`` books with the largest weight sum ``n`` (ties: smaller index), in
    ascending ``book_idx``; ``sums`` is item-CF's ``(book_idx, n, q)``."""
    top = (
        sums.orderBy(F.col("n").desc(), F.col(C.BOOK_IDX).asc())
        .limit(max_books)
        .select(F.col(C.BOOK_IDX).cast("int"), F.col("q").cast("double"))
        .toArrow()
    )
    books = top.column(0).to_numpy()
    q = top.column(1).to_numpy()
    order = np.argsort(books)
    return books[order], q[order]


def pair_rows(sizes: np.ndarray, users: np.ndarray, cap: int) -> int:
    """Rows of the self-join when ``users[i]`` users have ``sizes[i]`` shelves each and keep at most ``cap``."""
    kept = np.minimum(sizes.astype(np.int64), cap)
    return int((users.astype(np.int64) * kept * (kept - 1) // 2).sum())


def gram_cap(sizes: np.ndarray, users: np.ndarray, max_pairs: int, floor: int) -> int:
    """The per-user shelf cap of the Gram matrix: the largest ``cap`` whose self-join emits at most ``max_pairs``
    rows (:func:`pair_rows`), but never below ``floor`` (the cap item-CF's pairs use); above ``floor``, at most
    the largest user's shelf count (when everything fits, that is the cap: nothing is dropped)."""
    hi = int(sizes.max(initial=0))
    if hi <= floor or pair_rows(sizes, users, floor) > max_pairs:
        return floor
    lo = floor  # pair_rows(lo) <= max_pairs; find the largest such cap in [lo, hi] (pair_rows grows with cap)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if pair_rows(sizes, users, mid) <= max_pairs:
            lo = mid
        else:
            hi = mid - 1
    return lo


def position(books: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Each of ``ids``' index in the ascending ``books``; ``ValueError`` when one is not there."""
    at = np.searchsorted(books, ids)
    if len(ids) and (at.max() >= len(books) or (books[at] != ids).any()):
        raise ValueError(
            "EASE's pairs name books outside its catalogue: count them over the catalogue's shelves"
        )
    return at


def gram(pairs: DataFrame, books: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The dense ``G`` over the catalogue ``books`` (ascending): ``q`` on the diagonal, the co-occurrence
    ``c`` of the ``pairs`` ``(book_idx, neighbour_idx, c)`` (``book_idx < neighbour_idx``, both in ``books``:
    counted over the catalogue's shelves only, ``itemcf.Cooccurrence.ease_counts``) off it."""
    table = pairs.select(
        F.col(C.BOOK_IDX).cast("int"), F.col(C.NEIGHBOUR_IDX).cast("int"), F.col("c").cast("double")
    ).toArrow()
    a, b = (position(books, table.column(i).to_numpy()) for i in (0, 1))
    c = table.column(2).to_numpy()
    g = np.zeros((len(books), len(books)), dtype=np.float64)
    g[a, b] = c
    g[b, a] = c
    g[np.diag_indices(len(books))] = q
    return g


def weights(g: np.ndarray, l2: float) -> np.ndarray:
    """EASE's ``B`` from the Gram matrix ``g`` (overwritten): ``P = (G + λI)⁻¹``, ``B = -P / diag(P)`` column by
    column, ``diag(B) = 0``, with ``λ = l2 × mean(diag G)`` (at least a tiny positive value, so an all-zero
    Gram matrix still inverts)."""
    m = len(g)
    diag = np.diag_indices(m)
    lam = max(l2 * float(np.mean(g[diag])), 1e-9) if m else 1.0
    g[diag] += lam
    p = np.linalg.inv(g)
    p /= -np.diag(p)[None, :]
    p[diag] = 0.0
    return p


def top_weights(b: np.ndarray, books: np.ndarray, n: int) -> pa.Table:
    """Each row's ``n`` weights of largest magnitude (negative ones too) as ``(book_idx, rank, neighbour_idx,
    score)`` in book indices, ranked 1.. by weight (ties: smaller index); zero weights (the diagonal, a row with
    nothing to regress on) have no entry."""
    m = len(b)
    out_b, out_r, out_n, out_s = [], [], [], []
    keep = min(n, m - 1)  # a book is never its own neighbour
    for lo in range(0, m if keep > 0 else 0, _ROWS):
        block = b[lo : lo + _ROWS]
        cols = np.argpartition(-np.abs(block), keep - 1, axis=1)[:, :keep]
        vals = np.take_along_axis(block, cols, axis=1)
        rows = np.repeat(np.arange(lo, lo + len(block)), cols.shape[1])
        cols, vals = cols.ravel(), vals.ravel()
        nonzero = vals != 0
        rows, cols, vals = rows[nonzero], cols[nonzero], vals[nonzero]
        order = np.lexsort((books[cols], -vals, rows))
        rows, cols, vals = rows[order], cols[order], vals[order]
        starts = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
        counts = np.diff(np.r_[starts, len(rows)])
        rank = np.arange(len(rows)) - np.repeat(starts, counts) + 1
        out_b.append(books[rows])
        out_r.append(rank)
        out_n.append(books[cols])
        out_s.append(vals)

    def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    return pa.table(
        {
            C.BOOK_IDX: pa.array(cat(out_b, np.int32)),
            RANK: pa.array(cat(out_r, np.int32)),
            C.NEIGHBOUR_IDX: pa.array(cat(out_n, np.int32)),
            SCORE: pa.array(cat(out_s, np.float32)),
        }
    )


def neighbours(pairs: DataFrame, sums: DataFrame, n: int, l2: float, max_books: int = MAX_BOOKS) -> DataFrame:
    """The EASE neighbour table ``(book_idx, rank, neighbour_idx, score)`` from the co-occurrence ``pairs`` and
    book ``sums`` of the catalogue's shelves (:func:`gram`), ``n`` weights per book at most (those of largest
    magnitude), over the ``max_books`` most-read books."""
    t0 = time.perf_counter()
    books, q = catalogue(sums, max_books)
    g = gram(pairs, books, q)
    t1 = time.perf_counter()
    b = weights(g, l2)
    del g
    t2 = time.perf_counter()
    table = top_weights(b, books, n)
    del b
    log.info(
        "EASE: %s books, l2 %g: Gram %.1f s, inverse %.1f s, %s weights kept",
        f"{len(books):,}",
        l2,
        t1 - t0,
        t2 - t1,
        f"{table.num_rows:,}",
    )
    return from_arrow(pairs.sparkSession, table).select(
        F.col(C.BOOK_IDX).cast("int"),
        F.col(RANK).cast("int"),
        F.col(C.NEIGHBOUR_IDX).cast("int"),
        F.col(SCORE).cast("float"),
    )
