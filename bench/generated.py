"""What the scale benchmarks share: generated UCSD data (cached in bench/data, not committed), a fresh
lakehouse on the local default session (local[cores]), and the ``--conf KEY=VALUE`` option of the scripts that
compare Spark settings."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def add_conf_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``--conf KEY=VALUE`` (repeatable): Spark settings for the session a benchmark starts."""
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help=help)


def conf_settings(parser: argparse.ArgumentParser, items: list[str]) -> dict[str, str]:
    """The ``--conf`` items as a dict; a malformed one is a usage error, not a traceback."""
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--conf {item!r}: expected KEY=VALUE")
        settings[key] = value
    return settings


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """The options of a bench that runs on generated data or on real files given with ``--source``:
    ``--scale``, ``--seed``, ``--source``, ``--format``, and ``--max-users`` (the test users given candidates)."""
    parser.add_argument("--scale", type=float, default=0.003)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--source", default=None, help="real files instead of generated data")
    parser.add_argument("--format", default="goodreads", choices=["goodreads", "goodbooks"])
    parser.add_argument(
        "--max-users", type=int, default=4000, help="test users given candidates (a hashed sample)"
    )


def generated_files(scale: float, seed: int) -> tuple[Path, float | None]:
    """``(folder, seconds)``: the generated UCSD files for ``(scale, seed)`` in bench/data, made on first use
    (``seconds`` is the generator's time then, None when they were already there)."""
    import time

    from recspark.sources.synthetic import generate

    raw = HERE / "data" / f"scale{scale}-seed{seed}"
    if (raw / "goodreads_interactions.csv").exists():
        return raw, None
    t = time.perf_counter()
    generate(raw, scale=scale, seed=seed)
    return raw, round(time.perf_counter() - t, 1)


def fresh_lakehouse(scale: float, seed: int, name: str, generate: bool = True):
    """``(spark, lake, raw)``: the generated files for ``(scale, seed)`` (made once; ``raw`` None without
    ``generate``, for a bench given real files) and an empty lakehouse ``bench/data/lakehouse-<name>-<scale>``."""
    from recspark.spark import get_spark
    from recspark.tables import Lakehouse

    raw = generated_files(scale, seed)[0] if generate else None
    lake_dir = HERE / "data" / f"lakehouse-{name}-{scale}"
    shutil.rmtree(lake_dir, ignore_errors=True)
    cores = os.cpu_count() or 2
    spark = get_spark(master=f"local[{cores}]", checkpoint_dir=str(HERE / "data" / "checkpoints"))
    return spark, Lakehouse(spark, str(lake_dir)), raw


def persisted_holdout(lake, seed: int = 42):
    """``(train, test, truth)``: the holdout split of ``recspark run`` (20% of each user's books, ``seed``) written
    to the lakehouse and read back (deterministic input for ALS), ``train`` cached; ``truth`` = the liked held-out
    ``(user_idx, book_idx)`` pairs, cached."""
    from recspark import columns as C
    from recspark import split
    from recspark.candidates import reads_recorded
    from recspark.tune import liked

    s = split.holdout(lake.read("silver", "interactions"), fraction=0.2, seed=seed, max_held_out=None)
    lake.write(s.train, "model", "split_train")
    lake.write(s.test, "model", "split_test")
    train = lake.read("model", "split_train").cache()
    test = lake.read("model", "split_test")
    return train, test, liked(test, reads_recorded(train)).select(C.USER_IDX, C.BOOK_IDX).cache()
