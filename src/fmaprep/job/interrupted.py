"""Whether Ctrl-C (SIGINT) came during the job: set by the job's signal handler, read by the
CLI (which then says "interrupted" and exits 130, whatever the py4j call in progress raised) and
by its console log filter (after Ctrl-C the console shows only that line; the log file keeps
PySpark's and py4j's reports). Light on purpose: the CLI imports it before any Spark code."""

from __future__ import annotations

import threading

INTERRUPTED = threading.Event()
