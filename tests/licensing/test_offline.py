"""Offline licence files (checkout, admin, command), the revocation list and the client's checks.

Files are opened both by an independent reader written here from the documented format
(licensing/offline.py's notes) and by `licensing_client.load_license_file`.
"""

import base64
import hashlib
import io
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_tenants.utils import schema_context

from licensing import offline, services
from licensing.models import License, LicenseStatus, LicenseValidation
from licensing_client import (
    BadSignatureError,
    ClockState,
    ClockWentBackwardsError,
    DecryptionError,
    LicenseFileExpiredError,
    MalformedLicenseFileError,
    UnknownKeyIdError,
    WrongFingerprintError,
    WrongLicenseKeyError,
    license_key_hash,
    load_license_file,
    public_keys_from_jwks,
)
from tenants.models import Tenant
from tenants.record_buffer import drain_buffered_records
from tenants.signing_keys import rotate_signing_key
from tests.licensing.factories import make_license, make_plan, set_license_dates
from tests.licensing.test_signing import request_of, rfc9421_verify

CHECKOUT = "/v1/licenses/checkout"


def checkout(client, body, **extra):
    return client.post(CHECKOUT, json.dumps(body), content_type="application/json", **extra)


@pytest.fixture
def jwks(alpha_client):
    return alpha_client.get("/v1/signing-keys").json()


@pytest.fixture
def keys(jwks):
    return public_keys_from_jwks(jwks)


@pytest.fixture
def licence(in_alpha):
    return make_license(make_plan(duration_days=30, entitlements=["pro"]))


def read_file(text: str, jwks: dict, key: str | None = None, fingerprint: str = "") -> dict:
    """An independent reader of the documented format: the payload, after checking `sig`."""
    lines = text.strip().splitlines()
    assert lines[0] == "-----BEGIN LICENSE FILE-----" and lines[-1] == "-----END LICENSE FILE-----"
    assert all(len(line) <= 64 for line in lines[1:-1])
    envelope = json.loads(base64.b64decode("".join(lines[1:-1])))
    assert set(envelope) == {"payload", "sig", "alg", "kid"}
    public = {k["kid"]: k for k in jwks["keys"]}[envelope["kid"]]
    Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(public["x"] + "=")).verify(
        base64.b64decode(envelope["sig"]),
        b"licensing-platform license-file v1\n" + envelope["payload"].encode(),
    )
    body = base64.b64decode(envelope["payload"])
    if envelope["alg"] == "aes-256-gcm+ed25519":
        derived = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=b"licensing-platform license-file key v1\x00" + fingerprint.encode(),
        ).derive(key.encode())
        body = AESGCM(derived).decrypt(body[:12], body[12:], envelope["kid"].encode())
    else:
        assert envelope["alg"] == "ed25519"
    return json.loads(body)


# --- POST /v1/licenses/checkout


def test_checkout_returns_a_signed_file_with_the_documented_payload(alpha_client, licence, jwks):
    response = checkout(alpha_client, {"key": licence.key.lower(), "nonce": "c1"})
    assert response.status_code == 200, response.content
    rfc9421_verify(response, request_of(path=CHECKOUT), jwks)
    body = response.json()
    assert body["valid"] is True and body["code"] == "VALID" and body["nonce"] == "c1"
    assert body["tenant"] == "alpha" and response.headers["Cache-Control"] == "no-store"
    payload = read_file(body["license_file"], jwks)
    assert set(payload) == {
        "license",
        "license_key_hash",
        "fingerprint",
        "issued",
        "expires",
        "tenant",
        "epoch",
    }
    assert payload["license"]["plan"] == licence.plan.code
    assert payload["license"]["entitlements"] == ["pro"]
    assert payload["license_key_hash"] == hashlib.sha256(licence.key.encode()).hexdigest()
    assert payload["tenant"] == "alpha" and payload["epoch"] == 0 and payload["fingerprint"] is None
    issued = timezone.datetime.fromisoformat(payload["issued"])
    expires = timezone.datetime.fromisoformat(payload["expires"])
    assert expires - issued == timedelta(days=7)
    assert body["expires"] == payload["expires"].replace("+00:00", "Z")
    drain_buffered_records("alpha")  # the check is recorded like a validation
    assert LicenseValidation.objects.filter(license=licence, code="VALID").exists()


def test_the_file_never_outlives_the_licence(alpha_client, licence, jwks):
    set_license_dates(licence, starts_in_days=-1, expires_in_days=2)
    licence.refresh_from_db()
    body = checkout(alpha_client, {"key": licence.key, "ttl_seconds": 30 * 86400}).json()
    payload = read_file(body["license_file"], jwks)
    assert timezone.datetime.fromisoformat(payload["expires"]) == licence.expires_at.replace(
        microsecond=0
    )


def test_an_encrypted_file_opens_only_with_its_key(alpha_client, licence, jwks, keys):
    body = checkout(alpha_client, {"key": licence.key, "encrypt": True, "ttl_seconds": 3600})
    text = body.json()["license_file"]
    payload = read_file(text, jwks, key=licence.key)
    assert timezone.datetime.fromisoformat(payload["expires"]) - timezone.datetime.fromisoformat(
        payload["issued"]
    ) == timedelta(hours=1)
    envelope = json.loads(base64.b64decode("".join(text.strip().splitlines()[1:-1])))
    assert envelope["alg"] == "aes-256-gcm+ed25519"
    assert licence.plan.code.encode() not in base64.b64decode(envelope["payload"])
    opened = load_license_file(text, keys, licence.key.replace("-", " ").lower())
    assert opened.license["plan"] == licence.plan.code and opened.tenant == "alpha"
    other = make_license()
    with pytest.raises(DecryptionError):
        load_license_file(text, keys, other.key)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"ttl_seconds": 3599}, "ttl_seconds"),
        ({"ttl_seconds": 365 * 86400 + 1}, "ttl_seconds"),
        ({"ttl_seconds": "3600"}, "ttl_seconds"),
        ({"encrypt": "yes"}, "encrypt"),
        ({"fingerprint": " leading space"}, "fingerprint"),
        ({"fingerprint": "f" * 256}, "fingerprint"),
        ({"nonce": "n" * 65}, "nonce"),
        ({"machine": "x"}, "machine"),
    ],
)
def test_checkout_refuses_bad_input_signed(alpha_client, licence, jwks, body, field):
    response = checkout(alpha_client, {"key": licence.key, **body})
    assert response.status_code == 400
    assert field in response.json()["details"]
    rfc9421_verify(response, request_of(path=CHECKOUT), jwks)


def test_a_fingerprint_needs_an_activated_machine(alpha_client, licence, jwks, keys):
    response = checkout(alpha_client, {"key": licence.key, "fingerprint": "a1b2c3d4"})
    assert response.status_code == 200
    body = response.json()
    assert (body["code"], body["license_file"]) == ("FINGERPRINT_NOT_ACTIVATED", None)
    rfc9421_verify(response, request_of(path=CHECKOUT), jwks)
    activated = alpha_client.post(
        "/v1/licenses/activate",
        {"key": licence.key, "fingerprint": "a1b2c3d4"},
        content_type="application/json",
    )
    assert activated.status_code == 201
    body = checkout(alpha_client, {"key": licence.key, "fingerprint": "a1b2c3d4"}).json()
    assert body["code"] == "VALID"
    bound = load_license_file(body["license_file"], keys, licence.key, fingerprint="a1b2c3d4")
    assert bound.fingerprint == "a1b2c3d4"
    with pytest.raises(WrongFingerprintError):
        load_license_file(body["license_file"], keys, licence.key, fingerprint="someone-else")


def test_deactivating_a_machine_bumps_the_licence_epoch(alpha_client, licence):
    for path in ("/v1/licenses/activate", "/v1/licenses/deactivate"):
        response = alpha_client.post(
            path, {"key": licence.key, "fingerprint": "m-1"}, content_type="application/json"
        )
        assert response.status_code in (201, 204)
    with schema_context("alpha"):
        licence.refresh_from_db()
    assert licence.epoch == 1


@pytest.mark.parametrize("status", [LicenseStatus.SUSPENDED, LicenseStatus.REVOKED])
def test_a_licence_that_is_not_valid_gets_no_file(alpha_client, licence, status):
    services.update_license(licence, status=status)
    body = checkout(alpha_client, {"key": licence.key}).json()
    assert body["valid"] is False and body["code"] == status.upper()
    assert body["license_file"] is None and body["expires"] is None


def test_an_unknown_key_gets_no_file_and_counts_as_a_failed_attempt(alpha_client, settings):
    settings.ABUSE_FAILURE_RATE = "2/d"
    for _ in range(2):
        body = checkout(alpha_client, {"key": "NOPE"}, REMOTE_ADDR="203.0.113.91").json()
        assert body["code"] == "NOT_FOUND" and body["license"] is None
    refused = checkout(alpha_client, {"key": "NOPE"}, REMOTE_ADDR="203.0.113.91")
    assert refused.status_code == 429


def test_another_tenants_key_is_not_found(beta_client, licence):
    assert checkout(beta_client, {"key": licence.key}).json()["code"] == "NOT_FOUND"


# --- The client's refusals


def file_for(licence, **options):
    with schema_context("alpha"):
        tenant = Tenant.objects.get(schema_name="alpha")
        defaults = dict(
            tenant=tenant,
            normalised_key=licence.key,
            fingerprint=None,
            issued=timezone.now(),
            expires=timezone.now() + timedelta(days=7),
            encrypt=False,
        )
        return offline.build_license_file(licence, **{**defaults, **options})


def test_a_machine_bound_file_checks_the_fingerprint(licence, keys):
    plain = file_for(licence, fingerprint="machine-1")
    assert load_license_file(plain, keys, licence.key, fingerprint="machine-1").fingerprint == (
        "machine-1"
    )
    with pytest.raises(WrongFingerprintError):
        load_license_file(plain, keys, licence.key, fingerprint="machine-2")
    with pytest.raises(WrongFingerprintError):
        load_license_file(plain, keys, licence.key)
    with pytest.raises(WrongFingerprintError):
        load_license_file(file_for(licence), keys, licence.key, fingerprint="machine-1")
    sealed = file_for(licence, fingerprint="machine-1", encrypt=True)
    assert load_license_file(sealed, keys, licence.key, fingerprint="machine-1").epoch == 0
    with pytest.raises(DecryptionError):
        load_license_file(sealed, keys, licence.key, fingerprint="machine-2")


def test_expired_files_and_clocks_set_back_are_refused(licence, keys, tmp_path):
    text = file_for(licence)
    now = timezone.now()
    with pytest.raises(LicenseFileExpiredError):
        load_license_file(text, keys, licence.key, now=now + timedelta(days=7, seconds=1))
    with pytest.raises(ClockWentBackwardsError, match="future"):
        load_license_file(text, keys, licence.key, now=now - timedelta(hours=1))

    state = ClockState(tmp_path / "clock.json", tolerance=timedelta(minutes=5))
    load_license_file(text, keys, licence.key, now=now + timedelta(days=3), state=state)
    # Setting the clock back (to stretch the file) is noticed...
    with pytest.raises(ClockWentBackwardsError, match="This clock"):
        load_license_file(text, keys, licence.key, now=now + timedelta(days=1), state=state)
    # ...within the tolerance it is not.
    load_license_file(text, keys, licence.key, now=now + timedelta(days=3, minutes=-4), state=state)


def test_forged_or_foreign_files_are_refused(licence, keys, beta_client):
    text = file_for(licence)
    lines = text.strip().splitlines()
    envelope = json.loads(base64.b64decode("".join(lines[1:-1])))
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["expires"] = "2099-01-01T00:00:00Z"
    forged = {**envelope, "payload": base64.b64encode(json.dumps(payload).encode()).decode()}
    armoured = base64.b64encode(json.dumps(forged).encode()).decode()
    with pytest.raises(BadSignatureError):
        load_license_file(f"{lines[0]}\n{armoured}\n{lines[-1]}", keys, licence.key)
    swapped = {**envelope, "kid": "alpha-20200101-deadbeef"}
    armoured = base64.b64encode(json.dumps(swapped).encode()).decode()
    with pytest.raises(UnknownKeyIdError):
        load_license_file(f"{lines[0]}\n{armoured}\n{lines[-1]}", keys, licence.key)
    beta_keys = public_keys_from_jwks(beta_client.get("/v1/signing-keys").json())
    with pytest.raises(UnknownKeyIdError):
        load_license_file(text, beta_keys, licence.key)
    with pytest.raises(WrongLicenseKeyError):
        load_license_file(text, keys, make_license().key)
    for garbage in ("", "hello", f"{lines[0]}\n!!!\n{lines[-1]}"):
        with pytest.raises(MalformedLicenseFileError):
            load_license_file(garbage, keys, licence.key)


def test_files_signed_before_a_rotation_load_during_the_overlap(alpha_client, licence):
    text = file_for(licence)
    with schema_context("alpha"):
        rotate_signing_key(Tenant.objects.get(schema_name="alpha"), timedelta(days=1))
    keys = public_keys_from_jwks(alpha_client.get("/v1/signing-keys").json())
    assert len(keys) == 2
    assert load_license_file(text, keys, licence.key).license["plan"] == licence.plan.code


# --- Epochs and the revocation list


def test_suspending_and_revoking_bump_the_epoch(licence):
    services.update_license(licence, metadata={"note": "x"})
    assert License.objects.get(pk=licence.pk).epoch == 0
    services.update_license(licence, status=LicenseStatus.SUSPENDED)
    services.update_license(licence, status=LicenseStatus.SUSPENDED)  # no change, no bump
    assert License.objects.get(pk=licence.pk).epoch == 1
    services.update_license(licence, status=LicenseStatus.ACTIVE)
    assert License.objects.get(pk=licence.pk).epoch == 1
    services.update_license(licence, status=LicenseStatus.REVOKED)
    assert License.objects.get(pk=licence.pk).epoch == 2


def test_revocations_list_withdrawn_licences_of_the_last_year(alpha_client, jwks, in_alpha):
    active, suspended, revoked, long_ago = (make_license() for _ in range(4))
    services.update_license(suspended, status=LicenseStatus.SUSPENDED)
    services.update_license(revoked, status=LicenseStatus.REVOKED)
    services.update_license(long_ago, status=LicenseStatus.REVOKED)
    License.objects.filter(pk=long_ago.pk).update(updated_at=timezone.now() - timedelta(days=366))
    response = alpha_client.get("/v1/licenses/revocations")
    assert response.status_code == 200
    rfc9421_verify(response, request_of(path="/v1/licenses/revocations", method="GET"), jwks)
    body = response.json()
    assert set(body) == {"results", "next", "previous", "tenant", "ts"}
    listed = {entry["license_key_hash"]: entry["epoch"] for entry in body["results"]}
    assert listed == {license_key_hash(suspended.key): 1, license_key_hash(revoked.key): 1}
    assert license_key_hash(suspended.key) == hashlib.sha256(suspended.key.encode()).hexdigest()


def test_a_file_is_dropped_when_its_licence_is_withdrawn_later(alpha_client, licence, keys):
    opened = load_license_file(file_for(licence), keys, licence.key)
    assert not opened.revoked_by(alpha_client.get("/v1/licenses/revocations").json()["results"])
    services.update_license(licence, status=LicenseStatus.SUSPENDED)
    revocations = alpha_client.get("/v1/licenses/revocations").json()["results"]
    assert opened.revoked_by(revocations)
    # A file checked out after reactivation carries the new epoch and survives a stale list.
    services.update_license(licence, status=LicenseStatus.ACTIVE)
    fresh = load_license_file(file_for(License.objects.get(pk=licence.pk)), keys, licence.key)
    assert fresh.epoch == 1 and not fresh.revoked_by(revocations)


def test_revocations_are_paginated(alpha_client, in_alpha):
    for _ in range(3):
        services.update_license(make_license(), status=LicenseStatus.REVOKED)
    page = alpha_client.get("/v1/licenses/revocations?limit=2").json()
    assert len(page["results"]) == 2 and page["next"]
    assert alpha_client.get("/v1/licenses/revocations?limit=x").status_code == 400


# --- The command and the admin


def test_checkout_license_command(licence, keys, tmp_path):
    out = io.StringIO()
    call_command("checkout_license", "--tenant", "alpha", "--key", licence.key, stdout=out)
    assert load_license_file(out.getvalue(), keys, licence.key).tenant == "alpha"
    target = tmp_path / "licence.lic"
    call_command(
        "checkout_license",
        "--tenant", "alpha", "--key", licence.key, "--encrypt", "--ttl", "3600",
        "--output", str(target),
        stderr=io.StringIO(),
    )  # fmt: skip
    assert load_license_file(target.read_text(), keys, licence.key).license["status"] == "active"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--key", "NOPE"], "NOT_FOUND"),
        (["--ttl", "60"], "Between 3600"),
        (["--fingerprint", " bad print"], "Printable ASCII"),
        (["--fingerprint", "machine-1"], "FINGERPRINT_NOT_ACTIVATED"),
        (["--output", "/nonexistent/dir/file.lic"], "Cannot write"),
    ],
)
def test_checkout_license_command_refuses_bad_input(licence, args, message):
    base = ["--tenant", "alpha", "--key", licence.key]
    with pytest.raises(CommandError, match=message):
        call_command("checkout_license", *base, *args, stdout=io.StringIO())


def test_admin_downloads_a_licence_file(admin_client, licence, keys):
    response = admin_client.post(
        "/admin/licensing/license/",
        {"action": "download_license_file", "_selected_action": [licence.pk]},
    )
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert load_license_file(response.content.decode(), keys, licence.key).tenant == "alpha"


def test_admin_shows_the_tenants_public_keys_read_only(admin_client, beta_client, jwks):
    page = admin_client.get("/admin/tenants/signingkey/")
    assert page.status_code == 200
    text = page.content.decode()
    assert jwks["keys"][0]["x"] in text
    beta_x = beta_client.get("/v1/signing-keys").json()["keys"][0]["x"]
    assert beta_x not in text  # another tenant's keys are not listed
    assert admin_client.get("/admin/tenants/signingkey/add/").status_code == 403
