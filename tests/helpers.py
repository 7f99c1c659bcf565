"""Helpers the tests share, defined once: the test tenants' hosts, a client speaking to one of
them, the User Token exchange, `/v1/auth/me`, assertions on the contract's error bodies, and the
monitoring tests' client addresses and security-event lookups.

Tests import these from here; conftest.py keeps fixtures only.
"""

import itertools
import random

from django.test import Client
from django_tenants.utils import schema_context

TEST_PASSWORD = "Test-password-2026!"
TENANTS = {"alpha": "alpha.localhost", "beta": "beta.localhost"}

INVALID_TOKEN = {"error": "Invalid token"}
ACCESS_DENIED = {"error": "Access denied"}


class TenantClient(Client):
    """Django's test client, speaking to one tenant's host; `tenant` is the Tenant it targets."""

    def __init__(self, tenant, host, **defaults):
        super().__init__(HTTP_HOST=host, **defaults)
        self.tenant = tenant
        self.host = host

    # Logging in writes a session and reads users: both live in the tenant's schema.
    def login(self, **credentials):
        with schema_context(self.tenant.schema_name):
            return super().login(**credentials)

    def force_login(self, user, backend=None):
        with schema_context(self.tenant.schema_name):
            return super().force_login(user, backend)


def exchange(client, secret: str):
    """POST a User Token's secret to `/v1/auth/token`; the response (access and refresh tokens)."""
    return client.post("/v1/auth/token", {"user_token": secret}, content_type="application/json")


def me(client, access: str | None = None, **extra):
    """GET `/v1/auth/me`, with `Authorization: Bearer <access>` when an access token is given."""
    if access is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {access}"
    return client.get("/v1/auth/me", **extra)


def assert_error(response, status: int, body: dict):
    """The contract's error shape: that status, a JSON body, and exactly that body."""
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert response.json() == body


def assert_invalid_token(response):
    """A 401 with the contract's "Invalid token" body and a Bearer challenge."""
    assert_error(response, 401, INVALID_TOKEN)
    assert response["WWW-Authenticate"].startswith("Bearer")


def assert_invalid(response, *fields):
    """A 400 with the contract's body, naming at least `fields` in its details; the details."""
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == "Invalid request"
    assert isinstance(body["details"], dict) and body["details"], body
    assert set(fields) <= set(body["details"]), body
    return body["details"]


_addresses = itertools.count(random.randrange(0, 60_000))


def fresh_address() -> str:
    """A client address (198.18.0.0/15, the benchmarking range) no other test of the run uses:
    alert and abuse counters are kept per address in a cache that may outlive the test."""
    n = next(_addresses) % 65_000
    return f"198.18.{n // 250}.{n % 250 + 1}"


def events(kind=None, schema="alpha", **filters):
    """The security events of a tenant, oldest first."""
    from monitoring.models import SecurityEvent

    with schema_context(schema):
        queryset = SecurityEvent.objects.select_related("user_token", "actor").order_by("id")
        if kind is not None:
            queryset = queryset.filter(kind=kind)
        return list(queryset.filter(**filters))


def one_event(kind, schema="alpha", **filters):
    """The one security event of that kind (and filters); fails listing the tenant's events."""
    found = events(kind, schema, **filters)
    assert len(found) == 1, [(e.kind, e.reason, e.details) for e in events(schema=schema)]
    return found[0]
