"""Usage of each User Token: authorised requests per day and, per permission, when it was last
exercised. (Last-used time and address are written by tokens.services.mark_used.)

Counting adds no database write to a request: counts and times are kept in the default cache
(Redis when REDIS_URL is set; atomic `add`/`incr`) and written to the database at most about once
a minute per token, by the first request that finds the token's flush interval over, and by
`manage.py flush_usage` (and the dashboard and the audit commands) for tokens that went quiet.
Pending counts live in the cache, so a crashed worker loses nothing and a lost cache at most
about a minute of counts.

Cache keys carry the tenant's schema (django-tenants' make_key), so tenants never mix.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.db import connection, transaction
from django.utils import timezone

from monitoring.models import TokenPermissionUsage, TokenUsageDay
from tenants import counters
from tenants.counters import CounterBatch, Op
from tokens.catalogue import ALL_PERMISSIONS
from tokens.models import UserToken

# Pending counts stay in the cache this long (a token unused since is flushed by the command).
PENDING_TTL = int(timedelta(days=3).total_seconds())
PENDING_DAYS = 3

logger = logging.getLogger(__name__)


def flush_interval() -> int:
    return settings.USAGE_FLUSH_SECONDS


def _ref(token: UserToken) -> str:
    """The token in cache keys: its id and creation time, so a reused id (a restored database)
    never inherits another token's pending counts."""
    return f"{token.pk}.{int(token.created_at.timestamp() * 1000)}"


def _requests_key(token: UserToken, day: date) -> str:
    return f"usage:{_ref(token)}:requests:{day.isoformat()}"


def _permission_key(token: UserToken, code: str) -> str:
    return f"usage:{_ref(token)}:permission:{code}"


def _interval_key(token: UserToken) -> str:
    return f"usage:{_ref(token)}:interval"


def _seen_key(token: UserToken) -> str:
    return f"usage:{_ref(token)}:seen"


def incr(store, key: str, timeout: int, delta: int = 1) -> int:
    """Atomically add `delta` to a counter, creating it (with `timeout`) when missing."""
    return counters.increment(store, key, delta, timeout)


def count_request(
    user_token: UserToken,
    permissions_used,
    now: datetime | None = None,
    batch: CounterBatch | None = None,
) -> None:
    """Count one authorised request of `user_token` that exercised `permissions_used`.

    Only cache operations (queued into `batch` when given, so they share the request's round trip
    to the counter store: tenants.counters), except at most once per flush interval and token,
    when the pending counts of the token are written to the database (never on a token's first
    request).
    """
    if not settings.USAGE_TRACKING:
        return
    now = now or timezone.now()
    store = caches[DEFAULT_CACHE_ALIAS]
    own_batch = batch is None
    if own_batch:
        batch = CounterBatch()
    batch.add(store, Op.INCR, _requests_key(user_token, now.date()), 1, PENDING_TTL)
    stamp = int(now.timestamp())
    for code in permissions_used:
        batch.add(store, Op.SET, _permission_key(user_token, str(code)), stamp, PENDING_TTL)
    # A new flush interval starts: flush, unless it is the token's very first (nothing to write).
    started = []
    batch.add(store, Op.ADD, _interval_key(user_token), 1, flush_interval(), started.append)
    batch.add(
        store,
        Op.ADD,
        _seen_key(user_token),
        1,
        PENDING_TTL,
        lambda first_seen: _flush_if_due(user_token, now, started[0] and not first_seen),
    )
    if own_batch:
        batch.run()


def _flush_if_due(user_token: UserToken, now: datetime, due: bool) -> None:
    if not due:
        return
    try:
        flush_tokens([user_token], now)
    except Exception:  # counting must never break the request it counts; the counts stay pending
        logger.exception("Could not flush the usage counts of User Token %s", user_token.pk)


def flush_tokens(tokens, now: datetime | None = None) -> tuple[int, int]:
    """Write the pending counts of `tokens` to the database, reading them all in one cache round
    trip: (requests written, permission uses written)."""
    now = now or timezone.now()
    days = [now.date() - timedelta(days=n) for n in range(PENDING_DAYS)]
    codes = sorted(ALL_PERMISSIONS)
    day_keys = {_requests_key(t, day): (t.pk, day) for t in tokens for day in days}
    permission_keys = {_permission_key(t, code): (t.pk, code) for t in tokens for code in codes}
    pending = cache.get_many([*day_keys, *permission_keys])
    if not pending:
        return 0, 0

    requests: dict[int, dict[date, int]] = {}
    for key, (token_id, day) in day_keys.items():
        value = int(pending.get(key) or 0)
        if value > 0:
            # Take exactly what was read: requests counted meanwhile stay pending. (ValueError:
            # it expired in between; what was read is still right.)
            with contextlib.suppress(ValueError):
                cache.decr(key, value)
            requests.setdefault(token_id, {})[day] = value
    exercised: dict[int, dict[str, datetime]] = {}
    for key, (token_id, code) in permission_keys.items():
        if pending.get(key):
            when = datetime.fromtimestamp(int(pending[key]), tz=UTC)
            exercised.setdefault(token_id, {})[code] = when
    done = [key for key in permission_keys if pending.get(key)]
    if done:
        cache.delete_many(done)
    with transaction.atomic():
        for token_id in set(requests) | set(exercised):
            _write(token_id, requests.get(token_id, {}), exercised.get(token_id, {}))
    return (
        sum(sum(by_day.values()) for by_day in requests.values()),
        sum(len(codes) for codes in exercised.values()),
    )


def _write(token_id: int, requests: dict[date, int], exercised: dict[str, datetime]) -> None:
    usage_table = connection.ops.quote_name(TokenUsageDay._meta.db_table)
    permission_table = connection.ops.quote_name(TokenPermissionUsage._meta.db_table)
    token_table = connection.ops.quote_name(UserToken._meta.db_table)
    # INSERT ... SELECT from the token: a token deleted meanwhile just takes its counts along.
    with transaction.atomic(), connection.cursor() as cursor:
        for day, count in requests.items():
            cursor.execute(
                f"INSERT INTO {usage_table} (user_token_id, day, requests) "  # noqa: S608
                f"SELECT id, %s, %s FROM {token_table} WHERE id = %s "
                f"ON CONFLICT (user_token_id, day) "
                f"DO UPDATE SET requests = {usage_table}.requests + EXCLUDED.requests",
                [day, count, token_id],
            )
        for code, when in exercised.items():
            cursor.execute(
                f"INSERT INTO {permission_table} (user_token_id, permission, last_used_at) "  # noqa: S608
                f"SELECT id, %s, %s FROM {token_table} WHERE id = %s "
                f"ON CONFLICT (user_token_id, permission) DO UPDATE SET last_used_at = "
                f"GREATEST({permission_table}.last_used_at, EXCLUDED.last_used_at)",
                [code, when, token_id],
            )


def flush_tenant(now: datetime | None = None, batch: int = 200) -> tuple[int, int]:
    """Flush the pending counts of every token of the current tenant used lately."""
    now = now or timezone.now()
    recent = UserToken.objects.filter(last_used_at__gte=now - timedelta(seconds=PENDING_TTL))
    tokens = list(recent.order_by("pk").only("pk", "created_at"))
    requests = permissions = 0
    for start in range(0, len(tokens), batch):
        written = flush_tokens(tokens[start : start + batch], now)
        requests += written[0]
        permissions += written[1]
    return requests, permissions
