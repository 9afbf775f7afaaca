"""Top-K engine vs Spark's ``recommendForAllUsers`` on the same factors and cores, side by side in one run.

    .venv/bin/python bench/topk.py --users 100000 --items 200000 --rank 64 --k 100 --sim-items 200000

* **user top-K.** Spark: an ``ALSModel`` built on the generated factor tables, ``recommendForAllUsers(k)``
  (it cannot exclude read books), forced to completion with a Delta-free ``write.format("noop")``. recspark:
  ``recspark.topk.recommend`` with 10 read books per user excluded exactly, same partitions, output forced
  the same way.
* **floor.** A plain numpy float32 product ``U @ V.T`` of the same size in row blocks on the driver, with one
  BLAS thread (``gflops_matmul``), and the same product split over two processes, one per core
  (``gflops_matmul_all_cores``, the machine's real ceiling).
* **selection.** On the driver, for 8,192 users: the kernel (product + exclusion + selection) against the
  product alone over the same tiles; ``selection_fraction`` = (kernel - product) / product.
* **item-item.** Cosine (unit vectors) top-``--sim-k`` neighbours for ``--sim-items`` books, self excluded,
  against Spark's ``recommendForAllUsers(sim_k + 1)`` on the same unit vectors (it cannot skip the book
  itself, so it needs one more), plus the numpy floor.
* **memory.** Peak RSS (VmHWM) of the Python workers, each size in a fresh process (workers keep their
  high-water mark): half size and full size, with the default budgets and with a 16 MiB item shard budget
  (the catalogue is then scored in 2 and 4 shards). ``--only-memory`` re-measures just these rows.

Writes bench/results/topk.json and topk.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from multiprocessing import get_context
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread per process: workers = cores

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


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


def unit(mat: np.ndarray) -> np.ndarray:
    return (mat / np.linalg.norm(mat, axis=1, keepdims=True)).astype(np.float32)


def as_df(spark, mat: np.ndarray, col: str, parts: int):
    import pandas as pd

    pdf = pd.DataFrame({col: np.arange(len(mat), dtype=np.int32), "features": list(mat)})
    df = spark.createDataFrame(pdf, f"{col} int, features array<float>").repartition(parts).cache()
    df.count()
    return df


def numpy_floor(u: np.ndarray, v: np.ndarray, block: int = 2048) -> float:
    vt = np.ascontiguousarray(v.T)
    t = time.perf_counter()
    for s in range(0, len(u), block):
        u[s : s + block] @ vt
    return time.perf_counter() - t


def _floor_part(args: tuple) -> float:
    n_users, n_items, rank, part, parts = args
    u = factors(n_users, rank, 1)[part::parts]
    return numpy_floor(u, factors(n_items, rank, 2))


def numpy_floor_all_cores(n_users: int, n_items: int, rank: int, procs: int) -> float:
    """Wall time of the same product split over ``procs`` processes (one BLAS thread each), started together."""
    with get_context("spawn").Pool(procs) as pool:
        t = time.perf_counter()
        pool.map(_floor_part, [(n_users, n_items, rank, p, procs) for p in range(procs)])
        return time.perf_counter() - t


def selection_cost(u: np.ndarray, v: np.ndarray, k: int) -> dict:
    """Kernel vs the product alone over the very same tiles and buffer, on the driver (one BLAS thread):
    what exclusion + selection add to the arithmetic."""
    from recspark import topk

    vt = np.ascontiguousarray(v.T)
    n = v.shape[0]
    width = min(n, topk.TILE_COLS)
    b = topk.block_rows(width)
    buf = np.empty((b, width), dtype=np.float32)
    t = time.perf_counter()
    for s in range(0, len(u), b):
        q = u[s : s + b]
        for c0 in range(0, n, width):
            w = min(width, n - c0)
            np.matmul(q, vt[:, c0 : c0 + w], out=buf[: len(q), :w])
    product = time.perf_counter() - t
    ex_rows, ex_cols = seen_pairs(len(u), n)
    t = time.perf_counter()
    topk.topk_blocks(u, vt, k, ex_rows, ex_cols)
    kernel = time.perf_counter() - t
    return {
        "users": len(u),
        "tile": f"{b} x {width}",
        "product_seconds": round(product, 3),
        "kernel_seconds": round(kernel, 3),
        "selection_fraction": round((kernel - product) / product, 3),
    }


def spark_session():
    from recspark.spark import get_spark

    cores = os.cpu_count() or 2
    return get_spark(
        master=f"local[{cores}]",
        log_level="ERROR",
        checkpoint_dir=str(HERE / "data" / "checkpoints"),
        extra_conf={"spark.executorEnv.OPENBLAS_NUM_THREADS": "1", "spark.ui.enabled": "false"},
    ), cores


def seen_pairs(n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """10 random read books per user (seeded): ``(user rows, book positions)``, users ascending."""
    rng = np.random.default_rng(3)
    return np.repeat(np.arange(n_users), 10), rng.integers(0, n_items, size=n_users * 10)


def seen_frame(spark, n_users: int, n_items: int):
    import pandas as pd

    users, books = seen_pairs(n_users, n_items)
    pdf = pd.DataFrame({"user_idx": users.astype(np.int32), "book_idx": books.astype(np.int32)})
    df = spark.createDataFrame(pdf).cache()
    df.count()
    return df


def spark_recommend_all(spark, queries, items, k: int, rank: int) -> float:
    """Spark's own ALSModel.recommendForAllUsers on the given factor tables; seconds to completion."""
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    qf = queries.select(F.col(queries.columns[0]).alias("id"), "features")
    itf = items.select(F.col(items.columns[0]).alias("id"), "features")
    jmodel = spark._jvm.org.apache.spark.ml.recommendation.ALSModel("bench_als", rank, qf._jdf, itf._jdf)
    jmodel = jmodel.setUserCol("user_idx").setItemCol("book_idx")  # the Python wrapper loses these params
    t = time.perf_counter()
    DataFrame(jmodel.recommendForAllUsers(k), spark).write.format("noop").mode("overwrite").save()
    return time.perf_counter() - t


def memory_run(n_users: int, n_items: int, rank: int, k: int, item_budget_mb: float) -> dict:
    """One fresh Spark session: recspark top-K at this size, then the workers' peak RSS."""
    from recspark import topk

    spark, cores = spark_session()
    parts = cores * 2
    users = as_df(spark, factors(n_users, rank, 1), "user_idx", parts)
    items = as_df(spark, factors(n_items, rank, 2), "book_idx", parts)
    seen = seen_frame(spark, n_users, n_items)
    t = time.perf_counter()
    topk.recommend(
        spark, users, items, k, seen=seen, partitions=parts, item_budget_mb=item_budget_mb
    ).write.format("noop").mode("overwrite").save()
    secs = time.perf_counter() - t
    out = {
        "users": n_users,
        "items": n_items,
        "item_budget_mb": item_budget_mb,
        "shards": len(topk.shard_bounds(n_items, rank, item_budget_mb)),
        "seconds": round(secs, 2),
        "worker_peak_rss_mb": worker_peak_rss_mb(),
    }
    spark.stop()
    return out


def memory_in_fresh_process(n_users: int, n_items: int, rank: int, k: int, item_budget_mb: float) -> dict:
    cmd = [sys.executable, __file__, "--memory-run", f"{n_users},{n_items},{rank},{k},{item_budget_mb}"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure_memory(result: dict, args: argparse.Namespace) -> None:
    """Peak RSS at half and full size (both fill the 10,000-row Arrow batches of 4 partitions), with the
    default item budget and with a 16 MiB one (the catalogue then spans 2 and 4 shards)."""
    from recspark import topk

    half = (args.users // 2, args.items // 2)
    result["memory"] = [
        memory_in_fresh_process(*half, args.rank, args.k, topk.DEFAULT_ITEM_BUDGET_MB),
        memory_in_fresh_process(args.users, args.items, args.rank, args.k, topk.DEFAULT_ITEM_BUDGET_MB),
        memory_in_fresh_process(*half, args.rank, args.k, 16),
        memory_in_fresh_process(args.users, args.items, args.rank, args.k, 16),
    ]
    result["worker_peak_rss_mb"] = result["memory"][1]["worker_peak_rss_mb"]
    print("memory", result["memory"], flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--items", type=int, default=200_000)
    p.add_argument("--rank", type=int, default=64)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--sim-items", type=int, default=200_000)
    p.add_argument("--sim-k", type=int, default=20)
    p.add_argument("--skip-spark", action="store_true", help="skip Spark's recommendForAllUsers (slow)")
    p.add_argument("--memory-run", help=argparse.SUPPRESS)
    p.add_argument(
        "--only-memory",
        action="store_true",
        help="re-measure only the memory rows of bench/results/topk.json",
    )
    args = p.parse_args()
    if args.memory_run:
        u, i, r, k, b = args.memory_run.split(",")
        print(json.dumps(memory_run(int(u), int(i), int(r), int(k), float(b))))
        return
    if args.only_memory:
        path = HERE / "results" / "topk.json"
        result = json.loads(path.read_text())
        measure_memory(result, args)
        result["memory_command"] = "python bench/topk.py " + " ".join(sys.argv[1:])
        path.write_text(json.dumps(result, indent=2) + "\n")
        (HERE / "results" / "topk.md").write_text(markdown(result))
        return

    from recspark import topk

    cores = os.cpu_count() or 2
    U, V = factors(args.users, args.rank, 1), factors(args.items, args.rank, 2)
    flop = 2.0 * args.users * args.items * args.rank
    result: dict = {
        "command": "python bench/topk.py " + " ".join(sys.argv[1:]),
        "measured": time.strftime("%Y-%m-%d"),
        "users": args.users,
        "items": args.items,
        "rank": args.rank,
        "k": args.k,
        "cores": cores,
        "seen_per_user": 10,
        "block_budget_mb": topk.DEFAULT_BUDGET_MB,
        "item_budget_mb": topk.DEFAULT_ITEM_BUDGET_MB,
    }

    floor = numpy_floor(U, V)
    result["matmul_seconds"] = round(floor, 2)
    result["gflops_matmul"] = round(flop / floor / 1e9, 1)
    floor_all = numpy_floor_all_cores(args.users, args.items, args.rank, cores)
    result["matmul_all_cores_seconds"] = round(floor_all, 2)
    result["gflops_matmul_all_cores"] = round(flop / floor_all / 1e9, 1)
    print("numpy floor", floor, "s; on all cores", floor_all, "s", flush=True)
    result["selection"] = selection_cost(U[:8192], V, args.k)
    print("selection", result["selection"], flush=True)

    spark, _ = spark_session()
    parts = cores * 2
    users, items = as_df(spark, U, "user_idx", parts), as_df(spark, V, "book_idx", parts)
    seen = seen_frame(spark, args.users, args.items)

    t = time.perf_counter()
    ours = topk.recommend(spark, users, items, args.k, seen=seen, partitions=parts)
    ours.write.format("noop").mode("overwrite").save()
    rs = time.perf_counter() - t
    result["recspark_seconds"] = round(rs, 2)
    result["gflops_effective"] = round(flop / rs / 1e9, 1)
    result["fraction_of_matmul_rate"] = round(result["gflops_effective"] / result["gflops_matmul"], 3)
    result["fraction_of_all_cores_matmul_rate"] = round(
        result["gflops_effective"] / result["gflops_matmul_all_cores"], 3
    )
    print("recspark", rs, flush=True)
    if not args.skip_spark:
        ss = spark_recommend_all(spark, users, items, args.k, args.rank)
        result["spark_seconds"] = round(ss, 2)
        result["speedup"] = round(ss / rs, 2)
        print("spark", ss, flush=True)

    n_sim = args.sim_items
    W = unit(V[:n_sim])
    sims_df = as_df(spark, W, "book_idx", parts)
    t = time.perf_counter()
    topk.recommend(
        spark, sims_df, sims_df, args.sim_k, query_col="book_idx", exclude_self=True, partitions=parts
    ).write.format("noop").mode("overwrite").save()
    si = time.perf_counter() - t
    sflop = 2.0 * n_sim * n_sim * args.rank
    sfloor = numpy_floor(W, W)
    ii = {
        "items": n_sim,
        "k": args.sim_k,
        "recspark_seconds": round(si, 2),
        "gflops_effective": round(sflop / si / 1e9, 1),
        "matmul_seconds": round(sfloor, 2),
        "gflops_matmul": round(sflop / sfloor / 1e9, 1),
    }
    if not args.skip_spark:
        ss = spark_recommend_all(spark, sims_df, sims_df, args.sim_k + 1, args.rank)
        ii["spark_seconds"] = round(ss, 2)
        ii["speedup"] = round(ss / si, 2)
    result["item_item"] = ii
    print("item-item", ii, flush=True)
    spark.stop()

    measure_memory(result, args)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "topk.json").write_text(json.dumps(result, indent=2) + "\n")
    (HERE / "results" / "topk.md").write_text(markdown(result))
    print(json.dumps(result, indent=2))


def markdown(r: dict) -> str:
    ii = r["item_item"]
    lines = [
        f"# Top-K engine benchmark ({r['measured']}, {r['cores']} cores)",
        "",
        f"`{r['command']}`",
        "",
        f"User top-{r['k']}: {r['users']:,} users x {r['items']:,} books, rank {r['rank']}, "
        f"{r['seen_per_user']} read books per user excluded (recspark only).",
        "",
        "| engine | seconds | GFLOP/s |",
        "|---|---:|---:|",
        f"| Spark `recommendForAllUsers` | {r.get('spark_seconds', 'skipped')} | |",
        f"| recspark `topk.recommend` | {r['recspark_seconds']} | {r['gflops_effective']} |",
        f"| numpy product, one BLAS thread | {r['matmul_seconds']} | {r['gflops_matmul']} |",
        f"| numpy product, {r['cores']} processes | {r['matmul_all_cores_seconds']} | "
        f"{r['gflops_matmul_all_cores']} |",
        "",
        f"Speedup over Spark: **{r.get('speedup', 'n/a')}x**; recspark reaches "
        f"{r['fraction_of_matmul_rate']:.0%} of the one-thread product rate and "
        f"{r['fraction_of_all_cores_matmul_rate']:.0%} of the all-cores product rate. Selection costs "
        f"{r['selection']['selection_fraction']:.0%} of the product (driver, {r['selection']['users']:,} users).",
        "",
        f"Item-item top-{ii['k']} on {ii['items']:,} books (self excluded): recspark {ii['recspark_seconds']} s "
        f"({ii['gflops_effective']} GFLOP/s), Spark {ii.get('spark_seconds', 'skipped')} s "
        f"(speedup {ii.get('speedup', 'n/a')}x), numpy one-thread product {ii['matmul_seconds']} s.",
        "",
        f"Python worker peak RSS (fresh process per row; `{r.get('memory_command', r['command'])}`):",
        "",
        "| users | books | item budget MiB | shards | seconds | peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for m in r["memory"]:
        lines.append(
            f"| {m['users']:,} | {m['items']:,} | {m['item_budget_mb']:g} | {m['shards']} | {m['seconds']} "
            f"| {m['worker_peak_rss_mb']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
