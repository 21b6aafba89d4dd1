"""robots.txt per origin by RFC 9309: longest match, Allow beside Disallow, ``*`` and ``$``;
404 allows all, unreachable disallows all; a robots.txt that redirects cannot deadlock. The
expectations are the RFC's own examples (RFC 9309, 2.2.2 and 5.x) and its precedence rule."""

from __future__ import annotations

import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from fmaprep.acquire.http import HttpClient, Throttle
from fmaprep.acquire.robots import Robots
from fmaprep.acquire.scrape import scrape

from .conftest import FakeFMA, FakeTrack, quick_config


def origin(site: FakeFMA) -> tuple[str, str, int]:
    parts = urlsplit(site.base_url)
    return ("http", parts.hostname or "", parts.port or 80)


def client() -> HttpClient:
    return HttpClient(Throttle(0.0, 10, 0.0), retries=2, backoff=0.0, rng=random.Random(0),
                      deadline=10)  # fmt: skip


# (robots.txt, path, allowed): RFC 9309's examples, and its rules spelled out
RFC_CASES = [
    # 2.2.2: the most specific (longest) match wins; an allow and a disallow of the same
    # length: allow
    ("allow: /p\ndisallow: /\n", "/page", True),
    ("allow: /folder\ndisallow: /folder\n", "/folder/page", True),
    ("allow: /page\ndisallow: /*.html\n", "/page.html", False),
    ("allow: /$\ndisallow: /\n", "/", True),
    ("allow: /$\ndisallow: /\n", "/page.htm", False),
    # the order of lines does not matter (urllib.robotparser took the first match)
    ("disallow: /\nallow: /music/\n", "/music/x.mp3", True),
    ("disallow: /\nallow: /music/\n", "/genre/Rock/", False),
    # * matches any sequence, $ anchors the end (the query is part of what is matched)
    ("disallow: /*.mp3$\n", "/files/1.mp3", False),
    ("disallow: /*.mp3$\n", "/files/1.mp3?sig=1", True),
    ("disallow: /*.mp3$\n", "/files/1.mp3x", True),
    ("disallow: /files/*/private\n", "/files/a/b/private/1.mp3", False),
    ("disallow: /files/*/private\n", "/files/private", True),
    ("disallow:\n", "/anything", True),
]


@pytest.mark.parametrize(("rules", "path", "allowed"), RFC_CASES)
def test_rfc9309_matching(serve: Any, rules: str, path: str, allowed: bool) -> None:
    site = serve(FakeFMA([], robots="user-agent: *\n" + rules))
    assert Robots(client()).allowed(origin(site), site.base_url + path) is allowed


def test_our_group_wins_over_star_and_fetches_are_cached(serve: Any) -> None:
    robots = "User-agent: *\nDisallow: /\n\nUser-agent: fmaprep\nAllow: /\nDisallow: /x\n"
    site = serve(FakeFMA([], robots=robots))
    rules = Robots(client())
    assert rules.allowed(origin(site), site.base_url + "/genre/")
    assert not rules.allowed(origin(site), site.base_url + "/x/1")
    assert site.count("/robots.txt") == 1  # cached per origin


def test_unreachable_disallows_all_missing_allows_all(serve: Any) -> None:
    # an origin without a server answers nothing: unreachable -> disallow everything
    assert not Robots(client()).allowed(("http", "127.0.0.1", 9), "http://127.0.0.1:9/x")

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        url = f"http://127.0.0.1:{port}/private/x"
        assert Robots(client()).allowed(("http", "127.0.0.1", port), url)
    finally:
        server.shutdown()
        server.server_close()


def test_crawl_delay_is_capped(serve: Any) -> None:
    site = serve(FakeFMA([], robots="User-agent: *\nCrawl-delay: 999999\n"))
    assert Robots(client(), max_crawl_delay=0.5).crawl_delay(origin(site)) == 0.5
    small = serve(FakeFMA([], robots="User-agent: *\nCrawl-delay: 0.25\n"))
    assert Robots(client(), max_crawl_delay=0.5).crawl_delay(origin(small)) == 0.25


def test_scraper_requests_exactly_what_robots_allows(
    serve: Any, tones: list[bytes], tmp_path: Path
) -> None:
    robots = (
        "User-agent: *\nDisallow: /\nAllow: /genre/\nAllow: /files/*.mp3$\nAllow: /moved/\n"
        "Disallow: /files/hidden-\n"
    )
    site = FakeFMA(
        [
            FakeTrack(1, tones[0]),
            FakeTrack(2, tones[1]),
            FakeTrack(3, tones[2], file_url="/moved/3.mp3"),  # -> a redirect into /private/
            FakeTrack(4, tones[3], file_url="/files/4.mp3?sig=1"),  # the $ rule refuses it
            FakeTrack(5, tones[4], file_url="/files/hidden-5.mp3"),  # the longer Disallow
            FakeTrack(6, tones[5], "no_file_url"),  # its track page is disallowed
        ],
        page_size=10,
        robots=robots,
        redirects={"/moved/3.mp3": "/private/3.mp3"},
    )
    serve(site)
    summary = scrape(quick_config(site, tmp_path))
    assert summary.downloaded == 2, summary.text()
    assert sorted(h.path for h in site.hits) == sorted(
        [
            "/robots.txt",
            "/genre/Test/?pageSize=10&page=1",
            "/files/1.mp3",
            "/files/2.mp3",
            "/moved/3.mp3",
        ]
    )
    errors = dict(summary.failures)
    assert all("robots_disallowed" in errors[f"00000{i}"] for i in (3, 4, 5)), errors
    assert "/private/3.mp3" in errors["000003"]


def test_robots_txt_that_redirects_does_not_deadlock(
    serve: Any, tones: list[bytes], tmp_path: Path
) -> None:
    site = FakeFMA(
        [FakeTrack(1, tones[0])],
        page_size=10,
        redirects={"/robots.txt": "/elsewhere/robots.txt"},
        pages={"/elsewhere/robots.txt": (200, b"User-agent: *\nDisallow: /x/\n", "text/plain", {})},
    )
    serve(site)
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(scrape(quick_config(site, tmp_path))),
                              daemon=True)  # fmt: skip
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the run hung on a robots.txt redirect"
    assert result[0].downloaded == 1
    assert site.count("/robots.txt") == 1 and site.count("/elsewhere/robots.txt") == 1
