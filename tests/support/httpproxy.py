"""A small recording reverse proxy for an S3 server, with latency and fault injection.

Benchmarks and tests put it in front of the loopback S3 server (s3proxy) to see exactly which S3
requests a run makes and how many bytes each moves, to add the round trip that real S3 costs
(``delay_ms`` before every request is forwarded), and to inject failures (503 SlowDown, or a
GetObject response whose connection drops mid-body).

Requests are forwarded byte for byte: method, the raw request target (path and query string as
the client wrote them) and every header, ``Host`` included, so AWS signatures (v2, v4, and the
chunk signatures of ``aws-chunked`` bodies) verify at the upstream as they were signed. Only
hop-by-hop headers (``Connection``, ``Keep-Alive``, ...) are not passed on. Bodies stream in both
directions (fixed ``Content-Length`` or ``Transfer-Encoding: chunked``, whose framing and trailers
are relayed as they are); ``Expect: 100-continue`` is answered by the upstream's own interim
response. Client connections are kept alive, each with one kept-alive upstream connection.

Python API::

    with S3Proxy("http://127.0.0.1:29105", delay_ms=20) as proxy:
        client = boto3.client("s3", endpoint_url=proxy.url, ...)
        ...
        [r.operation for r in proxy.requests()]   # ["PutObject", "GetObject", ...]
        proxy.fail_next("GetObject", 2)           # the next 2 GetObjects get 503 SlowDown
        proxy.drop_next("GetObject")              # the next one is cut off mid-body
        proxy.reset()                             # forget the records (and armed faults)
        proxy.before_forward = hook               # hook(operation, key) before each request

CLI (for benchmark scripts; prints its URL on the first line of stdout, runs until killed)::

    PYTHONPATH=tests python -m support.httpproxy --upstream http://127.0.0.1:29105 --delay-ms 20 \\
        --log requests.jsonl

Path-style requests only (``http://host/bucket/key``), which is what the local services use.
Standard library only; not part of the job.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import email.message
import http.client
import io
import json
import logging
import select
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

_BUF = 256 * 1024
_MAX_LINE = 65536
# Not forwarded (RFC 9110 7.6.1). Transfer-Encoding is forwarded: bodies are relayed framed as
# the client framed them.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"}
)
_EXPECT_WAIT_S = 1.0  # how long the upstream may take to answer "Expect: 100-continue"


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One request as it passed through the proxy."""

    seq: int  # arrival order, from 0 (since the last reset)
    method: str
    path: str  # the raw request target: path and query string as sent
    operation: str  # the S3 operation, e.g. "GetObject" (see s3_operation)
    bucket: str | None
    key: str | None  # URL-decoded
    copy_source: str | None  # the x-amz-copy-source header (CopyObject, UploadPartCopy)
    request_bytes: int  # body bytes received from the client (after HTTP chunked de-framing)
    payload_bytes: int  # x-amz-decoded-content-length for aws-chunked bodies, else request_bytes
    status: int  # the response status the client got (0: none, the connection was dropped)
    response_bytes: int  # response body bytes sent to the client
    fault: str | None  # None, "SlowDown" (503 injected, not forwarded) or "dropped"
    started: float  # time.time() when the request's headers had arrived
    duration_s: float  # until the response was sent (delay included)
    error: str | None = None  # what went wrong talking to the upstream or the client

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def s3_operation(method: str, target: str, headers: Iterable[tuple[str, str]]) -> str:
    """The S3 API operation a path-style request is (``"Unknown"`` when it is none we know)."""
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True)
    names = {name.lower(): value for name, value in headers}
    segments = parts.path.lstrip("/").split("/", 1)
    bucket = segments[0]
    key = segments[1] if len(segments) > 1 else ""
    method = method.upper()

    def sub(*resources: str) -> str | None:
        return next((r for r in resources if r in query), None)

    if not bucket:
        return "ListBuckets" if method == "GET" else "Unknown"
    if not key:
        bucket_subresources = {
            "acl": "Acl", "cors": "Cors", "lifecycle": "LifecycleConfiguration",
            "location": "Location", "policy": "Policy", "tagging": "Tagging",
            "versioning": "Versioning", "website": "Website", "encryption": "Encryption",
            "notification": "NotificationConfiguration", "logging": "Logging",
        }  # fmt: skip
        found = sub(*bucket_subresources)
        if method == "GET":
            if found:
                return "GetBucket" + bucket_subresources[found]
            if "uploads" in query:
                return "ListMultipartUploads"
            if "versions" in query:
                return "ListObjectVersions"
            return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
        if method == "PUT":
            return "PutBucket" + bucket_subresources[found] if found else "CreateBucket"
        if method == "DELETE":
            return "DeleteBucket" + bucket_subresources[found] if found else "DeleteBucket"
        if method == "HEAD":
            return "HeadBucket"
        if method == "POST" and "delete" in query:
            return "DeleteObjects"
        return "Unknown"
    copy = "x-amz-copy-source" in names
    if method == "GET":
        if "uploadId" in query:
            return "ListParts"
        found = sub("acl", "tagging", "attributes", "legal-hold", "retention", "torrent")
        if found:
            return "GetObject" + {"acl": "Acl", "tagging": "Tagging", "attributes": "Attributes",
                                  "legal-hold": "LegalHold", "retention": "Retention",
                                  "torrent": "Torrent"}[found]  # fmt: skip
        return "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "PUT":
        if "partNumber" in query and "uploadId" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        found = sub("acl", "tagging", "legal-hold", "retention")
        if found:
            return "PutObject" + {"acl": "Acl", "tagging": "Tagging", "legal-hold": "LegalHold",
                                  "retention": "Retention"}[found]  # fmt: skip
        return "CopyObject" if copy else "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        if "restore" in query:
            return "RestoreObject"
        if "select" in query:
            return "SelectObjectContent"
        return "PostObject"
    if method == "DELETE":
        if "uploadId" in query:
            return "AbortMultipartUpload"
        return "DeleteObjectTagging" if "tagging" in query else "DeleteObject"
    return "Unknown"


def slow_down_body(resource: str) -> bytes:
    """S3's XML error document for 503 SlowDown."""
    request_id = uuid.uuid4().hex[:16].upper()
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
        f"<Resource>{_xml_escape(resource)}</Resource><RequestId>{request_id}</RequestId>"
        "<HostId>fmaprep-httpproxy</HostId></Error>"
    ).encode()


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _Faults:
    """Armed faults: per operation, how many requests still to fail or to cut off."""

    def __init__(self) -> None:
        self.fail: dict[str, int] = {}
        self.drop: dict[str, tuple[int, int | None]] = {}

    def take_fail(self, operation: str) -> bool:
        for name in (operation, "*"):
            if self.fail.get(name, 0) > 0:
                self.fail[name] -= 1
                return True
        return False

    def take_drop(self, operation: str) -> tuple[bool, int | None]:
        count, after = self.drop.get(operation, (0, None))
        if count > 0:
            self.drop[operation] = (count - 1, after)
            return True, after
        return False, None


class _Upstream:
    """One kept-alive HTTP/1.1 connection to the upstream server."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.sock: socket.socket | None = None
        self.rfile: io.BufferedReader | None = None
        self.reused = False

    def connect(self) -> None:
        """Open a connection unless a usable one is already open."""
        if self.sock is not None:
            # An idle kept-alive socket that is readable has been closed by the server.
            readable, _, _ = select.select([self.sock], [], [], 0)
            if not readable:
                self.reused = True
                return
            self.close()
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = cast(io.BufferedReader, self.sock.makefile("rb", buffering=_BUF))
        self.reused = False

    def close(self) -> None:
        if self.rfile is not None:
            self.rfile.close()
        if self.sock is not None:
            self.sock.close()
        self.sock = self.rfile = None

    def send(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.sendall(data)

    def readable_within(self, seconds: float) -> bool:
        assert self.sock is not None
        readable, _, _ = select.select([self.sock], [], [], seconds)
        return bool(readable)

    def read_head(self) -> tuple[bytes, int, http.client.HTTPMessage]:
        """One response's status line (raw), status code and headers."""
        assert self.rfile is not None
        line = self.rfile.readline(_MAX_LINE + 1)
        if not line:
            raise ConnectionError("the upstream closed the connection without a response")
        fields = line.split(None, 2)
        if len(fields) < 2 or not fields[0].startswith(b"HTTP/"):
            raise ConnectionError(f"bad status line from the upstream: {line[:100]!r}")
        status = int(fields[1])
        headers = http.client.parse_headers(self.rfile)
        return line, status, headers


def _copy_exact(src: io.BufferedIOBase, dst_write: Any, n: int) -> None:
    """Copy exactly ``n`` bytes from ``src`` to ``dst_write``; EOF first is an error."""
    while n > 0:
        chunk = src.read(min(n, _BUF))
        if not chunk:
            raise ConnectionError(f"connection closed with {n} body bytes still to come")
        dst_write(chunk)
        n -= len(chunk)


def _relay_chunked(src: io.BufferedIOBase, dst_write: Any, before_end: Any = None) -> int:
    """Relay a ``Transfer-Encoding: chunked`` body as it is framed (extensions and trailers
    included); return the number of data bytes in it. ``before_end()`` runs before the body's
    last line is written."""
    total = 0
    while True:
        line = src.readline(_MAX_LINE + 1)
        if not line.endswith(b"\n"):
            raise ConnectionError("connection closed inside a chunked body")
        size = int(line.split(b";", 1)[0].strip(), 16)
        dst_write(line)
        if size == 0:
            break
        _copy_exact(src, dst_write, size + 2)  # the data and its CRLF
        total += size
    while True:  # trailer fields, then the empty line
        line = src.readline(_MAX_LINE + 1)
        if not line.endswith(b"\n"):
            raise ConnectionError("connection closed inside a chunked body's trailer")
        if line in (b"\r\n", b"\n"):
            if before_end is not None:
                before_end()
            dst_write(line)
            return total
        dst_write(line)


class _BodySink:
    """Writes a request body upstream; once the upstream stops reading, keeps taking (and
    dropping) the client's bytes, so that the client finishes sending and reads the answer."""

    def __init__(self, up: _Upstream) -> None:
        self.up = up
        self.error: OSError | None = None

    def __call__(self, data: bytes) -> None:
        if self.error is None:
            try:
                self.up.send(data)
            except OSError as exc:
                self.error = exc


def _framing(headers: email.message.Message) -> tuple[bool, int | None]:
    """(chunked, content length) of a message."""
    te = ",".join(headers.get_all("Transfer-Encoding") or []).lower()
    if "chunked" in te:
        return True, None
    length = headers.get("Content-Length")
    return False, int(length) if length is not None else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server: _Server
    upstream: _Upstream
    _finishing: bool
    timeout = 300.0  # idle seconds on a client connection

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.upstream = _Upstream(*self.server.proxy.upstream_addr, timeout=300.0)
        self.server.proxy.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.upstream.close()
            self.server.proxy.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def handle_expect_100(self) -> bool:
        # The upstream answers "Expect: 100-continue" (see _forward), not this server.
        return True

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._proxy
        raise AttributeError(name)

    # ------------------------------------------------------------------ one request
    def _proxy(self) -> None:
        proxy = self.server.proxy
        started = time.time()
        t0 = time.monotonic()
        headers = list(self.headers.items())
        operation = s3_operation(self.command, self.path, headers)
        bucket, _, key = unquote(urlsplit(self.path).path.lstrip("/")).partition("/")
        chunked, length = _framing(self.headers)
        expect = (self.headers.get("Expect") or "").lower() == "100-continue"
        state: dict[str, Any] = {
            "request_bytes": 0, "status": 0, "response_bytes": 0, "fault": None, "error": None,
        }  # fmt: skip
        self._finishing = False
        try:
            if proxy.delay_ms > 0:
                time.sleep(proxy.delay_ms / 1000)
            if proxy.before_forward is not None:
                proxy.before_forward(operation, key or None)
            fail, drop, drop_after = proxy.take_faults(operation)
            if fail:
                self._slow_down(chunked, length, expect, state)
            else:
                self._forward(
                    chunked, length, expect, drop=drop, drop_after=drop_after, state=state
                )
        except (OSError, ValueError) as exc:  # ConnectionError and socket timeouts are OSErrors
            state["error"] = f"{type(exc).__name__}: {exc}"
            self.close_connection = True
            self.upstream.close()
            if state["status"] == 0 and not state.get("sent_head"):
                self._send_simple(502, f"fmaprep httpproxy: upstream error: {exc}\n".encode())
                state["status"] = 502
        finally:
            decoded = self.headers.get("x-amz-decoded-content-length")
            proxy.record(
                method=self.command,
                path=self.path,
                operation=operation,
                bucket=bucket or None,
                key=key or None,
                copy_source=self.headers.get("x-amz-copy-source"),
                request_bytes=state["request_bytes"],
                payload_bytes=int(decoded) if decoded else state["request_bytes"],
                status=state["status"],
                response_bytes=state["response_bytes"],
                fault=state["fault"],
                started=started,
                duration_s=time.monotonic() - t0,
                error=state["error"],
                finishing=self._finishing,
            )

    def _send_simple(self, status: int, body: bytes, extra: Sequence[tuple[str, str]] = ()) -> None:
        try:
            head = [f"HTTP/1.1 {status} {http.client.responses.get(status, '')}"]
            head += [f"{k}: {v}" for k, v in extra]
            head.append(f"Content-Length: {len(body)}")
            if self.close_connection:
                head.append("Connection: close")
            payload = body if self.command != "HEAD" else b""
            self._last_write()
            self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        except OSError:
            self.close_connection = True

    def _slow_down(
        self, chunked: bool, length: int | None, expect: bool, state: dict[str, Any]
    ) -> None:
        """Answer 503 SlowDown without forwarding (the body, if any, is read and dropped)."""
        state["fault"] = "SlowDown"
        if expect and (chunked or length):
            self.close_connection = True  # the client waits for 100 and does not send the body
        elif chunked:
            state["request_bytes"] = _relay_chunked(self.rfile, lambda _b: None)
        elif length:
            _copy_exact(self.rfile, lambda _b: None, length)
            state["request_bytes"] = length
        body = slow_down_body(urlsplit(self.path).path)
        request_id = uuid.uuid4().hex[:16].upper()
        extra = [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)]
        self._send_simple(503, body, extra)
        state["status"] = 503
        state["response_bytes"] = len(body) if self.command != "HEAD" else 0

    def _forward(
        self,
        chunked: bool,
        length: int | None,
        expect: bool,
        *,
        drop: bool,
        drop_after: int | None,
        state: dict[str, Any],
    ) -> None:
        up = self.upstream
        head = [f"{self.command} {self.path} HTTP/1.1\r\n"]
        head += [f"{k}: {v}\r\n" for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP]
        head.append("\r\n")
        head_bytes = "".join(head).encode("latin-1")
        has_body = chunked or bool(length)
        for attempt in (1, 2):
            up.connect()
            try:
                up.send(head_bytes)
                break
            except OSError:
                # A kept-alive connection the server had closed: nothing was sent, try afresh.
                up.close()
                if attempt == 2 or not up.reused:
                    raise
        status_line, status, resp = b"", 0, http.client.HTTPMessage()
        got_final = False
        if expect and has_body:
            if up.readable_within(_EXPECT_WAIT_S):
                status_line, status, resp = up.read_head()
                got_final = status >= 200
            if got_final:
                # Refused before the body (e.g. 403): the client will not send it, or may; in
                # either case this connection cannot be reused after the response.
                self.close_connection = True
            else:
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if not got_final:
            sink = _BodySink(up)
            if chunked:
                state["request_bytes"] = _relay_chunked(self.rfile, sink)
            elif length:
                _copy_exact(self.rfile, sink, length)
                state["request_bytes"] = length
            if sink.error is not None:
                # The upstream stopped reading mid-body: it has answered early (a 403 for a bad
                # signature) and closed. Its answer is already in our receive buffer: relay it.
                self.close_connection = True
                try:
                    status_line, status, resp = up.read_head()
                except OSError:
                    raise sink.error from None
            else:
                status_line, status, resp = up.read_head()
            while 100 <= status < 200:  # a late 100 Continue, or another interim response
                status_line, status, resp = up.read_head()
        self._relay_response(
            status_line, status, resp, drop=drop, drop_after=drop_after, state=state
        )

    def _relay_response(
        self,
        status_line: bytes,
        status: int,
        resp: http.client.HTTPMessage,
        *,
        drop: bool,
        drop_after: int | None,
        state: dict[str, Any],
    ) -> None:
        up = self.upstream
        assert up.rfile is not None
        chunked, length = _framing(resp)
        no_body = self.command == "HEAD" or status in (204, 304) or 100 <= status < 200
        until_close = not no_body and not chunked and length is None
        up_close = until_close or "close" in (resp.get("Connection") or "").lower()
        if until_close:
            self.close_connection = True
        drop = drop and not no_body and 200 <= status < 300
        head = [status_line.decode("latin-1").rstrip("\r\n") + "\r\n"]
        head += [f"{k}: {v}\r\n" for k, v in resp.items() if k.lower() not in _HOP_BY_HOP]
        if self.close_connection:
            head.append("Connection: close\r\n")
        head.append("\r\n")
        if no_body or (length == 0 and not drop):
            self._last_write()
        self.wfile.write("".join(head).encode("latin-1"))
        state["status"] = status
        state["sent_head"] = True
        if drop:
            self._relay_cut(length, drop_after, state)
        else:
            self._relay_body(chunked, length, no_body, state)
            if up_close:
                up.close()

    def _to_client(self, length: int | None, state: dict[str, Any]) -> Any:
        """A writer to the client that counts into state["response_bytes"] and knows, from
        ``length``, when it writes the response's last bytes."""

        def write(data: bytes) -> None:
            if state["response_bytes"] + len(data) == length:
                self._last_write()
            self.wfile.write(data)
            state["response_bytes"] += len(data)

        return write

    def _relay_body(
        self, chunked: bool, length: int | None, no_body: bool, state: dict[str, Any]
    ) -> None:
        rfile = self.upstream.rfile
        assert rfile is not None
        if no_body:
            return
        if chunked:
            state["response_bytes"] = _relay_chunked(rfile, self.wfile.write, self._last_write)
        elif length is not None:
            _copy_exact(rfile, self._to_client(length, state), length)
        else:
            write = self._to_client(None, state)
            while chunk := rfile.read1(_BUF):
                write(chunk)

    def _relay_cut(self, length: int | None, drop_after: int | None, state: dict[str, Any]) -> None:
        """Relay part of the body, then reset the client connection (the injected fault)."""
        rfile = self.upstream.rfile
        assert rfile is not None
        state["fault"] = "dropped"
        total = length if length is not None else 2 * _BUF
        cut = drop_after if drop_after is not None else total // 2
        cut = max(0, min(cut, total - 1))
        _copy_exact(rfile, self._to_client(None, state), cut)
        self.close_connection = True
        self.upstream.close()
        self._last_write()
        self._abort_client()

    def _last_write(self) -> None:
        """Called just before the last bytes of a response go out: from then on, until the
        request is recorded, ``requests()`` waits for its record (a client that has its whole
        response must find the request recorded)."""
        if not self._finishing:
            self._finishing = True
            self.server.proxy.finishing(1)

    def _abort_client(self) -> None:
        """Cut the client connection off now (a reset, as a network failure looks)."""
        try:
            self.wfile.flush()
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    proxy: S3Proxy


class S3Proxy:
    """A recording reverse proxy in front of ``upstream`` (``http://host:port``).

    ``delay_ms`` is slept before each request is forwarded (it may be changed while running).
    Use as a context manager, or call ``start()`` and ``close()``.
    """

    def __init__(
        self,
        upstream: str,
        delay_ms: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        log_file: str | Path | None = None,
    ) -> None:
        parts = urlsplit(upstream if "//" in upstream else f"http://{upstream}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self.upstream_addr = (parts.hostname, parts.port or 80)
        self.delay_ms = delay_ms
        # Called as before_forward(operation, key) in the request's thread before it is
        # forwarded, so a test can change the upstream at an exact moment of a run.
        self.before_forward: Callable[[str, str | None], None] | None = None
        self._bind = (host, port)
        self._lock = threading.Lock()
        self._recorded = threading.Condition(self._lock)
        self._finishing = 0  # responses whose last bytes are out but which are not recorded yet
        self._records: list[RequestRecord] = []
        self._seq = 0
        self._faults = _Faults()
        self._connections: set[socket.socket] = set()
        self._log: IO[str] | None = (
            open(log_file, "a", encoding="utf-8") if log_file is not None else None  # noqa: SIM115
        )
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ life cycle
    def start(self) -> S3Proxy:
        server = _Server(self._bind, _Handler)
        server.proxy = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="s3proxy-http",
            daemon=True,
        )  # fmt: skip
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # wake handler threads waiting on idle kept-alive clients
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> S3Proxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the endpoint to give S3 clients."""
        return f"http://{self._bind[0]}:{self.port}"

    # ------------------------------------------------------------------ records
    def requests(self) -> list[RequestRecord]:
        """The requests completed so far (since the last reset), in completion order: every
        request whose response a client has read in full is in it."""
        with self._recorded:
            self._recorded.wait_for(lambda: self._finishing == 0, timeout=5)
            return list(self._records)

    def reset(self) -> None:
        """Forget the recorded requests and disarm all faults."""
        with self._lock:
            self._records.clear()
            self._seq = 0
            self._faults = _Faults()

    def finishing(self, n: int) -> None:
        with self._recorded:
            self._finishing += n

    def record(self, *, finishing: bool, **fields: Any) -> None:
        with self._recorded:
            if finishing:
                self._finishing -= 1
                self._recorded.notify_all()
            rec = RequestRecord(seq=self._seq, **fields)
            self._seq += 1
            self._records.append(rec)
            if self._log is not None:
                self._log.write(rec.to_json() + "\n")
                self._log.flush()

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # ------------------------------------------------------------------ faults
    def fail_next(self, operation: str = "*", count: int = 1) -> None:
        """Answer the next ``count`` requests of ``operation`` (``"*"``: any) with 503 SlowDown,
        S3's XML error body, without forwarding them."""
        with self._lock:
            self._faults.fail[operation] = self._faults.fail.get(operation, 0) + count

    def drop_next(
        self, operation: str = "GetObject", count: int = 1, after_bytes: int | None = None
    ) -> None:
        """Cut the connection of the next ``count`` successful ``operation`` responses after
        ``after_bytes`` body bytes (default: half the body), with a TCP reset."""
        with self._lock:
            current = self._faults.drop.get(operation, (0, None))[0]
            self._faults.drop[operation] = (current + count, after_bytes)

    def take_faults(self, operation: str) -> tuple[bool, bool, int | None]:
        with self._lock:
            if self._faults.take_fail(operation):
                return True, False, None
            drop, after = self._faults.take_drop(operation)
            return False, drop, after


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="PYTHONPATH=tests python -m support.httpproxy",
        description="A recording reverse proxy for an S3 server, with a fixed delay per request. "
        "Prints its URL on the first line of stdout and runs until killed.",
        epilog="example: PYTHONPATH=tests python -m support.httpproxy "
        "--upstream http://127.0.0.1:29105 "
        "--delay-ms 20 --log requests.jsonl",
    )
    parser.add_argument("--upstream", required=True, help="the S3 server, http://host:port")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free)")
    parser.add_argument("--delay-ms", type=float, default=0.0,
                        help="delay before each request is forwarded (0)")  # fmt: skip
    parser.add_argument("--log", help="append one JSON line per request to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with S3Proxy(args.upstream, args.delay_ms, args.host, args.port, args.log) as proxy:
        print(proxy.url, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
