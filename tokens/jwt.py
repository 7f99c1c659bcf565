"""The two JWT kinds issued from a User Token, each with its own `token_type`.

Claims checked on every request: `tenant` (schema), `utid` (User Token id) and `gen` (its
generation, bumped by a Refresh). The algorithm is pinned by SIMPLE_JWT["ALGORITHM"]; simplejwt
verifies signature, expiry and `token_type`, so a refresh token is never an access token.
"""

from django.conf import settings
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token
from rest_framework_simplejwt.utils import aware_utcnow

TENANT_CLAIM = "tenant"
USER_TOKEN_CLAIM = "utid"
GENERATION_CLAIM = "gen"


class ApiAccessToken(Token):
    token_type = "access"
    lifetime = settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"]


class ApiRefreshToken(Token):
    token_type = "refresh"
    lifetime = settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"]


def issue(token_class: type[Token], *, tenant: str, user_token) -> Token:
    token = token_class()
    token[TENANT_CLAIM] = tenant
    token[USER_TOKEN_CLAIM] = user_token.pk
    token[GENERATION_CLAIM] = user_token.generation
    token[api_settings.USER_ID_CLAIM] = user_token.owner_id
    return token


# Access tokens whose signature verified, with their payload: an integration presents the same
# access token for up to 24 hours, and PyJWT's decoding and HMAC check cost ~0.3 ms a request.
# Bounded (emptied when full); only tokens that verified are kept, so input cannot fill it.
VERIFIED_MAX = 4096
_verified: dict[tuple, dict] = {}


def verified_payload(token_class: type[Token], raw: str) -> dict:
    """`token_class(raw).payload`, the signature checked once per process and token: the claims
    that depend on the time (expiry), the token id and the type are checked on every call, as
    simplejwt's `verify()` does them, at this moment (raises TokenError). Not to be mutated."""
    token = token_class.__new__(token_class)  # simplejwt's checks, on the kept payload
    backend = token.get_token_backend()
    key = (token_class, raw, backend.signing_key, backend.verifying_key)
    payload = _verified.get(key)
    if payload is None:
        payload = token_class(raw).payload
        if len(_verified) >= VERIFIED_MAX:
            _verified.clear()
        _verified[key] = payload
        return payload
    token.token, token.current_time, token.payload = raw, aware_utcnow(), payload
    token.verify()
    return payload
