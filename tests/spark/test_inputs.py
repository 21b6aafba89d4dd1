"""fmaprep.spark.inputs: a remote read that never finishes is a ``timeout`` line, not a hung task.

The store is an HTTP server on loopback that answers S3's GET with a header and then one byte a
second for ever: no socket timeout ever fires, as with a stalled server or mount.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fmaprep.model import InputFile
from fmaprep.spark.inputs import local_copies
from fmaprep.storage.clients import StoreSettings
from fmaprep.storage.s3client import S3Store
from local_services_fixture import local_services  # noqa: F401 (a fixture)


@pytest.fixture
def trickling_s3() -> Iterator[str]:
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            rfile = conn.makefile("rb")
            while rfile.readline() not in (b"\r\n", b""):
                pass
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            while not stop.wait(1.0):
                try:
                    conn.sendall(b"\xff")
                except OSError:
                    return

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    server.close()


def test_a_read_that_never_finishes_is_a_timeout(
    trickling_s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # boto3's credential chain reads the process environment
    settings = StoreSettings.from_env(endpoint=trickling_s3, environ=env)
    local = tmp_path / "000002.mp3"
    local.write_bytes(b"local bytes")
    items = [InputFile("s3://bucket/000/000001.mp3", 100000), InputFile(str(local), 11)]
    t0 = time.monotonic()
    got = list(local_copies(items, settings, timeout_s=1.5))
    elapsed = time.monotonic() - t0
    assert [(item.source, path, str(error)) for item, path, error in got] == [
        ("s3://bucket/000/000001.mp3", None, "timeout: not read within 1.5 s"),
        (str(local), str(local), "None"),
    ]
    assert 1.5 <= elapsed < 10  # and the stuck read thread was not waited for


class _CountingStore:
    """An S3-shaped HTTP server on loopback: GET /bucket/<size>-<n>.mp3 answers ``size`` bytes
    of a pattern after ``delay_s``, and it records how many GETs of each size ran at once."""

    def __init__(self, delay_s: float) -> None:
        import http.server

        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.active: dict[int, int] = {}
        self.most: dict[int, int] = {}
        self.served: list[str] = []
        store = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                key = self.path.rsplit("/", 1)[-1]
                size = int(key.split("-")[0])
                with store.lock:
                    store.active[size] = store.active.get(size, 0) + 1
                    store.most[size] = max(store.most.get(size, 0), store.active[size])
                time.sleep(store.delay_s)
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                self.wfile.write(pattern(key, size))
                with store.lock:
                    store.active[size] -= 1
                    store.served.append(key)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def pattern(key: str, size: int) -> bytes:
    return (key.encode() * (size // len(key) + 1))[:size]


@pytest.fixture
def counting_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[_CountingStore, StoreSettings]]:
    env = {
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    store = _CountingStore(delay_s=0.05)
    yield store, StoreSettings.from_env(endpoint=store.url, environ=env)
    store.server.shutdown()


def test_tiny_files_overlap_and_songs_come_one_after_another(
    counting_s3: tuple[_CountingStore, StoreSettings],
) -> None:
    """Tiny files are fetched several at once (latency hidden); two songs that together exceed
    the in-flight budget are never fetched at once, so the decoder's next song arrives first;
    every file comes back whole, in order."""
    store, settings = counting_s3
    tiny, song = 1000, 6 * 1024 * 1024
    keys = [f"{tiny}-{n}.mp3" for n in range(16)] + [f"{song}-{n}.mp3" for n in range(4)]
    items = [InputFile(f"s3://bucket/{key}", int(key.split("-")[0])) for key in keys]
    got = []
    for item, path, error in local_copies(items, settings, concurrent_bytes=8 * 1024 * 1024):
        assert error is None and path is not None
        key = item.source.rsplit("/", 1)[-1]
        got.append(key)
        assert Path(path).read_bytes() == pattern(key, item.size)
    assert got == keys
    assert 2 <= store.most[tiny] <= 8
    assert store.most[song] == 1


def test_fetches_go_on_while_the_decoder_is_busy(
    counting_s3: tuple[_CountingStore, StoreSettings],
) -> None:
    """A fetch that ends starts the next one without waiting for the consumer to ask."""
    store, settings = counting_s3
    song = 6 * 1024 * 1024
    keys = [f"{song}-{n}.mp3" for n in range(4)]
    items = [InputFile(f"s3://bucket/{key}", song) for key in keys]
    copies = local_copies(items, settings, concurrent_bytes=8 * 1024 * 1024)
    next(copies)  # the first song; then the "decoder" is busy with it
    deadline = time.monotonic() + 10
    while len(store.served) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.served == keys  # one after another, all while the consumer held the first
    assert store.most[song] == 1
    copies.close()


@pytest.mark.slow
def test_throttled_and_cut_reads_are_retried_to_whole_files(
    local_services: dict[str, str],  # noqa: F811 (the fixture)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The task's own read path against the loopback S3 behind a fault-injecting proxy: two
    503 SlowDown answers, and a body cut after 300,000 bytes, both end in the whole file."""
    import os
    import uuid

    from fmaprep.storage.s3_settings import S3Settings
    from support.httpproxy import S3Proxy

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, local_services[name])
    bucket, prefix = local_services["FMAPREP_S3_BUCKET"], f"inputs-test/{uuid.uuid4().hex}"
    data = {f"s3://{bucket}/{prefix}/{n}.mp3": os.urandom(1_000_000 + n) for n in range(2)}
    with S3Proxy(local_services["FMAPREP_S3_ENDPOINT"]) as proxy:
        s3 = S3Settings(endpoint=proxy.url, path_style_access=True)
        settings, store = StoreSettings(s3=s3), S3Store(s3)
        for uri, body in data.items():
            store.write_bytes(uri, body)
        items = [InputFile(uri, len(body)) for uri, body in data.items()]
        proxy.reset()
        proxy.fail_next("GetObject", 2)
        got = []
        for _item, path, error in local_copies(items[:1], settings):
            assert error is None and path is not None
            got.append(Path(path).read_bytes())
        proxy.drop_next("GetObject", after_bytes=300_000)
        for _item, path, error in local_copies(items[1:], settings):
            assert error is None and path is not None
            got.append(Path(path).read_bytes())
        seen = [(r.operation, r.status, r.fault) for r in proxy.requests()]
        store.delete(list(data))
    assert got == list(data.values())
    assert seen == [("GetObject", 503, "SlowDown")] * 2 + [("GetObject", 200, None)] + [
        ("GetObject", 200, "dropped"), ("GetObject", 206, None),  # resumed from byte 300,000
    ]  # fmt: skip
