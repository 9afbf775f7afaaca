"""Seconds and Spark jobs of one ``recspark publish`` in a fresh local session, with and without extra settings:
the per-step overhead of the publish step on small data, where the number of jobs, not the rows, is the cost.

    PYSPARK_PYTHON=.venv/bin/python .venv/bin/python bench/publish_jobs.py --lakehouse LAKE --repeat 2 \\
        --conf spark.sql.adaptive.enabled=true

(``bench/results/publish_jobs.json`` was measured with ``=false`` while the product still ran publish with adaptive
execution; since 2026-12-03 the product's publish runs without it in local mode, so ``=true`` is the other side.)

``LAKE`` is a lakehouse with a trained model (e.g. ``bench/data/lakehouse-scale-0.0003`` after ``python
bench/scale.py --scale 0.0003 --tune off --no-evaluate``). Each publish runs in its own Python process and JVM
(a cold start, as ``recspark publish`` is), on a fresh copy of the lakehouse, publishing the latest trained model
with ``--k`` books per user; the sides alternate, ``--repeat`` times: first with the ``--conf`` settings, then
with the product's own. Per side: the publish's seconds per step and in all, and the number of Spark jobs (from
the session's REST API; with adaptive execution each shuffle or broadcast stage is a job of its own). Writes
``bench/results/publish_jobs.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generated import add_conf_option, conf_settings  # noqa: E402


def one_publish(lakehouse: str, k: int, conf: dict[str, str]) -> dict:
    """Run in a child process: publish the latest trained model of a copy of ``lakehouse``."""
    sys.path.insert(0, str(HERE.parent))
    from recspark.config import RunConfig
    from recspark.pipeline import publish_stage
    from recspark.spark import get_spark
    from recspark.tables import Lakehouse

    work = Path(tempfile.mkdtemp(prefix="publish-jobs-"))
    try:
        shutil.copytree(lakehouse, work / "lake")
        spark = get_spark(
            master="local[2]",
            checkpoint_dir=str(work / "checkpoints"),
            extra_conf={"spark.ui.retainedJobs": "100000", **conf},
        )
        t = time.perf_counter()
        out = publish_stage(spark, Lakehouse(spark, str(work / "lake")), RunConfig(k=k))
        seconds = round(time.perf_counter() - t, 1)
        sc = spark.sparkContext
        url = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}/jobs"
        with urllib.request.urlopen(url, timeout=60) as r:
            jobs = len(json.load(r))
        spark.stop()
        return {"seconds": seconds, "jobs": jobs, "steps": out["timings"]}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument(
        "--lakehouse", required=True, help="a lakehouse with a trained model (copied, never changed)"
    )
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--repeat", type=int, default=2)
    add_conf_option(p, "the tried side's settings")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    conf = conf_settings(p, args.conf)
    if args.child:
        print(json.dumps(one_publish(args.lakehouse, args.k, conf)))
        return
    runs: dict[str, list[dict]] = {"with --conf": [], "product settings": []}
    for i in range(args.repeat):
        for side, extra in (("with --conf", args.conf), ("product settings", [])):
            cmd = [sys.executable, __file__, "--child", "--lakehouse", args.lakehouse, "--k", str(args.k)]
            cmd += [a for kv in extra for a in ("--conf", kv)]
            done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{side}: the publish failed:\n{done.stderr[-3000:]}")
            run = json.loads(done.stdout.strip().splitlines()[-1])
            runs[side].append(run)
            print(
                f"{side} #{i + 1}: {run['seconds']} s, {run['jobs']} jobs, steps {run['steps']}", flush=True
            )
    out = {
        "command": "python bench/publish_jobs.py --lakehouse LAKE"
        + f" --k {args.k} --repeat {args.repeat}"
        + "".join(f" --conf {kv}" for kv in args.conf),
        "lakehouse": args.lakehouse,
        "measured": time.strftime("%Y-%m-%d"),
        "runs": runs,
    }
    (HERE / "results" / "publish_jobs.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
