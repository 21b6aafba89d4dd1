"""fmaprep export OUTPUT DEST --to memmap: a layout a training loop slices without decoding."""

from __future__ import annotations

import argparse
import sys

NAME = "export"
HELP = "export an OUTPUT as one flat codes.u8 file plus index.jsonl (numpy.memmap-ready)"
EXAMPLES = """\
  fmaprep export build/demo/out build/demo/memmap --to memmap
  fmaprep export out/ train-mm/ --to memmap --split train --overwrite
  python -c "import numpy as np; c = np.memmap('train-mm/codes.u8', np.uint8, 'r'); print(c[:10])"
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("output", metavar="OUTPUT", help="an fmaprep output (directory, s3://, hdfs://)")
    p.add_argument("dest", metavar="DEST", help="directory to create (written atomically)")
    p.add_argument("--to", choices=["memmap"], default="memmap", help="layout (default memmap)")
    p.add_argument("--overwrite", action="store_true", help="replace DEST if it exists")
    p.add_argument("--track", action="append", metavar="ID", help="only this track (repeatable)")
    p.add_argument("--genre", action="append", help="only this genre (repeatable)")
    p.add_argument("--split", action="append", help="only this split (repeatable)")


def run(args: argparse.Namespace) -> int:
    from fmaprep.storage.uris import StorageError
    from fmaprep.train.export import export_memmap

    try:
        result = export_memmap(
            args.output,
            args.dest,
            overwrite=args.overwrite,
            track_ids=args.track,
            genres=args.genre,
            splits=args.split,
        )
    except (OSError, ValueError, StorageError) as exc:
        print(f"fmaprep export: {exc}", file=sys.stderr)
        return 2
    print(f"fmaprep export: {result.tracks} tracks, {result.samples:,} codes -> {result.dest}")
    return 0
