"""fmaprep export OUTPUT DEST --to memmap|webdataset: layouts a training loop reads directly."""

from __future__ import annotations

import argparse

from fmaprep.cli import one_line

NAME = "export"
HELP = "export an OUTPUT as a memmap (codes.u8 + index.jsonl) or webdataset tar shards"
EXAMPLES = """\
  fmaprep export build/demo/out build/demo/memmap --to memmap
  fmaprep export out/ train-mm/ --to memmap --split train --overwrite
  python -c "import numpy as np; c = np.memmap('train-mm/codes.u8', np.uint8, 'r'); print(c[:10])"
  fmaprep export out/ s3://bucket/mm --to memmap   (read in place by WindowSampler)
  fmaprep export out/ s3://bucket/wds --to webdataset --shard-size 256   (tar shards, shards.json)
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("output", metavar="OUTPUT", help="an fmaprep output (directory, s3://, hdfs://)")
    p.add_argument("dest", metavar="DEST", help="directory or s3:// / hdfs:// URI to create")
    p.add_argument(
        "--to", choices=["memmap", "webdataset"], default="memmap", help="layout (default memmap)"
    )
    p.add_argument(
        "--shard-size",
        type=int,
        default=256,
        metavar="MB",
        help="webdataset: start a new tar shard after this many MB (default 256)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace DEST if it exists")
    p.add_argument("--track", action="append", metavar="ID", help="only this track (repeatable)")
    p.add_argument("--genre", action="append", help="only this genre (repeatable)")
    p.add_argument("--split", action="append", help="only this split (repeatable)")


@one_line("export")
def run(args: argparse.Namespace) -> int:
    from fmaprep.storage.uris import is_local

    picked = {"track_ids": args.track, "genres": args.genre, "splits": args.split}
    if args.to == "webdataset":
        from fmaprep.train.webdataset import export_webdataset

        shards = export_webdataset(args.output, args.dest, overwrite=args.overwrite,
                                   shard_bytes=args.shard_size * 1024 * 1024, **picked)  # fmt: skip
        print(f"fmaprep export: {shards.tracks} tracks, {shards.samples:,} codes in "
              f"{len(shards.shards)} shards -> {shards.dest}")  # fmt: skip
        return 0
    if is_local(args.dest):
        from fmaprep.train.export import export_memmap

        result = export_memmap(args.output, args.dest, overwrite=args.overwrite, **picked)
    else:  # a memmap export written straight to s3:// or hdfs:// (fmaprep.train.remote)
        from fmaprep.train.remote import export_memmap_to_store

        if args.overwrite:
            raise ValueError(f"{args.dest}: --overwrite is for local exports; remove it first")
        result = export_memmap_to_store(args.output, args.dest, **picked)
    print(f"fmaprep export: {result.tracks} tracks, {result.samples:,} codes -> {result.dest}")
    return 0
