"""Resamplers behind one signature: ``(x: float32 1-D, sr_in, sr_out) -> float32 1-D``.

soxr at high quality is the default; resampy's kaiser_best is the original design's choice.
Every resampler must pass the quality tests (DESIGN.md contract 8).
"""

from __future__ import annotations

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


def resample_resampy(
    x: npt.NDArray[np.float32], sr_in: int, sr_out: int
) -> npt.NDArray[np.float32]:
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
