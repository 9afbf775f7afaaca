"""Spark's ALS on its Java BLAS against the OpenBLAS a local run fetches when asked (``recspark.spark.native_blas``).

    .venv/bin/python bench/blas.py --source /tmp/gbl/ratings --format goodbooks --ranks 64,256 --iterations 3

The input (``--source`` in ``--format``, or generated at ``--scale``) is ingested once into ``bench/data``; then
every measurement is one fresh Spark JVM (``local[N]``, N the machine's cores) that fits implicit ALS (the built-in
regParam, alpha and preference; ``--iterations``) at each rank of ``--ranks`` and reports the seconds of each
fit and the BLAS and LAPACK classes netlib loaded. Modes, alternated so that machine noise hits both:

* ``java``: ``RECSPARK_NATIVE_BLAS=0`` (the product's default), so netlib's Vector-API BLAS and pure-Java (F2J) LAPACK;
* ``openblas``: ``RECSPARK_NATIVE_BLAS=1``, OpenBLAS through JNI with one thread per task;
* ``openblas-threaded`` (with ``--threaded``): the same with as many OpenBLAS threads as cores in every task.

Appends to ``bench/results/blas.json``.
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
sys.path.insert(0, str(HERE))
from common import append_result  # noqa: E402

# the environment of each mode's process: RECSPARK_NATIVE_BLAS, and for "openblas-threaded" an OpenBLAS thread count
# set beforehand (get_spark sets 1 only where it is unset), so that each task's calls thread over every core
MODES = {
    "java": {"RECSPARK_NATIVE_BLAS": "0"},
    "openblas": {"RECSPARK_NATIVE_BLAS": "1"},
    "openblas-threaded": {"RECSPARK_NATIVE_BLAS": "1", "OPENBLAS_NUM_THREADS": str(os.cpu_count())},
}


def child(args) -> None:
    from recspark import als
    from recspark.features import Weights, preference
    from recspark.spark import get_spark
    from recspark.tables import Lakehouse

    spark = get_spark(
        master=f"local[{os.cpu_count()}]",
        log_level="ERROR",
        checkpoint_dir=str(HERE / "data" / "checkpoints"),
    )
    jvm = spark.sparkContext._jvm
    netlib = jvm.dev.ludovic.netlib
    out = {
        "mode": args.mode,
        "blas": netlib.blas.BLAS.getInstance().getClass().getSimpleName(),
        "lapack": netlib.lapack.LAPACK.getInstance().getClass().getSimpleName(),
        "seconds": {},
    }
    prefs = (
        Lakehouse(spark, args.lakehouse)
        .read("silver", "interactions")
        .transform(preference(Weights()))
        .cache()
    )
    prefs.count()
    for rank in (int(r) for r in args.ranks.split(",")):
        t = time.perf_counter()
        model = als.fit(spark, prefs, als.AlsParams(rank=rank, max_iter=args.iterations))
        model.itemFactors.count()
        out["seconds"][str(rank)] = round(time.perf_counter() - t, 2)
    print(json.dumps(out))


def lakehouse(args) -> tuple[Path, str]:
    """The ingested input (made once) and its description."""
    from recspark.ingest import run_ingest
    from recspark.spark import get_spark
    from recspark.tables import Lakehouse

    if args.source:
        raw, fmt, what = args.source, args.format, f"{args.source} ({args.format})"
    else:
        from recspark.sources.synthetic import generate

        raw, fmt, what = (
            HERE / "data" / f"scale{args.scale}-seed42",
            "goodreads",
            f"generated, scale {args.scale}",
        )
        if not (raw / "goodreads_interactions.csv").exists():
            generate(raw, scale=args.scale, seed=42)
    lake_dir = HERE / "data" / f"lakehouse-blas-{Path(raw).name}"
    if not (lake_dir / "silver" / "interactions").exists():
        spark = get_spark(master=f"local[{os.cpu_count()}]", log_level="ERROR")
        run_ingest(spark, Lakehouse(spark, str(lake_dir)), str(raw), fmt, "bench")
        spark.stop()
    return lake_dir, what


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, help="an input folder (else generated data at --scale)")
    p.add_argument("--format", choices=["goodreads", "goodbooks"], default="goodreads")
    p.add_argument("--scale", type=float, default=0.002)
    p.add_argument("--ranks", default="64,256")
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threaded", action="store_true", help="also the mode openblas-threaded")
    p.add_argument("--mode", choices=sorted(MODES), help=argparse.SUPPRESS)
    p.add_argument("--lakehouse", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.mode:
        child(args)
        return
    lake_dir, what = lakehouse(args)
    runs = []
    for _ in range(args.repeats):
        for mode, settings in MODES.items():
            if mode == "openblas-threaded" and not args.threaded:
                continue
            cmd = [sys.executable, __file__, "--mode", mode, "--lakehouse", str(lake_dir)]
            cmd += ["--ranks", args.ranks, "--iterations", str(args.iterations)]
            env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"} | settings
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
            print(runs[-1], flush=True)
    median = {
        mode: {
            r: round(statistics.median(x["seconds"][r] for x in runs if x["mode"] == mode), 2)
            for r in runs[0]["seconds"]
        }
        for mode in dict.fromkeys(x["mode"] for x in runs)
    }
    result = {
        "question": "How much faster does ALS fit on the OpenBLAS a local run fetches when asked than on Spark's Java BLAS?",
        "command": "python bench/blas.py " + " ".join(sys.argv[1:]),
        "measured": time.strftime("%Y-%m-%d"),
        "data": what,
        "als": {"ranks": args.ranks, "iterations": args.iterations, "cores": os.cpu_count()},
        "runs": runs,
        "median_seconds": median,
        "speedup over java": {
            mode: {r: round(median["java"][r] / m[r], 2) for r in m}
            for mode, m in median.items()
            if mode != "java"
        },
    }
    print(json.dumps(result["median_seconds"]), json.dumps(result["speedup over java"]))
    append_result("blas", result)


if __name__ == "__main__":
    main()
