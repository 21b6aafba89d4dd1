"""Pure signal functions: numpy in, numpy out. No I/O, no config objects, no logging.

The mu-law functions implement DESIGN.md contract 6 exactly (torchaudio's ``mu_law_encoding`` and
tensorflow-wavenet's ``mu_law_encode`` for |x| <= 1).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

Channel = Literal["left", "right", "mix"]
FloatArray = npt.NDArray[np.floating]


def pick_channel(frames: FloatArray, channel: Channel = "left") -> npt.NDArray[np.float32]:
    """Return one channel of ``frames`` (shape ``(n,)`` or ``(n, channels)``) as float32.

    Mono input is returned as is whatever ``channel`` asks for: a mono file's only channel is its
    left and its right. ``mix`` averages all channels.
    """
    if frames.ndim == 1:
        return np.ascontiguousarray(frames, dtype=np.float32)
    if frames.ndim != 2:
        raise ValueError(f"frames must be 1-D or 2-D, got shape {frames.shape}")
    if frames.shape[1] == 1 or channel == "left":
        picked = frames[:, 0]
    elif channel == "right":
        picked = frames[:, 1]
    elif channel == "mix":
        picked = frames.mean(axis=1, dtype=np.float64)
    else:
        raise ValueError(f"unknown channel {channel!r} (left, right or mix)")
    return np.ascontiguousarray(picked, dtype=np.float32)


def peak_normalize(x: FloatArray) -> tuple[npt.NDArray[np.float32], float]:
    """Scale ``x`` so its absolute peak is 1.0; return the scaled signal and the gain applied.

    Silence (peak 0) stays silence with gain 1.0.
    """
    gain = peak_gain(float(np.max(np.abs(x))) if x.size else 0.0)
    return apply_gain(x, gain), gain


def peak_gain(peak: float) -> float:
    """The gain that brings an absolute peak to 1.0.

    1.0 for silence, a non-finite peak, or a peak so small (float32 denormal) that its inverse
    would overflow float32 to inf: such a signal is silence for every practical purpose.
    """
    if not np.isfinite(peak) or peak < np.finfo(np.float32).tiny:
        return 1.0
    return 1.0 / peak


def apply_gain(x: FloatArray, gain: float) -> npt.NDArray[np.float32]:
    """``x * gain`` in float32 (the same rounding whether applied whole or block by block)."""
    x32 = np.asarray(x, dtype=np.float32)
    return x32 if gain == 1.0 else x32 * np.float32(gain)


def mu_law_encode(x: FloatArray, mu: int = 255) -> npt.NDArray[np.uint8]:
    """Mu-law compand ``x`` into ``mu + 1`` integer levels (uint8 for mu <= 255).

    x is clipped to [-1, 1]; c = sign(x) ln(1 + mu|x|) / ln(1 + mu) in float64;
    code = floor((c + 1) / 2 * mu + 0.5).
    """
    if not 1 <= mu <= 255:
        raise ValueError(f"mu must be in 1..255 for uint8 codes, got {mu}")
    xc = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    c = np.sign(xc) * np.log1p(mu * np.abs(xc)) / np.log1p(mu)
    codes: npt.NDArray[np.uint8] = np.floor((c + 1.0) / 2.0 * mu + 0.5).astype(np.uint8)
    return codes


def mu_law_decode(codes: npt.NDArray[np.integer], mu: int = 255) -> npt.NDArray[np.float64]:
    """Invert :func:`mu_law_encode`'s companding: code k maps to y = 2k/mu - 1, then
    x = sign(y) ((1 + mu)^|y| - 1) / mu."""
    y = 2.0 * np.asarray(codes, dtype=np.float64) / mu - 1.0
    x: npt.NDArray[np.float64] = np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu
    return x
