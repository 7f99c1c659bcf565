"""The tenant's platform licence on the API: expiry, request limit, headers, abuse throttle
(CONTRACT sections 2, 6, 7), through real requests against the test database."""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from tenants import throttling
from tenants.models import Tenant
from tests.helpers import exchange, me

pytestmark = pytest.mark.django_db

INVALID_LICENSE = {"error": "Invalid license"}
LIMIT_REACHED = {"error": "Too Many Requests (Reached license limit)"}
TOO_MANY = {"error": "Too Many Requests"}
UNKNOWN_UUID = "00000000-0000-4000-8000-000000000000"


def set_licence(schema="alpha", **fields):
    Tenant.objects.filter(schema_name=schema).update(**fields)


def validate(client, key="NOPE-NOPE-NOPE", **extra):
    return client.post(
        "/v1/licenses/validate", {"key": key}, content_type="application/json", **extra
    )


def remaining(response) -> int:
    return int(response["X-RateLimit-Remaining"])


# --- Expired licence


def test_expired_licence_refuses_every_kind_of_api_request(
    api_client, alpha_client, beta_client, make_user_token
):
    client = api_client("alpha", ["view_licenses"])
    _, secret = make_user_token("alpha")
    set_licence(expires_at=timezone.now() - timedelta(seconds=1))

    answers = {
        "validation (no token)": validate(alpha_client),
        "token exchange": exchange(alpha_client, secret),
        "token refresh": alpha_client.post(
            "/v1/auth/refresh",
            {"refresh_token": client.tokens["refresh_token"]},
            content_type="application/json",
        ),
        "authenticated": client.get("/v1/licenses"),
        "me": me(client),
        "without a token": alpha_client.get("/v1/licenses"),
        "unknown route": alpha_client.get("/v1/no-such-thing"),
        "api root": alpha_client.get("/v1/"),
    }
    for name, response in answers.items():
        assert response.status_code == 403, name
        assert response.json() == INVALID_LICENSE, name
        assert "X-RateLimit-Limit" in response and "X-RateLimit-Remaining" in response, name

    # The operator and the tenant's administrators can still reach the admin to renew.
    assert alpha_client.get("/admin/login/").status_code == 200
    # Another tenant is not affected.
    assert validate(beta_client).status_code == 200


def test_renewal_restores_access_at_once(api_client, alpha_client):
    client = api_client("alpha", ["view_licenses"])
    set_licence(expires_at=timezone.now() - timedelta(days=1))
    assert client.get("/v1/licenses").status_code == 403
    assert validate(alpha_client).status_code == 403

    set_licence(expires_at=timezone.now() + timedelta(days=365))
    assert client.get("/v1/licenses").status_code == 200
    assert validate(alpha_client).status_code == 200

    set_licence(expires_at=None)  # never expires
    assert client.get("/v1/licenses").status_code == 200


def test_licence_ending_in_the_future_is_valid(alpha_client):
    set_licence(expires_at=timezone.now() + timedelta(minutes=1))
    assert validate(alpha_client).status_code == 200


# --- Request limit


def test_request_past_the_limit_is_refused_with_retry_after(api_client, beta_client):
    client = api_client("alpha", ["view_licenses"])
    set_licence(request_limit=3, request_period="day")

    answers = [client.get("/v1/licenses") for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert [r["X-RateLimit-Limit"] for r in answers] == ["3", "3", "3"]
    assert [remaining(r) for r in answers] == [2, 1, 0]

    refused = client.get("/v1/licenses")
    assert refused.status_code == 429
    assert refused.json() == LIMIT_REACHED
    assert 1 <= int(refused["Retry-After"]) <= 86_400 + 1
    assert refused["X-RateLimit-Limit"] == "3" and remaining(refused) == 0
    # Every endpoint of the tenant shares the limit, token-free validation included.
    assert validate(client).json() == LIMIT_REACHED

    # Another tenant has its own counter.
    other = validate(beta_client)
    assert other.status_code == 200
    assert other["X-RateLimit-Limit"] == "100000" and remaining(other) == 99_999


def test_validations_are_counted(alpha_client):
    set_licence(request_limit=2, request_period="hour")
    assert [validate(alpha_client).status_code for _ in range(3)] == [200, 200, 429]


def test_token_exchanges_are_counted(alpha_client, make_user_token):
    _, secret = make_user_token("alpha")
    set_licence(request_limit=2, request_period="day")
    answers = [exchange(alpha_client, secret) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert answers[2].json() == LIMIT_REACHED


def test_a_licence_change_applies_at_once(api_client):
    client = api_client("alpha", ["view_licenses"])
    set_licence(request_limit=1, request_period="day")
    assert [me(client).status_code for _ in range(2)] == [200, 429]

    set_licence(request_limit=5)  # raised: requests go through again
    response = me(client)
    assert response.status_code == 200 and response["X-RateLimit-Limit"] == "5"

    set_licence(request_limit=0)  # no requests at all
    assert me(client).json() == LIMIT_REACHED


def test_failed_authentication_does_not_use_up_the_licence(api_client, alpha_client):
    client = api_client("alpha", ["view_licenses"])
    set_licence(request_limit=2, request_period="day")
    for _ in range(5):
        refused = alpha_client.get("/v1/licenses", HTTP_AUTHORIZATION="Bearer forged.jwt.value")
        assert refused.status_code == 401
        assert refused["X-RateLimit-Limit"] == "2" and remaining(refused) == 2
        no_token = alpha_client.get("/v1/licenses")
        assert no_token.status_code == 401 and remaining(no_token) == 2
        wrong_secret = exchange(alpha_client, UNKNOWN_UUID)
        assert wrong_secret.status_code == 401 and remaining(wrong_secret) == 2
    # Unknown routes are answered (with the headers) but not counted either.
    unknown = alpha_client.get("/v1/no-such-thing")
    assert unknown.status_code == 404 and remaining(unknown) == 2

    assert [client.get("/v1/licenses").status_code for _ in range(3)] == [200, 200, 429]


def test_an_authenticated_request_without_the_permission_is_counted(api_client):
    client = api_client("alpha", ["view_users"])
    set_licence(request_limit=2, request_period="day")
    denied = client.get("/v1/licenses")
    assert denied.status_code == 403 and denied.json() == {"error": "Access denied"}
    assert remaining(denied) == 1
    assert remaining(me(client)) == 0
    assert me(client).json() == LIMIT_REACHED


def test_headers_on_every_answer_of_a_tenant(api_client, alpha_client):
    client = api_client("alpha", ["view_licenses"])
    answers = [
        client.get("/v1/licenses"),
        client.get("/v1/licenses/999999"),
        client.post("/v1/licenses", {}, content_type="application/json"),
        client.delete("/v1/licenses"),
        alpha_client.post("/v1/licenses/validate", b"{not json", content_type="application/json"),
        alpha_client.get("/v1/no-such-thing"),
    ]
    assert [r.status_code for r in answers] == [200, 404, 403, 405, 400, 404]
    for response in answers:
        assert response["X-RateLimit-Limit"] == "100000"
        assert 0 <= remaining(response) < 100_000


def test_public_domain_answers_carry_no_tenant_counter(client):
    response = client.get("/v1/licenses", HTTP_HOST="localhost")
    assert response.status_code == 404
    assert "X-RateLimit-Limit" not in response


# --- Abuse throttle per client address


@pytest.fixture
def three_failures(settings):
    settings.ABUSE_FAILURE_RATE = "3/d"


def test_repeated_failed_exchanges_from_one_address_are_throttled(
    three_failures, alpha_client, make_user_token
):
    _, secret = make_user_token("alpha")
    attacker = {"REMOTE_ADDR": "203.0.113.7"}
    for _ in range(3):
        assert (
            alpha_client.post(
                "/v1/auth/token", {"user_token": UNKNOWN_UUID}, "application/json", **attacker
            ).status_code
            == 401
        )

    refused = alpha_client.post(
        "/v1/auth/token", {"user_token": UNKNOWN_UUID}, "application/json", **attacker
    )
    assert refused.status_code == 429
    assert refused.json() == TOO_MANY
    assert int(refused["Retry-After"]) >= 1
    # Even the right secret is refused from that address until the window ends: no oracle.
    assert (
        alpha_client.post(
            "/v1/auth/token", {"user_token": secret}, "application/json", **attacker
        ).json()
        == TOO_MANY
    )
    # A forged X-Forwarded-For does not make it another client.
    for forged in ("198.51.100.1", "198.51.100.2, 10.0.0.1"):
        spoofed = alpha_client.post(
            "/v1/auth/token",
            {"user_token": secret},
            "application/json",
            HTTP_X_FORWARDED_FOR=forged,
            **attacker,
        )
        assert spoofed.status_code == 429
    # Another address exchanges as usual.
    good = alpha_client.post(
        "/v1/auth/token", {"user_token": secret}, "application/json", REMOTE_ADDR="10.0.0.2"
    )
    assert good.status_code == 200


def test_failed_refreshes_are_throttled(three_failures, alpha_client):
    for expected in (401, 401, 401, 429):
        response = alpha_client.post(
            "/v1/auth/refresh", {"refresh_token": "not.a.token"}, "application/json"
        )
        assert response.status_code == expected


def test_guessing_licence_keys_is_throttled_per_address(three_failures, alpha_client, beta_client):
    assert [validate(alpha_client).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert validate(alpha_client).json() == TOO_MANY
    assert validate(alpha_client, REMOTE_ADDR="10.9.9.9").status_code == 200
    # The throttle counts per tenant: the same address guessing at another tenant starts afresh.
    assert validate(beta_client).status_code == 200


def test_throttled_attempts_do_not_use_up_the_licence(three_failures, alpha_client):
    set_licence(request_limit=4, request_period="day")
    answers = [validate(alpha_client) for _ in range(6)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429, 429, 429]
    assert [remaining(r) for r in answers] == [3, 2, 1, 1, 1, 1]
    assert answers[-1].json() == TOO_MANY


def test_an_ipv6_client_is_counted_by_its_64_network(three_failures, alpha_client):
    for suffix in ("1", "2", "ffff:1"):
        assert validate(alpha_client, REMOTE_ADDR=f"2001:db8:0:1::{suffix}").status_code == 200
    assert validate(alpha_client, REMOTE_ADDR="2001:db8:0:1:abcd::9").status_code == 429
    assert validate(alpha_client, REMOTE_ADDR="2001:db8:0:2::1").status_code == 200


def test_with_a_trusted_proxy_the_forwarded_address_is_the_client(
    three_failures, settings, alpha_client
):
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = {"REMOTE_ADDR": "10.0.0.254"}
    for _ in range(3):
        validate(alpha_client, HTTP_X_FORWARDED_FOR="203.0.113.9", **proxy)
    blocked = validate(alpha_client, HTTP_X_FORWARDED_FOR="203.0.113.9", **proxy)
    assert blocked.status_code == 429
    # The client can prepend anything; the proxy's own entry (the rightmost) is what counts.
    prefixed = validate(alpha_client, HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9", **proxy)
    assert prefixed.status_code == 429
    assert validate(alpha_client, HTTP_X_FORWARDED_FOR="203.0.113.10", **proxy).status_code == 200


def test_unknown_scope_is_a_programming_error(rf):
    with pytest.raises(ValueError, match="scope"):
        throttling.count_failed_attempt(rf.get("/"), "login")


# --- Counter store unreachable: fail open


@pytest.fixture
def unreachable_redis(settings):
    settings.CACHES = {
        **settings.CACHES,
        "ratelimit": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
            "KEY_FUNCTION": "django_tenants.cache.make_key",
        },
    }
    # The records that cannot reach Redis are written at once: in the request, inside the test's
    # transaction, rather than by the outbox's thread on its own connection (committed, they would
    # outlive the test).
    settings.RECORD_PUSH_BEFORE_ANSWER = True
    throttling._last_store_error_logged = 0.0


@pytest.fixture
def broken_database_counter(settings):
    settings.CACHES = {
        **settings.CACHES,
        "ratelimit": {"BACKEND": "tenants.cache.PostgresCounterCache", "LOCATION": "missing"},
    }
    throttling._last_store_error_logged = 0.0


@pytest.mark.parametrize("store", ["unreachable_redis", "broken_database_counter"])
def test_api_keeps_answering_when_the_counter_store_fails(
    store, request, caplog, api_client, alpha_client, three_failures
):
    client = api_client("alpha", ["view_licenses"])  # exchanged while the store still worked
    request.getfixturevalue(store)
    set_licence(request_limit=1, request_period="day")
    with caplog.at_level(logging.ERROR, logger="tenants.throttling"):
        answers = [client.get("/v1/licenses") for _ in range(3)]
        answers += [validate(alpha_client) for _ in range(5)]  # abuse throttle fails open too
        answers.append(exchange(alpha_client, UNKNOWN_UUID))
    assert [r.status_code for r in answers] == [200] * 8 + [401]
    for response in answers:
        assert response["X-RateLimit-Limit"] == "1"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "counter store unavailable" in errors[0].getMessage()
