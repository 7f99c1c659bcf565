"""The User Token admin after the outside review (issue 11): what an administrator may grant is
bounded by their own admin rights (item 4), a reload never creates or refreshes again and never
shows a secret twice (item 8), and the digest is no changelist filter (item 11)."""

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission as AuthPermission
from django.contrib.sessions.models import Session
from django.core.exceptions import PermissionDenied
from django_tenants.utils import schema_context

from tests.helpers import TENANTS, TenantClient
from tests.tokens.test_admin import (
    ADD_URL,
    CHANGELIST_URL,
    Page,
    add_data,
    assert_secret_absent,
    change_data,
    change_url,
    html,
    secret_on,
    secret_url,
    staff_client,
)
from tokens import hashing, services
from tokens.admin import SecretHandoff
from tokens.catalogue import Permission
from tokens.models import UserToken

pytestmark = pytest.mark.django_db

TOKEN_RIGHTS = ("add_usertoken", "change_usertoken", "view_usertoken")


@pytest.fixture
def owner(in_alpha):
    return get_user_model().objects.create_user("sync-robot", email="sync@alpha.example")


def grant(client, *perms: str):
    """Give the client's staff user Django permissions, e.g. "auth.delete_user"."""
    with schema_context("alpha"):
        user = get_user_model().objects.get(pk=client.session["_auth_user_id"])
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(
                AuthPermission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        return user


def refresh_url(token) -> str:
    return f"/admin/tokens/usertoken/{token.pk}/refresh/"


def stored(token) -> UserToken:
    with schema_context("alpha"):
        return UserToken.objects.get(pk=token.pk)


# --- Item 8: POST-redirect-GET


def session_rows() -> list[str]:
    with schema_context("alpha"):
        return list(Session.objects.values_list("session_data", flat=True))


def test_a_reload_after_add_neither_creates_again_nor_shows_the_secret(admin_client, owner):
    posted = admin_client.post(ADD_URL, add_data(owner))
    assert posted.status_code == 302
    location = posted["Location"]
    assert "no-store" in posted["Cache-Control"]
    between = session_rows()  # what the server stores between the POST and the GET
    pad_cookie = {k: v.value for k, v in admin_client.cookies.items() if k.startswith("user_token")}

    page = admin_client.get(location)
    secret = secret_on(page)
    assert uuid.UUID(secret).version == 4
    assert html(page).count(secret) == 1
    assert "no-store" in page["Cache-Control"]
    for row in between + session_rows():
        assert_secret_absent(secret, row)
    assert_secret_absent(secret, repr(pad_cookie))
    with schema_context("alpha"):
        token = UserToken.objects.get(digest=hashing.digest(secret))
        assert UserToken.objects.filter(owner=owner).count() == 1

    for _ in range(2):  # reloading the secret page
        again = admin_client.get(location)
        assert again.status_code == 302
        assert again["Location"] == change_url(token)
        assert_secret_absent(secret, html(again))
    later = admin_client.get(change_url(token))
    assert "shown only once" in html(later)
    assert_secret_absent(secret, html(later))
    with schema_context("alpha"):
        assert UserToken.objects.filter(owner=owner).count() == 1


def test_a_reload_after_refresh_neither_rotates_again_nor_shows_the_secret(
    admin_client, make_user_token
):
    token, old_secret = make_user_token("alpha", [Permission.VIEW_USERS])
    posted = admin_client.post(refresh_url(token))
    assert posted.status_code == 302
    assert posted["Location"] == secret_url(token)
    assert stored(token).generation == token.generation + 1

    page = admin_client.get(secret_url(token))
    secret = secret_on(page)
    assert secret != old_secret
    assert "stopped working now" in html(page)
    assert stored(token).digest == hashing.digest(secret)

    again = admin_client.get(secret_url(token))
    assert again.status_code == 302
    assert_secret_absent(secret, html(admin_client.get(again["Location"])))
    assert stored(token).generation == token.generation + 1
    assert stored(token).digest == hashing.digest(secret)


def test_the_secret_page_shows_nothing_to_another_session_or_after_a_while(
    admin_client, tenant_alpha, admin_password, owner, monkeypatch
):
    posted = admin_client.post(ADD_URL, add_data(owner))
    other = TenantClient(tenant_alpha, TENANTS["alpha"])  # the same administrator, elsewhere
    assert other.login(username="alpha-admin", password=admin_password)
    assert other.get(posted["Location"]).status_code == 302
    assert "user-token-value" not in html(admin_client.get(CHANGELIST_URL))
    assert admin_client.post(posted["Location"]).status_code == 405
    secret = secret_on(admin_client.get(posted["Location"]))  # still there for its own session
    assert uuid.UUID(secret)

    monkeypatch.setattr(SecretHandoff, "MAX_AGE", -1)
    late = admin_client.post(ADD_URL, add_data(owner, name="late"))
    assert admin_client.get(late["Location"]).status_code == 302


# --- Item 4: admin rights bound what a token may grant


def test_staff_chooses_only_themself_or_non_staff_owners(
    tenant_alpha, admin_password, owner, make_user_token
):
    client = staff_client(tenant_alpha, admin_password, *TOKEN_RIGHTS)
    with schema_context("alpha"):
        User = get_user_model()
        other_staff = User.objects.create_user("other-staff", is_staff=True)
        me = User.objects.get(pk=client.session["_auth_user_id"])
        superuser = User.objects.get(username="alpha-admin")
    options = {o["value"] for o in Page(html(client.get(ADD_URL))).find_all("option") if o["value"]}
    assert str(owner.pk) in options and str(me.pk) in options
    assert str(other_staff.pk) not in options and str(superuser.pk) not in options

    for victim in (other_staff, superuser):
        refused = client.post(ADD_URL, add_data(victim, permissions=["view_licenses"]))
        assert refused.status_code == 200
        assert "Select a valid choice" in html(refused)
    with schema_context("alpha"):
        assert not UserToken.objects.filter(owner__in=[other_staff, superuser]).exists()

    grant(client, "licensing.view_license")
    assert client.post(ADD_URL, add_data(me, permissions=["view_licenses"])).status_code == 302
    assert client.post(ADD_URL, add_data(owner, permissions=["view_licenses"])).status_code == 302


def test_staff_cannot_refresh_another_administrators_token(
    tenant_alpha, admin_password, make_user_token
):
    client = staff_client(tenant_alpha, admin_password, *TOKEN_RIGHTS)
    grant(client, "licensing.view_license")
    with schema_context("alpha"):
        superuser = get_user_model().objects.get(username="alpha-admin")
    token, _ = make_user_token("alpha", [Permission.VIEW_LICENSES], owner=superuser)
    page = client.get(change_url(token))
    assert page.status_code == 200
    assert refresh_url(token) not in html(page)
    assert client.get(refresh_url(token)).status_code == 403
    assert client.post(refresh_url(token)).status_code == 403
    assert stored(token).generation == token.generation


def test_staff_cannot_mint_permissions_beyond_their_admin_rights(
    tenant_alpha, admin_password, owner, make_user_token
):
    client = staff_client(tenant_alpha, admin_password, *TOKEN_RIGHTS)
    refused = client.post(ADD_URL, add_data(owner, permissions=["view_users", "delete_users"]))
    assert refused.status_code == 200
    assert "lacks the rights to grant: Delete Users, View Users" in html(refused)
    with schema_context("alpha"):
        assert not UserToken.objects.filter(owner=owner).exists()

    # Refreshing a token hands its powers over: refused too, while the rights are missing.
    token, _ = make_user_token("alpha", [Permission.DELETE_USERS], owner=owner, name="cleanup")
    assert client.post(refresh_url(token)).status_code == 403
    assert stored(token).generation == token.generation
    # Widening a token in its change form is refused; what it held already stays editable.
    widened = client.post(
        change_url(token), change_data(token, permissions=["delete_users", "edit_users"])
    )
    assert widened.status_code == 200
    assert "lacks the rights to grant: Edit Users" in html(widened)
    assert stored(token).permissions == ["delete_users"]
    renamed = client.post(change_url(token), change_data(token, name="nightly cleanup"))
    assert renamed.status_code == 302
    assert stored(token).name == "nightly cleanup"

    grant(client, "auth.view_user", "auth.delete_user")
    minted = client.post(ADD_URL, add_data(owner, permissions=["view_users", "delete_users"]))
    assert minted.status_code == 302
    assert client.post(refresh_url(token)).status_code == 302


def test_the_rule_is_the_services(owner, in_alpha):
    User = get_user_model()
    staff = User.objects.create_user("rule-staff", is_staff=True)
    superuser = User.objects.get(username="alpha-admin")
    assert set(services.GRANTING_RIGHTS) == set(Permission)
    with pytest.raises(PermissionDenied):
        services.check_admin_grant(staff, owner=superuser, permissions=[])
    with pytest.raises(PermissionDenied):
        services.check_admin_grant(staff, owner=owner, permissions=["delete_users"])
    with pytest.raises(PermissionDenied):
        services.check_admin_change(staff, before=["view_users"], after=["delete_users"])
    services.check_admin_change(staff, before=["delete_users"], after=["delete_users"])
    services.check_admin_grant(staff, owner=staff, permissions=[])
    services.check_admin_grant(superuser, owner=staff, permissions=list(Permission.values))
    assert set(services.owners_manageable_by(staff)) == set(
        User.objects.filter(is_active=True, is_staff=False, is_superuser=False)
    ) | {staff}


# --- Item 11: the digest is not a changelist filter


def test_the_digest_cannot_be_filtered_or_searched(admin_client, make_user_token):
    token, secret = make_user_token("alpha", [Permission.VIEW_USERS], name="findme")
    digest = hashing.digest(secret)
    for query in (
        f"digest={digest}",
        f"digest__startswith={digest[:2]}",
        f"digest__exact={digest}",
        "key_id=k1",
    ):
        assert admin_client.get(f"{CHANGELIST_URL}?{query}").status_code == 400, query
    searched = admin_client.get(f"{CHANGELIST_URL}?q={digest}")
    assert searched.status_code == 200
    assert "findme" not in html(searched)
    assert "findme" in html(admin_client.get(f"{CHANGELIST_URL}?q=findme"))


def test_a_user_page_links_to_the_add_form_only_for_owners_the_staff_may_choose(
    tenant_alpha, admin_password, owner
):
    client = staff_client(tenant_alpha, admin_password, *TOKEN_RIGHTS)
    grant(client, "auth.view_user")
    with schema_context("alpha"):
        superuser = get_user_model().objects.get(username="alpha-admin")
    assert "user-token-add-link" in html(client.get(f"/admin/auth/user/{owner.pk}/change/"))
    assert "user-token-add-link" not in html(client.get(f"/admin/auth/user/{superuser.pk}/change/"))
