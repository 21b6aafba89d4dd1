"""Each file decoded in a child process that the task can kill: no file can hang or crash a task.

A task's files go one at a time to a decode process forked from the Python worker (one per
worker, kept for its next tasks while the settings are the same). The worker waits for each
answer at most ``timeout_s`` plus a grace:

- no answer in time (a decoder stuck in C code or a socket read never returns to Python, so the
  in-process check between blocks cannot fire): the decode process group is killed, the file is
  ``timeout``, and the next file gets a fresh process;
- the process dies (a segfault or abort in a C decoder, the kernel's out-of-memory kill): the file
  is tried once more in a fresh process, in case another cause killed it, and after a second death
  it is ``crashed``. The count lives in the task, which the death does not touch, so no marker has
  to survive anything and a retry never reaches Spark;
- memory: the decode process's address space is capped at what it had when forked plus
  ``max_memory_mb``; an allocation over the cap is a ``MemoryError`` (``unsupported``) or, inside
  C code, usually an abort (``crashed``). Either way the worker and its other files go on.

What crosses the pipe is the file's (input, path) one way and its manifest line and record the
other, the codes as raw bytes (no pickle copy of the big array). ``isolation = "none"`` runs
:func:`process_file` in the worker itself, as before (the switch the throughput benchmark uses).
Imports the pipeline only: the worker path stays lean.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import logging
import multiprocessing
import os
import resource
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from fmaprep.config import PipelineConfig
from fmaprep.model import InputFile, TrackError
from fmaprep.pipeline import base_line, process_file

log = logging.getLogger(__name__)

# seconds past timeout_s before the worker gives up on a file: the in-process check between
# decoded blocks answers first when it can, with the more exact line
GRACE_S = 5.0
# how long the worker waits for a killed decode process to be gone
KILL_WAIT_S = 10.0
# how often a file may take its decode process down before it is recorded as crashed
DEATHS_TO_CRASHED = 2

Result = tuple[dict[str, Any] | None, dict[str, Any]]


class DecodeProcess:
    """The task's decode process; ``process`` never raises for anything one file does."""

    def __init__(self, cfg: PipelineConfig) -> None:
        self.cfg = cfg
        self.owner = os.getpid()  # a forked copy of this object is not the process's owner
        self._proc: Any = None
        self._conn: Connection | None = None
        self.restarts = 0

    def __enter__(self) -> DecodeProcess:
        self.ensure_started()
        return self

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else int(self._proc.pid)

    def ensure_started(self) -> None:
        """Fork the process now if none runs: before the task's read threads start, so the
        fork copies none of them."""
        if self._proc is None:
            self._start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def process(self, item: InputFile, path: str | None = None) -> Result:
        """(record or None, manifest line) of one input, as :func:`process_file` gives it."""
        deaths: list[str] = []
        while True:
            if self._proc is None:
                self._start()
                self.restarts += 1
            conn = self._conn
            assert conn is not None
            try:
                conn.send((item, path))
                if not conn.poll(self.cfg.timeout_s + GRACE_S):
                    self._kill()
                    return _error(item, "timeout", f"not decoded within {self.cfg.timeout_s:g} s "
                                  "(stuck; its decode process was killed)")  # fmt: skip
                record, line = conn.recv()
                if record is None:
                    return None, line
                codes = np.frombuffer(conn.recv_bytes(), dtype=np.uint8)
            except (EOFError, OSError):  # the process died under the file
                deaths.append(self._death())
                log.warning("decode process died on %s (%s): attempt %d of %d",
                            item.source, deaths[-1], len(deaths), DEATHS_TO_CRASHED)  # fmt: skip
                if len(deaths) >= DEATHS_TO_CRASHED:
                    return _error(item, "crashed", f"took its decode process down {len(deaths)} "
                                  f"times ({', '.join(deaths)})")  # fmt: skip
                continue
            except BaseException:  # an interrupt mid-exchange: leave no half-read answer behind
                self._kill()
                raise
            record["codes"] = codes
            return record, line

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()  # the process sees EOF and exits
        if self._proc is not None:
            self._proc.join(5)
            if self._proc.is_alive():
                self._kill()
        self._proc = self._conn = None

    # ------------------------------------------------------------------ internals
    def _start(self) -> None:
        ctx = multiprocessing.get_context("fork")
        ours, theirs = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=_serve,
            args=(theirs, ours, self.cfg, os.getpid()),
            name="fmaprep-decode",
            daemon=True,
        )
        proc.start()
        theirs.close()
        self._proc, self._conn = proc, ours

    def _kill(self) -> None:
        """End the process and whatever it started (an ffmpeg), then forget it. Safe at any
        moment: just after the fork the process may not have its own group yet, so the
        process itself is killed too; and the wait for it is bounded."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # its group: an ffmpeg it started too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc.pid, signal.SIGKILL)  # itself, when that group does not exist yet
        if conn is not None:
            conn.close()
        if proc is not None:
            proc.join(KILL_WAIT_S)
            if proc.is_alive():  # e.g. stuck in the kernel on a dead mount: not waited for
                log.warning("decode process %d not gone %g s after SIGKILL; left behind",
                            proc.pid, KILL_WAIT_S)  # fmt: skip

    def _death(self) -> str:
        """How the process ended, as a manifest phrase; then it is forgotten (the next file
        forks a new one)."""
        proc = self._proc
        proc.join(KILL_WAIT_S)
        code = proc.exitcode
        self._kill()
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            return f"{name}, out of memory?" if name == "SIGKILL" else name
        return f"exit status {code}"


def _error(item: InputFile, reason: str, message: str) -> Result:
    return None, {**base_line(item), "status": "error",
                  "error": TrackError(reason, message).manifest_text()}  # fmt: skip


def _serve(conn: Connection, parents_end: Connection, cfg: PipelineConfig, parent: int) -> None:
    """The decode process: answer each (input, path) until the worker closes the pipe."""
    parents_end.close()  # so the worker's death is an EOF here
    faulthandler.disable()  # a hostile file's segfault is one warning line, not a stack dump
    os.setpgid(0, 0)  # a kill of the group takes an ffmpeg child with it
    _die_with_parent(parent)
    _cap_memory(cfg.max_memory_mb)
    while True:
        try:
            item, path = conn.recv()
        except (EOFError, OSError):
            os._exit(0)
        record, line = process_file(item, cfg, path)
        if record is None:
            conn.send((None, line))
            continue
        codes, record["codes"] = record["codes"], None  # the key keeps its place
        conn.send((record, line))  # then the codes as raw bytes: no pickled copy of the array
        conn.send_bytes(memoryview(codes))
        del record, codes


def _cap_memory(max_memory_mb: float) -> None:
    """RLIMIT_AS = the address space now + ``max_memory_mb`` (never above a limit already set,
    e.g. by spark.executor.pyspark.memory)."""
    with open("/proc/self/statm") as statm:
        size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    want = size + int(max_memory_mb * 1024 * 1024)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = min([want] + [x for x in (soft, hard) if x != resource.RLIM_INFINITY])
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def _die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this process when the worker dies (a stuck decoder never sees the EOF)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the worker died before the prctl took
            os._exit(0)


# the worker's decode process, between its tasks (a one-slot holder, not a global rebound)
_KEPT: list[DecodeProcess] = []


def run_files(cfg: PipelineConfig) -> Any:
    """What a task processes its files with: the Python worker's :class:`DecodeProcess` (kept for
    the worker's next task, as Spark reuses workers: its imports, caches and warm decoder are
    paid once per worker, not per task), or (``isolation = "none"``) the pipeline called in the
    worker itself."""
    if cfg.isolation == "none":
        return _InWorker(cfg)
    if _KEPT and _KEPT[0].owner != os.getpid():
        _KEPT.clear()  # inherited through a fork: the process is another's to end
    if _KEPT and _KEPT[0].cfg != cfg:
        _KEPT.pop().close()
    if not _KEPT:
        _KEPT.append(DecodeProcess(cfg))
    return _Kept(_KEPT[0])


class _Kept:
    """A task's use of the worker's decode process: started if need be, left running after."""

    def __init__(self, files: DecodeProcess) -> None:
        self.files = files

    def __enter__(self) -> DecodeProcess:
        self.files.ensure_started()
        return self.files

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is not None:  # the task failed or was interrupted mid-file: start clean next time
            self.files.close()


class _InWorker:
    def __init__(self, cfg: PipelineConfig) -> None:
        self.cfg = cfg
        self.restarts = 0

    def __enter__(self) -> _InWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def process(self, item: InputFile, path: str | None = None) -> Result:
        return process_file(item, self.cfg, path)
