"""Bronze parsing (each bad input quarantined with its reason), all-or-nothing ingest, silver round trips."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest
from pyspark.sql import functions as F

from recspark import columns as C
from recspark.ingest import IngestError, parse, run_ingest
from recspark.sources import goodreads
from recspark.sources.spec import FileSpec
from recspark.tables import ShrinkGuard
from tests.conftest import GOODBOOKS, copy_of, tiny_ucsd, write_csv


def parsed_rows(spark, spec: FileSpec, lines: list[str]):
    df = spark.createDataFrame([(x,) for x in lines], "_raw string")
    return {r["_raw"]: r.asDict() for r in parse(df, spec).collect()}


def test_csv_parse_types_and_reasons(spark):
    rows = parsed_rows(
        spark,
        goodreads.INTERACTIONS_CSV,
        ["0,948,1,5,0", "0,947,1,5", "0,946,1,5,0,9", "1,x,1,5,0", "2,3,1,7,0", "3,4,2,5,0", ",5,1,5,0", ""],
    )
    ok = rows["0,948,1,5,0"]
    assert ok["_reason"] is None and (
        ok["user_id"],
        ok["book_id"],
        ok["is_read"],
        ok["rating"],
        ok["is_reviewed"],
    ) == (0, 948, 1, 5, 0)
    assert rows["0,947,1,5"]["_reason"] == "wrong number of fields (expected 5)"
    assert rows["0,946,1,5,0,9"]["_reason"] == "wrong number of fields (expected 5)"
    assert rows["1,x,1,5,0"]["_reason"] == "book_id: not a int: 'x'"
    assert rows["2,3,1,7,0"]["_reason"] == "rating out of range (value BETWEEN 0 AND 5): 7"
    assert rows["3,4,2,5,0"]["_reason"] == "is_read out of range (value IN (0, 1)): 2"
    assert rows[",5,1,5,0"]["_reason"] == "missing required field user_id"
    assert rows[""]["_reason"].startswith("empty line")


def test_json_parse_types_and_reasons(spark):
    good = (
        '{"user_id": "u1", "book_id": "42", "review_id": "r", "is_read": true, "rating": 4, '
        '"review_text_incomplete": "", "date_added": "Thu Aug 17 15:15:28 -0700 2017", "date_updated": "", '
        '"read_at": "", "started_at": ""}'
    )
    lines = [
        good,
        '{"user_id": "u2", "book_id": "43", "is_read": true, "rating": "five"}',
        '{"user_id": "u3", "book_id": "44", "is_read": true, "rating": 4',
        "not json",
        "[1, 2]",
        '{"book_id": "45", "is_read": false, "rating": 0}',
        '{"user_id": "u4", "book_id": "46", "is_read": false, "rating": 9}',
        '{"user_id": "u5", "book_id": "x47", "is_read": false, "rating": 0}',
        '{"user_id": "u6", "book_id": "48", "is_read": false, "rating": 0, "date_added": "yesterday"}',
        '{"user_id": "u7", "book_id": "49", "is_read": true, "rating": 3, "rating": 5}',  # issue #11
    ]
    rows = parsed_rows(spark, goodreads.INTERACTIONS_JSON, lines)
    g = rows[good]
    assert g["_reason"] is None and g["book_id"] == 42 and g["rating"] == 4 and g["is_read"] is True
    assert str(g["date_added"]) == "2017-08-17 22:15:28"  # UTC
    assert g["date_updated"] is None
    assert (
        rows[lines[1]]["_reason"]
        == "rating: wrong JSON type (expected bigint); missing required field rating"
    )
    assert rows[lines[2]]["_reason"] == "malformed JSON"
    assert rows[lines[3]]["_reason"] == "malformed JSON"
    assert rows[lines[4]]["_reason"] == "not a JSON object"
    assert rows[lines[5]]["_reason"] == "missing required field user_id"
    assert rows[lines[6]]["_reason"] == "rating out of range (value BETWEEN 0 AND 5): 9"
    assert rows[lines[7]]["_reason"] == "book_id: not a bigint: 'x47'"
    assert rows[lines[8]]["_reason"] == "date_added: not a timestamp: 'yesterday'"
    assert (
        rows[lines[9]]["_reason"] == "duplicate key in the object"
    )  # it used to be ingested as 5, unrecorded


class _Pairs(list):
    pass


def _repeats_a_key(line: str) -> bool:
    """The oracle: does the line's top-level JSON object name a key twice?"""
    top = json.loads(line, object_pairs_hook=_Pairs)
    return isinstance(top, _Pairs) and len({k for k, _ in top}) < len(top)


def test_repeated_keys_are_found_whatever_the_colons_escapes_and_spacing(spark):
    """A repeated top-level key is quarantined exactly when Python's parser sees one: a brute-force comparison on
    random lines built to confuse a check (colons in values and key names, escaped colons, nulls, unknown and
    nested keys, spacing around the colon)."""
    import random

    rng = random.Random(5)
    keys = ["user_id", "book_id", "rating", "is_read", "date_added", "read_at", "extra", "a:b"]
    values = [
        "4",
        "true",
        "null",
        '"Thu Aug 17 15:15:28 -0700 2017"',
        '"x\\u003ay"',
        '"no colon"',
        '"a \\"quoted\\": b"',
        '{"x": 1, "x": 2}',
        '["1:2"]',
        '""',
    ]
    lines = [
        '{"user_id": "u", "book_id": "1", "rating": 4, "date_added": "Thu Aug 17 15:15:28 -0700 2017"}',
        '{"user_id": "u", "book_id": "1", "rating": 4, "rating" : 5}',
        '{"user_id":"u","book_id":"1","read_at":"x","read_at":"\\u003a"}',  # an escaped colon
        '{"user_id": "u", "book_id": "1", "extra": 1, "extra": 2}',
    ]
    for _ in range(300):
        n = rng.randint(1, 6)
        sep = rng.choice([": ", ":", " : "])
        lines.append(
            "{" + ", ".join(f'"{rng.choice(keys)}"{sep}{rng.choice(values)}' for _ in range(n)) + "}"
        )
    lines = list(dict.fromkeys(lines))
    rows = parsed_rows(spark, goodreads.INTERACTIONS_JSON, lines)
    wrong = [
        x for x in lines if ("duplicate key in the object" in (rows[x]["_reason"] or "")) != _repeats_a_key(x)
    ]
    assert not wrong, wrong[:5]
    assert sum(map(_repeats_a_key, lines)) >= 50 and rows[lines[2]]["_reason"] is not None


def test_metadata_strings_become_typed_and_empty_is_missing(spark):
    line = (
        '{"book_id": "5333265", "work_id": "", "num_pages": "256", "average_rating": "4.00", "is_ebook": "false",'
        ' "title": "W.C. Fields", "publication_year": "", "popular_shelves": [{"count": "3", "name": "to-read"}]}'
    )
    bad = '{"book_id": "5333266", "num_pages": "many"}'
    rows = parsed_rows(spark, goodreads.BOOKS, [line, bad])
    r = rows[line]
    assert (
        r["_reason"] is None
        and r["book_id"] == 5333265
        and r["num_pages"] == 256
        and r["average_rating"] == 4.0
    )
    assert r["is_ebook"] is False and r["work_id"] is None and r["publication_year"] is None
    assert rows[bad]["_reason"] == "num_pages: not a int: 'many'"


@pytest.fixture(scope="module")
def tiny_ingested(spark, tmp_path_factory):
    """``(lake, source)``: :func:`tiny_ucsd` ingested once (run ``run1``); a test takes a copy (:func:`copy_of`)
    of the lakehouse before changing it, and never changes the source."""
    from recspark.tables import Lakehouse

    src = tiny_ucsd(tmp_path_factory.mktemp("tiny") / "src")
    lake = Lakehouse(spark, str(src.parent / "lakehouse"))
    run_ingest(spark, lake, str(src), "goodreads", "run1")
    return lake, src


def test_tiny_ucsd_csv_only_with_bad_rows(spark, lake, tmp_path):
    src = tiny_ucsd(
        tmp_path / "src", extra_rows=[[0, 0, 1, 5, 1], [1, 9, 1, 5, 0], [1, "x", 1, 1, 0], [5, 0, 1, 9, 0]]
    )
    result = run_ingest(spark, lake, str(src), "goodreads", "run1")
    counts = {c.table: c for c in result.counts}
    c = counts["interactions_csv"]
    # 8 rows: 4 good, 1 exact duplicate, 1 unknown book (kept in bronze, quarantined in silver), 1 bad type,
    # 1 out of range
    assert (c.read, c.ingested, c.quarantined, c.duplicates) == (8, 5, 2, 1)
    s = counts["silver.interactions"]
    assert (s.read, s.ingested, s.quarantined, s.duplicates) == (5, 4, 1, 0)
    q = lake.read("bronze", "quarantine").orderBy(C.REASON).collect()
    assert [(r[C.STAGE], r[C.REASON]) for r in q] == [
        ("silver", "book id not in the id map / books file"),
        ("bronze", "book_id: not a int: 'x'"),
        ("bronze", "rating out of range (value BETWEEN 0 AND 5): 9"),
    ]
    assert all(r[C.SOURCE_FILE] and r[C.RAW] for r in q)
    inter = lake.read("silver", "interactions")
    assert inter.count() == 4
    books = lake.read("silver", "books").orderBy(C.BOOK_IDX).collect()
    assert [(b[C.BOOK_IDX], b[C.BOOK_ID]) for b in books] == [(0, 100), (1, 200), (2, 300)]
    assert all(b[C.TITLE] is None for b in books)  # no metadata files: titles stay empty
    users = lake.read("silver", "users").orderBy(C.USER_IDX).collect()
    assert [(u[C.USER_IDX], u[C.USER_ID]) for u in users] == [(0, "a" * 32), (1, "b" * 32)]
    # lineage columns on bronze
    bronze = lake.read("bronze", "interactions_csv")
    assert {C.SOURCE_FILE, C.INGESTED_AT, C.INGEST_RUN_ID} <= set(bronze.columns)
    assert bronze.select(C.INGEST_RUN_ID).distinct().collect()[0][0] == "run1"


def test_invalid_utf8_and_a_repeated_header_are_quarantined_and_readable_outside_spark(spark, lake, tmp_path):
    """Issue #11: a line with bytes that are not UTF-8 is quarantined with its reason, and the quarantine
    table stays readable by deltalake/pyarrow (the bad bytes are stored as U+FFFD); a header line repeated
    mid-file is counted as read and quarantined (it used to vanish from the counts)."""
    from deltalake import DeltaTable

    header = ["user_id", "book_id", "is_read", "rating", "is_reviewed"]
    src = tiny_ucsd(tmp_path / "src", extra_rows=[header])
    with open(src / "goodreads_interactions.csv", "ab") as f:
        f.write(b"1,0,1,5,0\xff\xfe\n")
    result = run_ingest(spark, lake, str(src), "goodreads", "run1")
    c = {c.table: c for c in result.counts}["interactions_csv"]
    assert (c.read, c.ingested, c.quarantined, c.duplicates) == (6, 4, 2, 0)
    rows = DeltaTable(lake.path("bronze", "quarantine")).to_pyarrow_table().to_pylist()
    got = sorted((r["raw"], r["reason"]) for r in rows)
    assert got[0] == ("1,0,1,5,0\ufffd\ufffd", "invalid UTF-8; is_reviewed: not a int: '0\ufffd\ufffd'")
    assert got[1] == (",".join(header), "a repeated CSV header line")


def test_dense_indices_come_from_many_tasks_and_equal_the_global_rank(spark):
    """Issue #15: the dense index is each id's rank in id order (+ the offset), computed without an
    unpartitioned window: the plan has no single-partition exchange and the ranking runs in several tasks."""
    import random

    from pyspark.sql import functions as F

    from recspark import clean

    rnd = random.Random(3)
    ids = [rnd.randrange(10**9) for _ in range(500)]
    df = spark.createDataFrame([(i,) for i in ids + ids[:50]], "book_id long").repartition(4)
    got = clean.dense_rank_of(df.distinct(), "book_id", "book_idx", offset=7)
    want = {b: 7 + i for i, b in enumerate(sorted(set(ids)))}
    assert {r["book_id"]: r["book_idx"] for r in got.collect()} == want
    plan = got._jdf.queryExecution().executedPlan().toString()
    assert "SinglePartition" not in plan
    assert got.select(F.spark_partition_id()).distinct().count() > 1
    # appended ids continue after the existing ones, existing indices unchanged
    old = spark.createDataFrame([(5, 0), (9, 1)], "book_id long, book_idx int")
    more = spark.createDataFrame([(9,), (1,), (7,)], "book_id long")
    both = clean.assign_index(more, old, "book_id", "book_idx")
    assert sorted((r[0], r[1]) for r in both.collect()) == [(1, 2), (5, 0), (7, 3), (9, 1)]


def test_missing_required_files(spark, lake, tmp_path):
    src = tiny_ucsd(tmp_path / "src")
    (src / "book_id_map.csv").unlink()
    with pytest.raises(IngestError, match="needs book_id_map.csv"):
        run_ingest(spark, lake, str(src), "goodreads", "r")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(IngestError, match="no interactions found"):
        run_ingest(spark, lake, str(empty), "goodreads", "r")
    with pytest.raises(IngestError, match="not found"):
        run_ingest(spark, lake, str(tmp_path / "nope"), "goodreads", "r")
    assert not lake.exists("bronze", "interactions_csv")


def test_a_header_only_interactions_file_never_empties_silver(spark, tiny_ingested, tmp_path):
    """Issue #11: with the id maps present and an interactions CSV holding only its header, ingest used to
    record success and overwrite silver with 0 rows. Now it is refused and silver keeps its rows."""
    import shutil

    lake, src = copy_of(tiny_ingested[0], tmp_path / "lake"), tiny_ingested[1]
    before = {t: lake.version("silver", t) for t in ("users", "books", "interactions")}
    empty = tmp_path / "header-only"
    shutil.copytree(src, empty)
    write_csv(
        empty / "goodreads_interactions.csv", ["user_id", "book_id", "is_read", "rating", "is_reviewed"], []
    )
    with pytest.raises(IngestError, match="interactions would be empty.*keeps its 4 rows.*--force"):
        run_ingest(spark, lake, str(empty), "goodreads", "run2")
    assert {t: lake.version("silver", t) for t in before} == before  # nothing written, bronze rolled back
    assert lake.read("silver", "interactions").count() == 4
    # a configurable shrink limit: 1 of 4 rows left is a 75% shrink, refused at --max-shrink 0.5 ...
    short = tmp_path / "short"
    shutil.copytree(src, short)
    cols = ["user_id", "book_id", "is_read", "rating", "is_reviewed"]
    write_csv(short / "goodreads_interactions.csv", cols, [[0, 0, 1, 5, 1]])
    with pytest.raises(IngestError, match=r"shrink from 4 to 1 rows \(-75.0%, more than --max-shrink 0.5\)"):
        run_ingest(spark, lake, str(short), "goodreads", "run2", max_shrink=0.5)
    assert {t: lake.version("silver", t) for t in before} == before
    # ... and accepted (with a warning) by default, where only an empty table is refused
    assert ShrinkGuard().problem("silver.interactions", 4, 1) is None
    # --force accepts it, and the pipeline then refuses to train on nothing with a message (no Py4J traceback)
    run_ingest(spark, lake, str(empty), "goodreads", "run3", force=True)
    assert lake.read("silver", "interactions").count() == 0
    from recspark.config import RunConfig
    from recspark.pipeline import NotFound, run_pipeline

    with pytest.raises(NotFound, match="silver.interactions .* is empty"):
        run_pipeline(spark, lake, RunConfig(), tmp_path / "reports")


def test_csv_header_is_matched_by_name_in_any_order():
    """Columns are found by name: in any order, quoted, with a BOM, in any case; a column the format does not
    know is ignored; a missing or repeated column is refused (mapping by position would mix columns up)."""
    from recspark.bronze import read_header
    from recspark.sources import goodbooks

    spec = goodbooks.RATINGS
    assert read_header("user_id,book_id,rating", spec, "f").fields == ("user_id", "book_id", "rating")
    assert read_header("book_id,user_id,rating", spec, "f").fields == ("book_id", "user_id", "rating")
    assert read_header('\ufeff"Rating", "USER_ID" ,book_id\r', spec, "f").fields == (
        "rating",
        "user_id",
        "book_id",
    )
    h = read_header("user_id,timestamp,book_id,rating", spec, "f")
    assert h.fields == ("user_id", None, "book_id", "rating") and h.ignored == [1]
    with pytest.raises(IngestError, match=r"missing rating"):
        read_header("user_id,book_id,stars", spec, "f")
    with pytest.raises(IngestError, match=r"user_id appear twice"):
        read_header("user_id,book_id,rating,user_id", spec, "f")


def test_an_integer_written_as_a_whole_decimal_is_that_integer(spark):
    """pandas writes an integer column that once held a NaN as ``4.0``: such a line ingests as 4 instead of the
    whole file being quarantined; a fraction is still the wrong type, and so is an integer too large."""
    from recspark.bronze import read_header
    from recspark.sources import goodbooks

    header = read_header("user_id,book_id,rating", goodbooks.RATINGS, "f")
    lines = ["1,2,4.0", "1.0,3,5", "1,4, 3.00 ", "1,5,2e0", "1,6,4.5", "1,7,1e12", "-1.0,8,4"]
    df = spark.createDataFrame([(x,) for x in lines], "_raw string")
    rows = {r["_raw"]: r.asDict() for r in parse(df, goodbooks.RATINGS, header).collect()}
    got = {k: (rows[k]["user_id"], rows[k]["book_id"], rows[k]["rating"], rows[k]["_reason"]) for k in lines}
    assert got == {
        "1,2,4.0": (1, 2, 4, None),
        "1.0,3,5": (1, 3, 5, None),
        "1,4, 3.00 ": (1, 4, 3, None),
        "1,5,2e0": (1, 5, 2, None),
        "1,6,4.5": (1, 6, None, "rating: not a int: '4.5'"),
        "1,7,1e12": (1, 7, None, "rating: not a int: '1e12'"),
        "-1.0,8,4": (-1, 8, 4, "user_id out of range (value >= 0): -1"),
    }


def test_a_csv_without_optional_columns_reads_them_as_empty(spark):
    """A goodbooks ``books.csv`` cut down to ids, title and authors ingests: the columns it lacks are optional in
    the format and come out empty; without a required column (``goodreads_book_id``) it is refused by name."""
    from recspark.bronze import read_header
    from recspark.sources import goodbooks

    header = read_header("title,book_id,goodreads_book_id,authors", goodbooks.BOOKS, "f")
    assert header.fields == ("title", "book_id", "goodreads_book_id", "authors")
    assert set(header.absent) == set(goodbooks.BOOK_COLUMNS) - set(header.fields)
    lines = ['"Emma, a novel",7,1234,Jane Austen', "x,8", header.line]
    df = spark.createDataFrame([(x,) for x in lines], "_raw string")
    rows = {r["_raw"]: r.asDict() for r in parse(df, goodbooks.BOOKS, header).collect()}
    emma = rows[lines[0]]
    assert (emma["book_id"], emma["goodreads_book_id"], emma["title"], emma["authors"]) == (
        7,
        1234,
        "Emma, a novel",
        "Jane Austen",
    )
    assert emma["work_id"] is None and emma["average_rating"] is None and emma["_reason"] is None
    assert rows["x,8"]["_reason"] == "wrong number of fields (expected 4)"
    assert rows[header.line]["_reason"] == "a repeated CSV header line"
    with pytest.raises(IngestError, match=r"missing goodreads_book_id\)"):
        read_header("book_id,title,authors", goodbooks.BOOKS, "f")


def test_csv_lines_are_parsed_in_the_header_order(spark):
    """goodbooks-10k's first release wrote ``book_id,user_id,rating``: each value lands in its named column, an
    unknown column is dropped, and the field count follows the file's header."""
    from recspark.bronze import read_header
    from recspark.sources import goodbooks

    header = read_header("book_id,timestamp,user_id,rating", goodbooks.RATINGS, "f")
    lines = ["7,1500000000,3,5", "8,x,0,2", "9,0,5", "9,0,-1,4", header.line]
    df = spark.createDataFrame([(x,) for x in lines], "_raw string")
    rows = {r["_raw"]: r.asDict() for r in parse(df, goodbooks.RATINGS, header).collect()}
    assert set(rows["7,1500000000,3,5"]) == {"user_id", "book_id", "rating", "_raw", "_reason"}
    got = [(rows[k]["user_id"], rows[k]["book_id"], rows[k]["rating"], rows[k]["_reason"]) for k in lines[:2]]
    assert got == [(3, 7, 5, None), (0, 8, 2, None)]  # an id may be 0 (made-up id maps start there)
    assert rows["9,0,5"]["_reason"] == "wrong number of fields (expected 4)"
    assert rows["9,0,-1,4"]["_reason"] == "user_id out of range (value >= 0): -1"
    assert rows[header.line]["_reason"] == "a repeated CSV header line"


def test_header_mismatch_stops_before_writing_and_a_reordered_header_ingests(spark, lake, tmp_path):
    bad = tiny_ucsd(tmp_path / "bad", header=["user_id", "book", "is_read", "rating", "is_reviewed"])
    with pytest.raises(IngestError, match="CSV header does not match .missing book_id"):
        run_ingest(spark, lake, str(bad), "goodreads", "r")
    assert not lake.exists("bronze", "user_id_map") and not lake.exists("bronze", "quarantine")
    # the same rows written in another column order land exactly where the usual order puts them
    order = ["rating", "is_reviewed", "book_id", "user_id", "is_read"]
    cols = ["user_id", "book_id", "is_read", "rating", "is_reviewed"]
    rows = [
        [dict(zip(cols, r))[c] for c in order] for r in [[0, 0, 1, 5, 1], [0, 1, 0, 0, 0], [1, 2, 1, 4, 0]]
    ]
    src = tiny_ucsd(tmp_path / "src", rows=rows, header=order)
    run_ingest(spark, lake, str(src), "goodreads", "r2")
    got = sorted(tuple(r) for r in lake.read("bronze", "interactions_csv").select(*cols).collect())
    assert got == [(0, 0, 1, 5, 1), (0, 1, 0, 0, 0), (1, 2, 1, 4, 0)]


def test_truncated_gzip_commits_nothing(spark, lake, tmp_path):
    src = tiny_ucsd(tmp_path / "src")
    lines = "".join(
        json.dumps({"book_id": str(b), "title": f"Book {b}", "description": "x" * 2000, "authors": []}) + "\n"
        for b in range(100, 400)
    )
    with gzip.open(src / "goodreads_books.json.gz", "wt") as f:
        f.write(lines)
    run_ingest(spark, lake, str(src), "goodreads", "good")
    before = {
        t: lake.version(layer, t)
        for layer, t in [("bronze", "interactions_csv"), ("silver", "interactions"), ("bronze", "books")]
    }
    n_books = lake.read("silver", "books").count()
    data = (src / "goodreads_books.json.gz").read_bytes()
    (src / "goodreads_books.json.gz").write_bytes(data[: len(data) // 2])  # cut the gzip stream in the middle
    with pytest.raises(IngestError, match="truncated or corrupt"):
        run_ingest(spark, lake, str(src), "goodreads", "bad")
    after = {
        t: lake.version(layer, t)
        for layer, t in [("bronze", "interactions_csv"), ("silver", "interactions"), ("bronze", "books")]
    }
    assert after["books"] == before["books"]  # the failing table was never committed
    # tables written before the failure were restored (RESTORE adds a version holding the old content)
    assert (
        lake.read("bronze", "interactions_csv").select(C.INGEST_RUN_ID).distinct().collect()[0][0] == "good"
    )
    assert lake.read("silver", "books").count() == n_books
    assert [r["run_id"] for r in lake.read("meta", "ingest_runs").collect()] == ["good"]


def test_round_trip_counts_reconcile_and_rerun_changes_nothing(spark, ingested, small_generated, tmp_path):
    src, gen_counts = small_generated
    lake, result = copy_of(ingested[0], tmp_path / "lake"), ingested[1]
    by_table = {c.table: c for c in result.counts}
    for c in result.counts:
        assert c.read == c.ingested + c.quarantined + c.duplicates
    assert by_table["interactions_csv"].read == gen_counts["goodreads_interactions.csv"]
    assert by_table["interactions_json"].read == gen_counts["goodreads_interactions_dedup.json.gz"]
    assert by_table["books"].ingested == gen_counts["goodreads_books.json.gz"]
    assert all(c.quarantined == 0 for c in result.counts)
    n = gen_counts["goodreads_interactions.csv"]
    # CSV and JSON hold the same shelves: every CSV row is a duplicate of a JSON row in silver
    assert by_table["silver.interactions"].read == 2 * n and by_table["silver.interactions"].ingested == n
    assert result.tables["interactions"] == n
    inter = lake.read("silver", "interactions")
    assert inter.where(F.col(C.SOURCE) == "json").count() == n  # JSON (with dates) preferred
    assert inter.where(F.col(C.DATE_ADDED).isNull()).count() == 0
    books = lake.read("silver", "books")
    assert (
        books.where(F.col(C.TITLE).isNull()).count() == 0
        and books.where(F.col(C.AUTHORS).isNull()).count() == 0
    )
    assert lake.constraints("silver", "interactions")["rating_range"] == "rating BETWEEN 0 AND 5"

    users_before = {r[0]: r[1] for r in lake.read("silver", "users").collect()}
    v_before = lake.version("silver", "interactions")
    again = run_ingest(spark, lake, str(src), "goodreads", "r2")
    assert again.skipped and lake.version("silver", "interactions") == v_before
    forced = run_ingest(spark, lake, str(src), "goodreads", "r3", force=True)
    assert not forced.skipped
    assert {r[0]: r[1] for r in lake.read("silver", "users").collect()} == users_before
    assert lake.read("silver", "interactions").count() == n
    assert lake.read("silver", "interactions").subtract(inter).count() == 0


def test_indices_stay_stable_when_new_users_arrive(spark, tiny_ingested, tmp_path):
    lake, src = copy_of(tiny_ingested[0], tmp_path / "lake"), tiny_ucsd(tmp_path / "src")  # the same files
    before = {r[C.USER_ID]: r[C.USER_IDX] for r in lake.read("silver", "users").collect()}
    write_csv(
        src / "user_id_map.csv", ["user_id_csv", "user_id"], [[0, "a" * 32], [1, "b" * 32], [2, "0" * 32]]
    )
    with open(src / "goodreads_interactions.csv", "a") as f:
        f.write("2,0,1,2,0\n")
    run_ingest(spark, lake, str(src), "goodreads", "r2")
    after = {r[C.USER_ID]: r[C.USER_IDX] for r in lake.read("silver", "users").collect()}
    assert {k: after[k] for k in before} == before and after["0" * 32] == 2  # new id appended, old kept


def test_silver_constraints_reject_bad_writes(tiny_ingested, tmp_path):
    from pyspark.errors import PySparkException

    lake = copy_of(tiny_ingested[0], tmp_path / "lake")
    bad = lake.read("silver", "interactions").withColumn(C.RATING, F.lit(7))
    with pytest.raises((PySparkException, Exception), match="(?i)constraint|rating"):
        bad.write.format("delta").mode("append").save(lake.path("silver", "interactions"))


def test_genre_subsets_as_source(spark, lake, tmp_path):
    from recspark.sources.synthetic import generate

    gen = tmp_path / "gen"
    generate(gen, scale=0.0002, seed=5, subsets=True)
    src = tmp_path / "poetry"
    src.mkdir()
    for name in ("goodreads_interactions_poetry.json.gz", "goodreads_books_poetry.json.gz"):
        shutil.copy(gen / name, src / name)
    with gzip.open(src / "goodreads_interactions_poetry.json.gz", "rt") as f:
        n = sum(1 for _ in f)
    result = run_ingest(spark, lake, str(src), "goodreads", "p1")
    assert result.tables["interactions"] == n > 0
    assert lake.read("silver", "books").where(F.col(C.TITLE).isNotNull()).count() > 0


def test_goodbooks_hand_made(spark, lake, tmp_path):
    from recspark.sources.goodbooks import BOOK_COLUMNS

    src = tmp_path / "gb"
    src.mkdir()
    write_csv(
        src / "ratings.csv", ["user_id", "book_id", "rating"], [[1, 1, 5], [1, 2, 3], [2, 1, 4], [2, 3, 6]]
    )
    write_csv(src / "to_read.csv", ["user_id", "book_id"], [[1, 2], [3, 2], [3, 9]])
    book_rows = []
    for i, gid in ((1, 2767052), (2, 3), (3, 41865)):
        row = {c: "" for c in BOOK_COLUMNS}
        row.update(
            book_id=i,
            goodreads_book_id=gid,
            authors="A, B" if i == 1 else "C",
            title=f"T{i}",
            original_publication_year="2008.0",
            average_rating="4.3",
            ratings_count="10",
        )
        book_rows.append([row[c] for c in BOOK_COLUMNS])
    write_csv(src / "books.csv", BOOK_COLUMNS, book_rows)
    result = run_ingest(spark, lake, str(src), "goodbooks", "g1")
    counts = {c.table: c for c in result.counts}
    assert (counts["ratings"].read, counts["ratings"].quarantined) == (4, 1)  # rating 6 out of range
    # silver: ratings (3) + to_read (3) = 6 in; (1,2) is in both -> 1 duplicate; (3,9) unknown book -> quarantined
    s = counts["silver.interactions"]
    assert (s.read, s.ingested, s.quarantined, s.duplicates) == (6, 4, 1, 1)
    rows = (
        lake.read("silver", "interactions")
        .join(lake.read("silver", "users"), C.USER_IDX, how="inner")
        .join(lake.read("silver", "books"), C.BOOK_IDX, how="inner")
        .select(C.USER_ID, C.BOOK_ID, C.IS_READ, C.RATING, C.SOURCE)
        .orderBy(C.USER_ID, C.BOOK_ID)
        .collect()
    )
    assert [tuple(r) for r in rows] == [
        ("1", 3, True, 3, "ratings"),
        ("1", 2767052, True, 5, "ratings"),
        ("2", 2767052, True, 4, "ratings"),
        ("3", 3, False, 0, "to_read"),
    ]
    b = {r[C.BOOK_ID]: r for r in lake.read("silver", "books").collect()}
    assert b[2767052][C.AUTHORS] == "A, B" and b[2767052][C.PUBLICATION_YEAR] == 2008


@pytest.mark.slow
def test_real_goodbooks_to_read(spark, lake):
    if not (GOODBOOKS / "to_read.csv").exists():
        pytest.skip(f"real goodbooks-10k data not found at {GOODBOOKS}")
    result = run_ingest(spark, lake, str(GOODBOOKS), "goodbooks", "real")
    counts = {c.table: c for c in result.counts}
    assert counts["to_read"].read == 101_169 and counts["to_read"].quarantined == 0
    assert counts["gb_books"].read == 10_000 and counts["gb_books"].quarantined == 0
    assert result.tables["interactions"] == counts["to_read"].ingested
    books = lake.read("silver", "books")
    hg = books.where(F.col(C.BOOK_ID) == 2767052).first()
    assert hg[C.TITLE] == "The Hunger Games (The Hunger Games, #1)" and hg[C.AUTHORS] == "Suzanne Collins"
    assert hg[C.PUBLICATION_YEAR] == 2008


@pytest.mark.parametrize(
    "broadcast_keys", [1_000_000, 0]
)  # a few duplicated keys; more than the broadcast cap
def test_dedupe_keeps_the_latest_update_then_the_smallest_content(spark, monkeypatch, broadcast_keys):
    from recspark import bronze

    monkeypatch.setattr(bronze, "DEDUPE_BROADCAST_KEYS", broadcast_keys)
    rows = [  # (user_id, book_id, date_updated, review_id)
        ("u1", 1, "2017-01-02", "b"),  # u1/1: the latest update wins
        ("u1", 1, "2017-01-03", "c"),
        ("u1", 1, None, "a"),
        ("u1", 2, "2017-01-01", "z"),  # u1/2: equal updates, the smaller content wins (review_id)
        ("u1", 2, "2017-01-01", "y"),
        ("u2", 1, None, "d"),  # single rows are kept as they are
        ("u2", 2, "2017-05-05", "e"),
    ]
    valid = spark.createDataFrame(rows, "user_id string, book_id long, date_updated string, review_id string")
    kept, n = bronze.dedupe(valid, goodreads.INTERACTIONS_JSON, len(rows))
    assert n == 4
    assert sorted(r["review_id"] for r in kept.collect()) == ["c", "d", "e", "y"]


def test_dedupe_without_duplicates_returns_the_rows_unshuffled(spark):
    from recspark import bronze

    valid = spark.createDataFrame(
        [("u1", 1, None, "a"), ("u1", 2, None, "b")],
        "user_id string, book_id long, date_updated string, _raw string",
    )
    kept, n = bronze.dedupe(valid, goodreads.INTERACTIONS_JSON, 2)
    assert n == 2 and kept is valid


def test_session_conf_is_restored_after_the_block_even_when_it_raises(spark):
    from recspark.spark import session_conf

    key = "spark.sql.inMemoryColumnarStorage.compressed"
    before = spark.conf.get(key)
    with session_conf(spark, {key: "false"}):
        assert spark.conf.get(key) == "false"
    assert spark.conf.get(key) == before
    with pytest.raises(RuntimeError), session_conf(spark, {key: "false"}):
        raise RuntimeError("boom")
    assert spark.conf.get(key) == before


def test_bronze_caches_no_raw_text_of_valid_lines_and_keeps_rejected_ones(spark, lake, tmp_path):
    from recspark import bronze

    src = tmp_path / "ratings.jsonl"
    src.write_text(
        '{"user_id": "u1", "book_id": "7", "is_read": true, "rating": 5}\n'
        '{"user_id": "u2", "book_id": "x", "is_read": true, "rating": 5}\n'
    )
    _, bad, counts, parsed = bronze.ingest_file(
        spark, goodreads.INTERACTIONS_JSON, str(src), src.stat().st_size, "r1", F.current_timestamp()
    )
    try:
        raws = {r["user_id"]: r["_raw"] for r in parsed.collect()}
        assert raws["u1"] is None and raws["u2"].startswith('{"user_id": "u2"')
        assert [r[C.RAW] for r in bad.collect()] == [raws["u2"]]
        assert (counts.read, counts.ingested, counts.quarantined) == (2, 1, 1)
    finally:
        parsed.unpersist()


def test_rows_written_is_what_the_last_commit_wrote_with_or_without_history_metrics(spark, lake):
    from recspark.spark import session_conf

    df = spark.range(7).selectExpr("cast(id as int) as a")
    lake.write(df, "silver", "t")
    assert lake.rows_written("silver", "t") == 7
    lake.write(df.limit(2), "silver", "t", mode="append")
    assert lake.rows_written("silver", "t") == 2  # the commit's rows, not the table's
    with session_conf(spark, {"spark.databricks.delta.history.metricsEnabled": "false"}):
        lake.write(df.limit(3), "silver", "t")
    assert "numOutputRows" not in (lake.delta("silver", "t").history(1).first()["operationMetrics"] or {})
    assert lake.rows_written("silver", "t") == 3  # no metrics in that commit: the table is counted


def test_ensure_table_creates_columns_and_checks_in_one_commit_and_adds_a_missing_check_later(spark, lake):
    from pyspark.sql.types import IntegerType, StructField, StructType

    schema = StructType([StructField("a", IntegerType()), StructField("b", IntegerType())])
    lake.ensure_table("silver", "t", schema, not_null=["a"], checks={"A_Pos": "a >= 0"})
    assert lake.version("silver", "t") == 0  # one commit: the columns, NOT NULL and the check
    assert lake.constraints("silver", "t") == {"a_pos": "a >= 0"}
    assert not lake.read("silver", "t").schema["a"].nullable and lake.read("silver", "t").schema["b"].nullable
    lake.write(spark.createDataFrame([(1, 2)], schema), "silver", "t", keep_schema=True)
    with pytest.raises(Exception, match="(?i)a_pos"):
        lake.write(spark.createDataFrame([(-1, 1)], schema), "silver", "t", keep_schema=True)
    # an existing table: a check it lacks is added in a commit of its own; the ones it has are left alone
    lake.ensure_table("silver", "t", schema, not_null=["a"], checks={"A_Pos": "a >= 0", "b_small": "b < 9"})
    assert lake.version("silver", "t") == 2
    assert lake.constraints("silver", "t") == {"a_pos": "a >= 0", "b_small": "b < 9"}
    with pytest.raises(Exception, match="(?i)b_small"):
        lake.write(spark.createDataFrame([(1, 9)], schema), "silver", "t", mode="append", keep_schema=True)
