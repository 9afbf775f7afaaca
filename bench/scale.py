"""One end-to-end run at a large generated scale on this machine, measured per stage: seconds, peak memory of the
driver JVM and of the Python workers, shuffle and spill, and the slowest task of each stage against its median
(a straggler shows as a large ratio).

    .venv/bin/python bench/scale.py --scale 0.1 --tune off

What runs is ``recspark run``'s job (:func:`recspark.pipeline.run_job`): ingest (raw files -> bronze -> silver),
the offline evaluation (ALS, item-CF and content side by side with the baselines), ALS on all interactions,
recommend, similar books, popular books, serving tables, check and publish. ``--tune off`` uses the built-in
parameters: one ALS search trial at this size costs about as much as the ALS fit below, and the default budget
is 40 trials' worth, so the search is measured by its per-trial cost instead (the evaluation's fit).

How it is measured:

* seconds: the run's own step timer (``timings``), the ingest's per-file seconds and the evaluation's sub-steps;
* memory: a thread samples ``/proc`` every 0.5 s: resident memory of the JVM (the driver; in local mode it is
  the executor too), of all Python worker processes under it (summed), and of this Python process; the JVM's
  own high-water mark (``VmHWM``) at the end;
* shuffle and spill: every pipeline step names its Spark jobs (``Timer`` sets the job description), and the
  Spark REST API's stage list is summed per description at the end (the UI keeps every stage: the session sets
  ``spark.ui.retainedStages`` high);
* stragglers: for the 12 stages with the most task time, the task-duration quantiles (median, max).

Writes bench/results/scale.json and scale.md (``--out`` changes the name).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

PAGE = 4096
MB = 1 << 20


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def pss_bytes(pid: int) -> int:
    """Proportional set size: forked workers share the daemon's pages, so summing their RSS counts those pages
    once per worker; PSS splits shared pages between the processes that map them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def children_of(root: int) -> list[int]:
    """Every process under ``root`` (the Python daemon and the workers it forks)."""
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out.extend(kids)
        todo.extend(kids)
    return out


def high_water_mark(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


class Sampler(threading.Thread):
    """Peak resident memory per process group, overall and per current step."""

    def __init__(self, jvm_pid: int, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.jvm_pid, self.every = jvm_pid, every
        self.step = "start"
        self.peaks: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            workers = children_of(self.jvm_pid)
            now = {
                "jvm": rss_bytes(self.jvm_pid),
                "python_workers": sum(pss_bytes(p) for p in workers),
                "python_processes": len(workers),
                "python_driver": rss_bytes(os.getpid()),
            }
            now["total"] = now["jvm"] + now["python_workers"] + now["python_driver"]
            for key in (self.step, "all"):
                for k, v in now.items():
                    self.peaks[key][k] = max(self.peaks[key][k], v)

    def mb(self, key: str) -> dict[str, int]:
        return {
            k: v if k == "python_processes" else round(v / MB) for k, v in self.peaks.get(key, {}).items()
        }


def rest(url: str):
    with urllib.request.urlopen(url, timeout=120) as r:
        return json.load(r)


def step_of(description: str | None, names: list[str]) -> str:
    """The run step a stage belongs to: Delta wraps the job description (``Delta: recspark: <step>: ...``)."""
    for name in sorted(names, key=len, reverse=True):
        if f"recspark: {name}" in (description or ""):
            return name
    return "(no step)"


def stage_report(spark, names: list[str]) -> tuple[dict, list, list]:
    """(per job description: stages, jobs, tasks, task seconds, shuffle read/write and spill in MB; the 12 stages with
    the most task time and their task-duration median and max; the one-task stages that ran 1 s or more)."""
    sc = spark.sparkContext
    base = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}"
    stages = rest(f"{base}/stages?status=complete")
    per: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for s in stages:
        d = per[step_of(s.get("description"), names)]
        d["stages"] += 1
        d["tasks"] += s["numTasks"]
        d["task_seconds"] += s["executorRunTime"] / 1000
        d["shuffle_read_mb"] += (s["shuffleLocalBytesRead"] + s["shuffleRemoteBytesRead"]) / MB
        d["shuffle_write_mb"] += s["shuffleWriteBytes"] / MB
        d["memory_spill_mb"] += s["memoryBytesSpilled"] / MB
        d["disk_spill_mb"] += s["diskBytesSpilled"] / MB
    for job in rest(f"{base}/jobs?status=succeeded"):
        per[step_of(job.get("description"), names)]["jobs"] += 1
    steps = {k: {m: round(v, 1) for m, v in d.items()} for k, d in per.items()}
    top = sorted(stages, key=lambda s: -s["executorRunTime"])[:12]
    slow = []
    for s in top:
        q = rest(f"{base}/stages/{s['stageId']}/{s['attemptId']}/taskSummary?quantiles=0.5,1.0")
        med, mx = q["executorRunTime"]
        slow.append(
            {
                "stage": s["stageId"],
                "step": step_of(s.get("description"), names),
                "name": s["name"][:80],
                "tasks": s["numTasks"],
                "task_seconds": round(s["executorRunTime"] / 1000, 1),
                "median_task_s": round(med / 1000, 2),
                "max_task_s": round(mx / 1000, 2),
                "max_over_median": round(mx / med, 1) if med else None,
                "disk_spill_mb": round(s["diskBytesSpilled"] / MB, 1),
            }
        )
    # a stage one task carries while the other cores idle: worth a look when it runs for a second or more
    single = [
        {
            "stage": s["stageId"],
            "step": step_of(s.get("description"), names),
            "name": s["name"][:80],
            "task_s": round(s["executorRunTime"] / 1000, 1),
        }
        for s in stages
        if s["numTasks"] == 1 and s["executorRunTime"] >= 1000
    ]
    return steps, slow, single


@contextmanager
def sampled_steps(sampler: Sampler):
    """Let the sampler know which step of the run is going on (wraps ``Timer.step``)."""
    from recspark import pipeline

    original = pipeline.Timer.step

    @contextmanager
    def step(self, name, *a, **k):
        outer = sampler.step
        sampler.step = name
        try:
            with original(self, name, *a, **k):
                yield
        finally:
            sampler.step = outer

    pipeline.Timer.step = step
    try:
        yield
    finally:
        pipeline.Timer.step = original


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scale", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--tune", choices=["off", "auto"], default="off")
    p.add_argument(
        "--no-evaluate", action="store_true", help="skip the offline evaluation (the production path)"
    )
    p.add_argument("--out", default="scale")
    from generated import add_conf_option, conf_settings, generated_files

    add_conf_option(p, "a Spark setting for the run's session, e.g. spark.sql.adaptive.enabled=true")
    args = p.parse_args()
    extra = conf_settings(p, args.conf)

    from recspark.cli import setup_logging
    from recspark.config import RunConfig, TuneOptions
    from recspark.pipeline import run_job
    from recspark.spark import get_spark
    from recspark.tables import Lakehouse

    setup_logging()
    raw, gen_seconds = generated_files(args.scale, args.seed)
    input_mb = {f.name: round(f.stat().st_size / MB, 1) for f in sorted(raw.iterdir())}
    lake_dir = HERE / "data" / f"lakehouse-scale-{args.scale}"
    shutil.rmtree(lake_dir, ignore_errors=True)
    cores = os.cpu_count() or 2
    t = time.perf_counter()
    spark = get_spark(
        master=f"local[{cores}]",
        checkpoint_dir=str(HERE / "data" / "checkpoints"),
        extra_conf={"spark.ui.retainedStages": "100000", "spark.ui.retainedJobs": "100000", **extra},
    )
    start_seconds = round(time.perf_counter() - t, 1)
    jvm = spark.sparkContext._gateway.proc.pid
    sampler = Sampler(jvm)
    sampler.start()
    lake = Lakehouse(spark, str(lake_dir))
    cfg = RunConfig(evaluate=not args.no_evaluate)
    t = time.perf_counter()
    with sampled_steps(sampler):
        summary = run_job(
            spark,
            lake,
            str(raw),
            "goodreads",
            cfg,
            HERE / "data" / "reports",
            f"scale-{args.scale}",
            tuning=TuneOptions(mode=args.tune),
        )
    total = round(time.perf_counter() - t, 1)
    sampler.stopped.set()
    sampler.join()
    timings = summary["timings"]
    steps, slow, single = stage_report(spark, list(timings))
    ingested = summary["ingest"]
    ev = summary["evaluation"]
    out = {
        "command": f"python bench/scale.py --scale {args.scale} --seed {args.seed} --tune {args.tune}"
        + (" --no-evaluate" if args.no_evaluate else "")
        + "".join(f" --conf {kv}" for kv in args.conf),
        "measured": time.strftime("%Y-%m-%d"),
        "cores": cores,
        "driver_memory": spark.conf.get("spark.driver.memory"),
        "generate_seconds": gen_seconds,
        "start_spark_seconds": start_seconds,
        "input_mb": input_mb,
        "sizes": {
            **ingested.tables,
            "input_rows": sum(c.read for c in ingested.counts if not c.table.startswith("silver")),
        },
        "total_seconds": total,
        "steps": [
            {
                "step": name,
                "seconds": secs,
                "peak_mb": sampler.mb(name),
                **steps.get(name, {}),
            }
            for name, secs in timings.items()
        ],
        "ingest_files": [
            {"table": c.table, "file": c.file.rsplit("/", 1)[-1], "rows": c.read, "seconds": c.seconds}
            for c in ingested.counts
        ],
        "evaluation_seconds": ev.timings if ev is not None else None,
        "evaluation_ndcg10": {m: by_k.get(10, {}).get("ndcg") for m, by_k in ev.results.items()}
        if ev is not None
        else None,
        "published_model": summary["config"].model,
        "peak_mb": sampler.mb("all"),
        "jvm_high_water_mb": round(high_water_mark(jvm) / MB),
        "unattributed_stages": steps.get("(no step)"),
        "slowest_stages": slow,
        "single_task_stages": single,
    }
    results = HERE / "results"
    (results / f"{args.out}.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    (results / f"{args.out}.md").write_text(markdown(out))
    print(markdown(out))


def markdown(o: dict) -> str:
    s = o["sizes"]
    lines = [
        f"# One run at scale {o['command'].split('--scale ')[1].split()[0]} ({o['measured']}, {o['cores']} cores, "
        f"driver memory {o['driver_memory']})",
        "",
        f"`{o['command']}`. {s.get('interactions', 0):,} interactions, {s.get('users', 0):,} users, "
        f"{s.get('books', 0):,} books; {s['input_rows']:,} input rows. Total {o['total_seconds']:.0f} s "
        f"after Spark start ({o['start_spark_seconds']} s); published model: {o['published_model']}.",
        "",
        "| step | seconds | peak JVM MB | peak Python workers MB | jobs | tasks | task s | shuffle write MB "
        "| disk spill MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for st in o["steps"]:
        pk = st["peak_mb"]
        lines.append(
            f"| {st['step']} | {st['seconds']} | {pk.get('jvm', '')} | {pk.get('python_workers', '')} | "
            f"{int(st.get('jobs', 0))} | {int(st.get('tasks', 0))} | {st.get('task_seconds', '')} | {st.get('shuffle_write_mb', '')} | "
            f"{st.get('disk_spill_mb', '')} |"
        )
    pk = o["peak_mb"]
    lines += [
        "",
        f"Peak resident memory over the run: JVM {pk.get('jvm')} MB (its own high-water mark "
        f"{o['jvm_high_water_mb']} MB), Python workers {pk.get('python_workers')} MB (proportional set size, "
        f"at most {pk.get('python_processes')} processes), this driver process "
        f"{pk.get('python_driver')} MB, all together {pk.get('total')} MB.",
        "",
        "Ingest per file:",
        "",
        "| table | file | rows | seconds | rows/s |",
        "|---|---|---:|---:|---:|",
    ]
    for f in o["ingest_files"]:
        rate = f"{f['rows'] / f['seconds']:,.0f}" if f["seconds"] else ""
        lines.append(f"| {f['table']} | {f['file']} | {f['rows']:,} | {f['seconds']} | {rate} |")
    if o["evaluation_seconds"]:
        lines += [
            "",
            "Evaluation sub-steps (s): " + ", ".join(f"{k} {v}" for k, v in o["evaluation_seconds"].items()),
        ]
    if o["evaluation_ndcg10"]:
        lines += [
            "",
            "Evaluation NDCG@10: "
            + ", ".join(f"{k} {v:.4f}" for k, v in o["evaluation_ndcg10"].items() if v is not None),
        ]
    lines += [
        "",
        "Slowest stages (task time) and their longest task against the median:",
        "",
        "| step | stage | tasks | task s | median task s | max task s | max/median | disk spill MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for x in o["slowest_stages"]:
        lines.append(
            f"| {x['step']} | {x['stage']} {x['name']} | {x['tasks']} | {x['task_seconds']} | {x['median_task_s']} "
            f"| {x['max_task_s']} | {x['max_over_median']} | {x['disk_spill_mb']} |"
        )
    single = o.get("single_task_stages") or []
    lines += ["", f"One-task stages that ran 1 s or more: {len(single)}."]
    if single:
        lines += ["", "| step | stage | task s |", "|---|---|---:|"]
        lines += [f"| {x['step']} | {x['stage']} {x['name']} | {x['task_s']} |" for x in single]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
