"""The hot reads' statements are prepared by PostgreSQL (api/statements.py), and a statement
prepared for one tenant's schema never reads another tenant's tables."""

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from licensing import services
from licensing.models import ValidationCode
from tests.licensing.factories import make_license

pytestmark = pytest.mark.django_db


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_the_validation_statement_is_prepared_and_stays_in_its_tenant(tenant_alpha, tenant_beta):
    with schema_context("alpha"):
        alpha = make_license()
    with schema_context("beta"):
        beta = make_license()
    with schema_context("alpha"):
        for _ in range(8):  # past psycopg's prepare_threshold
            check = services.read_license_key(alpha.key)
            assert (check.code, check.license.id) == (ValidationCode.VALID, alpha.pk)
        assert any("licensing_license" in sql for sql in prepared_statements())
        assert services.read_license_key(beta.key).code == ValidationCode.NOT_FOUND
    with schema_context("beta"):
        check = services.read_license_key(beta.key)
        assert (check.code, check.license.id) == (ValidationCode.VALID, beta.pk)
        assert services.read_license_key(alpha.key).code == ValidationCode.NOT_FOUND
    with schema_context("alpha"):
        assert services.read_license_key(alpha.key).license.id == alpha.pk


def test_django_s_own_statements_are_not_prepared(tenant_alpha):
    with schema_context("alpha"):
        licence = make_license()
        services.read_license_key(licence.key)  # preparing is on for the session now
        for _ in range(8):
            assert type(licence).objects.filter(pk=licence.pk).count() == 1
        assert not any("COUNT(*) AS" in sql for sql in prepared_statements())
