"""Deliveries by real procrastinate workers (subprocesses) to a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import statistics
import time

import pytest
from django.db import connection as django_connection
from django.db import transaction
from standardwebhooks.webhooks import Webhook

from licensing import services as licensing
from licensing_client import verify_webhook
from tests.licensing.factories import make_license, make_plan
from tests.servers import free_port
from tests.webhooks.conftest import committed, run_receiver
from webhooks import services
from webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent

pytestmark = pytest.mark.live


def endpoint_for(url: str, events=("license.created",)) -> tuple[WebhookEndpoint, str]:
    with committed():
        return services.create_endpoint(url=url, events=list(events))


def delivery_of(endpoint: WebhookEndpoint) -> WebhookDelivery:
    with committed():
        return WebhookDelivery.objects.select_related("event").get(endpoint=endpoint)


def wait_until(predicate, timeout: float = 30, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not true within {timeout}s: {predicate.__doc__ or predicate}")


def test_a_licence_event_is_delivered_signed(committed_world, receiver, start_worker):
    endpoint, secret = endpoint_for(receiver.url("/signed"))
    start_worker()
    with committed():
        license = make_license()
    [got] = receiver.wait_for("/signed")

    body = json.loads(got.body)
    assert body["type"] == "license.created"
    assert body["tenant"] == "alpha"
    assert body["data"]["license"]["id"] == license.pk
    assert body["data"]["license"]["key"] == license.key
    assert set(body) == {"id", "type", "created", "tenant", "data"}
    headers = {k.lower(): v for k, v in got.headers.items()}
    assert headers["webhook-id"] == body["id"]
    # The Standard Webhooks package itself verifies the signature, and so does the client's.
    assert Webhook(secret).verify(got.body, headers) == body
    assert verify_webhook(headers, got.body, secret) == body
    with pytest.raises(Exception, match="signature"):
        verify_webhook(headers, got.body, services.new_secret())

    delivery = wait_until(
        lambda: (d := delivery_of(endpoint)).status == WebhookDelivery.Status.SUCCEEDED and d
    )
    assert delivery.attempts == 1
    assert delivery.last_status_code == 200
    assert delivery.last_response_excerpt == '{"ok":true}'
    assert delivery.last_response_ms is not None


def test_delivery_latency(committed_world, receiver, start_worker):
    """Change committed -> receiver has it, over 10 licences (figures in docs/webhooks.md)."""
    endpoint_for(receiver.url("/latency"))
    start_worker()
    latencies = []
    for n in range(10):
        with committed():
            started = time.time()
            make_license()
        [*_, got] = receiver.wait_for("/latency", count=n + 1)
        latencies.append(got.at - started)
    median = statistics.median(latencies)
    print(
        f"\nwebhook delivery latency: median {median * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
    )
    assert median < 2.0


def test_a_500_is_retried(committed_world, receiver, start_worker):
    receiver.script["/flaky"] = [500, 503]
    endpoint, _ = endpoint_for(receiver.url("/flaky"))
    start_worker()
    with committed():
        make_license()
    attempts = receiver.wait_for("/flaky", count=3, timeout=60)
    assert len({a.headers["webhook-id"] for a in attempts}) == 1  # the same message each time
    # Backoff: about 1 s, then about 2 s (WEBHOOK_RETRY_BASE_SECONDS=1, +-20 % jitter).
    assert attempts[1].at - attempts[0].at >= 0.7
    assert attempts[2].at - attempts[1].at >= 1.5
    delivery = wait_until(
        lambda: (d := delivery_of(endpoint)).status == WebhookDelivery.Status.SUCCEEDED and d
    )
    assert delivery.attempts == 3


def test_a_refused_connection_is_retried(committed_world, start_worker):
    port = free_port(range(8900, 8999))
    endpoint, _ = endpoint_for(f"http://127.0.0.1:{port}/later")
    start_worker()
    with committed():
        make_license()
    failed = wait_until(lambda: (d := delivery_of(endpoint)).attempts >= 1 and d)
    assert failed.status == WebhookDelivery.Status.PENDING
    assert "Connection" in failed.last_error or "refused" in failed.last_error.lower()
    with run_receiver(port) as late:
        [got] = late.wait_for("/later", timeout=60)
        assert json.loads(got.body)["type"] == "license.created"
    assert delivery_of(endpoint).attempts >= 2


def test_a_410_disables_the_endpoint(committed_world, receiver, start_worker):
    receiver.script["/gone"] = [410]
    endpoint, _ = endpoint_for(receiver.url("/gone"))
    start_worker()
    with committed():
        make_license()
    receiver.wait_for("/gone")

    def disabled():
        with committed():
            return not WebhookEndpoint.objects.get(pk=endpoint.pk).active

    wait_until(disabled)
    assert delivery_of(endpoint).status == WebhookDelivery.Status.FAILED
    with committed():
        from monitoring.models import Alert

        alerts = Alert.objects.filter(kind=Alert.Kind.WEBHOOK_DISABLED, message__contains="410")
        assert alerts.exists()
        make_license()  # nothing more is sent to a disabled endpoint
        alerts.delete()
    time.sleep(2)
    assert len(receiver.on("/gone")) == 1


def test_a_rolled_back_change_sends_nothing(committed_world, receiver, start_worker):
    endpoint_for(receiver.url("/atomic"), events=("license.created", "license.updated"))
    start_worker()
    with committed():
        plan = make_plan()
        with pytest.raises(RuntimeError), transaction.atomic():
            doomed = licensing.issue_license(product=plan.product, plan=plan)
            assert WebhookEvent.objects.filter(type="license.created").exists()  # written...
            raise RuntimeError("the change fails after the event was written")
        assert not WebhookEvent.objects.exists()  # ...and rolled back with the change
        kept = make_license(plan)
    # The committed licence's event arrives; the rolled-back one's never does.
    [got] = receiver.wait_for("/atomic")
    assert json.loads(got.body)["data"]["license"]["id"] == kept.pk
    time.sleep(1.5)
    ids = [json.loads(r.body)["data"]["license"]["key"] for r in receiver.on("/atomic")]
    assert ids == [kept.key] and doomed.key not in ids


def test_no_duplicate_across_two_workers(committed_world, receiver, start_worker):
    endpoint_for(receiver.url("/pair"))
    with committed():
        plan = make_plan()
        for _ in range(30):
            make_license(plan)
    start_worker()
    start_worker()
    got = receiver.wait_for("/pair", count=30, timeout=60)
    time.sleep(2)  # room for a duplicate to show up
    ids = [r.headers["webhook-id"] for r in receiver.on("/pair")]
    assert len(ids) == 30 and len(set(ids)) == 30, got


def test_a_worker_killed_mid_delivery_redelivers(committed_world, receiver, start_worker):
    receiver.hang["/crash"] = 60  # the first request is still waiting for its answer...
    endpoint, _ = endpoint_for(receiver.url("/crash"))
    doomed = start_worker()
    with committed():
        make_license()
    receiver.wait_for("/crash")
    doomed.kill()  # ...when its worker dies
    start_worker()
    # The survivor notices the silent worker (3 heartbeats of 1 s) within a stalled-jobs check
    # (every 10 s) and runs the job again: the same message, delivered.
    attempts = receiver.wait_for("/crash", count=2, timeout=60)
    assert attempts[0].headers["webhook-id"] == attempts[1].headers["webhook-id"]
    wait_until(lambda: delivery_of(endpoint).status == WebhookDelivery.Status.SUCCEEDED)


def test_a_worker_defers_the_periodic_jobs(committed_world, start_worker):
    start_worker()
    deadline = time.monotonic() + 30
    deferred: set[str] = set()
    while (
        time.monotonic() < deadline
        and not {
            "periodic.flush_usage",
            "periodic.retry_stalled_jobs",
        }
        <= deferred
    ):
        with django_connection.cursor() as cursor:
            cursor.execute("SELECT DISTINCT task_name FROM procrastinate_periodic_defers")
            deferred = {row[0] for row in cursor.fetchall()}
        time.sleep(0.2)
    assert {"periodic.flush_usage", "periodic.retry_stalled_jobs"} <= deferred
