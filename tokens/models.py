import ipaddress
from datetime import datetime

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from tokens.catalogue import Permission


def validate_network(value: str) -> None:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValidationError(f"{value!r} is not an IP address or CIDR network.") from None


class UserToken(models.Model):
    """A tenant user's API credential: a uuid4 secret, stored only as a keyed digest.

    The secret is exchanged for short-lived JWTs. `generation` is part of every JWT issued from
    this token; a Refresh bumps it, so all of them stop working at once.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="user_tokens"
    )
    name = models.CharField(max_length=100, help_text="What this token is for, e.g. 'CRM sync'.")
    permissions = ArrayField(
        models.CharField(max_length=40, choices=Permission.choices), default=list, blank=True
    )
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Time-bounded access: the token stops working then."
    )
    allowed_ips = ArrayField(
        models.CharField(max_length=49, validators=[validate_network]),
        default=list,
        blank=True,
        help_text="Optional IPv4/IPv6 networks (CIDR) the token may be used from.",
    )
    is_active = models.BooleanField(default=True)
    generation = models.PositiveIntegerField(default=1, editable=False)

    digest = models.CharField(max_length=64, unique=True, editable=False)
    key_id = models.CharField(max_length=32, editable=False)
    last_four = models.CharField(max_length=4, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    refreshed_at = models.DateTimeField(null=True, blank=True, editable=False)
    deactivated_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["id"]
        verbose_name = "user token"

    def __str__(self) -> str:
        return f"{self.name} (…{self.last_four})"

    @property
    def display_secret(self) -> str:
        return f"••••••••-••••-••••-••••-••••••••{self.last_four}"

    def is_expired_at(self, moment: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= moment

    @property
    def is_expired(self) -> bool:
        return self.is_expired_at(timezone.now())

    def allows_address(self, address: str) -> bool:
        if not self.allowed_ips:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(net, strict=False) for net in self.allowed_ips)

    @property
    def rotated_at(self) -> datetime:
        """When the current secret was issued."""
        return self.refreshed_at or self.created_at


class SpentRefreshToken(models.Model):
    """A refresh token that has been used once; rotation refuses it forever after."""

    jti = models.CharField(max_length=64, unique=True)
    user_token = models.ForeignKey(UserToken, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField(db_index=True)
    spent_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"spent refresh token of User Token {self.user_token_id}"
