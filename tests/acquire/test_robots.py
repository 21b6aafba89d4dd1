"""robots.txt per origin: rules obeyed, 404 allows all, 5xx disallows all."""

from __future__ import annotations

import random
from typing import Any

from fmaprep.acquire.http import HttpClient, Throttle
from fmaprep.acquire.robots import Robots

from .conftest import FakeFMA, FakeTrack


def test_rules_and_fallbacks(serve: Any, tones: list[bytes]) -> None:
    site = serve(FakeFMA([FakeTrack(1, tones[0])]))
    http = HttpClient(Throttle(0.0, 10, 0.0), retries=2, backoff=0.0, rng=random.Random(0))
    robots = Robots(http)
    assert robots.allowed(f"{site.base_url}/files/1.mp3")
    assert not robots.allowed(f"{site.base_url}/private/1.mp3")
    assert robots.crawl_delay(site.base_url) is None
    assert site.count("/robots.txt") == 1  # cached per origin

    # an origin without a server answers nothing: unreachable -> disallow everything
    assert not robots.allowed("http://127.0.0.1:9/anything")


def test_missing_robots_allows_all() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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
        http = HttpClient(Throttle(0.0, 10, 0.0), retries=1)
        assert Robots(http).allowed(f"http://127.0.0.1:{server.server_address[1]}/private/x")
    finally:
        server.shutdown()
        server.server_close()
