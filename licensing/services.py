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
from functools import lru_cache
from typing import Any, NamedTuple

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, router, transaction
from django.db.models import Count, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce

from api.statements import prepared_cursor
from api.validation import refuse_fields
from licensing import clock, signals
from licensing.models import (
    DEACTIVATION_WINDOW_DAYS,
    Customer,
    DeactivationReason,
    Group,
    License,
    LicenseStatus,
    LicenseValidation,
    Machine,
    MachineStatus,
    Plan,
    Product,
    ValidationCode,
)
from tenants.record_buffer import buffer_record
from webhooks.models import EventType
from webhooks.services import emit_event

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
# A key already in its stored form (as client applications send it): nothing to normalise.
_STORED_KEY = re.compile(
    "-".join([f"[{re.escape(KEY_ALPHABET)}]{{{KEY_GROUP_LENGTH}}}"] * KEY_GROUPS)
)

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
    if _STORED_KEY.fullmatch(raw):
        return raw
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
    refuse_fields(changes, allowed=USER_FIELDS)
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
    refuse_fields(changes, allowed=allowed)
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
    refuse_fields(changes, allowed={"code", "name", "description", "active"})
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
    **machine_rules: Any,
) -> Plan:
    """A plan; `machine_rules` are any of PLAN_MACHINE_RULES (churn budget, heartbeats)."""
    refuse_fields(machine_rules, allowed=PLAN_MACHINE_RULES, message="Unknown plan field.")
    return _saved(
        Plan(
            product=product,
            code=code,
            name=name,
            duration_days=clean_duration(duration_days),
            max_activations=max_activations,
            entitlements=clean_entitlements(entitlements),
            **machine_rules,
        )
    )


PLAN_MACHINE_RULES = (
    "max_deactivations",
    "heartbeat_seconds",
    "heartbeat_grace_seconds",
    "revive_seconds",
)
PLAN_CHANGEABLE = ("code", "name", "duration_days", "max_activations", "entitlements")


@transaction.atomic
def update_plan(plan: Plan, **changes: Any) -> Plan:
    """Change a plan; its product is fixed (licences issued under it refer to both)."""
    if "product" in changes and changes["product"].pk != plan.product_id:
        raise ValidationError({"product": ["A plan cannot move to another product."]})
    changes.pop("product", None)
    refuse_fields(changes, allowed={*PLAN_CHANGEABLE, *PLAN_MACHINE_RULES})
    if "entitlements" in changes:
        changes["entitlements"] = clean_entitlements(changes["entitlements"])
    heartbeat_changed = any(
        name in changes and changes[name] != getattr(plan, name)
        for name in ("heartbeat_seconds", "heartbeat_grace_seconds")
    )
    if "duration_days" in changes:
        changes["duration_days"] = clean_duration(changes["duration_days"])
    for name, value in changes.items():
        setattr(plan, name, value)
    _saved(plan)
    if heartbeat_changed:
        reschedule_machine_deaths(plan)
    return plan


# --- Customers (created in the admin)


@transaction.atomic
def create_customer(
    *, name: str, email: str = "", external_id: str = "", notes: str = ""
) -> Customer:
    return _saved(Customer(name=name, email=email, external_id=external_id, notes=notes))


@transaction.atomic
def update_customer(customer: Customer, **changes: Any) -> Customer:
    refuse_fields(changes, allowed={"name", "email", "external_id", "notes"})
    for name, value in changes.items():
        setattr(customer, name, value)
    return _saved(customer)


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
        unexpired(clock.now())
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
    starts_at = starts_at or clock.now()
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
        except IntegrityError:  # a key collision: 2**-125 per pair, but never a 500
            license.pk = None
            continue
        emit_license_event(EventType.LICENSE_CREATED, license)
        return license
    raise RuntimeError("Could not generate a unique licence key.")


# Moving to one of these bumps the licence's epoch (licensing/offline.py: files issued before stop
# being trusted once a client sees the revocation list).
WITHDRAWN_STATUSES = (LicenseStatus.SUSPENDED, LicenseStatus.REVOKED)
LICENSE_CHANGEABLE = ("status", "starts_at", "expires_at", "customer", "user", "metadata")


@transaction.atomic
def update_license(license: License, **changes: Any) -> License:
    """Change status, dates, assignment or metadata. A revoked licence stays revoked."""
    refuse_fields(changes, allowed=LICENSE_CHANGEABLE)
    stored = (
        License.objects.select_for_update().select_related("product", "plan").get(pk=license.pk)
    )
    if "metadata" in changes:
        changes["metadata"] = clean_metadata(changes["metadata"])
    terms = {name: getattr(stored, name) for name in ("user", "status", "starts_at", "expires_at")}
    terms.update({name: value for name, value in changes.items() if name in terms})
    _lock_holder(terms["user"])
    check_license_terms(product=stored.product, plan=stored.plan, license=stored, **terms)
    status_before = stored.status
    new_status = changes.get("status", status_before)
    withdrawn = new_status != status_before and new_status in WITHDRAWN_STATUSES
    for name, value in changes.items():
        setattr(stored, name, value)
    if withdrawn:
        stored.epoch += 1  # licence files issued so far are dropped by the revocation list
    stored.full_clean()
    stored.save()
    emit_license_event(
        LICENSE_STATUS_EVENTS.get((status_before, stored.status), EventType.LICENSE_UPDATED), stored
    )
    return stored


# --- Webhook events about licences (written in the transaction of the change)

LICENSE_STATUS_EVENTS = {
    (LicenseStatus.ACTIVE, LicenseStatus.SUSPENDED): EventType.LICENSE_SUSPENDED,
    (LicenseStatus.ACTIVE, LicenseStatus.REVOKED): EventType.LICENSE_REVOKED,
    (LicenseStatus.SUSPENDED, LicenseStatus.REVOKED): EventType.LICENSE_REVOKED,
}
EXPIRY_NOTICE_DAYS = (7, 1)  # license.expiring is sent this many days before the end
EXPIRED_LOOKBACK = timedelta(days=7)  # license.expired for licences that ended this recently


def emit_license_event(event_type: EventType, license: License) -> None:
    emit_event(event_type, {"license": _represented(license)})


def emit_license_expiry_events(now: datetime | None = None) -> int:
    """license.expiring (the 7-day and the 1-day notice) and license.expired, each once per
    licence and end date; run daily by the worker (tenants.tasks). Returns the events written."""
    now = now or clock.now()
    live = License.objects.select_related("product", "plan").exclude(status=LicenseStatus.REVOKED)
    written = 0
    for license in live.filter(expires_at__gt=now, expires_at__lte=now + timedelta(days=7)):
        days = min(d for d in EXPIRY_NOTICE_DAYS if license.expires_at <= now + timedelta(days=d))
        written += _notice(EventType.LICENSE_EXPIRING, license, f"{days}", days_before=days)
    for license in live.filter(expires_at__gt=now - EXPIRED_LOOKBACK, expires_at__lte=now):
        written += _notice(EventType.LICENSE_EXPIRED, license, "ended")
    return written


def _notice(event_type: EventType, license: License, occasion: str, **extra: Any) -> bool:
    """One event per licence, end date and occasion, however often the job runs."""
    key = f"{event_type}:{occasion}:{license.pk}:{license.expires_at.timestamp():.0f}"
    with transaction.atomic():
        data = {"license": _represented(license), **extra}
        return emit_event(event_type, data, dedupe_key=key) is not None


def _represented(license: License) -> dict:
    """The licence as the API shows it."""
    from licensing.api.serializers import LicenseSerializer

    return LicenseSerializer().to_representation(license)


# --- Token-free validation


@dataclass(frozen=True)
class ValidationResult:
    """What a client application learns from a licence check (validation, activation,
    heartbeat): the code, the licence and, when one was activated or beat, its machine with its
    plan's heartbeat `rules`. The licence carries `activations_used`, its machines that take a
    slot; it is None for NOT_FOUND, and when the answer is the machine's alone (an activation or a
    heartbeat that read no more than the machine needs)."""

    code: ValidationCode
    license: License | None
    machine: Machine | LiveMachine | None = None
    created: bool = False
    rules: Plan | HeartbeatRules | None = None

    @property
    def valid(self) -> bool:
        return self.code == ValidationCode.VALID

    @property
    def detail(self) -> str:
        return self.code.label


def _validation_code(license: License | None, product_code: str | None, now) -> ValidationCode:
    if license is None:
        return ValidationCode.NOT_FOUND
    return _license_code(
        license.status,
        license.starts_at,
        license.expires_at,
        license.product.code,
        product_code,
        now,
    )


def _license_code(
    status: str, starts_at: datetime, expires_at: datetime | None, product: str, wanted, now
) -> ValidationCode:
    """The code of an existing licence, from its own columns (the client asked for `wanted`)."""
    if status == LicenseStatus.REVOKED:
        return ValidationCode.REVOKED
    if status == LicenseStatus.SUSPENDED:
        return ValidationCode.SUSPENDED
    if starts_at > now:
        return ValidationCode.NOT_STARTED
    if expires_at is not None and expires_at <= now:  # License.is_expired_at
        return ValidationCode.EXPIRED
    if wanted is not None and wanted != product:
        return ValidationCode.PRODUCT_MISMATCH
    return ValidationCode.VALID


def _machine_code(machine_id: int | None, dies_at: datetime | None, now) -> ValidationCode:
    """The fingerprint's codes, checked after the licence's own."""
    if machine_id is None:
        return ValidationCode.FINGERPRINT_NOT_ACTIVATED
    if dies_at is not None and dies_at <= now:
        return ValidationCode.HEARTBEAT_DEAD
    return ValidationCode.VALID


@lru_cache(maxsize=4096)  # pure; a client application's address comes back all day
def _storable_address(address: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(address)) if address else None
    except ValueError:
        return None


def _lookup_key(key: str) -> str:
    # A malformed key looks up a key that cannot exist, so it costs what an unknown one costs.
    return normalise_license_key(key) or UNMATCHABLE_KEY


def unexpired(now: datetime) -> Q:
    """Licences not expired at `now` (perpetual or expiring later), whatever their status."""
    return Q(expires_at__isnull=True) | Q(expires_at__gt=now)


def alive(now: datetime, prefix: str = "") -> Q:
    """Machines that take an activation slot at `now`: not deactivated, not past their death."""
    return Q(**{f"{prefix}deactivated_at__isnull": True}) & (
        Q(**{f"{prefix}dies_at__isnull": True}) | Q(**{f"{prefix}dies_at__gt": now})
    )


def _activations_used(now: datetime) -> Coalesce:
    """The licence's active machines, as a subquery of the licence's own SELECT."""
    counted = (
        Machine.objects.filter(alive(now), license=OuterRef("pk"))
        .order_by()
        .values("license")
        .annotate(used=Count("pk"))
        .values("used")
    )
    return Coalesce(Subquery(counted), Value(0))


def _license_by_key(lookup: str, now: datetime, fingerprint: str | None = None) -> License | None:
    """One SELECT: the licence with its product, plan, `activations_used` and, for a fingerprint,
    the id and death of its undeactivated machine (`fingerprint_machine`, `fingerprint_dies_at`)."""
    licenses = (
        License.objects.select_related("product", "plan")
        .filter(key=lookup)
        .annotate(activations_used=_activations_used(now))
    )
    if fingerprint is not None:
        machine = Machine.objects.filter(
            license=OuterRef("pk"), fingerprint=fingerprint, deactivated_at__isnull=True
        )
        licenses = licenses.annotate(
            fingerprint_machine=Subquery(machine.values("pk")[:1]),
            fingerprint_dies_at=Subquery(machine.values("dies_at")[:1]),
        )
    found = list(licenses[:1])
    return found[0] if found else None


def license_as_answered(license: License) -> License:
    """`license` as a licence check answers it (with `activations_used`), for answers built from
    a licence at hand, such as a licence file downloaded in the admin."""
    if hasattr(license, "activations_used"):
        return license
    return _license_by_key(license.key, clock.now())


def validate_license_key(
    key: str,
    *,
    product_code: str | None = None,
    fingerprint: str | None = None,
    client_address: str | None = None,
) -> ValidationResult:
    """Check a key as a client application presents it, and record the check.

    One query whatever the input: an indexed lookup of the licence, its activation count and the
    fingerprint's machine in one statement (a malformed key looks up a key that cannot exist, so
    it costs what an unknown one costs). The record is buffered (tenants.record_buffer) and
    written with others by the drain job.
    """
    now = clock.now()
    license = _license_by_key(_lookup_key(key), now, fingerprint)
    code = _validation_code(license, product_code, now)
    if code == ValidationCode.VALID and fingerprint is not None:
        code = _machine_code(license.fingerprint_machine, license.fingerprint_dies_at, now)
    _record_validation(license.pk if license else None, code, client_address, now)
    return ValidationResult(code=code, license=license)


def _record_validation(license_id: int | None, code: ValidationCode, client_address, now) -> None:
    buffer_record(
        LicenseValidation,
        license_id=license_id,
        code=code,
        client_address=_storable_address(client_address),
        created_at=now,
    )


class CheckedLicense(NamedTuple):
    """A licence as POST /v1/licenses/validate reads it: one row of `_checked_license_sql`, the
    columns that decide its code and those its answer shows (nothing about who holds it)."""

    id: int
    status: str
    starts_at: datetime
    expires_at: datetime | None
    product: str
    plan: str
    entitlements: str  # the plan's jsonb, as the database sends it (text)
    max_activations: int | None
    activations_used: int
    fingerprint_machine: int | None
    fingerprint_dies_at: datetime | None


def _quoted_tables() -> tuple[str, str, str, str]:
    """The quoted tables of the statements written once per process: licence, product, plan,
    machine."""
    quote = connection.ops.quote_name
    return tuple(quote(model._meta.db_table) for model in (License, Product, Plan, Machine))


def _active_machines_sql(machine: str) -> str:
    """The count of the licence `l`'s machines that take a slot (`alive`); parameter: now."""
    return (
        f"(SELECT COUNT(*) FROM {machine} u WHERE u.license_id = l.id "  # noqa: S608 (quoted name)
        "AND u.deactivated_at IS NULL AND (u.dies_at IS NULL OR u.dies_at > %s))"
    )


@lru_cache(maxsize=2)
def _checked_license_sql(with_fingerprint: bool) -> str:
    """The validation's one SELECT, written once per process: the ORM's version spent more time
    compiling itself than PostgreSQL spends running it (docs/performance.md). Parameters: now,
    then the fingerprint when there is one, then the key."""
    license, product, plan, machine = _quoted_tables()
    machine_columns, machine_join = "NULL, NULL", ""
    if with_fingerprint:
        machine_columns = "f.id, f.dies_at"
        machine_join = (
            f"LEFT JOIN LATERAL (SELECT id, dies_at FROM {machine} "  # noqa: S608 (quoted names)
            "WHERE license_id = l.id AND fingerprint = %s AND deactivated_at IS NULL LIMIT 1) f "
            "ON TRUE "
        )
    return (
        "SELECT l.id, l.status, l.starts_at, l.expires_at, p.code, pl.code, pl.entitlements, "  # noqa: S608 (quoted names)
        f"pl.max_activations, {_active_machines_sql(machine)}, {machine_columns} "
        f"FROM {license} l JOIN {product} p ON p.id = l.product_id "
        f"JOIN {plan} pl ON pl.id = l.plan_id {machine_join}WHERE l.key = %s LIMIT 1"
    )


def check_license_key(
    key: str,
    *,
    product_code: str | None = None,
    fingerprint: str | None = None,
    client_address: str | None = None,
) -> tuple[ValidationCode, CheckedLicense | None]:
    """`validate_license_key`'s code and record, the licence read as a `CheckedLicense` (one
    statement written once per process, no ORM) instead of a model: `read_license_key` then
    `record_check`, which POST /v1/licenses/validate calls apart (licensing.api.hot_path)."""
    checked = read_license_key(key, product_code=product_code, fingerprint=fingerprint)
    record_check(checked, client_address)
    return checked.code, checked.license


class KeyCheck(NamedTuple):
    """A licence key's check, before its record: the code, the licence (if any), when."""

    code: ValidationCode
    license: CheckedLicense | None
    at: datetime


def read_license_key(
    key: str, *, product_code: str | None = None, fingerprint: str | None = None
) -> KeyCheck:
    """`check_license_key` without the record (`record_check` makes it)."""
    now = clock.now()
    lookup = _lookup_key(key)
    params = [now, lookup] if fingerprint is None else [now, fingerprint, lookup]
    with prepared_cursor(router.db_for_read(License) or "default") as cursor:
        cursor.execute(_checked_license_sql(fingerprint is not None), params)
        row = cursor.fetchone()
    license = CheckedLicense(*row) if row else None
    if license is None:
        code = ValidationCode.NOT_FOUND
    else:
        code = _license_code(
            license.status,
            license.starts_at,
            license.expires_at,
            license.product,
            product_code,
            now,
        )
        if code == ValidationCode.VALID and fingerprint is not None:
            code = _machine_code(license.fingerprint_machine, license.fingerprint_dies_at, now)
    return KeyCheck(code, license, now)


def record_check(checked: KeyCheck, client_address: str | None) -> None:
    """The validation record of a key's check (buffered)."""
    license_id = checked.license.id if checked.license else None
    _record_validation(license_id, checked.code, client_address, checked.at)


# --- Machines: activation, heartbeats, deactivation


class ActivationLimitReached(Exception):
    """The plan's `max_activations` machines are active already."""


class DeactivationLimitReached(Exception):
    """The licence's client used up its churn budget; a deactivation is possible again in
    `retry_after` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"Deactivation limit reached; retry after {retry_after}s")
        self.retry_after = retry_after


class MachineNotFound(Exception):
    """No licence has this key, or the fingerprint is not activated on it."""


def dies_at_for(plan: Plan | HeartbeatRules, last_heartbeat_at: datetime) -> datetime | None:
    """When a machine that beat at `last_heartbeat_at` dies: interval plus grace later."""
    if plan.heartbeat_seconds is None:
        return None
    return last_heartbeat_at + timedelta(
        seconds=plan.heartbeat_seconds + plan.heartbeat_grace_seconds
    )


def heartbeat_deadline(
    machine: Machine | LiveMachine, plan: Plan | HeartbeatRules
) -> datetime | None:
    """When the machine's next heartbeat is due (null: the plan needs none)."""
    if plan.heartbeat_seconds is None:
        return None
    return machine.last_heartbeat_at + timedelta(seconds=plan.heartbeat_seconds)


def reschedule_machine_deaths(plan: Plan) -> None:
    """A plan's heartbeat rules changed: every undeactivated machine of its licences dies by the
    new ones, counted from its last heartbeat (one UPDATE)."""
    machines = Machine.objects.filter(license__plan=plan, deactivated_at__isnull=True)
    if plan.heartbeat_seconds is None:
        machines.update(dies_at=None)
    else:
        span = timedelta(seconds=plan.heartbeat_seconds + plan.heartbeat_grace_seconds)
        machines.update(dies_at=F("last_heartbeat_at") + span)


def _locked_license(**lookup) -> License | None:
    """The licence row locked until the transaction ends: activations and deactivations of one
    licence run one after the other, so its limits hold exactly under concurrency."""
    found = list(
        License.objects.select_for_update(of=("self",))
        .select_related("product", "plan")
        .filter(**lookup)[:1]
    )
    return found[0] if found else None


def count_active_machines(license: License, now: datetime) -> int:
    return Machine.objects.filter(alive(now), license=license).count()


def _has_free_slot(max_activations: int | None, used: int) -> bool:
    return max_activations is None or used < max_activations


def _refused(license: License, reason: str, fingerprint: str, request) -> None:
    # Sent after the transaction: the security event must not roll back with it.
    signals.activation_refused.send(
        Machine, license=license, reason=reason, fingerprint=fingerprint, request=request
    )


def _wake(machine: Machine, plan: Plan | HeartbeatRules, now: datetime) -> None:
    """Record a heartbeat (or a revival) of a machine known to be undeactivated."""
    machine.last_heartbeat_at, machine.dies_at, machine.dead_at = now, dies_at_for(plan, now), None
    Machine.objects.filter(pk=machine.pk).update(
        last_heartbeat_at=machine.last_heartbeat_at, dies_at=machine.dies_at, dead_at=None
    )


class _ActivationRow(NamedTuple):
    """One row of `_activation_sql`: the licence's code columns, its plan's limit and rules, its
    machines that take a slot, and the fingerprint's undeactivated machine (its columns or NULLs)."""

    id: int
    status: str
    starts_at: datetime
    expires_at: datetime | None
    product: str
    max_activations: int | None
    heartbeat_seconds: int | None
    heartbeat_grace_seconds: int
    revive_seconds: int
    used: int
    machine_id: int | None
    name: str | None
    platform: str | None
    hostname: str | None
    metadata: str | None  # jsonb, as the database sends it (text)
    activated_at: datetime | None
    last_heartbeat_at: datetime | None
    dies_at: datetime | None


def _row_code(row, missing: ValidationCode, now: datetime) -> ValidationCode:
    """The licence's code from a row of `_activation_sql` or `_beating_machine_sql`; `missing`
    when there is no row."""
    if row is None:
        return missing
    return _license_code(row.status, row.starts_at, row.expires_at, row.product, None, now)


def _rules(row) -> HeartbeatRules:
    return HeartbeatRules(row.heartbeat_seconds, row.heartbeat_grace_seconds, row.revive_seconds)


@lru_cache(maxsize=1)
def _lock_sql() -> str:
    """Lock a licence by its key until the transaction ends: activations and deactivations of one
    licence run one after the other, so its limits hold exactly under concurrency."""
    license = connection.ops.quote_name(License._meta.db_table)
    return f"SELECT id FROM {license} WHERE key = %s FOR UPDATE"  # noqa: S608 (quoted name)


@lru_cache(maxsize=1)
def _activation_sql() -> str:
    """An activation's SELECT, written once per process: the columns of `_ActivationRow`. It runs
    after `_lock_sql` as a statement of its own, so that it counts what was committed while it
    waited for the lock (a row lock taken by the same statement would leave the count at the
    statement's snapshot, before the wait). Parameters: now, the fingerprint, the key."""
    license, product, plan, machine = _quoted_tables()
    return (
        "SELECT l.id, l.status, l.starts_at, l.expires_at, p.code, pl.max_activations, "  # noqa: S608 (quoted names)
        "pl.heartbeat_seconds, pl.heartbeat_grace_seconds, pl.revive_seconds, "
        f"{_active_machines_sql(machine)}, "
        "f.id, f.name, f.platform, f.hostname, f.metadata, f.activated_at, f.last_heartbeat_at, "
        f"f.dies_at FROM {license} l JOIN {product} p ON p.id = l.product_id "
        f"JOIN {plan} pl ON pl.id = l.plan_id LEFT JOIN LATERAL (SELECT * FROM {machine} "
        "WHERE license_id = l.id AND fingerprint = %s AND deactivated_at IS NULL "
        "ORDER BY id DESC LIMIT 1) f ON TRUE WHERE l.key = %s LIMIT 1"
    )


def activate_machine(
    key: str,
    fingerprint: str,
    *,
    name: str = "",
    platform: str = "",
    hostname: str = "",
    metadata: dict | None = None,
    request=None,
) -> ValidationResult:
    """Activate a licence on a machine, within the plan's `max_activations`.

    Answers the licence's code when it is not VALID. An already active fingerprint is answered as
    it is (`created` False, a `LiveMachine`); a dead one is revived if a slot is free. Raises
    ActivationLimitReached when every slot is taken. Prepared statements: the licence locked, its
    row with the counts and the fingerprint's machine, then the INSERT of a new machine (the
    revival's SELECT and UPDATE).
    """
    metadata = clean_metadata(metadata if metadata is not None else {})
    now = clock.now()
    lookup = _lookup_key(key)
    with transaction.atomic():
        with prepared_cursor(router.db_for_write(License) or "default") as cursor:
            cursor.execute(_lock_sql(), [lookup])
            cursor.execute(_activation_sql(), [now, fingerprint, lookup])
            row = cursor.fetchone()
        found = _ActivationRow(*row) if row else None
        code = _row_code(found, ValidationCode.NOT_FOUND, now)
        if code == ValidationCode.VALID:
            rules = _rules(found)
            if _machine_code(found.machine_id, found.dies_at, now) == ValidationCode.VALID:
                live = LiveMachine(
                    id=found.machine_id,
                    fingerprint=fingerprint,
                    name=found.name,
                    platform=found.platform,
                    hostname=found.hostname,
                    metadata=json.loads(found.metadata),
                    activated_at=found.activated_at,
                    last_heartbeat_at=found.last_heartbeat_at,
                    dies_at=found.dies_at,
                )
                return ValidationResult(code, None, live, rules=rules)
            if _has_free_slot(found.max_activations, found.used):
                if found.machine_id is not None:  # dead: activating it again revives it
                    machine = Machine.objects.get(pk=found.machine_id)
                    _wake(machine, rules, now)
                else:
                    machine = Machine.objects.create(
                        license_id=found.id,
                        fingerprint=fingerprint,
                        name=name,
                        platform=platform,
                        hostname=hostname,
                        metadata=metadata,
                        activated_at=now,
                        last_heartbeat_at=now,
                        dies_at=dies_at_for(rules, now),
                    )
                emit_machine_event(EventType.MACHINE_ACTIVATED, machine)
                return ValidationResult(code, None, machine, created=True, rules=rules)
    if code != ValidationCode.VALID:
        return ValidationResult(code, _license_by_key(lookup, now) if found else None)
    license = License.objects.select_related("plan").get(pk=found.id)
    license.activations_used = found.used
    _refused(license, "activation_limit", fingerprint, request)
    raise ActivationLimitReached


class HeartbeatRules(NamedTuple):
    """A plan's heartbeat columns (`dies_at_for` and the machine's answer read nothing else)."""

    heartbeat_seconds: int | None
    heartbeat_grace_seconds: int
    revive_seconds: int


class LiveMachine(NamedTuple):
    """An active machine as its answer shows it (licensing.api.serializers.activated_machine_answer),
    read without the ORM: the machine of a heartbeat just written, or of an activation that found
    it active already."""

    id: int
    fingerprint: str
    name: str
    platform: str
    hostname: str
    metadata: dict
    activated_at: datetime
    last_heartbeat_at: datetime
    dies_at: datetime | None
    status: str = MachineStatus.ACTIVE


class _BeatingRow(NamedTuple):
    """One row of `_beating_machine_sql`: the machine, its licence's code columns, the rules."""

    id: int
    license_id: int
    fingerprint: str
    name: str
    platform: str
    hostname: str
    metadata: str  # jsonb, as the database sends it (text)
    activated_at: datetime
    dies_at: datetime | None
    status: str
    starts_at: datetime
    expires_at: datetime | None
    product: str
    heartbeat_seconds: int | None
    heartbeat_grace_seconds: int
    revive_seconds: int


@lru_cache(maxsize=1)
def _beating_machine_sql() -> str:
    """A heartbeat's first SELECT, written once per process (as `_checked_license_sql`): the key's
    undeactivated machine with this fingerprint, its licence's code columns and its plan's rules.
    Parameters: the key, the fingerprint."""
    license, product, plan, machine = _quoted_tables()
    return (
        "SELECT m.id, m.license_id, m.fingerprint, m.name, m.platform, m.hostname, m.metadata, "  # noqa: S608 (quoted names)
        "m.activated_at, m.dies_at, l.status, l.starts_at, l.expires_at, p.code, "
        "pl.heartbeat_seconds, pl.heartbeat_grace_seconds, pl.revive_seconds "
        f"FROM {machine} m JOIN {license} l ON l.id = m.license_id "
        f"JOIN {product} p ON p.id = l.product_id JOIN {plan} pl ON pl.id = l.plan_id "
        "WHERE l.key = %s AND m.fingerprint = %s AND m.deactivated_at IS NULL LIMIT 1"
    )


@lru_cache(maxsize=1)
def _beat_sql() -> str:
    """The heartbeat of a machine still alive. Parameters: now, its new death, its id, now."""
    machine = connection.ops.quote_name(Machine._meta.db_table)
    return (
        f"UPDATE {machine} SET last_heartbeat_at = %s, dies_at = %s, dead_at = NULL "  # noqa: S608 (quoted name)
        "WHERE id = %s AND deactivated_at IS NULL AND (dies_at IS NULL OR dies_at > %s)"
    )


def heartbeat(key: str, fingerprint: str, *, request=None) -> ValidationResult:
    """A machine's heartbeat: it stays active until its next deadline plus the grace period.

    Answers the licence's code when it is not VALID, FINGERPRINT_NOT_ACTIVATED, or HEARTBEAT_DEAD
    when the machine died longer than the plan's `revive_seconds` ago (it must be activated again);
    a machine dead for less is revived if a slot is free, else ActivationLimitReached. A live
    machine's heartbeat is two prepared statements, the machine with its licence and the UPDATE,
    and answers a `LiveMachine`; a refusal reads the licence once more for its answer.
    """
    now = clock.now()
    lookup = _lookup_key(key)
    with prepared_cursor(router.db_for_write(Machine) or "default") as cursor:
        cursor.execute(_beating_machine_sql(), [lookup, fingerprint])
        row = cursor.fetchone()
        found = _BeatingRow(*row) if row else None
        code = _row_code(found, ValidationCode.FINGERPRINT_NOT_ACTIVATED, now)
        if (
            code == ValidationCode.VALID
            and _machine_code(found.id, found.dies_at, now) == ValidationCode.VALID
        ):
            rules = _rules(found)
            dies_at = dies_at_for(rules, now)
            cursor.execute(_beat_sql(), [now, dies_at, found.id, now])
            if cursor.rowcount == 1:
                live = LiveMachine(
                    id=found.id,
                    fingerprint=found.fingerprint,
                    name=found.name,
                    platform=found.platform,
                    hostname=found.hostname,
                    metadata=json.loads(found.metadata),
                    activated_at=found.activated_at,
                    last_heartbeat_at=now,
                    dies_at=dies_at,
                )
                return ValidationResult(code, None, live, rules=rules)
    if code != ValidationCode.VALID:
        license = _license_by_key(lookup, now)
        if found is None:
            code = _validation_code(license, None, now)
            if code == ValidationCode.VALID:
                code = ValidationCode.FINGERPRINT_NOT_ACTIVATED
        return ValidationResult(code, license)
    return _revive(found.id, found.license_id, now, request)


def _revive(machine_id: int, license_id: int, now: datetime, request) -> ValidationResult:
    """The heartbeat of a machine that is dead (or was deactivated or died meanwhile)."""
    with transaction.atomic():
        license = _locked_license(pk=license_id)
        machine = Machine.objects.filter(pk=machine_id, deactivated_at__isnull=True).first()
        used = count_active_machines(license, now)
        license.activations_used = used
        if machine is None:
            return ValidationResult(ValidationCode.FINGERPRINT_NOT_ACTIVATED, license)
        machine.license = license
        status = machine.status_at(now)
        if status == MachineStatus.DEAD:
            revivable_until = machine.dies_at + timedelta(seconds=license.plan.revive_seconds)
            if now > revivable_until:
                return ValidationResult(ValidationCode.HEARTBEAT_DEAD, license)
            if _has_free_slot(license.plan.max_activations, used):
                license.activations_used += 1
                status = MachineStatus.ACTIVE
        if status == MachineStatus.ACTIVE:
            _wake(machine, license.plan, now)
            return ValidationResult(ValidationCode.VALID, license, machine, rules=license.plan)
    _refused(license, "activation_limit", machine.fingerprint, request)
    raise ActivationLimitReached


def _deactivate(machine: Machine, reason: str, now: datetime) -> bool:
    done = bool(
        Machine.objects.filter(pk=machine.pk, deactivated_at__isnull=True).update(
            deactivated_at=now, deactivation_reason=reason
        )
    )
    if done:  # licence files bound to the machine are superseded (docs/offline.md)
        License.objects.filter(pk=machine.license_id).update(epoch=F("epoch") + 1)
        machine.deactivated_at, machine.deactivation_reason = now, reason
        emit_machine_event(EventType.MACHINE_DEACTIVATED, machine)
    return done


def deactivate_by_client(key: str, fingerprint: str, *, request=None) -> None:
    """A client application frees its machine's slot, within the plan's churn budget
    (`max_deactivations` per DEACTIVATION_WINDOW_DAYS). Any licence with that key may: freeing a
    slot needs no valid licence. Raises MachineNotFound or DeactivationLimitReached."""
    now = clock.now()
    with transaction.atomic():
        license = _locked_license(key=_lookup_key(key))
        machine = None
        if license is not None:
            machine = Machine.objects.filter(
                license=license, fingerprint=fingerprint, deactivated_at__isnull=True
            ).first()
        if machine is None:
            raise MachineNotFound
        retry_after = _churn_wait(license, now)
        if retry_after is None:
            _deactivate(machine, DeactivationReason.CLIENT, now)
            return
    _refused(license, "deactivation_limit", fingerprint, request)
    raise DeactivationLimitReached(retry_after)


def _churn_wait(license: License, now: datetime) -> int | None:
    """Seconds until the licence's client may deactivate again; None if it may now."""
    budget = license.plan.max_deactivations
    if budget is None:
        return None
    window = timedelta(days=DEACTIVATION_WINDOW_DAYS)
    recent = list(
        Machine.objects.filter(
            license=license,
            deactivation_reason=DeactivationReason.CLIENT,
            deactivated_at__gt=now - window,
        )
        .order_by("-deactivated_at")
        .values_list("deactivated_at", flat=True)[:budget]
    )
    if len(recent) < budget:
        return None
    # The budget frees up when the oldest of the last `budget` deactivations leaves the window.
    return max(1, int((recent[-1] + window - now).total_seconds()) + 1)


def deactivate_machine(machine: Machine) -> bool:
    """An administrator or integration deactivates a machine (not counted against the churn
    budget); False if it was deactivated already."""
    return _deactivate(machine, DeactivationReason.MANAGED, clock.now())


def cull_dead_machines(now: datetime | None = None) -> int:
    """Mark the machines that died since the last run (`dead_at`: the moment they died); how many.
    Idempotent. Death itself is read from `dies_at`, so limits and validation never wait for it."""
    now = now or clock.now()
    with transaction.atomic():
        dying = list(
            Machine.objects.select_for_update(of=("self",), skip_locked=True)
            .select_related("license__plan")
            .filter(deactivated_at__isnull=True, dead_at__isnull=True, dies_at__lte=now)
        )
        Machine.objects.filter(pk__in=[machine.pk for machine in dying]).update(
            dead_at=F("dies_at")
        )
        for machine in dying:
            machine.dead_at = machine.dies_at
            emit_machine_event(EventType.MACHINE_DEAD, machine)
    return len(dying)


def emit_machine_event(event_type: EventType, machine: Machine) -> None:
    """machine.activated, .deactivated or .dead, in the transaction of the change."""
    from licensing.api.serializers import MachineSerializer

    emit_event(event_type, lambda: {"machine": MachineSerializer().to_representation(machine)})
