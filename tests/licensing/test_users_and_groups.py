"""Users and licensing groups over the API: no escalation, strict input, groups grant nothing."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group as AdminGroup
from django.contrib.auth.models import Permission as AdminPermission
from django_tenants.utils import schema_context

from licensing.models import Group
from tests.helpers import assert_invalid
from tests.licensing.factories import (
    make_group,
    make_license,
    make_user,
    only_in,
    patch,
    post,
)
from tokens.catalogue import Permission as P

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def editor(api_client):
    return api_client("alpha", [P.VIEW_USERS, P.CREATE_USERS, P.EDIT_USERS, P.DELETE_USERS])


@pytest.fixture
def regular_user(tenant_alpha):
    with schema_context("alpha"):
        return make_user(email="someone@example.com")


# --- No escalation through a user edit


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("is_staff", True),
        ("is_superuser", True),
        ("password", "Pwned-password-2026!"),
        ("password", "pbkdf2_sha256$1000000$salt$hash"),
        ("user_permissions", [1]),
        ("groups", [1]),
    ],
)
def test_a_user_edit_cannot_grant_rights(editor, regular_user, field, value):
    with schema_context("alpha"):
        group = AdminGroup.objects.create(name="Admins")
        group.permissions.set(AdminPermission.objects.all()[:5])
    if field == "groups":
        value = [group.pk]
    response = patch(editor, f"/v1/users/{regular_user.pk}", {"first_name": "X", field: value})
    details = assert_invalid(response, field)
    assert "admin" in details[field][0]
    with schema_context("alpha"):
        user = User.objects.get(pk=regular_user.pk)
        assert not user.is_staff and not user.is_superuser
        assert not user.has_usable_password()
        assert user.first_name == ""  # nothing of a refused request is applied
        assert not user.groups.exists() and not user.user_permissions.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"nickname": "x"},
        {"id": 99},
        {"date_joined": "2020-01-01T00:00:00Z"},
        {"last_login": "2020-01-01T00:00:00Z"},
        {"licensing_groups": [1]},
    ],
)
def test_unknown_and_read_only_user_fields_are_refused(editor, regular_user, body):
    field = next(iter(body))
    assert_invalid(patch(editor, f"/v1/users/{regular_user.pk}", body), field)


def test_creating_a_user_never_makes_an_administrator(editor):
    for field, value in [("is_staff", True), ("is_superuser", True), ("password", "x-Y-z-123456")]:
        response = post(editor, "/v1/users", {"username": f"eve-{field}", field: value})
        assert_invalid(response, field)
        with schema_context("alpha"):
            assert not User.objects.filter(username=f"eve-{field}").exists()
    response = post(editor, "/v1/users", {"username": "new.user", "email": "new@example.com"})
    assert response.status_code == 201
    body = response.json()
    assert body["is_staff"] is False
    with schema_context("alpha"):
        user = User.objects.get(pk=body["id"])
        assert not user.is_staff and not user.is_superuser
        assert not user.has_usable_password()


def test_user_representation_has_no_password(editor, regular_user):
    with schema_context("alpha"):
        User.objects.filter(pk=regular_user.pk).update(password="pbkdf2_sha256$1$salt$hash")
    for response in (editor.get("/v1/users"), editor.get(f"/v1/users/{regular_user.pk}")):
        text = response.content.decode()
        assert "password" not in text and "pbkdf2" not in text
    body = editor.get(f"/v1/users/{regular_user.pk}").json()
    assert set(body) == {
        "id",
        "username",
        "email",
        "first_name",
        "last_name",
        "is_active",
        "is_staff",
        "date_joined",
        "last_login",
        "licensing_groups",
    }


def test_administrators_are_managed_in_the_admin_only(editor):
    with schema_context("alpha"):
        admin = User.objects.get(username="alpha-admin")
    response = patch(editor, f"/v1/users/{admin.pk}", {"is_active": False})
    assert response.status_code == 403
    assert response.json() == {"error": "Access denied"}
    response = editor.delete(f"/v1/users/{admin.pk}")
    assert response.status_code == 403
    with schema_context("alpha"):
        admin.refresh_from_db()
        assert admin.is_active and admin.is_superuser


def test_editing_and_deactivating_a_user(editor, regular_user):
    response = patch(
        editor,
        f"/v1/users/{regular_user.pk}",
        {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"},
    )
    assert response.status_code == 200
    assert response.json()["first_name"] == "Ada"
    response = patch(editor, f"/v1/users/{regular_user.pk}", {"is_active": False})
    assert response.json()["is_active"] is False
    assert_invalid(
        patch(editor, f"/v1/users/{regular_user.pk}", {"email": "not-an-email"}), "email"
    )
    assert_invalid(
        patch(editor, f"/v1/users/{regular_user.pk}", {"username": "bad name!"}), "username"
    )


def test_usernames_are_unique(editor, regular_user):
    assert_invalid(post(editor, "/v1/users", {"username": regular_user.username}), "username")
    assert_invalid(post(editor, "/v1/users", {}), "username")


def test_deleting_a_user_keeps_their_licences(editor, regular_user):
    with schema_context("alpha"):
        license = make_license(user=regular_user)
    assert editor.delete(f"/v1/users/{regular_user.pk}").status_code == 204
    with schema_context("alpha"):
        license.refresh_from_db()
        assert license.user_id is None


def test_user_filters(editor, regular_user):
    response = editor.get(f"/v1/users?username={regular_user.username}")
    assert [u["id"] for u in response.json()["results"]] == [regular_user.pk]
    assert_invalid(editor.get("/v1/users?is_active=maybe"), "is_active")


# --- Licensing groups


@pytest.fixture
def group_admin(api_client):
    return api_client("alpha", [P.VIEW_USERS, P.CREATE_GROUPS, P.EDIT_GROUPS, P.DELETE_GROUPS])


def test_group_lifecycle(group_admin, regular_user):
    with schema_context("alpha"):
        second = make_user()
    response = post(
        group_admin,
        "/v1/groups",
        {"name": "Designers", "description": "Design team", "members": [regular_user.pk]},
    )
    assert response.status_code == 201
    group = response.json()
    assert group["members"] == [regular_user.pk]
    assert group["max_licenses_per_member"] is None

    response = patch(
        group_admin,
        f"/v1/groups/{group['id']}",
        {"members": [regular_user.pk, second.pk], "max_licenses_per_member": 2},
    )
    assert response.status_code == 200
    assert sorted(response.json()["members"]) == sorted([regular_user.pk, second.pk])
    assert response.json()["max_licenses_per_member"] == 2

    user = group_admin.get(f"/v1/users/{second.pk}").json()
    assert user["licensing_groups"] == [group["id"]]
    listed = group_admin.get(f"/v1/groups?member={second.pk}").json()["results"]
    assert [g["id"] for g in listed] == [group["id"]]

    assert group_admin.delete(f"/v1/groups/{group['id']}").status_code == 204
    with schema_context("alpha"):
        assert not Group.objects.filter(pk=group["id"]).exists()
        assert User.objects.filter(pk=second.pk).exists()


def test_group_input_errors(group_admin, regular_user):
    foreign_user = only_in("beta", "users", absent_from="alpha")
    assert_invalid(
        post(group_admin, "/v1/groups", {"name": "G", "members": [foreign_user.pk]}), "members"
    )
    assert_invalid(post(group_admin, "/v1/groups", {"name": "G", "members": "1"}), "members")
    assert_invalid(post(group_admin, "/v1/groups", {"description": "no name"}), "name")
    assert_invalid(
        post(group_admin, "/v1/groups", {"name": "G", "max_licenses_per_member": -1}),
        "max_licenses_per_member",
    )
    assert_invalid(
        post(group_admin, "/v1/groups", {"name": "G", "permissions": [1]}), "permissions"
    )
    with schema_context("alpha"):
        make_group(name="Taken")
    assert_invalid(post(group_admin, "/v1/groups", {"name": "Taken"}), "name")


def test_group_membership_grants_no_admin_rights(group_admin, alpha_client, admin_password):
    with schema_context("alpha"):
        member = User.objects.create_user("member", password=admin_password)
    response = post(group_admin, "/v1/groups", {"name": "Power users", "members": [member.pk]})
    assert response.status_code == 201
    with schema_context("alpha"):
        member = User.objects.get(pk=member.pk)
        assert not member.is_staff
        assert member.get_all_permissions() == set()
        assert not member.groups.exists()
    assert alpha_client.login(username="member", password=admin_password)
    page = alpha_client.get("/admin/")
    assert page.status_code == 302 and "/admin/login/" in page["Location"]


def test_group_limit_on_active_licences(api_client, regular_user):
    client = api_client("alpha", [P.EDIT_LICENSES, P.EDIT_GROUPS])
    with schema_context("alpha"):
        group = make_group(max_licenses_per_member=1, members=[regular_user.pk])
        first = make_license(user=regular_user)
        plan = first.plan
    body = {"product": plan.product_id, "plan": plan.pk, "user": regular_user.pk}
    details = assert_invalid(post(client, "/v1/licenses", body), "user")
    assert "1 active licence" in details["user"][0]
    # Suspending the first frees the place; reactivating it is then refused in turn.
    assert patch(client, f"/v1/licenses/{first.pk}", {"status": "suspended"}).status_code == 200
    second = post(client, "/v1/licenses", body)
    assert second.status_code == 201
    assert_invalid(patch(client, f"/v1/licenses/{first.pk}", {"status": "active"}), "user")
    # Raising the limit allows it.
    assert (
        patch(client, f"/v1/groups/{group.pk}", {"max_licenses_per_member": 2}).status_code == 200
    )
    assert patch(client, f"/v1/licenses/{first.pk}", {"status": "active"}).status_code == 200
