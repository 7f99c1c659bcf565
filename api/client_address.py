"""The client's address: REMOTE_ADDR, unless a trusted proxy count is configured; and the
address as throttles count it (`address_key`)."""

import ipaddress
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=4096)  # pure, and parsed on every counted request (twice for its key)
def normalise_address(address: str) -> str:
    """`address` in its canonical text form; an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, from a
    dual-stack listener or a proxy) as the IPv4 address it stands for. Not an IP: returned as is."""
    address = address.strip()
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def client_address(request) -> str:
    """The address the request came from, normalised (`normalise_address`).

    With TRUSTED_PROXY_COUNT = N > 0, the N-th entry from the right of X-Forwarded-For is taken
    (each trusted proxy appends the address it saw); entries further left are client-supplied and
    ignored. With 0 (the default), X-Forwarded-For is ignored entirely.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return normalise_address(remote)
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < proxies:
        return normalise_address(remote)
    return normalise_address(forwarded[-proxies])


def address_key(request) -> str:
    """The client address as counted: an IPv6 client owns its whole /64, so it is counted as one."""
    return _counted_address(client_address(getattr(request, "_request", request)))


@lru_cache(maxsize=4096)
def _counted_address(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return str(ip)
