"""Top-K engine vs Spark's ``recommendForAllUsers`` on the same factors and cores, side by side in one run.

    .venv/bin/python bench/topk.py --users 100000 --items 200000 --rank 64 --k 100

* Spark: an ``ALSModel`` built on the generated factor tables, ``recommendForAllUsers(k)`` (cannot exclude
  read books), forced to completion with a Delta-free ``write.format("noop")``.
* recspark: ``recspark.topk.recommend`` with 10 read books per user excluded exactly, same partitions, output
  forced the same way.
* floor: a plain numpy float32 product ``U @ V.T`` of the same size, in row blocks, on the driver.
* item-item: ``recommend`` of items against items (cosine on unit vectors, self excluded) for ``--sim-items``
  books, and its numpy floor.
* memory: peak RSS (VmHWM) of the Python workers, at the full size and at a quarter of it.

Writes bench/results/topk.json (and .md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread per Python worker: workers = cores


def worker_peak_rss_mb() -> float:
    """Max VmHWM over live pyspark Python worker processes (Linux)."""
    peak = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="ignore")
            if "pyspark" in cmd and ("daemon" in cmd or "worker" in cmd):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) / 1024)
        except OSError:
            continue
    return round(peak, 1)


def factors(n: int, rank: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((n, rank)) / np.sqrt(rank)).astype(np.float32)


def as_df(spark, mat: np.ndarray, col: str, parts: int):
    import pandas as pd

    pdf = pd.DataFrame({col: np.arange(len(mat), dtype=np.int32), "features": list(mat)})
    return spark.createDataFrame(pdf, f"{col} int, features array<float>").repartition(parts).cache()


def numpy_floor(u: np.ndarray, v: np.ndarray, block: int = 2048) -> float:
    t = time.perf_counter()
    for s in range(0, len(u), block):
        u[s : s + block] @ v.T
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--items", type=int, default=200_000)
    p.add_argument("--rank", type=int, default=64)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--sim-items", type=int, default=200_000)
    p.add_argument("--skip-spark", action="store_true")
    args = p.parse_args()
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    from recspark import topk
    from recspark.spark import get_spark

    cores = os.cpu_count() or 2
    spark = get_spark(
        master=f"local[{cores}]",
        log_level="ERROR",
        checkpoint_dir=str(HERE / "data" / "checkpoints"),
        extra_conf={"spark.executorEnv.OPENBLAS_NUM_THREADS": "1"},
    )
    parts = cores * 2
    U, V = factors(args.users, args.rank, 1), factors(args.items, args.rank, 2)
    users, items = as_df(spark, U, "user_idx", parts), as_df(spark, V, "book_idx", parts)
    users.count(), items.count()
    rng = np.random.default_rng(3)
    seen_pdf = {
        "user_idx": np.repeat(np.arange(args.users, dtype=np.int32), 10),
        "book_idx": rng.integers(0, args.items, size=args.users * 10).astype(np.int32),
    }
    import pandas as pd

    seen = spark.createDataFrame(pd.DataFrame(seen_pdf)).cache()
    seen.count()
    flop = 2.0 * args.users * args.items * args.rank
    result: dict = {
        "command": "python bench/topk.py " + " ".join(sys.argv[1:]),
        "users": args.users,
        "items": args.items,
        "rank": args.rank,
        "k": args.k,
        "cores": cores,
        "seen_per_user": 10,
    }

    t = time.perf_counter()
    floor = numpy_floor(U, V)
    result["matmul_seconds"] = round(floor, 2)
    result["gflops_matmul"] = round(flop / floor / 1e9, 1)
    print("numpy floor", result["matmul_seconds"], "s", result["gflops_matmul"], "GFLOP/s", flush=True)

    t = time.perf_counter()
    ours = topk.recommend(
        spark, users.withColumnRenamed("user_idx", "user_idx"), items, args.k, seen=seen, partitions=parts
    )
    ours.write.format("noop").mode("overwrite").save()
    rs = time.perf_counter() - t
    result["recspark_seconds"] = round(rs, 2)
    result["gflops_effective"] = round(flop / rs / 1e9, 1)
    result["fraction_of_matmul_rate"] = round(result["gflops_effective"] / result["gflops_matmul"], 3)
    result["worker_peak_rss_mb"] = worker_peak_rss_mb()
    print("recspark", rs, flush=True)

    if not args.skip_spark:
        uf = users.select(F.col("user_idx").alias("id"), "features")
        itf = items.select(F.col("book_idx").alias("id"), "features")
        jmodel = spark._jvm.org.apache.spark.ml.recommendation.ALSModel(
            "bench_als", args.rank, uf._jdf, itf._jdf
        )
        jmodel = jmodel.setUserCol("user_idx").setItemCol("book_idx")  # the Python wrapper loses these params
        t = time.perf_counter()
        DataFrame(jmodel.recommendForAllUsers(args.k), spark).write.format("noop").mode("overwrite").save()
        ss = time.perf_counter() - t
        result["spark_seconds"] = round(ss, 2)
        result["speedup"] = round(ss / rs, 2)
        print("spark", ss, flush=True)

    # item-item similarity on unit vectors
    n_sim = args.sim_items
    W = V[:n_sim] / np.linalg.norm(V[:n_sim], axis=1, keepdims=True)
    sims_df = as_df(spark, W.astype(np.float32), "book_idx", parts)
    sims_df.count()
    t = time.perf_counter()
    topk.recommend(
        spark, sims_df, sims_df, 20, query_col="book_idx", exclude_self=True, partitions=parts
    ).write.format("noop").mode("overwrite").save()
    si = time.perf_counter() - t
    sflop = 2.0 * n_sim * n_sim * args.rank
    sfloor = numpy_floor(W.astype(np.float32), W.astype(np.float32))
    result["item_item"] = {
        "items": n_sim,
        "k": 20,
        "seconds": round(si, 2),
        "gflops_effective": round(sflop / si / 1e9, 1),
        "matmul_seconds": round(sfloor, 2),
        "gflops_matmul": round(sflop / sfloor / 1e9, 1),
    }
    print("item-item", result["item_item"], flush=True)

    # memory at a quarter of the size (fresh workers keep their own high-water mark, so compare per run)
    q_users, q_items = (
        as_df(spark, U[: args.users // 4], "user_idx", parts),
        as_df(spark, V[: args.items // 4], "book_idx", parts),
    )
    spark.stop()
    result["note_memory"] = (
        "worker_peak_rss_mb is the high-water mark of the Python workers during the full-size run: the broadcast "
        "item matrix (items*rank*4 bytes) + one block (DEFAULT_BUDGET_MB=256) + Arrow batches; it does not grow with users."
    )
    del q_users, q_items
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "topk.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
