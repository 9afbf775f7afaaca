"""Where a tiny ingest's time goes: cProfile of one ``run_ingest`` of the hand-made ``tiny_ucsd`` files (three CSVs
of 4 rows, as the tests ingest them) in a warm JVM, with the test session's settings.

    PYSPARK_PYTHON=.venv/bin/python .venv/bin/python bench/ingest_profile.py [--top 60]
        [--repeat 3] [--conf KEY=VALUE ...] [--jfr FILE]

Two warm-up ingests first (class loading, JIT), then ``--repeat`` timed ones (the first of them profiled).
Prints the seconds and the cumulative time of recspark's functions and the Spark/Delta calls they wait on. On tiny
data the time is fixed cost per Spark job and Delta commit, so the profile says which jobs and commits a change
would save. ``--conf`` adds or overrides Spark settings (to compare a setting against the test session's);
``--jfr`` records the JVM during the timed ingests with Java Flight Recorder and prints the JVM methods found in
the most stack samples (inclusive: a method counts once per sample it is anywhere on the stack), which is where
the driver and the tasks spend their CPU. Prints only; nothing written but the JFR file.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import json
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recspark.ingest import run_ingest  # noqa: E402
from recspark.tables import Lakehouse  # noqa: E402
from tests.conftest import TINY_FRAME_CONF, tiny_frame_spark, tiny_ucsd  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from generated import add_conf_option, conf_settings  # noqa: E402


def hot_methods(jfr_file: Path, top: int) -> list[tuple[float, str]]:
    """The ``top`` JVM methods by the share of execution samples they are on the stack of (``jfr print``)."""
    out = subprocess.run(
        ["jfr", "print", "--json", "--stack-depth", "200", "--events", "jdk.ExecutionSample", str(jfr_file)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    events = json.loads(out)["recording"]["events"]
    counts: collections.Counter[str] = collections.Counter()
    for event in events:
        frames = event["values"]["stackTrace"]["frames"]
        counts.update({f"{f['method']['type']['name']}.{f['method']['name']}" for f in frames})
    return [(100 * c / max(1, len(events)), m) for m, c in counts.most_common(top)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=60, help="rows of the profile to print")
    ap.add_argument(
        "--repeat", type=int, default=1, help="timed ingests after the warm-up (the first profiled)"
    )
    add_conf_option(ap, "extra Spark setting")
    ap.add_argument(
        "--jfr", type=Path, help="record the timed ingests with Java Flight Recorder to this file"
    )
    args = ap.parse_args()
    conf = {**TINY_FRAME_CONF, **conf_settings(ap, args.conf)}
    if args.jfr and not shutil.which("jfr"):
        ap.error("--jfr needs the JDK's `jfr` and `jcmd` tools on PATH")
    root = Path(tempfile.mkdtemp(prefix="ingest-profile-"))
    spark = tiny_frame_spark("ingest-profile", str(root / "checkpoints"), conf)
    src = tiny_ucsd(root / "src")
    for i in range(2):
        run_ingest(spark, Lakehouse(spark, str(root / f"warm{i}")), str(src), "goodreads", "warm")
    if args.jfr:
        pid = str(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())
        jfr_file = args.jfr.resolve()
        subprocess.run(
            ["jcmd", pid, "JFR.start", "name=ingest", "settings=profile", f"filename={jfr_file}"],
            check=True,
            capture_output=True,
        )
    prof = cProfile.Profile()
    seconds = []
    for i in range(args.repeat):
        t = time.perf_counter()
        if i == 0:
            prof.enable()
        run_ingest(spark, Lakehouse(spark, str(root / f"lake{i}")), str(src), "goodreads", "profiled")
        if i == 0:
            prof.disable()
        seconds.append(time.perf_counter() - t)
    if args.jfr:
        subprocess.run(["jcmd", pid, "JFR.stop", "name=ingest"], check=True, capture_output=True)
    print(f"ingest seconds {' '.join(f'{s:.1f}' for s in seconds)} (total {sum(seconds):.1f})")
    print(
        "settings beyond the defaults:",
        {k: v for k, v in conf.items() if TINY_FRAME_CONF.get(k) != v} or "none",
    )
    stats = pstats.Stats(prof)
    stats.sort_stats("cumulative").print_stats(r"recspark|delta/tables|readwriter|dataframe.py", args.top)
    spark.stop()
    if args.jfr:
        print(f"JVM methods on the most stack samples ({jfr_file}):")
        for share, method in hot_methods(jfr_file, args.top):
            print(f"{share:6.1f}%  {method}")


if __name__ == "__main__":
    main()
