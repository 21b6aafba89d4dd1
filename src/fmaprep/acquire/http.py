"""A polite HTTP client: honest User-Agent, a minimum delay between requests, a batch-then-pause
throttle for downloads, bounded retries (connection errors, 429 and 5xx) by the one retry policy
of :mod:`fmaprep.storage.retrying` (``Retry-After`` honoured, the throttle in front of every
attempt), and redirects followed by hand, each hop checked.

Every hop is checked on the URL as it will be sent: the request is prepared first, and the
scheme, host and port are read from the prepared URL the way requests' adapter reads them to
open the connection (so ``http://a\\@b/`` cannot show one host to the check and connect to
another); ``\\``, whitespace and control characters are refused outright. With a ``deadline``,
each attempt has a wall-clock budget that a server trickling bytes cannot stretch (see
:mod:`fmaprep.acquire.watch`), and :meth:`HttpClient.cancel` ends every request in flight.

The transport (a :class:`requests.Session`), the clock, the sleep and the random source are
injectable, so unit tests run without real waiting.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

import requests

from fmaprep import __version__
from fmaprep.acquire.watch import AddressRefused, Cut, Watch, WatchedAdapter, sending
from fmaprep.storage.retrying import RetryBudget, RetryPolicy

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
        sleep: Callable[[float], object] | None = None,
        on_pause: Callable[[float], None] | None = None,
    ) -> None:
        if min_delay < 0 or pause < 0 or batch_size < 1:
            raise ValueError("min_delay and pause must be >= 0 and batch_size >= 1")
        self.min_delay = min_delay
        self.batch_size = batch_size
        self.pause = pause
        self._clock = clock
        self._cancelled = threading.Event()
        self._sleep = sleep or self.wait  # the default sleep ends early on cancel()
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
                self._check_cancelled()
                self._sleep(wait)
                with self._lock:
                    wait = self._next_start - self._clock()
            self._check_cancelled()
            with self._lock:
                self._next_start = self._clock() + self.min_delay

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when the run is cancelled meanwhile."""
        self._cancelled.wait(seconds)

    def cancel(self) -> None:
        """No request starts any more (a Ctrl-C): waiting ones raise ``FetchError("cancelled")``."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def _check_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise FetchError("cancelled", "the run was interrupted")

    def hold(self, seconds: float) -> None:
        """No request starts within ``seconds`` from now (e.g. the server said Retry-After)."""
        with self._lock:
            self._next_start = max(self._next_start, self._clock() + seconds)
        if self._on_pause is not None:
            self._on_pause(seconds)


@dataclass(frozen=True)
class Page:
    url: str  # the final URL, after redirects, as it was sent
    status: int
    text: str
    content_type: str


@dataclass(frozen=True)
class Download:
    url: str  # the final URL, after redirects, as it was sent
    content_type: str
    nbytes: int


@dataclass(frozen=True)
class Target:
    """Where one request goes: its prepared URL, and the scheme, host and port read from it the
    way requests' adapter reads them to pick the connection (``urlsplit`` of the prepared URL)."""

    url: str
    scheme: str
    host: str  # lower case, IPv6 without brackets
    port: int
    userinfo: bool  # the URL carries user[:password]@

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


DEFAULT_PORTS = {"http": 80, "https": 443}
# what a URL may not hold anywhere: parsers disagree about "\\" (WHATWG reads it as "/", RFC
# 3986 parsers as data) and about where whitespace and control characters end a component
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def refuse_odd_characters(url: str) -> None:
    """Raise ``FetchError("bad_url")`` when ``url`` holds ``\\``, whitespace or a control or
    format character (where URL parsers disagree: the host one reads is not another's)."""
    for char in url:
        if char == "\\" or unicodedata.category(char) in _REFUSED_CATEGORIES:
            raise FetchError("bad_url", f"refusing a URL with {char!r} in it: {url!r}")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), else None
    (also for a value that is neither: a header is never a reason to fail)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # ("²".isdigit() is True)
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - (time.time() if now is None else now))
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def declared_length(response: requests.Response) -> int | None:
    """The Content-Length header as a number, or None when absent or not a plain number."""
    value = response.headers.get("Content-Length", "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


T = TypeVar("T")


class HttpClient:
    """GET pages and stream downloads through one throttle, with bounded retries.

    ``ambient=False`` makes the session ignore the environment: no ``.netrc`` credentials, no
    ``*_PROXY`` variables, no CA bundle variable; ``proxy`` then names the one proxy to use.
    ``deadline`` bounds every attempt of :meth:`get_page` and :meth:`download` (network time,
    redirects included; throttle waits excluded).
    """

    def __init__(
        self,
        throttle: Throttle | None = None,
        *,
        retries: int = 5,
        backoff: float = 1.0,
        timeout: float = 60.0,
        deadline: float | None = None,
        transport: requests.Session | None = None,
        sleep: Callable[[float], object] | None = None,
        rng: random.Random | None = None,
        ambient: bool = True,
        proxy: str | None = None,
    ) -> None:
        # the one retry policy (storage.retrying); the throttle below stays in front of every
        # attempt, and a Retry-After holds the whole run (Throttle.hold), not only this request
        self.policy = RetryPolicy(attempts=retries, base=backoff, cap=120.0)
        self.throttle = throttle or Throttle()
        self.timeout = timeout
        self.deadline = deadline
        self._sleep = sleep or self.throttle.wait
        self._rng = rng or random.Random()
        self._session = transport or requests.Session()
        self._session.trust_env = ambient
        if proxy:
            self._session.proxies = {"http": proxy, "https": proxy}
        adapter = WatchedAdapter()
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers["User-Agent"] = USER_AGENT
        self.requests_made = 0
        self._active: set[Watch] = set()
        self._active_lock = threading.Lock()
        # asked about every URL before it is requested, redirect targets included, with the
        # Target as it will be sent and whether this is a robots.txt fetch: returns (reason,
        # message) to refuse it (the scraper checks origins and robots.txt here)
        self.veto: Callable[[Target, bool], tuple[str, str] | None] | None = None
        # asked about the address every new connection reached (None: any address)
        self.address_ok: Callable[[str], bool] | None = None
        # user and password sent (HTTP Basic) to this origin only, never to another
        self.credentials: tuple[tuple[str, str, int], str, str] | None = None

    def close(self) -> None:
        self._session.close()

    def cancel(self) -> None:
        """Stop the run's traffic now: no request starts any more, and the socket of every
        request in flight is shut down (each raises ``FetchError("cancelled")``)."""
        self.throttle.cancel()
        with self._active_lock:
            active = list(self._active)
        for watch in active:
            watch.cut("cancelled")

    # -- one request, redirects followed by hand --------------------------------------------
    def _prepare(
        self, url: str, headers: dict[str, str] | None
    ) -> tuple[requests.PreparedRequest, Target]:
        """The request as it will be sent, and where it goes; odd URLs refused."""
        refuse_odd_characters(url)
        if url.partition(":")[0].lower() not in DEFAULT_PORTS:
            raise FetchError("bad_url", f"refusing non-http(s) URL {url!r}")
        try:
            prepared = self._session.prepare_request(requests.Request("GET", url, headers))
            sent = prepared.url or ""
            refuse_odd_characters(sent)
            parts = urlsplit(sent)
            scheme, host, port = parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
        except (requests.RequestException, ValueError, UnicodeError) as exc:
            raise FetchError("bad_url", f"{url!r} is not a usable URL: {exc}") from exc
        if scheme not in DEFAULT_PORTS or not host:
            raise FetchError("bad_url", f"refusing URL {url!r} (sent as {sent!r})")
        target = Target(sent, scheme, host, port or DEFAULT_PORTS[scheme], "@" in parts.netloc)
        if self.credentials is not None and target.origin == self.credentials[0]:
            prepared.prepare_auth(self.credentials[1:])
        return prepared, target

    def _send(
        self, prepared: requests.PreparedRequest, stream: bool, watch: Watch
    ) -> requests.Response:
        settings = self._session.merge_environment_settings(
            prepared.url or "", {}, stream, None, None
        )
        watch.resume()  # the deadline counts network time, not the throttle's waits
        sending(watch)
        try:
            return self._session.send(
                prepared, allow_redirects=False, timeout=self.timeout, **settings
            )
        except AddressRefused as exc:
            raise FetchError("address_not_allowed", f"{prepared.url}: {exc}") from exc
        except Cut as exc:
            raise FetchError(str(exc), f"{prepared.url}: cut before it was sent") from exc
        finally:
            sending(None)

    def _open(
        self,
        url: str,
        watch: Watch,
        *,
        download: bool,
        headers: dict[str, str] | None = None,
        robots_txt: bool = False,
    ) -> tuple[requests.Response, Target]:
        for _ in range(MAX_REDIRECTS + 1):
            watch.pause()  # (a robots.txt fetch for the veto, the throttle: not this request's)
            prepared, target = self._prepare(url, headers)
            refused = self.veto(target, robots_txt) if self.veto is not None else None
            if refused is not None:
                raise FetchError(*refused)
            self.throttle.before_request(download=download)
            self.requests_made += 1
            response = self._send(prepared, True, watch)
            if not response.is_redirect:
                return response, target
            location = response.headers.get("Location", "")
            response.close()
            try:
                url = urljoin(target.url, location)
            except ValueError as exc:
                raise FetchError("bad_url", f"redirect to {location!r}: {exc}") from exc
            log.debug("redirect to %s", url)
        raise FetchError("redirects", f"more than {MAX_REDIRECTS} redirects from {url}")

    def _watched(self, url: str, attempt: Callable[[Watch], T]) -> T:
        """Run one attempt under a fresh Watch (its deadline, cancel()); a cut attempt raises
        ``FetchError("deadline" | "cancelled")``, whatever the cut made the transport raise."""
        watch = Watch(self.deadline, self.address_ok)
        with self._active_lock:
            self._active.add(watch)
        if self.throttle.cancelled:
            watch.cut("cancelled")
        try:
            result = attempt(watch)
        except Exception as exc:
            if self.throttle.cancelled:  # (cancel() cuts one watch after another: whatever
                # failed once it began, a cut of this socket or of one it shared, is the cancel)
                watch.cut("cancelled")
            if watch.reason is not None:
                raise _cut_error(watch, url) from exc
            if isinstance(exc, requests.RequestException) and not isinstance(exc, TRANSIENT):
                raise FetchError("bad_response", f"{url}: {describe(exc)}") from exc
            raise
        finally:
            watch.finish()
            with self._active_lock:
                self._active.discard(watch)
        if watch.reason is not None:  # cut after the last byte was read: not to be trusted
            raise _cut_error(watch, url)
        return result

    def pause_before_retry(self, failures: int, retry_after: float | None = None) -> None:
        """Wait as the policy says after ``failures`` failures in a row; a Retry-After also
        holds every other request of the run (the server asked the client, not one request)."""
        if retry_after is not None:
            self.throttle.hold(min(retry_after, self.policy.cap))
        self._sleep(self.policy.delay(failures, retry_after, self._rng))

    def _attempts(self, url: str, once: Callable[[Watch], T]) -> T:
        """``once`` under a fresh Watch until it returns, retrying transient failures."""
        return next(resumed(self, url, lambda: iter([self._watched(url, once)])))

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
        4xx other than 416 (whose meaning only the caller knows). No deadline: the caller
        reads the body (a resumable transfer of many GB)."""
        response, _ = self._open(url, Watch(None, self.address_ok), download=True, headers=headers)
        if response.status_code != 416:
            self._check_status(response, url)
        return response

    def get_page(
        self, url: str, *, ok_statuses: frozenset[int] = frozenset(), robots_txt: bool = False
    ) -> Page:
        """GET a page (not counted as a download). Statuses in ``ok_statuses`` are returned
        instead of raised (robots.txt wants to see its 404). ``robots_txt``: this is a
        robots.txt fetch, whose hops the veto must not send back to robots.txt."""

        def once(watch: Watch) -> Page:
            response, target = self._open(url, watch, download=False, robots_txt=robots_txt)
            if response.status_code not in ok_statuses:
                self._check_status(response, url)
            body = bytearray()
            try:
                for chunk in response.iter_content(CHUNK):
                    body += chunk
                    if len(body) > MAX_PAGE_BYTES:
                        raise FetchError("too_large", f"{url}: page over {MAX_PAGE_BYTES} bytes")
                _check_length(response, url)
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
            return Page(target.url, response.status_code, text, content_type)

        return self._attempts(url, once)

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
        returns a reason to reject the body (e.g. HTML instead of audio) or None. A body shorter
        than its Content-Length is a cut transfer (retried)."""

        def once(watch: Watch) -> Download:
            response, target = self._open(url, watch, download=True)
            self._check_status(response, url)
            content_type = response.headers.get("Content-Type", "")
            length = declared_length(response)
            try:
                if max_bytes is not None and length is not None and length > max_bytes:
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
                _check_length(response, url)
            except requests.exceptions.ChunkedEncodingError as exc:  # truncated body
                raise RetryableError(f"body cut short: {exc}", None) from exc
            finally:
                response.close()
            return Download(url=target.url, content_type=content_type, nbytes=total)

        return self._attempts(url, once)


def _cut_error(watch: Watch, url: str) -> FetchError:
    if watch.reason == "deadline":
        return FetchError("deadline", f"{url}: no complete answer within the deadline")
    return FetchError("cancelled", f"{url}: the run was interrupted")


def _check_length(response: requests.Response, url: str) -> None:
    """A body (not chunked) must have the bytes its Content-Length announced: fewer is a cut
    transfer. (Counted off the wire, before any Content-Encoding is undone.)"""
    length = declared_length(response)
    chunked = "chunked" in response.headers.get("Transfer-Encoding", "").lower()
    if length is None or chunked:
        return
    got = response.raw.tell()
    if got != length:
        raise RetryableError(f"{url}: body has {got} bytes, Content-Length said {length}", None)


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


def resumed(
    client: HttpClient,
    url: str,
    attempt: Callable[[], Iterator[T]],
    where: Callable[[], str] = lambda: "",
) -> Iterator[T]:
    """What ``attempt()`` yields, run again after a transient failure (a resumable one goes on
    from where it stopped: ``where`` says where, for the log). An attempt that yielded is not a
    failure (five drops of an 880 GB transfer are not five failures); the client's ``retries``
    attempts in a row that yield nothing end it."""
    budget = RetryBudget(client.policy)
    while True:
        progressed = False
        try:
            for item in attempt():
                progressed = True
                yield item
            return
        except TRANSIENT as exc:
            if client.throttle.cancelled:  # no retry after a Ctrl-C
                raise FetchError("cancelled", f"{url}: the run was interrupted") from exc
            if not budget.failed(progressed):
                raise FetchError("retries_exhausted", f"{url}: {describe(exc)}") from exc
            idle = budget.failures
            log.warning("%s%s failed (%s); retrying (attempt %d of %d without progress)",
                        url, where(), describe(exc), idle, client.policy.attempts)  # fmt: skip
            if idle:
                client.pause_before_retry(idle, getattr(exc, "retry_after", None))
