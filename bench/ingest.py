"""Ingest throughput (rows/s per stage) on generated UCSD data.

    .venv/bin/python bench/ingest.py --scale 0.01 --repeat 3

Generates the data once into bench/data (not committed). One warm-up ingest of the scale-0.001 files comes
first, so that no file pays for the JVM's start (class loading, JIT compilation: the file ingested first would
otherwise look slower). Then the files are ingested ``--repeat`` times into a fresh lakehouse with the local
default session (local[cores]); each stage reports its median seconds (and the range). Writes
bench/results/ingest.json and ingest.md (or ``--out NAME``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scale", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--repeat", type=int, default=3, help="ingests measured (after one warm-up); medians reported"
    )
    p.add_argument("--out", default="ingest", help="results file name (without .json/.md)")
    args = p.parse_args()
    from generated import generated_files

    from recspark.cli import setup_logging
    from recspark.ingest import run_ingest
    from recspark.spark import get_spark
    from recspark.tables import Lakehouse

    setup_logging()
    raw, gen_seconds = generated_files(args.scale, args.seed)
    warm_raw, _ = generated_files(0.001, args.seed)
    lake_dir = HERE / "data" / "lakehouse-ingest"
    spark = get_spark(master=f"local[{os.cpu_count()}]", checkpoint_dir=str(HERE / "data" / "checkpoints"))

    def ingest(source: Path):
        shutil.rmtree(lake_dir, ignore_errors=True)
        t = time.perf_counter()
        result = run_ingest(spark, Lakehouse(spark, str(lake_dir)), str(source), "goodreads", "bench")
        return result, time.perf_counter() - t

    ingest(warm_raw)
    runs = [ingest(raw) for _ in range(args.repeat)]
    result = runs[-1][0]
    seconds: dict[str, list[float]] = {}
    for r, _ in runs:
        for c in r.counts:
            seconds.setdefault(c.table, []).append(c.seconds)
    stages = []
    for c in result.counts:
        secs = seconds[c.table]
        med = statistics.median(secs)
        stages.append(
            {
                "table": c.table,
                "file": c.file.rsplit("/", 1)[-1],
                "rows_read": c.read,
                "seconds": round(med, 2),
                "seconds_all": secs,
                "rows_per_second": round(c.read / med) if med else None,
            }
        )
    by = {s["table"]: s for s in stages}
    ratio = (
        round(by["interactions_json"]["seconds"] / by["interactions_csv"]["seconds"], 2)
        if {"interactions_json", "interactions_csv"} <= by.keys()
        else None
    )
    out = {
        "command": f"python bench/ingest.py --scale {args.scale} --seed {args.seed} --repeat {args.repeat}",
        "scale": args.scale,
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, local[{os.cpu_count()}]",
        "generate_seconds": round(gen_seconds, 1) if gen_seconds else "cached",
        "ingest_seconds": [round(t, 1) for _, t in runs],
        "json_over_csv": ratio,
        "silver_rows": result.tables,
        "stages": stages,
    }
    res = HERE / "results"
    res.mkdir(exist_ok=True)
    (res / f"{args.out}.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        f"# Ingest throughput, scale {args.scale}",
        "",
        f"Command: `{out['command']}` on {out['machine']}: one warm-up ingest of the scale-0.001 files, then "
        f"{args.repeat} ingests of these ({', '.join(f'{t} s' for t in out['ingest_seconds'])}). Seconds are "
        "the median per stage, with the range. Rows/s per core = rows/s / cores.",
        "",
        f"Gzipped dedup JSON / CSV: **{ratio}x** the seconds for the same interactions.",
        "",
        "| stage | file | rows read | seconds (median) | range | rows/s |",
        "|---|---|---:|---:|---|---:|",
    ]
    lines += [
        f"| {s['table']} | {s['file']} | {s['rows_read']:,} | {s['seconds']} | "
        f"{min(s['seconds_all'])}-{max(s['seconds_all'])} | {s['rows_per_second'] or ''} |"
        for s in stages
    ]
    (res / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
