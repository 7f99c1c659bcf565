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


# --- Statements of a warm request on the hot paths, authentication included (docs/performance.md)

ROUTING = ("tenants_", "SAVEPOINT", "RELEASE SAVEPOINT", "SET search_path")


def warm_statements(request) -> list[str]:
    """The SQL of one warm request (after the same request once): tenant routing and the
    PostgreSQL counter store (used without Redis) left out."""
    request()
    with CaptureQueriesContext(connection) as captured:
        response = request()
    assert response.status_code == 200, response.content
    return [q["sql"] for q in captured.captured_queries if not any(p in q["sql"] for p in ROUTING)]


def test_a_warm_read_is_the_token_lookup_and_the_licence(api_client):
    client = api_client("alpha", [P.VIEW_LICENSES])
    with schema_context("alpha"):
        license = make_license()
    statements = warm_statements(lambda: client.get(f"/v1/licenses/{license.pk}"))
    assert len(statements) == 2, statements
    token, read = statements
    # The User Token with its owner: one statement, built once per process (tokens.services).
    assert 'FROM "tokens_usertoken" t JOIN "auth_user" o' in token and "ORDER BY" not in token
    assert 'FROM "licensing_license"' in read


def test_auth_me_is_the_token_lookup_alone(api_client):
    client = api_client("alpha", [P.VIEW_LICENSES])
    statements = warm_statements(lambda: client.get("/v1/auth/me"))
    assert len(statements) == 1 and '"tokens_usertoken" t JOIN' in statements[0], statements


def test_a_token_exchange_is_one_statement(alpha_client, make_user_token):
    _, secret = make_user_token("alpha", [P.VIEW_LICENSES])
    statements = warm_statements(
        lambda: alpha_client.post(
            "/v1/auth/token", {"user_token": secret}, content_type="application/json"
        )
    )
    # The lookup by digest; its security event is buffered, last use written once a minute.
    assert len(statements) == 1 and 'FROM "tokens_usertoken"' in statements[0], statements
