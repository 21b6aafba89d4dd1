"""Resamplers behind one signature: ``(x: float32 1-D, sr_in, sr_out) -> float32 1-D``.

soxr at high quality is the default; resampy's kaiser_best is the original design's choice.
Every resampler must pass the quality tests (DESIGN.md contract 8).
"""

from __future__ import annotations

import os
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


def ensure_numba_cache_dir() -> str:
    """Give numba a writable cache before resampy is imported (its kernels use ``cache=True``).

    numba caches next to the package by default, which fails where site-packages is read-only
    (an EMR node's system Python, a shared install). NUMBA_CACHE_DIR wins when set; else a
    per-user directory under the temp dir.
    """
    default = os.path.join(tempfile.gettempdir(), f"fmaprep-numba-{os.getuid()}")
    return os.environ.setdefault("NUMBA_CACHE_DIR", default)


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
