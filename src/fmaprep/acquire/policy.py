"""Where the scraper may go: the origins (scheme, host, port) a page may send it to, and the
addresses its connections may reach.

An origin is allowed when its host is the base URL's host, its domain without ``www.`` or a
subdomain of it, or an ``--allow-host`` (``HOST`` or ``HOST:PORT``); its scheme is the base
URL's, or ``https`` where the base is ``http`` (an upgrade, never a downgrade); and its port is
the base URL's for the base scheme, else the scheme's default (or the ``--allow-host`` port).

Connections may not reach loopback, private, link-local (the cloud metadata service),
multicast or reserved addresses, checked on the connected socket after DNS, unless the base
URL itself is such an address (a mirror on the LAN, a loopback test site) or the user allows
them (``allow_private``).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from urllib.parse import urlsplit, urlunsplit

from fmaprep.acquire.http import DEFAULT_PORTS, FetchError, Target, refuse_odd_characters
from fmaprep.acquire.watch import is_public_address

log = logging.getLogger(__name__)


class BadSiteError(ValueError):
    """A ``--base-url`` or ``--allow-host`` the scraper cannot use."""


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without its ``user:password@``, and the pair (sent to that origin only)."""
    try:
        refuse_odd_characters(url)
        parts = urlsplit(url)
    except (FetchError, ValueError) as exc:
        raise BadSiteError(f"--base-url {url!r}: {exc}") from exc
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=hostport)), (user, password)


def _host_port(entry: str) -> tuple[str, int | None]:
    """``HOST`` or ``HOST:PORT`` (``[v6]:PORT``) of an ``--allow-host`` entry."""
    try:
        parts = urlsplit(f"//{entry.strip()}")
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError as exc:
        raise BadSiteError(f"--allow-host {entry!r}: {exc}") from exc
    if not host or "@" in parts.netloc or parts.path:
        raise BadSiteError(f"--allow-host {entry!r} is not HOST or HOST:PORT")
    return host, port


class SitePolicy:
    def __init__(
        self, base_url: str, allow_hosts: tuple[str, ...] = (), allow_private: bool = False
    ) -> None:
        try:
            refuse_odd_characters(base_url)
            parts = urlsplit(base_url)
            scheme, host, port = parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
        except (FetchError, ValueError) as exc:
            raise BadSiteError(f"--base-url {base_url!r}: {exc}") from exc
        if scheme not in DEFAULT_PORTS or not host or "@" in parts.netloc:
            raise BadSiteError(f"--base-url {base_url!r} is not an http(s) URL without user@")
        self.scheme, self.host = scheme, host
        self.port = port or DEFAULT_PORTS[scheme]
        self.domain = "" if _is_ip(host) else host.removeprefix("www.")
        self.allow_hosts = dict(_host_port(entry) for entry in allow_hosts)
        self.allow_private = allow_private or not _all_public(host)
        if self.allow_private and not allow_private:
            log.info("the base URL's host %s is not a public address: private addresses allowed",
                     host)  # fmt: skip

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    def refusal(self, target: Target) -> str | None:
        """Why ``target`` is not an origin pages may send us to, or None when it is."""
        if target.scheme == "http" and self.scheme == "https":
            return f"{target.url}: http after an https base URL (a downgrade)"
        if target.host in self.allow_hosts:
            port = self.allow_hosts[target.host] or DEFAULT_PORTS[target.scheme]
        elif target.host == self.host or (
            self.domain and (target.host == self.domain or target.host.endswith("." + self.domain))
        ):
            port = self.port if target.scheme == self.scheme else DEFAULT_PORTS[target.scheme]
        else:
            return f"{target.url}: host {target.host!r} is not {self.host!r} nor an --allow-host"
        if target.port != port:
            return f"{target.url}: port {target.port} is not {port}"
        return None

    def address_ok(self, address: str) -> bool:
        return self.allow_private or is_public_address(address)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _all_public(host: str) -> bool:
    """Whether every address ``host`` names (or resolves to) is public; an unresolvable name
    counts as public (its requests will fail anyway)."""
    if _is_ip(host):
        return is_public_address(host)
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return True
    return all(is_public_address(str(info[4][0])) for info in infos)
