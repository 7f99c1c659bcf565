"""GET /v1/auth/me answers from a plain dict (tokens.api.serializers.me_answer): its bytes are
what DRF's fields make of the same token, an expiry with microseconds included."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("expires_in", [None, timedelta(days=3, microseconds=7)])
def test_me_is_byte_for_byte_what_drfs_fields_make(api_client, tenant_alpha, expires_in):
    expires_at = timezone.now() + expires_in if expires_in else None
    client = api_client("alpha", ["view_users", "view_licenses"], expires_at=expires_at)
    response = client.get("/v1/auth/me")
    assert response.status_code == 200
    token = client.user_token
    expected = {
        "id": token.pk,
        "name": token.name,
        "permissions": ["view_licenses", "view_users"],
        "expires_at": serializers.DateTimeField().to_representation(expires_at)
        if expires_at
        else None,
        "owner": {"id": token.owner_id, "username": token.owner.get_username()},
        "tenant": "alpha",
        "rate_limit": {
            "limit": tenant_alpha.request_limit,
            "period": tenant_alpha.request_period,
            "remaining": int(response["X-RateLimit-Remaining"]),
        },
    }
    assert response.content == JSONRenderer().render(expected)
    if expires_at:
        assert response.json()["expires_at"].endswith(f".{expires_at.microsecond:06d}Z")
