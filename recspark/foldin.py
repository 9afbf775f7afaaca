"""Recommendations for a reader the batch run never saw, at request time, with numpy only (no Spark).

A request carries shelves ``(book, rating?, date_added?, is_read?, is_reviewed?)``. They become the same
numbers the batch model was trained on, and one user vector is solved or summed from them:

* **ALS fold-in** (the published family is ``als``). The preference ``r`` of each shelf is computed exactly as
  :func:`recspark.features.preference` does in Spark (signal, recency decay against the training data's newest
  date, then the ``binary | linear | log | bm25`` scheme). Spark's implicit ALS solves, for each user with item
  factors ``Y`` fixed, the normal equations

      (YᵀY + Σ_i α·r_i · y_i y_iᵀ + λ·n⁺ · I) x = Σ_{i: r_i > 0} (1 + α·r_i) · y_i

  (``n⁺`` = shelves with ``r > 0``: Spark scales the regularisation per user, ALS-WR). ``YᵀY`` is published
  with the factors, so one request costs ``O(n·rank²)`` to build the ``rank × rank`` system, one Cholesky solve,
  and one ``n_books × rank`` product for the scores. Solving it for a training user's own shelves gives the
  vector ALS computed for that user (tested).
* **Content taste vector** (published with the run when the books carry metadata): ``Σ_j w_j · v_j`` with
  ``w_j`` = rating weight × ``0.5 ** (age_j / half_life)``, normalised; scores ``cos(taste, v_b) + λ·p_b``
  (:mod:`recspark.content`). It is the model when the published family is ``content``, and it is blended into
  ALS or item-CF scores with weight ``blend`` (each score list is first divided by its largest value).
* **Item-CF** (the published family is ``itemcf``): ``Σ_j w_j · sim(j, b)`` over the
  shelved books' neighbour lists, ``w_j`` 1 or, where the run weighed shelves by what they say, ``rating / 5``
  for a rated shelf and 0.5 for an unread one (:func:`shelf_weights`): the model's whole table
  (``gold/serving_neighbours``), or the published similar-books lists (the top ``similar_k``) for runs that did
  not publish it. With its popularity prior β the sums over the books a list may show are divided by their
  largest and ``β · readers / max readers`` is added (:func:`with_prior`), as the batch kernel does; an item-CF
  run's liked-share prior γ adds ``γ · liked share`` too (the shares of ``gold/serving_books``).
* **The blend of ALS and item-CF** (a ``ranker`` run that published :mod:`recspark.blend`): both of the above,
  then :func:`blend_scores` does what the batch blend does over its candidates: every source's top ``n``
  (ALS, item-CF, content, popularity; shelved works excluded) is a candidate, ALS's and item-CF's scores are
  filled and divided by the reader's top score of each, and ``(1 - w) · als + w · itemcf + γ · liked share``
  orders them. ``O(n_books)`` per source to pick its top ``n`` and ``O(sources · n)`` for the blend. A run that
  published the learned ranker folds in with ALS (its features need Spark).
* **Popularity** (the published family is ``popularity``): no scores; the list is the fill below alone (the
  most read books the reader has not shelved), as the batch's lists of such a run are.
* **Work-level runs** (``item_level`` ``work``, :mod:`recspark.works`): the model learned one row per reader and
  work, so :func:`per_work` first merges the request's editions of one work as ``Works.to_works`` merged the
  training data (the highest rating, then the latest date; read or reviewed if any edition was), at the position
  of the edition that stands for the work. The published ``YᵀY`` is of one vector per work, and BM25's readers and
  the popularity priors count readers per work (``trained_readers``), as training did. Explanations cite the
  edition the reader shelved.

Every shelved book is excluded exactly; each recommended book is explained by the shelved book whose vector is
closest to it (cosine of ALS factors, or content vectors), or that contributed most (item-CF). Then the batch's
series step (:mod:`recspark.series`) in numpy, :func:`in_series_order`: a later volume of a series the reader has
not started gives way to the series' first volume, a book listed twice keeps its better rank, and a list shorter
than asked (closed up, or the model scored fewer books) is filled from the most read books (themselves in series
order, score 0, no reason), as the publish step fills it (:mod:`recspark.serve`).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np

SCHEMES = ("binary", "linear", "log", "bm25")
# recspark.series.VOLUME_PATTERN with named groups (a test holds the two together); RE2 syntax, for pyarrow
SERIES_PATTERN = r"\((?P<name>[^()#]+?),\s*#(?P<volume>\d+)\)\s*$"


@dataclass(frozen=True)
class Shelf:
    """One shelved book of a request, in catalogue positions (see :class:`Catalogue`)."""

    pos: int
    rating: int = 0
    is_read: bool = False
    is_reviewed: bool = False
    date_added: dt.datetime | None = None


# item-CF's weight of a shelf not (yet) read under shelf_weights "read" (recspark.itemcf, step 1): a to-read shelf
# counts half as much as a read book. Here, not in recspark.itemcf, so that the consumer imports it without Spark
UNREAD_WEIGHT = 0.5


@dataclass(frozen=True)
class ModelInfo:
    """What a request needs besides the book arrays: the published family and the training settings."""

    model: str  # als | itemcf | content | popularity
    alpha: float = 10.0
    reg: float = 1.0
    weights: dict = field(default_factory=dict)  # recspark.features.Weights as a dict
    reference_date: dt.datetime | None = None  # newest interaction of the training data
    n_users: int = 1
    avg_books: float = 1.0  # mean shelves per user (bm25)
    content_half_life_days: float | None = 365.0
    content_popularity_weight: float = 1.0
    itemcf_popularity_weight: float = 0.0  # item-CF's prior β (recspark.itemcf): 0 without one
    itemcf_liked_weight: float = 0.0  # item-CF's liked-share prior γ (recspark.itemcf): 0 without one
    # how item-CF weighs a shelf (recspark.itemcf.ItemCfParams.shelf_weights): binary, stars, read or read+stars
    itemcf_shelf_weights: str = "binary"
    # item-CF's time decay of a shelf (recspark.itemcf.ItemCfParams.half_life_days); None: no decay
    itemcf_half_life_days: float | None = None
    series_order: bool = True  # the series step runs (recspark.series; the run's RunConfig.series_order)
    # a ranker run that published the blend (recspark.blend): item-CF's share w, the liked share's weight γ and
    # the candidates per source n; None: not a blend run (or one published before the blend was served)
    blend_weight: float | None = None
    blend_prior: float = 0.0
    blend_candidates: int = 0
    diversity: float = 0.0  # the MMR weight the run's lists were re-ranked with (recspark.diversity); 0: none
    item_level: str = "edition"  # what the model learned from: edition, or work (a reader's editions merged)


def per_work(shelves: list[Shelf], work: np.ndarray) -> tuple[list[Shelf], dict[int, int]]:
    """A reader's shelves as a work-level model learned them (:meth:`recspark.works.Works.to_works`): one shelf per
    work, at the position of the edition that stands for it (``work[p]``); its rating and date from the edition
    with the highest rating, then the latest date (a missing date last); read and reviewed if any edition was.
    Also ``{work position: the shelved edition to cite}``: the reader's edition of that work in the first
    catalogue position (:meth:`recspark.works.Works.cited_editions` takes the smallest index: the same edition
    unless a later ingest appended one of them to the catalogue)."""
    merged: dict[int, Shelf] = {}
    cite: dict[int, int] = {}
    for x in shelves:
        w = int(work[x.pos])
        cite[w] = min(cite.get(w, x.pos), x.pos)
        had = merged.get(w)
        if had is None:
            merged[w] = Shelf(w, x.rating, x.is_read, x.is_reviewed, x.date_added)
            continue
        first = max((had, x), key=_merge_order)
        merged[w] = Shelf(
            w, first.rating, had.is_read or x.is_read, had.is_reviewed or x.is_reviewed, first.date_added
        )
    return list(merged.values()), cite


def _merge_order(x: Shelf) -> tuple:
    """Which of a work's editions gives its shelf: the highest rating, then the latest date (none: last)."""
    return (x.rating, x.date_added is not None, x.date_added or dt.datetime.min)


def decay(
    dates: list[dt.datetime | None], reference: dt.datetime | None, half_life: float | None
) -> np.ndarray:
    """``0.5 ** (age / half_life)`` per date (``age`` in days before ``reference``, never negative); 1 without a
    date, a reference or a half-life."""
    out = np.ones(len(dates))
    if not half_life or reference is None:
        return out
    for i, d in enumerate(dates):
        if d is not None:
            age = max((reference - d).total_seconds() / 86400.0, 0.0)
            out[i] = 0.5 ** (age / half_life)
    return out


def preference(shelves: list[Shelf], info: ModelInfo, readers: np.ndarray) -> np.ndarray:
    """The ALS preference ``r`` of each shelf, as :func:`recspark.features.preference` computes it in Spark."""
    w = {"shelved": 1.0, "read": 1.0, "rating": 1.0, "reviewed": 0.5, "scheme": "log", "epsilon": 1.0}
    w.update({k: v for k, v in info.weights.items() if v is not None or k == "half_life_days"})
    s = np.array(
        [
            w["shelved"]
            + w["read"] * x.is_read
            + w["rating"] * x.rating / 5.0
            + w["reviewed"] * x.is_reviewed
            for x in shelves
        ],
        dtype=np.float64,
    )
    s = s * decay([x.date_added for x in shelves], info.reference_date, w.get("half_life_days"))
    scheme = w["scheme"]
    if scheme == "binary":
        r = np.ones_like(s)
    elif scheme == "linear":
        r = s
    elif scheme == "log":
        r = np.log1p(s / w["epsilon"])
    elif scheme == "bm25":
        k1, b = w.get("k1", 1.2), w.get("b", 0.75)
        n_b = np.maximum(readers[[x.pos for x in shelves]], 1)
        idf = np.maximum(np.log(info.n_users / n_b), 1e-3)
        norm = k1 * (1 - b + b * len(shelves) / max(info.avg_books, 1e-12))
        r = s * (k1 + 1) / (s + norm) * idf
    else:
        raise ValueError(f"unknown weighting scheme {scheme!r}; choose one of {SCHEMES}")
    return r.astype(np.float32).astype(np.float64)  # Spark stores the preference as a float


def fold_in(
    factors: np.ndarray, yty: np.ndarray, pos: np.ndarray, r: np.ndarray, alpha: float, reg: float
) -> np.ndarray:
    """The implicit-ALS user vector for shelves at ``pos`` with preferences ``r``, item ``factors`` fixed
    (the normal equations of the module docstring, solved by Cholesky in float64)."""
    y = factors[pos].astype(np.float64)
    c1 = alpha * np.abs(r)
    positive = r > 0
    a = yty + (y * c1[:, None]).T @ y + reg * int(positive.sum()) * np.eye(yty.shape[0])
    b = ((1.0 + c1) * positive) @ y
    try:
        low = np.linalg.cholesky(a)  # a is symmetric positive definite whenever reg > 0 or YᵀY has full rank
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(a, b, rcond=None)[0]
    return np.linalg.solve(low.T, np.linalg.solve(low, b))


def shelf_weights(shelves: list[Shelf], info: ModelInfo) -> np.ndarray:
    """Item-CF's weight of each shelf, as :func:`recspark.itemcf.weighted` gives it by the run's
    ``shelf_weights`` and ``half_life_days``: the time decay (1 without one or without a date), times
    ``rating / 5`` where rated (``stars``), times the unread weight where not read (``read``)."""
    parts = set(info.itemcf_shelf_weights.split("+"))
    w = decay([x.date_added for x in shelves], info.reference_date, info.itemcf_half_life_days)
    if "stars" in parts:
        rating = np.array([x.rating for x in shelves], dtype=np.float64)
        w *= np.where(rating > 0, rating / 5.0, 1.0)
    if "read" in parts:
        w *= np.where(np.array([bool(x.is_read) for x in shelves], dtype=bool), 1.0, UNREAD_WEIGHT)
    return w


def content_weights(shelves: list[Shelf], info: ModelInfo) -> np.ndarray:
    """Rating weight (1 unrated, ``(rating - 2.5) / 2.5`` rated) times the content model's time decay."""
    rating = np.array([x.rating for x in shelves], dtype=np.float64)
    w = np.where(rating == 0, 1.0, (rating - 2.5) / 2.5)
    return w * decay([x.date_added for x in shelves], info.reference_date, info.content_half_life_days)


def taste_scores(
    vectors: np.ndarray, popularity: np.ndarray, pos: np.ndarray, w: np.ndarray, prior: float
) -> np.ndarray | None:
    """``cos(taste, v_b) + prior · p_b`` for every book, or None when the shelved books have no vectors."""
    taste = w @ vectors[pos].astype(np.float64)
    norm = float(np.linalg.norm(taste))
    if norm < 1e-12:
        return None
    return vectors @ (taste / norm).astype(np.float32) + np.float32(prior) * popularity


def neighbour_scores(
    indptr: np.ndarray, neighbour: np.ndarray, sim: np.ndarray, pos: np.ndarray, w: np.ndarray, n_books: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``Σ_j w_j · sim(j, b)`` for every book ``b`` from CSR neighbour lists, plus the arrays of each entry's
    candidate and contribution and contributing shelf (for explanations)."""
    at, counts = csr_positions(indptr, pos)
    cand = neighbour[at]
    contrib = sim[at] * np.repeat(w, counts)
    return np.bincount(cand, weights=contrib, minlength=n_books), cand, contrib


def with_prior(
    scores: np.ndarray,
    readers: np.ndarray,
    weight: float,
    liked: np.ndarray | None = None,
    liked_weight: float = 0.0,
) -> np.ndarray:
    """Item-CF's prior (:mod:`recspark.itemcf`, step 5): the positive neighbour sums scaled to a maximum of 1,
    plus ``weight · readers / max readers`` (plus ``liked_weight`` times the book's ``liked`` share, where
    given); a book with neither sums nor readers gets -inf (never recommended)."""
    own = scores > 0
    top = float(readers.max(initial=0.0))
    prior = weight * readers / top if top > 0 else np.zeros(len(scores))
    if liked is not None and liked_weight > 0:
        prior = prior + liked_weight * liked
    blended = np.where(own, scores / scores[own].max(), 0.0) + prior
    return np.where(own | (readers > 0), blended, -np.inf)


def csr_positions(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The positions of CSR ``rows`` (concatenated, in row order) and each row's length."""
    starts = indptr[rows]
    counts = indptr[rows + 1] - starts
    at = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))
    return at, counts


def top_n(scores: np.ndarray, exclude: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` best scores (ties: smaller position), ``exclude`` and non-finite scores left out."""
    scores = np.array(scores, copy=True)  # float32 stays float32: half the memory traffic of a float64 copy
    scores[exclude] = -np.inf
    finite = np.isfinite(scores)
    m = int(finite.sum())
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    n = min(n, m)
    if n < m:
        cut = np.argpartition(-scores, n - 1)[:n]
        threshold = scores[cut].min()
        cut = np.flatnonzero(scores >= threshold)
    else:
        cut = np.flatnonzero(finite)
    order = np.lexsort((cut, -scores[cut]))[:n]
    return cut[order]


def blend_scores(
    sources: dict[str, np.ndarray | None],
    weight: float,
    prior: float,
    liked: np.ndarray,
    exclude: np.ndarray,
    n: int,
) -> np.ndarray:
    """The batch blend (:mod:`recspark.blend`) of one reader over the catalogue: ``-inf`` except on the candidates.

    ``sources`` maps each source (``als``, ``itemcf``, and any other that proposes candidates, e.g. ``content``,
    ``popularity``) to its scores over the catalogue (non-finite: never proposed; None: the source has nothing for
    this reader). A candidate is a book in some source's top ``n`` (``exclude`` left out). ALS's and item-CF's
    values: the score where the source proposed the book, else its lowest proposed score when it proposed ``n``
    books, else 0; divided by the magnitude of its top proposed score (1 when that is 0). Then
    ``(1 - weight) · als + weight · itemcf + prior · liked``. Scores are taken as float32, as the candidate
    table stores them."""
    lists = {
        name: top_n(s.astype(np.float32, copy=False), exclude, n)
        for name, s in sources.items()
        if s is not None
    }
    if not lists:
        return np.full(len(liked), -np.inf)
    cand = np.unique(np.concatenate(list(lists.values())))
    scaled = {}
    for name in ("als", "itemcf"):
        top = lists.get(name)
        if top is None or not len(top):
            scaled[name] = np.zeros(len(cand))  # nothing proposed: 0 for every candidate
            continue
        proposed = sources[name][top].astype(np.float32).astype(np.float64)
        fill = proposed.min() if len(top) >= n else 0.0
        value = np.full(len(cand), fill)
        value[np.searchsorted(cand, top)] = proposed
        size = abs(proposed.max())
        scaled[name] = value / (size if size > 0 else 1.0)
    # in the batch's order of operations, so that the sums agree to the last bit (MMR re-ranks on near ties)
    total = (
        (1.0 - weight) * scaled["als"] + weight * scaled["itemcf"] + prior * liked[cand].astype(np.float64)
    )
    out = np.full(len(liked), -np.inf)
    out[cand] = total
    return out


def closest(vectors: np.ndarray, shelved: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """For each chosen book, the shelved book (position) with the highest cosine of their vectors."""
    a = vectors[shelved].astype(np.float64)
    b = vectors[chosen].astype(np.float64)
    a /= np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b /= np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return shelved[np.argmax(b @ a.T, axis=1)]


def scaled(scores: np.ndarray) -> np.ndarray:
    """Scores divided by their largest absolute finite value (so two models' scores can be added)."""
    top = float(np.max(np.abs(scores[np.isfinite(scores)]), initial=0.0))
    return scores / top if top > 0 and math.isfinite(top) else scores


@dataclass(frozen=True)
class SeriesIndex:
    """The catalogue's series volumes, per position: what :func:`in_series_order` needs (built once per run)."""

    series: np.ndarray  # the book's series (a code), -1 when its title names no volume
    volume: np.ndarray  # its volume number, -1 without one
    names: list[str]  # series code -> name, as the batch's note spells it
    first_volume: np.ndarray  # per series: its smallest volume among the books a list may show
    first_pos: np.ndarray  # per series: the most read such book of that volume (ties: the smaller position)


def series_index(
    series: np.ndarray, volume: np.ndarray, names: list[str], readers: np.ndarray, shown: np.ndarray
) -> SeriesIndex:
    """:class:`SeriesIndex` from each book's series code and volume (-1: none), the readers per book and the
    mask of books a list may show (one edition per work), as :func:`recspark.series.first_volumes` picks."""
    ok = np.flatnonzero((series >= 0) & shown)
    # per series, the smallest volume first, then the most readers, then the smaller position
    order = ok[np.lexsort((ok, -readers[ok], volume[ok], series[ok]))]
    first = order[np.r_[True, series[order][1:] != series[order][:-1]]] if len(order) else order
    first_volume = np.full(len(names), -1, dtype=np.int64)
    first_pos = np.full(len(names), -1, dtype=np.int64)
    first_volume[series[first]] = volume[first]
    first_pos[series[first]] = first
    return SeriesIndex(series, volume, names, first_volume, first_pos)


def in_series_order(
    top: np.ndarray, read: np.ndarray, index: SeriesIndex
) -> list[tuple[int, int, str | None]]:
    """The series step of :func:`recspark.series.in_series_order` on one list: ``(i, position, note)`` per kept
    row, ``i`` the row of ``top`` it came from. A book that is volume ``n > 1`` of a series of which the reader
    (``read``: every shelved edition) has no volume becomes the series' first volume when that is below ``n``,
    with the note ``"next in series: <name> #m"``; a book already listed keeps its first rank only."""
    started = set(index.series[read][index.series[read] >= 0].tolist())
    out: list[tuple[int, int, str | None]] = []
    listed: set[int] = set()
    for i, p in enumerate(top.tolist()):
        s, v, note = int(index.series[p]), int(index.volume[p]), None
        if s >= 0 and v > 1 and s not in started and 0 <= index.first_volume[s] < v:
            p, note = (
                int(index.first_pos[s]),
                f"next in series: {index.names[s]} #{int(index.first_volume[s])}",
            )
        if p not in listed:
            listed.add(p)
            out.append((i, p, note))
    return out
