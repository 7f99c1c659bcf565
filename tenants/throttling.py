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
from django.core.cache import caches
from django_ratelimit import ALL
from django_ratelimit.core import _get_window, _make_cache_key, _split_rate, get_usage
from django_tenants.utils import schema_context
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

from config.client_address import client_address
from config.errors import INVALID_LICENSE, LicenceLimitReached, is_api_request, json_error
from tenants import signals

logger = logging.getLogger(__name__)

# The scopes of the abuse throttle; a typo in a caller is a programming error, not a new scope.
ABUSE_SCOPES = frozenset({"token_exchange", "token_refresh", "validate", "access"})

LICENCE_GROUP = "licence"
# Marks kept on the Django HttpRequest (the DRF Request writes through to it) for the middleware:
# the licence counter of a counted request, and that the request must not use up the licence.
COUNTED_ATTR = "_licence_counted"
REFUND_ATTR = "_licence_refund"


class TooManyFailedAttempts(exceptions.Throttled):
    """Too many failed attempts from one address: answered 429 {"error": "Too Many Requests"}."""


def _http_request(request):
    """The Django HttpRequest behind a DRF Request (or the HttpRequest itself)."""
    return getattr(request, "_request", request)


def _tenant(request):
    """The request's tenant, or None on the public domain."""
    tenant = getattr(_http_request(request), "tenant", None)
    if tenant is None or tenant.schema_name == settings.PUBLIC_SCHEMA_NAME:
        return None
    return tenant


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
#
# Exact under concurrency: an attempt is counted (one atomic increment) before the secret or key is
# checked, and refused when that count passes the limit, so N concurrent wrong attempts evaluate at
# most `limit` of them. An attempt that turns out not to be a failure gives its unit back when the
# answer is settled (TenantLicenceMiddleware).

RESERVED_ATTR = "_abuse_reserved"  # {scope: counter cache key} of units not yet known as failures


def _abuse_scope(scope: str) -> str:
    if scope not in ABUSE_SCOPES:
        raise ValueError(f"Unknown abuse-throttle scope {scope!r}; one of {sorted(ABUSE_SCOPES)}")
    return f"abuse:{scope}"


def counter_key(group: str, value: str, rate: str) -> str:
    """The cache key django-ratelimit counts `value` of `group` under in the current window."""
    _limit, period = _split_rate(rate)
    return _make_cache_key(group, _get_window(value, period), rate, value, ALL)


def give_back(request, cache_key: str) -> int | None:
    """Decrement a counter (django-ratelimit has no public decrement); its count, None if gone."""
    try:
        return caches[settings.RATELIMIT_USE_CACHE].decr(cache_key)
    except ValueError:  # the window ended meanwhile: nothing to give back
        return None
    except Exception as error:  # noqa: BLE001 - fail open
        _store_failed(request, error)
        return None


def refuse_attempt(request, scope: str, usage: dict) -> TooManyFailedAttempts:
    """Signal an attempt refused by the abuse throttle; the exception that answers it (429)."""
    http_request = _http_request(request)
    # A refused attempt does not use up the tenant's licence (see TenantLicenceThrottle).
    setattr(http_request, REFUND_ATTR, True)
    signals.abuse_throttled.send(
        sender=__name__, request=http_request, scope=scope, address=address_key(request)
    )
    return TooManyFailedAttempts(wait=max(1, usage["time_left"]))


def guard_against_guessing(request, scope: str) -> None:
    """Count this attempt in `scope` for its client address and refuse it (429 Too Many Requests,
    Retry-After) if the address has failed too often lately. Call it before checking the secret
    or key; the unit is given back unless `count_failed_attempt` confirms the failure."""
    group, value, rate = _abuse_scope(scope), address_key(request), settings.ABUSE_FAILURE_RATE
    usage = _usage(request, group, value, rate, True)
    if usage is None:
        return
    if usage["should_limit"]:
        raise refuse_attempt(request, scope, usage)
    reserved = getattr(_http_request(request), RESERVED_ATTR, None) or {}
    reserved[scope] = counter_key(group, value, rate)
    setattr(_http_request(request), RESERVED_ATTR, reserved)


def count_failed_attempt(request, scope: str) -> dict | None:
    """Record one failed attempt (wrong secret, unknown key) of the request's client address: the
    unit counted by `guard_against_guessing` is kept, or one is counted now. The usage after it."""
    group = _abuse_scope(scope)
    reserved = getattr(_http_request(request), RESERVED_ATTR, None) or {}
    if reserved.pop(scope, None) is not None:
        return None
    return _usage(request, group, address_key(request), settings.ABUSE_FAILURE_RATE, True)


def release_unconfirmed_attempts(request) -> None:
    """Give back the units of attempts that did not fail (a success, a malformed request)."""
    reserved = getattr(_http_request(request), RESERVED_ATTR, None) or {}
    while reserved:
        _scope, cache_key = reserved.popitem()
        give_back(request, cache_key)


# --- The tenant's licence: request_limit per request_period.


class LicenceCounter:
    """The licence counter of one request's tenant; `usage` is None until read or if unreadable."""

    def __init__(self, tenant):
        self.tenant = tenant
        self.limit = tenant.request_limit
        # The rate is read from the tenant row of this request, so a licence change applies at once.
        self.rate = f"{tenant.request_limit}/{tenant.period_seconds}s"
        self.value = tenant.schema_name
        self.usage: dict | None = None
        self.cache_key: str | None = None

    def count(self, request) -> dict | None:
        """Count the request (one atomic increment) and return the usage after it."""
        self.cache_key = counter_key(LICENCE_GROUP, self.value, self.rate)  # for a refund
        self.usage = _usage(request, LICENCE_GROUP, self.value, self.rate, increment=True)
        return self.usage

    def read(self, request) -> dict | None:
        self.usage = _usage(request, LICENCE_GROUP, self.value, self.rate, increment=False)
        return self.usage

    def refund(self, request) -> None:
        """Give the request's unit back (a 401 or an abuse-throttled attempt does not count)."""
        if self.usage is None or self.cache_key is None:
            return
        count = give_back(request, self.cache_key)
        if count is None:
            return
        self.usage = {**self.usage, "count": count, "should_limit": count > self.limit}
        self.cache_key = None

    def remaining(self) -> int:
        used = self.usage["count"] if self.usage is not None else 0
        return max(0, self.limit - used)

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining()),
        }


def licence_counter(request) -> LicenceCounter | None:
    """The licence counter of this request, once the throttle has counted it."""
    return getattr(_http_request(request), COUNTED_ATTR, None)


class TenantLicenceThrottle(BaseThrottle):
    """The API's default throttle: counts each request of a tenant against its licence.

    DRF runs it after authentication and the permission check, so a request with a bad or missing
    token (401) is never counted; views without authentication (token exchange, validation) are
    counted here too, and TenantLicenceMiddleware gives the unit back if they end in 401 or in the
    abuse throttle's 429. Past the limit: 429 {"error": "Too Many Requests (Reached license
    limit)"} with Retry-After (config.errors).
    """

    def allow_request(self, request, view) -> bool:
        tenant = _tenant(request)
        http_request = _http_request(request)
        if tenant is None or getattr(http_request, COUNTED_ATTR, None) is not None:
            return True
        counter = LicenceCounter(tenant)
        setattr(http_request, COUNTED_ATTR, counter)
        usage = counter.count(request)
        if usage is None or not usage["should_limit"]:
            return True
        signals.request_limit_reached.send(
            sender=__name__,
            request=http_request,
            tenant=tenant,
            limit=tenant.request_limit,
            period=tenant.period_seconds,
        )
        raise LicenceLimitReached(wait=max(1, usage["time_left"]))


class TenantLicenceMiddleware:
    """Enforces the tenant's platform licence on /v1/ and reports its counter on every answer.

    - An expired licence answers every /v1/ request of the tenant 403 {"error": "Invalid license"}
      (the admin stays reachable, so the operator can renew).
    - Every /v1/ answer of a tenant carries X-RateLimit-Limit and X-RateLimit-Remaining.
    - An authenticated request answered before the throttle ran (403 Access denied) is counted
      here; a counted request that ended in 401 or in the abuse throttle's 429 is given back.

    Placed right after the tenant middleware, so it sees every answer of the API.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        tenant = _tenant(request) if is_api_request(request) else None
        if tenant is None:
            return self.get_response(request)
        if tenant.licence_expired():
            signals.licence_refused.send(sender=__name__, request=request, tenant=tenant)
            response = json_error(403, INVALID_LICENSE)
        else:
            response = self.get_response(request)
        with schema_context(tenant.schema_name):  # cache keys carry the tenant's schema
            counter = self.settle(request, response, tenant)
        for name, value in counter.headers().items():
            response[name] = value
        return response

    @staticmethod
    def settle(request, response, tenant) -> LicenceCounter:
        release_unconfirmed_attempts(request)
        counter = getattr(request, COUNTED_ATTR, None)
        if counter is not None:
            if response.status_code == 401 or getattr(request, REFUND_ATTR, False):
                counter.refund(request)
            return counter
        counter = LicenceCounter(tenant)
        if getattr(request, "auth", None) is not None and response.status_code != 401:
            counter.count(request)  # authenticated, refused before the throttle: still a request
        else:
            counter.read(request)
        return counter
