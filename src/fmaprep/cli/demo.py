"""fmaprep demo DEST: make the demo corpus."""

from __future__ import annotations

import argparse
from pathlib import Path

from fmaprep.cli import one_line

NAME = "demo"
HELP = "make a demo corpus of real mp3s from synthetic music (FMA layout, with _tracks.jsonl)"
EXAMPLES = """\
  fmaprep demo build/demo/corpus
  fmaprep demo /tmp/corpus --tracks 200 --seconds 60
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dest", metavar="DEST", type=Path, help="directory to fill")
    p.add_argument("--tracks", type=int, default=24, help="number of tracks (default 24)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of each track (default 30)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--encoder",
        choices=["soundfile", "ffmpeg"],
        default="soundfile",
        help="mp3 encoder: libsndfile (fast, default) or ffmpeg's LAME VBR (like FMA)",
    )


@one_line("demo")
def run(args: argparse.Namespace) -> int:
    from fmaprep.acquire.demo import make_demo_corpus

    paths = make_demo_corpus(args.dest, args.tracks, args.seconds, args.seed, args.encoder)
    print(f"fmaprep demo: {len(paths)} mp3 files in {args.dest}")
    return 0
