"""Products, plans, customers and licences over the API: issuing, input errors, pagination, filters."""

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_tenants.utils import schema_context

from licensing.models import License, Plan
from tests.helpers import assert_invalid
from tests.licensing.factories import (
    make_customer,
    make_license,
    make_plan,
    make_product,
    make_user,
    only_in,
    patch,
    post,
    set_license_dates,
)
from tokens.catalogue import Permission as P

pytestmark = pytest.mark.django_db

KEY = re.compile(r"^([0-9A-HJKMNP-TV-Z]{5}-){4}[0-9A-HJKMNP-TV-Z]{5}$")


@pytest.fixture
def catalogue(api_client):
    return api_client("alpha", [P.VIEW_PRODUCTS, P.EDIT_PRODUCTS])


@pytest.fixture
def provisioning(api_client):
    return api_client("alpha", [P.VIEW_LICENSES, P.EDIT_LICENSES])


@pytest.fixture
def plan(tenant_alpha):
    with schema_context("alpha"):
        return make_plan(duration_days=30, entitlements=["export"])


# --- Products and plans


def test_product_with_its_plans(catalogue):
    response = post(catalogue, "/v1/products", {"code": "photon", "name": "Photon"})
    assert response.status_code == 201
    product = response.json()
    assert product["plans"] == [] and product["active"] is True
    response = post(
        catalogue,
        "/v1/plans",
        {
            "product": product["id"],
            "code": "annual",
            "name": "Annual",
            "duration_days": 365,
            "max_activations": 3,
            "entitlements": ["export", "sync", "export"],
        },
    )
    assert response.status_code == 201
    plan = response.json()
    assert plan["entitlements"] == ["export", "sync"]
    perpetual = post(
        catalogue,
        "/v1/plans",
        {"product": product["id"], "code": "forever", "name": "Forever", "duration_days": None},
    ).json()
    detail = catalogue.get(f"/v1/products/{product['id']}").json()
    assert [p["code"] for p in detail["plans"]] == ["annual", "forever"]
    assert detail["plans"][1]["duration_days"] is None
    listed = catalogue.get("/v1/products?code=photon").json()["results"]
    assert [p["id"] for p in listed] == [product["id"]]
    assert len(listed[0]["plans"]) == 2
    by_product = catalogue.get(f"/v1/plans?product={product['id']}").json()["results"]
    assert {p["id"] for p in by_product} == {plan["id"], perpetual["id"]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "No code"}, "code"),
        ({"code": "has space", "name": "x"}, "code"),
        ({"code": "-dash-first", "name": "x"}, "code"),
        ({"code": "x" * 65, "name": "x"}, "code"),
        ({"code": "ok"}, "name"),
        ({"code": "ok", "name": "x", "active": "perhaps"}, "active"),
        ({"code": "ok", "name": "x", "plans": []}, "plans"),
        ({"code": "ok", "name": "x", "owner": 1}, "owner"),
    ],
)
def test_product_input_errors(catalogue, body, field):
    assert_invalid(post(catalogue, "/v1/products", body), field)


def test_product_codes_are_unique(catalogue):
    assert post(catalogue, "/v1/products", {"code": "dup", "name": "A"}).status_code == 201
    assert_invalid(post(catalogue, "/v1/products", {"code": "dup", "name": "B"}), "code")
    other = post(catalogue, "/v1/products", {"code": "other", "name": "B"}).json()
    assert_invalid(patch(catalogue, f"/v1/products/{other['id']}", {"code": "dup"}), "code")


def test_the_same_product_code_in_two_tenants(catalogue, api_client):
    beta = api_client("beta", [P.EDIT_PRODUCTS])
    assert post(catalogue, "/v1/products", {"code": "shared", "name": "A"}).status_code == 201
    assert post(beta, "/v1/products", {"code": "shared", "name": "B"}).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "x", "name": "x"}, "product"),
        ({"product": 0, "code": "x", "name": "x"}, "product"),
        ({"product": "abc", "code": "x", "name": "x"}, "product"),
        ({"code": "x", "name": "x", "duration_days": 0}, "duration_days"),
        ({"code": "x", "name": "x", "duration_days": -5}, "duration_days"),
        ({"code": "x", "name": "x", "max_activations": 0}, "max_activations"),
        ({"code": "x", "name": "x", "entitlements": "export"}, "entitlements"),
        ({"code": "x", "name": "x", "entitlements": ["bad code"]}, "entitlements"),
        ({"code": "x", "name": "x", "entitlements": [{"a": 1}]}, "entitlements"),
    ],
)
def test_plan_input_errors(catalogue, plan, body, field):
    if field != "product":
        body = {"product": plan.product_id, **body}
    assert_invalid(post(catalogue, "/v1/plans", body), field)


def test_plan_codes_are_unique_per_product(catalogue, plan):
    body = {"product": plan.product_id, "code": plan.code, "name": "Again"}
    details = assert_invalid(post(catalogue, "/v1/plans", body))
    assert "already exists" in str(details)
    with schema_context("alpha"):
        other = make_product()
    body["product"] = other.pk
    assert post(catalogue, "/v1/plans", body).status_code == 201


def test_a_plan_stays_with_its_product(catalogue, plan):
    with schema_context("alpha"):
        other = make_product()
    assert_invalid(patch(catalogue, f"/v1/plans/{plan.pk}", {"product": other.pk}), "product")
    response = patch(catalogue, f"/v1/plans/{plan.pk}", {"duration_days": None})
    assert response.status_code == 200 and response.json()["duration_days"] is None


def test_a_plan_cannot_point_at_another_tenants_product(catalogue):
    foreign = only_in("beta", "products", absent_from="alpha")
    body = {"product": foreign.pk, "code": "x", "name": "x"}
    details = assert_invalid(post(catalogue, "/v1/plans", body), "product")
    assert "does not exist" in details["product"][0]


# --- Customers


def test_customers_are_read_only(api_client):
    client = api_client("alpha", [P.VIEW_CUSTOMERS])
    with schema_context("alpha"):
        customer = make_customer(name="Acme", external_id="CRM-42", notes="VIP")
    detail = client.get(f"/v1/customers/{customer.pk}").json()
    assert detail["name"] == "Acme" and detail["external_id"] == "CRM-42"
    found = client.get("/v1/customers?external_id=CRM-42").json()["results"]
    assert [c["id"] for c in found] == [customer.pk]
    assert post(client, "/v1/customers", {"name": "New"}).status_code == 405
    assert patch(client, f"/v1/customers/{customer.pk}", {"name": "New"}).status_code == 405


# --- Licences


def test_issuing_a_licence(provisioning, plan):
    with schema_context("alpha"):
        customer, user = make_customer(), make_user()
    before = timezone.now()
    response = post(
        provisioning,
        "/v1/licenses",
        {
            "product": plan.product_id,
            "plan": plan.pk,
            "customer": customer.pk,
            "user": user.pk,
            "metadata": {"order": "A-1"},
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert KEY.match(body["key"])
    assert body["status"] == "active" and body["expired"] is False
    assert (body["customer"], body["user"], body["metadata"]) == (
        customer.pk,
        user.pk,
        {"order": "A-1"},
    )
    starts, expires = parse_datetime(body["starts_at"]), parse_datetime(body["expires_at"])
    assert before <= starts <= timezone.now()
    assert expires - starts == timedelta(days=30)  # from the plan's duration
    assert provisioning.get(f"/v1/licenses/{body['id']}").json()["key"] == body["key"]


def test_issuing_with_given_dates_and_perpetual(provisioning, plan):
    starts = timezone.now() + timedelta(days=1)
    expires = starts + timedelta(days=7)
    body = post(
        provisioning,
        "/v1/licenses",
        {
            "product": plan.product_id,
            "plan": plan.pk,
            "starts_at": starts.isoformat(),
            "expires_at": expires.isoformat(),
        },
    ).json()
    assert parse_datetime(body["expires_at"]) == expires
    body = post(
        provisioning,
        "/v1/licenses",
        {"product": plan.product_id, "plan": plan.pk, "expires_at": None},
    ).json()
    assert body["expires_at"] is None  # explicitly perpetual
    with schema_context("alpha"):
        perpetual_plan = make_plan(plan.product, duration_days=None)
    body = post(
        provisioning, "/v1/licenses", {"product": plan.product_id, "plan": perpetual_plan.pk}
    ).json()
    assert body["expires_at"] is None


def test_licence_input_errors(provisioning, plan):
    with schema_context("alpha"):
        other_plan = make_plan()
        inactive = make_product(active=False)
        inactive_plan = make_plan(inactive)
    base = {"product": plan.product_id, "plan": plan.pk}
    cases = [
        ({"plan": plan.pk}, "product"),
        ({"product": plan.product_id}, "plan"),
        ({**base, "plan": other_plan.pk}, "plan"),
        ({"product": inactive.pk, "plan": inactive_plan.pk}, "product"),
        ({**base, "expires_at": "2000-01-01T00:00:00Z"}, "expires_at"),
        ({**base, "expires_at": "tomorrow"}, "expires_at"),
        ({**base, "metadata": ["not", "an", "object"]}, "metadata"),
        ({**base, "metadata": {"blob": "x" * 20_000}}, "metadata"),
        ({**base, "status": "deleted"}, "status"),
        ({**base, "key": "AAAAA-AAAAA-AAAAA-AAAAA-AAAAA"}, "key"),
        ({**base, "customer": 10**12}, "customer"),
        ({**base, "user": "me"}, "user"),
        ({**base, "colour": "blue"}, "colour"),
    ]
    for body, field in cases:
        assert_invalid(post(provisioning, "/v1/licenses", body), field)
    with schema_context("alpha"):
        assert not License.objects.exists()


def test_a_licence_cannot_point_at_another_tenants_objects(provisioning, plan):
    base = {"product": plan.product_id, "plan": plan.pk}
    for field, kind in [
        ("product", "products"),
        ("plan", "plans"),
        ("customer", "customers"),
        ("user", "users"),
    ]:
        foreign = only_in("beta", kind, absent_from="alpha")
        details = assert_invalid(
            post(provisioning, "/v1/licenses", {**base, field: foreign.pk}), field
        )
        assert "does not exist" in details[field][0]


def test_changing_a_licence(provisioning, plan):
    with schema_context("alpha"):
        license = make_license(plan)
        customer, user = make_customer(), make_user()
    path = f"/v1/licenses/{license.pk}"
    new_expiry = (timezone.now() + timedelta(days=400)).replace(microsecond=0)
    response = patch(
        provisioning,
        path,
        {
            "customer": customer.pk,
            "user": user.pk,
            "expires_at": new_expiry.isoformat(),
            "metadata": {"seats": 9},
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["customer"], body["user"], body["metadata"]) == (
        customer.pk,
        user.pk,
        {"seats": 9},
    )
    assert parse_datetime(body["expires_at"]) == new_expiry
    assert body["key"] == license.key
    assert patch(provisioning, path, {"user": None, "customer": None}).json()["user"] is None
    # The key, product and plan are fixed; unknown fields are refused.
    for field, value in [
        ("key", "X"),
        ("product", plan.product_id),
        ("plan", plan.pk),
        ("id", 5),
        ("x", 1),
    ]:
        assert_invalid(patch(provisioning, path, {field: value}), field)
    assert_invalid(patch(provisioning, path, {"expires_at": "2000-01-01T00:00:00Z"}), "expires_at")
    # Suspend, reactivate, revoke; revoked is final.
    assert patch(provisioning, path, {"status": "suspended"}).json()["status"] == "suspended"
    assert patch(provisioning, path, {"status": "active"}).json()["status"] == "active"
    assert patch(provisioning, path, {"status": "revoked"}).json()["status"] == "revoked"
    assert_invalid(patch(provisioning, path, {"status": "active"}), "status")


def test_expired_is_derived(provisioning, plan):
    with schema_context("alpha"):
        license = make_license(plan, starts_at=timezone.now() - timedelta(days=40))
    body = provisioning.get(f"/v1/licenses/{license.pk}").json()
    assert body["status"] == "active" and body["expired"] is True


# --- Pagination and filters


def follow_all(client, path):
    """Every page of a list, following `next`; returns the pages' id lists."""
    pages = []
    while path:
        response = client.get(path)
        assert response.status_code == 200, response.content
        body = response.json()
        pages.append([item["id"] for item in body["results"]])
        if body["next"]:
            parts = urlsplit(body["next"])
            assert parts.hostname == "alpha.localhost"
            path = f"{parts.path}?{parts.query}"
        else:
            path = None
    return pages


def test_pagination_across_pages(api_client, plan):
    client = api_client("alpha", [P.VIEW_LICENSES])
    with schema_context("alpha"):
        ids = [make_license(plan).pk for _ in range(7)]
    pages = follow_all(client, "/v1/licenses?limit=3")
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [i for page in pages for i in page] == sorted(ids)
    # and back again
    last = client.get("/v1/licenses?limit=3").json()
    second = client.get(last["next"].split("alpha.localhost", 1)[1]).json()
    back = client.get(second["previous"].split("alpha.localhost", 1)[1]).json()
    assert [i["id"] for i in back["results"]] == pages[0]


def test_a_page_of_every_list(api_client):
    client = api_client("alpha", [P.VIEW_USERS, P.VIEW_PRODUCTS, P.VIEW_CUSTOMERS])
    with schema_context("alpha"):
        for _ in range(4):
            make_plan(make_product())
            make_customer()
            make_user()
    for path in ("/v1/users", "/v1/products", "/v1/plans", "/v1/customers"):
        pages = follow_all(client, f"{path}?limit=2")
        assert len(pages) >= 2 and all(len(page) <= 2 for page in pages), path
        flat = [i for page in pages for i in page]
        assert flat == sorted(set(flat)), path


def test_a_bad_cursor_or_limit(api_client):
    client = api_client("alpha", [P.VIEW_LICENSES])
    response = client.get("/v1/licenses?cursor=garbage")
    assert response.status_code == 404 and response.json() == {"error": "Not found"}
    for bad in ("abc", "0", "-1", "1.5"):  # a malformed page size is bad input, as in the schema
        response = client.get(f"/v1/licenses?limit={bad}")
        assert response.status_code == 400 and response.json()["error"] == "Invalid request"
    assert client.get("/v1/licenses?limit=100000").status_code == 200  # capped, not refused


def test_licence_filters(api_client, plan):
    client = api_client("alpha", [P.VIEW_LICENSES])
    with schema_context("alpha"):
        other_plan = make_plan()
        customer, user = make_customer(), make_user()
        a = make_license(plan, customer=customer)
        b = make_license(plan, user=user, status="suspended")
        c = make_license(other_plan, customer=customer, user=user, status="revoked")

    def ids(query):
        response = client.get(f"/v1/licenses?{query}")
        assert response.status_code == 200, response.content
        return sorted(item["id"] for item in response.json()["results"])

    assert ids("status=active") == [a.pk]
    assert ids("status=suspended") == [b.pk]
    assert ids(f"product={plan.product_id}") == [a.pk, b.pk]
    assert ids(f"customer={customer.pk}") == [a.pk, c.pk]
    assert ids(f"user={user.pk}") == [b.pk, c.pk]
    assert ids(f"customer={customer.pk}&user={user.pk}") == [c.pk]
    assert ids(f"product={plan.product_id}&status=revoked") == []
    assert ids("product=999999999") == []


def test_expired_filter_is_independent_of_the_status(api_client, plan):
    client = api_client("alpha", [P.VIEW_LICENSES])
    with schema_context("alpha"):
        current, perpetual, lapsed, lapsed_suspended = (
            make_license(plan),
            make_license(plan),
            make_license(plan),
            make_license(plan, status="suspended"),
        )
        set_license_dates(current, starts_in_days=-1, expires_in_days=1)
        set_license_dates(perpetual, starts_in_days=-1, expires_in_days=None)
        set_license_dates(lapsed, starts_in_days=-10, expires_in_days=-1)
        set_license_dates(lapsed_suspended, starts_in_days=-10, expires_in_days=-1)

    def ids(query):
        response = client.get(f"/v1/licenses?product={plan.product_id}&{query}")
        assert response.status_code == 200, response.content
        return sorted(item["id"] for item in response.json()["results"])

    assert ids("expired=true") == sorted([lapsed.pk, lapsed_suspended.pk])
    assert ids("expired=false") == sorted([current.pk, perpetual.pk])
    # `status=active` alone still lists an active licence past its expiry (documented).
    assert ids("status=active") == sorted([current.pk, perpetual.pk, lapsed.pk])
    assert ids("status=active&expired=false") == sorted([current.pk, perpetual.pk])


@pytest.mark.parametrize(
    "query",
    [
        "status=expired",
        "expired=maybe",
        "product=abc",
        "product=0",
        "customer=-1",
        "user=1.5",
        f"user={2**70}",
    ],
)
def test_bad_filter_values_are_invalid(api_client, query):
    client = api_client("alpha", [P.VIEW_LICENSES])
    details = assert_invalid(client.get(f"/v1/licenses?{query}"))
    assert query.split("=")[0] in details


def test_plan_filter(api_client, plan):
    client = api_client("alpha", [P.VIEW_PRODUCTS])
    with schema_context("alpha"):
        make_plan()
        assert Plan.objects.count() == 2
    found = client.get(f"/v1/plans?product={plan.product_id}").json()["results"]
    assert [p["id"] for p in found] == [plan.pk]
    assert_invalid(client.get("/v1/plans?product=x"), "product")
