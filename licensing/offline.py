"""Offline licence files and the revocation list, for clients that cannot call home every time.

A licence file is text:

    -----BEGIN LICENSE FILE-----
    <base64 of the JSON envelope {"payload", "sig", "alg", "kid"}, in lines of 64>
    -----END LICENSE FILE-----

- `payload` is the base64 of the payload's JSON bytes: `license` (as in a validation answer),
  `license_key_hash`, `fingerprint` (or null), `issued`, `expires`, `tenant` and the licence's
  `epoch`. With encryption (`alg` "aes-256-gcm+ed25519") it is the base64 of a 12-byte nonce and
  the AES-256-GCM ciphertext of those bytes, under a key derived by HKDF-SHA256 from the
  normalised licence key (info: `FILE_KEY_INFO`, NUL, the fingerprint or nothing); the kid is the
  associated data. Otherwise `alg` is "ed25519".
- `sig` is the base64 Ed25519 signature, by the tenant's key `kid`, of `SIGNED_PREFIX` followed
  by the `payload` string's ASCII bytes: encrypt-then-sign, so a client rejects a forged file
  before it decrypts anything.
- `license_key_hash` is the lowercase hex SHA-256 of the normalised key (`XXXXX-XXXXX-XXXXX-XXXXX-
  XXXXX`, upper case), the same value the revocation list publishes; 125 random bits per key make
  it unguessable.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import textwrap
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.core.exceptions import ValidationError
from django.utils import timezone

from licensing import services
from licensing.models import FINGERPRINT_MAX_LENGTH, FINGERPRINT_PATTERN, License, ValidationCode
from tenants.http_signatures import iso_utc as iso
from tenants.models import Tenant
from tenants.signing_keys import current_signer

BEGIN = "-----BEGIN LICENSE FILE-----"
END = "-----END LICENSE FILE-----"
SIGNED_PREFIX = b"licensing-platform license-file v1\n"
FILE_KEY_INFO = b"licensing-platform license-file key v1"
ALG_SIGNED = "ed25519"
ALG_ENCRYPTED = "aes-256-gcm+ed25519"
NONCE_BYTES = 12

DEFAULT_TTL = timedelta(days=7)
MIN_TTL = timedelta(hours=1)
MAX_TTL = timedelta(days=365)
# Revoked or suspended licences stay listed this long after their last change: no licence file
# lives longer (MAX_TTL), so a file issued before the change has expired by then.
REVOCATION_WINDOW = timedelta(days=365)

# A machine's fingerprint, as activations take it.
FINGERPRINT = re.compile(FINGERPRINT_PATTERN)


def license_key_hash(normalised_key: str) -> str:
    return hashlib.sha256(normalised_key.encode("ascii")).hexdigest()


def file_key(normalised_key: str, fingerprint: str | None) -> bytes:
    info = FILE_KEY_INFO + b"\x00" + (fingerprint or "").encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
        normalised_key.encode("ascii")
    )


def clean_fingerprint(fingerprint: str | None) -> str | None:
    if fingerprint is not None and not (
        len(fingerprint) <= FINGERPRINT_MAX_LENGTH and FINGERPRINT.match(fingerprint)
    ):
        raise ValidationError(
            {"fingerprint": ["Printable ASCII, 1-255 characters, no space at either end."]}
        )
    return fingerprint


def clean_ttl(ttl_seconds: int | None) -> timedelta:
    if ttl_seconds is None:
        return DEFAULT_TTL
    ttl = timedelta(seconds=ttl_seconds)
    if not MIN_TTL <= ttl <= MAX_TTL:
        raise ValidationError(
            {
                "ttl_seconds": [
                    f"Between {int(MIN_TTL.total_seconds())} (1 hour) and "
                    f"{int(MAX_TTL.total_seconds())} (365 days)."
                ]
            }
        )
    return ttl


@dataclass(frozen=True)
class Checkout:
    """A validation of the key and, when it is valid, the licence file."""

    code: ValidationCode
    license: License | None
    license_file: str | None = None
    issued: datetime | None = None
    expires: datetime | None = None

    @property
    def valid(self) -> bool:
        return self.code == ValidationCode.VALID


def build_license_file(
    license: License,
    *,
    tenant: Tenant,
    normalised_key: str,
    fingerprint: str | None,
    issued: datetime,
    expires: datetime,
    encrypt: bool,
) -> str:
    from licensing.api.serializers import ValidatedLicenseSerializer  # it reads this module

    payload = {
        "license": ValidatedLicenseSerializer(services.license_as_answered(license)).data,
        "license_key_hash": license_key_hash(normalised_key),
        "fingerprint": fingerprint,
        "issued": iso(issued),
        "expires": iso(expires),
        "tenant": tenant.schema_name,
        "epoch": license.epoch,
    }
    plain = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    signer = current_signer(tenant)
    if encrypt:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(file_key(normalised_key, fingerprint)).encrypt(
            nonce, plain, signer.kid.encode()
        )
        body, alg = nonce + sealed, ALG_ENCRYPTED
    else:
        body, alg = plain, ALG_SIGNED
    encoded = base64.b64encode(body).decode()
    envelope = {
        "payload": encoded,
        "sig": base64.b64encode(signer.sign(SIGNED_PREFIX + encoded.encode())).decode(),
        "alg": alg,
        "kid": signer.kid,
    }
    armoured = base64.b64encode(json.dumps(envelope, separators=(",", ":")).encode()).decode()
    return "\n".join([BEGIN, *textwrap.wrap(armoured, 64), END]) + "\n"


def check_out_license(
    key: str,
    *,
    tenant: Tenant,
    fingerprint: str | None = None,
    ttl_seconds: int | None = None,
    encrypt: bool = False,
    product_code: str | None = None,
    client_address: str | None = None,
) -> Checkout:
    """Validate `key` (recorded like any validation) and, when valid, issue a licence file that
    expires after `ttl_seconds` (1 hour to 365 days, default 7 days), never after the licence.
    A `fingerprint` binds the file to that machine, which must be activated for the licence (else
    the check answers FINGERPRINT_NOT_ACTIVATED or HEARTBEAT_DEAD, and no file)."""
    fingerprint = clean_fingerprint(fingerprint)
    ttl = clean_ttl(ttl_seconds)
    result = services.validate_license_key(
        key, product_code=product_code, fingerprint=fingerprint, client_address=client_address
    )
    if not result.valid:
        return Checkout(code=result.code, license=result.license)
    license = result.license
    issued = timezone.now()
    expires = issued + ttl
    if license.expires_at is not None:
        expires = min(expires, license.expires_at)
    text = build_license_file(
        license,
        tenant=tenant,
        normalised_key=license.key,
        fingerprint=fingerprint,
        issued=issued,
        expires=expires,
        encrypt=encrypt,
    )
    return Checkout(
        code=result.code, license=license, license_file=text, issued=issued, expires=expires
    )


def revoked_licenses(now: datetime | None = None):
    """Revoked or suspended licences changed within REVOCATION_WINDOW, ordered by id."""
    since = (now or timezone.now()) - REVOCATION_WINDOW
    return (
        License.objects.filter(status__in=services.WITHDRAWN_STATUSES, updated_at__gte=since)
        .only("id", "key", "epoch", "status")
        .order_by("id")
    )
