#!/usr/bin/env bash
# Usage: scripts/check.sh
#   Static checks: ruff (lint) and mypy (strict typing) over src/, jobs/ and tests/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh >/dev/null
.venv/bin/ruff check src jobs tests
.venv/bin/ruff format --check src jobs tests
.venv/bin/mypy
