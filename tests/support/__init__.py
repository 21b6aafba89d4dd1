"""Test doubles shared by the tests and the benchmark scripts: the recording S3 fault and
latency proxy (:mod:`support.httpproxy`), the archive server (:mod:`support.zipserver`) and
process helpers (:mod:`support.processes`). Imported as ``support.*`` (pytest puts ``tests/`` on
the path; ``scripts/bench.sh`` sets ``PYTHONPATH=tests``). Never imported by ``src/fmaprep``:
the installed package and the worker archive hold product code only."""
