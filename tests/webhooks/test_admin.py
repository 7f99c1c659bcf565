"""The tenant admin for webhooks: the secret shown once, Rotate, the delivery log and Resend."""

import re

import pytest
from django.contrib.admin.models import LogEntry
from django_tenants.utils import schema_context

from tests.helpers import TENANTS, TenantClient
from tests.licensing.factories import PUBLIC_WEBHOOK_URL
from webhooks import services
from webhooks.models import EventType, WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/webhooks/webhookendpoint/add/"
SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]{40,}")


@pytest.fixture(autouse=True)
def production(settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = False


def test_adding_an_endpoint_shows_its_secret_once(admin_client):
    answer = admin_client.post(
        ADD_URL,
        {"url": PUBLIC_WEBHOOK_URL, "events": [EventType.LICENSE_REVOKED], "active": "on"},
    )
    assert answer.status_code == 302, answer.content[:500]  # POST-redirect-GET
    assert not SECRET.search(answer.content.decode())
    shown = admin_client.get(answer["Location"])
    assert shown.status_code == 200
    assert "no-store" in shown["Cache-Control"]
    [secret] = set(SECRET.findall(shown.content.decode()))
    with schema_context("alpha"):
        endpoint = WebhookEndpoint.objects.get()
        assert endpoint.secret == secret
        assert endpoint.events == [EventType.LICENSE_REVOKED]
        history = " ".join(str(e.change_message) for e in LogEntry.objects.all())
    assert secret not in history
    page = admin_client.get(f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/")
    assert page.status_code == 200
    assert secret not in page.content.decode()
    assert endpoint.secret_hint in page.content.decode()


def test_a_reload_of_the_secret_page_neither_shows_it_again_nor_makes_another(admin_client):
    answer = admin_client.post(ADD_URL, {"url": PUBLIC_WEBHOOK_URL, "active": "on"})
    secret_url = answer["Location"]
    assert SECRET.search(admin_client.get(secret_url).content.decode())
    again = admin_client.get(secret_url)
    assert again.status_code == 302
    warning = admin_client.get(again["Location"]).content.decode()
    assert "shown only once" in warning and not SECRET.search(warning)
    assert admin_client.post(secret_url).status_code == 405
    with schema_context("alpha"):
        assert WebhookEndpoint.objects.count() == 1


def test_another_session_of_the_same_administrator_sees_no_secret(
    admin_client, tenant_alpha, admin_password
):
    answer = admin_client.post(ADD_URL, {"url": PUBLIC_WEBHOOK_URL, "active": "on"})
    other = TenantClient(tenant_alpha, TENANTS["alpha"])
    assert other.login(username="alpha-admin", password=admin_password)
    assert other.get(answer["Location"]).status_code == 302
    assert SECRET.search(admin_client.get(answer["Location"]).content.decode())


def test_an_internal_url_is_refused_by_the_form(admin_client):
    answer = admin_client.post(ADD_URL, {"url": "https://169.254.169.254/", "active": "on"})
    assert answer.status_code == 200
    assert "link-local" in answer.content.decode()
    with schema_context("alpha"):
        assert not WebhookEndpoint.objects.exists()


def test_rotate_shows_the_new_secret_and_keeps_the_old_one_for_a_day(admin_client):
    with schema_context("alpha"):
        endpoint, old = services.create_endpoint(url=PUBLIC_WEBHOOK_URL)
    url = f"/admin/webhooks/webhookendpoint/{endpoint.pk}/rotate/"
    confirm = admin_client.get(url)
    assert confirm.status_code == 200 and not SECRET.search(confirm.content.decode())
    answer = admin_client.post(url)
    assert answer.status_code == 302
    [new] = set(SECRET.findall(admin_client.get(answer["Location"]).content.decode()))
    assert new != old
    with schema_context("alpha"):
        endpoint.refresh_from_db()
        assert endpoint.signing_secrets() == [new, old]


def test_the_delivery_log_and_resend(admin_client):
    with schema_context("alpha"):
        endpoint, _ = services.create_endpoint(url=PUBLIC_WEBHOOK_URL)
        event = services.emit_event("license.created", {"license": {"id": 42}})
        delivery = WebhookDelivery.objects.get(event=event)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=WebhookDelivery.Status.FAILED,
            attempts=15,
            last_status_code=500,
            last_response_ms=87,
            last_response_excerpt="upstream exploded",
        )
    log = admin_client.get(f"/admin/webhooks/webhookdelivery/?endpoint__id__exact={endpoint.pk}")
    assert log.status_code == 200
    text = log.content.decode()
    assert "license.created" in text and "500" in text and "87" in text
    detail = admin_client.get(f"/admin/webhooks/webhookdelivery/{delivery.pk}/change/")
    assert "upstream exploded" in detail.content.decode()
    assert event.message_id in detail.content.decode()

    with schema_context("alpha"):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM public.procrastinate_jobs")  # as if long since run
    answer = admin_client.post(
        "/admin/webhooks/webhookdelivery/",
        {"action": "resend", "_selected_action": [delivery.pk]},
        follow=True,
    )
    assert "Queued 1 delivery again" in answer.content.decode()
    with schema_context("alpha"):
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.PENDING, 0)


def test_the_queues_jobs_are_not_in_a_tenants_admin(admin_client):
    """They name every tenant's schema: only the platform's (public) admin lists them."""
    assert admin_client.get("/admin/procrastinate/procrastinatejob/").status_code in (403, 404)
    assert "procrastinate" not in admin_client.get("/admin/").content.decode().lower()


def test_the_platform_admin_lists_the_queues_jobs(db):
    from django.contrib.auth import get_user_model
    from django.test import Client

    operator = get_user_model().objects.create_superuser("queue-operator", "op@example.com", "x")
    client = Client(HTTP_HOST="localhost")
    client.force_login(operator)
    assert client.get("/admin/procrastinate/procrastinatejob/").status_code == 200
