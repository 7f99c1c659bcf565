"""/v1/webhooks and /v1/webhook-deliveries beyond the permission matrix
(tests/licensing/test_endpoint_matrix.py): the secret shown once, refusals, filters."""

import pytest
from django_tenants.utils import schema_context

from tests.helpers import assert_invalid
from tests.licensing.factories import PUBLIC_WEBHOOK_URL, patch, post
from tokens.catalogue import Permission
from webhooks import services
from webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db

BOTH = [Permission.VIEW_WEBHOOKS, Permission.EDIT_WEBHOOKS]


@pytest.fixture
def production(settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = False


def test_the_secret_is_in_the_post_answer_only(api_client, production):
    client = api_client("alpha", BOTH)
    created = post(client, "/v1/webhooks", {"url": PUBLIC_WEBHOOK_URL})
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert body["events"] == [] and body["active"] is True
    assert body["secret_hint"] == f"whsec_…{body['secret'][-4:]}"

    shown = client.get(f"/v1/webhooks/{body['id']}").json()
    listed = client.get("/v1/webhooks").json()["results"]
    assert "secret" not in shown and all("secret" not in item for item in listed)
    assert body["secret"] not in str(shown) + str(listed)
    with schema_context("alpha"):
        assert WebhookEndpoint.objects.get(pk=body["id"]).secret == body["secret"]


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "http://93.184.215.14/hook",
        "javascript:alert(1)",
    ],
)
def test_internal_or_insecure_urls_are_refused(api_client, production, url):
    client = api_client("alpha", BOTH)
    assert_invalid(post(client, "/v1/webhooks", {"url": url}), "url")
    with schema_context("alpha"):
        assert not WebhookEndpoint.objects.exists()


def test_a_patch_to_an_internal_url_changes_nothing(api_client, production):
    client = api_client("alpha", BOTH)
    with schema_context("alpha"):
        endpoint, _ = services.create_endpoint(url=PUBLIC_WEBHOOK_URL)
    answer = patch(client, f"/v1/webhooks/{endpoint.pk}", {"url": "https://192.168.0.1/x"})
    assert_invalid(answer, "url")
    with schema_context("alpha"):
        assert WebhookEndpoint.objects.get(pk=endpoint.pk).url == PUBLIC_WEBHOOK_URL


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": PUBLIC_WEBHOOK_URL, "events": ["license.exploded"]}, "events"),
        ({"url": PUBLIC_WEBHOOK_URL, "events": "license.created"}, "events"),
        ({"url": PUBLIC_WEBHOOK_URL, "secret": "whsec_mine"}, "secret"),
        ({"url": PUBLIC_WEBHOOK_URL, "active": "yes"}, "active"),
        ({}, "url"),
    ],
)
def test_bad_bodies_are_refused(api_client, production, body, field):
    client = api_client("alpha", BOTH)
    assert_invalid(post(client, "/v1/webhooks", body), field)


def test_deliveries_filter_by_endpoint_and_status(api_client, production):
    client = api_client("alpha", BOTH)
    with schema_context("alpha"):
        first, _ = services.create_endpoint(url=PUBLIC_WEBHOOK_URL)
        second, _ = services.create_endpoint(url=PUBLIC_WEBHOOK_URL + "/2")
        event = services.emit_event("license.created", {"license": {"id": 1}})
    everything = client.get("/v1/webhook-deliveries").json()["results"]
    assert {d["endpoint"] for d in everything} == {first.pk, second.pk}
    assert {d["event_id"] for d in everything} == {event.message_id}
    only = client.get(f"/v1/webhook-deliveries?endpoint={first.pk}").json()["results"]
    assert [d["endpoint"] for d in only] == [first.pk]
    assert only[0]["status"] == "pending" and only[0]["attempts"] == 0
    assert client.get("/v1/webhook-deliveries?status=succeeded").json()["results"] == []
    assert_invalid(client.get("/v1/webhook-deliveries?endpoint=x"), "endpoint")
    assert_invalid(client.get("/v1/webhook-deliveries?status=odd"), "status")
