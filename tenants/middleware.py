"""Tenant resolution from the request's host."""

from django.core.exceptions import DisallowedHost
from django.db import InterfaceError, OperationalError
from django.http import HttpResponseNotFound
from django_tenants.middleware.main import TenantMainMiddleware

from api.errors import NOT_FOUND, SERVICE_UNAVAILABLE, is_api_request, json_error
from tenants.resolution import tenant_cache


class TenantMiddleware(TenantMainMiddleware):
    """django-tenants' middleware, answering an unknown host with the contract's 404."""

    def process_request(self, request):
        try:
            return super().process_request(request)
        except (OperationalError, InterfaceError):
            if is_api_request(request):
                return json_error(503, SERVICE_UNAVAILABLE)
            raise

    def get_tenant(self, domain_model, hostname):
        # Cached per process and invalidated when tenants or domains change: a warm request costs
        # no query (tenants/resolution.py).
        return tenant_cache.get(
            hostname, lambda name: TenantMainMiddleware.get_tenant(self, domain_model, name)
        )

    @staticmethod
    def hostname_from_request(request):
        try:
            # Host names are case-insensitive; domains are stored in lower case.
            return TenantMainMiddleware.hostname_from_request(request).lower()
        except DisallowedHost:
            # Resolved like any unknown host below, so the answer does not depend on ALLOWED_HOSTS.
            return ""

    def no_tenant_found(self, request, hostname):
        if is_api_request(request):
            return json_error(404, NOT_FOUND)
        return HttpResponseNotFound("Not found", content_type="text/plain")
