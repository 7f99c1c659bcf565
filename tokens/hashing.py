"""Keyed hashing of User Token secrets (HMAC-SHA256), with key ids so the key can be rotated."""

import hashlib
import hmac
import uuid

from django.conf import settings


def current_key_id() -> str:
    return settings.USER_TOKEN_HASH_KEY_ID


def _keys() -> dict[str, str]:
    return {**settings.USER_TOKEN_OLD_HASH_KEYS, current_key_id(): settings.USER_TOKEN_HASH_KEY}


def normalise_secret(value: str) -> str:
    """The canonical form of a secret; a malformed value is kept as given (it matches nothing)."""
    try:
        return str(uuid.UUID(value.strip()))
    except (ValueError, AttributeError):
        return str(value)[:200]


def digest(secret: str, key_id: str | None = None) -> str:
    key = _keys()[key_id or current_key_id()]
    return hmac.new(key.encode(), normalise_secret(secret).encode(), hashlib.sha256).hexdigest()


def candidate_digests(secret: str) -> list[tuple[str, str]]:
    """(key id, digest) under the current key first, then under each retired key still accepted."""
    return [
        (key_id, digest(secret, key_id))
        for key_id in [current_key_id(), *settings.USER_TOKEN_OLD_HASH_KEYS]
    ]


def new_secret() -> str:
    return str(uuid.uuid4())
