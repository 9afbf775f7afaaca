"""deploy/ and jobs/: the Databricks bundle validates offline (it parses; every variable, path, task, job cluster,
package and entry point it names exists; every wheel task's arguments parse with the real CLI; every notebook
parameter is a widget of that notebook); each spark-submit entry point names a real verb; the scripts are bash."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "deploy" / "databricks"
VAR = re.compile(r"\$\{var\.([A-Za-z_][A-Za-z0-9_]*)\}")


def bundle_files() -> list[tuple[Path, dict]]:
    main = yaml.safe_load((BUNDLE / "databricks.yml").read_text())
    docs = [(BUNDLE / "databricks.yml", main)]
    for pattern in main.get("include", []):
        matched = sorted(BUNDLE.glob(pattern))
        assert matched, f"include {pattern!r} matches nothing"
        docs += [(path, yaml.safe_load(path.read_text())) for path in matched]
    return docs


def variables() -> dict[str, str]:
    main = bundle_files()[0][1]
    return {name: str(spec["default"]) for name, spec in main["variables"].items()}


def resolve(value: object, defined: dict[str, str]) -> str:
    text = str(value)
    for name in VAR.findall(text):
        assert name in defined, f"${{var.{name}}} is not a declared variable"
    return VAR.sub(lambda m: defined[m.group(1)], text)


def jobs() -> list[tuple[Path, str, dict]]:
    return [
        (path, name, job)
        for path, doc in bundle_files()
        for name, job in (doc.get("resources", {}).get("jobs", {}) or {}).items()
    ]


def test_bundle_targets_and_variables():
    main = bundle_files()[0][1]
    assert main["bundle"]["name"] == "recspark"
    targets = main["targets"]
    assert targets["dev"]["mode"] == "development" and targets["dev"]["default"] is True
    assert targets["prod"]["mode"] == "production"
    defined = variables()
    assert {"catalog", "schema"} <= set(defined)
    for target in targets.values():
        assert set(target.get("variables", {})) <= set(defined)
    used = {name for path, _ in bundle_files() for name in VAR.findall(path.read_text())}
    assert used >= {"catalog", "schema"} and used <= set(defined)


def test_wheel_artifact_builds_the_project_and_tasks_install_it():
    main = bundle_files()[0][1]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (artifact,) = main["artifacts"].values()
    assert artifact["type"] == "whl"
    source = (BUNDLE / artifact["path"]).resolve()
    assert source == ROOT and (source / "pyproject.toml").exists()
    out_dir = re.search(r"-w\s+(\S+)", artifact["build"]).group(1)
    for path, _, job in jobs():
        for task in job["tasks"]:
            wheels = [lib["whl"] for lib in task.get("libraries", []) if "whl" in lib]
            assert wheels, f"task {task['task_key']} does not install the wheel"
            for whl in wheels:
                assert (path.parent / whl).parent.resolve() == source / out_dir
                assert Path(whl).name.endswith(".whl")
    assert "pyspark" not in " ".join(project["dependencies"]), (
        "the wheel must not replace Databricks' pyspark"
    )


def test_tasks_clusters_dependencies_entry_points_and_arguments():
    from recspark.cli import build_parser

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    defined = variables()
    found = set()
    for path, name, job in jobs():
        clusters = {c["job_cluster_key"] for c in job.get("job_clusters", [])}
        keys = [t["task_key"] for t in job["tasks"]]
        assert len(keys) == len(set(keys)), f"{name}: duplicate task keys"
        for task in job["tasks"]:
            assert task["job_cluster_key"] in clusters
            for dep in task.get("depends_on", []):
                assert dep["task_key"] in keys and keys.index(dep["task_key"]) < keys.index(task["task_key"])
            if "python_wheel_task" in task:
                wt = task["python_wheel_task"]
                assert wt["package_name"] == project["name"]
                assert wt["entry_point"] in project["scripts"]
                argv = [resolve(p, defined) for p in wt["parameters"]]
                build_parser().parse_args(argv)  # SystemExit on an unknown verb or option
                found.add(argv[0])
            if "notebook_task" in task:
                nt = task["notebook_task"]
                notebook = (path.parent / nt["notebook_path"]).resolve()
                assert notebook.is_file(), notebook
                widgets = set(re.findall(r'dbutils\.widgets\.\w+\("(\w+)"', notebook.read_text()))
                from recspark import notebook as nb

                widgets |= {w[0] for w in nb.COMMON_WIDGETS + nb.MODEL_WIDGETS} | {"use_tuned"}
                params = {k: resolve(v, defined) for k, v in nt.get("base_parameters", {}).items()}
                assert set(params) <= widgets, f"not widgets of {notebook.name}: {set(params) - widgets}"
    assert {"ingest", "evaluate", "train", "publish"} <= found


def test_sync_paths_exist():
    main = bundle_files()[0][1]
    for rel in main.get("sync", {}).get("paths", []):
        assert (BUNDLE / rel).is_dir(), rel


def test_spark_submit_entry_points_name_real_verbs():
    from recspark.cli import build_parser

    verbs = set(build_parser()._subparsers._group_actions[0].choices)
    jobs_dir = ROOT / "jobs"
    for job in sorted(jobs_dir.glob("*.py")):
        called = re.search(r'main\(\["(\w+)", \*sys\.argv\[1:\]\]\)', job.read_text())
        assert called, f"{job.name}: should only pass its arguments to recspark.cli.main"
        assert called.group(1) == job.stem and job.stem in verbs
    assert {j.stem for j in jobs_dir.glob("*.py")} == verbs


@pytest.mark.parametrize(
    "script", sorted((ROOT / "deploy" / "spark-submit").glob("*.sh")), ids=lambda p: p.name
)
def test_scripts_are_valid_bash(script):
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0


def _artifact(jar_name: str) -> str:
    """``hadoop-client-api`` of ``hadoop-client-api-3.5.0.jar`` (pyspark) or ``org.apache.hadoop_hadoop-client-api-
    3.4.2.jar`` (Ivy's cache: group, underscore, artifact, version)."""
    name = jar_name.split("_", 1)[1] if "_" in jar_name.split("-", 1)[0] else jar_name
    return re.match(r"(.+?)-\d", name).group(1)


def _pyspark_artifacts() -> set[str]:
    import pyspark

    return {_artifact(p.name) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}


def test_every_delta_dependency_left_out_is_shipped_by_pyspark():
    from recspark.spark import SHIPPED_WITH_PYSPARK

    assert _artifact("org.apache.hadoop_hadoop-client-api-3.4.2.jar") == "hadoop-client-api"
    assert _artifact("io.delta_delta-spark_4.2_2.13-4.4.0.jar") == "delta-spark_4.2_2.13"
    assert _artifact("com.github.luben_zstd-jni-1.5.7-3.jar") == "zstd-jni"
    shipped = _pyspark_artifacts()
    missing = [c for c in SHIPPED_WITH_PYSPARK if c.split(":")[1] not in shipped]
    assert not missing, f"pyspark no longer ships {missing}: let Ivy fetch them again"


def test_the_local_session_loads_delta_without_second_copies_of_pyspark_jars(spark):
    listed = [Path(j).name for j in spark.sparkContext.getConf().get("spark.jars", "").split(",") if j]
    artifacts = {_artifact(j) for j in listed}
    assert "delta-spark_4.2_2.13" in artifacts and "delta-storage" in artifacts
    assert not artifacts & _pyspark_artifacts()


def test_a_second_process_waits_for_the_first_to_resolve_the_jars(tmp_path, monkeypatch):
    """``resolution_lock`` is a file lock, so it holds across processes (and open files within one): a second
    holder waits until the first lets go."""
    import threading

    from recspark.spark import resolution_lock

    monkeypatch.setenv("RECSPARK_CACHE", str(tmp_path))
    second_has_it = threading.Event()

    def second() -> None:
        with resolution_lock():
            second_has_it.set()

    with resolution_lock():
        waiter = threading.Thread(target=second, daemon=True)
        waiter.start()
        assert not second_has_it.wait(0.5), "two holders at once"
    assert second_has_it.wait(30), "the second holder never got the lock"
    waiter.join()


def test_the_test_session_jvm_runs_with_the_tiny_frame_jit_setting(spark):
    """``TINY_FRAME_CONF``'s driver options reach the JVM: set on the builder before the JVM starts (in local mode
    the launcher reads ``spark.driver.extraJavaOptions``), not after, when they would be a silent no-op."""
    from tests.conftest import TINY_FRAME_JVM_OPTIONS

    jvm = spark.sparkContext._jvm
    started_with = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    wanted = TINY_FRAME_JVM_OPTIONS.split()
    assert wanted and all(option in started_with for option in wanted), started_with


def _filtered(spark, logger: str, message: str) -> bool:
    """Whether the driver's log4j 2 configuration of ``logger`` drops a WARN event carrying ``message``."""
    jvm = spark.sparkContext._jvm
    log4j = jvm.org.apache.logging.log4j
    event = (
        log4j.core.impl.Log4jLogEvent.newBuilder()
        .setLoggerName(logger)
        .setLevel(log4j.Level.WARN)
        .setMessage(log4j.message.SimpleMessage(message))
        .build()
    )
    config = log4j.LogManager.getContext(False).getConfiguration().getLoggerConfig(logger)
    return config.getName() == logger and config.isFiltered(event)


def test_known_warnings_are_dropped_by_message_and_the_logger_keeps_its_level(spark):
    from recspark.spark import KNOWN_WARNINGS, drop_log_messages, logger_level

    scheduler = "org.apache.spark.scheduler.DAGScheduler"
    assert scheduler in KNOWN_WARNINGS  # installed by the session builder (get_spark)
    assert _filtered(spark, scheduler, "Broadcasting large task binary with size 2.1 MiB")
    assert not _filtered(spark, scheduler, "Failed to update accumulator 7")
    rdd = "org.apache.spark.rdd.MapPartitionsRDD"  # Delta's MERGE unpersisting the source it checkpointed
    assert _filtered(
        spark,
        rdd,
        "RDD 112 was locally checkpointed, its lineage has been truncated and cannot be recomputed after unpersisting",
    )
    assert not _filtered(spark, rdd, "Removing RDD 112 from persistence list")

    name = "recspark.test.dropped"  # a logger of its own: installing twice keeps one filter
    parent_level = logger_level(spark, "recspark.test")
    assert not _filtered(spark, name, "noise 1")
    assert drop_log_messages(spark, name, "noise.*") and drop_log_messages(spark, name, "noise.*")
    assert _filtered(spark, name, "noise 1") and not _filtered(spark, name, "a real problem")
    config = spark.sparkContext._jvm.org.apache.logging.log4j.LogManager.getContext(False).getConfiguration()
    assert "CompositeFilter" not in str(config.getLoggerConfig(name).getFilter().getClass().getName())
    assert logger_level(spark, name) == parent_level  # its level is still inherited


def _openblas_repo(root: Path, libs: tuple[str, ...]) -> str:
    """A Maven-layout folder holding a hand-made OpenBLAS jar with ``libs`` (each file's content is its name)."""
    import zipfile

    from recspark.spark import OPENBLAS_PLATFORM, OPENBLAS_VERSION

    jar = (
        root
        / "org/bytedeco/openblas"
        / OPENBLAS_VERSION
        / f"openblas-{OPENBLAS_VERSION}-{OPENBLAS_PLATFORM}.jar"
    )
    jar.parent.mkdir(parents=True)
    with zipfile.ZipFile(jar, "w") as z:
        z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        for lib in libs:
            z.writestr(f"org/bytedeco/openblas/{OPENBLAS_PLATFORM}/{lib}", lib)
    return root.as_uri()


def test_openblas_is_fetched_once_into_the_cache_and_a_failed_fetch_falls_back_with_a_warning(
    tmp_path, monkeypatch, caplog
):
    from recspark import spark as S

    monkeypatch.setattr(S.platform, "system", lambda: "Linux")
    monkeypatch.setattr(S.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(S, "system_blas", lambda: False)
    monkeypatch.setenv("RECSPARK_NATIVE_BLAS", "1")

    # a jar that lacks one of the libraries: nothing is cached, a warning names what is missing, Java BLAS runs
    monkeypatch.setenv("RECSPARK_CACHE", str(tmp_path / "cache-broken"))
    monkeypatch.setenv("RECSPARK_MAVEN_REPO", _openblas_repo(tmp_path / "broken", S.OPENBLAS_LIBS[:-1]))
    with caplog.at_level("WARNING", logger="recspark.spark"):
        assert S.native_blas() is None
    assert S.OPENBLAS_LIBS[-1] in caplog.text and "Java BLAS" in caplog.text
    assert not (tmp_path / "cache-broken" / f"openblas-{S.OPENBLAS_VERSION}").exists()

    # no repository at all: the same fallback
    monkeypatch.setenv("RECSPARK_MAVEN_REPO", (tmp_path / "nowhere").as_uri())
    assert S.native_blas() is None

    # a whole jar: every library unpacked into the cache, the path of libopenblas returned
    monkeypatch.setenv("RECSPARK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RECSPARK_MAVEN_REPO", _openblas_repo(tmp_path / "good", S.OPENBLAS_LIBS))
    lib = S.native_blas()
    folder = tmp_path / "cache" / f"openblas-{S.OPENBLAS_VERSION}"
    assert lib == folder / "libopenblas.so.0"
    assert sorted(p.name for p in folder.iterdir()) == sorted(S.OPENBLAS_LIBS)
    assert (folder / "libgfortran.so.5").read_text() == "libgfortran.so.5"

    # later starts use the cache, with no repository
    monkeypatch.setenv("RECSPARK_MAVEN_REPO", (tmp_path / "nowhere").as_uri())
    assert S.native_blas() == lib
    # not asked for (the default), or where netlib finds a system BLAS by itself: nothing to point it at
    monkeypatch.delenv("RECSPARK_NATIVE_BLAS")
    assert S.native_blas() is None
    monkeypatch.setenv("RECSPARK_NATIVE_BLAS", "0")
    assert S.native_blas() is None
    monkeypatch.setenv("RECSPARK_NATIVE_BLAS", "1")
    monkeypatch.setattr(S, "system_blas", lambda: True)
    assert S.native_blas() is None


def test_the_local_session_runs_als_on_the_native_blas_with_one_thread_per_task(spark, monkeypatch):
    """The test session asks for OpenBLAS (conftest), as ``RECSPARK_NATIVE_BLAS=1`` does for a run: the JVM loaded it
    as netlib's BLAS and LAPACK (fetched from Maven Central like the Delta jars, or a system one) and started with
    one OpenBLAS thread; the caller's JVM options (the tests' JIT setting) are kept too."""
    from recspark.spark import native_blas, system_blas

    if os.environ.get("RECSPARK_NATIVE_BLAS") == "0":
        pytest.skip("RECSPARK_NATIVE_BLAS=0 in this environment: the session runs the Java BLAS")
    jvm = spark.sparkContext._jvm
    blas = jvm.dev.ludovic.netlib.blas.BLAS.getInstance().getClass().getSimpleName()
    lapack = jvm.dev.ludovic.netlib.lapack.LAPACK.getInstance().getClass().getSimpleName()
    assert (blas, lapack) == ("JNIBLAS", "JNILAPACK")
    if not system_blas():
        monkeypatch.setenv("RECSPARK_NATIVE_BLAS", "1")
        lib = native_blas()  # the cached library the session start fetched
        assert lib is not None and lib.is_file()
        assert jvm.java.lang.System.getenv("OPENBLAS_NUM_THREADS") == "1"
        options = spark.sparkContext.getConf().get("spark.driver.extraJavaOptions")
        assert f"nativeLibPath={lib}" in options and "-XX:" in options
