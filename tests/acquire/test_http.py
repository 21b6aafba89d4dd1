"""The polite HTTP client: throttle arithmetic on a fake clock, retries against loopback."""

from __future__ import annotations

import email.utils
import random
import time
from pathlib import Path
from typing import Any

import pytest

from fmaprep.acquire.http import (
    USER_AGENT,
    FetchError,
    HttpClient,
    Throttle,
    parse_retry_after,
)

from .conftest import FakeFMA, FakeTrack


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def starts(throttle: Throttle, clock: FakeClock, kinds: list[bool]) -> list[float]:
    out = []
    for download in kinds:
        throttle.before_request(download=download)
        out.append(clock.now)
    return out


def test_min_delay_spaces_every_request() -> None:
    clock = FakeClock()
    throttle = Throttle(0.5, batch_size=100, pause=30, clock=clock, sleep=clock.sleep)
    times = starts(throttle, clock, [False, True, False, True])
    assert times == [100.0, 100.5, 101.0, 101.5]


def test_batch_then_pause_counts_downloads_only() -> None:
    clock = FakeClock()
    pauses: list[float] = []
    throttle = Throttle(0.0, 3, 30.0, clock=clock, sleep=clock.sleep, on_pause=pauses.append)
    times = starts(throttle, clock, [True, False, True, True, False, True, True, True, True])
    assert times == [100.0] * 5 + [130.0, 130.0, 130.0, 160.0]
    assert pauses == [30.0, 30.0]


def test_hold_delays_everyone() -> None:
    clock = FakeClock()
    throttle = Throttle(0.0, 10, 0.0, clock=clock, sleep=clock.sleep)
    throttle.hold(7.0)
    assert starts(throttle, clock, [False]) == [107.0]


def test_throttle_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Throttle(-1.0)
    with pytest.raises(ValueError):
        Throttle(batch_size=0)


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    # hostile values are no value, never an exception
    odd_values = ["\u00b2", "\u0663", "1e9999", "Wed, 31 Dec 99999 23:59:59 GMT", "-5", "\x00"]
    for odd in [*odd_values, "Mon, 32 Foo 1 0:0:0"]:
        assert parse_retry_after(odd) is None, odd
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(30.0)


def client(clock: FakeClock, retries: int = 3) -> HttpClient:
    throttle = Throttle(0.0, 100, 0.0, clock=clock, sleep=clock.sleep)
    return HttpClient(throttle, retries=retries, backoff=1.0, sleep=clock.sleep,
                      rng=random.Random(1), timeout=10)  # fmt: skip


def download(http: HttpClient, url: str) -> bytes:
    sink = bytearray()
    http.download(url, sink.extend, restart=sink.clear)
    return bytes(sink)


def test_retries_500_with_exponential_backoff_and_logs_attempts(
    serve: Any, tones: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    site = serve(FakeFMA([FakeTrack(1, tones[0], "error500_once"),
                          FakeTrack(2, tones[1], "truncated_once")]))  # fmt: skip
    clock = FakeClock()
    http = client(clock)
    caplog.set_level("WARNING")
    assert download(http, f"{site.base_url}/files/1.mp3") == tones[0]
    assert download(http, f"{site.base_url}/files/2.mp3") == tones[1]  # cut short, then whole
    assert "attempt 1 of 3" in caplog.text
    assert len(clock.slept) == 2 and all(0.5 <= s <= 1.5 for s in clock.slept)  # jittered 1 s
    assert {h.user_agent for h in site.hits} == {USER_AGENT}


def test_gives_up_after_the_last_attempt(serve: Any, tones: list[bytes]) -> None:
    site = serve(FakeFMA([FakeTrack(1, tones[0])], burst=0, retry_after=9))  # always 429
    clock = FakeClock()
    http = client(clock, retries=3)
    with pytest.raises(FetchError) as err:
        download(http, f"{site.base_url}/files/1.mp3")
    assert err.value.reason == "retries_exhausted"
    assert len(site.hits) == 3
    assert clock.slept[0] >= 9.0  # Retry-After wins over the 1 s backoff
    backoffs = [s for s in clock.slept if s < 9]
    assert backoffs == []  # every wait honoured Retry-After (the throttle's hold included)


def test_404_is_not_retried_and_redirects_stay_on_http(serve: Any, tones: list[bytes]) -> None:
    site = serve(FakeFMA([FakeTrack(1, tones[0])]))
    clock = FakeClock()
    http = client(clock)
    with pytest.raises(FetchError) as err:
        download(http, f"{site.base_url}/files/404.mp3")
    assert err.value.reason == "http_404" and len(site.hits) == 1
    assert download(http, f"{site.base_url}/play/1") == tones[0]  # 302 to /files/1.mp3
    with pytest.raises(FetchError, match="non-http"):
        download(http, "file:///etc/passwd")
    with pytest.raises(FetchError, match="non-http"):
        download(http, f"{site.base_url}/evil-redirect")  # a redirect to file://
    assert clock.slept == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:9\\@127.0.0.1/x.mp3",  # urllib3 reads host 127.0.0.2, urlsplit 127.0.0.1
        "http://127.0.0.1/x y.mp3",
        "http://127.0.0.1/x\t.mp3",
        "http://127.0.0.1/x\n.mp3",
        "http://127.0.0.1\u3000/x.mp3",
        "http://127.0.0.1/\u202ex.mp3",
        "http://127.0.0.1/\x00.mp3",
        "ftp://127.0.0.1/x.mp3",
        "http://[::1/x.mp3",
        "http://127.0.0.1:99999/x.mp3",
    ],
)
def test_odd_urls_are_refused_before_any_connection(url: str) -> None:
    http = client(FakeClock())
    with pytest.raises(FetchError) as err:
        http.get_page(url)
    assert err.value.reason == "bad_url" and http.requests_made == 0


def test_max_bytes_and_head_check(serve: Any, tones: list[bytes], tmp_path: Path) -> None:
    site = serve(FakeFMA([FakeTrack(1, tones[0]), FakeTrack(2, tones[1], "html")]))
    http = client(FakeClock())
    sink = bytearray()
    with pytest.raises(FetchError) as err:
        http.download(f"{site.base_url}/files/1.mp3", sink.extend, restart=sink.clear,
                      max_bytes=100)  # fmt: skip
    assert err.value.reason == "too_large"
    with pytest.raises(FetchError) as err:
        http.download(
            f"{site.base_url}/files/2.mp3",
            sink.extend,
            restart=sink.clear,
            check_head=lambda head, ctype: "html!" if b"html" in head else None,
        )
    assert err.value.reason == "not_audio" and sink == b""


def test_real_throttle_spaces_requests_on_the_wire(serve: Any, tones: list[bytes]) -> None:
    site = serve(FakeFMA([FakeTrack(1, tones[0])]))
    http = HttpClient(Throttle(0.1, 2, 0.3), retries=1)
    started = time.monotonic()
    for _ in range(4):
        download(http, f"{site.base_url}/files/1.mp3")
    # 4 downloads, batch of 2 then a 0.3 s pause: request starts at least 0.1, 0.3, 0.1 s apart.
    # The server stamps a request when its thread runs, which a loaded host can delay by tens of
    # ms, so one gap can look short; the whole span and the pause keep an 80 ms margin, and
    # still fail without the spacing (0.3 s in all) or without the pause (0.3 s in all).
    hits = [h.at for h in site.hits]
    assert hits[3] - hits[0] >= 0.42 and hits[2] - hits[1] >= 0.22, hits
    assert time.monotonic() - started < 15  # the pauses are not stretched (generous: a loaded host)


@pytest.mark.parametrize("retries", [1, 3])
def test_a_transfer_that_breaks_while_the_run_is_cancelled_is_cancelled_not_retried(
    serve: Any, tones: list[bytes], retries: int, caplog: pytest.LogCaptureFixture
) -> None:
    """cancel() sets the flag, then cuts one request after another: a request whose connection
    breaks in between (a socket it shared with a cut one, or the server's own close) must end as
    "cancelled" (no verdict on the track), neither retried nor "retries_exhausted"."""
    site = serve(FakeFMA([FakeTrack(1, tones[0], "long_length")]))  # the body stops short
    http = client(FakeClock(), retries=retries)
    caplog.set_level("WARNING")

    def restart() -> None:  # the headers are in; the body is read next
        http.throttle.cancel()  # (the flag only: this request is not cut yet)

    with pytest.raises(FetchError) as err:
        http.download(f"{site.base_url}/files/1.mp3", lambda _: None, restart=restart)
    assert err.value.reason == "cancelled"
    assert site.count("/files/1.mp3") == 1
    assert "retrying" not in caplog.text
