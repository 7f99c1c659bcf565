"""Access-token authentication: every check of CONTRACT section 4, on every request."""

from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import APIException, AuthenticationFailed

from api.client_address import client_address
from tenants.throttling import count_failed_attempt, refuse_attempt
from tokens import signals
from tokens.services import FailureReason, TokenRefused, authenticate_access_token

# Abuse-throttle scope of failed access-token authentications (missing, malformed, wrong tokens).
ACCESS_SCOPE = "access"


def refuse(request, refused: TokenRefused, stage: str) -> APIException:
    """Signal the failure (for monitoring) and build the one answer every failure gets.

    A failed access-token authentication also counts against the client address; once it has
    failed ABUSE_FAILURE_RATE times its failures answer 429 Too Many Requests instead of 401 (the
    exchange and refresh views count theirs themselves). Only failures are counted, so a request
    with a good token never touches the counter.
    """
    signals.authentication_failed.send(
        TokenRefused,
        request=request,
        reason=refused.reason,
        user_token_id=refused.user_token_id,
        stage=stage,
    )
    if stage == "access":
        usage = count_failed_attempt(request, ACCESS_SCOPE)
        if usage is not None and usage["should_limit"]:
            return refuse_attempt(request, ACCESS_SCOPE, usage)
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
        # A view may name the row it will read, so that the token's statement reads it too.
        view = request.parser_context.get("view") if request.parser_context else None
        row_read = getattr(view, "row_read_with_token", None)
        try:
            auth = authenticate_access_token(
                raw, address=client_address(request), row=row_read(request) if row_read else None
            )
        except TokenRefused as refused:
            raise refuse(request, refused, "access") from None
        return auth.user_token.owner, auth

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
