"""Each list answers with a fixed number of queries, whether it holds 3 rows or 60."""

import pytest
from django.conf import settings
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

# Every statement of a list request is counted: tenant routing (the domain), the User Token with
# its owner, the page and one per prefetched relation (a user's groups, a group's members, a
# product's plans); never one per row. Only the search path and savepoints are not statements of
# the request's work. Without Redis the request counters live in PostgreSQL (tenants.cache): their
# statements vary with the counters' windows, so they are left out there (and only there).
UNCOUNTED = ("SAVEPOINT", "RELEASE SAVEPOINT", "SET search_path")
COUNTER_STORE = "tenants_ratecounter"
STATEMENTS = {
    "users": 4,
    "groups": 4,
    "products": 4,
    "plans": 3,
    "customers": 3,
    "licenses": 3,
    "machines": 3,
}
SEARCH_PATHS = 2  # the public schema for the domain, then the tenant's


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
    """(all statements, those of the request's work) of one page of up to 100 rows."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"/v1/{kind}?limit=100")
    assert response.status_code == 200
    assert len(response.json()["results"]) >= expected_rows
    queries = [q["sql"] for q in captured.captured_queries]
    counted = [sql for sql in queries if not any(part in sql for part in UNCOUNTED)]
    if not settings.REDIS_URL:
        counted = [sql for sql in counted if COUNTER_STORE not in sql]
    return len(queries), len(counted)


@pytest.mark.parametrize(("kind", "permission"), LISTS, ids=[kind for kind, _ in LISTS])
def test_list_queries_do_not_grow_with_rows(api_client, kind, permission):
    client = api_client("alpha", [permission])
    client.get(f"/v1/{kind}")  # warm: token caches, last-used bookkeeping
    with schema_context("alpha"):
        add_rows(kind, 3)
    total_3, counted_3 = counted_list(client, kind, 3)
    with schema_context("alpha"):
        add_rows(kind, 57)
    total_60, counted_60 = counted_list(client, kind, 60)
    assert counted_3 == counted_60 == STATEMENTS[kind], (counted_3, counted_60)
    if settings.REDIS_URL:  # nothing left out: the totals are fixed too
        assert total_3 == total_60 == STATEMENTS[kind] + SEARCH_PATHS, (total_3, total_60)


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


def test_a_warm_read_is_one_statement_with_the_token(api_client):
    client = api_client("alpha", [P.VIEW_LICENSES])
    with schema_context("alpha"):
        license = make_license()
    statements = warm_statements(lambda: client.get(f"/v1/licenses/{license.pk}"))
    assert len(statements) == 1, statements
    # The User Token with its owner and the licence: one statement, built once per process
    # (tokens.services.find_token_with_owner with the view's RowRead).
    (read,) = statements
    assert 'FROM "tokens_usertoken" t JOIN "auth_user" o' in read and "ORDER BY" not in read
    assert 'LEFT JOIN "licensing_license" r' in read


def test_a_read_with_a_filter_or_of_an_absent_licence_reads_it_apart(api_client):
    """The query string's filters (a 400 or 404 to give) and a 404 go through get_object."""
    client = api_client("alpha", [P.VIEW_LICENSES])
    with schema_context("alpha"):
        license = make_license()
    filtered = warm_statements(lambda: client.get(f"/v1/licenses/{license.pk}?status=active"))
    assert len(filtered) == 2 and "LEFT JOIN" not in filtered[0], filtered
    client.get(f"/v1/licenses/{license.pk + 1000}")
    with CaptureQueriesContext(connection) as captured:
        assert client.get(f"/v1/licenses/{license.pk + 1000}").status_code == 404
    absent = [
        q["sql"] for q in captured.captured_queries if not any(p in q["sql"] for p in ROUTING)
    ]
    assert len(absent) == 2 and "LEFT JOIN" in absent[0], absent


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


@pytest.mark.parametrize("full", [False, True], ids=["key", "key-product-fingerprint-nonce"])
def test_a_warm_validation_is_one_statement(alpha_client, full):
    with schema_context("alpha"):
        license = make_license()
        machine = make_machine(license)
    body = {"key": license.key}
    if full:
        body |= {"product": license.product.code, "fingerprint": machine.fingerprint, "nonce": "n"}
    statements = warm_statements(
        lambda: alpha_client.post("/v1/licenses/validate", body, content_type="application/json")
    )
    # The licence, its product, plan, activation count and the fingerprint's machine, written once
    # per process (licensing.services.check_license_key); the record is buffered.
    assert len(statements) == 1 and 'FROM "licensing_license" l JOIN' in statements[0], statements
