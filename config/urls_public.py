"""URLs of the public (platform) domain: the operators' admin."""

from django.contrib import admin
from django.urls import path, re_path

from config.admin_login import admin_login
from config.errors import not_found_view

urlpatterns = [
    path("admin/login/", admin_login, name="admin-login"),  # throttled per address
    path("admin/", admin.site.urls),
    re_path(r"^v1(/.*)?$", not_found_view),
]

handler404 = "config.errors.not_found_view"
