#!/usr/bin/env bash
# Usage: scripts/docs.sh [serve]
#   Build the documentation site (mkdocs.yml, pages under docs/) into build/site/ in strict mode
#   (a broken link or anchor, or a page missing from the nav, fails), and say where to open it.
#   The command-line and configuration references are generated from the code during the build
#   (docs/hooks/reference.py). The build needs no network.
#   serve   serve the site on http://127.0.0.1:${PORT:-8000}/ and rebuild on every change.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh >/dev/null
export NO_MKDOCS_2_WARNING=1   # mkdocs-material's banner about its successor
if [[ ${1:-} == serve ]]; then
  exec .venv/bin/mkdocs serve --strict --dev-addr "127.0.0.1:${PORT:-8000}"
fi
.venv/bin/mkdocs build --strict --quiet
echo "docs.sh: built build/site/: open file://$PWD/build/site/index.html (or: bash scripts/docs.sh serve)"
