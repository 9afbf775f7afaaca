"""Which BLAS makes Spark's ALS fastest here: the JVM's Vector-API BLAS or a native BLAS (OpenBLAS via JNI)?

    .venv/bin/python bench/blas.py --scale 0.002 --rank 64 --iterations 10

Finding while writing this: Spark 4.2's launcher already starts every JVM with
``--add-modules=jdk.incubator.vector`` (spark-launcher's JavaModuleOptions), so netlib loads
``dev.ludovic.netlib.blas.VectorBLAS`` with or without recspark's own flag: that flag changes nothing. What can
still differ is a native BLAS: netlib prefers ``JNIBLAS`` when ``libblas.so.3`` loads (Debian:
``apt-get install libopenblas0-pthread``). Modes, alternated so machine noise hits both:

* ``vector``: native loading disabled (``-Ddev.ludovic.netlib.blas.nativeLib=<missing>``), so VectorBLAS;
* ``native``: netlib's default choice, JNIBLAS when a system BLAS is installed.

The same ALS fit (same data, seed, blocks) runs in a fresh Spark JVM per measurement and records the class netlib
loaded. Writes bench/results/blas.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def child(args) -> None:
    from recspark import als
    from recspark.features import Weights, preference
    from recspark.spark import get_spark
    from recspark.tables import Lakehouse

    spark = get_spark(
        master=f"local[{os.cpu_count()}]",
        vector_blas=args.mode == "vector",
        log_level="ERROR",
        checkpoint_dir=str(HERE / "data" / "checkpoints"),
    )
    jvm = spark.sparkContext._jvm
    impl = jvm.dev.ludovic.netlib.blas.BLAS.getInstance().getClass().getName()
    prop = jvm.java.lang.System.getProperty("dev.ludovic.netlib.blas.nativeLibPath")
    lake = Lakehouse(spark, args.lakehouse)
    prefs = lake.read("silver", "interactions").transform(preference(Weights())).cache()
    prefs.count()
    params = als.AlsParams(rank=args.rank, max_iter=args.iterations, reg=1.0)
    t = time.perf_counter()
    model = als.fit(spark, prefs, params)
    model.itemFactors.count()
    print(
        json.dumps(
            {"mode": args.mode, "impl": impl, "nativeLibPath": prop, "seconds": time.perf_counter() - t}
        )
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scale", type=float, default=0.002)
    p.add_argument("--rank", type=int, default=64)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--mode")
    p.add_argument("--lakehouse")
    args = p.parse_args()
    if args.mode:
        child(args)
        return
    from recspark.ingest import run_ingest
    from recspark.sources.synthetic import generate
    from recspark.spark import get_spark
    from recspark.tables import Lakehouse

    raw = HERE / "data" / f"scale{args.scale}-seed42"
    if not (raw / "goodreads_interactions.csv").exists():
        generate(raw, scale=args.scale, seed=42)
    lake_dir = HERE / "data" / f"lakehouse-blas-{args.scale}"
    if not (lake_dir / "silver" / "interactions").exists():
        spark = get_spark(master=f"local[{os.cpu_count()}]", log_level="ERROR")
        run_ingest(spark, Lakehouse(spark, str(lake_dir)), str(raw), "goodreads", "bench")
        spark.stop()
    runs = []
    for _ in range(args.repeats):
        for mode in ("vector", "native"):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--mode",
                    mode,
                    "--lakehouse",
                    str(lake_dir),
                    "--rank",
                    str(args.rank),
                    "--iterations",
                    str(args.iterations),
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
            print(runs[-1], flush=True)
    med = {m: statistics.median(r["seconds"] for r in runs if r["mode"] == m) for m in ("java", "vector")}
    native = any(
        Path(d, "libblas.so.3").exists() for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib")
    )
    result = {
        "command": f"python bench/blas.py --scale {args.scale} --rank {args.rank} --iterations {args.iterations} --repeats {args.repeats}",
        "als": {"rank": args.rank, "iterations": args.iterations, "scale": args.scale},
        "runs": runs,
        "median_seconds": med,
        "vector_speedup": round(med["java"] / med["vector"], 3),
        "native_blas": "available"
        if native
        else "not installed on this machine (no libblas.so.3); not measured",
        "decision": "vector BLAS on" if med["vector"] < med["java"] else "vector BLAS off",
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "blas.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
