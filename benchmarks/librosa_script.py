"""The plain script people write first, run as its own process by the benchmark: a
multiprocessing pool (the platform's default start method) over librosa.load (sr=None,
mono=False), the left channel, librosa.resample (soxr_hq), peak, mu-law, one .npy per track.

Usage: python benchmarks/librosa_script.py PROCESSES LIST_FILE OUT_DIR
"""

from __future__ import annotations

import os
import sys
from multiprocessing import Pool

import librosa
import numpy as np

from fmaprep.audio.signal import (
    mu_law_encode_f32,  # the same mu-law as fmaprep's, so only the rest differs
)


def one(job: tuple[str, str]) -> float:
    path, out_dir = job
    y, sr = librosa.load(path, sr=None, mono=False)
    left = y[0] if y.ndim == 2 else y
    out = librosa.resample(left, orig_sr=sr, target_sr=8000, res_type="soxr_hq")
    peak = float(np.max(np.abs(out))) or 1.0
    codes = mu_law_encode_f32((out / peak).astype(np.float32), 255)
    np.save(os.path.join(out_dir, os.path.basename(path) + ".npy"), codes)
    return float(len(left) / sr)


def main() -> int:
    processes, list_file, out_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    with open(list_file) as f:
        paths = f.read().splitlines()
    with Pool(processes) as pool:
        audio = sum(pool.map(one, [(p, out_dir) for p in paths], chunksize=1))
    print(audio)
    return 0


if __name__ == "__main__":
    sys.exit(main())
