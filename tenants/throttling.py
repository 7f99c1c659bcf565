"""Request counting with django-ratelimit: the tenant's licence limit and per-address abuse limits.

Two kinds of counters live in the shared counter cache (``settings.RATELIMIT_USE_CACHE``: Redis
with ``REDIS_URL``, else the PostgreSQL-backed counter of ``tenants.cache``):

- the tenant's licence: every counted API request of the tenant, against ``request_limit`` per
  ``request_period`` (``TenantLicenceThrottle``, the API's default throttle);
- abuse: failed attempts (wrong User Token, refresh token or licence key) per client address and
  scope (``guard_against_guessing`` / ``count_failed_attempt``, called by the views).

A counted request reaches the store once: the throttle sends the licence increment, the count of
this attempt on the view's abuse counter (`abuse_scope`) and the usage counts the permission check
queued as one batch (tenants.counters: one EVALSHA with Redis), with django-ratelimit's keys and
windows. An attempt is counted before the secret or key is checked (exact under concurrency); one
that did not fail gives its unit back when the answer is settled. That give-back and the records
the request buffered (tenants.record_buffer) are deferred to the next round trip of the process
(tenants.counters.Outbox), so every warm request costs one.

If the counter store cannot be reached the API keeps answering (fail open), logged at ERROR.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from enum import StrEnum
from functools import lru_cache

from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django_ratelimit import ALL
from django_ratelimit.core import EXPIRATION_FUDGE, _get_window, _make_cache_key, _split_rate
from django_tenants.utils import schema_context
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

from api.client_address import address_key
from api.errors import INVALID_LICENSE, LicenceLimitReached, is_api_request, json_error
from tenants import record_buffer, signals
from tenants.counters import CounterBatch, NoScriptError, Op, RedisCache, RoundTrip

logger = logging.getLogger(__name__)


class AbuseScope(StrEnum):
    """The scopes of the abuse throttle (a view's `abuse_scope`)."""

    TOKEN_EXCHANGE = "token_exchange"
    TOKEN_REFRESH = "token_refresh"
    VALIDATE = "validate"
    ACCESS = "access"


# A typo in a caller is a programming error, not a new scope.
ABUSE_SCOPES = frozenset(scope.value for scope in AbuseScope)

LICENCE_GROUP = "licence"
# Marks kept on the Django HttpRequest (the DRF Request writes through to it) for the middleware:
# the licence counter of a counted request, and that the request must not use up the licence.
COUNTED_ATTR = "_licence_counted"
REFUND_ATTR = "_licence_refund"
# The counter operations queued for the licence count's round trip, and the abuse counters read in
# it (scope -> RateCounter).
BATCH_ATTR = "_counter_batch"
ABUSE_ATTR = "_abuse_counters"


class TooManyFailedAttempts(exceptions.Throttled):
    """Too many failed attempts from one address: answered 429 {"error": "Too Many Requests"}."""


def _http_request(request):
    """The Django HttpRequest behind a DRF Request (or the HttpRequest itself)."""
    return getattr(request, "_request", request)


def request_tenant(request):
    """The request's tenant, or None on the public domain."""
    tenant = getattr(_http_request(request), "tenant", None)
    if tenant is None or tenant.schema_name == settings.PUBLIC_SCHEMA_NAME:
        return None
    return tenant


_split_rate_once = lru_cache(maxsize=256)(_split_rate)


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


@lru_cache(maxsize=4096)  # pure: a window's key, hashed once per process and window
def _window_key(group: str, window: int, rate: str, value: str, prefix, algorithm) -> str:
    return _make_cache_key(group, window, rate, value, ALL)


class RateCounter:
    """One django-ratelimit counter (the same cache key, window and timeout as `get_usage`),
    queued into a CounterBatch so that several counters cost one round trip."""

    def __init__(self, group: str, value: str, rate: str):
        self.limit, self.period = _split_rate_once(rate)
        self.window = _get_window(value, self.period)
        # The key of this window (also for a refund: django-ratelimit has no public decrement);
        # cached with the settings _make_cache_key reads.
        self.cache_key = _window_key(
            group,
            self.window,
            rate,
            value,
            getattr(settings, "RATELIMIT_CACHE_PREFIX", "rl:"),
            getattr(settings, "RATELIMIT_HASH_ALGORITHM", None),
        )
        self.usage: dict | None = None

    def queue(self, batch: CounterBatch, op: Op) -> None:
        if not getattr(settings, "RATELIMIT_ENABLE", True):
            return  # as django-ratelimit: no usage, nothing limited
        store = caches[settings.RATELIMIT_USE_CACHE]
        timeout = self.period + EXPIRATION_FUDGE
        batch.add(store, op, self.cache_key, 1 if op == Op.INCR else 0, timeout, self._read)

    def _read(self, count: int) -> None:
        self.usage = {
            "count": count,
            "limit": self.limit,
            "should_limit": count > self.limit,
            "time_left": self.window - int(time.time()),
        }


def counter_key(group: str, value: str, rate: str) -> str:
    """The cache key django-ratelimit counts `value` of `group` under in the current window."""
    return RateCounter(group, value, rate).cache_key


def run_counters(request, batch: CounterBatch) -> bool:
    """Run the batch (fail open: False, logged, when the counter store failed)."""
    return start_counters(request, batch)()


def start_counters(request, batch: CounterBatch) -> Callable[[], bool]:
    """`run_counters` in two steps: the batch is sent now, the function returned reads its
    results (and says whether the store answered)."""
    try:
        receive = batch.start()
    except Exception as error:  # noqa: BLE001 - any store failure must fail open, never a 500
        _store_failed(request, error)
        return lambda: False

    def finish() -> bool:
        try:
            receive()
        except Exception as error:  # noqa: BLE001 - fail open
            _store_failed(request, error)
            return False
        return True

    return finish


def pending_counters(request) -> CounterBatch | None:
    """The counter operations that will go to the store with this request's licence count (one
    round trip for all), or None when there is none to join (not a tenant request, or counted)."""
    http_request = _http_request(request)
    if request_tenant(request) is None or getattr(http_request, COUNTED_ATTR, None) is not None:
        return None
    batch = getattr(http_request, BATCH_ATTR, None)
    if batch is None:
        batch = CounterBatch()
        setattr(http_request, BATCH_ATTR, batch)
    return batch


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


def _abuse_counter(request, scope: str) -> RateCounter:
    return RateCounter(_abuse_scope(scope), address_key(request), settings.ABUSE_FAILURE_RATE)


def count_abuse_attempt(request, scope: str, batch: CounterBatch) -> None:
    """Queue the count of this attempt in `scope` (an increment), for guard_against_guessing."""
    counter = _abuse_counter(request, scope)
    counter.queue(batch, Op.INCR)
    getattr(_http_request(request), ABUSE_ATTR).setdefault(scope, counter)


def _run_one(request, counter: RateCounter, op: Op) -> dict | None:
    batch = CounterBatch()
    counter.queue(batch, op)
    run_counters(request, batch)
    return counter.usage


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
    or key; the unit is given back unless `count_failed_attempt` confirms the failure. The count
    usually went to the store with the licence count (one round trip)."""
    _abuse_scope(scope)
    counter = getattr(_http_request(request), ABUSE_ATTR, {}).get(scope)
    if counter is None:  # not counted with the licence counter: count it now
        counter = _abuse_counter(request, scope)
        _run_one(request, counter, Op.INCR)
    usage = counter.usage
    if usage is None:
        return
    if usage["should_limit"]:
        raise refuse_attempt(request, scope, usage)
    reserved = getattr(_http_request(request), RESERVED_ATTR, None) or {}
    reserved[scope] = counter.cache_key
    setattr(_http_request(request), RESERVED_ATTR, reserved)


def count_failed_attempt(request, scope: str) -> dict | None:
    """Record one failed attempt (wrong secret, unknown key) of the request's client address: the
    unit counted by `guard_against_guessing` is kept, or one is counted now. The usage after it."""
    _abuse_scope(scope)
    reserved = getattr(_http_request(request), RESERVED_ATTR, None) or {}
    if reserved.pop(scope, None) is not None:
        return None
    return _run_one(request, _abuse_counter(request, scope), Op.INCR)


# A give-back as django-redis's `decr` does it (a counter whose window ended is not recreated):
# the new count, nil when the counter is gone.
GIVE_BACK_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('DECRBY', KEYS[1], ARGV[1])
end
return false
"""
GIVE_BACK_SHA = hashlib.sha1(GIVE_BACK_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis's name


def release_unconfirmed_attempts(request) -> None:
    """Give back the units of attempts that did not fail (a success, a malformed request).

    With Redis the give-backs and the records the request buffered (tenants.record_buffer.
    deferred_pushes) need no round trip of their own: they ride the next one of this process
    (tenants.counters.Outbox); with RECORD_PUSH_BEFORE_ANSWER they are sent now, before the answer
    leaves."""
    reserved = getattr(_http_request(request), RESERVED_ATTR, None) or {}
    cache_keys = list(reserved.values())
    reserved.clear()
    store = caches[settings.RATELIMIT_USE_CACHE]
    if RedisCache is None or not isinstance(store, RedisCache):
        for cache_key in cache_keys:
            give_back(request, cache_key)
        return
    entries = record_buffer.take_deferred()
    if not cache_keys and not entries:
        return
    client = store.client.get_client(write=True)
    pipe = RoundTrip(client)
    stored_keys = [store.make_key(cache_key) for cache_key in cache_keys]
    for key in stored_keys:
        pipe.evalsha(GIVE_BACK_SHA, 1, key, 1)
    lengths = record_buffer.queue_pushes(pipe, entries)

    def done(results: list) -> None:
        for key, result in zip(stored_keys, results, strict=False):
            if isinstance(result, NoScriptError):  # a restarted or flushed Redis: load it again
                try:
                    client.script_load(GIVE_BACK_SCRIPT)
                    client.evalsha(GIVE_BACK_SHA, 1, key, 1)
                except Exception as error:  # noqa: BLE001 - fail open
                    _store_failed(None, error)
            elif isinstance(result, Exception):
                _store_failed(None, result)
        pushed = results[len(stored_keys) :]
        if any(isinstance(result, Exception) for result in pushed):  # not pushed: written now
            record_buffer.pushes_failed(entries)
        else:
            record_buffer.pushes_done(client, lengths, results)

    def failed(error: Exception) -> None:  # fail open; the records are written at once
        if cache_keys:
            _store_failed(None, error)
        if entries:
            record_buffer.pushes_failed(entries)

    if not settings.RECORD_PUSH_BEFORE_ANSWER:
        pipe.defer(done, failed)
        return
    try:  # a round trip of their own, now: a worker killed after the answer loses nothing
        results = pipe.execute(raise_on_error=False)
    except Exception as error:  # noqa: BLE001 - fail open
        failed(error)
        return
    done(results)


# --- The tenant's licence: request_limit per request_period.


class LicenceCounter:
    """The licence counter of one request's tenant; `usage` is None until read or if unreadable."""

    def __init__(self, tenant):
        self.tenant = tenant
        self.limit = tenant.request_limit
        # The rate is read from the tenant row of this request, so a licence change applies at once.
        self.rate = f"{tenant.request_limit}/{tenant.period_seconds}s"
        self.value = tenant.schema_name
        self.counter: RateCounter | None = None
        self.refunded = False

    @property
    def usage(self) -> dict | None:
        return self.counter.usage if self.counter is not None else None

    def count(self, request, batch: CounterBatch | None = None) -> None:
        """Count the request (one atomic increment); with `batch`, when that batch runs."""
        self._queue(request, Op.INCR, batch)

    def read(self, request, batch: CounterBatch | None = None) -> None:
        self._queue(request, Op.GET, batch)

    def _queue(self, request, op: Op, batch: CounterBatch | None) -> None:
        self.counter = RateCounter(LICENCE_GROUP, self.value, self.rate)
        if batch is not None:
            self.counter.queue(batch, op)
            return
        batch = CounterBatch()
        self.counter.queue(batch, op)
        run_counters(request, batch)

    def refund(self, request) -> None:
        """Give the request's unit back (a 401 or an abuse-throttled attempt does not count)."""
        counter = self.counter
        if counter is None or counter.usage is None or self.refunded:
            return
        count = give_back(request, counter.cache_key)
        if count is None:
            return
        counter.usage = {**counter.usage, "count": count, "should_limit": count > self.limit}
        self.refunded = True

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
    limit)"} with Retry-After (api.errors).
    """

    def allow_request(self, request, view) -> bool:
        return self.start(request, view)()

    def start(self, request, view) -> Callable[[], bool]:
        """`allow_request` in two steps: the counts are sent now, the function returned reads
        them and decides (True, or raises). Between the two the caller may wait for something
        else, such as its database query (licensing.api.hot_path): one wait instead of two."""
        tenant = request_tenant(request)
        http_request = _http_request(request)
        if tenant is None or getattr(http_request, COUNTED_ATTR, None) is not None:
            return lambda: True
        # One round trip: what the permission check queued (usage counts), the licence count and,
        # for a view that guards against guessing, the count of this attempt.
        batch = pending_counters(request)
        counter = LicenceCounter(tenant)
        counter.count(request, batch)
        setattr(http_request, COUNTED_ATTR, counter)
        setattr(http_request, ABUSE_ATTR, {})
        scope = getattr(view, "abuse_scope", None)
        if scope is not None:
            count_abuse_attempt(request, scope, batch)
        counted = start_counters(request, batch)

        def decide() -> bool:
            counted()
            usage = counter.usage
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

        return decide


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
        tenant = request_tenant(request) if is_api_request(request) else None
        if tenant is None:
            return self.get_response(request)
        # The records the view buffers go to Redis with the give-back (release_unconfirmed_
        # attempts), deferred to the next round trip once the answer is settled.
        with record_buffer.deferred_pushes():
            if tenant.licence_expired():
                signals.licence_refused.send(sender=__name__, request=request, tenant=tenant)
                response = json_error(403, INVALID_LICENSE)
            else:
                response = self.get_response(request)
            if connection.schema_name == tenant.schema_name:  # as usual: no switch and back
                counter = self.settle(request, response, tenant)
            else:
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
        batch = getattr(request, BATCH_ATTR, None) or CounterBatch()  # queued, never run
        if getattr(request, "auth", None) is not None and response.status_code != 401:
            counter.count(request, batch)  # authenticated, refused before the throttle: counted
        else:
            counter.read(request, batch)
        run_counters(request, batch)
        return counter
