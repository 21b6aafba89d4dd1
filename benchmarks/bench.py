"""The job's throughput table: time ``fmaprep preprocess`` at several local[N] masters and
configs, against decode-only and a plain librosa script, or one worker's peak RSS.

``python -m benchmarks.bench INPUT [--masters ...] [--configs ...] [--repeat N] [--baselines]``
``python -m benchmarks.bench big.mp3 --memory``

Run from the repository root (``scripts/bench.sh`` does, for every published figure). This was
``fmaprep bench``; it measures the product and is not part of it, so it lives here.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import sys
from pathlib import Path

from benchmarks.memory import worker_peak_rss
from benchmarks.report import run_benchmark


def _audio_files(root: str) -> list[str]:
    if os.path.isfile(root):
        return [root]
    return sorted(glob.glob(os.path.join(root, "**", "*.mp3"), recursive=True))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__)
    p.add_argument("input", metavar="INPUT", help="a local directory of audio files (or one file)")
    p.add_argument(
        "--masters", default="local[1],local[2]", help="comma-separated local[N] masters"
    )
    p.add_argument(
        "--configs", default="default", help="comma-separated: default, original, in-worker"
    )
    p.add_argument("--repeat", type=int, default=3, help="runs per setting (default 3)")
    p.add_argument("--out", type=Path, default=Path("build/bench"), help="where tables and plot go")
    p.add_argument("--baselines", action="store_true", help="also time decode-only and librosa")
    p.add_argument("--memory", action="store_true", help="only measure a worker's peak RSS")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.memory:
        print(f"worker peak RSS: {worker_peak_rss(args.input):.0f} MB")
        return 0
    summary = run_benchmark(
        args.input,
        _audio_files(args.input),
        [m.strip() for m in args.masters.split(",")],
        [c.strip() for c in args.configs.split(",")],
        args.repeat,
        args.out,
        args.baselines,
    )
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
