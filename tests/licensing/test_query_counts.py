"""Each list answers with a fixed number of queries, whether it holds 3 rows or 60."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from tests.licensing.factories import (
    make_customer,
    make_group,
    make_license,
    make_machine,
    make_plan,
    make_product,
    make_user,
)
from tokens.catalogue import Permission as P

pytestmark = pytest.mark.django_db

# The list's own queries: the page, plus one per prefetched relation (a user's groups, a group's
# members, a product's plans); never one per row. Tenant routing, authentication and request
# counting run their own queries (also counted: the total must not grow with the rows either).
MAX_OWN_QUERIES = 2
INFRASTRUCTURE = ("tenants_", "tokens_", "SAVEPOINT", "RELEASE SAVEPOINT", "SET search_path")


def add_rows(kind: str, count: int) -> None:
    for _ in range(count):
        if kind == "users":
            make_group(members=[make_user().pk])
        elif kind == "groups":
            make_group(members=[make_user().pk, make_user().pk])
        elif kind == "products":
            product = make_product()
            make_plan(product)
            make_plan(product)
        elif kind == "plans":
            make_plan()
        elif kind == "customers":
            make_customer()
        elif kind == "licenses":
            make_license(customer=make_customer(), user=make_user())
        elif kind == "machines":
            make_machine()


LISTS = [
    ("users", P.VIEW_USERS),
    ("groups", P.VIEW_USERS),
    ("products", P.VIEW_PRODUCTS),
    ("plans", P.VIEW_PRODUCTS),
    ("customers", P.VIEW_CUSTOMERS),
    ("licenses", P.VIEW_LICENSES),
    ("machines", P.VIEW_LICENSES),
]


def counted_list(client, kind: str, expected_rows: int) -> tuple[int, int]:
    """(all queries, the list's own queries) of one page of up to 100 rows.

    The others (tenant routing, authentication, request counting, monitoring's bookkeeping) are
    not this app's and some of them run only now and then, so only the own ones are compared."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"/v1/{kind}?limit=100")
    assert response.status_code == 200
    assert len(response.json()["results"]) >= expected_rows
    queries = [q["sql"] for q in captured.captured_queries]
    own = [sql for sql in queries if not any(part in sql for part in INFRASTRUCTURE)]
    return len(queries), len(own)


@pytest.mark.parametrize(("kind", "permission"), LISTS, ids=[kind for kind, _ in LISTS])
def test_list_queries_do_not_grow_with_rows(api_client, kind, permission):
    client = api_client("alpha", [permission])
    client.get(f"/v1/{kind}")  # warm: token caches, last-used bookkeeping
    with schema_context("alpha"):
        add_rows(kind, 3)
    total_3, own_3 = counted_list(client, kind, 3)
    with schema_context("alpha"):
        add_rows(kind, 57)
    total_60, own_60 = counted_list(client, kind, 60)
    assert own_3 <= MAX_OWN_QUERIES and own_60 <= MAX_OWN_QUERIES, (own_3, own_60)
    assert own_60 == own_3
