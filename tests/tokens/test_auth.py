"""Token exchange, refresh and access-token checks: every refusal case of CONTRACT sections 4-6."""

from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from tests.helpers import assert_invalid_token, exchange, me
from tokens import jwt as api_jwt
from tokens import services
from tokens.jwt import ApiAccessToken, ApiRefreshToken, issue
from tokens.models import UserToken

pytestmark = pytest.mark.django_db


def refresh_pair(client, refresh_token):
    return client.post(
        "/v1/auth/refresh", {"refresh_token": refresh_token}, content_type="application/json"
    )


# --- Exchange


def test_exchange_succeeds_with_a_fresh_secret(alpha_client, make_user_token):
    token, secret = make_user_token("alpha", ["view_users", "view_licenses"])
    response = exchange(alpha_client, secret)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in", "permissions"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 86400
    assert body["permissions"] == ["view_licenses", "view_users"]
    assert response["Cache-Control"] == "no-store"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["tenant"] == "alpha" and claims["utid"] == token.pk and claims["gen"] == 1
    assert claims["token_type"] == "access"
    assert claims["exp"] - claims["iat"] == 86400


def test_secret_is_accepted_in_any_case_and_with_spaces(alpha_client, make_user_token):
    _, secret = make_user_token("alpha")
    assert exchange(alpha_client, f"  {secret.upper()} ").status_code == 200


@pytest.mark.parametrize(
    "value", ["00000000-0000-4000-8000-000000000000", "not-a-uuid", "", "x" * 150, 12345]
)
def test_exchange_refuses_unknown_and_malformed_values(alpha_client, value):
    response = exchange(alpha_client, value)
    if value == "":
        assert response.status_code == 400  # a required field left blank is bad input
        assert response.json()["error"] == "Invalid request"
    else:
        assert_invalid_token(response)


def test_exchange_without_body_is_bad_input(alpha_client):
    response = alpha_client.post("/v1/auth/token", {}, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {
        "error": "Invalid request",
        "details": {"user_token": ["This field is required."]},
    }


def test_exchange_refuses_a_deactivated_token(alpha_client, make_user_token):
    token, secret = make_user_token("alpha")
    with schema_context("alpha"):
        services.deactivate_user_token(token, via="test")
    assert_invalid_token(exchange(alpha_client, secret))


def test_exchange_refuses_a_token_past_expires_at(alpha_client, make_user_token):
    _, secret = make_user_token("alpha", expires_at=timezone.now() - timedelta(seconds=1))
    assert_invalid_token(exchange(alpha_client, secret))


def test_exchange_refuses_a_token_whose_owner_is_inactive(alpha_client, make_user_token):
    token, secret = make_user_token("alpha")
    with schema_context("alpha"):
        get_user_model().objects.filter(pk=token.owner_id).update(is_active=False)
    assert_invalid_token(exchange(alpha_client, secret))


def test_exchange_refuses_another_tenants_token(alpha_client, beta_client, make_user_token):
    _, beta_secret = make_user_token("beta")
    assert_invalid_token(exchange(alpha_client, beta_secret))
    assert exchange(beta_client, beta_secret).status_code == 200


def test_exchange_refuses_an_address_outside_the_allowed_networks(alpha_client, make_user_token):
    _, secret = make_user_token("alpha", allowed_ips=["10.1.0.0/16", "2001:db8::/32"])
    assert_invalid_token(exchange(alpha_client, secret))  # test client comes from 127.0.0.1
    ok = alpha_client.post(
        "/v1/auth/token",
        {"user_token": secret},
        content_type="application/json",
        REMOTE_ADDR="10.1.2.3",
    )
    assert ok.status_code == 200
    ok6 = alpha_client.post(
        "/v1/auth/token",
        {"user_token": secret},
        content_type="application/json",
        REMOTE_ADDR="2001:db8::7",
    )
    assert ok6.status_code == 200


def test_secret_is_stored_only_as_a_keyed_digest(make_user_token):
    token, secret = make_user_token("alpha")
    with schema_context("alpha"):
        row = UserToken.objects.filter(pk=token.pk).values().get()
    assert secret not in repr(row)
    assert row["last_four"] == secret[-4:]
    assert row["key_id"] == settings.USER_TOKEN_HASH_KEY_ID
    assert len(row["digest"]) == 64


# --- Access tokens


def test_access_token_works_and_reads_permissions_as_they_are_now(api_client):
    client = api_client("alpha", ["edit_user_tokens", "view_users"])
    assert client.get("/v1/user-tokens").status_code == 200
    with schema_context("alpha"):
        services.update_user_token(client.user_token, via="test", permissions=["view_users"])
    response = client.get("/v1/user-tokens")
    assert response.status_code == 403
    assert response.json() == {"error": "Access denied"}
    assert client.get("/v1/auth/me").json()["permissions"] == ["view_users"]


@pytest.mark.parametrize(
    ("granted", "method", "path", "named"),
    [
        (["view_users"], "get", "/v1/user-tokens", "edit_user_tokens"),
        (["view_users"], "post", "/v1/users", "create_users"),
        (["view_products"], "get", "/v1/licenses", "view_licenses"),
        (["view_webhooks"], "post", "/v1/webhooks", "edit_webhooks"),
    ],
)
def test_a_403_names_the_missing_permissions_in_a_header(api_client, granted, method, path, named):
    client = api_client("alpha", granted)
    response = getattr(client, method)(path, {}, content_type="application/json")
    assert response.status_code == 403
    assert response.json() == {"error": "Access denied"}
    assert response["X-Required-Permissions"] == named


def test_an_allowed_request_names_no_permissions(api_client):
    response = api_client("alpha", ["view_users"]).get("/v1/users")
    assert response.status_code == 200
    assert "X-Required-Permissions" not in response


def test_me_describes_the_token_and_the_tenants_allowance(api_client, tenant_alpha):
    client = api_client("alpha", ["view_users"], name="crm sync")
    first = client.get("/v1/auth/me")
    second = client.get("/v1/auth/me")
    body = second.json()
    assert body["id"] == client.user_token.pk and body["name"] == "crm sync"
    assert body["permissions"] == ["view_users"] and body["expires_at"] is None
    assert body["owner"]["id"] == client.user_token.owner_id
    assert body["rate_limit"]["limit"] == tenant_alpha.request_limit
    assert body["rate_limit"]["period"] == tenant_alpha.request_period
    # What remains after this request, the same figure as the response header.
    assert body["rate_limit"]["remaining"] == int(second["X-RateLimit-Remaining"])
    assert body["rate_limit"]["remaining"] == first.json()["rate_limit"]["remaining"] - 1


def test_missing_header_is_401(alpha_client):
    assert_invalid_token(alpha_client.get("/v1/auth/me"))


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer a b", "Token abc", "Basic dXNlcjpwYXNz", "Bearer ✓"]
)
def test_malformed_header_is_401(alpha_client, header):
    assert_invalid_token(alpha_client.get("/v1/auth/me", HTTP_AUTHORIZATION=header))


def test_token_in_url_is_not_accepted(api_client, alpha_client):
    access = api_client("alpha").tokens["access_token"]
    assert_invalid_token(alpha_client.get(f"/v1/auth/me?access_token={access}"))
    assert_invalid_token(alpha_client.get(f"/v1/auth/me?token={access}"))


def test_expired_access_token_is_refused(alpha_client, make_user_token):
    token, _ = make_user_token("alpha")
    with schema_context("alpha"):
        access = issue(ApiAccessToken, tenant="alpha", user_token=token)
    access.set_exp(from_time=timezone.now() - timedelta(days=2))
    assert_invalid_token(me(alpha_client, str(access)))


def test_a_remembered_access_token_is_refused_once_it_expires(
    monkeypatch, alpha_client, make_user_token
):
    """The signature is checked once per process (tokens.jwt.verified_payload); the expiry, the
    token id and the type on every request."""
    token, _ = make_user_token("alpha")
    with schema_context("alpha"):
        access = str(issue(ApiAccessToken, tenant="alpha", user_token=token))
    assert me(alpha_client, access).status_code == 200
    assert any(key[1] == access for key in api_jwt._verified)  # remembered
    assert me(alpha_client, access).status_code == 200
    later = timezone.now() + ApiAccessToken.lifetime + timedelta(minutes=1)
    monkeypatch.setattr(api_jwt, "aware_utcnow", lambda: later)
    assert_invalid_token(me(alpha_client, access))


def test_only_verified_access_tokens_are_remembered(api_client, alpha_client):
    good = api_client("alpha").tokens["access_token"]
    claims = jwt.decode(good, options={"verify_signature": False})
    forged = jwt.encode(claims, "not-the-signing-key-but-long-enough-0123456789", algorithm="HS256")
    for _ in range(2):
        assert_invalid_token(me(alpha_client, forged))
    assert not any(key[1] == forged for key in api_jwt._verified)


def test_the_remembered_tokens_are_bounded(monkeypatch, api_client, alpha_client):
    monkeypatch.setattr(api_jwt, "VERIFIED_MAX", 2)
    for _ in range(3):
        assert me(alpha_client, api_client("alpha").tokens["access_token"]).status_code == 200
    assert len(api_jwt._verified) <= 2


def test_token_signed_with_another_key_is_refused(api_client, alpha_client):
    good = api_client("alpha").tokens["access_token"]
    claims = jwt.decode(good, options={"verify_signature": False})
    forged = jwt.encode(claims, "not-the-signing-key-but-long-enough-0123456789", algorithm="HS256")
    assert_invalid_token(me(alpha_client, forged))


def test_alg_none_and_other_algorithms_are_refused(api_client, alpha_client):
    good = api_client("alpha").tokens["access_token"]
    claims = jwt.decode(good, options={"verify_signature": False})
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert_invalid_token(me(alpha_client, unsigned))
    hs512 = jwt.encode(claims, settings.JWT_SIGNING_KEY, algorithm="HS512")
    assert_invalid_token(me(alpha_client, hs512))


def test_refresh_token_is_not_an_access_token_nor_the_reverse(api_client, alpha_client):
    tokens = api_client("alpha").tokens
    assert_invalid_token(me(alpha_client, tokens["refresh_token"]))
    assert_invalid_token(refresh_pair(alpha_client, tokens["access_token"]))


def test_access_tokens_issued_before_a_refresh_are_refused(api_client, alpha_client):
    client = api_client("alpha")
    old_access, old_refresh = client.tokens["access_token"], client.tokens["refresh_token"]
    with schema_context("alpha"):
        new_secret = services.refresh_user_token(client.user_token, via="test")
    assert_invalid_token(me(alpha_client, old_access))
    assert_invalid_token(refresh_pair(alpha_client, old_refresh))
    assert_invalid_token(exchange(alpha_client, client.secret))
    fresh = exchange(alpha_client, new_secret).json()
    assert me(alpha_client, fresh["access_token"]).status_code == 200


def test_access_token_refused_after_deactivation(api_client):
    client = api_client("alpha")
    with schema_context("alpha"):
        services.deactivate_user_token(client.user_token, via="test")
    assert_invalid_token(client.get("/v1/auth/me"))


def test_access_token_refused_after_owner_deactivation(api_client):
    client = api_client("alpha")
    with schema_context("alpha"):
        get_user_model().objects.filter(pk=client.user_token.owner_id).update(is_active=False)
    assert_invalid_token(client.get("/v1/auth/me"))


def test_access_token_refused_once_the_user_token_expires(api_client):
    client = api_client("alpha")
    with schema_context("alpha"):
        services.expire_user_token(client.user_token, via="test")
    assert_invalid_token(client.get("/v1/auth/me"))


def test_access_token_refused_from_outside_the_allowed_networks(api_client, alpha_client):
    client = api_client("alpha")
    with schema_context("alpha"):
        services.update_user_token(client.user_token, via="test", allowed_ips=["192.0.2.0/24"])
    assert_invalid_token(client.get("/v1/auth/me"))
    assert client.get("/v1/auth/me", REMOTE_ADDR="192.0.2.9").status_code == 200
    # X-Forwarded-For is not trusted without a configured proxy count.
    assert_invalid_token(client.get("/v1/auth/me", HTTP_X_FORWARDED_FOR="192.0.2.9"))


def test_access_token_of_another_tenant_is_refused(api_client, alpha_client):
    beta_access = api_client("beta").tokens["access_token"]
    assert_invalid_token(me(alpha_client, beta_access))


def test_access_token_with_a_forged_tenant_claim_is_refused(api_client, alpha_client):
    # Even correctly signed, a token naming another tenant is refused by the tenant claim check.
    client = api_client("beta")
    with schema_context("beta"):
        beta_token = issue(ApiAccessToken, tenant="beta", user_token=client.user_token)
    assert_invalid_token(me(alpha_client, str(beta_token)))


# --- Refresh tokens


def test_refresh_rotates_and_a_spent_refresh_token_is_refused(api_client, alpha_client):
    tokens = api_client("alpha", ["view_users"]).tokens
    first = refresh_pair(alpha_client, tokens["refresh_token"])
    assert first.status_code == 200
    body = first.json()
    assert body["permissions"] == ["view_users"] and body["expires_in"] == 86400
    assert body["refresh_token"] != tokens["refresh_token"]
    assert me(alpha_client, body["access_token"]).status_code == 200
    assert refresh_pair(alpha_client, body["refresh_token"]).status_code == 200


def test_a_replayed_refresh_token_is_refused_and_revokes_what_came_from_it(
    api_client, alpha_client
):
    tokens = api_client("alpha", ["view_users"]).tokens
    body = refresh_pair(alpha_client, tokens["refresh_token"]).json()
    assert_invalid_token(refresh_pair(alpha_client, tokens["refresh_token"]))
    # Reuse detection (tests/tokens/test_revocation.py): the pair issued from it is dead too.
    assert_invalid_token(refresh_pair(alpha_client, body["refresh_token"]))


def test_refresh_token_of_another_tenant_is_refused(api_client, alpha_client):
    beta_refresh = api_client("beta").tokens["refresh_token"]
    assert_invalid_token(refresh_pair(alpha_client, beta_refresh))


def test_refresh_refused_after_deactivation(api_client, alpha_client):
    client = api_client("alpha")
    with schema_context("alpha"):
        services.deactivate_user_token(client.user_token, via="test")
    assert_invalid_token(refresh_pair(alpha_client, client.tokens["refresh_token"]))


def test_expired_refresh_token_is_refused(alpha_client, make_user_token):
    token, _ = make_user_token("alpha")
    with schema_context("alpha"):
        refresh = issue(ApiRefreshToken, tenant="alpha", user_token=token)
    refresh.set_exp(from_time=timezone.now() - timedelta(days=60))
    assert_invalid_token(refresh_pair(alpha_client, str(refresh)))


# --- Hot path


def test_authentication_costs_one_query_on_a_warm_path(api_client):
    client = api_client("alpha")
    access = client.tokens["access_token"]
    with schema_context("alpha"):
        services.authenticate_access_token(access, address="127.0.0.1")  # warm: last_used set
        with CaptureQueriesContext(connection) as queries:
            auth = services.authenticate_access_token(access, address="127.0.0.1")
    assert auth.user_token.pk == client.user_token.pk
    assert len(queries) == 1, [q["sql"] for q in queries]


def test_last_used_is_written_at_most_once_a_minute(api_client):
    client = api_client("alpha")
    with schema_context("alpha"):
        first = UserToken.objects.get(pk=client.user_token.pk).last_used_at
    client.get("/v1/auth/me")
    with schema_context("alpha"):
        assert UserToken.objects.get(pk=client.user_token.pk).last_used_at == first
        UserToken.objects.filter(pk=client.user_token.pk).update(
            last_used_at=timezone.now() - timedelta(minutes=2)
        )
    client.get("/v1/auth/me")
    with schema_context("alpha"):
        assert UserToken.objects.get(pk=client.user_token.pk).last_used_at > first
