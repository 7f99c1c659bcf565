"""The writes and rules of the licensing domain, written once for the API, the admin and commands.

Every function owns its transaction. Broken rules raise Django's `ValidationError` (a dict keyed by
field, answered `400 Invalid request` by the API) or `PermissionDenied` (`403 Access denied`).
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from licensing.models import (
    Customer,
    Group,
    License,
    LicenseStatus,
    LicenseValidation,
    Plan,
    Product,
    ValidationCode,
)

User = get_user_model()

# Crockford's base32: no I, L, O or U, so a key read aloud or retyped cannot be misread.
KEY_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
KEY_GROUPS = 5
KEY_GROUP_LENGTH = 5  # 25 symbols * 5 bits = 125 bits of randomness
KEY_LENGTH = KEY_GROUPS * KEY_GROUP_LENGTH
# Looked up instead of a malformed key, so every unknown key costs the same single indexed query.
UNMATCHABLE_KEY = "IIIII-LLLLL-OOOOO-UUUUU-IIIII"
_KEY_SEPARATORS = re.compile(r"[\s\-_]+")
_KEY_MISREADINGS = str.maketrans({"I": "1", "L": "1", "O": "0"})
_KEY_SYMBOLS = frozenset(KEY_ALPHABET)
MAX_KEY_INPUT = 64

MAX_METADATA_BYTES = 16 * 1024
# A plan lasts at most a century: longer is a typo, and dates must stay within year 9999.
MAX_DURATION_DAYS = 100 * 366
MAX_ENTITLEMENTS = 200
FEATURE_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")

# Sentinel: "not given", as opposed to an explicit None (e.g. `expires_at=None` means perpetual).
UNSET: Any = object()

USER_FIELDS = ("username", "email", "first_name", "last_name", "is_active")


# --- Licence keys


def generate_license_key() -> str:
    symbols = "".join(secrets.choice(KEY_ALPHABET) for _ in range(KEY_LENGTH))
    return "-".join(
        symbols[i : i + KEY_GROUP_LENGTH] for i in range(0, KEY_LENGTH, KEY_GROUP_LENGTH)
    )


def normalise_license_key(raw: str) -> str | None:
    """The stored form of a key as a person may type it; None when it cannot be a key."""
    if len(raw) > MAX_KEY_INPUT:
        return None
    symbols = _KEY_SEPARATORS.sub("", raw).upper().translate(_KEY_MISREADINGS)
    if len(symbols) != KEY_LENGTH or not _KEY_SYMBOLS.issuperset(symbols):
        return None
    return "-".join(
        symbols[i : i + KEY_GROUP_LENGTH] for i in range(0, KEY_LENGTH, KEY_GROUP_LENGTH)
    )


# --- Users (the tenant's Django users; staff rights are managed in the admin only)


def _refuse_admin_accounts(user: AbstractUser) -> None:
    if user.is_staff or user.is_superuser:
        raise PermissionDenied("Administrator accounts are managed in the admin only.")


def _saved(instance, update_fields: list[str] | None = None):
    """Validate `instance` with the model's own rules, then save it."""
    instance.full_clean()
    try:
        with transaction.atomic():
            instance.save(update_fields=update_fields)
    except IntegrityError:
        # A concurrent write took a unique value between the check and the save.
        raise ValidationError(
            {"non_field_errors": ["Conflicts with an existing record."]}
        ) from None
    return instance


@transaction.atomic
def create_user(
    *,
    username: str,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    is_active: bool = True,
) -> AbstractUser:
    """A regular (never staff, never superuser) user without a usable password."""
    user = User(
        username=username,
        email=email,
        first_name=first_name,
        last_name=last_name,
        is_active=is_active,
        is_staff=False,
        is_superuser=False,
    )
    user.set_unusable_password()
    return _saved(user)


@transaction.atomic
def update_user(user: AbstractUser, **changes: Any) -> AbstractUser:
    """Change a regular user's profile or active flag; nothing that grants rights."""
    refused = set(changes) - set(USER_FIELDS)
    if refused:
        raise ValidationError({name: ["This field cannot be changed."] for name in sorted(refused)})
    _refuse_admin_accounts(user)
    for name, value in changes.items():
        setattr(user, name, value)
    return _saved(user, update_fields=list(changes) or None)


@transaction.atomic
def delete_user(user: AbstractUser) -> None:
    """Delete a regular user; their licences stay, unassigned."""
    _refuse_admin_accounts(user)
    user.delete()


# --- Licensing groups


def _set_members(group: Group, members) -> None:
    group.members.set(members)


@transaction.atomic
def create_group(
    *,
    name: str,
    description: str = "",
    max_licenses_per_member: int | None = None,
    members=(),
) -> Group:
    group = _saved(
        Group(
            name=name,
            description=description,
            max_licenses_per_member=max_licenses_per_member,
        )
    )
    _set_members(group, members)
    return group


@transaction.atomic
def update_group(group: Group, *, members=UNSET, **changes: Any) -> Group:
    """Change a group's settings and, when given, replace its members."""
    allowed = {"name", "description", "max_licenses_per_member"}
    refused = set(changes) - allowed
    if refused:
        raise ValidationError({name: ["This field cannot be changed."] for name in sorted(refused)})
    for name, value in changes.items():
        setattr(group, name, value)
    _saved(group)
    if members is not UNSET:
        _set_members(group, members)
    return group


@transaction.atomic
def delete_group(group: Group) -> None:
    group.delete()


# --- Products and plans


@transaction.atomic
def create_product(*, code: str, name: str, description: str = "", active: bool = True) -> Product:
    return _saved(Product(code=code, name=name, description=description, active=active))


@transaction.atomic
def update_product(product: Product, **changes: Any) -> Product:
    refused = set(changes) - {"code", "name", "description", "active"}
    if refused:
        raise ValidationError({name: ["This field cannot be changed."] for name in sorted(refused)})
    for name, value in changes.items():
        setattr(product, name, value)
    return _saved(product)


def clean_entitlements(entitlements) -> list[str]:
    """A list of distinct feature codes, in the order given."""
    if not isinstance(entitlements, (list, tuple)):
        raise ValidationError({"entitlements": ["Expected a list of feature codes."]})
    if len(entitlements) > MAX_ENTITLEMENTS:
        raise ValidationError({"entitlements": [f"At most {MAX_ENTITLEMENTS} feature codes."]})
    codes: list[str] = []
    for code in entitlements:
        if not isinstance(code, str) or not FEATURE_CODE.match(code):
            raise ValidationError(
                {"entitlements": [f"Invalid feature code {code!r}: letters, digits, . _ : -"]}
            )
        if code not in codes:
            codes.append(code)
    return codes


def clean_duration(duration_days: int | None) -> int | None:
    if duration_days is not None and duration_days > MAX_DURATION_DAYS:
        raise ValidationError(
            {"duration_days": [f"At most {MAX_DURATION_DAYS} days; leave it empty for perpetual."]}
        )
    return duration_days


@transaction.atomic
def create_plan(
    *,
    product: Product,
    code: str,
    name: str,
    duration_days: int | None = None,
    max_activations: int | None = None,
    entitlements=(),
) -> Plan:
    return _saved(
        Plan(
            product=product,
            code=code,
            name=name,
            duration_days=clean_duration(duration_days),
            max_activations=max_activations,
            entitlements=clean_entitlements(entitlements),
        )
    )


@transaction.atomic
def update_plan(plan: Plan, **changes: Any) -> Plan:
    """Change a plan; its product is fixed (licences issued under it refer to both)."""
    if "product" in changes and changes["product"].pk != plan.product_id:
        raise ValidationError({"product": ["A plan cannot move to another product."]})
    changes.pop("product", None)
    refused = set(changes) - {"code", "name", "duration_days", "max_activations", "entitlements"}
    if refused:
        raise ValidationError({name: ["This field cannot be changed."] for name in sorted(refused)})
    if "entitlements" in changes:
        changes["entitlements"] = clean_entitlements(changes["entitlements"])
    if "duration_days" in changes:
        changes["duration_days"] = clean_duration(changes["duration_days"])
    for name, value in changes.items():
        setattr(plan, name, value)
    return _saved(plan)


# --- Customers (created in the admin)


@transaction.atomic
def create_customer(
    *, name: str, email: str = "", external_id: str = "", notes: str = ""
) -> Customer:
    return _saved(Customer(name=name, email=email, external_id=external_id, notes=notes))


# --- Licences


def _holds_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def clean_metadata(metadata) -> dict:
    if not isinstance(metadata, dict):
        raise ValidationError({"metadata": ["Expected a JSON object."]})
    if _holds_nul(metadata):  # PostgreSQL's jsonb cannot store the NUL character
        raise ValidationError({"metadata": ["Text may not contain the NUL character (\\u0000)."]})
    if len(json.dumps(metadata, separators=(",", ":"))) > MAX_METADATA_BYTES:
        raise ValidationError({"metadata": [f"At most {MAX_METADATA_BYTES} bytes of JSON."]})
    return metadata


def _check_member_limit(user: AbstractUser, exclude: License | None = None) -> None:
    """Refuse another active licence for a user who holds their groups' maximum already."""
    limits = Group.objects.filter(members=user, max_licenses_per_member__isnull=False).values_list(
        "max_licenses_per_member", flat=True
    )
    limit = min(limits, default=None)
    if limit is None:
        return
    held = License.objects.filter(user=user, status=LicenseStatus.ACTIVE).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
    )
    if exclude is not None and exclude.pk is not None:
        held = held.exclude(pk=exclude.pk)
    if held.count() >= limit:
        raise ValidationError(
            {"user": [f"This user holds {limit} active licences, the most their groups allow."]}
        )


def check_license_terms(
    *,
    product: Product,
    plan: Plan,
    user: AbstractUser | None,
    status: str,
    starts_at: datetime,
    expires_at: datetime | None,
    license: License | None = None,
) -> None:
    """The rules a licence must meet, for a new one (`license` None) or a change of `license`
    (as stored). Raises ValidationError keyed by field."""
    if license is None:
        if plan.product_id != product.pk:
            raise ValidationError({"plan": ["This plan belongs to another product."]})
        if not product.active:
            raise ValidationError(
                {"product": ["This product is inactive and takes no new licences."]}
            )
    elif license.status == LicenseStatus.REVOKED and status != LicenseStatus.REVOKED:
        raise ValidationError({"status": ["A revoked licence cannot be reinstated."]})
    if expires_at is not None and expires_at <= starts_at:
        raise ValidationError({"expires_at": ["Must be later than starts_at."]})
    gains_holder = license is None or (
        license.user_id != getattr(user, "pk", None) or license.status != status
    )
    if user is not None and status == LicenseStatus.ACTIVE and gains_holder:
        _check_member_limit(user, exclude=license)


def _expiry(starts_at: datetime, duration_days: int) -> datetime:
    try:
        return starts_at + timedelta(days=duration_days)
    except OverflowError:
        raise ValidationError(
            {"expires_at": ["The plan's duration from starts_at ends after the year 9999."]}
        ) from None


def _lock_holder(user: AbstractUser | None) -> None:
    """Serialise concurrent issues for one user, so a group's limit holds."""
    if user is not None:
        list(User.objects.select_for_update().filter(pk=user.pk).values_list("pk"))


@transaction.atomic
def issue_license(
    *,
    product: Product,
    plan: Plan,
    customer: Customer | None = None,
    user: AbstractUser | None = None,
    starts_at: datetime | None = None,
    expires_at: datetime | None = UNSET,
    metadata: dict | None = None,
    status: str = LicenseStatus.ACTIVE,
) -> License:
    """A new licence with a fresh key; it expires after the plan's duration unless told otherwise."""
    starts_at = starts_at or timezone.now()
    if expires_at is UNSET:
        expires_at = None if plan.duration_days is None else _expiry(starts_at, plan.duration_days)
    _lock_holder(user)
    check_license_terms(
        product=product,
        plan=plan,
        user=user,
        status=status,
        starts_at=starts_at,
        expires_at=expires_at,
    )
    license = License(
        product=product,
        plan=plan,
        customer=customer,
        user=user,
        status=status,
        starts_at=starts_at,
        expires_at=expires_at,
        metadata=clean_metadata(metadata if metadata is not None else {}),
    )
    license.full_clean(exclude=["key"])
    for _attempt in range(3):
        license.key = generate_license_key()
        try:
            with transaction.atomic():
                license.save(force_insert=True)
            return license
        except IntegrityError:  # a key collision: 2**-125 per pair, but never a 500
            license.pk = None
    raise RuntimeError("Could not generate a unique licence key.")


LICENSE_CHANGEABLE = ("status", "starts_at", "expires_at", "customer", "user", "metadata")


@transaction.atomic
def update_license(license: License, **changes: Any) -> License:
    """Change status, dates, assignment or metadata. A revoked licence stays revoked."""
    refused = set(changes) - set(LICENSE_CHANGEABLE)
    if refused:
        raise ValidationError({name: ["This field cannot be changed."] for name in sorted(refused)})
    stored = (
        License.objects.select_for_update().select_related("product", "plan").get(pk=license.pk)
    )
    if "metadata" in changes:
        changes["metadata"] = clean_metadata(changes["metadata"])
    terms = {name: getattr(stored, name) for name in ("user", "status", "starts_at", "expires_at")}
    terms.update({name: value for name, value in changes.items() if name in terms})
    _lock_holder(terms["user"])
    check_license_terms(product=stored.product, plan=stored.plan, license=stored, **terms)
    for name, value in changes.items():
        setattr(stored, name, value)
    stored.full_clean()
    stored.save()
    return stored


# --- Token-free validation


@dataclass(frozen=True)
class ValidationResult:
    code: ValidationCode
    license: License | None

    @property
    def valid(self) -> bool:
        return self.code == ValidationCode.VALID

    @property
    def detail(self) -> str:
        return self.code.label


def _validation_code(license: License | None, product_code: str | None, now) -> ValidationCode:
    if license is None:
        return ValidationCode.NOT_FOUND
    if license.status == LicenseStatus.REVOKED:
        return ValidationCode.REVOKED
    if license.status == LicenseStatus.SUSPENDED:
        return ValidationCode.SUSPENDED
    if license.starts_at > now:
        return ValidationCode.NOT_STARTED
    if license.is_expired_at(now):
        return ValidationCode.EXPIRED
    if product_code is not None and product_code != license.product.code:
        return ValidationCode.PRODUCT_MISMATCH
    return ValidationCode.VALID


def _storable_address(address: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(address)) if address else None
    except ValueError:
        return None


def validate_license_key(
    key: str, *, product_code: str | None = None, client_address: str | None = None
) -> ValidationResult:
    """Check a key as a client application presents it, and record the check.

    Two queries whatever the input: one indexed lookup (a malformed key looks up a key that cannot
    exist, so it costs what an unknown one costs) and one INSERT of the record.
    """
    lookup = normalise_license_key(key) or UNMATCHABLE_KEY
    found = list(License.objects.select_related("product", "plan").filter(key=lookup)[:1])
    license = found[0] if found else None
    code = _validation_code(license, product_code, timezone.now())
    LicenseValidation.objects.create(
        license=license, code=code, client_address=_storable_address(client_address)
    )
    return ValidationResult(code=code, license=license)
