"""Connections a request can be cut from, and the address each one reached.

A read timeout bounds each ``recv``, not a request: a server that sends one byte every few
seconds never trips it, and one ``read(64 KiB)`` of such a body blocks for hours. So every
fetch attempt gets a :class:`Watch`: the connection that carries it registers its socket there,
and the watch's deadline timer (or :meth:`Watch.cut` from a Ctrl-C) shuts that socket down,
which wakes the blocked ``recv`` at once, whatever phase the request is in.

The same hook checks where a new connection really went (``getpeername``, after DNS, so a name
that resolves to ``169.254.169.254`` or ``127.0.0.1`` is caught however it was spelled) before a
byte of the request is sent.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection

_local = threading.local()  # the watch of the request this thread is sending, if any


class AddressRefused(Exception):  # noqa: N818  (not an OSError: urllib3 must not retry or wrap it)
    """A connection reached an address the run does not allow (loopback, private, ...)."""


class Cut(Exception):  # noqa: N818
    """The request was cut (deadline or cancel) before its connection was made."""


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast address; False for loopback, private, link-local
    (the cloud metadata service at 169.254.169.254), multicast, reserved and unspecified ones,
    IPv4-mapped IPv6 forms of those included."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # (drop an IPv6 zone id)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class Watch:
    """One fetch attempt: a deadline over the time spent on the network (throttle waits are
    paused out), the socket it is using, and why it was cut (``"deadline"``, ``"cancelled"``)."""

    def __init__(
        self, budget: float | None, address_ok: Callable[[str], bool] | None = None
    ) -> None:
        self.budget = budget
        self.address_ok = address_ok
        self.reason: str | None = None
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._timer: threading.Timer | None = None
        self._resumed_at = 0.0
        # counts pauses: a timer that fires while being cancelled (Timer.cancel() cannot stop a
        # callback already running) sees a newer generation and cuts nothing
        self._generation = 0

    def resume(self) -> None:
        """Start (or continue) counting down the budget."""
        with self._lock:
            if self.budget is None or self._timer is not None:
                return
            self._resumed_at = time.monotonic()
            self._timer = threading.Timer(max(0.0, self.budget), self._expire, (self._generation,))
            self._timer.daemon = True
            self._timer.start()

    def pause(self) -> None:
        with self._lock:
            if self._timer is None or self.budget is None:
                return
            self._timer.cancel()
            self._timer = None
            self._generation += 1
            self.budget -= time.monotonic() - self._resumed_at

    def finish(self) -> None:
        """The attempt is over: its deadline stops, and its connection (back in the pool, maybe
        already another attempt's) is no longer this watch's to shut down."""
        self.pause()
        with self._lock:
            self._generation += 1
            self._sock = None

    def cut(self, reason: str) -> None:
        """End the attempt: its socket is shut down (a blocked read returns at once)."""
        self._shutdown(self._mark(reason, None))

    def _expire(self, generation: int) -> None:
        self._shutdown(self._mark("deadline", generation))

    def _mark(self, reason: str, generation: int | None) -> socket.socket | None:
        with self._lock:
            if generation is not None and generation != self._generation:
                return None  # a deadline timer that lost the race with pause()
            if self.reason is None:
                self.reason = reason
            return self._sock

    @staticmethod
    def _shutdown(sock: socket.socket | None) -> None:
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)

    def attach(self, sock: socket.socket | None) -> None:
        with self._lock:
            if self.reason is not None:
                raise Cut(self.reason)
            if sock is not None:
                self._sock = sock

    def admit(self, sock: socket.socket, proxied: bool) -> None:
        """A new connection: refuse it when it reached a forbidden address (not through a proxy
        the user chose, which does the resolving itself)."""
        if not proxied and self.address_ok is not None:
            address = str(sock.getpeername()[0])
            if not self.address_ok(address):
                raise AddressRefused(f"the connection reached {address}, which is not allowed")
        self.attach(sock)


def sending(watch: Watch | None) -> None:
    """Make ``watch`` the one the connections this thread opens or reuses report to."""
    _local.watch = watch


def _current() -> Watch | None:
    watch: Watch | None = getattr(_local, "watch", None)
    return watch


class _WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        watch = _current()
        if watch is not None:
            try:
                watch.admit(sock, proxied=self.proxy is not None)
            except BaseException:
                sock.close()
                raise
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        watch = _current()
        if watch is not None:
            watch.attach(self.sock)  # a reused connection (a new one attaches in _new_conn)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def _use_watched_pools(manager: PoolManager) -> PoolManager:
    manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
    return manager


class WatchedAdapter(HTTPAdapter):
    """requests' adapter whose connections (direct or through a proxy) report to a Watch."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _use_watched_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: Any, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, PoolManager):
            _use_watched_pools(manager)
        return manager
