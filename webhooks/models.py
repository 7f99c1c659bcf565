"""Webhooks of one tenant: endpoints, the events written for them (the outbox) and deliveries.

Every table lives in the tenant's schema. An event row is written in the same transaction as the
change it reports (webhooks.services.emit_event), together with one delivery per subscribed
endpoint and the queue job that sends it, so a rolled-back change sends nothing and a committed
one is delivered at least once.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone


class EventType(models.TextChoices):
    LICENSE_CREATED = "license.created", "Licence created"
    LICENSE_UPDATED = "license.updated", "Licence updated"
    LICENSE_SUSPENDED = "license.suspended", "Licence suspended"
    LICENSE_REVOKED = "license.revoked", "Licence revoked"
    LICENSE_EXPIRING = "license.expiring", "Licence expiring (7 days and 1 day before)"
    LICENSE_EXPIRED = "license.expired", "Licence expired"
    MACHINE_ACTIVATED = "machine.activated", "Machine activated"
    MACHINE_DEACTIVATED = "machine.deactivated", "Machine deactivated"
    MACHINE_DEAD = "machine.dead", "Machine dead (missed its heartbeats)"
    USER_TOKEN_REFRESHED = "user_token.refreshed", "User Token refreshed"
    USER_TOKEN_DEACTIVATED = "user_token.deactivated", "User Token deactivated"
    ALERT_RAISED = "alert.raised", "Security alert raised"


class WebhookEndpoint(models.Model):
    """Where a tenant wants events sent. Its signing secret is shown once, at creation or rotation:
    it is kept (HMAC signing needs it) but never displayed again."""

    url = models.URLField(max_length=2000, help_text="https:// address that receives the events.")
    description = models.CharField(max_length=200, blank=True)
    events = ArrayField(
        models.CharField(max_length=40, choices=EventType.choices),
        default=list,
        blank=True,
        help_text="Event types sent to this endpoint; none ticked means every event.",
    )
    active = models.BooleanField(default=True)
    secret = models.CharField(max_length=100, editable=False)
    # After a rotation the previous secret keeps signing (a second v1 signature) until this time.
    previous_secret = models.CharField(max_length=100, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The first failure of the current run of failures; cleared by a success.
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(max_length=200, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "webhook endpoint"
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.url

    @property
    def secret_hint(self) -> str:
        return f"whsec_…{self.secret[-4:]}" if self.secret else ""

    def subscribes_to(self, event_type: str) -> bool:
        return not self.events or event_type in self.events

    def signing_secrets(self, now: datetime | None = None) -> list[str]:
        """The current secret, and the previous one while its overlap lasts."""
        now = now or timezone.now()
        secrets = [self.secret]
        if (
            self.previous_secret
            and self.previous_secret_expires_at
            and (self.previous_secret_expires_at > now)
        ):
            secrets.append(self.previous_secret)
        return secrets


class WebhookEvent(models.Model):
    """One event, as sent: `payload` is the exact JSON body every endpoint receives."""

    message_id = models.CharField(max_length=40, unique=True, editable=False)
    type = models.CharField(max_length=40, choices=EventType.choices)
    payload = models.JSONField()
    # Set for events that must be sent once per occasion (e.g. "expiring in 7 days" per licence).
    dedupe_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name = "webhook event"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.type} {self.message_id}"


class WebhookDelivery(models.Model):
    """One event for one endpoint: its attempts so far and the last answer."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (given up)"

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    last_response_ms = models.PositiveIntegerField(null=True, blank=True)
    # The first 2 KiB of the receiver's last answer, as text.
    last_response_excerpt = models.TextField(blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        ordering = ["-id"]
        indexes = [models.Index(fields=["endpoint", "id"], name="delivery_endpoint_id")]

    def __str__(self) -> str:
        return f"{self.event.type} → {self.endpoint.url}"
