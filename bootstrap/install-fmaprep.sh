#!/usr/bin/env bash
# Usage: install-fmaprep.sh [--python PYTHON] WHEEL REQUIREMENTS
#   EMR bootstrap action (runs on every node, as the hadoop user, before Spark starts):
#   installs the pinned fmaprep wheel and its pinned dependencies into python3.11, the Python
#   that conf/emr-configurations.json gives Spark (PYSPARK_PYTHON=/usr/bin/python3.11).
#
#   WHEEL          fmaprep-X.Y.Z-py3-none-any.whl: s3://..., https://... or a local path
#   REQUIREMENTS   bootstrap/requirements-emr.txt (exact pins): s3://..., https://... or a path
#   --python P     the interpreter to install into (default /usr/bin/python3.11). When it is
#                  missing and dnf exists (EMR 7 = Amazon Linux 2023), installs the python3.11
#                  and python3.11-pip packages first.
#
#   Binary wheels only (--only-binary :all:): nothing is compiled on a node; a missing wheel
#   fails the bootstrap instead. ffmpeg comes from imageio-ffmpeg's wheel (AL2023 has no ffmpeg
#   package), libsndfile from soundfile's wheel. pyspark is NOT installed: EMR's Spark brings
#   its own. Safe to rerun: pinned versions already present are left alone. Any failure exits
#   non-zero, which fails the cluster's start (EMR shows this script's stderr in the node's
#   bootstrap-actions log under the cluster's log URI).
set -euo pipefail

python=/usr/bin/python3.11
if [[ ${1:-} == --python ]]; then
  python=${2:?--python needs a path}
  shift 2
fi
if [[ $# -ne 2 ]]; then
  sed -n '2,20p' "$0" >&2
  exit 2
fi
wheel_uri=$1
requirements_uri=$2

log() { echo "install-fmaprep: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo -n "$@"; fi
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() {  # uri -> local path on stdout
  local uri=$1 dest
  dest="$work/$(basename "$uri")"
  case "$uri" in
    s3://*) aws s3 cp --only-show-errors "$uri" "$dest" >&2 || die "cannot copy $uri" ;;
    http://* | https://*) curl -fsSL --retry 3 -o "$dest" "$uri" || die "cannot download $uri" ;;
    *) [[ -f $uri ]] || die "no such file: $uri"; dest=$uri ;;
  esac
  echo "$dest"
}

# 1. python3.11 with pip
if [[ ! -x $python ]]; then
  command -v dnf >/dev/null 2>&1 || die "$python is missing and there is no dnf to install it"
  log "installing python3.11 and python3.11-pip with dnf"
  as_root dnf install -y -q python3.11 python3.11-pip || die "dnf install python3.11 failed"
fi
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
  die "$python is not Python 3.11"
if ! "$python" -m pip --version >/dev/null 2>&1; then
  command -v dnf >/dev/null 2>&1 || die "$python has no pip"
  as_root dnf install -y -q python3.11-pip || die "dnf install python3.11-pip failed"
fi

# a venv's (or a user-writable) site-packages needs no root; the system Python does
pip=("$python" -m pip install --disable-pip-version-check --no-input --quiet)
site=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [[ ! -w $site ]]; then pip=(as_root "${pip[@]}"); fi

# 2. the pinned dependencies, then fmaprep itself (no deps: pyspark is EMR's)
wheel=$(fetch "$wheel_uri")
requirements=$(fetch "$requirements_uri")
[[ $wheel == *.whl ]] || die "$wheel_uri is not a wheel"
log "installing $(grep -c '==' "$requirements") pinned packages into $python ($site)"
"${pip[@]}" --only-binary :all: --no-deps -r "$requirements" || die "pip install of $requirements_uri failed"
log "installing $(basename "$wheel")"
"${pip[@]}" --no-deps --force-reinstall "$wheel" || die "pip install of $wheel_uri failed"

# 3. prove it: everything the job imports on a node, native parts included
NUMBA_CACHE_DIR=$work/numba "$python" - <<'PY' || die "the installed environment does not import"
import importlib
for name in ("fmaprep.pipeline", "numpy", "scipy.signal", "soundfile", "soxr", "resampy",
             "numba", "pydub", "imageio_ffmpeg"):
    importlib.import_module(name)
import imageio_ffmpeg, soundfile
from fmaprep.cli import build_parser
build_parser()  # jobs/preprocess.py runs the CLI, which imports every subcommand
assert imageio_ffmpeg.get_ffmpeg_exe()
print("install-fmaprep: ok: libsndfile", soundfile.__libsndfile_version__,
      "ffmpeg", imageio_ffmpeg.get_ffmpeg_exe())
PY
