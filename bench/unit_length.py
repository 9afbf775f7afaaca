"""``topk.unit_length`` against the expression it replaced, side by side in one Spark session.

The old expression computed the norm as an outer ``aggregate`` and divided inside ``transform``'s lambda, so
Spark evaluated the norm again for every element (``O(d²)`` per vector); the shipped one computes it once, in
``aggregate``'s finish function. Both are timed on the same cached frame of random vectors (collecting the
result), best of ``--repeats``, and checked equal. Writes ``bench/results/unit_length.json``.

    python bench/unit_length.py --rows 13000 --dims 16 64 256
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from pyspark.sql import Column
from pyspark.sql import functions as F

from recspark import topk
from recspark.spark import get_spark

HERE = Path(__file__).resolve().parent


def unit_length_before(vec: Column) -> Column:
    """The expression ``topk.unit_length`` used up to 2026-12-02."""
    norm = F.sqrt(F.aggregate(vec, F.lit(0.0), lambda acc, x: acc + x * x))
    return F.transform(vec, lambda x: (x / F.greatest(norm, F.lit(1e-12))).cast("float"))


def best_of(repeats: int, df, fn) -> tuple[float, list]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = df.select("i", fn(F.col("v")).alias("u")).orderBy("i").collect()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=13_000)
    p.add_argument("--dims", type=int, nargs="+", default=[16, 64, 256])
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    spark = get_spark(app_name="bench-unit-length", master="local[2]", log_level="ERROR")
    rng = np.random.default_rng(0)
    results = []
    for d in a.dims:
        vecs = rng.standard_normal((a.rows, d)).astype(np.float32)
        df = spark.createDataFrame([(i, v.tolist()) for i, v in enumerate(vecs)], "i int, v array<float>")
        df = df.repartition(4).cache()
        df.count()
        before, old = best_of(a.repeats, df, unit_length_before)
        after, new = best_of(a.repeats, df, topk.unit_length)
        diff = float(np.abs(np.array([r["u"] for r in old]) - np.array([r["u"] for r in new])).max())
        row = {
            "dims": d,
            "before_s": round(before, 2),
            "after_s": round(after, 2),
            "speedup": round(before / after, 1),
            "max_abs_diff": diff,
        }
        print(row, flush=True)
        results.append(row)
        df.unpersist()
    out = {
        "command": f"python bench/unit_length.py --rows {a.rows} --dims {' '.join(map(str, a.dims))} "
        f"--repeats {a.repeats}",
        "measured": time.strftime("%Y-%m-%d"),
        "cores": 2,
        "rows": a.rows,
        "results": results,
    }
    (HERE / "results" / "unit_length.json").write_text(json.dumps(out, indent=1) + "\n")
    spark.stop()


if __name__ == "__main__":
    main()
