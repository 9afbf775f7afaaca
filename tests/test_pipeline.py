"""End to end on generated data: ingest -> evaluate -> recommend -> similar -> publish, checked from outside with
a Spark-free Delta reader and the raw input files; publication safety (kill before publish, failed check,
idempotent rerun, cold start)."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest

from recspark import publish, serve
from recspark.pipeline import run_pipeline
from recspark.serve import GoldReader
from tests.conftest import E2E_K as K
from tests.conftest import copy_of
from tests.conftest import e2e_cfg as cfg

ALS_ONLY = ("als",)  # publication safety is under test here, not the model families


def shelved_from_raw(src) -> dict[str, set[int]]:
    """(user hash -> Goodreads book ids) straight from the raw CSV files."""
    with open(src / "user_id_map.csv") as f:
        users = {r["user_id_csv"]: r["user_id"] for r in csv.DictReader(f)}
    with open(src / "book_id_map.csv") as f:
        books = {r["book_id_csv"]: int(r["book_id"]) for r in csv.DictReader(f)}
    out: dict[str, set[int]] = {}
    with open(src / "goodreads_interactions.csv") as f:
        for r in csv.DictReader(f):
            out.setdefault(users[r["user_id"]], set()).add(books[r["book_id"]])
    return out


@pytest.mark.slow
def test_gold_tables_checked_from_outside(published):
    from deltalake import DeltaTable

    lake, summary, src = published
    gold = lake.path("gold", "")
    runs = DeltaTable(gold + "runs").to_pyarrow_table().to_pylist()
    assert [r["status"] for r in runs] == ["published"] and runs[0]["run_id"] == summary["run_id"]
    assert json.loads(runs[0]["row_counts"])["user_recommendations"] > 0
    recs = DeltaTable(gold + "user_recommendations").to_pyarrow_table().to_pylist()
    shelved = shelved_from_raw(src)
    by_user: dict[str, list] = {}
    for r in recs:
        by_user.setdefault(r["user_id"], []).append(r)
    assert set(by_user) == set(shelved)  # every user with history gets a list
    for user, rows in by_user.items():
        rows.sort(key=lambda r: r["rank"])
        assert [r["rank"] for r in rows] == list(range(1, K + 1))
        assert len({r["book_id"] for r in rows}) == K
        assert not {r["book_id"] for r in rows} & shelved[user]
        scores = [r["score"] for r in rows]
        assert scores == sorted(scores, reverse=True)
        assert all(r["because_book_id"] is None or r["because_book_id"] in shelved[user] for r in rows)
    assert sum(r["because_book_id"] is not None for r in recs) > 0.9 * len(recs)
    assert all(r["title"] for r in recs)
    sims = DeltaTable(gold + "similar_books").to_pyarrow_table().to_pylist()
    assert sims and all(r["book_id"] != r["similar_book_id"] for r in sims)
    predicted = [r["predicted_rating"] for r in recs if r["predicted_rating"] is not None]
    assert len(predicted) > 0.9 * len(recs) and all(1.0 <= p <= 5.0 for p in predicted)
    # the published model (tuning off: the built-in ALS) for books with min_readers readers, content below that
    readers: dict[int, int] = {}
    for books in shelved.values():
        for b in books:
            readers[b] = readers.get(b, 0) + 1
    for r in sims:
        assert r["method"] == ("als" if readers.get(r["book_id"], 0) >= cfg().min_readers else "content"), r


@pytest.mark.slow
def test_consumer_without_spark(published):
    lake, summary, src = published
    reader = GoldReader(lake.root)
    assert reader.run_id == summary["run_id"]
    user = reader.recs.first_key()
    items, cold = reader.recommend(user, 3)
    assert not cold and len(items) == 3
    assert all(1.0 <= i.as_dict()["predicted_rating"] <= 5.0 for i in items)
    assert all(i.as_dict()["because_title"] for i in items if i.as_dict()["because_book_id"] is not None)
    assert not {i.book_id for i in items} & shelved_from_raw(src)[user]
    # cold start: the recent-window trending books interleaved with the all-time popular ones (issue #17)
    items, cold = reader.recommend("no-such-user", 10)
    ids = [i.book_id for i in items]
    recent, alltime = reader.popular["recent"][0], reader.popular["all"][0]
    assert cold and len(set(ids)) == 10 and ids[0] == recent[0] and alltime[0] in ids
    assert {i.as_dict()["source"] for i in items} == {"recent", "all"}
    book = reader.similar.first_key()
    assert reader.similar_to(book) and all(i.book_id != book for i in reader.similar_to(book))
    assert set(reader.similar.columns["method"].to_pylist()) <= {"als", "content"}
    # columnar: every published row is held, and nothing per row is a Python object
    assert (
        reader.recs.columns["book_id"].dtype == "int64"
        and len(reader.recs.columns["book_id"]) == (summary["row_counts"]["user_recommendations"])
    )


def user_shelves(lake, user_idx: int) -> list[dict]:
    """A user's silver interactions as the shelves of a POST body."""
    from pyspark.sql import functions as F

    rows = (
        lake.read("silver", "interactions")
        .where(F.col("user_idx") == user_idx)
        .join(lake.read("silver", "books").select("book_idx", "book_id"), on="book_idx", how="inner")
        .collect()
    )
    return [
        {
            "book_id": r["book_id"],
            "rating": r["rating"] or 0,
            "is_read": bool(r["is_read"]),
            "is_reviewed": bool(r["is_reviewed"]),
            "date_added": r["date_added"],
        }
        for r in rows
    ]


def posted_shelves(lake, user_idx: int) -> list:
    """A user's silver interactions sent through a POST body (JSON, dates as ISO text) and parsed back as the
    consumer's fold-in takes them."""
    body = [
        {**s, "date_added": None if s["date_added"] is None else s["date_added"].isoformat()}
        for s in user_shelves(lake, user_idx)
    ]
    return serve.parse_body(json.dumps({"shelves": body}).encode())[0]


@pytest.mark.slow
def test_fold_in_equals_the_vector_als_computed(published):
    """A training user folded in from their own shelves, with the published item factors fixed, gets the vector
    ALS computed for them: the same normal equations (tolerance 1e-4 of the vector's norm; ALS stores float32)."""
    import numpy as np
    from pyspark.sql import functions as F

    from recspark import foldin
    from recspark.foldin import Shelf

    lake, summary, _ = published
    reader = GoldReader(lake.root)
    cat, info = reader.catalogue, reader.info
    assert info.model == "als" and cat.factors is not None and reader.yty.shape == (16, 16)
    assert np.allclose(
        reader.yty, cat.factors.astype(np.float64).T @ cat.factors.astype(np.float64), rtol=1e-6
    )
    factors = {
        r["user_idx"]: np.array(r["features"])
        for r in lake.read("model", "user_factors")
        .where(F.col("run_id") == summary["model_run_id"])
        .limit(5)
        .collect()
    }
    for user_idx, want in factors.items():
        shelves = user_shelves(lake, user_idx)
        pos = cat.positions(np.array([s["book_id"] for s in shelves]))
        items = [
            Shelf(int(p), s["rating"], s["is_read"], s["is_reviewed"], s["date_added"])
            for p, s in zip(pos, shelves)
        ]
        r = foldin.preference(items, info, cat.readers)
        got = foldin.fold_in(cat.factors, reader.yty, pos, r, info.alpha, info.reg)
        assert np.abs(got - want).max() <= 1e-4 * np.linalg.norm(want), user_idx

    # the lists from the folded-in vector are the published lists (same vector, same books excluded)
    user = lake.read("silver", "users").where(F.col("user_idx") == next(iter(factors))).first()
    body = [
        {**s, "date_added": None if s["date_added"] is None else s["date_added"].isoformat()}
        for s in user_shelves(lake, user["user_idx"])
    ]
    folded = reader.fold_in(serve.parse_body(json.dumps({"shelves": body}).encode())[0], n=K)
    published_list, _ = reader.recommend(user["user_id"], K)
    assert [i["book_id"] for i in folded["items"]] == [i.book_id for i in published_list]
    shelved = {s["book_id"] for s in body}
    assert all(i["because_book_id"] in shelved for i in folded["items"])


@pytest.mark.slow
def test_fold_in_passes_over_books_without_a_factor(published):
    """Books without an ALS factor (in a real catalogue: metadata books no one shelved): a shelf of one counts for
    nothing (the fold-in equals the one without that shelf, which a zero factor alone would not give: ALS-WR scales
    regParam by the number of shelves), such a book is never scored even when every scored book is asked for, and
    a reader whose shelves all lack a factor gets the popular books they have not shelved."""
    import numpy as np
    from pyspark.sql import functions as F

    lake = published[0]
    reader = GoldReader(lake.root)
    cat = reader.catalogue
    user_idx = (
        lake.read("silver", "interactions").groupBy("user_idx").count().where(F.col("count") >= 4).first()
    )["user_idx"]
    body = [
        {**s, "date_added": None if s["date_added"] is None else s["date_added"].isoformat()}
        for s in user_shelves(lake, user_idx)
    ]
    shelves = serve.parse_body(json.dumps({"shelves": body}).encode())[0]
    before = reader.fold_in(shelves, n=K)
    dropped = body[0]["book_id"]
    unlisted = before["items"][0]["book_id"]  # the top book of the list before its factor goes
    for book_id in (dropped, unlisted):
        at = int(cat.positions(np.array([book_id]))[0])
        cat.factors[at] = 0.0
        cat.factored[at] = False
    without = serve.parse_body(json.dumps({"shelves": body[1:]}).encode())[0]
    got, want = reader.fold_in(shelves, n=K), reader.fold_in(without, n=K)
    assert [(i["book_id"], i["score"]) for i in got["items"]] == [
        (i["book_id"], i["score"]) for i in want["items"]
    ]
    cat.series = (
        None  # the model's lists alone here: the series step has tests of its own (tests/test_works.py)
    )
    every = reader.fold_in(shelves, n=serve.MAX_N)["items"]
    listed = {i["book_id"] for i in every}
    # the model's picks explain themselves; the rest fill a list the model could not (popular books, score 0, no
    # reason), as the batch fills it, and may hold a book without a factor, but never a shelved one
    scored = [i for i in every if i["explanation"] is not None]
    assert all(i["score"] == 0 and i["because_book_id"] is None for i in every if i["explanation"] is None)
    assert unlisted not in {i["book_id"] for i in scored} and dropped not in listed
    # every other book with a factor: not an edition of a shelved work, not an edition standing for none
    shown = cat.factored.copy()
    shown[cat.same_works(cat.positions(np.array([s["book_id"] for s in body])))] = False
    shown[cat.others] = False
    assert len(scored) == min(serve.MAX_N, int(shown.sum()))
    assert all(i["because_book_id"] != dropped for i in every)

    # every shelf without a factor: the popular books not shelved, as for a reader with no known book
    alone = serve.parse_body(json.dumps({"shelves": body[:1]}).encode())[0]
    cold = reader.fold_in(alone, n=K)
    assert [i["book_id"] for i in cold["items"]] == [
        i.book_id for i in reader.popular_items(K, exclude={dropped})
    ]


class Server:
    """The consumer's HTTP server on 127.0.0.1 (a free port) in a thread, for one test."""

    def __init__(self, consumer):
        import threading
        from http.server import ThreadingHTTPServer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), serve.make_handler(consumer))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def call(self, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
        import urllib.error
        import urllib.request

        req = urllib.request.Request(self.url + path, data=body, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.slow
def test_post_recommendations_and_every_bad_request(published):
    lake, summary, src = published
    server = Server(serve.Consumer(lake.root))
    try:
        user = lake.read("silver", "users").orderBy("user_idx").first()
        shelves = [
            {"book_id": s["book_id"], "rating": s["rating"]} for s in user_shelves(lake, user["user_idx"])
        ]
        status, out = server.call(
            "/recommendations?n=7", json.dumps({"shelves": shelves + [{"book_id": -5}]}).encode()
        )
        assert status == 200 and not out["cold_start"] and len(out["items"]) == 7
        assert out["unknown_book_ids"] == [-5] and out["run_id"] == summary["run_id"]
        shelved = {s["book_id"] for s in shelves}
        assert not {i["book_id"] for i in out["items"]} & shelved  # exclusions exact
        assert all(i["because_book_id"] in shelved and i["because_title"] for i in out["items"])

        status, out = server.call("/recommendations", json.dumps({"shelves": []}).encode())
        assert status == 200 and out["cold_start"] and len(out["items"]) == 10

        bad = {
            b"{not json": "not valid JSON",
            b'{"shelves": 3}': "shelves",
            b'{"shelves": [{"book_id": "x"}]}': "book_id must be an integer",
            b'{"shelves": [{"book_id": 1, "rating": 9}]}': "rating",
            b'{"shelves": [{"book_id": 1, "date_added": "yesterday"}]}': "ISO date",
            json.dumps({"shelves": [{"book_id": 1}] * (serve.MAX_SHELVES + 1)}).encode(): "at most",
        }
        for body, message in bad.items():
            status, out = server.call("/recommendations", body)
            assert status == 400 and message in out["error"], (body[:40], out)
        assert server.call("/recommendations?n=0", b'{"shelves": []}')[0] == 400
        for n in ("-1", "abc", "0", "1001"):  # issue #11: n=-1 returned 9 items, n=abc dropped the connection
            status, out = server.call(f"/recommendations/{user['user_id']}?n={n}")
            assert status == 400 and "n must be" in out["error"], n
        assert server.call(f"/recommendations?n={serve.MAX_N + 1}", b'{"shelves": []}')[0] == 400
        status, out = server.call("/recommendations", b"{}", {"Content-Length": str(serve.MAX_BODY + 1)})
        assert status == 413 and "at most" in out["error"]
        for path in ("/../../etc/passwd", "/recommendations/../../gold/runs/x", "/similar/..%2F..%2Fetc"):
            status, out = server.call(path)
            assert status == 404 and "error" in out, path
        assert server.call("/health")[0] == 200
    finally:
        server.close()


@pytest.mark.slow
def test_single_stage_verbs(spark, published, tmp_path, monkeypatch):
    from pyspark.sql import functions as F

    from recspark import pipeline
    from recspark.als import AlsParams
    from recspark.pipeline import latest_model_run, recommend_stage, similar_stage, train_all

    lake = copy_of(published[0], tmp_path / "lake")
    small = cfg(als=AlsParams(rank=8, max_iter=3, reg=0.1))
    run_id, fitted = train_all(spark, lake, small)
    assert fitted and run_id != published[1]["model_run_id"]
    assert latest_model_run(lake) == run_id

    def refit(*args, **kwargs):
        raise AssertionError("an already trained model was fitted again")

    monkeypatch.setattr(pipeline, "fit_and_save", refit)
    assert train_all(spark, lake, small) == (run_id, False)  # `recspark train` twice fits once
    with pytest.raises(AssertionError, match="fitted again"):
        train_all(spark, lake, small, force=True)
    monkeypatch.undo()
    user = lake.read("silver", "users").orderBy("user_idx").first()
    recs = recommend_stage(spark, lake, run_id, 3, [user["user_id"]]).collect()
    assert sorted(r["rank"] for r in recs) == [1, 2, 3] and {r["user_idx"] for r in recs} == {
        user["user_idx"]
    }
    seen = {
        r[0]
        for r in lake.read("silver", "interactions")
        .where(F.col("user_idx") == user["user_idx"])
        .select("book_idx")
        .collect()
    }
    assert not {r["book_idx"] for r in recs} & seen
    sims = similar_stage(spark, lake, run_id, 3, min_readers=2)
    assert sims.count() > 0 and sims.where(F.col("book_idx") == F.col("neighbour_idx")).count() == 0


def swapped_in_without_dropping_requests(lake, old: str, new: str) -> None:
    """Requests run from 8 threads while the consumer swaps from the published run ``old`` to ``new``: every
    request succeeds, and each answer is the whole answer of one run."""
    import threading

    consumer = serve.Consumer(lake.root, run_id=old)
    expected = {rid: GoldReader(lake.root, rid) for rid in (old, new)}
    user = expected[old].recs.first_key()
    want = {rid: [i.book_id for i in r.recommend(user, 5)[0]] for rid, r in expected.items()}
    server = Server(consumer)
    answers, errors = [], []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                status, out = server.call(f"/recommendations/{user}?n=5")
                answers.append((status, out["run_id"], [i["book_id"] for i in out["items"]]))
            except Exception as exc:  # noqa: BLE001 - any failure is what the test looks for
                errors.append(repr(exc))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        while len(answers) < 50:
            stop.wait(0.05)
        assert consumer.reload() and consumer.reader.run_id == new
        n_before = len(answers)
        while len(answers) < n_before + 50:
            stop.wait(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
        server.close()
    assert not errors and all(status == 200 for status, _, _ in answers)
    assert {rid for _, rid, _ in answers} == {old, new}
    assert all(books == want[rid] for _, rid, books in answers)
    assert answers[-1][1] == new


@pytest.mark.slow
def test_itemcf_published_end_to_end(spark, published, tmp_path):
    """``model="itemcf"`` with a popularity prior and shelves weighted by their stars: lists and similar books from co-occurrence, exclusions exact,
    explanations cite shelved books (or nothing, for a book the prior alone picked), the single-stage verbs
    follow the trained family; checked from outside. A book added to the catalogue that nobody has shelved yet
    gets its similar-books list from content. Then a consumer serving the first run swaps to this one under
    load."""
    from deltalake import DeltaTable
    from pyspark.sql import functions as F

    from recspark.itemcf import ItemCfParams
    from recspark.pipeline import model_of, recommend_stage, similar_stage

    _, first, src = published
    lake = copy_of(published[0], tmp_path / "lake")
    # the new book copies the most read book (so the one that stands for its work), as a work of its own: an
    # edition of the same work would rightly never be listed as similar (issue #17)
    books = lake.read("silver", "books")
    top = books.agg(F.max("book_idx"), F.max("book_id")).first()
    most_read = (
        lake.read("silver", "interactions").groupBy("book_idx").count().orderBy(F.desc("count")).first()
    )
    twin = books.where(F.col("book_idx") == most_read["book_idx"])
    original, new_id = twin.first()["book_id"], top[1] + 1
    new = (
        twin.withColumn("book_idx", F.lit(top[0] + 1).cast("int"))
        .withColumn("book_id", F.lit(new_id).cast("long"))
        .withColumn("work_id", F.lit(None).cast("long"))
    )
    lake.write(new.select(*books.columns), "silver", "books", mode="append")
    prior = ItemCfParams(popularity_weight=0.3, shelf_weights="stars", liked_weight=0.2)
    summary = run_pipeline(spark, lake, cfg(model="itemcf", evaluate=False, itemcf=prior), tmp_path)
    run_id, model_run = summary["run_id"], summary["model_run_id"]
    assert run_id != first["run_id"] and model_of(lake, model_run) == "itemcf"
    assert publish.latest_published(lake) == run_id
    gold = lake.path("gold", "")
    recs = [
        r
        for r in DeltaTable(gold + "user_recommendations").to_pyarrow_table().to_pylist()
        if r["run_id"] == run_id
    ]
    shelved = shelved_from_raw(src)
    assert {r["user_id"] for r in recs} == set(shelved)
    assert not [r for r in recs if r["book_id"] in shelved[r["user_id"]]]
    cited = [r for r in recs if r["because_book_id"] is not None]
    assert len(cited) > 0.5 * len(recs) and all(r["because_book_id"] in shelved[r["user_id"]] for r in cited)
    sims = [
        r for r in DeltaTable(gold + "similar_books").to_pyarrow_table().to_pylist() if r["run_id"] == run_id
    ]
    # item-CF lists for well-read books; content lists only for books with fewer than min_readers readers
    assert sims and {r["method"] for r in sims} <= {"itemcf", "content"}
    readers: dict[int, int] = {}
    for books in shelved.values():
        for b in books:
            readers[b] = readers.get(b, 0) + 1
    assert any(r["method"] == "itemcf" for r in sims)
    assert all(readers.get(r["book_id"], 0) < cfg().min_readers for r in sims if r["method"] == "content")
    assert all(r["book_id"] != r["similar_book_id"] and r["rank"] <= cfg().similar_k for r in sims)
    new_sims = sorted((r for r in sims if r["book_id"] == new_id), key=lambda r: r["rank"])
    assert new_sims and {r["method"] for r in new_sims} == {"content"}  # no reader: content neighbours
    assert (
        new_sims[0]["similar_book_id"] == original and new_sims[0]["score"] > 0.99
    )  # same metadata: cosine 1
    user = lake.read("silver", "users").orderBy("user_idx").first()
    assert recommend_stage(spark, lake, model_run, 3, [user["user_id"]]).count() == 3
    assert similar_stage(spark, lake, model_run, 3, min_readers=2).count() > 0

    # fold-in with item-CF: sums of the published similar-books lists, shelved books excluded
    reader = GoldReader(lake.root)
    assert reader.run_id == run_id and reader.info.model == "itemcf" and reader.catalogue.factors is None
    assert reader.info.itemcf_popularity_weight == 0.3  # the prior travels to the consumer
    assert reader.info.itemcf_shelf_weights == "stars"  # and so does how the shelves were weighed
    # and so does the liked prior, with the books' liked shares
    assert reader.info.itemcf_liked_weight == 0.2 and reader.catalogue.liked is not None
    shelves = [{"book_id": b} for b in sorted(shelved[user["user_id"]])]
    out = reader.fold_in(shelves, n=5)
    assert not out["cold_start"] and len(out["items"]) == 5
    assert all(i["book_id"] not in shelved[user["user_id"]] for i in out["items"])
    because = [i["because_book_id"] for i in out["items"] if i["because_book_id"] is not None]
    assert because and all(b in shelved[user["user_id"]] for b in because)
    # training users folded in from their own shelves (with their stars) get their published lists: the prior is
    # scaled over the books a list may show (it once was over the shelved books too, which changed scores and
    # order), and each shelf weighs rating / 5 as in the batch
    for other in lake.read("silver", "users").orderBy("user_idx").limit(8).collect():
        folded = reader.fold_in(posted_shelves(lake, other["user_idx"]), n=K)["items"]
        published_list, _ = reader.recommend(other["user_id"], K)
        assert [(i["book_id"], i["explanation"]) for i in folded] == [
            (i.book_id, i.extra["explanation"]) for i in published_list
        ], other["user_id"]
        assert [round(i["score"], 4) for i in folded] == [round(i.score, 4) for i in published_list]

    # a consumer serving the first run swaps to this one without dropping a request
    swapped_in_without_dropping_requests(lake, first["run_id"], run_id)


@pytest.mark.slow
def test_a_blend_run_folds_readers_in_with_the_blend(spark, published, tmp_path):
    """A ranker run that publishes the blend of ALS and item-CF (w 0.35, liked share γ 1) serves what the consumer
    needs to fold a reader in with the same blend: the weights in ``gold/serving_model``, the books' liked shares in
    ``gold/serving_books``, the neighbour table. Training users folded in from their own silver shelves get their
    published lists, series order and reasons included, checked from outside (deltalake); published again with
    ``--diversity 0.3``, the MMR-re-ranked ones."""
    import numpy as np
    from pyspark.sql import functions as F

    lake = copy_of(published[0], tmp_path / "lake")
    summary = run_pipeline(
        spark, lake, cfg(model="ranker", blend=0.35, blend_prior=1.0, evaluate=False), tmp_path
    )
    reader = GoldReader(lake.root)
    info = reader.info
    assert reader.run_id == summary["run_id"] and info.model == "ranker"
    assert (info.blend_weight, info.blend_prior, info.blend_candidates) == (
        0.35,
        1.0,
        cfg().ranker.n_candidates,
    )
    liked = reader.catalogue.liked
    assert liked is not None and ((liked > 0) & (liked < 1)).all() and np.unique(liked).size > 10
    users = lake.read("silver", "users").orderBy("user_idx").limit(12).collect()
    for user in users:
        shelves = posted_shelves(lake, user["user_idx"])
        folded = reader.fold_in(shelves, n=K)["items"]
        published_list, _ = reader.recommend(user["user_id"], K)
        assert not {i["book_id"] for i in folded} & {s["book_id"] for s in shelves}
        # the same books in the same order with the same scores and reasons, series step and fill included
        assert [(i["book_id"], i["explanation"]) for i in folded] == [
            (i.book_id, i.extra["explanation"]) for i in published_list
        ], user["user_id"]
        assert np.allclose([i["score"] for i in folded], [i.score for i in published_list], atol=1e-4)
    # the ALS-only fold-in these runs had before: other lists for most of these users (the blend matters)
    als_only = GoldReader(lake.root)
    als_only.info = dataclasses.replace(info, blend_weight=None)
    differ = 0
    for user in users:
        body = [{"book_id": s["book_id"]} for s in user_shelves(lake, user["user_idx"])]
        shelves = serve.parse_body(json.dumps({"shelves": body}).encode())[0]
        differ += [i["book_id"] for i in als_only.fold_in(shelves, n=K)["items"]] != [
            i["book_id"] for i in reader.fold_in(shelves, n=K)["items"]
        ]
    assert differ > 0
    # "blend" in the body adds the content taste to the blend's scores, as for the other families
    with_taste = 0
    for user in users:
        body = {
            "shelves": [{"book_id": s["book_id"]} for s in user_shelves(lake, user["user_idx"])],
            "blend": 1.0,
        }
        shelves, weight = serve.parse_body(json.dumps(body).encode())
        plain = [i["book_id"] for i in reader.fold_in(shelves, n=K)["items"]]
        with_taste += [i["book_id"] for i in reader.fold_in(shelves, n=K, blend=weight)["items"]] != plain
    assert weight == 1.0 and with_taste > 0

    # the same model published with --diversity 0.3 (MMR over ALS factors): the consumer re-ranks as the batch did
    from recspark.pipeline import publish_stage

    diverse = publish_stage(spark, lake, cfg(diversity=0.3), summary["model_run_id"])
    mmr = GoldReader(lake.root)
    assert mmr.run_id == diverse["run_id"] != summary["run_id"] and mmr.info.diversity == 0.3
    changed = 0
    for user in users:
        folded = mmr.fold_in(posted_shelves(lake, user["user_idx"]), n=K)["items"]
        published_list, _ = mmr.recommend(user["user_id"], K)
        assert [(i["book_id"], i["explanation"]) for i in folded] == [
            (i.book_id, i.extra["explanation"]) for i in published_list
        ], user["user_id"]
        changed += [i.book_id for i in published_list] != [
            i.book_id for i in reader.recommend(user["user_id"], K)[0]
        ]
    assert changed > 0  # MMR moved some lists
    assert (
        lake.read("gold", "serving_model").where(F.col("run_id") == published[1]["run_id"]).first()["blend"]
        is None
    )


@pytest.mark.slow
def test_a_popularity_run_folds_readers_in_to_its_published_lists(spark, published, tmp_path):
    """A popularity run publishes the most read books each reader has not shelved (series order, popular fill); a
    training user folded in from their own shelves gets that list (the consumer once summed item-CF neighbours
    for such runs, which the run's validation had not chosen)."""
    lake = copy_of(published[0], tmp_path / "lake")
    run_pipeline(spark, lake, cfg(model="popularity", evaluate=False), tmp_path)
    reader = GoldReader(lake.root)
    assert reader.info.model == "popularity"
    for user in lake.read("silver", "users").orderBy("user_idx").limit(12).collect():
        body = [{"book_id": s["book_id"]} for s in user_shelves(lake, user["user_idx"])]
        folded = reader.fold_in(serve.parse_body(json.dumps({"shelves": body}).encode())[0], n=K)
        published_list, _ = reader.recommend(user["user_id"], K)
        assert not folded["cold_start"]
        assert [(i["book_id"], i["explanation"]) for i in folded["items"]] == [
            (i.book_id, i.extra["explanation"]) for i in published_list
        ], user["user_id"]


def shelved_a_second_edition(lake, n: int) -> list[int]:
    """Appends to silver one more shelf for each of ``n`` users (the first by index among those who can have one):
    another edition of the work of one of their books, with another rating, read flag and a later date (the
    generated readers never shelve two editions of one work; real ones do). Returns the users."""
    import datetime as dt

    from pyspark.sql import functions as F

    silver = lake.read("silver", "interactions")
    editions = lake.read("silver", "books").where(F.col("work_id").isNotNull()).select("book_idx", "work_id")
    shelved = silver.join(editions, on="book_idx", how="inner")
    other = editions.withColumnRenamed("book_idx", "_other")
    pairs = (
        shelved.join(other, on="work_id", how="inner")
        .where(F.col("_other") != F.col("book_idx"))
        .join(
            silver.select("user_idx", F.col("book_idx").alias("_other")),
            on=["user_idx", "_other"],
            how="left_anti",
        )
    )
    firsts = (
        pairs.groupBy("user_idx").agg(F.min(F.struct("book_idx", "_other")).alias("_p")).orderBy("user_idx")
    )
    chosen = [(r["user_idx"], r["_p"]["book_idx"], r["_p"]["_other"]) for r in firsts.limit(n).collect()]
    rows = []
    for user, book, edition in chosen:
        row = silver.where((F.col("user_idx") == user) & (F.col("book_idx") == book)).first().asDict()
        later = (row["date_added"] or dt.datetime(2015, 1, 1)) + dt.timedelta(days=30)
        row.update(
            book_idx=edition,
            rating=(row["rating"] + 2) % 6,
            is_read=not row["is_read"],
            date_added=later,
        )
        rows.append(row)
    lake.write(lake.spark.createDataFrame(rows, silver.schema), "silver", "interactions", mode="append")
    return [u for u, _, _ in chosen]


@pytest.mark.slow
def test_a_work_level_run_folds_readers_in_as_it_trained(spark, published, tmp_path):
    """A run trained on works (``--item-level work``: a reader's editions of one work merged into one row) serves
    what a fold-in needs to learn a reader the same way: ``gold/serving_model.item_level``, the YᵀY of one vector
    per work (not of every edition's copy), the readers per work it counted (``serving_books.trained_readers``),
    and mean shelves per user over works. Training users, those with two editions of one work first, folded in from
    their own silver shelves get their published lists (books, order, scores, reasons citing the edition they
    shelved): with ALS weighted by BM25 with a half-life, then with item-CF and its popularity prior. Checked
    from outside (deltalake)."""
    import numpy as np
    from pyspark.sql import functions as F

    from recspark.features import Weights
    from recspark.itemcf import ItemCfParams

    lake = copy_of(published[0], tmp_path / "lake")
    twice = shelved_a_second_edition(lake, 8)
    others = lake.read("silver", "users").orderBy("user_idx").limit(6).collect()
    users = sorted({*twice, *(r["user_idx"] for r in others)})
    id_of = {
        r["user_idx"]: r["user_id"]
        for r in lake.read("silver", "users").where(F.col("user_idx").isin(users)).collect()
    }
    bm25 = Weights(scheme="bm25", half_life_days=365.0)
    configs = [
        cfg(item_level="work", weights=bm25, evaluate=False),
        cfg(item_level="work", model="itemcf", itemcf=ItemCfParams(popularity_weight=0.3), evaluate=False),
        # the blend over every source's candidates: before its lists' lineage was cut (twostage.ranked_lists),
        # publishing them at work level took minutes here and at times ran the driver out of memory
        cfg(item_level="work", model="ranker", blend=0.35, blend_prior=1.0, evaluate=False),
    ]
    for run_cfg in configs:
        run_pipeline(spark, lake, run_cfg, tmp_path)
        reader = GoldReader(lake.root)
        cat, info = reader.catalogue, reader.info
        assert info.item_level == "work" and info.model == run_cfg.model
        stands = cat.work == np.arange(len(cat))  # the editions that stand for their works
        assert (cat.trained_readers[~stands] == 0).all() and (
            cat.trained_readers[stands] >= cat.readers[stands]
        ).all()
        assert (cat.trained_readers > cat.readers).any()  # some work is read in more than its shown edition
        if info.model == "als":
            own = cat.factors[stands & cat.factored].astype(np.float64)
            assert np.allclose(reader.yty, own.T @ own, rtol=1e-6)
            every = cat.factors[cat.factored].astype(np.float64)
            assert not np.allclose(
                reader.yty, every.T @ every, rtol=1e-3
            )  # editions share their work's vector
        as_editions = GoldReader(lake.root)
        as_editions.info = dataclasses.replace(info, item_level="edition")
        differ = 0
        for user in users:
            shelves = posted_shelves(lake, user)
            folded = reader.fold_in(shelves, n=K)["items"]
            published_list, _ = reader.recommend(id_of[user], K)
            assert [(i["book_id"], i["because_book_id"], i["explanation"]) for i in folded] == [
                (i.book_id, i.extra["because_book_id"], i.extra["explanation"]) for i in published_list
            ], (info.model, user)
            assert np.allclose([i["score"] for i in folded], [i.score for i in published_list], atol=1e-4)
            differ += [i["book_id"] for i in as_editions.fold_in(shelves, n=K)["items"]] != [
                i["book_id"] for i in folded
            ]
        assert differ > 0, info.model  # folding editions in one by one gives other lists


def books_from_raw(src) -> dict[int, tuple[int | None, str]]:
    """Goodreads book id -> (work id, title) straight from the raw books file."""
    import gzip

    out = {}
    with gzip.open(src / "goodreads_books.json.gz", "rt") as f:
        for line in f:
            b = json.loads(line)
            out[int(b["book_id"])] = (int(b["work_id"]) if b["work_id"] else None, b["title"])
    return out


def volume_of(title: str) -> tuple[str, int] | None:
    import re

    m = re.search(r"\(([^()#]+?),\s*#(\d+)\)\s*$", title or "")
    return (m.group(1).strip(), int(m.group(2))) if m else None


@pytest.mark.slow
def test_published_lists_are_work_level_and_in_series_order(published):
    """Issue #17, checked from outside (deltalake + the raw files): no list holds two editions of one work or an
    edition of a shelved work, similar books never hold the query's work, and no list recommends volume n of a
    series the reader has not started (no volume of it shelved) unless no earlier volume exists."""
    from deltalake import DeltaTable

    lake, summary, src = published
    run = [("run_id", "=", summary["run_id"])]
    recs = DeltaTable(f"{lake.root}/gold/user_recommendations").to_pyarrow_table(filters=run).to_pylist()
    sims = DeltaTable(f"{lake.root}/gold/similar_books").to_pyarrow_table(filters=run).to_pylist()
    books = books_from_raw(src)
    shelved = shelved_from_raw(src)
    work = {b: (w if w is not None else -b) for b, (w, _) in books.items()}
    editions_per_work: dict[int, int] = {}
    for w in work.values():
        editions_per_work[w] = editions_per_work.get(w, 0) + 1
    assert max(editions_per_work.values()) > 1  # the generated data has editions: the test can fail
    lists: dict[str, list[int]] = {}
    for r in recs:
        lists.setdefault(r["user_id"], []).append(r["book_id"])
    for user, ids in lists.items():
        listed = [work[b] for b in ids]
        assert len(set(listed)) == len(listed), user
        assert not set(listed) & {work[b] for b in shelved[user]}, user
    assert all(work[r["book_id"]] != work[r["similar_book_id"]] for r in sims)
    # the consumer's fold-in follows the same rules (serving_books.work_book_id)
    reader = GoldReader(lake.root, summary["run_id"])
    for user in sorted(lists)[:5]:
        answer = reader.fold_in([{"book_id": b} for b in sorted(shelved[user])], n=20)
        got = [work[i["book_id"]] for i in answer["items"]]
        assert len(got) == 20 and len(set(got)) == len(got)
        assert not set(got) & {work[b] for b in shelved[user]}
    # series order: a recommended volume n > 1 belongs to a series the reader has started (shelved some volume
    # of it), or no earlier volume is in the catalogue at all
    by_volume: dict[tuple[str, int], set[int]] = {}
    for b, (_, title) in books.items():
        v = volume_of(title)
        if v:
            by_volume.setdefault(v, set()).add(work[b])
    later = notes = 0
    for r in recs:
        v = volume_of(books[r["book_id"]][1])
        read = {work[b] for b in shelved[r["user_id"]]}
        if v and v[1] > 1:
            later += 1
            earlier = [by_volume[(v[0], m)] for m in range(1, v[1]) if by_volume.get((v[0], m))]
            series_works = set().union(*(w for (name, _), w in by_volume.items() if name == v[0]))
            assert not earlier or series_works & read, r
        if r["explanation"] and r["explanation"].startswith("next in series: "):
            notes += 1
            assert v and r["explanation"] == f"next in series: {v[0]} #{v[1]}"
        elif r["because_book_id"] is not None:
            assert r["explanation"] == f"because you shelved {books[r['because_book_id']][1]}"
    assert notes > 0, f"no list needed the series rule ({later} later volumes listed)"


@pytest.mark.slow
def test_a_run_without_the_series_rule_keeps_the_models_volumes(spark, published, tmp_path):
    """A run whose search switched the series rule off (``RunConfig.series_order`` False, as
    :func:`recspark.config.with_tuned` sets it) publishes the model's picks: no "next in series" note, some later
    volume of a series the reader has not started listed (the rule's run replaced such picks), and
    ``gold/serving_model.series_order`` false; a training user folded in from their shelves gets the published
    list (item-CF, whose fold-in is exact), so the consumer skips the series step too. Checked from outside
    (deltalake + the raw files)."""
    from deltalake import DeltaTable
    from pyspark.sql import functions as F

    lake = copy_of(published[0], tmp_path / "lake")
    src = published[2]
    summary = run_pipeline(spark, lake, cfg(model="itemcf", evaluate=False, series_order=False), tmp_path)
    run = [("run_id", "=", summary["run_id"])]
    recs = DeltaTable(f"{lake.root}/gold/user_recommendations").to_pyarrow_table(filters=run).to_pylist()
    model = DeltaTable(f"{lake.root}/gold/serving_model").to_pyarrow_table(filters=run).to_pylist()
    assert [m["series_order"] for m in model] == [False]
    assert not [r for r in recs if (r["explanation"] or "").startswith("next in series: ")]
    books, shelved = books_from_raw(src), shelved_from_raw(src)
    started = {u: {v[0] for b in ids if (v := volume_of(books[b][1]))} for u, ids in shelved.items()}
    unstarted_later = [
        r
        for r in recs
        if (v := volume_of(books[r["book_id"]][1])) and v[1] > 1 and v[0] not in started[r["user_id"]]
    ]
    assert unstarted_later, "no list holds a later volume of an unstarted series: the test cannot fail"
    reader = GoldReader(lake.root, summary["run_id"])
    assert reader.info.series_order is False
    # the readers whose lists the rule would change: a consumer that applied it would give them other lists
    ids = sorted({r["user_id"] for r in unstarted_later})[:12]
    for user in lake.read("silver", "users").where(F.col("user_id").isin(ids)).collect():
        body = [{"book_id": s["book_id"]} for s in user_shelves(lake, user["user_idx"])]
        folded = reader.fold_in(serve.parse_body(json.dumps({"shelves": body}).encode())[0], n=K)
        published_list, _ = reader.recommend(user["user_id"], K)
        assert [i["book_id"] for i in folded["items"]] == [i.book_id for i in published_list], user["user_id"]


def test_steps_after_ingest_run_without_adaptive_execution_in_local_mode_only():
    from recspark.spark import ADAPTIVE, step_conf

    assert step_conf("local[2]", {"spark.app.name"}) == {ADAPTIVE: "false"}
    assert step_conf("local[*]", set()) == {ADAPTIVE: "false"}
    assert step_conf("local[2]", {ADAPTIVE}) == {}  # started with it set either way: that value stands
    assert step_conf("spark://host:7077", set()) == {}
    assert step_conf("yarn", set()) == {}


class _Conf:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = dict(values)

    def get(self, key, default=None):
        return self.values.get(key, default)

    def set(self, key, value):
        self.values[key] = value

    def unset(self, key):
        self.values.pop(key, None)


class _Context:
    def __init__(self, master: str, launched: dict[str, str]) -> None:
        self.master = master
        self._launched = launched

    def getConf(self):  # noqa: N802 -- SparkContext's name
        launched = self._launched

        class _SparkConf:
            def getAll(self):  # noqa: N802
                return list(launched.items())

        return _SparkConf()


class _Session:
    def __init__(self, master: str, launched: dict[str, str], runtime: dict[str, str]) -> None:
        self.sparkContext = _Context(master, launched)
        self.conf = _Conf(runtime)


def test_after_ingest_sets_the_step_settings_for_the_call_and_restores_them():
    from recspark.spark import ADAPTIVE, after_ingest

    seen = []

    @after_ingest
    def stage(spark, x):
        seen.append(spark.conf.get(ADAPTIVE))
        return x + 1

    local = _Session("local[2]", {"spark.master": "local[2]"}, {})
    assert stage(local, 1) == 2 and seen[-1] == "false"
    assert local.conf.get(ADAPTIVE) is None  # unset again: Spark's default applies after the stage
    chosen = _Session("local[2]", {ADAPTIVE: "true"}, {ADAPTIVE: "true"})
    assert stage(chosen, 1) == 2 and seen[-1] == "true"
    cluster = _Session("yarn", {}, {})
    assert stage(cluster, 1) == 2 and seen[-1] is None
