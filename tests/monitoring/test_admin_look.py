"""The admin's look (issue 16): the header names the tenant or the platform, "View site" leads
somewhere that exists, the dashboard speaks in words and its tiles open the matching lists."""

import re
import uuid
from datetime import timedelta
from html import unescape

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from monitoring.models import Alert, SecurityEvent

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/monitoring/securitydashboard/"


def view_site(page: str) -> str:
    match = re.search(r'<a href="([^"]*)">View site</a>', page)
    assert match, "no View site link"
    return unescape(match.group(1))


@pytest.fixture
def platform_client(admin_password):
    with schema_context("public"):
        get_user_model().objects.create_superuser("operator", "op@localhost", admin_password)
    client = Client(HTTP_HOST="localhost")
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "operator", "password": admin_password, "next": "/admin/"},
        REMOTE_ADDR=f"198.51.100.{uuid.uuid4().int % 250 + 1}",
    )
    assert response.status_code == 302
    return client


def test_the_tenant_admin_names_the_tenant_and_links_to_the_api_docs(admin_client, tenant_alpha):
    page = admin_client.get("/admin/").content.decode()
    assert f'<span class="site-scope site-scope-tenant">{tenant_alpha.name}</span>' in page
    assert "Platform admin" not in page
    assert "site/admin.css" in page  # the stylesheet every admin shares
    assert view_site(page) == "/v1/docs"
    assert admin_client.get("/v1/docs").status_code == 200


def test_the_platform_admin_says_it_is_the_platform_and_view_site_exists(platform_client):
    page = platform_client.get("/admin/").content.decode()
    assert '<span class="site-scope site-scope-platform">Platform admin</span>' in page
    assert "site/admin.css" in page
    target = view_site(page)
    assert target != "/v1/docs"
    assert platform_client.get(target).status_code == 200


def test_every_dashboard_tile_opens_the_list_of_what_it_counts(admin_client):
    now = timezone.now()
    Kind = SecurityEvent.Kind
    with schema_context("alpha"):
        SecurityEvent.objects.create(kind=Kind.TOKEN_EXCHANGED)
        SecurityEvent.objects.create(kind=Kind.EXCHANGE_FAILED, reason="unknown_token")
        SecurityEvent.objects.create(kind=Kind.AUTHENTICATION_FAILED, reason="invalid_jwt")
        SecurityEvent.objects.create(kind=Kind.PERMISSION_DENIED, reason="missing_permission")
        SecurityEvent.objects.create(kind=Kind.RATE_LIMIT_HIT, reason="licence", count=4)
        SecurityEvent.objects.create(kind=Kind.ACTIVATION_REFUSED, reason="activation_limit")
        # older than the tiles' 24 hours: counted by no tile, listed by no tile's link
        SecurityEvent.objects.create(kind=Kind.TOKEN_EXCHANGED, created_at=now - timedelta(days=2))
        Alert.objects.create(
            kind=Alert.Kind.FAILED_AUTHENTICATION, count=10, window_seconds=300, message="ten"
        )
        Alert.objects.create(
            kind=Alert.Kind.PERMISSION_DENIED,
            count=10,
            window_seconds=300,
            message="done",
            status=Alert.Status.ACKNOWLEDGED,
        )
    page = admin_client.get(DASHBOARD).content.decode()
    tiles = re.findall(
        r'<a class="dashboard-figure" href="([^"]+)"><span class="dashboard-value">(\d+)</span>'
        r'<span class="dashboard-label">([^<]+)</span>',
        page,
    )
    rows = {label: (unescape(url), int(value)) for url, value, label in tiles}
    assert {label: value for label, (_, value) in rows.items()} == {
        "Token exchanges": 1,
        "Failed authentications": 2,
        "Permission denials": 1,
        "Rate-limit hits": 4,  # folded occurrences
        "Activation refusals": 1,
        "Open alerts": 1,
    }
    listed = {}
    for label, (url, _) in rows.items():
        response = admin_client.get(url)
        assert response.status_code == 200, (label, url)
        listed[label] = response.context["cl"].result_count
    assert listed == {  # events (rows), not folded occurrences
        "Token exchanges": 1,
        "Failed authentications": 2,
        "Permission denials": 1,
        "Rate-limit hits": 1,
        "Activation refusals": 1,
        "Open alerts": 1,
    }


def test_the_dashboard_shows_reasons_and_flags_in_words(admin_client, make_user_token):
    make_user_token("alpha", ["view_users"], name="Never used")
    with schema_context("alpha"):
        SecurityEvent.objects.create(
            kind=SecurityEvent.Kind.EXCHANGE_FAILED, reason="unknown_token"
        )
        SecurityEvent.objects.create(kind=SecurityEvent.Kind.PERMISSION_DENIED, reason="new_code")
    page = admin_client.get(DASHBOARD).content.decode()
    assert '<span title="unknown_token">Unknown token</span>' in page
    assert '<span title="new_code">New code</span>' in page  # unknown codes still read as words
    assert "<td>unknown_token</td>" not in page
    assert "<td>Token exchange failed</td>" in page
    assert ">never used</span>" in page and ">never_used</span>" not in page


def test_the_login_throttle_page_has_one_heading(alpha_client, settings):
    settings.ADMIN_LOGIN_RATE = "1/15m"
    address = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
    for _ in range(2):
        response = alpha_client.post(
            "/admin/login/", {"username": "alpha-admin", "password": "no"}, REMOTE_ADDR=address
        )
    assert response.status_code == 429
    page = response.content.decode()
    assert page.count("<h1") == 1
    assert "<h1>Too many failed login attempts</h1>" in page
