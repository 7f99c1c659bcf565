"""Every kind of security event is recorded, per tenant, with the right fields (CONTRACT 8)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from monitoring import events as security_events
from monitoring.models import SecurityEvent
from tenants.models import Tenant
from tenants.record_buffer import drain_buffered_records
from tests.helpers import TENANTS, TenantClient, events, exchange, one_event
from tokens import services, signals
from tokens.models import UserToken

pytestmark = pytest.mark.django_db

Kind = SecurityEvent.Kind
AGENT = "IntegrationBot/1.0 (+https://example.com)"


@pytest.fixture
def client(tenant_alpha, address):
    """An anonymous client of alpha, from this test's own address."""
    return TenantClient(tenant_alpha, TENANTS["alpha"], REMOTE_ADDR=address, HTTP_USER_AGENT=AGENT)


def bearer(access):
    return {"HTTP_AUTHORIZATION": f"Bearer {access}"}


def test_token_exchange_success(client, make_user_token, address):
    token, secret = make_user_token("alpha", ["view_users"])
    assert exchange(client, secret).status_code == 200
    drain_buffered_records()  # exchange events are buffered (tenants.record_buffer)
    event = one_event(Kind.TOKEN_EXCHANGED)
    assert event.user_token_id == token.pk
    assert event.token_hint == secret[-4:] == token.last_four
    assert event.address == address
    assert event.user_agent == AGENT
    assert (event.method, event.path) == ("POST", "/v1/auth/token")
    assert event.created_at > timezone.now() - timedelta(minutes=1)


def test_exchange_failure_of_an_unknown_secret(client, address):
    unknown = "5b0f6c1e-8d5a-4e55-9a41-3f0b2a7c9d21"
    assert exchange(client, unknown).status_code == 401
    event = one_event(Kind.EXCHANGE_FAILED)
    assert event.reason == "unknown_token"
    assert event.user_token is None
    assert event.token_hint == "9d21"  # the last four characters of what was presented
    assert event.address == address and event.details["stage"] == "exchange"
    assert unknown not in str(event.details) + event.path + event.user_agent


def test_exchange_failure_of_a_deactivated_token(client, make_user_token):
    token, secret = make_user_token("alpha", ["view_users"])
    with schema_context("alpha"):
        services.deactivate_user_token(token, via="test")
    assert exchange(client, secret).status_code == 401
    event = one_event(Kind.EXCHANGE_FAILED)
    assert (event.reason, event.user_token_id, event.token_hint) == (
        "token_inactive",
        token.pk,
        token.last_four,
    )


def test_failed_authentication_on_an_api_endpoint(client, api_client, address):
    caller = api_client("alpha", ["view_users"])
    forged = caller.tokens["access_token"][:-4] + "AAAA"
    assert client.get("/v1/auth/me", **bearer(forged)).status_code == 401
    assert client.get("/v1/users").status_code == 401  # no credentials at all
    forged_event, anonymous = events(Kind.AUTHENTICATION_FAILED)
    assert forged_event.reason == "invalid_jwt"
    assert (forged_event.method, forged_event.path) == ("GET", "/v1/auth/me")
    assert forged_event.details["stage"] == "access"
    assert anonymous.reason == "missing_credentials" and anonymous.path == "/v1/users"
    assert {forged_event.address, anonymous.address} == {address}


def test_refresh_token_failure_and_success(client, api_client):
    caller = api_client("alpha", ["view_users"])
    body = {"refresh_token": caller.tokens["refresh_token"]}
    ok = client.post("/v1/auth/refresh", body, content_type="application/json")
    assert ok.status_code == 200
    again = client.post("/v1/auth/refresh", body, content_type="application/json")
    assert again.status_code == 401
    renewed = one_event(Kind.TOKEN_PAIR_REFRESHED)
    assert renewed.user_token_id == caller.user_token.pk
    spent = one_event(Kind.AUTHENTICATION_FAILED)
    assert spent.reason == "refresh_token_spent" and spent.details["stage"] == "refresh"
    assert spent.user_token_id == caller.user_token.pk


def test_permission_denied_names_token_endpoint_and_missing_permission(api_client, address):
    caller = api_client("alpha", ["view_users"])
    response = caller.get("/v1/user-tokens", REMOTE_ADDR=address)
    assert response.status_code == 403
    event = one_event(Kind.PERMISSION_DENIED)
    assert event.user_token_id == caller.user_token.pk
    assert event.token_hint == caller.user_token.last_four
    assert event.reason == "missing_permission"
    assert event.details == {"missing": ["edit_user_tokens"], "endpoint": "GET /v1/user-tokens"}
    assert (event.method, event.path, event.address) == ("GET", "/v1/user-tokens", address)


def test_refresh_through_the_api_records_who_did_it(api_client, make_user_token):
    caller = api_client("alpha", ["edit_user_tokens", "view_users"])
    target, _ = make_user_token("alpha", ["view_users"])
    response = caller.post(f"/v1/user-tokens/{target.pk}/refresh")
    assert response.status_code == 200
    event = one_event(Kind.USER_TOKEN_REFRESHED)
    assert event.user_token_id == target.pk and event.via == "api"
    assert event.actor_id == caller.user_token.owner_id
    assert event.token_hint == response.json()["user_token"][-4:]  # the new secret's hint
    assert event.details == {"generation": 2}


def test_refresh_in_the_admin(alpha_client, make_user_token, admin_password):
    token, _ = make_user_token("alpha", ["view_users"])
    assert alpha_client.login(username="alpha-admin", password=admin_password)
    response = alpha_client.post(f"/admin/tokens/usertoken/{token.pk}/refresh/")
    assert response.status_code == 302  # to the page that shows the new secret once
    event = one_event(Kind.USER_TOKEN_REFRESHED)
    assert event.via == "admin" and event.actor.username == "alpha-admin"
    assert event.path == f"/admin/tokens/usertoken/{token.pk}/refresh/"


def test_deactivation(make_user_token, in_alpha):
    token, _ = make_user_token("alpha")
    actor = token.owner
    services.deactivate_user_token(token, actor=actor, via="admin")
    event = one_event(Kind.USER_TOKEN_DEACTIVATED)
    assert (event.user_token_id, event.actor_id, event.via) == (token.pk, actor.pk, "admin")


def test_expiry_on_purpose_and_by_the_clock(make_user_token, in_alpha):
    ended, _ = make_user_token("alpha")
    services.expire_user_token(ended, actor=ended.owner, via="admin")
    on_purpose = one_event(Kind.USER_TOKEN_EXPIRED)
    assert (on_purpose.actor_id, on_purpose.via) == (ended.owner_id, "admin")

    passed_at = timezone.now() - timedelta(hours=3)
    lapsed, _ = make_user_token("alpha", expires_at=passed_at)
    make_user_token("alpha", expires_at=timezone.now() + timedelta(days=1))  # not yet
    assert security_events.note_expired_tokens() == 1
    assert security_events.note_expired_tokens() == 0  # once per expiry
    by_clock = one_event(Kind.USER_TOKEN_EXPIRED, user_token=lapsed)
    assert by_clock.created_at == passed_at and by_clock.reason == "expires_at_passed"
    assert by_clock.details == {"expires_at": passed_at.isoformat()}


def test_an_expired_token_presented_records_its_expiry(client, make_user_token):
    token, secret = make_user_token("alpha", expires_at=timezone.now() - timedelta(minutes=5))
    assert exchange(client, secret).status_code == 401
    assert one_event(Kind.EXCHANGE_FAILED).reason == "token_expired"
    assert one_event(Kind.USER_TOKEN_EXPIRED).user_token_id == token.pk


def test_permission_changes_through_the_service(make_user_token, in_alpha):
    token, _ = make_user_token("alpha", ["view_users", "view_licenses"])
    services.update_user_token(
        token, actor=token.owner, via="admin", permissions=["view_users", "edit_licenses"]
    )
    event = one_event(Kind.PERMISSIONS_CHANGED)
    assert (event.actor_id, event.via) == (token.owner_id, "admin")
    assert event.details == {
        "added": ["edit_licenses"],
        "removed": ["view_licenses"],
        "permissions": ["edit_licenses", "view_users"],
    }


def test_permission_changes_anywhere_else_are_recorded_too(make_user_token, in_alpha):
    token, _ = make_user_token("alpha", ["view_users"])
    token.permissions = ["view_users", "delete_users"]
    token.save()  # e.g. a shell session: no service, no actor
    event = one_event(Kind.PERMISSIONS_CHANGED)
    assert event.actor is None and event.via == ""
    assert event.details["added"] == ["delete_users"] and event.details["removed"] == []
    token.name = "renamed"
    token.save()  # no permission change: no event
    assert len(events(Kind.PERMISSIONS_CHANGED)) == 1


def test_a_permission_change_is_signalled_once_whatever_saved_it(make_user_token, in_alpha):
    token, _ = make_user_token("alpha", ["view_users", "view_licenses"])
    seen = []

    def receiver(sender, **kwargs):
        seen.append(kwargs)

    signals.user_token_permissions_changed.connect(receiver)
    try:
        services.update_user_token(
            token, actor=token.owner, via="api", permissions=["view_users", "edit_licenses"]
        )
        token.permissions = ["view_users"]
        token.save()  # no service: no actor, no channel
        services.update_user_token(token, actor=token.owner, via="api", name="renamed")
    finally:
        signals.user_token_permissions_changed.disconnect(receiver)
    assert [(s["actor"], s["via"], s["added"], s["removed"]) for s in seen] == [
        (token.owner, "api", ["edit_licenses"], ["view_licenses"]),
        (None, "", [], ["edit_licenses"]),
    ]
    assert len(events(Kind.PERMISSIONS_CHANGED)) == 2


def test_permission_change_in_the_admin(alpha_client, make_user_token, admin_password):
    token, _ = make_user_token("alpha", ["view_users", "view_products"])
    assert alpha_client.login(username="alpha-admin", password=admin_password)
    form = {
        "name": token.name,
        "permissions": ["view_users"],
        "expires_at_0": "",
        "expires_at_1": "",
        "allowed_ips": "",
    }
    response = alpha_client.post(f"/admin/tokens/usertoken/{token.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    event = one_event(Kind.PERMISSIONS_CHANGED)
    assert event.via == "admin" and event.actor.username == "alpha-admin"
    assert event.details["removed"] == ["view_products"]


def test_creation_is_recorded_with_its_creator(make_user_token, in_alpha):
    token, _ = make_user_token("alpha", ["view_users"])
    event = one_event(Kind.USER_TOKEN_CREATED)
    assert event.user_token_id == token.pk
    assert event.details == {"permissions": ["view_users"], "name": token.name}


def test_licence_rate_limit_hits_are_folded_per_minute(api_client, address):
    caller = api_client("alpha", ["view_users"])
    Tenant.objects.filter(schema_name="alpha").update(request_limit=1, request_period="day")
    answers = [caller.get("/v1/auth/me", REMOTE_ADDR=address).status_code for _ in range(4)]
    assert answers == [200, 429, 429, 429]
    event = one_event(Kind.RATE_LIMIT_HIT)
    assert event.reason == "licence" and event.address == address
    assert event.details["scope"] == "licence" and event.details["limit"] == 1
    with schema_context("alpha"):
        security_events.catch_up_folded()
    assert one_event(Kind.RATE_LIMIT_HIT).count == 3


def test_abuse_throttle_hits_are_recorded(client, settings, address):
    settings.ABUSE_FAILURE_RATE = "2/h"  # an hour: no window ends mid-test
    unknown = "00000000-0000-4000-8000-00000000beef"
    answers = [exchange(client, unknown).status_code for _ in range(4)]
    assert answers == [401, 401, 429, 429]
    event = one_event(Kind.RATE_LIMIT_HIT)
    assert (event.reason, event.details["scope"], event.address) == (
        "abuse",
        "token_exchange",
        address,
    )


def test_expired_licence_refusals_are_recorded(client):
    Tenant.objects.filter(schema_name="alpha").update(expires_at=timezone.now() - timedelta(days=1))
    for _ in range(3):
        assert client.get("/v1/users").status_code == 403
    event = one_event(Kind.LICENCE_REFUSED)
    assert event.reason == "licence_expired" and event.path == "/v1/users"
    with schema_context("alpha"):
        security_events.catch_up_folded()
    assert one_event(Kind.LICENCE_REFUSED).count == 3


def test_failed_admin_login(alpha_client, address):
    response = alpha_client.post(
        "/admin/login/",
        {"username": "alpha-admin", "password": "wrong"},
        REMOTE_ADDR=address,
    )
    assert response.status_code in (200, 429)
    event = one_event(Kind.AUTHENTICATION_FAILED)
    assert event.reason == "bad_credentials" and event.address == address
    assert event.details == {"stage": "admin_login", "username": "alpha-admin"}
    assert "wrong" not in str(event.details)


@pytest.mark.parametrize(
    "typed", ["Hunter2-typed-in-the-wrong-field", "ALPHA-ADMIN", "someone@example.com"]
)
def test_a_failed_admin_login_stores_no_unknown_username(alpha_client, address, typed):
    response = alpha_client.post(
        "/admin/login/", {"username": typed, "password": "wrong"}, REMOTE_ADDR=address
    )
    assert response.status_code in (200, 429)
    event = one_event(Kind.AUTHENTICATION_FAILED)
    assert event.details == {"stage": "admin_login", "unknown_username": True}
    with schema_context("alpha"):
        stored = str(list(SecurityEvent.objects.values()))
    assert typed not in stored and typed.lower() not in stored


def test_events_stay_in_their_tenant(make_user_token, beta_client):
    _, secret = make_user_token("alpha")
    assert exchange(beta_client, secret).status_code == 401  # alpha's token on beta's host
    assert events(schema="alpha", kind=Kind.EXCHANGE_FAILED) == []
    assert one_event(Kind.EXCHANGE_FAILED, schema="beta").reason == "unknown_token"


def test_a_deleted_token_keeps_its_events(make_user_token, in_alpha):
    token, _ = make_user_token("alpha")
    services.deactivate_user_token(token, via="admin")
    UserToken.objects.filter(pk=token.pk).delete()
    event = one_event(Kind.USER_TOKEN_DEACTIVATED)
    assert event.user_token is None and event.token_hint == token.last_four


def test_a_failing_recorder_never_breaks_the_request(client, make_user_token, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("monitoring is broken")

    monkeypatch.setattr(security_events, "request_fields", broken)
    monkeypatch.setattr(security_events.alerts, "failed_authentication", broken)
    _, secret = make_user_token("alpha", ["view_users"])
    assert exchange(client, secret).status_code == 200
    assert exchange(client, "00000000-0000-4000-8000-000000000001").status_code == 401
    assert events(Kind.TOKEN_EXCHANGED) == [] and events(Kind.EXCHANGE_FAILED) == []
