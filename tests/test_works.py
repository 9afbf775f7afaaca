"""Editions and works, and series order, on hand-made frames with hand-computed answers; plus the exact top-K
with work-level exclusion against a brute-force oracle."""

from __future__ import annotations

import numpy as np
from chispa import assert_df_equality

from recspark import columns as C
from recspark import series, topk
from recspark.works import Works

BOOKS_SCHEMA = "book_idx int, work_id long, title string"
SHELF_SCHEMA = "user_idx int, book_idx int"


def catalogue(spark):
    # work 100: books 0, 1, 2 (1 is the most read); work 200: books 3, 4 (tied readers: 3, the smaller);
    # book 5 has no work id (its own work); work 300: book 6 alone
    books = spark.createDataFrame(
        [
            (0, 100, "a"),
            (1, 100, "a"),
            (2, 100, "a"),
            (3, 200, "b"),
            (4, 200, "b"),
            (5, None, "c"),
            (6, 300, "d"),
        ],
        BOOKS_SCHEMA,
    )
    # readers: book 1 x3, book 0 x1, book 3 x1, book 4 x1, book 5 x1, book 6 x2
    shelves = spark.createDataFrame(
        [(10, 1), (11, 1), (12, 1), (10, 0), (11, 3), (12, 4), (13, 5), (13, 6), (14, 6)], SHELF_SCHEMA
    )
    return books, shelves


def test_representatives_seen_and_own_work(spark):
    books, shelves = catalogue(spark)
    works = Works.of(books, shelves)
    assert works is not None and (works.n_books, works.n_works) == (7, 4)
    table = {r[C.BOOK_IDX]: r[C.WORK_IDX] for r in works.table.collect()}
    assert table == {0: 1, 1: 1, 2: 1, 3: 3, 4: 3, 5: 5, 6: 6}
    assert sorted(r[0] for r in works.representatives().collect()) == [1, 3, 5, 6]
    items = spark.createDataFrame([(b,) for b in range(8)], "book_idx int")  # 7: a book outside the map
    assert sorted(r[0] for r in works.candidates(items).collect()) == [1, 3, 5, 6, 7]
    # user 12 shelved 1 (work 100) and 4 (work 200): every edition of both works is seen
    seen = works.seen(shelves.where("user_idx = 12"))
    assert sorted(r[C.BOOK_IDX] for r in seen.collect()) == [0, 1, 2, 3, 4]
    own = works.own_work(spark.createDataFrame([(2,), (5,)], "book_idx int"))
    assert sorted((r[C.USER_IDX], r[C.BOOK_IDX]) for r in own.collect()) == [(2, 0), (2, 1), (2, 2), (5, 5)]
    works.release()


def test_no_work_with_two_editions_means_nothing_to_do(spark):
    books = spark.createDataFrame([(0, 1, "a"), (1, 2, "b"), (2, None, "c")], BOOKS_SCHEMA)
    shelves = spark.createDataFrame([(10, 0)], SHELF_SCHEMA)
    assert Works.of(books, shelves) is None
    assert Works.of(books.drop(C.WORK_ID), shelves) is None


def test_to_works_merges_editions_of_one_work(spark):
    books, shelves = catalogue(spark)
    works = Works.of(books, shelves)
    inter = spark.createDataFrame(
        [(10, 0, False, 5, "d1", None), (10, 2, True, 3, "d2", "2020-01-02"), (10, 6, True, 0, "d3", None)],
        "user_idx int, book_idx int, is_read boolean, rating int, date_added string, read_at string",
    )
    out = works.to_works(inter)
    expected = spark.createDataFrame(
        # books 0 and 2 are work 100 -> its representative 1: the 5-star row, read (book 2 was), read_at kept
        [(10, 1, True, 5, "d1", "2020-01-02"), (10, 6, True, 0, "d3", None)],
        "user_idx int, book_idx int, is_read boolean, rating int, date_added string, read_at string",
    )
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)
    # work-level view of a list: books 0 and 2 are one work (best rank kept), 3 -> 3
    recs = spark.createDataFrame(
        [(10, 1, 0, 0.9), (10, 2, 2, 0.8), (10, 3, 4, 0.7)],
        "user_idx int, rank int, book_idx int, score double",
    )
    lvl = sorted((r[C.RANK], r[C.BOOK_IDX]) for r in works.to_work_level(recs).collect())
    assert lvl == [(1, 1), (3, 3)]
    works.release()


def test_the_consumers_merge_per_work_is_to_works(spark):
    """``foldin.per_work`` (the consumer's fold-in of a work-level run) merges a reader's editions as
    ``Works.to_works`` merges them for training: hand-computed, then against Spark on the same shelves (book
    index = catalogue position here). Reader 10: books 0 and 2 of work 100, 5 stars beats 3 stars, read and
    reviewed from either; reader 11: books 0 and 1 at equal ratings, the later date wins, a missing date loses;
    reader 12: two editions of work 200 at equal rating and date. Cited: the reader's edition in the first
    position."""
    import datetime as dt

    from recspark import foldin
    from recspark.foldin import Shelf

    books, shelves = catalogue(spark)
    works = Works.of(books, shelves)
    d = dt.datetime
    rows = [
        (10, 0, False, False, 5, d(2020, 1, 1)),
        (10, 2, True, False, 3, d(2021, 1, 1)),
        (10, 6, False, True, 0, None),
        (11, 0, False, False, 4, None),
        (11, 1, True, False, 4, d(2019, 5, 5)),
        (11, 2, False, True, 4, d(2018, 5, 5)),
        (12, 4, False, False, 2, d(2020, 2, 2)),
        (12, 3, True, False, 2, d(2020, 2, 2)),
    ]
    inter = spark.createDataFrame(
        rows,
        "user_idx int, book_idx int, is_read boolean, is_reviewed boolean, rating int, date_added timestamp",
    )
    trained = {
        (r.user_idx, r.book_idx): (r.rating, r.is_read, r.is_reviewed, r.date_added)
        for r in works.to_works(inter).collect()
    }
    work = np.array([r[C.WORK_IDX] for r in sorted(works.table.collect(), key=lambda r: r[C.BOOK_IDX])])
    assert work.tolist() == [1, 1, 1, 3, 3, 5, 6]
    folded, cited = {}, {}
    for user in (10, 11, 12):
        mine = [
            Shelf(b, rating, read, reviewed, date) for u, b, read, reviewed, rating, date in rows if u == user
        ]
        merged, cite = foldin.per_work(mine, work)
        folded.update({(user, x.pos): (x.rating, x.is_read, x.is_reviewed, x.date_added) for x in merged})
        cited.update({(user, w): e for w, e in cite.items()})
    assert folded == {
        (10, 1): (5, True, False, d(2020, 1, 1)),
        (10, 6): (0, False, True, None),
        (11, 1): (4, True, True, d(2019, 5, 5)),
        (12, 3): (2, True, False, d(2020, 2, 2)),
    }
    assert folded == trained
    assert cited == {(10, 1): 0, (10, 6): 6, (11, 1): 0, (12, 3): 3}
    works.release()


def test_topk_with_work_exclusion_matches_brute_force(spark):
    rng = np.random.default_rng(3)
    n_books, n_users, k = 40, 6, 5
    work_of = rng.integers(0, 15, n_books)  # ~2.7 editions per work
    books = spark.createDataFrame([(b, int(work_of[b]), "t") for b in range(n_books)], BOOKS_SCHEMA)
    shelf_rows = [(u, int(b)) for u in range(n_users) for b in rng.choice(n_books, 4, replace=False)]
    shelves = spark.createDataFrame(shelf_rows, SHELF_SCHEMA)
    works = Works.of(books, shelves)
    users = rng.normal(size=(n_users, 4)).astype(np.float32)
    items = rng.normal(size=(n_books, 4)).astype(np.float32)
    ufs = spark.createDataFrame(
        [(u, users[u].tolist()) for u in range(n_users)], "user_idx int, features array<float>"
    )
    ifs = spark.createDataFrame(
        [(b, items[b].tolist()) for b in range(n_books)], "book_idx int, features array<float>"
    )
    got = topk.recommend(spark, ufs, works.candidates(ifs), k, seen=works.seen(shelves)).collect()
    rep = {r[C.BOOK_IDX]: r[C.WORK_IDX] for r in works.table.collect()}
    for u in range(n_users):
        read_works = {rep[b] for uu, b in shelf_rows if uu == u}
        allowed = [b for b in range(n_books) if rep[b] == b and rep[b] not in read_works]
        scores = items[allowed] @ users[u]
        want = [allowed[i] for i in np.lexsort((allowed, -scores))[:k]]
        mine = [
            r[C.BOOK_IDX] for r in sorted((r for r in got if r[C.USER_IDX] == u), key=lambda r: r[C.RANK])
        ]
        assert mine == want
        assert len({rep[b] for b in mine}) == len(mine)  # one edition per work
    works.release()


def series_case(spark):
    """Dune #1-#3 (and a second, less read edition of #1), Emma, the Hobbit and the Two Towers, a #1.5; five
    readers' shelves and lists: ``(books, shelves, recs)``."""
    books = spark.createDataFrame(
        [
            (0, 1, "Dune (Dune Chronicles, #1)"),
            (1, 2, "Dune Messiah (Dune Chronicles, #2)"),
            (2, 3, "Children of Dune (Dune Chronicles, #3)"),
            (3, 4, "Emma"),
            (4, 5, "The Hobbit (Middle-earth, #1)"),
            (5, 6, "The Two Towers (Middle-earth, #2)"),
            (6, 7, "Tales (Middle-earth, #1.5)"),
            (7, 1, "Dune (Dune Chronicles, #1)"),  # a second edition of Dune, less read
        ],
        BOOKS_SCHEMA,
    )
    # user 1 read nothing of Dune: #3 -> #1 (book 0, the most read edition), #2 -> #1 again (closes up)
    # user 2 read Dune #1 (edition 7): started the series, #3 stands (the gap at #2 is the reader's choice);
    # user 3 read the Hobbit: the Two Towers stands; user 4 read Children of Dune (#3), nothing before #2, but
    # has started the series: #2 stands; user 5 read nothing of Dune: #2 -> #1 (book 0)
    shelves = spark.createDataFrame([(1, 3), (2, 7), (3, 4), (4, 2), (9, 0), (8, 0)], SHELF_SCHEMA)
    recs = spark.createDataFrame(
        [
            (1, 1, 2, 0.9),
            (1, 2, 3, 0.8),
            (1, 3, 1, 0.7),
            (1, 4, 6, 0.6),
            (2, 1, 2, 0.9),
            (3, 1, 5, 0.9),
            (4, 1, 1, 0.9),
            (5, 1, 1, 0.9),
        ],
        "user_idx int, rank int, book_idx int, score double",
    )
    return books, shelves, recs


def test_series_order_by_hand(spark):
    books, shelves, recs = series_case(spark)
    works = Works.of(books, shelves)
    out = series.in_series_order(recs, shelves, books, works)
    got = sorted((r[C.USER_IDX], r[C.RANK], r[C.BOOK_IDX], r[C.SERIES_NOTE]) for r in out.collect())
    assert got == [
        (1, 1, 0, "next in series: Dune Chronicles #1"),
        (1, 2, 3, None),
        (1, 3, 6, None),  # #1.5 is not a volume in the order
        (2, 1, 2, None),
        (3, 1, 5, None),
        (4, 1, 1, None),
        (5, 1, 0, "next in series: Dune Chronicles #1"),
    ]
    works.release()


def test_the_consumers_series_step_is_the_batch_step(spark):
    """``foldin.in_series_order`` (numpy, on titles parsed by Arrow: the consumer's fold-in) gives every reader of
    :func:`series_case` the list the Spark step gives them, notes included; positions are the book indices here."""
    import pyarrow as pa

    from recspark import foldin, serve

    books, shelves, recs = series_case(spark)
    works = Works.of(books, shelves)
    batch = series.in_series_order(recs, shelves, books, works).collect()
    rows = sorted(books.collect(), key=lambda r: r["book_idx"])
    titles = pa.array([r["title"] for r in rows])
    shelf_rows = [(r["user_idx"], r["book_idx"]) for r in shelves.collect()]
    readers = np.bincount([b for _, b in shelf_rows], minlength=len(rows)).astype(float)
    rep = {r[C.BOOK_IDX]: r[C.WORK_IDX] for r in works.table.collect()}
    shown = np.array([rep.get(b, b) == b for b in range(len(rows))])
    assert shown.tolist() == [True] * 7 + [False]  # edition 7 stands behind book 0, the more read
    index = serve.series_of_titles(titles, readers, shown)
    assert index.names[index.series[0]] == "Dune Chronicles" and index.volume[[0, 5, 6]].tolist() == [
        1,
        2,
        -1,
    ]
    for user in sorted({r["user_idx"] for r in recs.collect()}):
        mine = sorted((r["rank"], r["book_idx"]) for r in recs.collect() if r["user_idx"] == user)
        own = [b for u, b in shelf_rows if u == user]
        read = np.array([b for b in range(len(rows)) if rep.get(b, b) in {rep.get(x, x) for x in own}], int)
        got = foldin.in_series_order(np.array([b for _, b in mine]), read, index)
        want = sorted((r[C.RANK], r[C.BOOK_IDX], r[C.SERIES_NOTE]) for r in batch if r[C.USER_IDX] == user)
        assert [(rank + 1, p, note) for rank, (_, p, note) in enumerate(got)] == want, user
    works.release()
    # the consumer's pattern is the batch's, with names for its groups
    assert foldin.SERIES_PATTERN.replace("?P<name>", "").replace("?P<volume>", "") == series.VOLUME_PATTERN
