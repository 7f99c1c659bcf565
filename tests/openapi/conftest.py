"""A throw-away tenant `fuzz`, served live, with a User Token holding every permission. The
fuzzer may create, change and delete anything in it; it is dropped afterwards.
"""

import json
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django_tenants.utils import schema_context

from licensing.sample_data import load_sample_data
from tenants.models import Domain, Tenant
from tenants.services import AdminAccount, provision_tenant
from tests.client.conftest import localhost_names_resolve  # noqa: F401 (autouse fixture)
from tests.live import run_live_tenant_server
from tokens.catalogue import ALL_PERMISSIONS

FUZZ_SCHEMA = "fuzz"
# The ids of the server's own users and tokens start here, far from the small ids a fuzzer tries
# first, so it does not delete, deactivate or refresh the very token it is authenticated with.
HIGH_IDS = 10**9  # auth_user.id is a 32-bit integer


@dataclass
class FuzzTarget:
    server: object
    all_permissions_secret: str


def _bump_id_sequences(tables: list[str]) -> None:
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [table, HIGH_IDS])


@pytest.fixture(scope="module")
def fuzz_target(django_db_setup, django_db_blocker):
    from tokens.services import create_user_token

    with django_db_blocker.unblock():
        tenant = provision_tenant(
            schema_name=FUZZ_SCHEMA,
            name="Fuzz target",
            domain="fuzz.localhost",
            admin=AdminAccount("fuzz-admin", "admin@fuzz.localhost", "Fuzz-password-2026!"),
            request_limit=10_000_000,
        )
        with schema_context(FUZZ_SCHEMA):
            # Products, plans, customers and licences with small ids, which a fuzzer tries first.
            load_sample_data(tenant)
            _bump_id_sequences(["auth_user", "tokens_usertoken"])
        connection.set_schema_to_public()
    try:
        with django_db_blocker.unblock(), run_live_tenant_server(FUZZ_SCHEMA) as server:
            with schema_context(FUZZ_SCHEMA):
                owner = get_user_model().objects.get(pk=server.owner_id)
                _, everything = create_user_token(
                    owner=owner, name="fuzz: every permission", permissions=sorted(ALL_PERMISSIONS)
                )
            connection.set_schema_to_public()
            yield FuzzTarget(server, everything)
    finally:
        with django_db_blocker.unblock():
            connection.set_schema_to_public()
            Domain.objects.filter(tenant=tenant).delete()
            Tenant.objects.get(pk=tenant.pk).delete(force_drop=True)


@pytest.fixture(scope="module")
def schema(django_db_setup, django_db_blocker):
    """/v1/schema of tenant alpha, as JSON."""
    from django.test import Client

    with django_db_blocker.unblock():
        response = Client(HTTP_HOST="alpha.localhost").get("/v1/schema?format=json")
    assert response.status_code == 200
    return json.loads(response.content)
