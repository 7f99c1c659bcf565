"""URLs of a tenant's domain: its admin and the REST API under /v1/."""

from django.urls import include, path, re_path

from api.errors import not_found_view

urlpatterns = [
    path("", include("tenants.admin_urls")),  # the admin, its login throttled per address
    path("v1/", include("config.api_urls")),
    re_path(r"^v1(/.*)?$", not_found_view),
]

handler404 = "api.errors.not_found_view"
