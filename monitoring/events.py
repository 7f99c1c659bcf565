"""Security events: what the token layer, the rate limits and the admin signal, recorded per tenant.

`connect()` (MonitoringConfig.ready) attaches the receivers. Every receiver records into the schema
of the current tenant and never lets a recording problem break the request it observes. No event
holds a secret or a JWT: the signals carry none, and every free-text field (path, user agent,
details) goes through tokens.logging.redact.

Floods are folded: rate-limit hits, expired-licence refusals and failed authentications on the API
make one event per kind, reason, scope (or stage), address, User Token and minute, whose `count`
catches up from a cache counter; so anonymous or bad-bearer floods cannot grow the table.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import time
import uuid
from datetime import datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models.signals import post_save
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from api.client_address import address_key, client_address
from licensing import signals as licensing_signals
from monitoring import alerts, usage
from monitoring.models import SecurityEvent
from tenants import signals as tenant_signals
from tenants.record_buffer import buffer_record, drain_buffered_records
from tenants.throttling import pending_counters
from tokens import signals
from tokens.logging import redact
from tokens.models import UserToken

logger = logging.getLogger(__name__)

Kind = SecurityEvent.Kind
FAILED_AUTHENTICATION_KINDS = (Kind.EXCHANGE_FAILED, Kind.AUTHENTICATION_FAILED)
FOLDED_KINDS = (
    Kind.RATE_LIMIT_HIT,
    Kind.LICENCE_REFUSED,
    Kind.ACTIVATION_REFUSED,
    *FAILED_AUTHENTICATION_KINDS,
)
FOLD_SECONDS = 60
FOLD_TTL = 15 * 60


class EventReason(StrEnum):
    """The `reason` of the security events recorded here (failure reasons come with the signal)."""

    EXPIRES_AT_PASSED = "expires_at_passed"
    EXPIRED_ON_PURPOSE = "expired_on_purpose"
    BAD_CREDENTIALS = "bad_credentials"
    MISSING_PERMISSION = "missing_permission"
    LICENCE = "licence"
    ABUSE = "abuse"
    LICENCE_EXPIRED = "licence_expired"


def in_tenant() -> bool:
    return connection.schema_name != get_public_schema_name()


# --- Recording


def _http_request(request):
    return getattr(request, "_request", request)


def _ip(address: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(address)) if address else None
    except ValueError:
        return None


def _clean(value):
    """`value` (JSON-like) with every string redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_clean(v) for v in value]
    return value


def _user(actor):
    if isinstance(actor, get_user_model()) and actor.pk is not None:
        return actor
    return None


def request_fields(request) -> dict:
    """Where a request came from, for an event (no header that could hold a secret)."""
    if request is None:
        return {}
    http = _http_request(request)
    meta = getattr(http, "META", {})
    return {
        "address": _ip(client_address(http)),
        "user_agent": redact(str(meta.get("HTTP_USER_AGENT", "")))[:300],
        "method": str(getattr(http, "method", "") or "")[:10],
        "path": redact(str(getattr(http, "path", "")))[:300],
    }


def record(
    kind: str,
    *,
    request=None,
    user_token: UserToken | None = None,
    reason: str = "",
    actor=None,
    via: str = "",
    token_hint: str = "",
    details: dict | None = None,
    count: int = 1,
    created_at: datetime | None = None,
    buffered: bool = False,
) -> SecurityEvent | None:
    """Record one security event in the current tenant; None if it could not be recorded (or was
    `buffered`: queued for the drain job, tenants.record_buffer, off the request path)."""
    if not in_tenant():
        return None
    fields = {
        "kind": kind,
        "reason": redact(reason)[:64],
        "user_token": user_token if user_token is not None and user_token.pk else None,
        "token_hint": (token_hint or (user_token.last_four if user_token else ""))[:4],
        "actor": _user(actor),
        "via": via[:20],
        "count": count,
        "details": _clean(details or {}),
        **request_fields(request),
    }
    fields["created_at"] = created_at or timezone.now()
    try:
        if buffered:
            user_token, actor = fields.pop("user_token"), fields.pop("actor")
            buffer_record(
                SecurityEvent,
                user_token_id=user_token.pk if user_token else None,
                actor_id=actor.pk if actor else None,
                **fields,
            )
            return None
        with transaction.atomic():
            return SecurityEvent.objects.create(**fields)
    except Exception:  # monitoring must never break what it observes
        logger.exception("Could not record a %s security event", kind)
        return None


def _folded(
    kind: str,
    *,
    request,
    reason: str,
    scope: str = "",
    details=None,
    user_token: UserToken | None = None,
    token_hint: str = "",
) -> None:
    """Record a refusal that may come in floods: one event per minute, counted in the cache."""
    if not in_tenant():
        return
    fields = request_fields(request)
    minute = int(timezone.now().timestamp()) // FOLD_SECONDS
    token_id = user_token.pk if user_token is not None else ""
    bucket = f"monitoring:fold:{kind}:{reason}:{scope}:{fields.get('address')}:{token_id}:{minute}"
    try:
        count = usage.incr(cache, bucket, FOLD_TTL)
    except Exception:
        logger.exception("Could not count a %s security event", kind)
        count = 1
    if count == 1:
        record(
            kind,
            request=request,
            reason=reason,
            user_token=user_token,
            token_hint=token_hint,
            details={**(details or {}), "scope": scope, "fold": bucket},
        )
        catch_up_folded()


def catch_up_folded(now: datetime | None = None) -> int:
    """Copy the cache counts of recent folded events into their `count`; returns events updated."""
    now = now or timezone.now()
    recent = list(
        SecurityEvent.objects.filter(
            kind__in=FOLDED_KINDS, created_at__gte=now - timedelta(seconds=FOLD_TTL)
        ).only("pk", "count", "details")
    )
    buckets = {event.details.get("fold"): event for event in recent if event.details.get("fold")}
    if not buckets:
        return 0
    updated = 0
    for bucket, count in cache.get_many(list(buckets)).items():
        event = buckets[bucket]
        if int(count) > event.count:
            SecurityEvent.objects.filter(pk=event.pk).update(count=int(count))
            updated += 1
    return updated


def note_expired_tokens(now: datetime | None = None, tokens=None) -> int:
    """Record an expiry event (dated when it expired) for each token whose `expires_at` passed
    and has none yet; returns how many were recorded."""
    now = now or timezone.now()
    horizon = now - timedelta(days=settings.SECURITY_EVENT_RETENTION_DAYS)
    if tokens is None:
        tokens = UserToken.objects.filter(expires_at__lte=now, expires_at__gt=horizon)
    tokens = [t for t in tokens if t.expires_at is not None and horizon < t.expires_at <= now]
    if not tokens:
        return 0
    seen = set(
        SecurityEvent.objects.filter(
            kind=Kind.USER_TOKEN_EXPIRED, user_token__in=[t.pk for t in tokens]
        ).values_list("user_token_id", "details__expires_at")
    )
    recorded = 0
    for token in tokens:
        if (token.pk, token.expires_at.isoformat()) in seen:
            continue
        record(
            Kind.USER_TOKEN_EXPIRED,
            user_token=token,
            reason=EventReason.EXPIRES_AT_PASSED,
            details={"expires_at": token.expires_at.isoformat()},
            created_at=token.expires_at,
        )
        recorded += 1
    return recorded


def catch_up(now: datetime | None = None) -> dict:
    """Bring the current tenant's records up to date: usage counts, folded counts, expiries.

    Run by `manage.py flush_usage` (schedule it every minute), the dashboard and the reports.
    """
    now = now or timezone.now()
    records = drain_buffered_records(connection.schema_name)
    requests, permissions = usage.flush_tenant(now)
    return {
        "records": records,
        "requests": requests,
        "permissions": permissions,
        "folded_events": catch_up_folded(now),
        "expiries": note_expired_tokens(now),
    }


# --- Receivers: each guarded, so monitoring never breaks what it observes.

FAILURE_LOG_INTERVAL = 10.0  # seconds: one ERROR line per receiver and process per interval
_last_failure: dict[str, float] = {}


def guarded(receiver):
    @functools.wraps(receiver)
    def run(*args, **kwargs):
        try:
            return receiver(*args, **kwargs)
        except Exception:  # e.g. the cache or the database is unreachable
            now = time.monotonic()
            if now - _last_failure.get(receiver.__name__, -FAILURE_LOG_INTERVAL) >= (
                FAILURE_LOG_INTERVAL
            ):
                _last_failure[receiver.__name__] = now
                logger.exception("Monitoring failed in %s", receiver.__name__)
            return None

    return run


def _token(user_token_id) -> UserToken | None:
    if not isinstance(user_token_id, int):
        return None
    return UserToken.objects.filter(pk=user_token_id).first()


def _presented_hint(request, stage: str) -> str:
    """For a failed exchange of an unknown secret: its last four characters, if it is a uuid."""
    if stage != "exchange" or request is None:
        return ""
    try:
        value = request.data.get("user_token")
        return str(uuid.UUID(value.strip()))[-4:]
    except (AttributeError, TypeError, ValueError):
        return ""


@guarded
def on_authentication_failed(sender, *, reason, user_token_id=None, stage="", request=None, **kw):
    token = _token(user_token_id)
    _folded(
        Kind.EXCHANGE_FAILED if stage == "exchange" else Kind.AUTHENTICATION_FAILED,
        request=request,
        user_token=token,
        reason=str(reason),
        scope=str(stage),
        token_hint="" if token else _presented_hint(request, stage),
        details={"stage": stage},
    )
    if token is not None and reason == "token_expired":
        note_expired_tokens(tokens=[token])
    _count_failure(request)


def _count_failure(request) -> None:
    if request is None or not in_tenant():
        return
    http = _http_request(request)
    address = client_address(http)
    try:
        # An IPv6 client owns its whole /64: counted as one, like the abuse throttle does.
        alerts.failed_authentication(_ip(address), address_key(http))
    except Exception:
        logger.exception("Could not count a failed authentication for alerts")


def _typed_username(credentials) -> dict:
    """The username of a failed login, kept only when it is an existing user's: what else was
    typed there (a password in the wrong field, someone's email) is not recorded."""
    User = get_user_model()
    username = (credentials or {}).get(User.USERNAME_FIELD)
    if (
        isinstance(username, str)
        and User._default_manager.filter(**{User.USERNAME_FIELD: username}).exists()
    ):
        return {"username": username}
    return {"unknown_username": True}


@guarded
def on_admin_login_failed(sender, *, credentials=None, request=None, **kw):
    if request is None or not in_tenant():
        return
    record(
        Kind.AUTHENTICATION_FAILED,
        request=request,
        reason=EventReason.BAD_CREDENTIALS,
        details={"stage": "admin_login", **_typed_username(credentials)},
    )
    _count_failure(request)


@guarded
def on_permission_denied(
    sender,
    *,
    user_token,
    missing,
    method="",
    path="",
    request=None,
    reason=EventReason.MISSING_PERMISSION,
    target=None,
    **kw,
):
    details = {"missing": list(missing), "endpoint": f"{method} {path}"}
    if target is not None:
        details["target"] = target
    record(
        Kind.PERMISSION_DENIED,
        request=request,
        user_token=user_token,
        reason=str(reason),
        details=details,
    )
    if in_tenant():
        try:
            alerts.permission_denied(user_token)
        except Exception:
            logger.exception("Could not count a permission denial for alerts")


@guarded
def on_token_exchanged(sender, *, user_token, request=None, **kw):
    record(Kind.TOKEN_EXCHANGED, request=request, user_token=user_token, buffered=True)


@guarded
def on_token_pair_refreshed(sender, *, user_token, request=None, **kw):
    record(Kind.TOKEN_PAIR_REFRESHED, request=request, user_token=user_token)


@guarded
def on_user_token_refreshed(sender, *, user_token, actor=None, via="", request=None, **kw):
    record(
        Kind.USER_TOKEN_REFRESHED,
        request=request,
        user_token=user_token,
        actor=actor,
        via=via,
        details={"generation": user_token.generation},
    )


@guarded
def on_user_token_deactivated(sender, *, user_token, actor=None, via="", request=None, **kw):
    record(
        Kind.USER_TOKEN_DEACTIVATED, request=request, user_token=user_token, actor=actor, via=via
    )


@guarded
def on_refresh_token_reused(sender, *, user_token, address="", request=None, **kw):
    if in_tenant():
        alerts.refresh_token_reused(user_token, _ip(address))


@guarded
def on_user_token_activated(sender, *, user_token, actor=None, via="", request=None, **kw):
    record(
        Kind.USER_TOKEN_ACTIVATED,
        request=request,
        user_token=user_token,
        actor=actor,
        via=via,
        details={"generation": user_token.generation},
    )


@guarded
def on_user_token_expired(sender, *, user_token, actor=None, via="", request=None, **kw):
    record(
        Kind.USER_TOKEN_EXPIRED,
        request=request,
        user_token=user_token,
        actor=actor,
        via=via,
        reason=EventReason.EXPIRED_ON_PURPOSE,
        details={
            "expires_at": user_token.expires_at.isoformat() if user_token.expires_at else None
        },
    )


@guarded
def on_permissions_changed(
    sender, *, user_token, added, removed, actor=None, via="", request=None, **kw
):
    record(
        Kind.PERMISSIONS_CHANGED,
        request=request,
        user_token=user_token,
        actor=actor,
        via=via,
        details={
            "added": list(added),
            "removed": list(removed),
            "permissions": sorted(user_token.permissions),
        },
    )


@guarded
def on_user_token_post_save(sender, *, instance, created, raw=False, **kw):
    if raw or not in_tenant() or not created:
        return
    record(
        Kind.USER_TOKEN_CREATED,
        user_token=instance,
        actor=instance.created_by,
        details={"permissions": list(instance.permissions), "name": instance.name},
    )


@guarded
def on_request_limit_reached(sender, *, request=None, limit=None, period=None, **kw):
    _folded(
        Kind.RATE_LIMIT_HIT,
        request=request,
        reason=EventReason.LICENCE,
        scope="licence",
        details={"limit": limit, "period_seconds": period},
    )


@guarded
def on_abuse_throttled(sender, *, request=None, scope="", **kw):
    _folded(Kind.RATE_LIMIT_HIT, request=request, reason=EventReason.ABUSE, scope=str(scope))


@guarded
def on_licence_refused(sender, *, request=None, **kw):
    _folded(Kind.LICENCE_REFUSED, request=request, reason=EventReason.LICENCE_EXPIRED)


@guarded
def on_activation_refused(sender, *, license, reason="", request=None, **kw):
    """A licence's activation limit or churn budget refused its client (no key recorded)."""
    plan = license.plan
    _folded(
        Kind.ACTIVATION_REFUSED,
        request=request,
        reason=str(reason),
        scope=f"license:{license.pk}",
        details={
            "license": license.pk,
            "max_activations": plan.max_activations,
            "max_deactivations": plan.max_deactivations,
        },
    )


@guarded
def on_token_used(sender, *, user_token, permissions_used=(), request=None, **kw):
    # Counted in the same round trip to the counter store as the request's licence count.
    usage.count_request(user_token, permissions_used, batch=pending_counters(request))


def connect() -> None:
    uid = "monitoring.events"
    receivers = [
        (signals.token_exchanged, on_token_exchanged),
        (signals.token_pair_refreshed, on_token_pair_refreshed),
        (signals.authentication_failed, on_authentication_failed),
        (signals.permission_denied, on_permission_denied),
        (signals.user_token_refreshed, on_user_token_refreshed),
        (signals.user_token_deactivated, on_user_token_deactivated),
        (signals.user_token_activated, on_user_token_activated),
        (signals.refresh_token_reused, on_refresh_token_reused),
        (signals.user_token_expired, on_user_token_expired),
        (signals.user_token_permissions_changed, on_permissions_changed),
        (signals.token_used, on_token_used),
        (user_login_failed, on_admin_login_failed),
    ]
    for signal, receiver in receivers:
        signal.connect(receiver, dispatch_uid=f"{uid}.{receiver.__name__}")
    post_save.connect(on_user_token_post_save, sender=UserToken, dispatch_uid=f"{uid}.post_save")
    tenant_signals.request_limit_reached.connect(
        on_request_limit_reached, dispatch_uid=f"{uid}.request_limit_reached"
    )
    tenant_signals.abuse_throttled.connect(
        on_abuse_throttled, dispatch_uid=f"{uid}.abuse_throttled"
    )
    tenant_signals.licence_refused.connect(
        on_licence_refused, dispatch_uid=f"{uid}.licence_refused"
    )
    licensing_signals.activation_refused.connect(
        on_activation_refused, dispatch_uid=f"{uid}.activation_refused"
    )
