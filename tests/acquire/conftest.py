"""A fake Free Music Archive on 127.0.0.1: a real ThreadingHTTPServer (port 0) serving listing
and track pages with the site's markup, real mp3 bytes, a robots.txt, and hostile behaviour on
demand (429 after a burst, a 500 now and then, truncated bodies, HTML instead of mp3, ...).
It records every request (time, path, status) so tests can check politeness from the outside."""

from __future__ import annotations

import hashlib
import html
import io
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import soundfile as sf

from fmaprep.acquire.scrape import ScrapeConfig
from support.zipserver import ZipServer

ROBOTS = "User-agent: *\nDisallow: /private/\n"


def make_mp3(freq: float, seconds: float = 0.25, sr: int = 44100) -> bytes:
    """Real mp3 bytes of a sine tone (libsndfile's LAME encoder)."""
    t = np.arange(int(seconds * sr)) / sr
    tone = 0.4 * np.sin(2 * np.pi * freq * t)
    buffer = io.BytesIO()
    sf.write(buffer, tone, sr, format="MP3")
    return buffer.getvalue()


@dataclass
class FakeTrack:
    id: Any  # as the site gives it: an int, or a hostile string
    audio: bytes = b""
    # ok | no_file_url | playback_only | html | truncated_once | error500_once | traversal
    # | bad_id | disallowed | foreign | slow | gone (404) | long_length (Content-Length larger
    # than the body, then the connection closes) | short_length (Content-Length half the body)
    kind: str = "ok"
    title: str = ""
    file_url: str | None = None  # the fileUrl the site gives, as written (hostile ones too)
    raw_info: str | None = None  # data-track-info exactly as written (hostile JSON)

    @property
    def sha1(self) -> str:
        return hashlib.sha1(self.audio).hexdigest()

    @property
    def id6(self) -> str:
        return f"{int(self.id):06d}"


@dataclass
class Hit:
    at: float
    path: str
    status: int
    user_agent: str
    authorization: str | None = None


@dataclass
class FakeFMA:
    tracks: list[FakeTrack]
    page_size: int = 4
    burst: int | None = None  # > burst audio requests within `window` seconds -> 429
    window: float = 1.0
    retry_after: int = 1
    hits: list[Hit] = field(default_factory=list)
    base_url: str = ""
    gate: threading.Event = field(default_factory=threading.Event)  # releases "slow" bodies
    half_sent: threading.Event = field(default_factory=threading.Event)
    # when set, every audio URL the site hands out is "presigned" with this secret
    signature: str = ""
    robots: str = ROBOTS
    redirects: dict[str, str] = field(default_factory=dict)  # path -> Location (302)
    pages: dict[str, tuple[int, bytes, str, dict[str, str]]] = field(default_factory=dict)
    trickle: set[str] = field(default_factory=set)  # paths answered with a byte every 0.2 s
    next_url: str | None = None  # the "next" link of the last listing page (hostile ones)
    _served: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def by_id(self) -> dict[str, FakeTrack]:
        return {str(t.id): t for t in self.tracks}

    def audio_hits(self, status: int | None = None) -> list[Hit]:
        return [
            h
            for h in self.hits
            if h.path.startswith(("/files/", "/private/", "/play/"))
            and (status is None or h.status == status)
        ]

    def count(self, prefix: str) -> int:
        return sum(h.path.startswith(prefix) for h in self.hits)

    # -- markup -------------------------------------------------------------------------
    def info(self, track: FakeTrack, on_track_page: bool = False) -> dict[str, Any]:
        tid = track.id
        info: dict[str, Any] = {
            "id": tid,
            "handle": f"track-{tid}",
            "url": f"{self.base_url}/track/track-{tid}/",
            "title": track.title or f"Tone {tid}",
            "artistName": "Synth <Artist> & Co",
            "albumTitle": "Loopback Album",
            "playbackUrl": f"{self.base_url}/play/{tid}",
            "downloadUrl": f"{self.base_url}/download/{tid}",
            "fileName": f"{tid}.mp3",
        }
        if track.kind == "traversal":
            info["fileName"] = "../../etc/passwd"
        if track.file_url is not None:
            info["fileUrl"] = track.file_url
        elif track.kind == "disallowed":
            info["fileUrl"] = f"{self.base_url}/private/{tid}.mp3"
        elif track.kind == "foreign":  # another host (that would reach this server too)
            info["fileUrl"] = self.base_url.replace("127.0.0.1", "localhost") + f"/files/{tid}.mp3"
        elif track.kind == "playback_only" or (track.kind == "no_file_url" and not on_track_page):
            pass
        else:
            info["fileUrl"] = f"{self.base_url}/files/{tid}.mp3{self.signed_query()}"
        return info

    def signed_query(self) -> str:
        if not self.signature:
            return ""
        return (
            f"?response-content-type=audio%2Fmpeg&X-Amz-Credential=AKIAEXAMPLE"
            f"&X-Amz-Signature={self.signature}&X-Amz-Security-Token={self.signature}"
        )

    def play_item(self, track: FakeTrack, on_track_page: bool = False) -> str:
        raw = track.raw_info or json.dumps(self.info(track, on_track_page))
        data = html.escape(raw, quote=True)
        return f'<div class="play-item gcol gid-electronic" data-track-info="{data}"></div>'

    def listing(self, page: int) -> str:
        start = (page - 1) * self.page_size
        chunk = self.tracks[start : start + self.page_size]
        items = "\n".join(self.play_item(t) for t in chunk)
        more = start + self.page_size < len(self.tracks)
        href = f"/genre/Test/?page={page + 1}"
        if not more and self.next_url is not None:
            more, href = True, html.escape(self.next_url, quote=True)
        nxt = f'<a class="pagination-next" href="{href}">next</a>'
        return (
            "<html><body><div class='play-list'>" + items + "</div>"
            "<div class='pagination-full'><a href='/genre/Test/?page=1'>1</a>"
            + (nxt if more else "")
            + "</div></body></html>"
        )


def _handler(site: FakeFMA) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _record(self, status: int) -> None:
            with site._lock:
                arrived = getattr(self, "arrived", time.monotonic())
                site.hits.append(
                    Hit(
                        arrived,
                        self.path,
                        status,
                        self.headers.get("User-Agent", ""),
                        self.headers.get("Authorization"),
                    )
                )

        def _send(
            self,
            status: int,
            body: bytes,
            ctype: str,
            extra: dict[str, str] | None = None,
            length: int | None = None,
        ) -> None:
            self._record(status)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _first_time(self, key: str) -> bool:
            with site._lock:
                site._served[key] = site._served.get(key, 0) + 1
                return site._served[key] == 1

        def _rate_limited(self) -> bool:
            if site.burst is None:
                return False
            now = time.monotonic()
            with site._lock:
                recent = [h for h in site.audio_hits(200) if now - h.at < site.window]
                return len(recent) >= site.burst

        def _trickle(self) -> None:
            """Headers at once, then one byte every 0.2 s (for at most 60 s)."""
            self._record(200)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "300")
            self.end_headers()
            for _ in range(300):
                try:
                    self.wfile.write(b"#")
                    self.wfile.flush()
                except OSError:  # the client gave up
                    return
                time.sleep(0.2)

        def do_GET(self) -> None:
            self.arrived = time.monotonic()
            parts = urlsplit(self.path)
            path = parts.path
            tracks = site.by_id()
            if path in site.trickle:
                return self._trickle()
            if path in site.redirects:
                self._record(302)
                self.send_response(302)
                self.send_header("Location", site.redirects[path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if path in site.pages:
                status, body, ctype, extra = site.pages[path]
                return self._send(status, body, ctype, extra)
            if path == "/robots.txt":
                return self._send(200, site.robots.encode(), "text/plain")
            if path.startswith("/genre/Test/"):
                page = int(parse_qs(parts.query).get("page", ["1"])[0])
                return self._send(200, site.listing(page).encode(), "text/html; charset=utf-8")
            if path.startswith("/track/track-"):
                tid = path[len("/track/track-") :].strip("/")
                track = tracks.get(tid)
                if track is None:
                    return self._send(404, b"<html>no</html>", "text/html")
                body = "<html><body>" + site.play_item(track, on_track_page=True) + "</body></html>"
                return self._send(200, body.encode(), "text/html")
            if path == "/evil-redirect":
                self._record(302)
                self.send_response(302)
                self.send_header("Location", "file:///etc/passwd")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if path.startswith("/play/"):
                tid = path[len("/play/") :]
                self._record(302)
                self.send_response(302)
                self.send_header("Location", f"/files/{tid}.mp3{site.signed_query()}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if path.startswith(("/files/", "/private/")) and path.endswith(".mp3"):
                return self._audio(tracks.get(path.rsplit("/", 1)[1][: -len(".mp3")]))
            return self._send(404, b"<html>not found</html>", "text/html")

        def _audio(self, track: FakeTrack | None) -> None:
            if track is None:
                return self._send(404, b"<html>not found</html>", "text/html")
            if self._rate_limited():
                extra = {"Retry-After": str(site.retry_after)}
                return self._send(429, b"<html>slow down</html>", "text/html", extra)
            kind = track.kind
            if kind == "html":
                return self._send(200, b"<!DOCTYPE html><html>Error</html>", "text/html")
            if kind == "gone":
                return self._send(404, b"<html>gone</html>", "text/html")
            if kind == "long_length":
                self._send(200, track.audio, "audio/mpeg", length=len(track.audio) + 1000)
                self.close_connection = True
                return None
            if kind == "short_length":
                return self._send(200, track.audio, "audio/mpeg", length=len(track.audio) // 2)
            if kind == "error500_once" and self._first_time(f"500-{track.id}"):
                return self._send(500, b"<html>oops</html>", "text/html")
            if kind == "truncated_once" and self._first_time(f"cut-{track.id}"):
                half = track.audio[: len(track.audio) // 2]
                self._send(200, half, "audio/mpeg", length=len(track.audio))
                self.close_connection = True
                return None
            if kind == "slow":
                half = len(track.audio) // 2
                self._send(200, track.audio[:half], "audio/mpeg", length=len(track.audio))
                self.wfile.flush()
                site.half_sent.set()
                if site.gate.wait(timeout=30):
                    self.wfile.write(track.audio[half:])
                return None
            return self._send(200, track.audio, "audio/mpeg")

    return Handler


def quick_config(site: FakeFMA, dest: Path, **overrides: Any) -> ScrapeConfig:
    """A scrape of the fake site with no politeness waits and short deadlines."""
    values: dict[str, Any] = dict(
        dest=str(dest),
        base_url=site.base_url,
        genre="Test",
        limit=10,
        batch_size=50,
        pause=0,
        min_delay=0.0,
        concurrency=2,
        retries=2,
        backoff=0.01,
        timeout=10,
        deadline=10,
        page_size=10,
    )
    values.update(overrides)  # fmt: skip
    return ScrapeConfig(**values)


@pytest.fixture(scope="session")
def tones() -> list[bytes]:
    return [make_mp3(220.0 + 55.0 * i) for i in range(16)]


@pytest.fixture
def serve() -> Iterator[Any]:
    """serve(FakeFMA[, host][, tls]) starts it on 127.0.0.1 (or ``host``, e.g. 127.0.0.2 for
    "another host"; over TLS with a server context) and returns it with base_url set."""
    servers: list[ThreadingHTTPServer] = []

    def start(site: FakeFMA, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> FakeFMA:
        server = ThreadingHTTPServer((host, 0), _handler(site))
        server.daemon_threads = True
        if tls is not None:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        site.base_url = f"{scheme}://{host}:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return site

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def zip_server() -> Iterator[ZipServer]:
    """The archive server of support.zipserver on 127.0.0.1."""
    server = ZipServer().start()
    yield server
    server.close()
