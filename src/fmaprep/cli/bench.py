"""fmaprep bench INPUT: time the job at several thread counts and configs, against baselines."""

from __future__ import annotations

import argparse
import glob
import json
import os
from pathlib import Path

NAME = "bench"
HELP = "benchmark the job (local[N] masters x configs) against decode-only and librosa baselines"
EXAMPLES = """\
  fmaprep demo build/bench/corpus --tracks 45 --seconds 240 --encoder ffmpeg
  fmaprep bench build/bench/corpus --masters 'local[1],local[2]' --repeat 3
  fmaprep bench corpus/ --configs default,original --baselines --out build/bench
  fmaprep bench big.mp3 --memory      # peak RSS of a worker on one (e.g. 3-hour) file
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
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


def _audio_files(root: str) -> list[str]:
    if os.path.isfile(root):
        return [root]
    return sorted(glob.glob(os.path.join(root, "**", "*.mp3"), recursive=True))


def run(args: argparse.Namespace) -> int:
    from fmaprep.bench.memory import worker_peak_rss
    from fmaprep.bench.report import run_benchmark

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
