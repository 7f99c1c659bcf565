"""Rows of the licensing domain, written straight through the services into one tenant's schema."""

from __future__ import annotations

import itertools
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone
from django_tenants.utils import schema_context

from licensing import clock, services
from licensing.models import Customer, Group, License, LicenseStatus, Machine, Plan, Product

User = get_user_model()
_serial = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_serial)}"


def make_product(**fields) -> Product:
    fields.setdefault("code", unique("prod"))
    fields.setdefault("name", "Product " + fields["code"])
    return services.create_product(**fields)


def make_plan(product: Product | None = None, **fields) -> Plan:
    fields.setdefault("code", unique("plan"))
    fields.setdefault("name", "Plan " + fields["code"])
    fields.setdefault("duration_days", 30)
    fields.setdefault("entitlements", ["basic"])
    return services.create_plan(product=product or make_product(), **fields)


def make_customer(**fields) -> Customer:
    fields.setdefault("name", unique("Customer"))
    fields.setdefault("email", "buyer@example.com")
    return services.create_customer(**fields)


def make_user(**fields):
    fields.setdefault("username", unique("user"))
    return services.create_user(**fields)


def make_group(**fields) -> Group:
    fields.setdefault("name", unique("group"))
    return services.create_group(**fields)


def make_license(plan: Plan | None = None, **fields) -> License:
    plan = plan or make_plan()
    return services.issue_license(product=plan.product, plan=plan, **fields)


def make_machine(license: License | None = None, **fields) -> Machine:
    """An active machine of `license` (a new licence by default), as an activation leaves it."""
    license = license or make_license()
    now = clock.now()
    fields.setdefault("fingerprint", unique("fingerprint"))
    return Machine.objects.create(
        license=license,
        activated_at=now,
        last_heartbeat_at=now,
        dies_at=services.dies_at_for(license.plan, now),
        **fields,
    )


def set_license_dates(license: License, *, starts_in_days: float, expires_in_days: float | None):
    """Place a licence in time directly (the service refuses nothing here, but this is shorter)."""
    now = timezone.now()
    License.objects.filter(pk=license.pk).update(
        starts_at=now + timedelta(days=starts_in_days),
        expires_at=None if expires_in_days is None else now + timedelta(days=expires_in_days),
    )


def make(kind: str):
    """One object of a resource kind (the path segment of its endpoint), with its dependencies."""
    if kind == "users":
        return make_user()
    if kind == "groups":
        return make_group()
    if kind == "products":
        return make_product()
    if kind == "plans":
        return make_plan()
    if kind == "customers":
        return make_customer()
    if kind == "licenses":
        return make_license()
    if kind == "machines":
        return make_machine()
    if kind == "webhooks":
        return make_webhook_endpoint()
    if kind == "webhook-deliveries":
        return make_webhook_delivery()
    raise ValueError(kind)


# A public address written as a literal: saved without a DNS lookup, never sent to by these tests
# (no worker runs in them).
PUBLIC_WEBHOOK_URL = "https://93.184.215.14/hooks/licensing"


def make_webhook_endpoint(**fields):
    from webhooks.services import create_endpoint

    fields.setdefault("url", PUBLIC_WEBHOOK_URL)
    return create_endpoint(**fields)[0]


def make_webhook_delivery():
    from webhooks.models import WebhookDelivery
    from webhooks.services import emit_event

    endpoint = make_webhook_endpoint()
    event = emit_event("license.created", {"license": {"id": 1}})
    return WebhookDelivery.objects.get(event=event, endpoint=endpoint)


def only_in(schema: str, kind: str, absent_from: str):
    """An object of `kind` in `schema` whose id does not exist in `absent_from` (ids are per
    schema, so the same number can exist in both; a 404 test needs one that cannot)."""
    for _ in range(200):
        with schema_context(schema):
            obj = make(kind)
        with schema_context(absent_from):
            if not type(obj).objects.filter(pk=obj.pk).exists():
                return obj
    raise AssertionError(f"could not find a {kind} id free in {absent_from}")


__all__ = ["LicenseStatus", "make", "only_in"]


# --- Requests

_addresses = itertools.count(1)


def fresh_address() -> str:
    """A documentation address (TEST-NET-3) of its own, so per-address throttles of other tests
    never count against this one."""
    n = next(_addresses)
    return f"203.0.113.{n % 250 + 1}" if n < 250 else f"2001:db8:{n}::1"


def post(client, path, body):
    return client.post(path, body, content_type="application/json")


def patch(client, path, body):
    return client.patch(path, body, content_type="application/json")
