"""One SparkSession for the whole test session: local[2], few shuffle partitions, UI off, Delta on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
GOODBOOKS = SHARED / "data" / "goodbooks-10k"


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from recspark.spark import get_spark

    os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)
    session = get_spark(
        app_name="recspark-tests",
        master="local[2]",
        shuffle_partitions=4,
        checkpoint_dir=str(tmp_path_factory.mktemp("checkpoints")),
        extra_conf={
            "spark.ui.enabled": "false",
            # managed (catalog) tables of the notebook tests: a fresh warehouse per test session
            "spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("warehouse")),
            "spark.driver.memory": "4g",
            "spark.sql.adaptive.enabled": "false",
            "spark.default.parallelism": "4",
            "spark.databricks.delta.snapshotPartitions": "2",
            "spark.databricks.delta.stats.collect": "false",
            # tiny test frames: compiling whole-stage code costs more than it saves (ingest ~35% faster)
            "spark.sql.codegen.wholeStage": "false",
        },
        log_level="ERROR",
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def generated(tmp_path_factory):
    """A generated UCSD dataset (scale 0.002: ~457k interactions, 1.8k users, 4.7k books), shared by the tests."""
    from recspark.sources.synthetic import generate

    out = tmp_path_factory.mktemp("raw") / "goodreads"
    counts = generate(out, scale=0.002, seed=7)
    return out, counts


@pytest.fixture(scope="session")
def small_generated(tmp_path_factory):
    """A tiny generated UCSD dataset (scale 0.0002: ~46k interactions) for ingest round trips."""
    from recspark.sources.synthetic import generate

    out = tmp_path_factory.mktemp("raw") / "small"
    counts = generate(out, scale=0.0002, seed=11)
    return out, counts


@pytest.fixture()
def lake(spark, tmp_path):
    from recspark.tables import Lakehouse

    return Lakehouse(spark, str(tmp_path / "lakehouse"))
