"""Every domain's admin: Django's, with the login throttled per address (tenants.admin_login)."""

from django.contrib import admin
from django.urls import path

from tenants.admin_login import admin_login

urlpatterns = [
    path("admin/login/", admin_login, name="admin-login"),
    path("admin/", admin.site.urls),
]
