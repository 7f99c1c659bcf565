"""Alerts: repeated failures within a window raise a WARNING log line and an Alert record.

- ALERT_FAILED_AUTH_THRESHOLD failed authentications from one client address, and
- ALERT_DENIED_THRESHOLD permission denials of one User Token,

within ALERT_WINDOW_SECONDS; and every spent refresh token presented again (reuse). The window opens with the first failure; the alert fires once, when
the count reaches the threshold, and not again for the same address (or token) until a window has
passed since it fired.

Counted in the shared counter cache of the rate limits when configured (RATELIMIT_USE_CACHE),
otherwise the default cache; both count atomically across workers. Only failures are counted, so
the successful request path never touches these counters.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import caches
from django.db import connection, transaction

from monitoring.models import Alert
from monitoring.usage import incr
from tokens.logging import redact
from tokens.models import UserToken
from webhooks.models import EventType
from webhooks.services import emit_event

logger = logging.getLogger(__name__)


def _store():
    return caches[getattr(settings, "RATELIMIT_USE_CACHE", None) or "default"]


def _window() -> int:
    return settings.ALERT_WINDOW_SECONDS


def _reached(subject: str, threshold: int) -> int | None:
    """Count one failure of `subject`; the count when it has just reached `threshold`, else None."""
    store = _store()
    # Under the rate limits' key prefix (RATELIMIT_CACHE_PREFIX), in the same counter store.
    prefix = f"{getattr(settings, 'RATELIMIT_CACHE_PREFIX', '')}alerts:{connection.schema_name}:{subject}"
    count = incr(store, f"{prefix}:count", _window())
    if count != threshold:
        return None
    if not store.add(f"{prefix}:fired", 1, _window()):
        return None  # fired for this subject within the window already
    return count


def failed_authentication(address: str | None, counted_as: str | None = None) -> Alert | None:
    """Count a failed authentication from `address` (counted under `counted_as`, e.g. an IPv6
    client's /64, when given); the Alert if this one raised it."""
    if not address:
        return None
    subject = counted_as or address
    count = _reached(f"failed:{subject}", settings.ALERT_FAILED_AUTH_THRESHOLD)
    if count is None:
        return None
    return raise_alert(
        Alert.Kind.FAILED_AUTHENTICATION,
        address=address,
        count=count,
        message=(
            f"{count} failed authentications from {subject} within {_window()} seconds"
            + (f" (last from {address})" if subject != address else "")
        ),
    )


def permission_denied(user_token: UserToken) -> Alert | None:
    """Count a permission denial of `user_token`; the Alert if this one raised it."""
    count = _reached(f"denied:{user_token.pk}", settings.ALERT_DENIED_THRESHOLD)
    if count is None:
        return None
    return raise_alert(
        Alert.Kind.PERMISSION_DENIED,
        user_token=user_token,
        count=count,
        message=(
            f"User Token {user_token.pk} ({user_token.name}, …{user_token.last_four}) was denied "
            f"{count} times within {_window()} seconds"
        ),
    )


def refresh_token_reused(user_token: UserToken, address: str | None) -> Alert:
    """A spent refresh token came back: always an alert (a stolen or leaked token is likely)."""
    return raise_alert(
        Alert.Kind.REFRESH_TOKEN_REUSED,
        user_token=user_token,
        address=address,
        count=1,
        message=(
            f"A spent refresh token of User Token {user_token.pk} ({user_token.name}, "
            f"…{user_token.last_four}) was presented again"
            + (f" from {address}" if address else "")
            + "; every access and refresh token issued from it is revoked"
        ),
    )


def raise_alert(kind: str, *, message: str, count: int, address=None, user_token=None) -> Alert:
    with transaction.atomic():
        alert = Alert.objects.create(
            kind=kind,
            address=address,
            user_token=user_token,
            count=count,
            window_seconds=_window(),
            message=redact(message)[:300],
        )
        emit_event(
            EventType.ALERT_RAISED,
            {
                "alert": {
                    "id": alert.pk,
                    "kind": alert.kind,
                    "message": alert.message,
                    "count": alert.count,
                    "address": alert.address,
                    "user_token": alert.user_token_id,
                    "created_at": alert.created_at.isoformat(),
                }
            },
        )
    logger.warning(
        "Security alert %s in tenant %s: %s", alert.pk, connection.schema_name, alert.message
    )
    return alert
