"""No single-task stages (issue #15): the dense-index step and the parse of a gzipped JSON file run as many
tasks, not one. Checked on the physical plan (no exchange into a single partition) and on the partitions of the
result, on inputs of several partitions."""

from __future__ import annotations

import gzip
import json

from recspark import bronze, clean
from recspark.sources import goodreads


def plan(df) -> str:
    return df._jdf.queryExecution().executedPlan().toString()


def test_dense_indices_are_assigned_without_a_single_partition_window(spark):
    ids = spark.range(0, 5000, numPartitions=4).selectExpr("cast(id * 7 % 5003 as long) as book_id")
    out = clean.dense_rank_of(ids.distinct(), "book_id", "book_idx")
    assert "SinglePartition" not in plan(out)
    assert out.rdd.getNumPartitions() > 1
    rows = sorted((r["book_id"], r["book_idx"]) for r in out.collect())
    assert [i for _, i in rows] == list(range(len(rows)))  # dense, in id order


def test_a_gzipped_json_file_is_parsed_by_many_tasks(spark, tmp_path):
    path = tmp_path / "goodreads_interactions_dedup.json.gz"
    with gzip.open(path, "wt") as f:
        for i in range(3000):
            row = {
                "user_id": f"{i % 97:032x}",
                "book_id": str(i),
                "review_id": f"{i:032x}",
                "is_read": True,
                "rating": i % 6,
                "review_text_incomplete": "",
                "date_added": "Tue Oct 17 07:48:43 -0700 2017",
                "date_updated": "Tue Oct 17 07:48:43 -0700 2017",
                "read_at": "",
                "started_at": "",
            }
            f.write(json.dumps(row) + "\n")
    lines = bronze.read_lines(spark, str(path), path.stat().st_size)
    assert lines.rdd.getNumPartitions() >= spark.sparkContext.defaultParallelism > 1
    parsed = bronze.parse(lines, goodreads.INTERACTIONS_JSON)
    assert parsed.rdd.getNumPartitions() > 1 and "SinglePartition" not in plan(parsed)
    assert parsed.count() == 3000
