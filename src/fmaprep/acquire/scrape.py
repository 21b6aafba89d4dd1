"""The scraper: walk a genre / chart / search listing of the FMA website and download its mp3s
politely (see :mod:`fmaprep.acquire.http`), resumably (tracks already complete at the
destination are skipped) and safely: ids name files, bodies must be MPEG audio frame by frame,
and a hostile site cannot steer it (the origins and addresses of :mod:`fmaprep.acquire.policy`,
robots.txt for every URL, no credentials from the environment, a deadline per request and
budgets per run). What it will and will not fetch: ``docs/scraper.md``.

``limit`` counts the tracks present at the destination at the end of the run, downloaded now or
already there: a rerun with the same arguments downloads nothing, and a run that was stopped
continues where it stopped. Ctrl-C ends the run within seconds: requests in flight are cut and
the lines of the tracks that finished are written.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field, replace
from typing import Any

from fmaprep.acquire.dest import Destination, DestinationError, open_destination
from fmaprep.acquire.http import FetchError, HttpClient, Target, Throttle
from fmaprep.acquire.interrupt import CtrlC
from fmaprep.acquire.policy import SitePolicy, split_credentials
from fmaprep.acquire.robots import Robots
from fmaprep.acquire.site import TrackInfo, listing_url, parse_listing, parse_track_page
from fmaprep.acquire.tracklog import TrackLog
from fmaprep.audio.frames import FrameCheck
from fmaprep.audio.sniff import looks_like_text, starts_like_mp3
from fmaprep.model import track_path
from fmaprep.progress import Progress, human_bytes
from fmaprep.redaction import printable, redact_text
from fmaprep.storage.clients import StoreSettings
from fmaprep.tracks import make_line

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://freemusicarchive.org"
DEFAULT_MAX_BYTES = 200 * 1024 * 1024
SHOWN = 20  # failed tracks and rejected items the summary names (the rest are counted)
POLL = 0.2  # seconds between the main thread's looks for a Ctrl-C while downloads run
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml")


def sniff_audio(head: bytes, content_type: str) -> str | None:
    """None when the body's first bytes (and its Content-Type) look like an mp3, else why not
    (a first look: the whole body is then checked frame by frame)."""
    ctype = content_type.split(";", maxsplit=1)[0].strip().lower()
    if ctype.startswith(_TEXT_TYPES):
        return f"Content-Type is {ctype}, not audio"
    if starts_like_mp3(head):
        return None
    if looks_like_text(head, any_tag=True):
        return "body looks like HTML/XML, not audio"
    return "body has neither an ID3 tag nor an MPEG frame sync"


@dataclass(frozen=True)
class ScrapeConfig:
    dest: str
    genre: str | None = None
    chart: str | None = None
    search: str | None = None
    base_url: str = DEFAULT_BASE_URL  # may carry user:password@, sent to its origin only
    limit: int = 20
    batch_size: int = 20
    pause: float = 30.0
    min_delay: float = 1.0
    concurrency: int = 2
    max_bytes: int = DEFAULT_MAX_BYTES
    retries: int = 5
    backoff: float = 1.0
    timeout: float = 60.0  # connecting, and each wait for bytes
    deadline: float = 300.0  # one request (robots.txt, a page, a file), redirects included
    page_size: int = 20
    retry_failed: bool = False  # retry tracks an earlier run found to be permanently bad
    # hosts (HOST or HOST:PORT) besides the base URL's (and its subdomains) pages may send us to
    allow_hosts: tuple[str, ...] = ()
    allow_private: bool = False  # connections may reach loopback/private/link-local addresses
    proxy: str | None = None  # the one proxy (the environment's are ignored)
    max_pages: int | None = None  # listing pages per run (None: see page_budget)
    max_failures: int | None = None  # failed tracks per run (None: 100 or limit / 10)
    max_consecutive_failures: int = 20
    max_crawl_delay: float = 60.0
    s3_endpoint: str | None = None  # --s3-endpoint: over the environment and conf/storage.toml

    def first_url(self) -> str:
        return listing_url(
            split_credentials(self.base_url)[0],
            genre=self.genre,
            chart=self.chart,
            search=self.search,
            page_size=self.page_size,
        )

    @property
    def page_budget(self) -> int:
        if self.max_pages is not None:
            return self.max_pages
        # (charts and searches have 20 a page whatever --page-size says, and a site may give
        # fewer than asked: count no more than 20)
        return 10 + 3 * math.ceil(self.limit / max(1, min(self.page_size, 20)))

    @property
    def failure_budget(self) -> int:
        return self.max_failures if self.max_failures is not None else max(100, self.limit // 10)


@dataclass
class ScrapeSummary:
    wanted: int
    downloaded: int = 0
    skipped: int = 0
    failed: int = 0
    rejected: int = 0  # play-items without a usable id
    known_bad: int = 0  # failed for good in an earlier run (not audio, disallowed, ...)
    pages: int = 0
    nbytes: int = 0
    requests: int = 0
    seconds: float = 0.0
    listing_error: str | None = None  # why the run stopped before the listing's end
    interrupted: bool = False  # Ctrl-C
    failures: list[tuple[str, str]] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)
    consecutive_failures: int = 0

    @property
    def present(self) -> int:
        return self.downloaded + self.skipped

    @property
    def complete(self) -> bool:
        """What was asked for is present: ``wanted`` tracks, or every track the listing had
        (it ended without an error and no candidate failed). Skipped bad candidates on the way
        to ``wanted`` do not count against it."""
        if self.present >= self.wanted:
            return True
        return self.listing_error is None and self.failed == 0 and not self.interrupted

    def text(self) -> str:
        """The summary for a terminal: URLs redacted, site text escaped."""
        lines = [
            f"scrape: {self.present}/{self.wanted} tracks present: {self.downloaded} downloaded "
            f"({human_bytes(self.nbytes)}), {self.skipped} already complete; {self.failed} "
            f"failed, {self.known_bad} known bad, {self.rejected} rejected listing items; "
            f"{self.pages} listing pages, {self.requests} requests in {self.seconds:.1f}s"
        ]
        lines += [f"  failed {tid}: {why}" for tid, why in self.failures[:SHOWN]]
        lines += [f"  rejected listing item: {why}" for why in self.rejections[:SHOWN]]
        hidden = max(0, len(self.failures) - SHOWN) + max(0, len(self.rejections) - SHOWN)
        if hidden:
            lines.append(f"  ... and {hidden} more (failed tracks: see _tracks.jsonl)")
        if self.listing_error:
            lines.append(f"  listing stopped: {self.listing_error}")
        if self.interrupted:
            lines.append("  interrupted: the tracks that finished are recorded; rerun to resume")
        if not self.complete:
            why = "the listing stopped" if self.listing_error else "candidates failed"
            why = "interrupted" if self.interrupted else why
            lines.append(f"  missing: {self.wanted - self.present} of the {self.wanted} tracks "
                         f"asked for ({why}; rerun to retry)")  # fmt: skip
        elif self.present < self.wanted:
            lines.append(f"  the listing had {self.present} tracks, fewer than the {self.wanted} "
                         "asked for: all are present")  # fmt: skip
        return "\n".join(printable(redact_text(line)) for line in lines)


class _Run:
    def __init__(
        self, config: ScrapeConfig, client: HttpClient, dest: Destination, policy: SitePolicy
    ) -> None:
        self.config = config
        self.client = client
        self.dest = dest
        self.policy = policy
        self.robots = Robots(client, max_crawl_delay=config.max_crawl_delay)
        client.veto = self.veto
        client.address_ok = policy.address_ok
        self.tracks = TrackLog(dest)
        delay = self.robots.crawl_delay(policy.origin)
        if delay is not None and delay > client.throttle.min_delay:
            log.info("robots.txt asks for a crawl delay of %gs", delay)
            client.throttle.min_delay = delay

    def veto(self, target: Target, robots_txt: bool) -> tuple[str, str] | None:
        """Refuse what a hostile page must not point us to: credentials in a URL, another
        origin, and (but for robots.txt itself) what robots.txt disallows."""
        if target.userinfo:
            return "bad_url", f"{target.url}: a URL with user@ is not fetched"
        refused = self.policy.refusal(target)
        if refused is not None:
            return "host_not_allowed", refused
        if not robots_txt and not self.robots.allowed(target.origin, target.url):
            return "robots_disallowed", f"robots.txt disallows {target.url}"
        return None

    def listings(self, summary: ScrapeSummary) -> Iterator[TrackInfo]:
        """New tracks from the listing pages, in order; stops after 3 pages with none new, or
        at the page budget."""
        url: str | None = self.config.first_url()
        seen: set[str] = set()
        ids: set[int] = set()
        barren = 0
        while url and url not in seen and barren < 3:
            if summary.pages >= self.config.page_budget:
                summary.listing_error = f"{summary.pages} listing pages read (--max-pages)"
                return
            seen.add(url)
            try:
                page = self.client.get_page(url)
                listing = parse_listing(page.text, page.url, self.config.genre)
            except FetchError as exc:
                if exc.reason == "cancelled":  # (a Ctrl-C: see fmaprep.acquire.interrupt)
                    raise KeyboardInterrupt from exc
                log.error("listing page %s failed: %s", url, exc)
                summary.listing_error = str(exc)
                return
            except RecursionError:  # markup nested beyond what the parser can walk
                summary.listing_error = f"{url}: the page is nested too deeply to parse"
                return
            summary.pages += 1
            summary.rejected += len(listing.rejected)
            summary.rejections += listing.rejected
            new = [t for t in listing.tracks if t.id not in ids]
            ids.update(t.id for t in new)
            barren = 0 if new else barren + 1
            yield from new
            url = listing.next_url

    def resolve(self, track: TrackInfo) -> tuple[TrackInfo, str | None]:
        """The track with its mp3 URL: ``fileUrl``, else the track page's, else playbackUrl."""
        if track.file_url:
            return track, track.file_url
        if track.page_url:
            try:
                page = self.client.get_page(track.page_url)
            except FetchError as exc:
                if exc.reason == "cancelled":
                    raise
                log.warning("track page of %s failed: %s", track.id6, exc)
            else:
                found = parse_track_page(page.text, page.url, track.id)
                if found is not None and found.file_url:
                    merged = replace(
                        track,
                        file_url=found.file_url,
                        title=track.title or found.title,
                        artist=track.artist or found.artist,
                        album=track.album or found.album,
                    )
                    return merged, found.file_url
        return track, track.playback_url

    def fetch(self, track: TrackInfo) -> dict[str, Any]:
        """Download one track; returns its ``_tracks.jsonl`` line (status ok or error)."""
        meta = {"title": track.title, "artist": track.artist, "album": track.album}
        meta |= {"genre": track.genre, "source": "scrape"}
        try:
            track, url = self.resolve(track)
            if url is None:
                raise FetchError("no_url", "no fileUrl, track page or playbackUrl")
            with self.dest.writer(track_path(track.id)) as writer:
                frames = FrameCheck()

                def write(chunk: bytes) -> None:
                    frames.feed(chunk)
                    hopeless = frames.hopeless()
                    if hopeless is not None:
                        raise FetchError("not_audio", f"{url}: {hopeless}")
                    writer.write(chunk)

                def restart() -> None:
                    nonlocal frames
                    frames = FrameCheck()
                    writer.restart()

                got = self.client.download(
                    url,
                    write,
                    restart=restart,
                    max_bytes=self.config.max_bytes,
                    check_head=sniff_audio,
                )
                problem = frames.problem()
                if problem is not None:
                    reason = "truncated" if problem.startswith("cut short") else "not_audio"
                    raise FetchError(reason, f"{got.url}: {problem}")
                writer.commit()
        except FetchError as exc:
            log.warning("track %s failed: %s", track.id6, exc)
            return make_line(track.id, urls=track.urls(), status="error", error=str(exc), **meta)
        except Exception as exc:  # a bad track is a line, never a crashed run
            log.exception("track %s failed", track.id6)
            error = f"{type(exc).__name__}: {exc}"
            return make_line(track.id, urls=track.urls(), status="error", error=error, **meta)
        urls = track.urls() | {"final": got.url}
        return make_line(
            track.id, urls=urls, bytes=writer.size, sha1=writer.sha1, status="ok", **meta
        )


def _make_client(config: ScrapeConfig, progress: Progress) -> HttpClient:
    throttle = Throttle(config.min_delay, config.batch_size, config.pause, on_pause=progress.pause)
    return HttpClient(
        throttle,
        retries=config.retries,
        backoff=config.backoff,
        timeout=config.timeout,
        deadline=config.deadline,
        ambient=False,  # no .netrc, no *_PROXY, no credentials from the environment
        proxy=config.proxy,
    )


def _record(run: _Run, line: dict[str, Any], summary: ScrapeSummary, progress: Progress) -> None:
    if line["status"] == "ok":
        run.tracks.append(line)
        summary.downloaded += 1
        summary.nbytes += line["bytes"]
        summary.consecutive_failures = 0
        progress.add(tracks=1, nbytes=line["bytes"])
    elif not str(line["error"]).startswith("cancelled"):  # (an interrupted one is no verdict)
        run.tracks.append(line)
        summary.failed += 1
        summary.consecutive_failures += 1
        summary.failures.append((line["id"], line["error"]))
        progress.add(failed=1)


def _settle(
    run: _Run,
    pending: dict[Future[dict[str, Any]], TrackInfo],
    summary: ScrapeSummary,
    progress: Progress,
    timeout: float | None = None,
) -> None:
    """Wait for at least one pending download (or ``timeout``) and record what finished.
    (Recorded, then dropped from ``pending``: a Ctrl-C in between leaves it for :func:`_stop`.)"""
    done, _ = wait(list(pending), timeout=timeout, return_when=FIRST_COMPLETED)
    for future in done:
        _record(run, future.result(), summary, progress)
        pending.pop(future)


def _must_wait(config: ScrapeConfig, in_flight: int, summary: ScrapeSummary) -> bool:
    """Never more than ``concurrency`` downloads in flight, nor more than the limit could still
    use, nor more than the failure budgets could still absorb (they stop the run exactly)."""
    return (
        in_flight >= config.concurrency
        or summary.present + in_flight >= config.limit
        or summary.failed + in_flight >= config.failure_budget
        or summary.consecutive_failures + in_flight >= config.max_consecutive_failures
    )


def _over_budget(config: ScrapeConfig, summary: ScrapeSummary) -> str | None:
    if summary.failed >= config.failure_budget:
        return f"{summary.failed} tracks failed (--max-failures)"
    if summary.consecutive_failures >= config.max_consecutive_failures:
        return f"{summary.consecutive_failures} tracks in a row failed (--max-consecutive-failures)"
    return None


def _start(
    fetch: Callable[[TrackInfo], dict[str, Any]], track: TrackInfo
) -> Future[dict[str, Any]]:
    """Download ``track`` on a thread of its own (``_drive`` keeps at most ``concurrency`` in
    flight). A daemon thread, unlike a ThreadPoolExecutor's: after a Ctrl-C the process exits
    without joining a download that has not noticed the cancel yet (a DNS lookup, a TLS
    handshake, a slow storage write)."""
    future: Future[dict[str, Any]] = Future()

    def work() -> None:
        future.set_running_or_notify_cancel()
        try:
            future.set_result(fetch(track))
        except BaseException as exc:  # (fetch makes every failure a line; this is a bug)
            future.set_exception(exc)

    threading.Thread(target=work, name=f"fmaprep-scrape-{track.id6}", daemon=True).start()
    return future


def _drive(
    run: _Run,
    pending: dict[Future[dict[str, Any]], TrackInfo],
    summary: ScrapeSummary,
    progress: Progress,
) -> None:
    for track in run.listings(summary):
        _check_interrupt(run)
        if run.tracks.is_complete(track.id):
            summary.skipped += 1
            progress.add(skipped=1)
        elif not run.config.retry_failed and run.tracks.failed_for_good(track.id):
            summary.known_bad += 1
            log.info("track %s failed for good in an earlier run; skipped", track.id6)
        else:
            pending[_start(run.fetch, track)] = track
        while pending and _must_wait(run.config, len(pending), summary):
            _settle(run, pending, summary, progress, timeout=POLL)
            _check_interrupt(run)
        if summary.present >= run.config.limit:
            break
        stop = _over_budget(run.config, summary)
        if stop is not None:
            summary.listing_error = stop
            break
    while pending:
        _settle(run, pending, summary, progress, timeout=POLL)
        _check_interrupt(run)
    _check_interrupt(run)


def _check_interrupt(run: _Run) -> None:
    """Stop here when a Ctrl-C cancelled the run (the main thread's own point to stop at)."""
    if run.client.throttle.cancelled:
        raise KeyboardInterrupt


def _stop(
    run: _Run | None,
    client: HttpClient,
    pending: dict[Future[dict[str, Any]], TrackInfo],
    summary: ScrapeSummary,
    progress: Progress,
) -> None:
    """After a Ctrl-C: cut every request in flight, and record the downloads that finished
    (before or while being cut) so that a rerun does not fetch them again."""
    client.cancel()
    deadline = time.monotonic() + 5.0
    while pending and run is not None and time.monotonic() < deadline:
        _settle(run, pending, summary, progress, timeout=max(0.0, deadline - time.monotonic()))


def scrape(
    config: ScrapeConfig,
    *,
    client: HttpClient | None = None,
    dest: Destination | None = None,
    progress: Progress | None = None,
) -> ScrapeSummary:
    """Scrape ``config.limit`` tracks into ``config.dest``; see the module docstring. A Ctrl-C
    returns the summary so far with ``interrupted`` set (a second one raises)."""
    if config.limit < 1 or config.concurrency < 1:
        raise ValueError("limit and concurrency must be >= 1")
    started = time.monotonic()
    base_url, credentials = split_credentials(config.base_url)
    policy = SitePolicy(base_url, config.allow_hosts, config.allow_private)
    progress = progress or Progress(config.limit)
    own_client = client is None
    client = client or _make_client(config, progress)
    if credentials is not None:
        client.credentials = (policy.origin, *credentials)
    summary = ScrapeSummary(wanted=config.limit)
    pending: dict[Future[dict[str, Any]], TrackInfo] = {}
    run: _Run | None = None
    try:
        with CtrlC(client.cancel):
            dest = _writable(dest or config.dest, config.s3_endpoint)
            run = _Run(config, client, dest, policy)
            _drive(run, pending, summary, progress)
    except KeyboardInterrupt:
        summary.interrupted = True
        _stop(run, client, pending, summary, progress)
    except BaseException:
        client.cancel()
        wait(list(pending), timeout=5.0)  # (cut: they end at once, unless stuck elsewhere)
        raise
    finally:
        if run is not None:
            run.tracks.close()  # S3/HDFS: the batches of lines merged into _tracks.jsonl
        progress.close()
        summary.requests = client.requests_made
        summary.seconds = time.monotonic() - started
        if own_client:
            client.close()
    return summary


def _writable(dest: Destination | str, s3_endpoint: str | None) -> Destination:
    """The destination, its earlier run's staging leftovers dropped; found out now (not after
    the first download) when it cannot be written (an existing file, no permission)."""
    try:
        if isinstance(dest, str):
            opened = open_destination(dest, StoreSettings.from_env(endpoint=s3_endpoint))
        else:
            opened = dest
        opened.cleanup()
        opened.local_tmp_dir()
    except OSError as exc:
        raise DestinationError(f"{dest if isinstance(dest, str) else dest.uri}: cannot write "
                               f"there ({exc.strerror or exc})") from exc  # fmt: skip
    return opened
