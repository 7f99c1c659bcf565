"""Shapes of the licensing API: validate input, present objects. Policy lives in services."""

import json
import re
from collections.abc import Mapping
from datetime import datetime

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from rest_framework import serializers

from api.json_types import wrong_types
from api.serializers import StrictSerializer
from licensing import offline, services
from licensing.models import (
    FINGERPRINT_MAX_LENGTH,
    FINGERPRINT_PATTERN,
    Customer,
    DeactivationReason,
    Group,
    License,
    LicenseStatus,
    Machine,
    MachineStatus,
    Plan,
    Product,
)
from tenants.http_signatures import MAX_NONCE_LENGTH, NonceField

User = get_user_model()

# Fields that would grant rights: named in the refusal so a client knows why it was refused.
PRIVILEGED_USER_FIELDS = frozenset(
    {"is_staff", "is_superuser", "password", "user_permissions", "groups"}
)


# --- Users


class UserSerializer(StrictSerializer):
    licensing_groups = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    refused_fields = PRIVILEGED_USER_FIELDS
    refused_message = (
        "Staff, superuser, password and admin permissions are managed in the admin only."
    )

    class Meta:
        model = User
        fields = (
            "id",
            "username",
            "email",
            "first_name",
            "last_name",
            "is_active",
            "is_staff",
            "date_joined",
            "last_login",
            "licensing_groups",
        )
        read_only_fields = ("is_staff", "date_joined", "last_login")


# --- Licensing groups


class MemberIdsField(serializers.ListField):
    """User ids, checked in one query however many are given."""

    child = serializers.IntegerField(min_value=1, max_value=2**63 - 1)

    def __init__(self, **kwargs):
        super().__init__(max_length=10_000, **kwargs)

    def to_internal_value(self, data):
        ids = list(dict.fromkeys(super().to_internal_value(data)))
        known = set(User.objects.filter(pk__in=ids).values_list("pk", flat=True))
        unknown = [pk for pk in ids if pk not in known]
        if unknown:
            raise serializers.ValidationError(
                [f'Invalid pk "{pk}" - object does not exist.' for pk in unknown[:20]]
            )
        return ids

    def to_representation(self, value):
        return [user.pk for user in value.all()]


class GroupSerializer(StrictSerializer):
    members = MemberIdsField(required=False)

    class Meta:
        model = Group
        fields = (
            "id",
            "name",
            "description",
            "max_licenses_per_member",
            "members",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("created_at", "updated_at")


# --- Products and plans


class PlanSerializer(StrictSerializer):
    product = serializers.PrimaryKeyRelatedField(queryset=Product.objects.all())
    entitlements = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=200
    )

    class Meta:
        model = Plan
        fields = (
            "id",
            "product",
            "code",
            "name",
            "duration_days",
            "max_activations",
            *services.PLAN_MACHINE_RULES,
            "entitlements",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("created_at", "updated_at")
        # Uniqueness of (product, code) is checked by the service, which also covers updates.
        validators = []


class NestedPlanSerializer(serializers.ModelSerializer):
    class Meta:
        model = Plan
        fields = (
            "id",
            "code",
            "name",
            "duration_days",
            "max_activations",
            *services.PLAN_MACHINE_RULES,
            "entitlements",
        )


class ProductSerializer(StrictSerializer):
    plans = NestedPlanSerializer(many=True, read_only=True)

    class Meta:
        model = Product
        fields = (
            "id",
            "code",
            "name",
            "description",
            "active",
            "plans",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("created_at", "updated_at")


# --- Customers


class CustomerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = ("id", "name", "email", "external_id", "notes", "created_at", "updated_at")
        read_only_fields = fields


# --- Licences


def iso_datetime(value, zone):
    """A datetime as DRF's DateTimeField presents it: ISO 8601 in the current time zone `zone`,
    Z for UTC."""
    if value is None:
        return None
    text = value.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


LICENSE_COLUMNS = (
    "id",
    "key",
    "product_id",
    "plan_id",
    "customer_id",
    "user_id",
    "status",
    "starts_at",
    "expires_at",
    "metadata",
    "created_at",
    "updated_at",
)


def license_answer(row: dict, zone=None) -> dict:
    """A licence as LicenseSerializer presents it, from a `.values(*LICENSE_COLUMNS)` row: the
    read path's answer without a serializer or a model instance (the same JSON, byte for byte;
    tests/licensing/test_license_representation.py compares them)."""
    zone = zone or timezone.get_current_timezone()
    expires_at = row["expires_at"]
    return {
        "id": row["id"],
        "key": row["key"],
        "product": row["product_id"],
        "plan": row["plan_id"],
        "customer": row["customer_id"],
        "user": row["user_id"],
        "status": row["status"],
        "starts_at": iso_datetime(row["starts_at"], zone),
        "expires_at": iso_datetime(expires_at, zone),
        "expired": expires_at is not None and expires_at <= timezone.now(),
        "metadata": row["metadata"],
        "created_at": iso_datetime(row["created_at"], zone),
        "updated_at": iso_datetime(row["updated_at"], zone),
    }


def utc_text_as_drf(text: str | None) -> str | None:
    """PostgreSQL's text of a timestamptz in a UTC session with the ISO DateStyle
    ('2026-12-01 18:11:13.9+00') as DRF presents it in UTC ('2026-12-01T18:11:13.900000Z'):
    the same text as `iso_datetime`, without making a datetime."""
    if text is None:
        return None
    if len(text) == 22:  # no fraction: a whole second
        return f"{text[:10]}T{text[11:19]}Z"
    return f"{text[:10]}T{text[11:-3]}{'0' * (29 - len(text))}Z"


def _sortable_utc_text(text: str) -> str:
    """PostgreSQL's UTC text of a timestamptz, fixed width (microseconds always), so that text
    order is time order."""
    return f"{text[:19]}.000000" if len(text) == 22 else f"{text[:-3]}{'0' * (29 - len(text))}"


def license_answers(rows: list[tuple], zone, *, utc_text: bool = False) -> list[dict]:
    """`license_answer` of each row of a page, rows as tuples in LICENSE_COLUMNS' order with
    metadata as the database's JSON text: the same dicts, built in one pass. With `utc_text` the
    times are PostgreSQL's text in a UTC session (utc_text_as_drf) and `zone` is UTC."""
    if utc_text:
        now = timezone.now().isoformat(sep=" ", timespec="microseconds")[:26]
        present = utc_text_as_drf

        def is_expired(expires_at):
            return expires_at is not None and _sortable_utc_text(expires_at) <= now
    else:
        now = timezone.now()

        def present(value):
            return iso_datetime(value, zone)

        def is_expired(expires_at):
            return expires_at is not None and expires_at <= now

    loads = json.loads
    return [
        {
            "id": id,
            "key": key,
            "product": product,
            "plan": plan,
            "customer": customer,
            "user": user,
            "status": status,
            "starts_at": present(starts_at),
            "expires_at": present(expires_at),
            "expired": is_expired(expires_at),
            # The column's default, most licences' value: the same as json.loads, much cheaper.
            "metadata": {} if metadata == "{}" else None if metadata is None else loads(metadata),
            "created_at": present(created_at),
            "updated_at": present(updated_at),
        }
        for (
            id,
            key,
            product,
            plan,
            customer,
            user,
            status,
            starts_at,
            expires_at,
            metadata,
            created_at,
            updated_at,
        ) in rows
    ]


class LicenseSerializer(StrictSerializer):
    product = serializers.PrimaryKeyRelatedField(queryset=Product.objects.all())
    plan = serializers.PrimaryKeyRelatedField(queryset=Plan.objects.all())
    customer = serializers.PrimaryKeyRelatedField(
        queryset=Customer.objects.all(), allow_null=True, required=False
    )
    user = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.all(), allow_null=True, required=False
    )
    status = serializers.ChoiceField(choices=LicenseStatus.choices, required=False)
    metadata = serializers.DictField(required=False)
    expired = serializers.BooleanField(source="is_expired", read_only=True)

    class Meta:
        model = License
        fields = (
            "id",
            "key",
            "product",
            "plan",
            "customer",
            "user",
            "status",
            "starts_at",
            "expires_at",
            "expired",
            "metadata",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("key", "created_at", "updated_at")
        extra_kwargs = {"starts_at": {"required": False}, "expires_at": {"required": False}}

    def to_representation(self, instance):
        # The licence list's hot path (50 per page): DRF's field-by-field representation cost
        # ~45 µs a licence, this ~12 µs. The same answer, field for field (docs/performance.md;
        # tests/licensing/test_license_representation.py compares the two).
        zone = timezone.get_current_timezone()
        return {
            "id": instance.id,
            "key": instance.key,
            "product": instance.product_id,
            "plan": instance.plan_id,
            "customer": instance.customer_id,
            "user": instance.user_id,
            "status": instance.status,
            "starts_at": iso_datetime(instance.starts_at, zone),
            "expires_at": iso_datetime(instance.expires_at, zone),
            "expired": instance.is_expired,
            "metadata": instance.metadata,
            "created_at": iso_datetime(instance.created_at, zone),
            "updated_at": iso_datetime(instance.updated_at, zone),
        }


class LicenseUpdateSerializer(LicenseSerializer):
    """PATCH: status, dates, assignment and metadata; the product and plan are fixed."""

    class Meta(LicenseSerializer.Meta):
        read_only_fields = ("key", "product", "plan", "created_at", "updated_at")


# --- Validation, activation, heartbeat, deactivation (no token)


def fingerprint_field(**kwargs) -> serializers.RegexField:
    return serializers.RegexField(
        FINGERPRINT_PATTERN,
        max_length=FINGERPRINT_MAX_LENGTH,
        trim_whitespace=False,
        error_messages={"invalid": "Printable ASCII, 1-255 characters, no space at either end."},
        help_text="The machine's identity as the client computes it (e.g. a hash of hardware "
        "ids): printable ASCII, no space at either end.",
        **kwargs,
    )


class LicenseKeyRequestSerializer(serializers.Serializer):
    """The token-free requests: a licence key (and here a fingerprint) as the client has them."""

    # No length limits here: an overlong key is malformed and answers NOT_FOUND like any other.
    key = serializers.CharField(trim_whitespace=False, allow_blank=True)
    fingerprint = fingerprint_field()
    nonce = NonceField()

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            # Strings only: DRF's CharField would accept a number and turn it into text.
            errors = wrong_types(self, data)
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class ValidationRequestSerializer(LicenseKeyRequestSerializer):
    product = serializers.CharField(required=False, allow_null=True, trim_whitespace=False)
    # Given: the licence must also be active on that machine.
    fingerprint = fingerprint_field(required=False, allow_null=True)


# A fingerprint the serializer's RegexField takes as it is (fullmatch: `$` would allow a "\n").
_PLAIN_FINGERPRINT = re.compile(FINGERPRINT_PATTERN.removeprefix("^").removesuffix("$"))


def _plain_text(value, max_length: int | None = None) -> bool:
    # ASCII without NUL: nothing DRF's CharField validators (null characters, surrogates) refuse.
    return (
        isinstance(value, str)
        and value.isascii()
        and "\x00" not in value
        and (max_length is None or len(value) <= max_length)
    )


def plain_validation_request(data) -> dict | None:
    """ValidationRequestSerializer's `validated_data` for a request that it takes as sent, found
    without a serializer; None for anything else, which the serializer then decides (errors
    included). tests/licensing/test_validation_answer.py compares the two."""
    return _plain_request(
        data, ("product", "fingerprint", "nonce"), nullable={"product", "fingerprint"}
    )


def plain_machine_request(data) -> dict | None:
    """`plain_validation_request` for LicenseKeyRequestSerializer (heartbeat, deactivation): the
    key, a fingerprint (required, not null) and the nonce."""
    if type(data) is not dict or "fingerprint" not in data:
        return None
    return _plain_request(data, ("fingerprint", "nonce"), nullable=set())


MACHINE_DESCRIPTION = ("name", "platform", "hostname", "metadata")


def plain_activation_request(data) -> dict | None:
    """`plain_machine_request` for ActivationRequestSerializer: a request that describes the
    machine (its name, platform, hostname or metadata) is the serializer's."""
    if type(data) is not dict or any(name in data for name in MACHINE_DESCRIPTION):
        return None
    return plain_machine_request(data)


def _plain_request(data, names: tuple[str, ...], nullable: set[str]) -> dict | None:
    if type(data) is not dict or not _plain_text(data.get("key")):
        return None
    fields = {"key": data["key"]}
    for name in names:
        if name not in data:
            continue
        value = data[name]
        if value is None and name in nullable:
            fields[name] = None
            continue
        if name == "fingerprint":
            plain = _plain_text(value, FINGERPRINT_MAX_LENGTH) and _PLAIN_FINGERPRINT.fullmatch(
                value
            )
        else:
            plain = _plain_text(value, MAX_NONCE_LENGTH if name == "nonce" else None) and value
        if not plain:
            return None
        fields[name] = value
    return fields


class ActivationRequestSerializer(LicenseKeyRequestSerializer):
    name = serializers.CharField(max_length=255, required=False, allow_blank=True)
    platform = serializers.CharField(max_length=64, required=False, allow_blank=True)
    hostname = serializers.CharField(max_length=255, required=False, allow_blank=True)
    metadata = serializers.DictField(required=False)

    def validate_metadata(self, value):
        try:
            return services.clean_metadata(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict["metadata"]) from None


class ActivationsSerializer(serializers.Serializer):
    used = serializers.IntegerField(source="activations_used", help_text="Active machines.")
    max = serializers.IntegerField(
        source="plan.max_activations", allow_null=True, help_text="null: no limit."
    )


class CheckoutRequestSerializer(ValidationRequestSerializer):
    """POST /v1/licenses/checkout: the validation request, and what the licence file should be."""

    # Given: binds the file to this machine, which must be activated for the licence.
    fingerprint = fingerprint_field(required=False, allow_null=True)
    ttl_seconds = serializers.IntegerField(
        required=False,
        min_value=int(offline.MIN_TTL.total_seconds()),
        max_value=int(offline.MAX_TTL.total_seconds()),
        help_text="How long the file is valid (default 7 days); never past the licence's expiry.",
    )
    encrypt = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Encrypt the payload (AES-256-GCM) with a key derived from the licence key.",
    )
    unknown_fields_refused = True  # api.openapi: `additionalProperties: false`

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            errors = wrong_types(self, data)
            errors.update({name: ["Unknown field."] for name in data if name not in self.fields})
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class ValidatedLicenseSerializer(serializers.Serializer):
    """What a client application learns about a licence: nothing about who holds it."""

    status = serializers.ChoiceField(choices=LicenseStatus.choices)
    product = serializers.CharField(source="product.code")
    plan = serializers.CharField(source="plan.code")
    starts_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True, help_text="null: perpetual.")
    entitlements = serializers.ListField(child=serializers.CharField(), source="plan.entitlements")
    max_activations = serializers.IntegerField(source="plan.max_activations", allow_null=True)
    activations = ActivationsSerializer(source="*")


def checked_license_answer(license: services.CheckedLicense, zone=None) -> dict:
    """ValidatedLicenseSerializer's representation of a validation's `CheckedLicense`, without a
    serializer (the same JSON, byte for byte: tests/licensing/test_validation_answer.py)."""
    zone = zone or timezone.get_current_timezone()
    return {
        "status": license.status,
        "product": license.product,
        "plan": license.plan,
        "starts_at": iso_datetime(license.starts_at, zone),
        "expires_at": iso_datetime(license.expires_at, zone),
        "entitlements": [str(item) for item in json.loads(license.entitlements)],
        "max_activations": license.max_activations,
        "activations": {"used": license.activations_used, "max": license.max_activations},
    }


class HeartbeatRulesSerializer(serializers.Serializer):
    required = serializers.SerializerMethodField()
    interval_seconds = serializers.IntegerField(
        source="heartbeat_seconds", allow_null=True, help_text="null: no heartbeat needed."
    )
    grace_seconds = serializers.IntegerField(source="heartbeat_grace_seconds")
    revive_seconds = serializers.IntegerField()

    def get_required(self, plan) -> bool:
        return plan.heartbeat_seconds is not None


class ActivatedMachineSerializer(serializers.ModelSerializer):
    """A machine as its client application sees it (activation and heartbeat answers)."""

    status = serializers.ChoiceField(choices=MachineStatus.choices, read_only=True)
    heartbeat_deadline = serializers.SerializerMethodField(
        help_text="When the next heartbeat is due; null: no heartbeat needed."
    )
    heartbeat = HeartbeatRulesSerializer(source="license.plan", read_only=True)

    class Meta:
        model = Machine
        fields = (
            "id",
            "fingerprint",
            "name",
            "platform",
            "hostname",
            "metadata",
            "status",
            "activated_at",
            "last_heartbeat_at",
            "heartbeat_deadline",
            "dies_at",
            "heartbeat",
        )
        read_only_fields = fields

    def get_heartbeat_deadline(self, machine) -> datetime | None:
        deadline = services.heartbeat_deadline(machine, machine.license.plan)
        return serializers.DateTimeField().to_representation(deadline) if deadline else None


def activated_machine_answer(machine, rules, zone=None) -> dict:
    """ActivatedMachineSerializer's representation without a serializer (the same JSON, byte for
    byte: tests/licensing/test_machines.py): a `Machine` with its plan, or a
    `services.LiveMachine` with its `HeartbeatRules`."""
    zone = zone or timezone.get_current_timezone()
    deadline = services.heartbeat_deadline(machine, rules)
    return {
        "id": machine.id,
        "fingerprint": machine.fingerprint,
        "name": machine.name,
        "platform": machine.platform,
        "hostname": machine.hostname,
        "metadata": machine.metadata,
        "status": str(machine.status),
        "activated_at": iso_datetime(machine.activated_at, zone),
        "last_heartbeat_at": iso_datetime(machine.last_heartbeat_at, zone),
        "heartbeat_deadline": iso_datetime(deadline, zone),
        "dies_at": iso_datetime(machine.dies_at, zone),
        "heartbeat": {
            "required": rules.heartbeat_seconds is not None,
            "interval_seconds": rules.heartbeat_seconds,
            "grace_seconds": rules.heartbeat_grace_seconds,
            "revive_seconds": rules.revive_seconds,
        },
    }


class MachineSerializer(ActivatedMachineSerializer):
    """A machine on the managed side (GET /v1/machines): with its licence and deactivation."""

    license = serializers.PrimaryKeyRelatedField(read_only=True)
    deactivation_reason = serializers.ChoiceField(
        choices=DeactivationReason.choices, allow_blank=True, read_only=True
    )

    class Meta(ActivatedMachineSerializer.Meta):
        fields = (
            "id",
            "license",
            *ActivatedMachineSerializer.Meta.fields[1:],
            "dead_at",
            "deactivated_at",
            "deactivation_reason",
        )
        read_only_fields = fields
