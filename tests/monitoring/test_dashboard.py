"""The tenant admin's security dashboard: staff only, tenant only, charts as inline SVG."""

from datetime import date, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission as AuthPermission
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from monitoring.dashboard import Series, bar_chart
from monitoring.models import Alert, SecurityEvent, TokenUsageDay
from tests.licensing.factories import make_machine

pytestmark = pytest.mark.django_db

URL = "/admin/monitoring/securitydashboard/"


def staff_user(username, *perms):
    with schema_context("alpha"):
        user = get_user_model().objects.create_user(
            username, password="x-Passw0rd-x", is_staff=True
        )
        for codename in perms:
            user.user_permissions.add(AuthPermission.objects.get(codename=codename))
        return user


def test_the_dashboard_shows_charts_tokens_and_open_alerts(admin_client, make_user_token):
    token, _ = make_user_token("alpha", ["view_users", "view_licenses"], name="CRM <sync>")
    with schema_context("alpha"):
        today = timezone.localdate()
        TokenUsageDay.objects.create(user_token=token, day=today, requests=42)
        TokenUsageDay.objects.create(user_token=token, day=today - timedelta(days=3), requests=8)
        SecurityEvent.objects.create(
            kind=SecurityEvent.Kind.EXCHANGE_FAILED, reason="unknown_token"
        )
        SecurityEvent.objects.create(
            kind=SecurityEvent.Kind.RATE_LIMIT_HIT, reason="licence", count=5
        )
        make_machine()
        make_machine()
        SecurityEvent.objects.create(
            kind=SecurityEvent.Kind.ACTIVATION_REFUSED, reason="activation_limit", count=3
        )
        alert = Alert.objects.create(
            kind=Alert.Kind.FAILED_AUTHENTICATION,
            count=10,
            window_seconds=300,
            message="10 failed authentications from 203.0.113.9 within 300 seconds",
        )
    response = admin_client.get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count('<svg class="dashboard-chart') == 5
    assert 'src="http' not in page and 'href="http' not in page  # nothing from a CDN
    assert "Authorised API requests per day: 50 in 30 days" in page
    assert "Failed authentications per day: 1 in 30 days" in page
    assert "Rate-limit hits per day: 5 in 30 days" in page
    assert "Machine activations per day: 2 in 30 days" in page
    assert "Activation refusals per day: 3 in 30 days" in page
    assert f"{today.isoformat()}: 42" in page  # a bar's tooltip
    assert alert.message in page and 'name="alert"' in page
    assert "CRM &lt;sync&gt;" in page and "CRM <sync>" not in page
    assert "view_licenses" in page and "never_used" in page
    assert 'href="/static/monitoring/dashboard.css"' in page


def test_the_admin_index_links_to_it(admin_client):
    index = admin_client.get("/admin/").content.decode()
    assert f'href="{URL}"' in index and "Security dashboard" in index


def test_acknowledging_an_alert_from_the_dashboard(admin_client):
    with schema_context("alpha"):
        alert = Alert.objects.create(
            kind=Alert.Kind.PERMISSION_DENIED, count=10, window_seconds=300, message="denied"
        )
    response = admin_client.post(URL, {"alert": [str(alert.pk), "junk"]})
    assert response.status_code == 302
    with schema_context("alpha"):
        alert.refresh_from_db()
    assert alert.status == Alert.Status.ACKNOWLEDGED
    assert "No open alerts." in admin_client.get(URL).content.decode()


def test_anonymous_and_non_staff_are_sent_to_log_in(alpha_client):
    with schema_context("alpha"):
        get_user_model().objects.create_user("plain", password="x-Passw0rd-x")
    assert alpha_client.get(URL).status_code == 302
    alpha_client.login(username="plain", password="x-Passw0rd-x")
    response = alpha_client.get(URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_need_the_view_permission(alpha_client):
    staff_user("staff-without")
    staff_user("staff-with", "view_securityevent")
    alpha_client.login(username="staff-without", password="x-Passw0rd-x")
    assert alpha_client.get(URL).status_code == 403
    assert "Security dashboard" not in alpha_client.get("/admin/").content.decode()
    alpha_client.login(username="staff-with", password="x-Passw0rd-x")
    page = alpha_client.get(URL)
    assert page.status_code == 200
    assert "Acknowledge selected" not in page.content.decode()
    assert alpha_client.post(URL, {"alert": ["1"]}).status_code == 403


def test_not_on_the_public_admin(db):
    with schema_context("public"):
        get_user_model().objects.create_superuser("operator", "op@example.com", "x-Passw0rd-x")
    client = Client(HTTP_HOST="localhost")
    assert client.login(username="operator", password="x-Passw0rd-x")
    assert "Security dashboard" not in client.get("/admin/").content.decode()
    assert client.get(URL).status_code in (403, 404)


def test_the_chart_escapes_and_scales():
    points = [(date(2026, 1, d), v) for d, v in [(1, 0), (2, 10), (3, 5)]]
    svg = str(bar_chart(Series('Title "<b>"', "requests", points)))
    assert "&lt;b&gt;" in svg and "<b>" not in svg
    assert svg.count("<rect") == 3
    assert 'height="0.0"' in svg  # zero is drawn flat
    assert "2026-01-02: 10" in svg


def test_security_events_are_listed_searchable_and_read_only(admin_client):
    with schema_context("alpha"):
        event = SecurityEvent.objects.create(
            kind=SecurityEvent.Kind.PERMISSION_DENIED,
            reason="missing_permission",
            address="203.0.113.5",
            token_hint="ab12",
            details={"missing": ["view_users"]},
        )
    listing = admin_client.get("/admin/monitoring/securityevent/", {"q": "ab12"})
    assert listing.status_code == 200 and "203.0.113.5" in listing.content.decode()
    detail = admin_client.get(f"/admin/monitoring/securityevent/{event.pk}/change/")
    assert detail.status_code == 200 and "view_users" in detail.content.decode()
    assert 'name="_save"' not in detail.content.decode()
    assert admin_client.get("/admin/monitoring/securityevent/add/").status_code == 403
    delete = admin_client.post(
        f"/admin/monitoring/securityevent/{event.pk}/delete/", {"post": "yes"}
    )
    assert delete.status_code == 403
