"""The per-process tenant cache: a warm request resolves its tenant without a query, and changes
to tenants or domains reach the cache at once in this process and within a second elsewhere."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tenants import middleware, resolution
from tenants.models import Domain
from tenants.resolution import VERSION_KEY, TenantResolutionCache, shared_cache
from tenants.services import set_tenant_licence

pytestmark = pytest.mark.django_db


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def caching(monkeypatch, clock):
    """A fresh cache with a controllable clock, caching although the test runs in a transaction."""
    fresh = TenantResolutionCache(clock=clock)
    monkeypatch.setattr(resolution, "tenant_cache", fresh)
    monkeypatch.setattr(middleware, "tenant_cache", fresh)
    monkeypatch.setattr(resolution, "may_cache", lambda: True)
    return fresh


def resolve(host="alpha.localhost"):
    """Run the tenant middleware on a request for `host`; the tenant it chose, or its response."""
    from django.test import RequestFactory

    request = RequestFactory(HTTP_HOST=host).get("/v1/no-such-thing")
    response = middleware.TenantMiddleware(lambda r: None).process_request(request)
    connection.set_schema_to_public()
    return response if response is not None else request.tenant


def test_warm_request_resolves_tenant_without_a_query(caching):
    # A page outside the API: nothing after the tenant middleware runs a query.
    with CaptureQueriesContext(connection) as cold:
        Client(HTTP_HOST="alpha.localhost").get("/no-such-page")
    assert any("tenants_domain" in q["sql"] for q in cold.captured_queries)
    with CaptureQueriesContext(connection) as warm:
        response = Client(HTTP_HOST="alpha.localhost").get("/no-such-page")
    assert response.status_code == 404
    assert warm.captured_queries == []


def test_each_host_gets_its_own_tenant_and_unknown_hosts_are_not_cached(caching):
    assert resolve("alpha.localhost").schema_name == "alpha"
    assert resolve("beta.localhost").schema_name == "beta"
    assert resolve("nobody.localhost").status_code == 404
    assert len(caching) == 2


def test_warm_requests_share_the_cached_tenant_without_a_copy(caching):
    loaded = resolve()  # the first request's own instance; a copy of it is cached
    loaded.request_limit = 1
    warm = resolve()
    assert warm.request_limit != 1
    assert resolve() is warm  # no copy per request: the cached Tenant is read, never changed


def test_licence_change_applies_at_once_in_this_process(caching, tenant_alpha):
    assert resolve().request_limit == tenant_alpha.request_limit
    set_tenant_licence(tenant_alpha, request_limit=7)
    with CaptureQueriesContext(connection) as queries:
        assert resolve().request_limit == 7
    assert any("tenants_domain" in q["sql"] for q in queries.captured_queries)


def test_removed_domain_stops_resolving(caching, tenant_alpha):
    assert resolve().schema_name == "alpha"
    Domain.objects.filter(domain="alpha.localhost").delete()  # a queryset delete sends post_delete
    assert resolve().status_code == 404


def test_change_in_another_process_applies_within_the_check_interval(caching, clock, tenant_alpha):
    assert resolve().request_limit == tenant_alpha.request_limit
    # Another process changes the licence: its rows and the shared stamp change, not our memory.
    type(tenant_alpha).objects.filter(pk=tenant_alpha.pk).update(request_limit=9)
    shared_cache().set(VERSION_KEY, 12345, None)
    clock.now += 0.5
    assert resolve().request_limit == tenant_alpha.request_limit  # not checked again yet
    clock.now += 0.6
    assert resolve().request_limit == 9


def test_entries_expire_without_any_signal(caching, clock, tenant_alpha):
    assert resolve().request_limit == tenant_alpha.request_limit
    type(tenant_alpha).objects.filter(pk=tenant_alpha.pk).update(request_limit=11)
    clock.now += 59
    assert resolve().request_limit == tenant_alpha.request_limit
    clock.now += 2
    assert resolve().request_limit == 11


def test_a_committed_change_publishes_a_new_stamp(tenant_alpha, django_capture_on_commit_callbacks):
    before = shared_cache().get(VERSION_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        set_tenant_licence(tenant_alpha, request_limit=8)
    assert shared_cache().get(VERSION_KEY) not in (None, before)


def test_nothing_is_cached_inside_a_transaction(monkeypatch, clock):
    fresh = TenantResolutionCache(clock=clock)
    monkeypatch.setattr(middleware, "tenant_cache", fresh)
    assert resolve().schema_name == "alpha"  # the test itself runs in a transaction
    assert len(fresh) == 0
