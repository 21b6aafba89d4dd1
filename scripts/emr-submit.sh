#!/usr/bin/env bash
# Usage: scripts/emr-submit.sh --cluster-id ID --bucket BUCKET INPUT OUTPUT [options] [--dry-run]
#   Add the preprocess job as an EMR step: spark-submit --deploy-mode cluster of
#   jobs/preprocess.py on YARN, with the environment archive from `fmaprep package-env`
#   shipped with --archives (so the job runs the exact packages it was tested with, whatever
#   the bootstrap installed), or with --no-archive on the bootstrap-installed python3.11.
#
#   INPUT, OUTPUT      s3://... (or s3a://) or hdfs:///... URIs; local paths make no sense here
#   --cluster-id ID    j-XXXXXXXX (required)
#   --bucket B         where the code lives: s3://B/PREFIX/jobs/preprocess.py and
#                      s3://B/PREFIX/env/fmaprep-env.tar.gz (required)
#   --prefix P         key prefix (default fmaprep)
#   --no-archive       use the nodes' /usr/bin/python3.11 (bootstrap route) instead
#   --upload           build the archive now (fmaprep package-env --python-prefix /usr, EMR's
#                      python3.11 is /usr/bin/python3.11) and copy it and the job script first
#   --archive F        with --upload: upload this archive instead of building one (it must be
#                      for Python 3.11 and hold this checkout's fmaprep version: checked first)
#   --executor-cores N, --executor-memory M  (default: sized to the core nodes' instance type,
#                      --instance-type T or the cluster's own: 2 executors a node, each half
#                      the vCPUs and what is left of half the node's YARN memory after Python;
#                      unknown types: 2 cores, 4g)  --region R
#   --pyspark-memory M Python memory per executor core (default 1g): Spark gives each Python
#                      worker an equal share of spark.executor.pyspark.memory (set to N x M),
#                      as its address-space limit, and YARN counts it in the container. A
#                      worker's measured peak on a 3-hour 320 kbps mp3 read from S3 is 506 MB
#                      (docs/emr.md); 700m per core was still enough.
#   --event-log-dir U  Spark event logs for the History Server (default s3://B/PREFIX/spark-events/;
#                      "none": EMR's default, HDFS, lost with the cluster)
#   -- ARGS...         extra fmaprep preprocess options (e.g. -- --resampler resampy)
#   --wait             follow the step until it ends; print fmaprep's summary line from the step's
#                      log in S3 (and, when it failed, fmaprep's first error line); exit 0 only
#                      when the step completed. --wait-timeout S gives up after S seconds.
#   --endpoint-url U   send every aws call (s3 and emr) to this endpoint: a local AWS API
#                      emulator in the tests (awscli 1.x's emr commands ignore AWS_ENDPOINT_URL)
#   --dry-run          print the exact commands instead of running them
#
#   Example: scripts/emr-submit.sh --cluster-id j-ABC --bucket my-fma \
#              s3://my-fma/fma_small/ s3://my-fma/out/fma_small-8k/ --dry-run
set -euo pipefail
cd "$(dirname "$0")/.."

cluster_id="" bucket="" prefix=fmaprep archive=1 upload=0 dry_run=0 endpoint_url="" archive_file=""
executor_memory="" region="" wait_step=0 wait_timeout=0 instance_type=""
pyspark_memory=1g event_log_dir="" executor_cores=""
positional=() extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cluster-id) cluster_id=$2; shift 2 ;;
    --bucket) bucket=$2; shift 2 ;;
    --prefix) prefix=$2; shift 2 ;;
    --no-archive) archive=0; shift ;;
    --upload) upload=1; shift ;;
    --archive) archive_file=$2; shift 2 ;;
    --executor-memory) executor_memory=$2; shift 2 ;;
    --instance-type) instance_type=$2; shift 2 ;;
    --executor-cores) executor_cores=$2; shift 2 ;;
    --pyspark-memory) pyspark_memory=$2; shift 2 ;;
    --event-log-dir) event_log_dir=$2; shift 2 ;;
    --region) region=$2; shift 2 ;;
    --endpoint-url) endpoint_url=$2; shift 2 ;;
    --wait) wait_step=1; shift ;;
    --wait-timeout) wait_timeout=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) sed -n '2,38p' "$0"; exit 0 ;;
    --)
      shift
      # --dry-run is never a preprocess option: honour it even after -- (never submit by mistake)
      for arg in "$@"; do
        if [[ $arg == --dry-run ]]; then dry_run=1; else extra+=("$arg"); fi
      done
      break
      ;;
    -*) echo "emr-submit.sh: unknown option $1" >&2; exit 2 ;;
    *) positional+=("$1"); shift ;;
  esac
done
if [[ -z $cluster_id || -z $bucket || ${#positional[@]} -ne 2 ]]; then
  echo "emr-submit.sh: need --cluster-id, --bucket, INPUT and OUTPUT (see --help)" >&2
  exit 2
fi
input=${positional[0]} output=${positional[1]}
for uri in "$input" "$output"; do
  case "$uri" in
    s3://* | s3a://* | hdfs://*) ;;
    *) echo "emr-submit.sh: $uri is not an s3:// or hdfs:// URI" >&2; exit 2 ;;
  esac
done

code="s3://$bucket/$prefix"
env_archive="$code/env/fmaprep-env.tar.gz"

aws=(aws)
[[ -n $endpoint_url ]] && aws+=(--endpoint-url "$endpoint_url")

me=emr-submit.sh
# shellcheck source=scripts/emr-checks.sh
source scripts/emr-checks.sh
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
if ((!dry_run)); then
  check_bucket_region "$bucket" "$(emr_region "$region")"
  if ((archive && upload)) && [[ -n $archive_file ]]; then
    check_archive "$archive_file" 3.11 "$version"
  fi
fi

run() {
  if ((dry_run)); then
    python3 -c 'import shlex, sys; print(shlex.join(sys.argv[1:]))' "$@"
  else
    "$@"
  fi
}

if ((upload)); then
  if ((archive)); then
    if [[ -z $archive_file ]]; then
      archive_file=build/fmaprep-env.tar.gz
      run .venv/bin/fmaprep package-env "$archive_file" --python-prefix /usr
      ((dry_run)) || check_archive "$archive_file" 3.11 "$version"
    fi
    run "${aws[@]}" s3 cp "$archive_file" "$env_archive"
  fi
  run "${aws[@]}" s3 cp jobs/preprocess.py "$code/jobs/preprocess.py"
fi

# one spark-submit argument list; EMR's Args=[...] is comma-separated, so pass it as JSON
if [[ -z $executor_cores || -z $executor_memory ]]; then
  # sized to the core nodes: given, else asked of the cluster (not in a dry run)
  if [[ -z $instance_type ]] && ((!dry_run)); then
    instance_type=$("${aws[@]}" emr describe-cluster --cluster-id "$cluster_id" --query \
      "Cluster.InstanceGroups[?InstanceGroupType=='CORE'].InstanceType | [0]" --output text)
  fi
  read -r cores memory <<<"$(executor_size "$instance_type" "$pyspark_memory")"
  executor_cores=${executor_cores:-$cores} executor_memory=${executor_memory:-$memory}
fi
[[ $executor_cores =~ ^[1-9][0-9]*$ ]] || { echo "emr-submit: --executor-cores must be a count, got $executor_cores" >&2; exit 2; }
case "$pyspark_memory" in
  *[gG]) per_core_mb=$((${pyspark_memory%[gG]} * 1024)) ;;
  *[mM]) per_core_mb=${pyspark_memory%[mM]} ;;
  *) echo "emr-submit: --pyspark-memory must look like 1g or 768m, got $pyspark_memory" >&2; exit 2 ;;
esac
event_log_dir=${event_log_dir:-$code/spark-events/}
archive_uri=none
((archive)) && archive_uri=$env_archive
# shellcheck source=scripts/submit-args.sh
source scripts/submit-args.sh
preprocess_submit_args "$archive_uri" "$executor_cores" "$executor_memory" "$per_core_mb" \
  "$event_log_dir"
submit+=("$code/jobs/preprocess.py" "$input" "$output" "${extra[@]}")

args_json=$(printf '%s\n' "${submit[@]}" | python3 -c \
  'import json, sys; print(json.dumps(sys.stdin.read().splitlines(), separators=(",", ":")))')
step=$(printf '[{"Type":"CUSTOM_JAR","Name":"fmaprep preprocess","ActionOnFailure":"CONTINUE","Jar":"command-runner.jar","Args":%s}]' "$args_json")
cmd=("${aws[@]}" emr add-steps --cluster-id "$cluster_id" --steps "$step")
[[ -n $region ]] && cmd+=(--region "$region")
if ((dry_run || !wait_step)); then
  run "${cmd[@]}"
  exit 0
fi
step_id=$("${cmd[@]}" --query 'StepIds[0]' --output text)
echo "$step_id"
follow_step "$cluster_id" "$step_id" "$wait_timeout"
