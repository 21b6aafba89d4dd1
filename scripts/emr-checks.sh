#!/usr/bin/env bash
# Usage: source scripts/emr-checks.sh   (from emr-create-cluster.sh and emr-submit.sh)
#   What would go wrong on EMR, found before AWS is asked to start (or run) anything (each
#   check prints one line with its fix and exits 2), executor_size for the executor settings,
#   and follow_step for `emr-submit.sh --wait`.
#   Needs the caller's `aws` array (aws [--endpoint-url U]) and `me` (the script's name).
# shellcheck disable=SC2154 # aws and me are the caller's
set -euo pipefail

# The region the cluster is (or will be) in: --region, else the CLI's own configuration.
emr_region() {
  local given=$1
  if [[ -n $given ]]; then echo "$given"; return; fi
  if [[ -n ${AWS_REGION:-} ]]; then echo "$AWS_REGION"; return; fi
  if [[ -n ${AWS_DEFAULT_REGION:-} ]]; then echo "$AWS_DEFAULT_REGION"; return; fi
  aws configure get region 2>/dev/null || true
}

# A bucket in another region than the cluster: every read and write crosses regions (slow,
# billed per GB) and some requests are refused.
check_bucket_region() {
  local bucket=$1 region=$2 where
  if ! where=$("${aws[@]}" s3api get-bucket-location --bucket "$bucket" \
      --query LocationConstraint --output text 2>&1); then
    echo "$me: bucket $bucket cannot be read: ${where##*: } (check its name and your credentials)" >&2
    exit 2
  fi
  [[ $where == None || $where == null || -z $where ]] && where=us-east-1
  if [[ -n $region && $where != "$region" ]]; then
    echo "$me: bucket $bucket is in $where but the cluster is in $region: pass --region $where, or use a bucket in $region" >&2
    exit 2
  fi
}

check_role() {
  local role=$1 option=$2
  if ! "${aws[@]}" iam get-role --role-name "$role" >/dev/null 2>&1; then
    echo "$me: IAM role $role does not exist: run 'aws emr create-default-roles', or pass $option" >&2
    exit 2
  fi
}

check_instance_profile() {
  local profile=$1
  if ! "${aws[@]}" iam get-instance-profile --instance-profile-name "$profile" >/dev/null 2>&1; then
    echo "$me: EC2 instance profile $profile does not exist: run 'aws emr create-default-roles', or pass --instance-profile" >&2
    exit 2
  fi
}

# The environment archive must be for the nodes' Python (EMR 7: python3.11 from the bootstrap
# action) and hold the fmaprep whose jobs/preprocess.py is submitted with it.
check_archive() {
  local archive=$1 want_python=$2 want_version=$3 cfg python fmaprep home
  cfg=$(tar -xzOf "$archive" pyvenv.cfg 2>/dev/null) || {
    echo "$me: $archive is not an environment archive from 'fmaprep package-env' (no pyvenv.cfg)" >&2
    exit 2
  }
  python=$(sed -n 's/^version[_a-z]* *= *\([0-9]*\.[0-9]*\).*/\1/p' <<<"$cfg" | head -1)
  if [[ $python != "$want_python" ]]; then
    echo "$me: $archive is built for Python $python, the EMR nodes run Python $want_python: rebuild it with 'fmaprep package-env --python-prefix /usr' on Python $want_python" >&2
    exit 2
  fi
  # bin/python is a link to the base interpreter pyvenv.cfg's home names: it must be the nodes'
  home=$(sed -n 's/^home *= *//p' <<<"$cfg" | head -1)
  if [[ $home != /usr/bin ]]; then
    echo "$me: $archive links its Python to $home/python$want_python, the EMR nodes have /usr/bin/python$want_python: rebuild it with 'fmaprep package-env --python-prefix /usr'" >&2
    exit 2
  fi
  fmaprep=$(tar -tzf "$archive" | sed -n 's|.*site-packages/fmaprep-\([^/]*\)\.dist-info/.*|\1|p' | head -1)
  if [[ $fmaprep != "$want_version" ]]; then
    echo "$me: $archive holds fmaprep ${fmaprep:-(none)} but jobs/preprocess.py is fmaprep $want_version: rebuild the archive (--upload) from this checkout" >&2
    exit 2
  fi
}

# Follow one step to its end, then show fmaprep's own lines from its logs (EMR copies them to
# LOG_URI/CLUSTER/steps/STEP/ a few minutes after the step ends). Returns 0 when it completed.
follow_step() {
  local cluster=$1 step=$2 limit=$3 poll=${FMAPREP_EMR_POLL_S:-30} state="" last="" waited=0
  while :; do
    state=$("${aws[@]}" emr describe-step --cluster-id "$cluster" --step-id "$step" \
      --query Step.Status.State --output text)
    if [[ $state != "$last" ]]; then echo "$me: step $step: $state" >&2; last=$state; fi
    case $state in COMPLETED | FAILED | CANCELLED | INTERRUPTED) break ;; esac
    if ((limit > 0 && waited >= limit)); then
      echo "$me: step $step is still $state after ${limit}s; follow it with: aws emr describe-step --cluster-id $cluster --step-id $step" >&2
      return 1
    fi
    sleep "$poll"
    waited=$((waited + poll))
  done
  local logs summary error tries=${FMAPREP_EMR_LOG_TRIES:-20}
  logs=$("${aws[@]}" emr describe-cluster --cluster-id "$cluster" --query Cluster.LogUri --output text)
  logs="${logs%/}/$cluster/steps/$step"
  for ((i = 0; i < tries; i++)); do
    if summary=$("${aws[@]}" s3 cp "$logs/stdout.gz" - 2>/dev/null | gunzip 2>/dev/null \
        | grep -m1 '^fmaprep preprocess: '); then
      break
    fi
    summary=""
    sleep "$poll"
  done
  [[ -n $summary ]] && echo "$summary"
  if [[ $state != COMPLETED ]]; then
    error=$("${aws[@]}" s3 cp "$logs/stderr.gz" - 2>/dev/null | gunzip 2>/dev/null \
      | grep -m1 '^fmaprep: ' || true)
    echo "$me: step $step ended $state${error:+: $error} (logs: $logs/)" >&2
    return 1
  fi
  [[ -n $summary ]] || echo "$me: step $step completed; no fmaprep summary in $logs/stdout.gz yet" >&2
}

# "CORES MEMORY" for executors on a core node of this instance type: two executors a node,
# each half the vCPUs, and the JVM heap what is left of half the node's YARN memory (EMR gives
# YARN about 3/4 of the RAM) after the Python workers' share (cores x PYSPARK_MEMORY) and
# Spark's overhead (10%, at least 384m). Unknown types: "2 4g", as before.
executor_size() {
  local type=$1 pyspark=$2 vcpu ram py_mb half heap
  case $type in
    m5.xlarge | m6i.xlarge | m7i.xlarge) vcpu=4 ram=16 ;;
    m5.2xlarge | m6i.2xlarge | m7i.2xlarge) vcpu=8 ram=32 ;;
    m5.4xlarge | m6i.4xlarge | m7i.4xlarge) vcpu=16 ram=64 ;;
    c5.2xlarge | c6i.2xlarge | c7i.2xlarge) vcpu=8 ram=16 ;;
    c5.4xlarge | c6i.4xlarge | c7i.4xlarge) vcpu=16 ram=32 ;;
    r5.xlarge | r6i.xlarge) vcpu=4 ram=32 ;;
    r5.2xlarge | r6i.2xlarge) vcpu=8 ram=64 ;;
    *)
      echo "$me: no sizing known for instance type '${type:-?}': 2 cores, 4g per executor (set --executor-cores and --executor-memory)" >&2
      echo "2 4g"
      return
      ;;
  esac
  case $pyspark in
    *[gG]) py_mb=$((${pyspark%[gG]} * 1024)) ;;
    *) py_mb=${pyspark%[mM]} ;;
  esac
  local cores=$((vcpu / 2)) python_mb
  python_mb=$((cores * py_mb))
  half=$((ram * 1024 * 3 / 8))
  heap=$(((half - python_mb) * 10 / 11))
  ((heap + 384 + python_mb > half)) && heap=$((half - 384 - python_mb))
  heap=$((heap - heap % 512))
  if ((heap < 1024)); then
    echo "$me: $type cannot hold 2 executors of $cores cores with --pyspark-memory $pyspark: set --executor-cores and --executor-memory" >&2
    exit 2
  fi
  echo "$cores ${heap}m"
}
