"""Provisioning tenants and changing their platform licences: the rules, written once."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django_tenants.utils import (
    get_public_schema_name,
    remove_www,
    schema_exists,
    tenant_context,
)

from tenants.models import Domain, RequestPeriod, Tenant
from tenants.schema_template import create_tenant_schema, template_schema
from tenants.signing_keys import ensure_signing_key

logger = logging.getLogger(__name__)

SCHEMA_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
DOMAIN_RE = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
RESERVED_SCHEMAS = {"public", "information_schema"}
MAX_REQUEST_LIMIT = 2**31 - 1  # Tenant.request_limit is a PostgreSQL integer

# Sentinel meaning "leave this licence field as it is".
UNCHANGED = object()


@dataclass(frozen=True)
class AdminAccount:
    username: str
    email: str
    password: str | None  # None while not read yet: validate_admin then skips it


def parse_expiry(value: str | None) -> datetime | None:
    """`never`/empty → None; a date → the end of that day (UTC); an ISO datetime as given."""
    if value is None or value.strip().lower() in {"", "never", "none"}:
        return None
    value = value.strip()
    invalid = ValidationError(
        f"Invalid expiry {value[:40]!r}: use YYYY-MM-DD, an ISO 8601 date-time, or 'never'."
    )
    try:
        if len(value) == 10:
            day = parse_date(value)
            if day is None:
                raise invalid
            return end_of_day(day)
        moment = parse_datetime(value)
        if moment is None:
            raise invalid
        # In UTC, as stored: a date-time that UTC puts past year 9999 cannot be read back.
        return (moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise invalid from None


def end_of_day(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


def validate_licence(request_limit: int, request_period: str) -> None:
    if not 1 <= request_limit <= MAX_REQUEST_LIMIT:
        raise ValidationError(
            f"The request limit must be a whole number from 1 to {MAX_REQUEST_LIMIT}."
        )
    if request_period not in RequestPeriod.values:
        raise ValidationError(
            f"Invalid request period {request_period!r}: choose one of {', '.join(RequestPeriod.values)}."
        )


def validate_new_tenant(schema_name: str, domain: str) -> None:
    """Refuse a schema name or a domain a new tenant cannot take; both are reported together."""
    problems = all_problems(
        lambda: validate_new_schema(schema_name), lambda: validate_new_domain(domain)
    )
    if problems:
        raise ValidationError(problems)


def validate_new_schema(schema_name: str) -> None:
    if not SCHEMA_NAME_RE.match(schema_name) or schema_name.startswith("pg_"):
        raise ValidationError(
            f"Invalid tenant {schema_name!r}: use lowercase letters, digits and underscores, "
            "starting with a letter (at most 63 characters)."
        )
    if schema_name in RESERVED_SCHEMAS or schema_name == template_schema():
        raise ValidationError(f"The schema name {schema_name!r} is reserved.")
    if Tenant.objects.filter(schema_name=schema_name).exists() or schema_exists(schema_name):
        raise ValidationError(f"A tenant with schema {schema_name!r} already exists.")


def validate_new_domain(domain: str) -> None:
    check_resolvable_domain(domain)
    if Domain.objects.filter(domain=domain).exists():
        raise ValidationError(f"The domain {domain!r} already belongs to a tenant.")


def all_problems(*checks) -> list[str]:
    """The messages of every check (a callable raising ValidationError) that fails, in order."""
    problems = []
    for check in checks:
        try:
            check()
        except ValidationError as exc:
            problems.extend(exc.messages)
    return problems


def check_resolvable_domain(domain: str) -> None:
    """Refuse a domain that tenant resolution (tenants.middleware, django-tenants) could never
    match to its tenant: it looks up the request's host in lower case, without a `www.` prefix."""
    if domain != domain.lower():
        raise ValidationError(
            f"Invalid domain {domain[:80]!r}: use lower case ({domain.lower()[:80]!r}); "
            "hosts are matched in lower case."
        )
    if remove_www(domain) != domain:
        raise ValidationError(
            f"Invalid domain {domain[:80]!r}: register it without 'www.' ({remove_www(domain)!r}); "
            "requests for www.<domain> are served by <domain>'s tenant."
        )
    if not DOMAIN_RE.match(domain):
        raise ValidationError(f"Invalid domain {domain[:80]!r}.")


def validate_admin(account: AdminAccount) -> None:
    """Refuse a first administrator's username, email or password (not checked while None: not
    read yet); all problems together."""
    problems = all_problems(
        lambda: _validate_admin_username(account.username),
        lambda: _validate_admin_email(account.email),
        lambda: _validate_admin_password(account),
    )
    if problems:
        raise ValidationError(problems)


def _validate_admin_username(username: str) -> None:
    try:
        get_user_model()._meta.get_field("username").run_validators(username)
    except ValidationError as exc:
        raise ValidationError(
            f"Invalid admin username {username!r}: {' '.join(exc.messages)}"
        ) from None
    if not username:
        raise ValidationError("The admin username must not be empty.")


def _validate_admin_password(account: AdminAccount) -> None:
    if account.password is not None:
        user = get_user_model()(username=account.username, email=account.email)
        validate_password(account.password, user)


def _validate_admin_email(email: str) -> None:
    try:
        validate_email(email)
        get_user_model()._meta.get_field("email").run_validators(email)  # its length
    except ValidationError:
        raise ValidationError(f"Invalid admin email {email[:80]!r}.") from None


def validate_tenant_name(name: str) -> None:
    if not name.strip():
        raise ValidationError("The tenant name must not be empty.")
    Tenant._meta.get_field("name").run_validators(name.strip())


def provisioning_problems(
    *,
    schema_name: str,
    name: str,
    domain: str,
    admin: AdminAccount,
    request_limit: int,
    request_period: str,
) -> list[str]:
    """Every reason `provision_tenant` would refuse these inputs, not only the first."""
    return all_problems(
        lambda: validate_new_tenant(schema_name.strip(), domain.strip()),
        lambda: validate_tenant_name(name),
        lambda: validate_admin(admin),
        lambda: validate_licence(request_limit, request_period),
    )


def ensure_public_tenant() -> Tenant:
    """The public tenant (schema `public`) with PUBLIC_DOMAIN; created when missing."""
    public_name = get_public_schema_name()
    tenant = Tenant.objects.filter(schema_name=public_name).first()
    if tenant is None:
        tenant = Tenant(schema_name=public_name, name="Platform")
        tenant.save(verbosity=0)
    Domain.objects.get_or_create(
        domain=settings.PUBLIC_DOMAIN, defaults={"tenant": tenant, "is_primary": True}
    )
    return tenant


def provision_tenant(
    *,
    schema_name: str,
    name: str,
    domain: str,
    admin: AdminAccount,
    request_limit: int = 1000,
    request_period: str = RequestPeriod.MINUTE,
    expires_at: datetime | None = None,
) -> Tenant:
    """Create a tenant's schema, its domain, its first administrator, its platform licence and its
    first signing key.

    Everything is validated first (every problem reported in one ValidationError); if any later
    step fails, the tenant, its schema and its domain are removed again, so a failed provisioning
    leaves nothing behind.
    """
    problems = provisioning_problems(
        schema_name=schema_name,
        name=name,
        domain=domain,
        admin=admin,
        request_limit=request_limit,
        request_period=request_period,
    )
    if admin.password is None:
        problems.append("The admin password is missing.")
    if problems:
        raise ValidationError(problems)
    schema_name, domain = schema_name.strip(), domain.strip()
    ensure_public_tenant()

    tenant = Tenant(
        schema_name=schema_name,
        name=name.strip(),
        request_limit=request_limit,
        request_period=request_period,
        expires_at=expires_at,
    )
    tenant.auto_create_schema = False  # created below, as a copy of the migrated template
    try:
        tenant.save(verbosity=0)
        create_tenant_schema(tenant)
        with transaction.atomic():
            Domain.objects.create(domain=domain, tenant=tenant, is_primary=True)
            ensure_signing_key(tenant)  # signs its validation answers and licence files
            with tenant_context(tenant):
                get_user_model().objects.create_superuser(
                    username=admin.username, email=admin.email, password=admin.password
                )
    except BaseException:
        logger.exception("Provisioning tenant %s failed; removing what was created", schema_name)
        _drop_tenant(tenant)
        raise
    logger.info("Provisioned tenant %s on %s", schema_name, domain)
    return tenant


def _drop_tenant(tenant: Tenant) -> None:
    """Remove a tenant's row, domains and schema (a failed provisioning's, or a deletion's)."""
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        # Fire deferred foreign-key checks now: PostgreSQL refuses to drop tables with them pending.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        if tenant.pk is not None:
            Domain.objects.filter(tenant_id=tenant.pk).delete()
            Tenant.objects.filter(pk=tenant.pk).delete()  # drops the schema too (auto_drop_schema)
        if schema_exists(tenant.schema_name):
            cursor.execute(f'DROP SCHEMA "{tenant.schema_name}" CASCADE')


def set_tenant_licence(
    tenant: Tenant,
    *,
    request_limit: int | None = None,
    request_period: str | None = None,
    expires_at: datetime | None | object = UNCHANGED,
) -> Tenant:
    """Change a tenant's platform licence; only the given parts change, and at once."""
    limit = tenant.request_limit if request_limit is None else request_limit
    period = tenant.request_period if request_period is None else request_period
    validate_licence(limit, period)
    tenant.request_limit, tenant.request_period = limit, period
    if expires_at is not UNCHANGED:
        tenant.expires_at = expires_at
    tenant.save(update_fields=["request_limit", "request_period", "expires_at"])
    logger.info("Licence of tenant %s changed", tenant.schema_name)
    return tenant


# --- Protecting tenants: the public tenant is the platform itself; deleting one drops its data.


def is_public_tenant(tenant: Tenant) -> bool:
    return tenant.schema_name == get_public_schema_name()


def refuse_public_tenant(tenant: Tenant | None, action: str) -> None:
    """PermissionDenied if `tenant` is the public one: it holds the platform itself."""
    if tenant is not None and is_public_tenant(tenant):
        raise PermissionDenied(f"The public tenant and its domains cannot be {action}.")


def rename_tenant(tenant: Tenant, name: str) -> Tenant:
    """Change a tenant's display name; the public tenant keeps its own."""
    refuse_public_tenant(tenant, "renamed")
    name = name.strip()
    if not name:
        raise ValidationError("The tenant name must not be empty.")
    tenant.name = name
    tenant.save(update_fields=["name"])
    return tenant


def save_domain(domain: Domain) -> Domain:
    """Add or change a domain; those of the public tenant (before or after the change) are fixed."""
    stored = Domain.objects.select_related("tenant").filter(pk=domain.pk).first()
    refuse_public_tenant(stored.tenant if stored else None, "renamed")
    refuse_public_tenant(domain.tenant, "renamed")
    domain.domain = domain.domain.strip().lower()
    check_resolvable_domain(domain.domain)
    domain.full_clean()
    domain.save()
    return domain


def delete_domain(domain: Domain) -> None:
    refuse_public_tenant(domain.tenant, "deleted")
    domain.delete()


def tenant_contents(tenant: Tenant) -> list[tuple[str, int]]:
    """What deleting `tenant` destroys: (kind, number of rows) for each table of its schema."""
    own_apps = [app for app in settings.TENANT_APPS if app not in settings.SHARED_APPS]
    models = [get_user_model()] + [
        model
        for model in apps.get_models()
        if model._meta.app_config.name in own_apps and model._meta.managed and not model._meta.proxy
    ]
    with tenant_context(tenant):
        return [(str(model._meta.verbose_name_plural), model.objects.count()) for model in models]


def delete_tenant(tenant: Tenant, *, confirmation: str) -> None:
    """Drop a tenant's schema (all its users, licences, tokens and records) and its domains.

    `confirmation` must be the tenant's schema name, typed by whoever asked for the deletion.
    """
    refuse_public_tenant(tenant, "deleted")
    if confirmation.strip() != tenant.schema_name:
        raise ValidationError(
            f"Type the schema name {tenant.schema_name!r} to confirm the deletion."
        )
    with transaction.atomic():
        _drop_tenant(tenant)
    logger.warning("Deleted tenant %s and its schema", tenant.schema_name)
