"""The Python processes a local Spark job runs, found from /proc (for tests that kill a worker
and for the worker-memory benchmark)."""

from __future__ import annotations

import os
from pathlib import Path


def pyspark_processes() -> tuple[list[int], list[int]]:
    """(pyspark.daemon processes, the Python workers they forked), from /proc."""
    daemons: list[int] = []
    workers: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if b"pyspark.daemon" in cmdline:
            daemons.append(int(entry))
            try:
                children = Path(f"/proc/{entry}/task/{entry}/children").read_text().split()
            except OSError:
                children = []
            workers.extend(int(c) for c in children)
    return daemons, workers
