"""The database backend sets the session's search_path only when it changes."""

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from licensing.models import Product

pytestmark = pytest.mark.django_db


def search_path_statements(queries):
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SET search_path")]


def read_in(schema):
    with schema_context(schema):
        list(Product.objects.all()[:1])


def test_choosing_the_same_schema_again_sets_nothing():
    read_in("alpha")
    connection.set_schema_to_public()
    with CaptureQueriesContext(connection) as queries:
        read_in("alpha")  # the middleware's pattern: public first, then the tenant
    assert search_path_statements(queries) == []
    assert len(queries.captured_queries) == 1


def test_another_schema_sets_the_path():
    read_in("alpha")
    with CaptureQueriesContext(connection) as queries:
        read_in("beta")
    assert search_path_statements(queries) == ['SET search_path = "beta","public"']


def test_a_rolled_back_path_is_set_again():
    read_in("alpha")
    with pytest.raises(RuntimeError), transaction.atomic():
        read_in("beta")  # the SET to beta is undone with the savepoint
        raise RuntimeError
    with CaptureQueriesContext(connection) as queries:
        read_in("beta")
    assert search_path_statements(queries) == ['SET search_path = "beta","public"']
    with schema_context("beta"), connection.cursor() as cursor:
        cursor.execute("SHOW search_path")
        assert cursor.fetchone()[0] == "beta, public"


def test_a_new_connection_starts_without_a_remembered_path():
    other = connections.create_connection("default")
    try:
        other.set_schema("alpha")
        with other.cursor() as cursor:
            cursor.execute("SELECT 1")
        assert other._session_search_path == ["alpha", "public"]
        other.close()
        other.connect()
        assert other._session_search_path is None
    finally:
        other.close()
