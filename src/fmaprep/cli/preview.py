"""fmaprep preview OUTPUT --track ID --out x.wav: hear what the model will learn from."""

from __future__ import annotations

import argparse
import sys

from fmaprep.cli import one_line

NAME = "preview"
HELP = "decode one track's mu-law codes to a mono 16-bit PCM wav (8 kHz by default)"
EXAMPLES = """\
  fmaprep preview build/demo/out --track 000002 --out 000002.wav
  fmaprep preview train-mm/ --track 000002 --out x.wav   (a memmap export works too)
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "output", metavar="OUTPUT",
        help="an fmaprep output (directory, s3://, hdfs://) or a local memmap export",
    )  # fmt: skip
    p.add_argument("--track", required=True, metavar="ID", help="track id (the file's stem)")
    p.add_argument("--out", required=True, metavar="WAV", help="wav file to write")


@one_line("preview")
def run(args: argparse.Namespace) -> int:
    from fmaprep.train.preview import write_preview

    try:
        info = write_preview(args.output, args.track, args.out)
    except KeyError as exc:
        print(f"fmaprep preview: {exc.args[0]}", file=sys.stderr)
        return 2
    print(
        f"fmaprep preview: {info['track_id']}: {info['samples']:,} samples "
        f"({info['seconds']:.1f} s @ {info.get('sample_rate', 8000)} Hz) -> {args.out}"
    )
    return 0
