"""Benchmarks: the scripts that produce every published figure (``scripts/bench.sh`` runs them
all, from the repository root: ``python -m benchmarks.<script>``). They measure fmaprep and are
not part of it: nothing under ``src/`` imports them, and neither the wheel nor the worker archive
carries them."""

import sys
from pathlib import Path

# The test doubles some figures need (the S3 latency proxy, the archive server) live with the
# tests, in tests/support, importable as ``support`` (as pytest makes them). Appended, never
# prepended, so nothing in tests/ can shadow an installed module.
_TESTS = str(Path(__file__).resolve().parents[1] / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)
