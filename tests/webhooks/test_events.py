"""Events are written with the change (the outbox), signed the Standard Webhooks way, and retried
on a schedule; no worker here (tests/webhooks/test_delivery.py runs real ones)."""

import base64
import json
from datetime import timedelta

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import connection, transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from licensing import services as licensing
from licensing.models import LicenseStatus
from monitoring import alerts
from monitoring.models import Alert
from tenants.models import Tenant
from tenants.signing_keys import jwks
from tests.licensing.factories import make_license, make_plan
from tests.servers import free_port
from tokens import services as tokens
from webhooks import services
from webhooks.models import EventType, WebhookDelivery, WebhookEndpoint, WebhookEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoint(settings, in_alpha):
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    created, _ = services.create_endpoint(url="http://127.0.0.1:9/hook")
    return created


def queued_jobs() -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT args FROM public.procrastinate_jobs WHERE task_name = 'webhooks.deliver'"
        )
        # Raw cursors of this backend give jsonb as text.
        return [json.loads(row[0]) if isinstance(row[0], str) else row[0] for row in cursor]


def types() -> list[str]:
    return list(WebhookEvent.objects.order_by("id").values_list("type", flat=True))


def test_a_change_writes_its_event_delivery_and_job_in_its_transaction(endpoint):
    license = make_license()
    event = WebhookEvent.objects.get()
    assert event.type == EventType.LICENSE_CREATED
    assert event.payload["id"] == event.message_id and event.message_id.startswith("msg_")
    assert event.payload["tenant"] == "alpha"
    assert event.payload["data"]["license"]["key"] == license.key
    delivery = WebhookDelivery.objects.get(event=event, endpoint=endpoint)
    assert queued_jobs() == [{"schema_name": "alpha", "delivery_id": delivery.pk}]


def test_a_rolled_back_change_leaves_no_event_and_no_job(endpoint):
    plan = make_plan()
    with pytest.raises(RuntimeError), transaction.atomic():
        licensing.issue_license(product=plan.product, plan=plan)
        raise RuntimeError("rolled back")
    assert not WebhookEvent.objects.exists()
    assert not WebhookDelivery.objects.exists()
    assert queued_jobs() == []


def test_nothing_is_written_without_a_subscribed_endpoint(endpoint):
    services.update_endpoint(endpoint, events=[EventType.LICENSE_REVOKED])
    make_license()
    assert not WebhookEvent.objects.exists()
    services.update_endpoint(endpoint, active=False, events=[])
    make_license()
    assert not WebhookEvent.objects.exists()


def test_status_changes_name_their_event(endpoint):
    license = make_license()
    licensing.update_license(license, metadata={"seats": 4})
    licensing.update_license(license, status=LicenseStatus.SUSPENDED)
    licensing.update_license(license, status=LicenseStatus.ACTIVE)
    licensing.update_license(license, status=LicenseStatus.REVOKED)
    assert types() == [
        "license.created",
        "license.updated",
        "license.suspended",
        "license.updated",
        "license.revoked",
    ]


def test_user_token_and_alert_events_carry_no_secret(endpoint, make_user_token, settings):
    token, secret = make_user_token("alpha")
    new_secret = tokens.refresh_user_token(token, via="test")
    tokens.deactivate_user_token(token, via="test")
    settings.ALERT_DENIED_THRESHOLD = 1
    alert = alerts.permission_denied(token)
    assert alert is not None
    events = list(WebhookEvent.objects.order_by("id"))
    assert [e.type for e in events] == [
        "user_token.refreshed",
        "user_token.deactivated",
        "alert.raised",
    ]
    assert events[0].payload["data"]["user_token"]["id"] == token.pk
    assert events[1].payload["data"]["user_token"]["is_active"] is False
    assert events[2].payload["data"]["alert"]["id"] == alert.pk
    for event in events:
        text = str(event.payload)
        assert secret not in text and new_secret not in text and token.digest not in text


def test_machine_events_follow_activation_death_and_deactivation(endpoint, licensing_clock):
    plan = make_plan(max_activations=2, heartbeat_seconds=60, heartbeat_grace_seconds=0)
    license = make_license(plan)
    first = licensing.activate_machine(license.key, "hw-1").machine
    licensing.activate_machine(license.key, "hw-1")  # already active: no second event
    second = licensing.activate_machine(license.key, "hw-2").machine
    licensing.deactivate_machine(second)
    licensing.deactivate_machine(second)  # already deactivated: nothing
    licensing_clock.advance(seconds=61)
    assert licensing.cull_dead_machines() == 1
    assert licensing.cull_dead_machines() == 0
    machine_events = [
        (e.type, e.payload["data"]["machine"]["fingerprint"])
        for e in WebhookEvent.objects.order_by("id")
        if e.type.startswith("machine.")
    ]
    assert machine_events == [
        ("machine.activated", "hw-1"),
        ("machine.activated", "hw-2"),
        ("machine.deactivated", "hw-2"),
        ("machine.dead", "hw-1"),
    ]
    dead = WebhookEvent.objects.get(type="machine.dead").payload["data"]["machine"]
    assert (dead["id"], dead["license"], dead["status"]) == (first.pk, license.pk, "dead")


def test_an_unknown_event_type_is_refused(endpoint):
    with pytest.raises(ValueError):
        services.emit_event("machine.exploded", {})


def test_expiry_notices_are_sent_once_each(endpoint):
    now = timezone.now()
    soon = make_license(expires_at=now + timedelta(days=5))
    today = make_license(expires_at=now + timedelta(hours=12))
    ended = make_license(starts_at=now - timedelta(days=30), expires_at=now - timedelta(hours=3))
    WebhookEvent.objects.all().delete()
    assert licensing.emit_license_expiry_events(now) == 3
    assert licensing.emit_license_expiry_events(now) == 0  # the next day's run sends no repeat
    by_license = {
        e.payload["data"]["license"]["id"]: (e.type, e.payload["data"].get("days_before"))
        for e in WebhookEvent.objects.all()
    }
    assert by_license == {
        soon.pk: ("license.expiring", 7),
        today.pk: ("license.expiring", 1),
        ended.pk: ("license.expired", None),
    }
    # Six days later the 5-day licence is within a day: its second notice.
    assert licensing.emit_license_expiry_events(now + timedelta(days=4, hours=13)) >= 1
    assert WebhookEvent.objects.filter(
        dedupe_key__startswith=f"license.expiring:1:{soon.pk}:"
    ).exists()


def test_a_rotated_secret_signs_alongside_the_new_one_for_a_day(endpoint):
    old = endpoint.secret
    new = services.rotate_secret(endpoint)
    event = services.emit_event("license.created", {"license": {"id": 1}})
    body = '{"a":1}'
    headers = services.signed_headers(endpoint, event, body)
    assert [s.split(",")[0] for s in headers["webhook-signature"].split(" ")] == ["v1", "v1", "v1a"]
    assert Webhook(old).verify(body, headers) == {"a": 1}
    assert Webhook(new).verify(body, headers) == {"a": 1}

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    endpoint.refresh_from_db()
    headers = services.signed_headers(endpoint, event, body)
    assert [s.split(",")[0] for s in headers["webhook-signature"].split(" ")] == ["v1", "v1a"]
    Webhook(new).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body, headers)


def test_deliveries_carry_the_tenants_ed25519_signature(endpoint):
    """Verified with the public key the tenant publishes (its JWKS), not with any shared secret."""
    event = services.emit_event("license.created", {"license": {"id": 1}})
    body = '{"a":1}'
    headers = services.signed_headers(endpoint, event, body)
    [asymmetric] = [s for s in headers["webhook-signature"].split(" ") if s.startswith("v1a,")]
    [key] = [k for k in jwks(Tenant.objects.get(schema_name="alpha"))["keys"]
             if k["kid"] == headers["webhook-key-id"]]  # fmt: skip
    public = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(key["x"] + "=="))
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{body}".encode()
    public.verify(base64.b64decode(asymmetric[4:]), content)  # raises if it does not verify
    with pytest.raises(InvalidSignature):
        public.verify(base64.b64decode(asymmetric[4:]), content.replace(b'"a":1', b'"a":2'))


def test_the_retry_schedule_spans_about_two_days(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 60
    delays = []
    for attempts in range(1, 20):
        delay = services.retry_delay(attempts)
        if delay is None:
            break
        delays.append(delay)
    assert len(delays) == settings.WEBHOOK_RETRY_ATTEMPTS - 1
    assert 48 <= delays[0] <= 72  # a minute, +-20 %
    assert all(d <= 8 * 3600 * 1.2 for d in delays)
    assert 38 * 3600 <= sum(delays) <= 58 * 3600


def test_an_endpoint_failing_for_five_days_is_disabled_with_an_alert(endpoint):
    port = free_port(range(8900, 8999))  # nothing listens: connection refused
    services.update_endpoint(endpoint, url=f"http://127.0.0.1:{port}/down")
    event = services.emit_event("license.created", {"license": {"id": 1}})
    delivery = WebhookDelivery.objects.get(event=event)
    with pytest.raises(services.DeliveryFailed):
        services.attempt_delivery(delivery.pk)
    endpoint.refresh_from_db()
    assert endpoint.active and endpoint.failing_since is not None

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        failing_since=timezone.now() - timedelta(days=5, minutes=1)
    )
    services.attempt_delivery(delivery.pk)  # no retry left: the endpoint is off
    endpoint.refresh_from_db()
    delivery.refresh_from_db()
    assert not endpoint.active
    assert "5 days" in endpoint.disabled_reason
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert Alert.objects.filter(kind=Alert.Kind.WEBHOOK_DISABLED).count() == 1


def test_a_success_clears_the_failing_run_and_keeps_2_kib_of_the_answer(endpoint, settings):
    from tests.webhooks.conftest import run_receiver

    with run_receiver() as receiver:
        services.update_endpoint(endpoint, url=receiver.url("/long"))
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now())
        event = services.emit_event("license.created", {"license": {"id": 1}})
        delivery = WebhookDelivery.objects.get(event=event)
        services.attempt_delivery(delivery.pk)
    delivery.refresh_from_db()
    endpoint.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    assert len(delivery.last_response_excerpt) == services.EXCERPT_BYTES
    assert endpoint.failing_since is None


def test_resend_queues_a_settled_delivery_once(endpoint):
    event = services.emit_event("license.created", {"license": {"id": 1}})
    delivery = WebhookDelivery.objects.get(event=event)
    assert services.resend(delivery) is False  # its first job is still queued
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM public.procrastinate_jobs")
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.FAILED, attempts=15
    )
    assert services.resend(delivery) is True
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.PENDING, 0)
    assert len(queued_jobs()) == 1


def test_old_settled_events_are_pruned_with_their_log(endpoint, settings):
    settled = services.emit_event("license.created", {"license": {"id": 1}})
    pending = services.emit_event("license.created", {"license": {"id": 2}})
    recent = services.emit_event("license.created", {"license": {"id": 3}})
    long_ago = timezone.now() - timedelta(days=settings.WEBHOOK_RETENTION_DAYS + 1)
    WebhookEvent.objects.filter(pk__in=[settled.pk, pending.pk]).update(created_at=long_ago)
    WebhookDelivery.objects.filter(event=settled).update(status=WebhookDelivery.Status.SUCCEEDED)
    assert services.prune_events() == 1
    assert set(WebhookEvent.objects.values_list("pk", flat=True)) == {pending.pk, recent.pk}
    assert not WebhookDelivery.objects.filter(event_id=settled.pk).exists()
