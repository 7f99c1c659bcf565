"""Declarative permission checks, Sentry's scope_map style.

A view says, per HTTP method, which permission codes it needs::

    class LicenseViewSet(...):
        required_permissions = {
            "GET": (Permission.VIEW_LICENSES,),
            "POST": (Permission.EDIT_LICENSES,),
            "PATCH": (Permission.EDIT_LICENSES,),
        }

A method missing from the map is denied. `ScopeMapPermission` is the check; a subclass says what
the request holds and what a refusal or a use records (tokens.api.permissions.HasTokenPermissions,
the API's default permission class, for User Tokens). A refusal names the codes the caller lacks in
the `X-Required-Permissions` header (the body stays the contract's `{"error": "Access denied"}`).
"""

from rest_framework.permissions import BasePermission

from api.errors import MissingPermissions


def required_for(view, method: str) -> tuple[str, ...] | None:
    """The permission codes `view` requires for `method`; None when the method is not allowed.

    A code outside the catalogue of the view's permission class is a programming error.
    """
    scope_map = getattr(view, "required_permissions", None) or {}
    if method == "HEAD":
        method = "GET"
    required = scope_map.get(method)
    if required is None:
        return None
    for permission_class in getattr(view, "permission_classes", ()):
        unknown = set(required) - getattr(permission_class, "catalogue", set(required))
        if unknown:
            raise ValueError(
                f"{type(view).__name__} requires unknown permissions {sorted(unknown)}"
            )
    return tuple(required)


class ScopeMapPermission(BasePermission):
    """Allow a request only if the caller holds every permission its method requires; otherwise
    MissingPermissions names the codes it lacks. Default deny."""

    catalogue: frozenset[str] = frozenset()  # every code a view may require

    @classmethod
    def label(cls, code: str) -> str:
        """A code's name for people (the OpenAPI description's permission note)."""
        return code

    def granted(self, request) -> frozenset[str] | None:
        """The codes the caller holds; None when it gave no credentials."""
        raise NotImplementedError

    def unauthenticated(self, request) -> Exception:
        """What to raise for a request without credentials."""
        raise NotImplementedError

    def denied(self, request, missing: list[str]) -> None:
        """Called before a refusal for lacking `missing`."""

    def used(self, request, required: tuple[str, ...]) -> None:
        """Called when the request is allowed by holding `required`."""

    def has_permission(self, request, view) -> bool:
        granted = self.granted(request)
        if granted is None:
            raise self.unauthenticated(request)
        if not hasattr(view, request.method.lower()):
            return True  # DRF answers 405 for a method the view does not implement
        required = required_for(view, request.method)
        if required is None:
            return False
        missing = [code for code in required if code not in granted]
        if missing:
            self.denied(request, missing)
            raise MissingPermissions(missing)
        self.used(request, required)
        return True
