"""Webhooks: endpoints, events (the outbox) and their delivery. Written once for the API, the admin
and the queue's tasks.

`emit_event(type, data)` is what other apps call, inside the transaction of the change it
reports: the event, one delivery per subscribed endpoint and the queue job for each are written in
that transaction (procrastinate's Django connector uses the same connection), so they commit or
roll back with the change. The worker then calls `attempt_delivery`, signed with the Standard
Webhooks scheme (headers webhook-id, webhook-timestamp, webhook-signature).
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import random
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from api.validation import refuse_fields
from tenants.models import Tenant
from tenants.signing_keys import current_signer
from webhooks import targets
from webhooks.models import EventType, WebhookDelivery, WebhookEndpoint, WebhookEvent

logger = logging.getLogger(__name__)

EXCERPT_BYTES = 2048
SECRET_OVERLAP = timedelta(hours=24)
ENDPOINT_FIELDS = ("url", "description", "events", "active")


# --- Endpoints


def new_secret() -> str:
    """A Standard Webhooks secret: whsec_ and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def clean_url(url: str) -> str:
    try:
        targets.check_url(url)
    except targets.TargetRefused as exc:
        raise ValidationError({"url": [str(exc)]}) from None
    return url


def clean_events(events) -> list[str]:
    if not isinstance(events, (list, tuple)):
        raise ValidationError({"events": ["Expected a list of event types."]})
    unknown = [e for e in events if e not in EventType.values]
    if unknown:
        raise ValidationError(
            {"events": [f"Unknown event types {unknown}; known: {', '.join(EventType.values)}."]}
        )
    return sorted(set(events))


def _saved(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    endpoint.full_clean(exclude=["secret"])
    endpoint.save()
    return endpoint


@transaction.atomic
def create_endpoint(
    *, url: str, events=(), description: str = "", active: bool = True
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (to be shown once)."""
    secret = new_secret()
    endpoint = WebhookEndpoint(
        url=clean_url(url),
        events=clean_events(events),
        description=description,
        active=active,
        secret=secret,
    )
    return _saved(endpoint), secret


@transaction.atomic
def update_endpoint(endpoint: WebhookEndpoint, **changes: Any) -> WebhookEndpoint:
    refuse_fields(changes, allowed=ENDPOINT_FIELDS)
    if "url" in changes:
        changes["url"] = clean_url(changes["url"])
    if "events" in changes:
        changes["events"] = clean_events(changes["events"])
    if changes.get("active") and not endpoint.active:
        changes.update(failing_since=None, disabled_reason="")  # re-enabled: a fresh start
    for name, value in changes.items():
        setattr(endpoint, name, value)
    return _saved(endpoint)


@transaction.atomic
def delete_endpoint(endpoint: WebhookEndpoint) -> None:
    endpoint.delete()


@transaction.atomic
def rotate_secret(endpoint: WebhookEndpoint) -> str:
    """A new secret; the old one keeps signing alongside it for 24 hours (two v1 signatures)."""
    secret = new_secret()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = timezone.now() + SECRET_OVERLAP
    endpoint.secret = secret
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
    return secret


# --- Events (the outbox)


def payload_for(message_id: str, event_type: str, created: datetime, data: dict) -> dict:
    return {
        "id": message_id,
        "type": event_type,
        "created": created.isoformat().replace("+00:00", "Z"),
        "tenant": connection.schema_name,
        "data": data,
    }


def emit_event(
    event_type: str, data: dict | Callable[[], dict], *, dedupe_key: str | None = None
) -> WebhookEvent | None:
    """Record an event of the current tenant for its subscribed endpoints, in the caller's
    transaction; None when no active endpoint subscribes (nothing is written) or when an event
    with `dedupe_key` exists already. `data` may be a function, called only when it is sent."""
    event_type = EventType(event_type)
    endpoints = [
        e for e in WebhookEndpoint.objects.filter(active=True) if e.subscribes_to(event_type)
    ]
    if not endpoints:
        return None
    if dedupe_key and WebhookEvent.objects.filter(dedupe_key=dedupe_key).exists():
        return None
    if callable(data):
        data = data()
    now = timezone.now()
    message_id = f"msg_{uuid.uuid4().hex}"
    with transaction.atomic():
        event = WebhookEvent.objects.create(
            message_id=message_id,
            type=event_type,
            payload=payload_for(message_id, event_type, now, data),
            dedupe_key=dedupe_key,
            created_at=now,
        )
        deliveries = WebhookDelivery.objects.bulk_create(
            [WebhookDelivery(endpoint=e, event=event, next_attempt_at=now) for e in endpoints]
        )
        for delivery in deliveries:
            queue_delivery(delivery)
    return event


def queue_delivery(delivery: WebhookDelivery) -> None:
    """Defer the job that sends `delivery`, in the current transaction."""
    from webhooks.tasks import deliver_webhook

    deliver_webhook.configure(
        lock=f"webhook-delivery:{connection.schema_name}:{delivery.pk}",
        queueing_lock=f"webhook-delivery:{connection.schema_name}:{delivery.pk}",
    ).defer(schema_name=connection.schema_name, delivery_id=delivery.pk)


@transaction.atomic
def resend(delivery: WebhookDelivery) -> bool:
    """Send a delivery again (a fresh run of attempts); False if it is queued already."""
    from procrastinate.exceptions import AlreadyEnqueued

    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.PENDING, attempts=0, next_attempt_at=timezone.now()
    )
    try:
        with transaction.atomic():
            queue_delivery(delivery)
    except AlreadyEnqueued:
        return False
    return True


# --- Delivery


class DeliveryFailed(Exception):
    """An attempt failed and is to be retried after `retry_in` seconds."""

    def __init__(self, retry_in: float, reason: str):
        super().__init__(f"{reason}; next attempt in {retry_in:.0f} s")
        self.retry_in = retry_in


@dataclass(frozen=True)
class Attempt:
    status_code: int | None
    error: str
    response_ms: int | None
    excerpt: str

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_delay(attempts_made: int) -> float | None:
    """Seconds to wait before the next attempt after `attempts_made` attempts; None: give up."""
    if attempts_made >= settings.WEBHOOK_RETRY_ATTEMPTS:
        return None
    delay = min(
        settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** (attempts_made - 1),
        settings.WEBHOOK_RETRY_MAX_DELAY_SECONDS,
    )
    return delay * random.uniform(0.8, 1.2)  # noqa: S311 (jitter, not a secret)


def signed_headers(endpoint: WebhookEndpoint, event: WebhookEvent, body: str) -> dict[str, str]:
    """Standard Webhooks headers: a `v1` HMAC signature per live secret of the endpoint, and a
    `v1a` Ed25519 signature by the tenant's current signing key (its kid in `webhook-key-id`;
    the public key is in GET /v1/signing-keys), over the same `{id}.{timestamp}.{body}`."""
    moment = timezone.now()
    signatures = [
        Webhook(secret).sign(msg_id=event.message_id, timestamp=moment, data=body)
        for secret in endpoint.signing_secrets(moment)
    ]
    timestamp = str(int(moment.timestamp()))
    signer = current_signer(Tenant.objects.get(schema_name=connection.schema_name))
    signed = signer.sign(f"{event.message_id}.{timestamp}.{body}".encode())
    signatures.append("v1a," + base64.b64encode(signed).decode())
    return {
        "Content-Type": "application/json",
        "User-Agent": "licensing-platform-webhooks/1",
        "webhook-id": event.message_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": " ".join(signatures),
        "webhook-key-id": signer.kid,
    }


def send(endpoint: WebhookEndpoint, event: WebhookEvent) -> Attempt:
    """One HTTP POST of `event` to `endpoint`, through the SSRF guard; never raises."""
    body = json.dumps(event.payload, separators=(",", ":"))
    try:
        target = targets.check_url(endpoint.url)
    except targets.TargetRefused as exc:
        return Attempt(None, f"Refused: {exc}"[:300], None, "")
    started = time.monotonic()
    conn = targets.connection_to(target, timeout=settings.WEBHOOK_TIMEOUT_SECONDS)
    try:
        conn.request(
            "POST", target.path, body=body.encode(), headers=signed_headers(endpoint, event, body)
        )
        response = conn.getresponse()
        excerpt = response.read(EXCERPT_BYTES).decode("utf-8", errors="replace")
        elapsed = int((time.monotonic() - started) * 1000)
        return Attempt(response.status, "", elapsed, excerpt)
    except (OSError, http.client.HTTPException) as exc:
        elapsed = int((time.monotonic() - started) * 1000)
        return Attempt(None, f"{type(exc).__name__}: {exc}"[:300], elapsed, "")
    finally:
        conn.close()


def attempt_delivery(delivery_id: int) -> None:
    """Send one delivery now (the worker's job, in the tenant's schema). Raises DeliveryFailed
    when it should be tried again; the queue schedules that attempt (webhooks.tasks)."""
    delivery = (
        WebhookDelivery.objects.select_related("endpoint", "event").filter(pk=delivery_id).first()
    )
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
        return  # deleted with its endpoint, or settled already
    endpoint = delivery.endpoint
    if not endpoint.active:
        _settle(delivery, WebhookDelivery.Status.FAILED, error="Endpoint disabled.")
        return
    attempt = send(endpoint, delivery.event)
    now = timezone.now()
    attempts = delivery.attempts + 1
    fields = {
        "attempts": attempts,
        "last_attempt_at": now,
        "last_status_code": attempt.status_code,
        "last_error": attempt.error,
        "last_response_ms": attempt.response_ms,
        "last_response_excerpt": attempt.excerpt,
    }
    if attempt.succeeded:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=WebhookDelivery.Status.SUCCEEDED,
            delivered_at=now,
            next_attempt_at=None,
            **fields,
        )
        WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=False).update(
            failing_since=None
        )
        return
    if attempt.status_code == 410:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=WebhookDelivery.Status.FAILED, next_attempt_at=None, **fields
        )
        disable_endpoint(endpoint, "The receiver answered 410 Gone.")
        return
    failing_since = endpoint.failing_since or now
    if endpoint.failing_since is None:
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=now)
    delay = retry_delay(attempts)
    if now - failing_since >= timedelta(days=settings.WEBHOOK_DISABLE_AFTER_DAYS):
        delay = None
        disable_endpoint(
            endpoint, f"Deliveries failed for {settings.WEBHOOK_DISABLE_AFTER_DAYS} days."
        )
    if delay is None:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=WebhookDelivery.Status.FAILED, next_attempt_at=None, **fields
        )
        return
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=now + timedelta(seconds=delay), **fields
    )
    raise DeliveryFailed(
        delay,
        f"Delivery {delivery.pk} to endpoint {endpoint.pk}, attempt {attempts}: "
        + (f"HTTP {attempt.status_code}" if attempt.status_code else attempt.error),
    )


def _settle(delivery: WebhookDelivery, status: str, *, error: str) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=status, last_error=error, next_attempt_at=None
    )


def prune_events(now: datetime | None = None) -> int:
    """Delete events older than WEBHOOK_RETENTION_DAYS whose deliveries are all settled, with
    their delivery log; the number of events deleted. Run daily by the worker."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.WEBHOOK_RETENTION_DAYS)
    old = WebhookEvent.objects.filter(created_at__lt=cutoff).exclude(
        deliveries__status=WebhookDelivery.Status.PENDING
    )
    return (
        WebhookEvent.objects.filter(pk__in=old.values("pk"))
        .delete()[1]
        .get(WebhookEvent._meta.label, 0)
    )


def disable_endpoint(endpoint: WebhookEndpoint, reason: str) -> None:
    """Stop sending to `endpoint` and raise an alert in the tenant's admin."""
    from monitoring.alerts import raise_alert
    from monitoring.models import Alert

    with transaction.atomic():
        updated = WebhookEndpoint.objects.filter(pk=endpoint.pk, active=True).update(
            active=False, disabled_reason=reason[:200]
        )
        if updated:
            raise_alert(
                Alert.Kind.WEBHOOK_DISABLED,
                count=1,
                message=f"Webhook endpoint {endpoint.pk} ({endpoint.url}) disabled: {reason}",
            )
    logger.warning("Webhook endpoint %s disabled: %s", endpoint.pk, reason)
