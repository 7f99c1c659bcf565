"""URLs of a tenant's domain: its admin and the REST API under /v1/."""

from django.contrib import admin
from django.urls import include, path, re_path

from config.admin_login import admin_login
from config.errors import not_found_view

urlpatterns = [
    path("admin/login/", admin_login, name="admin-login"),  # throttled per address
    path("admin/", admin.site.urls),
    path("v1/", include("config.api_urls")),
    re_path(r"^v1(/.*)?$", not_found_view),
]

handler404 = "config.errors.not_found_view"
