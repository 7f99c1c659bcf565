"""The admin's machines: the licence page's inline with Deactivate, the machines changelist, the
licence list's used/max activations, plan fields."""

import re

import pytest
from django_tenants.utils import schema_context

from licensing.models import Machine
from tests.licensing.factories import make_license, make_machine, make_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def licence_with_machines(tenant_alpha):
    with schema_context("alpha"):
        licence = make_license(make_plan(max_activations=3))
        active = make_machine(licence, fingerprint="fp-active-1", hostname="studio-mac")
        gone = make_machine(licence, fingerprint="fp-gone-2", hostname="old-pc")
        Machine.objects.filter(pk=gone.pk).update(deactivated_at=active.activated_at)
    return licence, active, gone


def csrf_token(page: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def test_the_licence_page_lists_its_machines_with_deactivate(admin_client, licence_with_machines):
    licence, active, gone = licence_with_machines
    page = admin_client.get(f"/admin/licensing/license/{licence.pk}/change/").content.decode()
    assert "fp-active-1" in page and "fp-gone-2" in page
    deactivate = f"/admin/licensing/machine/{active.pk}/deactivate/"
    assert f'formaction="{deactivate}"' in page
    assert f"/admin/licensing/machine/{gone.pk}/deactivate/" not in page  # already deactivated
    response = admin_client.post(deactivate, {"csrfmiddlewaretoken": csrf_token(page)})
    assert response.status_code == 302
    assert response["Location"] == f"/admin/licensing/license/{licence.pk}/change/"
    with schema_context("alpha"):
        stored = Machine.objects.get(pk=active.pk)
    assert stored.deactivated_at is not None and stored.deactivation_reason == "managed"


def test_deactivate_is_post_only(admin_client, licence_with_machines):
    _, active, _ = licence_with_machines
    assert admin_client.get(f"/admin/licensing/machine/{active.pk}/deactivate/").status_code == 405
    with schema_context("alpha"):
        assert Machine.objects.get(pk=active.pk).deactivated_at is None


def test_the_licence_list_shows_used_and_max(admin_client, licence_with_machines):
    page = admin_client.get("/admin/licensing/license/").content.decode()
    assert "1 / 3" in page


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ("q=studio", "fp-active-1", "fp-gone-2"),
        ("q=fp-gone", "fp-gone-2", "fp-active-1"),
        ("status=active", "fp-active-1", "fp-gone-2"),
        ("status=deactivated", "fp-gone-2", "fp-active-1"),
    ],
)
def test_the_machines_changelist(admin_client, licence_with_machines, query, shown, hidden):
    response = admin_client.get(f"/admin/licensing/machine/?{query}")
    assert response.status_code == 200
    page = response.content.decode()
    assert shown in page and hidden not in page


def test_the_changelist_action_deactivates(admin_client, licence_with_machines):
    _, active, _ = licence_with_machines
    page = admin_client.get("/admin/licensing/machine/").content.decode()
    response = admin_client.post(
        "/admin/licensing/machine/",
        {
            "csrfmiddlewaretoken": csrf_token(page),
            "action": "deactivate_selected",
            "_selected_action": [active.pk],
        },
    )
    assert response.status_code == 302
    with schema_context("alpha"):
        assert Machine.objects.get(pk=active.pk).deactivation_reason == "managed"


def test_machines_are_not_added_or_deleted_in_the_admin(admin_client, licence_with_machines):
    _, active, _ = licence_with_machines
    assert admin_client.get("/admin/licensing/machine/add/").status_code == 403
    assert admin_client.get(f"/admin/licensing/machine/{active.pk}/delete/").status_code == 403
    assert admin_client.get(f"/admin/licensing/machine/{active.pk}/change/").status_code == 200


def test_plan_page_edits_machine_rules(admin_client, tenant_alpha):
    with schema_context("alpha"):
        plan = make_plan()
        licence = make_license(plan)
        machine = make_machine(licence)
    url = f"/admin/licensing/plan/{plan.pk}/change/"
    page = admin_client.get(url).content.decode()
    for field in ("max_deactivations", "heartbeat_seconds", "heartbeat_grace_seconds"):
        assert f'name="{field}"' in page
    response = admin_client.post(
        url,
        {
            "csrfmiddlewaretoken": csrf_token(page),
            "product": plan.product_id,
            "code": plan.code,
            "name": plan.name,
            "duration_days": 30,
            "max_activations": "",
            "max_deactivations": 2,
            "heartbeat_seconds": 600,
            "heartbeat_grace_seconds": 60,
            "revive_seconds": 3600,
            "entitlements": "basic",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    with schema_context("alpha"):
        plan.refresh_from_db()
        machine.refresh_from_db()
    assert (plan.max_deactivations, plan.heartbeat_seconds, plan.revive_seconds) == (2, 600, 3600)
    assert machine.dies_at is not None  # rescheduled by the new heartbeat rules
