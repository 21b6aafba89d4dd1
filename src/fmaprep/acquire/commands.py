"""Argument parsing and running for ``fmaprep scrape`` and ``fmaprep fetch-dataset`` (the
modules in :mod:`fmaprep.cli` only name these)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from fmaprep.acquire.archive import DatasetError
from fmaprep.acquire.dataset import ARCHIVES, fetch_dataset
from fmaprep.acquire.dest import DestinationError
from fmaprep.acquire.policy import BadSiteError
from fmaprep.acquire.scrape import DEFAULT_BASE_URL, DEFAULT_MAX_BYTES, ScrapeConfig, scrape
from fmaprep.progress import Progress
from fmaprep.redaction import printable, redact_text

log = logging.getLogger(__name__)

SCRAPE_HELP = "download mp3s and metadata from the Free Music Archive website, politely"
SCRAPE_EXAMPLES = """\
  fmaprep scrape --genre Rock --limit 100 --dest /data/fma
  fmaprep scrape --chart all --limit 40 --dest s3://bucket/fma --batch-size 20 --pause 30
  fmaprep scrape --search 'piano' --limit 5 --dest "$PWD/build/fma" --min-delay 2
  rerun the same command to resume: complete tracks are skipped, nothing partial is left.
what it fetches: the base URL's origin as its robots.txt allows; no .netrc, no *_PROXY.
exit status: 0 when what was asked for is present (skipped candidates are listed); 1 when
  tracks are missing (the summary says why); 2 for a bad destination or arguments; 130 when
  interrupted (the finished tracks are recorded, a rerun resumes).
"""

DATASET_HELP = "download, verify and unpack an FMA dataset archive (fma_small, ...)"
DATASET_EXAMPLES = (
    """\
  fmaprep fetch-dataset fma_metadata --dest /data/fma
  fmaprep fetch-dataset fma_small --dest /data/fma          (then: preprocess /data/fma ...)
  fmaprep fetch-dataset fma_small --dest /data/fma --url http://mirror/fma_small.zip
  archives: """
    + ", ".join(f"{a.name} ({a.size})" for a in ARCHIVES.values())
    + "\n"
    + """\
exit status: 0 when every member of the archive is in the destination (extracted now or
  before); 1 when the download failed or members are missing (the summary names each and why).
"""
)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not >= 1")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:  # (also NaN)
        raise argparse.ArgumentTypeError(f"{text} is not > 0")
    return value


def _proxy(text: str) -> str:
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not host:
        raise argparse.ArgumentTypeError(f"{text!r} is not a proxy URL like http://HOST:PORT")
    return text


def _add_dest(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dest",
        required=True,
        help="absolute directory, file://, s3://, s3a:// or hdfs:// (WebHDFS) URI",
    )
    parser.add_argument(
        "--s3-endpoint",
        metavar="URL",
        help="S3 API endpoint for s3:// (default: $FMAPREP_S3_ENDPOINT, conf/storage.toml, AWS)",
    )


def _add_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )


def add_scrape_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--genre", metavar="HANDLE", help="a genre handle, e.g. Rock, Old-Time__Historic"
    )
    source.add_argument("--chart", metavar="NAME", help="a chart, e.g. all")
    source.add_argument("--search", metavar="TEXT", help="a quick search")
    _add_dest(parser)
    parser.add_argument(
        "--base-url",
        default=DEFAULT_BASE_URL,
        help="the site (default %(default)s); user:password@ in it is sent to that origin only",
    )

    def number(flag: str, kind: Callable[[str], object], default: object, text: str) -> None:
        """An option with a value; a default, when there is one, is shown after ``text``."""
        text += " (%(default)s)" if default is not None else ""
        parser.add_argument(flag, type=kind, default=default, help=text)

    number(
        "--limit",
        _positive_int,
        20,
        "tracks to have at the destination, downloaded or already there",
    )
    number("--batch-size", _positive_int, 20, "downloads per batch before a pause")
    number("--pause", _seconds, 30.0, "seconds between batches")
    number("--min-delay", _seconds, 1.0, "minimum seconds between any two requests")
    number("--concurrency", _positive_int, 2, "downloads in flight at once")
    number("--max-bytes", _positive_int, DEFAULT_MAX_BYTES, "largest file accepted")
    number("--retries", _positive_int, 5, "attempts per request, with exponential backoff")
    parser.add_argument(
        "--page-size", type=_positive_int, default=20, help="genre listing page size (max 200)"
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        type=str.lower,
        dest="allow_hosts",
        metavar="HOST",
        help="also fetch from HOST or HOST:PORT (default: only the base URL's host and its "
        "subdomains)",
    )
    parser.add_argument(
        "--allow-private-addresses",
        action="store_true",
        dest="allow_private",
        help="let connections reach loopback, private and link-local addresses (default: only "
        "when the base URL's host is one)",
    )
    parser.add_argument(
        "--proxy",
        type=_proxy,
        metavar="URL",
        help="send every request through this proxy (the environment's *_PROXY are ignored)",
    )
    number(
        "--timeout", _positive_seconds, 60.0, "seconds to connect, and to wait for the next bytes"
    )
    number(
        "--deadline",
        _positive_seconds,
        300.0,
        "seconds one request may take in all: robots.txt, a page or a file",
    )
    number(
        "--max-pages",
        _positive_int,
        None,
        "listing pages per run (default: 10 + 3 x the pages --limit needs at 20 a page)",
    )
    number(
        "--max-failures",
        _positive_int,
        None,
        "failed tracks before the run stops (default: 100 or --limit / 10, the larger)",
    )
    number(
        "--max-consecutive-failures",
        _positive_int,
        20,
        "failed tracks in a row before the run stops",
    )
    number(
        "--max-crawl-delay", _seconds, 60.0, "largest robots.txt Crawl-delay honoured, in seconds"
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="retry tracks an earlier run found bad for good (not audio, disallowed, 404)",
    )
    _add_progress(parser)


def run_scrape(args: argparse.Namespace) -> int:
    names = {f.name for f in dataclasses.fields(ScrapeConfig)}
    values = {name: value for name, value in vars(args).items() if name in names}
    values |= {"page_size": min(args.page_size, 200), "allow_hosts": tuple(args.allow_hosts)}
    config = ScrapeConfig(**values)
    try:
        summary = scrape(config, progress=Progress(config.limit, enabled=args.progress))
        print(summary.text(), file=sys.stderr)  # (a Ctrl-C while printing: 130 all the same)
    except (DestinationError, BadSiteError) as exc:
        print(f"fmaprep scrape: {printable(redact_text(str(exc)))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fmaprep scrape: interrupted", file=sys.stderr)
        return 130
    if summary.interrupted:
        return 130
    return 0 if summary.complete else 1


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help=f"one of {', '.join(ARCHIVES)}")
    _add_dest(parser)
    parser.add_argument("--url", help="fetch the archive from here instead of FMA's server")
    parser.add_argument(
        "--sha1", help="expected sha1 of the archive (default: FMA's published value)"
    )
    parser.add_argument("--tracks-csv", type=Path, help="FMA tracks.csv, when not in the archive")
    parser.add_argument("--keep-archive", action="store_true", help="keep the downloaded zip")
    _add_progress(parser)


def run_dataset(args: argparse.Namespace) -> int:
    try:
        summary = fetch_dataset(
            args.name,
            args.dest,
            url=args.url,
            sha1=args.sha1,
            tracks_csv=args.tracks_csv,
            keep_archive=args.keep_archive,
            progress=Progress(None, enabled=args.progress),
            s3_endpoint=args.s3_endpoint,
        )
    except DestinationError as exc:
        print(f"fmaprep fetch-dataset: {exc}", file=sys.stderr)
        return 2
    except DatasetError as exc:
        print(f"fmaprep fetch-dataset: {exc}", file=sys.stderr)
        return 1
    print(summary.text(), file=sys.stderr)
    return 0 if not summary.failures else 1
