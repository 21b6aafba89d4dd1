#!/usr/bin/env bash
# Usage: scripts/local-yarn.sh up|down|status|env
#   A single-node YARN on loopback: Apache Hadoop's ResourceManager and NodeManager run from the
#   released jars (resolved from Maven Central by scripts/maven/yarn-pom.xml with mvn, cached in
#   .services/yarn/lib), FIFO scheduler, 3 GB / 2 vcores for containers, daemons at 512 MB heap.
#   The closest stand-in for EMR that runs here: spark-submit --master yarn --deploy-mode cluster.
#
#   Storage: the default filesystem is file:/// (one node: the NodeManager localizes the staging
#   files from the same disk). HDFS comes from scripts/local-services.sh (the storage work) when
#   it is there; `env` then also prints its variables.
#
#   up      fetch the jars (first time), write the config, start what is not running, wait until
#           the NodeManager registered. Safe to rerun.
#   down    stop only the daemons this script started (pid files under .services/yarn/pids)
#   status  one line per daemon; exit 1 unless both run
#   env     export lines: HADOOP_CONF_DIR (for spark-submit), FMAPREP_YARN_SPARK_CONF
#           (spark-submit --conf flags that use the .venv's pyspark jars in place, no upload)
#
#   Env: FMAPREP_YARN_PORT_BASE (18030): scheduler = base, resource tracker +1, client RPC +2,
#        admin +3, RM web +58, NM localizer +10, NM web +12. FMAPREP_HADOOP_VERSION (3.3.4).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

state="$root/.services/yarn"
lib="$state/lib"
conf="$state/conf"
pids="$state/pids"
logs="$state/logs"
hadoop_version=${FMAPREP_HADOOP_VERSION:-3.3.4}
base=${FMAPREP_YARN_PORT_BASE:-18030}
venv_python="$root/.venv/bin/python"

die() { echo "local-yarn.sh: $*" >&2; exit 1; }

java_bin() {
  [[ -x $venv_python ]] || die "no .venv: run scripts/install.sh first"
  local home
  home=$("$venv_python" -c 'from fmaprep.spark.session import find_java_home; print(find_java_home() or "")')
  if [[ -n $home ]]; then
    export JAVA_HOME=$home
  elif [[ -z ${JAVA_HOME:-} ]]; then
    JAVA_HOME=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")
    export JAVA_HOME
  fi
  echo "$JAVA_HOME/bin/java"
}

spark_home() {
  "$venv_python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))'
}

fetch_jars() {
  if [[ -f $lib/.complete-$hadoop_version ]]; then return; fi
  command -v mvn >/dev/null 2>&1 || die "mvn is needed once to fetch Hadoop's jars (apt-get install maven)"
  echo "fetching Hadoop $hadoop_version YARN jars from Maven Central into $lib" >&2
  rm -rf "$lib"
  mvn -q -B -f scripts/maven/yarn-pom.xml -Dhadoop.version="$hadoop_version" \
    dependency:copy-dependencies -DoutputDirectory="$lib" >&2 || die "mvn failed"
  touch "$lib/.complete-$hadoop_version"
}

prop() { printf '  <property><name>%s</name><value>%s</value></property>\n' "$1" "$2"; }

write_conf() {
  mkdir -p "$conf" "$pids" "$logs" "$state/nm-local" "$state/nm-logs" "$state/tmp"
  {
    echo '<?xml version="1.0"?><configuration>'
    prop fs.defaultFS file:///
    prop hadoop.tmp.dir "$state/tmp"
    echo '</configuration>'
  } >"$conf/core-site.xml"
  {
    echo '<?xml version="1.0"?><configuration>'
    prop yarn.resourcemanager.hostname 127.0.0.1
    prop yarn.resourcemanager.bind-host 127.0.0.1
    prop yarn.resourcemanager.scheduler.address "127.0.0.1:$base"
    prop yarn.resourcemanager.resource-tracker.address "127.0.0.1:$((base + 1))"
    prop yarn.resourcemanager.address "127.0.0.1:$((base + 2))"
    prop yarn.resourcemanager.admin.address "127.0.0.1:$((base + 3))"
    prop yarn.resourcemanager.webapp.address "127.0.0.1:$((base + 58))"
    prop yarn.resourcemanager.scheduler.class \
      org.apache.hadoop.yarn.server.resourcemanager.scheduler.fifo.FifoScheduler
    prop yarn.nodemanager.hostname 127.0.0.1
    prop yarn.nodemanager.bind-host 127.0.0.1
    prop yarn.nodemanager.address 127.0.0.1:0
    prop yarn.nodemanager.localizer.address "127.0.0.1:$((base + 10))"
    prop yarn.nodemanager.webapp.address "127.0.0.1:$((base + 12))"
    prop yarn.nodemanager.resource.memory-mb 3072
    prop yarn.nodemanager.resource.cpu-vcores 2
    prop yarn.scheduler.minimum-allocation-mb 128
    prop yarn.scheduler.maximum-allocation-mb 2048
    prop yarn.nodemanager.vmem-check-enabled false
    prop yarn.nodemanager.pmem-check-enabled false
    prop yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage 99.5
    prop yarn.nodemanager.local-dirs "$state/nm-local"
    prop yarn.nodemanager.log-dirs "$state/nm-logs"
    # a finished application's container dirs go at once, and the localized environment
    # archives (~800 MB unpacked, one per application) are trimmed to 1 GB every 20 s:
    # otherwise a test suite's applications fill the disk
    prop yarn.nodemanager.delete.debug-delay-sec 0
    prop yarn.nodemanager.localizer.cache.target-size-mb 1024
    prop yarn.nodemanager.localizer.cache.cleanup.interval-ms 20000
    prop yarn.nodemanager.env-whitelist JAVA_HOME,PATH,LANG,TZ
    echo '</configuration>'
  } >"$conf/yarn-site.xml"
  cat >"$conf/log4j.properties" <<'EOF'
log4j.rootLogger=INFO,file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${yarn.log.file}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=%d{HH:mm:ss} %p %c{1}: %m%n
log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR
EOF
}

pid_of() { cat "$pids/$1.pid" 2>/dev/null || true; }

is_running() {
  local pid
  pid=$(pid_of "$1")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

start_daemon() {  # name class
  local name=$1 class=$2 java
  if is_running "$name"; then echo "$name already running"; return; fi
  java=$(java_bin)
  # Hadoop 3.3's YARN (guice/cglib) reflects into java.base: open it on Java 17
  local opens=()
  local pkg
  for pkg in java.lang java.lang.reflect java.util java.util.concurrent java.io java.net java.nio; do
    opens+=(--add-opens "java.base/$pkg=ALL-UNNAMED")
  done
  nohup "$java" -Xmx512m -XX:+UseSerialGC "${opens[@]}" -Dfmaprep.service="yarn-$name" \
    -Dyarn.log.dir="$logs" -Dyarn.log.file="$logs/$name.log" -Dhadoop.log.dir="$logs" \
    -Dlog4j.configuration="file:$conf/log4j.properties" \
    -cp "$conf:$lib/*" "$class" >"$logs/$name.out" 2>&1 &
  echo $! >"$pids/$name.pid"
  echo "started $name (pid $!)"
}

running_nodes() {
  "$venv_python" - "$((base + 58))" <<'EOF'
import json, sys, urllib.request
try:
    url = f"http://127.0.0.1:{sys.argv[1]}/ws/v1/cluster/metrics"
    with urllib.request.urlopen(url, timeout=2) as r:
        print(json.load(r)["clusterMetrics"]["activeNodes"])
except (OSError, KeyError, ValueError):
    print(0)
EOF
}

up() {
  fetch_jars
  write_conf
  start_daemon resourcemanager org.apache.hadoop.yarn.server.resourcemanager.ResourceManager
  start_daemon nodemanager org.apache.hadoop.yarn.server.nodemanager.NodeManager
  local tries=0
  while ((tries < 90)); do
    if [[ $(running_nodes) -ge 1 ]]; then
      echo "YARN up: ResourceManager 127.0.0.1:$((base + 2)) (web http://127.0.0.1:$((base + 58))), 1 NodeManager"
      return 0
    fi
    is_running resourcemanager || die "ResourceManager died (see $logs/resourcemanager.log)"
    is_running nodemanager || die "NodeManager died (see $logs/nodemanager.log)"
    sleep 1
    tries=$((tries + 1))
  done
  die "YARN did not come up in 90 s (logs: $logs)"
}

stop_daemon() {
  local name=$1 pid i
  pid=$(pid_of "$name")
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for ((i = 0; i < 30; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
    echo "stopped $name"
  fi
  rm -f "$pids/$name.pid"
}

down() {
  stop_daemon nodemanager
  stop_daemon resourcemanager
  echo "YARN down"
}

status() {
  local ok=0 name
  for name in resourcemanager nodemanager; do
    if is_running "$name"; then echo "$name: running (pid $(pid_of "$name"))"; else echo "$name: stopped"; ok=1; fi
  done
  echo "active NodeManagers: $(running_nodes)"
  return "$ok"
}

env_vars() {
  local sh
  sh=$(spark_home)
  echo "export HADOOP_CONF_DIR=$conf"
  echo "export SPARK_HOME=$sh"
  echo "export FMAPREP_YARN_SPARK_CONF='--conf spark.yarn.jars=local:$sh/jars/* --conf spark.yarn.submit.waitAppCompletion=true'"
  if [[ -x scripts/local-services.sh ]]; then bash scripts/local-services.sh env; fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) env_vars ;;
  *) sed -n '2,21p' "$0" >&2; exit 2 ;;
esac
