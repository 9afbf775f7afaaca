"""Where a tiny ingest's time goes: cProfile of one ``run_ingest`` of the hand-made ``tiny_ucsd`` files (three CSVs
of 4 rows, as the tests ingest them) in a warm JVM, with the test session's settings.

    PYSPARK_PYTHON=.venv/bin/python .venv/bin/python bench/ingest_profile.py [--top 60]

Two warm-up ingests first (class loading, JIT), then one profiled. Prints the seconds and the cumulative time of
recspark's functions and the Spark/Delta calls they wait on. On tiny data the time is fixed cost per Spark job
and Delta commit, so the profile says which jobs and commits a change would save. Prints only; nothing written.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recspark.ingest import run_ingest  # noqa: E402
from recspark.spark import get_spark  # noqa: E402
from recspark.tables import Lakehouse  # noqa: E402
from tests.conftest import TINY_FRAME_CONF, tiny_ucsd  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=60, help="rows of the profile to print")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ingest-profile-"))
    spark = get_spark(
        app_name="ingest-profile",
        master="local[2]",
        shuffle_partitions=4,
        checkpoint_dir=str(root / "checkpoints"),
        extra_conf=TINY_FRAME_CONF,
        log_level="ERROR",
    )
    src = tiny_ucsd(root / "src")
    for i in range(2):
        run_ingest(spark, Lakehouse(spark, str(root / f"warm{i}")), str(src), "goodreads", "warm")
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    run_ingest(spark, Lakehouse(spark, str(root / "lake")), str(src), "goodreads", "profiled")
    prof.disable()
    print(f"ingest seconds {time.perf_counter() - t:.1f}")
    stats = pstats.Stats(prof)
    stats.sort_stats("cumulative").print_stats(r"recspark|delta/tables|readwriter|dataframe.py", args.top)
    spark.stop()


if __name__ == "__main__":
    main()
