"""The licensing domain of one tenant: groups, products, plans, customers, licences, machines,
validations.

Every table lives in the tenant's own schema, so a query can only ever see the tenant's rows.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from licensing import clock

CODE_VALIDATOR = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
    "Use letters, digits, dots, dashes and underscores, starting with a letter or digit.",
)


MAX_HEARTBEAT_SECONDS = 366 * 24 * 3600
DEFAULT_HEARTBEAT_GRACE_SECONDS = 120
DEFAULT_REVIVE_SECONDS = 24 * 3600
# The churn budget's window: a licence's client deactivations are counted over this many days.
DEACTIVATION_WINDOW_DAYS = 30
# Printable ASCII, no space at either end (hardware ids, hashes, uuids).
FINGERPRINT_PATTERN = r"^[!-~](?:[ -~]*[!-~])?$"
FINGERPRINT_MAX_LENGTH = 255


class LicenseStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    REVOKED = "revoked", "Revoked"


class ValidationCode(models.TextChoices):
    """Answers of `POST /v1/licenses/validate`, in the order they are checked."""

    NOT_FOUND = "NOT_FOUND", "No licence has this key."
    REVOKED = "REVOKED", "The licence has been revoked."
    SUSPENDED = "SUSPENDED", "The licence is suspended."
    NOT_STARTED = "NOT_STARTED", "The licence is not valid yet."
    EXPIRED = "EXPIRED", "The licence has expired."
    PRODUCT_MISMATCH = "PRODUCT_MISMATCH", "The licence is for another product."
    FINGERPRINT_NOT_ACTIVATED = (
        "FINGERPRINT_NOT_ACTIVATED",
        "The licence is not activated on this machine.",
    )
    HEARTBEAT_DEAD = "HEARTBEAT_DEAD", "This machine missed its heartbeat and is no longer active."
    VALID = "VALID", "The licence is valid."


class Timestamped(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Group(Timestamped):
    """A licensing group of users with shared settings; it grants no rights in the admin."""

    name = models.CharField(max_length=150, unique=True)
    description = models.TextField(blank=True)
    max_licenses_per_member = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Most active licences a member may hold; empty means no limit.",
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="licensing_groups", blank=True
    )

    class Meta:
        verbose_name = "licensing group"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Product(Timestamped):
    code = models.CharField(max_length=64, unique=True, validators=[CODE_VALIDATOR])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True, help_text="Inactive products take no new licences.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class Plan(Timestamped):
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="plans")
    code = models.CharField(max_length=64, validators=[CODE_VALIDATOR])
    name = models.CharField(max_length=200)
    duration_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="How long a licence lasts; empty means perpetual.",
    )
    max_activations = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Devices a licence may be activated on; empty means no limit.",
    )
    max_deactivations = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Machines a licence's client may deactivate per 30 days (churn budget); "
        "empty means no limit. Deactivations by an administrator are not counted.",
    )
    heartbeat_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_HEARTBEAT_SECONDS)],
        help_text="How often an activated machine must send a heartbeat; empty means never.",
    )
    heartbeat_grace_seconds = models.PositiveIntegerField(
        default=DEFAULT_HEARTBEAT_GRACE_SECONDS,
        validators=[MaxValueValidator(MAX_HEARTBEAT_SECONDS)],
        help_text="How late a heartbeat may be before the machine is dead.",
    )
    revive_seconds = models.PositiveIntegerField(
        default=DEFAULT_REVIVE_SECONDS,
        validators=[MaxValueValidator(MAX_HEARTBEAT_SECONDS)],
        help_text="How long after its death a heartbeat still revives a machine (if a slot is "
        "free); later, it must be activated again.",
    )
    entitlements = models.JSONField(
        default=list, blank=True, help_text="Feature codes this plan unlocks."
    )

    class Meta:
        ordering = ["product_id", "code"]
        constraints = [
            models.UniqueConstraint(fields=["product", "code"], name="plan_code_unique_per_product")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class Customer(Timestamped):
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    external_id = models.CharField(
        max_length=128, blank=True, help_text="The customer's id in your own systems."
    )
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["external_id"], name="customer_external_id")]

    def __str__(self) -> str:
        return self.name


class License(Timestamped):
    """A licence: its key is generated by the server (licensing.services.issue_license)."""

    key = models.CharField(max_length=29, unique=True, editable=False)
    # Each filter column is indexed together with `id`, the cursor's ordering, so a filtered page
    # is one index range scan at any table size; the plain foreign-key indexes would be redundant.
    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, related_name="licenses", db_index=False
    )
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="licenses")
    customer = models.ForeignKey(
        Customer,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="licenses",
        db_index=False,
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="licenses",
        db_index=False,
    )
    status = models.CharField(
        max_length=16, choices=LicenseStatus.choices, default=LicenseStatus.ACTIVE
    )
    starts_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty means perpetual.")
    metadata = models.JSONField(default=dict, blank=True)
    # Goes up whenever licence files issued so far must stop being trusted (suspend, revoke,
    # machine deactivation); each offline licence file carries the epoch it was issued at.
    epoch = models.PositiveIntegerField(default=0, db_default=0, editable=False)

    class Meta:
        verbose_name = "licence"
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "id"], name="license_status_id"),
            models.Index(fields=["product", "id"], name="license_product_id"),
            models.Index(fields=["customer", "id"], name="license_customer_id"),
            models.Index(fields=["user", "id"], name="license_user_id"),
        ]

    def __str__(self) -> str:
        return self.key

    def is_expired_at(self, moment: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= moment

    @property
    def is_expired(self) -> bool:
        return self.is_expired_at(timezone.now())


class MachineStatus(models.TextChoices):
    """A machine's state, derived from its heartbeat deadline and its deactivation."""

    ACTIVE = "active", "Active"
    DEAD = "dead", "Dead (missed its heartbeat)"
    DEACTIVATED = "deactivated", "Deactivated"


class DeactivationReason(models.TextChoices):
    CLIENT = "client", "By the client application"  # counted against the churn budget
    MANAGED = "managed", "By an administrator or integration"


class Machine(models.Model):
    """A device a licence is activated on, identified by the client's fingerprint.

    It takes one of the plan's `max_activations` slots while active: not deactivated and, when
    the plan asks for heartbeats, not past `dies_at` (last heartbeat + interval + grace).
    """

    license = models.ForeignKey(
        License, on_delete=models.CASCADE, related_name="machines", db_index=False
    )
    fingerprint = models.CharField(
        max_length=FINGERPRINT_MAX_LENGTH,
        validators=[RegexValidator(FINGERPRINT_PATTERN, "Printable ASCII, 1-255 characters.")],
    )
    name = models.CharField(max_length=255, blank=True)
    platform = models.CharField(max_length=64, blank=True)
    hostname = models.CharField(max_length=255, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    activated_at = models.DateTimeField()
    last_heartbeat_at = models.DateTimeField()
    # Stored (not derived from the plan on every read) so "active" is one indexed comparison.
    dies_at = models.DateTimeField(
        null=True, blank=True, help_text="Dead from then on without a heartbeat; empty: never."
    )
    dead_at = models.DateTimeField(
        null=True, blank=True, help_text="When cull_machines found it dead (cleared by revival)."
    )
    deactivated_at = models.DateTimeField(null=True, blank=True)
    deactivation_reason = models.CharField(
        max_length=16, choices=DeactivationReason.choices, blank=True
    )

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["license", "fingerprint"],
                condition=models.Q(deactivated_at__isnull=True),
                name="machine_fingerprint_unique_per_license",
            )
        ]
        indexes = [
            models.Index(fields=["license", "id"], name="machine_license_id"),
            models.Index(fields=["fingerprint", "id"], name="machine_fingerprint_id"),
            models.Index(
                fields=["dies_at"],
                condition=models.Q(deactivated_at__isnull=True, dead_at__isnull=True),
                name="machine_alive_dies_at",
            ),
            models.Index(
                fields=["license", "deactivated_at"],
                condition=models.Q(deactivation_reason="client"),
                name="machine_client_deactivations",
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.hostname or self.fingerprint

    @property
    def status(self) -> MachineStatus:
        return self.status_at(clock.now())

    def status_at(self, moment: datetime) -> MachineStatus:
        if self.deactivated_at is not None:
            return MachineStatus.DEACTIVATED
        if self.dies_at is not None and self.dies_at <= moment:
            return MachineStatus.DEAD
        return MachineStatus.ACTIVE


class LicenseValidation(models.Model):
    """One call of the token-free validation endpoint (read by monitoring)."""

    license = models.ForeignKey(
        License, on_delete=models.SET_NULL, null=True, blank=True, related_name="validations"
    )
    code = models.CharField(max_length=32, choices=ValidationCode.choices)
    client_address = models.GenericIPAddressField(null=True, blank=True)
    # Set when the call happened, not when the buffered row was written (tenants.record_buffer).
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # The buffer's idempotency key: a row written twice is stored once.
    request_id = models.UUIDField(unique=True, null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "licence validation"
        ordering = ["-id"]
        indexes = [models.Index(fields=["code", "created_at"], name="validation_code_created")]

    def __str__(self) -> str:
        return f"{self.code} at {self.created_at:%Y-%m-%d %H:%M:%S}"
