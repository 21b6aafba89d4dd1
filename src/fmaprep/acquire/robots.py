"""robots.txt, per origin, with :mod:`urllib.robotparser`.

RFC 9309: a missing robots.txt (4xx) allows everything; an unreachable one (5xx, connection
errors after the client's retries) is taken as disallowing everything.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

from fmaprep.acquire.http import ROBOTS_AGENT, FetchError, HttpClient

log = logging.getLogger(__name__)

_MISSING = frozenset(range(400, 500))


class Robots:
    """Answers ``allowed(url)`` for any origin, fetching each origin's robots.txt once."""

    def __init__(self, client: HttpClient, agent: str = ROBOTS_AGENT) -> None:
        self._client = client
        self._agent = agent
        self._parsers: dict[str, RobotFileParser] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _origin(url: str) -> str:
        parts = urlsplit(url)
        return urlunsplit((parts.scheme, parts.netloc, "", "", ""))

    def parser(self, url: str) -> RobotFileParser:
        origin = self._origin(url)
        with self._lock:
            cached = self._parsers.get(origin)
            if cached is not None:
                return cached
            robots_url = origin + "/robots.txt"
            parser = RobotFileParser(robots_url)
            try:
                page = self._client.get_page(robots_url, ok_statuses=_MISSING)
            except FetchError as exc:
                log.warning("robots.txt at %s unreachable (%s): not fetching from it", origin, exc)
                parser.parse(["User-agent: *", "Disallow: /"])
            else:
                if page.status in _MISSING:
                    log.info("no robots.txt at %s (HTTP %d): all allowed", origin, page.status)
                    parser.parse([])
                else:
                    parser.parse(page.text.splitlines())
            self._parsers[origin] = parser
            return parser

    def allowed(self, url: str) -> bool:
        return self.parser(url).can_fetch(self._agent, url)

    def crawl_delay(self, url: str) -> float | None:
        delay = self.parser(url).crawl_delay(self._agent)
        return None if delay is None else float(delay)
