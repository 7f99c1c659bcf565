"""Access-token authentication: every check of CONTRACT section 4, on every request."""

from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from config.client_address import client_address
from tokens import signals
from tokens.services import FailureReason, TokenRefused, authenticate_access_token


def refuse(request, refused: TokenRefused, stage: str) -> AuthenticationFailed:
    """Signal the failure (for monitoring) and build the one answer every failure gets."""
    signals.authentication_failed.send(
        TokenRefused,
        request=request,
        reason=refused.reason,
        user_token_id=refused.user_token_id,
        stage=stage,
    )
    return AuthenticationFailed()


class AccessTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <access token>`; request.user is the owner, request.auth a TokenAuth.

    Tokens are never read from the URL. A request without the header is anonymous (the permission
    check then answers 401); a header that is present but wrong is refused at once.
    """

    keyword = "bearer"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "").split()
        if not header:
            return None
        if len(header) != 2 or header[0].lower() != self.keyword or not header[1].isascii():
            raise refuse(request, TokenRefused(FailureReason.MALFORMED), "access")
        raw = header[1]
        try:
            auth = authenticate_access_token(raw, address=client_address(request))
        except TokenRefused as refused:
            raise refuse(request, refused, "access") from None
        return auth.user_token.owner, auth

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
