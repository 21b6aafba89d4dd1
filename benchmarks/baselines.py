"""What the job is measured against: decoding alone, and the plain script people write first.

Each returns (audio seconds, wall seconds): decoding in this process, the script in its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from fmaprep.audio.decode import OPENERS


def decode_only(paths: Sequence[str], decoder: str = "soundfile") -> tuple[float, float]:
    """mp3 to PCM and nothing else, one core: the floor any pipeline stands on."""
    started = time.perf_counter()
    audio = 0.0
    for path in paths:
        stream = OPENERS[decoder](path)
        frames = sum(len(block) for block in stream.blocks)
        audio += frames / stream.sample_rate
    return audio, time.perf_counter() - started


def librosa_script(paths: Sequence[str], processes: int) -> tuple[float, float]:
    """The plain multiprocessing + librosa script (:mod:`benchmarks.librosa_script`) in a
    fresh process, timed whole (interpreter and imports included, as the job's runs are)."""
    with tempfile.TemporaryDirectory(prefix="fmaprep-librosa-") as tmp:
        list_file = os.path.join(tmp, "inputs.txt")
        with open(list_file, "w") as f:
            f.write("\n".join(paths) + "\n")
        out_dir = os.path.join(tmp, "out")
        os.mkdir(out_dir)
        cmd = [sys.executable, str(Path(__file__).with_name("librosa_script.py")), str(processes),
               list_file, out_dir]  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"librosa script failed: {proc.stderr.strip()[-500:]}")
    return float(proc.stdout.split()[-1]), wall
