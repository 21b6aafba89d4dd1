"""fmaprep report OUTPUT [OTHER] --out report.html: one self-contained page with plots and
players; with OTHER, the two outputs side by side."""

from __future__ import annotations

import argparse

from fmaprep.cli import one_line

NAME = "report"
HELP = "write a self-contained HTML report: plots, players and spectrograms; or compare two"
EXAMPLES = """\
  fmaprep report build/demo/out --out build/demo/report.html
  fmaprep report out-soxr/ out-resampy/ --out compare.html     (settings, counts, histograms)
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("output", metavar="OUTPUT", help="an fmaprep output (directory or URI)")
    p.add_argument("other", metavar="OTHER", nargs="?", help="a second output to compare with")
    p.add_argument("--out", required=True, metavar="HTML", help="HTML file to write")


@one_line("report")
def run(args: argparse.Namespace) -> int:
    from fmaprep.report.html import write_report

    data = write_report(args.output, args.out, args.other)
    what = f"{len(data.lines)} inputs, {data.records} records"
    print(f"fmaprep report: {what}{' (compared)' if args.other else ''} -> {args.out}")
    return 0
