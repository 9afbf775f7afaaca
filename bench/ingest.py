"""Ingest throughput (rows/s per stage) on generated UCSD data.

    .venv/bin/python bench/ingest.py --scale 0.01

Generates the data once into bench/data (not committed), ingests it into a fresh lakehouse with the local
default session (local[cores]) and writes bench/results/ingest.json and ingest.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scale", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()
    from generated import generated_files

    from recspark.cli import setup_logging
    from recspark.ingest import run_ingest
    from recspark.spark import get_spark
    from recspark.tables import Lakehouse

    setup_logging()
    raw, gen_seconds = generated_files(args.scale, args.seed)
    lake_dir = HERE / "data" / "lakehouse-ingest"
    shutil.rmtree(lake_dir, ignore_errors=True)
    spark = get_spark(master=f"local[{os.cpu_count()}]", checkpoint_dir=str(HERE / "data" / "checkpoints"))
    lake = Lakehouse(spark, str(lake_dir))
    t = time.perf_counter()
    result = run_ingest(spark, lake, str(raw), "goodreads", "bench")
    total = time.perf_counter() - t
    stages = [
        {
            "table": c.table,
            "file": c.file.rsplit("/", 1)[-1],
            "rows_read": c.read,
            "seconds": c.seconds,
            "rows_per_second": round(c.read / c.seconds) if c.seconds else None,
        }
        for c in result.counts
    ]
    out = {
        "command": f"python bench/ingest.py --scale {args.scale} --seed {args.seed}",
        "scale": args.scale,
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, local[{os.cpu_count()}]",
        "generate_seconds": round(gen_seconds, 1) if gen_seconds else "cached",
        "ingest_seconds": round(total, 1),
        "silver_rows": result.tables,
        "stages": stages,
    }
    res = HERE / "results"
    res.mkdir(exist_ok=True)
    (res / "ingest.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        f"# Ingest throughput, scale {args.scale}",
        "",
        f"Command: `{out['command']}` on {out['machine']}. Total ingest {out['ingest_seconds']} s.",
        "",
        "| stage | file | rows read | seconds | rows/s |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {s['table']} | {s['file']} | {s['rows_read']:,} | {s['seconds']} | {s['rows_per_second'] or ''} |"
        for s in stages
    ]
    (res / "ingest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
