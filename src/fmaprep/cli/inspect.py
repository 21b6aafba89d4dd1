"""fmaprep inspect OUTPUT: what a finished output holds."""

from __future__ import annotations

import argparse
import sys

from fmaprep.cli import one_line

NAME = "inspect"
HELP = "show counts, hours of audio, failures by reason and the first records of an OUTPUT"
EXAMPLES = """\
  fmaprep inspect build/demo/out
  fmaprep inspect out/ --records 10
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("output", metavar="OUTPUT", help="an fmaprep output (directory, s3://, hdfs://)")
    p.add_argument("--records", type=int, default=3, help="how many records to show (default 3)")


@one_line("inspect")
def run(args: argparse.Namespace) -> int:
    from fmaprep.report.summary import inspect_output

    inspect_output(args.output, sys.stdout, args.records)
    return 0
