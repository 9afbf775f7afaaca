"""SparkSession for local development, spark-submit and Databricks, with Delta Lake configured.

One builder, three situations:

* **An active session exists** (Databricks notebooks, a test fixture, an application that already made one):
  it is returned unchanged. Databricks ships Delta itself.
* **spark-submit** (the driver was launched by ``spark-submit``): the master, memory and jars come from the
  submit command; we only add what is missing (Delta extensions, checkpoint directory).
* **Local default** (``recspark ...`` from a shell): the CLI passes ``master="local[N]"``; this module sizes the
  driver memory to the machine and fetches the Delta jars.

Delta jars. ``spark.jars.packages`` lets Spark's own resolver (Ivy) download ``io.delta:delta-spark_4.2_2.13``
and its dependencies from Maven Central the first time, into a cache directory
(``$RECSPARK_CACHE/ivy``, default ``~/.cache/recspark/ivy``); later starts resolve from that cache with no
network. The resolver chain is written to an ``ivysettings.xml`` that names Maven Central only (or
``$RECSPARK_MAVEN_REPO``, for a corporate mirror), which avoids the slow, noisy look-ups of the default chain.
Processes that start at once on a machine without the jars (the test suite's two workers, two jobs) resolve one
after the other under a file lock (:func:`resolution_lock`): the second from the cache the first filled.

Jar version. The PyPI package is ``delta-spark==4.4.1`` but Maven Central publishes
``delta-spark_4.2_2.13`` only as 4.4.0 (checked 2026-11-22: maven-metadata.xml lists 4.4.0 alone), so the jar
is pinned to 4.4.0; the Python API of a patch release is the same. Override with ``$RECSPARK_DELTA_VERSION``.

BLAS and LAPACK. ALS in Spark uses ``dev.ludovic.netlib``: a native BLAS and LAPACK through JNI when it can load
them (``libblas.so.3``, ``liblapack.so.3``), else the JVM's Vector-API BLAS and a pure-Java (F2J) LAPACK. Each ALS
iteration solves one ``rank x rank`` system per user and per book (``dppsv``, ``rank³/3`` operations each), and
in pure Java those solves dominate at large ranks. A local run started with ``RECSPARK_NATIVE_BLAS=1`` that finds
no system LAPACK fetches OpenBLAS as JavaCPP packages it on Maven Central (``org.bytedeco:openblas``, linux-x86_64,
20 MB, once, into ``$RECSPARK_CACHE/openblas-<version>``; :func:`native_blas`) and points netlib at it, with one
OpenBLAS thread per task (:func:`native_blas_conf`). Measured side by side (``bench/blas.py``,
``bench/results/blas.json``): implicit ALS on the goodbooks-like ratings (3,000 users, 8,000 books), 3 iterations,
fitted in 16.4 s against 66.1 s at rank 256 (4.0x) and 4.5 s against 7.1 s at rank 64 (1.56x). Where the fetch
fails, or on another platform, Spark's Java BLAS runs (slower, the same model) and a warning says so.

Why it is not the default yet: the self-tuning search has a time budget, and with rank 256 four times cheaper it
reaches its 12-iteration rung where it stopped at 3 before. On the real goodbooks-10k ``to_read`` shelves the
blend check then saw a converged ALS tie the blend on validation and published ALS alone: NDCG@10 0.0756 from
outside against 0.0909 (docs/quality.md, "Native BLAS and the search"). With the rules since (the blend's one
standard error, the default check's two) the lists were those of the Java BLAS on the generated UCSD shelves,
ratings and next shelves too, but 300 heavy shelvers over 54k books ran 1,781 s against 929 s: a rank-256 trial fit
its share of the budget, won, and was fitted with 12 iterations twice (docs/quality.md, "Self-tuning: two standard
errors against the default"). spark-submit and Databricks keep their
platform's BLAS (a system OpenBLAS, Debian ``libopenblas0-pthread`` or ``make native-blas``, is loaded by netlib
by itself, with the same effect on the search).

Adaptive execution. In local mode the steps after ingest run without Spark's adaptive query execution
(:func:`after_ingest`); ingest keeps it (Spark's default). Measured back to back at scale 0.03 (README,
Benchmarks, "Adaptive execution after ingest"): a whole run took 855 s without it after ingest against 1,117 s
with it everywhere, the recommend step 126.6 s against 391.0 s; ingest took 213 s with it against 246 s without
(scale 0.01, the session before). A session started with an explicit ``spark.sql.adaptive.enabled`` keeps that
value everywhere; clusters and Databricks keep their own settings.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import platform
import re
import shutil
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import wraps
from pathlib import Path

from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

SPARK_VERSION = "4.2"
SCALA_VERSION = "2.13"
DELTA_JAR_VERSION = os.environ.get("RECSPARK_DELTA_VERSION", "4.4.0")
DELTA_PACKAGE = f"io.delta:delta-spark_{SPARK_VERSION}_{SCALA_VERSION}:{DELTA_JAR_VERSION}"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2/"

# Dependencies of the Delta jar (through delta-kernel-defaults and delta-storage) that pyspark ships itself, in a
# newer or equal version: about 75 MB of the 85 MB Ivy would fetch. Spark puts the jars of ``spark.jars`` in a
# class loader that asks pyspark's first, so these copies were never the ones loaded; Ivy leaves them out
# (``spark.jars.excludes``), and ``tests/test_deploy.py`` checks that pyspark still ships every one of them.
SHIPPED_WITH_PYSPARK = (
    "com.fasterxml.jackson.core:jackson-annotations",
    "com.fasterxml.jackson.core:jackson-core",
    "com.fasterxml.jackson.core:jackson-databind",
    "com.github.luben:zstd-jni",
    "com.google.code.findbugs:jsr305",
    "commons-pool:commons-pool",
    "io.airlift:aircompressor",
    "org.apache.hadoop:hadoop-client-api",
    "org.apache.hadoop:hadoop-client-runtime",
    "org.apache.logging.log4j:log4j-api",
    "org.apache.logging.log4j:log4j-core",
    "org.apache.logging.log4j:log4j-slf4j2-impl",
    "org.apache.parquet:parquet-column",
    "org.apache.parquet:parquet-common",
    "org.apache.parquet:parquet-encoding",
    "org.apache.parquet:parquet-format-structures",
    "org.apache.parquet:parquet-hadoop",
    "org.apache.parquet:parquet-jackson",
    "org.locationtech.jts:jts-core",
    "org.roaringbitmap:RoaringBitmap",
    "org.slf4j:slf4j-api",
    "org.xerial.snappy:snappy-java",
)

# OpenBLAS for netlib (BLAS and LAPACK in one library, with the runtime it links), as JavaCPP publishes it on Maven
# Central: one jar per platform, the libraries under org/bytedeco/openblas/<platform>/ (RUNPATH $ORIGIN)
OPENBLAS_VERSION = "0.3.31-1.5.13"
OPENBLAS_PLATFORM = "linux-x86_64"
OPENBLAS_LIBS = ("libopenblas.so.0", "libgfortran.so.5", "libquadmath.so.0", "libgcc_s.so.1")
JAVA_OPTIONS = "spark.driver.extraJavaOptions"
SYSTEM_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib")

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def cache_dir() -> Path:
    """Where downloaded jars and other caches live (``$RECSPARK_CACHE``, default ``~/.cache/recspark``)."""
    return Path(os.environ.get("RECSPARK_CACHE", Path.home() / ".cache" / "recspark")).expanduser()


def ivy_settings() -> Path:
    """Write (once) an Ivy settings file whose only remote resolver is Maven Central (or a mirror)."""
    repo = os.environ.get("RECSPARK_MAVEN_REPO", MAVEN_CENTRAL)
    ivy_home = cache_dir() / "ivy"
    ivy_home.mkdir(parents=True, exist_ok=True)
    path = ivy_home / "ivysettings.xml"
    text = f"""<ivysettings>
  <settings defaultResolver="chain"/>
  <caches defaultCacheDir="{ivy_home / "cache"}"/>
  <resolvers>
    <chain name="chain" returnFirst="true">
      <ibiblio name="central" m2compatible="true" root="{repo}"/>
    </chain>
  </resolvers>
</ivysettings>
"""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def machine_memory_bytes() -> int:
    """Physical memory of this machine (Linux/macOS); 8 GiB when unknown."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def local_driver_memory() -> str:
    """Driver heap for local mode: half the machine, at least 1g, at most 64g (Python workers need the rest)."""
    gib = max(1, min(64, machine_memory_bytes() // (2 << 30)))
    return f"{gib}g"


def on_databricks() -> bool:
    """True on a Databricks cluster (notebook, wheel or Python task): the runtime provides Spark and Delta."""
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def launched_by_spark_submit() -> bool:
    """True when this Python driver was started by spark-submit (the JVM is already up and configured)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def jar_list_file() -> Path:
    """Where the jar paths of the first successful resolution are remembered."""
    # named after the list of jars left out too: a cache made with another list resolves once more
    excluded = hashlib.sha1(",".join(SHIPPED_WITH_PYSPARK).encode()).hexdigest()[:8]
    return cache_dir() / f"delta-jars-{DELTA_PACKAGE.replace(':', '_')}-excl-{excluded}.txt"


def cached_jars() -> list[str] | None:
    """The remembered Delta jar files, or None when there are none yet (or one has gone missing)."""
    path = jar_list_file()
    if not path.exists():
        return None
    jars = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return jars if jars and all(Path(j).is_file() for j in jars) else None


def remember_jars(spark: SparkSession) -> None:
    """After Spark's resolver fetched the packages, keep the list of the local jar files it used."""
    ivy_jars = str(cache_dir() / "ivy")
    listed = spark.sparkContext.getConf().get("spark.jars", "")
    jars = [j.removeprefix("file://").removeprefix("file:") for j in listed.split(",") if ivy_jars in j]
    if jars and all(Path(j).is_file() for j in jars):
        jar_list_file().write_text("\n".join(jars) + "\n")


@contextmanager
def resolution_lock() -> Iterator[None]:
    """Held while a process resolves the Delta jars: Ivy's cache is not safe for two resolutions at once."""
    path = cache_dir() / "delta-jars.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def delta_jar_conf() -> dict[str, str]:
    """Spark settings that fetch (first use) or reuse (cached) the Delta jars from Maven Central.

    The first start lets Spark's resolver (Ivy) download ``DELTA_PACKAGE`` and its dependencies into the cache,
    except those pyspark ships itself (:data:`SHIPPED_WITH_PYSPARK`);
    :func:`remember_jars` then records the jar files, and later starts put exactly those on ``spark.jars``
    (no resolution, no Ivy report, no network).
    """
    jars = cached_jars()
    if jars:
        return {"spark.jars": ",".join(jars)}
    return {
        "spark.jars.packages": DELTA_PACKAGE,
        "spark.jars.ivy": str(cache_dir() / "ivy"),
        "spark.jars.ivySettings": str(ivy_settings()),
        "spark.jars.excludes": ",".join(SHIPPED_WITH_PYSPARK),
    }


def system_blas() -> bool:
    """True when the system has a BLAS and a LAPACK netlib loads by itself (``libblas.so.3``, ``liblapack.so.3``)."""
    return all(
        any(Path(d, name).exists() for d in SYSTEM_LIB_DIRS) for name in ("libblas.so.3", "liblapack.so.3")
    )


def openblas_url() -> str:
    """Where the OpenBLAS jar is fetched from: Maven Central, or ``$RECSPARK_MAVEN_REPO``."""
    repo = os.environ.get("RECSPARK_MAVEN_REPO", MAVEN_CENTRAL).rstrip("/")
    jar = f"openblas-{OPENBLAS_VERSION}-{OPENBLAS_PLATFORM}.jar"
    return f"{repo}/org/bytedeco/openblas/{OPENBLAS_VERSION}/{jar}"


def fetch_openblas(url: str, folder: Path) -> Path:
    """Download the jar at ``url`` and unpack :data:`OPENBLAS_LIBS` into ``folder`` (written next to it and renamed,
    so a reader never sees half a folder); the path of ``libopenblas.so.0``. OSError (or a ``zipfile`` error) when the
    download fails or the jar lacks a library."""
    inside = f"org/bytedeco/openblas/{OPENBLAS_PLATFORM}/"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        jar = Path(tmp) / "openblas.jar"
        with urllib.request.urlopen(url, timeout=120) as response, open(jar, "wb") as out:
            shutil.copyfileobj(response, out)
        staged = Path(tmp) / "libs"
        staged.mkdir()
        with zipfile.ZipFile(jar) as z:
            names = set(z.namelist())
            missing = [lib for lib in OPENBLAS_LIBS if inside + lib not in names]
            if missing:
                raise OSError(f"{url} has no {', '.join(missing)}")
            for lib in OPENBLAS_LIBS:
                (staged / lib).write_bytes(z.read(inside + lib))
        staged.rename(folder)
    return folder / OPENBLAS_LIBS[0]


def native_blas() -> Path | None:
    """The OpenBLAS library netlib should load in a local run (fetched at first use, then cached), or None: not
    asked for (``RECSPARK_NATIVE_BLAS=1`` asks), not linux-x86_64, a system BLAS and LAPACK netlib loads by itself,
    or the fetch failed (a warning: ALS then runs on Spark's Java BLAS, slower, the same model)."""
    if os.environ.get("RECSPARK_NATIVE_BLAS", "0") != "1":
        return None
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64") or system_blas():
        return None
    folder = cache_dir() / f"openblas-{OPENBLAS_VERSION}"
    lib = folder / OPENBLAS_LIBS[0]
    if lib.is_file():
        return lib
    lock = cache_dir() / "openblas.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # two processes starting at once fetch one after the other
        try:
            if lib.is_file():
                return lib
            log.info("fetching OpenBLAS %s for ALS (once, 20 MB): %s", OPENBLAS_VERSION, openblas_url())
            return fetch_openblas(openblas_url(), folder)
        except (OSError, zipfile.BadZipFile) as exc:
            log.warning(
                "no native BLAS: could not fetch OpenBLAS (%s); ALS runs on Spark's Java BLAS (slower, the same model)",
                exc,
            )
            return None
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def native_blas_conf(lib: Path) -> dict[str, str]:
    """The driver JVM's options that make netlib load ``lib`` as its BLAS and its LAPACK (in local mode the driver
    JVM runs the tasks). The JVM must also start with ``OPENBLAS_NUM_THREADS=1`` (:func:`get_spark` sees to it):
    each task is one thread already."""
    return {
        JAVA_OPTIONS: f"-Ddev.ludovic.netlib.blas.nativeLibPath={lib} "
        f"-Ddev.ludovic.netlib.lapack.nativeLibPath={lib}"
    }


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """``os.environ`` with ``values`` added where unset, for the processes started inside (a JVM), then as before."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def get_spark(
    app_name: str = "recspark",
    master: str | None = None,
    checkpoint_dir: str | None = None,
    shuffle_partitions: int | None = None,
    extra_conf: dict[str, str] | None = None,
    log_level: str = "WARN",
) -> SparkSession:
    """Return the active SparkSession, or build one with Delta configured.

    ``master`` is only given by the CLI's local default (``local[N]``); under spark-submit or on Databricks it
    stays None and the platform's settings apply.
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        log.debug("reusing the active SparkSession")
        _finish(active, checkpoint_dir, log_level=None)
        return active

    builder = SparkSession.builder.appName(app_name)
    conf: dict[str, str] = dict(DELTA_CONF)
    conf["spark.sql.session.timeZone"] = "UTC"
    conf["spark.sql.execution.arrow.pyspark.enabled"] = "true"
    if master is not None:
        # local Python workers must run this interpreter (it has numpy/pyarrow), not whatever `python3` is
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.master(master)
        conf.update(delta_jar_conf())
        blas = native_blas()
        if blas is not None:
            conf.update(native_blas_conf(blas))
        conf.update(
            {
                "spark.driver.memory": local_driver_memory(),
                "spark.ui.showConsoleProgress": "false",
                "spark.sql.shuffle.partitions": str(shuffle_partitions or max(4, 2 * (os.cpu_count() or 2))),
                # Delta's log checkpoints and parquet need no Hive; keep the local metastore out of the cwd.
                "spark.sql.warehouse.dir": str(cache_dir() / "spark-warehouse"),
                # Delta rebuilds a table's state (its file list) in 50 tasks by default, after every commit and
                # on the first read of a version: sized for clusters and tables of 100k files. A local
                # lakehouse's tables have a few hundred files at most, so one task per core does it.
                "spark.databricks.delta.snapshotPartitions": str(max(2, os.cpu_count() or 2)),
            }
        )
    elif not launched_by_spark_submit() and not on_databricks():
        # Neither local default nor spark-submit: e.g. a plain `python` process with a cluster given by
        # SPARK_REMOTE or spark-defaults.conf. Still make Delta available.
        conf.update(delta_jar_conf())
    if shuffle_partitions is not None:
        conf["spark.sql.shuffle.partitions"] = str(shuffle_partitions)
    for key, value in (extra_conf or {}).items():
        # the caller's JVM options join ours (the native BLAS's paths) instead of replacing them
        both = key == JAVA_OPTIONS and key in conf
        conf[key] = f"{conf[key]} {value}" if both else value
    for key, value in conf.items():
        builder = builder.config(key, value)
    log.info(
        "starting Spark (master=%s); the first start downloads the Delta jars", master or "from platform"
    )
    resolves = "spark.jars.packages" in conf
    # the first starts on a machine resolve the Delta jars one at a time (the second from the cache the first filled)
    threads = {"OPENBLAS_NUM_THREADS": "1"} if "nativeLibPath" in conf.get(JAVA_OPTIONS, "") else {}
    with resolution_lock() if resolves else nullcontext(), environment(**threads):
        spark = builder.getOrCreate()
        if resolves:
            remember_jars(spark)
    _finish(spark, checkpoint_dir, log_level)
    return spark


# Spark's own warnings that nothing a user can do clears, dropped from the driver's log by message (every other
# message of the same logger still shows). Spark ML's ALS puts its input's SQL lineage (generated code included)
# and, for implicit feedback, YᵀY (rank·(rank+1)/2 doubles: 257 KiB at rank 256, once per iteration) into the
# closures of its stages; above 1,000 KiB Spark warns on every stage: 96 lines in one `make run`
# (2026-12-04: the explicit "stars" ALS on the silver interactions alone made 31 warnings of 2.1 MiB; with its
# input local-checkpointed, 1, but a local checkpoint does not survive a lost executor on a cluster).
# Delta's MERGE (the run rows of gold/runs) computes its source into a local checkpoint and unpersists it once the
# merge is done; Spark 4 warns on every such unpersist (SPARK-48928) that the lineage "cannot be recomputed": once
# for each run row merged (up to twice a run), about data nothing reads again. (No recspark code unpersists one.)
KNOWN_WARNINGS = {
    "org.apache.spark.scheduler.DAGScheduler": "Broadcasting large task binary.*",
    "org.apache.spark.rdd.MapPartitionsRDD": "RDD \\d+ was locally checkpointed, its lineage has been truncated.*",
}


def drop_log_messages(spark: SparkSession, logger: str, regex: str) -> bool:
    """Drop the driver's log events of the log4j 2 logger ``logger`` whose message matches ``regex`` (a
    ``RegexFilter`` on the logger's own configuration, created when it has none: its level and appenders are
    still its parents'). Installed once however often it is called. False where log4j 2 cannot be reached
    (Spark Connect, another logging backend): the messages then show, nothing else changes."""
    try:
        jvm = spark.sparkContext._jvm
        core = jvm.org.apache.logging.log4j.core
        context = jvm.org.apache.logging.log4j.LogManager.getContext(False)
        config = context.getConfiguration()
        own = config.getLoggerConfig(logger)
        if own.getName() != logger:
            own = core.config.LoggerConfig(logger, None, True)
            config.addLogger(logger, own)
        elif regex in str(own.getFilter()):
            return True
        result = core.Filter.Result
        own.addFilter(core.filter.RegexFilter.createFilter(regex, None, False, result.DENY, result.NEUTRAL))
        context.updateLoggers()
        return True
    except Exception as exc:  # noqa: BLE001 -- no JVM gateway or no log4j 2 core: keep the messages
        log.debug("could not filter %s's log: %s", logger, exc)
        return False


def local_cores(master: str) -> int | None:
    """The cores a local master uses (``local`` 1, ``local[N]`` and ``local[N,F]`` N, ``local[*]`` this
    machine's), or None for any other master (a cluster)."""
    m = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\s*\d+)?\])?", master.strip())
    if m is None:
        return None
    if m.group(1) in (None, "1"):
        return 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return usable if m.group(1) == "*" else min(int(m.group(1)), usable)


def cpu_seconds(pid: int) -> float:
    """CPU time of process ``pid`` and of its ended children it waited for (user + system), from Linux's
    ``/proc/<pid>/stat``. Raises OSError where there is no such file."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text.rsplit(")", 1)[1].split()  # after "pid (comm)": field 3 (state) first
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


@dataclass(frozen=True)
class Clock:
    """A clock a budget is counted on: the wall clock (``cores`` None), or the CPU seconds of process ``pid`` (a
    local Spark's JVM) and of this Python process, divided by ``cores``. Calling it reads it."""

    cores: int | None = None
    pid: int | None = None

    def __call__(self) -> float:
        if self.is_wall:
            return time.perf_counter()
        return (cpu_seconds(self.pid) + time.process_time()) / self.cores

    @property
    def is_wall(self) -> bool:
        """Whether this is the wall clock (no process or no cores to count): what it reads and how it is named."""
        return self.cores is None or self.pid is None

    @property
    def name(self) -> str:
        """How a budget on this clock reads in records: ``"wall"``, or ``"cpu/N"`` (CPU seconds over N cores)."""
        return "wall" if self.is_wall else f"cpu/{self.cores}"


WALL_CLOCK = Clock()


def work_clock(spark: SparkSession) -> Clock:
    """A clock of the work a local Spark does, for budgets that should buy the same work whatever else runs on
    the machine: the CPU seconds of the driver's JVM (in local mode the executors too) and of this Python
    process, divided by the cores Spark was given. On an otherwise idle machine with every core busy it keeps
    pace with the wall clock; when other processes take half of the cores, it runs at half speed, so a tuning
    search spends the same budget on the same trials and makes the same choices, taking longer. (A 2-core
    ``to_read`` run sharing its cores with two other jobs once cancelled the rank-256 trial at its wall-clock
    share, 130 s against 45-51 s alone, and published NDCG@10 0.0782 instead of about 0.09.)

    Elsewhere (a cluster master, whose executors' CPU is not on this machine, or no ``/proc``) the wall clock,
    :data:`WALL_CLOCK`. :attr:`Clock.name` says which."""
    cores = local_cores(spark.sparkContext.master)
    if cores is None:
        return WALL_CLOCK
    try:
        pid = int(spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getPid())
        cpu_seconds(pid)
    except Exception as exc:  # noqa: BLE001 -- no JVM gateway (Spark Connect) or no /proc (macOS)
        log.info("tuning budgets on the wall clock: no CPU time of Spark's JVM (%s)", exc)
        return WALL_CLOCK
    return Clock(cores, pid)


def _finish(spark: SparkSession, checkpoint_dir: str | None, log_level: str | None) -> None:
    """Set the checkpoint directory (ALS silently skips checkpointing without one) and the log level, and drop
    the :data:`KNOWN_WARNINGS`."""
    if log_level:
        spark.sparkContext.setLogLevel(log_level)
    for logger, regex in KNOWN_WARNINGS.items():
        drop_log_messages(spark, logger, regex)
    if checkpoint_dir:
        spark.sparkContext.setCheckpointDir(checkpoint_dir)
    elif spark.sparkContext.getCheckpointDir() is None:
        default = cache_dir() / "checkpoints"
        default.mkdir(parents=True, exist_ok=True)
        spark.sparkContext.setCheckpointDir(str(default))


@contextmanager
def session_conf(spark: SparkSession, conf: dict[str, str]) -> Iterator[None]:
    """Set SQL settings for the block and restore the previous values after it. A platform that refuses a
    setting (some managed runtimes do) keeps its own value: these are tuning hints, never needed for a result."""
    before: dict[str, str | None] = {}
    for key, value in conf.items():
        try:
            old = spark.conf.get(key, None)
            spark.conf.set(key, value)
            before[key] = old
        except Exception as exc:  # noqa: BLE001 -- the platform's own error type varies
            log.debug("could not set %s=%s: %s", key, value, exc)
    try:
        yield
    finally:
        for key, old in before.items():
            if old is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, old)


ADAPTIVE = "spark.sql.adaptive.enabled"


def step_conf(master: str, launch_keys: Collection[str]) -> dict[str, str]:
    """The SQL settings of the steps after ingest for a session with ``master`` started with settings named
    ``launch_keys``: adaptive execution off in local mode, unless the session was started with it set either way.

    Adaptive execution re-plans a query between its stages. Ingest gains from that (its raw files meet the id
    maps in joins whose sizes show only at run time), and every later step loses: each query stage becomes a
    Spark job of its own (the recommend step of a run at scale 0.03 ran 193 jobs with it, 49 without), and that
    step's adaptive plan wrote 3,092 MB of shuffle against 729 MB (bench/results/jobs-0.03-*.md).
    """
    if not master.startswith("local") or ADAPTIVE in launch_keys:
        return {}
    return {ADAPTIVE: "false"}


def after_ingest(fn: Callable) -> Callable:
    """Decorator for a stage after ingest, called as ``fn(spark, ...)``: runs it under :func:`step_conf`'s
    settings (restored after it). The stage must do its work inside (write its tables), not return a lazy
    frame for the caller to run: the settings apply when a query is planned."""

    @wraps(fn)
    def wrapper(spark: SparkSession, *args, **kwargs):
        try:
            context = spark.sparkContext
            conf = step_conf(context.master, {key for key, _ in context.getConf().getAll()})
        except Exception:  # noqa: BLE001 -- Spark Connect has no SparkContext: the server's settings stand
            conf = {}
        with session_conf(spark, conf):
            return fn(spark, *args, **kwargs)

    return wrapper


def logger_level(spark: SparkSession, name: str) -> str | None:
    """The level of the JVM's log4j logger ``name`` (e.g. ``"ERROR"``), None where it cannot be read (a platform
    without log4j 2 or without JVM access)."""
    try:
        return str(spark.sparkContext._jvm.org.apache.logging.log4j.LogManager.getLogger(name).getLevel())
    except Exception:  # noqa: BLE001 -- no JVM gateway (e.g. Spark Connect) or another logging backend
        return None


def set_logger_level(spark: SparkSession, name: str, level: str) -> str | None:
    """Set the JVM's log4j logger ``name`` to ``level``; returns its previous level (None: nothing was done). Only
    log output changes: a failure is still raised to Python."""
    before = logger_level(spark, name)
    if before is None:
        return None
    jvm = spark.sparkContext._jvm
    log4j = jvm.org.apache.logging.log4j
    log4j.core.config.Configurator.setLevel(name, log4j.Level.toLevel(level))
    return before


def ensure_delta_jars() -> list[str]:
    """The Delta jar files on this machine, resolving them first (a short local Spark start) when needed."""
    jars = cached_jars()
    if jars:
        return jars
    spark = get_spark(app_name="recspark-fetch-jars", master="local[1]", log_level="ERROR")
    spark.stop()
    jars = cached_jars()
    if not jars:
        raise RuntimeError(f"Spark did not resolve {DELTA_PACKAGE}; see the messages above")
    return jars


def submit_conf() -> list[str]:
    """``spark-submit`` arguments that enable Delta (the same settings the local default uses)."""
    args: list[str] = []
    for key, value in DELTA_CONF.items():
        args += ["--conf", f"{key}={value}"]
    return args


def main(argv: list[str] | None = None) -> int:
    """``python -m recspark.spark jars [DEST]`` prints (or copies to DEST) the Delta jar files;
    ``python -m recspark.spark submit-conf`` prints the spark-submit ``--conf`` arguments for Delta."""
    import argparse
    import shutil

    p = argparse.ArgumentParser(prog="python -m recspark.spark", description=main.__doc__)
    p.add_argument("what", choices=["jars", "submit-conf"])
    p.add_argument("dest", nargs="?", help="jars: copy the jar files into this folder")
    args = p.parse_args(argv)
    if args.what == "submit-conf":
        print(" ".join(submit_conf()))
        return 0
    jars = ensure_delta_jars()
    if args.dest:
        Path(args.dest).mkdir(parents=True, exist_ok=True)
        jars = [shutil.copy2(j, Path(args.dest) / Path(j).name) for j in jars]
    print("\n".join(str(j) for j in jars))
    return 0


if __name__ == "__main__":
    sys.exit(main())
