"""The SSRF guard: which URLs an endpoint may have, and a connection to the address that was checked.

A URL must be https and its host must resolve only to public addresses: loopback, private,
link-local (cloud metadata at 169.254.169.254 among them), multicast, reserved, shared (CGNAT)
and unspecified addresses are refused. WEBHOOK_ALLOW_LOOPBACK (development and tests) lets
loopback targets through, over plain http as well. The check runs when an endpoint is saved and
again before every delivery, which then connects to the very address it checked (no second DNS
lookup that could answer differently), sending the URL's host name in Host and TLS SNI.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(Exception):
    """The URL may not receive webhooks; the message says why (shown to the tenant)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str  # the checked IP address to connect to


def _normalised(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def refusal(address: IPAddress) -> str | None:
    """Why `address` may not be a webhook target; None when it may."""
    address = _normalised(address)
    if address.is_loopback:
        return None if settings.WEBHOOK_ALLOW_LOOPBACK else "a loopback address"
    if address.is_link_local:
        return "a link-local address (cloud metadata services live there)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "a reserved address"
    return None


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise TargetRefused(f"The host name {host!r} does not resolve.") from None
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def check_url(url: str) -> Target:
    """The target of `url` if webhooks may be sent there, else TargetRefused."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise TargetRefused("Use an https:// URL.")
    if parts.username or parts.password:
        raise TargetRefused("The URL may not contain credentials.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetRefused("The URL's port is not valid.") from None
    addresses = _resolve(parts.hostname, port)
    if not addresses:
        raise TargetRefused(f"The host name {parts.hostname!r} does not resolve.")
    for address in addresses:
        reason = refusal(address)
        if reason is not None:
            raise TargetRefused(f"The URL's host resolves to {reason} ({address}).")
    if parts.scheme == "http" and not all(_normalised(a).is_loopback for a in addresses):
        raise TargetRefused("Use an https:// URL.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, parts.hostname, port, path, str(addresses[0]))


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
        self._address = target.address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # SNI and certificate checks against the URL's host name, not the address.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def connection_to(target: Target, timeout: float) -> http.client.HTTPConnection:
    if target.scheme == "https":
        return _PinnedHTTPSConnection(target, timeout)
    return _PinnedHTTPConnection(target, timeout)
