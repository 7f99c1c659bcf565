"""The tenant admin for User Tokens: the only place tokens are created (CONTRACT section 4).

Every test goes through real HTTP requests to alpha's admin and API, against alpha's schema.
"""

import logging
import uuid
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission as AuthPermission
from django.contrib.messages import get_messages
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from tests.helpers import ACCESS_DENIED, INVALID_TOKEN, TENANTS, TenantClient, exchange
from tokens import hashing, signals
from tokens.catalogue import PRESET_PERMISSIONS, Category, Permission, Preset
from tokens.models import UserToken

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/tokens/usertoken/add/"
CHANGELIST_URL = "/admin/tokens/usertoken/"


# --- Helpers


class Page(HTMLParser):
    """The elements of an HTML page: tag, attributes and (for some) their text."""

    def __init__(self, html: str):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.texts: dict[str, str] = {}
        self._open: list[tuple[str, str]] = []
        self.legends: list[str] = []
        self._in_legend = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = {name: value or "" for name, value in attrs}
        self.elements.append((tag, attrs))
        if "id" in attrs:
            self.texts[attrs["id"]] = ""
            self._open.append((tag, attrs["id"]))
        self._in_legend = tag == "legend"
        if self._in_legend:
            self.legends.append("")

    def handle_endtag(self, tag):
        if self._open and self._open[-1][0] == tag:
            self._open.pop()
        if tag == "legend":
            self._in_legend = False

    def handle_data(self, data):
        for _, element_id in self._open:
            self.texts[element_id] += data
        if self._in_legend:
            self.legends[-1] += data

    def find_all(self, tag, **attrs):
        return [
            a
            for t, a in self.elements
            if t == tag and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())
        ]


def html(response) -> str:
    return response.content.decode()


@pytest.fixture
def owner(in_alpha):
    return get_user_model().objects.create_user(
        "crm-robot", email="crm@alpha.example", first_name="CRM", last_name="Robot"
    )


@pytest.fixture
def api(tenant_alpha):
    """A client of alpha's API without credentials (no admin session either)."""
    return TenantClient(tenant_alpha, TENANTS["alpha"])


def bearer(api, access_token, path):
    return api.get(path, HTTP_AUTHORIZATION=f"Bearer {access_token}")


def add_data(owner, **overrides):
    data = {
        "name": "CRM sync",
        "user": str(owner.pk),
        "permissions": ["view_users", "view_customers", "edit_licenses"],
        "expires_at_0": "",
        "expires_at_1": "",
        "allowed_ips": "",
    }
    data.update(overrides)
    return data


def change_data(token, **overrides):
    data = {
        "name": token.name,
        "permissions": list(token.permissions),
        "expires_at_0": "",
        "expires_at_1": "",
        "allowed_ips": "\n".join(token.allowed_ips),
    }
    data.update(overrides)
    return data


def secret_on(response) -> str:
    values = Page(html(response)).texts
    assert "user-token-value" in values, "no #user-token-value on the page"
    return values["user-token-value"].strip()


def secret_url(token_or_id) -> str:
    return f"/admin/tokens/usertoken/{getattr(token_or_id, 'pk', token_or_id)}/secret/"


def shown_after_redirect(client, response):
    """POST-redirect-GET: the POST answers a redirect to the secret page; its GET shows it once."""
    assert response.status_code == 302, response.content[:2000]
    assert response["Location"].endswith("/secret/")
    assert "no-store" in response["Cache-Control"]
    assert "user-token-value" not in html(response)
    page = client.get(response["Location"])
    assert page.status_code == 200, page.content[:2000]
    return page


def create_via_admin(client, owner, **overrides):
    """Post the add form, follow the redirect; returns (secret page, secret, stored token)."""
    response = shown_after_redirect(client, client.post(ADD_URL, add_data(owner, **overrides)))
    secret = secret_on(response)
    with schema_context("alpha"):
        token = UserToken.objects.get(digest=hashing.digest(secret))
    return response, secret, token


def change_url(token):
    return f"/admin/tokens/usertoken/{token.pk}/change/"


def staff_client(tenant_alpha, admin_password, *codenames):
    """A logged-in alpha staff user holding only the given tokens model permissions."""
    with schema_context("alpha"):
        user = get_user_model().objects.create_user(
            f"staff-{uuid.uuid4().hex[:8]}", password=admin_password, is_staff=True
        )
        user.user_permissions.set(
            AuthPermission.objects.filter(content_type__app_label="tokens", codename__in=codenames)
        )
    client = TenantClient(tenant_alpha, TENANTS["alpha"])
    assert client.login(username=user.username, password=admin_password)
    return client


def assert_secret_absent(secret: str, text: str):
    assert secret not in text
    assert secret.replace("-", "") not in text


# --- The add form


def test_add_form_has_grouped_permission_checkboxes_and_presets(admin_client, owner):
    response = admin_client.get(ADD_URL)
    assert response.status_code == 200
    page = Page(html(response))

    boxes = page.find_all("input", type="checkbox", name="permissions")
    assert [b["value"] for b in boxes] == [p.value for p in Permission]
    assert len(boxes) == len(Permission) == 15  # the contract's 13 and the two of webhooks
    for category in Category:
        assert category.label in page.legends
    # Each group holds its category's boxes, in catalogue order.
    assert html(response).index(Category.USER_MANAGEMENT.label) < html(response).index(
        'value="view_products"'
    )

    for field in ("name", "user", "expires_at_0", "allowed_ips"):
        assert (
            page.find_all("input", name=field)
            or page.find_all("select", name=field)
            or (page.find_all("textarea", name=field))
        ), field

    presets = {b["data-preset"]: b for b in page.find_all("button") if "data-preset" in b}
    assert set(presets) == {p.value for p in Preset}
    for preset, codes in PRESET_PERMISSIONS.items():
        assert presets[preset.value]["data-permissions"].split() == [c.value for c in codes]
    for label in ("Read-only integration", "License provisioning", "User onboarding"):
        assert label in html(response)
    assert "Monitoring and analytics" in html(response)
    assert "POST /v1/licenses/validate" in html(response)
    assert page.find_all("script", src="/static/tokens/presets.js")
    assert page.find_all("script", src="/static/tokens/expiry.js")


def test_add_form_offers_only_active_users_of_this_tenant(admin_client, owner, admin_password):
    User = get_user_model()
    with schema_context("alpha"):
        User.objects.create_user("retired-robot", is_active=False)
    with schema_context("beta"):
        User.objects.create_user("beta-only-robot")
    content = html(admin_client.get(ADD_URL))
    assert "crm-robot (CRM Robot)" in content
    assert "retired-robot" not in content
    assert "beta-only-robot" not in content

    with schema_context("alpha"):
        retired = User.objects.get(username="retired-robot")
    response = admin_client.post(ADD_URL, add_data(owner, user=str(retired.pk)))
    assert response.status_code == 200
    assert "Select a valid choice" in html(response)
    assert "user-token-value" not in html(response)


def test_add_form_prefills_the_user_from_the_query(admin_client, owner):
    page = Page(html(admin_client.get(f"{ADD_URL}?user={owner.pk}")))
    selected = [o for o in page.find_all("option") if "selected" in o]
    assert [o["value"] for o in selected] == [str(owner.pk)]


# --- Creating a token


def test_creating_shows_the_secret_once_and_stores_only_its_digest(
    admin_client, owner, api, caplog
):
    caplog.set_level(logging.DEBUG)
    response, secret, token = create_via_admin(admin_client, owner)

    assert uuid.UUID(secret).version == 4
    assert html(response).count(secret) == 1
    assert "will not be shown again" in html(response)
    assert "no-store" in response["Cache-Control"]
    page = Page(html(response))
    assert page.find_all("a", href=change_url(token), id="user-token-change-link")
    assert page.find_all("button", **{"data-copy-target": "user-token-value"})

    with schema_context("alpha"):
        row = UserToken.objects.filter(pk=token.pk).values().get()
        session_rows = list(Session.objects.values_list("session_data", flat=True))
        for session in Session.objects.all():
            assert_secret_absent(secret, repr(session.get_decoded()))
    for value in row.values():
        assert_secret_absent(secret, str(value))
    assert row["digest"] == hashing.digest(secret)
    assert row["last_four"] == secret[-4:]
    assert row["owner_id"] == owner.pk
    assert row["name"] == "CRM sync"
    assert sorted(row["permissions"]) == ["edit_licenses", "view_customers", "view_users"]
    with schema_context("alpha"):
        assert token.created_by.username == "alpha-admin"
    for data in session_rows:
        assert_secret_absent(secret, data)
    assert not list(get_messages(response.wsgi_request))
    assert_secret_absent(secret, str(admin_client.cookies))

    exchanged = exchange(api, secret)
    assert exchanged.status_code == 200, exchanged.content
    me = bearer(api, exchanged.json()["access_token"], "/v1/auth/me")
    assert me.status_code == 200
    assert me.json()["permissions"] == ["edit_licenses", "view_customers", "view_users"]
    assert_secret_absent(secret, caplog.text)


def test_secret_never_appears_on_later_pages_or_in_history(admin_client, owner):
    _, secret, token = create_via_admin(admin_client, owner)

    change = admin_client.get(change_url(token))
    assert change.status_code == 200
    assert_secret_absent(secret, html(change))
    assert secret[-4:] in html(change)  # the display hint: last four characters only
    assert "user-token-value" not in html(change)

    history = admin_client.get(f"/admin/tokens/usertoken/{token.pk}/history/")
    assert history.status_code == 200
    assert_secret_absent(secret, html(history))
    assert_secret_absent(secret, html(admin_client.get(CHANGELIST_URL)))
    assert_secret_absent(secret, html(admin_client.get("/admin/")))

    with schema_context("alpha"):
        entries = list(LogEntry.objects.all())
    assert any(e.object_id == str(token.pk) and e.is_addition() for e in entries)
    for entry in entries:
        for text in (entry.object_repr, entry.change_message, entry.get_change_message()):
            assert_secret_absent(secret, text)


def test_add_form_validation_errors(admin_client, owner):
    cases = [
        ({"permissions": []}, "Tick at least one permission."),
        ({"permissions": ["view_users", "sudo"]}, "Select a valid choice"),
        ({"name": ""}, "This field is required."),
        ({"allowed_ips": "10.0.0.300/8"}, "is not an IPv4 or IPv6 address or CIDR network"),
        ({"allowed_ips": "not-a-network"}, "is not an IPv4 or IPv6 address or CIDR network"),
        ({"allowed_ips": "10.0.0.5/24"}, "has host bits set; did you mean 10.0.0.0/24?"),
        ({"allowed_ips": "2001:db8::1/32"}, "did you mean 2001:db8::/32?"),
        ({"expires_at_0": "2020-01-01", "expires_at_1": "00:00:00"}, "must be in the future"),
    ]
    with schema_context("alpha"):
        before = UserToken.objects.count()
    for overrides, message in cases:
        response = admin_client.post(ADD_URL, add_data(owner, **overrides))
        assert response.status_code == 200, overrides
        assert message in html(response), (overrides, message)
        assert "user-token-value" not in html(response)
    with schema_context("alpha"):
        assert UserToken.objects.count() == before


def checked_expiry_preset(content: str) -> list[str]:
    return [
        attrs["value"]
        for tag, attrs in Page(content).elements
        if tag == "input" and attrs.get("name") == "expiry_preset" and "checked" in attrs
    ]


def test_add_form_offers_expiry_presets_with_90_days_preselected(admin_client, owner):
    content = html(admin_client.get(ADD_URL))
    values = [
        attrs["value"]
        for tag, attrs in Page(content).elements
        if tag == "input" and attrs.get("name") == "expiry_preset"
    ]
    assert values == ["7", "30", "90", "custom", "never"]
    assert checked_expiry_preset(content) == ["90"]


@pytest.mark.parametrize("days", [7, 30, 90])
def test_an_expiry_preset_sets_the_expiry_from_now(admin_client, owner, days):
    before = timezone.now()
    _, _, token = create_via_admin(admin_client, owner, expiry_preset=str(days))
    after = timezone.now()
    assert before + timedelta(days=days) <= token.expires_at <= after + timedelta(days=days)


def test_never_and_custom_expiry_presets(admin_client, owner):
    _, _, never = create_via_admin(admin_client, owner, name="Forever", expiry_preset="never")
    assert never.expires_at is None
    when = timezone.now() + timedelta(days=12)
    _, _, custom = create_via_admin(
        admin_client,
        owner,
        name="Custom",
        expiry_preset="custom",
        expires_at_0=when.strftime("%Y-%m-%d"),
        expires_at_1=when.strftime("%H:%M:%S"),
    )
    assert abs(custom.expires_at - when) < timedelta(seconds=1)
    # The change form starts from what is stored.
    assert checked_expiry_preset(html(admin_client.get(change_url(never)))) == ["never"]
    assert checked_expiry_preset(html(admin_client.get(change_url(custom)))) == ["custom"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"expiry_preset": "custom"}, "Enter the date and time for a custom expiry."),
        ({"expiry_preset": "365"}, "Select a valid choice"),
        (
            {"expiry_preset": "30", "expires_at_0": "2099-01-01", "expires_at_1": "00:00:00"},
            "A date is used only with “Custom date”",
        ),
        (
            {"expiry_preset": "custom", "expires_at_0": "2020-01-01", "expires_at_1": "00:00:00"},
            "must be in the future",
        ),
        ({"expiry_preset": "custom", "expires_at_0": "tomorrow"}, "Enter a valid date"),
    ],
)
def test_bad_expiry_input_is_a_form_error_and_saves_nothing(
    admin_client, owner, overrides, message
):
    with schema_context("alpha"):
        before = UserToken.objects.count()
    response = admin_client.post(ADD_URL, add_data(owner, **overrides))
    assert response.status_code == 200
    assert message in html(response)
    assert "user-token-value" not in html(response)
    with schema_context("alpha"):
        assert UserToken.objects.count() == before


def test_changing_the_expiry_preset_on_the_change_page(admin_client, owner):
    _, _, token = create_via_admin(admin_client, owner, expiry_preset="never")
    response = admin_client.post(change_url(token), change_data(token, expiry_preset="7"))
    assert response.status_code == 302, html(response)[:2000]
    with schema_context("alpha"):
        token.refresh_from_db()
    assert timezone.now() + timedelta(days=6) < token.expires_at <= timezone.now() + timedelta(7)
    response = admin_client.post(change_url(token), change_data(token, expiry_preset="custom"))
    assert response.status_code == 200
    assert "Enter the date and time for a custom expiry." in html(response)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("::ffff:10.0.0.0/104", "is an IPv4-mapped range; list it as 10.0.0.0/8."),
        ("::ffff:192.0.2.7", "is an IPv4-mapped range; list it as 192.0.2.7/32."),
    ],
)
def test_an_ipv4_mapped_network_is_refused_with_its_ipv4_form(admin_client, owner, entry, message):
    # Clients are matched by their IPv4 address, so a mapped entry would never match anything.
    with schema_context("alpha"):
        before = UserToken.objects.count()
    response = admin_client.post(ADD_URL, add_data(owner, allowed_ips=entry))
    assert response.status_code == 200
    assert message in html(response)
    with schema_context("alpha"):
        assert UserToken.objects.count() == before


def test_networks_and_expiry_are_stored_and_enforced(admin_client, owner, api):
    expires = timezone.now() + timedelta(days=30)
    _, secret, token = create_via_admin(
        admin_client,
        owner,
        allowed_ips="10.0.0.0/8, 2001:DB8::/32\n192.168.1.7\n\n10.0.0.0/8",
        expires_at_0=expires.strftime("%Y-%m-%d"),
        expires_at_1=expires.strftime("%H:%M:%S"),
    )
    assert token.allowed_ips == ["10.0.0.0/8", "2001:db8::/32", "192.168.1.7/32"]
    assert abs(token.expires_at - expires) < timedelta(seconds=1)
    # The test client's address, 127.0.0.1, is outside every allowed network.
    assert exchange(api, secret).status_code == 401
    assert exchange(api, secret).json() == INVALID_TOKEN


# --- The change page


def test_change_page_edits_through_the_service(admin_client, owner):
    _, secret, token = create_via_admin(admin_client, owner)
    seen = []

    def receiver(sender, **kwargs):
        seen.append(kwargs)

    signals.user_token_permissions_changed.connect(receiver)
    try:
        response = admin_client.post(
            change_url(token),
            change_data(
                token,
                name="CRM sync v2",
                permissions=["view_users", "view_products"],
                allowed_ips="2001:db8::/48",
            ),
        )
    finally:
        signals.user_token_permissions_changed.disconnect(receiver)
    assert response.status_code == 302, response.content[:2000]
    with schema_context("alpha"):
        token.refresh_from_db()
    assert token.name == "CRM sync v2"
    assert token.permissions == ["view_products", "view_users"]
    assert token.allowed_ips == ["2001:db8::/48"]
    assert token.digest == hashing.digest(secret)
    assert len(seen) == 1
    assert seen[0]["via"] == "admin"
    assert seen[0]["actor"].username == "alpha-admin"
    assert seen[0]["added"] == ["view_products"]
    assert seen[0]["removed"] == ["edit_licenses", "view_customers"]

    page = Page(html(admin_client.get(change_url(token))))
    boxes = page.find_all("input", type="checkbox", name="permissions")
    assert [b["value"] for b in boxes] == [p.value for p in Permission]
    assert {b["value"] for b in boxes if "checked" in b} == {"view_users", "view_products"}
    assert not page.find_all("button", **{"data-preset": "read_only"})  # presets: add form only


def test_change_page_shows_read_only_details_and_never_edits_secret_fields(admin_client, owner):
    _, secret, token = create_via_admin(admin_client, owner)
    content = html(admin_client.get(change_url(token)))
    for label in ("Owner", "Secret", "Created at", "Refreshed at", "Last used at", "Generation"):
        assert label in content, label
    assert "crm-robot" in content
    assert token.display_secret in content
    page = Page(content)
    for field in ("digest", "key_id", "last_four", "generation", "owner", "user", "is_active"):
        assert not page.find_all("input", name=field), field
        assert not page.find_all("select", name=field), field

    with schema_context("alpha"):
        other = get_user_model().objects.create_user("someone-else")
    response = admin_client.post(
        change_url(token),
        change_data(
            token,
            digest="0" * 64,
            key_id="evil",
            last_four="abcd",
            generation="99",
            owner=str(other.pk),
            user=str(other.pk),
            is_active="",
        ),
    )
    assert response.status_code == 302
    with schema_context("alpha"):
        stored = UserToken.objects.get(pk=token.pk)
    assert (stored.digest, stored.key_id, stored.last_four) == (
        token.digest,
        token.key_id,
        token.last_four,
    )
    assert stored.generation == token.generation
    assert stored.owner_id == owner.pk
    assert stored.is_active


def test_removing_a_permission_in_the_admin_is_refused_on_the_next_request(
    admin_client, api_client
):
    client = api_client("alpha", [Permission.VIEW_USERS, Permission.EDIT_USER_TOKENS])
    assert client.get("/v1/user-tokens").status_code == 200

    token = client.user_token
    response = admin_client.post(change_url(token), change_data(token, permissions=["view_users"]))
    assert response.status_code == 302

    denied = client.get("/v1/user-tokens")
    assert denied.status_code == 403
    assert denied.json() == ACCESS_DENIED
    me = client.get("/v1/auth/me")
    assert me.status_code == 200
    assert me.json()["permissions"] == ["view_users"]


# --- Refresh


def test_refresh_asks_for_confirmation_then_shows_a_new_secret_once(
    admin_client, api_client, api, caplog
):
    caplog.set_level(logging.DEBUG)
    client = api_client("alpha", [Permission.VIEW_LICENSES])
    token, old_secret = client.user_token, client.secret
    refresh_url = f"/admin/tokens/usertoken/{token.pk}/refresh/"
    assert Page(html(admin_client.get(change_url(token)))).find_all("a", href=refresh_url)

    confirm = admin_client.get(refresh_url)
    assert confirm.status_code == 200
    assert "stop working at once" in html(confirm)
    assert "user-token-value" not in html(confirm)
    form = Page(html(confirm))
    assert form.find_all("input", type="hidden", name="csrfmiddlewaretoken")
    with schema_context("alpha"):
        assert UserToken.objects.get(pk=token.pk).generation == token.generation  # GET: no change

    response = shown_after_redirect(admin_client, admin_client.post(refresh_url))
    new_secret = secret_on(response)
    assert uuid.UUID(new_secret).version == 4 and new_secret != old_secret
    assert html(response).count(new_secret) == 1
    assert "no-store" in response["Cache-Control"]
    assert "will not be shown again" in html(response)
    assert Page(html(response)).find_all("a", href=change_url(token))

    # Every access token issued from the old secret is refused at once, and the old secret too.
    old_access = client.get("/v1/auth/me")
    assert old_access.status_code == 401
    assert old_access.json() == INVALID_TOKEN
    assert exchange(api, old_secret).json() == INVALID_TOKEN
    renewed = api.post(
        "/v1/auth/refresh",
        {"refresh_token": client.tokens["refresh_token"]},
        content_type="application/json",
    )
    assert renewed.status_code == 401
    assert renewed.json() == INVALID_TOKEN

    fresh = exchange(api, new_secret)
    assert fresh.status_code == 200
    assert fresh.json()["permissions"] == ["view_licenses"]

    assert_secret_absent(new_secret, html(admin_client.get(change_url(token))))
    history = admin_client.get(f"/admin/tokens/usertoken/{token.pk}/history/")
    assert "Refreshed the secret" in html(history)
    assert_secret_absent(new_secret, html(history))
    with schema_context("alpha"):
        for entry in LogEntry.objects.all():
            assert_secret_absent(new_secret, entry.change_message + entry.object_repr)
    assert_secret_absent(new_secret, caplog.text)
    assert_secret_absent(old_secret, caplog.text)


def test_refresh_is_csrf_protected(tenant_alpha, admin_password, make_user_token):
    token, _ = make_user_token("alpha", [Permission.VIEW_USERS])
    client = TenantClient(tenant_alpha, TENANTS["alpha"], enforce_csrf_checks=True)
    assert client.login(username="alpha-admin", password=admin_password)
    for action in ("refresh", "deactivate"):
        response = client.post(f"/admin/tokens/usertoken/{token.pk}/{action}/")
        assert response.status_code == 403, action
    with schema_context("alpha"):
        stored = UserToken.objects.get(pk=token.pk)
    assert stored.generation == token.generation
    assert stored.is_active


# --- Deactivate and activate


def test_deactivate_refuses_the_next_request_and_activate_restores(admin_client, api_client):
    client = api_client("alpha", [Permission.VIEW_USERS])
    token = client.user_token
    deactivate_url = f"/admin/tokens/usertoken/{token.pk}/deactivate/"
    activate_url = f"/admin/tokens/usertoken/{token.pk}/activate/"
    page = Page(html(admin_client.get(change_url(token))))
    assert page.find_all("form", action=deactivate_url, method="post")
    assert not page.find_all("form", action=activate_url)

    assert admin_client.get(deactivate_url).status_code == 405  # a GET never changes anything
    assert client.get("/v1/auth/me").status_code == 200

    response = admin_client.post(deactivate_url)
    assert response.status_code == 302
    assert response["Location"] == change_url(token)
    refused = client.get("/v1/auth/me")
    assert refused.status_code == 401
    assert refused.json() == INVALID_TOKEN

    content = html(admin_client.get(change_url(token)))
    assert "This token is deactivated" in content
    assert Page(content).find_all("form", action=activate_url, method="post")
    with schema_context("alpha"):
        assert "Deactivated." in [e.change_message for e in LogEntry.objects.all()]

    assert admin_client.post(activate_url).status_code == 302
    # Deactivation revoked the JWTs issued before; the secret exchanges again.
    assert client.get("/v1/auth/me").status_code == 401
    assert exchange(client, client.secret).status_code == 200


def test_bulk_action_deactivates_selected_tokens(admin_client, make_user_token):
    first, _ = make_user_token("alpha", [Permission.VIEW_USERS], name="first")
    second, _ = make_user_token("alpha", [Permission.VIEW_USERS], name="second")
    kept, _ = make_user_token("alpha", [Permission.VIEW_USERS], name="kept")
    changelist = html(admin_client.get(CHANGELIST_URL))
    assert "Deactivate selected tokens" in changelist

    response = admin_client.post(
        CHANGELIST_URL,
        {"action": "deactivate_selected", "_selected_action": [first.pk, second.pk]},
    )
    assert response.status_code == 302
    with schema_context("alpha"):
        active = dict(UserToken.objects.values_list("name", "is_active"))
    assert active["first"] is False
    assert active["second"] is False
    assert active["kept"] is True


# --- The list


def test_list_shows_columns_filters_and_search(admin_client, make_user_token, in_alpha):
    owner = get_user_model().objects.create_user("billing-bot")
    make_user_token(
        "alpha",
        [Permission.VIEW_USERS, Permission.VIEW_LICENSES],
        owner=owner,
        name="Billing export",
    )
    make_user_token(
        "alpha",
        [Permission.VIEW_USERS],
        name="Old dashboard",
        expires_at=timezone.now() - timedelta(days=1),
    )
    content = html(admin_client.get(CHANGELIST_URL))
    for header in ("Name", "Owner", "Permissions", "Last used", "Expires", "Active"):
        assert header in content, header
    assert "Billing export" in content and "billing-bot" in content
    assert "Expired" in content

    search = html(admin_client.get(CHANGELIST_URL, {"q": "billing-bot"}))
    assert "Billing export" in search and "Old dashboard" not in search
    expired = html(admin_client.get(CHANGELIST_URL, {"expiry": "expired"}))
    assert "Old dashboard" in expired and "Billing export" not in expired
    never = html(admin_client.get(CHANGELIST_URL, {"expiry": "never"}))
    assert "Billing export" in never and "Old dashboard" not in never
    inactive = html(admin_client.get(CHANGELIST_URL, {"is_active__exact": "0"}))
    assert "Billing export" not in inactive
    assert "By active" in inactive and "By expiry" in inactive
    by_count = admin_client.get(CHANGELIST_URL, {"o": "4"})
    assert by_count.status_code == 200


def test_list_shows_secret_hint_creation_and_networks(admin_client, make_user_token, in_alpha):
    creator = get_user_model().objects.get(username="alpha-admin")
    token, _ = make_user_token(
        "alpha",
        [Permission.VIEW_USERS],
        name="Networked",
        allowed_ips=["203.0.113.0/24", "2001:db8::/32"],
        created_by=creator,
    )
    make_user_token("alpha", [Permission.VIEW_USERS], name="Anywhere")
    content = html(admin_client.get(CHANGELIST_URL))
    for header in ("Secret", "Networks", "Created", "Created by"):
        assert header in content, header
    assert f"<code>…{token.last_four}</code>" in content
    assert "203.0.113.0/24 +1" in content and "Any" in content
    assert creator.username in content


def test_list_is_searchable_by_the_secrets_last_four(admin_client, make_user_token, in_alpha):
    first, first_secret = make_user_token("alpha", [Permission.VIEW_USERS], name="First token")
    second, _ = make_user_token("alpha", [Permission.VIEW_USERS], name="Second token")
    if first.last_four.lower() == second.last_four.lower():  # 1 in 65536: make them differ
        second, _ = make_user_token("alpha", [Permission.VIEW_USERS], name="Second token")
    assert first_secret.endswith(first.last_four)
    for query in (first.last_four, first.last_four.swapcase()):
        found = html(admin_client.get(CHANGELIST_URL, {"q": query}))
        assert "First token" in found and "Second token" not in found, query
    # Exact, not a substring: three characters of the end match nothing.
    partial = html(admin_client.get(CHANGELIST_URL, {"q": first.last_four[1:]}))
    assert "First token" not in partial


# --- Who may do what


def test_staff_without_token_permissions_is_refused(tenant_alpha, admin_password, make_user_token):
    token, _ = make_user_token("alpha", [Permission.VIEW_USERS])
    client = staff_client(tenant_alpha, admin_password)
    urls = [
        ADD_URL,
        CHANGELIST_URL,
        change_url(token),
        f"/admin/tokens/usertoken/{token.pk}/refresh/",
    ]
    for url in urls:
        assert client.get(url).status_code == 403, url
    for action in ("refresh", "deactivate", "activate"):
        assert client.post(f"/admin/tokens/usertoken/{token.pk}/{action}/").status_code == 403
    assert client.post(ADD_URL, {"name": "x"}).status_code == 403
    assert "/admin/tokens/" not in html(client.get("/admin/"))
    with schema_context("alpha"):
        stored = UserToken.objects.get(pk=token.pk)
    assert stored.is_active and stored.generation == token.generation


def test_view_only_staff_sees_tokens_but_cannot_change_them(
    tenant_alpha, admin_password, make_user_token
):
    token, _ = make_user_token("alpha", [Permission.VIEW_USERS])
    client = staff_client(tenant_alpha, admin_password, "view_usertoken")
    page = client.get(change_url(token))
    assert page.status_code == 200
    assert "/refresh/" not in html(page)
    assert "/deactivate/" not in html(page)
    assert client.get(f"/admin/tokens/usertoken/{token.pk}/refresh/").status_code == 403
    assert client.post(f"/admin/tokens/usertoken/{token.pk}/refresh/").status_code == 403
    assert client.post(f"/admin/tokens/usertoken/{token.pk}/deactivate/").status_code == 403
    assert client.post(change_url(token), change_data(token, name="renamed")).status_code == 403
    assert client.get(ADD_URL).status_code == 403


def test_anonymous_is_sent_to_the_login_page(alpha_client, make_user_token):
    token, _ = make_user_token("alpha", [Permission.VIEW_USERS])
    for url in (ADD_URL, f"/admin/tokens/usertoken/{token.pk}/refresh/"):
        response = alpha_client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
    response = alpha_client.post(f"/admin/tokens/usertoken/{token.pk}/refresh/")
    assert response.status_code == 302
    with schema_context("alpha"):
        assert UserToken.objects.get(pk=token.pk).generation == token.generation


def test_unknown_token_is_404_for_actions(admin_client):
    assert admin_client.get("/admin/tokens/usertoken/999999/refresh/").status_code == 404
    assert admin_client.post("/admin/tokens/usertoken/999999/deactivate/").status_code == 404


def test_tokens_of_another_tenant_are_out_of_reach(admin_client, make_user_token):
    beta_token, _ = make_user_token("beta", [Permission.VIEW_USERS], name="beta secret job")
    with schema_context("alpha"):
        assert not UserToken.objects.filter(pk=beta_token.pk).exists()
    for action in ("refresh", "deactivate"):
        response = admin_client.post(f"/admin/tokens/usertoken/{beta_token.pk}/{action}/")
        assert response.status_code == 404
    assert "beta secret job" not in html(admin_client.get(CHANGELIST_URL))
    with schema_context("beta"):
        stored = UserToken.objects.get(pk=beta_token.pk)
    assert stored.is_active and stored.generation == beta_token.generation


# --- The Users section


def test_user_page_lists_tokens_and_links_to_the_prefilled_add_form(
    admin_client, owner, make_user_token
):
    first, _ = make_user_token("alpha", [Permission.VIEW_USERS], owner=owner, name="Nightly export")
    second, _ = make_user_token("alpha", [], owner=owner, name="Status board")
    someone_elses, _ = make_user_token("alpha", [Permission.VIEW_USERS], name="Not this user's")

    user_url = f"/admin/auth/user/{owner.pk}/change/"
    response = admin_client.get(user_url)
    assert response.status_code == 200
    content = html(response)
    page = Page(content)
    assert "User Tokens" in content
    assert page.find_all("a", href=change_url(first))
    assert page.find_all("a", href=change_url(second))
    assert not page.find_all("a", href=change_url(someone_elses))
    assert "Nightly export" in content and "Status board" in content
    add_link = page.find_all("a", id="user-token-add-link")
    assert add_link and add_link[0]["href"] == f"{ADD_URL}?user={owner.pk}"
    assert "Add a User Token for this user" in content
    # The inline lists and links; it cannot add, edit or delete tokens.
    assert page.find_all("input", name="user_tokens-MAX_NUM_FORMS", value="0")
    assert not [e for e in page.find_all("input") if e.get("name", "").endswith("-name")]
    assert not [e for e in page.find_all("input") if e.get("name", "").endswith("-DELETE")]

    prefilled = Page(html(admin_client.get(add_link[0]["href"])))
    selected = [o["value"] for o in prefilled.find_all("option") if "selected" in o]
    assert selected == [str(owner.pk)]

    # Saving the user page leaves the tokens alone.
    form = response.context["adminform"].form
    data = {
        name: value
        for name, value in form.initial.items()
        if value is not None and name not in ("password", "groups", "user_permissions")
    }
    data.update(
        {
            "username": owner.username,
            "date_joined_0": timezone.now().strftime("%Y-%m-%d"),
            "date_joined_1": "00:00:00",
            "user_tokens-TOTAL_FORMS": "2",
            "user_tokens-INITIAL_FORMS": "2",
            "user_tokens-MIN_NUM_FORMS": "0",
            "user_tokens-MAX_NUM_FORMS": "0",
            "user_tokens-0-id": str(first.pk),
            "user_tokens-0-owner": str(owner.pk),
            "user_tokens-1-id": str(second.pk),
            "user_tokens-1-owner": str(owner.pk),
            "is_active": "on",
        }
    )
    data.pop("last_login", None)
    saved = admin_client.post(user_url, data)
    assert saved.status_code == 302, html(saved)[:3000]
    with schema_context("alpha"):
        assert UserToken.objects.filter(owner=owner).count() == 2


def test_user_page_without_token_permissions_shows_no_tokens(
    tenant_alpha, admin_password, owner, make_user_token
):
    make_user_token("alpha", [Permission.VIEW_USERS], owner=owner, name="Nightly export")
    client = staff_client(tenant_alpha, admin_password)
    with schema_context("alpha"):
        staff = get_user_model().objects.get(pk=client.session["_auth_user_id"])
        staff.user_permissions.add(
            AuthPermission.objects.get(content_type__app_label="auth", codename="view_user")
        )
    page = client.get(f"/admin/auth/user/{owner.pk}/change/")
    assert page.status_code == 200
    assert "Nightly export" not in html(page)
    assert "user-token-add-link" not in html(page)


def test_public_admin_has_no_user_tokens(db, admin_password):
    User = get_user_model()
    with schema_context("public"):
        operator = User.objects.create_superuser("token-operator", "op@localhost", admin_password)
    client = Client(HTTP_HOST="localhost")
    assert client.login(username="token-operator", password=admin_password)
    assert "/admin/tokens/" not in html(client.get("/admin/"))
    assert client.get(CHANGELIST_URL).status_code == 403
    assert client.get(ADD_URL).status_code == 403
    user_page = client.get(f"/admin/auth/user/{operator.pk}/change/")
    assert user_page.status_code == 200
    assert "User Tokens" not in html(user_page)
    assert "user-token-add-link" not in html(user_page)
