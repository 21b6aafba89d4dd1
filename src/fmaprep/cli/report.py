"""fmaprep report OUTPUT --out report.html: one self-contained page with plots."""

from __future__ import annotations

import argparse
import sys

NAME = "report"
HELP = "write a self-contained HTML report (durations, codes, genres, failures, throughput)"
EXAMPLES = """\
  fmaprep report build/demo/out --out build/demo/report.html
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("output", metavar="OUTPUT", help="a local fmaprep output directory")
    p.add_argument("--out", required=True, metavar="HTML", help="HTML file to write")


def run(args: argparse.Namespace) -> int:
    from fmaprep.report.html import write_report

    try:
        data = write_report(args.output, args.out)
    except (OSError, ValueError) as exc:
        print(f"fmaprep report: {exc}", file=sys.stderr)
        return 2
    print(f"fmaprep report: {len(data.lines)} inputs, {data.records} records -> {args.out}")
    return 0
