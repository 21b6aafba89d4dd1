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
