"""Where the test JVM's CPU goes: one ingest and one ``run`` of the small generated data (what the ``published``
test fixture does, with the test session's settings), each side in a JVM of its own, then the CPU seconds of
every JVM thread read from ``/proc/<pid>/task/*/stat`` (Linux only), grouped by thread name.

    PYSPARK_PYTHON=.venv/bin/python .venv/bin/python bench/jvm_threads.py \\
        [--java-options="-XX:CompileThresholdScaling=5" ...] [--repeat 1]

Each ``--java-options`` value is one side (the empty string: the JVM's defaults, always measured first); the
sides alternate ``--repeat`` times. ``TINY_FRAME_CONF``'s own JVM options are replaced by the side's, so every
side names all of its options. Why: on small data the JIT compiler threads, not Spark's tasks, were the busiest
threads of the JVM (docs/testing.md, "The JVM compiles less"); with two test workers on two cores, CPU is what
sets the wall clock. Writes ``bench/results/jvm_threads.json``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
JVM_OPTION_KEYS = ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of each live thread of process ``pid``, summed by name (digits dropped, so
    ``Executor task launch worker-12`` and ``-13`` are one group)."""
    hz = os.sysconf("SC_CLK_TCK")
    out: collections.Counter[str] = collections.Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        group = "Executor task" if name.startswith("Executor task") else re.sub(r"[\d#\-]+$", "", name)
        out[group.strip() or name] += (int(fields[11]) + int(fields[12])) / hz
    return dict(out)


def one_side(java_options: str) -> dict:
    """Run in a child process: a fresh JVM, the generated data ingested, then one run published."""
    sys.path.insert(0, str(HERE.parent))
    from recspark.ingest import run_ingest
    from recspark.pipeline import run_pipeline
    from recspark.sources.synthetic import generate
    from recspark.tables import Lakehouse
    from tests.conftest import TINY_FRAME_CONF, e2e_cfg, tiny_frame_spark

    conf = {k: v for k, v in TINY_FRAME_CONF.items() if k not in JVM_OPTION_KEYS}
    if java_options:
        conf.update(dict.fromkeys(JVM_OPTION_KEYS, java_options))
    root = Path(tempfile.mkdtemp(prefix="jvm-threads-"))
    try:
        spark = tiny_frame_spark(
            "jvm-threads", str(root / "checkpoints"), {**conf, "spark.driver.memory": "4g"}
        )
        pid = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
        generate(root / "src", scale=0.0002, seed=11)  # the tests' small_generated data
        t = time.perf_counter()
        lake = Lakehouse(spark, str(root / "lakehouse"))
        run_ingest(spark, lake, str(root / "src"), "goodreads", "ingest-1")
        ingest_s = time.perf_counter() - t
        run_pipeline(spark, lake, e2e_cfg(evaluate=False), root / "reports")
        seconds = time.perf_counter() - t
        threads = thread_cpu(pid)
        spark.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "java_options": java_options,
        "ingest_s": round(ingest_s, 1),
        "ingest_and_run_s": round(seconds, 1),
        "jvm_cpu_s": round(sum(threads.values()), 1),
        "threads_cpu_s": {
            k: round(v, 1) for k, v in sorted(threads.items(), key=lambda kv: -kv[1]) if v >= 0.5
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--java-options", action="append", default=[], help="one side's JVM options (repeatable)")
    p.add_argument("--repeat", type=int, default=1, help="rounds of all sides, alternated")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        print(json.dumps(one_side(args.child)))
        return
    if not Path("/proc/self/task").is_dir():
        p.error("reads /proc/<pid>/task: Linux only")
    sides = ["", *(o for o in args.java_options if o)]
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    for i in range(args.repeat):
        for side in sides:
            cmd = [sys.executable, __file__, f"--child={side}"]
            done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ, check=False)
            if done.returncode != 0:
                raise SystemExit(f"[{side}]: the run failed:\n{done.stderr[-3000:]}")
            run = json.loads(done.stdout.strip().splitlines()[-1])
            runs[side].append(run)
            top = ", ".join(f"{k} {v}" for k, v in list(run["threads_cpu_s"].items())[:4])
            print(
                f"[{side or 'defaults'}] #{i + 1}: {run['ingest_and_run_s']} s, JVM CPU {run['jvm_cpu_s']} s ({top})",
                flush=True,
            )
    out = {
        "command": "python bench/jvm_threads.py"
        + "".join(f' --java-options="{o}"' for o in args.java_options)
        + f" --repeat {args.repeat}",
        "measured": time.strftime("%Y-%m-%d"),
        "runs": runs,
    }
    (HERE / "results" / "jvm_threads.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
