"""What the job is measured against: decoding alone, and the plain script people write first.

Each function runs in this process (or its own pool) and returns (audio seconds, wall seconds).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Sequence

import numpy as np

from fmaprep.decode import get_opener
from fmaprep.signal import mu_law_encode_f32


def decode_only(paths: Sequence[str], decoder: str = "soundfile") -> tuple[float, float]:
    """mp3 to PCM and nothing else, one core: the floor any pipeline stands on."""
    started = time.perf_counter()
    audio = 0.0
    for path in paths:
        stream = get_opener(decoder)(path)
        frames = sum(len(block) for block in stream.blocks)
        audio += frames / stream.sample_rate
    return audio, time.perf_counter() - started


def _librosa_one(path: str) -> float:
    """The plain script: librosa.load, left channel, librosa.resample (soxr_hq), peak, mu-law
    (fmaprep's own table-driven mu-law, so the comparison is about everything else)."""
    import librosa

    y, sr = librosa.load(path, sr=None, mono=False)
    left = y[0] if y.ndim == 2 else y
    out = librosa.resample(left, orig_sr=sr, target_sr=8000, res_type="soxr_hq")
    peak = float(np.max(np.abs(out))) or 1.0
    codes = mu_law_encode_f32((out / peak).astype(np.float32), 255)
    np.save("/dev/null", codes)
    return float(len(left) / sr)


def librosa_pool(paths: Sequence[str], processes: int) -> tuple[float, float]:
    """``multiprocessing.Pool(processes).map`` of the plain script, wall time from pool start."""
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        audio = sum(pool.map(_librosa_one, list(paths), chunksize=1))
    return audio, time.perf_counter() - started
