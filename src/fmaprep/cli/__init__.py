"""The ``fmaprep`` command. Each subcommand lives in its own module under ``fmaprep.cli`` and
exposes ``NAME``, ``HELP``, ``EXAMPLES``, ``add_arguments(parser)`` and ``run(args) -> int``.
Adding one is a new module plus one line in ``SUBCOMMANDS``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from fmaprep import __version__
from fmaprep.redaction import RedactingFilter

# module names under fmaprep.cli, in the order --help lists them
SUBCOMMANDS = (
    "preprocess",
    "inspect",
    "export",
    "preview",
    "report",
    "demo",
    "scrape",
    "fetch-dataset",
    "package-env",
)

# the documentation page that explains each subcommand (the site: bash scripts/docs.sh)
DOCS_PAGES = {
    "preprocess": "docs/one-machine.md",
    "inspect": "docs/output.md",
    "export": "docs/reading.md",
    "preview": "docs/reading.md",
    "report": "docs/reading.md",
    "demo": "docs/one-machine.md",
    "scrape": "docs/scraper.md",
    "fetch-dataset": "docs/music.md",
    "package-env": "docs/cluster.md",
}
DOCS_HINT = "(the documentation site: bash scripts/docs.sh)"

TOP_EXAMPLES = """\
examples:
  fmaprep demo build/demo/corpus --tracks 24
  fmaprep preprocess build/demo/corpus build/demo/out --master 'local[2]'
  fmaprep inspect build/demo/out
  fmaprep export build/demo/out build/demo/memmap --to memmap
  fmaprep preview build/demo/out --track 000002 --out 000002.wav
  fmaprep report build/demo/out --out build/demo/report.html
  python -c "import fmaprep; print(next(fmaprep.read_records('build/demo/out'))['track_id'])"

docs: docs/index.md, by task; build the site with: bash scripts/docs.sh
"""


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"fmaprep.cli.{name.replace('-', '_')}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The CLI parser; with ``only``, just that subcommand's (importing every subcommand's
    module, acquisition's HTTP and S3 clients among them, costs ~0.2 s of every job's start)."""
    parser = argparse.ArgumentParser(
        prog="fmaprep",
        description="Turn a music collection into 8 kHz mu-law WaveNet training data with PySpark.",
        epilog=TOP_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fmaprep {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS if only is None else (only,):
        module = _load(name)
        sub = subparsers.add_parser(
            module.NAME,
            help=module.HELP,
            description=module.HELP,
            epilog="examples:\n"
            + module.EXAMPLES
            + f"\nmore: {DOCS_PAGES.get(module.NAME, 'docs/index.md')} {DOCS_HINT}\n",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def configure_logging(verbose: int, quiet: bool) -> None:
    """The one place logging is set up (modules only call logging.getLogger(__name__))."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose >= 2 else logging.INFO)
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:  # signed URLs never reach a log
        handler.addFilter(RedactingFilter())
    if verbose < 2:
        logging.getLogger("py4j").setLevel(logging.WARNING)
        logging.getLogger("numba").setLevel(logging.WARNING)


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names, when its first non-option word is one."""
    word = next((arg for arg in argv if not arg.startswith("-")), None)
    return word if word in SUBCOMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only=_command_in(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    configure_logging(args.verbose, args.quiet)
    code: int = args._run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
