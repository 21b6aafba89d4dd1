#!/usr/bin/env bash
# Usage: scripts/install-chromium.sh
#   Make sure Debian's headless-capable Chromium is at /usr/bin/chromium, for the report test
#   (tests/test_htmlreport.py runs this when it is missing). Installs the `chromium` package with
#   apt-get when run as root; otherwise says what to do. Safe to rerun: exits at once when present.
#   Exit status: 0 when /usr/bin/chromium is there, 1 when it could not be installed.
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium.sh: /usr/bin/chromium missing; as root run: apt-get install -y chromium" >&2
  exit 1
fi
echo "install-chromium.sh: installing Debian's chromium (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
  apt-get update -qq  # stale package lists: refresh once, then retry
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
[[ -x /usr/bin/chromium ]]
