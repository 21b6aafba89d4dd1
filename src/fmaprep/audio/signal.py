"""Pure signal functions: numpy in, numpy out. No I/O, no config objects, no logging.

The mu-law functions implement DESIGN.md contract 6 exactly (torchaudio's ``mu_law_encoding`` and
tensorflow-wavenet's ``mu_law_encode`` for |x| <= 1).
"""

from __future__ import annotations

from functools import lru_cache
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


@lru_cache(maxsize=8)
def _mu_law_f32_table(
    mu: int,
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """:func:`mu_law_encode` tabulated over float32 bit patterns, 2**16 buckets of 2**16.

    Codes are monotone in x and no bucket is wider than one code step (the steepest place, near
    0, has steps of ~1.7e-4 where buckets are ~5e-7 wide; near 1.0 steps are ~0.04, buckets
    ~0.004), so each bucket holds one code, or two with a split point, found by a binary search
    that evaluates the formula itself. Returns (split pattern, first code, step) per bucket; a
    bucket with one code has split 0xFFFFFFFF. Built in ~40 ms.
    """
    start = np.arange(1 << 16, dtype=np.uint32) << np.uint32(16)

    def code_at(bits: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint8]:
        with np.errstate(invalid="ignore"):  # NaN patterns: no code is defined for them
            return mu_law_encode(bits.view(np.float32).astype(np.float64), mu)

    first, last = code_at(start), code_at(start + np.uint32(0xFFFF))
    lo = start.copy()  # a pattern known to give ``first``
    hi = start + np.uint32(0xFFFF)  # a pattern known to give ``last``
    for _ in range(16):
        mid = (lo + ((hi - lo) >> np.uint32(1))).astype(np.uint32)
        same = code_at(mid) == first
        lo, hi = np.where(same, mid, lo), np.where(same, hi, mid)
    split = np.where(first != last, hi, np.uint32(0xFFFFFFFF)).astype(np.uint32)
    step = (last - first).astype(np.uint8)  # modulo 256, so first + step == last
    return split, first, step


def mu_law_encode_f32(x: npt.NDArray[np.float32], mu: int = 255) -> npt.NDArray[np.uint8]:
    """:func:`mu_law_encode` for float32 input, by table lookup (faster; README, Benchmarks).

    Equal to the float64 formula for every non-NaN float32 (checked exhaustively over all 2**32
    patterns when it was written; the tests check bucket edges and random samples). NaN has no
    defined code in either.
    """
    if not 1 <= mu <= 255:
        raise ValueError(f"mu must be in 1..255 for uint8 codes, got {mu}")
    split, first, step = _mu_law_f32_table(mu)
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    bucket = bits >> np.uint32(16)
    codes: npt.NDArray[np.uint8] = (
        first[bucket] + (bits >= split[bucket]).view(np.uint8) * step[bucket]
    )
    return codes


def mu_law_decode(codes: npt.NDArray[np.integer], mu: int = 255) -> npt.NDArray[np.float64]:
    """Invert :func:`mu_law_encode`'s companding: code k maps to y = 2k/mu - 1, then
    x = sign(y) ((1 + mu)^|y| - 1) / mu."""
    y = 2.0 * np.asarray(codes, dtype=np.float64) / mu - 1.0
    x: npt.NDArray[np.float64] = np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu
    return x
