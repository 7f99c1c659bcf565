"""Signed answers (RFC 9421 + RFC 9530), the tenant's JWKS and key rotation.

The verifier here is written from the RFCs, independently of the server's and the client's code:
it parses Signature-Input as an RFC 8941 dictionary of inner lists, rebuilds the signature base
of RFC 9421 section 2.5 and checks the Ed25519 signature with `cryptography`.
"""

import base64
import hashlib
import json
import re
from datetime import timedelta

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_tenants.utils import schema_context

from licensing_client import (
    BadSignatureError,
    ClockState,
    ClockWentBackwardsError,
    UnknownKeyIdError,
    public_keys_from_jwks,
    verify_response,
)
from tenants.models import SigningKey, Tenant
from tenants.signing_keys import decrypt_private_key, rotate_signing_key
from tests.licensing.factories import make_license

# --- An independent RFC 9421 verifier


def parse_signature_input(value: str) -> dict:
    """RFC 8941 dictionary whose members are inner lists with parameters (our one use)."""
    members = {}
    for label, inner, params in re.findall(
        r"([a-z*][a-z0-9_.*-]*)=\(([^)]*)\)((?:;[^,]*)?)", value
    ):
        items = re.findall(r'"([^"]*)"((?:;[a-z]+)*)', inner)
        parameters = {}
        for name, raw in re.findall(r";([a-z]+)=(\"[^\"]*\"|\d+)", params):
            parameters[name] = raw.strip('"') if raw.startswith('"') else int(raw)
        members[label] = {
            "items": [(name, flags) for name, flags in items],
            "inner": f"({inner}){params}",
            "params": parameters,
        }
    return members


def component_value(name: str, flags: str, request: dict, response) -> str:
    if name.startswith("@"):
        if name == "@status":
            assert flags == "", "@status is a response component"
            return str(response.status_code)
        assert flags == ";req", f"{name} in a response needs the req flag (RFC 9421 2.4)"
        return {"@method": request["method"], "@path": request["path"], "@query": request["query"]}[
            name
        ]
    return response.headers[name]


def rfc9421_verify(response, request: dict, jwks: dict, label: str = "sig1") -> dict:
    """Raise AssertionError/InvalidSignature unless the answer verifies; returns the parameters."""
    body = response.content
    digest = response.headers["Content-Digest"]
    algorithm, encoded = re.fullmatch(r"([a-z0-9-]+)=:([A-Za-z0-9+/=]*):", digest).groups()
    assert algorithm == "sha-256"
    assert base64.b64decode(encoded) == hashlib.sha256(body).digest(), "Content-Digest mismatch"
    signature_input = parse_signature_input(response.headers["Signature-Input"])[label]
    signature = re.fullmatch(rf"{label}=:([A-Za-z0-9+/=]+):", response.headers["Signature"])
    lines = [
        f'"{name}"{flags}: {component_value(name, flags, request, response)}'
        for name, flags in signature_input["items"]
    ]
    lines.append(f'"@signature-params": {signature_input["inner"]}')
    base = "\n".join(lines).encode()
    params = signature_input["params"]
    assert params["alg"] == "ed25519"
    keys = {entry["kid"]: entry for entry in jwks["keys"]}
    assert params["keyid"] in keys, "unknown key id"
    raw = base64.urlsafe_b64decode(keys[params["keyid"]]["x"] + "==")
    Ed25519PublicKey.from_public_bytes(raw).verify(base64.b64decode(signature.group(1)), base)
    return params


REQUIRED_COMPONENTS = [
    ("@method", ";req"),
    ("@path", ";req"),
    ("@query", ";req"),
    ("@status", ""),
    ("content-digest", ""),
]


def validate(client, body, path="/v1/licenses/validate", **extra):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(path, data, content_type="application/json", **extra)


def request_of(path="/v1/licenses/validate", method="POST", query="?") -> dict:
    return {"method": method, "path": path, "query": query}


@pytest.fixture
def jwks(alpha_client):
    response = alpha_client.get("/v1/signing-keys")
    assert response.status_code == 200
    return response.json()


@pytest.fixture
def alpha_key(in_alpha):
    return make_license()


# --- Success and error answers are signed


def test_a_validation_answer_is_signed_over_the_bytes_sent(alpha_client, alpha_key, jwks):
    response = validate(alpha_client, {"key": alpha_key.key, "nonce": "n-123"})
    assert response.status_code == 200
    params = rfc9421_verify(response, request_of(), jwks)
    assert parse_signature_input(response.headers["Signature-Input"])["sig1"]["items"] == (
        REQUIRED_COMPONENTS
    )
    assert abs(params["created"] - timezone.now().timestamp()) < 60
    assert params["keyid"] == jwks["keys"][0]["kid"] and params["keyid"].startswith("alpha-")
    body = response.json()
    assert body["valid"] is True and body["nonce"] == "n-123" and body["tenant"] == "alpha"
    assert abs(
        timezone.datetime.fromisoformat(body["ts"].replace("Z", "+00:00")) - timezone.now()
    ) < timedelta(minutes=1)


def test_without_a_nonce_the_answer_has_none(alpha_client, jwks):
    response = validate(alpha_client, {"key": "NOPE"})
    rfc9421_verify(response, request_of(), jwks)
    assert response.json()["code"] == "NOT_FOUND" and "nonce" not in response.json()


@pytest.mark.parametrize(
    "body, status",
    [
        ({"key": "K", "nonce": "x" * 65}, 400),
        ({"key": "K", "nonce": 7}, 400),
        ({"key": "K", "nonce": ""}, 400),
        ({}, 400),
        (b"{not json", 400),
        (b"[]", 400),
    ],
    ids=["nonce-too-long", "nonce-not-a-string", "empty-nonce", "no-key", "bad-json", "not-object"],
)
def test_bad_input_answers_are_signed(alpha_client, jwks, body, status):
    response = validate(alpha_client, body)
    assert response.status_code == status
    assert response.json()["error"] == "Invalid request"
    rfc9421_verify(response, request_of(), jwks)


def test_a_nonce_of_64_characters_is_echoed(alpha_client, jwks):
    response = validate(alpha_client, {"key": "K", "nonce": "é" * 64})
    assert response.status_code == 200 and response.json()["nonce"] == "é" * 64
    rfc9421_verify(response, request_of(), jwks)


def test_an_expired_platform_licence_answer_is_signed(alpha_client, jwks):
    Tenant.objects.filter(schema_name="alpha").update(expires_at=timezone.now())
    response = validate(alpha_client, {"key": "K"})
    assert response.status_code == 403 and response.json() == {"error": "Invalid license"}
    rfc9421_verify(response, request_of(), jwks)


def test_limit_and_throttle_answers_are_signed(alpha_client, jwks, settings):
    settings.ABUSE_FAILURE_RATE = "2/d"
    for _ in range(2):
        validate(alpha_client, {"key": "UNKNOWN"}, REMOTE_ADDR="203.0.113.77")
    throttled = validate(alpha_client, {"key": "UNKNOWN"}, REMOTE_ADDR="203.0.113.77")
    assert throttled.status_code == 429 and throttled.json() == {"error": "Too Many Requests"}
    rfc9421_verify(throttled, request_of(), jwks)

    Tenant.objects.filter(schema_name="alpha").update(request_limit=1, request_period="day")
    validate(alpha_client, {"key": "K"})
    limited = validate(alpha_client, {"key": "K"})
    assert limited.status_code == 429
    assert limited.json() == {"error": "Too Many Requests (Reached license limit)"}
    rfc9421_verify(limited, request_of(), jwks)


def test_a_body_too_large_and_a_wrong_method_are_answered_signed(alpha_client, jwks, settings):
    too_large = validate(alpha_client, {"key": "K"}, CONTENT_LENGTH=str(10**9))
    assert too_large.status_code == 413 and too_large.json() == {"error": "Request too large"}
    rfc9421_verify(too_large, request_of(), jwks)
    wrong_method = alpha_client.get("/v1/licenses/validate?x=1")
    assert wrong_method.status_code == 405
    rfc9421_verify(wrong_method, request_of(method="GET", query="?x=1"), jwks)


def test_other_endpoints_are_not_signed(api_client):
    response = api_client(permissions=["view_licenses"]).get("/v1/licenses")
    assert response.status_code == 200 and "Signature" not in response.headers


# --- Tampering fails


def test_tampered_body_status_path_query_and_swapped_key_id_fail(alpha_client, alpha_key, jwks):
    response = validate(alpha_client, {"key": alpha_key.key})
    rfc9421_verify(response, request_of(), jwks)

    forged_body = response.content.replace(b'"valid":true', b'"valid":fals')
    response.content, original = forged_body, response.content
    with pytest.raises(AssertionError, match="Content-Digest"):
        rfc9421_verify(response, request_of(), jwks)
    # A forger who also recomputes the digest still lacks the key.
    response["Content-Digest"] = (
        f"sha-256=:{base64.b64encode(hashlib.sha256(forged_body).digest()).decode()}:"
    )
    with pytest.raises(InvalidSignature):
        rfc9421_verify(response, request_of(), jwks)
    response.content = original
    response["Content-Digest"] = (
        f"sha-256=:{base64.b64encode(hashlib.sha256(original).digest()).decode()}:"
    )
    rfc9421_verify(response, request_of(), jwks)

    with pytest.raises(InvalidSignature):
        rfc9421_verify(response, request_of(path="/v1/licenses/checkout"), jwks)
    with pytest.raises(InvalidSignature):
        rfc9421_verify(response, request_of(query="?key=x"), jwks)
    response.status_code = 403
    with pytest.raises(InvalidSignature):
        rfc9421_verify(response, request_of(), jwks)
    response.status_code = 200

    with schema_context("alpha"):
        rotate_signing_key(Tenant.objects.get(schema_name="alpha"))
    new_jwks = alpha_client.get("/v1/signing-keys").json()
    old, new = jwks["keys"][0]["kid"], new_jwks["keys"][0]["kid"]
    response["Signature-Input"] = response["Signature-Input"].replace(old, new)
    with pytest.raises(InvalidSignature):
        rfc9421_verify(response, request_of(), new_jwks)


def test_beta_cannot_pass_for_alpha(alpha_client, beta_client, jwks):
    answer = validate(beta_client, {"key": "K"})
    with pytest.raises(AssertionError, match="unknown key id"):
        rfc9421_verify(answer, request_of(), jwks)


def client_verify(response, jwks, **request):
    return verify_response(
        method=request.get("method", "POST"),
        path=request.get("path", "/v1/licenses/validate"),
        query=request.get("query", ""),
        status=response.status_code,
        headers=response.headers,
        body=response.content,
        public_keys=public_keys_from_jwks(jwks),
        nonce=request.get("nonce"),
        state=request.get("state"),
    )


def test_the_client_verifies_and_refuses(alpha_client, beta_client, alpha_key, jwks, tmp_path):
    response = validate(alpha_client, {"key": alpha_key.key, "nonce": "abc"})
    assert client_verify(response, jwks, nonce="abc")["valid"] is True
    with pytest.raises(BadSignatureError, match="nonce"):
        client_verify(response, jwks, nonce="another")
    with pytest.raises(BadSignatureError):
        client_verify(response, jwks, path="/v1/licenses/other")
    response.status_code = 500
    with pytest.raises(BadSignatureError):
        client_verify(response, jwks)
    response.status_code = 200
    with pytest.raises(UnknownKeyIdError):
        client_verify(validate(beta_client, {"key": "K"}), jwks)
    unsigned = alpha_client.get("/v1/licenses/validate/nope")
    with pytest.raises(BadSignatureError, match="no Content-Digest"):
        client_verify(unsigned, jwks, method="GET")


def test_the_client_refuses_an_answer_older_than_one_seen(alpha_client, jwks, tmp_path):
    state = ClockState(tmp_path / "clock.json", tolerance=timedelta(seconds=30))
    old = validate(alpha_client, {"key": "K"})
    client_verify(old, jwks, state=state)
    state.observe(timezone.now() + timedelta(minutes=5))  # a later answer was seen meanwhile
    with pytest.raises(ClockWentBackwardsError):
        client_verify(old, jwks, state=state)


# --- JWKS and rotation


def test_jwks_lists_the_current_key_without_a_token_and_is_counted(alpha_client, jwks):
    response = alpha_client.get("/v1/signing-keys")
    assert response.status_code == 200
    assert int(response.headers["X-RateLimit-Remaining"]) < int(
        response.headers["X-RateLimit-Limit"]
    )
    (key,) = response.json()["keys"]
    assert set(key) == {"kty", "crv", "kid", "x", "status"}
    assert (key["kty"], key["crv"], key["status"]) == ("OKP", "Ed25519", "current")
    assert len(base64.urlsafe_b64decode(key["x"] + "=")) == 32
    rfc9421_verify(response, request_of(path="/v1/signing-keys", method="GET"), jwks)


def test_rotation_keeps_old_signatures_verifiable_during_the_overlap(alpha_client, jwks):
    before = validate(alpha_client, {"key": "K"})
    old_kid = jwks["keys"][0]["kid"]
    call_command("rotate_signing_key", "--tenant", "alpha", "--overlap", "2d")
    during = alpha_client.get("/v1/signing-keys").json()
    assert [k["status"] for k in during["keys"]] == ["current", "retiring"]
    assert during["keys"][1]["kid"] == old_kid
    rfc9421_verify(before, request_of(), during)  # the old answer still verifies
    after = validate(alpha_client, {"key": "K"})
    assert rfc9421_verify(after, request_of(), during)["keyid"] == during["keys"][0]["kid"]

    SigningKey.objects.filter(kid=old_kid).update(retires_at=timezone.now())  # overlap over
    later = alpha_client.get("/v1/signing-keys").json()
    assert [k["kid"] for k in later["keys"]] == [during["keys"][0]["kid"]]
    with pytest.raises(AssertionError, match="unknown key id"):
        rfc9421_verify(before, request_of(), later)


def test_rotation_with_no_overlap_withdraws_the_old_key_at_once(alpha_client, jwks):
    call_command("rotate_signing_key", "--tenant", "alpha", "--overlap", "0")
    keys = alpha_client.get("/v1/signing-keys").json()["keys"]
    assert len(keys) == 1 and keys[0]["kid"] != jwks["keys"][0]["kid"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tenant", "nope"], "No tenant 'nope'"),
        (["--tenant", "public"], "not a tenant"),
        (["--tenant", "alpha", "--overlap", "soon"], "overlap"),
        (["--tenant", "alpha", "--overlap", "-1h"], "overlap"),
        (["--tenant", "alpha", "--overlap", "400d"], "between 0 and 366 days"),
    ],
)
def test_rotate_signing_key_refuses_bad_input(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("rotate_signing_key", *args)


# --- Keys at rest


def test_provisioning_created_an_encrypted_key_bound_to_its_tenant(db):
    alpha = SigningKey.objects.get(tenant__schema_name="alpha", retires_at__isnull=True)
    beta = SigningKey.objects.get(tenant__schema_name="beta", retires_at__isnull=True)
    private = decrypt_private_key(alpha, "alpha")
    message = b"probe"
    Ed25519PublicKey.from_public_bytes(bytes(alpha.public_key)).verify(
        private.sign(message), message
    )
    assert len(bytes(alpha.encrypted_private_key)) == 12 + 32 + 16  # nonce, key, tag
    # The ciphertext does not open as another tenant's or under another kid.
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured):
        decrypt_private_key(alpha, "beta")
    alpha.kid = beta.kid
    with pytest.raises(ImproperlyConfigured):
        decrypt_private_key(alpha, "alpha")


def test_a_wrong_encryption_key_is_a_configuration_error(db, settings):
    from django.core.exceptions import ImproperlyConfigured

    key = SigningKey.objects.get(tenant__schema_name="alpha", retires_at__isnull=True)
    settings.SIGNING_KEY_ENCRYPTION_KEY = "another-key-" * 5
    with pytest.raises(ImproperlyConfigured, match="SIGNING_KEY_ENCRYPTION_KEY"):
        decrypt_private_key(key, "alpha")


def test_the_migration_gives_existing_tenants_a_key(db):
    from importlib import import_module

    from django.apps import apps as global_apps

    migration = import_module("tenants.migrations.0003_signing_key")
    SigningKey.objects.filter(tenant__schema_name="beta").delete()
    migration.create_keys_for_existing_tenants(global_apps, None)
    (key,) = SigningKey.objects.filter(tenant__schema_name="beta")
    assert key.retires_at is None and key.kid.startswith("beta-")
    assert not SigningKey.objects.filter(tenant__schema_name="public").exists()
    assert SigningKey.objects.filter(tenant__schema_name="alpha", retires_at=None).count() == 1


@pytest.fixture
def caching_outside_transactions(monkeypatch):
    """The signer cache as a server process has it (tests run inside a transaction, where
    nothing is cached), with a clock the test moves."""
    from types import SimpleNamespace

    from tenants import signing_keys

    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(signing_keys, "connection", SimpleNamespace(in_atomic_block=False))
    monkeypatch.setattr(signing_keys, "time", SimpleNamespace(monotonic=lambda: clock.now))
    yield clock
    signing_keys.signer_cache.clear()  # its entries came from this test's rolled-back rows


def test_a_rotation_reaches_other_workers_within_the_cache_time(
    caching_outside_transactions, tenant_alpha, settings
):
    from tenants.signing_keys import SignerCache, signer_cache

    other_worker = SignerCache()
    before = other_worker.get(tenant_alpha).kid
    assert signer_cache.get(tenant_alpha).kid == before
    new = rotate_signing_key(tenant_alpha)
    assert signer_cache.get(tenant_alpha).kid == new.kid  # this process: at once
    assert other_worker.get(tenant_alpha).kid == before  # another: still the retiring key...
    caching_outside_transactions.now += settings.SIGNING_KEY_CACHE_SECONDS
    assert other_worker.get(tenant_alpha).kid == new.kid  # ...for at most the cache time
