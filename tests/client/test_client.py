"""licensing_client against a live server: exchange, automatic renewal, 429 backoff, no leaks."""

import logging
import secrets

import pytest
from django_tenants.utils import schema_context

from licensing_client import (
    AuthenticationError,
    ClockState,
    ConfigurationError,
    LicensingClient,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    Secret,
    TransportError,
    UnknownKeyIdError,
    ValidationResult,
    public_keys_from_jwks,
)

pytestmark = pytest.mark.live

EVERYTHING = [
    "view_products",
    "edit_products",
    "view_licenses",
    "edit_licenses",
    "view_customers",
    "edit_user_tokens",
]


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.DEBUG, logger="licensing_client")
    return caplog


def assert_never_logged(logs, *values):
    text = "\n".join(record.getMessage() for record in logs.records)
    for value in values:
        assert value and value not in text


def test_exchanges_the_user_token_from_the_environment(
    live_tenant_server, committed_token, monkeypatch, logs
):
    token, secret = committed_token(["view_licenses"])
    monkeypatch.setenv("LICENSING_USER_TOKEN", secret)
    client = LicensingClient(live_tenant_server.url)
    me = client.me()
    assert me["id"] == token.pk and me["permissions"] == ["view_licenses"]
    assert client.permissions == ["view_licenses"]
    assert list(client.licenses(limit=5)) is not None
    assert secret not in repr(client)
    assert "Exchanged the User Token" in logs.text
    assert_never_logged(logs, secret, client._access.reveal(), client._refresh.reveal())


def test_without_a_user_token_only_validation_works(live_tenant_server, monkeypatch):
    monkeypatch.delenv("LICENSING_USER_TOKEN", raising=False)
    client = LicensingClient(live_tenant_server.url)
    result = client.validate_license("NO-SUCH-KEY")
    assert result == ValidationResult(False, "NOT_FOUND", result.detail, None)
    with pytest.raises(ConfigurationError, match="LICENSING_USER_TOKEN"):
        client.me()


def test_renews_an_expired_access_token_with_the_refresh_token(
    live_tenant_server, committed_token, logs
):
    _, secret = committed_token(["view_licenses"])
    client = LicensingClient(live_tenant_server.url, secret)
    client.authenticate()
    first_refresh = client._refresh.reveal()
    client._access = Secret("an.access-token.the-server-no-longer-accepts")  # as if it expired
    assert client.me()["permissions"] == ["view_licenses"]
    assert "Refreshed the access token" in logs.text
    assert client._refresh.reveal() != first_refresh  # rotated
    assert_never_logged(logs, secret, first_refresh, client._refresh.reveal())


def test_renews_an_access_token_past_its_lifetime_before_sending_it(
    live_tenant_server, committed_token, logs
):
    _, secret = committed_token(["view_licenses"])
    client = LicensingClient(live_tenant_server.url, secret)
    client.authenticate()
    old = client._access
    client._access_valid_until = 0  # 24 hours later
    client.me()
    assert client._access != old
    assert "Refreshed the access token" in logs.text


def test_falls_back_to_a_new_exchange_when_the_refresh_token_is_refused(
    live_tenant_server, committed_token, logs
):
    _, secret = committed_token(["view_licenses"])
    client = LicensingClient(live_tenant_server.url, secret)
    client.authenticate()
    # Someone else spends the client's refresh token (rotation: it is refused from now on).
    spent = live_tenant_server.request(
        "POST", "/v1/auth/refresh", json={"refresh_token": client._refresh.reveal()}
    )
    assert spent.status == 200
    client._access = Secret("stale")
    assert client.me()["permissions"] == ["view_licenses"]
    assert "Refresh token refused; exchanging the User Token again" in logs.text


def test_a_refreshed_user_token_fails_cleanly_and_the_new_secret_works(
    live_tenant_server, committed_token, logs
):
    admin_token, admin_secret = committed_token(["edit_user_tokens", "view_licenses"])
    victim, victim_secret = committed_token(["view_licenses"], name="compromised")
    admin = LicensingClient(live_tenant_server.url, admin_secret)
    victim_client = LicensingClient(live_tenant_server.url, victim_secret)
    victim_client.me()

    refreshed = admin.refresh_user_token(victim.pk)  # incident response
    assert refreshed.token["id"] == victim.pk
    assert "user_token" not in refreshed.token
    assert victim_secret not in repr(refreshed) and refreshed.user_token.reveal() not in repr(
        refreshed
    )

    with pytest.raises(AuthenticationError) as raised:
        victim_client.me()  # access refused, refresh refused, the old secret refused
    assert raised.value.status == 401 and raised.value.error == "Invalid token"
    assert (
        LicensingClient(live_tenant_server.url, refreshed.user_token.reveal()).me()["id"]
        == victim.pk
    )
    assert_never_logged(logs, victim_secret, admin_secret, refreshed.user_token.reveal())


def test_pagination_follows_next_to_the_end(live_tenant_server, committed_token):
    created = [committed_token(["view_licenses"], name=f"page {n}")[0].pk for n in range(5)]
    _, secret = committed_token(["edit_user_tokens", "view_licenses"])
    client = LicensingClient(live_tenant_server.url, secret)
    seen = [token["id"] for token in client.user_tokens(limit=2)]
    assert set(created) <= set(seen)
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    assert client.user_token(created[0])["name"] == "page 0"


def test_error_bodies_become_typed_exceptions(live_tenant_server, committed_token):
    _, secret = committed_token(["view_licenses"])
    client = LicensingClient(live_tenant_server.url, secret)
    with pytest.raises(PermissionDeniedError) as denied:
        list(client.products())
    assert (denied.value.status, denied.value.error) == (403, "Access denied")
    with pytest.raises(NotFoundError):
        client.license(2**62)
    with pytest.raises(AuthenticationError):
        LicensingClient(live_tenant_server.url, "3f1c3c55-6a5c-4c7e-9d93-1d3c8c1c2b6e").me()


@pytest.fixture
def cleanup_products(live_tenant_server, django_db_blocker):
    codes = []
    yield codes
    from licensing.models import License, Plan, Product

    with django_db_blocker.unblock(), schema_context(live_tenant_server.tenant.schema_name):
        License.objects.filter(product__code__in=codes).delete()
        Plan.objects.filter(product__code__in=codes).delete()
        Product.objects.filter(code__in=codes).delete()


def test_issue_and_validate_a_licence(live_tenant_server, committed_token, cleanup_products):
    _, secret = committed_token(EVERYTHING)
    client = LicensingClient(live_tenant_server.url, secret)
    code = f"client-{secrets.token_hex(3)}"
    cleanup_products.append(code)
    product = client.create_product(code, "Client test product")
    plan = client.create_plan(product["id"], "std", "Standard", duration_days=30)
    licence = client.create_license(product["id"], plan["id"], metadata={"seat": 1})
    assert [item["id"] for item in client.licenses(product=product["id"])] == [licence["id"]]

    anonymous = LicensingClient(live_tenant_server.url, user_token="")
    result = anonymous.validate_license(licence["key"], product=code)
    assert (result.valid, result.code) == (True, "VALID")
    assert result.license is not None
    assert anonymous.validate_license(licence["key"], product="other").code == "PRODUCT_MISMATCH"
    client.update_license(licence["id"], status="suspended")
    assert anonymous.validate_license(licence["key"]).code == "SUSPENDED"


def test_verified_validation_and_checkout_over_real_http(
    live_tenant_server, committed_token, cleanup_products, tmp_path
):
    _, secret = committed_token(EVERYTHING)
    client = LicensingClient(live_tenant_server.url, secret)
    code = f"client-{secrets.token_hex(3)}"
    cleanup_products.append(code)
    product = client.create_product(code, "Client test product")
    plan = client.create_plan(product["id"], "std", "Standard", duration_days=30)
    licence = client.create_license(product["id"], plan["id"])

    anonymous = LicensingClient(live_tenant_server.url, user_token="")
    keys = public_keys_from_jwks(anonymous.request("GET", "/v1/signing-keys", auth=False))
    state = ClockState(tmp_path / "clock.json")
    result = anonymous.validate_license(licence["key"], public_keys=keys, state=state)
    assert (result.valid, result.code) == (True, "VALID")
    assert state.latest is not None
    opened = anonymous.check_out_license(licence["key"], public_keys=keys, encrypt=True)
    assert opened.license["plan"] == "std"
    # Keys of another tenant (or a forger's) do not verify this tenant's answers.
    with pytest.raises(UnknownKeyIdError):
        anonymous.validate_license(licence["key"], public_keys={})
    with pytest.raises(UnknownKeyIdError):  # error answers are verified too
        anonymous.check_out_license(licence["key"], public_keys={}, ttl_seconds=1)


def guess_until_throttled(url: str) -> None:
    guesser = LicensingClient(url, user_token="", max_retries=0)
    for _ in range(100):
        try:
            guesser.validate_license(f"GUESS-{secrets.token_hex(4)}")
        except RateLimitError:
            return
    raise AssertionError("never throttled")


def test_backs_off_on_429_using_retry_after_then_gives_up(live_tenant_server, settings, logs):
    settings.ABUSE_FAILURE_RATE = "3/m"
    guess_until_throttled(live_tenant_server.url)
    waits = []
    client = LicensingClient(
        live_tenant_server.url, user_token="", max_retries=2, sleep=waits.append
    )
    with pytest.raises(RateLimitError) as raised:
        client.validate_license("ANOTHER-GUESS")
    error = raised.value
    assert (error.status, error.error, error.licence_limit) == (429, "Too Many Requests", False)
    assert len(waits) == 2 and all(0 < wait <= 61 for wait in waits)
    assert error.retry_after is not None
    assert "retry 1 of 2" in logs.text and "retry 2 of 2" in logs.text


def test_does_not_wait_longer_than_allowed(live_tenant_server, settings):
    settings.ABUSE_FAILURE_RATE = "3/h"
    guess_until_throttled(live_tenant_server.url)
    waits = []
    client = LicensingClient(
        live_tenant_server.url, user_token="", max_retry_wait=5, sleep=waits.append
    )
    with pytest.raises(RateLimitError) as raised:
        client.validate_license("ANOTHER-GUESS")
    assert waits == [] and raised.value.retry_after > 5


def test_retries_after_the_wait_and_succeeds(live_tenant_server, settings):
    settings.ABUSE_FAILURE_RATE = "2/2s"
    waits = []

    def sleep(seconds):
        waits.append(seconds)
        import time

        time.sleep(seconds)

    client = LicensingClient(live_tenant_server.url, user_token="", max_retries=3, sleep=sleep)
    # The 2-second window can end between the 429 and the client's first try, which then
    # succeeds without waiting; only a try that met the 429 and waited counts. A client that
    # does not retry raises RateLimitError here instead.
    for _ in range(5):
        guess_until_throttled(live_tenant_server.url)
        assert client.validate_license("ONE-MORE-GUESS").code == "NOT_FOUND"
        if waits:
            break
    assert waits and all(wait <= 3 for wait in waits)


# --- Without a server


@pytest.fixture
def localhost_names_do_not_resolve(monkeypatch):
    """The resolver of a machine that knows no *.localhost: only the Host header can name one."""
    import socket

    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".localhost"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_host_header_reaches_a_localhost_tenant_through_its_address(
    live_tenant_server, committed_token, localhost_names_do_not_resolve
):
    created = [committed_token(["view_licenses"], name=f"host {n}")[0].pk for n in range(3)]
    token, secret = committed_token(["edit_user_tokens", "view_licenses"])
    with pytest.raises(TransportError):
        LicensingClient(live_tenant_server.url, secret).me()
    client = LicensingClient(
        live_tenant_server.address_url, secret, host_header=live_tenant_server.host_header
    )
    assert client.me()["id"] == token.pk
    # Pages' `next` links name the tenant's host; they are followed on the address.
    seen = [item["id"] for item in client.user_tokens(limit=1)]
    assert set(created) <= set(seen) and len(seen) == len(set(seen))


@pytest.mark.parametrize("host", ["", "demo.localhost\r\nX-Evil: 1", "a b", "demo.localhost:80:80"])
def test_a_malformed_host_header_is_refused(host):
    with pytest.raises(ConfigurationError, match="host_header"):
        LicensingClient("http://127.0.0.1:8000", "x", host_header=host)


def test_host_header_links_go_to_the_address_and_no_other_origin():
    client = LicensingClient("http://127.0.0.1:8000", "x", host_header="demo.localhost:8000")
    assert client._url("http://demo.localhost:8000/v1/licenses?cursor=abc") == (
        "http://127.0.0.1:8000/v1/licenses?cursor=abc"
    )
    with pytest.raises(TransportError):
        client._url("http://other.localhost:8000/v1/licenses?cursor=abc")


def test_plain_http_to_a_remote_host_is_refused():
    with pytest.raises(ConfigurationError, match="https"):
        LicensingClient("http://licensing.example.com", "x")
    LicensingClient("https://licensing.example.com", "x")
    LicensingClient("http://127.0.0.1:8000", "x")


def test_links_to_another_origin_are_not_followed():
    client = LicensingClient("https://acme.example.com", "x")
    with pytest.raises(TransportError):
        client._url("https://evil.example.net/v1/licenses?cursor=abc")
    assert client._url("https://acme.example.com/v1/licenses?cursor=abc").endswith("cursor=abc")


def test_secrets_are_redacted_everywhere():
    secret = Secret("3f1c3c55-6a5c-4c7e-9d93-1d3c8c1c2b6e")
    logged = logging.makeLogRecord({"msg": "token %s %r", "args": (secret, secret)}).getMessage()
    assert "3f1c" not in repr(secret) + str(secret) + f"{secret}" + logged
    client = LicensingClient("https://acme.example.com", "3f1c3c55-6a5c-4c7e-9d93-1d3c8c1c2b6e")
    assert "3f1c" not in repr(client)
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(secret)
