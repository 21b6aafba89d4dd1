"""The ``fmaprep`` command. Each subcommand lives in its own module under ``fmaprep.cli`` and
exposes ``NAME``, ``HELP``, ``EXAMPLES``, ``add_arguments(parser)`` and ``run(args) -> int``.
Adding one is a new module plus one line in ``SUBCOMMANDS``."""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from types import ModuleType

from fmaprep import __version__
from fmaprep.redaction import RedactingFilter
from fmaprep.storage.uris import StorageError

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


#: A log of ours by its name: ``<command>-<UTC time>-<pid>.log`` (what job_log_path makes).
_LOG_NAME = re.compile(r"[a-z-]+-\d{8}T\d{6}Z-\d+\.log")
LOG_KEEP_DAYS = 14


def job_log_path(command: str) -> str:
    """Where a long command's log (with the traceback of a failure) goes:
    ``$TMPDIR/fmaprep-logs/<command>-<UTC time>-<pid>.log``. Our logs older than
    ``LOG_KEEP_DAYS`` are deleted on the way (a machine running a job a minute would otherwise
    keep every log forever); any other file there is left alone."""
    directory = os.path.join(tempfile.gettempdir(), "fmaprep-logs")
    os.makedirs(directory, exist_ok=True)
    _prune_logs(directory, time.time() - LOG_KEEP_DAYS * 86400)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return os.path.join(directory, f"{command}-{stamp}-{os.getpid()}.log")


def _prune_logs(directory: str, before: float) -> None:
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if not _LOG_NAME.fullmatch(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < before:
                os.unlink(entry.path)
        except OSError:  # another run pruned it first, or it is not ours to delete
            pass


def configure_logging(verbose: int, quiet: bool, log_file: str | None = None) -> None:
    """The one place logging is set up (modules only call logging.getLogger(__name__)).
    ``log_file`` also gets every INFO line (whatever ``quiet`` says), for the traceback the
    CLI adds when a job fails."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose >= 2 else logging.INFO)
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, datefmt="%H:%M:%S", stream=sys.stderr)
    if log_file is not None:
        from fmaprep.job.interrupted import INTERRUPTED

        for handler in logging.getLogger().handlers:
            handler.setLevel(level)
            # after Ctrl-C the console shows the one "interrupted" line; the file keeps the rest
            handler.addFilter(lambda _record: not INTERRUPTED.is_set())
        to_file = logging.FileHandler(log_file, encoding="utf-8")
        to_file.setFormatter(logging.Formatter(fmt))
        to_file.setLevel(min(level, logging.INFO))
        logging.getLogger().addHandler(to_file)
        logging.getLogger().setLevel(min(level, logging.INFO))
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
    args.log_file = job_log_path(args.command) if args.command == "preprocess" else None
    configure_logging(args.verbose, args.quiet, args.log_file)
    code: int = args._run(args)
    return code


Run = Callable[[argparse.Namespace], int]


def one_line(command: str) -> Callable[[Run], Run]:
    """A command's ``run`` that says bad input or a failing environment (OSError, ValueError,
    StorageError: a bad URI included) in one line, ``fmaprep COMMAND: ...``, and exits 2."""

    def wrap(run: Run) -> Run:
        @functools.wraps(run)
        def guarded(args: argparse.Namespace) -> int:
            try:
                return run(args)
            except (OSError, ValueError, StorageError) as exc:
                print(f"fmaprep {command}: {exc}", file=sys.stderr)
                return 2

        return guarded

    return wrap


if __name__ == "__main__":
    sys.exit(main())
