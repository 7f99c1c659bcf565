"""A live HTTP server of the whole app on a tenant's host, against the test database.

For tests that need real HTTP from outside the test's own transaction: a browser, a client
package, schemathesis. pytest-django's `live_server` is not used on purpose: its transactional
flush would wipe the public schema's tenants. Instead the server runs in a thread of this process
and sees only COMMITTED rows: the fixture commits its own users and deletes what it created (and
every User Token they own or created) afterwards. Rows a test writes inside its `db` transaction
are invisible to the server.

    def test_something(live_tenant_server):
        live_tenant_server.url            # http://alpha.localhost:83xx (browsers resolve *.localhost)
        live_tenant_server.request("GET", "/v1/auth/me", headers={...})  # no resolver needed
"""

from __future__ import annotations

import contextlib
import http.client
import json as jsonlib
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.servers.basehttp import (
    ThreadedWSGIServer,
    WSGIRequestHandler,
    get_internal_wsgi_application,
)
from django.db import connection
from django.db.models import Q
from django_tenants.utils import schema_context

from tenants.models import Tenant

# Ports reserved for these servers; the first free one is used.
LIVE_PORTS = range(8300, 8400)


class _Handler(WSGIRequestHandler):
    # Idle keep-alive connections end after this, so shutting down never waits on them for long.
    timeout = 5


class _Server(ThreadedWSGIServer):
    # Request threads are joined on close, and each closes its database connections when done,
    # so no connection outlives the server (the test database can be dropped at the end).
    daemon_threads = False
    block_on_close = True
    # Concurrency tests open dozens of connections at once; Django's backlog of 10 would reset some.
    request_queue_size = 128

    def handle_error(self, request, client_address):
        import sys

        if isinstance(sys.exc_info()[1], TimeoutError | ConnectionError):
            return
        super().handle_error(request, client_address)


@dataclass
class LiveResponse:
    status: int
    headers: dict[str, str]
    content: bytes

    def json(self):
        return jsonlib.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode()


@dataclass
class LiveTenantServer:
    """A running server: `url` for browsers, `request()` for plain HTTP clients."""

    tenant: Tenant
    hostname: str
    port: int
    admin_username: str
    admin_password: str
    owner_username: str
    owner_id: int

    @property
    def url(self) -> str:
        return f"http://{self.hostname}:{self.port}"

    @property
    def host_header(self) -> str:
        return f"{self.hostname}:{self.port}"

    @property
    def address_url(self) -> str:
        """Where to connect when the resolver does not know *.localhost (send `host_header`)."""
        return f"http://127.0.0.1:{self.port}"

    def request(
        self, method: str, path: str, *, json=None, body=None, headers=None
    ) -> LiveResponse:
        """`json` is sent as a JSON body; `body` (str or bytes) as given, e.g. a form."""
        all_headers = {"Host": self.host_header, **(headers or {})}
        if json is not None:
            body = jsonlib.dumps(json).encode()
            all_headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            return LiveResponse(response.status, dict(response.getheaders()), response.read())
        finally:
            conn.close()


@contextlib.contextmanager
def committed_records_removed(schema: str) -> Iterator[None]:
    """Delete, afterwards, the monitoring rows (security events, alerts, licence validations) that
    a server committed in `schema` meanwhile, and forget the tenants this process cached: later
    tests count such rows, and change licences with .update(), which the cache does not see."""
    from licensing.models import LicenseValidation
    from monitoring.models import Alert, SecurityEvent
    from tenants.resolution import tenant_cache

    models = (SecurityEvent, Alert, LicenseValidation)
    with schema_context(schema):
        marks = {
            model: model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
            for model in models
        }
    connection.set_schema_to_public()
    try:
        yield
    finally:
        with schema_context(schema):
            for model, mark in marks.items():
                model.objects.filter(pk__gt=mark).delete()
        connection.set_schema_to_public()
        tenant_cache.clear()


def _bind() -> tuple[_Server, int]:
    for port in LIVE_PORTS:
        try:
            return _Server(("127.0.0.1", port), _Handler, allow_reuse_address=True), port
        except OSError:
            continue
    raise RuntimeError(f"No free port in {LIVE_PORTS.start}-{LIVE_PORTS.stop - 1} for the server.")


@contextlib.contextmanager
def run_live_tenant_server(schema: str = "alpha") -> Iterator[LiveTenantServer]:
    """Commit an admin and an ordinary user in `schema`, serve the app, clean up afterwards.

    Needs database access (inside `django_db_blocker.unblock()`) for its whole life, since the
    server's threads use the database.
    """
    suffix = secrets.token_hex(4)
    password = f"Live-{secrets.token_urlsafe(12)}"
    User = get_user_model()
    tenant = Tenant.objects.get(schema_name=schema)
    hostname = tenant.get_primary_domain().domain
    with schema_context(schema):
        sessions_before = set(Session.objects.values_list("session_key", flat=True))
        admin = User.objects.create_superuser(
            f"live-admin-{suffix}", f"live-admin-{suffix}@example.com", password
        )
        owner = User.objects.create_user(f"live-owner-{suffix}", f"live-owner-{suffix}@example.com")
    connection.set_schema_to_public()

    with committed_records_removed(schema):
        server, port = _bind()
        server.set_app(StaticFilesHandler(get_internal_wsgi_application()))
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"live-{schema}"
        )
        thread.daemon = True
        thread.start()
        try:
            yield LiveTenantServer(
                tenant=tenant,
                hostname=hostname,
                port=port,
                admin_username=admin.username,
                admin_password=password,
                owner_username=owner.username,
                owner_id=owner.pk,
            )
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
            with schema_context(schema):
                from tokens.models import UserToken

                users = [admin.pk, owner.pk]
                UserToken.objects.filter(Q(owner__in=users) | Q(created_by__in=users)).delete()
                Session.objects.exclude(session_key__in=sessions_before).delete()
                User.objects.filter(pk__in=users).delete()  # their admin history goes with them
            connection.set_schema_to_public()


@pytest.fixture(scope="module")
def live_tenant_server(django_db_setup, django_db_blocker):
    """The app served on alpha's host (alpha.localhost) on a port in 8300-8399, for a module."""
    with django_db_blocker.unblock(), run_live_tenant_server("alpha") as server:
        yield server


@pytest.fixture
def committed_licence(live_tenant_server, django_db_blocker):
    """committed_licence(**plan_fields) -> License, committed in the live server's schema so its
    threads see it; the licence, its machines, plan and product are deleted afterwards."""
    from licensing.models import License, Machine, Plan, Product
    from tests.licensing.factories import make_license, make_plan, unique

    schema = live_tenant_server.tenant.schema_name
    made = []

    def make(**plan_fields):
        with django_db_blocker.unblock(), schema_context(schema):
            licence = make_license(make_plan(code=unique("live"), **plan_fields))
        connection.set_schema_to_public()
        made.append(licence)
        return licence

    yield make
    with django_db_blocker.unblock(), schema_context(schema):
        for licence in made:
            Machine.objects.filter(license=licence).delete()
            License.objects.filter(pk=licence.pk).delete()
            Plan.objects.filter(pk=licence.plan_id).delete()
            Product.objects.filter(pk=licence.product_id).delete()
    connection.set_schema_to_public()
