"""An archive server on 127.0.0.1 for the download tests and benchmarks: serves byte strings
with a strong ETag, honours ``Range: bytes=N-M`` with ``If-Range`` (or ignores Range when told
to), and cuts the connection after N body bytes when told to; it counts every body byte it
sends. :func:`fma_shaped_zip` makes an FMA-shaped ZIP64 archive to serve."""

from __future__ import annotations

import hashlib
import io
import random
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ZipServer:
    files: dict[str, bytes] = field(default_factory=dict)
    ignore_range: bool = False
    drops: list[int] = field(default_factory=list)  # cut the next responses after this many bytes
    sent: int = 0  # body bytes written to sockets, all responses
    requests: list[tuple[str, int]] = field(default_factory=list)  # (Range header, status)

    def etag(self, path: str) -> str:
        return '"' + hashlib.sha1(self.files[path]).hexdigest() + '"'

    def start(self) -> ZipServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start, end, status = 0, len(body), 200
                wanted = self.headers.get("Range", "")
                if_range = self.headers.get("If-Range")
                if (
                    wanted.startswith("bytes=")
                    and not server.ignore_range
                    and (if_range is None or if_range == server.etag(self.path))
                ):
                    first, _, last = wanted[6:].partition("-")
                    start = int(first)
                    end = min(len(body), int(last) + 1) if last else len(body)
                    status = 206 if start < len(body) else 416
                server.requests.append((wanted, status))
                if status == 416:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(status)
                self.send_header("ETag", server.etag(self.path))
                self.send_header("Accept-Ranges", "none" if server.ignore_range else "bytes")
                self.send_header("Content-Length", str(end - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(body)}")
                self.end_headers()
                cut = server.drops.pop(0) if server.drops else None
                view = memoryview(body)[start:end]
                if cut is not None:
                    view = view[:cut]
                for i in range(0, len(view), 1 << 16):
                    piece = view[i : i + (1 << 16)]
                    try:
                        self.wfile.write(piece)
                    except ConnectionError:  # the client closed: it wanted no more
                        self.close_connection = True
                        return
                    server.sent += len(piece)
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def fma_shaped_zip(
    n_tracks: int, member_bytes: int, seed: int = 1
) -> tuple[bytes, dict[int, bytes]]:
    """An fma_*-shaped archive: ``fma_x/<id[:3]>/<id>.mp3`` members of random bytes (fetch-
    dataset copies bytes; it does not decode), a sha1sum ``checksums`` file, ZIP64 forced."""
    rng = random.Random(seed)
    members = {2 + 3 * i: rng.randbytes(member_bytes) for i in range(n_tracks)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        sums = []
        for tid, data in members.items():
            name = f"{tid:06d}"
            with zf.open(f"fma_x/{name[:3]}/{name}.mp3", "w", force_zip64=True) as member:
                member.write(data)
            sums.append(f"{hashlib.sha1(data).hexdigest()}  {name[:3]}/{name}.mp3\n")
        zf.writestr("fma_x/checksums", "".join(sums))
    return buffer.getvalue(), members


__all__ = ["ZipServer", "fma_shaped_zip"]
