from rest_framework import serializers

from tenants.throttling import licence_counter
from tokens.models import UserToken


class ExchangeSerializer(serializers.Serializer):
    user_token = serializers.CharField(max_length=200, trim_whitespace=True)


class RefreshSerializer(serializers.Serializer):
    refresh_token = serializers.CharField(max_length=4096)


class OwnerSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()


class UserTokenSerializer(serializers.ModelSerializer):
    """A User Token as the API shows it: never its secret or digest."""

    owner = OwnerSerializer(read_only=True)
    last_four = serializers.CharField(read_only=True)

    class Meta:
        model = UserToken
        fields = [
            "id",
            "name",
            "owner",
            "permissions",
            "expires_at",
            "allowed_ips",
            "is_active",
            "last_four",
            "created_at",
            "refreshed_at",
            "last_used_at",
            "last_used_ip",
        ]
        read_only_fields = fields


_DATETIME = serializers.DateTimeField()  # built once: its representation needs no binding


def me_answer(request) -> dict:
    """GET /v1/auth/me's body: the calling token, its permissions and the tenant's allowance,
    built as a plain dict (no serializer per request)."""
    token = request.auth.user_token
    tenant = request.tenant
    counter = licence_counter(request)
    return {
        "id": token.pk,
        "name": token.name,
        "permissions": sorted(request.auth.permissions),
        "expires_at": _DATETIME.to_representation(token.expires_at) if token.expires_at else None,
        "owner": {"id": token.owner_id, "username": token.owner.get_username()},
        "tenant": tenant.schema_name,
        "rate_limit": {
            "limit": tenant.request_limit,
            "period": tenant.request_period,
            "remaining": counter.remaining() if counter is not None else None,
        },
    }
