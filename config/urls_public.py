"""URLs of the public (platform) domain: the operators' admin."""

from django.urls import include, path, re_path

from api.errors import not_found_view

urlpatterns = [
    path("", include("tenants.admin_urls")),  # the admin, its login throttled per address
    re_path(r"^v1(/.*)?$", not_found_view),
]

handler404 = "api.errors.not_found_view"
