"""Ingest throughput (rows/s per stage) on generated UCSD data.

    .venv/bin/python bench/ingest.py --scale 0.01 --repeat 3

Generates the data once into bench/data (not committed). One warm-up ingest of the scale-0.001 files comes
first, so that no file pays for the JVM's start (class loading, JIT compilation: the file ingested first would
otherwise look slower). Then the files are ingested ``--repeat`` times into a fresh lakehouse with the local
default session (local[cores]); each stage reports its median seconds (and the range). Then each way in for
the interactions (the CSV with its two id maps; the gzipped dedup JSON) is ingested alone, ``--repeat`` times,
end to end (bronze + silver). Writes bench/results/ingest.json and ingest.md (or ``--out NAME``).
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


PATHS = {  # the two ways the UCSD interactions come in
    "CSV": ("goodreads_interactions.csv", "user_id_map.csv", "book_id_map.csv"),
    "gz JSON": ("goodreads_interactions_dedup.json.gz",),
}


def path_folder(raw: Path, name: str, files: tuple[str, ...]) -> Path:
    """A folder holding only ``files`` of ``raw`` (hard links: no copy, same modification times)."""
    out = raw.parent / f"{raw.name}-{name.replace(' ', '-')}-only"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    for f in files:
        os.link(raw / f, out / f)
    return out


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
    # each way in for the interactions alone (bronze + silver + bookkeeping), as a user with only those files
    paths = {name: path_folder(raw, name, files) for name, files in PATHS.items()}
    path_runs = {
        name: [round(ingest(folder)[1], 2) for _ in range(args.repeat)] for name, folder in paths.items()
    }
    path_seconds = {name: round(statistics.median(t), 2) for name, t in path_runs.items()}
    path_ratio = round(path_seconds["gz JSON"] / path_seconds["CSV"], 2)
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
        "paths": {
            name: {"files": list(PATHS[name]), "seconds": path_seconds[name], "seconds_all": path_runs[name]}
            for name in PATHS
        },
        "json_path_over_csv_path": path_ratio,
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
        f"Gzipped dedup JSON / CSV, the bronze stage of the interactions file alone: **{ratio}x** the seconds "
        "for the same interactions.",
        "",
        "Each way in for the interactions, ingested alone into a fresh lakehouse (bronze + silver + "
        f"bookkeeping; the medians of {args.repeat}): JSON path / CSV path = **{path_ratio}x**.",
        "",
        "| path | files | seconds (median) | range |",
        "|---|---|---:|---|",
        *(
            f"| {name} | {', '.join(PATHS[name])} | {path_seconds[name]} | "
            f"{round(min(path_runs[name]), 2)}-{round(max(path_runs[name]), 2)} |"
            for name in PATHS
        ),
        "",
        "Every file of the full dataset, ingested together:",
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
