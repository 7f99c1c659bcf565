"""The API's default permission class: the scope-map check (api.permissions) for User Tokens.

The token's permissions are read as they are now (`request.auth.permissions`, set by the
access-token authentication), so removing a checkbox takes effect on the next request.
"""

from api.permissions import ScopeMapPermission
from tokens import signals
from tokens.api.authentication import refuse
from tokens.catalogue import ALL_PERMISSIONS, Permission
from tokens.services import FailureReason, TokenRefused


class HasTokenPermissions(ScopeMapPermission):
    """Allow a request only if its access token holds every permission its method requires."""

    catalogue = ALL_PERMISSIONS

    @classmethod
    def label(cls, code):
        return Permission(code).label

    def granted(self, request):
        return getattr(request.auth, "permissions", None)

    def unauthenticated(self, request):
        # No credentials were given: 401 (or 429 for a failing address).
        return refuse(request, TokenRefused(FailureReason.MISSING), "access")

    def denied(self, request, missing):
        signals.permission_denied.send(
            HasTokenPermissions,
            request=request,
            user_token=request.auth.user_token,
            missing=missing,
            method=request.method,
            path=request.path,
        )

    def used(self, request, required):
        signals.token_used.send(
            HasTokenPermissions,
            request=request,
            user_token=request.auth.user_token,
            permissions_used=list(required),
        )
