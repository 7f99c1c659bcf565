"""Anonymous and bad-bearer floods cannot grow the database: failed authentications on the API are
folded per address and reason (one event with a count per minute), and an address that keeps
failing is throttled (429 Too Many Requests) like the token exchange."""

import pytest
from django.db.models import Sum
from django_tenants.utils import schema_context

from monitoring import events
from monitoring.models import SecurityEvent
from tests.helpers import TENANTS, TenantClient, fresh_address

pytestmark = pytest.mark.django_db

FLOOD = 30
TOO_MANY = {"error": "Too Many Requests"}
Kind = SecurityEvent.Kind


def failures(reason):
    events.catch_up_folded()
    recorded = SecurityEvent.objects.filter(kind=Kind.AUTHENTICATION_FAILED, reason=reason)
    return recorded.count(), recorded.aggregate(n=Sum("count"))["n"]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [({}, "missing_credentials"), ({"HTTP_AUTHORIZATION": "Bearer forged.jwt.x"}, "invalid_jwt")],
    ids=["anonymous", "bad-bearer"],
)
def test_a_flood_of_failures_is_folded_into_one_event_per_minute(
    settings, tenant_alpha, headers, reason, address
):
    settings.ABUSE_FAILURE_RATE = "1000/m"
    flooder = TenantClient(tenant_alpha, TENANTS["alpha"], REMOTE_ADDR=address)
    for _ in range(FLOOD):
        assert flooder.get("/v1/users", **headers).status_code == 401
    with schema_context("alpha"):
        rows, occurrences = failures(reason)
    # Fold buckets live in the cache: each test floods from an address of its own (`address`).
    assert rows <= 2  # one per minute; the flood may straddle a minute boundary
    assert occurrences == FLOOD


def test_an_address_that_keeps_failing_is_throttled(settings, tenant_alpha, api_client, address):
    settings.ABUSE_FAILURE_RATE = "3/d"
    flooder = TenantClient(tenant_alpha, TENANTS["alpha"], REMOTE_ADDR=address)
    answers = [flooder.get("/v1/users", HTTP_AUTHORIZATION="Bearer nope") for _ in range(3)]
    answers += [flooder.get("/v1/users") for _ in range(2)]
    assert [a.status_code for a in answers] == [401, 401, 401, 429, 429]
    assert answers[-1].json() == TOO_MANY and int(answers[-1]["Retry-After"]) >= 1
    # Other addresses, and good tokens, are not affected.
    other = TenantClient(tenant_alpha, TENANTS["alpha"], REMOTE_ADDR=fresh_address())
    assert other.get("/v1/users").status_code == 401
    assert api_client("alpha", ["view_users"]).get("/v1/users").status_code == 200
    with schema_context("alpha"):
        hit = SecurityEvent.objects.get(kind=Kind.RATE_LIMIT_HIT, address=address)
        assert hit.reason == "abuse" and hit.details["scope"] == "access"
