#!/usr/bin/env bash
# Submit a recspark job to a cluster with what build.sh made.
#
# Usage: deploy/spark-submit/submit.sh MASTER JOB [job arguments...]
#   MASTER  yarn | spark://host:7077 | k8s://https://host:443
#   JOB     run | ingest | tune | train | evaluate | recommend | similar | generate   (jobs/JOB.py)
#
# Settings you choose (environment variables; defaults in brackets):
#   DEPLOY_MODE       client | cluster [client]. In client mode the driver runs here with PYSPARK_DRIVER_PYTHON
#                     [.venv/bin/python]; in cluster mode it runs on the cluster with the packed environment.
#   EXECUTOR_CORES    cores per executor [4]            EXECUTOR_MEMORY  heap per executor [8g]
#   NUM_EXECUTORS     executors (YARN/K8s) [4]          DRIVER_MEMORY    driver heap [4g]
#   SHUFFLE_PARTITIONS spark.sql.shuffle.partitions [2 x total cores]
#   DIST              build.sh output [dist]            EXTRA_ARGS       more spark-submit arguments
#
# Python workers need memory outside the JVM heap: spark.executor.memoryOverhead is set to a quarter of the
# heap (top-K blocks, broadcast item shards, Arrow batches; see docs/sizing.md).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MASTER=${1:?usage: submit.sh MASTER JOB [args...]}
JOB=${2:?usage: submit.sh MASTER JOB [args...]}
shift 2
test -f "$ROOT/jobs/$JOB.py" || { echo "unknown job '$JOB': choose one of $(ls "$ROOT/jobs" | sed 's/\.py//' | tr '\n' ' ')" >&2; exit 2; }
DIST=${DIST:-$ROOT/dist}
test -f "$DIST/recspark-env.tar.gz" || { echo "no $DIST/recspark-env.tar.gz: run deploy/spark-submit/build.sh first" >&2; exit 2; }
DEPLOY_MODE=${DEPLOY_MODE:-client}
EXECUTOR_CORES=${EXECUTOR_CORES:-4}
EXECUTOR_MEMORY=${EXECUTOR_MEMORY:-8g}
NUM_EXECUTORS=${NUM_EXECUTORS:-4}
DRIVER_MEMORY=${DRIVER_MEMORY:-4g}
SHUFFLE_PARTITIONS=${SHUFFLE_PARTITIONS:-$((2 * EXECUTOR_CORES * NUM_EXECUTORS))}
case "$EXECUTOR_MEMORY" in
  *[gG]) heap_mb=$(( ${EXECUTOR_MEMORY%[gG]} * 1024 )) ;;
  *[mM]) heap_mb=${EXECUTOR_MEMORY%[mM]} ;;
  *) echo "EXECUTOR_MEMORY must look like 8g or 4096m, not '$EXECUTOR_MEMORY'" >&2; exit 2 ;;
esac
overhead_mb=$(( heap_mb / 4 > 384 ? heap_mb / 4 : 384 ))
PY=${PYSPARK_DRIVER_PYTHON:-$ROOT/.venv/bin/python}
SPARK_SUBMIT=${SPARK_SUBMIT:-$(dirname "$PY")/spark-submit}
JARS=$(ls "$DIST"/jars/*.jar | paste -sd, -)

ENV_ARGS=(--archives "$DIST/recspark-env.tar.gz#environment" --conf spark.pyspark.python=./environment/bin/python)
if [ "$DEPLOY_MODE" = cluster ]; then
  ENV_ARGS+=(--conf spark.pyspark.driver.python=./environment/bin/python
             --conf spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python)
else
  # the spark.pyspark.python conf would win over PYSPARK_DRIVER_PYTHON: name the local driver's Python explicitly
  ENV_ARGS+=(--conf spark.pyspark.driver.python="$PY")
fi

set -x
exec "$SPARK_SUBMIT" \
  --master "$MASTER" --deploy-mode "$DEPLOY_MODE" --name "recspark-$JOB" \
  --driver-memory "$DRIVER_MEMORY" \
  --executor-memory "$EXECUTOR_MEMORY" --executor-cores "$EXECUTOR_CORES" --num-executors "$NUM_EXECUTORS" \
  --total-executor-cores $((EXECUTOR_CORES * NUM_EXECUTORS)) \
  --conf spark.executor.memoryOverhead=${overhead_mb}m \
  --conf spark.sql.shuffle.partitions="$SHUFFLE_PARTITIONS" \
  --conf spark.sql.adaptive.enabled=true \
  --conf spark.executorEnv.OPENBLAS_NUM_THREADS=1 \
  --jars "$JARS" \
  $("$PY" -m recspark.spark submit-conf) \
  "${ENV_ARGS[@]}" \
  ${EXTRA_ARGS:-} \
  "$ROOT/jobs/$JOB.py" "$@"
