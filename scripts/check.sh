#!/usr/bin/env bash
# Usage: scripts/check.sh
#   Static checks: ruff (lint) over src/, jobs/, tests/, benchmarks/ and docs/hooks/, mypy
#   (strict typing) over src/, jobs/, benchmarks/, tests/support/ and docs/hooks/, and the import
#   arrows between the rooms of src/fmaprep (import-linter contracts in pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh >/dev/null
.venv/bin/ruff check src jobs tests benchmarks docs/hooks
.venv/bin/ruff format --check src jobs tests benchmarks docs/hooks
.venv/bin/mypy
.venv/bin/lint-imports --no-cache
