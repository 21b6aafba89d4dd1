#!/usr/bin/env bash
# Usage: scripts/hdfs-put-many.sh [-t THREADS] LOCAL_DIR HDFS_DEST
#   Load a directory tree of many small files (a benchmark corpus) into HDFS fast: one
#   `hdfs dfs -put` of the whole tree (one JVM, not one per file), THREADS files in flight
#   (default 4), no `._COPYING_` temporary per file (-d: one rename less per file). The tree
#   lands in HDFS_DEST.loading first and is renamed to HDFS_DEST when complete, replacing an
#   older HDFS_DEST, so a rerun (or a run after an interrupted one) is safe. Prints files/s.
#
#   Uses the `hdfs` on PATH (eval "$(scripts/local-services.sh env)" for the local HDFS, or
#   EMR's). On the local services, per-file cost is low only with the NameNode setting that
#   `local-services.sh up` writes (dfs.namenode.file.close.num-committed-allowed=1): without it
#   every other close waits 400 ms for the DataNode's block report.
#   Measured here (local services, 30 KB files, 2 shared cores): 20,000 files in 85 s
#   (~240 files/s) with -t 4 and -d; a plain `-put` of 1,000 files (1 thread) ~38 files/s.
set -euo pipefail

threads=4
if [[ ${1:-} == -t ]]; then
  threads=${2:?-t needs a number}
  shift 2
fi
if [[ $# -ne 2 || ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
fi
src=${1%/}
dest=${2%/}
[[ -d $src ]] || { echo "hdfs-put-many: no such directory: $src" >&2; exit 1; }
[[ $threads =~ ^[1-9][0-9]*$ ]] || { echo "hdfs-put-many: -t takes a positive number" >&2; exit 2; }
command -v hdfs >/dev/null || {
  echo "hdfs-put-many: no hdfs on PATH (eval \"\$(scripts/local-services.sh env)\")" >&2
  exit 1
}

if [[ $(hdfs getconf -confKey dfs.namenode.file.close.num-committed-allowed 2>/dev/null) == 0 ]]; then
  echo "hdfs-put-many: warning: dfs.namenode.file.close.num-committed-allowed=0 in this" \
    "configuration: closes may wait for block reports (~0.2 s a file on the local services)" >&2
fi

files=$(find "$src" -type f | wc -l)
staging=$dest.loading
parent=$(dirname "$dest")
start=$(date +%s.%N)
hdfs dfs -rm -r -f -skipTrash "$staging" >/dev/null
hdfs dfs -mkdir -p "$parent"
hdfs dfs -put -d -t "$threads" "$src" "$staging"
hdfs dfs -rm -r -f -skipTrash "$dest" >/dev/null
hdfs dfs -mv "$staging" "$dest"
end=$(date +%s.%N)
loaded=$(hdfs dfs -count "$dest" | awk '{print $2}')
if [[ $loaded != "$files" ]]; then
  echo "hdfs-put-many: error: $dest holds $loaded files, $src $files" >&2
  exit 1
fi
awk -v n="$files" -v s="$start" -v e="$end" -v d="$dest" -v t="$threads" \
  'BEGIN { printf "hdfs-put-many: %d files into %s in %.1f s (%.0f files/s, %d threads)\n", n, d, e - s, n / (e - s), t }'
