"""Each tenant's Ed25519 signing keys: created, encrypted at rest, rotated, published, loaded.

- A tenant has exactly one *current* key (it signs every new answer and licence file) and any
  number of *retiring* keys, published until their `retires_at` so that signatures made before a
  rotation still verify. Past it a key is *retired*: no longer published, never used again.
- The private key is stored encrypted with AES-256-GCM under a key derived by HKDF-SHA256 from
  `SIGNING_KEY_ENCRYPTION_KEY`; the tenant's schema and the kid are the associated data, so a
  ciphertext copied to another row or tenant does not decrypt.
- Workers keep the current key they loaded for `SIGNING_KEY_CACHE_SECONDS` (10 s): a rotation made
  by a command reaches every worker within that time, at once in the process that made it. Nothing
  is cached inside a transaction (rows read there may be rolled back).
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from tenants.models import SigningKey, Tenant

ENCRYPTION_INFO = b"licensing-platform signing-key encryption v1"
NONCE_BYTES = 12
# A rotation keeps the replaced key published this long unless told otherwise: as long as the
# default licence-file lifetime, so files checked out just before a rotation keep verifying.
DEFAULT_OVERLAP = timedelta(days=7)
MAX_OVERLAP = timedelta(days=366)


def _encryption_key() -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=ENCRYPTION_INFO).derive(
        settings.SIGNING_KEY_ENCRYPTION_KEY.encode()
    )


def _associated_data(schema_name: str, kid: str) -> bytes:
    return f"signing-key\x00{schema_name}\x00{kid}".encode()


def new_kid(schema_name: str) -> str:
    """`<schema>-<yyyymmdd>-<8 hex>`: names the tenant for people; unique by its random part."""
    return f"{schema_name}-{timezone.now():%Y%m%d}-{secrets.token_hex(4)}"


def new_key_material(schema_name: str, kid: str) -> tuple[bytes, bytes]:
    """A fresh key pair: (raw public key, encrypted raw private key)."""
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(_encryption_key()).encrypt(
        nonce, raw_private, _associated_data(schema_name, kid)
    )
    raw_public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return raw_public, nonce + sealed


def decrypt_private_key(key: SigningKey, schema_name: str) -> Ed25519PrivateKey:
    sealed = bytes(key.encrypted_private_key)
    try:
        raw = AESGCM(_encryption_key()).decrypt(
            sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _associated_data(schema_name, key.kid)
        )
    except InvalidTag:
        raise ImproperlyConfigured(
            f"Signing key {key.kid} does not decrypt: SIGNING_KEY_ENCRYPTION_KEY is not the key it "
            "was stored with."
        ) from None
    return Ed25519PrivateKey.from_private_bytes(raw)


def _add_key(tenant: Tenant) -> SigningKey:
    kid = new_kid(tenant.schema_name)
    public, sealed = new_key_material(tenant.schema_name, kid)
    return SigningKey.objects.create(
        tenant=tenant, kid=kid, public_key=public, encrypted_private_key=sealed
    )


def ensure_signing_key(tenant: Tenant) -> SigningKey:
    """The tenant's current key, created when it has none (provisioning, a tenant made otherwise)."""
    current = SigningKey.objects.filter(tenant=tenant, retires_at__isnull=True).first()
    if current is not None:
        return current
    try:
        with transaction.atomic():
            return _add_key(tenant)
    except IntegrityError:  # another process created it meanwhile
        return SigningKey.objects.get(tenant=tenant, retires_at__isnull=True)


@transaction.atomic
def rotate_signing_key(tenant: Tenant, overlap: timedelta = DEFAULT_OVERLAP) -> SigningKey:
    """A new current key; the one it replaces stays published as retiring for `overlap` (zero:
    withdrawn at once, e.g. after a compromise). Returns the new key."""
    if overlap < timedelta(0) or overlap > MAX_OVERLAP:
        raise ValidationError(f"The overlap must be between 0 and {MAX_OVERLAP.days} days.")
    Tenant.objects.select_for_update().filter(pk=tenant.pk).values_list("pk").get()
    now = timezone.now()
    SigningKey.objects.filter(tenant=tenant, retires_at__isnull=True).update(
        retires_at=now + overlap
    )
    key = _add_key(tenant)
    signer_cache.clear()
    transaction.on_commit(signer_cache.clear)  # a signer loaded meanwhile in this process
    return key


def published_keys(tenant: Tenant, now: datetime | None = None) -> list[SigningKey]:
    """The current key first, then the retiring ones, newest first."""
    now = now or timezone.now()
    keys = SigningKey.objects.filter(tenant=tenant).exclude(retires_at__lte=now)
    return sorted(keys, key=lambda k: (k.retires_at is not None, -k.created_at.timestamp()))


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwk(key: SigningKey, now: datetime | None = None) -> dict:
    """RFC 8037's JWK of an Ed25519 public key, with its publication status."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "kid": key.kid,
        "x": b64url(bytes(key.public_key)),
        "status": key.status_at(now or timezone.now()).value,
    }


def jwks(tenant: Tenant) -> dict:
    ensure_signing_key(tenant)  # never an empty set for a tenant made without one
    now = timezone.now()
    return {"keys": [jwk(key, now) for key in published_keys(tenant, now)]}


@dataclass(frozen=True)
class Signer:
    """A tenant's current key, loaded and decrypted."""

    kid: str
    private_key: Ed25519PrivateKey

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)


class SignerCache:
    """The current signer of each tenant, per process, for SIGNING_KEY_CACHE_SECONDS."""

    def __init__(self):
        self._entries: dict[int, tuple[Signer, float]] = {}
        self._lock = threading.Lock()

    def get(self, tenant: Tenant) -> Signer:
        now = time.monotonic()
        entry = self._entries.get(tenant.pk)
        if entry is not None and entry[1] > now:
            return entry[0]
        key = ensure_signing_key(tenant)
        signer = Signer(kid=key.kid, private_key=decrypt_private_key(key, tenant.schema_name))
        if not connection.in_atomic_block:
            with self._lock:
                self._entries[tenant.pk] = (signer, now + settings.SIGNING_KEY_CACHE_SECONDS)
        return signer

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


signer_cache = SignerCache()


def current_signer(tenant: Tenant) -> Signer:
    return signer_cache.get(tenant)
