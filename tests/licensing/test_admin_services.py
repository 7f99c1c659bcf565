"""The licensing admin saves through licensing.services, the API's write path (issue 11, item 10),
and a plan cannot move to another product, neither in the admin nor through the API."""

import pytest
from django.contrib.auth import get_user_model
from django_tenants.utils import schema_context

from licensing import services
from licensing.models import Customer, Group, Plan, Product
from tests.licensing.factories import make_license, make_plan, make_product, patch
from tokens.catalogue import Permission

pytestmark = pytest.mark.django_db


@pytest.fixture
def calls(monkeypatch):
    """Records each call of a licensing service (the real function still runs)."""
    seen = []
    for name in (
        "create_product",
        "update_product",
        "create_plan",
        "update_plan",
        "create_group",
        "update_group",
        "delete_group",
        "create_customer",
        "update_customer",
    ):
        real = getattr(services, name)

        def spy(*args, _name=name, _real=real, **kwargs):
            seen.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(services, name, spy)
    return seen


def inline(prefix="plans", total=0, initial=0):
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def test_product_and_its_inline_plans_are_saved_through_the_services(admin_client, calls):
    response = admin_client.post(
        "/admin/licensing/product/add/",
        {
            "code": "atlas",
            "name": "Atlas",
            "description": "",
            "active": "on",
            **inline(total=1),
            "plans-0-code": "pro",
            "plans-0-name": "Pro",
            "plans-0-duration_days": "365",
            "plans-0-max_activations": "",
            "plans-0-entitlements": "export, export, sync",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert calls == ["create_product", "create_plan"]
    with schema_context("alpha"):
        product = Product.objects.get(code="atlas")
        plan = product.plans.get()
    assert (plan.code, plan.entitlements) == ("pro", ["export", "sync"])

    calls.clear()
    response = admin_client.post(
        f"/admin/licensing/product/{product.pk}/change/",
        {
            "code": "atlas",
            "name": "Atlas 2",
            "description": "",
            "active": "on",
            **inline(total=1, initial=1),
            "plans-0-id": str(plan.pk),
            "plans-0-product": str(product.pk),
            "plans-0-code": "pro",
            "plans-0-name": "Pro plus",
            "plans-0-duration_days": "365",
            "plans-0-max_activations": "",
            "plans-0-entitlements": "export, sync",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert calls == ["update_product", "update_plan"]
    with schema_context("alpha"):
        assert Product.objects.get(pk=product.pk).name == "Atlas 2"
        assert Plan.objects.get(pk=plan.pk).name == "Pro plus"


def test_groups_and_customers_are_saved_through_the_services(admin_client, calls):
    with schema_context("alpha"):
        member = get_user_model().objects.create_user("group-member")
    group = {"name": "Team", "description": "", "max_licenses_per_member": "2"}
    assert admin_client.post("/admin/licensing/group/add/", group).status_code == 302
    with schema_context("alpha"):
        stored = Group.objects.get(name="Team")
    response = admin_client.post(
        f"/admin/licensing/group/{stored.pk}/change/", {**group, "members": [member.pk]}
    )
    assert response.status_code == 302
    with schema_context("alpha"):
        assert list(stored.members.all()) == [member]
    response = admin_client.post(f"/admin/licensing/group/{stored.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    with schema_context("alpha"):
        assert not Group.objects.filter(pk=stored.pk).exists()

    customer = {"name": "Acme", "email": "", "external_id": "crm-1", "notes": ""}
    customer.update(inline("licenses"))
    assert admin_client.post("/admin/licensing/customer/add/", customer).status_code == 302
    with schema_context("alpha"):
        acme = Customer.objects.get(external_id="crm-1")
    customer["name"] = "Acme Ltd"
    response = admin_client.post(f"/admin/licensing/customer/{acme.pk}/change/", customer)
    assert response.status_code == 302
    assert calls == [
        "create_group",
        "update_group",
        "delete_group",
        "create_customer",
        "update_customer",
    ]
    with schema_context("alpha"):
        assert Customer.objects.get(pk=acme.pk).name == "Acme Ltd"


@pytest.fixture
def issued(tenant_alpha):
    with schema_context("alpha"):
        plan = make_plan()
        license = make_license(plan)
        other = make_product()
    return plan, license, other


def test_a_plan_cannot_move_to_another_product_in_the_admin(admin_client, issued, calls):
    plan, license, other = issued
    url = f"/admin/licensing/plan/{plan.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert 'name="product"' not in page  # shown read-only
    response = admin_client.post(
        url,
        {
            "product": str(other.pk),
            "code": plan.code,
            "name": "Renamed",
            "duration_days": "",
            "max_activations": "",
            "heartbeat_grace_seconds": 120,  # the machine rules' defaults, as the form shows them
            "revive_seconds": 86400,
            "entitlements": "",
        },
    )
    assert response.status_code == 302
    assert calls == ["update_plan"]
    with schema_context("alpha"):
        stored = Plan.objects.get(pk=plan.pk)
        license.refresh_from_db()
    assert (stored.product_id, stored.name) == (plan.product_id, "Renamed")
    assert license.product_id == stored.product_id


def test_a_plan_cannot_move_to_another_product_through_the_api(api_client, issued):
    plan, _, other = issued
    client = api_client("alpha", [Permission.EDIT_PRODUCTS, Permission.VIEW_PRODUCTS])
    response = patch(client, f"/v1/plans/{plan.pk}", {"product": other.pk})
    assert response.status_code == 400
    assert response.json()["details"] == {"product": ["A plan cannot move to another product."]}
    assert patch(client, f"/v1/plans/{plan.pk}", {"product": plan.product_id}).status_code == 200
    with schema_context("alpha"):
        assert Plan.objects.get(pk=plan.pk).product_id == plan.product_id
