"""The scraper: walk a genre / chart / search listing of the FMA website and download its mp3s
politely (see :mod:`fmaprep.acquire.http`), resumably (tracks already complete at the
destination are skipped) and safely (ids name files, bodies must look like mp3).

``limit`` counts the tracks present at the destination at the end of the run, downloaded now or
already there: a rerun with the same arguments downloads nothing, and a run that was stopped
continues where it stopped.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from fmaprep.acquire.destination import Destination
from fmaprep.acquire.http import FetchError, HttpClient, Throttle
from fmaprep.acquire.progress import Progress, human_bytes
from fmaprep.acquire.robots import Robots
from fmaprep.acquire.site import TrackInfo, listing_url, parse_listing, parse_track_page
from fmaprep.acquire.targets import open_destination
from fmaprep.acquire.tracklog import TrackLog
from fmaprep.audio.sniff import looks_like_text, starts_like_mp3
from fmaprep.model import track_path
from fmaprep.redaction import redact_text
from fmaprep.tracks import make_line

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://freemusicarchive.org"
DEFAULT_MAX_BYTES = 200 * 1024 * 1024
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml")


def sniff_audio(head: bytes, content_type: str) -> str | None:
    """None when the body's first bytes (and its Content-Type) look like an mp3, else why not."""
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
    base_url: str = DEFAULT_BASE_URL
    limit: int = 20
    batch_size: int = 20
    pause: float = 30.0
    min_delay: float = 1.0
    concurrency: int = 2
    max_bytes: int = DEFAULT_MAX_BYTES
    retries: int = 5
    backoff: float = 1.0
    timeout: float = 60.0
    page_size: int = 20
    retry_failed: bool = False  # retry tracks an earlier run found to be permanently bad
    # hosts besides the base URL's (and its subdomains) that pages may send us to
    allow_hosts: tuple[str, ...] = ()

    def first_url(self) -> str:
        return listing_url(
            self.base_url,
            genre=self.genre,
            chart=self.chart,
            search=self.search,
            page_size=self.page_size,
        )


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
    listing_error: str | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)

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
        return self.listing_error is None and self.failed == 0

    def text(self) -> str:
        lines = [
            f"scrape: {self.present}/{self.wanted} tracks present: {self.downloaded} downloaded "
            f"({human_bytes(self.nbytes)}), {self.skipped} already complete; {self.failed} "
            f"failed, {self.known_bad} known bad, {self.rejected} rejected listing items; "
            f"{self.pages} listing pages, {self.requests} requests in {self.seconds:.1f}s"
        ]
        lines += [f"  failed {tid}: {redact_text(why)}" for tid, why in self.failures]
        if self.listing_error:
            lines.append(f"  listing stopped: {self.listing_error}")
        if not self.complete:
            why = "the listing stopped" if self.listing_error else "candidates failed"
            lines.append(f"  missing: {self.wanted - self.present} of the {self.wanted} tracks "
                         f"asked for ({why}; rerun to retry)")  # fmt: skip
        elif self.present < self.wanted:
            lines.append(f"  the listing had {self.present} tracks, fewer than the {self.wanted} "
                         "asked for: all are present")  # fmt: skip
        return "\n".join(lines)


class _Run:
    def __init__(self, config: ScrapeConfig, client: HttpClient, dest: Destination) -> None:
        self.config = config
        self.client = client
        self.dest = dest
        self.robots = Robots(client)
        client.veto = self.veto
        base = (urlsplit(config.base_url).hostname or "").lower()
        self._base_host = base
        self._base_domain = base.removeprefix("www.")
        self.tracks = TrackLog(dest)
        delay = self.robots.crawl_delay(config.first_url())
        if delay is not None and delay > client.throttle.min_delay:
            log.info("robots.txt asks for a crawl delay of %gs", delay)
            client.throttle.min_delay = delay

    def veto(self, url: str) -> tuple[str, str] | None:
        """Refuse URLs on foreign hosts (a hostile page must not point us anywhere it likes)
        and URLs robots.txt disallows for us."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not (
            host in (self._base_host, self._base_domain)
            or host.endswith("." + self._base_domain)
            or host in self.config.allow_hosts
        ):
            return "host_not_allowed", f"{url}: host {host!r} is not {self._base_host!r}"
        if parts.path != "/robots.txt" and not self.robots.allowed(url):
            return "robots_disallowed", f"robots.txt disallows {url}"
        return None

    def listings(self, summary: ScrapeSummary) -> Any:
        """New tracks from the listing pages, in order; stops after 3 pages with none new."""
        url: str | None = self.config.first_url()
        seen: set[str] = set()
        ids: set[int] = set()
        barren = 0
        while url and url not in seen and barren < 3:
            seen.add(url)
            try:
                page = self.client.get_page(url)
            except FetchError as exc:
                log.error("listing page %s failed: %s", url, exc)
                summary.listing_error = str(exc)
                return
            summary.pages += 1
            listing = parse_listing(page.text, page.url, self.config.genre)
            summary.rejected += len(listing.rejected)
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
                got = self.client.download(
                    url,
                    writer.write,
                    restart=writer.restart,
                    max_bytes=self.config.max_bytes,
                    check_head=sniff_audio,
                )
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
            track.id, urls=urls, bytes=writer.nbytes, sha1=writer.sha1, status="ok", **meta
        )


def _make_client(config: ScrapeConfig, progress: Progress) -> HttpClient:
    throttle = Throttle(config.min_delay, config.batch_size, config.pause, on_pause=progress.pause)
    return HttpClient(
        throttle, retries=config.retries, backoff=config.backoff, timeout=config.timeout
    )


def _settle(
    run: _Run,
    pending: dict[Future[dict[str, Any]], TrackInfo],
    summary: ScrapeSummary,
    progress: Progress,
) -> None:
    """Wait for at least one pending download and record what finished."""
    done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
    for future in done:
        pending.pop(future)
        line = future.result()
        run.tracks.append(line)
        if line["status"] == "ok":
            summary.downloaded += 1
            summary.nbytes += line["bytes"]
            progress.add(tracks=1, nbytes=line["bytes"])
        else:
            summary.failed += 1
            summary.failures.append((line["id"], line["error"]))
            progress.add(failed=1)


def _drive(run: _Run, pool: ThreadPoolExecutor, summary: ScrapeSummary, progress: Progress) -> None:
    limit, concurrency = run.config.limit, run.config.concurrency
    pending: dict[Future[dict[str, Any]], TrackInfo] = {}
    for track in run.listings(summary):
        if run.tracks.is_complete(track.id):
            summary.skipped += 1
            progress.add(skipped=1)
        elif not run.config.retry_failed and run.tracks.failed_for_good(track.id):
            summary.known_bad += 1
            log.info("track %s failed for good in an earlier run; skipped", track.id6)
        else:
            pending[pool.submit(run.fetch, track)] = track
        # never more than `concurrency` in flight, nor more than the limit could still use
        while pending and (len(pending) >= concurrency or summary.present + len(pending) >= limit):
            _settle(run, pending, summary, progress)
        if summary.present >= limit:
            break
    while pending:
        _settle(run, pending, summary, progress)


def scrape(
    config: ScrapeConfig,
    *,
    client: HttpClient | None = None,
    dest: Destination | None = None,
    progress: Progress | None = None,
) -> ScrapeSummary:
    """Scrape ``config.limit`` tracks into ``config.dest``; see the module docstring."""
    if config.limit < 1 or config.concurrency < 1:
        raise ValueError("limit and concurrency must be >= 1")
    started = time.monotonic()
    progress = progress or Progress(config.limit)
    own_client = client is None
    client = client or _make_client(config, progress)
    dest = dest or open_destination(config.dest)
    dest.cleanup()
    run = _Run(config, client, dest)
    summary = ScrapeSummary(wanted=config.limit)
    pool = ThreadPoolExecutor(config.concurrency, thread_name_prefix="fmaprep-scrape")
    try:
        _drive(run, pool, summary, progress)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        run.tracks.close()  # S3/HDFS: the batches of lines merged into _tracks.jsonl
        progress.close()
        summary.requests = client.requests_made
        summary.seconds = time.monotonic() - started
        if own_client:
            client.close()
    return summary
