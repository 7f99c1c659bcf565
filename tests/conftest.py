"""Test tenants built once per session, and clients that speak to them by host.

The session fixture provisions the public tenant and two tenants, `alpha` and `beta`, in the real
PostgreSQL test database. Each test runs inside a transaction that is rolled back, so rows a test
writes never reach another test; the tenants themselves stay for the whole session.
"""

import contextlib
import os
import uuid

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from tenants.models import Tenant
from tenants.services import AdminAccount, ensure_public_tenant, provision_tenant
from tests.browser import chromium  # noqa: F401 (fixture: headless Chromium, or a skip)
from tests.helpers import TENANTS, TEST_PASSWORD, TenantClient, exchange
from tests.live import (  # noqa: F401 (fixtures: the app served over real HTTP, committed rows)
    committed_licence,
    live_tenant_server,
)

DEVELOPMENT_DATABASE = connection.settings_dict["NAME"]  # read before any test database exists


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker, request):
    with django_db_blocker.unblock():
        if connection.settings_dict["NAME"] == DEVELOPMENT_DATABASE:
            # pytest-django creates the test database only if a collected test uses `db`: a run of
            # live-server tests alone would otherwise write to the development database.
            from django.test.utils import setup_databases, teardown_databases

            created = setup_databases(verbosity=0, interactive=False, aliases={"default"})

            def drop():
                with django_db_blocker.unblock():
                    teardown_databases(created, verbosity=0)

            request.addfinalizer(drop)
        ensure_public_tenant()
        for schema, domain in TENANTS.items():
            if not Tenant.objects.filter(schema_name=schema).exists():
                provision_tenant(
                    schema_name=schema,
                    name=f"{schema.title()} Software",
                    domain=domain,
                    admin=AdminAccount(f"{schema}-admin", f"admin@{domain}", TEST_PASSWORD),
                    request_limit=100_000,
                )
        connection.set_schema_to_public()


@pytest.fixture(autouse=True)
def _public_schema_between_tests():
    yield
    connection.set_schema_to_public()


@pytest.fixture(autouse=True)
def _no_cached_tenants():
    """Each test resolves its tenants afresh: a request served on another thread (its own
    connection, outside the test's transaction) may leave a tenant in the process's cache that
    the test then changes with `update()`, which tells no cache (tenants.resolution)."""
    from tenants.resolution import tenant_cache

    tenant_cache.clear()


@pytest.fixture(autouse=True)
def _fresh_rate_counters(settings):
    """Each test counts licence requests and failed attempts from zero: Redis counters outlive the
    test's transaction, so every test gets its own django-ratelimit key prefix."""
    settings.RATELIMIT_CACHE_PREFIX = f"rl-{uuid.uuid4().hex[:12]}:"


@pytest.fixture(autouse=True)
def _own_record_buffer(settings):
    """Each test buffers records in its own namespace, written only when it drains (no thread
    writing outside the test's transaction), and leaves nothing queued behind."""
    from tenants.record_buffer import discard_buffered_records

    settings.RECORD_BUFFER_PREFIX = f"records-{uuid.uuid4().hex[:12]}"
    settings.RECORD_BUFFER_SECONDS = 0
    yield
    with contextlib.suppress(Exception):  # a test that made Redis unreachable: nothing to discard
        discard_buffered_records()


@pytest.fixture
def tenant_alpha(db):
    return Tenant.objects.get(schema_name="alpha")


@pytest.fixture
def tenant_beta(db):
    return Tenant.objects.get(schema_name="beta")


@pytest.fixture
def alpha_client(tenant_alpha):
    return TenantClient(tenant_alpha, TENANTS["alpha"])


@pytest.fixture
def beta_client(tenant_beta):
    return TenantClient(tenant_beta, TENANTS["beta"])


@pytest.fixture
def admin_client(alpha_client, admin_password):
    """alpha's test client, logged into its admin as the tenant's first administrator
    (replaces pytest-django's admin_client, which knows nothing of tenants)."""
    assert alpha_client.login(username="alpha-admin", password=admin_password)
    return alpha_client


@pytest.fixture
def in_alpha(tenant_alpha):
    """Run the test body in alpha's schema (for writing rows directly)."""
    with schema_context("alpha"):
        yield tenant_alpha


@pytest.fixture
def make_user_token(db):
    """make_user_token(tenant="alpha", permissions=[...], owner=None, **fields) -> (token, secret).

    The owner defaults to a fresh active user of that tenant; the token is written in its schema.
    """
    from django.contrib.auth import get_user_model

    from tokens.services import create_user_token

    counter = iter(range(1, 10_000))

    def make(tenant="alpha", permissions=(), owner=None, name=None, **fields):
        with schema_context(tenant):
            if owner is None:
                owner = get_user_model().objects.create_user(
                    f"integration-{next(counter)}", email="integration@example.com"
                )
            return create_user_token(
                owner=owner,
                name=name or "test token",
                permissions=[str(p) for p in permissions],
                **fields,
            )

    return make


@pytest.fixture
def api_client(make_user_token):
    """api_client(tenant="alpha", permissions=[...], **token_fields) -> TenantClient.

    Its requests carry `Authorization: Bearer <access token>` of a fresh User Token with exactly
    those permissions; `.user_token`, `.secret` and `.tokens` (the exchange answer) are attached.
    """

    def make(tenant="alpha", permissions=(), **fields):
        token, secret = make_user_token(tenant, permissions, **fields)
        tenant_obj = Tenant.objects.get(schema_name=tenant)
        response = exchange(TenantClient(tenant_obj, TENANTS[tenant]), secret)
        assert response.status_code == 200, response.content
        tokens = response.json()
        client = TenantClient(
            tenant_obj, TENANTS[tenant], HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}"
        )
        client.user_token, client.secret, client.tokens = token, secret, tokens
        return client

    return make


@pytest.fixture
def licensing_clock(monkeypatch):
    """The licensing domain's clock, frozen at the test's start; `.advance(seconds=...)`."""
    from django.utils import timezone

    from licensing import clock

    frozen = clock.FrozenClock(timezone.now())
    monkeypatch.setattr(clock, "now", frozen)
    return frozen


@pytest.fixture
def admin_password():
    return TEST_PASSWORD


def pytest_configure(config):
    os.environ.setdefault("DJANGO_SUPERUSER_PASSWORD", TEST_PASSWORD)
    # Tests speak plain HTTP even with DEBUG off (production settings would redirect to HTTPS);
    # the environment variable reaches the live servers the tests start.
    from django.conf import settings

    os.environ["SECURE_SSL_REDIRECT"] = "off"
    settings.SECURE_SSL_REDIRECT = False
    # Redis outlives the run: a run's cache keys (folded security events are counted per licence
    # id and minute, and ids start again in a new test database) must not meet the last run's.
    run = uuid.uuid4().hex[:12]
    for cache in settings.CACHES.values():
        cache["KEY_PREFIX"] = f"test-{run}"
