#!/usr/bin/env bash
# Usage: source scripts/submit-args.sh; preprocess_submit_args ARCHIVE CORES MEMORY PYSPARK_MB EVENTS
#   The one spark-submit argument list of the preprocess job on YARN, shared by
#   scripts/emr-submit.sh (an EMR step) and scripts/local-hosts.sh submit (the multi-host cluster
#   on this machine), so what is tested there is what EMR gets.
#
#   ARCHIVE     the environment archive (`fmaprep package-env`), unpacked as ./environment in
#               every container; "none": the nodes' own python (the bootstrap route)
#   CORES       --executor-cores;  MEMORY  --executor-memory (JVM heap)
#   PYSPARK_MB  Python memory per executor core in MB (spark.executor.pyspark.memory = CORES x it)
#   EVENTS      spark.eventLog.dir, or "none"
#
#   Fills the caller's array `submit` (spark-submit and its options); the caller appends its own
#   site options, then the job: submit+=(JOB INPUT OUTPUT [preprocess options]).
# shellcheck disable=SC2034 # submit is the caller's
set -euo pipefail

preprocess_submit_args() {
  local archive=$1 cores=$2 memory=$3 pyspark_mb=$4 events=$5
  submit=(spark-submit --deploy-mode cluster --master yarn --executor-memory "$memory"
    --executor-cores "$cores"
    --conf "spark.executor.pyspark.memory=$((pyspark_mb * cores))m"
    # YARN restarts the application once when its driver dies (its host lost, a spot node
    # reclaimed); attempt 2 runs the same step again (docs/multi-host.md). Stated here so the
    # behaviour does not depend on the cluster's yarn.resourcemanager.am.max-attempts.
    --conf spark.yarn.maxAppAttempts=2)
  if [[ $events != none ]]; then
    submit+=(--conf spark.eventLog.enabled=true --conf "spark.eventLog.dir=$events")
  fi
  if [[ $archive != none ]]; then
    submit+=(--archives "$archive#environment"
      --conf spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python
      --conf spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python)
  fi
}
