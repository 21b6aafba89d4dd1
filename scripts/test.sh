#!/usr/bin/env bash
# Usage: scripts/test.sh [pytest args...]
#   The test command: sets up .venv, runs the static checks (ruff, mypy), then the whole test
#   suite, slow integration tests included (they start Spark and any services they need).
#   Quick inner loop: scripts/test.sh -m "not slow"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/check.sh
exec .venv/bin/python -m pytest "$@"
