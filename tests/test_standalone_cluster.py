"""A real Spark standalone cluster on 127.0.0.1: a master and a worker started from the Spark that pyspark ships,
the pipeline spark-submitted to it with what ``deploy/spark-submit/build.sh`` packs (wheel, Python environment,
Delta jars) through ``deploy/spark-submit/submit.sh``, the gold tables checked from outside with ``deltalake``,
and the cluster stopped even when the test fails.

Executors run in their own JVM and Python processes, started by the worker from the shipped environment, so this
catches what local mode hides: serialization of closures and broadcasts, shipped code, the executor environment.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import tiny_frame_submit_args

ROOT = Path(__file__).resolve().parents[1]
K = 5


def spark_home() -> Path:
    from pyspark.find_spark_home import _find_spark_home

    return Path(_find_spark_home())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env() -> dict[str, str]:
    """The environment of a new shell: nothing of the test session's own Spark (gateway, Python choice)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "SPARK_"))}
    env["SPARK_HOME"] = str(spark_home())
    return env


def wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
    raise AssertionError(f"{log.name}: {text!r} did not appear (exit code {proc.poll()}):\n{tail}")


def start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            [str(spark_home() / "bin" / "spark-class"), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: stopping it stops the JVM and its children
        )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """``spark://127.0.0.1:<port>`` with one worker (2 cores, 3 GiB); stopped on teardown, pass or fail."""
    work = tmp_path_factory.mktemp("standalone")
    env = clean_env()
    port = free_port()
    url = f"spark://127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []
    try:
        master_cmd = ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port)]
        procs.append(start([*master_cmd, "--webui-port", str(free_port())], work / "master.log", env))
        wait_for(work / "master.log", "I have been elected leader", procs[0])
        worker_cmd = ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "2"]
        worker_cmd += [
            "--memory",
            "3g",
            "--work-dir",
            str(work / "worker"),
            "--webui-port",
            str(free_port()),
            url,
        ]
        procs.append(start(worker_cmd, work / "worker.log", env))
        wait_for(work / "worker.log", "Successfully registered with master", procs[1])
        yield url, work
    finally:
        for proc in reversed(procs):
            stop(proc)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """What a user ships: ``deploy/spark-submit/build.sh`` output (wheel, packed environment, Delta jars)."""
    out = tmp_path_factory.mktemp("dist")
    env = {**clean_env(), "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(ROOT / "deploy" / "spark-submit" / "build.sh"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert list(out.glob("recspark-*.whl")) and (out / "recspark-env.tar.gz").is_file()
    assert any(p.name.startswith("io.delta_delta-spark") for p in (out / "jars").glob("*.jar"))
    return out


@pytest.mark.slow
def test_pipeline_on_a_standalone_cluster(cluster, dist, small_csv_only, tmp_path):
    from deltalake import DeltaTable

    url, work = cluster
    src, _ = small_csv_only
    lake = tmp_path / "lakehouse"
    env = {
        **clean_env(),
        "DIST": str(dist),
        "EXECUTOR_MEMORY": "2g",
        "EXECUTOR_CORES": "2",
        "NUM_EXECUTORS": "1",
        "DRIVER_MEMORY": "2g",
        "SHUFFLE_PARTITIONS": "4",
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        # tiny data: the settings of the test session (conftest), so per-task overhead does not dominate
        "EXTRA_ARGS": tiny_frame_submit_args(),
    }
    args = ["run", "--source", str(src), "--format", "goodreads", "--lakehouse", str(lake)]
    # deployment is under test here, not self-tuning (tests/test_tune.py): the stored or built-in parameters
    args += [
        "--reports",
        str(tmp_path / "reports"),
        "--no-evaluate",
        "--tune",
        "off",
        "--k",
        str(K),
        "--models",
        "als",
    ]
    log = tmp_path / "submit.log"
    with open(log, "w") as out:
        done = subprocess.run(
            ["bash", str(ROOT / "deploy" / "spark-submit" / "submit.sh"), url, *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=1200,
        )
    text = log.read_text(errors="replace")
    assert done.returncode == 0, text[-5000:]
    assert "published in" in text

    # the work ran on the cluster's executors, in the shipped environment
    apps = list((work / "worker").glob("app-*"))
    assert len(apps) == 1, "the job did not run on the standalone worker"
    assert list(apps[0].glob("*/environment/bin/python")), (
        "the packed environment was not unpacked by executors"
    )

    gold = lake / "gold"
    runs = DeltaTable(str(gold / "runs")).to_pyarrow_table().to_pylist()
    assert [r["status"] for r in runs] == ["published"]
    recs = DeltaTable(str(gold / "user_recommendations")).to_pyarrow_table().to_pylist()
    per_user: dict[str, set] = {}
    for r in recs:
        per_user.setdefault(r["user_id"], set()).add(r["book_id"])
    assert per_user and all(len(books) == K for books in per_user.values())
    sims = DeltaTable(str(gold / "similar_books")).to_pyarrow_table().to_pylist()
    assert sims and all(r["book_id"] != r["similar_book_id"] for r in sims)
