"""A consumer that needs no Spark: reads the latest published run with ``deltalake`` (delta-rs) into columnar
arrays and answers "top N for user X", "books like Y", and "top N for these shelves" (fold-in at request time).

    python -m recspark.serve --lakehouse data/lakehouse --port 8000
    curl localhost:8000/recommendations/<user_id>?n=10
    curl localhost:8000/similar/<book_id>?n=10
    curl -X POST localhost:8000/recommendations?n=10 -d '{"shelves": [{"book_id": 5, "rating": 4}]}'

Memory: every list is held as numpy arrays with offsets (one sorted key array, one ``int64`` offset per key,
one array per column), titles and authors once per book in Arrow string arrays, so nothing is a Python object
per row: at full Goodreads size (9M recommendation rows, 47M similar-book rows, 2.36M books) that is about
``9M·24 + 47M·16 + 2.36M·(8 + 4·rank + 4·dim)`` bytes plus the strings. Only the latest published run is read
(``run_id`` filter pushed down to delta-rs).

Requests:

* ``GET /recommendations/<user_id>?n=``: the published list, each book with ``because_book_id``,
  ``because_title`` and ``explanation`` ("because you shelved ..." or "next in series: ..."); unknown users get
  the trending books of the recent window interleaved with the all-time popular ones (``cold_start: true``).
* ``POST /recommendations?n=``: body ``{"shelves": [{"book_id", "rating"?, "date_added"?, "is_read"?,
  "is_reviewed"?}, ...], "blend"?}``: a reader folded in from these shelves (:mod:`recspark.foldin`), every
  edition of their works excluded, one edition per work shown (``serving_books.work_book_id``), each book
  explained, with the published family: ALS, item-CF, content, or the blend of ALS and item-CF a ranker run
  published (a learned ranker's run: ALS); a run trained on works merges the reader's editions of one work first,
  as its training did. Known users send their shelves the same way to refresh their list.
  Unknown book ids are ignored and listed in ``unknown_book_ids``; no known shelf -> popular books with
  ``cold_start: true``.
* ``GET /similar/<book_id>?n=``: the published similar books.
* ``GET /health``: the run served and when it was loaded.

Bad requests (malformed JSON, a wrong type, ``n`` outside 1..:data:`MAX_N`, more than :data:`MAX_SHELVES`
shelves, a body over :data:`MAX_BODY` bytes, an unknown path) get a 4xx status and a JSON ``error`` message, never
a traceback. The server never touches the file system on behalf of a request: paths are matched against a fixed
set of routes, so no request can reach another file.

A new published run is picked up by :meth:`Consumer.reload` (every ``--reload-seconds``): the new run is loaded
completely beside the old one and swapped in with one reference assignment; each request reads the reference
once, so it is answered entirely from one run, and no request is dropped during a swap.
"""

from __future__ import annotations

import os

# each request runs on its own thread: one BLAS thread per request, or 8 requests x N BLAS threads thrash the
# cores (bench/serve.py). Set before numpy is first imported (python -m recspark.serve); the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import datetime as dt
import json
import logging
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from recspark import diversity, foldin
from recspark.foldin import ModelInfo, Shelf

log = logging.getLogger(__name__)

MAX_N = 1000  # the largest list a request may ask for
MAX_SHELVES = 10_000  # the most shelves one POST may carry
MAX_BODY = 2_000_000  # bytes
DEFAULT_BLEND = 0.0  # weight of the content taste scores added to ALS / item-CF scores on POST


class BadRequest(ValueError):
    """A request the consumer refuses, with the message the client gets (HTTP 400)."""


@dataclass
class Item:
    book_id: int
    score: float
    title: str | None
    extra: dict

    def as_dict(self) -> dict:
        return {"book_id": self.book_id, "score": self.score, "title": self.title, **self.extra}


class Lists:
    """Ragged lists keyed by a sorted array: rows ``offsets[i]:offsets[i+1]`` of each column belong to
    ``keys[i]``. Built from an Arrow table sorted by ``(key, rank)``."""

    def __init__(self, table: pa.Table, key: str, columns: list[str]):
        table = table.sort_by([(key, "ascending"), ("rank", "ascending")])
        raw = table.column(key).combine_chunks()
        if pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type):
            codes = pc.dictionary_encode(raw)
            self.keys = np.array([k.encode() for k in codes.dictionary.to_pylist()], dtype=bytes)
            idx = codes.indices.to_numpy()
        else:
            values = raw.to_numpy()
            self.keys, idx = np.unique(values, return_inverse=True)
        starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]]) if len(idx) else np.zeros(0, dtype=np.int64)
        self.offsets = np.r_[starts, len(idx)].astype(np.int64)
        self.columns = {c: _numpy(table.column(c)) for c in columns}

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, key) -> slice | None:
        probe = key.encode() if isinstance(key, str) else key
        i = int(np.searchsorted(self.keys, probe))
        if i >= len(self.keys) or self.keys[i] != probe:
            return None
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def first_key(self):
        k = self.keys[0]
        return k.decode() if isinstance(k, bytes) else int(k)

    @property
    def nbytes(self) -> int:
        return self.keys.nbytes + self.offsets.nbytes + sum(v.nbytes for v in self.columns.values())


def _numpy(col: pa.ChunkedArray) -> np.ndarray | pa.Array:
    """A column as numpy (nulls: NaN or -1); strings stay one Arrow array (no Python object per row)."""
    arr = col.combine_chunks()
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return arr
    if pa.types.is_floating(arr.type):
        return arr.fill_null(float("nan")).to_numpy()
    if pa.types.is_integer(arr.type):
        return arr.fill_null(-1).to_numpy()
    return arr.to_numpy(zero_copy_only=False)


def _matrix(col: pa.ChunkedArray) -> np.ndarray | None:
    """A ``list<float>`` column as an ``n × d`` float32 matrix (null rows: zeros), or None when all are null."""
    arr = col.combine_chunks()
    lengths = pc.list_value_length(arr).fill_null(0).to_numpy()
    d = int(lengths.max(initial=0))
    if d == 0:
        return None
    out = np.zeros((len(arr), d), dtype=np.float32)
    full = lengths == d
    values = pc.list_flatten(arr.filter(pa.array(full))).to_numpy(zero_copy_only=False)
    out[full] = values.astype(np.float32).reshape(-1, d)
    return out


class Catalogue:
    """Every book of the run in ``book_id`` order: ids, titles, authors, readers, ALS factors, content vectors."""

    def __init__(self, table: pa.Table):
        table = table.sort_by("book_id")
        self.book_ids = table.column("book_id").combine_chunks().to_numpy()
        self.titles = table.column("title").combine_chunks()
        self.authors = table.column("authors").combine_chunks()
        self.readers = table.column("readers").combine_chunks().fill_null(0).to_numpy().astype(np.float64)
        # readers in what the model learned from (a work-level run: per work, on the edition that stands for it):
        # what its scores count (BM25's idf, the popularity priors); runs before the column: the readers
        self.trained_readers = self.readers
        if "trained_readers" in table.column_names:
            trained = table.column("trained_readers").combine_chunks().fill_null(0).to_numpy()
            if not np.array_equal(trained, self.readers):  # an edition-level run's are its readers: one array
                self.trained_readers = trained.astype(np.float64)
        self.factors = _matrix(table.column("factors"))
        # books with an ALS factor (the rest, e.g. books of the metadata no one shelved, get no fold-in score)
        self.factored = None if self.factors is None else np.any(self.factors != 0, axis=1)
        self.vectors = _matrix(table.column("vector"))
        # the book's liked share (recspark.candidates), published by runs that serve the blend; else None
        self.liked = None
        if "liked_share" in table.column_names and table.column("liked_share").null_count < len(table):
            self.liked = (
                table.column("liked_share").combine_chunks().fill_null(0.0).to_numpy().astype(np.float64)
            )
        top = max(float(self.trained_readers.max(initial=0.0)), 1.0)
        self.popularity = (np.log1p(self.trained_readers) / np.log1p(top)).astype(np.float32)
        # work[p]: the position of the edition that stands for book p's work (runs before works: p itself)
        self.work = np.arange(len(self.book_ids), dtype=np.int64)
        if "work_book_id" in table.column_names:
            stand_for = self.positions(table.column("work_book_id").combine_chunks().fill_null(-1).to_numpy())
            self.work = np.where(stand_for >= 0, stand_for, self.work)
        self.others = np.flatnonzero(self.work != np.arange(len(self.work)))  # editions never shown
        shown = np.ones(len(self.book_ids), dtype=bool)
        shown[self.others] = False
        self.series = series_of_titles(self.titles, self.readers, shown)
        # the books a list may show, most read first (ties: smaller position): the fill of a list that closed up
        ok = np.flatnonzero(shown & (self.readers > 0))
        self.by_readers = ok[np.lexsort((ok, -self.readers[ok]))]
        # popularity as a source of the blend's candidates: its readers, never a book without any
        self.popular_scores = np.where(self.trained_readers > 0, self.trained_readers, -np.inf).astype(
            np.float32
        )

    def same_works(self, at: np.ndarray) -> np.ndarray:
        """Positions of every edition of the works of the books at ``at`` (themselves included)."""
        if not len(self.others):
            return at
        return np.flatnonzero(np.isin(self.work, self.work[at]))

    def __len__(self) -> int:
        return len(self.book_ids)

    def positions(self, book_ids: np.ndarray) -> np.ndarray:
        """Catalogue positions of ``book_ids``; -1 for ids not in the catalogue."""
        i = np.searchsorted(self.book_ids, book_ids)
        i = np.minimum(i, max(len(self.book_ids) - 1, 0))
        ok = (len(self.book_ids) > 0) & (self.book_ids[i] == book_ids)
        return np.where(ok, i, -1)

    def title(self, pos: int) -> str | None:
        return self.titles[pos].as_py()

    def author(self, pos: int) -> str | None:
        return self.authors[pos].as_py()

    @property
    def nbytes(self) -> int:
        arrays = [
            self.book_ids,
            self.readers,
            None if self.trained_readers is self.readers else self.trained_readers,
            self.popularity,
            self.factors,
            self.vectors,
            self.liked,
            self.work,
            self.others,
            self.by_readers,
            self.popular_scores,
            *((self.series.series, self.series.volume) if self.series is not None else ()),
        ]
        return sum(a.nbytes for a in arrays if a is not None) + self.titles.nbytes + self.authors.nbytes


class GoldReader:
    """The latest published run's gold tables, loaded into columnar arrays (see the module docstring)."""

    def __init__(self, lakehouse: str, run_id: str | None = None):
        self.root = lakehouse.rstrip("/")
        t0 = time.perf_counter()
        self.run_id = run_id or latest_published(self.root)
        recs = self._table("user_recommendations")
        self.recs = Lists(
            recs,
            "user_id",
            ["book_id", "score", "because_book_id"]
            + (["predicted_rating"] if "predicted_rating" in recs.column_names else [])
            + (["explanation"] if "explanation" in recs.column_names else []),
        )
        sims = self._table("similar_books")
        if "method" not in sims.column_names:  # runs published before the column existed
            sims = sims.append_column("method", pa.array(["als"] * len(sims)))
        self.similar = Lists(sims, "book_id", ["similar_book_id", "score", "method"])
        pop = self._table("popular_books")
        self.popular = {}  # window -> (book ids, readers) in rank order
        for window in ("all", "recent"):
            rows = pop.filter(pc.equal(pop["window"], window)).sort_by("rank")
            self.popular[window] = (rows.column("book_id").to_numpy(), rows.column("readers").to_numpy())
        self.catalogue: Catalogue | None = None
        self.info: ModelInfo | None = None
        self.yty: np.ndarray | None = None
        if _exists(self._path("serving_books")) and _exists(self._path("serving_model")):
            self.catalogue = Catalogue(self._table("serving_books"))
            self.info, self.yty = _model_info(self._table("serving_model").to_pylist()[0])
            self._similar_csr()
        pa.default_memory_pool().release_unused()  # the Arrow tables read above are gone: return their memory
        self.load_seconds = time.perf_counter() - t0
        self.loaded_at = dt.datetime.now(dt.UTC)

    def _path(self, name: str) -> str:
        return f"{self.root}/gold/{name}"

    def _table(self, name: str) -> pa.Table:
        return DeltaTable(self._path(name)).to_pyarrow_table(filters=[("run_id", "=", self.run_id)])

    def _similar_csr(self) -> None:
        """The item-CF neighbour lists in catalogue positions (CSR), for item-CF fold-in: the run's whole
        neighbour table (``serving_neighbours``) when published, else its similar-books lists."""
        cat = self.catalogue
        lists = self.similar
        if _exists(self._path("serving_neighbours")):
            table = self._table("serving_neighbours")
            if len(table):
                lists = Lists(table, "book_id", ["similar_book_id", "score"])
        src = np.repeat(np.arange(len(lists)), np.diff(lists.offsets))
        a = cat.positions(lists.keys[src] if len(src) else np.zeros(0, dtype=np.int64))
        b = cat.positions(lists.columns["similar_book_id"])
        ok = (a >= 0) & (b >= 0)
        a, b, s = a[ok], b[ok], lists.columns["score"][ok].astype(np.float64)
        order = np.argsort(a, kind="stable")
        self.sim_indptr = np.r_[0, np.cumsum(np.bincount(a, minlength=len(cat)))].astype(np.int64)
        self.sim_neighbour, self.sim_score = b[order], s[order]

    @property
    def nbytes(self) -> int:
        out = (
            self.recs.nbytes
            + self.similar.nbytes
            + sum(a.nbytes + b.nbytes for a, b in self.popular.values())
        )
        if self.catalogue is not None:
            out += (
                self.catalogue.nbytes
                + self.sim_indptr.nbytes
                + self.sim_neighbour.nbytes
                + self.sim_score.nbytes
            )
        return out

    # -- answers ---------------------------------------------------------------------------------------------
    def _book(self, book_id: int, score: float, **extra) -> Item:
        title = None
        if self.catalogue is not None:
            pos = int(self.catalogue.positions(np.array([book_id]))[0])
            if pos >= 0:
                title = self.catalogue.title(pos)
                extra.setdefault("authors", self.catalogue.author(pos))
        return Item(int(book_id), float(score), title, extra)

    def _title(self, book_id: int | None) -> str | None:
        if book_id is None or self.catalogue is None:
            return None
        pos = int(self.catalogue.positions(np.array([book_id]))[0])
        return self.catalogue.title(pos) if pos >= 0 else None

    def popular_items(self, n: int, exclude: set[int] = frozenset()) -> list[Item]:
        """The cold-start list: the recent-window trending books interleaved with the all-time popular ones
        (trending first, each book once, ``exclude`` left out); all-time only when the data has no dates."""
        streams = [(w, *self.popular[w]) for w in ("recent", "all") if len(self.popular[w][0])]
        out: list[Item] = []
        taken = set(exclude)
        cursors = [0] * len(streams)
        while len(out) < n and any(c < len(s[1]) for c, s in zip(cursors, streams)):
            for j, (window, ids, readers) in enumerate(streams):
                while cursors[j] < len(ids) and int(ids[cursors[j]]) in taken:
                    cursors[j] += 1
                if cursors[j] < len(ids) and len(out) < n:
                    i = cursors[j]
                    taken.add(int(ids[i]))
                    out.append(
                        self._book(int(ids[i]), float(readers[i]), because_book_id=None, source=window)
                    )
                    cursors[j] += 1
        return out

    def recommend(self, user_id: str, n: int = 10) -> tuple[list[Item], bool]:
        """(items, cold_start) from the published lists."""
        where = self.recs.find(user_id)
        if where is None:
            return self.popular_items(n), True
        cols = self.recs.columns
        out = []
        for i in range(where.start, min(where.stop, where.start + n)):
            because = None if cols["because_book_id"][i] < 0 else int(cols["because_book_id"][i])
            extra = {"because_book_id": because, "because_title": self._title(because)}
            if "predicted_rating" in cols:
                v = cols["predicted_rating"][i]
                extra["predicted_rating"] = None if np.isnan(v) else float(v)
            if "explanation" in cols:
                extra["explanation"] = cols["explanation"][i].as_py()
            out.append(self._book(int(cols["book_id"][i]), float(cols["score"][i]), **extra))
        return out, False

    def similar_to(self, book_id: int, n: int = 10) -> list[Item]:
        where = self.similar.find(book_id)
        if where is None:
            return []
        cols = self.similar.columns
        return [
            self._book(
                int(cols["similar_book_id"][i]), float(cols["score"][i]), method=cols["method"][i].as_py()
            )
            for i in range(where.start, min(where.stop, where.start + n))
        ]

    def fold_in(self, shelves: list[dict], n: int = 10, blend: float = DEFAULT_BLEND) -> dict:
        """Top ``n`` for a reader with these shelves (validated dicts), folded in with the run's model."""
        if self.catalogue is None or self.info is None:
            raise BadRequest(f"run {self.run_id} has no serving model; publish it again with this version")
        cat, info = self.catalogue, self.info
        ids = np.array([s["book_id"] for s in shelves], dtype=np.int64)
        pos = cat.positions(ids)
        unknown = sorted({int(b) for b, p in zip(ids, pos) if p < 0})
        known = [(int(p), s) for p, s in zip(pos, shelves) if p >= 0]
        seen: dict[int, Shelf] = {}
        for p, s in known:  # one shelf per book: the last one sent wins
            seen[p] = Shelf(
                p,
                int(s.get("rating") or 0),
                bool(s.get("is_read", (s.get("rating") or 0) > 0)),
                bool(s.get("is_reviewed", False)),
                s.get("date_added"),
            )
        if not seen:
            return {
                "cold_start": True,
                "unknown_book_ids": unknown,
                "items": [i.as_dict() for i in self.popular_items(n)],
            }
        items = list(seen.values())
        cite: dict[int, int] = {}  # a work-level run: the shelved edition each work's shelf is cited by
        if info.item_level == "work":  # one shelf per work, as the model learned them
            items, cite = foldin.per_work(items, cat.work)
        at = np.array([x.pos for x in items], dtype=np.int64)
        read = cat.same_works(at)  # every edition of every shelved work
        rows: list[tuple[int, float, int, str | None]] = []
        if info.model != "popularity":  # a popularity run's lists are the fill alone, as in the batch
            exclude = np.concatenate([read, cat.others])  # positions no list may show
            scores, explain = self._scores(items, at, info, blend, exclude)
            if scores is None:  # no shelf the model knows: the popular books the reader has not shelved
                picked = self.popular_items(n, exclude={int(cat.book_ids[p]) for p in read})
                return {
                    "cold_start": False,
                    "unknown_book_ids": unknown,
                    "items": [i.as_dict() for i in picked],
                }
            rows = [
                (p, sc, cite.get(b, b), note)
                for p, sc, b, note in self._model_rows(scores, explain, read, exclude, info, n)
            ]
        rows += self._popular_fill(rows, read, n)
        out = []
        for p, score, b, note in rows:
            title = cat.title(b) if b >= 0 else None
            reason = note or (f"because you shelved {title or cat.book_ids[b]}" if b >= 0 else None)
            out.append(
                self._book(
                    int(cat.book_ids[p]),
                    score,
                    because_book_id=int(cat.book_ids[b]) if b >= 0 else None,
                    because_title=title,
                    explanation=reason,
                )
            )
        return {"cold_start": False, "unknown_book_ids": unknown, "items": [i.as_dict() for i in out]}

    def _model_rows(
        self, scores: np.ndarray, explain, read: np.ndarray, exclude: np.ndarray, info: ModelInfo, n: int
    ) -> list[tuple]:
        """``(position, score, cited shelf or -1, series note)`` of the model's top ``n`` outside ``exclude`` (every
        edition of the shelved works ``read``, and the editions never shown), as the batch makes its lists:
        re-ranked by MMR when the run was published with ``--diversity`` (its best ``DEPTH · n`` over ALS factors,
        else content vectors), then the series step."""
        cat = self.catalogue
        als_space = info.model in ("als", "ranker") and cat.factors is not None
        space = cat.factors if als_space else cat.vectors
        mmr = info.diversity > 0 and space is not None
        top = foldin.top_n(scores, exclude, diversity.DEPTH * n if mmr else n)
        because = np.asarray(explain(top))
        if mmr:
            relevance = diversity.relevance(scores[top].astype(np.float32))
            picked = diversity.mmr_order(relevance, diversity.unit_rows(space[top]), n, info.diversity)
            top, because = top[picked], because[picked]
        return [
            (p, float(scores[top[i]]), int(because[i]), note)
            for i, p, note in self._in_series_order(top, read)
        ]

    def _popular_fill(self, rows: list[tuple], read: np.ndarray, n: int) -> list[tuple]:
        """The rows that complete a list shorter than ``n``, as publishing fills it: the most read books the reader
        has not shelved (two lists deep, in series order) that are not listed yet, score 0 and no reason."""
        if len(rows) >= n:
            return []
        cat = self.catalogue
        listed = {p for p, *_ in rows}
        head = cat.by_readers[: 2 * n + len(read)]  # the shelved books take at most len(read) places of it
        popular = head[~np.isin(head, read)][: 2 * n]
        fill = [p for _, p, _ in self._in_series_order(popular, read) if p not in listed]
        return [(p, 0.0, -1, None) for p in fill[: n - len(rows)]]

    def _in_series_order(self, top: np.ndarray, read: np.ndarray) -> list[tuple[int, int, str | None]]:
        """:func:`recspark.foldin.in_series_order` on ``top``; every row as it is when no title names a volume or
        the run publishes without the series step (``ModelInfo.series_order``)."""
        if self.catalogue.series is None or (self.info is not None and not self.info.series_order):
            return [(i, int(p), None) for i, p in enumerate(top.tolist())]
        return foldin.in_series_order(top, read, self.catalogue.series)

    def _scores(self, items: list[Shelf], at: np.ndarray, info: ModelInfo, blend: float, exclude: np.ndarray):
        """``(scores over the catalogue, explain(positions) -> shelved positions)``; scores None when the model knows
        none of the shelves. ``exclude``: the positions no list may show (the blend picks its candidates without
        them)."""
        cat = self.catalogue
        taste = None
        serves_blend = self._serves_blend(info)
        wants_taste = info.model == "content" or blend > 0 or serves_blend
        if cat.vectors is not None and wants_taste:
            w = foldin.content_weights(items, info)
            taste = foldin.taste_scores(cat.vectors, cat.popularity, at, w, info.content_popularity_weight)
        if info.model == "content":
            if taste is None:
                return None, None
            return taste, lambda top: foldin.closest(cat.vectors, at, top)
        if serves_blend:  # the batch blend's candidates and formula (recspark.blend)
            als_scores, als_explain = self._als_scores(items, at, info)
            itemcf_scores, itemcf_explain = self._itemcf_scores(items, at, info, exclude)
            sources = {
                "als": als_scores,
                "itemcf": itemcf_scores,
                "content": taste,
                "popularity": cat.popular_scores,
            }
            scores = foldin.blend_scores(
                sources, info.blend_weight, info.blend_prior, cat.liked, exclude, info.blend_candidates
            )
            explain = als_explain or itemcf_explain  # the batch explains a ranker run's lists by ALS
            if explain is None:
                explain = lambda top: np.full(len(top), -1, dtype=np.int64)  # noqa: E731
        elif info.model in ("als", "ranker") and cat.factors is not None:  # a learned ranker's run: ALS
            scores, explain = self._als_scores(items, at, info)
        elif info.model == "itemcf" and len(self.sim_neighbour):
            scores, explain = self._itemcf_scores(items, at, info, exclude)
        else:
            return None, None
        if scores is None:
            return None, None
        if taste is not None and blend > 0:
            scores = foldin.scaled(scores) + blend * foldin.scaled(taste)
        return scores, explain

    def _serves_blend(self, info: ModelInfo) -> bool:
        """Whether a request folds in with the blend: a ranker run that published it, with what it needs."""
        cat = self.catalogue
        return (
            info.model == "ranker"
            and info.blend_weight is not None
            and cat.factors is not None
            and cat.liked is not None
            and len(self.sim_neighbour) > 0
        )

    def _als_scores(self, items: list[Shelf], at: np.ndarray, info: ModelInfo):
        """ALS fold-in: ``(scores, explain)``, ``(None, None)`` when no shelved book has a factor."""
        cat = self.catalogue
        fitted = cat.factored[at]  # shelves of books without a factor count for nothing, as in ALS's fit
        if not fitted.any():
            return None, None
        r = foldin.preference(items, info, cat.trained_readers)
        x = foldin.fold_in(cat.factors, self.yty, at[fitted], r[fitted], info.alpha, info.reg)
        scores = np.where(cat.factored, cat.factors @ x.astype(np.float32), -np.inf)
        return scores, lambda top: foldin.closest(cat.factors, at[fitted], top)

    def _itemcf_scores(self, items: list[Shelf], at: np.ndarray, info: ModelInfo, exclude: np.ndarray):
        """Item-CF's neighbour sums of the shelves ``items`` at ``at``, each weighted as the run weighed them
        (:func:`recspark.foldin.shelf_weights`; with its popularity prior, and an item-CF run's liked-share prior,
        when the run has them): ``(scores, explain)``, ``(None, None)`` when no shelved book has a neighbour. The
        books at ``exclude`` (shelved works, editions never shown) score nothing, as in the batch kernel, so the
        prior's scaling to 1 is over the books a list may show."""
        cat = self.catalogue
        w = foldin.shelf_weights(items, info)
        scores, cand, contrib = foldin.neighbour_scores(
            self.sim_indptr, self.sim_neighbour, self.sim_score, at, w, len(cat)
        )
        scores[exclude] = 0.0
        if not (scores > 0).any():
            return None, None
        own = scores > 0
        # the prior (recspark.itemcf)
        # item-CF's own liked-share prior: its lists only (a ranker run's candidates go without it, as in the
        # batch: recspark.twostage.source_lists); none where no shares were published
        liked = info.itemcf_liked_weight if info.model == "itemcf" and cat.liked is not None else 0.0
        if info.model in ("itemcf", "ranker") and (info.itemcf_popularity_weight > 0 or liked > 0):
            scores = foldin.with_prior(
                scores, cat.trained_readers, info.itemcf_popularity_weight, cat.liked, liked
            )
        else:
            scores = np.where(own, scores, -np.inf)
        seeds = np.repeat(at, np.diff(self.sim_indptr)[at])

        def explain(top):
            out = np.full(len(top), -1, dtype=np.int64)  # -1: picked by the prior alone
            for i, p in enumerate(top):
                m = cand == p
                if own[p]:  # a positive sum always has a contribution
                    out[i] = seeds[m][np.argmax(contrib[m])]
            return out

        return scores, explain


def series_of_titles(titles: pa.Array, readers: np.ndarray, shown: np.ndarray) -> foldin.SeriesIndex | None:
    """The catalogue's series volumes from its titles (``"… (<series>, #<n>)"``, :mod:`recspark.series`), parsed
    by Arrow in one pass; None when no title names a volume."""
    found = pc.extract_regex(titles, foldin.SERIES_PATTERN)  # null where a title names no volume
    names = pc.utf8_trim_whitespace(pc.struct_field(found, "name"))
    named = (
        pc.and_kleene(pc.is_valid(names), pc.not_equal(names, ""))
        .fill_null(False)
        .to_numpy(zero_copy_only=False)
    )
    if not named.any():
        return None
    codes = pc.dictionary_encode(pc.if_else(named, names, None))
    series = codes.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    volume = pc.cast(pc.if_else(named, pc.struct_field(found, "volume"), None), pa.int64())
    volume = volume.fill_null(-1).to_numpy(zero_copy_only=False)
    return foldin.series_index(series, volume, codes.dictionary.to_pylist(), readers, shown)


def _exists(path: str) -> bool:
    try:
        DeltaTable(path)
    except Exception:  # deltalake raises TableNotFoundError (a subclass of its own base) for a missing table
        return False
    return True


def _model_info(row: dict) -> tuple[ModelInfo, np.ndarray | None]:
    content = json.loads(row["content"] or "{}")
    itemcf = json.loads(row.get("itemcf") or "{}")  # absent in runs published before the column
    blend = json.loads(row.get("blend") or "{}")  # the blend a ranker run publishes; absent: none served
    yty = None
    if row["yty"] is not None:
        flat = np.asarray(row["yty"], dtype=np.float64)
        rank = int(round(len(flat) ** 0.5))
        yty = flat.reshape(rank, rank)
    ref = row["reference_date"]
    info = ModelInfo(
        model=row["model"],
        alpha=row["alpha"] if row["alpha"] is not None else 0.0,
        reg=row["reg"] if row["reg"] is not None else 0.0,
        weights=json.loads(row["weights"] or "{}"),
        reference_date=ref.replace(tzinfo=None) if ref is not None else None,
        n_users=int(row["n_users"]),
        avg_books=float(row["avg_books"]),
        content_half_life_days=content.get("half_life_days"),
        content_popularity_weight=float(content.get("popularity_weight", 1.0)),
        itemcf_popularity_weight=float(itemcf.get("popularity_weight", 0.0)),
        itemcf_liked_weight=float(itemcf.get("liked_weight", 0.0)),  # absent in runs before the liked prior
        itemcf_shelf_weights=itemcf.get("shelf_weights") or "binary",  # absent in runs before star weights
        itemcf_half_life_days=itemcf.get("half_life_days"),
        blend_weight=blend.get("weight"),
        blend_prior=float(blend.get("prior", 0.0)),
        blend_candidates=int(blend.get("candidates", 0)),
        diversity=float(row.get("diversity") or 0.0),  # absent in runs published before the column
        item_level=row.get("item_level") or "edition",  # absent in runs published before the column
        series_order=row.get("series_order") is not False,  # absent (None) in runs before the column: on
    )
    return info, yty


def latest_published(root: str) -> str:
    runs = DeltaTable(f"{root}/gold/runs").to_pyarrow_table().to_pylist()
    published = [r for r in runs if r["status"] == "published"]
    if not published:
        raise LookupError(f"no published run in {root}")
    return max(published, key=lambda r: r["finished_at"])["run_id"]


class Consumer:
    """Holds the served :class:`GoldReader` and swaps in a newer published run atomically."""

    def __init__(self, lakehouse: str, run_id: str | None = None):
        self.lakehouse = lakehouse
        self.reader = GoldReader(lakehouse, run_id)  # run_id: serve that run first (default: the latest)
        self._lock = threading.Lock()

    def reload(self) -> bool:
        """Load the latest published run if it is not the one served; True when a new run was swapped in."""
        with self._lock:
            latest = latest_published(self.reader.root)
            if latest == self.reader.run_id:
                return False
            fresh = GoldReader(self.lakehouse, latest)  # loaded completely before anyone sees it
            self.reader = fresh
            log.info("now serving run %s (loaded in %.2f s)", fresh.run_id, fresh.load_seconds)
            return True

    def watch(self, every_s: float) -> threading.Thread:
        def loop() -> None:
            while True:
                time.sleep(every_s)
                try:
                    self.reload()
                except Exception as exc:  # a broken new run must not stop the old one being served
                    log.warning("reload failed, still serving %s: %s", self.reader.run_id, exc)

        t = threading.Thread(target=loop, daemon=True, name="gold-reload")
        t.start()
        return t


# -- request parsing -------------------------------------------------------------------------------------------
def parse_n(query: str) -> int:
    """``n`` of a query string: a whole number in 1..MAX_N (default 10); ValueError with the reason otherwise."""
    raw = parse_qs(query).get("n", ["10"])[0]
    try:
        n = int(raw)
    except ValueError:
        raise BadRequest(f"n must be a whole number, not {raw!r}") from None
    if not 1 <= n <= MAX_N:
        raise BadRequest(f"n must be between 1 and {MAX_N}, not {n}")
    return n


def _date(value, i: int) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"shelves[{i}].date_added must be an ISO date string, not {value!r}")
    try:
        d = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"shelves[{i}].date_added is not an ISO date: {value!r}") from None
    return d.astimezone(dt.UTC).replace(tzinfo=None) if d.tzinfo else d


def parse_body(raw: bytes) -> tuple[list[dict], float]:
    """The shelves and blend weight of a POST body; BadRequest with the reason otherwise."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("shelves"), list):
        raise BadRequest('the body must be a JSON object with a "shelves" list')
    shelves = body["shelves"]
    if len(shelves) > MAX_SHELVES:
        raise BadRequest(f"at most {MAX_SHELVES} shelves per request, not {len(shelves)}")
    out = []
    for i, s in enumerate(shelves):
        if not isinstance(s, dict):
            raise BadRequest(f"shelves[{i}] must be an object with a book_id")
        book = s.get("book_id")
        if isinstance(book, bool) or not isinstance(book, int):
            raise BadRequest(f"shelves[{i}].book_id must be an integer, not {book!r}")
        rating = s.get("rating", 0)
        if rating is None:
            rating = 0
        if isinstance(rating, bool) or not isinstance(rating, int) or not 0 <= rating <= 5:
            raise BadRequest(f"shelves[{i}].rating must be a whole number 0..5 (0: unrated), not {rating!r}")
        shelf = {"book_id": book, "rating": rating, "date_added": _date(s.get("date_added"), i)}
        for flag in ("is_read", "is_reviewed"):
            if flag in s:
                if not isinstance(s[flag], bool):
                    raise BadRequest(f"shelves[{i}].{flag} must be true or false, not {s[flag]!r}")
                shelf[flag] = s[flag]
        out.append(shelf)
    blend = body.get("blend", DEFAULT_BLEND)
    if isinstance(blend, bool) or not isinstance(blend, int | float) or not 0 <= blend <= 10:
        raise BadRequest(f"blend must be a number between 0 and 10, not {blend!r}")
    return out, float(blend)


def make_handler(consumer: Consumer | GoldReader):
    get_reader = (lambda: consumer.reader) if isinstance(consumer, Consumer) else (lambda: consumer)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive connections
        disable_nagle_algorithm = True  # headers and body go out at once (no 40 ms delayed-ACK stall)

        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            self._answer(self._get)

        def do_POST(self) -> None:  # noqa: N802
            self._answer(self._post)

        def _answer(self, route) -> None:
            reader = get_reader()  # one run per request, whatever a reload does meanwhile
            t0 = time.perf_counter()
            try:
                status, body = route(reader, urlparse(self.path))
            except BadRequest as exc:
                status, body = 400, {"error": str(exc)}
            except Exception:  # never a traceback to the client; the log keeps it
                log.exception("request failed: %s %s", self.command, self.path)
                status, body = 500, {"error": "internal error; see the server log"}
            if status == 200:
                body["run_id"] = reader.run_id
                body["millis"] = round((time.perf_counter() - t0) * 1000, 3)
            self._json(status, body)

        def _get(self, reader: GoldReader, url) -> tuple[int, dict]:
            parts = [p for p in url.path.split("/") if p]
            if parts == ["health"]:
                return 200, {"loaded_at": reader.loaded_at.isoformat(), "load_seconds": reader.load_seconds}
            n = parse_n(url.query)
            if len(parts) == 2 and parts[0] == "recommendations":
                items, cold = reader.recommend(parts[1], n)
                return 200, {"user_id": parts[1], "cold_start": cold, "items": [i.as_dict() for i in items]}
            if len(parts) == 2 and parts[0] == "similar" and parts[1].isdigit():
                items = reader.similar_to(int(parts[1]), n)
                return 200, {"book_id": int(parts[1]), "items": [i.as_dict() for i in items]}
            return 404, {"error": "use GET /recommendations/<user_id>, /similar/<book_id> or /health"}

        def _post(self, reader: GoldReader, url) -> tuple[int, dict]:
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self.close_connection = True
                return 411, {"error": "a POST needs a Content-Length header"}
            if int(length) > MAX_BODY:
                self.close_connection = True  # the body is not read: the connection cannot be reused
                return 413, {"error": f"the body is {int(length):,} bytes; at most {MAX_BODY:,} are accepted"}
            raw = self.rfile.read(int(length))
            if [p for p in url.path.split("/") if p] != ["recommendations"]:
                return 404, {"error": "use POST /recommendations with a JSON body of shelves"}
            n = parse_n(url.query)
            shelves, blend = parse_body(raw)
            return 200, reader.fold_in(shelves, n, blend)

        def _json(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt: str, *args) -> None:
            log.debug(fmt, *args)

    return Handler


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="serve recommendations from the latest published run (no Spark)")
    p.add_argument("--lakehouse", default="data/lakehouse")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--reload-seconds", type=float, default=60.0, help="how often to look for a newer run")
    args = p.parse_args(argv)
    consumer = Consumer(args.lakehouse)
    r = consumer.reader
    print(
        f"run {r.run_id}: {len(r.recs):,} users, {len(r.similar):,} books with similar lists, "
        f"{0 if r.catalogue is None else len(r.catalogue):,} books for fold-in; "
        f"loaded in {r.load_seconds:.2f} s ({r.nbytes / 2**20:.0f} MiB of arrays)"
    )
    print(
        f"listening on http://{args.host}:{args.port}: GET /recommendations/<user_id>, /similar/<book_id>; "
        "POST /recommendations"
    )
    consumer.watch(args.reload_seconds)
    ThreadingHTTPServer((args.host, args.port), make_handler(consumer)).serve_forever()


if __name__ == "__main__":
    main()
