"""Admin login attempts are throttled per client address, on tenant and platform admins."""

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from tenants import signals

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def three_failures(settings):
    settings.ADMIN_LOGIN_RATE = "3/15m"


def attempt(client, password, address="198.51.100.1"):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": "alpha-admin", "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
    )


def test_after_three_failures_even_the_right_password_is_refused(alpha_client, admin_password):
    for _ in range(3):
        response = attempt(alpha_client, "wrong")
        assert response.status_code == 200
        assert "Please enter the correct username and password" in response.content.decode()
    refused = attempt(alpha_client, admin_password)
    assert refused.status_code == 429
    assert "Too many failed login attempts" in refused.content.decode()
    assert 0 < int(refused["Retry-After"]) <= 15 * 60
    # The page is refused on GET too, and nothing logged in.
    assert alpha_client.get("/admin/login/", REMOTE_ADDR="198.51.100.1").status_code == 429
    assert alpha_client.get("/admin/").status_code == 302


def test_other_addresses_are_not_affected(alpha_client, admin_password):
    for _ in range(3):
        attempt(alpha_client, "wrong", address="198.51.100.1")
    assert attempt(alpha_client, "x", address="198.51.100.1").status_code == 429
    response = attempt(alpha_client, admin_password, address="198.51.100.2")
    assert response.status_code == 302


def test_successful_logins_do_not_count(alpha_client, admin_password):
    for _ in range(5):
        assert attempt(alpha_client, admin_password).status_code == 302
        alpha_client.logout()
    assert attempt(alpha_client, admin_password).status_code == 302


def test_forwarded_for_does_not_change_the_counted_address(alpha_client, admin_password):
    for index in range(3):
        alpha_client.post(
            "/admin/login/",
            {"username": "alpha-admin", "password": "wrong"},
            REMOTE_ADDR="198.51.100.1",
            HTTP_X_FORWARDED_FOR=f"10.0.0.{index}",
        )
    response = alpha_client.post(
        "/admin/login/",
        {"username": "alpha-admin", "password": admin_password},
        REMOTE_ADDR="198.51.100.1",
        HTTP_X_FORWARDED_FOR="10.9.9.9",
    )
    assert response.status_code == 429


def test_the_platform_admin_is_throttled_too(db, admin_password):
    from django.contrib.auth import get_user_model

    with schema_context("public"):
        get_user_model().objects.create_superuser("operator", "op@localhost", admin_password)
    client = Client(HTTP_HOST="localhost")
    for _ in range(3):
        assert (
            client.post("/admin/login/", {"username": "operator", "password": "no"}).status_code
            == 200
        )
    assert (
        client.post(
            "/admin/login/", {"username": "operator", "password": admin_password}
        ).status_code
        == 429
    )


def test_a_refused_attempt_is_signalled_for_monitoring(alpha_client):
    seen = []

    def receiver(sender, **kwargs):
        seen.append(kwargs)

    signals.abuse_throttled.connect(receiver)
    try:
        for _ in range(4):
            attempt(alpha_client, "wrong")
    finally:
        signals.abuse_throttled.disconnect(receiver)
    assert [(s["scope"], s["address"]) for s in seen] == [("admin_login", "198.51.100.1")]


def test_failed_logins_are_recorded_as_security_events(alpha_client):
    pytest.importorskip("monitoring.events")
    from monitoring.models import SecurityEvent

    attempt(alpha_client, "wrong")
    with schema_context("alpha"):
        events = SecurityEvent.objects.filter(kind=SecurityEvent.Kind.AUTHENTICATION_FAILED)
        event = events.order_by("-id").first()
    assert event is not None
    assert event.details["stage"] == "admin_login"
    assert "wrong" not in str(event.details)
