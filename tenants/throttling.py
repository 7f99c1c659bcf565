"""Request counting with django-ratelimit: the tenant's licence limit and per-address abuse limits.

Two kinds of counters live in the shared counter cache (``settings.RATELIMIT_USE_CACHE``: Redis
with ``REDIS_URL``, else the PostgreSQL-backed counter of ``tenants.cache``):

- the tenant's licence: every counted API request of the tenant, against ``request_limit`` per
  ``request_period`` (``TenantLicenceThrottle``, the API's default throttle);
- abuse: failed attempts (wrong User Token, refresh token or licence key) per client address and
  scope (``guard_against_guessing`` / ``count_failed_attempt``, called by the views).

If the counter store cannot be reached the API keeps answering (fail open), logged at ERROR.
"""

from __future__ import annotations

import ipaddress
import logging
import time

from django.conf import settings
from django_ratelimit.core import get_usage
from rest_framework import exceptions

from config.client_address import client_address
from tenants import signals

logger = logging.getLogger(__name__)

# The scopes of the abuse throttle; a typo in a caller is a programming error, not a new scope.
ABUSE_SCOPES = frozenset({"token_exchange", "token_refresh", "validate"})

# Marks kept on the Django HttpRequest (the DRF Request writes through to it) for the middleware.
REFUND_ATTR = "licence_refund"


class TooManyFailedAttempts(exceptions.Throttled):
    """Too many failed attempts from one address: answered 429 {"error": "Too Many Requests"}."""


def _http_request(request):
    """The Django HttpRequest behind a DRF Request (or the HttpRequest itself)."""
    return getattr(request, "_request", request)


def address_key(request) -> str:
    """The client address as counted: an IPv6 client owns its whole /64, so it is counted as one."""
    address = client_address(_http_request(request))
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return str(ip)


# --- Fail open: a counter store that cannot be reached lets requests through.

_last_store_error_logged = 0.0
STORE_ERROR_LOG_INTERVAL = 10.0  # seconds; one ERROR line per process per interval, not per request


def _store_failed(request, error: Exception) -> None:
    global _last_store_error_logged
    now = time.monotonic()
    if now - _last_store_error_logged >= STORE_ERROR_LOG_INTERVAL:
        _last_store_error_logged = now
        logger.error(
            "Rate-limit counter store unavailable, requests are let through: %s: %s",
            type(error).__name__,
            error,
        )
    signals.counter_store_unavailable.send(
        sender=__name__, request=_http_request(request), error=type(error).__name__
    )


def _usage(request, group: str, value: str, rate: str, increment: bool) -> dict | None:
    """django-ratelimit's usage of one counter, or None when the counter store failed."""
    try:
        return get_usage(
            _http_request(request),
            group=group,
            key=lambda _group, _request: value,
            rate=rate,
            increment=increment,
        )
    except Exception as error:  # noqa: BLE001 - any store failure must fail open, never a 500
        _store_failed(request, error)
        return None


# --- Abuse throttle per client address (secret or key guessing).


def _abuse_scope(scope: str) -> str:
    if scope not in ABUSE_SCOPES:
        raise ValueError(f"Unknown abuse-throttle scope {scope!r}; one of {sorted(ABUSE_SCOPES)}")
    return f"abuse:{scope}"


def guard_against_guessing(request, scope: str) -> None:
    """Refuse the request (429 Too Many Requests, Retry-After) if its client address has failed
    too often in `scope` lately. Call it before checking the secret or key."""
    group = _abuse_scope(scope)
    usage = _usage(request, group, address_key(request), settings.ABUSE_FAILURE_RATE, False)
    if usage is None or usage["count"] < usage["limit"]:
        return
    http_request = _http_request(request)
    # A refused attempt does not use up the tenant's licence (see TenantLicenceThrottle).
    setattr(http_request, REFUND_ATTR, True)
    signals.abuse_throttled.send(
        sender=__name__, request=http_request, scope=scope, address=address_key(request)
    )
    raise TooManyFailedAttempts(wait=max(1, usage["time_left"]))


def count_failed_attempt(request, scope: str) -> None:
    """Record one failed attempt (wrong secret, unknown key) of the request's client address."""
    group = _abuse_scope(scope)
    _usage(request, group, address_key(request), settings.ABUSE_FAILURE_RATE, True)
