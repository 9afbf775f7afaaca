"""The Delta jars with and without second copies of what pyspark ships: first start (resolution and download into
an empty cache), a later start (the cached jar list), and a tiny Delta write and read, each in a process of its own.

    PYSPARK_PYTHON=.venv/bin/python .venv/bin/python bench/jars.py --repeat 2

Sides, alternated ``--repeat`` times, each in a fresh cache directory (``$RECSPARK_CACHE``), so every first start
downloads from the Maven repository (Maven Central or ``$RECSPARK_MAVEN_REPO``):

* ``excluded`` (the product): Ivy leaves out ``recspark.spark.SHIPPED_WITH_PYSPARK``;
* ``all``: that list emptied, so Ivy fetches every dependency of the Delta jar (the product before 2026-12-03).

Per start: seconds from ``get_spark`` to a session (JVM start included), the jar files and their megabytes on
``spark.jars``, and the seconds of writing and reading back a 1,000-row Delta table. Writes
``bench/results/jars.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(side: str) -> dict:
    """One start in this process (``$RECSPARK_CACHE`` set by the parent): seconds, jars, a Delta round trip."""
    sys.path.insert(0, str(HERE.parent))
    from recspark import spark as rs

    if side == "all":
        rs.SHIPPED_WITH_PYSPARK = ()
    first = rs.cached_jars() is None
    t = time.perf_counter()
    spark = rs.get_spark(app_name="bench-jars", master="local[2]", log_level="ERROR")
    start = time.perf_counter() - t
    jars = rs.cached_jars() or []
    table = Path(tempfile.mkdtemp(prefix="bench-jars-")) / "t"
    t = time.perf_counter()
    spark.range(1000).write.format("delta").save(str(table))
    rows = spark.read.format("delta").load(str(table)).count()
    delta = time.perf_counter() - t
    spark.stop()
    shutil.rmtree(table.parent, ignore_errors=True)
    assert rows == 1000
    return {
        "first_start": first,
        "start_s": round(start, 2),
        "jars": len(jars),
        "jar_mb": round(sum(Path(j).stat().st_size for j in jars) / 2**20, 1),
        "delta_round_trip_s": round(delta, 2),
    }


def run_child(side: str, cache: Path) -> dict:
    env = {**os.environ, "RECSPARK_CACHE": str(cache)}
    out = subprocess.run(
        [sys.executable, __file__, "--child", side], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--child", choices=["excluded", "all"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    runs: dict[str, list[dict]] = {"excluded": [], "all": []}
    for _ in range(args.repeat):
        for side in runs:
            cache = Path(tempfile.mkdtemp(prefix=f"bench-jars-{side}-"))
            try:
                first = run_child(side, cache)
                later = run_child(side, cache)
            finally:
                shutil.rmtree(cache, ignore_errors=True)
            runs[side].append({"first": first, "later": later})
            print(side, json.dumps(runs[side][-1]), flush=True)
    summary = {
        side: {
            "jars": r[0]["first"]["jars"],
            "jar_mb": r[0]["first"]["jar_mb"],
            "first_start_s": [x["first"]["start_s"] for x in r],
            "later_start_s": [x["later"]["start_s"] for x in r],
            "later_start_median_s": statistics.median(x["later"]["start_s"] for x in r),
            "delta_round_trip_s": [x["later"]["delta_round_trip_s"] for x in r],
        }
        for side, r in runs.items()
    }
    result = {
        "command": f"python bench/jars.py --repeat {args.repeat}",
        "measured": time.strftime("%Y-%m-%d"),
        "cores": os.cpu_count(),
        "summary": summary,
        "runs": runs,
    }
    (HERE / "results" / "jars.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
