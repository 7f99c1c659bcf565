from datetime import datetime

from django.core.exceptions import PermissionDenied
from django.db import models
from django.utils import timezone
from django_tenants.models import DomainMixin, TenantMixin
from django_tenants.utils import get_public_schema_name


class RequestPeriod(models.TextChoices):
    MINUTE = "minute", "per minute"
    HOUR = "hour", "per hour"
    DAY = "day", "per day"


PERIOD_SECONDS = {RequestPeriod.MINUTE: 60, RequestPeriod.HOUR: 3600, RequestPeriod.DAY: 86400}


class Tenant(TenantMixin):
    """A software vendor with its own schema, and its platform licence (CONTRACT section 2)."""

    name = models.CharField(max_length=200)
    request_limit = models.PositiveIntegerField(
        default=1000, help_text="API requests allowed per request period."
    )
    request_period = models.CharField(
        max_length=10, choices=RequestPeriod.choices, default=RequestPeriod.MINUTE
    )
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="When the platform licence ends; empty means never."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    auto_create_schema = True
    auto_drop_schema = True

    class Meta:
        ordering = ["schema_name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.schema_name})"

    def delete(self, *args, **kwargs):
        # The last guard under tenants.services.delete_tenant: never DROP SCHEMA public.
        if self.schema_name == get_public_schema_name():
            raise PermissionDenied("The public tenant cannot be deleted.")
        return super().delete(*args, **kwargs)

    def licence_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    @property
    def is_expired(self) -> bool:
        return self.licence_expired()

    @property
    def period_seconds(self) -> int:
        return PERIOD_SECONDS[RequestPeriod(self.request_period)]


class Domain(DomainMixin):
    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain


class RateCounter(models.Model):
    """One counter of the PostgreSQL-backed rate-limit cache (tenants.cache), public schema."""

    key = models.CharField(max_length=255, primary_key=True)
    value = models.BigIntegerField()
    expires_at = models.DateTimeField(null=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.key} = {self.value}"


class SigningKeyStatus(models.TextChoices):
    """How a tenant's signing key is published in its JWKS (GET /v1/signing-keys)."""

    CURRENT = "current", "Current"  # signs every new answer and licence file
    RETIRING = "retiring", "Retiring"  # still published so older signatures verify
    RETIRED = "retired", "Retired"  # past its overlap: no longer published


class SigningKey(models.Model):
    """A tenant's Ed25519 key pair for signed answers and licence files (tenants/signing_keys.py).

    Kept in the public schema beside the tenant, so provisioning, rotation and the data migration
    for existing tenants work without entering a tenant's schema. The private key is stored only
    encrypted (AES-256-GCM under SIGNING_KEY_ENCRYPTION_KEY, the tenant and kid as associated data).
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="signing_keys")
    kid = models.CharField("key id", max_length=100, unique=True, editable=False)
    public_key = models.BinaryField(max_length=32, editable=False)  # raw Ed25519, 32 bytes
    encrypted_private_key = models.BinaryField(editable=False)  # 12-byte nonce + ciphertext + tag
    created_at = models.DateTimeField(auto_now_add=True)
    retires_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Empty for the current key; a replaced key stays published until then.",
    )

    class Meta:
        ordering = ["tenant_id", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                condition=models.Q(retires_at__isnull=True),
                name="one_current_signing_key_per_tenant",
            )
        ]

    def __str__(self) -> str:
        return self.kid

    def status_at(self, moment: datetime) -> SigningKeyStatus:
        if self.retires_at is None:
            return SigningKeyStatus.CURRENT
        return SigningKeyStatus.RETIRING if self.retires_at > moment else SigningKeyStatus.RETIRED

    @property
    def status(self) -> SigningKeyStatus:
        return self.status_at(timezone.now())
