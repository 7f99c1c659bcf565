"""Bad input never causes a 500: values PostgreSQL or Python cannot hold answer 400 with the
contract's body."""

import base64
from urllib.parse import urlencode

import pytest
from django_tenants.utils import schema_context

from tests.helpers import assert_invalid
from tests.licensing.factories import make_plan, patch, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor(api_client):
    return api_client("alpha", ["edit_licenses", "view_licenses", "edit_products", "view_products"])


def test_nul_in_metadata_is_invalid(editor):
    with schema_context("alpha"):
        plan = make_plan()
    for metadata in ({"note": "a\u0000b"}, {"a\u0000": 1}, {"deep": [{"x": "\u0000"}]}):
        body = {"product": plan.product_id, "plan": plan.pk, "metadata": metadata}
        assert_invalid(post(editor, "/v1/licenses", body), "metadata")
    created = post(editor, "/v1/licenses", {"product": plan.product_id, "plan": plan.pk})
    assert created.status_code == 201
    changed = patch(editor, f"/v1/licenses/{created.json()['id']}", {"metadata": {"n": "\u0000"}})
    assert_invalid(changed, "metadata")


@pytest.mark.parametrize("position", ["abc", "1e9", "-", "1.5"])
def test_a_cursor_with_a_bad_position_is_invalid(editor, position):
    cursor = base64.b64encode(urlencode({"p": position}).encode()).decode()
    response = editor.get(f"/v1/licenses?{urlencode({'cursor': cursor})}")
    assert response.status_code in (400, 404), response.content
    assert response.json()["error"] in ("Invalid request", "Not found")


def test_expiry_past_year_9999_is_invalid(editor):
    with schema_context("alpha"):
        plan = make_plan(duration_days=3650)
    body = {"product": plan.product_id, "plan": plan.pk, "starts_at": "9995-01-01T00:00:00Z"}
    assert_invalid(post(editor, "/v1/licenses", body), "expires_at")


@pytest.mark.parametrize("days", [2**31, 10**7, 2**63])
def test_an_overflowing_duration_is_invalid(editor, days):
    with schema_context("alpha"):
        plan = make_plan()
    response = post(
        editor,
        "/v1/plans",
        {"product": plan.product_id, "code": f"long-{days}", "name": "Long", "duration_days": days},
    )
    assert_invalid(response, "duration_days")
    changed = patch(editor, f"/v1/plans/{plan.pk}", {"duration_days": days})
    assert_invalid(changed, "duration_days")
