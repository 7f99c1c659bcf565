"""Values of another JSON type than the description says are refused, not converted."""

import pytest

from tokens.catalogue import Permission as P

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor(api_client):
    return api_client("alpha", [P.EDIT_PRODUCTS, P.VIEW_PRODUCTS, P.CREATE_GROUPS, P.CREATE_USERS])


@pytest.mark.parametrize(
    "path, body, field, message",
    [
        ("/v1/products", {"code": "strict-1", "name": 0}, "name", "Must be a string."),
        (
            "/v1/products",
            {"code": "strict-2", "name": "N", "active": 0},
            "active",
            "Must be true or false.",
        ),
        (
            "/v1/products",
            {"code": "strict-3", "name": "N", "active": "true"},
            "active",
            "Must be true or false.",
        ),
        (
            "/v1/groups",
            {"name": "g", "max_licenses_per_member": "3"},
            "max_licenses_per_member",
            "Must be a whole number.",
        ),
        (
            "/v1/groups",
            {"name": "g", "max_licenses_per_member": True},
            "max_licenses_per_member",
            "Must be a whole number.",
        ),
        ("/v1/groups", {"name": "g", "members": "1"}, "members", "Must be a list."),
        (
            "/v1/groups",
            {"name": "g", "members": ["1"]},
            "members",
            "Each item: Must be a whole number.",
        ),
        ("/v1/users", {"username": 12345}, "username", "Must be a string."),
    ],
)
def test_wrong_json_type_is_400_with_the_reason(editor, path, body, field, message):
    response = editor.post(path, body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json() == {"error": "Invalid request", "details": {field: [message]}}


def test_plans_refuse_numbers_for_entitlements_and_ids_as_text(editor):
    product = editor.post(
        "/v1/products", {"code": "strict-p", "name": "P"}, content_type="application/json"
    )
    assert product.status_code == 201
    product_id = product.json()["id"]
    response = editor.post(
        "/v1/plans",
        {"product": str(product_id), "code": "std", "name": "S", "entitlements": [1]},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["details"] == {
        "product": ["Must be a whole number."],
        "entitlements": ["Each item: Must be a string."],
    }


def test_null_is_left_to_the_field(editor):
    response = editor.post(
        "/v1/products",
        {"code": "strict-n", "name": "N", "description": None},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["details"] == {"description": ["This field may not be null."]}
