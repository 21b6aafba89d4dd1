#!/usr/bin/env bash
# Usage: scripts/check-storage.sh [--json] [--no-spark] URI [URI ...]
#   Storage health check: run it on the exact INPUT and OUTPUT URIs a job will use, before the job.
#   URI: hdfs://host:port/dir, hdfs:///dir (the NameNode of fs.defaultFS), s3a://bucket/prefix/,
#   s3://bucket/prefix/, file:///dir, or a plain local path (resolved explicitly against $PWD).
#   For each URI, in order:
#     hdfs   tools (hdfs), fs.defaultFS and where a relative path would land, NameNode reachable,
#            safe mode off, live DataNodes > 0, write/read/delete of a probe file in the target
#            directory (or its nearest existing parent, where the job would create it)
#     s3     tools (python with boto3), endpoint reachable, credentials valid, bucket exists,
#            put/get/list/delete of a probe under the prefix (no ACL headers; secrets never shown)
#     local  the directory (or nearest parent) exists and takes a write/read/delete probe
#   then, when all of that passed, the job's own path (local[1], .venv's pyspark): the driver
#   lists each URI as the job plans, and a Spark task reads one input and writes/reads/deletes
#   one probe with the job's clients (boto3 for S3, WebHDFS for HDFS) and settings
#   (conf/storage.toml, FMAPREP_S3_*, FMAPREP_WEBHDFS_URL or dfs.namenode.http-address).
#   Output: one line per check ("ok" or "FAIL CHECK URI: what and why. Fix: ..."); each failure
#   is one line. --json: one JSON object per check {"check","uri","status","message","fix"}.
#   Exit 0 only when every check passed; 1 when one failed; 2 on bad usage.
#   Env: the S3 settings of conf/storage.toml and their overrides (FMAPREP_S3_ENDPOINT,
#     AWS_REGION/AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), FMAPREP_HDFS_URI,
#     HADOOP_USER_NAME (act as that HDFS user), FMAPREP_PYTHON (default .venv/bin/python).
#   Locally: eval "$(scripts/local-services.sh env)" first.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JSON=0
SPARK=1
URIS=()
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while (($#)); do
  case $1 in
    --json) JSON=1 ;;
    --no-spark) SPARK=0 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; URIS+=("$@"); break ;;
    -*) usage >&2; exit 2 ;;
    *) URIS+=("$1") ;;
  esac
  shift
done
((${#URIS[@]})) || { usage >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fmaprep-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FAILED=0

# ---------------------------------------------------------------- output
json_str() {
  local s=$1
  s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\t'/ }; s=${s//$'\n'/ }; s=${s//$'\r'/ }
  printf '"%s"' "$s"
}

# emit CHECK URI STATUS MESSAGE [FIX]
emit() {
  local check=$1 uri=$2 status=$3 message=$4 fix=${5:-}
  [[ $status == fail ]] && FAILED=1
  if ((JSON)); then
    printf '{"check": %s, "uri": %s, "status": %s, "message": %s, "fix": %s}\n' \
      "$(json_str "$check")" "$(json_str "$uri")" "$(json_str "$status")" \
      "$(json_str "$message")" "$(json_str "$fix")"
  else
    case $status in
      pass) printf 'ok   %-16s %s: %s\n' "$check" "$uri" "$message" ;;
      fail) printf 'FAIL %-16s %s: %s.%s\n' "$check" "$uri" "$message" "${fix:+ Fix: $fix}" ;;
      *) printf 'skip %-16s %s: %s\n' "$check" "$uri" "$message" ;;
    esac
  fi
}

# ---------------------------------------------------------------- tools
pick_python() {
  if [[ -n ${FMAPREP_PYTHON:-} ]]; then echo "$FMAPREP_PYTHON"
  elif [[ -x $ROOT/.venv/bin/python ]]; then echo "$ROOT/.venv/bin/python"
  else command -v python3 || true
  fi
}
PYTHON=$(pick_python)

# first_line FILE: the most telling line of a Hadoop tool's stderr (no stack frames, no SLF4J).
first_line() {
  grep -vE '^\s+at |^SLF4J|WARN util.NativeCodeLoader|^\s*$|^Caused by: .*\.\.\. [0-9]+ more' "$1" |
    head -n 1 | cut -c1-300
}

# ---------------------------------------------------------------- hdfs
hdfs_checks() {
  local uri=$1 out=$WORK/out err=$WORK/err
  if ! command -v hdfs >/dev/null 2>&1; then
    emit tools "$uri" fail "no 'hdfs' command on PATH" \
      "locally: eval \"\$(scripts/local-services.sh env)\" (puts scripts/bin/hdfs first); on a cluster node use Hadoop's hdfs"
    return 1
  fi
  emit tools "$uri" pass "hdfs is $(command -v hdfs)"

  # fs.defaultFS and where paths land.
  local default_fs user authority path nn
  if ! hdfs getconf -confKey fs.defaultFS >"$out" 2>"$err"; then
    emit hdfs.defaultfs "$uri" fail "hdfs getconf failed: $(first_line "$err")" \
      "check HADOOP_CONF_DIR / the hdfs launcher (scripts/local-services.sh up)"
    return 1
  fi
  default_fs=$(tail -n 1 "$out")
  default_fs=${default_fs%/}
  user=${HADOOP_USER_NAME:-$(id -un)}
  authority=${uri#hdfs://}
  authority=${authority%%/*}
  path=/${uri#hdfs://*/}
  [[ $uri == hdfs://*/* ]] || path=/
  if [[ -z $authority ]]; then
    if [[ $default_fs != hdfs://* ]]; then
      emit hdfs.defaultfs "$uri" fail \
        "hdfs:/// names no NameNode and fs.defaultFS is $default_fs, not HDFS" \
        "write the NameNode into the URI: hdfs://HOST:PORT$path"
      return 1
    fi
    nn=${default_fs#hdfs://}
  else
    nn=$authority
  fi
  local full=hdfs://$nn$path
  emit hdfs.defaultfs "$uri" pass \
    "fs.defaultFS=$default_fs; $uri is $full; a relative path would land in $default_fs/user/$user/"

  # NameNode reachable (RPC port open).
  local host=${nn%:*} port=${nn##*:}
  [[ $nn == *:* ]] || port=8020
  if ! timeout 5 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null; then
    emit hdfs.namenode "$uri" fail "NameNode not reachable at $host:$port (connection refused or timed out)" \
      "start HDFS (locally: scripts/local-services.sh up; on EMR check the master node) or correct host:port in the URI / fs.defaultFS"
    return 1
  fi
  emit hdfs.namenode "$uri" pass "NameNode answers at $host:$port"

  # Safe mode.
  if ! hdfs dfsadmin -fs "hdfs://$nn" -safemode get >"$out" 2>"$err"; then
    emit hdfs.safemode "$uri" fail "cannot ask the NameNode for safe mode: $(first_line "$err")" \
      "check the NameNode log"
    return 1
  fi
  if grep -q "Safe mode is ON" "$out"; then
    emit hdfs.safemode "$uri" fail "HDFS is in safe mode: the NameNode refuses writes" \
      "wait for DataNodes to report, or as the HDFS superuser: hdfs dfsadmin -safemode leave"
    return 1
  fi
  emit hdfs.safemode "$uri" pass "safe mode is off"

  # Live DataNodes (dfsadmin -report needs the superuser; else the NameNode's JMX).
  local live=""
  if hdfs dfsadmin -fs "hdfs://$nn" -report -live >"$out" 2>"$err"; then
    live=$(sed -n 's/^Live datanodes (\([0-9]*\)):.*/\1/p' "$out" | head -n 1)
    live=${live:-0}
  else
    local http
    http=$(hdfs getconf -confKey dfs.namenode.http-address 2>/dev/null | tail -n 1 || true)
    http=$host:${http##*:}
    live=$("$PYTHON" - "http://$http/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState" \
      2>/dev/null <<'EOF' || true
import json, sys, urllib.request
print(json.load(urllib.request.urlopen(sys.argv[1], timeout=5))["beans"][0]["NumLiveDataNodes"])
EOF
    )
  fi
  if [[ -z $live ]]; then
    emit hdfs.datanodes "$uri" fail "cannot count live DataNodes: $(first_line "$err")" \
      "run the check as the HDFS superuser, or open the NameNode web port"
    return 1
  elif ((live == 0)); then
    emit hdfs.datanodes "$uri" fail "no live DataNodes: HDFS cannot store blocks" \
      "start the DataNodes (locally: scripts/local-services.sh up) and check their logs"
    return 1
  fi
  emit hdfs.datanodes "$uri" pass "$live live DataNode(s)"

  # Round trip in the target dir, or in the nearest existing parent.
  local -a chain=()
  local p=$path
  while :; do
    chain+=("hdfs://$nn$p")
    [[ $p == / ]] && break
    p=$(dirname "${p%/}")
  done
  hdfs dfs -stat '%F' "${chain[@]}" >"$out" 2>"$err" || true
  local n_exist n_all dir kind
  n_exist=$(wc -l <"$out")
  n_all=${#chain[@]}
  if ((n_exist == 0)); then
    emit hdfs.roundtrip "$uri" fail "cannot stat $full: $(first_line "$err")" "check permissions on the parents"
    return 1
  fi
  dir=${chain[n_all - n_exist]}
  kind=$(head -n 1 "$out")
  if [[ $kind != directory ]]; then
    emit hdfs.roundtrip "$uri" fail "$dir is a $kind, not a directory" "use a directory URI"
    return 1
  fi
  local probe payload
  probe=${dir%/}/fmaprep_probe_$(hostname)_$$_$RANDOM
  payload="fmaprep storage probe $(date +%s%N)"
  local where=$dir
  [[ $dir == "${full%/}" || $dir == "$full" ]] || where="$dir (nearest existing parent of $full)"
  if ! printf '%s' "$payload" | hdfs dfs -put - "$probe" >"$out" 2>"$err"; then
    local why
    why=$(first_line "$err")
    if grep -q "Permission denied" "$err"; then
      emit hdfs.roundtrip "$uri" fail "target dir not writable: user $user cannot write in $where ($why)" \
        "as the HDFS superuser: hdfs dfs -chown $user $dir (or -chmod), or use a directory $user owns, e.g. /user/$user"
    else
      emit hdfs.roundtrip "$uri" fail "writing probe $probe failed: $why" "check the NameNode and DataNode logs"
    fi
    return 1
  fi
  if ! hdfs dfs -cat "$probe" >"$out" 2>"$err" || [[ $(<"$out") != "$payload" ]]; then
    emit hdfs.roundtrip "$uri" fail "reading probe $probe back failed: $(first_line "$err")" \
      "check the DataNodes (hdfs dfsadmin -report) and their logs"
    hdfs dfs -rm -f -skipTrash "$probe" >/dev/null 2>&1 || true
    return 1
  fi
  if ! hdfs dfs -rm -skipTrash "$probe" >"$out" 2>"$err"; then
    emit hdfs.roundtrip "$uri" fail "deleting probe $probe failed: $(first_line "$err")" \
      "grant delete (write on $dir) to $user"
    return 1
  fi
  emit hdfs.roundtrip "$uri" pass "write/read/delete of a probe in $where as user $user"
}

# ---------------------------------------------------------------- s3 (python + boto3)
s3_checks() {
  local uri=$1
  if [[ -z $PYTHON ]] || ! "$PYTHON" -c 'import boto3, fmaprep.storage.probe' 2>/dev/null; then
    emit tools "$uri" fail "no python with boto3 and fmaprep (tried ${PYTHON:-python3})" \
      "run scripts/install.sh (creates .venv with boto3), or set FMAPREP_PYTHON"
    return 1
  fi
  local rc=0 check u status message fix
  "$PYTHON" -m fmaprep.storage.probe s3 "$uri" >"$WORK/s3.tsv" 2>"$WORK/s3.err" || rc=$?
  while IFS=$'\t' read -r check u status message fix; do
    emit "$check" "$u" "$status" "$message" "$fix"
  done <"$WORK/s3.tsv"
  if ((rc != 0)) && ! grep -q $'\tfail\t' "$WORK/s3.tsv"; then
    emit s3 "$uri" fail "the S3 probe crashed: $(tail -n 1 "$WORK/s3.err")" "see the message"
  fi
  return "$rc"
}

# ---------------------------------------------------------------- local files
local_checks() {
  local uri=$1 path
  path=${uri#file://}
  [[ $path == /* ]] || path=$PWD/$path
  local full=file://$path dir=$path
  while [[ ! -e $dir ]]; do dir=$(dirname "$dir"); done
  emit tools "$uri" pass "local filesystem: $uri is $full"
  if [[ ! -d $dir ]]; then
    emit local.roundtrip "$uri" fail "$dir is not a directory" "use a directory"
    return 1
  fi
  local probe payload="fmaprep probe $$"
  probe=$dir/fmaprep_probe_$(hostname)_$$_$RANDOM
  if ! (printf '%s' "$payload" >"$probe") 2>"$WORK/err"; then
    emit local.roundtrip "$uri" fail "cannot write in $dir as $(id -un): $(head -n 1 "$WORK/err")" \
      "chmod/chown $dir, or choose a writable directory"
    return 1
  fi
  if [[ $(<"$probe") != "$payload" ]] || ! rm -f "$probe"; then
    emit local.roundtrip "$uri" fail "probe $probe did not read back or delete" "check the disk"
    return 1
  fi
  emit local.roundtrip "$uri" pass "write/read/delete of a probe in $dir"
}

# ---------------------------------------------------------------- main
SPARK_URIS=()
for uri in "${URIS[@]}"; do
  ok=1
  case $uri in
    hdfs://*) hdfs_checks "$uri" || ok=0 ;;
    s3a://* | s3://* | s3n://*) s3_checks "$uri" || ok=0 ;;
    file://*) local_checks "$uri" || ok=0 ;;
    *://*)
      emit uri "$uri" fail "unsupported scheme ${uri%%://*}" "use hdfs://, s3a://, s3:// or file://"
      ok=0 ;;
    *) local_checks "$uri" || ok=0 ;;
  esac
  if ((ok)); then
    if [[ $uri == *://* ]]; then
      SPARK_URIS+=("$uri")
    else
      abs=$uri; [[ $abs == /* ]] || abs=$PWD/$abs
      SPARK_URIS+=("file://$abs")
    fi
  fi
done

if ((SPARK)); then
  if ((FAILED)); then
    for uri in "${URIS[@]}"; do
      emit spark "$uri" skip "not run: fix the failures above first"
    done
  elif [[ -z $PYTHON ]] || ! "$PYTHON" -c 'import pyspark, fmaprep.job.storage_check' 2>/dev/null; then
    emit spark "${URIS[0]}" fail "no python with pyspark and fmaprep (tried ${PYTHON:-python3})" \
      "run scripts/install.sh, or set FMAPREP_PYTHON"
  else
    log=${FMAPREP_CHECK_LOG:-${TMPDIR:-/tmp}/fmaprep-check-storage-spark.log}
    : >"$log"
    rc=0
    # shellcheck disable=SC2094 # the probe appends its JVM's chatter to the log it is given
    "$PYTHON" -m fmaprep.job.storage_check "$log" "${SPARK_URIS[@]}" >"$WORK/spark.tsv" \
      2>>"$log" || rc=$?
    while IFS=$'\t' read -r check u status message fix; do
      emit "$check" "$u" "$status" "$message" "$fix"
    done <"$WORK/spark.tsv"
    if ((rc != 0)) && ! grep -q $'\tfail\t' "$WORK/spark.tsv"; then
      emit spark "${URIS[0]}" fail "the Spark probe crashed (log $log)" "read the log's last lines"
    fi
  fi
fi
exit "$FAILED"
