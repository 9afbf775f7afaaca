"""One SparkSession for the whole test session: local[2], few shuffle partitions, UI off, Delta on."""

from __future__ import annotations

import csv
import gzip
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
GOODBOOKS = SHARED / "data" / "goodbooks-10k"


# the JVM's own JIT: on a short run of tiny frames its C2 compiler thread is the busiest thread of the JVM (77 s of
# 207 s of CPU for an ingest and a run of the small generated data); methods must run 5x as often before they are
# compiled (bench/jvm_threads.py; docs/testing.md)
TINY_FRAME_JVM_OPTIONS = "-XX:CompileThresholdScaling=5"

# the test session's settings for tiny frames (also used by bench/ingest_profile.py, which profiles a test's ingest)
TINY_FRAME_CONF = {
    "spark.ui.enabled": "false",
    "spark.sql.adaptive.enabled": "false",
    "spark.default.parallelism": "4",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.databricks.delta.stats.collect": "false",
    # tiny test frames: compiling whole-stage code costs more than it saves (ingest ~35% faster)
    "spark.sql.codegen.wholeStage": "false",
    # ... nor for single expressions: interpreted projections instead of generated ones. A JFR profile of tiny
    # ingests put 31% of the JVM's samples in generating projection code (mostly for Delta's log schema, in every
    # task); without it, three tiny ingests took 49 s against 60 s (bench/ingest_profile.py; docs/testing.md)
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.driver.extraJavaOptions": TINY_FRAME_JVM_OPTIONS,
    "spark.executor.extraJavaOptions": TINY_FRAME_JVM_OPTIONS,
}


def tiny_frame_submit_args() -> str:
    """``TINY_FRAME_CONF`` as spark-submit arguments, for the JVMs tests start in processes of their own
    (``PYSPARK_SUBMIT_ARGS`` of a child Python, ``EXTRA_ARGS`` of ``submit.sh``)."""
    return " ".join(f"--conf {key}={value}" for key, value in TINY_FRAME_CONF.items())


# `make test` runs the suite on two pytest-xdist workers (`-n 2 --dist loadgroup --no-loadscope-reorder`): the
# second uses the time one process leaves a core idle (docs/testing.md, "Two workers"). A group runs on one worker:
# every test of a file with its file (module fixtures: the self-tuning run, the standalone cluster, the notebooks'
# lakehouse) and every test that reads the `published` lakehouse together, wherever its file is, so no expensive
# fixture is built twice.
# The longest groups go first (durations of a serial run, docs/testing.md), so the two workers finish together.
LONGEST_FIRST = (
    "published",
    "test_tune.py",
    "test_standalone_cluster.py",
    "test_ingest.py",
    "test_notebooks.py",
    "test_als.py",
    "test_fault.py",
)


def worker_group(item: pytest.Item) -> str:
    return "published" if "published" in getattr(item, "fixturenames", ()) else item.path.name


@pytest.hookimpl(wrapper=True)  # around every other plugin's hook: xdist's reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]):
    for item in items:
        item.add_marker(pytest.mark.xdist_group(worker_group(item)))
    rank = {group: i for i, group in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(worker_group(item), len(rank)))  # stable: file order within a group
    return (yield)


def pytest_configure(config: pytest.Config) -> None:
    """xdist passes a test's group to its scheduler as a suffix of the node id, which pytest 9.2 no longer lets a
    plugin change (pytest-xdist#1386): grouping would stop without a word and every expensive fixture be built on
    both workers (27 min against 21 min here). Refused with the remedy instead."""
    grouping = getattr(config.option, "dist", "no") == "loadgroup" and not hasattr(config, "workerinput")
    if grouping and tuple(int(part) for part in pytest.__version__.split(".")[:2]) >= (9, 2):
        raise pytest.UsageError(
            f"pytest {pytest.__version__} breaks pytest-xdist's --dist loadgroup (pytest-xdist#1386): install "
            "the pytest the dev extra pins (`make venv`), or run without -n"
        )


def tiny_frame_spark(app_name: str, checkpoint_dir: str, conf: dict[str, str]):
    """A SparkSession shaped like the test session's (local[2], 4 shuffle partitions, errors only in the log) with
    ``conf`` (``TINY_FRAME_CONF`` and what the caller adds or replaces): the tests' fixture, and the benchmarks
    that measure a test's work (bench/ingest_profile.py, bench/jvm_threads.py)."""
    from recspark.spark import get_spark

    return get_spark(
        app_name=app_name,
        master="local[2]",
        shuffle_partitions=4,
        checkpoint_dir=checkpoint_dir,
        extra_conf=conf,
        log_level="ERROR",
    )


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from recspark.spark import environment

    os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)
    # the session's ALS runs on the OpenBLAS a local run fetches when asked (recspark.spark.native_blas; tested in
    # test_deploy); the runs tests start in processes of their own keep the default, Spark's Java BLAS
    with environment(RECSPARK_NATIVE_BLAS="1"):
        session = tiny_frame_spark(
            "recspark-tests",
            str(tmp_path_factory.mktemp("checkpoints")),
            {
                **TINY_FRAME_CONF,
                # managed (catalog) tables of the notebook tests: a fresh warehouse per test session
                "spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("warehouse")),
                "spark.driver.memory": "4g",
            },
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


@pytest.fixture(scope="session")
def small_csv_only(small_generated, tmp_path_factory):
    """The three CSVs of ``small_generated`` alone (hard links), as the UCSD CSV release ships them: for tests of
    the deployment ways (cluster, notebooks), where the metadata files only add ingest time."""
    src, counts = small_generated
    out = tmp_path_factory.mktemp("raw") / "csv-only"
    out.mkdir()
    for name in ("goodreads_interactions.csv", "user_id_map.csv", "book_id_map.csv"):
        os.link(src / name, out / name)
    return out, counts


@pytest.fixture(scope="session")
def ingested(spark, small_generated, tmp_path_factory):
    """``small_generated`` ingested once: ``(lake, IngestResult)``. Shared: a test that changes the lakehouse takes
    a private copy first (:func:`copy_of`)."""
    from recspark.ingest import run_ingest
    from recspark.tables import Lakehouse

    src, _ = small_generated
    lake = Lakehouse(spark, str(tmp_path_factory.mktemp("ingested") / "lakehouse"))
    return lake, run_ingest(spark, lake, str(src), "goodreads", "ingest-1")


@pytest.fixture()
def lake(spark, tmp_path):
    from recspark.tables import Lakehouse

    return Lakehouse(spark, str(tmp_path / "lakehouse"))


E2E_K = 5


def e2e_cfg(**kw):
    """The small, fast run configuration of the end-to-end tests (k=5, rank 16, 6 iterations)."""
    from recspark.als import AlsParams
    from recspark.config import RunConfig

    base = dict(k=E2E_K, ks=[5, 10], als=AlsParams(rank=16, max_iter=6, reg=0.1), similar_k=5, min_readers=2)
    base.update(kw)
    return RunConfig(**base)


@pytest.fixture(scope="session")
def published(spark, small_generated, ingested, tmp_path_factory):
    """A lakehouse with one published run of the small generated data: ``(lake, summary, raw folder)``. Run with
    ``--no-evaluate``: what publishing needs, and the tests that read it check publication; the evaluation tables
    are checked on the self-tuning run (``tests/test_tune.py``), which evaluates anyway."""
    from recspark.pipeline import run_pipeline

    src, _ = small_generated
    lake = copy_of(ingested[0], tmp_path_factory.mktemp("e2e") / "lakehouse")
    summary = run_pipeline(spark, lake, e2e_cfg(evaluate=False), tmp_path_factory.mktemp("reports"))
    return lake, summary, src


@contextmanager
def polling_served(lake):
    """Polls the served run id from outside (deltalake, as a consumer does) every 50 ms while the block runs;
    yields the set of run ids seen (None if at some moment no run was published)."""
    import threading

    from recspark.serve import latest_published

    seen: set = set()
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                seen.add(latest_published(lake.root))
            except LookupError:
                seen.add(None)
            stop.wait(0.05)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    try:
        yield seen
    finally:
        stop.set()
        t.join()


def write_csv(path, header, rows) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


UCSD_INTERACTION_COLS = ["user_id", "book_id", "is_read", "rating", "is_reviewed"]
TINY_ROWS = [[0, 0, 1, 5, 1], [0, 1, 0, 0, 0], [1, 1, 1, 3, 0], [1, 2, 1, 4, 0]]


def tiny_ucsd(dir_: Path, rows=TINY_ROWS, extra_rows=(), header=UCSD_INTERACTION_COLS, json_lines=()) -> Path:
    """Hand-made UCSD files: the two id maps (2 users, 3 books) and the interactions CSV (``rows``, by default 4
    rows, plus optional ``extra_rows``, e.g. bad ones), and ``json_lines`` as the gzipped JSON interactions."""
    dir_.mkdir(parents=True, exist_ok=True)
    write_csv(dir_ / "user_id_map.csv", ["user_id_csv", "user_id"], [[0, "a" * 32], [1, "b" * 32]])
    write_csv(dir_ / "book_id_map.csv", ["book_id_csv", "book_id"], [[0, 100], [1, 200], [2, 300]])
    write_csv(dir_ / "goodreads_interactions.csv", header, [*rows, *extra_rows])
    if json_lines:
        with gzip.open(dir_ / "goodreads_interactions_dedup.json.gz", "wt") as f:
            f.write("".join(line + "\n" for line in json_lines))
    return dir_


def copy_of(lake, to: Path):
    """A private copy of a path-based lakehouse (Delta logs hold relative paths), so a test may change it."""
    from recspark.tables import Lakehouse

    shutil.copytree(lake.root, to)
    return Lakehouse(lake.spark, str(to))
