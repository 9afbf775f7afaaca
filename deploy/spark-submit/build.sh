#!/usr/bin/env bash
# Build what a cluster needs to run recspark with spark-submit, into DIST (default: dist/):
#
#   DIST/recspark-<version>-py3-none-any.whl   the library
#   DIST/recspark-env.tar.gz                   a packed Python environment for the executors (and for the
#                                              driver in cluster mode): recspark + numpy + pandas + pyarrow at
#                                              the driver's versions, and delta-spark's Python API. Not pyspark:
#                                              Spark ships its own.
#                                              --py-files cannot carry numpy/pyarrow (compiled extensions).
#   DIST/jars/*.jar                            the Delta jars (io.delta:delta-spark_4.2_2.13 + dependencies), from
#                                              the same cached resolution the local default uses; the cluster
#                                              itself needs no access to Maven Central.
#
# The packed environment is a venv: its bin/python points at the base interpreter that built it, so executors
# need the same Python (3.11 here) at the same path (same machine image), as with venv-pack or conda-pack
# without the interpreter.
#
# Usage: deploy/spark-submit/build.sh [DIST]        (PYTHON=... to build with another interpreter)
set -euo pipefail
cd "$(dirname "$0")/../.."
DIST=$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)
PY=${PYTHON:-.venv/bin/python}
test -x "$PY" || { echo "no $PY: run 'make venv' first (or set PYTHON)" >&2; exit 2; }

echo "[1/3] wheel -> $DIST"
rm -f "$DIST"/recspark-*.whl
"$PY" -m pip wheel --quiet --no-deps --no-build-isolation -w "$DIST" . 2>/dev/null \
  || "$PY" -m pip wheel --quiet --no-deps -w "$DIST" .
WHEEL=$(ls "$DIST"/recspark-*.whl)

echo "[2/3] executor environment -> $DIST/recspark-env.tar.gz"
PINS=$("$PY" -c 'import numpy, pandas, pyarrow; print(f"numpy=={numpy.__version__} pandas=={pandas.__version__} pyarrow=={pyarrow.__version__}")')
DELTA_PY=$("$PY" -c 'from importlib.metadata import version; print("delta-spark==" + version("delta-spark"))')
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
BASE=$("$PY" -c 'import sys; print(sys._base_executable)')
"$BASE" -m venv "$WORK/env"
"$WORK/env/bin/python" -m pip install --quiet --disable-pip-version-check $PINS
# recspark itself, and delta-spark's Python API (executors unpickle recspark functions whose modules import it)
"$WORK/env/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$WHEEL" "$DELTA_PY"
# what an executor's Python worker imports, with pyspark from Spark's own zips as the worker gets it
SPARK_LIBS=$("$PY" -c 'from pyspark.find_spark_home import _find_spark_home as h; import glob; print(":".join(glob.glob(h() + "/python/lib/*.zip")))')
PYTHONPATH="$SPARK_LIBS" "$WORK/env/bin/python" -c 'import numpy, pandas, pyarrow, recspark.pipeline'

tar -C "$WORK/env" -cf - . | gzip -1 > "$DIST/recspark-env.tar.gz"

echo "[3/3] Delta jars -> $DIST/jars"
rm -rf "$DIST/jars"
"$PY" -m recspark.spark jars "$DIST/jars" > /dev/null
ls "$DIST"
