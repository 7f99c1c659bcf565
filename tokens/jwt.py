"""The two JWT kinds issued from a User Token, each with its own `token_type`.

Claims checked on every request: `tenant` (schema), `utid` (User Token id) and `gen` (its
generation, bumped by a Refresh). The algorithm is pinned by SIMPLE_JWT["ALGORITHM"]; simplejwt
verifies signature, expiry and `token_type`, so a refresh token is never an access token.
"""

from django.conf import settings
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token

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
