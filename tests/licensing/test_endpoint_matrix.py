"""Every endpoint of CONTRACT section 5 (and the webhooks API) served, generated from one table.

For each row: anonymous → 401, every permission but the required one → 403, only the required one
→ success, and (for `{id}` routes) an id of the other tenant → 404 on this tenant's host.
"""

import json

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django_tenants.utils import schema_context

from licensing.models import Machine
from tests.licensing.factories import (
    PUBLIC_WEBHOOK_URL,
    make,
    make_plan,
    make_user,
    only_in,
    unique,
)
from tokens.catalogue import ALL_PERMISSIONS, Permission

pytestmark = pytest.mark.django_db

P = Permission
ENDPOINTS = [
    ("GET", "/v1/users", P.VIEW_USERS),
    ("GET", "/v1/users/{id}", P.VIEW_USERS),
    ("POST", "/v1/users", P.CREATE_USERS),
    ("PATCH", "/v1/users/{id}", P.EDIT_USERS),
    ("DELETE", "/v1/users/{id}", P.DELETE_USERS),
    ("GET", "/v1/groups", P.VIEW_USERS),
    ("GET", "/v1/groups/{id}", P.VIEW_USERS),
    ("POST", "/v1/groups", P.CREATE_GROUPS),
    ("PATCH", "/v1/groups/{id}", P.EDIT_GROUPS),
    ("DELETE", "/v1/groups/{id}", P.DELETE_GROUPS),
    ("GET", "/v1/products", P.VIEW_PRODUCTS),
    ("GET", "/v1/products/{id}", P.VIEW_PRODUCTS),
    ("POST", "/v1/products", P.EDIT_PRODUCTS),
    ("PATCH", "/v1/products/{id}", P.EDIT_PRODUCTS),
    ("GET", "/v1/plans", P.VIEW_PRODUCTS),
    ("GET", "/v1/plans/{id}", P.VIEW_PRODUCTS),
    ("POST", "/v1/plans", P.EDIT_PRODUCTS),
    ("PATCH", "/v1/plans/{id}", P.EDIT_PRODUCTS),
    ("GET", "/v1/customers", P.VIEW_CUSTOMERS),
    ("GET", "/v1/customers/{id}", P.VIEW_CUSTOMERS),
    ("GET", "/v1/licenses", P.VIEW_LICENSES),
    ("GET", "/v1/licenses/{id}", P.VIEW_LICENSES),
    ("POST", "/v1/licenses", P.EDIT_LICENSES),
    ("PATCH", "/v1/licenses/{id}", P.EDIT_LICENSES),
    ("GET", "/v1/machines", P.VIEW_LICENSES),
    ("GET", "/v1/machines/{id}", P.VIEW_LICENSES),
    ("DELETE", "/v1/machines/{id}", P.EDIT_LICENSES),
    ("GET", "/v1/webhooks", P.VIEW_WEBHOOKS),
    ("GET", "/v1/webhooks/{id}", P.VIEW_WEBHOOKS),
    ("POST", "/v1/webhooks", P.EDIT_WEBHOOKS),
    ("PATCH", "/v1/webhooks/{id}", P.EDIT_WEBHOOKS),
    ("DELETE", "/v1/webhooks/{id}", P.EDIT_WEBHOOKS),
    ("GET", "/v1/webhook-deliveries", P.VIEW_WEBHOOKS),
    ("GET", "/v1/webhook-deliveries/{id}", P.VIEW_WEBHOOKS),
]
# The apps whose API views the table covers.
API_VIEW_MODULES = ("licensing.api.views", "webhooks.api.views")
SUCCESS = {"GET": 200, "POST": 201, "PATCH": 200, "DELETE": 204}


def is_gone(obj) -> bool:
    """A DELETE took effect: the row is gone (a machine is kept, deactivated)."""
    stored = type(obj).objects.filter(pk=obj.pk).first()
    if isinstance(obj, Machine):
        return stored is not None and stored.deactivated_at is not None
    return stored is None


def kind_of(path: str) -> str:
    return path.split("/")[2]


def body_for(method: str, kind: str) -> dict | None:
    """A valid request body for the row, written into the current schema as needed."""
    if method == "POST":
        if kind == "users":
            return {"username": unique("new-user"), "email": "new@example.com"}
        if kind == "groups":
            return {"name": unique("new-group"), "members": [make_user().pk]}
        if kind == "products":
            return {"code": unique("new-product"), "name": "New product"}
        if kind == "plans":
            return {
                "product": make("products").pk,
                "code": "pro",
                "name": "Pro",
                "duration_days": 365,
            }
        if kind == "licenses":
            plan = make_plan()
            return {"product": plan.product_id, "plan": plan.pk, "metadata": {"seats": 3}}
        if kind == "webhooks":
            return {"url": PUBLIC_WEBHOOK_URL, "events": ["license.created"]}
    if method == "PATCH":
        return {
            "users": {"first_name": "Renamed"},
            "groups": {"description": "Renamed", "max_licenses_per_member": 3},
            "products": {"name": "Renamed"},
            "plans": {"name": "Renamed", "entitlements": ["a", "b"]},
            "licenses": {"status": "suspended", "metadata": {"note": "on hold"}},
            "webhooks": {"description": "Renamed", "active": False},
        }[kind]
    return None


def call(client, method: str, path: str, body=None):
    if body is None:
        return client.generic(method, path)
    return client.generic(method, path, data=_json(body), content_type="application/json")


def _json(body) -> str:
    return json.dumps(body)


def prepared(method, path, schema="alpha"):
    """The concrete path (with the id of a fresh object) and body, written into `schema`."""
    kind = kind_of(path)
    with schema_context(schema):
        target = make(kind) if "{id}" in path else None
        body = body_for(method, kind)
    return path.replace("{id}", str(target.pk)) if target else path, body, target


ROWS = [pytest.param(*row, id=f"{row[0]} {row[1]}") for row in ENDPOINTS]


@pytest.mark.parametrize(("method", "path", "permission"), ROWS)
def test_anonymous_is_refused(alpha_client, method, path, permission):
    concrete, body, _ = prepared(method, path)
    response = call(alpha_client, method, concrete, body)
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid token"}


@pytest.mark.parametrize(("method", "path", "permission"), ROWS)
def test_every_other_permission_is_not_enough(api_client, method, path, permission):
    client = api_client("alpha", sorted(ALL_PERMISSIONS - {permission}))
    concrete, body, target = prepared(method, path)
    response = call(client, method, concrete, body)
    assert response.status_code == 403
    assert response.json() == {"error": "Access denied"}
    if target is not None and method != "GET":
        with schema_context("alpha"):
            # Refused means untouched.
            assert type(target).objects.filter(pk=target.pk).exists()
            assert not is_gone(target)
            if method == "PATCH":
                fresh = type(target).objects.get(pk=target.pk)
                assert all(
                    getattr(fresh, field, None) != value
                    for field, value in body.items()
                    if not isinstance(value, (dict, list))
                )


@pytest.mark.parametrize(("method", "path", "permission"), ROWS)
def test_the_required_permission_alone_succeeds(api_client, method, path, permission):
    client = api_client("alpha", [permission])
    concrete, body, target = prepared(method, path)
    response = call(client, method, concrete, body)
    assert response.status_code == SUCCESS[method], response.content
    if method == "DELETE":
        with schema_context("alpha"):
            assert is_gone(target)
        return
    data = response.json()
    if "{id}" in path or method == "POST":
        assert isinstance(data["id"], int)
        if target is not None:
            assert data["id"] == target.pk
        if method == "PATCH":
            for field, value in body.items():
                assert data[field] == value
    else:
        assert set(data) == {"results", "next", "previous"}
        assert all(isinstance(item["id"], int) for item in data["results"])


@pytest.mark.parametrize(
    ("method", "path", "permission"), [row for row in ROWS if "{id}" in row.values[1]]
)
def test_an_id_of_the_other_tenant_is_not_found(api_client, method, path, permission):
    client = api_client("alpha", [permission])
    kind = kind_of(path)
    foreign = only_in("beta", kind, absent_from="alpha")
    with schema_context("alpha"):
        body = body_for(method, kind)
    response = call(client, method, path.replace("{id}", str(foreign.pk)), body)
    assert response.status_code == 404
    assert response.json() == {"error": "Not found"}
    with schema_context("beta"):
        assert not is_gone(foreign)


@pytest.mark.parametrize(
    ("method", "path", "permission"), [row for row in ROWS if "{id}" in row.values[1]]
)
def test_a_token_of_the_other_tenant_is_refused(api_client, method, path, permission):
    """A beta token with the right permission, sent to alpha's host with alpha's id."""
    beta = api_client("beta", [permission])
    concrete, body, _ = prepared(method, path)
    alpha_host = "alpha.localhost"
    response = beta.generic(
        method,
        concrete,
        data=_json(body) if body is not None else "",
        content_type="application/json",
        HTTP_HOST=alpha_host,
    )
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid token"}


def _served_routes():
    """(method, path) of every route licensing.api.urls serves, read from the URL resolver."""
    served = set()
    resolver = get_resolver("config.urls")

    def walk(patterns, prefix):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                view = pattern.callback
                if getattr(view, "cls", None) is None or (
                    view.cls.__module__ not in API_VIEW_MODULES
                ):
                    continue
                route = "/" + prefix + str(pattern.pattern)
                route = route.replace("<int:pk>", "{id}")
                for method in getattr(view, "actions", {}) or {}:
                    if method != "head":  # DRF's automatic HEAD for GET
                        served.add((method.upper(), route))

    walk(resolver.url_patterns, "")
    return served


def test_the_table_covers_every_route_served():
    table = {(method, path) for method, path, _ in ENDPOINTS}
    assert _served_routes() == table


def test_the_table_matches_the_views_declarations():
    """Each view declares exactly the permission the table (the contract) names for it."""
    from django.urls import resolve

    for method, path, permission in ENDPOINTS:
        view = resolve(path.replace("{id}", "1")).func.cls
        assert view.required_permissions[method] == (permission,), (method, path)


def test_models_live_in_tenant_schemas_only(tenant_alpha):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = %s",
            ["licensing_license"],
        )
        schemas = {row[0] for row in cursor.fetchall()}
    assert "public" not in schemas
    assert {"alpha", "beta"} <= schemas
