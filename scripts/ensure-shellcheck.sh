#!/usr/bin/env bash
# Usage: scripts/ensure-shellcheck.sh
#   Make sure `shellcheck` is on PATH (the tests lint every bash script with it): installs
#   Debian's shellcheck package with apt-get when it is missing and we are root. Exits 1 with
#   a reason when it cannot (the tests then skip the lint and say why). Safe to rerun.
set -euo pipefail
if command -v shellcheck >/dev/null 2>&1; then exit 0; fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-shellcheck.sh: shellcheck missing; install it (apt-get install shellcheck)" >&2
  exit 1
fi
echo "ensure-shellcheck.sh: installing Debian's shellcheck" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq shellcheck >/dev/null
command -v shellcheck >/dev/null 2>&1
