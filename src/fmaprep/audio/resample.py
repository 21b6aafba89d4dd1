"""Resamplers behind one signature: ``(x: float32 1-D, sr_in, sr_out) -> float32 1-D``.

soxr at high quality is the default; resampy's kaiser_best is the original design's choice.
Every resampler must pass the quality tests (DESIGN.md contract 8).
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

Resampler = Callable[[npt.NDArray[np.float32], int, int], npt.NDArray[np.float32]]


def resample_soxr(x: npt.NDArray[np.float32], sr_in: int, sr_out: int) -> npt.NDArray[np.float32]:
    import soxr

    if sr_in == sr_out:
        return x
    out = soxr.resample(x, sr_in, sr_out, quality="HQ")
    return np.asarray(out, dtype=np.float32)


class UnsafeCacheError(RuntimeError):
    """A cache directory that workers would execute machine code from is not private."""


def default_numba_cache_dir() -> str:
    """``$TMPDIR/fmaprep-numba-<uid>``: per user, so two users of one host never share it."""
    return os.path.join(tempfile.gettempdir(), f"fmaprep-numba-{os.getuid()}")


def ensure_numba_cache_dir() -> str:
    """Give numba a private, writable cache before resampy is imported, and return it.

    Defence in depth: resampy 0.4.3 compiles its kernels without ``cache=True``, so today
    nothing is written there; but any numba function with ``cache=True`` (a later resampy,
    another library in the worker) would cache next to its package by default, which fails where
    site-packages is read-only (an EMR node's system Python, a shared install), and numba loads
    machine code from its cache. NUMBA_CACHE_DIR wins when set; else
    :func:`default_numba_cache_dir`. Either way it must be this user's alone: see
    :func:`private_dir`.
    """
    return private_dir(os.environ.setdefault("NUMBA_CACHE_DIR", default_numba_cache_dir()))


def private_dir(path: str) -> str:
    """Create ``path`` with mode 0700 if missing; refuse it unless it is a real directory owned by
    this user that no group or other user can write (on a shared host another user could
    otherwise plant cached code in a predictable ``/tmp`` name)."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError as exc:
        raise UnsafeCacheError(f"cannot create the cache directory {path}: {exc}") from exc
    problem = None
    if not stat.S_ISDIR(info.st_mode):
        problem = "is not a directory (a symlink?)"
    elif info.st_uid != os.getuid():
        problem = f"is owned by uid {info.st_uid}, not by you (uid {os.getuid()})"
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"is writable by others (mode {stat.S_IMODE(info.st_mode):o})"
    if problem:
        raise UnsafeCacheError(
            f"cache directory {path} {problem}: remove it, or set NUMBA_CACHE_DIR to a "
            f"directory only you can write (mode 700)"
        )
    return path


def resample_resampy(
    x: npt.NDArray[np.float32], sr_in: int, sr_out: int
) -> npt.NDArray[np.float32]:
    ensure_numba_cache_dir()
    import resampy

    if sr_in == sr_out:
        return x
    out = resampy.resample(x, sr_in, sr_out, filter="kaiser_best")
    return np.asarray(out, dtype=np.float32)


RESAMPLERS: dict[str, Resampler] = {
    "soxr": resample_soxr,
    "resampy": resample_resampy,
}


def get_resampler(name: str) -> Resampler:
    try:
        return RESAMPLERS[name]
    except KeyError:
        raise ValueError(
            f"unknown resampler {name!r} (choose from {', '.join(RESAMPLERS)})"
        ) from None


class StreamResampler:
    """Resample a signal that arrives in blocks. soxr streams natively (its output does not
    depend on how the input is cut); resampy has no streaming API, so its input is gathered and
    resampled at the end, as the original design did."""

    def __init__(self, name: str, sr_in: int, sr_out: int) -> None:
        get_resampler(name)  # validate the name
        self.name, self.sr_in, self.sr_out = name, sr_in, sr_out
        self._pending: list[npt.NDArray[np.float32]] = []
        self._soxr: object | None = None
        if name == "soxr" and sr_in != sr_out:
            import soxr

            self._soxr = soxr.ResampleStream(sr_in, sr_out, 1, dtype="float32", quality="HQ")

    def process(self, x: npt.NDArray[np.float32], last: bool = False) -> npt.NDArray[np.float32]:
        if self.sr_in == self.sr_out:
            return x
        if self._soxr is not None:
            out = self._soxr.resample_chunk(x, last=last)  # type: ignore[attr-defined]
            return np.asarray(out, dtype=np.float32)
        self._pending.append(x)
        if not last:
            return np.zeros(0, dtype=np.float32)
        whole = np.concatenate(self._pending) if self._pending else np.zeros(0, np.float32)
        self._pending = []
        if whole.size == 0:
            return whole
        return get_resampler(self.name)(whole, self.sr_in, self.sr_out)
