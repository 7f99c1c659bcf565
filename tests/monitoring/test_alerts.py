"""Alerts: N failures within the window raise exactly one alert, at the N-th failure."""

import logging

import pytest
from django_tenants.utils import schema_context

from monitoring.models import Alert
from tests.helpers import TENANTS, TenantClient, exchange, fresh_address

pytestmark = pytest.mark.django_db

UNKNOWN = "00000000-0000-4000-8000-0000000000aa"


@pytest.fixture
def thresholds(settings):
    settings.ALERT_FAILED_AUTH_THRESHOLD = 5
    settings.ALERT_DENIED_THRESHOLD = 4
    settings.ALERT_WINDOW_SECONDS = 300
    settings.ABUSE_FAILURE_RATE = "100/m"  # let every attempt through to authentication
    return settings


def alerts(schema="alpha", **filters):
    with schema_context(schema):
        return list(Alert.objects.filter(**filters).order_by("id"))


def alert_lines(caplog):
    return [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "Security alert" in r.getMessage()
    ]


def test_failed_authentications_from_one_address_alert_at_n_not_before(
    thresholds, tenant_alpha, address, caplog
):
    client = TenantClient(tenant_alpha, TENANTS["alpha"], REMOTE_ADDR=address)
    caplog.set_level(logging.WARNING)
    for _ in range(4):  # N - 1
        assert exchange(client, UNKNOWN).status_code == 401
    assert alerts() == [] and alert_lines(caplog) == []

    assert client.get("/v1/users", HTTP_AUTHORIZATION="Bearer nope").status_code == 401  # the N-th
    (alert,) = alerts()
    assert alert.kind == Alert.Kind.FAILED_AUTHENTICATION and alert.status == Alert.Status.OPEN
    assert (alert.address, alert.count, alert.window_seconds) == (address, 5, 300)
    assert address in alert.message
    (line,) = alert_lines(caplog)
    assert address in line.getMessage() and "alpha" in line.getMessage()

    for _ in range(10):  # more failures within the window: no second alert
        exchange(client, UNKNOWN)
    assert len(alerts()) == 1 and len(alert_lines(caplog)) == 1


def test_addresses_are_counted_apart(thresholds, tenant_alpha, address):
    first = TenantClient(tenant_alpha, TENANTS["alpha"], REMOTE_ADDR=address)
    second = TenantClient(tenant_alpha, TENANTS["alpha"], REMOTE_ADDR=fresh_address())
    for _ in range(4):
        exchange(first, UNKNOWN)
        exchange(second, UNKNOWN)
    assert alerts() == []
    exchange(first, UNKNOWN)
    assert [a.address for a in alerts()] == [address]


def test_successes_do_not_count(thresholds, tenant_alpha, address, make_user_token):
    client = TenantClient(tenant_alpha, TENANTS["alpha"], REMOTE_ADDR=address)
    _, secret = make_user_token("alpha")
    for _ in range(4):
        exchange(client, UNKNOWN)
    for _ in range(5):
        assert exchange(client, secret).status_code == 200
    assert alerts() == []


def test_alerts_are_per_tenant(thresholds, tenant_alpha, tenant_beta, address):
    alpha = TenantClient(tenant_alpha, TENANTS["alpha"], REMOTE_ADDR=address)
    beta = TenantClient(tenant_beta, TENANTS["beta"], REMOTE_ADDR=address)
    for _ in range(3):
        exchange(alpha, UNKNOWN)
        exchange(beta, UNKNOWN)
    assert alerts("alpha") == [] and alerts("beta") == []


def test_repeated_denials_of_one_token_alert_at_n(thresholds, api_client, address, caplog):
    caller = api_client("alpha", ["view_users"])
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        assert caller.get("/v1/user-tokens", REMOTE_ADDR=address).status_code == 403
    assert alerts() == []
    assert caller.get("/v1/licenses", REMOTE_ADDR=address).status_code == 403  # the 4th
    (alert,) = alerts()
    assert alert.kind == Alert.Kind.PERMISSION_DENIED
    assert alert.user_token_id == caller.user_token.pk and alert.count == 4
    assert caller.user_token.last_four in alert.message
    assert len(alert_lines(caplog)) == 1
    caller.get("/v1/licenses", REMOTE_ADDR=address)
    assert len(alerts()) == 1


def test_alert_is_visible_and_acknowledged_in_the_admin(
    thresholds, tenant_alpha, address, alpha_client, admin_password
):
    client = TenantClient(tenant_alpha, TENANTS["alpha"], REMOTE_ADDR=address)
    for _ in range(5):
        exchange(client, UNKNOWN)
    (alert,) = alerts()
    assert alpha_client.login(username="alpha-admin", password=admin_password)
    listing = alpha_client.get("/admin/monitoring/alert/")
    assert listing.status_code == 200 and alert.message in listing.content.decode()
    done = alpha_client.post(
        "/admin/monitoring/alert/",
        {"action": "acknowledge_alerts", "_selected_action": [alert.pk]},
    )
    assert done.status_code == 302
    (alert,) = alerts()
    assert alert.status == Alert.Status.ACKNOWLEDGED
    assert alert.acknowledged_by.username == "alpha-admin" and alert.acknowledged_at
