"""DATABASE_POOLING=transaction: each statement carries its search_path, nothing is remembered.

A connection of its own with the pooling setting (the suite's connection keeps the default), on
the real test database; the cluster tests (tests/cluster) run the same behind pgbouncer.
"""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import DataError, connections
from django.test.utils import CaptureQueriesContext

from tenants.postgresql_backend.base import DatabaseWrapper

# Not transactional: a flush would wipe the session's tenants. The connection under test is a
# separate one and writes nothing but a temporary table.
pytestmark = pytest.mark.django_db


@pytest.fixture
def pooled():
    # The suite's engine (the embedded server's subclass, or tenants.postgresql_backend itself),
    # with settings of its own.
    wrapper = connections.create_connection("default")
    wrapper.settings_dict = {**wrapper.settings_dict, "POOLING": "transaction"}
    wrapper.settings_dict["OPTIONS"] = dict(wrapper.settings_dict["OPTIONS"])
    assert isinstance(wrapper, DatabaseWrapper) and wrapper.transaction_pooling
    yield wrapper
    wrapper.close()


def current_path(wrapper) -> str:
    with wrapper.cursor() as cursor:
        cursor.execute("SHOW search_path")
        return cursor.fetchone()[0]


def test_every_statement_carries_the_schema_chosen_when_it_runs(pooled):
    pooled.set_schema("alpha")
    assert current_path(pooled) == "alpha, public"
    pooled.set_schema("beta")
    assert current_path(pooled) == "beta, public"
    pooled.set_schema_to_public()
    with CaptureQueriesContext(pooled) as queries:
        assert current_path(pooled) == "public"
    # One statement each, the path in front of it; nothing remembered for the next one.
    assert [q["sql"] for q in queries.captured_queries] == [
        'SET search_path TO "public"; SHOW search_path'
    ]
    assert pooled.search_path_set_schemas is None and pooled._session_search_path is None


def test_results_and_row_counts_are_those_of_the_statement(pooled):
    pooled.set_schema("alpha")
    with pooled.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE pooled_probe (n int)")
        cursor.execute("INSERT INTO pooled_probe VALUES (%s), (%s), (%s)", [1, 2, 3])
        assert cursor.rowcount == 3
        cursor.executemany("INSERT INTO pooled_probe VALUES (%s)", [[4], [5]])
        cursor.execute("SELECT n FROM pooled_probe WHERE n > %s ORDER BY n", [3])
        assert cursor.fetchall() == [(4,), (5,)]


def test_a_failed_statement_in_a_transaction_can_be_rolled_back(pooled):
    """Transaction control goes out without the path (a SET fails in an aborted transaction)."""
    pooled.set_schema("alpha")
    pooled.set_autocommit(False)
    with pooled.cursor() as cursor:
        cursor.execute("SAVEPOINT probe")
        with pytest.raises(DataError):
            cursor.execute("SELECT %s::int", ["not a number"])
        cursor.execute("ROLLBACK TO SAVEPOINT probe")
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    pooled.rollback()
    pooled.set_autocommit(True)


def test_nothing_is_prepared_and_server_side_binding_is_refused(pooled):
    assert pooled.get_connection_params()["prepare_threshold"] is None
    pooled.settings_dict["OPTIONS"]["server_side_binding"] = True
    with pytest.raises(ImproperlyConfigured, match="client-side binding"):
        pooled.get_connection_params()
