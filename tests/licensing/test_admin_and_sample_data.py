"""The tenant administrator's licensing pages, and the demo's sample data."""

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from licensing.models import Customer, License, LicenseValidation, Plan, Product
from licensing.sample_data import load_sample_data
from tests.licensing.factories import make_customer, make_group, make_license, make_plan, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows(tenant_alpha):
    with schema_context("alpha"):
        plan = make_plan(entitlements=["export"])
        customer = make_customer(name="Acme Findable")
        user = make_user()
        license = make_license(plan, customer=customer, user=user)
        make_group(name="Team Findable", members=[user.pk])
        LicenseValidation.objects.create(license=license, code="VALID", client_address="192.0.2.1")
    return {"plan": plan, "customer": customer, "user": user, "license": license}


@pytest.mark.parametrize(
    "path",
    [
        "/admin/licensing/",
        "/admin/licensing/group/",
        "/admin/licensing/group/?q=Findable",
        "/admin/licensing/product/",
        "/admin/licensing/product/?active__exact=1",
        "/admin/licensing/plan/",
        "/admin/licensing/customer/?q=Acme",
        "/admin/licensing/license/",
        "/admin/licensing/license/?status__exact=active&expiry=current",
        "/admin/licensing/license/?expiry=expired",
        "/admin/licensing/license/?q=Acme",
        "/admin/licensing/license/add/",
        "/admin/licensing/licensevalidation/",
    ],
)
def test_admin_pages_answer(admin_client, rows, path):
    response = admin_client.get(path)
    assert response.status_code == 200, path


def test_admin_change_pages(admin_client, rows):
    page = admin_client.get(f"/admin/licensing/license/{rows['license'].pk}/change/")
    assert page.status_code == 200
    assert rows["license"].key in page.content.decode()
    for model, obj in [("product", rows["plan"].product), ("plan", rows["plan"])]:
        assert admin_client.get(f"/admin/licensing/{model}/{obj.pk}/change/").status_code == 200
    page = admin_client.get(f"/admin/licensing/customer/{rows['customer'].pk}/change/")
    assert rows["license"].key in page.content.decode()  # the customer's licences


def test_admin_search_finds_a_licence_by_key(admin_client, rows):
    page = admin_client.get(f"/admin/licensing/license/?q={rows['license'].key}").content.decode()
    assert "1 licence" in page or "1 result" in page


def test_adding_a_licence_in_the_admin_generates_its_key(admin_client, rows):
    plan = rows["plan"]
    now = timezone.now()
    response = admin_client.post(
        "/admin/licensing/license/add/",
        {
            "product": plan.product_id,
            "plan": plan.pk,
            "status": "active",
            "customer": rows["customer"].pk,
            "user": "",
            "starts_at_0": now.strftime("%Y-%m-%d"),
            "starts_at_1": now.strftime("%H:%M:%S"),
            "expires_at_0": "",
            "expires_at_1": "",
            "metadata": "{}",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    with schema_context("alpha"):
        license = License.objects.exclude(pk=rows["license"].pk).get()
    assert re.fullmatch(r"([0-9A-Z]{5}-){4}[0-9A-Z]{5}", license.key)
    assert license.expires_at - license.starts_at == timedelta(days=plan.duration_days)


def test_the_admin_shows_rule_errors_beside_the_form(admin_client, rows):
    other_plan = None
    with schema_context("alpha"):
        other_plan = make_plan()
    now = timezone.now()
    response = admin_client.post(
        "/admin/licensing/license/add/",
        {
            "product": rows["plan"].product_id,
            "plan": other_plan.pk,
            "status": "active",
            "starts_at_0": now.strftime("%Y-%m-%d"),
            "starts_at_1": now.strftime("%H:%M:%S"),
            "metadata": "{}",
        },
    )
    assert response.status_code == 200
    assert "This plan belongs to another product." in response.content.decode()


def test_entitlements_are_typed_as_a_list(admin_client, rows):
    plan = rows["plan"]
    page = admin_client.get(f"/admin/licensing/plan/{plan.pk}/change/").content.decode()
    assert 'value="export"' in page
    form = {
        "product": plan.product_id,
        "code": plan.code,
        "name": plan.name,
        "duration_days": "",
        "max_activations": "",
        "heartbeat_grace_seconds": 120,  # the form shows the defaults
        "revive_seconds": 86400,
        "entitlements": "export, sync ,export,  beta",
    }
    response = admin_client.post(f"/admin/licensing/plan/{plan.pk}/change/", form)
    assert response.status_code == 302
    with schema_context("alpha"):
        plan.refresh_from_db()
    assert plan.entitlements == ["export", "sync", "beta"]
    assert plan.duration_days is None
    form["entitlements"] = "ok, not ok"
    response = admin_client.post(f"/admin/licensing/plan/{plan.pk}/change/", form)
    assert response.status_code == 200
    assert "Invalid feature code" in response.content.decode()


def test_revoking_from_the_admin_is_final(admin_client, rows):
    license = rows["license"]
    url = "/admin/licensing/license/"
    admin_client.post(url, {"action": "revoke", "_selected_action": [license.pk]})
    admin_client.post(url, {"action": "reactivate", "_selected_action": [license.pk]})
    with schema_context("alpha"):
        license.refresh_from_db()
    assert license.status == "revoked"


def test_validation_records_are_read_only(admin_client, rows):
    with schema_context("alpha"):
        record = LicenseValidation.objects.get()
    assert admin_client.get("/admin/licensing/licensevalidation/add/").status_code == 403
    page = admin_client.get(f"/admin/licensing/licensevalidation/{record.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()


# --- Sample data for the demo


def test_sample_data_is_added_once_and_validates(tenant_alpha, alpha_client):
    with schema_context("alpha"):
        first = load_sample_data(tenant_alpha)
        counts = (Product.objects.count(), Plan.objects.count(), Customer.objects.count())
        licences = License.objects.count()
        second = load_sample_data(tenant_alpha)
        assert (Product.objects.count(), Plan.objects.count(), Customer.objects.count()) == counts
        assert License.objects.count() == licences
        statuses = set(License.objects.values_list("status", flat=True))
    assert counts == (2, 4, 3) and licences >= 4
    assert statuses == {"active", "suspended", "revoked"}
    assert first[0].startswith("Sample data added")
    assert second[0].startswith("Sample data (already there)")

    curl = next(line.strip() for line in first if "/v1/licenses/validate" in line)
    assert curl.startswith("curl -s --resolve alpha.localhost:8000:127.0.0.1 ")
    assert curl.endswith("http://alpha.localhost:8000/v1/licenses/validate")
    body = json.loads(re.search(r"-d '([^']*)'", curl).group(1))
    assert body.keys() == {"key"}
    # The printed example really validates.
    response = alpha_client.post("/v1/licenses/validate", body, content_type="application/json")
    assert response.json()["code"] == "VALID"
    assert any("/v1/licenses" in line and "Bearer" in line for line in first)
    assert [line for line in second if "validate" in line] == [
        line for line in first if "validate" in line
    ]


def test_sample_data_seeds_machines_and_prints_a_working_activation(tenant_alpha, alpha_client):
    from licensing.models import Machine

    with schema_context("alpha"):
        lines = load_sample_data(tenant_alpha)
        machines = Machine.objects.count()
        load_sample_data(tenant_alpha)
        assert Machine.objects.count() == machines
    assert machines == 4
    calls = {}
    for line in lines:
        found = re.search(r"-d '([^']*)' \S+/v1/licenses/(\w+)$", line.strip())
        if found and "fingerprint" in found.group(1):
            calls[found.group(2)] = json.loads(found.group(1))
    assert list(calls) == ["activate", "validate", "heartbeat", "deactivate"]
    statuses = []
    for action, body in calls.items():
        response = alpha_client.post(
            f"/v1/licenses/{action}", body, content_type="application/json"
        )
        statuses.append(response.status_code)
        if action == "validate":
            assert response.json()["code"] == "VALID"
    assert statuses == [201, 200, 200, 204]
