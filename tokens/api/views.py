from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from api.client_address import client_address
from tenants.throttling import count_failed_attempt, guard_against_guessing
from tokens import services
from tokens.api import openapi
from tokens.api.authentication import refuse
from tokens.api.serializers import (
    ExchangeSerializer,
    RefreshSerializer,
    UserTokenSerializer,
    me_answer,
)
from tokens.catalogue import Permission
from tokens.models import UserToken


class CredentialView(APIView):
    """Token exchange and refresh: no Authorization header needed, guessing is throttled."""

    authentication_classes = []
    permission_classes = []
    serializer_class: type
    field: str
    abuse_scope: str  # tenants.throttling: guessing secrets is slowed per address
    stage: str
    credentials_in_body = True  # api.openapi: a wrong secret answers 401 without Authorization

    def post(self, request):
        guard_against_guessing(request, self.abuse_scope)
        try:
            pair = self.exchange(self.credential(request.data), request)
        except services.TokenRefused as refused:
            count_failed_attempt(request, self.abuse_scope)
            raise refuse(request, refused, self.stage) from None
        return Response(pair.as_response(), headers={"Cache-Control": "no-store"})

    def credential(self, data):
        """The credential, as the serializer would give it: a JSON object's short ASCII string
        without NUL is taken stripped at once; anything else goes through the serializer (its 400
        bodies are DRF's; tests/tokens/test_credential_input.py compares the two)."""
        value = data.get(self.field) if type(data) is dict else None
        if type(value) is str and value.isascii() and "\x00" not in value:
            stripped = value.strip()
            if 0 < len(stripped) <= self.serializer_class._declared_fields[self.field].max_length:
                return stripped
        serializer = self.serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data[self.field]


@openapi.token_exchange
class TokenExchangeView(CredentialView):
    """POST /v1/auth/token: a User Token secret for an access and a refresh token."""

    serializer_class = ExchangeSerializer
    field = "user_token"
    abuse_scope = "token_exchange"
    stage = "exchange"

    def exchange(self, secret, request):
        return services.exchange_user_token(
            secret, address=client_address(request), request=request
        )


@openapi.token_refresh
class TokenRefreshView(CredentialView):
    """POST /v1/auth/refresh: a refresh token (spent by this call) for a new pair."""

    serializer_class = RefreshSerializer
    field = "refresh_token"
    abuse_scope = "token_refresh"
    stage = "refresh"

    def exchange(self, raw, request):
        return services.rotate_refresh_token(raw, address=client_address(request), request=request)


@openapi.me
class MeView(APIView):
    """GET /v1/auth/me: the calling token, its permissions and the tenant's request allowance."""

    required_permissions = {"GET": ()}

    def get(self, request):
        return Response(me_answer(request))


@openapi.user_tokens
class UserTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """List, read and refresh User Tokens. There is deliberately no create: tokens are made in
    the admin only."""

    required_permissions = {
        "GET": (Permission.EDIT_USER_TOKENS,),
        "POST": (Permission.EDIT_USER_TOKENS,),
    }
    serializer_class = UserTokenSerializer
    queryset = UserToken.objects.select_related("owner")

    @action(detail=True, methods=["post"])
    def refresh(self, request, pk=None):
        token = self.get_object()
        secret = services.refresh_user_token_as(request.auth, token, request=request)
        body = {**UserTokenSerializer(token).data, "user_token": secret}
        return Response(body, headers={"Cache-Control": "no-store"})
