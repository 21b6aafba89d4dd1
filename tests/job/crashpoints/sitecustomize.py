"""Crash injection for the commit tests: the driver dies (``os._exit(137)``, as a kill would) at
the step named by ``$FMAPREP_TEST_CRASH_AT``, by wrapping fmaprep's own functions in this
interpreter. Put this directory on the driver's PYTHONPATH (``conftest.crash_env``); nothing of
it is in ``src/``.

Steps: ``tasks:N`` (or ``tasks:N+MS``: once N files are done, and MS milliseconds more, a moment
inside the tasks still running), ``before-driver-shard``, ``before-commit``, ``commit-staged``
(local disk and HDFS: the new ``_SUCCESS`` is written under its temporary name, not yet renamed),
``before-conveniences``, ``before-cleanup``, ``mid-cleanup`` (half of the doomed files deleted).
The variable is removed from the environment at once, so Spark's workers never see it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Any

STEP = os.environ.pop("FMAPREP_TEST_CRASH_AT", "")
log = logging.getLogger("crashpoints")


def die(step: str) -> None:
    log.warning("FMAPREP_TEST_CRASH_AT=%s: the driver exits here, as if killed", step)
    os._exit(137)


def _at_entry(module: Any, name: str) -> None:
    real = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        die(STEP)
        return real(*args, **kwargs)

    setattr(module, name, wrapper)


def _during_tasks(run: Any) -> None:
    files, _, delay_ms = STEP.split(":", 1)[1].partition("+")
    real = run.JobProgress  # AttributeError when renamed: the hook must not go quiet

    def progress(total: int, poll: Any, **kwargs: Any) -> Any:
        def watch() -> None:
            while poll()[0] < int(files):
                time.sleep(0.02)
            time.sleep(int(delay_ms or 0) / 1000)
            die(STEP)

        threading.Thread(target=watch, daemon=True).start()
        return real(total, poll, **kwargs)

    run.JobProgress = progress


def _staged_commit() -> None:
    """Die between the commit's temporary file and the rename that publishes it."""
    from fmaprep.storage import localfs, webhdfs

    real_replace = os.replace

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if str(dst).endswith("/_SUCCESS"):
            die(STEP)
        real_replace(src, dst, *args, **kwargs)

    localfs.os.replace = replace  # type: ignore[attr-defined]
    real_rename2 = webhdfs.HDFSStore._rename2

    def rename2(self: Any, uri: str, src: str, dst: str, *, overwrite: bool) -> None:
        if dst.endswith("/_SUCCESS"):
            die(STEP)
        real_rename2(self, uri, src, dst, overwrite=overwrite)

    webhdfs.HDFSStore._rename2 = rename2  # type: ignore[method-assign]


def _mid_cleanup(commit: Any) -> None:
    def cleanup(store: Any, output: str, done: Any, lease: Any, state: Any) -> int:
        prefix = output.rstrip("/") + "/"
        names = {e.uri[len(prefix) :]: e.mtime for e in store.list_files(output)
                 if e.uri.startswith(prefix)}  # fmt: skip
        gone = commit.doomed(names, done, lease, state)
        store.delete(prefix + name for name in gone[: len(gone) // 2])
        die(STEP)
        return 0

    commit.cleanup = cleanup


def install() -> None:
    from fmaprep.job import commit, run

    if STEP.startswith("tasks:"):
        _during_tasks(run)
    elif STEP == "before-driver-shard":
        _at_entry(run, "publish")
    elif STEP == "before-commit":
        _at_entry(commit, "_check_named")
    elif STEP == "commit-staged":
        _staged_commit()
    elif STEP == "before-conveniences":
        _at_entry(run, "finish")
    elif STEP == "before-cleanup":
        _at_entry(commit, "cleanup")
    elif STEP == "mid-cleanup":
        _mid_cleanup(commit)
    else:
        raise SystemExit(f"crashpoints: unknown step {STEP!r}")


if STEP:
    with contextlib.suppress(ImportError):  # an interpreter without fmaprep
        install()
