"""Declarative permission checks, Sentry's scope_map style.

A view says, per HTTP method, which permission codes of the catalogue it needs::

    class LicenseViewSet(...):
        required_permissions = {
            "GET": (Permission.VIEW_LICENSES,),
            "POST": (Permission.EDIT_LICENSES,),
            "PATCH": (Permission.EDIT_LICENSES,),
        }

A method missing from the map is denied. The token's permissions are read as they are now
(`request.auth.permissions`, set by the access-token authentication), so removing a checkbox takes
effect on the next request. A refusal names the codes the token lacks in the
`X-Required-Permissions` header (the body stays the contract's `{"error": "Access denied"}`).
"""

from rest_framework.permissions import BasePermission

from config.errors import MissingPermissions
from tokens import signals
from tokens.api.authentication import refuse
from tokens.catalogue import ALL_PERMISSIONS
from tokens.services import FailureReason, TokenRefused


def required_for(view, method: str) -> tuple[str, ...] | None:
    """The permission codes `view` requires for `method`; None when the method is not allowed."""
    scope_map = getattr(view, "required_permissions", None) or {}
    if method == "HEAD":
        method = "GET"
    required = scope_map.get(method)
    if required is None:
        return None
    unknown = set(required) - ALL_PERMISSIONS
    if unknown:
        raise ValueError(f"{type(view).__name__} requires unknown permissions {sorted(unknown)}")
    return tuple(required)


class HasTokenPermissions(BasePermission):
    """Allow a request only if its access token holds every permission its method requires;
    otherwise MissingPermissions names the codes it lacks."""

    def has_permission(self, request, view) -> bool:
        granted = getattr(request.auth, "permissions", None)
        if granted is None:  # no credentials were given: 401 (or 429 for a failing address)
            raise refuse(request, TokenRefused(FailureReason.MISSING), "access")
        if not hasattr(view, request.method.lower()):
            return True  # DRF answers 405 for a method the view does not implement
        required = required_for(view, request.method)
        if required is None:
            return False
        missing = [code for code in required if code not in granted]
        if missing:
            signals.permission_denied.send(
                HasTokenPermissions,
                request=request,
                user_token=request.auth.user_token,
                missing=missing,
                method=request.method,
                path=request.path,
            )
            raise MissingPermissions(missing)
        signals.token_used.send(
            HasTokenPermissions,
            request=request,
            user_token=request.auth.user_token,
            permissions_used=list(required),
        )
        return True
