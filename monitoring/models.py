"""Monitoring's records, per tenant: security events, alerts and User Token usage.

They were tokens' models and keep tokens' tables (db_table); monitoring/migrations/0001 moved them
in Django's state only.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from tokens.catalogue import Permission
from tokens.models import UserToken


class SecurityEvent(models.Model):
    """Something security-relevant that happened in this tenant; never holds a secret or a JWT.

    Floods of the same refusal (rate-limit hits, expired-licence refusals) are folded into one
    event per address and minute whose `count` says how many requests it stands for.
    """

    class Kind(models.TextChoices):
        TOKEN_EXCHANGED = "token_exchanged", "Token exchanged"
        EXCHANGE_FAILED = "exchange_failed", "Token exchange failed"
        TOKEN_PAIR_REFRESHED = "token_pair_refreshed", "Access token renewed"
        AUTHENTICATION_FAILED = "authentication_failed", "Authentication failed"
        PERMISSION_DENIED = "permission_denied", "Permission denied"
        USER_TOKEN_CREATED = "user_token_created", "User Token created"
        USER_TOKEN_REFRESHED = "user_token_refreshed", "User Token refreshed"
        USER_TOKEN_DEACTIVATED = "user_token_deactivated", "User Token deactivated"
        USER_TOKEN_ACTIVATED = "user_token_activated", "User Token activated again"
        USER_TOKEN_EXPIRED = "user_token_expired", "User Token expired"
        PERMISSIONS_CHANGED = "permissions_changed", "Permissions changed"
        RATE_LIMIT_HIT = "rate_limit_hit", "Rate limit hit"
        LICENCE_REFUSED = "licence_refused", "Refused: platform licence expired"
        ACTIVATION_REFUSED = "activation_refused", "Machine activation refused"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    reason = models.CharField(max_length=64, blank=True)
    address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    user_token = models.ForeignKey(
        UserToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    token_hint = models.CharField(
        max_length=4, blank=True, help_text="Last four characters of the token, when known."
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    via = models.CharField(max_length=20, blank=True, help_text="admin, api, command, ...")
    method = models.CharField(max_length=10, blank=True)
    path = models.CharField(max_length=300, blank=True)
    count = models.PositiveIntegerField(default=1)
    details = models.JSONField(default=dict, blank=True)
    # Set for buffered events (tenants.record_buffer): a row written twice is stored once.
    request_id = models.UUIDField(unique=True, null=True, blank=True, editable=False)

    class Meta:
        db_table = "tokens_securityevent"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["kind", "created_at"], name="tokens_event_kind_time")]
        verbose_name = "security event"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class Alert(models.Model):
    """Raised when failures pile up within a window; open until an administrator acknowledges it."""

    class Kind(models.TextChoices):
        FAILED_AUTHENTICATION = "failed_authentication", "Repeated failed authentication"
        PERMISSION_DENIED = "permission_denied", "Repeated permission denials"
        WEBHOOK_DISABLED = "webhook_disabled", "Webhook endpoint disabled"
        REFRESH_TOKEN_REUSED = "refresh_token_reused", "Spent refresh token presented again"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    address = models.GenericIPAddressField(null=True, blank=True)
    user_token = models.ForeignKey(
        UserToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    count = models.PositiveIntegerField()
    window_seconds = models.PositiveIntegerField()
    message = models.CharField(max_length=300)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        db_table = "tokens_alert"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "created_at"], name="tokens_alert_status_time")]

    def __str__(self) -> str:
        return self.message


class TokenUsageDay(models.Model):
    """Authorised API requests made with one User Token on one (UTC) day."""

    user_token = models.ForeignKey(UserToken, on_delete=models.CASCADE, related_name="usage_days")
    day = models.DateField()
    requests = models.PositiveBigIntegerField(default=0)

    class Meta:
        db_table = "tokens_tokenusageday"
        ordering = ["-day"]
        constraints = [
            models.UniqueConstraint(fields=["user_token", "day"], name="tokens_usage_token_day")
        ]
        indexes = [models.Index(fields=["day"], name="tokens_usage_day")]

    def __str__(self) -> str:
        return f"{self.requests} requests on {self.day}"


class TokenPermissionUsage(models.Model):
    """When one User Token last exercised one permission (for the quarterly review)."""

    user_token = models.ForeignKey(
        UserToken, on_delete=models.CASCADE, related_name="permission_usage"
    )
    permission = models.CharField(max_length=40, choices=Permission.choices)
    last_used_at = models.DateTimeField()

    class Meta:
        db_table = "tokens_tokenpermissionusage"
        ordering = ["permission"]
        constraints = [
            models.UniqueConstraint(
                fields=["user_token", "permission"], name="tokens_permission_usage_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.permission} last used {self.last_used_at:%Y-%m-%d %H:%M}"


class SecurityDashboard(SecurityEvent):
    """No table of its own: the admin's entry point for the tenant's security dashboard."""

    class Meta:
        proxy = True
        verbose_name = "security dashboard"
        verbose_name_plural = "security dashboard"
