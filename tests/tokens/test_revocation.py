"""Revocation rules: deactivation revokes, a replayed refresh token kills the pair issued from it,
refreshing another token through the API cannot shed limits, and forged claims never cause a 500."""

from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from django_tenants.utils import schema_context

from monitoring.models import Alert, SecurityEvent
from tests.helpers import ACCESS_DENIED, INVALID_TOKEN, exchange, me
from tokens import services
from tokens.models import UserToken

pytestmark = pytest.mark.django_db


def refresh_pair(client, refresh_token):
    return client.post(
        "/v1/auth/refresh", {"refresh_token": refresh_token}, content_type="application/json"
    )


# --- Item 9: deactivation is a revocation


def test_jwts_stay_dead_after_deactivation_and_reactivation(alpha_client, make_user_token):
    token, secret = make_user_token("alpha")
    pair = exchange(alpha_client, secret).json()
    with schema_context("alpha"):
        services.deactivate_user_token(token, via="test")
        services.activate_user_token(token, via="admin")
    assert me(alpha_client, pair["access_token"]).json() == INVALID_TOKEN
    assert refresh_pair(alpha_client, pair["refresh_token"]).json() == INVALID_TOKEN
    # The secret itself works again: a new exchange gives a working pair.
    fresh = exchange(alpha_client, secret).json()
    assert me(alpha_client, fresh["access_token"]).status_code == 200


def test_reactivation_is_recorded(make_user_token, in_alpha):
    token, _ = make_user_token("alpha")
    services.deactivate_user_token(token, via="command")
    actor = get_user_model().objects.get(username="alpha-admin")
    services.activate_user_token(token, actor=actor, via="admin")
    event = SecurityEvent.objects.get(kind=SecurityEvent.Kind.USER_TOKEN_ACTIVATED)
    assert event.user_token == token and event.actor == actor and event.via == "admin"


# --- Item 11: a replayed spent refresh token kills the pair issued from it


def test_replayed_refresh_token_kills_the_pair_issued_from_it(alpha_client, make_user_token):
    token, secret = make_user_token("alpha")
    first = exchange(alpha_client, secret).json()
    second = refresh_pair(alpha_client, first["refresh_token"]).json()
    assert me(alpha_client, second["access_token"]).status_code == 200

    replay = refresh_pair(alpha_client, first["refresh_token"])
    assert replay.status_code == 401 and replay.json() == INVALID_TOKEN
    assert me(alpha_client, second["access_token"]).json() == INVALID_TOKEN
    assert refresh_pair(alpha_client, second["refresh_token"]).json() == INVALID_TOKEN
    with schema_context("alpha"):
        alert = Alert.objects.get(kind=Alert.Kind.REFRESH_TOKEN_REUSED)
        assert alert.user_token_id == token.pk and alert.address == "127.0.0.1"
    # The integration recovers by exchanging its secret again.
    assert exchange(alpha_client, secret).status_code == 200


# --- Item 3: refreshing another User Token through the API cannot shed limits


def refresh(client, target):
    return client.post(f"/v1/user-tokens/{target.pk}/refresh")


def assert_denied_and_recorded(client, target, reason):
    response = refresh(client, target)
    assert response.status_code == 403 and response.json() == ACCESS_DENIED
    with schema_context("alpha"):
        event = SecurityEvent.objects.filter(kind=SecurityEvent.Kind.PERMISSION_DENIED).latest("id")
        assert event.user_token_id == client.user_token.pk
        assert event.reason == reason and event.details["target"] == target.pk
        assert UserToken.objects.get(pk=target.pk).generation == 1


def test_more_permissions_are_refused_and_recorded(api_client, make_user_token):
    client = api_client("alpha", ["edit_user_tokens"])
    target, _ = make_user_token("alpha", ["edit_user_tokens", "delete_users"])
    assert_denied_and_recorded(client, target, "target_has_more_permissions")


def test_a_restricted_caller_refreshes_only_tokens_restricted_within_its_networks(
    api_client, make_user_token
):
    client = api_client("alpha", ["edit_user_tokens"], allowed_ips=["127.0.0.0/8"])
    for networks in ([], ["10.0.0.0/8"], ["127.0.0.0/8", "2001:db8::/32"], ["0.0.0.0/0"]):
        target, _ = make_user_token("alpha", allowed_ips=networks)
        assert_denied_and_recorded(client, target, "target_less_restricted_by_address")
    inside, _ = make_user_token("alpha", allowed_ips=["127.0.0.1/32"])
    assert refresh(client, inside).status_code == 200


def test_an_unrestricted_caller_refreshes_restricted_and_unrestricted_tokens(
    api_client, make_user_token
):
    client = api_client("alpha", ["edit_user_tokens"])
    for networks in ([], ["10.0.0.0/8"]):
        target, _ = make_user_token("alpha", allowed_ips=networks)
        assert refresh(client, target).status_code == 200


def test_a_later_expiry_is_refused(api_client, make_user_token):
    soon = timezone.now() + timedelta(days=1)
    client = api_client("alpha", ["edit_user_tokens"], expires_at=soon)
    for later in (None, soon + timedelta(days=1)):
        target, _ = make_user_token("alpha", expires_at=later)
        assert_denied_and_recorded(client, target, "target_expires_later")
    earlier, _ = make_user_token("alpha", expires_at=soon - timedelta(hours=1))
    assert refresh(client, earlier).status_code == 200


def test_tokens_of_administrators_need_a_caller_owned_by_one(api_client, make_user_token):
    client = api_client("alpha", ["edit_user_tokens"])
    with schema_context("alpha"):
        User = get_user_model()
        staff = User.objects.create_user("refresh-staff", is_staff=True)
        superuser = User.objects.create_user("refresh-root", is_staff=True, is_superuser=True)
    for owner in (staff, superuser):
        target, _ = make_user_token("alpha", owner=owner)
        assert_denied_and_recorded(client, target, "target_owner_more_privileged")
    staff_client = api_client("alpha", ["edit_user_tokens"], owner=staff)
    staff_target, _ = make_user_token("alpha", owner=staff)
    assert refresh(staff_client, staff_target).status_code == 200
    root_target, _ = make_user_token("alpha", owner=superuser)
    assert refresh(staff_client, root_target).status_code == 403


# --- Item 7: validly signed tokens with claims of the wrong type or range


def signed(claims):
    return jwt.encode(claims, settings.JWT_SIGNING_KEY, algorithm="HS256")


@pytest.mark.parametrize(
    "change",
    [
        {"exp": 2**62},
        {"exp": "tomorrow"},
        {"gen": True},
        {"gen": "1"},
        {"utid": True},
        {"utid": 2**70},
        {"tenant": ["alpha"]},
        {"jti": 12},
        {"jti": "x" * 500},
        {"iat": "now"},
    ],
    ids=lambda change: ",".join(f"{k}={v!r}"[:30] for k, v in change.items()),
)
def test_signed_tokens_with_wrong_claims_are_invalid_not_errors(change, api_client, alpha_client):
    tokens = api_client("alpha").tokens
    for kind, call in (("access_token", me), ("refresh_token", refresh_pair)):
        claims = {**jwt.decode(tokens[kind], options={"verify_signature": False}), **change}
        response = call(alpha_client, signed(claims))
        assert response.status_code == 401, (kind, response.content)
        assert response.json() == INVALID_TOKEN
