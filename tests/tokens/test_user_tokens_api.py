"""GET /v1/user-tokens, refresh through the API, and the absence of any token-creating route."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django_tenants.utils import schema_context

from tests.helpers import exchange
from tokens.catalogue import ALL_PERMISSIONS
from tokens.models import UserToken

pytestmark = pytest.mark.django_db

SECRET_FIELDS = {"digest", "key_id", "secret", "user_token"}


def test_list_and_detail_never_show_a_secret(api_client, make_user_token):
    client = api_client("alpha", ["edit_user_tokens"])
    other, secret = make_user_token("alpha", ["view_users"], name="crm")
    listing = client.get("/v1/user-tokens")
    assert listing.status_code == 200
    body = listing.json()
    assert set(body) == {"results", "next", "previous"}
    ids = [row["id"] for row in body["results"]]
    assert other.pk in ids and client.user_token.pk in ids
    detail = client.get(f"/v1/user-tokens/{other.pk}")
    assert detail.status_code == 200
    data = detail.json()
    assert data["name"] == "crm" and data["permissions"] == ["view_users"]
    assert data["last_four"] == secret[-4:]
    assert not SECRET_FIELDS & set(data)
    assert secret not in listing.content.decode() + detail.content.decode()
    assert other.digest not in detail.content.decode()


def test_user_tokens_need_edit_user_tokens(api_client, make_user_token):
    client = api_client("alpha", sorted(ALL_PERMISSIONS - {"edit_user_tokens"}))
    target, _ = make_user_token("alpha")
    for response in (
        client.get("/v1/user-tokens"),
        client.get(f"/v1/user-tokens/{target.pk}"),
        client.post(f"/v1/user-tokens/{target.pk}/refresh"),
    ):
        assert response.status_code == 403
        assert response.json() == {"error": "Access denied"}


def beta_only_token(make_user_token):
    """A token of tenant beta whose id no alpha token has (ids are per-schema sequences)."""
    with schema_context("alpha"):
        alpha_ids = set(UserToken.objects.values_list("id", flat=True))
    for _ in range(len(alpha_ids) + 2):
        token, _ = make_user_token("beta")
        if token.pk not in alpha_ids:
            return token
    raise AssertionError("could not make a beta-only token id")


def test_other_tenants_token_is_not_found(api_client, make_user_token):
    client = api_client("alpha", ["edit_user_tokens"])
    beta_token = beta_only_token(make_user_token)
    for response in (
        client.get(f"/v1/user-tokens/{beta_token.pk}"),
        client.post(f"/v1/user-tokens/{beta_token.pk}/refresh"),
    ):
        assert response.status_code == 404
        assert response.json() == {"error": "Not found"}
    with schema_context("beta"):
        assert UserToken.objects.get(pk=beta_token.pk).generation == 1


def test_refresh_through_the_api_returns_the_new_secret_once(
    api_client, make_user_token, alpha_client
):
    client = api_client("alpha", ["edit_user_tokens", "view_users"])
    target, old_secret = make_user_token("alpha", ["view_users"])
    old_pair = exchange(alpha_client, old_secret).json()
    response = client.post(f"/v1/user-tokens/{target.pk}/refresh")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == target.pk
    new_secret = body["user_token"]
    assert new_secret != old_secret and body["last_four"] == new_secret[-4:]
    assert response["Cache-Control"] == "no-store"
    # The old secret and every JWT issued from it stop working at once.
    assert exchange(alpha_client, old_secret).status_code == 401
    stale = alpha_client.get("/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {old_pair['access_token']}")
    assert stale.status_code == 401
    assert exchange(alpha_client, new_secret).status_code == 200
    # Shown once: reading the token afterwards never shows it.
    assert new_secret not in client.get(f"/v1/user-tokens/{target.pk}").content.decode()


def test_refresh_only_tokens_with_a_subset_of_the_callers_permissions(api_client, make_user_token):
    client = api_client("alpha", ["edit_user_tokens", "view_users"])
    stronger, _ = make_user_token("alpha", ["view_users", "delete_users"])
    equal, _ = make_user_token("alpha", ["edit_user_tokens", "view_users"])
    response = client.post(f"/v1/user-tokens/{stronger.pk}/refresh")
    assert response.status_code == 403
    assert response.json() == {"error": "Access denied"}
    # Not a missing permission of the route: no header naming codes to add.
    assert "X-Required-Permissions" not in response
    with schema_context("alpha"):
        assert UserToken.objects.get(pk=stronger.pk).generation == 1
    assert client.post(f"/v1/user-tokens/{equal.pk}/refresh").status_code == 200
    # Refreshing itself is allowed (its permissions are a subset of its own) and ends its session.
    assert client.post(f"/v1/user-tokens/{client.user_token.pk}/refresh").status_code == 200
    assert client.get("/v1/auth/me").status_code == 401


def api_routes():
    """Every route under /v1/ as a concrete path (ids replaced by 1)."""

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern)

    for route in walk(get_resolver("config.urls").url_patterns):
        if route.startswith("v1/") and "(" not in route and "^" not in route:
            yield "/" + route.replace("<int:pk>", "1").replace("<int:id>", "1")


def test_no_route_creates_a_user_token(api_client):
    client = api_client("alpha", sorted(ALL_PERMISSIONS))
    payload = {"name": "sneaky", "owner": 1, "user": 1, "permissions": sorted(ALL_PERMISSIONS)}
    with schema_context("alpha"):
        before = UserToken.objects.count()
    routes = list(api_routes())
    assert "/v1/user-tokens" in routes
    for route in routes:
        for method in ("post", "put", "patch"):
            getattr(client, method)(route, payload, content_type="application/json")
    with schema_context("alpha"):
        assert UserToken.objects.count() == before
    response = client.post("/v1/user-tokens", payload, content_type="application/json")
    assert response.status_code == 405
