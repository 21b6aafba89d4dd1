"""Test-only decoders that misbehave for real, chosen by the file's name (``<id>-hostile-<kind>``).

Put this directory on an interpreter's PYTHONPATH (``spark.executorEnv.PYTHONPATH`` for Spark's
workers) and Python imports this module at start-up, which wraps fmaprep's ``soundfile``
decoder in that interpreter; unit tests call :func:`hostile_opener` themselves. Every failure is
the real thing in the process that decodes: a real segfault, a real call that never returns in C.

Kinds: ``struct``, ``type``, ``index``, ``custom`` (raise), ``stderr`` (an ffmpeg that writes
10 MB to stderr, then fails), ``pause`` (libc ``pause()``: blocks for ever in C), ``socket`` (a
``recv`` from $FMAPREP_HOSTILE_PORT, a loopback listener that never answers), ``segv`` (reads
address 0), ``oom`` (allocates without bound), ``segv-once`` (segfaults the first time only,
remembered in $FMAPREP_HOSTILE_DIR: a worker killed by something else).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import socket
import struct
from collections.abc import Callable
from typing import Any

NAME = re.compile(r"-hostile-([a-z-]+)\.[^./]+$")


class LibraryOwnError(Exception):
    """An exception class nobody in fmaprep knows, as a decoder library might raise."""


def _noisy_ffmpeg() -> str:
    directory = os.environ.get("FMAPREP_HOSTILE_DIR") or "/tmp"
    script = os.path.join(directory, f"noisy-ffmpeg-{os.getpid()}")
    with open(script, "w") as f:
        f.write(
            "#!/bin/sh\nhead -c 10000000 /dev/zero | tr '\\0' 'e' >&2\n"
            "printf '\\nx.mp3: Invalid data found when processing input\\n' >&2\nexit 1\n"
        )
    os.chmod(script, 0o755)
    return script


def hostile_opener(real: Callable[[str], Any]) -> Callable[[str], Any]:
    def opener(path: str) -> Any:
        match = NAME.search(path)
        if match is None:
            return real(path)
        kind = match.group(1)
        if kind == "struct":
            struct.unpack(">I", b"\x00")
        if kind == "type":
            nothing: Any = None
            return nothing[0]
        if kind == "index":
            return [][1]  # noqa: PLE0643
        if kind == "custom":
            raise LibraryOwnError("bad frame header at byte 417")
        if kind == "stderr":
            from fmaprep.audio import decode

            os.environ["FMAPREP_FFMPEG"] = _noisy_ffmpeg()
            try:
                return decode.open_ffmpeg(path)
            finally:
                del os.environ["FMAPREP_FFMPEG"]
        if kind == "pause":
            ctypes.CDLL(None).pause()
        if kind == "socket":
            conn = socket.create_connection(("127.0.0.1", int(os.environ["FMAPREP_HOSTILE_PORT"])))
            conn.recv(1)
        if kind == "segv":
            ctypes.string_at(0)
        if kind == "segv-once":
            mark = os.path.join(os.environ["FMAPREP_HOSTILE_DIR"], os.path.basename(path) + ".seen")
            if not os.path.exists(mark):
                open(mark, "w").close()
                ctypes.string_at(0)
            return real(path)
        if kind == "oom":
            hoard = []
            while True:
                hoard.append(bytearray(16 << 20))
        raise AssertionError(f"unknown hostile kind {kind!r}")

    return opener


def install() -> None:
    from fmaprep.audio import decode

    decode.OPENERS["soundfile"] = hostile_opener(decode.OPENERS["soundfile"])


with contextlib.suppress(ImportError):  # an interpreter without fmaprep (a bare venv)
    install()
