"""The tokens API's OpenAPI description, next to its views (tokens/api/views.py): each
operation's texts and examples, and the bodies of the views that answer without a serializer."""

from drf_spectacular.utils import extend_schema_view, inline_serializer
from rest_framework import serializers

from api.openapi_texts import AUTH_ERRORS, WHEN, documented, resource
from tokens.api.serializers import ExchangeSerializer, RefreshSerializer, UserTokenSerializer
from tokens.catalogue import Permission

USER_TOKEN = {
    "id": 7,
    "name": "CI deploys",
    "owner": {"id": 5, "username": "dana"},
    "permissions": ["view_licenses", "edit_licenses"],
    "expires_at": "2027-03-02T09:30:00Z",
    "allowed_ips": ["203.0.113.0/24"],
    "is_active": True,
    "last_four": "9c1e",
    "created_at": WHEN,
    "refreshed_at": None,
    "last_used_at": WHEN,
    "last_used_ip": "203.0.113.7",
}
PAIR = {
    "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0b2tlbl9pZCI6N30.c2lnbmF0dXJl",
    "refresh_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJqdGkiOiI0MiJ9.c2lnbmF0dXJl",
    "token_type": "Bearer",
    "expires_in": 86400,
    "permissions": ["view_licenses", "edit_licenses"],
}

TOKEN_PAIR = inline_serializer(
    "TokenPair",
    {
        "access_token": serializers.CharField(help_text="JWT for `Authorization: Bearer`."),
        "refresh_token": serializers.CharField(help_text="Spent by `POST /v1/auth/refresh`."),
        "token_type": serializers.ChoiceField(choices=["Bearer"]),
        "expires_in": serializers.IntegerField(help_text="Seconds the access token lives."),
        "permissions": serializers.ListField(
            child=serializers.ChoiceField(choices=Permission.choices)
        ),
    },
)

ME = inline_serializer(
    "Me",
    {
        "id": serializers.IntegerField(),
        "name": serializers.CharField(),
        "permissions": serializers.ListField(
            child=serializers.ChoiceField(choices=Permission.choices)
        ),
        "expires_at": serializers.DateTimeField(allow_null=True),
        "owner": inline_serializer(
            "TokenOwner",
            {"id": serializers.IntegerField(), "username": serializers.CharField()},
        ),
        "tenant": serializers.CharField(),
        "rate_limit": inline_serializer(
            "RateLimit",
            {
                "limit": serializers.IntegerField(),
                "period": serializers.ChoiceField(choices=["minute", "hour", "day"]),
                "remaining": serializers.IntegerField(allow_null=True),
            },
        ),
    },
)

REFRESHED_USER_TOKEN = inline_serializer(
    "RefreshedUserToken",
    {
        **UserTokenSerializer().get_fields(),
        "user_token": serializers.UUIDField(help_text="The new secret, shown only here."),
    },
)

token_exchange = extend_schema_view(
    post=documented(
        "Exchange a User Token for access",
        "Trades a User Token's secret (from the admin) for an access token (24 hours) and a "
        "refresh token (30 days). Send the access token as `Authorization: Bearer <access "
        "token>`. Errors: 401 `Invalid token` for an unknown, expired or deactivated User Token "
        "or a request from outside its allowed networks; 429 after too many failed attempts "
        "from one address.",
        request_example={"user_token": "1c9e4f2a-7b3d-4c8e-9a1f-5d6e7f8a9b0c"},
        response_example=PAIR,
        request=ExchangeSerializer,
        responses={200: TOKEN_PAIR},
    )
)
token_refresh = extend_schema_view(
    post=documented(
        "Refresh an access token",
        "Spends a refresh token for a new access and refresh token pair; the old refresh token "
        "stops working. Errors: 401 `Invalid token` for a spent, expired or malformed refresh "
        "token; 429 after too many failed attempts.",
        request_example={"refresh_token": PAIR["refresh_token"]},
        response_example=PAIR,
        request=RefreshSerializer,
        responses={200: TOKEN_PAIR},
    )
)
me = extend_schema_view(
    get=documented(
        "Show the calling token",
        "The access token's User Token (id, name), its permissions and the tenant's request "
        "allowance for the current period. Errors: 401 without a valid access token.",
        response_example={
            "id": 7,
            "name": "CI deploys",
            "permissions": ["view_licenses", "edit_licenses"],
            "expires_at": "2027-03-02T09:30:00Z",
            "owner": {"id": 5, "username": "dana"},
            "tenant": "acme",
            "rate_limit": {"limit": 100000, "period": "day", "remaining": 99412},
        },
        responses={200: ME},
    )
)
user_tokens = resource(
    "/v1/user-tokens",
    "User Token",
    "User Tokens",
    "User Tokens are the API's credentials; they are made in the admin, never over the API, "
    "and their secret is never shown here.",
    USER_TOKEN,
    refresh=documented(
        "Refresh a User Token's secret",
        "Replaces the User Token's secret; the new one (`user_token`) is shown in this answer "
        f"only, and the old one stops working at once. Errors: 404 if no such token, "
        f"{AUTH_ERRORS}.",
        response_example={**USER_TOKEN, "user_token": "0b8f6d2e-3c4a-4e7f-8a9b-1c2d3e4f5a6b"},
        request=None,
        responses={200: REFRESHED_USER_TOKEN},
    ),
)
