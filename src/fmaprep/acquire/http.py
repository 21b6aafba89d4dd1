"""A polite HTTP client: honest User-Agent, a minimum delay between requests, a batch-then-pause
throttle for downloads, bounded retries with exponential backoff and jitter (connection errors,
429 and 5xx, honouring ``Retry-After``), and redirects followed by hand, only to http(s).

The transport (a :class:`requests.Session`), the clock, the sleep and the random source are
injectable, so unit tests run without real waiting.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests

from fmaprep import __version__

log = logging.getLogger(__name__)

USER_AGENT = f"fmaprep/{__version__} (+https://github.com/fmaprep/fmaprep)"
ROBOTS_AGENT = "fmaprep"  # the product token robots.txt rules are matched against
MAX_REDIRECTS = 5
CHUNK = 64 * 1024
MAX_PAGE_BYTES = 16 * 1024 * 1024  # a listing or track page, or robots.txt


class FetchError(Exception):
    """A request failed for good; ``reason`` is a short code for logs and ``_tracks.jsonl``."""

    def __init__(self, reason: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.status = status


class Throttle:
    """Spaces request starts by ``min_delay`` (across all threads) and, after every
    ``batch_size`` download requests, holds every further request for ``pause`` seconds.
    ``hold(seconds)`` lets a 429's Retry-After stop everyone, not only the thread that saw it."""

    def __init__(
        self,
        min_delay: float = 1.0,
        batch_size: int = 20,
        pause: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_pause: Callable[[float], None] | None = None,
    ) -> None:
        if min_delay < 0 or pause < 0 or batch_size < 1:
            raise ValueError("min_delay and pause must be >= 0 and batch_size >= 1")
        self.min_delay = min_delay
        self.batch_size = batch_size
        self.pause = pause
        self._clock = clock
        self._sleep = sleep
        self._on_pause = on_pause
        self._lock = threading.Lock()  # guards the counters (hold() takes only this one)
        self._start_lock = threading.Lock()  # serialises request starts
        self._next_start = 0.0  # clock time before which no request may start
        self._in_batch = 0  # download requests started in the current batch

    def before_request(self, download: bool = False) -> None:
        """Block until this request may start. Starts are serialised: the lock is held while
        waiting, and the next start is counted from when this one actually woke up, so
        threads woken late by the scheduler cannot bunch their requests together."""
        with self._start_lock:
            with self._lock:
                now = self._clock()
                pause = 0.0
                if download:
                    if self._in_batch >= self.batch_size:
                        self._in_batch = 0
                        pause = self.pause
                        self._next_start = max(self._next_start, now + self.pause)
                    self._in_batch += 1
                wait = self._next_start - now
            if pause and self._on_pause is not None:
                self._on_pause(pause)
            while wait > 0:  # hold() may move _next_start while we sleep
                self._sleep(wait)
                with self._lock:
                    wait = self._next_start - self._clock()
            with self._lock:
                self._next_start = self._clock() + self.min_delay

    def hold(self, seconds: float) -> None:
        """No request starts within ``seconds`` from now (e.g. the server said Retry-After)."""
        with self._lock:
            self._next_start = max(self._next_start, self._clock() + seconds)
        if self._on_pause is not None:
            self._on_pause(seconds)


@dataclass(frozen=True)
class Page:
    url: str  # the final URL, after redirects
    status: int
    text: str
    content_type: str


@dataclass(frozen=True)
class Download:
    url: str  # the final URL, after redirects
    content_type: str
    nbytes: int


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _is_web_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


class HttpClient:
    """GET pages and stream downloads through one throttle, with bounded retries."""

    def __init__(
        self,
        throttle: Throttle | None = None,
        *,
        retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 120.0,
        timeout: float = 60.0,
        transport: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        user_agent: str = USER_AGENT,
    ) -> None:
        if retries < 1:
            raise ValueError("retries counts attempts and must be >= 1")
        self.throttle = throttle or Throttle()
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.user_agent = user_agent
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._session = transport or requests.Session()
        self._session.headers["User-Agent"] = user_agent
        self.requests_made = 0
        # asked about every URL before it is requested, redirect targets included: returns
        # (reason, message) to refuse it (the scraper checks hosts and robots.txt here)
        self.veto: Callable[[str], tuple[str, str] | None] | None = None

    def close(self) -> None:
        self._session.close()

    # -- one request, redirects followed by hand --------------------------------------------
    def _open(
        self, url: str, *, download: bool, stream: bool, headers: dict[str, str] | None = None
    ) -> requests.Response:
        for _ in range(MAX_REDIRECTS + 1):
            if not _is_web_url(url):
                raise FetchError("bad_url", f"refusing non-http(s) URL {url!r}")
            refused = self.veto(url) if self.veto is not None else None
            if refused is not None:
                raise FetchError(*refused)
            self.throttle.before_request(download=download)
            self.requests_made += 1
            response = self._session.get(
                url, stream=stream, allow_redirects=False, timeout=self.timeout, headers=headers
            )
            if response.is_redirect:
                location = response.headers.get("Location", "")
                response.close()
                url = urljoin(url, location)
                log.debug("redirect to %s", url)
                continue
            return response
        raise FetchError("redirects", f"more than {MAX_REDIRECTS} redirects from {url}")

    def pause_before_retry(self, attempt: int, retry_after: float | None = None) -> None:
        self._wait_before_retry(attempt, retry_after)

    def _wait_before_retry(self, attempt: int, retry_after: float | None) -> None:
        delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        delay *= 0.5 + self._rng.random()  # jitter: 0.5x .. 1.5x
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_backoff))
            self.throttle.hold(min(retry_after, self.max_backoff))
        self._sleep(delay)

    def _attempts(self, url: str, what: Callable[[int], object]) -> object:
        """Run ``what(attempt)`` until it returns, retrying transient failures."""
        for attempt in range(1, self.retries + 1):
            retry_after: float | None = None
            try:
                return what(attempt)
            except TRANSIENT as exc:
                problem, retry_after = describe(exc), getattr(exc, "retry_after", None)
            if attempt == self.retries:
                raise FetchError("retries_exhausted", f"{url}: {problem}")
            log.warning(
                "attempt %d of %d for %s failed (%s); retrying", attempt, self.retries, url, problem
            )
            self._wait_before_retry(attempt, retry_after)
        raise AssertionError("unreachable")

    @staticmethod
    def _check_status(response: requests.Response, url: str) -> None:
        status = response.status_code
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            response.close()
            raise RetryableError(f"HTTP {status}", retry_after)
        if status >= 400:
            response.close()
            raise FetchError(f"http_{status}", f"{url} answered HTTP {status}", status)

    # -- public API -----------------------------------------------------------------------
    def open_download(self, url: str, headers: dict[str, str]) -> requests.Response:
        """One streamed GET of a download with extra request headers (a Range), redirects
        followed and vetted; a 429/5xx raises for the caller's own retry loop, and so does a
        4xx other than 416 (whose meaning only the caller knows)."""
        response = self._open(url, download=True, stream=True, headers=headers)
        if response.status_code != 416:
            self._check_status(response, url)
        return response

    def get_page(self, url: str, *, ok_statuses: frozenset[int] = frozenset()) -> Page:
        """GET a page (not counted as a download). Statuses in ``ok_statuses`` are returned
        instead of raised (robots.txt wants to see its 404)."""

        def once(attempt: int) -> Page:
            response = self._open(url, download=False, stream=True)
            if response.status_code not in ok_statuses:
                self._check_status(response, url)
            body = bytearray()
            try:
                for chunk in response.iter_content(CHUNK):
                    body += chunk
                    if len(body) > MAX_PAGE_BYTES:
                        raise FetchError("too_large", f"{url}: page over {MAX_PAGE_BYTES} bytes")
            except requests.exceptions.ChunkedEncodingError as exc:
                raise RetryableError(f"page cut short: {exc}", None) from exc
            finally:
                response.close()
            content_type = response.headers.get("Content-Type", "")
            declared = "charset=" in content_type.lower() and response.encoding
            encoding = declared or "utf-8"  # (not requests' ISO-8859-1 default for text/*)
            try:
                text = bytes(body).decode(encoding, errors="replace")
            except LookupError:  # a charset Python does not know
                text = bytes(body).decode("utf-8", errors="replace")
            return Page(
                url=response.url or url,
                status=response.status_code,
                text=text,
                content_type=content_type,
            )

        result = self._attempts(url, once)
        assert isinstance(result, Page)
        return result

    def download(
        self,
        url: str,
        write: Callable[[bytes], None],
        *,
        restart: Callable[[], None],
        max_bytes: int | None = None,
        check_head: Callable[[bytes, str], str | None] | None = None,
        head_size: int = 16,
    ) -> Download:
        """Stream ``url`` into ``write``. Each attempt starts with ``restart()`` (the sink must
        drop what an earlier, failed attempt wrote). ``check_head(first_bytes, content_type)``
        returns a reason to reject the body (e.g. HTML instead of audio) or None."""

        def once(attempt: int) -> Download:
            response = self._open(url, download=True, stream=True)
            self._check_status(response, url)
            content_type = response.headers.get("Content-Type", "")
            length = response.headers.get("Content-Length")
            try:
                if (
                    max_bytes is not None
                    and length
                    and length.isdigit()
                    and int(length) > max_bytes
                ):
                    raise FetchError("too_large", f"{url}: {length} bytes > {max_bytes}")
                restart()
                head = b""
                checked = check_head is None
                total = 0
                for chunk in response.iter_content(CHUNK):
                    total += len(chunk)
                    if max_bytes is not None and total > max_bytes:
                        raise FetchError("too_large", f"{url}: more than {max_bytes} bytes")
                    if checked:
                        write(chunk)
                        continue
                    head += chunk
                    if len(head) >= head_size:
                        _run_check(check_head, head, content_type, url)
                        write(head)
                        head, checked = b"", True
                if not checked:  # a body shorter than head_size
                    _run_check(check_head, head, content_type, url)
                    write(head)
            except requests.exceptions.ChunkedEncodingError as exc:  # truncated body
                raise RetryableError(f"body cut short: {exc}", None) from exc
            finally:
                response.close()
            return Download(url=response.url or url, content_type=content_type, nbytes=total)

        result = self._attempts(url, once)
        assert isinstance(result, Download)
        return result


def _run_check(
    check: Callable[[bytes, str], str | None] | None, head: bytes, content_type: str, url: str
) -> None:
    if check is None:
        return
    problem = check(head, content_type)
    if problem is not None:
        raise FetchError("not_audio", f"{url}: {problem}")


class RetryableError(Exception):
    """A transient failure: 429, 5xx, a cut-short body."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# what a retry may cure: a 429/5xx or cut body, a refused or dropped connection, a timeout
TRANSIENT = (
    RetryableError,
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


def describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, RetryableError) else f"{type(exc).__name__}: {exc}"


class ResumeBudget:
    """Bounded retries for a transfer that resumes where it stopped: an attempt that brought
    bytes is not a failure (five drops of an 880 GB transfer are not five failures);
    ``client.retries`` attempts in a row without a byte end it."""

    def __init__(self, client: HttpClient, url: str) -> None:
        self.client, self.url = client, url
        self.idle = 0

    def failed(self, exc: BaseException, progressed: bool, where: str) -> None:
        """After a transient failure: raise once the budget is spent, else log and back off."""
        self.idle = 0 if progressed else self.idle + 1
        if self.idle >= self.client.retries:
            raise FetchError("retries_exhausted", f"{self.url}: {describe(exc)}") from exc
        log.warning("%s: stopped at %s (%s); resuming (attempts without progress: %d of %d)",
                    self.url, where, describe(exc), self.idle, self.client.retries)  # fmt: skip
        if self.idle:
            self.client.pause_before_retry(self.idle, getattr(exc, "retry_after", None))
