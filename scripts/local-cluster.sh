#!/usr/bin/env bash
# Usage: scripts/local-cluster.sh up|down|status|env
#   A Spark standalone cluster on this machine, loopback only: one master and two workers as
#   separate JVMs (1 core, 1 GB for executors each; daemons at 512 MB heap), started with the
#   spark-class/spark-daemon.sh that ship inside the .venv's pyspark (SPARK_HOME = that package).
#
#   The workers' Python is a bare `python3.11 -m venv --without-pip` with NOTHING installed
#   (PYSPARK_PYTHON and the first python3 on the workers' PATH), so a job only works when it
#   ships its environment: `fmaprep package-env` + spark-submit --archives (see docs/cluster.md).
#
#   up      start what is not running yet (safe to rerun), wait until both workers registered
#   down    stop only the daemons this script started (pid files under .services/spark-cluster)
#   status  what is running; exit 1 when the cluster is not fully up
#   env     export lines for eval "$(scripts/local-cluster.sh env)": FMAPREP_SPARK_MASTER,
#           FMAPREP_WORKER_PYTHON, FMAPREP_WORKER_PYTHON_PREFIX (for package-env --python-prefix)
#
#   Env: FMAPREP_SPARK_MASTER_PORT (7177), FMAPREP_SPARK_MASTER_UI_PORT (8177),
#        WORKER_PYTHON (the base python3.11 for the workers' bare venv; default
#        /usr/bin/python3.11 when present, else python3.11 on PATH).
#   State, logs and executor work dirs: .services/spark-cluster/ (git-ignored); a finished
#   application's work dir is deleted by its worker 10-20 s after it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

state="$root/.services/spark-cluster"
master_port=${FMAPREP_SPARK_MASTER_PORT:-7177}
ui_port=${FMAPREP_SPARK_MASTER_UI_PORT:-8177}
master_url="spark://127.0.0.1:$master_port"
workers=2
venv_python="$root/.venv/bin/python"
bare="$state/worker-python"

die() { echo "local-cluster.sh: $*" >&2; exit 1; }

need_venv() {
  [[ -x $venv_python ]] || die "no .venv: run scripts/install.sh first"
}

spark_env() {
  need_venv
  SPARK_HOME=$("$venv_python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
  local java_home
  java_home=$("$venv_python" -c 'from fmaprep.spark.session import find_java_home; print(find_java_home() or "")')
  if [[ -n $java_home ]]; then export JAVA_HOME=$java_home; fi
  export SPARK_HOME
  export SPARK_PID_DIR="$state/pids" SPARK_LOG_DIR="$state/logs"
  export SPARK_IDENT_STRING=fmaprep-local-cluster
  export SPARK_CONF_DIR="$state/conf"          # empty: nothing from a global spark-env.sh
  export SPARK_LOCAL_IP=127.0.0.1 SPARK_MASTER_HOST=127.0.0.1
  export SPARK_DAEMON_MEMORY=512m
  # each application unpacks its environment archive (~800 MB) into every executor's work dir;
  # a finished application's dir goes after 10-20 s, or a test suite's apps fill the disk
  local cleanup="-Dspark.worker.cleanup.enabled=true -Dspark.worker.cleanup.interval=10"
  export SPARK_WORKER_OPTS="$cleanup -Dspark.worker.cleanup.appDataTtl=10"
  mkdir -p "$SPARK_PID_DIR" "$SPARK_LOG_DIR" "$SPARK_CONF_DIR" "$state/work"
}

pick_worker_python() {
  if [[ -n ${WORKER_PYTHON:-} ]]; then echo "$WORKER_PYTHON"; return; fi
  if [[ -x /usr/bin/python3.11 ]]; then echo /usr/bin/python3.11; return; fi
  command -v python3.11 || die "no python3.11 for the workers (set WORKER_PYTHON)"
}

make_bare_python() {
  if [[ ! -x $bare/bin/python ]]; then
    local base
    base=$(pick_worker_python)
    # resolve shims (pyenv) to the real interpreter, so the venv names a stable home
    base=$("$base" -c 'import sys; print(sys.executable)')
    "$base" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
      die "$base is not Python 3.11"
    "$base" -m venv --without-pip "$bare"
  fi
  # the point of this cluster: the workers' Python has none of the job's packages
  if "$bare/bin/python" -c 'import numpy' 2>/dev/null; then
    die "$bare has numpy installed; remove $bare and rerun"
  fi
}

worker_python_prefix() {
  # the prefix whose bin/python3.11 the bare venv runs (for package-env --python-prefix)
  local home
  home=$(sed -n 's/^home *= *//p' "$bare/pyvenv.cfg")
  dirname "$home"
}

pid_file() { echo "$SPARK_PID_DIR/spark-$SPARK_IDENT_STRING-$1-$2.pid"; }

is_running() {  # class instance
  local f
  f=$(pid_file "$1" "$2")
  [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

master_json() {
  "$venv_python" - "$ui_port" <<'EOF'
import json, sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/json/", timeout=2) as r:
        data = json.load(r)
except OSError:
    sys.exit(1)
alive = [w for w in data.get("workers", []) if w.get("state") == "ALIVE"]
print(len(alive), data.get("status", "?"), len(data.get("activeapps", [])))
EOF
}

MASTER=org.apache.spark.deploy.master.Master
WORKER=org.apache.spark.deploy.worker.Worker

up() {
  spark_env
  make_bare_python
  local daemon="$SPARK_HOME/sbin/spark-daemon.sh"
  if is_running $MASTER 1; then
    echo "master already running ($master_url)"
  else
    "$daemon" start $MASTER 1 --host 127.0.0.1 --port "$master_port" --webui-port "$ui_port" \
      >/dev/null
    echo "started master $master_url (UI http://127.0.0.1:$ui_port)"
  fi
  local i
  for ((i = 1; i <= workers; i++)); do
    if is_running $WORKER "$i"; then
      echo "worker $i already running"
      continue
    fi
    # the workers (and so their executors and Python workers) see only the bare venv
    PATH="$bare/bin:$PATH" PYSPARK_PYTHON="$bare/bin/python" PYTHONNOUSERSITE=1 \
      "$daemon" start $WORKER "$i" --host 127.0.0.1 --port 0 --webui-port 0 \
      --cores 1 --memory 1g --work-dir "$state/work/worker-$i" "$master_url" >/dev/null
    echo "started worker $i (python: $bare/bin/python, nothing installed)"
  done
  local tries=0 info=""
  while ((tries < 60)); do
    if info=$(master_json) && [[ ${info%% *} -ge $workers ]]; then
      echo "cluster up: $master_url with $workers workers"
      return 0
    fi
    sleep 1
    tries=$((tries + 1))
  done
  die "cluster did not come up in 60 s (logs: $SPARK_LOG_DIR)"
}

down() {
  spark_env
  local daemon="$SPARK_HOME/sbin/spark-daemon.sh" i
  for ((i = workers; i >= 1; i--)); do
    if is_running $WORKER "$i"; then "$daemon" stop $WORKER "$i" >/dev/null; echo "stopped worker $i"; fi
  done
  if is_running $MASTER 1; then "$daemon" stop $MASTER 1 >/dev/null; echo "stopped master"; fi
  echo "cluster down"
}

status() {
  spark_env
  local ok=0 i
  if is_running $MASTER 1; then
    echo "master: running (pid $(cat "$(pid_file $MASTER 1)"), $master_url)"
  else
    echo "master: stopped"; ok=1
  fi
  for ((i = 1; i <= workers; i++)); do
    if is_running $WORKER "$i"; then
      echo "worker $i: running (pid $(cat "$(pid_file $WORKER "$i")"))"
    else
      echo "worker $i: stopped"; ok=1
    fi
  done
  local info
  if info=$(master_json); then
    read -r alive mstatus apps <<<"$info"
    echo "master reports: $mstatus, $alive alive workers, $apps running applications"
  fi
  return "$ok"
}

env_vars() {
  need_venv
  make_bare_python
  echo "export FMAPREP_SPARK_MASTER=$master_url"
  echo "export FMAPREP_WORKER_PYTHON=$bare/bin/python"
  echo "export FMAPREP_WORKER_PYTHON_PREFIX=$(worker_python_prefix)"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) env_vars ;;
  *) sed -n '2,22p' "$0" >&2; exit 2 ;;
esac
