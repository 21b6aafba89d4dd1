"""robots.txt per origin (scheme, host, port), by RFC 9309 with :mod:`protego`: the longest
matching rule wins (an ``Allow`` beats a ``Disallow`` of the same length), ``*`` and ``$`` are
patterns, the group of the most specific user agent applies. (``urllib.robotparser`` takes the
first matching line and knows only prefixes: ``Disallow: /`` then ``Allow: /music/`` refused
everything, and ``Disallow: /*.mp3$`` was ignored.)

A missing robots.txt (4xx) allows everything; an unreachable one (5xx, connection errors after
the client's retries, its deadline) disallows everything. robots.txt is fetched with
``robots_txt=True``, so its own redirects are never sent back here for a robots check: no
re-entry, no deadlock. ``Crawl-delay`` is honoured up to ``max_crawl_delay``.
"""

from __future__ import annotations

import logging
import threading

from protego import Protego

from fmaprep.acquire.http import DEFAULT_PORTS, ROBOTS_AGENT, FetchError, HttpClient

log = logging.getLogger(__name__)

_MISSING = frozenset(range(400, 500))
_DISALLOW_ALL = "User-agent: *\nDisallow: /\n"
Origin = tuple[str, str, int]  # scheme, host, port


class Robots:
    """Answers ``allowed(origin, url)`` for any origin, fetching each origin's robots.txt once."""

    def __init__(
        self, client: HttpClient, agent: str = ROBOTS_AGENT, max_crawl_delay: float = 60.0
    ) -> None:
        self._client = client
        self._agent = agent
        self.max_crawl_delay = max_crawl_delay
        self._rules: dict[Origin, Protego] = {}
        self._locks: dict[Origin, threading.Lock] = {}
        self._lock = threading.Lock()  # guards the two dicts, never held while fetching

    @staticmethod
    def url_of(origin: Origin) -> str:
        scheme, host, port = origin
        host = f"[{host}]" if ":" in host else host
        port_part = "" if DEFAULT_PORTS.get(scheme) == port else f":{port}"  # (Host: as usual)
        return f"{scheme}://{host}{port_part}/robots.txt"

    def rules(self, origin: Origin) -> Protego:
        with self._lock:
            cached = self._rules.get(origin)
            if cached is not None:
                return cached
            lock = self._locks.setdefault(origin, threading.Lock())
        with lock:  # one fetch per origin; other origins are not held up meanwhile
            with self._lock:
                cached = self._rules.get(origin)
            if cached is None:
                cached = self._fetch(origin)
                with self._lock:
                    self._rules[origin] = cached
            return cached

    def _fetch(self, origin: Origin) -> Protego:
        url = self.url_of(origin)
        try:
            page = self._client.get_page(url, ok_statuses=_MISSING, robots_txt=True)
        except FetchError as exc:
            if exc.reason == "cancelled":
                raise
            log.warning("robots.txt at %s unreachable (%s): not fetching from it", url, exc)
            return Protego.parse(_DISALLOW_ALL)
        if page.status in _MISSING:
            log.info("no robots.txt at %s (HTTP %d): all allowed", url, page.status)
            return Protego.parse("")
        return Protego.parse(page.text)

    def allowed(self, origin: Origin, url: str) -> bool:
        """Whether robots.txt of ``origin`` lets us fetch ``url`` (path and query matched)."""
        return bool(self.rules(origin).can_fetch(url, self._agent))

    def crawl_delay(self, origin: Origin) -> float | None:
        """The origin's Crawl-delay for us, at most ``max_crawl_delay`` seconds."""
        delay = self.rules(origin).crawl_delay(self._agent)
        if delay is None:
            return None
        if delay > self.max_crawl_delay:
            log.warning("robots.txt at %s asks for %gs between requests; using the cap of %gs "
                        "(--max-crawl-delay)", self.url_of(origin), delay,
                        self.max_crawl_delay)  # fmt: skip
            return self.max_crawl_delay
        return float(delay)
