"""IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are the IPv4 clients they stand for: in the abuse
throttle, the admin-login throttle, alerts, `allowed_ips` and every recorded address.

A dual-stack listener reports IPv4 clients that way (checked below with a real gunicorn bound to
`[::ffff:127.0.0.1]`, whose REMOTE_ADDR is `::ffff:127.0.0.1`), and so may a trusted proxy.
"""

import secrets
import time

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django_tenants.utils import schema_context

from api.client_address import normalise_address
from monitoring.models import Alert, SecurityEvent
from tenants.record_buffer import drain_buffered_records
from tests.helpers import fresh_address
from tests.live import committed_records_removed
from tests.servers import AppServer, production_env, test_database_url
from tokens.models import UserToken
from tokens.services import create_user_token

pytestmark = pytest.mark.django_db

PORTS = range(8700, 8720)
UNKNOWN_UUID = "00000000-0000-4000-8000-000000000000"
TOO_MANY = {"error": "Too Many Requests"}


def test_normalise_address():
    assert normalise_address("::ffff:192.0.2.7") == "192.0.2.7"
    assert normalise_address("::FFFF:c000:0207") == "192.0.2.7"
    assert normalise_address(" 2001:DB8::1 ") == "2001:db8::1"
    assert normalise_address("192.0.2.7") == "192.0.2.7"
    assert normalise_address("not an address") == "not an address"


def validate(client, address, **extra):
    return client.post(
        "/v1/licenses/validate",
        {"key": "NOPE"},
        content_type="application/json",
        REMOTE_ADDR=address,
        **extra,
    )


def test_two_mapped_ipv4_clients_do_not_share_a_bucket(settings, alpha_client):
    settings.ABUSE_FAILURE_RATE = "3/d"
    for _ in range(3):
        assert validate(alpha_client, "::ffff:198.51.100.1").status_code == 200
    assert validate(alpha_client, "::ffff:198.51.100.1").json() == TOO_MANY
    # The same client over IPv4 is the same bucket; another IPv4 client is not.
    assert validate(alpha_client, "198.51.100.1").status_code == 429
    assert validate(alpha_client, "::ffff:198.51.100.2").status_code == 200


def test_an_ipv4_network_in_allowed_ips_matches_a_mapped_client(alpha_client, make_user_token):
    token, secret = make_user_token("alpha", allowed_ips=["198.51.100.0/24"])
    answer = alpha_client.post(
        "/v1/auth/token",
        {"user_token": secret},
        content_type="application/json",
        REMOTE_ADDR="::ffff:198.51.100.9",
    )
    assert answer.status_code == 200, answer.content
    with schema_context("alpha"):
        assert UserToken.objects.get(pk=token.pk).last_used_ip == "198.51.100.9"


def test_alerts_and_events_record_the_ipv4_address(settings, alpha_client):
    settings.ALERT_FAILED_AUTH_THRESHOLD = 3
    # An address of its own: alert counters and fold buckets live in the cache, across tests.
    client = fresh_address()
    for index in range(3):
        # Mapped and plain forms of one client count together towards one alert.
        address = f"::ffff:{client}" if index % 2 else client
        alpha_client.get("/v1/auth/me", HTTP_AUTHORIZATION="Bearer nope", REMOTE_ADDR=address)
    with schema_context("alpha"):
        alert = Alert.objects.get(kind=Alert.Kind.FAILED_AUTHENTICATION)
        assert alert.address == client
        assert "::ffff" not in alert.message
        addresses = set(
            SecurityEvent.objects.filter(kind=SecurityEvent.Kind.AUTHENTICATION_FAILED).values_list(
                "address", flat=True
            )
        )
    assert addresses == {client}


def test_admin_login_throttle_counts_a_mapped_client_as_its_ipv4_address(settings, alpha_client):
    settings.ADMIN_LOGIN_RATE = "2/15m"
    for address in ("::ffff:198.51.100.3", "198.51.100.3"):
        alpha_client.post(
            "/admin/login/", {"username": "alpha-admin", "password": "wrong"}, REMOTE_ADDR=address
        )
    assert alpha_client.get("/admin/login/", REMOTE_ADDR="::ffff:198.51.100.3").status_code == 429
    assert alpha_client.get("/admin/login/", REMOTE_ADDR="::ffff:198.51.100.4").status_code == 200


# --- A real dual-stack listener, and a trusted proxy forwarding mapped addresses


@pytest.fixture(scope="module")
def mapped_server(django_db_setup, django_db_blocker, tmp_path_factory):
    """gunicorn on [::ffff:127.0.0.1] behind one trusted proxy hop, with a committed User Token of
    alpha allowed only from 127.0.0.0/8 (the server shares this process's hashing key)."""
    log = tmp_path_factory.mktemp("mapped") / "server.log"
    with django_db_blocker.unblock(), committed_records_removed("alpha"):
        with schema_context("alpha"):
            owner = get_user_model().objects.create_user(f"mapped-{secrets.token_hex(4)}")
            token, secret = create_user_token(
                owner=owner, name="mapped", permissions=["view_users"], allowed_ips=["127.0.0.0/8"]
            )
            env = production_env(
                test_database_url(),
                ABUSE_FAILURE_RATE="3/d",
                TRUSTED_PROXY_COUNT="1",
                USER_TOKEN_HASH_KEY=settings.USER_TOKEN_HASH_KEY,
                USER_TOKEN_HASH_KEY_ID=settings.USER_TOKEN_HASH_KEY_ID,
            )
        server = AppServer(env, log, PORTS, bind_host="[::ffff:127.0.0.1]").start()
        try:
            yield server, token, secret
        finally:
            server.stop()
            with schema_context("alpha"):
                owner.delete()


def post(server, path, body, **headers):
    return server.request("POST", path, host="alpha.localhost", body=body, headers=headers)


@pytest.mark.live
def test_dual_stack_listener_reports_ipv4_clients_as_ipv4(mapped_server):
    server, token, secret = mapped_server
    # REMOTE_ADDR is ::ffff:127.0.0.1 here (no X-Forwarded-For: the proxy count falls back to it).
    status, _, body = post(server, "/v1/auth/token", {"user_token": secret})
    assert status == 200, body
    with schema_context("alpha"):
        assert UserToken.objects.get(pk=token.pk).last_used_ip == "127.0.0.1"
        exchanged = SecurityEvent.objects.filter(
            user_token=token, kind=SecurityEvent.Kind.TOKEN_EXCHANGED
        )
        # The exchange event is buffered (tenants.record_buffer): drained from Redis here, or
        # written within RECORD_BUFFER_SECONDS by the server process's own queue.
        deadline = time.monotonic() + 15
        while not exchanged.exists() and time.monotonic() < deadline:
            drain_buffered_records("alpha")
            time.sleep(0.2)
        assert exchanged.latest("id").address == "127.0.0.1"


@pytest.mark.live
def test_trusted_forwarded_mapped_addresses_are_separate_ipv4_clients(mapped_server):
    server, _, _ = mapped_server
    first = {"X-Forwarded-For": "::ffff:198.51.100.21"}
    statuses = [
        post(server, "/v1/licenses/validate", {"key": "NOPE"}, **first)[0] for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    # Before: every mapped client fell into the /64 "::" and shared this bucket.
    second = {"X-Forwarded-For": "::ffff:198.51.100.22"}
    assert post(server, "/v1/licenses/validate", {"key": "NOPE"}, **second)[0] == 200
    # The plain IPv4 form of the first client is the same client.
    plain = {"X-Forwarded-For": "198.51.100.21"}
    assert post(server, "/v1/licenses/validate", {"key": "NOPE"}, **plain)[0] == 429
