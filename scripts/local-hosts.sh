#!/usr/bin/env bash
# Usage: scripts/local-hosts.sh up N | env | status | submit [OPTIONS] INPUT OUTPUT [preprocess options]
#                              | kill-host I | slow-host I [PERCENT|off] | cut-host I SECONDS [s3|hdfs|all]
#                              | heal-host I | down
#   A cluster of separate hosts on this one machine (needs root): a head host (YARN
#   ResourceManager, HDFS NameNode, the S3 server) and N worker hosts w1..wN (each a YARN
#   NodeManager and an HDFS DataNode, replication 2). Each host is its own network namespace with
#   its own address on a bridge this script creates (10.231.ID.0/24: head .10, its NameNode also
#   at .9 and S3 at .8, wI .10+I), its own
#   hostname (a generated hosts file every host resolves), its own PID namespace, and its own
#   mount namespace: a private /tmp, scratch under /opt/node, and this repository (its .venv and
#   build/) and the home directory hidden. An executor has only what YARN localizes (the
#   environment archive), the nodes' Java, Hadoop and Spark jars (/opt, as EMR installs them) and
#   the base /usr/bin/python3.11 the archive links to (`fmaprep package-env --python-prefix /usr`).
#   Hadoop and s3proxy run from the released jars (Maven Central), as in local-services.sh.
#
#   up N      create the network and hosts, start the daemons, wait until YARN runs the N
#             workers' NodeManagers and N DataNodes are live. Safe to rerun: starts the hosts
#             that are not running (a killed worker once YARN has declared its old NodeManager
#             lost) and waits for their NodeManagers to register.
#   env       export lines for a client on this machine: FMAPREP_HDFS_URI, FMAPREP_WEBHDFS_URL,
#             FMAPREP_S3_ENDPOINT, FMAPREP_S3_BUCKET, AWS_* (local keys), FMAPREP_YARN_RM_URL,
#             HADOOP_CONF_DIR, FMAPREP_HOSTS_STATE and PATH with the `hdfs` launcher first.
#   status    one line per host; exit 3 unless every host runs.
#   submit    the preprocess job in YARN cluster mode with the environment archive, from the same
#             argument list scripts/emr-submit.sh sends (scripts/submit-args.sh); waits for the
#             application to end and exits with its status (on failure: the driver's error line).
#             OPTIONS: --archive F (default build/fmaprep-env.tar.gz, built when missing),
#             --no-archive, --conf K=V (repeatable: extra spark-submit settings), --job PY
#             (another application file, its own arguments in place of INPUT OUTPUT).
#   kill-host I   SIGKILL every process of worker I and take its link down (a reclaimed spot node)
#   slow-host I [PERCENT|off]  limit worker I to PERCENT of one CPU (default 10; cgroup cpu quota)
#   cut-host I SECONDS [s3|hdfs|all]  worker I loses its route to the head's S3 address, its
#             HDFS NameNode address, or both (default; YARN stays reachable) for SECONDS: open
#             connections stall, new ones fail after ~3 s (no route to host); then it comes back.
#   heal-host I   end worker I's slow-host and cut-host now
#   down      kill every host, remove every namespace, link, cgroup and state this script made.
#
#   Env: FMAPREP_HOSTS_NET (10.231: the first two octets), FMAPREP_HOSTS_DIR (.services/hosts),
#        FMAPREP_CACHE_DIR (~/.cache/fmaprep: jars), FMAPREP_HOSTS_TIMEOUT (240 s for up).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF=$ROOT/scripts/local-hosts.sh
STATE=${FMAPREP_HOSTS_DIR:-$ROOT/.services/hosts}
HOME=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
CACHE=${FMAPREP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fmaprep}
HADOOP_VERSION=${FMAPREP_HADOOP_VERSION:-3.3.4}
S3PROXY_VERSION=${FMAPREP_S3PROXY_VERSION:-2.6.0}
HDFS_LIB=$CACHE/hadoop-$HADOOP_VERSION/lib
YARN_LIB=$CACHE/hadoop-yarn-$HADOOP_VERSION/lib
S3PROXY_DIR=$CACHE/s3proxy-$S3PROXY_VERSION
NET=${FMAPREP_HOSTS_NET:-10.231}
TIMEOUT=${FMAPREP_HOSTS_TIMEOUT:-240}
BUCKET=fmaprep ACCESS_KEY=fmaprep-local SECRET_KEY=fmaprep-local-secret REGION=us-east-1
NN_PORT=8020 NN_HTTP=9870 RM_HTTP=8088 S3_PORT=9000
VENV_PY=$ROOT/.venv/bin/python

say() { echo "local-hosts: $*" >&2; }
die() { echo "local-hosts: error: $*" >&2; exit 1; }

# ------------------------------------------------------------------ names and state
load_net() {
  ID="" N=0
  # shellcheck source=/dev/null
  [[ -f $STATE/net.env ]] && source "$STATE/net.env"
  return 0
}
bridge() { echo "fmh${ID}br"; }
ns_of() { echo "fmh${ID}-$1"; }
link_of() { echo "fmh${ID}$1"; }  # the root side of the host's veth (<= 15 characters)
ip_of() {
  if [[ $1 == head ]]; then echo "$NET.$ID.10"; else echo "$NET.$ID.$((10 + ${1#w}))"; fi
}
head_ip() { ip_of head; }
# the head's second address, where HDFS (NameNode) and S3 answer: cut-host drops the route to
# it and keeps the one to YARN's ResourceManager (on EMR, S3 is not on the master node)
storage_ip() { echo "$NET.$ID.9"; }
s3_ip() { echo "$NET.$ID.8"; }  # and S3's own, so a cut can take S3 alone
cgroup_of() { echo "/sys/fs/cgroup/cpu/fmaprep-hosts-$ID-$1"; }
hosts_list() {
  local i
  echo head
  for ((i = 1; i <= N; i++)); do echo "w$i"; done
}
worker_name() {
  if ! [[ ${1:-} =~ ^[1-9][0-9]*$ ]] || ((${1} > N)); then die "no worker host '${1:-}' (1..$N)"; fi
  echo "w$1"
}
init_pid() {  # the host's PID 1, seen from here, if it runs
  local pid
  pid=$(cat "$STATE/$1/init.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  is_init "$pid" "$1" || return 1
  echo "$pid"
}
is_init() {  # pid host: is it the host's PID 1 (not the ip netns / unshare launching it)?
  [[ $(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) == "bash $SELF _host $2 $STATE " ]]
}

# Take the first free network id: creating the bridge is the atomic claim (other checkouts on
# the same machine run their own clusters beside this one).
claim_net() {
  load_net
  if [[ -n $ID ]] && ip link show "$(bridge)" >/dev/null 2>&1; then return; fi
  local id
  for ((id = 1; id < 250; id++)); do
    if ip link add "fmh${id}br" type bridge 2>/dev/null; then
      ID=$id
      mkdir -p "$STATE"
      echo "ID=$ID" >"$STATE/net.env"
      ip link set "$(bridge)" up
      # this machine reaches the hosts through the bridge (no address is added here)
      ip route add "$NET.$ID.0/24" dev "$(bridge)"
      return
    fi
  done
  die "no free network id (fmh1br..fmh249br all exist)"
}

# ------------------------------------------------------------------ jars
fetch_jars() {
  bash "$ROOT/scripts/local-services.sh" fetch
  [[ -f $YARN_LIB/.complete ]] && return
  command -v mvn >/dev/null 2>&1 || die "mvn is needed once to fetch Hadoop's YARN jars"
  say "fetching Hadoop $HADOOP_VERSION YARN jars from Maven Central into $YARN_LIB"
  rm -rf "$YARN_LIB.tmp"
  mvn -q -B -f "$ROOT/scripts/maven/yarn-pom.xml" -Dhadoop.version="$HADOOP_VERSION" \
    dependency:copy-dependencies -DoutputDirectory="$YARN_LIB.tmp" >&2 || die "mvn failed"
  rm -rf "$YARN_LIB" && mv "$YARN_LIB.tmp" "$YARN_LIB" && touch "$YARN_LIB/.complete"
}

# ------------------------------------------------------------------ configuration
prop() { printf '  <property><name>%s</name><value>%s</value></property>\n' "$1" "$2"; }

# write_conf DIR HOST: the Hadoop configuration as HOST sees it ("client": this machine)
write_conf() {
  local dir=$1 host=$2 head storage
  head=$(head_ip) storage=$(storage_ip)
  mkdir -p "$dir"
  local app
  for app in hdfs datanode secondary static journal; do  # the jars lack the web UI resources
    mkdir -p "$dir/webapps/$app/WEB-INF"
    printf '<?xml version="1.0"?>\n<web-app version="3.1"/>\n' >"$dir/webapps/$app/WEB-INF/web.xml"
  done
  {
    echo '<?xml version="1.0"?><configuration>'
    prop fs.defaultFS "hdfs://$storage:$NN_PORT"
    prop hadoop.tmp.dir /opt/node/hadoop-tmp
    prop ipc.client.connect.max.retries 3
    prop ipc.client.connect.retry.interval 500
    echo '</configuration>'
  } >"$dir/core-site.xml"
  {
    echo '<?xml version="1.0"?><configuration>'
    prop dfs.replication 2
    prop dfs.namenode.name.dir file:///opt/node/name
    prop dfs.datanode.data.dir file:///opt/node/data
    prop dfs.namenode.rpc-address "$storage:$NN_PORT"
    prop dfs.namenode.http-address "$storage:$NN_HTTP"
    prop dfs.namenode.rpc-bind-host 0.0.0.0
    prop dfs.namenode.http-bind-host 0.0.0.0
    prop dfs.namenode.secondary.http-address 0.0.0.0:0
    prop dfs.datanode.address 0.0.0.0:9866
    prop dfs.datanode.http.address 0.0.0.0:9864
    prop dfs.datanode.ipc.address 0.0.0.0:9867
    # a DataNode is known by its address: WebHDFS redirects reach it from this machine too
    [[ $host == w* ]] && prop dfs.datanode.hostname "$(ip_of "$host")"
    prop dfs.client.use.datanode.hostname false
    prop dfs.namenode.datanode.registration.ip-hostname-check false
    prop dfs.namenode.safemode.extension 0
    prop dfs.namenode.safemode.min.datanodes 0
    prop dfs.heartbeat.interval 1
    # a silent DataNode is dead after 2 x 10 s + 10 heartbeats; after 3 s it is "stale" and
    # the NameNode sends readers (WebHDFS OPEN) to the other replica first
    prop dfs.namenode.heartbeat.recheck-interval 10000
    prop dfs.namenode.avoid.read.stale.datanode true
    prop dfs.namenode.avoid.write.stale.datanode true
    prop dfs.namenode.stale.datanode.interval 3000
    prop dfs.permissions.enabled false
    prop dfs.namenode.file.close.num-committed-allowed 1
    prop dfs.client.block.write.replace-datanode-on-failure.enable false
    echo '</configuration>'
  } >"$dir/hdfs-site.xml"
  {
    echo '<?xml version="1.0"?><configuration>'
    prop yarn.resourcemanager.hostname "$head"
    prop yarn.resourcemanager.bind-host 0.0.0.0
    prop yarn.resourcemanager.webapp.address "$head:$RM_HTTP"
    prop yarn.resourcemanager.scheduler.class \
      org.apache.hadoop.yarn.server.resourcemanager.scheduler.fifo.FifoScheduler
    # a NodeManager silent for 20 s is lost (its containers too): a reclaimed node
    prop yarn.nm.liveness-monitor.expiry-interval-ms 20000
    prop yarn.resourcemanager.am.max-attempts 2
    if [[ $host == w* ]]; then
      prop yarn.nodemanager.hostname "$host"
      prop yarn.nodemanager.address "$host:8041"
      prop yarn.nodemanager.webapp.address "$host:8042"
      prop yarn.nodemanager.localizer.address "$host:8040"
    fi
    # YARN's accounting, not real use: a node holds one executor (1920 MB with its Python),
    # and maybe the driver (896 MB), so the executors land on different hosts
    prop yarn.nodemanager.resource.memory-mb 3072
    prop yarn.nodemanager.resource.cpu-vcores 2
    prop yarn.scheduler.minimum-allocation-mb 128
    prop yarn.scheduler.maximum-allocation-mb 3072
    prop yarn.nodemanager.vmem-check-enabled false
    prop yarn.nodemanager.pmem-check-enabled false
    prop yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage 99.5
    prop yarn.nodemanager.local-dirs /opt/node/nm-local
    prop yarn.nodemanager.log-dirs /opt/node/nm-logs
    prop yarn.nodemanager.delete.debug-delay-sec 0
    prop yarn.nodemanager.localizer.cache.target-size-mb 1024
    prop yarn.nodemanager.localizer.cache.cleanup.interval-ms 20000
    prop yarn.nodemanager.env-whitelist JAVA_HOME,PATH,LANG,TZ,HADOOP_CONF_DIR
    # containers' HOME: where the node's credentials are (boto3 reads ~/.aws)
    prop yarn.nodemanager.user-home-dir "$HOME"
    echo '</configuration>'
  } >"$dir/yarn-site.xml"
  cat >"$dir/log4j.properties" <<'EOF'
log4j.rootLogger=INFO,file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${fmh.log.file}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=%d{HH:mm:ss} %p %c{1}: %m%n
log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR
EOF
  if [[ $host == client ]]; then  # client tools: warnings on stderr
    cat >"$dir/log4j.properties" <<'EOF'
log4j.rootLogger=WARN,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.err
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{HH:mm:ss} %p %c{1}: %m%n
log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR
EOF
  fi
  if [[ $host == head ]]; then
    cat >"$dir/s3proxy.properties" <<EOF
s3proxy.endpoint=http://0.0.0.0:$S3_PORT
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=$ACCESS_KEY
s3proxy.credential=$SECRET_KEY
jclouds.provider=filesystem
jclouds.filesystem.basedir=/opt/node/s3
EOF
    chmod 600 "$dir/s3proxy.properties"
  fi
}

write_hosts_file() {
  local host
  {
    echo "127.0.0.1 localhost"
    for host in $(hosts_list); do echo "$(ip_of "$host") $host"; done
    echo "$(storage_ip) storage"
    echo "$(s3_ip) s3"
  } >"$STATE/hosts"
}

# ------------------------------------------------------------------ inside a host
# Runs as PID 1 of the host's PID namespace, in its own mount and UTS namespaces.
host_main() {
  local host=$1 java_home
  java_home=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")
  local node=$STATE/$host/node
  # everything from $STATE is bound before anything is hidden: the repository (and so $STATE)
  # may itself live under /tmp, which the host's private /tmp covers last
  mount -t tmpfs -o size=16m tmpfs /opt
  mkdir -p /opt/node /opt/tmp /opt/conf /opt/hdfs-lib /opt/yarn-lib /opt/spark /opt/s3proxy
  mount --bind "$node" /opt/node
  mount --bind "$STATE/$host/tmp" /opt/tmp
  ro_bind "$STATE/$host/conf" /opt/conf
  ro_bind "$HDFS_LIB" /opt/hdfs-lib
  ro_bind "$YARN_LIB" /opt/yarn-lib
  ro_bind "$SPARK_HOME" /opt/spark
  ro_bind "$S3PROXY_DIR" /opt/s3proxy
  mount --bind "$STATE/hosts" /etc/hosts
  hostname "$host"
  # what an executor must not see: the repository (its .venv, build/) and the home directory
  mount -t tmpfs -o size=16m,mode=755 tmpfs "$ROOT"
  mount -t tmpfs -o size=16m,mode=700 tmpfs "$HOME"
  mount --bind /opt/tmp /tmp
  # the node's credentials (on EMR: the instance profile), never in a command line
  mkdir -p "$HOME/.aws"
  printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
    "$ACCESS_KEY" "$SECRET_KEY" >"$HOME/.aws/credentials"
  printf '[default]\nregion = %s\n' "$REGION" >"$HOME/.aws/config"
  chmod 600 "$HOME/.aws/credentials"
  cd /
  export JAVA_HOME=$java_home HADOOP_CONF_DIR=/opt/conf HOME
  mkdir -p /opt/node/logs
  if [[ $host == head ]]; then
    if [[ ! -f /opt/node/name/current/VERSION ]]; then
      daemon_java 256m format /opt/hdfs-lib org.apache.hadoop.hdfs.server.namenode.NameNode \
        -format -nonInteractive -force
      wait
    fi
    daemon_java 384m namenode /opt/hdfs-lib org.apache.hadoop.hdfs.server.namenode.NameNode
    daemon_java 384m resourcemanager /opt/yarn-lib \
      org.apache.hadoop.yarn.server.resourcemanager.ResourceManager
    mkdir -p "/opt/node/s3/$BUCKET"
    "$JAVA_HOME/bin/java" -Xmx192m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
      -cp "/opt/s3proxy/*" org.gaul.s3proxy.Main --properties /opt/conf/s3proxy.properties \
      >/opt/node/logs/s3proxy.log 2>&1 </dev/null &
  else
    daemon_java 192m datanode /opt/hdfs-lib org.apache.hadoop.hdfs.server.datanode.DataNode
    daemon_java 320m nodemanager /opt/yarn-lib \
      org.apache.hadoop.yarn.server.nodemanager.NodeManager
  fi
  # PID 1 stays to reap; when it is killed the kernel kills every process of the host
  while :; do wait || sleep 1; done
}

ro_bind() { mount --bind "$1" "$2" && mount -o remount,bind,ro "$2"; }

daemon_java() {  # heap name lib class [args]
  local heap=$1 name=$2 lib=$3 class=$4 pkg
  shift 4
  local -a opens=()
  for pkg in java.lang java.lang.reflect java.util java.util.concurrent java.io java.net java.nio; do
    opens+=(--add-opens "java.base/$pkg=ALL-UNNAMED")
  done
  "$JAVA_HOME/bin/java" -Xmx"$heap" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 "${opens[@]}" \
    -Dfmh.log.file="/opt/node/logs/$name.log" -Dhadoop.log.dir=/opt/node/logs \
    -Dyarn.log.dir=/opt/node/logs -Dlog4j.configuration=file:/opt/conf/log4j.properties \
    -cp "/opt/conf:$lib/*" "$class" "$@" >"/opt/node/logs/$name.out" 2>&1 </dev/null &
}

# ------------------------------------------------------------------ hosts from outside
start_host() {
  local host=$1 ns link ip pid cg
  if init_pid "$host" >/dev/null; then return; fi
  ns=$(ns_of "$host") link=$(link_of "$host") ip=$(ip_of "$host")
  remove_host "$host"
  mkdir -p "$STATE/$host/tmp" "$STATE/$host/node"
  chmod 1777 "$STATE/$host/tmp"
  write_conf "$STATE/$host/conf" "$host"
  ip netns add "$ns"
  ip link add "$link" type veth peer name "${link}p"
  ip link set "${link}p" netns "$ns"
  ip -n "$ns" link set "${link}p" name eth0
  ip -n "$ns" addr add "$ip/24" dev eth0
  if [[ $host == head ]]; then
    ip -n "$ns" addr add "$(storage_ip)/24" dev eth0
    ip -n "$ns" addr add "$(s3_ip)/24" dev eth0
  fi
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default dev eth0  # replies to this machine's client go back the same way
  ip link set "$link" master "$(bridge)"
  ip link set "$link" up
  cg=$(cgroup_of "$host")
  if [[ -d /sys/fs/cgroup/cpu ]]; then mkdir -p "$cg"; fi
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid bash -c '[[ -d $1 ]] && echo $$ >"$1/cgroup.procs"; shift; exec "$@"' _ "$cg" \
    ip netns exec "$ns" unshare --mount --uts --pid --fork --mount-proc --propagation private \
    env SPARK_HOME="$SPARK_HOME" bash "$SELF" _host "$host" "$STATE" \
    >"$STATE/$host/host.log" 2>&1 </dev/null &
  # PID 1 of the host is a descendant: ip netns exec (may fork) > unshare (forks) > bash
  local outer=$! tries p level
  pid=""
  for ((tries = 0; tries < 100; tries++)); do
    level=$outer
    while [[ -n $level && -z $pid ]]; do
      for p in $level; do if is_init "$p" "$host"; then pid=$p; fi; done
      level=$(for p in $level; do pgrep -P "$p" || true; done)
    done
    [[ -n $pid ]] && break
    sleep 0.1
  done
  [[ -n $pid ]] || die "host $host did not start (see $STATE/$host/host.log)"
  echo "$pid" >"$STATE/$host/init.pid"
  say "started host $host ($ip, pid $pid)"
}

# stop a host's processes (SIGKILL: the kernel ends its whole PID namespace with PID 1)
kill_processes() {
  local host=$1 pid cg p
  if pid=$(init_pid "$host"); then kill -9 "$pid" 2>/dev/null || true; fi
  cg=$(cgroup_of "$host")
  if [[ -f $cg/cgroup.procs ]]; then
    while read -r p; do kill -9 "$p" 2>/dev/null || true; done <"$cg/cgroup.procs"
  fi
  for _ in $(seq 50); do
    [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null && break
    sleep 0.1
  done
  rm -f "$STATE/$host/init.pid"
}

remove_host() {
  local host=$1 cg
  kill_processes "$host"
  stop_timer "$host"
  ip netns del "$(ns_of "$host")" 2>/dev/null || true
  ip link del "$(link_of "$host")" 2>/dev/null || true
  cg=$(cgroup_of "$host")
  if [[ -d $cg ]]; then rmdir "$cg" 2>/dev/null || true; fi
  return 0
}

stop_timer() {
  local pid
  pid=$(cat "$STATE/$1/cut.pid" 2>/dev/null) || return 0
  if [[ $pid =~ ^[0-9]+$ ]]; then kill "$pid" 2>/dev/null || true; fi
  rm -f "$STATE/$1/cut.pid"
}

http_get() { curl -fsS --max-time 5 "$1" 2>/dev/null; }

live_datanodes() {
  http_get "http://$(storage_ip):$NN_HTTP/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState" |
    sed -n 's/.*"NumLiveDataNodes" : \([0-9]*\).*/\1/p'
}
active_nodemanagers() {
  http_get "http://$(head_ip):$RM_HTTP/ws/v1/cluster/metrics" |
    sed -n 's/.*"activeNodes":\([0-9]*\).*/\1/p'
}
running_nodemanagers() {  # the worker hosts whose NodeManager YARN counts as RUNNING
  http_get "http://$(head_ip):$RM_HTTP/ws/v1/cluster/nodes?states=RUNNING" |
    grep -o '"nodeHostName":"[^"]*"' | cut -d'"' -f4 | sort || true
}
s3_answers() {
  [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://$(s3_ip):$S3_PORT/") != 000 ]]
}

cmd_up() {
  local want=${1:-}
  [[ $want =~ ^[1-9][0-9]*$ ]] || die "usage: local-hosts.sh up N (N worker hosts)"
  [[ $(id -u) -eq 0 ]] || die "needs root (network, mount and PID namespaces)"
  [[ -x $VENV_PY ]] || die "no .venv: run scripts/install.sh first"
  command -v curl >/dev/null || die "needs curl"
  SPARK_HOME=$("$VENV_PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
  export SPARK_HOME
  fetch_jars
  claim_net
  N=$want
  printf 'ID=%s\nN=%s\n' "$ID" "$N" >"$STATE/net.env"
  write_hosts_file
  write_conf "$STATE/client-conf" client
  printf 'FMAPREP_JAVA=%s\nFMAPREP_HADOOP_LIB=%s\nFMAPREP_HADOOP_CONF=%s\n' \
    "$(readlink -f "$(command -v java)")" "$HDFS_LIB" "$STATE/client-conf" >"$STATE/launcher.env"
  local host deadline=$((SECONDS + TIMEOUT)) dn nm
  # A killed worker's NodeManager counts as RUNNING until YARN declares it lost (20 s of
  # silence): restarted sooner, the new NodeManager would pass for the old one (same host and
  # port) and containers could be sent to neither. So wait for that first; then "up" means YARN
  # runs every worker's NodeManager, the restarted ones included.
  for host in $(hosts_list); do
    if [[ $host != head ]] && ! init_pid "$host" >/dev/null; then
      while running_nodemanagers | grep -qx "$host"; do
        ((SECONDS < deadline)) || die "YARN did not declare $host's old NodeManager lost in ${TIMEOUT}s"
        sleep 1
      done
    fi
    start_host "$host"
  done
  local running
  while :; do
    dn=$(live_datanodes || true) running=$(running_nodemanagers) nm=0
    for host in $(hosts_list); do
      if [[ $host != head ]] && grep -qx "$host" <<<"$running"; then nm=$((nm + 1)); fi
    done
    if [[ ${dn:-0} -ge $N && $nm -ge $N ]] && s3_answers; then break; fi
    for host in $(hosts_list); do
      init_pid "$host" >/dev/null || die "host $host died (see $STATE/$host/node/logs)"
    done
    ((SECONDS < deadline)) ||
      die "not up after ${TIMEOUT}s: ${dn:-0}/$N DataNodes, ${nm:-0}/$N NodeManagers (logs: $STATE/*/node/logs)"
    sleep 2
  done
  local dir
  for dir in spark-events user/root; do
    curl -fsS -X PUT "http://$(storage_ip):$NN_HTTP/webhdfs/v1/$dir?op=MKDIRS&user.name=root" \
      >/dev/null || die "cannot create hdfs:///$dir"
  done
  say "up: head $(head_ip) (HDFS hdfs://$(storage_ip):$NN_PORT, S3 http://$(s3_ip):$S3_PORT," \
    "YARN http://$(head_ip):$RM_HTTP), $N workers"
  say "use it with:  eval \"\$(scripts/local-hosts.sh env)\""
}

cmd_env() {
  load_net
  [[ -n $ID ]] || die "not up (scripts/local-hosts.sh up N)"
  local head storage
  head=$(head_ip) storage=$(storage_ip)
  cat <<EOF
export FMAPREP_HDFS_URI=hdfs://$storage:$NN_PORT
export FMAPREP_WEBHDFS_URL=http://$storage:$NN_HTTP
export FMAPREP_S3_ENDPOINT=http://$(s3_ip):$S3_PORT
export FMAPREP_S3_BUCKET=$BUCKET
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_DEFAULT_REGION=$REGION
export FMAPREP_YARN_RM_URL=http://$head:$RM_HTTP
export FMAPREP_HOSTS_STATE=$STATE
export FMAPREP_HOSTS_N=$N
export HADOOP_CONF_DIR=$STATE/client-conf
export FMAPREP_SERVICES_DIR=$STATE
export PATH="$ROOT/scripts/bin:\$PATH"
EOF
}

cmd_status() {
  load_net
  [[ -n $ID ]] || { echo "down"; return 3; }
  local host pid rc=0
  for host in $(hosts_list); do
    if pid=$(init_pid "$host"); then
      echo "$host: running ($(ip_of "$host"), pid $pid)"
    else
      echo "$host: stopped"
      rc=3
    fi
  done
  echo "live DataNodes: $(live_datanodes || echo 0), active NodeManagers: $(active_nodemanagers || echo 0)"
  return "$rc"
}

cmd_kill_host() {
  load_net
  local host
  host=$(worker_name "${1:-}")
  ip link set "$(link_of "$host")" down 2>/dev/null || true
  kill_processes "$host"
  say "killed host $host (every process; link down)"
}

cmd_slow_host() {
  load_net
  local host cg percent=${2:-10}
  host=$(worker_name "${1:-}")
  cg=$(cgroup_of "$host")
  [[ -f $cg/cpu.cfs_quota_us ]] || die "no cpu cgroup for $host (cgroup v1 cpu controller needed)"
  if [[ $percent == off ]]; then
    echo -1 >"$cg/cpu.cfs_quota_us"
    say "host $host: CPU limit removed"
    return
  fi
  [[ $percent =~ ^[1-9][0-9]*$ ]] || die "slow-host I [PERCENT|off]"
  echo 100000 >"$cg/cpu.cfs_period_us"
  echo $((percent * 1000)) >"$cg/cpu.cfs_quota_us"
  say "host $host: limited to $percent% of one CPU"
}

cmd_cut_host() {
  load_net
  local host seconds=${2:-} what=${3:-all} ns ip targets=()
  host=$(worker_name "${1:-}")
  [[ $seconds =~ ^[1-9][0-9]*$ ]] || die "cut-host I SECONDS [s3|hdfs|all]"
  case $what in
    s3) targets=("$(s3_ip)") ;;
    hdfs) targets=("$(storage_ip)") ;;
    all) targets=("$(s3_ip)" "$(storage_ip)") ;;
    *) die "cut-host I SECONDS [s3|hdfs|all]" ;;
  esac
  ns=$(ns_of "$host")
  stop_timer "$host"
  # via an address nobody answers for: packets are dropped, not refused
  for ip in "${targets[@]}"; do
    ip -n "$ns" route replace "$ip/32" via "$NET.$ID.254" dev eth0 onlink
  done
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid bash -c 'sleep "$1"; ns=$2 pidfile=$3; shift 3
    for ip; do ip -n "$ns" route del "$ip/32"; done; rm -f "$pidfile"' _ \
    "$seconds" "$ns" "$STATE/$host/cut.pid" "${targets[@]}" </dev/null >/dev/null 2>&1 &
  echo $! >"$STATE/$host/cut.pid"
  say "host $host: cut off from ${targets[*]} ($what) for ${seconds}s"
}

cmd_heal_host() {
  load_net
  local host cg
  host=$(worker_name "${1:-}")
  stop_timer "$host"
  ip -n "$(ns_of "$host")" route del "$(storage_ip)/32" 2>/dev/null || true
  ip -n "$(ns_of "$host")" route del "$(s3_ip)/32" 2>/dev/null || true
  cg=$(cgroup_of "$host")
  if [[ -f $cg/cpu.cfs_quota_us ]]; then echo -1 >"$cg/cpu.cfs_quota_us"; fi
  say "host $host: no CPU limit, route to S3 and HDFS restored"
}

cmd_down() {
  load_net
  if [[ -z $ID ]]; then say "not up"; return; fi
  local host
  for host in $(hosts_list); do remove_host "$host"; done
  # a host left from an earlier, larger `up`
  for link in $(ip -o link show 2>/dev/null | sed -n "s/^[0-9]*: \(fmh${ID}w[0-9]*\)[@:].*/\1/p"); do
    remove_host "${link#fmh"$ID"}"
  done
  ip route del "$NET.$ID.0/24" 2>/dev/null || true
  ip link del "$(bridge)" 2>/dev/null || true
  rm -rf "${STATE:?}"
  say "down: hosts, namespaces, links and state removed"
}

# A local archive goes to HDFS once (world-readable, so YARN localizes it once per node, as
# EMR does with the archive in S3): its HDFS URI. The copies of other archives are deleted
# then, unless an application is still running (it may need its archive for a new container
# or attempt): an archive's copy lives until the next submit of another one, or `down`.
hdfs_copy() {
  local file=$1 key dest old
  key=$(stat -c '%s-%Y' "$file")
  dest=/fmaprep-env/$key/$(basename "$file")
  if ! applications_running; then
    for old in $(hdfs_children /fmaprep-env); do
      [[ $old == "$key" ]] || webhdfs_delete "/fmaprep-env/$old"
    done
  fi
  if ! http_get "http://$(storage_ip):$NN_HTTP/webhdfs/v1$dest?op=GETFILESTATUS" >/dev/null; then
    say "copying $file to hdfs://$(storage_ip):$NN_PORT$dest"
    FMAPREP_SERVICES_DIR=$STATE "$ROOT/scripts/bin/hdfs" dfs -mkdir -p "$(dirname "$dest")" >&2
    FMAPREP_SERVICES_DIR=$STATE "$ROOT/scripts/bin/hdfs" dfs -put -f "$file" "$dest" >&2
  fi
  echo "hdfs://$(storage_ip):$NN_PORT$dest"
}

applications_running() {  # exit 0 when YARN has an application not yet ended (or cannot say)
  local apps
  apps=$(http_get "http://$(head_ip):$RM_HTTP/ws/v1/cluster/apps?states=NEW,NEW_SAVING,SUBMITTED,ACCEPTED,RUNNING") ||
    return 0
  [[ $apps == *'"id":"application_'* ]]
}
hdfs_children() {  # the names in an HDFS directory (none when it does not exist)
  http_get "http://$(storage_ip):$NN_HTTP/webhdfs/v1$1?op=LISTSTATUS&user.name=root" |
    grep -o '"pathSuffix":"[^"]*"' | cut -d'"' -f4 || true
}
webhdfs_delete() {
  say "deleting hdfs://$(storage_ip):$NN_PORT$1 (an earlier archive's copy)"
  curl -fsS --max-time 30 -X DELETE \
    "http://$(storage_ip):$NN_HTTP/webhdfs/v1$1?op=DELETE&recursive=true&user.name=root" \
    >/dev/null || say "could not delete hdfs://$(storage_ip):$NN_PORT$1"
}

# the driver's error line of an application: fmaprep's own line, else the last exception
driver_error() {
  local app=$1 logs line
  logs=$(find "$STATE"/w*/node/nm-logs/"$app" -path '*_000001/std*' 2>/dev/null | sort || true)
  [[ -n $logs ]] || return 0
  # shellcheck disable=SC2086
  line=$(grep -h '^fmaprep: ' $logs 2>/dev/null | tail -1 || true)
  if [[ -z $line ]]; then  # the ApplicationMaster's reason, unless it is only an exit status
    # shellcheck disable=SC2086
    line=$(sed -n 's/.*Final app status: FAILED, exitCode: [0-9]*, (reason: \(.*\)/\1/p' $logs \
      2>/dev/null | sed 's/)$//' | grep -v '^User application exited' | tail -1 || true)
  fi
  if [[ -z $line ]]; then
    # shellcheck disable=SC2086
    line=$(grep -hE '^([A-Za-z_][A-Za-z0-9_.$]*(Error|Exception)): ' $logs 2>/dev/null | tail -1 || true)
  fi
  echo "$line"
}

cmd_submit() {
  load_net
  [[ -n $ID ]] || die "not up (scripts/local-hosts.sh up N)"
  local archive=$ROOT/build/fmaprep-env.tar.gz job=$ROOT/jobs/preprocess.py
  local -a confs=() args=()
  while [[ $# -gt 0 ]]; do
    case $1 in
      --archive) archive=$2; shift 2 ;;
      --no-archive) archive=none; shift ;;
      --conf) confs+=(--conf "$2"); shift 2 ;;
      --job) job=$2; shift 2 ;;
      *) break ;;
    esac
  done
  args=("$@")
  [[ $job != "$ROOT/jobs/preprocess.py" || ${#args[@]} -ge 2 ]] ||
    die "usage: local-hosts.sh submit [OPTIONS] INPUT OUTPUT [preprocess options]"
  if [[ $archive != none && $archive != hdfs://* && ! -f $archive ]]; then
    say "building the environment archive $archive (python prefix /usr, as on EMR)"
    mkdir -p "$(dirname "$archive")"
    "$ROOT/.venv/bin/fmaprep" package-env "$archive" --python-prefix /usr >&2
  fi
  local local_archive=$archive
  [[ $archive == none || $archive == hdfs://* ]] || archive=$(hdfs_copy "$archive")
  local spark_home
  spark_home=$("$VENV_PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
  local -a submit=()
  # shellcheck source=scripts/submit-args.sh
  source "$ROOT/scripts/submit-args.sh"
  preprocess_submit_args "$archive" 1 512m 1024 hdfs:///spark-events
  submit[0]=$ROOT/.venv/bin/spark-submit
  # this machine's stand-ins for what EMR has: Spark installed on every node, the S3 endpoint
  submit+=(--driver-memory 512m --num-executors "$N"
    --conf "spark.yarn.jars=local:/opt/spark/jars/*"
    --conf spark.yarn.submit.waitAppCompletion=true
    --conf spark.yarn.report.interval=2s
    --conf "spark.yarn.appMasterEnv.FMAPREP_S3_ENDPOINT=http://$(s3_ip):$S3_PORT"
    # lost executors are noticed in seconds, not minutes (their hosts vanish without a word)
    --conf spark.network.timeout=30s --conf spark.executor.heartbeatInterval=3s
    --conf spark.network.timeoutInterval=5s
    # start the tasks once two thirds of the executors are there (their hosts start at different
    # speeds), so the work spreads over the hosts, also when a host is gone
    --conf spark.scheduler.minRegisteredResourcesRatio=0.6
    --conf spark.scheduler.maxRegisteredResourcesWaitingTime=120s
    "${confs[@]}" "$job" "${args[@]}")
  local out rc=0 app
  out=$(mktemp)
  env -u PYSPARK_PYTHON -u PYSPARK_DRIVER_PYTHON SPARK_HOME="$spark_home" \
    HADOOP_CONF_DIR="$STATE/client-conf" "${submit[@]}" 2>&1 | tee "$out" || rc=$?
  app=$(grep -o 'application_[0-9]*_[0-9]*' "$out" | head -1 || true)
  rm -f "$out"
  if ((rc != 0)); then
    local line
    line=$(driver_error "$app")
    if [[ $line == *environment/bin/python* && -f $local_archive ]]; then
      local home
      home=$(tar -xzOf "$local_archive" pyvenv.cfg 2>/dev/null | sed -n 's/^home *= *//p' | head -1)
      [[ -z $home ]] || nsenter -t "$(init_pid w1)" -m test -x "$home/python3" ||
        line+=" (the archive's Python is $home/python3, which the hosts do not have: build it with fmaprep package-env --python-prefix /usr)"
    fi
    echo "local-hosts: ${app:-the application} failed${line:+: $line}" >&2
  fi
  return "$rc"
}

# the whole file is read before anything runs (bash reads scripts as it goes: an edit made while
# a long `submit` runs would otherwise change what it does next)
main() {
case ${1:-} in
  up) shift; cmd_up "$@" ;;
  env) cmd_env ;;
  status) cmd_status ;;
  submit) shift; cmd_submit "$@" ;;
  kill-host) shift; cmd_kill_host "$@" ;;
  slow-host) shift; cmd_slow_host "$@" ;;
  cut-host) shift; cmd_cut_host "$@" ;;
  heal-host) shift; cmd_heal_host "$@" ;;
  down) cmd_down ;;
  _host) STATE=$3; host_main "$2" ;;  # internal: PID 1 of a host
  -h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
}

main "$@"
exit $?
